//===- compiler/backend/Codegen.cpp - IRBuilder helpers for XDP -----------===//
//
/// \file
/// See Codegen.h.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Codegen.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>

namespace r2x::backend {

using namespace llvm;

Codegen::Codegen(Module &m, Function *fn)
    : ctx(m.getContext()), m(m), fn(fn), b(m.getContext()) {
  i1 = b.getInt1Ty();
  i8 = b.getInt8Ty();
  i16 = b.getInt16Ty();
  i32 = b.getInt32Ty();
  i64 = b.getInt64Ty();
  ptr = b.getPtrTy();
}

BasicBlock *Codegen::block(const Twine &name) {
  return BasicBlock::Create(ctx, name, fn);
}

AllocaInst *Codegen::stackSlot(Type *ty, unsigned align, const Twine &name) {
  IRBuilder<> eb(&fn->getEntryBlock(), fn->getEntryBlock().begin());
  AllocaInst *a = eb.CreateAlloca(ty, nullptr, name);
  a->setAlignment(Align(align));
  return a;
}

AllocaInst *Codegen::u32Key() {
  if (!u32Key_)
    u32Key_ = stackSlot(i32, 4, "map.key");
  return u32Key_;
}

Value *Codegen::at(Value *base, Value *off) {
  return b.CreateGEP(i8, base, off);
}
Value *Codegen::at(Value *base, uint64_t off) {
  return b.CreateGEP(i8, base, b.getInt64(off));
}

void Codegen::needBytes(Value *p, uint64_t width, BasicBlock *fail,
                        const Twine &name) {
  Value *endOfAccess = at(p, width);
  Value *out = b.CreateICmpUGT(endOfAccess, dataEnd);
  BasicBlock *ok = block(name);
  b.CreateCondBr(out, fail, ok);
  b.SetInsertPoint(ok);
}

Value *Codegen::loadBE(Value *base, uint64_t off, Type *ty) {
  Value *v = b.CreateLoad(ty, at(base, off));
  if (ty == i8)
    return v;
  return b.CreateUnaryIntrinsic(Intrinsic::bswap, v);
}

Value *Codegen::opaque(Value *v) {
  return b.CreateIntrinsic(Intrinsic::bpf_passthrough,
                           {v->getType(), v->getType()},
                           {b.getInt32(opaqueSeq_++), v});
}

void Codegen::require(Value *cond, BasicBlock *no, const Twine &name) {
  BasicBlock *yes = block(name);
  b.CreateCondBr(cond, yes, no);
  b.SetInsertPoint(yes);
}

Value *Codegen::callHelper(Helper id, Type *ret, ArrayRef<Value *> args) {
  std::vector<Type *> params;
  for (Value *a : args)
    params.push_back(a->getType());
  FunctionType *ft = FunctionType::get(ret, params, false);
  Value *callee = b.CreateIntToPtr(b.getInt64(id), ptr);
  return b.CreateCall(ft, callee, args);
}

void Codegen::ret(XdpAction a) { b.CreateRet(b.getInt32(a)); }

Value *Codegen::csumReplace(Value *csum,
                            ArrayRef<std::pair<Value *, Value *>> words) {
  // HC' = ~(~HC + ~m + m'), summed in 32 bits and folded twice.
  Value *sum = b.CreateZExt(b.CreateNot(csum), i32);
  for (auto [from, to] : words) {
    sum = b.CreateAdd(sum, b.CreateZExt(b.CreateNot(from), i32));
    sum = b.CreateAdd(sum, b.CreateZExt(to, i32));
  }
  for (int k = 0; k < 2; ++k)
    sum = b.CreateAdd(b.CreateAnd(sum, 0xffff), b.CreateLShr(sum, 16));
  return b.CreateNot(b.CreateTrunc(sum, i16));
}

std::pair<Value *, Value *> Codegen::halves(Value *v32) {
  return {b.CreateTrunc(v32, i16), b.CreateTrunc(b.CreateLShr(v32, 16), i16)};
}

Value *Codegen::ttlDecrementCsum(Value *csum) {
  Value *c = b.CreateAdd(b.CreateZExt(csum, i32), b.getInt32(1));
  c = b.CreateAdd(c, b.CreateZExt(b.CreateICmpUGE(c, b.getInt32(0xffff)), i32));
  return b.CreateTrunc(c, i16);
}

/// Marks the back edge `br` of a loop as not to be unrolled: the bounds are
/// for the verifier, and an unrolled walk only makes the program longer.
void noUnroll(BranchInst *br) {
  LLVMContext &ctx = br->getContext();
  MDNode *disable =
      MDNode::get(ctx, {MDString::get(ctx, "llvm.loop.unroll.disable")});
  MDNode *loop = MDNode::getDistinct(ctx, {nullptr, disable});
  loop->replaceOperandWith(0, loop);
  br->setMetadata(LLVMContext::MD_loop, loop);
}

} // namespace r2x::backend
