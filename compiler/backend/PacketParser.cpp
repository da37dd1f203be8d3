//===- compiler/backend/PacketParser.cpp - L2/L3 parsing for XDP ----------===//
//
/// \file
/// See PacketParser.h.
//===----------------------------------------------------------------------===//
#include "compiler/backend/PacketParser.h"

#include "compiler/backend/Scaffold.h"

#include <llvm/IR/Intrinsics.h>

namespace r2x::backend {

using namespace llvm;

L2 emitL2(Codegen &cg, Value *ctxArg, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  L2 l2;

  l2.ifindex = loadPacketPointers(cg, ctxArg, /*ingressIfindex=*/true);

  // Ethernet and up to two VLAN tags.
  using kernel::VlanHlen, kernel::VlanProto, kernel::VlanTci,
      kernel::VlanVidMask;
  constexpr uint64_t tag1At = ETH_HLEN, tag2At = ETH_HLEN + VlanHlen;
  Value *etype0 = emitEthernet(cg, pass);
  BasicBlock *ethBB = b.GetInsertBlock();
  BasicBlock *tag1 = cg.block("vlan1");
  BasicBlock *l3sel = cg.block("l3.select");
  b.CreateCondBr(isVlanTag(cg, etype0), tag1, l3sel);

  b.SetInsertPoint(tag1);
  cg.needBytes(cg.data, tag1At + VlanHlen, pass, "vlan1.ok");
  Value *vid1 =
      b.CreateAnd(cg.loadBE(cg.data, tag1At + VlanTci, cg.i16), VlanVidMask);
  Value *etype1 = cg.loadBE(cg.data, tag1At + VlanProto, cg.i16);
  BasicBlock *tag1End = b.GetInsertBlock();
  BasicBlock *tag2 = cg.block("vlan2");
  b.CreateCondBr(isVlanTag(cg, etype1), tag2, l3sel);

  b.SetInsertPoint(tag2);
  cg.needBytes(cg.data, tag2At + VlanHlen, pass, "vlan2.ok");
  Value *vid2 =
      b.CreateAnd(cg.loadBE(cg.data, tag2At + VlanTci, cg.i16), VlanVidMask);
  Value *etype2 = cg.loadBE(cg.data, tag2At + VlanProto, cg.i16);
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
  l3off->addIncoming(b.getInt64(tag1At), ethBB);
  l3off->addIncoming(b.getInt64(tag2At), tag1End);
  l3off->addIncoming(b.getInt64(tag2At + VlanHlen), tag2End);
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
  using namespace kernel;
  cg.needBytes(pk.l3, Ip4Hlen, pass, "ipv4.hdr");
  Value *vihl = cg.loadBE(pk.l3, 0, cg.i8);
  cg.require(b.CreateICmpEQ(b.CreateLShr(vihl, 4), b.getInt8(4)), pass,
             "ipv4.version");
  pk.ihl = b.CreateShl(b.CreateZExt(b.CreateAnd(vihl, 0x0f), cg.i32), 2, "ihl");
  cg.require(b.CreateICmpUGE(pk.ihl, b.getInt32(Ip4Hlen)), pass, "ipv4.ihl");
  pk.totLen =
      b.CreateZExt(cg.loadBE(pk.l3, Ip4TotLen, cg.i16), cg.i32, "tot_len");
  cg.require(b.CreateICmpUGE(pk.totLen, pk.ihl), pass, "ipv4.totlen");
  Value *ipEnd = cg.at(pk.l3, b.CreateZExt(pk.totLen, cg.i64));
  cg.require(b.CreateICmpULE(ipEnd, cg.dataEnd), pass, "ipv4.valid");

  pk.tos = cg.loadBE(pk.l3, Ip4Tos, cg.i8);
  pk.fragWord = cg.loadBE(pk.l3, Ip4FragOff, cg.i16);
  pk.fragOff = b.CreateAnd(pk.fragWord, Ip4OffMask, "fragoff");
  pk.ttl = cg.loadBE(pk.l3, Ip4Ttl, cg.i8);
  pk.proto = cg.loadBE(pk.l3, Ip4Protocol, cg.i8);
  pk.saddrRaw = b.CreateLoad(cg.i32, cg.at(pk.l3, Ip4Saddr), "saddr.raw");
  pk.daddrRaw = b.CreateLoad(cg.i32, cg.at(pk.l3, Ip4Daddr), "daddr.raw");
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
  using namespace kernel;
  cg.needBytes(pk.l3, Ip6Hlen, pass, "ipv6.hdr");
  Value *ver = cg.loadBE(pk.l3, 0, cg.i8);
  cg.require(b.CreateICmpEQ(b.CreateLShr(ver, 4), b.getInt8(6)), pass,
             "ipv6.version");
  Value *payload = b.CreateZExt(cg.loadBE(pk.l3, Ip6PayloadLen, cg.i16), cg.i32,
                                "payload_len");
  Value *first = cg.loadBE(pk.l3, Ip6Nexthdr, cg.i8);
  // A jumbogram (payload length 0 with a hop-by-hop header) is the kernel's
  // to judge; rules never see one here. Payload length 0 with any other
  // next header is an ordinary 40-byte packet (ip6_rcv_core()).
  cg.require(b.CreateNot(b.CreateAnd(
                 b.CreateICmpEQ(payload, b.getInt32(0)),
                 b.CreateICmpEQ(first, b.getInt8(IPPROTO_HOPOPTS)))),
             pass, "ipv6.notjumbo");
  pk.totLen = b.CreateAdd(payload, b.getInt32(Ip6Hlen), "ip6_len");
  Value *ipEnd = cg.at(pk.l3, b.CreateZExt(pk.totLen, cg.i64));
  cg.require(b.CreateICmpULE(ipEnd, cg.dataEnd), pass, "ipv6.valid");

  pk.flowWord = b.CreateLoad(cg.i32, pk.l3, "flow.raw");
  // Traffic class: the 8 bits after the version.
  Value *w0 = cg.loadBE(pk.l3, 0, cg.i16);
  pk.tos = b.CreateTrunc(b.CreateLShr(w0, 4), cg.i8, "tclass");
  pk.ttl = cg.loadBE(pk.l3, Ip6HopLimit, cg.i8);
  for (unsigned i = 0; i < 4; ++i) {
    pk.saddr6[i] = b.CreateLoad(cg.i32, cg.at(pk.l3, Ip6Saddr + 4 * i));
    pk.daddr6[i] = b.CreateLoad(cg.i32, cg.at(pk.l3, Ip6Daddr + 4 * i));
  }
  pk.proto = first;

  // The scratch value the walk's exits meet in (see the end of the walk).
  AllocaInst *zero = cg.stackSlot(cg.i32, 4, "scratch.key");
  b.CreateStore(b.getInt32(0), zero);
  Value *scratchBase = cg.callHelper(MapLookupElem, cg.ptr, {cg.scratch, zero});
  cg.require(b.CreateIsNotNull(scratchBase), pass, "scratch.ok");

  // ipv6_find_hdr(target = -1): follow hop-by-hop, routing, fragment, AH
  // and destination options headers to the first header that is not one
  // of them (or "no next header", IPPROTO_NONE). A non-first
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
    for (unsigned h : std::initializer_list<unsigned>{
             IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH,
             IPPROTO_DSTOPTS})
      e = b.CreateOr(e, b.CreateICmpEQ(nh, b.getInt8(static_cast<uint8_t>(h))));
    return e;
  };
  Value *nexthdr = first;
  Value *start = b.getInt32(Ip6Hlen);
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
    cg.require(b.CreateICmpULE(b.CreateAdd(start, b.getInt32(2)), pk.totLen),
               bad, "ip6walk.fits");
    Value *hp = cg.at(pk.l3, b.CreateZExt(start, cg.i64));
    cg.needBytes(hp, 2, bad, "ip6walk.read");
    Value *hpNext = cg.loadBE(hp, 0, cg.i8);
    Value *hpLen = b.CreateZExt(cg.loadBE(hp, 1, cg.i8), cg.i32);
    BasicBlock *isFrag = cg.block("ip6walk.frag");
    BasicBlock *notFrag = cg.block("ip6walk.notfrag");
    BasicBlock *advance = cg.block("ip6walk.advance");
    b.CreateCondBr(b.CreateICmpEQ(nexthdr, b.getInt8(IPPROTO_FRAGMENT)), isFrag,
                   notFrag);

