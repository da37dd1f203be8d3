/*===- bench/bpf/xdp_pass.c - XDP_PASS, for a veth redirect target ---------===
 *
 * A veth accepts frames redirected to it from XDP only while its peer runs
 * NAPI, which an attached XDP program turns on.
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }

char LICENSE[] SEC("license") = "GPL";
