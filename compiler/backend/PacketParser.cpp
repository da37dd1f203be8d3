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

namespace {

/// The fixed IPv6 header validated as ip6_rcv_core() does (frames it would
/// drop go to `pass`) and its fields read; returns the first next header.
Value *ipv6Header(Codegen &cg, Packet &pk, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
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
  return first;
}

/// ipv6_find_hdr(target = -1): follow hop-by-hop, routing, fragment, AH
/// and destination options headers to the first header that is not one
/// of them (or "no next header", IPPROTO_NONE). A non-first fragment stops
/// the walk at the fragment header: its next header is the answer if that
/// is not an extension header, else the walk fails. A header cut short by
/// the payload length fails. Each step is a block that either finishes (an
/// exit, to `done_`) or goes on; at most kMaxIpv6ExtHeaders headers.
/// A mask for an offset the walk reloads from memory: above any real offset
/// (40 + 8 headers of at most 2 KiB), below the verifier's 64 KiB limit on
/// packet offsets, with room for a header's size.
constexpr uint32_t kMaxIpv6WalkOffset = 0x7fff;

class Ipv6Walk {
public:
  /// `scratch`: the per-CPU scratch value (contract::Scratch) the steps
  /// and the exits meet in.
  Ipv6Walk(Codegen &cg, Packet &pk, Value *scratch)
      : cg_(cg), b_(cg.b), pk_(pk), scratch_(scratch),
        done_(cg.block("ip6walk.done")) {}

  /// The walk from the first next header; ends with the insert point at
  /// the join, the results not yet read.
  void run(Value *first);
  /// The results into the packet (walkOk, upperProto, ihl, fragOff, l4),
  /// met in the scratch value.
  void join();

private:
  struct Exit {
    BasicBlock *from;
    Value *ok, *proto, *off, *frag, *sawFrag;
  };
  /// Ends the walk here with these results; `sawFrag`: a fragment header
  /// was on the way (default: sawFrag_ here).
  void exit(Value *ok, Value *proto, Value *off, Value *frag,
            Value *sawFrag = nullptr) {
    exits_.push_back({b_.GetInsertBlock(), ok, proto, off, frag,
                      sawFrag ? sawFrag : sawFrag_});
    b_.CreateBr(done_);
  }
  Value *isExt(Value *nh);
  void extension(Value *&nexthdr, Value *&start);
  BasicBlock *fragment(Value *hp, Value *hpNext, Value *start, BasicBlock *bad);

