//===- test/tc/tc_diff.cpp - u32 against the kernel's cls_u32, frame by frame
//===//
//
/// \file
/// The kernel as oracle for the tc frontend. For each generated set of u32
/// filters (seeded; the seed is printed), the same filters are
///  - installed in the kernel on the ingress of r0 in namespace R, every
///    terminal knode's action being `mirred egress mirror dev kI CONTROL`
///    (this kernel has no gact: mirred is the observable, one sink veth per
///    knode, counted with AF_PACKET sockets on the sinks' peers), and
///  - compiled by rule2xdp with `action CONTROL` and run through
///    BPF_PROG_TEST_RUN; each knode's counter slot says whether its actions
///    ran (knodes are tied to sinks by their `classid 1:I`).
/// Each frame is sent from namespace S into r0 and followed by a sentinel
/// (EtherType 0x88b5) that a pref-1 filter redirects to its own sink; the
/// process is pinned to one CPU, so once the sentinel arrived every mirror
/// copy of the frame has been delivered (one backlog, FIFO). The set of
/// knodes that ran must be equal, and the program's verdict must be the one
/// the last knode's control gives (drop: XDP_DROP, else XDP_PASS).
///
/// `--nat CASES` checks act_nat instead (see "act_nat against its
/// documented semantics" below).
///
/// Namespaces are named after the pid and removed by the destructor, at
/// exit and on signals. Nothing is sent from, or changed in, the root
/// namespace. Needs root and BPF; fails (never skips) without them.
//===----------------------------------------------------------------------===//
#include "runtime/BpfObject.h"
#include "test/diff/Process.h"
#include "test/packet/Frame.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using r2x::diff::joinWords;
using r2x::diff::ProcessResult;
using r2x::diff::run;
using r2x::test::Frame;

namespace {

constexpr unsigned kSinks = 10;
std::string gNames[2]; // S, R
char gPaths[2][128];

void cleanupNow() {
  for (auto &p : gPaths)
    if (p[0]) {
      umount2(p, MNT_DETACH);
      unlink(p);
      p[0] = 0;
    }
}
void onSignal(int sig) {
  cleanupNow();
  signal(sig, SIG_DFL);
  raise(sig);
}

void must(const std::vector<std::string> &argv, const std::string &input = {}) {
  ProcessResult r = run(argv, input, 20000);
  if (!r.ok())
    throw std::runtime_error("`" + joinWords(argv) + "` failed (" +
                             std::to_string(r.status) + "): " + r.out + r.err);
}

/// Polls `ip -o link show` in namespace NS until WANT devices are
/// operationally UP: linkwatch activates a new veth's qdisc only then, and a
/// frame sent before is dropped (no event to wait on; bounded: 30 s).
void awaitUp(const std::string &ns, size_t want) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    ProcessResult r = run({"ip", "-n", ns, "-o", "link", "show"}, {}, 20000);
    size_t up = 0;
    for (size_t at = 0;
         (at = r.out.find(" state UP ", at)) != std::string::npos; ++at)
      ++up;
    if (r.ok() && up >= want)
      return;
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("setup: " + std::to_string(up) + " of " +
                               std::to_string(want) + " devices UP in " + ns +
                               " after 30 s");
    usleep(50 * 1000); // the poll's interval
  }
}

