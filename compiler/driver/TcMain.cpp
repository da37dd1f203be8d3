//===- compiler/driver/TcMain.cpp - the --tc / --tc-batch path
//---------------===//
//
/// \file
/// See TcMain.h. Each --tc value is split into words as tc -batch splits a
/// line; positions point into the argument on the command line, so errors
/// show the caret under the offending word.
//===----------------------------------------------------------------------===//
#include "compiler/driver/TcMain.h"

#include "compiler/backend/TcBackend.h"
#include "compiler/frontend/TcParser.h"
#include "runtime/Loader.h"

#include <fstream>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace r2x::driver {

std::optional<std::string> runTc(const TcRequest &req,
                                 const std::vector<std::string> &argv,
                                 frontend::SourceManager &sm) {
  frontend::TcBuilder builder(req.passUnsupported);
  std::vector<frontend::Word> words = sm.commandLineWords(argv, 1);
  ir::SourcePos cmdline{"<command line>", 0, 0, -1};
  if (!req.batch.empty()) {
    std::string text;
    std::string name = req.batch == "-" ? "<stdin>" : req.batch;
    if (req.batch == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      std::ifstream f(req.batch, std::ios::binary);
      if (!f)
        throw frontend::Diagnostic(cmdline, "cannot read " + req.batch);
      text.assign(std::istreambuf_iterator<char>(f), {});
    }
    frontend::parseTcBatch(name, text, sm, builder);
    cmdline = {name, 0, 0, -1};
  }
  // Each --tc value, found in argv (as `--tc VALUE` or `--tc=VALUE`) so
  // its words carry their columns on the displayed command line.
  size_t next = 0;
  for (const std::string &cmd : req.commands) {
    ir::SourcePos start{"<command line>", 0, 0, -1};
    for (size_t i = next; i < words.size(); ++i) {
      const std::string &t = words[i].text;
      if (t == "--tc" && i + 1 < words.size() && words[i + 1].text == cmd) {
        start = words[i + 1].pos;
        next = i + 2;
        break;
      }
      if (t == "--tc=" + cmd) {
        start = frontend::advance(words[i].pos, 5);
        next = i + 1;
        break;
      }
    }
    std::vector<frontend::Word> cw = frontend::splitTcLine(cmd, start);
    builder.command(cw, frontend::advance(start, cmd.size()));
  }
  ir::tc::Program program = builder.finish(cmdline);

  if (!req.load.empty()) {
    if (req.emit != "obj")
      throw frontend::Diagnostic({"<command line>", 0, 0, -1},
                                 "--load takes an object: drop --emit");
    std::string obj = backend::compileTc(program, backend::Emit::Obj);
    runtime::load(req.load, req.loadOptions,
                  std::vector<uint8_t>(obj.begin(), obj.end()));
    return std::nullopt;
  }
  if (req.emit == "ir")
    return ir::tc::print(program);
  if (req.emit == "llvm")
    return backend::compileTc(program, backend::Emit::LLVM);
  if (req.emit == "asm")
    return backend::compileTc(program, backend::Emit::Asm);
  if (req.output.empty() || (req.output == "-" && isatty(STDOUT_FILENO)))
    throw frontend::Diagnostic({"<command line>", 0, 0, -1},
                               "an object needs an output file: add -o FILE.o");
  return backend::compileTc(program, backend::Emit::Obj);
}

} // namespace r2x::driver
