//===- compiler/backend/Nat.h - DNAT and its forwarding path ----*- C++ -*-===//
//
/// \file
/// Destination NAT with the kernel's meaning, in XDP (IPv4 and IPv6; one
/// NatLowering per family).
///
/// netfilter consults the nat table only for the first packet of a
/// connection; conntrack then translates every later packet of it, in both
/// directions. rule2xdp keeps its own connection table for that, the LRU
/// hash map `r2x_nat` (`r2x_nat6` for IPv6), shared by the program on every
/// interface it is loaded on (`--load b0,b1`). Its key and value are
/// contract::NatKey and NatValue (runtime/contract/Object.h): the
/// connection's addresses, ports and protocol as on the wire, and the
/// translation for the original direction (destination addr:port) or for a
/// reply (source addr:port, the un-DNAT conntrack does in POSTROUTING).
/// A DNAT rule that binds a connection writes both entries. A packet with an
/// entry skips the nat chain, as in the kernel.
///
/// Translated packets are forwarded by the program itself after the
/// FORWARD chain accepted them (bpf_fib_lookup, TTL decrement, MAC rewrite,
/// bpf_redirect_map through the DEVMAP_HASH `r2x_tx` the loader fills with
/// the namespace's devices). Whatever that fast path cannot do as the kernel
/// would (no neighbour entry, IP options, VLAN tags, a device not in the
/// map) goes to the kernel: a packet in the original direction already
/// translated (the kernel forwards it as a plain routed packet), a reply
/// untranslated (see docs/nat.md for what that means).
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/PacketParser.h"
#include "compiler/ir/IR.h"

namespace r2x::backend {

struct NatShape; ///< a connection table's layout (Nat.cpp)

class NatLowering {
public:
  /// Declares the family's connection table (r2x_nat or r2x_nat6); `tx`
  /// is the DEVMAP_HASH r2x_tx both families redirect through.
  NatLowering(Codegen &cg, BtfBuilder &btf, bool v6, llvm::GlobalVariable *tx);
  /// Declares r2x_tx (once per program).
  static llvm::GlobalVariable *declareTx(BtfBuilder &btf);

  /// At the start of the IPv4 path: no translation yet.
  void begin();
  bool v6() const { return v6_; }

  /// The connection-table step of nat PREROUTING. Packets conntrack would
  /// not translate (fragments, short headers, ICMP errors, protocols
  /// rule2xdp does not translate) and packets with a binding (translated
  /// here) continue at `after`. Leaves the insert point where the nat chain
  /// must be evaluated: a packet that may open a connection and has none.
  void emitLookup(Packet &pk, llvm::BasicBlock *after);

  /// A DNAT rule's target: bind the connection, translate this packet.
  void emitBind(Packet &pk, const ir::NatTarget &t);

  /// After nat PREROUTING: the header fields later chains and the routing
  /// decision read, reloaded (a translated packet has a new destination).
  void reloadDestination(Packet &pk);

  /// After the FORWARD chains accepted a packet: untranslated packets go to
  /// `pass` (the kernel forwards them); translated ones are forwarded here
  /// when possible. `fib` holds the bpf_fib_lookup result `fibRc`.
  void emitForward(Packet &pk, llvm::Value *fibRc, llvm::Value *fib,
                   llvm::BasicBlock *pass);

private:
  /// Rewrites the destination (dst) or source address and port, with the IP
  /// and transport checksums updated incrementally.
  using Addr = std::vector<llvm::Value *>; ///< i32 words as on the wire
  void rewrite(Packet &pk, bool dst, const Addr &addr, llvm::Value *portRaw,
               llvm::BasicBlock *skip);
  void storeKey(const Addr &saddr, const Addr &daddr, llvm::Value *sport,
                llvm::Value *dport, llvm::Value *proto);
  void storeValue(const Addr &addr, llvm::Value *port, uint8_t dir);
  /// emitLookup's pieces: a transport header of `need` bytes conntrack can
  /// read, else to `after`; its ports into the key; an ICMP query or reply
  /// keyed by its identifier (true for a query: it may open a connection);
  /// a bound connection's packet translated (original direction) or marked
  /// for the reply's translation after FORWARD.
  void requireHeader(Packet &pk, uint64_t need, llvm::BasicBlock *after);
  void keyPorts(Packet &pk, uint64_t need, llvm::BasicBlock *after);
  llvm::Value *keyIcmpQuery(Packet &pk, llvm::BasicBlock *after);
  void applyBinding(Packet &pk, llvm::Value *binding, llvm::BasicBlock *after);
  Addr loadAddr(llvm::Value *p);
  Addr source(const Packet &pk) const;
  Addr destination(const Packet &pk) const;
  unsigned words() const { return v6_ ? 4 : 1; }

  Codegen &cg_;
  bool v6_;
  const NatShape &shape_; ///< the table's layout
  llvm::GlobalVariable *nat_ = nullptr, *tx_ = nullptr;
  llvm::AllocaInst *key_ = nullptr, *val_ = nullptr;
  llvm::AllocaInst *state_ = nullptr; ///< i32 NatState (Nat.cpp)
  llvm::AllocaInst *replyAddr_ = nullptr, *replyPort_ = nullptr; ///< reply's
  llvm::AllocaInst *sport_ = nullptr, *dport_ = nullptr; ///< raw i16 of the key
};

} // namespace r2x::backend