/// A directory for the test's files, PREFIX + pid, removed at the end.
struct TempDir {
  explicit TempDir(const std::string &prefix)
      : path(prefix + std::to_string(getpid())) {
    must({"mkdir", "-p", path});
  }
  ~TempDir() { run({"rm", "-rf", path}); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  std::string path;
};

std::runtime_error sysFail(const std::string &what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

int openNs(const std::string &path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw sysFail("open " + path);
  return fd;
}

int packetSocket(const char *dev, int proto) {
  unsigned idx = if_nametoindex(dev);
  if (!idx)
    throw sysFail(std::string("no interface ") + dev);
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(uint16_t(proto)));
  if (s < 0)
    throw sysFail("AF_PACKET socket (needs root)");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(uint16_t(proto));
  sll.sll_ifindex = int(idx);
  if (bind(s, reinterpret_cast<sockaddr *>(&sll), sizeof sll) != 0)
    throw sysFail("bind AF_PACKET");
  return s;
}

/// S (sender, s0) and R (receiver: r0 with the filters, sinks kI/kIp and
/// the sentinel sink ks/ksp). The process lives in R after setup.
class Topology {
public:
  Topology() {
    r2x::diff::setChildAffinityAll();
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) != 0)
      throw sysFail("sched_getaffinity");
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mask))
      ++cpu;
    CPU_ZERO(&mask);
    CPU_SET(cpu, &mask);
    if (sched_setaffinity(0, sizeof mask, &mask) != 0)
      throw sysFail("sched_setaffinity");

    std::string pre = "r2xtc-" + std::to_string(getpid()) + "-";
    gNames[0] = pre + "S";
    gNames[1] = pre + "R";
    for (int i = 0; i < 2; ++i)
      std::snprintf(gPaths[i], sizeof gPaths[i], "/run/netns/%s",
                    gNames[i].c_str());
    std::atexit(cleanupNow);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE})
      signal(sig, onSignal);
    const std::string &S = gNames[0], &R = gNames[1];
    must({"ip", "netns", "add", S});
    must({"ip", "netns", "add", R});
    for (const std::string &n : {S, R}) {
      must({"ip", "netns", "exec", n, "sysctl", "-qw",
            "net.ipv6.conf.all.disable_ipv6=1"});
      must({"ip", "netns", "exec", n, "sysctl", "-qw",
            "net.ipv6.conf.default.disable_ipv6=1"});
    }
    must({"ip", "-n", R, "link", "add", "r0", "type", "veth", "peer", "name",
          "s0", "netns", S});
    must({"ip", "-n", S, "link", "set", "s0", "up"});
    must({"ip", "-n", R, "link", "set", "r0", "up"});
    for (unsigned i = 0; i <= kSinks; ++i) {
      std::string k = i == kSinks ? "ks" : "k" + std::to_string(i);
      must({"ip", "-n", R, "link", "add", k, "type", "veth", "peer", "name",
            k + "p"});
      must({"ip", "-n", R, "link", "set", k, "up"});
      must({"ip", "-n", R, "link", "set", k + "p", "up"});
    }
    awaitUp(S, 1);                    // s0
    awaitUp(R, 1 + 2 * (kSinks + 1)); // r0, the sinks and the sentinel sink
    int orig = openNs("/proc/self/ns/net");
    int sfd = openNs(gPaths[0]), rfd = openNs(gPaths[1]);
    if (setns(sfd, CLONE_NEWNET) != 0)
      throw sysFail("setns S");
    tx_ = packetSocket("s0", 0);
    if (setns(rfd, CLONE_NEWNET) != 0)
      throw sysFail("setns R");
    for (unsigned i = 0; i <= kSinks; ++i) {
      std::string k = (i == kSinks ? "ks" : "k" + std::to_string(i)) + "p";
      sinks_.push_back(packetSocket(k.c_str(), ETH_P_ALL));
    }
    close(orig);
    close(sfd);
    close(rfd);
  }
  ~Topology() {
    for (const std::string &n : gNames)
      run({"ip", "netns", "del", n}, {}, 10000);
    cleanupNow();
  }

  const std::string &R() const { return gNames[1]; }

  /// Sends `frame` from S, then the sentinel; returns which knode sinks got
  /// a copy (bit I), after the sentinel arrived (bounded wait).
  unsigned send(const std::vector<uint8_t> &frame) {
    drain();
    if (::send(tx_, frame.data(), frame.size(), 0) < 0)
      throw sysFail("send frame");
    std::vector<uint8_t> sentinel(60, 0);
    std::memset(sentinel.data(), 0xff, 6);
    sentinel[6] = 0x02;
    sentinel[11] = 0x01;
    sentinel[12] = 0x88;
    sentinel[13] = 0xb5;
    ++seq_;
    std::memcpy(sentinel.data() + 14, &seq_, sizeof seq_);
    if (::send(tx_, sentinel.data(), sentinel.size(), 0) < 0)
      throw sysFail("send sentinel");
    // Generous: the wait ends when the sentinel arrives; only a broken
    // run reaches the bound, never a merely busy machine.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      pollfd p{sinks_[kSinks], POLLIN, 0};
      int ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(
                       deadline - std::chrono::steady_clock::now())
                       .count());
      if (ms <= 0 || poll(&p, 1, ms) <= 0)
        throw std::runtime_error("the sentinel never arrived (timeout)");
      uint8_t buf[2048];
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(sinks_[kSinks], buf, sizeof buf, MSG_DONTWAIT,
                           reinterpret_cast<sockaddr *>(&from), &fl);
      if (n >= 22 && from.sll_pkttype != PACKET_OUTGOING &&
          std::memcmp(buf + 14, &seq_, sizeof seq_) == 0)
        break;
    }
    unsigned hit = 0;
    for (unsigned i = 0; i < kSinks; ++i)
      if (countFrames(sinks_[i]))
        hit |= 1u << i;
    return hit;
  }

private:
  static unsigned countFrames(int s) {
    unsigned n = 0;
    uint8_t buf[2048];
    for (;;) {
      sockaddr_ll from{};
      socklen_t fl = sizeof from;
      ssize_t r = recvfrom(s, buf, sizeof buf, MSG_DONTWAIT,
                           reinterpret_cast<sockaddr *>(&from), &fl);
      if (r < 0)
        return n;
      if (from.sll_pkttype != PACKET_OUTGOING)
        ++n;
    }
  }
  void drain() {
    for (int s : sinks_)
      countFrames(s);
  }
  int tx_ = -1;
  std::vector<int> sinks_;
  uint64_t seq_ = 0;
};

/// libbpf option structs must be zeroed, padding included, and carry their
/// size. (LIBBPF_OPTS does this in C; in C++ its designated initializers
/// trip clang 19's -Wmissing-designated-field-initializers.)
template <class Opts> Opts zeroedOpts() {
  Opts opts;
  std::memset(&opts, 0, sizeof opts);
  opts.sz = sizeof opts;
  return opts;
}

