//===- runtime/LocalTable.cpp - the kernel's address types, for XDP -------===//
//
/// \file
/// See LocalTable.h. localTableEntries() is pure (unit-tested in
/// test/runtime/local_table_tests.cpp); the rest reads the kernel and
/// writes the maps of the programs found on the interfaces.
//===----------------------------------------------------------------------===//
#include "runtime/LocalTable.h"

#include "runtime/Discover.h"
#include "runtime/Support.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

namespace r2x::runtime {

using namespace detail;

namespace {

constexpr uint32_t Unknown = contract::LocalUnknown;

/// What fib_table_lookup() answers inet_dev_addr_type() when it stops at a
/// route of `type` (fib_props[]): the type itself for the routes that
/// carry an address type, UNICAST for the error routes (the lookup fails,
/// and the address is UNICAST), anything else is not known here.
uint32_t answer(uint8_t type) {
  switch (type) {
  case RTN_UNICAST:
  case RTN_LOCAL:
  case RTN_BROADCAST:
  case RTN_ANYCAST:
  case RTN_MULTICAST:
    return type;
  case RTN_BLACKHOLE:
  case RTN_UNREACHABLE:
  case RTN_PROHIBIT:
  case RTN_THROW:
  case RTN_NAT:
  case RTN_XRESOLVE:
    return RTN_UNICAST;
  default:
    return Unknown;
  }
}

bool isError(uint8_t type) {
  return answer(type) == RTN_UNICAST && type != RTN_UNICAST;
}

uint32_t join(uint32_t a, uint32_t b) { return a == b ? a : Unknown; }

uint32_t maskOf(unsigned len) { return len ? ~0u << (32 - len) : 0u; }

/// A network as one number: the prefix length above the address.
using Net = uint64_t;
Net net(uint32_t dst, unsigned len) {
  return (uint64_t(len) << 32) | (dst & maskOf(len));
}

/// The routes of one table at one network: what a lookup that stops there
/// answers (their answers joined: their order is the kernel's, by
/// priority, which this does not model), and whether it may go on to the
/// next less specific route (every one of them may be skipped; an error
/// route is never skipped: the lookup fails at it before it reads the
/// nexthops).
struct Stop {
  uint32_t answer = 0;
  bool first = true;
  bool fallThrough = true;
  void add(const Ipv4Route &r) {
    answer = first ? ::r2x::runtime::answer(r.type)
                   : join(answer, ::r2x::runtime::answer(r.type));
    first = false;
    fallThrough = fallThrough && r.maySkip && !isError(r.type);
  }
  /// The answer at this network, given the answer of the less specific
  /// route a skip would reach.
  uint32_t then(uint32_t next) const {
    return fallThrough ? join(answer, next) : answer;
  }
};

/// The longest network in `nets` strictly shorter than `len` that holds
/// dst, as its value; `none` if there is none.
template <class V>
V covering(const std::unordered_map<Net, V> &nets, uint32_t dst, unsigned len,
           V none) {
  for (unsigned l = len; l-- > 0;)
    if (auto it = nets.find(net(dst, l)); it != nets.end())
      return it->second;
  return none;
}

} // namespace

std::vector<LocalEntry>
localTableEntries(const std::vector<Ipv4Route> &routes) {
  std::unordered_map<Net, Stop> local, main;
  std::set<std::pair<unsigned, uint32_t>> order; // by length, then address
  for (const Ipv4Route &r : routes) {
    if (r.tos != 0 || r.len > 32 ||
        (r.table != RT_TABLE_LOCAL && r.table != RT_TABLE_MAIN))
      continue; // a TOS route never matches a lookup without a TOS
    Net n = net(r.dst, r.len);
    (r.table == RT_TABLE_LOCAL ? local : main)[n].add(r);
    order.insert({r.len, r.dst & maskOf(r.len)});
  }
  // The answer for an address whose most specific route is the network,
  // with the tables merged (local's routes before main's at one network)
  // and apart (local's alone); shorter networks first, so a network's
  // less specific neighbour is done before it.
  std::unordered_map<Net, uint32_t> merged, apart, value;
  for (auto [len, dst] : order) {
    Net n = net(dst, len);
    auto l = local.find(n);
    auto m = main.find(n);
    uint32_t mergedNext = covering(merged, dst, len, uint32_t(RTN_UNICAST));
    uint32_t apartNext = covering(apart, dst, len, uint32_t(RTN_UNICAST));
    uint32_t mainPart =
        m != main.end() ? m->second.then(mergedNext) : mergedNext;
    merged[n] = l != local.end() ? l->second.then(mainPart) : mainPart;
    if (l != local.end())
      apart[n] = l->second.then(apartNext);
    value[n] = join(merged[n], l != local.end() ? apart[n] : apartNext);
  }
  // The fewest entries: one whose answer the nearest kept entry above it
  // already gives is left out.
  std::unordered_map<Net, uint32_t> kept;
  std::vector<LocalEntry> out;
  for (auto [len, dst] : order) {
    uint32_t v = value[net(dst, len)];
    if (v == covering(kept, dst, len, uint32_t(RTN_UNICAST)))
      continue;
    kept[net(dst, len)] = v;
    out.push_back({dst, uint8_t(len), v});
  }
  return out;
}

namespace {

uint64_t monotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

void setLease(int okFd, uint64_t until) {
  uint32_t slot = 0;
  contract::LocalLease lease{until};
  if (bpf_map_update_elem(okFd, &slot, &lease, BPF_ANY) != 0)
    throw sysError(std::string("cannot write ") + contract::LocalOkMap.name,
                   errno);
}

/// The r2x_local / r2x_local_ok pairs of rule2xdp's programs on `ifaces`,
/// each once (one load's interfaces share them).
std::set<std::pair<uint32_t, uint32_t>>
localMaps(const std::vector<std::string> &ifaces) {
  std::set<std::pair<uint32_t, uint32_t>> maps;
  for (const std::string &iface : ifaces) {
    InterfaceXdp x = inspect(iface);
    if (x.own && x.own->localId && x.own->localOkId)
      maps.insert({x.own->localId, x.own->localOkId});
  }
  return maps;
}

Fd openMap(uint32_t id) {
  Fd fd(bpf_map_get_fd_by_id(id));
  if (!fd.valid())
    throw sysError("cannot open map " + std::to_string(id), errno);
  return fd;
}

/// Makes the trie hold exactly `entries`.
void writeTable(int fd, const std::vector<LocalEntry> &entries) {
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> want; // (len, addr) -> type
  for (const LocalEntry &e : entries)
    want[{e.len, htonl(e.dst)}] = e.type;
  std::vector<contract::SetKey4> stale;
  contract::SetKey4 key{}, next{};
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
    first = false;
    if (!want.count({next.prefixlen, next.addr}))
      stale.push_back(next);
    key = next;
  }
  for (const contract::SetKey4 &k : stale)
    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
      throw sysError(std::string("cannot update ") + contract::LocalMap.name,
                     errno);
  for (const auto &[k, type] : want) {
    contract::SetKey4 key4{k.first, k.second};
    if (bpf_map_update_elem(fd, &key4, &type, BPF_ANY) != 0)
      throw sysError(std::string("cannot update ") + contract::LocalMap.name,
                     errno);
  }
}

} // namespace

