//===- compiler/backend/PacketParser.h - L2/L3 parsing for XDP --*- C++ -*-===//
//
/// \file
/// Emits the header walk every program starts with and validates IPv4 the
/// way the kernel's ip_rcv_core() does, so a frame the kernel would discard
/// before netfilter is handed to the kernel (XDP_PASS) untouched:
///   Ethernet; up to two VLAN tags (802.1Q 0x8100, 802.1ad 0x88a8);
///   EtherType 0x0800, else pass; version 4 and IHL >= 5, else pass;
///   IHL*4 <= tot_len and tot_len inside the frame, else pass.
/// L4 reads are later bounded by tot_len (Ethernet padding is not data).
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Codegen.h"

namespace r2x::backend {

/// What every frame has once its Ethernet header and tags are read.
struct L2 {
  llvm::Value *etype = nullptr;    ///< i16 EtherType after the tags
  llvm::Value *l3off = nullptr;    ///< i64 offset of the L3 header
  llvm::Value *ifindex = nullptr;  ///< i32 ctx->ingress_ifindex
  llvm::Value *vidOuter = nullptr; ///< i16, 0 if untagged
  llvm::Value *vidInner = nullptr; ///< i16, 0 unless QinQ
};

/// Bounds of the extension-header walk (ipv6_find_hdr has none: it stops
/// at the packet's end). A header chain longer than this is refused by the
/// rules that need it (hotdrop), never passed unchecked.
constexpr unsigned kMaxIpv6ExtHeaders = 8;

/// SSA values describing a valid IPv4 or IPv6 packet. Integers are in host
/// order. For IPv6, `ihl` is the offset of the upper-layer header the walk
/// found and `totLen` is 40 + payload length, so the transport-header code
/// is the same for both families.
struct Packet {
  bool v6 = false;
  llvm::Value *ifindex = nullptr;  ///< i32 ctx->ingress_ifindex
  llvm::Value *vidOuter = nullptr; ///< i16, 0 if untagged
  llvm::Value *vidInner = nullptr; ///< i16, 0 unless QinQ
  llvm::Value *l3 = nullptr;       ///< ptr to the IPv4 header
  llvm::Value *ihl = nullptr;      ///< i32 header length in bytes (20..60)
  llvm::Value *totLen = nullptr;   ///< i32 IPv4 total length
  llvm::Value *tos = nullptr;      ///< i8
  llvm::Value *ttl = nullptr;      ///< i8
  llvm::Value *proto = nullptr;    ///< i8
  llvm::Value *fragWord = nullptr; ///< i16 flags and fragment offset
  llvm::Value *fragOff = nullptr;  ///< i16 fragment offset (8-byte units)
  llvm::Value *saddr = nullptr;    ///< i32
  llvm::Value *daddr = nullptr;    ///< i32
  llvm::Value *saddrRaw = nullptr; ///< i32 as on the wire (for fib lookup)
  llvm::Value *daddrRaw = nullptr; ///< i32 as on the wire
  llvm::Value *l4 = nullptr;       ///< ptr to l3 + ihl
  // IPv6 only.
  llvm::Value *saddr6[4] = {}; ///< i32 words as on the wire
  llvm::Value *daddr6[4] = {};
  llvm::Value *flowWord = nullptr;   ///< i32 first header word as on the wire
  llvm::Value *walkOk = nullptr;     ///< i1 ipv6_find_hdr() succeeded
  llvm::Value *upperProto = nullptr; ///< i8 the protocol it found
  /// i1 the walk passed a fragment header (any fragment, atomic ones too).
  llvm::Value *fragHeader = nullptr;
};

/// Ethernet and up to two VLAN tags, from the function's entry. Frames too
/// short for them go to `pass`.
L2 emitL2(Codegen &cg, llvm::Value *ctxArg, llvm::BasicBlock *pass);

/// IPv4 validated as ip_rcv_core() does; every other frame goes to `pass`.
Packet emitIpv4(Codegen &cg, const L2 &l2, llvm::BasicBlock *pass);

/// IPv6 validated as ip6_rcv_core() does, then the extension headers walked
/// as ipv6_find_hdr(target = -1) walks them.
Packet emitIpv6(Codegen &cg, const L2 &l2, llvm::BasicBlock *pass);

} // namespace r2x::backend
