//===- compiler/backend/XdpCodegen.cpp - rules -> one XDP function
//----------===//
//
/// \file
/// See XdpCodegen.h. Meanings follow netfilter (docs/design.md):
///  - ip_packet_match(): addresses under mask, `-i` by name (resolved to
///    interface indexes by the loader through the r2x_ifmatch map),
///    protocol; `!` inverts each.
///  - xt_tcpudp: a non-first fragment never matches; a TCP fragment at
///    offset 1 and a header cut short are "hotdrop" (XDP_DROP, uncounted).
///  - INPUT runs after the kernel reassembled: non-first fragments go to the
///    kernel (which completes the datagram only if the first fragment was
///    let through), and the first fragment is judged as the datagram.
//===----------------------------------------------------------------------===//
#include "compiler/backend/XdpCodegen.h"

#include "compiler/backend/Backend.h"
#include "compiler/backend/Btf.h"
#include "compiler/backend/ClassifyCodegen.h"
#include "compiler/backend/Conntrack.h"
#include "compiler/backend/DeviceConf.h"
#include "compiler/backend/ExactCodegen.h"
#include "compiler/backend/Log.h"
#include "compiler/backend/Nat.h"
#include "compiler/backend/PacketParser.h"
#include "compiler/backend/Scaffold.h"
#include "compiler/backend/Sets.h"

#include <llvm/IR/Intrinsics.h>

#include <linux/rtnetlink.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <variant>

namespace r2x::backend {

using namespace llvm;

namespace {

/// Header lengths the matches read (struct ethhdr, tcphdr, udphdr,
/// icmphdr) and the two ports that lead every header multiport reads.
constexpr uint64_t kEthHeaderLen = 14, kTcpHeaderLen = 20, kUdpHeaderLen = 8,
                   kIcmpHeaderLen = 8, kPortsLen = 4, kSctpHeaderLen = 12;

/// bpf_fib_lookup()'s answers (BPF_FIB_LKUP_RET_*, linux/bpf.h).
enum FibResult : int64_t {
  FibSuccess = BPF_FIB_LKUP_RET_SUCCESS,
  FibNotForwarded = BPF_FIB_LKUP_RET_NOT_FWDED,
  FibForwardingDisabled = BPF_FIB_LKUP_RET_FWD_DISABLED,
  FibNoNeighbour = BPF_FIB_LKUP_RET_NO_NEIGH,
  FibFragNeeded = BPF_FIB_LKUP_RET_FRAG_NEEDED,
};

/// The fields of r2x_hdr (contract::Hdr) rules read back.
constexpr uint64_t HdrSaddr = offsetof(contract::Hdr, saddr);
constexpr uint64_t HdrDaddr = offsetof(contract::Hdr, daddr);
constexpr uint64_t HdrSport = offsetof(contract::Hdr, sport);
constexpr uint64_t HdrDport = offsetof(contract::Hdr, dport);
constexpr uint64_t HdrProto = offsetof(contract::Hdr, proto);
/// Up to this many IPv4 rules, the header fields stay in registers
/// (storeHeader()).
constexpr size_t kHdrRegsMaxRules = 8;
// Ports are read as HdrSport + their offset in the L4 header.
static_assert(HdrDport - HdrSport == kernel::L4Dport - kernel::L4Sport);

/// The bpf_loop callback of --tcp-option.
constexpr const char *TcpOptStep = "r2x_tcpopt_step";

/// Hand-over mode: the 64-bit words of the per-packet path record (one bit
/// per inlined jump, goto, return or count-only rule that matched). A rule
/// beyond them hands its packets over when it matches.
constexpr unsigned kPathWords = sizeof(contract::Path) / sizeof(uint64_t);

class XdpCodegen {
public:
  XdpCodegen(const ir::Program &p, Module &m, Function *fn, BtfBuilder &btf,
             const classify::Options &cls)
      : p_(p), cg_(m, fn), btf_(btf), cls_(cls) {
    cls_.handover = handover();
  }

  void emit(Value *ctxArg);

private:
  void declareMaps();
  void emitChain(const ir::Chain &c, BasicBlock *accept);
  void emitFamilyChains(ir::Family fam);
  // Hand-over mode (docs/handover.md).
  bool handover() const { return p_.mode == ir::Mode::Handover; }
  void recordOnPath(unsigned slot);
  void emitCommit(BasicBlock *commit, XdpAction action);
  void emitRules(const ir::Chain &c, BasicBlock *accept, BasicBlock *ret,
                 unsigned depth);
  // One function per kind of ir::Match; emitMatch dispatches.
  void emitMatch(const ir::Match &m, BasicBlock *noMatch);
  Value *addressTest(const ir::Match::Address &a);
  Value *protocolTest(const ir::Match::Protocol &p);
  Value *fieldTest(const ir::Match::FieldRange &f, BasicBlock *noMatch);
  void emitTcpUdp(const ir::Match::TcpUdp &t, BasicBlock *noMatch);
  void emitIcmp(const ir::Match::Icmp &i, bool negated, BasicBlock *noMatch);
  void emitMultiport(const ir::Match::Multiport &mp, bool negated,
                     BasicBlock *noMatch);
  void emitTransport(uint64_t need, bool tcp, BasicBlock *noMatch,
                     bool readsPacket = true);
  Value *transportPort(uint64_t off);
  void emitU32(const ir::Match::U32 &u, bool negated, BasicBlock *noMatch);
  // Connection state (docs/handover.md, "Connection state").
  void emitCtState(const ir::Match::CtState &c, bool negated,
                   BasicBlock *noMatch);
  std::unique_ptr<CtLowering> ct_;      ///< hand-over mode with state matches
  ir::Table table_ = ir::Table::Filter; ///< the table being emitted
  void emitTcpOption(const ir::Match::TcpUdp &t, BasicBlock *noMatch);
  Function *tcpOptionScanner();
  Function *tcpOptScan_ = nullptr;
  AllocaInst *tcpOptState_ = nullptr;
  // Fields.def's readers: fieldValue() has one case per row.
  Value *fieldValue(ir::Field f, BasicBlock *noMatch);
  Value *widen(Value *v);
  Value *bigEndian(Value *base, uint64_t off, unsigned bytes);
  template <uint64_t Off, unsigned Bits> Value *frameField();
  template <uint64_t Off, unsigned Bits>
  Value *tcpHeaderField(BasicBlock *noMatch);
  Value *ttlAtHook();
  Value *sourceAddress();
  Value *destinationAddress();
  Value *packetType();
  Value *inRange(Value *port, const ir::PortRange &r);
  void emitAddrType(const ir::Match::AddrType &a, BasicBlock *noMatch);
  Value *setTest(const ir::Match::Set &s);
  void setPort(bool src, bool tcpUdpOnly, BasicBlock *fail, Value *&port,
               Value *&proto);
  std::map<unsigned, GlobalVariable *> setMaps_; ///< by Program::sets index
  void emitAddrTypeSide(Value *addr, uint16_t mask, bool negated,
                        bool limitIface, BasicBlock *noMatch);
  std::pair<Value *, BasicBlock *> localRouteType(Value *addr,
                                                  BasicBlock *join);
  void bumpCounter(unsigned slot);
  // REJECT --reject-with tcp-reset (the section "REJECT" below).
  void emitReject(const ir::Rule &r);
  Value *replyRoute(Value *ports, bool input);
  void writeReset(Value *ports, Value *seq, Value *ack, Value *flags,
                  Value *payload, Value *hops, BasicBlock *sent);
  bool mayTrack() const;
  // LOG (the section "LOG" below).
  void emitLogNow(const ir::Rule &r, BasicBlock *next);
  void emitLogOnPath(const ir::Chain &c, const ir::Rule &r);
  void emitLogCommit();
  void requireLoggable(BasicBlock *otherwise);
  Value *pathBit(unsigned bit, bool reload = false);
  Value *anyLogged();
  contract::LogHook logHook() const;
  std::unique_ptr<LogLowering> log_; ///< with a Log verdict
  /// Hand-over mode: the LOG rules recorded on the path (their path bit,
  /// counter slot and hook), for the family being emitted, and the egress
  /// device a FORWARD LOG rule saw (0 if none).
  struct LogBit {
    unsigned bit, slot;
    contract::LogHook hook;
  };
  /// Hand-over mode: a rule on the path whose last match is a limit XDP
  /// carries out (ir::Program::sideLimit()), taken in path order when XDP
  /// drops the packet (emitLimitsOnPath()). The traversal went on as if
  /// the limit had matched for a LOG rule or a jump and as if it had not
  /// for a RETURN; path bits [bit + 1, end) are the rules that then ran
  /// (the callee of a jump, the rest of a RETURN's chain).
  struct LimitGate {
    unsigned bit, index;
    const ir::Match::Limit *limit;
    ir::Verdict verdict;
    unsigned end = 0;
  };
  std::vector<LimitGate> gates_;
  /// r2x_limit, and each such rule's bucket in it by counter slot.
  GlobalVariable *limit_ = nullptr;
  std::map<unsigned, unsigned> limitIndex_;
  /// Records rule `r`'s gate at path bit `bit` (if it has a side limit);
  /// returns its index in gates_, or -1.
  int addGate(const ir::Chain &c, const ir::Rule &r, unsigned bit);
  void emitLimitsOnPath();
  void clearPathBits(unsigned from, unsigned to);
  Value *takeToken(const ir::Match::Limit &l, unsigned index);
  std::vector<LogBit> logBits_;
  AllocaInst *logOif_ = nullptr;
  BasicBlock *sent_ = nullptr;    ///< XDP_TX after counting the path
  GlobalVariable *rst_ = nullptr; ///< r2x_rst, with a Reject verdict
  /// r2x_local and its lease r2x_local_ok, with an -m addrtype match.
  GlobalVariable *local_ = nullptr, *localOk_ = nullptr;
  AllocaInst *replyFib_ = nullptr;
  /// The routing decision's shortcut (DeviceConf.h): the ingress device
  /// forwards this family, read once at the family's start, where few
  /// values are live across the kfunc call; null if the family never
  /// routes.
  std::unique_ptr<DeviceConf> devConf_;
  Value *forwards_ = nullptr;
  bool routes(ir::Family fam);
  void readForwarding(ir::Family fam);
  Value *fibLookup(Value *totLen);
  void emitRouting(BasicBlock *input, BasicBlock *forward);
  void emitEgressOfFragmented(BasicBlock *forward);
  void emitFamily(ir::Family fam);
  void storeHeader();
  Value *ip6Word(bool src, unsigned w);
  Value *hdrField(uint64_t off, Type *ty);
  void emitOtherHost(const L2 &l2);
  Value *ifMaskOf(Value *ifindex, Value *vidOuter, Value *vidInner);
  void storeIfaceMasks();
  void lookupEgressMask();
  Value *ifaceTest(const ir::Match::Iface &i);

