//===- test/diff/diff_kernel.cpp - rule2xdp against the kernel's netfilter ===//
//
/// \file
/// `diff_kernel`: the differential test of rule2xdp against the kernel. For
/// whole rulesets (iptables-save text), the kernel's netfilter (legacy and
/// nft back ends of iptables-restore / ip6tables-restore) and rule2xdp's
/// program compiled from the same text (`rule2xdp [-6] -f FILE`) must
/// decide the same frames the same way.
///
/// CTest runs the three fixed rulesets of rulesets/ (their .frames plus
/// random frames) and random IPv4 and IPv6 rulesets (see CMakeLists.txt).
/// A long campaign is the same with more rulesets and other seeds, e.g.
///   diff_kernel --seed 7 --rulesets 300 --rulesets6 150 --packets 16
/// A mismatch report ends with the command that replays just that ruleset.
///
/// How (details in Topology.h, Netfilter.h, XdpSide.h, Generate.h):
///  - namespaces A, B, C made for this run; B routes between 10.1.0.0/24 /
///    2001:db8:1::/64 (b0, towards A) and 10.1.1.0/24 / 2001:db8:2::/64
///    (b1, towards C), default routes via C;
///  - for each ruleset: compile it with rule2xdp and load the object in B
///    (nothing attached); install it in B with one back end (the other
///    flushed) and send each test frame from A (on a0) or C (on c0) with an
///    AF_PACKET socket, followed by a sentinel frame that proves B has
///    processed it; read `iptables-save -c`: which counters moved (rules by
///    table, chain and position; built-in policies);
///  - run the same frame through the program with BPF_PROG_TEST_RUN as if
///    received on b0/b1 in B and read which `r2x_counters` slots moved (the
///    object's metadata names each slot's table, chain and position);
///  - compare: the same counters, packets and bytes, and the action
///    (XDP_DROP iff a DROP rule or a DROP policy counted in the kernel,
///    XDP_PASS otherwise; never anything else, never a modified frame).
///
/// Fragmented IPv4 datagrams are sent whole. raw and mangle PREROUTING and
/// FORWARD see every fragment; INPUT sees the datagram once, reassembled.
/// So for a local fragmented IPv4 datagram the counters of chains reached
/// before the routing decision are compared frame by frame, and those after
/// it (INPUT, user chains called from there) as datagram sums, packets only:
/// the kernel's INPUT counters against the program's decision on the first
/// fragment. IPv6 reaches INPUT fragment by fragment (no conntrack), so it
/// is compared frame by frame everywhere.
///
/// Known divergences, counted apart (neither passed nor failed), each only
/// when the other back end (if it ran) decided exactly as the program:
///  1. iptables-nft reads ports (and other transport fields) from a non-first
///     fragment's payload; x_tables and rule2xdp never match them there.
///  2. iptables-nft drops `! --dport 0:65535` and the like.
///  3. ip6tables-nft finds the upper-layer protocol with ipv6_find_hdr()
///     and IP6_FH_F_AUTH, so the walk stops at an AH header: `-p udp` does
///     not match UDP behind AH (nft sees protocol 51), `! -p icmpv6` matches
///     ICMPv6 behind AH. ip6tables-legacy (ip6_packet_match(), no flags)
///     walks past AH, and so does rule2xdp.
///  4. iptables-nft 1.8.9 translates `--tcp-flags NONE X` (an empty mask)
///     to nothing, so the rule matches every TCP packet; x_tables tests
///     (flags & 0) == X, which never holds for X != 0, and so does rule2xdp.
///  5. INPUT judged on the first fragment of a datagram that a PREROUTING
///     rule stops at a later fragment (design.md, "Fragments"): the program
///     counts INPUT for the first fragment, the kernel never reassembles.
/// Every other difference is a failure.
//===----------------------------------------------------------------------===//
#include "test/diff/Generate.h"
#include "test/diff/Netfilter.h"
#include "test/diff/Process.h"
#include "test/diff/XdpSide.h"
#include "test/packet/Frame.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#ifndef R2X_COMPILER
#define R2X_COMPILER "rule2xdp"
#endif

using namespace r2x::diff;

namespace {

const char *HelpText =
    R"(diff_kernel: rule2xdp against the kernel's netfilter (iptables-legacy
and iptables-nft, ip6tables-legacy and ip6tables-nft), ruleset by ruleset,
frame by frame.

usage: diff_kernel [options]
  --seed N          seed of the rulesets and frames (default 1)
  --rulesets N      random IPv4 rulesets (default 40; --rules is the same)
  --rulesets6 N     random IPv6 rulesets (default 20)
  --packets N       random datagrams per ruleset (default 12; a fragmented
                    datagram is 2-3 frames)
  --file FILE       also test this iptables-save / ip6tables-save file
                    (repeatable), with the datagrams of FILE's .frames
                    sibling (rulesets/X.rules -> rulesets/X.frames) if any,
                    plus --packets random ones
  --backend B       legacy, nft or both (default both)
  --only K          test only random ruleset K (0-based) of --family
  --family 4|6      with --only: which family (default 4)
  --handover        compile with --pass-unsupported; check that every frame
                    XDP drops the kernel drops with the same counters, and
                    that XDP counts nothing it passes (and hands every
                    fragment over)
  --exact-buckets   with --handover: a count that differs in a rule an -m
                    limit bucket decides is a mismatch, not the known
                    two-bucket divergence (for fixtures whose every frame
                    that reaches a limit is dropped by XDP)
  --wide            also send IPv4 to 255.255.255.255, 224.0.0.1, 127.0.0.1
                    and 0.0.0.0
  --compiler PATH   the rule2xdp binary (default: the one built with this test)
  --max-reports N   print at most N mismatch reports (default 30); all count
  --show-rulesets   print every ruleset
  -v, --verbose     print every datagram and both decisions
  -h, --help        this text

