//===- compiler/backend/Nat.cpp - DNAT bindings and the forwarding path
//----===//
//
/// \file
/// See Nat.h. Checksums follow the brief: RFC 1624 updates over the words
/// that change (addresses are in the TCP and UDP pseudo-header; ICMP's
/// checksum covers no address), a zero UDP checksum stays zero and a
/// computed zero is written as 0xffff; the TTL decrement is ip_decrease_ttl().
//===----------------------------------------------------------------------===//
#include "compiler/backend/Nat.h"

#include <llvm/IR/Intrinsics.h>

#include <cstring>

namespace r2x::backend {

using namespace llvm;

/// The connection table of one family as the object contract lays it out
/// (contract::NatKey / Nat6Key and their values).
struct NatShape {
  const contract::MapSpec &map;
  const contract::StructLayout &key, &value;
  uint64_t keySaddr, keyDaddr, keySport, keyDport, keyProto, keyPad;
  uint64_t valAddr, valPort, valDir, valPad;
};

namespace {
/// state_: what nat PREROUTING did with the packet: nothing, translated
/// it, or found it a reply to translate back after FORWARD.
enum NatState : uint32_t { Untouched = 0, Translated = 1, ReplyPending = 2 };

/// Protocols translated by address only: conntrack keys them without ports
/// (or rule2xdp does not rewrite their ports) and their checksums cover no
/// IP address. IPIP, IPv6-in-IPv4, GRE, ESP, SCTP (CRC32c over SCTP only).
constexpr uint8_t kAddressOnly[] = {IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE,
                                    IPPROTO_ESP, IPPROTO_SCTP};

template <class Key, class Val>
constexpr NatShape natShape(const contract::MapSpec &map,
                            const contract::StructLayout &key,
                            const contract::StructLayout &value) {
  static_assert(
      offsetof(Key, pad2) + sizeof(uint16_t) == sizeof(Key) &&
          offsetof(Key, proto) + 1 == offsetof(Key, pad1) &&
          offsetof(Key, sport) + 8 == sizeof(Key),
      "the ports, protocol and padding are the last 8 bytes of the key");
  return {map,
          key,
          value,
          offsetof(Key, saddr),
          offsetof(Key, daddr),
          offsetof(Key, sport),
          offsetof(Key, dport),
          offsetof(Key, proto),
          offsetof(Key, sport),
          offsetof(Val, addr),
          offsetof(Val, port),
          offsetof(Val, dir),
          offsetof(Val, pad)};
}

const NatShape &shapeOf(bool v6) {
  static const NatShape v4 = natShape<contract::NatKey, contract::NatValue>(
      contract::NatMap, contract::NatKeyLayout, contract::NatValueLayout);
  static const NatShape v6s = natShape<contract::Nat6Key, contract::Nat6Value>(
      contract::Nat6Map, contract::Nat6KeyLayout, contract::Nat6ValueLayout);
  return v6 ? v6s : v4;
}
} // namespace

GlobalVariable *NatLowering::declareTx(BtfBuilder &btf) {
  return btf.map(contract::TxMap, btf.u32(), btf.u32());
}

NatLowering::NatLowering(Codegen &cg, BtfBuilder &btf, bool v6,
                         GlobalVariable *tx)
    : cg_(cg), v6_(v6), shape_(shapeOf(v6)), tx_(tx) {
  nat_ = btf.map(shape_.map, btf.structType(shape_.key),
                 btf.structType(shape_.value));
}

void NatLowering::begin() {
  IRBuilder<> &b = cg_.b;
  std::string sfx = v6_ ? "6" : "";
  key_ = cg_.stackSlot(ArrayType::get(cg_.i8, shape_.map.keySize), 8,
                       "nat.key" + sfx);
  val_ = cg_.stackSlot(ArrayType::get(cg_.i8, shape_.map.valueSize), 8,
                       "nat.value" + sfx);
  state_ = cg_.stackSlot(cg_.i32, 4, "nat.state" + sfx);
  replyAddr_ = cg_.stackSlot(ArrayType::get(cg_.i32, words()), 4,
                             "nat.reply.addr" + sfx);
  replyPort_ = cg_.stackSlot(cg_.i16, 2, "nat.reply.port" + sfx);
  sport_ = cg_.stackSlot(cg_.i16, 2, "nat.sport" + sfx);
  dport_ = cg_.stackSlot(cg_.i16, 2, "nat.dport" + sfx);
  b.CreateStore(b.getInt32(Untouched), state_);
  for (unsigned w = 0; w < words(); ++w)
    b.CreateStore(b.getInt32(0), cg_.at(replyAddr_, uint64_t(4 * w)));
  b.CreateStore(b.getInt16(0), replyPort_);
}

NatLowering::Addr NatLowering::loadAddr(Value *p) {
  Addr a;
  for (unsigned w = 0; w < words(); ++w)
    a.push_back(cg_.b.CreateLoad(cg_.i32, cg_.at(p, uint64_t(4 * w))));
  return a;
}

NatLowering::Addr NatLowering::source(const Packet &pk) const {
  return v6_ ? Addr(pk.saddr6, pk.saddr6 + 4) : Addr{pk.saddrRaw};
}

NatLowering::Addr NatLowering::destination(const Packet &pk) const {
  return v6_ ? Addr(pk.daddr6, pk.daddr6 + 4) : Addr{pk.daddrRaw};
}

void NatLowering::storeKey(const Addr &saddr, const Addr &daddr, Value *sport,
                           Value *dport, Value *proto) {
  IRBuilder<> &b = cg_.b;
  // Every byte is part of the hash key: padding too (the last 8 bytes, see
  // natShape()).
  b.CreateStore(b.getInt64(0), cg_.at(key_, shape_.keyPad));
  for (unsigned w = 0; w < words(); ++w) {
    b.CreateStore(saddr[w], cg_.at(key_, shape_.keySaddr + 4 * w));
    b.CreateStore(daddr[w], cg_.at(key_, shape_.keyDaddr + 4 * w));
  }
  b.CreateStore(sport, cg_.at(key_, shape_.keySport));
  b.CreateStore(dport, cg_.at(key_, shape_.keyDport));
  b.CreateStore(proto, cg_.at(key_, shape_.keyProto));
}

void NatLowering::storeValue(const Addr &addr, Value *port, uint8_t dir) {
  IRBuilder<> &b = cg_.b;
  for (unsigned w = 0; w < words(); ++w)
    b.CreateStore(addr[w], cg_.at(val_, shape_.valAddr + 4 * w));
  b.CreateStore(port, cg_.at(val_, shape_.valPort));
  b.CreateStore(b.getInt8(dir), cg_.at(val_, shape_.valDir));
  b.CreateStore(b.getInt8(0), cg_.at(val_, shape_.valPad));
}

void NatLowering::requireHeader(Packet &pk, uint64_t need, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  // A transport header conntrack cannot read makes the packet invalid:
  // never translated.
  cg_.require(b.CreateICmpULE(b.CreateAdd(pk.ihl, b.getInt32(need)), pk.totLen),
              after, "nat.l4.fits");
  cg_.needBytes(pk.l4, need, after, "nat.l4.hdr");
}

void NatLowering::keyPorts(Packet &pk, uint64_t need, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  requireHeader(pk, need, after);
  b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, kernel::L4Sport)), sport_);
  b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, kernel::L4Dport)), dport_);
}

