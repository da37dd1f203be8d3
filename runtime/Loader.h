//===- runtime/Loader.h - attach rule2xdp objects to interfaces ---*- C++ -*-===//
//
/// \file
/// The loader side of rule2xdp. It knows BPF ELF objects and libbpf only (no
/// LLVM, no iptables syntax), so it could ship without the compiler.
///
/// What it expects of an object is the object contract
/// (runtime/contract/Object.h, described in docs/object-contract.md): the
/// program `rule2xdp` in section `xdp`, the maps `r2x_counters` and
/// `r2x_ifmatch`, the metadata text `r2x_meta`, and the optional maps load()
/// fills when the object has them (`r2x_ifmac`, `r2x_tx`, `r2x_redirect`)
/// or pins (`r2x_nat`, `r2x_nat6`). runtime/BpfObject.h finds each one and
/// checks its shape; runtime/Meta.h parses the metadata.
///
/// Pins live under /sys/fs/bpf/rule2xdp/IFACE/: `link`, `counters`,
/// `ifmatch`, `meta` (and `nat`, `nat6`). A pinned link keeps the program
/// attached after the process exits; loading again on the same interface
/// replaces the program atomically through bpf_link_update.
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
