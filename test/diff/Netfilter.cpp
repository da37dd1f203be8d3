//===- test/diff/Netfilter.cpp - the kernel side: iptables back ends ------===//
#include "test/diff/Netfilter.h"

#include "test/diff/Process.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace r2x::diff {

const char *backendName(Backend b, Family f) {
  if (f == Family::V6)
    return b == Backend::Legacy ? "ip6tables-legacy" : "ip6tables-nft";
  return b == Backend::Legacy ? "iptables-legacy" : "iptables-nft";
}

namespace {

std::string failure(const std::vector<std::string> &argv,
                    const ProcessResult &r) {
  return "`" + joinWords(argv) + "` failed (exit " + std::to_string(r.status) +
         "): " + r.out + r.err;
}

std::string tool(Backend b, Family f, const char *suffix = "") {
  return std::string(backendName(b, f)) + suffix;
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

const char *const EmptyTables = "*filter\n"
                                ":INPUT ACCEPT [0:0]\n"
                                ":FORWARD ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n"
                                "COMMIT\n"
                                "*raw\n"
                                ":PREROUTING ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n"
                                "COMMIT\n"
                                "*mangle\n"
                                ":PREROUTING ACCEPT [0:0]\n"
                                ":INPUT ACCEPT [0:0]\n"
                                ":FORWARD ACCEPT [0:0]\n"
                                ":OUTPUT ACCEPT [0:0]\n"
                                ":POSTROUTING ACCEPT [0:0]\n"
                                "COMMIT\n";

} // namespace

Netfilter::Netfilter(const std::string &netnsPath) : netnsPath_(netnsPath) {
  struct stat st;
  if (stat(netnsPath.c_str(), &st) != 0)
    throw std::runtime_error("stat " + netnsPath + ": " + std::strerror(errno));
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
  for (const char *restore :
       {"iptables-legacy-restore", "ip6tables-legacy-restore"}) {
    std::vector<std::string> legacy{restore, "-w"};
    ProcessResult r = run(legacy, EmptyTables);
    if (!r.ok())
      return failure(legacy, r);
  }
  std::vector<std::string> nft{"nft", "flush", "ruleset"};
  ProcessResult r = run(nft);
  if (!r.ok())
    return failure(nft, r);
  // Connection tracking entries outlive the rules that made them: a reply
  // to a connection an earlier ruleset masqueraded is still translated (and
  // forwarded, not delivered) after that ruleset is gone. Each ruleset
  // starts with an empty table, as the kernel's verdict must depend on that
  // ruleset only.
  for (const char *family : {"ipv4", "ipv6"}) {
    std::vector<std::string> flush{"conntrack", "-F", "-f", family};
    ProcessResult c = run(flush);
    if (!c.ok())
      return failure(flush, c);
  }
  return {};
}

std::string Netfilter::restoreSets(const std::string &text) {
  checkNamespace();
  std::vector<std::string> argv{"ipset", "restore", "-exist"};
  ProcessResult r = run(argv, text);
  return r.ok() ? std::string() : "ipset restore failed: " + failure(argv, r);
}

std::string Netfilter::install(Backend b, Family f, const std::string &text,
                               bool &refused) {
  refused = false;
  checkNamespace();
  if (std::string err = reset(); !err.empty())
    return err;
  std::vector<std::string> argv{tool(b, f, "-restore"), "-w"};
  ProcessResult r = run(argv, text);
  if (!r.ok()) {
    refused = true;
    return "iptables-restore refused the ruleset: " + failure(argv, r);
  }
  if (b == Backend::Nft) {
    // The built-in chains the text names must exist as base chains.
    std::istringstream in(text);
    std::string line, table;
    std::map<std::string, std::vector<std::pair<std::string, std::string>>>
        builtins;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] == '*')
        table = line.substr(1);
      else if (line.size() > 1 && line[0] == ':') {
        std::istringstream w(line.substr(1));
        std::string chain, policy;
        w >> chain >> policy;
        if (policy != "-")
          builtins[table].push_back({chain, policy});
      }
    }
    for (const auto &[t, chains] : builtins) {
      std::vector<std::string> list{"nft", "list", "table",
                                    f == Family::V4 ? "ip" : "ip6", t};
      ProcessResult l = run(list);
      for (const auto &[chain, policy] : chains) {
        if (l.ok() && l.out.find("chain " + chain + " {") != std::string::npos)
          continue;
        std::vector<std::string> p{tool(b, f), "-w",  "-t",  t,
                                   "-P",       chain, policy};
        ProcessResult pr = run(p);
        if (!pr.ok())
          return failure(p, pr);
      }
    }
  }
  return {};
}

Counters Netfilter::read(Backend b, Family f) {
  checkNamespace();
  std::vector<std::string> argv{tool(b, f, "-save"), "-c"};
  ProcessResult r = run(argv);
  if (!r.ok())
    throw std::runtime_error(failure(argv, r));
  Counters t;
  t.text = r.out;
  std::istringstream in(r.out);
  std::string line, table;
  std::map<std::string, unsigned> position;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '*') {
      table = line.substr(1);
      position.clear();
    } else if (line.size() > 1 && line[0] == ':') {
      // ":INPUT ACCEPT [1:2]"; a user chain is ":NAME - [0:0]"
      std::istringstream w(line.substr(1));
      std::string chain, policy, count;
      Count c;
      if (!(w >> chain >> policy >> count) || !parseCount(count, c))
        throw std::runtime_error("cannot parse `" + line + "` in:\n" + r.out);
      if (policy != "-")
        t.count[table + ":" + chain + " policy"] = c;
    } else if (!line.empty() && line[0] == '[') {
      // "[1:2] -A INPUT ..."
      std::istringstream w(line);
      std::string count, dashA, chain;
      Count c;
      if (!(w >> count >> dashA >> chain) || dashA != "-A" ||
          !parseCount(count, c))
        throw std::runtime_error("cannot parse `" + line + "` in:\n" + r.out);
      t.count[table + ":" + chain + "#" + std::to_string(++position[chain])] =
          c;
    }
  }
  return t;
}

} // namespace r2x::diff
