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

} // namespace r2x::test
