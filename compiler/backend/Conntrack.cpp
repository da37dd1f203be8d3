//===- compiler/backend/Conntrack.cpp - state from the kernel's conntrack -===//
//
/// \file
/// See Conntrack.h. The lookup follows nf_conntrack_in() for a TCP or UDP
/// packet at PREROUTING (IPv6: without extension headers), as far as XDP
/// can know it (docs/handover.md, "Connection state"):
///  - tcp_error()/udp_error(): a header cut short, an invalid TCP flag
///    combination or a UDP length outside the datagram is INVALID, whatever
///    conntrack holds. Where a wrong checksum would make it INVALID, the
///    result says so (kSumUnchecked) and the checksum is verified only
///    where that changes a decision (CtLowering::settleSum()).
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
#include "compiler/backend/Scaffold.h"

#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>

#include <cerrno>
#include <functional>

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
/// INVALID too if the checksum is wrong, which is not checked yet.
constexpr uint32_t kSumUnchecked = 0x400;
/// The checksum function sums the transport bytes up to a 1500-byte MTU's
/// IPv4 payload; a longer message's sum is not known.
constexpr uint32_t kSumChunk = 64, kMaxSumBytes = 1480;
/// The entry's direction is known and its tuple is the packet's; that
/// direction is REPLY; where the entry's first four status bits sit.
constexpr uint32_t kTupleKnown = 0x800, kReply = 0x1000, kStatusShift = 16;
/// nf_conn's status bits --ctstatus names (EXPECTED, SEEN_REPLY, ASSURED,
/// CONFIRMED).
constexpr uint32_t kIpsAssured = 4, kIpsNamed = 0xf;
/// What bpf_csum_diff() sums at most in one call.
constexpr uint32_t kSumBlock = 512;
static_assert(ir::CtSnat == 1u << kCtSnatShift &&
              ir::CtDnat == 2u << kCtSnatShift);

} // namespace

/// The kernel functions the lookup calls (nf_conntrack_bpf.c), as
/// external declarations in ".ksyms" whose BTF libbpf resolves against the
/// kernel's, and `struct nf_conn` as far as XDP reads it: `status`, found
/// by name in the running kernel's BTF (a CO-RE relocation), so the object
/// does not depend on this kernel's layout.
struct CtLowering::Decls {
  Function *lookup = nullptr, *release = nullptr;
  DICompositeType *nfConnDi = nullptr, *optsDi = nullptr;
  StructType *nfConnTy = nullptr, *optsTy = nullptr;
  DIType *ctx = nullptr; ///< struct xdp_md *
};

CtLowering::CtLowering(Codegen &cg, BtfBuilder &btf, bool helper)
    : cg_(cg), btf_(btf), helper_(helper), k_(std::make_unique<Decls>()) {
  LLVMContext &c = cg_.ctx;
  Decls &k = *k_;
  using Members = std::vector<std::tuple<std::string, DIType *, uint64_t>>;
  k.nfConnDi =
      btf.kernelStruct("nf_conn", 8, Members{{"status", btf.u64(), 0}});
  k.nfConnTy = StructType::create(c, {cg_.i64}, "struct.nf_conn");
  DIType *conn = btf.pointerTo(k.nfConnDi);
  k.ctx = btf.pointerTo(btf.kernelStruct("xdp_md", 0, {}));
  DIType *tuple = btf.pointerTo(btf.kernelStruct("bpf_sock_tuple", 0, {}));
  // bpf_ct_opts as far as XDP asks whether the kernel has `dir` (added
  // after the kfuncs themselves): a CO-RE field-existence relocation.
  k.optsDi = btf.kernelStruct("bpf_ct_opts", kOptsSize,
                              Members{{"netns_id", btf.int32(), 0},
                                      {"error", btf.int32(), 32},
                                      {"l4proto", btf.u8(), 64},
                                      {"dir", btf.u8(), 72}});
  k.optsTy = StructType::create(
      c, {cg_.i32, cg_.i32, cg_.i8, cg_.i8, ArrayType::get(cg_.i8, 2)},
      "struct.bpf_ct_opts");
  DIType *opts = btf.pointerTo(k.optsDi);
  k.lookup = Function::Create(
      FunctionType::get(cg_.ptr, {cg_.ptr, cg_.ptr, cg_.i32, cg_.ptr, cg_.i32},
                        false),
      GlobalValue::ExternalLinkage, "bpf_xdp_ct_lookup", cg_.m);
  k.lookup->setSection(".ksyms");
  btf.kfunc(k.lookup, conn, {k.ctx, tuple, btf.u32(), opts, btf.u32()});
  k.release =
      Function::Create(FunctionType::get(Type::getVoidTy(c), {cg_.ptr}, false),
                       GlobalValue::ExternalLinkage, "bpf_ct_release", cg_.m);
  k.release->setSection(".ksyms");
  btf.kfunc(k.release, nullptr, {conn});
}

CtLowering::~CtLowering() = default;