  const ir::Program &p_;
  Codegen cg_;
  BtfBuilder &btf_;
  classify::Options cls_;
  unsigned runs_ = 0;       ///< classified runs emitted
  unsigned exactRuns_ = 0;  ///< exact runs emitted (ExactCodegen.h)
  size_t exactEntries_ = 0; ///< their entries, all runs
  size_t exactBuckets_ = 0; ///< their bucket offsets, all runs
  BasicBlock *aborted_ = nullptr;
  Value *ctx_ = nullptr;
  Packet pk_;
  GlobalVariable *counters_ = nullptr, *ifmatch_ = nullptr, *ifmac_ = nullptr;
  /// IPv4: the header fields rules compare, kept in a per-CPU map value and
  /// read back with volatile loads at each use (see storeHeader()).
  GlobalVariable *hdrMap_ = nullptr;
  Value *hdr_ = nullptr;
  /// A program of few rules keeps those fields in registers instead
  /// (storeHeader()): saddr, daddr, proto, sport, dport by their r2x_hdr
  /// offset.
  bool hdrInRegs_ = false;
  /// The same choice for IPv6's addresses and ports, read from the packet
  /// (ip6Word(), transportPort()).
  bool hdrInRegs6_ = false;
  /// The transport header the current match reads, as emitTransport() left
  /// it checked: pk_.l4, or a pointer of the rule's own.
  Value *l4_ = nullptr;
  /// Whether some run will be classified: storeHeader() then stores the
  /// runs' port keys too (storeRunKey()).
  bool classifies_ = false;
  std::map<uint64_t, Value *> hdrRegs_;
  BasicBlock *pass_ = nullptr, *drop_ = nullptr;
  /// The -i and -o masks of the packet, in a per-CPU map value read back
  /// at each use (storeIfaceMasks()); egressKnown_ once FORWARD's is there.
  GlobalVariable *ifMasksMap_ = nullptr;
  Value *ifMasks_ = nullptr;
  bool egressKnown_ = false;
  /// A program of few rules keeps the masks in registers instead, as it
  /// keeps the header fields (ifMasksInRegs_): ifMaskIn_ and ifMaskOut_.
  bool ifMasksInRegs_ = false;
  Value *ifMaskIn_ = nullptr, *ifMaskOut_ = nullptr;
  ir::Family family_ = ir::Family::V4;
  ir::Hook hook_ = ir::Hook::Prerouting; ///< the hook being emitted
  AllocaInst *key_ = nullptr;
  std::unique_ptr<NatLowering> nat_;  ///< IPv4 DNAT, if any nat rule exists
  std::unique_ptr<NatLowering> nat6_; ///< IPv6 DNAT
  NatLowering *natOf(ir::Family f) const {
    return f == ir::Family::V6 ? nat6_.get() : nat_.get();
  }
  /// Hand-over mode with NAT in the kernel for this family (a nat
  /// PREROUTING rule, or a source translation, whose replies conntrack
  /// rewrites): the path goes through CtLowering::emitNatGate() at nat
  /// PREROUTING.
  bool natGate(ir::Family f) const {
    if (!handover())
      return false;
    if (!p_.kernelSourceNat[static_cast<size_t>(f)].empty())
      return true;
    return std::any_of(
        p_.chains.begin(), p_.chains.end(), [f](const ir::Chain &c) {
          return c.family == f && c.table == ir::Table::Nat && !c.user &&
                 c.hook == ir::Hook::Prerouting && !c.rules.empty();
        });
  }
  Value *fibRc_ = nullptr; ///< the routing decision's lookup
  AllocaInst *fib_ = nullptr;
  AllocaInst *fibBuf_ = nullptr; ///< fibSlot()
  AllocaInst *ifKey_ = nullptr;  ///< ifMaskOf()'s key
  AllocaInst *fibSlot();
  /// Hand-over mode: the path record and the counter slot of each of its
  /// bits, for the family being emitted.
  /// Hand-over: this family's r2x_path value (emitFamily()).
  Value *path_ = nullptr;
  GlobalVariable *pathMap_ = nullptr;
  std::vector<unsigned> pathSlots_;
};

void XdpCodegen::declareMaps() {
  counters_ = declareCounters(btf_, p_.numCounters);
  ifmatch_ = declareIfmatch(btf_, contract::IfmatchMap.maxEntries);
  // ifindex -> the device's MAC (6 bytes, as in a frame, then 2 zero bytes).
  ifmac_ = btf_.map(contract::IfmacMap, btf_.u32(), btf_.u64());
  for (const ir::Chain &c : p_.chains)
    for (const ir::Rule &r : c.rules)
      if (r.verdict == ir::Verdict::Reject && !rst_)
        rst_ = btf_.map(contract::RstMap, btf_.u32(), btf_.u32());
  if (handover()) {
    for (const ir::Chain &c : p_.chains)
      for (const ir::Rule &r : c.rules)
        if (p_.sideLimit(c, r))
          limitIndex_.emplace(r.counter, unsigned(limitIndex_.size()));
    if (!limitIndex_.empty())
      limit_ = btf_.map(contract::LimitMap, btf_.u32(), btf_.u64(),
                        unsigned(limitIndex_.size()));
  }
  if (handover() && p_.usesLocalTable()) {
    local_ = btf_.map(contract::LocalMap,
                      btf_.structType(contract::SetKey4Layout), btf_.u32());
    localOk_ = btf_.map(contract::LocalOkMap, btf_.u32(), btf_.u64());
  }
  // The verifier's work grows with the square of the rules that compare
  // header fields kept in registers (storeHeader()); a few rules cost less
  // that way than a map value read at every use.
  size_t rules = 0;
  for (const ir::Chain &c : p_.chains)
    rules += c.family == ir::Family::V4 ? c.rules.size() : 0;
  // The classifier reads the header from r2x_hdr: registers only where it
  // cannot classify a run (auto: no chain holds minRun rules).
  bool mayClassify =
      cls_.mode == classify::Mode::Always ||
      (cls_.mode == classify::Mode::Auto && rules >= cls_.minRun);
  hdrInRegs_ = rules <= kHdrRegsMaxRules && !mayClassify;
  size_t rules6 = 0;
  for (const ir::Chain &c : p_.chains)
    rules6 += c.family == ir::Family::V6 ? c.rules.size() : 0;
  hdrInRegs6_ = rules6 <= kHdrRegsMaxRules;
  classifies_ =
      mayClassify &&
      std::any_of(p_.chains.begin(), p_.chains.end(), [&](const ir::Chain &c) {
        for (size_t at = 0; at < c.rules.size(); ++at)
          if (classify::runAt(c, at, cls_))
            return true;
        return false;
      });
  if (p_.hasFamily(ir::Family::V4) && !hdrInRegs_)
    hdrMap_ = btf_.map(contract::HdrMap, btf_.u32(),
                       btf_.structType(contract::HdrLayout));
  bool v4nat = p_.hasNat(ir::Family::V4), v6nat = p_.hasNat(ir::Family::V6);
  if (v4nat || v6nat) {
    GlobalVariable *tx = NatLowering::declareTx(btf_);
    if (v4nat)
      nat_ = std::make_unique<NatLowering>(cg_, btf_, false, tx);
    if (v6nat)
      nat6_ = std::make_unique<NatLowering>(cg_, btf_, true, tx);
  }
  if (p_.hasLog())
    log_ = std::make_unique<LogLowering>(cg_, btf_);
  if (handover())
    pathMap_ = btf_.map(contract::PathMap, btf_.u32(),
                        btf_.structType(contract::PathLayout));
  // The masks stay in registers where the 2^n states of n -i rules
  // (contract::IfMasks) are few: up to kHdrRegsMaxRules rules in all, none
  // classified. That saves a map lookup per packet and a load per test.
  size_t allRules = 0;
  for (const ir::Chain &c : p_.chains)
    allRules += c.rules.size();
  ifMasksInRegs_ = allRules <= kHdrRegsMaxRules && !mayClassify;
  if ((p_.usesIface(false) || p_.usesIface(true)) && !ifMasksInRegs_)
    ifMasksMap_ = btf_.map(contract::IfMasksMap, btf_.u32(),
                           btf_.structType(contract::IfMasksLayout));
  if (p_.hasFamily(ir::Family::V6))
    cg_.scratch = btf_.map(contract::ScratchMap, btf_.u32(),
                           btf_.structType(contract::ScratchLayout));
  if (handover() && (p_.usesCtState() || mayTrack() ||
                     natGate(ir::Family::V4) || natGate(ir::Family::V6)))
    ct_ = std::make_unique<CtLowering>(cg_, btf_, !p_.ctHelper.empty());
  std::vector<SetLayout> sets = setLayouts(p_);
  for (const SetLayout &l : sets) {
    contract::MapSpec spec = *l.spec;
    spec.name = l.map.c_str(); // map() copies it
    setMaps_[l.set] =
        btf_.map(spec, l.key ? btf_.structType(*l.key) : btf_.u32(), btf_.u32(),
                 l.maxEntries);
  }
  if (!sets.empty())
    btf_.section(contract::SetsSymbol, contract::SetsSection,
                 setsSection(p_, sets));
}

/// iptables counts the IP total length (IPv6: 40 + payload length).
void XdpCodegen::bumpCounter(unsigned slot) {
  backend::bumpCounter(cg_, counters_, key_, slot, pk_.totLen);
}

/// The bitmask of -i/-o patterns naming a device: r2x_ifmatch's value for
/// {ifindex, tags} (contract::IfKey), 0 when the loader put none there.
Value *XdpCodegen::ifMaskOf(Value *ifindex, Value *vidOuter, Value *vidInner) {
  IRBuilder<> &b = cg_.b;
  using contract::IfKey;
  if (!ifKey_)
    ifKey_ = cg_.stackSlot(ArrayType::get(cg_.i8, sizeof(IfKey)), 8, "ifkey");
  AllocaInst *key = ifKey_;
  b.CreateStore(ifindex, cg_.at(key, offsetof(IfKey, ifindex)));
  b.CreateStore(vidOuter, cg_.at(key, offsetof(IfKey, vid_outer)));
  b.CreateStore(vidInner, cg_.at(key, offsetof(IfKey, vid_inner)));
  Value *v = cg_.callHelper(MapLookupElem, cg_.ptr, {ifmatch_, key});
  BasicBlock *from = b.GetInsertBlock();
  BasicBlock *hit = cg_.block("ifmatch.hit");
  BasicBlock *done = cg_.block("ifmatch.done");
  b.CreateCondBr(b.CreateIsNull(v), done, hit);
  b.SetInsertPoint(hit);
  Value *mask = b.CreateLoad(cg_.i64, v);
  b.CreateBr(done);
  b.SetInsertPoint(done);
  PHINode *phi = b.CreatePHI(cg_.i64, 2, "ifmask");
  phi->addIncoming(b.getInt64(0), from);
  phi->addIncoming(mask, hit);
  return phi;
}

/// Once per packet, before the first rule: the slot of r2x_ifmasks, and
/// in it the bitmask of patterns naming the ingress device (and the VLAN
/// devices of the frame's tags). Rules read the masks back from the slot at
/// each test (contract::IfMasks says why not from a register).
void XdpCodegen::storeIfaceMasks() {
  IRBuilder<> &b = cg_.b;
  egressKnown_ = false;
  if (ifMasksInRegs_) {
    ifMaskIn_ = p_.usesIface(false)
                    ? ifMaskOf(pk_.ifindex, pk_.vidOuter, pk_.vidInner)
                    : nullptr;
    return;
  }
  b.CreateStore(b.getInt32(0), key_);
  ifMasks_ = cg_.callHelper(MapLookupElem, cg_.ptr, {ifMasksMap_, key_});
  cg_.require(b.CreateIsNotNull(ifMasks_), pass_, "ifmasks.slot");
  if (p_.usesIface(false))
    b.CreateStore(ifMaskOf(pk_.ifindex, pk_.vidOuter, pk_.vidInner),
                  cg_.at(ifMasks_, offsetof(contract::IfMasks, in)),
                  /*isVolatile=*/true);
}

/// The bitmask of patterns naming the routing decision's egress device
/// (fib_ after emitRouting()), once per forwarded packet. The loader keys
/// every device's mask by its own ifindex and no tags, the key of an
/// untagged frame received on it: the egress device's name, VLAN devices
/// included, is what the patterns are matched against.
void XdpCodegen::lookupEgressMask() {
  IRBuilder<> &b = cg_.b;
  Value *oif = b.CreateLoad(cg_.i32, cg_.at(fib_, kernel::FibIfindex));
  Value *mask = ifMaskOf(oif, b.getInt16(0), b.getInt16(0));
  if (ifMasksInRegs_)
    ifMaskOut_ = mask;
  else
    b.CreateStore(mask, cg_.at(ifMasks_, offsetof(contract::IfMasks, out)),
                  /*isVolatile=*/true);
  egressKnown_ = true;
}

/// -i, or -o: in FORWARD the egress device's bit; in PREROUTING and INPUT
/// netfilter has no output device and compares the pattern with an empty
/// name (ip_packet_match(), nulldevname), which only `+` matches.
Value *XdpCodegen::ifaceTest(const ir::Match::Iface &i) {
  IRBuilder<> &b = cg_.b;
  if (i.out && hook_ != ir::Hook::Forward)
    return b.getInt1(i.pattern == "+");
  if (i.out && !egressKnown_)
    throw BackendError("a -o match without the egress device's mask");
  Value *mask;
  if (ifMasksInRegs_)
    mask = i.out ? ifMaskOut_ : ifMaskIn_;
  else
    mask =
        b.CreateLoad(cg_.i64,
                     cg_.at(ifMasks_, i.out ? offsetof(contract::IfMasks, out)
                                            : offsetof(contract::IfMasks, in)),
                     /*isVolatile=*/true);
  if (!mask)
    throw BackendError("an interface match without the device's mask");
  Value *bit = b.CreateAnd(mask, b.getInt64(uint64_t(1) << i.bit));
  return b.CreateICmpNE(bit, b.getInt64(0));
}

Value *XdpCodegen::inRange(Value *port, const ir::PortRange &r) {
  IRBuilder<> &b = cg_.b;
  Value *in;
  if (r.lo == r.hi)
    in = b.CreateICmpEQ(port, b.getInt16(r.lo));
  else if (r.lo > r.hi)
    in = b.getFalse(); // iptables accepts 5:3; it matches no port
  else if (r.lo == 0)
    in = b.CreateICmpULE(port, b.getInt16(r.hi));
  else if (r.hi == 0xffff)
    in = b.CreateICmpUGE(port, b.getInt16(r.lo));
  else
    in = b.CreateAnd(b.CreateICmpUGE(port, b.getInt16(r.lo)),
                     b.CreateICmpULE(port, b.getInt16(r.hi)));
  return r.negated ? b.CreateNot(in) : in;
}

/// The x_tables matches that read the transport header (tcp, udp, icmp,
/// multiport) share their preamble: a non-first fragment never matches;
/// tcp hotdrops a fragment at offset 1 (it could overwrite the flags of the
/// first); a header cut short by tot_len (shorter than `need`) is a
/// hotdrop. The pointer check repeats the length check for the verifier,
/// where the match reads the header from the packet (`readsPacket`, and
/// IPv6's ports); IPv4's ports come from r2x_hdr.
///
/// The length check compares copies of the header length and tot_len that
/// share no register identity with them: otherwise the verifier keeps what
/// each rule proved (tot_len >= 28, >= 40, the L4 pointer's range) on every
/// later path, and a run of rules carried several such states apart
/// through all the rules after it.
void XdpCodegen::emitTransport(uint64_t need, bool tcp, BasicBlock *noMatch,
                               bool readsPacket) {
  IRBuilder<> &b = cg_.b;
  Value *isFrag = b.CreateICmpNE(pk_.fragOff, b.getInt16(0));
  BasicBlock *frag = cg_.block("l4.fragment");
  BasicBlock *whole = cg_.block("l4.first");
  b.CreateCondBr(isFrag, frag, whole);
  b.SetInsertPoint(frag);
  if (tcp)
    b.CreateCondBr(b.CreateICmpEQ(pk_.fragOff, b.getInt16(1)), drop_, noMatch);
  else
    b.CreateBr(noMatch);

  b.SetInsertPoint(whole);
  bool inRegs = pk_.v6 ? hdrInRegs6_ : hdrInRegs_; // few rules: no need
  auto unlinked = [&](Value *v) {
    return inRegs
               ? v
               : b.CreateOr(v, cg_.opaque(ConstantInt::get(v->getType(), 0)));
  };
  Value *fits = b.CreateICmpULE(
      b.CreateAdd(unlinked(pk_.ihl), b.getInt32(need)), unlinked(pk_.totLen));
  cg_.require(fits, drop_, "l4.fits");
  // The header this match reads, through a pointer of its own for the same
  // reason: checked against data_end, it proves a range for this rule only.
  l4_ = inRegs ? pk_.l4
               : cg_.at(pk_.l3, b.CreateZExt(unlinked(pk_.ihl), cg_.i64));
  if (readsPacket || pk_.v6)
    cg_.needBytes(l4_, need, drop_, "l4.hdr");
}

/// The source (0) or destination (2) port, after emitTransport(): IPv4 from
/// r2x_hdr (see storeHeader()), IPv6 from the header the walk found.
Value *XdpCodegen::transportPort(uint64_t off) {
  if (!pk_.v6)
    return hdrField(HdrSport + off, cg_.i16);
  if (hdrInRegs6_)
    return cg_.loadBE(l4_, off, cg_.i16);
  // Read afresh at each use, for the reason ip6Word() gives.
  LoadInst *l = cg_.b.CreateLoad(cg_.i16, cg_.at(l4_, off));
  l->setVolatile(true);
  return cg_.b.CreateUnaryIntrinsic(Intrinsic::bswap, l);
}

/// Word `w` of the IPv6 source (`src`) or destination address, as on the
/// wire. The packet holds the current addresses (a DNAT rewrites them there,
/// and pk_ reloads them after). Beyond kHdrRegsMaxRules IPv6 rules each use
/// reads the packet again, as IPv4 rules read r2x_hdr (storeHeader()): a
/// word kept in a register stays exact on the paths of the rule that
/// compared it, and the verifier carries those paths apart through every
/// later rule (about 3x its work a rule). It does not track packet contents,
/// so a word read again is unknown again.
Value *XdpCodegen::ip6Word(bool src, unsigned w) {
  if (hdrInRegs6_)
    return (src ? pk_.saddr6 : pk_.daddr6)[w];
  LoadInst *l = cg_.b.CreateLoad(
      cg_.i32, cg_.at(pk_.l3, (src ? kernel::Ip6Saddr : kernel::Ip6Daddr) +
                                  4 * uint64_t(w)));
  l->setVolatile(true);
  return l;
}

/// xt_tcpudp: every part given must hold, each with its own `!`.
void XdpCodegen::emitTcpUdp(const ir::Match::TcpUdp &t, BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  bool tcp = t.proto == IPPROTO_TCP;
  emitTransport(tcp ? kTcpHeaderLen : kUdpHeaderLen, tcp, noMatch,
                t.flags || t.option);
  if (t.sport)
    cg_.require(inRange(transportPort(0), *t.sport), noMatch, "sport.ok");
  if (t.dport)
    cg_.require(inRange(transportPort(2), *t.dport), noMatch, "dport.ok");
  if (t.flags) {
    Value *flags = cg_.loadBE(l4_, 13, cg_.i8);
    Value *eq = b.CreateICmpEQ(b.CreateAnd(flags, t.flags->mask),
                               b.getInt8(t.flags->comp));
    cg_.require(t.flags->negated ? b.CreateNot(eq) : eq, noMatch, "flags.ok");
  }
  if (t.option)
    emitTcpOption(t, noMatch);
}

/// xt_icmp (and icmp6): type 0xff is "any"; otherwise type and a code
/// range. The header read is struct icmphdr's 8 bytes.
void XdpCodegen::emitIcmp(const ir::Match::Icmp &i, bool negated,
                          BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  emitTransport(kIcmpHeaderLen, false, noMatch);
  Value *ok = b.getTrue();
  if (i.type != 0xff) {
    Value *type = cg_.loadBE(l4_, 0, cg_.i8);
    Value *code = cg_.loadBE(l4_, 1, cg_.i8);
    ok = b.CreateAnd(b.CreateICmpEQ(type, b.getInt8(i.type)),
                     b.CreateAnd(b.CreateICmpUGE(code, b.getInt8(i.codeLo)),
                                 b.CreateICmpULE(code, b.getInt8(i.codeHi))));
  }
  cg_.require(negated ? b.CreateNot(ok) : ok, noMatch, "icmp.ok");
}

/// xt_multiport: any range holds for the side(s) it names; only the two
/// ports are read.
void XdpCodegen::emitMultiport(const ir::Match::Multiport &mp, bool negated,
                               BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  using Side = ir::Match::Multiport::Side;
  emitTransport(kPortsLen, false, noMatch, false);
  Value *sport = transportPort(0);
  Value *dport = transportPort(2);
  Value *any = b.getFalse();
  for (ir::PortRange r : mp.ports) {
    r.negated = false;
    if (mp.side != Side::Destination)
      any = b.CreateOr(any, inRange(sport, r));
    if (mp.side != Side::Source)
      any = b.CreateOr(any, inRange(dport, r));
  }
  cg_.require(negated ? b.CreateNot(any) : any, noMatch, "multiport.ok");
}

/// xt_u32's u32_match_it(). Offsets are from the network header and
/// bounded by skb->len, which netfilter's IPv4 and IPv6 hooks see as the
/// packet's total length (IPv4 tot_len, IPv6 40 + payload length): the
/// same totLen the parser validated against the frame. A read that does not
/// fit makes the whole match false (not a hotdrop). Shift counts are taken
/// modulo 32, as the kernel's `val <<= number` executes on x86 and arm64.
void XdpCodegen::emitU32(const ir::Match::U32 &u, bool negated,
                         BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *fail = cg_.block("u32.false");
  BasicBlock *pass = cg_.block("u32.true");
  Value *len = b.CreateZExt(pk_.totLen, cg_.i64);
  // In FORWARD the kernel has already decremented the TTL (and fixed the
  // IPv4 checksum, ip_decrease_ttl()) or the hop limit: a word covering
  // those bytes reads them as they are then.
  Value *fwdCsum = nullptr;
  if (hook_ == ir::Hook::Forward && !pk_.v6) {
    Value *c = cg_.ttlDecrementCsum(
        b.CreateLoad(cg_.i16, cg_.at(pk_.l3, kernel::Ip4Check)));
    fwdCsum = b.CreateUnaryIntrinsic(Intrinsic::bswap, c); // host order
  }
  // The 32-bit word at l3 + off (an i64 already checked to be <= len - 4).
  auto word = [&](Value *off) {
    // Masked so the verifier knows the pointer's range; off < 65536 holds.
    Value *p = cg_.at(pk_.l3, b.CreateAnd(off, b.getInt64(0xffff)));
    cg_.needBytes(p, 4, fail, "u32.read");
    Value *w =
        b.CreateUnaryIntrinsic(Intrinsic::bswap, b.CreateLoad(cg_.i32, p));
    if (hook_ != ir::Hook::Forward)
      return w;
    Value *out = b.getInt32(0);
    for (unsigned k = 0; k < 4; ++k) {
      unsigned shift = 24 - 8 * k;
      Value *pos = b.CreateAdd(off, b.getInt64(k));
      Value *byte = b.CreateAnd(b.CreateLShr(w, shift), b.getInt32(0xff));
      Value *ttlAt = b.getInt64(pk_.v6 ? kernel::Ip6HopLimit : kernel::Ip4Ttl);
      byte = b.CreateSelect(
          b.CreateICmpEQ(pos, ttlAt),
          b.CreateAnd(b.CreateSub(byte, b.getInt32(1)), b.getInt32(0xff)),
          byte);
      if (fwdCsum) {
        Value *c32 = b.CreateZExt(fwdCsum, cg_.i32);
        byte = b.CreateSelect(b.CreateICmpEQ(pos, b.getInt64(kernel::Ip4Check)),
                              b.CreateLShr(c32, 8), byte);
        byte = b.CreateSelect(
            b.CreateICmpEQ(pos, b.getInt64(kernel::Ip4Check + 1)),
            b.CreateAnd(c32, b.getInt32(0xff)), byte);
      }
      out = b.CreateOr(out, b.CreateShl(byte, shift));
    }
    return out;
  };
  for (const ir::U32Test &t : u.tests) {
    // if (skb->len < 4 || pos > skb->len - 4) return false;
    cg_.require(b.CreateICmpUGE(len, b.getInt64(4)), fail, "u32.len");
    cg_.require(
        b.CreateICmpULE(b.getInt64(t.start), b.CreateSub(len, b.getInt64(4))),
        fail, "u32.start");
    Value *val = word(b.getInt64(t.start));
    Value *at = b.getInt64(0);
    for (const auto &[op, n] : t.ops) {
      switch (op) {
      case ir::U32Test::Op::And:
        val = b.CreateAnd(val, b.getInt32(n));
        break;
      case ir::U32Test::Op::Shl:
        val = b.CreateShl(val, b.getInt32(n & 31));
        break;
      case ir::U32Test::Op::Shr:
        val = b.CreateLShr(val, b.getInt32(n & 31));
        break;
      case ir::U32Test::Op::At: {
        // at += val (a u32 that must not wrap), then at + 4 <= skb->len and
        // pos <= skb->len - at - 4.
        at = b.CreateAdd(at, b.CreateZExt(val, cg_.i64));
        cg_.require(b.CreateICmpULE(at, b.getInt64(0xffffffffu)), fail,
                    "u32.at.wrap");
        cg_.require(b.CreateICmpULE(b.CreateAdd(at, b.getInt64(4)), len), fail,
                    "u32.at.fits");
        cg_.require(
            b.CreateICmpULE(b.getInt64(n),
                            b.CreateSub(b.CreateSub(len, at), b.getInt64(4))),
            fail, "u32.at.pos");
        val = word(b.CreateAdd(at, b.getInt64(n)));
        break;
      }
      }
    }
    Value *in = b.getFalse();
    for (const auto &[lo, hi] : t.ranges)
      in = b.CreateOr(in, b.CreateAnd(b.CreateICmpUGE(val, b.getInt32(lo)),
                                      b.CreateICmpULE(val, b.getInt32(hi))));
    cg_.require(in, fail, "u32.test");
  }
  b.CreateBr(pass);
  // ret ^ data->invert
  BasicBlock *cont = cg_.block("u32.done");
  b.SetInsertPoint(pass);
  b.CreateBr(negated ? noMatch : cont);
  b.SetInsertPoint(fail);
  b.CreateBr(negated ? cont : noMatch);
  b.SetInsertPoint(cont);
}

/// The scan state bpf_loop's callback works on, on the caller's stack:
/// the options (64 bytes, zero-filled), then u32 i, optlen, found, and the
/// option kind sought.
namespace tcpopt {
constexpr uint64_t kBuf = 0, kI = 64, kLen = 68, kFound = 72, kKind = 76,
                   kSize = 80;
}

/// One step of xt_tcpudp's tcp_find_option() loop, as a bpf_loop callback
/// (verified once, not once per unrolled step, which blew the verifier's
/// budget): returns 1 to stop (found, or past the options), 0 to go on.
/// Kinds 0 and 1 are one byte; others skip their length byte, a zero
/// length counting as 1. When a kind >= 2 is the last byte, the kernel reads
/// the byte after the options, and whatever it holds the scan ends: stop.
Function *XdpCodegen::tcpOptionScanner() {
  if (tcpOptScan_)
    return tcpOptScan_;
  LLVMContext &ctx = cg_.ctx;
  FunctionType *ft = FunctionType::get(cg_.i64, {cg_.i64, cg_.ptr}, false);
  Function *f =
      Function::Create(ft, GlobalValue::InternalLinkage, TcpOptStep, cg_.m);
  f->addFnAttr(Attribute::NoUnwind);
  f->addFnAttr(Attribute::NoInline);
  IRBuilder<> b(ctx);
  auto block = [&](const char *n) { return BasicBlock::Create(ctx, n, f); };
  BasicBlock *entry = block("entry"), *stop = block("stop"),
             *more = block("more");
  BasicBlock *found = block("found"), *one = block("onebyte"),
             *withLen = block("withlen");
  BasicBlock *lenRead = block("lenread");
  Value *st = f->getArg(1);
  auto field = [&](uint64_t off) {
    return b.CreateGEP(cg_.i8, st, b.getInt64(off));
  };
  b.SetInsertPoint(entry);
  Value *i = b.CreateLoad(cg_.i32, field(tcpopt::kI));
  Value *len = b.CreateLoad(cg_.i32, field(tcpopt::kLen));
  b.CreateCondBr(b.CreateICmpULT(i, len), more, stop);
  b.SetInsertPoint(more);
  auto byteAt = [&](Value *idx) {
    Value *off = b.CreateZExt(b.CreateAnd(idx, b.getInt32(63)), cg_.i64);
    return b.CreateLoad(cg_.i8, b.CreateGEP(cg_.i8, st, off));
  };
  Value *kind = byteAt(i);
  Value *want = b.CreateLoad(cg_.i8, field(tcpopt::kKind));
  BasicBlock *other = block("other");
  b.CreateCondBr(b.CreateICmpEQ(kind, want), found, other);
  b.SetInsertPoint(other);
  b.CreateCondBr(b.CreateICmpULT(kind, b.getInt8(2)), one, withLen);
  b.SetInsertPoint(one);
  b.CreateStore(b.CreateAdd(i, b.getInt32(1)), field(tcpopt::kI));
  b.CreateRet(b.getInt64(0));
  b.SetInsertPoint(withLen);
  Value *i1 = b.CreateAdd(i, b.getInt32(1));
  b.CreateCondBr(b.CreateICmpULT(i1, len), lenRead, stop);
  b.SetInsertPoint(lenRead);
  Value *l = b.CreateZExt(byteAt(i1), cg_.i32);
  l = b.CreateSelect(b.CreateICmpEQ(l, b.getInt32(0)), b.getInt32(1), l);
  b.CreateStore(b.CreateAdd(i, l), field(tcpopt::kI));
  b.CreateRet(b.getInt64(0));
  b.SetInsertPoint(found);
  b.CreateStore(b.getInt32(1), field(tcpopt::kFound));
  b.CreateBr(stop);
  b.SetInsertPoint(stop);
  b.CreateRet(b.getInt64(1));
  return tcpOptScan_ = f;
}

/// xt_tcpudp's --tcp-option, after the TCP header (checked by the caller):
/// a data offset below 5 words is a hotdrop, and so are options cut short
/// by the packet's end. No options: the match is `!`'s answer. Otherwise
/// the options are copied to the stack (bpf_xdp_load_bytes) and scanned
/// with bpf_loop, at most 40 steps (each moves on at least one byte).
void XdpCodegen::emitTcpOption(const ir::Match::TcpUdp &t,
                               BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  Value *doff = b.CreateShl(
      b.CreateZExt(b.CreateLShr(cg_.loadBE(l4_, 12, cg_.i8), 4), cg_.i32), 2);
  cg_.require(b.CreateICmpUGE(doff, b.getInt32(20)), drop_, "tcpopt.doff");
  cg_.require(b.CreateICmpULE(b.CreateAdd(pk_.ihl, doff), pk_.totLen), drop_,
              "tcpopt.fits");
  Value *optlen = b.CreateSub(doff, b.getInt32(20));
  BasicBlock *scan = cg_.block("tcpopt.scan");
  BasicBlock *none = cg_.block("tcpopt.none");
  BasicBlock *decide = cg_.block("tcpopt.decide");
  b.CreateCondBr(b.CreateICmpEQ(optlen, b.getInt32(0)), none, scan);

  b.SetInsertPoint(scan);
  // One scan state for every --tcp-option of the program (the stack is
  // 512 bytes).
  if (!tcpOptState_)
    tcpOptState_ =
        cg_.stackSlot(ArrayType::get(cg_.i8, tcpopt::kSize), 8, "tcpopt.state");
  AllocaInst *st = tcpOptState_;
  b.CreateMemSet(st, b.getInt8(0), tcpopt::kSize, MaybeAlign(8));
  auto field = [&](uint64_t off) { return cg_.at(st, off); };
  b.CreateStore(optlen, field(tcpopt::kLen));
  b.CreateStore(b.getInt8(t.option), field(tcpopt::kKind));
  // The options' offset in the frame, and their length as a size the
  // verifier can bound (1..64; optlen is 4..40).
  Value *off = b.CreateAdd(b.CreateSub(b.CreatePtrToInt(l4_, cg_.i64),
                                       b.CreatePtrToInt(cg_.data, cg_.i64)),
                           b.getInt64(20));
  Value *size = b.CreateAdd(
      b.CreateAnd(b.CreateZExt(b.CreateSub(optlen, b.getInt32(1)), cg_.i64),
                  b.getInt64(63)),
      b.getInt64(1));
  Value *rc =
      cg_.callHelper(XdpLoadBytes, cg_.i64,
                     {ctx_, b.CreateTrunc(off, cg_.i32), field(tcpopt::kBuf),
                      b.CreateTrunc(size, cg_.i32)});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(0)), drop_, "tcpopt.copied");
  cg_.callHelper(Loop, cg_.i64,
                 {b.getInt32(40), tcpOptionScanner(), st, b.getInt64(0)});
  Value *hit = b.CreateICmpNE(b.CreateLoad(cg_.i32, field(tcpopt::kFound)),
                              b.getInt32(0));
  BasicBlock *scanned = b.GetInsertBlock();
  b.CreateBr(decide);

