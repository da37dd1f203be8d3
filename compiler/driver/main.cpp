//===- compiler/driver/main.cpp - the rule2xdp command
//-----------------------===//
//
/// \file
/// Wires the stages together; holds no logic of its own beyond choosing what
/// to run. rule2xdp's own options (kOwnOptions below: -o, --emit, --load,
/// --tc, --pass-unsupported, --classifier, --stats, ...) are taken out of
/// argv and parsed with CLI11; every other word is
/// the iptables command, handed with its argv position to the frontend.
///
/// Exit status: 0 success, 1 bad input (nothing written), 2 kernel or load
/// error, 3 internal error (a bug in rule2xdp).
//===----------------------------------------------------------------------===//
#include "compiler/backend/Backend.h"
#include "compiler/driver/Accelerate.h"
#include "compiler/driver/Edit.h"
#include "compiler/driver/Ifaces.h"
#include "compiler/driver/KernelStats.h"
#include "compiler/driver/SetUpdate.h"
#include "compiler/driver/TcMain.h"
#include "compiler/frontend/Diagnostics.h"
#include "compiler/frontend/Handover.h"
#include "compiler/frontend/RuleParser.h"
#include "compiler/frontend/SaveFile.h"
#include "compiler/frontend/SetsFile.h"
#include "runtime/Loader.h"
#include "runtime/LogReader.h"
#include "runtime/Stats.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <malloc.h>
#include <net/if.h>
#include <optional>
#include <set>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using namespace r2x;

constexpr int kExitOk = 0, kExitInput = 1, kExitKernel = 2, kExitInternal = 3;

struct Options {
  std::string output;
  std::string emit = "obj";
  std::string load, unload, stats;
  std::string log, logTo = "stdout"; ///< --log IFACE, --log-to
  uint64_t logCount = 0;             ///< --log-count
  std::string accelerate; ///< --accelerate (compiler/driver/Accelerate.h)
  bool follow = false;    ///< with --accelerate: keep following
  std::string mode = "native";
  bool multiprog = false;      ///< --load through libxdp's dispatcher
  bool json = false;           ///< --stats as JSON
  bool kernelCounters = false; ///< --stats: the kernel's beside, always
  bool version = false;
  std::vector<std::string> tc; // --tc commands (compiler/driver/TcMain.h)
  std::string tcBatch;
  bool passUnsupported = false;
  std::string classifier = "auto"; ///< --classifier (compiler/classify)
  unsigned iterLeaf = classify::Options{}.iterLeaf; ///< --classifier-iter-leaf
  unsigned wordsPerRule =
      classify::Options{}.wordsPerRule; ///< --classifier-words
  std::string forest = "auto";          ///< --classifier-forest
  std::string sets; ///< --sets: `ipset save` output for -m set
  /// --set-add / --set-del NAME ENTRY IFACE (compiler/driver/SetUpdate.h)
  std::vector<std::string> setAdd, setDel;
};

/// rule2xdp's own options and whether they take a value.
const std::vector<std::pair<std::string, bool>> kOwnOptions = {
    {"-o", true},
    {"--output", true},
    {"--emit", true},
    {"--load", true},
    {"--mode", true},
    {"--unload", true},
    {"--stats", true},
    {"-h", false},
    {"--help", false},
    {"--tc", true},
    {"--tc-batch", true},
    {"--pass-unsupported", false},
    {"--classifier", true},
    {"--classifier-iter-leaf", true},
    {"--classifier-words", true},
    {"--classifier-forest", true},
    {"--version", false},
    {"--multiprog", false},
    {"--json", false},
    {"--accelerate", true},
    {"--follow", false},
    {"--kernel-counters", false},
    {"--sets", true},
    {"--log", true},
    {"--log-to", true},
    {"--log-count", true}};

