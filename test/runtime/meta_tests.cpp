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
  return meta::header() + meta::format(meta::Iface, {"0", "eth+"}) +
         meta::format(meta::Iface, {"5", "veth-b"}) +
         meta::format(meta::Chain, {"filter", "INPUT", "DROP", "3"}) +
         meta::format(meta::Chain, {"filter", "mine", meta::None, meta::None}) +
         meta::format(meta::Rule,
                      {"0", "filter", "INPUT", "mine", "17", "--", "eth+", "*",
                       "0.0.0.0/0", "10.1.0.2", "udp dpt:1234 /* a\tb */"}) +
         meta::format(meta::Rule, {"1", "filter", "mine", "", "0", "--", "*",
                                   "*", "", "", ""}) +
         meta::format(meta::Redirect, {"0", "b1"}) +
         meta::format(meta::Redirect, {"1", "b2"});
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
  // A newer compiler's record kind is skipped; blank lines too.
  Meta n = parseMeta(sample() + "future\tx\ty\n\n");
  check(n.redirects.size() == 2 && n.chains.size() == 2,
        "unknown record kinds ignored");
}

void refusesBadTexts() {
  std::string h = meta::header();
  refusesText("", "expected the header 'rule2xdp-meta<TAB>1'");
  refusesText("iface\t0\teth0\n", "expected the header");
  refusesText("rule2xdp-meta\t2\n", "unsupported metadata version '2'");
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
  check(meta::header() == "rule2xdp-meta\t1\n", "the header line");
}

} // namespace

int main() {
  try {
    readsEveryKind();
    refusesBadTexts();
    writerChecksItsRecords();
  } catch (const std::exception &e) {
    std::printf("FAIL unexpected exception: %s\n", e.what());
    ++failures;
  }
  std::printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
