#!/bin/bash
# test/e2e/replace_storm.sh - 1,000 replacements while a paced UDP stream
# flows, and every datagram decided by exactly one whole program, on the
# demo network of lib.sh.
#
# Program A counts every datagram to :1234 on its rule and drops it;
# program B counts it on its rule and passes it. replace_storm (the C++
# half) loads A, B, A, ... COUNT times on veth-b through the runtime, keeping
# every program's counters after it was replaced. Then:
#   sum(A counts) + sum(B counts) = datagrams sent   (none decided twice or
#                                                     by no program)
#   sum(B counts) = datagrams received at B's socket (each datagram had the
#                                                     verdict of the program
#                                                     that counted it)
# and every load put a new program on the interface.
#
#   replace_storm.sh [--count N] [--pps RATE] [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

COUNT=1000
PPS=10000
STORM=
while [ $# -gt 0 ]; do
  case $1 in
  --count) COUNT=$2; shift ;;
  --pps) PPS=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
STORM=$TOOLS/replace_storm
[ -x "$STORM" ] || die "$STORM is missing: build first"

r2x_make_network
"$R2X" -A INPUT -p udp --dport 1234 -m comment --comment A -j DROP -o "$TMP/a.o"
"$R2X" -A INPUT -p udp --dport 1234 -m comment --comment B -j ACCEPT -o "$TMP/b.o"

# replace_storm in B's namespace, its stdin a FIFO we write into: it loads
# A, then waits for the stream, then makes the other loads.
mkfifo "$TMP/storm.in"
nsenter --net="/run/netns/$NS_B" -- "$STORM" veth-b "$TMP/a.o" "$TMP/b.o" "$COUNT" \
  <"$TMP/storm.in" >"$TMP/storm.out" 2>&1 &
STORM_PID=$!
R2X_PIDS+=("$STORM_PID")
exec {go}>"$TMP/storm.in"
storm_says() { # WORD LIMIT-IN-TENTHS
  for _ in $(seq "$2"); do
    grep -q "^$1" "$TMP/storm.out" && return 0
    kill -0 "$STORM_PID" 2>/dev/null || die "replace_storm failed: $(cat "$TMP/storm.out")"
    sleep 0.1
  done
  die "replace_storm did not say '$1': $(cat "$TMP/storm.out")"
}
storm_says first 300
# Datagrams the veth itself drops (its queue full, on a busy machine) meet no
# program: they are accounted for apart.
veth_dropped() {
  ip -n "$NS_B" -s -j link show veth-b |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["dropped"])'
}
DROPPED0=$(veth_dropped)

r2x_start_sink stream 1234 --timeout-ms 600000
# The stream: paced, long enough for any machine; stopped (SIGTERM) once the
# loads are done.
mkfifo "$TMP/sender.ready"
exec {ready}<>"$TMP/sender.ready"
ip netns exec "$NS_A" "$SEND" --pps "$PPS" --timeout-ms 600000 \
  --ready "$TMP/sender.ready" 10.1.0.2 1234 1000000000 >"$TMP/stream.out" 2>&1 &
SENDER=$!
R2X_PIDS+=("$SENDER")
read -r -t 10 -u "$ready" _ || die "the stream did not start"
exec {ready}<&-
echo go >&"$go"
storm_says loads 6000 # bounded at 10 minutes
kill -0 "$SENDER" 2>/dev/null || die "the stream ended before the loads did: $(cat "$TMP/stream.out")"
kill -TERM "$SENDER"
wait "$SENDER" || die "the stream failed: $(cat "$TMP/stream.out")"
SENT=$(awk '/^sent/ {print $2}' "$TMP/stream.out")
DROPPED=$(($(veth_dropped) - DROPPED0))

# Every datagram of the stream met the last program before these markers,
# which follow it on the same veth queue and pass both programs.
r2x_start_sink marker 5555 --count 100 --timeout-ms 30000
r2x_send 5555 100 >/dev/null
r2x_wait_sink marker
[ "$(r2x_sink_count marker)" = 100 ] || die "marker datagrams were lost"
r2x_stop_sink stream
RECEIVED=$(r2x_sink_count stream)
echo go >&"$go"
exec {go}>&-
wait "$STORM_PID" || die "replace_storm failed: $(cat "$TMP/storm.out")"
A=$(awk '$1 == "A" {print $2}' "$TMP/storm.out")
B=$(awk '$1 == "B" {print $2}' "$TMP/storm.out")
say "   $(grep '^loads' "$TMP/storm.out"); sent $SENT at $PPS/s; A programs dropped $A, B programs passed $B; B's socket received $RECEIVED; the veth dropped $DROPPED"
[ "$((A + B + DROPPED))" = "$SENT" ] || die "A + B = $((A + B)) datagrams decided, $DROPPED dropped by the veth, $SENT sent"
[ "$B" = "$RECEIVED" ] || die "B programs passed $B, B's socket received $RECEIVED"
[ "$A" -gt 0 ] && [ "$B" -gt 0 ] || die "one program kind decided nothing: the stream did not span the loads"
say "replace_storm: $COUNT replacements, every datagram decided by exactly one program"
