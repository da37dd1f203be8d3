//===- compiler/backend/PacketParser.cpp - L2/L3 parsing for XDP ------------===//
//
/// \file
/// See PacketParser.h. Also holds the Codegen primitives.
//===----------------------------------------------------------------------===//
#include "compiler/backend/PacketParser.h"

#include <llvm/IR/Intrinsics.h>

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

Packet emitPacketParse(Codegen &cg, Value *ctxArg, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  Packet pk;

  // struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex; ... }.
  // Context loads go through llvm.preserve.static.offset so no pass can
  // turn them into loads from a modified context pointer.
  StructType *xdpMd =
      StructType::get(cg.ctx, {cg.i32, cg.i32, cg.i32, cg.i32, cg.i32, cg.i32});
  auto ctxField = [&](unsigned idx, const char *name) {
    Value *s = b.CreateIntrinsic(Intrinsic::preserve_static_offset, {},
                                 {ctxArg});
    Value *p = b.CreateStructGEP(xdpMd, s, idx);
    return b.CreateLoad(cg.i32, p, name);
  };
  Value *data32 = ctxField(0, "data32");
  Value *end32 = ctxField(1, "data_end32");
  pk.ifindex = ctxField(3, "ifindex");
  cg.data = b.CreateIntToPtr(b.CreateZExt(data32, cg.i64), cg.ptr, "data");
  cg.dataEnd = b.CreateIntToPtr(b.CreateZExt(end32, cg.i64), cg.ptr, "data_end");

  // Ethernet and up to two VLAN tags.
  cg.needBytes(cg.data, 14, pass, "eth");
  Value *etype0 = cg.loadBE(cg.data, 12, cg.i16);
  BasicBlock *ethBB = b.GetInsertBlock();
  auto isTag = [&](Value *et) {
    return b.CreateOr(b.CreateICmpEQ(et, b.getInt16(0x8100)),
                      b.CreateICmpEQ(et, b.getInt16(0x88a8)));
  };
  BasicBlock *tag1 = cg.block("vlan1");
  BasicBlock *l3sel = cg.block("l3.select");
  b.CreateCondBr(isTag(etype0), tag1, l3sel);

  b.SetInsertPoint(tag1);
  cg.needBytes(cg.data, 18, pass, "vlan1.ok");
  Value *vid1 = b.CreateAnd(cg.loadBE(cg.data, 14, cg.i16), 0x0fff);
  Value *etype1 = cg.loadBE(cg.data, 16, cg.i16);
  BasicBlock *tag1End = b.GetInsertBlock();
  BasicBlock *tag2 = cg.block("vlan2");
  b.CreateCondBr(isTag(etype1), tag2, l3sel);

  b.SetInsertPoint(tag2);
  cg.needBytes(cg.data, 22, pass, "vlan2.ok");
  Value *vid2 = b.CreateAnd(cg.loadBE(cg.data, 18, cg.i16), 0x0fff);
  Value *etype2 = cg.loadBE(cg.data, 20, cg.i16);
  BasicBlock *tag2End = b.GetInsertBlock();
  b.CreateBr(l3sel);

  b.SetInsertPoint(l3sel);
  PHINode *etype = b.CreatePHI(cg.i16, 3, "ethertype");
  PHINode *l3off = b.CreatePHI(cg.i64, 3, "l3off");
  PHINode *vo = b.CreatePHI(cg.i16, 3, "vid.outer");
  PHINode *vi = b.CreatePHI(cg.i16, 3, "vid.inner");
  etype->addIncoming(etype0, ethBB);
  etype->addIncoming(etype1, tag1End);
  etype->addIncoming(etype2, tag2End);
  l3off->addIncoming(b.getInt64(14), ethBB);
  l3off->addIncoming(b.getInt64(18), tag1End);
  l3off->addIncoming(b.getInt64(22), tag2End);
  vo->addIncoming(b.getInt16(0), ethBB);
  vo->addIncoming(vid1, tag1End);
  vo->addIncoming(vid1, tag2End);
  vi->addIncoming(b.getInt16(0), ethBB);
  vi->addIncoming(b.getInt16(0), tag1End);
  vi->addIncoming(vid2, tag2End);
  pk.vidOuter = vo;
  pk.vidInner = vi;
  cg.require(b.CreateICmpEQ(etype, b.getInt16(0x0800)), pass, "ipv4");

  // The fixed IPv4 header, validated as ip_rcv_core() does.
  pk.l3 = cg.at(cg.data, l3off);
  cg.needBytes(pk.l3, 20, pass, "ipv4.hdr");
  Value *vihl = cg.loadBE(pk.l3, 0, cg.i8);
  cg.require(b.CreateICmpEQ(b.CreateLShr(vihl, 4), b.getInt8(4)), pass,
             "ipv4.version");
  pk.ihl = b.CreateShl(b.CreateZExt(b.CreateAnd(vihl, 0x0f), cg.i32), 2, "ihl");
  cg.require(b.CreateICmpUGE(pk.ihl, b.getInt32(20)), pass, "ipv4.ihl");
  pk.totLen = b.CreateZExt(cg.loadBE(pk.l3, 2, cg.i16), cg.i32, "tot_len");
  cg.require(b.CreateICmpUGE(pk.totLen, pk.ihl), pass, "ipv4.totlen");
  Value *ipEnd = cg.at(pk.l3, b.CreateZExt(pk.totLen, cg.i64));
  cg.require(b.CreateICmpULE(ipEnd, cg.dataEnd), pass, "ipv4.valid");

  pk.tos = cg.loadBE(pk.l3, 1, cg.i8);
  pk.fragWord = cg.loadBE(pk.l3, 6, cg.i16);
  pk.fragOff = b.CreateAnd(pk.fragWord, 0x1fff, "fragoff");
  pk.ttl = cg.loadBE(pk.l3, 8, cg.i8);
  pk.proto = cg.loadBE(pk.l3, 9, cg.i8);
  pk.saddrRaw = b.CreateLoad(cg.i32, cg.at(pk.l3, uint64_t(12)), "saddr.raw");
  pk.daddrRaw = b.CreateLoad(cg.i32, cg.at(pk.l3, uint64_t(16)), "daddr.raw");
  pk.saddr = b.CreateUnaryIntrinsic(Intrinsic::bswap, pk.saddrRaw);
  pk.daddr = b.CreateUnaryIntrinsic(Intrinsic::bswap, pk.daddrRaw);
  pk.l4 = cg.at(pk.l3, b.CreateZExt(pk.ihl, cg.i64));
  return pk;
}

} // namespace r2x::backend
