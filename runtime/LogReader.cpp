//===- runtime/LogReader.cpp - rule2xdp --log IFACE -----------------------===//
//
/// \file
/// See LogReader.h.
//===----------------------------------------------------------------------===//
#include "runtime/LogReader.h"

#include "runtime/Discover.h"
#include "runtime/LogFormat.h"
#include "runtime/Support.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <unistd.h>

namespace r2x::runtime {

using detail::parseObjectMeta;
using detail::sysError;

namespace {

volatile std::sig_atomic_t gStop = 0;
void onSignal(int) { gStop = 1; }

struct Follower {
  const LogOptions &o;
  std::ostream &err;
  Meta meta;
  int kmsg = -1;
  uint64_t written = 0;

  static std::string devName(uint32_t ifindex) {
    char name[IF_NAMESIZE] = {};
    if (ifindex == 0)
      return {};
    if (!if_indextoname(ifindex, name))
      return "if" + std::to_string(ifindex);
    return name;
  }

  void emit(const MetaLog &rule, const std::string &line) {
    if (kmsg < 0) {
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    } else {
      // One record per write, ended as nf_log_buf_close() ends its printk
      // (without the newline the kernel holds it as a continuation).
      std::string rec = "<" + std::to_string(rule.level) + ">" + line + "\n";
      if (write(kmsg, rec.data(), rec.size()) < 0)
        err << "rule2xdp: cannot write to /dev/kmsg: " << std::strerror(errno)
            << "\n";
    }
    ++written;
  }

  void event(const contract::LogEvent &ev) {
    std::string in = devName(ev.ifindex), out = devName(ev.oifindex);
    uint32_t caplen = std::min(ev.caplen, contract::LogCapture);
    for (uint32_t i = 0; i < std::min(ev.count, contract::LogMaxRules); ++i) {
      auto it = meta.logs.find(ev.slots[i]);
      if (it == meta.logs.end()) {
        err << "rule2xdp: event for counter slot " << ev.slots[i]
            << ", which is no LOG rule of the program\n";
        continue;
      }
      auto hook = static_cast<contract::LogHook>(ev.hooks[i]);
      try {
        emit(it->second,
             formatLogLine(it->second, hook, in,
                           hook == contract::LogHook::Forward ? out : "",
                           ev.data, caplen));
      } catch (const LogCaptureShort &e) {
        err << "rule2xdp: event of LOG rule slot " << ev.slots[i]
            << " not printed: " << e.what() << "\n";
      }
    }
  }

  static int callback(void *self, void *data, size_t size) {
    auto *f = static_cast<Follower *>(self);
    if (size < sizeof(contract::LogEvent))
      return 0;
    contract::LogEvent ev;
    std::memcpy(&ev, data, sizeof ev);
    f->event(ev);
    // Enough lines: leave the records after this one in the ring buffer.
    return f->o.count && f->written >= f->o.count ? -ECANCELED : 0;
  }
};

} // namespace

namespace {

/// The r2x_log of the program on the interface now, with its metadata.
struct Source {
  uint32_t logId = 0;
  int fd = -1;
  ring_buffer *rb = nullptr;
  Source() = default;
  Source(const Source &) = delete;
  Source &operator=(const Source &) = delete;
  ~Source() {
    if (rb)
      ring_buffer__free(rb);
    if (fd >= 0)
      close(fd);
  }
};

/// The ring buffer of rule2xdp's program on `iface`, its metadata into
/// `f.meta`.
std::unique_ptr<Source> openSource(const std::string &iface, Follower &f) {
  InterfaceXdp x = inspect(iface);
  if (!x.own)
    throw LoadError("rule2xdp has no program on " + iface);
  if (!x.own->logId)
    throw LoadError("rule2xdp's program on " + iface +
                    " has no LOG rule carried out in XDP");
  auto src = std::make_unique<Source>();
  src->logId = x.own->logId;
  src->fd = bpf_map_get_fd_by_id(x.own->logId);
  if (src->fd < 0)
    throw sysError("cannot open map r2x_log", src->fd);
  src->rb = ring_buffer__new(src->fd, &Follower::callback, &f, nullptr);
  if (!src->rb)
    throw sysError("cannot read map r2x_log", -errno);
  f.meta = *x.own->meta;
  return src;
}

/// Whether the program on `iface` is still the one whose ring buffer is
/// `logId` (a --load or --accelerate --follow may replace it, with new
/// maps); a program gone or without LOG counts as replaced.
bool replaced(const std::string &iface, uint32_t logId) {
  try {
    InterfaceXdp x = inspect(iface);
    return !x.own || x.own->logId != logId;
  } catch (const LoadError &) {
    return true;
  }
}

} // namespace

void followLog(const LogOptions &o, std::ostream &err) {
  Follower f{o, err, {}};
  std::unique_ptr<Source> src = openSource(o.iface, f);
  if (o.kmsg) {
    f.kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (f.kmsg < 0)
      throw sysError("cannot open /dev/kmsg", -errno);
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  // Every kCheckEvery polls (about a second) the interface is looked at: a
  // replaced program's records are read to the end, then its successor's.
  constexpr unsigned kCheckEvery = 5;
  for (unsigned polls = 1; !gStop && (o.count == 0 || f.written < o.count);
       ++polls) {
    int rc = 0;
    if (src)
      rc = ring_buffer__poll(src->rb, 200);
    else
      usleep(200 * 1000); // no program to read: wait as a poll would
    if (rc == -ECANCELED) // the count is reached
      break;
    if (rc < 0 && rc != -EINTR) {
      err << "rule2xdp: cannot read map r2x_log: " << std::strerror(-rc)
          << "\n";
      break;
    }
    if (polls % kCheckEvery != 0 || (src && !replaced(o.iface, src->logId)))
      continue;
    if (src && ring_buffer__consume(src->rb) == -ECANCELED)
      break;
    try {
      src = openSource(o.iface, f);
      err << "rule2xdp: reading the LOG events of the new program on "
          << o.iface << "\n";
    } catch (const LoadError &e) {
      if (src)
        err << "rule2xdp: " << e.what() << "; waiting for one\n";
      src.reset();
    }
  }
  if (f.kmsg >= 0)
    close(f.kmsg);
}

} // namespace r2x::runtime
