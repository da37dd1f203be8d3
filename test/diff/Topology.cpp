//===- test/diff/Topology.cpp - the namespaces the test runs in -----------===//
#include "test/diff/Topology.h"

#include "test/diff/Process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace r2x::diff {

namespace {

constexpr uint16_t SentinelType = 0x88B5; // IEEE 802 local experimental
constexpr char SentinelMagic[8] = {'R', '2', 'X', 'D', 'I', 'F', 'F', 0};

//===-- cleanup that also works from a signal handler ---------------------===//

char gNsPaths[3][128];
volatile sig_atomic_t gNsCount = 0;

/// What `ip netns del` does, with async-signal-safe calls only.
void removeNamespaces() {
  int n = gNsCount;
  gNsCount = 0;
  for (int i = 0; i < n; ++i) {
    umount2(gNsPaths[i], MNT_DETACH);
    unlink(gNsPaths[i]);
  }
}

void onSignal(int sig) {
  removeNamespaces();
  signal(sig, SIG_DFL);
  raise(sig);
}

void installCleanupHooks() {
  static bool installed = false;
  if (installed)
    return;
  installed = true;
  std::atexit(removeNamespaces);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE})
    sigaction(sig, &sa, nullptr);
}

//===-- helpers -----------------------------------------------------------===//

void must(const std::vector<std::string> &argv) {
  ProcessResult r = run(argv, {}, 20000);
  if (!r.ok())
    throw std::runtime_error("setup: `" + joinWords(argv) + "` failed (" +
                             std::to_string(r.status) + "): " + r.out + r.err);
}

std::runtime_error sysFail(const std::string &what) {
  return std::runtime_error("setup: " + what + ": " + std::strerror(errno));
}

int openNs(const std::string &path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw sysFail("open " + path);
  return fd;
}

void enterNs(int fd, const std::string &what) {
  if (setns(fd, CLONE_NEWNET) != 0)
    throw sysFail("setns into " + what);
}

struct Iface {
  unsigned index = 0;
  Mac mac{};
};

Iface ifaceInfo(const char *name) {
  Iface info;
  info.index = if_nametoindex(name);
  if (info.index == 0)
    throw sysFail(std::string("no interface ") + name);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    throw sysFail("socket");
  struct ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
  int rc = ioctl(s, SIOCGIFHWADDR, &ifr);
  close(s);
  if (rc != 0)
    throw sysFail(std::string("SIOCGIFHWADDR ") + name);
  std::memcpy(info.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  return info;
}

/// An AF_PACKET socket bound to `ifindex` (of the current netns) that only
/// sends (protocol 0: it receives nothing).
int txSocket(unsigned ifindex) {
  int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (s < 0)
    throw sysFail("AF_PACKET socket (needs root)");
  sockaddr_ll sll;
  std::memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = 0;
  sll.sll_ifindex = int(ifindex);
  if (bind(s, reinterpret_cast<sockaddr *>(&sll), sizeof sll) != 0)
    throw sysFail("bind AF_PACKET");
  return s;
}

} // namespace

//===-- Topology ----------------------------------------------------------===//

