//===- test/diff/Netfilter.h - the kernel side: iptables back ends -*- C++
//-*-===//
//
/// \file
/// Installs a whole ruleset (an iptables-save text) in B's netfilter with
/// iptables-restore / ip6tables-restore of the legacy or the nft back end,
/// and reads every counter with iptables-save -c. The process is already
/// inside B (Topology.h), so the iptables children are.
///
/// Only one back end and one family holds rules at a time: before each
/// install the legacy tables filter, raw and mangle of both families are
/// restored empty (policies ACCEPT, counters 0) and the nf_tables ruleset
/// of B is flushed. Empty legacy chains with an ACCEPT policy may stay
/// registered while nft is tested (x_tables tables cannot be unregistered
/// from a netns); they accept everything, so they do not change a verdict.
///
/// iptables-nft creates base chains lazily and `iptables-nft-save` prints
/// built-in chains that do not exist in the kernel with [0:0]; so for nft
/// every built-in chain the ruleset names is checked with `nft list table`
/// after the restore, and made with `-P CHAIN POLICY` if it is missing.
//===----------------------------------------------------------------------===//
#pragma once

#include "test/diff/Generate.h" // Family

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace r2x::diff {

enum class Backend { Legacy, Nft };
const char *backendName(Backend b, Family f = Family::V4);

struct Count {
  uint64_t packets = 0, bytes = 0;
  bool operator==(const Count &) const = default;
};

/// Every counter of every table as `iptables-save -c` shows it, by key:
/// "TABLE:CHAIN policy" and "TABLE:CHAIN#N" (N: the rule's 1-based
/// position in its chain, as `iptables -L --line-numbers` numbers it).
struct Counters {
  std::map<std::string, Count> count;
  std::string text; // the raw output
};

class Netfilter {
public:
  /// `netnsPath`: /run/netns/B. Every iptables or nft command is refused
  /// unless the process is in that namespace, so a broken setup can never
  /// touch the host's firewall.
  explicit Netfilter(const std::string &netnsPath);

  /// Clears both back ends, both families. Returns an error text, empty on
  /// success.
  std::string reset();

  /// Installs the ruleset `text` with back end `b` after reset(). Returns an
  /// error text, empty on success; `refused` tells whether iptables-restore
  /// refused the text (as opposed to a setup failure).
  std::string install(Backend b, Family f, const std::string &text,
                      bool &refused);

  /// Creates the ipset sets of `text` (`ipset save` output) in B, or adds
  /// to them: `ipset restore -exist`. Sets outlive reset() (rules may still
  /// name them), so each ruleset's sets need names of their own. Returns an
  /// error text, empty on success.
  std::string restoreSets(const std::string &text);
  /// Reads the counters. Throws std::runtime_error on failure.
  Counters read(Backend b, Family f);

private:
  void checkNamespace() const;
  unsigned long long dev_ = 0, ino_ = 0;
  std::string netnsPath_;
};

} // namespace r2x::diff
