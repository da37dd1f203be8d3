//===- compiler/ir/IR.h - the rule IR: contract between front and back -*- C++
//-*-===//
//
/// \file
/// The IR is what the iptables frontend (command lines, iptables-save files)
/// produces and what XdpCodegen compiles; tc u32 has its own (TcIR.h). It
/// depends on nothing else of ours and knows no concrete syntax: a rule is a
/// list of matches and one target, chains are ordered rule lists attached to
/// netfilter hooks, and every rule and built-in policy owns one counter slot.
///
/// Meaning is netfilter's (see docs/design.md): a rule matches when all its
/// matches match; the first matching rule's target decides; no match means
/// the chain policy. Each table is its own traversal, so ACCEPT in `raw`
/// goes on to `filter`.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace r2x::ir {

/// Where a piece of input came from, for diagnostics: a file line and
/// column, or a command-line argument index (line 0).
struct SourcePos {
  std::string file; ///< "<command line>" for argv
  unsigned line = 0;
  unsigned col = 0; ///< 1-based
  int arg = -1;     ///< argv index when the input is the command line
};

/// iptables (IPv4) or ip6tables (IPv6): separate tables in the kernel, and
/// separate chains here; one program holds both.
enum class Family { V4, V6 };

/// Tables in netfilter's order within a hook (raw, mangle, nat, filter).
enum class Table { Raw, Mangle, Nat, Filter };
/// Netfilter hooks a received packet can traverse.
enum class Hook { Prerouting, Input, Forward };
/// Continue: a rule with no -j only counts, then evaluation goes on.
/// Jump (-j CHAIN) runs a user chain and comes back; Goto (-g CHAIN) runs
/// it and does not come back; Return ends the current chain (in a built-in
/// chain: its policy). Dnat (nat PREROUTING only) binds the connection to a
/// new destination (Rule::nat) and ends the nat table. Handover (hand-over
/// mode only, docs/handover.md): a target XDP cannot carry out (Rule::target
/// names it); a packet the rule matches goes to the kernel (XDP_PASS), which
/// runs the same ruleset again. Reject (hand-over mode only,
/// docs/handover.md "REJECT"): `-j REJECT --reject-with tcp-reset`; XDP
/// sends the kernel's RST itself where it can prove it is the kernel's
/// (Rule::reject), and hands the packet over otherwise. Log (`-j LOG`,
/// Rule::log): the packet is logged (an r2x_log event, printed by
/// `rule2xdp --log` as the kernel's LOG target prints it), the rule counts,
/// and evaluation goes on with the next rule, as a rule without -j.
enum class Verdict {
  Accept,
  Drop,
  Continue,
  Jump,
  Goto,
  Return,
  Dnat,
  Handover,
  Reject,
  Log
};

/// `-j LOG` as libxt_LOG stores it (struct xt_log_info): the syslog level
/// (0..7, default 4), the XT_LOG_* flags (contract::LogFlag), the prefix
/// (at most 29 bytes, no newline).
struct LogTarget {
  uint8_t level = 4;
  uint8_t flags = 0;
  std::string prefix;
};
/// `LOG flags 0 level 4 prefix "x"`, as iptables -vxnL lists a LOG target.
std::string formatLogTarget(const LogTarget &t);

/// `-j REJECT [--reject-with TYPE]` as libipt_REJECT / libip6t_REJECT store
/// it: `with` is enum ipt_reject_with (iptables) or ip6t_reject_with
/// (ip6tables), `name` the type's canonical name as iptables -L prints it.
struct RejectTarget {
  unsigned with = 0;
  std::string name;
  bool tcpReset = false;
};

/// `-j DNAT --to-destination ADDR[:PORT[-PORT]] [--random] [--persistent]`.
/// One address (IPv4 host order, or addr6); ports 0 = keep the port.
struct NatTarget {
  uint32_t addr = 0;
  std::array<uint8_t, 16> addr6{}; ///< ip6tables: the address as on the wire
  bool v6 = false;
  uint16_t portLo = 0, portHi = 0;
  bool random = false, persistent = false;
};

