//===- test/packet/Ruleset.cpp - a whole ruleset's meaning, for tests ----===//
//
/// \file
/// See Ruleset.h. The traversal follows ipt_do_table() (net/ipv4/netfilter/
/// ip_tables.c): a jump pushes the next rule on a stack, a goto does not
/// (XT_CONTINUE with IPT_F_GOTO), RETURN or the end of a user chain pops it,
/// and with an empty stack the chain's "underflow" entry, the policy rule
/// with its own counters, decides.
//===----------------------------------------------------------------------===//
#include "test/packet/Ruleset.h"

#include "test/packet/Frame.h"

#include <sstream>
#include <stdexcept>

namespace r2x::test {

namespace {

std::vector<std::string> words(const std::string &line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;)
    out.push_back(w);
  return out;
}

bool isCounters(const std::string &s) {
  if (s.size() < 5 || s.front() != '[' || s.back() != ']')
    return false;
  auto colon = s.find(':');
  return colon != std::string::npos && colon > 1 && colon + 2 < s.size() &&
         s.find_first_not_of("0123456789:", 1) == s.size() - 1;
}

std::string join(const std::vector<std::string> &w, size_t from) {
  std::string s;
  for (size_t i = from; i < w.size(); ++i)
    s += (i > from ? " " : "") + w[i];
  return s;
}

struct Builtin {
  const char *name;
  bool egress;
};

std::vector<Builtin> builtins(const std::string &table) {
  if (table == "raw")
    return {{"PREROUTING", false}, {"OUTPUT", true}};
  if (table == "mangle")
    return {{"PREROUTING", false},
            {"INPUT", false},
            {"FORWARD", false},
            {"OUTPUT", true},
            {"POSTROUTING", true}};
  if (table == "filter")
    return {{"INPUT", false}, {"FORWARD", false}, {"OUTPUT", true}};
  return {};
}

std::string formatNet(uint32_t net, uint32_t mask) {
  if (mask == 0xffffffffu)
    return ipv4Str(net);
  uint32_t inv = ~mask;
  if ((inv & (inv + 1)) == 0) {
    int len = 0;
    for (uint32_t m = mask; m & 0x80000000u; m <<= 1)
      ++len;
    return ipv4Str(net) + "/" + std::to_string(len);
  }
  return ipv4Str(net) + "/" + ipv4Str(mask);
}

std::string addrColumn(const Rule::Addr &a) {
  if (!a.set)
    return "0.0.0.0/0";
  return (a.inv ? "!" : "") + formatNet(a.net, a.mask);
}

std::string portText(const char *one, const char *many, const Rule::Ports &p) {
  std::string neg = p.inv ? "!" : "";
  if (p.lo == p.hi)
    return std::string(one) + ":" + neg + std::to_string(p.lo);
  return std::string(many) + ":" + neg + std::to_string(p.lo) + ":" +
         std::to_string(p.hi);
}

} // namespace

int Ruleset::find(const std::string &table, const std::string &name) const {
  for (size_t i = 0; i < chains.size(); ++i)
    if (chains[i].table == table && chains[i].name == name)
      return int(i);
  return -1;
}

