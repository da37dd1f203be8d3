//===- runtime/contract/Object.h - the object contract ----------*- C++ -*-===//
//
/// \file
/// The object contract: every fact that the code generators (the producers
/// of a rule2xdp object, compiler/backend) and its consumers (the loader and
/// `--stats` in runtime/, the tests, the benchmarks) must agree on, in one
/// place. It is written down, with its version history, in
/// docs/object-contract.md; that document and this header change together.
///
/// Plain C++ on purpose, with neither LLVM nor libbpf: the compiler includes
/// it to build the object, the runtime to read one, without either
/// depending on the other's libraries (as xdp-tools' common_kern_user.h is
/// shared by a BPF program and its user-space tool).
///
///  - the program: name, section, license;
///  - every map: name, type, key and value layouts (structs with their
///    sizes and offsets checked at compile time, and each struct's member
///    table, from which the code generators build the BTF), fixed
///    max_entries;
///  - the metadata text: its symbol, magic, version and every record kind
///    with its fields;
///  - the files on the host: convenience pins under bpffs, lock files.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>

namespace r2x::contract {

//===-- the program -------------------------------------------------------===//

/// The BPF program: an external function of this name in this section.
inline constexpr const char *ProgName = "rule2xdp";
inline constexpr const char *ProgSection = "xdp";
/// `char _license[] SEC("license") = "GPL"`: the helpers and kfuncs the
/// program calls are GPL-only.
inline constexpr const char *LicenseSymbol = "_license";
inline constexpr const char *LicenseSection = "license";
inline constexpr const char *License = "GPL";
/// The object name a loader gives libbpf when it opens an object from
/// memory (bpf_object_open_opts.object_name); libbpf derives the internal
/// maps' names from it ("rule2xdp.rodata", cut to 15 characters).
inline constexpr const char *ObjectName = "rule2xdp";

//===-- map types and struct layouts --------------------------------------===//

/// The BPF map types rule2xdp objects use (enum bpf_map_type values from
/// linux/bpf.h; runtime/BpfObject.cpp checks them against that header).
enum class MapType : uint32_t {
  Hash = 1,
  Array = 2,
  PercpuArray = 6,
  LruHash = 9,
  LpmTrie = 11,
  Devmap = 14,
  DevmapHash = 25,
  Ringbuf = 27,
};

struct StructLayout;

/// One member of a struct the object's BTF describes: its BTF name, its
/// byte offset and size, and either an unsigned integer of that size
/// (`type` null) or a nested struct. `typeSize` repeats the nested struct's
/// size so that wellFormed() needs no pointer test: GCC's UBSan makes
/// `&layout != nullptr` a non-constant expression in a static_assert.
struct Field {
  const char *name;
  uint32_t offset;
  uint32_t size;
  const StructLayout *type = nullptr;
  uint32_t typeSize = 0;
};

/// A struct as the object's BTF names and lays it out. The code generators
/// build the BTF from this table (BtfBuilder::structType), and the static
/// assertions below check the table against the C++ struct, so the BTF, the
/// program's loads and stores (offsetof) and the runtime's reads cannot
/// drift apart.
struct StructLayout {
  const char *name; ///< the BTF struct name
  uint32_t size;
  const Field *fields;
  std::size_t count;