Needs root with BPF; makes namespaces r2xd-PID-{A,B,C} and removes them.

Reports: MISMATCH (kernel and program decided a frame differently),
GRAMMAR MISMATCH (one of rule2xdp and iptables-restore accepts a ruleset the
other refuses), STRUCTURE MISMATCH (the kernel's chains and rules differ
from the program's metadata), LOAD/COMPILER/SETUP FAILURE. Known divergences
are counted apart, neither passed nor failed. Ends with `N passed, M failed`
(frames compared); exit status 1 on any failure.
)";

struct Options {
  uint64_t seed = 1;
  int rulesets = 40, rulesets6 = 20, packets = 12, only = -1, maxReports = 30;
  Family onlyFamily = Family::V4;
  bool legacy = true, nft = true, wide = false, verbose = false,
       showRulesets = false;
  /// Compile with --pass-unsupported and check soundness (docs/handover.md).
  bool handover = false;
  /// --exact-buckets (see the usage text).
  bool exactBuckets = false;
  std::string compiler = R2X_COMPILER;
  std::vector<std::string> files;
};

[[noreturn]] void usageError(const std::string &msg) {
  std::cerr << "diff_kernel: " << msg << "\n(see diff_kernel --help)\n";
  std::exit(2);
}

Options parseOptions(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usageError(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](long long min) -> long long {
      std::string v = value();
      char *end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n < min)
        usageError("bad value for " + a + ": " + v);
      return n;
    };
    if (a == "-h" || a == "--help") {
      std::cout << HelpText;
      std::exit(0);
    } else if (a == "--seed")
      o.seed = uint64_t(number(0));
    else if (a == "--rulesets" || a == "--rules")
      o.rulesets = int(number(0));
    else if (a == "--rulesets6")
      o.rulesets6 = int(number(0));
    else if (a == "--packets")
      o.packets = int(number(0));
    else if (a == "--only")
      o.only = int(number(0));
    else if (a == "--family") {
      std::string f = value();
      if (f != "4" && f != "6")
        usageError("--family is 4 or 6");
      o.onlyFamily = f == "4" ? Family::V4 : Family::V6;
    } else if (a == "--file")
      o.files.push_back(value());
    else if (a == "--max-reports")
      o.maxReports = int(number(0));
    else if (a == "--compiler")
      o.compiler = value();
    else if (a == "--wide")
      o.wide = true;
    else if (a == "--show-rulesets")
      o.showRulesets = true;
    else if (a == "--handover")
      o.handover = true;
    else if (a == "--exact-buckets")
      o.exactBuckets = true;
    else if (a == "-v" || a == "--verbose")
      o.verbose = true;
    else if (a == "--backend") {
      std::string b = value();
      if (b == "legacy")
        o.nft = false;
      else if (b == "nft")
        o.legacy = false;
      else if (b != "both")
        usageError("--backend is legacy, nft or both");
    } else
      usageError("unknown option " + a);
  }
  return o;
}

/// Counter increments by key ("filter:INPUT#2", "raw:PREROUTING policy").
using Decision = std::map<std::string, Count>;

/// Whether the window holds traffic that is not the frame's: a frame passes
/// each of PREROUTING, INPUT and FORWARD once, so neither their policies nor
/// the rules written in them move by more than one packet for it. (OUTPUT
/// and POSTROUTING may see more than one packet of the frame's answers; a
/// user chain may be jumped to twice.)
bool strayPackets(const Decision &d) {
  for (const auto &[name, c] : d) {
    if (c.packets <= 1)
      continue;
    const size_t colon = name.find(':');
    const size_t end = name.find_first_of("# ", colon);
    const std::string chain = name.substr(colon + 1, end - colon - 1);
    if (chain == "PREROUTING" || chain == "INPUT" || chain == "FORWARD")
      return true;
  }
  return false;
}

std::string describe(const Decision &d, bool bytes = true) {
  if (d.empty())
    return "no counter";
  std::string s;
  for (const auto &[name, c] : d) {
    s += (s.empty() ? "" : ", ") + name + " +" + std::to_string(c.packets) +
         " pkt";
    if (bytes)
      s += " " + std::to_string(c.bytes) + " B";
  }
  return s;
}

Decision packetsOnly(Decision d) {
  for (auto &[_, c] : d)
    c.bytes = 0;
  return d;
}

void addInto(Decision &sum, const Decision &d) {
  for (const auto &[name, c] : d) {
    sum[name].packets += c.packets;
    sum[name].bytes += c.bytes;
  }
}

/// What the program is compared on, from its metadata: every counter's key,
/// what it does (its target or policy), and the phase of its chain.
struct Model {
  std::map<unsigned, std::string> slotName;
  std::map<std::string, std::string> target; // key -> DROP, ACCEPT, ...
  std::set<std::string> chains;              // "table:CHAIN"
  std::map<std::string, int> phase; // "table:CHAIN" -> 0 pre, 1 post, 2 both
  /// Rules whose count depends on an -m limit bucket: those with the match,
  /// and every rule of a user chain whose rules only log, return or jump
  /// (what a limited jump or RETURN decides to run).
  std::set<std::string> bucketKeys;
};

