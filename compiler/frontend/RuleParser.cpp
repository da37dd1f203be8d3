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
#include <linux/netfilter/xt_LOG.h>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <span>
#include <string_view>
#include <strings.h>

namespace r2x::frontend {
namespace {

using ir::Match;
namespace pegtl = tao::pegtl;

// --- option tables (data, not code: a new option is one line) -------------

enum class OptId {
  Command,
  Append,
  Insert,
  Delete,
  Replace,
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
  NatPersistent, // DNAT's options, after -j DNAT
  RejectWith,    // REJECT's, after -j REJECT
  LogLevel,
  LogPrefix,
  LogFlag // LOG's, after -j LOG (LogFlag: the flag options, kLogFlags)
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
    {"delete", 'D', OptId::Delete, true, false},
    {"replace", 'R', OptId::Replace, true, false},
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

/// The REJECT target's option (libipt_REJECT, libip6t_REJECT).
constexpr OptSpec kRejectOpts[] = {
    {"reject-with", 0, OptId::RejectWith, true, false},
};

/// The LOG target's options (libxt_LOG).
constexpr OptSpec kLogOpts[] = {
    {"log-level", 0, OptId::LogLevel, true, false},
    {"log-prefix", 0, OptId::LogPrefix, true, false},
    {"log-tcp-sequence", 0, OptId::LogFlag, false, false},
    {"log-tcp-options", 0, OptId::LogFlag, false, false},
    {"log-ip-options", 0, OptId::LogFlag, false, false},
    {"log-uid", 0, OptId::LogFlag, false, false},
    {"log-macdecode", 0, OptId::LogFlag, false, false},
};
/// The XT_LOG_* bit of each LogFlag option.
uint8_t logFlagBit(std::string_view name) {
  static constexpr std::pair<std::string_view, uint8_t> kLogFlags[] = {
      {"log-tcp-sequence", XT_LOG_TCPSEQ}, {"log-tcp-options", XT_LOG_TCPOPT},
      {"log-ip-options", XT_LOG_IPOPT},    {"log-uid", XT_LOG_UID},
      {"log-macdecode", XT_LOG_MACDECODE},
  };
  for (const auto &[n, bit] : kLogFlags)
    if (n == name)
      return bit;
  return 0;
}

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
/// ambiguous. `forEach(f)` calls f on every candidate (twice over: once for
/// the exact name, once for prefixes), so no list of them is built: the
/// parser asks this for every option of every rule.
template <class ForEach>
std::optional<Candidate> lookupLong(std::string_view name, ForEach forEach,
                                    bool &ambiguous) {
  ambiguous = false;
  std::optional<Candidate> found;
  forEach([&](const Candidate &o) {
    if (!found && name == o.name)
      found = o;
  });
  if (found)
    return found;
  forEach([&](const Candidate &o) {
    if (o.name.substr(0, name.size()) != name)
      return;
    if (!found)
      found = o;
    else if (found->key() != o.key() || found->hasArg() != o.hasArg())
      ambiguous = true;
  });
  if (ambiguous)
    return std::nullopt;
  return found;
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
  std::optional<Match> proto, iif, oif, frag;
  const Word *protoWord = nullptr, *oifWord = nullptr;
  bool protoNegated = false;
  uint8_t protoNumber = 0;
  std::vector<std::unique_ptr<ModuleState>> modules;
  // Hand-over mode: the target XDP cannot carry out, with its options; the
  // module or target that takes options read by shape.
  std::unique_ptr<ModuleState> targetState;
  ModuleState *shapeTail = nullptr;
  const Word *natTo = nullptr; ///< --to-destination's value
  ir::NatTarget nat;
  const Word *rejectWith = nullptr; ///< --reject-with's value
  const Word *logLevel = nullptr, *logPrefix = nullptr; ///< LOG's values
  uint8_t logFlags = 0;
  const Word *logUid = nullptr; ///< --log-uid, which XDP cannot carry out
};

/// The ports after `:' (libxt_NAT's parse_ports(): PORT[-PORT], each
/// xtables_strtoui, so `0x50' is 80 and `080' is refused).
void parseNatPorts(const Word &opt, const Word &v, size_t colon,
                   ir::NatTarget &t) {
  std::string ports = v.text.substr(colon + 1);
  size_t dash = ports.find('-');
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

/// ip6tables: ADDR, or [ADDR]:PORT[-PORT] (libxt_NAT's parse_to), the
/// address as inet_pton reads it. Returns where `:PORT' starts, or npos.
size_t parseNatAddr6(const Word &opt, const Word &v, ir::NatTarget &t,
                     bool &hasAddr) {
  const std::string &s = v.text;
  std::string addr = s;
  size_t colon = std::string::npos;
  t.v6 = true;
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string::npos)
      failAt(v, "missing `]' in " + opt.text);
    addr = s.substr(1, close - 1);
    colon = close + 1 < s.size() ? close + 1 : std::string::npos;
    if (colon != std::string::npos && s[colon] != ':')
      failAt(v, "expected `:PORT' after `]' in " + opt.text, colon, 1);
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
  return colon;
}

/// `--to-destination [ADDR][:PORT[-PORT]]` (libxt_NAT's parse_to): one
/// address (a range is refused: rule2xdp does not pick among addresses
/// yet), ports 1 to 65535 with lo <= hi. iptables reads the IPv4 address
/// with inet_pton (`10.1' is refused, unlike in -s).
void parseNatTo(const Word &opt, const Word &v, ir::NatTarget &t, bool &hasAddr,
                ir::Family family) {
  if (family == ir::Family::V6) {
    size_t colon = parseNatAddr6(opt, v, t, hasAddr);
    if (colon != std::string::npos)
      parseNatPorts(opt, v, colon, t);
    return;
  }
  const std::string &s = v.text;
  size_t colon = s.find(':');
  std::string addr = s.substr(0, colon);
  hasAddr = !addr.empty();
  if (addr.find('-') != std::string::npos)
    failAt(v,
           "address ranges in " + opt.text +
               " are not supported yet (rule2xdp maps to one address)",
           0, addr.size());
  if (hasAddr) {
    std::optional<uint32_t> a = inetPton4(addr);
    if (!a)
      failAt(v, "invalid address `" + addr + "' in " + opt.text, 0,
             addr.size());
    t.addr = *a;
  }
  if (colon != std::string::npos)
    return parseNatPorts(opt, v, colon, t);
  if (!hasAddr)
    failAt(v, "missing address or port in " + opt.text);
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

void applyCommand(ir::Program &prog, const CommandContext &ctx, Parsed &p,
                  std::vector<ir::Rule> rules);

/// One command's walk, iptables' do_parse() in short: step() reads one
/// option (long, short or glued, with its value words), then hands it to
/// the module that owns it or to baseOption(), a dispatcher with one
/// function per base option; finish() makes the whole-rule checks and the
/// rules.
class CommandWalker {
public:
  CommandWalker(const std::vector<Word> &words, ir::Program &prog,
                const CommandContext &ctx)
      : words_(words), prog_(prog), ctx_(ctx) {
    for (const Word &w : words)
      seq_.push_back(&w);
  }

  void run() {
    while (i_ < seq_.size())
      step();
    finish();
  }

private:
  /// One option as given: what it is, its name as written (without an
  /// inline `=value`), its value words and whether `!` preceded it.
  struct Occurrence {
    Candidate spec;
    const Word *word;
    Word name;
    std::vector<const Word *> args;
    bool negated;
    const Word &value() const { return args.empty() ? *word : *args[0]; }
  };

  void step();
  /// Calls f(const Candidate &) on every option the walker may see now,
  /// in the order iptables' option table would list them.
  template <class F> void forEachActive(F f) const;
  ModuleState &load(const ModuleSpec &spec, const Word &where);
  std::optional<Candidate> longOption(const Word &w, const std::string &name);
  std::optional<Candidate> implicitOption(const std::string &name,
                                          bool &ambiguous);
  [[noreturn]] void failUnknownLong(const Word &w, const std::string &name);
  Candidate shortOption(const Word &w);
  Occurrence occurrence(const Word &w, const Candidate &spec,
                        const std::optional<std::string> &inlineValue);
  void once(const Occurrence &o, bool already, const char *what) const;

  void baseOption(const Occurrence &o);
  void onCommand(const Occurrence &o);
  void onTable(const Occurrence &o);
  void onAddress(const Occurrence &o, Match::Address::Side side);
  void onProtocol(const Occurrence &o);
  void onInIface(const Occurrence &o);
  void onOutIface(const Occurrence &o);
  Match interfaceMatch(const Occurrence &o, bool out);
  void onJump(const Occurrence &o);
  void onGoto(const Occurrence &o);
  void onLogOption(const Occurrence &o);
  void onMatch(const Occurrence &o);
  void onFragment(const Occurrence &o);
  void onToDestination(const Occurrence &o);

  void finish();
  void checkAddressLists() const;
  std::vector<ir::Rule> expandRules();

  const std::vector<Word> &words_;
  ir::Program &prog_;
  const CommandContext &ctx_;
  Parsed p_;
  /// Values given as `--opt=value`, and the pieces of glued short options,
  /// become words of their own; Parsed keeps pointers to them, so they live
  /// as long as the walk (a deque: references stay valid).
  std::deque<Word> inlineWords_;
  /// The words in getopt's order: a glued short option (`-AINPUT') or a
  /// cluster (`-fp') is rewritten into the words it stands for.
  std::vector<const Word *> seq_;
  /// Values that were glued to their short option, and the word they were
  /// in.
  std::map<const Word *, const Word *> gluedFrom_;
  const Word *invert_ = nullptr;
  size_t i_ = 0;
};

void CommandWalker::step() {
  const Word &w = *seq_[i_];
  if (w.text == "!") {
    if (invert_)
      failAt(w, "multiple consecutive ! not allowed");
    invert_ = &w;
    ++i_;
    return;
  }
  std::optional<Candidate> spec;
  std::optional<std::string> inlineValue;
  if (w.text.size() > 2 && w.text.compare(0, 2, "--") == 0) {
    std::string name = w.text.substr(2);
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inlineValue = name.substr(eq + 1);
      name.resize(eq);
    }
    spec = longOption(w, name);
    if (!spec)
      return; // read by shape (hand-over mode)
  } else if (w.text.size() >= 2 && w.text[0] == '-' && w.text[1] != '-') {
    spec = shortOption(w);
    if (w.text.size() > 2) {
      splitCluster(seq_, i_, inlineWords_, gluedFrom_, spec->hasArg());
      return;
    }
  } else {
    failAt(w, "unexpected argument `" + w.text + "'");
  }
  Occurrence o = occurrence(w, *spec, inlineValue);
  if (spec->mod)
    spec->state->option(*spec->mod, o.name, o.args, o.negated);
  else
    baseOption(o);
  ++i_;
}

template <class F> void CommandWalker::forEachActive(F f) const {
  auto base = [&](const auto &opts) {
    for (const OptSpec &o : opts)
      f(Candidate{o.name, o.shortName, &o, nullptr, nullptr});
  };
  base(kBaseOpts);
  if (p_.target && p_.target->text == "DNAT" && !ctx_.handover)
    base(kDnatOpts);
  if (p_.target && p_.target->text == "REJECT")
    base(kRejectOpts);
  if (p_.target && p_.target->text == "LOG")
    base(kLogOpts);
  for (const auto &m : p_.modules)
    if (!m->superseded)
      for (const ModuleOption &o : m->spec->options)
        f(Candidate{o.name, 0, nullptr, &o, m.get()});
  if (p_.targetState)
    for (const ModuleOption &o : p_.targetState->spec->options)
      f(Candidate{o.name, 0, nullptr, &o, p_.targetState.get()});
}

ModuleState &CommandWalker::load(const ModuleSpec &spec, const Word &where) {
  if (!spec.repeatable)
    for (const auto &m : p_.modules)
      if (m->spec == &spec)
        failAt(where, std::string("a second -m ") + spec.name +
                          " match in one rule is not supported");
  for (auto &m : p_.modules)
    if (m->spec == &spec)
      m->superseded = true;
  p_.modules.push_back(loadModule(spec, where, ctx_.family));
  return *p_.modules.back();
}

/// `--name`: an active option, or one of the -p protocol's match; in
/// hand-over mode an option of an unknown module is read by its shape
/// (nullopt). Anything else is an error.
std::optional<Candidate> CommandWalker::longOption(const Word &w,
                                                   const std::string &name) {
  bool ambiguous = false;
  if (std::optional<Candidate> c = lookupLong(
          name, [&](auto f) { forEachActive(f); }, ambiguous))
    return c;
  if (!ambiguous)
    if (std::optional<Candidate> c = implicitOption(name, ambiguous))
      return c;
  if (ambiguous)
    failAt(w, "option `" + w.text + "' is ambiguous");
  if (ctx_.handover && p_.shapeTail) {
    // An option of a module or target unknown to rule2xdp.
    i_ = readOptionByShape(words_, i_, invert_ != nullptr, *p_.shapeTail) + 1;
    invert_ = nullptr;
    return std::nullopt;
  }
  failUnknownLong(w, name);
}

/// iptables loads the -p protocol's match when one of its options appears
/// without -m (never after `! -p`).
std::optional<Candidate> CommandWalker::implicitOption(const std::string &name,
                                                       bool &ambiguous) {
  const ModuleSpec *implicit = p_.protoWord && !p_.protoNegated
                                   ? protocolModule(p_.protoNumber, ctx_.family)
                                   : nullptr;
  if (!implicit ||
      std::any_of(p_.modules.begin(), p_.modules.end(),
                  [&](const auto &m) { return m->spec == implicit; }))
    return std::nullopt;
  std::optional<Candidate> c = lookupLong(
      name,
      [&](auto f) {
        for (const ModuleOption &o : implicit->options)
          f(Candidate{o.name, 0, nullptr, &o, nullptr});
      },
      ambiguous);
  if (!c)
    return std::nullopt;
  Candidate spec = *c;
  spec.state = &load(*implicit, *p_.protoWord);
  return spec;
}

/// An unknown `--name`, with what is missing when we can tell.
void CommandWalker::failUnknownLong(const Word &w, const std::string &name) {
  if (ctx_.handover && p_.targetState)
    failAt(w, "unknown option `" + w.text + "' for target " +
                  p_.targetState->spec->name);
  for (const char *portOpt :
       {"dport", "sport", "destination-port", "source-port"})
    if (name == portOpt)
      failAt(w, "option `" + w.text +
                    "' needs the tcp or udp match: give `-p tcp' or `-p "
                    "udp' (not negated) first");
  if (name == "icmp-type")
    failAt(w, ctx_.family == ir::Family::V6
                  ? "option `--icmp-type' is iptables'; an ip6tables rule "
                    "writes `-p icmpv6 --icmpv6-type'"
                  : "option `--icmp-type' needs `-p icmp' (not negated) first");
  if (name == "icmpv6-type")
    failAt(w, "option `--icmpv6-type' needs `-p icmpv6' (not negated) "
              "first, in an ip6tables rule");
  // Options after `-j TARGET` belong to the target (--set-mark,
  // --to-destination...): name the target, which is what is missing.
  if (p_.target) {
    const std::string &t = p_.target->text;
    bool known = t == "ACCEPT" || t == "DROP" || t == "RETURN" || t == "DNAT" ||
                 t == "REJECT" || t == "LOG";
    for (const ir::Chain &c : prog_.chains)
      known = known || (c.user && c.family == ctx_.family && c.name == t);
    if (!known)
      failTarget(*p_.target);
  }
  failAt(w, "unknown option `" + w.text + "'");
}

/// `-X`: the active option with that letter. In a ruleset file the words
/// are iptables' own: -o is the output interface there (on the command line
/// it is rule2xdp's output file).
Candidate CommandWalker::shortOption(const Word &w) {
  std::optional<Candidate> spec;
  forEachActive([&](const Candidate &o) {
    if (o.shortName == w.text[1])
      spec = o;
  });
  static constexpr OptSpec kOutShort{"out-interface", 'o', OptId::OutIface,
                                     true, true};
  if (!spec && w.text == "-o" && ctx_.fileTable)
    spec = Candidate{kOutShort.name, 'o', &kOutShort, nullptr, nullptr};
  if (!spec) {
    if (w.text.compare(0, 2, "-o") == 0)
      failAt(w,
             "`-o' is rule2xdp's output file; write the output "
             "interface as `--out-interface'",
             0, 2);
    failAt(w, "unknown option `-" + w.text.substr(1, 1) + "'", 0, 2);
  }
  return *spec;
}

/// Takes the option's value words (inline, or the next ones) and checks
/// where `!` stands.
CommandWalker::Occurrence
CommandWalker::occurrence(const Word &w, const Candidate &spec,
                          const std::optional<std::string> &inlineValue) {
  Occurrence o{
      spec, &w, Word{w.text.substr(0, w.text.find('=')), w.pos}, {}, false};
  unsigned nargs = spec.base ? (spec.base->hasArg ? 1 : 0) : spec.mod->args;
  if (inlineValue && nargs == 0)
    failAt(w, "option `" + o.name.text + "' takes no argument");
  for (unsigned k = 0; k < nargs; ++k) {
    if (k == 0 && inlineValue) {
      inlineWords_.push_back(
          Word{*inlineValue, advance(w.pos, w.text.find('=') + 1)});
      o.args.push_back(&inlineWords_.back());
    } else if (i_ + 1 < seq_.size()) {
      o.args.push_back(seq_[++i_]);
    } else {
      failAt(w, "option `" + o.name.text + "' requires " +
                    (nargs == 1 ? "an argument"
                                : std::to_string(nargs) + " arguments"));
    }
  }
  if (spec.base && readsWholeWord(spec.base->id) && !o.args.empty()) {
    auto glued = gluedFrom_.find(o.args[0]);
    if (glued != gluedFrom_.end() || inlineValue)
      failWholeWord(glued != gluedFrom_.end() ? *glued->second : w, o.name,
                    *o.args[0]);
  }
  if (invert_ && !spec.negatable())
    failAt(*invert_, "cannot have ! before `" + w.text + "'");
  o.negated = invert_ != nullptr;
  invert_ = nullptr;
  if (!o.args.empty() && o.args[0]->text == "!" && spec.negatable())
    failAt(*o.args[0], "`!' must come before the option it negates: write `! " +
                           o.name.text + " VALUE'");
  return o;
}

void CommandWalker::once(const Occurrence &o, bool already,
                         const char *what) const {
  if (already)
    failAt(*o.word, std::string("multiple ") + what + " flags not allowed");
}

// --- the base options: one function each -----------------------------------

void CommandWalker::baseOption(const Occurrence &o) {
  switch (o.spec.base->id) {
  case OptId::Command:
  case OptId::Append:
  case OptId::Insert:
  case OptId::Delete:
  case OptId::Replace:
  case OptId::NewChain:
  case OptId::Policy:
    return onCommand(o);
  case OptId::Table:
    return onTable(o);
  case OptId::Source:
    return onAddress(o, Match::Address::Side::Source);
  case OptId::Destination:
    return onAddress(o, Match::Address::Side::Destination);
  case OptId::Protocol:
    return onProtocol(o);
  case OptId::InIface:
    return onInIface(o);
  case OptId::OutIface:
    return onOutIface(o);
  case OptId::Jump:
    return onJump(o);
  case OptId::Goto:
    return onGoto(o);
  case OptId::Match:
    return onMatch(o);
  case OptId::Fragment:
    return onFragment(o);
  case OptId::SetCounters:
    failAt(*o.word, "`" + o.word->text + "' (set counters) is not supported");
  case OptId::ToDestination:
    return onToDestination(o);
  case OptId::NatRandom:
    once(o, p_.nat.random, "--random");
    p_.nat.random = true;
    return;
  case OptId::NatPersistent:
    once(o, p_.nat.persistent, "--persistent");
    p_.nat.persistent = true;
    return;
  case OptId::RejectWith:
    once(o, p_.rejectWith != nullptr, "--reject-with");
    p_.rejectWith = &o.value();
    return;
  case OptId::LogLevel:
  case OptId::LogPrefix:
  case OptId::LogFlag:
    return onLogOption(o);
  }
}

/// -A, -I, -D, -R, -N, -P; any other command is refused.
void CommandWalker::onCommand(const Occurrence &o) {
  const Word &w = *o.word;
  OptId id = o.spec.base->id;
  if (id == OptId::Command)
    failAt(w, "command `" + w.text +
                  "' is not supported: rule2xdp compiles rules (-A, -I, -D, "
                  "-R) and chain declarations (-N, -P)");
  if (p_.commandWord)
    failAt(w, "only one command per rule (already `" + p_.commandWord->text +
                  "')");
  p_.command = id;
  p_.commandWord = &w;
  p_.chain = &o.value();
  // -I CHAIN [RULENUM] and -P CHAIN TARGET take a second word.
  // xs_has_arg(): a next word not starting with `-' or `!' is the
  // rule number.
  if ((id == OptId::Insert || id == OptId::Delete || id == OptId::Replace) &&
      i_ + 1 < seq_.size() && seq_[i_ + 1]->text[0] != '-' &&
      seq_[i_ + 1]->text[0] != '!')
    p_.insertAt = seq_[++i_];
  if (id == OptId::Replace && !p_.insertAt)
    failAt(w, "-R needs a chain and a rule number (-R CHAIN RULENUM RULE)");
  if (id == OptId::Policy) {
    if (i_ + 1 >= seq_.size())
      failAt(w, "-P needs a chain and a policy (ACCEPT or DROP)");
    p_.policy = seq_[++i_];
  }
}

void CommandWalker::onTable(const Occurrence &o) {
  once(o, p_.table, "-t");
  p_.table = &o.value();
}

void CommandWalker::onAddress(const Occurrence &o, Match::Address::Side side) {
  bool src = side == Match::Address::Side::Source;
  std::vector<Match> &list = src ? p_.srcs : p_.dsts;
  once(o, !list.empty(), src ? "-s" : "-d");
  list = parseAddressList(o.name, o.value(), side, o.negated, ctx_.family);
  (src ? p_.srcWord : p_.dstWord) = &o.value();
}

void CommandWalker::onProtocol(const Occurrence &o) {
  const Word &v = o.value();
  once(o, p_.protoWord, "-p");
  p_.protoWord = &v;
  p_.protoNegated = o.negated;
  p_.protoNumber = parseProtocol(o.name, v);
  if (p_.protoNumber == 0 && o.negated)
    failAt(v, "rule would never match protocol (`! -p " + v.text + "')");
  // -p all (0) checks nothing in ip_packet_match(); in ip6_packet_match()
  // any -p walks the extension headers, which can fail (hotdrop).
  if (p_.protoNumber != 0 || ctx_.family == ir::Family::V6)
    p_.proto = Match(Match::Protocol{p_.protoNumber}, o.negated);
}

void CommandWalker::onInIface(const Occurrence &o) {
  once(o, p_.iif.has_value(), "-i");
  p_.iif = interfaceMatch(o, false);
}

/// -o: the same patterns as -i, matched against the routing decision's
/// egress device.
void CommandWalker::onOutIface(const Occurrence &o) {
  once(o, p_.oif.has_value(), "--out-interface");
  p_.oifWord = o.word;
  p_.oif = interfaceMatch(o, true);
}

/// -i or -o's pattern with its bit in the program's interface table.
Match CommandWalker::interfaceMatch(const Occurrence &o, bool out) {
  const Word &v = o.value();
  Match::Iface i{parseInterface(o.name, v), 0, out};
  int bit = prog_.ifaceBit(i.pattern);
  if (bit < 0)
    failAt(v, "more than 64 distinct -i/-o interface patterns in one program");
  i.bit = static_cast<unsigned>(bit);
  return Match(std::move(i), o.negated);
}

/// -j: in hand-over mode a target other than the standard ones and the user
/// chains is loaded to read its options by shape.
void CommandWalker::onJump(const Occurrence &o) {
  const Word &v = o.value();
  once(o, p_.target || p_.gotoChain, "-j/-g");
  p_.target = &v;
  const std::string &t = v.text;
  // REJECT and LOG are read in both modes (rejectVerdict(), logVerdict()).
  bool standard = t == "ACCEPT" || t == "DROP" || t == "RETURN" ||
                  t == "REJECT" || t == "LOG";
  for (const ir::Chain &c : prog_.chains)
    standard = standard || (c.user && c.family == ctx_.family && c.name == t);
  if (ctx_.handover && !standard) {
    p_.targetState = loadModule(*opaqueTarget(t), v, ctx_.family);
    if (readsOptionsByShape(*p_.targetState->spec))
      p_.shapeTail = p_.targetState.get();
  }
}

/// LOG's options; each once, as libxt_LOG's xt_option_entry table says
/// (XTOPT_PUT options and flags alike).
void CommandWalker::onLogOption(const Occurrence &o) {
  const std::string name(o.spec.base->name);
  auto once = [&](bool already) {
    if (already)
      failAt(*o.word, "LOG: option \"--" + name + "\" can only be used once");
  };
  switch (o.spec.base->id) {
  case OptId::LogLevel:
    once(p_.logLevel != nullptr);
    p_.logLevel = &o.value();
    return;
  case OptId::LogPrefix:
    once(p_.logPrefix != nullptr);
    p_.logPrefix = &o.value();
    return;
  default: {
    uint8_t bit = logFlagBit(name);
    once((p_.logFlags & bit) != 0);
    p_.logFlags |= bit;
    if (bit == XT_LOG_UID)
      p_.logUid = o.word;
  }
  }
}

void CommandWalker::onGoto(const Occurrence &o) {
  once(o, p_.target || p_.gotoChain, "-j/-g");
  p_.gotoChain = &o.value();
}

/// -m NAME: a module of Matches.h; in hand-over mode an unknown one is
/// loaded to read its options by shape.
void CommandWalker::onMatch(const Occurrence &o) {
  const Word &v = o.value();
  const ModuleSpec *m = findModule(v.text);
  // The kernel's sets change under a hand-over program (fail2ban adds to
  // them): XDP tests a copy only when the user gave one (--sets).
  if (m && v.text == "set" && ctx_.handover && !prog_.setsGiven)
    m = nullptr;
  if (!m && ctx_.handover) {
    m = opaqueModule(v.text);
    ModuleState &st = load(*m, v);
    p_.shapeTail = readsOptionsByShape(*m) ? &st : nullptr;
    return;
  }
  if (!m && (v.text == "conntrack" || v.text == "state"))
    failAt(v, "match `" + v.text +
                  "' needs the kernel's connection "
                  "tracking: compile with --pass-unsupported and keep the same "
                  "ruleset installed in the kernel (docs/handover.md)");
  if (!m)
    failAt(v, "match `" + v.text + "' is not supported");
  if (!moduleFits(*m, ctx_.family))
    failAt(v, "match `" + v.text + "' is not available for " +
                  (ctx_.family == ir::Family::V6 ? "ip6tables" : "iptables") +
                  " rules" +
                  (ctx_.family == ir::Family::V6 ? "" : " (it is ip6tables')"));
  load(*m, v);
}

void CommandWalker::onFragment(const Occurrence &o) {
  if (ctx_.family == ir::Family::V6)
    failAt(*o.word, "ip6tables has no -f (its fragment match is -m frag, not "
                    "supported yet)");
  once(o, p_.frag.has_value(), "-f");
  p_.frag = Match(Match::Fragment{}, o.negated);
}

void CommandWalker::onToDestination(const Occurrence &o) {
  const Word &v = o.value();
  if (p_.natTo)
    failAt(*o.word, "multiple --to-destination are not supported (kernels "
                    "since 2.6.11 take one)");
  p_.natTo = &v;
  bool hasAddr = false;
  parseNatTo(o.name, v, p_.nat, hasAddr, ctx_.family);
  if (!hasAddr)
    failAt(v, "--to-destination without an address (only a new port) is "
              "not supported yet");
}

// --- after the last word ----------------------------------------------------

void CommandWalker::finish() {
  if (invert_)
    failAt(*invert_, "`!' at the end of the rule negates nothing");
  checkAddressLists();
  if (!p_.commandWord) {
    if (words_.empty())
      throw Diagnostic(ir::SourcePos{"<command line>", 0, 0, -1},
                       "no rule given: write an iptables rule such as "
                       "`-A INPUT -p udp --dport 1234 -j DROP'");
    failAt(words_.front(), "no command given: the rule needs `-A CHAIN'");
  }
  p_.hasMatches = !p_.srcs.empty() || !p_.dsts.empty() || p_.proto || p_.iif ||
                  p_.frag || !p_.modules.empty() || p_.oif;
  if (p_.oif && p_.chain &&
      (p_.chain->text == "INPUT" || p_.chain->text == "PREROUTING"))
    failAt(*p_.oifWord, "Can't use --out-interface with " + p_.chain->text);
  applyCommand(prog_, ctx_, p_, expandRules());
}

/// iptables: a list on either side forbids `!' on both (IPT_INV_SRCIP or
/// IPT_INV_DSTIP with more than one address of either).
void CommandWalker::checkAddressLists() const {
  bool neg = (!p_.srcs.empty() && p_.srcs[0].negated) ||
             (!p_.dsts.empty() && p_.dsts[0].negated);
  const Word *list = p_.srcs.size() > 1   ? p_.srcWord
                     : p_.dsts.size() > 1 ? p_.dstWord
                                          : nullptr;
  if (neg && list)
    failAt(*list,
           "! not allowed with multiple source or destination IP addresses");
}

/// The rules the command stands for: one per combination of source and
/// destination address, each with the matches in ip_packet_match() order
/// and then the modules'.
std::vector<ir::Rule> CommandWalker::expandRules() {
  ir::Rule proto;
  proto.pos = words_.front().pos;
  proto.text = joinWords(words_);
  std::vector<Match> tail; // ip_packet_match() order after the addresses
  // ip_packet_match() checks -o after -i.
  for (auto *m : {&p_.iif, &p_.oif, &p_.proto, &p_.frag})
    if (*m)
      tail.push_back(**m);
  RuleFacts facts{p_.protoNumber, p_.protoNegated, ctx_.family, &prog_};
  for (const auto &m : p_.modules)
    m->finish(facts, tail, proto.comments);

  std::vector<ir::Rule> rules;
  std::vector<std::optional<Match>> srcs(p_.srcs.begin(), p_.srcs.end());
  std::vector<std::optional<Match>> dsts(p_.dsts.begin(), p_.dsts.end());
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
  return rules;
}

} // namespace

void parseCommand(const std::vector<Word> &words, ir::Program &prog,
                  const CommandContext &ctx) {
  CommandWalker(words, prog, ctx).run();
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
    bool tcpUdp =
        p.protoWord && !p.protoNegated &&
        (p.protoNumber == IPPROTO_TCP || p.protoNumber == IPPROTO_UDP);
    (void)ctx;
    if (!tcpUdp)
      failAt(*p.natTo,
             "a port in --to-destination needs `-p tcp' or `-p udp' "
             "(iptables also allows sctp and dccp, which rule2xdp does "
             "not translate yet)");
  }
}

/// Where a command's rules go: the table, and which chain of it.
struct ChainPlace {
  ir::Table table;
  const Word &chainWord;
  std::string tname;
  std::optional<ir::Hook> hook; ///< a built-in chain received packets see
  bool egress = false;          ///< a built-in chain they never see
  /// nat INPUT and POSTROUTING: built in, seen by received packets, but
  /// only for source translation, which rule2xdp does not do yet.
  bool natSource = false;
  ir::Chain *user = nullptr;
  const std::string &name() const { return chainWord.text; }
};

ir::Table commandTable(const CommandContext &ctx, const Parsed &p) {
  if (p.table && ctx.fileTable)
    failAt(*p.table, "-t cannot be used inside a ruleset file: the table is "
                     "the enclosing `*table' section");
  if (ctx.fileTable)
    return *ctx.fileTable;
  if (p.table)
    return parseTableName(*p.table);
  return ir::Table::Filter;
}

/// -N CHAIN.
void newChain(ir::Program &prog, const CommandContext &ctx, ir::Table table,
              const Word &chainWord) {
  const std::string &c = chainWord.text;
  if (builtinName(table, c) || c == "ACCEPT" || c == "DROP" || c == "RETURN")
    failAt(chainWord, "chain `" + c + "' is built in; -N creates user chains");
  if (c.size() > 28 || c[0] == '-' || c[0] == '!')
    failAt(chainWord, "invalid chain name `" + c + "'");
  if (prog.userChain(ctx.family, table, c))
    failAt(chainWord, "chain `" + c + "' already exists in table `" +
                          ir::tableName(table) + "'");
  ir::Chain uc;
  uc.family = ctx.family;
  uc.table = table;
  uc.hook = ir::Hook::Prerouting;
  uc.user = true;
  uc.name = c;
  uc.pos = chainWord.pos;
  prog.chains.push_back(std::move(uc));
}

ChainPlace findChain(ir::Program &prog, const CommandContext &ctx,
                     ir::Table table, const Word &chainWord) {
  const std::string &c = chainWord.text;
  ChainPlace at{table,
                chainWord,
                ir::tableName(table),
                ingressHook(table, c),
                egressOnly(table, c),
                table == ir::Table::Nat && (c == "INPUT" || c == "POSTROUTING"),
                nullptr};
  if (!at.hook && !at.egress && !at.natSource)
    at.user = prog.userChain(ctx.family, table, c);
  if (!at.hook && !at.egress && !at.user && !at.natSource)
    failAt(chainWord,
           "chain `" + c + "' does not exist in table `" + at.tname + "'");
  return at;
}

/// -P CHAIN POLICY.
void setPolicy(ir::Program &prog, const CommandContext &ctx,
               const ChainPlace &at, const Parsed &p) {
  const std::string &pol = p.policy->text;
  if (at.user)
    failAt(at.chainWord, "a user chain has no policy (`" + at.name() + "')");
  if (pol != "ACCEPT" && pol != "DROP")
    failAt(*p.policy, "policy `" + pol + "' is not ACCEPT or DROP");
  if (at.table == ir::Table::Nat && pol == "DROP")
    failAt(*p.policy, kNatNoDrop);
  // The only nat policy is ACCEPT, which translates nothing: the chain
  // exists for received packets only once it has rules.
  if (at.natSource || at.table == ir::Table::Nat)
    return;
  if (at.hook)
    prog.chain(ctx.family, at.table, *at.hook).policy =
        pol == "DROP" ? ir::Verdict::Drop : ir::Verdict::Accept;
  // An egress chain's policy never applies to received packets, but it
  // does to the RST a tcp-reset REJECT sends (ip_local_out()).
  if (at.egress && pol == "DROP" && prog.egressFilter.empty())
    prog.egressFilter = at.chainWord.pos.file + ":" +
                        std::to_string(at.chainWord.pos.line) + ": policy " +
                        at.name() + " DROP";
}

/// --reject-with's types in libipt_REJECT's and libip6t_REJECT's table order
/// (a value is looked up as a case-insensitive prefix of a name or an alias,
/// the first row wins), with enum ipt_reject_with / ip6t_reject_with.
struct RejectType {
  const char *name, *alias;
  unsigned with;
};
constexpr unsigned kIptTcpReset = 7, kIp6tTcpReset = 6;
constexpr RejectType kRejectTypes4[] = {
    {"icmp-net-unreachable", "net-unreach", 0},
    {"icmp-host-unreachable", "host-unreach", 1},
    {"icmp-proto-unreachable", "proto-unreach", 2},
    {"icmp-port-unreachable", "port-unreach", 3},
    {"icmp-net-prohibited", "net-prohib", 5},
    {"icmp-host-prohibited", "host-prohib", 6},
    {"tcp-reset", "tcp-rst", kIptTcpReset},
    {"icmp-admin-prohibited", "admin-prohib", 8},
};
constexpr RejectType kRejectTypes6[] = {
    {"icmp6-no-route", "no-route", 0},
    {"icmp6-adm-prohibited", "adm-prohibited", 1},
    {"icmp6-addr-unreachable", "addr-unreach", 3},
    {"icmp6-port-unreachable", "port-unreach", 4},
    {"tcp-reset", "tcp-reset", kIp6tTcpReset},
    {"icmp6-policy-fail", "policy-fail", 7},
    {"icmp6-reject-route", "reject-route", 8},
};

/// -j REJECT [--reject-with TYPE]: the type as REJECT_parse() reads it, the
/// checks of the kernel's reject_tg_check() (ipt_REJECT.c, ip6t_REJECT.c)
/// and x_tables (the filter table only), and what XDP can do with it:
/// tcp-reset in hand-over mode is a Reject verdict (the RST built in XDP
/// where provably the kernel's); every ICMP type is handed over, because
/// the kernel rate-limits the ICMP errors it sends (docs/handover.md,
/// "REJECT"); standalone mode refuses both.
void rejectVerdict(ir::Rule &rule, const CommandContext &ctx,
                   const ChainPlace &at, const Parsed &p) {
  bool v6 = ctx.family == ir::Family::V6;
  const RejectType *type = v6 ? &kRejectTypes6[3] : &kRejectTypes4[3];
  if (p.rejectWith) {
    const std::string &v = p.rejectWith->text;
    type = nullptr;
    auto prefixOf = [&](const char *n) {
      return v.size() <= std::strlen(n) &&
             strncasecmp(n, v.c_str(), v.size()) == 0;
    };
    for (const RejectType &t : v6 ? std::span<const RejectType>(kRejectTypes6)
                                  : std::span<const RejectType>(kRejectTypes4))
      if (!type && (prefixOf(t.name) || prefixOf(t.alias)))
        type = &t;
    if (!type)
      failAt(*p.rejectWith, "unknown reject type \"" + v + "\"");
  }
  if (at.table != ir::Table::Filter)
    failAt(*p.target, "target REJECT is only valid in the filter table, not `" +
                          at.tname + "'");
  rule.reject = {type->with, type->name,
                 type->with == (v6 ? kIp6tTcpReset : kIptTcpReset)};
  if (rule.reject.tcpReset &&
      !(p.protoWord && !p.protoNegated && p.protoNumber == IPPROTO_TCP))
    failAt(p.rejectWith ? *p.rejectWith : *p.target,
           "REJECT --reject-with tcp-reset needs `-p tcp' (not negated): the "
           "kernel refuses it for other protocols (TCP_RESET invalid for "
           "non-tcp)");
  if (!ctx.handover)
    failAt(*p.target,
           rule.reject.tcpReset
               ? std::string(
                     "REJECT --reject-with tcp-reset needs hand-over mode "
                     "(--pass-unsupported): XDP sends the kernel's RST only "
                     "for the packets where it can prove it is the kernel's "
                     "(reply route through the receiving device, no "
                     "conntrack entry, ...) and must give the others to the "
                     "kernel")
               : "REJECT --reject-with " + rule.reject.name + ": " +
                     targetReason("REJECT") +
                     "; hand-over mode (--pass-unsupported) hands it to the "
                     "kernel");
  if (rule.reject.tcpReset) {
    rule.verdict = ir::Verdict::Reject;
    return;
  }
  rule.verdict = ir::Verdict::Handover;
  rule.target = "REJECT";
  rule.handoverReason = targetReason("REJECT");
}

/// --log-level as libxtables' XTTYPE_SYSLOGLEVEL reads it: a number
/// (xtables_strtoui, 0..7), else one of its names (compared exactly).
uint8_t parseLogLevel(const Word &w) {
  if (std::optional<uint64_t> n = xtablesStrtoul(w.text, 0, 7))
    return static_cast<uint8_t>(*n);
  static constexpr std::pair<std::string_view, uint8_t> kNames[] = {
      {"emerg", 0},  {"alert", 1}, {"crit", 2},  {"error", 3}, {"warning", 4},
      {"notice", 5}, {"info", 6},  {"debug", 7}, {"panic", 0}};
  for (const auto &[name, level] : kNames)
    if (w.text == name)
      return level;
  failAt(w, "log level \"" + w.text + "\" unknown");
}

/// -j LOG: its options as libxt_LOG reads them (a prefix of at least one
/// byte and no newline, kept to 29 bytes as struct xt_log_info holds it).
/// XDP carries LOG out (docs/handover.md, "LOG") except --log-uid (the
/// kernel prints the local socket's owner, which XDP has no way to know)
/// and a LOG in the nat table (the kernel runs nat chains for a
/// connection's first packet only): those are handed over, or refused in
/// standalone mode.
void logVerdict(ir::Rule &rule, const CommandContext &ctx, const ChainPlace &at,
                const Parsed &p) {
  if (p.logLevel)
    rule.log.level = parseLogLevel(*p.logLevel);
  if (p.logPrefix) {
    const std::string &v = p.logPrefix->text;
    if (v.empty())
      failAt(*p.logPrefix, "--log-prefix: argument must have a minimum "
                           "length of 1 characters");
    if (v.find('\n') != std::string::npos)
      failAt(*p.logPrefix, "newlines not allowed in --log-prefix");
    rule.log.prefix = v.substr(0, sizeof(xt_log_info::prefix) - 1);
  }
  rule.log.flags = p.logFlags;
  std::string why;
  if (p.logUid)
    why = "LOG --log-uid: the kernel prints the UID and GID of the packet's "
          "local socket, which XDP does not have";
  else if (at.table == ir::Table::Nat)
    why = "LOG in the nat table: the kernel runs nat chains only for a "
          "connection's first packet, which XDP cannot tell";
  if (why.empty()) {
    rule.verdict = ir::Verdict::Log;
    return;
  }
  if (!ctx.handover)
    failAt(p.logUid ? *p.logUid : *p.target,
           why + "; hand-over mode (--pass-unsupported) hands it to the "
                 "kernel");
  rule.verdict = ir::Verdict::Handover;
  rule.target = "LOG";
  rule.handoverReason = why;
}

/// -A / -I: the verdict, the same for every rule the address lists make.
ir::Rule ruleVerdict(const ir::Program &prog, const CommandContext &ctx,
                     const ChainPlace &at, const Parsed &p) {
  ir::Rule rule;
  if (p.gotoChain) {
    const std::string &g = p.gotoChain->text;
    if (!prog.userChain(ctx.family, at.table, g))
      failAt(*p.gotoChain, "-g needs a user chain of table `" + at.tname +
                               "'; `" + g + "' is not one");
    rule.verdict = ir::Verdict::Goto;
    rule.jumpTarget = g;
    return rule;
  }
  if (!p.target) {
    rule.verdict = ir::Verdict::Continue;
    return rule;
  }
  const std::string &t = p.target->text;
  if (t == "ACCEPT")
    rule.verdict = ir::Verdict::Accept;
  else if (t == "DROP" && at.table == ir::Table::Nat)
    failAt(*p.target, kNatNoDrop);
  else if (t == "DROP")
    rule.verdict = ir::Verdict::Drop;
  else if (t == "REJECT")
    rejectVerdict(rule, ctx, at, p);
  else if (t == "LOG")
    logVerdict(rule, ctx, at, p);
  else if (p.targetState) {
    // Hand-over mode: a target XDP cannot carry out.
    if (t == "DNAT" && at.table != ir::Table::Nat)
      failAt(*p.target, "target DNAT is only valid in the nat table, not `" +
                            at.tname + "'");
    rule.verdict = ir::Verdict::Handover;
    rule.target = t;
    rule.handoverReason = targetReason(t);
  } else if (t == "DNAT") {
    checkDnat(*p.target, at.table, at.name(), ctx, p);
    rule.verdict = ir::Verdict::Dnat;
    rule.nat = p.nat;
  } else if (t == "RETURN")
    rule.verdict = ir::Verdict::Return;
  else if (prog.userChain(ctx.family, at.table, t)) {
    rule.verdict = ir::Verdict::Jump;
    rule.jumpTarget = t;
  } else if (builtinName(at.table, t))
    failAt(*p.target, "cannot jump to built-in chain `" + t + "'");
  else
    failTarget(*p.target);
  return rule;
}

/// Rules in a chain received packets never see (or see only after the
/// filter decided): listed as the kernel's in hand-over mode, ignored with
/// a warning in a ruleset file, refused on the command line. True when the
/// rules are dealt with.
bool leftToKernel(ir::Program &prog, const CommandContext &ctx,
                  const ChainPlace &at, const ir::Rule &rule,
                  const std::vector<ir::Rule> &newRules) {
  const std::string &c = at.name();
  if (ctx.handover && (at.egress || at.natSource)) {
    if (at.table == ir::Table::Nat && rule.verdict == ir::Verdict::Handover &&
        rule.target != "DNAT" && rule.target != "REDIRECT") {
      std::string &n = prog.kernelSourceNat[static_cast<size_t>(ctx.family)];
      if (n.empty())
        n = at.chainWord.pos.file + ":" +
            std::to_string(at.chainWord.pos.line) + ": " +
            newRules.front().text;
    }
    for (const ir::Rule &r : newRules)
      prog.kernelOnly.push_back(
          {r.pos, r.text,
           at.natSource ? "nat " + c + " runs after the filter decided"
                        : c + " never sees received packets"});
    return true;
  }
  if (!at.egress)
    return false;
  if (!ctx.fileTable)
    failAt(at.chainWord, "chain " + c +
                             " never sees received packets; rule2xdp compiles "
                             "the ingress path (XDP)");
  if (ctx.warnings)
    ctx.warnings->push_back(
        {at.chainWord.pos,
         "rule in " + c + " ignored: " + c +
             " never sees received packets, and XDP runs on ingress",
         static_cast<unsigned>(c.size())});
  return true;
}

/// The rules of the chain a command names.
std::vector<ir::Rule> &chainRules(ir::Program &prog, const CommandContext &ctx,
                                  const ChainPlace &at) {
  return at.user ? at.user->rules
                 : prog.chain(ctx.family, at.table, *at.hook).rules;
}

/// RULENUM (parse_rulenumber(): xtables_strtoui, 1 to INT_MAX), at most
/// `most`; `what` names the index in the error, as iptables does.
size_t ruleNumber(const Word &w, size_t most, const ChainPlace &at,
                  const char *what) {
  std::optional<uint64_t> num = xtablesStrtoul(w.text, 1, INT_MAX);
  if (!num)
    failAt(w, "invalid rule number `" + w.text + "'");
  if (*num > most)
    failAt(w, std::string("index of ") + what + " too big (chain `" +
                  at.name() + "' has " + std::to_string(most) + " rules)");
  return *num;
}

/// The command's target on each of its (expanded) rules.
void setTarget(std::vector<ir::Rule> &newRules, const ir::Rule &rule) {
  for (ir::Rule &r : newRules) {
    r.verdict = rule.verdict;
    r.jumpTarget = rule.jumpTarget;
    r.nat = rule.nat;
    r.target = rule.target;
    r.handoverReason = rule.handoverReason;
    r.reject = rule.reject;
    r.log = rule.log;
  }
}

/// -A appends; -I inserts at RULENUM (1 when not given).
void insertRules(ir::Program &prog, const CommandContext &ctx,
                 const ChainPlace &at, const Parsed &p, const ir::Rule &rule,
                 std::vector<ir::Rule> newRules) {
  std::vector<ir::Rule> &rules = chainRules(prog, ctx, at);
  size_t pos = rules.size();
  if (p.command == OptId::Insert)
    pos = p.insertAt
              ? ruleNumber(*p.insertAt, rules.size() + 1, at, "insertion") - 1
              : 0;
  setTarget(newRules, rule);
  if (ctx.appends && rules.size() + newRules.size() > rules.capacity())
    if (auto n = ctx.appends->find(at.name());
        n != ctx.appends->end() && n->second > rules.size() + newRules.size())
      rules.reserve(n->second);
  rules.insert(rules.begin() + static_cast<long>(pos),
               std::make_move_iterator(newRules.begin()),
               std::make_move_iterator(newRules.end()));
}

/// What `iptables -D CHAIN RULE` compares: the matches, the comments and
/// the target.
std::string sameness(const ir::Program &prog, const ir::Rule &r, bool v6) {
  std::string s = ir::printRule(prog, r, v6);
  for (const std::string &c : r.comments)
    s += "comment " + c + "\n";
  return s;
}

/// -D CHAIN RULENUM deletes that rule; -D CHAIN RULE the first rule equal
/// to each rule RULE expands to (several -s/-d addresses), as iptables
/// deletes them one by one; -R CHAIN RULENUM RULE replaces one rule.
void deleteOrReplace(ir::Program &prog, const CommandContext &ctx,
                     const ChainPlace &at, const Parsed &p,
                     const ir::Rule &rule, std::vector<ir::Rule> newRules) {
  std::vector<ir::Rule> &rules = chainRules(prog, ctx, at);
  if (p.command == OptId::Replace) {
    size_t num = ruleNumber(*p.insertAt, rules.size(), at, "replacement");
    if (newRules.size() != 1)
      failAt(*p.commandWord,
             "Replacement rule does not specify a unique address (the "
             "addresses make " +
                 std::to_string(newRules.size()) + " rules)");
    setTarget(newRules, rule);
    rules[num - 1] = std::move(newRules.front());
    return;
  }
  if (p.insertAt) {
    if (p.hasMatches || p.target || p.gotoChain)
      failAt(*p.commandWord, "-D CHAIN RULENUM takes no matches or target");
    size_t num = ruleNumber(*p.insertAt, rules.size(), at, "deletion");
    rules.erase(rules.begin() + static_cast<long>(num - 1));
    return;
  }
  setTarget(newRules, rule);
  bool v6 = ctx.family == ir::Family::V6;
  for (const ir::Rule &r : newRules) {
    std::string want = sameness(prog, r, v6);
    auto it = std::find_if(rules.begin(), rules.end(), [&](const ir::Rule &x) {
      return sameness(prog, x, v6) == want;
    });
    if (it == rules.end())
      failAt(*p.commandWord, "Bad rule (does a matching rule exist in that "
                             "chain?)");
    rules.erase(it);
  }
}

/// The command's effect on the program: a dispatcher over -N, -P and
/// -A/-I.
void applyCommand(ir::Program &prog, const CommandContext &ctx, Parsed &p,
                  std::vector<ir::Rule> newRules) {
  ir::Table table = commandTable(ctx, p);
  if ((p.command == OptId::NewChain || p.command == OptId::Policy) &&
      (p.hasMatches || p.target || p.gotoChain))
    failAt(*p.commandWord, "`" + p.commandWord->text +
                               "' takes a chain name only, no matches or "
                               "target");
  if (p.command == OptId::NewChain)
    return newChain(prog, ctx, table, *p.chain);
  ChainPlace at = findChain(prog, ctx, table, *p.chain);
  if (p.command == OptId::Policy)
    return setPolicy(prog, ctx, at, p);
  ir::Rule rule = ruleVerdict(prog, ctx, at, p);
  bool edit = p.command == OptId::Delete || p.command == OptId::Replace;
  if (edit && ctx.handover && (at.egress || at.natSource))
    failAt(*p.commandWord, "`" + p.commandWord->text + "' in " + at.name() +
                               ", which the kernel alone runs, is not "
                               "supported in hand-over mode");
  if (leftToKernel(prog, ctx, at, rule, newRules))
    return;
  if (at.natSource)
    failAt(at.chainWord, "nat " + at.name() +
                             " rules (SNAT, MASQUERADE) are not supported "
                             "yet: rule2xdp translates destinations in "
                             "PREROUTING only");
  if (p.command == OptId::Delete || p.command == OptId::Replace)
    return deleteOrReplace(prog, ctx, at, p, rule, std::move(newRules));
  insertRules(prog, ctx, at, p, rule, std::move(newRules));
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

ir::Match::Address parseNetwork(const Word &opt, const Word &val,
                                ir::Family family) {
  using Side = Match::Address::Side;
  return family == ir::Family::V6 ? parseAddress6(opt, val, Side::Source)
                                  : parseAddress(opt, val, Side::Source);
}

uint8_t parseProtocolValue(const Word &opt, const Word &val) {
  return parseProtocol(opt, val);
}

} // namespace r2x::frontend
