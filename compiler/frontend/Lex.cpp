//===- compiler/frontend/Lex.cpp - numbers, addresses and lists
//------------===//
//
/// \file
/// See Lex.h. Where a tool calls the C library, so does its copy here: the
/// same strtoumax, getservbyname, getaddrinfo and inet_pton give the same
/// answers on the same machine.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/Lex.h"

#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netdb.h>
#include <netinet/in.h>

namespace r2x::frontend {

// --- lists -------------------------------------------------------------------

std::vector<Piece> splitList(std::string_view s, char sep) {
  std::vector<Piece> out;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    size_t end = at == std::string_view::npos ? s.size() : at;
    out.push_back({std::string(s.substr(start, end - start)), start});
    if (at == std::string_view::npos)
      return out;
    start = at + 1;
  }
}

std::vector<Piece> splitTokens(std::string_view s, char sep) {
  std::vector<Piece> out;
  for (Piece &p : splitList(s, sep))
    if (!p.text.empty())
      out.push_back(std::move(p));
  return out;
}

// --- libxtables
// ------------------------------------------------------------------

std::optional<uint64_t> xtablesStrtoulPrefix(std::string_view s, size_t &end,
                                             uint64_t min, uint64_t max) {
  std::string buf(s);
  const char *p = buf.c_str();
  while (std::isspace(static_cast<unsigned char>(*p)))
    ++p;
  // strtoumax takes a leading minus and negates; libxtables refuses it.
  if (*p == '-')
    return std::nullopt;
  errno = 0;
  char *stop = nullptr;
  uintmax_t v = std::strtoumax(buf.c_str(), &stop, 0);
  if (stop == buf.c_str())
    return std::nullopt;
  end = static_cast<size_t>(stop - buf.c_str());
  if (errno == ERANGE || v < min || v > max)
    return std::nullopt;
  return v;
}

std::optional<uint64_t> xtablesStrtoul(std::string_view s, uint64_t min,
                                       uint64_t max) {
  size_t end = 0;
  std::optional<uint64_t> v = xtablesStrtoulPrefix(s, end, min, max);
  if (!v || end != s.size())
    return std::nullopt;
  return v;
}

namespace {

/// __numeric_to_ipaddr() of libxtables, for addresses and masks.
std::optional<uint32_t> numericToIpaddr(std::string_view s, bool isMask) {
  // libxtables copies the text into a 20-byte buffer first.
  constexpr size_t kBufChars = 19;
  std::string_view buf = s.substr(0, std::min(s.size(), kBufChars));
  uint32_t addr = 0;
  size_t p = 0;
  for (int i = 0; i < 3; ++i) {
    size_t dot = buf.find('.', p);
    if (dot == std::string_view::npos) {
      if (isMask)
        return std::nullopt;
      // "10.1": a network address, the missing parts are zero.
      std::optional<uint64_t> b = xtablesStrtoul(buf.substr(p), 0, UINT8_MAX);
      if (!b)
        return std::nullopt;
      return addr | static_cast<uint32_t>(*b) << (24 - 8 * i);
    }
    std::optional<uint64_t> b =
        xtablesStrtoul(buf.substr(p, dot - p), 0, UINT8_MAX);
    if (!b)
      return std::nullopt;
    addr |= static_cast<uint32_t>(*b) << (24 - 8 * i);
    p = dot + 1;
  }
  std::optional<uint64_t> b = xtablesStrtoul(buf.substr(p), 0, UINT8_MAX);
  if (!b)
    return std::nullopt;
  return addr | static_cast<uint32_t>(*b);
}

} // namespace

std::optional<uint32_t> inetAtonIptables(std::string_view s) {
  return numericToIpaddr(s, false);
}

std::optional<uint32_t> inetAtonIptablesMask(std::string_view s) {
  return numericToIpaddr(s, true);
}

std::optional<uint16_t> xtablesParsePort(const std::string &s,
                                         const char *proto) {
  if (std::optional<uint64_t> v = xtablesStrtoul(s, 0, UINT16_MAX))
    return static_cast<uint16_t>(*v);
  if (const servent *se = getservbyname(s.c_str(), proto))
    return ntohs(static_cast<uint16_t>(se->s_port));
  return std::nullopt;
}

