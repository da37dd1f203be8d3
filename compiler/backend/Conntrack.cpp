//===- compiler/backend/Conntrack.cpp - state from the kernel's conntrack -===//
//
/// \file
/// See Conntrack.h. The lookup follows nf_conntrack_in() for a TCP or UDP
/// packet at PREROUTING (IPv6: without extension headers), as far as XDP
/// can know it (docs/handover.md, "Connection state"):
///  - tcp_error()/udp_error(): a header cut short, an invalid TCP flag
///    combination or a UDP length outside the datagram is INVALID, whatever
///    conntrack holds. A checksum XDP cannot verify (not computed here for
///    more than 64 bytes of transport data) adds INVALID.
///  - an entry found: resolve_normal_ct()'s ctinfo (REPLY direction or a
///    reply seen: ESTABLISHED; else RELATED if expected, else NEW); TCP adds
///    INVALID (window tracking) and, for a SYN, NEW (a closed connection
///    reopened).
///  - none found: tcp_new() from the flags (SYN: NEW; ACK: NEW when
///    nf_conntrack_tcp_loose, else INVALID, so both; the rest INVALID), UDP
///    NEW; RELATED too when the ruleset can attach a helper.
/// Fragments, IPv6 extension headers and other protocols: not known.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Conntrack.h"

#include "compiler/backend/Kernel.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>

#include <cerrno>

#include <tuple>

