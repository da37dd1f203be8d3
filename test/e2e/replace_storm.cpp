//===- test/e2e/replace_storm.cpp - many replaces, every packet decided once
//-===//
//
/// \file
/// The loading half of test/e2e/replace_storm.sh. Two modes.
///
///   replace_storm IFACE A.o B.o COUNT [--cli RULE2XDP EVERY]
/// Loads two objects in turn on an interface, COUNT times, through the
/// runtime (as `rule2xdp --load` does) and, with --cli, every EVERY-th load
/// through the command itself (`RULE2XDP --load IFACE X.o`), while the
/// script's paced stream flows through it. Each object has one rule that
/// counts every datagram of the stream and decides it: A drops, B passes.
/// After each load it finds the new program from the interface
/// (runtime/Discover.h) and keeps its counters map open, so the counts of
/// every program that ever ran survive it. The rules' texts differ, so
/// their counter keys do: no count moves from one program to the next, and
/// each program's counter is what that program decided. It loads A and
/// prints "first", waits for a line on stdin (the script's "the stream
/// flows"), makes the other COUNT - 1 loads and prints "loads COUNT cli N
/// ms MS", waits for a line again ("the stream has ended and was seen"),
/// then prints "A N", "B N" and "programs N": the datagrams decided by all
/// A programs and by all B programs, and how many programs ran.
///
///   replace_storm --watch IFACE CHAIN
/// Watches the programs another process (`rule2xdp --follow`) puts on
/// IFACE: polls the interface and, for every new program, keeps its
/// counters map open and prints "prog ID KIND" (KIND: the comment of
/// CHAIN's first rule, A or B). On a line on stdin it
/// prints "A N", "B N" and "programs N" as above and exits. A program
/// replaced before the watcher saw it would lose its counts, so the script
/// makes the next change only after the watcher reported the last one.
//===----------------------------------------------------------------------===//
#include "runtime/BpfObject.h"
#include "runtime/Discover.h"
#include "runtime/Loader.h"
#include "runtime/Meta.h"

#include <bpf/bpf.h>

#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstring>
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

/// The comment of a rule in the metadata's `extra` (`/* A */`), or "".
std::string commentOf(const runtime::MetaRule &rule) {
  std::size_t open = rule.extra.find("/* ");
  if (open == std::string::npos)
    return "";
  std::size_t close = rule.extra.find(" */", open);
  return rule.extra.substr(open + 3, close - open - 3);
}

/// A program found on the interface, which must be a new one; its counted
/// rule is the first of `chainName`, commented A or B.
Ran record(const runtime::OwnProgram &own, const std::string &chainName,
           std::set<uint32_t> &ids) {
  if (!ids.insert(own.progId).second)
    throw std::runtime_error("program " + std::to_string(own.progId) +
                             " is still attached after a load");
  runtime::Meta meta = runtime::parseMeta(own.metaText);
  int fd = bpf_map_get_fd_by_id(own.countersId);
  if (fd < 0)
    throw std::runtime_error("cannot open counters map " +
                             std::to_string(own.countersId));
  for (const runtime::MetaChain &chain : meta.chains)
    if (chain.name == chainName && !chain.rules.empty()) {
      std::string kind = commentOf(chain.rules[0]);
      if (kind != "A" && kind != "B")
        throw std::runtime_error("the first " + chainName +
                                 " rule is commented '" + kind +
                                 "', not A or B: " + chain.rules[0].extra);
      return {fd, chain.rules[0].slot, kind == "A"};
    }
  throw std::runtime_error("the program has no " + chainName + " rule");
}

/// The program now on `iface` after a load.
Ran current(const std::string &iface, std::set<uint32_t> &ids) {
  runtime::InterfaceXdp x = runtime::inspect(iface);
  if (!x.own)
    throw std::runtime_error("no rule2xdp program on " + iface);
  return record(*x.own, "INPUT", ids);
}

