#!/bin/bash
# test/e2e/netns_attach.sh - a load outlives the command that made it, and
# every command acts only on this namespace's interface, on the demo network
# of lib.sh.
#
#  1. `ip netns exec B rule2xdp --load` (whose private /sys hides bpffs):
#     the program is still attached after the command ended and drops what
#     it should; --stats finds it from the interface, under `ip netns exec`
#     and under `nsenter`; --unload under `ip netns exec` removes it.
#  2. pins, where bpffs is reachable, are root-only: directories 0700, pins
#     0600, under /sys/fs/bpf/rule2xdp/net<NETNS-INODE>/IFACE.
#  3. a namespace deleted with rule2xdp's program still on its veth-b
#     leaves pins; in a new namespace whose veth-b has no program, --stats
#     and --unload say there is none (exit 2) and a --load works; the dead
#     namespace's pins are swept.
#  4. someone else's program on the interface (ip link set ... xdp obj):
#     --load refuses (exit 2) and leaves it, --unload and --stats find no
#     rule2xdp program.
#
#   netns_attach.sh [--rule2xdp PATH] [--tools DIR] [--other OBJ]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

OTHER=
while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  --other) OTHER=$2; shift ;;
  -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
[ -f "$OTHER" ] || die "--other OBJ (test/e2e/bpf/other_drop.c, built) is missing"
K=200

exits() { # WANT CMD...: runs CMD, fails the test unless it exits WANT
  local want=$1 rc=0
  shift
  "$@" >"$TMP/exits.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || die "$* exited $rc, want $want: $(cat "$TMP/exits.out")"
}

drops() { # PORT: K datagrams to PORT from A; prints how many reached B
  # K datagrams to :4321 (passed) follow on the same veth queue: once they
  # all arrived, every datagram to PORT met the program.
  r2x_start_sink "d$1" "$1" --timeout-ms 30000
  r2x_start_sink "m$1" 4321 --count "$K" --timeout-ms 30000
  r2x_send "$1" "$K" >/dev/null
  r2x_send 4321 "$K" >/dev/null
  r2x_wait_sink "m$1"
  [ "$(r2x_sink_count "m$1")" = "$K" ] || die "the :4321 marker datagrams were lost"
  r2x_stop_sink "d$1"
  r2x_sink_count "d$1"
}

r2x_make_network
"$R2X" -A INPUT -p udp --dport 1234 -j DROP -o "$TMP/p1234.o"

say "== 1. a load under ip netns exec stays"
ip netns exec "$NS_B" "$R2X" --load veth-b "$TMP/p1234.o" ||
  die "rule2xdp --load under ip netns exec failed"
ID=$(r2x_xdp_prog_id)
[ -n "$ID" ] || die "no program on veth-b after the ip netns exec command ended"
got=$(drops 1234)
[ "$got" = 0 ] || die "$got of $K datagrams to :1234 reached B: the program does not drop"
exec_stats=$(ip netns exec "$NS_B" "$R2X" --stats veth-b) || die "--stats under ip netns exec failed"
nsenter_stats=$(r2x_b --stats veth-b) || die "--stats under nsenter failed"
pkts=$(awk '/dpt:1234/ {print $1}' <<<"$nsenter_stats")
[ "$pkts" = "$K" ] || die "--stats counts $pkts drops, want $K: $nsenter_stats"
[ "$exec_stats" = "$nsenter_stats" ] || die "--stats differs between ip netns exec and nsenter"
exits 0 ip netns exec "$NS_B" "$R2X" --unload veth-b
[ -z "$(r2x_xdp_prog_id)" ] || die "still attached after --unload under ip netns exec"
say "   program $ID attached by ip netns exec, dropped $K/$K; --stats and --unload found it from the interface"

say "== 2. pins are root-only"
r2x_b --load veth-b "$TMP/p1234.o" || die "--load failed"
INODE=$(stat -L -c %i "/run/netns/$NS_B")
DIR=/sys/fs/bpf/rule2xdp/net$INODE/veth-b
[ -d "$DIR" ] || die "no pin directory $DIR: $(find /sys/fs/bpf/rule2xdp)"
for d in /sys/fs/bpf/rule2xdp "/sys/fs/bpf/rule2xdp/net$INODE" "$DIR"; do
  [ "$(stat -c %a "$d")" = 700 ] || die "$d has mode $(stat -c %a "$d"), want 700"
done
for f in counters ifmatch meta; do
  [ "$(stat -c %a "$DIR/$f")" = 600 ] || die "$DIR/$f has mode $(stat -c %a "$DIR/$f"), want 600"
done
bpftool map dump pinned "$DIR/counters" >/dev/null || die "the counters pin does not open"
say "   $DIR: directories 0700, pins 0600"

say "== 3. a deleted namespace's leftovers are not this namespace's"
OLD_DIR=$DIR
pinned_id() { bpftool -j map show pinned "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
OLD_MAP=$(pinned_id "$OLD_DIR/counters")
ip netns del "$NS_B" # with the program on veth-b, and its pins
NS_B=$NS_B-2
r2x_netns_add "$NS_B"
ip -n "$NS_B" link add veth-b type veth peer name veth-x
ip -n "$NS_B" link set veth-b up
ip -n "$NS_B" link set veth-x up
[ -d "$OLD_DIR" ] || die "the deleted namespace's pins are already gone: the test shows nothing"
exits 2 r2x_b --stats veth-b
grep -q "rule2xdp has no program on veth-b" "$TMP/exits.out" || die "--stats: $(cat "$TMP/exits.out")"
exits 2 r2x_b --unload veth-b
r2x_b --load veth-b "$TMP/p1234.o" || die "--load in the new namespace failed"
[ -n "$(r2x_xdp_prog_id)" ] || die "no program on the new veth-b"
# (A new namespace may reuse the dead one's inode number, and so its
# directory name: look for the dead program's map, not for the name.)
while read -r pin; do
  [ "$(pinned_id "$pin")" != "$OLD_MAP" ] || die "the deleted namespace's pin $pin was not swept"
done < <(find /sys/fs/bpf/rule2xdp -name counters)
r2x_b --unload veth-b || die "--unload failed"
say "   --stats/--unload in the new namespace: no program (exit 2); the old pins swept at the next load"

say "== 4. someone else's program is left alone"
ip -n "$NS_B" link set dev veth-b xdp obj "$OTHER" sec xdp || die "ip link cannot attach $OTHER"
OTHER_ID=$(r2x_xdp_prog_id)
exits 2 r2x_b --load veth-b "$TMP/p1234.o"
grep -q "is not rule2xdp's" "$TMP/exits.out" || die "--load: $(cat "$TMP/exits.out")"
exits 2 r2x_b --unload veth-b
exits 2 r2x_b --stats veth-b
[ "$(r2x_xdp_prog_id)" = "$OTHER_ID" ] || die "the other program $OTHER_ID was replaced or removed"
ip -n "$NS_B" link set dev veth-b xdp off
say "   program $OTHER_ID (not rule2xdp's) kept: --load refused, --unload and --stats found no rule2xdp program"
say "netns_attach: all checks passed"
