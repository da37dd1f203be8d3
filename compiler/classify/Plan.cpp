//===- compiler/classify/Plan.cpp - flatten chains, choose segments -------===//
//
/// \file
/// Stages 1 and 2 of Classify.h: inlining user chains into flat position
/// lists, deciding which runs of positions become classified segments, and
/// the skeleton.
//===----------------------------------------------------------------------===//
#include "compiler/classify/Classify.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <variant>

namespace r2x::classify {

const char *modeName(Mode m) {
  switch (m) {
  case Mode::Never:
    return "never";
  case Mode::Auto:
    return "auto";
  case Mode::Always:
    return "always";
  }
  return "?";
}

std::optional<Mode> parseMode(std::string_view text) {
  for (Mode m : {Mode::Never, Mode::Auto, Mode::Always})
    if (text == modeName(m))
      return m;
  return std::nullopt;
}

//===-- 1. flatten --------------------------------------------------------===//

namespace {

/// Appends chain `c`'s rules to `out`, inside the copy guarded by position
/// `guard`. RETURN positions (and pseudo positions of -g copies) whose
/// target is the current copy's return point are collected in `returns`:
/// the caller knows that point once the copy is complete.
void flattenInto(const ir::Program &p, const ir::Chain &c, int guard,
                 std::vector<unsigned> &returns, FlatChain &out) {
  for (const ir::Rule &r : c.rules) {
    if (out.pos.size() >= kMaxPositions)
      throw std::length_error("inlining the user chains of " +
                              out.chain->name + " makes more than " +
                              std::to_string(kMaxPositions) + " rules");
    unsigned q = unsigned(out.pos.size());
    out.pos.push_back({&r, guard, 0, 0});
    if (r.verdict == ir::Verdict::Return) {
      returns.push_back(q);
      continue;
    }
    if (r.verdict != ir::Verdict::Jump && r.verdict != ir::Verdict::Goto)
      continue;
    const ir::Chain *callee = p.userChain(c.family, c.table, r.jumpTarget);
    if (!callee)
      throw std::logic_error("jump to unknown chain " + r.jumpTarget);
    if (r.verdict == ir::Verdict::Jump) {
      // -j: the callee's RETURN and its end come back here.
      std::vector<unsigned> mine;
      flattenInto(p, *callee, int(q), mine, out);
      unsigned end = unsigned(out.pos.size());
      for (unsigned f : mine)
        out.pos[f].target = end;
      out.pos[q].copyEnd = end;
    } else {
      // -g: the callee's RETURN and its end go where this chain returns.
      flattenInto(p, *callee, int(q), returns, out);
      returns.push_back(unsigned(out.pos.size()));
      out.pos.push_back({nullptr, int(q), 0, 0});
      out.pos[q].copyEnd = unsigned(out.pos.size());
    }
  }
}

} // namespace

FlatChain flatten(const ir::Program &p, const ir::Chain &c) {
  FlatChain out;
  out.chain = &c;
  std::vector<unsigned> returns;
  flattenInto(p, c, -1, returns, out);
  for (unsigned f : returns)
    out.pos[f].target = out.end(); // RETURN in a built-in chain: its policy
  return out;
}

//===-- 2. plan -----------------------------------------------------------===//

std::string unclassifiable(const ir::Rule &r, ir::Family family,
                           ir::Table table) {
  using M = ir::Match;
  if (family != ir::Family::V4)
    return "an ip6tables rule";
  if (table == ir::Table::Nat || r.verdict == ir::Verdict::Dnat)
    return "a nat rule";
  unsigned src = 0, dst = 0, proto = 0, iif = 0, frag = 0, l4 = 0, fields = 0;
  const M::Protocol *protocol = nullptr;
  bool protoNegated = false;
  std::string why;
  for (const M &m : r.matches)
    std::visit(
        ir::Overloaded{
            [&](const M::Address &a) {
              ++(a.side == M::Address::Side::Source ? src : dst);
            },
            [&](const M::Protocol &p) {
              ++proto;
              protocol = &p;
              protoNegated = m.negated;
            },
            [&](const M::InIface &) { ++iif; },
            [&](const M::Fragment &) { ++frag; },
            [&](const M::TcpUdp &t) {
              ++l4;
              if (t.option)
                why = "--tcp-option";
            },
            [&](const M::Icmp &) { ++l4; },
            [&](const M::Multiport &) { why = "-m multiport"; },
            [&](const M::FieldRange &f) {
              ++fields;
              if (!ir::fieldInfo(f.field).existsIn(family))
                why = "a field of another family";
              if (static_cast<unsigned>(f.field) >= contract::ClsMaxFields)
                why = "a field beyond the classifier's table";
            },
            [&](const M::U32 &) { why = "-m u32"; },
        },
        m.kind);
  if (!why.empty())
    return why;
  if (src > 1 || dst > 1 || proto > 1 || iif > 1 || frag > 1 || l4 > 1)
    return "two matches of one kind";
  if (fields > kMaxFieldTests)
    return "more than " + std::to_string(kMaxFieldTests) + " field tests";
  // A transport match reads the header of the protocol -p names; the tree
  // keys ports by the packet's protocol, so it needs that -p (iptables
  // requires it anyway).
  for (const M &m : r.matches) {
    uint8_t need = 0;
    if (const auto *t = m.as<M::TcpUdp>())
      need = t->proto;
    else if (m.as<M::Icmp>())
      need = IPPROTO_ICMP;
    if (need && (!protocol || protoNegated || protocol->proto != need))
      return "a transport match without its -p";
  }
  return {};
}

unsigned Segment::exitOf(unsigned x) const {
  auto it = std::find(exits.begin(), exits.end(), x);
  if (it == exits.end())
    throw std::logic_error("no exit to position " + std::to_string(x));
  return unsigned(it - exits.begin());
}

const Segment *ChainPlan::segmentAt(unsigned x) const {
  for (const Segment &s : segments)
    if (x >= s.begin && x < s.end)
      return &s;
  return nullptr;
}

const ChainPlan *Plan::of(const ir::Chain &c) const {
  for (const ChainPlan &cp : chains)
    if (cp.flat.chain == &c)
      return &cp;
  return nullptr;
}

namespace {

/// Cuts [begin, end) of classifiable positions into runs no inlined chain
/// straddles: a jump position whose copy reaches past the run's end ends
/// the run before it and is left to straight-line code; its copy starts a
/// run of its own. Returns the runs.
std::vector<std::pair<unsigned, unsigned>>
closedRuns(const FlatChain &f, unsigned begin, unsigned end) {
  std::vector<std::pair<unsigned, unsigned>> runs;
  unsigned start = begin;
  for (unsigned q = begin; q < end; ++q) {
    const Position &p = f.pos[q];
    bool jump = p.rule && (p.rule->verdict == ir::Verdict::Jump ||
                           p.rule->verdict == ir::Verdict::Goto);
    if (jump && p.copyEnd > end) {
      if (q > start)
        runs.push_back({start, q});
      start = q + 1;
    }
  }
  if (end > start)
    runs.push_back({start, end});
  return runs;
}

/// Every position control can reach from straight-line code (branches of
/// positions outside segments), for the segments' entry points.
void addTargets(const FlatChain &f, unsigned q, std::set<unsigned> &out) {
  const Position &p = f.pos[q];
  if (!p.rule) {
    out.insert(p.target);
    return;
  }
  out.insert(q + 1);
  switch (p.rule->verdict) {
  case ir::Verdict::Return:
    out.insert(p.target);
    break;
  case ir::Verdict::Jump:
  case ir::Verdict::Goto:
    out.insert(p.copyEnd);
    break;
  default:
    break;
  }
}

/// Where a classified position can send control: RETURN and the pseudo
/// position's target (jump rules continue into their copy, which is in the
/// segment).
std::optional<unsigned> jumpOf(const Position &p) {
  if (!p.rule || p.rule->verdict == ir::Verdict::Return)
    return p.target;
  return std::nullopt;
}

void planChain(const ir::Program &p, ChainPlan &cp, const Options &o,
               Plan &plan) {
  const FlatChain &f = cp.flat;
  const ir::Chain &c = *f.chain;
  std::vector<bool> ok(f.pos.size());
  for (unsigned q = 0; q < f.end(); ++q)
    ok[q] = !f.pos[q].rule ||
            unclassifiable(*f.pos[q].rule, c.family, c.table).empty();
  unsigned minRun = o.mode == Mode::Always ? 1 : std::max(1u, o.minRun);
  for (unsigned q = 0; q < f.end();) {
    if (!ok[q]) {
      ++q;
      continue;
    }
    unsigned e = q;
    while (e < f.end() && ok[e])
      ++e;
    for (auto [b, end] : closedRuns(f, q, e))
      if (end - b >= minRun) {
        Segment s;
        s.begin = b;
        s.end = end;
        cp.segments.push_back(std::move(s));
      }
    q = e;
  }
  if (cp.segments.empty())
    return;
  // Entries: the start, and any position inside reached from outside.
  std::set<unsigned> reached;
  for (unsigned q = 0; q < f.end(); ++q)
    if (!cp.segmentAt(q))
      addTargets(f, q, reached);
  // Exits: the end, and targets past it (a segment's exits are other code's
  // entries, so collect them first).
  for (Segment &s : cp.segments) {
    s.exits.push_back(s.end);
    for (unsigned q = s.begin; q < s.end; ++q)
      if (auto t = jumpOf(f.pos[q]); t && *t >= s.end &&
                                     std::find(s.exits.begin(), s.exits.end(),
                                               *t) == s.exits.end())
        s.exits.push_back(*t);
    reached.insert(s.exits.begin(), s.exits.end());
  }
  for (Segment &s : cp.segments) {
    s.entries.push_back(s.begin);
    for (unsigned x : reached)
      if (x > s.begin && x < s.end)
        s.entries.push_back(x);
    for (size_t k = 0; k < s.entries.size(); ++k)
      s.entryIds.push_back(plan.entryCount++);
    s.ruleBase = plan.ruleCount;
    plan.ruleCount += s.end - s.begin;
    for (unsigned q = s.begin; q < s.end; ++q)
      if (const ir::Rule *r = f.pos[q].rule)
        for (const ir::Match &m : r->matches)
          if (const auto *fr = m.as<ir::Match::FieldRange>())
            plan.fieldsUsed |= 1u << static_cast<unsigned>(fr->field);
  }
  (void)p;
}

} // namespace

Plan plan(const ir::Program &p, const Options &o) {
  Plan out;
  out.options = o;
  for (const ir::Chain &c : p.chains) {
    if (c.user)
      continue;
    ChainPlan cp;
    cp.flat = flatten(p, c);
    if (o.mode != Mode::Never)
      planChain(p, cp, o, out);
    out.chains.push_back(std::move(cp));
  }
  return out;
}

//===-- the skeleton ------------------------------------------------------===//

namespace {

/// A position as the code sees it: straight-line positions and segments are
/// the items, numbered in order; a position inside a segment is named by
/// the segment's item and the entry it is.
class ItemNames {
public:
  explicit ItemNames(const ChainPlan &cp) : cp_(cp) {
    unsigned item = 0;
    for (unsigned q = 0; q < cp.flat.end();) {
      if (const Segment *s = cp.segmentAt(q)) {
        segItem_[s->begin] = item++;
        q = s->end;
      } else {
        posItem_[q] = item++;
        ++q;
      }
    }
  }
  std::string operator()(unsigned x) const {
    if (x == cp_.flat.end())
      return "end";
    if (auto it = posItem_.find(x); it != posItem_.end())
      return std::to_string(it->second);
    const Segment *s = cp_.segmentAt(x);
    if (!s)
      throw std::logic_error("position outside the flat chain");
    auto e = std::find(s->entries.begin(), s->entries.end(), x);
    return std::to_string(segItem_.at(s->begin)) + "." +
           (e == s->entries.end() ? "?" : std::to_string(e - s->entries.begin()));
  }

private:
  const ChainPlan &cp_;
  std::map<unsigned, unsigned> posItem_, segItem_;
};

} // namespace

std::string skeleton(const ir::Program &p, const Plan &plan) {
  std::string out = "format " + std::to_string(contract::meta::ClassifierFormat) +
                    " mode " + modeName(plan.options.mode) + " minrun " +
                    std::to_string(plan.options.minRun) + " fields " +
                    std::to_string(plan.fieldsUsed) + " ifaces " +
                    (p.ifacePatterns.empty() ? "no" : "yes") + "\n";
  for (const ChainPlan &cp : plan.chains) {
    const ir::Chain &c = *cp.flat.chain;
    out += std::string("chain ") + ir::familyName(c.family) + " " +
           ir::tableName(c.table) + " " + c.name + " " +
           ir::verdictName(c.policy) + " " + std::to_string(c.policyCounter) +
           "\n";
    ItemNames name(cp);
    for (unsigned q = 0; q < cp.flat.end();) {
      if (const Segment *s = cp.segmentAt(q)) {
        out += "  segment entries " + std::to_string(s->entries.size()) +
               " exits";
        for (unsigned x : s->exits)
          out += " " + name(x);
        out += "\n";
        q = s->end;
        continue;
      }
      const Position &pos = cp.flat.pos[q];
      if (!pos.rule) {
        out += "  goto-end " + name(pos.target) + "\n";
      } else {
        out += "  rule " + std::to_string(pos.rule->counter) + " " +
               ir::verdictName(pos.rule->verdict) + " next " + name(q + 1);
        if (pos.rule->verdict == ir::Verdict::Return)
          out += " to " + name(pos.target);
        if (pos.rule->verdict == ir::Verdict::Jump ||
            pos.rule->verdict == ir::Verdict::Goto)
          out += " skip " + name(pos.copyEnd);
        out += " | " + pos.rule->text + "\n";
      }
      ++q;
    }
  }
  return out;
}

std::string skeletonHash(const ir::Program &p, const Plan &plan) {
  uint64_t h = 0xcbf29ce484222325ull; // FNV-1a
  for (unsigned char c : skeleton(p, plan)) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

} // namespace r2x::classify
