//===- compiler/driver/KernelStats.cpp - XDP's rules beside the kernel's -===//
//
/// \file
/// See KernelStats.h.
//===----------------------------------------------------------------------===//
#include "compiler/driver/KernelStats.h"

#include "compiler/backend/Backend.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/Handover.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"
#include "runtime/Meta.h"

#include <charconv>
#include <map>
#include <sstream>
#include <utility>

namespace r2x::driver {
namespace {

using contract::CounterValue;
using Place = std::pair<std::string, std::string>; ///< table, chain

/// "[PACKETS:BYTES]" at the start of `word`; false if it is not there.
bool parseCounters(std::string_view word, CounterValue &out) {
  if (word.size() < 5 || word.front() != '[' || word.back() != ']')
    return false;
  std::size_t colon = word.find(':');
  if (colon == std::string_view::npos)
    return false;
  std::string_view p = word.substr(1, colon - 1),
                   b = word.substr(colon + 1, word.size() - colon - 2);
  auto whole = [](std::string_view s, uint64_t &v) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && ec == std::errc() && end == s.data() + s.size();
  };
  return whole(p, out.packets) && whole(b, out.bytes);
}

/// What one save text says the kernel counted: each rule's `[P:B]` by line
/// number (1-based, as the frontend's positions), each built-in chain's
/// policy counters by table and chain.
struct TextCounts {
  std::map<unsigned, CounterValue> rules;
  std::map<Place, CounterValue> policies;
};

TextCounts readCounts(const SaveText &t) {
  TextCounts out;
  std::istringstream in(t.text);
  std::string table;
  const std::string prefix = t.command->family == ir::Family::V6 ? "ip6 " : "";
  unsigned lineNo = 0;
  for (std::string l; std::getline(in, l);) {
    ++lineNo;
    if (l.empty())
      continue;
    if (l[0] == '*') {
      table = prefix + l.substr(1);
    } else if (l[0] == ':') {
      std::istringstream words(l.substr(1));
      std::string chain, policy, counters;
      CounterValue c{0, 0};
      if (words >> chain >> policy >> counters && policy != "-" &&
          parseCounters(counters, c))
        out.policies[{table, chain}] = c;
    } else if (l[0] == '[') {
      CounterValue c{0, 0};
      if (parseCounters(std::string_view(l).substr(0, l.find(' ')), c))
        out.rules[lineNo] = c;
    }
  }
  return out;
}

bool sameColumns(const runtime::MetaRule &a, const runtime::MetaRule &b) {
  return a.target == b.target && a.prot == b.prot && a.opt == b.opt &&
         a.in == b.in && a.out == b.out && a.source == b.source &&
         a.destination == b.destination && a.extra == b.extra;
}

/// The kernel's rules, read as --accelerate reads them, into `program`;
/// what each text says the kernel counted, by the text's name.
std::map<std::string, TextCounts> readKernel(const Snapshot &snapshot,
                                             frontend::SourceManager &sm,
                                             ir::Program &program) {
  const std::string cannot = "rule2xdp: error: cannot read the kernel's "
                             "counters: its ruleset does not read as rules\n";
  program.mode = ir::Mode::Handover;
  std::map<std::string, TextCounts> counts;
  try {
    std::vector<frontend::Warning> warnings;
    std::vector<frontend::Diagnostic> errors;
    for (const SaveText &t : snapshot.texts) {
      if (t.text.empty())
        continue;
      counts[t.command->program] = readCounts(t);
      frontend::parseSaveFile(t.command->program, t.text, sm, program, warnings,
                              t.command->family, &errors);
    }
    if (!errors.empty()) {
      std::string text;
      for (const frontend::Diagnostic &d : errors)
        text += frontend::format(sm, frontend::Severity::Error, d.pos, d.what(),
                                 d.length);
      throw Failure{2, text + cannot};
    }
    frontend::checkChainGraph(program);
    frontend::finishHandover(program);
    program.finalize();
  } catch (const frontend::Diagnostic &d) {
    throw Failure{2, frontend::format(sm, frontend::Severity::Error, d.pos,
                                      d.what(), d.length) +
                         cannot};
  }
  return counts;
}

/// Each counter slot of the kernel's program -> what the kernel counted.
std::map<unsigned, CounterValue>
countsBySlot(const ir::Program &program,
             const std::map<std::string, TextCounts> &counts) {
  std::map<unsigned, CounterValue> bySlot;
  for (const ir::Chain &c : program.chains)
    for (const ir::Rule &r : c.rules) {
      auto text = counts.find(r.pos.file);
      if (text == counts.end())
        continue;
      auto line = text->second.rules.find(r.pos.line);
      if (line != text->second.rules.end())
        bySlot[r.counter] = line->second;
    }
  return bySlot;
}

/// One of XDP's chains beside the kernel's chain `k` of the same table and
/// name (null: none): its policy, and each rule whose columns are the
/// kernel's rule's at the same position.
void pairChain(runtime::ChainCount &chain, const runtime::MetaChain *k,
               const std::map<Place, CounterValue> &policies,
               const std::map<unsigned, CounterValue> &bySlot) {
  if (!chain.user) {
    runtime::KernelCount side;
    auto p = policies.find({chain.table, chain.name});
    side.paired = k && k->slot >= 0 && k->policy == chain.policy;
    if (side.paired)
      side.count = p == policies.end() ? CounterValue{0, 0} : p->second;
    chain.policyKernel = side;
  }
  for (std::size_t i = 0; i < chain.rules.size(); ++i) {
    runtime::RuleCount &r = chain.rules[i];
    runtime::KernelCount side;
    if (k && i < k->rules.size() && sameColumns(r.rule, k->rules[i])) {
      auto c = bySlot.find(k->rules[i].slot);
      side.paired = c != bySlot.end();
      if (side.paired)
        side.count = c->second;
    }
    r.kernel = side;
  }
}

} // namespace

