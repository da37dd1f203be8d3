//===- runtime/Loader.cpp - attach rule2xdp objects to interfaces ---------===//
//
/// \file
/// load(), unload() and fillIfaceMap() (contract in Loader.h).
///
/// The pinned link is the single source of truth for "rule2xdp owns this
/// interface": load() pins it last, after the maps, so a crash half-way leaves
/// either no link pin (and the unpinned link died with the process) or a
/// complete set. Before trusting a pinned link, both load() and unload() check
/// that it is attached to *this* interface: bpffs is shared by every network
/// namespace of a mount namespace, so "veth0" in another netns maps to the
/// same pin directory.
//===----------------------------------------------------------------------===//


#include "runtime/Loader.h"
#include "runtime/BpfObject.h"
#include "runtime/Meta.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>

#include <dirent.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <cstring>

#include <cctype>
#include <cstdio>
#include <compare>
#include <cstdarg>
#include <fstream>
#include <map>
#include <memory>
#include <string_view>

namespace r2x::runtime {

using namespace detail;
namespace pin = contract::pin;

namespace {

//===-- libbpf output -----------------------------------------------------===//

/// Routes libbpf's WARN and INFO output into a buffer while alive, so a
/// failure can carry the verifier log in LoadError::log instead of spraying
/// it over stderr. DEBUG stays out: it is megabytes of relocation chatter.
class LibbpfCapture {
public:
  LibbpfCapture() : previous_(libbpf_set_print(&LibbpfCapture::print)) {
    active_ = this;
  }
  ~LibbpfCapture() {
    libbpf_set_print(previous_);
    active_ = nullptr;
  }
  LibbpfCapture(const LibbpfCapture &) = delete;
  LibbpfCapture &operator=(const LibbpfCapture &) = delete;

  const std::string &text() const { return text_; }

  /// The end of the verifier log if libbpf printed one (the rejected
  /// instruction and the reason are at its end), otherwise the end of
  /// everything libbpf said.
  std::string excerpt() const {
    constexpr std::string_view Begin = "-- BEGIN PROG LOAD LOG --";
    constexpr std::string_view End = "-- END PROG LOAD LOG --";
    std::string_view text = text_;
    std::size_t begin = text.rfind(Begin);
    if (begin != std::string_view::npos) {
      text.remove_prefix(begin);
      std::size_t nl = text.find('\n');
      text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
      text = text.substr(0, text.find(End));
    }
    return lastLines(text, 25);
  }

private:
  static std::string lastLines(std::string_view text, std::size_t count) {
    while (!text.empty() && text.back() == '\n')
      text.remove_suffix(1);
    std::size_t start = 0, seen = 0;
    for (std::size_t i = text.size(); i-- > 0;)
      if (text[i] == '\n' && ++seen == count) {
        start = i + 1;
        break;
      }
    std::string lines(text.substr(start));
    if (!lines.empty())
      lines += '\n';
    return lines;
  }

  static int print(enum libbpf_print_level level, const char *format,
                   va_list args) {
    if (level == LIBBPF_DEBUG || !active_)
      return 0;
    va_list copy;
    va_copy(copy, args);
    int length = std::vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (length <= 0)
      return length;
    std::string &text = active_->text_;
    std::size_t old = text.size();
    text.resize(old + std::size_t(length) + 1);
    std::vsnprintf(text.data() + old, std::size_t(length) + 1, format, args);
    text.resize(old + std::size_t(length)); // drop vsnprintf's NUL
    return length;
  }

