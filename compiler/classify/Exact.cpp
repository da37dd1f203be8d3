//===- compiler/classify/Exact.cpp - runs of one-address rules ------------===//
#include "compiler/classify/Exact.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace r2x::classify {

ExactKey exactKey(const std::array<uint8_t, 16> &address) {
  uint32_t w[4];
  std::memcpy(w, address.data(), sizeof w); // as the program loads them
  return {uint64_t(w[0]) << 32 | w[1], uint64_t(w[2]) << 32 | w[3]};
}

std::string notExact(const ir::Rule &r, ir::Family family, ir::Table table,
                     bool handover, bool &source) {
  if (family != ir::Family::V6)
    return "not an ip6tables rule";
  if (table == ir::Table::Nat)
    return "a nat rule";
  bool target = r.verdict == ir::Verdict::Accept ||
                r.verdict == ir::Verdict::Drop ||
                (handover && r.verdict == ir::Verdict::Handover);
  if (!target)
    return std::string("target ") + ir::verdictName(r.verdict);
  if (r.matches.size() != 1)
    return "not one match";
  const ir::Match &m = r.matches.front();
  const ir::Match::Address *a = m.as<ir::Match::Address>();
  if (!a)
    return "not an address match";
  if (m.negated)
    return "a negated address";
  for (uint8_t byte : a->mask6)
    if (byte != 0xff)
      return "a prefix shorter than /128";
  source = a->side == ir::Match::Address::Side::Source;
  return {};
}

size_t exactRunAt(const ir::Chain &c, size_t first, const Options &o) {
  if (o.mode == Mode::Never || first >= c.rules.size())
    return 0;
  bool side = false;
  if (!notExact(c.rules[first], c.family, c.table, o.handover, side).empty())
    return 0;
  size_t end = first + 1;
  for (bool s = false; end < c.rules.size(); ++end)
    if (!notExact(c.rules[end], c.family, c.table, o.handover, s).empty() ||
        s != side)
      break;
  size_t minRun = o.mode == Mode::Always ? 1 : std::max(1u, o.minRun);
  return end - first >= minRun ? end - first : 0;
}

ExactImage buildExact(const std::vector<const ir::Rule *> &rules,
                      bool handover) {
  ExactImage img;
  img.entries.reserve(rules.size());
  for (size_t i = 0; i < rules.size(); ++i) {
    const ir::Rule &r = *rules[i];
    bool source = true;
    if (!notExact(r, ir::Family::V6, ir::Table::Filter, handover, source)
             .empty())
      throw std::invalid_argument("buildExact: rule " + std::to_string(i) +
                                  " is not an exact run's rule");
    if (i == 0)
      img.source = source;
    else if (source != img.source)
      throw std::invalid_argument("buildExact: rules on both sides");
    if (r.counter > ExactSlotMask)
      throw std::invalid_argument("buildExact: counter slot out of range");
    ExactEntry e;
    e.key = exactKey(r.matches.front().as<ir::Match::Address>()->net6);
    e.rule = uint32_t(i);
    uint32_t verdict =
        r.verdict == ir::Verdict::Drop ? VerdictDrop : VerdictAccept;
    e.info = r.counter | verdict << ExactVerdictShift;
    // Hand-over mode: XDP counts only what it drops; ACCEPT and the
    // targets it hands over go to the kernel, which counts them.
    if (handover && r.verdict != ir::Verdict::Drop)
      e.info |= ExactUncounted;
    img.entries.push_back(e);
  }
  // By key, and for one key the first rule first: it is the one that
  // decides; the others are dropped.
  std::stable_sort(
      img.entries.begin(), img.entries.end(),
      [](const ExactEntry &a, const ExactEntry &b) { return a.key < b.key; });
  img.entries.erase(std::unique(img.entries.begin(), img.entries.end(),
                                [](const ExactEntry &a, const ExactEntry &b) {
                                  return a.key == b.key;
                                }),
                    img.entries.end());
  // Buckets: at least as many as entries (about one entry a bucket), more
  // while the longest bucket (the program's scan, unrolled) is long.
  unsigned bits = 0;
  while ((size_t(1) << bits) < img.entries.size())
    ++bits;
  for (unsigned extra = 0;; ++extra, ++bits) {
    img.bucketBits = bits;
    std::stable_sort(img.entries.begin(), img.entries.end(),
                     [bits](const ExactEntry &a, const ExactEntry &b) {
                       return exactBucket(a.key, bits) <
                              exactBucket(b.key, bits);
                     });
    const size_t buckets = size_t(1) << bits;
    img.bucketStart.assign(buckets + 1, 0);
    for (const ExactEntry &e : img.entries)
      ++img.bucketStart[exactBucket(e.key, bits) + 1];
    img.maxBucket = 0;
    for (size_t b = 0; b < buckets; ++b) {
      img.maxBucket = std::max(img.maxBucket, img.bucketStart[b + 1]);
      img.bucketStart[b + 1] += img.bucketStart[b];
    }
    if (img.maxBucket <= kExactMaxBucket || extra == 3)
      break;
  }
  return img;
}

long exactFind(const ExactImage &img, const ExactKey &key) {
  if (img.entries.empty())
    return -1;
  const uint32_t b = exactBucket(key, img.bucketBits);
  for (uint32_t i = img.bucketStart[b]; i < img.bucketStart[b + 1]; ++i)
    if (img.entries[i].key == key)
      return long(i);
  return -1;
}

} // namespace r2x::classify
