//===- bench/ruleset_gen.cpp - rulesets for the scaling benchmarks --------===//
//
/// \file
/// `ruleset_gen [--shape SHAPE] [--format FORMAT] N`: N rules in filter
/// INPUT, policy ACCEPT, for the benchmark's flow UDP 10.1.0.1:40000 ->
/// 10.1.0.2:1234: the first N-1 rules match neither it nor the same flow to
/// port 4321 (the "miss" frame), the last rule drops exactly the flow, so a
/// linear classifier walks all N. Deterministic (fixed seed): iptables,
/// nftables and rule2xdp read the same policy.
///
/// Shapes:
///  - `exact` (the default): bpf-iptables-style 5-tuples, every field
///    exact, every rule DROP.
///  - `acl`, `fw`: ClassBench-like mixes (Taylor and Turner's acl and fw
///    seed characteristics, approximated): prefixes of every length from
///    clustered address pools, wildcards, well-known destination ports,
///    port ranges, tcp/udp/any protocol, ACCEPT and DROP. `acl` is mostly
///    specific (host and /24 destinations, exact ports), `fw` has many
///    wildcards and ranges.
///  - `blocklist`: source addresses and prefixes (/32 mostly, /20 to /31),
///    every rule `-s P -j DROP`.
///
/// Formats: `iptables` (iptables-save, the default); for `exact` and
/// `blocklist` also `nft` (an `nft -f` script holding the same policy as
/// one rule over a set: a concatenation of the five fields, or the source
/// prefixes with intervals) and `ipset` (`ipset restore` input for the
/// blocklist as one hash:net set `bl`, to go with `--format setrule`, the
/// one iptables rule that drops sources in it).
//===----------------------------------------------------------------------===//
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_set>

namespace {

uint64_t gState = 0x9e3779b97f4a7c15ull;

uint32_t rnd() {
  gState ^= gState << 13;
  gState ^= gState >> 7;
  gState ^= gState << 17;
  return uint32_t(gState >> 16);
}

/// True with probability `percent`/100.
bool chance(unsigned percent) { return rnd() % 100 < percent; }

std::string quad(uint32_t a) {
  char b[32];
  std::snprintf(b, sizeof b, "%u.%u.%u.%u", a >> 24, a >> 16 & 255,
                a >> 8 & 255, a & 255);
  return b;
}

uint32_t maskOf(unsigned len) { return len ? ~0u << (32 - len) : 0; }

constexpr uint32_t kFlowSrc = 0x0a010001, kFlowDst = 0x0a010002;
constexpr unsigned kFlowSport = 40000, kFlowDport = 1234, kMissDport = 4321;

struct Rule {
  uint32_t src = 0, dst = 0;
  unsigned srcLen = 0, dstLen = 0;
  int proto = -1; ///< -1 any, else 6 or 17
  unsigned sportLo = 0, sportHi = 65535, dportLo = 0, dportHi = 65535;
  bool drop = true;

