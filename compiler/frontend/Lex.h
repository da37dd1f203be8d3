//===- compiler/frontend/Lex.h - numbers, addresses and lists -----*- C++
//-*-===//
//
/// \file
/// The one home for reading numbers, addresses and lists out of option
/// values. rule2xdp must read a value exactly as the tool whose words it
/// takes reads it (`--dport 010` is port 8 in a tcp match, port 10 in a
/// udp match, because libxtables reads them with different functions), so
/// each function here copies one function of one tool and is named after
/// it:
///
///   iptables 1.8.9 (libxtables)   xtablesStrtoul, inetAtonIptables,
///                                 inetAtonIptablesMask, xtablesParsePort,
///                                 xtablesGetPortByName, xtablesParseProtocol,
///                                 xtablesParseEthermac
///   iproute2 6.1 (tc)             getUnsigned, getInteger, getAddrIpv4,
///                                 getU32Handle, getTcClassid
///   C library                     strtoulPrefix (libxt_u32 calls strtoul),
///                                 sscanfEther (tc's parse_ether_addr),
///                                 inetPton4, inetPton6
///   both                          splitList (strchr), splitTokens (strtok)
///
/// They only read: none of them throws. What a value means, its limits and
/// the error message (with failAt, Diagnostics.h) stay with the option that
/// takes it.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace r2x::frontend {

/// A piece of a word and where it starts in the word (for carets).
struct Piece {
  std::string text;
  size_t offset = 0;
};

// --- lists -------------------------------------------------------------------

/// Every piece between separators, empty ones included, as a loop over
/// strchr(s, sep) reads them (`-s a,b`, multiport, --to-destination).
std::vector<Piece> splitList(std::string_view s, char sep = ',');

/// The non-empty pieces only, as strtok(s, seps) returns them
/// (libxt_tcp's flag lists: "SYN,,ACK" is SYN and ACK).
std::vector<Piece> splitTokens(std::string_view s, char sep = ',');

// --- libxtables (iptables 1.8.9)
// ----------------------------------------------

/// xtables_strtoul(s, NULL, ...): C strtoumax in base 0 (0x hex, leading 0
/// octal, else decimal; leading white space and `+' allowed, `-' refused),
/// the whole text, min <= value <= max.
std::optional<uint64_t> xtablesStrtoul(std::string_view s, uint64_t min,
                                       uint64_t max);

/// xtables_strtoul(s, &end, ...): the same over a prefix of `s`; `end` is
/// the offset of the first character after the number.
std::optional<uint64_t> xtablesStrtoulPrefix(std::string_view s, size_t &end,
                                             uint64_t min, uint64_t max);

/// xtables_numeric_to_ipaddr(): an IPv4 address as iptables reads it, in
/// host order. 1 to 4 dot-separated parts, each an xtablesStrtoul number
/// 0..255; missing parts are 0 ("10.1" is 10.1.0.0). Like libxtables, only
/// the first 19 characters are read.
std::optional<uint32_t> inetAtonIptables(std::string_view s);

/// xtables_numeric_to_ipmask(): the same with exactly four parts.
std::optional<uint32_t> inetAtonIptablesMask(std::string_view s);

/// xtables_parse_port(s, proto), the tcp match's and multiport's: a number
/// (xtablesStrtoul, 0..65535) or a service name of `proto` (getservbyname).
std::optional<uint16_t> xtablesParsePort(const std::string &s,
                                         const char *proto);

/// xtables_getportbyname(), the port parser of the udp match (XTTYPE_PORTRC):
/// getaddrinfo(NULL, s), which reads a number in base 10 (white space and
/// signs allowed, the value taken modulo 65536) and looks names up for any
/// protocol.
std::optional<uint16_t> xtablesGetPortByName(const std::string &s);

/// xtopt_parse_ethermac() (XTTYPE_ETHERMAC, libxt_mac's --mac-source): six
/// `:'-separated parts, each strtoul in base 16 over at most two characters
/// (`2:0:0:0:0:1' is read; `0x1' is not).
std::optional<std::array<uint8_t, 6>>
xtablesParseEthermac(const std::string &s);

/// xtables_parse_protocol(): a number (xtablesStrtoul, 0..255), a name of
/// libxtables' own table, or a name of /etc/protocols (getprotobyname).
/// `s` is already in lower case (iptables lowers -p's value first).
std::optional<uint8_t> xtablesParseProtocol(const std::string &s);

// --- iproute2 6.1 (tc)
// ----------------------------------------------------------

/// get_unsigned() / get_u32() / get_u16() / get_u8(): strtoul in `base`,
/// the whole word (leading white space and a sign allowed, as strtoul
/// reads them: tc takes `+5' and `-0'). The range is the caller's to check
/// (tc says "invalid" and "out of range" apart).
std::optional<uint64_t> getUnsigned(std::string_view s, int base);

/// get_integer(): strtol in base 0, the whole word, in int's range.
std::optional<int32_t> getInteger(std::string_view s);

/// get_u32_handle() (tc/f_u32.c): `0x' and a get_u32 in base 16, or
/// HTID:[HASH[:NODE]], each part strtoul in base 16 (sign allowed) below
/// 0x1000, 0x100 and 0x1000; any character after a part's digits ends it,
/// and what follows the node is ignored (`800:0:5:9' is 800:0:5).
std::optional<uint32_t> getU32Handle(const std::string &s);

/// get_tc_classid(): `root', `none', MAJ:MIN, MAJ:, :MIN or MIN, each part
/// strtoul in base 16 below 0x10000.
std::optional<uint32_t> getTcClassid(const std::string &s);

/// get_addr_ipv4(): up to four dot-separated parts, each strtoul base 0 at
/// most 255 (so `+1.2.3.4' is read); missing parts are 0. Host order.
std::optional<uint32_t> getAddrIpv4(std::string_view s);

// --- the C library
// ----------------------------------------------------------------

/// strtoul(s + at, &end, 0) as libxt_u32 calls it: a prefix; fails on no
/// digits or a value beyond 32 bits. `at` moves past the number.
std::optional<uint32_t> strtoulPrefix(std::string_view s, size_t &at);

/// sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx") as tc's parse_ether_addr()
/// calls it: each part wraps to a byte (`1ff' is 0xff) and anything after
/// the sixth part is ignored.
std::optional<std::array<uint8_t, 6>> sscanfEther(const std::string &s);

/// inet_pton(AF_INET, ...): exactly four decimal parts. Host order.
std::optional<uint32_t> inetPton4(const std::string &s);

/// inet_pton(AF_INET6, ...). Network order.
std::optional<std::array<uint8_t, 16>> inetPton6(const std::string &s);

} // namespace r2x::frontend
