//===- compiler/classify/Classify.h - runs of rules as a decision tree -*- C++
//-*-===//
//
/// \file
/// The classifier (docs/classifier.md): a run of consecutive simple rules
/// of one chain becomes data (a decision tree over the packet's key and a
/// table of rule records) that one fixed piece of BPF code walks
/// (compiler/backend/ClassifyCodegen.cpp), so the program's size, LLVM's
/// time and the verifier's work stop growing with the rules, and a packet
/// tests only the few rules of its leaf.
///
/// First-match meaning: a leaf lists, in rule order, every rule of the run
/// whose box (Regions.h) meets the leaf's region; the program tests them in
/// that order and acts on each match as the straight-line code would (count,
/// then ACCEPT, DROP, or go on), and falls through to the rule after the run
/// when the leaf is exhausted. A rule the tree leaves out of a leaf cannot
/// match any packet of it. A run holds no jumps, RETURN or goto, so control
/// enters only at its first rule and leaves only by a verdict or its end.
///
/// This layer depends on the IR only; the backend lays the data out.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r2x::classify {

/// `--classifier=never|auto|always`: no classification; runs of at least
/// Options::minRun rules; every run of one rule or more.
enum class Mode { Never, Auto, Always };
const char *modeName(Mode m);
std::optional<Mode> parseMode(std::string_view text);

/// The shortest run `auto` classifies: below it, straight-line code is at
/// least as fast (bench/results/classifier.txt) and easier to read in -S.
inline constexpr unsigned kDefaultMinRun = 16;

struct Options {
  Mode mode = Mode::Auto; ///< the command's default too (--classifier)
  unsigned minRun = kDefaultMinRun;
  /// Leaves are cut until they hold at most this many rules (HiCuts'
  /// binth), when a cut can separate them.
  unsigned binth = 4;
  /// A cut may replicate rules into its children up to this factor of the
  /// node's rules (HiCuts' space factor).
  double spaceFactor = 4.0;
  /// A run whose longest leaf holds more rules than this scans its leaves
  /// with the kernel's numeric iterator (bpf_iter_num, verified once by
  /// convergence) instead of a bounded loop, which the verifier follows
  /// iteration by iteration and refuses past about a thousand
  /// (`--classifier-iter-leaf`).
  unsigned iterLeaf = 64;
  /// A run's trees may take wordBudget(rules, wordsPerRule) words; past
  /// it, leaves grow; a run whose rules do not fit even as leaves is
  /// classified in two halves, one after the other (`--classifier-words`;
  /// 0: trees of 16 words at most, for tests).
  unsigned wordsPerRule = 1024;
  /// When a run is classified as several trees, one per group of rules
  /// of one field pattern (EffiCuts' separation, docs/classifier.md
  /// "Forests"): `Auto` when one tree would outgrow its budget, `Always`
  /// whenever the rules fall into two groups or more (for tests), `Never`
  /// (`--classifier-forest`).
  enum class Forest { Never, Auto, Always } forest = Forest::Auto;
  /// A forest has at most this many trees: a packet walks all of them.
  /// (Rules are grouped by two fields, so at most four groups exist.)
  unsigned maxTrees = 4;
  /// Hand-over mode (docs/handover.md): XDP counts only what it drops. A
  /// rule XDP hands over (ir::Verdict::Handover, e.g. REJECT with an ICMP
  /// error) may be a run's rule; it and ACCEPT end the run uncounted
  /// (RuleFlag Uncounted: the kernel counts them when it decides the packet
  /// again). Count-only rules end a run instead: hand-over records them on
  /// the packet's path, which a run does not.
  bool handover = false;
};

//===-- the key -----------------------------------------------------------===//

/// The dimensions the tree cuts, the order of the program's key: IPv4
/// source and destination (host order), protocol, and the two ports as
/// 17-bit keys: 0..65535 the port, PortShort when a tcp/udp match would
/// hotdrop (the transport header is cut short, or a TCP fragment at offset
/// 1), PortNone when the packet has no ports a match can read (a later
/// fragment, or a protocol other than TCP and UDP).
enum Dim : unsigned { Src, Dst, Proto, Sport, Dport, Dims };
inline constexpr unsigned DimBits[Dims] = {32, 32, 8, 17, 17};
/// A key is Dims words the tree cuts and, after them, the packet's `-i`
/// mask (contract::IfMasks::in: bit n set when the ingress device matches
/// the program's -i pattern n), low word first; the leaf's scan tests it.
enum KeyWord : unsigned { IfmaskLo = Dims, IfmaskHi, KeyWords };
inline constexpr uint32_t PortShort = 0x10000, PortNone = 0x10001;

