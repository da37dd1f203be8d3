//===- compiler/frontend/Handover.cpp - what hand-over mode reads
//----------===//
//
/// \file
/// See Handover.h. The option tables are iptables 1.8's (libxt_*.c and
/// libipt_*.c): each option's long name, how many words it takes and
/// whether `!` may precede it. Values are not checked here: the same
/// ruleset is installed in the kernel with iptables-restore, which checks
/// them, and XDP never evaluates them.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/Handover.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <strings.h>

namespace r2x::frontend {
namespace {

/// Calls f(item, offset) for each comma-separated item of `w`, empty ones
/// too (as libxt's list parsers see them), and reports a bad item there.
template <class F> void forEachItem(const Word &w, F f) {
  const std::string &t = w.text;
  for (size_t start = 0; start <= t.size();) {
    size_t end = std::min(t.find(',', start), t.size());
    f(t.substr(start, end - start), start);
    start = end + 1;
  }
}

/// Whether `item` (not empty) begins `name`, without case: libxt's
/// strncasecmp(item, name, strlen(item)).
bool beginsName(const std::string &item, std::string_view name) {
  return !item.empty() && item.size() <= name.size() &&
         strncasecmp(item.c_str(), name.data(), item.size()) == 0;
}

/// `bad KIND "ITEM"` at the item.
[[noreturn]] void badItem(const Word &w, const std::string &kind,
                          const std::string &item, size_t start) {
  failAt(w, kind + " \"" + item + "\"", start,
         std::max<size_t>(1, item.size()));
}

/// Collects the words of an opaque module or target as written.
class OpaqueState : public ModuleState {
public:
  void option(const ModuleOption &opt, const Word &optWord,
              const std::vector<const Word *> &args, bool negated) override {
    add(optWord.text, negated);
    for (const Word *a : args)
      addValue(a->text);
    std::string_view name = opt.name;
    if ((name == "state" || name == "ctstate") && args.size() == 1) {
      ctMask_ = parseStates(*args[0], name == "ctstate");
      ctNegated_ = negated;
    } else if (isConntrack() && name != "ctexpire" && args.size() == 1) {
      // Read at finish(), which knows the rule's family.
      ctOptions_.push_back({optWord, *args[0], negated});
    } else if ((name == "src-type" || name == "dst-type") && args.size() == 1) {
      bool src = name == "src-type";
      (src ? addrSrc_ : addrDst_) = parseAddrTypes(*args[0]);
      (src ? addrSrcNegated_ : addrDstNegated_) = negated;
    } else if (isLimit() && name == "limit" && args.size() == 1) {
      limitAvg_ = parseRate(*args[0]);
    } else if (isLimit() && name == "limit-burst" && args.size() == 1) {
      limitBurst_ = parseBurst(*args[0]);
      limitBurstWord_ = *args[0];
    } else if (name == "limit-iface-in" || name == "limit-iface-out") {
      // The types XDP knows from the address alone are the same on every
      // device (inet_dev_addr_type() returns them before it looks at the
      // device); a table's answer is not (ir::Match::AddrType).
      addrLimitIface_ = true;
    } else {
      otherOptions_ = true;
    }
  }
  void finish(const RuleFacts &, std::vector<ir::Match> &out,
              std::vector<std::string> &) override;
  void add(const std::string &opt, bool negated) {
    text_ += negated ? " ! " + opt : " " + opt;
  }
  void addValue(const std::string &v) {
    bool quote = v.empty() || v.find_first_of(" \t\"'") != std::string::npos;
    text_ += quote ? " \"" + v + "\"" : " " + v;
  }
  const std::string &text() const { return text_; }

private:
  /// `NEW,ESTABLISHED` as libxt_conntrack reads it (comma-separated, each
  /// item the beginning of a name without case, `est` is ESTABLISHED; SNAT
  /// and DNAT only for --ctstate).
  static uint8_t parseStates(const Word &w, bool ctstate);
  /// `ASSURED,CONFIRMED` as libxt_conntrack reads --ctstatus: IPS_* bits.
  static uint32_t parseStatus(const Word &w);
  /// `LOCAL,BROADCAST` as libxt_addrtype reads it.
  static uint16_t parseAddrTypes(const Word &w);
  bool finishAddrType(const RuleFacts &facts, std::vector<ir::Match> &out,
                      const std::string &what) const;
  bool isLimit() const {
    return spec && std::string_view(spec->name) == "limit";
  }
  bool isConntrack() const {
    return spec && std::string_view(spec->name) == "conntrack";
  }
  /// The options of -m conntrack besides --ctstate, as libxt_conntrack
  /// (revision 3) reads them, into `c`.
  void finishConntrack(const RuleFacts &facts, ir::Match::CtState &c) const;
  struct CtOption {
    Word opt, value;
    bool negated;
  };
  std::vector<CtOption> ctOptions_;
  /// libxt_limit's parse_rate(): the time between matches in 1/10000 s.
  static uint32_t parseRate(const Word &w);
  static uint32_t parseBurst(const Word &w);
  /// xt_rateinfo as libxt_limit_init() leaves it: 3/hour, burst 5.
  uint32_t limitAvg_ = 10000u * 3600 / 3, limitBurst_ = 5;
  Word limitBurstWord_;
  std::string text_;
  uint16_t addrSrc_ = 0, addrDst_ = 0;
  bool addrSrcNegated_ = false, addrDstNegated_ = false,
       addrLimitIface_ = false;
  std::optional<uint8_t> ctMask_;
  bool ctNegated_ = false, otherOptions_ = false;
};

uint8_t OpaqueState::parseStates(const Word &w, bool ctstate) {
  // libxt_conntrack's and libxt_state's order: the first name an item
  // begins wins (`S` is SNAT).
  static const std::pair<const char *, uint8_t> names[] = {
      {"INVALID", ir::CtInvalid},
      {"NEW", ir::CtNew},
      {"ESTABLISHED", ir::CtEstablished},
      {"RELATED", ir::CtRelated},
      {"UNTRACKED", ir::CtUntracked},
      {"SNAT", ir::CtSnat},
      {"DNAT", ir::CtDnat}};
  uint8_t mask = 0;
  forEachItem(w, [&](const std::string &item, size_t start) {
    uint8_t bit = 0;
    for (const auto &[n, b] : names)
      if (!bit && beginsName(item, n) && (ctstate || b < ir::CtSnat))
        bit = b;
    if (!bit)
      badItem(w, ctstate ? "bad ctstate" : "bad state", item, start);
    mask |= bit;
  });
  return mask;
}

/// libxt_addrtype's parse_types(): comma-separated, each item a name or
/// the leading part of one, without case (`uni` is UNICAST); the first name
/// in RTN_* order it begins wins. An empty item is an error.
uint16_t OpaqueState::parseAddrTypes(const Word &w) {
  uint16_t mask = 0;
  forEachItem(w, [&](const std::string &item, size_t start) {
    int type = -1;
    for (size_t i = 0; type < 0 && i < std::size(ir::kAddrTypeNames); ++i) {
      std::string_view n = ir::kAddrTypeNames[i];
      if (beginsName(item, n))
        type = static_cast<int>(i);
    }
    if (type < 0)
      badItem(w, "addrtype: bad type", item, start);
    mask |= static_cast<uint16_t>(1u << type);
  });
  return mask;
}

/// libxt_limit's parse_rate(): `N[/second|/minute|/hour|/day]`, the unit
/// any leading part of its name without case, N read as atoi() reads it;
/// the time between matches is XT_LIMIT_SCALE (10000) times the unit's
/// seconds over N, in 32 bits.
uint32_t OpaqueState::parseRate(const Word &w) {
  const std::string &t = w.text;
  uint32_t mult = 1;
  if (size_t slash = t.find('/'); slash != std::string::npos) {
    std::string unit = t.substr(slash + 1);
    static constexpr std::pair<const char *, uint32_t> units[] = {
        {"second", 1}, {"minute", 60}, {"hour", 3600}, {"day", 86400}};
    bool found = false;
    for (const auto &[n, m] : units)
      if (!found && !unit.empty() && unit.size() <= std::strlen(n) &&
          strncasecmp(unit.c_str(), n, unit.size()) == 0) {
        mult = m;
        found = true;
      }
    if (!found)
      failAt(w, "limit: bad rate \"" + t + "\"");
  }
  uint32_t r = static_cast<uint32_t>(std::atoi(t.c_str()));
  if (r == 0)
    failAt(w, "limit: bad rate \"" + t + "\"");
  uint32_t avg = 10000u * mult / r;
  if (avg == 0)
    failAt(w, "limit: rate too fast \"" + t + "\"");
  return avg;
}

/// `--limit-burst`: a number 0..10000 (libxt_limit's XTTYPE_UINT32 range).
uint32_t OpaqueState::parseBurst(const Word &w) {
  const std::string &t = w.text;
  uint64_t v = 0;
  bool ok = !t.empty() && t.size() <= 6;
  for (char c : t)
    if (ok && std::isdigit(static_cast<unsigned char>(c)))
      v = v * 10 + uint64_t(c - '0');
    else
      ok = false;
  if (!ok || v > 10000)
    failAt(w, "limit: bad --limit-burst \"" + t + "\" (0 to 10000)");
  return static_cast<uint32_t>(v);
}

std::unique_ptr<ModuleState> makeOpaque() {
  return std::make_unique<OpaqueState>();
}

/// One module or target of the tables below: name, reason, options.
struct OpaqueSpec {
  const char *name;
  const char *reason;
  std::vector<ModuleOption> options;
};

// Why XDP cannot evaluate a match or carry out a target, by kind.
constexpr const char *kConnState =
    "connection state XDP does not read from the kernel's conntrack (byte "
    "counts, helpers)";
/// -m state and -m conntrack (ir::Match::CtState).
#define R2X_CT_DECIDED                                                         \
  "connection state: decided in XDP from the kernel's conntrack where its "    \
  "answer is certain, else handed over; handed over in the raw and nat "       \
  "tables (docs/handover.md, \"Connection state\")"
constexpr const char *kStateMatch = R2X_CT_DECIDED;
constexpr const char *kConntrack =
    R2X_CT_DECIDED "; --ctexpire (the entry's timeout) always handed over";
#undef R2X_CT_DECIDED
constexpr const char *kKernelState =
    "state the kernel keeps per rule (rates, address lists, counts, "
    "randomness): not shared with XDP";
constexpr const char *kMarks =
    "packet and connection marks: set by the kernel, not visible to XDP";
constexpr const char *kRouting =
    "needs the kernel's routing table or the output device";
/// -m addrtype in an iptables rule (ir::Match::AddrType).
constexpr const char *kAddrTypeConditions =
    "0.0.0.0/8, 255.255.255.255 and 224.0.0.0/4 by their numbers, any other "
    "address from XDP's copy of the kernel's local routing table while "
    "`rule2xdp --accelerate --follow` keeps it current, else handed over";
/// The same with --limit-iface-in/out, whose table answer depends on the
/// route's device, which XDP's copy does not hold.
constexpr const char *kAddrTypeIfaceReason =
    "decided in XDP for 0.0.0.0/8 and 255.255.255.255 (BROADCAST) and "
    "224.0.0.0/4 (MULTICAST); any other address's type comes from the "
    "kernel's local routing table and, with --limit-iface-in/out, the "
    "route's device: handed over there";
/// When XDP sends a tcp-reset REJECT's RST itself (docs/handover.md).
constexpr const char *kRejectConditions =
    "INPUT or FORWARD, in INPUT IPv4 to the address the reply route uses, "
    "IPv6 unicast, no "
    "VLAN tag, not a fragment, no IPv6 extension header, checksum verified, "
    "no conntrack entry, reply route found by bpf_fib_lookup through the "
    "receiving device";
constexpr const char *kSocket = "needs the local socket or process";
constexpr const char *kNotCompiled = "not compiled to XDP yet";
constexpr const char *kNat =
    "address translation: the kernel's conntrack owns translated connections "
    "in hand-over mode";
constexpr const char *kSideEffect =
    "an action only the kernel carries out (marks, logging, queues, "
    "conntrack settings, header rewrites)";
constexpr const char *kReject =
    "ICMP errors: the kernel rate-limits them (icmp_ratelimit, icmp_ratemask, "
    "icmp_msgs_per_sec; per peer and global), and XDP cannot share those "
    "buckets; IPv4 ones also carry an IP ID from the kernel's generator "
    "(tcp-reset is sent from XDP where it is provably the kernel's)";

const std::vector<OpaqueSpec> &moduleTable() {
  static const std::vector<OpaqueSpec> t = {
      {"state", kStateMatch, {{"state", 0, 1, true}}},
      {"conntrack",
       kConntrack,
       {{"ctstate", 0, 1, true},
        {"ctproto", 0, 1, true},
        {"ctorigsrc", 0, 1, true},
        {"ctorigdst", 0, 1, true},
        {"ctreplsrc", 0, 1, true},
        {"ctrepldst", 0, 1, true},
        {"ctorigsrcport", 0, 1, true},
        {"ctorigdstport", 0, 1, true},
        {"ctreplsrcport", 0, 1, true},
        {"ctrepldstport", 0, 1, true},
        {"ctstatus", 0, 1, true},
        {"ctexpire", 0, 1, true},
        {"ctdir", 0, 1, false}}},
      {"limit",
       kKernelState,
       {{"limit", 0, 1, false}, {"limit-burst", 0, 1, false}}},
      {"hashlimit",
       kKernelState,
       {{"hashlimit", 0, 1, false},
        {"hashlimit-upto", 0, 1, false},
        {"hashlimit-above", 0, 1, false},
        {"hashlimit-burst", 0, 1, false},
        {"hashlimit-mode", 0, 1, false},
        {"hashlimit-srcmask", 0, 1, false},
        {"hashlimit-dstmask", 0, 1, false},
        {"hashlimit-name", 0, 1, false},
        {"hashlimit-htable-size", 0, 1, false},
        {"hashlimit-htable-max", 0, 1, false},
        {"hashlimit-htable-expire", 0, 1, false},
        {"hashlimit-htable-gcinterval", 0, 1, false},
        {"hashlimit-rate-match", 0, 0, false},
        {"hashlimit-rate-interval", 0, 1, false}}},
      {"recent",
       kKernelState,
       {{"set", 0, 0, true},
        {"rcheck", 0, 0, true},
        {"update", 0, 0, true},
        {"remove", 0, 0, true},
        {"seconds", 0, 1, false},
        {"reap", 0, 0, false},
        {"hitcount", 0, 1, false},
        {"rttl", 0, 0, false},
        {"name", 0, 1, false},
        {"rsource", 0, 0, false},
        {"rdest", 0, 0, false},
        {"mask", 0, 1, false}}},
      {"connlimit",
       kKernelState,
       {{"connlimit-upto", 0, 1, false},
        {"connlimit-above", 0, 1, false},
        {"connlimit-mask", 0, 1, false},
        {"connlimit-saddr", 0, 0, false},
        {"connlimit-daddr", 0, 0, false}}},
      {"statistic",
       kKernelState,
       {{"mode", 0, 1, false},
        {"probability", 0, 1, true},
        {"every", 0, 1, true},
        {"packet", 0, 1, false}}},
      {"quota", kKernelState, {{"quota", 0, 1, true}}},
      {"connbytes",
       kConnState,
       {{"connbytes", 0, 1, true},
        {"connbytes-dir", 0, 1, false},
        {"connbytes-mode", 0, 1, false}}},
      {"helper", kConnState, {{"helper", 0, 1, true}}},
      {"addrtype",
       kRouting,
       {{"src-type", 0, 1, true},
        {"dst-type", 0, 1, true},
        {"limit-iface-in", 0, 0, false},
        {"limit-iface-out", 0, 0, false}}},
      {"rpfilter",
       kRouting,
       {{"loose", 0, 0, false},
        {"validmark", 0, 0, false},
        {"accept-local", 0, 0, false},
        {"invert", 0, 0, false}}},
      {"realm", kRouting, {{"realm", 0, 1, true}}},
      {"mark", kMarks, {{"mark", 0, 1, true}}},
      {"connmark", kMarks, {{"mark", 0, 1, true}}},
      {"owner",
       kSocket,
       {{"uid-owner", 0, 1, true},
        {"gid-owner", 0, 1, true},
        {"socket-exists", 0, 0, true},
        {"suppl-groups", 0, 0, false}}},
      {"socket",
       kSocket,
       {{"transparent", 0, 0, false},
        {"nowildcard", 0, 0, false},
        {"restore-skmark", 0, 0, false}}},
      {"cgroup", kSocket, {{"path", 0, 1, true}, {"cgroup", 0, 1, true}}},
      {"set",
       "ipset sets: the kernel's sets change under XDP (give --sets FILE to "
       "test a copy)",
       {{"match-set", 0, 2, true},
        {"return-nomatch", 0, 0, false},
        {"update-counters", 0, 0, true},
        {"update-subcounters", 0, 0, true},
        {"packets-eq", 0, 1, true},
        {"packets-lt", 0, 1, false},
        {"packets-gt", 0, 1, false},
        {"bytes-eq", 0, 1, true},
        {"bytes-lt", 0, 1, false},
        {"bytes-gt", 0, 1, false}}},
      {"physdev",
       "bridge ports: known only inside the bridge",
       {{"physdev-in", 0, 1, true},
        {"physdev-out", 0, 1, true},
        {"physdev-is-in", 0, 0, true},
        {"physdev-is-out", 0, 0, true},
        {"physdev-is-bridged", 0, 0, true}}},
      {"policy",
       "IPsec policy: known only to the kernel's xfrm",
       {{"dir", 0, 1, false},
        {"pol", 0, 1, false},
        {"strict", 0, 0, false},
        {"reqid", 0, 1, true},
        {"spi", 0, 1, true},
        {"proto", 0, 1, true},
        {"mode", 0, 1, true},
        {"tunnel-src", 0, 1, true},
        {"tunnel-dst", 0, 1, true},
        {"next", 0, 0, false}}},
      {"time",
       "the time of day: not evaluated in XDP yet",
       {{"datestart", 0, 1, false},
        {"datestop", 0, 1, false},
        {"timestart", 0, 1, false},
        {"timestop", 0, 1, false},
        {"monthdays", 0, 1, true},
        {"weekdays", 0, 1, true},
        {"kerneltz", 0, 0, false},
        {"localtz", 0, 0, false},
        {"utc", 0, 0, false},
        {"contiguous", 0, 0, false}}},
      {"string",
       kNotCompiled,
       {{"algo", 0, 1, false},
        {"from", 0, 1, false},
        {"to", 0, 1, false},
        {"string", 0, 1, true},
        {"hex-string", 0, 1, true},
        {"icase", 0, 0, false}}},
      {"devgroup",
       kNotCompiled,
       {{"src-group", 0, 1, true}, {"dst-group", 0, 1, true}}},
      {"sctp",
       kNotCompiled,
       {{"source-port", 0, 1, true},
        {"sport", 0, 1, true},
        {"destination-port", 0, 1, true},
        {"dport", 0, 1, true},
        {"chunk-types", 0, 2, true}}},
      {"esp", kNotCompiled, {{"espspi", 0, 1, true}}},
      {"ah", kNotCompiled, {{"ahspi", 0, 1, true}}},
      {"frag",
       kNotCompiled,
       {{"fragid", 0, 1, true},
        {"fraglen", 0, 1, true},
        {"fragres", 0, 0, false},
        {"fragfirst", 0, 0, false},
        {"fragmore", 0, 0, false},
        {"fraglast", 0, 0, false}}},
      {"nfacct", kKernelState, {{"nfacct-name", 0, 1, false}}},
      {"bpf",
       kNotCompiled,
       {{"bytecode", 0, 1, false}, {"object-pinned", 0, 1, false}}},
  };
  return t;
}

const std::vector<OpaqueSpec> &targetTable() {
  static const std::vector<OpaqueSpec> t = {
      {"REJECT", kReject, {{"reject-with", 0, 1, false}}},
      {"NFLOG",
       kSideEffect,
       {{"nflog-group", 0, 1, false},
        {"nflog-prefix", 0, 1, false},
        {"nflog-range", 0, 1, false},
        {"nflog-size", 0, 1, false},
        {"nflog-threshold", 0, 1, false}}},
      {"MARK",
       kSideEffect,
       {{"set-mark", 0, 1, false},
        {"set-xmark", 0, 1, false},
        {"and-mark", 0, 1, false},
        {"or-mark", 0, 1, false},
        {"xor-mark", 0, 1, false}}},
      {"CONNMARK",
       kSideEffect,
       {{"set-mark", 0, 1, false},
        {"set-xmark", 0, 1, false},
        {"save-mark", 0, 0, false},
        {"restore-mark", 0, 0, false},
        {"and-mark", 0, 1, false},
        {"or-mark", 0, 1, false},
        {"xor-mark", 0, 1, false},
        {"mask", 0, 1, false},
        {"nfmask", 0, 1, false},
        {"ctmask", 0, 1, false}}},
      {"TCPMSS",
       kSideEffect,
       {{"set-mss", 0, 1, false}, {"clamp-mss-to-pmtu", 0, 0, false}}},
      {"NOTRACK", kSideEffect, {}},
      {"CT",
       kSideEffect,
       {{"notrack", 0, 0, false},
        {"helper", 0, 1, false},
        {"ctevents", 0, 1, false},
        {"expevents", 0, 1, false},
        {"zone", 0, 1, false},
        {"zone-orig", 0, 1, false},
        {"zone-reply", 0, 1, false},
        {"timeout", 0, 1, false}}},
      {"NFQUEUE",
       kSideEffect,
       {{"queue-num", 0, 1, false},
        {"queue-balance", 0, 1, false},
        {"queue-bypass", 0, 0, false},
        {"fail-open", 0, 0, false},
        {"queue-cpu-fanout", 0, 0, false}}},
      {"DNAT",
       kNat,
       {{"to-destination", 0, 1, false},
        {"random", 0, 0, false},
        {"random-fully", 0, 0, false},
        {"persistent", 0, 0, false}}},
      {"SNAT",
       kNat,
       {{"to-source", 0, 1, false},
        {"random", 0, 0, false},
        {"random-fully", 0, 0, false},
        {"persistent", 0, 0, false}}},
      {"MASQUERADE",
       kNat,
       {{"to-ports", 0, 1, false},
        {"random", 0, 0, false},
        {"random-fully", 0, 0, false}}},
      {"REDIRECT", kNat, {{"to-ports", 0, 1, false}, {"random", 0, 0, false}}},
      {"NETMAP", kNat, {{"to", 0, 1, false}}},
      {"TPROXY",
       kNat,
       {{"on-port", 0, 1, false},
        {"on-ip", 0, 1, false},
        {"tproxy-mark", 0, 1, false}}},
      {"SET",
       kSideEffect,
       {{"add-set", 0, 2, false},
        {"del-set", 0, 2, false},
        {"map-set", 0, 2, false},
        {"timeout", 0, 1, false},
        {"exist", 0, 0, false},
        {"map-mark", 0, 0, false},
        {"map-prio", 0, 0, false},
        {"map-queue", 0, 0, false}}},
      {"CHECKSUM", kSideEffect, {{"checksum-fill", 0, 0, false}}},
      {"DSCP",
       kSideEffect,
       {{"set-dscp", 0, 1, false}, {"set-dscp-class", 0, 1, false}}},
      {"TOS",
       kSideEffect,
       {{"set-tos", 0, 1, false},
        {"and-tos", 0, 1, false},
        {"or-tos", 0, 1, false},
        {"xor-tos", 0, 1, false}}},
      {"TTL",
       kSideEffect,
       {{"ttl-set", 0, 1, false},
        {"ttl-dec", 0, 1, false},
        {"ttl-inc", 0, 1, false}}},
      {"CLASSIFY", kSideEffect, {{"set-class", 0, 1, false}}},
      {"TRACE", kSideEffect, {}},
      {"AUDIT", kSideEffect, {{"type", 0, 1, false}}},
      {"SECMARK", kSideEffect, {{"selctx", 0, 1, false}}},
      {"CONNSECMARK",
       kSideEffect,
       {{"save", 0, 0, false}, {"restore", 0, 0, false}}},
      {"TEE", kSideEffect, {{"gateway", 0, 1, false}, {"oif", 0, 1, false}}},
  };
  return t;
}

/// ModuleSpecs made from the tables (and one per unknown name), with stable
/// addresses: the walker keeps pointers to them and to their options.
struct Registry {
  std::deque<ModuleSpec> specs;
  std::map<std::string, const ModuleSpec *> modules, targets;
  std::set<const ModuleSpec *> byShape;
  std::map<const ModuleSpec *, std::string> reasons;

