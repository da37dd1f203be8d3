//===- compiler/backend/Scaffold.h - shared scaffolding ---------*- C++ -*-===//
//
/// \file
/// The scaffolding the two code generators (XdpCodegen.cpp for iptables,
/// U32Codegen.cpp for tc u32) share, each piece in one place: the program
/// function the object contract names, the context loads, the counter map
/// and its bump, the `-i` map, the Ethernet header and VLAN tag test, and
/// the object's epilogue (metadata, license, BTF). Names and layouts come
/// from runtime/contract/Object.h.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/Codegen.h"

#include <string>

namespace r2x::backend {

/// The program: external function `rule2xdp` in section `xdp`, `int
/// (struct xdp_md *ctx)`, with no unwind tables (no .eh_frame). Its
/// argument is named, as the kernel wants every BTF parameter to be.
llvm::Function *createProgram(llvm::Module &m);

/// ctx->data and ctx->data_end as packet pointers, into cg.data and
/// cg.dataEnd. With `ingressIfindex`, also reads ctx->ingress_ifindex and
/// returns it (i32); otherwise returns null. The context is read through
/// llvm.preserve.static.offset, so no pass can turn a read into a load from
/// a modified context pointer.
llvm::Value *loadPacketPointers(Codegen &cg, llvm::Value *ctxArg,
                                bool ingressIfindex = false);

/// r2x_counters with `slots` slots (at least one) and its BTF.
llvm::GlobalVariable *declareCounters(BtfBuilder &btf, unsigned slots);
/// r2x_ifmatch with `entries` entries and its BTF.
llvm::GlobalVariable *declareIfmatch(BtfBuilder &btf, uint32_t entries);
/// Adds one packet of `bytes` (i32 or i64) to counter `slot`, using the
/// stack slot `key` (an i32) for the lookup's key.
void bumpCounter(Codegen &cg, llvm::GlobalVariable *counters,
                 llvm::AllocaInst *key, unsigned slot, llvm::Value *bytes);
/// The same for a slot known only at run time (an i32).
void bumpCounter(Codegen &cg, llvm::GlobalVariable *counters,
                 llvm::AllocaInst *key, llvm::Value *slot, llvm::Value *bytes);

/// The Ethernet header: branches to `tooShort` unless the frame holds one,
/// then returns its EtherType (i16, host order).
llvm::Value *emitEthernet(Codegen &cg, llvm::BasicBlock *tooShort);
/// True (i1) when `etype` is an 802.1Q or 802.1ad tag.
llvm::Value *isVlanTag(Codegen &cg, llvm::Value *etype);

/// The object's epilogue: the metadata text, the license, then the debug
/// info the BPF backend turns into BTF.
void finishObject(BtfBuilder &btf, const std::string &metaText);

} // namespace r2x::backend