Ruleset parseRuleset(const std::string &text) {
  Ruleset rs;
  rs.text = text;
  std::istringstream in(text);
  std::string line, table;
  bool open = false, ignoredTable = false;
  unsigned lineNo = 0;
  auto bad = [&](const std::string &why) {
    throw std::invalid_argument("ruleset line " + std::to_string(lineNo) +
                                ": " + why + ": " + line);
  };
  while (std::getline(in, line)) {
    ++lineNo;
    std::vector<std::string> w = words(line);
    if (w.empty() || w[0][0] == '#')
      continue;
    if (w[0][0] == '*') {
      if (open)
        bad("table not committed");
      table = w[0].substr(1);
      open = true;
      ignoredTable = table == "nat" || table == "security";
      if (!ignoredTable && table != "raw" && table != "mangle" &&
          table != "filter")
        bad("table the model does not know");
      // Loading a table creates all its built-in chains, policy ACCEPT.
      for (const Builtin &b : builtins(table))
        if (rs.find(table, b.name) < 0)
          rs.chains.push_back({table, b.name, false, b.egress, "ACCEPT", {}});
      continue;
    }
    if (!open)
      bad("outside a table");
    if (w[0] == "COMMIT") {
      open = false;
      continue;
    }
    if (w[0][0] == ':') {
      std::string name = w[0].substr(1);
      if (w.size() < 2)
        bad("chain line without policy");
      if (ignoredTable) {
        if (w[1] != "ACCEPT" && w[1] != "-")
          bad("a table the compiler does not compile must stay empty");
        continue;
      }
      if (w[1] == "-") {
        if (rs.find(table, name) >= 0)
          bad("chain exists");
        rs.chains.push_back({table, name, true, false, "-", {}});
      } else {
        int ci = rs.find(table, name);
        if (ci < 0 || rs.chains[size_t(ci)].user)
          bad("policy for a chain that is not built in");
        rs.chains[size_t(ci)].policy = w[1];
      }
      continue;
    }
    size_t from = isCounters(w[0]) ? 1 : 0;
    if (from >= w.size())
      bad("counters without a command");
    if (ignoredTable)
      bad("a rule in a table the compiler does not compile");
    const std::string &cmd = w[from];
    if (cmd == "-N") {
      if (w.size() != from + 2 || rs.find(table, w[from + 1]) >= 0)
        bad("bad -N");
      rs.chains.push_back({table, w[from + 1], true, false, "-", {}});
      continue;
    }
    if (cmd == "-P") {
      if (w.size() != from + 3)
        bad("bad -P");
      int ci = rs.find(table, w[from + 1]);
      if (ci < 0 || rs.chains[size_t(ci)].user ||
          (w[from + 2] != "ACCEPT" && w[from + 2] != "DROP"))
        bad("bad -P");
      rs.chains[size_t(ci)].policy = w[from + 2];
      continue;
    }
    if (cmd != "-A" && cmd != "-I")
      bad("command the model does not know");
    RsRule r;
    r.line = lineNo;
    r.m = parseRule(join(w, from), false);
    r.m.table = table;
    int ci = rs.find(table, r.m.chain);
    if (ci < 0)
      bad("no such chain");
    const std::string &t = r.m.target;
    if (r.m.isGoto) {
      if (rs.find(table, t) < 0 || !rs.chains[size_t(rs.find(table, t))].user)
        bad("-g needs a user chain");
      r.target = RsRule::Target::Goto;
      r.callee = t;
    } else if (t.empty()) {
      r.target = RsRule::Target::None;
    } else if (t == "ACCEPT") {
      r.target = RsRule::Target::Accept;
    } else if (t == "DROP") {
      r.target = RsRule::Target::Drop;
    } else if (t == "RETURN") {
      r.target = RsRule::Target::Return;
    } else if (rs.find(table, t) >= 0 &&
               rs.chains[size_t(rs.find(table, t))].user) {
      r.target = RsRule::Target::Jump;
      r.callee = t;
    } else {
      bad("target the model does not know");
    }
    auto &rules = rs.chains[size_t(ci)].rules;
    size_t at = rules.size();
    if (r.m.command == "-I") {
      at = 0;
      if (r.m.insertAt) {
        if (r.m.insertAt > rules.size() + 1)
          bad("-I position past the end");
        at = r.m.insertAt - 1;
      }
    }
    rules.insert(rules.begin() + long(at), std::move(r));
  }
  if (open)
    throw std::invalid_argument("ruleset: table " + table + " not committed");
  return rs;
}

unsigned slotOfLabel(const Ruleset &rs, const SlotMap &slots,
                     const std::string &label) {
  std::string table = "filter", rest = label;
  if (auto colon = rest.find(':'); colon != std::string::npos) {
    table = rest.substr(0, colon);
    rest = rest.substr(colon + 1);
  }
  auto slash = rest.find('/');
  if (slash == std::string::npos)
    throw std::invalid_argument("label without '/': " + label);
  int ci = rs.find(table, rest.substr(0, slash));
  if (ci < 0)
    throw std::invalid_argument("label names no chain: " + label);
  std::string what = rest.substr(slash + 1);
  if (what == "policy") {
    if (slots.policy[size_t(ci)] < 0)
      throw std::invalid_argument("label: chain has no policy: " + label);
    return unsigned(slots.policy[size_t(ci)]);
  }
  size_t n = std::stoul(what);
  if (n < 1 || n > slots.rule[size_t(ci)].size())
    throw std::invalid_argument("label names no rule: " + label);
  return slots.rule[size_t(ci)][n - 1];
}

namespace {

class Walker {
public:
  Walker(const Ruleset &rs, const SlotMap &slots, const Parsed &p,
         const std::optional<std::string> &ifname, Expected &e)
      : rs_(rs), slots_(slots), p_(p), ifname_(ifname), e_(e) {}

  enum class Flow { Accept, Drop, Return };

  /// A built-in chain: its rules, then (on RETURN or at the end) its
  /// policy. Returns Accept or Drop.
  Flow builtin(int ci) {
    const RsChain &c = rs_.chains[size_t(ci)];
    Flow f = chain(ci, 0);
    if (f != Flow::Return)
      return f;
    if (hot)
      return Flow::Drop;
    e_.trace += c.name + " policy " + c.policy + "; ";
    count(unsigned(slots_.policy[size_t(ci)]));
    return c.policy == "DROP" ? Flow::Drop : Flow::Accept;
  }

  bool hot = false;

private:
  void count(unsigned slot) {
    auto &c = e_.counters[slot];
    c.first += 1;
    c.second += p_.totLen;
  }

