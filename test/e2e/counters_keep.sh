#!/bin/bash
# test/e2e/counters_keep.sh - a --load that replaces a program keeps the
# counters of the rules that did not change, and `--stats --json` says the
# same as the table, on the demo network of lib.sh.
#
#  1. P1: DROP udp dpt:1001, 1002, 1003 (INPUT policy ACCEPT). A sends N1,
#     N2, N3 datagrams to them and M to :4321 (passed: the policy counts).
#  2. P2 replaces P1: dpt:1001 unchanged, dpt:1004 inserted before the
#     others, dpt:1002 changed (a comment), dpt:1003 unchanged but now one
#     rule further down. Right after the replace: 1001 shows N1, 1003 N3,
#     the policy M; the inserted and the changed rule 0.
#  3. K more to each port: every counter grows by K.
# Each reading is `--stats --json`, parsed with python3's json module and
# compared with the table `--stats` prints (same packets and bytes per rule,
# same policy counters); bytes are packets x 46 (20 IP + 8 UDP + 18 payload).
#
#   counters_keep.sh [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
N1=100 N2=200 N3=300 M=50 K=10
SIZE=18 LEN=46 # payload bytes, IP total length

# counts: prints "PORT PACKETS BYTES" per INPUT rule and "policy PACKETS
# BYTES", from --stats --json, after checking it against the table.
counts() {
  r2x_b --stats veth-b --json >"$TMP/stats.json" || die "--stats --json failed"
  r2x_b --stats veth-b >"$TMP/stats.txt" || die "--stats failed"
  python3 - "$TMP/stats.json" "$TMP/stats.txt" <<'PY'
import json, re, sys
j = json.load(open(sys.argv[1]))
table = open(sys.argv[2]).read().splitlines()
assert j["interface"] == "veth-b", j["interface"]
assert j["program"]["id"] > 0 and j["program"]["mode"] in ("native", "generic")
(filt,) = [t for t in j["tables"] if t["name"] == "filter"]
chains = {c["name"]: c for c in filt["chains"]}
inp = chains["INPUT"]
# The table's lines, in order: "Chain INPUT (policy ACCEPT P packets, B bytes)"
# and one line per rule: "PKTS BYTES TARGET ...".
rows, policies = [], {}
for line in table:
    m = re.match(r"Chain (\S+) \(policy (\S+) (\d+) packets, (\d+) bytes\)", line)
    if m:
        policies[m[1]] = (m[2], int(m[3]), int(m[4]))
    elif re.match(r"\s*\d+\s+\d+\s", line):
        rows.append(line.split())
jrules = [r for c in filt["chains"] for r in c["rules"]]
assert len(rows) == len(jrules), (rows, jrules)
for row, r in zip(rows, jrules):
    assert (int(row[0]), int(row[1]), row[2]) == (r["packets"], r["bytes"], r["target"]), (row, r)
    assert r["matches"] in " ".join(row), (row, r)
for name, c in chains.items():
    assert policies[name] == (c["policy"], c["policy_counters"]["packets"],
                              c["policy_counters"]["bytes"]), (name, policies, c)
for r in inp["rules"]:
    assert r["key"] and len(r["key"]) == 16, r
    port = re.search(r"dpt:(\d+)", r["matches"])[1]
    print(port, r["packets"], r["bytes"])
p = inp["policy_counters"]
print("policy", p["packets"], p["bytes"])
PY
}

expect() { # WHAT PORT PACKETS
  local got
  got=$(awk -v p="$2" '$1 == p {print $2 " " $3}' "$TMP/counts")
  [ "$got" = "$3 $(($3 * LEN))" ] || die "$1: $2 counts '$got', want '$3 $(($3 * LEN))' (all: $(tr '\n' ';' <"$TMP/counts"))"
}

# send PORT COUNT ...: datagrams from A, then the :4321 marker count last;
# returns once B's socket on :4321 has them all (every datagram before them
# on the same veth queue met the program).
ROUND=0
send() {
  local marker=$1 port count
  shift
  ROUND=$((ROUND + 1))
  r2x_start_sink mark$ROUND 4321 --count "$marker" --timeout-ms 30000
  while [ $# -gt 0 ]; do
    port=$1 count=$2
    shift 2
    [ "$(r2x_send "$port" "$count" --size $SIZE)" = "$count" ] || die "send to :$port"
  done
  [ "$(r2x_send 4321 "$marker" --size $SIZE)" = "$marker" ] || die "send to :4321"
  r2x_wait_sink mark$ROUND
  [ "$(r2x_sink_count mark$ROUND)" = "$marker" ] || die "marker datagrams lost"
}

r2x_make_network
printf '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 1001 -j DROP\n-A INPUT -p udp --dport 1002 -j DROP\n-A INPUT -p udp --dport 1003 -j DROP\nCOMMIT\n' >"$TMP/p1.rules"
printf '*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 1001 -j DROP\n-A INPUT -p udp --dport 1004 -j DROP\n-A INPUT -p udp --dport 1002 -m comment --comment changed -j DROP\n-A INPUT -p udp --dport 1003 -j DROP\nCOMMIT\n' >"$TMP/p2.rules"

say "== 1. P1, and traffic"
r2x_b -f "$TMP/p1.rules" --load veth-b || die "--load P1 failed"
send $M 1001 $N1 1002 $N2 1003 $N3
counts >"$TMP/counts"
expect P1 1001 $N1
expect P1 1002 $N2
expect P1 1003 $N3
expect P1 policy $M
say "   1001: $N1, 1002: $N2, 1003: $N3, policy: $M"

say "== 2. P2 replaces P1"
ID1=$(r2x_xdp_prog_id)
r2x_b -f "$TMP/p2.rules" --load veth-b || die "--load P2 failed"
[ "$(r2x_xdp_prog_id)" != "$ID1" ] || die "P2 did not replace P1"
counts >"$TMP/counts"
expect "after the replace" 1001 $N1
expect "after the replace" 1004 0
expect "after the replace" 1002 0
expect "after the replace" 1003 $N3
expect "after the replace" policy $M
say "   kept: 1001 $N1, 1003 $N3 (one rule further down), policy $M; reset: 1004 (inserted), 1002 (changed)"

say "== 3. more traffic"
send $K 1001 $K 1002 $K 1003 $K 1004 $K
counts >"$TMP/counts"
expect "after more traffic" 1001 $((N1 + K))
expect "after more traffic" 1004 $K
expect "after more traffic" 1002 $K
expect "after more traffic" 1003 $((N3 + K))
expect "after more traffic" policy $((M + K))
r2x_b --unload veth-b || die "--unload failed"
rc=0
r2x_b --stats veth-b --json >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || die "--stats --json with no program exited $rc, want 2"
say "   every counter grew by $K; --stats --json agrees with the table at every step"
say "counters_keep: all checks passed"