namespace r2x::backend {

using namespace llvm;

namespace {

/// struct bpf_sock_tuple (IPv4: saddr, daddr, sport, dport as on the wire;
/// IPv6: 16-byte addresses, then the ports) and struct bpf_ct_opts
/// (netns_id, error, l4proto, dir, reserved[2]).
constexpr uint64_t kTuple4Size = 12, kTuple6Size = 36, kOptsSize = 12;
constexpr uint64_t kOptsNetns = 0, kOptsError = 4, kOptsProto = 8, kOptsDir = 9,
                   kOptsReserved = 10;
constexpr int32_t kCurrentNetns = -1; ///< BPF_F_CURRENT_NETNS

/// TCP flags (struct tcphdr, byte 13).
constexpr uint32_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;
constexpr uint64_t kTcpDoff = 12, kTcpFlags = 13;

/// nf_conn's status bits (enum ip_conntrack_status).
constexpr uint32_t kIpsExpected = 1, kIpsSeenReply = 2;
constexpr uint32_t kIpsNatShift = 4; ///< IPS_SRC_NAT, IPS_DST_NAT above it

/// The per-packet result (Conntrack.h): the bit that says the lookup has
/// run, the possible states, and where CtSnat and CtDnat sit.
constexpr uint32_t kLookedUp = 0x80;
constexpr uint32_t kStates = ir::CtInvalid | ir::CtEstablished | ir::CtRelated |
                             ir::CtNew | ir::CtUntracked;
constexpr uint32_t kCtSnatShift = 5;
/// An entry was found (REJECT's gate and the nat gate read it); it may be
/// replaced by a new connection (a TCP SYN reopening a closed one).
constexpr uint32_t kFound = 0x100, kReopen = 0x200;
static_assert(ir::CtSnat == 1u << kCtSnatShift &&
              ir::CtDnat == 2u << kCtSnatShift);

} // namespace

/// The kernel functions the state matches call (nf_conntrack_bpf.c), as
/// external declarations in ".ksyms" whose BTF libbpf resolves against the
/// kernel's, and `struct nf_conn` as far as XDP reads it: `status`, found
/// by name in the running kernel's BTF (a CO-RE relocation), so the object
/// does not depend on this kernel's layout.
CtLowering::CtLowering(Codegen &cg, BtfBuilder &btf, bool helper)
    : cg_(cg), helper_(helper) {
  LLVMContext &c = cg_.ctx;
  using Members = std::vector<std::tuple<std::string, DIType *, uint64_t>>;
  nfConnDi_ = btf.kernelStruct("nf_conn", 8, Members{{"status", btf.u64(), 0}});
  nfConnTy_ = StructType::create(c, {cg_.i64}, "struct.nf_conn");
  DIType *conn = btf.pointerTo(nfConnDi_);
  DIType *xdpMd = btf.pointerTo(btf.kernelStruct("xdp_md", 0, {}));
  DIType *tuple = btf.pointerTo(btf.kernelStruct("bpf_sock_tuple", 0, {}));
  // bpf_ct_opts as far as XDP asks whether the kernel has `dir` (added
  // after the kfuncs themselves): a CO-RE field-existence relocation.
  optsDi_ = btf.kernelStruct("bpf_ct_opts", kOptsSize,
                             Members{{"netns_id", btf.int32(), 0},
                                     {"error", btf.int32(), 32},
                                     {"l4proto", btf.u8(), 64},
                                     {"dir", btf.u8(), 72}});
  optsTy_ = StructType::create(
      c, {cg_.i32, cg_.i32, cg_.i8, cg_.i8, ArrayType::get(cg_.i8, 2)},
      "struct.bpf_ct_opts");
  DIType *opts = btf.pointerTo(optsDi_);
  lookupFn_ = Function::Create(
      FunctionType::get(cg_.ptr, {cg_.ptr, cg_.ptr, cg_.i32, cg_.ptr, cg_.i32},
                        false),
      GlobalValue::ExternalLinkage, "bpf_xdp_ct_lookup", cg_.m);
  lookupFn_->setSection(".ksyms");
  btf.kfunc(lookupFn_, conn, {xdpMd, tuple, btf.u32(), opts, btf.u32()});
  releaseFn_ =
      Function::Create(FunctionType::get(Type::getVoidTy(c), {cg_.ptr}, false),
                       GlobalValue::ExternalLinkage, "bpf_ct_release", cg_.m);
  releaseFn_->setSection(".ksyms");
  btf.kfunc(releaseFn_, nullptr, {conn});
}

void CtLowering::begin() {
  if (!slot_)
    slot_ = cg_.stackSlot(cg_.i32, 4, "ct.states");
  cg_.b.CreateStore(cg_.b.getInt32(0), slot_); // not looked up yet
}

/// True when every state the kernel could give the packet meets the mask,
/// false when none does, else the packet is handed over (the kernel
/// evaluates the match).
void CtLowering::emitMatch(Packet &pk, Value *ctx, const ir::Match::CtState &c,
                           bool negated, BasicBlock *noMatch,
                           BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  Value *st = states(pk, ctx);
  Value *poss = b.CreateAnd(st, b.getInt32(kStates));
  Value *nat = b.CreateAnd(st, b.getInt32(ir::CtSnat | ir::CtDnat));
  cg_.require(b.CreateICmpNE(poss, b.getInt32(0)), pass, "ct.known");
  Value *mask = b.getInt32(c.mask);
  // xt_conntrack adds SNAT/DNAT to the state of a packet with a conntrack
  // entry (every state but INVALID).
  Value *hit = b.CreateAnd(poss, mask);
  Value *natHit = b.CreateICmpNE(b.CreateAnd(nat, mask), b.getInt32(0));
  hit = b.CreateSelect(
      natHit, b.CreateOr(hit, b.CreateAnd(poss, b.getInt32(~ir::CtInvalid))),
      hit);
  Value *all = b.CreateICmpEQ(hit, poss);
  Value *none = b.CreateICmpEQ(hit, b.getInt32(0));
  BasicBlock *matched = cg_.block("ct.match");
  BasicBlock *check = cg_.block("ct.check");
  b.CreateCondBr(negated ? none : all, matched, check);
  b.SetInsertPoint(check);
  b.CreateCondBr(negated ? all : none, noMatch, pass);
  b.SetInsertPoint(matched);
}

/// nf_nat_inet_fn() at nat PREROUTING: a packet with a conntrack entry
/// (INVALID and UNTRACKED have none) whose entry has a NAT binding is
/// rewritten here (nf_nat_packet(): the destination of an original-direction
/// packet of IPS_DST_NAT, of a reply of IPS_SRC_NAT); the nat chain runs
/// only while the entry has no binding, which is for the first packet of a
/// new connection (NEW or RELATED, not yet confirmed: a lookup miss). A
/// found entry with a binding, or a first packet that a helper's
/// expectation may give one (RELATED), is the kernel's.
void CtLowering::emitNatGate(Packet &pk, Value *ctx, BasicBlock *runNat,
                             BasicBlock *skipNat, BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  Value *st = states(pk, ctx);
  Value *poss = b.CreateAnd(st, b.getInt32(kStates));
  cg_.require(b.CreateICmpNE(poss, b.getInt32(0)), pass, "ct.nat_known");
  cg_.require(
      b.CreateICmpEQ(b.CreateAnd(st, b.getInt32(ir::CtSnat | ir::CtDnat)),
                     b.getInt32(0)),
      pass, "ct.not_translated");
  Value *found =
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kFound)), b.getInt32(0));
  Value *reopen =
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kReopen)), b.getInt32(0));
  BasicBlock *hit = cg_.block("ct.nat_hit"), *miss = cg_.block("ct.nat_miss");
  b.CreateCondBr(found, hit, miss);
  // An entry (ESTABLISHED, or NEW/RELATED of a confirmed one) already has
  // its binding, a null one here: unless a SYN may replace it.
  b.SetInsertPoint(hit);
  cg_.require(b.CreateNot(reopen), pass, "ct.nat_not_reopened");
  b.CreateBr(skipNat);
  b.SetInsertPoint(miss);
  BasicBlock *notNew = cg_.block("ct.nat_not_new");
  b.CreateCondBr(b.CreateICmpEQ(poss, b.getInt32(ir::CtNew)), runNat, notNew);
  b.SetInsertPoint(notNew);
  b.CreateCondBr(b.CreateICmpEQ(poss, b.getInt32(ir::CtInvalid)), skipNat,
                 pass);
}