/// The classifier's options from the command line's.
classify::Options classifierOptions(const Options &o) {
  classify::Options cls;
  cls.mode = classify::parseMode(o.classifier).value_or(classify::Mode::Never);
  cls.iterLeaf = o.iterLeaf;
  cls.wordsPerRule = o.wordsPerRule;
  using F = classify::Options::Forest;
  cls.forest = o.forest == "never"    ? F::Never
               : o.forest == "always" ? F::Always
                                      : F::Auto;
  return cls;
}

/// Splits argv into rule2xdp's options (for CLI11) and the iptables words,
/// which keep their argv indexes for diagnostics.
void partition(int argc, char **argv, std::vector<std::string> &own,
               std::vector<std::string> &rule, std::vector<int> &ruleIdx,
               std::vector<std::string> &files,
               std::optional<ir::Family> &family) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool matched = false;
    // `-f FILE` reads a ruleset. iptables' own -f (fragment) takes no value,
    // so -f followed by "-" or by a word that is no option is a file.
    if ((a == "-f" || a == "--file") && i + 1 < argc &&
        (std::string(argv[i + 1]) == "-" ||
         (argv[i + 1][0] != '-' && std::string(argv[i + 1]) != "!"))) {
      files.push_back(argv[++i]);
      continue;
    }
    // --set-add / --set-del take three words.
    if ((a == "--set-add" || a == "--set-del") && i + 3 < argc) {
      own.push_back(a);
      for (int k = 0; k < 3; ++k)
        own.push_back(argv[++i]);
      continue;
    }
    if (a.rfind("--file=", 0) == 0) {
      files.push_back(a.substr(7));
      continue;
    }
    // -4 / -6 (as in iptables-restore files): which family the rule or
    // ruleset is for; -6 makes the words ip6tables'.
    if (a == "-6" || a == "--ipv6" || a == "-4" || a == "--ipv4") {
      family = (a == "-6" || a == "--ipv6") ? ir::Family::V6 : ir::Family::V4;
      continue;
    }
    if ((a == "-o" || a.rfind("--output", 0) == 0) &&
        std::find(own.begin(), own.end(), "-o") != own.end())
      throw std::invalid_argument(
          "-o given twice: -o is rule2xdp's output file; write iptables' "
          "output interface as --out-interface");
    for (const auto &[name, takesValue] : kOwnOptions) {
      if (a == name) {
        own.push_back(a == "--output" ? "-o" : a);
        if (takesValue && i + 1 < argc)
          own.push_back(argv[++i]);
        matched = true;
        break;
      }
      if (takesValue && name.size() > 2 && a.rfind(name + "=", 0) == 0) {
        own.push_back(a);
        matched = true;
        break;
      }
    }
    if (!matched) {
      rule.push_back(a);
      ruleIdx.push_back(i);
    }
  }
}

/// Writes `bytes` to `path` ("-" is stdout) only as a whole: a temporary
/// file renamed into place, so a failure never leaves a partial output. A
/// symbolic link keeps pointing where it did (its target is replaced), and
/// a path that is not a regular file (/dev/null, a FIFO) is written as it
/// is: renaming over it would replace the device with a file.
void writeOutput(const std::string &path, const std::string &bytes) {
  namespace fs = std::filesystem;
  auto put = [&](const std::string &to) {
    std::ofstream f(to, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    f.flush();
    if (!f)
      throw std::runtime_error("cannot write " + path);
  };
  if (path == "-" || path.empty()) {
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    std::fflush(stdout);
    return;
  }
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st)) {
    put(path);
    return;
  }
  std::string target = path;
  if (fs::is_symlink(fs::symlink_status(path, ec)))
    target = fs::weakly_canonical(path).string();
  std::string tmp = target + ".tmp." + std::to_string(getpid());
  try {
    put(tmp);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, target);
}

std::string readText(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f)
    throw std::runtime_error("cannot read " + path);
  // In blocks (a pipe has no size); a character at a time took a third of
  // the compile of a 1,000,000-entry set file.
  std::string text;
  std::vector<char> block(1 << 16);
  while (f.read(block.data(), std::streamsize(block.size())) || f.gcount() > 0)
    text.append(block.data(), size_t(f.gcount()));
  if (f.bad())
    throw std::runtime_error("cannot read " + path);
  return text;
}

