//===- runtime/BpfObject.h - an object seen through libbpf ------*- C++ -*-===//
//
/// \file
/// The loader's reading of an object against the object contract
/// (runtime/contract/Object.h), for load() and for every test that runs an
/// object itself (BPF_PROG_TEST_RUN): its program, its maps checked against
/// their specs, its metadata text, and its per-CPU counters summed. Tests
/// use these rather than their own copies of names and layouts, so an
/// object the tests accept is one the loader accepts.
///
/// libbpf's types are only declared here; callers that hold a bpf_object
/// include <bpf/libbpf.h> themselves.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/contract/Object.h"

#include <cstdint>
#include <string>
#include <vector>

struct bpf_object;
struct bpf_program;
struct bpf_map;

namespace r2x::runtime {

/// The contract's program in an opened object: named ProgName, of type XDP.
/// Throws LoadError.
bpf_program *findProgram(bpf_object *object);

/// The contract's map `spec` in an opened object, checked against the
/// spec's type and key and value sizes (LoadError if it differs). A missing
/// map is a LoadError when `required`, else null.
bpf_map *findMap(bpf_object *object, const contract::MapSpec &spec,
                 bool required = true);

/// The metadata text of an opened object (loaded or not), from its
/// `.rodata` map's initial image. Throws LoadError if it has none.
std::string objectMetaText(bpf_object *object);

/// The `.rodata` map that holds the metadata text (pinned as `meta`).
bpf_map *metaMap(bpf_object *object);

/// Slot `slot` of a loaded r2x_counters map (by fd), summed over the CPUs.
/// Throws LoadError.
contract::CounterValue readCounter(int countersFd, uint32_t slot);

} // namespace r2x::runtime
