//===- compiler/frontend/Diagnostics.h - positions and messages -*- C++ -*-===//
//
/// \file
/// One formatter for every error and warning of every frontend:
///   FILE:LINE:COL: error: MESSAGE         (files)
///   <command line>:argument N: error: ... (argv)
/// followed by the source line and a caret under the column, as compilers
/// print them. The same words appear in docs/ and the lit tests.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace r2x::frontend {

/// A word of input (an argv element, or a token of a file line) and where it
/// starts.
struct Word {
  std::string text;
  ir::SourcePos pos;
};

/// A rejected input. `pos` points at the offending word (or a column inside
/// it); `length` is how many columns to underline.
struct Diagnostic : std::runtime_error {
  Diagnostic(ir::SourcePos pos, const std::string &msg, unsigned length = 1)
      : std::runtime_error(msg), pos(std::move(pos)), length(length) {}
  ir::SourcePos pos;
  unsigned length;
};

/// The text lines positions refer to, so the formatter can show them.
class SourceManager {
public:
  /// Registers a file's (or stdin's) text under `name`.
  void addFile(const std::string &name, const std::string &text);
  /// Makes words of argv[first..] with positions, and remembers the command
  /// line for display. Word i has pos.arg == first + i.
  std::vector<Word> commandLineWords(const std::vector<std::string> &argv,
                                     size_t first);
  /// Registers a single-line source for words made by the caller.
  void setCommandLine(const std::string &line) { cmdline_ = line; }
  std::string lineOf(const ir::SourcePos &pos) const;

private:
  struct File {
    std::string name, text;
    std::vector<size_t> starts; ///< each line's first offset in `text`
  };
  std::vector<File> files_;
  std::string cmdline_;
};

enum class Severity { Error, Warning };

/// Formats "LOCATION: error: MESSAGE\n  LINE\n  CARET\n".
std::string format(const SourceManager &sm, Severity sev,
                   const ir::SourcePos &pos, const std::string &msg,
                   unsigned length = 1);

/// `pos` moved `offset` columns to the right (inside the same word).
ir::SourcePos advance(ir::SourcePos pos, size_t offset);

/// The one way a frontend rejects a word: throws a Diagnostic pointing
/// `offset` columns into `w`, underlining `length` columns (0: to the end
/// of the word, at least one).
[[noreturn]] void failAt(const Word &w, const std::string &msg,
                         size_t offset = 0, size_t length = 0);

} // namespace r2x::frontend
