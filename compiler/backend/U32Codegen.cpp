//===- compiler/backend/U32Codegen.cpp - cls_u32 as one XDP function
//--------===//
//
/// \file
/// Lowers an ir::tc::Program into `rule2xdp` (section `xdp`), following
/// tcf_classify() and u32_classify() (net/sched/cls_api.c, cls_u32.c):
///
///  - skb->protocol at tc ingress is the frame's EtherType, except that the
///    kernel has already moved one VLAN tag out of the data (skb_vlan_untag),
///    and then a filter sees the tag's protocol (skb_protocol(skb, false)).
///    So `protocol ip|ipv6` filters see untagged frames of that EtherType
///    only; `protocol all` filters see every frame, with the network header
///    after the Ethernet header, or after the first tag of a tagged frame.
///  - The u32 walk is inlined: the link graph has no cycles (the frontend
///    refuses them), so each table is emitted at every knode that links to
///    it, with the kernel's stack depth limit (8) checked statically.
///    `off` is an SSA value per inlined level (the kernel restores it on
///    POP); `off2` is one variable for the whole filter (the kernel does not
///    restore it), kept in a stack slot.
///  - Every read is checked as skb_header_pointer() checks it: a key needs
///    toff + 4 <= skb->len, and a failing read ends the filter with no
///    result (`goto out`). skb->len at ingress is the frame minus the
///    Ethernet header (and tag). Pointers are always `data + non-negative
///    offset` with offsets masked to 15 bits, which the verifier accepts.
///  - Actions (tcf_exts_exec): gact controls; act_nat rewrites the packet in
///    place (emitNat); mirred egress redirect is bpf_redirect_map through the
///    DEVMAP r2x_redirect, which the loader fills from the metadata's
///    `redirect SLOT DEV` records (docs/tc.md).
//===----------------------------------------------------------------------===//
#include "compiler/backend/Btf.h"
#include "compiler/backend/Codegen.h"
#include "compiler/backend/Pipeline.h"
#include "compiler/backend/Scaffold.h"
#include "compiler/backend/TcBackend.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>

#include <sstream>
#include <stdexcept>

namespace r2x::backend {

using namespace llvm;
namespace tc = ir::tc;

namespace {

constexpr unsigned kMaxDepth = 8;      ///< TC_U32_MAXDEPTH
constexpr uint32_t kDynLimit = 0x7fff; ///< dynamic offsets beyond: out

class U32Codegen {
public:
  U32Codegen(const tc::Program &p, Module &m, Function *fn, BtfBuilder &btf)
      : p_(p), cg_(m, fn), btf_(btf) {}
  void emit(Value *ctxArg);

private:
  /// The state of one filter's walk.
  struct Walk {
    Value *l3off = nullptr; ///< i64 offset of the network header in the frame
    Value *len = nullptr;   ///< i64 skb->len
    AllocaInst *off2 = nullptr;
    BasicBlock *out = nullptr; ///< no result: the next filter
  };

