//===- compiler/frontend/SaveFile.cpp - iptables-save / -restore input
//------===//
//
/// \file
/// See SaveFile.h.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/SaveFile.h"

#include "compiler/frontend/Handover.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace r2x::frontend {
namespace {

ir::SourcePos at(const std::string &file, unsigned line, size_t col) {
  ir::SourcePos p;
  p.file = file;
  p.line = line;
  p.col = static_cast<unsigned>(col + 1);
  return p;
}

/// Splits a line into words the way iptables-restore does: blanks separate,
/// quotes group, a backslash escapes the next character inside quotes.
std::vector<Word> splitWords(const std::string &file, unsigned lineNo,
                             const std::string &line) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < line.size()) {
    if (std::isspace(static_cast<unsigned char>(line[i]))) {
      ++i;
      continue;
    }
    Word w;
    w.pos = at(file, lineNo, i);
    while (i < line.size() &&
           !std::isspace(static_cast<unsigned char>(line[i]))) {
      char c = line[i];
      if (c == '"' || c == '\'') {
        size_t open = i++;
        while (i < line.size() && line[i] != c) {
          if (line[i] == '\\' && i + 1 < line.size())
            ++i;
          w.text += line[i++];
        }
        if (i >= line.size())
          throw Diagnostic(at(file, lineNo, open), "unterminated quote");
        ++i;
      } else {
        w.text += c;
        ++i;
      }
    }
    words.push_back(std::move(w));
  }
  return words;
}

/// "[12:345]": a counters prefix or suffix.
bool isCounters(const std::string &s) {
  if (s.size() < 5 || s.front() != '[' || s.back() != ']')
    return false;
  size_t colon = s.find(':');
  if (colon == std::string::npos || colon == 1 || colon == s.size() - 2)
    return false;
  for (size_t k = 1; k + 1 < s.size(); ++k)
    if (k != colon && !std::isdigit(static_cast<unsigned char>(s[k])))
      return false;
  return true;
}

struct Section {
  std::string name;
  Word where;
  std::optional<ir::Table>
      table; ///< empty: a table not compiled (must stay empty)
  /// Hand-over mode, security table: its rules are read into `kernelOnly`
  /// as if they were filter's (same chains), then listed as kernel-only.
  std::shared_ptr<ir::Program> kernelOnly;
  bool broken = false; ///< its `*table` line was an error: skip to COMMIT
};

} // namespace

std::optional<ir::Family> detectFamily(const std::string &name,
                                       const std::string &text) {
  std::optional<ir::Family> found;
  const Word *evidence = nullptr;
  std::vector<Word> keep; // the words of the line that decided
  unsigned lineNo = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(
        start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? text.size() : nl + 1;
    ++lineNo;
    // A comment says nothing of the family, even when it quotes an
    // option ("a -d rule"): iptables-restore skips it.
    if (size_t f = line.find_first_not_of(" \t");
        f != std::string::npos && line[f] == '#')
      continue;
    std::vector<Word> words;
    try {
      words = splitWords(name, lineNo, line);
    } catch (const Diagnostic &) {
      continue; // the parser reports it
    }
    for (size_t i = 0; i < words.size(); ++i) {
      const std::string &w = words[i].text;
      std::optional<ir::Family> says;
      bool addrOpt = w == "-s" || w == "-d" || w == "--source" ||
                     w == "--src" || w == "--destination" || w == "--dst";
      if (addrOpt && i + 1 < words.size())
        says = words[i + 1].text.find(':') != std::string::npos
                   ? ir::Family::V6
                   : ir::Family::V4;
      if (w == "icmp6" || w == "hl" || w == "--icmpv6-type" || w == "icmpv6" ||
          w == "ipv6-icmp")
        says = ir::Family::V6;
      if ((w == "icmp" && i > 0 &&
           (words[i - 1].text == "-p" || words[i - 1].text == "-m")) ||
          w == "ttl" || w == "-f" || w == "--icmp-type")
        says = ir::Family::V4;
      if (!says)
        continue;
      if (found && *found != *says) {
        const Word &culprit = addrOpt ? words[i + 1] : words[i];
        throw Diagnostic(
            culprit.pos,
            std::string("this file mixes IPv4 and IPv6 rules (`") +
                culprit.text + "' is " +
                (*says == ir::Family::V6 ? "IPv6" : "IPv4") + " but line " +
                std::to_string(evidence->pos.line) +
                " is not): give iptables and ip6tables rules in separate files",
            static_cast<unsigned>(culprit.text.size()));
      }
      if (!found) {
        found = says;
        keep = words;
        evidence = &keep[i];
      }
    }
  }
  return found;
}

