//===- test/packet/Frame.h - frames for the packet tests -------*- C++ -*-===//
//
/// \file
/// A small builder for the Ethernet frames the packet tests push through
/// BPF_PROG_TEST_RUN: up to any number of VLAN tags, IPv4 with options and any
/// IHL, fragments, IPv6 (no extension headers), UDP/TCP/ICMP/raw payloads,
/// and the malformed shapes the
/// kernel's IP layer discards (bad version, short IHL, tot_len out of range,
/// cut frames). Every field the tests want to lie about can be overridden;
/// everything else is derived so a default frame is well formed.
///
/// Values are written in host order and converted when the frame is built.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace r2x::test {

/// "10.1.0.2" -> 0x0a010002 (host order). Throws on a malformed address.
uint32_t ipv4(const std::string &dotted);
/// 0x0a010002 -> "10.1.0.2".
std::string ipv4Str(uint32_t addr);
/// "2001:db8::1" -> its 16 bytes. Throws on a malformed address.
std::array<uint8_t, 16> ipv6(const std::string &text);
/// Hex dump, 16 bytes a line, for failure reports.
std::string hexDump(const std::vector<uint8_t> &bytes);

enum class L4 { Udp, Tcp, Icmp, Raw };

struct VlanTag {
  uint16_t tpid; // 0x8100 (802.1Q) or 0x88a8 (802.1ad), or anything
  uint16_t tci;  // PCP(3) DEI(1) VID(12)
};

/// A frame description. Setters return a modified copy so cases read as one
/// expression: `Frame::udp("10.1.0.1", "10.1.0.2", 5000, 1234).vlan(10)`.
struct Frame {
  // L2
  uint8_t dmac[6] = {0x02, 0, 0, 0, 0, 0x02};
  uint8_t smac[6] = {0x02, 0, 0, 0, 0, 0x01};
  std::vector<VlanTag> tags;
  uint16_t etherType = 0x0800;

  // IPv4, or IPv6 when `v6` (then tos is the traffic class, ttl the hop
  // limit, proto the next header, and the IPv4-only fields are unused)
  bool v6 = false;
  std::array<uint8_t, 16> src6{}, dst6{};
  uint32_t flowLabel = 0; // 20 bits
  uint8_t version = 4;
  std::optional<uint8_t> ihlOverride; // default 5 + options/4
  std::vector<uint8_t> options;       // padded with EOL to 4 bytes
  uint8_t tos = 0, ttl = 64, proto = 17;
  uint16_t id = 0x4242;
  uint16_t fragOffset = 0; // in 8-byte units
  bool mf = false, df = false;
  std::optional<uint16_t> totLenOverride;
  uint32_t src = 0x0a010001, dst = 0x0a010002;

  // L4 (for a non-first fragment these bytes are simply the payload)
  L4 l4 = L4::Udp;
  uint16_t sport = 40000, dport = 1234;
  uint8_t icmpType = 8, icmpCode = 0;
  uint8_t tcpFlags = 0x02, tcpDoff = 5; // a SYN; doff as written
  uint16_t csumDelta = 0;               // added to the right L4 checksum
  size_t payloadLen = 18;               // a 60-byte frame (64 on the wire)
  std::optional<size_t> l4Keep;         // cut L4 (header+payload) to this

  // Trailer / truncation
  size_t padTo = 0; // zero-pad the frame to this length
  uint8_t padByte = 0;
  std::optional<size_t> cutTo; // cut the final frame (tot_len kept)

  static Frame udp(const std::string &src, const std::string &dst,
                   uint16_t sport, uint16_t dport);
  static Frame tcp(const std::string &src, const std::string &dst,
                   uint16_t sport, uint16_t dport);
  static Frame icmp(const std::string &src, const std::string &dst);
  static Frame raw(const std::string &src, const std::string &dst,
                   uint8_t proto);
  /// UDP over IPv6 with no extension headers.
  static Frame udp6(const std::string &src, const std::string &dst,
                    uint16_t sport, uint16_t dport);

  Frame vlan(uint16_t tci, uint16_t tpid = 0x8100) const;
  Frame ether(uint16_t type) const;
  Frame withOptions(size_t bytes, uint8_t fill = 0x01) const; // NOPs
  Frame withOptionBytes(std::vector<uint8_t> bytes) const;
  Frame ihl(uint8_t v) const;
  Frame ver(uint8_t v) const;
  Frame totLen(uint16_t v) const;
  Frame frag(uint16_t offset8, bool moreFragments) const;
  Frame dontFragment() const;
  Frame protocol(uint8_t p) const;
  Frame payload(size_t n) const;
  Frame keepL4(size_t n) const;
  Frame pad(size_t frameLen, uint8_t byte = 0) const;
  Frame cut(size_t frameLen) const;
  Frame from(const std::string &a) const;
  Frame to(const std::string &a) const;
  Frame ports(uint16_t s, uint16_t d) const;
  Frame withTcpFlags(uint8_t flags) const;
  Frame withTcpDoff(uint8_t doff) const;
  /// The TCP/UDP checksum off by `delta` (0: right).
  Frame badChecksum(uint16_t delta = 1) const;
  Frame withTtl(uint8_t t) const;
  Frame withTos(uint8_t t) const;   ///< IPv4 TOS, IPv6 traffic class
  Frame flow(uint32_t label) const; ///< IPv6 flow label

  /// L4 bytes (header + payload) before any truncation.
  std::vector<uint8_t> l4Bytes() const;
  /// The IPv4 header length in bytes as written (IHL*4 after overrides);
  /// IPv6: 40.
  size_t ipHeaderLen() const;
  /// The tot_len field as written; IPv6: 40 + the payload length, what
  /// netfilter counts.
  uint16_t ipTotLen() const;
  std::vector<uint8_t> build() const;

private:
  std::vector<uint8_t> buildIpv6(std::vector<uint8_t> l2) const;
  /// Appends L4, then pads or cuts the frame.
  std::vector<uint8_t> finish(std::vector<uint8_t> l3) const;
};

} // namespace r2x::test
