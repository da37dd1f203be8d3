//===- test/packet/Harness.cpp - compile, load and run rules -------------===//
//
/// \file
/// See Harness.h. Objects are compiled once per rule text and namespace
/// phase; every case reads all counter slots before and after its run, so
/// cases sharing an object do not disturb each other.
//===----------------------------------------------------------------------===//
#include "test/packet/Harness.h"

#include "runtime/BpfObject.h"
#include "runtime/Loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

namespace r2x::test {

const char *outcomeName(Outcome o) {
  switch (o) {
  case Outcome::Match:
    return "match";
  case Outcome::NoMatch:
    return "no match";
  case Outcome::Hotdrop:
    return "hotdrop";
  case Outcome::Ignored:
    return "ignored";
  }
  return "?";
}

std::pair<int, std::string> runCommand(const std::vector<std::string> &argv,
                                       int timeoutMs) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return {-1, std::string("pipe: ") + std::strerror(errno)};
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {-1, std::string("fork: ") + std::strerror(errno)};
  }
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    std::vector<char *> args;
    for (const auto &a : argv)
      args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  bool timedOut = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) {
      timedOut = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, int(left));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      continue; // the deadline check above ends the loop
    char buf[4096];
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n <= 0)
      break;
    out.append(buf, size_t(n));
  }
  close(fds[0]);
  if (timedOut)
    kill(pid, SIGKILL); // only the child we started
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timedOut)
    return {-1,
            out + "\n[timed out after " + std::to_string(timeoutMs) + " ms]"};
  if (WIFEXITED(status))
    return {WEXITSTATUS(status), out};
  return {-1, out + "\n[killed by signal " + std::to_string(WTERMSIG(status)) +
                  "]"};
}

namespace {

std::string *gLibbpfLog = nullptr;

int libbpfPrint(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG || !gLibbpfLog)
    return 0;
  char buf[2048];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  *gLibbpfLog += buf;
  return 0;
}

void ipCmd(const std::vector<std::string> &args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto [rc, out] = runCommand(argv, 10000);
  if (rc != 0) {
    std::string cmd;
    for (const auto &a : argv)
      cmd += a + " ";
    throw std::runtime_error("`" + cmd + "` failed: " + out);
  }
}

std::string
mapsDiff(const std::map<unsigned, std::pair<uint64_t, uint64_t>> &a) {
  Expected e;
  e.counters = a;
  std::string s = describe(e);
  return s.substr(s.find(' ') + 1);
}

} // namespace

Harness::Harness(std::string compiler, bool verbose, std::string filter)
    : compiler_(std::move(compiler)), filter_(std::move(filter)),
      verbose_(verbose) {
  char tmpl[] = "/tmp/r2x-packet-XXXXXX";
  if (!mkdtemp(tmpl))
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  tmpdir_ = tmpl;
  libbpf_set_print(libbpfPrint);
}

Harness::~Harness() {
  unloadAll();
  runCommand({"rm", "-rf", "--", tmpdir_}, 10000);
}

void Harness::unloadAll() {
  for (auto &[_, l] : loaded_)
    if (l->obj)
      bpf_object__close(l->obj);
  loaded_.clear();
}

bool Harness::wants(const std::string &name) const {
  return filter_.empty() || name.find(filter_) != std::string::npos;
}

