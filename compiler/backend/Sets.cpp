//===- compiler/backend/Sets.cpp - ipset sets as BPF maps -----------------===//
#include "compiler/backend/Sets.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cstring>
#include <set>
#include <tuple>

namespace r2x::backend {
namespace {

void shape(const ir::IpSet &s, SetLayout &l) {
  using T = ir::IpSet::Type;
  bool v6 = s.family == ir::Family::V6;
  switch (s.type) {
  case T::HashIp:
  case T::HashNet:
    l.spec = v6 ? &contract::Set6Map : &contract::Set4Map;
    l.key = v6 ? &contract::SetKey6Layout : &contract::SetKey4Layout;
    return;
  case T::HashIpPort:
  case T::HashNetPort:
    l.spec = v6 ? &contract::SetPort6Map : &contract::SetPort4Map;
    l.key = v6 ? &contract::SetPortKey6Layout : &contract::SetPortKey4Layout;
    return;
  case T::BitmapPort:
    l.spec = &contract::SetBitmapPortMap;
    l.key = nullptr;
    return;
  case T::ListSet:
    break;
  }
}

/// One entry's key in the layout of `l`.
void putKey(std::string &out, const ir::IpSet &s, const ir::IpSet::Entry &e,
            const SetLayout &l) {
  auto put = [&out](const void *v, size_t n) {
    out.append(static_cast<const char *>(v), n);
  };
  bool v6 = s.family == ir::Family::V6;
  if (l.spec == &contract::SetBitmapPortMap) {
    uint32_t port = e.port;
    put(&port, sizeof port);
  } else if (l.spec == &contract::SetPort4Map ||
             l.spec == &contract::SetPort6Map) {
    contract::SetPortKey6 k{}; // SetPortKey4 is its first 12 bytes
    static_assert(offsetof(contract::SetPortKey4, addr) ==
                  offsetof(contract::SetPortKey6, addr));
    k.prefixlen = contract::SetPortKeyBits + e.prefix;
    k.port = htons(e.port);
    k.proto = e.proto;
    std::memcpy(&k.addr, e.addr.data(), v6 ? 16 : 4);
    put(&k, l.spec->keySize);
  } else {
    contract::SetKey6 k{};
    static_assert(offsetof(contract::SetKey4, addr) ==
                  offsetof(contract::SetKey6, addr));
    k.prefixlen = e.prefix;
    std::memcpy(&k.addr, e.addr.data(), v6 ? 16 : 4);
    put(&k, l.spec->keySize);
  }
}

} // namespace

std::string createOptions(const ir::IpSet &s) {
  std::string out = ir::setTypeName(s.type);
  if (s.type == ir::IpSet::Type::BitmapPort)
    return out + " range " + std::to_string(s.rangeLo) + "-" +
           std::to_string(s.rangeHi);
  out += s.family == ir::Family::V6 ? " family inet6" : " family inet";
  if (s.type == ir::IpSet::Type::HashIp)
    out += " netmask " + std::to_string(s.netmask);
  return out;
}

std::string setKey(const ir::IpSet &s, const ir::IpSet::Entry &e) {
  SetLayout l;
  shape(s, l);
  std::string out;
  putKey(out, s, e, l);
  return out;
}

std::vector<SetLayout> setLayouts(const ir::Program &p) {
  std::set<unsigned> used;
  for (const ir::Chain &c : p.chains)
    for (const ir::Rule &r : c.rules)
      for (const ir::Match &m : r.matches)
        if (const auto *s = m.as<ir::Match::Set>()) {
          // list:set has no map of its own: its members do.
          if (p.sets.at(s->set).type == ir::IpSet::Type::ListSet)
            used.insert(p.sets[s->set].members.begin(),
                        p.sets[s->set].members.end());
          else
            used.insert(s->set);
        }
  std::vector<SetLayout> out;
  uint64_t offset = 0;
  for (unsigned i : used) {
    const ir::IpSet &s = p.sets.at(i);
    SetLayout l;
    l.set = i;
    l.map = contract::SetMapPrefix + std::to_string(i);
    l.offset = offset;
    l.entries = s.entries.size();
    shape(s, l);
    uint64_t room = s.type == ir::IpSet::Type::BitmapPort
                        ? uint64_t(s.rangeHi) - s.rangeLo + 1
                        : s.maxelem;
    l.maxEntries = uint32_t(std::max<uint64_t>({room, l.entries, 1}));
    offset += l.entries * (l.spec->keySize + l.spec->valueSize);
    out.push_back(l);
  }
  return out;
}

std::string setsSection(const ir::Program &p,
                        const std::vector<SetLayout> &layouts) {
  std::string out;
  size_t bytes = 0;
  for (const SetLayout &l : layouts)
    bytes += l.entries * (l.spec->keySize + l.spec->valueSize);
  out.reserve(bytes);
  for (const SetLayout &l : layouts) {
    const ir::IpSet &s = p.sets[l.set];
    // In key order: the kernel inserts into its trie faster when
    // consecutive keys share their path (1,000,000 random hash:net entries
    // filled in 1.0 s instead of 1.8 s, kernel 6.18). Stable, so a repeated
    // entry's last form still wins.
    // (port, proto, address, prefix) as integers, the entry's index last
    // (stable); comparing the fields took a sixth of a 1,000,000-entry
    // compile in memcmp().
    struct Order {
      uint64_t portProto, hi, lo, prefixIndex;
      auto tie() const { return std::tie(portProto, hi, lo, prefixIndex); }
    };
    std::vector<Order> order(s.entries.size());
    for (size_t i = 0; i < order.size(); ++i) {
      const ir::IpSet::Entry &e = s.entries[i];
      Order &o = order[i];
      o.portProto = uint64_t(e.port) << 8 | e.proto;
      for (size_t b = 0; b < 8; ++b) {
        o.hi = o.hi << 8 | e.addr[b];
        o.lo = o.lo << 8 | e.addr[8 + b];
      }
      o.prefixIndex = uint64_t(e.prefix) << 32 | i;
    }
    std::sort(order.begin(), order.end(),
              [](const Order &a, const Order &b) { return a.tie() < b.tie(); });
    auto entry = [&](const Order &o) -> const ir::IpSet::Entry & {
      return s.entries[o.prefixIndex & 0xffffffffu];
    };
    for (const Order &o : order)
      putKey(out, s, entry(o), l);
    for (const Order &o : order) {
      const ir::IpSet::Entry &e = entry(o);
      uint32_t value = e.nomatch ? contract::SetNomatch : contract::SetMatch;
      out.append(reinterpret_cast<const char *>(&value), sizeof value);
    }
  }
  return out;
}

} // namespace r2x::backend
