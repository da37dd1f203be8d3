//===- runtime/Loader.h - attach rule2xdp objects to interfaces ---*- C++ -*-===//
//
/// \file
/// The loader side of rule2xdp. It knows BPF ELF objects and libbpf only (no
/// LLVM, no iptables syntax), so it could ship without the compiler.
///
/// Contract with the compiler (see docs/design.md, "The object contract"):
///  - one program, function `rule2xdp`, section `xdp`;
///  - map `r2x_counters` (PERCPU_ARRAY, u32 -> struct {u64 packets, bytes});
///  - map `r2x_ifmatch`  (HASH, struct {u32 ifindex; u16 vid_outer, vid_inner}
///    -> u64 bitmask of the object's `-i` patterns that name that device);
///  - `.rodata` global `r2x_meta`: the metadata text (runtime/Meta.h);
///  - optional, by name: `r2x_nat`/`r2x_nat6` (DNAT connection tables,
///    pinned), `r2x_tx` (DEVMAP_HASH of every device, for DNAT forwarding),
///    `r2x_ifmac` (ARRAY ifindex -> MAC), `r2x_redirect` (DEVMAP of tc
///    mirred targets, named by the metadata's `redirect` records); load()
///    fills each one the object has. `r2x_hdr` and `r2x_scratch` (per-CPU
///    work space of the program itself) need nothing from the loader.
///
/// Pins live under /sys/fs/bpf/rule2xdp/IFACE/: `link`, `counters`,
/// `ifmatch`, `meta`. A pinned link keeps the program attached after the
/// process exits; loading again on the same interface replaces the program
/// atomically through bpf_link_update.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace r2x::runtime {

/// A kernel or load failure (exit code 2). `log` holds the verifier's or
/// libbpf's output excerpt, if any.
struct LoadError : std::runtime_error {
  LoadError(const std::string &msg, std::string log = {})
      : std::runtime_error(msg), log(std::move(log)) {}
  std::string log;
};

enum class XdpMode { Native, Generic };

/// The pin directory for an interface: /sys/fs/bpf/rule2xdp/IFACE.
std::string pinDir(const std::string &iface);

/// Loads `object` (an ELF image in memory) once and attaches it to every
/// interface of `ifaces`, which then share its maps (counters, and the NAT
/// table a DNAT program needs on both directions' interfaces). Replaces a
/// program rule2xdp attached earlier. Throws LoadError.
///
/// An object with DNAT has two more maps: `r2x_nat` (LRU_HASH, the
/// connection table, pinned as `nat`) and `r2x_tx` (DEVMAP_HASH ifindex ->
/// ifindex), which load() fills with every device of the network namespace
/// so the program can redirect to any of them.
void load(const std::vector<std::string> &ifaces, XdpMode mode,
          const std::vector<uint8_t> &object);

/// Detaches rule2xdp's program from `iface` and removes its pins. Throws
/// LoadError if nothing is attached by rule2xdp there.
void unload(const std::string &iface);

/// Prints the per-rule counters of the program on `iface`, laid out like
/// `iptables -vxnL`. Throws LoadError.
void printStats(const std::string &iface, std::FILE *out);

/// Fills the `r2x_ifmatch` map (given by fd) for every interface of the
/// current network namespace, including VLAN devices stacked on them, from
/// the `-i` patterns of the metadata text. Used by load() and by tests that
/// run the program through BPF_PROG_TEST_RUN.
void fillIfaceMap(int mapFd, const std::string &metaText);

/// Fills `r2x_ifmac` (ARRAY, ifindex -> MAC in frame byte order, two zero
/// bytes after it) for every Ethernet device of the current network
/// namespace, so the program can leave frames for other hosts to the kernel
/// as ip_rcv_core() does. Used by load() and by tests.
void fillMacMap(int mapFd);

} // namespace r2x::runtime
