//===- test/packet/RulesetCases.cpp - fixed whole-ruleset cases -----------===//
//
/// \file
/// Rulesets in iptables-save form, compiled with `rule2xdp -f`. Each case
/// states the action and every rule that counts, by label ("CHAIN/N" is rule
/// N of filter CHAIN as `iptables -L --line-numbers` numbers it, "raw:" for
/// table raw, "/policy" for a built-in chain's policy); the harness turns
/// labels into counter slots through the object's metadata and the ruleset
/// model double-checks every statement. Frames are chosen so that each
/// path (jump and return, goto past the caller, RETURN in a built-in chain,
/// policies, raw ACCEPT going on to filter) shows in the action or in the
/// counters if the compiled program took another one.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

namespace r2x::test {

namespace {

constexpr uint32_t PASS = kPass;
constexpr uint32_t DROP = kDrop;

using Labels = std::vector<std::string>;

struct SetCase {
  std::string name;
  Frame frame;
  uint32_t action;
  Labels counted;
  std::string ingress;
};

void run(Harness &h, const std::string &prefix, const std::string &ruleset,
         const std::vector<SetCase> &cases) {
  for (const SetCase &c : cases)
    h.expectSet(prefix + c.name, ruleset, c.frame, c.action, c.counted,
                c.ingress);
}

/// 1-based line of the first line of `text` that starts with `start`.
unsigned lineOf(const std::string &text, const std::string &start) {
  size_t at = text.find("\n" + start);
  if (at == std::string::npos)
    throw std::logic_error("test bug: no line `" + start + "'");
  unsigned line = 2;
  for (size_t i = 0; i < at; ++i)
    line += text[i] == '\n';
  return line;
}

const Frame T = Frame::tcp("10.1.0.1", "10.1.0.2", 40000, 80);
const Frame U = Frame::udp("10.1.0.1", "10.1.0.2", 40000, 1234);
const Frame I = Frame::icmp("10.1.0.1", "10.1.0.2");

// --- (a) a host firewall
// ------------------------------------------------------

const std::string kHost = R"(# a host firewall, as iptables-save prints it
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:SERVICES - [0:0]
:BLOCKED - [0:0]
[12:3456] -A INPUT -i lo -j ACCEPT
-A INPUT -s 10.1.0.50/32 -j RETURN
-A INPUT -p tcp -j SERVICES
-A INPUT -s 10.1.0.7/32 -p tcp
-A INPUT -s 10.1.0.99/32 -g BLOCKED
-A INPUT -p udp -m udp --dport 53 -j ACCEPT
-A INPUT -s 10.1.0.0/24 -j ACCEPT
-A SERVICES -s 10.1.0.7/32 -j RETURN
-A SERVICES -p tcp -m tcp --dport 22 -j ACCEPT
-A SERVICES -p tcp -m tcp --dport 80:443 -j ACCEPT
-A SERVICES -s 10.2.0.66/32 -g BLOCKED
-A SERVICES -p tcp -m tcp --dport 8080 -j ACCEPT
-A BLOCKED -p tcp -m tcp --dport 23 -j DROP
-A BLOCKED -p tcp
COMMIT
)";

std::vector<SetCase> hostCases() {
  const std::string a0 = "r2xa0";
  const Frame out = T.from("10.2.0.1");
  return {
      {"lo accepts anything", T.ports(1, 9999), PASS, {"INPUT/1"}, "lo"},
      {"lo accepts udp", U.from("10.2.0.9"), PASS, {"INPUT/1"}, "lo"},
      {"ssh", T.ports(40000, 22), PASS, {"INPUT/3", "SERVICES/2"}, a0},
      {"http 80", T.ports(40000, 80), PASS, {"INPUT/3", "SERVICES/3"}, a0},
      {"https 443", T.ports(40000, 443), PASS, {"INPUT/3", "SERVICES/3"}, a0},
      {"ssh, tagged",
       T.ports(40000, 22).vlan(10),
       PASS,
       {"INPUT/3", "SERVICES/2"},
       a0},
      {"ssh, 1000 bytes",
       T.ports(40000, 22).payload(1000),
       PASS,
       {"INPUT/3", "SERVICES/2"},
       a0},
      {"tcp 444 from the LAN: SERVICES falls off, back in INPUT",
       T.ports(1, 444),
       PASS,
       {"INPUT/3", "INPUT/7"},
       a0},
      {"tcp 444 from outside: policy",
       out.ports(1, 444),
       DROP,
       {"INPUT/3", "INPUT/policy"},
       a0},
      {"RETURN from SERVICES comes back to the rule after the jump",
       T.from("10.1.0.7").ports(1, 22),
       PASS,
       {"INPUT/3", "SERVICES/1", "INPUT/4", "INPUT/7"},
       a0},
      {"goto BLOCKED falls off past SERVICES (not back into it)",
       T.from("10.2.0.66").ports(1, 8080),
       DROP,
       {"INPUT/3", "SERVICES/4", "BLOCKED/2", "INPUT/policy"},
       a0},
      {"goto BLOCKED drops telnet",
       T.from("10.2.0.66").ports(1, 23),
       DROP,
       {"INPUT/3", "SERVICES/4", "BLOCKED/1"},
       a0},
      {"ssh before the goto",
       T.from("10.2.0.66").ports(1, 22),
       PASS,
       {"INPUT/3", "SERVICES/2"},
       a0},
      {"dns from outside",
       U.from("10.2.0.9").ports(1, 53),
       PASS,
       {"INPUT/6"},
       a0},
      {"goto from INPUT falls off to the policy, not to the next rule",
       U.from("10.1.0.99").ports(1, 53),
       DROP,
       {"INPUT/5", "INPUT/policy"},
       a0},
      {"goto source, tcp: SERVICES first",
       T.from("10.1.0.99").ports(1, 22),
       PASS,
       {"INPUT/3", "SERVICES/2"},
       a0},
      {"goto source, tcp: SERVICES falls off, then the goto",
       T.from("10.1.0.99").ports(1, 9999),
       DROP,
       {"INPUT/3", "INPUT/5", "BLOCKED/2", "INPUT/policy"},
       a0},
      {"RETURN in INPUT is the policy",
       U.from("10.1.0.50").ports(1, 53),
       DROP,
       {"INPUT/2", "INPUT/policy"},
       a0},
      {"udp 54 from outside: policy",
       U.from("10.2.0.9").ports(1, 54),
       DROP,
       {"INPUT/policy"},
       a0},
      {"icmp from the LAN", I.from("10.1.0.5"), PASS, {"INPUT/7"}, a0},
      {"icmp from outside", I.from("10.3.0.5"), DROP, {"INPUT/policy"}, a0},
      {"short TCP header: hotdrop inside SERVICES, the jump counted",
       T.ports(1, 22).keepL4(8),
       DROP,
       {"INPUT/3"},
       a0},
      {"short TCP header: RETURN before any port match",
       T.from("10.1.0.7").ports(1, 22).keepL4(8),
       PASS,
       {"INPUT/3", "SERVICES/1", "INPUT/4", "INPUT/7"},
       a0},
      {"short UDP header: hotdrop at the dns rule",
       U.from("10.2.0.9").keepL4(4),
       DROP,
       {},
       a0},
      {"non-first fragment from outside: left to reassembly",
       out.ports(1, 444).frag(100, false),
       PASS,
       {},
       a0},
      {"tcp offset 1: left to reassembly", T.frag(1, true), PASS, {}, a0},
      {"first fragment from outside: judged",
       out.ports(1, 444).frag(0, true),
       DROP,
       {"INPUT/3", "INPUT/policy"},
       a0},
      {"first fragment ssh",
       out.ports(1, 22).frag(0, true),
       PASS,
       {"INPUT/3", "SERVICES/2"},
       a0},
      {"IPv6: ignored", out.ether(0x86dd), PASS, {}, a0},
      {"IHL 4: ignored", out.ihl(4), PASS, {}, a0},
      {"three tags: ignored", out.vlan(1).vlan(2).vlan(3), PASS, {}, a0},
  };
}

void hostFirewall(Harness &h) {
  run(h, "ruleset host: ", kHost, hostCases());

  // (g) OUTPUT rules (and an empty nat section) change nothing: the
  // same frames, the same expectations, the same slots.
  std::string withOutput = kHost;
  withOutput.replace(withOutput.rfind("COMMIT"), 6,
                     "-A OUTPUT -j DROP\n"
                     "-A OUTPUT -p tcp -j SERVICES\n"
                     "-I OUTPUT -g BLOCKED\n"
                     "-P OUTPUT DROP\n"
                     "COMMIT");
  withOutput = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
               ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n" +
               withOutput;
  run(h, "ruleset host + OUTPUT rules: ", withOutput, hostCases());
  h.expectCompile(
      "ruleset host + OUTPUT rules: warning", withOutput, 0,
      {"FILE:" + std::to_string(lineOf(withOutput, "-A OUTPUT -j DROP")) +
       ":4: warning: rule in OUTPUT ignored"});
}

// --- (b) a router
// ---------------------------------------------------------------

const std::string kRouter = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FROM_F1 - [0:0]
-A INPUT -p tcp --dport 22 -j DROP
-A FORWARD -s 10.1.0.0/24 -d 10.9.0.2 -p tcp --dport 80 -j ACCEPT
-A FORWARD -s 10.1.0.0/24 -p udp --dport 53 -j ACCEPT
-A FORWARD -s 192.168.7.0/24 -j ACCEPT
-A FORWARD -p tcp --sport 1024:65535 --dport 22 -j ACCEPT
-A FORWARD -d 10.9.0.2 -p icmp -j ACCEPT
-A FORWARD -i f1 -j FROM_F1
-A FORWARD -p udp ! --dport 1:1023 -j ACCEPT
-A FROM_F1 -s 10.3.0.0/16 -j RETURN
-A FROM_F1 -p tcp -j ACCEPT
-A FROM_F1 -j DROP
COMMIT
)";

