//===- test/diff/Generate.cpp - random rules and datagrams ----------------===//
#include "test/diff/Generate.h"

#include "test/packet/Frame.h"

#include <cstring>
#include <sstream>

namespace r2x::diff {

using r2x::test::Frame;
using r2x::test::ipv4;
using r2x::test::L4;

Rng::Rng(uint64_t seed, uint64_t stream) {
  // splitmix64 of (seed, stream): neighbouring streams are unrelated.
  uint64_t z = seed * 0x9e3779b97f4a7c15ull + stream + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  rng_.seed(z ^ (z >> 31));
}

//===-- rules -------------------------------------------------------------===//

namespace {

// Addresses and prefixes around the test frames' addresses, in every
// notation the grammar has (/LEN, /MASK, non-contiguous masks, host bits).
const std::vector<std::string> Addresses = {
    "10.1.0.1",        "10.1.0.2",        "10.1.0.7",
    "10.1.0.255",      "10.1.1.1",        "10.1.1.2",
    "10.1.1.9",        "192.168.5.5",     "198.51.100.7",
    "10.1.0.0/24",     "10.1.1.0/24",     "10.1.0.0/16",
    "10.0.0.0/8",      "192.168.0.0/16",  "10.1.0.4/30",
    "10.1.0.0/29",     "10.1.0.6/31",     "10.1.1.0/25",
    "10.1.0.128/25",   "10.1.0.7/24",     "10.1.0.7/32",
    "0.0.0.0/0",       "10.1.0.0/255.255.255.0",
    "10.1.0.0/255.255.0.255", "10.0.0.1/255.0.0.255",
    "192.168.5.5/255.255.255.255", "198.51.100.0/24"};

// Ports and ranges that overlap the frames' ports; 2000:1000 matches
// nothing (and its negation everything), as in iptables.
const std::vector<std::string> PortSpecs = {
    "22",        "53",     "80",     "1000",   "1234",   "2000",
    "65535",     "0",      "1000:2000", "1:1023", ":1023", "1024:",
    "80:80",     "2000:1000", "1233:1235", "0:65535", "53:80"};

const std::vector<std::string> Ifaces = {"b0", "b+", "lo", "x+", "b1"};

void addNegatable(Rng &r, std::vector<std::string> &group, unsigned percent,
                  const std::string &option, const std::string &value) {
  if (r.chance(percent))
    group.push_back("!");
  group.push_back(option);
  group.push_back(value);
}

bool isPortOption(const std::string &w) {
  return w == "--sport" || w == "--dport" || w == "--source-port" ||
         w == "--destination-port";
}

RuleSpec finish(RuleSpec rule) {
  const auto &w = rule.words;
  for (size_t i = 0; i < w.size(); ++i) {
    rule.text += (rule.text.empty() ? "" : " ") + w[i];
    rule.hasPorts = rule.hasPorts || isPortOption(w[i]);
    if (w[i] == "!" && i + 2 < w.size() && isPortOption(w[i + 1])) {
      const std::string &v = w[i + 2];
      size_t colon = v.find(':');
      if (colon != std::string::npos) {
        std::string lo = v.substr(0, colon), hi = v.substr(colon + 1);
        if ((lo.empty() || lo == "0") && (hi.empty() || hi == "65535"))
          rule.invertedFullPortRange = true;
      }
    }
  }
  return rule;
}

} // namespace

RuleSpec makeRule(Rng &r) {
  RuleSpec rule;
  std::vector<std::string> &w = rule.words;
  uint64_t which = r.below(10);
  if (which >= 7) {
    rule.table = "raw";
    w = {"-t", "raw", "-A", "PREROUTING"};
  } else {
    rule.table = "filter";
    std::string chain = which < 4 ? "INPUT" : "FORWARD";
    if (r.chance(30))
      w = {"-t", "filter", "-A", chain};
    else
      w = {"-A", chain};
  }

  std::vector<std::vector<std::string>> groups;
  if (r.chance(45)) {
    std::string a = r.pick(Addresses);
    std::vector<std::string> g;
    addNegatable(r, g, a == "0.0.0.0/0" ? 0 : 30, "-s", a);
    groups.push_back(g);
  }
  if (r.chance(45)) {
    std::string a = r.pick(Addresses);
    std::vector<std::string> g;
    addNegatable(r, g, a == "0.0.0.0/0" ? 0 : 30, "-d", a);
    groups.push_back(g);
  }
  if (r.chance(30)) {
    std::vector<std::string> g;
    addNegatable(r, g, 35, "-i", r.pick(Ifaces));
    groups.push_back(g);
  }
  if (r.chance(70)) {
    std::string p = r.pick<std::string>(
        {"tcp", "udp", "tcp", "udp", "icmp", "all", "6", "17", "1", "47",
         "0", "50"});
    bool canNegate = p != "all" && p != "0";
    bool negated = canNegate && r.chance(25);
    std::vector<std::string> g;
    if (negated)
      g.push_back("!");
    g.insert(g.end(), {"-p", p});
    bool tcpudp = p == "tcp" || p == "udp" || p == "6" || p == "17";
    if (tcpudp && !negated) {
      if (r.chance(50))
        addNegatable(r, g, 25, r.chance(10) ? "--source-port" : "--sport",
                     r.pick(PortSpecs));
      if (r.chance(60))
        addNegatable(r, g, 25,
                     r.chance(10) ? "--destination-port" : "--dport",
                     r.pick(PortSpecs));
    }
    groups.push_back(g);
  }
  // iptables takes the options in any order (ports after their -p).
  for (size_t i = groups.size(); i > 1; --i)
    std::swap(groups[i - 1], groups[r.below(i)]);
  for (const auto &g : groups)
    w.insert(w.end(), g.begin(), g.end());

  uint64_t target = r.below(10);
  if (target < 4)
    w.insert(w.end(), {"-j", "DROP"});
  else if (target < 7)
    w.insert(w.end(), {"-j", "ACCEPT"});

  return finish(rule);
}

RuleSpec ruleFromText(const std::string &text) {
  RuleSpec rule;
  std::istringstream in(text);
  for (std::string word; in >> word;)
    rule.words.push_back(word);
  rule.table = "filter";
  for (size_t i = 0; i + 1 < rule.words.size(); ++i)
    if (rule.words[i] == "-t" || rule.words[i] == "--table")
      rule.table = rule.words[i + 1];
  return finish(rule);
}

//===-- datagrams ---------------------------------------------------------===//

namespace {

struct Dst {
  const char *addr;
  bool local;
};

const std::vector<uint16_t> Ports = {0,    22,   53,   80,   999,  1000,
                                     1023, 1024, 1233, 1234, 1235, 2000,
                                     2001, 40000, 65535};

std::string ipStr(uint32_t a) { return r2x::test::ipv4Str(a); }

} // namespace

Datagram makeDatagram(Rng &r, const Topology &topo, uint16_t ipId,
                      DestinationSet dsts) {
  Datagram d;
  d.in = r.chance(25) ? Ingress::FromC : Ingress::FromA;
  const bool fromA = d.in == Ingress::FromA;

  std::vector<const char *> srcs =
      fromA ? std::vector<const char *>{"10.1.0.1", "10.1.0.7", "192.168.5.5"}
            : std::vector<const char *>{"10.1.1.2", "10.1.1.9", "192.168.5.5"};
  // Weighted by repetition. 198.51.100.7 takes B's default route (from C:
  // back out of the interface it came in on, so B also sends a redirect).
  std::vector<Dst> targets =
      fromA ? std::vector<Dst>{{"10.1.0.2", true},    {"10.1.0.2", true},
                               {"10.1.1.1", true},    {"10.1.0.255", true},
                               {"10.1.1.255", true},  {"10.1.1.2", false},
                               {"10.1.1.2", false},   {"10.1.1.2", false},
                               {"198.51.100.7", false}}
            : std::vector<Dst>{{"10.1.1.1", true},    {"10.1.1.1", true},
                               {"10.1.0.2", true},    {"10.1.1.255", true},
                               {"10.1.0.255", true},  {"10.1.0.1", false},
                               {"10.1.0.1", false},   {"10.1.0.1", false},
                               {"198.51.100.7", false}};
  if (dsts == DestinationSet::Wide)
    targets.insert(targets.end(), {{"255.255.255.255", true},
                                   {"224.0.0.1", true},
                                   {"127.0.0.1", true},
                                   {"0.0.0.0", true}});
  const Dst &target = r.pick(targets);
  d.local = target.local;

  const char *src = r.pick(srcs);
  const uint64_t kind = r.below(100);
  uint16_t sport = r.pick(Ports), dport = r.pick(Ports);
  Frame f;
  const char *name;
  if (kind < 35) {
    f = Frame::udp(src, target.addr, sport, dport);
    name = "udp";
  } else if (kind < 65) {
    f = Frame::tcp(src, target.addr, sport, dport);
    name = "tcp";
  } else if (kind < 85) {
    f = Frame::icmp(src, target.addr);
    name = "icmp";
  } else {
    f = Frame::raw(src, target.addr, 47);
    name = "gre";
  }
  const bool ports = f.l4 == L4::Udp || f.l4 == L4::Tcp;
  std::memcpy(f.dmac, topo.routerMac(d.in).data(), 6);
  std::memcpy(f.smac, topo.senderMac(d.in).data(), 6);
  f.id = ipId;
  f.dst = ipv4(target.addr);
  d.dst = f.dst;

  const bool fragment = r.chance(20);
  f.payloadLen = fragment ? 40 + r.below(81)
                          : (f.l4 == L4::Raw ? 4 : 0) + r.below(45);
  if (!fragment && !d.local && r.chance(12))
    f.ttl = 1; // ip_forward() answers time exceeded before FORWARD
  else
    f.ttl = r.pick<uint8_t>({64, 64, 64, 64, 2, 255, 1});
  if (r.chance(15))
    f.tos = r.pick<uint8_t>({0x10, 0x08, 0x02, 0xb8, 0x03});
  if (r.chance(20)) {
    // IHL 6..8: NOP options, sometimes ended by EOL.
    std::vector<uint8_t> opt(4 * (1 + r.below(3)), 0x01);
    if (r.chance(30))
      opt.back() = 0x00;
    f.options = opt;
  }
  if (!fragment && r.chance(15))
    f.df = true;

  char head[160];
  std::snprintf(head, sizeof head, "from %s: %s %s%s%s > %s%s%s ttl %u",
                fromA ? "A on b0" : "C on b1", name, ipStr(f.src).c_str(),
                ports ? ":" : "", ports ? std::to_string(sport).c_str() : "",
                target.addr, ports ? ":" : "",
                ports ? std::to_string(dport).c_str() : "", unsigned(f.ttl));
  d.summary = head;
  if (f.tos)
    d.summary += " tos " + std::to_string(f.tos);
  if (!f.options.empty())
    d.summary += " ihl " + std::to_string(f.ipHeaderLen() / 4);
  if (f.df)
    d.summary += " df";

  if (!fragment) {
    d.frames.push_back(f.build());
    d.summary += " len " + std::to_string(f.ipTotLen());
    return d;
  }

  // A whole fragmented datagram: the first fragment carries 24 or 32 bytes
  // of L4 (so the TCP/UDP header is whole and no fragment has offset 1),
  // then one or two more.
  const std::vector<uint8_t> l4 = f.l4Bytes();
  const size_t total = l4.size();
  std::vector<size_t> cuts = {0, size_t(r.pick({24, 32}))};
  if (total - cuts[1] > 24 && r.chance(40))
    cuts.push_back(cuts[1] + 8 * (1 + r.below((total - cuts[1] - 8) / 8)));
  cuts.push_back(total);
  d.summary += " fragments";
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    Frame g = f;
    g.l4 = L4::Raw;
    g.payloadLen = cuts[i + 1] - cuts[i];
    g.fragOffset = uint16_t(cuts[i] / 8);
    g.mf = i + 2 < cuts.size();
    if (i > 0)
      g.options.clear(); // NOP is not copied into later fragments
    std::vector<uint8_t> bytes = g.build();
    std::memcpy(&bytes[14 + g.ipHeaderLen()], &l4[cuts[i]], g.payloadLen);
    d.frames.push_back(std::move(bytes));
    d.summary += " " + std::to_string(cuts[i]) + "+" +
                 std::to_string(g.payloadLen) + (g.mf ? "(MF)" : "");
  }
  return d;
}

} // namespace r2x::diff
