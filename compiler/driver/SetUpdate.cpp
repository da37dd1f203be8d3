//===- compiler/driver/SetUpdate.cpp - --set-add / --set-del --------------===//
#include "compiler/driver/SetUpdate.h"

#include "compiler/backend/Sets.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/SetsFile.h"
#include "runtime/Loader.h"
#include "runtime/contract/Object.h"

namespace r2x::driver {

void updateSet(bool add, const std::string &name, const std::string &entry,
               const std::string &iface) {
  const char *option = add ? "--set-add" : "--set-del";
  std::string create = runtime::setCreateOptions(iface, name);
  // The set as the program has it, and the entry as an `add` line of it.
  const std::string text =
      "create " + name + " " + create + "\nadd " + name + " " + entry + "\n";
  ir::Program p;
  frontend::SourceManager sm;
  try {
    frontend::parseSetsFile(option, text, sm, p);
  } catch (const frontend::Diagnostic &d) {
    throw frontend::Diagnostic({"<command line>", 0, 0, -1},
                               std::string(option) + " " + name + " `" + entry +
                                   "': " + d.what());
  }
  const ir::IpSet &set = p.sets.at(0);
  const ir::IpSet::Entry &e = set.entries.at(0);
  runtime::updateSet(iface, name, backend::setKey(set, e),
                     e.nomatch ? contract::SetNomatch : contract::SetMatch,
                     add);
}

} // namespace r2x::driver