void router(Harness &h) {
  const Frame tf = Frame::tcp("10.1.0.1", "10.9.0.2", 40000, 80);
  const Frame uf = Frame::udp("10.1.0.1", "10.9.0.2", 40000, 53);
  const Frame inf = Frame::icmp("10.2.0.1", "10.9.0.2");
  run(h, "ruleset router: ", kRouter,
      {
          {"web from the LAN", tf, PASS, {"FORWARD/1"}, "lo"},
          {"web from the LAN, tagged", tf.vlan(7), PASS, {"FORWARD/1"}, "lo"},
          {"port 81 from the LAN",
           tf.ports(40000, 81),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"web from elsewhere",
           tf.from("10.2.0.1"),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"dns from the LAN", uf.from("10.1.0.5"), PASS, {"FORWARD/2"}, "lo"},
          {"dns from elsewhere",
           uf.from("10.3.0.1"),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"high udp port from elsewhere",
           uf.from("10.3.0.1").ports(1, 5353),
           PASS,
           {"FORWARD/7"},
           "lo"},
          {"anything from 192.168.7.0/24",
           uf.from("192.168.7.9").ports(1, 9),
           PASS,
           {"FORWARD/3"},
           "lo"},
          {"ssh from a high port",
           tf.from("10.2.0.1").ports(2000, 22),
           PASS,
           {"FORWARD/4"},
           "lo"},
          {"ssh from a low port",
           tf.from("10.2.0.1").ports(1000, 22),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"ping", inf, PASS, {"FORWARD/5"}, "lo"},
          {"f1: tcp accepted in FROM_F1",
           tf.from("10.2.0.1").ports(1, 25),
           PASS,
           {"FORWARD/6", "FROM_F1/2"},
           "f1"},
          {"f1: udp dropped in FROM_F1",
           uf.from("10.2.0.1").ports(1, 25),
           DROP,
           {"FORWARD/6", "FROM_F1/3"},
           "f1"},
          {"f1: RETURN, then the policy",
           uf.from("10.3.0.1").ports(1, 25),
           DROP,
           {"FORWARD/6", "FROM_F1/1", "FORWARD/policy"},
           "f1"},
          {"f1: RETURN, then the next FORWARD rule",
           uf.from("10.3.0.1").ports(1, 5000),
           PASS,
           {"FORWARD/6", "FROM_F1/1", "FORWARD/7"},
           "f1"},
          {"f1: the LAN's web before FROM_F1", tf, PASS, {"FORWARD/1"}, "f1"},
          {"local ssh: INPUT",
           tf.to("10.9.0.1").ports(1, 22),
           DROP,
           {"INPUT/1"},
           "lo"},
          {"local web: INPUT policy",
           tf.to("10.9.0.1"),
           PASS,
           {"INPUT/policy"},
           "lo"},
          {"local from f1: INPUT, not FROM_F1",
           uf.from("10.2.0.1").to("10.9.0.1").ports(1, 25),
           PASS,
           {"INPUT/policy"},
           "f1"},
          {"TTL 1 forwarded: the kernel answers, no chain",
           tf.withTtl(1),
           PASS,
           {},
           "lo"},
          {"TTL 1 forwarded from elsewhere: still no chain",
           tf.from("10.2.0.1").withTtl(1),
           PASS,
           {},
           "lo"},
          {"TTL 2 forwarded",
           tf.from("10.2.0.1").withTtl(2),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"TTL 1 local: INPUT",
           tf.to("10.9.0.1").ports(1, 22).withTtl(1),
           DROP,
           {"INPUT/1"},
           "lo"},
          {"forwarded non-first fragment: ports never match",
           tf.frag(185, false),
           DROP,
           {"FORWARD/policy"},
           "lo"},
          {"forwarded non-first fragment: addresses do",
           uf.from("192.168.7.9").frag(185, false),
           PASS,
           {"FORWARD/3"},
           "lo"},
          {"forwarded tcp offset 1: hotdrop", tf.frag(1, true), DROP, {}, "lo"},
          {"forwarded tcp offset 1 from elsewhere: hotdrop at FORWARD/4",
           tf.from("10.2.0.1").frag(1, true),
           DROP,
           {},
           "lo"},
          {"local non-first fragment: left to reassembly",
           tf.to("10.9.0.1").ports(1, 22).frag(185, false),
           PASS,
           {},
           "lo"},
          {"forwarded short TCP header: hotdrop",
           tf.keepL4(12),
           DROP,
           {},
           "lo"},
      });
}

