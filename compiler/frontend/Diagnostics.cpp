//===- compiler/frontend/Diagnostics.cpp - the one diagnostic formatter
//-----===//
//
/// \file
/// Positions and the caret display shared by every frontend.
//===----------------------------------------------------------------------===//
#include "compiler/frontend/Diagnostics.h"

#include <algorithm>
#include <sstream>

namespace r2x::frontend {

void SourceManager::addFile(const std::string &name, const std::string &text) {
  // The text once and where each line starts (a copy per line cost a
  // million allocations for a 1,000,000-entry set file).
  File f{name, text, {0}};
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n')
      f.starts.push_back(i + 1);
  files_.push_back(std::move(f));
}

std::vector<Word>
SourceManager::commandLineWords(const std::vector<std::string> &argv,
                                size_t first) {
  std::vector<Word> words;
  std::string line = "rule2xdp";
  for (size_t i = first; i < argv.size(); ++i) {
    line += ' ';
    Word w;
    w.text = argv[i];
    w.pos.file = "<command line>";
    w.pos.col = static_cast<unsigned>(line.size() + 1);
    w.pos.arg = static_cast<int>(i);
    line += argv[i];
    words.push_back(std::move(w));
  }
  cmdline_ = line;
  return words;
}

std::string SourceManager::lineOf(const ir::SourcePos &pos) const {
  if (pos.arg >= 0)
    return cmdline_;
  for (const File &f : files_) {
    // The last start is the end of the text when it ends with a newline.
    size_t lines = f.starts.size() -
                   (f.starts.back() == f.text.size() && f.starts.size() > 1);
    if (f.name != pos.file || pos.line < 1 || pos.line > lines)
      continue;
    size_t from = f.starts[pos.line - 1];
    size_t to = f.text.find('\n', from);
    return f.text.substr(from, to == std::string::npos ? std::string::npos
                                                       : to - from);
  }
  return {};
}

ir::SourcePos advance(ir::SourcePos pos, size_t offset) {
  pos.col += static_cast<unsigned>(offset);
  return pos;
}

std::string format(const SourceManager &sm, Severity sev,
                   const ir::SourcePos &pos, const std::string &msg,
                   unsigned length) {
  std::ostringstream os;
  if (pos.arg >= 0)
    os << pos.file << ":argument " << pos.arg;
  else if (pos.line > 0)
    os << pos.file << ":" << pos.line << ":" << pos.col;
  else
    os << (pos.file.empty() ? "rule2xdp" : pos.file);
  os << (sev == Severity::Error ? ": error: " : ": warning: ") << msg << "\n";
  std::string line = sm.lineOf(pos);
  if (!line.empty() && pos.col >= 1) {
    os << "  " << line << "\n  ";
    for (unsigned i = 1; i < pos.col; ++i)
      os << (i - 1 < line.size() && line[i - 1] == '\t' ? '\t' : ' ');
    os << '^';
    for (unsigned i = 1; i < length; ++i)
      os << '~';
    os << "\n";
  }
  return os.str();
}

void failAt(const Word &w, const std::string &msg, size_t offset,
            size_t length) {
  if (length == 0)
    length =
        std::max<size_t>(1, w.text.size() - std::min(offset, w.text.size()));
  throw Diagnostic(advance(w.pos, offset), msg, static_cast<unsigned>(length));
}

} // namespace r2x::frontend
