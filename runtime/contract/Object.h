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
///  - the pins under bpffs.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
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
  Devmap = 14,
  DevmapHash = 25,
};

struct StructLayout;

/// One member of a struct the object's BTF describes: its BTF name, its
/// byte offset and size, and either an unsigned integer of that size
/// (`type` null, `elem` 0), an array of unsigned integers of `elem` bytes
/// each, or a nested struct.
struct Field {
  const char *name;
  uint32_t offset;
  uint32_t size;
  const StructLayout *type = nullptr;
  uint32_t elem = 0;
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
    if (f.offset != next || f.size == 0 || (f.type && f.type->size != f.size))
      return false;
    uint32_t align = f.type ? 4 : f.elem ? f.elem : f.size;
    if (f.elem && (f.type || f.size % f.elem != 0))
      return false;
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
                         static_cast<uint32_t>(sizeof(T::member)), &(layout)}
#define R2X_CONTRACT_ARRAY(T, member)                                          \
  ::r2x::contract::Field{#member, static_cast<uint32_t>(offsetof(T, member)),  \
                         static_cast<uint32_t>(sizeof(T::member)), nullptr,    \
                         static_cast<uint32_t>(sizeof(T::member[0]))}
// clang-format on

/// A map as the object declares it. `maxEntries` 0 means the program
/// chooses it (see the map's comment).
struct MapSpec {
  const char *name;
  MapType type;
  uint32_t keySize;
  uint32_t valueSize;
  uint32_t maxEntries;
};

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

//===-- r2x_ifmatch: the `-i` patterns naming a device --------------------===//

/// The key: the device the program runs on and the VLAN ids of the frame's
/// tags (0 = none; a priority tag, VID 0, keys as untagged).
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
/// PATTERN` names the device. So an object has at most 64 patterns.
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
/// ports are 0 when the packet has none.
struct Hdr {
  uint32_t saddr;
  uint32_t daddr;
  uint16_t sport;
  uint16_t dport;
  uint32_t proto;
};
inline constexpr Field HdrFields[] = {
    R2X_CONTRACT_FIELD(Hdr, saddr), R2X_CONTRACT_FIELD(Hdr, daddr),
    R2X_CONTRACT_FIELD(Hdr, sport), R2X_CONTRACT_FIELD(Hdr, dport),
    R2X_CONTRACT_FIELD(Hdr, proto)};
inline constexpr StructLayout HdrLayout =
    layout("r2x_hdr", sizeof(Hdr), HdrFields);
static_assert(sizeof(Hdr) == 16 && offsetof(Hdr, sport) == 8 &&
              offsetof(Hdr, proto) == 12);
static_assert(wellFormed(HdrLayout));
/// PERCPU_ARRAY, one slot; in objects with IPv4 rules.
inline constexpr MapSpec HdrMap{"r2x_hdr", MapType::PercpuArray,
                                sizeof(uint32_t), sizeof(Hdr), 1};

/// Where the IPv6 extension-header walk's exits meet
/// (compiler/backend/PacketParser.cpp): walk succeeded, upper-layer
/// protocol, its offset, fragment offset.
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

//===-- r2x_gen, r2x_text: the live metadata and the live half -----------===//

/// What an update in place (`rule2xdp --load IFACE -A ...`, docs/classifier.md)
/// replaces lives in two halves of each map: half H of a map with 2 * C
/// entries is keys [H * C, (H + 1) * C). r2x_gen says which half is live; an
/// update writes the other half, then flips `active` (one 4-byte store, so a
/// reader sees the old or the new value, never a mix), then waits for an RCU
/// grace period before it returns, so no packet still reads the old half
/// when the next update overwrites it.
struct GenValue {
  uint32_t active;   ///< 0 or 1: the live half
  uint32_t text_len0; ///< bytes of metadata text in r2x_text's half 0
  uint32_t text_len1; ///< ... in half 1
  uint32_t serial;   ///< updates made in place since the load
};
inline constexpr Field GenFields[] = {R2X_CONTRACT_FIELD(GenValue, active),
                                      R2X_CONTRACT_FIELD(GenValue, text_len0),
                                      R2X_CONTRACT_FIELD(GenValue, text_len1),
                                      R2X_CONTRACT_FIELD(GenValue, serial)};