namespace {

/// The body of a family's lookup or checksum function (Conntrack.h),
/// `int f(struct xdp_md *ctx, u64 l3off)`: the network header is read
/// again from `l3off` (the program has validated it; the function checks
/// what the verifier needs) and the result returned.
class LookupEmitter {
public:
  /// `k` may be null for the checksum function, which calls no kfunc.
  LookupEmitter(Module &m, Function *f, const CtLowering::Decls *k, bool v6,
                bool helper)
      : cg_(m, f), k_(k), helper_(helper), ctx_(f->getArg(0)) {
    pk_.v6 = v6;
  }
  void emitLookup();
  void emitSum();

private:
  /// What tcp_error() or udp_error() leaves for the lookup.
  struct Transport {
    Value *ports;    ///< i32 source and destination port, raw
    Value *flags;    ///< i32 TCP flags (0 for UDP)
    Value *summed;   ///< i1 a wrong checksum makes the packet INVALID
    BasicBlock *end; ///< where its checks end
  };
  /// The blocks a lookup ends in: not known, INVALID whatever conntrack
  /// holds, and the function's return.
  struct Exits {
    BasicBlock *unknown, *invalid, *done;
  };
  /// An address as i32 words on the wire: one (IPv4) or four (IPv6).
  using Words = std::vector<Value *>;

  /// The entry block, the packet pointers and the network header.
  void header(BasicBlock *unknown);
  void finish(Value *states, BasicBlock *done);
  void icmpError(Packet &pk, Value *ctx, Value *len, const Exits &x);
  void icmp6Error(Packet &pk, Value *ctx, Value *len, const Exits &x);
  void quotedLookup(Packet &pk, Value *ctx, Value *inner, uint64_t innerHlen,
                    Value *isTcp, const Words &qsrc, const Words &qdst,
                    const Exits &x);
  Transport tcpError(Packet &pk, Value *len, const Exits &x);
  Transport udpError(Packet &pk, Value *len, const Exits &x);
  /// `saddr` and `daddr`, when given, replace the packet's own addresses
  /// (an ICMP error's quoted tuple, inverted).
  Value *lookup(Packet &pk, Value *ctx, Value *ports, Value *isTcp,
                AllocaInst *&opts, const Words &saddr = {},
                const Words &daddr = {});
  Value *natBitsOf(Value *status);
  void onHit(Value *ct, AllocaInst *opts, Value *isTcp, Value *synOnly,
             Value *summed, const Exits &x);
  void onMiss(AllocaInst *opts, Value *isTcp, Value *synOnly, Value *ackOnly,
              Value *summed, const Exits &x);

  Codegen cg_;
  const CtLowering::Decls *k_;
  bool helper_;
  Value *ctx_;
  Packet pk_;
  AllocaInst *result_ = nullptr;
  /// bpf_sock_tuple (IPv6-sized) and bpf_ct_opts, shared by every lookup.
  AllocaInst *tuple_ = nullptr, *opts_ = nullptr;
};

/// The one's complement sum (i64, unfolded) of the pseudo header of a
/// transport message of `len` bytes (RFC 768, RFC 8200 8.1: for IPv6 the
/// 32-bit length's upper half is 0 below 64 KiB).
Value *pseudoSum(Codegen &cg, Packet &pk, Value *len);
/// Whether an unfolded one's complement sum (i64) folds to 0xffff.
Value *sumIsRight(Codegen &cg, Value *sum);

} // namespace

void CtLowering::begin() {
  if (!slot_)
    slot_ = cg_.stackSlot(cg_.i32, 4, "ct.states");
  cg_.b.CreateStore(cg_.b.getInt32(0), slot_); // not looked up yet
}

