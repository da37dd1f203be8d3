//===- test/runtime/local_table_tests.cpp - r2x_local's entries -----------===//
//
/// \file
/// runtime::localTableEntries(), the loader's copy of the kernel's local
/// routing table for `-m addrtype`, against a straight-line model of what
/// inet_dev_addr_type() answers for one address: the most specific route
/// that holds it (the local table's before main's at one prefix when the
/// two are merged; the local table alone when they are not), an error
/// route answering UNICAST, a route that may be skipped (dead or link-down
/// nexthop) letting the next one answer too. The copy must give an address
/// the one answer that holds in every case, and contract::LocalUnknown
/// exactly where they differ. The hand cases are the ones measured against
/// this machine's kernel with iptables counters (docs/handover.md, "-m
/// addrtype"). Needs no root: no kernel is involved.
//===----------------------------------------------------------------------===//
#include "runtime/LocalTable.h"
#include "runtime/contract/Object.h"

#include <linux/rtnetlink.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <vector>

using r2x::runtime::Ipv4Route;
using r2x::runtime::LocalEntry;
using r2x::runtime::localTableEntries;

namespace {

constexpr uint32_t Unknown = r2x::contract::LocalUnknown;
int failures = 0, checks = 0;

void check(bool ok, const std::string &what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

uint32_t maskOf(unsigned len) { return len ? ~0u << (32 - len) : 0u; }

uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

std::string text(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

/// The program's lookup in r2x_local: the most specific entry, or UNICAST.
uint32_t lookup(const std::vector<LocalEntry> &entries, uint32_t addr) {
  int best = -1;
  uint32_t type = RTN_UNICAST;
  for (const LocalEntry &e : entries)
    if ((addr & maskOf(e.len)) == e.dst && int(e.len) > best) {
      best = e.len;
      type = e.type;
    }
  return type;
}

uint32_t answerOf(uint8_t type) {
  switch (type) {
  case RTN_BLACKHOLE:
  case RTN_UNREACHABLE:
  case RTN_PROHIBIT:
  case RTN_THROW:
    return RTN_UNICAST;
  default:
    return type;
  }
}
bool isError(uint8_t type) { return answerOf(type) != type; }

/// Every answer the kernel may give `addr` with the tables merged or not.
std::set<uint32_t> model(const std::vector<Ipv4Route> &routes, uint32_t addr,
                         bool merged) {
  // The routes that hold addr, most specific first; at one length the
  // local table's first (merged) and, within a table, any order.
  std::vector<const Ipv4Route *> hold;
  for (const Ipv4Route &r : routes)
    if (r.tos == 0 && (addr & maskOf(r.len)) == r.dst &&
        (r.table == RT_TABLE_LOCAL || (merged && r.table == RT_TABLE_MAIN)))
      hold.push_back(&r);
  std::stable_sort(hold.begin(), hold.end(), [](auto *a, auto *b) {
    return a->len != b->len ? a->len > b->len : a->table > b->table;
  });
  std::set<uint32_t> out;
  for (size_t i = 0; i < hold.size();) {
    size_t j = i;
    bool allSkip = true;
    while (j < hold.size() && hold[j]->len == hold[i]->len &&
           hold[j]->table == hold[i]->table) {
      out.insert(answerOf(hold[j]->type));
      allSkip = allSkip && hold[j]->maySkip && !isError(hold[j]->type);
      ++j;
    }
    if (!allSkip)
      return out;
    i = j;
  }
  out.insert(RTN_UNICAST); // nothing (more) matched
  return out;
}

uint32_t expected(const std::vector<Ipv4Route> &routes, uint32_t addr) {
  std::set<uint32_t> all = model(routes, addr, true);
  std::set<uint32_t> apart = model(routes, addr, false);
  all.insert(apart.begin(), apart.end());
  return all.size() == 1 ? *all.begin() : Unknown;
}

Ipv4Route route(uint32_t table, uint8_t type, uint32_t dst, uint8_t len,
                bool maySkip = false) {
  Ipv4Route r;
  r.table = table;
  r.type = type;
  r.dst = dst & maskOf(len);
  r.len = len;
  r.maySkip = maySkip;
  return r;
}

void expect(const std::vector<Ipv4Route> &routes, uint32_t addr, uint32_t want,
            const std::string &what) {
  uint32_t got = lookup(localTableEntries(routes), addr);
  check(got == want, what + ": " + text(addr) + " gives " +
                         std::to_string(got) + ", want " +
                         std::to_string(want));
}

/// A namespace with 10.9.0.2/24 on its veth and lo up, as the kernel fills
/// the tables, plus what the measurement added to main.
void handCases() {
  std::vector<Ipv4Route> ns = {
      route(RT_TABLE_LOCAL, RTN_LOCAL, ip(10, 9, 0, 2), 32),
      route(RT_TABLE_LOCAL, RTN_BROADCAST, ip(10, 9, 0, 255), 32),
      route(RT_TABLE_LOCAL, RTN_LOCAL, ip(127, 0, 0, 0), 8),
      route(RT_TABLE_LOCAL, RTN_LOCAL, ip(127, 0, 0, 1), 32),
      route(RT_TABLE_LOCAL, RTN_BROADCAST, ip(127, 255, 255, 255), 32),
      route(RT_TABLE_MAIN, RTN_UNICAST, ip(10, 9, 0, 0), 24),
  };
  expect(ns, ip(10, 9, 0, 2), RTN_LOCAL, "own address");
  expect(ns, ip(10, 9, 0, 255), RTN_BROADCAST, "subnet broadcast");
  expect(ns, ip(10, 9, 0, 0), RTN_UNICAST, "network address (no route)");
  expect(ns, ip(10, 9, 0, 7), RTN_UNICAST, "neighbour");
  expect(ns, ip(127, 0, 0, 5), RTN_LOCAL, "loopback network");
  expect(ns, ip(8, 8, 8, 8), RTN_UNICAST, "elsewhere");
  // 127.0.0.1 repeats 127/8's answer, and main's unicast /24 UNICAST's.
  check(localTableEntries(ns).size() == 4, "the fewest entries");

  // Main's own routes of the same prefix as local's: local's answer in
  // both cases (measured: LOCAL, BROADCAST).
  auto shadow = ns;
  shadow.push_back(route(RT_TABLE_MAIN, RTN_UNICAST, ip(10, 9, 0, 2), 32));
  shadow.push_back(route(RT_TABLE_MAIN, RTN_BLACKHOLE, ip(10, 9, 0, 255), 32));
  expect(shadow, ip(10, 9, 0, 2), RTN_LOCAL, "main /32 under local /32");
  expect(shadow, ip(10, 9, 0, 255), RTN_BROADCAST,
         "main blackhole under local broadcast");

  // Typed routes in main answer only while the tables are merged
  // (measured: LOCAL/BROADCAST/MULTICAST/ANYCAST merged, UNICAST apart).
  for (uint8_t t : {RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST, RTN_ANYCAST}) {
    auto typed = ns;
    typed.push_back(route(RT_TABLE_MAIN, t, ip(10, 50, 0, 0), 16));
    expect(typed, ip(10, 50, 1, 1), Unknown,
           "main type " + std::to_string(t) + " route");
    expect(typed, ip(10, 51, 1, 1), RTN_UNICAST, "beside it");
  }
  // A main route more specific than local's hides it only when merged.
  auto hide = ns;
  hide.push_back(route(RT_TABLE_MAIN, RTN_UNICAST, ip(127, 1, 0, 0), 16));
  expect(hide, ip(127, 1, 2, 3), Unknown, "main /16 inside local 127/8");
  expect(hide, ip(127, 2, 2, 3), RTN_LOCAL, "beside it");
  // ... unless a local route more specific still decides.
  hide.push_back(route(RT_TABLE_LOCAL, RTN_BROADCAST, ip(127, 1, 0, 255), 32));
  expect(hide, ip(127, 1, 0, 255), RTN_BROADCAST, "local /32 inside both");
  // Other tables are never read; a TOS route never answers.
  auto other = ns;
  other.push_back(route(100, RTN_LOCAL, ip(10, 70, 0, 0), 16));
  Ipv4Route tos = route(RT_TABLE_LOCAL, RTN_LOCAL, ip(10, 71, 0, 0), 16);
  tos.tos = 0x10;
  other.push_back(tos);
  expect(other, ip(10, 70, 0, 1), RTN_UNICAST, "table 100");
  expect(other, ip(10, 71, 0, 1), RTN_UNICAST, "TOS route");
  // A local address whose nexthop is link-down may be skipped.
  auto down = ns;
  down.push_back(route(RT_TABLE_LOCAL, RTN_LOCAL, ip(10, 8, 0, 1), 32, true));
  expect(down, ip(10, 8, 0, 1), Unknown, "link-down local address");
}

/// Random tables in 10.0.0.0/16: every answer the copy gives is the
/// model's, and it is LocalUnknown only where the model's answers differ.
void randomCases() {
  std::mt19937 rng(20261206);
  const uint8_t types[] = {RTN_UNICAST,     RTN_LOCAL,   RTN_BROADCAST,
                           RTN_MULTICAST,   RTN_ANYCAST, RTN_BLACKHOLE,
                           RTN_UNREACHABLE, RTN_THROW};
  const uint32_t tables[] = {RT_TABLE_LOCAL, RT_TABLE_LOCAL, RT_TABLE_MAIN,
                             RT_TABLE_MAIN, 100};
  int mismatches = 0;
  for (int set = 0; set < 400; ++set) {
    std::vector<Ipv4Route> routes;
    int n = 1 + int(rng() % 24);
    for (int i = 0; i < n; ++i) {
      uint8_t len = uint8_t(14 + rng() % 19);
      Ipv4Route r =
          route(tables[rng() % 5], types[rng() % 8],
                ip(10, 0, 0, 0) | (rng() & 0x3ffff), len, rng() % 5 == 0);
      if (rng() % 20 == 0)
        r.tos = 0x10;
      routes.push_back(r);
    }
    std::vector<LocalEntry> entries = localTableEntries(routes);
    std::vector<uint32_t> probes;
    for (const Ipv4Route &r : routes)
      for (uint32_t a : {r.dst, r.dst + 1, r.dst | ~maskOf(r.len),
                         (r.dst | ~maskOf(r.len)) + 1, r.dst - 1})
        probes.push_back(a);
    for (int i = 0; i < 200; ++i)
      probes.push_back(ip(10, 0, 0, 0) | (rng() & 0x3ffff));
    for (uint32_t a : probes) {
      uint32_t want = expected(routes, a), got = lookup(entries, a);
      if (got != want && ++mismatches <= 5)
        check(false, "random set " + std::to_string(set) + ": " + text(a) +
                         " gives " + std::to_string(got) + ", want " +
                         std::to_string(want));
      ++checks;
    }
  }
  check(mismatches == 0,
        std::to_string(mismatches) + " random addresses mismatched");
}

} // namespace

int main() {
  handCases();
  randomCases();
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
