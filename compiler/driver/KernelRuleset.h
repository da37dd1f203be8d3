//===- compiler/driver/KernelRuleset.h - the ruleset the kernel runs -*- C++
//-*-===//
//
/// \file
/// Reads the ruleset the kernel runs now in this network namespace: the
/// output of iptables-save and ip6tables-save, from the nft or the legacy
/// back end, whichever holds rules. `--accelerate` compiles it;
/// `--stats` reads the kernel's counters from it (`-c`). One reader for
/// both, so both always look at the same back end.
///
/// The save commands are found on PATH, or named by the environment
/// variables R2X_IPTABLES_NFT_SAVE, R2X_IPTABLES_LEGACY_SAVE,
/// R2X_IP6TABLES_NFT_SAVE and R2X_IP6TABLES_LEGACY_SAVE (tests use stand-in
/// scripts). A command that is not installed reads as an empty ruleset.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h"
#include "runtime/OtherHooks.h"

#include <array>
#include <string>
#include <vector>

namespace r2x::driver {

/// Why reading (or what follows it) failed: the exit status rule2xdp ends
/// with and the complete stderr text, "rule2xdp: error: ..." lines.
struct Failure {
  int status;
  std::string text;
};

/// One save command: which back end and family it reads, and the
/// environment variable that may name it instead of PATH.
struct SaveCommand {
  const char *backend; ///< "nft" or "legacy"
  ir::Family family;
  const char *program;
  const char *envVar;
};

/// What one save command printed (nothing if it is not installed).
struct SaveText {
  const SaveCommand *command;
  std::string text;
};

/// The kernel's ruleset as read now: the texts of the chosen back end and
/// a key that changes exactly when the rules do (comments and counters
/// left out).
struct Snapshot {
  std::string backend; ///< "nft", "legacy", or "none" (no rules anywhere)
  std::vector<SaveText> texts;
  std::string key;
  /// --accelerate only: what else the kernel runs on the interfaces'
  /// packets beside these texts (otherNftChains(), the interfaces' ingress
  /// classifiers); their descriptions are in `key` too.
  std::vector<std::string> others;
  /// --accelerate only: conntrack holds translated connections of IPv4
  /// ([0]) and IPv6 ([1]) (runtime::translatedConnections()); in `key` too.
  std::array<bool, 2> translated{};
};

/// Runs the four save commands (with `-c`, so each rule and policy carries
/// the kernel's `[PACKETS:BYTES]`, when `counters`) and keeps the texts of
/// the back end that holds rules. Throws Failure (status 2) when a command
/// fails, a back end's table cannot be shown by iptables, none is
/// installed, or both back ends hold rules.
Snapshot readKernelRuleset(bool counters = false);

/// The nftables base chains among `chains` that can judge, change or see
/// packets arriving on `ifaces` beside the iptables ruleset that
/// iptables-save shows, each described for a message ("inet fw in (hook
/// input, priority 0, with rules)"). iptables-nft's own tables (filter,
/// mangle, raw, nat, security of ip and ip6) are the ruleset read; arp
/// chains see no IP packet; a chain does nothing when its table is dormant
/// or it holds no rule and accepts; an ingress chain bound to other devices
/// never sees these packets. Every other chain is listed: netdev and inet
/// ingress (before netfilter), ip, ip6 and inet at any hook (they may
/// rewrite a packet before iptables sees it, drop what XDP would forward,
/// or count and log), egress and bridge (bypassed by XDP's own
/// transmissions).
std::vector<std::string>
otherNftChains(const std::vector<runtime::NftBaseChain> &chains,
               const std::vector<std::string> &ifaces);

} // namespace r2x::driver
