//===- runtime/Fill.h - the maps the loader fills ---------------*- C++ -*-===//
//
/// \file
/// Private to runtime/: filling the maps an object leaves to its loader,
/// from the current network namespace's devices (contract in Loader.h for
/// the two tests use too, fillIfaceMap() and fillMacMap()).
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>

namespace r2x::runtime::detail {

/// `r2x_tx` (DEVMAP_HASH ifindex -> ifindex): the devices the program may
/// redirect translated packets to. With `only`, just those (the devices
/// that can transmit what XDP redirects); without it, every device of the
/// namespace. A device missing from the map makes bpf_redirect_map return
/// the program's fallback, XDP_PASS: the kernel forwards the packet.
void fillTxMap(int mapFd, const std::optional<std::set<unsigned>> &only);

/// The targets of tc `mirred egress redirect` (the metadata's `redirect`
/// records), each resolved to its ifindex in the current network namespace:
/// slot -> ifindex. A missing device is a load error naming it: act_mirred
/// would refuse to be created without it.
std::map<uint32_t, uint32_t> redirectTargets(const Meta &meta);

/// `r2x_redirect` (DEVMAP slot -> ifindex), whose size is `slots`.
void fillRedirectMap(int mapFd, uint32_t size,
                     const std::map<uint32_t, uint32_t> &slots);

} // namespace r2x::runtime::detail
