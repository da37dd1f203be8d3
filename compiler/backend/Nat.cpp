//===- compiler/backend/Nat.cpp - DNAT bindings and the forwarding path ----===//
//
/// \file
/// See Nat.h. Checksums follow the brief: RFC 1624 updates over the words
/// that change (addresses are in the TCP and UDP pseudo-header; ICMP's
/// checksum covers no address), a zero UDP checksum stays zero and a
/// computed zero is written as 0xffff; the TTL decrement is ip_decrease_ttl().
//===----------------------------------------------------------------------===//
#include "compiler/backend/Nat.h"

#include <llvm/IR/Intrinsics.h>

namespace r2x::backend {

using namespace llvm;

namespace {
/// bpf_fib_lookup field offsets (struct bpf_fib_lookup).
constexpr uint64_t kFibIfindex = 8, kFibSmac = 52, kFibDmac = 58;
/// Protocols translated by address only: conntrack keys them without ports
/// (or rule2xdp does not rewrite their ports) and their checksums cover no
/// IP address. IPIP, IPv6-in-IPv4, GRE, ESP, SCTP (CRC32c over SCTP only).
constexpr uint8_t kAddressOnly[] = {4, 41, 47, 50, 132};
} // namespace

NatLowering::NatLowering(Codegen &cg, BtfBuilder &btf) : cg_(cg) {
  DIType *key = btf.structType("r2x_nat_key",
                               {{"saddr", btf.u32()},
                                {"daddr", btf.u32()},
                                {"sport", btf.u16()},
                                {"dport", btf.u16()},
                                {"proto", btf.u8()},
                                {"pad1", btf.u8()},
                                {"pad2", btf.u16()}},
                               16);
  DIType *val = btf.structType("r2x_nat_value",
                               {{"addr", btf.u32()},
                                {"port", btf.u16()},
                                {"dir", btf.u8()},
                                {"pad", btf.u8()}},
                               8);
  nat_ = btf.map("r2x_nat", MapType::LruHash, key, val, 65536);
  tx_ = btf.map("r2x_tx", MapType::DevmapHash, btf.u32(), btf.u32(), 256);
}

void NatLowering::begin() {
  IRBuilder<> &b = cg_.b;
  key_ = cg_.stackSlot(ArrayType::get(cg_.i8, 16), 8, "nat.key");
  val_ = cg_.stackSlot(ArrayType::get(cg_.i8, 8), 8, "nat.value");
  state_ = cg_.stackSlot(cg_.i32, 4, "nat.state");
  replyAddr_ = cg_.stackSlot(cg_.i32, 4, "nat.reply.addr");
  replyPort_ = cg_.stackSlot(cg_.i16, 2, "nat.reply.port");
  sport_ = cg_.stackSlot(cg_.i16, 2, "nat.sport");
  dport_ = cg_.stackSlot(cg_.i16, 2, "nat.dport");
  b.CreateStore(b.getInt32(0), state_);
  b.CreateStore(b.getInt32(0), replyAddr_);
  b.CreateStore(b.getInt16(0), replyPort_);
}

void NatLowering::storeKey(Value *saddr, Value *daddr, Value *sport,
                           Value *dport, Value *proto) {
  IRBuilder<> &b = cg_.b;
  // Every byte is part of the hash key: padding too.
  b.CreateStore(b.getInt64(0), cg_.at(key_, uint64_t(8)));
  b.CreateStore(saddr, cg_.at(key_, uint64_t(0)));
  b.CreateStore(daddr, cg_.at(key_, uint64_t(4)));
  b.CreateStore(sport, cg_.at(key_, uint64_t(8)));
  b.CreateStore(dport, cg_.at(key_, uint64_t(10)));
  b.CreateStore(proto, cg_.at(key_, uint64_t(12)));
}

void NatLowering::storeValue(Value *addr, Value *port, uint8_t dir) {
  IRBuilder<> &b = cg_.b;
  b.CreateStore(addr, cg_.at(val_, uint64_t(0)));
  b.CreateStore(port, cg_.at(val_, uint64_t(4)));
  b.CreateStore(b.getInt8(dir), cg_.at(val_, uint64_t(6)));
  b.CreateStore(b.getInt8(0), cg_.at(val_, uint64_t(7)));
}

void NatLowering::emitLookup(Packet &pk, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  // conntrack sees datagrams after defragmentation; XDP sees fragments,
  // which rule2xdp cannot translate consistently: they go on untranslated
  // (docs/nat.md).
  cg_.require(b.CreateICmpEQ(b.CreateAnd(pk.fragWord, 0x3fff), b.getInt16(0)),
              after, "nat.whole");
  BasicBlock *tcp = cg_.block("nat.tcp"), *udp = cg_.block("nat.udp"),
             *icmp = cg_.block("nat.icmp"), *other = cg_.block("nat.addronly"),
             *keyed = cg_.block("nat.keyed");
  SwitchInst *sw = b.CreateSwitch(pk.proto, after, 8);
  sw->addCase(b.getInt8(6), tcp);
  sw->addCase(b.getInt8(17), udp);
  sw->addCase(b.getInt8(1), icmp);
  for (uint8_t p : kAddressOnly)
    sw->addCase(b.getInt8(p), other);

  // A transport header conntrack cannot read makes the packet invalid:
  // never translated.
  auto header = [&](uint64_t need) {
    cg_.require(b.CreateICmpULE(b.CreateAdd(pk.ihl, b.getInt32(need)), pk.totLen),
                after, "nat.l4.fits");
    cg_.needBytes(pk.l4, need, after, "nat.l4.hdr");
  };
  auto ports = [&](uint64_t need) {
    header(need);
    b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, uint64_t(0))), sport_);
    b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, uint64_t(2))), dport_);
  };
  std::vector<std::pair<BasicBlock *, Value *>> mayOpen;
  b.SetInsertPoint(tcp);
  ports(20);
  mayOpen.push_back({b.GetInsertBlock(), b.getTrue()});
  b.CreateBr(keyed);
  b.SetInsertPoint(udp);
  ports(8);
  mayOpen.push_back({b.GetInsertBlock(), b.getTrue()});
  b.CreateBr(keyed);

  // ICMP queries (echo, timestamp, information, address mask) open a
  // connection keyed by their identifier; their replies belong to it.
  // Errors are RELATED to another connection: not translated here.
  b.SetInsertPoint(icmp);
  header(8);
  Value *type = b.CreateLoad(cg_.i8, cg_.at(pk.l4, uint64_t(0)));
  Value *query = b.getFalse(), *reply = b.getFalse();
  for (unsigned t : {8u, 13u, 15u, 17u})
    query = b.CreateOr(query, b.CreateICmpEQ(type, b.getInt8(t)));
  for (unsigned t : {0u, 14u, 16u, 18u})
    reply = b.CreateOr(reply, b.CreateICmpEQ(type, b.getInt8(t)));
  cg_.require(b.CreateOr(query, reply), after, "nat.icmp.query");
  b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, uint64_t(4))), sport_);
  b.CreateStore(b.getInt16(0), dport_);
  mayOpen.push_back({b.GetInsertBlock(), query});
  b.CreateBr(keyed);

  b.SetInsertPoint(other);
  b.CreateStore(b.getInt16(0), sport_);
  b.CreateStore(b.getInt16(0), dport_);
  mayOpen.push_back({b.GetInsertBlock(), b.getTrue()});
  b.CreateBr(keyed);

  b.SetInsertPoint(keyed);
  PHINode *may = b.CreatePHI(cg_.i1, static_cast<unsigned>(mayOpen.size()), "nat.may_open");
  for (auto [bb, v] : mayOpen)
    may->addIncoming(v, bb);
  storeKey(pk.saddrRaw, pk.daddrRaw, b.CreateLoad(cg_.i16, sport_),
           b.CreateLoad(cg_.i16, dport_), pk.proto);
  Value *v = cg_.callHelper(MapLookupElem, cg_.ptr, {nat_, key_});
  BasicBlock *hit = cg_.block("nat.bound"), *miss = cg_.block("nat.new");
  b.CreateCondBr(b.CreateIsNull(v), miss, hit);

  b.SetInsertPoint(hit);
  Value *addr = b.CreateLoad(cg_.i32, v);
  Value *port = b.CreateLoad(cg_.i16, cg_.at(v, uint64_t(4)));
  Value *dir = b.CreateLoad(cg_.i8, cg_.at(v, uint64_t(6)));
  BasicBlock *orig = cg_.block("nat.original"), *rep = cg_.block("nat.reply");
  b.CreateCondBr(b.CreateICmpEQ(dir, b.getInt8(0)), orig, rep);
  b.SetInsertPoint(orig);
  rewrite(pk, true, addr, port, after);
  b.CreateStore(b.getInt32(1), state_);
  b.CreateBr(after);
  // A reply is translated back after FORWARD (POSTROUTING in the kernel).
  b.SetInsertPoint(rep);
  b.CreateStore(addr, replyAddr_);
  b.CreateStore(port, replyPort_);
  b.CreateStore(b.getInt32(2), state_);
  b.CreateBr(after);

  b.SetInsertPoint(miss);
  cg_.require(may, after, "nat.chain");
}

