//===- compiler/driver/Ifaces.cpp - the interfaces of --load --------------===//
//
/// \file
/// See Ifaces.h.
//===----------------------------------------------------------------------===//
#include "compiler/driver/Ifaces.h"

#include <stdexcept>

namespace r2x::driver {

std::vector<std::string> splitIfaces(const std::string &list,
                                     const std::string &option) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = list.find(',', start);
    out.push_back(
        list.substr(start, comma == std::string::npos ? comma : comma - start));
    if (out.back().empty())
      throw std::runtime_error("empty interface name in " + option + " `" +
                               list + "'");
    if (comma == std::string::npos)
      return out;
    start = comma + 1;
  }
}

} // namespace r2x::driver