inline constexpr StructLayout GenLayout =
    layout("r2x_gen", sizeof(GenValue), GenFields);
static_assert(sizeof(GenValue) == 16 && wellFormed(GenLayout));
/// ARRAY, one entry; in every object. Filled by the loader (half 0 live).
inline constexpr MapSpec GenMap{"r2x_gen", MapType::Array, sizeof(uint32_t),
                                sizeof(GenValue), 1};
/// The half index as the program and the readers take it from `active`.
constexpr uint32_t liveHalf(const GenValue &g) { return g.active & 1; }

/// One chunk of the metadata text (NUL padding after its end).
inline constexpr uint32_t TextChunkSize = 4096;
struct TextChunk {
  uint8_t bytes[TextChunkSize];
};
inline constexpr Field TextChunkFields[] = {
    R2X_CONTRACT_ARRAY(TextChunk, bytes)};
inline constexpr StructLayout TextChunkLayout =
    layout("r2x_text_chunk", sizeof(TextChunk), TextChunkFields);
static_assert(wellFormed(TextChunkLayout));
/// ARRAY u32 chunk -> TextChunk, two halves: the metadata text of the rules
/// the program runs now (after updates in place, not the object's). In every
/// object; max_entries is chosen by the compiler with room for updates.
inline constexpr MapSpec TextMap{"r2x_text", MapType::Array, sizeof(uint32_t),
                                 sizeof(TextChunk), 0};
constexpr uint32_t textChunks(uint64_t bytes) {
  return uint32_t((bytes + TextChunkSize - 1) / TextChunkSize);
}

//===-- r2x_cls_*: the classifier (docs/classifier.md) --------------------===//

/// The dimensions the classifier's decision tree cuts, in the order of
/// ClsPkt::key: IPv4 source and destination (host order), protocol, and the
/// two ports as 17-bit keys: 0..65535 the port, ClsPortShort when the
/// transport header is too short for the packet's protocol (or a TCP
/// fragment at offset 1: tcp and udp matches hotdrop), ClsPortNone when the
/// packet has no ports a match can read (a later fragment, another
/// protocol).
enum ClsDim : uint32_t { ClsSrc, ClsDst, ClsProto, ClsSport, ClsDport, ClsDims };
inline constexpr unsigned ClsDimBits[ClsDims] = {32, 32, 8, 17, 17};
inline constexpr uint32_t ClsPortShort = 0x10000, ClsPortNone = 0x10001;

/// A tree node. Internal: child index = (key[dim] >> shift) & mask, and the
/// child is node `a + index`; `b` = dim | shift << 8 | mask << 16. Leaf
/// (ClsLeaf set in `b`): the candidates are r2x_cls_leaf entries
/// [a, a + (b & ClsCountMask)).
struct ClsNode {
  uint32_t a;
  uint32_t b;
};
inline constexpr uint32_t ClsLeaf = 0x80000000u, ClsCountMask = 0x7fffffffu;
inline constexpr Field ClsNodeFields[] = {R2X_CONTRACT_FIELD(ClsNode, a),
                                          R2X_CONTRACT_FIELD(ClsNode, b)};
inline constexpr StructLayout ClsNodeLayout =
    layout("r2x_cls_node", sizeof(ClsNode), ClsNodeFields);
static_assert(sizeof(ClsNode) == 8 && wellFormed(ClsNodeLayout));

/// A leaf's candidate: a rule index (into r2x_cls_rule's half), with
/// ClsCertain set when the rule (and every guard) matches every packet the
/// leaf can hold, so the program counts it without testing it.
inline constexpr uint32_t ClsCertain = 0x80000000u, ClsIndexMask = 0x7fffffffu;

