//===- compiler/backend/Btf.cpp - maps, globals and their BTF
//---------------===//
//
/// \file
/// See Btf.h for the layout libbpf expects.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Btf.h"

#include "compiler/backend/Backend.h"

#include <llvm/BinaryFormat/Dwarf.h>
#include <llvm/IR/Constants.h>
#include <llvm/IR/GlobalVariable.h>
#include <llvm/IR/Instructions.h>

namespace r2x::backend {

using namespace llvm;

BtfBuilder::BtfBuilder(Module &m) : m_(m), di_(m) {
  file_ = di_.createFile("rule2xdp.rules", ".");
  cu_ = di_.createCompileUnit(dwarf::DW_LANG_C11, file_, "rule2xdp",
                              /*isOptimized=*/true, "", 0);
  m_.addModuleFlag(Module::Warning, "Debug Info Version",
                   DEBUG_METADATA_VERSION);
  m_.addModuleFlag(Module::Warning, "Dwarf Version", 5);
}

DIType *BtfBuilder::u8() {
  if (!u8_)
    u8_ = di_.createBasicType("__u8", 8, dwarf::DW_ATE_unsigned_char);
  return u8_;
}
DIType *BtfBuilder::u16() {
  if (!u16_)
    u16_ = di_.createBasicType("__u16", 16, dwarf::DW_ATE_unsigned);
  return u16_;
}
DIType *BtfBuilder::u32() {
  if (!u32_)
    u32_ = di_.createBasicType("__u32", 32, dwarf::DW_ATE_unsigned);
  return u32_;
}
DIType *BtfBuilder::u64() {
  if (!u64_)
    u64_ = di_.createBasicType("__u64", 64, dwarf::DW_ATE_unsigned);
  return u64_;
}

DIType *BtfBuilder::int32() {
  return di_.createBasicType("int", 32, dwarf::DW_ATE_signed);
}
DIType *BtfBuilder::long64() {
  return di_.createBasicType("long", 64, dwarf::DW_ATE_signed);
}

void BtfBuilder::function(Function *f, DIType *ret,
                          const std::vector<DIType *> &args) {
  std::vector<Metadata *> types{ret};
  std::vector<DIType *> argTypes;
  for (DIType *a : args) {
    argTypes.push_back(a ? a : di_.createPointerType(nullptr, 64));
    types.push_back(argTypes.back());
  }
  DISubroutineType *st =
      di_.createSubroutineType(di_.getOrCreateTypeArray(types));
  DISubprogram *sp = di_.createFunction(
      cu_, f->getName(), f->getName(), file_, 1, st, 1, DINode::FlagPrototyped,
      DISubprogram::SPFlagDefinition |
          (f->hasLocalLinkage() ? DISubprogram::SPFlagLocalToUnit
                                : DISubprogram::SPFlagZero));
  // The kernel wants every argument of a FUNC named: retained parameters
  // give BTF their names.
  for (unsigned i = 0; i < argTypes.size(); ++i)
    di_.createParameterVariable(sp,
                                i < f->arg_size() && f->getArg(i)->hasName()
                                    ? f->getArg(i)->getName()
                                    : "arg" + std::to_string(i),
                                i + 1, file_, 1, argTypes[i],
                                /*AlwaysPreserve=*/true);
  f->setSubprogram(sp);
  // A call from a function with debug info to one with debug info needs a
  // location (LLVM's verifier): the direct calls of classified runs.
  for (BasicBlock &bb : *f)
    for (Instruction &i : bb)
      if (auto *call = dyn_cast<CallInst>(&i))
        if (Function *callee = call->getCalledFunction();
            callee && callee->getSubprogram() && !call->getDebugLoc())
          call->setDebugLoc(DILocation::get(m_.getContext(), 1, 1, sp));
}

DICompositeType *BtfBuilder::kernelStruct(
    const std::string &name, uint64_t bytes,
    const std::vector<std::tuple<std::string, DIType *, uint64_t>> &members) {
  DICompositeType *st = di_.createStructType(
      cu_, name, file_, 1, bytes * 8, 64, DINode::FlagZero, nullptr, nullptr);
  std::vector<Metadata *> elems;
  for (const auto &[n, ty, bit] : members)
    elems.push_back(di_.createMemberType(st, n, file_, 1, ty->getSizeInBits(),
                                         0, bit, DINode::FlagZero, ty));
  di_.replaceArrays(st, di_.getOrCreateArray(elems));
  return st;
}

DIType *BtfBuilder::pointerTo(DIType *t) {
  return di_.createPointerType(t, 64);
}

DIType *BtfBuilder::arrayOf(DIType *t, unsigned count) {
  Metadata *range = di_.getOrCreateSubrange(0, int64_t(count));
  return di_.createArrayType(t->getSizeInBits() * count,
                             uint32_t(t->getSizeInBits()), t,
                             di_.getOrCreateArray({range}));
}

void BtfBuilder::kfunc(Function *f, DIType *ret,
                       const std::vector<DIType *> &args) {
  std::vector<Metadata *> types{ret};
  for (DIType *a : args)
    types.push_back(a);
  DISubroutineType *st =
      di_.createSubroutineType(di_.getOrCreateTypeArray(types));
  DISubprogram *sp =
      di_.createFunction(file_, f->getName(), f->getName(), file_, 1, st, 1,
                         DINode::FlagPrototyped, DISubprogram::SPFlagZero);
  f->setSubprogram(sp);
}

DIType *BtfBuilder::unsignedType(uint32_t bytes) {
  switch (bytes) {
  case 1:
    return u8();
  case 2:
    return u16();
  case 4:
    return u32();
  case 8:
    return u64();
  }
  throw BackendError("no unsigned BTF type of " + std::to_string(bytes) +
                     " bytes");
}

DIType *BtfBuilder::structType(const contract::StructLayout &layout) {
  DIType *&known = structs_[&layout];
  if (known)
    return known;
  std::vector<Metadata *> members;
  for (const contract::Field &f : layout) {
    DIType *ty = f.type ? structType(*f.type) : unsignedType(f.size);
    members.push_back(
        di_.createMemberType(cu_, f.name, file_, 0, uint64_t(f.size) * 8, 0,
                             uint64_t(f.offset) * 8, DINode::FlagZero, ty));
  }
  return known = di_.createStructType(
             cu_, layout.name, file_, 0, uint64_t(layout.size) * 8, 0,
             DINode::FlagZero, nullptr, di_.getOrCreateArray(members));
}

DIType *BtfBuilder::intArrayPtr(unsigned count) {
  if (!int_)
    int_ = di_.createBasicType("int", 32, dwarf::DW_ATE_signed);
  return pointerTo(arrayOf(int_, count));
}

GlobalVariable *BtfBuilder::map(const contract::MapSpec &spec, DIType *key,
                                DIType *value, uint32_t maxEntries) {
  const std::string name = spec.name;
  if (key->getSizeInBits() != uint64_t(spec.keySize) * 8 ||
      value->getSizeInBits() != uint64_t(spec.valueSize) * 8)
    throw BackendError("map " + name +
                       ": key or value type differs from the object contract");
  if (maxEntries == 0)
    maxEntries = spec.maxEntries;
  if (maxEntries == 0)
    throw BackendError("map " + name +
                       ": the program must choose its entry count");
  LLVMContext &ctx = m_.getContext();
  Type *ptr = PointerType::get(ctx, 0);
  std::vector<Type *> slots(spec.flags != 0 ? 5 : 4, ptr);
  StructType *defTy = StructType::get(ctx, slots);
  auto *gv = new GlobalVariable(m_, defTy, false, GlobalValue::ExternalLinkage,
                                ConstantAggregateZero::get(defTy), name);
  gv->setSection(".maps");
  gv->setAlignment(Align(8));
  gv->setDSOLocal(true);

  std::vector<Metadata *> members = {
      di_.createMemberType(cu_, "type", file_, 0, 64, 0, 0, DINode::FlagZero,
                           intArrayPtr(static_cast<unsigned>(spec.type))),
      di_.createMemberType(cu_, "key", file_, 0, 64, 0, 64, DINode::FlagZero,
                           di_.createPointerType(key, 64)),
      di_.createMemberType(cu_, "value", file_, 0, 64, 0, 128, DINode::FlagZero,
                           di_.createPointerType(value, 64)),
      di_.createMemberType(cu_, "max_entries", file_, 0, 64, 0, 192,
                           DINode::FlagZero, intArrayPtr(maxEntries)),
  };
  if (spec.flags != 0)
    members.push_back(di_.createMemberType(cu_, "map_flags", file_, 0, 64, 0,
                                           256, DINode::FlagZero,
                                           intArrayPtr(spec.flags)));
  uint64_t bits = 64 * members.size();
  DIType *st =
      di_.createStructType(cu_, "", file_, 0, bits, 0, DINode::FlagZero,
                           nullptr, di_.getOrCreateArray(members));
  auto *gve = di_.createGlobalVariableExpression(cu_, name, "", file_, 0, st,
                                                 /*isLocalToUnit=*/false);
  gv->addDebugInfo(gve);
  return gv;
}

GlobalVariable *BtfBuilder::ringbuf(const contract::MapSpec &spec) {
  if (spec.type != contract::MapType::Ringbuf)
    throw BackendError(std::string("map ") + spec.name +
                       " is not a ring buffer");
  LLVMContext &ctx = m_.getContext();
  Type *ptr = PointerType::get(ctx, 0);
  StructType *defTy = StructType::get(ctx, {ptr, ptr});
  auto *gv = new GlobalVariable(m_, defTy, false, GlobalValue::ExternalLinkage,
                                ConstantAggregateZero::get(defTy), spec.name);
  gv->setSection(".maps");
  gv->setAlignment(Align(8));
  gv->setDSOLocal(true);
  Metadata *members[] = {
      di_.createMemberType(cu_, "type", file_, 0, 64, 0, 0, DINode::FlagZero,
                           intArrayPtr(static_cast<unsigned>(spec.type))),
      di_.createMemberType(cu_, "max_entries", file_, 0, 64, 0, 64,
                           DINode::FlagZero, intArrayPtr(spec.maxEntries)),
  };
  DIType *st = di_.createStructType(cu_, "", file_, 0, 128, 0, DINode::FlagZero,
                                    nullptr, di_.getOrCreateArray(members));
  gv->addDebugInfo(di_.createGlobalVariableExpression(cu_, spec.name, "", file_,
                                                      0, st,
                                                      /*isLocalToUnit=*/false));
  return gv;
}

void BtfBuilder::metadata(const std::string &text) {
  LLVMContext &ctx = m_.getContext();
  const char *name = contract::MetaSymbol;
  Constant *init = ConstantDataArray::getString(ctx, text, /*AddNull=*/true);
  auto *gv = new GlobalVariable(m_, init->getType(), /*isConstant=*/true,
                                GlobalValue::ExternalLinkage, init, name);
  gv->setSection(contract::MetaSection);
  gv->setAlignment(Align(1));
  gv->setDSOLocal(true);
  DIType *ch = di_.createBasicType("char", 8, dwarf::DW_ATE_signed_char);
  DIType *cch = di_.createQualifiedType(dwarf::DW_TAG_const_type, ch);
  uint64_t n = text.size() + 1;
  DIType *arr = di_.createArrayType(
      n * 8, 8, cch, di_.getOrCreateArray({di_.getOrCreateSubrange(0, n)}));
  gv->addDebugInfo(
      di_.createGlobalVariableExpression(cu_, name, "", file_, 0, arr, false));
}

void BtfBuilder::section(const char *symbol, const char *section,
                         const std::string &bytes) {
  LLVMContext &ctx = m_.getContext();
  Constant *init =
      ConstantDataArray::getRaw(bytes, bytes.size(), Type::getInt8Ty(ctx));
  auto *gv = new GlobalVariable(m_, init->getType(), true,
                                GlobalValue::ExternalLinkage, init, symbol);
  gv->setSection(section);
  gv->setAlignment(Align(8));
}

void BtfBuilder::license() {
  LLVMContext &ctx = m_.getContext();
  Constant *init = ConstantDataArray::getString(ctx, contract::License, true);
  auto *gv = new GlobalVariable(m_, init->getType(), true,
                                GlobalValue::ExternalLinkage, init,
                                contract::LicenseSymbol);
  gv->setSection(contract::LicenseSection);
  gv->setAlignment(Align(1));
}

void BtfBuilder::finish() { di_.finalize(); }

} // namespace r2x::backend
