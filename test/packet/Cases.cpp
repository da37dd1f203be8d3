//===- test/packet/Cases.cpp - the fixed packet test cases ----------------===//
//
/// \file
/// One block per match or packet shape: match, non-match, negation and wrong
/// protocol, as bpfilter tests its matchers. Each case states only the
/// rule's outcome; the harness turns it into the action and the counters
/// from the object's metadata, and the model double-checks the statement.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

namespace r2x::test {

namespace {

constexpr auto Match = Outcome::Match;
constexpr auto NoMatch = Outcome::NoMatch;
constexpr auto Hotdrop = Outcome::Hotdrop;
constexpr auto Ignored = Outcome::Ignored;

// The talk's packet: UDP 10.1.0.1:40000 -> 10.1.0.2:1234, 60 bytes.
const Frame U = Frame::udp("10.1.0.1", "10.1.0.2", 40000, 1234);
const Frame T = Frame::tcp("10.1.0.1", "10.1.0.2", 40000, 80);
const Frame I = Frame::icmp("10.1.0.1", "10.1.0.2");
const Frame G = Frame::raw("10.1.0.1", "10.1.0.2", 47); // GRE
// The same datagram as U over IPv6.
const Frame U6 = Frame::udp6("2001:db8::1", "2001:db8::2", 40000, 1234);

// The talk's rule.
const std::string R1 = "-A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP";
const std::string ALL = "-A INPUT -j DROP"; // no matches: every IPv4 packet

void talkRule(Harness &h) {
  h.expect("talk: udp to 10.1.0.2:1234", R1, U, Match);
  h.expect("talk: other dport", R1, U.ports(40000, 1235), NoMatch);
  h.expect("talk: dport one below", R1, U.ports(40000, 1233), NoMatch);
  h.expect("talk: sport 1234 is not dport", R1, U.ports(1234, 80), NoMatch);
  h.expect("talk: other destination", R1, U.to("10.1.0.3"), NoMatch);
  h.expect("talk: tcp to 1234 (wrong protocol)", R1, T.ports(40000, 1234),
           NoMatch);
  h.expect("talk: icmp (wrong protocol)", R1, I, NoMatch);
  h.expect("talk: DF is not a fragment", R1, U.dontFragment(), Match);
  h.expect("talk: big payload", R1, U.payload(1400), Match);
  h.expect("no matches: udp", ALL, U, Match);
  h.expect("no matches: tcp", ALL, T, Match);
  h.expect("no matches: gre", ALL, G, Match);
  h.expect("ACCEPT rule: match", "-A INPUT -p udp --dport 1234 -j ACCEPT", U,
           Match);
  h.expect("ACCEPT rule: no match", "-A INPUT -p udp --dport 1234 -j ACCEPT",
           U.ports(1, 2), NoMatch);
}

void sourceAddress(Harness &h) {
  const std::string host = "-A INPUT -s 10.1.0.1 -j DROP";
  h.expect("-s host: match", host, U, Match);
  h.expect("-s host: match tcp", host, T, Match);
  h.expect("-s host: no match", host, U.from("10.1.0.9"), NoMatch);
  h.expect("-s host: destination does not count", host,
           U.from("10.1.0.2").to("10.1.0.1"), NoMatch);
  const std::string h32 = "-A INPUT -s 10.1.0.1/32 -p udp -j DROP";
  h.expect("-s /32: match", h32, U, Match);
  h.expect("-s /32: no match", h32, U.from("10.1.0.0"), NoMatch);
  h.expect("-s /32: wrong protocol", h32, T, NoMatch);

  const std::string p24 = "-A INPUT -s 10.1.0.0/24 -j DROP";
  h.expect("-s /24: match", p24, U.from("10.1.0.77"), Match);
  h.expect("-s /24: match .0", p24, U.from("10.1.0.0"), Match);
  h.expect("-s /24: match .255", p24, U.from("10.1.0.255"), Match);
  h.expect("-s /24: no match", p24, U.from("10.1.1.1"), NoMatch);
  h.expect("-s /24: no match high bit", p24, U.from("138.1.0.1"), NoMatch);

  const std::string host24 = "-A INPUT -s 10.1.0.77/24 -j DROP";
  h.expect("-s host bits in net: match", host24, U.from("10.1.0.5"), Match);
  h.expect("-s host bits in net: no match", host24, U.from("10.1.2.77"),
           NoMatch);

  const std::string m16 = "-A INPUT -s 10.1.0.0/255.255.0.0 -j ACCEPT";
  h.expect("-s dotted mask: match", m16, U.from("10.1.200.3"), Match);
  h.expect("-s dotted mask: no match", m16, U.from("10.2.0.1"), NoMatch);

  const std::string odd = "-A INPUT -s 10.0.5.0/255.0.255.0 -j DROP";
  h.expect("-s non-contiguous mask: match", odd, U.from("10.77.5.9"), Match);
  h.expect("-s non-contiguous mask: no match", odd, U.from("10.77.6.9"),
           NoMatch);
  h.expect("-s non-contiguous mask: first octet", odd, U.from("11.0.5.0"),
           NoMatch);

  const std::string inv = "-A INPUT ! -s 10.1.0.0/24 -j DROP";
  h.expect("! -s /24: inside", inv, U.from("10.1.0.5"), NoMatch);
  h.expect("! -s /24: outside", inv, U.from("10.2.0.5"), Match);

  const std::string any = "-A INPUT -s 0.0.0.0/0 -j DROP";
  h.expect("-s 0/0: anything", any, U.from("203.0.113.9"), Match);
  h.expect("-s 0/0: zero", any, U.from("0.0.0.0"), Match);
}

void destinationAddress(Harness &h) {
  const std::string host = "-A INPUT -d 10.1.0.2 -j DROP";
  h.expect("-d host: match", host, U, Match);
  h.expect("-d host: no match", host, U.to("10.1.0.3"), NoMatch);
  h.expect("-d host: source does not count", host,
           U.from("10.1.0.2").to("10.1.0.1"), NoMatch);

  const std::string p16 = "-A INPUT -d 10.1.0.0/16 -p tcp -j DROP";
  h.expect("-d /16: match", p16, T.to("10.1.99.2"), Match);
  h.expect("-d /16: no match", p16, T.to("10.0.255.255"), NoMatch);
  h.expect("-d /16: wrong protocol", p16, U.to("10.1.99.2"), NoMatch);

  const std::string m24 = "-A INPUT -d 10.1.0.0/255.255.255.0 -j DROP";
  h.expect("-d dotted mask: match", m24, U.to("10.1.0.200"), Match);
  h.expect("-d dotted mask: no match", m24, U.to("10.1.1.2"), NoMatch);

  const std::string inv = "-A INPUT ! -d 10.1.0.2 -j DROP";
  h.expect("! -d host: same", inv, U, NoMatch);
  h.expect("! -d host: other", inv, U.to("10.1.0.3"), Match);
  const std::string inv8 = "-A INPUT ! -d 10.0.0.0/8 -p udp -j DROP";
  h.expect("! -d /8: inside", inv8, U, NoMatch);
  h.expect("! -d /8: outside", inv8, U.to("192.168.0.1"), Match);
  h.expect("! -d /8: outside, wrong protocol", inv8, T.to("192.168.0.1"),
           NoMatch);

  const std::string both = "-A INPUT -s 10.1.0.0/24 -d 10.1.0.2 -j DROP";
  h.expect("-s and -d: both", both, U, Match);
  h.expect("-s and -d: source wrong", both, U.from("10.3.0.1"), NoMatch);
  h.expect("-s and -d: destination wrong", both, U.to("10.1.0.4"), NoMatch);
}

void protocol(Harness &h) {
  const std::string udp = "-A INPUT -p udp -j DROP";
  h.expect("-p udp: udp", udp, U, Match);
  h.expect("-p udp: tcp", udp, T, NoMatch);
  h.expect("-p udp: icmp", udp, I, NoMatch);
  h.expect("-p udp: gre", udp, G, NoMatch);
  const std::string tcp = "-A INPUT -p tcp -j DROP";
  h.expect("-p tcp: tcp", tcp, T, Match);
  h.expect("-p tcp: udp", tcp, U, NoMatch);
  const std::string icmp = "-A INPUT -p icmp -j DROP";
  h.expect("-p icmp: icmp", icmp, I, Match);
  h.expect("-p icmp: udp", icmp, U, NoMatch);
  const std::string n17 = "-A INPUT -p 17 -j DROP";
  h.expect("-p 17: udp", n17, U, Match);
  h.expect("-p 17: tcp", n17, T, NoMatch);
  const std::string n47 = "-A INPUT -p 47 -j DROP";
  h.expect("-p 47: gre", n47, G, Match);
  h.expect("-p 47: udp", n47, U, NoMatch);
  h.expect("-p 47: protocol 0", n47, G.protocol(0), NoMatch);
  const std::string all = "-A INPUT -p all -j DROP";
  h.expect("-p all: udp", all, U, Match);
  h.expect("-p all: tcp", all, T, Match);
  h.expect("-p all: icmp", all, I, Match);
  h.expect("-p all: gre", all, G, Match);
  h.expect("-p all: protocol 255", all, G.protocol(255), Match);
  const std::string zero = "-A INPUT -p 0 -j DROP";
  h.expect("-p 0: gre", zero, G, Match);
  h.expect("-p 0: protocol 0", zero, G.protocol(0), Match);
  const std::string inv = "-A INPUT ! -p udp -j DROP";
  h.expect("! -p udp: udp", inv, U, NoMatch);
  h.expect("! -p udp: tcp", inv, T, Match);
  h.expect("! -p udp: icmp", inv, I, Match);
  h.expect("! -p udp: protocol 0", inv, G.protocol(0), Match);
  const std::string inv6 = "-A INPUT ! -p 6 -j ACCEPT";
  h.expect("! -p 6: tcp", inv6, T, NoMatch);
  h.expect("! -p 6: udp", inv6, U, Match);
}

void ports(Harness &h) {
  const std::string s53 = "-A INPUT -p udp --sport 53 -j DROP";
  h.expect("--sport 53: match", s53, U.ports(53, 9999), Match);
  h.expect("--sport 53: no match", s53, U.ports(54, 53), NoMatch);
  h.expect("--sport 53: tcp (wrong protocol)", s53, T.ports(53, 9999), NoMatch);

  const std::string dr = "-A INPUT -p udp --dport 1000:2000 -j DROP";
  h.expect("--dport range: below", dr, U.ports(5, 999), NoMatch);
  h.expect("--dport range: low end", dr, U.ports(5, 1000), Match);
  h.expect("--dport range: inside", dr, U.ports(5, 1500), Match);
  h.expect("--dport range: high end", dr, U.ports(5, 2000), Match);
  h.expect("--dport range: above", dr, U.ports(5, 2001), NoMatch);
  h.expect("--dport range: tcp (wrong protocol)", dr, T.ports(5, 1500),
           NoMatch);

  const std::string sr = "-A INPUT -p tcp --sport 1000:2000 -j DROP";
  h.expect("tcp --sport range: below", sr, T.ports(999, 80), NoMatch);
  h.expect("tcp --sport range: low end", sr, T.ports(1000, 80), Match);
  h.expect("tcp --sport range: high end", sr, T.ports(2000, 80), Match);
  h.expect("tcp --sport range: above", sr, T.ports(2001, 80), NoMatch);
  h.expect("tcp --sport range: udp (wrong protocol)", sr, U.ports(1500, 80),
           NoMatch);

  const std::string dinv = "-A INPUT -p udp ! --dport 1234 -j DROP";
  h.expect("! --dport: the port", dinv, U, NoMatch);
  h.expect("! --dport: another port", dinv, U.ports(40000, 1235), Match);
  h.expect("! --dport: tcp (wrong protocol)", dinv, T.ports(1, 1235), NoMatch);

  const std::string rinv = "-A INPUT -p tcp ! --dport 1:1023 -j DROP";
  h.expect("! --dport range: inside", rinv, T.ports(5000, 80), NoMatch);
  h.expect("! --dport range: above", rinv, T.ports(5000, 8080), Match);
  h.expect("! --dport range: zero", rinv, T.ports(5000, 0), Match);

  const std::string both =
      "-A INPUT -p tcp --sport 1024:65535 --dport 80 -j DROP";
  h.expect("--sport and --dport: both", both, T.ports(5000, 80), Match);
  h.expect("--sport and --dport: dport wrong", both, T.ports(5000, 81),
           NoMatch);
  h.expect("--sport and --dport: sport wrong", both, T.ports(80, 80), NoMatch);

  const std::string binv = "-A INPUT -p udp ! --sport 53 ! --dport 53 -j DROP";
  h.expect("! --sport ! --dport: neither", binv, U.ports(1000, 2000), Match);
  h.expect("! --sport ! --dport: sport 53", binv, U.ports(53, 2000), NoMatch);
  h.expect("! --sport ! --dport: dport 53", binv, U.ports(1000, 53), NoMatch);

  const std::string d0 = "-A INPUT -p udp --dport 0 -j DROP";
  h.expect("--dport 0: match", d0, U.ports(1, 0), Match);
  h.expect("--dport 0: no match", d0, U.ports(0, 1), NoMatch);
  const std::string dmax = "-A INPUT -p udp --dport 65535 -j DROP";
  h.expect("--dport 65535: match", dmax, U.ports(1, 65535), Match);
  h.expect("--dport 65535: no match", dmax, U.ports(1, 65534), NoMatch);
  const std::string full = "-A INPUT -p tcp --dport 0:65535 -j DROP";
  h.expect("--dport 0:65535: any tcp", full, T.ports(7, 7), Match);

  const std::string ssh =
      "-A INPUT -s 10.1.0.1 -d 10.1.0.2 -p tcp --dport 22 -j ACCEPT";
  h.expect("all matches: match", ssh, T.ports(50000, 22), Match);
  h.expect("all matches: source wrong", ssh,
           T.ports(50000, 22).from("10.1.0.7"), NoMatch);
  h.expect("all matches: port wrong", ssh, T.ports(50000, 23), NoMatch);
}

void interfaces(Harness &h) {
  const std::string lo = "-A INPUT -i lo -j DROP";
  h.expect("-i lo: on lo", lo, U, Match, "lo");
  h.expect("-i lo: on r2xa0", lo, U, NoMatch, "r2xa0");

  const std::string wild = "-A INPUT -i r2x+ -j DROP";
  h.expect("-i r2x+: r2xa0", wild, U, Match, "r2xa0");
  h.expect("-i r2x+: r2xb0", wild, U, Match, "r2xb0");
  h.expect("-i r2x+: lo", wild, U, NoMatch, "lo");

  const std::string inv = "-A INPUT ! -i lo -j DROP";
  h.expect("! -i lo: on lo", inv, U, NoMatch, "lo");
  h.expect("! -i lo: on r2xa0", inv, U, Match, "r2xa0");

  const std::string a0 = "-A INPUT -i r2xa0 -p udp -j DROP";
  h.expect("-i r2xa0: untagged", a0, U, Match, "r2xa0");
  h.expect("-i r2xa0: other device", a0, U, NoMatch, "r2xb0");
  h.expect("-i r2xa0: wrong protocol", a0, T, NoMatch, "r2xa0");
  // A tagged frame belongs to the VLAN device, not to the parent.
  h.expect("-i r2xa0: tag 10 is r2xa0.10", a0, U.vlan(10), NoMatch, "r2xa0");
  h.expect("-i r2xa0: tag 11 (no device)", a0, U.vlan(11), NoMatch, "r2xa0");

  const std::string v10 = "-A INPUT -i r2xa0.10 -j DROP";
  h.expect("-i r2xa0.10: tag 10", v10, U.vlan(10), Match, "r2xa0");
  h.expect("-i r2xa0.10: tag 10 with PCP and DEI", v10, U.vlan(0xf00a), Match,
           "r2xa0");
  h.expect("-i r2xa0.10: 802.1ad tag 10", v10, U.vlan(10, 0x88a8), Match,
           "r2xa0");
  h.expect("-i r2xa0.10: tag 11", v10, U.vlan(11), NoMatch, "r2xa0");
  h.expect("-i r2xa0.10: untagged", v10, U, NoMatch, "r2xa0");
  h.expect("-i r2xa0.10: tag 10 on r2xb0", v10, U.vlan(10), NoMatch, "r2xb0");
  h.expect("-i r2xa0.10: tags 10 then 5", v10, U.vlan(10, 0x88a8).vlan(5),
           NoMatch, "r2xa0");

  const std::string qq = "-A INPUT -i r2xa0.20.30 -j DROP";
  h.expect("-i r2xa0.20.30: tags 20, 30", qq, U.vlan(20, 0x88a8).vlan(30),
           Match, "r2xa0");
  h.expect("-i r2xa0.20.30: 8100 tags 20, 30", qq, U.vlan(20).vlan(30), Match,
           "r2xa0");
  h.expect("-i r2xa0.20.30: tags 30, 20", qq, U.vlan(30, 0x88a8).vlan(20),
           NoMatch, "r2xa0");
  h.expect("-i r2xa0.20.30: tag 20 only", qq, U.vlan(20, 0x88a8), NoMatch,
           "r2xa0");

  const std::string vw = "-A INPUT -i r2xa0.+ -j DROP";
  h.expect("-i r2xa0.+: tag 10", vw, U.vlan(10), Match, "r2xa0");
  h.expect("-i r2xa0.+: tags 20, 30", vw, U.vlan(20, 0x88a8).vlan(30), Match,
           "r2xa0");
  h.expect("-i r2xa0.+: untagged", vw, U, NoMatch, "r2xa0");

  const std::string ninv = "-A INPUT ! -i r2xa0 -j DROP";
  h.expect("! -i r2xa0: untagged", ninv, U, NoMatch, "r2xa0");
  h.expect("! -i r2xa0: tag 10", ninv, U.vlan(10), Match, "r2xa0");
  h.expect("! -i r2xa0: tag 99 (no device)", ninv, U.vlan(99), Match, "r2xa0");

  const std::string all =
      "-A INPUT -i lo -d 10.1.0.2 -p udp --dport 1234 -j DROP";
  h.expect("-i with the talk's rule: match", all, U, Match, "lo");
  h.expect("-i with the talk's rule: device", all, U, NoMatch, "r2xb0");
  h.expect("-i with the talk's rule: port", all, U.ports(1, 2), NoMatch, "lo");
}

void vlans(Harness &h) {
  h.expect("802.1Q: match", R1, U.vlan(10), Match);
  h.expect("802.1Q with PCP: match", R1, U.vlan(0xa123), Match);
  h.expect("802.1Q: no match", R1, U.vlan(10).ports(1, 2), NoMatch);
  h.expect("802.1ad: match", R1, U.vlan(10, 0x88a8), Match);
  h.expect("QinQ 88a8+8100: match", R1, U.vlan(10, 0x88a8).vlan(20), Match);
  h.expect("QinQ 8100+8100: match", R1, U.vlan(10).vlan(20), Match);
  h.expect("QinQ 88a8+88a8: match", R1, U.vlan(10, 0x88a8).vlan(20, 0x88a8),
           Match);
  h.expect("QinQ: no match", R1, U.vlan(10, 0x88a8).vlan(20).to("10.1.0.9"),
           NoMatch);
  h.expect("QinQ: tcp", R1, T.vlan(10, 0x88a8).vlan(20).ports(1, 1234),
           NoMatch);
  h.expect("three tags: ignored", R1, U.vlan(1, 0x88a8).vlan(2).vlan(3),
           Ignored);
  h.expect("three tags: ignored by catch-all", ALL, U.vlan(1).vlan(2).vlan(3),
           Ignored);
  h.expect("IPv6 EtherType: ignored", ALL, U.ether(0x86dd), Ignored);
  h.expect("ARP: ignored", ALL, U.ether(0x0806), Ignored);
  h.expect("tag then IPv6: ignored", ALL, U.vlan(10).ether(0x86dd), Ignored);
  h.expect("two tags then ARP: ignored", ALL,
           U.vlan(10, 0x88a8).vlan(3).ether(0x0806), Ignored);
  h.expect("tag without payload: ignored", ALL, U.vlan(10).cut(18), Ignored);
  h.expect("tag, EtherType, 12 bytes: ignored", ALL, U.vlan(10).cut(30),
           Ignored);
}

// -m dscp (xt_dscp): the DS field's upper six bits; the two ECN bits below
// them do not count. DSCP 46 (EF) is TOS 0xb8, AF11 (10) is 0x28.
void dscp(Harness &h) {
  const std::string ef = "-A INPUT -m dscp --dscp 46 -j DROP";
  h.expect("dscp: match", ef, U.withTos(0xb8), Match);
  h.expect("dscp: ECN bits do not count", ef, U.withTos(0xbb), Match);
  h.expect("dscp: other class", ef, U.withTos(0x28), NoMatch);
  h.expect("dscp: class 0", ef, U, NoMatch);
  h.expect("dscp: tcp", ef, T.withTos(0xb8), Match);
  h.expect("dscp: first fragment", ef, U.withTos(0xb8).frag(0, true), Match);
  h.expect("dscp: IPv6 is not for an iptables rule", ef, U6.withTos(0xb8),
           Ignored);
  const std::string notEf = "-A INPUT -m dscp ! --dscp 46 -j DROP";
  h.expect("! dscp: other class", notEf, U.withTos(0x28), Match);
  h.expect("! dscp: the class", notEf, U.withTos(0xb9), NoMatch);
  const std::string zero = "-A INPUT -m dscp --dscp 0 -j ACCEPT";
  h.expect("dscp 0: ECN bits only", zero, U.withTos(0x03), Match);
  h.expect("dscp 0: lowest class bit", zero, U.withTos(0x04), NoMatch);
}

// ip6tables -m dscp (dscp_mt6): the upper six bits of the traffic class,
// which lies between the version and the flow label.
void ip6Dscp(Harness &h) {
  const std::string ef = "-6 -A INPUT -m dscp --dscp 46 -j DROP";
  h.expect("ip6 dscp: match", ef, U6.withTos(0xb8), Match);
  h.expect("ip6 dscp: ECN bits do not count", ef, U6.withTos(0xbb), Match);
  h.expect("ip6 dscp: other class", ef, U6.withTos(0x28), NoMatch);
  h.expect("ip6 dscp: class 0", ef, U6, NoMatch);
  h.expect("ip6 dscp: the flow label is not the class", ef, U6.flow(0xfffff),
           NoMatch);
  h.expect("ip6 dscp: match beside a full flow label", ef,
           U6.withTos(0xb8).flow(0xfffff), Match);
  h.expect("ip6 dscp: VLAN tag", ef, U6.withTos(0xb8).vlan(10), Match);
  h.expect("ip6 dscp: IPv4 is not for an ip6tables rule", ef, U.withTos(0xb8),
           Ignored);
  const std::string notEf = "-6 -A INPUT -m dscp ! --dscp 46 -j DROP";
  h.expect("ip6 ! dscp: other class", notEf, U6.withTos(0x28), Match);
  h.expect("ip6 ! dscp: the class", notEf, U6.withTos(0xb9), NoMatch);
  const std::string top = "-6 -A INPUT -m dscp --dscp 63 -j ACCEPT";
  h.expect("ip6 dscp 63: match", top, U6.withTos(0xfc), Match);
  h.expect("ip6 dscp 63: one bit short", top, U6.withTos(0xf8), NoMatch);
  const std::string udp = "-6 -A INPUT -p udp -m dscp --dscp 46 -j DROP";
  h.expect("ip6 -p udp and dscp: match", udp, U6.withTos(0xb8), Match);
  h.expect("ip6 -p udp and dscp: other class", udp, U6.withTos(0x20), NoMatch);
  h.expect("ip6 -p tcp and dscp: udp",
           "-6 -A INPUT -p tcp -m dscp --dscp 46 -j DROP", U6.withTos(0xb8),
           NoMatch);
}

void ipOptions(Harness &h) {
  for (int ihl = 6; ihl <= 15; ++ihl) {
    std::string n = "IHL " + std::to_string(ihl);
    Frame f = U.withOptions(size_t(ihl - 5) * 4);
    h.expect(n + ": ports after options, match", R1, f, Match);
    h.expect(n + ": ports after options, no match", R1, f.ports(1234, 1235),
             NoMatch);
    h.expect(n + ": tcp ports after options",
             "-A INPUT -p tcp --dport 80 -j DROP",
             T.withOptions(size_t(ihl - 5) * 4), Match);
  }
  // Option bytes that read as ports 40000 -> 1234 at the fixed offset 20.
  const std::vector<uint8_t> trap = {0x9c, 0x40, 0x04, 0xd2};
  h.expect("options that look like ports: no match", R1,
           U.withOptionBytes(trap).ports(40000, 9999), NoMatch);
  h.expect("options that look like ports: match", R1,
           U.withOptionBytes(trap).ports(7, 1234), Match);
  h.expect("IHL 15, UDP header cut: hotdrop", R1, U.withOptions(40).keepL4(4),
           Hotdrop);
}

void fragments(Harness &h) {
  // INPUT: the kernel reassembles first; the first fragment stands for the
  // datagram and the others are the kernel's business.
  h.expect("INPUT first fragment: match", R1, U.frag(0, true), Match);
  h.expect("INPUT first fragment: no match", R1, U.frag(0, true).ports(1, 2),
           NoMatch);
  h.expect("INPUT last fragment: ignored", R1, U.frag(185, false), Ignored);
  h.expect("INPUT middle fragment: ignored", R1, U.frag(185, true), Ignored);
  h.expect("INPUT offset 1: ignored", R1, U.frag(1, true), Ignored);
  h.expect("INPUT non-first, address rule: ignored",
           "-A INPUT -s 10.1.0.1 -j DROP", U.frag(3, false), Ignored);
  h.expect("INPUT tcp offset 1: ignored", "-A INPUT -p tcp --dport 80 -j DROP",
           T.frag(1, true), Ignored);
  h.expect("INPUT first fragment, UDP header cut: hotdrop", R1,
           U.frag(0, true).keepL4(4), Hotdrop);

  // raw PREROUTING sees fragments one by one.
  const std::string raw =
      "-t raw -A PREROUTING -d 10.1.0.2 -p udp --dport 1234 -j DROP";
  h.expect("raw: unfragmented match", raw, U, Match);
  h.expect("raw: unfragmented no match", raw, U.ports(1, 2), NoMatch);
  h.expect("raw: first fragment match", raw, U.frag(0, true), Match);
  h.expect("raw: last fragment never matches a port", raw, U.frag(185, false),
           NoMatch);
  h.expect("raw: middle fragment never matches a port", raw, U.frag(185, true),
           NoMatch);
  const std::string rawInv =
      "-t raw -A PREROUTING -p udp ! --dport 1234 -j DROP";
  h.expect("raw ! --dport: non-first fragment never matches", rawInv,
           U.ports(1, 2).frag(185, false), NoMatch);
  h.expect("raw ! --dport: other port", rawInv, U.ports(1, 2), Match);
  const std::string rawSrc = "-t raw -A PREROUTING -s 10.1.0.1 -p udp -j DROP";
  h.expect("raw -s: non-first fragment matches", rawSrc, U.frag(185, false),
           Match);
  h.expect("raw -s: non-first fragment, other source", rawSrc,
           U.frag(185, false).from("10.1.0.5"), NoMatch);
  const std::string rawTcp = "-t raw -A PREROUTING -p tcp --dport 80 -j DROP";
  h.expect("raw tcp: offset 1 is hotdropped", rawTcp, T.frag(1, true), Hotdrop);
  h.expect("raw tcp: offset 1 without MF is hotdropped", rawTcp,
           T.frag(1, false), Hotdrop);
  h.expect("raw tcp: offset 2 does not match", rawTcp, T.frag(2, true),
           NoMatch);
  h.expect("raw tcp rule: udp at offset 1", rawTcp,
           U.frag(1, true).ports(1, 80), NoMatch);
  h.expect("raw ! tcp port: offset 1 is hotdropped",
           "-t raw -A PREROUTING -p tcp ! --dport 80 -j DROP", T.frag(1, true),
           Hotdrop);
  h.expect("raw udp: offset 1 is no hotdrop",
           "-t raw -A PREROUTING -p udp --dport 80 -j DROP",
           U.ports(1, 80).frag(1, true), NoMatch);
  h.expect("raw tcp: offset 1, address mismatch first",
           "-t raw -A PREROUTING -s 10.9.9.9 -p tcp --dport 80 -j DROP",
           T.frag(1, true), NoMatch);
  const std::string rawAcc =
      "-t raw -A PREROUTING -p udp --dport 1234 -j ACCEPT";
  h.expect("raw ACCEPT goes on to filter", rawAcc, U, Match);
  h.expect("raw ACCEPT no match", rawAcc, U.ports(1, 2), NoMatch);
  h.expect("raw ACCEPT non-first fragment", rawAcc, U.frag(7, false), NoMatch);
}

void truncated(Harness &h) {
  h.expect("UDP header 0 bytes: hotdrop", R1, U.keepL4(0), Hotdrop);
  h.expect("UDP header 4 bytes: hotdrop", R1, U.keepL4(4), Hotdrop);
  h.expect("UDP header 7 bytes: hotdrop", R1, U.keepL4(7), Hotdrop);
  h.expect("UDP header 8 bytes: match", R1, U.keepL4(8), Match);
  h.expect("UDP header 8 bytes: no match", R1, U.keepL4(8).ports(1, 2),
           NoMatch);
  h.expect("UDP header cut, address mismatch first", R1,
           U.keepL4(4).to("10.1.0.3"), NoMatch);
  h.expect("UDP header cut, protocol mismatch first", R1,
           T.keepL4(4).ports(1, 1234), NoMatch);
  h.expect("UDP header cut, no port match: match", "-A INPUT -p udp -j DROP",
           U.keepL4(4), Match);
  h.expect("UDP header cut, ! --dport: hotdrop",
           "-A INPUT -p udp ! --dport 1234 -j DROP", U.keepL4(4), Hotdrop);
  // The header is all there in the frame, but tot_len ends before it: the
  // kernel trims to tot_len, so x_tables cannot see the ports.
  h.expect("UDP header beyond tot_len: hotdrop", R1, U.totLen(24), Hotdrop);
  h.expect("UDP header ends at tot_len: match", R1, U.totLen(28), Match);
  h.expect("tot_len = IHL*4: hotdrop", R1, U.totLen(20), Hotdrop);
  h.expect("tot_len = IHL*4: catch-all matches", ALL, U.totLen(20), Match);

  const std::string tcp = "-A INPUT -p tcp --dport 80 -j DROP";
  h.expect("TCP header 8 bytes: hotdrop", tcp, T.keepL4(8), Hotdrop);
  h.expect("TCP header 19 bytes: hotdrop", tcp, T.keepL4(19), Hotdrop);
  h.expect("TCP header 20 bytes: match", tcp, T.keepL4(20), Match);
  h.expect("TCP header beyond tot_len: hotdrop", tcp, T.totLen(30), Hotdrop);
  h.expect("raw: UDP header cut: hotdrop",
           "-t raw -A PREROUTING -p udp --dport 1234 -j DROP", U.keepL4(4),
           Hotdrop);
}

void malformed(Harness &h) {
  for (const std::string &r : {ALL, R1}) {
    std::string p = r == ALL ? "catch-all: " : "talk: ";
    h.expect(p + "Ethernet header only", r, U.cut(14), Ignored);
    h.expect(p + "19 bytes of IPv4", r, U.cut(14 + 19), Ignored);
    h.expect(p + "version 6", r, U.ver(6), Ignored);
    h.expect(p + "version 5", r, U.ver(5), Ignored);
    h.expect(p + "version 0", r, U.ver(0), Ignored);
    h.expect(p + "IHL 4", r, U.ihl(4), Ignored);
    h.expect(p + "IHL 0", r, U.ihl(0), Ignored);
    h.expect(p + "IHL 15, header longer than frame", r,
             U.ihl(15).totLen(60).payload(10), Ignored);
    h.expect(p + "IHL 6 in a 20-byte frame", r,
             U.ihl(6).totLen(24).cut(14 + 20), Ignored);
    h.expect(p + "tot_len 19", r, U.totLen(19), Ignored);
    h.expect(p + "tot_len 0", r, U.totLen(0), Ignored);
    h.expect(p + "tot_len < IHL*4 with options", r, U.withOptions(4).totLen(22),
             Ignored);
    h.expect(p + "tot_len one past the frame", r, U.totLen(47), Ignored);
    h.expect(p + "tot_len 65535", r, U.totLen(65535), Ignored);
    h.expect(p + "frame cut one byte short", r, U.cut(59), Ignored);
    h.expect(p + "tagged, 19 bytes of IPv4", r, U.vlan(10).cut(18 + 19),
             Ignored);
  }
  h.expect("catch-all: frame exactly tot_len long", ALL, U, Match);
}

void padding(Harness &h) {
  // tot_len 28, frame padded to the Ethernet minimum; bytes counted: 28.
  h.expect("padding: match", R1, U.payload(0).pad(60), Match);
  h.expect("padding 0xff: match", R1, U.payload(0).pad(60, 0xff), Match);
  h.expect("padding: no match", R1, U.payload(0).ports(1, 2).pad(60), NoMatch);
  h.expect("padding: catch-all counts tot_len", ALL, U.payload(0).pad(60),
           Match);
  h.expect("padding: tcp", "-A INPUT -p tcp --dport 80 -j DROP",
           T.payload(0).pad(60), Match);
  h.expect("padding after a VLAN tag", R1, U.payload(0).vlan(10).pad(64),
           Match);
  h.expect("long padding", R1, U.pad(1000, 0xab), Match);
}

} // namespace

void inputCases(Harness &h) {
  talkRule(h);
  sourceAddress(h);
  destinationAddress(h);
  protocol(h);
  ports(h);
  interfaces(h);
  vlans(h);
  dscp(h);
  ip6Dscp(h);
  ipOptions(h);
  fragments(h);
  truncated(h);
  malformed(h);
  padding(h);
}

void forwardCases(Harness &h) {
  const Frame fwd = Frame::udp("10.1.0.1", "10.9.0.2", 40000, 1234);
  const Frame local = fwd.to("10.9.0.1");
  const Frame tfwd = Frame::tcp("10.1.0.1", "10.9.0.2", 40000, 80);

  const std::string f1 = "-A FORWARD -d 10.9.0.2 -p udp --dport 1234 -j DROP";
  h.expect("FORWARD: match", f1, fwd, Match);
  h.expect("FORWARD: no match", f1, fwd.ports(1, 2), NoMatch);
  h.expect("FORWARD rule, local packet (INPUT)", f1, local, NoMatch);
  h.expect("FORWARD: first fragment", f1, fwd.frag(0, true), Match);
  h.expect("FORWARD: non-first fragment never matches a port", f1,
           fwd.frag(185, false), NoMatch);
  h.expect("FORWARD: VLAN tag", f1, fwd.vlan(10), Match);
  h.expect("FORWARD: UDP header cut: hotdrop", f1, fwd.keepL4(4), Hotdrop);

  const std::string f2 = "-A FORWARD -d 10.9.0.2 -p udp -j DROP";
  h.expect("FORWARD: non-first fragment, no port match", f2,
           fwd.frag(185, false), Match);
  h.expect("FORWARD: non-first fragment, local", f2, local.frag(185, false),
           Ignored);

  const std::string f3 = "-A FORWARD -p tcp --dport 80 -j DROP";
  h.expect("FORWARD tcp: match", f3, tfwd, Match);
  h.expect("FORWARD tcp: offset 1 is hotdropped", f3, tfwd.frag(1, true),
           Hotdrop);
  h.expect("FORWARD tcp: offset 3", f3, tfwd.frag(3, true), NoMatch);
  h.expect("FORWARD tcp: header cut: hotdrop", f3, tfwd.keepL4(10), Hotdrop);
  h.expect("FORWARD tcp rule, local cut header (INPUT)", f3,
           tfwd.to("10.9.0.1").keepL4(10), NoMatch);

  const std::string i1 = "-A INPUT -p udp --dport 1234 -j DROP";
  h.expect("INPUT rule, local packet", i1, local, Match);
  h.expect("INPUT rule, forwarded packet (FORWARD policy)", i1, fwd, NoMatch);
  h.expect("INPUT rule, local non-first fragment", i1, local.frag(185, false),
           Ignored);
  h.expect("INPUT rule, forwarded non-first fragment", i1, fwd.frag(185, false),
           NoMatch);
  h.expect("INPUT rule, loopback destination", i1, fwd.to("127.0.0.1"), Match);

  const std::string raw = "-t raw -A PREROUTING -p udp --dport 1234 -j DROP";
  h.expect("raw, forwarded: match", raw, fwd, Match);
  h.expect("raw, forwarded: no match", raw, fwd.ports(1, 2), NoMatch);
  h.expect("raw, local: no match", raw, local.ports(1, 2), NoMatch);
  const std::string rawAcc = "-t raw -A PREROUTING -s 10.1.0.1 -j ACCEPT";
  h.expect("raw ACCEPT, forwarded: then FORWARD", rawAcc, fwd, Match);
  h.expect("raw ACCEPT, local non-first fragment", rawAcc, local.frag(9, false),
           Match);

  const std::string acc = "-A FORWARD -s 10.1.0.0/16 -j ACCEPT";
  h.expect("FORWARD ACCEPT: match", acc, fwd, Match);
  h.expect("FORWARD ACCEPT: no match", acc, fwd.from("10.2.0.1"), NoMatch);

  const std::string in = "-A FORWARD -i f1 -d 10.9.0.2 -j DROP";
  h.expect("FORWARD -i: right device", in, fwd, Match, "f1");
  h.expect("FORWARD -i: other device", in, fwd, NoMatch, "lo");

  // -o (spelled --out-interface on rule2xdp's command line, where -o is
  // the object file): the route to 10.9.0.2 leaves through f0. With -i in the
  // same rule each pattern is tested against its own device's mask.
  const std::string out = "-A FORWARD --out-interface f0 -p udp -j DROP";
  h.expect("FORWARD -o: egress device", out, fwd, Match, "f1");
  h.expect("FORWARD -o: local packet (INPUT)", out, local, NoMatch, "f1");
  const std::string outIn = "-A FORWARD -i f1 --out-interface f1 -j DROP";
  h.expect("FORWARD -i f1 -o f1: leaves through f0", outIn, fwd, NoMatch, "f1");
  const std::string inOut = "-A FORWARD -i f1 --out-interface f0 -j DROP";
  h.expect("FORWARD -i f1 -o f0: match", inOut, fwd, Match, "f1");
  h.expect("FORWARD -i f1 -o f0: other ingress", inOut, fwd, NoMatch, "lo");
  const std::string notOut = "-A FORWARD ! --out-interface f0 -j DROP";
  h.expect("FORWARD ! -o f0: leaves through f0", notOut, fwd, NoMatch, "f1");
}

} // namespace r2x::test