/// ICMP queries (echo, timestamp, information, address mask; ICMPv6 echo)
/// open a connection keyed by their identifier; their replies belong to it.
/// Errors are RELATED to another connection: not translated here.
Value *NatLowering::keyIcmpQuery(Packet &pk, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  requireHeader(pk, kernel::IcmpHlen, after);
  Value *type = b.CreateLoad(cg_.i8, cg_.at(pk.l4, uint64_t(0)));
  Value *query = b.getFalse(), *reply = b.getFalse();
  std::vector<unsigned> queries =
      v6_ ? std::vector<unsigned>{ICMP6_ECHO_REQUEST}
          : std::vector<unsigned>{ICMP_ECHO, ICMP_TIMESTAMP, ICMP_INFO_REQUEST,
                                  ICMP_ADDRESS};
  std::vector<unsigned> replies =
      v6_ ? std::vector<unsigned>{ICMP6_ECHO_REPLY}
          : std::vector<unsigned>{ICMP_ECHOREPLY, ICMP_TIMESTAMPREPLY,
                                  ICMP_INFO_REPLY, ICMP_ADDRESSREPLY};
  for (unsigned t : queries)
    query = b.CreateOr(query, b.CreateICmpEQ(type, b.getInt8(t)));
  for (unsigned t : replies)
    reply = b.CreateOr(reply, b.CreateICmpEQ(type, b.getInt8(t)));
  cg_.require(b.CreateOr(query, reply), after, "nat.icmp.query");
  b.CreateStore(b.CreateLoad(cg_.i16, cg_.at(pk.l4, kernel::IcmpId)), sport_);
  b.CreateStore(b.getInt16(0), dport_);
  return query;
}

