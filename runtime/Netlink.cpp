//===- runtime/Netlink.cpp - what the kernel says about devices -----------===//
//
/// \file
/// See Netlink.h. One request and its answer per socket; libmnl does the
/// message layout and the sequence checks.
//===----------------------------------------------------------------------===//
#include "runtime/Netlink.h"

#include "runtime/LocalTable.h"
#include "runtime/OtherHooks.h"

#include "runtime/Support.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <libmnl/libmnl.h>
#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <vector>

namespace r2x::runtime::detail {

namespace {

/// linux/netdev.h (see XdpActNdoXmit).
constexpr const char *NetdevFamily = "netdev";
enum : uint8_t { NetdevCmdDevGet = 1 };
enum : uint16_t { NetdevAttrIfindex = 1, NetdevAttrXdpFeatures = 3 };

/// A netlink socket for one request: sends it and runs `onMessage` on
/// every answer until the kernel's ACK or the end of a dump. A kernel
/// error comes back as its errno (0: success).
class Netlink {
public:
  explicit Netlink(int bus) : nl_(mnl_socket_open(bus)) {
    if (!nl_ || mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0)
      throw sysError("cannot open a netlink socket", errno);
    portid_ = mnl_socket_get_portid(nl_);
  }
  ~Netlink() {
    if (nl_)
      mnl_socket_close(nl_);
  }
  Netlink(const Netlink &) = delete;
  Netlink &operator=(const Netlink &) = delete;

  /// A fresh request in the buffer, of `type` with `flags`. run() reads
  /// answers until the kernel's ACK or the end of a dump, so a request
  /// that is not a dump needs NLM_F_ACK.
  nlmsghdr *request(uint16_t type, uint16_t flags) {
    nlmsghdr *nlh = mnl_nlmsg_put_header(buf_.data());
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | flags;
    nlh->nlmsg_seq = ++seq_;
    return nlh;
  }

  int run(nlmsghdr *nlh, const std::function<void(const nlmsghdr *)> &each) {
    if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0)
      throw sysError("cannot send a netlink request", errno);
    for (;;) {
      ssize_t n = mnl_socket_recvfrom(nl_, buf_.data(), buf_.size());
      if (n < 0)
        throw sysError("cannot read a netlink answer", errno);
      int rc = mnl_cb_run(
          buf_.data(), size_t(n), seq_, portid_, &Netlink::cb,
          const_cast<std::function<void(const nlmsghdr *)> *>(&each));
      if (rc == MNL_CB_ERROR)
        return errno;
      if (rc == MNL_CB_STOP)
        return 0;
    }
  }

private:
  static int cb(const nlmsghdr *nlh, void *data) {
    (*static_cast<std::function<void(const nlmsghdr *)> *>(data))(nlh);
    return MNL_CB_OK;
  }

  mnl_socket *nl_;
  unsigned portid_ = 0, seq_ = 0;
  std::vector<char> buf_ = std::vector<char>(MNL_SOCKET_BUFFER_SIZE);
};

/// The attributes of a message after its fixed header of `offset` bytes,
/// by type.
std::map<uint16_t, const nlattr *> attributes(const nlmsghdr *nlh,
                                              size_t offset) {
  std::map<uint16_t, const nlattr *> out;
  // mnl_attr_for_each, without its C-only void* conversions.
  auto *attr =
      static_cast<const nlattr *>(mnl_nlmsg_get_payload_offset(nlh, offset));
  const char *end = static_cast<const char *>(mnl_nlmsg_get_payload_tail(nlh));
  while (mnl_attr_ok(attr, int(end - reinterpret_cast<const char *>(attr)))) {
    out[mnl_attr_get_type(attr)] = attr;
    attr = mnl_attr_next(attr);
  }
  return out;
}

/// The id of generic netlink family `name`, 0 if the kernel has none.
uint16_t genlFamily(Netlink &nl, const char *name) {
  nlmsghdr *nlh = nl.request(GENL_ID_CTRL, NLM_F_ACK);
  auto *genl = static_cast<genlmsghdr *>(
      mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  genl->cmd = CTRL_CMD_GETFAMILY;
  genl->version = 1;
  mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, name);
  uint16_t id = 0;
  int err = nl.run(nlh, [&id](const nlmsghdr *m) {
    auto a = attributes(m, sizeof(genlmsghdr));
    if (a.count(CTRL_ATTR_FAMILY_ID))
      id = mnl_attr_get_u16(a[CTRL_ATTR_FAMILY_ID]);
  });
  if (err == ENOENT)
    return 0;
  if (err)
    throw sysError(
        std::string("cannot look up the ") + name + " netlink family", err);
  return id;
}

} // namespace

