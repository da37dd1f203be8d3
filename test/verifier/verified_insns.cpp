//===- test/verifier/verified_insns.cpp - what the verifier spent ---------===//
///
/// \file
/// `verified_insns OBJECT [MAX]`: loads a rule2xdp object with libbpf (no
/// attach, no pin, nothing left behind) and prints the instructions the
/// verifier processed for its program (bpf_prog_info.verified_insns).
/// Exits 1 when the kernel refuses the program (with the end of the
/// verifier's log) or when it processed more than MAX instructions. The
/// count is the kernel's own, deterministic for one kernel and object: it
/// does not depend on how busy the machine is.
//===----------------------------------------------------------------------===//
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
int quiet(enum libbpf_print_level, const char *, va_list) { return 0; }
} // namespace

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: %s OBJECT [MAX]\n", argv[0]);
    return 2;
  }
  const unsigned long max = argc == 3 ? std::strtoul(argv[2], nullptr, 10) : 0;
  libbpf_set_print(quiet);
  bpf_object *obj = bpf_object__open(argv[1]);
  if (!obj) {
    std::fprintf(stderr, "%s: cannot open: %s\n", argv[1],
                 std::strerror(errno));
    return 1;
  }
  bpf_program *prog = bpf_object__next_program(obj, nullptr);
  if (!prog) {
    std::fprintf(stderr, "%s: no program\n", argv[1]);
    return 1;
  }
  // Level 1 keeps only the failing path; its end says why.
  std::vector<char> log(16u << 20);
  bpf_program__set_log_buf(prog, log.data(), log.size());
  bpf_program__set_log_level(prog, 1);
  if (int err = bpf_object__load(obj)) {
    std::string text(log.data());
    if (text.size() > 4000)
      text = "...\n" + text.substr(text.size() - 4000);
    std::fprintf(stderr, "%s: the kernel refused the program (%s):\n%s\n",
                 argv[1], std::strerror(-err), text.c_str());
    bpf_object__close(obj);
    return 1;
  }
  bpf_prog_info info;
  std::memset(&info, 0, sizeof info);
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len) != 0) {
    std::fprintf(stderr, "%s: bpf_obj_get_info_by_fd: %s\n", argv[1],
                 std::strerror(errno));
    bpf_object__close(obj);
    return 1;
  }
  bpf_object__close(obj);
  std::printf("%s: verified_insns %u\n", argv[1], info.verified_insns);
  if (max && info.verified_insns > max) {
    std::fprintf(stderr, "%s: %u instructions verified, more than %lu\n",
                 argv[1], info.verified_insns, max);
    return 1;
  }
  return 0;
}
