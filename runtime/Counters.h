//===- runtime/Counters.h - counters across a replace -----------*- C++ -*-===//
//
/// \file
/// Private to runtime/. A load that replaces rule2xdp's program keeps the
/// counters of the rules that did not change, as iptables keeps a rule's
/// counters when other rules are inserted or deleted: every counter slot
/// has a stable key in the metadata (contract::meta::Key), and the old
/// program's per-CPU values move to the new program's slot with the same
/// key, before the new program is attached.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Discover.h"
#include "runtime/Meta.h"

#include <vector>

namespace r2x::runtime::detail {

/// Adds the per-CPU counters of every slot of the `old` programs whose key
/// `fresh` also has to that slot of `freshFd` (a new, not yet attached
/// r2x_counters). Old programs sharing one counters map (a load on several
/// interfaces) count once. Old programs without keys (object contract
/// version 1) keep nothing. Returns the number of slots that kept counts.
/// Throws LoadError.
unsigned carryCounters(int freshFd, const Meta &fresh,
                       const std::vector<OwnProgram> &old);

} // namespace r2x::runtime::detail
