//===- runtime/LogFormat.cpp - the kernel's LOG lines from r2x_log --------===//
//
/// \file
/// See LogFormat.h. Written from the kernel's net/netfilter/nf_log_syslog.c
/// (Linux 6.x): each function below is named after the one it follows, and
/// prints the same fields in the same order and format. Offsets are the
/// skb's at the hook (the network header at 0); `len_` is skb->len there,
/// which ip_rcv_core() / ip6_rcv_core() trimmed to the IP length.
//===----------------------------------------------------------------------===//
#include "runtime/LogFormat.h"

#include <linux/netfilter/xt_LOG.h>
#include <netinet/in.h>

#include <cstdarg>
#include <cstdio>

namespace r2x::runtime {

namespace {

constexpr uint32_t kEthHlen = 14;

class LogLine {
public:
  LogLine(const uint8_t *net, uint32_t captured, uint32_t len, uint8_t flags)
      : net_(net), captured_(captured), len_(len), flags_(flags) {}

  void ipv4(uint32_t off, bool outer, int ttlDelta);
  void ipv6(uint32_t off, bool recurse, int hopDelta);
  std::string text;

private:
  /// skb_header_pointer(): null when the skb is shorter than off + size.
  const uint8_t *header(uint32_t off, uint32_t size) const {
    if (uint64_t(off) + size > len_)
      return nullptr;
    if (uint64_t(off) + size > captured_)
      throw LogCaptureShort("the event's capture ends before a header the "
                            "kernel's line prints");
    return net_ + off;
  }
  void add(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
  void hex(const uint8_t *p, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i)
      add("%02X", p[i]);
  }
  static unsigned be16(const uint8_t *p) { return (p[0] << 8) | p[1]; }
  static uint32_t be32(const uint8_t *p) {
    return (uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
  }
  bool tcp(uint32_t off, bool fragment);
  bool udp(uint32_t off, uint8_t proto, bool fragment);
  void icmp(const uint8_t *ih, uint32_t off, bool outer);
  bool icmpv6(uint32_t ptr, bool recurse);
  const uint8_t *net_;
  uint32_t captured_, len_;
  uint8_t flags_;
};

void LogLine::add(const char *fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    text.append(buf, std::min<size_t>(size_t(n), sizeof buf - 1));
}

/// nf_log_dump_tcp_header(); true when the dump ends the line.
bool LogLine::tcp(uint32_t off, bool fragment) {
  add("PROTO=TCP ");
  if (fragment)
    return false;
  const uint8_t *th = header(off, 20);
  if (!th) {
    add("INCOMPLETE [%u bytes] ", len_ - off);
    return true;
  }
  add("SPT=%u DPT=%u ", be16(th), be16(th + 2));
  if (flags_ & XT_LOG_TCPSEQ)
    add("SEQ=%u ACK=%u ", be32(th + 4), be32(th + 8));
  add("WINDOW=%u ", be16(th + 14));
  // tcp_flag_word() & TCP_RESERVED_BITS (0x0E000000), >> 22.
  add("RES=0x%02x ", (be32(th + 12) & 0x0E000000u) >> 22);
  static constexpr const char *kFlags[] = {"CWR ", "ECE ", "URG ", "ACK ",
                                           "PSH ", "RST ", "SYN ", "FIN "};
  if (th[12] & 0x01)
    add("AE ");
  for (int bit = 0; bit < 8; ++bit)
    if (th[13] & (0x80 >> bit))
      add("%s", kFlags[bit]);
  add("URGP=%u ", be16(th + 18));
  uint32_t doff = (th[12] >> 4) * 4u;
  if ((flags_ & XT_LOG_TCPOPT) && doff > 20) {
    const uint8_t *op = header(off + 20, doff - 20);
    if (!op) {
      add("OPT (TRUNCATED)");
      return true;
    }
    add("OPT (");
    hex(op, doff - 20);
    add(") ");
  }
  return false;
}

/// nf_log_dump_udp_header().
bool LogLine::udp(uint32_t off, uint8_t proto, bool fragment) {
  add(proto == IPPROTO_UDP ? "PROTO=UDP " : "PROTO=UDPLITE ");
  if (fragment)
    return false;
  const uint8_t *uh = header(off, 8);
  if (!uh) {
    add("INCOMPLETE [%u bytes] ", len_ - off);
    return true;
  }
  add("SPT=%u DPT=%u LEN=%u ", be16(uh), be16(uh + 2), be16(uh + 4));
  return false;
}

/// dump_ipv4_packet()'s ICMP case, after "PROTO=ICMP ".
void LogLine::icmp(const uint8_t *ih, uint32_t off, bool outer) {
  uint32_t ihl = (ih[0] & 0x0f) * 4u;
  const uint8_t *ich = header(off + ihl, 8);
  if (!ich) {
    add("INCOMPLETE [%u bytes] ", len_ - off - ihl);
    return;
  }
  uint8_t type = ich[0], code = ich[1];
  add("TYPE=%u CODE=%u ", type, code);
  // required_len[], by type (NR_ICMP_TYPES 18).
  static constexpr uint8_t kRequired[19] = {4, 0,  0,  28, 28, 28, 0, 0,  4, 0,
                                            0, 28, 28, 20, 20, 0,  0, 12, 12};
  if (type <= 18 && kRequired[type] && len_ - off - ihl < kRequired[type]) {
    add("INCOMPLETE [%u bytes] ", len_ - off - ihl);
    return;
  }
  switch (type) {
  case 0: // ICMP_ECHOREPLY
  case 8: // ICMP_ECHO
    add("ID=%u SEQ=%u ", be16(ich + 4), be16(ich + 6));
    break;
  case 12: // ICMP_PARAMETERPROB
    add("PARAMETER=%u ", be32(ich + 4) >> 24);
    break;
  case 5: // ICMP_REDIRECT
    add("GATEWAY=%u.%u.%u.%u ", ich[4], ich[5], ich[6], ich[7]);
    [[fallthrough]];
  case 3:  // ICMP_DEST_UNREACH
  case 4:  // ICMP_SOURCE_QUENCH
  case 11: // ICMP_TIME_EXCEEDED
    if (outer) {
      add("[");
      ipv4(off + ihl + 8, false, 0);
      add("] ");
    }
    if (type == 3 && code == 4) // ICMP_FRAG_NEEDED
      add("MTU=%u ", be16(ich + 6));
    break;
  default:
    break;
  }
}

/// dump_ipv4_packet(); `outer` for the packet itself (iphoff 0), which may
/// quote one more. `ttlDelta`: ip_forward() decremented the TTL before the
/// FORWARD hook.
void LogLine::ipv4(uint32_t off, bool outer, int ttlDelta) {
  const uint8_t *ih = header(off, 20);
  if (!ih) {
    add("TRUNCATED");
    return;
  }
  add("SRC=%u.%u.%u.%u DST=%u.%u.%u.%u ", ih[12], ih[13], ih[14], ih[15],
      ih[16], ih[17], ih[18], ih[19]);
  unsigned frag = be16(ih + 6);
  add("LEN=%u TOS=0x%02X PREC=0x%02X TTL=%u ID=%u ", be16(ih + 2), ih[1] & 0x1e,
      ih[1] & 0xe0, unsigned((ih[8] + ttlDelta) & 0xff), be16(ih + 4));
  if (frag & 0x8000)
    add("CE ");
  if (frag & 0x4000)
    add("DF ");
  if (frag & 0x2000)
    add("MF ");
  if (frag & 0x1fff)
    add("FRAG:%u ", frag & 0x1fff);
  uint32_t ihl = (ih[0] & 0x0f) * 4u;
  if ((flags_ & XT_LOG_IPOPT) && ihl > 20) {
    const uint8_t *op = header(off + 20, ihl - 20);
    if (!op) {
      add("TRUNCATED");
      return;
    }
    add("OPT (");
    hex(op, ihl - 20);
    add(") ");
  }
  bool fragment = (frag & 0x1fff) != 0;
  switch (ih[9]) {
  case IPPROTO_TCP:
    if (tcp(off + ihl, fragment))
      return;
    break;
  case IPPROTO_UDP:
  case IPPROTO_UDPLITE:
    if (udp(off + ihl, ih[9], fragment))
      return;
    break;
  case IPPROTO_ICMP:
    add("PROTO=ICMP ");
    if (!fragment)
      icmp(ih, off, outer);
    break;
  case IPPROTO_AH:
  case IPPROTO_ESP: {
    bool ah = ih[9] == IPPROTO_AH;
    if (ah && fragment)
      break;
    add(ah ? "PROTO=AH " : "PROTO=ESP ");
    if (fragment)
      break;
    const uint8_t *h = header(off + ihl, ah ? 12 : 8);
    if (!h) {
      add("INCOMPLETE [%u bytes] ", len_ - off - ihl);
      break;
    }
    add("SPI=0x%x ", be32(h + (ah ? 4 : 0)));
    break;
  }
  default:
    add("PROTO=%u ", ih[9]);
  }
  // UID (refused by the compiler) and MARK (0 on ingress) print nothing.
}

/// dump_ipv6_packet()'s ICMPv6 case; true when the dump ends the line.
bool LogLine::icmpv6(uint32_t ptr, bool recurse) {
  const uint8_t *ic = header(ptr, 8);
  if (!ic) {
    add("INCOMPLETE [%u bytes] ", len_ - ptr);
    return true;
  }
  add("TYPE=%u CODE=%u ", ic[0], ic[1]);
  switch (ic[0]) {
  case 128: // ICMPV6_ECHO_REQUEST
  case 129: // ICMPV6_ECHO_REPLY
    add("ID=%u SEQ=%u ", be16(ic + 4), be16(ic + 6));
    break;
  case 4: // ICMPV6_PARAMPROB
    add("POINTER=%08x ", be32(ic + 4));
    [[fallthrough]];
  case 1: // ICMPV6_DEST_UNREACH
  case 2: // ICMPV6_PKT_TOOBIG
  case 3: // ICMPV6_TIME_EXCEED
    if (recurse) {
      add("[");
      ipv6(ptr + 8, false, 0);
      add("] ");
    }
    if (ic[0] == 2)
      add("MTU=%u ", be32(ic + 4));
    break;
  default:
    break;
  }
  return false;
}

/// dump_ipv6_packet(), for a packet without extension headers (the
/// program records no other; a quoted one with them is not printed).
void LogLine::ipv6(uint32_t off, bool recurse, int hopDelta) {
  const uint8_t *ih = header(off, 40);
  if (!ih) {
    add("TRUNCATED");
    return;
  }
  add("SRC=");
  for (int side = 0; side < 2; ++side) {
    const uint8_t *a = ih + 8 + 16 * side;
    for (int g = 0; g < 8; ++g)
      add(g ? ":%02x%02x" : "%02x%02x", a[2 * g], a[2 * g + 1]);
    add(side ? " " : " DST=");
  }
  uint32_t w = be32(ih);
  add("LEN=%u TC=%u HOPLIMIT=%u FLOWLBL=%u ", be16(ih + 4) + 40u,
      (w & 0x0ff00000) >> 20, unsigned((ih[7] + hopDelta) & 0xff),
      w & 0x000fffff);
  uint8_t next = ih[6];
  uint32_t ptr = off + 40;
  switch (next) {
  case 0:
  case 43:
  case 44:
  case 50:
  case 51:
  case 59:
  case 60:
    throw LogCaptureShort("an IPv6 extension header (not printed by "
                          "rule2xdp yet)");
  case IPPROTO_TCP:
    if (tcp(ptr, false))
      return;
    break;
  case IPPROTO_UDP:
  case IPPROTO_UDPLITE:
    if (udp(ptr, next, false))
      return;
    break;
  case IPPROTO_ICMPV6:
    add("PROTO=ICMPv6 ");
    if (icmpv6(ptr, recurse))
      return;
    break;
  default:
    add("PROTO=%u ", next);
  }
}

/// dump_mac_header() for an Ethernet device, untagged frame.
std::string macHeader(const uint8_t *f, uint8_t flags) {
  char buf[128];
  if (flags & XT_LOG_MACDECODE) {
    std::snprintf(buf, sizeof buf,
                  "MACSRC=%02x:%02x:%02x:%02x:%02x:%02x "
                  "MACDST=%02x:%02x:%02x:%02x:%02x:%02x MACPROTO=%04x ",
                  f[6], f[7], f[8], f[9], f[10], f[11], f[0], f[1], f[2], f[3],
                  f[4], f[5], (f[12] << 8) | f[13]);
    return buf;
  }
  std::string s = "MAC=";
  for (uint32_t i = 0; i < kEthHlen; ++i) {
    std::snprintf(buf, sizeof buf, i ? ":%02x" : "%02x", f[i]);
    s += buf;
  }
  return s + " ";
}

} // namespace

std::string formatLogLine(const MetaLog &rule, contract::LogHook hook,
                          const std::string &in, const std::string &out,
                          const uint8_t *frame, uint32_t caplen) {
  if (caplen < kEthHlen + (rule.v6 ? 40 : 20))
    throw LogCaptureShort("the event holds no IP header");
  const uint8_t *net = frame + kEthHlen;
  uint32_t captured = caplen - kEthHlen;
  // skb->len at the hook: the IP length (ip_rcv_core() trimmed the rest).
  uint32_t len = rule.v6 ? ((net[4] << 8) | net[5]) + 40u
                         : uint32_t((net[2] << 8) | net[3]);
  LogLine line(net, captured, len, rule.flags);
  line.text = rule.prefix + "IN=" + in + " OUT=" + out + " " +
              macHeader(frame, rule.flags);
  int delta = hook == contract::LogHook::Forward ? -1 : 0;
  if (rule.v6)
    line.ipv6(0, true, delta);
  else
    line.ipv4(0, true, delta);
  return line.text;
}

} // namespace r2x::runtime