/// The largest key of dimension `dim` (its domain is [0, max]).
constexpr uint32_t dimMax(unsigned dim) {
  return DimBits[dim] >= 32 ? 0xffffffffu : (uint32_t(1) << DimBits[dim]) - 1;
}

//===-- what can be classified --------------------------------------------===//

/// Empty when `r` (a rule of an IPv4 chain of `table`) can be a rule of a
/// run: ACCEPT, DROP or no target (in hand-over mode: ACCEPT, DROP or a
/// target XDP hands over; Options::handover); -s/-d (any mask), -p, -i,
/// and tcp/udp with only --sport/--dport after its own non-negated -p.
/// Else what it cannot.
std::string unclassifiable(const ir::Rule &r, ir::Family family,
                           ir::Table table, bool handover = false);

/// The length of the run of `c` that starts at rule `first` (0 if
/// `c.rules[first]` cannot start one): the classifiable rules from there,
/// if they are at least as many as the options ask; else 0.
size_t runAt(const ir::Chain &c, size_t first, const Options &o);

//===-- the data ----------------------------------------------------------===//

/// A tree node, two words. Internal: the child is node `a + ((key[dim] >>
/// shift) & mask)`, with b = dim | shift << 8 | mask << 16. Leaf (NodeLeaf
/// set in b): its rules are leaf entries [a, a + (b & NodeCountMask)).
struct Node {
  uint32_t a = 0, b = 0;
};
inline constexpr uint32_t NodeLeaf = 0x80000000u, NodeCountMask = 0x7fffffffu;

/// A leaf entry: a rule's index in the run, with LeafCertain set when it
/// matches every packet of the leaf's region (the program counts it without
/// testing it).
inline constexpr uint32_t LeafCertain = 0x80000000u,
                          LeafIndexMask = 0x7fffffffu;

/// One rule as the program's matcher reads it (RuleWords 32-bit words):
/// src & srcMask == srcNet (xor SrcNeg), the same for dst, proto &
/// protoMask == proto (xor ProtoNeg); with L4, PortShort hotdrops,
/// PortNone does not match, and each port must lie in [lo, hi] (xor its
/// Neg). A test the rule does not make has mask 0 or the full range.
struct RuleRec {
  uint32_t srcNet = 0, srcMask = 0, dstNet = 0, dstMask = 0;
  uint32_t sport = 0xffff0000u; ///< lo | hi << 16
  uint32_t dport = 0xffff0000u;
  uint32_t slot = 0; ///< the counter slot (SlotMask) and the -i test
  uint32_t control =
      0; ///< proto | protoMask << 8 | flags << 16 | verdict << 24
};
inline constexpr unsigned RuleWords = sizeof(RuleRec) / 4;
static_assert(sizeof(RuleRec) == 32);
enum RuleFlag : uint32_t {
  SrcNeg = 1,
  DstNeg = 2,
  ProtoNeg = 4,
  L4 = 8,
  SportNeg = 16,
  DportNeg = 32,
  /// Hand-over mode: the rule's match ends the run uncounted (ACCEPT, or a
  /// target the kernel carries out: the kernel counts it).
  Uncounted = 64
};
/// RuleRec::slot: the rule's counter slot in the low 24 bits; a `-i`
/// rule's test in the top byte: IfaceTest, IfaceNeg (`! -i`), and the
/// pattern's bit in the key's -i mask (IfaceBitShift, 6 bits).
inline constexpr uint32_t SlotMask = 0x00ffffffu, IfaceTest = 0x80000000u,
                          IfaceNeg = 0x40000000u, IfaceBitShift = 24,
                          IfaceBitMask = 0x3f;
