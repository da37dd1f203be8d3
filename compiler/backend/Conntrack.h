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
/// The lookup itself is a global function per family (r2x_ct4_lookup,
/// r2x_ct6_lookup): the verifier checks it once, on its own, and each state
/// match costs the program one call, made at most once per packet. Its
/// result, kept in an i32 on the stack: 0 before the lookup, else 0x80 |
/// the possible states (ir::CtNew ...; none: not known) | ir::CtSnat and
/// ir::CtDnat of the entry found | 0x100 when an entry was found | 0x200
/// when that entry may be replaced by a new one (a TCP SYN) | 0x400 when
/// the kernel would also find the packet INVALID if its checksum is wrong,
/// which has not been checked yet | 0x800 when the entry's direction is
/// known and its tuple is the packet's (a TCP or UDP packet's own lookup)
/// | 0x1000 when that direction is REPLY | the entry's IPS_EXPECTED,
/// IPS_SEEN_REPLY, IPS_ASSURED and IPS_CONFIRMED bits at bits 16 to 19. The
/// checksum (the whole message, not only its first bytes) is another global
/// function (r2x_sum4, r2x_sum6, which REJECT's RST calls too), called
/// only where its answer changes a decision.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/PacketParser.h"
#include "compiler/ir/IR.h"

#include <memory>
#include <vector>

namespace r2x::backend {

class CtLowering {
public:
  /// Declares the kfuncs and the part of `struct nf_conn` the lookup reads.
  /// `helper`: the ruleset can attach a conntrack helper, so a packet
  /// without an entry may also be RELATED.
  CtLowering(Codegen &cg, BtfBuilder &btf, bool helper);
  ~CtLowering();

  /// The kernel functions and types the lookup uses (Conntrack.cpp).
  struct Decls;

  /// At the start of a family's path: not looked up yet.
  void begin();

  /// What the program knows of a packet's entry beyond its state.
  struct TupleFacts {
    /// The packet's fields are still those conntrack saw (XDP has not
    /// translated it): the entry's tuples follow from them and the
    /// direction.
    bool fromPacket = true;
    /// A new connection's reply tuple is its original one inverted: no nat
    /// PREROUTING rule and no helper can bind it before the filter.
    bool missReplyKnown = true;
  };
  /// A state match reached with every earlier match of its rule true: on to
  /// the next match when it holds, to `noMatch` when it does not, to `pass`
  /// (the kernel decides) when XDP cannot know. Besides --ctstate, the
  /// options of xt_conntrack (ir::Match::CtState) are decided from the
  /// packet's tuple, its direction and the entry's status where `t` and the
  /// lookup make them certain.
  void emitMatch(Packet &pk, llvm::Value *ctx, const ir::Match::CtState &c,
                 bool negated, llvm::BasicBlock *noMatch,
                 llvm::BasicBlock *pass, const TupleFacts &t);

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
  /// The packet's result (the file comment), looked up if not yet.
  llvm::Value *states(Packet &pk, llvm::Value *ctx);
  /// `st` with the checksum settled (0x400 cleared; INVALID added when
  /// it is wrong) when `need` (i1) holds; stored back for later sites.
  llvm::Value *settleSum(Packet &pk, llvm::Value *ctx, llvm::Value *st,
                         llvm::Value *need);
  /// The family's lookup (`sum` false) or checksum function.
  llvm::Function *function(bool v6, bool sum);
  /// conntrack_mt()'s tests after the state, for a packet with an entry:
  /// whether they are known (i1) and hold (i1).
  std::pair<llvm::Value *, llvm::Value *>
  entryOptions(Packet &pk, llvm::Value *st, const ir::Match::CtState &c,
               const TupleFacts &t, llvm::BasicBlock *pass);

  Codegen &cg_;
  BtfBuilder &btf_;
  bool helper_;
  std::unique_ptr<Decls> k_;
  llvm::AllocaInst *slot_ = nullptr; ///< the per-packet result (above)
  llvm::Function *fns_[2][2] = {};   ///< [v6][sum]
};

/// Whether the packet's transport checksum is right (i1), from the family's
/// checksum function (r2x_sum4, r2x_sum6; declared on first use): the
/// pseudo header and the whole message up to 1480 bytes, as the kernel
/// checks it; longer or unreadable: false.
llvm::Value *transportChecksumOk(Codegen &cg, BtfBuilder &btf, Packet &pk,
                                 llvm::Value *ctx);
/// Bytes from `data` to the packet's network header (i64).
llvm::Value *l3Offset(Codegen &cg, Packet &pk);

} // namespace r2x::backend