  Codegen &cg_;
  IRBuilder<> &b_;
  Packet &pk_;
  Value *scratch_;
  BasicBlock *done_;
  std::vector<Exit> exits_;
  /// i1: the walk has passed a fragment header (an atomic or first
  /// fragment) so far.
  Value *sawFrag_ = nullptr;
};

Value *Ipv6Walk::isExt(Value *nh) {
  Value *e = b_.getFalse();
  for (unsigned h : std::initializer_list<unsigned>{
           IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH,
           IPPROTO_DSTOPTS})
    e = b_.CreateOr(e,
                    b_.CreateICmpEQ(nh, b_.getInt8(static_cast<uint8_t>(h))));
  return e;
}

void Ipv6Walk::run(Value *nexthdr) {
  Value *start = b_.getInt32(kernel::Ip6Hlen);
  sawFrag_ = b_.getFalse();
  for (unsigned step = 0; step <= kMaxIpv6ExtHeaders; ++step) {
    BasicBlock *ext = cg_.block("ip6walk.ext");
    BasicBlock *upper = cg_.block("ip6walk.upper");
    b_.CreateCondBr(isExt(nexthdr), ext, upper);
    b_.SetInsertPoint(upper);
    exit(b_.getTrue(), nexthdr, start, b_.getInt16(0));
    b_.SetInsertPoint(ext);
    if (step == kMaxIpv6ExtHeaders) {
      // Deeper than we walk: fail, as a header we cannot read.
      exit(b_.getFalse(), b_.getInt8(0), start, b_.getInt16(0));
      break;
    }
    extension(nexthdr, start);
  }
  b_.SetInsertPoint(done_);
}

/// One extension header at `start`, of type `nexthdr`: on to the header it
/// names (nexthdr and start updated), or an exit.
void Ipv6Walk::extension(Value *&nexthdr, Value *&start) {
  Value *sawBefore = sawFrag_;
  // The two-byte option header must be inside the payload.
  BasicBlock *bad = cg_.block("ip6walk.short");
  cg_.require(b_.CreateICmpULE(b_.CreateAdd(start, b_.getInt32(2)), pk_.totLen),
              bad, "ip6walk.fits");
  Value *hp = cg_.at(pk_.l3, b_.CreateZExt(start, cg_.i64));
  cg_.needBytes(hp, 2, bad, "ip6walk.read");
  Value *hpNext = cg_.loadBE(hp, 0, cg_.i8);
  Value *hpLen = b_.CreateZExt(cg_.loadBE(hp, 1, cg_.i8), cg_.i32);
  BasicBlock *isFrag = cg_.block("ip6walk.frag");
  BasicBlock *notFrag = cg_.block("ip6walk.notfrag");
  BasicBlock *advance = cg_.block("ip6walk.advance");
  b_.CreateCondBr(b_.CreateICmpEQ(nexthdr, b_.getInt8(IPPROTO_FRAGMENT)),
                  isFrag, notFrag);

  b_.SetInsertPoint(isFrag);
  BasicBlock *firstEnd = fragment(hp, hpNext, start, bad);
  b_.CreateBr(advance);

  // AH counts its length in 4-byte words (minus 2), the others in 8-byte
  // words (minus 1).
  b_.SetInsertPoint(notFrag);
  Value *ahLen = b_.CreateShl(b_.CreateAdd(hpLen, b_.getInt32(2)), 2);
  Value *optLen = b_.CreateShl(b_.CreateAdd(hpLen, b_.getInt32(1)), 3);
  Value *len = b_.CreateSelect(b_.CreateICmpEQ(nexthdr, b_.getInt8(IPPROTO_AH)),
                               ahLen, optLen);
  BasicBlock *notFragEnd = b_.GetInsertBlock();
  b_.CreateBr(advance);

  b_.SetInsertPoint(advance);
  PHINode *hdrLen = b_.CreatePHI(cg_.i32, 2, "ext.len");
  hdrLen->addIncoming(b_.getInt32(8), firstEnd);
  hdrLen->addIncoming(len, notFragEnd);
  PHINode *saw = b_.CreatePHI(cg_.i1, 2, "ext.sawfrag");
  saw->addIncoming(b_.getTrue(), firstEnd);
  saw->addIncoming(sawBefore, notFragEnd);
  sawFrag_ = saw;
  nexthdr = hpNext;
  // The next header's offset goes through the scratch value: the verifier
  // knows each path's offset exactly (40, 48, 40 + an option's length...)
  // and, without this, walks every sequence of header kinds apart
  // (2^steps paths). Reloaded from memory it tracks no contents of, the
  // offset is one range at every step, and the paths into a step prune.
  constexpr uint64_t thoffAt = offsetof(contract::Scratch, thoff);
  // Bit 20: a fragment header passed, for the same reason.
  b_.CreateStore(b_.CreateOr(b_.CreateAdd(start, hdrLen),
                             b_.CreateShl(b_.CreateZExt(saw, cg_.i32), 20)),
                 cg_.at(scratch_, thoffAt), true);
  BasicBlock *cont = cg_.block("ip6walk.step");
  b_.CreateBr(cont);

  b_.SetInsertPoint(bad);
  // A failed walk has no header offset (and no rule reads one).
  exit(b_.getFalse(), b_.getInt8(0), b_.getInt32(kernel::Ip6Hlen),
       b_.getInt16(0), sawBefore);
  b_.SetInsertPoint(cont);
  LoadInst *next = b_.CreateLoad(cg_.i32, cg_.at(scratch_, thoffAt), "ext.off");
  next->setVolatile(true);
  start = b_.CreateAnd(next, b_.getInt32(kMaxIpv6WalkOffset));
  sawFrag_ = b_.CreateICmpNE(b_.CreateAnd(next, b_.getInt32(1u << 20)),
                             b_.getInt32(0));
}

/// A fragment header at `hp`: a non-first fragment ends the walk, the first
/// goes on past the header's 8 bytes (the block it goes on from).
BasicBlock *Ipv6Walk::fragment(Value *hp, Value *hpNext, Value *start,
                               BasicBlock *bad) {
  cg_.require(b_.CreateICmpULE(b_.CreateAdd(start, b_.getInt32(4)), pk_.totLen),
              bad, "ip6walk.fragfits");
  cg_.needBytes(hp, 4, bad, "ip6walk.fragread");
  Value *fragOff = b_.CreateAnd(cg_.loadBE(hp, 2, cg_.i16), 0xfff8);
  BasicBlock *later = cg_.block("ip6walk.later_fragment");
  BasicBlock *firstFrag = cg_.block("ip6walk.first_fragment");
  b_.CreateCondBr(b_.CreateICmpNE(fragOff, b_.getInt16(0)), later, firstFrag);
  b_.SetInsertPoint(later);
  // Its next header is the answer unless it is another extension header
  // (then -ENOENT) or "none" (IPPROTO_NONE is reported as is).
  exit(b_.CreateNot(isExt(hpNext)), hpNext, start, fragOff, b_.getTrue());
  b_.SetInsertPoint(firstFrag);
  return firstFrag;
}

/// Every exit leaves the verifier a different register state, and all the
/// rules after the walk would be verified once per exit (hundreds of
/// thousands of instructions for a few rules). So each exit stores its
/// results in the per-CPU scratch value and the join reloads them with
/// volatile loads: the verifier does not track map contents, the exits
/// reach the join with equal states and are pruned. The reloaded offset is
/// masked to give it bounds again; the L4 reads check it against the
/// packet anyway.
void Ipv6Walk::join() {
  Value *scratch = scratch_;
  using contract::Scratch;
  constexpr uint64_t okAt = offsetof(Scratch, walk_ok),
                     protoAt = offsetof(Scratch, proto),
                     thoffAt = offsetof(Scratch, thoff),
                     fragAt = offsetof(Scratch, fragoff);
  for (const Exit &e : exits_) {
    b_.SetInsertPoint(e.from->getTerminator());
    // walk_ok: bit 0 the walk's success, bit 1 a fragment header passed.
    b_.CreateStore(
        b_.CreateOr(b_.CreateZExt(e.ok, cg_.i32),
                    b_.CreateShl(b_.CreateZExt(e.sawFrag, cg_.i32), 1)),
        cg_.at(scratch, okAt), true);
    b_.CreateStore(b_.CreateZExt(e.proto, cg_.i32), cg_.at(scratch, protoAt),
                   true);
    b_.CreateStore(e.off, cg_.at(scratch, thoffAt), true);
    b_.CreateStore(b_.CreateZExt(e.frag, cg_.i32), cg_.at(scratch, fragAt),
                   true);
  }
  b_.SetInsertPoint(done_);
  auto reload = [&](uint64_t off, const char *name) {
    LoadInst *l = b_.CreateLoad(cg_.i32, cg_.at(scratch, off), name);
    l->setVolatile(true);
    return l;
  };
  Value *okWord = reload(okAt, "ip6walk.ok");
  pk_.walkOk = b_.CreateICmpNE(b_.CreateAnd(okWord, 1), b_.getInt32(0));
  pk_.fragHeader = b_.CreateICmpNE(b_.CreateAnd(okWord, 2), b_.getInt32(0));
  pk_.upperProto = b_.CreateTrunc(reload(protoAt, "ip6walk.proto"), cg_.i8);
  // At most 40 + 8 * 2048 (eight 2 KiB headers): kMaxIpv6WalkOffset keeps
  // it below the verifier's 64 KiB packet-offset limit with room for the
  // header size.
  Value *off = b_.CreateAnd(reload(thoffAt, "ip6walk.thoff"),
                            b_.getInt32(kMaxIpv6WalkOffset));
  Value *frag = b_.CreateTrunc(reload(fragAt, "ip6walk.fragoff"), cg_.i16);
  pk_.ihl = off;
  pk_.fragOff = frag;
  pk_.fragWord = frag;
  pk_.l4 = cg_.at(pk_.l3, b_.CreateZExt(off, cg_.i64));
}

} // namespace

Packet emitIpv6(Codegen &cg, const L2 &l2, BasicBlock *pass) {
  IRBuilder<> &b = cg.b;
  Packet pk;
  pk.v6 = true;
  copyL2(pk, l2);
  pk.l3 = cg.at(cg.data, l2.l3off);
  Value *first = ipv6Header(cg, pk, pass);
  // The scratch value the walk's exits meet in (Ipv6Walk::join).
  AllocaInst *zero = cg.u32Key();
  b.CreateStore(b.getInt32(0), zero);
  Value *scratch = cg.callHelper(MapLookupElem, cg.ptr, {cg.scratch, zero});
  cg.require(b.CreateIsNotNull(scratch), pass, "scratch.ok");
  Ipv6Walk walk(cg, pk, scratch);
  walk.run(first);
  walk.join();
  return pk;
}

} // namespace r2x::backend
