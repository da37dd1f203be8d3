//===- test/diff/Netfilter.cpp - the kernel side: iptables back ends ------===//
#include "test/diff/Netfilter.h"

#include "test/diff/Process.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace r2x::diff {

const char *backendName(Backend b) {
  return b == Backend::Legacy ? "iptables-legacy" : "iptables-nft";
}

namespace {

std::string failure(const std::vector<std::string> &argv,
                    const ProcessResult &r) {
  return "`" + joinWords(argv) + "` failed (exit " + std::to_string(r.status) +
         "): " + r.out + r.err;
}

std::string tool(Backend b, const char *suffix = "") {
  return std::string(b == Backend::Legacy ? "iptables-legacy"
                                          : "iptables-nft") +
         suffix;
}

/// "[12:3456]" -> {12, 3456}.
bool parseCount(const std::string &s, Count &c) {
  unsigned long long p = 0, b = 0;
  char close = 0;
  if (std::sscanf(s.c_str(), "[%llu:%llu%c", &p, &b, &close) != 3 ||
      close != ']')
    return false;
  c = {p, b};
  return true;
}

} // namespace

Netfilter::Netfilter(const std::string &netnsPath) : netnsPath_(netnsPath) {
  struct stat st;
  if (stat(netnsPath.c_str(), &st) != 0)
    throw std::runtime_error("stat " + netnsPath + ": " +
                             std::strerror(errno));
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  checkNamespace();
}

void Netfilter::checkNamespace() const {
  struct stat st;
  if (stat("/proc/self/ns/net", &st) != 0 || st.st_dev != dev_ ||
      st.st_ino != ino_)
    throw std::runtime_error("refusing to run iptables: the process is not "
                             "in the test namespace " +
                             netnsPath_);
}

std::string Netfilter::reset() {
  checkNamespace();
  // Legacy: an empty filter and raw table, policies ACCEPT, counters zero.
  const std::string empty = "*filter\n"
                            ":INPUT ACCEPT [0:0]\n"
                            ":FORWARD ACCEPT [0:0]\n"
                            ":OUTPUT ACCEPT [0:0]\n"
                            "COMMIT\n"
                            "*raw\n"
                            ":PREROUTING ACCEPT [0:0]\n"
                            ":OUTPUT ACCEPT [0:0]\n"
                            "COMMIT\n";
  std::vector<std::string> legacy{"iptables-legacy-restore", "-w"};
  ProcessResult r = run(legacy, empty);
  if (!r.ok())
    return failure(legacy, r);
  std::vector<std::string> nft{"nft", "flush", "ruleset"};
  r = run(nft);
  if (!r.ok())
    return failure(nft, r);
  return {};
}

std::string Netfilter::install(Backend b, const std::vector<std::string> &words,
                               const std::string &table,
                               const std::vector<std::string> &chains) {
  checkNamespace();
  if (std::string err = reset(); !err.empty())
    return err;
  if (b == Backend::Nft)
    for (const std::string &chain : chains) {
      std::vector<std::string> argv{tool(b), "-w", "-t", table,
                                    "-P",    chain, "ACCEPT"};
      ProcessResult r = run(argv);
      if (!r.ok())
        return failure(argv, r);
    }
  std::vector<std::string> argv{tool(b), "-w"};
  argv.insert(argv.end(), words.begin(), words.end());
  ProcessResult r = run(argv);
  if (!r.ok())
    return "iptables refused the rule: " + failure(argv, r);

  if (b == Backend::Nft) {
    std::vector<std::string> list{"nft", "list", "table", "ip", table};
    ProcessResult l = run(list);
    if (!l.ok())
      return failure(list, l);
    for (const std::string &chain : chains)
      if (l.out.find("chain " + chain + " {") == std::string::npos)
        return "nf_tables has no chain " + table + " " + chain +
               " after `iptables-nft -P`:\n" + l.out;
  }
  TableCounters now = read(b, table);
  if (now.rules.size() != 1)
    return "expected exactly one rule in table " + table + ", got:\n" +
           now.text;
  for (const std::string &chain : chains)
    if (!now.policy.count(chain))
      return "no chain " + chain + " in:\n" + now.text;
  return {};
}

TableCounters Netfilter::read(Backend b, const std::string &table) {
  checkNamespace();
  std::vector<std::string> argv{tool(b, "-save"), "-c", "-t", table};
  ProcessResult r = run(argv);
  if (!r.ok())
    throw std::runtime_error(failure(argv, r));
  TableCounters t;
  t.text = r.out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 1 && line[0] == ':') {
      // ":INPUT ACCEPT [1:2]"
      std::istringstream f(line.substr(1));
      std::string chain, policy, count;
      Count c;
      if (!(f >> chain >> policy >> count) || !parseCount(count, c))
        throw std::runtime_error("cannot parse `" + line + "` in:\n" + r.out);
      t.policy[chain] = c;
    } else if (!line.empty() && line[0] == '[') {
      // "[1:2] -A INPUT ..."
      std::istringstream f(line);
      std::string count, dashA, chain;
      Count c;
      if (!(f >> count >> dashA >> chain) || dashA != "-A" ||
          !parseCount(count, c))
        throw std::runtime_error("cannot parse `" + line + "` in:\n" + r.out);
      t.rules.emplace_back(chain, c);
    }
  }
  return t;
}

} // namespace r2x::diff
