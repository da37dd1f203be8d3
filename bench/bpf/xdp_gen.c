/*===- bench/bpf/xdp_gen.c - the traffic generator's XDP program -----------===
 *
 * Run by bench/xdp_gen through BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES: every run of it sends one frame out of the
 * interface named by ctx.ingress_ifindex (XDP_TX). The kernel recycles the
 * frame pages *with whatever the receiver wrote into them* (a DNAT or a TTL
 * decrement comes back), so the template is copied over every frame first.
 * The generator writes the template into `gen` (.bss, mmapped) after load
 * and reads `gen.sent` afterwards: the run is stopped by a signal, which
 * leaves the kernel's own count unreported.
 *===----------------------------------------------------------------------===*/
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

#define GEN_FRAME 60 /* 64 bytes on the wire with the FCS */

struct gen_state {
  unsigned char frame[64];
  __u64 sent;
};

struct gen_state gen;

SEC("xdp")
int xdp_gen(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  if (data + GEN_FRAME > data_end)
    return XDP_ABORTED;
  __builtin_memcpy(data, gen.frame, GEN_FRAME);
  gen.sent++; /* one CPU runs it (the generator pins itself) */
  return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
