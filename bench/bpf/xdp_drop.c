/*===- bench/bpf/xdp_drop.c - the ceiling: drop everything -----------------===
 *
 * An XDP program that looks at nothing and drops every frame: the fastest
 * any drop program can be on this path.
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_drop(struct xdp_md *ctx) { return XDP_DROP; }

char LICENSE[] SEC("license") = "GPL";