/// True when every state the kernel could give the packet meets the mask,
/// false when none does, else the packet is handed over (the kernel
/// evaluates the match).
void CtLowering::emitMatch(Packet &pk, Value *ctx, const ir::Match::CtState &c,
                           bool negated, BasicBlock *noMatch, BasicBlock *pass,
                           const TupleFacts &t) {
  IRBuilder<> &b = cg_.b;
  Value *mask = b.getInt32(c.mask);
  Value *st = states(pk, ctx);
  // conntrack_mt(): the state first; then, for a packet with an entry
  // (every state but INVALID), the other options. Without an entry the
  // match holds exactly when --ctstate is given and holds.
  auto [restKnown, restTrue] =
      c.hasOptions() ? entryOptions(pk, st, c, t, pass)
                     : std::pair<Value *, Value *>{b.getTrue(), b.getTrue()};
  const bool invalidTrue =
      c.hasState && (((c.mask & ir::CtInvalid) != 0) != negated);
  // The states (one world each) in which the match is true: all of them
  // (true), none (false), or the packet is handed over. `unknown`: some
  // world with an entry passes the state but the rest is not known.
  auto decide = [&](Value *s) {
    Value *poss = b.CreateAnd(s, b.getInt32(kStates));
    Value *stateTrue = poss;
    if (c.hasState) {
      // xt_conntrack adds SNAT/DNAT to the state of a packet with an entry.
      Value *nat = b.CreateAnd(s, b.getInt32(ir::CtSnat | ir::CtDnat));
      Value *hit = b.CreateAnd(poss, mask);
      Value *natHit = b.CreateICmpNE(b.CreateAnd(nat, mask), b.getInt32(0));
      hit = b.CreateSelect(
          natHit,
          b.CreateOr(hit, b.CreateAnd(poss, b.getInt32(~ir::CtInvalid))), hit);
      stateTrue = negated ? b.CreateAnd(poss, b.CreateNot(hit)) : hit;
    }
    Value *withEntry = b.CreateAnd(stateTrue, b.getInt32(~ir::CtInvalid));
    Value *truth = b.CreateOr(
        b.CreateAnd(stateTrue, b.getInt32(invalidTrue ? ir::CtInvalid : 0)),
        b.CreateSelect(restTrue, withEntry, b.getInt32(0)));
    Value *unknown = b.CreateAnd(b.CreateNot(restKnown),
                                 b.CreateICmpNE(withEntry, b.getInt32(0)));
    return std::tuple{b.CreateICmpEQ(truth, poss),
                      b.CreateICmpEQ(truth, b.getInt32(0)), unknown};
  };
  // An unchecked checksum matters when the states decide the match and an
  // added INVALID would undo that: all of them meet it and INVALID would
  // not, or none does and INVALID would.
  auto [all0, none0, unknown0] = decide(st);
  Value *unchecked =
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kSumUnchecked)), b.getInt32(0));
  st = settleSum(pk, ctx, st,
                 b.CreateAnd(b.CreateAnd(unchecked, b.CreateNot(unknown0)),
                             invalidTrue ? none0 : all0));
  cg_.require(
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kStates)), b.getInt32(0)), pass,
      "ct.known");
  auto [all, none, unknown] = decide(st);
  cg_.require(b.CreateNot(unknown), pass, "ct.options_known");
  BasicBlock *matched = cg_.block("ct.match");
  BasicBlock *check = cg_.block("ct.check");
  b.CreateCondBr(all, matched, check);
  b.SetInsertPoint(check);
  b.CreateCondBr(none, noMatch, pass);
  b.SetInsertPoint(matched);
}

/// The entry's tuples follow from the packet's and the direction
/// (ORIGINAL: the packet's is the original tuple, the reply tuple its
/// inverse; REPLY the other way round) where the program knows them: the
/// lookup was the packet's own, XDP has not translated the packet, and the
/// tuple not read from the packet is its inverse (the entry has no NAT
/// binding; for a new connection, none can be made before the filter).
/// --ctstatus: the entry's bits as looked up, SEEN_REPLY for a reply (this
/// packet sets it), and ASSURED unknown unless set already (this packet may
/// set it); a new connection has none of them (without a helper, which
/// could make it EXPECTED).
std::pair<Value *, Value *>
CtLowering::entryOptions(Packet &pk, Value *st, const ir::Match::CtState &c,
                         const TupleFacts &t, BasicBlock *pass) {
  IRBuilder<> &b = cg_.b;
  auto bit = [&](uint32_t m) {
    return b.CreateICmpNE(b.CreateAnd(st, b.getInt32(m)), b.getInt32(0));
  };
  Value *tupleKnown = t.fromPacket ? bit(kTupleKnown) : b.getFalse();
  Value *reply = bit(kReply), *found = bit(kFound);
  Value *noNat = b.CreateNot(bit(ir::CtSnat | ir::CtDnat));
  Value *known = b.getTrue(), *holds = b.getTrue();
  auto test = [&](Value *k, Value *h) {
    known = b.CreateAnd(known, k);
    holds = b.CreateAnd(holds, h);
  };
  if (c.reply)
    test(tupleKnown, *c.reply ? reply : b.CreateNot(reply));
  if (c.proto)
    test(tupleKnown,
         b.CreateXor(b.CreateICmpEQ(pk.proto, b.getInt8(c.proto->proto)),
                     b.getInt1(c.proto->negated)));
  Value *ports = nullptr; // raw, as loaded: source port in the low half
  for (unsigned f = 0; f < 4; ++f) {
    const auto &addr = c.addrs[f];
    const auto &port = c.ports[f];
    if (!addr && !port)
      continue;
    const bool orig = f == ir::Match::CtOrigSrc || f == ir::Match::CtOrigDst;
    // The tuple that is not the packet's is its inverse only without NAT.
    Value *tk = b.CreateAnd(
        tupleKnown, orig
                        ? b.CreateOr(b.CreateNot(reply), noNat)
                        : b.CreateOr(reply, b.CreateAnd(noNat, t.missReplyKnown
                                                                   ? b.getTrue()
                                                                   : found)));
    // The packet's source, or its destination.
    Value *fromSrc = b.CreateXor(
        b.getInt1(f == ir::Match::CtOrigSrc || f == ir::Match::CtReplDst),
        reply);
    // Both sides tested, one chosen: a select per word would be a branch
    // per word for the verifier.
    if (addr) {
      const ir::Match::Address &a = addr->addr;
      auto in = [&](bool src) {
        if (!pk.v6)
          return b.CreateICmpEQ(
              b.CreateAnd(src ? pk.saddr : pk.daddr, b.getInt32(a.mask)),
              b.getInt32(a.net & a.mask));
        Value *all = b.getTrue();
        for (unsigned w = 0; w < 4; ++w) {
          uint32_t net = 0, m = 0;
          for (unsigned k = 0; k < 4; ++k) {
            net |= uint32_t(a.net6[4 * w + k]) << (8 * k);
            m |= uint32_t(a.mask6[4 * w + k]) << (8 * k);
          }
          Value *v = src ? pk.saddr6[w] : pk.daddr6[w];
          all = b.CreateAnd(all, b.CreateICmpEQ(b.CreateAnd(v, b.getInt32(m)),
                                                b.getInt32(net & m)));
        }
        return all;
      };
      test(tk, b.CreateXor(b.CreateSelect(fromSrc, in(true), in(false)),
                           b.getInt1(addr->negated)));
    }
    if (port) {
      if (!ports) {
        // A TCP or UDP packet's own lookup read its ports already.
        cg_.needBytes(pk.l4, 4, pass, "ct.ports");
        ports = b.CreateLoad(cg_.i32, pk.l4);
      }
      auto in = [&](bool src) {
        Value *raw = src ? b.CreateAnd(ports, 0xffff) : b.CreateLShr(ports, 16);
        Value *p = b.CreateUnaryIntrinsic(Intrinsic::bswap,
                                          b.CreateTrunc(raw, cg_.i16));
        return b.CreateAnd(b.CreateICmpUGE(p, b.getInt16(port->lo)),
                           b.CreateICmpULE(p, b.getInt16(port->hi)));
      };
      test(tk, b.CreateXor(b.CreateSelect(fromSrc, in(true), in(false)),
                           b.getInt1(port->negated)));
    }
  }
  if (c.status) {
    Value *bits = b.CreateOr(
        b.CreateAnd(b.CreateLShr(st, b.getInt32(kStatusShift)),
                    b.getInt32(kIpsNamed)),
        b.CreateSelect(reply, b.getInt32(kIpsSeenReply), b.getInt32(0)));
    uint32_t m = c.status->mask;
    Value *hit =
        b.CreateICmpNE(b.CreateAnd(bits, b.getInt32(m)), b.getInt32(0));
    // ASSURED may be set by this very packet (a found entry's).
    Value *maybe =
        (m & kIpsAssured)
            ? b.CreateAnd(found, b.CreateICmpEQ(
                                     b.CreateAnd(bits, b.getInt32(kIpsAssured)),
                                     b.getInt32(0)))
            : b.getFalse();
    Value *k = b.CreateAnd(
        b.CreateAnd(tupleKnown, b.CreateOr(hit, b.CreateNot(maybe))),
        helper_ ? found : b.getTrue());
    test(k, b.CreateXor(hit, b.getInt1(c.status->negated)));
  }
  return {known, holds};
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
  // A new connection's first packet runs the chain, an INVALID one does
  // not: its checksum decides.
  Value *unchecked =
      b.CreateICmpNE(b.CreateAnd(st, b.getInt32(kSumUnchecked)), b.getInt32(0));
  st =
      settleSum(pk, ctx, st,
                b.CreateAnd(unchecked,
                            b.CreateICmpEQ(b.CreateAnd(st, b.getInt32(kStates)),
                                           b.getInt32(ir::CtNew))));
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
  b.CreateStore(b.CreateCall(function(pk.v6, false), {ctx, l3Offset(cg_, pk)}),
                slot_);
  b.CreateBr(done);
  b.SetInsertPoint(done);
  return b.CreateLoad(cg_.i32, slot_);
}

