//===- runtime/Support.h - shared by the loader and --stats ----*- C++ -*-===//
//
/// \file
/// Private to runtime/: the pin layout under bpffs, a file-descriptor owner,
/// and the search for the metadata text inside a `.rodata` image. Loader.cpp
/// writes what Stats.cpp reads, so both take the names from here.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Loader.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <unistd.h>

namespace r2x::runtime::detail {

/// bpffs is expected here; load() mounts it when it is missing.
inline constexpr const char *BpffsRoot = "/sys/fs/bpf";
/// Our subtree inside bpffs: one directory per interface.
inline constexpr const char *PinRoot = "/sys/fs/bpf/rule2xdp";

/// Pin names inside pinDir(iface). The link pin is written last by load()
/// and is the one whose presence means "rule2xdp owns this interface".
inline constexpr const char *LinkPin = "link";
inline constexpr const char *CountersPin = "counters";
inline constexpr const char *IfmatchPin = "ifmatch";
inline constexpr const char *MetaPin = "meta";
inline constexpr const char *NatPin = "nat";
inline constexpr const char *Nat6Pin = "nat6";

/// Names in the object (the compiler's side of the contract, Loader.h).
inline constexpr const char *ProgName = "rule2xdp";
inline constexpr const char *CountersMap = "r2x_counters";
inline constexpr const char *IfmatchMap = "r2x_ifmatch";
inline constexpr const char *NatMap = "r2x_nat";
inline constexpr const char *Nat6Map = "r2x_nat6";
inline constexpr const char *TxMap = "r2x_tx";
/// tc `mirred egress redirect` targets (DEVMAP slot -> ifindex), named by the
/// metadata's `redirect SLOT DEV` records (compiler/backend/TcBackend.h).
inline constexpr const char *RedirectMap = "r2x_redirect";
inline constexpr const char *IfmacMap = "r2x_ifmac";

/// The first line of every metadata text, without its version field; it is
/// how the text is found inside a `.rodata` image that may hold other data.
inline constexpr std::string_view MetaMagic = "rule2xdp-meta\t";

/// Value of one `r2x_counters` slot, as the program writes it.
struct CounterValue {
  uint64_t packets;
  uint64_t bytes;
};
static_assert(sizeof(CounterValue) == 16);

/// Owns a file descriptor; closing on every exit path matters here because an
/// unpinned BPF link detaches its program when the last descriptor closes.
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  Fd(Fd &&o) noexcept : fd_(o.release()) {}
  Fd &operator=(Fd &&o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_ = -1;
};

/// "WHAT: strerror(err)", the shape of every system error we report.
/// libbpf's own codes (4000 and up: "not an ELF", "bad relocation", ...)
/// are not errnos; libbpf_strerror knows them.
inline std::string sysMessage(const std::string &what, int err) {
  char buf[256];
  if (err >= 4000 && libbpf_strerror(err, buf, sizeof buf) == 0)
    return what + ": " + buf;
  return what + ": " + std::strerror(err);
}

/// libbpf returns -errno (and sets errno); accept either sign.
inline LoadError sysError(const std::string &what, int err) {
  return LoadError(sysMessage(what, err < 0 ? -err : err));
}

/// Interface names become path components under bpffs, so anything that is
/// not a possible interface name ('/', ".", "..", too long) is refused before
/// it reaches a path. Throws LoadError.
void checkIfaceName(const std::string &iface);

/// The metadata text inside a `.rodata` image: from the magic to the first NUL
/// (or the end of the image). Empty if the image holds no metadata.
std::string findMetaText(const void *image, std::size_t size);

/// True if `path` exists (a pin, a directory).
inline bool pathExists(const std::string &path) {
  return ::access(path.c_str(), F_OK) == 0;
}

} // namespace r2x::runtime::detail
