//===- runtime/LocalTable.h - the kernel's address types, for XDP -*- C++
//-*-===//
//
/// \file
/// `-m addrtype` asks inet_dev_addr_type() for an address's route type: a
/// longest-prefix lookup in the local routing table (RT_TABLE_LOCAL), whose
/// answer is the matching route's type, or UNICAST when none matches or the
/// route is an error route (blackhole, unreachable, prohibit, throw). XDP
/// cannot read that table, so the loader copies it into the program's
/// r2x_local map (contract::LocalMap) and a process that keeps the copy
/// current (`--accelerate --follow`) grants the program a lease on it
/// (contract::LocalOkMap); without a lease the program hands such tests to
/// the kernel.
///
/// One fact the copy must respect, checked on this machine's kernel (see
/// docs/handover.md, "-m addrtype"): until the namespace gets its first
/// `ip rule` of its own, the kernel keeps the local and main tables in one
/// trie (fib_trie's table merge), and the lookup then sees main's routes
/// too: a `local` or `broadcast` route an administrator put in main answers
/// addrtype, and a main route more specific than a local one hides it.
/// User space cannot tell whether the tables are merged (the first rule
/// splits them for good: deleting it does not merge them again), so
/// localTableEntries() gives every network the answer that holds in both
/// cases, or contract::LocalUnknown where the two differ.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2x::runtime {

/// One IPv4 route as RTM_GETROUTE dumps it.
struct Ipv4Route {
  uint32_t table = 0; ///< RT_TABLE_* (RTA_TABLE)
  uint8_t type = 0;   ///< RTN_*
  uint32_t dst = 0;   ///< host byte order, its host bits zero
  uint8_t len = 0;    ///< prefix length
  uint8_t tos = 0;    ///< a route with a TOS never answers addrtype
  /// The route has a nexthop marked dead or link-down: fib_table_lookup()
  /// may skip it and answer with the next less specific route.
  bool maySkip = false;
};

/// One entry of r2x_local: network dst/len (host order) and the route type
/// of its addresses that no longer entry covers, or contract::LocalUnknown.
struct LocalEntry {
  uint32_t dst = 0;
  uint8_t len = 0;
  uint32_t type = 0;
  bool operator==(const LocalEntry &) const = default;
};

/// The entries of r2x_local for `routes` (any tables; only local's and
/// main's are read), fewest that give every address its answer: an entry
/// whose answer its nearest covering entry (or, with none, UNICAST)
/// already gives is left out.
std::vector<LocalEntry> localTableEntries(const std::vector<Ipv4Route> &routes);

/// Every IPv4 route of the current network namespace (RTM_GETROUTE dump).
/// Throws LoadError.
std::vector<Ipv4Route> ipv4Routes();

/// What refreshLocalTable() did.
struct LocalRefresh {
  unsigned programs = 0; ///< programs with r2x_local on the interfaces
  unsigned entries = 0;  ///< entries each holds now
  /// Non-empty when no lease was granted (the table does not fit, ...).
  std::string refused;
  /// The r2x_local_ok maps granted a lease, for renewLocalLease().
  std::vector<uint32_t> leases;
};

/// Copies the current namespace's local routing table into r2x_local of
/// rule2xdp's programs on `ifaces` (those that have one) and grants each a
/// lease of `leaseMs` from now. The copy is made with the lease revoked, so
/// no packet sees half of it. Throws LoadError.
LocalRefresh refreshLocalTable(const std::vector<std::string> &ifaces,
                               unsigned leaseMs);

/// Fills r2x_local (`localFd`) from the current namespace's tables, with
/// the lease (`okFd`, r2x_local_ok) revoked while it writes, then grants a
/// lease of `leaseMs`. Returns the number of entries. Used by
/// refreshLocalTable() and by tests that run the program through
/// BPF_PROG_TEST_RUN. Throws LoadError (the table does not fit: the lease
/// stays revoked).
unsigned fillLocalTable(int localFd, int okFd, unsigned leaseMs);

/// Extends the leases refreshLocalTable() granted (`leases`, map ids) to
/// `leaseMs` from now, without reading the table again: for a caller that
/// hears of every change (openLocalTableEvents()) and refreshes on each.
/// A map that is gone is skipped.
void renewLocalLease(const std::vector<uint32_t> &leases, unsigned leaseMs);

/// Revokes the lease of rule2xdp's programs on `ifaces`: their `-m
/// addrtype` tests are handed over again. Errors are ignored (an interface
/// that is gone has no program to revoke).
void revokeLocalLease(const std::vector<std::string> &ifaces);

/// A netlink socket that hears of every change to IPv4 addresses, routes,
/// rules and links (the groups whose changes can change the local table's
/// answers), non-blocking; -1 if the kernel refuses. Any message on it
/// means "refresh".
int openLocalTableEvents();

} // namespace r2x::runtime