  void declareMaps();
  void emitTable(const tc::HashTable &t, Value *off, Value *sel,
                 BasicBlock *end, unsigned depth);
  void emitKnodes(const std::vector<tc::Knode> &nodes, Value *off,
                  BasicBlock *end, unsigned depth);
  /// The 32-bit word (host order) at off + rel [+ off2], or branch to out.
  Value *readWord(Value *off, int32_t rel, int32_t offmask, uint32_t mask);
  Value *read16(Value *off, int32_t rel);
  /// data + l3off + rel + dyn, after checking rel + dyn + width <= len;
  /// otherwise to `fail` (default: the filter's `out`).
  Value *access(Value *dyn, int32_t rel, unsigned width,
                BasicBlock *fail = nullptr);
  void runActions(const tc::Knode &k, BasicBlock *next);
  /// act_nat (net/sched/act_nat.c, tcf_nat_act): continues in a new block,
  /// or branches to drop_ where the kernel returns TC_ACT_SHOT.
  void emitNat(const tc::Action &a);
  /// The L4 checksum of a rewritten TCP or UDP packet (tcf_nat_act's
  /// switch on the protocol), then to `done`.
  void natTransport(Value *ip, Value *oldRaw, Value *newRaw, BasicBlock *tcp,
                    BasicBlock *udp, BasicBlock *done);
  /// The address an ICMP error quotes, from block `icmp`, then to `done`.
  void natIcmpError(const tc::Action &a, Value *ip, BasicBlock *icmp,
                    BasicBlock *done);
  /// act_nat's helpers: whether a host-order address is in the rule's
  /// range, the translated address (as the packet holds it), a checksum
  /// fixed for an address change, the header fields it reads.
  Value *natInside(const tc::Action &a, Value *host);
  Value *natTranslate(const tc::Action &a, Value *host);
  void natFixCsum(Value *p, Value *from, Value *to);
  Value *ipFragment(Value *ip);
  Value *ipProtocol(Value *ip);
  Value *ipHeaderLen(Value *ip);
  /// A packet load that stays below its bounds check. The same word is
  /// often read by several filters; a plain load let LLVM re-issue it on a
  /// path where only an earlier, failed check dominates it, which the
  /// verifier rightly refuses ("offset is outside of the packet").
  Value *loadPacket(Type *ty, Value *p) {
    LoadInst *l = cg_.b.CreateLoad(ty, p);
    l->setVolatile(true);
    return l;
  }
  const tc::Program &p_;
  Codegen cg_;
  BtfBuilder &btf_;
  Walk w_;
  GlobalVariable *counters_ = nullptr, *redirect_ = nullptr;
  AllocaInst *key_ = nullptr;
  BasicBlock *pass_ = nullptr, *drop_ = nullptr;
};

void U32Codegen::declareMaps() {
  counters_ = declareCounters(btf_, p_.numCounters);
  // The loader's contract asks for r2x_ifmatch; a tc program has no `-i`.
  declareIfmatch(btf_, contract::IfmatchEntriesTc);
  if (!p_.redirectDevs.empty())
    redirect_ = btf_.map(contract::RedirectMap, btf_.u32(), btf_.u32(),
                         static_cast<uint32_t>(p_.redirectDevs.size()));
}

Value *U32Codegen::access(Value *dyn, int32_t rel, unsigned width,
                          BasicBlock *fail) {
  IRBuilder<> &b = cg_.b;
  if (!fail)
    fail = w_.out;
  // rel >= -16 (the frontend refuses reads further before the frame), so
  // l3off + rel >= -2 only for the masked-out bytes of `ether dst`, which
  // readWord never loads: callers pass the first byte they load.
  Value *base =
      b.CreateAdd(w_.l3off, b.getInt64(static_cast<uint64_t>(int64_t(rel))));
  if (dyn) {
    cg_.require(b.CreateICmpULE(dyn, b.getInt32(kDynLimit)), fail, "u32.dyn");
    Value *d = b.CreateZExt(b.CreateAnd(dyn, b.getInt32(kDynLimit)), cg_.i64);
    base = b.CreateAdd(base, d);
  }
  Value *p = cg_.at(cg_.data, base);
  // Each read compares with its own opaque copy of data_end, so LLVM keeps
  // every check right before its load instead of merging equal checks of
  // different filters: the verifier explores paths LLVM knows impossible
  // and would find the merged check's range marked past the end there.
  Value *end = cg_.opaque(cg_.dataEnd);
  BasicBlock *ok = cg_.block("u32.read");
  b.CreateCondBr(b.CreateICmpUGT(cg_.at(p, uint64_t(width)), end), fail, ok);
  b.SetInsertPoint(ok);
  return p;
}

Value *U32Codegen::readWord(Value *off, int32_t rel, int32_t offmask,
                            uint32_t mask) {
  IRBuilder<> &b = cg_.b;
  Value *dyn = nullptr;
  int32_t fixed = rel;
  if (auto *c = dyn_cast<ConstantInt>(off))
    fixed += static_cast<int32_t>(c->getSExtValue());
  else
    dyn = off;
  if (offmask) {
    Value *o2 = b.CreateAnd(b.CreateLoad(cg_.i32, w_.off2, "off2"),
                            b.getInt32(static_cast<uint32_t>(offmask)));
    dyn = dyn ? b.CreateAdd(dyn, o2) : o2;
  }
  // skb_header_pointer(skb, toff, 4): toff + 4 <= len. The bytes the mask
  // ignores may lie before the frame (`ether dst` reads from -16); the
  // bound is on the end, so check it with the first byte that matters.
  unsigned firstByte = 0;
  while (firstByte < 3 && !(mask & (0xFF000000u >> (8 * firstByte))))
    ++firstByte;
  if (fixed >= -14 && mask != 0)
    firstByte = 0;
  Value *p = access(dyn, fixed + int32_t(firstByte), 4 - firstByte);
  if (mask == 0)
    return b.getInt32(0);
  if (firstByte == 0)
    return b.CreateUnaryIntrinsic(Intrinsic::bswap, loadPacket(cg_.i32, p));
  Value *word = b.getInt32(0);
  for (unsigned i = firstByte; i < 4; ++i) {
    Value *byte = b.CreateZExt(
        loadPacket(cg_.i8, cg_.at(p, uint64_t(i - firstByte))), cg_.i32);
    word = b.CreateOr(word, b.CreateShl(byte, 8 * (3 - i)));
  }
  return word;
}

Value *U32Codegen::read16(Value *off, int32_t rel) {
  IRBuilder<> &b = cg_.b;
  Value *dyn = nullptr;
  int32_t fixed = rel;
  if (auto *c = dyn_cast<ConstantInt>(off))
    fixed += static_cast<int32_t>(c->getSExtValue());
  else
    dyn = off;
  Value *p = access(dyn, fixed, 2);
  return b.CreateUnaryIntrinsic(Intrinsic::bswap, loadPacket(cg_.i16, p));
}

Value *U32Codegen::natInside(const tc::Action &a, Value *host) {
  IRBuilder<> &b = cg_.b;
  // (old ^ addr) & mask == 0.
  Value *x = b.CreateXor(host, b.getInt32(a.oldAddr));
  return b.CreateICmpEQ(b.CreateAnd(x, b.getInt32(a.mask)), b.getInt32(0));
}

Value *U32Codegen::natTranslate(const tc::Action &a, Value *host) {
  IRBuilder<> &b = cg_.b;
  // new & mask | addr & ~mask.
  return b.CreateUnaryIntrinsic(
      Intrinsic::bswap, b.CreateOr(b.getInt32(a.newAddr & a.mask),
                                   b.CreateAnd(host, b.getInt32(~a.mask))));
}

void U32Codegen::natFixCsum(Value *p, Value *from, Value *to) {
  auto [f0, f1] = cg_.halves(from);
  auto [t0, t1] = cg_.halves(to);
  cg_.b.CreateStore(
      cg_.csumReplace(loadPacket(cg_.i16, p), {{f0, t0}, {f1, t1}}), p);
}

Value *U32Codegen::ipFragment(Value *ip) { // frag_off & htons(IP_OFFSET)
  IRBuilder<> &b = cg_.b;
  Value *f = b.CreateUnaryIntrinsic(
      Intrinsic::bswap, loadPacket(cg_.i16, cg_.at(ip, kernel::Ip4FragOff)));
  return b.CreateICmpNE(b.CreateAnd(f, b.getInt16(kernel::Ip4OffMask)),
                        b.getInt16(0));
}

Value *U32Codegen::ipProtocol(Value *ip) {
  return loadPacket(cg_.i8, cg_.at(ip, kernel::Ip4Protocol));
}

Value *U32Codegen::ipHeaderLen(Value *ip) { // iph->ihl * 4
  IRBuilder<> &b = cg_.b;
  Value *v = b.CreateZExt(loadPacket(cg_.i8, ip), cg_.i32);
  return b.CreateShl(b.CreateAnd(v, b.getInt32(0xf)), 2, "ihl");
}

/// tcf_nat_act(). The header at the network offset is taken as IPv4
/// without looking at its version or IHL, as the kernel does (with
/// `protocol all` an IPv6 header is rewritten as if it were one). Every
/// field is read right before its use and written in the kernel's order, so
/// overlapping headers (IHL < 5) come out as the kernel leaves them.
/// Checksums: RFC 1624 updates, which is what inet_proto_csum_replace4()
/// computes for a frame with full checksums (the only kind XDP receives).
void U32Codegen::emitNat(const tc::Action &a) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *done = cg_.block("nat.done");
  BasicBlock *hit = cg_.block("nat.rewrite");
  BasicBlock *miss = cg_.block("nat.other");
  BasicBlock *tcp = cg_.block("nat.tcp"), *udp = cg_.block("nat.udp");
  BasicBlock *icmp = cg_.block("nat.icmp");
  auto bswap = [&](Value *v) {
    return b.CreateUnaryIntrinsic(Intrinsic::bswap, v);
  };

