#!/bin/bash
# test/e2e/limit_log.sh - a rate-limited LOG rule (`-m limit ... -j LOG`, as
# ufw writes its "[UFW BLOCK]" rules) carried out in XDP with a token bucket
# of its own (docs/handover.md, "Rate-limited LOG"), against the kernel's
# xt_limit on the demo network of lib.sh.
#
# B's ruleset (iptables-nft-restore):
#   INPUT udp dpt:7010 -m limit --limit 3/min --limit-burst 4 LOG
#   INPUT udp dpt:7010 DROP
#   INPUT udp dpt:7011 -m limit --limit 3/min --limit-burst 4 ACCEPT  (handed over)
#   INPUT udp dpt:7011 DROP
#  1. `--accelerate veth-b`: N datagrams to :7010 in one burst are all
#     dropped by XDP; XDP's LOG rule counts the burst (4), its DROP N, the
#     kernel's rules 0; `rule2xdp --log veth-b` prints the 4 lines.
#  2. N to :7011: handed over at the limit match (the kernel's rules count
#     4 ACCEPT and N - 4 DROP, XDP's nothing).
#  3. The program removed (--unload) and the kernel's counters zeroed: the
#     same N to :7010 make the kernel count the same: LOG 4, DROP N.
#
#   limit_log.sh [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
IPT=iptables-nft
for c in "$IPT" "$IPT-restore"; do
  command -v "$c" >/dev/null || die "$c is missing"
done
N=20 BURST=4

# kernel_count TARGET PORT: the kernel's count of B's INPUT rule.
kernel_count() {
  local n
  n=$(in_b "$IPT" -L INPUT -v -x -n | awk -v t="$1" -v p="dpt:$2" 'NR > 2 && $3 == t && $0 ~ p {print $1; exit}')
  [ -n "$n" ] || die "no $1 rule for :$2 in B's INPUT"
  printf '%s\n' "$n"
}
xdp_count() { # TARGET PORT
  local n
  n=$(r2x_rule_packets "$1 .*dpt:$2")
  [ -n "$n" ] || die "no $1 rule for :$2 in --stats: $(r2x_b --stats veth-b)"
  printf '%s\n' "$n"
}
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || die "$1: $2, want $3"
  say "   $1: $2"
}
burst() { # PORT: N datagrams at once, then a fence
  local out
  out=$(in_a "$SEND" 10.1.0.2 "$1" $N) || die "udp_send to :$1 failed: $out"
  [ "$out" = "sent $N" ] || die "udp_send to :$1: $out"
  r2x_fence 4321 10
}

r2x_make_network
cat >"$TMP/rules" <<R
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 7010 -m limit --limit 3/min --limit-burst $BURST -j LOG --log-prefix "r2x-limit "
-A INPUT -p udp -m udp --dport 7010 -j DROP
-A INPUT -p udp -m udp --dport 7011 -m limit --limit 3/min --limit-burst $BURST -j ACCEPT
-A INPUT -p udp -m udp --dport 7011 -j DROP
COMMIT
R
in_b "$IPT-restore" "$TMP/rules" || die "$IPT-restore failed in B"

say "== 1. XDP: the LOG rule's own bucket"
r2x_b --accelerate veth-b >"$TMP/acc.out" 2>&1 || die "--accelerate failed: $(cat "$TMP/acc.out")"
sed 's/^/   | /' "$TMP/acc.out"
grep -q "note: LOG rate-limited in XDP" "$TMP/acc.out" || die "the listing does not say the LOG rule is rate-limited in XDP"
burst 7010
expect "XDP's LOG count of $N to :7010" "$(xdp_count LOG 7010)" $BURST
expect "XDP's DROP count" "$(xdp_count DROP 7010)" $N
expect "the kernel's LOG and DROP counts" "$(kernel_count LOG 7010) $(kernel_count DROP 7010)" "0 0"
timeout "$R2X_WAIT_S" nsenter --net="/run/netns/$NS_B" -- \
  "$R2X" --log veth-b --log-count $BURST >"$TMP/log.txt" ||
  die "rule2xdp --log did not print $BURST lines: $(cat "$TMP/log.txt")"
expect "rule2xdp --log lines with the prefix" "$(grep -c '^r2x-limit IN=veth-b ' "$TMP/log.txt")" $BURST

say "== 2. a limit on an ACCEPT rule: handed over"
burst 7011
expect "the kernel's ACCEPT and DROP counts of $N to :7011" \
  "$(kernel_count ACCEPT 7011) $(kernel_count DROP 7011)" "$BURST $((N - BURST))"
expect "XDP's DROP count for :7011" "$(xdp_count DROP 7011)" 0

say "== 3. the kernel alone, the same burst"
r2x_b --unload veth-b >/dev/null || die "--unload failed"
in_b "$IPT" -Z INPUT
burst 7010
expect "the kernel's LOG and DROP counts of $N to :7010" \
  "$(kernel_count LOG 7010) $(kernel_count DROP 7010)" "$BURST $N"
say "PASS"