// --- (c) raw PREROUTING, then filter -----------------------------------------

const std::string kRaw = R"(*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:RAWCHK - [0:0]
-A PREROUTING -s 10.6.6.0/24 -j DROP
-A PREROUTING -p udp --dport 1234 -j ACCEPT
-A PREROUTING -p tcp
-A PREROUTING -p tcp -j RAWCHK
-A RAWCHK -s 10.7.0.0/16 -j DROP
-A RAWCHK -p tcp --dport 80 -j RETURN
-A RAWCHK -p tcp --dport 81 -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp --dport 1234 -j DROP
-A INPUT -s 10.6.6.0/24 -j ACCEPT
-A INPUT -p tcp --dport 81 -j DROP
COMMIT
)";

std::vector<SetCase> rawCases() {
  const std::string a0 = "r2xa0";
  return {
      {"raw ACCEPT goes on to filter",
       U,
       DROP,
       {"raw:PREROUTING/2", "INPUT/1"},
       a0},
      {"raw DROP ends everything",
       U.from("10.6.6.6"),
       DROP,
       {"raw:PREROUTING/1"},
       a0},
      {"raw RETURN from RAWCHK, raw policy, filter policy",
       T,
       PASS,
       {"raw:PREROUTING/3", "raw:PREROUTING/4", "raw:RAWCHK/2",
        "raw:PREROUTING/policy", "INPUT/policy"},
       a0},
      {"raw ACCEPT inside RAWCHK goes on to filter",
       T.ports(1, 81),
       DROP,
       {"raw:PREROUTING/3", "raw:PREROUTING/4", "raw:RAWCHK/3", "INPUT/3"},
       a0},
      {"raw DROP inside RAWCHK",
       T.from("10.7.1.1"),
       DROP,
       {"raw:PREROUTING/3", "raw:PREROUTING/4", "raw:RAWCHK/1"},
       a0},
      {"raw falls off RAWCHK",
       T.ports(1, 82),
       PASS,
       {"raw:PREROUTING/3", "raw:PREROUTING/4", "raw:PREROUTING/policy",
        "INPUT/policy"},
       a0},
      {"raw sees a non-first fragment",
       U.from("10.6.6.6").frag(9, false),
       DROP,
       {"raw:PREROUTING/1"},
       a0},
      {"raw counts a non-first fragment, INPUT leaves it",
       U.frag(9, true),
       PASS,
       {"raw:PREROUTING/policy"},
       a0},
      {"raw tcp offset 1: hotdrop in RAWCHK",
       T.frag(1, true),
       DROP,
       {"raw:PREROUTING/3", "raw:PREROUTING/4"},
       a0},
      {"raw short UDP header: hotdrop", U.keepL4(2), DROP, {}, a0},
      {"icmp: both policies",
       I,
       PASS,
       {"raw:PREROUTING/policy", "INPUT/policy"},
       a0},
      {"not IPv4: nothing", I.ether(0x0806), PASS, {}, a0},
  };
}

