//===- compiler/backend/BpfTarget.cpp - LLVM's BPF target, in process
//-------===//
//
/// \file
/// compile(): codegen, verification, optimisation and emission. The
/// TargetMachine is handed to PassBuilder so the BPF target's own IR passes
/// (preserve-static-offset folding, BPFAdjustOpt, IR peephole) run; without
/// it llvm.preserve.static.offset cannot be selected.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Backend.h"
#include "compiler/backend/Pipeline.h"
#include "compiler/backend/XdpCodegen.h"

#include <cstdio>
#include <unistd.h>

#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/IR/DiagnosticInfo.h>
#include <llvm/IR/DiagnosticPrinter.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/PassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/ErrorHandling.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include <memory>
#include <mutex>

extern "C" {
void LLVMInitializeBPFTargetInfo();
void LLVMInitializeBPFTarget();
void LLVMInitializeBPFTargetMC();
void LLVMInitializeBPFAsmPrinter();
}

namespace r2x::backend {

using namespace llvm;

namespace {

std::unique_ptr<TargetMachine> bpfTargetMachine(const char *cpu) {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeBPFTargetInfo();
    LLVMInitializeBPFTarget();
    LLVMInitializeBPFTargetMC();
    LLVMInitializeBPFAsmPrinter();
  });
  std::string err;
  const Target *t = TargetRegistry::lookupTarget("bpfel", err);
  if (!t)
    throw BackendError("LLVM has no BPF target: " + err);
  TargetOptions opts;
  // CPU v3: 32-bit sub-registers and jumps, fewer instructions; v4 adds
  // long jumps (gotol), which LLVM uses where a branch is out of range.
  return std::unique_ptr<TargetMachine>(
      t->createTargetMachine("bpfel", cpu, "", opts, Reloc::PIC_, std::nullopt,
                             CodeGenOptLevel::Aggressive));
}

void optimize(Module &m, TargetMachine &tm) {
  LoopAnalysisManager lam;
  FunctionAnalysisManager fam;
  CGSCCAnalysisManager cgam;
  ModuleAnalysisManager mam;
  PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  ModulePassManager mpm =
      pb.buildPerModuleDefaultPipeline(OptimizationLevel::O2);
  mpm.run(m, mam);
}

/// LLVM passes an undefined value for an argument the callee does not use
/// (dead argument elimination, even for global functions); the verifier
/// refuses a call of a global function with an uninitialised register.
/// Refuse such a program here instead: it is a compiler bug.
void checkCallArguments(const Module &m) {
  for (const Function &f : m)
    for (const BasicBlock &bb : f)
      for (const Instruction &i : bb)
        if (const auto *call = dyn_cast<CallInst>(&i))
          if (const Function *callee = call->getCalledFunction();
              callee && !callee->isDeclaration())
            for (const Use &a : call->args())
              if (isa<UndefValue>(a.get()))
                throw BackendError("a call of " + callee->getName().str() +
                                   " lost an argument to the optimiser");
}

} // namespace

namespace {
/// Rules as emitted: a user chain is inlined at every jump to it.
size_t emittedRules(const ir::Program &p, const ir::Chain &c, unsigned depth) {
  size_t n = c.rules.size();
  if (depth > 16)
    return n;
  for (const ir::Rule &r : c.rules)
    if (r.verdict == ir::Verdict::Jump || r.verdict == ir::Verdict::Goto)
      if (const ir::Chain *callee =
              p.userChain(c.family, c.table, r.jumpTarget))
        n += emittedRules(p, *callee, depth + 1);
  return n;
}
} // namespace

std::string compile(const ir::Program &program, Emit emit,
                    const classify::Options &cls) {
  // About 30 BPF instructions a rule: past a few hundred rules, a branch
  // from the first rules to the chain's end no longer fits in 16 bits.
  size_t rules = 0;
  for (const ir::Chain &c : program.chains)
    if (!c.user)
      rules += emittedRules(program, c, 0);
  const char *cpu = rules > kLongJumpRules ? "v4" : "v3";
  return compileModule([&](Module &m) { emitXdpProgram(program, m, cls); },
                       emit, cpu);
}

/// LLVM stops on what it cannot encode, the usual case being a program so
/// large that BPF's 16-bit jump offsets cannot reach across it (around a
/// thousand rules). Say so and exit 1 (the input cannot be compiled):
/// nothing has been written or loaded yet, that happens after compiling.
[[noreturn]] void llvmFatal(void *, const char *reason, bool) {
  std::fprintf(stderr,
               "rule2xdp: error: LLVM cannot build this program: %s\n"
               "  (docs/design.md, \"Limits\")\n",
               reason);
  std::fflush(stderr);
  _exit(1);
}

/// Errors the BPF back end reports and goes on from (the usual one: the
/// program needs more than BPF's 512-byte stack). LLVM's default handler
/// prints `error: <unknown>:0:0: ...` and exits; these are kept instead,
/// and compileModule() throws the first after code generation.
void collectLlvmErrors(const DiagnosticInfo *di, void *context) {
  if (di->getSeverity() != DS_Error)
    return;
  auto *errors = static_cast<std::vector<std::string> *>(context);
  std::string text;
  raw_string_ostream os(text);
  DiagnosticPrinterRawOStream printer(os);
  di->print(printer);
  // The usual one, said for this compiler's users (LLVM's text advises C
  // programmers to move variables into maps).
  if (os.str().find("stack limit") != std::string::npos)
    text = "the program needs more than the 512 bytes of stack BPF allows "
           "(too many values live at once across the ruleset's helper "
           "calls)";
  errors->push_back(text);
}

std::string compileModule(const std::function<void(Module &)> &build, Emit emit,
                          const char *cpu) {
  static bool handler = (install_fatal_error_handler(llvmFatal), true);
  (void)handler;
  LLVMContext ctx;
  std::vector<std::string> llvmErrors;
  ctx.setDiagnosticHandlerCallBack(collectLlvmErrors, &llvmErrors);
  auto m = std::make_unique<Module>("rule2xdp", ctx);
  std::unique_ptr<TargetMachine> tm = bpfTargetMachine(cpu);
  m->setTargetTriple("bpfel");
  m->setDataLayout(tm->createDataLayout());

  build(*m);

  std::string err;
  raw_string_ostream es(err);
  if (verifyModule(*m, &es))
    throw BackendError("generated LLVM IR is invalid: " + es.str());
  optimize(*m, *tm);
  if (verifyModule(*m, &es))
    throw BackendError("optimised LLVM IR is invalid: " + es.str());
  checkCallArguments(*m);

  std::string out;
  if (emit == Emit::LLVM) {
    raw_string_ostream os(out);
    m->print(os, nullptr);
    return os.str();
  }
  SmallVector<char, 0> buf;
  raw_svector_ostream os(buf);
  legacy::PassManager pm;
  CodeGenFileType kind = emit == Emit::Asm ? CodeGenFileType::AssemblyFile
                                           : CodeGenFileType::ObjectFile;
  if (tm->addPassesToEmitFile(pm, os, nullptr, kind))
    throw BackendError("the BPF target cannot emit this file type");
  pm.run(*m);
  if (!llvmErrors.empty())
    throw LimitError("LLVM cannot build this program: " + llvmErrors.front() +
                     " (docs/design.md, \"Limits\")");
  return std::string(buf.begin(), buf.end());
}

} // namespace r2x::backend
