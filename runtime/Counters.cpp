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

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

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

/// The kernel's ENOTSUPP, which reaches user space (no uapi header has it).
constexpr int kEnotsupp = 524;

/// Whether a batch call failed only because the kernel has no batches for
/// the map (fall back to one element a call).
bool noBatches(int err) {
  return err == EINVAL || err == kEnotsupp || err == EOPNOTSUPP;
}

/// Every slot of a per-CPU ARRAY of counters: `cpus` strides a slot, in
/// slot order. One system call for all of them where the kernel has
/// batches (100,000 rules: one call instead of 100,000).
std::vector<unsigned char> readAll(int fd, unsigned cpus) {
  bpf_map_info info{};
  uint32_t length = sizeof info;
  if (int err = bpf_obj_get_info_by_fd(fd, &info, &length))
    throw sysError("cannot read the old program's counters map", -err);
  uint32_t slots = info.max_entries;
  std::size_t slotBytes = std::size_t(cpus) * Stride;
  std::vector<unsigned char> all(slots * slotBytes), raw(all.size());
  std::vector<uint32_t> keys(slots);
  uint32_t count = slots, next = 0;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (bpf_map_lookup_batch(fd, nullptr, &next, keys.data(), raw.data(), &count,
                           &opts) == 0 ||
      errno == ENOENT) {
    if (count == slots) {
      for (uint32_t i = 0; i < count; ++i)
        if (keys[i] < slots)
          std::memcpy(all.data() + keys[i] * slotBytes,
                      raw.data() + i * slotBytes, slotBytes);
      return all;
    }
  } else if (!noBatches(errno)) {
    throw sysError("cannot read the old program's counters", errno);
  }
  for (uint32_t slot = 0; slot < slots; ++slot)
    if (int err = bpf_map_lookup_elem(fd, &slot, all.data() + slot * slotBytes))
      throw sysError("cannot read the old program's counter slot " +
                         std::to_string(slot),
                     err);
  return all;
}

} // namespace

unsigned carryCounters(int freshFd, const Meta &fresh,
                       const std::vector<OwnProgram> &old) {
  if (old.empty())
    return 0; // a first load: nothing to carry (and 100,000 keys to skip)
  std::unordered_map<std::string_view, unsigned> slotOfKey;
  for (const auto &[slot, key] : fresh.keys)
    slotOfKey.emplace(key, slot);
  if (slotOfKey.empty())
    return 0;
  unsigned cpus = possibleCpus();
  std::size_t slotBytes = std::size_t(cpus) * Stride;
  // New slot -> the sum of its old values, per CPU.
  std::map<unsigned, std::vector<CounterValue>> sums;
  std::set<uint32_t> seen;
  for (const OwnProgram &p : old) {
    if (!seen.insert(p.countersId).second)
      continue;
    Fd fd(bpf_map_get_fd_by_id(p.countersId));
    if (!fd.valid()) {
      if (errno == ENOENT)
        continue; // the old program went away meanwhile: nothing to keep
      throw sysError("cannot open the old program's counters", errno);
    }
    std::vector<unsigned char> all = readAll(fd.get(), cpus);
    std::size_t oldSlots = all.size() / slotBytes;
    for (const auto &[oldSlot, key] : p.meta->keys) {
      auto to = slotOfKey.find(key);
      if (to == slotOfKey.end())
        continue;
      if (oldSlot >= oldSlots)
        throw LoadError("the old program's counter slot " +
                        std::to_string(oldSlot) + " is not in its map");
      std::vector<CounterValue> &sum = sums[to->second];
      sum.resize(cpus, CounterValue{0, 0});
      for (unsigned cpu = 0; cpu < cpus; ++cpu) {
        CounterValue v;
        std::memcpy(&v, all.data() + oldSlot * slotBytes + cpu * Stride,
                    sizeof v);
        sum[cpu].packets += v.packets;
        sum[cpu].bytes += v.bytes;
      }
    }
  }
  if (sums.empty())
    return 0;
  std::vector<uint32_t> keys;
  std::vector<unsigned char> values(sums.size() * slotBytes);
  for (const auto &[slot, sum] : sums) {
    for (unsigned cpu = 0; cpu < cpus; ++cpu)
      std::memcpy(values.data() + keys.size() * slotBytes + cpu * Stride,
                  &sum[cpu], sizeof sum[cpu]);
    keys.push_back(slot);
  }
  uint32_t count = uint32_t(keys.size());
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
  if (bpf_map_update_batch(freshFd, keys.data(), values.data(), &count,
                           &opts) == 0)
    return unsigned(keys.size());
  if (!noBatches(errno))
    throw sysError("cannot write the counters", errno);
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (int err = bpf_map_update_elem(freshFd, &keys[i],
                                      values.data() + i * slotBytes, BPF_ANY))
      throw sysError("cannot write counter slot " + std::to_string(keys[i]),
                     err);
  return unsigned(keys.size());
}

} // namespace r2x::runtime::detail
