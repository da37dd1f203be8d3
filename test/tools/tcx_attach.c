/* test/tools/tcx_attach.c - attaches a tcx ingress program (bpf_mprog,
 * kernel 6.6+) to a device of the current network namespace and pins its
 * link, for tests of what --accelerate reports beside iptables (Debian 12's
 * bpftool cannot attach tcx). The program returns TCX_NEXT and so changes
 * nothing; removing the pin detaches it.
 *
 *   tcx_attach IFACE PIN
 *
 * Exits 0 when attached, 77 when the kernel has no tcx (the caller skips
 * that part and says so), 1 on any other error. */
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { TcxIngress = 46 /* BPF_TCX_INGRESS, newer than these headers */ };

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: tcx_attach IFACE PIN\n");
    return 1;
  }
  unsigned ifindex = if_nametoindex(argv[1]);
  if (!ifindex) {
    fprintf(stderr, "tcx_attach: no such interface: %s\n", argv[1]);
    return 1;
  }
  /* r0 = TCX_NEXT (-1); exit */
  struct bpf_insn insns[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = -1},
      {.code = BPF_JMP | BPF_EXIT},
  };
  int prog = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "r2x_tcx_test", "GPL",
                           insns, 2, NULL);
  if (prog < 0) {
    fprintf(stderr, "tcx_attach: cannot load the program: %s\n",
            strerror(errno));
    return 1;
  }
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.link_create.prog_fd = (unsigned)prog;
  attr.link_create.target_ifindex = ifindex;
  attr.link_create.attach_type = TcxIngress;
  int link = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof attr);
  if (link < 0) {
    int err = errno;
    fprintf(stderr, "tcx_attach: cannot attach to %s: %s\n", argv[1],
            strerror(err));
    return err == EINVAL ? 77 : 1;
  }
  if (bpf_obj_pin(link, argv[2]) != 0) {
    fprintf(stderr, "tcx_attach: cannot pin the link at %s: %s\n", argv[2],
            strerror(errno));
    return 1;
  }
  return 0;
}
