//===- test/packet/Model.cpp - netfilter's meaning, for the tests -------===//
//
/// \file
/// The reference model. Each check names the kernel code it stands for, so a
/// disagreement with the compiled program can be traced to a line of
/// netfilter rather than to an opinion.
//===----------------------------------------------------------------------===//
#include "test/packet/Model.h"

#include "test/packet/Frame.h"

#include <sstream>
#include <stdexcept>

namespace r2x::test {

const char *actionName(uint32_t action) {
  switch (action) {
  case kAborted:
    return "XDP_ABORTED";
  case kDrop:
    return "XDP_DROP";
  case kPass:
    return "XDP_PASS";
  case kTx:
    return "XDP_TX";
  case kRedirect:
    return "XDP_REDIRECT";
  }
  return "XDP_?";
}

const char *resultName(RuleResult r) {
  switch (r) {
  case RuleResult::Match:
    return "match";
  case RuleResult::NoMatch:
    return "no match";
  case RuleResult::Hotdrop:
    return "hotdrop";
  }
  return "?";
}

namespace {

std::vector<std::string> split(const std::string &s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

unsigned long number(const std::string &s, unsigned long max) {
  size_t used = 0;
  unsigned long v = std::stoul(s, &used, 10);
  if (used != s.size() || v > max)
    throw std::invalid_argument("bad number: " + s);
  return v;
}

Rule::Addr parseAddr(const std::string &s) {
  Rule::Addr a;
  a.set = true;
  auto slash = s.find('/');
  a.net = ipv4(s.substr(0, slash));
  a.mask = 0xffffffffu;
  if (slash != std::string::npos) {
    std::string m = s.substr(slash + 1);
    if (m.find('.') != std::string::npos) {
      a.mask = ipv4(m);
    } else {
      unsigned len = unsigned(number(m, 32));
      a.mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
    }
  }
  a.net &= a.mask; // iptables normalises 10.1.0.7/24 to 10.1.0.0/24
  return a;
}

Rule::Ports parsePorts(const std::string &s) {
  Rule::Ports p;
  p.set = true;
  auto colon = s.find(':');
  p.lo = uint16_t(number(s.substr(0, colon), 65535));
  p.hi = colon == std::string::npos
             ? p.lo
             : uint16_t(number(s.substr(colon + 1), 65535));
  return p;
}

uint8_t parseProto(const std::string &s) {
  if (s == "tcp")
    return 6;
  if (s == "udp")
    return 17;
  if (s == "icmp")
    return 1;
  if (s == "all")
    return 0;
  return uint8_t(number(s, 255));
}

uint16_t be16(const std::vector<uint8_t> &v, size_t at) {
  return uint16_t(v[at] << 8 | v[at + 1]);
}
uint32_t be32(const std::vector<uint8_t> &v, size_t at) {
  return uint32_t(be16(v, at)) << 16 | be16(v, at + 2);
}

} // namespace

Rule parseRule(const std::string &text, bool needTarget) {
  Rule r;
  r.text = text;
  r.words = split(text);
  const auto &w = r.words;
  bool inv = false;
  for (size_t i = 0; i < w.size(); ++i) {
    const std::string &o = w[i];
    if (o == "!") {
      inv = true;
      continue;
    }
    if (o == "-6") {
      r.v6 = true;
      continue;
    }
    if (i + 1 >= w.size())
      throw std::invalid_argument("option without value: " + o);
    const std::string &v = w[++i];
    if (o == "-t") {
      r.table = v;
    } else if (o == "-A" || o == "-I") {
      if (!r.chain.empty())
        throw std::invalid_argument("two commands: " + text);
      r.command = o;
      r.chain = v;
      if (o == "-I" && i + 1 < w.size() && !w[i + 1].empty() &&
          w[i + 1].find_first_not_of("0123456789") == std::string::npos)
        r.insertAt = unsigned(number(w[++i], 1u << 20));
    } else if (o == "-j" || o == "-g") {
      if (!r.target.empty())
        throw std::invalid_argument("two targets: " + text);
      r.target = v;
      r.isGoto = o == "-g";
    } else if ((o == "-s" || o == "--source" || o == "-d" ||
                o == "--destination") &&
               r.v6) {
      throw std::invalid_argument("the model has no IPv6 addresses: " + text);
    } else if (o == "-s" || o == "--source") {
      r.src = parseAddr(v);
      r.src.inv = inv;
    } else if (o == "-d" || o == "--destination") {
      r.dst = parseAddr(v);
      r.dst.inv = inv;
    } else if (o == "-p" || o == "--protocol") {
      r.protoSet = true;
      r.protoInv = inv;
      r.proto = parseProto(v);
    } else if (o == "--sport" || o == "--source-port") {
      r.sport = parsePorts(v);
      r.sport.inv = inv;
    } else if (o == "--dport" || o == "--destination-port") {
      r.dport = parsePorts(v);
      r.dport.inv = inv;
    } else if (o == "-m" || o == "--match") {
      // iptables-save spells the implicit match out: `-p tcp -m tcp`.
      if (v != "tcp" && v != "udp" && v != "dscp")
        throw std::invalid_argument(
            "the model knows -m tcp, -m udp and -m dscp only");
    } else if (o == "--dscp") {
      r.dscp = {true, inv, uint8_t(number(v, 63))};
    } else if (o == "-i" || o == "--in-interface") {
      r.in = {true, inv, v};
    } else if (o == "-o" || o == "--out-interface") {
      r.out = {true, inv, v};
    } else {
      throw std::invalid_argument("the model does not know option " + o);
    }
    inv = false;
  }
  if (r.chain.empty() || (needTarget && r.target.empty()))
    throw std::invalid_argument("rule needs -A and -j: " + text);
  if ((r.sport.set || r.dport.set) &&
      (r.protoInv || (r.proto != 6 && r.proto != 17)))
    throw std::invalid_argument("ports need -p tcp or -p udp: " + text);
  // x_tables matches run in rule order and a tcp/udp hotdrop can come
  // before or after a dscp mismatch: the model keeps them apart.
  if (r.dscp.set && (r.sport.set || r.dport.set))
    throw std::invalid_argument("the model does not order dscp and ports: " +
                                text);
  return r;
}

bool ifacePatternMatches(const std::string &pattern, const std::string &name) {
  if (!pattern.empty() && pattern.back() == '+')
    return name.compare(0, pattern.size() - 1, pattern, 0,
                        pattern.size() - 1) == 0;
  return pattern == name;
}

namespace {

/// ip6_rcv_core(): version 6 and the payload inside the frame; a jumbogram
/// (payload length 0 before a hop-by-hop header) is the kernel's to judge.
/// `p` has the L2 fields and l3.
Parsed parseIpv6(const std::vector<uint8_t> &f, Parsed p) {
  auto ignore = [&](std::string why) {
    p.why = std::move(why);
    return p;
  };
  constexpr size_t kHeader = 40;
  if (f.size() < p.l3 + kHeader)
    return ignore("frame shorter than L2 + 40");
  if (f[p.l3] >> 4 != 6)
    return ignore("IP version is not 6");
  const uint16_t payload = be16(f, p.l3 + 4);
  const uint8_t next = f[p.l3 + 6];
  if (payload == 0 && next == 0)
    return ignore("IPv6 jumbogram");
  if (f.size() < p.l3 + kHeader + payload)
    return ignore("payload longer than the frame");
  if (payload > 0xffff - kHeader)
    throw std::logic_error(
        "test bug: the model counts IPv6 lengths in 16 bits");
  p.ihlBytes = kHeader;
  p.totLen = uint16_t(kHeader + payload);
  p.tos = uint8_t(be16(f, p.l3) >> 4); // ipv6_get_dsfield()
  p.ttl = f[p.l3 + 7];
  p.proto = next;
  // ipv6_ext_hdr(): hop-by-hop, routing, fragment, AH, no next header,
  // destination options.
  for (uint8_t ext : {0, 43, 44, 51, 59, 60})
    p.ext6 |= next == ext;
  p.ip.assign(f.begin() + long(p.l3),
              f.begin() + long(p.l3 + kHeader + payload));
  p.ipv6 = true;
  p.why = "an IPv6 packet";
  return p;
}

} // namespace

Parsed parseFrame(const std::vector<uint8_t> &f) {
  Parsed p;
  auto ignore = [&](std::string why) {
    p.ipv4 = false;
    p.why = std::move(why);
    return p;
  };
  if (f.size() < 14)
    return ignore("shorter than an Ethernet header");
  p.l2Group = (f[0] & 1) != 0;
  size_t at = 12;
  uint16_t type = be16(f, at);
  // Up to two tags (802.1Q or 802.1ad, in any order), as the contract says.
  for (int tag = 0; tag < 2 && (type == 0x8100 || type == 0x88a8); ++tag) {
    if (f.size() < at + 2 + 4)
      return ignore("VLAN tag cut short");
    uint16_t vid = be16(f, at + 2) & 0x0fff;
    (tag == 0 ? p.vidOuter : p.vidInner) = vid;
    at += 4;
    type = be16(f, at);
  }
  if (type == 0x86dd) {
    p.l3 = at + 2;
    return parseIpv6(f, p);
  }
  if (type != 0x0800)
    return ignore("EtherType is not IPv4 or IPv6");
  p.l3 = at + 2;
  // ip_rcv_core(): the checks after which the kernel would have dropped it.
  if (f.size() < p.l3 + 20)
    return ignore("frame shorter than L2 + 20");
  if (f[p.l3] >> 4 != 4)
    return ignore("IP version is not 4");
  p.ihlBytes = (f[p.l3] & 0xf) * 4u;
  if (p.ihlBytes < 20)
    return ignore("IHL < 5");
  if (f.size() < p.l3 + p.ihlBytes)
    return ignore("header longer than the frame");
  p.totLen = be16(f, p.l3 + 2);
  if (p.totLen < p.ihlBytes)
    return ignore("tot_len < IHL*4");
  if (f.size() < p.l3 + p.totLen)
    return ignore("tot_len longer than the frame");
  uint16_t frag = be16(f, p.l3 + 6);
  p.fragOff = frag & 0x1fff;
  p.mf = frag & 0x2000;
  p.df = frag & 0x4000;
  p.tos = f[p.l3 + 1];
  p.ttl = f[p.l3 + 8];
  p.proto = f[p.l3 + 9];
  p.src = be32(f, p.l3 + 12);
  p.dst = be32(f, p.l3 + 16);
  // pskb_trim_rcsum(): everything after tot_len is padding, invisible to L4.
  p.ip.assign(f.begin() + long(p.l3), f.begin() + long(p.l3 + p.totLen));
  p.ipv4 = true;
  return p;
}

RuleResult evalRule(const Rule &r, const Parsed &p,
                    const std::optional<std::string> &ifname,
                    const std::string *outname) {
  if (r.v6 != p.ipv6)
    throw std::logic_error("test bug: a rule judged a packet of the other "
                           "family: " +
                           r.text);
  if (p.ext6 && (r.protoSet || r.sport.set || r.dport.set))
    throw std::logic_error("test bug: the model does not walk IPv6 extension "
                           "headers: " +
                           r.text);
  // ip_packet_match(): NF_INVF(flag, mismatch) fails when mismatch ^ inverted.
  if (r.src.set && (((p.src & r.src.mask) == r.src.net) == r.src.inv))
    return RuleResult::NoMatch;
  if (r.dst.set && (((p.dst & r.dst.mask) == r.dst.net) == r.dst.inv))
    return RuleResult::NoMatch;
  if (r.in.set) {
    bool m = ifname && ifacePatternMatches(r.in.pattern, *ifname);
    if (m == r.in.inv)
      return RuleResult::NoMatch;
  }
  if (r.out.set) {
    if (!outname)
      throw std::logic_error("test bug: -o without an output device: " +
                             r.text);
    if (ifacePatternMatches(r.out.pattern, *outname) == r.out.inv)
      return RuleResult::NoMatch;
  }
  if (r.protoSet && r.proto != 0 && ((p.proto == r.proto) == r.protoInv))
    return RuleResult::NoMatch;

  // xt_dscp: dscp_mt() and dscp_mt6() compare the DS field's upper six bits
  // (parseRule keeps dscp and ports apart, so the order does not matter).
  if (r.dscp.set && (((p.tos >> 2) == r.dscp.value) == r.dscp.inv))
    return RuleResult::NoMatch;

  if (!r.sport.set && !r.dport.set)
    return RuleResult::Match;

  // xt_tcpudp: tcp_mt() / udp_mt().
  const bool tcp = r.proto == 6;
  if (p.fragOff != 0) {
    if (tcp && p.fragOff == 1)
      return RuleResult::Hotdrop; // "evil TCP offset=1 frag"
    return RuleResult::NoMatch;   // "Must not be a fragment"
  }
  const size_t need = tcp ? 20 : 8;
  if (p.ip.size() < p.ihlBytes + need)
    return RuleResult::Hotdrop; // skb_header_pointer() == NULL
  uint16_t sp = be16(p.ip, p.ihlBytes), dp = be16(p.ip, p.ihlBytes + 2);
  auto portMatch = [](const Rule::Ports &m, uint16_t port) {
    return (port >= m.lo && port <= m.hi) != m.inv;
  };
  if (!portMatch(r.sport, sp) || !portMatch(r.dport, dp))
    return RuleResult::NoMatch;
  return RuleResult::Match;
}

std::string describe(const Expected &e) {
  std::ostringstream s;
  s << actionName(e.action) << " counters {";
  bool first = true;
  for (auto &[slot, pb] : e.counters) {
    s << (first ? "" : ", ") << "slot " << slot << ": +" << pb.first
      << " pkts +" << pb.second << " bytes";
    first = false;
  }
  s << "}";
  return s.str();
}

Expected traverse(
    const r2x::runtime::Meta &meta, FilterChain cls, bool ipv6, uint16_t totLen,
    uint16_t fragOff,
    const std::function<RuleResult(const r2x::runtime::MetaRule &)> &eval) {
  Expected e;
  auto count = [&](int slot) {
    if (slot < 0)
      return;
    auto &c = e.counters[unsigned(slot)];
    c.first += 1;
    c.second += totLen;
  };
  // Netfilter's table order within a hook: raw, mangle, filter.
  const char *hook = cls == FilterChain::Input ? "INPUT" : "FORWARD";
  const std::pair<const char *, const char *> stages[] = {
      {"raw", "PREROUTING"},
      {"mangle", "PREROUTING"},
      {"mangle", hook},
      {"filter", hook}};
  for (auto [tableName, chainName] : stages) {
    // ip6tables' tables are others ("ip6 filter" in the metadata).
    const std::string table = (ipv6 ? "ip6 " : "") + std::string(tableName);
    const r2x::runtime::MetaChain *chain = nullptr;
    for (const auto &c : meta.chains)
      if (c.table == table && c.name == chainName)
        chain = &c;
    if (!chain)
      continue;
    std::string where = table + " " + chainName;
    // IPv6 without conntrack reaches INPUT fragment by fragment.
    if (!ipv6 && std::string(chainName) == "INPUT" && fragOff != 0) {
      e.trace += where + ": non-first fragment, left to reassembly; ";
      e.action = kPass;
      return e;
    }
    bool decided = false;
    for (const auto &rule : chain->rules) {
      RuleResult r = eval(rule);
      e.trace += where + " rule slot " + std::to_string(rule.slot) + ": " +
                 resultName(r) + "; ";
      if (r == RuleResult::Hotdrop) {
        e.action = kDrop;
        return e;
      }
      if (r == RuleResult::Match) {
        count(int(rule.slot));
        if (rule.target == "DROP") {
          e.action = kDrop;
          return e;
        }
        decided = true; // ACCEPT ends this table's traversal only
        break;
      }
    }
    if (!decided) {
      e.trace += where + " policy " + chain->policy + "; ";
      count(chain->slot);
      if (chain->policy == "DROP") {
        e.action = kDrop;
        return e;
      }
    }
  }
  e.action = kPass;
  return e;
}

} // namespace r2x::test
