//===- test/packet/Model.h - netfilter's meaning, for tests ----*- C++ -*-===//
//
/// \file
/// A reference model of what a compiled rule must do with a frame, written
/// from netfilter's semantics (ip_packet_match, xt_tcpudp, xt_dscp, the IPv4
/// and IPv6 receive checks) and the rule2xdp object contract, independently
/// of the compiler.
///
/// The fixed cases state their expected rule outcome by hand; the model
/// checks those statements (a disagreement is a bug in the test) and is the
/// oracle for the random-frame loop, where nobody can write expectations.
///
/// Traversal: raw and mangle PREROUTING (if the object has them) see every
/// IPv4 packet, fragments one by one; then the mangle and filter chains of
/// the hook the routing decision picks (INPUT or FORWARD). INPUT sees
/// reassembled datagrams, so a non-first fragment is handed to the kernel there
/// (XDP_PASS, no counter) and a first fragment stands for the datagram.
/// Counters add 1 packet and tot_len bytes.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace r2x::test {

enum XdpAction : uint32_t {
  kAborted = 0,
  kDrop = 1,
  kPass = 2,
  kTx = 3,
  kRedirect = 4
};
const char *actionName(uint32_t action);

/// One rule as the model understands it, parsed from the same words that are
/// given to the compiler (a small subset of iptables' syntax).
struct Rule {
  struct Addr {
    bool set = false, inv = false;
    uint32_t net = 0, mask = 0;
  };
  struct Ports {
    bool set = false, inv = false;
    uint16_t lo = 0, hi = 65535;
  };
  struct Iface {
    bool set = false, inv = false;
    std::string pattern;
  };
  /// -m dscp --dscp N: the DS field's upper six bits.
  struct Dscp {
    bool set = false, inv = false;
    uint8_t value = 0;
  };

  std::string text;
  std::vector<std::string> words;
  std::string table = "filter", chain, target;
  std::string command = "-A"; // or "-I"
  unsigned insertAt = 0;      // -I CHAIN N: N (0: no number given)
  bool isGoto = false;        // -g CHAIN rather than -j
  Addr src, dst;
  bool protoSet = false, protoInv = false;
  uint8_t proto = 0;
  Ports sport, dport;
  Iface in, out;
  Dscp dscp;
  bool v6 = false; // -6: an ip6tables rule (no -s/-d in the model)
};

/// Parses "-t raw -A PREROUTING ! -s 10.0.0.0/8 -p udp --dport 1:2 -j DROP".
/// Also `-6`, `-m dscp [!] --dscp N`, `-I CHAIN [N]` and `-g CHAIN`; without
/// `needTarget` a rule without -j/-g (it only counts) is accepted. Throws
/// std::invalid_argument on anything outside the supported subset.
Rule parseRule(const std::string &text, bool needTarget = true);

/// iptables' interface pattern test: a trailing '+' is a prefix wildcard.
bool ifacePatternMatches(const std::string &pattern, const std::string &name);

/// The L2/L3 view of a frame, or why the program must leave it alone.
/// IPv6 is read as far as the model goes: a packet whose first next header
/// is an extension header is IPv6 with `ext6` set, and rules that would walk
/// it are outside the model.
struct Parsed {
  bool ipv4 = false; // a valid IPv4 packet
  bool ipv6 = false; // a valid IPv6 packet (ip6_rcv_core()'s checks)
  std::string why;   // why IPv4 code leaves it alone (neither: XDP_PASS)
  uint16_t vidOuter = 0, vidInner = 0;
  size_t l3 = 0;                    // offset of the IP header in the frame
  unsigned ihlBytes = 0;            // IPv6: 40
  uint16_t totLen = 0, fragOff = 0; // IPv6: 40 + payload length, 0
  bool mf = false, df = false;
  bool ext6 = false;
  uint8_t tos = 0; // the DS field: IPv4 TOS, IPv6 traffic class
  uint8_t ttl = 0, proto = 0;
  uint32_t src = 0, dst = 0;
  bool l2Group = false;    // broadcast or multicast destination MAC
  std::vector<uint8_t> ip; // the datagram: frame[l3, l3 + totLen)
};
Parsed parseFrame(const std::vector<uint8_t> &frame);

enum class RuleResult { Match, NoMatch, Hotdrop };
const char *resultName(RuleResult r);

/// Evaluates one rule on a parsed packet of the rule's family as x_tables
/// does.
/// `ifname` is the device the frame's {ifindex, VIDs} names, if any;
/// `outname` the output device netfilter compares -o with: the route's
/// device in FORWARD, "" elsewhere (nulldevname). A rule with -o needs it.
RuleResult evalRule(const Rule &rule, const Parsed &pkt,
                    const std::optional<std::string> &ifname,
                    const std::string *outname = nullptr);

/// The filter chain a packet reaches after the routing decision.
enum class FilterChain { Input, Forward };

/// What the program must do: the action and the counter increments by slot
/// (packets, bytes).
struct Expected {
  uint32_t action = kPass;
  std::map<unsigned, std::pair<uint64_t, uint64_t>> counters;
  std::string trace; // how the model got there, for failure reports
  bool operator==(const Expected &o) const {
    return action == o.action && counters == o.counters;
  }
};
std::string describe(const Expected &e);

/// Walks the chains of `meta` for an IPv4 (or, `ipv6`, IPv6) packet with the
/// given fields, asking `eval` for the outcome of each rule. A family
/// without chains in `meta` is passed untouched.
Expected
traverse(const r2x::runtime::Meta &meta, FilterChain cls, bool ipv6,
         uint16_t totLen, uint16_t fragOff,
         const std::function<RuleResult(const r2x::runtime::MetaRule &)> &eval);

} // namespace r2x::test
