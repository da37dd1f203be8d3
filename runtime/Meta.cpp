//===- runtime/Meta.cpp - read the metadata a rule2xdp object carries -----===//
//
/// \file
/// The one reader of the TAB-separated metadata text (its format:
/// runtime/contract/Object.h, docs/object-contract.md): a dispatcher over
/// the record kinds with one parser each. Also the iptables
/// interface-pattern match, and the search for the text inside a `.rodata`
/// image.
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
#include <unordered_set>
#include <utility>

namespace r2x::runtime {

namespace {

namespace record = contract::meta;
using contract::MaxIfaceName;

/// Splits on TAB into `fields` (cleared first, its storage kept: one
/// record of 100,000 after another), keeping empty fields: an empty EXTRA
/// is meaningful.
void splitTabs(std::string_view line, std::vector<std::string_view> &fields) {
  fields.clear();
  for (;;) {
    std::size_t tab = line.find(record::Separator);
    fields.push_back(line.substr(0, tab));
    if (tab == std::string_view::npos)
      return;
    line.remove_prefix(tab + 1);
  }
}

std::vector<std::string_view> splitTabs(std::string_view line) {
  std::vector<std::string_view> fields;
  splitTabs(line, fields);
  return fields;
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

/// The reader's state: what is parsed so far, and what later records are
/// checked against.
class Reader {
public:
  Meta meta;

  /// One record (not the header): checked against its kind's field count,
  /// then handed to the kind's parser. Kinds this reader does not know are
  /// a newer compiler's records, ignored on purpose.
  void record(std::string_view line, unsigned lineNo) {
    lineNo_ = lineNo;
    line_ = line;
    splitTabs(line, fields_);
    struct Kind {
      const record::Record &spec;
      void (Reader::*parse)();
    };
    static constexpr Kind kinds[] = {{record::Iface, &Reader::iface},
                                     {record::Chain, &Reader::chain},
                                     {record::Rule, &Reader::rule},
                                     {record::Redirect, &Reader::redirect},
                                     {record::Key, &Reader::key},
                                     {record::Dnat, &Reader::dnat},
                                     {record::Mode, &Reader::mode},
                                     {record::Set, &Reader::set},
                                     {record::Log, &Reader::log},
                                     {record::LogLost, &Reader::logLost},
                                     {record::HandAll, &Reader::handAll},
                                     {record::Source, &Reader::source}};
    for (const Kind &kind : kinds)
      if (fields_[0] == kind.spec.name) {
        expectFields(kind.spec);
        (this->*kind.parse)();
        return;
      }
  }

private:
  std::string_view field(unsigned index) const { return fields_[index]; }

  /// A `restIsLast` kind's last field may hold TABs, so it has at least as
  /// many fields as the kind; any other kind exactly as many.
  void expectFields(const record::Record &spec) const {
    std::size_t n = fields_.size();
    if (spec.restIsLast ? n < spec.fields : n != spec.fields)
      fail(lineNo_, "'" + std::string(spec.name) + "' record has " +
                        std::to_string(n) + " fields, expected " +
                        std::to_string(spec.fields));
  }

  /// The last field of a `restIsLast` kind: to the end of the line.
  std::string rest(unsigned index) const {
    return std::string(field(index).data(), line_.data() + line_.size());
  }

  void iface() {
    namespace f = record::iface;
    unsigned bit = parseNumber(field(f::Bit), lineNo_, "iface bit");
    if (bit >= contract::MaxIfacePatterns)
      fail(lineNo_, "iface bit " + std::to_string(bit) + " is not in 0.." +
                        std::to_string(contract::MaxIfacePatterns - 1));
    if (bitsSeen_ & (uint64_t(1) << bit))
      fail(lineNo_, "iface bit " + std::to_string(bit) + " defined twice");
    bitsSeen_ |= uint64_t(1) << bit;
    std::string_view pattern = field(f::Pattern);
    if (pattern.empty() || pattern.size() > MaxIfaceName)
      fail(lineNo_, "bad interface pattern '" + std::string(pattern) + "'");
    meta.ifaces.push_back({bit, std::string(pattern)});
  }

  void chain() {
    namespace f = record::chain;
    MetaChain chain;
    chain.table = field(f::Table);
    chain.name = field(f::Name);
    chain.policy = field(f::Policy);
    if (chain.table.empty() || chain.name.empty())
      fail(lineNo_, "chain record without a table or a name");
    if (field(f::Slot) != record::None) {
      unsigned slot = parseNumber(field(f::Slot), lineNo_, "chain slot");
      if (slot > unsigned(INT_MAX))
        fail(lineNo_, "bad chain slot '" + std::string(field(f::Slot)) + "'");
      chain.slot = int(slot);
    }
    auto key = std::make_pair(chain.table, chain.name);
    if (chainIndex_.count(key))
      fail(lineNo_,
           "chain " + chain.table + "/" + chain.name + " defined twice");
    chainIndex_.emplace(std::move(key), meta.chains.size());
    meta.chains.push_back(std::move(chain));
  }

  /// EXTRA is last and takes the rest of the line: a comment match may
  /// print text we do not want to cut at a TAB.
  void rule() {
    namespace f = record::rule;
    MetaRule rule;
    rule.slot = parseNumber(field(f::Slot), lineNo_, "rule slot");
    rule.table = field(f::Table);
    rule.chain = field(f::Chain);
    rule.target = field(f::Target);
    rule.prot = field(f::Prot);
    rule.opt = field(f::Opt);
    rule.in = field(f::In);
    rule.out = field(f::Out);
    rule.source = field(f::Source);
    rule.destination = field(f::Destination);
    rule.extra = rest(f::Extra);
    auto it = chainIndex_.find({rule.table, rule.chain});
    if (it == chainIndex_.end())
      fail(lineNo_, "rule for chain " + rule.table + "/" + rule.chain +
                        ", which no earlier 'chain' record defines");
    meta.chains[it->second].rules.push_back(std::move(rule));
  }

  void redirect() {
    namespace f = record::redirect;
    unsigned slot = parseNumber(field(f::Slot), lineNo_, "redirect slot");
    std::string_view dev = field(f::Dev);
    if (dev.empty() || dev.size() > MaxIfaceName)
      fail(lineNo_, "bad redirect device '" + std::string(dev) + "'");
    for (const MetaRedirect &r : meta.redirects)
      if (r.slot == slot)
        fail(lineNo_,
             "redirect slot " + std::to_string(slot) + " defined twice");
    meta.redirects.push_back({slot, std::string(dev)});
  }

  void key() {
    namespace f = record::key;
    unsigned slot = parseNumber(field(f::Slot), lineNo_, "key slot");
    std::string_view key = field(f::Key);
    if (key.empty())
      fail(lineNo_, "empty key for counter slot " + std::to_string(slot));
    if (!keysSeen_.emplace(key).second)
      fail(lineNo_, "key '" + std::string(key) + "' names two counter slots");
    // Slots come in order: the hint makes each insert constant time.
    std::size_t before = meta.keys.size();
    meta.keys.emplace_hint(meta.keys.end(), slot, std::string(key));
    if (meta.keys.size() == before)
      fail(lineNo_, "counter slot " + std::to_string(slot) + " has two keys");
  }

  void source() {
    std::string_view kind = field(record::source::Kind);
    std::string rest = this->rest(record::source::Rest);
    if (kind == record::SourceLine) {
      if (meta.source.empty() || !meta.source.back().file)
        fail(lineNo_, "source line without a source file");
      meta.source.back().text += rest + "\n";
      return;
    }
    std::vector<std::string_view> parts = splitTabs(rest);
    MetaSource s;
    if (parts[0] != "4" && parts[0] != "6")
      fail(lineNo_, "source family '" + std::string(parts[0]) + "'");
    s.family = parts[0] == "6" ? 6 : 4;
    if (kind == record::SourceFile) {
      if (parts.size() < 2)
        fail(lineNo_, "source file without a name");
      s.file = true;
      s.name = rest.substr(2);
    } else if (kind == record::SourceRule) {
      for (std::size_t i = 1; i < parts.size(); ++i)
        s.words.push_back(decodeWord(parts[i]));
    } else {
      return; // a newer compiler's kind
    }
    meta.source.push_back(std::move(s));
  }

  /// contract::meta::encodeWord() undone.
  std::string decodeWord(std::string_view w) const {
    if (w == "%00")
      return {};
    std::string out;
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (w[i] != '%') {
        out += w[i];
        continue;
      }
      auto hex = [&](char c) -> int {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
      };
      if (i + 2 >= w.size() || hex(w[i + 1]) < 0 || hex(w[i + 2]) < 0)
        fail(lineNo_, "bad word '" + std::string(w) + "' in a source record");
      out += char(hex(w[i + 1]) << 4 | hex(w[i + 2]));
      i += 2;
    }
    return out;
  }

  void handAll() {
    meta.handAll = rest(record::handAll::Reason);
    if (meta.handAll.empty())
      fail(lineNo_, "handall record without a reason");
  }

  void dnat() {
    std::string_view address = field(record::dnat::Address);
    if (address.empty())
      fail(lineNo_, "dnat record without an address");
    meta.dnat.emplace_back(address);
  }

  void mode() {
    std::string_view mode = field(record::mode::Mode);
    if (modes_++)
      fail(lineNo_, "a second 'mode' record");
    if (mode == record::ModeHandover)
      meta.handover = true;
    else if (mode != record::ModeStandalone)
      fail(lineNo_, "unknown mode '" + std::string(mode) + "'");
  }

  void set() {
    namespace f = record::set;
    MetaSet s;
    s.map = field(f::Map);
    s.offset = parseNumber(field(f::Offset), lineNo_, "set offset");
    s.entries = parseNumber(field(f::Entries), lineNo_, "set entries");
    s.name = field(f::Name);
    s.create = rest(f::Create);
    if (s.map.rfind(contract::SetMapPrefix, 0) != 0 || s.name.empty())
      fail(lineNo_, "bad set record");
    meta.sets.push_back(std::move(s));
  }

  void log() {
    namespace f = record::log;
    MetaLog l;
    unsigned slot = parseNumber(field(f::Slot), lineNo_, "log slot");
    unsigned family = parseNumber(field(f::Family), lineNo_, "log family");
    unsigned level = parseNumber(field(f::Level), lineNo_, "log level");
    unsigned flags = parseNumber(field(f::Flags), lineNo_, "log flags");
    if ((family != 4 && family != 6) || level > 7 || flags > 0xff)
      fail(lineNo_, "bad log record");
    if (meta.logs.count(slot))
      fail(lineNo_, "log slot " + std::to_string(slot) + " defined twice");
    l.v6 = family == 6;
    l.level = uint8_t(level);
    l.flags = uint8_t(flags);
    l.prefix = rest(f::Prefix);
    meta.logs.emplace(slot, std::move(l));
  }

  void logLost() {
    meta.logLost =
        int(parseNumber(field(record::logLost::Slot), lineNo_, "loglost slot"));
  }

public:
  unsigned modes() const { return modes_; }

private:
  unsigned modes_ = 0;
  unsigned lineNo_ = 0;
  std::string_view line_;
  /// Views into the text parseMeta() reads, which outlives the reader.
  std::unordered_set<std::string_view> keysSeen_;
  std::vector<std::string_view> fields_;
  /// Index of each chain in meta.chains by (table, chain): rules look it up.
  std::map<std::pair<std::string, std::string>, std::size_t> chainIndex_;
  uint64_t bitsSeen_ = 0;
};

} // namespace

/// From version 2 on, every counter slot a chain or rule record names has
/// a key: a replacing load relies on them to keep counters.
void checkKeys(const Meta &meta) {
  if (meta.version < record::KeyedVersion)
    return;
  auto need = [&meta](unsigned slot, const std::string &what) {
    if (!meta.keys.count(slot))
      throw std::runtime_error("metadata: counter slot " +
                               std::to_string(slot) + " (" + what +
                               ") has no key record");
  };
  for (const MetaChain &chain : meta.chains) {
    if (chain.slot >= 0)
      need(unsigned(chain.slot), "the policy of " + chain.name);
    for (const MetaRule &rule : chain.rules)
      need(rule.slot, "a rule of " + chain.name);
  }
}

Meta parseMeta(const std::string &text) {
  const std::string expected = "expected the header '" +
                               std::string(record::Header.name) + "<TAB>" +
                               std::to_string(record::Version) + "'";
  Reader reader;
  std::string_view rest = text;
  unsigned lineNo = 0;
  bool sawHeader = false;
  while (!rest.empty()) {
    std::size_t nl = rest.find(record::EndOfRecord);
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    ++lineNo;

    if (!sawHeader) {
      auto fields = splitTabs(line);
      if (fields.size() != record::Header.fields ||
          fields[0] != record::Header.name)
        fail(lineNo, expected);
      unsigned version = 0;
      auto [end, ec] = std::from_chars(
          fields[1].data(), fields[1].data() + fields[1].size(), version);
      if (ec != std::errc() || end != fields[1].data() + fields[1].size() ||
          version < record::OldestVersion || version > record::Version)
        fail(lineNo,
             "unsupported metadata version '" + std::string(fields[1]) + "'");
      reader.meta.version = version;
      sawHeader = true;
      continue;
    }
    if (!line.empty())
      reader.record(line, lineNo);
  }
  if (!sawHeader)
    fail(1, expected);
  if (reader.meta.version >= record::ModeVersion && reader.modes() == 0)
    throw std::runtime_error("metadata: no 'mode' record");
  checkKeys(reader.meta);
  return std::move(reader.meta);
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
  std::size_t start = bytes.find(contract::meta::HeaderPrefix);
  if (start == std::string_view::npos)
    return {};
  std::string_view text = bytes.substr(start);
  return std::string(text.substr(0, text.find('\0')));
}

} // namespace detail

} // namespace r2x::runtime
