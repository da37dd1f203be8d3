//===- bench/prog_ns.cpp - per-packet cost of rule2xdp vs. hand-written --===//
//
/// \file
/// `prog_ns`: how many nanoseconds a packet costs in rule2xdp's program for
/// `-A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP`, against the talk's
/// hand-written xdp_prog1 (bench/xdp_prog1.c), without the network in the
/// way: BPF_PROG_TEST_RUN with a large repeat on the same 64-byte frame
/// (60 bytes + FCS) to 10.1.0.2:1234, and on one to :4321 that both pass.
///
/// Runs in a fresh network namespace (so rule2xdp's routing lookup sees the
/// same empty table every time), pinned to one CPU, rounds interleaved
/// A/B/A/B so drift hits both programs alike; prints the medians and the
/// ratio (issue 11's targets: the talk's rule <= 1.2x the hand-written
/// program for both frames, the raw PREROUTING variant <= 1.1x). The kernel
/// reports the mean per run as integer nanoseconds, too coarse for programs
/// this short, so the figure used is the CPU time the thread spent in the whole
/// syscall divided by the repeat (not wall-clock time: that also counts
/// whatever ran while the test loop was rescheduled, which the kernel's own
/// timer leaves out); the kernel's integer is printed beside it as a
/// cross-check.
///
/// A benchmark, not a test: timing never fails it. It does fail (exit 1,
/// "FAILED") if a program does not return XDP_DROP for the matching frame
/// and XDP_PASS for the other, or if anything cannot be set up.
///
///   prog_ns [--repeat N] [--rounds N] [--cpu N] [--rule2xdp PATH]
///           [--prog1 PATH] [--obj LABEL=FILE.o ...]
///
/// `--obj` adds any compiled rule2xdp object (e.g. a bench/ruleset_gen
/// ruleset, whose flow is the same UDP 10.1.0.1:40000 -> 10.1.0.2:1234) to
/// the same interleaved rounds; each is printed with its ns per frame and
/// the verdict it gave (not required to be the talk's): two builds of
/// rule2xdp compared side by side, on this VM whose speed drifts.
//===----------------------------------------------------------------------===//
#include "runtime/contract/Object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifndef R2X_COMPILER
#define R2X_COMPILER "rule2xdp"
#endif
#ifndef R2X_XDP_PROG1
#define R2X_XDP_PROG1 "xdp_prog1.o"
#endif

namespace {

/// The scratch directory for the compiled objects, removed on every exit
/// (failed() exits from anywhere).
char gScratch[] = "/tmp/r2x-bench-XXXXXX";
bool gScratchMade = false;

void removeScratch() {
  if (!gScratchMade)
    return;
  for (const char *f : {"/input.o", "/raw.o"})
    std::remove((std::string(gScratch) + f).c_str());
  rmdir(gScratch);
}

[[noreturn]] void failed(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("prog_ns: FAILED: ", stdout);
  std::vprintf(fmt, ap);
  std::fputs("\n", stdout);
  va_end(ap);
  std::exit(1);
}

/// The rule2xdp compiler, run without a shell, on one rule.
void compileRule(const std::string &compiler, std::vector<std::string> rule,
                 const std::string &out) {
  rule.insert(rule.begin(), compiler);
  rule.insert(rule.end(), {"-o", out});
  std::vector<char *> argv;
  for (auto &w : rule)
    argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0)
    failed("fork: %s", std::strerror(errno));
  if (pid == 0) {
    execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    failed("%s could not compile the rule (status %d)", compiler.c_str(),
           status);
}

/// A fresh namespace with only `lo`, up (rule2xdp asks the FIB about every
/// packet; the answer must not depend on the host's routes).
void freshNetns() {
  if (unshare(CLONE_NEWNET) != 0)
    failed("unshare(CLONE_NEWNET): %s (needs root)", std::strerror(errno));
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
    failed("reading lo's flags: %s", std::strerror(errno));
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
    failed("bringing lo up: %s", std::strerror(errno));
  close(s);
}

struct Prog {
  std::string label;
  bpf_object *obj = nullptr;
  int fd = -1;
  uint32_t xlated = 0, jited = 0; // program size, bytes
};

void describeSize(Prog &p) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(p.fd, &info, &len) == 0) {
    p.xlated = info.xlated_prog_len;
    p.jited = info.jited_prog_len;
  }
}