std::string tableName(const std::string &t) {
  return t.rfind("ip6 ", 0) == 0 ? t.substr(4) : t;
}

Model modelOf(const r2x::runtime::Meta &meta) {
  Model m;
  std::map<std::string, std::set<std::string>> callees; // chain -> chains
  for (const auto &c : meta.chains) {
    const std::string chain = tableName(c.table) + ":" + c.name;
    m.chains.insert(chain);
    if (c.slot >= 0) {
      m.slotName[unsigned(c.slot)] = chain + " policy";
      m.target[chain + " policy"] = c.policy;
    }
    unsigned n = 0;
    bool logOnly = c.slot < 0;
    for (const auto &r : c.rules)
      logOnly = logOnly && r.target != "ACCEPT" && r.target != "DROP" &&
                r.target != "REJECT";
    for (const auto &r : c.rules) {
      const std::string key = chain + "#" + std::to_string(++n);
      m.slotName[r.slot] = key;
      m.target[key] = r.target;
      callees[chain].insert(tableName(c.table) + ":" + r.target);
      if (logOnly || r.extra.find("-m limit ") != std::string::npos)
        m.bucketKeys.insert(key);
    }
  }
  // Phases: reachability from the built-in chains.
  for (const auto &c : meta.chains) {
    if (c.slot < 0)
      continue;
    const int ph = c.name == "PREROUTING" ? 0 : 1;
    std::vector<std::string> work{tableName(c.table) + ":" + c.name};
    std::set<std::string> seen;
    while (!work.empty()) {
      std::string x = work.back();
      work.pop_back();
      if (!seen.insert(x).second || !m.chains.count(x))
        continue;
      auto it = m.phase.find(x);
      if (it == m.phase.end())
        m.phase[x] = ph;
      else if (it->second != ph)
        it->second = 2;
      for (const std::string &y : callees[x])
        work.push_back(y);
    }
  }
  return m;
}

std::string chainOfKey(const std::string &key) {
  size_t at = key.find_first_of("# ");
  return key.substr(0, at);
}

/// The kernel's counters that moved, on the chains the program models.
Decision kernelDelta(const Model &m, const Counters &before,
                     const Counters &after) {
  Decision d;
  for (const auto &[key, a] : after.count) {
    if (!m.chains.count(chainOfKey(key)))
      continue;
    auto b = before.count.find(key);
    Count bc = b == before.count.end() ? Count{} : b->second;
    if (!(a == bc))
      d[key] = {a.packets - bc.packets, a.bytes - bc.bytes};
  }
  return d;
}

Decision xdpDecision(const Model &m, const XdpResult &x) {
  Decision d;
  for (const auto &[slot, c] : x.counters) {
    auto it = m.slotName.find(slot);
    d[it == m.slotName.end() ? "slot " + std::to_string(slot) + " (unknown)"
                             : it->second] = c;
  }
  return d;
}

std::string describeXdp(const XdpResult &x, const Model &m) {
  std::string s = xdpActionName(x.action);
  s += ", " + describe(xdpDecision(m, x));
  if (x.modified)
    s += ", OUTPUT FRAME MODIFIED";
  return s;
}

/// The action the kernel's counters imply: DROP iff a DROP rule or policy
/// counted. (Frames are well formed, so no x_tables hotdrop.)
uint32_t expectedAction(const Model &m, const Decision &kernel) {
  for (const auto &[key, c] : kernel) {
    auto t = m.target.find(key);
    if (c.packets && t != m.target.end() && t->second == "DROP")
      return XdpDrop;
  }
  return XdpPass;
}

/// Whether the kernel counted a REJECT rule for the frame (which then ended
/// its traversal: REJECT drops).
bool kernelRejected(const Model &m, const Decision &kernel) {
  for (const auto &[key, c] : kernel) {
    auto t = m.target.find(key);
    if (c.packets && t != m.target.end() && t->second == "REJECT")
      return true;
  }
  return false;
}

Decision select(const Model &m, const Decision &d, bool post) {
  Decision out;
  for (const auto &[key, c] : d) {
    auto p = m.phase.find(chainOfKey(key));
    const int ph = p == m.phase.end() ? 1 : p->second;
    if ((ph != 0) == post)
      out[key] = c;
  }
  return out;
}

enum class Verdict { Agree, Known, Mismatch };

struct Tally {
  int rulesets = 0, frames = 0, mismatches = 0, setupFailures = 0, refused = 0,
      structure = 0;
  std::map<std::string, int> known; // frames per known divergence
};

const char *const KnownFragmentPorts =
    "nft reads transport fields from non-first fragments";
const char *const KnownFullRange =
    "nft drops an inverted full port range (! --Xport 0:65535)";
const char *const KnownTcpFlagsNone =
    "iptables-nft 1.8.9 drops --tcp-flags NONE X (mask 0): it matches "
    "every TCP packet";
const char *const KnownAuthHeader =
    "ip6tables-nft stops the header walk at AH (IP6_FH_F_AUTH): -p and "
    "ports see protocol 51";
const char *const KnownTwoBuckets =
    "-m limit: XDP's bucket counts the packets XDP drops, the kernel's every "
    "packet (docs/handover.md, \"Rate-limited LOG\")";