/// Hands the packet over unless conntrack's answer is known and holds no
/// entry for it (REJECT's RST: the kernel would update an entry).
void CtLowering::emitFoundGate(Packet &pk, Value *ctx, BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  Value *st = states(pk, ctx);
  Value *known =
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kStates)), b.getInt32(0));
  Value *miss =
      b.CreateICmpEQ(b.CreateAnd(st, b.getInt32(kFound)), b.getInt32(0));
  cg_.require(b.CreateAnd(known, miss), pass, "ct.no_entry");
}

Value *CtLowering::states(Packet &pk, Value *ctx) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *look = cg_.block("ct.lookup");
  BasicBlock *done = cg_.block("ct.done");
  Value *cur = b.CreateLoad(cg_.i32, slot_);
  b.CreateCondBr(b.CreateICmpEQ(cur, b.getInt32(0)), look, done);
  b.SetInsertPoint(look);
  emitLookup(pk, ctx, done);
  b.SetInsertPoint(done);
  return b.CreateLoad(cg_.i32, slot_);
}

void CtLowering::finish(Value *states, BasicBlock *done) {
  IRBuilder<> &b = cg_.b;
  b.CreateStore(b.CreateOr(states, b.getInt32(kLookedUp)), slot_);
  b.CreateBr(done);
}

/// nf_conntrack_in() as far as XDP can know it (the file comment): the
/// transport header checked, the tuple looked up, the states of a hit or a
/// miss.
void CtLowering::emitLookup(Packet &pk, Value *ctx, BasicBlock *done) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *start = b.GetInsertBlock();
  Exits x{cg_.block("ct.unknown"), cg_.block("ct.invalid"), done};
  b.SetInsertPoint(x.unknown);
  finish(b.getInt32(0), done);
  b.SetInsertPoint(x.invalid);
  finish(b.getInt32(ir::CtInvalid), done);
  b.SetInsertPoint(start);

  // IPv4 fragments are reassembled before conntrack; IPv6 ones too, and
  // only a packet without extension headers is looked up (its first next
  // header is TCP or UDP, below).
  if (!pk.v6)
    cg_.require(b.CreateICmpEQ(b.CreateAnd(pk.fragWord, b.getInt16(0x3fff)),
                               b.getInt16(0)),
                x.unknown, "ct.whole");
  Value *len = b.CreateSub(pk.totLen, pk.ihl); // the transport bytes
  BasicBlock *tcpB = cg_.block("ct.tcp"), *udpB = cg_.block("ct.udp");
  BasicBlock *look = cg_.block("ct.look");
  SwitchInst *sw = b.CreateSwitch(pk.proto, x.unknown, 3);
  sw->addCase(b.getInt8(IPPROTO_TCP), tcpB);
  sw->addCase(b.getInt8(IPPROTO_UDP), udpB);
  BasicBlock *icmpB = cg_.block("ct.icmp");
  sw->addCase(
      b.getInt8(uint8_t(pk.v6 ? int(IPPROTO_ICMPV6) : int(IPPROTO_ICMP))),
      icmpB);
  b.SetInsertPoint(icmpB);
  if (pk.v6)
    icmp6Error(pk, ctx, len, x);
  else
    icmpError(pk, ctx, len, x);
  b.SetInsertPoint(tcpB);
  Transport tcp = tcpError(pk, len, x);
  b.SetInsertPoint(udpB);
  Transport udp = udpError(pk, len, x);

  for (BasicBlock *end : {tcp.end, udp.end}) {
    b.SetInsertPoint(end);
    b.CreateBr(look);
  }
  b.SetInsertPoint(look);
  auto merge = [&](Type *ty, Value *t, Value *u) {
    PHINode *phi = b.CreatePHI(ty, 2);
    phi->addIncoming(t, tcp.end);
    phi->addIncoming(u, udp.end);
    return phi;
  };
  Value *isTcp = merge(cg_.i1, b.getTrue(), b.getFalse());
  Value *sumOk = merge(cg_.i1, tcp.sumOk, udp.sumOk);
  Value *ports = merge(cg_.i32, tcp.ports, udp.ports);
  Value *flags = merge(cg_.i32, tcp.flags, udp.flags);

  AllocaInst *opts = nullptr;
  Value *ct = lookup(pk, ctx, ports, isTcp, opts);
  Value *index = b.CreateAnd(flags, b.getInt32(kSyn | kAck | kRst | kFin));
  Value *synOnly = b.CreateICmpEQ(index, b.getInt32(kSyn));
  Value *ackOnly = b.CreateICmpEQ(index, b.getInt32(kAck));
  BasicBlock *hit = cg_.block("ct.hit"), *miss = cg_.block("ct.miss");
  b.CreateCondBr(b.CreateIsNull(ct), miss, hit);
  b.SetInsertPoint(hit);
  onHit(ct, opts, isTcp, synOnly, sumOk, x);
  b.SetInsertPoint(miss);
  onMiss(opts, isTcp, synOnly, ackOnly, sumOk, x);
}

