//===- compiler/frontend/RuleParser.h - one iptables command -> IR -*- C++
//-*-===//
//
/// \file
/// Reads the words of one iptables command (`[-t TABLE] -A CHAIN matches
/// [-j TARGET]`) exactly as iptables 1.8 does: getopt_long option words with
/// long, short and unambiguous abbreviated forms, `--opt=value`, `!` before
/// the option it negates, and the protocol match (tcp, udp) loaded by `-m`
/// or implicitly by `-p` when one of its options appears. Each option's
/// value is parsed with the PEGTL grammars in grammar/iptables.hpp.
///
/// Anything rule2xdp cannot compile with netfilter's exact meaning is a
/// Diagnostic naming the option; nothing is approximated.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/IR.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace r2x::frontend {

/// A non-fatal remark (e.g. rules in chains no received packet traverses).
struct Warning {
  ir::SourcePos pos;
  std::string message;
  unsigned length = 1;
};

/// Where a command comes from. In a ruleset file the table is the
/// enclosing `*table` section, `-t` is not allowed, and rules for OUTPUT and
/// POSTROUTING are skipped with a warning rather than refused.
struct CommandContext {
  ir::Family family = ir::Family::V4; ///< iptables or ip6tables words
  std::optional<ir::Table> fileTable;
  std::vector<Warning> *warnings = nullptr;
  /// Hand-over mode (Handover.h): what XDP cannot do is marked, not refused.
  bool handover = false;
  /// A ruleset file's count of `-A CHAIN` lines by chain name, if known:
  /// a chain's rules are reserved once instead of grown by doubling (each
  /// growth moves every rule and faults in fresh pages: a tenth of the
  /// parse of 100,000 rules).
  const std::unordered_map<std::string, size_t> *appends = nullptr;
};

/// Parses one command (-A, -I, -N, -P) and applies it to `prog`.
/// Throws Diagnostic.
void parseCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx = {});

/// Resolves a table name: Raw or Filter; throws Diagnostic at `where` for
/// tables rule2xdp does not compile yet or that do not exist.
ir::Table parseTableName(const Word &where);

/// Checks what only the whole ruleset shows: no loops through user chains
/// and no deeper nesting than the kernel allows. Throws Diagnostic.
void checkChainGraph(const ir::Program &prog);

} // namespace r2x::frontend
