//===- compiler/frontend/TcParser.h - tc commands -> tc u32 IR ---*- C++
//-*-===//
//
/// \file
/// Reads `tc` commands (the words after `tc`) the way iproute2 6.1's tc and
/// its u32 module (tc/f_u32.c) read them, and applies them as the kernel's
/// cls_u32 would (net/sched/cls_u32.c): selectors are packed into 32-bit
/// keys exactly as tc packs them (so `match u16 1 0xffff at 1` means what
/// tc makes of it), filters get their pref (automatic prefs count down from
/// 49152, so a later filter runs first), root tables and knodes get their
/// handles as the kernel numbers them.
///
/// Accepted: `qdisc add dev D ingress|clsact`, `filter add dev D
/// (parent ffff:|ingress) [protocol ip|ipv6|all] [pref N] [handle H] u32 ...`.
/// Anything else (egress, other qdiscs, other classifiers, actions XDP cannot
/// perform) is a Diagnostic that names the part and says why.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/TcIR.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace r2x::frontend {

/// Splits one tc command line into words as tc's makeargs() does
/// (whitespace separates, double or single quotes group). `start` is the
/// position of the line's first character; each word gets its own column.
std::vector<Word> splitTcLine(const std::string &line,
                              const ir::SourcePos &start);

/// Accumulates tc commands for one device into an ir::tc::Program.
class TcBuilder {
public:
  explicit TcBuilder(bool passUnsupported = false);
  /// Applies one command. `end` is where "missing argument" errors point.
  void command(const std::vector<Word> &words, const ir::SourcePos &end);
  /// The finished, finalized program. Throws if no filter was given.
  ir::tc::Program finish(const ir::SourcePos &where);

private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

/// Reads a `tc -batch` file: one command per line, `#` starts a comment,
/// a trailing backslash continues the line. Registers the text with `sm`.
void parseTcBatch(const std::string &name, const std::string &text,
                  SourceManager &sm, TcBuilder &builder);

} // namespace r2x::frontend
