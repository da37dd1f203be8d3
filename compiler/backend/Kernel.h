//===- compiler/backend/Kernel.h - kernel numbers by name -------*- C++ -*-===//
//
/// \file
/// Protocol numbers, EtherTypes, ICMP types, header offsets, BPF helper
/// ids, XDP actions and FIB results, as the code generators use them. The
/// values come from the system's headers (the kernel's UAPI: linux/bpf.h,
/// linux/if_ether.h; glibc's netinet/), so each number is spelled with its
/// kernel name (IPPROTO_TCP, ETH_P_8021Q, BPF_FUNC_fib_lookup) and has one
/// home. What those headers lack is defined here with the kernel's name.
//===----------------------------------------------------------------------===//
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace r2x::backend::kernel {

//===-- Ethernet and VLAN -------------------------------------------------===//

/// Offset of the EtherType in the Ethernet header (struct ethhdr).
constexpr uint64_t EthProto = offsetof(struct ethhdr, h_proto);
static_assert(EthProto == 12 && ETH_HLEN == 14);
/// An 802.1Q / 802.1ad tag: TCI, then the next EtherType (VLAN_HLEN and
/// VLAN_VID_MASK of the kernel's linux/if_vlan.h, which is not UAPI).
constexpr uint64_t VlanHlen = 4;
constexpr uint64_t VlanTci = 0, VlanProto = 2;
constexpr uint16_t VlanVidMask = 0x0fff;

//===-- IPv4 (struct iphdr, netinet/ip.h) ---------------------------------===//

constexpr uint64_t Ip4Hlen = sizeof(struct iphdr); ///< without options
constexpr uint64_t Ip4Tos = offsetof(struct iphdr, tos);
constexpr uint64_t Ip4TotLen = offsetof(struct iphdr, tot_len);
constexpr uint64_t Ip4FragOff = offsetof(struct iphdr, frag_off);
constexpr uint64_t Ip4Ttl = offsetof(struct iphdr, ttl);
constexpr uint64_t Ip4Protocol = offsetof(struct iphdr, protocol);
constexpr uint64_t Ip4Check = offsetof(struct iphdr, check);
constexpr uint64_t Ip4Saddr = offsetof(struct iphdr, saddr);
constexpr uint64_t Ip4Daddr = offsetof(struct iphdr, daddr);
static_assert(Ip4Hlen == 20 && Ip4Ttl == 8 && Ip4Check == 10 && Ip4Daddr == 16);
/// frag_off's flags and offset (host order): IP_DF, IP_MF, IP_OFFMASK
/// (glibc's names for the kernel's IP_DF, IP_MF and IP_OFFSET).
constexpr uint16_t Ip4Df = IP_DF, Ip4Mf = IP_MF, Ip4OffMask = IP_OFFMASK;

//===-- IPv6 (struct ip6_hdr, netinet/ip6.h) ------------------------------===//

constexpr uint64_t Ip6Hlen = sizeof(struct ip6_hdr);
constexpr uint64_t Ip6PayloadLen = offsetof(struct ip6_hdr, ip6_plen);
constexpr uint64_t Ip6Nexthdr = offsetof(struct ip6_hdr, ip6_nxt);
constexpr uint64_t Ip6HopLimit = offsetof(struct ip6_hdr, ip6_hlim);
constexpr uint64_t Ip6Saddr = offsetof(struct ip6_hdr, ip6_src);
constexpr uint64_t Ip6Daddr = offsetof(struct ip6_hdr, ip6_dst);
static_assert(Ip6Hlen == 40 && Ip6HopLimit == 7 && Ip6Saddr == 8 &&
              Ip6Daddr == 24);

//===-- transport headers -------------------------------------------------===//

constexpr uint64_t TcpHlen = sizeof(struct tcphdr); ///< without options
constexpr uint64_t UdpHlen = sizeof(struct udphdr);
constexpr uint64_t IcmpHlen =
    sizeof(struct icmphdr); ///< type, code, checksum, 4 more
constexpr uint64_t TcpCheck = offsetof(struct tcphdr, check);
constexpr uint64_t UdpCheck = offsetof(struct udphdr, check);
constexpr uint64_t IcmpCheck = offsetof(struct icmphdr, checksum);
/// The ICMP error types (the kernel's icmp_is_err()); NR_ICMP_TYPES is
/// the highest type conntrack knows.
constexpr uint8_t IcmpErrorTypes[] = {ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH,
                                      ICMP_REDIRECT, ICMP_TIME_EXCEEDED,
                                      ICMP_PARAMETERPROB};
static_assert(NR_ICMP_TYPES == 18);
/// ICMP queries' identifier (struct icmphdr's un.echo.id).
constexpr uint64_t IcmpId = offsetof(struct icmphdr, un.echo.id);
static_assert(TcpHlen == 20 && UdpHlen == 8 && IcmpHlen == 8 &&
              TcpCheck == 16 && UdpCheck == 6 && IcmpCheck == 2 && IcmpId == 4);
/// Source and destination ports, the first two 16-bit words of TCP and UDP.
constexpr uint64_t L4Sport = 0, L4Dport = 2;

//===-- struct bpf_fib_lookup (linux/bpf.h) -------------------------------===//

constexpr uint64_t FibSize = sizeof(struct bpf_fib_lookup);
constexpr uint64_t FibFamily = offsetof(struct bpf_fib_lookup, family);
constexpr uint64_t FibL4Protocol = offsetof(struct bpf_fib_lookup, l4_protocol);
constexpr uint64_t FibTotLen = offsetof(struct bpf_fib_lookup, tot_len);
constexpr uint64_t FibIfindex = offsetof(struct bpf_fib_lookup, ifindex);
constexpr uint64_t FibTos = offsetof(struct bpf_fib_lookup, tos);
constexpr uint64_t FibFlowinfo = offsetof(struct bpf_fib_lookup, flowinfo);
constexpr uint64_t FibSrc = offsetof(struct bpf_fib_lookup, ipv4_src);
constexpr uint64_t FibDst = offsetof(struct bpf_fib_lookup, ipv4_dst);
constexpr uint64_t FibSmac = offsetof(struct bpf_fib_lookup, smac);
constexpr uint64_t FibDmac = offsetof(struct bpf_fib_lookup, dmac);
static_assert(FibSize == 64 && FibIfindex == 8 && FibSrc == 16 &&
              FibDst == 32 && FibSmac == 52 && FibDmac == 58);

//===-- a device's IPv4 configuration (linux/ip.h) ------------------------===//

/// IPV4_DEVCONF_FORWARDING of linux/ip.h (whose struct iphdr clashes with
/// netinet/ip.h's): in_device's cnf.data[] holds it at this index minus 1,
/// where IN_DEV_FORWARD() reads it.
constexpr unsigned Ipv4DevconfForwarding = 1;

//===-- struct xdp_md (linux/bpf.h) ---------------------------------------===//

/// The context's fields by index, each a u32 (the code generators read them
/// through a struct of six i32 and llvm.preserve.static.offset).
enum XdpMdField : unsigned {
  MdData = 0,
  MdDataEnd = 1,
  MdIngressIfindex = 3,
  MdFields = 6
};
static_assert(offsetof(struct xdp_md, data_end) == 4 * MdDataEnd &&
              offsetof(struct xdp_md, ingress_ifindex) ==
                  4 * MdIngressIfindex &&
              sizeof(struct xdp_md) == 4 * MdFields);

} // namespace r2x::backend::kernel
