//===- runtime/Lock.h - one rule2xdp at a time per interface ----*- C++ -*-===//
//
/// \file
/// Private to runtime/. Two rule2xdp processes on one interface would
/// interleave: both see "no program" and both attach (one fails), or both
/// replace the same old program and one replacement is lost. An
/// InterfaceLock makes them take turns: an exclusive flock(2) on
/// contract::lock::Dir/net<NETNS-INODE>-if<IFINDEX>.lock for each interface,
/// taken in ifindex order (two loads of overlapping interface lists cannot
/// deadlock) and held until it is destroyed. /run is not private under
/// `ip netns exec`, so processes started either way see the same files.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Support.h"

#include <map>
#include <vector>

namespace r2x::runtime::detail {

class InterfaceLock {
public:
  /// Waits (bounded: LoadError after Timeout) until every interface's lock
  /// is free, then holds them all.
  explicit InterfaceLock(std::vector<unsigned> ifindexes);
  InterfaceLock(const InterfaceLock &) = delete;
  InterfaceLock &operator=(const InterfaceLock &) = delete;

  /// Removes the lock file of `ifindex` while still holding it (after an
  /// unload: nothing is left to protect). A process waiting on the removed
  /// file notices and locks the new one.
  void forget(unsigned ifindex);

  /// The lock file of an interface of this network namespace.
  static std::string path(unsigned ifindex);

  static constexpr int TimeoutSeconds = 300;

private:
  std::map<unsigned, Fd> held_; ///< ifindex -> its locked file
};

/// The inode of this process's network namespace: what names it in pin
/// directories and lock files.
unsigned long netnsInode();

} // namespace r2x::runtime::detail