const std::string kRawDrop = R"(*raw
:PREROUTING DROP [0:0]
-A PREROUTING -s 10.1.0.0/24 -j ACCEPT
COMMIT
*filter
:INPUT DROP [0:0]
-A INPUT -p udp -j ACCEPT
COMMIT
)";

void rawAndFilter(Harness &h) {
  run(h, "ruleset raw+filter: ", kRaw, rawCases());
  std::string withOutput = kRaw;
  withOutput.replace(withOutput.find("COMMIT"), 6,
                     "-A OUTPUT -j DROP\n-P OUTPUT DROP\nCOMMIT");
  run(h, "ruleset raw+filter + raw OUTPUT rules: ", withOutput, rawCases());

  run(h, "ruleset raw policy DROP: ", kRawDrop,
      {
          {"raw ACCEPT, filter ACCEPT",
           U,
           PASS,
           {"raw:PREROUTING/1", "INPUT/1"},
           "lo"},
          {"raw policy DROP",
           U.from("10.2.0.1"),
           DROP,
           {"raw:PREROUTING/policy"},
           "lo"},
          {"raw ACCEPT, filter policy DROP",
           T,
           DROP,
           {"raw:PREROUTING/1", "INPUT/policy"},
           "lo"},
          {"raw ACCEPT, non-first fragment",
           T.frag(3, false),
           PASS,
           {"raw:PREROUTING/1"},
           "lo"},
          {"raw policy DROP, non-first fragment",
           T.from("10.2.0.1").frag(3, false),
           DROP,
           {"raw:PREROUTING/policy"},
           "lo"},
      });
}

