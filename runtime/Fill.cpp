//===- runtime/Fill.cpp - the maps the loader fills -----------------------===//
//
/// \file
/// fillIfaceMap() and fillMacMap() (Loader.h), and the private fills of
/// Fill.h: `-i`/`-o` patterns, device MACs, redirect targets.
//===----------------------------------------------------------------------===//
#include "runtime/Fill.h"

#include "runtime/Loader.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <string_view>

namespace r2x::runtime {

using namespace detail;

namespace {

struct VlanDevice {
  uint16_t vid;
  std::string parent;
};

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text[0])))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

/// VLAN devices of the current netns by name, from /proc/net/vlan/config
/// ("NAME | VID | PARENT" after two header lines). The file only exists once
/// the 8021q module is loaded; without it there are no VLAN devices.
std::map<std::string, VlanDevice> readVlans() {
  std::map<std::string, VlanDevice> vlans;
  std::ifstream config("/proc/net/vlan/config");
  std::string line;
  for (int header = 0; header < 2 && std::getline(config, line); ++header) {
  }
  while (std::getline(config, line)) {
    std::string_view rest = line;
    std::size_t bar1 = rest.find('|');
    std::size_t bar2 =
        bar1 == std::string_view::npos ? bar1 : rest.find('|', bar1 + 1);
    if (bar2 == std::string_view::npos)
      continue;
    std::string_view name = trim(rest.substr(0, bar1));
    std::string_view vid = trim(rest.substr(bar1 + 1, bar2 - bar1 - 1));
    std::string_view parent = trim(rest.substr(bar2 + 1));
    unsigned value = 0;
    for (char c : vid)
      value = std::isdigit(static_cast<unsigned char>(c))
                  ? value * 10 + unsigned(c - '0')
                  : 0x10000;
    if (name.empty() || parent.empty() || vid.empty() || value > 4095)
      continue;
    vlans[std::string(name)] = {uint16_t(value), std::string(parent)};
  }
  return vlans;
}

/// The key of `r2x_ifmatch`: the device the program runs on and the VLAN tags
/// the frame carried (0 = none).
using IfmatchKey = contract::IfKey;

} // namespace

namespace detail {

void fillTxMap(int mapFd, const std::optional<std::set<unsigned>> &only) {
  struct if_nameindex *all = if_nameindex();
  if (!all)
    throw sysError("cannot list the network devices", errno);
  for (struct if_nameindex *i = all; i->if_index != 0; ++i) {
    uint32_t idx = i->if_index;
    if (only && !only->count(idx))
      continue;
    if (bpf_map_update_elem(mapFd, &idx, &idx, BPF_ANY) != 0) {
      int err = errno;
      if_freenameindex(all);
      throw sysError(std::string("cannot add ") + i->if_name + " to " +
                         contract::TxMap.name,
                     err);
    }
  }
  if_freenameindex(all);
}

std::map<uint32_t, uint32_t> redirectTargets(const Meta &meta) {
  std::map<uint32_t, uint32_t> slots;
  for (const MetaRedirect &r : meta.redirects) {
    checkIfaceName(r.dev);
    unsigned ifindex = ::if_nametoindex(r.dev.c_str());
    if (ifindex == 0)
      throw LoadError("mirred egress redirect dev " + r.dev +
                      ": no such device in this network namespace");
    slots[r.slot] = ifindex;
  }
  return slots;
}

void fillRedirectMap(int mapFd, uint32_t size,
                     const std::map<uint32_t, uint32_t> &slots) {
  const char *name = contract::RedirectMap.name;
  for (const auto &[slot, ifindex] : slots) {
    if (slot >= size)
      throw LoadError("metadata gives redirect slot " + std::to_string(slot) +
                      ", but " + name + " has " + std::to_string(size));
    if (bpf_map_update_elem(mapFd, &slot, &ifindex, BPF_ANY) != 0)
      throw sysError("cannot add redirect target " + std::to_string(ifindex) +
                         " to " + name,
                     errno);
  }
}

} // namespace detail

