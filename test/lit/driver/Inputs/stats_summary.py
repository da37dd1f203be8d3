"""One line per policy and rule of `rule2xdp --stats --json`: XDP's counts
and the kernel's side, so a lit test can check the JSON's fields."""
import json
import sys


def side(k):
    if k["status"] == "paired":
        return f"paired {k['packets']}/{k['bytes']}"
    return k["status"]


with open(sys.argv[1], encoding="utf-8") as f:
    stats = json.load(f)
print(f"kernel backend {stats['kernel']['backend']}, "
      f"handover {stats['program']['handover']}")
for table in stats["tables"]:
    for chain in table["chains"]:
        where = f"{table['name']} {chain['name']}"
        if "policy" in chain:
            p = chain["policy_counters"]
            print(f"{where} policy {chain['policy']} "
                  f"xdp {p['packets']}/{p['bytes']} "
                  f"kernel {side(chain['kernel_policy_counters'])}")
        for r in chain["rules"]:
            print(f"{where} {r['target']} {r['in']} "
                  f"xdp {r['packets']}/{r['bytes']} kernel {side(r['kernel'])}")
