//===- compiler/classify/Tree.cpp - a run of rules as a decision tree -----===//
//
/// \file
/// See Classify.h. The tree is HiCuts' with cuts the program can take with
/// a shift and a mask: a node cuts one dimension of its region (an aligned
/// block of key space) into 2^b equal parts, the key's next b bits of that
/// dimension. A leaf lists, in rule order, every rule whose box meets the
/// leaf's region. What keeps leaves short and the tree small:
///  - the cut of each node is the (dimension, b) whose largest plus mean
///    child is smallest, among those whose children and their lists take at
///    most Options::spaceFactor times the node's rules (HiCuts' space
///    measure); when no cut separates the rules, a node zooms into the
///    block of key space they all share;
///  - a rule that certainly matches the whole region and ends the scan
///    (ACCEPT, DROP) hides every later rule there: those are left out;
///  - the tree is built breadth first within a word budget: a node is cut
///    only if the tree, with every node still to make as a leaf, stays
///    within it; past it, leaves grow instead of the tree;
///  - rules wide in different addresses go to different trees (a forest,
///    separate()), when that walks cheaper (walkCost()).
/// (From the stopped WIP's Build.cpp, commit 5bf95fa, cut down to runs
/// without jumps: a run is entered only at its first rule.)
//===----------------------------------------------------------------------===//
#include "compiler/classify/Classify.h"
#include "compiler/classify/Regions.h"

#include <netinet/in.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <unordered_map>
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

std::string unclassifiable(const ir::Rule &r, ir::Family family,
                           ir::Table table, bool handover) {
  using M = ir::Match;
  if (family != ir::Family::V4)
    return "an ip6tables rule";
  if (table == ir::Table::Nat)
    return "a nat rule";
  bool target = r.verdict == ir::Verdict::Accept ||
                r.verdict == ir::Verdict::Drop ||
                (handover ? r.verdict == ir::Verdict::Handover
                          : r.verdict == ir::Verdict::Continue);
  if (!target)
    return std::string("target ") + ir::verdictName(r.verdict);
  unsigned src = 0, dst = 0, proto = 0, l4 = 0, iface = 0;
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
              if (!protocol) {
                protocol = &p;
                protoNegated = m.negated;
              }
            },
            [&](const M::TcpUdp &t) {
              ++l4;
              if (m.negated || t.flags || t.option)
                why = "tcp flags or options";
              // The key reads the header of the packet's protocol: the
              // rule's own -p must have made it this one.
              if (!protocol || protoNegated || protocol->proto != t.proto)
                why = "a transport match without its -p";
            },
            [&](const M::Iface &i) {
              if (i.out)
                why = "-o";
              else if (i.bit > IfaceBitMask || ++iface > 1)
                why = "-i beyond the run's bits";
            },
            [&](const M::Fragment &) { why = "-f"; },
            [&](const M::Icmp &) { why = "-m icmp"; },
            [&](const M::Multiport &) { why = "-m multiport"; },
            [&](const M::FieldRange &) { why = "a header field match"; },
            [&](const M::U32 &) { why = "-m u32"; },
            [&](const M::Unknown &) { why = "a match XDP cannot evaluate"; },
            [&](const M::CtState &) { why = "a connection state match"; },
            [&](const M::AddrType &) { why = "-m addrtype"; },
            [&](const M::Set &) { why = "-m set"; },
            [&](const M::Limit &) { why = "-m limit"; },
        },
        m.kind);
  if (!why.empty())
    return why;
  if (src > 1 || dst > 1 || proto > 1 || l4 > 1)
    return "two matches of one kind";
  return {};
}

size_t runAt(const ir::Chain &c, size_t first, const Options &o) {
  if (o.mode == Mode::Never)
    return 0;
  size_t end = first;
  while (end < c.rules.size() &&
         unclassifiable(c.rules[end], c.family, c.table, o.handover).empty())
    ++end;
  size_t minRun = o.mode == Mode::Always ? 1 : std::max(1u, o.minRun);
  return end - first >= minRun ? end - first : 0;
}

