//===- runtime/Discover.h - what XDP runs on an interface -------*- C++ -*-===//
//
/// \file
/// The kernel's own view of an interface's XDP programs, and which of them
/// is rule2xdp's. Everything here asks the kernel, never bpffs: pins live in
/// a mount namespace (`ip netns exec` hides them, a deleted network
/// namespace leaves them behind), the interface's programs do not.
///
/// The ownership model (docs/object-contract.md, "Finding the program"): a
/// program is rule2xdp's when
///  1. it runs on this interface of this network namespace: it is the
///     program bpf_xdp_query() reports for the interface (driver, generic
///     or offload slot), or a component of the libxdp dispatcher that is
///     (an extension program whose freplace link targets that dispatcher);
///  2. its name is contract::ProgName;
///  3. its maps include contract::CountersMap with the contract's type and
///     sizes, and a `.rodata` map whose value holds a metadata text this
///     runtime reads (runtime/Meta.h). A program's maps are those its code
///     uses and those bound to it: libbpf binds `.rodata` to every program
///     it loads (bpf_prog_bind_map), and the loader binds the maps it fills,
///     which a program without `-i` rules never reads.
/// A program failing any of these is someone else's: --load refuses to
/// replace it (a dispatcher excepted, which rule2xdp joins), --unload and
/// --stats do not touch it.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Loader.h"

#include "runtime/Meta.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace r2x::runtime {

/// rule2xdp's program on an interface, with the ids of its maps.
struct OwnProgram {
  uint32_t progId = 0;
  uint32_t countersId = 0, metaId = 0;
  uint32_t ifmatchId = 0;         ///< 0 for a program of an older loader
  uint32_t natId = 0, nat6Id = 0; ///< 0: the object has no such map
  uint32_t logId = 0;             ///< r2x_log, 0 without LOG rules
  /// r2x_local and r2x_local_ok, 0 without -m addrtype.
  uint32_t localId = 0, localOkId = 0;
  std::string metaText; ///< read from the `.rodata` map
  /// metaText parsed: inspect() parses it to decide the program is
  /// rule2xdp's, and every user of an OwnProgram reads this one parse
  /// (100,000 rules' metadata takes a fifth of a second to parse).
  std::shared_ptr<const Meta> meta;
  /// The ipset maps (contract::SetMaps, named SetMapPrefix + N) by name.
  std::map<std::string, uint32_t> setIds;
};

/// What runs on one interface.
struct InterfaceXdp {
  std::string iface;
  unsigned ifindex = 0;
  /// The program attached to the interface itself, 0 if none, and how.
  uint32_t attachedId = 0;
  std::string attachedName;
  XdpMode mode = XdpMode::Native;
  /// The attached program is libxdp's multi-program dispatcher; its
  /// components (extension programs) in link order.
  bool dispatcher = false;
  std::vector<uint32_t> components;
  /// rule2xdp's program: the attached one or a dispatcher component.
  std::optional<OwnProgram> own;
};

/// Inspects `iface` (which must exist in this network namespace) as the
/// kernel sees it. Throws LoadError.
InterfaceXdp inspect(const std::string &iface);

/// If program `progId` (any program, attached or not) is rule2xdp's by
/// points 2 and 3 above, its maps; otherwise nothing. Throws LoadError only
/// on system errors other than the program having gone away.
std::optional<OwnProgram> ownProgram(uint32_t progId);

/// The name libxdp's dispatcher program has in the kernel.
inline constexpr const char *DispatcherName = "xdp_dispatcher";

} // namespace r2x::runtime
