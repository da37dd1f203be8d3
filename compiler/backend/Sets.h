//===- compiler/backend/Sets.h - ipset sets as BPF maps ----------*- C++
//-*-===//
//
/// \file
/// Where the sets a program tests go in its object (the contract's
/// `r2x_set<N>` maps, `set` records and SetsSection): one function decides
/// the layout, so the code generator's maps, the metadata's records and the
/// section's bytes agree.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/ir/IR.h"
#include "runtime/contract/Object.h"

#include <cstdint>
#include <string>
#include <vector>

namespace r2x::backend {

/// A set some rule tests: its map, and its entries' place in the section.
struct SetLayout {
  unsigned set = 0; ///< index in Program::sets
  std::string map;  ///< contract::SetMapPrefix + set
  uint64_t offset = 0, entries = 0;
  /// The map's max_entries: what the set may grow to (ipset's maxelem;
  /// bitmap:port its range), at least its entries.
  uint32_t maxEntries = 1;
  const contract::MapSpec *spec = nullptr; ///< one of contract::SetMaps
  /// The key's struct (null: a plain u32, bitmap:port).
  const contract::StructLayout *key = nullptr;
};

/// The sets rules test, in Program::sets order.
std::vector<SetLayout> setLayouts(const ir::Program &p);

/// The `set` record's CREATE: the type and options as `ipset create` takes
/// them, enough to read an entry into a key again.
std::string createOptions(const ir::IpSet &s);

/// One entry's key in the layout of its set's map (SetLayout::spec).
std::string setKey(const ir::IpSet &s, const ir::IpSet::Entry &e);

/// The bytes of contract::SetsSection for `layouts`.
std::string setsSection(const ir::Program &p,
                        const std::vector<SetLayout> &layouts);

} // namespace r2x::backend
