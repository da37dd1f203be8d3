//===- runtime/Loader.cpp - attach rule2xdp objects to interfaces ---------===//
//
/// \file
/// load() and unload() (contract in Loader.h): the order of a load, each
/// step in its own module.
///
///  1. Lock the interfaces (Lock.h), then look at what runs on them
///     (Discover.h) and decide how the program goes on: netlink, or libxdp's
///     dispatcher. Everything that can refuse the load refuses here, before
///     anything changes.
///  2. Create the maps the loader fills and r2x_counters ourselves, fill
///     them (Fill.h), copy the old program's counters by key (Counters.h),
///     and hand them to libbpf (bpf_map__reuse_fd): the program is complete
///     the moment it exists, whichever way it is attached. A DNAT program
///     takes over the old program's connection table.
///  3. Load and attach (Attach.h); then the convenience pins (Pins.h).
//===----------------------------------------------------------------------===//

#include "runtime/Loader.h"
#include "runtime/Attach.h"
#include "runtime/BpfObject.h"
#include "runtime/Capture.h"
#include "runtime/Counters.h"
#include "runtime/Discover.h"
#include "runtime/Fill.h"
#include "runtime/Lock.h"
#include "runtime/Netlink.h"
#include "runtime/Pins.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <memory>

namespace r2x::runtime {

using namespace detail;

namespace {

using ObjectPtr = std::unique_ptr<bpf_object, decltype(&bpf_object__close)>;

//===-- deciding ----------------------------------------------------------===//

/// Every counter slot the metadata names must exist, or --stats would fail
/// long after the compiler bug that caused it.
void checkSlots(const Meta &meta, uint32_t slots) {
  auto check = [slots](long slot, const std::string &what) {
    if (slot >= long(slots))
      throw LoadError("metadata gives " + what + " counter slot " +
                      std::to_string(slot) + ", but " +
                      contract::CountersMap.name + " has " +
                      std::to_string(slots));
  };
  for (const MetaChain &chain : meta.chains) {
    check(chain.slot, "the policy of " + chain.name);
    for (const MetaRule &rule : chain.rules)
      check(long(rule.slot), "a rule of " + chain.name);
  }
}

/// The interfaces of one load as they are now, and how the program goes on
/// them: one program is loaded once, either as an XDP program (netlink) or
/// as an extension of libxdp's dispatcher, so all interfaces go the same way.
struct Plan {
  std::vector<InterfaceXdp> ifaces;
  bool dispatcher = false;
  std::vector<OwnProgram> old; ///< rule2xdp's programs being replaced
};

std::string modeName(XdpMode mode) {
  return mode == XdpMode::Native ? "native" : "generic";
}

Plan plan(const std::vector<std::string> &names, const LoadOptions &o) {
  Plan p;
  for (const std::string &name : names) {
    InterfaceXdp x = inspect(name);
    if (x.attachedId && !x.dispatcher && !x.own)
      throw LoadError(
          name + " runs XDP program " + std::to_string(x.attachedId) + " (" +
          x.attachedName + "), which is not rule2xdp's and not in a libxdp " +
          "dispatcher: detach it, or load both through libxdp's dispatcher " +
          "(xdp-loader, and rule2xdp --multiprog)");
    p.dispatcher |= o.multiprog || x.dispatcher;
    if (x.own)
      p.old.push_back(*x.own);
    p.ifaces.push_back(std::move(x));
  }
  if (!p.dispatcher)
    return p;
  for (const InterfaceXdp &x : p.ifaces) {
    if (x.own && !x.dispatcher)
      throw LoadError("rule2xdp's program on " + x.iface +
                      " is attached without a dispatcher; --unload it " +
                      "first to load it through libxdp's dispatcher");
    if (x.dispatcher && x.mode != o.mode)
      throw LoadError(x.iface + "'s XDP dispatcher runs in " +
                      modeName(x.mode) + " mode: load with --mode " +
                      modeName(x.mode) + " to join it");
  }
  if (!bpffsUsable())
    throw LoadError(
        std::string("libxdp's dispatcher keeps its links pinned under ") +
        contract::pin::BpffsRoot + ", which this command cannot reach (a " +
        "private mount namespace, as under `ip netns exec`): run rule2xdp " +
        "with `nsenter --net=/run/netns/NAME` instead");
  return p;
}

bool loadsOn(const Plan &p, unsigned ifindex) {
  return std::any_of(
      p.ifaces.begin(), p.ifaces.end(),
      [ifindex](const InterfaceXdp &x) { return x.ifindex == ifindex; });
}

std::string ifaceName(unsigned ifindex) {
  char name[IF_NAMESIZE] = {0};
  return ::if_indextoname(ifindex, name) ? name
                                         : "ifindex " + std::to_string(ifindex);
}

/// Why a device does not transmit what XDP redirects, and what to do.
std::string noXmitReason(const std::string &dev) {
  if (driverName(dev) == "veth")
    return "its veth peer has neither an XDP program nor GRO on (turn GRO "
           "on in the peer's namespace: ethtool -K PEER gro on), or load "
           "with --mode generic";
  return "its driver does not implement ndo_xdp_xmit; load with --mode "
         "generic";
}

/// The devices that transmit frames XDP redirects to them, in native mode
/// (nothing: any device, which is generic mode's case, and an old kernel's
/// that cannot say).
std::optional<std::set<unsigned>> transmitters(XdpMode mode) {
  if (mode != XdpMode::Native)
    return std::nullopt;
  std::optional<std::map<unsigned, uint64_t>> features = xdpFeatures();
  if (!features)
    return std::nullopt;
  std::set<unsigned> out;
  for (const auto &[ifindex, bits] : *features)
    if (bits & XdpActNdoXmit)
      out.insert(ifindex);
  return out;
}

/// A DNAT program translates a reply on the interface it arrives on (the
/// route to the translated address) and sends it back by redirect through
/// the client's side: the load's other interfaces. Without the first, the
/// reply reaches the client untranslated; without the second, the kernel
/// drops the redirected reply. (A packet in the original direction that
/// cannot be redirected is passed to the kernel, already translated, which
/// forwards it: the side where replies arrive need not transmit.)
void checkDnat(const Meta &meta, const Plan &p,
               const std::optional<std::set<unsigned>> &tx) {
  if (meta.dnat.empty())
    return;
  std::map<unsigned, std::vector<std::string>> missing; // ifindex -> addresses
  std::set<unsigned> replySide;
  for (const std::string &address : meta.dnat) {
    Route r = routeTo(address);
    if (r.local)
      continue; // delivered locally: docs/nat.md says what is not done
    replySide.insert(r.ifindex);
    if (!loadsOn(p, r.ifindex))
      missing[r.ifindex].push_back(address);
  }
  if (!missing.empty()) {
    std::string where, list;
    for (const InterfaceXdp &x : p.ifaces)
      list += (list.empty() ? "" : ",") + x.iface;
    for (const auto &[ifindex, addresses] : missing) {
      std::string name = ifaceName(ifindex);
      list += "," + name;
      for (const std::string &a : addresses)
        where += (where.empty() ? "" : "; ") + std::string("replies from ") +
                 a + " arrive on " + name;
    }
    throw LoadError("the program translates connections (DNAT) whose "
                    "replies it would not see: " +
                    where +
                    " (the route there), where it is not loaded. Load it "
                    "there too: --load " +
                    list);
  }
  if (!tx)
    return;
  for (const InterfaceXdp &x : p.ifaces)
    if (!replySide.count(x.ifindex) && !tx->count(x.ifindex))
      throw LoadError("DNAT replies go back to clients on " + x.iface +
                      " by XDP redirect, but " + x.iface +
                      " cannot transmit redirected frames in native mode: " +
                      noXmitReason(x.iface));
}

/// tc `mirred egress redirect` targets must take redirected frames.
void checkRedirects(const std::map<uint32_t, uint32_t> &targets,
                    const std::optional<std::set<unsigned>> &tx) {
  if (!tx)
    return;
  for (const auto &[slot, ifindex] : targets)
    if (!tx->count(ifindex)) {
      std::string dev = ifaceName(ifindex);
      throw LoadError("mirred egress redirect dev " + dev + ": " + dev +
                      " cannot transmit frames XDP redirects in native " +
                      "mode: " + noXmitReason(dev));
    }
}

//===-- maps --------------------------------------------------------------===//

/// Maps created here before libbpf loads the object (see the file comment),
/// with the object's BTF for their keys and values so bpftool can show them.
class PreparedMaps {
public:
  explicit PreparedMaps(bpf_object *obj) {
    // A copy of the object's BTF: libbpf loads its own later, and refuses a
    // BTF that is loaded already.
    if (const struct btf *own = bpf_object__btf(obj)) {
      uint32_t size = 0;
      const void *raw = btf__raw_data(own, &size);
      btf_.reset(btf__new(raw, size));
      if (btf_ && btf__load_into_kernel(btf_.get()) != 0)
        btf_.reset();
    }
  }