void fillMacMap(int mapFd) {
  struct if_nameindex *all = if_nameindex();
  if (!all)
    throw sysError("cannot list the network devices", errno);
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) {
    if_freenameindex(all);
    throw sysError("cannot open a socket to read device addresses", errno);
  }
  for (struct if_nameindex *i = all; i->if_index != 0; ++i) {
    struct ifreq req {};
    std::strncpy(req.ifr_name, i->if_name, IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFHWADDR, &req) != 0 ||
        req.ifr_hwaddr.sa_family != ARPHRD_ETHER)
      continue; // no Ethernet address: not checked
    contract::MacValue value{};
    std::memcpy(value.addr, req.ifr_hwaddr.sa_data, sizeof value.addr);
    uint32_t key = i->if_index;
    // Devices beyond the array (ifindex >= its size) are not checked.
    if (bpf_map_update_elem(mapFd, &key, &value, BPF_ANY) != 0 &&
        errno != E2BIG) {
      int err = errno;
      if_freenameindex(all);
      throw sysError(std::string("cannot add ") + i->if_name + " to " +
                         contract::IfmacMap.name,
                     err);
    }
  }
  if_freenameindex(all);
}

namespace {
/// A sysctl's value 1..255 from /proc/sys (the caller's network namespace
/// for net.*), or 0 when it cannot be read.
uint8_t hopSysctl(const std::string &path) {
  std::ifstream in(path);
  unsigned v = 0;
  if (!(in >> v) || v == 0 || v > 255)
    return 0;
  return static_cast<uint8_t>(v);
}
} // namespace

void fillRstMap(int mapFd) {
  struct if_nameindex *all = if_nameindex();
  if (!all)
    throw sysError("cannot list the network devices", errno);
  const uint8_t ttl = hopSysctl("/proc/sys/net/ipv4/ip_default_ttl");
  for (struct if_nameindex *i = all; i->if_index != 0; ++i) {
    contract::RstValue value{};
    value.ttl = ttl;
    value.hopLimit = hopSysctl(std::string("/proc/sys/net/ipv6/conf/") +
                               i->if_name + "/hop_limit");
    uint32_t key = i->if_index;
    // Devices beyond the array: not known, handed over.
    if (bpf_map_update_elem(mapFd, &key, &value, BPF_ANY) != 0 &&
        errno != E2BIG) {
      int err = errno;
      if_freenameindex(all);
      throw sysError(std::string("cannot add ") + i->if_name + " to " +
                         contract::RstMap.name,
                     err);
    }
  }
  if_freenameindex(all);
}

namespace {

/// The bytes of ELF section `name` of a 64-bit little-endian object (what
/// rule2xdp writes), or empty if it has none. Bounds are checked: the
/// object may come from a file.
std::string_view elfSection(const std::vector<uint8_t> &image,
                            const char *name) {
  auto fail = [] { throw LoadError("the object is not a valid ELF file"); };
  if (image.size() < sizeof(Elf64_Ehdr))
    fail();
  Elf64_Ehdr eh;
  std::memcpy(&eh, image.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > image.size() ||
      uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr) > image.size() - eh.e_shoff ||
      eh.e_shstrndx >= eh.e_shnum)
    fail();
  auto header = [&](unsigned i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, image.data() + eh.e_shoff + i * sizeof(Elf64_Shdr),
                sizeof sh);
    if (sh.sh_type != SHT_NOBITS && (sh.sh_offset > image.size() ||
                                     sh.sh_size > image.size() - sh.sh_offset))
      fail();
    return sh;
  };
  Elf64_Shdr strtab = header(eh.e_shstrndx);
  std::string_view names(reinterpret_cast<const char *>(image.data()) +
                             strtab.sh_offset,
                         strtab.sh_size);
  for (unsigned i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh = header(i);
    if (sh.sh_name >= names.size())
      fail();
    std::string_view n = names.substr(sh.sh_name);
    n = n.substr(0, n.find('\0'));
    if (n == name && sh.sh_type == SHT_PROGBITS)
      return {reinterpret_cast<const char *>(image.data()) + sh.sh_offset,
              sh.sh_size};
  }
  return {};
}

} // namespace

/// The kernel's ENOTSUPP, which reaches user space (no uapi header has it).
constexpr int kEnotsupp = 524;