std::optional<std::map<unsigned, uint64_t>> xdpFeatures() {
  Netlink nl(NETLINK_GENERIC);
  uint16_t family = genlFamily(nl, NetdevFamily);
  if (!family)
    return std::nullopt;
  nlmsghdr *nlh = nl.request(family, NLM_F_DUMP);
  auto *genl = static_cast<genlmsghdr *>(
      mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  genl->cmd = NetdevCmdDevGet;
  genl->version = 1;
  std::map<unsigned, uint64_t> features;
  int err = nl.run(nlh, [&features](const nlmsghdr *m) {
    auto a = attributes(m, sizeof(genlmsghdr));
    if (a.count(NetdevAttrIfindex) && a.count(NetdevAttrXdpFeatures))
      features[mnl_attr_get_u32(a[NetdevAttrIfindex])] =
          mnl_attr_get_u64(a[NetdevAttrXdpFeatures]);
  });
  if (err)
    throw sysError("cannot read the devices' XDP features", err);
  return features;
}

Route routeTo(const std::string &address) {
  unsigned char raw[sizeof(in6_addr)];
  int family = address.find(':') == std::string::npos ? AF_INET : AF_INET6;
  if (inet_pton(family, address.c_str(), raw) != 1)
    throw LoadError("bad address in the object's metadata: '" + address + "'");
  Netlink nl(NETLINK_ROUTE);
  nlmsghdr *nlh = nl.request(RTM_GETROUTE, NLM_F_ACK);
  auto *rtm =
      static_cast<rtmsg *>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = uint8_t(family);
  rtm->rtm_dst_len = family == AF_INET ? 32 : 128;
  mnl_attr_put(nlh, RTA_DST, family == AF_INET ? 4 : 16, raw);
  Route route;
  int err = nl.run(nlh, [&route](const nlmsghdr *m) {
    if (m->nlmsg_type != RTM_NEWROUTE)
      return;
    auto *r = static_cast<const rtmsg *>(mnl_nlmsg_get_payload(m));
    route.local = r->rtm_type == RTN_LOCAL;
    auto a = attributes(m, sizeof(rtmsg));
    if (a.count(RTA_OIF))
      route.ifindex = mnl_attr_get_u32(a[RTA_OIF]);
  });
  if (err || !route.ifindex)
    throw LoadError(
        sysMessage("no route to " + address + " in this network namespace",
                   err ? err : ENETUNREACH));
  return route;
}

std::string driverName(const std::string &iface) {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid())
    return {};
  struct ethtool_drvinfo info {};
  info.cmd = ETHTOOL_GDRVINFO;
  struct ifreq req {};
  std::strncpy(req.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  req.ifr_data = reinterpret_cast<char *>(&info);
  if (::ioctl(sock.get(), SIOCETHTOOL, &req) != 0)
    return {};
  return info.driver;
}

} // namespace r2x::runtime::detail

