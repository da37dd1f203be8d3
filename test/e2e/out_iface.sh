#!/usr/bin/env bash
# test/e2e/out_iface.sh - `-o` against the kernel: the same FORWARD rules
# decide the same datagrams in iptables and in rule2xdp's program.
#
#                                  +-- c1x 10.2.1.1 --- c0 10.2.1.2 C1
#   A a0 10.1.0.1 --- b0 10.1.0.2 B
#                                  +-- c2x 10.2.2.1 --- c0 10.2.2.2 C2
#                                      (MTU 1000)
#
# test/e2e/rules/oif4.rules (FORWARD, matched on -o with names, `+` and
# `!`, in a user chain, and on a datagram B must fragment: too big for
# c2x's MTU, DF clear) is run three ways on B:
#  1. kernel: installed with iptables-restore, no XDP;
#  2. standalone: compiled by rule2xdp onto b0, iptables empty;
#  3. hand-over: compiled with --pass-unsupported onto b0 and installed.
# From A, COUNT datagrams per destination port to C1 and to C2; C1 and C2
# count them per port (count-only INPUT rules), after a last marker datagram
# that every rule lets through (FIFO on each path: once it is counted,
# everything sent before it has arrived or been dropped). The per-port
# counts must be equal in the three runs and equal to the table below (so
# the test cannot pass by dropping nothing or everything); in run 3 XDP
# must have dropped the datagrams itself (its --stats counters).
# Needs root; fails (never skips) without it. Everything lives in
# namespaces, a bpffs and a /run/netns of its own (see lib.sh).
set -euo pipefail
R2X_NAME=out_iface
while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift 2 ;;
  --tools) TOOLS=$2; shift 2 ;;
  *) echo "usage: $0 [--rule2xdp PATH] [--tools DIR]" >&2; exit 2 ;;
  esac
done
export R2X TOOLS
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
r2x_private_mounts "$@"
r2x_find_tools
RULES=$here/rules/oif4.rules
IPT=iptables-nft

