//===- test/diff/diff_kernel.cpp - rule2xdp against the kernel's netfilter ===//
//
/// \file
/// `diff_kernel`: the differential test of rule2xdp against the kernel. For
/// one iptables rule at a time, the kernel's netfilter (iptables-legacy, then
/// iptables-nft) and rule2xdp's compiled XDP program must decide the same
/// frames the same way.
///
///   diff_kernel [--seed N] [--rules N] [--packets N] [--backend B]
///               [--only K | --rule "WORDS"] [--wide] [--compiler PATH]
///               [--max-reports N] [-v]
///
/// CTest runs `diff_kernel --seed 1 --rules 40 --packets 12` (seconds).
/// A long campaign is the same with more rules and/or other seeds, e.g.
///   diff_kernel --seed 7 --rules 2000 --packets 16
/// A mismatch report ends with the command that replays just that ruleset
/// (`--seed S --only K --backend B`).
///
/// How (details in Topology.h, Netfilter.h, XdpSide.h, Generate.h):
///  - namespaces A, B, C made for this run; B routes between 10.1.0.0/24
///    (b0, towards A) and 10.1.1.0/24 (b1, towards C), default route via C;
///  - for each random rule R: compile it with rule2xdp and load the object
///    in B (nothing attached); install R in B with one back end (the other
///    flushed) and send each test frame from A (on a0) or C (on c0) with an
///    AF_PACKET socket, followed by a sentinel frame that proves B has
///    processed it; read `iptables-save -c` of R's table: which counter moved
///    (R's rule, the policy of INPUT/FORWARD/PREROUTING, or none);
///  - run the same frame through the program with BPF_PROG_TEST_RUN as if
///    received on b0/b1 in B and read which `r2x_counters` slot moved;
///  - compare: the same counters (by meaning: the rule, or the same chain's
///    policy, or none), byte counts where both saw the same packet, and the
///    action (XDP_DROP iff the kernel's deciding target is DROP, XDP_PASS
///    otherwise; never anything else, never a modified frame).
///
/// Fragmented datagrams are sent whole. raw PREROUTING and FORWARD see every
/// fragment, so those are compared frame by frame; INPUT sees the datagram
/// once, reassembled, so a local datagram under a filter rule is compared as
/// a whole: the kernel's INPUT counters against the program's decision on the
/// first fragment (the other fragments: XDP_PASS, no counter), packets only.
///
/// Known divergences, counted apart (neither passed nor failed):
///  1. (design.md, "Short L4 headers") iptables-nft matches ports natively
///     and does not hotdrop a truncated TCP/UDP header as x_tables does;
///     this test generates no such frames.
///  2. iptables-nft 1.8.9 also compiles --sport/--dport to a transport
///     header payload load, and nf_tables on this kernel serves it from a
///     non-first fragment's payload: `-p udp --dport N` matches a fragment
///     whose payload happens to hold N at offset 2. x_tables never matches a
///     port on a non-first fragment, and neither does rule2xdp. A frame is
///     put in this class only if it is a non-first fragment, the rule has a
///     port match, nft counted the rule and the program did not, and (when
///     both back ends ran) iptables-legacy decided it exactly as the program.
/// Every other difference is a failure.
///
/// Prints every mismatch (seed, back end, rule, frames in hex, both
/// decisions), one line per ruleset, a summary per back end, and finally
/// `N passed, M failed` (frames). Exits non-zero on any mismatch or setup
/// failure. Needs root, BPF and namespaces; without them it fails, it never
/// skips.
//===----------------------------------------------------------------------===//
#include "test/diff/Generate.h"
#include "test/diff/Netfilter.h"
#include "test/diff/XdpSide.h"
#include "test/packet/Frame.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
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
and iptables-nft), rule by rule, frame by frame.

usage: diff_kernel [options]
  --seed N          seed of the rules and frames (default 1)
  --rules N         random rules (rulesets of one rule) to test (default 40)
  --packets N       datagrams per rule (default 12; a fragmented datagram
                    is 2-3 frames)
  --backend B       legacy, nft or both (default both)
  --only K          test only rule K (0-based) of this seed: replays a report
  --rule "WORDS"    test this rule (e.g. "-A INPUT -p udp -j DROP") against
                    the datagrams of rule 0 of the seed, instead of random
                    rules
  --wide            also send to 255.255.255.255, 224.0.0.1, 127.0.0.1 and
                    0.0.0.0 (limited broadcast, multicast, martians)
  --compiler PATH   the rule2xdp binary (default: the one built with this test)
  --max-reports N   print at most N mismatch reports (default 30); all count
  -v, --verbose     print every datagram and both decisions
  -h, --help        this text

