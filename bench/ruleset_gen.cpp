//===- bench/ruleset_gen.cpp - rulesets for the scaling benchmark
//----------===//
//
/// `ruleset_gen N`: an iptables-save file with N rules in filter INPUT, in
/// the style of the bpf-iptables benchmarks: one flow per rule (source,
/// destination, protocol, source and destination port all varied), every
/// rule DROP, policy ACCEPT. The first N-1 rules never match the benchmark's
/// flow (their sources are in 172.16.0.0/12, the flow's is 10.1.0.1); the
/// last rule is exactly that flow, 10.1.0.1:40000 -> 10.1.0.2:1234 UDP, so
/// a linear classifier walks all N. Deterministic (fixed seed), so iptables
/// and rule2xdp read the same file.
//===----------------------------------------------------------------------===//
#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
  long n = argc == 2 ? std::atol(argv[1]) : 0;
  if (n < 1) {
    std::fprintf(stderr, "usage: ruleset_gen N (N >= 1)\n");
    return 2;
  }
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto rnd = [&x]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return uint32_t(x >> 16);
  };
  std::printf("# ruleset_gen %ld: %ld non-matching flows, then the flow "
              "under test\n*filter\n:INPUT ACCEPT [0:0]\n"
              ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
              n, n - 1);
  for (long i = 0; i + 1 < n; ++i) {
    uint32_t s = 0xac100000u | (rnd() & 0x000fffffu); // 172.16.0.0/12
    uint32_t d = rnd() % 4 ? 0x0a010002u : (0x0a000000u | (rnd() & 0xffffff));
    const char *proto = rnd() % 3 ? "udp" : "tcp";
    std::printf("-A INPUT -s %u.%u.%u.%u/32 -d %u.%u.%u.%u/32 -p %s -m %s "
                "--sport %u --dport %u -j DROP\n",
                s >> 24, s >> 16 & 255, s >> 8 & 255, s & 255, d >> 24,
                d >> 16 & 255, d >> 8 & 255, d & 255, proto, proto,
                1024 + rnd() % 64000, 1 + rnd() % 65535);
  }
  std::printf("-A INPUT -s 10.1.0.1/32 -d 10.1.0.2/32 -p udp -m udp "
              "--sport 40000 --dport 1234 -j DROP\nCOMMIT\n");
  return 0;
}
