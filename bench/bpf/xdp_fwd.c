/*===- bench/bpf/xdp_fwd.c - the talk's xdp_fwd_prog, with the checksum fix -===
 *
 * The talk's "XDP Packet Forward": DNAT UDP 10.1.0.2:1234 -> 10.1.1.2:1234,
 * then ask the kernel's FIB where 10.1.1.2 goes, rewrite the MACs and send
 * it there. The slides leave out what a correct forwarder needs, and here
 * it is filled in:
 *  - the IPv4 header checksum and the UDP checksum (it covers the
 *    pseudo-header, so the address rewrite changes it) are updated
 *    incrementally (RFC 1624); a UDP checksum of 0 means "none" and stays 0,
 *    a computed 0 is written as 0xffff;
 *  - TTL decremented (with its checksum update), and TTL <= 1 left to the
 *    kernel, which answers with ICMP time exceeded;
 *  - bpf_redirect_map through a DEVMAP (`tx_port`, key and value the egress
 *    ifindex, filled by the loader) instead of bpf_redirect().
 * Like the slides it assumes a 20-byte IPv4 header. A redirect to a veth
 * needs an XDP program on the veth's peer (bench/run attaches one).
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef AF_INET
#define AF_INET 2
#endif

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 256);
  __type(key, __u32);
  __type(value, __u32);
} tx_port SEC(".maps");

/* RFC 1624: HC' = ~(~HC + ~m + m'), over the 16-bit halves of a 32-bit
 * field, in whatever byte order they sit in memory. */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to) {
  __u32 s = (__u16)~check;
  s += (__u16)~from + (__u16) ~(from >> 16);
  s += (__u16)to + (__u16)(to >> 16);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (__u16)~s;
}

/* The kernel's ip_decrease_ttl(). */
static __always_inline void decrease_ttl(struct iphdr *iph) {
  __u32 check = iph->check;
  check += bpf_htons(0x0100);
  iph->check = (__u16)(check + (check >= 0xffff));
  iph->ttl--;
}

SEC("xdp")
int xdp_fwd_prog(struct xdp_md *xdp) {
  void *data_end = (void *)(long)xdp->data_end;
  void *data = (void *)(long)xdp->data;
  struct bpf_fib_lookup fib = {};
  struct ethhdr *eth = data;
  struct iphdr *iph;
  struct udphdr *uh;

  if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
    return XDP_PASS;
  iph = data + sizeof(*eth);
  if ((void *)(iph + 1) > data_end || iph->ihl != 5)
    return XDP_PASS;

  if (iph->daddr == bpf_htonl(0x0a010002) && iph->protocol == IPPROTO_UDP) {
    uh = (void *)(iph + 1);
    if ((void *)(uh + 1) > data_end)
      return XDP_PASS;
    if (uh->dest == bpf_htons(1234)) {
      __u32 from = iph->daddr, to = bpf_htonl(0x0a010102);
      iph->check = csum_replace4(iph->check, from, to);
      if (uh->check) {
        uh->check = csum_replace4(uh->check, from, to);
        if (!uh->check)
          uh->check = 0xffff;
      }
      iph->daddr = to;
    }
  }
  if (iph->ttl <= 1)
    return XDP_PASS;

  fib.family = AF_INET;
  fib.tos = iph->tos;
  fib.l4_protocol = iph->protocol;
  fib.tot_len = bpf_ntohs(iph->tot_len);
  fib.ipv4_src = iph->saddr;
  fib.ipv4_dst = iph->daddr;
  fib.ifindex = xdp->ingress_ifindex;

  if (bpf_fib_lookup(xdp, &fib, sizeof(fib), 0) == BPF_FIB_LKUP_RET_SUCCESS) {
    decrease_ttl(iph);
    __builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
    return bpf_redirect_map(&tx_port, fib.ifindex, 0);
  }
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