Value *CtLowering::settleSum(Packet &pk, Value *ctx, Value *st, Value *need) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *from = b.GetInsertBlock();
  BasicBlock *sum = cg_.block("ct.sum"), *join = cg_.block("ct.summed");
  b.CreateCondBr(need, sum, join);
  b.SetInsertPoint(sum);
  Value *ok = b.CreateICmpNE(
      b.CreateCall(function(pk.v6, true), {ctx, l3Offset(cg_, pk)}),
      b.getInt32(0));
  Value *settled =
      b.CreateOr(b.CreateAnd(st, b.getInt32(~kSumUnchecked)),
                 b.CreateSelect(ok, b.getInt32(0), b.getInt32(ir::CtInvalid)));
  b.CreateStore(settled, slot_);
  BasicBlock *sumEnd = b.GetInsertBlock();
  b.CreateBr(join);
  b.SetInsertPoint(join);
  PHINode *phi = b.CreatePHI(cg_.i32, 2, "ct.states");
  phi->addIncoming(st, from);
  phi->addIncoming(settled, sumEnd);
  return phi;
}

namespace {

/// `int NAME(struct xdp_md *ctx, u64 l3off)`, global: the verifier checks
/// it once, from unknown arguments. Its body is for `emit` to fill.
Function *packetFunction(Module &m, BtfBuilder &btf, const std::string &name,
                         DIType *ctx,
                         const std::function<void(Function *)> &emit) {
  if (Function *f = m.getFunction(name))
    return f;
  LLVMContext &c = m.getContext();
  Function *f = Function::Create(
      FunctionType::get(Type::getInt32Ty(c),
                        {PointerType::get(c, 0), Type::getInt64Ty(c)}, false),
      GlobalValue::ExternalLinkage, name, m);
  f->addFnAttr(Attribute::NoUnwind);
  f->addFnAttr(Attribute::NoInline);
  f->getArg(0)->setName("ctx");
  f->getArg(1)->setName("l3off");
  emit(f);
  btf.function(f, btf.int32(), {ctx, btf.u64()});
  return f;
}

/// The family's checksum function (r2x_sum4, r2x_sum6).
Function *sumFunction(Module &m, BtfBuilder &btf, bool v6) {
  return packetFunction(
      m, btf, v6 ? "r2x_sum6" : "r2x_sum4",
      btf.pointerTo(btf.kernelStruct("xdp_md", 0, {})),
      [&](Function *f) { LookupEmitter(m, f, nullptr, v6, false).emitSum(); });
}

} // namespace

