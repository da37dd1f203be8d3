//===- compiler/frontend/TcParser.cpp - tc commands -> tc u32 IR
//------------===//
//
/// \file
/// See TcParser.h. The selector parsers follow tc/f_u32.c (iproute2 6.1)
/// word for word: abbreviations are accepted where tc uses matches(), the
/// value is parsed with tc's base (values base 0, masks base 16), and the
/// packing into 32-bit keys keeps tc's quirks (a u16 at an odd offset lands
/// in the low half of the aligned word; keys at the same offset merge).
/// Where the kernel would refuse a command, so do we, with its reason.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/TcParser.h"

#include "compiler/frontend/Lex.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <linux/if_ether.h>
#include <optional>

namespace r2x::frontend {

namespace tc = ir::tc;

namespace {

constexpr uint32_t kRootHtid = 0x80000000u; ///< the first u32 root: 800:
constexpr uint32_t kAutoPref = 0xC000;      ///< tcf_auto_prio's start

uint32_t htidOf(uint32_t h) { return h & 0xFFF00000u; }
unsigned bucketOf(uint32_t h) { return (h >> 12) & 0xFF; }
unsigned nodeOf(uint32_t h) { return h & 0xFFF; }

/// iproute2's matches(): `arg` is a non-empty prefix of `word`.
bool matches(const std::string &arg, const char *word) {
  return !arg.empty() && std::strncmp(word, arg.c_str(), arg.size()) == 0 &&
         arg.size() <= std::strlen(word);
}

struct Cursor {
  const std::vector<Word> &w;
  size_t i = 0;
  ir::SourcePos end;