void NatLowering::applyBinding(Packet &pk, Value *binding, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  Addr addr = loadAddr(cg_.at(binding, shape_.valAddr));
  Value *port = b.CreateLoad(cg_.i16, cg_.at(binding, shape_.valPort));
  Value *dir = b.CreateLoad(cg_.i8, cg_.at(binding, shape_.valDir));
  BasicBlock *orig = cg_.block("nat.original"), *rep = cg_.block("nat.reply");
  b.CreateCondBr(b.CreateICmpEQ(dir, b.getInt8(contract::NatOriginal)), orig,
                 rep);
  b.SetInsertPoint(orig);
  rewrite(pk, true, addr, port, after);
  b.CreateStore(b.getInt32(Translated), state_);
  b.CreateBr(after);
  // A reply is translated back after FORWARD (POSTROUTING in the kernel).
  b.SetInsertPoint(rep);
  for (unsigned w = 0; w < words(); ++w)
    b.CreateStore(addr[w], cg_.at(replyAddr_, uint64_t(4 * w)));
  b.CreateStore(port, replyPort_);
  b.CreateStore(b.getInt32(ReplyPending), state_);
  b.CreateBr(after);
}

void NatLowering::emitLookup(Packet &pk, BasicBlock *after) {
  IRBuilder<> &b = cg_.b;
  // conntrack sees datagrams after defragmentation; XDP sees fragments,
  // which rule2xdp cannot translate consistently: they go on untranslated
  // (docs/nat.md). IPv6: only a transport header right after the fixed
  // header is translated (no extension header, so no fragment header).
  if (!v6_)
    cg_.require(b.CreateICmpEQ(b.CreateAnd(pk.fragWord, 0x3fff), b.getInt16(0)),
                after, "nat.whole");
  BasicBlock *tcp = cg_.block("nat.tcp"), *udp = cg_.block("nat.udp"),
             *icmp = cg_.block("nat.icmp"), *other = cg_.block("nat.addronly"),
             *keyed = cg_.block("nat.keyed");
  SwitchInst *sw = b.CreateSwitch(pk.proto, after, 8);
  sw->addCase(b.getInt8(IPPROTO_TCP), tcp);
  sw->addCase(b.getInt8(IPPROTO_UDP), udp);
  sw->addCase(
      b.getInt8(v6_ ? unsigned(IPPROTO_ICMPV6) : unsigned(IPPROTO_ICMP)), icmp);
  if (!v6_)
    for (uint8_t p : kAddressOnly)
      sw->addCase(b.getInt8(p), other);

  // Each way to the key, and whether a packet on it may open a connection.
  std::vector<std::pair<BasicBlock *, Value *>> mayOpen;
  auto toKeyed = [&](Value *opens) {
    mayOpen.push_back({b.GetInsertBlock(), opens});
    b.CreateBr(keyed);
  };
  b.SetInsertPoint(tcp);
  keyPorts(pk, kernel::TcpHlen, after);
  toKeyed(b.getTrue());
  b.SetInsertPoint(udp);
  keyPorts(pk, kernel::UdpHlen, after);
  toKeyed(b.getTrue());
  b.SetInsertPoint(icmp);
  toKeyed(keyIcmpQuery(pk, after));
  b.SetInsertPoint(other);
  if (v6_) {
    b.CreateBr(after); // unreachable: no address-only protocol for IPv6
  } else {
    b.CreateStore(b.getInt16(0), sport_);
    b.CreateStore(b.getInt16(0), dport_);
    toKeyed(b.getTrue());
  }

  b.SetInsertPoint(keyed);
  PHINode *may = b.CreatePHI(cg_.i1, static_cast<unsigned>(mayOpen.size()),
                             "nat.may_open");
  for (auto [bb, v] : mayOpen)
    may->addIncoming(v, bb);
  storeKey(source(pk), destination(pk), b.CreateLoad(cg_.i16, sport_),
           b.CreateLoad(cg_.i16, dport_), pk.proto);
  Value *v = cg_.callHelper(MapLookupElem, cg_.ptr, {nat_, key_});
  BasicBlock *hit = cg_.block("nat.bound"), *miss = cg_.block("nat.new");
  b.CreateCondBr(b.CreateIsNull(v), miss, hit);
  b.SetInsertPoint(hit);
  applyBinding(pk, v, after);
  b.SetInsertPoint(miss);
  cg_.require(may, after, "nat.chain");
}

