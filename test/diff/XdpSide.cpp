//===- test/diff/XdpSide.cpp - the XDP side: compile, load, test-run ------===//
#include "test/diff/XdpSide.h"

#include "runtime/Loader.h"
#include "test/diff/Process.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace r2x::diff {

const char *xdpActionName(uint32_t action) {
  switch (action) {
  case 0: return "XDP_ABORTED";
  case 1: return "XDP_DROP";
  case 2: return "XDP_PASS";
  case 3: return "XDP_TX";
  case 4: return "XDP_REDIRECT";
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

/// The metadata text in the object's `.rodata` map, found as the loader
/// finds it (runtime/Loader.cpp): libbpf names the map "<prefix>.rodata";
/// the text runs from the magic to the first NUL.
std::string findMetaText(bpf_object *obj) {
  constexpr std::string_view Suffix = ".rodata";
  constexpr std::string_view Magic = "rule2xdp-meta\t";
  bpf_map *map;
  bpf_object__for_each_map(map, obj) {
    std::string_view name = bpf_map__name(map);
    if (name.size() < Suffix.size() ||
        name.substr(name.size() - Suffix.size()) != Suffix)
      continue;
    size_t size = 0;
    const void *image = bpf_map__initial_value(map, &size);
    if (!image)
      continue;
    std::string_view bytes(static_cast<const char *>(image), size);
    size_t at = bytes.find(Magic);
    if (at == std::string_view::npos)
      continue;
    bytes.remove_prefix(at);
    return std::string(bytes.substr(0, bytes.find('\0')));
  }
  return {};
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
  if (obj_)
    metaText_ = findMetaText(obj_);
  if (obj_ && !metaText_.empty())
    err = bpf_object__load(obj_);
  libbpf_set_print(previous);
  gLog = nullptr;
  unlink(objectPath.c_str()); // libbpf holds what it needs
  if (!obj_)
    throw std::runtime_error("libbpf cannot open the object: " +
                             std::string(std::strerror(-err)) + "\n" + log);
  if (metaText_.empty())
    throw std::runtime_error("the object has no rule2xdp metadata in .rodata");
  if (err)
    throw std::runtime_error("libbpf cannot load the object: " +
                             std::string(std::strerror(-err)) + "\n" + log);
  if (log.find("BTF is optional") != std::string::npos)
    throw std::runtime_error("the kernel refused the object's BTF:\n" + log);

  meta_ = r2x::runtime::parseMeta(metaText_);
  bpf_program *prog = bpf_object__find_program_by_name(obj_, "rule2xdp");
  bpf_map *counters = bpf_object__find_map_by_name(obj_, "r2x_counters");
  bpf_map *ifmatch = bpf_object__find_map_by_name(obj_, "r2x_ifmatch");
  if (!prog || bpf_program__type(prog) != BPF_PROG_TYPE_XDP)
    throw std::runtime_error("object contract: no XDP program rule2xdp");
  if (!counters || bpf_map__type(counters) != BPF_MAP_TYPE_PERCPU_ARRAY ||
      bpf_map__key_size(counters) != 4 || bpf_map__value_size(counters) != 16)
    throw std::runtime_error("object contract: no PERCPU_ARRAY r2x_counters");
  if (!ifmatch)
    throw std::runtime_error("object contract: no map r2x_ifmatch");
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
  r2x::runtime::fillIfaceMap(bpf_map__fd(ifmatch), metaText_);
  // And their MACs, so frames for other hosts are left to the kernel.
  if (bpf_map *ifmac = bpf_object__find_map_by_name(obj_, "r2x_ifmac"))
    r2x::runtime::fillMacMap(bpf_map__fd(ifmac));
}

XdpProgram::~XdpProgram() {
  if (obj_)
    bpf_object__close(obj_);
}

std::vector<Count> XdpProgram::readCounters() {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<Count> sum(slots_), percpu(size_t(ncpu > 0 ? ncpu : 1));
  for (uint32_t k = 0; k < slots_; ++k) {
    if (bpf_map_lookup_elem(counters_, &k, percpu.data()) != 0)
      throw std::runtime_error(std::string("reading r2x_counters: ") +
                               std::strerror(errno));
    for (const Count &c : percpu) {
      sum[k].packets += c.packets;
      sum[k].bytes += c.bytes;
    }
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
