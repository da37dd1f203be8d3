//===- compiler/backend/Conntrack.h - state from the kernel --*- C++ -*-===//
//
/// \file
/// `-m conntrack --ctstate` and `-m state --state` in hand-over mode
/// (docs/handover.md, "Connection state"): the packet is looked up in the
/// kernel's own conntrack (bpf_xdp_ct_lookup, nf_conntrack_bpf.c), once per
/// packet at the first state match reached, and every state the kernel
/// could give it is computed as nf_conntrack_in() would for a TCP or UDP
/// packet at PREROUTING. A match is decided when all of those states meet
/// it or none does; otherwise the packet is handed to the kernel there.
///
/// The same lookup decides, where the kernel has NAT, whether conntrack
/// rewrites the packet at nat PREROUTING and whether the nat table runs for
/// it (emitNatGate()).
///
/// The per-packet result is an i32 on the stack: 0 before the lookup, else
/// 0x80 | the possible states (ir::CtNew ...; none: not known) | ir::CtSnat
/// and ir::CtDnat of the entry found | 0x100 when an entry was found |
/// 0x200 when that entry may be replaced by a new one (a TCP SYN).
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/PacketParser.h"
#include "compiler/ir/IR.h"

#include <vector>

namespace r2x::backend {

class CtLowering {
public:
  /// Declares the kfuncs and the part of `struct nf_conn` the lookup reads.
  /// `helper`: the ruleset can attach a conntrack helper, so a packet
  /// without an entry may also be RELATED.
  CtLowering(Codegen &cg, BtfBuilder &btf, bool helper);

  /// At the start of a family's path: not looked up yet.
  void begin();

  /// A state match reached with every earlier match of its rule true: on to
  /// the next match when it holds, to `noMatch` when it does not, to `pass`
  /// (the kernel decides) when XDP cannot know.
  void emitMatch(Packet &pk, llvm::Value *ctx, const ir::Match::CtState &c,
                 bool negated, llvm::BasicBlock *noMatch,
                 llvm::BasicBlock *pass);

  /// REJECT --reject-with tcp-reset: goes on only when the lookup ran and
  /// found no entry (a miss, or a header tcp_error() refuses before any
  /// lookup), so the kernel's conntrack would not have touched one; else
  /// to `pass`.
  void emitFoundGate(Packet &pk, llvm::Value *ctx, llvm::BasicBlock *pass);
  /// Hand-over mode, at nat PREROUTING (before its chain, or where it
  /// would be): hands the packet over (`pass`) when conntrack's answer is
  /// not known or its entry is translated (IPS_SRC_NAT or IPS_DST_NAT: the
  /// kernel may rewrite it here); otherwise goes to `runNat` when the
  /// kernel runs the nat table for the packet (a new connection's first
  /// packet) and to `skipNat` when it does not (a later packet, or
  /// INVALID).
  void emitNatGate(Packet &pk, llvm::Value *ctx, llvm::BasicBlock *runNat,
                   llvm::BasicBlock *skipNat, llvm::BasicBlock *pass);

private:
  /// What tcp_error() or udp_error() leaves for the lookup.
  struct Transport {
    llvm::Value *ports;    ///< i32 source and destination port, raw
    llvm::Value *flags;    ///< i32 TCP flags (0 for UDP)
    llvm::Value *sumOk;    ///< i1 the checksum is known to be right
    llvm::BasicBlock *end; ///< where its checks end
  };
  /// The blocks a lookup ends in: not known, INVALID whatever conntrack
  /// holds, and the join after the lookup.
  struct Exits {
    llvm::BasicBlock *unknown, *invalid, *done;
  };

  llvm::Value *states(Packet &pk, llvm::Value *ctx);
  void emitLookup(Packet &pk, llvm::Value *ctx, llvm::BasicBlock *done);
  void finish(llvm::Value *states, llvm::BasicBlock *done);
  void icmpError(Packet &pk, llvm::Value *ctx, llvm::Value *len,
                 const Exits &x);
  Transport tcpError(Packet &pk, llvm::Value *len, const Exits &x);
  Transport udpError(Packet &pk, llvm::Value *len, const Exits &x);
  /// An address as i32 words on the wire: one (IPv4) or four (IPv6).
  using Words = std::vector<llvm::Value *>;
  /// `saddr` and `daddr`, when given, replace the packet's own addresses
  /// (an ICMP error's quoted tuple, inverted).
  llvm::Value *lookup(Packet &pk, llvm::Value *ctx, llvm::Value *ports,
                      llvm::Value *isTcp, llvm::AllocaInst *&opts,
                      const Words &saddr = {}, const Words &daddr = {});
  void icmp6Error(Packet &pk, llvm::Value *ctx, llvm::Value *len,
                  const Exits &x);
  void quotedLookup(Packet &pk, llvm::Value *ctx, llvm::Value *inner,
                    uint64_t innerHlen, llvm::Value *isTcp, const Words &qsrc,
                    const Words &qdst, const Exits &x);
  llvm::Value *natBitsOf(llvm::Value *status);
  void onHit(llvm::Value *ct, llvm::AllocaInst *opts, llvm::Value *isTcp,
             llvm::Value *synOnly, llvm::Value *sumOk, const Exits &x);
  void onMiss(llvm::AllocaInst *opts, llvm::Value *isTcp, llvm::Value *synOnly,
              llvm::Value *ackOnly, llvm::Value *sumOk, const Exits &x);
  llvm::Value *l4ChecksumOk(Packet &pk, llvm::Value *len,
                            llvm::BasicBlock *unknown);

  Codegen &cg_;
  bool helper_;
  llvm::Function *lookupFn_ = nullptr, *releaseFn_ = nullptr;
  llvm::DICompositeType *nfConnDi_ = nullptr, *optsDi_ = nullptr;
  llvm::StructType *nfConnTy_ = nullptr, *optsTy_ = nullptr;
  llvm::AllocaInst *slot_ = nullptr; ///< the per-packet states (above)
  /// bpf_sock_tuple (IPv6-sized) and bpf_ct_opts, shared by every lookup.
  llvm::AllocaInst *tuple_ = nullptr, *opts_ = nullptr;
};

/// The one's complement sum of the pseudo header and the transport bytes
/// (`len`, at most 64 of them; more: false), i1 true when it is right; a
/// byte outside the frame goes to `unknown`. Without `pseudo` the bytes
/// alone (ICMP's checksum).
llvm::Value *transportChecksumOk(Codegen &cg, Packet &pk, llvm::Value *len,
                                 llvm::BasicBlock *unknown, bool pseudo = true);

} // namespace r2x::backend
