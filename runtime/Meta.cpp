//===- runtime/Meta.cpp - read the metadata a rule2xdp object carries -----===//
//
/// \file
/// Parser for the TAB-separated metadata text (format in Meta.h), the
/// iptables interface-pattern match, and the search for the text inside a
/// `.rodata` image.
//===----------------------------------------------------------------------===//

#include "runtime/Meta.h"
#include "runtime/Support.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string_view>
#include <utility>

namespace r2x::runtime {

namespace {

/// IFNAMSIZ from <net/if.h>, spelled out so this file needs no system
/// headers: a name (or pattern, '+' included) has at most 15 characters.
constexpr std::size_t MaxIfaceName = 16 - 1;

/// Splits on TAB, keeping empty fields: an empty EXTRA is meaningful.
std::vector<std::string_view> splitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  for (;;) {
    std::size_t tab = line.find('\t');
    fields.push_back(line.substr(0, tab));
    if (tab == std::string_view::npos)
      return fields;
    line.remove_prefix(tab + 1);
  }
}

[[noreturn]] void fail(unsigned lineNo, const std::string &msg) {
  throw std::runtime_error("metadata line " + std::to_string(lineNo) + ": " +
                           msg);
}

/// A plain decimal number: no sign, no spaces, no trailing garbage.
unsigned parseNumber(std::string_view text, unsigned lineNo, const char *what) {
  unsigned value = 0;
  const char *end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end)
    fail(lineNo, std::string("bad ") + what + " '" + std::string(text) + "'");
  return value;
}

void expectFields(const std::vector<std::string_view> &fields,
                  std::size_t count, unsigned lineNo) {
  if (fields.size() != count)
    fail(lineNo, "'" + std::string(fields[0]) + "' record has " +
                     std::to_string(fields.size()) + " fields, expected " +
                     std::to_string(count));
}

} // namespace

Meta parseMeta(const std::string &text) {
  Meta meta;
  // Index of each chain in meta.chains by (table, chain): rules look it up.
  std::map<std::pair<std::string, std::string>, std::size_t> chainIndex;
  uint64_t bitsSeen = 0;

  std::string_view rest = text;
  unsigned lineNo = 0;
  bool sawHeader = false;
  while (!rest.empty()) {
    std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    ++lineNo;

    if (!sawHeader) {
      auto fields = splitTabs(line);
      if (fields.size() != 2 || fields[0] != "rule2xdp-meta")
        fail(lineNo, "expected the header 'rule2xdp-meta<TAB>1'");
      if (fields[1] != "1")
        fail(lineNo,
             "unsupported metadata version '" + std::string(fields[1]) + "'");
      sawHeader = true;
      continue;
    }
    if (line.empty())
      continue;

    auto fields = splitTabs(line);
    std::string_view kind = fields[0];
    if (kind == "iface") {
      expectFields(fields, 3, lineNo);
      unsigned bit = parseNumber(fields[1], lineNo, "iface bit");
      if (bit > 63)
        fail(lineNo, "iface bit " + std::to_string(bit) + " is not in 0..63");
      if (bitsSeen & (uint64_t(1) << bit))
        fail(lineNo, "iface bit " + std::to_string(bit) + " defined twice");
      bitsSeen |= uint64_t(1) << bit;
      std::string_view pattern = fields[2];
      if (pattern.empty() || pattern.size() > MaxIfaceName)
        fail(lineNo, "bad interface pattern '" + std::string(pattern) + "'");
      meta.ifaces.push_back({bit, std::string(pattern)});
    } else if (kind == "chain") {
      expectFields(fields, 5, lineNo);
      MetaChain chain;
      chain.table = fields[1];
      chain.name = fields[2];
      chain.policy = fields[3];
      if (chain.table.empty() || chain.name.empty())
        fail(lineNo, "chain record without a table or a name");
      if (fields[4] != "-") {
        unsigned slot = parseNumber(fields[4], lineNo, "chain slot");
        if (slot > unsigned(INT_MAX))
          fail(lineNo, "bad chain slot '" + std::string(fields[4]) + "'");
        chain.slot = int(slot);
      }
      auto key = std::make_pair(chain.table, chain.name);
      if (chainIndex.count(key))
        fail(lineNo,
             "chain " + chain.table + "/" + chain.name + " defined twice");
      chainIndex.emplace(std::move(key), meta.chains.size());
      meta.chains.push_back(std::move(chain));
    } else if (kind == "rule") {
      // EXTRA is last and takes the rest of the line: a comment match may
      // print text we do not want to cut at a TAB.
      if (fields.size() < 12)
        fail(lineNo, "'rule' record has " + std::to_string(fields.size()) +
                         " fields, expected 12");
      MetaRule rule;
      rule.slot = parseNumber(fields[1], lineNo, "rule slot");
      rule.table = fields[2];
      rule.chain = fields[3];
      rule.target = fields[4];
      rule.prot = fields[5];
      rule.opt = fields[6];
      rule.in = fields[7];
      rule.out = fields[8];
      rule.source = fields[9];
      rule.destination = fields[10];
      const char *extraStart = fields[11].data();
      rule.extra = std::string(extraStart, line.data() + line.size());
      auto it = chainIndex.find({rule.table, rule.chain});
      if (it == chainIndex.end())
        fail(lineNo, "rule for chain " + rule.table + "/" + rule.chain +
                         ", which no earlier 'chain' record defines");
      meta.chains[it->second].rules.push_back(std::move(rule));
    }
    // Any other kind: a newer compiler's record, ignored on purpose.
  }
  if (!sawHeader)
    fail(1, "expected the header 'rule2xdp-meta<TAB>1'");
  return meta;
}

bool ifaceMatches(const std::string &pattern, const std::string &name) {
  // iptables compares at most IFNAMSIZ bytes; a longer name cannot exist, so
  // it never matches rather than matching on a truncated prefix.
  if (name.size() > MaxIfaceName)
    return false;
  if (!pattern.empty() && pattern.back() == '+') {
    std::string_view prefix(pattern.data(), pattern.size() - 1);
    return std::string_view(name).substr(0, prefix.size()) == prefix;
  }
  return pattern == name;
}

namespace detail {

std::string findMetaText(const void *image, std::size_t size) {
  std::string_view bytes(static_cast<const char *>(image), size);
  std::size_t start = bytes.find(MetaMagic);
  if (start == std::string_view::npos)
    return {};
  std::string_view text = bytes.substr(start);
  return std::string(text.substr(0, text.find('\0')));
}

} // namespace detail

} // namespace r2x::runtime
