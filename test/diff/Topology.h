//===- test/diff/Topology.h - the namespaces the test runs in ----*- C++
//-*-===//
//
/// \file
/// Three network namespaces made for one run (names carry the pid, so runs
/// never collide and nothing of the host is touched):
///
///     A: a0 10.1.0.1/24      ──veth── B: b0 10.1.0.2/24      2001:db8:1::2/64
///           2001:db8:1::1/64
///                                     B: b1 10.1.1.1/24      2001:db8:2::1/64
///                                            ──veth── C: c0 10.1.1.2/24
///                                                           2001:db8:2::2/64
///
/// MACs are fixed (a0 02:00:00:00:0a:01, b0 ..:0b:00, b1 ..:0b:01, c0
/// ..:0c:01) so rules and frames can name them and a seed replays the same
/// bytes. B is the router under test: ip_forward=1, IPv6 forwarding on,
/// rp_filter=0, default routes via C (so no destination is unroutable), and
/// permanent neighbour entries for every address it may talk to (it never
/// solicits; answerable() adds the sources fixed frames use). A and C have
/// only their connected routes, and their own nf_tables drops every IPv4 and
/// IPv6 packet they would send themselves (MLD, ND, ICMP errors, TCP resets
/// to what B forwards them): nothing of theirs reaches B's counters. IPv6
/// addresses are added with nodad, and no namespace makes link-local addresses
/// or sends router solicitations. Setup waits (bounded) until b0 and b1 are
/// operationally up: before linkwatch has run, B does not deliver IPv6
/// multicast to INPUT, which showed as a flaky ff02::1 frame.
///
/// The process itself lives in B after setup: the XDP program's fib lookup,
/// fillIfaceMap() and every `iptables` child then see B. Test frames are sent
/// from A (on a0) or C (on c0) with AF_PACKET sockets made inside those
/// namespaces.
///
/// Knowing that B has processed a frame: after each test frame the same
/// socket sends a sentinel, an Ethernet frame of the local experimental
/// EtherType 0x88B5 carrying a sequence number, and an AF_PACKET socket in B
/// waits for it (poll, bounded). Both frames go through the same per-CPU
/// backlog of B (the test pins itself to one CPU, so the sender never
/// migrates between the two sends), and B's IPv4 receive path, PREROUTING,
/// the routing decision and INPUT/FORWARD all run synchronously for the test
/// frame before the sentinel is dequeued. The sentinel is not IPv4, so no
/// table, chain or counter of the compared ruleset ever sees it.
///
/// Cleanup: the destructor, an atexit hook and a handler for SIGINT, SIGTERM,
/// SIGHUP, SIGQUIT and SIGPIPE all unmount and unlink /run/netns/NAME (what `ip
/// netns del` does, with async-signal-safe calls only); the namespaces die with
/// their last reference.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace r2x::diff {

using Mac = std::array<uint8_t, 6>;

/// Where a test frame enters B.
enum class Ingress { FromA, FromC };

/// How long B may take to process a frame (or a link to come up) before the
/// test reports it lost. Generous: every wait ends as soon as its event
/// happens, so this is reached only when something is broken, never on a
/// merely busy machine.
constexpr int kSettleTimeoutMs = 30000;

class Topology {
public:
  /// Builds the namespaces and moves the process into B. Throws
  /// std::runtime_error (setup failure) on any problem.
  Topology();
  ~Topology();
  Topology(const Topology &) = delete;
  Topology &operator=(const Topology &) = delete;

  /// The MAC and ifindex (in B) of the interface a frame from `in` reaches.
  const Mac &routerMac(Ingress in) const;
  unsigned routerIfindex(Ingress in) const;
  const Mac &senderMac(Ingress in) const;

  /// Sends `frame` into B from A or C, then a sentinel, and waits (bounded)
  /// until B has received the sentinel. Returns false on timeout; throws on
  /// a socket error.
  bool sendAndSettle(Ingress in, const std::vector<uint8_t> &frame,
                     int timeoutMs = kSettleTimeoutMs);

  const std::string &nameB() const { return names_[1]; }

  /// Makes sure B can answer `src` (a frame's source address) without
  /// soliciting: an address on a0's or c0's link that nobody owns gets a
  /// permanent neighbour entry with A's or C's MAC, once. Otherwise B's
  /// answer to it (a TCP reset, an ICMP error) waits for ARP, fails seconds
  /// later and comes back into B's own INPUT as ICMP host unreachable (via
  /// lo), counted against some later frame. A and C drop what B sends them
  /// for addresses that are not theirs, silently.
  void answerable(const std::string &src);

private:
  void sentinel(Ingress in);
  bool awaitSentinel(int timeoutMs);

  std::array<std::string, 3> names_; // A, B, C
  int origNs_ = -1;
  int txA_ = -1, txC_ = -1, rx_ = -1;
  unsigned b0_ = 0, b1_ = 0;
  Mac macA0_{}, macB0_{}, macB1_{}, macC0_{};
  uint64_t seq_ = 0;
  std::set<std::string> answerable_; // sources with a neighbour entry in B
};

} // namespace r2x::diff
