//===- test/packet/Cases.h - the packet test cases --------------*- C++ -*-===//
//
/// \file
/// The case lists, one function per namespace phase (see Harness.h), plus
/// the seeded random-frame loop.
//===----------------------------------------------------------------------===//
#pragma once

#include "test/packet/Harness.h"

#include <cstdint>

namespace r2x::test {

/// Every match, VLAN/QinQ, options, fragments, truncation, malformed frames
/// and padding, in a namespace where every packet is INPUT.
void inputCases(Harness &h);

/// FORWARD vs INPUT through the routing decision, and fragments seen one by
/// one in FORWARD.
void forwardCases(Harness &h);

/// Random and mutated frames through several rules; the model is the oracle
/// and XDP_ABORTED is never acceptable. Runs in the INPUT phase.
void randomCases(Harness &h, uint64_t seed, int iterations);

/// Whole rulesets (`rule2xdp -f`): a host firewall with user chains, jumps,
/// gotos and RETURN, raw before filter, -I, counting rules, nested chains,
/// ignored OUTPUT rules, and rulesets the compiler must refuse. INPUT phase.
void rulesetInputCases(Harness &h);

/// Hand-over mode (--pass-unsupported): actions and what XDP counts.
/// INPUT phase.
void handoverCases(Harness &h);

/// A router's FORWARD chain with a user chain, in the FORWARD phase.
void rulesetForwardCases(Harness &h);

/// Random rulesets (user chains, jumps, gotos, RETURN, policies) and random
/// frames; the ruleset model is the oracle. Runs in the current phase.
/// `big` > 0: filter's built-in chains get about `big` rules, mostly
/// simple ones (long runs for the classifier).
void randomRulesets(Harness &h, uint64_t seed, int rulesets, int frames,
                    unsigned big = 0);

/// The rulesets in files `paths` (iptables-save form, of the current
/// phase), each with `frames` random frames of a fixed seed: rulesets that
/// once broke something (test/packet/Inputs), kept whatever the random
/// generator becomes.
void fileRulesets(Harness &h, const std::vector<std::string> &paths,
                  int frames);

} // namespace r2x::test
