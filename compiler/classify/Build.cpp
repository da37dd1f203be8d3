//===- compiler/classify/Build.cpp - the classifier's data ----------------===//
//
/// \file
/// Stage 3 of Classify.h: each segment's rules as contract::ClsRule records
/// and a decision tree over them (docs/classifier.md).
///
/// The tree is HiCuts' with cuts the program can take with a shift and a
/// mask: a node cuts one dimension of its region (an aligned block of key
/// space) into 2^b equal parts, the key's next b bits of that dimension.
/// A leaf lists, in rule order, every rule whose box meets the leaf's
/// region; the program's matcher tests them one by one from the scan's
/// position (so first-match order, jumps and RETURN stay as flattened).
/// Two things keep leaves short:
///  - the cut of each node is the one (dimension, b) whose largest child is
///    smallest, among those whose children together hold at most
///    Options::spaceFactor times the node's rules (plus the children);
///    when no cut separates the rules, a node zooms into the block of key
///    space they all share;
///  - a rule that certainly matches the whole region and ends the scan
///    (ACCEPT, DROP) hides every later rule up to the next place a scan can
///    start or land (an entry, a RETURN's target): those are left out.
//===----------------------------------------------------------------------===//
#include "compiler/classify/Classify.h"
#include "compiler/classify/Regions.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <variant>