  /// Creates `map`'s kernel map, to be filled, and hands it to libbpf.
  int create(bpf_map *map) {
    bpf_map_create_opts opts;
    zeroOpts(opts);
    opts.map_flags = bpf_map__map_flags(map);
    if (btf_) {
      opts.btf_fd = uint32_t(btf__fd(btf_.get()));
      opts.btf_key_type_id = bpf_map__btf_key_type_id(map);
      opts.btf_value_type_id = bpf_map__btf_value_type_id(map);
    }
    auto make = [&] {
      return Fd(bpf_map_create(bpf_map__type(map), bpf_map__name(map),
                               bpf_map__key_size(map), bpf_map__value_size(map),
                               bpf_map__max_entries(map), &opts));
    };
    Fd fd = make();
    if (!fd.valid() && btf_) { // some map types take no BTF: as libbpf does
      opts.btf_fd = opts.btf_key_type_id = opts.btf_value_type_id = 0;
      fd = make();
    }
    if (!fd.valid())
      throw sysError(std::string("cannot create map ") + bpf_map__name(map),
                     errno);
    reuse(map, fd.get());
    fds_.push_back(std::move(fd));
    return fds_.back().get();
  }

  /// Hands an existing map to libbpf for `map`.
  static void reuse(bpf_map *map, int fd) {
    if (int err = bpf_map__reuse_fd(map, fd))
      throw sysError(std::string("cannot use a map for ") + bpf_map__name(map),
                     err);
  }

private:
  std::unique_ptr<struct btf, decltype(&btf__free)> btf_{nullptr, &btf__free};
  std::vector<Fd> fds_;
};

/// A DNAT program keeps the replaced program's connections, as conntrack
/// keeps its entries when the nat rules change: the old connection table
/// becomes the new program's if the two have the same shape.
void takeOverNat(bpf_map *map, const contract::MapSpec &spec,
                 const std::vector<OwnProgram> &old) {
  for (const OwnProgram &p : old) {
    uint32_t id = &spec == &contract::NatMap ? p.natId : p.nat6Id;
    if (!id)
      continue;
    Fd fd(bpf_map_get_fd_by_id(id));
    struct bpf_map_info info;
    std::memset(&info, 0, sizeof info);
    uint32_t length = sizeof info;
    if (!fd.valid() || bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0 ||
        info.max_entries != bpf_map__max_entries(map) ||
        info.map_flags != bpf_map__map_flags(map))
      continue;
    PreparedMaps::reuse(map, fd.get());
    return;
  }
}

//===-- attaching ---------------------------------------------------------===//

/// rule2xdp's program `id` as a descriptor, to replace or restore it.
Fd programFd(uint32_t id) {
  Fd fd(bpf_prog_get_fd_by_id(id));
  if (!fd.valid())
    throw sysError("cannot open rule2xdp's program " + std::to_string(id),
                   errno);
  return fd;
}

/// Netlink: on each interface in turn, replacing the old program. If one
/// fails, the interfaces done so far get their old program back.
void attachAllNetlink(const Plan &p, int progFd, XdpMode mode) {
  std::vector<Fd> oldFds;
  for (const InterfaceXdp &x : p.ifaces)
    oldFds.push_back(x.own ? programFd(x.own->progId) : Fd());
  for (std::size_t k = 0; k < p.ifaces.size(); ++k) {
    try {
      attachNetlink(p.ifaces[k], progFd, mode, oldFds[k].get());
    } catch (const LoadError &) {
      for (std::size_t done = 0; done < k; ++done) {
        InterfaceXdp now = p.ifaces[done];
        now.mode = mode;
        try {
          if (oldFds[done].valid())
            attachNetlink(now, oldFds[done].get(), p.ifaces[done].mode, progFd);
          else
            detachNetlink(now, progFd);
        } catch (const LoadError &) {
        }
      }
      throw;
    }
  }
}

/// libxdp: into each interface's dispatcher (made if missing). A rule2xdp
/// program already there leaves after the new one joined: libxdp has no
/// atomic replace of one component, and for that moment a packet the first
/// passes meets both (the stricter of the two rule sets), where the other
/// order would let packets through unfiltered.
void attachAllDispatcher(const Plan &p, xdp_program *prog, XdpMode mode) {
  for (const InterfaceXdp &x : p.ifaces) {
    attachDispatcher(x, prog, mode);
    if (x.own)
      detachDispatcher(x, x.own->progId);
    // libxdp falls back to a plain attach when it cannot use a dispatcher
    // (a kernel that refuses extension programs: its log says why); the
    // dispatcher was the point, so take the program off again and say so.
    InterfaceXdp now = inspect(x.iface);
    if (now.dispatcher && now.own && now.own->progId == xdp_program__id(prog))
      continue;
    if (!now.dispatcher && now.attachedId == xdp_program__id(prog))
      detachNetlink(now, xdp_program__fd(prog));
    throw LoadError("libxdp could not make a multi-program dispatcher on " +
                    x.iface +
                    " (the kernel must load and attach extension programs, "
                    "BPF_PROG_TYPE_EXT); nothing was attached");
  }
}

/// Binds the maps the loader filled to the program, so they are among the
/// program's maps as the kernel lists them even when its code never reads
/// them (r2x_ifmatch without `-i` rules): whoever finds the program from
/// the interface finds them too.
void bindFilledMaps(bpf_object *obj, int progFd) {
  for (const contract::MapSpec *spec : {&contract::IfmatchMap})
    if (bpf_map *map = findMap(obj, *spec, false))
      if (int err = bpf_prog_bind_map(progFd, bpf_map__fd(map), nullptr))
        throw sysError(
            std::string("cannot bind ") + spec->name + " to the program", err);
}

/// The convenience pins, and the sweep of stale ones. A failure here is
/// reported but the program stays: it is attached and working.
void pinAll(const Plan &p, bpf_object *obj) {
  try {
    if (!bpffsUsable())
      return;
    PinnedMaps maps;
    maps.counters = bpf_map__fd(findMap(obj, contract::CountersMap));
    maps.ifmatch = bpf_map__fd(findMap(obj, contract::IfmatchMap));
    maps.meta = bpf_map__fd(metaMap(obj));
    if (bpf_map *nat = findMap(obj, contract::NatMap, false))
      maps.nat = bpf_map__fd(nat);
    if (bpf_map *nat6 = findMap(obj, contract::Nat6Map, false))
      maps.nat6 = bpf_map__fd(nat6);
    for (const InterfaceXdp &x : p.ifaces)
      pinMaps(x.iface, maps);
    sweepStalePins();
  } catch (const LoadError &e) {
    std::fprintf(stderr, "rule2xdp: warning: the program is attached, but %s\n",
                 e.what());
  }
}

std::vector<unsigned> ifindexes(const std::vector<std::string> &names) {
  std::vector<unsigned> out;
  for (const std::string &name : names) {
    checkIfaceName(name);
    unsigned ifindex = ::if_nametoindex(name.c_str());
    if (ifindex == 0)
      throw LoadError("no such interface: " + name);
    out.push_back(ifindex);
  }
  return out;
}

} // namespace

//===-- public entry points -----------------------------------------------===//

namespace detail {

void checkIfaceName(const std::string &iface) {
  // The kernel's own rule (dev_valid_name), which also keeps the name a
  // single, harmless path component under bpffs.
  bool valid = !iface.empty() && iface.size() < IFNAMSIZ && iface != "." &&
               iface != "..";
  for (char c : iface)
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)))
      valid = false;
  if (!valid)
    throw LoadError("bad interface name: '" + iface + "'");
}

} // namespace detail