std::vector<uint8_t> readFile(const std::string &path) {
  std::string text = readText(path);
  return std::vector<uint8_t>(text.begin(), text.end());
}

runtime::LoadOptions loadOptions(const Options &o) {
  runtime::LoadOptions l;
  l.mode = o.mode == "generic" ? runtime::XdpMode::Generic
                               : runtime::XdpMode::Native;
  l.multiprog = o.multiprog;
  return l;
}

/// `--stats IFACE [--json] [--kernel-counters]`. A hand-over program's
/// counters come with the kernel's (compiler/driver/KernelStats.h), a
/// standalone one's only when asked. Returns the exit status.
int runStats(const Options &o) {
  runtime::Stats stats = runtime::readStats(o.stats);
  if (stats.handover || o.kernelCounters)
    driver::tryKernelCounters(stats, std::cerr);
  std::string text =
      o.json ? runtime::statsJson(stats) : runtime::statsTable(stats);
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() ||
      std::fflush(stdout) != 0)
    throw runtime::LoadError("cannot write the statistics");
  return kExitOk;
}

/// Options that only mean something beside another: the message, or empty.
std::string misplacedOption(const Options &o) {
  if (o.json && o.stats.empty())
    return "--json goes with --stats";
  if (o.kernelCounters && o.stats.empty())
    return "--kernel-counters goes with --stats";
  if ((o.logTo != "stdout" || o.logCount) && o.log.empty())
    return "--log-to and --log-count go with --log";
  if (o.multiprog && o.load.empty() && o.accelerate.empty())
    return "--multiprog goes with --load or --accelerate";
  if (o.follow && o.accelerate.empty())
    return "--follow goes with --accelerate";
  if (!o.sets.empty() &&
      (!o.accelerate.empty() || !o.tc.empty() || !o.tcBatch.empty() ||
       !o.stats.empty() || !o.unload.empty()))
    return "--sets goes with iptables rules to compile (-f FILE or a rule); "
           "--accelerate keeps -m set handed over to the kernel";
  if (!o.accelerate.empty() &&
      (!o.load.empty() || !o.unload.empty() || !o.stats.empty() ||
       !o.tc.empty() || !o.tcBatch.empty() || !o.output.empty() ||
       o.emit != "obj" || o.passUnsupported))
    return "--accelerate reads, compiles (always in hand-over mode) and "
           "loads the kernel's ruleset itself: it takes no -o, --emit, "
           "--load, --unload, --stats, --tc or --pass-unsupported";
  return {};
}

/// The words of argv split by partition(), with rule2xdp's options parsed.
struct Invocation {
  Options o;
  std::vector<std::string> ruleArgs; ///< the iptables words
  std::vector<int> ruleIdx;          ///< their argv indexes
  std::vector<std::string> files;    ///< -f FILE
  std::optional<ir::Family> family;  ///< -4 / -6
};

