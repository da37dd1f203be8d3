//===- runtime/Netlink.h - what the kernel says about devices --*- C++ -*-===//
//
/// \file
/// Private to runtime/: the few questions the loader asks the kernel over
/// netlink (libmnl) and ethtool, about the current network namespace.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace r2x::runtime::detail {

/// enum netdev_xdp_act of linux/netdev.h (kernel 6.3+; Debian 12's headers
/// predate it): the device implements ndo_xdp_xmit, so frames that XDP
/// redirects to it are sent. The kernel refuses to transmit a redirected
/// frame on a device without it (__xdp_enqueue), and drops it; a veth has it
/// only while its peer has an XDP program or GRO on.
inline constexpr uint64_t XdpActNdoXmit = 1u << 2;

/// Every device of this namespace with its XDP features (NETDEV_XDP_ACT_*
/// bits), from the netdev generic netlink family; nothing if the kernel has
/// no such family (before 6.3: no way to tell). Throws LoadError.
std::optional<std::map<unsigned, uint64_t>> xdpFeatures();

/// The kernel's route to `address` (IPv4 or IPv6 text) from this namespace,
/// as `ip route get` gives it.
struct Route {
  unsigned ifindex = 0; ///< the output device
  bool local = false;   ///< the address is this host's own
};
/// Throws LoadError naming the address if there is no route.
Route routeTo(const std::string &address);

/// The driver of a device of this namespace ("veth", ...), empty if it
/// does not say.
std::string driverName(const std::string &iface);

} // namespace r2x::runtime::detail