    b.SetInsertPoint(isFrag);
    cg.require(b.CreateICmpULE(b.CreateAdd(start, b.getInt32(4)), pk.totLen),
               bad, "ip6walk.fragfits");
    cg.needBytes(hp, 4, bad, "ip6walk.fragread");
    Value *fragOff = b.CreateAnd(cg.loadBE(hp, 2, cg.i16), 0xfff8);
    BasicBlock *later = cg.block("ip6walk.later_fragment");
    BasicBlock *firstFrag = cg.block("ip6walk.first_fragment");
    b.CreateCondBr(b.CreateICmpNE(fragOff, b.getInt16(0)), later, firstFrag);
    b.SetInsertPoint(later);
    // Its next header is the answer unless it is another extension header
    // (then -ENOENT) or "none" (IPPROTO_NONE is reported as is).
    Value *nextIsExt = isExt(hpNext);
    exits.push_back({later, b.CreateNot(nextIsExt), hpNext, start, fragOff});
    b.CreateBr(done);
    b.SetInsertPoint(firstFrag);
    BasicBlock *firstEnd = b.GetInsertBlock();
    b.CreateBr(advance);

    b.SetInsertPoint(notFrag);
    Value *ahLen = b.CreateShl(b.CreateAdd(hpLen, b.getInt32(2)), 2);
    Value *optLen = b.CreateShl(b.CreateAdd(hpLen, b.getInt32(1)), 3);
    Value *len = b.CreateSelect(b.CreateICmpEQ(nexthdr, b.getInt8(IPPROTO_AH)),
                                ahLen, optLen);
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
    exits.push_back(
        {bad, b.getFalse(), b.getInt8(0), b.getInt32(Ip6Hlen), b.getInt16(0)});
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
  using contract::Scratch;
  constexpr uint64_t okAt = offsetof(Scratch, walk_ok),
                     protoAt = offsetof(Scratch, proto),
                     thoffAt = offsetof(Scratch, thoff),
                     fragAt = offsetof(Scratch, fragoff);
  for (const Exit &e : exits) {
    b.SetInsertPoint(e.from->getTerminator());
    Value *base = scratchBase;
    b.CreateStore(b.CreateZExt(e.ok, cg.i32), cg.at(base, okAt), true);
    b.CreateStore(b.CreateZExt(e.proto, cg.i32), cg.at(base, protoAt), true);
    b.CreateStore(e.off, cg.at(base, thoffAt), true);
    b.CreateStore(b.CreateZExt(e.frag, cg.i32), cg.at(base, fragAt), true);
  }
  b.SetInsertPoint(done);
  auto reload = [&](uint64_t off, const char *name) {
    LoadInst *l = b.CreateLoad(cg.i32, cg.at(scratchBase, off), name);
    l->setVolatile(true);
    return l;
  };
  pk.walkOk =
      b.CreateICmpNE(b.CreateAnd(reload(okAt, "ip6walk.ok"), 1), b.getInt32(0));
  pk.upperProto = b.CreateTrunc(reload(protoAt, "ip6walk.proto"), cg.i8);
  // At most 40 + 8 * 2048 (eight 2 KiB headers): 0x7fff keeps it below the
  // verifier's 64 KiB packet-offset limit with room for the header size.
  Value *off =
      b.CreateAnd(reload(thoffAt, "ip6walk.thoff"), b.getInt32(0x7fff));
  Value *frag = b.CreateTrunc(reload(fragAt, "ip6walk.fragoff"), cg.i16);
  pk.ihl = off;
  pk.fragOff = frag;
  pk.fragWord = frag;
  pk.l4 = cg.at(pk.l3, b.CreateZExt(off, cg.i64));
  return pk;
}

} // namespace r2x::backend
