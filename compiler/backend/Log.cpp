//===- compiler/backend/Log.cpp - LOG rules' events in r2x_log ------------===//
//
/// \file
/// See Log.h.
//===----------------------------------------------------------------------===//
#include "compiler/backend/Log.h"

namespace r2x::backend {

using namespace llvm;
using contract::LogEvent;

LogLowering::LogLowering(Codegen &cg, BtfBuilder &btf)
    : cg_(cg), map_(btf.ringbuf(contract::LogMap)) {}

void LogLowering::storeEntry(Value *record, Value *index, unsigned slot,
                             contract::LogHook hook) {
  IRBuilder<> &b = cg_.b;
  // Masked so the verifier sees the store inside the record.
  Value *i = b.CreateZExt(
      b.CreateAnd(index, b.getInt32(contract::LogMaxRules - 1)), cg_.i64);
  b.CreateStore(
      b.getInt32(slot),
      cg_.at(record, b.CreateAdd(b.getInt64(offsetof(LogEvent, slots)),
                                 b.CreateShl(i, 2))));
  b.CreateStore(
      b.getInt8(static_cast<uint8_t>(hook)),
      cg_.at(record, b.CreateAdd(b.getInt64(offsetof(LogEvent, hooks)), i)));
}

void LogLowering::emit(Value *ctx, Value *ifindex, Value *oifindex,
                       const std::function<void(Value *)> &fill,
                       BasicBlock *written, BasicBlock *full) {
  IRBuilder<> &b = cg_.b;
  Value *rec =
      cg_.callHelper(RingbufReserve, cg_.ptr,
                     {map_, b.getInt64(sizeof(LogEvent)), b.getInt64(0)});
  cg_.require(b.CreateICmpNE(
                  rec, ConstantPointerNull::get(PointerType::get(cg_.ctx, 0))),
              full, "log.reserved");
  fill(rec);
  Value *len = b.CreateSub(b.CreatePtrToInt(cg_.dataEnd, cg_.i64),
                           b.CreatePtrToInt(cg_.data, cg_.i64));
  // min(len, LogCapture), as a size the verifier can bound: 1..LogCapture
  // (a frame the program reads has at least its Ethernet header).
  Value *cap =
      b.CreateSelect(b.CreateICmpULT(len, b.getInt64(contract::LogCapture)),
                     len, b.getInt64(contract::LogCapture));
  cap = b.CreateAdd(b.CreateAnd(b.CreateSub(cap, b.getInt64(1)),
                                b.getInt64(contract::LogCapture - 1)),
                    b.getInt64(1));
  Value *rc =
      cg_.callHelper(XdpLoadBytes, cg_.i64,
                     {ctx, b.getInt32(0), cg_.at(rec, offsetof(LogEvent, data)),
                      b.CreateTrunc(cap, cg_.i32)});
  Value *ok = b.CreateICmpEQ(rc, b.getInt64(0));
  b.CreateStore(b.CreateSelect(ok, b.CreateTrunc(cap, cg_.i32), b.getInt32(0)),
                cg_.at(rec, offsetof(LogEvent, caplen)));
  b.CreateStore(ifindex, cg_.at(rec, offsetof(LogEvent, ifindex)));
  b.CreateStore(oifindex, cg_.at(rec, offsetof(LogEvent, oifindex)));
  b.CreateStore(b.CreateTrunc(len, cg_.i32),
                cg_.at(rec, offsetof(LogEvent, len)));
  cg_.callHelper(RingbufSubmit, b.getVoidTy(), {rec, b.getInt64(0)});
  b.CreateBr(written);
}

} // namespace r2x::backend
