//===- compiler/frontend/SetsFile.cpp - `ipset save` text -> ir::IpSet ----===//
//
/// \file
/// See SetsFile.h. The limits and refusals are those of ipset 7 and the
/// kernel's ip_set_hash_ip.c / ip_set_hash_net.c `uadt` functions.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/SetsFile.h"

#include "compiler/frontend/Lex.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

namespace r2x::frontend {
namespace {

/// IPSET_MAXNAMELEN - 1.
constexpr size_t kMaxSetName = 31;

/// The words of one line, `"..."` (a comment's text) kept as one.
std::vector<Word> lineWords(const std::string &name, const std::string &line,
                            unsigned lineNo) {
  std::vector<Word> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
      ++i;
      continue;
    }
    size_t start = i;
    if (line[i] == '"') {
      size_t close = line.find('"', i + 1);
      i = close == std::string::npos ? line.size() : close + 1;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t' &&
             line[i] != '\r')
        ++i;
    }
    out.push_back(Word{line.substr(start, i - start),
                       ir::SourcePos{name, lineNo, unsigned(start) + 1, -1}});
  }
  return out;
}

std::optional<unsigned> decimal(const std::string &s) {
  if (s.empty() || s.size() > 9)
    return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    v = v * 10 + unsigned(c - '0');
  }
  return v;
}

/// `addr` keeps its first `prefix` bits (ip_set_hostmask()).
void maskTo(std::array<uint8_t, 16> &addr, unsigned prefix) {
  for (unsigned i = 0; i < 16; ++i) {
    unsigned keep = prefix >= 8 * (i + 1) ? 8
                    : prefix > 8 * i      ? prefix - 8 * i
                                          : 0;
    addr[i] &= uint8_t(0xff00u >> keep);
  }
}

class Reader {
public:
  Reader(const std::string &name, ir::Program &prog) : name_(name), p_(prog) {}
  void line(const std::vector<Word> &w);
  /// An entry added twice (after masking) is ipset's IPSET_ERR_EXIST:
  /// `ipset restore` stops there. Throws Diagnostic at the second.
  void checkRepeats() const;

private:
  void create(const std::vector<Word> &w);
  void add(const std::vector<Word> &w);
  std::array<uint8_t, 16> address(const ir::IpSet &s, const Word &w,
                                  const std::string &text, size_t offset);
  uint16_t port(const ir::IpSet &s, const Word &w, const std::string &text,
                size_t offset, uint8_t &proto);
  void options(const ir::IpSet &s, const std::vector<Word> &w,
               ir::IpSet::Entry &entry);
  std::string name_;
  ir::Program &p_;
  std::map<std::string, size_t> byName_; ///< sets of this file
  /// Where each entry of a set of this file was written, in entry order.
  std::map<size_t, std::vector<std::pair<unsigned, unsigned>>> where_;
};

void Reader::checkRepeats() const {
  // An entry's identity (address, prefix, port, protocol) packed into
  // three words; `nomatch` is not part of it (ipset refuses the second
  // either way). Sorted as integers with the entry's index: 1,000,000
  // entries took 0.4 s of memcmp() sorting the fields, 0.2 s in a hash set.
  // The error names the first repeat in file order, the line where
  // `ipset restore` stops.
  struct Key {
    uint64_t hi, lo, rest;
    size_t index;
    auto tie() const { return std::tie(hi, lo, rest); }
  };
  for (const auto &[set, where] : where_) {
    const std::vector<ir::IpSet::Entry> &entries = p_.sets[set].entries;
    std::vector<Key> keys(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const ir::IpSet::Entry &e = entries[i];
      Key &k = keys[i];
      for (size_t b = 0; b < 8; ++b) {
        k.hi = k.hi << 8 | e.addr[b];
        k.lo = k.lo << 8 | e.addr[8 + b];
      }
      k.rest =
          uint64_t(e.prefix) | uint64_t(e.port) << 8 | uint64_t(e.proto) << 24;
      k.index = i;
    }
    std::sort(keys.begin(), keys.end(), [](const Key &a, const Key &b) {
      return a.tie() != b.tie() ? a.tie() < b.tie() : a.index < b.index;
    });
    size_t first = entries.size();
    for (size_t k = 1; k < keys.size(); ++k)
      if (keys[k - 1].tie() == keys[k].tie())
        first = std::min(first, keys[k].index);
    if (first < entries.size())
      failAt(Word{"", ir::SourcePos{name_, where[first].first,
                                    where[first].second, -1}},
             "Element cannot be added to the set: it's already added (set " +
                 p_.sets[set].name + ")");
  }
}

