//===- runtime/LogFormat.h - the kernel's LOG lines from r2x_log -*- C++
//-*-===//
//
/// \file
/// `rule2xdp --log IFACE`: the line the kernel's LOG target would have
/// written for each event a LOG rule XDP carries out records
/// (contract::LogEvent), in nf_log_syslog.c's format (nf_log_ip_packet(),
/// nf_log_ip6_packet(): the prefix, `IN= OUT=`, the MAC header, then the
/// IPv4 or IPv6 dump with TCP, UDP, ICMP and ICMPv6, quoted packets of ICMP
/// errors included). The text is the kernel's without the KERN_SOH level
/// marker, with its trailing space, so a line equals what dmesg shows.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"
#include "runtime/contract/Object.h"

#include <cstdint>
#include <stdexcept>
#include <string>

namespace r2x::runtime {

/// A record whose frame bytes end before a header the kernel's line needs
/// (the capture is bounded by contract::LogCapture).
struct LogCaptureShort : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The line of one LOG rule (`rule`, its hook) for a frame received on
/// device `in` (`out`: the egress device in FORWARD, else empty); `frame`
/// holds the first `caplen` bytes of the frame, Ethernet header first.
/// Throws LogCaptureShort.
std::string formatLogLine(const MetaLog &rule, contract::LogHook hook,
                          const std::string &in, const std::string &out,
                          const uint8_t *frame, uint32_t caplen);

} // namespace r2x::runtime
