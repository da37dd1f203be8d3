//===- bench/xdp_ns.cpp - ns per packet of one XDP program
//-----------------===//
//
/// `xdp_ns`: the cost of one packet in an XDP program, without the network:
/// BPF_PROG_TEST_RUN with a large repeat on the benchmark's frame
/// (bench/frame.h, UDP 10.1.0.1:40000 -> 10.1.0.2:1234), with
/// ctx.ingress_ifindex = IFACE so a program that asks the FIB (rule2xdp's
/// routing decision) sees the benchmark network's routes: run it in that
/// namespace (nsenter --net=...). The repeat is sized to --ms per round;
/// the figure is the median over --rounds of the thread's CPU time in the
/// syscall divided by the repeat (see bench/prog_ns.cpp for why).
///
/// With `--attached` instead of `--obj`, the program measured is the one
/// attached to IFACE (as `rule2xdp --load` left it, with the maps the loader
/// filled: ipset sets, the interface's MAC), and the frame is addressed to
/// IFACE's own MAC. Its counters then count the test runs too.
///
/// With `--ref FILE.o`, a reference program (rule2xdp's, e.g. the same
/// policy's one rule) is loaded from FILE.o and timed on the same frame in
/// alternate rounds (measured, reference, measured, ...), each with its own
/// repeat, and the line gains `ref_ns=` and `ratio=` (measured / reference).
/// On this VM a core's speed can change by 2x from one second to the next;
/// a ratio from interleaved rounds is stable where two figures taken
/// minutes apart are not. The reference's r2x_ifmac gets IFACE's MAC, as
/// the loader gives the attached program, so both make the same MAC check.
///
///   xdp_ns (--obj FILE.o [--prog rule2xdp] | --attached) [--iface IF]
///          [--ref FILE.o] [--expect drop|pass] [--rounds N] [--ms N]
/// prints: ns=X kernel_ns=Y repeat=N retval=ACTION [ref_ns=R ratio=Q]
/// (exit 1 on a wrong verdict)
//===----------------------------------------------------------------------===//
#include "frame.h"
#include "runtime/contract/Object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {
[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "xdp_ns: %s\n", msg.c_str());
  std::exit(1);
}
struct Run {
  double ns;
  uint32_t kernelNs, retval;
};
Run once(int fd, bench::Frame &f, unsigned ifindex, uint32_t repeat) {
  xdp_md ctx{};
  ctx.data_end = uint32_t(f.size());
  ctx.ingress_ifindex = ifindex;
  bpf_test_run_opts o{};
  o.sz = sizeof o;
  o.data_in = f.data();
  o.data_size_in = uint32_t(f.size());
  o.ctx_in = &ctx;
  o.ctx_size_in = sizeof ctx;
  o.repeat = repeat;
  timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  int err = bpf_prog_test_run_opts(fd, &o);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  if (err)
    die(std::string("BPF_PROG_TEST_RUN: ") + std::strerror(-err));
  double ns =
      double(t1.tv_sec - t0.tv_sec) * 1e9 + double(t1.tv_nsec - t0.tv_nsec);
  return {ns / repeat, o.duration, o.retval};
}

/// The repeat that makes one round of `fd` last about `ms` milliseconds.
uint32_t sizeRepeat(int fd, bench::Frame &f, unsigned ifindex, int ms) {
  uint32_t repeat = 1000;
  for (;;) {
    Run c = once(fd, f, ifindex, repeat);
    double total = c.ns * repeat;
    if (total > ms * 1e5 || repeat >= 100'000'000u) {
      double scale = ms * 1e6 / std::max(total, 1.0);
      return uint32_t(std::clamp(repeat * scale, 1.0, 200e6));
    }
    repeat *= 10;
  }
}

/// Loads `path` and returns the fd of its program `prog`.
int loadObject(const std::string &path, const std::string &prog,
               bpf_object **out) {
  bpf_object *o = bpf_object__open_file(path.c_str(), nullptr);
  if (!o)
    die("opening " + path + ": " + std::strerror(errno));
  if (int err = bpf_object__load(o))
    die("loading " + path + ": " + std::strerror(-err));
  bpf_program *p = bpf_object__find_program_by_name(o, prog.c_str());
  if (!p)
    die(path + " has no program " + prog);
  *out = o;
  return bpf_program__fd(p);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
} // namespace

