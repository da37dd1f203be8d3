//===- compiler/backend/ClassifyCodegen.cpp - a classified run in BPF -----===//
//
/// \file
/// See ClassifyCodegen.h. The meanings are XdpCodegen.cpp's, read from data:
/// ip_packet_match()'s address and protocol tests first, then xt_tcpudp's
/// (a later fragment does not match, a TCP fragment at offset 1 or a header
/// cut short by tot_len or by the frame hotdrops, the ports in range). The
/// key folds those conditions into the port dimensions (Classify.h), so
/// the tree and the matcher agree on them.
///
/// The verifier: both loops have a constant bound (the tree's depth, the
/// longest leaf), and every index read from the data is checked against
/// its global's length before use, so each access is a bounded offset into
/// a map value. The walk and the scan are a global function of their own
/// per run (runFunction()): the verifier follows a bounded loop iteration
/// by iteration, and inline it did so once for every distinct state the
/// caller brought (VLAN depth, packet ranges, the port key's constants),
/// each costing depth x leaf x body; big rulesets went past the limit of
/// 1,000,000 instructions (docs/classifier.md, "The verifier's cost"). A
/// global function is verified once, from unknown arguments, and the call
/// costs each caller path one instruction and an unknown result.
//===----------------------------------------------------------------------===//
#include "compiler/backend/ClassifyCodegen.h"

#include "compiler/backend/Kernel.h"
#include "compiler/backend/Scaffold.h"
#include "runtime/contract/Object.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsBPF.h>
#include <llvm/IR/Metadata.h>

#include <netinet/in.h>

namespace r2x::backend {

using namespace llvm;
namespace cls = classify;

/// (ClassifyCodegen.h)
GlobalVariable *wordsGlobal(Module &m, const std::string &name,
                            const char *section,
                            const std::vector<uint32_t> &words) {
  std::vector<uint32_t> w = words;
  if (w.empty())
    w.push_back(0); // an empty global would be an empty map value
  Constant *init = ConstantDataArray::get(m.getContext(), w);
  // Not `constant` to LLVM, and read with volatile loads: an optimiser
  // that knows the words folds the bounds checks away (every index in the
  // data is in range), and the verifier, which does not, refuses the
  // access. libbpf freezes the map all the same.
  auto *gv = new GlobalVariable(m, init->getType(), /*isConstant=*/false,
                                GlobalValue::ExternalLinkage, init, name);
  gv->setSection(section);
  gv->setAlignment(Align(8));
  gv->setDSOLocal(true);
  return gv;
}

namespace {

/// The sections of the classifier's globals: each is one frozen ARRAY map
/// whose one value is the section (at most KMALLOC_MAX_SIZE, 4 MiB here).
constexpr const char *kNodeSection = ".rodata.cls_node",
                     *kLeafSection = ".rodata.cls_leaf",
                     *kRuleSection = ".rodata.cls_rule";

/// What a run's function returns to its caller, which carries it out.
/// Anything else is XDP_ABORTED.
enum RunResult : uint32_t { RunNext, RunAccept, RunDrop, RunAborted };

/// The run's arguments: the r2x_hdr value holding the key (contract::Hdr,
/// the port dimensions as storeRunKey() put them), and tot_len for the
/// byte counters. The functions read the key from there, afresh at each
/// leaf entry: kept in a register (or a stack slot), a key field each
/// entry's test compared with the rule's constants stayed known on that
/// entry's paths, and the verifier, which follows the scan entry by entry,
/// kept a state for every combination (a leaf of 16 rules with ports:
/// 466,000 instructions for one function). It does not track map memory.
enum RunArgs : unsigned { ArgHdr, ArgLen, NArgs };

/// A forest's tree function `r2x_cls<id>_tree` (docs/classifier.md,
/// "Forests") takes the r2x_hdr value (as RunArgs), the tree's root with the
/// best event so far, and tot_len with what to do (TreeMode). An event is a
/// rule's index times 2, plus 1 for a hotdrop; the earliest wins. Find returns
/// the earliest event of the tree that is earlier than the one given; TreeCount
/// counts instead the count-only rules of the tree that match before the event
/// given and returns it; TreeSkip does neither (the tree's rules all come after
/// the event); with TreeFinish the function then carries out the event: counts
/// its rule and returns a RunResult (the last call of a run, which saves
/// the run one call). TreeAborted: data the walk cannot use.
enum TreeArgs : unsigned { TArgHdr, TArgRootBest, TArgLenMode, NTreeArgs };
enum TreeMode : uint64_t {
  TreeFind = 0,
  TreeCount = 1,
  TreeFinish = 2,
  TreeSkip = 4
};
constexpr uint64_t TreeNoEvent = 0xffffffffu, TreeAborted = uint64_t(1) << 32;

/// The run's function `r2x_cls<id>_run` (RunArgs), or a forest's tree
/// function `r2x_cls<id>_tree` (TreeArgs), global: the verifier checks a
/// global function once, on its own, from unknown arguments, and a call
/// to it costs the caller one instruction whatever the path.
Function *runFunction(Module &m, BtfBuilder &btf, unsigned id, bool tree) {
  LLVMContext &c = m.getContext();
  Type *i64 = Type::getInt64Ty(c);
  unsigned n = tree ? unsigned(NTreeArgs) : unsigned(NArgs);
  std::vector<Type *> params(n, i64);
  params[0] = PointerType::get(c, 0);
  FunctionType *ft =
      FunctionType::get(tree ? i64 : Type::getInt32Ty(c), params, false);
  Function *f = Function::Create(
      ft, GlobalValue::ExternalLinkage,
      "r2x_cls" + std::to_string(id) + (tree ? "_tree" : "_run"), m);
  f->addFnAttr(Attribute::NoUnwind);
  f->addFnAttr(Attribute::NoInline);
  const char *names[NArgs] = {"hdr", "tot_len"};
  const char *treeNames[NTreeArgs] = {"hdr", "root_best", "len_mode"};
  for (unsigned a = 0; a < n; ++a)
    f->getArg(a)->setName(tree ? treeNames[a] : names[a]);
  // The verifier takes a global function's pointer argument for memory of
  // its BTF type's size that may be null: the caller passes the r2x_hdr
  // value, the function checks it (RunEmitter::readKey()).
  std::vector<DIType *> types(n, btf.u64());
  types[0] = btf.pointerTo(btf.structType(contract::HdrLayout));
  btf.function(f, tree ? btf.u64() : btf.int32(), types);
  return f;
}

/// The run's function body: the walk down the tree and the leaf's scan.
class RunEmitter {
public:
  /// `tree`: the forest's tree function (TreeArgs), else the run's
  /// function of a one-tree run (RunArgs).
  RunEmitter(const RunContext &ctx, const cls::Image &img, unsigned id,
             bool iter, bool tree)
      : x_(ctx), fn_(runFunction(ctx.cg.m, ctx.btf, id, tree)),
        cg_(ctx.cg.m, fn_), b_(cg_.b), img_(img), id_(id), iter_(iter),
        tree_(tree) {}

