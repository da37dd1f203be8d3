//===- compiler/backend/TcBackend.h - tc u32 IR -> BPF object --*- C++ -*-===//
//
/// \file
/// The facade the driver uses for tc input, beside Backend.h's compile():
/// U32Codegen.cpp builds the XDP function that classifies as cls_u32 does,
/// and the shared pipeline (Pipeline.h) turns it into an object with the
/// same contract as an iptables object (r2x_counters, r2x_ifmatch,
/// r2x_meta), plus `r2x_redirect` (DEVMAP, filled by the loader from the
/// metadata's `redirect` records) when a filter redirects.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Backend.h"
#include "compiler/ir/TcIR.h"

#include <string>

namespace r2x::backend {

std::string compileTc(const ir::tc::Program &program, Emit emit);

/// The metadata text of a tc object (the object contract's format,
/// runtime/contract/Object.h; each knode is a `rule` of chain `ingress` in
/// table `tc`, plus `redirect` records).
std::string tcMetadataText(const ir::tc::Program &program);

} // namespace r2x::backend