void Harness::enterPhase(Phase phase) {
  unloadAll();
  devices_.clear();
  ifindex_.clear();
  phase_ = phase;
  if (unshare(CLONE_NEWNET) != 0)
    throw std::runtime_error(
        std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) +
        "; the packet tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN, "
        "CAP_BPF) to make their own network namespace");
  ipCmd({"link", "set", "lo", "up"});
  if (phase == Phase::Input) {
    ipCmd({"link", "add", "r2xa0", "type", "veth", "peer", "name", "r2xb0"});
    ipCmd({"link", "set", "r2xa0", "up"});
    ipCmd({"link", "set", "r2xb0", "up"});
  } else {
    ipCmd({"link", "add", "f0", "type", "veth", "peer", "name", "f1"});
    ipCmd({"link", "set", "f0", "up"});
    ipCmd({"link", "set", "f1", "up"});
    ipCmd({"addr", "add", "10.9.0.1/24", "dev", "f0"});
    ipCmd({"neigh", "replace", "10.9.0.2", "lladdr", "02:00:00:00:09:02", "dev",
           "f0", "nud", "permanent"});
    // Per-namespace sysctl: this namespace only, never the host's.
    std::ofstream fwd("/proc/sys/net/ipv4/ip_forward");
    fwd << "1\n";
    fwd.close();
    if (!fwd)
      throw std::runtime_error("cannot enable forwarding in the test netns");
  }
  if (struct if_nameindex *ni = if_nameindex()) {
    for (auto *p = ni; p->if_index; ++p) {
      ifindex_[p->if_name] = p->if_index;
      devices_[{p->if_index, 0, 0}] = p->if_name;
    }
    if_freenameindex(ni);
  }
  if (phase == Phase::Input) {
    // This kernel has no 8021q, so VLAN devices cannot be created. The
    // harness adds the r2x_ifmatch keys fillIfaceMap() would make for
    // r2xa0.10 (802.1Q) and r2xa0.20.30 (802.1ad + 802.1Q) by hand, which
    // still tests how the program builds its key from the tags.
    uint32_t a0 = ifindex("r2xa0");
    devices_[{a0, 10, 0}] = "r2xa0.10";
    devices_[{a0, 20, 30}] = "r2xa0.20.30";
  }
}

uint32_t Harness::ifindex(const std::string &dev) const {
  auto it = ifindex_.find(dev);
  if (it == ifindex_.end())
    throw std::logic_error("test bug: no device " + dev + " in this phase");
  return it->second;
}

std::vector<uint32_t> Harness::ifindexes() const {
  std::vector<uint32_t> v;
  for (auto &[_, i] : ifindex_)
    v.push_back(i);
  return v;
}

Loaded &Harness::load(const std::string &text) {
  auto &slot = loaded_[text];
  if (slot)
    return *slot;
  slot = std::make_unique<Loaded>();
  Loaded &l = *slot;
  l.text = text;
  try {
    l.rule = parseRule(text);
  } catch (const std::exception &e) {
    l.error =
        std::string("TEST BUG: the model cannot parse the rule: ") + e.what();
    return l;
  }

  const std::string obj = tmpdir_ + "/rule" + std::to_string(++objects_) + ".o";
  std::vector<std::string> argv{compiler_};
  argv.insert(argv.end(), l.rule.words.begin(), l.rule.words.end());
  argv.insert(argv.end(), {"-o", obj});
  auto [rc, out] = runCommand(argv);
  if (rc != 0) {
    l.error = "compiling failed (exit " + std::to_string(rc) + "): " + out;
    return l;
  }
  l.error = openObject(l, obj);
  if (!l.error.empty())
    return l;
  // A single rule: slot 0 in its own table and chain, with its target.
  std::string bad;
  size_t rules = 0;
  for (const auto &c : l.meta.chains)
    for (const auto &r : c.rules) {
      ++rules;
      if (r.slot != 0 || r.table != (l.rule.v6 ? "ip6 " : "") + l.rule.table ||
          c.name != l.rule.chain || r.target != l.rule.target)
        bad += "metadata rule is slot " + std::to_string(r.slot) + " " +
               r.table + "/" + c.name + " -j " + r.target + "; ";
    }
  if (rules != 1)
    bad += "metadata describes " + std::to_string(rules) + " rules, not 1; ";
  if (!bad.empty())
    l.error = "object contract: " + bad + "\nmetadata:\n" + l.metaText;
  return l;
}

