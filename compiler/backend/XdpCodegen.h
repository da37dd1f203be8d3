//===- compiler/backend/XdpCodegen.h - rules -> one XDP function -*- C++
//-*-===//
//
/// \file
/// Lowers a finalized ir::Program into the function `rule2xdp` (section
/// `xdp`) and its maps. The walk follows netfilter's ingress order, per
/// family: raw, mangle and nat PREROUTING, then the routing decision
/// (bpf_fib_lookup), then mangle and filter INPUT or FORWARD. Each rule becomes
/// a run of blocks, one per match, that fall through to the next rule on a
/// mismatch; a matched rule bumps its per-CPU counter and applies its verdict.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/classify/Classify.h"
#include "compiler/ir/IR.h"

#include <llvm/IR/Module.h>

namespace r2x::backend {

/// Builds the program, its maps, license and metadata into `m`.
void emitXdpProgram(const ir::Program &program, llvm::Module &m,
                    const classify::Options &cls = {});

} // namespace r2x::backend