// --- raw, mangle and filter in one hook
// ------------------------------------------

const std::string kMangle = R"(*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp --dport 1 -j DROP
-A PREROUTING -p udp --dport 2 -j ACCEPT
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:MCHK - [0:0]
-A PREROUTING -p udp --dport 2 -j DROP
-A PREROUTING -p udp --dport 3 -j MCHK
-A INPUT -p udp -j ACCEPT
-A INPUT -p tcp --dport 22 -g MCHK
-A FORWARD -p tcp -j DROP
-A MCHK -p udp --dport 3 -j RETURN
-A MCHK -p tcp -j ACCEPT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp --dport 4 -j DROP
COMMIT
)";

const Labels kPre = {"raw:PREROUTING/policy", "mangle:PREROUTING/policy"};
Labels pre(Labels more) {
  more.insert(more.begin(), kPre.begin(), kPre.end());
  return more;
}

std::vector<SetCase> mangleInputCases() {
  return {
      {"raw DROP before mangle",
       U.ports(1, 1),
       DROP,
       {"raw:PREROUTING/1"},
       "lo"},
      {"raw ACCEPT goes on to mangle PREROUTING",
       U.ports(1, 2),
       DROP,
       {"raw:PREROUTING/2", "mangle:PREROUTING/1"},
       "lo"},
      {"mangle RETURN, mangle INPUT ACCEPT, then filter",
       U.ports(1, 3),
       PASS,
       {"raw:PREROUTING/policy", "mangle:PREROUTING/2", "mangle:MCHK/1",
        "mangle:PREROUTING/policy", "mangle:INPUT/1", "INPUT/policy"},
       "lo"},
      {"mangle INPUT ACCEPT goes on to filter INPUT", U.ports(1, 4), DROP,
       pre({"mangle:INPUT/1", "INPUT/1"}), "lo"},
      {"goto in mangle INPUT, ACCEPT there", T.ports(1, 22), PASS,
       pre({"mangle:INPUT/2", "mangle:MCHK/2", "INPUT/policy"}), "lo"},
      {"mangle INPUT policy DROP", T, DROP, pre({"mangle:INPUT/policy"}), "lo"},
      {"non-first fragment: PREROUTING only", U.ports(1, 1).frag(5, false),
       PASS, kPre, "lo"},
      {"tcp offset 1: no hotdrop in PREROUTING, left to reassembly",
       T.frag(1, true), PASS, kPre, "lo"},
  };
}

void mangle(Harness &h) {
  run(h, "ruleset mangle: ", kMangle, mangleInputCases());
  std::string withOutput = kMangle;
  size_t at = withOutput.find(":MCHK - [0:0]\n") + 14;
  withOutput.insert(at, "-A OUTPUT -j DROP\n-A POSTROUTING -j MCHK\n"
                        "-A POSTROUTING -p udp -j DROP\n");
  run(h, "ruleset mangle + OUTPUT/POSTROUTING rules: ", withOutput,
      mangleInputCases());
  h.expectCompile(
      "ruleset mangle + OUTPUT/POSTROUTING rules: warnings", withOutput, 0,
      {"FILE:" + std::to_string(lineOf(withOutput, "-A POSTROUTING -j MCHK")) +
       ":4: warning: rule in POSTROUTING ignored"});
}