  bool done() const { return i >= w.size(); }
  const Word &peek() const { return w[i]; }
  bool is(const char *s) const { return !done() && w[i].text == s; }
  const Word &take() { return w[i++]; }
  /// The next word, or an error at the end of the command.
  const Word &need(const std::string &what) {
    if (done())
      throw Diagnostic(end, "missing " + what);
    return w[i++];
  }
};

/// get_u32()/get_u16()/get_u8() (getUnsigned), at most `max`.
uint64_t number(const Word &w, int base, uint64_t max,
                const std::string &what) {
  std::optional<uint64_t> v = getUnsigned(w.text, base);
  if (!v)
    failAt(w, "invalid " + what + " '" + w.text + "'");
  if (*v > max)
    failAt(w, what + " '" + w.text + "' is out of range");
  return *v;
}

/// get_integer() (getInteger).
int32_t integer(const Word &w, const std::string &what) {
  std::optional<int32_t> v = getInteger(w.text);
  if (!v)
    failAt(w, "invalid " + what + " '" + w.text + "'");
  return *v;
}

/// get_u32_handle(): `HTID:[HASH[:NODE]]` in hex, or 0xNNNNNNNN.
uint32_t u32Handle(const Word &w, const std::string &what) {
  if (std::optional<uint32_t> h = getU32Handle(w.text))
    return *h;
  if (w.text.find(':') == std::string::npos && w.text.compare(0, 2, "0x"))
    failAt(w, "invalid " + what + " '" + w.text +
                  "' (write HTID:[BUCKET[:NODE]] in hex)");
  failAt(w, "invalid " + what + " '" + w.text + "'");
}

/// get_tc_classid() (getTcClassid).
uint32_t classid(const Word &w) {
  std::optional<uint32_t> h = getTcClassid(w.text);
  if (!h)
    failAt(w, "invalid classid '" + w.text + "'");
  return *h;
}

/// get_prefix_1() for `ip src|dst` and `ip6 src|dst`: ADDR[/LEN] (LEN also
/// as a dotted IPv4 mask), or default/any/all.
struct Prefix {
  std::array<uint8_t, 16> addr{};
  int bits = 0;
};

Prefix prefix(const Word &w, bool v6) {
  std::string s = w.text;
  Prefix p;
  if (s == "default" || s == "any" || s == "all")
    return p;
  std::string a = s, len;
  size_t slash = s.find('/');
  if (slash != std::string::npos) {
    a = s.substr(0, slash);
    len = s.substr(slash + 1);
  }
  int maxBits = v6 ? 128 : 32;
  if (v6) {
    std::optional<std::array<uint8_t, 16>> addr = inetPton6(a);
    if (!addr)
      failAt(w, "invalid IPv6 address '" + s + "'");
    p.addr = *addr;
  } else {
    std::optional<uint32_t> addr = getAddrIpv4(a);
    if (!addr)
      failAt(w, "invalid IPv4 address '" + s + "'");
    uint32_t v = *addr;
    p.addr[0] = uint8_t(v >> 24);
    p.addr[1] = uint8_t(v >> 16);
    p.addr[2] = uint8_t(v >> 8);
    p.addr[3] = uint8_t(v);
  }
  p.bits = maxBits;
  if (slash != std::string::npos) {
    // get_netmask(): a number in base 0, else a contiguous dotted mask (also
    // after an IPv6 address, as tc reads it).
    if (std::optional<uint64_t> n = getUnsigned(len, 0)) {
      if (*n > uint64_t(maxBits))
        failAt(w, "invalid prefix length in '" + s + "'");
      p.bits = int(*n);
    } else {
      std::optional<uint32_t> m = getAddrIpv4(len);
      if (!m)
        failAt(w, "invalid prefix length in '" + s + "'");
      // A dotted mask must be contiguous (mask2bits()).
      int b = 0;
      while (b < 32 && (*m & (0x80000000u >> b)))
        ++b;
      if (b < 32 && (*m << b) != 0)
        failAt(w, "mask in '" + s + "' is not contiguous");
      p.bits = b;
    }
  }
  return p;
}

uint32_t be32(const std::array<uint8_t, 16> &a, unsigned word) {
  return uint32_t(a[4 * word]) << 24 | uint32_t(a[4 * word + 1]) << 16 |
         uint32_t(a[4 * word + 2]) << 8 | a[4 * word + 3];
}

/// A selector being built: struct tc_u32_sel's keys plus the knode options.
struct Sel {
  std::vector<tc::Key> keys;
};

/// pack_key(): merge with a key at the same offset, or append one; tc
/// refuses contradicting merges and unaligned offsets. Values in host order.
void packKey(Sel &sel, const Word &at, uint32_t key, uint32_t mask, int32_t off,
             int32_t offmask) {
  key &= mask;
  for (tc::Key &k : sel.keys) {
    if (k.off == off && k.offmask == offmask) {
      if ((key ^ k.val) & (mask & k.mask))
        failAt(at, "this match contradicts an earlier one at offset " +
                       std::to_string(off) + " (tc: Illegal \"match\")");
      k.val |= key;
      k.mask |= mask;
      return;
    }
  }
  if (sel.keys.size() >= 128)
    failAt(at, "more than 128 keys in one filter");
  if (off % 4)
    failAt(at, "a 32-bit match needs an offset that is a multiple of 4 (got " +
                   std::to_string(off) + "; tc: Illegal \"match\")");
  tc::Key k;
  k.val = key;
  k.mask = mask;
  k.off = off;
  k.offmask = offmask;
  k.nexthdr = offmask != 0;
  k.pos = at.pos;
  sel.keys.push_back(k);
}

void packKey16(Sel &sel, const Word &at, uint32_t key, uint32_t mask,
               int32_t off, int32_t nexthdr) {
  if (key > 0xFFFF || mask > 0xFFFF)
    failAt(at, "a 16-bit match takes values up to 0xffff");
  if ((off & 3) == 0) {
    key <<= 16;
    mask <<= 16;
  }
  off &= ~3;
  packKey(sel, at, key, mask, off, nexthdr);
}

void packKey8(Sel &sel, const Word &at, uint32_t key, uint32_t mask,
              int32_t off, int32_t nexthdr) {
  if (key > 0xFF || mask > 0xFF)
    failAt(at, "an 8-bit match takes values up to 0xff");
  unsigned shift = 8 * (3 - unsigned(off & 3));
  key <<= shift;
  mask <<= shift;
  off &= ~3;
  packKey(sel, at, key, mask, off, nexthdr);
}

/// parse_at(): `at [nexthdr+]N` after a value and mask.
void parseAt(Cursor &c, int32_t &off, int32_t &nexthdr) {
  if (!c.is("at"))
    return;
  c.take();
  const Word &w = c.need("offset after 'at'");
  std::string s = w.text;
  Word num = w;
  if (s.size() > 8 && s.rfind("nexthdr+", 0) == 0) {
    nexthdr = -1;
    num.text = s.substr(8);
    num.pos = advance(w.pos, 8);
  } else if (matches(s, "nexthdr+")) {
    nexthdr = -1;
    num = c.need("offset after 'nexthdr+'");
  }
  off = integer(num, "offset");
}

enum class Width { W32, W16, W8 };

/// parse_u32/u16/u8: VAL MASK [at [nexthdr+]OFF], packed at `off`.
void parseValue(Cursor &c, Sel &sel, Width width, int32_t off, int32_t nexthdr,
                const Word &sample) {
  const Word &v = c.need("value");
  uint32_t key = static_cast<uint32_t>(number(v, 0, 0xffffffffu, "value"));
  const Word &m = c.need("mask");
  uint32_t mask = static_cast<uint32_t>(number(m, 16, 0xffffffffu, "mask"));
  if (width == Width::W8 && (key > 0xFF || mask > 0xFF))
    failAt(v, "an 8-bit match takes values up to 0xff");
  parseAt(c, off, nexthdr);
  switch (width) {
  case Width::W32:
    packKey(sel, sample, key, mask, off, nexthdr);
    break;
  case Width::W16:
    packKey16(sel, sample, key, mask, off, nexthdr);
    break;
  case Width::W8:
    packKey8(sel, sample, key, mask, off, nexthdr);
    break;
  }
}

void parseIpAddr(Cursor &c, Sel &sel, int32_t off, const Word &sample) {
  const Word &a = c.need("address");
  Prefix p = prefix(a, false);
  int32_t nexthdr = 0;
  parseAt(c, off, nexthdr);
  uint32_t mask = p.bits ? 0xFFFFFFFFu << (32 - p.bits) : 0;
  packKey(sel, sample, be32(p.addr, 0), mask, off, nexthdr);
}

void parseIp6Addr(Cursor &c, Sel &sel, int32_t off, const Word &sample) {
  const Word &a = c.need("address");
  Prefix p = prefix(a, true);
  int32_t nexthdr = 0;
  parseAt(c, off, nexthdr);
  for (int i = 0; i < p.bits; i += 32) {
    uint32_t mask =
        i + 31 < p.bits ? 0xFFFFFFFFu : 0xFFFFFFFFu << (32 - (p.bits - i));
    packKey(sel, sample, be32(p.addr, unsigned(i / 32)), mask,
            off + 4 * (i / 32), nexthdr);
  }
}

void parseEtherAddr(Cursor &c, Sel &sel, int32_t off, const Word &sample) {
  const Word &a = c.need("MAC address");
  std::optional<std::array<uint8_t, 6>> b = sscanfEther(a.text);
  if (!b)
    failAt(a, "invalid MAC address '" + a.text + "'");
  int32_t nexthdr = 0;
  parseAt(c, off, nexthdr);
  for (int i = 0; i < 6; ++i)
    packKey8(sel, sample, (*b)[i], 0xFF, off + i, nexthdr);
}

// --- selectors: one table row per `match KIND FIELD`
// --------------------------

using SelectorParse = void (*)(Cursor &c, Sel &sel, const Word &kind);

/// How tc compares a field's word: strcmp(), or matches() (an abbreviation
/// is enough), as the parse_ip()... function of f_u32.c does for that field.
enum class Spelled { Exactly, Abbreviated };

/// One field of a selector kind: what parse_ip(), parse_ip6(), parse_tcp(),
/// parse_udp(), parse_icmp() and parse_ether() of iproute2 6.1 pack for it.
/// Offsets are tc's (from the IP header; -1 in parseValue's NEXTHDR: from
/// the transport header, nexthdr+).
struct SelectorField {
  const char *kind;
  const char *field;
  Spelled spelled;
  SelectorParse parse;
};

#define R2X_VALUE(W, OFF, NH)                                                  \
  [](Cursor &c, Sel &sel, const Word &k) { parseValue(c, sel, W, OFF, NH, k); }

const SelectorField kSelectorFields[] = {
    {"ip", "src", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) { parseIpAddr(c, sel, 12, k); }},
    {"ip", "dst", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) { parseIpAddr(c, sel, 16, k); }},
    {"ip", "tos", Spelled::Exactly, R2X_VALUE(Width::W8, 1, 0)},
    {"ip", "dsfield", Spelled::Abbreviated, R2X_VALUE(Width::W8, 1, 0)},
    {"ip", "precedence", Spelled::Abbreviated, R2X_VALUE(Width::W8, 1, 0)},
    {"ip", "ihl", Spelled::Exactly, R2X_VALUE(Width::W8, 0, 0)},
    {"ip", "protocol", Spelled::Exactly, R2X_VALUE(Width::W8, 9, 0)},
    {"ip", "nofrag", Spelled::Exactly,
     [](Cursor &, Sel &sel, const Word &k) {
       packKey16(sel, k, 0, 0x3FFF, 6, false);
     }},
    // MF set, offset 0 (tc 6.1 packs 2000/3fff).
    {"ip", "firstfrag", Spelled::Exactly,
     [](Cursor &, Sel &sel, const Word &k) {
       packKey16(sel, k, 0x2000, 0x3FFF, 6, 0);
     }},
    {"ip", "df", Spelled::Exactly,
     [](Cursor &, Sel &sel, const Word &k) {
       packKey16(sel, k, 0x4000, 0x4000, 6, 0);
     }},
    {"ip", "mf", Spelled::Exactly,
     [](Cursor &, Sel &sel, const Word &k) {
       packKey16(sel, k, 0x2000, 0x2000, 6, 0);
     }},
    {"ip", "dport", Spelled::Exactly, R2X_VALUE(Width::W16, 22, 0)},
    {"ip", "sport", Spelled::Exactly, R2X_VALUE(Width::W16, 20, 0)},
    {"ip", "icmp_type", Spelled::Exactly, R2X_VALUE(Width::W8, 20, 0)},
    {"ip", "icmp_code", Spelled::Exactly, R2X_VALUE(Width::W8, 21, 0)},