  b.SetInsertPoint(none);
  b.CreateBr(decide);
  b.SetInsertPoint(decide);
  PHINode *found = b.CreatePHI(cg_.i1, 2, "tcpopt.found");
  found->addIncoming(hit, scanned);
  found->addIncoming(b.getFalse(), none);
  Value *ok =
      t.optionNegated ? b.CreateNot(found) : static_cast<Value *>(found);
  cg_.require(ok, noMatch, "tcpopt.ok");
}

/// Rules read the IPv4 addresses, protocol and ports from a per-CPU map
/// value, afresh at each use. Kept in registers, a value one rule compared
/// with a constant stays exact on that rule's paths: LLVM threads jumps past
/// later rules it can decide, and the verifier keeps one more state per
/// rule that walks all the rules after it (quadratic: 500 rules took
/// 800,000 verifier steps). The verifier does not track map contents, so a
/// value read from the map is unknown again at every rule.
void XdpCodegen::storeHeader() {
  IRBuilder<> &b = cg_.b;
  std::map<uint64_t, std::pair<Value *, Value *>> split; // ports, both ways
  auto put = [&](uint64_t off, Value *v) {
    if (!hdrInRegs_)
      b.CreateStore(v, cg_.at(hdr_, off), /*isVolatile=*/true);
    else if (off == HdrSport || off == HdrDport)
      (split[off].first ? split[off].second : split[off].first) = v;
    else
      hdrRegs_[off] = v;
  };
  if (!hdrInRegs_) {
    b.CreateStore(b.getInt32(0), key_);
    hdr_ = cg_.callHelper(MapLookupElem, cg_.ptr, {hdrMap_, key_});
    cg_.require(b.CreateIsNotNull(hdr_), pass_, "hdr.slot");
  }
  put(HdrSaddr, pk_.saddr);
  put(HdrDaddr, pk_.daddr);
  put(HdrProto, b.CreateZExt(pk_.proto, cg_.i32));
  // The ports, when a first fragment holds them; rules read them only after
  // their own checks of the same conditions.
  BasicBlock *ports = cg_.block("hdr.ports"), *none = cg_.block("hdr.noports"),
             *done = cg_.block("hdr.done");
  constexpr uint64_t portsLen = kernel::L4Dport + 2;
  Value *ok = b.CreateAnd(
      b.CreateICmpEQ(pk_.fragOff, b.getInt16(0)),
      b.CreateICmpULE(b.CreateAdd(pk_.ihl, b.getInt32(portsLen)), pk_.totLen));
  b.CreateCondBr(ok, ports, none);
  b.SetInsertPoint(ports);
  cg_.needBytes(pk_.l4, portsLen, none, "hdr.l4");
  put(HdrSport, cg_.loadBE(pk_.l4, kernel::L4Sport, cg_.i16));
  put(HdrDport, cg_.loadBE(pk_.l4, kernel::L4Dport, cg_.i16));
  BasicBlock *read = b.GetInsertBlock();
  b.CreateBr(done);
  b.SetInsertPoint(none);
  put(HdrSport, b.getInt16(0));
  put(HdrDport, b.getInt16(0));
  b.CreateBr(done);
  b.SetInsertPoint(done);
  for (auto &[off, vs] : split) {
    PHINode *phi = b.CreatePHI(cg_.i16, 2, "hdr.port");
    phi->addIncoming(vs.first, read);
    phi->addIncoming(vs.second, none);
    hdrRegs_[off] = phi;
  }
  if (classifies_) {
    // The runs' -i rules read the ingress mask from r2x_hdr too.
    Value *ifmask = nullptr;
    if (p_.usesIface(false)) {
      if (!ifMasks_)
        throw BackendError("classified runs before the interface masks");
      ifmask = b.CreateLoad(cg_.i64,
                            cg_.at(ifMasks_, offsetof(contract::IfMasks, in)),
                            /*isVolatile=*/true);
    }
    storeRunKey(cg_, pk_, hdr_, ifmask);
  }
}

Value *XdpCodegen::hdrField(uint64_t off, Type *ty) {
  if (hdrInRegs_)
    return hdrRegs_.at(off);
  return cg_.b.CreateLoad(ty, cg_.at(hdr_, off), /*isVolatile=*/true);
}

Value *XdpCodegen::widen(Value *v) { return cg_.b.CreateZExt(v, cg_.i64); }

/// `bytes` big-endian bytes at base + off as one i64, read in the widest
/// loads that fit. The caller has checked that they are in the packet.
Value *XdpCodegen::bigEndian(Value *base, uint64_t off, unsigned bytes) {
  IRBuilder<> &b = cg_.b;
  Value *v = nullptr;
  for (unsigned done = 0; done < bytes;) {
    unsigned n = bytes - done >= 4 ? 4 : bytes - done >= 2 ? 2 : 1;
    Value *part = widen(cg_.loadBE(base, off + done, b.getIntNTy(8 * n)));
    v = v ? b.CreateOr(b.CreateShl(v, 8 * n), part) : part;
    done += n;
  }
  return v;
}

/// Fields.def's Frame reader: inside the Ethernet header, which emitL2()
/// has checked.
template <uint64_t Off, unsigned Bits> Value *XdpCodegen::frameField() {
  static_assert(Bits % 8 == 0 && Off + Bits / 8 <= kEthHeaderLen,
                "a Frame field lies in the Ethernet header, in whole bytes");
  return bigEndian(cg_.data, Off, Bits / 8);
}

