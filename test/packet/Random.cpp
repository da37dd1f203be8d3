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

#include "test/packet/FrameGen.h"

#include <iostream>
#include <map>

namespace r2x::test {

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