void NatLowering::emitBind(Packet &pk, const ir::NatTarget &t) {
  IRBuilder<> &b = cg_.b;
  Addr newAddr;
  if (v6_) {
    for (unsigned w = 0; w < 4; ++w) {
      uint32_t raw;
      std::memcpy(&raw, t.addr6.data() + 4 * w, 4);
      newAddr.push_back(b.getInt32(raw)); // as on the wire
    }
  } else {
    newAddr.push_back(b.getInt32(__builtin_bswap32(t.addr)));
  }
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
      Value *r =
          b.CreateTrunc(cg_.callHelper(GetPrandomU32, cg_.i64, {}), cg_.i32);
      chosen = b.CreateTrunc(
          b.CreateAdd(b.getInt32(t.portLo), b.CreateURem(r, b.getInt32(n))),
          cg_.i16);
    } else {
      Value *in = b.CreateAnd(b.CreateICmpUGE(orig, b.getInt16(t.portLo)),
                              b.CreateICmpULE(orig, b.getInt16(t.portHi)));
      chosen = b.CreateSelect(in, orig, b.getInt16(t.portLo));
    }
    newPort = b.CreateUnaryIntrinsic(Intrinsic::bswap, chosen);
  }
  // The original direction (the key is still this packet's).
  storeValue(newAddr, newPort, contract::NatOriginal);
  cg_.callHelper(MapUpdateElem, cg_.i64, {nat_, key_, val_, b.getInt64(0)});
  // The reply: from the new destination back to the client. TCP and UDP
  // swap the ports; ICMP queries keep their identifier.
  Value *ported = b.CreateOr(b.CreateICmpEQ(pk.proto, b.getInt8(IPPROTO_TCP)),
                             b.CreateICmpEQ(pk.proto, b.getInt8(IPPROTO_UDP)));
  storeKey(newAddr, source(pk), b.CreateSelect(ported, newPort, sport),
           b.CreateSelect(ported, sport, b.getInt16(0)), pk.proto);
  storeValue(destination(pk), dport, contract::NatReply);
  cg_.callHelper(MapUpdateElem, cg_.i64, {nat_, key_, val_, b.getInt64(0)});
  BasicBlock *done = cg_.block("nat.bound.done");
  rewrite(pk, true, newAddr, newPort, done);
  b.CreateStore(b.getInt32(Translated), state_);
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

