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

L2 emitL2(Codegen &cg, Value *ctxArg, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  L2 l2;

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
  l2.ifindex = ctxField(3, "ifindex");
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
  l2.etype = etype;
  l2.l3off = l3off;
  l2.vidOuter = vo;
  l2.vidInner = vi;
  return l2;
}

namespace {
void copyL2(Packet &pk, const L2 &l2) {
  pk.ifindex = l2.ifindex;
  pk.vidOuter = l2.vidOuter;
  pk.vidInner = l2.vidInner;
}
} // namespace

Packet emitIpv4(Codegen &cg, const L2 &l2, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  Packet pk;
  copyL2(pk, l2);
  // The fixed IPv4 header, validated as ip_rcv_core() does.
  pk.l3 = cg.at(cg.data, l2.l3off);
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

Packet emitIpv6(Codegen &cg, const L2 &l2, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  Packet pk;
  pk.v6 = true;
  copyL2(pk, l2);
  pk.l3 = cg.at(cg.data, l2.l3off);
  cg.needBytes(pk.l3, 40, pass, "ipv6.hdr");
  Value *ver = cg.loadBE(pk.l3, 0, cg.i8);
  cg.require(b.CreateICmpEQ(b.CreateLShr(ver, 4), b.getInt8(6)), pass,
             "ipv6.version");
  Value *payload = b.CreateZExt(cg.loadBE(pk.l3, 4, cg.i16), cg.i32, "payload_len");
  Value *first = cg.loadBE(pk.l3, 6, cg.i8);
  // A jumbogram (payload length 0 with a hop-by-hop header) is the kernel's
  // to judge; rules never see one here. Payload length 0 with any other
  // next header is an ordinary 40-byte packet (ip6_rcv_core()).
  cg.require(b.CreateNot(b.CreateAnd(b.CreateICmpEQ(payload, b.getInt32(0)),
                                     b.CreateICmpEQ(first, b.getInt8(0)))),
             pass, "ipv6.notjumbo");
  pk.totLen = b.CreateAdd(payload, b.getInt32(40), "ip6_len");
  Value *ipEnd = cg.at(pk.l3, b.CreateZExt(pk.totLen, cg.i64));
  cg.require(b.CreateICmpULE(ipEnd, cg.dataEnd), pass, "ipv6.valid");

  pk.flowWord = b.CreateLoad(cg.i32, pk.l3, "flow.raw");
  // Traffic class: the 8 bits after the version.
  Value *w0 = cg.loadBE(pk.l3, 0, cg.i16);
  pk.tos = b.CreateTrunc(b.CreateLShr(w0, 4), cg.i8, "tclass");
  pk.ttl = cg.loadBE(pk.l3, 7, cg.i8);
  for (unsigned i = 0; i < 4; ++i) {
    pk.saddr6[i] = b.CreateLoad(cg.i32, cg.at(pk.l3, uint64_t(8 + 4 * i)));
    pk.daddr6[i] = b.CreateLoad(cg.i32, cg.at(pk.l3, uint64_t(24 + 4 * i)));
  }
  pk.proto = first;

  // The scratch value the walk's exits meet in (see the end of the walk).
  AllocaInst *zero = cg.stackSlot(cg.i32, 4, "scratch.key");
  b.CreateStore(b.getInt32(0), zero);
  Value *scratchBase = cg.callHelper(MapLookupElem, cg.ptr, {cg.scratch, zero});
  cg.require(b.CreateIsNotNull(scratchBase), pass, "scratch.ok");

  // ipv6_find_hdr(target = -1): follow hop-by-hop (0), routing (43),
  // fragment (44), AH (51), destination options (60) to the first header
  // that is not one of them (or "no next header", 59). A non-first
  // fragment stops the walk at the fragment header: its next header is the
  // answer if that is not an extension header, else the walk fails. A
  // header cut short by the payload length fails. Each step is a block
  // that either finishes (to `done`) or goes on.
  BasicBlock *done = cg.block("ip6walk.done");
  struct Exit {
    BasicBlock *from;
    Value *ok, *proto, *off, *frag;
  };
  std::vector<Exit> exits;
  auto isExt = [&](Value *nh) {
    Value *e = b.getFalse();
    for (unsigned h : {0u, 43u, 44u, 51u, 60u})
      e = b.CreateOr(e, b.CreateICmpEQ(nh, b.getInt8(static_cast<uint8_t>(h))));
    return e;
  };
  Value *nexthdr = first;
  Value *start = b.getInt32(40);
  for (unsigned step = 0; step <= kMaxIpv6ExtHeaders; ++step) {
    BasicBlock *ext = cg.block("ip6walk.ext");
    BasicBlock *upper = cg.block("ip6walk.upper");
    b.CreateCondBr(isExt(nexthdr), ext, upper);
    b.SetInsertPoint(upper);
    exits.push_back({upper, b.getTrue(), nexthdr, start, b.getInt16(0)});
    b.CreateBr(done);
    b.SetInsertPoint(ext);
    if (step == kMaxIpv6ExtHeaders) {
      // Deeper than we walk: fail, as a header we cannot read.
      exits.push_back({ext, b.getFalse(), b.getInt8(0), start, b.getInt16(0)});
      b.CreateBr(done);
      break;
    }
    // The two-byte option header must be inside the payload.
    BasicBlock *bad = cg.block("ip6walk.short");
    cg.require(b.CreateICmpULE(b.CreateAdd(start, b.getInt32(2)), pk.totLen), bad,
               "ip6walk.fits");
    Value *hp = cg.at(pk.l3, b.CreateZExt(start, cg.i64));
    cg.needBytes(hp, 2, bad, "ip6walk.read");
    Value *hpNext = cg.loadBE(hp, 0, cg.i8);
    Value *hpLen = b.CreateZExt(cg.loadBE(hp, 1, cg.i8), cg.i32);
    BasicBlock *isFrag = cg.block("ip6walk.frag");
    BasicBlock *notFrag = cg.block("ip6walk.notfrag");
    BasicBlock *advance = cg.block("ip6walk.advance");
    b.CreateCondBr(b.CreateICmpEQ(nexthdr, b.getInt8(44)), isFrag, notFrag);

    b.SetInsertPoint(isFrag);
    cg.require(b.CreateICmpULE(b.CreateAdd(start, b.getInt32(4)), pk.totLen), bad,
               "ip6walk.fragfits");
    cg.needBytes(hp, 4, bad, "ip6walk.fragread");
    Value *fragOff = b.CreateAnd(cg.loadBE(hp, 2, cg.i16), 0xfff8);
    BasicBlock *later = cg.block("ip6walk.later_fragment");
    BasicBlock *firstFrag = cg.block("ip6walk.first_fragment");
    b.CreateCondBr(b.CreateICmpNE(fragOff, b.getInt16(0)), later, firstFrag);
    b.SetInsertPoint(later);
    // Its next header is the answer unless it is another extension header
    // (then -ENOENT) or "none" (59 is reported as is).
    Value *nextIsExt = isExt(hpNext);
    exits.push_back({later, b.CreateNot(nextIsExt), hpNext, start, fragOff});
    b.CreateBr(done);
    b.SetInsertPoint(firstFrag);
    BasicBlock *firstEnd = b.GetInsertBlock();
    b.CreateBr(advance);

    b.SetInsertPoint(notFrag);
    Value *ahLen = b.CreateShl(b.CreateAdd(hpLen, b.getInt32(2)), 2);
    Value *optLen = b.CreateShl(b.CreateAdd(hpLen, b.getInt32(1)), 3);
    Value *len = b.CreateSelect(b.CreateICmpEQ(nexthdr, b.getInt8(51)), ahLen, optLen);
    BasicBlock *notFragEnd = b.GetInsertBlock();
    b.CreateBr(advance);

    b.SetInsertPoint(advance);
    PHINode *hdrLen = b.CreatePHI(cg.i32, 2, "ext.len");
    hdrLen->addIncoming(b.getInt32(8), firstEnd);
    hdrLen->addIncoming(len, notFragEnd);
    nexthdr = hpNext;
    start = b.CreateAdd(start, hdrLen);
    BasicBlock *cont = cg.block("ip6walk.step");
    b.CreateBr(cont);

    b.SetInsertPoint(bad);
    // A failed walk has no header offset (and no rule reads one).
    exits.push_back({bad, b.getFalse(), b.getInt8(0), b.getInt32(40), b.getInt16(0)});
    b.CreateBr(done);
    b.SetInsertPoint(cont);
  }

  // Every exit leaves the verifier a different register state, and all the
  // rules after the walk would be verified once per exit (hundreds of
  // thousands of instructions for a few rules). So each exit stores its
  // results in the per-CPU scratch value and the join reloads them with
  // volatile loads: the verifier does not track map contents, the exits
  // reach the join with equal states and are pruned. The reloaded offset is
  // masked to give it bounds again; the L4 reads check it against the
  // packet anyway.
  for (const Exit &e : exits) {
    b.SetInsertPoint(e.from->getTerminator());
    Value *base = scratchBase;
    b.CreateStore(b.CreateZExt(e.ok, cg.i32), cg.at(base, uint64_t(0)), true);
    b.CreateStore(b.CreateZExt(e.proto, cg.i32), cg.at(base, uint64_t(4)), true);
    b.CreateStore(e.off, cg.at(base, uint64_t(8)), true);
    b.CreateStore(b.CreateZExt(e.frag, cg.i32), cg.at(base, uint64_t(12)), true);
  }
  b.SetInsertPoint(done);
  auto reload = [&](uint64_t off, const char *name) {
    LoadInst *l = b.CreateLoad(cg.i32, cg.at(scratchBase, off), name);
    l->setVolatile(true);
    return l;
  };
  pk.walkOk = b.CreateICmpNE(b.CreateAnd(reload(0, "ip6walk.ok"), 1), b.getInt32(0));
  pk.upperProto = b.CreateTrunc(reload(4, "ip6walk.proto"), cg.i8);
  // At most 40 + 8 * 2048 (eight 2 KiB headers): 0x7fff keeps it below the
  // verifier's 64 KiB packet-offset limit with room for the header size.
  Value *off = b.CreateAnd(reload(8, "ip6walk.thoff"), b.getInt32(0x7fff));
  Value *frag = b.CreateTrunc(reload(12, "ip6walk.fragoff"), cg.i16);
  pk.ihl = off;
  pk.fragOff = frag;
  pk.fragWord = frag;
  pk.l4 = cg.at(pk.l3, b.CreateZExt(off, cg.i64));
  return pk;
}

} // namespace r2x::backend