  // pskb_may_pull(skb, sizeof(struct iphdr)), else TC_ACT_SHOT.
  Value *ip = access(nullptr, 0, kernel::Ip4Hlen, drop_);
  Value *addrP = cg_.at(ip, a.egress ? kernel::Ip4Saddr : kernel::Ip4Daddr);
  Value *oldRaw = loadPacket(cg_.i32, addrP);
  b.CreateCondBr(natInside(a, bswap(oldRaw)), hit, miss);

  // Another address: only an ICMP message (not a later fragment) goes on,
  // for the header an ICMP error quotes.
  b.SetInsertPoint(miss);
  b.CreateCondBr(
      b.CreateOr(ipFragment(ip),
                 b.CreateICmpNE(ipProtocol(ip), b.getInt8(IPPROTO_ICMP))),
      done, icmp);

  b.SetInsertPoint(hit);
  Value *newRaw = natTranslate(a, bswap(oldRaw));
  b.CreateStore(newRaw, addrP);
  natFixCsum(cg_.at(ip, kernel::Ip4Check), oldRaw, newRaw);
  cg_.require(b.CreateNot(ipFragment(ip)), done, "nat.l4");
  SwitchInst *sw = b.CreateSwitch(ipProtocol(ip), done, 3);
  sw->addCase(b.getInt8(IPPROTO_TCP), tcp);
  sw->addCase(b.getInt8(IPPROTO_UDP), udp);
  sw->addCase(b.getInt8(IPPROTO_ICMP), icmp);

