//===- compiler/frontend/RuleParser.cpp - iptables words -> IR --------------===//
//
/// \file
/// The option walker (iptables' do_parse, in short) and the actions bound
/// to the value grammars of grammar/iptables.hpp.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/RuleParser.h"

#include "grammar/iptables.hpp"

#include <algorithm>
#include <deque>
#include <cctype>
#include <cstring>
#include <netdb.h>
#include <optional>
#include <string_view>

namespace r2x::frontend {
namespace {

using ir::Match;
namespace pegtl = tao::pegtl;

[[noreturn]] void fail(const Word &w, const std::string &msg, size_t offset = 0,
                       size_t length = 0) {
  if (length == 0)
    length = std::max<size_t>(1, w.text.size() - std::min(offset, w.text.size()));
  throw Diagnostic(advance(w.pos, offset), msg, static_cast<unsigned>(length));
}

// --- option tables (data, not code: a new option is one line) -------------

enum class OptId {
  Command, Append, Table, Source, Destination, Protocol, InIface, OutIface,
  Jump, Goto, Match, Fragment, SetCounters, SPort, DPort, TcpUnsupported
};

struct OptSpec {
  const char *name;
  char shortName; ///< 0: long form only
  OptId id;
  bool hasArg;
  bool negatable;
};

constexpr OptSpec kBaseOpts[] = {
    {"append", 'A', OptId::Append, true, false},
    {"insert", 'I', OptId::Command, true, false},
    {"delete", 'D', OptId::Command, true, false},
    {"replace", 'R', OptId::Command, true, false},
    {"check", 'C', OptId::Command, true, false},
    {"list", 'L', OptId::Command, false, false},
    {"list-rules", 'S', OptId::Command, false, false},
    {"flush", 'F', OptId::Command, false, false},
    {"zero", 'Z', OptId::Command, false, false},
    {"new-chain", 'N', OptId::Command, true, false},
    {"delete-chain", 'X', OptId::Command, false, false},
    {"policy", 'P', OptId::Command, true, false},
    {"rename-chain", 'E', OptId::Command, true, false},
    {"table", 't', OptId::Table, true, false},
    {"source", 's', OptId::Source, true, true},
    {"src", 0, OptId::Source, true, true},
    {"destination", 'd', OptId::Destination, true, true},
    {"dst", 0, OptId::Destination, true, true},
    {"protocol", 'p', OptId::Protocol, true, true},
    {"in-interface", 'i', OptId::InIface, true, true},
    {"out-interface", 0, OptId::OutIface, true, true},
    {"jump", 'j', OptId::Jump, true, false},
    {"goto", 'g', OptId::Goto, true, false},
    {"match", 'm', OptId::Match, true, false},
    {"fragment", 'f', OptId::Fragment, false, true},
    {"set-counters", 'c', OptId::SetCounters, true, false},
};

// Options of the tcp and udp matches (libxt_tcp, libxt_udp).
constexpr OptSpec kPortOpts[] = {
    {"source-port", 0, OptId::SPort, true, true},
    {"sport", 0, OptId::SPort, true, true},
    {"destination-port", 0, OptId::DPort, true, true},
    {"dport", 0, OptId::DPort, true, true},
};
constexpr OptSpec kTcpOnlyOpts[] = {
    {"tcp-flags", 0, OptId::TcpUnsupported, true, true},
    {"syn", 0, OptId::TcpUnsupported, false, true},
    {"tcp-option", 0, OptId::TcpUnsupported, true, true},
};

/// glibc getopt_long's rule: an exact name wins; otherwise a unique prefix,
/// where prefixes of several names that mean the same option are not
/// ambiguous.
const OptSpec *lookupLong(std::string_view name,
                          const std::vector<const OptSpec *> &active,
                          bool &ambiguous) {
  ambiguous = false;
  for (const OptSpec *o : active)
    if (name == o->name)
      return o;
  const OptSpec *found = nullptr;
  for (const OptSpec *o : active) {
    if (std::string_view(o->name).substr(0, name.size()) != name)
      continue;
    if (!found)
      found = o;
    else if (found->id != o->id || found->hasArg != o->hasArg)
      ambiguous = true;
  }
  return ambiguous ? nullptr : found;
}

// --- value actions -----------------------------------------------------------

struct AddrState {
  std::string addr, mask;
  size_t maskOffset = 0;
  bool hasMask = false, maskDotted = false;
};

template <typename Rule> struct AddrAction : pegtl::nothing<Rule> {};
template <> struct AddrAction<grammar::address> {
  template <typename In> static void apply(const In &in, AddrState &s) {
    s.addr = in.string();
  }
};
template <> struct AddrAction<grammar::dotted_mask> {
  template <typename In> static void apply(const In &in, AddrState &s) {
    s.mask = in.string();
    s.hasMask = s.maskDotted = true;
    s.maskOffset = in.position().byte;
  }
};
template <> struct AddrAction<grammar::prefix_len> {
  template <typename In> static void apply(const In &in, AddrState &s) {
    s.mask = in.string();
    s.hasMask = true;
    s.maskOffset = in.position().byte;
  }
};

/// Parses "a[.b[.c[.d]]]" as iptables does: missing parts are zero.
std::optional<uint32_t> dottedValue(const std::string &text, int parts) {
  uint32_t v = 0;
  int n = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t dot = text.find('.', start);
    std::string part = text.substr(start, dot == std::string::npos
                                              ? std::string::npos
                                              : dot - start);
    if (part.empty() || part.size() > 3 ||
        !std::all_of(part.begin(), part.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
      return std::nullopt;
    unsigned long octet = std::stoul(part);
    if (octet > 255)
      return std::nullopt;
    v |= static_cast<uint32_t>(octet) << (24 - 8 * n);
    ++n;
    if (dot == std::string::npos)
      break;
    start = dot + 1;
  }
  if (n > 4 || (parts == 4 && n != 4))
    return std::nullopt;
  return v;
}

Match parseAddress(const Word &opt, const Word &val, Match::Kind kind) {
  if (val.text.find(',') != std::string::npos)
    fail(val, "comma-separated address lists are not supported yet");
  AddrState s;
  pegtl::memory_input in(val.text, "");
  if (!pegtl::parse<grammar::address_spec, AddrAction>(in, s)) {
    bool looksNumeric = !val.text.empty() &&
                        std::isdigit(static_cast<unsigned char>(val.text[0]));
    if (!looksNumeric)
      fail(val, "host names are not resolved (`" + val.text + "' in " +
                    opt.text + "); write an IPv4 address");
    fail(val, "invalid address `" + val.text + "' in " + opt.text);
  }
  std::optional<uint32_t> addr = dottedValue(s.addr, 1);
  if (!addr)
    fail(val, "invalid address `" + s.addr + "' in " + opt.text, 0,
         s.addr.size());
  uint32_t mask = 0xffffffffu;
  if (s.hasMask) {
    if (s.maskDotted) {
      std::optional<uint32_t> m = dottedValue(s.mask, 4);
      if (!m)
        fail(val, "invalid mask `" + s.mask + "' in " + opt.text, s.maskOffset,
             s.mask.size());
      mask = *m;
    } else {
      unsigned long len = s.mask.size() > 2 ? 99 : std::stoul(s.mask);
      if (len > 32)
        fail(val, "invalid mask `" + s.mask + "' in " + opt.text +
                      " (a prefix length is 0 to 32)",
             s.maskOffset, s.mask.size());
      mask = len == 0 ? 0 : 0xffffffffu << (32 - len);
    }
  }
  Match m(kind);
  m.mask = mask;
  m.net = *addr & mask;
  return m;
}

struct PortState {
  std::string lo, hi;
  size_t loOff = 0, hiOff = 0;
  bool sep = false;
};
template <typename Rule> struct PortAction : pegtl::nothing<Rule> {};
template <> struct PortAction<grammar::range_lo> {
  template <typename In> static void apply(const In &in, PortState &s) {
    s.lo = in.string();
    s.loOff = in.position().byte;
  }
};
template <> struct PortAction<grammar::range_hi> {
  template <typename In> static void apply(const In &in, PortState &s) {
    s.hi = in.string();
    s.hiOff = in.position().byte;
  }
};
template <> struct PortAction<grammar::range_sep> {
  template <typename In> static void apply(const In &, PortState &s) {
    s.sep = true;
  }
};

uint16_t portValue(const Word &opt, const Word &val, const std::string &text,
                   size_t offset, const char *proto) {
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    if (text.size() > 5 || std::stoul(text) > 65535)
      fail(val, "invalid port `" + text + "' in " + opt.text +
                    " (a port is 0 to 65535)",
           offset, text.size());
    return static_cast<uint16_t>(std::stoul(text));
  }
  // iptables resolves service names with getservbyname for the -p protocol.
  if (const servent *se = getservbyname(text.c_str(), proto))
    return ntohs(static_cast<uint16_t>(se->s_port));
  fail(val, "unknown service `" + text + "' for " + proto + " in " + opt.text,
       offset, text.size());
}

ir::PortRange parsePorts(const Word &opt, const Word &val, const char *proto) {
  if (val.text == "!")
    fail(val, "`!' must come before the option it negates: write `! " +
                  opt.text + " PORT'");
  PortState s;
  pegtl::memory_input in(val.text, "");
  if (val.text.empty() || !pegtl::parse<grammar::port_range, PortAction>(in, s))
    fail(val, "invalid port or range `" + val.text + "' in " + opt.text);
  ir::PortRange r;
  r.lo = s.lo.empty() ? 0 : portValue(opt, val, s.lo, s.loOff, proto);
  if (!s.sep)
    r.hi = r.lo;
  else
    r.hi = s.hi.empty() ? 0xffff : portValue(opt, val, s.hi, s.hiOff, proto);
  return r;
}

/// iptables' built-in protocol names, then /etc/protocols.
std::optional<uint8_t> protocolNumber(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const std::pair<const char *, uint8_t> builtin[] = {
      {"all", 0},    {"tcp", 6},     {"udp", 17},         {"udplite", 136},
      {"icmp", 1},   {"icmpv6", 58}, {"ipv6-icmp", 58},   {"esp", 50},
      {"ah", 51},    {"sctp", 132},  {"mh", 135},         {"ipv6-mh", 135}};
  for (const auto &[n, v] : builtin)
    if (name == n)
      return v;
  if (const protoent *pe = getprotobyname(name.c_str()))
    return static_cast<uint8_t>(pe->p_proto);
  return std::nullopt;
}

uint8_t parseProtocol(const Word &opt, const Word &val) {
  pegtl::memory_input in(val.text, "");
  if (!pegtl::parse<grammar::protocol>(in))
    fail(val, "invalid protocol `" + val.text + "' in " + opt.text);
  if (std::isdigit(static_cast<unsigned char>(val.text[0]))) {
    if (val.text.size() > 3 || std::stoul(val.text) > 255)
      fail(val, "invalid protocol number `" + val.text + "' in " + opt.text +
                    " (0 to 255)");
    return static_cast<uint8_t>(std::stoul(val.text));
  }
  std::optional<uint8_t> p = protocolNumber(val.text);
  if (!p)
    fail(val, "unknown protocol `" + val.text + "' in " + opt.text);
  return *p;
}

std::string parseInterface(const Word &opt, const Word &val) {
  pegtl::memory_input in(val.text, "");
  if (val.text.empty() || !pegtl::parse<grammar::interface>(in))
    fail(val, "invalid interface name `" + val.text + "' in " + opt.text);
  if (val.text.size() >= 16)
    fail(val, "interface name `" + val.text +
                  "' must be shorter than IFNAMSIZ (15)");
  return val.text;
}

// --- the walker --------------------------------------------------------------

struct L4Module {
  const Word *where = nullptr;
  uint8_t proto = 0; // 6 or 17
  std::optional<ir::PortRange> sport, dport;
  const Word *sportWord = nullptr, *dportWord = nullptr;
};

struct Parsed {
  const Word *table = nullptr, *chain = nullptr, *target = nullptr;
  std::optional<Match> src, dst, proto, iif;
  const Word *protoWord = nullptr, *oif = nullptr;
  bool protoNegated = false;
  uint8_t protoNumber = 0;
  std::optional<L4Module> l4;
};

const char *l4Name(uint8_t p) { return p == 6 ? "tcp" : "udp"; }

std::string joinWords(const std::vector<Word> &words) {
  std::string s;
  for (const Word &w : words) {
    if (!s.empty())
      s += ' ';
    bool quote = w.text.empty() || w.text.find_first_of(" \t\"'") != std::string::npos;
    s += quote ? "\"" + w.text + "\"" : w.text;
  }
  return s;
}

} // namespace

void parseRuleCommand(const std::vector<Word> &words, ir::Program &prog) {
  Parsed p;
  // Values given as `--opt=value` become words of their own; Parsed keeps
  // pointers to them, so they live as long as the parse.
  std::deque<Word> inlineWords;
  const Word *invert = nullptr;
  size_t i = 0;

  auto loadModule = [&](const Word &where, uint8_t proto) {
    if (p.l4)
      fail(where, std::string("a second -m ") + l4Name(proto) +
                      " match in one rule is not supported");
    p.l4 = L4Module{&where, proto, {}, {}, nullptr, nullptr};
  };

  while (i < words.size()) {
    const Word &w = words[i];
    if (w.text == "!") {
      if (invert)
        fail(w, "multiple consecutive ! not allowed");
      invert = &w;
      ++i;
      continue;
    }
    std::vector<const OptSpec *> active;
    for (const OptSpec &o : kBaseOpts)
      active.push_back(&o);
    if (p.l4) {
      for (const OptSpec &o : kPortOpts)
        active.push_back(&o);
      if (p.l4->proto == 6)
        for (const OptSpec &o : kTcpOnlyOpts)
          active.push_back(&o);
    }

    const OptSpec *spec = nullptr;
    std::optional<std::string> inlineValue;
    if (w.text.size() > 2 && w.text.compare(0, 2, "--") == 0) {
      std::string name = w.text.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inlineValue = name.substr(eq + 1);
        name.resize(eq);
      }
      bool ambiguous = false;
      spec = lookupLong(name, active, ambiguous);
      // iptables loads the -p protocol's match when one of its options
      // appears without -m (never after `! -p`).
      if (!spec && !ambiguous && !p.l4 && p.protoWord && !p.protoNegated &&
          (p.protoNumber == 6 || p.protoNumber == 17)) {
        std::vector<const OptSpec *> more = active;
        for (const OptSpec &o : kPortOpts)
          more.push_back(&o);
        if (p.protoNumber == 6)
          for (const OptSpec &o : kTcpOnlyOpts)
            more.push_back(&o);
        spec = lookupLong(name, more, ambiguous);
        if (spec && (spec->id == OptId::SPort || spec->id == OptId::DPort ||
                     spec->id == OptId::TcpUnsupported))
          loadModule(*p.protoWord, p.protoNumber);
        else
          spec = nullptr;
      }
      if (ambiguous)
        fail(w, "option `" + w.text + "' is ambiguous");
      if (!spec) {
        if (name == "dport" || name == "sport" || name == "destination-port" ||
            name == "source-port")
          fail(w, "option `" + w.text +
                      "' needs the tcp or udp match: give `-p tcp' or `-p "
                      "udp' (not negated) first");
        fail(w, "unknown option `" + w.text + "'");
      }
    } else if (w.text.size() == 2 && w.text[0] == '-' && w.text[1] != '-') {
      for (const OptSpec *o : active)
        if (o->shortName == w.text[1])
          spec = o;
      if (!spec) {
        if (w.text == "-o")
          fail(w, "`-o' is rule2xdp's output file; write the output "
                  "interface as `--out-interface'");
        fail(w, "unknown option `" + w.text + "'");
      }
    } else if (w.text.size() > 2 && w.text[0] == '-') {
      fail(w, "unknown option `" + w.text +
                  "' (write an option and its value as separate words)");
    } else {
      fail(w, "unexpected argument `" + w.text + "'");
    }

    // Messages name the option as written, without an inline `=value`.
    Word optName{w.text.substr(0, w.text.find('=')), w.pos};
    const Word *valWord = nullptr;
    if (spec->hasArg) {
      if (inlineValue) {
        inlineWords.push_back(
            Word{*inlineValue, advance(w.pos, w.text.find('=') + 1)});
        valWord = &inlineWords.back();
      } else if (i + 1 < words.size()) {
        valWord = &words[++i];
      } else {
        fail(w, "option `" + w.text + "' requires an argument");
      }
    } else if (inlineValue) {
      fail(w, "option `" + w.text + "' takes no argument");
    }
    if (invert && !spec->negatable)
      fail(*invert, "cannot have ! before `" + w.text + "'");
    bool negated = invert != nullptr;
    invert = nullptr;
    if (valWord && valWord->text == "!" && spec->negatable &&
        spec->id != OptId::SPort && spec->id != OptId::DPort)
      fail(*valWord, "`!' must come before the option it negates: write `! " +
                         w.text + " VALUE'");

    auto once = [&](bool already, const char *what) {
      if (already)
        fail(w, std::string("multiple ") + what + " flags not allowed");
    };
    const Word &v = valWord ? *valWord : w;
    switch (spec->id) {
    case OptId::Command:
      fail(w, "command `" + w.text +
                  "' is not supported: rule2xdp compiles rules given with -A");
    case OptId::Append:
      once(p.chain, "-A");
      p.chain = &v;
      break;
    case OptId::Table:
      once(p.table, "-t");
      p.table = &v;
      break;
    case OptId::Source:
      once(p.src.has_value(), "-s");
      p.src = parseAddress(optName, v, Match::Kind::Source);
      p.src->negated = negated;
      break;
    case OptId::Destination:
      once(p.dst.has_value(), "-d");
      p.dst = parseAddress(optName, v, Match::Kind::Destination);
      p.dst->negated = negated;
      break;
    case OptId::Protocol: {
      once(p.protoWord, "-p");
      p.protoWord = &v;
      p.protoNegated = negated;
      p.protoNumber = parseProtocol(optName, v);
      if (p.protoNumber == 0 && negated)
        fail(v, "rule would never match protocol (`! -p " + v.text + "')");
      // -p all (0) checks nothing, negated or not, as in ip_packet_match().
      if (p.protoNumber != 0) {
        Match m(Match::Kind::Protocol);
        m.proto = p.protoNumber;
        m.negated = negated;
        p.proto = m;
      }
      break;
    }
    case OptId::InIface: {
      once(p.iif.has_value(), "-i");
      Match m(Match::Kind::InIface);
      m.iface = parseInterface(optName, v);
      m.negated = negated;
      int bit = prog.ifaceBit(m.iface);
      if (bit < 0)
        fail(v, "more than 64 distinct -i interface patterns in one program");
      m.ifaceBit = static_cast<unsigned>(bit);
      p.iif = m;
      break;
    }
    case OptId::OutIface:
      once(p.oif, "--out-interface");
      p.oif = &w;
      break;
    case OptId::Jump:
      once(p.target, "-j");
      p.target = &v;
      break;
    case OptId::Goto:
      fail(w, "`" + w.text + "' (goto a user chain) is not supported yet");
    case OptId::Match:
      if (v.text == "tcp" || v.text == "udp")
        loadModule(v, v.text == "tcp" ? 6 : 17);
      else
        fail(v, "match `" + v.text + "' is not supported");
      break;
    case OptId::Fragment:
      fail(w, "`" + w.text + "' (fragment match) is not supported yet");
    case OptId::SetCounters:
      fail(w, "`" + w.text + "' (set counters) is not supported");
    case OptId::SPort:
    case OptId::DPort: {
      bool sport = spec->id == OptId::SPort;
      std::optional<ir::PortRange> &slot = sport ? p.l4->sport : p.l4->dport;
      if (slot)
        fail(w, std::string(l4Name(p.l4->proto)) + ": option \"--" +
                    (sport ? "source-port" : "destination-port") +
                    "\" can only be used once");
      slot = parsePorts(optName, v, l4Name(p.l4->proto));
      slot->negated = negated;
      (sport ? p.l4->sportWord : p.l4->dportWord) = &w;
      break;
    }
    case OptId::TcpUnsupported:
      fail(w, "tcp option `" + w.text + "' is not supported yet");
    }
    ++i;
  }
  if (invert)
    fail(*invert, "`!' at the end of the rule negates nothing");

