//===- test/runtime/meta_tests.cpp - the metadata format, both sides ------===//
//
/// \file
/// The metadata text of the object contract (runtime/contract/Object.h,
/// docs/object-contract.md) as its writer (contract::meta::format, used by
/// both code generators) produces it and its one reader (runtime::parseMeta)
/// takes it: every record kind read back, and every text the reader must
/// refuse, refused with its message. Needs no root: no kernel is involved.
//===----------------------------------------------------------------------===//
#include "runtime/Meta.h"
#include "runtime/contract/Object.h"

#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

namespace meta = r2x::contract::meta;
using r2x::runtime::Meta;
using r2x::runtime::parseMeta;

namespace {

int failures = 0, checks = 0;

void check(bool ok, const std::string &what) {
  ++checks;
  if (!ok) {
    ++failures;
    std::printf("FAIL %s\n", what.c_str());
  }
}

/// `f` throws an exception whose message contains `part`.
template <class E = std::exception>
void refuses(const std::function<void()> &f, const std::string &part,
             const std::string &what) {
  try {
    f();
    check(false, what + ": accepted");
  } catch (const E &e) {
    check(std::string(e.what()).find(part) != std::string::npos,
          what + ": message '" + e.what() + "' lacks '" + part + "'");
  }
}

void refusesText(const std::string &text, const std::string &part) {
  refuses<std::runtime_error>([&] { parseMeta(text); }, part,
                              "reading \"" + text + "\"");
}

/// A text with every record kind, written as the code generators write it.
std::string sample() {
  return meta::header() + meta::format(meta::Mode, {meta::ModeHandover}) +
         meta::format(meta::Iface, {"0", "eth+"}) +
         meta::format(meta::Iface, {"5", "veth-b"}) +
         meta::format(meta::Chain, {"filter", "INPUT", "DROP", "3"}) +
         meta::format(meta::Chain, {"filter", "mine", meta::None, meta::None}) +
         meta::format(meta::Rule,
                      {"0", "filter", "INPUT", "mine", "17", "--", "eth+", "*",
                       "0.0.0.0/0", "10.1.0.2", "udp dpt:1234 /* a\tb */"}) +
         meta::format(meta::Rule, {"1", "filter", "mine", "", "0", "--", "*",
                                   "*", "", "", ""}) +
         meta::format(meta::Redirect, {"0", "b1"}) +
         meta::format(meta::Redirect, {"1", "b2"}) +
         meta::format(meta::Key, {"3", "policy-key"}) +
         meta::format(meta::Key, {"0", "rule-key-0"}) +
         meta::format(meta::Key, {"1", "rule-key-1"}) +
         meta::format(meta::Dnat, {"10.1.1.2"}) +
         meta::format(meta::Dnat, {"2001:db8::2"});
}

void readsEveryKind() {
  Meta m = parseMeta(sample());
  check(m.ifaces.size() == 2 && m.ifaces[1].bit == 5 &&
            m.ifaces[1].pattern == "veth-b",
        "iface records");
  check(m.chains.size() == 2 && m.chains[0].slot == 3 &&
            m.chains[0].policy == "DROP" && m.chains[1].slot == -1,
        "chain records");
  check(m.chains[0].rules.size() == 1 && m.chains[1].rules.size() == 1,
        "rules under their chains");
  const auto &r = m.chains[0].rules[0];
  check(r.slot == 0 && r.target == "mine" && r.prot == "17" && r.in == "eth+" &&
            r.destination == "10.1.0.2" && r.extra == "udp dpt:1234 /* a\tb */",
        "rule columns, EXTRA with its TAB");
  check(m.chains[1].rules[0].extra.empty(), "an empty EXTRA");
  check(m.redirects.size() == 2 && m.redirects[0].slot == 0 &&
            m.redirects[0].dev == "b1" && m.redirects[1].dev == "b2",
        "redirect records");
  check(m.version == meta::VersionWithoutSets && m.keys.size() == 3 &&
            m.keys.at(3) == "policy-key" && m.keys.at(1) == "rule-key-1",
        "key records");
  check(m.dnat.size() == 2 && m.dnat[1] == "2001:db8::2", "dnat records");
  check(m.handover, "the mode record");
  check(!parseMeta(meta::header() + "mode\tstandalone\n").handover,
        "a standalone program");
  // Version 2 texts (before the mode record) read as standalone.
  check(!parseMeta("rule2xdp-meta\t2\n").handover, "a version 2 text");
  // A version 1 text (before keys) is still read, without keys.
  Meta old = parseMeta("rule2xdp-meta\t1\nchain\tfilter\tINPUT\tACCEPT\t0\n");
  check(old.version == 1 && old.keys.empty() && old.chains.size() == 1,
        "a version 1 text");
  // Version 4: `set` records.
  Meta sets = parseMeta(meta::header(meta::Version) +
                        "mode\tstandalone\nset\tr2x_set2\t48\t3\tblock\t"
                        "hash:ip family inet netmask 24\n");
  check(sets.version == meta::Version && sets.sets.size() == 1 &&
            sets.sets[0].map == "r2x_set2" && sets.sets[0].offset == 48 &&
            sets.sets[0].entries == 3 && sets.sets[0].name == "block" &&
            sets.sets[0].create == "hash:ip family inet netmask 24",
        "set records");
  // Version 5: `log` (the prefix may hold a TAB and end in a space) and
  // `loglost`.
  Meta logs = parseMeta(meta::header(meta::Version) +
                        "mode\tstandalone\nlog\t3\t6\t7\t34\ta\tb \n"
                        "loglost\t9\n");
  check(logs.logs.size() == 1 && logs.logs.at(3).v6 &&
            logs.logs.at(3).level == 7 && logs.logs.at(3).flags == 34 &&
            logs.logs.at(3).prefix == "a\tb " && logs.logLost == 9,
        "log records");
  // A newer compiler's record kind is skipped; blank lines too.
  Meta n = parseMeta(sample() + "future\tx\ty\n\n");
  check(n.redirects.size() == 2 && n.chains.size() == 2,
        "unknown record kinds ignored");
}

void refusesBadTexts() {
  std::string h = meta::header() + "mode\tstandalone\n";
  refusesText("", "expected the header 'rule2xdp-meta<TAB>5'");
  refusesText("iface\t0\teth0\n", "expected the header");
  refusesText("rule2xdp-meta\t6\n", "unsupported metadata version '6'");
  refusesText(
      "rule2xdp-meta\t4\nmode\tstandalone\nset\tother\t0\t1\tx\thash:ip\n",
      "bad set record");
  refusesText("rule2xdp-meta\t4\nmode\tstandalone\nset\tr2x_set0\t0\t1\tx\n",
              "'set' record has 5 fields, expected 6");
  refusesText("rule2xdp-meta\t3\n", "metadata: no 'mode' record");
  refusesText(h + "mode\thandover\n", "a second 'mode' record");
  refusesText(h + "log\t1\t5\t4\t0\tx\n", "bad log record");
  refusesText(h + "log\t1\t4\t8\t0\tx\n", "bad log record");
  refusesText(h + "log\t1\t4\t4\t0\tx\nlog\t1\t4\t4\t0\ty\n",
              "log slot 1 defined twice");
  refusesText(meta::header() + "mode\tfast\n", "unknown mode 'fast'");
  refusesText(meta::header() + "mode\n", "'mode' record has 1 fields");
  refusesText("rule2xdp-meta\t0\n", "unsupported metadata version '0'");
  refusesText("rule2xdp-meta\t2x\n", "unsupported metadata version '2x'");
  refusesText(h + "iface\t0\n", "'iface' record has 2 fields, expected 3");
  refusesText(h + "iface\t64\teth0\n", "iface bit 64 is not in 0..63");
  refusesText(h + "iface\t1\ta\niface\t1\tb\n", "iface bit 1 defined twice");
  refusesText(h + "iface\t0\t0123456789abcdef\n", "bad interface pattern");
  refusesText(h + "chain\tfilter\tINPUT\tACCEPT\n", "expected 5");
  refusesText(h + "chain\tfilter\tINPUT\tACCEPT\tx\n", "bad chain slot 'x'");
  refusesText(h + "chain\tf\tI\tACCEPT\t1\nchain\tf\tI\tDROP\t2\n",
              "chain f/I defined twice");
  refusesText(h + "rule\t0\tf\tI\tDROP\t0\t--\t*\t*\ts\td\n",
              "'rule' record has 11 fields, expected 12");
  refusesText(h + "rule\t0\tf\tI\tDROP\t0\t--\t*\t*\ts\td\t\n",
              "which no earlier 'chain' record defines");
  refusesText(h + "redirect\t0\n", "'redirect' record has 2 fields");
  refusesText(h + "redirect\t-1\tb1\n", "bad redirect slot '-1'");
  refusesText(h + "redirect\t0\t\n", "bad redirect device ''");
  refusesText(h + "redirect\t0\tb1\nredirect\t0\tb2\n",
              "redirect slot 0 defined twice");
  refusesText(h + "key\t0\n", "'key' record has 2 fields, expected 3");
  refusesText(h + "key\t0\ta\nkey\t0\tb\n", "counter slot 0 has two keys");
  refusesText(h + "key\t0\ta\nkey\t1\ta\n", "key 'a' names two counter slots");
  refusesText(h + "key\t0\t\n", "empty key for counter slot 0");
  refusesText(h + "chain\tfilter\tINPUT\tACCEPT\t4\n",
              "counter slot 4 (the policy of INPUT) has no key record");
  refusesText(h + "dnat\t\n", "dnat record without an address");
}

/// Keys name what a slot counts: the same rule gets the same key in any
/// position; identical rules are told apart by occurrence; a policy's key
/// depends on its chain only.
void keysAreStable() {
  meta::RuleKeys a, b;
  std::string a1 = a.rule("filter", "INPUT", {"DROP", "17", "udp dpt:1"});
  std::string a2 = a.rule("filter", "INPUT", {"DROP", "17", "udp dpt:2"});
  std::string b2 = b.rule("filter", "INPUT", {"DROP", "17", "udp dpt:2"});
  std::string b1 = b.rule("filter", "INPUT", {"DROP", "17", "udp dpt:1"});
  check(a1 == b1 && a2 == b2 && a1 != a2, "a rule's key ignores its position");
  check(a1.size() == 16 &&
            a1.find_first_not_of("0123456789abcdef") == std::string::npos,
        "16 hex digits");
  std::string again = a.rule("filter", "INPUT", {"DROP", "17", "udp dpt:1"});
  check(again != a1, "identical rules get distinct keys (occurrence)");
  check(a.rule("filter", "FORWARD", {"DROP", "17", "udp dpt:1"}) != a1,
        "the chain is part of the key");
  check(a.rule("filter", "INPUT", {"DROP", "17udp", " dpt:1"}) != b1,
        "columns do not run into each other");
  check(meta::RuleKeys::policy("filter", "INPUT") ==
                meta::RuleKeys::policy("filter", "INPUT") &&
            meta::RuleKeys::policy("filter", "INPUT") !=
                meta::RuleKeys::policy("ip6 filter", "INPUT"),
        "policy keys");
}

void writerChecksItsRecords() {
  refuses<std::logic_error>([] { meta::format(meta::Iface, {"0"}); },
                            "takes 2 values, not 1", "a short iface record");
  refuses<std::logic_error>(
      [] {
        meta::format(meta::Chain, {"filter", "IN\tPUT", "-", "-"});
      },
      "TAB or line break", "a TAB outside EXTRA");
  refuses<std::logic_error>(
      [] {
        meta::format(meta::Rule, {"0", "f", "I", "", "0", "--", "*", "*", "",
                                  "", "/* a\nb */"});
      },
      "line break", "a line break in EXTRA");
  check(meta::header() == "rule2xdp-meta\t3\n", "the header line");
}

/// `source` records: files line by line, commands word by word, every
/// byte of a word back as written.
void readsSources() {
  std::string odd = std::string("a b\tc%d") + char(0x7f);
  std::string text = meta::header() + "mode\tstandalone\n" +
                     "source\tfile\t6\tmy\tfile.rules\n" +
                     "source\tline\t*filter\n" +
                     "source\tline\t-A INPUT\t-j DROP\n" + "source\tline\t\n" +
                     "source\trule\t4\t-A\t" + meta::encodeWord(odd) + "\t" +
                     meta::encodeWord("") + "\n" + "source\tnewkind\t4\tx\n";
  Meta m = parseMeta(text);
  check(m.source.size() == 2 && m.source[0].file && m.source[0].family == 6 &&
            m.source[0].name == "my\tfile.rules" &&
            m.source[0].text == "*filter\n-A INPUT\t-j DROP\n\n",
        "a source file and its lines");
  check(!m.source[1].file && m.source[1].family == 4 &&
            m.source[1].words.size() == 3 && m.source[1].words[1] == odd &&
            m.source[1].words[2].empty(),
        "a source command's words, decoded");
  check(meta::encodeWord(odd).find_first_of(" \t\n") == std::string::npos,
        "an encoded word has no separator");
  refuses<std::runtime_error>(
      [] { parseMeta(meta::header() + "mode\tstandalone\nsource\tline\tx\n"); },
      "without a source file", "a line before its file");
  refuses<std::runtime_error>(
      [] {
        parseMeta(meta::header() + "mode\tstandalone\nsource\trule\t4\t%4\n");
      },
      "bad word", "a cut escape");
}

} // namespace

int main() {
  try {
    readsEveryKind();
    readsSources();
    refusesBadTexts();
    writerChecksItsRecords();
    keysAreStable();
  } catch (const std::exception &e) {
    std::printf("FAIL unexpected exception: %s\n", e.what());
    ++failures;
  }
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