std::string pinDir(const std::string &iface) { return detail::pinDir(iface); }

void load(const std::vector<std::string> &ifaces, const LoadOptions &options,
          const std::vector<uint8_t> &object) {
  InterfaceLock lock(ifindexes(ifaces));
  LibbpfCapture capture;
  bpf_object_open_opts openOpts;
  zeroOpts(openOpts);
  openOpts.object_name = contract::ObjectName;
  ObjectPtr obj(bpf_object__open_mem(object.data(), object.size(), &openOpts),
                &bpf_object__close);
  if (!obj)
    throw LoadError(sysMessage("cannot open the BPF object", errno),
                    capture.excerpt());

  // 1. Decide, and refuse before anything changes.
  bpf_program *prog = findProgram(obj.get());
  Meta meta = parseObjectMeta(objectMetaText(obj.get()));
  std::map<uint32_t, uint32_t> redirects = redirectTargets(meta);
  Plan p = plan(ifaces, options);
  if (options.replaceOnly)
    for (const InterfaceXdp &x : p.ifaces)
      if (!x.own || x.own->progId != options.replaceOnly)
        throw LoadError("rule2xdp's program on " + x.iface +
                        " changed while this change to it was compiled "
                        "(another rule2xdp?); nothing was changed: run the "
                        "command again");
  std::optional<std::set<unsigned>> tx = transmitters(options.mode);
  checkDnat(meta, p, tx);
  checkRedirects(redirects, tx);
  bpf_map *counters = findMap(obj.get(), contract::CountersMap);
  checkSlots(meta, bpf_map__max_entries(counters));

  // 2. The maps, complete before the program exists.
  PreparedMaps maps(obj.get());
  int countersFd = maps.create(counters);
  fillIfaceMap(maps.create(findMap(obj.get(), contract::IfmatchMap)), meta);
  if (bpf_map *ifmac = findMap(obj.get(), contract::IfmacMap, false))
    fillMacMap(maps.create(ifmac));
  if (bpf_map *rst = findMap(obj.get(), contract::RstMap, false))
    fillRstMap(maps.create(rst));
  fillSetMaps(obj.get(), object, meta,
              [&maps](bpf_map *m) { return maps.create(m); });
  if (bpf_map *txMap = findMap(obj.get(), contract::TxMap, false))
    fillTxMap(maps.create(txMap), tx);
  if (bpf_map *redirect = findMap(obj.get(), contract::RedirectMap, false))
    fillRedirectMap(maps.create(redirect), bpf_map__max_entries(redirect),
                    redirects);
  else if (!redirects.empty())
    throw LoadError(
        std::string("object names redirect targets but has no map ") +
        contract::RedirectMap.name);
  for (const contract::MapSpec *spec : {&contract::NatMap, &contract::Nat6Map})
    if (bpf_map *nat = findMap(obj.get(), *spec, false))
      takeOverNat(nat, *spec, p.old);

  // 3. Load and attach. libbpf carries on without BTF the kernel refused;
  // the object contract says it must be valid, and a silent downgrade
  // would hide compiler bugs.
  auto refusedBtf = [&capture] {
    if (capture.text().find("BTF is optional, ignoring") != std::string::npos)
      throw LoadError("the kernel refused the object's BTF", capture.excerpt());
  };
  if (p.dispatcher) {
    xdp_program_opts xopts;
    zeroOpts(xopts);
    xopts.obj = obj.get();
    xopts.prog_name = contract::ProgName;
    std::unique_ptr<xdp_program, decltype(&xdp_program__close)> xp(
        xdp_program__create(&xopts), &xdp_program__close);
    if (!xp || libxdp_get_error(xp.get()))
      throw LoadError("libxdp cannot use the object", capture.excerpt());
    // libxdp loads the program inside the attach: counts of the old
    // program during the new one's verification are not carried.
    carryCounters(countersFd, meta, p.old);
    try {
      attachAllDispatcher(p, xp.get(), options.mode);
    } catch (LoadError &e) {
      if (e.log.empty())
        e.log = capture.excerpt();
      throw;
    }
    refusedBtf();
    bindFilledMaps(obj.get(), xdp_program__fd(xp.get()));
  } else {
    if (int err = bpf_object__load(obj.get()))
      throw LoadError(sysMessage("cannot load the BPF object", -err),
                      capture.excerpt());
    refusedBtf();
    bindFilledMaps(obj.get(), bpf_program__fd(prog));
    carryCounters(countersFd, meta, p.old);
    try {
      attachAllNetlink(p, bpf_program__fd(prog), options.mode);
    } catch (LoadError &e) {
      e.log = capture.excerpt(); // the kernel's own message, if it gave one
      throw;
    }
  }
  pinAll(p, obj.get());
}