void fillSetMaps(bpf_object *obj, const std::vector<uint8_t> &image,
                 const Meta &meta, const std::function<int(bpf_map *)> &fdOf) {
  if (meta.sets.empty())
    return;
  std::string_view section = elfSection(image, contract::SetsSection);
  for (const MetaSet &s : meta.sets) {
    bpf_map *map = bpf_object__find_map_by_name(obj, s.map.c_str());
    if (!map)
      throw LoadError("object has no map " + s.map + " for set " + s.name);
    size_t key = bpf_map__key_size(map), value = bpf_map__value_size(map);
    bool known = false;
    for (const contract::MapSpec *spec : contract::SetMaps)
      known = known || (bpf_map__type(map) == bpf_map_type(spec->type) &&
                        key == spec->keySize && value == spec->valueSize);
    if (!known)
      throw LoadError("map " + s.map +
                      " is not a set's (runtime/contract/Object.h)");
    size_t record = key + value;
    if (s.offset > section.size() ||
        s.entries > (section.size() - s.offset) / record)
      throw LoadError("the object's " + std::string(contract::SetsSection) +
                      " section does not hold the entries of set " + s.name);
    int fd = fdOf(map);
    const char *keys = section.data() + s.offset;
    const char *values = keys + s.entries * key;
    auto fail = [&](int err) {
      throw sysError("cannot fill " + s.map + " (set " + s.name + ")", err);
    };
    // In batches (one system call for many entries, where the kernel has
    // them for LPM tries), else one by one.
    uint64_t done = 0;
    bool batches = true;
    while (done < s.entries && batches) {
      uint32_t n = uint32_t(std::min<uint64_t>(s.entries - done, 65536));
      if (bpf_map_update_batch(fd, keys + done * key, values + done * value, &n,
                               nullptr) == 0) {
        done += n;
        continue;
      }
      if (errno != EINVAL && errno != kEnotsupp && errno != EOPNOTSUPP)
        fail(errno);
      batches = false;
    }
    for (; done < s.entries; ++done)
      if (bpf_map_update_elem(fd, keys + done * key, values + done * value,
                              BPF_ANY) != 0)
        fail(errno);
  }
}

void fillIfaceMap(int mapFd, const Meta &meta) {
  auto maskOf = [&meta](const std::string &name) {
    uint64_t mask = 0;
    for (const MetaIface &iface : meta.ifaces)
      if (ifaceMatches(iface.pattern, name))
        mask |= uint64_t(1) << iface.bit;
    return mask;
  };

  std::map<std::string, unsigned> indexOf;
  struct if_nameindex *names = ::if_nameindex();
  if (!names)
    throw sysError("cannot list the network interfaces", errno);
  for (struct if_nameindex *n = names; n->if_index != 0; ++n)
    indexOf[n->if_name] = n->if_index;
  ::if_freenameindex(names);

  std::map<IfmatchKey, uint64_t> wanted;
  for (const auto &[name, index] : indexOf)
    if (uint64_t mask = maskOf(name))
      wanted[{index, 0, 0}] = mask;

  // A frame for VLAN device NAME reaches the program on the device at the
  // bottom of the stack, still tagged: key it by that device and the tags.
  std::map<std::string, VlanDevice> vlans = readVlans();
  for (const auto &[name, vlan] : vlans) {
    uint64_t mask = maskOf(name);
    if (!mask)
      continue;
    IfmatchKey key{};
    auto parentVlan = vlans.find(vlan.parent);
    if (parentVlan == vlans.end()) {
      auto parent = indexOf.find(vlan.parent);
      if (parent == indexOf.end())
        continue;
      key = {parent->second, vlan.vid, 0};
    } else {
      const VlanDevice &outer = parentVlan->second;
      // A third tag is beyond what the program parses: no key can match it.
      if (vlans.count(outer.parent))
        continue;
      auto root = indexOf.find(outer.parent);
      if (root == indexOf.end())
        continue;
      key = {root->second, outer.vid, vlan.vid};
    }
    wanted[key] |= mask;
  }

  for (const auto &[key, mask] : wanted)
    if (int err = bpf_map_update_elem(mapFd, &key, &mask, BPF_ANY))
      throw sysError(std::string("cannot fill ") + contract::IfmatchMap.name,
                     err);

  // Refilling a live map: drop devices that went away or stopped matching.
  std::vector<IfmatchKey> stale;
  IfmatchKey current{}, next{};
  const IfmatchKey *previous = nullptr;
  while (bpf_map_get_next_key(mapFd, previous, &next) == 0) {
    if (!wanted.count(next))
      stale.push_back(next);
    current = next;
    previous = &current;
  }
  for (const IfmatchKey &key : stale)
    bpf_map_delete_elem(mapFd, &key);
}

} // namespace r2x::runtime
