//===- compiler/classify/Classify.h - rules as data for a fixed program -*- C++ -*-===//
//
/// \file
/// The classifier (docs/classifier.md): long runs of rules become data that
/// one fixed piece of BPF code walks, so the program's size, LLVM's time and
/// the verifier's work stop growing with the rules.
///
/// Three stages, each a pure function of the IR:
///  1. flatten(): a built-in chain with every user chain inlined at each
///     jump to it, as a list of positions (netfilter's first-match order);
///  2. plan(): which positions are classified, cut into segments (runs of
///     classifiable positions that no jumped-to chain straddles), and where
///     control enters and leaves each; also the skeleton, the text of
///     everything the program's code depends on (an update in place needs
///     the same skeleton);
///  3. build(): the data (contract::ClsRule records, a decision tree per
///     segment, entry points), as the maps hold it.
/// The code generator (compiler/backend/ClassifyCodegen.cpp) emits the
/// fixed code from the plan; the driver calls build() again to update a
/// loaded program's maps (compiler/driver/Update.cpp).
///
/// This layer depends on the IR and the object contract only, so the
/// compiler's backend and the driver can both use it.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h"
#include "runtime/contract/Object.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r2x::classify {

/// `--classifier=never|auto|always`: no classification; runs of at least
/// Options::minRun classifiable positions; every classifiable position.
enum class Mode { Never, Auto, Always };
const char *modeName(Mode m);
std::optional<Mode> parseMode(std::string_view text);

/// The shortest run `auto` classifies (docs/classifier.md: where a scan of
/// straight-line rules starts to cost more than the tree's walk).
inline constexpr unsigned kDefaultMinRun = 32;

struct Options {
  Mode mode = Mode::Auto;
  unsigned minRun = kDefaultMinRun;
  /// Leaves are cut until they hold at most this many candidates (HiCuts'
  /// binth), when a cut can separate them.
  unsigned binth = 4;
  /// A cut may replicate rules into its children up to this factor of the
  /// node's rules (HiCuts' space factor).
  double spaceFactor = 4.0;
};

/// The deepest tree the program walks (its loop bound); the builder makes a
/// leaf rather than go deeper.
inline constexpr unsigned kMaxDepth = 24;
/// The longest chain of guards (jump rules inside a segment) a rule can
/// have: netfilter's nesting limit.
inline constexpr unsigned kMaxGuards = 16;
/// Field tests one rule may carry (ClsRule::field_count).
inline constexpr unsigned kMaxFieldTests = 8;

//===-- 1. flatten --------------------------------------------------------===//

/// One position of a flattened chain. A rule position tests its rule (and,
/// implicitly, every jump rule whose inlined chain holds it); the pseudo
/// position (rule null) ends an inlined `-g` chain and goes to `target`.
struct Position {
  const ir::Rule *rule = nullptr;
  /// The innermost jump (-j/-g) position whose inlined chain holds this
  /// one; -1 at the top level.
  int guard = -1;
  /// Jump and goto rules: the first position after the inlined chain (where
  /// a jump rule that does not match goes).
  unsigned copyEnd = 0;
  /// RETURN rules and the pseudo position: where control goes (the end of
  /// the enclosing -j copy; the chain's end is the policy).
  unsigned target = 0;
};

struct FlatChain {
  const ir::Chain *chain = nullptr;
  std::vector<Position> pos;
  /// The position after the last: the policy.
  unsigned end() const { return unsigned(pos.size()); }
};

/// `c` (a built-in chain of `p`) with its user chains inlined. Throws
/// std::length_error when inlining makes more than kMaxPositions.
FlatChain flatten(const ir::Program &p, const ir::Chain &c);
inline constexpr size_t kMaxPositions = size_t(1) << 24;

//===-- 2. plan -----------------------------------------------------------===//

/// Whether the data-driven matcher can test `r` exactly (IPv4, a target the
/// scan carries out, and matches it knows: addresses, protocol, -i, -f,
/// tcp/udp ports and flags, icmp, header fields). Empty when it can; else
/// what it cannot.
std::string unclassifiable(const ir::Rule &r, ir::Family family,
                           ir::Table table);

/// A run of classified positions [begin, end) of one flat chain.
struct Segment {
  unsigned begin = 0, end = 0;
  /// Positions control can enter at (begin first), each with its global
  /// entry id (the index of r2x_cls_entry's half the code passes).
  std::vector<unsigned> entries;
  std::vector<unsigned> entryIds;
  /// Where control can leave to (positions >= end; exit 0 is `end`).
  std::vector<unsigned> exits;
  /// The segment's first rule index in r2x_cls_rule's half.
  unsigned ruleBase = 0;
  /// Exit index of position `x` (>= end).
  unsigned exitOf(unsigned x) const;
};

struct ChainPlan {
  FlatChain flat;
  std::vector<Segment> segments; ///< in position order
  /// The segment holding position `x`, or null.
  const Segment *segmentAt(unsigned x) const;
};

struct Plan {
  Options options;
  /// Every built-in chain, in program order (a chain without segments is
  /// compiled as straight-line code).
  std::vector<ChainPlan> chains;
  unsigned entryCount = 0, ruleCount = 0;
  /// ir::Field rows the classified rules test (bit = the Field's number).
  uint32_t fieldsUsed = 0;
  bool any() const { return entryCount != 0; }
  /// The plan of chain `c`, or null.
  const ChainPlan *of(const ir::Chain &c) const;
};

Plan plan(const ir::Program &p, const Options &o);

/// Everything the program's code depends on, as text: chains, policies and
/// their slots, each straight-line rule (text, slot, target), each segment's
/// entries and exits, the fields the classified rules test. Two programs
/// with the same skeleton have the same code; only their maps differ.
std::string skeleton(const ir::Program &p, const Plan &plan);
/// The skeleton's 64-bit FNV-1a hash in 16 hex digits (the metadata's
/// `classifier` record).
std::string skeletonHash(const ir::Program &p, const Plan &plan);

//===-- 3. build ----------------------------------------------------------===//

/// One half of the classifier's maps, as the maps hold it (indexes relative
/// to the half).
struct Image {
  std::vector<contract::ClsEntry> entries; ///< by entry id
  std::vector<contract::ClsNode> nodes;
  std::vector<uint32_t> leaves;
  std::vector<contract::ClsRule> rules;
  std::vector<contract::ClsField> fields;
};

/// Statistics of a build, for --classifier-stats and the benchmarks.
struct Stats {
  unsigned segments = 0, rules = 0, nodes = 0, leafEntries = 0;
  unsigned maxDepth = 0, maxLeaf = 0;
  double meanLeaf = 0; ///< candidates per non-empty leaf, mean
};

Image build(const Plan &plan, Stats *stats = nullptr);

/// The capacity of one half of a map that holds `used` entries now: room to
/// grow by updates in place (a quarter more, at least 64).
constexpr uint32_t halfCapacity(size_t used) {
  size_t cap = used + (used / 4 > 64 ? used / 4 : 64);
  return uint32_t(cap);
}

} // namespace r2x::classify