const char *tableName(Table t);
const char *hookChainName(Hook h);
const char *verdictName(Verdict v);

/// An inclusive port range, as xt_tcpudp keeps it.
struct PortRange {
  uint16_t lo = 0, hi = 0xffff;
  bool negated = false;
};

/// A header field a FieldRange match compares: one enumerator per row of
/// Fields.def, which also says how it prints and how the backend reads it.
enum class Field {
#define R2X_FIELD(ENUM, NAME, BITS, FAMILIES, FORMAT, READER, WHERE) ENUM,
#include "compiler/ir/Fields.def"
};

/// The families a field exists in (Fields.def's FAMILIES column).
enum class FieldFamilies : uint8_t { V4 = 1, V6 = 2, Both = 3 };
/// How --emit=ir prints a field's values (Fields.def's FORMAT column).
enum class FieldFormat : uint8_t { Dec, Hex, Ipv4, Flags };

/// What the IR knows of a field: its row of Fields.def without the backend's
/// columns.
struct FieldInfo {
  const char *name; ///< as --emit=ir prints it
  unsigned bits;
  FieldFamilies families;
  FieldFormat format;
  /// The mask that keeps every bit of the field.
  constexpr uint64_t fullMask() const {
    return bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
  }
  constexpr bool existsIn(Family f) const {
    unsigned bit = f == Family::V4 ? 1u : 2u;
    return (static_cast<unsigned>(families) & bit) != 0;
  }
};

/// Indexed by Field: both are expanded from the same rows, in order.
inline constexpr FieldInfo kFieldInfo[] = {
#define R2X_FIELD(ENUM, NAME, BITS, FAMILIES, FORMAT, READER, WHERE)           \
  {NAME, BITS, FieldFamilies::FAMILIES, FieldFormat::FORMAT},
#include "compiler/ir/Fields.def"
};

constexpr const FieldInfo &fieldInfo(Field f) {
  return kFieldInfo[static_cast<size_t>(f)];
}

// Every row: a width the backend can hold in one 64-bit value.
#define R2X_FIELD(ENUM, NAME, BITS, FAMILIES, FORMAT, READER, WHERE)           \
  static_assert(BITS >= 1 && BITS <= 64, #ENUM ": a field is 1 to 64 bits");
#include "compiler/ir/Fields.def"

/// Whether every row prints a name of its own (lit tests tell fields apart
/// by it).
constexpr bool fieldNamesDistinct() {
  constexpr size_t n = sizeof kFieldInfo / sizeof kFieldInfo[0];
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j)
      if (std::string_view(kFieldInfo[i].name) == kFieldInfo[j].name)
        return false;
  return true;
}
static_assert(fieldNamesDistinct(), "two rows of Fields.def print one name");

/// TCP flags under a mask (`--tcp-flags MASK COMP`, `--syn`).
struct TcpFlags {
  uint8_t mask = 0, comp = 0;
  bool negated = false;
};

/// One test of `-m u32 --u32` (xt_u32): a location (a number, then
/// operators &, <<, >>, @ each with a number) and the value ranges the word
/// found there must fall in.
struct U32Test {
  enum class Op : uint8_t { And, Shl, Shr, At };
  uint32_t start = 0;
  std::vector<std::pair<Op, uint32_t>> ops;
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
};