Topology::Topology() {
  // Pin to one CPU so a frame and its sentinel share one backlog queue;
  // children get the original mask back (Process.cpp).
  setChildAffinityAll();
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

  const std::string prefix = "r2xd-" + std::to_string(getpid()) + "-";
  names_ = {prefix + "A", prefix + "B", prefix + "C"};
  const std::string &A = names_[0], &B = names_[1], &C = names_[2];

  installCleanupHooks();
  origNs_ = openNs("/proc/self/ns/net");
  for (const std::string &n : names_) {
    // Registered before creation: a half-made topology is removed too.
    std::snprintf(gNsPaths[gNsCount], sizeof gNsPaths[0], "/run/netns/%s",
                  n.c_str());
    gNsCount = gNsCount + 1;
    must({"ip", "netns", "add", n});
    must({"ip", "-n", n, "link", "set", "lo", "up"});
    // IPv6 on, but quiet: no link-local addresses (addr_gen_mode 1), no
    // DAD, no router solicitations, so nothing of B's own reaches B's
    // INPUT counters.
    must({"ip", "netns", "exec", n, "sysctl", "-qw",
          "net.ipv6.conf.all.disable_ipv6=0",
          "net.ipv6.conf.default.disable_ipv6=0",
          "net.ipv6.conf.default.addr_gen_mode=1",
          "net.ipv6.conf.default.accept_dad=0",
          "net.ipv6.conf.default.dad_transmits=0",
          "net.ipv6.conf.default.router_solicitations=0",
          "net.ipv6.conf.default.accept_ra=0"});
  }
  must({"ip", "-n", A, "link", "add", "a0", "type", "veth", "peer", "name",
        "b0", "netns", B});
  must({"ip", "-n", B, "link", "add", "b1", "type", "veth", "peer", "name",
        "c0", "netns", C});
  must({"ip", "netns", "exec", B, "sysctl", "-qw", "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
        "net.ipv4.conf.b0.rp_filter=0", "net.ipv4.conf.b1.rp_filter=0"});
  must({"ip", "netns", "exec", B, "sysctl", "-qw",
        "net.ipv6.conf.all.forwarding=1"});
  // A and C send nothing of their own (MLD reports, neighbour discovery,
  // ICMP errors, TCP resets to what B forwards them...): their IPv4 and
  // IPv6 output is dropped by their own nf_tables (not B's, the one under
  // test). ARP is not IP: A and C still answer B's ARP requests for their
  // addresses. Test frames leave through AF_PACKET sockets, which no hook
  // sees.
  for (const std::string &n : {A, C})
    must({"ip", "netns", "exec", n, "nft",
          "add table inet r2xquiet; "
          "add chain inet r2xquiet out { type filter hook output priority 0; "
          "policy drop; }"});
  must(
      {"ip", "-n", A, "addr", "add", "2001:db8:1::1/64", "dev", "a0", "nodad"});
  must(
      {"ip", "-n", B, "addr", "add", "2001:db8:1::2/64", "dev", "b0", "nodad"});
  must(
      {"ip", "-n", B, "addr", "add", "2001:db8:2::1/64", "dev", "b1", "nodad"});
  must(
      {"ip", "-n", C, "addr", "add", "2001:db8:2::2/64", "dev", "c0", "nodad"});
  must({"ip", "-n", A, "addr", "add", "10.1.0.1/24", "dev", "a0"});
  must({"ip", "-n", B, "addr", "add", "10.1.0.2/24", "dev", "b0"});
  must({"ip", "-n", B, "addr", "add", "10.1.1.1/24", "dev", "b1"});
  must({"ip", "-n", C, "addr", "add", "10.1.1.2/24", "dev", "c0"});
  // Fixed MACs: rules (-m mac) and frames name them, and a seed replays
  // the same bytes in every run.
  must({"ip", "-n", A, "link", "set", "a0", "address", "02:00:00:00:0a:01"});
  must({"ip", "-n", B, "link", "set", "b0", "address", "02:00:00:00:0b:00"});
  must({"ip", "-n", B, "link", "set", "b1", "address", "02:00:00:00:0b:01"});
  must({"ip", "-n", C, "link", "set", "c0", "address", "02:00:00:00:0c:01"});
  must({"ip", "-n", A, "link", "set", "a0", "up"});
  must({"ip", "-n", B, "link", "set", "b0", "up"});
  must({"ip", "-n", B, "link", "set", "b1", "up"});
  must({"ip", "-n", C, "link", "set", "c0", "up"});
  must({"ip", "-n", B, "route", "add", "default", "via", "10.1.1.2"});
  must({"ip", "-n", B, "-6", "route", "add", "default", "via", "2001:db8:2::2",
        "dev", "b1"});

  int nsA = openNs("/run/netns/" + A), nsB = openNs("/run/netns/" + B),
      nsC = openNs("/run/netns/" + C);
  try {
    enterNs(nsA, A);
    Iface a0 = ifaceInfo("a0");
    macA0_ = a0.mac;
    txA_ = txSocket(a0.index);
    enterNs(nsC, C);
    Iface c0 = ifaceInfo("c0");
    macC0_ = c0.mac;
    txC_ = txSocket(c0.index);
    enterNs(nsB, B);
    Iface b0 = ifaceInfo("b0"), b1 = ifaceInfo("b1");
    b0_ = b0.index;
    b1_ = b1.index;
    macB0_ = b0.mac;
    macB1_ = b1.mac;
    rx_ = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(SentinelType));
    if (rx_ < 0)
      throw sysFail("AF_PACKET socket in B");
    sockaddr_ll sll;
    std::memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(SentinelType);
    sll.sll_ifindex = 0; // b0 and b1
    if (bind(rx_, reinterpret_cast<sockaddr *>(&sll), sizeof sll) != 0)
      throw sysFail("bind the sentinel socket in B");
  } catch (...) {
    close(nsA);
    close(nsB);
    close(nsC);
    throw;
  }
  close(nsA);
  close(nsB);
  close(nsC);

  // The random frames' sources nobody owns (answerable() says why), and,
  // for IPv6, every neighbour B could talk to, so B never solicits and
  // waits.
  for (const char *a : {"10.1.0.7", "10.1.1.9", "2001:db8:1::1",
                        "2001:db8:1::7", "2001:db8:2::2", "2001:db8:2::9"})
    answerable(a);

  // IPv6 on B's devices is ready (multicast delivered to INPUT) only once
  // linkwatch has seen the carrier: poll (bounded) for operstate UP.
  const auto setupDeadline = std::chrono::steady_clock::now() +
                             std::chrono::milliseconds(kSettleTimeoutMs);
  const std::string settle = std::to_string(kSettleTimeoutMs / 1000) + " s";
  for (bool up = false; !up;) {
    ProcessResult r = run({"ip", "-n", B, "-o", "link", "show"}, {}, 5000);
    size_t n = 0;
    for (size_t at = 0; (at = r.out.find("state UP", at)) != std::string::npos;
         ++at)
      ++n;
    up = r.ok() && n >= 2;
    if (up)
      break;
    if (std::chrono::steady_clock::now() > setupDeadline)
      throw std::runtime_error("setup: b0 and b1 not operationally up in " +
                               settle);
    usleep(50 * 1000); // the poll's interval: linkwatch has no event to wait on
  }
  // The links need a moment to get their carrier: send sentinels until one
  // comes through each path (bounded), which also proves the detector works.
  // A sentinel sent before the carrier is lost, so each try waits a little
  // longer for its own before sending the next.
  for (Ingress in : {Ingress::FromA, Ingress::FromC}) {
    bool through = false;
    for (int waitMs = 100; !through; waitMs = std::min(2 * waitMs, 2000)) {
      if (std::chrono::steady_clock::now() > setupDeadline)
        throw std::runtime_error(std::string("setup: no sentinel frame from ") +
                                 (in == Ingress::FromA ? "A" : "C") +
                                 " reached B within " + settle);
      sentinel(in);
      through = awaitSentinel(waitMs);
    }
  }
}

