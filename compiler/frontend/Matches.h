//===- compiler/frontend/Matches.h - x_tables match modules (-m NAME) -*- C++
//-*-===//
//
/// \file
/// The match modules rule2xdp compiles, as one table: each module's name,
/// its options (with how many words they take and whether `!` may precede
/// them), and one state object per loaded module that parses option values,
/// checks the whole rule the way the kernel's checkentry does, and produces
/// IR matches with their `iptables -vxnL` listing text.
///
/// Modules: tcp, udp, icmp, multiport, ttl, length, tos, dscp, ecn,
/// iprange, mac, pkttype, comment, u32, set. Anything else is refused by name.
//===----------------------------------------------------------------------===//
#pragma once

#include "compiler/frontend/Diagnostics.h"
#include "compiler/ir/IR.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace r2x::frontend {

struct ModuleSpec;

/// One option of a module: `--name` taking `args` words (0, 1 or 2).
struct ModuleOption {
  const char *name;
  int id; ///< private to the module
  unsigned args;
  bool negatable;
  const ModuleSpec *module = nullptr;
};

/// What the rest of the rule says that modules check against (-p).
struct RuleFacts {
  uint8_t proto = 0; ///< 0: no -p (or -p all)
  bool protoNegated = false;
  ir::Family family = ir::Family::V4;
  /// The program the rule goes into (its ipset sets, for -m set).
  const ir::Program *program = nullptr;
};

class ModuleState {
public:
  virtual ~ModuleState() = default;
  /// Parses one option of this module. `args` holds its value words.
  virtual void option(const ModuleOption &opt, const Word &optWord,
                      const std::vector<const Word *> &args, bool negated) = 0;
  /// Whole-rule checks; appends the module's IR matches (and comments).
  virtual void finish(const RuleFacts &facts, std::vector<ir::Match> &out,
                      std::vector<std::string> &comments) = 0;
  const ModuleSpec *spec = nullptr;
  Word where; ///< the `-m NAME` (or `-p NAME`) word that loaded it
  /// The rule's family: which header a module reads can depend on it
  /// (xt_dscp reads the IPv4 TOS byte or the IPv6 traffic class).
  ir::Family family = ir::Family::V4;
  /// A later `-m` of the same module takes the options that follow it, as
  /// iptables gives them to the newest instance.
  bool superseded = false;
};

struct ModuleSpec {
  const char *name;
  std::vector<ModuleOption> options;
  std::unique_ptr<ModuleState> (*make)();
  bool repeatable;  ///< may be loaded twice in one rule (comment)
  int families = 3; ///< bit 0: iptables, bit 1: ip6tables
};

/// Whether iptables (V4) or ip6tables (V6) has this module.
bool moduleFits(const ModuleSpec &m, ir::Family f);

/// The module called `name`, or null.
const ModuleSpec *findModule(std::string_view name);

/// Every module rule2xdp compiles, in the table's order (for the generated
/// table in docs/matches.md).
std::vector<const ModuleSpec *> compiledModules();

/// Loads a module for a rule of family `family`. Throws Diagnostic if it
/// cannot be loaded.
std::unique_ptr<ModuleState> loadModule(const ModuleSpec &spec,
                                        const Word &where, ir::Family family);

/// The module `-p PROTO` loads implicitly when one of its options appears
/// (tcp, udp, icmp; icmp6 for ip6tables), or null.
const ModuleSpec *protocolModule(uint8_t proto, ir::Family family);

/// Helpers shared with the base-option parser.
ir::PortRange parsePortRange(const Word &opt, const Word &val,
                             const char *proto);
uint16_t parsePort(const Word &opt, const Word &val, const std::string &text,
                   size_t offset, const char *proto);
/// XTTYPE_PORTRC (PORT[:PORT]), as libxt_udp's --sport reads it.
ir::PortRange parseUdpPortRange(const Word &opt, const Word &val);
/// ADDR[/LEN|/MASK] of `family`, as -s reads it (RuleParser.cpp).
ir::Match::Address parseNetwork(const Word &opt, const Word &val,
                                ir::Family family);
/// A protocol name or number, as -p reads it (RuleParser.cpp).
uint8_t parseProtocolValue(const Word &opt, const Word &val);

} // namespace r2x::frontend
