//===- compiler/frontend/Matches.cpp - x_tables match modules
//---------------===//
//
/// \file
/// One class per module; the table at the end binds names and options to
/// them. Meanings and listing texts follow the kernel's xt_* matches and
/// iptables 1.8.9's libxt_* printers (checked against `iptables -vxnL`).
//===----------------------------------------------------------------------===//
#include "compiler/frontend/Matches.h"

#include "compiler/frontend/Lex.h"

#include "grammar/iptables.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <netdb.h>
#include <netinet/in.h>
#include <optional>
#include <span>
#include <strings.h>

namespace r2x::frontend {

using ir::Match;
namespace pegtl = tao::pegtl;

namespace {

/// A number as xtables' option parser (XTTYPE_UINT*) and libxt_tcp read
/// it: xtables_strtoui, 0 to `max`.
uint64_t number(const Word &opt, const Word &val, const std::string &text,
                uint64_t max, size_t offset = 0) {
  std::optional<uint64_t> v = xtablesStrtoul(text, 0, max);
  if (!v)
    failAt(val,
           "invalid value `" + text + "' for " + opt.text + " (0 to " +
               std::to_string(max) + ")",
           offset, text.size());
  return *v;
}

std::string hex2(uint64_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02llx",
                static_cast<unsigned long long>(v));
  return buf;
}

std::string hex2upper(uint64_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02llX",
                static_cast<unsigned long long>(v));
  return buf;
}

Match fieldMatch(ir::Field f, uint64_t mask, uint64_t lo, uint64_t hi,
                 bool negated, std::string listing) {
  return Match(Match::FieldRange{f, mask, lo, hi}, negated, std::move(listing));
}

void requireProto(const Word &where, const RuleFacts &facts,
                  std::initializer_list<uint8_t> protos,
                  const std::string &what) {
  bool ok = !facts.protoNegated && std::find(protos.begin(), protos.end(),
                                             facts.proto) != protos.end();
  if (!ok)
    failAt(where, what + (facts.protoNegated ? " (not negated)" : ""));
}

// --- ports
// ---------------------------------------------------------------------

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

} // namespace

uint16_t parsePort(const Word &opt, const Word &val, const std::string &text,
                   size_t offset, const char *proto) {
  if (std::isdigit(static_cast<unsigned char>(text[0]))) {
    std::optional<uint64_t> v = xtablesStrtoul(text, 0, 65535);
    if (!v)
      failAt(val,
             "invalid port `" + text + "' in " + opt.text +
                 " (a port is 0 to 65535)",
             offset, text.size());
    return static_cast<uint16_t>(*v);
  }
  // iptables resolves service names with getservbyname for the -p protocol.
  if (std::optional<uint16_t> port = xtablesParsePort(text, proto))
    return *port;
  failAt(val, "unknown service `" + text + "' for " + proto + " in " + opt.text,
         offset, text.size());
}

ir::PortRange parsePortRange(const Word &opt, const Word &val,
                             const char *proto) {
  if (val.text == "!")
    failAt(val, "`!' must come before the option it negates: write `! " +
                    opt.text + " PORT'");
  PortState s;
  pegtl::memory_input in(val.text, "");
  if (val.text.empty() || !pegtl::parse<grammar::port_range, PortAction>(in, s))
    failAt(val, "invalid port or range `" + val.text + "' in " + opt.text);
  ir::PortRange r;
  r.lo = s.lo.empty() ? 0 : parsePort(opt, val, s.lo, s.loOff, proto);
  if (!s.sep)
    r.hi = r.lo;
  else
    r.hi = s.hi.empty() ? 0xffff : parsePort(opt, val, s.hi, s.hiOff, proto);
  return r;
}

/// libxt_udp's --sport/--dport (XTTYPE_PORTRC): libxtables'
/// xtopt_parse_mport() splits at `:' (strsep, at most two parts, an empty
/// part keeps 0 or 65535) and reads each part with xtables_getportbyname(),
/// i.e. getaddrinfo(): decimal, blanks and `+' allowed, modulo 65536, or a
/// service name of any protocol. So `010' is 10 here, but 8 in a tcp match
/// (xtables_parse_port, base 0), and `0x10' is refused. One part means lo =
/// hi (udp_parse). A reversed range is kept, as iptables 1.8.9 keeps it:
/// the kernel's port_match() then matches nothing.
ir::PortRange parseUdpPortRange(const Word &opt, const Word &val) {
  if (val.text == "!")
    failAt(val, "`!' must come before the option it negates: write `! " +
                    opt.text + " PORT'");
  std::vector<Piece> parts = splitList(val.text, ':');
  if (parts.size() > 2)
    failAt(val,
           "udp: Too many components for option \"" + opt.text + "\" (max: 2)");
  uint16_t ends[2] = {0, 0xffff};
  for (size_t k = 0; k < parts.size(); ++k) {
    if (parts[k].text.empty())
      continue;
    std::optional<uint16_t> port = xtablesGetPortByName(parts[k].text);
    if (!port)
      failAt(val,
             "Port \"" + parts[k].text +
                 "\" does not resolve to anything (in " + opt.text + ")",
             parts[k].offset, parts[k].text.size());
    ends[k] = *port;
  }
  ir::PortRange r;
  r.lo = ends[0];
  r.hi = parts.size() == 1 ? ends[0] : ends[1];
  return r;
}