namespace {

/// The map of set `set` in rule2xdp's program on `iface`, with its record.
std::pair<MetaSet, uint32_t> setMap(const InterfaceXdp &x,
                                    const std::string &set) {
  if (!x.own)
    throw LoadError("rule2xdp has no program on " + x.iface);
  for (const MetaSet &s : x.own->meta->sets)
    if (s.name == set) {
      auto id = x.own->setIds.find(s.map);
      if (id == x.own->setIds.end())
        throw LoadError("rule2xdp's program on " + x.iface + " has no map " +
                        s.map + " for set " + set);
      return {s, id->second};
    }
  throw LoadError("rule2xdp's program on " + x.iface + " tests no set called " +
                  set +
                  " (a list:set's members are changed by their own names)");
}

} // namespace

std::string setCreateOptions(const std::string &iface, const std::string &set) {
  unsigned ifindex = ifindexes({iface})[0];
  InterfaceLock lock({ifindex});
  return setMap(inspect(iface), set).first.create;
}

void updateSet(const std::string &iface, const std::string &set,
               const std::string &key, uint32_t value, bool add) {
  unsigned ifindex = ifindexes({iface})[0];
  InterfaceLock lock({ifindex});
  auto [meta, id] = setMap(inspect(iface), set);
  Fd fd(bpf_map_get_fd_by_id(id));
  if (!fd.valid())
    throw sysError("cannot open the map of set " + set, errno);
  struct bpf_map_info info {};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
    throw sysError("cannot read the map of set " + set, errno);
  if (info.key_size != key.size())
    throw LoadError("the entry does not fit the map of set " + set);
  if (add) {
    if (bpf_map_update_elem(fd.get(), key.data(), &value, BPF_NOEXIST) == 0)
      return;
    if (errno == EEXIST)
      throw LoadError("Element cannot be added to the set " + set +
                      ": it's already added");
    if (errno == ENOSPC || errno == E2BIG)
      throw LoadError("Hash is full, cannot add more elements to set " + set);
    throw sysError("cannot add to set " + set, errno);
  }
  if (bpf_map_delete_elem(fd.get(), key.data()) == 0)
    return;
  if (errno == ENOENT)
    throw LoadError("Element cannot be deleted from the set " + set +
                    ": it's not added");
  throw sysError("cannot delete from set " + set, errno);
}

