//===- compiler/frontend/SaveFile.h - iptables-save / -restore input -*- C++
//-*-===//
//
/// \file
/// Reads the iptables-save (iptables-restore) format into the IR:
///   # comments and blank lines
///   *TABLE                      opens a table section
///   :CHAIN POLICY [PKTS:BYTES]  declares a built-in chain's policy, or a
///                               user chain with policy `-`
///   [PKTS:BYTES] -A CHAIN ...   a rule (the counters prefix is accepted
///                               and ignored: the program starts at zero)
///   -I / -N / -P ...            as iptables-restore takes them
///   COMMIT                      closes the section
/// Words are split on blanks, with "double" or 'single' quotes and
/// backslash escapes, as iptables-restore splits them. Every diagnostic
/// points at FILE:LINE:COL.
///
/// The security table is accepted when it is empty (no rules, ACCEPT
/// policies), since iptables-save prints every table the kernel has loaded;
/// otherwise it is an error, except in hand-over mode.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/ir/IR.h"

#include <optional>
#include <string>
#include <vector>

namespace r2x::frontend {

/// Parses `text` (named `name` in diagnostics, registered with `sm`) into
/// `prog`, as iptables (V4) or ip6tables (V6) rules; appends warnings.
/// With `errors`, every line's error is appended there and reading goes on
/// with the next line (a compiler reports all of a file's errors in one
/// run); without, the first error is thrown as a Diagnostic. In hand-over
/// mode (`prog.mode`) the security table, which runs after filter, is read
/// and listed as kernel-only.
void parseSaveFile(const std::string &name, const std::string &text,
                   SourceManager &sm, ir::Program &prog,
                   std::vector<Warning> &warnings,
                   ir::Family family = ir::Family::V4,
                   std::vector<Diagnostic> *errors = nullptr);

/// The family an iptables-save or ip6tables-save text belongs to, read from
/// what only one of them can hold (IPv6 or IPv4 addresses, icmpv6/icmp6/hl or
/// icmp/ttl/-f). Empty when nothing tells (then iptables is assumed, or
/// -6 says otherwise). Throws Diagnostic when the text holds both.
std::optional<ir::Family> detectFamily(const std::string &name,
                                       const std::string &text);

} // namespace r2x::frontend