void Reader::line(const std::vector<Word> &w) {
  if (w.empty() || w[0].text[0] == '#')
    return;
  if (w[0].text == "create" || w[0].text == "-N")
    return create(w);
  if (w[0].text == "add" || w[0].text == "-A")
    return add(w);
  if (w[0].text == "COMMIT" && w.size() == 1)
    return;
  failAt(w[0], "expected `create' or `add' (the lines `ipset save' writes)");
}

void Reader::create(const std::vector<Word> &w) {
  if (w.size() < 3)
    failAt(w[0], "`create' needs a set name and a type");
  const Word &nameWord = w[1];
  if (nameWord.text.size() > kMaxSetName)
    failAt(nameWord, "set name longer than " + std::to_string(kMaxSetName) +
                         " characters");
  if (byName_.count(nameWord.text) || p_.findSet(nameWord.text))
    failAt(nameWord, "set `" + nameWord.text + "' already exists");
  ir::IpSet s;
  s.name = nameWord.text;
  s.pos = w[0].pos;
  static const std::pair<const char *, ir::IpSet::Type> kTypes[] = {
      {"hash:ip", ir::IpSet::Type::HashIp},
      {"hash:net", ir::IpSet::Type::HashNet},
      {"hash:ip,port", ir::IpSet::Type::HashIpPort},
      {"hash:net,port", ir::IpSet::Type::HashNetPort},
      {"bitmap:port", ir::IpSet::Type::BitmapPort},
      {"list:set", ir::IpSet::Type::ListSet}};
  bool known = false;
  for (const auto &[typeName, type] : kTypes)
    if (w[2].text == typeName) {
      s.type = type;
      known = true;
    }
  if (!known)
    failAt(w[2], "set type `" + w[2].text +
                     "' is not supported (hash:ip, hash:net, hash:ip,port, "
                     "hash:net,port, bitmap:port and list:set are)");
  bool bitmap = s.type == ir::IpSet::Type::BitmapPort;
  bool list = s.type == ir::IpSet::Type::ListSet;
  const Word *rangeWord = nullptr;
  std::optional<unsigned> netmask;
  const Word *netmaskWord = nullptr;
  for (size_t i = 3; i < w.size(); ++i) {
    const std::string &o = w[i].text;
    bool hasValue = i + 1 < w.size();
    if (o == "range" && hasValue && bitmap) {
      rangeWord = &w[++i];
      const std::string &r = w[i].text;
      size_t dash = r.find('-');
      std::optional<uint64_t> lo = xtablesStrtoul(r.substr(0, dash), 0, 65535);
      std::optional<uint64_t> hi =
          dash == std::string::npos
              ? lo
              : xtablesStrtoul(r.substr(dash + 1), 0, 65535);
      if (!lo || !hi)
        failAt(w[i], "`range' takes FROM-TO, two ports");
      // bitmap_port_create() swaps a reversed range.
      s.rangeLo = uint16_t(std::min(*lo, *hi));
      s.rangeHi = uint16_t(std::max(*lo, *hi));
    } else if (o == "size" && hasValue && list) {
      if (!decimal(w[++i].text))
        failAt(w[i], "`size' takes a number");
    } else if (o == "family" && hasValue && !bitmap && !list) {
      const std::string &f = w[++i].text;
      if (f == "inet" || f == "ipv4")
        s.family = ir::Family::V4;
      else if (f == "inet6" || f == "ipv6")
        s.family = ir::Family::V6;
      else
        failAt(w[i], "family must be inet or inet6");
    } else if ((o == "hashsize" || o == "maxelem" || o == "bucketsize") &&
               hasValue) {
      // Sizing only, but for maxelem: how far --set-add may grow the set.
      std::optional<unsigned> n = decimal(w[++i].text);
      if (!n)
        failAt(w[i], "`" + o + "' takes a number");
      if (o == "maxelem")
        s.maxelem = *n;
    } else if (o == "initval" && hasValue) {
      ++i; // the hash seed: no meaning for a lookup
    } else if (o == "netmask" && hasValue &&
               s.type == ir::IpSet::Type::HashIp) {
      netmaskWord = &w[++i];
      netmask = decimal(w[i].text);
      if (!netmask)
        failAt(w[i], "`netmask' takes a prefix length");
    } else if (o == "comment" || o == "forceadd") {
      // Entry comments and a full set's eviction: no meaning for a lookup
      // in a set that no one adds to.
    } else if (o == "timeout") {
      failAt(w[i], "sets with `timeout' are not supported: their entries "
                   "expire in the kernel, and XDP's copy would keep them");
    } else if (o == "counters" || o == "skbinfo") {
      failAt(w[i], "sets with `" + o +
                       "' are not supported: XDP does not keep the per-entry "
                       "data (and the matches that read it)");
    } else {
      failAt(w[i], "set option `" + o + "' is not supported for " + w[2].text);
    }
  }
  if (bitmap && !rangeWord)
    failAt(w[2], "bitmap:port needs `range FROM-TO'");
  unsigned host = s.family == ir::Family::V4 ? 32 : 128;
  s.netmask = uint8_t(host);
  if (netmask) {
    if (*netmask < 1 || *netmask > host)
      failAt(*netmaskWord, "netmask must be 1 to " + std::to_string(host));
    s.netmask = uint8_t(*netmask);
  }
  byName_[s.name] = p_.sets.size();
  p_.sets.push_back(std::move(s));
}

