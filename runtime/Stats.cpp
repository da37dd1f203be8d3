//===- runtime/Stats.cpp - per-rule counters, laid out like iptables ------===//
//
/// \file
/// readStats() (from the interface, runtime/Discover.h) and statsTable(),
/// which prints as `iptables -vxnL` (iptables 1.8.9) does, so that people and
/// scripts used to that output can read ours.
///
/// The widths below were checked against iptables 1.8.9's real output. Two
/// of its quirks are kept on purpose: with -x both counters print as %8llu
/// while the header reserves 10 columns for "bytes", and "[goto] " follows the
/// destination column directly where every match starts with a space.
//===----------------------------------------------------------------------===//
#include "runtime/Stats.h"

#include "runtime/BpfObject.h"
#include "runtime/Discover.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <string_view>

namespace r2x::runtime {

using namespace detail;
using contract::CounterValue;

namespace {

__attribute__((format(printf, 2, 3))) void appendf(std::string &out,
                                                   const char *format, ...) {
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  int length = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  if (length > 0) {
    std::size_t old = out.size();
    out.resize(old + std::size_t(length) + 1);
    std::vsnprintf(out.data() + old, std::size_t(length) + 1, format, args);
    out.resize(old + std::size_t(length));
  }
  va_end(args);
}

/// The counters map of a loaded program, read one slot at a time: the
/// metadata names the slots worth a system call.
class CounterReader {
public:
  explicit CounterReader(uint32_t mapId) : fd_(bpf_map_get_fd_by_id(mapId)) {
    if (!fd_.valid())
      throw sysError(std::string("cannot open ") + contract::CountersMap.name,
                     errno);
    struct bpf_map_info info;
    std::memset(&info, 0, sizeof info);
    uint32_t length = sizeof info;
    if (int err = bpf_obj_get_info_by_fd(fd_.get(), &info, &length))
      throw sysError(std::string("cannot read ") + contract::CountersMap.name,
                     err);
    slots_ = info.max_entries;
  }

