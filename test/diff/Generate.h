//===- test/diff/Generate.h - random rulesets and datagrams ------*- C++
//-*-===//
//
/// \file
/// Seeded, reproducible generation of
///  - whole rulesets in iptables-save / ip6tables-save form (1-8 rules over
///    raw PREROUTING, mangle PREROUTING/INPUT/FORWARD, filter INPUT/FORWARD
///    and user chains, with policies, -j, -g, RETURN and count-only rules),
///    using every match rule2xdp compiles (docs/matches.md), with `!` where
///    iptables allows it;
///  - test datagrams (one frame, or a whole fragmented datagram; IPv6 with
///    extension headers) whose fields come from the same value pools as the
///    rules (ports, TTLs, lengths, flags, types, addresses, MACs), so both
///    sides of every match are hit.
/// Ruleset K of seed S and its datagrams depend only on (S, K, family), so
/// `--seed S --only K` replays one ruleset exactly.
///
/// Datagrams are described by a DatagramSpec, which is also what the fixed
/// frame files (rulesets/*.frames) are parsed into: one datagram a line,
/// `key=value` words (see parseDatagram()).
//===----------------------------------------------------------------------===//
#pragma once

#include "test/diff/Topology.h"

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace r2x::diff {

/// A deterministic generator (std::mt19937_64 is specified exactly; the
/// distributions of <random> are not, so none is used).
class Rng {
public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t next() { return rng_(); }
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <class T> T pick(std::initializer_list<T> xs) {
    return *(xs.begin() + below(xs.size()));
  }
  template <class T> const T &pick(const std::vector<T> &xs) {
    return xs[below(xs.size())];
  }

private:
  std::mt19937_64 rng_;
};

enum class Family { V4, V6 };

/// A ruleset: the text given both to iptables-restore and `rule2xdp -f`.
struct RulesetSpec {
  Family family = Family::V4;
  std::string text;
  std::string name;                   // "random" or the file name
  bool hasL4 = false;                 // some rule reads the transport header
  bool invertedFullPortRange = false; // ! --sport 0:65535 and the like
  bool tcpFlagsMaskNone = false;      // --tcp-flags NONE X with X not NONE
  std::vector<std::string> tables;    // "filter", "raw", "mangle"
  /// A -m length in a chain after the routing decision: see main(), a
  /// local fragmented IPv4 datagram is then not sent (compiler bug B4).
  bool lengthAfterRouting = false;
};

/// A random ruleset. `handover`: it may also use what only hand-over mode
/// compiles (`-m addrtype`, decided from the local table's copy).
RulesetSpec makeRuleset(Rng &rng, Family family, bool handover = false);
/// A ruleset file (an iptables-save dump); the family from its addresses
/// or from `# family: ipv6` / an ip6tables-save header.
RulesetSpec rulesetFromFile(const std::string &path);
/// Fills hasL4 etc. from the text.
void analyse(RulesetSpec &rs);

/// What a test datagram is, before it is built into frames.
struct DatagramSpec {
  Family family = Family::V4;
  Ingress in = Ingress::FromA;
  std::string src, dst;
  bool local = false;     // B delivers it (INPUT), else it forwards it
  std::string l4 = "udp"; // udp tcp icmp icmp6 raw
  uint8_t proto = 17;     // for raw
  uint16_t sport = 40000, dport = 1234;
  uint8_t tcpFlags = 0x02;
  std::vector<uint8_t> tcpOpts; // TCP options (a multiple of 4 bytes)
  uint8_t icmpType = 8, icmpCode = 0;
  /// ICMP and ICMPv6 errors: the payload starts with a quoted datagram (as
  /// far as the payload reaches): the IP header of a UDP datagram from dst
  /// port
  /// `dport` to src port `sport`, then its ports, as the error about a
  /// reply to sport -> dport would quote it (conntrack looks the inverted
  /// tuple up: an entry of a datagram this test sent makes it RELATED).
  bool quote = false;
  uint8_t ttl = 64, tos = 0; // IPv6: hop limit, traffic class
  size_t payload = 0;
  unsigned ipOptWords = 0; // IPv4 NOP options, words of 4 bytes
  bool eolOption = false;
  bool df = false;
  /// IPv6 extension headers in order (0 hop-by-hop, 43 routing, 44
  /// fragment, 51 AH, 60 destination options). A 44 here is an atomic
  /// fragment unless `fragments` is set, which fragments after it.
  std::vector<uint8_t> ext;
  int fragments = 0;       // 0: whole; 2 or 3: a fragmented datagram
  size_t firstFragL4 = 24; // bytes of L4 in the first fragment
  std::string dmac;        // "" B's MAC, "bcast", "mcast", "other"
  std::string smac;        // "" the sender's MAC, else this
  uint16_t ipId = 0;
};

/// Which destinations datagrams use: the standard set, or that set plus the
/// limited broadcast, multicast and martian destinations (--wide).
enum class DestinationSet { Standard, Wide };

DatagramSpec makeDatagramSpec(Rng &rng, Family family, DestinationSet dsts);

/// "from=A l4=tcp src=10.1.0.1 dst=10.1.0.2 dport=22 flags=0x02 ..." (see
/// the .frames files). Throws std::invalid_argument on a bad line.
DatagramSpec parseDatagram(const std::string &line, Family family);

/// The one-line description (the same key=value form parseDatagram takes).
std::string describeDatagram(const DatagramSpec &d);

struct Datagram {
  DatagramSpec spec;
  std::vector<std::vector<uint8_t>> frames; // >1: fragments, in order
  std::string summary;
};

Datagram buildDatagram(const DatagramSpec &spec, const Topology &topo);

/// The fragment offset (8-byte units) of a frame, either family; 0 if none.
unsigned fragmentOffset(const std::vector<uint8_t> &frame);
/// An IPv6 frame whose header chain (up to the upper layer) holds AH.
bool hasAuthHeader(const std::vector<uint8_t> &frame);

} // namespace r2x::diff