void NatLowering::rewrite(Packet &pk, bool dst, const Addr &addr,
                          Value *portRaw, BasicBlock *skip) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  uint64_t addrOff =
      v6_ ? (dst ? Ip6Daddr : Ip6Saddr) : (dst ? Ip4Daddr : Ip4Saddr);
  uint64_t portOff = dst ? L4Dport : L4Sport;
  BasicBlock *tcp = cg_.block("rw.tcp"), *udp = cg_.block("rw.udp"),
             *icmp = cg_.block("rw.icmp"), *ip = cg_.block("rw.ip"),
             *done = cg_.block("rw.done");
  SwitchInst *sw = b.CreateSwitch(pk.proto, ip, 3);
  sw->addCase(b.getInt8(IPPROTO_TCP), tcp);
  sw->addCase(b.getInt8(IPPROTO_UDP), udp);
  if (v6_)
    sw->addCase(b.getInt8(IPPROTO_ICMPV6),
                icmp); // ICMPv6 sums the pseudo-header

  // The address (and for IPv4 the header checksum); returns the checksum
  // words that change: the address halves.
  auto ipPart = [&]() {
    std::vector<std::pair<Value *, Value *>> changed;
    for (unsigned w = 0; w < words(); ++w) {
      Value *p = cg_.at(pk.l3, addrOff + 4 * w);
      Value *old = b.CreateLoad(cg_.i32, p);
      b.CreateStore(addr[w], p);
      auto [ol, oh] = cg_.halves(old);
      auto [nl, nh] = cg_.halves(addr[w]);
      changed.push_back({ol, nl});
      changed.push_back({oh, nh});
    }
    if (!v6_) {
      Value *csumP = cg_.at(pk.l3, Ip4Check);
      b.CreateStore(cg_.csumReplace(b.CreateLoad(cg_.i16, csumP), changed),
                    csumP);
    }
    return changed;
  };
  // Transport: the port at portOff (if portRaw) and the checksum at csumOff.
  auto l4Part = [&](uint64_t need, uint64_t csumOff, bool port,
                    bool zeroIsNone) {
    cg_.needBytes(pk.l4, need, skip, "rw.l4.hdr");
    std::vector<std::pair<Value *, Value *>> changed = ipPart();
    if (port) {
      Value *portP = cg_.at(pk.l4, portOff);
      changed.push_back({b.CreateLoad(cg_.i16, portP), portRaw});
      b.CreateStore(portRaw, portP);
    }
    Value *csumP = cg_.at(pk.l4, csumOff);
    Value *csum = b.CreateLoad(cg_.i16, csumP);
    if (zeroIsNone) {
      BasicBlock *sum = cg_.block("rw.csum");
      b.CreateCondBr(b.CreateICmpEQ(csum, b.getInt16(0)), done, sum);
      b.SetInsertPoint(sum);
    }
    Value *n = cg_.csumReplace(csum, changed);
    if (zeroIsNone)
      n = b.CreateSelect(b.CreateICmpEQ(n, b.getInt16(0)), b.getInt16(0xffff),
                         n);
    b.CreateStore(n, csumP);
    b.CreateBr(done);
  };
  b.SetInsertPoint(tcp);
  l4Part(TcpHlen, TcpCheck, true, false);
  b.SetInsertPoint(udp);
  l4Part(UdpHlen, UdpCheck, true, true);
  b.SetInsertPoint(icmp);
  if (v6_)
    l4Part(IcmpHlen, IcmpCheck, false, false); // ICMPv6's header is ICMP's
  else
    b.CreateBr(ip);
  b.SetInsertPoint(ip);
  ipPart();
  b.CreateBr(done);
  b.SetInsertPoint(done);
}