/// Where a segment is entered: its tree's root node and the first rule
/// index the scan may take (rules of the segment before it are skipped).
struct ClsEntry {
  uint32_t root;
  uint32_t start;
};
inline constexpr Field ClsEntryFields[] = {R2X_CONTRACT_FIELD(ClsEntry, root),
                                           R2X_CONTRACT_FIELD(ClsEntry, start)};
inline constexpr StructLayout ClsEntryLayout =
    layout("r2x_cls_entry", sizeof(ClsEntry), ClsEntryFields);
static_assert(sizeof(ClsEntry) == 8 && wellFormed(ClsEntryLayout));

/// What a matched rule does next (ClsRule::next = kind << ClsNextShift |
/// value): Continue with the rule after it; JumpIn: go on from rule index
/// `value` (RETURN, or the end of a -g chain, inside the segment); Accept;
/// Drop; Exit: leave the segment through its exit `value` (the code after
/// the segment: exit 0 is the position right after it).
enum ClsNextKind : uint32_t {
  ClsContinue = 0,
  ClsJumpIn = 1,
  ClsAccept = 2,
  ClsDrop = 3,
  ClsExit = 4
};
inline constexpr uint32_t ClsNextShift = 28,
                          ClsValueMask = (uint32_t(1) << ClsNextShift) - 1;
inline constexpr uint32_t ClsNoSlot = 0xffffffffu, ClsNoGuard = 0xffffffffu;

/// Which tests a rule makes (ClsRule::flags). Each `Neg` bit is the `!` of
/// the test before it.
enum ClsMatch : uint32_t {
  ClsMSrc = 1u << 0,
  ClsMSrcNeg = 1u << 1,
  ClsMDst = 1u << 2,
  ClsMDstNeg = 1u << 3,
  ClsMProto = 1u << 4,
  ClsMProtoNeg = 1u << 5,
  ClsMIface = 1u << 6,
  ClsMIfaceNeg = 1u << 7,
  ClsMFrag = 1u << 8,
  ClsMFragNeg = 1u << 9,
  ClsMTcpUdp = 1u << 10, ///< xt_tcpudp, header of protocol `l4`
  ClsMSport = 1u << 11,
  ClsMSportNeg = 1u << 12,
  ClsMDport = 1u << 13,
  ClsMDportNeg = 1u << 14,
  ClsMTcpFlags = 1u << 15,
  ClsMTcpFlagsNeg = 1u << 16,
  ClsMIcmp = 1u << 17, ///< xt_icmp (type 255: any)
  ClsMIcmpNeg = 1u << 18,
};

/// One rule of a segment as data, for the program's generic matcher: the
/// ip_packet_match() tests, then `field_before` field tests, then the one
/// transport match (tcp/udp or icmp, which may hotdrop), then the other
/// field tests, in the rule's order. `guard` is the jump rule whose chain
/// the rule was inlined from (its tests must hold too), or ClsNoGuard.
/// Addresses and ports in host order.
struct ClsRule {
  uint32_t slot;
  uint32_t next;
  uint32_t guard;
  uint32_t flags;
  uint32_t src;
  uint32_t src_mask;
  uint32_t dst;
  uint32_t dst_mask;
  uint16_t sport_lo;
  uint16_t sport_hi;
  uint16_t dport_lo;
  uint16_t dport_hi;
  uint8_t proto;
  uint8_t l4;
  uint8_t tcp_mask;
  uint8_t tcp_comp;
  uint8_t icmp_type;
  uint8_t icmp_code_lo;
  uint8_t icmp_code_hi;
  uint8_t iface_bit;
  uint32_t field_first;
  uint8_t field_count;
  uint8_t field_before;
  uint16_t pad;
};
inline constexpr Field ClsRuleFields[] = {
    R2X_CONTRACT_FIELD(ClsRule, slot),         R2X_CONTRACT_FIELD(ClsRule, next),
    R2X_CONTRACT_FIELD(ClsRule, guard),        R2X_CONTRACT_FIELD(ClsRule, flags),
    R2X_CONTRACT_FIELD(ClsRule, src),          R2X_CONTRACT_FIELD(ClsRule, src_mask),
    R2X_CONTRACT_FIELD(ClsRule, dst),          R2X_CONTRACT_FIELD(ClsRule, dst_mask),
    R2X_CONTRACT_FIELD(ClsRule, sport_lo),     R2X_CONTRACT_FIELD(ClsRule, sport_hi),
    R2X_CONTRACT_FIELD(ClsRule, dport_lo),     R2X_CONTRACT_FIELD(ClsRule, dport_hi),
    R2X_CONTRACT_FIELD(ClsRule, proto),        R2X_CONTRACT_FIELD(ClsRule, l4),
    R2X_CONTRACT_FIELD(ClsRule, tcp_mask),     R2X_CONTRACT_FIELD(ClsRule, tcp_comp),
    R2X_CONTRACT_FIELD(ClsRule, icmp_type),    R2X_CONTRACT_FIELD(ClsRule, icmp_code_lo),
    R2X_CONTRACT_FIELD(ClsRule, icmp_code_hi), R2X_CONTRACT_FIELD(ClsRule, iface_bit),
    R2X_CONTRACT_FIELD(ClsRule, field_first),  R2X_CONTRACT_FIELD(ClsRule, field_count),
    R2X_CONTRACT_FIELD(ClsRule, field_before), R2X_CONTRACT_FIELD(ClsRule, pad)};
