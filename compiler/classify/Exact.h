//===- compiler/classify/Exact.h - runs of one-address rules -----*- C++
//-*-===//
//
/// \file
/// Exact runs (docs/classifier.md, "IPv6 exact runs"): consecutive rules of
/// an ip6tables chain that each test one address, the same side in all of
/// them, with a /128 prefix and nothing else, and end in ACCEPT or DROP (in
/// hand-over mode also a target XDP hands over). A fail2ban jail for
/// ip6tables is such a run: one `-s ADDR/128 -j REJECT` rule per ban.
///
/// At most one rule's address equals the packet's, unless two rules name
/// the same address, and then the first decides (the later one can never
/// match). So the run is a table of the addresses, each with the first
/// rule that names it, hashed into buckets, and a packet costs one hash and
/// a scan of its bucket (about one entry): found, that rule matched
/// (counted, its verdict); not found, no rule of the run matched, and the
/// rule after the run follows.
///
/// The tree (Classify.h) classifies IPv4 only; this is the IPv6 structure
/// for the shape that grows large in practice. This layer depends on the IR
/// only; the backend lays the table out (ExactCodegen.h).
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/classify/Classify.h"
#include "compiler/ir/IR.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace r2x::classify {

/// An address as the program's search compares it: `hi` holds bytes 0-7
/// and `lo` bytes 8-15, each as two 32-bit words loaded from the packet
/// (little-endian BPF loads of network-order bytes), the first word in the
/// upper half. Entries are sorted by (hi, lo) as unsigned numbers; the
/// program forms the packet's key the same way, so the order is the same.
struct ExactKey {
  uint64_t hi = 0, lo = 0;
  bool operator<(const ExactKey &o) const {
    return hi != o.hi ? hi < o.hi : lo < o.lo;
  }
  bool operator==(const ExactKey &o) const { return hi == o.hi && lo == o.lo; }
};
ExactKey exactKey(const std::array<uint8_t, 16> &address);

/// An entry's info word: the rule's counter slot, its verdict
/// (RuleVerdict: VerdictAccept or VerdictDrop) and ExactUncounted.
inline constexpr uint32_t ExactSlotMask = 0x00ffffffu, ExactVerdictShift = 24,
                          ExactVerdictMask = 0x3;
/// Hand-over mode: the kernel counts the rule (ACCEPT, or a target XDP
/// hands over).
inline constexpr uint32_t ExactUncounted = 0x80000000u;

struct ExactEntry {
  ExactKey key;
  uint32_t info = 0;
  uint32_t rule = 0; ///< the rule's index in the run (for tests)
};

/// A run as the program's table: one entry per distinct address (the
/// first rule naming it), in bucket order (exactBucket()), and for bucket
/// b its entries [bucketStart[b], bucketStart[b + 1]); `source`: the rules
/// test -s.
struct ExactImage {
  bool source = true;
  unsigned bucketBits = 0; ///< 2^bucketBits buckets, at least the entries
  std::vector<ExactEntry> entries;
  std::vector<uint32_t> bucketStart; ///< 2^bucketBits + 1 offsets
  unsigned maxBucket = 0;            ///< the longest bucket: the scan's bound
};

/// The longest bucket buildExact() aims at: past it, it doubles the
/// buckets (three times at most).
inline constexpr unsigned kExactMaxBucket = 8;

/// The bucket of `key` among 2^bits (multiplicative hashing, the top bits
/// of a 64-bit product; the program computes the same).
inline constexpr uint64_t kExactMulHi = 0x9e3779b97f4a7c15ull,
                          kExactMulLo = 0xc2b2ae3d27d4eb4full;
inline uint32_t exactBucket(const ExactKey &key, unsigned bits) {
  if (bits == 0)
    return 0;
  uint64_t x = (key.hi * kExactMulHi ^ key.lo) * kExactMulLo;
  return uint32_t(x >> (64 - bits));
}

/// Empty when `r` (a rule of a chain of `family` and `table`) can be an
/// exact run's rule; then `source` says which side its address test is
/// on. Else why not.
std::string notExact(const ir::Rule &r, ir::Family family, ir::Table table,
                     bool handover, bool &source);

/// The length of the exact run of `c` that starts at rule `first` (0 if
/// none, or shorter than the options ask: Options::minRun in Auto, 1 in
/// Always, never in Never). IPv6 chains only.
size_t exactRunAt(const ir::Chain &c, size_t first, const Options &o);

/// The run `rules` (each accepted by notExact(), all on one side) as a
/// table.
ExactImage buildExact(const std::vector<const ir::Rule *> &rules,
                      bool handover);

/// The program's search (the same steps): the index of the entry whose
/// key is `key`, or -1. For tests.
long exactFind(const ExactImage &img, const ExactKey &key);

} // namespace r2x::classify
