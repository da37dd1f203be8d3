//===- compiler/ir/Printer.cpp - the IR's text form (--emit=ir) -------------===//
//
/// \file
/// One line per chain, rule, match and verdict. The words are the IR's, not
/// iptables': lit tests pin what the frontend understood, so a reader sees
/// normalised values (masked networks, numeric protocols, port ranges).
//===----------------------------------------------------------------------===//
#include "compiler/ir/IR.h"

#include <cstdio>
#include <sstream>

namespace r2x::ir {
namespace {

std::string range(const PortRange &r) {
  std::string s = r.negated ? "not " : "";
  if (r.lo == r.hi)
    return s + std::to_string(r.lo);
  return s + std::to_string(r.lo) + ".." + std::to_string(r.hi);
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string printMatch(const Match &m, bool v6) {
  std::string neg = m.negated ? "not " : "";
  switch (m.kind) {
  case Match::Kind::Source:
    if (v6)
      return "ip6.saddr " + neg + "in " + formatNet6(m.net6, m.mask6);
    return "ip.saddr " + neg + "in " + formatNet(m.net, m.mask);
  case Match::Kind::Destination:
    if (v6)
      return "ip6.daddr " + neg + "in " + formatNet6(m.net6, m.mask6);
    return "ip.daddr " + neg + "in " + formatNet(m.net, m.mask);
  case Match::Kind::Protocol:
    if (v6)
      return "ip6.upper_protocol " + neg + "== " + std::to_string(m.proto);
    return "ip.protocol " + neg + "== " + std::to_string(m.proto);
  case Match::Kind::InIface:
    return "iif " + neg + "matches \"" + m.iface + "\" bit " +
           std::to_string(m.ifaceBit);
  case Match::Kind::Fragment:
    return "ip.fragment_offset " + std::string(m.negated ? "== 0" : "!= 0");
  case Match::Kind::TcpUdp: {
    std::string s = m.l4proto == 6 ? "tcp" : "udp";
    s += " header";
    if (m.sport)
      s += " sport " + range(*m.sport);
    if (m.dport)
      s += " dport " + range(*m.dport);
    if (m.tcpFlags)
      s += " flags & " + hex(m.tcpFlags->mask) +
           (m.tcpFlags->negated ? " != " : " == ") + hex(m.tcpFlags->comp);
    if (m.tcpOption)
      s += std::string(m.tcpOptionNegated ? " no" : "") + " option " +
           std::to_string(m.tcpOption);
    return s;
  }
  case Match::Kind::Icmp:
    if (m.icmpType == 255)
      return "icmp header " + neg + "any type";
    return "icmp header " + neg + "type " + std::to_string(m.icmpType) +
           " code " + std::to_string(m.icmpCodeLo) + ".." +
           std::to_string(m.icmpCodeHi);
  case Match::Kind::Multiport: {
    static const char *side[] = {"sport", "dport", "sport or dport"};
    std::string s = "ports header " + std::string(side[static_cast<int>(m.side)]) +
                    " " + neg + "in";
    // Appended piece by piece: `"," + std::string` trips GCC 12's
    // -Wrestrict false positive at -O3 (GCC bug 105329).
    for (size_t i = 0; i < m.ports.size(); ++i) {
      s += i ? "," : " ";
      s += range(m.ports[i]);
    }
    return s;
  }
  case Match::Kind::U32: {
    static const char *ops[] = {"&", "<<", ">>", "@"};
    std::string s = "u32 " + neg + "tests";
    for (size_t t = 0; t < m.u32.size(); ++t) {
      const U32Test &u = m.u32[t];
      s += (t ? " && " : " ") + hex(u.start);
      for (const auto &[op, n] : u.ops)
        s += std::string(ops[static_cast<int>(op)]) + hex(n);
      s += "=";
      for (size_t r = 0; r < u.ranges.size(); ++r) {
        s += r ? "," : "";
        s += hex(u.ranges[r].first);
        if (u.ranges[r].second != u.ranges[r].first) {
          s += ':';
          s += hex(u.ranges[r].second);
        }
      }
    }
    return s;
  }
  case Match::Kind::Field: {
    static const char *names[] = {"ip.tos", "ip.len", "ip.ttl", "ip.saddr",
                                  "ip.daddr", "eth.saddr", "eth.pkttype",
                                  "tcp.flags"};
    std::string s = names[static_cast<int>(m.field)];
    auto value = [&](uint64_t v) {
      if (m.field == Field::IpSaddr || m.field == Field::IpDaddr)
        return formatAddr(static_cast<uint32_t>(v));
      if (m.field == Field::EthSrc || m.field == Field::IpTos ||
          m.field == Field::TcpFlagsByte)
        return hex(v);
      return std::to_string(v);
    };
    bool fullMask = m.fieldMask == ~uint64_t(0) ||
                    (m.field == Field::IpSaddr && m.fieldMask == 0xffffffffu) ||
                    (m.field == Field::IpDaddr && m.fieldMask == 0xffffffffu) ||
                    (m.field == Field::EthSrc && m.fieldMask == 0xffffffffffffull) ||
                    (m.field == Field::IpTotLen && m.fieldMask == 0xffff) ||
                    ((m.field == Field::IpTtl || m.field == Field::PktType) &&
                     m.fieldMask == 0xff);
    if (!fullMask)
      s += " & " + hex(m.fieldMask);
    s += " " + neg + "in " + value(m.lo);
    if (m.hi != m.lo)
      s += ".." + value(m.hi);
    return s;
  }
  }
  return "?";
}

} // namespace

std::string print(const Program &p) {
  std::ostringstream os;
  os << "program counters=" << p.numCounters << "\n";
  for (size_t i = 0; i < p.ifacePatterns.size(); ++i)
    os << "iface bit " << i << " \"" << p.ifacePatterns[i] << "\"\n";
  for (const Chain &c : p.chains) {
    const char *fam = c.family == Family::V6 ? "ip6 " : "";
    if (c.user)
      os << "chain " << fam << tableName(c.table) << " " << c.name << " user\n";
    else
      os << "chain " << fam << tableName(c.table) << " " << c.name << " hook "
         << hookChainName(c.hook) << " policy " << verdictName(c.policy)
         << " counter " << c.policyCounter << "\n";
    for (const Rule &r : c.rules) {
      os << "  rule counter " << r.counter << "  # " << r.text << "\n";
      for (const Match &m : r.matches)
        os << "    match " << printMatch(m, c.family == Family::V6) << "\n";
      os << "    verdict " << verdictName(r.verdict);
      if (!r.jumpTarget.empty())
        os << " " << r.jumpTarget;
      if (r.verdict == Verdict::Dnat)
        os << " " << formatNatTarget(r.nat);
      os << "\n";
    }
  }
  return os.str();
}

} // namespace r2x::ir