namespace {

/// One file's reading state: the open section, and what each line is
/// applied to.
struct Reader {
  const std::string &name;
  ir::Program &prog;
  std::vector<Warning> &warnings;
  ir::Family family;
  std::optional<Section> open;
  std::unordered_map<std::string, size_t> appends; ///< CommandContext's

  void line(unsigned lineNo, const std::string &line);
  void tableLine(const std::vector<Word> &words);
  void commitLine(const Word &first);
  void chainLine(const std::vector<Word> &words);
  void ruleLine(const std::vector<Word> &words);
  [[noreturn]] void unsupportedTable(const Word &w) const;
  void rule(std::vector<Word> cmd);
};

} // namespace

void parseSaveFile(const std::string &name, const std::string &text,
                   SourceManager &sm, ir::Program &prog,
                   std::vector<Warning> &warnings, ir::Family family,
                   std::vector<Diagnostic> *errors) {
  sm.addFile(name, text);
  Reader rd{name, prog, warnings, family, std::nullopt, {}};
  for (size_t at = 0; at < text.size();) {
    size_t nl = std::min(text.find('\n', at), text.size());
    if (text.compare(at, 3, "-A ") == 0) {
      size_t end = text.find_first_of(" \t\r\n", at + 3);
      ++rd.appends[text.substr(at + 3, std::min(end, nl) - at - 3)];
    }
    at = nl + 1;
  }
  unsigned lineNo = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(
        start, nl == std::string::npos ? std::string::npos : nl - start);
    ++lineNo;
    if (nl == std::string::npos && line.empty())
      break;
    start = nl == std::string::npos ? text.size() + 1 : nl + 1;
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (!errors) {
      rd.line(lineNo, line);
      continue;
    }
    try {
      rd.line(lineNo, line);
    } catch (const Diagnostic &d) {
      errors->push_back(d);
    }
  }
  if (rd.open) {
    Diagnostic d(rd.open->where.pos,
                 "table `" + rd.open->name +
                     "' is never closed: COMMIT expected",
                 static_cast<unsigned>(rd.open->where.text.size()));
    if (!errors)
      throw d;
    errors->push_back(d);
  }
}