Topology::~Topology() {
  if (origNs_ >= 0) {
    setns(origNs_, CLONE_NEWNET);
    close(origNs_);
  }
  for (int fd : {txA_, txC_, rx_})
    if (fd >= 0)
      close(fd);
  removeNamespaces();
}

const Mac &Topology::routerMac(Ingress in) const {
  return in == Ingress::FromA ? macB0_ : macB1_;
}
unsigned Topology::routerIfindex(Ingress in) const {
  return in == Ingress::FromA ? b0_ : b1_;
}
const Mac &Topology::senderMac(Ingress in) const {
  return in == Ingress::FromA ? macA0_ : macC0_;
}

void Topology::answerable(const std::string &src) {
  if (answerable_.count(src))
    return;
  answerable_.insert(src);
  // Which link of B's the address is on, and whose MAC answers there.
  const Mac *mac = nullptr;
  const char *dev = nullptr;
  bool v6 = false;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, src.c_str(), &a4) == 1) {
    const uint32_t h = ntohl(a4.s_addr), host = h & 0xff;
    if (host == 0 || host == 255 || h == 0x0a010002 || h == 0x0a010101)
      return; // network, broadcast, or B's own
    if ((h & 0xffffff00) == 0x0a010000)
      mac = &macA0_, dev = "b0";
    else if ((h & 0xffffff00) == 0x0a010100)
      mac = &macC0_, dev = "b1";
  } else if (inet_pton(AF_INET6, src.c_str(), &a6) == 1) {
    v6 = true;
    static const uint8_t net1[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0};
    static const uint8_t net2[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0};
    in6_addr own1{}, own2{};
    inet_pton(AF_INET6, "2001:db8:1::2", &own1);
    inet_pton(AF_INET6, "2001:db8:2::1", &own2);
    if (!std::memcmp(&a6, &own1, 16) || !std::memcmp(&a6, &own2, 16))
      return;
    if (!std::memcmp(a6.s6_addr, net1, 8))
      mac = &macA0_, dev = "b0";
    else if (!std::memcmp(a6.s6_addr, net2, 8))
      mac = &macC0_, dev = "b1";
  }
  if (!mac)
    return; // not on a link of B's: routed via C, which answers for itself
  char lladdr[18];
  std::snprintf(lladdr, sizeof lladdr, "%02x:%02x:%02x:%02x:%02x:%02x",
                (*mac)[0], (*mac)[1], (*mac)[2], (*mac)[3], (*mac)[4],
                (*mac)[5]);
  std::vector<std::string> cmd = {"ip", "-n", names_[1]};
  if (v6)
    cmd.push_back("-6");
  for (const char *w : {"neigh", "replace", src.c_str(), "lladdr",
                        (const char *)lladdr, "dev", dev, "nud", "permanent"})
    cmd.push_back(w);
  must(cmd);
}

