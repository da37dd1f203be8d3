//===- compiler/backend/Metadata.cpp - the rules as iptables -vxnL shows them ===//
//
/// \file
/// Renders each rule's listing columns (target, prot, opt, in, out, source,
/// destination, match text) the way iptables 1.8 prints them with -n, so the
/// runtime can show counters without knowing iptables syntax. The format is
/// documented in runtime/Meta.h.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Backend.h"

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
  std::ostringstream os;
  os << "rule2xdp-meta\t1\n";
  for (size_t i = 0; i < p.ifacePatterns.size(); ++i)
    os << "iface\t" << i << "\t" << p.ifacePatterns[i] << "\n";
  for (const ir::Chain &c : p.chains) {
    bool v6 = c.family == ir::Family::V6;
    // ip6tables' tables are other tables: "ip6 filter" beside "filter".
    std::string table = std::string(v6 ? "ip6 " : "") + ir::tableName(c.table);
    os << "chain\t" << table << "\t" << c.name << "\t";
    if (c.user)
      os << "-\t-\n";
    else
      os << ir::verdictName(c.policy) << "\t" << c.policyCounter << "\n";
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
      os << "rule\t" << r.counter << "\t" << table << "\t"
         << c.name << "\t" << target << "\t" << prot << "\t" << opt << "\t" << in
         << "\t*\t" << addrColumn(find(r, Match::Kind::Source), v6) << "\t"
         << addrColumn(find(r, Match::Kind::Destination), v6) << "\t" << extra
         << "\n";
    }
  }
  return os.str();
}

} // namespace r2x::backend