NS_C1= NS_C2=
cleanup() {
  local rc=$? ns
  set +e
  trap - EXIT
  for ns in "$NS_A" "$NS_B" "$NS_C1" "$NS_C2"; do
    [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
  done
  r2x_forget_locks
  rm -rf /sys/fs/bpf/rule2xdp 2>/dev/null
  [ -n "$TMP" ] && rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run="r2x-$$-$RANDOM"
TMP=$(mktemp -d /tmp/r2x-oif.XXXXXX)
NS_A=$run-a NS_B=$run-b NS_C1=$run-c1 NS_C2=$run-c2
for ns in "$NS_A" "$NS_B" "$NS_C1" "$NS_C2"; do
  r2x_netns_add "$ns"
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 >/dev/null
  ip -n "$ns" link set lo up
done
# Created directly inside the namespaces: never a host interface.
ip link add a0 netns "$NS_A" type veth peer name b0 netns "$NS_B"
ip link add c1x netns "$NS_B" type veth peer name c0 netns "$NS_C1"
ip link add c2x netns "$NS_B" type veth peer name c0 netns "$NS_C2"
ip -n "$NS_B" link set c2x mtu 1000
addr() { ip -n "$1" addr add "$3" dev "$2" && ip -n "$1" link set "$2" up; }
addr "$NS_A" a0 10.1.0.1/24
addr "$NS_B" b0 10.1.0.2/24
addr "$NS_B" c1x 10.2.1.1/24
addr "$NS_B" c2x 10.2.2.1/24
addr "$NS_C1" c0 10.2.1.2/24
addr "$NS_C2" c0 10.2.2.2/24
ip -n "$NS_A" route add 10.2.0.0/16 via 10.1.0.2
ip -n "$NS_C1" route add default via 10.2.1.1
ip -n "$NS_C2" route add default via 10.2.2.1
# Static neighbours: no datagram waits for ARP, the FIB answers SUCCESS.
mac() { ip -n "$1" -br link show "$2" | awk '{print $3}'; }
ip -n "$NS_A" neigh replace 10.1.0.2 lladdr "$(mac "$NS_B" b0)" dev a0 nud permanent
ip -n "$NS_B" neigh replace 10.1.0.1 lladdr "$(mac "$NS_A" a0)" dev b0 nud permanent
ip -n "$NS_B" neigh replace 10.2.1.2 lladdr "$(mac "$NS_C1" c0)" dev c1x nud permanent
ip -n "$NS_B" neigh replace 10.2.2.2 lladdr "$(mac "$NS_C2" c0)" dev c2x nud permanent
ip netns exec "$NS_B" sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
# DF clear on A's datagrams, so B fragments the big ones for c2x.
ip netns exec "$NS_A" sysctl -q -w net.ipv4.ip_no_pmtu_disc=1 >/dev/null
ip netns exec "$NS_A" ethtool -K a0 tx off >/dev/null 2>&1 || die "ethtool tx off on a0"

in_b() { ip netns exec "$NS_B" "$@"; }
r2x_b() { nsenter --net="/run/netns/$NS_B" -- "$R2X" "$@"; }

PORTS="1001 1002 1003 1004 1005 1006 1007 1008"
MARKER=2000
COUNT=20
# The kernel's answer, worked out by hand from oif4.rules: port C1 C2 (what
# arrives of COUNT). 1007 and 1008 are sent at 1200 bytes.
EXPECTED="1001 0 20
1002 0 0
1003 0 20
1004 20 0
1005 20 20
1006 20 0
1007 20 0
1008 0 20"

# Count-only INPUT rules in C1 and C2, one per port and the marker.
for ns in "$NS_C1" "$NS_C2"; do
  for p in $PORTS $MARKER; do
    ip netns exec "$ns" $IPT -A INPUT -p udp --dport "$p" ||
      die "cannot add a counting rule in $ns"
  done
done
counted() { # NS PORT: datagrams counted by C's rule for PORT
  ip netns exec "$1" $IPT -vxnL INPUT |
    awk -v p="dpt:$2" '$0 ~ p"$" || $0 ~ p" " {print $1; exit}'
}
marker_in() { [ "$(counted "$1" $MARKER)" -ge "$2" ]; }

ROUND=0
round() { # NAME: send everything, wait for the markers, write the counts
  local name=$1 p size c
  ROUND=$((ROUND + 1))
  for ns in "$NS_C1" "$NS_C2"; do ip netns exec "$ns" $IPT -Z INPUT; done
  for p in $PORTS; do
    size=64
    case $p in 1007 | 1008) size=1200 ;; esac
    for c in 10.2.1.2 10.2.2.2; do
      ip netns exec "$NS_A" "$SEND" --size "$size" "$c" "$p" "$COUNT" >/dev/null ||
        die "udp_send to $c:$p failed"
    done
  done
  for c in 10.2.1.2 10.2.2.2; do
    ip netns exec "$NS_A" "$SEND" "$c" $MARKER 1 >/dev/null || die "marker to $c"
  done
  r2x_wait_until "C1's marker ($name)" marker_in "$NS_C1" 1
  r2x_wait_until "C2's marker ($name)" marker_in "$NS_C2" 1
  for p in $PORTS; do
    echo "$p $(counted "$NS_C1" "$p") $(counted "$NS_C2" "$p")"
  done >"$TMP/$name.counts"
  say "--- $name: port, arrived at C1, at C2"
  cat "$TMP/$name.counts"
}

in_b $IPT-restore <"$RULES" || die "iptables-restore in B failed"
round kernel
in_b $IPT -F FORWARD && in_b $IPT -F ONLYC1 && in_b $IPT -X ONLYC1 ||
  die "cannot empty B's ruleset"
r2x_b -f "$RULES" --load b0 >"$TMP/load.out" 2>&1 ||
  die "standalone load failed: $(cat "$TMP/load.out")"
round standalone
r2x_b --unload b0 >/dev/null || die "--unload failed"
in_b $IPT-restore <"$RULES" || die "iptables-restore in B failed"
r2x_b -f "$RULES" --pass-unsupported --load b0 >"$TMP/load.out" 2>&1 ||
  die "hand-over load failed: $(cat "$TMP/load.out")"
round handover
r2x_b --stats b0 >"$TMP/stats.out" || die "--stats failed"
r2x_b --unload b0 >/dev/null || die "--unload failed"

printf '%s\n' "$EXPECTED" >"$TMP/expected.counts"
for name in kernel standalone handover; do
  diff -u "$TMP/expected.counts" "$TMP/$name.counts" ||
    die "$name: the counts differ from the kernel's expected ones"
done
# XDP dropped in hand-over mode: the -o DROP rules counted there.
xdp_drops=$(awk '$5 == "DROP" {n += $1} END {print n + 0}' "$TMP/stats.out")
[ "$xdp_drops" -gt 0 ] || die "hand-over: XDP dropped nothing: $(cat "$TMP/stats.out")"
say "--- hand-over --stats:"
cat "$TMP/stats.out"
say "out_iface: OK (kernel, standalone and hand-over agree; XDP dropped $xdp_drops in hand-over mode)"
