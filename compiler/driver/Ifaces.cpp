//===- compiler/driver/Ifaces.cpp - the interfaces of --load --------------===//
//
/// \file
/// See Ifaces.h.
//===----------------------------------------------------------------------===//
#include "compiler/driver/Ifaces.h"

#include "compiler/frontend/Lex.h"

#include <stdexcept>
#include <utility>

namespace r2x::driver {

std::vector<std::string> splitIfaces(const std::string &list,
                                     const std::string &option) {
  std::vector<std::string> out;
  for (frontend::Piece &piece : frontend::splitList(list)) {
    if (piece.text.empty())
      throw std::runtime_error("empty interface name in " + option + " `" +
                               list + "'");
    out.push_back(std::move(piece.text));
  }
  return out;
}

} // namespace r2x::driver