Prog loadProg(const std::string &label, const std::string &path,
              const char *function) {
  Prog p;
  p.label = label;
  p.obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!p.obj)
    failed("opening %s: %s", path.c_str(), std::strerror(errno));
  if (int err = bpf_object__load(p.obj))
    failed("loading %s: %s", path.c_str(), std::strerror(-err));
  bpf_program *prog = bpf_object__find_program_by_name(p.obj, function);
  if (!prog)
    failed("%s has no program %s", path.c_str(), function);
  p.fd = bpf_program__fd(prog);
  describeSize(p);
  return p;
}

/// `return XDP_PASS;` and nothing else: the cost of the test-run loop
/// itself, which every figure includes.
Prog emptyProg() {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  Prog p;
  p.label = "empty";
  p.fd =
      bpf_prog_load(BPF_PROG_TYPE_XDP, "r2x_empty", "GPL", insns, 2, nullptr);
  if (p.fd < 0)
    failed("loading the empty program: %s", std::strerror(-p.fd));
  describeSize(p);
  return p;
}

std::vector<uint8_t> udpFrame(uint16_t dport) {
  std::vector<uint8_t> f = {
      0x02,
      0,
      0,
      0,
      0,
      0x02,
      0x02,
      0,
      0,
      0,
      0,
      0x01,
      0x08,
      0x00, // Ethernet
      0x45,
      0,
      0,
      46,
      0x42,
      0x42,
      0,
      0,
      64,
      17,
      0,
      0, // IPv4
      10,
      1,
      0,
      1,
      10,
      1,
      0,
      2, //
      0x9c,
      0x40,
      uint8_t(dport >> 8),
      uint8_t(dport),
      0,
      26,
      0,
      0, // UDP
  };
  for (int i = 0; i < 18; ++i)
    f.push_back(uint8_t('a' + i));
  // IPv4 header checksum, for a frame a real stack would take.
  uint32_t sum = 0;
  for (int i = 14; i < 34; i += 2)
    sum += uint32_t(f[size_t(i)] << 8 | f[size_t(i) + 1]);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  f[24] = uint8_t(~sum >> 8);
  f[25] = uint8_t(~sum);
  return f;
}

struct Run {
  uint32_t retval = 0;
  double cpuNs = 0;      // per packet, from the thread's CPU time
  uint32_t kernelNs = 0; // per packet, the kernel's integer mean
};

Run testRun(const Prog &p, const std::vector<uint8_t> &frame, int repeat) {
  xdp_md ctx{};
  ctx.data_end = uint32_t(frame.size());
  ctx.ingress_ifindex = 1; // lo, the same for both programs
  bpf_test_run_opts o{};
  o.sz = sizeof o;
  o.data_in = frame.data();
  o.data_size_in = uint32_t(frame.size());
  o.ctx_in = &ctx;
  o.ctx_size_in = sizeof ctx;
  o.repeat = repeat;
  timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  int err = bpf_prog_test_run_opts(p.fd, &o);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  if (err)
    failed("BPF_PROG_TEST_RUN on %s: %s", p.label.c_str(), std::strerror(-err));
  Run r;
  r.retval = o.retval;
  r.kernelNs = o.duration;
  r.cpuNs =
      (double(t1.tv_sec - t0.tv_sec) * 1e9 + double(t1.tv_nsec - t0.tv_nsec)) /
      repeat;
  return r;
}

template <class T> T median(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

const char *action(uint32_t a) {
  switch (a) {
  case XDP_ABORTED:
    return "XDP_ABORTED";
  case XDP_DROP:
    return "XDP_DROP";
  case XDP_PASS:
    return "XDP_PASS";
  case XDP_TX:
    return "XDP_TX";
  case XDP_REDIRECT:
    return "XDP_REDIRECT";
  }
  return "?";
}

} // namespace