/// The compiled program, run through BPF_PROG_TEST_RUN.
class Program {
public:
  Program(const std::string &object, const std::string &irText) {
    std::ifstream f(object, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    auto oo = zeroedOpts<bpf_object_open_opts>();
    oo.object_name = r2x::contract::ObjectName;
    obj_ = bpf_object__open_mem(bytes.data(), bytes.size(), &oo);
    if (!obj_)
      throw std::runtime_error("cannot open the object");
    if (bpf_object__load(obj_))
      throw std::runtime_error("the kernel refused the program (verifier)");
    // The program and counters as the loader finds them.
    prog_ = bpf_program__fd(r2x::runtime::findProgram(obj_));
    bpf_map *m = r2x::runtime::findMap(obj_, r2x::contract::CountersMap);
    counters_ = bpf_map__fd(m);
    slots_ = bpf_map__max_entries(m);
    // "knode 800::800 counter 3 terminal flowid 1:5": slot 3 is sink 5.
    std::istringstream is(irText);
    std::string line;
    while (std::getline(is, line)) {
      size_t k = line.find("knode "), c = line.find(" counter "),
             fl = line.find(" flowid 1:");
      if (k == std::string::npos || c == std::string::npos ||
          fl == std::string::npos)
        continue;
      unsigned slot = unsigned(std::stoul(line.substr(c + 9)));
      unsigned sink = unsigned(std::stoul(line.substr(fl + 10), nullptr, 16));
      sinkOfSlot_[slot] = sink;
    }
  }
  ~Program() { bpf_object__close(obj_); }

  /// The XDP action and which sinks' knodes ran; the frame as the program
  /// left it in `*outFrame`, if given.
  std::pair<uint32_t, unsigned> run(const std::vector<uint8_t> &frame,
                                    std::vector<uint8_t> *outFrame = nullptr) {
    std::vector<uint64_t> before = packets();
    std::vector<uint8_t> out(frame.size() + 256);
    auto o = zeroedOpts<bpf_test_run_opts>();
    o.data_in = frame.data();
    o.data_out = out.data();
    o.data_size_in = uint32_t(frame.size());
    o.data_size_out = uint32_t(out.size());
    o.repeat = 1;
    if (int err = bpf_prog_test_run_opts(prog_, &o))
      throw std::runtime_error(std::string("bpf_prog_test_run_opts: ") +
                               std::strerror(-err));
    if (outFrame)
      *outFrame =
          std::vector<uint8_t>(out.begin(), out.begin() + o.data_size_out);
    std::vector<uint64_t> after = packets();
    unsigned hit = 0;
    for (unsigned s = 0; s < slots_; ++s)
      if (after[s] != before[s]) {
        auto it = sinkOfSlot_.find(s);
        hit |= it == sinkOfSlot_.end() ? 0x80000000u : 1u << it->second;
      }
    return {o.retval, hit};
  }

private:
  std::vector<uint64_t> packets() {
    std::vector<uint64_t> total(slots_);
    for (uint32_t s = 0; s < slots_; ++s)
      total[s] = r2x::runtime::readCounter(counters_, s).packets;
    return total;
  }
  bpf_object *obj_ = nullptr;
  int prog_ = -1, counters_ = -1;
  unsigned slots_ = 0;
  std::map<unsigned, unsigned> sinkOfSlot_;
};

//===-- generation
//----------------------------------------------------------===//

struct Rng {
  std::mt19937_64 g;
  explicit Rng(uint64_t seed) : g(seed) {}
  unsigned below(unsigned n) { return unsigned(g() % n); }
  bool chance(unsigned pct) { return below(100) < pct; }
  template <class T> const T &pick(const std::vector<T> &v) {
    return v[below(unsigned(v.size()))];
  }
};

const std::vector<std::string> kAddrs = {"10.1.0.1", "10.1.0.2", "10.1.1.2",
                                         "192.168.7.7"};
const std::vector<uint16_t> kPorts = {1234, 53, 80, 40000};
const char *kControls[] = {"drop", "pass", "continue", "pipe"};

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

Frame randomFrame(Rng &r) {
  Frame f;
  switch (r.below(3)) {
  case 0:
    f = Frame::udp(r.pick(kAddrs), r.pick(kAddrs), r.pick(kPorts),
                   r.pick(kPorts));
    break;
  case 1:
    f = Frame::tcp(r.pick(kAddrs), r.pick(kAddrs), r.pick(kPorts),
                   r.pick(kPorts));
    break;
  default:
    f = Frame::icmp(r.pick(kAddrs), r.pick(kAddrs));
    f.icmpType = r.chance(50) ? 8 : 0;
  }
  if (r.chance(20))
    f = f.withOptions(4 * (1 + r.below(3)));
  if (r.chance(15))
    f = f.frag(uint16_t(r.below(3)), r.chance(50));
  if (r.chance(10))
    f.tos = uint8_t(r.below(256));
  if (r.chance(10))
    f = f.vlan(uint16_t(1 + r.below(100)));
  if (r.chance(8))
    f = f.ether(r.chance(50) ? 0x86DD : 0x0806);
  if (r.chance(15)) {
    size_t len = f.build().size();
    f = f.cut(14 + r.below(unsigned(len - 13)));
  }
  return f;
}

/// A selector that often matches frames like `t` (values from its bytes).
std::string selector(Rng &r, const std::vector<uint8_t> &t, bool v6,
                     bool negative) {
  auto word = [&](int off) {
    uint32_t w = 0;
    for (int i = 0; i < 4; ++i) {
      size_t p = size_t(14 + off + i);
      w = w << 8 | (p < t.size() ? t[p] : 0);
    }
    return w;
  };
  static const uint32_t masks[] = {0xffffffffu, 0xffff0000u, 0x0000ffffu,
                                   0xff00ff00u, 0x00f0000fu, 0};
  switch (r.below(v6 ? 3 : 12)) {
  case 0: {
    int off = int(4 * r.below(11));
    uint32_t m = masks[r.below(6)];
    return "u32 " + hex(r.chance(80) ? word(off) & m : uint32_t(r.g())) + " " +
           hex(m) + " at " + std::to_string(off);
  }
  case 1: {
    int off = int(2 * r.below(22));
    uint32_t w = word(off & ~3);
    uint16_t v = (off & 3) == 0 ? uint16_t(w >> 16) : uint16_t(w);
    uint16_t m = r.chance(70) ? 0xffff : uint16_t(r.g());
    return "u16 " + hex(r.chance(80) ? v & m : uint16_t(r.g()) & m) + " " +
           hex(m) + " at " + std::to_string(off);
  }
  case 2: {
    int off = int(r.below(44)) - (negative && r.chance(10) ? 14 : 0);
    uint8_t v = uint8_t(word(off & ~3) >> (8 * (3 - (off & 3))));
    uint8_t m = r.chance(70) ? 0xff : uint8_t(r.g());
    return "u8 " + hex(r.chance(80) ? v & m : uint8_t(r.g()) & m) + " " +
           hex(m) + " at " + std::to_string(off);
  }
  case 3:
  case 4: {
    static const int lens[] = {32, 32, 24, 16, 8, 0, 31, 12};
    return std::string("ip ") + (r.chance(50) ? "src " : "dst ") +
           r.pick(kAddrs) + "/" + std::to_string(lens[r.below(8)]);
  }
  case 5: {
    static const int protos[] = {1, 6, 17};
    return "ip protocol " + std::to_string(protos[r.below(3)]) + " 0xff";
  }
  case 6:
    return std::string("ip ") + (r.chance(50) ? "sport " : "dport ") +
           std::to_string(r.pick(kPorts)) +
           (r.chance(80) ? " 0xffff" : " " + hex(r.g() & 0xffff));
  case 7:
    return r.chance(50)
               ? "ip tos " + hex(r.below(256)) + " " + hex(r.below(256))
               : "ip ihl " + std::to_string(5 + r.below(3)) + " 0x0f";
  case 8: {
    static const char *fl[] = {"nofrag", "firstfrag", "df", "mf"};
    return std::string("ip ") + fl[r.below(4)];
  }
  case 9:
    return "ip icmp_type " + std::to_string(r.chance(50) ? 8 : 0) + " 0xff";
  case 10:
    if (!negative)
      return "u32 0 0 at 0";
    return std::string("ether ") +
           (r.chance(50) ? "src 02:00:00:00:00:01" : "dst 02:00:00:00:00:02");
  default:
    return std::string(r.chance(50) ? "udp" : "tcp") +
           (r.chance(50) ? " dst " : " src ") + std::to_string(r.pick(kPorts)) +
           " 0xffff";
  }
}

struct Case {
  std::string kernel, xdp;         // tc -batch texts
  std::vector<std::string> knodes; // per sink, for reports
};

Case generate(Rng &r, const std::vector<Frame> &frames) {
  Case c;
  unsigned sink = 0;
  auto add = [&](const std::string &line) {
    c.kernel += line + "\n";
    c.xdp += line + "\n";
  };
  auto knode = [&](const std::string &head) {
    if (sink >= kSinks)
      return;
    std::string ctl = kControls[r.below(4)];
    std::string cls = " classid 1:" + hex(sink).substr(2);
    c.kernel += head + cls + " action mirred egress mirror dev k" +
                std::to_string(sink) + " " + ctl + "\n";
    c.xdp += head + cls + " action " + ctl + "\n";
    c.knodes.push_back(head + " (" + ctl + ")");
    ++sink;
  };
  bool negative = true;
  auto matches = [&](unsigned n, bool v6) {
    std::string s;
    const std::vector<uint8_t> t = r.pick(frames).build();
    for (unsigned i = 0; i < n; ++i)
      s += " match " + selector(r, t, v6, negative);
    return s;
  };
  unsigned nFilters = 1 + r.below(3);
  std::set<unsigned> prefs;
  unsigned nextHt = 1;
  for (unsigned fi = 0; fi < nFilters && sink < kSinks; ++fi) {
    unsigned pr = r.below(4);
    std::string proto = pr == 0 ? "all" : pr == 3 ? "ipv6" : "ip";
    bool v6 = proto == "ipv6";
    // rule2xdp refuses negative offsets with protocol all (docs/tc.md).
    negative = proto != "all";
    std::string base = "filter add dev r0 parent ffff: protocol " + proto;
    if (r.chance(25)) { // automatic pref: one knode
      knode(base + " u32" + matches(1 + r.below(2), v6));
      continue;
    }
    unsigned pref;
    do
      pref = 2 + r.below(20);
    while (prefs.count(pref));
    prefs.insert(pref);
    base += " pref " + std::to_string(pref) + " u32";
    unsigned n = 1 + r.below(3);
    for (unsigned k = 0; k < n; ++k) {
      if (!v6 && r.chance(30) && sink + 2 < kSinks) {
        // A hash table linked from the root, with buckets from samples.
        unsigned div = 1u << r.below(5);
        std::string ht = hex(nextHt++).substr(2) + ":";
        add("filter add dev r0 parent ffff: protocol " + proto + " pref " +
            std::to_string(pref) + " handle " + ht + " u32 divisor " +
            std::to_string(div));
        bool eat = r.chance(50);
        std::string link = base + matches(1, false) + " link " + ht;
        static const std::vector<std::pair<std::string, std::string>> keys = {
            {"0x000000ff", "at 16"},
            {"0xff000000", "at 12"},
            {"0x0000ffff", "at 20"},
            {"0x00ff0000", "at 8"}};
        const auto &hk = keys[r.below(unsigned(keys.size()))];
        link += " hashkey mask " + hk.first + " at " + hk.second.substr(3);
        if (eat)
          link += " offset at 0 mask 0x0f00 shift 6 eat";
        else if (r.chance(40))
          link += " offset at 0 mask 0x0f00 shift 6";
        if (r.chance(40))
          knode(link);
        else
          add(link);
        unsigned inner = 1 + r.below(3);
        for (unsigned j = 0; j < inner; ++j) {
          std::string head = "filter add dev r0 parent ffff: protocol " +
                             proto + " pref " + std::to_string(pref) +
                             " u32 ht " + ht;
          if (div > 1) {
            // a bucket by sample, as users write it
            const std::vector<uint8_t> t = r.pick(frames).build();
            (void)t;
            head = "filter add dev r0 parent ffff: protocol " + proto +
                   " pref " + std::to_string(pref) + " u32 ht " + ht +
                   " sample u32 " + hex(r.g() & 0xffffffffu) + " " + hk.first +
                   " at " + hk.second.substr(3) + " divisor " +
                   std::to_string(div);
          }
          std::string m;
          if (eat && r.chance(60))
            m = std::string(" match ") + (r.chance(50) ? "udp" : "tcp") +
                " dst " + std::to_string(r.pick(kPorts)) + " 0xffff";
          else
            m = matches(1 + r.below(2), false);
          knode(head + m);
        }
        continue;
      }
      knode(base + matches(1 + r.below(3), v6));
    }
  }
  return c;
}

//===-- act_nat against its documented semantics --------------------------===//
//
// `tc_diff --nat CASES`: this kernel has no act_nat, so the oracle is a
// model of tcf_nat_act() (net/sched/act_nat.c) written here. Each case is
// `action nat DIR OLD/LEN NEW CONTROL` (protocol ip or all, pref 1) and a
// pref-2 `protocol all` pass filter; random frames (UDP, TCP, ICMP echo,
// ICMP errors quoting a header, UDP without checksum, wrong checksums,
// options, fragments, short IHL, VLAN tags, non-IP, cut frames) go through
// the program, and the verdict, which filters ran and every byte of the
// frame must be the model's. The model applies the kernel's updates in the
// kernel's order; where the frame's checksums were valid, every checksum it
// produced is also recomputed from scratch, so a formula wrong in the same
// way in the model and in the program cannot pass.

uint16_t get16(const std::vector<uint8_t> &f, size_t at) {
  return uint16_t(f[at] << 8 | f[at + 1]);
}
uint32_t get32(const std::vector<uint8_t> &f, size_t at) {
  return uint32_t(get16(f, at)) << 16 | get16(f, at + 2);
}
void set16(std::vector<uint8_t> &f, size_t at, uint16_t v) {
  f[at] = uint8_t(v >> 8);
  f[at + 1] = uint8_t(v);
}
void set32(std::vector<uint8_t> &f, size_t at, uint32_t v) {
  set16(f, at, uint16_t(v >> 16));
  set16(f, at + 2, uint16_t(v));
}
/// One's complement sum of the big-endian words of f[from, to), folded.
uint16_t onesSum(const std::vector<uint8_t> &f, size_t from, size_t to,
                 uint32_t s = 0) {
  for (size_t i = from; i < to; i += 2)
    s += i + 1 < to ? get16(f, i) : uint32_t(f[i]) << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}
/// csum_replace4(): RFC 1624 eqn. 3 for a 32-bit field going from -> to.
uint16_t replace4(uint16_t check, uint32_t from, uint32_t to) {
  uint32_t s = uint16_t(~check);
  s += uint16_t(~(from >> 16)) + uint16_t(~from) + (to >> 16) + (to & 0xffff);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return uint16_t(~s);
}

struct NatSpec {
  bool egress = false, protoAll = false;
  uint32_t old = 0, mask = 0, neu = 0;
  unsigned len = 32;
  std::string control;
  std::string text() const {
    return std::string("nat ") + (egress ? "egress " : "ingress ") +
           r2x::test::ipv4Str(old) + "/" + std::to_string(len) + " " +
           r2x::test::ipv4Str(neu) + " " + control;
  }
};

struct NatExpect {
  uint32_t action = 2; // XDP_PASS
  unsigned ran = 0;    // bit 1: the nat filter, bit 2: the pref-2 filter
  std::vector<uint8_t> frame;
  std::vector<std::string>
      scratch; // checksums to recompute: "ip", "l4", "icmp"
  size_t l3 = 14;
};

/// tcf_nat_act() on e.frame at network offset L; false: TC_ACT_SHOT.
bool natApply(const NatSpec &n, NatExpect &e, size_t L) {
  std::vector<uint8_t> &f = e.frame;
  size_t len = f.size() - L;
  if (len < 20)
    return false;
  size_t at = L + (n.egress ? 12 : 16);
  uint32_t addr = get32(f, at), neu = 0;
  auto fragment = [&] { return (get16(f, L + 6) & 0x1fff) != 0; };
  if (((addr ^ n.old) & n.mask) == 0) {
    neu = (n.neu & n.mask) | (addr & ~n.mask);
    set32(f, at, neu);
    set16(f, L + 10, replace4(get16(f, L + 10), addr, neu));
    e.scratch.push_back("ip");
  } else if (fragment() || f[L + 9] != 1) {
    return true;
  }
  size_t ihl = size_t(f[L] & 0xf) * 4;
  if (fragment())
    return true;
  switch (f[L + 9]) {
  case 6:
    if (len < ihl + 20)
      return false;
    set16(f, L + ihl + 16, replace4(get16(f, L + ihl + 16), addr, neu));
    e.scratch.push_back("l4");
    break;
  case 17: {
    if (len < ihl + 8)
      return false;
    uint16_t c = get16(f, L + ihl + 6);
    if (c) {
      c = replace4(c, addr, neu);
      set16(f, L + ihl + 6, c ? c : 0xffff);
      e.scratch.push_back("l4");
    }
    break;
  }
  case 1: {
    if (len < ihl + 8)
      return false;
    uint8_t type = f[L + ihl];
    if (type != 3 && type != 4 && type != 5 && type != 11 && type != 12)
      break;
    if (len < ihl + 8 + 20)
      return false;
    size_t iat = L + ihl + 8 + (n.egress ? 16 : 12);
    uint32_t inner = get32(f, iat);
    if ((inner ^ n.old) & n.mask)
      break;
    uint32_t innerNew = (n.neu & n.mask) | (inner & ~n.mask);
    set32(f, iat, innerNew);
    set16(f, L + ihl + 2, replace4(get16(f, L + ihl + 2), inner, innerNew));
    e.scratch.push_back("icmp");
    break;
  }
  default:
    break;
  }
  return true;
}

NatExpect natModel(const NatSpec &n, const std::vector<uint8_t> &in) {
  NatExpect e;
  e.frame = in;
  uint16_t et = get16(in, 12);
  bool tagged = et == 0x8100 || et == 0x88a8;
  if (tagged && in.size() < 18)
    return e; // the kernel frees it before tc; rule2xdp passes it
  size_t l3 = tagged ? 18 : 14;
  auto pref2 = [&] {
    if (in.size() >= l3 + 4) // `match u32 0 0` reads a word
      e.ran |= 4;
  };
  bool runs = n.protoAll || (!tagged && et == 0x0800);
  e.l3 = l3;
  if (!runs || in.size() < l3 + 4) {
    pref2();
    return e;
  }
  e.ran |= 2;
  if (n.control == "drop" || !natApply(n, e, l3)) {
    e.action = 1;
    return e;
  }
  if (n.control == "continue")
    pref2();
  return e;
}

/// Recomputes from scratch the checksums the model changed, where the
/// input's were valid and the datagram is whole; "" when all agree.
std::string natScratch(const std::vector<uint8_t> &in, const NatExpect &e,
                       unsigned &checked) {
  if (e.scratch.empty())
    return "";
  const std::vector<uint8_t> &out = e.frame;
  size_t L = e.l3;
  size_t ihl = size_t(in[L] & 0xf) * 4;
  if (ihl < 20 || L + ihl > in.size())
    return "";
  uint16_t totLen = get16(in, L + 2);
  bool whole = (get16(in, L + 6) & 0x3fff) == 0 && totLen >= ihl + 8 &&
               L + totLen <= in.size();
  uint8_t proto = in[L + 9];
  for (const std::string &k : e.scratch) {
    size_t from = L, to = L + ihl, field = L + 10;
    uint32_t seed = 0, seedIn = 0;
    if (k != "ip") {
      if (!whole)
        continue;
      from = L + ihl;
      to = L + totLen;
      field = from + (k == "icmp" ? 2 : proto == 6 ? 16 : 6);
      if (proto == 6 && totLen < ihl + 20)
        continue;
      if (k == "l4") { // the pseudo-header
        auto pseudo = [&](const std::vector<uint8_t> &f) {
          return uint32_t(onesSum(f, L + 12, L + 20)) + proto +
                 uint32_t(totLen - ihl);
        };
        seed = pseudo(out);
        seedIn = pseudo(in);
      }
    }
    if (onesSum(in, from, to, seedIn) != 0xffff)
      continue; // the input's checksum was wrong: only the model's update
                // applies
    ++checked;
    std::vector<uint8_t> z = out;
    set16(z, field, 0);
    uint16_t want = uint16_t(~onesSum(z, from, to, seed));
    if (k == "l4" && proto == 17 && want == 0)
      want = 0xffff;
    if (get16(out, field) != want) {
      char b[96];
      std::snprintf(b, sizeof b, "%s checksum %#06x, from scratch %#06x",
                    k.c_str(), get16(out, field), want);
      return b;
    }
  }
  return "";
}

const std::vector<std::string> kNatAddrs = {"10.1.0.1", "10.1.0.2", "10.1.0.77",
                                            "10.1.1.2", "192.168.7.7"};

std::vector<uint8_t> natFrame(Rng &r) {
  Frame f;
  unsigned kind = r.below(7);
  const std::string &src = r.pick(kNatAddrs), &dst = r.pick(kNatAddrs);
  switch (kind) {
  case 0:
  case 4:
    f = Frame::udp(src, dst, r.pick(kPorts), r.pick(kPorts));
    break;
  case 1:
    f = Frame::tcp(src, dst, r.pick(kPorts), r.pick(kPorts));
    break;
  case 2:
    f = Frame::icmp(src, dst);
    f.icmpType = r.chance(50) ? 8 : 0;
    break;
  case 3:
    f = Frame::icmp(src, dst).payload(28 + 4 * r.below(3));
    f.icmpType = std::vector<uint8_t>{3, 4, 5, 11, 12}[r.below(5)];
    break;
  case 5:
    f = Frame::raw(src, dst, 47);
    break;
  default:
    f = Frame::udp(src, dst, r.pick(kPorts), 1234).payload(r.below(40));
  }
  if (r.chance(20))
    f = f.withOptions(4 * (1 + r.below(3)));
  if (r.chance(12))
    f = f.frag(uint16_t(r.below(2) * (1 + r.below(3))), r.chance(50));
  if (kind != 3 && r.chance(5))
    f = f.ihl(uint8_t(r.below(5)));
  if (r.chance(12))
    f = f.vlan(uint16_t(1 + r.below(100)), r.chance(70) ? 0x8100 : 0x88a8);
  if (r.chance(6))
    f = f.ether(r.chance(50) ? 0x86DD : 0x0806);
  std::vector<uint8_t> v = f.build();
  size_t L = 14 + 4 * f.tags.size(), ihl = f.ipHeaderLen();
  if (kind == 3 && f.fragOffset == 0 && L + ihl + 36 <= v.size()) {
    // An ICMP error quoting the first 28 bytes of a datagram.
    std::vector<uint8_t> q =
        (r.chance(50)
             ? Frame::udp(r.pick(kNatAddrs), r.pick(kNatAddrs), 1234, 53)
             : Frame::tcp(r.pick(kNatAddrs), r.pick(kNatAddrs), 80, 40000))
            .build();
    std::copy(q.begin() + 14, q.begin() + 14 + 28,
              v.begin() + long(L + ihl + 8));
    size_t end = std::min(v.size(), L + get16(v, L + 2));
    set16(v, L + ihl + 2, 0);
    set16(v, L + ihl + 2, uint16_t(~onesSum(v, L + ihl, end)));
  }
  if (kind == 4 && L + ihl + 8 <= v.size())
    set16(v, L + ihl + 6, 0); // UDP without a checksum
  if (r.chance(10) && v.size() > 16)
    v[14 + r.below(unsigned(v.size() - 14))] ^=
        uint8_t(1 + r.below(255)); // a wrong byte
  if (r.chance(12))
    v.resize(14 + r.below(unsigned(v.size() - 13)));
  return v;
}

NatSpec natSpec(Rng &r, const std::vector<std::vector<uint8_t>> &frames) {
  NatSpec n;
  n.egress = r.chance(50);
  n.protoAll = r.chance(30);
  static const unsigned lens[] = {8, 16, 24, 30, 31, 32, 32, 32};
  n.len = lens[r.below(8)];
  n.mask = 0xffffffffu << (32 - n.len);
  // The address to translate, from a frame (outer or quoted header), or not.
  const std::vector<uint8_t> &t = r.pick(frames);
  size_t L =
      t.size() >= 18 && (get16(t, 12) == 0x8100 || get16(t, 12) == 0x88a8) ? 18
                                                                           : 14;
  std::vector<size_t> at = {L + 12, L + 16, L + 20 + 8 + 12, L + 20 + 8 + 16};
  size_t a = at[r.below(4)];
  n.old = a + 4 <= t.size() && r.chance(85)
              ? get32(t, a)
              : r2x::test::ipv4(r.pick(kNatAddrs));
  if (r.chance(30))
    n.old ^=
        uint32_t(r.g()) & ~n.mask; // host bits tc keeps and the kernel ignores
  n.neu = r.chance(80) ? r2x::test::ipv4(r.pick(kNatAddrs)) : uint32_t(r.g());
  static const char *controls[] = {"pass", "pipe", "continue",
                                   "pipe", "pass", "drop"};
  n.control = controls[r.below(6)];
  return n;
}

int natCheck(uint64_t seed, unsigned cases, unsigned packets) {
  std::printf("tc_diff --nat: seed %llu, %u nat actions, %u frames each\n",
              static_cast<unsigned long long>(seed), cases, packets);
  unsigned compared = 0, rewritten = 0, checked = 0, mismatches = 0;
  TempDir tmp("/tmp/r2xtcnat-");
  const std::string &dir = tmp.path;
  Rng r(seed);
  for (unsigned ci = 0; ci < cases; ++ci) {
    std::vector<std::vector<uint8_t>> frames;
    for (unsigned i = 0; i < packets; ++i)
      frames.push_back(natFrame(r));
    NatSpec n = natSpec(r, frames);
    std::string batch =
        std::string("filter add dev e parent ffff: protocol ") +
        (n.protoAll ? "all" : "ip") +
        " pref 1 u32 match u32 0 0 classid 1:1 action " + n.text() +
        "\nfilter add dev e parent ffff: protocol all pref 2 u32 match u32 0 0 "
        "classid 1:2 action pass\n";
    std::string file = dir + "/nat.tc", obj = dir + "/nat.o";
    std::ofstream(file) << batch;
    ProcessResult cr =
        run({R2X_COMPILER, "--tc-batch", file, "-o", obj}, {}, 60000);
    if (!cr.ok())
      throw std::runtime_error("rule2xdp refused:\n" + batch + cr.err);
    ProcessResult ir =
        run({R2X_COMPILER, "--tc-batch", file, "--emit=ir"}, {}, 60000);
    if (!ir.ok())
      throw std::runtime_error("rule2xdp --emit=ir failed:\n" + ir.err);
    Program prog(obj, ir.out);
    for (const std::vector<uint8_t> &in : frames) {
      NatExpect e = natModel(n, in);
      std::vector<uint8_t> out;
      auto [action, ran] = prog.run(in, &out);
      ++compared;
      rewritten += e.frame != in;
      std::string scratch = natScratch(in, e, checked);
      bool same =
          action == e.action && ran == e.ran && (action != 2 || out == e.frame);
      if (!same || !scratch.empty()) {
        ++mismatches;
        std::printf(
            "FAIL nat case %u: %s\n%smodel: action %u ran %#x, program: action "
            "%u "
            "ran %#x%s%s\nframe in:\n%s\nmodel:\n%s\nprogram:\n%s\n",
            ci, n.text().c_str(), batch.c_str(), e.action, e.ran, action, ran,
            scratch.empty() ? "" : "; model vs from scratch: ", scratch.c_str(),
            r2x::test::hexDump(in).c_str(), r2x::test::hexDump(e.frame).c_str(),
            r2x::test::hexDump(out).c_str());
        if (mismatches > 5)
          throw std::runtime_error("too many mismatches");
      }
    }
  }
  std::printf("tc_diff --nat: %u frames compared (%u rewritten, %u checksums "
              "recomputed "
              "from scratch), %u mismatches, seed %llu\n",
              compared, rewritten, checked, mismatches,
              static_cast<unsigned long long>(seed));
  return mismatches ? 1 : 0;
}

} // namespace