/// RuleRec::control's verdict byte.
enum RuleVerdict : uint32_t {
  VerdictContinue = 0,
  VerdictAccept = 1,
  VerdictDrop = 2
};

/// Statistics of a build, for the benchmarks and tests.
struct Stats {
  unsigned nodes = 0, leafEntries = 0, maxDepth = 0, maxLeaf = 0;
  unsigned trees = 0;
  double meanLeaf = 0; ///< rules per non-empty leaf, mean
};

/// A run's data, as the program's read-only globals hold it.
///
/// One tree (roots == {0}), or a forest: each rule of the run is in
/// exactly one tree, every tree is walked, and what the run does is the
/// first event in rule order over all of them (a terminal rule that
/// matches, or a tcp/udp rule that hotdrops), after counting every
/// count-only rule before it that matches (forestDecide()).
struct Image {
  std::vector<Node> nodes;
  std::vector<uint32_t> roots;  ///< each tree's root node, in nodes
  std::vector<uint32_t> firsts; ///< each tree's first rule (index)
  std::vector<uint32_t> leaves;
  std::vector<RuleRec> rules; ///< in run order
  bool countOnly = false;     ///< some rule of the run has no target
  bool uncounted = false;     ///< some rule of the run is Uncounted
  bool ifaces = false;        ///< some rule of the run tests -i
  Stats stats;
  bool forest() const { return roots.size() > 1; }
};

/// The run `rules` (each one unclassifiable() accepts) as data.
Image build(const std::vector<const ir::Rule *> &rules, const Options &o);

/// The words (a node is two, a leaf entry one) a run's trees may take
/// (Options::wordsPerRule): HiCuts replicates a rule into every child its
/// box meets, and rulesets full of wildcards and overlapping prefixes
/// (ClassBench's acl and fw shapes) multiply that at every level (10,000
/// acl rules once took 268 MB and 31 s). Past the budget the builder stops
/// cutting and leaves grow. At most 8M words (32 MiB), whatever the rules.
/// wordsPerRule 0 is for tests: 16 words, so nearly every run is split.
inline size_t wordBudget(size_t rules, unsigned wordsPerRule) {
  constexpr size_t kMaxWords = size_t(8) << 20;
  if (wordsPerRule == 0)
    return 16;
  return std::min(65536 + size_t(wordsPerRule) * rules, kMaxWords);
}

/// build() within `words` words: where cuts would take more, leaves are
/// longer; nothing when even one leaf a tree holding the rules takes more
/// (the caller splits the run).
std::optional<Image> buildWithin(const std::vector<const ir::Rule *> &rules,
                                 const Options &o, size_t words);

/// What a packet costs the program's walk of `img`, roughly (a tree's
/// call, a node, a leaf entry tested), on average over keys drawn from the
/// boxes of its rules (a fixed sequence): how build() chooses between one
/// tree and a forest.
double walkCost(const Image &img);

/// The reference walk of an Image's tree `tree`, as the program does it:
/// the rule indexes in `img.rules` that the program tests for `key`, in
/// order (the leaf's list), with LeafCertain kept. For tests.
std::vector<uint32_t> leafOf(const Image &img, const uint32_t key[KeyWords],
                             unsigned tree = 0);

/// What the matcher makes of one rule record for a key: no match, a
/// match, or xt_tcpudp's hotdrop (the packet is dropped, nothing counted).
enum class RecResult { NoMatch, Match, Hotdrop };
RecResult matchRec(const RuleRec &r, const uint32_t key[KeyWords]);

/// What a run decides for a key: the rules counted (in rule order) and how
/// it ends: `Next` (the rule after the run), ACCEPT, DROP, or a hotdrop.
struct Decision {
  enum End { Next, Accept, Drop, Hotdrop } end = Next;
  std::vector<uint32_t> counted;
  bool operator==(const Decision &o) const {
    return end == o.end && counted == o.counted;
  }
};
/// The straight-line meaning: each rule in turn.
Decision linearDecide(const Image &img, const uint32_t key[KeyWords]);
/// The walk the program makes: every tree's leaf, the earliest event over
/// all of them, the count-only rules before it (forest or one tree).
Decision forestDecide(const Image &img, const uint32_t key[KeyWords]);

} // namespace r2x::classify