/// `rule2xdp --load IFACE OBJECT`, as a user would run it.
void loadWithCli(const std::string &r2x, const std::string &iface,
                 const std::string &object) {
  std::vector<std::string> words = {r2x, "--load", iface, object};
  std::vector<char *> argv;
  for (std::string &w : words)
    argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid;
  if (int err = posix_spawn(&pid, r2x.c_str(), nullptr, nullptr, argv.data(),
                            environ))
    throw std::runtime_error("cannot run " + r2x + ": " + std::strerror(err));
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    throw std::runtime_error(r2x + " --load " + iface + " " + object +
                             " failed (status " + std::to_string(status) + ")");
}

void raiseFileLimit() { // one open map per program that ran
  struct rlimit files;
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
}

void printDecided(const std::vector<Ran> &ran) {
  unsigned long long decided[2] = {0, 0};
  for (const Ran &r : ran)
    decided[r.isA ? 0 : 1] +=
        runtime::readCounter(r.countersFd, r.slot).packets;
  std::printf("A %llu\nB %llu\nprograms %zu\n", decided[0], decided[1],
              ran.size());
}

int watch(const std::string &iface, const std::string &chain) {
  raiseFileLimit();
  std::vector<Ran> ran;
  std::set<uint32_t> ids;
  for (;;) {
    runtime::InterfaceXdp x = runtime::inspect(iface);
    if (x.own && !ids.count(x.own->progId)) {
      ran.push_back(record(*x.own, chain, ids));
      std::printf("prog %u %s\n", x.own->progId, ran.back().isA ? "A" : "B");
      std::fflush(stdout);
    }
    struct pollfd in = {0, POLLIN, 0};
    if (::poll(&in, 1, 1) > 0)
      break; // the stream has ended and was seen
  }
  printDecided(ran);
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--watch")
      return watch(argv[2], argv[3]);
    if (argc != 5 && !(argc == 8 && std::string(argv[5]) == "--cli")) {
      std::fprintf(stderr, "usage: replace_storm IFACE A.o B.o COUNT [--cli "
                           "RULE2XDP EVERY]\n"
                           "       replace_storm --watch IFACE CHAIN\n");
      return 2;
    }
    std::string iface = argv[1];
    std::string paths[2] = {argv[2], argv[3]};
    std::vector<uint8_t> objects[2] = {readFile(argv[2]), readFile(argv[3])};
    long count = std::stol(argv[4]);
    std::string cli = argc == 8 ? argv[6] : "";
    long every = argc == 8 ? std::stol(argv[7]) : 0;
    raiseFileLimit();

    std::vector<Ran> ran;
    std::set<uint32_t> ids;
    std::string line;
    runtime::load({iface}, {}, objects[0]);
    ran.push_back(current(iface, ids));
    std::printf("first\n");
    std::fflush(stdout);
    std::getline(std::cin, line); // the stream flows

    auto start = std::chrono::steady_clock::now();
    long viaCli = 0;
    for (long i = 1; i < count; ++i) {
      int which = i % 2 == 0 ? 0 : 1;
      if (every > 0 && i % every == 0) {
        loadWithCli(cli, iface, paths[which]);
        ++viaCli;
      } else {
        runtime::load({iface}, {}, objects[which]);
      }
      ran.push_back(current(iface, ids));
      if (ran.back().isA != (which == 0))
        throw std::runtime_error("load " + std::to_string(i) +
                                 " put the other object on " + iface);
    }
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    std::printf("loads %ld cli %ld ms %lld\n", count, viaCli,
                static_cast<long long>(ms));
    std::fflush(stdout);

    std::getline(std::cin, line); // the stream has ended and was seen
    printDecided(ran);
    return 0;
  } catch (const runtime::LoadError &e) {
    std::fprintf(stderr, "replace_storm: %s\n%s", e.what(), e.log.c_str());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "replace_storm: %s\n", e.what());
  }
  return 1;
}
