//===- test/packet/RulesetRandom.cpp - random rulesets, random frames -----===//
//
/// \file
/// A seeded loop of rulesets no one would write by hand: 2-4 user chains in
/// raw, mangle or filter, 1-8 rules a chain from the supported matches, targets
/// among ACCEPT, DROP, none, RETURN, -j and -g (only to user chains later in
/// a fixed order of the same table, so there is never a loop), random
/// policies, -I with and without a position, counters prefixes, -N/-P lines,
/// ignored OUTPUT/POSTROUTING rules, an empty nat section, and the sections
/// in any order. Each ruleset is
/// compiled with `rule2xdp -f` and every frame of a random batch (from
/// FrameGen.h, the single-rule loop's generator) is compared with the
/// ruleset model. The seed is printed; `--seed` replays it.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

#include "test/packet/FrameGen.h"

#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

namespace r2x::test {

namespace {

struct UserChain {
  std::string name, table;
};

class RulesetGen {
public:
  /// `big`: built-in filter chains get big/2 to 3*big/2 rules, mostly of
  /// the simple kind the classifier takes (compiler/classify), so long runs
  /// of them become decision trees under --classifier, broken now and then
  /// by a rule it does not take.
  RulesetGen(Gen &g, Phase phase, unsigned big = 0)
      : g_(g), phase_(phase), big_(big) {}

  std::string generate() {
    chains_.clear();
    bool raw = g_.chance(60), mangle = g_.chance(35);
    std::vector<std::string> tables = {"filter", "filter"};
    if (raw)
      tables.push_back("raw");
    if (mangle)
      tables.push_back("mangle");
    size_t nUser = 2 + g_.below(3);
    for (size_t i = 0; i < nUser; ++i)
      chains_.push_back(
          {"U" + std::to_string(i + 1), tables[g_.below(tables.size())]});

    std::string out = "# random ruleset\n";
    if (g_.chance(15))
      out += "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n"
             ":OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";
    // Any order of sections will do; the traversal order is netfilter's.
    std::vector<std::string> sections = {"filter"};
    if (raw)
      sections.push_back("raw");
    if (mangle)
      sections.push_back("mangle");
    for (size_t i = sections.size(); i > 1; --i)
      std::swap(sections[i - 1], sections[g_.below(i)]);
    for (const auto &t : sections) {
      if (t == "raw")
        out += table("raw", {"PREROUTING"}, {"OUTPUT"});
      else if (t == "mangle")
        out += table("mangle", {"PREROUTING", "INPUT", "FORWARD"},
                     {"OUTPUT", "POSTROUTING"});
      else
        out += table("filter", {"INPUT", "FORWARD"}, {"OUTPUT"});
    }
    return out;
  }

private:
  std::string counters() {
    return "[" + std::to_string(g_.below(1000)) + ":" +
           std::to_string(g_.below(100000)) + "]";
  }

