//===- compiler/ir/Printer.cpp - the IR's text form (--emit=ir)
//-------------===//
//
/// \file
/// One line per chain, rule, match and verdict. The words are the IR's, not
/// iptables': lit tests pin what the frontend understood, so a reader sees
/// normalised values (masked networks, numeric protocols, port ranges).
//===----------------------------------------------------------------------===//
#include "compiler/ir/IR.h"

#include <cstdio>
#include <netinet/in.h>
#include <sstream>

namespace r2x::ir {
namespace {

std::string range(const PortRange &r) {
  std::string s = r.negated ? "not " : "";
  if (r.lo == r.hi)
    return s + std::to_string(r.lo);
  return s + std::to_string(r.lo) + ".." + std::to_string(r.hi);
}

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string printField(const Match::FieldRange &f, const std::string &neg) {
  const FieldInfo &info = fieldInfo(f.field);
  auto value = [&](uint64_t v) {
    switch (info.format) {
    case FieldFormat::Dec:
      return std::to_string(v);
    case FieldFormat::Hex:
    case FieldFormat::Flags:
      return hex(v);
    case FieldFormat::Ipv4:
      return formatAddr(static_cast<uint32_t>(v));
    }
    return hex(v);
  };
  // A mask that keeps the whole field says nothing, except on a field of
  // flags, where the mask is what is tested.
  bool fullMask =
      f.mask == ~uint64_t(0) ||
      (info.format != FieldFormat::Flags && f.mask == info.fullMask());
  std::string s = info.name;
  if (!fullMask)
    s += " & " + hex(f.mask);
  s += " " + neg + "in " + value(f.lo);
  if (f.hi != f.lo)
    s += ".." + value(f.hi);
  return s;
}

std::string printU32(const Match::U32 &u, const std::string &neg) {
  static const char *ops[] = {"&", "<<", ">>", "@"};
  std::string s = "u32 " + neg + "tests";
  for (size_t t = 0; t < u.tests.size(); ++t) {
    const U32Test &test = u.tests[t];
    s += (t ? " && " : " ") + hex(test.start);
    for (const auto &[op, n] : test.ops)
      s += std::string(ops[static_cast<int>(op)]) + hex(n);
    s += "=";
    for (size_t r = 0; r < test.ranges.size(); ++r) {
      const auto &[lo, hi] = test.ranges[r];
      // Appended piece by piece: `"," + std::string` trips GCC 12's
      // -Wrestrict false positive at -O3 (GCC bug 105329).
      s += r ? "," : "";
      s += hex(lo);
      if (hi != lo) {
        s += ':';
        s += hex(hi);
      }
    }
  }
  return s;
}

std::string printMatch(const Program &p, const Match &m, bool v6) {
  std::string neg = m.negated ? "not " : "";
  const char *ip = v6 ? "ip6" : "ip";
  return std::visit(
      Overloaded{
          [&](const Match::Address &a) {
            bool src = a.side == Match::Address::Side::Source;
            return std::string(ip) + (src ? ".saddr " : ".daddr ") + neg +
                   "in " +
                   (v6 ? formatNet6(a.net6, a.mask6)
                       : formatNet(a.net, a.mask));
          },
          [&](const Match::Protocol &p) {
            return std::string(v6 ? "ip6.upper_protocol " : "ip.protocol ") +
                   neg + "== " + std::to_string(p.proto);
          },
          [&](const Match::Iface &i) {
            return std::string(i.out ? "oif " : "iif ") + neg + "matches \"" +
                   i.pattern + "\" bit " + std::to_string(i.bit);
          },
          [&](const Match::Fragment &) {
            return "ip.fragment_offset " +
                   std::string(m.negated ? "== 0" : "!= 0");
          },
          [&](const Match::TcpUdp &t) {
            std::string s = t.proto == IPPROTO_TCP ? "tcp" : "udp";
            s += " header";
            if (t.sport)
              s += " sport " + range(*t.sport);
            if (t.dport)
              s += " dport " + range(*t.dport);
            if (t.flags)
              s += " flags & " + hex(t.flags->mask) +
                   (t.flags->negated ? " != " : " == ") + hex(t.flags->comp);
            if (t.option)
              s += std::string(t.optionNegated ? " no" : "") + " option " +
                   std::to_string(t.option);
            return s;
          },
          [&](const Match::Icmp &i) {
            if (i.type == 255)
              return "icmp header " + neg + "any type";
            return "icmp header " + neg + "type " + std::to_string(i.type) +
                   " code " + std::to_string(i.codeLo) + ".." +
                   std::to_string(i.codeHi);
          },
          [&](const Match::Multiport &mp) {
            static const char *side[] = {"sport", "dport", "sport or dport"};
            std::string s = "ports header " +
                            std::string(side[static_cast<int>(mp.side)]) + " " +
                            neg + "in";
            for (size_t i = 0; i < mp.ports.size(); ++i) {
              s += i ? "," : " ";
              s += range(mp.ports[i]);
            }
            return s;
          },
          [&](const Match::FieldRange &f) { return printField(f, neg); },
          [&](const Match::U32 &u) { return printU32(u, neg); },
          [&](const Match::Unknown &u) {
            return "unknown (hand over) " + neg + u.what + ": " + u.reason;
          },
          [&](const Match::CtState &c) {
            std::string s = "ctstate";
            if (c.hasState)
              s += " " + neg + formatCtState(c.mask);
            auto no = [](bool n) { return std::string(n ? " not" : ""); };
            if (c.proto)
              s += " proto" + no(c.proto->negated) + " " +
                   std::to_string(c.proto->proto);
            if (c.reply)
              s += *c.reply ? " dir REPLY" : " dir ORIGINAL";
            static const char *field[] = {"origsrc", "origdst", "replsrc",
                                          "repldst"};
            for (unsigned f = 0; f < 4; ++f) {
              if (const auto &a = c.addrs[f])
                s += std::string(" ") + field[f] + no(a->negated) + " in " +
                     (v6 ? formatNet6(a->addr.net6, a->addr.mask6)
                         : formatNet(a->addr.net, a->addr.mask));
              if (const auto &pt = c.ports[f])
                s += std::string(" ") + field[f] + "port" + no(pt->negated) +
                     " " + range({pt->lo, pt->hi});
            }
            if (c.status)
              s += " status" + no(c.status->negated) + " & " +
                   hex(c.status->mask);
            return s + " (conntrack lookup, hand over if uncertain)";
          },
          [&](const Match::AddrType &a) {
            std::string s = "addrtype";
            if (a.src)
              s += std::string(" src ") + (a.srcNegated ? "not " : "") + "in " +
                   formatAddrTypes(a.src);
            if (a.dst)
              s += std::string(" dst ") + (a.dstNegated ? "not " : "") + "in " +
                   formatAddrTypes(a.dst);
            return s + (a.limitIface
                            ? " (from the address, else hand over)"
                            : " (from the address or the local table's "
                              "copy, else hand over)");
          },
          [&](const Match::Limit &l) {
            return "limit avg " + std::to_string(l.avg) + "/10000 s burst " +
                   std::to_string(l.burst) +
                   " (XDP's bucket where it decides only what logs, else hand "
                   "over)";
          },
          [&](const Match::Set &st) {
            const IpSet &set = p.sets.at(st.set);
            std::string s = "set " + neg + "\"" + set.name + "\" (" +
                            setTypeName(set.type) + ", " +
                            std::to_string(set.entries.size()) + " entries)";
            for (size_t i = 0; i < st.src.size(); ++i)
              s += std::string(i ? "," : " ") + (st.src[i] ? "src" : "dst");
            if (st.returnNomatch)
              s += " return-nomatch";
            return s;
          },
      },
      m.kind);
}

} // namespace

std::string printRule(const Program &p, const Rule &r, bool v6) {
  std::ostringstream os;
  for (const Match &m : r.matches)
    os << "    match " << printMatch(p, m, v6) << "\n";
  os << "    verdict " << verdictName(r.verdict);
  if (!r.jumpTarget.empty())
    os << " " << r.jumpTarget;
  if (r.verdict == Verdict::Dnat)
    os << " " << formatNatTarget(r.nat);
  if (r.verdict == Verdict::Handover)
    os << " " << r.target << ": " << r.handoverReason;
  if (r.verdict == Verdict::Reject)
    os << " with:" << r.reject.name;
  if (r.verdict == Verdict::Log)
    os << " " << formatLogTarget(r.log);
  os << "\n";
  return os.str();
}

std::string print(const Program &p) {
  std::ostringstream os;
  bool handover = p.mode == Mode::Handover;
  os << "program " << (handover ? "mode=handover " : "")
     << "counters=" << p.numCounters << "\n";
  if (p.hasLog())
    os << "log-lost counter " << p.logLostCounter << "\n";
  for (Family f : {Family::V4, Family::V6})
    if (const std::string &why = p.kernelSourceNat[static_cast<size_t>(f)];
        !why.empty())
      os << "kernel-nat " << familyName(f) << " (hand over translated "
         << "connections at nat PREROUTING): " << why << "\n";
  for (size_t i = 0; i < p.sets.size(); ++i) {
    const IpSet &set = p.sets[i];
    size_t nomatch = 0;
    for (const IpSet::Entry &e : set.entries)
      nomatch += e.nomatch;
    os << "set " << i << " \"" << set.name << "\" " << setTypeName(set.type);
    if (set.type == IpSet::Type::BitmapPort)
      os << " range " << set.rangeLo << "-" << set.rangeHi;
    else if (set.type == IpSet::Type::ListSet) {
      os << " members";
      for (size_t m = 0; m < set.members.size(); ++m)
        os << (m ? "," : " ") << p.sets.at(set.members[m]).name;
    } else
      os << " " << familyName(set.family);
    if (set.type == IpSet::Type::HashIp)
      os << " netmask " << unsigned(set.netmask);
    os << " entries " << set.entries.size() << " nomatch " << nomatch << "\n";
  }
  for (size_t i = 0; i < p.ifacePatterns.size(); ++i)
    os << "iface bit " << i << " \"" << p.ifacePatterns[i] << "\"\n";
  for (const Chain &c : p.chains) {
    const char *fam = c.family == Family::V6 ? "ip6 " : "";
    if (c.user)
      os << "chain " << fam << tableName(c.table) << " " << c.name << " user\n";
    else
      os << "chain " << fam << tableName(c.table) << " " << c.name << " hook "
         << hookChainName(c.hook) << " policy " << verdictName(c.policy)
         << " counter " << c.policyCounter << "\n";
    for (const Rule &r : c.rules) {
      os << "  rule counter " << r.counter << "  # " << r.text << "\n";
      os << printRule(p, r, c.family == Family::V6);
    }
  }
  for (const KernelOnlyRule &k : p.kernelOnly)
    os << "kernel-only  # " << k.text << "\n  reason " << k.reason << "\n";
  return os.str();
}

} // namespace r2x::ir