/// Fields.def's TcpHeader reader: xt_ecn's match_tcp() reads the whole
/// header (skb_header_pointer(thoff, 20)) and does not match without it.
template <uint64_t Off, unsigned Bits>
Value *XdpCodegen::tcpHeaderField(BasicBlock *noMatch) {
  static_assert(Bits % 8 == 0 && Off + Bits / 8 <= kTcpHeaderLen,
                "a TcpHeader field lies in the 20-byte header, in whole bytes");
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpULE(b.CreateAdd(pk_.ihl, b.getInt32(kTcpHeaderLen)),
                              pk_.totLen),
              noMatch, "tcphdr.fits");
  cg_.needBytes(pk_.l4, kTcpHeaderLen, noMatch, "tcphdr.in");
  return bigEndian(pk_.l4, Off, Bits / 8);
}

/// ip_forward() and ip6_forward() decrement the TTL / hop limit before the
/// FORWARD hook (a packet at 1 or less never gets there).
Value *XdpCodegen::ttlAtHook() {
  IRBuilder<> &b = cg_.b;
  if (hook_ == ir::Hook::Forward)
    return b.CreateSub(pk_.ttl, b.getInt8(1));
  return pk_.ttl;
}

/// The IPv4 addresses, from r2x_hdr as the address matches read them.
Value *XdpCodegen::sourceAddress() { return hdrField(HdrSaddr, cg_.i32); }
Value *XdpCodegen::destinationAddress() { return hdrField(HdrDaddr, cg_.i32); }

/// skb->pkt_type as eth_type_trans() sets it: all-ones is broadcast (1), the
/// group bit multicast (2), else this host (0; other hosts' frames never
/// reach netfilter, see emitOtherHost()).
Value *XdpCodegen::packetType() {
  IRBuilder<> &b = cg_.b;
  Value *hi = cg_.loadBE(cg_.data, 0, cg_.i32);
  Value *lo = cg_.loadBE(cg_.data, 4, cg_.i16);
  Value *bcast = b.CreateAnd(b.CreateICmpEQ(hi, b.getInt32(0xffffffffu)),
                             b.CreateICmpEQ(lo, b.getInt16(0xffff)));
  Value *mcast =
      b.CreateICmpNE(b.CreateAnd(hi, b.getInt32(0x01000000u)), b.getInt32(0));
  return b.CreateSelect(bcast, b.getInt64(1),
                        b.CreateSelect(mcast, b.getInt64(2), b.getInt64(0)));
}

/// The value of a field as an i64, by its row of Fields.def: READER names
/// the reader above, WHERE is its argument. A TcpHeader field may branch to
/// `noMatch` when its header is absent.
Value *XdpCodegen::fieldValue(ir::Field f, BasicBlock *noMatch) {
#define R2X_READ_Parsed(BITS, WHERE) widen(pk_.WHERE)
#define R2X_READ_Frame(BITS, WHERE) frameField<WHERE, BITS>()
#define R2X_READ_TcpHeader(BITS, WHERE) tcpHeaderField<WHERE, BITS>(noMatch)
#define R2X_READ_Computed(BITS, WHERE) widen(WHERE())
#define R2X_FIELD(ENUM, NAME, BITS, FAMILIES, FORMAT, READER, WHERE)           \
  case ir::Field::ENUM:                                                        \
    return R2X_READ_##READER(BITS, WHERE);
  switch (f) {
#include "compiler/ir/Fields.def"
  }
#undef R2X_READ_Parsed
#undef R2X_READ_Frame
#undef R2X_READ_TcpHeader
#undef R2X_READ_Computed
  throw BackendError("unknown field");
}

/// -s / -d: IPv4 from r2x_hdr; IPv6 as ipv6_masked_addr_cmp(), four words
/// under the mask, as on the wire.
Value *XdpCodegen::addressTest(const ir::Match::Address &a) {
  IRBuilder<> &b = cg_.b;
  bool src = a.side == ir::Match::Address::Side::Source;
  if (pk_.v6) {
    Value *cond = b.getTrue();
    for (unsigned w = 0; w < 4; ++w) {
      uint32_t mk = 0, net = 0;
      std::memcpy(&mk, a.mask6.data() + 4 * w, 4);
      std::memcpy(&net, a.net6.data() + 4 * w, 4);
      if (mk != 0)
        cond =
            b.CreateAnd(cond, b.CreateICmpEQ(b.CreateAnd(ip6Word(src, w), mk),
                                             b.getInt32(net)));
    }
    return cond;
  }
  Value *addr = src ? sourceAddress() : destinationAddress();
  return a.mask == 0
             ? b.getTrue()
             : b.CreateICmpEQ(b.CreateAnd(addr, a.mask), b.getInt32(a.net));
}

/// -p. ip6_packet_match(): -p walks to the upper-layer header; a walk that
/// fails is a hotdrop (the fragment offset is 0 on every failure), and
/// `-p all` (0) only asks that the walk succeed.
Value *XdpCodegen::protocolTest(const ir::Match::Protocol &p) {
  IRBuilder<> &b = cg_.b;
  if (pk_.v6) {
    cg_.require(pk_.walkOk, drop_, "ip6.walk");
    return p.proto == 0 ? b.getTrue()
                        : b.CreateICmpEQ(pk_.upperProto, b.getInt8(p.proto));
  }
  return b.CreateICmpEQ(hdrField(HdrProto, cg_.i32), b.getInt32(p.proto));
}

/// ((field & mask) in [lo, hi]).
Value *XdpCodegen::fieldTest(const ir::Match::FieldRange &f,
                             BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  const ir::FieldInfo &info = ir::fieldInfo(f.field);
  if (!info.existsIn(family_))
    throw BackendError(std::string("field ") + info.name +
                       " does not exist in " + ir::familyName(family_) +
                       " chains");
  Value *v = b.CreateAnd(fieldValue(f.field, noMatch), b.getInt64(f.mask));
  return f.lo == f.hi ? b.CreateICmpEQ(v, b.getInt64(f.lo))
                      : b.CreateAnd(b.CreateICmpUGE(v, b.getInt64(f.lo)),
                                    b.CreateICmpULE(v, b.getInt64(f.hi)));
}

/// One match: the kinds that are one condition on values already read get
/// their `!` here; the others read headers and branch on their own.
void XdpCodegen::emitMatch(const ir::Match &m, BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  auto test = [&](Value *cond) {
    cg_.require(m.negated ? b.CreateNot(cond) : cond, noMatch, "match");
  };
  using M = ir::Match;
  std::visit(ir::Overloaded{
                 [&](const M::Address &a) { test(addressTest(a)); },
                 [&](const M::Protocol &p) { test(protocolTest(p)); },
                 [&](const M::Iface &i) { test(ifaceTest(i)); },
                 [&](const M::Fragment &) {
                   test(b.CreateICmpNE(pk_.fragOff, b.getInt16(0)));
                 },
                 [&](const M::FieldRange &f) { test(fieldTest(f, noMatch)); },
                 [&](const M::TcpUdp &t) {
                   if (m.negated)
                     throw BackendError(
                         "a negated tcp/udp match (its parts carry "
                         "their own `!')");
                   emitTcpUdp(t, noMatch);
                 },
                 [&](const M::Icmp &i) { emitIcmp(i, m.negated, noMatch); },
                 [&](const M::Multiport &mp) {
                   emitMultiport(mp, m.negated, noMatch);
                 },
                 [&](const M::U32 &u) { emitU32(u, m.negated, noMatch); },
                 [&](const M::Unknown &) {
                   // Hand-over mode: reached with every earlier match true, the
                   // kernel evaluates it (and the rest of the ruleset).
                   if (!handover())
                     throw BackendError("a match XDP cannot evaluate outside "
                                        "hand-over mode");
                   b.CreateBr(pass_);
                   b.SetInsertPoint(cg_.block("unreachable.after_handover"));
                 },
                 [&](const M::CtState &c) {
                   if (!handover())
                     throw BackendError("a state match outside hand-over mode");
                   emitCtState(c, m.negated, noMatch);
                 },
                 [&](const M::AddrType &a) { emitAddrType(a, noMatch); },
                 [&](const M::Set &s) { test(setTest(s)); },
                 [&](const M::Limit &) {
                   // Anywhere but a LOG rule's last match: the kernel's
                   // bucket decides (ir::Program::sideLimit()).
                   if (!handover())
                     throw BackendError("-m limit outside hand-over mode");
                   b.CreateBr(pass_);
                   b.SetInsertPoint(cg_.block("unreachable.after_limit"));
                 },
             },
             m.kind);
}

/// xt_set: ip_set_test() on the set's map. The address types read the
/// address of their first dimension's side (ip4addr()/ip6addr(): the IP
/// header's); the ,port types and bitmap:port the port and protocol
/// ip_set_get_ip4_port() finds (setPort()). A rule with fewer flags than
/// the set has dimensions never matches, nor does a packet without the
/// port the set needs. The entry found is the most specific: a plain one
/// matches, a `nomatch` one does not, and `--return-nomatch` swaps them.
Value *XdpCodegen::setTest(const ir::Match::Set &s) {
  IRBuilder<> &b = cg_.b;
  const ir::IpSet &set = p_.sets.at(s.set);
  if (s.src.size() < set.dimension())
    return b.getFalse();
  if (set.type == ir::IpSet::Type::ListSet) {
    // list_set_ktest(): the first member whose own test is positive; a
    // member of the other family is 0 (ip_set_test()'s family check).
    Value *any = b.getFalse();
    for (unsigned member : set.members) {
      if (!p_.sets[member].fits(family_))
        continue;
      ir::Match::Set m = s;
      m.set = member;
      any = b.CreateOr(any, setTest(m));
    }
    return any;
  }
  if (!set.fits(family_))
    throw BackendError("set " + set.name + " tested in an " +
                       std::string(ir::familyName(family_)) + " chain");
  BasicBlock *none = nullptr; // no port to test: ip_set_test() is 0
  Value *port = nullptr, *proto = nullptr;
  if (set.hasPort()) {
    none = cg_.block("set.noport");
    bool portSrc = set.hasAddress() ? s.src[1] : s.src[0];
    setPort(portSrc, !set.hasAddress(), none, port, proto);
  }
  bool v6 = pk_.v6;
  uint64_t keySize =
      !set.hasAddress() ? sizeof(uint32_t)
      : set.hasPort()
          ? (v6 ? sizeof(contract::SetPortKey6) : sizeof(contract::SetPortKey4))
          : (v6 ? sizeof(contract::SetKey6) : sizeof(contract::SetKey4));
  AllocaInst *key = cg_.stackSlot(ArrayType::get(cg_.i8, keySize), 4, "setkey");
  if (!set.hasAddress()) {
    b.CreateStore(b.CreateZExt(port, cg_.i32), key);
  } else {
    uint32_t hostBits = v6 ? 128 : 32;
    uint64_t addrOff = offsetof(contract::SetKey4, addr);
    if (set.hasPort()) {
      using K = contract::SetPortKey4;
      b.CreateStore(b.getInt32(contract::SetPortKeyBits + hostBits),
                    cg_.at(key, offsetof(K, prefixlen)));
      b.CreateStore(b.CreateUnaryIntrinsic(Intrinsic::bswap, port),
                    cg_.at(key, offsetof(K, port)));
      b.CreateStore(proto, cg_.at(key, offsetof(K, proto)));
      b.CreateStore(b.getInt8(0), cg_.at(key, offsetof(K, pad)));
      addrOff = offsetof(K, addr);
    } else {
      b.CreateStore(b.getInt32(hostBits),
                    cg_.at(key, offsetof(contract::SetKey4, prefixlen)));
    }
    bool src = s.src[0];
    if (v6) {
      Value *const *words = src ? pk_.saddr6 : pk_.daddr6;
      for (unsigned w = 0; w < 4; ++w)
        b.CreateStore(words[w], cg_.at(key, addrOff + 4 * w));
    } else {
      Value *addr = src ? sourceAddress() : destinationAddress();
      b.CreateStore(b.CreateUnaryIntrinsic(Intrinsic::bswap, addr),
                    cg_.at(key, addrOff));
    }
  }
  Value *v = cg_.callHelper(MapLookupElem, cg_.ptr, {setMaps_.at(s.set), key});
  BasicBlock *miss = b.GetInsertBlock();
  BasicBlock *hit = cg_.block("set.hit");
  BasicBlock *done = cg_.block("set.done");
  b.CreateCondBr(b.CreateIsNull(v), done, hit);
  b.SetInsertPoint(hit);
  Value *kind = b.CreateLoad(cg_.i32, v);
  b.CreateBr(done);
  if (none) {
    b.SetInsertPoint(none);
    b.CreateBr(done);
  }
  b.SetInsertPoint(done);
  PHINode *phi = b.CreatePHI(cg_.i32, 3, "set.kind");
  phi->addIncoming(b.getInt32(0), miss);
  phi->addIncoming(kind, hit);
  if (none)
    phi->addIncoming(b.getInt32(0), none);
  uint32_t want = set.hasNomatch() && s.returnNomatch ? contract::SetNomatch
                                                      : contract::SetMatch;
  return b.CreateICmpEQ(phi, b.getInt32(want));
}

/// ip_set_get_ip4_port() (IPv6: ip_set_get_ip6_port()): the protocol, and
/// the source (`src`) or
/// destination port of TCP, SCTP, UDP and UDPLITE (0 for protocols without
/// ports), read from a header that must be there whole within the total
/// length; `fail` when there is none: protocol 0, a non-first fragment of
/// a protocol with ports (or ICMP), a header cut short. ICMP, whose
/// type/code the kernel uses as the port, always fails: no set here holds
/// ICMP entries, so its lookup would miss anyway. `tcpUdpOnly`:
/// ip_set_get_ip_port() (bitmap:port), which also fails for other
/// protocols. Continues where the port is known; `port` is i16 host order,
/// `proto` i8.
void XdpCodegen::setPort(bool src, bool tcpUdpOnly, BasicBlock *fail,
                         Value *&port, Value *&proto) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *join = cg_.block("setport.join");
  BasicBlock *first = cg_.block("setport.first");
  std::vector<std::pair<BasicBlock *, Value *>> ports;
  if (pk_.v6) {
    // ip_set_get_ip6_port(): ipv6_skip_exthdr() must reach an upper-layer
    // header (not "no next header", which it reports as -1) outside a
    // non-first fragment, whatever the protocol. The walk stops at the
    // same header for every chain it completes (kMaxIpv6ExtHeaders).
    proto = pk_.upperProto;
    cg_.require(pk_.walkOk, fail, "setport.walk");
    cg_.require(b.CreateICmpEQ(pk_.fragOff, b.getInt16(0)), fail,
                "setport.first6");
    cg_.require(b.CreateICmpNE(proto, b.getInt8(IPPROTO_NONE)), fail,
                "setport.none");
    b.CreateBr(first);
  } else {
    proto = pk_.proto;
    cg_.require(b.CreateICmpNE(proto, b.getInt8(0)), fail, "setport.proto");
    BasicBlock *frag = cg_.block("setport.fragment");
    b.CreateCondBr(b.CreateICmpNE(pk_.fragOff, b.getInt16(0)), frag, first);
    // A non-first fragment: no ports where the protocol has them.
    b.SetInsertPoint(frag);
    BasicBlock *fragOther = cg_.block("setport.fragment.other");
    SwitchInst *fsw = b.CreateSwitch(proto, fragOther, 5);
    for (uint8_t p : {IPPROTO_TCP, IPPROTO_SCTP, IPPROTO_UDP, IPPROTO_UDPLITE,
                      IPPROTO_ICMP})
      fsw->addCase(b.getInt8(p), fail);
    b.SetInsertPoint(fragOther);
    b.CreateBr(join);
    ports.push_back({fragOther, b.getInt16(0)});
  }

  b.SetInsertPoint(first);
  BasicBlock *other = cg_.block("setport.other");
  SwitchInst *sw = b.CreateSwitch(proto, other, 5);
  sw->addCase(
      b.getInt8(uint8_t(pk_.v6 ? int(IPPROTO_ICMPV6) : int(IPPROTO_ICMP))),
      fail);
  auto withPort = [&](std::initializer_list<uint8_t> protos, uint64_t need) {
    BasicBlock *bb = cg_.block("setport.header");
    for (uint8_t p : protos)
      sw->addCase(b.getInt8(p), bb);
    b.SetInsertPoint(bb);
    cg_.require(
        b.CreateICmpULE(b.CreateAdd(pk_.ihl, b.getInt32(need)), pk_.totLen),
        fail, "setport.fits");
    cg_.needBytes(pk_.l4, need, fail, "setport.bytes");
    Value *v = cg_.loadBE(pk_.l4, src ? 0 : 2, cg_.i16);
    ports.push_back({b.GetInsertBlock(), v});
    b.CreateBr(join);
  };
  withPort({IPPROTO_TCP}, kTcpHeaderLen);
  withPort({IPPROTO_SCTP}, kSctpHeaderLen);
  withPort({IPPROTO_UDP, IPPROTO_UDPLITE}, kUdpHeaderLen);
  b.SetInsertPoint(other);
  b.CreateBr(join);
  ports.push_back({other, b.getInt16(0)});

  b.SetInsertPoint(join);
  PHINode *phi = b.CreatePHI(cg_.i16, unsigned(ports.size()), "setport");
  for (auto &[bb, v] : ports)
    phi->addIncoming(v, bb);
  port = phi;
  if (tcpUdpOnly)
    cg_.require(b.CreateOr(b.CreateICmpEQ(proto, b.getInt8(IPPROTO_TCP)),
                           b.CreateICmpEQ(proto, b.getInt8(IPPROTO_UDP))),
                fail, "setport.tcpudp");
}