namespace {

/// The largest cut a node makes (2^8 children), and a zooming node's.
constexpr unsigned kMaxCutBits = 8, kMaxZoomBits = 12;
/// The deepest tree the builder makes (the program's walk is bounded by the
/// depth it reports): below it, a node becomes a leaf.
constexpr unsigned kMaxDepth = 24;

/// A rule of the segment as the builder sees it.
struct Cand {
  uint32_t index = 0; ///< in the run
  Box box;
  bool terminal = false; ///< ACCEPT or DROP: the scan stops there
};

/// A node's region: per dimension, the aligned block [lo, hi] and how many
/// of the dimension's top bits are fixed.
struct Region {
  uint32_t lo[Dims], hi[Dims];
  unsigned used[Dims];
};

Region wholeSpace() {
  Region r;
  for (unsigned d = 0; d < Dims; ++d) {
    r.lo[d] = 0;
    r.hi[d] = dimMax(d);
    r.used[d] = 0;
  }
  return r;
}

/// A cut: dimension, bits, and what it costs.
struct Cut {
  unsigned dim = 0, bits = 0;
  size_t sum = 0, max = 0;
  bool zoom = false;
};

/// Thrown by TreeBuilder when the tree outgrows its word budget.
struct OverBudget {};

class TreeBuilder {
public:
  TreeBuilder(const Options &o, Image &img, Stats &st, std::vector<Cand> cands,
              std::vector<uint32_t> landings,
              size_t words = std::numeric_limits<size_t>::max())
      : o_(o), img_(img), st_(st), cands_(std::move(cands)),
        landings_(std::move(landings)), words_(words) {
    std::sort(landings_.begin(), landings_.end());
  }

  /// The tree over every candidate; returns its root node.
  uint32_t build() {
    // A rule whose box is empty in some dimension never matches: it is in
    // no leaf.
    std::vector<uint32_t> all;
    for (uint32_t i = 0; i < cands_.size(); ++i)
      if (std::none_of(cands_[i].box.dim.begin(), cands_[i].box.dim.end(),
                       [](const IntervalSet &s) { return s.empty(); }))
        all.push_back(i);
    uint32_t root = uint32_t(img_.nodes.size());
    img_.nodes.push_back({});
    Region whole = wholeSpace();
    std::vector<uint32_t> list = prune(all, whole);
    if (words() + 2 + list.size() > words_)
      throw OverBudget{};
    // Breadth first: when the budget runs out, the nodes still to cut
    // become leaves all over the tree, not only in its last subtrees.
    pending_.push_back({root, whole, std::move(list), 0});
    reserved_ = pending_.back().list.size();
    while (!pending_.empty()) {
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      reserved_ -= p.list.size();
      node(p);
    }
    return root;
  }

private:
  bool certainIn(const Cand &c, const Region &r) const {
    if (!c.box.exact)
      return false;
    for (unsigned d = 0; d < Dims; ++d)
      if (!c.box.certain[d].covers(r.lo[d], r.hi[d]))
        return false;
    return true;
  }

  /// Keeps the candidates a scan can reach in region `r`: after one that
  /// certainly matches there and ends the scan, none until a place where a
  /// scan can start or land.
  std::vector<uint32_t> prune(const std::vector<uint32_t> &list,
                              const Region &r) const {
    std::vector<uint32_t> out;
    bool alive = true;
    uint32_t deadAt = 0;
    for (uint32_t i : list) {
      const Cand &c = cands_[i];
      if (!alive) {
        auto next =
            std::upper_bound(landings_.begin(), landings_.end(), deadAt);
        if (next == landings_.end() || *next > c.index)
          continue;
        alive = true;
      }
      out.push_back(i);
      if (c.terminal && certainIn(c, r)) {
        alive = false;
        deadAt = c.index;
      }
    }
    return out;
  }

  /// For each candidate, the children [first, last] of a cut of `dim` into
  /// 2^bits parts that its box meets, handed to `f` (intervals of one box
  /// never give the same child twice).
  template <class F>
  void childSpans(const std::vector<uint32_t> &list, const Region &r,
                  unsigned dim, unsigned bits, F f) const {
    unsigned shift = DimBits[dim] - r.used[dim] - bits;
    uint64_t lo = r.lo[dim], hi = r.hi[dim];
    for (uint32_t i : list) {
      const IntervalSet &s = cands_[i].box.dim[dim];
      int64_t last = -1;
      for (unsigned k = 0; k < s.size(); ++k) {
        uint64_t a = std::max<uint64_t>(s[k].lo, lo);
        uint64_t b = std::min<uint64_t>(s[k].hi, hi);
        if (a > b)
          continue;
        int64_t first = int64_t((a - lo) >> shift);
        int64_t end = int64_t((b - lo) >> shift);
        if (first <= last)
          first = last + 1;
        if (first <= end)
          f(i, uint32_t(first), uint32_t(end));
        last = std::max(last, end);
      }
    }
  }

