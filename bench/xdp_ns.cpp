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
///   xdp_ns (--obj FILE.o [--prog rule2xdp] | --attached) [--iface IF]
///          [--expect drop|pass] [--rounds N] [--ms N]
/// prints: ns=X kernel_ns=Y repeat=N retval=ACTION  (exit 1 on a wrong verdict)
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
} // namespace

int main(int argc, char **argv) {
  std::string obj, prog = r2x::contract::ProgName, iface = "lo",
                   expect = "drop";
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
        "[--expect drop|pass] [--rounds N] [--ms N]");
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
    o = bpf_object__open_file(obj.c_str(), nullptr);
    if (!o)
      die("opening " + obj + ": " + std::strerror(errno));
    if (int err = bpf_object__load(o))
      die("loading " + obj + ": " + std::strerror(-err));
    bpf_program *p = bpf_object__find_program_by_name(o, prog.c_str());
    if (!p)
      die(obj + " has no program " + prog);
    fd = bpf_program__fd(p);
  }
  bench::Frame f =
      bench::udpFrame(dmac, smac, 0x0a010001, 0x0a010002, 40000, 1234);
  uint32_t want = expect == "drop" ? XDP_DROP : XDP_PASS;
  Run r = once(fd, f, ifindex, 1);
  if (r.retval != want) {
    std::printf("ns=0 kernel_ns=0 repeat=0 retval=%u\n", r.retval);
    std::fprintf(stderr, "xdp_ns: FAILED: verdict %u, expected %u\n", r.retval,
                 want);
    return 1;
  }
  // Size the repeat: ~ms milliseconds per round.
  uint32_t repeat = 1000;
  for (;;) {
    Run c = once(fd, f, ifindex, repeat);
    double total = c.ns * repeat;
    if (total > ms * 1e5 || repeat >= 100'000'000u) {
      double scale = ms * 1e6 / std::max(total, 1.0);
      repeat = uint32_t(std::clamp(repeat * scale, 1.0, 200e6));
      break;
    }
    repeat *= 10;
  }
  std::vector<double> ns;
  std::vector<uint32_t> kns;
  for (int i = 0; i < rounds; ++i) {
    Run c = once(fd, f, ifindex, repeat);
    if (c.retval != want)
      die("wrong verdict during timing");
    ns.push_back(c.ns);
    kns.push_back(c.kernelNs);
  }
  std::sort(ns.begin(), ns.end());
  std::sort(kns.begin(), kns.end());
  std::printf("ns=%.2f kernel_ns=%u repeat=%u retval=%u\n", ns[ns.size() / 2],
              kns[kns.size() / 2], repeat, want);
  if (o)
    bpf_object__close(o);
  return 0;
}