/// Reads the metadata of a compiled object, loads it, checks the program and
/// maps the contract promises and fills r2x_ifmatch. Returns an error text
/// (empty: the object is usable).
std::string Harness::openObject(Loaded &l, const std::string &obj) {
  std::string log;
  gLibbpfLog = &log;
  l.obj = bpf_object__open_file(obj.c_str(), nullptr);
  int err = l.obj ? 0 : -errno;
  // The metadata is read (and must parse) before loading, as --load does.
  if (l.obj) {
    try {
      l.metaText = r2x::runtime::objectMetaText(l.obj);
      l.meta = r2x::runtime::parseMeta(l.metaText);
    } catch (const std::exception &e) {
      gLibbpfLog = nullptr;
      return std::string("metadata: ") + e.what();
    }
    err = bpf_object__load(l.obj);
  }
  gLibbpfLog = nullptr;
  if (!l.obj || err) {
    // The verifier log can be huge: keep its head and tail.
    if (log.size() > 6000)
      log = log.substr(0, 3000) + "\n[... " +
            std::to_string(log.size() - 6000) +
            " bytes of log left out ...]\n" + log.substr(log.size() - 3000);
    return "libbpf could not " + std::string(l.obj ? "load" : "open") +
           " the object: " + std::strerror(-err) + "\n" + log;
  }
  // The brief: the kernel refusing the BTF is a failure even though libbpf
  // carries on without it.
  if (log.find("BTF is optional") != std::string::npos)
    return "the kernel refused the object's BTF:\n" + log;

  // The program and maps as the loader finds them (runtime/BpfObject.h);
  // the section too, which the loader leaves to libbpf.
  bpf_program *prog;
  bpf_map *counters, *ifmatch;
  try {
    prog = r2x::runtime::findProgram(l.obj);
    counters = r2x::runtime::findMap(l.obj, r2x::contract::CountersMap);
    ifmatch = r2x::runtime::findMap(l.obj, r2x::contract::IfmatchMap);
  } catch (const std::exception &e) {
    return std::string("object contract: ") + e.what() + "\nmetadata:\n" +
           l.metaText;
  }
  if (std::string(bpf_program__section_name(prog)) !=
      r2x::contract::ProgSection)
    return std::string("object contract: program not in section ") +
           r2x::contract::ProgSection + "\nmetadata:\n" + l.metaText;
  l.prog = bpf_program__fd(prog);
  l.counters = bpf_map__fd(counters);
  l.ifmatch = bpf_map__fd(ifmatch);
  l.slots = bpf_map__max_entries(counters);

  try {
    r2x::runtime::fillIfaceMap(l.ifmatch, l.meta);
  } catch (const std::exception &e) {
    return std::string("fillIfaceMap: ") + e.what();
  }
  for (const auto &[key, name] : devices_) {
    auto [ifi, vo, vi] = key;
    if (vo == 0 && vi == 0)
      continue; // real devices: fillIfaceMap's job
    uint64_t bits = 0;
    for (const auto &p : l.meta.ifaces)
      if (ifacePatternMatches(p.pattern, name))
        bits |= uint64_t(1) << p.bit;
    r2x::contract::IfKey k{ifi, vo, vi};
    if (bits && bpf_map_update_elem(l.ifmatch, &k, &bits, BPF_ANY) != 0)
      return "cannot add the " + name + " key to " +
             r2x::contract::IfmatchMap.name + ": " + std::strerror(errno);
  }
  return "";
}

std::vector<CounterValue> Harness::readCounters(const Loaded &l) {
  std::vector<CounterValue> out(l.slots);
  for (uint32_t k = 0; k < l.slots; ++k) {
    r2x::contract::CounterValue c = r2x::runtime::readCounter(l.counters, k);
    out[k].packets = c.packets;
    out[k].bytes = c.bytes;
  }
  return out;
}

Harness::Got Harness::run(Loaded &l, const std::vector<uint8_t> &frame,
                          uint32_t ifindex) {
  Got g;
  xdp_md ctx{};
  ctx.data_end = uint32_t(frame.size()); // the kernel insists on this
  ctx.ingress_ifindex = ifindex;
  g.out.assign(frame.size() + 256, 0);
  bpf_test_run_opts o{};
  o.sz = sizeof o;
  o.data_in = frame.data();
  o.data_size_in = uint32_t(frame.size());
  o.data_out = g.out.data();
  o.data_size_out = uint32_t(g.out.size());
  o.ctx_in = &ctx;
  o.ctx_size_in = sizeof ctx;
  o.repeat = 1;
  auto before = readCounters(l);
  g.err = bpf_prog_test_run_opts(l.prog, &o);
  auto after = readCounters(l);
  g.action = o.retval;
  g.out.resize(g.err ? 0 : o.data_size_out);
  for (uint32_t k = 0; k < l.slots; ++k)
    if (after[k].packets != before[k].packets ||
        after[k].bytes != before[k].bytes)
      g.counters[k] = {after[k].packets - before[k].packets,
                       after[k].bytes - before[k].bytes};
  return g;
}

FilterChain Harness::classify(bool ipv6, uint32_t dst) const {
  if (phase_ == Phase::Input)
    return FilterChain::Input; // forwarding is off: everything is local
  if (ipv6)
    throw std::logic_error("test bug: IPv6 has no fixed routing decision in "
                           "the FORWARD phase");
  if (dst == ipv4("10.9.0.2"))
    return FilterChain::Forward;
  if (dst == ipv4("10.9.0.1") || (dst >> 24) == 127)
    return FilterChain::Input;
  throw std::logic_error("test bug: no fixed routing decision for " +
                         ipv4Str(dst) + " in the FORWARD phase");
}

