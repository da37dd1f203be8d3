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
#include <functional>
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
  Command, Append, Insert, NewChain, Policy, Table, Source, Destination, Protocol, InIface, OutIface,
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
    {"insert", 'I', OptId::Insert, true, false},
    {"delete", 'D', OptId::Command, true, false},
    {"replace", 'R', OptId::Command, true, false},
    {"check", 'C', OptId::Command, true, false},
    {"list", 'L', OptId::Command, false, false},
    {"list-rules", 'S', OptId::Command, false, false},
    {"flush", 'F', OptId::Command, false, false},
    {"zero", 'Z', OptId::Command, false, false},
    {"new-chain", 'N', OptId::NewChain, true, false},
    {"delete-chain", 'X', OptId::Command, false, false},
    {"policy", 'P', OptId::Policy, true, false},
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
  OptId command = OptId::Command; ///< Command: none given yet
  const Word *commandWord = nullptr;
  const Word *insertAt = nullptr, *policy = nullptr;
  const Word *table = nullptr, *chain = nullptr, *target = nullptr;
  const Word *gotoChain = nullptr;
  bool hasMatches = false;
  std::optional<Match> src, dst, proto, iif, frag;
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

ir::Table parseTableName(const Word &w) {
  const std::string &t = w.text;
  if (t == "raw")
    return ir::Table::Raw;
  if (t == "filter")
    return ir::Table::Filter;
  if (t == "nat" || t == "mangle" || t == "security")
    fail(w, "table `" + t + "' is not supported yet");
  fail(w, "table `" + t + "' does not exist");
}

namespace {

/// The built-in chain `name` of table `t` that received packets traverse.
std::optional<ir::Hook> ingressHook(ir::Table t, const std::string &name) {
  if (t == ir::Table::Raw && name == "PREROUTING")
    return ir::Hook::Prerouting;
  if (t == ir::Table::Filter && name == "INPUT")
    return ir::Hook::Input;
  if (t == ir::Table::Filter && name == "FORWARD")
    return ir::Hook::Forward;
  return std::nullopt;
}

/// Built-in chains that only locally generated packets traverse.
bool egressOnly(ir::Table t, const std::string &name) {
  return name == "OUTPUT" || (t == ir::Table::Raw && name == "POSTROUTING");
}

bool builtinName(ir::Table t, const std::string &name) {
  return ingressHook(t, name) || egressOnly(t, name) || name == "PREROUTING" ||
         name == "INPUT" || name == "FORWARD" || name == "POSTROUTING";
}

void applyCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx, Parsed &p, ir::Rule rule);

} // namespace

void parseCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx) {
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
      // In a ruleset file the words are iptables' own: -o is the output
      // interface there (on the command line it is rule2xdp's output file).
      static constexpr OptSpec kOutShort{"out-interface", 'o', OptId::OutIface,
                                         true, true};
      if (!spec && w.text == "-o" && ctx.fileTable)
        spec = &kOutShort;
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
                  "' is not supported: rule2xdp compiles rules (-A, -I) and "
                  "chain declarations (-N, -P)");
    case OptId::Append:
    case OptId::Insert:
    case OptId::NewChain:
    case OptId::Policy:
      if (p.commandWord)
        fail(w, "only one command per rule (already `" + p.commandWord->text +
                    "')");
      p.command = spec->id;
      p.commandWord = &w;
      p.chain = &v;
      // -I CHAIN [RULENUM] and -P CHAIN TARGET take a second word.
      if (spec->id == OptId::Insert && i + 1 < words.size() &&
          !words[i + 1].text.empty() &&
          std::all_of(words[i + 1].text.begin(), words[i + 1].text.end(),
                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
        p.insertAt = &words[++i];
      if (spec->id == OptId::Policy) {
        if (i + 1 >= words.size())
          fail(w, "-P needs a chain and a policy (ACCEPT or DROP)");
        p.policy = &words[++i];
      }
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
      once(p.target || p.gotoChain, "-j/-g");
      p.target = &v;
      break;
    case OptId::Goto:
      once(p.target || p.gotoChain, "-j/-g");
      p.gotoChain = &v;
      break;
    case OptId::Match:
      if (v.text == "tcp" || v.text == "udp")
        loadModule(v, v.text == "tcp" ? 6 : 17);
      else
        fail(v, "match `" + v.text + "' is not supported");
      break;
    case OptId::Fragment: {
      once(p.frag.has_value(), "-f");
      Match m(Match::Kind::Fragment);
      m.negated = negated;
      p.frag = m;
      break;
    }
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
  if (!p.commandWord) {
    if (words.empty())
      throw Diagnostic(ir::SourcePos{"<command line>", 0, 0, -1},
                       "no rule given: write an iptables rule such as "
                       "`-A INPUT -p udp --dport 1234 -j DROP'");
    fail(words.front(), "no command given: the rule needs `-A CHAIN'");
  }
  p.hasMatches = p.src || p.dst || p.proto || p.iif || p.frag || p.l4 || p.oif;
  if (p.oif && p.chain && p.chain->text == "INPUT")
    fail(*p.oif, "Can't use --out-interface with INPUT");
  if (p.l4 && (p.protoNumber != p.l4->proto || p.protoNegated)) {
    std::string n = l4Name(p.l4->proto);
    fail(*p.l4->where, n + " match requires `-p " + n + "'" +
                           (p.protoNegated ? " (not negated)" : ""));
  }

  ir::Rule rule;
  rule.pos = words.front().pos;
  rule.text = joinWords(words);
  // ip_packet_match() order (addresses, interface, protocol), then matches.
  for (auto *m : {&p.src, &p.dst, &p.iif, &p.proto, &p.frag})
    if (*m)
      rule.matches.push_back(**m);
  if (p.l4) {
    Match m(Match::Kind::TcpUdp);
    m.l4proto = p.l4->proto;
    m.sport = p.l4->sport;
    m.dport = p.l4->dport;
    rule.matches.push_back(m);
  }
  applyCommand(words, prog, ctx, p, std::move(rule));
}

namespace {

void applyCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx, Parsed &p, ir::Rule rule) {
  ir::Table table = ir::Table::Filter;
  if (p.table && ctx.fileTable)
    fail(*p.table, "-t cannot be used inside a ruleset file: the table is "
                   "the enclosing `*table' section");
  if (ctx.fileTable)
    table = *ctx.fileTable;
  else if (p.table)
    table = parseTableName(*p.table);

  const Word &chainWord = *p.chain;
  const std::string &c = chainWord.text;
  const std::string tname = ir::tableName(table);

  if (p.command == OptId::NewChain || p.command == OptId::Policy) {
    if (p.hasMatches || p.target || p.gotoChain)
      fail(*p.commandWord, "`" + p.commandWord->text +
                               "' takes a chain name only, no matches or target");
  }
  if (p.command == OptId::NewChain) {
    if (builtinName(table, c) || c == "ACCEPT" || c == "DROP" || c == "RETURN")
      fail(chainWord, "chain `" + c + "' is built in; -N creates user chains");
    if (c.size() > 28 || c[0] == '-' || c[0] == '!')
      fail(chainWord, "invalid chain name `" + c + "'");
    if (prog.userChain(table, c))
      fail(chainWord, "chain `" + c + "' already exists in table `" + tname + "'");
    ir::Chain uc;
    uc.table = table;
    uc.hook = ir::Hook::Prerouting;
    uc.user = true;
    uc.name = c;
    uc.pos = chainWord.pos;
    prog.chains.push_back(std::move(uc));
    return;
  }

  std::optional<ir::Hook> hook = ingressHook(table, c);
  bool egress = egressOnly(table, c);
  ir::Chain *user = hook || egress ? nullptr : prog.userChain(table, c);
  if (!hook && !egress && !user)
    fail(chainWord, "chain `" + c + "' does not exist in table `" + tname + "'");

  if (p.command == OptId::Policy) {
    const std::string &pol = p.policy->text;
    if (user)
      fail(chainWord, "a user chain has no policy (`" + c + "')");
    if (pol != "ACCEPT" && pol != "DROP")
      fail(*p.policy, "policy `" + pol + "' is not ACCEPT or DROP");
    if (hook)
      prog.chain(table, *hook).policy =
          pol == "DROP" ? ir::Verdict::Drop : ir::Verdict::Accept;
    return; // an egress chain's policy never applies to received packets
  }

  // -A / -I: the target.
  if (p.gotoChain) {
    const std::string &g = p.gotoChain->text;
    if (!prog.userChain(table, g))
      fail(*p.gotoChain, "-g needs a user chain of table `" + tname +
                             "'; `" + g + "' is not one");
    rule.verdict = ir::Verdict::Goto;
    rule.jumpTarget = g;
  } else if (p.target) {
    const std::string &t = p.target->text;
    if (t == "ACCEPT")
      rule.verdict = ir::Verdict::Accept;
    else if (t == "DROP")
      rule.verdict = ir::Verdict::Drop;
    else if (t == "RETURN")
      rule.verdict = ir::Verdict::Return;
    else if (prog.userChain(table, t)) {
      rule.verdict = ir::Verdict::Jump;
      rule.jumpTarget = t;
    } else if (builtinName(table, t))
      fail(*p.target, "cannot jump to built-in chain `" + t + "'");
    else
      fail(*p.target, "target `" + t + "' is not supported");
  } else {
    rule.verdict = ir::Verdict::Continue;
  }

  if (egress) {
    if (!ctx.fileTable)
      fail(chainWord, "chain " + c +
                          " never sees received packets; rule2xdp compiles the "
                          "ingress path (XDP)");
    if (ctx.warnings)
      ctx.warnings->push_back(
          {chainWord.pos,
           "rule in " + c + " ignored: " + c +
               " never sees received packets, and XDP runs on ingress",
           static_cast<unsigned>(c.size())});
    return;
  }
  if (p.oif)
    fail(*p.oif, "--out-interface is not supported yet");

  std::vector<ir::Rule> &rules =
      user ? user->rules : prog.chain(table, *hook).rules;
  size_t at = rules.size();
  if (p.command == OptId::Insert) {
    at = 0;
    if (p.insertAt) {
      unsigned long n = p.insertAt->text.size() > 9 ? 0 : std::stoul(p.insertAt->text);
      if (n < 1 || n > rules.size() + 1)
        fail(*p.insertAt, "index of insertion too big (chain `" + c + "' has " +
                              std::to_string(rules.size()) + " rules)");
      at = n - 1;
    }
  }
  (void)words;
  rules.insert(rules.begin() + static_cast<long>(at), std::move(rule));
}

} // namespace