  Cut measure(const std::vector<uint32_t> &list, const Region &r, unsigned dim,
              unsigned bits) const {
    Cut c;
    c.dim = dim;
    c.bits = bits;
    std::vector<int64_t> diff((size_t(1) << bits) + 1, 0);
    childSpans(list, r, dim, bits, [&](uint32_t, uint32_t a, uint32_t b) {
      ++diff[a];
      --diff[b + 1];
      c.sum += b - a + 1;
    });
    // Every tcp/udp rule meets the port dimensions' PortShort key (where
    // it hotdrops), so the child holding it holds them all: a cut is
    // judged by the children of real ports, which nearly every packet
    // takes.
    unsigned shift = DimBits[dim] - r.used[dim] - bits;
    bool ports = dim == Sport || dim == Dport;
    int64_t run = 0;
    for (size_t k = 0; k + 1 < diff.size(); ++k) {
      run += diff[k];
      if (ports && r.lo[dim] + (uint64_t(k) << shift) >= PortShort &&
          r.lo[dim] < PortShort)
        continue;
      c.max = std::max<size_t>(c.max, size_t(run));
    }
    return c;
  }

  /// A cut's worth: its largest child (the worst packet's list) plus
  /// its mean child (a packet's list on average over the region). The
  /// largest alone misses cuts that leave most of the region nearly empty
  /// and one child full (rules clustered in one block of addresses, with
  /// traffic elsewhere): it judged them useless.
  static double score(const Cut &c) {
    return double(c.max) + double(c.sum) / double(size_t(1) << c.bits);
  }
  /// HiCuts' choice: per dimension the bits, within the space factor
  /// (children and their lists at most spaceFactor times the node's
  /// rules), that score best, then the dimension that scores best.
  std::optional<Cut> chooseCut(const std::vector<uint32_t> &list,
                               const Region &r) const {
    std::optional<Cut> best;
    size_t n = list.size();
    for (unsigned d = 0; d < Dims; ++d) {
      unsigned free = DimBits[d] - r.used[d];
      std::optional<Cut> mine;
      for (unsigned b = 1; b <= std::min(free, kMaxCutBits); ++b) {
        Cut c = measure(list, r, d, b);
        if (b > 1 &&
            double(c.sum) + double(1u << b) > o_.spaceFactor * double(n))
          break;
        if (!mine || score(c) <= score(*mine))
          mine = c;
      }
      // A cut that puts every candidate into every child separates none.
      if (!mine || mine->sum >= n << mine->bits)
        continue;
      if (!best || score(*mine) < score(*best) ||
          (score(*mine) == score(*best) && mine->sum < best->sum))
        best = mine;
    }
    if (best)
      return best;
    // No cut separates the candidates: zoom into the block of key space
    // they all share, in the dimension where it is smallest.
    for (unsigned d = 0; d < Dims; ++d) {
      unsigned free = DimBits[d] - r.used[d];
      unsigned common = 0;
      while (common < std::min(free, kMaxZoomBits) &&
             measure(list, r, d, common + 1).sum == n)
        ++common;
      if (common && (!best || common > best->bits)) {
        best = Cut{d, common, n, n, true};
      }
    }
    return best;
  }

  /// The leaf for `list` in region `r`, sharing storage with an identical
  /// leaf.
  Node leaf(const std::vector<uint32_t> &list, const Region &r) {
    std::vector<uint32_t> entries;
    entries.reserve(list.size());
    for (uint32_t i : list)
      entries.push_back(cands_[i].index |
                        (certainIn(cands_[i], r) ? LeafCertain : 0));
    if (!list.empty()) {
      st_.maxLeaf = std::max<unsigned>(st_.maxLeaf, unsigned(list.size()));
      leafSum_ += list.size();
      ++leafCount_;
      st_.meanLeaf = double(leafSum_) / double(leafCount_);
    }
    auto [it, fresh] = memo_.try_emplace(entries, uint32_t(img_.leaves.size()));
    if (fresh)
      img_.leaves.insert(img_.leaves.end(), entries.begin(), entries.end());
    return {it->second, NodeLeaf | uint32_t(entries.size())};
  }

