//===- test/diff/Process.h - run helper programs with a deadline -*- C++
//-*-===//
//
/// \file
/// The differential test drives `ip`, `iptables-*`, `nft` and `rule2xdp` as
/// child processes. Each runs without a shell, with a deadline (a hung child
/// is killed and reported, never waited for forever), optionally fed stdin,
/// and with the CPU affinity the test had before it pinned itself (see
/// Topology.h: only the sender needs to stay on one CPU).
//===----------------------------------------------------------------------===//
#pragma once

#include <string>
#include <vector>

namespace r2x::diff {

struct ProcessResult {
  int status = -1; // exit status; -1 if it could not run, timed out or died
  std::string out; // stdout
  std::string err; // stderr (and our own notes: timeout, signal)
  bool ok() const { return status == 0; }
};

/// Runs argv[0] (looked up in PATH) with `input` on its stdin.
ProcessResult run(const std::vector<std::string> &argv,
                  const std::string &input = {}, int timeoutMs = 30000);

/// "a b c" for reports.
std::string joinWords(const std::vector<std::string> &words);

/// The CPU mask children get (the mask before the test pinned itself).
void setChildAffinityAll();

} // namespace r2x::diff