    {"ip6", "src", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) { parseIp6Addr(c, sel, 8, k); }},
    {"ip6", "dst", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) { parseIp6Addr(c, sel, 24, k); }},
    // parse_ip6_class(): the traffic class, 8 bits after the version.
    {"ip6", "priority", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) {
       const Word &v = c.need("value");
       uint32_t key = static_cast<uint32_t>(number(v, 0, 0xffffffffu, "value"));
       const Word &m = c.need("mask");
       uint32_t mask =
           static_cast<uint32_t>(number(m, 16, 0xffffffffu, "mask"));
       if (key > 0xFF || mask > 0xFF)
         failAt(v, "ip6 priority takes values up to 0xff");
       packKey(sel, k, key << 20, mask << 20, 0, 0);
     }},
    {"ip6", "protocol", Spelled::Exactly, R2X_VALUE(Width::W8, 6, 0)},
    {"ip6", "flowlabel", Spelled::Exactly, R2X_VALUE(Width::W32, 0, 0)},
    {"ip6", "dport", Spelled::Exactly, R2X_VALUE(Width::W16, 42, 0)},
    {"ip6", "sport", Spelled::Exactly, R2X_VALUE(Width::W16, 40, 0)},
    {"ip6", "icmp_type", Spelled::Exactly, R2X_VALUE(Width::W8, 40, 0)},
    // tc packs it with offmask 1.
    {"ip6", "icmp_code", Spelled::Exactly, R2X_VALUE(Width::W8, 41, 1)},

    {"udp", "src", Spelled::Exactly, R2X_VALUE(Width::W16, 0, -1)},
    {"udp", "dst", Spelled::Exactly, R2X_VALUE(Width::W16, 2, -1)},
    {"tcp", "src", Spelled::Exactly, R2X_VALUE(Width::W16, 0, -1)},
    {"tcp", "dst", Spelled::Exactly, R2X_VALUE(Width::W16, 2, -1)},

    {"icmp", "type", Spelled::Exactly, R2X_VALUE(Width::W8, 0, -1)},
    {"icmp", "code", Spelled::Exactly, R2X_VALUE(Width::W8, 1, -1)},

    {"ether", "src", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) { parseEtherAddr(c, sel, -8, k); }},
    {"ether", "dst", Spelled::Exactly,
     [](Cursor &c, Sel &sel, const Word &k) {
       parseEtherAddr(c, sel, -14, k);
     }},
};

/// The selector kinds, in parse_selector()'s order (it matters: each is
/// tried with matches(), so an abbreviation takes the first kind it fits).
/// A kind with `whole` set takes no field word; the others look their
/// field up in kSelectorFields and name the fields in `unknown`.
struct SelectorKind {
  const char *name;
  SelectorParse whole;
  const char *unknown; ///< appended to "unknown KIND field 'F'"
};

const SelectorKind kSelectorKinds[] = {
    {"u32", R2X_VALUE(Width::W32, 0, 0), nullptr},
    {"u16", R2X_VALUE(Width::W16, 0, 0), nullptr},
    {"u8", R2X_VALUE(Width::W8, 0, 0), nullptr},
    {"ip", nullptr, ""},
    {"ip6", nullptr, ""},
    {"udp", nullptr, " (src or dst)"},
    {"tcp", nullptr, " (src or dst)"},
    {"icmp", nullptr, " (type or code)"},
    {"mark",
     [](Cursor &, Sel &, const Word &k) {
       failAt(k, "match mark is not supported: XDP runs before the kernel "
                 "gives a packet its mark");
     },
     nullptr},
    {"ether", nullptr, " (src or dst)"},
};

#undef R2X_VALUE

/// parse_selector(): one `match` (or `sample`) selector, through the tables.
void parseSelector(Cursor &c, Sel &sel) {
  const Word &kind =
      c.need("selector (u32, u16, u8, ip, ip6, tcp, udp, icmp, ether)");
  const std::string &k = kind.text;
  const SelectorKind *sk = nullptr;
  for (const SelectorKind &cand : kSelectorKinds)
    if (matches(k, cand.name)) {
      sk = &cand;
      break;
    }
  if (!sk)
    failAt(kind, "unknown selector '" + k +
                     "' (u32, u16, u8, ip, ip6, tcp, udp, icmp, ether)");
  if (sk->whole) {
    sk->whole(c, sel, kind);
    return;
  }
  // Messages name udp and tcp as written (`match tc ...'), the others by
  // their names.
  bool asWritten =
      std::strcmp(sk->name, "udp") == 0 || std::strcmp(sk->name, "tcp") == 0;
  std::string shown = asWritten ? k : sk->name;
  const Word &f = c.need(shown + " field");
  for (const SelectorField &row : kSelectorFields)
    if (std::strcmp(row.kind, sk->name) == 0 &&
        (row.spelled == Spelled::Exactly ? f.text == row.field
                                         : matches(f.text, row.field))) {
      row.parse(c, sel, kind);
      return;
    }
  failAt(f, "unknown " + shown + " field '" + f.text + "'" + sk->unknown);
}

/// action_a2n(): the control words.
bool controlWord(const std::string &s, tc::Control &out) {
  if (s == "continue")
    out = tc::Control::Unspec;
  else if (s == "drop" || s == "shot")
    out = tc::Control::Shot;
  else if (s == "pass" || s == "ok")
    out = tc::Control::Ok;
  else if (s == "pipe")
    out = tc::Control::Pipe;
  else
    return false;
  return true;
}

bool unsupportedControl(const std::string &s) {
  return s == "reclassify" || s == "goto" || s == "jump" || s == "trap";
}

/// What parse_u32() has read of one `u32 ...` so far: the knode, its
/// selector, and where it goes.
struct U32Opts {
  Sel sel;
  tc::Knode k;
  bool selOk = false, terminal = false, sampleOk = false;
  uint32_t htid = 0;
  std::optional<Word> htWord, divisorWord, linkWord, sampleWord, orderWord;
  std::optional<unsigned> divisor;
  uint32_t order = 0;
  /// TcBuilder::Impl::actions, for `action`.
  std::function<void(Cursor &, tc::Knode &)> actions;
};

/// A power of two from 1 to 256, as u32 hash tables and samples divide.
unsigned divisorValue(const Word &n, const char *illegal) {
  uint64_t d = number(n, 0, 0xffffffffu, "divisor");
  if (d == 0 || d > 0x100 || ((d - 1) & d))
    failAt(n, illegal);
  return static_cast<unsigned>(d);
}

void u32Match(Cursor &c, const Word &, U32Opts &o) {
  parseSelector(c, o.sel);
  o.selOk = true;
}

