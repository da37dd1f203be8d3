//===- test/diff/XdpSide.cpp - the XDP side: compile, load, test-run ------===//
#include "test/diff/XdpSide.h"

#include "runtime/BpfObject.h"
#include "runtime/Loader.h"
#include "runtime/LocalTable.h"
#include "test/diff/Process.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>

namespace r2x::diff {

const char *xdpActionName(uint32_t action) {
  switch (action) {
  case XDP_ABORTED:
    return "XDP_ABORTED";
  case XDP_DROP:
    return "XDP_DROP";
  case XDP_PASS:
    return "XDP_PASS";
  case XDP_TX:
    return "XDP_TX";
  case XDP_REDIRECT:
    return "XDP_REDIRECT";
  }
  return "XDP_?";
}

namespace {

std::string *gLog = nullptr;

int libbpfPrint(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || !gLog)
    return 0;
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  *gLog += buf;
  return 0;
}

} // namespace

XdpProgram::XdpProgram(const std::string &compiler,
                       const std::vector<std::string> &words,
                       const std::string &objectPath) {
  std::vector<std::string> argv{compiler};
  argv.insert(argv.end(), words.begin(), words.end());
  argv.insert(argv.end(), {"-o", objectPath});
  ProcessResult r = r2x::diff::run(argv, {}, 60000);
  if (!r.ok()) {
    unlink(objectPath.c_str()); // whatever a failed run left behind
    throw CompileError("rule2xdp failed (exit " + std::to_string(r.status) +
                           "): " + r.out + r.err,
                       r.status);
  }

  std::string log;
  gLog = &log;
  libbpf_print_fn_t previous = libbpf_set_print(libbpfPrint);
  obj_ = bpf_object__open_file(objectPath.c_str(), nullptr);
  int err = obj_ ? 0 : -errno;
  std::string metaError;
  if (obj_) {
    // As the loader reads it (runtime/BpfObject.h), before loading.
    try {
      metaText_ = r2x::runtime::objectMetaText(obj_);
    } catch (const std::exception &e) {
      metaError = e.what();
    }
  }
  if (obj_ && metaError.empty())
    err = bpf_object__load(obj_);
  // The object's bytes, for the ipset entries it carries.
  std::vector<uint8_t> image;
  {
    std::ifstream in(objectPath, std::ios::binary);
    image.assign(std::istreambuf_iterator<char>(in), {});
  }
  libbpf_set_print(previous);
  gLog = nullptr;
  unlink(objectPath.c_str()); // libbpf holds what it needs
  if (!obj_)
    throw std::runtime_error("libbpf cannot open the object: " +
                             std::string(std::strerror(-err)) + "\n" + log);
  if (!metaError.empty())
    throw std::runtime_error(metaError);
  if (err)
    throw std::runtime_error("libbpf cannot load the object: " +
                             std::string(std::strerror(-err)) + "\n" + log);
  if (log.find("BTF is optional") != std::string::npos)
    throw std::runtime_error("the kernel refused the object's BTF:\n" + log);

  meta_ = r2x::runtime::parseMeta(metaText_);
  // The program and maps as the loader finds them: LoadError otherwise.
  bpf_program *prog = r2x::runtime::findProgram(obj_);
  bpf_map *counters = r2x::runtime::findMap(obj_, r2x::contract::CountersMap);
  bpf_map *ifmatch = r2x::runtime::findMap(obj_, r2x::contract::IfmatchMap);
  prog_ = bpf_program__fd(prog);
  counters_ = bpf_map__fd(counters);
  slots_ = bpf_map__max_entries(counters);

  for (const auto &chain : meta_.chains) {
    if (chain.slot >= int(slots_))
      throw std::runtime_error("object contract: policy slot out of range");
    for (const auto &rule : chain.rules)
      if (rule.slot >= slots_)
        throw std::runtime_error("object contract: rule slot out of range");
  }
  // In B: the devices and their ifindexes the program will see.
  r2x::runtime::fillIfaceMap(bpf_map__fd(ifmatch), meta_);
  // And their MACs, so frames for other hosts are left to the kernel.
  if (bpf_map *ifmac =
          r2x::runtime::findMap(obj_, r2x::contract::IfmacMap, false))
    r2x::runtime::fillMacMap(bpf_map__fd(ifmac));
  // And the hop limits a tcp-reset REJECT's RST carries.
  if (bpf_map *rst = r2x::runtime::findMap(obj_, r2x::contract::RstMap, false))
    r2x::runtime::fillRstMap(bpf_map__fd(rst));
  // B's local routing table for -m addrtype, under a lease that outlasts
  // the run (B's addresses do not change during it).
  if (bpf_map *local =
          r2x::runtime::findMap(obj_, r2x::contract::LocalMap, false))
    if (bpf_map *ok =
            r2x::runtime::findMap(obj_, r2x::contract::LocalOkMap, false))
      r2x::runtime::fillLocalTable(bpf_map__fd(local), bpf_map__fd(ok),
                                   24u * 3600 * 1000);
  // The ipset sets' LPM tries (rulesets/X.sets).
  r2x::runtime::fillSetMaps(obj_, image, meta_,
                            [](bpf_map *m) { return bpf_map__fd(m); });
}

XdpProgram::~XdpProgram() {
  if (obj_)
    bpf_object__close(obj_);
}

void XdpProgram::resetBuckets() {
  bpf_map *limit = r2x::runtime::findMap(obj_, r2x::contract::LimitMap, false);
  if (!limit)
    return;
  int fd = bpf_map__fd(limit);
  const uint64_t full = 0;
  for (uint32_t k = 0; k < bpf_map__max_entries(limit); ++k)
    if (bpf_map_update_elem(fd, &k, &full, BPF_ANY) != 0)
      throw std::runtime_error(std::string("cannot reset r2x_limit: ") +
                               std::strerror(errno));
}

std::vector<Count> XdpProgram::readCounters() {
  std::vector<Count> sum(slots_);
  for (uint32_t k = 0; k < slots_; ++k) {
    r2x::contract::CounterValue c = r2x::runtime::readCounter(counters_, k);
    sum[k].packets = c.packets;
    sum[k].bytes = c.bytes;
  }
  return sum;
}

XdpResult XdpProgram::run(const std::vector<uint8_t> &frame, unsigned ifindex) {
  xdp_md ctx;
  std::memset(&ctx, 0, sizeof ctx);
  ctx.data_end = uint32_t(frame.size());
  ctx.ingress_ifindex = ifindex;
  std::vector<uint8_t> out(frame.size() + 256);
  bpf_test_run_opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  opts.data_in = frame.data();
  opts.data_size_in = uint32_t(frame.size());
  opts.data_out = out.data();
  opts.data_size_out = uint32_t(out.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof ctx;
  opts.repeat = 1;

  std::vector<Count> before = readCounters();
  if (int err = bpf_prog_test_run_opts(prog_, &opts))
    throw std::runtime_error(std::string("bpf_prog_test_run_opts: ") +
                             std::strerror(err < 0 ? -err : err));
  std::vector<Count> after = readCounters();

  XdpResult r;
  r.action = opts.retval;
  out.resize(opts.data_size_out);
  r.modified = out != frame;
  for (unsigned k = 0; k < slots_; ++k)
    if (!(after[k] == before[k]))
      r.counters[k] = {after[k].packets - before[k].packets,
                       after[k].bytes - before[k].bytes};
  return r;
}

} // namespace r2x::diff
