//===- test/packet/Ruleset.h - a whole ruleset's meaning, for tests -*- C++
//-*-===//
//
/// \file
/// The reference model of a ruleset in iptables-save form, written from
/// netfilter's traversal (ipt_do_table) independently of the compiler:
///
///  - each hook's tables in netfilter's priority order: raw PREROUTING,
///    mangle PREROUTING, then the routing decision, then mangle and filter
///    INPUT, or mangle and filter FORWARD. Each table is its own traversal,
///    so ACCEPT in raw goes on to mangle and filter. A table that is loaded
///    has all its built-in chains (policy ACCEPT unless set); nat and
///    security sections must be empty and change nothing;
///  - within a chain, rules in order. A matched rule counts (1 packet,
///    tot_len bytes) before its target acts: ACCEPT ends the table, DROP
///    ends everything, no target goes on, `-j USER` runs USER and comes back
///    to the next rule when USER falls off its end or RETURNs, `-g USER` runs
///    USER and, when it falls off or RETURNs, goes where the calling chain
///    would have returned (no stack frame is pushed);
///  - RETURN in, or the end of, a built-in chain: the policy (its counter,
///    then ACCEPT or DROP);
///  - a hotdrop (evalRule) is XDP_DROP at once; counters already bumped stay;
///  - the LOCAL_IN hook sees reassembled datagrams: a non-first fragment
///    goes to the kernel (XDP_PASS) before mangle or filter INPUT counts.
///
/// Each rule's matches are the single-rule model's (Model.h, evalRule).
/// The model parses the same text that is given to `rule2xdp -f`, a small
/// subset of iptables-restore's input: `*table`, `:CHAIN POLICY [p:b]`,
/// `[p:b]` before a command, -A, -I CHAIN [N], -N, -P, COMMIT.
//===----------------------------------------------------------------------===//
#pragma once

#include "test/packet/Model.h"

#include <optional>
#include <string>
#include <vector>

namespace r2x::test {

struct RsRule {
  enum class Target { Accept, Drop, None, Return, Jump, Goto };
  Rule m; // the matches (and the words as written)
  Target target = Target::None;
  std::string callee; // Jump / Goto: the user chain
  unsigned line = 0;  // in the ruleset text
};

struct RsChain {
  std::string table, name;
  bool user = false;
  bool egress = false; // OUTPUT and the like: parsed, never traversed
  std::string policy = "ACCEPT";
  std::vector<RsRule> rules;
};

struct Ruleset {
  std::string text;
  std::vector<RsChain> chains;
  /// Index of chain (table, name) or -1.
  int find(const std::string &table, const std::string &name) const;
};

/// Parses a ruleset. Throws std::invalid_argument on anything the model
/// does not know or iptables-restore would refuse (the tests never give the
/// model a ruleset the compiler should refuse).
Ruleset parseRuleset(const std::string &text);

/// Counter slots of the compiled object for each model chain: rule[ci][ri]
/// and policy[ci] (-1 for user and egress chains).
struct SlotMap {
  std::vector<std::vector<unsigned>> rule;
  std::vector<int> policy;
};

/// "CHAIN/N" (1-based rule number as iptables -L --line-numbers shows it) or
/// "CHAIN/policy", in table filter; "raw:CHAIN/N", "mangle:CHAIN/policy"
/// for the other tables. Throws
/// std::invalid_argument if the label names nothing.
unsigned slotOfLabel(const Ruleset &rs, const SlotMap &slots,
                     const std::string &label);

/// The expected action and counters for a packet. `route` is the routing
/// decision for it (nullopt: the kernel keeps it, no filter chain sees it);
/// `ifname` the device the frame's {ifindex, VIDs} names.
Expected evalRuleset(const Ruleset &rs, const SlotMap &slots, const Parsed &p,
                     std::optional<FilterChain> route,
                     const std::optional<std::string> &ifname);

/// The columns of `iptables -vxnL` the compiler's metadata renders for a
/// rule (prot, in, source, destination, extra), for checking that the
/// object's slot N is the rule the model thinks it is.
struct ListingColumns {
  std::string target, prot, in, source, destination, extra;
};
ListingColumns listingColumns(const RsRule &r);

} // namespace r2x::test
