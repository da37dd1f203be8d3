//===- runtime/Support.h - shared by the loader and --stats ----*- C++ -*-===//
//
/// \file
/// Private to runtime/: a file-descriptor owner, error messages, libbpf
/// option structs, and the search for the metadata text inside a `.rodata`
/// image. The names the runtime writes and reads (maps, the metadata magic,
/// pins, locks) are the object contract's (runtime/contract/Object.h).
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Loader.h"
#include "runtime/Meta.h"
#include "runtime/contract/Object.h"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>
#include <unistd.h>

namespace r2x::runtime::detail {

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

/// libbpf option structs must be zeroed, padding included, and carry their
/// size (the LIBBPF_OPTS macro does this in C). In place: a struct returned
/// by value need not keep its padding bytes, which libbpf checks are zero.
template <class Opts> void zeroOpts(Opts &opts) {
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
}

/// The kernel copies each CPU's value of a per-CPU map into an 8-byte
/// aligned stride: the layout of a per-CPU r2x_counters slot as read or
/// written from user space.
inline constexpr std::size_t CounterStride =
    (sizeof(contract::CounterValue) + 7) / 8 * 8;

/// parseMeta() for metadata the runtime found in an object or a loaded
/// program: a malformed text is a LoadError.
inline Meta parseObjectMeta(const std::string &text) {
  try {
    return parseMeta(text);
  } catch (const std::runtime_error &e) {
    throw LoadError(std::string("object metadata is malformed: ") + e.what());
  }
}

/// True if `path` exists (a pin, a directory).
inline bool pathExists(const std::string &path) {
  return ::access(path.c_str(), F_OK) == 0;
}

} // namespace r2x::runtime::detail