/// nf_conntrack_icmpv4_error() and nf_conntrack_inet_error(): an ICMP
/// error about a TCP or UDP connection conntrack holds is RELATED to it
/// (with that entry's SNAT/DNAT); about none, or with a quoted header
/// conntrack cannot read, INVALID. The kernel's order of checks: the ICMP
/// header readable (INVALID), its checksum (INVALID where the kernel checks
/// it: a sum XDP cannot prove right is not known), the type known (above
/// NR_ICMP_TYPES: INVALID), an error type (a query is tracked as an ICMP
/// connection, which bpf_xdp_ct_lookup cannot look up: not known); then the
/// quoted IPv4 header readable and not a fragment, its ports readable
/// (INVALID), and the quoted tuple, inverted, looked up: a miss is
/// INVALID, and so is a hit whose tuple's destination (the quoted
/// source) is not the error's destination. Quoted headers with options
/// and other quoted protocols are not known.
void CtLowering::icmpError(Packet &pk, Value *ctx, Value *len, const Exits &x) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  constexpr uint64_t kInner = IcmpHlen, kInnerHlen = Ip4Hlen;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(IcmpHlen)), x.invalid,
              "ct.icmp_len");
  cg_.needBytes(pk.l4, IcmpHlen, x.unknown, "ct.icmp_header");
  cg_.require(transportChecksumOk(cg_, pk, len, x.unknown, false), x.unknown,
              "ct.icmp_sum");
  Value *type = b.CreateLoad(cg_.i8, pk.l4);
  cg_.require(b.CreateICmpULE(type, b.getInt8(NR_ICMP_TYPES)), x.invalid,
              "ct.icmp_type");
  Value *error = b.getFalse();
  for (uint8_t t : IcmpErrorTypes)
    error = b.CreateOr(error, b.CreateICmpEQ(type, b.getInt8(t)));
  cg_.require(error, x.unknown, "ct.icmp_error");
  // The quoted header (ipv4_get_l4proto()).
  cg_.require(b.CreateICmpUGE(len, b.getInt32(kInner + kInnerHlen)), x.invalid,
              "ct.icmp_inner_len");
  cg_.needBytes(pk.l4, kInner + kInnerHlen, x.unknown, "ct.icmp_inner");
  Value *inner = cg_.at(pk.l4, kInner);
  Value *frag = cg_.loadBE(inner, Ip4FragOff, cg_.i16);
  cg_.require(
      b.CreateICmpEQ(b.CreateAnd(frag, b.getInt16(Ip4OffMask)), b.getInt16(0)),
      x.invalid, "ct.icmp_inner_whole");
  Value *vihl = b.CreateLoad(cg_.i8, inner);
  cg_.require(b.CreateICmpEQ(b.CreateAnd(vihl, b.getInt8(0x0f)), b.getInt8(5)),
              x.unknown, "ct.icmp_inner_plain");
  Value *proto = b.CreateLoad(cg_.i8, cg_.at(inner, Ip4Protocol));
  Value *isTcp = b.CreateICmpEQ(proto, b.getInt8(IPPROTO_TCP));
  cg_.require(b.CreateOr(isTcp, b.CreateICmpEQ(proto, b.getInt8(IPPROTO_UDP))),
              x.unknown, "ct.icmp_inner_proto");
  quotedLookup(pk, ctx, inner, kInnerHlen, isTcp,
               {b.CreateLoad(cg_.i32, cg_.at(inner, Ip4Saddr))},
               {b.CreateLoad(cg_.i32, cg_.at(inner, Ip4Daddr))}, x);
}

/// nf_conntrack_icmpv6_error(): as icmpError() for ICMPv6 (a packet whose
/// first next header is ICMPv6). Its checksum covers the pseudo header;
/// types 128 and up are queries and neighbour discovery (tracked as ICMPv6
/// connections, or untracked: not known); every type below 128 is an
/// error. The quoted IPv6 header: ipv6_get_l4proto() reads its next header
/// (cut short: INVALID) and, for TCP or UDP directly after it, the tuple
/// reads its addresses and ports (cut short: INVALID); extension headers
/// and other protocols are not known.
void CtLowering::icmp6Error(Packet &pk, Value *ctx, Value *len,
                            const Exits &x) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  constexpr uint64_t kInner = IcmpHlen, kInnerHlen = Ip6Hlen;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(IcmpHlen)), x.invalid,
              "ct.icmp6_len");
  cg_.needBytes(pk.l4, IcmpHlen, x.unknown, "ct.icmp6_header");
  cg_.require(transportChecksumOk(cg_, pk, len, x.unknown), x.unknown,
              "ct.icmp6_sum");
  Value *type = b.CreateLoad(cg_.i8, pk.l4);
  cg_.require(b.CreateICmpULT(type, b.getInt8(ICMP6_INFOMSG_MASK)), x.unknown,
              "ct.icmp6_error");
  cg_.require(b.CreateICmpUGE(len, b.getInt32(kInner + Ip6Nexthdr + 1)),
              x.invalid, "ct.icmp6_inner_next");
  cg_.needBytes(pk.l4, kInner + Ip6Nexthdr + 1, x.unknown,
                "ct.icmp6_inner_next_read");
  Value *inner = cg_.at(pk.l4, kInner);
  Value *proto = b.CreateLoad(cg_.i8, cg_.at(inner, Ip6Nexthdr));
  Value *isTcp = b.CreateICmpEQ(proto, b.getInt8(IPPROTO_TCP));
  cg_.require(b.CreateOr(isTcp, b.CreateICmpEQ(proto, b.getInt8(IPPROTO_UDP))),
              x.unknown, "ct.icmp6_inner_proto");
  cg_.require(b.CreateICmpUGE(len, b.getInt32(kInner + kInnerHlen)), x.invalid,
              "ct.icmp6_inner_len");
  cg_.needBytes(pk.l4, kInner + kInnerHlen, x.unknown, "ct.icmp6_inner");
  Words qsrc, qdst;
  for (unsigned w = 0; w < 4; ++w) {
    qsrc.push_back(b.CreateLoad(cg_.i32, cg_.at(inner, Ip6Saddr + 4 * w)));
    qdst.push_back(b.CreateLoad(cg_.i32, cg_.at(inner, Ip6Daddr + 4 * w)));
  }
  quotedLookup(pk, ctx, inner, kInnerHlen, isTcp, qsrc, qdst, x);
}

