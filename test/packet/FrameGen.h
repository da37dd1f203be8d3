//===- test/packet/FrameGen.h - seeded random frames -------------*- C++
//-*-===//
//
/// \file
/// The random frame generator shared by the single-rule loop (Random.cpp)
/// and the ruleset loop (RulesetRandom.cpp): pure garbage, and well-formed
/// frames with fields pushed to their edges and bytes flipped.
//===----------------------------------------------------------------------===//
#pragma once

#include "test/packet/Frame.h"

#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

namespace r2x::test {

class Gen {
public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <class T> T pick(std::initializer_list<T> xs) {
    return *(xs.begin() + below(xs.size()));
  }

  std::vector<uint8_t> garbage() {
    std::vector<uint8_t> f(14 + below(120));
    for (auto &b : f)
      b = uint8_t(rng_());
    // Often make it look like IPv4 so the parser gets further than L2.
    if (chance(50)) {
      f[12] = 0x08;
      f[13] = 0x00;
      if (f.size() > 14 && chance(70))
        f[14] = uint8_t(0x40 | (f[14] & 0x0f));
    }
    return f;
  }

  uint32_t addr() {
    return pick<uint32_t>({0x0a010001, 0x0a010002, 0x0a010003, 0x0a010707,
                           0x0a01ffff, 0x0a020001, 0xc0a80101,
                           uint32_t(rng_())});
  }
  uint16_t port() {
    return pick<uint16_t>({0, 22, 53, 80, 999, 1000, 1500, 2000, 2001, 1233,
                           1234, 1235, 65535, uint16_t(rng_())});
  }

  /// A frame built by Frame with fields pushed to their edges. `tame` keeps
  /// the same draws but makes malformed shapes rarer, so more frames reach
  /// the chains (the ruleset loop wants paths through rules, not parsers).
  std::vector<uint8_t> structured(bool tame = false) {
    Frame f;
    switch (below(4)) {
    case 0:
      f = Frame::udp("10.1.0.1", "10.1.0.2", 1, 1);
      break;
    case 1:
      f = Frame::tcp("10.1.0.1", "10.1.0.2", 1, 1);
      break;
    case 2:
      f = Frame::icmp("10.1.0.1", "10.1.0.2");
      break;
    default:
      f = Frame::raw("10.1.0.1", "10.1.0.2", uint8_t(rng_()));
      break;
    }
    if (chance(10))
      f.proto = pick<uint8_t>({0, 1, 6, 17, uint8_t(rng_())});
    f.src = addr();
    f.dst = addr();
    f.sport = port();
    f.dport = port();
    f.payloadLen = below(48);

    // Mostly 0..2 tags of the two TPIDs the contract knows; a third tag or
    // an unknown TPID now and then (the frame is then not IPv4).
    unsigned tags =
        unsigned(pick<int>({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3}));
    if (tame && tags > 1 && chance(80))
      tags = 0;
    for (unsigned i = 0; i < tags; ++i) {
      uint16_t tpid = pick<uint16_t>(
          {0x8100, 0x88a8, 0x8100, 0x88a8, 0x8100, 0x88a8, 0x8100, 0x9100});
      if (tame && tpid == 0x9100)
        tpid = 0x8100;
      uint16_t vid = pick<uint16_t>({10, 11, 20, 30, 0, uint16_t(below(4096))});
      f.tags.push_back({tpid, uint16_t(vid | (below(16) << 12))});
    }
    if (chance(tame ? 1 : 8))
      f.etherType = pick<uint16_t>({0x86dd, 0x0806, 0x8100, uint16_t(rng_())});

    if (chance(30)) {
      f.options.resize(below(41));
      for (auto &b : f.options)
        b = uint8_t(rng_());
    }
    if (chance(30)) {
      f.fragOffset = pick<uint16_t>({0, 1, 2, 3, 185, uint16_t(below(8192))});
      f.mf = chance(50);
    }
    f.df = chance(20);
    if (chance(tame ? 8 : 20))
      f.l4Keep = below(f.l4Bytes().size() + 1);
    if (chance(tame ? 3 : 10))
      f.totLenOverride = chance(50) ? uint16_t(f.ipTotLen() + below(17) - 8)
                                    : uint16_t(rng_());
    if (chance(tame ? 1 : 5))
      f.ihlOverride = uint8_t(below(16));
    if (chance(tame ? 1 : 3))
      f.version = uint8_t(below(16));
    if (chance(30)) {
      f.padTo = 60 + below(40);
      f.padByte = uint8_t(rng_());
    }
    if (chance(tame ? 1 : 5))
      f.cutTo = 14 + below(80);

    std::vector<uint8_t> bytes = f.build();
    if (chance(tame ? 4 : 20))
      for (uint64_t n = 1 + below(3); n; --n)
        bytes[below(bytes.size())] ^= uint8_t(1 + below(255));
    return bytes;
  }

  std::vector<uint8_t> frame() { return chance(10) ? garbage() : structured(); }

private:
  std::mt19937_64 rng_;
};

} // namespace r2x::test
