//===- test/packet/Frame.cpp - frames for the packet tests ---------------===//
//
/// \file
/// Serialises a Frame description. Checksums are filled in (IPv4 header,
/// UDP/TCP over the pseudo-header, ICMP) so that a frame that should match a
/// rule is one a real stack would also accept; rule2xdp ignores them.
//===----------------------------------------------------------------------===//
#include "test/packet/Frame.h"

#include <arpa/inet.h>

#include <cstdio>
#include <stdexcept>

namespace r2x::test {

uint32_t ipv4(const std::string &dotted) {
  in_addr a{};
  if (inet_pton(AF_INET, dotted.c_str(), &a) != 1)
    throw std::invalid_argument("bad IPv4 address: " + dotted);
  return ntohl(a.s_addr);
}

std::string ipv4Str(uint32_t addr) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(addr)};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::array<uint8_t, 16> ipv6(const std::string &text) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET6, text.c_str(), a.data()) != 1)
    throw std::invalid_argument("bad IPv6 address: " + text);
  return a;
}

std::string hexDump(const std::vector<uint8_t> &bytes) {
  std::string out;
  char buf[32];
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i % 16 == 0) {
      std::snprintf(buf, sizeof buf, "%s%04zx:", i ? "\n" : "", i);
      out += buf;
    }
    std::snprintf(buf, sizeof buf, " %02x", bytes[i]);
    out += buf;
  }
  return out;
}