  const ModuleSpec *make(const std::string &name, const char *reason,
                         const std::vector<ModuleOption> &opts, bool shape) {
    ModuleSpec &s =
        specs.emplace_back(ModuleSpec{nullptr, opts, makeOpaque, false, 3});
    // The name lives in the reasons map's key space: keep one copy.
    names.push_back(name);
    s.name = names.back().c_str();
    for (ModuleOption &o : s.options)
      o.module = &s;
    if (shape)
      byShape.insert(&s);
    reasons[&s] = reason;
    return &s;
  }
  std::deque<std::string> names;
};

Registry &registry() {
  static Registry r;
  return r;
}

const ModuleSpec *lookupOpaque(const std::string &name, bool target) {
  Registry &r = registry();
  auto &cache = target ? r.targets : r.modules;
  if (auto it = cache.find(name); it != cache.end())
    return it->second;
  const std::vector<OpaqueSpec> &table = target ? targetTable() : moduleTable();
  for (const OpaqueSpec &s : table)
    if (name == s.name)
      return cache[name] = r.make(name, s.reason, s.options, false);
  return cache[name] =
             r.make(name,
                    target ? "target unknown to rule2xdp (its options were not "
                             "checked)"
                           : "match unknown to rule2xdp (its options were not "
                             "checked)",
                    {}, true);
}

/// -m addrtype in an iptables rule: decided in XDP where the address alone
/// gives the type (ir::Match::AddrType). ip6tables' (match_type6(), a route
/// lookup) is handed over whole.
bool OpaqueState::finishAddrType(const RuleFacts &facts,
                                 std::vector<ir::Match> &out,
                                 const std::string &what) const {
  if ((!addrSrc_ && !addrDst_) || otherOptions_ ||
      facts.family != ir::Family::V4)
    return false;
  out.emplace_back(ir::Match::AddrType{addrSrc_, addrDst_, addrSrcNegated_,
                                       addrDstNegated_, addrLimitIface_, what},
                   false, what);
  return true;
}

/// libxt_conntrack's conntrack3 options: --ctproto as -p reads a protocol
/// (0 with `!` refused: "rule would never match protocol"); --ctorigsrc and
/// the other addresses as -s reads one (XTTYPE_HOSTMASK); the ports as
/// PORT[:PORT] (XTTYPE_PORTRC); --ctstatus a comma-separated list of NONE,
/// EXPECTED, SEEN_REPLY, ASSURED, CONFIRMED (each item the beginning of a
/// name, without case; the first in that order wins,
/// conntrack_ps_status()); --ctdir ORIGINAL or REPLY (whole words).
void OpaqueState::finishConntrack(const RuleFacts &facts,
                                  ir::Match::CtState &c) const {
  static const char *const tupleOpts[] = {"ctorigsrc", "ctorigdst", "ctreplsrc",
                                          "ctrepldst"};
  for (const CtOption &o : ctOptions_) {
    std::string name = o.opt.text.substr(o.opt.text.find_first_not_of('-'));
    if (name == "ctproto") {
      uint8_t proto = parseProtocolValue(o.opt, o.value);
      if (proto == 0 && o.negated)
        failAt(o.value, "conntrack: rule would never match protocol");
      c.proto = ir::Match::CtState::Proto{proto, o.negated};
      continue;
    }
    if (name == "ctdir") {
      if (strcasecmp(o.value.text.c_str(), "ORIGINAL") == 0)
        c.reply = false;
      else if (strcasecmp(o.value.text.c_str(), "REPLY") == 0)
        c.reply = true;
      else
        failAt(o.value,
               "unknown --ctdir \"" + o.value.text + "\" (ORIGINAL or REPLY)");
      continue;
    }
    if (name == "ctstatus") {
      c.status = ir::Match::CtState::Status{parseStatus(o.value), o.negated};
      continue;
    }
    for (unsigned f = 0; f < 4; ++f) {
      if (name == tupleOpts[f])
        c.addrs[f] = ir::Match::CtState::Addr{
            parseNetwork(o.opt, o.value, facts.family), o.negated};
      else if (name == std::string(tupleOpts[f]) + "port") {
        ir::PortRange r = parseUdpPortRange(o.opt, o.value);
        c.ports[f] = ir::Match::CtState::Ports{r.lo, r.hi, o.negated};
      }
    }
  }
}

uint32_t OpaqueState::parseStatus(const Word &w) {
  static const std::pair<const char *, uint32_t> names[] = {
      {"NONE", 0},
      {"EXPECTED", 1},   // IPS_EXPECTED
      {"SEEN_REPLY", 2}, // IPS_SEEN_REPLY
      {"ASSURED", 4},    // IPS_ASSURED
      {"CONFIRMED", 8}}; // IPS_CONFIRMED
  uint32_t mask = 0;
  forEachItem(w, [&](const std::string &item, size_t start) {
    for (const auto &[n, b] : names)
      if (beginsName(item, n)) {
        mask |= b;
        return;
      }
    badItem(w, "bad ctstatus", item, start);
  });
  return mask;
}

void OpaqueState::finish(const RuleFacts &facts, std::vector<ir::Match> &out,
                         std::vector<std::string> &) {
  std::string what = "-m " + std::string(spec->name) + text_;
  // A state match alone is decided from XDP where conntrack's answer is
  // certain (ir::Match::CtState); the other conntrack options are not read
  // from XDP yet.
  if ((ctMask_ || !ctOptions_.empty()) && !otherOptions_) {
    ir::Match::CtState c;
    c.mask = ctMask_.value_or(0);
    c.what = what;
    c.hasState = ctMask_.has_value();
    finishConntrack(facts, c);
    out.emplace_back(std::move(c), ctNegated_, what);
    return;
  }
  if (finishAddrType(facts, out, what))
    return;
  if (isLimit() && !otherOptions_) {
    // limit_mt_check() refuses a burst of 0 on every kernel.
    if (limitBurst_ == 0)
      failAt(limitBurstWord_.text.empty() ? where : limitBurstWord_,
             "limit: --limit-burst 0: the kernel refuses it (Numerical "
             "result out of range)");
    // Up to a day's worth of tokens the kernel's credits (user2credits(),
    // avg * burst in 32 bits scaled by HZ) hold the bucket exactly; beyond
    // it they wrap in a way that depends on the kernel's HZ, so the kernel
    // keeps the match.
    if (uint64_t(limitAvg_) * limitBurst_ > 10000u * 86400u) {
      out.emplace_back(
          ir::Match::Unknown{what, "the rate's interval times the burst is "
                                   "over a day: the kernel's credits for it "
                                   "overflow 32 bits by an amount that "
                                   "depends on its HZ"},
          false, what);
      return;
    }
    out.emplace_back(ir::Match::Limit{limitAvg_, limitBurst_, what}, false,
                     what);
    return;
  }
  out.emplace_back(ir::Match::Unknown{what, registry().reasons[spec]}, false,
                   what);
}

} // namespace

const ModuleSpec *opaqueModule(const std::string &name) {
  return lookupOpaque(name, false);
}

const ModuleSpec *opaqueTarget(const std::string &name) {
  return lookupOpaque(name, true);
}

std::vector<HandoverEntry> handoverCatalog() {
  std::vector<HandoverEntry> out;
  for (bool target : {false, true})
    for (const OpaqueSpec &s : target ? targetTable() : moduleTable())
      out.push_back({target, s.name, s.reason, s.options});
  return out;
}

bool readsOptionsByShape(const ModuleSpec &spec) {
  return registry().byShape.count(&spec) != 0;
}

std::string targetReason(const std::string &name) {
  return registry().reasons[opaqueTarget(name)];
}

size_t readOptionByShape(const std::vector<Word> &words, size_t i, bool negated,
                         ModuleState &st) {
  auto &o = static_cast<OpaqueState &>(st);
  const std::string &w = words[i].text;
  size_t eq = w.find('=');
  o.add(w.substr(0, eq), negated);
  if (eq != std::string::npos)
    o.addValue(w.substr(eq + 1));
  while (i + 1 < words.size() && words[i + 1].text != "!" &&
         (words[i + 1].text.empty() || words[i + 1].text[0] != '-'))
    o.addValue(words[++i].text);
  return i;
}

namespace {

/// Targets in the nat table that translate source addresses or whose
/// effect is unknown: their connections' replies are rewritten by conntrack
/// at nat PREROUTING. DNAT and REDIRECT translate destinations: the rule
/// itself hands the original direction over, and replies are rewritten only
/// after the filter (POSTROUTING / INPUT).
bool translatesSource(const ir::Rule &r) {
  return r.verdict == ir::Verdict::Handover && r.target != "DNAT" &&
         r.target != "REDIRECT";
}

} // namespace

void finishHandover(ir::Program &prog) {
  // Reachability from the built-in chains received packets traverse.
  std::set<const ir::Chain *> reached;
  std::function<void(const ir::Chain &)> visit = [&](const ir::Chain &c) {
    if (!reached.insert(&c).second)
      return;
    for (const ir::Rule &r : c.rules)
      if (r.verdict == ir::Verdict::Jump || r.verdict == ir::Verdict::Goto)
        if (const ir::Chain *n =
                prog.userChain(c.family, c.table, r.jumpTarget))
          visit(*n);
  };
  for (const ir::Chain &c : prog.chains)
    if (!c.user)
      visit(c);
  for (const ir::Chain &c : prog.chains) {
    for (const ir::Rule &r : c.rules) {
      auto &nat = prog.kernelSourceNat[static_cast<size_t>(c.family)];
      if (c.table == ir::Table::Nat && translatesSource(r) && nat.empty())
        nat = r.pos.file + ":" + std::to_string(r.pos.line) + ": " + r.text;
      if (c.user && !reached.count(&c))
        prog.kernelOnly.push_back(
            {r.pos, r.text,
             "user chain " + c.name +
                 " is reached only from chains received packets never "
                 "traverse, or from nothing"});
    }
  }
  // -j CT can attach a helper (--helper), whose expectations make the
  // first packet of a connection RELATED; kernel-only rules count too (raw
  // OUTPUT assigns helpers to local connections).
  auto jumpsToCt = [](const std::string &text) {
    std::istringstream in(text);
    std::string prev, w;
    while (in >> w) {
      if ((prev == "-j" || prev == "--jump") && w == "CT")
        return true;
      prev = w;
    }
    return false;
  };
  auto where = [](const ir::SourcePos &p, const std::string &text) {
    return p.file + ":" + std::to_string(p.line) + ": " + text;
  };
  for (const ir::Chain &c : prog.chains)
    for (const ir::Rule &r : c.rules)
      if (prog.ctHelper.empty() && r.verdict == ir::Verdict::Handover &&
          r.target == "CT")
        prog.ctHelper = where(r.pos, r.text);
  for (const ir::KernelOnlyRule &k : prog.kernelOnly)
    if (prog.ctHelper.empty() && jumpsToCt(k.text))
      prog.ctHelper = where(k.pos, k.text);
  prog.chains.erase(std::remove_if(prog.chains.begin(), prog.chains.end(),
                                   [&](const ir::Chain &c) {
                                     return c.user && !reached.count(&c);
                                   }),
                    prog.chains.end());
  // The RST of a tcp-reset REJECT leaves through ip_local_out(): OUTPUT and
  // POSTROUTING of every table see it. XDP sends it only when nothing there
  // can change or drop it (no kernel-only rule, no DROP policy there).
  if (prog.egressFilter.empty() && !prog.kernelOnly.empty())
    prog.egressFilter =
        where(prog.kernelOnly.front().pos, prog.kernelOnly.front().text);
  if (!prog.egressFilter.empty())
    for (ir::Chain &c : prog.chains)
      for (ir::Rule &r : c.rules)
        if (r.verdict == ir::Verdict::Reject) {
          r.verdict = ir::Verdict::Handover;
          r.target = "REJECT";
          r.handoverReason =
              "tcp-reset: the kernel's RST goes through OUTPUT and "
              "POSTROUTING, and the ruleset has kernel-only rules or a DROP "
              "policy there (" +
              prog.egressFilter + ")";
        }
  std::stable_sort(
      prog.kernelOnly.begin(), prog.kernelOnly.end(),
      [](const ir::KernelOnlyRule &a, const ir::KernelOnlyRule &b) {
        return std::tie(a.pos.file, a.pos.line, a.pos.arg) <
               std::tie(b.pos.file, b.pos.line, b.pos.arg);
      });
}

std::string handoverListing(const ir::Program &prog, const SourceManager &sm) {
  if (prog.mode != ir::Mode::Handover)
    return {};
  (void)sm;
  std::ostringstream os;
  auto where = [](const ir::SourcePos &p) {
    if (p.line == 0)
      return std::string("<command line>");
    return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.col);
  };
  struct Item {
    ir::SourcePos pos;
    std::string text;
  };
  std::vector<Item> items;
  unsigned compiled = 0, handed = 0, stateful = 0, addrTyped = 0, rejects = 0;
  for (const ir::Chain &c : prog.chains)
    for (const ir::Rule &r : c.rules) {
      std::string why;
      bool ct = false, addrType = false;
      const ir::Match::Limit *side = prog.sideLimit(c, r);
      for (const ir::Match &m : r.matches) {
        if (const auto *u = m.as<ir::Match::Unknown>())
          why += (why.empty() ? "" : "; ") +
                 ("match `" + u->what + "': " + u->reason);
        ct = ct || m.as<ir::Match::CtState>();
        if (const auto *l = m.as<ir::Match::Limit>(); l && l != side)
          why += (why.empty() ? "" : "; ") +
                 ("match `" + l->what + "': " + kKernelState +
                  " (XDP carries it out only as the last match of a LOG "
                  "rule, or of a RETURN or jump that only decides which "
                  "LOG rules log)");
        if (const auto *a = m.as<ir::Match::AddrType>(); a && a->limitIface)
          why += (why.empty() ? "" : "; ") +
                 ("match `" + a->what + "': " + kAddrTypeIfaceReason);
        else
          addrType = addrType || a;
      }
      if (why.empty() && r.verdict == ir::Verdict::Reject) {
        ++rejects;
        items.push_back({r.pos, "note: RST built in XDP where it is provably "
                                "the kernel's, else handed over (" +
                                    std::string(kRejectConditions) +
                                    "): " + r.text});
        continue;
      }
      if ((ct || addrType || side) && why.empty() &&
          r.verdict != ir::Verdict::Handover) {
        std::string from;
        if (ct)
          from = "state from the kernel's conntrack (decided in XDP where "
                 "certain, else handed over)";
        if (addrType)
          from += (from.empty() ? "" : "; ") + std::string("address type (") +
                  kAddrTypeConditions + ")";
        if (side)
          from += (from.empty() ? "" : "; ") +
                  std::string(r.verdict == ir::Verdict::Log
                                  ? "LOG rate-limited"
                                  : "a rate limit deciding only which LOG "
                                    "rules log, taken") +
                  " in XDP by a token bucket of its own, as xt_limit's (the "
                  "kernel's bucket for the rule limits only the packets XDP "
                  "hands over)";
        ++(addrType ? addrTyped : ct ? stateful : compiled);
        items.push_back({r.pos, "note: " + from + ": " + r.text});
        continue;
      }
      if (r.verdict == ir::Verdict::Handover)
        why += (why.empty() ? "" : "; ") +
               ("target " + r.target + ": " + r.handoverReason);
      if (why.empty()) {
        ++compiled;
        continue;
      }
      ++handed;
      items.push_back({r.pos, "note: handed over (" + why + "): " + r.text});
    }
  for (const ir::KernelOnlyRule &k : prog.kernelOnly)
    items.push_back({k.pos, "note: kernel only (" + k.reason + "): " + k.text});
  std::stable_sort(items.begin(), items.end(),
                   [](const Item &a, const Item &b) {
                     return std::tie(a.pos.file, a.pos.line, a.pos.arg) <
                            std::tie(b.pos.file, b.pos.line, b.pos.arg);
                   });
  for (const Item &i : items)
    os << where(i.pos) << ": " << i.text << "\n";
  for (ir::Family f : {ir::Family::V4, ir::Family::V6})
    if (const std::string &n = prog.kernelSourceNat[static_cast<size_t>(f)];
        !n.empty())
      os << "rule2xdp: note: the kernel translates source addresses (" << n
         << "): conntrack rewrites the replies at nat PREROUTING, so every "
         << (f == ir::Family::V4 ? "IPv4" : "IPv6")
         << " packet is looked up there; a translated connection's packets, "
            "and those conntrack cannot look up from XDP (not TCP or UDP, "
            "fragments, IPv6 extension headers), are handed over\n";
  if (!prog.ctHelper.empty())
    os << "rule2xdp: note: the ruleset can attach a conntrack helper ("
       << prog.ctHelper
       << "): the first packet of a connection may be RELATED\n";
  os << "rule2xdp: hand-over mode: " << compiled << " rules decided in XDP, ";
  if (stateful)
    os << stateful << " with a state match decided where conntrack's answer "
       << "is certain, ";
  if (addrTyped)
    os << addrTyped << " with an address type match decided where XDP's "
       << "copy of the local routing table is current, ";
  if (rejects)
    os << rejects << " REJECT with tcp-reset sent from XDP where exact, ";
  os << handed << " handed over when reached, " << prog.kernelOnly.size()
     << " kernel only\n";
  return os.str();
}

} // namespace r2x::frontend
