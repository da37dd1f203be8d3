//===- compiler/ir/Printer.cpp - the IR's text form (--emit=ir) -------------===//
//
/// \file
/// One line per chain, rule, match and verdict. The words are the IR's, not
/// iptables': lit tests pin what the frontend understood, so a reader sees
/// normalised values (masked networks, numeric protocols, port ranges).
//===----------------------------------------------------------------------===//
#include "compiler/ir/IR.h"

#include <sstream>

namespace r2x::ir {
namespace {

std::string range(const PortRange &r) {
  std::string s = r.negated ? "not " : "";
  if (r.lo == r.hi)
    return s + std::to_string(r.lo);
  return s + std::to_string(r.lo) + ".." + std::to_string(r.hi);
}

std::string printMatch(const Match &m) {
  std::string neg = m.negated ? "not " : "";
  switch (m.kind) {
  case Match::Kind::Source:
    return "ip.saddr " + neg + "in " + formatNet(m.net, m.mask);
  case Match::Kind::Destination:
    return "ip.daddr " + neg + "in " + formatNet(m.net, m.mask);
  case Match::Kind::Protocol:
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
    if (c.user)
      os << "chain " << tableName(c.table) << " " << c.name << " user\n";
    else
      os << "chain " << tableName(c.table) << " " << c.name << " hook "
         << hookChainName(c.hook) << " policy " << verdictName(c.policy)
         << " counter " << c.policyCounter << "\n";
    for (const Rule &r : c.rules) {
      os << "  rule counter " << r.counter << "  # " << r.text << "\n";
      for (const Match &m : r.matches)
        os << "    match " << printMatch(m) << "\n";
      os << "    verdict " << verdictName(r.verdict);
      if (!r.jumpTarget.empty())
        os << " " << r.jumpTarget;
      os << "\n";
    }
  }
  return os.str();
}

} // namespace r2x::ir
