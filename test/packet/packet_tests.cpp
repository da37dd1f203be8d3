//===- test/packet/packet_tests.cpp - packet tests through the kernel -----===//
//
/// \file
/// `packet_tests`: compiles rules with the real rule2xdp binary, loads them
/// with libbpf and runs frames through BPF_PROG_TEST_RUN in network
/// namespaces of its own. Prints every failure, ends with "N passed, M
/// failed", exits non-zero if anything failed. Without root or BPF it fails;
/// it never skips.
///
///   packet_tests [--compiler PATH] [--seed N] [--iterations N]
///                [--rulesets N] [--ruleset-frames N]
///                [--big-rulesets N] [--filter SUBSTRING] [-v]
///
/// --iterations: random frames through the single-rule objects (3000).
/// --rulesets: random rulesets in the INPUT phase (the FORWARD phase gets
/// half as many), each with --ruleset-frames random frames (defaults 60 and
/// 150). --big-rulesets: random rulesets whose filter chains hold about
/// 200 rules, mostly simple (6 INPUT, half as many FORWARD). The random
/// ruleset loops use seeds derived from --seed. The rulesets of
/// test/packet/Inputs run in the INPUT phase with --ruleset-frames random
/// frames each, of a fixed seed.
//===----------------------------------------------------------------------===//
#include "test/packet/Cases.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#ifndef R2X_COMPILER
#define R2X_COMPILER "rule2xdp"
#endif

using namespace r2x::test;

namespace {

/// About how many rules the big random rulesets give each built-in filter
/// chain (RulesetRandom.cpp).
constexpr unsigned kBigRun = 200;

/// The fixed rulesets of the INPUT phase (test/packet/Inputs/*.rules), in
/// name order.
std::vector<std::string> inputRulesetFiles() {
  std::vector<std::string> paths;
  for (const auto &e : std::filesystem::directory_iterator(R2X_PACKET_INPUTS))
    if (e.path().extension() == ".rules")
      paths.push_back(e.path().string());
  std::sort(paths.begin(), paths.end());
  return paths;
}

int usage(const char *argv0) {
  std::cerr << "usage: " << argv0
            << " [--compiler PATH] [--seed N] [--iterations N]"
               " [--rulesets N] [--ruleset-frames N] [--filter SUBSTRING]"
               " [-v]\n";
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string compiler = R2X_COMPILER, filter;
  uint64_t seed =
      std::random_device{}() ^
      uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  int iterations = 3000, rulesets = 60, rulesetFrames = 150, bigRulesets = 6;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::exit(usage(argv[0]));
      }
      return argv[++i];
    };
    if (a == "--compiler")
      compiler = value();
    else if (a == "--seed")
      seed = std::stoull(value());
    else if (a == "--iterations")
      iterations = std::stoi(value());
    else if (a == "--rulesets")
      rulesets = std::stoi(value());
    else if (a == "--big-rulesets")
      bigRulesets = std::stoi(value());
    else if (a == "--ruleset-frames")
      rulesetFrames = std::stoi(value());
    else if (a == "--filter")
      filter = value();
    else if (a == "-v")
      verbose = true;
    else
      return usage(argv[0]);
  }
  std::cout << "packet_tests: compiler " << compiler << ", random seed " << seed
            << ", " << iterations << " random frames, " << rulesets << "+"
            << rulesets / 2 << " random rulesets x " << rulesetFrames
            << " frames\n"
            << std::flush;

  int passed = 0, failed = 0;
  try {
    if (access(compiler.c_str(), X_OK) != 0)
      throw std::runtime_error("the compiler " + compiler +
                               " is not executable: " + std::strerror(errno));
    Harness h(compiler, verbose, filter);
    bool broken = false;
    try {
      h.enterPhase(Phase::Input);
      inputCases(h);
      randomCases(h, seed, iterations);
      rulesetInputCases(h);
      handoverCases(h);
      randomRulesets(h, seed + 1, rulesets, rulesetFrames);
      randomRulesets(h, seed + 3, bigRulesets, rulesetFrames, kBigRun);
      fileRulesets(h, inputRulesetFiles(), rulesetFrames);
      h.enterPhase(Phase::Forward);
      forwardCases(h);
      rulesetForwardCases(h);
      randomRulesets(h, seed + 2, rulesets / 2, rulesetFrames);
      randomRulesets(h, seed + 4, bigRulesets / 2, rulesetFrames, kBigRun);
    } catch (const std::exception &e) {
      // Not a case failing but the harness unable to go on: never filtered.
      std::cout << "FAIL harness\n  " << e.what() << "\n";
      broken = true;
    }
    passed = h.passed();
    failed = h.failed() + (broken ? 1 : 0);
  } catch (const std::exception &e) {
    std::cout << "FAIL harness\n  " << e.what() << "\n";
    ++failed;
  }
  if (passed == 0 && failed == 0) {
    std::cout << "FAIL no case ran (a --filter that matches nothing?)\n";
    failed = 1;
  }
  if (failed)
    std::cout << "random seed was " << seed << "\n";
  std::cout << passed << " passed, " << failed << " failed" << std::endl;
  return failed ? 1 : 0;
}