Expected Harness::modelExpect(const Loaded &l,
                              const std::vector<uint8_t> &frame,
                              uint32_t ifindex) const {
  Parsed p = parseFrame(frame);
  if (!p.ipv4 && !p.ipv6) {
    Expected e;
    e.action = kPass;
    e.trace = "ignored: " + p.why;
    return e;
  }
  std::optional<std::string> dev;
  auto it = devices_.find({ifindex, p.vidOuter, p.vidInner});
  if (it != devices_.end())
    dev = it->second;
  FilterChain chain = classify(p.ipv6, p.dst);
  // -o: the route to 10.9.0.2 leaves through f0 (enterPhase()); outside
  // FORWARD netfilter compares the pattern with an empty name.
  std::string out =
      chain == FilterChain::Forward && l.rule.chain == "FORWARD" ? "f0" : "";
  return traverse(l.meta, chain, p.ipv6, p.totLen, p.fragOff,
                  [&](const r2x::runtime::MetaRule &) {
                    return evalRule(l.rule, p, dev, &out);
                  });
}

void Harness::fail(const std::string &name, const std::string &report) {
  ++failed_;
  std::cout << "FAIL " << name << "\n" << report << std::flush;
}

void Harness::record(const std::string &name, bool ok,
                     const std::string &detail) {
  if (!wants(name))
    return;
  if (ok) {
    ++passed_;
    if (verbose_)
      std::cout << "ok   " << name << "\n";
  } else {
    fail(name, "  " + detail + "\n");
  }
}

void Harness::compare(const std::string &name, Loaded &l,
                      const std::vector<uint8_t> &frame, uint32_t ifindex,
                      const Expected &want, const std::string &extra) {
  Got g = run(l, frame, ifindex);
  std::string why = extra;
  if (g.err)
    why +=
        "bpf_prog_test_run_opts failed: " + std::string(std::strerror(-g.err)) +
        "; ";
  else {
    if (g.action == kAborted)
      why += "XDP_ABORTED is never acceptable; ";
    if (g.action != want.action)
      why += "wrong action; ";
    if (g.out != frame)
      why += "output frame differs from the input (" +
             std::to_string(g.out.size()) + " bytes out); ";
    if (g.counters != want.counters)
      why += "wrong counters; ";
  }
  if (why.empty()) {
    ++passed_;
    if (verbose_)
      std::cout << "ok   " << name << "\n";
    return;
  }
  std::ostringstream r;
  r << describeObject(l, name) << "  ingress:  ifindex " << ifindex << "\n"
    << "  frame:    " << frame.size() << " bytes\n"
    << hexDump(frame) << "\n"
    << "  expected: " << describe(want) << "\n"
    << "            (" << want.trace << ")\n"
    << "  got:      "
    << (g.err ? std::string("(no run)")
              : std::string(actionName(g.action)) + " " + mapsDiff(g.counters))
    << "\n"
    << "  why:      " << why << "\n";
  fail(name, r.str());
}

void Harness::expect(const std::string &name, const std::string &rule,
                     const Frame &frame, Outcome outcome,
                     const std::string &ingress) {
  if (!wants(name))
    return;
  Loaded &l = load(rule);
  if (!l.error.empty()) {
    static std::map<std::string, bool> reported;
    bool first = !reported[rule];
    reported[rule] = true;
    fail(name, "  rule:     rule2xdp " + rule + "\n  " +
                   (first ? l.error
                          : "(the rule did not compile or load; "
                            "see its first failure)") +
                   "\n");
    return;
  }
  const std::vector<uint8_t> bytes = frame.build();
  const uint32_t ifi = ifindex(ingress);

  Expected want;
  if (outcome == Outcome::Ignored) {
    want.action = kPass;
    want.trace = "stated: ignored";
  } else {
    RuleResult r = outcome == Outcome::Match     ? RuleResult::Match
                   : outcome == Outcome::NoMatch ? RuleResult::NoMatch
                                                 : RuleResult::Hotdrop;
    want = traverse(l.meta, classify(frame.v6, frame.dst), frame.v6,
                    frame.ipTotLen(), frame.fragOffset,
                    [&](const r2x::runtime::MetaRule &) { return r; });
    want.trace =
        std::string("stated: ") + outcomeName(outcome) + "; " + want.trace;
  }
  Expected model = modelExpect(l, bytes, ifi);
  std::string extra;
  if (!(model == want))
    extra = "TEST BUG: the reference model says " + describe(model) + " (" +
            model.trace + "); ";
  compare(name + " [" + ingress + "]", l, bytes, ifi, want, extra);
}