int main(int argc, char **argv) {
  int repeat = 10'000'000, rounds = 5, cpu = -1;
  std::string compiler = R2X_COMPILER, prog1 = R2X_XDP_PROG1;
  std::vector<std::pair<std::string, std::string>> objs; // label, path
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "usage: prog_ns [--repeat N] [--rounds N] "
                           "[--cpu N] [--rule2xdp PATH] [--prog1 PATH] "
                           "[--obj LABEL=FILE.o ...]\n");
      return 2;
    }
    std::string v = argv[++i];
    if (a == "--repeat")
      repeat = std::stoi(v);
    else if (a == "--rounds")
      rounds = std::stoi(v);
    else if (a == "--cpu")
      cpu = std::stoi(v);
    else if (a == "--rule2xdp")
      compiler = v;
    else if (a == "--prog1")
      prog1 = v;
    else if (a == "--obj" && v.find('=') != std::string::npos)
      objs.emplace_back(v.substr(0, v.find('=')), v.substr(v.find('=') + 1));
    else {
      std::fprintf(stderr, "prog_ns: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (repeat < 1 || rounds < 1)
    failed("--repeat and --rounds must be positive");

  // One CPU for the whole run: the last one, away from CPU 0's interrupts.
  if (cpu < 0)
    cpu = int(sysconf(_SC_NPROCESSORS_ONLN)) - 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0)
    failed("cannot pin to CPU %d: %s", cpu, std::strerror(errno));

  freshNetns();
  if (!mkdtemp(gScratch))
    failed("mkdtemp: %s", std::strerror(errno));
  gScratchMade = true;
  std::atexit(removeScratch);
  const std::string input = std::string(gScratch) + "/input.o",
                    raw = std::string(gScratch) + "/raw.o";
  compileRule(compiler,
              {"-A", "INPUT", "-d", "10.1.0.2", "-p", "udp", "--dport", "1234",
               "-j", "DROP"},
              input);
  // The same match in raw PREROUTING needs no routing decision: the
  // difference between the two is the cost of classifying INPUT/FORWARD.
  compileRule(compiler,
              {"-t", "raw", "-A", "PREROUTING", "-d", "10.1.0.2", "-p", "udp",
               "--dport", "1234", "-j", "DROP"},
              raw);
  libbpf_set_print(nullptr); // quiet: failures are reported above
  std::vector<Prog> progs = {
      loadProg("rule2xdp", input, r2x::contract::ProgName),
      loadProg("xdp_prog1", prog1, "xdp_prog1"),
      loadProg("rule2xdp raw", raw, r2x::contract::ProgName), emptyProg()};
  constexpr size_t kFirstObj = 4; // --obj programs follow the four above
  for (const auto &[label, path] : objs)
    progs.push_back(loadProg(label, path, r2x::contract::ProgName));
  removeScratch();
  gScratchMade = false;

  struct Case {
    const char *label;
    std::vector<uint8_t> frame;
    uint32_t want;
  } cases[] = {{"UDP to 10.1.0.2:1234 (drop)", udpFrame(1234), XDP_DROP},
               {"UDP to 10.1.0.2:4321 (pass)", udpFrame(4321), XDP_PASS}};

  // Verdicts first: a fast wrong program is not a result.
  bool wrong = false;
  for (const Case &c : cases)
    for (size_t k = 0; k < 3; ++k) {
      uint32_t got = testRun(progs[k], c.frame, 1).retval;
      if (got != c.want) {
        std::printf("prog_ns: FAILED: %s returned %s for %s, expected %s\n",
                    progs[k].label.c_str(), action(got), c.label,
                    action(c.want));
        wrong = true;
      }
    }
  if (wrong)
    return 1;
  // An --obj program's verdict per frame, as it gives it before timing.
  std::vector<std::vector<uint32_t>> objWant(std::size(cases));
  for (size_t c = 0; c < std::size(cases); ++c)
    for (size_t k = kFirstObj; k < progs.size(); ++k)
      objWant[c].push_back(testRun(progs[k], cases[c].frame, 1).retval);
  std::vector<std::string> objLines;

  std::printf("prog_ns: BPF_PROG_TEST_RUN, %d repeats x %d rounds per "
              "program, interleaved, CPU %d, 60-byte frames (64 on the wire)\n",
              repeat, rounds, cpu);
  std::printf("rule: -A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP\n\n");
  std::printf("%-30s %14s %14s %8s\n", "frame", "rule2xdp", "xdp_prog1",
              "ratio");
  bool missed = false, rawMissed = false;
  std::vector<std::string> extra;
  for (size_t ci = 0; ci < std::size(cases); ++ci) {
    const Case &c = cases[ci];
    std::vector<std::vector<double>> cpu(progs.size());
    std::vector<std::vector<uint32_t>> kern(progs.size());
    for (int r = 0; r < rounds; ++r)
      for (size_t k = 0; k < progs.size(); ++k) {
        // Rotate the order so no program always runs on a warmer cache.
        size_t which = (k + size_t(r)) % progs.size();
        Run run = testRun(progs[which], c.frame, repeat);
        uint32_t want = which >= kFirstObj ? objWant[ci][which - kFirstObj]
                        : which == 3       ? uint32_t(XDP_PASS)
                                           : c.want;
        if (run.retval != want)
          failed("%s returned %s for %s during timing",
                 progs[which].label.c_str(), action(run.retval), c.label);
        cpu[which].push_back(run.cpuNs);
        kern[which].push_back(run.kernelNs);
      }
    double a = median(cpu[0]), b = median(cpu[1]);
    double ratio = a / b;
    missed |= ratio > 1.2;
    std::printf("%-30s %8.2f ns/pkt %8.2f ns/pkt %7.2fx\n", c.label, a, b,
                ratio);
    std::printf("%-30s %9u ns   %9u ns    (the kernel's integer mean)\n", "",
                median(kern[0]), median(kern[1]));
    double raw = median(cpu[2]), floor = median(cpu[3]);
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %s: rule2xdp -t raw -A PREROUTING variant %.2f ns/pkt "
                  "(%.2fx); empty program %.2f ns/pkt",
                  c.label, raw, raw / b, floor);
    rawMissed |= raw / b > 1.1;
    extra.push_back(line);
    // Above the test-run loop's own cost (the empty program), which differs
    // from one machine to the next more than the programs' work does.
    if (b > floor) {
      std::snprintf(line, sizeof line,
                    "  %s: work above the empty program: rule2xdp %.2f ns, "
                    "raw variant %.2f ns, xdp_prog1 %.2f ns",
                    c.label, a - floor, raw - floor, b - floor);
      extra.push_back(line);
    }
    for (size_t k = kFirstObj; k < progs.size(); ++k) {
      std::snprintf(line, sizeof line, "  %s: %s %.2f ns/pkt (%s)", c.label,
                    progs[k].label.c_str(), median(cpu[k]),
                    action(objWant[ci][k - kFirstObj]));
      objLines.push_back(line);
    }
  }
  // The raw variant needs no routing decision (bpf_fib_lookup); the empty
  // program is the floor of the test-run loop. Differences of a nanosecond
  // or two between runs are noise.
  std::printf("\nfor comparison (same runs):\n");
  for (const auto &l : extra)
    std::printf("%s\n", l.c_str());
  std::printf("  program size (xlated / jited bytes): rule2xdp %u / %u, "
              "xdp_prog1 %u / %u, rule2xdp raw %u / %u\n",
              progs[0].xlated, progs[0].jited, progs[1].xlated, progs[1].jited,
              progs[2].xlated, progs[2].jited);
  if (!objLines.empty()) {
    std::printf("\n--obj programs (same runs):\n");
    for (const auto &l : objLines)
      std::printf("%s\n", l.c_str());
  }
  std::printf("target rule2xdp / hand-written <= 1.2x: %s\n",
              missed ? "not met" : "met");
  std::printf("target raw variant / hand-written <= 1.1x: %s\n",
              rawMissed ? "not met" : "met");
  for (Prog &p : progs)
    if (p.obj)
      bpf_object__close(p.obj);
    else
      close(p.fd);
  return 0;
}