  /// Slot `slot` summed over the CPUs.
  CounterValue operator()(unsigned slot) {
    if (slot >= slots_)
      throw LoadError("metadata names counter slot " + std::to_string(slot) +
                      ", but " + contract::CountersMap.name + " has " +
                      std::to_string(slots_));
    return readCounter(fd_.get(), slot);
  }

private:
  Fd fd_;
  unsigned slots_ = 0;
};

/// iptables shows a negated field as '!' in a column of its own, just
/// before the value; the metadata writes it as a prefix.
std::pair<char, std::string_view> splitNegation(std::string_view field) {
  if (!field.empty() && field[0] == '!')
    return {'!', field.substr(1)};
  return {' ', field};
}

/// The kernel's columns of a rule (the same widths as the header's).
void appendKernel(std::string &text, const std::optional<KernelCount> &k) {
  if (k && k->paired)
    appendf(text, "%9llu %10llu ",
            static_cast<unsigned long long>(k->count.packets),
            static_cast<unsigned long long>(k->count.bytes));
  else
    appendf(text, "%9s %10s ", "changed", "-");
}

void appendRule(std::string &text, const RuleCount &r, bool kernel) {
  const MetaRule &rule = r.rule;
  const CounterValue &count = r.count;
  ShownRule shown = showRule(rule);
  auto [protNeg, prot] = splitNegation(shown.prot);
  auto [srcNeg, source] = splitNegation(shown.source);
  auto [dstNeg, destination] = splitNegation(shown.destination);
  // Counters, target, [!]prot, opt, in, out, [!]source, [!]destination:
  // iptables' print_firewall with FMT_NUMERIC | FMT_VIA | FMT_OPTIONS.
  if (kernel) {
    appendf(text, "%8llu %10llu ",
            static_cast<unsigned long long>(count.packets),
            static_cast<unsigned long long>(count.bytes));
    appendKernel(text, r.kernel);
  } else {
    appendf(text, "%8llu %8llu ",
            static_cast<unsigned long long>(count.packets),
            static_cast<unsigned long long>(count.bytes));
  }
  appendf(text, "%-9s %c%-5.*s%s  %-6s %-6s %c%-19.*s %c%-19.*s ",
          shown.target.c_str(), protNeg, int(prot.size()), prot.data(),
          shown.opt.c_str(), shown.in.c_str(), shown.out.c_str(), srcNeg,
          int(source.size()), source.data(), dstNeg, int(destination.size()),
          destination.data());
  if (shown.isGoto)
    text += "[goto] ";
  if (!shown.matches.empty()) {
    text += ' ';
    text += shown.matches;
  }
  text += '\n';
}

} // namespace

ShownRule showRule(const MetaRule &rule) {
  auto orDefault = [](const std::string &field, const char *fallback) {
    return field.empty() ? std::string(fallback) : field;
  };
  ShownRule shown;
  shown.target = rule.target;
  shown.prot = rule.prot;
  shown.opt = orDefault(rule.opt, "--");
  shown.in = orDefault(rule.in, "*");
  shown.out = orDefault(rule.out, "*");
  shown.source = orDefault(rule.source, "0.0.0.0/0");
  shown.destination = orDefault(rule.destination, "0.0.0.0/0");
  std::string_view extra = rule.extra;
  constexpr std::string_view Goto = "[goto]";
  if (extra.substr(0, Goto.size()) == Goto) {
    shown.isGoto = true;
    extra.remove_prefix(Goto.size());
    while (!extra.empty() && extra[0] == ' ')
      extra.remove_prefix(1);
  }
  shown.matches = extra;
  return shown;
}

Stats statsFromMeta(const Meta &meta,
                    const std::function<CounterValue(unsigned)> &counter) {
  Stats stats;
  stats.handover = meta.handover;
  stats.handAll = meta.handAll;
  auto keyOf = [&meta](unsigned slot) {
    auto k = meta.keys.find(slot);
    return k == meta.keys.end() ? std::string() : k->second;
  };
  for (const MetaChain &chain : meta.chains) {
    if (std::find(stats.tables.begin(), stats.tables.end(), chain.table) ==
        stats.tables.end())
      stats.tables.push_back(chain.table);
    ChainCount c;
    c.table = chain.table;
    c.name = chain.name;
    c.user = chain.slot < 0;
    if (!c.user) {
      c.policy = chain.policy;
      c.policyCount = counter(unsigned(chain.slot));
    } else {
      // iptables counts the rules that jump or go to a user chain.
      for (const MetaChain &other : meta.chains)
        if (other.table == chain.table)
          for (const MetaRule &rule : other.rules)
            c.references += rule.target == chain.name;
    }
    for (const MetaRule &rule : chain.rules)
      c.rules.push_back({rule, counter(rule.slot), keyOf(rule.slot), {}});
    stats.chains.push_back(std::move(c));
  }
  // Only a standalone program counts there (hand-over mode hands such a
  // packet over instead).
  if (meta.logLost >= 0 && !meta.handover)
    stats.logLost = counter(unsigned(meta.logLost));
  return stats;
}

Stats readStats(const std::string &iface) {
  InterfaceXdp x = inspect(iface);
  if (!x.own)
    throw LoadError("rule2xdp has no program on " + iface);
  CounterReader counter(x.own->countersId);
  Stats stats = statsFromMeta(*x.own->meta, std::ref(counter));
  stats.iface = iface;
  stats.ifindex = x.ifindex;
  stats.progId = x.own->progId;
  stats.mode = x.mode;
  stats.dispatcherId = x.dispatcher ? x.attachedId : 0;
  return stats;
}

std::string statsTable(const Stats &stats) {
  // iptables lists one table at a time, so only a multi-table object needs
  // the "Table:" lines.
  std::string text;
  // A program that decides nothing says so first: its counters stand
  // still while the kernel's move.
  if (!stats.handAll.empty())
    appendf(text,
            "# XDP decides no packet (every one goes to the kernel): %s\n",
            stats.handAll.c_str());
  bool first = true;
  for (const std::string &table : stats.tables) {
    if (stats.tables.size() > 1) {
      if (!first)
        text += '\n';
      appendf(text, "Table: %s\n", table.c_str());
      first = true;
    }
    for (const ChainCount &chain : stats.chains) {
      if (chain.table != table)
        continue;
      if (!first)
        text += '\n'; // iptables separates chains, it does not end them
      first = false;
      bool kernel = stats.kernel.has_value();
      if (!chain.user && kernel) {
        appendf(text, "Chain %s (policy %s: XDP %llu packets, %llu bytes; ",
                chain.name.c_str(), chain.policy.c_str(),
                static_cast<unsigned long long>(chain.policyCount.packets),
                static_cast<unsigned long long>(chain.policyCount.bytes));
        const std::optional<KernelCount> &k = chain.policyKernel;
        if (k && k->paired)
          appendf(text, "kernel %llu packets, %llu bytes)\n",
                  static_cast<unsigned long long>(k->count.packets),
                  static_cast<unsigned long long>(k->count.bytes));
        else
          text += "kernel: changed)\n";
      } else if (!chain.user) {
        appendf(text, "Chain %s (policy %s %llu packets, %llu bytes)\n",
                chain.name.c_str(), chain.policy.c_str(),
                static_cast<unsigned long long>(chain.policyCount.packets),
                static_cast<unsigned long long>(chain.policyCount.bytes));
      } else {
        appendf(text, "Chain %s (%u references)\n", chain.name.c_str(),
                chain.references);
      }
      if (kernel)
        appendf(text, "%8s %10s %9s %10s ", "xdp-pkts", "xdp-bytes",
                "kern-pkts", "kern-bytes");
      else
        appendf(text, "%8s %10s ", "pkts", "bytes");
      appendf(text, "%-9s  prot opt %-6s %-6s  %-19s  %-19s \n", "target", "in",
              "out", "source", "destination");
      for (const RuleCount &r : chain.rules)
        appendRule(text, r, kernel);
    }
  }
  if (stats.logLost)
    appendf(text, "\nLOG events not written: %llu packets, %llu bytes\n",
            static_cast<unsigned long long>(stats.logLost->packets),
            static_cast<unsigned long long>(stats.logLost->bytes));
  return text;
}

} // namespace r2x::runtime
