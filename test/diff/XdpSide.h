//===- test/diff/XdpSide.h - the XDP side: compile, load, test-run -*- C++
//-*-===//
//
/// \file
/// Compiles a ruleset (`-f FILE`, `-6 -f FILE`) with the real `rule2xdp`
/// binary, opens and loads the object with libbpf in the current network
/// namespace (B), fills `r2x_ifmatch` with r2x::runtime::fillIfaceMap() from
/// the metadata text in the object's `.rodata` map, and runs frames through
/// BPF_PROG_TEST_RUN (repeat 1, ctx {data_end = length, ingress_ifindex})
/// reading which `r2x_counters` slots moved. Nothing is attached to any
/// interface.
//===----------------------------------------------------------------------===//
#pragma once

#include "runtime/Meta.h"
#include "test/diff/Netfilter.h" // Count

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

struct bpf_object;

namespace r2x::diff {

/// The compiler refused the rule (its message in what()).
struct CompileError : std::runtime_error {
  CompileError(const std::string &msg, int status)
      : std::runtime_error(msg), status(status) {}
  int status; // rule2xdp's exit status: 1 = refused the input
};

enum : uint32_t { XdpAborted = 0, XdpDrop = 1, XdpPass = 2, XdpTx = 3 };
const char *xdpActionName(uint32_t action);

struct XdpResult {
  uint32_t action = XdpAborted;
  std::map<unsigned, Count> counters; // slot -> increments, nonzero only
  bool modified = false;              // the output frame differs
};

class XdpProgram {
public:
  /// Runs `compiler words -o objectPath` and loads the object. Throws
  /// CompileError, or std::runtime_error for any load or contract failure.
  XdpProgram(const std::string &compiler, const std::vector<std::string> &words,
             const std::string &objectPath);
  ~XdpProgram();
  XdpProgram(const XdpProgram &) = delete;
  XdpProgram &operator=(const XdpProgram &) = delete;

  const r2x::runtime::Meta &meta() const { return meta_; }
  const std::string &metaText() const { return metaText_; }

  /// Fills every bucket of r2x_limit (rate-limited LOG rules) again, as a
  /// new load starts them: for a ruleset installed again in the kernel.
  void resetBuckets();

  /// Runs one frame as if received on `ifindex`. Throws on a failed run.
  XdpResult run(const std::vector<uint8_t> &frame, unsigned ifindex);

private:
  std::vector<Count> readCounters();

  bpf_object *obj_ = nullptr;
  int prog_ = -1, counters_ = -1;
  unsigned slots_ = 0;
  std::string metaText_;
  r2x::runtime::Meta meta_;
};

} // namespace r2x::diff