unsigned fillLocalTable(int localFd, int okFd, unsigned leaseMs) {
  setLease(okFd, 0); // no packet trusts a table half written
  std::vector<LocalEntry> entries = localTableEntries(ipv4Routes());
  if (entries.size() > contract::LocalMap.maxEntries)
    throw LoadError("the local routing table needs " +
                    std::to_string(entries.size()) + " entries, " +
                    contract::LocalMap.name + " holds " +
                    std::to_string(contract::LocalMap.maxEntries));
  writeTable(localFd, entries);
  setLease(okFd, monotonicNs() + uint64_t(leaseMs) * 1000000u);
  return unsigned(entries.size());
}

LocalRefresh refreshLocalTable(const std::vector<std::string> &ifaces,
                               unsigned leaseMs) {
  LocalRefresh result;
  for (auto [localId, okId] : localMaps(ifaces)) {
    Fd local = openMap(localId), ok = openMap(okId);
    try {
      result.entries = fillLocalTable(local.get(), ok.get(), leaseMs);
    } catch (const LoadError &e) {
      result.refused = e.what();
      continue;
    }
    ++result.programs;
    result.leases.push_back(okId);
  }
  return result;
}

void renewLocalLease(const std::vector<uint32_t> &leases, unsigned leaseMs) {
  for (uint32_t id : leases) {
    Fd ok(bpf_map_get_fd_by_id(id));
    if (ok.valid())
      setLease(ok.get(), monotonicNs() + uint64_t(leaseMs) * 1000000u);
  }
}

void revokeLocalLease(const std::vector<std::string> &ifaces) {
  try {
    for (auto [localId, okId] : localMaps(ifaces)) {
      (void)localId;
      Fd ok = openMap(okId);
      setLease(ok.get(), 0);
    }
  } catch (const LoadError &) {
  }
}

int openLocalTableEvents() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  NETLINK_ROUTE);
  if (fd < 0)
    return -1;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups =
      RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV4_RULE;
  if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

} // namespace r2x::runtime