The CTest run is `diff_kernel --seed 1 --rules 40 --packets 12`. A long
campaign: `diff_kernel --seed 7 --rules 2000 --packets 16` (try other seeds).
Needs root with BPF; makes namespaces r2xd-PID-{A,B,C} and removes them.

Reports: MISMATCH (kernel and program decided a frame differently),
GRAMMAR MISMATCH (one of rule2xdp and iptables accepts a rule the other
refuses), LOAD/COMPILER/SETUP FAILURE. Known divergences of iptables-nft
(ports read from non-first fragments; `! --dport 0:65535` dropped) are
counted apart, neither passed nor failed. Ends with `N passed, M failed`
(frames compared); exit status 1 on any failure.
)";

struct Options {
  uint64_t seed = 1;
  int rules = 40, packets = 12, only = -1, maxReports = 30;
  bool legacy = true, nft = true, wide = false, verbose = false;
  std::string compiler = R2X_COMPILER;
  std::string rule; // --rule
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
    else if (a == "--rules")
      o.rules = int(number(1));
    else if (a == "--packets")
      o.packets = int(number(1));
    else if (a == "--only")
      o.only = int(number(0));
    else if (a == "--max-reports")
      o.maxReports = int(number(0));
    else if (a == "--compiler")
      o.compiler = value();
    else if (a == "--rule")
      o.rule = value();
    else if (a == "--wide")
      o.wide = true;
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
  if (!o.rule.empty()) {
    o.only = 0;
    o.rules = 1;
  }
  if (o.only >= 0)
    o.rules = o.only + 1; // the loop runs rules [only, rules)
  return o;
}

/// Counter increments by meaning: "rule", or "CHAIN policy".
using Decision = std::map<std::string, Count>;

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

/// What the program is compared on: its chains, its rule's slot and target.
struct Model {
  std::string table, ruleChain, target;
  unsigned ruleSlot = 0;
  std::vector<std::string> chains;
  std::map<unsigned, std::string> slotName;
};

Model modelOf(const r2x::runtime::Meta &meta) {
  Model m;
  for (const auto &c : meta.chains) {
    m.table = c.table;
    m.chains.push_back(c.name);
    if (c.slot >= 0)
      m.slotName[unsigned(c.slot)] = c.name + " policy";
    for (const auto &r : c.rules) {
      m.ruleChain = c.name;
      m.target = r.target;
      m.ruleSlot = r.slot;
      m.slotName[r.slot] = "rule";
    }
  }
  return m;
}

Decision kernelDelta(const Model &m, const TableCounters &before,
                     const TableCounters &after) {
  Decision d;
  auto add = [&](const std::string &name, const Count &b, const Count &a) {
    if (!(a == b))
      d[name] = {a.packets - b.packets, a.bytes - b.bytes};
  };
  for (const std::string &chain : m.chains) {
    auto b = before.policy.find(chain), a = after.policy.find(chain);
    if (b == before.policy.end() || a == after.policy.end())
      throw std::runtime_error("chain " + chain + " vanished from:\n" +
                               after.text);
    add(chain + " policy", b->second, a->second);
  }
  if (before.rules.size() != 1 || after.rules.size() != 1)
    throw std::runtime_error("the rule vanished from:\n" + after.text);
  add("rule", before.rules[0].second, after.rules[0].second);
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

std::string describeXdp(const Model &m, const XdpResult &x) {
  std::string s = xdpActionName(x.action);
  if (x.counters.empty())
    return s + ", no counter";
  for (const auto &[slot, c] : x.counters) {
    auto it = m.slotName.find(slot);
    s += ", slot " + std::to_string(slot) + " (" +
         (it == m.slotName.end() ? "?" : it->second) + ") +" +
         std::to_string(c.packets) + " pkt " + std::to_string(c.bytes) + " B";
  }
  if (x.modified)
    s += ", OUTPUT FRAME MODIFIED";
  return s;
}

/// The action the kernel's decision implies.
uint32_t expectedAction(const Model &m, const Decision &kernel) {
  auto it = kernel.find("rule");
  return it != kernel.end() && it->second.packets > 0 && m.target == "DROP"
             ? XdpDrop
             : XdpPass;
}

enum class Verdict { Agree, Known, Mismatch };

/// The fragment offset (8-byte units) of an untagged IPv4 frame.
unsigned fragOffset(const std::vector<uint8_t> &frame) {
  return frame.size() >= 22 ? (unsigned(frame[20] & 0x1f) << 8 | frame[21])
                            : 0;
}

struct Tally {
  int rulesets = 0, frames = 0, mismatches = 0, setupFailures = 0,
      refused = 0;
  std::map<std::string, int> known; // frames per known divergence
  std::map<std::string, std::pair<int, int>> byDst; // frames, mismatches
};

const char *const KnownFragmentPorts =
    "nft reads ports from non-first fragments";
const char *const KnownFullRange =
    "nft drops an inverted full port range (! --Xport 0:65535)";

/// The known divergence (file comment) a frame's disagreement belongs to,
/// or "". Both are iptables-nft's: the kernel counted the rule with nft
/// where x_tables would not, so it is always "nft matched the rule, the
/// program did not", with iptables-legacy (if it ran) agreeing with the
/// program on the same frame.
std::string knownDivergence(Backend b, const RuleSpec &rule,
                            const std::vector<uint8_t> &frame,
                            const Decision &kernel, const Decision &xdp,
                            const Decision *legacy) {
  if (b != Backend::Nft || !kernel.count("rule") || xdp.count("rule"))
    return {};
  if (legacy && *legacy != xdp)
    return {};
  if (rule.hasPorts && fragOffset(frame) != 0)
    return KnownFragmentPorts;
  if (rule.invertedFullPortRange)
    return KnownFullRange;
  return {};
}


struct FrameRun {
  std::vector<uint8_t> bytes;
  Decision kernel;
  XdpResult xdp;
};

} // namespace