void NatLowering::emitBind(Packet &pk, const ir::NatTarget &t) {
  IRBuilder<> &b = cg_.b;
  Value *newAddr = b.getInt32(__builtin_bswap32(t.addr)); // as on the wire
  Value *sport = b.CreateLoad(cg_.i16, sport_);
  Value *dport = b.CreateLoad(cg_.i16, dport_);
  Value *newPort = dport;
  if (t.portLo != 0) {
    // nf_nat's get_unique_tuple(): a port already in the range is kept;
    // otherwise the first of the range (off = 0 for DNAT), or a random one
    // with --random. (A clash with another binding of the very same tuple,
    // which makes the kernel try the next port, is not modelled.)
    Value *orig = b.CreateUnaryIntrinsic(Intrinsic::bswap, dport);
    uint32_t n = uint32_t(t.portHi) - t.portLo + 1;
    Value *chosen;
    if (t.random) {
      Value *r = b.CreateTrunc(cg_.callHelper(GetPrandomU32, cg_.i64, {}), cg_.i32);
      chosen = b.CreateTrunc(b.CreateAdd(b.getInt32(t.portLo), b.CreateURem(r, b.getInt32(n))),
                             cg_.i16);
    } else {
      Value *in = b.CreateAnd(b.CreateICmpUGE(orig, b.getInt16(t.portLo)),
                              b.CreateICmpULE(orig, b.getInt16(t.portHi)));
      chosen = b.CreateSelect(in, orig, b.getInt16(t.portLo));
    }
    newPort = b.CreateUnaryIntrinsic(Intrinsic::bswap, chosen);
  }
  // The original direction (the key is still this packet's).
  storeValue(newAddr, newPort, 0);
  cg_.callHelper(MapUpdateElem, cg_.i64, {nat_, key_, val_, b.getInt64(0)});
  // The reply: from the new destination back to the client. TCP and UDP
  // swap the ports; ICMP queries keep their identifier.
  Value *ported = b.CreateOr(b.CreateICmpEQ(pk.proto, b.getInt8(6)),
                             b.CreateICmpEQ(pk.proto, b.getInt8(17)));
  storeKey(newAddr, pk.saddrRaw, b.CreateSelect(ported, newPort, sport),
           b.CreateSelect(ported, sport, b.getInt16(0)), pk.proto);
  storeValue(pk.daddrRaw, dport, 1);
  cg_.callHelper(MapUpdateElem, cg_.i64, {nat_, key_, val_, b.getInt64(0)});
  BasicBlock *done = cg_.block("nat.bound.done");
  rewrite(pk, true, newAddr, newPort, done);
  b.CreateStore(b.getInt32(1), state_);
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

void NatLowering::rewrite(Packet &pk, bool dst, Value *addrRaw, Value *portRaw,
                          BasicBlock *skip) {
  IRBuilder<> &b = cg_.b;
  uint64_t addrOff = dst ? 16 : 12, portOff = dst ? 2 : 0;
  BasicBlock *tcp = cg_.block("rw.tcp"), *udp = cg_.block("rw.udp"),
             *ip = cg_.block("rw.ip"), *done = cg_.block("rw.done");
  SwitchInst *sw = b.CreateSwitch(pk.proto, ip, 2);
  sw->addCase(b.getInt8(6), tcp);
  sw->addCase(b.getInt8(17), udp);

  // The IP header: address and header checksum.
  auto ipPart = [&]() -> std::pair<Value *, Value *> {
    Value *addrP = cg_.at(pk.l3, addrOff);
    Value *old = b.CreateLoad(cg_.i32, addrP);
    b.CreateStore(addrRaw, addrP);
    Value *csumP = cg_.at(pk.l3, uint64_t(10));
    auto [ol, oh] = cg_.halves(old);
    auto [nl, nh] = cg_.halves(addrRaw);
    b.CreateStore(cg_.csumReplace(b.CreateLoad(cg_.i16, csumP), {{ol, nl}, {oh, nh}}),
                  csumP);
    return {old, addrRaw};
  };
  auto l4Words = [&](Value *old, Value *oldPort) {
    auto [ol, oh] = cg_.halves(old);
    auto [nl, nh] = cg_.halves(addrRaw);
    return std::vector<std::pair<Value *, Value *>>{
        {ol, nl}, {oh, nh}, {oldPort, portRaw}};
  };

  b.SetInsertPoint(tcp);
  cg_.needBytes(pk.l4, 20, skip, "rw.tcp.hdr");
  {
    auto [old, _] = ipPart();
    Value *portP = cg_.at(pk.l4, portOff);
    Value *oldPort = b.CreateLoad(cg_.i16, portP);
    b.CreateStore(portRaw, portP);
    Value *csumP = cg_.at(pk.l4, uint64_t(16));
    b.CreateStore(cg_.csumReplace(b.CreateLoad(cg_.i16, csumP), l4Words(old, oldPort)),
                  csumP);
  }
  b.CreateBr(done);

  b.SetInsertPoint(udp);
  cg_.needBytes(pk.l4, 8, skip, "rw.udp.hdr");
  {
    auto [old, _] = ipPart();
    Value *portP = cg_.at(pk.l4, portOff);
    Value *oldPort = b.CreateLoad(cg_.i16, portP);
    b.CreateStore(portRaw, portP);
    Value *csumP = cg_.at(pk.l4, uint64_t(6));
    Value *csum = b.CreateLoad(cg_.i16, csumP);
    BasicBlock *sum = cg_.block("rw.udp.csum");
    b.CreateCondBr(b.CreateICmpEQ(csum, b.getInt16(0)), done, sum);
    b.SetInsertPoint(sum);
    Value *n = cg_.csumReplace(csum, l4Words(old, oldPort));
    n = b.CreateSelect(b.CreateICmpEQ(n, b.getInt16(0)), b.getInt16(0xffff), n);
    b.CreateStore(n, csumP);
  }
  b.CreateBr(done);

  b.SetInsertPoint(ip);
  ipPart();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

void NatLowering::reloadDestination(Packet &pk) {
  IRBuilder<> &b = cg_.b;
  pk.daddrRaw = b.CreateLoad(cg_.i32, cg_.at(pk.l3, uint64_t(16)), "daddr.raw.nat");
  pk.daddr = b.CreateUnaryIntrinsic(Intrinsic::bswap, pk.daddrRaw);
}

void NatLowering::emitForward(Packet &pk, Value *fibRc, Value *fib,
                              BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  Value *state = b.CreateLoad(cg_.i32, state_);
  cg_.require(b.CreateICmpNE(state, b.getInt32(0)), pass, "fwd.translated");
  // The fast path needs a resolved neighbour (no ARP from XDP), a plain
  // header (IP options are the kernel's business) and an untagged frame.
  cg_.require(b.CreateICmpEQ(fibRc, b.getInt64(0)), pass, "fwd.fib_ok");
  cg_.require(b.CreateICmpEQ(pk.ihl, b.getInt32(20)), pass, "fwd.no_options");
  cg_.require(b.CreateICmpEQ(pk.vidOuter, b.getInt16(0)), pass, "fwd.untagged");
  cg_.needBytes(cg_.data, 14, pass, "fwd.eth");
  Value *ifindex = b.CreateLoad(cg_.i32, cg_.at(fib, kFibIfindex));
  // Flags XDP_PASS: a device missing from r2x_tx hands the packet to the
  // kernel, untouched by what follows.
  Value *rc = cg_.callHelper(RedirectMap, cg_.i64,
                             {tx_, b.CreateZExt(ifindex, cg_.i64), b.getInt64(XdpPass)});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(XdpRedirect)), pass, "fwd.redirect");

  BasicBlock *reply = cg_.block("fwd.unnat"), *out = cg_.block("fwd.out");
  b.CreateCondBr(b.CreateICmpEQ(state, b.getInt32(2)), reply, out);
  b.SetInsertPoint(reply);
  rewrite(pk, false, b.CreateLoad(cg_.i32, replyAddr_),
          b.CreateLoad(cg_.i16, replyPort_), pass);
  b.CreateBr(out);

  // ip_decrease_ttl(): the checksum word as loaded (little-endian) gains
  // htons(0x0100) = 1, with the end-around carry.
  b.SetInsertPoint(out);
  Value *csumP = cg_.at(pk.l3, uint64_t(10));
  Value *c = b.CreateAdd(b.CreateZExt(b.CreateLoad(cg_.i16, csumP), cg_.i32), b.getInt32(1));
  c = b.CreateAdd(c, b.CreateZExt(b.CreateICmpUGE(c, b.getInt32(0xffff)), cg_.i32));
  b.CreateStore(b.CreateTrunc(c, cg_.i16), csumP);
  Value *ttlP = cg_.at(pk.l3, uint64_t(8));
  b.CreateStore(b.CreateSub(b.CreateLoad(cg_.i8, ttlP), b.getInt8(1)), ttlP);
  // Ethernet: the neighbour's address, then the egress device's.
  b.CreateMemCpy(cg_.at(cg_.data, uint64_t(0)), MaybeAlign(1), cg_.at(fib, kFibDmac),
                 MaybeAlign(1), 6);
  b.CreateMemCpy(cg_.at(cg_.data, uint64_t(6)), MaybeAlign(1), cg_.at(fib, kFibSmac),
                 MaybeAlign(1), 6);
  cg_.ret(XdpRedirect);
}

} // namespace r2x::backend