/// The end of nf_conntrack_inet_error() for a quoted TCP or UDP header of
/// `innerHlen` bytes at `inner`, whose addresses are `qsrc` and `qdst`:
/// its ports cut short: INVALID; the tuple inverted and looked up: a miss
/// is INVALID, and so is a hit whose tuple's destination (the quoted
/// source) is not the error's own destination; else RELATED, with the
/// entry's SNAT/DNAT.
void CtLowering::quotedLookup(Packet &pk, Value *ctx, Value *inner,
                              uint64_t innerHlen, Value *isTcp,
                              const Words &qsrc, const Words &qdst,
                              const Exits &x) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  // nf_ct_get_tuple_ports(): 4 bytes past the quoted header.
  Value *len = b.CreateSub(pk.totLen, pk.ihl);
  cg_.require(b.CreateICmpUGE(len, b.getInt32(IcmpHlen + innerHlen + 4)),
              x.invalid, "ct.icmp_inner_ports");
  cg_.needBytes(pk.l4, IcmpHlen + innerHlen + 4, x.unknown,
                "ct.icmp_inner_ports_read");
  Value *qports = b.CreateLoad(cg_.i32, cg_.at(inner, innerHlen));
  // Inverted: the quoted destination port first (as loaded, little-endian:
  // the halves swapped).
  Value *ports = b.CreateOr(b.CreateLShr(qports, b.getInt32(16)),
                            b.CreateShl(qports, b.getInt32(16)));
  AllocaInst *opts = nullptr;
  Value *ct = lookup(pk, ctx, ports, isTcp, opts, qdst, qsrc);
  BasicBlock *hit = cg_.block("ct.icmp_hit"), *miss = cg_.block("ct.icmp_miss");
  b.CreateCondBr(b.CreateIsNull(ct), miss, hit);

  b.SetInsertPoint(hit);
  Value *field =
      b.CreatePreserveStructAccessIndex(nfConnTy_, ct, 0, 0, nfConnDi_);
  Value *status = b.CreateTrunc(b.CreateLoad(cg_.i64, field), cg_.i32);
  b.CreateCall(releaseFn_, {ct});
  // The entry's tuple in the found direction is the inverted quoted one:
  // its destination is the quoted source.
  Value *same = b.getTrue();
  for (unsigned w = 0; w < qsrc.size(); ++w)
    same = b.CreateAnd(
        same, b.CreateICmpEQ(qsrc[w], pk.v6 ? pk.daddr6[w] : pk.daddrRaw));
  cg_.require(same, x.invalid, "ct.icmp_outer_daddr");
  finish(b.CreateOr(b.getInt32(ir::CtRelated | kFound), natBitsOf(status)),
         x.done);

  b.SetInsertPoint(miss);
  cg_.require(b.CreateICmpEQ(b.CreateLoad(cg_.i32, cg_.at(opts, kOptsError)),
                             b.getInt32(-ENOENT)),
              x.unknown, "ct.icmp_enoent");
  b.CreateBr(x.invalid);
}

