//===- runtime/Meta.h - the metadata a rule2xdp object carries ---*- C++ -*-===//
//
/// \file
/// The compiler embeds a text description of its rules in the object (the
/// `.rodata` global `r2x_meta`) so the loader can fill interface matches and
/// `--stats` can print counters like `iptables -vxnL` without the source.
///
/// Format, one record per line, fields separated by a TAB:
///   rule2xdp-meta<TAB>1
///   iface<TAB>BIT<TAB>PATTERN       `-i` pattern number BIT (0..63); a
///                                   trailing '+' matches any name with that
///                                   prefix, as iptables does
///   chain<TAB>TABLE<TAB>CHAIN<TAB>POLICY<TAB>SLOT
///                                   a chain in display order; SLOT is the
///                                   counter index of its policy, or '-' for a
///                                   user chain (issue 3)
///   rule<TAB>SLOT<TAB>TABLE<TAB>CHAIN<TAB>TARGET<TAB>PROT<TAB>OPT<TAB>IN
///       <TAB>OUT<TAB>SOURCE<TAB>DESTINATION<TAB>EXTRA
///                                   a rule in chain order, its columns as
///                                   `iptables -vxnL` shows them
/// Unknown record kinds are ignored so newer objects stay readable.
//===----------------------------------------------------------------------===//
#pragma once

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

struct Meta {
  std::vector<MetaIface> ifaces;
  std::vector<MetaChain> chains;
};

/// Parses the metadata text. Throws std::runtime_error on a malformed text.
Meta parseMeta(const std::string &text);

/// True if interface `name` matches iptables pattern `pattern` (a trailing
/// '+' is a prefix wildcard; otherwise the names must be equal).
bool ifaceMatches(const std::string &pattern, const std::string &name);

} // namespace r2x::runtime