std::optional<uint16_t> xtablesGetPortByName(const std::string &s) {
  // Decimal digits are the port itself, as getaddrinfo() reads a numeric
  // service (strtoul, base 10); answered here because getaddrinfo() asks
  // the kernel which address families are configured on every call (two
  // socket syscalls a port: half the parse time of 100,000 rules).
  if (!s.empty() && s.size() <= 5 &&
      s.find_first_not_of("0123456789") == std::string::npos) {
    unsigned long v = std::stoul(s);
    if (v <= UINT16_MAX)
      return static_cast<uint16_t>(v);
  }
  addrinfo *res = nullptr;
  if (getaddrinfo(nullptr, s.c_str(), nullptr, &res) != 0)
    return std::nullopt;
  std::optional<uint16_t> port;
  for (const addrinfo *p = res; p && !port; p = p->ai_next) {
    if (p->ai_family == AF_INET6)
      port =
          ntohs(reinterpret_cast<const sockaddr_in6 *>(p->ai_addr)->sin6_port);
    else if (p->ai_family == AF_INET)
      port = ntohs(reinterpret_cast<const sockaddr_in *>(p->ai_addr)->sin_port);
  }
  freeaddrinfo(res);
  return port;
}

std::optional<std::array<uint8_t, 6>>
xtablesParseEthermac(const std::string &s) {
  std::array<uint8_t, 6> mac{};
  const char *arg = s.c_str();
  for (size_t i = 0; i < mac.size(); ++i) {
    char *end = nullptr;
    unsigned long v = std::strtoul(arg, &end, 16);
    char want = i + 1 < mac.size() ? ':' : '\0';
    if (*end != want || end - arg > 2)
      return std::nullopt;
    mac[i] = static_cast<uint8_t>(v);
    arg = end + 1;
  }
  return mac;
}

std::optional<uint8_t> xtablesParseProtocol(const std::string &s) {
  if (std::optional<uint64_t> v = xtablesStrtoul(s, 0, UINT8_MAX))
    return static_cast<uint8_t>(*v);
  // libxtables' xtables_chain_protos, looked at before /etc/protocols.
  static const std::pair<const char *, uint8_t> kChainProtos[] = {
      {"tcp", IPPROTO_TCP},
      {"sctp", IPPROTO_SCTP},
      {"udp", IPPROTO_UDP},
      {"udplite", IPPROTO_UDPLITE},
      {"icmp", IPPROTO_ICMP},
      {"ipv6-icmp", IPPROTO_ICMPV6},
      {"icmpv6", IPPROTO_ICMPV6},
      {"esp", IPPROTO_ESP},
      {"ah", IPPROTO_AH},
      {"mobility-header", IPPROTO_MH},
      {"ipv6-mh", IPPROTO_MH},
      {"mh", IPPROTO_MH},
      {"all", 0}};
  for (const auto &[name, num] : kChainProtos)
    if (s == name)
      return num;
  if (const protoent *pe = getprotobyname(s.c_str()))
    return static_cast<uint8_t>(pe->p_proto);
  return std::nullopt;
}

// --- iproute2
// ----------------------------------------------------------------------

std::optional<uint64_t> getUnsigned(std::string_view s, int base) {
  std::string buf(s);
  if (buf.empty())
    return std::nullopt;
  // strtoul: leading white space and a sign are allowed; "-N" wraps, so
  // only "-0" survives the caller's range check, as in tc.
  errno = 0;
  char *end = nullptr;
  unsigned long long v = std::strtoull(buf.c_str(), &end, base);
  if (end == buf.c_str() || *end != '\0' || errno == ERANGE)
    return std::nullopt;
  return v;
}

