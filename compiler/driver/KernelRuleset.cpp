//===- compiler/driver/KernelRuleset.cpp - run the save commands ---------===//
//
/// \file
/// See KernelRuleset.h: runs iptables-{nft,legacy}-save and the ip6tables
/// ones, and picks the back end that holds rules.
//===----------------------------------------------------------------------===//
#include "compiler/driver/KernelRuleset.h"

#include "runtime/Loader.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <linux/netfilter.h>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace r2x::driver {
namespace {

constexpr int kExitKernel = 2;

const SaveCommand kSaveCommands[] = {
    {"nft", ir::Family::V4, "iptables-nft-save", "R2X_IPTABLES_NFT_SAVE"},
    {"nft", ir::Family::V6, "ip6tables-nft-save", "R2X_IP6TABLES_NFT_SAVE"},
    {"legacy", ir::Family::V4, "iptables-legacy-save",
     "R2X_IPTABLES_LEGACY_SAVE"},
    {"legacy", ir::Family::V6, "ip6tables-legacy-save",
     "R2X_IP6TABLES_LEGACY_SAVE"},
};

struct CommandResult {
  bool found = true; ///< false: the program does not exist
  int status = 0;    ///< as from waitpid()
  std::string out, err;
};

/// Runs `path` without arguments and collects its output. The child gets
/// an empty signal mask: --follow blocks SIGTERM and SIGINT for itself,
/// and a blocked mask would otherwise be inherited through exec.
CommandResult runCommand(const std::string &path,
                         const std::vector<std::string> &args) {
  int outPipe[2], errPipe[2];
  if (pipe(outPipe) != 0)
    throw runtime::LoadError("cannot run " + path + ": " +
                             std::strerror(errno));
  if (pipe(errPipe) != 0) {
    close(outPipe[0]);
    close(outPipe[1]);
    throw runtime::LoadError("cannot run " + path + ": " +
                             std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, outPipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, errPipe[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, outPipe[0]);
  posix_spawn_file_actions_addclose(&actions, errPipe[0]);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigemptyset(&all);
  sigaddset(&all, SIGTERM);
  sigaddset(&all, SIGINT);
  sigaddset(&all, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char *> argv = {const_cast<char *>(path.c_str())};
  for (const std::string &a : args)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int rc =
      posix_spawnp(&pid, path.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(outPipe[1]);
  close(errPipe[1]);
  CommandResult r;
  if (rc != 0) {
    close(outPipe[0]);
    close(errPipe[0]);
    if (rc == ENOENT) {
      r.found = false;
      return r;
    }
    throw runtime::LoadError("cannot run " + path + ": " + std::strerror(rc));
  }
  pollfd fds[2] = {{outPipe[0], POLLIN, 0}, {errPipe[0], POLLIN, 0}};
  std::string *sinks[2] = {&r.out, &r.err};
  int open = 2;
  while (open > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0)
        continue;
      char buf[65536];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  for (pollfd &f : fds)
    if (f.fd >= 0)
      close(f.fd);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

std::string describeStatus(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "failed";
}

/// The lines of `text`, each without its newline.
std::vector<std::string> lines(const std::string &text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

/// The text as the rules mean it: comment lines (which carry the time the
/// save ran) and chain counters (which grow with traffic) blanked, so two
/// reads of an unchanged ruleset compare equal. Line numbers are kept.
std::string normalize(const std::string &text) {
  std::string out;
  for (std::string l : lines(text)) {
    if (!l.empty() && l[0] == '#')
      l.clear();
    else if (!l.empty() && l[0] == ':' && l.back() == ']') {
      size_t open = l.rfind(" [");
      if (open != std::string::npos)
        l.erase(open);
    } else if (!l.empty() && l[0] == '[') {
      size_t close = l.find("] ");
      if (close != std::string::npos)
        l.erase(0, close + 2); // `-c`: a rule's counters
    }
    out += l;
    out += '\n';
  }
  return out;
}

/// Whether a save text holds rules: a rule, a user chain, or a built-in
/// chain whose policy is not ACCEPT. (Tables with ACCEPT policies and no
/// rules are what a back end that is not in use prints, if anything.)
bool holdsRules(const std::string &text) {
  for (const std::string &l : lines(text)) {
    if (l.rfind("-A ", 0) == 0 || l.rfind("-I ", 0) == 0 ||
        (l.rfind("[", 0) == 0 && l.find("] -A ") != std::string::npos))
      return true;
    if (!l.empty() && l[0] == ':') {
      std::istringstream words(l);
      std::string chain, policy;
      words >> chain >> policy;
      if (policy != "ACCEPT")
        return true;
    }
  }
  return false;
}

} // namespace

Snapshot readKernelRuleset(bool counters) {
  std::vector<SaveText> all;
  bool anyInstalled = false;
  for (const SaveCommand &c : kSaveCommands) {
    const char *env = std::getenv(c.envVar);
    std::string path = env && *env ? env : c.program;
    CommandResult r = runCommand(path, counters ? std::vector<std::string>{"-c"}
                                                : std::vector<std::string>{});
    SaveText t{&c, std::move(r.out)};
    if (!r.found) {
      all.push_back(std::move(t));
      continue;
    }
    anyInstalled = true;
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
      throw Failure{kExitKernel,
                    "rule2xdp: error: cannot read the kernel's ruleset: " +
                        path + " " + describeStatus(r.status) +
                        (r.err.empty() ? "\n" : ":\n" + r.err) +
                        (r.err.empty() || r.err.back() == '\n' ? "" : "\n")};
    for (const std::string &l : lines(t.text))
      if (l.rfind("# Table", 0) == 0 && l.find("incompatible") != l.npos)
        throw Failure{kExitKernel,
                      "rule2xdp: error: cannot read the kernel's ruleset: " +
                          path + " says `" + l.substr(2) + "'\n"};
    all.push_back(std::move(t));
  }
  if (!anyInstalled)
    throw Failure{kExitKernel,
                  "rule2xdp: error: cannot read the kernel's ruleset: none "
                  "of iptables-nft-save, iptables-legacy-save, "
                  "ip6tables-nft-save, ip6tables-legacy-save is installed\n"};
  auto backendHolds = [&](const std::string &b) {
    for (const SaveText &t : all)
      if (t.command->backend == b && holdsRules(t.text))
        return true;
    return false;
  };
  bool nft = backendHolds("nft"), legacy = backendHolds("legacy");
  if (nft && legacy)
    throw Failure{kExitKernel,
                  "rule2xdp: error: both iptables back ends hold rules "
                  "(nft: iptables-nft-save, legacy: iptables-legacy-save); "
                  "the kernel runs both, which rule2xdp does not compile "
                  "together: move the rules to one back end\n"};
  Snapshot s;
  s.backend = nft ? "nft" : legacy ? "legacy" : "none";
  for (SaveText &t : all) {
    if (t.command->backend != (legacy ? std::string("legacy") : "nft"))
      continue;
    s.key += t.command->program;
    s.key += '\n';
    s.key += normalize(t.text);
    s.texts.push_back(std::move(t));
  }
  s.key = s.backend + '\n' + s.key;
  return s;
}

} // namespace r2x::driver

namespace r2x::driver {

std::vector<std::string>
otherNftChains(const std::vector<runtime::NftBaseChain> &chains,
               const std::vector<std::string> &ifaces) {
  static const char *const iptablesTables[] = {"filter", "mangle", "raw", "nat",
                                               "security"};
  std::vector<std::string> out;
  for (const runtime::NftBaseChain &c : chains) {
    bool iptables =
        (c.family == NFPROTO_IPV4 || c.family == NFPROTO_IPV6) &&
        std::find(std::begin(iptablesTables), std::end(iptablesTables),
                  c.table) != std::end(iptablesTables);
    if (iptables || c.family == NFPROTO_ARP || c.dormant ||
        (!c.hasRules && !c.policyDrop))
      continue;
    bool ingress =
        (c.family == NFPROTO_NETDEV && c.hook == NF_NETDEV_INGRESS) ||
        (c.family == NFPROTO_INET && c.hook == NF_INET_INGRESS);
    if (ingress && std::none_of(c.devices.begin(), c.devices.end(),
                                [&](const std::string &d) {
                                  return std::find(ifaces.begin(), ifaces.end(),
                                                   d) != ifaces.end();
                                }))
      continue;
    std::string what = runtime::nftFamilyName(c.family) + " " + c.table + " " +
                       c.name + " (hook " +
                       runtime::nftHookName(c.family, c.hook);
    for (const std::string &d : c.devices)
      what += " " + d;
    what += ", priority " + std::to_string(c.priority);
    what += c.hasRules ? ", with rules" : ", no rules";
    if (c.policyDrop)
      what += ", policy drop";
    out.push_back(what + ")");
  }
  return out;
}

} // namespace r2x::driver