/// parse_offset(): plus N, at N (even), mask M (hex u16), shift S, eat.
void u32Offset(Cursor &c, const Word &, U32Opts &o) {
  tc::Knode &k = o.k;
  while (!c.done()) {
    const std::string &s = c.peek().text;
    if (matches(s, "plus")) {
      c.take();
      const Word &n = c.need("offset plus value");
      int32_t v = integer(n, "offset");
      if (v < 0 || v > 0x7fff)
        failAt(n, "offset plus takes 0..32767 here (a negative offset would "
                  "read before the network header)");
      k.plus = static_cast<int16_t>(v);
      k.flags |= tc::SelOffset;
    } else if (matches(s, "at")) {
      c.take();
      const Word &n = c.need("offset at value");
      int32_t v = integer(n, "offset");
      if (v % 2)
        failAt(n, "offset \"at\" must be even");
      if (v < 0 || v > 0x7fff)
        failAt(n, "offset at takes 0..32767 here");
      k.offoff = static_cast<int16_t>(v);
      k.flags |= tc::SelVarOffset;
    } else if (matches(s, "mask")) {
      c.take();
      k.offmask = static_cast<uint16_t>(
          number(c.need("offset mask"), 16, 0xffff, "offset mask"));
      k.flags |= tc::SelVarOffset;
    } else if (matches(s, "shift")) {
      c.take();
      const Word &n = c.need("offset shift");
      int32_t v = integer(n, "shift");
      if (v < 0 || v > 255)
        failAt(n, "shift takes 0..255");
      k.offshift = static_cast<uint8_t>(v);
      k.flags |= tc::SelVarOffset;
    } else if (matches(s, "eat")) {
      c.take();
      k.flags |= tc::SelEat;
    } else {
      return;
    }
  }
}

/// parse_hashkey(): mask M (hex u32), at N (a multiple of 4).
void u32Hashkey(Cursor &c, const Word &, U32Opts &o) {
  while (!c.done()) {
    const std::string &s = c.peek().text;
    if (matches(s, "mask")) {
      c.take();
      o.k.hmask = static_cast<uint32_t>(
          number(c.need("hashkey mask"), 16, 0xffffffffu, "hashkey mask"));
    } else if (matches(s, "at")) {
      c.take();
      const Word &n = c.need("hashkey offset");
      int32_t v = integer(n, "hashkey offset");
      if (v % 4)
        failAt(n,
               "hashkey at must be a multiple of 4 (tc: Illegal \"hashkey\")");
      o.k.hoff = v;
    } else {
      return;
    }
  }
}

void u32Classid(Cursor &c, const Word &, U32Opts &o) {
  o.k.classid = classid(c.need("classid"));
  o.k.flags |= tc::SelTerminal;
}

void u32Divisor(Cursor &c, const Word &, U32Opts &o) {
  const Word &n = c.need("divisor");
  o.divisor =
      divisorValue(n, "Illegal \"divisor\": a power of two from 1 to 256");
  o.divisorWord = n;
}

void u32Order(Cursor &c, const Word &, U32Opts &o) {
  const Word &n = c.need("order");
  o.order = static_cast<uint32_t>(number(n, 0, 0xffffffffu, "order"));
  o.orderWord = n;
}

/// `link` and `ht` take a hash table's handle (HTID:, no node).
uint32_t tableHandle(const Word &n, const char *option) {
  uint32_t h = u32Handle(n, option);
  if (h && nodeOf(h))
    failAt(n, "\"" + std::string(option) + "\" must be a hash table");
  return h;
}

void u32Link(Cursor &c, const Word &, U32Opts &o) {
  const Word &n = c.need("link handle");
  uint32_t h = tableHandle(n, "link");
  if (!h)
    failAt(n, "link 0 (unlink) has no meaning for a new filter");
  o.k.link = h;
  o.linkWord = n;
}

void u32Ht(Cursor &c, const Word &, U32Opts &o) {
  const Word &n = c.need("hash table");
  uint32_t h = tableHandle(n, "ht");
  o.htid =
      o.sampleOk ? ((o.htid & 0xFF000) | (h & 0xFFF00000u)) : (h & 0xFFFFF000u);
  o.htWord = n;
}

/// sample SELECTOR [divisor N]: the bucket the selector's value hashes to.
void u32Sample(Cursor &c, const Word &w, U32Opts &o) {
  Sel s2;
  size_t before = c.i;
  parseSelector(c, s2);
  if (s2.keys.size() != 1)
    failAt(c.w[before], "\"sample\" must contain exactly ONE key");
  unsigned div = 0x100;
  if (c.is("divisor")) {
    c.take();
    div = divisorValue(c.need("sample divisor"), "Illegal sample \"divisor\"");
  }
  // tc 6.1 hashes the sample as the kernel does: the masked word
  // shifted down to the mask's lowest bit.
  uint32_t m = s2.keys[0].mask;
  unsigned shift = m ? unsigned(__builtin_ctz(m)) : 0;
  uint32_t hash = (s2.keys[0].val & m) >> shift;
  o.htid = ((hash % div) << 12) | (o.htid & 0xFFF00000u);
  o.sampleOk = true;
  o.sampleWord = w;
}

void u32Action(Cursor &c, const Word &, U32Opts &o) {
  o.actions(c, o.k);
  o.terminal = true;
}

void u32SkipHw(Cursor &, const Word &, U32Opts &) {
  // Software only is what we compile anyway.
}

template <const char *Why> void u32Refused(Cursor &, const Word &w, U32Opts &) {
  failAt(w, Why);
}
constexpr char kNoIndev[] = "indev is not supported";
constexpr char kNoPolice[] = "police cannot be done in XDP";
constexpr char kNoSkipSw[] = "skip_sw: the kernel never runs this filter in "
                             "software; there is nothing to compile";

/// parse_u32()'s options in its order: tc tries them one after the other,
/// by prefix where it uses matches(), so the order decides what an
/// abbreviation means (`o' is offset, not order).
struct U32Option {
  const char *name;
  bool abbrev; ///< matches(); false: strcmp()
  void (*parse)(Cursor &c, const Word &w, U32Opts &o);
};
constexpr U32Option kU32Options[] = {
    {"match", true, u32Match},
    {"offset", true, u32Offset},
    {"hashkey", true, u32Hashkey},
    {"classid", true, u32Classid},
    {"flowid", false, u32Classid},
    {"divisor", true, u32Divisor},
    {"order", true, u32Order},
    {"link", false, u32Link},
    {"ht", false, u32Ht},
    {"sample", false, u32Sample},
    {"indev", false, u32Refused<kNoIndev>},
    {"action", true, u32Action},
    {"police", true, u32Refused<kNoPolice>},
    {"skip_hw", false, u32SkipHw},
    {"skip_sw", false, u32Refused<kNoSkipSw>},
};