  bool matches(unsigned dport) const {
    return (kFlowSrc & maskOf(srcLen)) == src &&
           (kFlowDst & maskOf(dstLen)) == dst && (proto == -1 || proto == 17) &&
           sportLo <= kFlowSport && kFlowSport <= sportHi && dportLo <= dport &&
           dport <= dportHi;
  }
  bool hasPorts() const {
    return sportLo != 0 || sportHi != 65535 || dportLo != 0 || dportHi != 65535;
  }
};

/// ClassBench's address structure: prefixes drawn around a few dozen
/// pools, not uniformly.
uint32_t pooled(unsigned len) {
  static const uint32_t pools[] = {
      0x0a000000, 0xac100000, 0xc0a80000, 0x64400000, 0xc6120000, 0x59000000,
      0xd5000000, 0x3e000000, 0x8d000000, 0x4a7d0000, 0xb9000000, 0x17000000};
  uint32_t base = pools[rnd() % (sizeof pools / sizeof pools[0])];
  uint32_t a = base | (rnd() & 0x00ffffffu) |
               (rnd() % 4 == 0 ? rnd() << 24 & 0x0f000000u : 0);
  return a & maskOf(len);
}

unsigned pick(const unsigned *lens, unsigned n) { return lens[rnd() % n]; }

const unsigned kWellKnown[] = {
    20,  21,  22,  23,  25,  53,  80,   110,  123,  135,  137,  139,  143,
    161, 389, 443, 445, 993, 995, 1433, 1521, 3306, 3389, 5060, 8080, 8443};
const unsigned kRanges[][2] = {{1024, 65535}, {0, 1023},      {6000, 6063},
                               {5000, 5100},  {49152, 65535}, {137, 139},
                               {8000, 8999}};

void wellKnownPort(unsigned &lo, unsigned &hi) {
  lo = hi = kWellKnown[rnd() % (sizeof kWellKnown / sizeof kWellKnown[0])];
}
void commonRange(unsigned &lo, unsigned &hi) {
  const unsigned *r = kRanges[rnd() % (sizeof kRanges / sizeof kRanges[0])];
  lo = r[0];
  hi = r[1];
}

Rule aclRule() {
  Rule r;
  static const unsigned srcLens[] = {0,  0,  8,  16, 20, 24,
                                     24, 28, 32, 32, 32, 32};
  static const unsigned dstLens[] = {0,  16, 22, 24, 24, 24, 28,
                                     30, 32, 32, 32, 32, 32};
  r.srcLen = pick(srcLens, sizeof srcLens / sizeof *srcLens);
  r.dstLen = pick(dstLens, sizeof dstLens / sizeof *dstLens);
  r.src = pooled(r.srcLen);
  r.dst = pooled(r.dstLen);
  unsigned p = rnd() % 100;
  r.proto = p < 70 ? 6 : p < 92 ? 17 : -1;
  if (r.proto != -1) {
    if (chance(3))
      r.sportLo = 1024;
    unsigned d = rnd() % 100;
    if (d < 60)
      wellKnownPort(r.dportLo, r.dportHi);
    else if (d < 78)
      commonRange(r.dportLo, r.dportHi);
  }
  r.drop = chance(35);
  return r;
}

Rule fwRule() {
  Rule r;
  static const unsigned srcLens[] = {0, 0, 0, 0, 8, 12, 16, 16, 24, 24, 32, 32};
  static const unsigned dstLens[] = {0, 0, 16, 20, 24, 24, 28, 32, 32, 32};
  r.srcLen = pick(srcLens, sizeof srcLens / sizeof *srcLens);
  r.dstLen = pick(dstLens, sizeof dstLens / sizeof *dstLens);
  r.src = pooled(r.srcLen);
  r.dst = pooled(r.dstLen);
  unsigned p = rnd() % 100;
  r.proto = p < 55 ? 6 : p < 75 ? 17 : -1;
  if (r.proto != -1) {
    if (chance(20))
      commonRange(r.sportLo, r.sportHi);
    unsigned d = rnd() % 100;
    if (d < 35)
      wellKnownPort(r.dportLo, r.dportHi);
    else if (d < 55)
      commonRange(r.dportLo, r.dportHi);
    else if (d < 70) {
      r.dportLo = rnd() % 60000;
      r.dportHi = r.dportLo + 1 + rnd() % 5000;
    }
  }
  r.drop = chance(50);
  return r;
}

Rule exactRule() {
  Rule r;
  r.src = 0xac100000u | (rnd() & 0x000fffffu); // 172.16.0.0/12
  r.dst = rnd() % 4 ? kFlowDst : (0x0a000000u | (rnd() & 0xffffff));
  r.srcLen = r.dstLen = 32;
  r.proto = rnd() % 3 ? 17 : 6;
  r.sportLo = r.sportHi = 1024 + rnd() % 64000;
  r.dportLo = r.dportHi = 1 + rnd() % 65535;
  return r;
}

Rule blockRule() {
  Rule r;
  static const unsigned lens[] = {32, 32, 32, 32, 32, 32, 32, 32, 32,
                                  31, 30, 29, 28, 27, 26, 25, 24, 20};
  r.srcLen = pick(lens, sizeof lens / sizeof *lens);
  r.src = rnd() & maskOf(r.srcLen);
  return r;
}

Rule flowRule() {
  Rule r;
  r.src = kFlowSrc;
  r.dst = kFlowDst;
  r.srcLen = r.dstLen = 32;
  r.proto = 17;
  r.sportLo = r.sportHi = kFlowSport;
  r.dportLo = r.dportHi = kFlowDport;
  return r;
}

std::string ports(const char *opt, unsigned lo, unsigned hi) {
  if (lo == 0 && hi == 65535)
    return "";
  std::string s = std::string(" ") + opt + " " + std::to_string(lo);
  if (hi != lo)
    s += ":" + std::to_string(hi);
  return s;
}

void printIptables(const Rule &r) {
  std::string w = "-A INPUT";
  if (r.srcLen)
    w += " -s " + quad(r.src) + "/" + std::to_string(r.srcLen);
  if (r.dstLen)
    w += " -d " + quad(r.dst) + "/" + std::to_string(r.dstLen);
  if (r.proto != -1) {
    const char *p = r.proto == 6 ? "tcp" : "udp";
    w += std::string(" -p ") + p;
    if (r.hasPorts())
      w += std::string(" -m ") + p + ports("--sport", r.sportLo, r.sportHi) +
           ports("--dport", r.dportLo, r.dportHi);
  }
  w += r.drop ? " -j DROP" : " -j ACCEPT";
  std::puts(w.c_str());
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: ruleset_gen [--shape exact|acl|fw|blocklist] "
                       "[--format iptables|nft|ipset|setrule] N (N >= 1)\n");
  std::exit(2);
}

} // namespace