namespace r2x::runtime {

std::vector<Ipv4Route> ipv4Routes() {
  detail::Netlink nl(NETLINK_ROUTE);
  nlmsghdr *nlh = nl.request(RTM_GETROUTE, NLM_F_DUMP);
  auto *req =
      static_cast<rtmsg *>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  req->rtm_family = AF_INET;
  std::vector<Ipv4Route> routes;
  constexpr unsigned Down = RTNH_F_DEAD | RTNH_F_LINKDOWN;
  int err = nl.run(nlh, [&routes](const nlmsghdr *m) {
    if (m->nlmsg_type != RTM_NEWROUTE)
      return;
    auto *r = static_cast<const rtmsg *>(mnl_nlmsg_get_payload(m));
    if (r->rtm_family != AF_INET || r->rtm_dst_len > 32)
      return;
    auto a = detail::attributes(m, sizeof(rtmsg));
    Ipv4Route route;
    route.table =
        a.count(RTA_TABLE) ? mnl_attr_get_u32(a[RTA_TABLE]) : r->rtm_table;
    route.type = r->rtm_type;
    route.len = r->rtm_dst_len;
    route.tos = r->rtm_tos;
    if (a.count(RTA_DST) && mnl_attr_get_payload_len(a[RTA_DST]) == 4) {
      uint32_t raw;
      std::memcpy(&raw, mnl_attr_get_payload(a[RTA_DST]), 4);
      route.dst = ntohl(raw);
    }
    route.maySkip = (r->rtm_flags & Down) != 0 || a.count(RTA_NH_ID);
    if (a.count(RTA_MULTIPATH)) {
      const auto *nh = static_cast<const rtnexthop *>(
          mnl_attr_get_payload(a[RTA_MULTIPATH]));
      int left = int(mnl_attr_get_payload_len(a[RTA_MULTIPATH]));
      while (left >= int(sizeof(rtnexthop)) &&
             nh->rtnh_len >= sizeof(rtnexthop) && nh->rtnh_len <= left) {
        route.maySkip |= (nh->rtnh_flags & Down) != 0;
        left -= RTNH_ALIGN(nh->rtnh_len);
        nh = RTNH_NEXT(nh);
      }
    }
    routes.push_back(route);
  });
  if (err)
    throw detail::sysError("cannot read the routing tables", err);
  return routes;
}

} // namespace r2x::runtime

