//===- compiler/backend/Metadata.cpp - rules as iptables -vxnL shows them -===//
//
/// \file
/// Renders each rule's listing columns (target, prot, opt, in, out, source,
/// destination, match text) the way iptables 1.8 prints them with -n, so the
/// runtime can show counters without knowing iptables syntax; gives every
/// counter slot its stable key (contract::meta::RuleKeys, from those
/// columns) and lists the DNAT destinations. The records are the object
/// contract's (runtime/contract/Object.h).
//===----------------------------------------------------------------------===//
#include "compiler/backend/Backend.h"
#include "compiler/backend/Sets.h"

#include "runtime/contract/Object.h"

#include <algorithm>
#include <set>
#include <sstream>

namespace r2x::backend {
namespace {

using ir::Match;

std::string addrColumn(const Match *m, bool v6) {
  if (!m)
    return v6 ? "::/0" : "0.0.0.0/0";
  const Match::Address &a = *m->as<Match::Address>();
  std::string s = m->negated ? "!" : "";
  if (v6) {
    bool host = std::all_of(a.mask6.begin(), a.mask6.end(),
                            [](uint8_t b) { return b == 0xff; });
    return s +
           (host ? ir::formatAddr6(a.net6) : ir::formatNet6(a.net6, a.mask6));
  }
  if (a.mask == 0xffffffffu)
    return s + ir::formatAddr(a.net);
  return s + ir::formatNet(a.net, a.mask);
}

/// Where each match of a rule shows in iptables' listing: the
/// ip_packet_match() kinds have columns of their own (the first of each
/// kind), the x_tables matches print their text after the destination, in
/// rule order, as the frontend rendered it.
struct Columns {
  const Match *src = nullptr, *dst = nullptr, *proto = nullptr, *iif = nullptr,
              *oif = nullptr, *frag = nullptr;
  std::string extra;

