//===- compiler/frontend/SetsFile.h - `ipset save` text -> ir::IpSet -*- C++
//-*-===//
//
/// \file
/// Reads the sets a ruleset's `-m set` matches name (`rule2xdp --sets
/// FILE`), in the form `ipset save` writes and `ipset restore` reads:
/// `create NAME TYPE [OPTION...]` and `add NAME ENTRY [nomatch]` lines.
/// Types hash:ip and hash:net, IPv4 and IPv6. What the kernel would make
/// of a line is what the set holds: entries are masked as ipset masks them,
/// and what ipset refuses (a prefix of 0, `nomatch` in hash:ip, an entry of
/// a set not created) is a Diagnostic at the line and column. Options that
/// change what a packet matches and that XDP does not carry out (`timeout`,
/// whose entries expire; `counters`, which `--packets-*` matches read) are
/// refused by name.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/IR.h"

#include <string>
#include <vector>

namespace r2x::frontend {

/// Appends the sets of `text` (file `name`, registered with `sm`) to
/// `prog.sets`. Throws Diagnostic at the first error.
void parseSetsFile(const std::string &name, const std::string &text,
                   SourceManager &sm, ir::Program &prog);

} // namespace r2x::frontend