int main(int argc, char **argv) {
  std::string obj, prog = r2x::contract::ProgName, iface = "lo",
                   expect = "drop", ref;
  int rounds = 5, ms = 100;
  bool attached = false;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--attached") {
      attached = true;
      --i;
      continue;
    }
    if (i + 1 >= argc)
      die("option " + a + " needs a value");
    std::string v = argv[i + 1];
    if (a == "--obj")
      obj = v;
    else if (a == "--prog")
      prog = v;
    else if (a == "--ref")
      ref = v;
    else if (a == "--iface")
      iface = v;
    else if (a == "--expect")
      expect = v;
    else if (a == "--rounds")
      rounds = std::atoi(v.c_str());
    else if (a == "--ms")
      ms = std::atoi(v.c_str());
    else
      die("unknown option " + a);
  }
  if (obj.empty() == !attached || rounds < 1 || ms < 1)
    die("usage: xdp_ns (--obj FILE [--prog NAME] | --attached) [--iface IF] "
        "[--ref FILE] [--expect drop|pass] [--rounds N] [--ms N]");
  unsigned ifindex = if_nametoindex(iface.c_str());
  if (!ifindex)
    die("no interface " + iface);
  libbpf_set_print(nullptr);
  bench::Mac dmac{0x02, 0, 0, 0, 0, 2}, smac{0x02, 0, 0, 0, 0, 1};
  bpf_object *o = nullptr;
  int fd = -1;
  if (attached) {
    uint32_t id = 0;
    if (bpf_xdp_query_id(int(ifindex), 0, &id) || id == 0)
      die("no XDP program attached to " + iface);
    fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0)
      die("cannot open the program on " + iface + ": " + std::strerror(errno));
    // Through this network namespace's socket: /sys may be another's
    // (nsenter --net does not remount it).
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr {};
    std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface.c_str());
    if (sock < 0 || ioctl(sock, SIOCGIFHWADDR, &ifr) != 0)
      die("cannot read the MAC of " + iface + ": " + std::strerror(errno));
    close(sock);
    for (int k = 0; k < 6; ++k)
      dmac[size_t(k)] = uint8_t(ifr.ifr_hwaddr.sa_data[k]);
  } else {
    fd = loadObject(obj, prog, &o);
  }
  bpf_object *refObj = nullptr;
  int refFd = -1;
  if (!ref.empty()) {
    refFd = loadObject(ref, r2x::contract::ProgName, &refObj);
    bpf_map *mac =
        bpf_object__find_map_by_name(refObj, r2x::contract::IfmacMap.name);
    r2x::contract::MacValue value{};
    std::memcpy(value.addr, dmac.data(), sizeof value.addr);
    uint32_t key = ifindex;
    if (attached && mac &&
        bpf_map_update_elem(bpf_map__fd(mac), &key, &value, BPF_ANY) != 0)
      die(std::string("cannot give the reference the MAC of ") + iface + ": " +
          std::strerror(errno));
  }
  bench::Frame f =
      bench::udpFrame(dmac, smac, 0x0a010001, 0x0a010002, 40000, 1234);
  uint32_t want = expect == "drop" ? XDP_DROP : XDP_PASS;
  for (int p : {fd, refFd}) {
    if (p < 0)
      continue;
    Run r = once(p, f, ifindex, 1);
    if (r.retval != want) {
      std::printf("ns=0 kernel_ns=0 repeat=0 retval=%u\n", r.retval);
      std::fprintf(stderr, "xdp_ns: FAILED: %s verdict %u, expected %u\n",
                   p == fd ? "the program's" : "the reference's", r.retval,
                   want);
      return 1;
    }
  }
  uint32_t repeat = sizeRepeat(fd, f, ifindex, ms);
  uint32_t refRepeat = refFd < 0 ? 0 : sizeRepeat(refFd, f, ifindex, ms);
  std::vector<double> ns, refNs, ratios;
  std::vector<uint32_t> kns;
  for (int i = 0; i < rounds; ++i) {
    Run c = once(fd, f, ifindex, repeat);
    if (c.retval != want)
      die("wrong verdict during timing");
    ns.push_back(c.ns);
    kns.push_back(c.kernelNs);
    if (refFd >= 0) {
      Run rc = once(refFd, f, ifindex, refRepeat);
      if (rc.retval != want)
        die("wrong verdict of the reference during timing");
      refNs.push_back(rc.ns);
      ratios.push_back(c.ns / std::max(rc.ns, 0.01));
    }
  }
  std::sort(kns.begin(), kns.end());
  std::printf("ns=%.2f kernel_ns=%u repeat=%u retval=%u", median(ns),
              kns[kns.size() / 2], repeat, want);
  if (refFd >= 0)
    std::printf(" ref_ns=%.2f ratio=%.2f", median(refNs), median(ratios));
  std::printf("\n");
  if (refObj)
    bpf_object__close(refObj);
  if (o)
    bpf_object__close(o);
  return 0;
}