int main(int argc, char **argv) {
  Options opt = parseOptions(argc, argv);
  std::vector<Backend> backends;
  if (opt.legacy)
    backends.push_back(Backend::Legacy);
  if (opt.nft)
    backends.push_back(Backend::Nft);
  const char *backendArg =
      opt.legacy && opt.nft ? "both" : opt.legacy ? "legacy" : "nft";

  std::cout << "diff_kernel: seed " << opt.seed << ", "
            << (!opt.rule.empty() ? "rule " + opt.rule
                : opt.only >= 0 ? "only rule " + std::to_string(opt.only)
                                : std::to_string(opt.rules) + " rules")
            << ", " << opt.packets << " datagrams per rule, back ends "
            << backendArg << (opt.wide ? ", wide destinations" : "")
            << ", compiler " << opt.compiler << "\n"
            << std::flush;
  const auto start = std::chrono::steady_clock::now();

  std::map<Backend, Tally> tally;
  int passed = 0, failed = 0, reports = 0, knownReports = 0;
  std::string setupError;

  auto report = [&](const std::string &text) {
    if (reports++ < opt.maxReports)
      std::cout << text << std::flush;
    else if (reports == opt.maxReports + 1)
      std::cout << "(further mismatch reports suppressed; see --max-reports)\n";
  };
  // Known divergences are counted, not failures; a few are shown in full.
  auto knownReport = [&](const std::string &text) {
    if (knownReports++ < 3)
      std::cout << text << std::flush;
  };

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
    struct RemoveDir {
      std::string dir;
      ~RemoveDir() { rmdir(dir.c_str()); }
    } removeDir{tmpdir};

    Topology topo;
    Netfilter nf("/run/netns/" + topo.nameB());
    uint16_t ipId = uint16_t(0x1000 + opt.seed * 977);

    for (int k = opt.only >= 0 ? opt.only : 0; k < opt.rules; ++k) {
      Rng ruleRng(opt.seed, 2 * uint64_t(k));
      RuleSpec rule =
          opt.rule.empty() ? makeRule(ruleRng) : ruleFromText(opt.rule);
      const std::string replay =
          "diff_kernel --seed " + std::to_string(opt.seed) +
          (opt.rule.empty() ? " --only " + std::to_string(k)
                            : " --rule '" + opt.rule + "'") +
          " --packets " + std::to_string(opt.packets);
      std::string line = "[" + std::to_string(k) + "] " + rule.text + ":";

      std::unique_ptr<XdpProgram> prog;
      try {
        prog = std::make_unique<XdpProgram>(
            opt.compiler, rule.words, tmpdir + "/rule" + std::to_string(k) + ".o");
      } catch (const CompileError &e) {
        // Refused (exit 1): does iptables take it? Then rule2xdp refused a
        // valid rule. Any other exit is the compiler failing.
        std::string kind = "COMPILER FAILURE";
        std::string nfErr;
        if (e.status == 1) {
          nfErr = nf.install(Backend::Legacy, rule.words, rule.table, {});
          kind = nfErr.empty() ? "GRAMMAR MISMATCH"
                               : "TEST BUG (invalid rule generated)";
          if (nfErr.empty())
            nfErr = "accepts it";
        }
        ++failed;
        for (Backend b : backends)
          ++tally[b].setupFailures;
        report(kind + " seed " + std::to_string(opt.seed) + " rule " +
               std::to_string(k) + ": " + rule.text + "\n  " + e.what() +
               (nfErr.empty() ? "" : "\n  iptables-legacy: " + nfErr) +
               "\n  replay: " + replay + "\n");
        std::cout << line << " NOT COMPILED\n";
        continue;
      } catch (const std::exception &e) {
        // Compiled, but libbpf/the verifier refused it or the object
        // breaks the contract: a rule2xdp bug.
        ++failed;
        for (Backend b : backends)
          ++tally[b].setupFailures;
        report("LOAD FAILURE seed " + std::to_string(opt.seed) + " rule " +
               std::to_string(k) + ": " + rule.text + "\n  " + e.what() +
               "\n  replay: " + replay + "\n");
        std::cout << line << " NOT LOADED\n";
        continue;
      }
      const Model model = modelOf(prog->meta());
      if (model.table != rule.table)
        throw std::runtime_error("rule " + rule.text +
                                 ": the metadata puts it in table " +
                                 model.table + "\n" + prog->metaText());

      // Legacy's decision per (datagram, frame), to check a known nft
      // divergence against.
      std::map<std::pair<int, size_t>, Decision> legacySeen;
      for (Backend b : backends) {
        Tally &t = tally[b];
        ++t.rulesets;
        const std::string bname = b == Backend::Legacy ? "legacy" : "nft";
        if (std::string err = nf.install(b, rule.words, rule.table,
                                         model.chains);
            !err.empty()) {
          // rule2xdp compiled it: iptables refusing it is a grammar
          // mismatch (rule2xdp accepts what iptables does not).
          const bool refused =
              err.rfind("iptables refused the rule", 0) == 0;
          ++failed;
          ++(refused ? t.refused : t.setupFailures);
          report(std::string(refused ? "GRAMMAR MISMATCH" : "SETUP FAILURE") +
                 " seed " + std::to_string(opt.seed) + " rule " +
                 std::to_string(k) + " " + backendName(b) + ": " + rule.text +
                 (refused ? "\n  rule2xdp compiles it, but " : "\n  ") + err +
                 "\n  replay: " + replay + " --backend " + bname + "\n");
          line += " " + bname + (refused ? " REFUSED BY IPTABLES"
                                         : " SETUP FAILED");
          continue;
        }
        TableCounters counters = nf.read(b, rule.table);
        int okFrames = 0, allFrames = 0, knownFrames = 0;
        // The same datagrams for both back ends (fresh IP ids).
        Rng frameRng(opt.seed, 2 * uint64_t(k) + 1);
        for (int i = 0; i < opt.packets; ++i) {
          Datagram d = makeDatagram(frameRng, topo, ipId,
                                    opt.wide ? DestinationSet::Wide
                                             : DestinationSet::Standard);
          ipId = uint16_t(ipId + 1);
          std::vector<FrameRun> runs;
          bool lost = false;
          for (const auto &bytes : d.frames) {
            FrameRun fr;
            fr.bytes = bytes;
            if (!topo.sendAndSettle(d.in, bytes))
              lost = true;
            TableCounters now = nf.read(b, rule.table);
            fr.kernel = kernelDelta(model, counters, now);
            counters = now;
            fr.xdp = prog->run(bytes, topo.routerIfindex(d.in));
            runs.push_back(std::move(fr));
          }

          // Compare the datagram: whole at INPUT, else frame by frame.
          const bool whole =
              model.table == "filter" && d.local && runs.size() > 1;
          std::vector<Verdict> status(runs.size(), Verdict::Agree);
          std::vector<std::string> knownKind(runs.size());
          std::string why;
          auto fail = [&](size_t j, const std::string &text) {
            status[j] = Verdict::Mismatch;
            why += (runs.size() > 1 ? "fragment " + std::to_string(j + 1) +
                                          ": "
                                    : std::string()) +
                   text + "; ";
          };
          for (size_t j = 0; j < runs.size(); ++j) {
            const FrameRun &fr = runs[j];
            const XdpResult &x = fr.xdp;
            if (lost)
              fail(j, "B did not process it within 2 s (sentinel lost)");
            if (x.action != XdpDrop && x.action != XdpPass)
              fail(j, std::string("XDP action ") + xdpActionName(x.action));
            if (x.modified)
              fail(j, "XDP modified the frame");
            if (b == Backend::Legacy)
              legacySeen[{i, j}] = fr.kernel;
            if (whole) {
              if (j > 0 && (!x.counters.empty() || x.action != XdpPass))
                fail(j, "a non-first fragment must be XDP_PASS, uncounted "
                        "(INPUT sees the datagram)");
              continue;
            }
            const Decision xd = xdpDecision(model, x);
            const bool countersDiffer = xd != fr.kernel;
            const bool actionDiffers =
                x.action != expectedAction(model, fr.kernel);
            if (!countersDiffer && !actionDiffers)
              continue;
            auto legacy = legacySeen.find({i, j});
            if (status[j] == Verdict::Agree) {
              std::string kind = knownDivergence(
                  b, rule, fr.bytes, fr.kernel, xd,
                  legacy == legacySeen.end() ? nullptr : &legacy->second);
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
          Decision ksum, xsum;
          if (whole) {
            for (const auto &r : runs) {
              addInto(ksum, r.kernel);
              addInto(xsum, xdpDecision(model, r.xdp));
            }
            const bool countersDiffer =
                packetsOnly(ksum) != packetsOnly(xsum);
            const bool actionDiffers =
                runs[0].xdp.action != expectedAction(model, ksum);
            // The datagram as INPUT saw it: only divergence 2 can apply
            // (a reassembled datagram has no fragment offset).
            Decision legacySum;
            bool haveLegacy = true;
            for (size_t j = 0; j < runs.size(); ++j) {
              auto l = legacySeen.find({i, j});
              if (l == legacySeen.end())
                haveLegacy = false;
              else
                addInto(legacySum, l->second);
            }
            legacySum = packetsOnly(legacySum);
            const Decision xPackets = packetsOnly(xsum);
            std::string kind;
            if ((countersDiffer || actionDiffers) &&
                std::find(status.begin(), status.end(), Verdict::Mismatch) ==
                    status.end())
              kind = knownDivergence(b, rule, runs[0].bytes, ksum, xPackets,
                                     haveLegacy ? &legacySum : nullptr);
            if (!kind.empty()) {
              std::fill(status.begin(), status.end(), Verdict::Known);
              std::fill(knownKind.begin(), knownKind.end(), kind);
            } else if (countersDiffer || actionDiffers) {
              if (countersDiffer)
                why += "datagram counters differ (kernel INPUT after "
                       "reassembly vs XDP on the first fragment); ";
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
          auto &dstTally = t.byDst[r2x::test::ipv4Str(d.dst)];
          dstTally.first += int(runs.size());
          dstTally.second += bad;
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
              << " seed " << opt.seed << " rule " << k << " datagram " << i
              << " back end " << backendName(b) << "\n"
              << "  rule:     iptables " << rule.text << "\n"
              << "  datagram: " << d.summary << "\n";
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
                << "    kernel: " << describe(fr.kernel)
                << (fr.kernel.count("rule")
                        ? " (rule target " +
                              (model.target.empty() ? std::string("none")
                                                    : model.target) +
                              ")"
                        : std::string())
                << "\n"
                << "    xdp:    " << describeXdp(model, fr.xdp) << "\n";
              if (status[j] == Verdict::Known) {
                auto legacy = legacySeen.find({i, j});
                r << "    legacy: "
                  << (legacy == legacySeen.end() ? "(not run)"
                                                 : describe(legacy->second))
                  << "\n";
              }
            }
            if (whole)
              r << "  datagram: kernel " << describe(ksum, false) << "; xdp "
                << describe(xsum, false) << "\n";
            if (bad)
              r << "  why:      " << why << "\n";
            if (bad || known)
              r << "  replay:   " << replay << " --backend " << bname
                << (opt.wide ? " --wide" : "") << "\n";
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

  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  if (!setupError.empty()) {
    ++failed;
    std::cout << "SETUP FAILURE: " << setupError << "\n";
  }
  for (Backend b : backends) {
    const Tally &t = tally[b];
    int known = 0;
    for (const auto &[_, n] : t.known)
      known += n;
    std::cout << backendName(b) << ": " << t.rulesets << " rulesets, "
              << t.frames << " frames, " << t.mismatches << " mismatches, "
              << known << " known divergences, " << t.refused
              << " rules compiled by rule2xdp but refused by iptables, "
              << t.setupFailures << " setup failures\n";
    for (const auto &[kind, n] : t.known)
      std::cout << "  known divergence (" << kind << "): " << n
                << " frames, counted neither passed nor failed\n";
    if (t.mismatches)
      for (const auto &[dst, n] : t.byDst)
        if (n.second)
          std::cout << "  mismatches to " << dst << ": " << n.second << " of "
                    << n.first << " frames\n";
  }
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f", seconds);
  std::cout << "time: " << secs << " s\n"
            << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
