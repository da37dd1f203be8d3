//===- runtime/Counters.cpp - counters across a replace -------------------===//
//
/// \file
/// See Counters.h. Counts made by the old program between the copy and the
/// replace are not carried: the new program cannot be written while it
/// counts (a per-CPU update is not atomic against the program), and the
/// old one still counts until it is replaced.
//===----------------------------------------------------------------------===//
#include "runtime/Counters.h"

#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <map>
#include <set>

namespace r2x::runtime::detail {

namespace {

using contract::CounterValue;

constexpr std::size_t Stride = CounterStride;

unsigned possibleCpus() {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0)
    throw sysError("cannot count the possible CPUs", cpus);
  return unsigned(cpus);
}

} // namespace

unsigned carryCounters(int freshFd, const Meta &fresh,
                       const std::vector<OwnProgram> &old) {
  std::map<std::string, unsigned> slotOfKey;
  for (const auto &[slot, key] : fresh.keys)
    slotOfKey.emplace(key, slot);
  if (slotOfKey.empty())
    return 0;
  unsigned cpus = possibleCpus();
  // New slot -> the sum of its old values, per CPU.
  std::map<unsigned, std::vector<CounterValue>> sums;
  std::set<uint32_t> seen;
  for (const OwnProgram &p : old) {
    if (!seen.insert(p.countersId).second)
      continue;
    Meta meta = parseObjectMeta(p.metaText);
    Fd fd(bpf_map_get_fd_by_id(p.countersId));
    if (!fd.valid()) {
      if (errno == ENOENT)
        continue; // the old program went away meanwhile: nothing to keep
      throw sysError("cannot open the old program's counters", errno);
    }
    std::vector<unsigned char> raw(cpus * Stride);
    for (const auto &[oldSlot, key] : meta.keys) {
      auto to = slotOfKey.find(key);
      if (to == slotOfKey.end())
        continue;
      if (int err = bpf_map_lookup_elem(fd.get(), &oldSlot, raw.data()))
        throw sysError("cannot read the old program's counter slot " +
                           std::to_string(oldSlot),
                       err);
      std::vector<CounterValue> &sum = sums[to->second];
      sum.resize(cpus, CounterValue{0, 0});
      for (unsigned cpu = 0; cpu < cpus; ++cpu) {
        CounterValue v;
        std::memcpy(&v, raw.data() + cpu * Stride, sizeof v);
        sum[cpu].packets += v.packets;
        sum[cpu].bytes += v.bytes;
      }
    }
  }
  std::vector<unsigned char> raw(cpus * Stride);
  for (const auto &[slot, sum] : sums) {
    for (unsigned cpu = 0; cpu < cpus; ++cpu)
      std::memcpy(raw.data() + cpu * Stride, &sum[cpu], sizeof sum[cpu]);
    if (int err = bpf_map_update_elem(freshFd, &slot, raw.data(), BPF_ANY))
      throw sysError("cannot write counter slot " + std::to_string(slot), err);
  }
  return unsigned(sums.size());
}

} // namespace r2x::runtime::detail