namespace {

std::string portsText(const char *one, const char *many,
                      const ir::PortRange &r) {
  std::string neg = r.negated ? "!" : "";
  if (r.lo == r.hi)
    return std::string(one) + ":" + neg + std::to_string(r.lo);
  return std::string(many) + ":" + neg + std::to_string(r.lo) + ":" +
         std::to_string(r.hi);
}

// --- tcp, udp (xt_tcpudp) ----------------------------------------------------

enum TcpUdpOpt { SPort, DPort, Flags, Syn, TcpOption };

/// "SYN,ACK" -> bits, as libxt_tcp's parse_tcp_flag(): strtok() pieces
/// (empty ones vanish: "SYN,,ACK" is SYN,ACK), names case-insensitive.
uint8_t tcpFlagList(const Word &opt, const Word &val) {
  static const std::pair<const char *, uint8_t> names[] = {
      {"FIN", 0x01}, {"SYN", 0x02}, {"RST", 0x04}, {"PSH", 0x08},
      {"ACK", 0x10}, {"URG", 0x20}, {"ALL", 0x3f}, {"NONE", 0x00}};
  uint8_t bits = 0;
  for (const Piece &f : splitTokens(val.text, ',')) {
    bool known = false;
    for (const auto &[n, b] : names)
      if (strcasecmp(n, f.text.c_str()) == 0) {
        bits |= b;
        known = true;
      }
    if (!known)
      failAt(val, "unknown TCP flag `" + f.text + "' in " + opt.text, f.offset,
             f.text.size());
  }
  return bits;
}

class TcpUdpModule : public ModuleState {
public:
  explicit TcpUdpModule(uint8_t proto) : proto_(proto) {}
  void option(const ModuleOption &o, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    const char *name = proto_ == IPPROTO_TCP ? "tcp" : "udp";
    switch (o.id) {
    case SPort:
    case DPort: {
      std::optional<ir::PortRange> &slot = o.id == SPort ? sport_ : dport_;
      if (slot)
        failAt(w, std::string(name) + ": option \"--" +
                      (o.id == SPort ? "source-port" : "destination-port") +
                      "\" can only be used once");
      if (proto_ == IPPROTO_UDP) {
        slot = parseUdpPortRange(w, *args[0]);
      } else {
        slot = parsePortRange(w, *args[0], name);
        // libxt_tcp's parse_tcp_ports().
        if (slot->lo > slot->hi)
          failAt(*args[0], "invalid portrange (min > max) `" + args[0]->text +
                               "' in " + w.text);
      }
      slot->negated = negated;
      break;
    }
    case Flags:
    case Syn:
      if (flags_)
        failAt(w, "tcp: only one of --tcp-flags and --syn");
      flags_ = ir::TcpFlags{};
      if (o.id == Syn) {
        flags_->mask = 0x17; // SYN,RST,ACK,FIN
        flags_->comp = 0x02; // SYN
      } else {
        flags_->mask = tcpFlagList(w, *args[0]);
        flags_->comp = tcpFlagList(w, *args[1]);
      }
      flags_->negated = negated;
      break;
    case TcpOption: {
      if (option_)
        failAt(w, "multiple --tcp-option flags not allowed");
      // libxt_tcp: 1 to 255 ("Bad TCP option").
      std::optional<uint64_t> v = xtablesStrtoul(args[0]->text, 1, 255);
      if (!v)
        failAt(*args[0], "invalid TCP option `" + args[0]->text + "' in " +
                             w.text + " (1 to 255)");
      option_ = static_cast<uint8_t>(*v);
      optionNeg_ = negated;
      break;
    }
    }
  }
  void finish(const RuleFacts &facts, std::vector<Match> &out,
              std::vector<std::string> &) override {
    std::string n = proto_ == IPPROTO_TCP ? "tcp" : "udp";
    requireProto(where, facts, {proto_}, n + " match requires `-p " + n + "'");
    Match m(Match::TcpUdp{proto_, sport_, dport_, flags_, option_, optionNeg_});
    m.listing = n;
    if (sport_)
      m.listing += " " + portsText("spt", "spts", *sport_);
    if (dport_)
      m.listing += " " + portsText("dpt", "dpts", *dport_);
    if (flags_)
      m.listing += std::string(" flags:") + (flags_->negated ? "!" : "") +
                   hex2upper(flags_->mask) + "/" + hex2upper(flags_->comp);
    if (option_)
      m.listing += std::string(" option=") + (optionNeg_ ? "!" : "") +
                   std::to_string(option_);
    out.push_back(std::move(m));
  }

private:
  uint8_t proto_;
  std::optional<ir::PortRange> sport_, dport_;
  std::optional<ir::TcpFlags> flags_;
  uint8_t option_ = 0;
  bool optionNeg_ = false;
};

// --- u32 (xt_u32)
// -------------------------------------------------------------

/// libxt_u32's parser: tests `LOCATION=VALUES` joined by `&&`; a location is
/// a number then `&N`, `<<N`, `>>N`, `@N`; values are `N` or `N:M` joined by
/// `,`; numbers as strtoul(base 0) reads them; white space anywhere between
/// tokens. At most 10 location elements, 10 values and 10 tests
/// (XT_U32_MAXSIZE, as libxt_u32 counts them). Messages and their character
/// positions are libxt_u32's. A loop over the characters that hands each
/// to location() or value(), as libxt_u32's state machine does.
class U32Parser {
public:
  U32Parser(const Word &opt, const Word &val)
      : opt_(opt), val_(val), t_(val.text) {}

  std::vector<ir::U32Test> parse() {
    while (true) {
      skipSpace();
      if (i_ >= t_.size())
        return end();
      if (!values_)
        location();
      else
        value();
    }
  }

private:
  [[noreturn]] void err(const std::string &what) const {
    failAt(val_,
           "u32: at char " + std::to_string(i_) + ": " + what + " (in " +
               opt_.text + ")",
           std::min(i_, t_.size()), 1);
  }

  uint32_t number() {
    std::optional<uint32_t> v = strtoulPrefix(t_, i_);
    if (!v)
      err("not a number or out of range");
    return *v;
  }

  void skipSpace() {
    while (i_ < t_.size() && std::isspace(static_cast<unsigned char>(t_[i_])))
      ++i_;
  }

  std::vector<ir::U32Test> end() const {
    if (!values_)
      err("abrupt end of input after location specifier");
    if (tests_.back().ranges.empty())
      err("test ended with no value specified");
    if (tests_.size() > 10)
      err("too many \"&&\"s");
    return tests_;
  }