Expected Harness::expectModel(const std::string &name, const std::string &rule,
                              const std::vector<uint8_t> &frame,
                              uint32_t ifindex) {
  Loaded &l = load(rule);
  if (!l.error.empty()) {
    fail(name, "  rule:     rule2xdp " + rule + "\n  " + l.error + "\n");
    return {};
  }
  Expected want = modelExpect(l, frame, ifindex);
  compare(name, l, frame, ifindex, want, "");
  return want;
}

// --- rulesets
// -----------------------------------------------------------------

namespace {

std::string indent(const std::string &text) {
  std::string out, line;
  std::istringstream in(text);
  for (unsigned n = 1; std::getline(in, line); ++n) {
    char num[16];
    std::snprintf(num, sizeof num, "%4u| ", n);
    out += "    " + std::string(num) + line + "\n";
  }
  return out;
}

const char *const kRulesetKey = "ruleset\n";

} // namespace

std::string Harness::describeObject(Loaded &l, const std::string &name) {
  if (!l.isRuleset)
    return "  rule:     rule2xdp " + l.text + "\n";
  if (!l.firstFailure.empty())
    return "  ruleset:  as printed above for \"" + l.firstFailure + "\"\n";
  l.firstFailure = name;
  return "  ruleset:  rule2xdp -f FILE, FILE (with line numbers):\n" +
         indent(l.text);
}

Loaded &Harness::loadRuleset(const std::string &text) {
  auto &slot = loaded_[kRulesetKey + text];
  if (slot)
    return *slot;
  slot = std::make_unique<Loaded>();
  Loaded &l = *slot;
  l.text = text;
  l.isRuleset = true;
  try {
    l.set = parseRuleset(text);
  } catch (const std::exception &e) {
    l.error = std::string("TEST BUG: the model cannot parse the ruleset: ") +
              e.what();
    return l;
  }
  const std::string base = tmpdir_ + "/ruleset" + std::to_string(++objects_);
  {
    std::ofstream f(base + ".rules");
    f << text;
    if (!f)
      throw std::runtime_error("cannot write " + base + ".rules");
  }
  auto [rc, out] =
      runCommand({compiler_, "-f", base + ".rules", "-o", base + ".o"});
  l.compileOutput = out;
  if (rc != 0) {
    l.error = "compiling failed (exit " + std::to_string(rc) + "): " + out;
    return l;
  }
  l.error = openObject(l, base + ".o");
  if (l.error.empty())
    l.error = mapRuleset(l);
  return l;
}

