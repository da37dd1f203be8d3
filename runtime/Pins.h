//===- runtime/Pins.h - convenience pins under bpffs -----------*- C++ -*-===//
//
/// \file
/// Private to runtime/. Pins name a loaded program's maps for people and
/// tools (`bpftool map dump pinned ...`); nothing in the runtime reads them
/// back (runtime/Discover.h finds programs from the interface). Where they
/// live and their modes are the contract's (contract::pin).
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace r2x::runtime::detail {

/// True if bpffs is mounted at contract::pin::BpffsRoot, mounting it (mode
/// 0700) when it is missing and this process shares its parent's mount
/// namespace. In a mount namespace of its own (`ip netns exec` makes one
/// and remounts /sys), a bpffs mounted here would vanish when the command
/// ends: it is not mounted, and the answer is false.
bool bpffsUsable();

/// This network namespace's pin directory for `iface`.
std::string pinDir(const std::string &iface);

/// The maps to pin (fds; -1 for a map the object does not have).
struct PinnedMaps {
  int counters = -1, ifmatch = -1, meta = -1, nat = -1, nat6 = -1;
};

/// Pins the maps of `iface`'s program, each replacing its older pin without
/// a moment where the name is missing. Directories 0700, pins 0600.
void pinMaps(const std::string &iface, const PinnedMaps &maps);

/// Removes `iface`'s pin directory, if any.
void removePins(const std::string &iface);

/// Removes every pin directory (of any network namespace) whose counters
/// map no loaded rule2xdp program uses any more: the leftovers of deleted
/// namespaces, of interfaces that went away, and of programs someone else
/// detached.
void sweepStalePins();

} // namespace r2x::runtime::detail