/// xt_addrtype (IPv4): the source's test, then (if it held) the
/// destination's, each `(mask has the address's type) != negated`.
void XdpCodegen::emitAddrType(const ir::Match::AddrType &a,
                              BasicBlock *noMatch) {
  if (!handover() || pk_.v6)
    throw BackendError("-m addrtype outside hand-over mode or in IPv6");
  if (a.src)
    emitAddrTypeSide(sourceAddress(), a.src, a.srcNegated, a.limitIface,
                     noMatch);
  if (a.dst)
    emitAddrTypeSide(destinationAddress(), a.dst, a.dstNegated, a.limitIface,
                     noMatch);
}

/// inet_dev_addr_type() answers 0.0.0.0/8 and 255.255.255.255 with
/// BROADCAST and 224.0.0.0/4 with MULTICAST before it reads any table or
/// device; any other address's type is the local routing table's (a local
/// address, a subnet broadcast, ...; UNICAST where no route covers it),
/// which the program reads from the loader's copy, r2x_local, while its
/// lease holds. No lease, or an entry the loader could not decide
/// (LocalUnknown), or --limit-iface-in/out (whose answer depends on the
/// route's device, which the copy does not hold): handed over.
void XdpCodegen::emitAddrTypeSide(Value *addr, uint16_t mask, bool negated,
                                  bool limitIface, BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  static_assert(RTN_UNICAST == 1 && RTN_BROADCAST == 3 && RTN_MULTICAST == 5 &&
                    std::size(ir::kAddrTypeNames) == __RTN_MAX,
                "ir::kAddrTypeNames is indexed by RTN_*");
  Value *zeronet =
      b.CreateICmpEQ(b.CreateAnd(addr, b.getInt32(0xff000000u)), b.getInt32(0));
  Value *limited = b.CreateICmpEQ(addr, b.getInt32(INADDR_BROADCAST));
  Value *broadcast = b.CreateOr(zeronet, limited);
  Value *multicast = b.CreateICmpEQ(b.CreateAnd(addr, b.getInt32(0xf0000000u)),
                                    b.getInt32(0xe0000000u));
  BasicBlock *fixed = b.GetInsertBlock();
  BasicBlock *table = cg_.block("addrtype.table");
  BasicBlock *join = cg_.block("addrtype.join");
  Value *fixedType = b.CreateSelect(broadcast, b.getInt32(RTN_BROADCAST),
                                    b.getInt32(RTN_MULTICAST));
  b.CreateCondBr(b.CreateOr(broadcast, multicast), join, table);

  b.SetInsertPoint(table);
  Value *looked = nullptr;
  BasicBlock *tableEnd = nullptr;
  if (limitIface || !local_)
    b.CreateBr(pass_);
  else
    std::tie(looked, tableEnd) = localRouteType(addr, join);

  b.SetInsertPoint(join);
  PHINode *type = b.CreatePHI(cg_.i32, 2, "addrtype.type");
  type->addIncoming(fixedType, fixed);
  if (tableEnd)
    type->addIncoming(looked, tableEnd);
  Value *in = b.CreateICmpNE(
      b.CreateAnd(b.CreateLShr(b.getInt32(mask), type), b.getInt32(1)),
      b.getInt32(0));
  cg_.require(negated ? b.CreateNot(in) : in, noMatch, "addrtype.ok");
}

/// The route type of `addr` (host order) in r2x_local, handing the packet
/// over without a current lease or for an entry the loader could not
/// decide; branches to `join` with the type, and returns it and the block
/// it comes from.
std::pair<Value *, BasicBlock *> XdpCodegen::localRouteType(Value *addr,
                                                            BasicBlock *join) {
  IRBuilder<> &b = cg_.b;
  AllocaInst *slot = cg_.u32Key();
  b.CreateStore(b.getInt32(0), slot);
  Value *lease = cg_.callHelper(MapLookupElem, cg_.ptr, {localOk_, slot});
  cg_.require(b.CreateIsNotNull(lease), pass_, "addrtype.lease");
  Value *until = b.CreateLoad(cg_.i64, lease);
  Value *now = cg_.callHelper(KtimeGetNs, cg_.i64, {});
  cg_.require(b.CreateICmpULT(now, until), pass_, "addrtype.current");
  AllocaInst *key = cg_.stackSlot(
      ArrayType::get(cg_.i8, sizeof(contract::SetKey4)), 4, "localkey");
  b.CreateStore(b.getInt32(32),
                cg_.at(key, offsetof(contract::SetKey4, prefixlen)));
  b.CreateStore(b.CreateUnaryIntrinsic(Intrinsic::bswap, addr),
                cg_.at(key, offsetof(contract::SetKey4, addr)));
  Value *hit = cg_.callHelper(MapLookupElem, cg_.ptr, {local_, key});
  BasicBlock *miss = b.GetInsertBlock();
  BasicBlock *found = cg_.block("addrtype.found");
  BasicBlock *typed = cg_.block("addrtype.typed");
  b.CreateCondBr(b.CreateIsNull(hit), typed, found);
  b.SetInsertPoint(found);
  Value *routeType = b.CreateLoad(cg_.i32, hit);
  b.CreateBr(typed);
  b.SetInsertPoint(typed);
  PHINode *looked = b.CreatePHI(cg_.i32, 2, "addrtype.route");
  looked->addIncoming(b.getInt32(RTN_UNICAST), miss);
  looked->addIncoming(routeType, found);
  cg_.require(b.CreateICmpULT(looked, b.getInt32(__RTN_MAX)), pass_,
              "addrtype.decided");
  BasicBlock *end = b.GetInsertBlock();
  b.CreateBr(join);
  return {looked, end};
}

/// A state match (Conntrack.h). The raw table runs before conntrack, and
/// the kernel runs nat rules only for a connection's first packet (a later
/// one follows the binding, which a state match in nat would make XDP
/// miss): handed over in both.
void XdpCodegen::emitCtState(const ir::Match::CtState &c, bool negated,
                             BasicBlock *noMatch) {
  IRBuilder<> &b = cg_.b;
  if (table_ == ir::Table::Raw || table_ == ir::Table::Nat || !ct_) {
    b.CreateBr(pass_);
    b.SetInsertPoint(cg_.block("unreachable.ct_handover"));
    return;
  }
  // XDP's own DNAT rewrites the packet before the filter: its fields are no
  // longer the tuple conntrack saw. A nat PREROUTING rule in the kernel or
  // a helper may bind a new connection's reply tuple before the filter.
  CtLowering::TupleFacts t;
  t.fromPacket = natOf(family_) == nullptr;
  t.missReplyKnown = !natGate(family_) && p_.ctHelper.empty();
  ct_->emitMatch(pk_, ctx_, c, negated, noMatch, pass_, t);
}

/// A built-in chain: its rules, then its policy. RETURN in a built-in chain
/// means the policy too.
void XdpCodegen::emitChain(const ir::Chain &c, BasicBlock *accept) {
  IRBuilder<> &b = cg_.b;
  BasicBlock *policy = cg_.block("policy." + c.name);
  emitRules(c, accept, policy, 0);
  b.SetInsertPoint(policy);
  // Hand-over mode: XDP counts only packets whose fate it decides. An
  // ACCEPT policy decides nothing yet (the next table or hook follows, and
  // the kernel counts the policy if a later chain drops); at the end of the
  // last one `accept` is XDP_PASS, and the kernel counts.
  if (handover() && c.policy != ir::Verdict::Drop) {
    recordOnPath(c.policyCounter);
    b.CreateBr(accept);
    return;
  }
  bumpCounter(c.policyCounter);
  b.CreateBr(c.policy == ir::Verdict::Drop ? drop_ : accept);
}

/// Hand-over mode: a rule that matched and lets evaluation go on (a jump,
/// goto, RETURN or count-only rule) sets its bit in the path record; the
/// record is committed to the counters only if XDP drops the packet
/// (emitCommit), as the kernel would have counted those rules then.
void XdpCodegen::recordOnPath(unsigned slot) {
  IRBuilder<> &b = cg_.b;
  unsigned bit = static_cast<unsigned>(pathSlots_.size());
  if (bit >= kPathWords * 64) {
    b.CreateBr(pass_); // no bit left: the kernel decides and counts
    b.SetInsertPoint(cg_.block("unreachable.path_full"));
    return;
  }
  pathSlots_.push_back(slot);
  Value *word = cg_.at(path_, uint64_t(8 * (bit / 64)));
  b.CreateStore(b.CreateOr(b.CreateLoad(cg_.i64, word),
                           b.getInt64(uint64_t(1) << (bit % 64))),
                word);
}

/// Hand-over mode: XDP drops the packet (`action` XDP_DROP) or sends a
/// REJECT's RST in its place (XDP_TX). Every rule recorded on its path is
/// counted (the deciding rule or policy counted itself), then `action`.
void XdpCodegen::emitCommit(BasicBlock *commit, XdpAction action) {
  IRBuilder<> &b = cg_.b;
  b.SetInsertPoint(commit);
  // A drop logs first (a RST is never sent for a logged packet: emitReject).
  // The side limits first: they decide which LOG and other rules on the
  // path ran.
  if (!gates_.empty())
    emitLimitsOnPath();
  if (action == XdpDrop && !logBits_.empty())
    emitLogCommit();
  for (unsigned bit = 0; bit < pathSlots_.size(); ++bit) {
    Value *set = pathBit(bit);
    BasicBlock *count = cg_.block("commit.count");
    BasicBlock *next = cg_.block("commit.next");
    b.CreateCondBr(set, count, next);
    b.SetInsertPoint(count);
    bumpCounter(pathSlots_[bit]);
    b.CreateBr(next);
    b.SetInsertPoint(next);
  }
  cg_.ret(action);
}

/// Whether path bit `bit` is set (i1). `reload`: a volatile load, so the
/// value is read again where it is used instead of kept live (spilled to
/// the stack) across a helper call.
Value *XdpCodegen::pathBit(unsigned bit, bool reload) {
  IRBuilder<> &b = cg_.b;
  LoadInst *word =
      b.CreateLoad(cg_.i64, cg_.at(path_, uint64_t(8 * (bit / 64))));
  word->setVolatile(reload);
  return b.CreateICmpNE(
      b.CreateAnd(word, b.getInt64(uint64_t(1) << (bit % 64))), b.getInt64(0));
}

/// The rules of `c`; falling off the end or RETURN goes to `ret`. A user
/// chain is emitted inline at every rule that jumps to it (BPF has no
/// return stack for us): `-j` comes back to the next rule, `-g` goes where
/// the current chain would return. The frontend has refused loops and
/// nesting deeper than the kernel allows, so this terminates.
void XdpCodegen::emitRules(const ir::Chain &c, BasicBlock *accept,
                           BasicBlock *ret, unsigned depth) {
  IRBuilder<> &b = cg_.b;
  std::vector<unsigned> returnGates; // this instance's gated RETURNs
  for (size_t at = 0; at < c.rules.size(); ++at) {
    const ir::Rule &r = c.rules[at];
    BasicBlock *next = cg_.block("rule.next");
    // A run of simple rules: a decision tree instead (ClassifyCodegen.h).
    // In hand-over mode (cls_.handover) a run holds no count-only rule
    // (hand-over records those on the path, counted only if XDP drops),
    // and ACCEPT and the targets XDP hands over leave it uncounted for the
    // kernel, as below.
    // A run of one-address IPv6 rules (a jail): a sorted table and a
    // search instead (ExactCodegen.h).
    if (size_t n = classify::exactRunAt(c, at, cls_)) {
      std::vector<const ir::Rule *> run;
      for (size_t k = at; k < at + n; ++k)
        run.push_back(&c.rules[k]);
      classify::ExactImage img = classify::buildExact(run, handover());
      if (exactEntries_ + img.entries.size() <= kMaxExactEntries &&
          exactBuckets_ + img.bucketStart.size() <= kMaxExactBucketWords) {
        exactEntries_ += img.entries.size();
        exactBuckets_ += img.bucketStart.size();
        emitExactRun({cg_, btf_, pk_, hdr_, counters_,
                      handover() ? pass_ : accept, drop_, aborted_},
                     img, exactRuns_++, key_, next);
        b.SetInsertPoint(next);
        at += n - 1;
        continue;
      }
    }
    if (size_t n = runs_ >= kMaxRuns ? 0 : classify::runAt(c, at, cls_)) {
      if (!classifies_)
        throw BackendError("a classified run without its key in r2x_hdr");
      std::vector<const ir::Rule *> run;
      for (size_t k = at; k < at + n; ++k)
        run.push_back(&c.rules[k]);
      runs_ += emitClassifiedRun({cg_, btf_, pk_, hdr_, counters_,
                                  handover() ? pass_ : accept, drop_, aborted_},
                                 run, cls_, runs_, kMaxRuns - runs_, next);
      b.SetInsertPoint(next);
      at += n - 1;
      continue;
    }
    // A side limit is carried out when XDP drops the packet
    // (emitLimitsOnPath()), not here.
    const bool gated = handover() && p_.sideLimit(c, r);
    size_t tested = r.matches.size() - (gated ? 1 : 0);
    for (size_t k = 0; k < tested; ++k)
      emitMatch(r.matches[k], next);
    if (handover()) {
      // Only a drop decides here; ACCEPT and what XDP cannot carry out go
      // to the kernel uncounted, and the rest is recorded on the path.
      switch (r.verdict) {
      case ir::Verdict::Drop:
        bumpCounter(r.counter);
        b.CreateBr(drop_);
        b.SetInsertPoint(next);
        continue;
      case ir::Verdict::Accept:
      case ir::Verdict::Dnat:
      case ir::Verdict::Handover:
        b.CreateBr(pass_);
        b.SetInsertPoint(next);
        continue;
      case ir::Verdict::Reject:
        emitReject(r);
        b.SetInsertPoint(next);
        continue;
      case ir::Verdict::Log:
        emitLogOnPath(c, r);
        b.CreateBr(next);
        b.SetInsertPoint(next);
        continue;
      case ir::Verdict::Continue:
      case ir::Verdict::Return:
      case ir::Verdict::Jump:
      case ir::Verdict::Goto: {
        int gate = addGate(c, r, unsigned(pathSlots_.size()));
        recordOnPath(r.counter);
        if (gate >= 0 && r.verdict == ir::Verdict::Return) {
          // Goes on down the chain; the commit takes the rest off the
          // path if the RETURN had its token.
          returnGates.push_back(unsigned(gate));
          b.CreateBr(next);
          b.SetInsertPoint(next);
          continue;
        }
        if (gate >= 0 && r.verdict == ir::Verdict::Jump) {
          // Its callee's bits follow.
          const ir::Chain *callee =
              p_.userChain(c.family, c.table, r.jumpTarget);
          BasicBlock *body = cg_.block("chain." + callee->name);
          b.CreateBr(body);
          b.SetInsertPoint(body);
          emitRules(*callee, accept, next, depth + 1);
          gates_[unsigned(gate)].end = unsigned(pathSlots_.size());
          b.SetInsertPoint(next);
          continue;
        }
        break;
      }
      }
    } else {
      bumpCounter(r.counter);
    }
    switch (r.verdict) {
    case ir::Verdict::Drop:
      b.CreateBr(drop_);
      break;
    case ir::Verdict::Accept:
      b.CreateBr(accept);
      break;
    case ir::Verdict::Continue:
      b.CreateBr(next);
      break;
    case ir::Verdict::Log:
      emitLogNow(r, next);
      break;
    case ir::Verdict::Return:
      b.CreateBr(ret);
      break;
    case ir::Verdict::Handover:
    case ir::Verdict::Reject:
      throw BackendError("a hand-over target outside hand-over mode");
    case ir::Verdict::Dnat:
      if (!natOf(c.family))
        throw BackendError("DNAT outside a nat chain");
      natOf(c.family)->emitBind(pk_, r.nat);
      b.CreateBr(accept);
      break;
    case ir::Verdict::Jump:
    case ir::Verdict::Goto: {
      const ir::Chain *callee = p_.userChain(c.family, c.table, r.jumpTarget);
      if (!callee)
        throw BackendError("jump to unknown chain " + r.jumpTarget);
      BasicBlock *body = cg_.block("chain." + callee->name);
      b.CreateBr(body);
      b.SetInsertPoint(body);
      emitRules(*callee, accept, r.verdict == ir::Verdict::Jump ? next : ret,
                depth + 1);
      break;
    }
    }
    b.SetInsertPoint(next);
  }
  for (unsigned g : returnGates)
    gates_[g].end = unsigned(pathSlots_.size());
  b.CreateBr(ret);
}