  explicit Columns(const ir::Rule &r) {
    auto column = [](const Match *&slot, const Match &m) {
      if (!slot)
        slot = &m;
    };
    for (const Match &m : r.matches) {
      auto text = [&] {
        if (!m.listing.empty())
          extra += (extra.empty() ? "" : " ") + m.listing;
      };
      std::visit(
          ir::Overloaded{
              [&](const Match::Address &a) {
                column(a.side == Match::Address::Side::Source ? src : dst, m);
              },
              [&](const Match::Protocol &) { column(proto, m); },
              [&](const Match::Iface &i) { column(i.out ? oif : iif, m); },
              [&](const Match::Fragment &) { column(frag, m); },
              [&](const Match::TcpUdp &) { text(); },
              [&](const Match::Icmp &) { text(); },
              [&](const Match::Multiport &) { text(); },
              [&](const Match::FieldRange &) { text(); },
              [&](const Match::U32 &) { text(); },
              [&](const Match::Unknown &) { text(); },
              [&](const Match::CtState &) { text(); },
              [&](const Match::AddrType &) { text(); },
              [&](const Match::Set &) { text(); },
              [&](const Match::Limit &) { text(); },
          },
          m.kind);
    }
  }
};

/// A rule's columns as `iptables -vxnL` prints them (the `rule` record's
/// fields after the table and chain).
struct RuleColumns {
  std::string target, prot, opt, in, out, source, destination, extra;
};

RuleColumns ruleColumns(const ir::Rule &r, bool v6) {
  Columns cols(r);
  const Match *proto = cols.proto, *iif = cols.iif, *frag = cols.frag;
  RuleColumns out;
  out.opt = frag ? (frag->negated ? "!f" : "-f") : "--";
  uint8_t protoNumber = proto ? proto->as<Match::Protocol>()->proto : 0;
  out.prot = proto && (protoNumber != 0 || !v6)
                 ? (proto->negated ? "!" : "") + std::to_string(protoNumber)
                 : "0";
  // Comments come last in the match text.
  out.extra = cols.extra;
  for (const std::string &c : r.comments)
    out.extra += (out.extra.empty() ? "" : " ") + ("/* " + c + " */");
  switch (r.verdict) {
  case ir::Verdict::Continue:
    break;
  case ir::Verdict::Jump:
  case ir::Verdict::Goto:
    out.target = r.jumpTarget;
    break;
  case ir::Verdict::Handover:
    out.target = r.target; // MARK, not the IR's HANDOVER
    break;
  default:
    out.target = ir::verdictName(r.verdict);
  }
  if (r.verdict == ir::Verdict::Dnat)
    out.extra += (out.extra.empty() ? "" : " ") + ir::formatNatTarget(r.nat);
  // iptables -L prints LOG's options and REJECT's type after the matches.
  if (r.verdict == ir::Verdict::Log || r.target == "LOG")
    out.extra += (out.extra.empty() ? "" : " ") + ir::formatLogTarget(r.log);
  if (!r.reject.name.empty())
    out.extra +=
        (out.extra.empty() ? "" : " ") + ("reject-with " + r.reject.name);
  // iptables -L shows a goto as "[goto]" at the start of the match text.
  if (r.verdict == ir::Verdict::Goto)
    out.extra = out.extra.empty() ? "[goto]" : "[goto] " + out.extra;
  auto iface = [](const Match *m) {
    return m ? (m->negated ? "!" : "") + m->as<Match::Iface>()->pattern : "*";
  };
  out.in = iface(iif);
  out.out = iface(cols.oif);
  out.source = addrColumn(cols.src, v6);
  out.destination = addrColumn(cols.dst, v6);
  return out;
}

} // namespace

std::string metadataText(const ir::Program &p) {
  namespace meta = contract::meta;
  std::ostringstream os;
  std::vector<SetLayout> sets = setLayouts(p);
  os << meta::header(p.hasLog()     ? meta::Version
                     : sets.empty() ? meta::VersionWithoutSets
                                    : meta::VersionWithoutLog);
  os << meta::format(meta::Mode,
                     {p.mode == ir::Mode::Handover ? meta::ModeHandover
                                                   : meta::ModeStandalone});
  if (!p.handAll.empty())
    os << meta::format(meta::HandAll, {p.handAll});
  for (const ir::SourcePart &part : p.source) {
    std::string fam = part.family == ir::Family::V6 ? "6" : "4";
    if (part.file) {
      os << meta::format(meta::Source, {std::string(meta::SourceFile),
                                        fam + "\t" + part.name});
      size_t at = 0;
      while (at < part.text.size()) {
        size_t end = part.text.find('\n', at);
        if (end == std::string::npos)
          end = part.text.size();
        os << meta::format(meta::Source, {std::string(meta::SourceLine),
                                          part.text.substr(at, end - at)});
        at = end + 1;
      }
    } else {
      std::string words = fam;
      for (const std::string &w : part.words)
        words += "\t" + meta::encodeWord(w);
      os << meta::format(meta::Source, {std::string(meta::SourceRule), words});
    }
  }
  for (const SetLayout &l : sets)
    os << meta::format(
        meta::Set, {l.map, std::to_string(l.offset), std::to_string(l.entries),
                    p.sets[l.set].name, createOptions(p.sets[l.set])});
  for (size_t i = 0; i < p.ifacePatterns.size(); ++i)
    os << meta::format(meta::Iface, {std::to_string(i), p.ifacePatterns[i]});
  meta::RuleKeys keys;
  auto key = [&os](unsigned slot, const std::string &k) {
    os << meta::format(meta::Key, {std::to_string(slot), k});
  };
  std::set<std::string> dnat;
  for (const ir::Chain &c : p.chains) {
    bool v6 = c.family == ir::Family::V6;
    // ip6tables' tables are other tables: "ip6 filter" beside "filter".
    std::string table = std::string(v6 ? "ip6 " : "") + ir::tableName(c.table);
    if (c.user) {
      os << meta::format(meta::Chain, {table, c.name, meta::None, meta::None});
    } else {
      os << meta::format(meta::Chain, {table, c.name, ir::verdictName(c.policy),
                                       std::to_string(c.policyCounter)});
      key(c.policyCounter, meta::RuleKeys::policy(table, c.name));
    }
    for (const ir::Rule &r : c.rules) {
      RuleColumns cols = ruleColumns(r, v6);
      os << meta::format(meta::Rule,
                         {std::to_string(r.counter), table, c.name, cols.target,
                          cols.prot, cols.opt, cols.in, cols.out, cols.source,
                          cols.destination, cols.extra});
      key(r.counter,
          keys.rule(table, c.name,
                    {cols.target, cols.prot, cols.opt, cols.in, cols.out,
                     cols.source, cols.destination, cols.extra}));
      if (r.verdict == ir::Verdict::Log)
        os << meta::format(meta::Log,
                           {std::to_string(r.counter), v6 ? "6" : "4",
                            std::to_string(r.log.level),
                            std::to_string(r.log.flags), r.log.prefix});
      if (r.verdict == ir::Verdict::Dnat)
        dnat.insert(v6 ? ir::formatAddr6(r.nat.addr6)
                       : ir::formatAddr(r.nat.addr));
    }
  }
  for (const std::string &address : dnat)
    os << meta::format(meta::Dnat, {address});
  if (p.hasLog()) {
    os << meta::format(meta::LogLost, {std::to_string(p.logLostCounter)});
    key(p.logLostCounter, meta::RuleKeys::logLost());
  }
  return os.str();
}

} // namespace r2x::backend