void checkChainGraph(const ir::Program &prog) {
  // Depth-first from every chain; the kernel refuses loops (ELOOP) and
  // nf_tables refuses jumps nested deeper than 16 (EMLINK).
  constexpr int kMaxDepth = 16;
  std::function<void(const ir::Chain &, std::vector<const ir::Chain *> &)> walk;
  walk = [&](const ir::Chain &c, std::vector<const ir::Chain *> &stack) {
    for (const ir::Rule &r : c.rules) {
      if (r.verdict != ir::Verdict::Jump && r.verdict != ir::Verdict::Goto)
        continue;
      const ir::Chain *next = prog.userChain(c.table, r.jumpTarget);
      if (!next)
        continue;
      for (const ir::Chain *s : stack)
        if (s == next)
          throw Diagnostic(r.pos, "rule makes a loop through chain `" +
                                      next->name + "'");
      if (static_cast<int>(stack.size()) >= kMaxDepth)
        throw Diagnostic(r.pos, "jumps nest deeper than " +
                                    std::to_string(kMaxDepth) +
                                    " chains (the kernel's limit)");
      stack.push_back(next);
      walk(*next, stack);
      stack.pop_back();
    }
  };
  for (const ir::Chain &c : prog.chains) {
    std::vector<const ir::Chain *> stack{&c};
    walk(c, stack);
  }
}

} // namespace r2x::frontend