std::vector<LoadedProgram>
loadedPrograms(const std::vector<std::string> &ifaces) {
  InterfaceLock lock(ifindexes(ifaces));
  std::vector<LoadedProgram> out;
  for (const std::string &name : ifaces) {
    InterfaceXdp x = inspect(name);
    LoadedProgram l;
    if (x.own) {
      l.progId = x.own->progId;
      l.metaText = x.own->metaText;
    }
    out.push_back(std::move(l));
  }
  return out;
}

void unload(const std::string &iface) {
  unsigned ifindex = ifindexes({iface})[0];
  InterfaceLock lock({ifindex});
  LibbpfCapture capture;
  InterfaceXdp x = inspect(iface);
  if (!x.own)
    throw LoadError("rule2xdp has no program on " + iface);
  if (x.dispatcher) {
    if (!bpffsUsable())
      throw LoadError(
          "rule2xdp's program on " + iface + " is in a libxdp dispatcher, " +
          "whose links libxdp keeps pinned under " + contract::pin::BpffsRoot +
          ", which this command cannot reach (as under `ip netns exec`): run " +
          "rule2xdp with `nsenter --net=/run/netns/NAME` instead");
    try {
      detachDispatcher(x, x.own->progId);
    } catch (LoadError &e) {
      e.log = capture.excerpt();
      throw;
    }
  } else {
    detachNetlink(x, programFd(x.own->progId).get());
  }
  try {
    if (bpffsUsable()) {
      removePins(iface);
      sweepStalePins();
    }
  } catch (const LoadError &e) {
    std::fprintf(stderr, "rule2xdp: warning: the program is detached, but %s\n",
                 e.what());
  }
  lock.forget(ifindex);
}

} // namespace r2x::runtime
