#!/bin/bash
# test/e2e/concurrent_load.sh - rule2xdp processes on one interface take
# turns (a flock per interface under /run/rule2xdp), on the demo network of
# lib.sh.
#
#  1. N loads of N different programs started at once on veth-b, which has
#     no program: every one exits 0 (without the lock, two of them see an
#     empty interface and the second attach fails), one program is attached
#     at the end, and it is one of the N.
#  2. while another process holds veth-b's lock, a --load waits (and says
#     so) and changes nothing; once the lock is released it completes.
#
#   concurrent_load.sh [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
N=8

r2x_make_network
for i in $(seq $N); do
  "$R2X" -A INPUT -p udp --dport $((2000 + i)) -j DROP -o "$TMP/p$i.o"
done

say "== 1. $N loads at once"
pids=()
for i in $(seq $N); do
  r2x_b --load veth-b "$TMP/p$i.o" >"$TMP/load$i.out" 2>&1 &
  pids+=($!)
done
for i in $(seq $N); do
  wait "${pids[$((i - 1))]}" || die "load $i failed: $(cat "$TMP/load$i.out")"
done
[ -n "$(r2x_xdp_prog_id)" ] || die "no program attached after $N loads"
port=$(r2x_b --stats veth-b | sed -n 's/.*udp dpt:\(20[0-9][0-9]\).*/\1/p')
[ -n "$port" ] && [ "$port" -gt 2000 ] && [ "$port" -le $((2000 + N)) ] ||
  die "the attached program is none of the $N: $(r2x_b --stats veth-b)"
say "   all $N exited 0; the last one's program (dpt:$port) is attached"

say "== 2. a held lock makes a load wait"
IFINDEX=$(ip -n "$NS_B" -o link show veth-b | cut -d: -f1)
LOCK=/run/rule2xdp/net$(stat -L -c %i "/run/netns/$NS_B")-if$IFINDEX.lock
[ -e "$LOCK" ] || die "no lock file $LOCK: $(ls /run/rule2xdp)"
BEFORE=$(r2x_xdp_prog_id)
mkfifo "$TMP/held" "$TMP/release"
flock "$LOCK" -c "echo held > '$TMP/held'; read _ < '$TMP/release'" &
R2X_PIDS+=($!)
HOLDER=$!
read -r -t 10 _ <"$TMP/held" || die "could not take the lock"
r2x_b --load veth-b "$TMP/p1.o" >"$TMP/waiting.out" 2>&1 &
LOADER=$!
R2X_PIDS+=($LOADER)
for _ in $(seq 100); do
  grep -q "waiting for another rule2xdp" "$TMP/waiting.out" && break
  sleep 0.1
done
grep -q "waiting for another rule2xdp" "$TMP/waiting.out" ||
  die "the load did not wait for the lock: $(cat "$TMP/waiting.out")"
kill -0 "$LOADER" 2>/dev/null || die "the load ended while the lock was held"
[ "$(r2x_xdp_prog_id)" = "$BEFORE" ] || die "the program changed while the lock was held"
echo release >"$TMP/release"
wait "$HOLDER" || true
wait "$LOADER" || die "the load failed after the lock was released: $(cat "$TMP/waiting.out")"
AFTER=$(r2x_xdp_prog_id)
[ -n "$AFTER" ] && [ "$AFTER" != "$BEFORE" ] || die "no new program after the lock was released"
r2x_b --stats veth-b | grep -q "dpt:2001" || die "the new program is not p1's"
r2x_b --unload veth-b || die "--unload failed"
[ ! -e "$LOCK" ] || die "--unload left the lock file $LOCK"
say "   the load waited while $LOCK was held, then replaced $BEFORE with $AFTER; --unload removed the lock file"
say "concurrent_load: all checks passed"