std::array<uint8_t, 16> Reader::address(const ir::IpSet &s, const Word &w,
                                        const std::string &text,
                                        size_t offset) {
  std::array<uint8_t, 16> a{};
  if (s.family == ir::Family::V4) {
    std::optional<uint32_t> v = inetPton4(text);
    if (!v)
      failAt(w, "`" + text + "' is not an IPv4 address", offset, text.size());
    a[0] = uint8_t(*v >> 24);
    a[1] = uint8_t(*v >> 16);
    a[2] = uint8_t(*v >> 8);
    a[3] = uint8_t(*v);
    return a;
  }
  std::optional<std::array<uint8_t, 16>> v = inetPton6(text);
  if (!v)
    failAt(w, "`" + text + "' is not an IPv6 address", offset, text.size());
  return *v;
}

void Reader::add(const std::vector<Word> &w) {
  if (w.size() < 3)
    failAt(w[0], "`add' needs a set name and an entry");
  auto it = byName_.find(w[1].text);
  if (it == byName_.end())
    failAt(w[1], "set `" + w[1].text + "' is not created before this line");
  ir::IpSet &s = p_.sets[it->second];
  unsigned host = s.family == ir::Family::V4 ? 32 : 128;
  const Word &e = w[2];
  ir::IpSet::Entry entry;
  if (s.type == ir::IpSet::Type::ListSet) {
    auto member = byName_.find(e.text);
    if (member == byName_.end())
      failAt(e, "set `" + e.text + "' is not created before this line");
    if (p_.sets[member->second].type == ir::IpSet::Type::ListSet)
      failAt(e, "list:set cannot hold a list:set (IPSET_ERR_LOOP)");
    unsigned index = unsigned(member->second);
    for (unsigned m : s.members)
      if (m == index)
        failAt(e, "set `" + e.text + "' is already in " + s.name);
    if (w.size() > 3)
      failAt(w[3], "list:set entries are read as `ipset save' writes them, "
                   "without `" +
                       w[3].text + "'");
    s.members.push_back(index);
    return;
  }
  if (!s.hasAddress()) {
    entry.port = port(s, e, e.text, 0, entry.proto);
    if (entry.port < s.rangeLo || entry.port > s.rangeHi)
      failAt(e, "port " + std::to_string(entry.port) +
                    " is outside the set's range (IPSET_ERR_BITMAP_RANGE)");
    options(s, w, entry);
    s.entries.push_back(entry);
    where_[it->second].push_back({e.pos.line, e.pos.col});
    return;
  }
  // ADDR[/CIDR] or, in the ,port types, ADDR[/CIDR],[PROTO:]PORT.
  size_t comma = s.hasPort() ? e.text.find(',') : std::string::npos;
  if (s.hasPort() && comma == std::string::npos)
    failAt(e, std::string(ir::setTypeName(s.type)) +
                  " entries are ADDRESS,[PROTO:]PORT");
  std::string head = e.text.substr(0, comma);
  if (s.hasPort())
    entry.port = port(s, e, e.text.substr(comma + 1), comma + 1, entry.proto);
  if (head.find('-') != std::string::npos && s.family == ir::Family::V4)
    failAt(e, "address ranges are not read (`ipset save' writes "
              "networks)");
  size_t slash = head.find('/');
  std::string addr = head.substr(0, slash);
  entry.addr = address(s, e, addr, 0);
  if (s.type == ir::IpSet::Type::HashIp ||
      s.type == ir::IpSet::Type::HashIpPort) {
    if (slash != std::string::npos)
      failAt(e,
             std::string(ir::setTypeName(s.type)) +
                 " entries are read one address each (as `ipset save' "
                 "writes them), not as networks",
             slash);
    entry.prefix = s.netmask;
  } else {
    entry.prefix = uint8_t(host);
    if (slash != std::string::npos) {
      std::optional<unsigned> cidr = decimal(head.substr(slash + 1));
      // ip_set_hash_net.c: `if (!e.cidr || e.cidr > HOST_MASK)`.
      if (!cidr || *cidr < 1 || *cidr > host)
        failAt(e,
               "the prefix length must be 1 to " + std::to_string(host) +
                   " (ipset refuses 0: IPSET_ERR_INVALID_CIDR)",
               slash + 1);
      entry.prefix = uint8_t(*cidr);
    }
  }
  maskTo(entry.addr, entry.prefix);
  // ip_set_hash_ip.c: an address that masks to 0 is refused
  // (IPSET_ERR_HASH_ELEM).
  if (s.type == ir::IpSet::Type::HashIp &&
      entry.addr == std::array<uint8_t, 16>{})
    failAt(e, "hash:ip cannot hold the address 0 (after the netmask)");
  options(s, w, entry);
  s.entries.push_back(entry);
  where_[it->second].push_back({e.pos.line, e.pos.col});
}