  constexpr const Field *begin() const { return fields; }
  constexpr const Field *end() const { return fields + count; }
};

template <std::size_t N>
constexpr StructLayout layout(const char *name, std::size_t size,
                              const Field (&fields)[N]) {
  return {name, static_cast<uint32_t>(size), fields, N};
}

/// True if the members are in offset order, do not overlap, lie inside the
/// struct, are naturally aligned, and together cover every byte (explicit
/// padding members included: hash keys are compared byte by byte).
constexpr bool wellFormed(const StructLayout &s) {
  uint32_t next = 0;
  for (const Field &f : s) {
    if (f.offset != next || f.size == 0 ||
        (f.typeSize != 0 && f.typeSize != f.size))
      return false;
    uint32_t align = f.typeSize != 0 ? 4 : f.size;
    if (f.offset % align != 0)
      return false;
    next = f.offset + f.size;
  }
  return next == s.size;
}

/// A member of struct T for a layout table, named as in T (which is named
/// as in the BTF).
// clang-format off
#define R2X_CONTRACT_FIELD(T, member)                                          \
  ::r2x::contract::Field{#member, static_cast<uint32_t>(offsetof(T, member)),  \
                         static_cast<uint32_t>(sizeof(T::member))}
#define R2X_CONTRACT_NESTED(T, member, layout)                                 \
  ::r2x::contract::Field{#member, static_cast<uint32_t>(offsetof(T, member)),  \
                         static_cast<uint32_t>(sizeof(T::member)), &(layout), \
                         (layout).size}
// clang-format on

/// A map as the object declares it. `maxEntries` 0 means the program
/// chooses it (see the map's comment).
struct MapSpec {
  const char *name;
  MapType type;
  uint32_t keySize;
  uint32_t valueSize;
  uint32_t maxEntries;
  uint32_t flags = 0; ///< map_flags (BPF_F_*)
};

/// BPF_F_NO_PREALLOC (linux/bpf.h), which an LPM trie requires.
inline constexpr uint32_t MapNoPrealloc = 1;

//===-- r2x_counters: a per-CPU counter per rule and policy ---------------===//

/// The value of one counter slot, per CPU; `bytes` adds each packet's
/// length as the original counts it (iptables: the IP total length; tc: the
/// frame after the Ethernet header).
struct CounterValue {
  uint64_t packets;
  uint64_t bytes;
};
inline constexpr Field CounterFields[] = {
    R2X_CONTRACT_FIELD(CounterValue, packets),
    R2X_CONTRACT_FIELD(CounterValue, bytes)};
inline constexpr StructLayout CounterLayout =
    layout("r2x_counter", sizeof(CounterValue), CounterFields);
static_assert(sizeof(CounterValue) == 16 && offsetof(CounterValue, bytes) == 8);
static_assert(wellFormed(CounterLayout));

/// PERCPU_ARRAY u32 slot -> CounterValue; max_entries is the program's slot
/// count (at least 1: an array cannot be empty). Slots are named by the
/// metadata's `chain` and `rule` records.
inline constexpr MapSpec CountersMap{"r2x_counters", MapType::PercpuArray,
                                     sizeof(uint32_t), sizeof(CounterValue), 0};
constexpr uint32_t counterEntries(uint32_t slots) { return slots ? slots : 1; }

//===-- r2x_ifmatch: the `-i`/`-o` patterns naming a device ---------------===//

/// The key: the device the program runs on and the VLAN ids of the frame's
/// tags (0 = none; a priority tag, VID 0, keys as untagged). The loader keys
/// every device a pattern names by its ifindex and no tags, so {ifindex, 0,
/// 0} is also how `-o` finds the patterns naming the routing decision's
/// egress device.
struct IfKey {
  uint32_t ifindex;
  uint16_t vid_outer;
  uint16_t vid_inner;
  auto operator<=>(const IfKey &) const = default;
};
inline constexpr Field IfKeyFields[] = {R2X_CONTRACT_FIELD(IfKey, ifindex),
                                        R2X_CONTRACT_FIELD(IfKey, vid_outer),
                                        R2X_CONTRACT_FIELD(IfKey, vid_inner)};
inline constexpr StructLayout IfKeyLayout =
    layout("r2x_ifkey", sizeof(IfKey), IfKeyFields);
static_assert(sizeof(IfKey) == 8 && offsetof(IfKey, vid_outer) == 4 &&
              offsetof(IfKey, vid_inner) == 6);
static_assert(wellFormed(IfKeyLayout));

/// The value: a u64 bitmask, bit N set when the metadata's `iface N
/// PATTERN` names the device (`-i` and `-o` share the patterns). So an object
/// has at most 64 patterns.
using IfMask = uint64_t;
inline constexpr unsigned MaxIfacePatterns = 64;
/// IFNAMSIZ - 1: the longest interface name, and pattern ('+' included).
inline constexpr std::size_t MaxIfaceName = 15;

/// HASH IfKey -> IfMask, filled by the loader. A tc object has no `-i` and
/// declares it with one entry (IfmatchEntriesTc).
inline constexpr MapSpec IfmatchMap{"r2x_ifmatch", MapType::Hash, sizeof(IfKey),
                                    sizeof(IfMask), 256};
inline constexpr uint32_t IfmatchEntriesTc = 1;

//===-- r2x_ifmac: each device's MAC, for PACKET_OTHERHOST ----------------===//

/// ARRAY ifindex -> the device's MAC in frame byte order followed by two
/// zero bytes, read by the program as one u64 (0: not checked). Devices
/// whose ifindex is beyond the array are not checked.
struct MacValue {
  uint8_t addr[6];
  uint8_t zero[2];
};
static_assert(sizeof(MacValue) == sizeof(uint64_t));
inline constexpr MapSpec IfmacMap{"r2x_ifmac", MapType::Array, sizeof(uint32_t),
                                  sizeof(MacValue), 65536};

//===-- r2x_hdr, r2x_scratch: the program's own work space ----------------===//

/// IPv4 header fields rules compare, stored once and read back at each use
/// (compiler/backend/XdpCodegen.cpp, storeHeader()); host byte order; the
/// ports are 0 when the packet has none. In a program with classified runs
/// also the classifier's port dimensions (compiler/classify/Classify.h:
/// the port, PortShort or PortNone; storeRunKey() in
/// compiler/backend/ClassifyCodegen.cpp), so that each run's call reads its
/// key without the five paths that decide it, and the -i mask of the
/// packet (IfMasks::in) for the runs' `-i` rules.
struct Hdr {
  uint32_t saddr;
  uint32_t daddr;
  uint16_t sport;
  uint16_t dport;
  uint32_t proto;
  uint32_t sport_key;
  uint32_t dport_key;
  uint64_t ifmask;
};
inline constexpr Field HdrFields[] = {
    R2X_CONTRACT_FIELD(Hdr, saddr),     R2X_CONTRACT_FIELD(Hdr, daddr),
    R2X_CONTRACT_FIELD(Hdr, sport),     R2X_CONTRACT_FIELD(Hdr, dport),
    R2X_CONTRACT_FIELD(Hdr, proto),     R2X_CONTRACT_FIELD(Hdr, sport_key),
    R2X_CONTRACT_FIELD(Hdr, dport_key), R2X_CONTRACT_FIELD(Hdr, ifmask)};
inline constexpr StructLayout HdrLayout =
    layout("r2x_hdr", sizeof(Hdr), HdrFields);
static_assert(sizeof(Hdr) == 32 && offsetof(Hdr, sport) == 8 &&
              offsetof(Hdr, proto) == 12 && offsetof(Hdr, dport_key) == 20 &&
              offsetof(Hdr, ifmask) == 24);
static_assert(wellFormed(HdrLayout));
/// PERCPU_ARRAY, one slot; in objects with IPv4 rules.
inline constexpr MapSpec HdrMap{"r2x_hdr", MapType::PercpuArray,
                                sizeof(uint32_t), sizeof(Hdr), 1};

/// Where the IPv6 extension-header walk's exits meet
/// (compiler/backend/PacketParser.cpp): walk succeeded (bit 0) and passed
/// a fragment header (bit 1), upper-layer protocol, its offset, fragment
/// offset. The program's own scratch space: no loader reads it.
struct Scratch {
  uint32_t walk_ok;
  uint32_t proto;
  uint32_t thoff;
  uint32_t fragoff;
};
inline constexpr Field ScratchFields[] = {
    R2X_CONTRACT_FIELD(Scratch, walk_ok), R2X_CONTRACT_FIELD(Scratch, proto),
    R2X_CONTRACT_FIELD(Scratch, thoff), R2X_CONTRACT_FIELD(Scratch, fragoff)};
inline constexpr StructLayout ScratchLayout =
    layout("r2x_scratch", sizeof(Scratch), ScratchFields);
static_assert(sizeof(Scratch) == 16 && offsetof(Scratch, fragoff) == 12);
static_assert(wellFormed(ScratchLayout));
/// PERCPU_ARRAY, one slot; in objects with IPv6 rules.
inline constexpr MapSpec ScratchMap{"r2x_scratch", MapType::PercpuArray,
                                    sizeof(uint32_t), sizeof(Scratch), 1};

/// The bitmasks of the -i patterns naming the ingress device and of the -o
/// patterns naming FORWARD's egress device (r2x_ifmatch's values), stored
/// once per packet and read back at every -i / -o match. Kept in a
/// register, a mask a rule tested stays known on that rule's paths: n rules
/// of different patterns that do not end the packet left the verifier up
/// to 2^n states at every later rule (17-rule blocks each after one -i
/// rule: 20 blocks did not load). A map value it does not track. The
/// program's own scratch space: no loader reads it. Programs of up to 8
/// rules, none classified, keep the masks in registers and have no such map.
struct IfMasks {
  uint64_t in;
  uint64_t out;
};
inline constexpr Field IfMasksFields[] = {R2X_CONTRACT_FIELD(IfMasks, in),
                                          R2X_CONTRACT_FIELD(IfMasks, out)};
inline constexpr StructLayout IfMasksLayout =
    layout("r2x_ifmasks", sizeof(IfMasks), IfMasksFields);
static_assert(sizeof(IfMasks) == 16 && offsetof(IfMasks, out) == 8);
static_assert(wellFormed(IfMasksLayout));
/// PERCPU_ARRAY, one slot; in objects with -i or -o matches.
inline constexpr MapSpec IfMasksMap{"r2x_ifmasks", MapType::PercpuArray,
                                    sizeof(uint32_t), sizeof(IfMasks), 1};

/// Hand-over mode's path record (compiler/backend/XdpCodegen.cpp,
/// recordOnPath()): one bit per jump, RETURN, count-only or LOG rule the
/// packet passed, counted only if XDP drops it. In a map, not on the
/// stack: the verifier follows a stack word's exact value, so n rules whose
/// matches it cannot relate gave it 2^n states to walk; a map value it
/// does not track.
struct Path {
  uint64_t w0, w1, w2, w3, w4, w5, w6, w7;
};
inline constexpr Field PathFields[] = {
    R2X_CONTRACT_FIELD(Path, w0), R2X_CONTRACT_FIELD(Path, w1),
    R2X_CONTRACT_FIELD(Path, w2), R2X_CONTRACT_FIELD(Path, w3),
    R2X_CONTRACT_FIELD(Path, w4), R2X_CONTRACT_FIELD(Path, w5),
    R2X_CONTRACT_FIELD(Path, w6), R2X_CONTRACT_FIELD(Path, w7)};
inline constexpr StructLayout PathLayout =
    layout("r2x_path", sizeof(Path), PathFields);
static_assert(sizeof(Path) == 64 && wellFormed(PathLayout));
/// PERCPU_ARRAY, one slot; in hand-over objects.
inline constexpr MapSpec PathMap{"r2x_path", MapType::PercpuArray,
                                 sizeof(uint32_t), sizeof(Path), 1};

//===-- r2x_nat / r2x_nat6: DNAT connection tables ------------------------===//

/// An IPv6 address as four 32-bit words in wire order.
struct In6 {
  uint32_t w0, w1, w2, w3;
};
inline constexpr Field In6Fields[] = {
    R2X_CONTRACT_FIELD(In6, w0), R2X_CONTRACT_FIELD(In6, w1),
    R2X_CONTRACT_FIELD(In6, w2), R2X_CONTRACT_FIELD(In6, w3)};
inline constexpr StructLayout In6Layout =
    layout("r2x_in6", sizeof(In6), In6Fields);
static_assert(sizeof(In6) == 16 && wellFormed(In6Layout));

/// A connection's key, every field as on the wire (ICMP queries: sport =
/// identifier, dport = 0; protocols without ports: both 0). The padding is
/// part of the hash key and always zero.
template <class Addr> struct NatKeyOf {
  Addr saddr;
  Addr daddr;
  uint16_t sport;
  uint16_t dport;
  uint8_t proto;
  uint8_t pad1;
  uint16_t pad2;
};
/// The translation: dir Original = a packet in the original direction gets
/// destination addr:port; dir Reply = a reply gets source addr:port.
template <class Addr> struct NatValueOf {
  Addr addr;
  uint16_t port;
  uint8_t dir;
  uint8_t pad;
};
enum NatDir : uint8_t { NatOriginal = 0, NatReply = 1 };

using NatKey = NatKeyOf<uint32_t>;
using NatValue = NatValueOf<uint32_t>;
using Nat6Key = NatKeyOf<In6>;
using Nat6Value = NatValueOf<In6>;

inline constexpr Field NatKeyFields[] = {
    R2X_CONTRACT_FIELD(NatKey, saddr), R2X_CONTRACT_FIELD(NatKey, daddr),
    R2X_CONTRACT_FIELD(NatKey, sport), R2X_CONTRACT_FIELD(NatKey, dport),
    R2X_CONTRACT_FIELD(NatKey, proto), R2X_CONTRACT_FIELD(NatKey, pad1),
    R2X_CONTRACT_FIELD(NatKey, pad2)};
inline constexpr Field NatValueFields[] = {
    R2X_CONTRACT_FIELD(NatValue, addr), R2X_CONTRACT_FIELD(NatValue, port),
    R2X_CONTRACT_FIELD(NatValue, dir), R2X_CONTRACT_FIELD(NatValue, pad)};
inline constexpr Field Nat6KeyFields[] = {
    R2X_CONTRACT_NESTED(Nat6Key, saddr, In6Layout),
    R2X_CONTRACT_NESTED(Nat6Key, daddr, In6Layout),
    R2X_CONTRACT_FIELD(Nat6Key, sport),
    R2X_CONTRACT_FIELD(Nat6Key, dport),
    R2X_CONTRACT_FIELD(Nat6Key, proto),
    R2X_CONTRACT_FIELD(Nat6Key, pad1),
    R2X_CONTRACT_FIELD(Nat6Key, pad2)};
inline constexpr Field Nat6ValueFields[] = {
    R2X_CONTRACT_NESTED(Nat6Value, addr, In6Layout),
    R2X_CONTRACT_FIELD(Nat6Value, port), R2X_CONTRACT_FIELD(Nat6Value, dir),
    R2X_CONTRACT_FIELD(Nat6Value, pad)};
inline constexpr StructLayout NatKeyLayout =
    layout("r2x_nat_key", sizeof(NatKey), NatKeyFields);
inline constexpr StructLayout NatValueLayout =
    layout("r2x_nat_value", sizeof(NatValue), NatValueFields);
inline constexpr StructLayout Nat6KeyLayout =
    layout("r2x_nat6_key", sizeof(Nat6Key), Nat6KeyFields);
inline constexpr StructLayout Nat6ValueLayout =
    layout("r2x_nat6_value", sizeof(Nat6Value), Nat6ValueFields);
static_assert(sizeof(NatKey) == 16 && offsetof(NatKey, sport) == 8 &&
              offsetof(NatKey, proto) == 12);
static_assert(sizeof(NatValue) == 8 && offsetof(NatValue, dir) == 6);
static_assert(sizeof(Nat6Key) == 40 && offsetof(Nat6Key, sport) == 32 &&
              offsetof(Nat6Key, proto) == 36);
static_assert(sizeof(Nat6Value) == 20 && offsetof(Nat6Value, dir) == 18);
static_assert(wellFormed(NatKeyLayout) && wellFormed(NatValueLayout) &&
              wellFormed(Nat6KeyLayout) && wellFormed(Nat6ValueLayout));

/// LRU_HASH, shared by the program on every interface of one load, pinned.
inline constexpr MapSpec NatMap{"r2x_nat", MapType::LruHash, sizeof(NatKey),
                                sizeof(NatValue), 65536};
inline constexpr MapSpec Nat6Map{"r2x_nat6", MapType::LruHash, sizeof(Nat6Key),
                                 sizeof(Nat6Value), 65536};

//===-- r2x_rst: what a tcp-reset REJECT's RST carries --------------------===//

/// ARRAY ifindex -> the hop limits the kernel gives a RST it sends in answer
/// to a packet received on the device (nf_send_reset(), nf_send_reset6()):
/// `ttl` the namespace's net.ipv4.ip_default_ttl, `hop_limit` the device's
/// net.ipv6.conf.DEV.hop_limit, as the loader read them (0: not known, the
/// program hands the packet over). In iptables objects with a tcp-reset
/// REJECT XDP carries out (docs/handover.md, "REJECT").
struct RstValue {
  uint8_t ttl;
  uint8_t hopLimit;
  uint8_t zero[2];
};
static_assert(sizeof(RstValue) == sizeof(uint32_t) &&
              offsetof(RstValue, hopLimit) == 1);
inline constexpr MapSpec RstMap{"r2x_rst", MapType::Array, sizeof(uint32_t),
                                sizeof(RstValue), 65536};

//===-- r2x_tx, r2x_redirect: where the program redirects -----------------===//

/// DEVMAP_HASH ifindex -> ifindex of every device of the network namespace
/// (DNAT forwarding redirects to the FIB's egress device); filled by the
/// loader. In objects with DNAT.
inline constexpr MapSpec TxMap{"r2x_tx", MapType::DevmapHash, sizeof(uint32_t),
                               sizeof(uint32_t), 256};
/// DEVMAP slot -> ifindex of tc `mirred egress redirect` targets; slot N is
/// the device of the metadata's `redirect N DEV`, and max_entries is the
/// number of such records. In tc objects with a redirect.
inline constexpr MapSpec RedirectMap{"r2x_redirect", MapType::Devmap,
                                     sizeof(uint32_t), sizeof(uint32_t), 0};

//===-- r2x_log: the events of LOG rules XDP carries out ------------------===//

/// One record of the r2x_log ring buffer: a packet that LOG rules logged
/// (docs/user-guide.md, "LOG"). `rule2xdp --log IFACE` reads them and
/// prints, for each slot in `slots[0..count)`, the line the kernel's LOG
/// target (nf_log_syslog.c) would print; the LOG rule of a slot, with its
/// prefix, level, flags and hook, is the metadata's `log` record of that
/// counter slot. The program writes a record once per packet in hand-over
/// mode (when XDP drops it: every LOG rule the packet passed, in order) and
/// once per LOG rule in standalone mode (count 1). `data` holds the frame's
/// first `caplen` bytes (Ethernet header first), copied with
/// bpf_xdp_load_bytes(); `len` is the frame's whole length; `ifindex` the
/// receiving device; `oifindex` the routing decision's egress device for a
/// rule in FORWARD (0 otherwise).
inline constexpr uint32_t LogMaxRules = 8;
inline constexpr uint32_t LogCapture = 256;
struct LogEvent {
  uint32_t ifindex;
  uint32_t oifindex;
  uint32_t len;
  uint32_t caplen;
  uint32_t count;
  uint32_t slots[LogMaxRules];
  uint8_t hooks[LogMaxRules];
  uint8_t data[LogCapture];
};
static_assert(offsetof(LogEvent, slots) == 20 &&
              offsetof(LogEvent, hooks) == 52 &&
              offsetof(LogEvent, data) == 60 && sizeof(LogEvent) == 316);
/// LogEvent::hooks values.
enum class LogHook : uint8_t { Prerouting = 0, Input = 1, Forward = 2 };
/// The bytes of frame a record can carry cover the longest headers the
/// kernel's LOG prints: Ethernet, IPv4 with options, an ICMP error quoting
/// an IPv4 header with options and a TCP header with options.
static_assert(LogCapture >= 14 + 60 + 8 + 60 + 60);

/// RINGBUF of LogEvent records (no key or value), in objects with a LOG
/// rule XDP carries out. max_entries is its size in bytes.
inline constexpr MapSpec LogMap{"r2x_log", MapType::Ringbuf, 0, 0, 1u << 18};

//===-- r2x_set<N>: ipset sets (-m set) -----------------------------------===//

/// One LPM_TRIE per ipset set a rule tests, named SetMapPrefix + the set's
/// number (the metadata's `set` record names it, and the set). An entry is
/// a network of the set; the program looks a packet's address up with the
/// full prefix length, so the most specific entry answers, as ipset's
/// hash:net (and hash:ip, whose entries all have the set's netmask) does.
/// The key's address is in network byte order, as an LPM trie compares
/// bits from the first byte.
struct SetKey4 {
  uint32_t prefixlen;
  uint32_t addr;
};
struct SetKey6 {
  uint32_t prefixlen;
  In6 addr;
};
inline constexpr Field SetKey4Fields[] = {
    R2X_CONTRACT_FIELD(SetKey4, prefixlen), R2X_CONTRACT_FIELD(SetKey4, addr)};
inline constexpr Field SetKey6Fields[] = {
    R2X_CONTRACT_FIELD(SetKey6, prefixlen),
    R2X_CONTRACT_NESTED(SetKey6, addr, In6Layout)};
inline constexpr StructLayout SetKey4Layout =
    layout("r2x_set4_key", sizeof(SetKey4), SetKey4Fields);
inline constexpr StructLayout SetKey6Layout =
    layout("r2x_set6_key", sizeof(SetKey6), SetKey6Fields);
static_assert(sizeof(SetKey4) == 8 && sizeof(SetKey6) == 20 &&
              offsetof(SetKey6, addr) == 4);
static_assert(wellFormed(SetKey4Layout) && wellFormed(SetKey6Layout));
/// hash:ip,port and hash:net,port: the protocol and port come first, so an
/// entry's prefix length is 32 (port, protocol, pad: always whole) plus its
/// address prefix, and a lookup finds the most specific address among the
/// entries of exactly the packet's protocol and port. The port is in
/// network byte order; pad is 0.
struct SetPortKey4 {
  uint32_t prefixlen;
  uint16_t port;
  uint8_t proto;
  uint8_t pad;
  uint32_t addr;
};
struct SetPortKey6 {
  uint32_t prefixlen;
  uint16_t port;
  uint8_t proto;
  uint8_t pad;
  In6 addr;
};
inline constexpr Field SetPortKey4Fields[] = {
    R2X_CONTRACT_FIELD(SetPortKey4, prefixlen),
    R2X_CONTRACT_FIELD(SetPortKey4, port),
    R2X_CONTRACT_FIELD(SetPortKey4, proto),
    R2X_CONTRACT_FIELD(SetPortKey4, pad),
    R2X_CONTRACT_FIELD(SetPortKey4, addr)};
inline constexpr Field SetPortKey6Fields[] = {
    R2X_CONTRACT_FIELD(SetPortKey6, prefixlen),
    R2X_CONTRACT_FIELD(SetPortKey6, port),
    R2X_CONTRACT_FIELD(SetPortKey6, proto),
    R2X_CONTRACT_FIELD(SetPortKey6, pad),
    R2X_CONTRACT_NESTED(SetPortKey6, addr, In6Layout)};
inline constexpr StructLayout SetPortKey4Layout =
    layout("r2x_setport4_key", sizeof(SetPortKey4), SetPortKey4Fields);
inline constexpr StructLayout SetPortKey6Layout =
    layout("r2x_setport6_key", sizeof(SetPortKey6), SetPortKey6Fields);
static_assert(sizeof(SetPortKey4) == 12 && offsetof(SetPortKey4, addr) == 8 &&
              sizeof(SetPortKey6) == 24 && offsetof(SetPortKey6, addr) == 8 &&
              offsetof(SetPortKey4, port) == 4 &&
              offsetof(SetPortKey4, proto) == 6);
static_assert(wellFormed(SetPortKey4Layout) && wellFormed(SetPortKey6Layout));
/// The prefix bits of a ,port key before the address.
inline constexpr uint32_t SetPortKeyBits = 32;
/// The value: what the entry is (ip_set_test()'s result for it).
enum SetEntryKind : uint32_t { SetMatch = 1, SetNomatch = 2 };
inline constexpr const char *SetMapPrefix = "r2x_set";
/// max_entries: the set's entry count (at least 1).
inline constexpr MapSpec Set4Map{
    "r2x_set", MapType::LpmTrie, sizeof(SetKey4), sizeof(uint32_t),
    0,         MapNoPrealloc};
inline constexpr MapSpec Set6Map{
    "r2x_set", MapType::LpmTrie, sizeof(SetKey6), sizeof(uint32_t),
    0,         MapNoPrealloc};
inline constexpr MapSpec SetPort4Map{
    "r2x_set", MapType::LpmTrie, sizeof(SetPortKey4), sizeof(uint32_t),
    0,         MapNoPrealloc};
inline constexpr MapSpec SetPort6Map{
    "r2x_set", MapType::LpmTrie, sizeof(SetPortKey6), sizeof(uint32_t),
    0,         MapNoPrealloc};
/// bitmap:port: HASH u32 port (host order) -> SetMatch.
inline constexpr MapSpec SetBitmapPortMap{
    "r2x_set", MapType::Hash, sizeof(uint32_t), sizeof(uint32_t), 0};
/// Every shape a set's map may have.
inline constexpr const MapSpec *SetMaps[] = {&Set4Map, &Set6Map, &SetPort4Map,
                                             &SetPort6Map, &SetBitmapPortMap};

//===-- r2x_local, r2x_local_ok: the local routing table (-m addrtype) ----===//

/// LPM_TRIE SetKey4 -> u32: the route type (RTN_*) inet_dev_addr_type()
/// gives every address of the entry's network that no longer entry covers;
/// an address no entry covers is UNICAST. The loader computes the entries
/// from the kernel's local and main tables (runtime/LocalTable.h) so that
/// each is the kernel's answer whether or not those two tables are merged;
/// where the answer depends on what the loader cannot see, the value is
/// LocalUnknown and the program hands the packet over. In hand-over
/// objects with an `-m addrtype` match.
inline constexpr uint32_t LocalUnknown = 0xff;
inline constexpr MapSpec LocalMap{"r2x_local",     MapType::LpmTrie,
                                  sizeof(SetKey4), sizeof(uint32_t),
                                  65536,           MapNoPrealloc};
/// ARRAY, one slot: the lease under which the program trusts r2x_local,
/// the bpf_ktime_get_ns() time (CLOCK_MONOTONIC, ns) until which the
/// table is current. A process that keeps the table current (--follow)
/// renews it; without one it is 0 and every `-m addrtype` test the table
/// would answer is handed over.
struct LocalLease {
  uint64_t until_ns;
};
static_assert(sizeof(LocalLease) == 8);
inline constexpr MapSpec LocalOkMap{"r2x_local_ok", MapType::Array,
                                    sizeof(uint32_t), sizeof(LocalLease), 1};

//===-- r2x_limit: the token buckets of rate-limited LOG rules ------------===//

/// ARRAY limit index -> u64, shared by all CPUs: the bucket of a LOG rule
/// whose last match is `-m limit` (xt_limit), kept as its theoretical
/// arrival time (GCRA: the bpf_ktime_get_ns() time at which the bucket is
/// full again; 0, as a load leaves it, is full). A packet XDP drops takes a
/// token when TAT - now <= (burst - 1) * interval, moving TAT to max(TAT,
/// now) + interval with a compare-and-exchange. max_entries: the number of
/// such rules. Index N is the Nth such rule in counter slot order.
inline constexpr MapSpec LimitMap{"r2x_limit", MapType::Array, sizeof(uint32_t),
                                  sizeof(uint64_t), 0};
/// xt_limit's XT_LIMIT_SCALE: ir::Match::Limit::avg is in 1/10000 s.
inline constexpr uint64_t LimitNsPerAvg = 1000000000u / 10000u;
/// The entries travel in the object, in an ELF section of their own that
/// libbpf skips (a `.rodata` map could not hold a million entries): for
/// each `set` record, from byte OFFSET of the section, ENTRIES keys and
/// then ENTRIES values in the map's layout (host byte order but for the
/// key's address), the arrays BPF_MAP_UPDATE_BATCH takes. The loader fills
/// the map from them before the program loads.
inline constexpr const char *SetsSection = ".r2x_sets";
inline constexpr const char *SetsSymbol = "r2x_sets";

//===-- the metadata text -------------------------------------------------===//

/// The `.rodata` global holding the metadata text, NUL-terminated.
inline constexpr const char *MetaSymbol = "r2x_meta";
inline constexpr const char *MetaSection = ".rodata";

/// The text is one record per line: fields separated by a TAB, the first
/// naming the record's kind. docs/object-contract.md describes each.
namespace meta {

/// The version of the format, on the header line. A reader refuses versions
/// outside [OldestVersion, Version]; within a version, a reader ignores
/// record kinds it does not know (new kinds that older loaders may safely
/// skip do not bump it). Version 2 added `key` (a stable key for every
/// counter slot, which a replacing load uses to keep counters) and `dnat`;
/// version 1 texts have neither, and are still read. Version 3 added
/// `mode` (standalone or hand-over: whether the kernel decides the packets
/// XDP passes, so `--stats` knows to show the kernel's counters beside
/// XDP's); older texts do not say, and read as standalone.
///
/// Version 4 added `set`, which an older loader must not skip (the set's
/// map would stay empty): objects with sets are version 4, all others are
/// still written as version 3.
///
/// Version 5 added `log` and `loglost` (LOG rules XDP carries out): an
/// older loader would skip them and `--log` could not read the events.
/// Objects with a LOG rule are version 5; the others keep 4 or 3.
inline constexpr unsigned Version = 5;
inline constexpr unsigned VersionWithoutLog = 4;
inline constexpr unsigned VersionWithoutSets = 3;
inline constexpr unsigned OldestVersion = 1;
/// The first version whose texts have `key` and `dnat` records.
inline constexpr unsigned KeyedVersion = 2;
/// The first version whose texts have exactly one `mode` record.
inline constexpr unsigned ModeVersion = 3;
inline constexpr char Separator = '\t';
inline constexpr char EndOfRecord = '\n';
/// A field without a value (a user chain's policy and counter slot).
inline constexpr std::string_view None = "-";

/// A record kind: its name (the first field) and how many fields it has,
/// the name included. `restIsLast`: the last field runs to the end of the
/// line and may itself hold TABs (a rule's match text).
struct Record {
  std::string_view name;
  unsigned fields;
  bool restIsLast = false;
};

/// `rule2xdp-meta VERSION`: the first line. "rule2xdp-meta<TAB>" is how a
/// reader finds the text inside a `.rodata` image that may hold other data.
inline constexpr Record Header{"rule2xdp-meta", 2};
/// `iface BIT PATTERN`: `-i` pattern number BIT (0..63); a trailing '+'
/// matches any name with that prefix, as iptables does.
inline constexpr Record Iface{"iface", 3};
/// `chain TABLE CHAIN POLICY SLOT`: a chain in display order; SLOT is the
/// counter slot of its policy; POLICY and SLOT are None for a user chain.
inline constexpr Record Chain{"chain", 5};
/// `rule SLOT TABLE CHAIN TARGET PROT OPT IN OUT SOURCE DESTINATION EXTRA`:
/// a rule in chain order after its chain's record, its counter slot and
/// its columns as `iptables -vxnL` shows them.
inline constexpr Record Rule{"rule", 12, true};
/// `redirect SLOT DEV`: tc mirred's target device for r2x_redirect slot SLOT.
inline constexpr Record Redirect{"redirect", 3};
/// `key SLOT KEY` (version 2): counter slot SLOT counts the rule or policy
/// whose stable key is KEY (see RuleKeys below). A load that replaces a
/// program copies the old program's counters into the new one's slots with
/// the same key. Every slot a `chain` or `rule` record names has one, and
/// no two slots share a key.
inline constexpr Record Key{"key", 3};
/// `dnat ADDRESS` (version 2): a DNAT rule translates to ADDRESS (IPv4
/// dotted quad or IPv6 text), once per address. The replies of those
/// connections arrive on the interface of the route to ADDRESS, where the
/// program must run too.
inline constexpr Record Dnat{"dnat", 2};
/// `mode MODE` (version 3): how the program was compiled, ModeStandalone
/// (XDP_PASS means accepted) or ModeHandover (XDP_PASS means the kernel's
/// ruleset, which stays installed, decides: docs/handover.md). Exactly
/// one (the code generators write it right after the header).
inline constexpr Record Mode{"mode", 2};
inline constexpr std::string_view ModeStandalone = "standalone";
inline constexpr std::string_view ModeHandover = "handover";
/// `set MAP OFFSET ENTRIES NAME CREATE` (version 4): map MAP holds ipset set
/// NAME; its ENTRIES entries are at byte OFFSET of SetsSection. CREATE is
/// the set's type and options as `ipset create NAME CREATE` takes them
/// (the type, then `family F [netmask N]` or `range A-B`): how an entry
/// given later (`rule2xdp --set-add`) is read into a key.
inline constexpr Record Set{"set", 6, true};
/// `log SLOT FAMILY LEVEL FLAGS PREFIX` (version 5): counter slot SLOT
/// is a `-j LOG` rule XDP carries out; FAMILY 4 or 6, LEVEL 0..7, FLAGS the
/// XT_LOG_* bits of linux/netfilter/xt_LOG.h (in decimal), PREFIX the
/// --log-prefix (may be empty, may hold a TAB). What `rule2xdp --log` needs to
/// print an r2x_log record's line.
inline constexpr Record Log{"log", 6, true};
/// `loglost SLOT` (version 5): counter slot SLOT counts the LOG events XDP
/// could not write (the ring buffer full, or a packet whose line XDP cannot
/// reproduce) in standalone mode, where the packet's verdict goes on
/// regardless. `--stats` prints it. (In hand-over mode such a packet goes
/// to the kernel, whose LOG rule logs it.)
inline constexpr Record LogLost{"loglost", 2};
/// `handall REASON` (a hand-over program; version 3 and up, skipped by
/// loaders that do not know it): the program decides no packet, it hands
/// every one to the kernel before its first chain, because of REASON
/// (`--accelerate --follow` while the kernel runs rules XDP cannot read,
/// such as native nftables chains). Its counters are kept all the same.
/// `--stats` says so.
inline constexpr Record HandAll{"handall", 2, true};

/// `source KIND ...` (any version; skipped by readers that do not know it):
/// what the program was compiled from, in order, so that `rule2xdp --load
/// IFACE -A|-I|-D|-R ...` can change a loaded ruleset and compile it again.
/// KIND `file` (FAMILY NAME: a ruleset file read with -f; NAME to the end
/// of the line), `line` (TEXT: the file's next line, to the end of the
/// line), or `rule` (FAMILY WORD...: one command of the command line, each
/// word percent-encoded, encodeWord()). FAMILY is 4 or 6.
inline constexpr Record Source{"source", 3, true};
inline constexpr std::string_view SourceFile = "file";
inline constexpr std::string_view SourceLine = "line";
inline constexpr std::string_view SourceRule = "rule";

/// A command word as a `source rule` field: bytes up to space, `%` and
/// DEL as %XX, so no TAB or newline is left; the empty word is `%00`
/// (argv never holds a NUL).
inline std::string encodeWord(std::string_view w) {
  static constexpr char Hex[] = "0123456789ABCDEF";
  if (w.empty())
    return "%00";
  std::string out;
  for (unsigned char c : w) {
    if (c <= ' ' || c == '%' || c == 0x7f) {
      out += '%';
      out += Hex[c >> 4];
      out += Hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

/// The text every metadata text starts with.
inline constexpr std::string_view HeaderPrefix = "rule2xdp-meta\t";
static_assert(HeaderPrefix.substr(0, HeaderPrefix.size() - 1) == Header.name);

/// Field positions (0 is the kind).
namespace iface {
enum : unsigned { Bit = 1, Pattern };
}
namespace chain {
enum : unsigned { Table = 1, Name, Policy, Slot };
}
namespace rule {
enum : unsigned {
  Slot = 1,
  Table,
  Chain,
  Target,
  Prot,
  Opt,
  In,
  Out,
  Source,
  Destination,
  Extra
};
}
namespace redirect {
enum : unsigned { Slot = 1, Dev };
}
namespace key {
enum : unsigned { Slot = 1, Key };
}
namespace dnat {
enum : unsigned { Address = 1 };
}
namespace mode {
enum : unsigned { Mode = 1 };
}
namespace set {
enum : unsigned { Map = 1, Offset, Entries, Name, Create };
}
namespace log {
enum : unsigned { Slot = 1, Family, Level, Flags, Prefix };
}
namespace logLost {
enum : unsigned { Slot = 1 };
}
namespace handAll {
enum : unsigned { Reason = 1 };
}
namespace source {
enum : unsigned { Kind = 1, Rest };
}
static_assert(iface::Pattern + 1 == Iface.fields &&
              chain::Slot + 1 == Chain.fields &&
              rule::Extra + 1 == Rule.fields &&
              redirect::Dev + 1 == Redirect.fields &&
              key::Key + 1 == Key.fields && dnat::Address + 1 == Dnat.fields &&
              mode::Mode + 1 == Mode.fields && set::Create + 1 == Set.fields &&
              log::Prefix + 1 == Log.fields &&
              logLost::Slot + 1 == LogLost.fields &&
              handAll::Reason + 1 == HandAll.fields);

/// One record as a line of text. The writer's side of the format: the
/// values (all fields after the kind) must be as many as the kind has, and
/// only a `restIsLast` field may hold a TAB; no value holds a newline.
inline std::string format(const Record &kind,
                          std::initializer_list<std::string_view> values) {
  if (values.size() + 1 != kind.fields)
    throw std::logic_error("metadata record '" + std::string(kind.name) +
                           "' takes " + std::to_string(kind.fields - 1) +
                           " values, not " + std::to_string(values.size()));
  std::string line(kind.name);
  unsigned index = 1;
  for (std::string_view v : values) {
    bool last = index + 1 == kind.fields;
    bool tabOk = last && kind.restIsLast;
    if (v.find(EndOfRecord) != std::string_view::npos ||
        (!tabOk && v.find(Separator) != std::string_view::npos))
      throw std::logic_error(
          "the object's metadata cannot hold a " +
          std::string(tabOk ? "line break" : "TAB or line break") +
          " in field " + std::to_string(index) + " of a '" +
          std::string(kind.name) + "' record: '" + std::string(v) + "'");
    line += Separator;
    line += v;
    ++index;
  }
  line += EndOfRecord;
  return line;
}

/// The header line of version `version`.
inline std::string header(unsigned version = VersionWithoutSets) {
  return format(Header, {std::to_string(version)});
}

/// The stable keys of counter slots, as the code generators write them in
/// `key` records. A key names what a slot counts, not where it sits, so a
/// rule keeps its key when rules are inserted or removed around it:
///  - a rule: its table, chain and the columns its `rule` record lists
///    (target, prot, opt, in, out, source, destination, extra: the rule as
///    `iptables -vxnL` shows it), plus its occurrence number among the rules
///    of the same chain with the same columns (0 for the first), so
///    identical rules keep apart;
///  - a built-in chain's policy: its table and chain (as `iptables -P`
///    keeps a chain's counters when the policy changes).
/// A key is 16 lowercase hex digits: the 64-bit FNV-1a hash of its parts,
/// each followed by a NUL byte. Readers only compare keys; how they are made
/// is the writers' business, kept here so both code generators agree.
class RuleKeys {
public:
  /// The key of the next rule of `table`/`chain` with these columns.
  std::string rule(std::string_view table, std::string_view chain,
                   std::initializer_list<std::string_view> columns) {
    uint64_t h = hash(Offset, "rule");
    h = hash(h, table);
    h = hash(h, chain);
    for (std::string_view c : columns)
      h = hash(h, c);
    unsigned occurrence = seen_[h]++;
    return hex(hash(h, std::to_string(occurrence)));
  }
  /// The key of the `loglost` counter.
  static std::string logLost() { return hex(hash(Offset, "loglost")); }
  /// The key of a built-in chain's policy counter.
  static std::string policy(std::string_view table, std::string_view chain) {
    return hex(hash(hash(hash(Offset, "policy"), table), chain));
  }

private:
  static constexpr uint64_t Offset = 0xcbf29ce484222325ull; // FNV-1a 64
  static constexpr uint64_t Prime = 0x100000001b3ull;
  static uint64_t hash(uint64_t h, std::string_view part) {
    for (unsigned char c : part)
      h = (h ^ c) * Prime;
    return (h ^ 0) * Prime; // the NUL after each part
  }
  static std::string hex(uint64_t h) {
    static constexpr char Digits[] = "0123456789abcdef";
    std::string s(16, '0');
    for (int i = 15; i >= 0; --i, h >>= 4)
      s[std::size_t(i)] = Digits[h & 0xf];
    return s;
  }
  std::map<uint64_t, unsigned> seen_;
};

} // namespace meta

//===-- files on the host
//--------------------------------------------------===//

/// Convenience pins, for people and tools (bpftool) to reach the maps of a
/// loaded program by name. The runtime never reads them: it finds programs
/// from the interface (runtime/Discover.h). One directory per network
/// namespace (named by the inode of /proc/self/ns/net: interface names
/// repeat across namespaces, and bpffs is shared by all of them) and
/// interface: Root/net<INODE>/IFACE/. Root-only: directories 0700, pins
/// 0600.
namespace pin {
inline constexpr const char *BpffsRoot = "/sys/fs/bpf";
inline constexpr const char *Root = "/sys/fs/bpf/rule2xdp";
inline constexpr const char *NetnsPrefix = "net"; ///< + the netns inode
inline constexpr unsigned DirMode = 0700, PinMode = 0600;
inline constexpr const char *Counters = "counters"; ///< r2x_counters
inline constexpr const char *Ifmatch = "ifmatch";   ///< r2x_ifmatch
inline constexpr const char *Meta = "meta";         ///< the `.rodata` map
inline constexpr const char *Nat = "nat";           ///< r2x_nat
inline constexpr const char *Nat6 = "nat6";         ///< r2x_nat6
} // namespace pin

/// Two rule2xdp processes acting on one interface take turns: each holds an
/// exclusive flock(2) on LockDir/net<NETNS-INODE>-if<IFINDEX>.lock while it
/// inspects, loads, replaces or unloads (runtime/Lock.h).
namespace lock {
inline constexpr const char *Dir = "/run/rule2xdp";
} // namespace lock

} // namespace r2x::contract
