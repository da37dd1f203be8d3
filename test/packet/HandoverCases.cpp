//===- test/packet/HandoverCases.cpp - hand-over mode cases ---------------===//
//
/// \file
/// Rulesets compiled with `--pass-unsupported` (docs/handover.md). Each case
/// states the action and the counter slots XDP counts, by the numbers
/// --emit=ir gives them. What they pin: ACCEPT, a match XDP cannot evaluate
/// and a target it cannot carry out are XDP_PASS and counted by nobody in
/// XDP (the kernel counts them when it runs the rules again); a drop counts
/// the deciding rule or policy and every jump, RETURN and count-only rule
/// the packet matched on its way and every ACCEPT policy it went through
/// (raw's, before filter), as the kernel counts them; with source NAT in
/// the kernel only raw and mangle PREROUTING decide.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

namespace r2x::test {

namespace {

// Slots (--emit=ir): raw PREROUTING 0 CT, 1 count-only, policy 10;
// filter INPUT 2 -j CHECK, 3 ACCEPT 22, 4 limit, 5 LOG, 6 REJECT, policy 11;
// CHECK 7 DROP 23, 8 count-only tcp, 9 RETURN.
const std::string kHost = R"(*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 9 -j CT --notrack
-A PREROUTING -s 10.1.0.66/32
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CHECK - [0:0]
-A INPUT -j CHECK
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p udp -m udp --dport 53 -m limit --limit 1/s -j ACCEPT
-A INPUT -p udp -m udp --dport 5353 -j LOG --log-prefix "mdns "
-A INPUT -p udp -j REJECT --reject-with icmp-port-unreachable
-A OUTPUT -m conntrack --ctstate NEW -j ACCEPT
-A CHECK -s 10.1.0.66/32 -p tcp -m tcp --dport 23 -j DROP
-A CHECK -p tcp
-A CHECK -s 10.1.0.77/32 -j RETURN
COMMIT
)";

// Slots: raw 0 DROP, policy 2; filter INPUT 1 DROP, policy 3.
const std::string kNat = R"(*raw
:PREROUTING ACCEPT [0:0]
-A PREROUTING -s 10.1.0.66/32 -j DROP
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth9 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -j DROP
COMMIT
)";

// Slots: filter INPUT 0 ESTABLISHED,RELATED ACCEPT, 1 INVALID DROP,
// 2 ACCEPT 22, policy 3.
const std::string kConntrack = R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
)";

// Slots: 0 `! --ctstate NEW` DROP, 1 `--state NEW` DROP (dport 9),
// 2 `--ctstate DNAT` DROP, 3 DROP udp 10, policy 4 (ACCEPT).
const std::string kCtNegated = R"(*filter
:INPUT ACCEPT [0:0]
-A INPUT -m conntrack ! --ctstate NEW -j DROP
-A INPUT -p udp -m udp --dport 9 -m state --state NEW -j DROP
-A INPUT -m conntrack --ctstate DNAT -j DROP
-A INPUT -p udp -m udp --dport 10 -j DROP
COMMIT
)";

// The same for ip6tables (the address makes the file IPv6).
const std::string kConntrack6 = R"(*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -d 2001:db8::/64 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
)";

// Slots: filter INPUT 0 -j CHK, 1 REJECT tcp-reset :90, policy 3;
// CHK 2 REJECT tcp-reset :80.
const std::string kReject = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CHK - [0:0]
-A INPUT -p tcp -m tcp --dport 80:89 -j CHK
-A INPUT -p tcp -m tcp --dport 90 -j REJECT --reject-with tcp-reset
-A CHK -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset
COMMIT
)";

// Slots: filter INPUT 0 LOG, 1 DROP udp, policy 2 (3 is loglost).
const std::string kLog = R"(*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp -j LOG --log-prefix "u "
-A INPUT -p udp -j DROP
COMMIT
)";

} // namespace