inline constexpr StructLayout ClsRuleLayout =
    layout("r2x_cls_rule", sizeof(ClsRule), ClsRuleFields);
static_assert(sizeof(ClsRule) == 56 && offsetof(ClsRule, sport_lo) == 32 &&
              offsetof(ClsRule, field_first) == 48);
static_assert(wellFormed(ClsRuleLayout));

/// A header-field test of a rule, `((value & mask) in [lo, hi]) != negated`;
/// `field` is the compiler's field number (ClsPkt::field), and a field the
/// packet does not have (ClsPkt::field_avail) does not match.
struct ClsField {
  uint32_t field;
  uint32_t negated;
  uint64_t mask;
  uint64_t lo;
  uint64_t hi;
};
inline constexpr Field ClsFieldFields[] = {
    R2X_CONTRACT_FIELD(ClsField, field), R2X_CONTRACT_FIELD(ClsField, negated),
    R2X_CONTRACT_FIELD(ClsField, mask), R2X_CONTRACT_FIELD(ClsField, lo),
    R2X_CONTRACT_FIELD(ClsField, hi)};
inline constexpr StructLayout ClsFieldLayout =
    layout("r2x_cls_field", sizeof(ClsField), ClsFieldFields);
static_assert(sizeof(ClsField) == 32 && wellFormed(ClsFieldLayout));

/// The program's per-CPU scan state (its own work space, like r2x_hdr): the
/// packet's key and test values, filled before each segment, and the scan's
/// position and result.
inline constexpr unsigned ClsMaxFields = 16;
struct ClsPkt {
  uint32_t key[8]; ///< ClsDim order; the rest zero
  uint32_t cur;    ///< the first rule index the scan may still take
  uint32_t result; ///< ClsResult or an exit index
  uint32_t leaf_base;
  uint32_t rule_base;
  uint32_t field_base;
  uint32_t tot_len;
  uint32_t l4_len;
  uint16_t frag_off;
  uint8_t tcp_flags;
  uint8_t icmp_type;
  uint8_t icmp_code;
  uint8_t pad1;
  uint16_t pad2;
  uint32_t slot; ///< the counter lookup's key
  uint64_t ifmask;
  uint64_t field_avail;
  uint64_t field[ClsMaxFields];
};
inline constexpr Field ClsPktFields[] = {
    R2X_CONTRACT_ARRAY(ClsPkt, key),       R2X_CONTRACT_FIELD(ClsPkt, cur),
    R2X_CONTRACT_FIELD(ClsPkt, result),    R2X_CONTRACT_FIELD(ClsPkt, leaf_base),
    R2X_CONTRACT_FIELD(ClsPkt, rule_base), R2X_CONTRACT_FIELD(ClsPkt, field_base),
    R2X_CONTRACT_FIELD(ClsPkt, tot_len),   R2X_CONTRACT_FIELD(ClsPkt, l4_len),
    R2X_CONTRACT_FIELD(ClsPkt, frag_off),  R2X_CONTRACT_FIELD(ClsPkt, tcp_flags),
    R2X_CONTRACT_FIELD(ClsPkt, icmp_type), R2X_CONTRACT_FIELD(ClsPkt, icmp_code),
    R2X_CONTRACT_FIELD(ClsPkt, pad1),      R2X_CONTRACT_FIELD(ClsPkt, pad2),
    R2X_CONTRACT_FIELD(ClsPkt, slot),      R2X_CONTRACT_FIELD(ClsPkt, ifmask),
    R2X_CONTRACT_FIELD(ClsPkt, field_avail), R2X_CONTRACT_ARRAY(ClsPkt, field)};