/// One match of a rule: a kind with its own data (a std::variant, so every
/// consumer must say what it does with each kind: printer, metadata writer,
/// code generator) and what all kinds share.
///
/// The kinds mirror netfilter's split. Address, Protocol, Iface and
/// Fragment are `struct ipt_ip` fields checked by ip_packet_match()
/// (Fragment is `-f`: a non-first fragment). TcpUdp, Icmp and Multiport are
/// x_tables matches that read the transport header: they never match a
/// non-first fragment, and they "hotdrop" a packet whose header is cut
/// short. FieldRange is a header field (Fields.def) compared with a range
/// under a mask; U32 is xt_u32.
struct Match {
  /// -s / -d: (addr & mask) == net, host byte order, net already masked.
  /// IPv6 chains use net6/mask6 (network byte order).
  struct Address {
    enum class Side { Source, Destination } side = Side::Source;
    uint32_t net = 0, mask = 0;
    std::array<uint8_t, 16> net6{}, mask6{};
  };
  /// -p: the protocol number (IPv4: never 0, `-p all` is no match; IPv6: 0
  /// only asks that the extension-header walk succeed).
  struct Protocol {
    uint8_t proto = 0;
  };
  /// -i or -o: the iptables pattern ('+' suffix = prefix) and its bit in
  /// the object's interface table (Program::ifacePatterns; -i and -o share
  /// the bits: a bit says which patterns name a device). -i names the
  /// ingress device; -o the egress device of the routing decision, which
  /// exists only in FORWARD (in PREROUTING and INPUT netfilter compares
  /// the pattern with an empty name: only `+` matches it).
  struct Iface {
    std::string pattern;
    unsigned bit = 0;
    bool out = false; ///< -o
  };
  /// -f: a non-first fragment.
  struct Fragment {};
  /// xt_tcpudp: which protocol's header (6 or 17) and the optional tests,
  /// each carrying its own `!` (the match's `negated` stays false).
  struct TcpUdp {
    uint8_t proto = 0;
    std::optional<PortRange> sport, dport;
    std::optional<TcpFlags> flags;
    uint8_t option = 0; ///< tcp --tcp-option N (0 = none)
    bool optionNegated = false;
  };
  /// xt_icmp / icmp6: type (255 = any) and an inclusive code range.
  struct Icmp {
    uint8_t type = 255, codeLo = 0, codeHi = 255;
  };
  /// xt_multiport: ranges tested against the source, destination or either
  /// port.
  struct Multiport {
    enum class Side { Source, Destination, Either } side = Side::Either;
    std::vector<PortRange> ports;
  };
  /// ((field & mask) in [lo, hi]).
  struct FieldRange {
    Field field = Field::IpTos;
    uint64_t mask = ~uint64_t(0), lo = 0, hi = 0;
  };
  /// xt_u32: every test holds.
  struct U32 {
    std::vector<U32Test> tests;
  };
  /// Hand-over mode only: a match XDP cannot evaluate (a module it does not
  /// compile, ...). Reached in netfilter's order (every
  /// earlier match of the rule true), the packet goes to the kernel
  /// (XDP_PASS), which evaluates it. `what` is the match as written
  /// (`-m conntrack --ctstate NEW`), `reason` why XDP cannot evaluate it.
  struct Unknown {
    std::string what, reason;
  };
  /// Hand-over mode only: `-m conntrack --ctstate` / `-m state --state`
  /// (xt_conntrack, xt_state): true when the packet's state bits meet
  /// `mask`. The bits are xt_conntrack's (CtInvalid ...). XDP looks the
  /// connection up in the kernel's conntrack and computes the set of
  /// states the kernel could give the packet; the match is decided only
  /// when that set decides it, else the packet is handed over as for an
  /// Unknown match (docs/handover.md). `what` is the match as written.
  ///
  /// The other options of xt_conntrack (revision 3), each with its own `!`
  /// (the Match's `negated` is --ctstate's): the entry's protocol, the
  /// packet's direction, addresses and ports of the entry's original and
  /// reply tuples, its status bits. conntrack_mt() tests them only for a
  /// packet with an entry; without one (INVALID) the match is true exactly
  /// when --ctstate is given and holds. `hasState` false: no --ctstate.
  struct CtState {
    uint8_t mask = 0;
    std::string what;
    bool hasState = true;
    struct Proto {
      uint8_t proto = 0;
      bool negated = false;
    };
    struct Addr {
      Address addr; ///< `side` unused
      bool negated = false;
    };
    struct Ports {
      uint16_t lo = 0, hi = 0;
      bool negated = false;
    };
    struct Status {
      uint32_t mask = 0; ///< IPS_* bits (NONE: 0, never true)
      bool negated = false;
    };
    std::optional<Proto> proto;
    std::optional<bool> reply; ///< --ctdir: REPLY (true) or ORIGINAL
    /// Original source, original destination, reply source, reply
    /// destination (CtTupleField). Four entries, on the heap: inline they
    /// made every Match (a variant sized by its largest kind) 352 bytes,
    /// 1.4 KB a rule of a 100,000-rule ruleset that has no conntrack match.
    std::vector<std::optional<Addr>> addrs =
        std::vector<std::optional<Addr>>(4);
    std::optional<Ports> ports[4];
    std::optional<Status> status;
    /// Any option besides --ctstate.
    bool hasOptions() const {
      for (unsigned i = 0; i < 4; ++i)
        if (addrs[i] || ports[i])
          return true;
      return proto || reply || status;
    }
  };
  /// Which tuple field a CtState address or port option tests.
  enum CtTupleField : unsigned { CtOrigSrc, CtOrigDst, CtReplSrc, CtReplDst };
  /// Hand-over mode only, IPv4: `-m addrtype` (xt_addrtype): the source's
  /// and then the destination's route type (inet_dev_addr_type()) is in
  /// its mask (bit N: route type N, RTN_*; 0 = that side not tested), each
  /// with its own `!` (the match's `negated` stays false). 0.0.0.0/8 and
  /// 255.255.255.255 are BROADCAST and 224.0.0.0/4 MULTICAST by their
  /// numbers; any other address's type is the local routing table's, which
  /// the program reads from the loader's copy (r2x_local) while its lease
  /// holds, and hands the packet over otherwise. With `limitIface`
  /// (`--limit-iface-in/out`) the table's answer also depends on the
  /// device, which the copy does not hold: such addresses are handed over.
  struct AddrType {
    uint16_t src = 0, dst = 0;
    bool srcNegated = false, dstNegated = false;
    bool limitIface = false;
    std::string what; ///< the match as written
  };
  /// Hand-over mode only: `-m limit` (xt_limit), a token bucket per rule:
  /// `avg` the time between matches in 1/10000 s (XT_LIMIT_SCALE, as
  /// libxt_limit computes it from `--limit`), `burst` the bucket's size in
  /// matches (`--limit-burst`). XDP carries it out only where it decides
  /// which LOG rules log and count, never the verdict
  /// (Program::sideLimit()); anywhere else the packet is handed over at the
  /// match.
  struct Limit {
    uint32_t avg = 0, burst = 0;
    std::string what; ///< the match as written
  };
  /// xt_set (`-m set --match-set NAME FLAGS`): the packet's addresses,
  /// taken from the sides FLAGS names (one per set dimension), are looked up
  /// in ipset set Program::sets[set]. ip_set_test(): a plain entry gives 1,
  /// a `nomatch` entry -ENOTEMPTY and no entry 0; only a positive result
  /// matches, except that `--return-nomatch` (types with nomatch entries
  /// only) swaps the two. Fewer flags than the set has dimensions: never a
  /// match.
  struct Set {
    unsigned set = 0;
    std::vector<bool> src; ///< FLAGS, first dimension first: src (true) or dst
    bool returnNomatch = false;
  };
  using Kind =
      std::variant<Address, Protocol, Iface, Fragment, TcpUdp, Icmp, Multiport,
                   FieldRange, U32, Unknown, CtState, AddrType, Set, Limit>;

