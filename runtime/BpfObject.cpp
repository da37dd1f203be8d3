//===- runtime/BpfObject.cpp - a rule2xdp object seen through libbpf ------===//
//
/// \file
/// See BpfObject.h.
//===----------------------------------------------------------------------===//
#include "runtime/BpfObject.h"

#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <string_view>
#include <utility>

namespace r2x::runtime {

using namespace detail;

// The contract spells map types without libbpf; they are the kernel's.
using contract::MapType;
static_assert(uint32_t(MapType::Hash) == BPF_MAP_TYPE_HASH &&
              uint32_t(MapType::Array) == BPF_MAP_TYPE_ARRAY &&
              uint32_t(MapType::PercpuArray) == BPF_MAP_TYPE_PERCPU_ARRAY &&
              uint32_t(MapType::LruHash) == BPF_MAP_TYPE_LRU_HASH &&
              uint32_t(MapType::LpmTrie) == BPF_MAP_TYPE_LPM_TRIE &&
              contract::MapNoPrealloc == BPF_F_NO_PREALLOC &&
              uint32_t(MapType::Devmap) == BPF_MAP_TYPE_DEVMAP &&
              uint32_t(MapType::DevmapHash) == BPF_MAP_TYPE_DEVMAP_HASH &&
              uint32_t(MapType::Ringbuf) == BPF_MAP_TYPE_RINGBUF);

namespace {

const char *typeName(MapType type) {
  switch (type) {
  case MapType::Hash:
    return "HASH";
  case MapType::Array:
    return "ARRAY";
  case MapType::PercpuArray:
    return "PERCPU_ARRAY";
  case MapType::LruHash:
    return "LRU_HASH";
  case MapType::LpmTrie:
    return "LPM_TRIE";
  case MapType::Devmap:
    return "DEVMAP";
  case MapType::DevmapHash:
    return "DEVMAP_HASH";
  case MapType::Ringbuf:
    return "RINGBUF";
  }
  return "?";
}

/// The `.rodata` map holding the metadata, and the text. libbpf names
/// internal maps "<object prefix>.rodata" (cut to 15 characters), so match
/// the suffix; `.rodata.str1.1` and friends do not count.
std::pair<bpf_map *, std::string> findMeta(bpf_object *object) {
  constexpr std::string_view Suffix = contract::MetaSection;
  bpf_map *map;
  bpf_object__for_each_map(map, object) {
    std::string_view name = bpf_map__name(map);
    if (name.size() < Suffix.size() ||
        name.substr(name.size() - Suffix.size()) != Suffix)
      continue;
    std::size_t size = 0;
    const void *image = bpf_map__initial_value(map, &size);
    if (!image)
      continue;
    std::string text = findMetaText(image, size);
    if (!text.empty())
      return {map, std::move(text)};
  }
  throw LoadError("object has no rule2xdp metadata");
}

} // namespace

bpf_program *findProgram(bpf_object *object) {
  const char *name = contract::ProgName;
  bpf_program *prog = bpf_object__find_program_by_name(object, name);
  if (!prog)
    throw LoadError(std::string("object has no program ") + name);
  if (bpf_program__type(prog) != BPF_PROG_TYPE_XDP)
    throw LoadError(std::string("program ") + name +
                    " is not an XDP program (section " +
                    bpf_program__section_name(prog) + ")");
  return prog;
}

bpf_map *findMap(bpf_object *object, const contract::MapSpec &spec,
                 bool required) {
  bpf_map *map = bpf_object__find_map_by_name(object, spec.name);
  if (!map) {
    if (required)
      throw LoadError(std::string("object has no map ") + spec.name);
    return nullptr;
  }
  if (bpf_map__type(map) != bpf_map_type(spec.type) ||
      bpf_map__key_size(map) != spec.keySize ||
      bpf_map__value_size(map) != spec.valueSize)
    throw LoadError(std::string("map ") + spec.name + " is not a " +
                    typeName(spec.type) + " with " +
                    std::to_string(spec.keySize) + "-byte keys and " +
                    std::to_string(spec.valueSize) +
                    "-byte values (runtime/contract/Object.h)");
  return map;
}

std::string objectMetaText(bpf_object *object) {
  return findMeta(object).second;
}

bpf_map *metaMap(bpf_object *object) { return findMeta(object).first; }

contract::CounterValue readCounter(int countersFd, uint32_t slot) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0)
    throw sysError("cannot count the possible CPUs", cpus);
  constexpr std::size_t Stride = CounterStride;
  std::vector<unsigned char> perCpu(std::size_t(cpus) * Stride);
  if (int err = bpf_map_lookup_elem(countersFd, &slot, perCpu.data()))
    throw sysError(std::string("cannot read ") + contract::CountersMap.name +
                       " slot " + std::to_string(slot),
                   err);
  contract::CounterValue total{0, 0};
  for (int cpu = 0; cpu < cpus; ++cpu) {
    contract::CounterValue value;
    std::memcpy(&value, perCpu.data() + std::size_t(cpu) * Stride,
                sizeof value);
    total.packets += value.packets;
    total.bytes += value.bytes;
  }
  return total;
}

} // namespace r2x::runtime
