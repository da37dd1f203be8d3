//===- compiler/driver/TcMain.h - the --tc / --tc-batch path -----*- C++
//-*-===//
//
/// \file
/// The driver's tc subcommand: reads `--tc 'filter add ...'` commands (each
/// one argument) and `--tc-batch FILE` (tc -batch format), and compiles,
/// prints or loads the result. main.cpp only wires it in.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "runtime/Loader.h"

#include <optional>
#include <string>
#include <vector>

namespace r2x::driver {

struct TcRequest {
  std::vector<std::string> commands; ///< --tc values, in order
  std::string batch;                 ///< --tc-batch file ("-" is stdin)
  bool passUnsupported = false;
  std::string emit = "obj", output;
  std::vector<std::string> load; ///< --load (compiler/driver/Ifaces.h)
  runtime::LoadOptions loadOptions;
};

/// Runs the request. Returns the bytes to write to -o, or nothing when the
/// program was loaded. Throws frontend::Diagnostic for bad input, and
/// runtime/backend errors as main() expects them.
std::optional<std::string> runTc(const TcRequest &req,
                                 const std::vector<std::string> &argv,
                                 frontend::SourceManager &sm);

} // namespace r2x::driver
