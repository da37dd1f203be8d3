//===- compiler/driver/Ifaces.h - the interfaces of --load ------*- C++ -*-===//
//
/// \file
/// `--load b0,b1` names the interfaces that share one program's maps. Every
/// path that loads (an iptables rule or ruleset, an object file, tc filters)
/// (and --accelerate) reads the value through this one function, so they cannot
/// disagree on what a comma means.
//===----------------------------------------------------------------------===//
#pragma once

#include <string>
#include <vector>

namespace r2x::driver {

/// The comma-separated interface names of `list`, in order. Throws
/// std::runtime_error for an empty name (`--load b0,,b1`, `--load ,b0`),
/// naming `option` (the one that gave the list).
std::vector<std::string> splitIfaces(const std::string &list,
                                     const std::string &option = "--load");

} // namespace r2x::driver