  explicit Match(Kind k, bool negated = false, std::string listing = {})
      : kind(std::move(k)), negated(negated), listing(std::move(listing)) {}

  Kind kind;
  bool negated = false; ///< `!` before the match (TcpUdp: always false)
  std::string listing;  ///< what `iptables -vxnL` prints for it, if anything

  /// The kind's data if the match is of kind K, else null.
  template <class K> const K *as() const { return std::get_if<K>(&kind); }
  template <class K> K *as() { return std::get_if<K>(&kind); }
};

/// The state bits of xt_conntrack (XT_CONNTRACK_STATE_*, with
/// XT_STATE_BIT(ctinfo) = 1 << (ctinfo % IP_CT_IS_REPLY + 1)); xt_state uses
/// the same first five.
enum CtStateBit : uint8_t {
  CtInvalid = 1,
  CtEstablished = 2,
  CtRelated = 4,
  CtNew = 8,
  CtUntracked = 16,
  CtSnat = 32,
  CtDnat = 64,
};
/// `NEW,ESTABLISHED` as iptables -n lists a state mask.
std::string formatCtState(uint8_t mask);

/// The route types by number (the kernel's RTN_* of linux/rtnetlink.h, as
/// libxt_addrtype names them): bit N of a Match::AddrType mask is type N.
inline constexpr const char *kAddrTypeNames[] = {
    "UNSPEC",    "UNICAST",     "LOCAL",    "BROADCAST", "ANYCAST", "MULTICAST",
    "BLACKHOLE", "UNREACHABLE", "PROHIBIT", "THROW",     "NAT",     "XRESOLVE"};
