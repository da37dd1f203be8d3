//===- compiler/backend/Scaffold.cpp - shared scaffolding -----------------===//
//
/// \file
/// See Scaffold.h.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Scaffold.h"

#include <llvm/IR/Intrinsics.h>

#include <vector>

namespace r2x::backend {

using namespace llvm;

Function *createProgram(Module &m) {
  LLVMContext &ctx = m.getContext();
  FunctionType *ft = FunctionType::get(Type::getInt32Ty(ctx),
                                       {PointerType::get(ctx, 0)}, false);
  Function *fn =
      Function::Create(ft, GlobalValue::ExternalLinkage, contract::ProgName, m);
  fn->setSection(contract::ProgSection);
  fn->addFnAttr(Attribute::NoUnwind); // no .eh_frame in the object
  fn->getArg(0)->setName("ctx");
  return fn;
}

namespace {
/// A u32 field of struct xdp_md.
Value *loadContextField(Codegen &cg, Value *ctxArg, kernel::XdpMdField field,
                        const char *name) {
  IRBuilder<> &b = cg.b;
  std::vector<Type *> fields(kernel::MdFields, cg.i32);
  StructType *xdpMd = StructType::get(cg.ctx, fields);
  Value *s = b.CreateIntrinsic(Intrinsic::preserve_static_offset, {}, {ctxArg});
  return b.CreateLoad(cg.i32, b.CreateStructGEP(xdpMd, s, field), name);
}
} // namespace

Value *loadPacketPointers(Codegen &cg, Value *ctxArg, bool ingressIfindex) {
  IRBuilder<> &b = cg.b;
  Value *data32 = loadContextField(cg, ctxArg, kernel::MdData, "data32");
  Value *end32 = loadContextField(cg, ctxArg, kernel::MdDataEnd, "data_end32");
  Value *ifindex =
      ingressIfindex
          ? loadContextField(cg, ctxArg, kernel::MdIngressIfindex, "ifindex")
          : nullptr;
  cg.data = b.CreateIntToPtr(b.CreateZExt(data32, cg.i64), cg.ptr, "data");
  cg.dataEnd =
      b.CreateIntToPtr(b.CreateZExt(end32, cg.i64), cg.ptr, "data_end");
  return ifindex;
}

GlobalVariable *declareCounters(BtfBuilder &btf, unsigned slots) {
  return btf.map(contract::CountersMap, btf.u32(),
                 btf.structType(contract::CounterLayout),
                 contract::counterEntries(slots));
}

GlobalVariable *declareIfmatch(BtfBuilder &btf, uint32_t entries) {
  return btf.map(contract::IfmatchMap, btf.structType(contract::IfKeyLayout),
                 btf.u64(), entries);
}

void bumpCounter(Codegen &cg, GlobalVariable *counters, AllocaInst *key,
                 unsigned slot, Value *bytes) {
  bumpCounter(cg, counters, key, cg.b.getInt32(slot), bytes);
}

void bumpCounter(Codegen &cg, GlobalVariable *counters, AllocaInst *key,
                 Value *slot, Value *bytes) {
  IRBuilder<> &b = cg.b;
  b.CreateStore(slot, key);
  Value *v = cg.callHelper(MapLookupElem, cg.ptr, {counters, key});
  BasicBlock *hit = cg.block("count");
  BasicBlock *done = cg.block("counted");
  b.CreateCondBr(b.CreateIsNull(v), done, hit);
  b.SetInsertPoint(hit);
  Value *pp = cg.at(v, uint64_t(offsetof(contract::CounterValue, packets)));
  b.CreateStore(b.CreateAdd(b.CreateLoad(cg.i64, pp), b.getInt64(1)), pp);
  Value *bp = cg.at(v, uint64_t(offsetof(contract::CounterValue, bytes)));
  Value *sum =
      b.CreateAdd(b.CreateLoad(cg.i64, bp), b.CreateZExt(bytes, cg.i64));
  b.CreateStore(sum, bp);
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

Value *emitEthernet(Codegen &cg, BasicBlock *tooShort) {
  cg.needBytes(cg.data, ETH_HLEN, tooShort, "eth");
  return cg.loadBE(cg.data, kernel::EthProto, cg.i16);
}

Value *isVlanTag(Codegen &cg, Value *etype) {
  IRBuilder<> &b = cg.b;
  return b.CreateOr(b.CreateICmpEQ(etype, b.getInt16(ETH_P_8021Q)),
                    b.CreateICmpEQ(etype, b.getInt16(ETH_P_8021AD)));
}

void finishObject(BtfBuilder &btf, const std::string &metaText) {
  btf.metadata(metaText);
  btf.license();
  btf.finish();
}

} // namespace r2x::backend