namespace {

void put16(std::vector<uint8_t> &v, uint16_t x) {
  v.push_back(uint8_t(x >> 8));
  v.push_back(uint8_t(x));
}
void put32(std::vector<uint8_t> &v, uint32_t x) {
  put16(v, uint16_t(x >> 16));
  put16(v, uint16_t(x));
}
void set16(std::vector<uint8_t> &v, size_t at, uint16_t x) {
  v[at] = uint8_t(x >> 8);
  v[at + 1] = uint8_t(x);
}

uint32_t sumWords(const uint8_t *p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += uint32_t(p[i]) << 8 | p[i + 1];
  if (n & 1)
    sum += uint32_t(p[n - 1]) << 8;
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

} // namespace

Frame Frame::udp(const std::string &s, const std::string &d, uint16_t sp,
                 uint16_t dp) {
  Frame f;
  f.src = ipv4(s);
  f.dst = ipv4(d);
  f.sport = sp;
  f.dport = dp;
  return f;
}
Frame Frame::tcp(const std::string &s, const std::string &d, uint16_t sp,
                 uint16_t dp) {
  Frame f = udp(s, d, sp, dp);
  f.l4 = L4::Tcp;
  f.proto = 6;
  f.payloadLen = 6; // 14 + 20 + 20 + 6 = 60 bytes
  return f;
}
Frame Frame::icmp(const std::string &s, const std::string &d) {
  Frame f = udp(s, d, 0, 0);
  f.l4 = L4::Icmp;
  f.proto = 1;
  return f;
}
Frame Frame::raw(const std::string &s, const std::string &d, uint8_t p) {
  Frame f = udp(s, d, 0, 0);
  f.l4 = L4::Raw;
  f.proto = p;
  f.payloadLen = 26;
  return f;
}

Frame Frame::udp6(const std::string &s, const std::string &d, uint16_t sp,
                  uint16_t dp) {
  Frame f = udp("0.0.0.0", "0.0.0.0", sp, dp);
  f.v6 = true;
  f.version = 6;
  f.etherType = 0x86dd;
  f.src6 = ipv6(s);
  f.dst6 = ipv6(d);
  return f;
}

Frame Frame::vlan(uint16_t tci, uint16_t tpid) const {
  Frame f = *this;
  f.tags.push_back({tpid, tci});
  return f;
}
Frame Frame::ether(uint16_t type) const {
  Frame f = *this;
  f.etherType = type;
  return f;
}
Frame Frame::withOptions(size_t bytes, uint8_t fill) const {
  return withOptionBytes(std::vector<uint8_t>(bytes, fill));
}
Frame Frame::withOptionBytes(std::vector<uint8_t> bytes) const {
  Frame f = *this;
  f.options = std::move(bytes);
  return f;
}
Frame Frame::ihl(uint8_t v) const {
  Frame f = *this;
  f.ihlOverride = v;
  return f;
}
Frame Frame::ver(uint8_t v) const {
  Frame f = *this;
  f.version = v;
  return f;
}
Frame Frame::totLen(uint16_t v) const {
  Frame f = *this;
  f.totLenOverride = v;
  return f;
}
Frame Frame::frag(uint16_t offset8, bool moreFragments) const {
  Frame f = *this;
  f.fragOffset = offset8;
  f.mf = moreFragments;
  return f;
}
Frame Frame::dontFragment() const {
  Frame f = *this;
  f.df = true;
  return f;
}
Frame Frame::protocol(uint8_t p) const {
  Frame f = *this;
  f.proto = p;
  return f;
}
Frame Frame::payload(size_t n) const {
  Frame f = *this;
  f.payloadLen = n;
  return f;
}
Frame Frame::keepL4(size_t n) const {
  Frame f = *this;
  f.l4Keep = n;
  return f;
}
Frame Frame::pad(size_t frameLen, uint8_t byte) const {
  Frame f = *this;
  f.padTo = frameLen;
  f.padByte = byte;
  return f;
}
Frame Frame::cut(size_t frameLen) const {
  Frame f = *this;
  f.cutTo = frameLen;
  return f;
}
Frame Frame::from(const std::string &a) const {
  Frame f = *this;
  f.src = ipv4(a);
  return f;
}
Frame Frame::to(const std::string &a) const {
  Frame f = *this;
  f.dst = ipv4(a);
  return f;
}
Frame Frame::ports(uint16_t s, uint16_t d) const {
  Frame f = *this;
  f.sport = s;
  f.dport = d;
  return f;
}

Frame Frame::withTtl(uint8_t t) const {
  Frame f = *this;
  f.ttl = t;
  return f;
}

Frame Frame::withTos(uint8_t t) const {
  Frame f = *this;
  f.tos = t;
  return f;
}

Frame Frame::withTcpFlags(uint8_t flags) const {
  Frame f = *this;
  f.tcpFlags = flags;
  return f;
}

Frame Frame::withTcpDoff(uint8_t doff) const {
  Frame f = *this;
  f.tcpDoff = doff;
  return f;
}

Frame Frame::badChecksum(uint16_t delta) const {
  Frame f = *this;
  f.csumDelta = delta;
  return f;
}

Frame Frame::flow(uint32_t label) const {
  Frame f = *this;
  f.flowLabel = label & 0xfffff;
  return f;
}

std::vector<uint8_t> Frame::l4Bytes() const {
  std::vector<uint8_t> v;
  switch (l4) {
  case L4::Udp:
    put16(v, sport);
    put16(v, dport);
    put16(v, uint16_t(8 + payloadLen));
    put16(v, 0); // checksum, below
    break;
  case L4::Tcp:
    put16(v, sport);
    put16(v, dport);
    put32(v, 0x01020304); // seq
    put32(v, 0);          // ack
    v.push_back(uint8_t(tcpDoff << 4));
    v.push_back(tcpFlags);
    put16(v, 64240); // window
    put16(v, 0);     // checksum, below
    put16(v, 0);     // urgent pointer
    break;
  case L4::Icmp:
    v.push_back(icmpType);
    v.push_back(icmpCode);
    put16(v, 0); // checksum, below
    put16(v, 0x0001);
    put16(v, 0x0001);
    break;
  case L4::Raw:
    break;
  }
  for (size_t i = 0; i < payloadLen; ++i)
    v.push_back(uint8_t('a' + i % 26));

  // Checksums over the complete (untruncated) segment.
  if (l4 == L4::Udp || l4 == L4::Tcp) {
    std::vector<uint8_t> pseudo;
    if (v6) {
      // RFC 8200 8.1: addresses, upper-layer length (32 bits), zeros, next
      // header.
      pseudo.insert(pseudo.end(), src6.begin(), src6.end());
      pseudo.insert(pseudo.end(), dst6.begin(), dst6.end());
      put32(pseudo, uint32_t(v.size()));
      put32(pseudo, proto);
    } else {
      put32(pseudo, src);
      put32(pseudo, dst);
      pseudo.push_back(0);
      pseudo.push_back(proto);
      put16(pseudo, uint16_t(v.size()));
    }
    uint16_t c = fold(
        sumWords(v.data(), v.size(), sumWords(pseudo.data(), pseudo.size())));
    if (l4 == L4::Udp && c == 0)
      c = 0xffff;
    set16(v, l4 == L4::Udp ? 6 : 16, uint16_t(c + csumDelta));
  } else if (l4 == L4::Icmp) {
    set16(v, 2, fold(sumWords(v.data(), v.size())));
  }
  return v;
}

size_t Frame::ipHeaderLen() const {
  if (v6)
    return 40;
  size_t opt = (options.size() + 3) / 4 * 4;
  return ihlOverride ? size_t(*ihlOverride) * 4 : 20 + opt;
}

uint16_t Frame::ipTotLen() const {
  if (totLenOverride)
    return *totLenOverride;
  size_t header = v6 ? 40 : 20 + (options.size() + 3) / 4 * 4;
  size_t l4len = l4Bytes().size();
  if (l4Keep && *l4Keep < l4len)
    l4len = *l4Keep;
  return uint16_t(header + l4len);
}

std::vector<uint8_t> Frame::build() const {
  std::vector<uint8_t> f(dmac, dmac + 6);
  f.insert(f.end(), smac, smac + 6);
  for (const VlanTag &t : tags) {
    put16(f, t.tpid);
    put16(f, t.tci);
  }
  put16(f, etherType);

  if (v6)
    return buildIpv6(std::move(f));
  const size_t ipAt = f.size();
  std::vector<uint8_t> opt = options;
  while (opt.size() % 4)
    opt.push_back(0); // EOL
  const uint8_t ihlField =
      ihlOverride ? *ihlOverride : uint8_t((20 + opt.size()) / 4);
  f.push_back(uint8_t(version << 4 | (ihlField & 0xf)));
  f.push_back(tos);
  put16(f, ipTotLen());
  put16(f, id);
  put16(f, uint16_t((df ? 0x4000 : 0) | (mf ? 0x2000 : 0) |
                    (fragOffset & 0x1fff)));
  f.push_back(ttl);
  f.push_back(proto);
  put16(f, 0);
  put32(f, src);
  put32(f, dst);
  f.insert(f.end(), opt.begin(), opt.end());
  set16(f, ipAt + 10, fold(sumWords(&f[ipAt], 20 + opt.size())));

  return finish(std::move(f));
}

std::vector<uint8_t> Frame::buildIpv6(std::vector<uint8_t> f) const {
  // version:4 traffic class:8 flow label:20, payload length, next header,
  // hop limit, addresses.
  put32(f, uint32_t(version) << 28 | uint32_t(tos) << 20 | flowLabel);
  put16(f, uint16_t(ipTotLen() - 40));
  f.push_back(proto);
  f.push_back(ttl);
  f.insert(f.end(), src6.begin(), src6.end());
  f.insert(f.end(), dst6.begin(), dst6.end());
  return finish(std::move(f));
}

std::vector<uint8_t> Frame::finish(std::vector<uint8_t> f) const {
  std::vector<uint8_t> l4b = l4Bytes();
  if (l4Keep && *l4Keep < l4b.size())
    l4b.resize(*l4Keep);
  f.insert(f.end(), l4b.begin(), l4b.end());

  if (f.size() < padTo)
    f.resize(padTo, padByte);
  if (cutTo && *cutTo < f.size())
    f.resize(*cutTo);
  return f;
}

} // namespace r2x::test