/// `LOCAL,BROADCAST` as iptables lists an address type mask.
std::string formatAddrTypes(uint16_t mask);

/// `std::visit(Overloaded{[](const Match::Address &) {...}, ...}, m.kind)`:
/// one lambda per kind, and a kind without one does not compile.
template <class... Fs> struct Overloaded : Fs... { using Fs::operator()...; };
template <class... Fs> Overloaded(Fs...) -> Overloaded<Fs...>;

struct Rule {
  SourcePos pos;
  std::string text; ///< the rule as written, for comments and listings
  std::vector<Match> matches;
  std::vector<std::string> comments; ///< -m comment (listing only)
  Verdict verdict = Verdict::Accept;
  std::string jumpTarget; ///< the user chain of Jump and Goto
  NatTarget nat;          ///< Dnat's binding
  RejectTarget reject;    ///< Reject's (and a handed-over REJECT's) type
  LogTarget log;          ///< Log's options
  unsigned counter = 0;   ///< slot in the counters map (assigned by finalize)
  /// Handover: the target as written (`MARK`) and why XDP cannot carry it
  /// out.
  std::string target, handoverReason;
};

struct Chain {
  Family family = Family::V4;
  Table table;
  Hook hook;         ///< meaningless for a user chain
  bool user = false; ///< created with -N / `:NAME -`: no hook, no policy
  std::string name;
  Verdict policy = Verdict::Accept;
  std::vector<Rule> rules;
  unsigned policyCounter = 0; ///< slot of the policy counter (built-in only)
  SourcePos pos;              ///< where it was declared, if anywhere
};

/// A rule the kernel alone evaluates in hand-over mode: it is in a chain
/// received packets never traverse (OUTPUT, POSTROUTING, nat INPUT, a user
/// chain reached only from those or from nothing, the security table,
/// which runs after filter), so it is syntax-checked and never compiled.
struct KernelOnlyRule {
  SourcePos pos;
  std::string text;   ///< the rule as written
  std::string reason; ///< why received packets never reach it in XDP
};

