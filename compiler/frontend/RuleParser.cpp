//===- compiler/frontend/RuleParser.cpp - iptables words -> IR
//--------------===//
//
/// \file
/// The option walker (iptables' do_parse, in short) and the actions bound
/// to the value grammars of grammar/iptables.hpp.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/RuleParser.h"

#include "compiler/frontend/Handover.h"
#include "compiler/frontend/Lex.h"
#include "compiler/frontend/Matches.h"
#include "grammar/iptables.hpp"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

namespace r2x::frontend {
namespace {

using ir::Match;
namespace pegtl = tao::pegtl;

// --- option tables (data, not code: a new option is one line) -------------

enum class OptId {
  Command,
  Append,
  Insert,
  NewChain,
  Policy,
  Table,
  Source,
  Destination,
  Protocol,
  InIface,
  OutIface,
  Jump,
  Goto,
  Match,
  Fragment,
  SetCounters,
  ToDestination,
  NatRandom,
  NatPersistent // DNAT's options, after -j DNAT
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

/// The DNAT target's options; iptables knows them once `-j DNAT` is read.
constexpr OptSpec kDnatOpts[] = {
    {"to-destination", 0, OptId::ToDestination, true, false},
    {"random", 0, OptId::NatRandom, false, false},
    {"persistent", 0, OptId::NatPersistent, false, false},
};

/// An option the walker may see now: a base option, or one of a loaded
/// module's.
struct Candidate {
  std::string_view name;
  char shortName = 0;
  const OptSpec *base = nullptr;
  const ModuleOption *mod = nullptr;
  ModuleState *state = nullptr;
  bool hasArg() const { return base ? base->hasArg : mod->args > 0; }
  bool negatable() const { return base ? base->negatable : mod->negatable; }
  /// Names meaning the same option share a key (getopt_long's test for
  /// ambiguity compares what the option does, not its spelling).
  std::pair<const void *, int> key() const {
    return base ? std::pair<const void *, int>{nullptr,
                                               static_cast<int>(base->id)}
                : std::pair<const void *, int>{mod->module, mod->id};
  }
};

/// glibc getopt_long's rule: an exact name wins; otherwise a unique prefix,
/// where prefixes of several names that mean the same option are not
/// ambiguous.
const Candidate *lookupLong(std::string_view name,
                            const std::vector<Candidate> &active,
                            bool &ambiguous) {
  ambiguous = false;
  for (const Candidate &o : active)
    if (name == o.name)
      return &o;
  const Candidate *found = nullptr;
  for (const Candidate &o : active) {
    if (o.name.substr(0, name.size()) != name)
      continue;
    if (!found)
      found = &o;
    else if (found->key() != o.key() || found->hasArg() != o.hasArg())
      ambiguous = true;
  }
  return ambiguous ? nullptr : found;
}

// --- value actions -----------------------------------------------------------

/// ip6tables: ADDR[/LEN|/MASK] (xtables_ip6parse_multiple(): the address
/// as inet_pton reads it, LEN as xtables_strtoui, a mask with a `:').
Match::Address parseAddress6(const Word &opt, const Word &val,
                             Match::Address::Side side) {
  size_t slash = val.text.rfind('/');
  std::string a = val.text.substr(0, slash);
  Match::Address m{side};
  if (a.find(':') == std::string::npos)
    failAt(val,
           "`" + a + "' in " + opt.text +
               " is not an IPv6 address (this is an ip6tables rule)",
           0, a.size());
  std::optional<std::array<uint8_t, 16>> net = inetPton6(a);
  if (!net)
    failAt(val, "invalid IPv6 address `" + a + "' in " + opt.text, 0, a.size());
  m.net6 = *net;
  m.mask6.fill(0xff);
  if (slash != std::string::npos) {
    std::string mk = val.text.substr(slash + 1);
    if (mk.find(':') != std::string::npos) {
      std::optional<std::array<uint8_t, 16>> mask = inetPton6(mk);
      if (!mask)
        failAt(val, "invalid mask `" + mk + "' in " + opt.text, slash + 1,
               mk.size());
      m.mask6 = *mask;
    } else {
      std::optional<uint64_t> len = xtablesStrtoul(mk, 0, 128);
      if (!len)
        failAt(val,
               "invalid mask `" + mk + "' in " + opt.text +
                   " (a prefix length is 0 to 128)",
               slash + 1, mk.size());
      for (unsigned i = 0; i < 16; ++i) {
        unsigned bits = *len > i * 8 ? std::min(8u, unsigned(*len) - i * 8) : 0;
        m.mask6[i] = static_cast<uint8_t>(bits ? 0xff << (8 - bits) : 0);
      }
    }
  }
  for (unsigned i = 0; i < 16; ++i)
    m.net6[i] &= m.mask6[i];
  return m;
}

/// iptables: ADDR[/LEN|/MASK] (xtables_ipparse_multiple(): the mask after
/// the last `/', dotted as xtables_numeric_to_ipmask, else a length as
/// xtables_strtoui; the address as xtables_numeric_to_ipaddr, so `010.1'
/// is 8.1.0.0). Host names, which iptables resolves, are refused.
Match::Address parseAddress(const Word &opt, const Word &val,
                            Match::Address::Side side) {
  if (val.text.find(':') != std::string::npos)
    failAt(val, "`" + val.text + "' in " + opt.text +
                    " is an IPv6 address: write IPv6 rules for ip6tables (-6, "
                    "or an ip6tables-save file)");
  size_t slash = val.text.rfind('/');
  std::string a = val.text.substr(0, slash);
  std::optional<uint32_t> addr = inetAtonIptables(a);
  if (!addr) {
    if (a.empty() || !std::isdigit(static_cast<unsigned char>(a[0])))
      failAt(val, "host names are not resolved (`" + val.text + "' in " +
                      opt.text + "); write an IPv4 address");
    failAt(val, "invalid address `" + a + "' in " + opt.text, 0, a.size());
  }
  uint32_t mask = 0xffffffffu;
  if (slash != std::string::npos) {
    std::string mk = val.text.substr(slash + 1);
    if (mk.find('.') != std::string::npos) {
      std::optional<uint32_t> m = inetAtonIptablesMask(mk);
      if (!m)
        failAt(val, "invalid mask `" + mk + "' in " + opt.text, slash + 1,
               mk.size());
      mask = *m;
    } else {
      std::optional<uint64_t> len = xtablesStrtoul(mk, 0, 32);
      if (!len)
        failAt(val,
               "invalid mask `" + mk + "' in " + opt.text +
                   " (a prefix length is 0 to 32)",
               slash + 1, mk.size());
      mask = *len == 0 ? 0 : 0xffffffffu << (32 - *len);
    }
  }
  Match::Address m{side};
  m.mask = mask;
  m.net = *addr & mask;
  return m;
}

/// "a,b,c": iptables makes one rule per address (per combination of
/// source and destination addresses), in the order given.
std::vector<Match> parseAddressList(const Word &opt, const Word &val,
                                    Match::Address::Side side, bool negated,
                                    ir::Family family) {
  std::vector<Match> out;
  for (const Piece &item : splitList(val.text)) {
    if (item.text.empty())
      failAt(val, "empty address in the list of " + opt.text, item.offset, 1);
    Word itemWord{item.text, advance(val.pos, item.offset)};
    out.emplace_back(family == ir::Family::V6
                         ? parseAddress6(opt, itemWord, side)
                         : parseAddress(opt, itemWord, side),
                     negated);
  }
  return out; // `!' with a list: checked for the whole rule (walker)
}

/// -p: lowered, then xtables_parse_protocol() (so `-p 010' is 8, as
/// xtables_strtoui reads it).
uint8_t parseProtocol(const Word &opt, const Word &val) {
  pegtl::memory_input in(val.text, "");
  if (!pegtl::parse<grammar::protocol>(in))
    failAt(val, "invalid protocol `" + val.text + "' in " + opt.text);
  std::string name = val.text;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (std::optional<uint8_t> p = xtablesParseProtocol(name))
    return *p;
  if (std::isdigit(static_cast<unsigned char>(name[0])))
    failAt(val, "invalid protocol number `" + val.text + "' in " + opt.text +
                    " (0 to 255)");
  failAt(val, "unknown protocol `" + val.text + "' in " + opt.text);
}

std::string parseInterface(const Word &opt, const Word &val) {
  pegtl::memory_input in(val.text, "");
  if (val.text.empty() || !pegtl::parse<grammar::interface>(in))
    failAt(val, "invalid interface name `" + val.text + "' in " + opt.text);
  if (val.text.size() >= 16)
    failAt(val, "interface name `" + val.text +
                    "' must be shorter than IFNAMSIZ (15)");
  return val.text;
}

// --- the walker --------------------------------------------------------------

[[noreturn]] void failTarget(const Word &t) {
  if (t.text == "REDIRECT")
    failAt(t, "target `REDIRECT' is not supported yet: it delivers to a local "
              "socket, whose replies leave through the kernel's output path, "
              "where rule2xdp cannot translate them back");
  if (t.text == "SNAT" || t.text == "MASQUERADE")
    failAt(t, "target `" + t.text +
                  "' is not supported yet (rule2xdp "
                  "translates destinations only: DNAT)");
  failAt(t, "target `" + t.text + "' is not supported");
}

struct Parsed {
  OptId command = OptId::Command; ///< Command: none given yet
  const Word *commandWord = nullptr;
  const Word *insertAt = nullptr, *policy = nullptr;
  const Word *table = nullptr, *chain = nullptr, *target = nullptr;
  const Word *gotoChain = nullptr;
  bool hasMatches = false;
  std::vector<Match> srcs, dsts; ///< one rule per combination
  const Word *srcWord = nullptr, *dstWord = nullptr; ///< their values
  std::optional<Match> proto, iif, frag;
  const Word *protoWord = nullptr, *oif = nullptr;
  bool protoNegated = false;
  uint8_t protoNumber = 0;
  std::vector<std::unique_ptr<ModuleState>> modules;
  // Hand-over mode: the target XDP cannot carry out, with its options; the
  // module or target that takes options read by shape; -o's value.
  std::unique_ptr<ModuleState> targetState;
  ModuleState *shapeTail = nullptr;
  const Word *oifValue = nullptr;
  bool oifNegated = false;
  const Word *natTo = nullptr; ///< --to-destination's value
  ir::NatTarget nat;
};

/// `--to-destination [ADDR][:PORT[-PORT]]` (libxt_NAT's parse_to): one IPv4
/// address (a range is refused: rule2xdp does not pick among addresses
/// yet), ports 1 to 65535 with lo <= hi.
void parseNatTo(const Word &opt, const Word &v, ir::NatTarget &t, bool &hasAddr,
                ir::Family family) {
  const std::string &s = v.text;
  size_t colon = s.find(':');
  std::string addr = s.substr(0, colon);
  if (family == ir::Family::V6) {
    // ip6tables: ADDR, or [ADDR]:PORT[-PORT] (libxt_NAT's parse_to).
    t.v6 = true;
    size_t close = std::string::npos;
    if (!s.empty() && s[0] == '[') {
      close = s.find(']');
      if (close == std::string::npos)
        failAt(v, "missing `]' in " + opt.text);
      addr = s.substr(1, close - 1);
      colon = close + 1 < s.size() ? close + 1 : std::string::npos;
      if (colon != std::string::npos && s[colon] != ':')
        failAt(v, "expected `:PORT' after `]' in " + opt.text, colon, 1);
    } else {
      addr = s;
      colon = std::string::npos;
    }
    hasAddr = !addr.empty();
    if (addr.find('-') != std::string::npos)
      failAt(v, "address ranges in " + opt.text +
                    " are not supported yet (rule2xdp maps to one address)");
    std::optional<std::array<uint8_t, 16>> a6;
    if (hasAddr && !(a6 = inetPton6(addr)))
      failAt(v, "invalid IPv6 address `" + addr + "' in " + opt.text +
                    " (with a port, write [ADDR]:PORT)");
    if (a6)
      t.addr6 = *a6;
    if (colon == std::string::npos)
      return;
  }
  hasAddr = !addr.empty();
  if (addr.find('-') != std::string::npos)
    failAt(v,
           "address ranges in " + opt.text +
               " are not supported yet (rule2xdp maps to one address)",
           0, addr.size());
  if (hasAddr && family == ir::Family::V4) {
    std::optional<uint32_t> a = inetPton4(addr);
    if (!a)
      failAt(v, "invalid address `" + addr + "' in " + opt.text, 0,
             addr.size());
    t.addr = *a;
  }
  if (colon == std::string::npos) {
    if (!hasAddr)
      failAt(v, "missing address or port in " + opt.text);
    return;
  }
  std::string ports = s.substr(colon + 1);
  size_t dash = ports.find('-');
  // parse_ports(): xtables_strtoui, so `0x50' is 80 and `080' is refused.
  auto port = [&](const std::string &text, size_t off) -> uint16_t {
    std::optional<uint64_t> n = xtablesStrtoul(text, 1, 65535);
    if (!n)
      failAt(v, "invalid port `" + text + "' in " + opt.text + " (1 to 65535)",
             off, std::max<size_t>(text.size(), 1));
    return static_cast<uint16_t>(*n);
  };
  size_t base = colon + 1;
  t.portLo = port(ports.substr(0, dash), base);
  t.portHi = dash == std::string::npos
                 ? t.portLo
                 : port(ports.substr(dash + 1), base + dash + 1);
  if (t.portHi < t.portLo)
    failAt(v, "invalid port range `" + ports + "' in " + opt.text, base,
           ports.size());
}

std::string joinWords(const std::vector<Word> &words) {
  std::string s;
  for (const Word &w : words) {
    if (!s.empty())
      s += ' ';
    bool quote =
        w.text.empty() || w.text.find_first_of(" \t\"'") != std::string::npos;
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
  if (t == "mangle")
    return ir::Table::Mangle;
  if (t == "nat")
    return ir::Table::Nat;
  if (t == "security")
    failAt(w, "table `" + t + "' is not supported yet");
  failAt(w, "table `" + t + "' does not exist");
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
  if (t == ir::Table::Mangle && name == "PREROUTING")
    return ir::Hook::Prerouting;
  if (t == ir::Table::Mangle && name == "INPUT")
    return ir::Hook::Input;
  if (t == ir::Table::Mangle && name == "FORWARD")
    return ir::Hook::Forward;
  if (t == ir::Table::Nat && name == "PREROUTING")
    return ir::Hook::Prerouting;
  return std::nullopt;
}

/// Built-in chains that only locally generated packets traverse.
bool egressOnly(ir::Table t, const std::string &name) {
  return name == "OUTPUT" || ((t == ir::Table::Raw || t == ir::Table::Mangle) &&
                              name == "POSTROUTING");
}

bool builtinName(ir::Table t, const std::string &name) {
  return ingressHook(t, name) || egressOnly(t, name) || name == "PREROUTING" ||
         name == "INPUT" || name == "FORWARD" || name == "POSTROUTING";
}

/// The options whose value iptables 1.8 reads as argv[optind - 1], the word
/// before getopt's next one, rather than optarg (iptables/xshared.c,
/// do_parse(): cases 'p', 's', 'd', 'j', 'i', 'o'; the indirection served
/// the old `-s ! ADDR' form). Glued to the option (`-ptcp') or written
/// `--protocol=tcp', their value is the whole word, option letters and all.
bool readsWholeWord(OptId id) {
  return id == OptId::Protocol || id == OptId::Source ||
         id == OptId::Destination || id == OptId::Jump ||
         id == OptId::InIface || id == OptId::OutIface;
}

/// iptables refuses such a value as a protocol, host or target it cannot
/// find; as an interface name it takes it (`-ieth0' is an interface called
/// "-ieth0"), which is never what was meant. rule2xdp refuses all of them.
[[noreturn]] void failWholeWord(const Word &whole, const Word &opt,
                                const Word &value) {
  failAt(whole, "iptables reads the whole word `" + whole.text +
                    "' as the value of " + opt.text +
                    " (it takes the word, not getopt's value, for -p, -s, -d, "
                    "-j, -i and -o): write `" +
                    opt.text + " " + value.text + "'");
}

/// getopt's reading of a short-option word longer than two characters,
/// whose option (its second character) is known: with an argument, the rest
/// of the word is the value (`-AINPUT'); without, the rest is the next short
/// option of a cluster (`-fp'). seq[i] is replaced by the words it stands
/// for; the new words live in `store' (a deque: references stay valid).
void splitCluster(std::vector<const Word *> &seq, size_t i,
                  std::deque<Word> &store,
                  std::map<const Word *, const Word *> &gluedFrom,
                  bool hasArg) {
  const Word &w = *seq[i];
  const Word &whole = gluedFrom.count(&w) ? *gluedFrom.at(&w) : w;
  store.push_back(Word{w.text.substr(0, 2), w.pos});
  const Word &opt = store.back();
  if (hasArg) {
    store.push_back(Word{w.text.substr(2), advance(w.pos, 2)});
    gluedFrom[&store.back()] = &whole;
  } else {
    store.push_back(Word{"-" + w.text.substr(2), advance(w.pos, 1)});
    gluedFrom[&store.back()] = &whole; // a rest that is itself glued
  }
  seq[i] = &opt;
  seq.insert(seq.begin() + static_cast<std::ptrdiff_t>(i) + 1, &store.back());
}

void applyCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx, Parsed &p,
                  std::vector<ir::Rule> rules);

} // namespace

void parseCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx) {
  Parsed p;
  // Values given as `--opt=value` become words of their own; Parsed keeps
  // pointers to them, so they live as long as the parse.
  std::deque<Word> inlineWords;
  const Word *invert = nullptr;
  size_t i = 0;

  auto load = [&](const ModuleSpec &spec, const Word &where) -> ModuleState & {
    if (!spec.repeatable)
      for (const auto &m : p.modules)
        if (m->spec == &spec)
          failAt(where, std::string("a second -m ") + spec.name +
                            " match in one rule is not supported");
    for (auto &m : p.modules)
      if (m->spec == &spec)
        m->superseded = true;
    p.modules.push_back(loadModule(spec, where, ctx.family));
    return *p.modules.back();
  };

  // The words in getopt's order: a glued short option (`-AINPUT') or a
  // cluster (`-fp') is rewritten here into the words it stands for.
  std::vector<const Word *> seq;
  for (const Word &w : words)
    seq.push_back(&w);
  // Values that were glued to their short option, and the word they were in.
  std::map<const Word *, const Word *> gluedFrom;

  while (i < seq.size()) {
    const Word &w = *seq[i];
    if (w.text == "!") {
      if (invert)
        failAt(w, "multiple consecutive ! not allowed");
      invert = &w;
      ++i;
      continue;
    }
    std::vector<Candidate> active;
    for (const OptSpec &o : kBaseOpts)
      active.push_back(Candidate{o.name, o.shortName, &o, nullptr, nullptr});
    if (p.target && p.target->text == "DNAT" && !ctx.handover)
      for (const OptSpec &o : kDnatOpts)
        active.push_back(Candidate{o.name, o.shortName, &o, nullptr, nullptr});
    for (const auto &m : p.modules)
      if (!m->superseded)
        for (const ModuleOption &o : m->spec->options)
          active.push_back(Candidate{o.name, 0, nullptr, &o, m.get()});
    if (p.targetState)
      for (const ModuleOption &o : p.targetState->spec->options)
        active.push_back(
            Candidate{o.name, 0, nullptr, &o, p.targetState.get()});

    std::optional<Candidate> spec;
    std::optional<std::string> inlineValue;
    if (w.text.size() > 2 && w.text.compare(0, 2, "--") == 0) {
      std::string name = w.text.substr(2);
      if (size_t eq = name.find('='); eq != std::string::npos) {
        inlineValue = name.substr(eq + 1);
        name.resize(eq);
      }
      bool ambiguous = false;
      if (const Candidate *c = lookupLong(name, active, ambiguous))
        spec = *c;
      // iptables loads the -p protocol's match when one of its options
      // appears without -m (never after `! -p`).
      const ModuleSpec *implicit =
          p.protoWord && !p.protoNegated
              ? protocolModule(p.protoNumber, ctx.family)
              : nullptr;
      if (!spec && !ambiguous && implicit &&
          std::none_of(p.modules.begin(), p.modules.end(),
                       [&](const auto &m) { return m->spec == implicit; })) {
        std::vector<Candidate> more;
        for (const ModuleOption &o : implicit->options)
          more.push_back(Candidate{o.name, 0, nullptr, &o, nullptr});
        if (const Candidate *c = lookupLong(name, more, ambiguous)) {
          ModuleState &st = load(*implicit, *p.protoWord);
          spec = *c;
          spec->state = &st;
        }
      }
      if (ambiguous)
        failAt(w, "option `" + w.text + "' is ambiguous");
      if (!spec && ctx.handover && p.shapeTail) {
        // An option of a module or target unknown to rule2xdp.
        i = readOptionByShape(words, i, invert != nullptr, *p.shapeTail) + 1;
        invert = nullptr;
        continue;
      }
      if (!spec && ctx.handover && p.targetState)
        failAt(w, "unknown option `" + w.text + "' for target " +
                      p.targetState->spec->name);
      if (!spec) {
        for (const char *portOpt :
             {"dport", "sport", "destination-port", "source-port"})
          if (name == portOpt)
            failAt(w, "option `" + w.text +
                          "' needs the tcp or udp match: give `-p tcp' or `-p "
                          "udp' (not negated) first");
        if (name == "icmp-type")
          failAt(
              w,
              ctx.family == ir::Family::V6
                  ? "option `--icmp-type' is iptables'; an ip6tables rule "
                    "writes `-p icmpv6 --icmpv6-type'"
                  : "option `--icmp-type' needs `-p icmp' (not negated) first");
        if (name == "icmpv6-type")
          failAt(w, "option `--icmpv6-type' needs `-p icmpv6' (not negated) "
                    "first, in an ip6tables rule");
        // Options after `-j TARGET` belong to the target (--set-mark,
        // --to-destination...): name the target, which is what is missing.
        if (p.target) {
          const std::string &t = p.target->text;
          bool known =
              t == "ACCEPT" || t == "DROP" || t == "RETURN" || t == "DNAT";
          for (const ir::Chain &c : prog.chains)
            known = known || (c.user && c.family == ctx.family && c.name == t);
          if (!known)
            failTarget(*p.target);
        }
        failAt(w, "unknown option `" + w.text + "'");
      }
    } else if (w.text.size() >= 2 && w.text[0] == '-' && w.text[1] != '-') {
      for (const Candidate &o : active)
        if (o.shortName == w.text[1])
          spec = o;
      // In a ruleset file the words are iptables' own: -o is the output
      // interface there (on the command line it is rule2xdp's output file).
      static constexpr OptSpec kOutShort{"out-interface", 'o', OptId::OutIface,
                                         true, true};
      if (!spec && w.text == "-o" && ctx.fileTable)
        spec = Candidate{kOutShort.name, 'o', &kOutShort, nullptr, nullptr};
      if (!spec) {
        if (w.text.compare(0, 2, "-o") == 0)
          failAt(w,
                 "`-o' is rule2xdp's output file; write the output "
                 "interface as `--out-interface'",
                 0, 2);
        failAt(w, "unknown option `-" + w.text.substr(1, 1) + "'", 0, 2);
      }
      if (w.text.size() > 2) {
        splitCluster(seq, i, inlineWords, gluedFrom, spec->hasArg());
        continue;
      }
    } else {
      failAt(w, "unexpected argument `" + w.text + "'");
    }

    // Messages name the option as written, without an inline `=value`.
    Word optName{w.text.substr(0, w.text.find('=')), w.pos};
    std::vector<const Word *> args;
    unsigned nargs =
        spec->base ? (spec->base->hasArg ? 1 : 0) : spec->mod->args;
    if (inlineValue && nargs == 0)
      failAt(w, "option `" + optName.text + "' takes no argument");
    for (unsigned k = 0; k < nargs; ++k) {
      if (k == 0 && inlineValue) {
        inlineWords.push_back(
            Word{*inlineValue, advance(w.pos, w.text.find('=') + 1)});
        args.push_back(&inlineWords.back());
      } else if (i + 1 < seq.size()) {
        args.push_back(seq[++i]);
      } else {
        failAt(w, "option `" + optName.text + "' requires " +
                      (nargs == 1 ? "an argument"
                                  : std::to_string(nargs) + " arguments"));
      }
    }
    if (spec->base && readsWholeWord(spec->base->id) && !args.empty()) {
      auto glued = gluedFrom.find(args[0]);
      if (glued != gluedFrom.end() || inlineValue)
        failWholeWord(glued != gluedFrom.end() ? *glued->second : w, optName,
                      *args[0]);
    }
    if (invert && !spec->negatable())
      failAt(*invert, "cannot have ! before `" + w.text + "'");
    bool negated = invert != nullptr;
    invert = nullptr;
    if (!args.empty() && args[0]->text == "!" && spec->negatable())
      failAt(*args[0], "`!' must come before the option it negates: write `! " +
                           optName.text + " VALUE'");

    if (spec->mod) {
      spec->state->option(*spec->mod, optName, args, negated);
      ++i;
      continue;
    }
    auto once = [&](bool already, const char *what) {
      if (already)
        failAt(w, std::string("multiple ") + what + " flags not allowed");
    };
    const Word &v = args.empty() ? w : *args[0];
    const OptSpec *base = spec->base;
    switch (base->id) {
    case OptId::Command:
      failAt(w, "command `" + w.text +
                    "' is not supported: rule2xdp compiles rules (-A, -I) and "
                    "chain declarations (-N, -P)");
    case OptId::Append:
    case OptId::Insert:
    case OptId::NewChain:
    case OptId::Policy:
      if (p.commandWord)
        failAt(w, "only one command per rule (already `" + p.commandWord->text +
                      "')");
      p.command = base->id;
      p.commandWord = &w;
      p.chain = &v;
      // -I CHAIN [RULENUM] and -P CHAIN TARGET take a second word.
      // xs_has_arg(): a next word not starting with `-' or `!' is the
      // rule number.
      if (base->id == OptId::Insert && i + 1 < seq.size() &&
          seq[i + 1]->text[0] != '-' && seq[i + 1]->text[0] != '!')
        p.insertAt = seq[++i];
      if (base->id == OptId::Policy) {
        if (i + 1 >= seq.size())
          failAt(w, "-P needs a chain and a policy (ACCEPT or DROP)");
        p.policy = seq[++i];
      }
      break;
    case OptId::Table:
      once(p.table, "-t");
      p.table = &v;
      break;
    case OptId::Source:
      once(!p.srcs.empty(), "-s");
      p.srcs = parseAddressList(optName, v, Match::Address::Side::Source,
                                negated, ctx.family);
      p.srcWord = &v;
      break;
    case OptId::Destination:
      once(!p.dsts.empty(), "-d");
      p.dsts = parseAddressList(optName, v, Match::Address::Side::Destination,
                                negated, ctx.family);
      p.dstWord = &v;
      break;
    case OptId::Protocol: {
      once(p.protoWord, "-p");
      p.protoWord = &v;
      p.protoNegated = negated;
      p.protoNumber = parseProtocol(optName, v);
      if (p.protoNumber == 0 && negated)
        failAt(v, "rule would never match protocol (`! -p " + v.text + "')");
      // -p all (0) checks nothing in ip_packet_match(); in ip6_packet_match()
      // any -p walks the extension headers, which can fail (hotdrop).
      if (p.protoNumber != 0 || ctx.family == ir::Family::V6) {
        p.proto = Match(Match::Protocol{p.protoNumber}, negated);
      }
      break;
    }
    case OptId::InIface: {
      once(p.iif.has_value(), "-i");
      Match::InIface iif{parseInterface(optName, v)};
      int bit = prog.ifaceBit(iif.pattern);
      if (bit < 0)
        failAt(v, "more than 64 distinct -i interface patterns in one program");
      iif.bit = static_cast<unsigned>(bit);
      p.iif = Match(std::move(iif), negated);
      break;
    }
    case OptId::OutIface:
      once(p.oif, "--out-interface");
      p.oif = &w;
      p.oifValue = &v;
      p.oifNegated = negated;
      break;
    case OptId::Jump: {
      once(p.target || p.gotoChain, "-j/-g");
      p.target = &v;
      const std::string &t = v.text;
      bool standard = t == "ACCEPT" || t == "DROP" || t == "RETURN";
      for (const ir::Chain &c : prog.chains)
        standard =
            standard || (c.user && c.family == ctx.family && c.name == t);
      if (ctx.handover && !standard) {
        p.targetState = loadModule(*opaqueTarget(t), v, ctx.family);
        if (readsOptionsByShape(*p.targetState->spec))
          p.shapeTail = p.targetState.get();
      }
      break;
    }
    case OptId::Goto:
      once(p.target || p.gotoChain, "-j/-g");
      p.gotoChain = &v;
      break;
    case OptId::Match: {
      const ModuleSpec *m = findModule(v.text);
      if (!m && ctx.handover) {
        m = opaqueModule(v.text);
        ModuleState &st = load(*m, v);
        p.shapeTail = readsOptionsByShape(*m) ? &st : nullptr;
        break;
      }
      if (!m && (v.text == "conntrack" || v.text == "state"))
        failAt(
            v,
            "match `" + v.text +
                "' needs the kernel's connection "
                "tracking: compile with --pass-unsupported and keep the same "
                "ruleset installed in the kernel (docs/handover.md)");
      if (!m)
        failAt(v, "match `" + v.text + "' is not supported");
      if (!moduleFits(*m, ctx.family))
        failAt(v,
               "match `" + v.text + "' is not available for " +
                   (ctx.family == ir::Family::V6 ? "ip6tables" : "iptables") +
                   " rules" +
                   (ctx.family == ir::Family::V6 ? "" : " (it is ip6tables')"));
      load(*m, v);
      break;
    }
    case OptId::Fragment: {
      if (ctx.family == ir::Family::V6)
        failAt(w, "ip6tables has no -f (its fragment match is -m frag, not "
                  "supported yet)");
      once(p.frag.has_value(), "-f");
      p.frag = Match(Match::Fragment{}, negated);
      break;
    }
    case OptId::SetCounters:
      failAt(w, "`" + w.text + "' (set counters) is not supported");
    case OptId::ToDestination: {
      if (p.natTo)
        failAt(w, "multiple --to-destination are not supported (kernels since "
                  "2.6.11 take one)");
      p.natTo = &v;
      bool hasAddr = false;
      parseNatTo(optName, v, p.nat, hasAddr, ctx.family);
      if (!hasAddr)
        failAt(v, "--to-destination without an address (only a new port) is "
                  "not supported yet");
      break;
    }
    case OptId::NatRandom:
      once(p.nat.random, "--random");
      p.nat.random = true;
      break;
    case OptId::NatPersistent:
      once(p.nat.persistent, "--persistent");
      p.nat.persistent = true;
      break;
    }
    ++i;
  }
  if (invert)
    failAt(*invert, "`!' at the end of the rule negates nothing");
  // iptables: a list on either side forbids `!' on both (IPT_INV_SRCIP or
  // IPT_INV_DSTIP with more than one address of either).
  {
    bool neg = (!p.srcs.empty() && p.srcs[0].negated) ||
               (!p.dsts.empty() && p.dsts[0].negated);
    const Word *list = p.srcs.size() > 1   ? p.srcWord
                       : p.dsts.size() > 1 ? p.dstWord
                                           : nullptr;
    if (neg && list)
      failAt(*list,
             "! not allowed with multiple source or destination IP addresses");
  }

  // --- whole-rule checks, as iptables makes them after parsing --------------
  if (!p.commandWord) {
    if (words.empty())
      throw Diagnostic(ir::SourcePos{"<command line>", 0, 0, -1},
                       "no rule given: write an iptables rule such as "
                       "`-A INPUT -p udp --dport 1234 -j DROP'");
    failAt(words.front(), "no command given: the rule needs `-A CHAIN'");
  }
  p.hasMatches = !p.srcs.empty() || !p.dsts.empty() || p.proto || p.iif ||
                 p.frag || !p.modules.empty() || p.oif;
  if (p.oif && p.chain &&
      (p.chain->text == "INPUT" || p.chain->text == "PREROUTING"))
    failAt(*p.oif, "Can't use --out-interface with " + p.chain->text);
  ir::Rule proto;
  proto.pos = words.front().pos;
  proto.text = joinWords(words);
  std::vector<Match> tail; // ip_packet_match() order after the addresses
  std::optional<Match> oif;
  if (p.oif && ctx.handover) // ip_packet_match() checks it after -i
    oif = Match(
        Match::Unknown{(p.oifNegated ? "! -o " : "-o ") + p.oifValue->text,
                       "the output device is known only after the "
                       "kernel's routing decision"},
        false, (p.oifNegated ? "! -o " : "-o ") + p.oifValue->text);
  for (auto *m : {&p.iif, &oif, &p.proto, &p.frag})
    if (*m)
      tail.push_back(**m);
  RuleFacts facts{p.protoNumber, p.protoNegated, ctx.family};
  for (const auto &m : p.modules)
    m->finish(facts, tail, proto.comments);

  std::vector<ir::Rule> rules;
  std::vector<std::optional<Match>> srcs(p.srcs.begin(), p.srcs.end());
  std::vector<std::optional<Match>> dsts(p.dsts.begin(), p.dsts.end());
  if (srcs.empty())
    srcs.push_back(std::nullopt);
  if (dsts.empty())
    dsts.push_back(std::nullopt);
  for (const auto &s : srcs)
    for (const auto &d : dsts) {
      ir::Rule r = proto;
      if (s)
        r.matches.push_back(*s);
      if (d)
        r.matches.push_back(*d);
      r.matches.insert(r.matches.end(), tail.begin(), tail.end());
      rules.push_back(std::move(r));
    }
  applyCommand(words, prog, ctx, p, std::move(rules));
}

namespace {

constexpr const char *kNatNoDrop =
    "the nat table is not intended for filtering: DROP is not allowed there "
    "(as iptables says)";

/// What iptables and the kernel require of a DNAT rule, and what rule2xdp
/// can translate with the kernel's meaning.
void checkDnat(const Word &target, ir::Table table, const std::string &chain,
               const CommandContext &ctx, const Parsed &p) {
  if (table != ir::Table::Nat)
    failAt(target, "target DNAT is only valid in the nat table, not `" +
                       std::string(ir::tableName(table)) + "'");
  if (chain == "INPUT" || chain == "POSTROUTING" || chain == "FORWARD")
    failAt(target, "target DNAT is only valid in PREROUTING and OUTPUT (and "
                   "user chains called from them), not in " +
                       chain);
  if (!p.natTo)
    failAt(target, "-j DNAT needs --to-destination ADDR[:PORT[-PORT]]");
  if (p.nat.portLo != 0) {
    bool tcpUdp = p.protoWord && !p.protoNegated &&
                  (p.protoNumber == 6 || p.protoNumber == 17);
    (void)ctx;
    if (!tcpUdp)
      failAt(*p.natTo,
             "a port in --to-destination needs `-p tcp' or `-p udp' "
             "(iptables also allows sctp and dccp, which rule2xdp does "
             "not translate yet)");
  }
}

void applyCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx, Parsed &p,
                  std::vector<ir::Rule> newRules) {
  ir::Table table = ir::Table::Filter;
  if (p.table && ctx.fileTable)
    failAt(*p.table, "-t cannot be used inside a ruleset file: the table is "
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
      failAt(*p.commandWord,
             "`" + p.commandWord->text +
                 "' takes a chain name only, no matches or target");
  }
  if (p.command == OptId::NewChain) {
    if (builtinName(table, c) || c == "ACCEPT" || c == "DROP" || c == "RETURN")
      failAt(chainWord,
             "chain `" + c + "' is built in; -N creates user chains");
    if (c.size() > 28 || c[0] == '-' || c[0] == '!')
      failAt(chainWord, "invalid chain name `" + c + "'");
    if (prog.userChain(ctx.family, table, c))
      failAt(chainWord,
             "chain `" + c + "' already exists in table `" + tname + "'");
    ir::Chain uc;
    uc.family = ctx.family;
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
  // nat INPUT and POSTROUTING: built in, seen by received packets, but only
  // for source translation, which rule2xdp does not do yet.
  bool natSource =
      table == ir::Table::Nat && (c == "INPUT" || c == "POSTROUTING");
  ir::Chain *user = hook || egress || natSource
                        ? nullptr
                        : prog.userChain(ctx.family, table, c);
  if (!hook && !egress && !user && !natSource)
    failAt(chainWord,
           "chain `" + c + "' does not exist in table `" + tname + "'");

  if (p.command == OptId::Policy) {
    const std::string &pol = p.policy->text;
    if (user)
      failAt(chainWord, "a user chain has no policy (`" + c + "')");
    if (pol != "ACCEPT" && pol != "DROP")
      failAt(*p.policy, "policy `" + pol + "' is not ACCEPT or DROP");
    if (table == ir::Table::Nat && pol == "DROP")
      failAt(*p.policy, kNatNoDrop);
    // The only nat policy is ACCEPT, which translates nothing: the chain
    // exists for received packets only once it has rules.
    if (natSource || table == ir::Table::Nat)
      return;
    if (hook)
      prog.chain(ctx.family, table, *hook).policy =
          pol == "DROP" ? ir::Verdict::Drop : ir::Verdict::Accept;
    return; // an egress chain's policy never applies to received packets
  }

  // -A / -I: the target, the same for every rule the address lists make.
  ir::Rule rule;
  if (p.gotoChain) {
    const std::string &g = p.gotoChain->text;
    if (!prog.userChain(ctx.family, table, g))
      failAt(*p.gotoChain, "-g needs a user chain of table `" + tname + "'; `" +
                               g + "' is not one");
    rule.verdict = ir::Verdict::Goto;
    rule.jumpTarget = g;
  } else if (p.target) {
    const std::string &t = p.target->text;
    if (t == "ACCEPT")
      rule.verdict = ir::Verdict::Accept;
    else if (t == "DROP" && table == ir::Table::Nat)
      failAt(*p.target, kNatNoDrop);
    else if (t == "DROP")
      rule.verdict = ir::Verdict::Drop;
    else if (p.targetState) {
      // Hand-over mode: a target XDP cannot carry out.
      if (t == "DNAT" && table != ir::Table::Nat)
        failAt(*p.target, "target DNAT is only valid in the nat table, not `" +
                              tname + "'");
      rule.verdict = ir::Verdict::Handover;
      rule.target = t;
      rule.handoverReason = targetReason(t);
    } else if (t == "DNAT") {
      checkDnat(*p.target, table, c, ctx, p);
      rule.verdict = ir::Verdict::Dnat;
      rule.nat = p.nat;
    } else if (t == "RETURN")
      rule.verdict = ir::Verdict::Return;
    else if (prog.userChain(ctx.family, table, t)) {
      rule.verdict = ir::Verdict::Jump;
      rule.jumpTarget = t;
    } else if (builtinName(table, t))
      failAt(*p.target, "cannot jump to built-in chain `" + t + "'");
    else
      failTarget(*p.target);
  } else {
    rule.verdict = ir::Verdict::Continue;
  }

  if (ctx.handover && (egress || natSource)) {
    if (table == ir::Table::Nat && rule.verdict == ir::Verdict::Handover &&
        rule.target != "DNAT" && rule.target != "REDIRECT") {
      std::string &n = prog.kernelSourceNat[static_cast<size_t>(ctx.family)];
      if (n.empty())
        n = chainWord.pos.file + ":" + std::to_string(chainWord.pos.line) +
            ": " + newRules.front().text;
    }
    for (const ir::Rule &r : newRules)
      prog.kernelOnly.push_back(
          {r.pos, r.text,
           natSource ? "nat " + c + " runs after the filter decided"
                     : c + " never sees received packets"});
    return;
  }
  if (egress) {
    if (!ctx.fileTable)
      failAt(chainWord,
             "chain " + c +
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
  if (p.oif && !ctx.handover)
    failAt(*p.oif, "--out-interface is not supported yet (with "
                   "--pass-unsupported it is handed to the kernel)");
  if (natSource)
    failAt(chainWord,
           "nat " + c +
               " rules (SNAT, MASQUERADE) are not supported "
               "yet: rule2xdp translates destinations in PREROUTING only");

  std::vector<ir::Rule> &rules =
      user ? user->rules : prog.chain(ctx.family, table, *hook).rules;
  size_t at = rules.size();
  if (p.command == OptId::Insert) {
    at = 0;
    if (p.insertAt) {
      // parse_rulenumber(): xtables_strtoui, 1 to INT_MAX.
      std::optional<uint64_t> num =
          xtablesStrtoul(p.insertAt->text, 1, INT_MAX);
      if (!num)
        failAt(*p.insertAt, "invalid rule number `" + p.insertAt->text + "'");
      uint64_t n = *num;
      if (n > rules.size() + 1)
        failAt(*p.insertAt, "index of insertion too big (chain `" + c +
                                "' has " + std::to_string(rules.size()) +
                                " rules)");
      at = n - 1;
    }
  }
  (void)words;
  for (ir::Rule &r : newRules) {
    r.verdict = rule.verdict;
    r.jumpTarget = rule.jumpTarget;
    r.nat = rule.nat;
    r.target = rule.target;
    r.handoverReason = rule.handoverReason;
  }
  rules.insert(rules.begin() + static_cast<long>(at),
               std::make_move_iterator(newRules.begin()),
               std::make_move_iterator(newRules.end()));
}

} // namespace

void checkChainGraph(const ir::Program &prog) {
  // The kernel refuses loops (ELOOP) and nf_tables refuses jumps nested
  // deeper than 16 (EMLINK). One depth-first pass with memoised depths
  // (the longest jump path below each chain): linear in rules, where
  // walking every path is exponential in the chain graph (a fuzzer found a
  // small file that took minutes).
  constexpr int kMaxDepth = 16;
  std::map<const ir::Chain *, int> depth;
  std::map<const ir::Chain *, bool> onStack;
  auto jumpOf = [&](const ir::Chain &c,
                    const ir::Rule &r) -> const ir::Chain * {
    if (r.verdict != ir::Verdict::Jump && r.verdict != ir::Verdict::Goto)
      return nullptr;
    return prog.userChain(c.family, c.table, r.jumpTarget);
  };
  std::function<void(const ir::Chain &)> visit = [&](const ir::Chain &c) {
    onStack[&c] = true;
    int best = 0;
    for (const ir::Rule &r : c.rules) {
      const ir::Chain *next = jumpOf(c, r);
      if (!next)
        continue;
      if (onStack[next])
        throw Diagnostic(r.pos, "rule makes a loop through chain `" +
                                    next->name + "'");
      if (!depth.count(next))
        visit(*next);
      best = std::max(best, 1 + depth[next]);
    }
    onStack[&c] = false;
    depth[&c] = best;
  };
  for (const ir::Chain &c : prog.chains)
    if (!depth.count(&c))
      visit(c);
  // Name the jump that goes one level too deep on the first such path.
  for (const ir::Chain &c : prog.chains) {
    if (depth[&c] < kMaxDepth)
      continue;
    const ir::Chain *x = &c;
    for (int need = kMaxDepth;; --need)
      for (const ir::Rule &r : x->rules) {
        const ir::Chain *next = jumpOf(*x, r);
        if (!next || 1 + depth[next] < need)
          continue;
        if (need == 1)
          throw Diagnostic(r.pos, "jumps nest deeper than " +
                                      std::to_string(kMaxDepth) +
                                      " chains (the kernel's limit)");
        x = next;
        break;
      }
  }
}

} // namespace r2x::frontend
