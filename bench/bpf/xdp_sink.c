/*===- bench/bpf/xdp_sink.c - the forward benchmark's receiver at C --------===
 *
 * Attached to C's veth. A frame that arrived as the forward rows must
 * deliver it (IPv4 to 10.1.1.2, UDP to port 1234, TTL == SINK_TTL, IPv4
 * header checksum and full UDP checksum right) is dropped here, so the
 * veth's own counter rx_queue_0_xdp_drops counts exactly the frames that
 * were forwarded correctly; anything else is passed to C's stack and shows
 * in xdp_packets but not in xdp_drops. Only the benchmark's 60-byte frames
 * (UDP length 26) are checked; other shapes count as wrong.
 *
 * Built twice: SINK_TTL=63 (forwarded by B's kernel or XDP) and SINK_TTL=64
 * (sent fresh by a user-space proxy on B).
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef SINK_TTL
#define SINK_TTL 63
#endif
#define UDP_LEN 26

static __always_inline __u32 add16(const __u16 *p, int n, __u32 s) {
#pragma unroll
  for (int i = 0; i < n; i++)
    s += p[i];
  return s;
}

static __always_inline __u16 fold(__u32 s) {
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return (__u16)s;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *iph = data + sizeof(*eth);
  struct udphdr *uh = (void *)(iph + 1);
  if ((void *)uh + UDP_LEN > data_end)
    return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP) || iph->ihl != 5 ||
      iph->protocol != IPPROTO_UDP || iph->daddr != bpf_htonl(0x0a010102) ||
      iph->ttl != SINK_TTL || uh->dest != bpf_htons(1234) ||
      uh->len != bpf_htons(UDP_LEN) || iph->tot_len != bpf_htons(20 + UDP_LEN))
    return XDP_PASS;
  if (fold(add16((const __u16 *)iph, 10, 0)) != 0xffff)
    return XDP_PASS; /* bad IPv4 header checksum */
  if (uh->check == 0)
    return XDP_PASS; /* we send checksums; none means someone dropped it */
  /* Pseudo-header (addresses, protocol, UDP length) plus the datagram. */
  __u32 s = add16((const __u16 *)&iph->saddr, 4, 0);
  s += bpf_htons(IPPROTO_UDP) + bpf_htons(UDP_LEN);
  s = add16((const __u16 *)uh, UDP_LEN / 2, s);
  if (fold(s) != 0xffff)
    return XDP_PASS; /* bad UDP checksum (a partial one from veth, say) */
  return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
