//===- test/diff/Generate.h - random rules and datagrams ---------*- C++ -*-===//
//
/// \file
/// Seeded, reproducible generation of single iptables rules from the grammar
/// rule2xdp supports, and of valid test datagrams (one frame, or a whole
/// fragmented datagram) whose fields overlap the rules' addresses, protocols
/// and ports. Rule K of seed S and its datagrams depend only on (S, K), so
/// `--seed S --only K` replays one ruleset exactly.
//===----------------------------------------------------------------------===//
#pragma once

#include "test/diff/Topology.h"

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

namespace r2x::diff {

/// A deterministic generator (std::mt19937_64 is specified exactly; the
/// distributions of <random> are not, so none is used).
class Rng {
public:
  Rng(uint64_t seed, uint64_t stream);
  uint64_t next() { return rng_(); }
  uint64_t below(uint64_t n) { return n ? rng_() % n : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <class T> T pick(std::initializer_list<T> xs) {
    return *(xs.begin() + below(xs.size()));
  }
  template <class T> const T &pick(const std::vector<T> &xs) {
    return xs[below(xs.size())];
  }

private:
  std::mt19937_64 rng_;
};

struct RuleSpec {
  std::vector<std::string> words; // as given to iptables and rule2xdp
  std::string text;
  std::string table; // "filter" or "raw"
  bool hasPorts = false; // --sport/--dport
  bool invertedFullPortRange = false; // ! --sport 0:65535 and the like
};

RuleSpec makeRule(Rng &rng);
/// A rule given as text (words separated by blanks, no quoting).
RuleSpec ruleFromText(const std::string &text);

/// Which destinations datagrams use: the brief's set, or that set plus the
/// limited broadcast, multicast and martian destinations (--wide).
enum class DestinationSet { Standard, Wide };

struct Datagram {
  Ingress in = Ingress::FromA;
  std::vector<std::vector<uint8_t>> frames; // >1: fragments, in order
  uint32_t dst = 0;
  bool local = false; // B delivers it locally (INPUT), else it forwards it
  std::string summary;
};

Datagram makeDatagram(Rng &rng, const Topology &topo, uint16_t ipId,
                      DestinationSet dsts);

} // namespace r2x::diff