  // --- whole-rule checks, as iptables makes them after parsing --------------
  if (!p.chain) {
    if (words.empty())
      throw Diagnostic(ir::SourcePos{"<command line>", 0, 0, -1},
                       "no rule given: write an iptables rule such as "
                       "`-A INPUT -p udp --dport 1234 -j DROP'");
    fail(words.front(), "no command given: the rule needs `-A CHAIN'");
  }
  ir::Table table = ir::Table::Filter;
  if (p.table) {
    const std::string &t = p.table->text;
    if (t == "raw")
      table = ir::Table::Raw;
    else if (t == "filter")
      table = ir::Table::Filter;
    else if (t == "nat" || t == "mangle" || t == "security")
      fail(*p.table, "table `" + t + "' is not supported yet");
    else
      fail(*p.table, "table `" + t + "' does not exist");
  }
  const std::string &c = p.chain->text;
  ir::Hook hook;
  if (table == ir::Table::Raw && c == "PREROUTING")
    hook = ir::Hook::Prerouting;
  else if (table == ir::Table::Filter && c == "INPUT")
    hook = ir::Hook::Input;
  else if (table == ir::Table::Filter && c == "FORWARD")
    hook = ir::Hook::Forward;
  else if (c == "OUTPUT" || c == "POSTROUTING")
    fail(*p.chain, "chain " + c +
                       " never sees received packets; rule2xdp compiles the "
                       "ingress path (XDP)");
  else
    fail(*p.chain, "chain `" + c + "' does not exist in table `" +
                       ir::tableName(table) + "'");

