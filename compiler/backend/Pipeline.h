//===- compiler/backend/Pipeline.h - one LLVM module through to BPF -*- C++
//-*-===//
//
/// \file
/// The pipeline every frontend's code generator shares (BpfTarget.cpp):
/// `build` fills a module whose triple and data layout are already set for
/// BPF; the module is verified, optimised with the BPF TargetMachine and
/// emitted. compile() (iptables) and compileTc() (tc u32) both go through it.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Backend.h"

#include <functional>
#include <string>

namespace llvm {
class Module;
}

namespace r2x::backend {

/// `cpu` is the BPF CPU version LLVM targets: "v3" (32-bit sub-registers,
/// kernel 5.1+) unless the program is too large for its 16-bit jump
/// offsets, then "v4" (long jumps, kernel 6.6+).
std::string compileModule(const std::function<void(llvm::Module &)> &build,
                          Emit emit, const char *cpu = "v3");

} // namespace r2x::backend
