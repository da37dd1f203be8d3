//===- compiler/backend/Log.h - LOG rules' events in r2x_log ----*- C++ -*-===//
//
/// \file
/// `-j LOG` carried out in XDP (docs/handover.md, "LOG"): the program writes
/// a contract::LogEvent record into the r2x_log ring buffer, and
/// `rule2xdp --log` prints the kernel's line from it (runtime/LogFormat.h).
/// The record holds the frame's first bytes, copied with one
/// bpf_xdp_load_bytes() call (no per-byte loop for the verifier to walk),
/// the devices, and the LOG rules (counter slot, hook) that logged it.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/backend/Btf.h"
#include "compiler/backend/Codegen.h"
#include "runtime/contract/Object.h"

#include <functional>

namespace r2x::backend {

class LogLowering {
public:
  LogLowering(Codegen &cg, BtfBuilder &btf);

  /// Reserves a record; `full` when the ring buffer has no room (nothing
  /// was written). Otherwise `fill(record)` stores the entries (slots[],
  /// hooks[] and count), the frame and the devices are copied, the record
  /// is submitted, and the code goes on in `written`.
  void emit(llvm::Value *ctx, llvm::Value *ifindex, llvm::Value *oifindex,
            const std::function<void(llvm::Value *)> &fill,
            llvm::BasicBlock *written, llvm::BasicBlock *full);

  /// Stores entry `index` (an i32 below LogMaxRules) of a record.
  void storeEntry(llvm::Value *record, llvm::Value *index, unsigned slot,
                  contract::LogHook hook);

private:
  Codegen &cg_;
  llvm::GlobalVariable *map_;
};

} // namespace r2x::backend