namespace r2x::classify {

namespace {

using namespace contract;

/// The largest cut a node makes (2^8 children), and a zooming node's.
constexpr unsigned kMaxCutBits = 8, kMaxZoomBits = 12;

uint32_t encodeNext(ClsNextKind kind, uint32_t value) {
  if (value > ClsValueMask)
    throw std::length_error("the classifier's rule index does not fit");
  return uint32_t(kind) << ClsNextShift | value;
}

/// A rule of the segment as the builder sees it.
struct Cand {
  uint32_t index = 0; ///< in r2x_cls_rule's half
  Box box;
  bool terminal = false; ///< ACCEPT or DROP: the scan stops there
};

/// A node's region: per dimension, the aligned block [lo, hi] and how many
/// of the dimension's top bits are fixed.
struct Region {
  uint32_t lo[ClsDims], hi[ClsDims];
  unsigned used[ClsDims];
};

Region wholeSpace() {
  Region r;
  for (unsigned d = 0; d < ClsDims; ++d) {
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

class TreeBuilder {
public:
  TreeBuilder(const Options &o, Image &img, Stats &st, std::vector<Cand> cands,
              std::vector<uint32_t> landings)
      : o_(o), img_(img), st_(st), cands_(std::move(cands)),
        landings_(std::move(landings)) {
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
    for (unsigned d = 0; d < ClsDims; ++d)
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
        auto next = std::upper_bound(landings_.begin(), landings_.end(), deadAt);
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
    unsigned shift = ClsDimBits[dim] - r.used[dim] - bits;
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
    for (unsigned d = 0; d < ClsDims; ++d) {
      unsigned free = ClsDimBits[d] - r.used[d];
      std::optional<Cut> mine;
      for (unsigned b = 1; b <= std::min(free, kMaxCutBits); ++b) {
        Cut c = measure(list, r, d, b);
        if (b > 1 && double(c.sum) > o_.spaceFactor * double(n) + double(1u << b))
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
    for (unsigned d = 0; d < ClsDims; ++d) {
      unsigned free = ClsDimBits[d] - r.used[d];
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
  contract::ClsNode leaf(const std::vector<uint32_t> &list, const Region &r) {
    std::vector<uint32_t> entries;
    entries.reserve(list.size());
    for (uint32_t i : list)
      entries.push_back(cands_[i].index |
                        (certainIn(cands_[i], r) ? ClsCertain : 0));
    if (!list.empty()) {
      st_.maxLeaf = std::max<unsigned>(st_.maxLeaf, unsigned(list.size()));
      leafSum_ += list.size();
      ++leafCount_;
      st_.meanLeaf = double(leafSum_) / double(leafCount_);
    }
    auto [it, fresh] = memo_.try_emplace(entries, uint32_t(img_.leaves.size()));
    if (fresh)
      img_.leaves.insert(img_.leaves.end(), entries.begin(), entries.end());
    return {it->second, ClsLeaf | uint32_t(entries.size())};
  }

  void node(uint32_t at, const Region &r, const std::vector<uint32_t> &list,
            unsigned depth) {
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
    unsigned shift = ClsDimBits[cut->dim] - r.used[cut->dim] - cut->bits;
    img_.nodes[at] = {base, cut->dim | shift << 8 |
                                uint32_t((children - 1) << 16)};
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
};

static_assert(kMaxZoomBits < 16, "a node's mask is 15 bits (ClsNode::b)");

/// A rule's tests as the matcher's record.
void encodeMatches(const ir::Rule &r, ClsRule &rec, Image &img) {
  using M = ir::Match;
  rec.field_first = uint32_t(img.fields.size());
  bool l4Seen = false;
  for (const M &m : r.matches) {
    uint32_t neg = m.negated ? 1 : 0;
    std::visit(
        ir::Overloaded{
            [&](const M::Address &a) {
              if (a.side == M::Address::Side::Source) {
                rec.flags |= ClsMSrc | (neg ? ClsMSrcNeg : 0);
                rec.src = a.net;
                rec.src_mask = a.mask;
              } else {
                rec.flags |= ClsMDst | (neg ? ClsMDstNeg : 0);
                rec.dst = a.net;
                rec.dst_mask = a.mask;
              }
            },
            [&](const M::Protocol &p) {
              rec.flags |= ClsMProto | (neg ? ClsMProtoNeg : 0);
              rec.proto = p.proto;
            },
            [&](const M::InIface &i) {
              rec.flags |= ClsMIface | (neg ? ClsMIfaceNeg : 0);
              rec.iface_bit = uint8_t(i.bit);
            },
            [&](const M::Fragment &) {
              rec.flags |= ClsMFrag | (neg ? ClsMFragNeg : 0);
            },
            [&](const M::TcpUdp &t) {
              l4Seen = true;
              rec.flags |= ClsMTcpUdp;
              rec.l4 = t.proto;
              if (t.sport) {
                rec.flags |= ClsMSport | (t.sport->negated ? ClsMSportNeg : 0);
                rec.sport_lo = t.sport->lo;
                rec.sport_hi = t.sport->hi;
              }
              if (t.dport) {
                rec.flags |= ClsMDport | (t.dport->negated ? ClsMDportNeg : 0);
                rec.dport_lo = t.dport->lo;
                rec.dport_hi = t.dport->hi;
              }
              if (t.flags) {
                rec.flags |=
                    ClsMTcpFlags | (t.flags->negated ? ClsMTcpFlagsNeg : 0);
                rec.tcp_mask = t.flags->mask;
                rec.tcp_comp = t.flags->comp;
              }
            },
            [&](const M::Icmp &i) {
              l4Seen = true;
              rec.flags |= ClsMIcmp | (neg ? ClsMIcmpNeg : 0);
              rec.icmp_type = i.type;
              rec.icmp_code_lo = i.codeLo;
              rec.icmp_code_hi = i.codeHi;
            },
            [&](const M::FieldRange &f) {
              img.fields.push_back({static_cast<uint32_t>(f.field), neg,
                                    f.mask, f.lo, f.hi});
              ++rec.field_count;
              if (!l4Seen)
                ++rec.field_before;
            },
            [&](const M::Multiport &) {
              throw std::logic_error("multiport in a classified rule");
            },
            [&](const M::U32 &) {
              throw std::logic_error("u32 in a classified rule");
            },
        },
        m.kind);
  }
}

/// What a matched position does next, as ClsRule::next.
uint32_t nextOf(const Position &p, const Segment &s) {
  if (p.rule) {
    switch (p.rule->verdict) {
    case ir::Verdict::Accept:
      return encodeNext(ClsAccept, 0);
    case ir::Verdict::Drop:
      return encodeNext(ClsDrop, 0);
    case ir::Verdict::Continue:
    case ir::Verdict::Jump:
    case ir::Verdict::Goto:
      return encodeNext(ClsContinue, 0);
    case ir::Verdict::Return:
      break;
    case ir::Verdict::Dnat:
      throw std::logic_error("DNAT in a classified rule");
    }
  }
  if (p.target < s.end)
    return encodeNext(ClsJumpIn, s.ruleBase + (p.target - s.begin));
  return encodeNext(ClsExit, s.exitOf(p.target));
}

void buildSegment(const FlatChain &f, const Segment &s, const Options &o,
                  Image &img, Stats &st) {
  std::vector<Cand> cands;
  std::vector<uint32_t> landings;
  cands.reserve(s.end - s.begin);
  for (unsigned q = s.begin; q < s.end; ++q) {
    const Position &p = f.pos[q];
    ClsRule rec{};
    rec.slot = p.rule ? p.rule->counter : ClsNoSlot;
    rec.next = nextOf(p, s);
    rec.guard = ClsNoGuard;
    Cand c;
    c.index = s.ruleBase + (q - s.begin);
    c.box = p.rule ? boxOf(*p.rule) : fullBox();
    // Guards before the segment hold whenever it runs: only the innermost
    // guard inside it is tested (and its box narrows this one).
    if (p.guard >= int(s.begin)) {
      rec.guard = s.ruleBase + (unsigned(p.guard) - s.begin);
      c.box = intersect(c.box, cands[unsigned(p.guard) - s.begin].box);
    }
    if (p.rule)
      encodeMatches(*p.rule, rec, img);
    else
      rec.field_first = uint32_t(img.fields.size());
    uint32_t kind = rec.next >> ClsNextShift;
    c.terminal = kind == ClsAccept || kind == ClsDrop;
    if (kind == ClsJumpIn)
      landings.push_back(rec.next & ClsValueMask);
    img.rules.push_back(rec);
    cands.push_back(std::move(c));
  }
  for (unsigned x : s.entries)
    landings.push_back(s.ruleBase + (x - s.begin));
  uint32_t root =
      TreeBuilder(o, img, st, std::move(cands), std::move(landings)).build();
  for (size_t k = 0; k < s.entries.size(); ++k) {
    if (img.entries.size() <= s.entryIds[k])
      img.entries.resize(s.entryIds[k] + 1);
    img.entries[s.entryIds[k]] = {root, s.ruleBase + (s.entries[k] - s.begin)};
  }
  ++st.segments;
}

} // namespace

Image build(const Plan &plan, Stats *stats) {
  Image img;
  Stats st;
  for (const ChainPlan &cp : plan.chains)
    for (const Segment &s : cp.segments)
      buildSegment(cp.flat, s, plan.options, img, st);
  st.rules = unsigned(img.rules.size());
  st.nodes = unsigned(img.nodes.size());
  st.leafEntries = unsigned(img.leaves.size());
  if (stats)
    *stats = st;
  return img;
}

} // namespace r2x::classify
