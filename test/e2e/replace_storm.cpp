//===- test/e2e/replace_storm.cpp - many replaces, every packet decided once
//-===//
//
/// \file
/// The loading half of test/e2e/replace_storm.sh. Loads two objects in turn
/// on an interface, COUNT times, through the runtime (as `rule2xdp --load`
/// does), while the script's paced stream flows through it. Each object has
/// one rule that counts every datagram of the stream and decides it: A
/// drops, B passes. After each load it finds the new program from the
/// interface (runtime/Discover.h) and keeps its counters map open, so the
/// counts of every program that ever ran survive it. The rules' texts
/// differ, so their counter keys do: no count moves from one program to
/// the next, and each program's counter is what that program decided.
///
///   replace_storm IFACE A.o B.o COUNT
/// loads A and prints "first", waits for a line on stdin (the script's "the
/// stream flows"), makes the other COUNT - 1 loads and prints "loads COUNT
/// ms MS", waits for a line again ("the stream has ended and was seen"),
/// then prints "A N" and "B N": the datagrams decided by all A programs and
/// by all B programs.
//===----------------------------------------------------------------------===//
#include "runtime/BpfObject.h"
#include "runtime/Discover.h"
#include "runtime/Loader.h"
#include "runtime/Meta.h"

#include <bpf/bpf.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace r2x;

std::vector<uint8_t> readFile(const char *path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::runtime_error(std::string("cannot read ") + path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

/// One program that ran: its counters map (kept open) and its rule's slot.
struct Ran {
  int countersFd;
  unsigned slot;
  bool isA;
};

/// The program now on `iface`, which must be a new one.
Ran current(const std::string &iface, bool isA, std::set<uint32_t> &ids) {
  runtime::InterfaceXdp x = runtime::inspect(iface);
  if (!x.own)
    throw std::runtime_error("no rule2xdp program on " + iface);
  if (!ids.insert(x.own->progId).second)
    throw std::runtime_error("program " + std::to_string(x.own->progId) +
                             " is still attached after a load");
  runtime::Meta meta = runtime::parseMeta(x.own->metaText);
  int fd = bpf_map_get_fd_by_id(x.own->countersId);
  if (fd < 0)
    throw std::runtime_error("cannot open counters map " +
                             std::to_string(x.own->countersId));
  for (const runtime::MetaChain &chain : meta.chains)
    if (chain.name == "INPUT" && chain.rules.size() == 1)
      return {fd, chain.rules[0].slot, isA};
  throw std::runtime_error("the program has no single INPUT rule");
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: replace_storm IFACE A.o B.o COUNT\n");
    return 2;
  }
  try {
    std::string iface = argv[1];
    std::vector<uint8_t> objects[2] = {readFile(argv[2]), readFile(argv[3])};
    long count = std::stol(argv[4]);
    // One open map per program that ran.
    struct rlimit files;
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);

    std::vector<Ran> ran;
    std::set<uint32_t> ids;
    std::string line;
    runtime::load({iface}, {}, objects[0]);
    ran.push_back(current(iface, true, ids));
    std::printf("first\n");
    std::fflush(stdout);
    std::getline(std::cin, line); // the stream flows

    auto start = std::chrono::steady_clock::now();
    for (long i = 1; i < count; ++i) {
      bool isA = i % 2 == 0;
      runtime::load({iface}, {}, objects[isA ? 0 : 1]);
      ran.push_back(current(iface, isA, ids));
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    std::printf("loads %ld ms %lld\n", count, static_cast<long long>(ms));
    std::fflush(stdout);

    std::getline(std::cin, line); // the stream has ended and was seen
    unsigned long long decided[2] = {0, 0};
    for (const Ran &r : ran)
      decided[r.isA ? 0 : 1] +=
          runtime::readCounter(r.countersFd, r.slot).packets;
    std::printf("A %llu\nB %llu\n", decided[0], decided[1]);
    return 0;
  } catch (const runtime::LoadError &e) {
    std::fprintf(stderr, "replace_storm: %s\n%s", e.what(), e.log.c_str());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "replace_storm: %s\n", e.what());
  }
  return 1;
}
