//===- runtime/Loader.h - attach rule2xdp objects to interfaces ---*- C++
//-*-===//
//
/// \file
/// The loader side of rule2xdp. It knows BPF ELF objects, libbpf, libxdp and
/// netlink only (no LLVM, no iptables syntax), so it could ship without the
/// compiler.
///
/// What it expects of an object is the object contract
/// (runtime/contract/Object.h, described in docs/object-contract.md): the
/// program `rule2xdp` in section `xdp`, the maps `r2x_counters` and
/// `r2x_ifmatch`, the metadata text `r2x_meta`, and the optional maps load()
/// fills when the object has them (`r2x_ifmac`, `r2x_tx`, `r2x_redirect`)
/// or pins (`r2x_nat`, `r2x_nat6`). runtime/BpfObject.h finds each one and
/// checks its shape; runtime/Meta.h parses the metadata.
///
/// A loaded program stays attached without pins (netlink attach, or libxdp's
/// dispatcher), and is found again from the interface itself
/// (runtime/Discover.h: that is also where "rule2xdp owns this program" is
/// decided). Pins under /sys/fs/bpf/rule2xdp/ are a convenience for people
/// and tools. Two rule2xdp processes on one interface take turns (a lock per
/// interface, runtime/Lock.h).
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"

#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

struct bpf_object;
struct bpf_map;

namespace r2x::runtime {

/// A kernel or load failure (exit code 2). `log` holds the verifier's or
/// libbpf's output excerpt, if any.
struct LoadError : std::runtime_error {
  LoadError(const std::string &msg, std::string log = {})
      : std::runtime_error(msg), log(std::move(log)) {}
  std::string log;
};

enum class XdpMode { Native, Generic };

struct LoadOptions {
  XdpMode mode = XdpMode::Native;
  /// Through libxdp's multi-program dispatcher, so other XDP programs
  /// (xdp-loader's) share the interface. Taken anyway when an interface
  /// already has a dispatcher.
  bool multiprog = false;
  /// Non-zero: replace only this program of rule2xdp's (an edit of it,
  /// `--load IFACE -A ...`); when an interface runs another one (or none)
  /// by the time the load starts, the load is refused and nothing changes.
  uint32_t replaceOnly = 0;
};

/// rule2xdp's program on one interface, as an edit starts from it.
struct LoadedProgram {
  uint32_t progId = 0;  ///< 0: rule2xdp has no program there
  std::string metaText; ///< its metadata text
};

/// rule2xdp's program on each of `ifaces` (in order). Throws LoadError for
/// an interface that does not exist.
std::vector<LoadedProgram>
loadedPrograms(const std::vector<std::string> &ifaces);

/// The pin directory for an interface of this network namespace:
/// /sys/fs/bpf/rule2xdp/net<NETNS-INODE>/IFACE.
std::string pinDir(const std::string &iface);

/// Loads `object` (an ELF image in memory) once and attaches it to every
/// interface of `ifaces`, which then share its maps (counters, and the NAT
/// table a DNAT program needs on both directions' interfaces). Replaces
/// rule2xdp's program where there is one (atomically, except through a
/// dispatcher or when the mode changes), keeping the counters of the rules
/// both programs have (by their keys) and a DNAT program's connection
/// table. Refuses, changing nothing, an interface whose XDP program is not
/// rule2xdp's (unless it is a libxdp dispatcher), and a DNAT program whose
/// replies would be lost: one that is not loaded where they arrive, or (in
/// native mode) loaded on an interface that cannot transmit what XDP
/// redirects. Throws LoadError.
///
/// The loader fills `r2x_ifmatch`, `r2x_ifmac`, `r2x_redirect`, and
/// `r2x_tx` (DEVMAP_HASH ifindex -> ifindex) with the devices of the
/// network namespace the program can redirect to: in native mode only those
/// that transmit redirected frames (the kernel's NETDEV_XDP_ACT_NDO_XMIT),
/// so a packet for any other gets XDP_PASS and the kernel forwards it.
void load(const std::vector<std::string> &ifaces, const LoadOptions &options,
          const std::vector<uint8_t> &object);

/// Detaches rule2xdp's program from `iface` (only rule2xdp's, also from a
/// dispatcher shared with others) and removes its pins. Throws LoadError if
/// rule2xdp has no program there.
void unload(const std::string &iface);

/// Fills the `r2x_ifmatch` map (given by fd) for every interface of the
/// current network namespace, including VLAN devices stacked on them, from
/// the `-i` patterns of the object's metadata (parseMeta()). Used by load()
/// and by tests that run the program through BPF_PROG_TEST_RUN.
void fillIfaceMap(int mapFd, const Meta &meta);

/// Fills `r2x_ifmac` (ARRAY, ifindex -> MAC in frame byte order, two zero
/// bytes after it) for every Ethernet device of the current network
/// namespace, so the program can leave frames for other hosts to the kernel
/// as ip_rcv_core() does. Used by load() and by tests.
void fillMacMap(int mapFd);

/// Fills `r2x_rst` (ARRAY, ifindex -> contract::RstValue) for every device
/// of the current network namespace from its sysctls
/// (net.ipv4.ip_default_ttl, net.ipv6.conf.DEV.hop_limit; one that cannot
/// be read stays 0, and the program then hands that family's REJECTs over).
/// Used by load() and by tests.
void fillRstMap(int mapFd);
/// `rule2xdp --set-add` / `--set-del`: adds (`add`) or deletes one entry of
/// ipset set `set` in rule2xdp's program on `iface`, without a reload. `key`
/// and `value` are the entry in the layout of the set's map (the compiler
/// reads the entry with the `set` record's CREATE). As `ipset add` and
/// `ipset del` without -exist: adding an entry the set has, or deleting
/// one it has not, is an error; so is a full set (its maxelem). Throws
/// LoadError.
void updateSet(const std::string &iface, const std::string &set,
               const std::string &key, uint32_t value, bool add);

/// The `set` record's CREATE of set `set` in rule2xdp's program on `iface`.
/// Throws LoadError when there is no such program or set.
std::string setCreateOptions(const std::string &iface, const std::string &set);

/// Fills the ipset maps (`set` records of `meta`, r2x_set<N>) of an opened
/// object from the entries the object carries (contract::SetsSection of
/// `image`, the object's bytes). `fdOf` gives the fd of a map to fill
/// (load() creates it; a test takes libbpf's). Used by load() and by tests.
void fillSetMaps(bpf_object *obj, const std::vector<uint8_t> &image,
                 const Meta &meta, const std::function<int(bpf_map *)> &fdOf);

} // namespace r2x::runtime