  /// A node still to make: where it goes, its region and candidates.
  struct Pending {
    uint32_t at;
    Region r;
    std::vector<uint32_t> list;
    unsigned depth;
  };

  /// The words the image holds.
  size_t words() const { return 2 * img_.nodes.size() + img_.leaves.size(); }

  /// Makes node `p`: a cut whose children (as leaves, at worst) fit the
  /// budget with every node still to make as a leaf, else a leaf. So the
  /// tree never outgrows the budget: where it would, its leaves are longer.
  void node(Pending &p) {
    st_.maxDepth = std::max(st_.maxDepth, p.depth);
    const Region &r = p.r;
    std::optional<Cut> cut;
    if (p.list.size() > o_.binth && p.depth + 1 < kMaxDepth)
      cut = chooseCut(p.list, r);
    std::vector<std::vector<uint32_t>> lists;
    std::vector<Region> regions;
    if (cut) {
      size_t children = size_t(1) << cut->bits;
      lists.resize(children);
      childSpans(p.list, r, cut->dim, cut->bits,
                 [&](uint32_t i, uint32_t a, uint32_t b) {
                   for (uint32_t k = a; k <= b; ++k)
                     lists[k].push_back(i);
                 });
      unsigned shift = DimBits[cut->dim] - r.used[cut->dim] - cut->bits;
      size_t cost = 2 * children;
      for (size_t k = 0; k < children; ++k) {
        Region child = r;
        uint64_t width = uint64_t(1) << shift;
        child.lo[cut->dim] = uint32_t(r.lo[cut->dim] + k * width);
        child.hi[cut->dim] = uint32_t(r.lo[cut->dim] + (k + 1) * width - 1);
        child.used[cut->dim] += cut->bits;
        // Lists are already in rule order (childSpans walks `list` in
        // order).
        lists[k] = prune(lists[k], child);
        cost += lists[k].size();
        regions.push_back(child);
      }
      if (words() + reserved_ + cost > words_)
        cut.reset();
    }
    if (!cut) {
      img_.nodes[p.at] = leaf(p.list, r);
      return;
    }
    size_t children = lists.size();
    uint32_t base = uint32_t(img_.nodes.size());
    img_.nodes.resize(img_.nodes.size() + children);
    unsigned shift = DimBits[cut->dim] - r.used[cut->dim] - cut->bits;
    img_.nodes[p.at] = {base,
                        cut->dim | shift << 8 | uint32_t((children - 1) << 16)};
    for (size_t k = 0; k < children; ++k) {
      reserved_ += lists[k].size();
      pending_.push_back(
          {base + uint32_t(k), regions[k], std::move(lists[k]), p.depth + 1});
    }
  }

