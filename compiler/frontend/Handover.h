//===- compiler/frontend/Handover.h - what hand-over mode reads -*- C++ -*-===//
//
/// \file
/// Hand-over mode (`--pass-unsupported`, docs/handover.md): the kernel keeps
/// the same ruleset, and XDP decides only the drops it can prove the kernel
/// would make. The frontend then reads every rule iptables-restore would
/// take, and marks what XDP cannot do instead of refusing it:
///  - a match module rule2xdp does not compile becomes an ir::Match::Unknown
///    (hand the packet over when the match is reached). Modules listed here
///    have their option names and word counts checked as iptables' own
///    getopt_long table would; a module unknown to rule2xdp has its options
///    read by shape (`--NAME` then the words up to the next option) and the
///    listing says so;
///  - a target XDP cannot carry out becomes Verdict::Handover, its options
///    read the same way;
///  - chains received packets never traverse are listed as kernel-only.
/// This file holds those tables and the whole-ruleset pass; the option
/// walker (RuleParser.cpp) calls in at three points.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/Matches.h"
#include "compiler/ir/IR.h"

#include <memory>
#include <string>
#include <vector>

namespace r2x::frontend {

/// The module `name` as hand-over mode reads it: one of the known modules
/// rule2xdp does not compile (their options are checked by name and word
/// count), or, for any other name, a module whose options are read by shape.
/// Never null. Its state yields one ir::Match::Unknown.
const ModuleSpec *opaqueModule(const std::string &name);

/// Whether options of `spec` are read by shape (the module is unknown to
/// rule2xdp).
bool readsOptionsByShape(const ModuleSpec &spec);

/// A target XDP cannot carry out (MARK, LOG, MASQUERADE, ...), read like an
/// opaque module: its ModuleState collects the options; never null.
const ModuleSpec *opaqueTarget(const std::string &name);

/// Why XDP cannot carry out target `name` (for listings and --emit=ir).
std::string targetReason(const std::string &name);

/// One module or target of hand-over mode's tables: what it is called, why
/// XDP hands it over, the options read by name.
struct HandoverEntry {
  bool target;
  std::string name;
  std::string reason;
  std::vector<ModuleOption> options;
};

/// Every module, then every target, of the tables (for the generated table
/// in docs/handover.md).
std::vector<HandoverEntry> handoverCatalog();

/// Reads one option of a module whose options are unknown, starting at
/// words[i] (`--NAME` or `--NAME=VALUE`): the option and the words after it
/// up to the next word that starts with `-` or is `!`. Returns the index of
/// the last word read.
size_t readOptionByShape(const std::vector<Word> &words, size_t i, bool negated,
                         ModuleState &st);

/// After a whole ruleset is read in hand-over mode: user chains reached
/// only from kernel-only chains or from nothing become kernel-only, and
/// source NAT owned by the kernel is recorded (Program::kernelSourceNat).
void finishHandover(ir::Program &prog);

/// `FILE:LINE:COL: note: ...` lines naming every rule handed over (a
/// Handover target, an unknown match, a kernel-only chain) and why, then a
/// one-line summary. Empty in standalone mode.
std::string handoverListing(const ir::Program &prog, const SourceManager &sm);

} // namespace r2x::frontend
