//===- runtime/OtherHooks.h - what else judges received packets -*- C++ -*-===//
//
/// \file
/// What the kernel runs on received packets besides iptables' tables, for
/// `--accelerate` to know whether the ruleset it compiles is all the kernel
/// decides with (compiler/driver/KernelRuleset.h).
///
/// The base chains nftables runs in the current network namespace (every
/// family: ip, ip6, inet, netdev, bridge, arp), read over nfnetlink. The
/// chains iptables-nft makes are among them; so are those of native
/// nftables rulesets (nftables.service, firewalld's nftables back end,
/// kube-proxy's nftables mode), which iptables-save does not show but the
/// kernel runs on the same packets. And the traffic-control classifiers on
/// a device's ingress (tc filters of an ingress or clsact qdisc, tcx BPF
/// programs), which run after XDP and before netfilter.
//===----------------------------------------------------------------------===//
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace r2x::runtime {

/// One base chain (a chain with a hook) as the kernel describes it.
struct NftBaseChain {
  uint8_t family = 0; ///< NFPROTO_*
  std::string table, name;
  std::string type;                 ///< "filter", "nat" or "route"
  uint32_t hook = 0;                ///< NF_INET_* (NF_NETDEV_* for netdev)
  int32_t priority = 0;             ///< the hook priority
  bool policyDrop = false;          ///< the chain's policy is drop
  bool dormant = false;             ///< its table is dormant (runs nothing)
  bool hasRules = false;            ///< the chain holds at least one rule
  std::vector<std::string> devices; ///< netdev/inet ingress: bound devices
};

/// Every base chain of the namespace. Empty when the kernel has no
/// nftables at all (no nf_tables module). Throws LoadError when nftables
/// exists but cannot be read.
std::vector<NftBaseChain> nftBaseChains();

/// "ip", "ip6", "inet", "netdev", "bridge", "arp" (else the number).
std::string nftFamilyName(uint8_t family);
/// The hook's name as nft prints it ("prerouting", "input", "ingress", ...).
std::string nftHookName(uint8_t family, uint32_t hook);

/// The classifiers on `iface`'s ingress, each described ("tc filter u32
/// pref 49152", "tcx program 42"): every filter of its ingress block (an
/// ingress or clsact qdisc) and every program attached at BPF_TCX_INGRESS
/// (kernel 6.6+; none before). None for a device that does not exist.
/// Throws LoadError.
std::vector<std::string> ingressClassifiers(const std::string &iface);

/// Whether conntrack holds a translated connection (IPS_SRC_NAT or
/// IPS_DST_NAT) of each family ([0] IPv4, [1] IPv6), from a ctnetlink
/// dump of the table. Such an entry outlives the rule that made it:
/// conntrack still rewrites its packets at nat PREROUTING under a ruleset
/// without NAT. False for both when the kernel has no conntrack. Throws
/// LoadError.
std::array<bool, 2> translatedConnections();

} // namespace r2x::runtime