// --- LOG -------------------------------------------------------------------
//
// nf_log_syslog.c prints a line from the packet as the hook sees it; the
// program records the frame and `rule2xdp --log` prints the line
// (runtime/LogFormat.cpp). XDP records only packets whose line it can
// reproduce exactly: untagged frames (a tagged one reaches the kernel's
// LOG on the VLAN device, with its own name and MAC header), IPv4 not
// fragmented and IPv6 without extension headers (the kernel may log a
// fragment after defragmentation, when conntrack runs). Standalone mode
// writes a record at the rule and counts one it cannot write in the
// `loglost` counter; hand-over mode writes one record when XDP drops the
// packet (the kernel logs every packet XDP passes, as it runs the same LOG
// rules), and hands the packet over when it cannot.

contract::LogHook XdpCodegen::logHook() const {
  switch (hook_) {
  case ir::Hook::Prerouting:
    return contract::LogHook::Prerouting;
  case ir::Hook::Input:
    return contract::LogHook::Input;
  case ir::Hook::Forward:
    return contract::LogHook::Forward;
  }
  return contract::LogHook::Prerouting;
}

void XdpCodegen::requireLoggable(BasicBlock *otherwise) {
  IRBuilder<> &b = cg_.b;
  cg_.require(b.CreateICmpEQ(pk_.l3, cg_.at(cg_.data, ETH_HLEN)), otherwise,
              "log.untagged");
  if (!pk_.v6) {
    cg_.require(b.CreateICmpEQ(
                    b.CreateAnd(pk_.fragWord, b.getInt16(IP_MF | IP_OFFMASK)),
                    b.getInt16(0)),
                otherwise, "log.whole");
    return;
  }
  Value *ext = b.getFalse();
  // nf_ip6_ext_hdr()'s headers.
  for (int h : {int(IPPROTO_HOPOPTS), int(IPPROTO_ROUTING),
                int(IPPROTO_FRAGMENT), int(IPPROTO_ESP), int(IPPROTO_AH),
                int(IPPROTO_NONE), int(IPPROTO_DSTOPTS)})
    ext = b.CreateOr(ext, b.CreateICmpEQ(pk_.proto, b.getInt8(uint8_t(h))));
  cg_.require(b.CreateNot(ext), otherwise, "log.noext");
}

/// Standalone mode: the record now; the rule has counted.
void XdpCodegen::emitLogNow(const ir::Rule &r, BasicBlock *next) {
  IRBuilder<> &b = cg_.b;
  if (table_ == ir::Table::Filter && natOf(family_))
    throw BackendError("LOG in the filter table of a program with DNAT: "
                       "the kernel logs the translated packet there, which "
                       "XDP has not rewritten yet (not supported)");
  BasicBlock *lost = cg_.block("log.lost");
  requireLoggable(lost);
  Value *oif = b.getInt32(0);
  if (hook_ == ir::Hook::Forward)
    oif = b.CreateLoad(cg_.i32, cg_.at(fib_, kernel::FibIfindex));
  contract::LogHook hook = logHook();
  log_->emit(
      ctx_, pk_.ifindex, oif,
      [&](Value *rec) {
        log_->storeEntry(rec, b.getInt32(0), r.counter, hook);
        b.CreateStore(b.getInt32(1),
                      cg_.at(rec, offsetof(contract::LogEvent, count)));
      },
      next, lost);
  b.SetInsertPoint(lost);
  bumpCounter(p_.logLostCounter);
  b.CreateBr(next);
}

/// Hand-over mode: recorded on the path, logged if XDP drops the packet
/// (emitLogCommit); one XDP cannot log goes to the kernel here.
void XdpCodegen::emitLogOnPath(const ir::Chain &c, const ir::Rule &r) {
  IRBuilder<> &b = cg_.b;
  requireLoggable(pass_);
  if (hook_ == ir::Hook::Forward)
    b.CreateStore(b.CreateLoad(cg_.i32, cg_.at(fib_, kernel::FibIfindex)),
                  logOif_);
  unsigned bit = static_cast<unsigned>(pathSlots_.size());
  if (bit < kPathWords * 64) {
    logBits_.push_back({bit, r.counter, logHook()});
    if (int g = addGate(c, r, bit); g >= 0)
      gates_[unsigned(g)].end = bit + 1;
  }
  recordOnPath(r.counter);
}

int XdpCodegen::addGate(const ir::Chain &c, const ir::Rule &r, unsigned bit) {
  const ir::Match::Limit *l = handover() ? p_.sideLimit(c, r) : nullptr;
  if (!l || bit >= kPathWords * 64)
    return -1;
  gates_.push_back({bit, limitIndex_.at(r.counter), l, r.verdict, bit + 1});
  return int(gates_.size() - 1);
}

/// Hand-over mode, XDP drops the packet (or sends a RST for it): each side
/// limit on its path, in path order (the kernel's order), takes a token
/// from its bucket, and the path becomes what the kernel's would have
/// been: a LOG rule or a jump without a token leaves the path (with the
/// callee's rules), a RETURN with one takes the rest of its chain off it.
/// A rule taken off the path neither logs nor counts. The kernel took the
/// token when the rule was reached; XDP takes it only for the packets it
/// decides, so the kernel's bucket and XDP's each see the packets their
/// side decides. Only LOG rules lie in these ranges (Program::logOnly()),
/// so the verdict is the same either way.
void XdpCodegen::emitLimitsOnPath() {
  IRBuilder<> &b = cg_.b;
  for (const LimitGate &g : gates_) {
    BasicBlock *take = cg_.block("limit.take"), *done = cg_.block("limit.done");
    b.CreateCondBr(pathBit(g.bit, true), take, done);
    b.SetInsertPoint(take);
    Value *got = takeToken(*g.limit, g.index);
    BasicBlock *token = cg_.block("limit.token"),
               *none = cg_.block("limit.none");
    b.CreateCondBr(got, token, none);
    b.SetInsertPoint(token);
    if (g.verdict == ir::Verdict::Return)
      clearPathBits(g.bit + 1, g.end);
    b.CreateBr(done);
    b.SetInsertPoint(none);
    clearPathBits(g.bit, g.verdict == ir::Verdict::Return ? g.bit + 1 : g.end);
    b.CreateBr(done);
    b.SetInsertPoint(done);
  }
}

/// Clears path bits [from, to).
void XdpCodegen::clearPathBits(unsigned from, unsigned to) {
  IRBuilder<> &b = cg_.b;
  for (unsigned w = from / 64; from < to && w <= (to - 1) / 64; ++w) {
    uint64_t mask = 0;
    for (unsigned bit = std::max(from, w * 64); bit < std::min(to, w * 64 + 64);
         ++bit)
      mask |= uint64_t(1) << (bit % 64);
    Value *word = cg_.at(path_, uint64_t(8 * w));
    b.CreateStore(b.CreateAnd(b.CreateLoad(cg_.i64, word), b.getInt64(~mask)),
                  word);
  }
}

/// xt_limit's token bucket as GCRA on one u64 (contract::LimitMap): true
/// (i1) if the bucket had a token, which is taken. Concurrent CPUs race
/// with a compare-and-exchange; after kLimitTries lost races the packet
/// goes to the kernel.
Value *XdpCodegen::takeToken(const ir::Match::Limit &l, unsigned index) {
  constexpr unsigned kLimitTries = 4;
  IRBuilder<> &b = cg_.b;
  AllocaInst *key = cg_.u32Key();
  b.CreateStore(b.getInt32(index), key);
  Value *tatPtr = cg_.callHelper(MapLookupElem, cg_.ptr, {limit_, key});
  cg_.require(b.CreateIsNotNull(tatPtr), pass_, "limit.bucket");
  Value *now = cg_.callHelper(KtimeGetNs, cg_.i64, {});
  const uint64_t interval = uint64_t(l.avg) * contract::LimitNsPerAvg;
  const uint64_t tolerance = uint64_t(l.burst - 1) * interval;
  BasicBlock *result = cg_.block("limit.result");
  PHINode *got = PHINode::Create(cg_.i1, 2 * kLimitTries, "limit.got", result);
  for (unsigned i = 0; i < kLimitTries; ++i) {
    LoadInst *tat = b.CreateLoad(cg_.i64, tatPtr);
    tat->setVolatile(true);
    Value *base = b.CreateSelect(b.CreateICmpUGT(tat, now), tat, now);
    Value *late =
        b.CreateICmpUGT(b.CreateSub(base, now), b.getInt64(tolerance));
    BasicBlock *take = cg_.block("limit.cas");
    got->addIncoming(b.getFalse(), b.GetInsertBlock());
    b.CreateCondBr(late, result, take);
    b.SetInsertPoint(take);
    Value *pair = b.CreateAtomicCmpXchg(
        tatPtr, tat, b.CreateAdd(base, b.getInt64(interval)), MaybeAlign(8),
        AtomicOrdering::SequentiallyConsistent,
        AtomicOrdering::SequentiallyConsistent);
    Value *won = b.CreateExtractValue(pair, 1);
    BasicBlock *retry = cg_.block("limit.retry");
    got->addIncoming(b.getTrue(), b.GetInsertBlock());
    b.CreateCondBr(won, result, retry);
    b.SetInsertPoint(retry);
  }
  b.CreateBr(pass_); // lost every race: the kernel decides
  b.SetInsertPoint(result);
  return got;
}

/// Whether a LOG rule on the path matched (i1).
Value *XdpCodegen::anyLogged() {
  IRBuilder<> &b = cg_.b;
  Value *any = b.getFalse();
  for (const LogBit &l : logBits_)
    any = b.CreateOr(any, pathBit(l.bit));
  return any;
}

/// Hand-over mode, XDP drops: one record for every LOG rule the packet
/// passed, in order, before anything is counted. If it cannot be written
/// (the ring buffer full, more than LogMaxRules LOG rules), the packet goes
/// to the kernel, whose LOG rules log it.
void XdpCodegen::emitLogCommit() {
  IRBuilder<> &b = cg_.b;
  Value *n = b.getInt32(0);
  for (const LogBit &l : logBits_)
    n = b.CreateAdd(n, b.CreateZExt(pathBit(l.bit), cg_.i32));
  BasicBlock *some = cg_.block("log.some"), *done = cg_.block("log.done");
  b.CreateCondBr(b.CreateICmpEQ(n, b.getInt32(0)), done, some);
  b.SetInsertPoint(some);
  cg_.require(b.CreateICmpULE(n, b.getInt32(contract::LogMaxRules)), pass_,
              "log.fits");
  log_->emit(
      ctx_, pk_.ifindex, b.CreateLoad(cg_.i32, logOif_),
      [&](Value *rec) {
        Value *index = b.getInt32(0);
        for (const LogBit &l : logBits_) {
          BasicBlock *store = cg_.block("log.entry"),
                     *skip = cg_.block("log.next");
          BasicBlock *from = b.GetInsertBlock();
          b.CreateCondBr(pathBit(l.bit, true), store, skip);
          b.SetInsertPoint(store);
          log_->storeEntry(rec, index, l.slot, l.hook);
          Value *more = b.CreateAdd(index, b.getInt32(1));
          b.CreateBr(skip);
          b.SetInsertPoint(skip);
          PHINode *phi = b.CreatePHI(cg_.i32, 2, "log.index");
          phi->addIncoming(index, from);
          phi->addIncoming(more, store);
          index = phi;
        }
        b.CreateStore(index, cg_.at(rec, offsetof(contract::LogEvent, count)));
      },
      done, pass_);
  b.SetInsertPoint(done);
}

// --- REJECT --reject-with tcp-reset ---------------------------------------
//
// nf_send_reset() / nf_send_reset6() (nf_reject_ipv4.c, nf_reject_ipv6.c)
// answer a TCP segment with a new RST: addresses and ports swapped, no
// options, window 0; seq = the segment's ack_seq if it has ACK, else 0 with
// ACK set and ack_seq = seq + SYN + FIN + the payload length; IPv4 with
// TOS 0, ID 0, DF and TTL ip_default_ttl; IPv6 with traffic class and flow
// label 0 and the route's hop limit (both from r2x_rst, filled by the
// loader). It leaves through ip_local_out():
// reply routing, OUTPUT and POSTROUTING. The original is dropped. No RST
// for a RST (dropped all the same), a fragment, a bad checksum, or an
// IPv4 packet not addressed to a local unicast address.
//
// XDP rewrites the frame into that RST and sends it back (XDP_TX) only where
// every part of this is known (docs/handover.md, "REJECT"); any other
// packet goes to the kernel, which runs the same REJECT rule.

/// Whether conntrack may run in the namespace (the ruleset has something
/// that may register it: a state match, NAT, or a match or target rule2xdp
/// hands over without knowing what it loads). Then a REJECT looks the
/// packet up and hands over a packet with an entry: the kernel's conntrack
/// would have updated it before the filter, and attaches the RST to it.
bool XdpCodegen::mayTrack() const {
  bool reject = false, other = !p_.ctHelper.empty();
  for (const ir::Chain &c : p_.chains) {
    if (c.table == ir::Table::Nat && !c.rules.empty())
      other = true;
    for (const ir::Rule &r : c.rules) {
      reject = reject || r.verdict == ir::Verdict::Reject;
      other = other || r.verdict == ir::Verdict::Dnat ||
              (r.verdict == ir::Verdict::Handover && r.target != "REJECT");
      for (const ir::Match &m : r.matches)
        other =
            other || m.as<ir::Match::Unknown>() || m.as<ir::Match::CtState>();
    }
  }
  for (const std::string &n : p_.kernelSourceNat)
    other = other || !n.empty();
  return reject && other;
}