/// Finds each model rule in the object's metadata (same table, chain and
/// position, same listing columns) and takes its counter slot from there;
/// every slot must belong to exactly one rule or policy.
std::string Harness::mapRuleset(Loaded &l) {
  const Ruleset &rs = l.set;
  SlotMap &sm = l.slotMap;
  sm.rule.assign(rs.chains.size(), {});
  sm.policy.assign(rs.chains.size(), -1);
  std::string bad;
  std::map<unsigned, std::string> owner;
  auto own = [&](unsigned slot, const std::string &who) {
    if (slot >= l.slots)
      bad += who + " has slot " + std::to_string(slot) + " beyond the map (" +
             std::to_string(l.slots) + " slots); ";
    auto [it, fresh] = owner.emplace(slot, who);
    if (!fresh)
      bad += who + " and " + it->second + " share slot " +
             std::to_string(slot) + "; ";
  };
  for (size_t ci = 0; ci < rs.chains.size(); ++ci) {
    const RsChain &c = rs.chains[ci];
    if (c.egress)
      continue;
    const r2x::runtime::MetaChain *mc = nullptr;
    for (const auto &m : l.meta.chains)
      if (m.table == c.table && m.name == c.name)
        mc = &m;
    const std::string who = c.table + " " + c.name;
    if (!mc) {
      bad += "metadata lacks chain " + who + "; ";
      continue;
    }
    if (c.user != (mc->slot < 0))
      bad += who + (c.user ? " is a user chain" : " is built in") +
             " but the metadata says otherwise; ";
    if (!c.user) {
      if (mc->policy != c.policy)
        bad += who + " policy " + mc->policy + ", model " + c.policy + "; ";
      if (mc->slot >= 0) {
        sm.policy[ci] = mc->slot;
        own(unsigned(mc->slot), who + " policy");
      }
    }
    if (mc->rules.size() != c.rules.size()) {
      bad += who + " has " + std::to_string(mc->rules.size()) +
             " rules in the metadata, " + std::to_string(c.rules.size()) +
             " in the model; ";
      continue;
    }
    for (size_t ri = 0; ri < c.rules.size(); ++ri) {
      const auto &mr = mc->rules[ri];
      ListingColumns want = listingColumns(c.rules[ri]);
      std::string rw = who + "/" + std::to_string(ri + 1);
      auto col = [&](const char *what, const std::string &got,
                     const std::string &exp) {
        if (got != exp)
          bad += rw + " " + what + " is `" + got + "', the model says `" + exp +
                 "'; ";
      };
      col("target", mr.target, want.target);
      col("prot", mr.prot, want.prot);
      col("in", mr.in, want.in);
      col("source", mr.source, want.source);
      col("destination", mr.destination, want.destination);
      col("extra", mr.extra, want.extra);
      sm.rule[ci].push_back(mr.slot);
      own(mr.slot, rw);
    }
  }
  for (const auto &m : l.meta.chains)
    if (int ci = rs.find(m.table, m.name);
        ci < 0 || rs.chains[size_t(ci)].egress)
      bad += "metadata has chain " + m.table + " " + m.name +
             " the model does not traverse; ";
  if (l.slots != std::max<size_t>(1, owner.size()))
    bad += std::string(r2x::contract::CountersMap.name) + " has " +
           std::to_string(l.slots) + " slots for " +
           std::to_string(owner.size()) + " rules and policies; ";
  if (bad.empty())
    return "";
  return "object contract (ruleset): " + bad + "\nmetadata:\n" + l.metaText;
}

void Harness::forget(const std::string &text) {
  auto it = loaded_.find(kRulesetKey + text);
  if (it == loaded_.end())
    return;
  if (it->second->obj)
    bpf_object__close(it->second->obj);
  loaded_.erase(it);
}

std::optional<FilterChain> Harness::route(const Parsed &p) const {
  if (phase_ == Phase::Input)
    return FilterChain::Input; // forwarding is off: everything is local
  if (p.dst == ipv4("10.9.0.2")) {
    // ip_forward(): time exceeded before the FORWARD hook; DF and bigger
    // than f0's MTU: fragmentation needed, also before FORWARD; a packet
    // that came in a broadcast or multicast frame is dropped there too.
    if (p.ttl <= 1 || (p.df && p.totLen > 1500) || p.l2Group)
      return std::nullopt;
    return FilterChain::Forward;
  }
  if (p.dst == ipv4("10.9.0.1") || (p.dst >> 24) == 127)
    return FilterChain::Input;
  throw std::logic_error("test bug: no fixed routing decision for " +
                         ipv4Str(p.dst) + " in the FORWARD phase");
}

Expected Harness::modelSet(const Loaded &l, const std::vector<uint8_t> &frame,
                           uint32_t ifindex) const {
  Parsed p = parseFrame(frame);
  std::optional<std::string> dev;
  std::optional<FilterChain> r;
  if (p.ipv4) {
    auto it = devices_.find({ifindex, p.vidOuter, p.vidInner});
    if (it != devices_.end())
      dev = it->second;
    r = route(p);
  }
  return evalRuleset(l.set, l.slotMap, p, r, dev);
}

void Harness::expectSet(const std::string &name, const std::string &ruleset,
                        const Frame &frame, uint32_t action,
                        const std::vector<std::string> &counted,
                        const std::string &ingress) {
  if (!wants(name))
    return;
  Loaded &l = loadRuleset(ruleset);
  if (!l.error.empty()) {
    bool first = l.firstFailure.empty();
    fail(name, describeObject(l, name) + "  " +
                   (first ? l.error
                          : "(the ruleset did not compile or load; see its "
                            "first failure)") +
                   "\n");
    return;
  }
  const std::vector<uint8_t> bytes = frame.build();
  const uint32_t ifi = ifindex(ingress);
  Expected want;
  want.action = action;
  want.trace = "stated:";
  try {
    for (const std::string &label : counted) {
      auto &c = want.counters[slotOfLabel(l.set, l.slotMap, label)];
      c.first += 1;
      c.second += frame.ipTotLen();
      want.trace += " " + label;
    }
  } catch (const std::exception &e) {
    fail(name, std::string("  TEST BUG: ") + e.what() + "\n");
    return;
  }
  Expected model = modelSet(l, bytes, ifi);
  std::string extra;
  if (!(model == want))
    extra = "TEST BUG: the ruleset model says " + describe(model) + " (" +
            model.trace + "); ";
  compare(name + " [" + ingress + "]", l, bytes, ifi, want, extra);
}