  static inline LibbpfCapture *active_ = nullptr;
  libbpf_print_fn_t previous_;
  std::string text_;
};

/// libbpf option structs must be zeroed, padding included, and carry their
/// size (the LIBBPF_OPTS macro does this in C).
template <class Opts> Opts zeroedOpts() {
  Opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  return opts;
}

//===-- bpffs and pins ----------------------------------------------------===//

/// /sys/fs/bpf is often missing its bpffs (fresh containers, and always under
/// `ip netns exec`, which remounts /sys). Pins made there live as long as the
/// mount: under `ip netns exec` that is the exec's mount namespace.
void ensureBpffs() {
  struct statfs fs;
  if (::statfs(pin::BpffsRoot, &fs) == 0 &&
      static_cast<uint32_t>(fs.f_type) == BPF_FS_MAGIC)
    return;
  // mode=0700, as iproute2 mounts it: pins hand out map and link access.
  if (::mount("bpf", pin::BpffsRoot, "bpf", 0, "mode=0700") != 0)
    throw sysError(std::string("cannot mount bpffs at ") + pin::BpffsRoot,
                   errno);
  // A bpffs we mount in a mount namespace of our own (`ip netns exec` makes
  // one per command) dies with it, and the pinned link with it: the program
  // would be detached the moment we exit. Say so rather than succeed quietly.
  // `ip netns exec` unshares and then execs us, so our parent is still in
  // the mount namespace the user meant.
  char self[64] = {0}, parent[64] = {0};
  std::string parentNs = "/proc/" + std::to_string(::getppid()) + "/ns/mnt";
  if (::readlink("/proc/self/ns/mnt", self, sizeof self - 1) > 0 &&
      ::readlink(parentNs.c_str(), parent, sizeof parent - 1) > 0 &&
      std::strcmp(self, parent) != 0)
    std::fprintf(stderr,
                 "rule2xdp: warning: %s was mounted in a private mount "
                 "namespace (as under `ip netns exec`); the program stays "
                 "attached only while that namespace lives. Use `nsenter "
                 "--net=/run/netns/NAME rule2xdp ...` to keep it.\n",
                 pin::BpffsRoot);
}

void makeDir(const std::string &path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    throw sysError("cannot create " + path, errno);
}

/// Pins `fd` at `path`, replacing an older pin there without a moment where
/// the name is missing: pin beside it, then rename over it (bpffs supports
/// rename), so `--stats` running concurrently sees the old or the new map.
void pinReplacing(int fd, const std::string &path) {
  std::string temporary = path + "_new"; // bpffs reserves names with dots
  ::unlink(temporary.c_str());           // a leftover of an interrupted load
  if (int err = bpf_obj_pin(fd, temporary.c_str()))
    throw sysError("cannot pin " + temporary, err);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temporary.c_str());
    throw sysError("cannot rename " + temporary + " to " + path, err);
  }
}

/// Removes a pin directory and everything in it (pins, leftovers of an
/// interrupted load), then our root if it became empty. Dropping the link pin
/// releases the link: a link nobody holds detaches its program.
void removePinDir(const std::string &dir) {
  if (DIR *d = ::opendir(dir.c_str())) {
    while (struct dirent *entry = ::readdir(d)) {
      std::string_view name = entry->d_name;
      if (name != "." && name != "..")
        ::unlink((dir + "/" + entry->d_name).c_str());
    }
    ::closedir(d);
  }
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
    throw sysError("cannot remove " + dir, errno);
  ::rmdir(pin::Root); // fails harmlessly while other interfaces have pins
}

//===-- the pinned link ---------------------------------------------------===//

/// What a pinned link means for the interface we were asked about.
enum class LinkState {
  Stale,   // its device is gone: the pins are leftovers
  Native,  // attached to this interface, driver mode
  Generic, // attached to this interface, generic (skb) mode
  Other,   // attached to another device (another netns, hardware offload)
};

struct PinnedLink {
  Fd fd;
  struct bpf_link_info info;
  LinkState state = LinkState::Stale;
};

/// Opens the link pinned for `iface` and works out where it is attached.
/// `ifindex` is the interface's index here, 0 if it does not exist.
PinnedLink openPinnedLink(const std::string &iface, unsigned ifindex) {
  std::string path = pinDir(iface) + "/" + pin::Link;
  PinnedLink link;
  link.fd = Fd(bpf_obj_get(path.c_str()));
  if (!link.fd.valid())
    throw sysError("cannot open the pinned link " + path, errno);
  std::memset(&link.info, 0, sizeof link.info);
  uint32_t length = sizeof link.info;
  if (int err = bpf_obj_get_info_by_fd(link.fd.get(), &link.info, &length))
    throw sysError("cannot read the pinned link " + path, err);
  if (link.info.type != BPF_LINK_TYPE_XDP)
    throw LoadError(path + " is not an XDP link");

  if (link.info.xdp.ifindex == 0) // the kernel clears it when the device goes
    return link;
  link.state = LinkState::Other;
  if (ifindex == 0 || link.info.xdp.ifindex != ifindex)
    return link;
  // Same index, but indexes repeat across namespaces: only the device's own
  // view of its programs proves the link is attached here.
  auto query = zeroedOpts<bpf_xdp_query_opts>();
  if (int err = bpf_xdp_query(int(ifindex), 0, &query))
    throw sysError("cannot query the XDP programs of " + iface, err);
  if (query.drv_prog_id == link.info.prog_id)
    link.state = LinkState::Native;
  else if (query.skb_prog_id == link.info.prog_id)
    link.state = LinkState::Generic;
  return link;
}

LoadError notOurs(const std::string &iface, const PinnedLink &link) {
  return LoadError(pinDir(iface) + " holds a link attached to ifindex " +
                   std::to_string(link.info.xdp.ifindex) + ", not to " + iface +
                   " here (the same name in another network " +
                   "namespace?); not touching it");
}

//===-- the object --------------------------------------------------------===//

using ObjectPtr = std::unique_ptr<bpf_object, decltype(&bpf_object__close)>;