  std::string table(const std::string &t,
                    const std::vector<std::string> &builtins,
                    const std::vector<std::string> &egress) {
    std::string head = "*" + t + "\n", body;
    std::vector<std::string> policyLines;
    for (const auto &b : builtins) {
      bool drop = g_.chance(t == "filter" ? 40 : 15);
      std::string pol = drop ? "DROP" : "ACCEPT";
      if (g_.chance(20)) {
        // Declared ACCEPT, then set with -P.
        head += ":" + b + " ACCEPT " + counters() + "\n";
        policyLines.push_back("-P " + b + " " + pol + "\n");
      } else {
        head += ":" + b + " " + pol + " " + counters() + "\n";
      }
    }
    for (const auto &e : egress)
      head += ":" + e + " ACCEPT " + counters() + "\n";
    // User chains of this table, in the order jumps may go.
    std::vector<size_t> mine;
    for (size_t i = 0; i < chains_.size(); ++i)
      if (chains_[i].table == t)
        mine.push_back(i);
    for (size_t i : mine)
      head += g_.chance(20) ? "-N " + chains_[i].name + "\n"
                            : ":" + chains_[i].name + " - [0:0]\n";
    for (const auto &l : policyLines)
      head += l;

    // Rules: each built-in chain may jump to any user chain of the table,
    // user chain k only to user chains after k.
    struct Target {
      std::string chain;
      size_t from; // index into `mine` of the first allowed callee
      size_t count;
    };
    std::vector<Target> owners;
    for (const auto &b : builtins)
      owners.push_back({b, 0,
                        t == "filter" && big_ ? big_ / 2 + g_.below(big_ + 1)
                        : t == "filter"       ? 1 + g_.below(8)
                        : t == "raw"          ? g_.below(9)
                                              : g_.below(5)});
    for (size_t k = 0; k < mine.size(); ++k)
      owners.push_back({chains_[mine[k]].name, k + 1, 1 + g_.below(8)});
    // Rules of different chains interleave in the file, as they may.
    std::vector<size_t> order;
    for (size_t o = 0; o < owners.size(); ++o)
      for (size_t n = 0; n < owners[o].count; ++n)
        order.push_back(o);
    for (size_t i = order.size(); i > 1; --i)
      std::swap(order[i - 1], order[g_.below(i)]);
    std::map<std::string, size_t> have;
    for (size_t o : order) {
      const Target &tg = owners[o];
      std::vector<std::string> callees;
      for (size_t k = tg.from; k < mine.size(); ++k)
        callees.push_back(chains_[mine[k]].name);
      body += rule(tg.chain, have[tg.chain]++, callees);
    }
    if (g_.chance(20))
      body += "-A " + egress[g_.below(egress.size())] + " -j DROP\n";
    if (!mine.empty() && g_.chance(15))
      body += "-A " + egress[g_.below(egress.size())] + " -p tcp -j " +
              chains_[mine[0]].name + "\n";
    return head + body + "COMMIT\n";
  }

  std::string addr() {
    std::vector<std::string> pool = {"10.1.0.1",
                                     "10.1.0.2",
                                     "10.1.0.3",
                                     "10.1.0.0/24",
                                     "10.1.0.0/16",
                                     "10.0.0.0/8",
                                     "10.1.7.7",
                                     "10.2.0.1",
                                     "192.168.1.1",
                                     "0.0.0.0/0",
                                     "10.1.255.255",
                                     "10.1.0.0/255.255.0.0",
                                     "10.0.0.7/255.0.0.255"};
    if (phase_ == Phase::Forward)
      pool.insert(pool.end(),
                  {"10.9.0.2", "10.9.0.1", "10.9.0.0/24", "127.0.0.0/8"});
    return pool[g_.below(pool.size())];
  }

  /// A --sport/--dport value. The reversed range 5:3 (it matches no port)
  /// only for udp: libxt_tcp refuses it ("invalid portrange (min > max)").
  std::string ports(const std::string &proto) {
    static const char *pool[] = {
        "22",         "53",     "80",  "1234",  "1000:2000", "0:1023",
        "1024:65535", "80:443", "5:3", "65535", "0",         "1233:1235"};
    std::string p = pool[g_.below(std::size(pool))];
    return p == "5:3" && proto == "tcp" ? "3:5" : p;
  }

  std::string iface() {
    std::vector<std::string> pool =
        phase_ == Phase::Input
            ? std::vector<std::string>{"lo",       "r2xa0",       "r2xb0",
                                       "r2xa0.10", "r2xa0.20.30", "r2x+",
                                       "r2xa0.+"}
            : std::vector<std::string>{"lo", "f0", "f1", "f+"};
    return pool[g_.below(pool.size())];
  }

  std::string neg(unsigned percent) { return g_.chance(percent) ? "! " : ""; }