void handoverCases(Harness &h) {
  const std::string p = "handover/";
  auto tcp = [](const char *src, uint16_t dport) {
    return Frame::tcp(src, "10.1.0.2", 40000, dport);
  };
  auto udp = [](uint16_t dport) {
    return Frame::udp("10.1.0.1", "10.1.0.2", 40000, dport);
  };
  // Policy DROP: the jump, the count-only rule in CHECK and raw's ACCEPT
  // policy count with it.
  h.expectHandover(p + "policy-drop-counts-path", kHost, tcp("10.1.0.1", 80),
                   kDrop, {2, 8, 10, 11});
  h.expectHandover(p + "accept-passes-uncounted", kHost, tcp("10.1.0.1", 22),
                   kPass, {});
  // The deciding rule in a user chain, the jump to it, and raw's
  // count-only rule of the other table.
  h.expectHandover(p + "drop-in-user-chain", kHost, tcp("10.1.0.66", 23), kDrop,
                   {1, 2, 7, 10});
  h.expectHandover(p + "raw-target-hands-over", kHost, udp(9), kPass, {});
  h.expectHandover(p + "unknown-match-hands-over", kHost, udp(53), kPass, {});
  h.expectHandover(p + "log-hands-over", kHost, udp(5353), kPass, {});
  h.expectHandover(p + "reject-hands-over", kHost, udp(1000), kPass, {});
  // LOG then DROP: XDP drops, logs (a ring buffer record) and counts both.
  // A packet whose line XDP cannot reproduce goes to the kernel at the LOG
  // rule: a fragment (the kernel may log it reassembled), a tagged frame
  // (logged on the VLAN device).
  h.expectHandover(p + "log-then-drop", kLog, udp(7), kDrop, {0, 1});
  h.expectHandover(p + "log-fragment-hands-over", kLog, udp(7).frag(0, true),
                   kPass, {});
  h.expectHandover(p + "log-tagged-hands-over", kLog, udp(7).vlan(5), kPass,
                   {});
  // RETURN counted, then the policy.
  h.expectHandover(p + "return-then-policy", kHost,
                   Frame::icmp("10.1.0.77", "10.1.0.2"), kDrop, {2, 9, 10, 11});

  // Source NAT in the kernel: raw decides; filter too, for a packet that
  // conntrack (looked up at nat PREROUTING, in the test process's
  // namespace, which tracks none of these tuples) certainly sees as a new,
  // untranslated connection. Anything it cannot look up, or may see as
  // INVALID, is the kernel's.
  h.expectHandover(p + "kernel-nat-raw-drops", kNat, tcp("10.1.0.66", 80),
                   kDrop, {0});
  h.expectHandover(p + "kernel-nat-new-udp-filter-drops", kNat, udp(1234),
                   kDrop, {1, 2});
  h.expectHandover(p + "kernel-nat-bad-checksum-handed-over", kNat,
                   udp(1234).badChecksum(), kPass, {});
  h.expectHandover(p + "kernel-nat-icmp-handed-over", kNat,
                   Frame::icmp("10.1.0.1", "10.1.0.2"), kPass, {});

  // REJECT --reject-with tcp-reset (docs/handover.md, "REJECT"). The test
  // namespace does not forward, so bpf_fib_lookup gives no reply route and
  // every segment that needs a RST is handed over; a RST needs no answer
  // (the kernel drops it and sends nothing), so XDP drops it, counted with
  // the jump on its way. A tagged frame and a fragment are the kernel's.
  const std::string r = p + "reject/";
  auto seg = [](uint16_t dport, uint8_t flags) {
    return Frame::tcp("10.1.0.1", "10.1.0.2", 40000, dport)
        .payload(0)
        .withTcpFlags(flags);
  };
  h.expectHandover(r + "rst-dropped-in-user-chain", kReject, seg(80, 0x04),
                   kDrop, {0, 2});
  h.expectHandover(r + "rst-ack-dropped", kReject, seg(90, 0x14), kDrop, {1});
  h.expectHandover(r + "syn-without-reply-route-handed-over", kReject,
                   seg(80, 0x02), kPass, {});
  h.expectHandover(r + "ack-without-reply-route-handed-over", kReject,
                   seg(90, 0x10).payload(10), kPass, {});
  h.expectHandover(r + "tagged-rst-handed-over", kReject,
                   seg(80, 0x04).vlan(10), kPass, {});
  h.expectHandover(r + "fragment-rst-handed-over", kReject,
                   seg(90, 0x04).frag(0, true), kPass, {});
  h.expectHandover(r + "other-port-passes", kReject, seg(91, 0x04), kPass, {});

  // State matches (docs/handover.md, "Connection state"), looked up in the
  // test process's namespace, which tracks none of these tuples. A SYN
  // with a right checksum and no entry is NEW, nothing else: the policy.
  const std::string c = p + "ct/";
  auto syn = [](uint16_t dport) {
    return Frame::tcp("10.1.0.1", "10.1.0.2", 40000, dport).payload(0);
  };
  h.expectHandover(c + "new-syn-policy-drop", kConntrack, syn(80), kDrop, {3});
  h.expectHandover(c + "new-syn-with-data-policy-drop", kConntrack,
                   syn(80).payload(44), kDrop, {3});
  h.expectHandover(c + "new-syn-allowed-port", kConntrack, syn(22), kPass, {});
  h.expectHandover(c + "new-udp-policy-drop", kConntrack, udp(7000), kDrop,
                   {3});
  // Invalid flag combinations, a bad data offset: INVALID, whatever
  // conntrack holds.
  h.expectHandover(c + "syn-fin-invalid", kConntrack,
                   syn(22).withTcpFlags(0x03), kDrop, {1});
  h.expectHandover(c + "bare-fin-invalid", kConntrack,
                   syn(22).withTcpFlags(0x01), kDrop, {1});
  h.expectHandover(c + "no-flags-invalid", kConntrack,
                   syn(22).withTcpFlags(0x00), kDrop, {1});
  h.expectHandover(c + "doff-4-invalid", kConntrack, syn(22).withTcpDoff(4),
                   kDrop, {1});
  // tcp_new() refuses SYN/ACK, RST, FIN/ACK without an entry: INVALID.
  h.expectHandover(c + "synack-no-entry-invalid", kConntrack,
                   syn(80).withTcpFlags(0x12), kDrop, {1});
  h.expectHandover(c + "rst-no-entry-invalid", kConntrack,
                   syn(80).withTcpFlags(0x04), kDrop, {1});
  // Uncertain: handed over at the INVALID rule.
  h.expectHandover(c + "bare-ack-loose-handed-over", kConntrack,
                   syn(80).withTcpFlags(0x10), kPass, {});
  h.expectHandover(c + "bad-checksum-handed-over", kConntrack,
                   syn(80).badChecksum(), kPass, {});
  // The whole message is summed, up to 1480 bytes: NEW for certain.
  h.expectHandover(c + "long-segment-verified-policy-drop", kConntrack,
                   syn(80).payload(45), kDrop, {3});
  h.expectHandover(c + "1400-byte-segment-verified-policy-drop", kConntrack,
                   syn(80).payload(1400), kDrop, {3});
  h.expectHandover(c + "1400-byte-udp-verified-policy-drop", kConntrack,
                   udp(7000).payload(1400), kDrop, {3});
  h.expectHandover(c + "1400-byte-udp-bad-checksum-handed-over", kConntrack,
                   udp(7000).payload(1400).badChecksum(), kPass, {});
  // Longer: not summed, the kernel's.
  h.expectHandover(c + "1500-byte-segment-unsummed-handed-over", kConntrack,
                   syn(80).payload(1500), kPass, {});
  h.expectHandover(c + "udp-bad-checksum-handed-over", kConntrack,
                   udp(7000).badChecksum(), kPass, {});
  h.expectHandover(c + "icmp-handed-over", kConntrack,
                   Frame::icmp("10.1.0.1", "10.1.0.2"), kPass, {});
  h.expectHandover(c + "first-fragment-handed-over", kConntrack,
                   udp(7000).frag(0, true), kPass, {});

  // `!` and the NAT states: a NEW-only packet does not match `! NEW`, an
  // INVALID-only one does; {NEW, INVALID} is handed over; no entry, no
  // DNAT.
  h.expectHandover(c + "not-new-false-for-new", kCtNegated, syn(80), kPass, {});
  h.expectHandover(c + "not-new-true-for-invalid", kCtNegated,
                   syn(80).withTcpFlags(0x03), kDrop, {0});
  h.expectHandover(c + "not-new-uncertain", kCtNegated,
                   syn(80).withTcpFlags(0x10), kPass, {});
  h.expectHandover(c + "state-new-drops", kCtNegated, udp(9), kDrop, {1});
  h.expectHandover(c + "dnat-false-without-entry", kCtNegated, udp(10), kDrop,
                   {3});

  // IPv6 without extension headers: the same reasoning, a 36-byte tuple
  // and the IPv6 pseudo header.
  auto udp6 = [](uint16_t dport) {
    return Frame::udp6("2001:db8::1", "2001:db8::2", 40000, dport);
  };
  auto syn6 = [&](uint16_t dport) {
    Frame f = udp6(dport).payload(0);
    f.l4 = L4::Tcp;
    f.proto = 6;
    return f;
  };
  h.expectHandover(c + "v6-new-udp-policy-drop", kConntrack6, udp6(7000), kDrop,
                   {3});
  h.expectHandover(c + "v6-new-syn-policy-drop", kConntrack6, syn6(80), kDrop,
                   {3});
  h.expectHandover(c + "v6-new-syn-allowed-port", kConntrack6, syn6(22), kPass,
                   {});
  h.expectHandover(c + "v6-syn-fin-invalid", kConntrack6,
                   syn6(80).withTcpFlags(0x03), kDrop, {1});
  h.expectHandover(c + "v6-1400-byte-udp-verified-policy-drop", kConntrack6,
                   udp6(7000).payload(1400), kDrop, {3});
  h.expectHandover(c + "v6-1400-byte-udp-bad-checksum-handed-over", kConntrack6,
                   udp6(7000).payload(1400).badChecksum(), kPass, {});
  h.expectHandover(c + "v6-bad-checksum-handed-over", kConntrack6,
                   udp6(7000).badChecksum(), kPass, {});
  h.expectHandover(c + "v6-bare-ack-handed-over", kConntrack6,
                   syn6(80).withTcpFlags(0x10), kPass, {});
}

} // namespace r2x::test
