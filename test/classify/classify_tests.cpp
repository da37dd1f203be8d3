//===- test/classify/classify_tests.cpp - trees and forests, on the host --===//
//
/// \file
/// The property test of the classifier's data (compiler/classify): random
/// runs of simple rules (clustered prefixes and wildcards, negations,
/// protocols, port ranges, ACCEPT, DROP and count-only rules) built as one
/// tree and as forests, within budgets from unbounded down to a few words
/// (where the builder makes long leaves instead of cuts), and random keys
/// (inside the rules' boxes, anywhere, and the port dimensions' hotdrop and
/// no-port keys): the walk the program makes (classify::forestDecide: every
/// tree's leaf, the earliest event, the count-only rules before it) must
/// decide each key as the rules one after the other do
/// (classify::linearDecide): the same end and the same rules counted. The
/// program's side of the same walk is the packet suite's
/// (packet_classifier*). Needs no root: no kernel is involved.
//===----------------------------------------------------------------------===//
#include "compiler/classify/Classify.h"
#include "compiler/classify/Exact.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/SaveFile.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <string>
#include <vector>

namespace cls = r2x::classify;
using namespace r2x;

namespace {

int failures = 0, checks = 0;

void check(bool ok, const std::string &what) {
  ++checks;
  if (!ok && ++failures <= 20)
    std::printf("FAIL %s\n", what.c_str());
}

uint64_t gState = 0x2545f4914f6cdd1dull;
uint32_t rnd() {
  gState ^= gState << 13;
  gState ^= gState >> 7;
  gState ^= gState << 17;
  return uint32_t(gState >> 16);
}
bool chance(unsigned percent) { return rnd() % 100 < percent; }

const uint32_t kPools[] = {0x0a000000, 0xac100000, 0xc0a80000, 0x0a010000};

std::string quad(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string(a >> 16 & 255) + "." +
         std::to_string(a >> 8 & 255) + "." + std::to_string(a & 255);
}

/// An address word: a prefix around a pool, often wide, sometimes negated.
std::string address(const char *opt) {
  static const unsigned lens[] = {0, 4, 8, 8, 12, 16, 20, 24, 24, 28, 32, 32};
  unsigned len = lens[rnd() % (sizeof lens / sizeof *lens)];
  if (len == 0)
    return "";
  uint32_t a = kPools[rnd() % 4] | (rnd() & 0xffff);
  a &= len == 32 ? ~0u : ~(~0u >> len);
  return std::string(chance(10) ? " !" : "") + " " + opt + " " + quad(a) + "/" +
         std::to_string(len);
}

std::string ports(const char *opt) {
  unsigned p = rnd() % 100;
  if (p < 40)
    return "";
  std::string neg = chance(10) ? " !" : "";
  if (p < 70)
    return neg + " " + opt + " " + std::to_string(rnd() % 8 * 1000 + rnd() % 3);
  unsigned lo = rnd() % 60000, hi = lo + rnd() % 5000;
  return neg + " " + opt + " " + std::to_string(lo) + ":" + std::to_string(hi);
}

/// `-i` in a fifth of the rules: one of four patterns (the program's bits
/// 0-3), sometimes negated.
std::string iface() {
  static const char *const names[] = {"eth0", "eth1", "veth+", "lo"};
  if (!chance(20))
    return "";
  return std::string(chance(25) ? " !" : "") + " -i " + names[rnd() % 4];
}

std::string ruleText() {
  std::string w = "-A INPUT" + address("-s") + address("-d") + iface();
  unsigned p = rnd() % 100;
  if (p < 35)
    w += " -p tcp" + ports("--sport") + ports("--dport");
  else if (p < 70)
    w += " -p udp" + ports("--sport") + ports("--dport");
  else if (p < 80)
    w += std::string(chance(30) ? " !" : "") + " -p icmp";
  unsigned t = rnd() % 100;
  w += t < 40 ? " -j DROP" : t < 80 ? " -j ACCEPT" : "";
  return w;
}

/// A key: inside a rule's box, anywhere, or with a port dimension's
/// special keys.
void randomKey(const cls::Image &img, uint32_t key[cls::KeyWords]) {
  const cls::RuleRec &r = img.rules[rnd() % img.rules.size()];
  bool inside = chance(70);
  key[cls::Src] = inside ? (r.srcNet | (rnd() & ~r.srcMask))
                         : (kPools[rnd() % 4] | (rnd() & 0xffffff));
  key[cls::Dst] = inside ? (r.dstNet | (rnd() & ~r.dstMask))
                         : (kPools[rnd() % 4] | (rnd() & 0xffffff));
  static const uint32_t protos[] = {6, 17, 1, 47};
  key[cls::Proto] = protos[rnd() % 4];
  auto port = [&](uint32_t range) {
    uint32_t lo = range & 0xffff, hi = range >> 16;
    return inside && lo <= hi ? lo + rnd() % (hi - lo + 1) : rnd() & 0xffff;
  };
  key[cls::Sport] = port(r.sport);
  key[cls::Dport] = port(r.dport);
  if (key[cls::Proto] != 6 && key[cls::Proto] != 17)
    key[cls::Sport] = key[cls::Dport] = cls::PortNone;
  else if (chance(3))
    key[cls::Sport] = key[cls::Dport] =
        chance(50) ? cls::PortShort : cls::PortNone;
  // The -i mask: any of the four patterns' bits (and bits no rule tests).
  key[cls::IfmaskLo] = rnd() & 0x1f;
  key[cls::IfmaskHi] = chance(10) ? rnd() : 0;
}

std::string endName(cls::Decision::End e) {
  const char *n[] = {"next", "accept", "drop", "hotdrop"};
  return n[e];
}

/// Exact runs (classify/Exact.h): random runs of `-s|-d ADDR/128 -j
/// ACCEPT|DROP` (in hand-over mode also REJECT) over a small pool of
/// addresses, so that one address is often named twice, and the search
/// the program makes (exactFind) against the rules one after the other:
/// for every pool address and some others, the entry found must be the
/// first rule naming the key, with that rule's counter slot, verdict and
/// (hand-over mode) Uncounted; none when no rule names it.
void exactProperty(unsigned sets) {
  for (unsigned set = 0; set < sets; ++set) {
    const bool handover = set % 2 == 1;
    const bool source = set % 3 != 0;
    std::vector<std::string> pool;
    unsigned poolSize = 1 + rnd() % (set % 10 == 0 ? 3000 : 40);
    for (unsigned i = 0; i < poolSize; ++i) {
      char a[64];
      // Addresses that differ in the high, middle or low words.
      std::snprintf(a, sizeof a, "2001:db8:%x:%x::%x:%x", rnd() % 3,
                    rnd() % 65536, rnd() % 4, rnd() % 65536);
      pool.push_back(a);
    }
    unsigned n = 1 + rnd() % (poolSize * 2);
    std::string text = "*filter\n:INPUT ACCEPT [0:0]\n";
    for (unsigned i = 0; i < n; ++i) {
      const char *targets[] = {"ACCEPT", "DROP",
                               "REJECT --reject-with icmp6-port-unreachable"};
      text += std::string("-A INPUT ") + (source ? "-s " : "-d ") +
              pool[rnd() % pool.size()] + "/128 -j " +
              targets[rnd() % (handover ? 3 : 2)] + "\n";
    }
    text += "COMMIT\n";
    frontend::SourceManager sm;
    ir::Program prog;
    std::vector<frontend::Warning> warnings;
    if (handover)
      prog.mode = ir::Mode::Handover;
    try {
      frontend::parseSaveFile("exact" + std::to_string(set), text, sm, prog,
                              warnings, ir::Family::V6);
    } catch (const std::exception &e) {
      check(false, "exact set " + std::to_string(set) + ": " + e.what());
      continue;
    }
    const ir::Chain *input = nullptr;
    for (const ir::Chain &c : prog.chains)
      if (c.name == "INPUT")
        input = &c;
    cls::Options o;
    o.mode = cls::Mode::Always;
    o.handover = handover;
    std::string what = "exact set " + std::to_string(set) + " (" +
                       std::to_string(n) + " rules)";
    if (!input || cls::exactRunAt(*input, 0, o) != input->rules.size()) {
      check(false, what + ": not one exact run");
      continue;
    }
    std::vector<const ir::Rule *> rules;
    for (const ir::Rule &r : input->rules)
      rules.push_back(&r);
    cls::ExactImage img = cls::buildExact(rules, handover);
    std::vector<std::string> keys = pool;
    for (unsigned k = 0; k < 20; ++k)
      keys.push_back("2001:db8:" + std::to_string(rnd() % 3) +
                     "::" + std::to_string(rnd() % 9999));
    for (const std::string &k : keys) {
      std::array<uint8_t, 16> bytes{};
      inet_pton(AF_INET6, k.c_str(), bytes.data());
      const cls::ExactKey key = cls::exactKey(bytes);
      long want = -1;
      for (size_t i = 0; i < rules.size() && want < 0; ++i)
        if (cls::exactKey(
                rules[i]->matches.front().as<ir::Match::Address>()->net6) ==
            key)
          want = long(i);
      long at = cls::exactFind(img, key);
      if (want < 0) {
        check(at < 0, what + ": " + k + " found, no rule names it");
        continue;
      }
      if (at < 0) {
        check(false, what + ": " + k + " not found, rule " +
                         std::to_string(want) + " names it");
        continue;
      }
      const cls::ExactEntry &e = img.entries[size_t(at)];
      const ir::Rule &r = *rules[size_t(want)];
      uint32_t verdict = r.verdict == ir::Verdict::Drop ? cls::VerdictDrop
                                                        : cls::VerdictAccept;
      bool uncounted = handover && r.verdict != ir::Verdict::Drop;
      check(e.rule == uint32_t(want) &&
                (e.info & cls::ExactSlotMask) == r.counter &&
                (e.info >> cls::ExactVerdictShift & cls::ExactVerdictMask) ==
                    verdict &&
                bool(e.info & cls::ExactUncounted) == uncounted,
            what + ": " + k + ": entry of rule " + std::to_string(e.rule) +
                ", info " + std::to_string(e.info) + ", want rule " +
                std::to_string(want));
    }
  }
}

} // namespace