  std::string rule(const std::string &chain, size_t have,
                   const std::vector<std::string> &callees) {
    std::string s;
    // In a big ruleset, a built-in chain's rules are mostly simple.
    const bool simple = big_ && chain[0] != 'U' && !g_.chance(3);
    if (g_.chance(25))
      s += counters() + " ";
    if (g_.chance(15)) {
      s += "-I " + chain;
      if (g_.chance(60))
        s += " " + std::to_string(1 + g_.below(have + 1));
    } else {
      s += "-A " + chain;
    }
    if (g_.chance(35))
      s += " " + neg(20) + "-s " + addr();
    if (g_.chance(30))
      s += " " + neg(20) + "-d " + addr();
    if (!simple && g_.chance(15))
      s += " " + neg(25) + "-i " + iface();
    if (g_.chance(55)) {
      std::string p =
          simple ? g_.pick<const char *>({"tcp", "udp", "6", "17", "47", "all"})
                 : g_.pick<const char *>({"tcp", "udp", "tcp", "udp", "icmp",
                                          "6", "17", "47", "all"});
      bool inv = p != "all" && g_.chance(15);
      s += std::string(" ") + (inv ? "! " : "") + "-p " + p;
      if (!inv && (p == "tcp" || p == "udp") && g_.chance(60)) {
        if (g_.chance(15))
          s += " -m " + p;
        bool sp = g_.chance(40), dp = !sp || g_.chance(60);
        if (sp)
          s += " " + neg(20) + "--sport " + ports(p);
        if (dp)
          s += " " + neg(20) + "--dport " + ports(p);
      }
    }
    // none 20, ACCEPT 12, DROP 12, RETURN 12, -j 25, -g 12 (the last two
    // only with a callee to go to).
    unsigned total = callees.empty() || simple ? 56 : 93;
    unsigned r = unsigned(g_.below(total));
    if (simple && r >= 44)
      r = unsigned(g_.below(44)); // no RETURN
    if (r < 20) {
    } else if (r < 32) {
      s += " -j ACCEPT";
    } else if (r < 44) {
      s += " -j DROP";
    } else if (r < 56) {
      s += " -j RETURN";
    } else if (r < 81) {
      s += " -j " + callees[g_.below(callees.size())];
    } else {
      s += " -g " + callees[g_.below(callees.size())];
    }
    return s + "\n";
  }

