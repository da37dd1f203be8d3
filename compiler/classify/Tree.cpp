//===- compiler/classify/Tree.cpp - a run of rules as a decision tree -----===//
//
/// \file
/// See Classify.h. The tree is HiCuts' with cuts the program can take with
/// a shift and a mask: a node cuts one dimension of its region (an aligned
/// block of key space) into 2^b equal parts, the key's next b bits of that
/// dimension. A leaf lists, in rule order, every rule whose box meets the
/// leaf's region. Two things keep leaves short:
///  - the cut of each node is the one (dimension, b) whose largest child is
///    smallest, among those whose children together hold at most
///    Options::spaceFactor times the node's rules (plus the children);
///    when no cut separates the rules, a node zooms into the block of key
///    space they all share;
///  - a rule that certainly matches the whole region and ends the scan
///    (ACCEPT, DROP) hides every later rule there: those are left out.
/// (From the stopped WIP's Build.cpp, commit 5bf95fa, cut down to runs
/// without jumps: a run is entered only at its first rule.)
//===----------------------------------------------------------------------===//
#include "compiler/classify/Classify.h"
#include "compiler/classify/Regions.h"

#include <netinet/in.h>

#include <algorithm>
#include <limits>
#include <map>
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

std::string unclassifiable(const ir::Rule &r, ir::Family family,
                           ir::Table table) {
  using M = ir::Match;
  if (family != ir::Family::V4)
    return "an ip6tables rule";
  if (table == ir::Table::Nat)
    return "a nat rule";
  if (r.verdict != ir::Verdict::Accept && r.verdict != ir::Verdict::Drop &&
      r.verdict != ir::Verdict::Continue)
    return std::string("target ") + ir::verdictName(r.verdict);
  unsigned src = 0, dst = 0, proto = 0, l4 = 0;
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
            [&](const M::Iface &i) { why = i.out ? "-o" : "-i"; },
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
         unclassifiable(c.rules[end], c.family, c.table).empty())
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
    node(root, whole, prune(all, whole), 0);
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
    int64_t run = 0;
    for (size_t k = 0; k + 1 < diff.size(); ++k) {
      run += diff[k];
      c.max = std::max<size_t>(c.max, size_t(run));
    }
    return c;
  }

  /// HiCuts' choice: per dimension the most bits within the space factor,
  /// then the dimension whose largest child is smallest.
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
            double(c.sum) > o_.spaceFactor * double(n) + double(1u << b))
          break;
        if (!mine || c.max <= mine->max)
          mine = c;
      }
      if (!mine || mine->max >= n)
        continue;
      if (!best || mine->max < best->max ||
          (mine->max == best->max && mine->sum < best->sum))
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

  void node(uint32_t at, const Region &r, const std::vector<uint32_t> &list,
            unsigned depth) {
    if (2 * img_.nodes.size() + img_.leaves.size() > words_)
      throw OverBudget{};
    st_.maxDepth = std::max(st_.maxDepth, depth);
    std::optional<Cut> cut;
    if (list.size() > o_.binth && depth + 1 < kMaxDepth)
      cut = chooseCut(list, r);
    if (!cut) {
      img_.nodes[at] = leaf(list, r);
      return;
    }
    size_t children = size_t(1) << cut->bits;
    std::vector<std::vector<uint32_t>> lists(children);
    childSpans(list, r, cut->dim, cut->bits,
               [&](uint32_t i, uint32_t a, uint32_t b) {
                 for (uint32_t k = a; k <= b; ++k)
                   lists[k].push_back(i);
               });
    uint32_t base = uint32_t(img_.nodes.size());
    img_.nodes.resize(img_.nodes.size() + children);
    unsigned shift = DimBits[cut->dim] - r.used[cut->dim] - cut->bits;
    img_.nodes[at] = {base,
                      cut->dim | shift << 8 | uint32_t((children - 1) << 16)};
    for (size_t k = 0; k < children; ++k) {
      Region child = r;
      uint64_t width = uint64_t(1) << shift;
      child.lo[cut->dim] = uint32_t(r.lo[cut->dim] + k * width);
      child.hi[cut->dim] = uint32_t(r.lo[cut->dim] + (k + 1) * width - 1);
      child.used[cut->dim] += cut->bits;
      // Lists are already in rule order (childSpans walks `list` in order).
      node(base + uint32_t(k), child, prune(lists[k], child), depth + 1);
    }
  }

  const Options &o_;
  Image &img_;
  Stats &st_;
  std::vector<Cand> cands_;
  std::vector<uint32_t> landings_;
  std::map<std::vector<uint32_t>, uint32_t> memo_;
  size_t leafSum_ = 0, leafCount_ = 0;
  size_t words_; ///< the budget (OverBudget)
};

static_assert(kMaxZoomBits < 16, "a node's mask is 15 bits (Node::b)");

/// A rule's tests as the matcher's record.
RuleRec encode(const ir::Rule &r) {
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
                   [&](const auto &) {
                     throw std::logic_error(
                         "classify: a match a run cannot hold");
                   },
               },
               m.kind);
  uint32_t verdict = r.verdict == ir::Verdict::Accept ? VerdictAccept
                     : r.verdict == ir::Verdict::Drop ? VerdictDrop
                                                      : VerdictContinue;
  rec.slot = r.counter;
  rec.control = proto | protoMask << 8 | flags << 16 | verdict << 24;
  return rec;
}

} // namespace

Image build(const std::vector<const ir::Rule *> &rules, const Options &o) {
  return *buildWithin(rules, o, std::numeric_limits<size_t>::max());
}

std::optional<Image> buildWithin(const std::vector<const ir::Rule *> &rules,
                                 const Options &o, size_t words) {
  Image img;
  std::vector<Cand> cands;
  cands.reserve(rules.size());
  for (uint32_t i = 0; i < rules.size(); ++i) {
    img.rules.push_back(encode(*rules[i]));
    Cand c;
    c.index = i;
    c.box = boxOf(*rules[i]);
    c.terminal = rules[i]->verdict == ir::Verdict::Accept ||
                 rules[i]->verdict == ir::Verdict::Drop;
    cands.push_back(std::move(c));
  }
  // The run is entered at its first rule only.
  try {
    TreeBuilder(o, img, img.stats, std::move(cands), {0}, words).build();
  } catch (const OverBudget &) {
    return std::nullopt;
  }
  if (2 * img.nodes.size() + img.leaves.size() > words)
    return std::nullopt;
  img.stats.nodes = unsigned(img.nodes.size());
  img.stats.leafEntries = unsigned(img.leaves.size());
  return img;
}

std::vector<uint32_t> leafOf(const Image &img, const uint32_t key[Dims]) {
  uint32_t at = 0;
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

} // namespace r2x::classify
