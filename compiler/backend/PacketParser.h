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

/// SSA values describing a valid IPv4 packet. Integers are in host order.
struct Packet {
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
};

/// Emits the walk from the function's entry. On return the builder sits in
/// the block where a valid IPv4 packet is being processed; every other frame
/// has gone to `pass`.
Packet emitPacketParse(Codegen &cg, llvm::Value *ctxArg,
                       llvm::BasicBlock *pass);

} // namespace r2x::backend