int main(int argc, char **argv) {
  uint64_t seed =
      uint64_t(std::chrono::system_clock::now().time_since_epoch().count());
  unsigned cases = 30, packets = 16, natCases = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--nat")
      natCases = unsigned(std::stoul(argv[i + 1]));
    else if (a == "--seed")
      seed = std::stoull(argv[i + 1]);
    else if (a == "--cases")
      cases = unsigned(std::stoul(argv[i + 1]));
    else if (a == "--packets")
      packets = unsigned(std::stoul(argv[i + 1]));
  }
  if (natCases) {
    try {
      return natCheck(seed, natCases, packets);
    } catch (const std::exception &e) {
      std::printf("FAIL tc_diff --nat: %s (seed %llu)\n", e.what(),
                  static_cast<unsigned long long>(seed));
      return 1;
    }
  }
  std::printf("tc_diff: seed %llu, %u filter sets, %u frames each\n",
              static_cast<unsigned long long>(seed), cases, packets);
  std::fflush(stdout);
  unsigned compared = 0, mismatches = 0, matched = 0;
  try {
    Topology topo;
    Rng r(seed);
    TempDir tmp("/tmp/r2xtc-");
    const std::string &dir = tmp.path;
    for (unsigned ci = 0; ci < cases; ++ci) {
      std::vector<Frame> frames;
      for (unsigned i = 0; i < packets; ++i)
        frames.push_back(randomFrame(r));
      Case c = generate(r, frames);
      std::string kfile = dir + "/kernel.tc", xfile = dir + "/xdp.tc",
                  obj = dir + "/p.o";
      std::ofstream(xfile) << c.xdp;
      std::string k = "qdisc add dev r0 ingress\n"
                      "filter add dev r0 parent ffff: protocol 0x88b5 pref 1 "
                      "u32 match u32 0 0 "
                      "action mirred egress redirect dev ks\n" +
                      c.kernel;
      std::ofstream(kfile) << k;
      run({"tc", "qdisc", "del", "dev", "r0", "ingress"}, {}, 10000);
      ProcessResult kr = run({"tc", "-batch", kfile}, {}, 20000);
      ProcessResult cr =
          run({R2X_COMPILER, "--tc-batch", xfile, "-o", obj}, {}, 60000);
      if (!kr.ok() || !cr.ok()) {
        // Both must accept or refuse the same filters.
        if (kr.ok() != cr.ok()) {
          ++mismatches;
          std::printf(
              "FAIL case %u: tc %s, rule2xdp %s\n%s\ntc: %s\nrule2xdp: %s\n",
              ci, kr.ok() ? "accepted" : "refused",
              cr.ok() ? "accepted" : "refused", c.xdp.c_str(), kr.err.c_str(),
              cr.err.c_str());
        }
        continue;
      }
      ProcessResult ir =
          run({R2X_COMPILER, "--tc-batch", xfile, "--emit=ir"}, {}, 60000);
      // Without the IR no counter slot maps to a sink, and every frame
      // would read as a mismatch instead of this.
      if (!ir.ok())
        throw std::runtime_error("rule2xdp --emit=ir failed:\n" + ir.err +
                                 "filters:\n" + c.xdp);
      std::unique_ptr<Program> progPtr;
      try {
        progPtr = std::make_unique<Program>(obj, ir.out);
      } catch (const std::exception &e) {
        throw std::runtime_error(std::string(e.what()) + "; filters:\n" +
                                 c.xdp);
      }
      Program &prog = *progPtr;
      for (const Frame &f : frames) {
        std::vector<uint8_t> bytes = f.build();
        unsigned kernel = topo.send(bytes);
        auto [action, xdp] = prog.run(bytes);
        ++compared;
        if (kernel)
          ++matched;
        // The verdict the last knode that ran gives.
        uint32_t want = 2;
        for (unsigned i = 0; i < c.knodes.size(); ++i)
          if ((kernel >> i) & 1) {
            const std::string &kn = c.knodes[i];
            if (kn.size() > 6 && kn.substr(kn.size() - 6) == "(drop)")
              want = 1;
          }
        if (kernel != xdp || action != want) {
          ++mismatches;
          std::printf(
              "FAIL case %u frame mismatch: kernel ran sinks %#x (verdict %u), "
              "rule2xdp ran %#x, XDP action %u\nfilters:\n%sframe:\n%s\n",
              ci, kernel, want, xdp, action, c.xdp.c_str(),
              r2x::test::hexDump(bytes).c_str());
          ProcessResult show =
              run({"tc", "-s", "filter", "show", "dev", "r0", "ingress"});
          std::printf("kernel's view (tc -s filter show):\n%s\n",
                      show.out.c_str());
          if (mismatches > 5)
            throw std::runtime_error("too many mismatches");
        }
      }
    }
  } catch (const std::exception &e) {
    std::printf("FAIL tc_diff: %s (seed %llu)\n", e.what(),
                static_cast<unsigned long long>(seed));
    return 1;
  }
  std::printf("tc_diff: %u frames compared (%u matched a filter), %u "
              "mismatches, seed %llu\n",
              compared, matched, mismatches,
              static_cast<unsigned long long>(seed));
  return mismatches ? 1 : 0;
}
