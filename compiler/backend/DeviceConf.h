//===- compiler/backend/DeviceConf.h - the ingress device's switches -*- C++
//-*-===//
//
/// \file
/// What the kernel keeps per device that a routing decision reads before
/// any route: whether the ingress device forwards the packet's family.
/// bpf_fib_lookup() answers BPF_FIB_LKUP_RET_FWD_DISABLED from that switch
/// alone (net/core/filter.c: no in_device or !IN_DEV_FORWARD() for IPv4;
/// no inet6_dev or !cnf.forwarding for IPv6), and on a host (forwarding
/// off) that answer is every packet's. Reading the switch costs a few loads
/// where the helper costs a call, a 64-byte argument and a device lookup.
///
/// The program reads it through bpf_cast_to_kern_ctx() (kernel 6.2+):
/// xdp_buff -> rxq -> dev -> ip_ptr / ip6_ptr -> cnf. Every field is a
/// CO-RE relocation, matched by name in the running kernel's BTF, so the
/// object follows that kernel's layout; the loads are the verifier's
/// fault-safe PTR_TO_BTF_ID reads.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Codegen.h"

#include <memory>

namespace r2x::backend {

class BtfBuilder;

/// The kernel's per-device state as far as the program reads it, declared
/// once per module (a second declaration of a kernel struct under the same
/// name would share the first one's CO-RE relocations).
class DeviceConf {
public:
  DeviceConf(Codegen &cg, BtfBuilder &btf);
  ~DeviceConf();

  /// An i1: the ingress device of `ctx` (the program's struct xdp_md *)
  /// forwards IPv6 (`v6`) or IPv4 packets, as bpf_fib_lookup() asks before
  /// any route. False where the device has no IPv4/IPv6 state.
  llvm::Value *ingressForwards(llvm::Value *ctx, bool v6);

private:
  struct Types;
  Codegen &cg_;
  BtfBuilder &btf_;
  std::unique_ptr<Types> t_;
};

} // namespace r2x::backend