/// rule2xdp's options, declared to CLI11.
void declareOptions(CLI::App &app, Options &o) {
  app.add_option("-o,--output", o.output,
                 "Output file ('-' for stdout); iptables' -o is written "
                 "--out-interface");
  app.add_option("--emit", o.emit, "What to produce")
      ->check(CLI::IsMember({"ir", "llvm", "asm", "obj"}));
  app.add_option("--load", o.load,
                 "Attach to these interfaces (comma-separated; they share the "
                 "program's maps)");
  app.add_option("--mode", o.mode, "XDP attach mode")
      ->check(CLI::IsMember({"native", "generic"}));
  app.add_flag("--multiprog", o.multiprog,
               "Load through libxdp's multi-program dispatcher, sharing the "
               "interface (automatic when it already has one)");
  app.add_option("--accelerate", o.accelerate,
                 "Compile the ruleset the kernel runs now (iptables-save, "
                 "ip6tables-save) in hand-over mode and load it on these "
                 "interfaces; the kernel keeps its rules");
  app.add_flag("--follow", o.follow,
               "With --accelerate: stay in the foreground and keep the "
               "program equal to the kernel's ruleset as it changes");
  app.add_option("--unload", o.unload, "Detach rule2xdp's program");
  app.add_option("--stats", o.stats, "Print per-rule counters");
  app.add_option("--log", o.log,
                 "Print the lines the kernel's LOG target would write for the "
                 "packets LOG rules of the program on this interface logged");
  app.add_option("--log-to", o.logTo,
                 "With --log: stdout (the default) or kmsg (/dev/kmsg, at "
                 "the rule's log level)")
      ->check(CLI::IsMember({"stdout", "kmsg"}));
  app.add_option("--log-count", o.logCount,
                 "With --log: stop after this many lines");
  app.add_flag("--json", o.json, "With --stats: print JSON");
  app.add_flag("--kernel-counters", o.kernelCounters,
               "With --stats: show the kernel's counters of the same rules "
               "beside XDP's also for a standalone program (a hand-over "
               "program's always show them)");
  app.add_flag("--version", o.version, "Print the version");
  app.add_option("--tc", o.tc,
                 "A tc command (the words after `tc`), e.g. "
                 "'filter add dev eth0 ingress u32 match ... action drop'");
  app.add_option("--tc-batch", o.tcBatch, "A tc -batch file ('-' for stdin)");
  app.add_option(
         "--classifier", o.classifier,
         "Runs of simple rules as decision trees: never, auto (runs of " +
             std::to_string(classify::kDefaultMinRun) +
             " rules or more; the default), always")
      ->check(CLI::IsMember({"never", "auto", "always"}));
  app.add_option("--classifier-iter-leaf", o.iterLeaf,
                 "Classified runs whose longest leaf holds more rules than "
                 "this scan leaves with bpf_iter_num rather than a bounded "
                 "loop (default " +
                     std::to_string(o.iterLeaf) + ")");
  app.add_option("--classifier-words", o.wordsPerRule,
                 "A classified run's trees may take 65536 + this many words "
                 "a rule (at most 8M); past it their leaves grow; a run that "
                 "does not fit even as leaves is classified in halves, one "
                 "after the other; 0 splits nearly every run, for tests "
                 "(default " +
                     std::to_string(o.wordsPerRule) + ")");
  app.add_option("--classifier-forest", o.forest,
                 "Classify a run as several trees, one per group of rules "
                 "wide or narrow in the same addresses, each walked for "
                 "every packet: auto (when it is the smaller; the default), "
                 "always (whenever the run has two groups, for tests), never")
      ->check(CLI::IsMember({"never", "auto", "always"}));
  app.add_option("--set-add", o.setAdd,
                 "Add ENTRY to set NAME of the program loaded on IFACE, "
                 "without a reload")
      ->expected(3)
      ->type_name("NAME ENTRY IFACE");
  app.add_option("--set-del", o.setDel,
                 "Delete ENTRY from set NAME of the program loaded on IFACE")
      ->expected(3)
      ->type_name("NAME ENTRY IFACE");
  app.add_option("--sets", o.sets,
                 "The ipset sets -m set names, as `ipset save` writes them "
                 "(hash:ip, hash:net)");
  app.add_flag("--pass-unsupported", o.passUnsupported,
               "Hand-over mode: the kernel keeps the same rules; what XDP "
               "cannot decide goes to it (XDP_PASS), and the rules handed "
               "over are listed on stderr (docs/handover.md). tc: hand "
               "packets whose action XDP cannot do to the kernel");
}