void NatLowering::reloadDestination(Packet &pk) {
  IRBuilder<> &b = cg_.b;
  if (v6_) {
    for (unsigned w = 0; w < 4; ++w)
      pk.daddr6[w] =
          b.CreateLoad(cg_.i32, cg_.at(pk.l3, kernel::Ip6Daddr + 4 * w));
    return;
  }
  pk.daddrRaw =
      b.CreateLoad(cg_.i32, cg_.at(pk.l3, kernel::Ip4Daddr), "daddr.raw.nat");
  pk.daddr = b.CreateUnaryIntrinsic(Intrinsic::bswap, pk.daddrRaw);
}

void NatLowering::emitForward(Packet &pk, Value *fibRc, Value *fib,
                              BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  Value *state = b.CreateLoad(cg_.i32, state_);
  cg_.require(b.CreateICmpNE(state, b.getInt32(Untouched)), pass,
              "fwd.translated");
  // The fast path needs a resolved neighbour (no ARP from XDP), a plain
  // header (IP options are the kernel's business) and an untagged frame.
  cg_.require(b.CreateICmpEQ(fibRc, b.getInt64(BPF_FIB_LKUP_RET_SUCCESS)), pass,
              "fwd.fib_ok");
  if (!v6_)
    cg_.require(b.CreateICmpEQ(pk.ihl, b.getInt32(kernel::Ip4Hlen)), pass,
                "fwd.no_options");
  cg_.require(b.CreateICmpEQ(pk.vidOuter, b.getInt16(0)), pass, "fwd.untagged");
  cg_.needBytes(cg_.data, ETH_HLEN, pass, "fwd.eth");
  Value *ifindex = b.CreateLoad(cg_.i32, cg_.at(fib, kernel::FibIfindex));
  // Flags XDP_PASS: a device missing from r2x_tx hands the packet to the
  // kernel, untouched by what follows.
  Value *rc = cg_.callHelper(
      RedirectMap, cg_.i64,
      {tx_, b.CreateZExt(ifindex, cg_.i64), b.getInt64(XdpPass)});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(XdpRedirect)), pass,
              "fwd.redirect");

  BasicBlock *reply = cg_.block("fwd.unnat"), *out = cg_.block("fwd.out");
  b.CreateCondBr(b.CreateICmpEQ(state, b.getInt32(ReplyPending)), reply, out);
  b.SetInsertPoint(reply);
  rewrite(pk, false, loadAddr(replyAddr_), b.CreateLoad(cg_.i16, replyPort_),
          pass);
  b.CreateBr(out);

  b.SetInsertPoint(out);
  if (v6_) {
    // ip6_forward(): hop limit minus one; IPv6 has no header checksum.
    Value *hlP = cg_.at(pk.l3, kernel::Ip6HopLimit);
    b.CreateStore(b.CreateSub(b.CreateLoad(cg_.i8, hlP), b.getInt8(1)), hlP);
  } else {
    // ip_decrease_ttl().
    Value *csumP = cg_.at(pk.l3, kernel::Ip4Check);
    b.CreateStore(cg_.ttlDecrementCsum(b.CreateLoad(cg_.i16, csumP)), csumP);
    Value *ttlP = cg_.at(pk.l3, kernel::Ip4Ttl);
    b.CreateStore(b.CreateSub(b.CreateLoad(cg_.i8, ttlP), b.getInt8(1)), ttlP);
  }
  // Ethernet: the neighbour's address, then the egress device's.
  b.CreateMemCpy(cg_.at(cg_.data, offsetof(struct ethhdr, h_dest)),
                 MaybeAlign(1), cg_.at(fib, kernel::FibDmac), MaybeAlign(1),
                 ETH_ALEN);
  b.CreateMemCpy(cg_.at(cg_.data, offsetof(struct ethhdr, h_source)),
                 MaybeAlign(1), cg_.at(fib, kernel::FibSmac), MaybeAlign(1),
                 ETH_ALEN);
  cg_.ret(XdpRedirect);
}

} // namespace r2x::backend
