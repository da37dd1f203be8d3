//===- compiler/ir/TcIR.h - tc u32 IR, as the kernel holds it -*- C++ -*-===//
//
/// \file
/// What the tc frontend produces and the u32 backend compiles: the filters
/// of one device's ingress hook, in the shape cls_u32 keeps them after tc
/// has packed them (struct tc_u32_sel, struct tc_u32_key), so the backend
/// can give each the kernel's meaning without knowing any tc syntax.
///
/// Meaning is net/sched/cls_api.c's tcf_classify() over net/sched/cls_u32.c's
/// u32_classify():
///  - filters (tcf_proto, one per `pref`) run in ascending pref; one whose
///    protocol differs from the frame's (`ip`, `ipv6`, `all`) is skipped;
///    the first one that returns a result (>= 0) decides;
///  - inside a filter, the walk starts at its root hash table, bucket 0;
///    knodes of a bucket are tried in ascending node id;
///  - a knode matches when every key matches: the 32-bit big-endian word at
///    `off + key.off + (nexthdr ? off2 : 0)` (from the network header) XOR
///    val, under mask, is zero. A word past the end of the packet ends the
///    whole filter with no result (`goto out`), not just the knode;
///  - a matching knode with `link` descends into that table (bucket chosen
///    by hashing the word at off + hoff), optionally moving `off`/`off2`;
///    when the table gives no result the knode's own actions run if it is
///    terminal, else the walk goes on with the next knode;
///  - a terminal knode runs its actions; a `continue` result (TC_ACT_UNSPEC)
///    goes on with the next knode, any other result ends classification.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h" // SourcePos

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace r2x::ir::tc {

/// struct tc_u32_key: val and mask as the big-endian word reads (host order
/// here, i.e. ntohl of the kernel's fields), and the word's offset.
struct Key {
  uint32_t val = 0, mask = 0;
  int32_t off = 0;      ///< multiple of 4 (tc refuses others)
  bool nexthdr = false; ///< offmask != 0: shown as `at nexthdr+N`
  int32_t offmask = 0;  ///< toff adds off2 & offmask (tc uses -1, and 1
                        ///< for `ip6 icmp_code`; off2 is a multiple of 4)
  SourcePos pos;
};

/// TC_ACT_* results an action can return.
enum class Control { Ok, Shot, Pipe, Unspec, Stolen };
const char *controlName(Control c);

struct Action {
  enum class Kind { Gact, Mirred, Nat } kind = Kind::Gact;
  Control control = Control::Ok;
  std::string text; ///< as tc shows it, for listings
  // Mirred (egress redirect): the target device, resolved at load time.
  std::string dev;
  unsigned devSlot = 0; ///< index in the object's redirect table
  // Nat: addresses in host order; `egress` rewrites the source.
  bool egress = false;
  uint32_t oldAddr = 0, newAddr = 0, mask = 0;
  SourcePos pos;
};

/// struct tc_u32_sel flags.
enum : uint8_t { SelTerminal = 1, SelOffset = 2, SelVarOffset = 4, SelEat = 8 };

/// One `tc filter add ... u32` that put a knode into a table.
struct Knode {
  uint32_t handle = 0; ///< htid | bucket << 12 | node id
  std::vector<Key> keys;
  uint8_t flags = 0;
  std::optional<uint32_t> classid; ///< classid / flowid
  std::optional<uint32_t> link;    ///< htid of the table to descend into
  // offset: off2 = ((plus + 3 + ((word16 at offoff & offmask) >> shift)) & ~3)
  int16_t plus = 0;
  int16_t offoff = 0;
  uint16_t offmask = 0; ///< host order
  uint8_t offshift = 0;
  // hashkey: bucket = (word at hoff & hmask) >> fshift, masked by divisor-1
  uint32_t hmask = 0;
  int32_t hoff = 0;
  uint8_t fshift = 0;
  std::vector<Action> actions;
  unsigned counter = 0;
  std::string text; ///< the command, for listings
  SourcePos pos;
  bool terminal() const { return flags & SelTerminal; }
};

struct HashTable {
  uint32_t htid = 0;    ///< 0xNNN00000
  unsigned divisor = 1; ///< buckets (power of two, 1..256)
  uint32_t pref = 0;    ///< the filter it belongs to
  bool root = false;
  /// bucket -> knodes in ascending node id
  std::map<unsigned, std::vector<Knode>> buckets;
  SourcePos pos;
};

/// The ethertype a filter is for (`protocol`).
enum class Proto { Ip, Ipv6, All };
const char *protoName(Proto p);

/// One tcf_proto: a `pref` with its protocol and root table.
struct Filter {
  uint32_t pref = 0;
  Proto proto = Proto::All;
  uint32_t rootHtid = 0;
  SourcePos pos;
};

struct Program {
  std::string dev;             ///< the device the filters were written for
  std::vector<Filter> filters; ///< ascending pref
  std::map<uint32_t, HashTable> tables;
  std::vector<std::string> redirectDevs; ///< index = Action::devSlot
  unsigned numCounters = 0;
  bool passUnsupported = false;

  /// Assigns counter slots in display order (filters, then tables, then
  /// buckets and node ids).
  void finalize();
  const HashTable *table(uint32_t htid) const;
};

/// `--emit=ir` form; stable for lit tests.
std::string print(const Program &p);
/// `800:2:801`, as tc prints u32 handles.
std::string formatHandle(uint32_t handle);
/// `1:10`, as tc prints class ids.
std::string formatClassid(uint32_t classid);
/// `0a010002/ffffffff at 16`, as `tc filter show` prints a key.
std::string formatKey(const Key &k);

} // namespace r2x::ir::tc