  natTransport(ip, oldRaw, newRaw, tcp, udp, done);
  natIcmpError(a, ip, icmp, done);
  b.SetInsertPoint(done);
}

void U32Codegen::natTransport(Value *ip, Value *oldRaw, Value *newRaw,
                              BasicBlock *tcp, BasicBlock *udp,
                              BasicBlock *done) {
  IRBuilder<> &b = cg_.b;
  // TCP: the pseudo-header's address changed.
  b.SetInsertPoint(tcp);
  Value *th = access(ipHeaderLen(ip), 0, kernel::TcpHlen, drop_);
  natFixCsum(cg_.at(th, kernel::TcpCheck), oldRaw, newRaw);
  b.CreateBr(done);

  // UDP: a zero checksum (none) stays zero; a result of zero is sent as
  // 0xffff (CSUM_MANGLED_0).
  b.SetInsertPoint(udp);
  Value *uh = access(ipHeaderLen(ip), 0, kernel::UdpHlen, drop_);
  Value *ucsumP = cg_.at(uh, kernel::UdpCheck);
  Value *ucsum = loadPacket(cg_.i16, ucsumP);
  cg_.require(b.CreateICmpNE(ucsum, b.getInt16(0)), done, "nat.udp.sum");
  auto [f0, f1] = cg_.halves(oldRaw);
  auto [t0, t1] = cg_.halves(newRaw);
  Value *un = cg_.csumReplace(ucsum, {{f0, t0}, {f1, t1}});
  b.CreateStore(
      b.CreateSelect(b.CreateICmpEQ(un, b.getInt16(0)), b.getInt16(0xffff), un),
      ucsumP);
  b.CreateBr(done);
}

/// ICMP errors (icmp_is_err()): the quoted header's other address, with
/// the ICMP checksum fixed. As in the kernel, the quoted header's own
/// checksum and the quoted L4 checksum are left as they are.
void U32Codegen::natIcmpError(const tc::Action &a, Value *ip, BasicBlock *icmp,
                              BasicBlock *done) {
  IRBuilder<> &b = cg_.b;
  b.SetInsertPoint(icmp);
  Value *ih = access(ipHeaderLen(ip), 0, kernel::IcmpHlen, drop_);
  Value *type = loadPacket(cg_.i8, ih);
  BasicBlock *err = cg_.block("nat.icmp.err");
  SwitchInst *types = b.CreateSwitch(type, done, 5);
  for (uint8_t t : {ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT,
                    ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB})
    types->addCase(b.getInt8(t), err);
  b.SetInsertPoint(err);
  Value *eh =
      access(ipHeaderLen(ip), 0, kernel::IcmpHlen + kernel::Ip4Hlen, drop_);
  Value *innerP = cg_.at(
      eh, kernel::IcmpHlen + (a.egress ? kernel::Ip4Daddr : kernel::Ip4Saddr));
  Value *innerRaw = loadPacket(cg_.i32, innerP);
  cg_.require(natInside(a, b.CreateUnaryIntrinsic(Intrinsic::bswap, innerRaw)),
              done, "nat.icmp.inner");
  Value *innerNew =
      natTranslate(a, b.CreateUnaryIntrinsic(Intrinsic::bswap, innerRaw));
  b.CreateStore(innerNew, innerP);
  natFixCsum(cg_.at(eh, kernel::IcmpCheck), innerRaw, innerNew);
  b.CreateBr(done);
}

/// tcf_exts_exec(): each action in turn while it returns PIPE. The knode's
/// counter counts the executions, as tc's action statistics do.
void U32Codegen::runActions(const tc::Knode &k, BasicBlock *next) {
  IRBuilder<> &b = cg_.b;
  bumpCounter(cg_, counters_, key_, k.counter, w_.len);
  tc::Control result = tc::Control::Ok; // no actions: TC_ACT_OK
  for (const tc::Action &a : k.actions) {
    switch (a.kind) {
    case tc::Action::Kind::Gact:
      break;
    case tc::Action::Kind::Mirred: {
      // act_mirred: a missing or down device is TC_ACT_SHOT; the devmap's
      // fallback (flags) gives XDP_DROP when the slot is empty.
      Value *r = cg_.callHelper(
          RedirectMap, cg_.i64,
          {redirect_, b.getInt64(a.devSlot), b.getInt64(XdpDrop)});
      b.CreateRet(b.CreateTrunc(r, cg_.i32));
      b.SetInsertPoint(cg_.block("unreachable.after.redirect"));
      b.CreateUnreachable();
      return;
    }
    case tc::Action::Kind::Nat:
      // `nat ... drop` drops before looking at the packet.
      if (a.control != tc::Control::Shot)
        emitNat(a);
      break;
    }
    result = a.control;
    if (result != tc::Control::Pipe)
      break;
  }
  switch (result) {
  case tc::Control::Ok:
  case tc::Control::Pipe:
    b.CreateBr(pass_);
    break;
  case tc::Control::Shot:
    b.CreateBr(drop_);
    break;
  case tc::Control::Unspec:
    b.CreateBr(next);
    break;
  case tc::Control::Stolen:
    throw BackendError("stolen without a redirect");
  }
}

void U32Codegen::emitTable(const tc::HashTable &t, Value *off, Value *sel,
                           BasicBlock *end, unsigned depth) {
  IRBuilder<> &b = cg_.b;
  if (t.buckets.empty()) {
    b.CreateBr(end);
    return;
  }
  if (t.divisor <= 1 || !sel) {
    auto it = t.buckets.find(0);
    if (it == t.buckets.end()) {
      b.CreateBr(end);
      return;
    }
    emitKnodes(it->second, off, end, depth);
    return;
  }
  SwitchInst *sw =
      b.CreateSwitch(sel, end, static_cast<unsigned>(t.buckets.size()));
  for (const auto &[bucket, nodes] : t.buckets) {
    BasicBlock *bb = cg_.block("bucket." + std::to_string(bucket));
    sw->addCase(b.getInt32(bucket), bb);
    b.SetInsertPoint(bb);
    emitKnodes(nodes, off, end, depth);
  }
}

void U32Codegen::emitKnodes(const std::vector<tc::Knode> &nodes, Value *off,
                            BasicBlock *end, unsigned depth) {
  IRBuilder<> &b = cg_.b;
  for (const tc::Knode &k : nodes) {
    BasicBlock *next = cg_.block("knode.next");
    for (const tc::Key &key : k.keys) {
      Value *word = readWord(off, key.off, key.offmask, key.mask);
      if (key.mask != 0)
        cg_.require(b.CreateICmpEQ(b.CreateAnd(word, key.mask),
                                   b.getInt32(key.val & key.mask)),
                    next, "key.ok");
    }
    BasicBlock *terminal = cg_.block("knode.terminal");
    if (k.link) {
      const tc::HashTable *down = p_.table(*k.link);
      if (!down)
        throw BackendError("link to a missing table");
      // PUSH: the kernel gives up past TC_U32_MAXDEPTH levels.
      if (depth >= kMaxDepth) {
        b.CreateBr(w_.out);
      } else {
        Value *sel = nullptr;
        if (down->divisor > 1) {
          Value *h = readWord(off, k.hoff, 0, 0xFFFFFFFFu);
          sel = b.CreateAnd(b.CreateLShr(b.CreateAnd(h, k.hmask), k.fshift),
                            b.getInt32(down->divisor - 1));
        }
        Value *childOff = off;
        bool moves = k.flags & (tc::SelOffset | tc::SelVarOffset | tc::SelEat);
        if (moves) {
          if (k.flags & (tc::SelOffset | tc::SelVarOffset)) {
            Value *o2 = b.getInt32(uint32_t(int32_t(k.plus) + 3));
            if (k.flags & tc::SelVarOffset) {
              Value *v = read16(off, k.offoff);
              v = b.CreateLShr(b.CreateAnd(v, b.getInt16(k.offmask)),
                               k.offshift);
              o2 = b.CreateAdd(o2, b.CreateZExt(v, cg_.i32));
            }
            b.CreateStore(b.CreateAnd(o2, b.getInt32(~3u)), w_.off2);
          }
          if (k.flags & tc::SelEat) {
            childOff =
                b.CreateAdd(off, b.CreateLoad(cg_.i32, w_.off2), "off.eat");
            b.CreateStore(b.getInt32(0), w_.off2);
          }
          // `if (off < skb->len) goto next_ht;` else POP to this knode.
          Value *inside =
              b.CreateICmpULT(b.CreateZExt(childOff, cg_.i64), w_.len);
          cg_.require(inside, terminal, "u32.descend");
        }
        emitTable(*down, childOff, sel, terminal, depth + 1);
      }
    } else {
      b.CreateBr(terminal);
    }
    b.SetInsertPoint(terminal);
    if (k.terminal())
      runActions(k, next);
    else
      b.CreateBr(next);
    b.SetInsertPoint(next);
  }
  b.CreateBr(end);
}

void U32Codegen::emit(Value *ctxArg) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *entry = cg_.block("entry");
  b.SetInsertPoint(entry);
  declareMaps();
  key_ = cg_.stackSlot(cg_.i32, 4, "key");
  pass_ = cg_.block("pass");
  drop_ = cg_.block("drop");

