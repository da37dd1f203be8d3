//===- compiler/driver/Edit.h - changing a loaded ruleset -------*- C++ -*-===//
//
/// \file
/// `rule2xdp --load IFACE COMMAND` (-A, -I, -D, -R, -N, -P) when rule2xdp's
/// program already runs on IFACE: COMMAND changes the ruleset that program
/// was compiled from, as iptables changes the kernel's. The object keeps
/// its inputs (the `source` metadata records, ir::Program::source): they
/// are read back here, COMMAND is applied after them, and the whole is
/// compiled and loaded in the old program's place (atomically, counters
/// kept by key: runtime/Loader.h). The classifier's data is read-only
/// `.rodata`, so every change recompiles; nothing is patched in place.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/IR.h"

#include <cstdint>
#include <string>
#include <vector>

namespace r2x::driver {

/// Reads the inputs of rule2xdp's program on `ifaces` into `program` (and
/// into program.source), so that a command parsed next changes them.
/// Returns that program's id, for LoadOptions::replaceOnly, or 0 when
/// rule2xdp has no program there (the command starts a new ruleset).
/// Throws runtime::LoadError when the program cannot be changed this way
/// (compiled in hand-over mode, with ipset sets, without its inputs, or
/// different programs on the interfaces).
uint32_t readLoadedSource(const std::vector<std::string> &ifaces,
                          frontend::SourceManager &sm, ir::Program &program);

} // namespace r2x::driver