/// tcp_error(): a header conntrack can read, a data offset inside the
/// segment, a valid flag combination.
CtLowering::Transport CtLowering::tcpError(Packet &pk, Value *len,
                                           const Exits &x) {
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(kernel::TcpHlen)), x.unknown,
              "ct.tcp_len");
  cg_.needBytes(pk.l4, kernel::TcpHlen, x.unknown, "ct.tcp_header");
  Value *ports = b.CreateLoad(cg_.i32, pk.l4);
  Value *doff = b.CreateMul(
      b.CreateLShr(
          b.CreateZExt(b.CreateLoad(cg_.i8, cg_.at(pk.l4, kTcpDoff)), cg_.i32),
          b.getInt32(4)),
      b.getInt32(4));
  Value *flags =
      b.CreateZExt(b.CreateLoad(cg_.i8, cg_.at(pk.l4, kTcpFlags)), cg_.i32);
  cg_.require(b.CreateAnd(b.CreateICmpUGE(doff, b.getInt32(kernel::TcpHlen)),
                          b.CreateICmpULE(doff, len)),
              x.invalid, "ct.tcp_doff");
  // tcp_valid_flags[] over FIN, SYN, RST, ACK, URG (PSH, ECE, CWR ignored).
  Value *vf = b.CreateAnd(flags, b.getInt32(0x37));
  Value *valid = b.getFalse();
  for (uint32_t ok :
       {0x02u, 0x22u, 0x12u, 0x04u, 0x14u, 0x11u, 0x31u, 0x10u, 0x30u})
    valid = b.CreateOr(valid, b.CreateICmpEQ(vf, b.getInt32(ok)));
  cg_.require(valid, x.invalid, "ct.tcp_flags");
  Value *sumOk = l4ChecksumOk(pk, len, x.unknown);
  return {ports, flags, sumOk, b.GetInsertBlock()};
}

/// udp_error(): a header conntrack can read, a UDP length inside the
/// datagram.
CtLowering::Transport CtLowering::udpError(Packet &pk, Value *len,
                                           const Exits &x) {
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(kernel::UdpHlen)), x.unknown,
              "ct.udp_len");
  cg_.needBytes(pk.l4, kernel::UdpHlen, x.unknown, "ct.udp_header");
  Value *ports = b.CreateLoad(cg_.i32, pk.l4);
  Value *ulen = b.CreateZExt(
      cg_.loadBE(pk.l4, offsetof(struct udphdr, len), cg_.i16), cg_.i32);
  cg_.require(b.CreateAnd(b.CreateICmpUGE(ulen, b.getInt32(kernel::UdpHlen)),
                          b.CreateICmpULE(ulen, len)),
              x.invalid, "ct.udp_length");
  // IPv4: a zero checksum is none, which the kernel does not check. IPv6
  // requires one: a zero is not taken on trust here.
  Value *noSum =
      pk.v6 ? b.getFalse()
            : b.CreateICmpEQ(
                  b.CreateLoad(cg_.i16, cg_.at(pk.l4, kernel::UdpCheck)),
                  b.getInt16(0));
  Value *sumOk = b.CreateOr(noSum, l4ChecksumOk(pk, len, x.unknown));
  return {ports, b.getInt32(0), sumOk, b.GetInsertBlock()};
}

/// bpf_xdp_ct_lookup() of the packet's tuple in this namespace; `opts`
/// is set to the options, which receive the error and the direction.
Value *CtLowering::lookup(Packet &pk, Value *ctx, Value *ports, Value *isTcp,
                          AllocaInst *&opts, const Words &saddr,
                          const Words &daddr) {
  IRBuilder<> &b = cg_.b;
  const uint64_t size = pk.v6 ? kTuple6Size : kTuple4Size;
  // One tuple and one options buffer for every lookup site: a packet is
  // looked up once, and each site reads the options right after its call.
  // A buffer per site cost the 512-byte stack 48 bytes a site, which an
  // IPv6 ruleset with REJECT's reply route and several sites exceeded.
  if (!tuple_) {
    tuple_ = cg_.stackSlot(ArrayType::get(cg_.i8, kTuple6Size), 4, "ct.tuple");
    opts_ = cg_.stackSlot(ArrayType::get(cg_.i8, kOptsSize), 4, "ct.opts");
  }
  AllocaInst *tuple = tuple_;
  opts = opts_;
  if (pk.v6) {
    for (unsigned w = 0; w < 4; ++w) {
      b.CreateStore(saddr.empty() ? pk.saddr6[w] : saddr[w],
                    cg_.at(tuple, uint64_t(4 * w)));
      b.CreateStore(daddr.empty() ? pk.daddr6[w] : daddr[w],
                    cg_.at(tuple, uint64_t(16 + 4 * w)));
    }
    b.CreateStore(ports, cg_.at(tuple, 32));
  } else {
    b.CreateStore(saddr.empty() ? pk.saddrRaw : saddr[0],
                  cg_.at(tuple, uint64_t(0)));
    b.CreateStore(daddr.empty() ? pk.daddrRaw : daddr[0], cg_.at(tuple, 4));
    b.CreateStore(ports, cg_.at(tuple, 8));
  }
  b.CreateStore(b.getInt32(kCurrentNetns), cg_.at(opts, kOptsNetns));
  b.CreateStore(b.getInt32(0), cg_.at(opts, kOptsError));
  b.CreateStore(
      b.CreateSelect(isTcp, b.getInt8(IPPROTO_TCP), b.getInt8(IPPROTO_UDP)),
      cg_.at(opts, kOptsProto));
  b.CreateStore(b.getInt8(0), cg_.at(opts, kOptsDir));
  b.CreateStore(b.getInt16(0), cg_.at(opts, kOptsReserved));
  return b.CreateCall(
      lookupFn_, {ctx, tuple, b.getInt32(size), opts, b.getInt32(kOptsSize)});
}