  loadPacketPointers(cg_, ctxArg);

  // eth_type_trans() needs the Ethernet header; skb_vlan_untag() moves a
  // first tag (802.1Q or 802.1ad) out of the data.
  Value *etype = emitEthernet(cg_, pass_);
  Value *tagged = isVlanTag(cg_, etype);
  Value *frameLen =
      b.CreateSub(b.CreatePtrToInt(cg_.dataEnd, cg_.i64),
                  b.CreatePtrToInt(cg_.data, cg_.i64), "frame_len");

  for (const tc::Filter &f : p_.filters) {
    BasicBlock *nextFilter = cg_.block("filter.next");
    BasicBlock *run = cg_.block("filter." + std::to_string(f.pref));
    Value *l3off = b.getInt64(ETH_HLEN);
    switch (f.proto) {
    case tc::Proto::Ip:
      b.CreateCondBr(b.CreateAnd(b.CreateNot(tagged),
                                 b.CreateICmpEQ(etype, b.getInt16(ETH_P_IP))),
                     run, nextFilter);
      break;
    case tc::Proto::Ipv6:
      b.CreateCondBr(b.CreateAnd(b.CreateNot(tagged),
                                 b.CreateICmpEQ(etype, b.getInt16(ETH_P_IPV6))),
                     run, nextFilter);
      break;
    case tc::Proto::All: {
      // A tagged frame shorter than its tag was freed by the kernel.
      Value *shortTag = b.CreateAnd(
          tagged,
          b.CreateICmpULT(frameLen, b.getInt64(ETH_HLEN + kernel::VlanHlen)));
      b.CreateCondBr(shortTag, pass_, run);
      l3off = nullptr;
      break;
    }
    }
    b.SetInsertPoint(run);
    if (!l3off)
      l3off = b.CreateSelect(tagged, b.getInt64(ETH_HLEN + kernel::VlanHlen),
                             b.getInt64(ETH_HLEN), "l3off");
    w_.l3off = l3off;
    w_.len = b.CreateSub(frameLen, l3off, "skb_len");
    w_.off2 = cg_.stackSlot(cg_.i32, 4, "off2");
    b.CreateStore(b.getInt32(0), w_.off2);
    w_.out = nextFilter;
    const tc::HashTable *root = p_.table(f.rootHtid);
    if (!root)
      throw BackendError("filter without a root table");
    emitTable(*root, b.getInt32(0), nullptr, nextFilter, 0);
    b.SetInsertPoint(nextFilter);
  }
  b.CreateBr(pass_);
  b.SetInsertPoint(pass_);
  cg_.ret(XdpPass);
  b.SetInsertPoint(drop_);
  cg_.ret(XdpDrop);
}

