//===- compiler/classify/Regions.cpp - rules as boxes in key space --------===//
//
/// \file
/// See Regions.h. The boxes follow what the program's key holds
/// (Classify.h's key, filled in compiler/backend/ClassifyCodegen.cpp): a
/// tcp or udp match can only be met by a packet whose port keys are ports
/// (it matches or not) or PortShort (it hotdrops), never PortNone (a
/// later fragment: it does not match).
//===----------------------------------------------------------------------===//
#include "compiler/classify/Regions.h"

#include <algorithm>
#include <variant>

namespace r2x::classify {

IntervalSet IntervalSet::of(uint32_t lo, uint32_t hi) {
  IntervalSet s;
  if (lo <= hi)
    s.add(lo, hi);
  return s;
}

IntervalSet IntervalSet::full(unsigned dim) { return of(0, dimMax(dim)); }

bool IntervalSet::add(uint32_t lo, uint32_t hi) {
  // Insert in order, merging with neighbours that overlap or touch.
  std::array<Interval, kMax + 1> out{};
  unsigned n = 0;
  bool placed = false;
  auto push = [&](Interval v) {
    if (n && uint64_t(out[n - 1].hi) + 1 >= v.lo) {
      out[n - 1].hi = std::max(out[n - 1].hi, v.hi);
      return;
    }
    out[n++] = v;
  };
  for (unsigned i = 0; i < n_; ++i) {
    if (!placed && lo <= iv_[i].lo) {
      push({lo, hi});
      placed = true;
    }
    push(iv_[i]);
  }
  if (!placed)
    push({lo, hi});
  if (n > kMax) {
    iv_[0] = {out[0].lo, out[n - 1].hi};
    n_ = 1;
    return false;
  }
  std::copy(out.begin(), out.begin() + n, iv_.begin());
  n_ = uint8_t(n);
  return true;
}

IntervalSet IntervalSet::intersect(const IntervalSet &o, bool &exact) const {
  IntervalSet r;
  for (unsigned i = 0; i < n_; ++i)
    for (unsigned j = 0; j < o.n_; ++j) {
      uint32_t lo = std::max(iv_[i].lo, o.iv_[j].lo);
      uint32_t hi = std::min(iv_[i].hi, o.iv_[j].hi);
      if (lo <= hi && !r.add(lo, hi))
        exact = false;
    }
  return r;
}

bool IntervalSet::covers(uint32_t lo, uint32_t hi) const {
  for (unsigned i = 0; i < n_; ++i)
    if (iv_[i].lo <= lo && hi <= iv_[i].hi)
      return true;
  return false;
}

bool IntervalSet::intersects(uint32_t lo, uint32_t hi) const {
  for (unsigned i = 0; i < n_; ++i)
    if (iv_[i].lo <= hi && lo <= iv_[i].hi)
      return true;
  return false;
}

namespace {

/// [lo, hi], or its complement in [0, max] when `negated`.
IntervalSet rangeOrComplement(uint32_t lo, uint32_t hi, uint32_t max,
                              bool negated) {
  if (!negated)
    return IntervalSet::of(lo, hi);
  IntervalSet s;
  if (lo > hi)
    return IntervalSet::of(0, max); // `! 5:3`: every value
  if (lo > 0)
    s.add(0, lo - 1);
  if (hi < max)
    s.add(hi + 1, max);
  return s;
}

/// Whether `mask` is a prefix mask (ones, then zeros).
bool contiguous(uint32_t mask) {
  uint32_t inv = ~mask;
  return (inv & (inv + 1)) == 0;
}

/// Sets both the box and the certain set of `dim` to `s` (the test is
/// exact on the key).
void exactDim(Box &b, unsigned dim, const IntervalSet &s) {
  bool ignored = true;
  b.dim[dim] = b.dim[dim].intersect(s, ignored);
  b.certain[dim] = b.certain[dim].intersect(s, b.exact);
}

/// A tcp/udp port test: the certain set is the ports it accepts; the box
/// adds PortShort, where the match hotdrops.
void portDim(Box &b, unsigned dim, const std::optional<ir::PortRange> &r) {
  IntervalSet real = r ? rangeOrComplement(r->lo, r->hi, 0xffff, r->negated)
                       : IntervalSet::of(0, 0xffff);
  IntervalSet box = real;
  box.add(PortShort, PortShort);
  bool ignored = true;
  b.dim[dim] = b.dim[dim].intersect(box, ignored);
  b.certain[dim] = b.certain[dim].intersect(real, b.exact);
}

} // namespace

Box fullBox() {
  Box b;
  for (unsigned d = 0; d < Dims; ++d)
    b.dim[d] = b.certain[d] = IntervalSet::full(d);
  b.exact = true;
  return b;
}

Box boxOf(const ir::Rule &r) {
  using M = ir::Match;
  Box b = fullBox();
  for (const M &m : r.matches)
    std::visit(
        ir::Overloaded{
            [&](const M::Address &a) {
              unsigned dim = a.side == M::Address::Side::Source ? Src : Dst;
              if (!contiguous(a.mask)) {
                b.exact = false; // the matcher tests it; the tree cannot
                return;
              }
              exactDim(b, dim,
                       rangeOrComplement(a.net, a.net | ~a.mask, 0xffffffffu,
                                         m.negated));
            },
            [&](const M::Protocol &p) {
              exactDim(b, Proto,
                       rangeOrComplement(p.proto, p.proto, 0xff, m.negated));
            },
            [&](const M::TcpUdp &t) {
              portDim(b, Sport, t.sport);
              portDim(b, Dport, t.dport);
              if (t.flags || t.option)
                b.exact = false;
            },
            // Tests the tree does not cut on: the matcher makes them.
            [&](const M::Iface &) { b.exact = false; },
            [&](const M::Fragment &) { b.exact = false; },
            [&](const M::Icmp &) { b.exact = false; },
            [&](const M::FieldRange &) { b.exact = false; },
            [&](const M::Multiport &) { b.exact = false; },
            [&](const M::U32 &) { b.exact = false; },
            [&](const M::Unknown &) { b.exact = false; },
            [&](const M::CtState &) { b.exact = false; },
            [&](const M::AddrType &) { b.exact = false; },
            [&](const M::Set &) { b.exact = false; },
            [&](const M::Limit &) { b.exact = false; },
        },
        m.kind);
  return b;
}

Box intersect(const Box &a, const Box &b) {
  Box r;
  r.exact = a.exact && b.exact;
  for (unsigned d = 0; d < Dims; ++d) {
    bool ignored = true;
    r.dim[d] = a.dim[d].intersect(b.dim[d], ignored);
    r.certain[d] = a.certain[d].intersect(b.certain[d], r.exact);
  }
  return r;
}

} // namespace r2x::classify
