//===- bench/frame.h - the benchmark's 64-byte UDP frame -----------------===//
//
/// One header-only helper shared by the generator and the per-packet timer:
/// a 60-byte Ethernet frame (64 on the wire with the FCS), IPv4 UDP from
/// 10.1.0.1:40000 to 10.1.0.2:1234 with 18 bytes of payload, TTL 64, and
/// full IPv4 and UDP checksums, so every stack along the way takes it.
//===----------------------------------------------------------------------===//
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

namespace bench {

constexpr size_t kFrameLen = 60;
using Frame = std::array<uint8_t, kFrameLen>;
using Mac = std::array<uint8_t, 6>;

inline bool parseMac(const std::string &s, Mac &m) {
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3],
                  &v[4], &v[5]) != 6)
    return false;
  for (int i = 0; i < 6; ++i)
    m[size_t(i)] = uint8_t(v[i]);
  return true;
}

inline uint16_t fold(uint32_t s) {
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}

inline Frame udpFrame(const Mac &dst, const Mac &src, uint32_t saddr,
                      uint32_t daddr, uint16_t sport, uint16_t dport) {
  Frame f{};
  auto put16 = [&](size_t at, uint16_t v) {
    f[at] = uint8_t(v >> 8);
    f[at + 1] = uint8_t(v);
  };
  auto put32 = [&](size_t at, uint32_t v) {
    put16(at, uint16_t(v >> 16));
    put16(at + 2, uint16_t(v));
  };
  for (size_t i = 0; i < 6; ++i) {
    f[i] = dst[i];
    f[6 + i] = src[i];
  }
  put16(12, 0x0800);
  const uint16_t udpLen = uint16_t(kFrameLen - 14 - 20); // 26
  f[14] = 0x45;
  put16(16, uint16_t(20 + udpLen));
  put16(18, 0x4242); // id
  f[22] = 64;        // TTL
  f[23] = 17;        // UDP
  put32(26, saddr);
  put32(30, daddr);
  put16(34, sport);
  put16(36, dport);
  put16(38, udpLen);
  for (size_t i = 42; i < kFrameLen; ++i)
    f[i] = uint8_t('a' + (i - 42));
  uint32_t s = 0;
  for (size_t i = 14; i < 34; i += 2)
    s += uint32_t(f[i] << 8 | f[i + 1]);
  put16(24, uint16_t(~fold(s)));
  // UDP: pseudo-header + header + payload.
  s = (saddr >> 16) + (saddr & 0xffff) + (daddr >> 16) + (daddr & 0xffff) + 17 +
      udpLen;
  for (size_t i = 34; i < kFrameLen; i += 2)
    s += uint32_t(f[i] << 8 | f[i + 1]);
  uint16_t c = uint16_t(~fold(s));
  put16(40, c ? c : 0xffff);
  return f;
}

} // namespace bench
