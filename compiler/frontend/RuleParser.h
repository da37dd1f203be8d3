//===- compiler/frontend/RuleParser.h - one iptables command -> IR -*- C++ -*-===//
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

#include <vector>

namespace r2x::frontend {

/// Parses one command and appends its rule to the right chain of `prog`.
/// Throws Diagnostic.
void parseRuleCommand(const std::vector<Word> &words, ir::Program &prog);

} // namespace r2x::frontend
