//===- compiler/ir/IR.h - the rule IR: contract between front and back -*- C++ -*-===//
//
/// \file
/// The IR is what every frontend (iptables command lines, iptables-save
/// files, later tc u32) produces and what the backend compiles. It depends
/// on nothing else of ours and knows no concrete syntax: a rule is a list of
/// matches and one target, chains are ordered rule lists attached to
/// netfilter hooks, and every rule and built-in policy owns one counter slot.
///
/// Meaning is netfilter's (see docs/design.md): a rule matches when all its
/// matches match; the first matching rule's target decides; no match means
/// the chain policy. Each table is its own traversal, so ACCEPT in `raw`
/// goes on to `filter`.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace r2x::ir {

/// Where a piece of input came from, for diagnostics: a file line and
/// column, or a command-line argument index (line 0).
struct SourcePos {
  std::string file; ///< "<command line>" for argv
  unsigned line = 0;
  unsigned col = 0; ///< 1-based
  int arg = -1;     ///< argv index when the input is the command line
};

/// iptables (IPv4) or ip6tables (IPv6): separate tables in the kernel, and
/// separate chains here; one program holds both.
enum class Family { V4, V6 };

/// Tables in netfilter's order within a hook (raw, mangle, nat, filter).
enum class Table { Raw, Mangle, Nat, Filter };
/// Netfilter hooks a received packet can traverse.
enum class Hook { Prerouting, Input, Forward };
/// Continue: a rule with no -j only counts, then evaluation goes on.
/// Jump (-j CHAIN) runs a user chain and comes back; Goto (-g CHAIN) runs
/// it and does not come back; Return ends the current chain (in a built-in
/// chain: its policy). Dnat (nat PREROUTING only) binds the connection to a
/// new destination (Rule::nat) and ends the nat table.
enum class Verdict { Accept, Drop, Continue, Jump, Goto, Return, Dnat };

/// `-j DNAT --to-destination ADDR[:PORT[-PORT]] [--random] [--persistent]`.
/// One address (IPv4 host order, or addr6); ports 0 = keep the port.
struct NatTarget {
  uint32_t addr = 0;
  std::array<uint8_t, 16> addr6{}; ///< ip6tables: the address as on the wire
  bool v6 = false;
  uint16_t portLo = 0, portHi = 0;
  bool random = false, persistent = false;
};

const char *tableName(Table t);
const char *hookChainName(Hook h);
const char *verdictName(Verdict v);

/// An inclusive port range, as xt_tcpudp keeps it.
struct PortRange {
  uint16_t lo = 0, hi = 0xffff;
  bool negated = false;
};

/// A header field a `Field` match compares. The backend's field table says
/// where each lives (compiler/backend/Fields.cpp): adding a simple match is
/// one entry there and one parser case.
enum class Field {
  IpTos,    ///< IPv4 TOS byte (tos, dscp, ecn)
  IpTotLen, ///< IPv4 total length (length)
  IpTtl,    ///< IPv4 TTL (ttl)
  IpSaddr,  ///< IPv4 source (iprange)
  IpDaddr,  ///< IPv4 destination (iprange)
  EthSrc,   ///< Ethernet source address, 48 bits (mac)
  PktType,  ///< 0 unicast, 1 broadcast, 2 multicast, from the destination MAC (pkttype)
  TcpFlagsByte, ///< byte 13 of a TCP header at IHL, read as xt_ecn reads it:
                ///< also in a non-first fragment, no match (no hotdrop) if
                ///< 20 bytes are not there (ecn --ecn-tcp-ece/cwr)
};

/// TCP flags under a mask (`--tcp-flags MASK COMP`, `--syn`).
struct TcpFlags {
  uint8_t mask = 0, comp = 0;
  bool negated = false;
};

/// One match of a rule. The kinds mirror netfilter's split. The first five
/// are `struct ipt_ip` fields checked by ip_packet_match() (Fragment is
/// `-f`: a non-first fragment). TcpUdp, Icmp and Multiport are x_tables
/// matches that read the transport header. They never match a non-first
/// fragment, and they "hotdrop" a packet whose header is cut short. Field
/// is a header field compared with a range under a mask.
/// One test of `-m u32 --u32` (xt_u32): a location (a number, then
/// operators &, <<, >>, @ each with a number) and the value ranges the word
/// found there must fall in.
struct U32Test {
  enum class Op : uint8_t { And, Shl, Shr, At };
  uint32_t start = 0;
  std::vector<std::pair<Op, uint32_t>> ops;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
};

struct Match {
  enum class Kind {
    Source, Destination, Protocol, InIface, Fragment,
    TcpUdp, Icmp, Multiport, Field, U32
  };
  explicit Match(Kind k) : kind(k) {}
  Kind kind;
  bool negated = false; ///< all kinds but TcpUdp (ranges and flags carry
                        ///< their own)
  std::string listing;  ///< what `iptables -vxnL` prints for it, if anything