/// What is wrong with the options given together, or empty.
std::string checkOptions(const Invocation &inv) {
  const Options &o = inv.o;
  // A `-o eth1` copied from an iptables rule would otherwise quietly become
  // a file named eth1.
  if (!o.output.empty() && o.output != "-" &&
      if_nametoindex(o.output.c_str()) != 0)
    return "`-o " + o.output +
           "' names a network interface, but -o is rule2xdp's output "
           "file; write iptables' output interface as --out-interface";
  if (!o.output.empty() &&
      (!o.load.empty() || !o.unload.empty() || !o.stats.empty()))
    return "-o has no meaning with --load, --unload or --stats";
  if (std::string m = misplacedOption(o); !m.empty())
    return m;
  if ((!o.unload.empty() || !o.stats.empty()) && !inv.ruleArgs.empty())
    return "--unload and --stats take no rule (got `" + inv.ruleArgs[0] + "')";
  return {};
}

/// Reads the rules of -f FILE... into `program`; false (after printing
/// every error of every file) when one does not parse.
bool readRulesets(const Invocation &inv, frontend::SourceManager &sm,
                  ir::Program &program) {
  std::vector<frontend::Warning> warnings;
  std::vector<frontend::Diagnostic> errors; // all of them, in one run
  for (const std::string &f : inv.files) {
    std::string text =
        f == "-" ? std::string(std::istreambuf_iterator<char>(std::cin), {})
                 : readText(f);
    std::string name = f == "-" ? "<stdin>" : f;
    // -6 / -4 say which; otherwise the content does, else iptables.
    std::optional<ir::Family> detected = frontend::detectFamily(name, text);
    ir::Family fam = inv.family.value_or(detected.value_or(ir::Family::V4));
    frontend::parseSaveFile(name, text, sm, program, warnings, fam, &errors);
    program.source.push_back({true, fam, name, text, {}});
  }
  if (!errors.empty()) {
    for (const frontend::Diagnostic &d : errors)
      std::cerr << frontend::format(sm, frontend::Severity::Error, d.pos,
                                    d.what(), d.length);
    std::cerr << "rule2xdp: " << errors.size()
              << (errors.size() == 1 ? " error" : " errors")
              << ", nothing written\n";
    return false;
  }
  frontend::checkChainGraph(program);
  for (const frontend::Warning &w : warnings)
    std::cerr << frontend::format(sm, frontend::Severity::Warning, w.pos,
                                  w.message, w.length);
  return true;
}

/// The one rule of the command line into `program`, its words keeping
/// their argv positions for diagnostics.
void readCommandRule(const Invocation &inv, const std::vector<std::string> &all,
                     frontend::SourceManager &sm, ir::Program &program) {
  std::vector<frontend::Word> words = sm.commandLineWords(all, 1);
  std::vector<frontend::Word> rule;
  for (int idx : inv.ruleIdx)
    rule.push_back(words[static_cast<size_t>(idx - 1)]);
  frontend::CommandContext ctx;
  ctx.family = inv.family.value_or(ir::Family::V4);
  ctx.handover = inv.o.passUnsupported;
  frontend::parseCommand(rule, program, ctx);
  program.source.push_back({false, ctx.family, {}, {}, inv.ruleArgs});
}

