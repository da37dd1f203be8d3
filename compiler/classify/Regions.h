//===- compiler/classify/Regions.h - rules as boxes in key space -*- C++
//-*-===//
//
/// \file
/// What the tree builder knows of a rule: per dimension of the key
/// (classify::Dim), a small set of intervals holding every key for which
/// the rule can match or hotdrop (its box, a superset), and, when the rule
/// is exact (every test it makes is one on the key), the intervals where it
/// certainly matches. The matcher in the program always tests the rule
/// itself, so a box only has to be large enough: a test the tree cannot
/// express leaves its dimension whole.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/classify/Classify.h"
#include "compiler/ir/IR.h"

#include <array>
#include <cstdint>

namespace r2x::classify {

struct Interval {
  uint32_t lo, hi; ///< inclusive
};

/// At most kMax sorted, disjoint, non-adjacent intervals. Operations that
/// would need more keep the hull (a superset), and say so.
class IntervalSet {
public:
  static constexpr unsigned kMax = 4;
  IntervalSet() = default;
  static IntervalSet of(uint32_t lo, uint32_t hi);
  static IntervalSet full(unsigned dim);
  unsigned size() const { return n_; }
  const Interval &operator[](unsigned i) const { return iv_[i]; }
  bool empty() const { return n_ == 0; }
  /// Adds [lo, hi]; returns false if the set had to become its hull.
  bool add(uint32_t lo, uint32_t hi);
  /// The intersection; `exact` is cleared when the result is a hull.
  IntervalSet intersect(const IntervalSet &o, bool &exact) const;
  /// Whether [lo, hi] lies inside one interval of the set.
  bool covers(uint32_t lo, uint32_t hi) const;
  bool intersects(uint32_t lo, uint32_t hi) const;

private:
  std::array<Interval, kMax> iv_{};
  uint8_t n_ = 0;
};

/// A rule's extent in key space.
struct Box {
  std::array<IntervalSet, Dims> dim;
  /// Every test of the rule is a key test, and `certain` holds where it
  /// matches for sure.
  bool exact = false;
  std::array<IntervalSet, Dims> certain;
};

/// The box of one rule's own matches (its guards are intersected by the
/// caller).
Box boxOf(const ir::Rule &r);
/// The box of a position without tests (the end of a -g chain).
Box fullBox();
/// Both: the keys where both can match (exact only if both are and the
/// certain sets stayed exact).
Box intersect(const Box &a, const Box &b);

} // namespace r2x::classify