void Harness::expectHandover(const std::string &name,
                             const std::string &ruleset, const Frame &frame,
                             uint32_t action,
                             const std::vector<unsigned> &slots,
                             const std::string &ingress) {
  if (!wants(name))
    return;
  auto &slot = loaded_["handover\n" + ruleset];
  if (!slot) {
    slot = std::make_unique<Loaded>();
    slot->text = ruleset;
    const std::string base = tmpdir_ + "/handover" + std::to_string(++objects_);
    std::ofstream f(base + ".rules");
    f << ruleset;
    f.close();
    auto [rc, out] = runCommand({compiler_, "-f", base + ".rules",
                                 "--pass-unsupported", "-o", base + ".o"});
    slot->compileOutput = out;
    if (rc != 0)
      slot->error =
          "compiling failed (exit " + std::to_string(rc) + "): " + out;
    else
      slot->error = openObject(*slot, base + ".o");
  }
  Loaded &l = *slot;
  if (!l.error.empty()) {
    fail(name, "  " + l.error + "\n");
    return;
  }
  Expected want;
  want.action = action;
  want.trace = "stated slots:";
  for (unsigned s : slots) {
    auto &c = want.counters[s];
    c.first += 1;
    c.second += frame.ipTotLen();
    want.trace += " " + std::to_string(s);
  }
  compare(name + " [" + ingress + "]", l, frame.build(), ifindex(ingress), want,
          "");
}

Expected Harness::expectSetModel(const std::string &name,
                                 const std::string &ruleset,
                                 const std::vector<uint8_t> &frame,
                                 uint32_t ifindex) {
  Loaded &l = loadRuleset(ruleset);
  if (!l.error.empty()) {
    fail(name, describeObject(l, name) + "  " + l.error + "\n");
    return {};
  }
  Expected want = modelSet(l, frame, ifindex);
  compare(name, l, frame, ifindex, want, "");
  return want;
}

void Harness::expectCompile(const std::string &name, const std::string &ruleset,
                            int wantRc, const std::vector<std::string> &anyOf) {
  if (!wants(name))
    return;
  namespace fs = std::filesystem;
  const fs::path dir = tmpdir_ + "/compile" + std::to_string(++objects_);
  fs::create_directory(dir);
  const std::string file = (dir / "ruleset.rules").string();
  const std::string obj = (dir / "out.o").string();
  {
    std::ofstream f(file);
    f << ruleset;
  }
  auto [rc, out] = runCommand({compiler_, "-f", file, "-o", obj});
  std::string why;
  if (rc != wantRc)
    why += "exit " + std::to_string(rc) + ", expected " +
           std::to_string(wantRc) + "; ";
  if (!anyOf.empty()) {
    bool found = false;
    std::string pats;
    for (std::string p : anyOf) {
      for (size_t at; (at = p.find("FILE")) != std::string::npos;)
        p.replace(at, 4, file);
      found |= out.find(p) != std::string::npos;
      pats += "\n              `" + p + "'";
    }
    if (!found)
      why += "the output has none of:" + pats + "\n            ; ";
  }
  std::vector<std::string> left;
  for (const auto &e : fs::directory_iterator(dir))
    if (e.path().filename() != "ruleset.rules")
      left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  if (wantRc == 0 && left != std::vector<std::string>{"out.o"})
    why += "the object was not written (or more was); ";
  if (wantRc != 0 && !left.empty()) {
    why += "files were written:";
    for (const auto &f : left)
      why += " " + f;
    why += "; ";
  }
  record(name, why.empty(),
         "ruleset:\n" + indent(ruleset) + "  rule2xdp -f " + file + " -o " +
             obj + "\n  output:\n" + indent(out) + "  why: " + why);
}

} // namespace r2x::test