  /// Emits the function and returns it.
  Function *emit();

private:
  void emitExits();
  void emitTreeExits();
  /// The tree function's TreeFinish: `event`, carried out.
  void finish(Value *event);
  /// A tree function's return of `v` (after the iterator's destruction).
  void leave(Value *v) {
    b_.CreateStore(v, result_);
    b_.CreateBr(exits_.next);
  }
  void readKey(Value *hdr);
  static uint64_t keyOffset(unsigned d);
  /// Dimension `d` of the key, read again from r2x_hdr (RunArgs says why).
  Value *fresh(unsigned d) {
    return b_.CreateLoad(cg_.i32, cg_.at(hdr_, keyOffset(d)),
                         /*isVolatile=*/true);
  }
  std::pair<Value *, Value *> walk();
  void scan(Value *first, Value *count);
  /// The scan's loop: its head (the entry index `i`, on to `next` when the
  /// leaf is done) and its back edge from `step`. Bounded: a counter up to
  /// the longest leaf. Iterator: bpf_iter_num over the same range, and the
  /// scan's exits (exits_) destroy the iterator first, as the verifier
  /// requires of every path out.
  Value *loopHead(Value *count);
  void loopTail(BasicBlock *step);
  Function *iterKfunc(const char *name);
  /// A leaf entry's rule record (cls::RuleRec), read a word at a time.
  struct Rule {
    Value *entry; ///< the leaf entry (index and LeafCertain)
    Value *index; ///< the rule's index in the run (i32)
    Value *base;  ///< the record's first word in the rules global
    Value *control, *flags;
  };
  Rule entry(Value *first, Value *i);
  void record(Rule &r);
  /// The rule's counter slot, read where it is counted.
  Value *slot(const Rule &r) {
    return b_.CreateAnd(field(r, offsetof(cls::RuleRec, slot)), cls::SlotMask);
  }
  void ifaceMatch(const Rule &r, BasicBlock *step);
  /// The record's word at byte offset `off` of cls::RuleRec.
  Value *field(const Rule &r, uint64_t off) {
    return word(rules_, b_.CreateAdd(r.base, b_.getInt64(off / 4)));
  }
  Value *flag(const Rule &r, uint32_t f) {
    return b_.CreateICmpNE(b_.CreateAnd(r.flags, f), b_.getInt32(0));
  }
  Value *ipMatch(const Rule &r);
  /// The flags that `!` a test: a rule with none is a plainMatch().
  static constexpr uint32_t kNegFlags =
      cls::SrcNeg | cls::DstNeg | cls::ProtoNeg | cls::SportNeg | cls::DportNeg;
  void plainMatch(const Rule &r, BasicBlock *l4, BasicBlock *matched,
                  BasicBlock *step);
  /// `hot`: where a hotdrop goes.
  void portsMatch(const Rule &r, BasicBlock *l4ports, BasicBlock *matched,
                  BasicBlock *step, BasicBlock *hot);
  void act(const Rule &r, BasicBlock *step);
  void countEvent(const Rule &r);
  /// Word `k` (i64, already bounded) of the global `g`.
  Value *word(GlobalVariable *g, Value *k) {
    Value *p = b_.CreateGEP(cg_.i32, g, k);
    return b_.CreateLoad(cg_.i32, p, /*isVolatile=*/true);
  }
  /// `k` (i32) as an i64 index, continuing only if it is below `n`. The
  /// index goes through an opaque copy that both the check and every use
  /// take, so LLVM can neither rewrite the check (as induction variable
  /// passes do) nor widen the index another way: the verifier sees the
  /// register it bounded used as the offset.
  Value *bounded(Value *k, size_t n, const char *what) {
    Value *wide = cg_.opaque(b_.CreateZExt(k, cg_.i64));
    cg_.require(b_.CreateICmpULT(wide, b_.getInt64(n)), exits_.aborted, what);
    return wide;
  }