const char *const KnownUnreassembled =
    "INPUT judged on the first fragment of a datagram PREROUTING stops later";

/// Whether the kernel's and XDP's counts of a frame differ only in rules
/// whose count an -m limit bucket decides (Model::bucketKeys).
bool onlyBuckets(const Model &m, const Decision &a, const Decision &b) {
  std::set<std::string> keys;
  for (const auto &[k, _] : a)
    keys.insert(k);
  for (const auto &[k, _] : b)
    keys.insert(k);
  for (const std::string &k : keys) {
    auto x = a.find(k), y = b.find(k);
    bool same = x != a.end() && y != b.end() && x->second == y->second;
    if (!same && !m.bucketKeys.count(k))
      return false;
  }
  return true;
}

struct FrameRun {
  std::vector<uint8_t> bytes;
  Decision kernel;
  XdpResult xdp;
};

/// One ruleset to test and where its datagrams come from.
struct Case {
  RulesetSpec rs;
  std::string id;     // "v4 #3", "host4.rules"
  std::string replay; // the command that replays it
  std::vector<DatagramSpec> fixed;
  uint64_t frameStream = 0;
  std::string setsPath, setsText; // rulesets/X.sets: ipset sets for -m set
};

} // namespace

int main(int argc, char **argv) {
  Options opt = parseOptions(argc, argv);
  std::vector<Backend> backends;
  if (opt.legacy)
    backends.push_back(Backend::Legacy);
  if (opt.nft)
    backends.push_back(Backend::Nft);
  const std::string backendArg = opt.legacy && opt.nft ? "both"
                                 : opt.legacy          ? "legacy"
                                                       : "nft";

  std::cout << "diff_kernel: seed " << opt.seed << ", ";
  if (opt.only >= 0)
    std::cout << "only random "
              << (opt.onlyFamily == Family::V4 ? "IPv4" : "IPv6") << " ruleset "
              << opt.only;
  else
    std::cout << opt.files.size() << " fixed rulesets, " << opt.rulesets
              << " random IPv4 and " << opt.rulesets6
              << " random IPv6 rulesets";
  std::cout << ", " << opt.packets
            << " random datagrams per ruleset, back ends " << backendArg
            << (opt.wide ? ", wide destinations" : "") << ", compiler "
            << opt.compiler << "\n"
            << std::flush;
  const auto start = std::chrono::steady_clock::now();

  // Tally per (back end, family).
  std::map<std::pair<Backend, Family>, Tally> tally;
  int passed = 0, failed = 0, reports = 0, knownReports = 0, bothRefused = 0;
  // --handover: the share of frames XDP decided itself.
  int handoverFrames = 0, handoverDecided = 0;
  // Frames sent again after stray packets moved a counter in their window.
  int strayResends = 0;
  std::string setupError;

  auto report = [&](const std::string &text) {
    if (reports++ < opt.maxReports)
      std::cout << text << std::flush;
    else if (reports == opt.maxReports + 1)
      std::cout << "(further mismatch reports suppressed; see --max-reports)\n";
  };
  auto knownReport = [&](const std::string &text) {
    if (knownReports++ < 3)
      std::cout << text << std::flush;
  };

  const std::string common = " --packets " + std::to_string(opt.packets) +
                             " --backend " + backendArg +
                             (opt.wide ? " --wide" : "");
  std::vector<Case> cases;
  try {
    for (size_t i = 0; i < opt.files.size(); ++i) {
      Case c;
      c.rs = rulesetFromFile(opt.files[i]);
      c.id = c.rs.name;
      c.replay = "diff_kernel --seed " + std::to_string(opt.seed) +
                 " --rulesets 0 --rulesets6 0 --file " + opt.files[i] + common;
      c.frameStream = 1000000 + 2 * i;
      std::string framesPath = opt.files[i];
      if (framesPath.size() > 6 &&
          framesPath.compare(framesPath.size() - 6, 6, ".rules") == 0)
        framesPath = framesPath.substr(0, framesPath.size() - 6) + ".frames";
      if (framesPath != opt.files[i]) {
        std::string stem = framesPath.substr(0, framesPath.size() - 7);
        std::ifstream sf(stem + ".sets");
        if (sf) {
          c.setsPath = stem + ".sets";
          c.setsText.assign(std::istreambuf_iterator<char>(sf), {});
        }
      }
      std::ifstream ff(framesPath);
      unsigned lineNo = 0;
      for (std::string line; ff && std::getline(ff, line);) {
        ++lineNo;
        size_t hash = line.find('#');
        if (hash != std::string::npos)
          line = line.substr(0, hash);
        if (line.find_first_not_of(" \t") == std::string::npos)
          continue;
        try {
          c.fixed.push_back(parseDatagram(line, c.rs.family));
        } catch (const std::exception &e) {
          throw std::runtime_error(framesPath + ":" + std::to_string(lineNo) +
                                   ": " + e.what());
        }
      }
      cases.push_back(std::move(c));
    }
    for (Family fam : {Family::V4, Family::V6}) {
      const int n = fam == Family::V4 ? opt.rulesets : opt.rulesets6;
      const uint64_t base = fam == Family::V4 ? 0 : 2;
      int from = 0, to = n;
      if (opt.only >= 0) {
        if (fam != opt.onlyFamily)
          continue;
        from = opt.only;
        to = opt.only + 1;
      }
      for (int k = from; k < to; ++k) {
        Case c;
        Rng rng(opt.seed, 4 * uint64_t(k) + base);
        c.rs = makeRuleset(rng, fam, opt.handover);
        c.id = std::string(fam == Family::V4 ? "v4" : "v6") + " #" +
               std::to_string(k);
        c.replay = "diff_kernel --seed " + std::to_string(opt.seed) +
                   " --only " + std::to_string(k) + " --family " +
                   (fam == Family::V4 ? "4" : "6") + common;
        c.frameStream = 4 * uint64_t(k) + base + 1;
        cases.push_back(std::move(c));
      }
    }
  } catch (const std::exception &e) {
    std::cerr << "diff_kernel: " << e.what() << "\n";
    return 2;
  }

  try {
    if (geteuid() != 0)
      throw std::runtime_error("needs root (namespaces, iptables, BPF)");
    if (access(opt.compiler.c_str(), X_OK) != 0)
      throw std::runtime_error("the compiler " + opt.compiler +
                               " is not executable: " + std::strerror(errno));
    char tmpl[] = "/tmp/r2x-diff-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    const std::string tmpdir = tmpl;
    const std::string rulesPath = tmpdir + "/ruleset.rules";
    struct RemoveDir {
      std::string dir, file;
      ~RemoveDir() {
        unlink(file.c_str());
        rmdir(dir.c_str());
      }
    } removeDir{tmpdir, rulesPath};

    Topology topo;
    Netfilter nf("/run/netns/" + topo.nameB());
    uint16_t ipId = uint16_t(0x1000 + opt.seed * 977);

    for (const Case &cs : cases) {
      const RulesetSpec &rs = cs.rs;
      const Family fam = rs.family;
      std::string line = "[" + cs.id + "]";
      const std::string rulesetText = "  ruleset:\n    " + [&] {
        std::string t;
        for (char ch : rs.text)
          t += ch == '\n' ? std::string("\n    ") : std::string(1, ch);
        return t;
      }() + "\n";
      if (opt.showRulesets)
        std::cout << "[" << cs.id << "]\n" << rulesetText;
      {
        std::ofstream out(rulesPath);
        out << rs.text;
        if (!out)
          throw std::runtime_error("cannot write " + rulesPath);
      }
      std::vector<std::string> words;
      if (fam == Family::V6)
        words.push_back("-6");
      words.insert(words.end(), {"-f", rulesPath});
      if (opt.handover)
        words.push_back("--pass-unsupported");
      if (!cs.setsPath.empty()) {
        words.insert(words.end(), {"--sets", cs.setsPath});
        if (std::string err = nf.restoreSets(cs.setsText); !err.empty())
          throw std::runtime_error(cs.setsPath + ": " + err);
      }

      std::unique_ptr<XdpProgram> prog;
      try {
        prog = std::make_unique<XdpProgram>(opt.compiler, words,
                                            tmpdir + "/ruleset.o");
      } catch (const CompileError &e) {
        // Refused (exit 1): does iptables take it? Then rule2xdp refused a
        // valid ruleset. Any other exit is the compiler failing.
        std::string kind = "COMPILER FAILURE";
        std::string nfErr;
        if (e.status == 1) {
          bool refused = false;
          nfErr = nf.install(Backend::Legacy, fam, rs.text, refused);
          if (!nfErr.empty() && refused) {
            // Both refuse it: the generator made an invalid ruleset on
            // purpose (e.g. `! -s A -d B,C`) and rule2xdp agrees.
            ++bothRefused;
            std::cout << line << " refused by iptables and rule2xdp alike\n";
            continue;
          }
          kind = nfErr.empty() ? "GRAMMAR MISMATCH"
                               : "TEST BUG (invalid ruleset generated)";
          if (nfErr.empty())
            nfErr = "accepts it";
        }
        ++failed;
        for (Backend b : backends)
          ++tally[{b, fam}].setupFailures;
        report(kind + " seed " + std::to_string(opt.seed) + " " + cs.id + "\n" +
               rulesetText + "  " + e.what() +
               (nfErr.empty() ? "" : "\n  iptables-legacy-restore: " + nfErr) +
               "\n  replay: " + cs.replay + "\n");
        std::cout << line << " NOT COMPILED\n";
        continue;
      } catch (const std::exception &e) {
        ++failed;
        for (Backend b : backends)
          ++tally[{b, fam}].setupFailures;
        report("LOAD FAILURE seed " + std::to_string(opt.seed) + " " + cs.id +
               "\n" + rulesetText + "  " + e.what() +
               "\n  replay: " + cs.replay + "\n");
        std::cout << line << " NOT LOADED\n";
        continue;
      }
      const Model model = modelOf(prog->meta());

      // The datagrams: the fixed ones, then random ones (the same for both
      // back ends; fresh IP ids).
      std::vector<DatagramSpec> specs = cs.fixed;
      {
        Rng frameRng(opt.seed, cs.frameStream);
        for (int i = 0; i < opt.packets; ++i) {
          DatagramSpec d = makeDatagramSpec(
              frameRng, fam,
              opt.wide ? DestinationSet::Wide : DestinationSet::Standard);
          // Compiler bug B4 (docs/differential.md): the program judges
          // INPUT's -m length on the first fragment's length, the kernel on
          // the reassembled datagram's. Not sent where it would show.
          if (fam == Family::V4 && d.local && d.fragments &&
              rs.lengthAfterRouting)
            d.fragments = 0;
          specs.push_back(d);
        }
      }

      // Each back end's decision per (datagram, frame), to check a known
      // divergence of one against the other.
      std::map<Backend, std::map<std::pair<size_t, size_t>, Decision>> seen;
      std::map<Backend, std::map<size_t, Decision>> seenSum;
      for (Backend b : backends) {
        Tally &t = tally[{b, fam}];
        ++t.rulesets;
        const std::string bname = b == Backend::Legacy ? "legacy" : "nft";
        bool refused = false;
        if (std::string err = nf.install(b, fam, rs.text, refused);
            !err.empty()) {
          ++failed;
          ++(refused ? t.refused : t.setupFailures);
          report(std::string(refused ? "GRAMMAR MISMATCH" : "SETUP FAILURE") +
                 " seed " + std::to_string(opt.seed) + " " + cs.id + " " +
                 backendName(b, fam) + "\n" + rulesetText +
                 (refused ? "  rule2xdp compiles it, but " : "  ") + err +
                 "\n  replay: " + cs.replay + "\n");
          line += std::string(" ") + bname +
                  (refused ? " REFUSED BY IPTABLES" : " SETUP FAILED");
          continue;
        }
        // The kernel's rules start with full xt_limit buckets: so do the
        // program's (r2x_limit), as a new load's would.
        prog->resetBuckets();
        Counters counters = nf.read(b, fam);
        // The kernel must hold exactly the program's chains and rules.
        {
          std::set<std::string> kernelKeys, programKeys;
          for (const auto &[key, _] : counters.count)
            if (model.chains.count(chainOfKey(key)))
              kernelKeys.insert(key);
          for (const auto &[key, _] : model.target)
            programKeys.insert(key);
          if (kernelKeys != programKeys) {
            ++failed;
            ++t.structure;
            std::string k, p;
            for (const auto &x : kernelKeys)
              k += " " + x;
            for (const auto &x : programKeys)
              p += " " + x;
            report("STRUCTURE MISMATCH seed " + std::to_string(opt.seed) + " " +
                   cs.id + " " + backendName(b, fam) + "\n" + rulesetText +
                   "  kernel counters: " + k + "\n  program counters:" + p +
                   "\n  metadata:\n" + prog->metaText() + "\n  " +
                   backendName(b, fam) + "-save -c:\n" + counters.text +
                   "  replay: " + cs.replay + "\n");
            line += " " + bname + " STRUCTURE MISMATCH";
            continue;
          }
        }
        int okFrames = 0, allFrames = 0, knownFrames = 0;
        for (size_t i = 0; i < specs.size(); ++i) {
          DatagramSpec spec = specs[i];
          spec.ipId = ipId;
          ipId = uint16_t(ipId + 1);
          const Datagram d = buildDatagram(spec, topo);
          // Hand-over mode sends fragmented datagrams too: XDP must hand
          // every fragment over (the kernel may reassemble it first).
          std::vector<FrameRun> runs;
          bool lost = false;
          for (const auto &bytes : d.frames) {
            FrameRun fr;
            fr.bytes = bytes;
            // A frame passes PREROUTING, INPUT and FORWARD once, so their
            // rules and policies move by one packet at most. More is traffic
            // that is not the test's reaching B in this frame's window
            // (docs/differential.md, "Stray packets"): the window says nothing
            // about the frame, which is sent again, once; the second window is
            // compared.
            for (int attempt = 0; attempt < 2; ++attempt) {
              topo.answerable(spec.src);
              if (!topo.sendAndSettle(spec.in, bytes))
                lost = true;
              Counters now = nf.read(b, fam);
              fr.kernel = kernelDelta(model, counters, now);
              counters = std::move(now);
              if (!strayPackets(fr.kernel))
                break;
              ++strayResends;
              std::cout << "stray packets in the window of " << cs.id << " "
                        << backendName(b, fam) << " datagram " << i << " ("
                        << describe(fr.kernel) << "): sent again\n";
            }
            fr.xdp = prog->run(bytes, topo.routerIfindex(spec.in));
            runs.push_back(std::move(fr));
          }
          const Backend other =
              b == Backend::Legacy ? Backend::Nft : Backend::Legacy;
          auto otherSeen = [&](size_t j) -> const Decision * {
            auto o = seen[other].find({i, j});
            return o == seen[other].end() ? nullptr : &o->second;
          };

          // IPv4 local fragmented datagram: INPUT sees it reassembled.
          // (Hand-over mode checks each fragment: XDP hands it over.)
          const bool whole = !opt.handover && fam == Family::V4 && spec.local &&
                             runs.size() > 1;
          std::vector<Verdict> status(runs.size(), Verdict::Agree);
          std::vector<std::string> knownKind(runs.size());
          std::string why;
          auto fail = [&](size_t j, const std::string &text) {
            status[j] = Verdict::Mismatch;
            why += (runs.size() > 1 ? "fragment " + std::to_string(j + 1) + ": "
                                    : std::string()) +
                   text + "; ";
          };
          // A known nft divergence: nft counted what the program did not,
          // and legacy (if it ran) decided this frame as the program.
          auto nftKnown = [&](size_t j, const Decision &kernel,
                              const Decision &xd) -> std::string {
            if (b != Backend::Nft || kernel == xd)
              return {};
            const Decision *l = otherSeen(j);
            if (l && (whole ? select(model, *l, false) : *l) != xd)
              return {};
            if (rs.hasL4 && fragmentOffset(runs[j].bytes) != 0)
              return KnownFragmentPorts;
            if (hasAuthHeader(runs[j].bytes))
              return KnownAuthHeader;
            if (rs.invertedFullPortRange)
              return KnownFullRange;
            if (rs.tcpFlagsMaskNone)
              return KnownTcpFlagsNone;
            return {};
          };
          Decision ksumPost, xsumPost;
          for (size_t j = 0; j < runs.size(); ++j) {
            const FrameRun &fr = runs[j];
            const XdpResult &x = fr.xdp;
            if (lost)
              fail(j, "B did not process it within " +
                          std::to_string(kSettleTimeoutMs / 1000) +
                          " s (sentinel lost)");
            // Hand-over mode: XDP_TX is a tcp-reset REJECT's RST, the frame
            // rewritten (its bytes are compared with the kernel's RST by
            // test/e2e/reject_reset.sh).
            const bool rst = opt.handover && x.action == XdpTx;
            if (x.action != XdpDrop && x.action != XdpPass && !rst)
              fail(j, std::string("XDP action ") + xdpActionName(x.action));
            if (x.modified && !rst)
              fail(j, "XDP modified the frame");
            seen[b][{i, j}] = fr.kernel;
            Decision xd = xdpDecision(model, x);
            Decision kd = fr.kernel;
            if (whole) {
              addInto(ksumPost, select(model, kd, true));
              addInto(xsumPost, select(model, xd, true));
              if (j > 0 && !select(model, xd, true).empty())
                fail(j, "a non-first fragment counted after the routing "
                        "decision (INPUT sees the datagram)");
              kd = select(model, kd, false);
              xd = select(model, xd, false);
            }
            if (opt.handover) {
              // Sound hand-over: a drop is the kernel's drop, counted as
              // the kernel counts it (nothing counted: a hotdrop, which
              // counts nothing in the kernel either); a pass counts nothing.
              if (x.action == XdpDrop || rst) {
                ++handoverDecided;
                std::string kind;
                if (xd != kd && status[j] == Verdict::Agree &&
                    !(kind = nftKnown(j, kd, xd)).empty()) {
                  // nft's known divergence; legacy decided as XDP did.
                  status[j] = Verdict::Known;
                  knownKind[j] = kind;
                } else if (xd != kd && status[j] == Verdict::Agree &&
                           !opt.exactBuckets && onlyBuckets(model, kd, xd)) {
                  // The kernel's bucket also saw the frames XDP hands over
                  // (this harness sends every frame to the kernel).
                  status[j] = Verdict::Known;
                  knownKind[j] = KnownTwoBuckets;
                } else if (xd != kd)
                  fail(j, std::string("XDP ") + (rst ? "rejected" : "dropped") +
                              " it but counted other rules than the kernel");
                else if (rst && !kernelRejected(model, kd))
                  fail(j, "XDP sent a RST where the kernel's REJECT did not "
                          "count it");
                else if (!rst && !kd.empty() &&
                         expectedAction(model, kd) != XdpDrop &&
                         !kernelRejected(model, kd)) // a RST REJECT drops
                  fail(j, "XDP dropped what the kernel accepts");
              } else if (!xd.empty()) {
                fail(j, "XDP counted a packet it handed over");
              }
              ++handoverFrames;
              continue;
            }
            const bool countersDiffer = xd != kd;
            // With `whole`, the first fragment's action is checked below.
            const bool actionDiffers =
                !(whole && j == 0) && x.action != expectedAction(model, kd);
            if (!countersDiffer && !actionDiffers)
              continue;
            if (status[j] == Verdict::Agree) {
              std::string kind = nftKnown(j, kd, xd);
              if (!kind.empty()) {
                status[j] = Verdict::Known;
                knownKind[j] = kind;
                continue;
              }
            }
            if (countersDiffer)
              fail(j, "counters differ");
            if (actionDiffers)
              fail(j, "action differs from the kernel's verdict");
          }
          if (whole) {
            // After the routing decision: kernel INPUT on the reassembled
            // datagram vs the program on the first fragment, packets only.
            Decision kpre0 = select(model, runs[0].kernel, false);
            Decision kverdict = kpre0;
            addInto(kverdict, ksumPost);
            const bool countersDiffer =
                packetsOnly(ksumPost) != packetsOnly(xsumPost);
            const bool actionDiffers =
                runs[0].xdp.action != expectedAction(model, kverdict);
            const bool laterDropped = [&] {
              for (size_t j = 1; j < runs.size(); ++j)
                if (expectedAction(model, runs[j].kernel) == XdpDrop &&
                    runs[j].xdp.action == XdpDrop)
                  return true;
              return false;
            }();
            const bool anyBad = std::find(status.begin(), status.end(),
                                          Verdict::Mismatch) != status.end();
            std::string kind;
            if ((countersDiffer || actionDiffers) && !anyBad) {
              if (ksumPost.empty() && laterDropped)
                kind = KnownUnreassembled;
              else if (b == Backend::Nft) {
                // As nftKnown(), on the datagram: legacy (if it ran) saw
                // what the program saw.
                bool legacyAgrees = true;
                Decision lsum;
                for (size_t j = 0; j < runs.size(); ++j)
                  if (const Decision *l = otherSeen(j))
                    addInto(lsum, select(model, *l, true));
                  else
                    legacyAgrees = false;
                legacyAgrees = legacyAgrees || seen[other].empty();
                if (!seen[other].empty())
                  legacyAgrees = packetsOnly(lsum) == packetsOnly(xsumPost);
                if (legacyAgrees && rs.invertedFullPortRange)
                  kind = KnownFullRange;
                else if (legacyAgrees && rs.tcpFlagsMaskNone)
                  kind = KnownTcpFlagsNone;
              }
            }
            if (!kind.empty()) {
              std::fill(status.begin(), status.end(), Verdict::Known);
              std::fill(knownKind.begin(), knownKind.end(), kind);
            } else if (countersDiffer || actionDiffers) {
              if (countersDiffer)
                why += "datagram counters after the routing decision differ "
                       "(kernel: " +
                       describe(ksumPost, false) +
                       " after reassembly; xdp: " + describe(xsumPost, false) +
                       " on the first fragment); ";
              if (actionDiffers)
                why += "the first fragment's action differs from the "
                       "kernel's verdict on the datagram; ";
              std::fill(status.begin(), status.end(), Verdict::Mismatch);
            }
          }

          int bad = 0, known = 0;
          for (Verdict v : status) {
            bad += v == Verdict::Mismatch;
            known += v == Verdict::Known;
          }
          allFrames += int(runs.size());
          okFrames += int(runs.size()) - bad - known;
          knownFrames += known;
          t.frames += int(runs.size());
          t.mismatches += bad;
          for (size_t j = 0; j < runs.size(); ++j)
            if (status[j] == Verdict::Known)
              ++t.known[knownKind[j]];
          passed += int(runs.size()) - bad - known;
          failed += bad;

          if (bad || known || opt.verbose) {
            std::ostringstream r;
            r << (bad     ? "MISMATCH"
                  : known ? "KNOWN DIVERGENCE"
                          : "ok")
              << " seed " << opt.seed << " " << cs.id << " datagram " << i
              << (i < cs.fixed.size() ? " (fixed)" : "") << " back end "
              << backendName(b, fam) << "\n";
            if (bad || known)
              r << rulesetText;
            r << "  datagram: " << d.summary << "\n";
            for (size_t j = 0; j < runs.size(); ++j) {
              const FrameRun &fr = runs[j];
              r << "  frame " << j + 1 << "/" << runs.size() << " ("
                << fr.bytes.size() << " bytes"
                << (status[j] == Verdict::Known
                        ? ", known divergence: " + knownKind[j]
                        : std::string())
                << (status[j] == Verdict::Mismatch ? ", MISMATCH" : "")
                << "):\n"
                << r2x::test::hexDump(fr.bytes) << "\n"
                << "    kernel: " << describe(fr.kernel) << " => "
                << xdpActionName(expectedAction(model, fr.kernel)) << "\n"
                << "    xdp:    " << describeXdp(fr.xdp, model) << "\n";
              if (status[j] == Verdict::Known) {
                const Decision *o = otherSeen(j);
                r << "    " << backendName(other, fam) << ": "
                  << (o ? describe(*o) : std::string("(not run yet)")) << "\n";
              }
            }
            if (bad)
              r << "  why:      " << why << "\n";
            if (bad || known)
              r << "  replay:   " << cs.replay << "\n";
            if (bad)
              report(r.str());
            else if (known && !opt.verbose)
              knownReport(r.str());
            else
              std::cout << r.str();
          }
        }
        line += " " + bname + " " + std::to_string(okFrames) + "/" +
                std::to_string(allFrames) +
                (knownFrames ? " (" + std::to_string(knownFrames) + " known)"
                             : std::string());
      }
      std::cout << line << "\n" << std::flush;
    }
    nf.reset();
  } catch (const std::exception &e) {
    setupError = e.what();
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!setupError.empty()) {
    ++failed;
    std::cout << "SETUP FAILURE: " << setupError << "\n";
  }
  for (Family fam : {Family::V4, Family::V6})
    for (Backend b : backends) {
      auto it = tally.find({b, fam});
      if (it == tally.end())
        continue;
      const Tally &t = it->second;
      int known = 0;
      for (const auto &[_, n] : t.known)
        known += n;
      std::cout << backendName(b, fam) << ": " << t.rulesets << " rulesets, "
                << t.frames << " frames, " << t.mismatches << " mismatches, "
                << known << " known divergences, " << t.refused
                << " rulesets compiled by rule2xdp but refused by iptables, "
                << t.structure << " structure mismatches, " << t.setupFailures
                << " setup/compile failures\n";
      for (const auto &[kind, n] : t.known)
        std::cout << "  known divergence (" << kind << "): " << n
                  << " frames, counted neither passed nor failed\n";
    }
  if (strayResends)
    std::cout << strayResends
              << " frames sent again: stray packets moved a PREROUTING, INPUT "
                 "or FORWARD counter in their window\n";
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", seconds);
  if (bothRefused)
    std::cout
        << bothRefused
        << " invalid rulesets refused by both iptables-restore and rule2xdp\n";
  if (opt.handover)
    std::cout << "hand-over: XDP decided (dropped) " << handoverDecided
              << " of " << handoverFrames << " frames, handed over the rest\n";
  std::cout << "time: " << secs << " s\n"
            << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
