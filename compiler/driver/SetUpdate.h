//===- compiler/driver/SetUpdate.h - --set-add / --set-del -------*- C++
//-*-===//
//
/// \file
/// `rule2xdp --set-add NAME ENTRY IFACE` and `--set-del`: one entry of an
/// ipset set in the program loaded on IFACE, changed in its map without a
/// reload (the other entries, the rules and their counters stay). The entry
/// is read as the `--sets` file reader reads an `add` line of that set (the
/// object's `set` record says its type and options), so it means what it
/// would mean there.
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace r2x::driver {

/// Adds (`add`) or deletes ENTRY of set NAME on IFACE. Throws
/// frontend::Diagnostic for an entry the set cannot hold, runtime::LoadError
/// for the rest.
void updateSet(bool add, const std::string &name, const std::string &entry,
               const std::string &iface);

} // namespace r2x::driver