  const RunContext &x_;
  Function *fn_;
  Codegen cg_; ///< for fn_
  IRBuilder<> &b_;
  const cls::Image &img_;
  unsigned id_;
  bool iter_; ///< the scan runs on bpf_iter_num
  bool tree_; ///< a forest's tree function
  Value *root_ = nullptr, *best_ = nullptr, *mode_ = nullptr; ///< tree_
  AllocaInst *result_ = nullptr; ///< tree_: what the function returns
  /// Where the code goes on XDP_ABORTED, XDP_DROP and the chain's ACCEPT
  /// (returns of RunResult, or in an iterator scan blocks that destroy it
  /// first); `next` returns RunNext.
  struct Exits {
    BasicBlock *aborted, *drop, *accept, *next;
  } exits_ = {}, plain_ = {};
  AllocaInst *iterSlot_ = nullptr;   ///< struct bpf_iter_num
  AllocaInst *counterKey_ = nullptr; ///< r2x_counters' key
  Value *totLen_ = nullptr;
  PHINode *counter_ = nullptr; ///< the bounded scan's index
  BasicBlock *loop_ = nullptr; ///< the scan's head
  Value *hdr_ = nullptr;       ///< the r2x_hdr value (ArgHdr)
  Value *key_[cls::Dims] = {}; ///< read once, for the walk
  GlobalVariable *nodes_ = nullptr, *leaves_ = nullptr, *rules_ = nullptr;
};

/// The walk from the root to a leaf. Leaves the builder in the leaf's
/// block and returns its first entry and its count.
std::pair<Value *, Value *> RunEmitter::walk() {
  BasicBlock *pre = b_.GetInsertBlock();
  BasicBlock *loop = cg_.block("cls.walk");
  BasicBlock *cut = cg_.block("cls.cut");
  BasicBlock *leaf = cg_.block("cls.leaf");
  b_.CreateBr(loop);
  b_.SetInsertPoint(loop);
  PHINode *node = b_.CreatePHI(cg_.i32, 2, "cls.node");
  PHINode *depth = b_.CreatePHI(cg_.i32, 2, "cls.depth");
  node->addIncoming(tree_ ? root_ : b_.getInt32(0), pre);
  depth->addIncoming(b_.getInt32(0), pre);
  Value *w = b_.CreateShl(bounded(node, img_.nodes.size(), "cls.node.ok"), 1);
  Value *a = word(nodes_, w);
  Value *nb = word(nodes_, b_.CreateOr(w, 1));
  b_.CreateCondBr(
      b_.CreateICmpNE(b_.CreateAnd(nb, cls::NodeLeaf), b_.getInt32(0)), leaf,
      cut);

  b_.SetInsertPoint(cut);
  Value *dim = b_.CreateAnd(nb, 0xff);
  Value *shift = b_.CreateAnd(b_.CreateLShr(nb, 8), 0x1f);
  Value *mask = b_.CreateLShr(nb, 16);
  Value *k = key_[cls::Dims - 1];
  for (int d = int(cls::Dims) - 2; d >= 0; --d)
    k = b_.CreateSelect(b_.CreateICmpEQ(dim, b_.getInt32(uint32_t(d))), key_[d],
                        k);
  Value *child = b_.CreateAdd(a, b_.CreateAnd(b_.CreateLShr(k, shift), mask));
  Value *deeper = b_.CreateAdd(depth, b_.getInt32(1));
  node->addIncoming(child, b_.GetInsertBlock());
  depth->addIncoming(deeper, b_.GetInsertBlock());
  // The builder's deepest leaf is at maxDepth: a walk past it is bad data.
  noUnroll(b_.CreateCondBr(
      b_.CreateICmpULE(deeper, b_.getInt32(img_.stats.maxDepth)), loop,
      plain_.aborted));

  b_.SetInsertPoint(leaf);
  return {a, b_.CreateAnd(nb, cls::NodeCountMask)};
}

/// The leaf's rules in order: test (unless certain), count, act.
void RunEmitter::scan(Value *first, Value *count) {
  loop_ = cg_.block("cls.scan");
  BasicBlock *l4 = cg_.block("cls.l4"), *l4ports = cg_.block("cls.l4.ports");
  BasicBlock *matched = cg_.block("cls.matched");
  BasicBlock *step = cg_.block("cls.step");
  BasicBlock *test = cg_.block("cls.test");
  Value *i = loopHead(count);
  Rule r = entry(first, i);
  Value *event = nullptr;
  if (tree_) {
    // Entries are in rule order: none from the event given on can be
    // earlier.
    event = b_.CreateShl(b_.CreateZExt(r.index, cg_.i64), 1);
    cg_.require(b_.CreateICmpULT(event, best_), exits_.next, "cls.earlier");
  }
  record(r);
  b_.CreateCondBr(
      b_.CreateICmpNE(b_.CreateAnd(r.entry, cls::LeafCertain), b_.getInt32(0)),
      matched, test);

  // A rule without `!` (most of a big ruleset) is tested by plainMatch();
  // the general test, which `!`-s every result by its flag, is for the
  // rest.
  BasicBlock *general = cg_.block("cls.general");
  BasicBlock *plain = cg_.block("cls.plain");
  b_.SetInsertPoint(test);
  if (img_.ifaces)
    ifaceMatch(r, step);
  b_.CreateCondBr(flag(r, kNegFlags), general, plain);
  b_.SetInsertPoint(plain);
  plainMatch(r, l4, matched, step);
  b_.SetInsertPoint(general);
  cg_.require(ipMatch(r), step, "cls.ip.ok");
  b_.CreateCondBr(flag(r, cls::L4), l4, matched);
  b_.SetInsertPoint(l4);
  BasicBlock *hot = exits_.drop;
  if (tree_) {
    hot = cg_.block("cls.hotdrop");
    IRBuilder<>::InsertPointGuard g(b_);
    b_.SetInsertPoint(hot);
    leave(b_.CreateOr(event, 1));
  }
  portsMatch(r, l4ports, matched, step, hot);
  b_.SetInsertPoint(matched);
  if (!tree_) {
    act(r, step);
  } else {
    // Find: a terminal rule is the tree's event. Count: a count-only rule
    // before the event is counted.
    //
    // Each test is one branch on one word made in the entry, opaque to
    // LLVM: split into a branch on the mode alone, it let the verifier
    // learn the mode (a value live through the whole scan) on some paths
    // and not others, so its states at the loop head stopped matching and
    // multiplied with every entry (a forest's leaf of 60 `-i` rules cost
    // 896,377 instructions; now about 1,000 an entry).
    BasicBlock *found = cg_.block("cls.found");
    BasicBlock *counted = cg_.block("cls.count");
    Value *verdict = b_.CreateZExt(b_.CreateLShr(r.control, 24), cg_.i64);
    Value *counting = b_.CreateAnd(mode_, TreeCount); // 1: Count, 0: Find
    // Found when finding and terminal: (counting | !terminal) == 0.
    Value *notFound = cg_.opaque(b_.CreateOr(
        counting, b_.CreateZExt(b_.CreateICmpEQ(
                                    verdict, b_.getInt64(cls::VerdictContinue)),
                                cg_.i64)));
    b_.CreateCondBr(b_.CreateICmpEQ(notFound, b_.getInt64(0)), found, counted);
    b_.SetInsertPoint(found);
    leave(event);
    b_.SetInsertPoint(counted);
    BasicBlock *bump = cg_.block("cls.bump");
    // Bumped when counting and count-only: ((counting ^ 1) | verdict) == 0.
    Value *noBump = cg_.opaque(
        b_.CreateOr(b_.CreateXor(counting, b_.getInt64(1)), verdict));
    b_.CreateCondBr(b_.CreateICmpNE(noBump, b_.getInt64(0)), step, bump);
    b_.SetInsertPoint(bump);
    bumpCounter(cg_, x_.counters, counterKey_, slot(r), totLen_);
    b_.CreateBr(step);
  }

  loopTail(step);
}

Value *RunEmitter::loopHead(Value *count) {
  BasicBlock *pre = b_.GetInsertBlock();
  if (!iter_) {
    b_.CreateBr(loop_);
    b_.SetInsertPoint(loop_);
    counter_ = b_.CreatePHI(cg_.i32, 2, "cls.i");
    counter_->addIncoming(b_.getInt32(0), pre);
    cg_.require(b_.CreateICmpULT(counter_, count), exits_.next, "cls.more");
    return counter_;
  }
  Function *destroy = iterKfunc("bpf_iter_num_destroy");
  iterSlot_ = cg_.stackSlot(cg_.i64, 8, "cls.iter");
  auto via = [&](BasicBlock *to, const char *name) {
    BasicBlock *bb = cg_.block(name);
    IRBuilder<> t(bb);
    t.CreateCall(destroy, {iterSlot_});
    t.CreateBr(to);
    return bb;
  };
  BasicBlock *done = via(plain_.next, "cls.iter.done");
  exits_ = {via(plain_.aborted, "cls.iter.aborted"),
            plain_.drop ? via(plain_.drop, "cls.iter.drop") : nullptr,
            plain_.accept ? via(plain_.accept, "cls.iter.accept") : nullptr,
            done};
  b_.CreateCall(iterKfunc("bpf_iter_num_new"),
                {iterSlot_, b_.getInt32(0), b_.getInt32(img_.stats.maxLeaf)});
  b_.CreateBr(loop_);
  b_.SetInsertPoint(loop_);
  Value *at = b_.CreateCall(iterKfunc("bpf_iter_num_next"), {iterSlot_});
  cg_.require(b_.CreateIsNotNull(at), done, "cls.iter.more");
  Value *i = b_.CreateLoad(cg_.i32, at, "cls.i");
  cg_.require(b_.CreateICmpULT(i, count), done, "cls.more");
  return i;
}

/// The next entry; a bounded scan's bound is the longest leaf (the count
/// ends sooner).
void RunEmitter::loopTail(BasicBlock *step) {
  b_.SetInsertPoint(step);
  if (iter_) {
    b_.CreateBr(loop_);
    return;
  }
  Value *more = b_.CreateAdd(counter_, b_.getInt32(1));
  counter_->addIncoming(more, step);
  // A bound of 2 let LLVM rewrite the counter as a first-iteration flag,
  // which it kept on the stack where the verifier lost it ("The sequence
  // of 8193 jumps is too complex"). The bound only stops the verifier's
  // walk (the leaf's count ends the scan), so it is never below 3.
  Value *bound = b_.getInt32(std::max(img_.stats.maxLeaf, 3u));
  noUnroll(b_.CreateCondBr(b_.CreateICmpULT(more, bound), loop_, exits_.next));
}

/// The numeric iterator's kfuncs (kernel 6.4+), declared once per program:
/// bpf_iter_num_new(it, start, end), bpf_iter_num_next(it) -> int * (null
/// at the end), bpf_iter_num_destroy(it).
Function *RunEmitter::iterKfunc(const char *name) {
  Module &m = cg_.m;
  if (Function *f = m.getFunction(name))
    return f;
  BtfBuilder &btf = x_.btf;
  DIType *it = btf.pointerTo(btf.kernelStruct("bpf_iter_num", 8, {}));
  std::string n = name;
  Type *ret = n == "bpf_iter_num_new"    ? static_cast<Type *>(cg_.i32)
              : n == "bpf_iter_num_next" ? cg_.ptr
                                         : Type::getVoidTy(cg_.ctx);
  std::vector<Type *> args = {cg_.ptr};
  std::vector<DIType *> argsBtf = {it};
  if (n == "bpf_iter_num_new") {
    args.insert(args.end(), {cg_.i32, cg_.i32});
    argsBtf.insert(argsBtf.end(), {btf.int32(), btf.int32()});
  }
  Function *f = Function::Create(FunctionType::get(ret, args, false),
                                 GlobalValue::ExternalLinkage, name, m);
  f->setSection(".ksyms");
  btf.kfunc(f,
            n == "bpf_iter_num_new"    ? btf.int32()
            : n == "bpf_iter_num_next" ? btf.pointerTo(btf.int32())
                                       : nullptr,
            argsBtf);
  return f;
}

/// The leaf's entry `i` and the head of its rule record.
RunEmitter::Rule RunEmitter::entry(Value *first, Value *i) {
  Rule r;
  Value *li = b_.CreateAdd(first, i);
  r.entry = word(leaves_, bounded(li, img_.leaves.size(), "cls.entry.ok"));
  r.index = b_.CreateAnd(r.entry, cls::LeafIndexMask);
  return r;
}

/// The record of `r`'s rule, and its control word. (Loads are volatile:
/// each is made where it is emitted, so only what a test needs is read.)
void RunEmitter::record(Rule &r) {
  r.base = b_.CreateMul(bounded(r.index, img_.rules.size(), "cls.rule.ok"),
                        b_.getInt64(cls::RuleWords));
  r.control = field(r, offsetof(cls::RuleRec, control));
  r.flags = b_.CreateLShr(r.control, 16);
}

/// A `-i` rule's test (cls::IfaceTest in its slot word): its pattern's bit
/// of the packet's -i mask, read again from r2x_hdr (Hdr::ifmask), `!`-ed
/// by IfaceNeg. ip_packet_match() makes it with the address tests, before
/// any match that could hotdrop; the order among those does not matter.
void RunEmitter::ifaceMatch(const Rule &r, BasicBlock *step) {
  BasicBlock *test = cg_.block("cls.iface");
  BasicBlock *done = cg_.block("cls.iface.done");
  // The record's address made opaque, the word at a constant offset from
  // it: an index `base + 6` that LLVM writes `base | 6` is one the
  // verifier cannot bound (it refused such a load of the slot word).
  Value *rec = cg_.opaque(b_.CreateGEP(cg_.i32, rules_, r.base));
  Value *w = b_.CreateLoad(
      cg_.i32, b_.CreateConstGEP1_64(cg_.i8, rec, offsetof(cls::RuleRec, slot)),
      /*isVolatile=*/true);
  b_.CreateCondBr(b_.CreateICmpSLT(w, b_.getInt32(0)), test, done);
  b_.SetInsertPoint(test);
  Value *mask = b_.CreateLoad(
      cg_.i64, cg_.at(hdr_, offsetof(contract::Hdr, ifmask)), true);
  Value *bit = b_.CreateZExt(
      b_.CreateAnd(b_.CreateLShr(w, cls::IfaceBitShift), cls::IfaceBitMask),
      cg_.i64);
  Value *set = b_.CreateTrunc(b_.CreateLShr(mask, bit), b_.getInt1Ty());
  Value *neg = b_.CreateICmpNE(b_.CreateAnd(w, cls::IfaceNeg), b_.getInt32(0));
  cg_.require(b_.CreateXor(set, neg), step, "cls.iface.ok");
  b_.CreateBr(done);
  b_.SetInsertPoint(done);
}

/// ip_packet_match(): each test `!`-ed by its flag.
Value *RunEmitter::ipMatch(const Rule &r) {
  using R = cls::RuleRec;
  auto masked = [&](Value *v, Value *mask, Value *want, uint32_t neg) {
    Value *eq = b_.CreateICmpEQ(b_.CreateAnd(v, mask), want);
    return b_.CreateXor(eq, flag(r, neg));
  };
  Value *ok = masked(fresh(cls::Src), field(r, offsetof(R, srcMask)),
                     field(r, offsetof(R, srcNet)), cls::SrcNeg);
  ok = b_.CreateAnd(ok, masked(fresh(cls::Dst), field(r, offsetof(R, dstMask)),
                               field(r, offsetof(R, dstNet)), cls::DstNeg));
  return b_.CreateAnd(ok,
                      masked(fresh(cls::Proto),
                             b_.CreateAnd(b_.CreateLShr(r.control, 8), 0xff),
                             b_.CreateAnd(r.control, 0xff), cls::ProtoNeg));
}

/// ipMatch() and portsMatch() of a rule without `!`, in fewer
/// instructions: the address and protocol tests as one word that is zero
/// when all three hold (no truth value is made of each, which BPF has no
/// instruction for), then each port bound as its own branch. A key that
/// says hotdrop or no ports goes to the general port test (`l4`).
void RunEmitter::plainMatch(const Rule &r, BasicBlock *l4, BasicBlock *matched,
                            BasicBlock *step) {
  using R = cls::RuleRec;
  auto diff = [&](Value *v, uint64_t maskOff, uint64_t netOff) {
    return b_.CreateXor(b_.CreateAnd(v, field(r, maskOff)), field(r, netOff));
  };
  Value *d = b_.CreateOr(
      diff(fresh(cls::Src), offsetof(R, srcMask), offsetof(R, srcNet)),
      diff(fresh(cls::Dst), offsetof(R, dstMask), offsetof(R, dstNet)));
  // (proto ^ want) & protoMask, from the control word's two low bytes.
  d = b_.CreateOr(
      d, b_.CreateAnd(b_.CreateAnd(b_.CreateXor(fresh(cls::Proto), r.control),
                                   b_.CreateLShr(r.control, 8)),
                      0xff));
  cg_.require(b_.CreateICmpEQ(d, b_.getInt32(0)), step, "cls.plain.ip");
  BasicBlock *ports = cg_.block("cls.plain.l4");
  b_.CreateCondBr(flag(r, cls::L4), ports, matched);
  b_.SetInsertPoint(ports);
  Value *sp = fresh(cls::Sport), *dp = fresh(cls::Dport);
  cg_.require(b_.CreateICmpULE(sp, b_.getInt32(0xffff)), l4, "cls.plain.ports");
  for (auto [port, off] :
       {std::pair{sp, offsetof(R, sport)}, std::pair{dp, offsetof(R, dport)}}) {
    Value *range = field(r, off);
    cg_.require(b_.CreateICmpUGE(port, b_.CreateAnd(range, 0xffff)), step,
                "cls.plain.lo");
    cg_.require(b_.CreateICmpULE(port, b_.CreateLShr(range, 16)), step,
                "cls.plain.hi");
  }
  b_.CreateBr(matched);
}

/// xt_tcpudp: the key says hotdrop, no ports, or the ports.
void RunEmitter::portsMatch(const Rule &r, BasicBlock *l4ports,
                            BasicBlock *matched, BasicBlock *step,
                            BasicBlock *hot) {
  using R = cls::RuleRec;
  Value *sp = fresh(cls::Sport), *dp = fresh(cls::Dport);
  cg_.require(b_.CreateICmpNE(sp, b_.getInt32(cls::PortShort)), hot,
              "cls.l4.whole");
  b_.CreateCondBr(b_.CreateICmpEQ(sp, b_.getInt32(cls::PortNone)), step,
                  l4ports);
  b_.SetInsertPoint(l4ports);
  auto inRange = [&](Value *port, uint64_t off, uint32_t neg) {
    Value *range = field(r, off);
    Value *lo = b_.CreateAnd(range, 0xffff), *hi = b_.CreateLShr(range, 16);
    Value *in =
        b_.CreateAnd(b_.CreateICmpUGE(port, lo), b_.CreateICmpULE(port, hi));
    return b_.CreateXor(in, flag(r, neg));
  };
  Value *ports = b_.CreateAnd(inRange(sp, offsetof(R, sport), cls::SportNeg),
                              inRange(dp, offsetof(R, dport), cls::DportNeg));
  b_.CreateCondBr(ports, matched, step);
}

/// Count (1 packet, tot_len bytes), then the target.
void RunEmitter::act(const Rule &r, BasicBlock *step) {
  countEvent(r);
  SwitchInst *sw = b_.CreateSwitch(b_.CreateLShr(r.control, 24), step, 2);
  sw->addCase(b_.getInt32(cls::VerdictAccept), exits_.accept);
  sw->addCase(b_.getInt32(cls::VerdictDrop), exits_.drop);
}

/// The function's returns, and its arguments as the key.
void RunEmitter::emitExits() {
  BasicBlock *entry = cg_.block("entry");
  auto ret = [&](RunResult r, const char *name) {
    BasicBlock *bb = cg_.block(name);
    IRBuilder<>(bb).CreateRet(b_.getInt32(r));
    return bb;
  };
  plain_ = exits_ = {ret(RunAborted, "cls.aborted"), ret(RunDrop, "cls.drop"),
                     ret(RunAccept, "cls.accept"), ret(RunNext, "cls.next")};
  b_.SetInsertPoint(entry);
  counterKey_ = cg_.stackSlot(cg_.i32, 4, "cls.counter.key");
  readKey(fn_->getArg(ArgHdr));
  totLen_ = b_.CreateTrunc(fn_->getArg(ArgLen), cg_.i32);
}

/// The key for the walk, read once from the r2x_hdr value the caller
/// passed (null: aborted); the scan reads it again at each entry (fresh()).
void RunEmitter::readKey(Value *hdr) {
  cg_.require(b_.CreateIsNotNull(hdr), exits_.aborted, "cls.hdr");
  hdr_ = hdr;
  for (unsigned d = 0; d < cls::Dims; ++d)
    key_[d] = b_.CreateLoad(cg_.i32, cg_.at(hdr_, keyOffset(d)));
}

/// Where r2x_hdr holds dimension `d` of the key.
uint64_t RunEmitter::keyOffset(unsigned d) {
  using contract::Hdr;
  switch (d) {
  case cls::Src:
    return offsetof(Hdr, saddr);
  case cls::Dst:
    return offsetof(Hdr, daddr);
  case cls::Proto:
    return offsetof(Hdr, proto);
  case cls::Sport:
    return offsetof(Hdr, sport_key);
  default:
    return offsetof(Hdr, dport_key);
  }
}

/// The tree function's returns and arguments (TreeArgs): what it returns
/// is in result_, the event given unless it finds an earlier one.
void RunEmitter::emitTreeExits() {
  BasicBlock *entry = cg_.block("entry");
  BasicBlock *out = cg_.block("cls.out");
  BasicBlock *aborted = cg_.block("cls.aborted");
  IRBuilder<>(aborted).CreateRet(b_.getInt64(TreeAborted));
  plain_ = exits_ = {aborted, nullptr, nullptr, out};
  b_.SetInsertPoint(entry);
  counterKey_ = cg_.stackSlot(cg_.i32, 4, "cls.counter.key");
  result_ = cg_.stackSlot(cg_.i64, 8, "cls.result");
  readKey(fn_->getArg(TArgHdr));
  Value *rootBest = fn_->getArg(TArgRootBest);
  root_ = b_.CreateTrunc(rootBest, cg_.i32);
  best_ = b_.CreateLShr(rootBest, 32);
  Value *lenMode = fn_->getArg(TArgLenMode);
  totLen_ = b_.CreateTrunc(lenMode, cg_.i32);
  mode_ = b_.CreateLShr(lenMode, 32);
  b_.CreateStore(best_, result_);
  auto hasMode = [&](uint64_t m) {
    return b_.CreateICmpNE(b_.CreateAnd(mode_, m), b_.getInt64(0));
  };
  BasicBlock *walkBB = cg_.block("cls.tree");
  BasicBlock *finishBB = cg_.block("cls.finish");
  BasicBlock *ret = cg_.block("cls.ret");
  Value *fin = hasMode(TreeFinish);
  b_.CreateCondBr(hasMode(TreeSkip), out, walkBB);
  b_.SetInsertPoint(out);
  Value *result = b_.CreateLoad(cg_.i64, result_);
  b_.CreateCondBr(fin, finishBB, ret);
  b_.SetInsertPoint(ret);
  b_.CreateRet(result);
  b_.SetInsertPoint(finishBB);
  finish(result);
  b_.SetInsertPoint(walkBB);
}

/// Counts the rule that decides the run (1 packet, tot_len bytes), unless
/// hand-over mode leaves that to the kernel (cls::Uncounted; the test is
/// emitted only in runs that have such rules).
void RunEmitter::countEvent(const Rule &r) {
  if (!img_.uncounted) {
    bumpCounter(cg_, x_.counters, counterKey_, slot(r), totLen_);
    return;
  }
  BasicBlock *bump = cg_.block("cls.event.bump");
  BasicBlock *done = cg_.block("cls.event.counted");
  Value *uncounted = b_.CreateAnd(r.control, uint32_t(cls::Uncounted) << 16);
  b_.CreateCondBr(b_.CreateICmpNE(uncounted, b_.getInt32(0)), done, bump);
  b_.SetInsertPoint(bump);
  bumpCounter(cg_, x_.counters, counterKey_, slot(r), totLen_);
  b_.CreateBr(done);
  b_.SetInsertPoint(done);
}

void RunEmitter::finish(Value *event) {
  auto ret = [&](RunResult r) { b_.CreateRet(b_.getInt64(r)); };
  BasicBlock *none = cg_.block("cls.finish.none");
  BasicBlock *some = cg_.block("cls.finish.some");
  BasicBlock *rule = cg_.block("cls.finish.rule");
  BasicBlock *hotdrop = cg_.block("cls.finish.hotdrop");
  b_.CreateCondBr(b_.CreateICmpEQ(event, b_.getInt64(TreeNoEvent)), none, some);
  b_.SetInsertPoint(none);
  ret(RunNext);
  b_.SetInsertPoint(some);
  b_.CreateCondBr(b_.CreateTrunc(event, b_.getInt1Ty()), hotdrop, rule);
  b_.SetInsertPoint(hotdrop);
  ret(RunDrop);
  b_.SetInsertPoint(rule);
  Rule r;
  r.index = b_.CreateTrunc(b_.CreateLShr(event, 1), cg_.i32);
  r.base = b_.CreateMul(bounded(r.index, img_.rules.size(), "cls.event.ok"),
                        b_.getInt64(cls::RuleWords));
  using R = cls::RuleRec;
  r.control = field(r, offsetof(R, control));
  countEvent(r);
  BasicBlock *accept = cg_.block("cls.finish.accept");
  BasicBlock *drop = cg_.block("cls.finish.drop");
  SwitchInst *sw =
      b_.CreateSwitch(b_.CreateLShr(r.control, 24), exits_.aborted, 2);
  sw->addCase(b_.getInt32(cls::VerdictAccept), accept);
  sw->addCase(b_.getInt32(cls::VerdictDrop), drop);
  b_.SetInsertPoint(accept);
  ret(RunAccept);
  b_.SetInsertPoint(drop);
  ret(RunDrop);
}

Function *RunEmitter::emit() {
  Module &m = cg_.m;
  std::string prefix = "r2x_cls" + std::to_string(id_) + "_";
  std::vector<uint32_t> words;
  for (const cls::Node &n : img_.nodes) {
    words.push_back(n.a);
    words.push_back(n.b);
  }
  nodes_ = wordsGlobal(m, prefix + "node", kNodeSection, words);
  leaves_ = wordsGlobal(m, prefix + "leaf", kLeafSection, img_.leaves);
  words.clear();
  for (const cls::RuleRec &r : img_.rules)
    for (uint32_t w : {r.srcNet, r.srcMask, r.dstNet, r.dstMask, r.sport,
                       r.dport, r.slot, r.control})
      words.push_back(w);
  static_assert(cls::RuleWords == 8, "the words above are a RuleRec");
  rules_ = wordsGlobal(m, prefix + "rule", kRuleSection, words);
  if (tree_)
    emitTreeExits();
  else
    emitExits();
  auto [first, count] = walk();
  scan(first, count);
  return fn_;
}

/// A forest's run function: every tree's Find in turn, in the order of
/// their first rules (each from the event the trees before found, and
/// skipped when that event comes before its first rule), then, when the
/// run has count-only rules, every tree's Count up to that event; the last
/// call finishes.
Function *forestRun(const RunContext &x, const cls::Image &img, unsigned id,
                    Function *tree) {
  Function *fn = runFunction(x.cg.m, x.btf, id, /*tree=*/false);
  Codegen cg(x.cg.m, fn);
  IRBuilder<> &b = cg.b;
  b.SetInsertPoint(cg.block("entry"));
  BasicBlock *aborted = cg.block("cls.aborted");
  IRBuilder<>(aborted).CreateRet(b.getInt32(RunAborted));
  Value *hdr = fn->getArg(ArgHdr);
  Value *len = b.CreateAnd(fn->getArg(ArgLen), 0xffffffffu);
  Value *best = b.getInt64(TreeNoEvent);
  std::vector<unsigned> order(img.roots.size());
  for (unsigned t = 0; t < order.size(); ++t)
    order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned c) {
    return img.firsts[a] < img.firsts[c];
  });
  // Whether the event so far comes before tree t's first rule.
  auto before = [&](unsigned t) {
    return b.CreateICmpULT(best, b.getInt64(uint64_t(img.firsts[t]) * 2));
  };
  auto call = [&](unsigned t, Value *mode) {
    CallInst *r = b.CreateCall(
        tree, {hdr, b.CreateOr(b.CreateShl(best, 32), uint64_t(img.roots[t])),
               b.CreateOr(len, b.CreateShl(mode, 32))});
    // A call between functions with debug info needs a location.
    r->setDebugLoc(
        DILocation::get(x.cg.m.getContext(), 1, 1, fn->getSubprogram()));
    cg.require(b.CreateICmpULT(r, b.getInt64(TreeAborted)), aborted,
               "cls.tree.ok");
    return r;
  };
  // Calls tree t unless the event so far comes before its first rule.
  auto maybe = [&](unsigned t, uint64_t mode) {
    BasicBlock *pre = b.GetInsertBlock();
    BasicBlock *go = cg.block("cls.call"), *join = cg.block("cls.called");
    b.CreateCondBr(before(t), join, go);
    b.SetInsertPoint(go);
    Value *r = call(t, b.getInt64(mode));
    BasicBlock *from = b.GetInsertBlock();
    b.CreateBr(join);
    b.SetInsertPoint(join);
    PHINode *phi = b.CreatePHI(cg.i64, 2);
    phi->addIncoming(best, pre);
    phi->addIncoming(r, from);
    return phi;
  };
  unsigned last = order.back();
  for (unsigned t : order) {
    if (t != last || img.countOnly)
      best = maybe(t, TreeFind);
  }
  if (img.countOnly)
    for (unsigned t : order)
      if (t != last)
        maybe(t, TreeCount);
  // The last call finishes; its tree is skipped (not its finish) when the
  // event comes before it.
  Value *skip =
      b.CreateSelect(before(last), b.getInt64(TreeSkip), b.getInt64(0));
  uint64_t mode = TreeFinish | (img.countOnly ? TreeCount : TreeFind);
  b.CreateRet(b.CreateTrunc(call(last, b.CreateOr(skip, mode)), cg.i32));
  return fn;
}

