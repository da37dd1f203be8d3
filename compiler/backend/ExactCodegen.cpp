//===- compiler/backend/ExactCodegen.cpp - an exact run's search ----------===//
#include "compiler/backend/ExactCodegen.h"

#include "compiler/backend/PacketParser.h"
#include "compiler/backend/Scaffold.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>

namespace r2x::backend {

using namespace llvm;
namespace cls = classify;

namespace {

constexpr const char *kExactSection = ".rodata.cls_xct",
                     *kBucketSection = ".rodata.cls_xbk";
/// An entry: the key's hi and lo as 64-bit little-endian words, then the
/// info word and padding (24 bytes, 8-aligned).
constexpr unsigned kEntryWords = 6;

class ExactEmitter {
public:
  ExactEmitter(const RunContext &ctx, const cls::ExactImage &img, unsigned id)
      : x_(ctx), cg_(ctx.cg), b_(ctx.cg.b), img_(img), id_(id) {}

  void emit(AllocaInst *counterKey, BasicBlock *next) {
    GlobalVariable *table = tableGlobal();
    GlobalVariable *buckets = bucketsGlobal();
    const size_t n = img_.entries.size();
    Value *const *w = img_.source ? x_.pk.saddr6 : x_.pk.daddr6;
    Value *hi = pair(w[0], w[1]), *lo = pair(w[2], w[3]);
    // The bucket (classify::exactBucket()) and its entries [start, end).
    Value *bucket = b_.getInt64(0);
    if (img_.bucketBits > 0)
      bucket = b_.CreateLShr(
          b_.CreateMul(
              b_.CreateXor(b_.CreateMul(hi, b_.getInt64(cls::kExactMulHi)), lo),
              b_.getInt64(cls::kExactMulLo)),
          64 - img_.bucketBits);
    Value *bk = cg_.opaque(bucket);
    cg_.require(
        b_.CreateICmpULT(bk, b_.getInt64(uint64_t(1) << img_.bucketBits)),
        x_.aborted, "xct.bucket.ok");
    Value *slot = b_.CreateGEP(cg_.i8, buckets, b_.CreateShl(bk, 2));
    Value *start = b_.CreateLoad(cg_.i32, slot, /*isVolatile=*/true);
    Value *end = b_.CreateLoad(cg_.i32, cg_.at(slot, 4), /*isVolatile=*/true);
    // The scan, unrolled: at most the longest bucket's entries (a few).
    // No loop: LLVM's loop strength reduction (in the code generator,
    // after llvm.bpf.passthrough is gone) would turn the entry's index into
    // a pointer it advances, which the verifier cannot bound.
    BasicBlock *found = cg_.block("xct.found");
    PHINode *entry =
        PHINode::Create(cg_.ptr, img_.maxBucket, "xct.entry", found);
    for (unsigned k = 0; k < img_.maxBucket; ++k) {
      Value *i = b_.CreateAdd(start, b_.getInt32(k));
      cg_.require(b_.CreateICmpULT(i, end), next, "xct.more");
      Value *idx = cg_.opaque(b_.CreateZExt(i, cg_.i64));
      cg_.require(b_.CreateICmpULT(idx, b_.getInt64(n)), x_.aborted,
                  "xct.idx.ok");
      Value *at = b_.CreateGEP(cg_.i8, table,
                               b_.CreateMul(idx, b_.getInt64(kEntryWords * 4)));
      Value *same = b_.CreateAnd(b_.CreateICmpEQ(load64(at, 0), hi),
                                 b_.CreateICmpEQ(load64(at, 8), lo));
      BasicBlock *step = cg_.block("xct.step");
      entry->addIncoming(at, b_.GetInsertBlock());
      b_.CreateCondBr(same, found, step);
      b_.SetInsertPoint(step);
    }
    b_.CreateBr(next);

    b_.SetInsertPoint(found);
    Value *info =
        b_.CreateLoad(cg_.i32, cg_.at(entry, 16), /*isVolatile=*/true);
    BasicBlock *bump = cg_.block("xct.bump");
    BasicBlock *counted = cg_.block("xct.counted");
    b_.CreateCondBr(b_.CreateICmpNE(b_.CreateAnd(info, cls::ExactUncounted),
                                    b_.getInt32(0)),
                    counted, bump);
    b_.SetInsertPoint(bump);
    bumpCounter(cg_, x_.counters, counterKey,
                b_.CreateAnd(info, cls::ExactSlotMask), x_.pk.totLen);
    b_.CreateBr(counted);
    b_.SetInsertPoint(counted);
    Value *verdict = b_.CreateAnd(b_.CreateLShr(info, cls::ExactVerdictShift),
                                  cls::ExactVerdictMask);
    SwitchInst *sw = b_.CreateSwitch(verdict, x_.aborted, 2);
    sw->addCase(b_.getInt32(cls::VerdictAccept), x_.accept);
    sw->addCase(b_.getInt32(cls::VerdictDrop), x_.drop);
  }

private:
  GlobalVariable *tableGlobal() {
    std::vector<uint32_t> words;
    words.reserve(img_.entries.size() * kEntryWords);
    for (const cls::ExactEntry &e : img_.entries)
      words.insert(words.end(),
                   {uint32_t(e.key.hi), uint32_t(e.key.hi >> 32),
                    uint32_t(e.key.lo), uint32_t(e.key.lo >> 32), e.info, 0});
    return wordsGlobal(cg_.m, "r2x_xct" + std::to_string(id_), kExactSection,
                       words);
  }

  GlobalVariable *bucketsGlobal() {
    return wordsGlobal(cg_.m, "r2x_xbk" + std::to_string(id_), kBucketSection,
                       img_.bucketStart);
  }

  /// Two 32-bit words as the key's 64-bit half, the first one high.
  Value *pair(Value *first, Value *second) {
    return b_.CreateOr(b_.CreateShl(b_.CreateZExt(first, cg_.i64), 32),
                       b_.CreateZExt(second, cg_.i64));
  }

  Value *load64(Value *at, uint64_t off) {
    return b_.CreateLoad(cg_.i64, cg_.at(at, off), /*isVolatile=*/true);
  }

  const RunContext &x_;
  Codegen &cg_;
  IRBuilder<> &b_;
  const cls::ExactImage &img_;
  unsigned id_;
};

} // namespace

void emitExactRun(const RunContext &ctx, const cls::ExactImage &img,
                  unsigned id, AllocaInst *counterKey, BasicBlock *next) {
  if (img.entries.empty()) {
    ctx.cg.b.CreateBr(next);
    return;
  }
  ExactEmitter(ctx, img, id).emit(counterKey, next);
}

} // namespace r2x::backend