/// An entry: its status and direction read, the entry released at once.
void CtLowering::onHit(Value *ct, AllocaInst *opts, Value *isTcp,
                       Value *synOnly, Value *sumOk, const Exits &x) {
  IRBuilder<> &b = cg_.b;
  Value *field =
      b.CreatePreserveStructAccessIndex(nfConnTy_, ct, 0, 0, nfConnDi_);
  Value *status = b.CreateLoad(cg_.i64, field);
  Value *reply = b.CreateICmpNE(b.CreateLoad(cg_.i8, cg_.at(opts, kOptsDir)),
                                b.getInt8(0));
  b.CreateCall(releaseFn_, {ct});
  // A kernel without bpf_ct_opts.dir leaves it 0 whatever the direction:
  // then only an entry that has seen a reply is known (ESTABLISHED both
  // ways).
  Value *dirField =
      b.CreatePreserveStructAccessIndex(optsTy_, opts, 3, 3, optsDi_);
  Value *hasDir = b.CreateICmpNE(
      b.CreateIntrinsic(Intrinsic::bpf_preserve_field_info,
                        {dirField->getType()},
                        {dirField, b.getInt64(2)}), // BPF_FIELD_EXISTS
      b.getInt32(0));
  status = b.CreateTrunc(status, cg_.i32);
  auto bit = [&](uint32_t m) {
    return b.CreateICmpNE(b.CreateAnd(status, b.getInt32(m)), b.getInt32(0));
  };
  Value *seenReply = bit(kIpsSeenReply);
  Value *base = b.CreateSelect(
      b.CreateOr(reply, seenReply), b.getInt32(ir::CtEstablished),
      b.CreateSelect(bit(kIpsExpected), b.getInt32(ir::CtRelated),
                     b.getInt32(ir::CtNew)));
  Value *natBits = natBitsOf(status);
  // TCP: the window check may fail (INVALID); a SYN may reopen a closed
  // connection (NEW, without the entry's NAT bits: not known then).
  Value *tcpBits = b.CreateOr(
      base, b.CreateSelect(synOnly, b.getInt32(ir::CtInvalid | ir::CtNew),
                           b.getInt32(ir::CtInvalid)));
  Value *udpBits =
      b.CreateSelect(sumOk, base, b.CreateOr(base, b.getInt32(ir::CtInvalid)));
  cg_.require(b.CreateNot(b.CreateAnd(b.CreateAnd(isTcp, synOnly),
                                      b.CreateICmpNE(natBits, b.getInt32(0)))),
              x.unknown, "ct.hit_known");
  cg_.require(b.CreateOr(hasDir, seenReply), x.unknown, "ct.direction_known");
  Value *found =
      b.CreateSelect(b.CreateAnd(isTcp, synOnly), b.getInt32(kFound | kReopen),
                     b.getInt32(kFound));
  finish(
      b.CreateOr(b.CreateOr(b.CreateSelect(isTcp, tcpBits, udpBits), natBits),
                 found),
      x.done);
}

/// IPS_SRC_NAT and IPS_DST_NAT of an entry's status (i32) -> CtSnat, CtDnat.
Value *CtLowering::natBitsOf(Value *status) {
  IRBuilder<> &b = cg_.b;
  return b.CreateShl(b.CreateAnd(b.CreateLShr(status, b.getInt32(kIpsNatShift)),
                                 b.getInt32(3)),
                     b.getInt32(kCtSnatShift));
}

/// No entry (any other error: not known): a new connection as tcp_new()
/// judges the first packet's flags (already a valid combination).
void CtLowering::onMiss(AllocaInst *opts, Value *isTcp, Value *synOnly,
                        Value *ackOnly, Value *sumOk, const Exits &x) {
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpEQ(b.CreateLoad(cg_.i32, cg_.at(opts, kOptsError)),
                             b.getInt32(-ENOENT)),
              x.unknown, "ct.enoent");
  Value *fresh =
      b.getInt32(ir::CtNew | (helper_ ? unsigned(ir::CtRelated) : 0));
  fresh = b.CreateSelect(sumOk, fresh,
                         b.CreateOr(fresh, b.getInt32(ir::CtInvalid)));
  Value *tcpNew = b.CreateSelect(
      synOnly, fresh,
      b.CreateSelect(ackOnly, b.CreateOr(fresh, b.getInt32(ir::CtInvalid)),
                     b.getInt32(ir::CtInvalid)));
  finish(b.CreateSelect(isTcp, tcpNew, fresh), x.done);
}

