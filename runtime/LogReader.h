//===- runtime/LogReader.h - rule2xdp --log IFACE ---------------*- C++ -*-===//
//
/// \file
/// `rule2xdp --log IFACE [--log-to stdout|kmsg] [--log-count N]`: reads the
/// r2x_log ring buffer of rule2xdp's program on IFACE (found from the
/// interface, runtime/Discover.h) and writes each event's lines
/// (runtime/LogFormat.h): to stdout, one line each, or to /dev/kmsg with
/// the LOG rule's level as the priority (`<LEVEL>LINE`; the kernel files
/// lines written from user space under the user facility), so dmesg and
/// the journal show what the kernel's LOG would have written. Runs until
/// SIGINT or SIGTERM, or until N lines are written.
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

namespace r2x::runtime {

struct LogOptions {
  std::string iface;
  bool kmsg = false;  ///< --log-to kmsg
  uint64_t count = 0; ///< --log-count: stop after this many lines (0: never)
};

/// Follows the events; problems with single events go to `err`. Throws
/// LoadError when IFACE has no rule2xdp program with LOG rules.
void followLog(const LogOptions &o, std::ostream &err);

} // namespace r2x::runtime
