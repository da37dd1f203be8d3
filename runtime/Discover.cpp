//===- runtime/Discover.cpp - what XDP runs on an interface ---------------===//
//
/// \file
/// See Discover.h. Programs and maps are reached by id
/// (bpf_*_get_fd_by_id), which is what lets `--stats` and `--unload` work in
/// any mount namespace, and what keeps them from trusting names under bpffs
/// that another network namespace may have left.
//===----------------------------------------------------------------------===//
#include "runtime/Discover.h"

#include "runtime/Meta.h"
#include "runtime/Support.h"

#include <algorithm>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <memory>
#include <string_view>
#include <tuple>

namespace r2x::runtime {

using namespace detail;

namespace {

/// A program's info and the ids of the maps it uses.
struct ProgInfo {
  struct bpf_prog_info info;
  std::vector<uint32_t> mapIds;
};

/// The program with id `id`, or an invalid Fd if it is gone (programs come
/// and go while we look: a concurrent replace frees the old one).
Fd progById(uint32_t id) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd.valid() && errno != ENOENT)
    throw sysError("cannot open BPF program " + std::to_string(id), errno);
  return fd;
}

std::optional<ProgInfo> progInfo(uint32_t id) {
  Fd fd = progById(id);
  if (!fd.valid())
    return std::nullopt;
  ProgInfo p;
  // Twice: first for the number of maps, then for their ids.
  for (int pass = 0; pass < 2; ++pass) {
    std::memset(&p.info, 0, sizeof p.info);
    p.info.nr_map_ids = uint32_t(p.mapIds.size());
    p.info.map_ids = reinterpret_cast<uintptr_t>(p.mapIds.data());
    uint32_t length = sizeof p.info;
    if (int err = bpf_obj_get_info_by_fd(fd.get(), &p.info, &length))
      throw sysError("cannot read BPF program " + std::to_string(id), err);
    if (p.info.nr_map_ids <= p.mapIds.size())
      break;
    p.mapIds.resize(p.info.nr_map_ids);
  }
  p.mapIds.resize(std::min<std::size_t>(p.mapIds.size(), p.info.nr_map_ids));
  return p;
}

struct MapHandle {
  Fd fd;
  struct bpf_map_info info;
};

std::optional<MapHandle> mapById(uint32_t id) {
  MapHandle m;
  m.fd = Fd(bpf_map_get_fd_by_id(id));
  if (!m.fd.valid()) {
    if (errno == ENOENT)
      return std::nullopt;
    throw sysError("cannot open BPF map " + std::to_string(id), errno);
  }
  std::memset(&m.info, 0, sizeof m.info);
  uint32_t length = sizeof m.info;
  if (int err = bpf_obj_get_info_by_fd(m.fd.get(), &m.info, &length))
    throw sysError("cannot read BPF map " + std::to_string(id), err);
  return m;
}

bool hasShape(const struct bpf_map_info &info, const contract::MapSpec &spec) {
  return info.type == uint32_t(spec.type) && info.key_size == spec.keySize &&
         info.value_size == spec.valueSize;
}

/// The metadata text in a `.rodata` map: an ARRAY with one value, the
/// section's image, and its parse. Empty if it holds none, or none this
/// runtime reads.
std::pair<std::string, std::shared_ptr<const Meta>> metaOf(const MapHandle &m) {
  constexpr std::string_view Suffix = contract::MetaSection;
  std::string_view name = m.info.name;
  if (name.size() < Suffix.size() ||
      name.substr(name.size() - Suffix.size()) != Suffix ||
      m.info.type != BPF_MAP_TYPE_ARRAY ||
      m.info.key_size != sizeof(uint32_t) || m.info.max_entries < 1)
    return {};
  std::string image(m.info.value_size, '\0');
  uint32_t key = 0;
  if (int err = bpf_map_lookup_elem(m.fd.get(), &key, image.data()))
    throw sysError(std::string("cannot read BPF map ") + m.info.name, err);
  std::string text = findMetaText(image.data(), image.size());
  try {
    auto meta = std::make_shared<const Meta>(parseMeta(text));
    return {std::move(text), std::move(meta)};
  } catch (const std::runtime_error &) {
    return {}; // not a text we read: not ours to act on
  }
}

/// The extension programs linked into dispatcher `dispatcherId`, found
/// through the kernel's links (freplace links name their target program),
/// so no bpffs is needed.
std::vector<uint32_t> dispatcherComponents(uint32_t dispatcherId) {
  std::vector<uint32_t> components;
  uint32_t id = 0;
  while (bpf_link_get_next_id(id, &id) == 0) {
    Fd link(bpf_link_get_fd_by_id(id));
    if (!link.valid())
      continue; // released meanwhile
    struct bpf_link_info info;
    std::memset(&info, 0, sizeof info);
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(link.get(), &info, &length) != 0 ||
        info.type != BPF_LINK_TYPE_TRACING ||
        info.tracing.target_obj_id != dispatcherId)
      continue;
    // fentry/fexit programs (xdpdump) trace the dispatcher too; only
    // extension programs are its components.
    std::optional<ProgInfo> prog = progInfo(info.prog_id);
    if (prog && prog->info.type == BPF_PROG_TYPE_EXT)
      components.push_back(info.prog_id);
  }
  return components;
}

} // namespace