  const Options &o_;
  Image &img_;
  Stats &st_;
  std::vector<Cand> cands_;
  std::vector<uint32_t> landings_;
  /// Leaves by their entries, for sharing (looked up only, never walked,
  /// so a hash map keeps the image the same).
  struct EntriesHash {
    size_t operator()(const std::vector<uint32_t> &v) const {
      uint64_t h = 0xcbf29ce484222325ull; // FNV-1a over the words
      for (uint32_t x : v)
        h = (h ^ x) * 0x100000001b3ull;
      return size_t(h);
    }
  };
  std::unordered_map<std::vector<uint32_t>, uint32_t, EntriesHash> memo_;
  size_t leafSum_ = 0, leafCount_ = 0;
  size_t words_; ///< the budget
  std::deque<Pending> pending_;
  size_t reserved_ = 0; ///< the entries of pending_'s lists
};

static_assert(kMaxZoomBits < 16, "a node's mask is 15 bits (Node::b)");

/// A rule's tests as the matcher's record.
RuleRec encode(const ir::Rule &r, bool handover) {
  using M = ir::Match;
  RuleRec rec;
  uint32_t proto = 0, protoMask = 0, flags = 0;
  for (const M &m : r.matches)
    std::visit(ir::Overloaded{
                   [&](const M::Address &a) {
                     bool src = a.side == M::Address::Side::Source;
                     (src ? rec.srcNet : rec.dstNet) = a.net & a.mask;
                     (src ? rec.srcMask : rec.dstMask) = a.mask;
                     if (m.negated)
                       flags |= src ? SrcNeg : DstNeg;
                   },
                   [&](const M::Protocol &p) {
                     proto = p.proto;
                     protoMask = 0xff;
                     if (m.negated)
                       flags |= ProtoNeg;
                   },
                   [&](const M::TcpUdp &t) {
                     flags |= L4;
                     if (t.sport) {
                       rec.sport = t.sport->lo | uint32_t(t.sport->hi) << 16;
                       flags |= t.sport->negated ? uint32_t(SportNeg) : 0u;
                     }
                     if (t.dport) {
                       rec.dport = t.dport->lo | uint32_t(t.dport->hi) << 16;
                       flags |= t.dport->negated ? uint32_t(DportNeg) : 0u;
                     }
                   },
                   [&](const M::Iface &i) {
                     rec.slot |= IfaceTest | (m.negated ? IfaceNeg : 0u) |
                                 uint32_t(i.bit) << IfaceBitShift;
                   },
                   [&](const auto &) {
                     throw std::logic_error(
                         "classify: a match a run cannot hold");
                   },
               },
               m.kind);
  // Hand-over mode: ACCEPT and a handed-over target both leave the packet
  // to the kernel, which counts the rule when it decides the packet again.
  bool toKernel =
      r.verdict == ir::Verdict::Accept || r.verdict == ir::Verdict::Handover;
  if (handover && toKernel)
    flags |= Uncounted;
  uint32_t verdict = toKernel                         ? VerdictAccept
                     : r.verdict == ir::Verdict::Drop ? VerdictDrop
                                                      : VerdictContinue;
  if (r.counter > SlotMask)
    throw std::logic_error("classify: a counter slot past 2^24");
  rec.slot |= r.counter;
  rec.control = proto | protoMask << 8 | flags << 16 | verdict << 24;
  return rec;
}

} // namespace

namespace {

/// A rule's field pattern: bit d set when its box covers a large part of
/// address dimension d (EffiCuts' "large" fields): a prefix of /8 or
/// shorter, or a negated one. Cuts separate narrow rules; a wide one is
/// copied into every child it meets, so a tree of mixed rules multiplies
/// the wide ones at every level, while in a tree of rules wide in the same
/// fields the cuts go to the others. Only the addresses count: measured on
/// bench/ruleset_gen's acl and fw shapes (docs/classifier.md, "Forests"),
/// patterns of the ports and protocol too made more trees and longer scans.
unsigned pattern(const Box &b) {
  unsigned m = 0;
  for (unsigned d : {Src, Dst}) {
    uint64_t covered = 0;
    for (unsigned k = 0; k < b.dim[d].size(); ++k)
      covered += uint64_t(b.dim[d][k].hi) - b.dim[d][k].lo + 1;
    if (covered >= uint64_t(1) << 24)
      m |= 1u << d;
  }
  return m;
}

/// The groups of a forest: the candidates by field pattern, small groups
/// merged into the one they widen least, at most `maxTrees`; each group in
/// rule order.
std::vector<std::vector<Cand>> separate(const std::vector<Cand> &cands,
                                        unsigned maxTrees) {
  struct Group {
    unsigned mask;
    std::vector<Cand> cands;
  };
  std::vector<Group> groups;
  for (const Cand &c : cands) {
    unsigned m = pattern(c.box);
    auto g = std::find_if(groups.begin(), groups.end(),
                          [&](const Group &x) { return x.mask == m; });
    if (g == groups.end()) {
      groups.push_back({m, {}});
      g = groups.end() - 1;
    }
    g->cands.push_back(c);
  }
  // A group of fewer than 1/64 of the rules is not worth a walk.
  size_t small = std::max<size_t>(cands.size() / 64, 1);
  auto widened = [](unsigned into, unsigned from) {
    return __builtin_popcount(into | from) - __builtin_popcount(into);
  };
  while (groups.size() > 1) {
    auto least = std::min_element(groups.begin(), groups.end(),
                                  [](const Group &a, const Group &b) {
                                    return a.cands.size() < b.cands.size();
                                  });
    if (groups.size() <= maxTrees && least->cands.size() >= small)
      break;
    Group *into = nullptr;
    for (Group &g : groups)
      if (&g != &*least &&
          (!into ||
           widened(g.mask, least->mask) < widened(into->mask, least->mask) ||
           (widened(g.mask, least->mask) == widened(into->mask, least->mask) &&
            g.cands.size() > into->cands.size())))
        into = &g;
    std::vector<Cand> merged;
    merged.reserve(into->cands.size() + least->cands.size());
    std::merge(into->cands.begin(), into->cands.end(), least->cands.begin(),
               least->cands.end(), std::back_inserter(merged),
               [](const Cand &a, const Cand &b) { return a.index < b.index; });
    into->cands = std::move(merged);
    into->mask |= least->mask;
    groups.erase(least);
  }
  std::vector<std::vector<Cand>> out;
  for (Group &g : groups)
    out.push_back(std::move(g.cands));
  return out;
}

} // namespace