Function *CtLowering::function(bool v6, bool sum) {
  if (sum)
    return sumFunction(cg_.m, btf_, v6);
  return packetFunction(
      cg_.m, btf_, v6 ? "r2x_ct6_lookup" : "r2x_ct4_lookup", k_->ctx,
      [&](Function *f) {
        LookupEmitter(cg_.m, f, k_.get(), v6, helper_).emitLookup();
      });
}

Value *l3Offset(Codegen &cg, Packet &pk) {
  IRBuilder<> &b = cg.b;
  return b.CreateSub(b.CreatePtrToInt(pk.l3, cg.i64),
                     b.CreatePtrToInt(cg.data, cg.i64));
}

Value *transportChecksumOk(Codegen &cg, BtfBuilder &btf, Packet &pk,
                           Value *ctx) {
  IRBuilder<> &b = cg.b;
  return b.CreateICmpNE(
      b.CreateCall(sumFunction(cg.m, btf, pk.v6), {ctx, l3Offset(cg, pk)}),
      b.getInt32(0));
}

void LookupEmitter::finish(Value *states, BasicBlock *done) {
  IRBuilder<> &b = cg_.b;
  b.CreateStore(b.CreateOr(states, b.getInt32(kLookedUp)), result_);
  b.CreateBr(done);
}

void LookupEmitter::header(BasicBlock *unknown) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  Packet &pk = pk_;
  loadPacketPointers(cg_, ctx_);
  // Ethernet and at most two VLAN tags before it.
  Value *l3off = cg_.fn->getArg(1);
  cg_.require(b.CreateICmpULE(l3off, b.getInt64(ETH_HLEN + 2 * VlanHlen)),
              unknown, "ct.l3off");
  pk.l3 = cg_.at(cg_.data, l3off);
  if (pk.v6) {
    cg_.needBytes(pk.l3, Ip6Hlen, unknown, "ct.ip6");
    pk.totLen = b.CreateAdd(
        b.CreateZExt(cg_.loadBE(pk.l3, Ip6PayloadLen, cg_.i16), cg_.i32),
        b.getInt32(Ip6Hlen));
    pk.proto = b.CreateLoad(cg_.i8, cg_.at(pk.l3, Ip6Nexthdr));
    for (unsigned w = 0; w < 4; ++w) {
      pk.saddr6[w] = b.CreateLoad(cg_.i32, cg_.at(pk.l3, Ip6Saddr + 4 * w));
      pk.daddr6[w] = b.CreateLoad(cg_.i32, cg_.at(pk.l3, Ip6Daddr + 4 * w));
    }
    pk.ihl = b.getInt32(Ip6Hlen);
  } else {
    cg_.needBytes(pk.l3, Ip4Hlen, unknown, "ct.ip4");
    pk.ihl = b.CreateShl(
        b.CreateZExt(b.CreateAnd(b.CreateLoad(cg_.i8, pk.l3), 0x0f), cg_.i32),
        2);
    pk.totLen = b.CreateZExt(cg_.loadBE(pk.l3, Ip4TotLen, cg_.i16), cg_.i32);
    cg_.require(b.CreateAnd(b.CreateICmpUGE(pk.ihl, b.getInt32(Ip4Hlen)),
                            b.CreateICmpUGE(pk.totLen, pk.ihl)),
                unknown, "ct.ip4_lengths");
    pk.fragWord = cg_.loadBE(pk.l3, Ip4FragOff, cg_.i16);
    pk.proto = b.CreateLoad(cg_.i8, cg_.at(pk.l3, Ip4Protocol));
    pk.saddrRaw = b.CreateLoad(cg_.i32, cg_.at(pk.l3, Ip4Saddr));
    pk.daddrRaw = b.CreateLoad(cg_.i32, cg_.at(pk.l3, Ip4Daddr));
  }
  pk.l4 = cg_.at(pk.l3, b.CreateZExt(pk.ihl, cg_.i64));
}