namespace r2x::runtime {

namespace {

/// An nf_tables request of `msg` for `family`, a dump unless `flags` say
/// otherwise.
nlmsghdr *nftRequest(detail::Netlink &nl, uint16_t msg, uint8_t family) {
  nlmsghdr *nlh =
      nl.request(uint16_t((NFNL_SUBSYS_NFTABLES << 8) | msg), NLM_F_DUMP);
  auto *nfg = static_cast<nfgenmsg *>(
      mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  return nlh;
}

std::string attrString(const nlattr *a) {
  return std::string(static_cast<const char *>(mnl_attr_get_payload(a)),
                     strnlen(static_cast<const char *>(mnl_attr_get_payload(a)),
                             mnl_attr_get_payload_len(a)));
}

/// The attributes nested in `nest`, in order.
std::vector<const nlattr *> nested(const nlattr *nest) {
  std::vector<const nlattr *> out;
  auto *attr = static_cast<const nlattr *>(mnl_attr_get_payload(nest));
  const char *end = static_cast<const char *>(mnl_attr_get_payload(nest)) +
                    mnl_attr_get_payload_len(nest);
  while (mnl_attr_ok(attr, int(end - reinterpret_cast<const char *>(attr)))) {
    out.push_back(attr);
    attr = mnl_attr_next(attr);
  }
  return out;
}

void addDevice(NftBaseChain &c, const std::string &dev) {
  if (std::find(c.devices.begin(), c.devices.end(), dev) == c.devices.end())
    c.devices.push_back(dev);
}

/// nf_tables puts its 32-bit numbers in network byte order.
uint32_t attrBe32(const nlattr *a) { return ntohl(mnl_attr_get_u32(a)); }

} // namespace

std::vector<NftBaseChain> nftBaseChains() {
  // A kernel without nfnetlink refuses the socket; one without nf_tables
  // answers the first request for its subsystem with EINVAL (nfnetlink
  // finds no such subsystem) or EOPNOTSUPP. Either way no chain exists.
  // (That this request is well formed is checked where nf_tables exists:
  // test/e2e/accelerate.sh finds the chains it makes.)
  int sock = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (sock < 0 && (errno == EPROTONOSUPPORT || errno == EAFNOSUPPORT))
    return {};
  if (sock >= 0)
    ::close(sock);
  detail::Netlink nl(NETLINK_NETFILTER);
  // Dormant tables run none of their chains.
  std::set<std::pair<uint8_t, std::string>> dormant;
  int err = nl.run(
      nftRequest(nl, NFT_MSG_GETTABLE, NFPROTO_UNSPEC),
      [&dormant](const nlmsghdr *m) {
        auto *g = static_cast<const nfgenmsg *>(mnl_nlmsg_get_payload(m));
        auto a = detail::attributes(m, sizeof(nfgenmsg));
        if (a.count(NFTA_TABLE_NAME) && a.count(NFTA_TABLE_FLAGS) &&
            (attrBe32(a[NFTA_TABLE_FLAGS]) & NFT_TABLE_F_DORMANT))
          dormant.insert({g->nfgen_family, attrString(a[NFTA_TABLE_NAME])});
      });
  if (err == EINVAL || err == EOPNOTSUPP)
    return {};
  if (err)
    throw detail::sysError("cannot read nftables' tables", err);
  std::vector<NftBaseChain> chains;
  err = nl.run(nftRequest(nl, NFT_MSG_GETCHAIN, NFPROTO_UNSPEC),
               [&chains, &dormant](const nlmsghdr *m) {
                 auto *g =
                     static_cast<const nfgenmsg *>(mnl_nlmsg_get_payload(m));
                 auto a = detail::attributes(m, sizeof(nfgenmsg));
                 if (!a.count(NFTA_CHAIN_HOOK) || !a.count(NFTA_CHAIN_TABLE) ||
                     !a.count(NFTA_CHAIN_NAME))
                   return; // not a base chain
                 NftBaseChain c;
                 c.family = g->nfgen_family;
                 c.table = attrString(a[NFTA_CHAIN_TABLE]);
                 c.name = attrString(a[NFTA_CHAIN_NAME]);
                 if (a.count(NFTA_CHAIN_TYPE))
                   c.type = attrString(a[NFTA_CHAIN_TYPE]);
                 if (a.count(NFTA_CHAIN_POLICY))
                   c.policyDrop = attrBe32(a[NFTA_CHAIN_POLICY]) == NF_DROP;
                 c.dormant = dormant.count({c.family, c.table}) != 0;
                 for (const nlattr *h : nested(a[NFTA_CHAIN_HOOK])) {
                   switch (mnl_attr_get_type(h)) {
                   case NFTA_HOOK_HOOKNUM:
                     c.hook = attrBe32(h);
                     break;
                   case NFTA_HOOK_PRIORITY:
                     c.priority = int32_t(attrBe32(h));
                     break;
                   case NFTA_HOOK_DEV: // the first of NFTA_HOOK_DEVS, if both
                     addDevice(c, attrString(h));
                     break;
                   case NFTA_HOOK_DEVS:
                     for (const nlattr *d : nested(h))
                       addDevice(c, attrString(d));
                     break;
                   default:
                     break;
                   }
                 }
                 chains.push_back(std::move(c));
               });
  if (err)
    throw detail::sysError("cannot read nftables' chains", err);
  // Whether each holds a rule: a dump of that chain's rules alone.
  for (NftBaseChain &c : chains) {
    nlmsghdr *nlh = nftRequest(nl, NFT_MSG_GETRULE, c.family);
    mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, c.table.c_str());
    mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, c.name.c_str());
    err = nl.run(nlh, [&c](const nlmsghdr *m) {
      if ((m->nlmsg_type & 0xff) == NFT_MSG_NEWRULE)
        c.hasRules = true;
    });
    if (err == ENOENT)
      continue; // gone since the chain dump: no rules
    if (err)
      throw detail::sysError("cannot read the rules of nftables chain " +
                                 nftFamilyName(c.family) + " " + c.table + " " +
                                 c.name,
                             err);
  }
  return chains;
}

std::string nftFamilyName(uint8_t family) {
  switch (family) {
  case NFPROTO_INET:
    return "inet";
  case NFPROTO_IPV4:
    return "ip";
  case NFPROTO_ARP:
    return "arp";
  case NFPROTO_NETDEV:
    return "netdev";
  case NFPROTO_BRIDGE:
    return "bridge";
  case NFPROTO_IPV6:
    return "ip6";
  default:
    return "family " + std::to_string(family);
  }
}

std::string nftHookName(uint8_t family, uint32_t hook) {
  if (family == NFPROTO_NETDEV)
    return hook == NF_NETDEV_INGRESS  ? "ingress"
           : hook == NF_NETDEV_EGRESS ? "egress"
                                      : "hook " + std::to_string(hook);
  if (family == NFPROTO_ARP)
    return hook == 0 ? "input" : hook == 1 ? "output" : "forward";
  static const char *const names[] = {"prerouting", "input",       "forward",
                                      "output",     "postrouting", "ingress"};
  return hook < 6 ? names[hook] : "hook " + std::to_string(hook);
}

