//===- compiler/backend/Btf.h - maps, globals and their BTF -----*- C++ -*-===//
//
/// \file
/// libbpf 1.x only accepts BTF-defined maps: an external global of four
/// pointers in section `.maps`, whose debug type is an anonymous struct with
/// members `type` and `max_entries` (pointers to int arrays whose element
/// count is the value) and `key` and `value` (pointers to the real types).
/// The BPF backend turns the module's debug info into .BTF/.BTF.ext, so this
/// file builds that debug info with DIBuilder, plus the license and the
/// `.rodata` metadata string, all as runtime/contract/Object.h names them.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/contract/Object.h"

#include <llvm/IR/DIBuilder.h>
#include <llvm/IR/Module.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace r2x::backend {

class BtfBuilder {
public:
  explicit BtfBuilder(llvm::Module &m);

  llvm::DIType *u8();
  llvm::DIType *u16();
  llvm::DIType *u32();
  llvm::DIType *u64();
  /// The unsigned integer type of `bytes` bytes (1, 2, 4 or 8).
  llvm::DIType *unsignedType(uint32_t bytes);
  /// A struct of the object contract, named and laid out as its table says
  /// (runtime/contract/Object.h checks the table against the C++ struct).
  /// One DI type per layout, however often it is asked for.
  llvm::DIType *structType(const contract::StructLayout &layout);

  /// Declares the BTF-defined map `spec` and returns its global. The key and
  /// value types must have the sizes the contract gives (else BackendError).
  /// `maxEntries` 0 takes the contract's fixed count; a map whose count the
  /// program chooses (spec.maxEntries 0) must be given one.
  llvm::GlobalVariable *map(const contract::MapSpec &spec, llvm::DIType *key,
                            llvm::DIType *value, uint32_t maxEntries = 0);
  /// Declares the BTF-defined ring buffer `spec` (type and max_entries
  /// only: a ring buffer has no key or value) and returns its global.
  llvm::GlobalVariable *ringbuf(const contract::MapSpec &spec);
  /// The metadata text as the contract's NUL-terminated `.rodata` global
  /// (external linkage keeps it in the object though the program never
  /// reads it).
  void metadata(const std::string &text);
  /// A DISubprogram for `f` (BTF FUNC and .BTF.ext func_info), which the
  /// kernel needs for every function once a program has subprograms
  /// (bpf_loop callbacks). `ret` null is void; a null arg is `void *`.
  void function(llvm::Function *f, llvm::DIType *ret,
                const std::vector<llvm::DIType *> &args);
  /// A struct named as the kernel names it, with the given (name, type,
  /// bit offset) members and byte size: for kfunc prototypes (libbpf
  /// checks them against the kernel's: a struct pointee is compatible with
  /// any struct) and CO-RE relocations (a member is matched by name in the
  /// running kernel's BTF, whatever its offset there).
  llvm::DICompositeType *kernelStruct(
      const std::string &name, uint64_t bytes,
      const std::vector<std::tuple<std::string, llvm::DIType *, uint64_t>>
          &members);
  llvm::DIType *pointerTo(llvm::DIType *t);
  /// `t[count]`: a kernel struct's array member, for CO-RE relocations on
  /// one of its elements.
  llvm::DIType *arrayOf(llvm::DIType *t, unsigned count);
  /// The BTF of a kernel function the program calls (a kfunc): `f` must be
  /// an external declaration in section ".ksyms"; the BPF backend then
  /// emits it as an extern FUNC, which libbpf resolves against the
  /// kernel's BTF.
  void kfunc(llvm::Function *f, llvm::DIType *ret,
             const std::vector<llvm::DIType *> &args);
  /// Signed C types for prototypes.
  llvm::DIType *int32();
  llvm::DIType *long64();
  /// `bytes` as global `symbol` alone in ELF section `section`, without
  /// BTF: data for the loader that libbpf skips (contract::SetsSection).
  void section(const char *symbol, const char *section,
               const std::string &bytes);
  /// `char _license[] SEC("license") = "GPL";`
  void license();
  /// Finalises the debug info. (No llvm.used: on ELF it marks globals
  /// SHF_GNU_RETAIN, which splits `.maps` into one section per map and
  /// libbpf refuses the relocations. External globals survive anyway.)
  void finish();

private:
  llvm::DIType *intArrayPtr(unsigned count);
  llvm::Module &m_;
  llvm::DIBuilder di_;
  llvm::DICompileUnit *cu_;
  llvm::DIFile *file_;
  llvm::DIType *int_ = nullptr, *u8_ = nullptr, *u16_ = nullptr,
               *u32_ = nullptr, *u64_ = nullptr;
  std::map<const contract::StructLayout *, llvm::DIType *> structs_;
};

} // namespace r2x::backend
