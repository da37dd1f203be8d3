//===- test/diff/Netfilter.h - the kernel side: iptables back ends -*- C++ -*-===//
//
/// \file
/// Installs one rule in B's netfilter with iptables-legacy or iptables-nft
/// and reads the counters of the chains the compiled program models. The
/// process is already inside B (Topology.h), so the iptables children are.
///
/// Only one back end holds rules at a time: before each install the legacy
/// tables filter and raw are restored empty (policies ACCEPT, counters 0)
/// and the nf_tables ruleset of B is flushed. Empty legacy chains with an
/// ACCEPT policy may stay registered while nft is tested (x_tables tables
/// cannot be unregistered from a netns); they accept everything, so they
/// do not change a verdict.
///
/// iptables-nft creates base chains lazily and `iptables-nft-save` prints
/// built-in chains that do not exist in the kernel with [0:0]; so for nft
/// every chain the program models is created explicitly with `-P CHAIN
/// ACCEPT` and checked with `nft list table`.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace r2x::diff {

enum class Backend { Legacy, Nft };
const char *backendName(Backend b);

struct Count {
  uint64_t packets = 0, bytes = 0;
  bool operator==(const Count &) const = default;
};

/// The counters of one table as `iptables-save -c -t TABLE` shows them.
struct TableCounters {
  std::map<std::string, Count> policy;                 // chain -> policy
  std::vector<std::pair<std::string, Count>> rules;    // chain, counters
  std::string text;                                    // the raw output
};

class Netfilter {
public:
  /// `netnsPath`: /run/netns/B. Every iptables or nft command is refused
  /// unless the process is in that namespace, so a broken setup can never
  /// touch the host's firewall.
  explicit Netfilter(const std::string &netnsPath);

  /// Clears both back ends. Returns an error text, empty on success.
  std::string reset();

  /// Installs `words` (an iptables rule, "-t raw -A PREROUTING ...") with
  /// back end `b` after reset(), creating `chains` of `table` first.
  /// Returns an error text (iptables refused it, ...), empty on success.
  std::string install(Backend b, const std::vector<std::string> &words,
                      const std::string &table,
                      const std::vector<std::string> &chains);

  /// Reads the counters of `table`. Throws std::runtime_error on failure.
  TableCounters read(Backend b, const std::string &table);

private:
  void checkNamespace() const;
  unsigned long long dev_ = 0, ino_ = 0;
  std::string netnsPath_;
};

} // namespace r2x::diff
