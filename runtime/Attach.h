//===- runtime/Attach.h - putting a program on an interface ----*- C++ -*-===//
//
/// \file
/// Private to runtime/. The two ways rule2xdp attaches, neither of which
/// needs a pin to keep the program attached after the process exits:
///  - netlink (bpf_xdp_attach, as `ip link set dev X xdp` and xdp-loader's
///    legacy mode do): the program is the interface's one XDP program. A
///    replace is atomic (XDP_FLAGS_REPLACE with the old program: the kernel
///    swaps them only if the old one is still there).
///  - libxdp's multi-program dispatcher (as xdp-loader does): rule2xdp's
///    program is one of up to ten components, so it shares the interface.
///    libxdp pins the dispatcher's links under bpffs: this path needs a
///    bpffs that outlives the command.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Discover.h"

struct xdp_program;

namespace r2x::runtime::detail {

/// Attaches `progFd` to the interface in `mode`. If the interface runs
/// rule2xdp's program `oldFd` (>= 0) in the same mode, replaces it
/// atomically; in the other mode, detaches it first (a moment without a
/// program: a program cannot change mode). With `oldFd` < 0 the interface
/// must have no program. Throws LoadError.
void attachNetlink(const InterfaceXdp &x, int progFd, XdpMode mode, int oldFd);

/// Detaches rule2xdp's program `progFd`, attached through netlink, if it
/// is still the interface's program. Throws LoadError.
void detachNetlink(const InterfaceXdp &x, int progFd);

/// Adds `prog` (an unloaded or loaded program of an open object) to the
/// interface's dispatcher, making one if there is none, in `mode`. Throws
/// LoadError.
void attachDispatcher(const InterfaceXdp &x, xdp_program *prog, XdpMode mode);

/// Removes component `progId` from the interface's dispatcher (the
/// dispatcher goes when it was the last one). Throws LoadError.
void detachDispatcher(const InterfaceXdp &x, uint32_t progId);

} // namespace r2x::runtime::detail
