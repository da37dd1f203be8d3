//===- runtime/Lock.cpp - one rule2xdp at a time per interface ------------===//
//
/// \file
/// See Lock.h.
//===----------------------------------------------------------------------===//
#include "runtime/Lock.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>

namespace r2x::runtime::detail {

namespace {

/// Opens and locks `path`, waiting until `deadline`. The file may be
/// removed by the holder between our open and our lock (forget()): then
/// the lock we got is on a file nobody else will use, so start again.
Fd lockFile(const std::string &path,
            std::chrono::steady_clock::time_point deadline, bool &told) {
  using namespace std::chrono_literals;
  for (;;) {
    Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid())
      throw sysError("cannot open the lock file " + path, errno);
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR)
        throw sysError("cannot lock " + path, errno);
      if (std::chrono::steady_clock::now() > deadline)
        throw LoadError("another rule2xdp has held " + path + " for " +
                        std::to_string(InterfaceLock::TimeoutSeconds) +
                        " seconds; giving up");
      if (!told) {
        std::fprintf(stderr, "rule2xdp: waiting for another rule2xdp "
                             "working on the same interface\n");
        told = true;
      }
      std::this_thread::sleep_for(10ms);
    }
    struct stat held, named;
    if (::fstat(fd.get(), &held) == 0 && ::stat(path.c_str(), &named) == 0 &&
        held.st_ino == named.st_ino && held.st_dev == named.st_dev)
      return fd;
  }
}

} // namespace

unsigned long netnsInode() {
  struct stat st;
  if (::stat("/proc/self/ns/net", &st) != 0)
    throw sysError("cannot identify this network namespace", errno);
  return static_cast<unsigned long>(st.st_ino);
}

std::string InterfaceLock::path(unsigned ifindex) {
  return std::string(contract::lock::Dir) + "/net" +
         std::to_string(netnsInode()) + "-if" + std::to_string(ifindex) +
         ".lock";
}

InterfaceLock::InterfaceLock(std::vector<unsigned> ifindexes) {
  std::sort(ifindexes.begin(), ifindexes.end());
  ifindexes.erase(std::unique(ifindexes.begin(), ifindexes.end()),
                  ifindexes.end());
  if (::mkdir(contract::lock::Dir, 0700) != 0 && errno != EEXIST)
    throw sysError(std::string("cannot create ") + contract::lock::Dir, errno);
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(TimeoutSeconds);
  bool told = false;
  for (unsigned ifindex : ifindexes)
    held_.emplace(ifindex, lockFile(path(ifindex), deadline, told));
}

void InterfaceLock::forget(unsigned ifindex) {
  if (held_.count(ifindex))
    ::unlink(path(ifindex).c_str());
}

} // namespace r2x::runtime::detail