Meta parseObjectMeta(const std::string &text) {
  try {
    return parseMeta(text);
  } catch (const std::runtime_error &e) {
    throw LoadError(std::string("object metadata is malformed: ") + e.what());
  }
}

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

//===-- attaching ---------------------------------------------------------===//

uint32_t modeFlag(XdpMode mode) {
  return mode == XdpMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

struct Loaded {
  int progFd, countersFd, ifmatchFd, metaFd;
  int natFd = -1, nat6Fd = -1; ///< r2x_nat and r2x_nat6, if the object has them
};

void pinMaps(const std::string &dir, const Loaded &loaded) {
  pinReplacing(loaded.countersFd, dir + "/" + pin::Counters);
  pinReplacing(loaded.ifmatchFd, dir + "/" + pin::Ifmatch);
  pinReplacing(loaded.metaFd, dir + "/" + pin::Meta);
  for (auto [fd, name] : {std::pair{loaded.natFd, pin::Nat},
                          std::pair{loaded.nat6Fd, pin::Nat6}}) {
    if (fd >= 0)
      pinReplacing(fd, dir + "/" + name);
    else if (pathExists(dir + "/" + name))
      ::unlink((dir + "/" + name).c_str()); // a replaced DNAT program's
  }
}

/// Every device of the namespace in r2x_tx, so redirects can reach it.
void fillTxMap(int mapFd) {
  struct if_nameindex *all = if_nameindex();
  if (!all)
    throw sysError("cannot list the network devices", errno);
  for (struct if_nameindex *i = all; i->if_index != 0; ++i) {
    uint32_t idx = i->if_index;
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

/// The targets of tc `mirred egress redirect` (the metadata's `redirect`
/// records), each resolved to its ifindex in the current network namespace:
/// slot -> ifindex. A missing device is a load error naming it: act_mirred
/// would refuse to be created without it.
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

void fillRedirectMap(bpf_map *map, const std::map<uint32_t, uint32_t> &slots) {
  const char *name = contract::RedirectMap.name;
  for (const auto &[slot, ifindex] : slots) {
    if (slot >= bpf_map__max_entries(map))
      throw LoadError("metadata gives redirect slot " + std::to_string(slot) +
                      ", but " + name + " has " +
                      std::to_string(bpf_map__max_entries(map)));
    if (bpf_map_update_elem(bpf_map__fd(map), &slot, &ifindex, BPF_ANY) != 0)
      throw sysError("cannot add redirect target " + std::to_string(ifindex) +
                         " to " + name,
                     errno);
  }
}

/// A first attach: a new link, pinned after the maps.
void attachNew(const std::string &iface, unsigned ifindex, XdpMode mode,
               const Loaded &loaded) {
  std::string dir = pinDir(iface);
  auto opts = zeroedOpts<bpf_link_create_opts>();
  opts.flags = modeFlag(mode);
  Fd link(bpf_link_create(loaded.progFd, int(ifindex), BPF_XDP, &opts));
  if (!link.valid()) {
    int err = errno;
    if (err == EBUSY || err == EEXIST)
      throw LoadError(iface + " already has an XDP program that rule2xdp " +
                      "did not attach; detach it first");
    if (err == EOPNOTSUPP && mode == XdpMode::Native)
      throw sysError("cannot attach to " + iface +
                         " in native mode (its driver may lack XDP; try " +
                         "generic mode)",
                     err);
    throw sysError("cannot attach the program to " + iface, err);
  }
  try {
    makeDir(dir);
    pinMaps(dir, loaded);
    std::string linkPath = dir + "/" + pin::Link;
    if (int err = bpf_obj_pin(link.get(), linkPath.c_str()))
      throw sysError("cannot pin " + linkPath, err);
  } catch (...) {
    // Our unpinned link detaches when `link` closes; leave no half set.
    try {
      removePinDir(dir);
    } catch (const LoadError &) {
    }
    throw;
  }
}

void attach(const std::string &iface, unsigned ifindex, XdpMode mode,
            const Loaded &loaded) {
  ensureBpffs();
  makeDir(pin::Root);
  std::string dir = pinDir(iface);
  if (!pathExists(dir + "/" + pin::Link))
    return attachNew(iface, ifindex, mode, loaded);

  PinnedLink link = openPinnedLink(iface, ifindex);
  LinkState wanted =
      mode == XdpMode::Native ? LinkState::Native : LinkState::Generic;
  if (link.state == LinkState::Other)
    throw notOurs(iface, link);
  if (link.state == wanted) {
    // The atomic path: packets see the old program or the new one, never
    // none. Counters restart with the new maps, as after iptables-restore.
    int err = bpf_link_update(link.fd.get(), loaded.progFd, nullptr);
    if (err == 0)
      return pinMaps(dir, loaded);
    if (err != -ENOLINK) // ENOLINK: the device went away meanwhile
      throw sysError("cannot replace the program on " + iface, err);
  } else if (link.state != LinkState::Stale) {
    // A link cannot change mode; switching is detach then attach, with a
    // moment without a program.
    if (int err = bpf_link_detach(link.fd.get()))
      throw sysError("cannot detach the program from " + iface +
                         " to change its XDP mode",
                     err);
  }
  link.fd.reset();
  removePinDir(dir);
  makeDir(pin::Root);
  attachNew(iface, ifindex, mode, loaded);
}

//===-- VLAN devices ------------------------------------------------------===//

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

std::string pinDir(const std::string &iface) {
  return std::string(pin::Root) + "/" + iface;
}

void load(const std::vector<std::string> &ifaces, XdpMode mode,
          const std::vector<uint8_t> &object) {
  std::vector<unsigned> ifindexes;
  for (const std::string &iface : ifaces) {
    checkIfaceName(iface);
    unsigned ifindex = ::if_nametoindex(iface.c_str());
    if (ifindex == 0)
      throw LoadError("no such interface: " + iface);
    ifindexes.push_back(ifindex);
  }

  LibbpfCapture capture;
  auto openOpts = zeroedOpts<bpf_object_open_opts>();
  openOpts.object_name = contract::ObjectName;
  ObjectPtr obj(bpf_object__open_mem(object.data(), object.size(), &openOpts),
                &bpf_object__close);
  if (!obj)
    throw LoadError(sysMessage("cannot open the BPF object", errno),
                    capture.excerpt());

  bpf_program *prog = findProgram(obj.get());
  bpf_map *metaSource = metaMap(obj.get());
  std::string metaText = objectMetaText(obj.get());
  // Refuse bad metadata before touching the kernel.
  Meta parsed = parseObjectMeta(metaText);
  std::map<uint32_t, uint32_t> redirects = redirectTargets(parsed);

  if (int err = bpf_object__load(obj.get()))
    throw LoadError(sysMessage("cannot load the BPF object", -err),
                    capture.excerpt());
  // libbpf carries on without BTF the kernel refused; the object contract
  // says it must be valid, and a silent downgrade would hide compiler bugs.
  if (capture.text().find("BTF is optional, ignoring") != std::string::npos)
    throw LoadError("the kernel refused the object's BTF", capture.excerpt());

  bpf_map *counters = findMap(obj.get(), contract::CountersMap);
  bpf_map *ifmatch = findMap(obj.get(), contract::IfmatchMap);
  checkSlots(parsed, bpf_map__max_entries(counters));
  fillIfaceMap(bpf_map__fd(ifmatch), metaText);
  Loaded loaded{bpf_program__fd(prog), bpf_map__fd(counters),
                bpf_map__fd(ifmatch), bpf_map__fd(metaSource)};
  if (bpf_map *nat = findMap(obj.get(), contract::NatMap, false))
    loaded.natFd = bpf_map__fd(nat);
  if (bpf_map *nat6 = findMap(obj.get(), contract::Nat6Map, false))
    loaded.nat6Fd = bpf_map__fd(nat6);
  if (bpf_map *tx = findMap(obj.get(), contract::TxMap, false))
    fillTxMap(bpf_map__fd(tx));
  if (bpf_map *redirect = findMap(obj.get(), contract::RedirectMap, false))
    fillRedirectMap(redirect, redirects);
  else if (!redirects.empty())
    throw LoadError(
        std::string("object names redirect targets but has no map ") +
        contract::RedirectMap.name);
  if (bpf_map *ifmac = findMap(obj.get(), contract::IfmacMap, false))
    fillMacMap(bpf_map__fd(ifmac));

  for (size_t k = 0; k < ifaces.size(); ++k)
    attach(ifaces[k], ifindexes[k], mode, loaded);
}

void unload(const std::string &iface) {
  checkIfaceName(iface);
  std::string dir = pinDir(iface);
  if (!pathExists(dir + "/" + pin::Link))
    throw LoadError("rule2xdp has no program on " + iface);

  PinnedLink link = openPinnedLink(iface, ::if_nametoindex(iface.c_str()));
  if (link.state == LinkState::Other)
    throw notOurs(iface, link);
  // Detach explicitly rather than only dropping the pin: someone else (a
  // running --stats, a debugger) may hold the link open.
  if (link.state != LinkState::Stale)
    if (int err = bpf_link_detach(link.fd.get()))
      throw sysError("cannot detach the program from " + iface, err);
  link.fd.reset();
  removePinDir(dir);
}

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

void fillIfaceMap(int mapFd, const std::string &metaText) {
  Meta meta = parseObjectMeta(metaText);
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
