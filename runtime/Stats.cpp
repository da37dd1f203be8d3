//===- runtime/Stats.cpp - per-rule counters, laid out like iptables ------===//
//
/// \file
/// printStats(): reads the pinned `meta` and `counters` maps of an interface
/// and prints them as `iptables -vxnL` (iptables 1.8.9) does, so that people
/// and scripts used to that output can read ours.
///
/// The widths below were checked against iptables 1.8.9's real output. Two
/// of its quirks are kept on purpose: with -x both counters print as %8llu
/// while the header reserves 10 columns for "bytes", and "[goto] " follows the
/// destination column directly where every match starts with a space.
//===----------------------------------------------------------------------===//

#include <cstdio>

#include "runtime/BpfObject.h"
#include "runtime/Loader.h"
#include "runtime/Meta.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdarg>
#include <string_view>

namespace r2x::runtime {

using namespace detail;
using contract::CounterValue;
namespace pin = contract::pin;

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

Fd openPin(const std::string &path) {
  Fd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid())
    throw sysError("cannot open " + path, errno);
  return fd;
}

struct bpf_map_info mapInfo(const Fd &fd, const std::string &path) {
  struct bpf_map_info info;
  std::memset(&info, 0, sizeof info);
  uint32_t length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(fd.get(), &info, &length))
    throw sysError("cannot read " + path, err);
  return info;
}

/// The metadata text from the pinned `.rodata` map: an ARRAY with one value,
/// the whole section image.
std::string readMeta(const std::string &dir) {
  std::string path = dir + "/" + pin::Meta;
  Fd fd = openPin(path);
  struct bpf_map_info info = mapInfo(fd, path);
  if (info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4 ||
      info.max_entries < 1)
    throw LoadError(path + " is not the object's .rodata map");
  std::string image(info.value_size, '\0');
  uint32_t key = 0;
  if (int err = bpf_map_lookup_elem(fd.get(), &key, image.data()))
    throw sysError("cannot read " + path, err);
  std::string text = findMetaText(image.data(), image.size());
  if (text.empty())
    throw LoadError(path + " holds no rule2xdp metadata");
  return text;
}

/// The pinned per-CPU counters, read one slot at a time: the metadata names
/// the slots worth a system call.
class CounterReader {
public:
  explicit CounterReader(const std::string &dir)
      : path_(dir + "/" + pin::Counters), fd_(openPin(path_)) {
    struct bpf_map_info info = mapInfo(fd_, path_);
    const contract::MapSpec &spec = contract::CountersMap;
    if (info.type != uint32_t(spec.type) || info.key_size != spec.keySize ||
        info.value_size != spec.valueSize)
      throw LoadError(path_ + " is not a PERCPU_ARRAY of {u64 packets, bytes}");
    slots_ = info.max_entries;
  }

  /// Slot `slot` summed over the CPUs.
  CounterValue operator()(unsigned slot) {
    if (slot >= slots_)
      throw LoadError("metadata names counter slot " + std::to_string(slot) +
                      ", but " + path_ + " has " + std::to_string(slots_));
    return readCounter(fd_.get(), slot);
  }

private:
  std::string path_;
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

std::string_view orDefault(std::string_view field, std::string_view fallback) {
  return field.empty() ? fallback : field;
}

void appendRule(std::string &text, const MetaRule &rule,
                const CounterValue &count) {
  auto [protNeg, prot] = splitNegation(rule.prot);
  auto [srcNeg, source] = splitNegation(orDefault(rule.source, "0.0.0.0/0"));
  auto [dstNeg, destination] =
      splitNegation(orDefault(rule.destination, "0.0.0.0/0"));
  std::string_view opt = orDefault(rule.opt, "--");
  std::string_view in = orDefault(rule.in, "*");
  std::string_view out = orDefault(rule.out, "*");
  // Counters, target, [!]prot, opt, in, out, [!]source, [!]destination:
  // iptables' print_firewall with FMT_NUMERIC | FMT_VIA | FMT_OPTIONS.
  appendf(text,
          "%8llu %8llu %-9s %c%-5.*s%.*s  %-6.*s %-6.*s %c%-19.*s %c%-19.*s ",
          static_cast<unsigned long long>(count.packets),
          static_cast<unsigned long long>(count.bytes), rule.target.c_str(),
          protNeg, int(prot.size()), prot.data(), int(opt.size()), opt.data(),
          int(in.size()), in.data(), int(out.size()), out.data(), srcNeg,
          int(source.size()), source.data(), dstNeg, int(destination.size()),
          destination.data());

  std::string_view extra = rule.extra;
  constexpr std::string_view Goto = "[goto]";
  if (extra.substr(0, Goto.size()) == Goto) {
    text += "[goto] ";
    extra.remove_prefix(Goto.size());
    while (!extra.empty() && extra[0] == ' ')
      extra.remove_prefix(1);
  }
  if (!extra.empty()) {
    text += ' ';
    text += extra;
  }
  text += '\n';
}

} // namespace

void printStats(const std::string &iface, std::FILE *out) {
  checkIfaceName(iface);
  std::string dir = pinDir(iface);
  if (!pathExists(dir + "/" + pin::Link))
    throw LoadError("rule2xdp has no program on " + iface);

  Meta meta;
  try {
    meta = parseMeta(readMeta(dir));
  } catch (const LoadError &) {
    throw;
  } catch (const std::runtime_error &e) {
    throw LoadError(std::string("pinned metadata is malformed: ") + e.what());
  }
  CounterReader counter(dir);

  // Tables in order of first appearance; iptables lists one table at a time,
  // so only a multi-table object needs the "Table:" lines.
  std::vector<std::string> tables;
  for (const MetaChain &chain : meta.chains)
    if (std::find(tables.begin(), tables.end(), chain.table) == tables.end())
      tables.push_back(chain.table);

  std::string text;
  bool first = true;
  for (const std::string &table : tables) {
    if (tables.size() > 1) {
      if (!first)
        text += '\n';
      appendf(text, "Table: %s\n", table.c_str());
      first = true;
    }
    for (const MetaChain &chain : meta.chains) {
      if (chain.table != table)
        continue;
      if (!first)
        text += '\n'; // iptables separates chains, it does not end them
      first = false;
      if (chain.slot >= 0) {
        CounterValue policy = counter(unsigned(chain.slot));
        appendf(text, "Chain %s (policy %s %llu packets, %llu bytes)\n",
                chain.name.c_str(), chain.policy.c_str(),
                static_cast<unsigned long long>(policy.packets),
                static_cast<unsigned long long>(policy.bytes));
      } else {
        // A user chain: iptables counts the rules that jump or go to it.
        unsigned references = 0;
        for (const MetaChain &other : meta.chains)
          if (other.table == table)
            for (const MetaRule &rule : other.rules)
              references += rule.target == chain.name;
        appendf(text, "Chain %s (%u references)\n", chain.name.c_str(),
                references);
      }
      appendf(text, "%8s %10s %-9s  prot opt %-6s %-6s  %-19s  %-19s \n",
              "pkts", "bytes", "target", "in", "out", "source", "destination");
      for (const MetaRule &rule : chain.rules)
        appendRule(text, rule, counter(rule.slot));
    }
  }

  if (!text.empty() &&
      std::fwrite(text.data(), 1, text.size(), out) != text.size())
    throw sysError("cannot write the statistics", errno);
}

} // namespace r2x::runtime