  if (p.oif) {
    if (hook != ir::Hook::Forward)
      fail(*p.oif, "Can't use --out-interface with " + c);
    fail(*p.oif, "--out-interface is not supported yet");
  }
  if (p.l4 && (p.protoNumber != p.l4->proto || p.protoNegated)) {
    std::string n = l4Name(p.l4->proto);
    fail(*p.l4->where, n + " match requires `-p " + n + "'" +
                           (p.protoNegated ? " (not negated)" : ""));
  }

  ir::Rule rule;
  rule.pos = words.front().pos;
  rule.text = joinWords(words);
  if (p.target) {
    const std::string &t = p.target->text;
    if (t == "ACCEPT")
      rule.verdict = ir::Verdict::Accept;
    else if (t == "DROP")
      rule.verdict = ir::Verdict::Drop;
    else
      fail(*p.target, "target `" + t + "' is not supported");
  } else {
    rule.verdict = ir::Verdict::Continue;
  }
  // ip_packet_match() order (addresses, interface, protocol), then matches.
  for (auto *m : {&p.src, &p.dst, &p.iif, &p.proto})
    if (*m)
      rule.matches.push_back(**m);
  if (p.l4) {
    Match m(Match::Kind::TcpUdp);
    m.l4proto = p.l4->proto;
    m.sport = p.l4->sport;
    m.dport = p.l4->dport;
    rule.matches.push_back(m);
  }
  prog.chain(table, hook).rules.push_back(std::move(rule));
}

} // namespace r2x::frontend