void mangleForward(Harness &h) {
  const Frame tf = Frame::tcp("10.1.0.1", "10.9.0.2", 40000, 80);
  const Frame uf = Frame::udp("10.1.0.1", "10.9.0.2", 40000, 9);
  run(h, "ruleset mangle, forwarded: ", kMangle,
      {
          {"mangle FORWARD DROP", tf, DROP, pre({"mangle:FORWARD/1"}), "lo"},
          {"mangle FORWARD policy, then filter FORWARD's", uf, PASS,
           pre({"mangle:FORWARD/policy", "FORWARD/policy"}), "lo"},
          {"udp 4 forwarded: filter INPUT's rule not involved", uf.ports(1, 4),
           PASS, pre({"mangle:FORWARD/policy", "FORWARD/policy"}), "lo"},
          {"local: mangle INPUT", tf.to("10.9.0.1"), DROP,
           pre({"mangle:INPUT/policy"}), "lo"},
          {"TTL 1: PREROUTING only", tf.withTtl(1), PASS, kPre, "lo"},
          {"forwarded tcp offset 1: no port match anywhere", tf.frag(1, true),
           DROP, pre({"mangle:FORWARD/1"}), "lo"},
      });
}

// --- (d) -I with and without a position
// ----------------------------------------

const std::string kInsert = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CHK - [0:0]
-A INPUT -p udp -j DROP
-I INPUT -p udp --dport 53 -j ACCEPT
-I INPUT 2 -s 10.1.0.1 -p udp
-A INPUT -p udp --dport 54 -j ACCEPT
-I INPUT 4 -p udp --dport 55 -j ACCEPT
-I INPUT 6 -p tcp -j CHK
-A CHK -p tcp --dport 2 -j DROP
-I CHK -p tcp --dport 1 -j ACCEPT
-I CHK 3 -p tcp --dport 3 -j RETURN
-I CHK 3 -p tcp --dport 3 -j DROP
COMMIT
)";

void insert(Harness &h) {
  // Final order: INPUT 1 udp 53 ACCEPT, 2 -s 10.1.0.1 udp (counts),
  // 3 udp DROP, 4 udp 55 ACCEPT, 5 udp 54 ACCEPT, 6 tcp -j CHK;
  // CHK 1 tcp 1 ACCEPT, 2 tcp 2 DROP, 3 tcp 3 DROP, 4 tcp 3 RETURN.
  run(h, "ruleset -I: ", kInsert,
      {
          {"-I without position goes first",
           U.ports(1, 53),
           PASS,
           {"INPUT/1"},
           "lo"},
          {"-I 2 sits before the -A'd DROP",
           U.ports(1, 54),
           DROP,
           {"INPUT/2", "INPUT/3"},
           "lo"},
          {"-I 4 lands after the DROP",
           U.from("10.1.0.9").ports(1, 55),
           DROP,
           {"INPUT/3"},
           "lo"},
          {"-I into a user chain goes first",
           T.ports(1, 1),
           PASS,
           {"INPUT/6", "CHK/1"},
           "lo"},
          {"-A'd rule after the -I'd one",
           T.ports(1, 2),
           DROP,
           {"INPUT/6", "CHK/2"},
           "lo"},
          {"-I 3 twice: the later one is first",
           T.ports(1, 3),
           DROP,
           {"INPUT/6", "CHK/3"},
           "lo"},
          {"CHK falls off",
           T.ports(1, 4),
           PASS,
           {"INPUT/6", "INPUT/policy"},
           "lo"},
          {"icmp: policy", I, PASS, {"INPUT/policy"}, "lo"},
      });
}

// --- (e) rules without a target ----------------------------------------------

const std::string kCount = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
-A INPUT -p udp
-A INPUT -s 10.1.0.1
[7:7] -A INPUT
-A INPUT ! -p udp
-A INPUT -p udp --dport 1234 -j DROP
-A INPUT -p udp --dport 1234
COMMIT
)";