inline constexpr StructLayout ClsPktLayout =
    layout("r2x_cls_pkt", sizeof(ClsPkt), ClsPktFields);
static_assert(sizeof(ClsPkt) == 216 && offsetof(ClsPkt, ifmask) == 72 &&
              offsetof(ClsPkt, field) == 88);
static_assert(wellFormed(ClsPktLayout));
/// What a segment's scan ended with, besides an exit index (< ClsResults).
enum ClsResult : uint32_t {
  ClsResultAccept = 0x10000,
  ClsResultDrop = 0x10001,
  ClsResultHotdrop = 0x10002,
};

/// The classifier's maps (in objects with a classified segment). Every one
/// but r2x_cls_pkt has two halves (see r2x_gen); max_entries is chosen by
/// the compiler with room for updates.
inline constexpr MapSpec ClsEntryMap{"r2x_cls_entry", MapType::Array,
                                     sizeof(uint32_t), sizeof(ClsEntry), 0};
inline constexpr MapSpec ClsNodeMap{"r2x_cls_node", MapType::Array,
                                    sizeof(uint32_t), sizeof(ClsNode), 0};
inline constexpr MapSpec ClsLeafMap{"r2x_cls_leaf", MapType::Array,
                                    sizeof(uint32_t), sizeof(uint32_t), 0};
inline constexpr MapSpec ClsRuleMap{"r2x_cls_rule", MapType::Array,
                                    sizeof(uint32_t), sizeof(ClsRule), 0};
inline constexpr MapSpec ClsFieldMap{"r2x_cls_field", MapType::Array,
                                     sizeof(uint32_t), sizeof(ClsField), 0};
/// PERCPU_ARRAY, one slot: the program's own.
inline constexpr MapSpec ClsPktMap{"r2x_cls_pkt", MapType::PercpuArray,
                                   sizeof(uint32_t), sizeof(ClsPkt), 1};
/// The maps with two halves, which an update in place writes.
inline constexpr const MapSpec *HalvedMaps[] = {
    &TextMap, &ClsEntryMap, &ClsNodeMap, &ClsLeafMap, &ClsRuleMap, &ClsFieldMap};

//===-- section .r2x.init: what the loader writes into maps --------------===//

/// A section the loader reads from the ELF image (libbpf skips it): the
/// first contents of maps, written by the loader after loading and before
/// attaching. An InitHeader, `count` InitEntry records, then the data. Each
/// entry fills `entries` values of map `map` from key `first_key` on, with
/// `entries * value_size` bytes at `offset` (from the section's start);
/// `bytes` is how many of them are meaningful (the text's length; else the
/// same). The metadata text is r2x_text's entry, and r2x_gen's gives the
/// lengths.
inline constexpr const char *InitSection = ".r2x.init";
inline constexpr const char *InitSymbol = "r2x_init";
inline constexpr char InitMagic[8] = {'r', '2', 'x', 'i', 'n', 'i', 't', '\0'};
inline constexpr uint32_t InitVersion = 1;
struct InitHeader {
  char magic[8];
  uint32_t version;
  uint32_t count;
};
struct InitEntry {
  char map[16]; ///< the map's name, NUL-padded
  uint32_t first_key;
  uint32_t entries;
  uint64_t offset;
  uint64_t bytes;
};
static_assert(sizeof(InitHeader) == 16 && sizeof(InitEntry) == 40);

