//===- runtime/StatsJson.cpp - the counters as JSON -----------------------===//
//
/// \file
/// statsJson(): what statsTable() shows, as JSON built with nlohmann::json
/// (keys in a fixed order). The fields are described in docs/user-guide.md
/// ("Counters as JSON").
//===----------------------------------------------------------------------===//
#include "runtime/Stats.h"

#include <nlohmann/json.hpp>

namespace r2x::runtime {

namespace {

using Json = nlohmann::ordered_json;

Json counts(const contract::CounterValue &c) {
  return Json{{"packets", c.packets}, {"bytes", c.bytes}};
}

/// The kernel's side of a rule or policy: its counts, or that the kernel's
/// rule there is no longer the one XDP's program was compiled from.
Json kernelSide(const std::optional<KernelCount> &k) {
  if (k && k->paired) {
    Json j{{"status", "paired"}};
    j.update(counts(k->count));
    return j;
  }
  return Json{{"status", "changed"}};
}

Json rule(const RuleCount &r, bool kernel) {
  ShownRule shown = showRule(r.rule);
  Json j = counts(r.count);
  j["target"] = shown.target;
  j["prot"] = shown.prot;
  j["opt"] = shown.opt;
  j["in"] = shown.in;
  j["out"] = shown.out;
  j["source"] = shown.source;
  j["destination"] = shown.destination;
  j["goto"] = shown.isGoto;
  j["matches"] = shown.matches;
  j["key"] = r.key.empty() ? Json(nullptr) : Json(r.key);
  if (kernel)
    j["kernel"] = kernelSide(r.kernel);
  return j;
}

Json chain(const ChainCount &c, bool kernel) {
  Json j{{"name", c.name}};
  if (c.user) {
    j["references"] = c.references;
  } else {
    j["policy"] = c.policy;
    j["policy_counters"] = counts(c.policyCount);
    if (kernel)
      j["kernel_policy_counters"] = kernelSide(c.policyKernel);
  }
  Json rules = Json::array();
  for (const RuleCount &r : c.rules)
    rules.push_back(rule(r, kernel));
  j["rules"] = std::move(rules);
  return j;
}

} // namespace

std::string statsJson(const Stats &stats) {
  Json program{{"id", stats.progId},
               {"mode", stats.mode == XdpMode::Native ? "native" : "generic"},
               {"dispatcher", stats.dispatcherId
                                  ? Json{{"id", stats.dispatcherId}}
                                  : Json(nullptr)}};
  Json tables = Json::array();
  for (const std::string &table : stats.tables) {
    Json chains = Json::array();
    for (const ChainCount &c : stats.chains)
      if (c.table == table)
        chains.push_back(chain(c, stats.kernel.has_value()));
    tables.push_back(Json{{"name", table}, {"chains", std::move(chains)}});
  }
  program["handover"] = stats.handover;
  // Why XDP decides no packet, or null when it decides what it can.
  program["hand_all"] =
      stats.handAll.empty() ? Json(nullptr) : Json(stats.handAll);
  if (stats.logLost)
    program["log_events_not_written"] = counts(*stats.logLost);
  // The kernel's side: where it was read from, why it is missing, or null
  // when not asked for (a standalone program without --kernel-counters).
  Json kernel(nullptr);
  if (stats.kernel)
    kernel = Json{{"backend", *stats.kernel}};
  else if (!stats.kernelError.empty())
    kernel = Json{{"backend", nullptr}, {"error", stats.kernelError}};
  Json j{{"interface", stats.iface},
         {"ifindex", stats.ifindex},
         {"program", std::move(program)},
         {"kernel", std::move(kernel)},
         {"tables", std::move(tables)}};
  return j.dump(2) + "\n";
}

} // namespace r2x::runtime