namespace {

/// One line of the file: a dispatcher over iptables-restore's line kinds.
void Reader::line(unsigned lineNo, const std::string &line) {
  // iptables-restore skips a line starting with '#' before splitting it
  // into words: quotes in a comment mean nothing.
  if (!line.empty() && line[0] == '#')
    return;
  std::vector<Word> words = splitWords(name, lineNo, line);
  if (words.empty() || words[0].text[0] == '#')
    return;
  const Word &first = words[0];
  if (first.text[0] == '*')
    return tableLine(words);
  if (first.text == "COMMIT")
    return commitLine(first);
  if (open && open->broken)
    return;
  if (!open)
    throw Diagnostic(first.pos,
                     "`" + first.text +
                         "' outside a table: a section starts with "
                         "`*filter' (or another table)",
                     static_cast<unsigned>(first.text.size()));
  if (first.text[0] == ':')
    return chainLine(words);
  ruleLine(words);
}

/// `*TABLE`: opens a section.
void Reader::tableLine(const std::vector<Word> &words) {
  const Word &first = words[0];
  if (open)
    throw Diagnostic(first.pos,
                     "table `" + open->name +
                         "' is not closed: COMMIT expected before `" +
                         first.text + "'",
                     static_cast<unsigned>(first.text.size()));
  if (words.size() > 1)
    throw Diagnostic(words[1].pos,
                     "unexpected words after `" + first.text + "'");
  Section s;
  s.name = first.text.substr(1);
  s.where = first;
  Word tw{s.name, advance(first.pos, 1)};
  if (s.name == "security") {
    s.table.reset(); // accepted only while empty
    if (prog.mode == ir::Mode::Handover)
      s.kernelOnly = std::make_shared<ir::Program>();
    open = s;
    return;
  }
  // An unknown table still opens a section (up to COMMIT), whose lines
  // are then not reported one by one.
  s.broken = true;
  open = s;
  open->table = parseTableName(tw);
  open->broken = false;
}

void Reader::commitLine(const Word &first) {
  if (!open)
    throw Diagnostic(first.pos, "COMMIT without a table (`*filter', ...)", 6);
  open.reset();
}

void Reader::unsupportedTable(const Word &w) const {
  throw Diagnostic(w.pos,
                   "table `" + open->name +
                       "' is not supported yet (its rules and "
                       "policies would change what packets see)",
                   static_cast<unsigned>(w.text.size()));
}

/// `:CHAIN POLICY [PKTS:BYTES]`: -P for a built-in chain, -N for `-`.
void Reader::chainLine(const std::vector<Word> &words) {
  const Word &first = words[0];
  std::string chain = first.text.substr(1);
  if (chain.empty() || words.size() < 2 || words.size() > 3 ||
      (words.size() == 3 && !isCounters(words[2].text)))
    throw Diagnostic(first.pos, "a chain line is `:CHAIN POLICY [PKTS:BYTES]'",
                     static_cast<unsigned>(first.text.size()));
  const std::string &policy = words[1].text;
  Word chainWord{chain, advance(first.pos, 1)};
  if (!open->table && !open->kernelOnly) {
    if (policy != "ACCEPT" && policy != "-")
      unsupportedTable(words[1]);
    return;
  }
  if (policy == "-")
    rule({Word{"-N", first.pos}, chainWord});
  else
    rule({Word{"-P", first.pos}, chainWord, words[1]});
}

/// `[PKTS:BYTES] -A ...`: a command, its counters prefix dropped.
void Reader::ruleLine(const std::vector<Word> &words) {
  const Word &first = words[0];
  size_t from = isCounters(first.text) ? 1 : 0;
  std::vector<Word> cmd(words.begin() + static_cast<long>(from), words.end());
  if (cmd.empty())
    throw Diagnostic(first.pos, "a counters prefix needs a rule after it");
  if (!open->table && !open->kernelOnly)
    unsupportedTable(cmd[0]);
  rule(std::move(cmd));
}

/// One command of the open section.
void Reader::rule(std::vector<Word> cmd) {
  bool handover = prog.mode == ir::Mode::Handover;
  if (!open->kernelOnly) {
    CommandContext ctx{family, open->table, &warnings, handover, &appends};
    parseCommand(cmd, prog, ctx);
    return;
  }
  // The security table (hand-over mode): after filter in INPUT, FORWARD and
  // OUTPUT, so it never changes a drop XDP decides. Its rules are read with
  // filter's chains for their syntax, then listed.
  CommandContext ctx{family, ir::Table::Filter, &warnings, handover};
  parseCommand(cmd, *open->kernelOnly, ctx);
  const std::string &c = cmd.front().text;
  if (c == "-A" || c == "-I" || c == "--append" || c == "--insert") {
    std::string text;
    for (const Word &w : cmd)
      text += (text.empty() ? "" : " ") + w.text;
    prog.kernelOnly.push_back(
        {cmd.front().pos, text, "the security table runs after filter"});
  }
}

} // namespace

} // namespace r2x::frontend
