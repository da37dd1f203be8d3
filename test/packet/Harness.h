//===- test/packet/Harness.h - compile, load and run rules ------*- C++ -*-===//
//
/// \file
/// The machinery of the packet tests: it compiles a rule (or a whole
/// ruleset, written to a file for `rule2xdp -f`) with the real `rule2xdp`
/// binary, loads the object with libbpf, runs frames through
/// BPF_PROG_TEST_RUN (repeat 1) and compares the XDP action, the output bytes
/// and every counter slot with what is expected. Each check is one case;
/// failures are printed with the rule or ruleset, the frame in hex, expected
/// and got.
///
/// The tests run in network namespaces the harness creates itself (unshare),
/// so the routing decision the program asks bpf_fib_lookup for is fixed:
///  - Phase::Input: a fresh namespace, forwarding off (every packet INPUT),
///    with lo and a veth pair r2xa0/r2xb0 for `-i` cases;
///  - Phase::Forward: another fresh namespace with forwarding on, 10.9.0.1/24
///    on veth f0 and a permanent neighbour 10.9.0.2, so a packet to 10.9.0.2
///    is forwarded (FORWARD) and one to 10.9.0.1 is local (INPUT).
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"
#include "test/packet/Frame.h"
#include "test/packet/Model.h"
#include "test/packet/Ruleset.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

struct bpf_object;

namespace r2x::test {

/// What a fixed case states about the rule (the harness derives the action
/// and the counters from it and the object's metadata).
enum class Outcome {
  Match,   // the rule matches: its target and its counter
  NoMatch, // the rule does not match: the chain policy and its counter
  Hotdrop, // x_tables hotdrop: XDP_DROP, no counter
  Ignored, // not IPv4, malformed, or left to the kernel: XDP_PASS, nothing
};
const char *outcomeName(Outcome o);

enum class Phase { Input, Forward };

/// A compiled and loaded object: a single rule, or a ruleset.
struct Loaded {
  std::string text;
  Rule rule; // single rule
  bool isRuleset = false;
  Ruleset set;               // ruleset: the model's reading of `text`
  SlotMap slotMap;           // ruleset: the object's slot for each model rule
  std::string compileOutput; // warnings rule2xdp printed
  std::string firstFailure;  // the first case that printed this ruleset
  std::string error;         // non-empty: compiling or loading failed
  std::string metaText;
  r2x::runtime::Meta meta;
  bpf_object *obj = nullptr;
  int prog = -1, counters = -1, ifmatch = -1;
  uint32_t slots = 0;
};

struct CounterValue {
  uint64_t packets = 0, bytes = 0;
};

class Harness {
public:
  Harness(std::string compiler, bool verbose, std::string filter);
  ~Harness();
  Harness(const Harness &) = delete;
  Harness &operator=(const Harness &) = delete;

  /// Moves the process into a fresh network namespace set up for `phase`.
  /// Throws std::runtime_error if that is impossible (no root: a failure).
  void enterPhase(Phase phase);

  /// A fixed case: `rule` on `frame` arriving on device `ingress`.
  void expect(const std::string &name, const std::string &rule,
              const Frame &frame, Outcome outcome,
              const std::string &ingress = "lo");

  /// A random case: the model is the only oracle. Returns what it expected.
  Expected expectModel(const std::string &name, const std::string &rule,
                       const std::vector<uint8_t> &frame, uint32_t ifindex);

  /// A check that is not a packet run (compiler exit codes and the like).
  void record(const std::string &name, bool ok, const std::string &detail);

  /// A fixed ruleset case: `ruleset` (iptables-save text, compiled with
  /// `rule2xdp -f`) on `frame`. The case states the action and the rules
  /// that count, as labels "CHAIN/N", "CHAIN/policy" or "raw:CHAIN/N" (a
  /// label twice: counted twice); the ruleset model double-checks it.
  void expectSet(const std::string &name, const std::string &ruleset,
                 const Frame &frame, uint32_t action,
                 const std::vector<std::string> &counted,
                 const std::string &ingress = "lo");

  /// A hand-over case (docs/handover.md): `ruleset` compiled with
  /// `rule2xdp -f FILE --pass-unsupported`. The case states the action and
  /// the counter slots XDP counts (as --emit=ir numbers them; a slot twice:
  /// counted twice). There is no model of hand-over mode: the statements
  /// are the oracle, and the differential test checks them against the
  /// kernel.
  void expectHandover(const std::string &name, const std::string &ruleset,
                      const Frame &frame, uint32_t action,
                      const std::vector<unsigned> &slots,
                      const std::string &ingress = "lo");

  /// A random ruleset case: the ruleset model is the only oracle.
  Expected expectSetModel(const std::string &name, const std::string &ruleset,
                          const std::vector<uint8_t> &frame, uint32_t ifindex);

  /// Compiles `ruleset` with `rule2xdp -f FILE -o OUT` in a directory of
  /// its own and checks the exit code. With `wantRc` 0 the object must be
  /// written; otherwise nothing may be written. The output must contain one
  /// of `anyOf` (if given), where "FILE" stands for the ruleset's path.
  void expectCompile(const std::string &name, const std::string &ruleset,
                     int wantRc, const std::vector<std::string> &anyOf);

  Loaded &loadRuleset(const std::string &ruleset);
  /// Closes a ruleset's object (the random loop makes many).
  void forget(const std::string &ruleset);
  Phase phase() const { return phase_; }

  uint32_t ifindex(const std::string &dev) const;
  std::vector<uint32_t> ifindexes() const;
  Loaded &load(const std::string &rule);
  const std::string &compilerPath() const { return compiler_; }
  bool wants(const std::string &name) const;

  int passed() const { return passed_; }
  int failed() const { return failed_; }

private:
  struct Got {
    int err = 0;
    uint32_t action = 0;
    std::vector<uint8_t> out;
    std::map<unsigned, std::pair<uint64_t, uint64_t>> counters;
  };
  using DevKey = std::tuple<uint32_t, uint16_t, uint16_t>;

  Got run(Loaded &l, const std::vector<uint8_t> &frame, uint32_t ifindex);
  std::vector<CounterValue> readCounters(const Loaded &l);
  FilterChain classify(bool ipv6, uint32_t dst) const;
  std::optional<FilterChain> route(const Parsed &p) const;
  std::string openObject(Loaded &l, const std::string &obj);
  std::string mapRuleset(Loaded &l);
  Expected modelSet(const Loaded &l, const std::vector<uint8_t> &frame,
                    uint32_t ifindex) const;
  std::string describeObject(Loaded &l, const std::string &name);
  Expected modelExpect(const Loaded &l, const std::vector<uint8_t> &frame,
                       uint32_t ifindex) const;
  void compare(const std::string &name, Loaded &l,
               const std::vector<uint8_t> &frame, uint32_t ifindex,
               const Expected &want, const std::string &extra);
  void fail(const std::string &name, const std::string &report);
  void unloadAll();

  std::string compiler_, tmpdir_, filter_;
  bool verbose_;
  Phase phase_ = Phase::Input;
  std::map<std::string, std::unique_ptr<Loaded>> loaded_;
  std::map<DevKey, std::string> devices_; // {ifindex, vids} -> device name
  std::map<std::string, uint32_t> ifindex_;
  int passed_ = 0, failed_ = 0, objects_ = 0;
};

/// Runs a command (no shell) with a deadline; returns its exit status (or
/// -1 if it could not run or timed out) and its combined output.
std::pair<int, std::string> runCommand(const std::vector<std::string> &argv,
                                       int timeoutMs = 30000);

} // namespace r2x::test
