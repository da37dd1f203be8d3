//===- runtime/Pins.cpp - convenience pins under bpffs --------------------===//
//
/// \file
/// See Pins.h.
//===----------------------------------------------------------------------===//
#include "runtime/Pins.h"

#include "runtime/Lock.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <linux/magic.h>

#include <dirent.h>
#include <set>
#include <string_view>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <vector>

namespace r2x::runtime::detail {

namespace pin = contract::pin;

namespace {

bool isBpffs(const char *path) {
  struct statfs fs;
  return ::statfs(path, &fs) == 0 &&
         static_cast<uint32_t>(fs.f_type) == BPF_FS_MAGIC;
}

/// `ip netns exec` unshares the mount namespace and then execs us, so our
/// parent is still in the mount namespace the user meant.
bool privateMountNamespace() {
  char self[64] = {0}, parent[64] = {0};
  std::string parentNs = "/proc/" + std::to_string(::getppid()) + "/ns/mnt";
  return ::readlink("/proc/self/ns/mnt", self, sizeof self - 1) > 0 &&
         ::readlink(parentNs.c_str(), parent, sizeof parent - 1) > 0 &&
         std::string_view(self) != std::string_view(parent);
}

void makeDir(const std::string &path) {
  if (::mkdir(path.c_str(), pin::DirMode) != 0 && errno != EEXIST)
    throw sysError("cannot create " + path, errno);
  // Explicit: the umask may have left more than the owner's bits.
  if (::chmod(path.c_str(), pin::DirMode) != 0)
    throw sysError("cannot restrict " + path, errno);
}

/// Pins `fd` at `path`, replacing an older pin there without a moment where
/// the name is missing: pin beside it, then rename over it (bpffs supports
/// rename).
void pinReplacing(int fd, const std::string &path) {
  std::string temporary = path + "_new"; // bpffs reserves names with dots
  ::unlink(temporary.c_str());           // a leftover of an interrupted load
  if (int err = bpf_obj_pin(fd, temporary.c_str()))
    throw sysError("cannot pin " + temporary, err);
  if (::chmod(temporary.c_str(), pin::PinMode) != 0 ||
      ::rename(temporary.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temporary.c_str());
    throw sysError("cannot put the pin " + path + " in place", err);
  }
}

std::vector<std::string> entries(const std::string &dir) {
  std::vector<std::string> names;
  if (DIR *d = ::opendir(dir.c_str())) {
    while (struct dirent *e = ::readdir(d)) {
      std::string_view name = e->d_name;
      if (name != "." && name != "..")
        names.emplace_back(name);
    }
    ::closedir(d);
  }
  return names;
}

/// Removes a pin directory and everything in it, then its namespace's
/// directory and the root if they became empty (rmdir fails harmlessly
/// while they are not).
void removeDir(const std::string &dir) {
  for (const std::string &name : entries(dir))
    ::unlink((dir + "/" + name).c_str());
  if (::rmdir(dir.c_str()) != 0 && errno != ENOENT)
    throw sysError("cannot remove " + dir, errno);
  ::rmdir(dir.substr(0, dir.rfind('/')).c_str());
  ::rmdir(pin::Root);
}

/// The maps of every loaded program named like ours.
std::set<uint32_t> mapsOfLoadedPrograms() {
  std::set<uint32_t> maps;
  uint32_t id = 0;
  while (bpf_prog_get_next_id(id, &id) == 0) {
    Fd fd(bpf_prog_get_fd_by_id(id));
    if (!fd.valid())
      continue;
    std::vector<uint32_t> ids(64);
    struct bpf_prog_info info;
    std::memset(&info, 0, sizeof info);
    info.nr_map_ids = uint32_t(ids.size());
    info.map_ids = reinterpret_cast<uintptr_t>(ids.data());
    uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &length) != 0 ||
        std::string_view(info.name) != contract::ProgName)
      continue;
    // rule2xdp objects have a handful of maps; r2x_counters is among the
    // first 64 in any case that matters here.
    ids.resize(std::min<std::size_t>(ids.size(), info.nr_map_ids));
    maps.insert(ids.begin(), ids.end());
  }
  return maps;
}

} // namespace

bool bpffsUsable() {
  if (isBpffs(pin::BpffsRoot))
    return true;
  if (privateMountNamespace())
    return false;
  // mode=0700, as iproute2 mounts it: pins hand out map access.
  if (::mount("bpf", pin::BpffsRoot, "bpf", 0, "mode=0700") != 0)
    throw sysError(std::string("cannot mount bpffs at ") + pin::BpffsRoot,
                   errno);
  return true;
}

std::string pinDir(const std::string &iface) {
  return std::string(pin::Root) + "/" + pin::NetnsPrefix +
         std::to_string(netnsInode()) + "/" + iface;
}

void pinMaps(const std::string &iface, const PinnedMaps &maps) {
  std::string dir = pinDir(iface);
  makeDir(pin::Root);
  makeDir(dir.substr(0, dir.rfind('/')));
  makeDir(dir);
  for (auto [fd, name] :
       {std::pair{maps.counters, pin::Counters},
        std::pair{maps.ifmatch, pin::Ifmatch}, std::pair{maps.meta, pin::Meta},
        std::pair{maps.nat, pin::Nat}, std::pair{maps.nat6, pin::Nat6}}) {
    std::string path = dir + "/" + name;
    if (fd >= 0) {
      pinReplacing(fd, path);
    } else {
      if (pathExists(path))
        ::unlink(path.c_str()); // a replaced program's, which had the map
      // A half-made pin of a load killed between pinning and renaming it:
      // pinReplacing removes its own leftovers, but a program without this
      // map never calls it for this name, and the leftover would hold the
      // old map (and its memory) for as long as the directory exists.
      ::unlink((path + "_new").c_str());
    }
  }
}

void removePins(const std::string &iface) {
  std::string dir = pinDir(iface);
  if (pathExists(dir))
    removeDir(dir);
}

void sweepStalePins() {
  // Pins first, programs second: a pin made by a load running meanwhile is
  // made after its program was loaded, so the program is in the set.
  std::vector<std::pair<std::string, uint32_t>> dirs;
  for (const std::string &ns : entries(pin::Root))
    for (const std::string &iface :
         entries(std::string(pin::Root) + "/" + ns)) {
      std::string dir = std::string(pin::Root) + "/" + ns + "/" + iface;
      Fd fd(bpf_obj_get((dir + "/" + pin::Counters).c_str()));
      struct bpf_map_info info;
      std::memset(&info, 0, sizeof info);
      uint32_t length = sizeof info;
      uint32_t id =
          fd.valid() && bpf_obj_get_info_by_fd(fd.get(), &info, &length) == 0
              ? info.id
              : 0;
      dirs.emplace_back(dir, id);
    }
  if (dirs.empty())
    return;
  std::set<uint32_t> used = mapsOfLoadedPrograms();
  for (const auto &[dir, id] : dirs)
    if (!used.count(id))
      removeDir(dir);
}

} // namespace r2x::runtime::detail
