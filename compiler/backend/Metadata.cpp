//===- compiler/backend/Metadata.cpp - rules as iptables -vxnL shows them -===//
//
/// \file
/// Renders each rule's listing columns (target, prot, opt, in, out, source,
/// destination, match text) the way iptables 1.8 prints them with -n, so the
/// runtime can show counters without knowing iptables syntax. The records
/// are the object contract's (runtime/contract/Object.h).
//===----------------------------------------------------------------------===//
#include "compiler/backend/Backend.h"

#include "runtime/contract/Object.h"

#include <algorithm>
#include <sstream>

namespace r2x::backend {
namespace {

using ir::Match;

std::string addrColumn(const Match *m, bool v6) {
  if (!m)
    return v6 ? "::/0" : "0.0.0.0/0";
  std::string s = m->negated ? "!" : "";
  if (v6) {
    bool host = std::all_of(m->mask6.begin(), m->mask6.end(),
                            [](uint8_t b) { return b == 0xff; });
    return s + (host ? ir::formatAddr6(m->net6) : ir::formatNet6(m->net6, m->mask6));
  }
  if (m->mask == 0xffffffffu)
    return s + ir::formatAddr(m->net);
  return s + ir::formatNet(m->net, m->mask);
}

const Match *find(const ir::Rule &r, Match::Kind k) {
  for (const Match &m : r.matches)
    if (m.kind == k)
      return &m;
  return nullptr;
}

} // namespace

std::string metadataText(const ir::Program &p) {
  namespace meta = contract::meta;
  std::ostringstream os;
  os << meta::header();
  for (size_t i = 0; i < p.ifacePatterns.size(); ++i)
    os << meta::format(meta::Iface, {std::to_string(i), p.ifacePatterns[i]});
  for (const ir::Chain &c : p.chains) {
    bool v6 = c.family == ir::Family::V6;
    // ip6tables' tables are other tables: "ip6 filter" beside "filter".
    std::string table = std::string(v6 ? "ip6 " : "") + ir::tableName(c.table);
    if (c.user)
      os << meta::format(meta::Chain, {table, c.name, meta::None, meta::None});
    else
      os << meta::format(meta::Chain, {table, c.name, ir::verdictName(c.policy),
                                       std::to_string(c.policyCounter)});
    for (const ir::Rule &r : c.rules) {
      const Match *proto = find(r, Match::Kind::Protocol);
      const Match *iif = find(r, Match::Kind::InIface);
      const Match *frag = find(r, Match::Kind::Fragment);
      std::string opt = frag ? (frag->negated ? "!f" : "-f") : "--";
      std::string prot = proto && (proto->proto != 0 || !v6)
                             ? (proto->negated ? "!" : "") +
                                     std::to_string(proto->proto)
                               : "0";
      // The match text iptables prints after the destination, in rule order,
      // as the frontend rendered it; comments last.
      std::string extra;
      for (const Match &m : r.matches)
        if (!m.listing.empty())
          extra += (extra.empty() ? "" : " ") + m.listing;
      for (const std::string &c : r.comments)
        extra += (extra.empty() ? "" : " ") + ("/* " + c + " */");
      std::string target;
      switch (r.verdict) {
      case ir::Verdict::Continue:
        break;
      case ir::Verdict::Jump:
      case ir::Verdict::Goto:
        target = r.jumpTarget;
        break;
      default:
        target = ir::verdictName(r.verdict);
      }
      if (r.verdict == ir::Verdict::Dnat)
        extra += (extra.empty() ? "" : " ") + ir::formatNatTarget(r.nat);
      // iptables -L shows a goto as "[goto]" at the start of the match text.
      if (r.verdict == ir::Verdict::Goto)
        extra = extra.empty() ? "[goto]" : "[goto] " + extra;
      std::string in = iif ? (iif->negated ? "!" : "") + iif->iface : "*";
      os << meta::format(
          meta::Rule,
          {std::to_string(r.counter), table, c.name, target, prot, opt, in, "*",
           addrColumn(find(r, Match::Kind::Source), v6),
           addrColumn(find(r, Match::Kind::Destination), v6), extra});
    }
  }
  return os.str();
}

} // namespace r2x::backend
