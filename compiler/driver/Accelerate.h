//===- compiler/driver/Accelerate.h - --accelerate and --follow -*- C++ -*-===//
//
/// \file
/// `rule2xdp --accelerate IFACE[,IFACE...] [--follow]`: makes the firewall
/// the host already runs fast without changing how it is managed. It reads
/// the ruleset the kernel runs now in this network namespace (the output of
/// iptables-save and ip6tables-save, from the nft or the legacy back end,
/// whichever holds rules), compiles it in hand-over mode (docs/handover.md:
/// the kernel keeps its rules; XDP drops only what it can prove the kernel
/// drops) exactly as `-f FILE --pass-unsupported` would, and loads it with
/// runtime::load() (an atomic replace that keeps the counters of unchanged
/// rules when rule2xdp's program is already there). It prints what XDP
/// decides and what it hands over, per rule, on stdout.
///
/// With --follow it stays in the foreground and reads the kernel's ruleset
/// again every kFollowPeriodMs, and at once when nftables announces a
/// change (a netlink socket in the NFNLGRP_NFTABLES group: every nftables
/// transaction, iptables-nft's included; the legacy back end has no such
/// events, so the periodic read is what sees its changes). The save
/// commands' output, without comments and chain counters, is compared with
/// the last one read; on a change it compiles and replaces the program.
/// A ruleset it cannot read or compile leaves the last good program
/// attached and says why on stderr. SIGTERM and SIGINT end it with status
/// 0 and leave the program attached (`--unload` removes it).
///
/// The save commands are run by readKernelRuleset() (KernelRuleset.h),
/// which `--stats` shares.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/classify/Classify.h"
#include "runtime/Loader.h"

#include <string>
#include <vector>

namespace r2x::driver {

/// How often --follow reads the kernel's ruleset.
constexpr int kFollowPeriodMs = 250;

struct AccelerateRequest {
  std::vector<std::string> ifaces; ///< --accelerate (compiler/driver/Ifaces.h)
  runtime::LoadOptions loadOptions;
  classify::Options classifier;
  bool follow = false;
};

/// Runs the request; prints its own output and errors. Returns the exit
/// status of --load: 0 success, 1 a ruleset rule2xdp cannot compile, 2 a
/// ruleset it cannot read (a save command failed, or both back ends hold
/// rules) or a kernel or load error, 3 internal error. With --follow, only
/// the first load's failure ends it (with that status); later failures keep
/// the last good program.
int runAccelerate(const AccelerateRequest &req);

} // namespace r2x::driver