/// gen_new_kid() and the handle checks of parse_u32(): the knode's handle
/// in table `ht` at bucket bucketOf(o.htid).
uint32_t knodeHandle(const U32Opts &o, const tc::HashTable &ht,
                     std::optional<uint32_t> fhandle,
                     const std::optional<Word> &handleWord,
                     const Word &kindWord) {
  uint32_t handle = fhandle.value_or(0);
  if (o.order) {
    if (nodeOf(handle) && o.order != nodeOf(handle))
      failAt(*o.orderWord, "\"order\" contradicts \"handle\"");
    handle |= o.order;
  }
  if (handle) {
    if (htidOf(handle) && htidOf(handle ^ o.htid))
      failAt(handleWord ? *handleWord : *o.orderWord,
             "Handle specified hash table address mismatch");
    if (!nodeOf(handle) || nodeOf(handle) > 0xFFF)
      failAt(handleWord ? *handleWord : *o.orderWord,
             "the handle needs a node id (HTID:BUCKET:NODE)");
    handle = (o.htid & 0xFFFFF000u) | nodeOf(handle);
  } else {
    // gen_new_kid(): the lowest free node id from 0x800 in the table.
    std::vector<unsigned> used;
    for (const auto &[b, nodes] : ht.buckets)
      for (const tc::Knode &n : nodes)
        used.push_back(nodeOf(n.handle));
    unsigned id = 0x800;
    while (id <= 0xFFF && std::count(used.begin(), used.end(), id))
      ++id;
    if (id > 0xFFF)
      failAt(kindWord, "no free node id in table " + tc::formatHandle(ht.htid));
    handle = (o.htid & 0xFFFFF000u) | id;
  }
  for (const auto &[b, nodes] : ht.buckets)
    for (const tc::Knode &n : nodes)
      if (n.handle == handle)
        failAt(handleWord ? *handleWord : kindWord,
               "filter " + tc::formatHandle(handle) + " exists already");
  return handle;
}

/// Keys that read before the frame, which the kernel reads from its
/// headroom (the Ethernet header lies at -14..-1 for untagged frames), or
/// far beyond it: what rule2xdp does not compile.
void checkKeyOffsets(const tc::Knode &k, const tc::Filter &f,
                     const Word &kindWord) {
  for (const tc::Key &key : k.keys) {
    if (key.off > 0x7000)
      throw Diagnostic(key.pos, "match " + tc::formatKey(key) +
                                    ": offsets beyond 28672 are not supported");
    if (key.off >= 0)
      continue;
    if (key.off + 3 < -14)
      throw Diagnostic(key.pos, "match " + tc::formatKey(key) +
                                    " reads before the Ethernet header (the "
                                    "kernel would read its buffer's headroom)");
    if (f.proto == tc::Proto::All)
      throw Diagnostic(key.pos,
                       "a negative offset with protocol all is not supported "
                       "(on a VLAN-tagged frame the kernel has moved the "
                       "Ethernet header)");
    for (int b = 0; b < 4; ++b) {
      uint32_t byteMask = key.mask & (0xFF000000u >> (8 * b));
      if (byteMask && key.off + b < -14)
        throw Diagnostic(key.pos,
                         "match " + tc::formatKey(key) +
                             " reads before the Ethernet header (the "
                             "kernel would read its buffer's headroom)");
    }
  }
  if (k.hoff < -14 || k.hoff > 0x7fff)
    throw Diagnostic(kindWord.pos,
                     "hashkey at " + std::to_string(k.hoff) +
                         " is out of the range rule2xdp compiles");
}

/// `index N` after an action: read and checked, not used (rule2xdp shares
/// no action between filters).
void skipActionIndex(Cursor &c) {
  if (c.is("index")) {
    c.take();
    number(c.need("action index"), 0, 0xffffffffu, "action index");
  }
}

/// What `filter add` says before the kind.
struct FilterSpec {
  std::optional<uint32_t> pref, proto;
  std::optional<Word> handleWord, protoWord, prefWord;
  bool parent = false;
  const Word *kind = nullptr;
};

/// `parent HANDLE`: only the ingress hook (ffff: or the clsact ingress
/// handle) is what XDP sees.
void checkIngressParent(const Word &p) {
  uint32_t h = classid(p);
  if (h == 0xfffffff3u)
    failAt(p, "egress filters cannot be compiled: XDP sees received packets "
              "only (use parent ffff: or ingress)");
  if (h != 0xffff0000u && h != 0xfffffff2u)
    failAt(p, "parent " + p.text +
                  " is not the ingress hook: XDP sees received "
                  "packets only (use parent ffff: or ingress)");
}

/// `protocol NAME`: ll_proto_a2n() (a name, else get_be16() in base 0);
/// rule2xdp compiles ip, ipv6 and all.
uint32_t filterProtocol(const Word &p) {
  if (p.text == "ip")
    return ETH_P_IP;
  if (p.text == "ipv6")
    return ETH_P_IPV6;
  if (p.text == "all")
    return ETH_P_ALL;
  std::optional<uint64_t> v = getUnsigned(p.text, 0);
  if (!v || (*v != ETH_P_IP && *v != ETH_P_IPV6 && *v != ETH_P_ALL))
    failAt(p, "unsupported protocol '" + p.text + "' (ip, ipv6 or all)");
  return static_cast<uint32_t>(*v);
}

} // namespace

//===----------------------------------------------------------------------===//

std::vector<Word> splitTcLine(const std::string &line,
                              const ir::SourcePos &start) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])))
      ++i;
    if (i >= line.size())
      break;
    Word w;
    w.pos = advance(start, i);
    if (line[i] == '"' || line[i] == '\'') {
      char q = line[i++];
      size_t close = line.find(q, i);
      if (close == std::string::npos)
        throw Diagnostic(w.pos, "unterminated quote");
      w.text = line.substr(i, close - i);
      i = close + 1;
    } else {
      size_t b = i;
      while (i < line.size() &&
             !std::isspace(static_cast<unsigned char>(line[i])))
        ++i;
      w.text = line.substr(b, i - b);
    }
    words.push_back(std::move(w));
  }
  return words;
}

struct TcBuilder::Impl {
  bool passUnsupported;
  tc::Program prog;
  std::optional<Word> devWord;
  uint32_t nextAutoHt = 0x801; ///< after 800:, which the first root takes
  bool anyRoot = false;

  tc::Filter *filter(uint32_t pref) {
    for (tc::Filter &f : prog.filters)
      if (f.pref == pref)
        return &f;
    return nullptr;
  }

  uint32_t newHtid() {
    if (!anyRoot) {
      anyRoot = true;
      if (!prog.tables.count(kRootHtid))
        return kRootHtid;
    }
    for (;; ++nextAutoHt) {
      if (nextAutoHt > 0xFFF)
        throw Diagnostic({}, "too many u32 hash tables");
      uint32_t h = nextAutoHt << 20;
      if (!prog.tables.count(h)) {
        ++nextAutoHt;
        return h;
      }
    }
  }

  void setDev(const Word &w) {
    if (devWord && devWord->text != w.text)
      failAt(w, "all commands must be for one device (" + devWord->text +
                    " here): one XDP program runs on one device");
    if (!devWord)
      devWord = w;
    prog.dev = w.text;
  }

  void qdisc(Cursor &c);
  void filterAdd(Cursor &c);
  FilterSpec filterOptions(Cursor &c);
  tc::Filter &filterFor(const FilterSpec &fs);
  void u32(Cursor &c, const Word &kindWord, tc::Filter &f,
           std::optional<uint32_t> fhandle,
           const std::optional<Word> &handleWord);
  void actions(Cursor &c, tc::Knode &k);
  tc::Action gactAction(Cursor &c, const Word &w);
  tc::Action mirredAction(Cursor &c, const Word &w);
  tc::Action natAction(Cursor &c, const Word &w);
  tc::Action handedOver(Cursor &c, const Word &w, const std::string &what);
  void addHashTable(const U32Opts &o, const tc::Filter &f,
                    std::optional<uint32_t> fhandle,
                    const std::optional<Word> &handleWord);
  tc::HashTable &knodeTable(U32Opts &o, const tc::Filter &f,
                            const Word &kindWord);
  void checkLink(const U32Opts &o, const tc::Filter &f) const;
};