  /// One element of a location, or the `=' that ends it.
  void location() {
    ir::U32Test &ct = tests_.back();
    if (t_[i_] == '=') {
      if (locs_ == 0)
        err("location spec missing");
      ++i_;
      values_ = true;
      return;
    }
    ir::U32Test::Op op = ir::U32Test::Op::And;
    if (locs_ != 0) {
      op = locationOp();
      ++i_;
    }
    uint32_t n = number();
    if (locs_ == 0)
      ct.start = n;
    else
      ct.ops.push_back({op, n});
    if (++locs_ > 10)
      err("too many operators");
  }

  ir::U32Test::Op locationOp() {
    switch (t_[i_]) {
    case '&':
      return ir::U32Test::Op::And;
    case '<':
      if (i_ + 1 >= t_.size() || t_[++i_] != '<')
        err("a second '<' was expected");
      return ir::U32Test::Op::Shl;
    case '>':
      if (i_ + 1 >= t_.size() || t_[++i_] != '>')
        err("a second '>' was expected");
      return ir::U32Test::Op::Shr;
    case '@':
      return ir::U32Test::Op::At;
    default:
      err("operator expected");
    }
  }

  /// One value or range, or the `&&' that starts the next test.
  void value() {
    ir::U32Test &ct = tests_.back();
    if (t_[i_] == '&') {
      if (i_ + 1 >= t_.size() || t_[++i_] != '&')
        err("a second '&' was expected");
      if (ct.ranges.empty())
        err("value spec missing");
      ++i_;
      tests_.emplace_back();
      values_ = false;
      locs_ = 0;
      return;
    }
    if (!ct.ranges.empty()) {
      if (t_[i_] != ',')
        err("expected \",\" or \"&&\"");
      ++i_;
    }
    uint32_t lo = number(), hi = lo;
    skipSpace();
    if (i_ < t_.size() && t_[i_] == ':') {
      ++i_;
      hi = number();
    }
    ct.ranges.push_back({lo, hi});
    if (ct.ranges.size() > 10)
      err("too many \",\"s");
  }

