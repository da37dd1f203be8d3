//===- compiler/backend/Btf.h - maps, globals and their BTF -----*- C++ -*-===//
//
/// \file
/// libbpf 1.x only accepts BTF-defined maps: an external global of four
/// pointers in section `.maps`, whose debug type is an anonymous struct with
/// members `type` and `max_entries` (pointers to int arrays whose element
/// count is the value) and `key` and `value` (pointers to the real types).
/// The BPF backend turns the module's debug info into .BTF/.BTF.ext, so this
/// file builds that debug info with DIBuilder, plus the license and the
/// `.rodata` metadata string.
//===----------------------------------------------------------------------===//
#pragma once

#include <llvm/IR/DIBuilder.h>
#include <llvm/IR/Module.h>

#include <string>
#include <utility>
#include <vector>

namespace r2x::backend {

/// BPF map types used by rule2xdp (values from linux/bpf.h).
enum class MapType : unsigned {
  Hash = 1, Array = 2, PercpuArray = 6, LruHash = 9, Devmap = 14, DevmapHash = 25
};

class BtfBuilder {
public:
  explicit BtfBuilder(llvm::Module &m);

  llvm::DIType *u8();
  llvm::DIType *u16();
  llvm::DIType *u32();
  llvm::DIType *u64();
  /// A named struct of (name, type) fields laid out in order, naturally
  /// aligned; `sizeBytes` is the C sizeof.
  llvm::DIType *structType(const std::string &name,
                           const std::vector<std::pair<std::string, llvm::DIType *>> &fields,
                           unsigned sizeBytes);

  /// Declares a BTF-defined map and returns its global.
  llvm::GlobalVariable *map(const std::string &name, MapType type,
                            llvm::DIType *key, llvm::DIType *value,
                            unsigned maxEntries);
  /// A NUL-terminated constant string in `.rodata` (external linkage keeps
  /// it in the object though the program never reads it).
  void rodataString(const std::string &name, const std::string &text);
  /// A DISubprogram for `f` (BTF FUNC and .BTF.ext func_info), which the
  /// kernel needs for every function once a program has subprograms
  /// (bpf_loop callbacks). `ret` null is void; a null arg is `void *`.
  void function(llvm::Function *f, llvm::DIType *ret,
                const std::vector<llvm::DIType *> &args);
  /// Signed C types for prototypes.
  llvm::DIType *int32();
  llvm::DIType *long64();
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
};

} // namespace r2x::backend