void Topology::sentinel(Ingress in) {
  std::vector<uint8_t> f(60, 0);
  const Mac &dst = routerMac(in), &src = senderMac(in);
  std::memcpy(&f[0], dst.data(), 6);
  std::memcpy(&f[6], src.data(), 6);
  f[12] = uint8_t(SentinelType >> 8);
  f[13] = uint8_t(SentinelType);
  std::memcpy(&f[14], SentinelMagic, sizeof SentinelMagic);
  ++seq_;
  for (int i = 0; i < 8; ++i)
    f[22 + i] = uint8_t(seq_ >> (56 - 8 * i));
  int s = in == Ingress::FromA ? txA_ : txC_;
  if (send(s, f.data(), f.size(), 0) != ssize_t(f.size()))
    throw std::runtime_error(std::string("sending the sentinel: ") +
                             std::strerror(errno));
}

bool Topology::awaitSentinel(int timeoutMs) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
    pollfd p{rx_, POLLIN, 0};
    int n = poll(&p, 1, left > 0 ? int(left) : 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (n == 0)
      return false;
    uint8_t buf[128];
    ssize_t got = recv(rx_, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 30 || std::memcmp(buf + 14, SentinelMagic, 8) != 0)
      continue;
    uint64_t seq = 0;
    for (int i = 0; i < 8; ++i)
      seq = seq << 8 | buf[22 + i];
    if (seq == seq_)
      return true; // older ones are leftovers of an earlier timeout
  }
}

bool Topology::sendAndSettle(Ingress in, const std::vector<uint8_t> &frame,
                             int timeoutMs) {
  int s = in == Ingress::FromA ? txA_ : txC_;
  if (send(s, frame.data(), frame.size(), 0) != ssize_t(frame.size()))
    throw std::runtime_error(std::string("sending a test frame: ") +
                             std::strerror(errno));
  sentinel(in);
  return awaitSentinel(timeoutMs);
}

} // namespace r2x::diff