/// `[PROTO:]PORT` (tcp when no protocol), as ipset's parser reads it and the
/// kernel's uadt keeps it: a protocol without ports (ip_set_proto_with_ports)
/// keeps port 0 whatever was written.
uint16_t Reader::port(const ir::IpSet &s, const Word &w,
                      const std::string &text, size_t offset, uint8_t &proto) {
  size_t colon = text.find(':');
  std::string protoName =
      colon == std::string::npos ? std::string("tcp") : text.substr(0, colon);
  std::string portText =
      colon == std::string::npos ? text : text.substr(colon + 1);
  size_t portOffset = colon == std::string::npos ? offset : offset + colon + 1;
  size_t protoLength = colon == std::string::npos ? 1 : colon;
  std::optional<uint8_t> p = xtablesParseProtocol(protoName);
  if (!p || *p == 0)
    failAt(w, "unknown protocol `" + protoName + "'", offset, protoLength);
  if (*p == IPPROTO_ICMP || *p == IPPROTO_ICMPV6)
    failAt(w, "ICMP type/code entries are not supported", offset, protoLength);
  bool withPorts = *p == IPPROTO_TCP || *p == IPPROTO_UDP ||
                   *p == IPPROTO_SCTP || *p == IPPROTO_UDPLITE;
  if (!s.hasAddress() && *p != IPPROTO_TCP && *p != IPPROTO_UDP)
    failAt(w, "bitmap:port entries are tcp or udp ports", offset, protoLength);
  if (portText.find('-') != std::string::npos)
    failAt(w, "port ranges are not read (`ipset save' writes each port)",
           portOffset, portText.size());
  std::optional<uint64_t> n = xtablesStrtoul(portText, 0, 65535);
  if (!n)
    failAt(w, "`" + portText + "' is not a port number", portOffset,
           portText.empty() ? 1 : portText.size());
  // ipset's parser: a protocol without ports takes the pseudo port 0.
  if (!withPorts && *n != 0)
    failAt(w,
           "Protocol " + protoName +
               " can be used with pseudo port value 0 only.",
           portOffset, portText.size());
  proto = *p;
  return withPorts ? uint16_t(*n) : 0;
}

/// The options after an entry.
void Reader::options(const ir::IpSet &s, const std::vector<Word> &w,
                     ir::IpSet::Entry &entry) {
  for (size_t i = 3; i < w.size(); ++i) {
    const std::string &o = w[i].text;
    if (o == "nomatch") {
      if (!s.hasNomatch())
        failAt(w[i], std::string("`nomatch' entries exist only in types "
                                 "that have them (hash:net, hash:net,port), "
                                 "not ") +
                         ir::setTypeName(s.type));
      entry.nomatch = true;
    } else if (o == "comment" && i + 1 < w.size()) {
      ++i;
    } else if (o == "timeout") {
      failAt(w[i], "entries with `timeout' are not supported: they expire "
                   "in the kernel, and XDP's copy would keep them");
    } else {
      failAt(w[i], "entry option `" + o + "' is not supported");
    }
  }
}

} // namespace

void parseSetsFile(const std::string &name, const std::string &text,
                   SourceManager &sm, ir::Program &prog) {
  sm.addFile(name, text);
  Reader r(name, prog);
  unsigned lineNo = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    ++lineNo;
    r.line(lineWords(name, text.substr(start, end - start), lineNo));
    start = end + 1;
  }
  r.checkRepeats();
  prog.setsGiven = true;
}

} // namespace r2x::frontend