std::optional<OwnProgram> ownProgram(uint32_t progId) {
  std::optional<ProgInfo> prog = progInfo(progId);
  if (!prog || std::string_view(prog->info.name) != contract::ProgName ||
      (prog->info.type != BPF_PROG_TYPE_XDP &&
       prog->info.type != BPF_PROG_TYPE_EXT))
    return std::nullopt;
  OwnProgram own;
  own.progId = progId;
  for (uint32_t mapId : prog->mapIds) {
    std::optional<MapHandle> m = mapById(mapId);
    if (!m)
      return std::nullopt;
    std::string_view name = m->info.name;
    if (name == contract::CountersMap.name &&
        hasShape(m->info, contract::CountersMap))
      own.countersId = mapId;
    else if (name == contract::IfmatchMap.name &&
             hasShape(m->info, contract::IfmatchMap))
      own.ifmatchId = mapId;
    else if (name == contract::NatMap.name &&
             hasShape(m->info, contract::NatMap))
      own.natId = mapId;
    else if (name == contract::Nat6Map.name &&
             hasShape(m->info, contract::Nat6Map))
      own.nat6Id = mapId;
    else if (name == contract::LocalMap.name &&
             hasShape(m->info, contract::LocalMap))
      own.localId = mapId;
    else if (name == contract::LocalOkMap.name &&
             hasShape(m->info, contract::LocalOkMap))
      own.localOkId = mapId;
    else if (name == contract::LogMap.name &&
             m->info.type == BPF_MAP_TYPE_RINGBUF)
      own.logId = mapId;
    else if (name.substr(0, std::string_view(contract::SetMapPrefix).size()) ==
                 contract::SetMapPrefix &&
             std::any_of(std::begin(contract::SetMaps),
                         std::end(contract::SetMaps),
                         [&](const contract::MapSpec *spec) {
                           return hasShape(m->info, *spec);
                         }))
      own.setIds.emplace(std::string(name), mapId);
    else if (!own.meta) {
      std::tie(own.metaText, own.meta) = metaOf(*m);
      if (own.meta)
        own.metaId = mapId;
    }
  }
  if (!own.countersId || !own.metaId)
    return std::nullopt;
  return own;
}

namespace {

/// One look at the interface; nothing if its program went away while we
/// looked (replaced by a concurrent load, or by another tool).
std::optional<InterfaceXdp> look(const std::string &iface) {
  InterfaceXdp x;
  x.iface = iface;
  x.ifindex = ::if_nametoindex(iface.c_str());
  if (x.ifindex == 0)
    throw LoadError("no such interface: " + iface);
  bpf_xdp_query_opts query;
  zeroOpts(query);
  if (int err = bpf_xdp_query(int(x.ifindex), 0, &query))
    throw sysError("cannot query the XDP programs of " + iface, err);
  // The kernel allows one of driver or generic mode at a time (and an
  // offloaded program beside it, which rule2xdp never loads).
  if (query.drv_prog_id) {
    x.attachedId = query.drv_prog_id;
    x.mode = XdpMode::Native;
  } else if (query.skb_prog_id) {
    x.attachedId = query.skb_prog_id;
    x.mode = XdpMode::Generic;
  } else if (query.hw_prog_id) {
    x.attachedId = query.hw_prog_id;
  }
  if (!x.attachedId)
    return x;
  std::optional<ProgInfo> prog = progInfo(x.attachedId);
  if (!prog)
    return std::nullopt;
  x.attachedName = prog->info.name;
  if (x.attachedName == DispatcherName) {
    x.dispatcher = true;
    x.components = dispatcherComponents(x.attachedId);
    for (uint32_t id : x.components)
      if ((x.own = ownProgram(id)))
        break;
  } else if (x.attachedId != query.hw_prog_id) {
    x.own = ownProgram(x.attachedId);
  }
  // "Not ours" because the program (or its dispatcher) was freed while we
  // read it is no answer: look again.
  if (!x.own && !progById(x.attachedId).valid())
    return std::nullopt;
  return x;
}

} // namespace

InterfaceXdp inspect(const std::string &iface) {
  checkIfaceName(iface);
  // Programs on an interface change under us only as fast as loads go: a
  // few looks settle it.
  constexpr int Looks = 100;
  for (int i = 0; i < Looks; ++i)
    if (std::optional<InterfaceXdp> x = look(iface))
      return *x;
  throw LoadError("the XDP program of " + iface +
                  " kept changing while rule2xdp looked at it");
}

} // namespace r2x::runtime