/// An ipset set, as `ipset save` prints it (`rule2xdp --sets FILE`). The
/// hash types keep addresses: hash:ip (every entry one address, or one
/// network of the set's `netmask`) and hash:net (networks of any prefix,
/// some `nomatch`), and the same with a protocol and port (hash:ip,port,
/// hash:net,port). They test a packet's address as an LPM lookup (with the
/// protocol and port exact): the most specific entry covering it decides
/// (ip_set_hash_gen.h's mtype_test_cidrs() tries the set's prefixes longest
/// first). bitmap:port keeps ports in a range, of either family. list:set
/// holds other sets: a packet is in it when it is in one of them, each
/// tested with the rule's flags and --return-nomatch (list_set_ktest()).
struct IpSet {
  enum class Type {
    HashIp,
    HashNet,
    HashIpPort,
    HashNetPort,
    BitmapPort,
    ListSet
  };
  struct Entry {
    std::array<uint8_t, 16> addr{}; ///< network byte order, masked
    uint8_t prefix = 0;             ///< 1..32 or 1..128
    bool nomatch = false;
    uint16_t port = 0; ///< ,port types and bitmap:port
    uint8_t proto = 0; ///< ,port types: tcp, udp, sctp, udplite (or port 0)
  };
  std::string name;
  Type type = Type::HashNet;
  Family family = Family::V4;        ///< meaningless for bitmap:port
  uint8_t netmask = 0;               ///< hash:ip: every entry's prefix
  uint16_t rangeLo = 0, rangeHi = 0; ///< bitmap:port's `range`
  uint32_t maxelem = 65536; ///< the hash types' `maxelem`: how far it grows
  std::vector<Entry> entries;
  std::vector<unsigned> members; ///< list:set: Program::sets indexes, in order
  SourcePos pos;                 ///< the `create` line
  /// Whether the type has ipset's IPSET_TYPE_NOMATCH feature.
  bool hasNomatch() const {
    return type == Type::HashNet || type == Type::HashNetPort;
  }
  bool hasAddress() const {
    return type != Type::BitmapPort && type != Type::ListSet;
  }
  bool hasPort() const {
    return type == Type::HashIpPort || type == Type::HashNetPort ||
           type == Type::BitmapPort;
  }
  /// ipset's dimension: how many src/dst flags a test reads.
  unsigned dimension() const {
    return type == Type::HashIpPort || type == Type::HashNetPort ? 2 : 1;
  }
  /// Whether rules of family `f` may name it (bitmap:port is NFPROTO_UNSPEC).
  /// list:set is too (its members each have their own).
  bool fits(Family f) const {
    return type == Type::BitmapPort || type == Type::ListSet || f == family;
  }
};
const char *setTypeName(IpSet::Type t);

/// What XDP_PASS means (docs/handover.md).
enum class Mode {
  /// XDP is the whole ingress firewall: XDP_PASS means accepted, and
  /// anything XDP cannot do exactly is a compile error.
  Standalone,
  /// The kernel keeps the same ruleset: XDP_PASS means "the kernel
  /// decides". XDP decides only drops it can prove the kernel would make.
  Handover,
};

/// A whole ruleset for the ingress path. Chains are kept in netfilter's
/// traversal order by finalize().
/// One input a program was compiled from (Program::source).
struct SourcePart {
  bool file = false; ///< a ruleset file (name, text) or one command (words)
  Family family = Family::V4;
  std::string name, text;
  std::vector<std::string> words;
};

