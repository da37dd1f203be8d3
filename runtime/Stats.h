//===- runtime/Stats.h - per-rule counters of a loaded program --*- C++ -*-===//
//
/// \file
/// `rule2xdp --stats IFACE [--json]`: the counters of rule2xdp's program on
/// an interface, found from the interface (runtime/Discover.h), so they are
/// this namespace's interface's and nobody else's. One reading, two
/// renderings with the same content: the layout of `iptables -vxnL`, and
/// JSON (nlohmann::json).
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Loader.h"
#include "runtime/Meta.h"
#include "runtime/contract/Object.h"

#include <string>
#include <vector>

namespace r2x::runtime {

struct RuleCount {
  MetaRule rule;
  contract::CounterValue count;
  std::string key; ///< the slot's stable key; empty for version 1 objects
};

struct ChainCount {
  std::string table, name;
  bool user = false;  ///< a user chain: no policy, references
  std::string policy; ///< built-in chains
  contract::CounterValue policyCount{0, 0};
  unsigned references = 0; ///< user chains: rules that jump or go to it
  std::vector<RuleCount> rules;
};

struct Stats {
  std::string iface;
  unsigned ifindex = 0;
  uint32_t progId = 0;
  XdpMode mode = XdpMode::Native;
  uint32_t dispatcherId = 0;       ///< non-zero: in this libxdp dispatcher
  std::vector<std::string> tables; ///< in order of first appearance
  std::vector<ChainCount> chains;  ///< in display order
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

/// As `iptables -vxnL` (iptables 1.8.9) prints it.
std::string statsTable(const Stats &stats);

/// The same content as JSON (docs/user-guide.md describes its fields).
std::string statsJson(const Stats &stats);

} // namespace r2x::runtime