/// Whether the transport checksum in the packet is right (the pseudo header
/// with the IP payload length `len`, as nf_ip_checksum() computes it): then
/// the kernel's check passes however the device marked the frame. False
/// when it is wrong or not checked (more than 64 bytes).
Value *CtLowering::l4ChecksumOk(Packet &pk, Value *len, BasicBlock *unknown) {
  return transportChecksumOk(cg_, pk, len, unknown);
}

/// The transport bytes are copied (bpf_xdp_load_bytes) into a zeroed
/// 64-byte stack buffer and all 32 of its words summed, without a branch
/// per word: a byte-by-byte walk of the packet would leave the verifier
/// one state per length it stopped at (each with its own proven packet
/// range), and it would then follow the whole rest of the program once
/// for each. Zero padding adds nothing to the sum, and an odd last byte
/// is padded with zero as RFC 1071 pads it.
// The parameter keeps the member's name: the body is CtLowering's own.
Value *transportChecksumOk(Codegen &cg_, Packet &pk, Value *len,
                           BasicBlock *unknown, bool withPseudo) {
  IRBuilder<> &b = cg_.b;
  constexpr unsigned kMaxBytes = 64;
  // Every word as loaded (little-endian): the one's complement sum does not
  // depend on the byte order as long as it is the same for every word.
  auto halves = [&](Value *v32) {
    Value *v = b.CreateZExt(v32, cg_.i64);
    return b.CreateAdd(b.CreateAnd(v, b.getInt64(0xffff)),
                       b.CreateLShr(v, b.getInt64(16)));
  };
  Value *len64 = b.CreateZExt(len, cg_.i64);
  // IPv6 (RFC 8200 8.1): the addresses, a 32-bit length (below 64 KiB here,
  // so its upper half adds nothing) and the next header.
  Value *pseudo = b.getInt64(0);
  if (!withPseudo) {
    // ICMP: no pseudo header.
  } else if (pk.v6)
    for (unsigned w = 0; w < 4; ++w)
      pseudo = b.CreateAdd(
          pseudo, b.CreateAdd(halves(pk.saddr6[w]), halves(pk.daddr6[w])));
  else
    pseudo = b.CreateAdd(halves(pk.saddrRaw), halves(pk.daddrRaw));
  if (withPseudo) {
    pseudo = b.CreateAdd(
        pseudo, b.CreateShl(b.CreateZExt(pk.proto, cg_.i64), b.getInt64(8)));
    pseudo = b.CreateAdd(
        pseudo, b.CreateOr(b.CreateShl(b.CreateAnd(len64, b.getInt64(0xff)),
                                       b.getInt64(8)),
                           b.CreateLShr(len64, b.getInt64(8))));
  }
  BasicBlock *fits = cg_.block("csum.fits");
  BasicBlock *fold = cg_.block("csum.fold");
  BasicBlock *entry = b.GetInsertBlock();
  Value *inBuf = b.CreateAnd(b.CreateICmpULE(len, b.getInt32(kMaxBytes)),
                             b.CreateICmpNE(len, b.getInt32(0)));
  b.CreateCondBr(inBuf, fits, fold);

  b.SetInsertPoint(fits);
  if (!cg_.csumBuf)
    cg_.csumBuf =
        cg_.stackSlot(ArrayType::get(cg_.i8, kMaxBytes), 8, "csum.buf");
  AllocaInst *buf = cg_.csumBuf;
  b.CreateMemSet(buf, b.getInt8(0), kMaxBytes, MaybeAlign(8));
  Value *off = b.CreateSub(b.CreatePtrToInt(pk.l4, cg_.i64),
                           b.CreatePtrToInt(cg_.data, cg_.i64));
  // A size the verifier can bound: 1..64 (len is already in that range).
  Value *size = b.CreateAdd(
      b.CreateAnd(b.CreateSub(len64, b.getInt64(1)), b.getInt64(kMaxBytes - 1)),
      b.getInt64(1));
  Value *rc = cg_.callHelper(XdpLoadBytes, cg_.i64,
                             {cg_.fn->getArg(0), b.CreateTrunc(off, cg_.i32),
                              buf, b.CreateTrunc(size, cg_.i32)});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(0)), unknown, "csum.copied");
  Value *sum = pseudo;
  for (unsigned i = 0; i < kMaxBytes / 2; ++i)
    sum = b.CreateAdd(
        sum, b.CreateZExt(b.CreateLoad(cg_.i16, cg_.at(buf, 2 * i)), cg_.i64));
  BasicBlock *summed = b.GetInsertBlock();
  b.CreateBr(fold);

  b.SetInsertPoint(fold);
  PHINode *s = b.CreatePHI(cg_.i64, 2, "csum");
  s->addIncoming(b.getInt64(0), entry); // not checked: never 0xffff
  s->addIncoming(sum, summed);
  Value *f = s;
  for (int k = 0; k < 3; ++k)
    f = b.CreateAdd(b.CreateAnd(f, b.getInt64(0xffff)),
                    b.CreateLShr(f, b.getInt64(16)));
  return b.CreateICmpEQ(f, b.getInt64(0xffff));
}

} // namespace r2x::backend
