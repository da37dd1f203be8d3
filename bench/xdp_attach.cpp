//===- bench/xdp_attach.cpp - attach a reference XDP program to a device
//---===//
//
/// `xdp_attach`: loads one program from a BPF object and attaches it to an
/// interface of the current network namespace (run it through
/// `nsenter --net=/run/netns/NS`) with a netlink XDP attachment, which stays
/// after this process exits and goes away with the device (bench/run deletes
/// the namespaces) or with --detach. Nothing is pinned.
///
///   xdp_attach --iface IF --obj FILE.o --prog NAME [--mode native|generic]
///              [--devmap MAP --devmap-iface IF2 ...]
///   xdp_attach --iface IF --detach [--mode native|generic]
///
/// --devmap fills the DEVMAP MAP with key = value = the ifindex of each
/// --devmap-iface, for a program that does bpf_redirect_map(MAP, ifindex).
//===----------------------------------------------------------------------===//
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {
[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "xdp_attach: %s\n", msg.c_str());
  std::exit(1);
}
unsigned ifindexOf(const std::string &name) {
  unsigned i = if_nametoindex(name.c_str());
  if (!i)
    die("no interface " + name + " in this namespace");
  return i;
}
} // namespace

int main(int argc, char **argv) {
  std::string iface, obj, prog, mode = "native", devmap;
  std::vector<std::string> devmapIfaces;
  bool detach = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--detach") {
      detach = true;
      continue;
    }
    if (i + 1 >= argc)
      die("option " + a + " needs a value");
    std::string v = argv[++i];
    if (a == "--iface")
      iface = v;
    else if (a == "--obj")
      obj = v;
    else if (a == "--prog")
      prog = v;
    else if (a == "--mode")
      mode = v;
    else if (a == "--devmap")
      devmap = v;
    else if (a == "--devmap-iface")
      devmapIfaces.push_back(v);
    else
      die("unknown option " + a);
  }
  if (iface.empty() || (!detach && (obj.empty() || prog.empty())) ||
      (mode != "native" && mode != "generic"))
    die("usage: xdp_attach --iface IF (--obj FILE --prog NAME | --detach) "
        "[--mode native|generic] [--devmap MAP --devmap-iface IF ...]");
  unsigned ifindex = ifindexOf(iface);
  uint32_t flags = mode == "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
  if (detach) {
    if (int err = bpf_xdp_detach(int(ifindex), flags, nullptr))
      die("detaching from " + iface + ": " + std::strerror(-err));
    return 0;
  }
  bpf_object *o = bpf_object__open_file(obj.c_str(), nullptr);
  if (!o)
    die("opening " + obj + ": " + std::strerror(errno));
  if (int err = bpf_object__load(o))
    die("loading " + obj + ": " + std::strerror(-err));
  bpf_program *p = bpf_object__find_program_by_name(o, prog.c_str());
  if (!p)
    die(obj + " has no program " + prog);
  if (!devmap.empty()) {
    bpf_map *m = bpf_object__find_map_by_name(o, devmap.c_str());
    if (!m)
      die(obj + " has no map " + devmap);
    for (const std::string &d : devmapIfaces) {
      uint32_t k = ifindexOf(d), v = k;
      if (int err = bpf_map__update_elem(m, &k, sizeof k, &v, sizeof v, 0))
        die("filling " + devmap + " with " + d + ": " + std::strerror(-err));
    }
  }
  if (int err =
          bpf_xdp_attach(int(ifindex), bpf_program__fd(p), flags, nullptr))
    die("attaching " + prog + " to " + iface + " (" + mode +
        "): " + std::strerror(-err));
  bpf_object__close(o); // the attachment keeps the program and its maps
  return 0;
}