TcBuilder::TcBuilder(bool passUnsupported) : impl_(std::make_shared<Impl>()) {
  impl_->passUnsupported = passUnsupported;
  impl_->prog.passUnsupported = passUnsupported;
}

void TcBuilder::command(const std::vector<Word> &words,
                        const ir::SourcePos &end) {
  Cursor c{words, 0, end};
  if (c.done())
    return;
  const Word &obj = c.take();
  if (matches(obj.text, "qdisc"))
    impl_->qdisc(c);
  else if (matches(obj.text, "filter"))
    impl_->filterAdd(c);
  else
    failAt(obj, "unsupported tc object '" + obj.text +
                    "': give `qdisc add` and `filter add` commands");
}

void TcBuilder::Impl::qdisc(Cursor &c) {
  const Word &verb = c.need("qdisc command (add)");
  if (!matches(verb.text, "add"))
    failAt(verb, "only `qdisc add` is supported (got '" + verb.text + "')");
  bool kind = false;
  while (!c.done()) {
    const Word &w = c.take();
    if (w.text == "dev")
      setDev(c.need("device name"));
    else if (w.text == "handle") {
      const Word &h = c.need("handle");
      if (h.text != "ffff:" && h.text != "ffff")
        failAt(h, "an ingress qdisc's handle is ffff:");
    } else if (w.text == "parent") {
      const Word &p = c.need("parent");
      if (p.text != "ffff:fff1")
        failAt(p, "an ingress or clsact qdisc has parent ffff:fff1");
    } else if (w.text == "ingress" || w.text == "clsact") {
      kind = true;
    } else {
      failAt(w, "only the ingress and clsact qdiscs are accepted: XDP sees "
                "received packets before any qdisc ('" +
                    w.text + "')");
    }
  }
  if (!kind)
    throw Diagnostic(c.end, "missing qdisc kind (ingress or clsact)");
}

/// `filter add` OPTIONS u32 ...: the options, the filter they name or
/// create, then u32().
void TcBuilder::Impl::filterAdd(Cursor &c) {
  const Word &verb = c.need("filter command (add)");
  if (!matches(verb.text, "add"))
    failAt(verb, "only `filter add` is supported (got '" + verb.text + "')");
  FilterSpec fs = filterOptions(c);
  if (!fs.kind)
    throw Diagnostic(c.end, "missing filter kind (u32)");
  const Word &kind = *fs.kind;
  if (kind.text != "u32")
    failAt(kind,
           "only the u32 classifier is supported (got '" + kind.text + "')");
  if (!devWord)
    failAt(kind, "missing `dev DEVICE`");
  if (!fs.parent)
    failAt(kind, "missing parent: the filter must be on the ingress hook "
                 "(parent ffff: or ingress)");
  tc::Filter &f = filterFor(fs);
  std::optional<uint32_t> fh;
  if (fs.handleWord)
    fh = u32Handle(*fs.handleWord, "filter handle");
  u32(c, kind, f, fh, fs.handleWord);
}

/// tc_filter_modify()'s options, up to the filter kind.
FilterSpec TcBuilder::Impl::filterOptions(Cursor &c) {
  FilterSpec fs;
  while (!c.done()) {
    const Word &w = c.take();
    const std::string &s = w.text;
    if (s == "dev") {
      setDev(c.need("device name"));
    } else if (s == "root") {
      failAt(w, "a filter at the root is an egress filter; XDP sees received "
                "packets only: attach to the ingress qdisc (parent ffff:)");
    } else if (s == "parent") {
      checkIngressParent(c.need("parent"));
      fs.parent = true;
    } else if (s == "ingress") {
      fs.parent = true;
    } else if (s == "egress") {
      failAt(
          w,
          "egress filters cannot be compiled: XDP sees received packets only");
    } else if (s == "handle") {
      fs.handleWord = c.need("handle");
    } else if (s == "chain") {
      const Word &n = c.need("chain index");
      if (number(n, 0, 0xffffffffu, "chain index") != 0)
        failAt(n, "only chain 0 is supported");
    } else if (matches(s, "preference") || matches(s, "priority")) {
      const Word &n = c.need("priority");
      uint64_t v = number(n, 0, 0xffffffffu, "priority");
      if (v > 0xFFFF)
        failAt(n, "Illegal \"priority\": at most 65535");
      fs.pref = static_cast<uint32_t>(v);
      fs.prefWord = n;
    } else if (matches(s, "protocol")) {
      fs.protoWord = c.need("protocol");
      fs.proto = filterProtocol(*fs.protoWord);
    } else if (s == "estimator") {
      failAt(w, "estimator is not supported");
    } else {
      fs.kind = &w;
      break;
    }
  }
  return fs;
}

/// The filter at the command's pref (tc's automatic one when not given),
/// created with its root hash table when there is none yet.
tc::Filter &TcBuilder::Impl::filterFor(const FilterSpec &fs) {
  tc::Proto p = tc::Proto::All;
  if (fs.proto == ETH_P_IP)
    p = tc::Proto::Ip;
  else if (fs.proto == ETH_P_IPV6)
    p = tc::Proto::Ipv6;

  std::optional<uint32_t> pref = fs.pref;
  tc::Filter *f = nullptr;
  if (pref) {
    if (*pref == 0)
      failAt(*fs.prefWord,
             "priority 0 means \"choose one\"; give 1..65535 or leave it out");
    f = filter(*pref);
    if (f && fs.protoWord && f->proto != p)
      failAt(*fs.protoWord, "pref " + std::to_string(*pref) +
                                " already holds a filter for protocol " +
                                tc::protoName(f->proto) +
                                " (the kernel refuses a second protocol)");
  } else {
    // tc_new_tfilter() looks for the first filter at or above 0x8000 and
    // tcf_auto_prio() takes one below it, or 49152 when there is none: a
    // filter without pref runs before the earlier ones without pref.
    uint32_t lowest = kAutoPref + 1;
    for (const tc::Filter &g : prog.filters)
      if (g.pref >= 0x8000)
        lowest = std::min(lowest, g.pref);
    pref = lowest - 1;
    if (*pref == 0)
      failAt(*fs.kind, "no automatic priority left");
  }
  if (f)
    return *f;
  tc::Filter nf;
  nf.pref = *pref;
  nf.proto = p;
  nf.pos = fs.kind->pos;
  nf.rootHtid = newHtid();
  tc::HashTable root;
  root.htid = nf.rootHtid;
  root.root = true;
  root.pref = nf.pref;
  root.pos = fs.kind->pos;
  prog.tables[root.htid] = root;
  prog.filters.push_back(nf);
  std::sort(
      prog.filters.begin(), prog.filters.end(),
      [](const tc::Filter &a, const tc::Filter &b) { return a.pref < b.pref; });
  return *filter(*pref);
}