/// The iptables path: rules (from files or the command line) compiled and
/// written, or loaded. Returns the exit status.
int compileRules(const Invocation &inv, const std::vector<std::string> &all,
                 const std::vector<std::string> &loadIfaces,
                 frontend::SourceManager &sm) {
  const Options &o = inv.o;
  ir::Program program;
  uint32_t replaceId = 0; ///< the loaded program a command changes
  if (o.passUnsupported)
    program.mode = ir::Mode::Handover;
  if (!o.sets.empty())
    frontend::parseSetsFile(o.sets, readText(o.sets), sm, program);
  if (!inv.files.empty()) {
    if (!inv.ruleArgs.empty())
      throw frontend::Diagnostic(
          {"<command line>", 0, 0, -1},
          "give a rule or a ruleset (-f FILE), not both (`" + inv.ruleArgs[0] +
              "' is not a rule2xdp option)");
    if (!readRulesets(inv, sm, program))
      return kExitInput;
  } else {
    // `--load IFACE COMMAND` changes the ruleset loaded there, if any
    // (Edit.h); in hand-over mode the command is a ruleset of its own.
    if (!o.load.empty() && !o.passUnsupported)
      replaceId = driver::readLoadedSource(loadIfaces, sm, program);
    readCommandRule(inv, all, sm, program);
    if (replaceId)
      frontend::checkChainGraph(program);
  }
  if (program.mode == ir::Mode::Handover) {
    frontend::finishHandover(program);
    std::cerr << frontend::handoverListing(program, sm);
  }
  program.finalize();
  classify::Options cls = classifierOptions(o);

  if (!o.load.empty()) {
    if (o.emit != "obj")
      throw frontend::Diagnostic({"<command line>", 0, 0, -1},
                                 "--load takes an object: drop --emit");
    std::string obj = backend::compile(program, backend::Emit::Obj, cls);
    runtime::LoadOptions lo = loadOptions(o);
    lo.replaceOnly = replaceId;
    runtime::load(loadIfaces, lo, std::vector<uint8_t>(obj.begin(), obj.end()));
    return kExitOk;
  }

  std::string out;
  if (o.emit == "ir")
    out = ir::print(program);
  else if (o.emit == "llvm")
    out = backend::compile(program, backend::Emit::LLVM, cls);
  else if (o.emit == "asm")
    out = backend::compile(program, backend::Emit::Asm, cls);
  else {
    if (o.output.empty() || (o.output == "-" && isatty(STDOUT_FILENO)))
      throw frontend::Diagnostic(
          {"<command line>", 0, 0, -1},
          "an object needs an output file: add -o FILE.o");
    out = backend::compile(program, backend::Emit::Obj, cls);
  }
  writeOutput(o.output, out);
  return kExitOk;
}

/// Everything after the options parsed: picks the job and does it. Errors
/// are exceptions, main() prints them.
int run(const Invocation &inv, const std::vector<std::string> &all,
        frontend::SourceManager &sm) {
  const Options &o = inv.o;
  // `--load b0,b1`, split once here for every path that loads (iptables
  // rules, an object file, tc filters).
  const std::vector<std::string> loadIfaces =
      o.load.empty() ? std::vector<std::string>{} : driver::splitIfaces(o.load);
  if (!o.accelerate.empty()) {
    if (!inv.ruleArgs.empty() || !inv.files.empty())
      throw frontend::Diagnostic(
          {"<command line>", 0, 0, -1},
          "--accelerate reads the kernel's ruleset: give no rule or -f");
    driver::AccelerateRequest req;
    req.ifaces = driver::splitIfaces(o.accelerate, "--accelerate");
    req.loadOptions = loadOptions(o);
    req.classifier = classifierOptions(o);
    req.follow = o.follow;
    return driver::runAccelerate(req);
  }
  if (!o.unload.empty()) {
    runtime::unload(o.unload);
    return kExitOk;
  }
  for (const auto *update : {&o.setAdd, &o.setDel})
    if (!update->empty()) {
      if (!inv.ruleArgs.empty() || !inv.files.empty())
        throw frontend::Diagnostic(
            {"<command line>", 0, 0, -1},
            "--set-add and --set-del take no rule or -f");
      driver::updateSet(update == &o.setAdd, (*update)[0], (*update)[1],
                        (*update)[2]);
      return kExitOk;
    }
  if (!o.stats.empty())
    return runStats(o);
  if (!o.log.empty()) {
    runtime::followLog({o.log, o.logTo == "kmsg", o.logCount}, std::cerr);
    return kExitOk;
  }

  // --load IFACE FILE.o: an object instead of a rule.
  if (!o.load.empty() && inv.files.empty() && inv.ruleArgs.size() == 1 &&
      inv.ruleArgs[0][0] != '-') {
    runtime::load(loadIfaces, loadOptions(o), readFile(inv.ruleArgs[0]));
    return kExitOk;
  }

  if (!o.tc.empty() || !o.tcBatch.empty()) {
    if (!inv.ruleArgs.empty() || !inv.files.empty())
      throw frontend::Diagnostic({"<command line>", 0, 0, -1},
                                 "give tc commands (--tc, --tc-batch) or "
                                 "iptables rules, not both");
    if (auto out = driver::runTc({o.tc, o.tcBatch, o.passUnsupported, o.emit,
                                  o.output, loadIfaces, loadOptions(o)},
                                 all, sm))
      writeOutput(o.output, *out);
    return kExitOk;
  }
  return compileRules(inv, all, loadIfaces, sm);
}

} // namespace