void XdpCodegen::emitReject(const ir::Rule &r) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  // INPUT or FORWARD (the filter table's other hook, OUTPUT, is not XDP's).
  // In FORWARD the RST comes from the packet's (non-local) destination,
  // which ip_route_me_harder() accepts (FLOWI_FLAG_ANYSRC for a unicast
  // source).
  const bool input = hook_ == ir::Hook::Input;
  if (!input && hook_ != ir::Hook::Forward) {
    b.CreateBr(pass_);
    return;
  }
  // A packet a LOG rule logged: its record would hold the RST, which is
  // written over the frame; the kernel logs and rejects it.
  if (!logBits_.empty())
    cg_.require(b.CreateNot(anyLogged()), pass_, "rst.unlogged");
  // An untagged frame (tags: the kernel's VLAN device receives it).
  cg_.require(b.CreateICmpEQ(pk_.l3, cg_.at(cg_.data, ETH_HLEN)), pass_,
              "rst.untagged");
  Value *len; // the TCP segment's length, as oldskb->len - thoff
  Value *l4;
  if (pk_.v6) {
    // TCP right after the fixed header (no extension header), both
    // addresses unicast (ipv6_addr_type(): not ::, not ff00::/8).
    cg_.require(b.CreateICmpEQ(pk_.proto, b.getInt8(IPPROTO_TCP)), pass_,
                "rst.tcp6");
    for (Value *const *a : {pk_.saddr6, pk_.daddr6}) {
      Value *any = b.getTrue();
      for (unsigned w = 0; w < 4; ++w)
        any = b.CreateAnd(any, b.CreateICmpEQ(a[w], b.getInt32(0)));
      Value *mcast =
          b.CreateICmpEQ(b.CreateAnd(a[0], b.getInt32(0xff)), b.getInt32(0xff));
      cg_.require(b.CreateNot(b.CreateOr(any, mcast)), pass_, "rst.unicast6");
    }
    len = b.CreateSub(pk_.totLen, b.getInt32(Ip6Hlen));
    l4 = cg_.at(pk_.l3, Ip6Hlen);
  } else {
    // The kernel reassembles before INPUT: not a fragment (MF or offset).
    cg_.require(b.CreateICmpEQ(b.CreateAnd(pk_.fragWord, b.getInt16(0x3fff)),
                               b.getInt16(0)),
                pass_, "rst.whole");
    cg_.require(b.CreateICmpEQ(pk_.proto, b.getInt8(IPPROTO_TCP)), pass_,
                "rst.tcp");
    len = b.CreateSub(pk_.totLen, pk_.ihl);
    l4 = pk_.l4;
  }
  cg_.require(b.CreateICmpUGE(len, b.getInt32(TcpHlen)), pass_, "rst.len");
  cg_.needBytes(l4, TcpHlen, pass_, "rst.tcphdr");
  Value *ports = b.CreateLoad(cg_.i32, l4);
  Value *seq = cg_.loadBE(l4, offsetof(struct tcphdr, seq), cg_.i32);
  Value *ack = cg_.loadBE(l4, offsetof(struct tcphdr, ack_seq), cg_.i32);
  Value *doff = b.CreateShl(
      b.CreateZExt(b.CreateLShr(cg_.loadBE(l4, 12, cg_.i8), b.getInt8(4)),
                   cg_.i32),
      b.getInt32(2));
  Value *flags = b.CreateZExt(cg_.loadBE(l4, 13, cg_.i8), cg_.i32);
  // No RST for a RST: REJECT drops it and sends nothing (before the
  // checksum is looked at).
  BasicBlock *notRst = cg_.block("rst.not_rst");
  BasicBlock *isRst = cg_.block("rst.is_rst");
  b.CreateCondBr(
      b.CreateICmpNE(b.CreateAnd(flags, b.getInt32(TH_RST)), b.getInt32(0)),
      isRst, notRst);
  // A bad checksum: the kernel sends nothing, unless the device vouched for
  // the segment (CHECKSUM_UNNECESSARY), which XDP cannot see. Only a sum XDP
  // verified is a RST; anything else goes to the kernel.
  b.SetInsertPoint(notRst);
  Value *sumOk = transportChecksumOk(cg_, btf_, pk_, ctx_);
  cg_.require(sumOk, pass_, "rst.csum");
  BasicBlock *send = cg_.block("rst.send");
  b.CreateBr(send);

  // Both: conntrack must not hold an entry the kernel would have updated.
  for (BasicBlock *bb : {isRst, send}) {
    b.SetInsertPoint(bb);
    if (ct_)
      ct_->emitFoundGate(pk_, ctx_, pass_);
    if (bb == isRst) {
      bumpCounter(r.counter);
      b.CreateBr(drop_);
    }
  }
  // b is in `send` (after the gate).
  Value *rc = replyRoute(ports, input);
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(FibSuccess)), pass_, "rst.route");
  Value *oif = b.CreateLoad(cg_.i32, cg_.at(replyFib_, FibIfindex));
  cg_.require(b.CreateICmpEQ(oif, pk_.ifindex), pass_, "rst.same_device");
  if (!pk_.v6 && input) {
    // The reply route's source is the packet's destination: a local
    // unicast address (nf_send_reset() sends nothing for broadcast and
    // multicast routes). In FORWARD the routing decision found a unicast
    // route already (broadcast and multicast frames went to the kernel).
    Value *src = b.CreateLoad(cg_.i32, cg_.at(replyFib_, FibSrc));
    cg_.require(b.CreateICmpEQ(src, pk_.daddrRaw), pass_, "rst.local");
  }
  // The hop limit nf_send_reset() / nf_send_reset6() give the RST: the
  // namespace's ip_default_ttl (IPv4: from the packet's route, the local
  // input route, which has no metric of its own, or in FORWARD the forward
  // route, assumed to have none: docs/handover.md), the device's hop_limit
  // (IPv6: the output route's device, here the receiving one), as the
  // loader read them into r2x_rst (0 or no entry: not known).
  AllocaInst *key = cg_.u32Key();
  b.CreateStore(pk_.ifindex, key);
  Value *hv = cg_.callHelper(MapLookupElem, cg_.ptr, {rst_, key});
  cg_.require(b.CreateIsNotNull(hv), pass_, "rst.hops_known");
  Value *hops = b.CreateLoad(
      cg_.i8, cg_.at(hv, pk_.v6 ? offsetof(contract::RstValue, hopLimit)
                                : offsetof(contract::RstValue, ttl)));
  cg_.require(b.CreateICmpNE(hops, b.getInt8(0)), pass_, "rst.hops_set");
  bumpCounter(r.counter);
  Value *payload = b.CreateSub(len, doff);
  writeReset(ports, seq, ack, flags, payload, hops, sent_);
}

/// The struct bpf_fib_lookup on the stack, shared by the routing decision
/// and REJECT's reply route (64 bytes of BPF's 512).
AllocaInst *XdpCodegen::fibSlot() {
  if (!fibBuf_)
    fibBuf_ = cg_.stackSlot(ArrayType::get(cg_.i8, kernel::FibSize), 8, "fib");
  return fibBuf_;
}

/// bpf_fib_lookup() for the RST: from the packet's destination to its
/// source, as ip_route_me_harder() / ip6_route_output() route it (TOS 0,
/// mark 0), from the ingress device; IPv4 in INPUT asks for the route's
/// source address too (BPF_FIB_LOOKUP_SRC). The answer is in replyFib_.
Value *XdpCodegen::replyRoute(Value *ports, bool input) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  // The routing decision's buffer: REJECT ends the packet's evaluation, so
  // nothing reads the forward route (-o, the forward itself) after this.
  replyFib_ = fibSlot();
  AllocaInst *fib = replyFib_;
  b.CreateMemSet(fib, b.getInt8(0), FibSize, MaybeAlign(8));
  b.CreateStore(b.getInt8(pk_.v6 ? AF_INET6 : AF_INET), cg_.at(fib, FibFamily));
  b.CreateStore(b.getInt8(IPPROTO_TCP), cg_.at(fib, FibL4Protocol));
  // sport, dport: the RST's (the packet's swapped), as on the wire.
  Value *swapped = b.CreateOr(b.CreateShl(ports, b.getInt32(16)),
                              b.CreateLShr(ports, b.getInt32(16)));
  b.CreateStore(b.CreateTrunc(swapped, cg_.i16),
                cg_.at(fib, offsetof(struct bpf_fib_lookup, sport)));
  b.CreateStore(b.CreateTrunc(b.CreateLShr(swapped, b.getInt32(16)), cg_.i16),
                cg_.at(fib, offsetof(struct bpf_fib_lookup, dport)));
  b.CreateStore(pk_.ifindex, cg_.at(fib, FibIfindex));
  uint32_t flags = 0;
  if (pk_.v6) {
    for (unsigned w = 0; w < 4; ++w) {
      b.CreateStore(pk_.daddr6[w], cg_.at(fib, FibSrc + 4 * w));
      b.CreateStore(pk_.saddr6[w], cg_.at(fib, FibDst + 4 * w));
    }
  } else {
    b.CreateStore(pk_.daddrRaw, cg_.at(fib, FibSrc));
    b.CreateStore(pk_.saddrRaw, cg_.at(fib, FibDst));
    flags = input ? BPF_FIB_LOOKUP_SRC : 0;
  }
  return cg_.callHelper(FibLookup, cg_.i64,
                        {ctx_, fib, b.getInt32(FibSize), b.getInt32(flags)});
}

/// The frame becomes the RST: the tail cut to Ethernet + IP + 20 bytes of
/// TCP, then the headers written from values read before (the helper
/// invalidates packet pointers), checksums computed whole.
void XdpCodegen::writeReset(Value *ports, Value *seq, Value *ack, Value *flags,
                            Value *payload, Value *hops, BasicBlock *sent) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  const uint64_t ipLen = pk_.v6 ? Ip6Hlen : Ip4Hlen;
  const uint64_t frameLen = ETH_HLEN + ipLen + TcpHlen;
  // The addresses, read before the frame changes (the MACs are in
  // replyFib_, on the stack).
  std::vector<Value *> src, dst; // as on the wire, 32-bit words
  if (pk_.v6) {
    src.assign(pk_.daddr6, pk_.daddr6 + 4);
    dst.assign(pk_.saddr6, pk_.saddr6 + 4);
  } else {
    src = {pk_.daddrRaw};
    dst = {pk_.saddrRaw};
  }
  // seq / ack_seq / flags (host order).
  Value *hasAck =
      b.CreateICmpNE(b.CreateAnd(flags, b.getInt32(TH_ACK)), b.getInt32(0));
  Value *syn = b.CreateAnd(b.CreateLShr(flags, b.getInt32(1)), b.getInt32(1));
  Value *fin = b.CreateAnd(flags, b.getInt32(1));
  Value *rseq = b.CreateSelect(hasAck, ack, b.getInt32(0));
  Value *rack = b.CreateSelect(
      hasAck, b.getInt32(0),
      b.CreateAdd(b.CreateAdd(seq, b.CreateAdd(syn, fin)), payload));
  Value *rflags =
      b.CreateSelect(hasAck, b.getInt32(TH_RST), b.getInt32(TH_RST | TH_ACK));

  // Shrink, then reload the packet pointers (and put the old ones back for
  // the code emitted after this).
  Value *data = cg_.data, *dataEnd = cg_.dataEnd;
  Value *cur = b.CreateSub(b.CreatePtrToInt(cg_.dataEnd, cg_.i64),
                           b.CreatePtrToInt(cg_.data, cg_.i64));
  Value *delta = b.CreateTrunc(b.CreateSub(b.getInt64(frameLen), cur), cg_.i32);
  Value *rc = cg_.callHelper(XdpAdjustTail, cg_.i64, {ctx_, delta});
  cg_.require(b.CreateICmpEQ(rc, b.getInt64(0)), pass_, "rst.shrunk");
  loadPacketPointers(cg_, ctx_, false);
  Value *p = cg_.data;
  cg_.needBytes(p, frameLen, aborted_, "rst.frame");
  auto store = [&](uint64_t off, Value *v) {
    b.CreateStore(v, cg_.at(p, off));
  };
  auto be16 = [&](Value *v) {
    return b.CreateUnaryIntrinsic(Intrinsic::bswap, b.CreateTrunc(v, cg_.i16));
  };
  auto be32 = [&](Value *v) {
    return b.CreateUnaryIntrinsic(Intrinsic::bswap, v);
  };
  // Ethernet: to the route's neighbour, from the device (the EtherType
  // stays).
  b.CreateMemCpy(p, MaybeAlign(1), cg_.at(replyFib_, FibDmac), MaybeAlign(1),
                 ETH_ALEN);
  b.CreateMemCpy(cg_.at(p, ETH_ALEN), MaybeAlign(1), cg_.at(replyFib_, FibSmac),
                 MaybeAlign(1), ETH_ALEN);
  // One's complement sums in host order (16-bit big-endian words).
  auto halves = [&](Value *raw32) { // a wire word: its two BE halves
    Value *h = b.CreateZExt(be32(raw32), cg_.i64);
    return b.CreateAdd(b.CreateLShr(h, b.getInt64(16)),
                       b.CreateAnd(h, b.getInt64(0xffff)));
  };
  auto fold = [&](Value *sum) {
    for (int i = 0; i < 3; ++i)
      sum = b.CreateAdd(b.CreateAnd(sum, b.getInt64(0xffff)),
                        b.CreateLShr(sum, b.getInt64(16)));
    return b.CreateXor(b.CreateTrunc(sum, cg_.i32), b.getInt32(0xffff));
  };
  Value *addrSum = b.getInt64(0);
  for (Value *w : src)
    addrSum = b.CreateAdd(addrSum, halves(w));
  for (Value *w : dst)
    addrSum = b.CreateAdd(addrSum, halves(w));

  uint64_t ip = ETH_HLEN;
  if (pk_.v6) {
    store(ip, be32(b.getInt32(0x60000000))); // version 6, tclass 0, flow 0
    store(ip + Ip6PayloadLen, be16(b.getInt32(TcpHlen)));
    store(ip + Ip6Nexthdr, b.getInt8(IPPROTO_TCP));
    store(ip + Ip6HopLimit, hops);
    for (unsigned w = 0; w < 4; ++w) {
      store(ip + Ip6Saddr + 4 * w, src[w]);
      store(ip + Ip6Daddr + 4 * w, dst[w]);
    }
  } else {
    // version 4, IHL 5, TOS 0; length; ID 0; DF; TTL, protocol; checksum.
    uint64_t fixed = 0x4500 + (Ip4Hlen + TcpHlen) + 0 + IP_DF + IPPROTO_TCP;
    Value *ttlWord = b.CreateShl(b.CreateZExt(hops, cg_.i64), b.getInt64(8));
    Value *check =
        fold(b.CreateAdd(addrSum, b.CreateAdd(ttlWord, b.getInt64(fixed))));
    store(ip, be16(b.getInt32(0x4500)));
    store(ip + Ip4TotLen, be16(b.getInt32(Ip4Hlen + TcpHlen)));
    store(ip + offsetof(struct iphdr, id), b.getInt16(0));
    store(ip + Ip4FragOff, be16(b.getInt32(IP_DF)));
    store(ip + Ip4Ttl, hops);
    store(ip + Ip4Protocol, b.getInt8(IPPROTO_TCP));
    store(ip + Ip4Check, be16(check));
    store(ip + Ip4Saddr, src[0]);
    store(ip + Ip4Daddr, dst[0]);
  }
  uint64_t tcp = ETH_HLEN + ipLen;
  // Ports swapped (raw: the two halves of the loaded word exchanged).
  Value *rports = b.CreateOr(b.CreateShl(ports, b.getInt32(16)),
                             b.CreateLShr(ports, b.getInt32(16)));
  store(tcp, rports);
  store(tcp + offsetof(struct tcphdr, seq), be32(rseq));
  store(tcp + offsetof(struct tcphdr, ack_seq), be32(rack));
  Value *offFlags = b.CreateOr(b.getInt32(0x5000), rflags); // doff 5
  store(tcp + 12, be16(offFlags));
  store(tcp + offsetof(struct tcphdr, window), b.getInt16(0));
  store(tcp + offsetof(struct tcphdr, urg_ptr), b.getInt16(0));
  // The pseudo header (addresses, protocol, length 20) and the header.
  Value *sum = b.CreateAdd(addrSum, b.getInt64(IPPROTO_TCP + TcpHlen));
  sum = b.CreateAdd(sum, halves(rports));
  sum = b.CreateAdd(sum, halves(be32(rseq)));
  sum = b.CreateAdd(sum, halves(be32(rack)));
  sum = b.CreateAdd(sum, b.CreateZExt(offFlags, cg_.i64));
  store(tcp + TcpCheck, be16(fold(sum)));
  b.CreateBr(sent);
  cg_.data = data;
  cg_.dataEnd = dataEnd;
}

/// bpf_fib_lookup() with the packet's addresses and ingress device, as
/// ip_route_input() / ip6_route_input() route it (on the first next header),
/// into fib_ (the egress device, MACs, MTU); `totLen` is the length the
/// lookup checks against the egress MTU. Returns the answer
/// (BPF_FIB_LKUP_RET_*).
///
/// Only DNAT's fast path forwards the packet itself and needs the next
/// hop's MACs; otherwise the lookup stops at the route
/// (BPF_FIB_LOOKUP_SKIP_NEIGH: SUCCESS or NO_NEIGH, both FORWARD, with the
/// egress device and the MTU check as before). A kernel before 6.3 refuses
/// the flag (-EINVAL, before it reads anything): then it is asked again
/// without it, so an old kernel costs a second call and never a wrong
/// answer.
Value *XdpCodegen::fibLookup(Value *totLen) {
  IRBuilder<> &b = cg_.b;
  using namespace kernel;
  AllocaInst *fib = fib_ = fibSlot();
  b.CreateMemSet(fib, b.getInt8(0), FibSize, MaybeAlign(8));
  b.CreateStore(b.getInt8(pk_.v6 ? AF_INET6 : AF_INET), cg_.at(fib, FibFamily));
  b.CreateStore(pk_.proto, cg_.at(fib, FibL4Protocol));
  b.CreateStore(totLen, cg_.at(fib, FibTotLen));
  b.CreateStore(pk_.ifindex, cg_.at(fib, FibIfindex));
  if (pk_.v6) {
    // flowinfo is the first header word without the version. On the wire
    // the word is version:4 tclass:8 flow:20; in a little-endian load the
    // version is the low nibble of the first byte.
    b.CreateStore(b.CreateAnd(pk_.flowWord, b.getInt32(0xffffff0fu)),
                  cg_.at(fib, FibFlowinfo));
    for (unsigned w = 0; w < 4; ++w) {
      b.CreateStore(pk_.saddr6[w], cg_.at(fib, FibSrc + 4 * w));
      b.CreateStore(pk_.daddr6[w], cg_.at(fib, FibDst + 4 * w));
    }
  } else {
    b.CreateStore(pk_.tos, cg_.at(fib, FibTos));
    b.CreateStore(pk_.saddrRaw, cg_.at(fib, FibSrc));
    b.CreateStore(pk_.daddrRaw, cg_.at(fib, FibDst));
  }
  auto lookup = [&](uint32_t flags) {
    return cg_.callHelper(FibLookup, cg_.i64,
                          {ctx_, fib, b.getInt32(FibSize), b.getInt32(flags)});
  };
  if (natOf(family_))
    return lookup(0);
  Value *rc = lookup(BPF_FIB_LOOKUP_SKIP_NEIGH);
  BasicBlock *from = b.GetInsertBlock();
  BasicBlock *again = cg_.block("fib.without_skip_neigh");
  BasicBlock *done = cg_.block("fib.answered");
  b.CreateCondBr(b.CreateICmpSLT(rc, b.getInt64(0)), again, done);
  b.SetInsertPoint(again);
  Value *rc0 = lookup(0);
  b.CreateBr(done);
  b.SetInsertPoint(done);
  PHINode *phi = b.CreatePHI(cg_.i64, 2, "fib.rc");
  phi->addIncoming(rc, from);
  phi->addIncoming(rc0, again);
  return phi;
}