  Flow chain(int ci, unsigned depth) {
    if (depth > 32)
      throw std::logic_error("test bug: the model nests deeper than 32 "
                             "chains (a loop in a test ruleset?)");
    const RsChain &c = rs_.chains[size_t(ci)];
    for (size_t ri = 0; ri < c.rules.size(); ++ri) {
      const RsRule &r = c.rules[ri];
      RuleResult res = evalRule(r.m, p_, ifname_);
      if (res == RuleResult::NoMatch)
        continue;
      std::string where = c.name + "/" + std::to_string(ri + 1);
      if (res == RuleResult::Hotdrop) {
        e_.trace += where + " hotdrop; ";
        hot = true;
        return Flow::Drop;
      }
      count(slots_.rule[size_t(ci)][ri]);
      switch (r.target) {
      case RsRule::Target::Accept:
        e_.trace += where + " ACCEPT; ";
        return Flow::Accept;
      case RsRule::Target::Drop:
        e_.trace += where + " DROP; ";
        return Flow::Drop;
      case RsRule::Target::None:
        e_.trace += where + " counts; ";
        continue;
      case RsRule::Target::Return:
        e_.trace += where + " RETURN; ";
        return Flow::Return;
      case RsRule::Target::Jump:
      case RsRule::Target::Goto: {
        bool jump = r.target == RsRule::Target::Jump;
        e_.trace += where + (jump ? " jump " : " goto ") + r.callee + "; ";
        Flow f = chain(rs_.find(c.table, r.callee), depth + 1);
        if (hot)
          return Flow::Drop;
        if (f != Flow::Return)
          return f;
        if (!jump) {
          // No stack frame was pushed: the callee's return is ours.
          e_.trace += r.callee + " returns past " + c.name + "; ";
          return Flow::Return;
        }
        e_.trace += r.callee + " returns to " + where + "; ";
        continue;
      }
      }
    }
    if (c.user)
      e_.trace += c.name + " falls off; ";
    return Flow::Return;
  }

  const Ruleset &rs_;
  const SlotMap &slots_;
  const Parsed &p_;
  const std::optional<std::string> &ifname_;
  Expected &e_;
};

} // namespace

Expected evalRuleset(const Ruleset &rs, const SlotMap &slots, const Parsed &p,
                     std::optional<FilterChain> route,
                     const std::optional<std::string> &ifname) {
  Expected e;
  e.action = kPass;
  if (!p.ipv4) {
    e.trace = "ignored: " + p.why;
    return e;
  }
  Walker w(rs, slots, p, ifname, e);
  // One hook: its tables in netfilter's priority order (raw -300, mangle
  // -150, filter 0), each its own traversal.
  auto hook = [&](const char *name) {
    for (const char *table : {"raw", "mangle", "filter"}) {
      int ci = rs.find(table, name);
      if (ci < 0 || rs.chains[size_t(ci)].egress)
        continue; // the table is not loaded, or has no such chain
      e.trace += std::string(table) + " " + name + ": ";
      if (w.builtin(ci) == Walker::Flow::Drop) {
        e.action = kDrop;
        return false;
      }
    }
    return true;
  };
  if (!hook("PREROUTING"))
    return e;
  if (!route) {
    e.trace += "routing: left to the kernel (TTL expires); ";
    return e;
  }
  // ip_local_deliver() reassembles before the LOCAL_IN hook (mangle and
  // filter INPUT alike).
  if (*route == FilterChain::Input && p.fragOff != 0) {
    e.trace += "INPUT: non-first fragment, left to reassembly; ";
    return e;
  }
  hook(*route == FilterChain::Input ? "INPUT" : "FORWARD");
  return e;
}

ListingColumns listingColumns(const RsRule &r) {
  ListingColumns c;
  const Rule &m = r.m;
  switch (r.target) {
  case RsRule::Target::Accept:
    c.target = "ACCEPT";
    break;
  case RsRule::Target::Drop:
    c.target = "DROP";
    break;
  case RsRule::Target::Return:
    c.target = "RETURN";
    break;
  case RsRule::Target::None:
    break;
  case RsRule::Target::Jump:
  case RsRule::Target::Goto:
    c.target = r.callee;
    break;
  }
  c.prot = m.protoSet && m.proto != 0
               ? (m.protoInv ? "!" : "") + std::to_string(m.proto)
               : "0";
  c.in = m.in.set ? (m.in.inv ? "!" : "") + m.in.pattern : "*";
  c.source = addrColumn(m.src);
  c.destination = addrColumn(m.dst);
  if (m.sport.set || m.dport.set) {
    c.extra = m.proto == 6 ? "tcp" : "udp";
    if (m.sport.set)
      c.extra += " " + portText("spt", "spts", m.sport);
    if (m.dport.set)
      c.extra += " " + portText("dpt", "dpts", m.dport);
  }
  if (r.target == RsRule::Target::Goto)
    c.extra = c.extra.empty() ? "[goto]" : "[goto] " + c.extra;
  return c;
}

} // namespace r2x::test
