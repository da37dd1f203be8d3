//===- test/fuzz/fuzz_savefile.cpp - libFuzzer target: iptables-save text
//---===//
//
/// \file
/// The input is a ruleset file's text, read as `rule2xdp -f` reads it:
/// parseSaveFile, checkChainGraph, finalize, print; warnings and a
/// Diagnostic are formatted with the driver's formatter.
//===----------------------------------------------------------------------===//
#include "FuzzCommon.h"

#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"
#include "compiler/ir/IR.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace r2x;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  frontend::SourceManager sm;
  ir::Program prog;
  std::vector<frontend::Warning> warnings;
  try {
    frontend::parseSaveFile("fuzz.rules", text, sm, prog, warnings);
    frontend::checkChainGraph(prog);
    prog.finalize();
    fuzz::checkProgram(prog);
    std::string out = ir::print(prog);
    if (out.empty())
      fuzz::invariant("an empty IR print", "");
  } catch (const frontend::Diagnostic &d) {
    fuzz::formatChecked(sm, frontend::Severity::Error, d.pos, d.what(),
                        d.length);
  }
  for (const frontend::Warning &w : warnings)
    fuzz::formatChecked(sm, frontend::Severity::Warning, w.pos, w.message,
                        w.length);
  return 0;
}
