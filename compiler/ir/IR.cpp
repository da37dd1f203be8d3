//===- compiler/ir/IR.cpp - rule IR bookkeeping
//----------------------------===//
//
/// \file
/// Chain lookup, interface-pattern bits and counter-slot assignment.
//===----------------------------------------------------------------------===//
#include "compiler/ir/IR.h"

#include <algorithm>
#include <arpa/inet.h>

namespace r2x::ir {

const char *tableName(Table t) {
  switch (t) {
  case Table::Raw:
    return "raw";
  case Table::Mangle:
    return "mangle";
  case Table::Nat:
    return "nat";
  case Table::Filter:
    return "filter";
  }
  return "?";
}

const char *hookChainName(Hook h) {
  switch (h) {
  case Hook::Prerouting:
    return "PREROUTING";
  case Hook::Input:
    return "INPUT";
  case Hook::Forward:
    return "FORWARD";
  }
  return "?";
}

const char *setTypeName(IpSet::Type t) {
  switch (t) {
  case IpSet::Type::HashIp:
    return "hash:ip";
  case IpSet::Type::HashNet:
    return "hash:net";
  case IpSet::Type::HashIpPort:
    return "hash:ip,port";
  case IpSet::Type::HashNetPort:
    return "hash:net,port";
  case IpSet::Type::BitmapPort:
    return "bitmap:port";
  case IpSet::Type::ListSet:
    return "list:set";
  }
  return "?";
}

const IpSet *Program::findSet(const std::string &name) const {
  for (const IpSet &s : sets)
    if (s.name == name)
      return &s;
  return nullptr;
}

const char *verdictName(Verdict v) {
  switch (v) {
  case Verdict::Accept:
    return "ACCEPT";
  case Verdict::Drop:
    return "DROP";
  case Verdict::Continue:
    return "CONTINUE";
  case Verdict::Jump:
    return "JUMP";
  case Verdict::Goto:
    return "GOTO";
  case Verdict::Return:
    return "RETURN";
  case Verdict::Dnat:
    return "DNAT";
  case Verdict::Handover:
    return "HANDOVER";
  case Verdict::Reject:
    return "REJECT";
  case Verdict::Log:
    return "LOG";
  }
  return "?";
}

Chain &Program::chain(Family f, Table t, Hook h) {
  for (Chain &c : chains)
    if (!c.user && c.family == f && c.table == t && c.hook == h)
      return c;
  Chain c;
  c.family = f;
  c.table = t;
  c.hook = h;
  c.name = hookChainName(h);
  chains.push_back(std::move(c));
  return chains.back();
}

Chain *Program::userChain(Family f, Table t, const std::string &name) {
  for (Chain &c : chains)
    if (c.user && c.family == f && c.table == t && c.name == name)
      return &c;
  return nullptr;
}

const Chain *Program::userChain(Family f, Table t,
                                const std::string &name) const {
  return const_cast<Program *>(this)->userChain(f, t, name);
}

bool Program::anyMatch(const std::function<bool(const Match &)> &pred) const {
  for (const Chain &c : chains)
    for (const Rule &r : c.rules)
      for (const Match &m : r.matches)
        if (pred(m))
          return true;
  return false;
}

bool Program::usesCtState() const {
  return anyMatch([](const Match &m) { return m.as<Match::CtState>(); });
}

bool Program::usesIface(bool out) const {
  return anyMatch([out](const Match &m) {
    const auto *i = m.as<Match::Iface>();
    return i && i->out == out;
  });
}

bool Program::logOnly(const Chain &c) const {
  for (const Rule &r : c.rules)
    switch (r.verdict) {
    case Verdict::Log:
    case Verdict::Return:
    case Verdict::Continue:
      break;
    case Verdict::Jump: {
      const Chain *callee = userChain(c.family, c.table, r.jumpTarget);
      if (!callee || !logOnly(*callee))
        return false;
      break;
    }
    default:
      return false;
    }
  return true;
}

const Match::Limit *Program::sideLimit(const Chain &c, const Rule &r) const {
  if (r.matches.empty())
    return nullptr;
  const auto *l = r.matches.back().as<Match::Limit>();
  if (!l)
    return nullptr;
  switch (r.verdict) {
  case Verdict::Log:
  case Verdict::Continue:
    return l;
  case Verdict::Return:
    return c.user && logOnly(c) ? l : nullptr;
  case Verdict::Jump: {
    const Chain *callee = userChain(c.family, c.table, r.jumpTarget);
    return callee && logOnly(*callee) ? l : nullptr;
  }
  default:
    return nullptr;
  }
}

bool Program::usesLocalTable() const {
  return anyMatch([](const Match &m) {
    const auto *a = m.as<Match::AddrType>();
    return a && (a->src || a->dst) && !a->limitIface;
  });
}

std::string formatAddrTypes(uint16_t mask) {
  std::string s;
  for (size_t i = 0; i < std::size(kAddrTypeNames); ++i)
    if (mask & (1u << i))
      s += (s.empty() ? "" : ",") + std::string(kAddrTypeNames[i]);
  return s;
}

std::string formatCtState(uint8_t mask) {
  static const char *const names[] = {
      "INVALID", "ESTABLISHED", "RELATED", "NEW", "UNTRACKED", "SNAT", "DNAT"};
  std::string s;
  for (unsigned i = 0; i < 7; ++i)
    if (mask & (1u << i))
      s += (s.empty() ? "" : ",") + std::string(names[i]);
  return s;
}

bool Program::hasFamily(Family f) const {
  return std::any_of(chains.begin(), chains.end(),
                     [f](const Chain &c) { return c.family == f; });
}

const char *familyName(Family f) { return f == Family::V4 ? "ip" : "ip6"; }

std::string formatAddr6(const std::array<uint8_t, 16> &a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

std::string formatNet6(const std::array<uint8_t, 16> &net,
                       const std::array<uint8_t, 16> &mask) {
  int len = 0;
  bool contiguous = true, seenZero = false;
  for (uint8_t byte : mask)
    for (int bit = 7; bit >= 0; --bit) {
      bool one = (byte >> bit) & 1;
      if (one && seenZero)
        contiguous = false;
      if (one)
        ++len;
      else
        seenZero = true;
    }
  if (contiguous)
    return formatAddr6(net) + "/" + std::to_string(len);
  return formatAddr6(net) + "/" + formatAddr6(mask);
}

int Program::ifaceBit(const std::string &pattern) {
  for (size_t i = 0; i < ifacePatterns.size(); ++i)
    if (ifacePatterns[i] == pattern)
      return static_cast<int>(i);
  if (ifacePatterns.size() >= 64)
    return -1;
  ifacePatterns.push_back(pattern);
  return static_cast<int>(ifacePatterns.size() - 1);
}

bool Program::hasHook(Hook h) const {
  return std::any_of(chains.begin(), chains.end(),
                     [h](const Chain &c) { return !c.user && c.hook == h; });
}

bool Program::hasNat(Family f) const {
  // In hand-over mode the kernel owns every translation (DNAT is handed
  // over), so XDP keeps no NAT table of its own.
  if (mode == Mode::Handover)
    return false;
  return std::any_of(chains.begin(), chains.end(), [f](const Chain &c) {
    return c.family == f && c.table == Table::Nat && !c.rules.empty();
  });
}

void Program::finalize() {
  // The filter table has both ingress chains; iptables -L shows them both,
  // and the routing decision needs to know what FORWARD does.
  for (Family f : {Family::V4, Family::V6}) {
    bool filter =
        std::any_of(chains.begin(), chains.end(), [f](const Chain &c) {
          return c.family == f && c.table == Table::Filter;
        });
    if (filter) {
      chain(f, Table::Filter, Hook::Input);
      chain(f, Table::Filter, Hook::Forward);
    }
  }
  // Tables in traversal order (raw, mangle, nat, filter), built-in chains of a
  // table by hook, then its user chains.
  auto order = [](const Chain &c) {
    return static_cast<int>(c.family) * 256 + static_cast<int>(c.table) * 16 +
           (c.user ? 8 : static_cast<int>(c.hook));
  };
  std::stable_sort(
      chains.begin(), chains.end(),
      [&](const Chain &a, const Chain &b) { return order(a) < order(b); });
  unsigned slot = 0;
  for (Chain &c : chains)
    for (Rule &r : c.rules)
      r.counter = slot++;
  for (Chain &c : chains)
    if (!c.user)
      c.policyCounter = slot++;
  if (hasLog())
    logLostCounter = slot++;
  numCounters = slot;
}

bool Program::hasLog() const {
  return std::any_of(chains.begin(), chains.end(), [](const Chain &c) {
    return std::any_of(c.rules.begin(), c.rules.end(),
                       [](const Rule &r) { return r.verdict == Verdict::Log; });
  });
}

std::string formatLogTarget(const LogTarget &t) {
  std::string s = "LOG flags " + std::to_string(t.flags) + " level " +
                  std::to_string(t.level);
  if (!t.prefix.empty())
    s += " prefix \"" + t.prefix + "\"";
  return s;
}

std::string formatAddr(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) +
         "." + std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::string formatNet(uint32_t net, uint32_t mask) {
  // Contiguous mask: ones followed by zeros.
  uint32_t inv = ~mask;
  if ((inv & (inv + 1)) == 0) {
    int len = 0;
    for (uint32_t m = mask; m & 0x80000000u; m <<= 1)
      ++len;
    return formatAddr(net) + "/" + std::to_string(len);
  }
  return formatAddr(net) + "/" + formatAddr(mask);
}

std::string formatNatTarget(const NatTarget &t) {
  std::string s = "to:" + (t.v6 ? (t.portLo ? "[" + formatAddr6(t.addr6) + "]"
                                            : formatAddr6(t.addr6))
                                : formatAddr(t.addr));
  if (t.portLo != 0) {
    s += ":" + std::to_string(t.portLo);
    if (t.portHi != t.portLo)
      s += "-" + std::to_string(t.portHi);
  }
  if (t.random)
    s += " random";
  if (t.persistent)
    s += " persistent";
  return s;
}

} // namespace r2x::ir