std::vector<std::string> ingressClassifiers(const std::string &iface) {
  unsigned ifindex = ::if_nametoindex(iface.c_str());
  if (ifindex == 0)
    return {}; // nothing runs there (the load that follows says so)
  std::vector<std::string> out;
  // The ingress block: `tc filter show dev IFACE ingress` asks for parent
  // ffff:fff2, which names it for an ingress qdisc and a clsact one alike;
  // without either qdisc the dump is empty.
  detail::Netlink nl(NETLINK_ROUTE);
  nlmsghdr *nlh = nl.request(RTM_GETTFILTER, NLM_F_DUMP);
  auto *tcm =
      static_cast<tcmsg *>(mnl_nlmsg_put_extra_header(nlh, sizeof(tcmsg)));
  tcm->tcm_family = AF_UNSPEC;
  tcm->tcm_ifindex = int(ifindex);
  tcm->tcm_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
  std::set<std::string> seen;
  int err = nl.run(nlh, [&](const nlmsghdr *m) {
    if (m->nlmsg_type != RTM_NEWTFILTER)
      return;
    auto *t = static_cast<const tcmsg *>(mnl_nlmsg_get_payload(m));
    auto a = detail::attributes(m, sizeof(tcmsg));
    std::string kind = a.count(TCA_KIND) ? attrString(a[TCA_KIND]) : "?";
    // A u32 filter comes as several messages (its hash tables and keys):
    // one line per kind and preference.
    std::string what = "tc filter " + kind + " pref " +
                       std::to_string(TC_H_MAJ(t->tcm_info) >> 16) + " on " +
                       iface + " ingress";
    if (seen.insert(what).second)
      out.push_back(what);
  });
  if (err)
    throw detail::sysError("cannot read the tc filters of " + iface, err);
  // tcx (bpf_mprog, 6.6+): a kernel without it refuses the attach type.
  constexpr auto TcxIngress = static_cast<enum bpf_attach_type>(46);
  uint32_t ids[64], count = 64;
  if (bpf_prog_query(int(ifindex), TcxIngress, 0, nullptr, ids, &count) == 0) {
    for (uint32_t i = 0; i < count && i < 64; ++i)
      out.push_back("tcx program " + std::to_string(ids[i]) + " on " + iface +
                    " ingress");
  } else if (errno != EINVAL && errno != EOPNOTSUPP) {
    throw detail::sysError("cannot ask for the tcx programs of " + iface,
                           errno);
  }
  return out;
}

std::array<bool, 2> translatedConnections() {
  std::array<bool, 2> found{false, false};
  int sock = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (sock < 0 && (errno == EPROTONOSUPPORT || errno == EAFNOSUPPORT))
    return found;
  if (sock >= 0)
    ::close(sock);
  detail::Netlink nl(NETLINK_NETFILTER);
  for (int i = 0; i < 2; ++i) {
    nlmsghdr *nlh = nl.request(
        uint16_t((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET), NLM_F_DUMP);
    auto *nfg = static_cast<nfgenmsg *>(
        mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = i == 0 ? AF_INET : AF_INET6;
    nfg->version = NFNETLINK_V0;
    nfg->res_id = 0;
    int err = nl.run(nlh, [&found, i](const nlmsghdr *m) {
      auto a = detail::attributes(m, sizeof(nfgenmsg));
      if (a.count(CTA_STATUS) && (attrBe32(a[CTA_STATUS]) & IPS_NAT_MASK))
        found[size_t(i)] = true;
    });
    // No ctnetlink in this kernel: nothing translated if conntrack holds
    // nothing (its per-namespace count, which exists while it is loaded).
    if (err == EINVAL || err == EOPNOTSUPP || err == ENOENT) {
      std::ifstream count("/proc/sys/net/netfilter/nf_conntrack_count");
      unsigned long n = 0;
      if (!(count >> n) || n == 0)
        return {false, false};
      throw detail::sysError(
          "cannot read the conntrack table (" + std::to_string(n) +
              " entries; is nf_conntrack_netlink available?)",
          err);
    }
    if (err)
      throw detail::sysError("cannot read the conntrack table", err);
  }
  return found;
}

} // namespace r2x::runtime