void counting(Harness &h) {
  run(h, "ruleset counting rules: ", kCount,
      {
          {"all count, then DROP",
           U,
           DROP,
           {"INPUT/1", "INPUT/2", "INPUT/3", "INPUT/5"},
           "lo"},
          {"all count, then DROP, 1000 bytes",
           U.payload(1000),
           DROP,
           {"INPUT/1", "INPUT/2", "INPUT/3", "INPUT/5"},
           "lo"},
          {"count and fall to the policy",
           U.ports(1, 1235),
           PASS,
           {"INPUT/1", "INPUT/2", "INPUT/3", "INPUT/policy"},
           "lo"},
          {"tcp from elsewhere",
           T.from("10.1.0.2"),
           PASS,
           {"INPUT/3", "INPUT/4", "INPUT/policy"},
           "lo"},
          {"counts before a hotdrop stay",
           U.keepL4(4),
           DROP,
           {"INPUT/1", "INPUT/2", "INPUT/3"},
           "lo"},
          {"padding is not counted",
           U.payload(0).pad(60),
           DROP,
           {"INPUT/1", "INPUT/2", "INPUT/3", "INPUT/5"},
           "lo"},
      });
}

// --- (f) nested jumps
// ---------------------------------------------------------------

const std::string kNested = R"(*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:L1 - [0:0]
:L2 - [0:0]
:L3 - [0:0]
-N CNT
-A INPUT -p udp -j L1
-A INPUT -p udp --dport 9 -j DROP
-A INPUT -j CNT
-A INPUT -j CNT
-A L1 -s 10.1.0.1 -j RETURN
-A L1 -s 10.1.0.4 -g L3
-A L1 -j L2
-A L1 -p udp --dport 7 -j DROP
-A L2 -s 10.1.0.2 -j RETURN
-A L2 -j L3
-A L2 -p udp --dport 8 -j DROP
-A L3 -s 10.1.0.3 -j RETURN
-A L3 -p udp --dport 6 -j DROP
-A L3 -p udp --dport 5 -j ACCEPT
-A CNT -p udp
-A CNT -p udp --dport 10 -j RETURN
-A CNT -p udp --dport 11 -j ACCEPT
COMMIT
)";

void nested(Harness &h) {
  auto u = [](const char *src, uint16_t dport) {
    return U.from(src).ports(1, dport);
  };
  run(h, "ruleset nested: ", kNested,
      {
          {"RETURN at level 3, DROP at level 2",
           u("10.1.0.3", 8),
           DROP,
           {"INPUT/1", "L1/3", "L2/2", "L3/1", "L2/3"},
           "lo"},
          {"RETURN at level 3, level 2 falls off, DROP at level 1",
           u("10.1.0.3", 7),
           DROP,
           {"INPUT/1", "L1/3", "L2/2", "L3/1", "L1/4"},
           "lo"},
          {"RETURN at level 2, back to INPUT, CNT twice",
           u("10.1.0.2", 8),
           PASS,
           {"INPUT/1", "L1/3", "L2/1", "INPUT/3", "CNT/1", "INPUT/4", "CNT/1",
            "INPUT/policy"},
           "lo"},
          {"DROP at level 3",
           u("10.1.0.9", 6),
           DROP,
           {"INPUT/1", "L1/3", "L2/2", "L3/2"},
           "lo"},
          {"ACCEPT at level 3",
           u("10.1.0.9", 5),
           PASS,
           {"INPUT/1", "L1/3", "L2/2", "L3/3"},
           "lo"},
          {"all three fall off, DROP in INPUT",
           u("10.1.0.9", 9),
           DROP,
           {"INPUT/1", "L1/3", "L2/2", "INPUT/2"},
           "lo"},
          {"RETURN at level 1",
           u("10.1.0.1", 9),
           DROP,
           {"INPUT/1", "L1/1", "INPUT/2"},
           "lo"},
          {"goto L3 from L1 returns to INPUT, not to L1",
           u("10.1.0.4", 7),
           PASS,
           {"INPUT/1", "L1/2", "INPUT/3", "CNT/1", "INPUT/4", "CNT/1",
            "INPUT/policy"},
           "lo"},
          {"goto L3 from L1, then INPUT's DROP",
           u("10.1.0.4", 9),
           DROP,
           {"INPUT/1", "L1/2", "INPUT/2"},
           "lo"},
          {"goto L3 from L1, ACCEPT in L3",
           u("10.1.0.4", 5),
           PASS,
           {"INPUT/1", "L1/2", "L3/3"},
           "lo"},
          {"RETURN in CNT, twice",
           u("10.1.0.9", 10),
           PASS,
           {"INPUT/1", "L1/3", "L2/2", "INPUT/3", "CNT/1", "CNT/2", "INPUT/4",
            "CNT/1", "CNT/2", "INPUT/policy"},
           "lo"},
          {"ACCEPT in the first CNT",
           u("10.1.0.9", 11),
           PASS,
           {"INPUT/1", "L1/3", "L2/2", "INPUT/3", "CNT/1", "CNT/3"},
           "lo"},
          {"tcp: CNT twice, nothing counts inside",
           T,
           PASS,
           {"INPUT/3", "INPUT/4", "INPUT/policy"},
           "lo"},
      });
}