/// The call of the run's function and what its result says.
void callRun(const RunContext &x, Function *f, BasicBlock *next) {
  IRBuilder<> &b = x.cg.b;
  Value *args[NArgs];
  args[ArgHdr] = x.hdr;
  args[ArgLen] = b.CreateZExt(x.pk.totLen, x.cg.i64);
  Value *r = b.CreateCall(f, args);
  SwitchInst *sw = b.CreateSwitch(r, x.aborted, 3);
  sw->addCase(b.getInt32(RunNext), next);
  sw->addCase(b.getInt32(RunAccept), x.accept);
  sw->addCase(b.getInt32(RunDrop), x.drop);
}

} // namespace

void storeRunKey(Codegen &cg, const Packet &pk, Value *hdr, Value *ifmask) {
  using contract::Hdr;
  IRBuilder<> &b = cg.b;
  auto hdrField = [&](uint64_t off, Type *ty) -> Value * {
    return b.CreateLoad(ty, cg.at(hdr, off), /*isVolatile=*/true);
  };
  Value *proto = hdrField(offsetof(Hdr, proto), cg.i32);
  BasicBlock *frag = cg.block("cls.key.fragment");
  BasicBlock *first = cg.block("cls.key.first");
  BasicBlock *tcp = cg.block("cls.key.tcp"), *udp = cg.block("cls.key.udp");
  BasicBlock *ports = cg.block("cls.key.ports");
  BasicBlock *done = cg.block("cls.key.done");
  b.CreateCondBr(b.CreateICmpNE(pk.fragOff, b.getInt16(0)), frag, first);

  // A later fragment: tcp hotdrops at offset 1, nothing else matches.
  b.SetInsertPoint(frag);
  Value *off1 = b.CreateAnd(b.CreateICmpEQ(proto, b.getInt32(IPPROTO_TCP)),
                            b.CreateICmpEQ(pk.fragOff, b.getInt16(1)));
  Value *fragKey = b.CreateSelect(off1, b.getInt32(cls::PortShort),
                                  b.getInt32(cls::PortNone));
  b.CreateBr(done);

  // A first fragment (or a whole datagram): the header of its protocol.
  b.SetInsertPoint(first);
  BasicBlock *short_ = cg.block("cls.key.short");
  SwitchInst *sw = b.CreateSwitch(proto, done, 2);
  sw->addCase(b.getInt32(IPPROTO_TCP), tcp);
  sw->addCase(b.getInt32(IPPROTO_UDP), udp);
  for (auto [bb, len] :
       {std::pair{tcp, kernel::TcpHlen}, {udp, kernel::UdpHlen}}) {
    b.SetInsertPoint(bb);
    Value *fits =
        b.CreateICmpULE(b.CreateAdd(pk.ihl, b.getInt32(len)), pk.totLen);
    cg.require(fits, short_, "cls.key.fits");
    cg.needBytes(pk.l4, len, short_, "cls.key.l4");
    b.CreateBr(ports);
  }
  b.SetInsertPoint(short_);
  b.CreateBr(done);
  // r2x_hdr holds the ports whenever the first 4 bytes are there.
  b.SetInsertPoint(ports);
  Value *sp = b.CreateZExt(hdrField(offsetof(Hdr, sport), cg.i16), cg.i32);
  Value *dp = b.CreateZExt(hdrField(offsetof(Hdr, dport), cg.i16), cg.i32);
  b.CreateBr(done);

  b.SetInsertPoint(done);
  PHINode *s = b.CreatePHI(cg.i32, 4, "cls.sport");
  PHINode *d = b.CreatePHI(cg.i32, 4, "cls.dport");
  s->addIncoming(fragKey, frag);
  d->addIncoming(fragKey, frag);
  s->addIncoming(b.getInt32(cls::PortNone), first);
  d->addIncoming(b.getInt32(cls::PortNone), first);
  s->addIncoming(b.getInt32(cls::PortShort), short_);
  d->addIncoming(b.getInt32(cls::PortShort), short_);
  s->addIncoming(sp, ports);
  d->addIncoming(dp, ports);
  b.CreateStore(s, cg.at(hdr, offsetof(Hdr, sport_key)), /*isVolatile=*/true);
  b.CreateStore(d, cg.at(hdr, offsetof(Hdr, dport_key)), /*isVolatile=*/true);
  b.CreateStore(ifmask ? ifmask : b.getInt64(0),
                cg.at(hdr, offsetof(Hdr, ifmask)),
                /*isVolatile=*/true);
}