void emitU32Program(const tc::Program &program, Module &m) {
  Function *fn = createProgram(m);
  BtfBuilder btf(m);
  U32Codegen cg(program, m, fn, btf);
  cg.emit(fn->getArg(0));
  finishObject(btf, tcMetadataText(program));
}

} // namespace

std::string compileTc(const tc::Program &program, Emit emit) {
  return compileModule([&](Module &m) { emitU32Program(program, m); }, emit);
}

std::string tcMetadataText(const tc::Program &p) {
  namespace meta = contract::meta;
  std::ostringstream os;
  os << meta::header();
  // tc's hand-over passes packets to tc's own filters, which rule2xdp does
  // not read: for --stats the program is the whole story.
  os << meta::format(meta::Mode, {meta::ModeStandalone});
  os << meta::format(meta::Chain, {"tc", "ingress", meta::None, meta::None});
  meta::RuleKeys keys;
  for (const tc::Filter &f : p.filters)
    for (const auto &[htid, t] : p.tables) {
      if (t.pref != f.pref)
        continue;
      for (const auto &[bucket, nodes] : t.buckets)
        for (const tc::Knode &k : nodes) {
          std::string target = "-";
          if (k.terminal()) {
            tc::Control c = tc::Control::Ok;
            std::string last;
            for (const tc::Action &a : k.actions) {
              c = a.control;
              last = a.kind == tc::Action::Kind::Mirred ? "redirect" : "";
              if (c != tc::Control::Pipe)
                break;
            }
            target = last.empty() ? tc::controlName(c) : last;
          }
          std::string extra = "u32 pref " + std::to_string(f.pref) + " fh " +
                              tc::formatHandle(k.handle);
          if (k.classid)
            extra += " flowid " + tc::formatClassid(*k.classid);
          if (k.link)
            extra += " link " + tc::formatHandle(*k.link);
          for (const tc::Key &key : k.keys)
            extra += " match " + tc::formatKey(key);
          std::string proto = tc::protoName(f.proto);
          os << meta::format(meta::Rule,
                             {std::to_string(k.counter), "tc", "ingress",
                              target, proto, "--", "*", "*", "", "", extra});
          os << meta::format(meta::Key, {std::to_string(k.counter),
                                         keys.rule("tc", "ingress",
                                                   {target, proto, "--", "*",
                                                    "*", "", "", extra})});
        }
    }
  for (size_t i = 0; i < p.redirectDevs.size(); ++i)
    os << meta::format(meta::Redirect, {std::to_string(i), p.redirectDevs[i]});
  return os.str();
}

} // namespace r2x::backend