Image build(const std::vector<const ir::Rule *> &rules, const Options &o) {
  std::optional<Image> img =
      buildWithin(rules, o, std::numeric_limits<size_t>::max());
  if (!img)
    throw std::logic_error("classify: no tree within an unbounded budget");
  return std::move(*img);
}

std::optional<Image> buildWithin(const std::vector<const ir::Rule *> &rules,
                                 const Options &o, size_t words) {
  Image base;
  std::vector<Cand> cands;
  cands.reserve(rules.size());
  for (uint32_t i = 0; i < rules.size(); ++i) {
    base.rules.push_back(encode(*rules[i], o.handover));
    Cand c;
    c.index = i;
    c.box = boxOf(*rules[i]);
    c.terminal = rules[i]->verdict != ir::Verdict::Continue;
    base.countOnly |= !c.terminal;
    base.uncounted |= bool(base.rules.back().control >> 16 & Uncounted);
    base.ifaces |= bool(base.rules.back().slot & IfaceTest);
    cands.push_back(std::move(c));
  }
  // Each tree is entered at its first rule only (a run is entered at its
  // first rule, and a forest's trees are walked from their roots).
  auto trees = [&](std::vector<std::vector<Cand>> groups,
                   size_t budget) -> std::optional<Image> {
    Image img = base;
    size_t left = 0;
    for (const std::vector<Cand> &g : groups)
      left += g.size();
    try {
      // Each tree may take its share of what the trees before it left.
      for (std::vector<Cand> &g : groups) {
        size_t used = 2 * img.nodes.size() + img.leaves.size();
        if (used > budget)
          return std::nullopt;
        size_t room = budget - used;
        size_t share = g.size() >= left ? room
                       : room > std::numeric_limits<size_t>::max() / g.size()
                           ? room / left * g.size()
                           : room * g.size() / left;
        left -= g.size();
        img.firsts.push_back(g.empty() ? std::numeric_limits<uint32_t>::max()
                                       : g.front().index);
        img.roots.push_back(
            TreeBuilder(o, img, img.stats, std::move(g), {0}, used + share)
                .build());
      }
    } catch (const OverBudget &) {
      return std::nullopt;
    }
    if (2 * img.nodes.size() + img.leaves.size() > budget)
      return std::nullopt;
    img.stats.nodes = unsigned(img.nodes.size());
    img.stats.leafEntries = unsigned(img.leaves.size());
    img.stats.trees = unsigned(img.roots.size());
    return img;
  };
  std::vector<std::vector<Cand>> groups;
  if (o.forest != Options::Forest::Never && o.maxTrees > 1)
    groups = separate(cands, o.maxTrees);
  if (groups.size() < 2)
    return trees({cands}, words);
  std::optional<Image> forest = trees(std::move(groups), words);
  if (o.forest == Options::Forest::Always || !forest)
    return forest ? forest : trees({cands}, words);
  // One tree, in at most the forest's words (a tree that multiplies wide
  // rules is slow to build, and past its budget its leaves grow), against
  // the forest: the cheaper walk for packets of the rules' own boxes. Not
  // tried for runs of more than kOneTreeMaxRules: there the one tree took
  // 0.2 to 2.3 s more to build (bench/ruleset_gen's acl and fw, 10,000 and
  // 100,000 rules), was never the cheaper, and even where its mean walk
  // was (bench/classifier's mixed 10,000) it held a leaf of 4,865 rules
  // that the forest's longest leaf (10) does not.
  constexpr size_t kOneTreeMaxRules = 4096;
  if (rules.size() > kOneTreeMaxRules)
    return forest;
  std::optional<Image> one =
      trees({cands},
            std::min(words, 2 * forest->nodes.size() + forest->leaves.size()));
  if (one && walkCost(*one) <= walkCost(*forest))
    return one;
  return forest;
}