//===-- the metadata text -------------------------------------------------===//

/// The metadata text travels in section .r2x.init as r2x_text's first
/// contents (version 1 kept it in `.rodata`, which the kernel cannot hold
/// past 4 MiB: about 45,000 rules).
///
/// The text is one record per line: fields separated by a TAB, the first
/// naming the record's kind. docs/object-contract.md describes each.
namespace meta {

/// The version of the format, on the header line. A reader refuses other
/// versions; within a version, a reader ignores record kinds it does not
/// know (new kinds that older loaders may safely skip do not bump it).
inline constexpr unsigned Version = 2;
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
/// `source KIND FAMILY NAME TEXT`: what the rules were compiled from, in
/// order, so a loaded program's ruleset can be changed later (`rule2xdp
/// --load IFACE -A ...`). KIND `file`: TEXT is an iptables-save text named
/// NAME; KIND `command`: TEXT is one command's words, TAB-separated.
/// FAMILY is 4 or 6. NAME and every word or text are escaped (escape()).
inline constexpr Record Source{"source", 5, true};
/// `classifier FORMAT MODE MINRUN SKELETON`: how the rules were classified
/// (docs/classifier.md): the data format, the --classifier mode and run
/// length, and the hash of everything the program's code depends on. An
/// update whose skeleton is the same changes maps only.
inline constexpr Record Classifier{"classifier", 5};
inline constexpr unsigned ClassifierFormat = 1;

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
namespace source {
enum : unsigned { Kind = 1, Family, Name, Text };
inline constexpr std::string_view File = "file", Command = "command";
}
namespace classifier {
enum : unsigned { Format = 1, Mode, MinRun, Skeleton };
}
static_assert(iface::Pattern + 1 == Iface.fields &&
              chain::Slot + 1 == Chain.fields &&
              rule::Extra + 1 == Rule.fields &&
              redirect::Dev + 1 == Redirect.fields &&
              source::Text + 1 == Source.fields &&
              classifier::Skeleton + 1 == Classifier.fields);

/// A value with `\`, TAB and newline written as `\\`, `\t` and `\n`, so
/// any text fits in one field.
inline std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == Separator)
      out += "\\t";
    else if (c == EndOfRecord)
      out += "\\n";
    else
      out += c;
  }
  return out;
}
/// The inverse of escape(); throws std::invalid_argument on a stray `\`.
inline std::string unescape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size())
      throw std::invalid_argument("metadata: `\\' at the end of a value");
    switch (v[i]) {
    case '\\':
      out += '\\';
      break;
    case 't':
      out += Separator;
      break;
    case 'n':
      out += EndOfRecord;
      break;
    default:
      throw std::invalid_argument("metadata: unknown escape `\\" +
                                  std::string(1, v[i]) + "'");
    }
  }
  return out;
}

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

/// The header line of this version.
inline std::string header() {
  return format(Header, {std::to_string(Version)});
}

} // namespace meta

//===-- pins --------------------------------------------------------------===//

/// Where the loader pins, and `--stats` and `--unload` look: one directory
/// per interface under PinRoot. The link pin is written last and is the one
/// whose presence means "rule2xdp owns this interface".
namespace pin {
inline constexpr const char *BpffsRoot = "/sys/fs/bpf";
inline constexpr const char *Root = "/sys/fs/bpf/rule2xdp";
inline constexpr const char *Link = "link";
inline constexpr const char *Counters = "counters"; ///< r2x_counters
inline constexpr const char *Ifmatch = "ifmatch";   ///< r2x_ifmatch
inline constexpr const char *Text = "text";         ///< r2x_text
inline constexpr const char *Gen = "gen";           ///< r2x_gen
inline constexpr const char *Nat = "nat";           ///< r2x_nat
inline constexpr const char *Nat6 = "nat6";         ///< r2x_nat6
} // namespace pin

} // namespace r2x::contract
