//===- test/tools/doc_tables.cpp - the docs' tables from the code ---------===//
//
/// \file
/// Prints a Markdown table made from the frontend's own tables, so the docs
/// cannot drift from what the code reads:
///   doc_tables matches    every match module rule2xdp compiles, its
///                         families and options (docs/matches.md)
///   doc_tables handover   every module and target hand-over mode knows by
///                         name and does not compile, with the reason the
///                         listing gives (docs/handover.md)
/// test/docs/check_tables.sh compares them with the docs (ctest
/// docs_tables) and, with --fix, writes them in.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/Handover.h"
#include "compiler/frontend/Matches.h"

#include <cstdio>
#include <string>
#include <vector>

namespace {

using namespace r2x::frontend;

/// `[!] --a ARG`/`--b ARG`: options with the same id are one option with
/// several names.
std::string options(const std::vector<ModuleOption> &opts, bool byId) {
  std::string out;
  std::vector<bool> done(opts.size(), false);
  for (size_t i = 0; i < opts.size(); ++i) {
    if (done[i])
      continue;
    std::string names;
    for (size_t j = i; j < opts.size(); ++j)
      if (j == i || (byId && !done[j] && opts[j].id == opts[i].id &&
                     opts[j].args == opts[i].args)) {
        done[j] = true;
        names += (names.empty() ? "`--" : "`/`--") + std::string(opts[j].name);
      }
    names += opts[i].args ? " ARG`" : "`";
    if (opts[i].negatable)
      names = "[!] " + names;
    out += (out.empty() ? "" : ", ") + names;
  }
  return out.empty() ? "(none)" : out;
}

std::string families(const ModuleSpec &m) {
  bool v4 = moduleFits(m, r2x::ir::Family::V4);
  bool v6 = moduleFits(m, r2x::ir::Family::V6);
  return v4 && v6 ? "both" : v4 ? "iptables" : "ip6tables";
}

} // namespace

int main(int argc, char **argv) {
  std::string which = argc == 2 ? argv[1] : "";
  if (which == "matches") {
    std::puts("| module | families | options |");
    std::puts("|---|---|---|");
    for (const ModuleSpec *m : compiledModules())
      std::printf("| `-m %s` | %s | %s |\n", m->name, families(*m).c_str(),
                  options(m->options, true).c_str());
    return 0;
  }
  if (which == "handover") {
    std::puts("| kind | name | options read by name | why XDP hands it over |");
    std::puts("|---|---|---|---|");
    for (const HandoverEntry &e : handoverCatalog())
      std::printf("| %s | `%s%s` | %s | %s |\n", e.target ? "target" : "match",
                  e.target ? "-j " : "-m ", e.name.c_str(),
                  options(e.options, false).c_str(), e.reason.c_str());
    return 0;
  }
  std::fputs("usage: doc_tables matches|handover\n", stderr);
  return 2;
}