// --- (h) rulesets the compiler must refuse
// --------------------------------------

void refused(Harness &h) {
  const std::string loop = "*filter\n"
                           ":INPUT ACCEPT [0:0]\n"
                           ":A - [0:0]\n"
                           ":B - [0:0]\n"
                           "-A INPUT -p udp -j A\n"
                           "-A A -j B\n"
                           "-A B -s 10.1.0.1 -j A\n"
                           "COMMIT\n";
  const char *loopMsg = ": error: rule makes a loop through chain";
  h.expectCompile("ruleset refused: loop A -> B -> A", loop, 1,
                  {std::string("FILE:7:1") + loopMsg + " `A'",
                   std::string("FILE:6:1") + loopMsg + " `B'"});
  h.expectCompile("ruleset refused: loop A -> A",
                  "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n"
                  "-A A -p tcp -j A\nCOMMIT\n",
                  1, {std::string("FILE:4:1") + loopMsg + " `A'"});
  h.expectCompile("ruleset refused: goto loop",
                  "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
                  "-A A -g B\n-A B -g A\nCOMMIT\n",
                  1,
                  {std::string("FILE:5:1") + loopMsg + " `B'",
                   std::string("FILE:6:1") + loopMsg + " `A'"});
  h.expectCompile("ruleset refused: loop through three chains, counters prefix",
                  "*filter\n:INPUT ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n"
                  ":C - [0:0]\n-A INPUT -j A\n-A A -j B\n-A B -g C\n"
                  "[3:4] -A C -j A\nCOMMIT\n",
                  1,
                  {std::string("FILE:7:1") + loopMsg + " `B'",
                   std::string("FILE:8:1") + loopMsg + " `C'",
                   std::string("FILE:9:7") + loopMsg + " `A'"});
  h.expectCompile("ruleset refused: jump to an undeclared chain",
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j NOPE\n"
                  "COMMIT\n",
                  1, {"FILE:3:20: error:"});
  h.expectCompile("ruleset refused: goto an undeclared chain",
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -g NOPE\nCOMMIT\n", 1,
                  {"FILE:3:13: error:"});
  h.expectCompile("ruleset refused: jump to a chain declared later",
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j LATER\n-N LATER\n"
                  "COMMIT\n",
                  1, {"FILE:3:13: error:"});
  h.expectCompile("ruleset refused: jump to a user chain of table raw",
                  "*raw\n:PREROUTING ACCEPT [0:0]\n:RAWC - [0:0]\nCOMMIT\n"
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j RAWC\nCOMMIT\n",
                  1, {"FILE:7:13: error:"});
  h.expectCompile("ruleset refused: no COMMIT at the end",
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\n", 1,
                  {"FILE:1:1: error: table `filter' is never closed"});
  h.expectCompile("ruleset refused: no COMMIT before the next table",
                  "*raw\n:PREROUTING ACCEPT [0:0]\n*filter\n"
                  ":INPUT ACCEPT [0:0]\nCOMMIT\n",
                  1, {"FILE:3:1: error: table `raw' is not closed"});
  h.expectCompile("ruleset refused: -I past the end",
                  "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j DROP\n"
                  "-I INPUT 3 -p tcp -j DROP\nCOMMIT\n",
                  1, {"FILE:4:10: error:"});
  h.expectCompile("ruleset accepted: -I at the end", kInsert, 0, {});
}

} // namespace

void rulesetInputCases(Harness &h) {
  hostFirewall(h);
  rawAndFilter(h);
  mangle(h);
  insert(h);
  counting(h);
  nested(h);
  refused(h);
}

void rulesetForwardCases(Harness &h) {
  router(h);
  mangleForward(h);
}

} // namespace r2x::test
