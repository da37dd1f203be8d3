//===- test/packet/Random.cpp - random and mutated frames ----------------===//
//
/// \file
/// A seeded loop of frames no one would write by hand: pure garbage, and
/// well-formed frames with fields pushed to their edges and bytes flipped.
/// Every frame goes through every rule; the model is the oracle, and
/// XDP_ABORTED, a failed run or a changed frame is always a failure. The seed
/// is printed so a failure can be replayed with `--seed`.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

#include <iostream>
#include <map>
#include <random>

namespace r2x::test {

namespace {

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

  std::vector<uint8_t> structured() {
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
    for (unsigned i = 0; i < tags; ++i) {
      uint16_t tpid = pick<uint16_t>(
          {0x8100, 0x88a8, 0x8100, 0x88a8, 0x8100, 0x88a8, 0x8100, 0x9100});
      uint16_t vid = pick<uint16_t>({10, 11, 20, 30, 0, uint16_t(below(4096))});
      f.tags.push_back({tpid, uint16_t(vid | (below(16) << 12))});
    }
    if (chance(8))
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
    if (chance(20))
      f.l4Keep = below(f.l4Bytes().size() + 1);
    if (chance(10))
      f.totLenOverride = chance(50) ? uint16_t(f.ipTotLen() + below(17) - 8)
                                    : uint16_t(rng_());
    if (chance(5))
      f.ihlOverride = uint8_t(below(16));
    if (chance(3))
      f.version = uint8_t(below(16));
    if (chance(30)) {
      f.padTo = 60 + below(40);
      f.padByte = uint8_t(rng_());
    }
    if (chance(5))
      f.cutTo = 14 + below(80);

    std::vector<uint8_t> bytes = f.build();
    if (chance(20))
      for (uint64_t n = 1 + below(3); n; --n)
        bytes[below(bytes.size())] ^= uint8_t(1 + below(255));
    return bytes;
  }

  std::vector<uint8_t> frame() { return chance(10) ? garbage() : structured(); }

private:
  std::mt19937_64 rng_;
};

} // namespace

void randomCases(Harness &h, uint64_t seed, int iterations) {
  const std::vector<std::string> rules = {
      "-A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP",
      "-A INPUT -s 10.1.0.0/16 -p tcp --sport 1000:2000 -j ACCEPT",
      "-A INPUT ! -s 10.1.0.1 -p tcp ! --dport 22 -j DROP",
      "-A INPUT -d 10.1.0.0/255.255.0.0 -p udp ! --sport 53 --dport 1000:2000 "
      "-j DROP",
      "-t raw -A PREROUTING -p udp --sport 53 -j DROP",
      "-t raw -A PREROUTING -d 10.1.0.0/255.255.0.0 -p tcp --dport 80 -j "
      "ACCEPT",
      "-A INPUT -i r2x+ -p 17 -j DROP",
      "-A INPUT ! -i r2xa0.10 -d 10.1.0.2 -j DROP",
      "-A FORWARD -p udp --dport 1234 -j DROP",
      "-A INPUT ! -p icmp -j DROP",
      "-A INPUT -j DROP",
  };
  const std::string name = "random (seed " + std::to_string(seed) + ")";
  if (!h.wants(name))
    return;

  // A rule that does not load fails once, not once per frame.
  std::vector<std::string> usable;
  for (const auto &r : rules) {
    Loaded &l = h.load(r);
    if (l.error.empty())
      usable.push_back(r);
    else
      h.record(name + " rule " + r, false, "rule2xdp " + r + ": " + l.error);
  }

  const std::vector<uint32_t> ifaces = {h.ifindex("lo"), h.ifindex("r2xa0"),
                                        h.ifindex("r2xb0")};
  Gen g(seed);
  const int failedBefore = h.failed();
  // What the frames exercised, so a weak generator shows in the log.
  std::map<std::string, int> seen;
  for (int i = 0; i < iterations; ++i) {
    std::vector<uint8_t> frame = g.frame();
    uint32_t ifi = ifaces[g.below(ifaces.size())];
    for (const auto &r : usable) {
      Expected e = h.expectModel(name + " frame #" + std::to_string(i) +
                                     " rule \"" + r + "\"",
                                 r, frame, ifi);
      std::string kind = e.trace.substr(0, e.trace.find(':'));
      if (kind != "ignored")
        kind = e.trace.find("hotdrop") != std::string::npos ? "hotdrop"
               : e.trace.find("fragment") != std::string::npos
                   ? "left to reassembly"
               : e.trace.find(": match") != std::string::npos ? "rule matched"
                                                              : "policy";
      ++seen[kind];
      if (h.failed() - failedBefore >= 20) {
        std::cout << "random: stopping after 20 failures (seed " << seed
                  << ")\n";
        return;
      }
    }
  }
  std::cout << "random: " << iterations << " frames x " << usable.size()
            << " rules:";
  for (auto &[k, n] : seen)
    std::cout << " " << k << " " << n << ";";
  std::cout << "\n";
}

} // namespace r2x::test
