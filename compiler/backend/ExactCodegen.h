//===- compiler/backend/ExactCodegen.h - an exact run's search ---*- C++
//-*-===//
//
/// \file
/// An exact run (classify/Exact.h) in the program: its entries as a frozen
/// `.rodata` global (`r2x_xct<id>`, section .rodata.cls_xct, 24 bytes an
/// entry: the key's two 64-bit halves, the info word, padding) and its
/// bucket offsets as another (`r2x_xbk<id>`, .rodata.cls_xbk), inline where
/// the run's first rule was: the packet's address hashed to its bucket
/// (classify::exactBucket()), the bucket's entries compared one after the
/// other (unrolled to the longest bucket: a few entries), the found entry
/// counted and carried out. docs/classifier.md, "IPv6 exact runs".
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/ClassifyCodegen.h"
#include "compiler/classify/Exact.h"

namespace r2x::backend {

/// The most entries all exact runs of a program hold together: a section
/// is one map value, at most KMALLOC_MAX_SIZE (4 MiB) here; an entry takes
/// 24 bytes, and up to two bucket offsets of 4. Runs past it are
/// straight-line code.
constexpr size_t kMaxExactEntries = 160000;
/// The most bucket offsets (4 bytes each) they hold together, for the same
/// reason (the buckets are at least the entries, up to 8 times that when
/// buildExact() doubles them).
constexpr size_t kMaxExactBucketWords = 1000000;

/// Emits the exact run `img` at the builder's insertion point (an IPv6
/// packet: ctx.pk.saddr6/daddr6 hold its addresses), ending in ctx.accept,
/// ctx.drop, or `next` when no rule of the run matches. `counterKey` is the
/// stack slot for r2x_counters' key.
void emitExactRun(const RunContext &ctx, const classify::ExactImage &img,
                  unsigned id, llvm::AllocaInst *counterKey,
                  llvm::BasicBlock *next);

} // namespace r2x::backend