int main(int argc, char **argv) {
  std::string shape = "exact", format = "iptables";
  long n = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--shape") && i + 1 < argc)
      shape = argv[++i];
    else if (!std::strcmp(argv[i], "--format") && i + 1 < argc)
      format = argv[++i];
    else if (n == 0)
      n = std::atol(argv[i]);
    else
      usage();
  }
  Rule (*gen)() = shape == "exact"       ? exactRule
                  : shape == "acl"       ? aclRule
                  : shape == "fw"        ? fwRule
                  : shape == "blocklist" ? blockRule
                                         : nullptr;
  bool setFormat = format == "nft" || format == "ipset" || format == "setrule";
  if (n < 1 || !gen || (format != "iptables" && !setFormat) ||
      (setFormat && shape != "exact" && shape != "blocklist") ||
      ((format == "ipset" || format == "setrule") && shape != "blocklist"))
    usage();

  if (format == "setrule") {
    std::printf("# ruleset_gen --shape blocklist %ld: the sources of set bl\n"
                "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n"
                ":OUTPUT ACCEPT [0:0]\n"
                "-A INPUT -m set --match-set bl src -j DROP\nCOMMIT\n",
                n);
    return 0;
  }
  if (format == "iptables")
    std::printf("# ruleset_gen --shape %s %ld: %ld rules that miss the flow, "
                "then the flow under test\n*filter\n:INPUT ACCEPT [0:0]\n"
                ":FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n",
                shape.c_str(), n, n - 1);
  else if (format == "ipset")
    std::printf("create bl hash:net family inet hashsize 1024 maxelem %ld\n",
                n < 65536 ? 65536 : n);
  else if (shape == "exact")
    std::printf("table ip r2xbench {\n  set s {\n    type ipv4_addr . "
                "ipv4_addr . inet_proto . inet_service . inet_service\n"
                "    elements = {\n");
  else
    std::printf("table ip r2xbench {\n  set s {\n    type ipv4_addr\n"
                "    flags interval\n    auto-merge\n    elements = {\n");

  std::unordered_set<std::string> seen;
  auto key = [](const Rule &r) {
    return std::to_string(r.src) + "/" + std::to_string(r.srcLen) + " " +
           std::to_string(r.dst) + " " + std::to_string(r.proto) + " " +
           std::to_string(r.sportLo) + " " + std::to_string(r.dportLo);
  };
  for (long i = 0; i < n; ++i) {
    Rule r;
    if (i + 1 == n) {
      r = flowRule();
      if (shape == "blocklist") { // the flow's source blocked, last
        r = Rule();
        r.src = kFlowSrc;
        r.srcLen = 32;
      }
    } else {
      // Redraw a rule that would match the flow or the miss frame.
      // Sets hold each element once (ipset and nft refuse a second
      // copy): for the set formats, and the blocklist in every format (the
      // same policy), draw again on a repeat too.
      do
        r = gen();
      while (
          r.matches(kFlowDport) || r.matches(kMissDport) ||
          ((setFormat || shape == "blocklist") && !seen.insert(key(r)).second));
    }
    const char *sep = i + 1 == n ? "" : ",";
    if (format == "iptables")
      printIptables(r);
    else if (format == "ipset")
      std::printf("add bl %s/%u\n", quad(r.src).c_str(), r.srcLen);
    else if (shape == "exact")
      std::printf("      %s . %s . %s . %u . %u%s\n", quad(r.src).c_str(),
                  quad(r.dst).c_str(), r.proto == 6 ? "tcp" : "udp", r.sportLo,
                  r.dportLo, sep);
    else
      std::printf("      %s/%u%s\n", quad(r.src).c_str(), r.srcLen, sep);
  }
  if (format == "iptables")
    std::printf("COMMIT\n");
  else if (format == "nft") {
    std::printf("    }\n  }\n  chain input {\n    type filter hook input "
                "priority filter; policy accept;\n");
    if (shape == "exact")
      std::printf("    ip saddr . ip daddr . meta l4proto . th sport . "
                  "th dport @s counter drop\n");
    else
      std::printf("    ip saddr @s counter drop\n");
    std::printf("  }\n}\n");
  }
  return 0;
}
