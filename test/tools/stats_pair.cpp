// stats_pair OBJECT.o [--json]: what `rule2xdp --stats IFACE` prints for a
// program made from OBJECT.o that has counted nothing yet (every XDP counter
// 0), with the kernel's counters of the same rules beside them, read with
// the save commands (R2X_IPTABLES_NFT_SAVE etc. name stand-ins). It runs
// the very functions --stats runs (runtime::statsFromMeta, driver::
// tryKernelCounters, runtime::statsTable/statsJson) without a kernel
// program, so the lit tests can check the pairing and both renderings.
#include "compiler/driver/KernelStats.h"
#include "runtime/Meta.h"
#include "runtime/Stats.h"
#include "runtime/Support.h"

#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>

int main(int argc, char **argv) {
  using namespace r2x;
  if (argc < 2 || (argc == 3 && std::strcmp(argv[2], "--json") != 0) ||
      argc > 3) {
    std::cerr << "usage: stats_pair OBJECT.o [--json]\n";
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  std::string image(std::istreambuf_iterator<char>(f), {});
  if (!f && !f.eof()) {
    std::cerr << "stats_pair: cannot read " << argv[1] << "\n";
    return 2;
  }
  std::string text = runtime::detail::findMetaText(image.data(), image.size());
  try {
    runtime::Stats stats =
        runtime::statsFromMeta(runtime::parseMeta(text), [](unsigned) {
          return contract::CounterValue{0, 0};
        });
    stats.iface = "(none)";
    driver::tryKernelCounters(stats, std::cerr);
    std::cout << (argc == 3 ? runtime::statsJson(stats)
                            : runtime::statsTable(stats));
  } catch (const std::exception &e) {
    std::cerr << "stats_pair: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