/// nf_conntrack_in() as far as XDP can know it (the file comment): the
/// transport header checked, the tuple looked up, the states of a hit or a
/// miss.
void LookupEmitter::emitLookup() {
  IRBuilder<> &b = cg_.b;
  Packet &pk = pk_;
  Value *ctx = ctx_;
  b.SetInsertPoint(cg_.block("entry"));
  result_ = cg_.stackSlot(cg_.i32, 4, "ct.result");
  BasicBlock *start = b.GetInsertBlock();
  Exits x{cg_.block("ct.unknown"), cg_.block("ct.invalid"),
          cg_.block("ct.done")};
  b.SetInsertPoint(x.unknown);
  finish(b.getInt32(0), x.done);
  b.SetInsertPoint(x.invalid);
  finish(b.getInt32(ir::CtInvalid), x.done);
  b.SetInsertPoint(x.done);
  b.CreateRet(b.CreateLoad(cg_.i32, result_));
  b.SetInsertPoint(start);
  header(x.unknown);

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
  Value *summed = merge(cg_.i1, tcp.summed, udp.summed);
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
  onHit(ct, opts, isTcp, synOnly, summed, x);
  b.SetInsertPoint(miss);
  onMiss(opts, isTcp, synOnly, ackOnly, summed, x);
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
void LookupEmitter::icmpError(Packet &pk, Value *ctx, Value *len,
                              const Exits &x) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  constexpr uint64_t kInner = IcmpHlen, kInnerHlen = Ip4Hlen;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(IcmpHlen)), x.invalid,
              "ct.icmp_len");
  cg_.needBytes(pk.l4, IcmpHlen, x.unknown, "ct.icmp_header");
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
void LookupEmitter::icmp6Error(Packet &pk, Value *ctx, Value *len,
                               const Exits &x) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  constexpr uint64_t kInner = IcmpHlen, kInnerHlen = Ip6Hlen;
  cg_.require(b.CreateICmpUGE(len, b.getInt32(IcmpHlen)), x.invalid,
              "ct.icmp6_len");
  cg_.needBytes(pk.l4, IcmpHlen, x.unknown, "ct.icmp6_header");
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
void LookupEmitter::quotedLookup(Packet &pk, Value *ctx, Value *inner,
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
      b.CreatePreserveStructAccessIndex(k_->nfConnTy, ct, 0, 0, k_->nfConnDi);
  Value *status = b.CreateTrunc(b.CreateLoad(cg_.i64, field), cg_.i32);
  b.CreateCall(k_->release, {ct});
  // The entry's tuple in the found direction is the inverted quoted one:
  // its destination is the quoted source.
  Value *same = b.getTrue();
  for (unsigned w = 0; w < qsrc.size(); ++w)
    same = b.CreateAnd(
        same, b.CreateICmpEQ(qsrc[w], pk.v6 ? pk.daddr6[w] : pk.daddrRaw));
  cg_.require(same, x.invalid, "ct.icmp_outer_daddr");
  // A wrong ICMP checksum would have made it INVALID before all this.
  finish(b.CreateOr(b.getInt32(ir::CtRelated | kFound | kSumUnchecked),
                    natBitsOf(status)),
         x.done);

  b.SetInsertPoint(miss);
  cg_.require(b.CreateICmpEQ(b.CreateLoad(cg_.i32, cg_.at(opts, kOptsError)),
                             b.getInt32(-ENOENT)),
              x.unknown, "ct.icmp_enoent");
  b.CreateBr(x.invalid);
}

/// tcp_error(): a header conntrack can read, a data offset inside the
/// segment, a valid flag combination.
LookupEmitter::Transport LookupEmitter::tcpError(Packet &pk, Value *len,
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
  return {ports, flags, b.getTrue(), b.GetInsertBlock()};
}

/// udp_error(): a header conntrack can read, a UDP length inside the
/// datagram.
LookupEmitter::Transport LookupEmitter::udpError(Packet &pk, Value *len,
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
  return {ports, b.getInt32(0), b.CreateNot(noSum), b.GetInsertBlock()};
}

/// bpf_xdp_ct_lookup() of the packet's tuple in this namespace; `opts`
/// is set to the options, which receive the error and the direction.
Value *LookupEmitter::lookup(Packet &pk, Value *ctx, Value *ports, Value *isTcp,
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
      k_->lookup, {ctx, tuple, b.getInt32(size), opts, b.getInt32(kOptsSize)});
}

/// An entry: its status and direction read, the entry released at once.
void LookupEmitter::onHit(Value *ct, AllocaInst *opts, Value *isTcp,
                          Value *synOnly, Value *summed, const Exits &x) {
  IRBuilder<> &b = cg_.b;
  Value *field =
      b.CreatePreserveStructAccessIndex(k_->nfConnTy, ct, 0, 0, k_->nfConnDi);
  Value *status = b.CreateLoad(cg_.i64, field);
  Value *reply = b.CreateICmpNE(b.CreateLoad(cg_.i8, cg_.at(opts, kOptsDir)),
                                b.getInt8(0));
  b.CreateCall(k_->release, {ct});
  // A kernel without bpf_ct_opts.dir leaves it 0 whatever the direction:
  // then only an entry that has seen a reply is known (ESTABLISHED both
  // ways).
  Value *dirField =
      b.CreatePreserveStructAccessIndex(k_->optsTy, opts, 3, 3, k_->optsDi);
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
  Value *udpBits = b.CreateOr(
      base, b.CreateSelect(summed, b.getInt32(kSumUnchecked), b.getInt32(0)));
  cg_.require(b.CreateNot(b.CreateAnd(b.CreateAnd(isTcp, synOnly),
                                      b.CreateICmpNE(natBits, b.getInt32(0)))),
              x.unknown, "ct.hit_known");
  cg_.require(b.CreateOr(hasDir, seenReply), x.unknown, "ct.direction_known");
  Value *reopen = b.CreateAnd(isTcp, synOnly);
  Value *found =
      b.CreateSelect(reopen, b.getInt32(kFound | kReopen), b.getInt32(kFound));
  // The direction is known (and a reopened connection would be a new
  // entry, whose direction and status are not these).
  Value *tuple =
      b.CreateOr(b.CreateSelect(b.CreateAnd(hasDir, b.CreateNot(reopen)),
                                b.getInt32(kTupleKnown), b.getInt32(0)),
                 b.CreateSelect(reply, b.getInt32(kReply), b.getInt32(0)));
  found = b.CreateOr(
      b.CreateOr(found, tuple),
      b.CreateShl(b.CreateAnd(status, b.getInt32(kIpsNamed)), kStatusShift));
  finish(
      b.CreateOr(b.CreateOr(b.CreateSelect(isTcp, tcpBits, udpBits), natBits),
                 found),
      x.done);
}

