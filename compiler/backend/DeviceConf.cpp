//===- compiler/backend/DeviceConf.cpp - the ingress device's switches ----===//
//
/// \file
/// See DeviceConf.h. The kernel's structures are declared only as far as
/// the program reads them: each a local type whose members the BPF backend
/// turns into CO-RE relocations (llvm.preserve.*.access.index), which
/// libbpf resolves by name against the running kernel's BTF.
//===----------------------------------------------------------------------===//
#include "compiler/backend/DeviceConf.h"

#include "compiler/backend/Btf.h"

#include <llvm/IR/Intrinsics.h>

#include <string>
#include <tuple>
#include <vector>

namespace r2x::backend {

using namespace llvm;

namespace {

using Members = std::vector<std::tuple<std::string, DIType *, uint64_t>>;

/// One kernel struct as far as it is read: its debug type (named as the
/// kernel names it) and the IR type the accesses index into.
struct Local {
  DICompositeType *di;
  StructType *ty;
};

/// `struct name { T0 m0; T1 m1; ... }` laid out in order, each member at
/// its natural alignment (the local offsets; the kernel's come from its
/// BTF).
Local localStruct(
    Codegen &cg, BtfBuilder &btf, const std::string &name,
    const std::vector<std::tuple<std::string, DIType *, Type *>> &members) {
  std::vector<Type *> types;
  for (const auto &m : members)
    types.push_back(std::get<2>(m));
  StructType *ty = StructType::create(cg.ctx, types, "struct." + name);
  const StructLayout *layout = cg.m.getDataLayout().getStructLayout(ty);
  Members di;
  for (unsigned i = 0; i < members.size(); ++i)
    di.emplace_back(std::get<0>(members[i]), std::get<1>(members[i]),
                    layout->getElementOffsetInBits(i));
  return {btf.kernelStruct(name, layout->getSizeInBytes(), di), ty};
}

/// bpf_cast_to_kern_ctx(): the program's context as the kernel's struct
/// xdp_buff (a trusted PTR_TO_BTF_ID). Its prototype is `void *(void *)`
/// in the kernel; libbpf compares the declaration with it.
Function *castToKernCtx(Codegen &cg, BtfBuilder &btf) {
  const char *name = "bpf_cast_to_kern_ctx";
  if (Function *f = cg.m.getFunction(name))
    return f;
  Function *f = Function::Create(FunctionType::get(cg.ptr, {cg.ptr}, false),
                                 GlobalValue::ExternalLinkage, name, cg.m);
  f->setSection(".ksyms");
  btf.kfunc(f, btf.pointerTo(nullptr), {btf.pointerTo(nullptr)});
  return f;
}

} // namespace

/// Every struct on the way from the context to the two switches. One
/// net_device with both pointers: the members are told apart by index.
struct DeviceConf::Types {
  Local v4conf, inDevice, v6conf, inet6Dev, netDevice, rxq, xdpBuff;
  DIType *v4data = nullptr; ///< ipv4_devconf's data[]
  Function *cast = nullptr;
};

DeviceConf::DeviceConf(Codegen &cg, BtfBuilder &btf)
    : cg_(cg), btf_(btf), t_(std::make_unique<Types>()) {
  Types &t = *t_;
  DIType *int32 = btf.int32();
  const unsigned n = kernel::Ipv4DevconfForwarding;
  t.v4data = btf.arrayOf(int32, n);
  t.v4conf = localStruct(cg, btf, "ipv4_devconf",
                         {{"data", t.v4data, ArrayType::get(cg.i32, n)}});
  t.inDevice =
      localStruct(cg, btf, "in_device", {{"cnf", t.v4conf.di, t.v4conf.ty}});
  t.v6conf =
      localStruct(cg, btf, "ipv6_devconf", {{"forwarding", int32, cg.i32}});
  t.inet6Dev =
      localStruct(cg, btf, "inet6_dev", {{"cnf", t.v6conf.di, t.v6conf.ty}});
  t.netDevice =
      localStruct(cg, btf, "net_device",
                  {{"ip_ptr", btf.pointerTo(t.inDevice.di), cg.ptr},
                   {"ip6_ptr", btf.pointerTo(t.inet6Dev.di), cg.ptr}});
  t.rxq = localStruct(cg, btf, "xdp_rxq_info",
                      {{"dev", btf.pointerTo(t.netDevice.di), cg.ptr}});
  t.xdpBuff = localStruct(cg, btf, "xdp_buff",
                          {{"rxq", btf.pointerTo(t.rxq.di), cg.ptr}});
  t.cast = castToKernCtx(cg, btf);
}

DeviceConf::~DeviceConf() = default;

Value *DeviceConf::ingressForwards(Value *ctx, bool v6) {
  IRBuilder<> &b = cg_.b;
  const Types &t = *t_;
  auto member = [&](const Local &s, Value *p, unsigned i) {
    return b.CreatePreserveStructAccessIndex(s.ty, p, i, i, s.di);
  };
  Value *kctx = b.CreateCall(t.cast, {ctx});
  Value *rxq = b.CreateLoad(cg_.ptr, member(t.xdpBuff, kctx, 0));
  Value *dev = b.CreateLoad(cg_.ptr, member(t.rxq, rxq, 0));
  // ip_ptr / ip6_ptr: the device's in_device / inet6_dev.
  Value *in = b.CreateLoad(cg_.ptr, member(t.netDevice, dev, v6 ? 1 : 0));

  // No in_device / inet6_dev: the helper's FWD_DISABLED too.
  BasicBlock *from = b.GetInsertBlock();
  BasicBlock *has = cg_.block("devconf.present");
  BasicBlock *done = cg_.block("devconf.read");
  b.CreateCondBr(b.CreateIsNull(in), done, has);
  b.SetInsertPoint(has);
  // IPv4: cnf.data[IPV4_DEVCONF_FORWARDING - 1]; IPv6: cnf.forwarding.
  Value *sw;
  if (v6) {
    sw = member(t.v6conf, member(t.inet6Dev, in, 0), 0);
  } else {
    const unsigned n = kernel::Ipv4DevconfForwarding;
    sw = b.CreatePreserveArrayAccessIndex(
        ArrayType::get(cg_.i32, n),
        member(t.v4conf, member(t.inDevice, in, 0), 0), 1, n - 1, t.v4data);
  }
  Value *on = b.CreateICmpNE(b.CreateLoad(cg_.i32, sw), b.getInt32(0));
  b.CreateBr(done);
  b.SetInsertPoint(done);
  PHINode *phi = b.CreatePHI(cg_.i1, 2, "devconf.forwards");
  phi->addIncoming(b.getFalse(), from);
  phi->addIncoming(on, has);
  return phi;
}

} // namespace r2x::backend
