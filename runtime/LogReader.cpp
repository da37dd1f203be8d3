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

void followLog(const LogOptions &o, std::ostream &err) {
  InterfaceXdp x = inspect(o.iface);
  if (!x.own)
    throw LoadError("rule2xdp has no program on " + o.iface);
  if (!x.own->logId)
    throw LoadError("rule2xdp's program on " + o.iface +
                    " has no LOG rule carried out in XDP");
  Follower f{o, err, parseObjectMeta(x.own->metaText)};
  int fd = bpf_map_get_fd_by_id(x.own->logId);
  if (fd < 0)
    throw sysError("cannot open map r2x_log", fd);
  if (o.kmsg) {
    f.kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (f.kmsg < 0)
      throw sysError("cannot open /dev/kmsg", -errno);
  }
  ring_buffer *rb = ring_buffer__new(fd, &Follower::callback, &f, nullptr);
  if (!rb) {
    close(fd);
    throw sysError("cannot read map r2x_log", -errno);
  }
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  while (!gStop && (o.count == 0 || f.written < o.count)) {
    int rc = ring_buffer__poll(rb, 200);
    if (rc == -ECANCELED) // the count is reached
      break;
    if (rc < 0 && rc != -EINTR) {
      err << "rule2xdp: cannot read map r2x_log: " << std::strerror(-rc)
          << "\n";
      break;
    }
  }
  ring_buffer__free(rb);
  close(fd);
  if (f.kmsg >= 0)
    close(f.kmsg);
}

} // namespace r2x::runtime
