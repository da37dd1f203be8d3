/*===- test/e2e/bpf/other_drop.c - another tool's XDP program ------------===
 *
 * Stands for "someone else's XDP program" in the coexistence tests
 * (multiprog.sh): xdp-loader puts it on an interface beside rule2xdp's,
 * through libxdp's dispatcher. It drops IPv4 UDP to port 4321 and passes
 * everything else, counting what it sees in `other_seen` so a test can tell
 * that packets rule2xdp passed reached it.
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))

static long (*bpf_map_lookup_elem_)(void *map, const void *key) = (void *)1;

struct {
  int (*type)[BPF_MAP_TYPE_ARRAY];
  int (*max_entries)[1];
  __u32 *key;
  __u64 *value;
} other_seen SEC(".maps");

#define DROPPED_PORT 4321

SEC("xdp")
int other_drop(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  __u32 zero = 0;
  __u64 *seen = (__u64 *)bpf_map_lookup_elem_(&other_seen, &zero);
  if (seen)
    __sync_fetch_and_add(seen, 1);
  if ((void *)(eth + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP))
    return XDP_PASS;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
    return XDP_PASS;
  struct udphdr *udp = (void *)(ip + 1);
  if ((void *)(udp + 1) > end)
    return XDP_PASS;
  return udp->dest == __builtin_bswap16(DROPPED_PORT) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
