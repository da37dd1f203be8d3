//===- compiler/backend/ClassifyCodegen.h - a classified run in BPF -*- C++
//-*-===//
//
/// \file
/// The program's side of the classifier (compiler/classify/Classify.h,
/// docs/classifier.md): a run's decision tree, leaf lists and rule records
/// become read-only globals (sections `.rodata.cls_*`, which libbpf turns
/// into frozen ARRAY maps it fills itself), and one fixed piece of code
/// walks them: the key, then a call of the run's global function
/// (`r2x_cls<id>_run`, verified once on its own) with a bounded walk down
/// the tree and a scan of the leaf that tests each listed rule, counts a
/// match, and returns what its target says, which the caller carries out
/// as the straight-line code would. The scan is a bounded loop, or for runs
/// with long leaves (Options::iterLeaf) a bpf_iter_num loop. A run
/// classified as a forest (several trees) has a second global function,
/// `r2x_cls<id>_tree`, which the run's calls once a tree (docs/classifier.md,
/// "Forests").
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/Codegen.h"
#include "compiler/backend/PacketParser.h"
#include "compiler/classify/Classify.h"

#include <llvm/IR/GlobalVariable.h>

#include <string>
#include <vector>

namespace r2x::backend {

/// What a run's code needs of the program around it.
struct RunContext {
  Codegen &cg;
  BtfBuilder &btf;
  const Packet &pk;
  llvm::Value *hdr;                ///< the r2x_hdr value (contract::Hdr)
  llvm::GlobalVariable *counters;  ///< r2x_counters
  llvm::BasicBlock *accept, *drop; ///< the chain's ACCEPT, and XDP_DROP
  llvm::BasicBlock *aborted;       ///< XDP_ABORTED: data the walk cannot use
};

/// A read-only array of u32 words in `section` (a `.rodata.*` section:
/// libbpf makes it one frozen ARRAY map whose one value is the section, at
/// most KMALLOC_MAX_SIZE, 4 MiB here), named `name`. Not `constant` to
/// LLVM: read it with volatile loads, bounds-checked.
llvm::GlobalVariable *wordsGlobal(llvm::Module &m, const std::string &name,
                                  const char *section,
                                  const std::vector<uint32_t> &words);

/// At most this many functions of classified runs a program (one a run, two
/// a forest): the kernel takes at most 256 subprograms (BPF_MAX_SUBPROGS)
/// with the program itself and its other subprograms. Runs past it are
/// straight-line code.
constexpr unsigned kMaxRuns = 240;

/// Once per packet, after the header fields are in `hdr` (contract::Hdr),
/// in a program with classified runs: the port dimensions of the runs' key
/// (Hdr::sport_key, Hdr::dport_key) from the conditions xt_tcpudp tests
/// before the ports. Each run's call reads them back: decided at every
/// call, their five paths (later fragment, other protocol, short header,
/// tcp, udp) multiplied the verifier's states at every run. `ifmask`: the
/// packet's -i mask (contract::IfMasks::in) for the runs' -i rules, null
/// when the program has none.
void storeRunKey(Codegen &cg, const Packet &pk, llvm::Value *hdr,
                 llvm::Value *ifmask);

/// Emits the run `rules` (each one classify::unclassifiable() accepts) at
/// the builder's insertion point, ending in ctx.accept, ctx.drop, or `next`
/// (the rule after the run) when no rule of the run decides. `id` names its
/// globals (r2x_cls<id>_*), one id per classified run of the program. A run
/// whose tree would outgrow classify::wordBudget() is cut in two halves,
/// each classified on its own, the second after the first (first-match
/// order is the order of the pieces), while ids are left: at most `ids`
/// from `id` on. Returns how many ids it took.
unsigned emitClassifiedRun(const RunContext &ctx,
                           const std::vector<const ir::Rule *> &rules,
                           const classify::Options &o, unsigned id,
                           unsigned ids, llvm::BasicBlock *next);

} // namespace r2x::backend