/// IPS_SRC_NAT and IPS_DST_NAT of an entry's status (i32) -> CtSnat, CtDnat.
Value *LookupEmitter::natBitsOf(Value *status) {
  IRBuilder<> &b = cg_.b;
  return b.CreateShl(b.CreateAnd(b.CreateLShr(status, b.getInt32(kIpsNatShift)),
                                 b.getInt32(3)),
                     b.getInt32(kCtSnatShift));
}

/// No entry (any other error: not known): a new connection as tcp_new()
/// judges the first packet's flags (already a valid combination).
void LookupEmitter::onMiss(AllocaInst *opts, Value *isTcp, Value *synOnly,
                           Value *ackOnly, Value *summed, const Exits &x) {
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpEQ(b.CreateLoad(cg_.i32, cg_.at(opts, kOptsError)),
                             b.getInt32(-ENOENT)),
              x.unknown, "ct.enoent");
  Value *fresh =
      b.getInt32(ir::CtNew | (helper_ ? unsigned(ir::CtRelated) : 0));
  fresh = b.CreateOr(
      fresh, b.CreateSelect(summed, b.getInt32(kSumUnchecked), b.getInt32(0)));
  Value *tcpNew = b.CreateSelect(
      synOnly, fresh,
      b.CreateSelect(ackOnly, b.CreateOr(fresh, b.getInt32(ir::CtInvalid)),
                     b.getInt32(ir::CtInvalid)));
  // The new entry: this packet's tuple, ORIGINAL, no status bits yet.
  finish(
      b.CreateOr(b.CreateSelect(isTcp, tcpNew, fresh), b.getInt32(kTupleKnown)),
      x.done);
}

