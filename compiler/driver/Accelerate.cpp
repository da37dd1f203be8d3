//===- compiler/driver/Accelerate.cpp - --accelerate and --follow ---------===//
//
/// \file
/// See Accelerate.h. Three steps, each its own function: read the kernel's
/// ruleset (KernelRuleset.h: run the save commands, pick the back end),
/// compile it in hand-over mode, load it; --follow repeats them when the
/// ruleset changes.
//===----------------------------------------------------------------------===//
#include "compiler/driver/Accelerate.h"

#include "compiler/driver/KernelRuleset.h"

#include "compiler/backend/Backend.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/Handover.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"
#include "runtime/LocalTable.h"

#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace r2x::driver {
namespace {

constexpr int kExitOk = 0, kExitInput = 1, kExitKernel = 2, kExitInternal = 3;

/// The object and listing of a snapshot, compiled as `-f FILE
/// --pass-unsupported` compiles a file. Throws Failure.
struct Compiled {
  std::string object;
  std::string listing;
};

/// backend::compile in a child process. LLVM 19's BPF CO-RE pass keeps
/// globals of the first module it ran on in a static map, so a second
/// module with CO-RE accesses (state matches) in the same process crashed
/// --follow at its first replace. The child compiles, writes the object to a
/// pipe and exits; the long-lived process never runs LLVM twice.
std::string compileIsolated(const ir::Program &program,
                            const classify::Options &cls) {
  int fds[2];
  if (pipe(fds) != 0)
    throw backend::BackendError(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    throw backend::BackendError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    char status = 0;
    try {
      out = backend::compile(program, backend::Emit::Obj, cls);
    } catch (const backend::LimitError &e) {
      status = 2;
      out = e.what();
    } catch (const std::exception &e) {
      status = 1;
      out = e.what();
    }
    bool ok = write(fds[1], &status, 1) == 1;
    for (size_t done = 0; ok && done < out.size();) {
      ssize_t n = write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0 && errno != EINTR)
        ok = false;
      else if (n > 0)
        done += size_t(n);
    }
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n > 0)
      data.append(buf, size_t(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  close(fds[0]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || data.empty())
    throw backend::BackendError(
        WIFSIGNALED(st) ? "the compiler process died of signal " +
                              std::to_string(WTERMSIG(st))
                        : std::string("the compiler process failed"));
  if (data[0] == 2)
    throw backend::LimitError(data.substr(1));
  if (data[0] != 0)
    throw backend::BackendError(data.substr(1));
  return data.substr(1);
}

Compiled compileSnapshot(const Snapshot &s, const classify::Options &cls,
                         const std::string &handAll = {}) {
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
    program.handAll = handAll;
    // Connections an earlier ruleset translated are still rewritten by
    // conntrack at nat PREROUTING: look every packet up there, as for a
    // ruleset with source NAT, until they are gone.
    for (size_t f = 0; f < 2; ++f)
      if (s.translated[f] && program.kernelSourceNat[f].empty())
        program.kernelSourceNat[f] =
            "connections translated under an earlier ruleset, still in "
            "conntrack";
    c.listing += frontend::handoverListing(program, sm);
    program.finalize();
    c.object = compileIsolated(program, cls);
    return c;
  } catch (const frontend::Diagnostic &d) {
    throw Failure{kExitInput, frontend::format(sm, frontend::Severity::Error,
                                               d.pos, d.what(), d.length)};
  } catch (const backend::LimitError &e) {
    throw Failure{kExitInput,
                  std::string("rule2xdp: error: ") + e.what() + "\n"};
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

/// What --accelerate says of the rules it cannot read (Snapshot::others:
/// nftables chains, tc classifiers), up to the reason's end.
std::string describeOthers(const Snapshot &s) {
  std::string list;
  for (const std::string &o : s.others)
    list += (list.empty() ? "" : "; ") + o;
  return "the kernel also judges these packets with rules iptables-save "
         "does not show: " +
         list +
         "; XDP cannot know what they decide or change, so its verdicts "
         "could differ from the kernel's";
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
    // Chains XDP cannot read: one-shot refuses; --follow loads a program
    // that decides nothing (ir::Program::handAll) until they are gone, so
    // no packet is ever decided against them, and the rules' counts are
    // carried through it.
    if (!s.others.empty() && !req.follow)
      throw Failure{kExitKernel, "rule2xdp: error: " + describeOthers(s) +
                                     ": nothing loaded\n"};
    if (cache.key.empty() || cache.key != s.key) {
      cache.key.clear();
      cache.compiled = compileSnapshot(
          s, req.classifier, s.others.empty() ? "" : describeOthers(s));
      cache.key = s.key;
      if (s.others.empty())
        std::cout << "rule2xdp: the kernel's ruleset (" << describeBackend(s)
                  << "):\n"
                  << cache.compiled.listing << std::flush;
      else
        std::cerr << "rule2xdp: " << describeOthers(s)
                  << ": XDP hands every packet to the kernel until they are "
                     "gone\n"
                  << std::flush;
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

/// Whether conntrack holds translated connections, read again when the
/// ruleset changes and, while some are left (they expire), every
/// kRecheckMs; not at every read: a dump of a big table is not cheap.
struct NatWatch {
  static constexpr int kRecheckMs = 5000;
  std::string key; ///< the ruleset it was read for
  std::array<bool, 2> translated{};
  std::chrono::steady_clock::time_point at{};

  const std::array<bool, 2> &refresh(const std::string &rulesetKey) {
    auto now = std::chrono::steady_clock::now();
    if (key.empty() || key != rulesetKey ||
        ((translated[0] || translated[1]) &&
         now - at >= std::chrono::milliseconds(kRecheckMs))) {
      translated = runtime::translatedConnections();
      key = rulesetKey;
      at = now;
    }
    return translated;
  }
};

/// The kernel's ruleset, what else judges the interfaces' packets, and
/// whether conntrack holds translated connections. Throws Failure or
/// runtime::LoadError.
Snapshot readSnapshot(const AccelerateRequest &req, NatWatch &nat) {
  Snapshot s = readKernelRuleset();
  s.others = otherNftChains(runtime::nftBaseChains(), req.ifaces);
  for (const std::string &iface : req.ifaces)
    for (std::string &c : runtime::ingressClassifiers(iface))
      s.others.push_back(std::move(c));
  s.translated = nat.refresh(s.key);
  for (const std::string &o : s.others)
    s.key += "\nnft: " + o;
  for (int f = 0; f < 2; ++f)
    if (s.translated[size_t(f)])
      s.key += f == 0 ? "\ntranslated: ipv4" : "\ntranslated: ipv6";
  return s;
}

std::optional<Failure> readAndAccelerate(const AccelerateRequest &req,
                                         Snapshot &s, const char *what,
                                         CompileCache &cache, NatWatch &nat) {
  try {
    s = readSnapshot(req, nat);
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

/// --follow's copy of the local routing table in the programs that test
/// `-m addrtype` (runtime/LocalTable.h): written after every load and at
/// every change the kernel announces on rtnetlink, its lease renewed at
/// every turn of the loop and revoked when --follow ends. A lease lasts
/// kLocalLeaseMs, so a --follow that stops turning (killed, or busy with a
/// long compile) leaves the tests to the kernel within that time.
class LocalKeeper {
public:
  static constexpr unsigned kLocalLeaseMs = 1000;
  static_assert(kLocalLeaseMs >= 3 * kFollowPeriodMs);

  explicit LocalKeeper(const std::vector<std::string> &ifaces)
      : ifaces_(ifaces), events_(runtime::openLocalTableEvents()) {}
  ~LocalKeeper() {
    runtime::revokeLocalLease(ifaces_);
    if (events_ >= 0)
      close(events_);
  }
  LocalKeeper(const LocalKeeper &) = delete;
  LocalKeeper &operator=(const LocalKeeper &) = delete;

  int events() const { return events_; }

  /// Copies the table into the programs now on the interfaces.
  void write() {
    std::string said;
    try {
      runtime::LocalRefresh r =
          runtime::refreshLocalTable(ifaces_, kLocalLeaseMs);
      leases_ = r.leases;
      if (!r.refused.empty())
        said = "rule2xdp: -m addrtype stays with the kernel: " + r.refused;
      else if (r.programs)
        said = "rule2xdp: -m addrtype decided in XDP from a copy of the "
               "local routing table (" +
               std::to_string(r.entries) +
               " entries), kept current while "
               "this runs";
    } catch (const runtime::LoadError &e) {
      leases_.clear();
      said = std::string("rule2xdp: -m addrtype stays with the kernel: ") +
             e.what();
    }
    if (said != said_ && !said.empty())
      std::cout << said << "\n" << std::flush;
    said_ = said;
  }

  /// At every turn of --follow's loop: the table again if the kernel
  /// announced a change (or cannot announce one), else the lease only.
  void turn(bool changed) {
    if (changed || events_ < 0)
      write();
    else
      runtime::renewLocalLease(leases_, kLocalLeaseMs);
  }

private:
  std::vector<std::string> ifaces_;
  int events_;
  std::vector<uint32_t> leases_;
  std::string said_;
};

/// --follow: the loop after the first load. Returns on SIGTERM or SIGINT
/// (blocked by runAccelerate(), read here through a signalfd).
int follow(const AccelerateRequest &req, std::string lastKey,
           CompileCache &cache, NatWatch &nat) {
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
  LocalKeeper local(req.ifaces);
  local.write();
  std::cout << "rule2xdp: following the kernel's ruleset (read every "
            << kFollowPeriodMs << " ms"
            << (nftFd >= 0 ? ", and at once on nftables change events" : "")
            << "); SIGTERM or SIGINT ends this and leaves the program "
               "attached\n"
            << std::flush;
  std::string lastFailure;
  while (true) {
    // Negative descriptors are ignored by poll().
    pollfd fds[3] = {
        {sigFd, POLLIN, 0}, {nftFd, POLLIN, 0}, {local.events(), POLLIN, 0}};
    int ready = poll(fds, 3, kFollowPeriodMs);
    if (ready < 0 && errno != EINTR) {
      std::cerr << "rule2xdp: error: poll: " << std::strerror(errno) << "\n";
      return kExitInternal;
    }
    if (ready > 0 && (fds[1].revents & POLLIN))
      drainEvents(nftFd);
    bool routesChanged = ready > 0 && (fds[2].revents & POLLIN);
    if (routesChanged)
      drainEvents(local.events());
    local.turn(routesChanged);
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
      s = readSnapshot(req, nat);
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
      local.write(); // the new program's copy
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
  NatWatch nat;
  if (std::optional<Failure> f =
          readAndAccelerate(req, s, "loaded on", cache, nat)) {
    std::cerr << f->text << std::flush;
    return f->status;
  }
  if (!req.follow)
    return kExitOk;
  return follow(req, s.key, cache, nat);
}

} // namespace r2x::driver
