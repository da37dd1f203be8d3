//===- test/fuzz/FuzzCommon.h - checks shared by the fuzz targets -*- C++
//-*-===//
//
/// \file
/// What a fuzz target does with a parsed Program or a Diagnostic, so both
/// targets check the same things. Bad input must end in a Diagnostic; any
/// other exception escapes LLVMFuzzerTestOneInput, which aborts, and
/// libFuzzer reports it as a crash with its input. Sanitizer reports and
/// timeouts are crashes too.
///
/// Beyond "no crash", a few cheap invariants of the IR and of diagnostics
/// abort with a message when they break (see checkProgram / checkDiagnostic).
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/IR.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace r2x::fuzz {

[[noreturn]] inline void invariant(const char *what,
                                   const std::string &detail) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n%s\n", what, detail.c_str());
  std::abort();
}

/// After finalize(): counters are dense and unique, jumps land on user
/// chains of the same table, and print() runs.
inline void checkProgram(const ir::Program &p) {
  unsigned rules = 0, builtins = 0;
  std::vector<bool> seen(p.numCounters, false);
  auto slot = [&](unsigned c) {
    if (c >= p.numCounters || seen[c])
      invariant("counter slots are not 0..numCounters-1, each once",
                ir::print(p));
    seen[c] = true;
  };
  for (const ir::Chain &c : p.chains) {
    if (!c.user) {
      ++builtins;
      slot(c.policyCounter);
    }
    for (const ir::Rule &r : c.rules) {
      ++rules;
      slot(r.counter);
      if ((r.verdict == ir::Verdict::Jump || r.verdict == ir::Verdict::Goto) &&
          !p.userChain(c.family, c.table, r.jumpTarget))
        invariant("a jump to something that is not a user chain of its table",
                  ir::print(p));
      for (const ir::Match &m : r.matches) {
        const auto *iif = m.as<ir::Match::Iface>();
        if (iif && (iif->bit >= p.ifacePatterns.size() ||
                    p.ifacePatterns[iif->bit] != iif->pattern))
          invariant("an -i or -o match whose bit is not its pattern's",
                    ir::print(p));
        const auto *field = m.as<ir::Match::FieldRange>();
        if (field && !ir::fieldInfo(field->field).existsIn(c.family))
          invariant("a field match on a field its chain's family lacks",
                    ir::print(p));
      }
    }
  }
  if (rules + builtins != p.numCounters)
    invariant("numCounters is not rules + built-in chains", ir::print(p));
  if (p.ifacePatterns.size() > 64)
    invariant("more than 64 interface bits", ir::print(p));
}

/// Formats a diagnostic as the driver does. The caret must stay on the
/// line it underlines (at most one column past its end).
inline std::string formatChecked(const frontend::SourceManager &sm,
                                 frontend::Severity sev,
                                 const ir::SourcePos &pos,
                                 const std::string &msg, unsigned length) {
  std::string out = frontend::format(sm, sev, pos, msg, length);
  if (out.empty() || msg.empty())
    invariant("an empty diagnostic", out);
  std::string line = sm.lineOf(pos);
  if (!line.empty() && pos.col > line.size() + 1)
    invariant("a caret past the end of its line",
              "col " + std::to_string(pos.col) + " of a " +
                  std::to_string(line.size()) + "-column line\n" + out);
  return out;
}

} // namespace r2x::fuzz
