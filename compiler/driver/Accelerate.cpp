//===- compiler/driver/Accelerate.cpp - --accelerate and --follow ---------===//
//
/// \file
/// See Accelerate.h. Three steps, each its own function: read the kernel's
/// ruleset (run the save commands, pick the back end), compile it in
/// hand-over mode, load it; --follow repeats them when the ruleset changes.
//===----------------------------------------------------------------------===//
#include "compiler/driver/Accelerate.h"

#include "compiler/backend/Backend.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/Handover.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <optional>
#include <poll.h>
#include <spawn.h>
#include <sstream>
#include <string>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

extern char **environ;

namespace r2x::driver {
namespace {

constexpr int kExitOk = 0, kExitInput = 1, kExitKernel = 2, kExitInternal = 3;

/// Why an attempt failed: the exit status and the complete stderr text.
struct Failure {
  int status;
  std::string text;
};

/// One save command: which back end and family it reads, and the
/// environment variable that may name it instead of PATH.
struct SaveCommand {
  const char *backend; ///< "nft" or "legacy"
  ir::Family family;
  const char *program;
  const char *envVar;
};

const SaveCommand kSaveCommands[] = {
    {"nft", ir::Family::V4, "iptables-nft-save", "R2X_IPTABLES_NFT_SAVE"},
    {"nft", ir::Family::V6, "ip6tables-nft-save", "R2X_IP6TABLES_NFT_SAVE"},
    {"legacy", ir::Family::V4, "iptables-legacy-save",
     "R2X_IPTABLES_LEGACY_SAVE"},
    {"legacy", ir::Family::V6, "ip6tables-legacy-save",
     "R2X_IP6TABLES_LEGACY_SAVE"},
};

/// What one save command printed (nothing if it is not installed).
struct SaveText {
  const SaveCommand *command;
  std::string text;
};

/// The kernel's ruleset as read now: the texts of the chosen back end and
/// a key that changes exactly when the rules do.
struct Snapshot {
  std::string backend; ///< "nft", "legacy", or "none" (no rules anywhere)
  std::vector<SaveText> texts;
  std::string key;
};

struct CommandResult {
  bool found = true; ///< false: the program does not exist
  int status = 0;    ///< as from waitpid()
  std::string out, err;
};

/// Runs `path` without arguments and collects its output. The child gets
/// an empty signal mask: --follow blocks SIGTERM and SIGINT for itself,
/// and a blocked mask would otherwise be inherited through exec.
CommandResult runCommand(const std::string &path) {
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
  std::vector<char *> argv = {const_cast<char *>(path.c_str()), nullptr};
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

/// Runs the four save commands and picks the back end that holds rules.
/// Throws Failure when a command fails, a back end's table cannot be shown
/// by iptables, or both back ends hold rules.
Snapshot readKernelRuleset() {
  std::vector<SaveText> all;
  bool anyInstalled = false;
  for (const SaveCommand &c : kSaveCommands) {
    const char *env = std::getenv(c.envVar);
    std::string path = env && *env ? env : c.program;
    CommandResult r = runCommand(path);
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

/// The object and listing of a snapshot, compiled as `-f FILE
/// --pass-unsupported` compiles a file. Throws Failure.
struct Compiled {
  std::string object;
  std::string listing;
};

Compiled compileSnapshot(const Snapshot &s, const classify::Options &cls) {
  frontend::SourceManager sm;
  try {
    ir::Program program;
    program.mode = ir::Mode::Handover;
    std::vector<frontend::Warning> warnings;
    std::vector<frontend::Diagnostic> errors;
    for (const SaveText &t : s.texts) {
      if (t.text.empty())
        continue;
      frontend::parseSaveFile(t.command->program, t.text, sm, program, warnings,
                              t.command->family, &errors);
    }
    if (!errors.empty()) {
      std::string text;
      for (const frontend::Diagnostic &d : errors)
        text += frontend::format(sm, frontend::Severity::Error, d.pos, d.what(),
                                 d.length);
      text += "rule2xdp: " + std::to_string(errors.size()) +
              (errors.size() == 1 ? " error" : " errors") +
              " in the kernel's ruleset, nothing loaded\n";
      throw Failure{kExitInput, text};
    }
    frontend::checkChainGraph(program);
    Compiled c;
    for (const frontend::Warning &w : warnings)
      c.listing += frontend::format(sm, frontend::Severity::Warning, w.pos,
                                    w.message, w.length);
    frontend::finishHandover(program);
    c.listing += frontend::handoverListing(program, sm);
    program.finalize();
    c.object = backend::compile(program, backend::Emit::Obj, cls);
    return c;
  } catch (const frontend::Diagnostic &d) {
    throw Failure{kExitInput, frontend::format(sm, frontend::Severity::Error,
                                               d.pos, d.what(), d.length)};
  } catch (const backend::BackendError &e) {
    throw Failure{kExitInternal,
                  std::string("rule2xdp: internal error: ") + e.what() + "\n"};
  }
}

std::string joined(const std::vector<std::string> &ifaces) {
  std::string out;
  for (const std::string &i : ifaces)
    out += (out.empty() ? "" : ",") + i;
  return out;
}

std::string describeBackend(const Snapshot &s) {
  if (s.backend == "none")
    return "no rules in either iptables back end";
  return "iptables and ip6tables, " + s.backend + " back end";
}

/// The last ruleset compiled, by its key: a load that failed (the
/// interface was gone, say) is retried by --follow with the same object,
/// neither compiled nor listed again.
struct CompileCache {
  std::string key;
  Compiled compiled;
};

/// Compiles (unless `cache` holds this snapshot already; then the listing
/// is not printed again) and loads a snapshot; prints the listing on
/// stdout. Returns the failure instead of throwing it.
std::optional<Failure> accelerate(const AccelerateRequest &req,
                                  const Snapshot &s, const char *what,
                                  CompileCache &cache) {
  try {
    if (cache.key.empty() || cache.key != s.key) {
      cache.key.clear();
      cache.compiled = compileSnapshot(s, req.classifier);
      cache.key = s.key;
      std::cout << "rule2xdp: the kernel's ruleset (" << describeBackend(s)
                << "):\n"
                << cache.compiled.listing << std::flush;
    }
    const std::string &obj = cache.compiled.object;
    runtime::load(req.ifaces, req.loadOptions,
                  std::vector<uint8_t>(obj.begin(), obj.end()));
    std::cout << "rule2xdp: " << what << " " << joined(req.ifaces) << "\n"
              << std::flush;
    return std::nullopt;
  } catch (const Failure &f) {
    return f;
  } catch (const runtime::LoadError &e) {
    std::string text = std::string("rule2xdp: error: ") + e.what() + "\n";
    if (!e.log.empty())
      text += e.log + (e.log.back() == '\n' ? "" : "\n");
    return Failure{kExitKernel, text};
  } catch (const std::exception &e) {
    return Failure{kExitInput,
                   std::string("rule2xdp: error: ") + e.what() + "\n"};
  }
}

std::optional<Failure> readAndAccelerate(const AccelerateRequest &req,
                                         Snapshot &s, const char *what,
                                         CompileCache &cache) {
  try {
    s = readKernelRuleset();
  } catch (const Failure &f) {
    return f;
  } catch (const runtime::LoadError &e) {
    return Failure{kExitKernel,
                   std::string("rule2xdp: error: ") + e.what() + "\n"};
  }
  return accelerate(req, s, what, cache);
}

/// A netlink socket in nftables' multicast group: the kernel sends to it
/// after every nftables transaction (iptables-nft's changes too), so
/// --follow need not wait for its next periodic read. -1 if the kernel
/// refuses (then the periodic read alone sees changes).
int openNftEvents() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  NETLINK_NETFILTER);
  if (fd < 0)
    return -1;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  int group = NFNLGRP_NFTABLES;
  if (bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0 ||
      setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group,
                 sizeof group) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/// Reads every event queued on `fd`. Their content does not matter: any
/// event (or a lost one, ENOBUFS) means "read the ruleset again".
void drainEvents(int fd) {
  char buf[65536];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno != EINTR && errno != ENOBUFS)
      return;
  }
}

/// --follow: the loop after the first load. Returns on SIGTERM or SIGINT
/// (blocked by runAccelerate(), read here through a signalfd).
int follow(const AccelerateRequest &req, std::string lastKey,
           CompileCache &cache) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  int sigFd = signalfd(-1, &stop, SFD_CLOEXEC);
  if (sigFd < 0) {
    std::cerr << "rule2xdp: error: signalfd: " << std::strerror(errno) << "\n";
    return kExitInternal;
  }
  int nftFd = openNftEvents();
  std::cout << "rule2xdp: following the kernel's ruleset (read every "
            << kFollowPeriodMs << " ms"
            << (nftFd >= 0 ? ", and at once on nftables change events" : "")
            << "); SIGTERM or SIGINT ends this and leaves the program "
               "attached\n"
            << std::flush;
  std::string lastFailure;
  while (true) {
    pollfd fds[2] = {{sigFd, POLLIN, 0}, {nftFd, POLLIN, 0}};
    int ready = poll(fds, nftFd >= 0 ? 2 : 1, kFollowPeriodMs);
    if (ready < 0 && errno != EINTR) {
      std::cerr << "rule2xdp: error: poll: " << std::strerror(errno) << "\n";
      return kExitInternal;
    }
    if (ready > 0 && (fds[1].revents & POLLIN))
      drainEvents(nftFd);
    signalfd_siginfo info{};
    if (ready > 0 && (fds[0].revents & POLLIN) &&
        read(sigFd, &info, sizeof info) == sizeof info) {
      int sig = static_cast<int>(info.ssi_signo);
      std::cout << "rule2xdp: " << strsignal(sig)
                << ": stopped following; the program stays attached to "
                << joined(req.ifaces) << " (rule2xdp --unload IFACE removes "
                << "it)\n"
                << std::flush;
      close(sigFd);
      if (nftFd >= 0)
        close(nftFd);
      return kExitOk;
    }
    Snapshot s;
    std::optional<Failure> f;
    try {
      s = readKernelRuleset();
    } catch (const Failure &e) {
      f = e;
    } catch (const runtime::LoadError &e) {
      f = Failure{kExitKernel,
                  std::string("rule2xdp: error: ") + e.what() + "\n"};
    }
    if (!f && s.key == lastKey) {
      lastFailure.clear(); // readable again, and what is loaded
      continue;
    }
    if (!f)
      f = accelerate(req, s, "the ruleset changed: replaced the program on",
                     cache);
    if (!f) {
      lastKey = s.key;
      lastFailure.clear();
      continue;
    }
    // A ruleset that does not compile is not tried again until it changes;
    // one that cannot be read or loaded is (the cause may pass), but its
    // message is printed once.
    if (f->status != kExitKernel)
      lastKey = s.key;
    if (f->text != lastFailure)
      std::cerr << f->text
                << "rule2xdp: the last good program stays attached to "
                << joined(req.ifaces) << "\n"
                << std::flush;
    lastFailure = f->text;
  }
}

} // namespace

int runAccelerate(const AccelerateRequest &req) {
  // Blocked before the first load, so a SIGTERM that arrives during it is
  // taken by follow() afterwards instead of ending the process halfway.
  if (req.follow) {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, nullptr);
  }
  Snapshot s;
  CompileCache cache;
  if (std::optional<Failure> f =
          readAndAccelerate(req, s, "loaded on", cache)) {
    std::cerr << f->text << std::flush;
    return f->status;
  }
  if (!req.follow)
    return kExitOk;
  return follow(req, s.key, cache);
}

} // namespace r2x::driver
