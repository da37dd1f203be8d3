//===- runtime/Attach.cpp - putting a program on an interface -------------===//
//
/// \file
/// See Attach.h.
//===----------------------------------------------------------------------===//
#include "runtime/Attach.h"

#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <xdp/libxdp.h>

namespace r2x::runtime::detail {

namespace {

uint32_t modeFlag(XdpMode mode) {
  return mode == XdpMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

enum xdp_attach_mode libxdpMode(XdpMode mode) {
  return mode == XdpMode::Native ? XDP_MODE_NATIVE : XDP_MODE_SKB;
}

LoadError libxdpError(const std::string &what, int err) {
  char buf[256] = {0};
  libxdp_strerror(err, buf, sizeof buf);
  return LoadError(what + ": " + buf);
}

/// The errors of a netlink attach, said in the user's terms. `replacing`:
/// the attach was to replace rule2xdp's program.
[[noreturn]] void attachFailed(const InterfaceXdp &x, XdpMode mode, int err,
                               bool replacing) {
  err = err < 0 ? -err : err;
  if (err == EBUSY && replacing)
    throw LoadError(
        x.iface + "'s XDP program is held by a BPF link (as rule2xdp 0.1 " +
        "attached it, pinned under /sys/fs/bpf/rule2xdp/" + x.iface +
        "/link): remove that pin to detach it, then load again");
  if (err == EBUSY || err == EEXIST)
    throw LoadError(x.iface + "'s XDP program changed while rule2xdp was " +
                    "loading (another tool?); nothing was replaced: " +
                    "look at it (ip link show " + x.iface + ") and try again");
  if (err == EOPNOTSUPP && mode == XdpMode::Native)
    throw sysError("cannot attach to " + x.iface +
                       " in native mode (its driver may lack XDP; try " +
                       "generic mode)",
                   err);
  throw sysError("cannot attach the program to " + x.iface, err);
}

} // namespace

void attachNetlink(const InterfaceXdp &x, int progFd, XdpMode mode, int oldFd) {
  bpf_xdp_attach_opts opts;
  zeroOpts(opts);
  uint32_t flags = modeFlag(mode);
  if (oldFd >= 0 && x.mode != mode) {
    detachNetlink(x, oldFd);
    oldFd = -1;
  }
  if (oldFd >= 0) {
    // Atomic: packets see the old program or the new one, never none.
    flags |= XDP_FLAGS_REPLACE;
    opts.old_prog_fd = oldFd;
  } else {
    flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
  }
  if (int err = bpf_xdp_attach(int(x.ifindex), progFd, flags, &opts))
    attachFailed(x, mode, err, oldFd >= 0);
}

void detachNetlink(const InterfaceXdp &x, int progFd) {
  // XDP_FLAGS_REPLACE with the expected program: never detach a program
  // that replaced ours meanwhile.
  bpf_xdp_attach_opts opts;
  zeroOpts(opts);
  opts.old_prog_fd = progFd;
  if (int err = bpf_xdp_detach(int(x.ifindex),
                               modeFlag(x.mode) | XDP_FLAGS_REPLACE, &opts)) {
    if (err == -EBUSY)
      attachFailed(x, x.mode, EBUSY, true);
    throw sysError("cannot detach the program from " + x.iface, err);
  }
}

void attachDispatcher(const InterfaceXdp &x, xdp_program *prog, XdpMode mode) {
  if (x.dispatcher && x.mode != mode)
    throw LoadError(x.iface + "'s XDP dispatcher runs in " +
                    (x.mode == XdpMode::Native ? "native" : "generic") +
                    " mode; load with --mode " +
                    (x.mode == XdpMode::Native ? "native" : "generic") +
                    " to join it");
  if (int err = xdp_program__attach(prog, int(x.ifindex), libxdpMode(mode), 0))
    throw libxdpError(
        "cannot add the program to the XDP dispatcher of " + x.iface, err);
}

void detachDispatcher(const InterfaceXdp &x, uint32_t progId) {
  xdp_program *prog = xdp_program__from_id(progId);
  if (long err = libxdp_get_error(prog))
    throw libxdpError("cannot open program " + std::to_string(progId),
                      int(err));
  int err = xdp_program__detach(prog, int(x.ifindex), XDP_MODE_UNSPEC, 0);
  xdp_program__close(prog);
  if (err)
    throw libxdpError("cannot remove rule2xdp's program from the XDP " +
                          std::string("dispatcher of ") + x.iface,
                      err);
}

} // namespace r2x::runtime::detail
