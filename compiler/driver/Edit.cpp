//===- compiler/driver/Edit.cpp - changing a loaded ruleset ---------------===//
//
/// \file
/// See Edit.h.
//===----------------------------------------------------------------------===//
#include "compiler/driver/Edit.h"

#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"
#include "runtime/Loader.h"
#include "runtime/Meta.h"

namespace r2x::driver {

namespace {

/// The program's inputs replayed into `program`. They compiled before, so
/// an error here means the loaded program is not what its records say.
void replay(const std::vector<runtime::MetaSource> &source,
            const std::string &iface, frontend::SourceManager &sm,
            ir::Program &program) {
  // The commands, one a line, make a file of their own for diagnostics.
  const std::string cmdFile = "<rules loaded on " + iface + ">";
  std::string cmdText;
  for (const runtime::MetaSource &s : source)
    if (!s.file) {
      std::string line;
      for (const std::string &w : s.words)
        line += (line.empty() ? "" : " ") + w;
      cmdText += line + "\n";
    }
  sm.addFile(cmdFile, cmdText);
  unsigned cmdLine = 0;
  std::vector<frontend::Warning> warnings;
  std::vector<frontend::Diagnostic> errors;
  for (const runtime::MetaSource &s : source) {
    ir::Family fam = s.family == 6 ? ir::Family::V6 : ir::Family::V4;
    ir::SourcePart part;
    part.file = s.file;
    part.family = fam;
    if (s.file) {
      part.name = s.name;
      part.text = s.text;
      frontend::parseSaveFile(s.name, s.text, sm, program, warnings, fam,
                              &errors);
    } else {
      part.words = s.words;
      std::vector<frontend::Word> words;
      unsigned col = 1;
      ++cmdLine;
      for (const std::string &w : s.words) {
        words.push_back({w, ir::SourcePos{cmdFile, cmdLine, col, -1}});
        col += unsigned(w.size()) + 1;
      }
      frontend::CommandContext ctx;
      ctx.family = fam;
      frontend::parseCommand(words, program, ctx);
    }
    program.source.push_back(std::move(part));
  }
  if (!errors.empty())
    throw errors.front();
}

} // namespace

uint32_t readLoadedSource(const std::vector<std::string> &ifaces,
                          frontend::SourceManager &sm, ir::Program &program) {
  std::vector<runtime::LoadedProgram> loaded = runtime::loadedPrograms(ifaces);
  uint32_t id = loaded.front().progId;
  for (std::size_t k = 1; k < loaded.size(); ++k)
    if (loaded[k].progId != id)
      throw runtime::LoadError(
          ifaces[k] + " runs another program than " + ifaces.front() +
          ": change the ruleset of each alone, or load a whole ruleset (-f) "
          "on both");
  if (!id)
    return 0;
  const std::string &iface = ifaces.front();
  runtime::Meta meta = runtime::parseMeta(loaded.front().metaText);
  const std::string what = "rule2xdp's program on " + iface;
  if (meta.handover)
    throw runtime::LoadError(
        what + " was compiled in hand-over mode (--accelerate or "
               "--pass-unsupported): change the kernel's ruleset instead "
               "(--accelerate --follow keeps the program equal to it), or "
               "load a whole ruleset (-f)");
  if (!meta.sets.empty())
    throw runtime::LoadError(
        what + " tests ipset sets, whose entries may have changed since it "
               "was loaded (--set-add, --set-del): changing its rules in "
               "place is not supported yet; load the whole ruleset again "
               "(-f FILE --sets FILE)");
  if (meta.source.empty())
    throw runtime::LoadError(
        what + " does not carry the rules it was compiled from (an older "
               "rule2xdp's, or tc filters'): load a whole ruleset (-f), or "
               "--unload it first");
  replay(meta.source, iface, sm, program);
  return id;
}

} // namespace r2x::driver