/// parse_action(): actions until the words end or classid/flowid; each
/// `action` word starts the next one. A dispatcher over the action kinds.
void TcBuilder::Impl::actions(Cursor &c, tc::Knode &k) {
  while (!c.done()) {
    const Word &w = c.peek();
    if (w.text == "action") {
      c.take();
      continue;
    }
    if (w.text == "classid" || w.text == "flowid")
      return;
    c.take();
    tc::Control ctl;
    if (controlWord(w.text, ctl) || w.text == "gact")
      k.actions.push_back(gactAction(c, w));
    else if (unsupportedControl(w.text))
      failAt(w, "control '" + w.text + "' is not supported");
    else if (w.text == "mirred")
      k.actions.push_back(mirredAction(c, w));
    else if (w.text == "nat")
      k.actions.push_back(natAction(c, w));
    else if (passUnsupported)
      k.actions.push_back(handedOver(c, w, w.text));
    else
      failAt(w, "action " + w.text +
                    " cannot be done in XDP (rule2xdp compiles gact "
                    "drop/pass/pipe/continue, mirred egress redirect and nat; "
                    "--pass-unsupported hands such packets to the kernel)");
  }
}

/// An action XDP cannot carry out, with --pass-unsupported: its words are
/// skipped and the packet goes to the kernel.
tc::Action TcBuilder::Impl::handedOver(Cursor &c, const Word &w,
                                       const std::string &what) {
  while (!c.done() && c.peek().text != "action" && c.peek().text != "classid" &&
         c.peek().text != "flowid")
    c.take();
  tc::Action a;
  a.pos = w.pos;
  a.kind = tc::Action::Kind::Gact;
  a.control = tc::Control::Ok;
  a.text = what + " (unsupported: handed to the kernel)";
  return a;
}

/// gact: [gact] CONTROL [index N].
tc::Action TcBuilder::Impl::gactAction(Cursor &c, const Word &w) {
  tc::Action a;
  a.pos = w.pos;
  a.kind = tc::Action::Kind::Gact;
  const Word *cw = &w;
  if (w.text == "gact")
    cw = &c.need("gact control (drop, pass, pipe, continue)");
  tc::Control ctl;
  if (!controlWord(cw->text, ctl)) {
    if (unsupportedControl(cw->text) || cw->text == "random")
      failAt(*cw, "gact " + cw->text + " is not supported");
    failAt(*cw, "invalid gact control '" + cw->text + "'");
  }
  a.control = ctl;
  if (c.is("random"))
    failAt(c.peek(),
           "gact random is not supported: its choice is the kernel's");
  skipActionIndex(c);
  a.text = std::string("gact ") + tc::controlName(ctl);
  return a;
}

/// mirred egress redirect dev DEVICE [index N].
tc::Action TcBuilder::Impl::mirredAction(Cursor &c, const Word &w) {
  const Word &dir = c.need("mirred direction (egress)");
  const Word &what = c.need("mirred action (redirect)");
  if (dir.text != "egress")
    failAt(dir, "mirred " + dir.text +
                    " is not supported: XDP can only send a "
                    "frame out of a device (egress redirect)");
  if (what.text != "redirect") {
    if (passUnsupported)
      return handedOver(c, w, "mirred " + what.text);
    failAt(what, "mirred " + what.text +
                     " cannot be done in XDP (XDP cannot copy "
                     "a frame); only `mirred egress redirect` is supported");
  }
  const Word &devKw = c.need("dev");
  if (devKw.text != "dev")
    failAt(devKw, "expected `dev DEVICE` after mirred egress redirect");
  const Word &dev = c.need("device name");
  tc::Action a;
  a.pos = w.pos;
  a.kind = tc::Action::Kind::Mirred;
  a.dev = dev.text;
  a.control = tc::Control::Stolen;
  tc::Control ctl;
  if (!c.done() && controlWord(c.peek().text, ctl))
    failAt(c.peek(), "mirred redirect with a control other than the default "
                     "(stolen) is not supported");
  skipActionIndex(c);
  auto it =
      std::find(prog.redirectDevs.begin(), prog.redirectDevs.end(), dev.text);
  a.devSlot = static_cast<unsigned>(it - prog.redirectDevs.begin());
  if (it == prog.redirectDevs.end())
    prog.redirectDevs.push_back(dev.text);
  a.text = "mirred egress redirect dev " + dev.text;
  return a;
}

/// parse_nat_args() (tc/m_nat.c): DIRECTION OLD NEW [CONTROL] [index N],
/// both addresses through get_prefix_1(); NEW's prefix length is not used.
tc::Action TcBuilder::Impl::natAction(Cursor &c, const Word &w) {
  const Word &dir = c.need("nat direction (ingress or egress)");
  if (!matches(dir.text, "egress") && !matches(dir.text, "ingress"))
    failAt(dir, "nat takes ingress or egress (got '" + dir.text + "')");
  const Word &oldW = c.need("old address");
  const Word &newW = c.need("new address");
  Prefix o = prefix(oldW, false);
  // tc computes the mask as ~0u << (32 - len): a shift by 32 for /0,
  // undefined in C (x86 gives a /32 mask).
  if (o.bits == 0)
    failAt(oldW,
           "nat with a /0 (or default/any/all) old address: tc computes its "
           "mask "
           "as ~0u << 32, which C leaves undefined (x86 makes it /32); give a "
           "prefix length of 1 to 32");
  Prefix n = prefix(newW, false);
  tc::Action a;
  a.pos = w.pos;
  a.kind = tc::Action::Kind::Nat;
  a.egress = matches(dir.text, "egress");
  a.oldAddr = be32(o.addr, 0);
  a.mask = 0xFFFFFFFFu << (32 - o.bits);
  a.newAddr = be32(n.addr, 0);
  a.control = tc::Control::Ok;
  tc::Control ctl;
  if (!c.done() && controlWord(c.peek().text, ctl)) {
    a.control = ctl;
    c.take();
  }
  skipActionIndex(c);
  // As `tc actions show` prints it.
  a.text = std::string("nat ") + (a.egress ? "egress " : "ingress ") +
           ir::formatAddr(a.oldAddr) + "/" + std::to_string(o.bits) + " " +
           ir::formatAddr(a.newAddr) + " " + tc::controlName(a.control);
  return a;
}

