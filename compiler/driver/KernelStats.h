//===- compiler/driver/KernelStats.h - the kernel's side of --stats -*- C++
//-*-===//
//
/// \file
/// A program compiled in hand-over mode decides some packets in XDP and
/// passes the rest to the kernel, whose ruleset stays installed and counts
/// them. `rule2xdp --stats IFACE` then shows, per rule, XDP's counters and
/// the kernel's side by side. The kernel's are read with the save commands'
/// `-c` (KernelRuleset.h: the back end `--accelerate` reads), and each of
/// XDP's rules is paired with the kernel's rule at the same place:
///
///  - the kernel's ruleset is read as `--accelerate` reads it (hand-over
///    mode) and its rules are listed with the same renderer that wrote the
///    program's metadata (backend::metadataText), so a rule that did not
///    change has the very same columns;
///  - an XDP rule and a kernel rule pair when they are in the same table
///    and chain, at the same position, with the same columns; a policy
///    when the chain is built-in in both, with the same policy;
///  - anything else is "changed" (the kernel's rules changed since the
///    load): no counts, rather than another rule's.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/driver/KernelRuleset.h"
#include "runtime/Stats.h"

#include <ostream>

namespace r2x::driver {

/// Sets `stats.kernel` and every rule's and policy's kernel side from
/// `snapshot` (read with counters). Throws Failure (status 2) when the
/// kernel's ruleset cannot be read as rules.
void addKernelCounters(runtime::Stats &stats, const Snapshot &snapshot);

/// What `--stats` does: reads the kernel's ruleset with counters
/// (readKernelRuleset(true)) and adds them. If they cannot be read (a save
/// command fails, both back ends hold rules, ...), says why on `err`, sets
/// `stats.kernelError` and leaves the kernel's side out: XDP's counters
/// are shown all the same.
void tryKernelCounters(runtime::Stats &stats, std::ostream &err);

} // namespace r2x::driver