/// The kernel's routing decision between INPUT and FORWARD (fibLookup()).
/// Whatever neither chain would see (no route, TTL expiring, DF set but too
/// big) goes to the kernel, which answers with its own ICMP.
void XdpCodegen::emitRouting(BasicBlock *input, BasicBlock *forward) {
  IRBuilder<> &b = cg_.b;
  // The lookup's first answer, forwarding off on the ingress device (below),
  // read without it (readForwarding()): on a host, every packet's answer.
  BasicBlock *lookup = cg_.block("route.lookup");
  b.CreateCondBr(forwards_, lookup, input);
  b.SetInsertPoint(lookup);
  Value *rc = fibRc_ = fibLookup(b.CreateTrunc(pk_.totLen, cg_.i16));

  BasicBlock *fwd = cg_.block("route.forwarded");
  BasicBlock *big = cg_.block("route.frag_needed");
  SwitchInst *sw = b.CreateSwitch(rc, pass_, 5);
  sw->addCase(b.getInt64(FibSuccess), fwd);
  sw->addCase(b.getInt64(FibNoNeighbour), fwd);
  sw->addCase(b.getInt64(FibFragNeeded), big);
  sw->addCase(b.getInt64(FibNotForwarded), input);
  // Forwarding is off on the ingress device: a local destination goes to
  // INPUT, any other is dropped by the kernel's routing. Either way only
  // INPUT can decide.
  sw->addCase(b.getInt64(FibForwardingDisabled), input);

  // ip_forward() drops a packet whose DF forbids fragmenting to the egress
  // MTU before the FORWARD hook; ip6_forward() always does (routers do not
  // fragment IPv6) and sends packet too big.
  b.SetInsertPoint(big);
  if (pk_.v6) {
    b.CreateBr(pass_);
  } else {
    Value *df =
        b.CreateICmpNE(b.CreateAnd(pk_.fragWord, kernel::Ip4Df), b.getInt16(0));
    BasicBlock *fragment = cg_.block("route.fragmented");
    b.CreateCondBr(df, pass_, fragment);
    b.SetInsertPoint(fragment);
    emitEgressOfFragmented(fwd);
  }
  // ip_forward() / ip6_forward() send time exceeded before the FORWARD hook
  // (TTL or hop limit 1 or 0).
  b.SetInsertPoint(fwd);
  cg_.require(b.CreateICmpUGT(pk_.ttl, b.getInt8(1)), pass_, "route.ttl_ok");
  // ... and drop one that came in a broadcast or multicast frame
  // (pkt_type != PACKET_HOST), also before FORWARD.
  Value *group = b.CreateAnd(b.CreateLoad(cg_.i8, cg_.data), b.getInt8(1));
  b.CreateCondBr(b.CreateICmpNE(group, b.getInt8(0)), pass_, forward);
}

/// An IPv4 packet too big for the egress MTU without DF is fragmented and
/// forwarded, but the FIB answer (FRAG_NEEDED) named no egress device. With
/// -o matches, ask again without the MTU check (tot_len 0) for the device the
/// kernel forwards the fragments through. fibRc_ keeps FRAG_NEEDED, so DNAT's
/// fast path still leaves such a packet to the kernel.
void XdpCodegen::emitEgressOfFragmented(BasicBlock *forward) {
  IRBuilder<> &b = cg_.b;
  if (!p_.usesIface(true)) {
    b.CreateBr(forward);
    return;
  }
  Value *rc = fibLookup(b.getInt16(0));
  SwitchInst *sw = b.CreateSwitch(rc, pass_, 2);
  sw->addCase(b.getInt64(FibSuccess), forward);
  sw->addCase(b.getInt64(FibNoNeighbour), forward);
}

/// ip_rcv_core() and ipv6_rcv() drop a frame addressed to another host
/// (PACKET_OTHERHOST: a unicast destination MAC that is not the device's)
/// before PREROUTING. The loader puts each device's MAC in r2x_ifmac; a
/// device without one (0) is not checked.
void XdpCodegen::emitOtherHost(const L2 &l2) {
  IRBuilder<> &b = cg_.b;
  AllocaInst *key = cg_.u32Key();
  b.CreateStore(l2.ifindex, key);
  Value *v = cg_.callHelper(MapLookupElem, cg_.ptr, {ifmac_, key});
  BasicBlock *known = cg_.block("ifmac.known");
  BasicBlock *host = cg_.block("ifmac.host");
  b.CreateCondBr(b.CreateIsNull(v), host, known);
  b.SetInsertPoint(known);
  Value *dev = b.CreateLoad(cg_.i64, v);
  // The frame's destination in the same byte layout as the map value.
  Value *dst = b.CreateOr(
      b.CreateZExt(b.CreateLoad(cg_.i32, cg_.data), cg_.i64),
      b.CreateShl(
          b.CreateZExt(b.CreateLoad(cg_.i16, cg_.at(cg_.data, uint64_t(4))),
                       cg_.i64),
          32));
  Value *unicast =
      b.CreateICmpEQ(b.CreateAnd(dst, b.getInt64(1)), b.getInt64(0));
  Value *other =
      b.CreateAnd(b.CreateAnd(unicast, b.CreateICmpNE(dev, b.getInt64(0))),
                  b.CreateICmpNE(dst, dev));
  b.CreateCondBr(other, pass_, host);
  b.SetInsertPoint(host);
}

void XdpCodegen::emit(Value *ctxArg) {
  IRBuilder<> &b = cg_.b;
  ctx_ = ctxArg;
  declareMaps();
  BasicBlock *entry = cg_.block("entry");
  pass_ = cg_.block("xdp.pass");
  drop_ = cg_.block("xdp.drop");
  aborted_ = cg_.block("xdp.aborted");
  b.SetInsertPoint(pass_);
  cg_.ret(XdpPass);
  b.SetInsertPoint(aborted_);
  cg_.ret(XdpAborted);
  b.SetInsertPoint(drop_);
  cg_.ret(XdpDrop);

  b.SetInsertPoint(entry);
  if (!p_.handAll.empty()) {
    // Program::handAll: the kernel decides everything. The counters are
    // looked at (not bumped) so the program holds its r2x_counters, by
    // which the loader knows it and carries the rules' counts on.
    AllocaInst *key = cg_.u32Key();
    b.CreateStore(b.getInt32(0), key);
    cg_.callHelper(MapLookupElem, cg_.ptr, {counters_, key});
    b.CreateBr(pass_);
    return;
  }
  key_ = cg_.u32Key();
  L2 l2 = emitL2(cg_, ctxArg, pass_);
  emitOtherHost(l2);

  // iptables rules judge IPv4, ip6tables rules IPv6; anything else (and a
  // family without rules) goes to the kernel untouched.
  BasicBlock *v4 = cg_.block("ipv4");
  BasicBlock *v6 = cg_.block("ipv6");
  SwitchInst *sw = b.CreateSwitch(l2.etype, pass_, 2);
  if (p_.hasFamily(ir::Family::V4))
    sw->addCase(b.getInt16(ETH_P_IP), v4);
  if (p_.hasFamily(ir::Family::V6))
    sw->addCase(b.getInt16(ETH_P_IPV6), v6);

  b.SetInsertPoint(v4);
  if (p_.hasFamily(ir::Family::V4)) {
    readForwarding(ir::Family::V4);
    pk_ = emitIpv4(cg_, l2, pass_);
    emitFamily(ir::Family::V4);
  } else {
    b.CreateBr(pass_);
  }
  b.SetInsertPoint(v6);
  if (p_.hasFamily(ir::Family::V6)) {
    readForwarding(ir::Family::V6);
    pk_ = emitIpv6(cg_, l2, pass_);
    // The v4 path's slot and masks do not dominate this one.
    ifMasks_ = ifMaskIn_ = ifMaskOut_ = nullptr;
    egressKnown_ = false;
    emitFamily(ir::Family::V6);
  } else {
    b.CreateBr(pass_);
  }
}

/// Whether the family's packets reach the routing decision: it has DNAT or
/// an INPUT or FORWARD chain (emitFamilyChains()).
bool XdpCodegen::routes(ir::Family fam) {
  if (natOf(fam))
    return true;
  return llvm::any_of(p_.chains, [&](const ir::Chain &c) {
    return !c.user && c.family == fam &&
           (c.hook == ir::Hook::Input || c.hook == ir::Hook::Forward);
  });
}

void XdpCodegen::readForwarding(ir::Family fam) {
  forwards_ = nullptr;
  if (!routes(fam))
    return;
  if (!devConf_)
    devConf_ = std::make_unique<DeviceConf>(cg_, btf_);
  forwards_ = devConf_->ingressForwards(ctx_, fam == ir::Family::V6);
}

/// One family's chains in netfilter's order. In hand-over mode, drops go
/// through this family's commit block, which counts the recorded path.
void XdpCodegen::emitFamily(ir::Family fam) {
  if (!handover()) {
    emitFamilyChains(fam);
    return;
  }
  IRBuilder<> &b = cg_.b;
  BasicBlock *commit = drop_ = cg_.block("handover.commit");
  BasicBlock *sent = sent_ = cg_.block("handover.sent");
  pathSlots_.clear();
  logBits_.clear();
  gates_.clear();
  if (log_) {
    if (!logOif_)
      logOif_ = cg_.stackSlot(cg_.i32, 4, "log.oif");
    b.CreateStore(b.getInt32(0), logOif_);
  }
  AllocaInst *key = cg_.u32Key();
  b.CreateStore(b.getInt32(0), key);
  path_ = cg_.callHelper(MapLookupElem, cg_.ptr, {pathMap_, key});
  cg_.require(b.CreateIsNotNull(path_), pass_, "path.ok");
  for (unsigned w = 0; w < kPathWords; ++w)
    b.CreateStore(b.getInt64(0), cg_.at(path_, uint64_t(8 * w)));
  if (ct_)
    ct_->begin();
  // A fragment (IPv4: MF or an offset; IPv6: any fragment header, atomic
  // ones too): when conntrack runs in the namespace for the family, the
  // kernel reassembles it before PREROUTING (nf_defrag_ipv4/ipv6), and its
  // rules judge the datagram, without the IPv6 fragment header. Whether it
  // runs, anything in the namespace may decide: the kernel's.
  Value *fragment =
      fam == ir::Family::V4
          ? b.CreateICmpNE(
                b.CreateAnd(pk_.fragWord,
                            b.getInt16(kernel::Ip4Mf | kernel::Ip4OffMask)),
                b.getInt16(0))
          : pk_.fragHeader;
  cg_.require(b.CreateNot(fragment), pass_, "handover.not_fragment");
  emitFamilyChains(fam);
  emitCommit(commit, XdpDrop);
  emitCommit(sent, XdpTx);
}

void XdpCodegen::emitFamilyChains(ir::Family fam) {
  IRBuilder<> &b = cg_.b;
  family_ = fam;
  if (p_.usesIface(false) || p_.usesIface(true))
    storeIfaceMasks(); // once per packet, before the first rule needs it
  if (fam == ir::Family::V4)
    storeHeader();

  // The built-in chains of one hook, in netfilter's table order (raw,
  // mangle, filter: the Table enum's order). Each table is its own
  // traversal: ACCEPT ends that table and goes on to the next.
  auto hookChains = [&](ir::Hook h) {
    std::vector<const ir::Chain *> cs;
    for (const ir::Chain &c : p_.chains)
      if (!c.user && c.family == fam && c.hook == h)
        cs.push_back(&c);
    std::stable_sort(cs.begin(), cs.end(),
                     [](const ir::Chain *a, const ir::Chain *b) {
                       return a->table < b->table;
                     });
    return cs;
  };
  NatLowering *natl = natOf(fam);
  bool nat = natl != nullptr;
  if (nat)
    natl->begin();
  // Hand-over mode with NAT in the kernel: conntrack rewrites translated
  // connections at nat PREROUTING, and runs the nat chain only for a
  // connection's first packet (CtLowering::emitNatGate()).
  const bool gate = natGate(fam);
  bool gated = false;
  auto emitHook = [&](ir::Hook h, BasicBlock *after) {
    hook_ = h;
    for (const ir::Chain *c : hookChains(h)) {
      table_ = c->table;
      BasicBlock *next = cg_.block(std::string("after.") +
                                   ir::tableName(c->table) + "." + c->name);
      if (gate && !gated && c->table >= ir::Table::Nat) {
        gated = true;
        BasicBlock *run = cg_.block("nat.first_packet");
        ct_->emitNatGate(pk_, ctx_, run, next, pass_);
        b.SetInsertPoint(run);
      }
      bool natChain = nat && c->table == ir::Table::Nat;
      if (natChain)
        natl->emitLookup(pk_, next); // a bound connection skips the chain
      emitChain(*c, next);
      b.SetInsertPoint(next);
      if (natChain) {
        natl->reloadDestination(pk_);
        if (fam == ir::Family::V4)
          storeHeader(); // the translated destination and port
      }
    }
    if (gate && !gated && h == ir::Hook::Prerouting) {
      gated = true; // no nat chain: only the rewrite to rule out
      ct_->emitNatGate(pk_, ctx_, after, after, pass_);
      return;
    }
    b.CreateBr(after);
  };

  BasicBlock *routing = cg_.block("routing");
  emitHook(ir::Hook::Prerouting, routing);
  b.SetInsertPoint(routing);
  if (!routes(fam)) {
    b.CreateBr(pass_);
    return;
  }
  BasicBlock *inBB = cg_.block("hook.INPUT");
  BasicBlock *fwdBB = cg_.block("hook.FORWARD");
  emitRouting(inBB, fwdBB);

  b.SetInsertPoint(inBB);
  if (fam == ir::Family::V4) {
    // The kernel reassembles IPv4 before INPUT: let it; the first fragment,
    // judged as the datagram, decides whether the datagram can complete.
    // (IPv6 without conntrack reaches INPUT fragment by fragment.)
    cg_.require(b.CreateICmpEQ(pk_.fragOff, b.getInt16(0)), pass_,
                "input.first_fragment");
  }
  emitHook(ir::Hook::Input, pass_);
  b.SetInsertPoint(fwdBB);
  if (p_.usesIface(true))
    lookupEgressMask();
  if (!nat) {
    emitHook(ir::Hook::Forward, pass_);
    return;
  }
  // Translated packets leave through the fast path once FORWARD accepts.
  BasicBlock *accepted = cg_.block("forward.accepted");
  emitHook(ir::Hook::Forward, accepted);
  b.SetInsertPoint(accepted);
  natl->emitForward(pk_, fibRc_, fib_, pass_);
}

} // namespace

void emitXdpProgram(const ir::Program &program, Module &m,
                    const classify::Options &cls) {
  Function *fn = createProgram(m);
  BtfBuilder btf(m);
  XdpCodegen cg(program, m, fn, btf, cls);
  cg.emit(fn->getArg(0));
  // With a subprogram (a bpf_loop callback, a classified run), the kernel
  // wants BTF func_info for every function; kfunc calls want it too.
  Function *scan = m.getFunction(TcpOptStep);
  if (scan)
    btf.function(scan, btf.long64(), {btf.u32(), nullptr});
  bool subprograms = llvm::any_of(m.functions(), [&](const Function &f) {
    return &f != fn && !f.isDeclaration();
  });
  bool kfuncs = llvm::any_of(m.functions(), [](const Function &f) {
    return f.isDeclaration() && f.getSection() == ".ksyms";
  });
  if (subprograms || kfuncs)
    btf.function(fn, btf.int32(), {nullptr});
  finishObject(btf, metadataText(program));
}

} // namespace r2x::backend