void addKernelCounters(runtime::Stats &stats, const Snapshot &snapshot) {
  frontend::SourceManager sm;
  ir::Program program;
  std::map<std::string, TextCounts> counts = readKernel(snapshot, sm, program);
  std::map<unsigned, CounterValue> bySlot = countsBySlot(program, counts);
  std::map<Place, CounterValue> policies;
  for (const auto &[name, text] : counts)
    policies.insert(text.policies.begin(), text.policies.end());

  // The kernel's rules as the program's metadata lists them.
  runtime::Meta kernel = runtime::parseMeta(backend::metadataText(program));
  std::map<Place, const runtime::MetaChain *> kernelChains;
  for (const runtime::MetaChain &c : kernel.chains)
    kernelChains[{c.table, c.name}] = &c;

  stats.kernel = snapshot.backend;
  for (runtime::ChainCount &chain : stats.chains) {
    auto found = kernelChains.find({chain.table, chain.name});
    pairChain(chain, found == kernelChains.end() ? nullptr : found->second,
              policies, bySlot);
  }
}

void tryKernelCounters(runtime::Stats &stats, std::ostream &err) {
  try {
    addKernelCounters(stats, readKernelRuleset(true));
  } catch (const Failure &f) {
    err << f.text
        << "rule2xdp: warning: the kernel's counters are not shown, only "
           "XDP's\n";
    std::string first = f.text.substr(0, f.text.find('\n'));
    const std::string prefix = "rule2xdp: error: ";
    if (first.rfind(prefix, 0) == 0)
      first.erase(0, prefix.size());
    stats.kernelError = first;
    stats.kernel.reset();
    for (runtime::ChainCount &c : stats.chains) {
      c.policyKernel.reset();
      for (runtime::RuleCount &r : c.rules)
        r.kernel.reset();
    }
  }
}

} // namespace r2x::driver
