//===- test/fuzz/fuzz_rule.cpp - libFuzzer target: one iptables command
//----===//
//
/// \file
/// The input is one command's words, separated by NUL or newline bytes (so
/// a corpus file is one word per line). They are numbered as argv words are
/// (the driver's SourceManager::commandLineWords), parsed with
/// parseCommand, and the Program finalized and printed; a Diagnostic is
/// formatted with the driver's formatter.
//===----------------------------------------------------------------------===//
#include "FuzzCommon.h"

#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/ir/IR.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

using namespace r2x;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> argv{"rule2xdp"};
  std::string cur;
  bool any = false;
  for (size_t i = 0; i < size; ++i) {
    char c = static_cast<char>(data[i]);
    if (c == '\0' || c == '\n') {
      argv.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any)
    argv.push_back(cur); // no separator needed after the last word

  frontend::SourceManager sm;
  std::vector<frontend::Word> words = sm.commandLineWords(argv, 1);
  ir::Program prog;
  try {
    frontend::parseCommand(words, prog);
    prog.finalize();
    fuzz::checkProgram(prog);
    std::string out = ir::print(prog);
    if (out.empty())
      fuzz::invariant("an empty IR print", "");
  } catch (const frontend::Diagnostic &d) {
    fuzz::formatChecked(sm, frontend::Severity::Error, d.pos, d.what(),
                        d.length);
  }
  return 0;
}