unsigned emitClassifiedRun(const RunContext &ctx,
                           const std::vector<const ir::Rule *> &rules,
                           const classify::Options &options, unsigned id,
                           unsigned ids, BasicBlock *next) {
  // A forest takes two functions: the run's and its trees'.
  classify::Options o = options;
  if (ids < 2)
    o.forest = classify::Options::Forest::Never;
  std::optional<classify::Image> img =
      ids > 1 && rules.size() > 1
          ? classify::buildWithin(
                rules, o, classify::wordBudget(rules.size(), o.wordsPerRule))
          : classify::build(rules, o);
  if (!img) {
    size_t half = rules.size() / 2;
    std::vector<const ir::Rule *> first(rules.begin(),
                                        rules.begin() + long(half)),
        second(rules.begin() + long(half), rules.end());
    BasicBlock *mid = ctx.cg.block("run.half");
    unsigned used = emitClassifiedRun(ctx, first, o, id, ids / 2, mid);
    ctx.cg.b.SetInsertPoint(mid);
    return used +
           emitClassifiedRun(ctx, second, o, id + used, ids - used, next);
  }
  if (img->stats.maxLeaf == 0) {
    // Every leaf is empty: no rule of the run can match (or hotdrop) any
    // packet. A function would use none of its arguments, and LLVM would
    // pass it undefined ones, which the verifier refuses.
    ctx.cg.b.CreateBr(next);
    return 1;
  }
  bool iter = img->stats.maxLeaf > o.iterLeaf;
  if (img->forest()) {
    Function *tree = RunEmitter(ctx, *img, id, iter, /*tree=*/true).emit();
    callRun(ctx, forestRun(ctx, *img, id, tree), next);
    return 2;
  }
  callRun(ctx, RunEmitter(ctx, *img, id, iter, /*tree=*/false).emit(), next);
  return 1;
}

} // namespace r2x::backend