/// A run that compiles once and exits allocates and frees large buffers
/// many times (rules, tree, LLVM's module, the object); glibc's defaults
/// hand each back to the kernel and fault it in again, a fifth of the time
/// of 100,000 rules or a 1,000,000-entry set on this machine. Keep freed
/// memory in the heap instead (peak memory is unchanged: it is reused).
/// Not for --follow, which lives on between compiles.
void keepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20); // glibc's largest
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  mallopt(M_TOP_PAD, 64 << 20);
}

int main(int argc, char **argv) {
  Invocation inv;
  std::vector<std::string> own;
  try {
    partition(argc, argv, own, inv.ruleArgs, inv.ruleIdx, inv.files,
              inv.family);
  } catch (const std::invalid_argument &e) {
    std::cerr << "rule2xdp: error: " << e.what() << "\n";
    return kExitInput;
  }

  CLI::App app{
      "rule2xdp: compile iptables rules into XDP programs and "
      "attach them.\n\nUsage:\n"
      "  rule2xdp [-t TABLE] -A CHAIN MATCHES [-j TARGET] -o FILE.o\n"
      "  rule2xdp -f RULESET (iptables-save format; - for stdin) -o FILE.o\n"
      "  (-6: the rule or ruleset is ip6tables'; files say it themselves)\n"
      "  rule2xdp --load IFACE[,IFACE...] [--mode native|generic] "
      "[--multiprog] (FILE.o | RULE)\n"
      "  rule2xdp --accelerate IFACE[,IFACE...] [--follow] [--mode ...]\n"
      "  rule2xdp --unload IFACE\n"
      "  rule2xdp --stats IFACE [--json] [--kernel-counters]\n"};
  declareOptions(app, inv.o);
  try {
    std::vector<std::string> rev(own.rbegin(), own.rend());
    app.parse(rev);
  } catch (const CLI::CallForHelp &e) {
    return app.exit(e);
  } catch (const CLI::ParseError &e) {
    app.exit(e);
    return kExitInput;
  }
  if (inv.o.version) {
    std::puts("rule2xdp 0.1.0");
    return kExitOk;
  }
  if (std::string m = checkOptions(inv); !m.empty()) {
    std::cerr << "rule2xdp: error: " << m << "\n";
    return kExitInput;
  }

  if (!inv.o.follow)
    keepFreedMemory();
  frontend::SourceManager sm;
  try {
    return run(inv, std::vector<std::string>(argv, argv + argc), sm);
  } catch (const frontend::Diagnostic &d) {
    std::cerr << frontend::format(sm, frontend::Severity::Error, d.pos,
                                  d.what(), d.length);
    return kExitInput;
  } catch (const runtime::LoadError &e) {
    std::cerr << "rule2xdp: error: " << e.what() << "\n";
    if (!e.log.empty())
      std::cerr << e.log << (e.log.back() == '\n' ? "" : "\n");
    return kExitKernel;
  } catch (const backend::LimitError &e) {
    std::cerr << "rule2xdp: error: " << e.what() << "\n";
    return kExitInput;
  } catch (const backend::BackendError &e) {
    std::cerr << "rule2xdp: internal error: " << e.what() << "\n";
    return kExitInternal;
  } catch (const std::exception &e) {
    std::cerr << "rule2xdp: error: " << e.what() << "\n";
    return kExitInput;
  }
}
