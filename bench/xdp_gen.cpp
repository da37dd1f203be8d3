//===- bench/xdp_gen.cpp - line-rate 64-byte UDP out of a veth
//-------------===//
//
/// `xdp_gen`: sends the benchmark's frame (bench/frame.h) out of IFACE as
/// fast as one CPU can, for a fixed time, and prints how many it sent.
///
/// There is no pktgen in this kernel. What it does instead:
/// BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on a tiny program
/// (bench/bpf/xdp_gen.c) that copies the frame template over each frame and
/// returns XDP_TX, with ctx.ingress_ifindex = IFACE: every frame really
/// leaves through IFACE (a veth) and arrives at its peer, where the program
/// under test runs, in the same softirq on the same CPU. The run is stopped
/// by SIGALRM after --seconds (the test loop checks for signals between
/// batches); the program counts what it sent.
///
///   xdp_gen --iface IF --dst-mac MAC [--src-mac MAC] [--seconds S]
///           [--src A.B.C.D] [--dst A.B.C.D] [--sport N] [--dport N]
///           [--obj xdp_gen.o]
/// prints: sent=N elapsed_ns=T
/// Run it inside the sender's namespace (nsenter --net=...), as root, pinned
/// with taskset.
//===----------------------------------------------------------------------===//
#include "frame.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#ifndef XDP_GEN_OBJ
#define XDP_GEN_OBJ "xdp_gen.o"
#endif

namespace {

struct GenState { // bench/bpf/xdp_gen.c
  uint8_t frame[64];
  uint64_t sent;
};

[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "xdp_gen: %s\n", msg.c_str());
  std::exit(1);
}

void onAlarm(int) {}

uint32_t ipv4(const std::string &s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1)
    die("bad IPv4 address " + s);
  return ntohl(a.s_addr);
}

bench::Mac ifaceMac(const std::string &name) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr) != 0)
    die("reading the MAC of " + name + ": " + std::strerror(errno));
  close(s);
  bench::Mac m;
  std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, 6);
  return m;
}

} // namespace

int main(int argc, char **argv) {
  std::string iface, dstMac, srcMac, src = "10.1.0.1", dst = "10.1.0.2",
                                     obj = XDP_GEN_OBJ;
  double seconds = 1.0;
  int sport = 40000, dport = 1234;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--iface")
      iface = v;
    else if (a == "--dst-mac")
      dstMac = v;
    else if (a == "--src-mac")
      srcMac = v;
    else if (a == "--src")
      src = v;
    else if (a == "--dst")
      dst = v;
    else if (a == "--sport")
      sport = std::atoi(v.c_str());
    else if (a == "--dport")
      dport = std::atoi(v.c_str());
    else if (a == "--seconds")
      seconds = std::atof(v.c_str());
    else if (a == "--obj")
      obj = v;
    else
      die("unknown option " + a);
  }
  if (argc % 2 == 0 || iface.empty() || dstMac.empty() || seconds <= 0)
    die("usage: xdp_gen --iface IF --dst-mac MAC [--src-mac MAC] "
        "[--seconds S] [--src IP] [--dst IP] [--sport N] [--dport N] "
        "[--obj FILE]");
  unsigned ifindex = if_nametoindex(iface.c_str());
  if (!ifindex)
    die("no interface " + iface + " in this namespace");
  bench::Mac dmac, smac = srcMac.empty() ? ifaceMac(iface) : bench::Mac{};
  if (!bench::parseMac(dstMac, dmac) ||
      (!srcMac.empty() && !bench::parseMac(srcMac, smac)))
    die("bad MAC address");
  bench::Frame frame = bench::udpFrame(dmac, smac, ipv4(src), ipv4(dst),
                                       uint16_t(sport), uint16_t(dport));

  libbpf_set_print(nullptr);
  bpf_object *o = bpf_object__open_file(obj.c_str(), nullptr);
  if (!o)
    die("opening " + obj + ": " + std::strerror(errno));
  bpf_program *prog = bpf_object__find_program_by_name(o, "xdp_gen");
  bpf_map *bss = nullptr, *m;
  bpf_object__for_each_map(m, o) {
    std::string n = bpf_map__name(m);
    if (n.size() >= 4 && n.compare(n.size() - 4, 4, ".bss") == 0)
      bss = m;
  }
  if (!prog || !bss || bpf_map__value_size(bss) < sizeof(GenState))
    die(obj + " has no xdp_gen program with its .bss");
  GenState state{};
  std::memcpy(state.frame, frame.data(), frame.size());
  if (int err = bpf_map__set_initial_value(bss, &state, sizeof state))
    die(std::string("setting the frame template: ") + std::strerror(-err));
  if (int err = bpf_object__load(o))
    die("loading " + obj + ": " + std::strerror(-err));

  struct sigaction sa {};
  sa.sa_handler = onAlarm; // no SA_RESTART: the test run returns EINTR
  sigaction(SIGALRM, &sa, nullptr);

  xdp_md ctx{};
  ctx.data_end = uint32_t(frame.size());
  ctx.ingress_ifindex = ifindex;
  bpf_test_run_opts opts{};
  opts.sz = sizeof opts;
  opts.data_in = frame.data();
  opts.data_size_in = uint32_t(frame.size());
  opts.ctx_in = &ctx;
  opts.ctx_size_in = sizeof ctx;
  opts.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
  opts.repeat = 4'000'000'000u; // far more than fit in --seconds

  itimerval it{};
  it.it_value.tv_sec = time_t(seconds);
  it.it_value.tv_usec = suseconds_t((seconds - double(time_t(seconds))) * 1e6);
  timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  setitimer(ITIMER_REAL, &it, nullptr);
  int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &opts);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (err && err != -EINTR)
    die(std::string("BPF_PROG_TEST_RUN (live frames): ") + std::strerror(-err));
  long long ns =
      (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  uint32_t key = 0;
  if (bpf_map__lookup_elem(bss, &key, sizeof key, &state, sizeof state, 0))
    die("reading the sent count");
  std::printf("sent=%llu elapsed_ns=%lld\n",
              static_cast<unsigned long long>(state.sent), ns);
  bpf_object__close(o);
  return 0;
}