  const Word &opt_;
  const Word &val_;
  const std::string &t_;
  size_t i_ = 0;
  std::vector<ir::U32Test> tests_ = std::vector<ir::U32Test>(1);
  bool values_ = false; ///< reading values (after '=')
  size_t locs_ = 0;
};

std::vector<ir::U32Test> parseU32(const Word &opt, const Word &val) {
  return U32Parser(opt, val).parse();
}

class U32Module : public ModuleState {
public:
  void option(const ModuleOption &, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    if (m_)
      failAt(w, "u32: only one --u32 per match");
    m_.emplace(Match::U32{parseU32(w, *args[0])}, negated,
               std::string("u32 ") + (negated ? "! " : "") + "\"" +
                   args[0]->text + "\"");
  }
  void finish(const RuleFacts &, std::vector<Match> &out,
              std::vector<std::string> &) override {
    if (!m_)
      failAt(where, "u32: option \"--u32\" must be specified");
    out.push_back(std::move(*m_));
  }

private:
  std::optional<Match> m_;
};

// --- set (xt_set revision 4, libxt_set)
// -------------------------------------------------

enum SetOpt {
  SetMatchSet,
  SetReturnNomatch,
  SetUpdateCounters,
  SetUpdateSubcounters,
  SetPacketsEq, // the counter tests, all refused
  SetPacketsLt,
  SetPacketsGt,
  SetBytesEq,
  SetBytesLt,
  SetBytesGt
};
/// IPSET_DIM_MAX and IPSET_MAXNAMELEN - 1.
constexpr size_t kSetDimMax = 6, kSetNameMax = 31;

/// `-m set --match-set NAME FLAGS`, parsed as set_parse_v4() does; the set
/// is looked up in the sets of `--sets FILE` where iptables asks the kernel
/// (get_set_byname(): the set must exist and have the rule's family).
class SetModule : public ModuleState {
public:
  void option(const ModuleOption &o, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    switch (o.id) {
    case SetMatchSet: {
      if (name_)
        failAt(w, "--match-set can be specified only once");
      const Word &nm = *args[0], &dirs = *args[1];
      if (dirs.text.empty() || dirs.text[0] == '-' || dirs.text[0] == '!')
        failAt(w, "--match-set requires two args.");
      if (nm.text.size() > kSetNameMax)
        failAt(nm, "setname `" + nm.text + "' too long, max " +
                       std::to_string(kSetNameMax) + " characters.");
      name_ = nm;
      negated_ = negated;
      // parse_dirs(): strsep on ',', each part compared with strncmp(.., 3).
      std::vector<Piece> parts = splitList(dirs.text);
      if (parts.size() > kSetDimMax)
        failAt(dirs, "Can't be more src/dst options than " +
                         std::to_string(kSetDimMax) + ".");
      for (const Piece &p : parts) {
        bool src = p.text.compare(0, 3, "src") == 0;
        if (!src && p.text.compare(0, 3, "dst") != 0)
          failAt(dirs,
                 "You must specify (the comma separated list of) 'src' or "
                 "'dst'.",
                 p.offset, p.text.empty() ? 1 : p.text.size());
        src_.push_back(src);
      }
      break;
    }
    case SetReturnNomatch:
      returnNomatch_ = true;
      break;
    case SetUpdateCounters:
      skipCounters_ = skipCounters_ || negated;
      break;
    case SetUpdateSubcounters:
      skipSubcounters_ = skipSubcounters_ || negated;
      break;
    default:
      failAt(w, "set: " + w.text +
                    " is not supported: it reads the set entry's packet and "
                    "byte counters, which XDP does not keep");
    }
  }
  void finish(const RuleFacts &facts, std::vector<Match> &out,
              std::vector<std::string> &) override {
    if (!name_)
      failAt(where, "You must specify `--match-set' with proper arguments");
    const ir::IpSet *set =
        facts.program ? facts.program->findSet(name_->text) : nullptr;
    if (!set)
      failAt(*name_, "Set " + name_->text +
                         " doesn't exist (give the sets with --sets FILE, "
                         "as `ipset save' writes them)");
    if (!set->fits(facts.family))
      failAt(*name_, "The protocol family of set " + name_->text + " is " +
                         (set->family == ir::Family::V4 ? "IPv4" : "IPv6") +
                         ", which is not applicable.");
    Match::Set m;
    m.set = unsigned(set - facts.program->sets.data());
    m.src = src_;
    m.returnNomatch = returnNomatch_;
    // set_print_v4(): what `iptables -vxnL` shows after the addresses.
    std::string listing =
        std::string(negated_ ? "! " : "") + "match-set " + name_->text;
    for (size_t i = 0; i < src_.size(); ++i)
      listing += std::string(i ? "," : " ") + (src_[i] ? "src" : "dst");
    if (returnNomatch_)
      listing += " return-nomatch";
    if (skipCounters_)
      listing += " ! update-counters";
    if (skipSubcounters_)
      listing += " ! update-subcounters";
    out.emplace_back(std::move(m), negated_, listing);
  }

private:
  std::optional<Word> name_;
  std::vector<bool> src_;
  bool negated_ = false, returnNomatch_ = false;
  bool skipCounters_ = false, skipSubcounters_ = false;
};

// --- icmp (xt_icmp in ip_tables)
// -----------------------------------------------

struct IcmpName {
  const char *name;
  uint8_t type, codeLo, codeHi;
};
// libxt_icmp's table (names iptables accepts, in its order).
const IcmpName kIcmpNames[] = {
    {"any", 0xff, 0, 0xff},
    {"echo-reply", 0, 0, 0xff},
    {"destination-unreachable", 3, 0, 0xff},
    {"network-unreachable", 3, 0, 0},
    {"host-unreachable", 3, 1, 1},
    {"protocol-unreachable", 3, 2, 2},
    {"port-unreachable", 3, 3, 3},
    {"fragmentation-needed", 3, 4, 4},
    {"source-route-failed", 3, 5, 5},
    {"network-unknown", 3, 6, 6},
    {"host-unknown", 3, 7, 7},
    {"network-prohibited", 3, 9, 9},
    {"host-prohibited", 3, 10, 10},
    {"TOS-network-unreachable", 3, 11, 11},
    {"TOS-host-unreachable", 3, 12, 12},
    {"communication-prohibited", 3, 13, 13},
    {"host-precedence-violation", 3, 14, 14},
    {"precedence-cutoff", 3, 15, 15},
    {"source-quench", 4, 0, 0xff},
    {"redirect", 5, 0, 0xff},
    {"network-redirect", 5, 0, 0},
    {"host-redirect", 5, 1, 1},
    {"TOS-network-redirect", 5, 2, 2},
    {"TOS-host-redirect", 5, 3, 3},
    {"echo-request", 8, 0, 0xff},
    {"router-advertisement", 9, 0, 0xff},
    {"router-solicitation", 10, 0, 0xff},
    {"time-exceeded", 11, 0, 0xff},
    {"ttl-zero-during-transit", 11, 0, 0},
    {"ttl-zero-during-reassembly", 11, 1, 1},
    {"parameter-problem", 12, 0, 0xff},
    {"ip-header-bad", 12, 0, 0},
    {"required-option-missing", 12, 1, 1},
    {"timestamp-request", 13, 0, 0xff},
    {"timestamp-reply", 14, 0, 0xff},
    {"address-mask-request", 17, 0, 0xff},
    {"address-mask-reply", 18, 0, 0xff},
    {"ping", 8, 0, 0xff},
    {"pong", 0, 0, 0xff},
};

struct IcmpName;
const IcmpName *icmpNames(bool v6, size_t &count);

class IcmpModule : public ModuleState {
public:
  explicit IcmpModule(bool v6) : v6_(v6) {}
  void option(const ModuleOption &, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    if (given_)
      failAt(w, std::string(v6_ ? "icmp6" : "icmp") + ": option \"" + w.text +
                    "\" can only be used once");
    given_ = true;
    negated_ = negated;
    const Word &v = *args[0];
    const std::string &t = v.text;
    if (!t.empty() && std::isdigit(static_cast<unsigned char>(t[0]))) {
      // TYPE[/CODE]
      size_t slash = t.find('/');
      type_ = static_cast<uint8_t>(number(w, v, t.substr(0, slash), 255));
      codeLo_ = 0;
      codeHi_ = 0xff;
      if (slash != std::string::npos) {
        codeLo_ = codeHi_ = static_cast<uint8_t>(
            number(w, v, t.substr(slash + 1), 255, slash + 1));
      }
      return;
    }
    // A name, or a unique prefix of one, in any case (as libxt_icmp).
    const IcmpName *found = nullptr;
    size_t count = 0;
    const IcmpName *names = icmpNames(v6_, count);
    for (const IcmpName &n : std::span(names, count)) {
      if (strncasecmp(n.name, t.c_str(), t.size()) != 0 || t.empty())
        continue;
      if (strlen(n.name) == t.size()) { // an exact name wins
        found = &n;
        break;
      }
      if (found && (found->type != n.type || found->codeLo != n.codeLo))
        failAt(v, "ambiguous ICMP type `" + t + "'");
      found = &n;
    }
    if (!found)
      failAt(v, std::string("unknown ") + (v6_ ? "ICMPv6" : "ICMP") +
                    " type `" + t + "'");
    type_ = found->type;
    codeLo_ = found->codeLo;
    codeHi_ = found->codeHi;
  }
  void finish(const RuleFacts &facts, std::vector<Match> &out,
              std::vector<std::string> &) override {
    if (v6_)
      requireProto(where, facts, {58}, "icmp6 match requires `-p icmpv6'");
    else
      requireProto(where, facts, {1}, "icmp match requires `-p icmp'");
    Match m(Match::Icmp{type_, codeLo_, codeHi_}, negated_);
    // libxt_icmp: "icmptype T" / "icmp !type T", then the code;
    // libip6t_icmp6: "ipv6-icmptype T" / "ipv6-icmp !type T".
    if (v6_)
      m.listing = negated_ ? "ipv6-icmp !type " : "ipv6-icmptype ";
    else
      m.listing = negated_ ? "icmp !type " : "icmptype ";
    m.listing += std::to_string(type_);
    if (codeLo_ == codeHi_)
      m.listing += " code " + std::to_string(codeLo_);
    else if (codeLo_ != 0 || codeHi_ != 0xff)
      m.listing +=
          " codes " + std::to_string(codeLo_) + "-" + std::to_string(codeHi_);
    out.push_back(std::move(m));
  }

private:
  bool v6_;
  bool given_ = false, negated_ = false;
  uint8_t type_ = 0xff, codeLo_ = 0, codeHi_ = 0xff;
};

// libip6t_icmp6's table.
const IcmpName kIcmp6Names[] = {
    {"destination-unreachable", 1, 0, 0xff},
    {"no-route", 1, 0, 0},
    {"communication-prohibited", 1, 1, 1},
    {"beyond-scope", 1, 2, 2},
    {"address-unreachable", 1, 3, 3},
    {"port-unreachable", 1, 4, 4},
    {"failed-policy", 1, 5, 5},
    {"reject-route", 1, 6, 6},
    {"packet-too-big", 2, 0, 0xff},
    {"time-exceeded", 3, 0, 0xff},
    {"ttl-zero-during-transit", 3, 0, 0},
    {"ttl-zero-during-reassembly", 3, 1, 1},
    {"parameter-problem", 4, 0, 0xff},
    {"bad-header", 4, 0, 0},
    {"unknown-header-type", 4, 1, 1},
    {"unknown-option", 4, 2, 2},
    {"echo-request", 128, 0, 0xff},
    {"ping", 128, 0, 0xff},
    {"echo-reply", 129, 0, 0xff},
    {"pong", 129, 0, 0xff},
    {"mld-listener-query", 130, 0, 0xff},
    {"mld-listener-report", 131, 0, 0xff},
    {"mld-listener-done", 132, 0, 0xff},
    {"mld-listener-reduction", 132, 0, 0xff},
    {"router-solicitation", 133, 0, 0xff},
    {"router-advertisement", 134, 0, 0xff},
    {"neighbour-solicitation", 135, 0, 0xff},
    {"neighbor-solicitation", 135, 0, 0xff},
    {"neighbour-advertisement", 136, 0, 0xff},
    {"neighbor-advertisement", 136, 0, 0xff},
    {"redirect", 137, 0, 0xff},
};

const IcmpName *icmpNames(bool v6, size_t &count) {
  if (v6) {
    count = std::size(kIcmp6Names);
    return kIcmp6Names;
  }
  count = std::size(kIcmpNames);
  return kIcmpNames;
}

// --- multiport (xt_multiport revision 1)
// ---------------------------------------

enum MultiportOpt { MpSource, MpDestination, MpEither };

class MultiportModule : public ModuleState {
public:
  void option(const ModuleOption &o, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    if (given_)
      failAt(w, "multiport can only have one option");
    given_ = true;
    negated_ = negated;
    side_ = static_cast<Match::Multiport::Side>(o.id);
    optName_ = o.id == MpSource        ? "sports"
               : o.id == MpDestination ? "dports"
                                       : "ports";
    list_ = args[0];
    listOpt_ = w;
  }
  void finish(const RuleFacts &facts, std::vector<Match> &out,
              std::vector<std::string> &) override {
    if (!given_)
      failAt(where, "multiport needs --sports, --dports or --ports");
    requireProto(where, facts, {6, 17, 33, 132, 136},
                 "multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' "
                 "or `-p dccp'");
    const char *proto = facts.proto == IPPROTO_UDP ? "udp" : "tcp";
    Match::Multiport mp{side_, {}};
    // Comma-separated ports and lo:hi ranges; a range takes two of the 15
    // slots the kernel has.
    const std::string &t = list_->text;
    unsigned slots = 0;
    std::string shown;
    for (const Piece &p : splitList(t)) {
      const std::string &item = p.text;
      size_t start = p.offset;
      Word itemWord{item, advance(list_->pos, start)};
      if (item.empty())
        failAt(*list_, "empty port in " + listOpt_.text, start, 1);
      ir::PortRange r = parsePortRange(listOpt_, itemWord, proto);
      size_t colon = item.find(':');
      if (colon == std::string::npos) {
        r.hi = r.lo;
      } else {
        // libxt_multiport: both ends given (xtables_parse_port refuses an
        // empty one), and the first below the second.
        if (colon == 0 || colon + 1 == item.size())
          failAt(*list_,
                 "invalid port/service `' specified in " + listOpt_.text, start,
                 item.size());
        if (r.lo >= r.hi)
          failAt(*list_, "invalid portrange specified (`" + item + "')", start,
                 item.size());
      }
      slots += r.lo == r.hi ? 1 : 2;
      mp.ports.push_back(r);
      shown +=
          (shown.empty() ? "" : ",") +
          (r.lo == r.hi ? std::to_string(r.lo)
                        : std::to_string(r.lo) + ":" + std::to_string(r.hi));
    }
    if (slots > 15)
      failAt(*list_,
             "too many ports specified (at most 15; a range counts as 2)");
    out.emplace_back(std::move(mp), negated_,
                     "multiport " + optName_ + (negated_ ? "  !" : " ") +
                         shown);
  }

private:
  bool given_ = false, negated_ = false;
  Match::Multiport::Side side_ = Match::Multiport::Side::Either;
  std::string optName_;
  const Word *list_ = nullptr;
  Word listOpt_;
};

// --- header-field modules
// --------------------------------------------------------

/// Modules that become Field matches straight from their options.
class FieldModule : public ModuleState {
public:
  using Handler = void (*)(FieldModule &, int id, const Word &w,
                           const std::vector<const Word *> &args, bool negated);
  explicit FieldModule(Handler h) : handler_(h) {}
  void option(const ModuleOption &o, const Word &w,
              const std::vector<const Word *> &args, bool negated) override {
    handler_(*this, o.id, w, args, negated);
    ++given_;
  }
  void finish(const RuleFacts &facts, std::vector<Match> &out,
              std::vector<std::string> &comments) override {
    // libxt_comment's --comment is XTOPT_MAND: xtables_options_fcheck()
    // says it "must be specified".
    if (given_ == 0 && std::string(spec_name()) == "comment")
      failAt(where, "comment: option \"--comment\" must be specified");
    if (given_ == 0)
      failAt(where, std::string(spec_name()) + " match needs an option");
    if (tcpWord)
      requireProto(*tcpWord, facts, {6},
                   "ecn: `" + tcpWord->text + "' needs `-p tcp'");
    for (Match &m : matches)
      out.push_back(std::move(m));
    for (std::string &c : texts)
      comments.push_back(std::move(c));
  }
  const char *spec_name() const;
  std::vector<Match> matches;
  std::vector<std::string> texts;
  std::optional<Word> tcpWord; ///< an option that reads the TCP header

private:
  Handler handler_;
  int given_ = 0;
};

void ttlOption(FieldModule &fm, int id, const Word &w,
               const std::vector<const Word *> &args, bool negated) {
  if (!fm.matches.empty())
    failAt(w, w.text.find("hl") != std::string::npos
                  ? "hl: only one of --hl-eq, --hl-lt, --hl-gt"
                  : "ttl: only one of --ttl-eq, --ttl-lt, --ttl-gt");
  uint64_t v = number(w, *args[0], args[0]->text, 255);
  uint64_t lo = v, hi = v;
  std::string op = negated ? "!=" : "==";
  if (id == 1) { // lt
    if (v == 0) {
      lo = 1; // matches nothing
      hi = 0;
    } else {
      lo = 0;
      hi = v - 1;
    }
    op = "<";
  } else if (id == 2) { // gt
    lo = v + 1;
    hi = 255;
    op = ">";
  }
  fm.matches.push_back(
      fieldMatch(ir::Field::IpTtl, 0xff, lo, hi, negated,
                 "TTL match TTL " + op + " " + std::to_string(v)));
}

void hlOption(FieldModule &fm, int id, const Word &w,
              const std::vector<const Word *> &args, bool negated) {
  ttlOption(fm, id, w, args, negated);
  // libip6t_hl prints "HL match HL == 5".
  std::string &l = fm.matches.back().listing;
  l.replace(0, std::string("TTL match TTL").size(), "HL match HL");
}

void lengthOption(FieldModule &fm, int, const Word &w,
                  const std::vector<const Word *> &args, bool negated) {
  const std::string &t = args[0]->text;
  size_t colon = t.find(':');
  uint64_t lo = 0, hi = 0xffff;
  if (colon == std::string::npos) {
    lo = hi = number(w, *args[0], t, 0xffff);
  } else {
    if (colon > 0)
      lo = number(w, *args[0], t.substr(0, colon), 0xffff);
    if (colon + 1 < t.size())
      hi = number(w, *args[0], t.substr(colon + 1), 0xffff, colon + 1);
  }
  if (lo > hi)
    failAt(*args[0],
           "length range `" + t + "' has its minimum above its maximum");
  std::string shown = lo == hi ? std::to_string(lo)
                               : std::to_string(lo) + ":" + std::to_string(hi);
  fm.matches.push_back(
      fieldMatch(ir::Field::IpTotLen, 0xffff, lo, hi, negated,
                 "length " + std::string(negated ? "!" : "") + shown));
}

void tosOption(FieldModule &fm, int, const Word &w,
               const std::vector<const Word *> &args, bool negated) {
  static const std::pair<const char *, uint8_t> names[] = {
      {"Minimize-Delay", 0x10},
      {"Maximize-Throughput", 0x08},
      {"Maximize-Reliability", 0x04},
      {"Minimize-Cost", 0x02},
      {"Normal-Service", 0x00}};
  const std::string &t = args[0]->text;
  uint64_t value = 0, mask = 0xff;
  bool named = false;
  for (const auto &[n, v] : names)
    if (strcasecmp(n, t.c_str()) == 0) {
      value = v;
      mask = 0x3f; // libxt_tos: symbolic names compare the old TOS bits
      named = true;
    }
  if (!named) {
    size_t slash = t.find('/');
    value = number(w, *args[0], t.substr(0, slash), 0xff);
    if (slash != std::string::npos)
      mask = number(w, *args[0], t.substr(slash + 1), 0xff, slash + 1);
  }
  fm.matches.push_back(
      fieldMatch(ir::Field::IpTos, mask, value & mask, value & mask, negated,
                 "tos match" + std::string(negated ? "!" : "") + hex2(value) +
                     "/" + hex2(mask)));
}

void dscpOption(FieldModule &fm, int id, const Word &w,
                const std::vector<const Word *> &args, bool negated) {
  if (!fm.matches.empty())
    failAt(w, "dscp: only one of --dscp and --dscp-class");
  const std::string &t = args[0]->text;
  uint64_t v = 0;
  if (id == 0) {
    v = number(w, *args[0], t, 63);
  } else {
    static const std::pair<const char *, uint8_t> classes[] = {
        {"CS0", 0},   {"CS1", 8},   {"CS2", 16},  {"CS3", 24},  {"CS4", 32},
        {"CS5", 40},  {"CS6", 48},  {"CS7", 56},  {"BE", 0},    {"AF11", 10},
        {"AF12", 12}, {"AF13", 14}, {"AF21", 18}, {"AF22", 20}, {"AF23", 22},
        {"AF31", 26}, {"AF32", 28}, {"AF33", 30}, {"AF41", 34}, {"AF42", 36},
        {"AF43", 38}, {"EF", 46}};
    bool found = false;
    for (const auto &[n, c] : classes)
      if (strcasecmp(n, t.c_str()) == 0) {
        v = c;
        found = true;
      }
    if (!found)
      failAt(*args[0], "unknown DSCP class `" + t + "'");
  }
  // xt_dscp: (dsfield >> 2) == dscp, the DS field being the IPv4 TOS byte
  // (dscp_mt) or the IPv6 traffic class (dscp_mt6).
  ir::Field ds =
      fm.family == ir::Family::V6 ? ir::Field::Ip6TClass : ir::Field::IpTos;
  fm.matches.push_back(
      fieldMatch(ds, 0xfc, v << 2, v << 2, negated,
                 "DSCP match " + std::string(negated ? "!" : "") + hex2(v)));
}

void ecnOption(FieldModule &fm, int id, const Word &w,
               const std::vector<const Word *> &args, bool negated) {
  if (id != 0) {
    // xt_ecn: --ecn-tcp-cwr is the TCP CWR flag (0x80), --ecn-tcp-ece ECE
    // (0x40), both read from the TCP header (kernel refuses them without
    // -p tcp).
    uint64_t bit = id == 1 ? 0x80 : 0x40;
    fm.tcpWord = w;
    fm.matches.push_back(
        fieldMatch(ir::Field::TcpFlagsByte, bit, bit, bit, negated,
                   "ECN match " + std::string(negated ? "!" : "") +
                       (id == 1 ? "CWR" : "ECE")));
    return;
  }
  uint64_t v = number(w, *args[0], args[0]->text, 3);
  fm.matches.push_back(fieldMatch(ir::Field::IpTos, 0x03, v, v, negated,
                                  "ECN match " +
                                      std::string(negated ? "!" : "") +
                                      "ECT=" + std::to_string(v)));
}

void iprangeOption(FieldModule &fm, int id, const Word &w,
                   const std::vector<const Word *> &args, bool negated) {
  const Word &v = *args[0];
  size_t dash = v.text.find('-');
  // iprange_parse_spec(): xtables_numeric_to_ipaddr, so `10.1' is 10.1.0.0.
  auto addr = [&](const std::string &t, size_t off) {
    std::optional<uint32_t> a = inetAtonIptables(t);
    if (!a)
      failAt(v, "invalid address `" + t + "' in " + w.text, off, t.size());
    return *a;
  };
  uint32_t lo = addr(v.text.substr(0, dash), 0);
  uint32_t hi =
      dash == std::string::npos ? lo : addr(v.text.substr(dash + 1), dash + 1);
  bool src = id == 0;
  std::string shown = ir::formatAddr(lo) + "-" + ir::formatAddr(hi);
  fm.matches.push_back(fieldMatch(src ? ir::Field::IpSaddr : ir::Field::IpDaddr,
                                  0xffffffffu, lo, hi, negated,
                                  std::string(src ? "source" : "destination") +
                                      " IP range " + (negated ? "! " : "") +
                                      shown));
}

void macOption(FieldModule &fm, int, const Word &w,
               const std::vector<const Word *> &args, bool negated) {
  const std::string &t = args[0]->text;
  std::optional<std::array<uint8_t, 6>> bytes = xtablesParseEthermac(t);
  uint64_t mac = 0;
  for (uint8_t b : bytes.value_or(std::array<uint8_t, 6>{}))
    mac = (mac << 8) | b;
  if (!bytes)
    failAt(*args[0], "invalid MAC address `" + t + "' in " + w.text +
                         " (write six hex bytes like 02:00:00:00:00:01)");
  char shown[32];
  std::snprintf(shown, sizeof shown, "%02x:%02x:%02x:%02x:%02x:%02x",
                unsigned(mac >> 40) & 0xff, unsigned(mac >> 32) & 0xff,
                unsigned(mac >> 24) & 0xff, unsigned(mac >> 16) & 0xff,
                unsigned(mac >> 8) & 0xff, unsigned(mac) & 0xff);
  fm.matches.push_back(
      fieldMatch(ir::Field::EthSrc, 0xffffffffffffull, mac, mac, negated,
                 std::string("MAC ") + (negated ? "! " : "") + shown));
}

void pkttypeOption(FieldModule &fm, int, const Word &w,
                   const std::vector<const Word *> &args, bool negated) {
  // Frames that reach netfilter are for this host, broadcast or multicast
  // (ip_rcv drops PACKET_OTHERHOST first), so the destination MAC decides.
  static const std::pair<const char *, uint8_t> types[] = {
      {"unicast", 0}, {"host", 0}, {"broadcast", 1}, {"multicast", 2}};
  const std::string &t = args[0]->text;
  for (const auto &[n, v] : types)
    if (strcasecmp(n, t.c_str()) == 0) {
      fm.matches.push_back(
          fieldMatch(ir::Field::PktType, 0xff, v, v, negated,
                     std::string("PKTTYPE ") + (negated ? "!= " : "= ") + n));
      return;
    }
  failAt(*args[0], "packet type `" + t + "' in " + w.text +
                       " is not unicast, broadcast or multicast");
}

void commentOption(FieldModule &fm, int, const Word &w,
                   const std::vector<const Word *> &args, bool) {
  // Without XTOPT_MULTI, xtables_option_parse() takes an option once.
  if (!fm.texts.empty())
    failAt(w, "comment: option \"--comment\" can only be used once");
  if (args[0]->text.size() > 255)
    failAt(*args[0], "comment in " + w.text + " is longer than 255 characters");
  fm.texts.push_back(args[0]->text);
}

// --- the table
// -------------------------------------------------------------------

template <uint8_t P> std::unique_ptr<ModuleState> makeTcpUdp() {
  return std::make_unique<TcpUdpModule>(P);
}
template <bool V6> std::unique_ptr<ModuleState> makeIcmp() {
  return std::make_unique<IcmpModule>(V6);
}
template <class M> std::unique_ptr<ModuleState> makePlain() {
  return std::make_unique<M>();
}
template <FieldModule::Handler H> std::unique_ptr<ModuleState> makeField() {
  return std::make_unique<FieldModule>(H);
}

/// The module table: data, one row per module (long because it lists them
/// all; a new match is one more row).
std::vector<ModuleSpec> &table() {
  static std::vector<ModuleSpec> t = [] {
    std::vector<ModuleSpec> v = {
        {"tcp",
         {{"source-port", SPort, 1, true},
          {"sport", SPort, 1, true},
          {"destination-port", DPort, 1, true},
          {"dport", DPort, 1, true},
          {"tcp-flags", Flags, 2, true},
          {"syn", Syn, 0, true},
          {"tcp-option", TcpOption, 1, true}},
         makeTcpUdp<IPPROTO_TCP>,
         false},
        {"udp",
         {{"source-port", SPort, 1, true},
          {"sport", SPort, 1, true},
          {"destination-port", DPort, 1, true},
          {"dport", DPort, 1, true}},
         makeTcpUdp<IPPROTO_UDP>,
         false},
        {"icmp", {{"icmp-type", 0, 1, true}}, makeIcmp<false>, false, 1},
        {"icmp6", {{"icmpv6-type", 0, 1, true}}, makeIcmp<true>, false, 2},
        {"multiport",
         {{"source-ports", MpSource, 1, true},
          {"sports", MpSource, 1, true},
          {"destination-ports", MpDestination, 1, true},
          {"dports", MpDestination, 1, true},
          {"ports", MpEither, 1, true}},
         makePlain<MultiportModule>,
         false},
        {"ttl",
         {{"ttl-eq", 0, 1, true},
          {"ttl-lt", 1, 1, false},
          {"ttl-gt", 2, 1, false}},
         makeField<ttlOption>,
         false,
         1},
        {"hl",
         {{"hl-eq", 0, 1, true},
          {"hl-lt", 1, 1, false},
          {"hl-gt", 2, 1, false}},
         makeField<hlOption>,
         false,
         2},
        {"length", {{"length", 0, 1, true}}, makeField<lengthOption>, false},
        {"tos", {{"tos", 0, 1, true}}, makeField<tosOption>, false, 1},
        {"dscp",
         {{"dscp", 0, 1, true}, {"dscp-class", 1, 1, true}},
         makeField<dscpOption>,
         false},
        {"ecn",
         {{"ecn-ip-ect", 0, 1, true},
          {"ecn-tcp-cwr", 1, 0, true},
          {"ecn-tcp-ece", 2, 0, true}},
         makeField<ecnOption>,
         true,
         1}, // two -m ecn are two matches, as in iptables
        {"iprange",
         {{"src-range", 0, 1, true}, {"dst-range", 1, 1, true}},
         makeField<iprangeOption>,
         false,
         1},
        {"mac", {{"mac-source", 0, 1, true}}, makeField<macOption>, false},
        {"pkttype",
         {{"pkt-type", 0, 1, true}},
         makeField<pkttypeOption>,
         false},
        {"comment", {{"comment", 0, 1, false}}, makeField<commentOption>, true},
        {"u32", {{"u32", 0, 1, true}}, makePlain<U32Module>, false},
        {"set",
         {{"match-set", SetMatchSet, 2, true},
          {"set", SetMatchSet, 2, true},
          {"return-nomatch", SetReturnNomatch, 0, false},
          {"update-counters", SetUpdateCounters, 0, true},
          {"update-subcounters", SetUpdateSubcounters, 0, true},
          {"packets-eq", SetPacketsEq, 1, true},
          {"packets-lt", SetPacketsLt, 1, false},
          {"packets-gt", SetPacketsGt, 1, false},
          {"bytes-eq", SetBytesEq, 1, true},
          {"bytes-lt", SetBytesLt, 1, false},
          {"bytes-gt", SetBytesGt, 1, false}},
         makePlain<SetModule>,
         true}, // rules test several sets, each its own -m set
    };
    return v;
  }();
  static bool linked = [] {
    for (ModuleSpec &m : t)
      for (ModuleOption &o : m.options)
        o.module = &m;
    return true;
  }();
  (void)linked;
  return t;
}

} // namespace