double walkCost(const Image &img) {
  // Keys drawn from the rules' boxes, a fixed sequence; the weights are
  // rough guesses from the program's instruction counts (a tree's call, a
  // node, a leaf entry), not fitted: perf on acl 10,000 later put a leaf
  // entry nearer 5 nodes (docs/classifier.md, "Forests").
  constexpr double kTree = 4, kNode = 1, kEntry = 4;
  constexpr unsigned kSamples = 512;
  if (img.rules.empty() || img.roots.empty())
    return 0;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto rnd = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return uint32_t(state >> 11);
  };
  double cost = 0;
  for (unsigned k = 0; k < kSamples; ++k) {
    const RuleRec &r = img.rules[rnd() % img.rules.size()];
    uint32_t flags = r.control >> 16 & 0xff;
    uint32_t key[KeyWords] = {};
    key[Src] = (flags & SrcNeg) ? rnd() : (r.srcNet | (rnd() & ~r.srcMask));
    key[Dst] = (flags & DstNeg) ? rnd() : (r.dstNet | (rnd() & ~r.dstMask));
    uint32_t protoMask = r.control >> 8 & 0xff;
    key[Proto] = protoMask && !(flags & ProtoNeg) ? (r.control & 0xff)
                                                  : (rnd() & 1 ? 6 : 17);
    auto port = [&](uint32_t range) {
      uint32_t lo = range & 0xffff, hi = range >> 16;
      return lo <= hi ? lo + rnd() % (hi - lo + 1) : rnd() & 0xffff;
    };
    key[Sport] = port(r.sport);
    key[Dport] = port(r.dport);
    uint64_t best = std::numeric_limits<uint64_t>::max();
    for (uint32_t root : img.roots) {
      cost += img.roots.size() > 1 ? kTree : 0;
      uint32_t at = root;
      while (!(img.nodes[at].b & NodeLeaf)) {
        const Node &n = img.nodes[at];
        cost += kNode;
        at = n.a + ((key[n.b & 0xff] >> ((n.b >> 8) & 0xff)) & (n.b >> 16));
      }
      const Node &leaf = img.nodes[at];
      for (uint32_t e = 0; e < (leaf.b & NodeCountMask); ++e) {
        uint32_t i = img.leaves[leaf.a + e] & LeafIndexMask;
        if (uint64_t(i) * 2 >= best)
          break;
        cost += kEntry;
        RecResult m = matchRec(img.rules[i], key);
        if (m == RecResult::Hotdrop ||
            (m == RecResult::Match && (img.rules[i].control >> 24) != 0)) {
          best = uint64_t(i) * 2;
          break;
        }
      }
    }
  }
  return cost / kSamples;
}

std::vector<uint32_t> leafOf(const Image &img, const uint32_t key[KeyWords],
                             unsigned tree) {
  uint32_t at = img.roots.at(tree);
  for (unsigned depth = 0;; ++depth) {
    if (depth > img.stats.maxDepth)
      throw std::logic_error("classify: a walk deeper than the tree");
    const Node &n = img.nodes.at(at);
    if (n.b & NodeLeaf)
      return {img.leaves.begin() + n.a,
              img.leaves.begin() + n.a + (n.b & NodeCountMask)};
    unsigned dim = n.b & 0xff, shift = (n.b >> 8) & 0xff;
    at = n.a + ((key[dim] >> shift) & (n.b >> 16));
  }
}