int main(int argc, char **argv) {
  // The number of random runs (400; fewer under the sanitizers, which make
  // each 15 times slower).
  unsigned sets = argc > 1 ? unsigned(std::stoul(argv[1])) : 400;
  unsigned forests = 0, degraded = 0, keys = 0;
  for (unsigned set = 0; set < sets; ++set) {
    unsigned n = 1 + rnd() % (set % 10 == 0 ? 600 : 60);
    std::string text = "*filter\n:INPUT ACCEPT [0:0]\n";
    for (unsigned i = 0; i < n; ++i)
      text += ruleText() + "\n";
    text += "COMMIT\n";
    frontend::SourceManager sm;
    ir::Program prog;
    std::vector<frontend::Warning> warnings;
    frontend::parseSaveFile("set" + std::to_string(set), text, sm, prog,
                            warnings);
    // Every third set in hand-over mode: its count-only rules are left
    // out, and ACCEPT ends the run uncounted (cls::Uncounted).
    const bool handover = set % 3 == 0;
    std::vector<const ir::Rule *> rules;
    for (const ir::Chain &c : prog.chains)
      if (c.name == "INPUT")
        for (const ir::Rule &r : c.rules)
          if (cls::unclassifiable(r, c.family, c.table, handover).empty())
            rules.push_back(&r);
    if (rules.empty())
      continue;
    using F = cls::Options::Forest;
    for (F forest : {F::Never, F::Auto, F::Always})
      for (size_t words : {std::numeric_limits<size_t>::max(),
                           cls::wordBudget(rules.size(), 1024),
                           rules.size() + 64, rules.size() * 3 + 8}) {
        cls::Options o;
        o.forest = forest;
        o.handover = handover;
        // Two trees at most: groups merged into the one they widen least.
        if (set % 2)
          o.maxTrees = 2;
        std::string what = "set " + std::to_string(set) + " (" +
                           std::to_string(rules.size()) + " rules), forest " +
                           std::to_string(int(forest)) + ", words " +
                           std::to_string(words);
        std::optional<cls::Image> img;
        try {
          img = cls::buildWithin(rules, o, words);
        } catch (const std::exception &e) {
          check(false, what + ": " + e.what());
          continue;
        }
        // Every budget that holds the rules as one leaf each gets data.
        check(img.has_value() || words < rules.size() + 2 * 4,
              what + ": no image");
        if (!img)
          continue;
        check(2 * img->nodes.size() + img->leaves.size() <= words,
              what + ": over the budget");
        forests += img->forest();
        degraded += words < 1000 && img->stats.maxLeaf > o.binth;
        for (unsigned k = 0; k < 300; ++k, ++keys) {
          uint32_t key[cls::KeyWords];
          randomKey(*img, key);
          try {
            cls::Decision want = cls::linearDecide(*img, key);
            cls::Decision got = cls::forestDecide(*img, key);
            if (!(want == got))
              check(false, what + ": key " + std::to_string(k) + " ends " +
                               endName(got.end) + " with " +
                               std::to_string(got.counted.size()) +
                               " counted, rules say " + endName(want.end) +
                               " with " + std::to_string(want.counted.size()));
            else
              ++checks;
          } catch (const std::exception &e) {
            check(false, what + ": " + e.what());
          }
        }
      }
  }
  exactProperty(sets / 2);
  // The test means something only if it built forests and trees whose
  // budget made long leaves.
  check(forests >= sets / 4, "forests built: " + std::to_string(forests));
  check(degraded >= sets / 4,
        "trees held to their budget: " + std::to_string(degraded));
  std::printf("%d checks, %d failures (%u keys, %u forests, %u trees held "
              "to their budget)\n",
              checks, failures, keys, forests, degraded);
  return failures ? 1 : 0;
}
