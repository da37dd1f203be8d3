//===- runtime/Meta.h - the metadata a rule2xdp object carries --*- C++ -*-===//
//
/// \file
/// The compiler embeds a text description of its rules in the object (the
/// `.rodata` global `r2x_meta`) so the loader can fill interface matches and
/// redirect targets, and `--stats` can print counters like `iptables -vxnL`,
/// without the source. The format (one TAB-separated record per line: the
/// header, `mode`, `iface`, `chain`, `rule`, `redirect`, `key`, `dnat`,
/// `set`, `log`, `loglost`) is part
/// of the object contract: runtime/contract/Object.h spells it,
/// docs/object-contract.md describes it. parseMeta() is its one reader: every
/// record kind is parsed here, and nowhere else.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace r2x::runtime {

struct MetaIface {
  unsigned bit = 0;
  std::string pattern;
};

struct MetaRule {
  unsigned slot = 0;
  std::string table, chain, target, prot, opt, in, out, source, destination,
      extra;
};

struct MetaChain {
  std::string table, name, policy;
  int slot = -1; // -1: no policy counter
  std::vector<MetaRule> rules;
};

/// tc `mirred egress redirect dev DEV`: r2x_redirect slot `slot` is DEV.
struct MetaRedirect {
  unsigned slot = 0;
  std::string dev;
};

/// An ipset set's map and where its entries are in the object (`set`).
struct MetaSet {
  std::string map, name, create;
  uint64_t offset = 0, entries = 0;
};

/// A LOG rule XDP carries out (`log`): what `rule2xdp --log` prints its
/// lines with.
struct MetaLog {
  bool v6 = false;
  uint8_t level = 4, flags = 0; ///< flags: XT_LOG_* bits
  std::string prefix;
};
/// A `source` record group: one input the program was compiled from.
struct MetaSource {
  bool file = false; ///< a ruleset file (name, text), or one command (words)
  unsigned family = 4;
  std::string name, text;
  std::vector<std::string> words; ///< decoded
};

struct Meta {
  unsigned version = 0; ///< of the text read
  /// The `source` records, in order (empty for a program compiled before
  /// they existed, from tc filters, or by --accelerate).
  std::vector<MetaSource> source;
  /// The `mode` record: true when the program was compiled in hand-over
  /// mode (the kernel decides what XDP passes). Texts older than version 3
  /// do not say; they read as standalone.
  bool handover = false;
  std::vector<MetaIface> ifaces;
  std::vector<MetaChain> chains;
  std::vector<MetaRedirect> redirects; ///< in slot order as written
  /// Counter slot -> its stable key (`key` records; none in version 1).
  std::map<unsigned, std::string> keys;
  /// DNAT rules' translated destinations (`dnat` records), as written.
  std::vector<std::string> dnat;
  std::vector<MetaSet> sets; ///< `set` records (version 4)
  /// Counter slot -> its LOG rule (`log` records, version 5).
  std::map<unsigned, MetaLog> logs;
  /// The `loglost` counter slot, -1 if none.
  int logLost = -1;
  /// The `handall` record: why the program decides no packet (empty: it
  /// decides what it can).
  std::string handAll;
};

/// Parses the metadata text. Throws std::runtime_error on a malformed text.
Meta parseMeta(const std::string &text);

/// True if interface `name` matches iptables pattern `pattern` (a trailing
/// '+' is a prefix wildcard; otherwise the names must be equal).
bool ifaceMatches(const std::string &pattern, const std::string &name);

} // namespace r2x::runtime
