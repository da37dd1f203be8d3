//===- compiler/ir/TcIR.cpp - tc u32 IR: slots and the text form
//------------===//
//
/// \file
/// Counter slots and `--emit=ir` for the tc u32 IR (TcIR.h). Keys print as
/// `tc filter show` prints them, so a reader can compare the two.
//===----------------------------------------------------------------------===//
#include "compiler/ir/TcIR.h"

#include <cstdio>
#include <sstream>

namespace r2x::ir::tc {

const char *controlName(Control c) {
  switch (c) {
  case Control::Ok:
    return "pass";
  case Control::Shot:
    return "drop";
  case Control::Pipe:
    return "pipe";
  case Control::Unspec:
    return "continue";
  case Control::Stolen:
    return "stolen";
  }
  return "?";
}

const char *protoName(Proto p) {
  switch (p) {
  case Proto::Ip:
    return "ip";
  case Proto::Ipv6:
    return "ipv6";
  case Proto::All:
    return "all";
  }
  return "?";
}

void Program::finalize() {
  unsigned slot = 0;
  for (auto &[htid, t] : tables)
    for (auto &[bucket, nodes] : t.buckets)
      for (Knode &k : nodes)
        k.counter = slot++;
  numCounters = slot;
}

const HashTable *Program::table(uint32_t htid) const {
  auto it = tables.find(htid);
  return it == tables.end() ? nullptr : &it->second;
}

std::string formatHandle(uint32_t handle) {
  char buf[32];
  uint32_t htid = handle >> 20, hash = (handle >> 12) & 0xff,
           node = handle & 0xfff;
  std::string s;
  if (htid) {
    std::snprintf(buf, sizeof buf, "%x:", htid);
    s += buf;
  }
  if (hash || node) {
    if (hash) {
      std::snprintf(buf, sizeof buf, "%x", hash);
      s += buf;
    }
    if (node) {
      std::snprintf(buf, sizeof buf, ":%x", node);
      s += buf;
    }
  }
  return s.empty() ? "none" : s;
}

std::string formatClassid(uint32_t c) {
  char buf[32];
  if (c == 0xffffffffu)
    return "root";
  if (c == 0)
    return "none";
  std::snprintf(buf, sizeof buf, "%x:%x", c >> 16, c & 0xffff);
  return buf;
}

std::string formatKey(const Key &k) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%08x/%08x at %s%d", k.val, k.mask,
                k.nexthdr ? "nexthdr+" : "", k.off);
  return buf;
}

namespace {

void printKnode(std::ostringstream &os, const Program &p, const Knode &k) {
  os << "    knode " << formatHandle(k.handle) << " counter " << k.counter;
  if (k.terminal())
    os << " terminal";
  if (k.classid)
    os << " flowid " << formatClassid(*k.classid);
  if (!k.text.empty())
    os << "  # " << k.text;
  os << "\n";
  for (const Key &key : k.keys)
    os << "      match " << formatKey(key) << "\n";
  if (k.flags & (SelOffset | SelVarOffset)) {
    char buf[96];
    os << "      offset";
    if (k.flags & SelVarOffset) {
      std::snprintf(buf, sizeof buf, " %04x>>%u at %d", k.offmask, k.offshift,
                    k.offoff);
      os << buf;
    }
    os << " plus " << k.plus;
    os << "\n";
  }
  if (k.flags & SelEat)
    os << "      eat\n";
  if (k.link) {
    const HashTable *t = p.table(*k.link);
    os << "      link " << formatHandle(*k.link);
    if (t && t->divisor > 1) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " hash mask %08x at %d shift %u", k.hmask,
                    k.hoff, k.fshift);
      os << buf;
    }
    os << "\n";
  }
  for (const Action &a : k.actions)
    os << "      action " << a.text << "\n";
}

} // namespace

std::string print(const Program &p) {
  std::ostringstream os;
  os << "tc ingress dev " << p.dev << " counters=" << p.numCounters << "\n";
  for (const Filter &f : p.filters) {
    os << "filter pref " << f.pref << " protocol " << protoName(f.proto)
       << " u32 root " << formatHandle(f.rootHtid) << "\n";
    for (const auto &[htid, t] : p.tables) {
      if (t.pref != f.pref)
        continue;
      os << "  table " << formatHandle(htid) << " divisor " << t.divisor
         << (t.root ? " root" : "") << "\n";
      for (const auto &[bucket, nodes] : t.buckets)
        for (const Knode &k : nodes)
          printKnode(os, p, k);
    }
  }
  for (size_t i = 0; i < p.redirectDevs.size(); ++i)
    os << "redirect " << i << " dev " << p.redirectDevs[i] << "\n";
  return os.str();
}

} // namespace r2x::ir::tc
