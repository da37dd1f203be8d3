//===- test/fuzz/fuzz_tcbatch.cpp - libFuzzer target: tc -batch text
//-------===//
//
/// \file
/// The input is a `tc -batch` file, read as `rule2xdp --tc-batch` reads it:
/// parseTcBatch, finish (pref ordering, hash-table links, depth and loop
/// checks), print. A Diagnostic is formatted with the driver's formatter;
/// anything else escaping is a crash.
//===----------------------------------------------------------------------===//
#include "FuzzCommon.h"

#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/TcParser.h"
#include "compiler/ir/TcIR.h"

#include <cstddef>
#include <cstdint>
#include <string>

using namespace r2x;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  frontend::SourceManager sm;
  frontend::TcBuilder builder(/*passUnsupported=*/size % 2 == 1);
  try {
    frontend::parseTcBatch("fuzz.tc", text, sm, builder);
    ir::tc::Program p = builder.finish({"fuzz.tc", 1, 1, 0});
    if (ir::tc::print(p).empty())
      fuzz::invariant("an empty tc IR print", "");
  } catch (const frontend::Diagnostic &d) {
    fuzz::formatChecked(sm, frontend::Severity::Error, d.pos, d.what(),
                        d.length);
  }
  return 0;
}