/// parse_u32(): a dispatcher over kU32Options, then either a new hash table
/// (divisor) or a knode placed in its table and bucket.
void TcBuilder::Impl::u32(Cursor &c, const Word &kindWord, tc::Filter &f,
                          std::optional<uint32_t> fhandle,
                          const std::optional<Word> &handleWord) {
  if (c.done()) {
    if (fhandle)
      failAt(*handleWord, "a filter handle needs u32 options");
    return; // creates the filter (and its root table) only
  }
  U32Opts o;
  o.k.pos = kindWord.pos;
  o.actions = [this](Cursor &cur, tc::Knode &k) { actions(cur, k); };
  while (!c.done()) {
    const Word &w = c.take();
    const U32Option *opt = nullptr;
    for (const U32Option &u : kU32Options)
      if (u.abbrev ? matches(w.text, u.name) : w.text == u.name) {
        opt = &u;
        break;
      }
    if (!opt)
      failAt(w, "What is \"" + w.text + "\"? (not a u32 option)");
    opt->parse(c, w, o);
  }
  if (o.terminal)
    o.k.flags |= tc::SelTerminal;
  if (o.divisor)
    return addHashTable(o, f, fhandle, handleWord);

  tc::HashTable &ht = knodeTable(o, f, kindWord);
  if (!o.selOk)
    failAt(kindWord, "Selector not specified: a u32 filter needs a `match` "
                     "(`match u32 0 0` matches every packet)");
  checkLink(o, f);
  tc::Knode &k = o.k;
  k.handle = knodeHandle(o, ht, fhandle, handleWord, kindWord);
  k.keys = std::move(o.sel.keys);
  if (k.hmask)
    k.fshift = static_cast<uint8_t>(__builtin_ctz(k.hmask));
  checkKeyOffsets(k, f, kindWord);
  std::string text;
  for (const Word &w : c.w)
    text += (text.empty() ? "" : " ") + w.text;
  k.text = text;
  std::vector<tc::Knode> &bucket = ht.buckets[bucketOf(o.htid)];
  uint32_t handle = k.handle;
  auto pos =
      std::find_if(bucket.begin(), bucket.end(), [&](const tc::Knode &n) {
        return nodeOf(handle) < nodeOf(n.handle);
      });
  bucket.insert(pos, std::move(k));
}

/// u32_change() with TCA_U32_DIVISOR: a new hash table, nothing else.
void TcBuilder::Impl::addHashTable(const U32Opts &o, const tc::Filter &f,
                                   std::optional<uint32_t> fhandle,
                                   const std::optional<Word> &handleWord) {
  if (o.selOk || o.k.link || !o.k.actions.empty() || o.k.classid)
    failAt(*o.divisorWord,
           "divisor makes a hash table; give its matches and actions "
           "in other filters (ht HANDLE:)");
  uint32_t h = fhandle.value_or(0);
  if (h & 0xFFFFF)
    failAt(*handleWord,
           "Divisor can only be used on a hash table (handle HTID:)");
  if (!h)
    h = newHtid();
  else if (prog.tables.count(h))
    failAt(*handleWord,
           "hash table " + tc::formatHandle(h) + " exists already");
  tc::HashTable t;
  t.htid = h;
  t.divisor = *o.divisor;
  t.pref = f.pref;
  t.pos = o.divisorWord->pos;
  prog.tables[h] = t;
}

/// The table the knode goes into (`ht', `sample', or the filter's root);
/// sets o.htid to its table and bucket.
tc::HashTable &TcBuilder::Impl::knodeTable(U32Opts &o, const tc::Filter &f,
                                           const Word &kindWord) {
  tc::HashTable *ht = nullptr;
  if (o.htWord || o.sampleOk) {
    const Word &where = o.htWord ? *o.htWord : *o.sampleWord;
    if (htidOf(o.htid) == 0xFFF00000u) {
      ht = &prog.tables[f.rootHtid];
      o.htid = f.rootHtid | (o.htid & 0xFF000);
    } else {
      auto it = prog.tables.find(htidOf(o.htid));
      if (it == prog.tables.end())
        failAt(where, "Specified hash table not found (" +
                          tc::formatHandle(htidOf(o.htid)) + ")");
      ht = &it->second;
      if (ht->pref != f.pref)
        failAt(where, "hash table " + tc::formatHandle(ht->htid) +
                          " belongs to pref " + std::to_string(ht->pref));
    }
  } else {
    ht = &prog.tables[f.rootHtid];
    o.htid = f.rootHtid;
  }
  if (bucketOf(o.htid) > ht->divisor - 1)
    failAt(o.htWord ? *o.htWord : (o.sampleWord ? *o.sampleWord : kindWord),
           "Specified hash table buckets exceed configured value (bucket " +
               std::to_string(bucketOf(o.htid)) + ", divisor " +
               std::to_string(ht->divisor) + ")");
  return *ht;
}

/// `link HTID:`: an existing, non-root table of the same filter.
void TcBuilder::Impl::checkLink(const U32Opts &o, const tc::Filter &f) const {
  if (!o.k.link)
    return;
  auto it = prog.tables.find(*o.k.link);
  if (it == prog.tables.end())
    failAt(*o.linkWord, "Link hash table not found");
  if (it->second.root)
    failAt(*o.linkWord, "Not linking to root node");
  if (it->second.pref != f.pref)
    failAt(*o.linkWord, "hash table " + tc::formatHandle(*o.k.link) +
                            " belongs to pref " +
                            std::to_string(it->second.pref));
}

ir::tc::Program TcBuilder::finish(const ir::SourcePos &where) {
  tc::Program &p = impl_->prog;
  if (p.filters.empty())
    throw Diagnostic(where, "no tc filter given");
  // A link cycle would make the kernel give up ("dead loop") at depth 8;
  // rule2xdp refuses it.
  std::map<uint32_t, int> state;
  std::function<void(uint32_t)> visit = [&](uint32_t h) {
    state[h] = 1;
    for (const auto &[b, nodes] : p.tables[h].buckets)
      for (const tc::Knode &k : nodes)
        if (k.link) {
          if (state[*k.link] == 1)
            throw Diagnostic(k.pos,
                             "link " + tc::formatHandle(*k.link) +
                                 " makes a loop of hash tables (the kernel "
                                 "stops such a walk as a dead loop)");
          if (state[*k.link] == 0)
            visit(*k.link);
        }
    state[h] = 2;
  };
  for (const tc::Filter &f : p.filters)
    visit(f.rootHtid);
  p.finalize();
  return p;
}

void parseTcBatch(const std::string &name, const std::string &text,
                  SourceManager &sm, TcBuilder &builder) {
  sm.addFile(name, text);
  std::vector<std::string> lines;
  {
    std::string cur;
    for (char ch : text) {
      if (ch == '\n') {
        lines.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty())
      lines.push_back(cur);
  }
  for (size_t i = 0; i < lines.size(); ++i) {
    // getcmdline(): `#` to the end of the line is a comment; a trailing
    // backslash joins the next line (positions stay on each line).
    std::vector<Word> words;
    ir::SourcePos end;
    size_t first = i;
    for (;;) {
      std::string line = lines[i];
      size_t hash = line.find('#');
      if (hash != std::string::npos)
        line.resize(hash);
      bool cont = false;
      size_t last = line.find_last_not_of(" \t\r");
      if (last != std::string::npos && line[last] == '\\') {
        cont = true;
        line.resize(last);
      }
      ir::SourcePos pos{name, static_cast<unsigned>(i + 1), 1, -1};
      for (Word &w : splitTcLine(line, pos))
        words.push_back(std::move(w));
      end = {name, static_cast<unsigned>(i + 1),
             static_cast<unsigned>(line.find_last_not_of(" \t\r") ==
                                           std::string::npos
                                       ? 1
                                       : line.find_last_not_of(" \t\r") + 2),
             -1};
      if (!cont || i + 1 >= lines.size())
        break;
      ++i;
    }
    (void)first;
    if (!words.empty())
      builder.command(words, end);
  }
}

} // namespace r2x::frontend