  // Source / Destination: (addr & mask) == net, host byte order, net is
  // already masked. IPv6 chains use net6/mask6 (network byte order).
  uint32_t net = 0, mask = 0;
  std::array<uint8_t, 16> net6{}, mask6{};
  // Protocol: the IPv4 protocol number (never 0: `-p all` is no match).
  uint8_t proto = 0;
  // InIface: the iptables pattern ('+' suffix = prefix) and its bit in the
  // object's interface table.
  std::string iface;
  unsigned ifaceBit = 0;
  // TcpUdp: which protocol's header (6 or 17) and the optional tests.
  uint8_t l4proto = 0;
  std::optional<PortRange> sport, dport;
  std::optional<TcpFlags> tcpFlags;
  // TcpUdp (tcp): --tcp-option N (0 = none), and whether it is `!`.
  uint8_t tcpOption = 0;
  bool tcpOptionNegated = false;
  // Icmp: type (255 = any) and an inclusive code range.
  uint8_t icmpType = 255, icmpCodeLo = 0, icmpCodeHi = 255;
  // Multiport: ranges tested against the source, destination or either port.
  enum class PortSide { Source, Destination, Either } side = PortSide::Either;
  std::vector<PortRange> ports;
  // U32: every test holds (xor negated).
  std::vector<U32Test> u32;
  // Field: ((field & fieldMask) in [lo, hi]) xor negated.
  Field field = Field::IpTos;
  uint64_t fieldMask = ~uint64_t(0), lo = 0, hi = 0;
};

struct Rule {
  SourcePos pos;
  std::string text; ///< the rule as written, for comments and listings
  std::vector<Match> matches;
  std::vector<std::string> comments; ///< -m comment (listing only)
  Verdict verdict = Verdict::Accept;
  std::string jumpTarget; ///< the user chain of Jump and Goto
  NatTarget nat;          ///< Dnat's binding
  unsigned counter = 0;   ///< slot in the counters map (assigned by finalize)
};

struct Chain {
  Family family = Family::V4;
  Table table;
  Hook hook;         ///< meaningless for a user chain
  bool user = false; ///< created with -N / `:NAME -`: no hook, no policy
  std::string name;
  Verdict policy = Verdict::Accept;
  std::vector<Rule> rules;
  unsigned policyCounter = 0; ///< slot of the policy counter (built-in only)
  SourcePos pos;              ///< where it was declared, if anywhere
};

/// A whole ruleset for the ingress path. Chains are kept in netfilter's
/// traversal order by finalize().
struct Program {
  std::vector<Chain> chains;
  std::vector<std::string> ifacePatterns; ///< index = Match::ifaceBit
  unsigned numCounters = 0;

  /// The chain for (family, table, hook), created with policy ACCEPT if
  /// absent.
  Chain &chain(Family f, Table t, Hook h);
  /// The user chain `name` of table `t` of family `f`, or null.
  Chain *userChain(Family f, Table t, const std::string &name);
  const Chain *userChain(Family f, Table t, const std::string &name) const;
  /// The bit for an interface pattern, allocating a new one if needed.
  /// Returns -1 when the 64 available bits are used up.
  int ifaceBit(const std::string &pattern);
  /// Sorts chains into traversal order (raw PREROUTING, filter INPUT,
  /// filter FORWARD; a filter table always shows both; user chains after
  /// the built-in chains of their table, in declaration order) and assigns
  /// counter slots: rules first in chain order, then one policy slot per
  /// built-in chain.
  void finalize();
  bool hasHook(Hook h) const;
  /// Whether any nat chain of family `f` has a rule (DNAT needs the NAT
  /// table and the forwarding fast path).
  bool hasNat(Family f) const;
  bool hasFamily(Family f) const;
};

/// Human-readable dump of the IR (`--emit=ir`); stable for lit tests.
std::string print(const Program &p);

/// Dotted-quad form of a host-order address.
std::string formatAddr(uint32_t a);
/// `10.0.0.0/8` style: prefix length if the mask is contiguous, else the
/// dotted mask, as iptables -n prints them.
std::string formatNet(uint32_t net, uint32_t mask);
/// IPv6 forms, as ip6tables -n prints them (`2001:db8::/32`, `::/0`).
std::string formatAddr6(const std::array<uint8_t, 16> &a);
std::string formatNet6(const std::array<uint8_t, 16> &net,
                       const std::array<uint8_t, 16> &mask);
const char *familyName(Family f);
/// `to:10.1.1.2:8080-8090 random`, as iptables -n lists a DNAT target.
std::string formatNatTarget(const NatTarget &t);

} // namespace r2x::ir