const char *FieldModule::spec_name() const { return spec ? spec->name : "?"; }

const ModuleSpec *findModule(std::string_view name) {
  for (const ModuleSpec &m : table())
    if (name == m.name)
      return &m;
  return nullptr;
}

std::vector<const ModuleSpec *> compiledModules() {
  std::vector<const ModuleSpec *> out;
  for (const ModuleSpec &m : table())
    out.push_back(&m);
  return out;
}

std::unique_ptr<ModuleState> loadModule(const ModuleSpec &spec,
                                        const Word &where, ir::Family family) {
  std::unique_ptr<ModuleState> s = spec.make();
  s->spec = &spec;
  s->where = where;
  s->family = family;
  return s;
}

const ModuleSpec *protocolModule(uint8_t proto, ir::Family family) {
  switch (proto) {
  case 6:
    return findModule("tcp");
  case 17:
    return findModule("udp");
  case 1:
    return family == ir::Family::V4 ? findModule("icmp") : nullptr;
  case 58:
    return family == ir::Family::V6 ? findModule("icmp6") : nullptr;
  }
  return nullptr;
}

bool moduleFits(const ModuleSpec &m, ir::Family f) {
  return (m.families & (f == ir::Family::V4 ? 1 : 2)) != 0;
}

} // namespace r2x::frontend
