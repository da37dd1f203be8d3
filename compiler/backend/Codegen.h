//===- compiler/backend/Codegen.h - IRBuilder helpers for XDP ---*- C++ -*-===//
//
/// \file
/// The few primitives every lowering step uses (Codegen.cpp), each encoding
/// a verifier rule from the brief: packet addresses are i8 GEPs from
/// `data`, every access is preceded by a pointer compare of its end with
/// `data_end`, helpers are called through inttoptr of their number.
//===----------------------------------------------------------------------===//
#pragma once

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include "compiler/backend/Kernel.h"

namespace r2x::backend {

/// XDP actions (enum xdp_action).
enum XdpAction : unsigned {
  XdpAborted = XDP_ABORTED,
  XdpDrop = XDP_DROP,
  XdpPass = XDP_PASS,
  XdpTx = XDP_TX,
  XdpRedirect = XDP_REDIRECT
};

/// The BPF helpers the programs call (enum bpf_func_id).
enum Helper : unsigned {
  MapLookupElem = BPF_FUNC_map_lookup_elem,
  MapUpdateElem = BPF_FUNC_map_update_elem,
  GetPrandomU32 = BPF_FUNC_get_prandom_u32,
  RedirectMap = BPF_FUNC_redirect_map,
  FibLookup = BPF_FUNC_fib_lookup,
  Loop = BPF_FUNC_loop,
  XdpLoadBytes = BPF_FUNC_xdp_load_bytes,
  CsumDiff = BPF_FUNC_csum_diff,
  XdpAdjustTail = BPF_FUNC_xdp_adjust_tail,
  RingbufReserve = BPF_FUNC_ringbuf_reserve,
  RingbufSubmit = BPF_FUNC_ringbuf_submit,
  KtimeGetNs = BPF_FUNC_ktime_get_ns
};

struct Codegen {
  Codegen(llvm::Module &m, llvm::Function *fn);

  llvm::LLVMContext &ctx;
  llvm::Module &m;
  llvm::Function *fn;
  llvm::IRBuilder<> b;
  llvm::Type *i1, *i8, *i16, *i32, *i64, *ptr;
  llvm::Value *data = nullptr, *dataEnd = nullptr; ///< packet pointers
  /// A per-CPU scratch value (map r2x_scratch) for results that many paths
  /// produce: see PacketParser.cpp, the IPv6 walk.
  llvm::GlobalVariable *scratch = nullptr;
  /// The one 4-byte map key on the stack (u32 keys of array and hash
  /// maps): each use stores it right before its lookup. BPF has 512 bytes
  /// of stack, and LLVM keeps every alloca apart, used or not at once.
  llvm::AllocaInst *u32Key();

  llvm::BasicBlock *block(const llvm::Twine &name);
  /// An alloca in the entry block (so the verifier sees a fixed stack slot).
  llvm::AllocaInst *stackSlot(llvm::Type *ty, unsigned align,
                              const llvm::Twine &name);
  /// base + off as an i8 GEP.
  llvm::Value *at(llvm::Value *base, llvm::Value *off);
  llvm::Value *at(llvm::Value *base, uint64_t off);
  /// Branches to `fail` unless [p, p + width) lies inside the packet, then
  /// continues in a new block.
  void needBytes(llvm::Value *p, uint64_t width, llvm::BasicBlock *fail,
                 const llvm::Twine &name);
  /// A big-endian load of `ty` at base + off, converted to host order.
  llvm::Value *loadBE(llvm::Value *base, uint64_t off, llvm::Type *ty);
  /// `v` (an integer or a pointer) through llvm.bpf.passthrough: the same
  /// value in the program, but one LLVM cannot see through, so it neither
  /// folds what it knows of `v` into the uses nor merges two such copies
  /// (each takes the next sequence number of this function).
  llvm::Value *opaque(llvm::Value *v);
  /// Conditional branch to `no` when !cond, continuing in a new block.
  void require(llvm::Value *cond, llvm::BasicBlock *no,
               const llvm::Twine &name);
  llvm::Value *callHelper(Helper id, llvm::Type *ret,
                          llvm::ArrayRef<llvm::Value *> args);
  void ret(XdpAction a);
  /// RFC 1624 incremental update of a 16-bit one's complement checksum:
  /// each (old, new) pair is a 16-bit word of the covered data as loaded
  /// from the packet (byte order does not matter as long as it is the same
  /// for all). Returns the new checksum in the same order.
  llvm::Value *
  csumReplace(llvm::Value *csum,
              llvm::ArrayRef<std::pair<llvm::Value *, llvm::Value *>> words);
  /// The two 16-bit halves of an i32, for csumReplace.
  std::pair<llvm::Value *, llvm::Value *> halves(llvm::Value *v32);
  /// ip_decrease_ttl()'s checksum update for a TTL one lower: the IPv4
  /// header checksum (i16) as loaded from the packet, little-endian, gains
  /// htons(0x0100) = 1 with the end-around carry. Returns it in the same
  /// order.
  llvm::Value *ttlDecrementCsum(llvm::Value *csum);

private:
  llvm::AllocaInst *u32Key_ = nullptr;
  unsigned opaqueSeq_ = 0; ///< llvm.bpf.passthrough's sequence numbers
};

/// Marks the back edge `br` of a loop as not to be unrolled: the bounds are
/// for the verifier, and an unrolled walk only makes the program longer.
void noUnroll(llvm::BranchInst *br);

} // namespace r2x::backend
