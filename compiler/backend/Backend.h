//===- compiler/backend/Backend.h - IR -> BPF object, the facade -*- C++
//-*-===//
//
/// \file
/// The only backend header the driver sees: it keeps LLVM out of everything
/// but compiler/backend. compile() runs the whole pipeline in-process:
/// XdpCodegen builds LLVM IR with IRBuilder, verifyModule checks it, the new
/// pass manager optimises it with the BPF TargetMachine (so the BPF IR
/// passes run), and the BPF backend emits an ELF object with BTF.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/classify/Classify.h"
#include "compiler/ir/IR.h"

#include <stdexcept>
#include <string>

namespace r2x::backend {

enum class Emit {
  LLVM, ///< optimised LLVM IR, text
  Asm,  ///< BPF assembly, text
  Obj   ///< BPF ELF object with BTF, ready for libbpf
};

/// An internal failure of code generation (a bug, not bad input).
struct BackendError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A program BPF cannot hold (more than its 512-byte stack, say): the
/// input is too big or too intricate for one program, not a bug. Exit 1.
struct LimitError : BackendError {
  using BackendError::BackendError;
};

/// Rules (as emitted, user chains counted at each jump) above which the
/// program is built for BPF CPU v4, whose long jumps (kernel 6.6+) reach
/// across it; below, CPU v3 (kernel 5.1+).
constexpr size_t kLongJumpRules = 300;

/// Compiles a finalized program. Returns the bytes of the requested form.
/// `cls` says which runs of rules become decision trees
/// (compiler/classify/Classify.h).
std::string compile(const ir::Program &program, Emit emit,
                    const classify::Options &cls = {});

/// The metadata text the object carries (its format is the object
/// contract's, runtime/contract/Object.h); exposed for tests.
std::string metadataText(const ir::Program &program);

} // namespace r2x::backend
