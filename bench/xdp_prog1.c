/*===- bench/xdp_prog1.c - the talk's hand-written XDP drop program ---------===
 *
 * The baseline rule2xdp is measured against: the XDP program from the talk
 * ("XDP Packet Drop", `xdp_prog1`) that drops UDP to 10.1.0.2:1234 and passes
 * everything else. It is the talk's logic, with the bounds checks the
 * verifier requires filled in where the slides say "...". Like the slides it
 * assumes a 20-byte IPv4 header and knows nothing of VLANs, fragments or
 * counters, so it does less than rule2xdp's program; that is the point of
 * the comparison.
 *
 * Section `xdp` instead of the slides' `xdp1`: libbpf 1.x infers the
 * program type from the section name.
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_prog1(struct xdp_md *xdp) {
  void *data_end = (void *)(long)xdp->data_end;
  void *data = (void *)(long)xdp->data;
  struct ethhdr *eth = data;
  struct iphdr *iph;
  struct udphdr *uh;

  if ((void *)(eth + 1) > data_end)
    return XDP_PASS;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    iph = data + sizeof(*eth);
    if ((void *)(iph + 1) > data_end)
      return XDP_PASS;
    if (iph->daddr == bpf_htonl(0x0a010002)) {
      if (iph->protocol == IPPROTO_UDP) {
        uh = data + sizeof(*eth) + sizeof(*iph);
        if ((void *)(uh + 1) > data_end)
          return XDP_PASS;
        if (uh->dest == bpf_htons(1234))
          return XDP_DROP;
      }
    }
  }
  return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