std::optional<int32_t> getInteger(std::string_view s) {
  std::string buf(s);
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(buf.c_str(), &end, 0);
  if (buf.empty() || end == buf.c_str() || *end != '\0' || errno == ERANGE ||
      v < INT_MIN || v > INT_MAX)
    return std::nullopt;
  return static_cast<int32_t>(v);
}

std::optional<uint32_t> getU32Handle(const std::string &s) {
  if (s.find(':') == std::string::npos) {
    if (s.compare(0, 2, "0x") != 0)
      return std::nullopt;
    std::optional<uint64_t> v = getUnsigned(s, 16);
    if (!v || *v > 0xffffffffu)
      return std::nullopt;
    return static_cast<uint32_t>(*v);
  }
  // HTID, HASH and NODE: strtoul in base 16; no digits is a zero part only
  // where the next separator (or the end) follows at once.
  const unsigned long limits[] = {0x1000, 0x100, 0x1000};
  unsigned long parts[3] = {0, 0, 0};
  const char *str = s.c_str();
  for (int i = 0; i < 3; ++i) {
    char *tmp = nullptr;
    parts[i] = std::strtoul(str, &tmp, 16);
    if (tmp == str && (i == 2 || *str != ':') && *str != '\0')
      return std::nullopt;
    if (parts[i] >= limits[i])
      return std::nullopt;
    if (*tmp == '\0')
      break;
    str = tmp + 1;
  }
  return static_cast<uint32_t>(parts[0] << 20 | parts[1] << 12 | parts[2]);
}

std::optional<uint32_t> getTcClassid(const std::string &s) {
  if (s == "root")
    return 0xffffffffu;
  if (s == "none")
    return 0;
  char *end = nullptr;
  unsigned long maj = std::strtoul(s.c_str(), &end, 16);
  if (end == s.c_str()) {
    maj = 0;
    if (*end != ':')
      return std::nullopt;
  }
  if (*end == ':') {
    if (maj >= (1u << 16))
      return std::nullopt;
    maj <<= 16;
    const char *p = end + 1;
    unsigned long min = std::strtoul(p, &end, 16);
    if (*end || min >= (1u << 16))
      return std::nullopt;
    maj |= min;
  } else if (*end) {
    return std::nullopt;
  }
  return static_cast<uint32_t>(maj);
}

std::optional<uint32_t> getAddrIpv4(std::string_view s) {
  std::string buf(s);
  uint8_t ap[4] = {0, 0, 0, 0};
  const char *cp = buf.c_str();
  for (int i = 0; i < 4; ++i) {
    char *endp = nullptr;
    unsigned long n = std::strtoul(cp, &endp, 0);
    if (n > 255 || endp == cp)
      return std::nullopt;
    ap[i] = static_cast<uint8_t>(n);
    if (*endp == '\0')
      break;
    if (i == 3 || *endp != '.')
      return std::nullopt;
    cp = endp + 1;
  }
  return uint32_t(ap[0]) << 24 | uint32_t(ap[1]) << 16 | uint32_t(ap[2]) << 8 |
         ap[3];
}

// --- the C library
// --------------------------------------------------------------------

std::optional<uint32_t> strtoulPrefix(std::string_view s, size_t &at) {
  std::string buf(s);
  const char *begin = buf.c_str() + at;
  char *end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(begin, &end, 0);
  if (end == begin || errno == ERANGE || v > 0xffffffffUL)
    return std::nullopt;
  at += static_cast<size_t>(end - begin);
  return static_cast<uint32_t>(v);
}

std::optional<std::array<uint8_t, 6>> sscanfEther(const std::string &s) {
  std::array<uint8_t, 6> b{};
  if (std::sscanf(s.c_str(), "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &b[0], &b[1],
                  &b[2], &b[3], &b[4], &b[5]) != 6)
    return std::nullopt;
  return b;
}

std::optional<uint32_t> inetPton4(const std::string &s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1)
    return std::nullopt;
  return ntohl(a.s_addr);
}

std::optional<std::array<uint8_t, 16>> inetPton6(const std::string &s) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET6, s.c_str(), a.data()) != 1)
    return std::nullopt;
  return a;
}

} // namespace r2x::frontend