  Gen &g_;
  Phase phase_;
  unsigned big_;
  std::vector<UserChain> chains_;
};

/// In the FORWARD phase only three destinations have a fixed routing
/// decision: rewrite the destination (and now and then the TTL) of frames
/// that parse as IPv4. The program does not check the header checksum.
void forForwardPhase(Gen &g, std::vector<uint8_t> &frame) {
  Parsed p = parseFrame(frame);
  if (!p.ipv4)
    return;
  uint32_t dst = g.pick<uint32_t>(
      {0x0a090002, 0x0a090002, 0x0a090002, 0x0a090001, 0x7f000001});
  for (int i = 0; i < 4; ++i)
    frame[p.l3 + 16 + size_t(i)] = uint8_t(dst >> (24 - 8 * i));
  if (g.chance(10))
    frame[p.l3 + 8] = g.pick<uint8_t>({0, 1, 2});
}

/// What random frames through random rulesets showed, by kind.
class Tally {
public:
  /// Runs `batch` through `text` (compiled once) against the model.
  /// Returns false to stop: 20 failures since the tally began.
  bool run(Harness &h, const std::string &name, const std::string &text,
           const std::vector<std::pair<std::vector<uint8_t>, uint32_t>> &batch);
  void print(const std::string &what) const {
    std::cout << what << ": " << compiled_ << " rulesets, " << runs_
              << " frames:";
    for (auto &[k, n] : seen_)
      std::cout << " " << k << " " << n << ";";
    std::cout << "\n";
  }
  explicit Tally(const Harness &h) : failedBefore_(h.failed()) {}

private:
  void count(const Expected &e);
  int failedBefore_;
  std::map<std::string, int> seen_;
  int runs_ = 0, compiled_ = 0;
};

bool Tally::run(
    Harness &h, const std::string &name, const std::string &text,
    const std::vector<std::pair<std::vector<uint8_t>, uint32_t>> &batch) {
  if (!h.loadRuleset(text).error.empty()) {
    h.expectSetModel(name, text, batch[0].first, batch[0].second);
    h.forget(text);
    return h.failed() - failedBefore_ < 20;
  }
  ++compiled_;
  for (size_t i = 0; i < batch.size(); ++i) {
    count(h.expectSetModel(name + " frame #" + std::to_string(i), text,
                           batch[i].first, batch[i].second));
    if (h.failed() - failedBefore_ >= 20)
      break;
  }
  h.forget(text);
  return h.failed() - failedBefore_ < 20;
}

void Tally::count(const Expected &e) {
  ++runs_;
  const std::string &t = e.trace;
  if (t.rfind("ignored", 0) == 0)
    ++seen_["ignored"];
  else if (t.find("hotdrop") != std::string::npos)
    ++seen_["hotdrop"];
  else if (t.find("reassembly") != std::string::npos)
    ++seen_["left to reassembly"];
  else if (t.find("TTL") != std::string::npos)
    ++seen_["left to the kernel"];
  else
    ++seen_[e.action == kDrop ? "dropped" : "passed"];
  for (const char *ev : {" jump ", " goto ", " RETURN;", " falls off;",
                         " returns past ", " policy "})
    for (size_t at = t.find(ev); at != std::string::npos;
         at = t.find(ev, at + 1))
      ++seen_[std::string("event") + ev];
}

/// `frames` random frames for a ruleset of the current phase.
std::vector<std::pair<std::vector<uint8_t>, uint32_t>>
randomBatch(Harness &h, Gen &g, int frames) {
  const bool input = h.phase() == Phase::Input;
  const std::vector<uint32_t> ifaces =
      input ? std::vector<uint32_t>{h.ifindex("lo"), h.ifindex("r2xa0"),
                                    h.ifindex("r2xb0")}
            : std::vector<uint32_t>{h.ifindex("lo"), h.ifindex("f0"),
                                    h.ifindex("f1")};
  std::vector<std::pair<std::vector<uint8_t>, uint32_t>> batch;
  for (int i = 0; i < frames; ++i) {
    std::vector<uint8_t> f = g.chance(20) ? g.frame() : g.structured(true);
    if (!input)
      forForwardPhase(g, f);
    batch.emplace_back(std::move(f), ifaces[g.below(ifaces.size())]);
  }
  return batch;
}

} // namespace

void randomRulesets(Harness &h, uint64_t seed, int rulesets, int frames,
                    unsigned big) {
  const bool input = h.phase() == Phase::Input;
  const std::string loop =
      std::string(big ? "big random ruleset (seed " : "random ruleset (seed ") +
      std::to_string(seed) + ", " + (input ? "INPUT" : "FORWARD") + " phase)";
  Gen g(seed);
  RulesetGen rg(g, h.phase(), big);
  Tally tally(h);
  for (int k = 0; k < rulesets; ++k) {
    const std::string text = rg.generate();
    const std::string name = loop + " #" + std::to_string(k);
    // Frames are drawn whether or not the ruleset runs, so --filter keeps
    // the sequence of a seed.
    auto batch = randomBatch(h, g, frames);
    if (!h.wants(loop) && !h.wants(name + " "))
      continue;
    if (!tally.run(h, name, text, batch)) {
      std::cout << "random rulesets: stopping after 20 failures (seed " << seed
                << ")\n";
      return;
    }
  }
  tally.print(std::string(big ? "big " : "") + "random rulesets (" +
              (input ? "INPUT" : "FORWARD") + " phase, seed " +
              std::to_string(seed) + ")");
}

void fileRulesets(Harness &h, const std::vector<std::string> &paths,
                  int frames) {
  Tally tally(h);
  for (const std::string &path : paths) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in || text.str().empty())
      throw std::runtime_error("cannot read the ruleset " + path);
    const std::string name = "ruleset file " + path;
    Gen g(1);
    auto batch = randomBatch(h, g, frames);
    if (h.wants(name + " ") && !tally.run(h, name, text.str(), batch))
      return;
  }
  tally.print("ruleset files (" + std::to_string(paths.size()) + ")");
}

} // namespace r2x::test