struct Program {
  std::vector<Chain> chains;
  /// What the program was compiled from, in order (ruleset files, the
  /// command line's command, later edits): kept in the object so that a
  /// loaded program can be changed (`--load IFACE -A ...`) and compiled
  /// again. Empty for programs read from the kernel (--accelerate).
  std::vector<SourcePart> source;
  std::vector<std::string> ifacePatterns; ///< index = Match::Iface::bit
  unsigned numCounters = 0;
  Mode mode = Mode::Standalone;
  /// Hand-over mode: rules only the kernel evaluates, in input order.
  std::vector<KernelOnlyRule> kernelOnly;
  /// The ipset sets of `--sets FILE` (Match::Set::set indexes them), and
  /// whether that option was given: in hand-over mode `-m set` is compiled
  /// only then (the user vouches that the kernel's sets are these).
  std::vector<IpSet> sets;
  bool setsGiven = false;
  /// The set called `name`, or null.
  const IpSet *findSet(const std::string &name) const;
  /// Hand-over mode, per family (index: Family): non-empty when the kernel
  /// translates source addresses (SNAT, MASQUERADE, ...). conntrack then
  /// rewrites the destination of their replies at nat PREROUTING, before
  /// any later chain sees them; without a conntrack lookup XDP cannot tell
  /// such a reply, so it hands every packet over after mangle PREROUTING.
  /// Names the first such rule.
  std::array<std::string, 2> kernelSourceNat;
  /// Hand-over mode: non-empty when the ruleset can attach a conntrack
  /// helper (`-j CT`), whose expectations make a connection's first packet
  /// RELATED instead of NEW. Names the first such rule.
  std::string ctHelper;
  /// Hand-over mode: non-empty when a RST the kernel sends could be changed
  /// or dropped on its way out (a rule in OUTPUT or POSTROUTING, a DROP
  /// policy there, any other kernel-only rule). Names the first one; every
  /// tcp-reset REJECT is then handed over.
  std::string egressFilter;
  /// Hand-over mode: non-empty when XDP must decide no packet at all (the
  /// kernel runs rules XDP cannot read beside these, such as native
  /// nftables chains: `--accelerate --follow`); says why. The program
  /// hands every packet over before its first chain, yet keeps every rule
  /// and counter slot, so a later program carries their counts on.
  std::string handAll;
  /// With a Log verdict XDP carries out: the counter slot that counts LOG
  /// events not written (assigned by finalize; 0 and unused without one).
  unsigned logLostCounter = 0;
  bool hasLog() const;
  /// Whether any chain has a state match (the program then looks the
  /// packet up in conntrack).
  bool usesCtState() const;
  /// Whether any chain has a -o match (`out`: the FORWARD hook then looks
  /// up the patterns naming the routing decision's egress device) or a -i
  /// match (the ingress device's, once per packet).
  bool usesIface(bool out) const;
  /// Whether any chain has an `-m addrtype` match without
  /// --limit-iface-in/out (the program then reads the loader's copy of the
  /// local routing table, r2x_local).
  bool usesLocalTable() const;
  /// The `-m limit` XDP carries out in rule `r` of chain `c`: the rule's
  /// last match, where its answer decides only which LOG rules log and
  /// count, never the verdict: a LOG rule or one without a target; a
  /// RETURN in a user chain that
  /// only logs (logOnly()); a jump (not a goto) to a chain that only logs.
  /// Null for any other rule (its limit is handed over at the match).
  const Match::Limit *sideLimit(const Chain &c, const Rule &r) const;
  /// Whether every rule of `c` is a LOG rule, a RETURN, a rule without a
  /// target, or a jump to a chain of which this holds: whatever its rules
  /// match, the packet leaves it as it came, for the next rule of the
  /// chain that jumped to it.
  bool logOnly(const Chain &c) const;
  /// Whether `pred` holds for any match of any rule.
  bool anyMatch(const std::function<bool(const Match &)> &pred) const;

  /// The chain for (family, table, hook), created with policy ACCEPT if
  /// absent.
  Chain &chain(Family f, Table t, Hook h);
  /// The user chain `name` of table `t` of family `f`, or null.
  Chain *userChain(Family f, Table t, const std::string &name);
  const Chain *userChain(Family f, Table t, const std::string &name) const;
  /// The bit for an interface pattern, allocating a new one if needed.
  /// Returns -1 when the 64 available bits are used up.
  int ifaceBit(const std::string &pattern);
  /// Sorts chains into traversal order (raw PREROUTING, filter INPUT,
  /// filter FORWARD; a filter table always shows both; user chains after
  /// the built-in chains of their table, in declaration order) and assigns
  /// counter slots: rules first in chain order, then one policy slot per
  /// built-in chain.
  void finalize();
  bool hasHook(Hook h) const;
  /// Whether any nat chain of family `f` has a rule (DNAT needs the NAT
  /// table and the forwarding fast path).
  bool hasNat(Family f) const;
  bool hasFamily(Family f) const;
};

/// Human-readable dump of the IR (`--emit=ir`); stable for lit tests.
std::string print(const Program &p);
/// One rule's matches and verdict as print() shows them (not its counter,
/// text or comments).
std::string printRule(const Program &p, const Rule &r, bool v6);

/// Dotted-quad form of a host-order address.
std::string formatAddr(uint32_t a);
/// `10.0.0.0/8` style: prefix length if the mask is contiguous, else the
/// dotted mask, as iptables -n prints them.
std::string formatNet(uint32_t net, uint32_t mask);
/// IPv6 forms, as ip6tables -n prints them (`2001:db8::/32`, `::/0`).
std::string formatAddr6(const std::array<uint8_t, 16> &a);
std::string formatNet6(const std::array<uint8_t, 16> &net,
                       const std::array<uint8_t, 16> &mask);
const char *familyName(Family f);
/// `to:10.1.1.2:8080-8090 random`, as iptables -n lists a DNAT target.
std::string formatNatTarget(const NatTarget &t);

} // namespace r2x::ir