/// The whole transport message summed (the checksum function, Conntrack.h):
/// 1 when its checksum is right, as nf_ip_checksum() or nf_ip6_checksum()
/// computes it (the pseudo header with the IP payload length; ICMP over
/// IPv4 without one): then the kernel's check passes however the device
/// marked the frame. 0 when it is wrong, or longer than kMaxSumBytes, or
/// not readable. bpf_csum_diff() sums 512 bytes at a time straight from
/// the frame while they lie in its linear part; the rest goes 64 bytes at
/// a time through a zeroed stack buffer (bpf_xdp_load_bytes, which also
/// reads a multi-buffer frame's fragments): zero padding adds nothing, and
/// an odd last byte is padded with zero as RFC 1071 pads it.
void LookupEmitter::emitSum() {
  IRBuilder<> &b = cg_.b;
  Packet &pk = pk_;
  b.SetInsertPoint(cg_.block("entry"));
  AllocaInst *buf =
      cg_.stackSlot(ArrayType::get(cg_.i8, kSumChunk), 8, "csum.buf");
  BasicBlock *wrong = cg_.block("csum.wrong");
  b.SetInsertPoint(wrong);
  b.CreateRet(b.getInt32(0));
  b.SetInsertPoint(&cg_.fn->getEntryBlock());
  header(wrong);
  Value *len = b.CreateSub(pk.totLen, pk.ihl);
  cg_.require(b.CreateICmpULE(len, b.getInt32(kMaxSumBytes)), wrong,
              "csum.len");
  Value *seed = pseudoSum(cg_, pk, len);
  if (!pk.v6) // ICMP over IPv4: no pseudo header
    seed = b.CreateSelect(b.CreateICmpEQ(pk.proto, b.getInt8(IPPROTO_ICMP)),
                          b.getInt64(0), seed);
  // From the scalar argument, not from packet pointers (BPF forbids 32-bit
  // arithmetic on those).
  Value *off = b.CreateAdd(b.CreateTrunc(cg_.fn->getArg(1), cg_.i32), pk.ihl);
  Value *nul = ConstantPointerNull::get(PointerType::get(cg_.ctx, 0));
  // A 32-bit partial sum of `size` bytes at `p`; a negative value is an
  // error.
  auto partial = [&](Value *p, uint64_t size) {
    Value *part = cg_.callHelper(
        CsumDiff, cg_.i64,
        {nul, b.getInt32(0), p, b.getInt32(size), b.getInt32(0)});
    cg_.require(b.CreateICmpULE(part, b.getInt64(0xffffffff)), wrong,
                "csum.part");
    return part;
  };
  // A loop's back edge: `by` bytes more, `part` added to the sum.
  auto backEdge = [&](PHINode *at, PHINode *acc, Value *part, uint32_t by,
                      BasicBlock *to) {
    at->addIncoming(b.CreateAdd(at, b.getInt32(by)), b.GetInsertBlock());
    acc->addIncoming(b.CreateAdd(acc, part), b.GetInsertBlock());
    noUnroll(b.CreateBr(to));
  };
  // Whole 512-byte blocks in the linear part, from the frame itself.
  BasicBlock *entry = b.GetInsertBlock();
  BasicBlock *bigHead = cg_.block("csum.big_head");
  BasicBlock *big = cg_.block("csum.big"),
             *bigRead = cg_.block("csum.big_read");
  BasicBlock *head = cg_.block("csum.head"), *chunk = cg_.block("csum.chunk");
  BasicBlock *end = cg_.block("csum.end");
  b.CreateBr(bigHead);
  b.SetInsertPoint(bigHead);
  PHINode *j = b.CreatePHI(cg_.i32, 2, "csum.j");
  PHINode *bigSum = b.CreatePHI(cg_.i64, 2, "csum.big_sum");
  j->addIncoming(b.getInt32(0), entry);
  bigSum->addIncoming(seed, entry);
  b.CreateCondBr(b.CreateICmpULE(b.CreateAdd(j, b.getInt32(kSumBlock)), len),
                 big, head);
  b.SetInsertPoint(big);
  Value *p = cg_.at(pk.l4, b.CreateZExt(j, cg_.i64));
  b.CreateCondBr(b.CreateICmpULE(cg_.at(p, kSumBlock), cg_.dataEnd), bigRead,
                 head);
  b.SetInsertPoint(bigRead);
  backEdge(j, bigSum, partial(p, kSumBlock), kSumBlock, bigHead);
  // The rest, 64 bytes at a time.
  b.SetInsertPoint(head);
  PHINode *i = b.CreatePHI(cg_.i32, 3, "csum.i");
  PHINode *sum = b.CreatePHI(cg_.i64, 3, "csum.sum");
  i->addIncoming(j, bigHead);
  sum->addIncoming(bigSum, bigHead);
  i->addIncoming(j, big);
  sum->addIncoming(bigSum, big);
  // The bound the verifier follows: i grows by 64 up to kMaxSumBytes.
  b.CreateCondBr(b.CreateICmpULT(i, len), chunk, end);
  b.SetInsertPoint(chunk);
  Value *rest = b.CreateSub(len, i);
  Value *size = b.CreateSelect(b.CreateICmpUGT(rest, b.getInt32(kSumChunk)),
                               b.getInt32(kSumChunk), rest);
  // 1..64 in a form the verifier can bound.
  size = b.CreateAdd(
      b.CreateAnd(b.CreateSub(size, b.getInt32(1)), b.getInt32(kSumChunk - 1)),
      b.getInt32(1));
  b.CreateMemSet(buf, b.getInt8(0), kSumChunk, MaybeAlign(8));
  Value *rc = cg_.callHelper(XdpLoadBytes, cg_.i64,
                             {ctx_, b.CreateAdd(off, i), buf, size});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(0)), wrong, "csum.copied");
  backEdge(i, sum, partial(buf, kSumChunk), kSumChunk, head);
  b.SetInsertPoint(end);
  b.CreateRet(b.CreateZExt(sumIsRight(cg_, sum), cg_.i32));
}

namespace {

Value *pseudoSum(Codegen &cg, Packet &pk, Value *len) {
  IRBuilder<> &b = cg.b;
  // Every word as loaded (little-endian): the one's complement sum does not
  // depend on the byte order as long as it is the same for every word.
  auto halves = [&](Value *v32) {
    Value *v = b.CreateZExt(v32, cg.i64);
    return b.CreateAdd(b.CreateAnd(v, b.getInt64(0xffff)),
                       b.CreateLShr(v, b.getInt64(16)));
  };
  Value *len64 = b.CreateZExt(len, cg.i64);
  Value *sum = b.getInt64(0);
  if (pk.v6)
    for (unsigned w = 0; w < 4; ++w)
      sum = b.CreateAdd(
          sum, b.CreateAdd(halves(pk.saddr6[w]), halves(pk.daddr6[w])));
  else
    sum = b.CreateAdd(halves(pk.saddrRaw), halves(pk.daddrRaw));
  sum = b.CreateAdd(sum,
                    b.CreateShl(b.CreateZExt(pk.proto, cg.i64), b.getInt64(8)));
  return b.CreateAdd(
      sum, b.CreateOr(
               b.CreateShl(b.CreateAnd(len64, b.getInt64(0xff)), b.getInt64(8)),
               b.CreateLShr(len64, b.getInt64(8))));
}

Value *sumIsRight(Codegen &cg, Value *sum) {
  IRBuilder<> &b = cg.b;
  Value *f = sum;
  for (int k = 0; k < 4; ++k)
    f = b.CreateAdd(b.CreateAnd(f, b.getInt64(0xffff)),
                    b.CreateLShr(f, b.getInt64(16)));
  return b.CreateICmpEQ(f, b.getInt64(0xffff));
}

} // namespace

} // namespace r2x::backend
