//===- runtime/Stats.h - per-rule counters of a loaded program --*- C++ -*-===//
//
/// \file
/// `rule2xdp --stats IFACE [--json]`: the counters of rule2xdp's program on
/// an interface, found from the interface (runtime/Discover.h), so they are
/// this namespace's interface's and nobody else's. One reading, two
/// renderings with the same content: the layout of `iptables -vxnL`, and
/// JSON (nlohmann::json).
///
/// A program compiled in hand-over mode (`--accelerate`, or
/// `--pass-unsupported`) decides only some packets in XDP and passes the
/// rest to the kernel's ruleset, which counts them. Then the driver adds
/// the kernel's counters of the same rules (compiler/driver/KernelStats.h)
/// and both renderings show them beside XDP's.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Loader.h"
#include "runtime/Meta.h"
#include "runtime/contract/Object.h"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace r2x::runtime {

/// The kernel's counters for a rule or policy of XDP's program.
struct KernelCount {
  /// false: the kernel's rule at this place is not the one XDP's program
  /// was compiled from (the rules changed since the load); no counts.
  bool paired = false;
  contract::CounterValue count{0, 0};
};

struct RuleCount {
  MetaRule rule;
  contract::CounterValue count;
  std::string key; ///< the slot's stable key; empty for version 1 objects
  std::optional<KernelCount> kernel; ///< set when Stats::kernel is
};

struct ChainCount {
  std::string table, name;
  bool user = false;  ///< a user chain: no policy, references
  std::string policy; ///< built-in chains
  contract::CounterValue policyCount{0, 0};
  unsigned references = 0; ///< user chains: rules that jump or go to it
  std::optional<KernelCount> policyKernel; ///< built-in chains
  std::vector<RuleCount> rules;
};

struct Stats {
  std::string iface;
  unsigned ifindex = 0;
  uint32_t progId = 0;
  XdpMode mode = XdpMode::Native;
  uint32_t dispatcherId = 0; ///< non-zero: in this libxdp dispatcher
  bool handover = false;     ///< the metadata's `mode`
  /// The metadata's `handall`: why XDP decides no packet (empty: it
  /// decides what it can).
  std::string handAll;
  std::vector<std::string> tables; ///< in order of first appearance
  std::vector<ChainCount> chains;  ///< in display order
  /// With LOG rules XDP carries out (standalone mode): the LOG events not
  /// written (the `loglost` counter).
  std::optional<contract::CounterValue> logLost;
  /// Set when the kernel's counters are shown beside XDP's: the iptables
  /// back end they were read from ("nft", "legacy", "none").
  std::optional<std::string> kernel;
  /// Why the kernel's counters were asked for but are not shown (the
  /// first line of the error); empty otherwise.
  std::string kernelError;
};

/// A rule's columns as both renderings show them: empty fields filled in as
/// iptables shows them, a negation as a leading '!', the `[goto]` marker
/// taken out of the match text.
struct ShownRule {
  std::string target, prot, opt, in, out, source, destination;
  bool isGoto = false;
  std::string matches; ///< the match text (iptables' last column)
};
ShownRule showRule(const MetaRule &rule);

/// Reads the counters of rule2xdp's program on `iface`. Throws LoadError
/// ("rule2xdp has no program on IFACE" when there is none).
Stats readStats(const std::string &iface);

/// The chains and rules of `meta` with the counts `counter` gives for each
/// slot (readStats() reads them from the program's map). The program and
/// interface fields stay empty.
Stats statsFromMeta(
    const Meta &meta,
    const std::function<contract::CounterValue(unsigned)> &counter);

/// As `iptables -vxnL` (iptables 1.8.9) prints it; with the kernel's
/// counters, two more columns after XDP's, and the policy line says both.
std::string statsTable(const Stats &stats);

/// The same content as JSON (docs/user-guide.md describes its fields).
std::string statsJson(const Stats &stats);

} // namespace r2x::runtime