RecResult matchRec(const RuleRec &r, const uint32_t key[KeyWords]) {
  uint32_t flags = r.control >> 16 & 0xff;
  auto test = [&](bool eq, uint32_t neg) { return eq != bool(flags & neg); };
  uint32_t proto = r.control & 0xff, protoMask = r.control >> 8 & 0xff;
  if (!test((key[Src] & r.srcMask) == r.srcNet, SrcNeg) ||
      !test((key[Dst] & r.dstMask) == r.dstNet, DstNeg) ||
      !test((key[Proto] & protoMask) == proto, ProtoNeg))
    return RecResult::NoMatch;
  // ip_packet_match() tests the interface with the addresses and the
  // protocol, before any match that could hotdrop.
  if (r.slot & IfaceTest) {
    unsigned bit = r.slot >> IfaceBitShift & IfaceBitMask;
    uint64_t mask = uint64_t(key[IfmaskHi]) << 32 | key[IfmaskLo];
    if (bool(mask >> bit & 1) == bool(r.slot & IfaceNeg))
      return RecResult::NoMatch;
  }
  if (!(flags & L4))
    return RecResult::Match;
  if (key[Sport] == PortShort)
    return RecResult::Hotdrop;
  if (key[Sport] == PortNone)
    return RecResult::NoMatch;
  auto in = [&](uint32_t port, uint32_t range, uint32_t neg) {
    return test((range & 0xffff) <= port && port <= range >> 16, neg);
  };
  return in(key[Sport], r.sport, SportNeg) && in(key[Dport], r.dport, DportNeg)
             ? RecResult::Match
             : RecResult::NoMatch;
}

namespace {

/// What rule `i`'s match ends in.
Decision::End endOf(const RuleRec &r) {
  switch (r.control >> 24) {
  case VerdictAccept:
    return Decision::Accept;
  case VerdictDrop:
    return Decision::Drop;
  default:
    return Decision::Next;
  }
}

} // namespace

Decision linearDecide(const Image &img, const uint32_t key[KeyWords]) {
  Decision d;
  for (uint32_t i = 0; i < img.rules.size(); ++i) {
    RecResult m = matchRec(img.rules[i], key);
    if (m == RecResult::Hotdrop) {
      d.end = Decision::Hotdrop;
      return d;
    }
    if (m == RecResult::NoMatch)
      continue;
    if (!(img.rules[i].control >> 16 & Uncounted))
      d.counted.push_back(i);
    if ((d.end = endOf(img.rules[i])) != Decision::Next)
      return d;
  }
  return d;
}

Decision forestDecide(const Image &img, const uint32_t key[KeyWords]) {
  // The earliest event over every tree: rule index * 2, + 1 for a hotdrop.
  uint64_t best = std::numeric_limits<uint64_t>::max();
  for (unsigned t = 0; t < img.roots.size(); ++t)
    for (uint32_t e : leafOf(img, key, t)) {
      uint32_t i = e & LeafIndexMask;
      if (uint64_t(i) * 2 >= best)
        break;
      const RuleRec &r = img.rules.at(i);
      RecResult m = matchRec(r, key);
      if ((e & LeafCertain) && m != RecResult::Match)
        throw std::logic_error("classify: a certain entry that does not match");
      if (m == RecResult::Hotdrop) {
        best = uint64_t(i) * 2 + 1;
        break;
      }
      if (m == RecResult::Match && endOf(r) != Decision::Next) {
        best = uint64_t(i) * 2;
        break;
      }
    }
  Decision d;
  for (unsigned t = 0; t < img.roots.size(); ++t)
    for (uint32_t e : leafOf(img, key, t)) {
      uint32_t i = e & LeafIndexMask;
      if (uint64_t(i) * 2 >= best)
        break;
      if (endOf(img.rules[i]) == Decision::Next &&
          matchRec(img.rules[i], key) == RecResult::Match)
        d.counted.push_back(i);
    }
  std::sort(d.counted.begin(), d.counted.end());
  if (best != std::numeric_limits<uint64_t>::max()) {
    uint32_t i = uint32_t(best / 2);
    if (best & 1)
      d.end = Decision::Hotdrop;
    else {
      if (!(img.rules[i].control >> 16 & Uncounted))
        d.counted.push_back(i);
      d.end = endOf(img.rules[i]);
    }
  }
  return d;
}

} // namespace r2x::classify
