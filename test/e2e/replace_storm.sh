#!/bin/bash
# test/e2e/replace_storm.sh - 1,000 replacements while a paced UDP stream
# flows, and every datagram decided by exactly one whole program, on the
# demo network of lib.sh (issue 12, point 5). Two phases.
#
# 1. --load. Program A counts every datagram to :1234 on its rule and drops
#    it; program B counts it on its rule and passes it. Both rules say
#    `-i veth-b`, so every load resolves the interface anew (the loader
#    fills the interface map). replace_storm (the C++ half) loads A, B, A,
#    ... COUNT times on veth-b: through the runtime, and every CLI_EVERY-th
#    load through `rule2xdp --load veth-b X.o` itself, keeping every
#    program's counters after it was replaced. Then:
#      sum(A counts) + sum(B counts) + veth drops = datagrams sent
#                       (none decided twice or by no program)
#      sum(B counts) = datagrams received at B's socket
#                       (each datagram had the verdict of the program that
#                       counted it: no half of one program, half another)
#    and every load put a new program on the interface, of the object it
#    loaded.
# 2. --follow. B's kernel ruleset (iptables-nft-restore) is
#      -A INPUT -p udp --dport 1234 -j storm
#      -A storm -i veth-b -p udp --dport 1234 -m comment --comment A -j DROP
#    and `rule2xdp --accelerate veth-b --follow` runs in B. While a paced
#    stream to :1234 flows, SWAPS `iptables -R storm 1` swap the rule
#    between comment A and comment B (a new rule text: a new counter key,
#    so no count is carried from one program to the next). replace_storm
#    --watch keeps the counters of every program --follow attaches; the
#    next swap is made once it saw the program of the last one. Then:
#      sum over all programs + veth drops = datagrams sent
#      the kernel's `-j storm` rule counted 0 (a datagram that met no
#                       program would have reached it: the kernel's rule is
#                       never replaced, so its counter is never reset)
#      one program per swap, each counting on the rule of its version.
#
#   replace_storm.sh [--count N] [--pps RATE] [--swaps N] [--rule2xdp PATH]
#                    [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

COUNT=1000
PPS=10000
SWAPS=30
CLI_EVERY=10
STORM=
while [ $# -gt 0 ]; do
  case $1 in
  --count) COUNT=$2; shift ;;
  --pps) PPS=$2; shift ;;
  --swaps) SWAPS=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
STORM=$TOOLS/replace_storm
[ -x "$STORM" ] || die "$STORM is missing: build first"
IPT=iptables-nft
for c in "$IPT" "$IPT-restore"; do
  command -v "$c" >/dev/null || die "$c is missing"
done

r2x_make_network
say "== 1. $COUNT replacements by --load (every $CLI_EVERY-th through the command) (at $SECONDS s)"
"$R2X" -A INPUT -i veth-b -p udp --dport 1234 -m comment --comment A -j DROP -o "$TMP/a.o"
"$R2X" -A INPUT -i veth-b -p udp --dport 1234 -m comment --comment B -j ACCEPT -o "$TMP/b.o"

# replace_storm in B's namespace, its stdin a FIFO we write into: it loads
# A, then waits for the stream, then makes the other loads.
mkfifo "$TMP/storm.in"
nsenter --net="/run/netns/$NS_B" -- "$STORM" veth-b "$TMP/a.o" "$TMP/b.o" "$COUNT" \
  --cli "$R2X" "$CLI_EVERY" <"$TMP/storm.in" >"$TMP/storm.out" 2>&1 &
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
r2x_reaped "$SENDER"
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
r2x_reaped "$STORM_PID"
A=$(awk '$1 == "A" {print $2}' "$TMP/storm.out")
B=$(awk '$1 == "B" {print $2}' "$TMP/storm.out")
say "   $(grep '^loads' "$TMP/storm.out"); sent $SENT at $PPS/s; A programs dropped $A, B programs passed $B; B's socket received $RECEIVED; the veth dropped $DROPPED"
[ "$((A + B + DROPPED))" = "$SENT" ] || die "A + B = $((A + B)) datagrams decided, $DROPPED dropped by the veth, $SENT sent"
[ "$B" = "$RECEIVED" ] || die "B programs passed $B, B's socket received $RECEIVED"
[ "$A" -gt 0 ] && [ "$B" -gt 0 ] || die "one program kind decided nothing: the stream did not span the loads"
say "   $COUNT replacements, $(awk '/^loads/ {print $4}' "$TMP/storm.out") through the command: every datagram decided by exactly one program"
r2x_b --unload veth-b >/dev/null || die "--unload after the storm failed"

say "== 2. $SWAPS iptables -R swaps under --follow (at $SECONDS s)"
cat >"$TMP/storm.rules" <<'R'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:storm - [0:0]
-A INPUT -p udp -m udp --dport 1234 -j storm
-A storm -i veth-b -p udp -m udp --dport 1234 -m comment --comment A -j DROP
COMMIT
R
in_b "$IPT-restore" "$TMP/storm.rules" || die "$IPT-restore failed in B"
# The watcher first, so it sees --follow's first program.
mkfifo "$TMP/watch.in"
nsenter --net="/run/netns/$NS_B" -- "$STORM" --watch veth-b storm \
  <"$TMP/watch.in" >"$TMP/watch.out" 2>&1 &
WATCH_PID=$!
R2X_PIDS+=("$WATCH_PID")
exec {stop}>"$TMP/watch.in"
nsenter --net="/run/netns/$NS_B" -- "$R2X" --accelerate veth-b --follow \
  >"$TMP/follow.out" 2>"$TMP/follow.err" &
FOLLOW=$!
R2X_PIDS+=("$FOLLOW")
# watched N KIND: the watcher reported N programs, the last of kind KIND
# (and both processes still run).
watched() {
  kill -0 "$WATCH_PID" 2>/dev/null || die "replace_storm --watch failed: $(cat "$TMP/watch.out")"
  kill -0 "$FOLLOW" 2>/dev/null || die "--follow ended: $(cat "$TMP/follow.err")"
  [ "$(grep -c '^prog ' "$TMP/watch.out")" -ge "$1" ] || return 1
  [ "$(grep -c '^prog ' "$TMP/watch.out")" = "$1" ] ||
    die "more programs than changes: $(cat "$TMP/watch.out")"
  [ "$(awk '/^prog / {k = $3} END {print k}' "$TMP/watch.out")" = "$2" ] ||
    die "program $1 counts on the wrong rule: $(cat "$TMP/watch.out")"
}
r2x_wait_until "--follow's first program ($(cat "$TMP/follow.err"))" watched 1 A
DROPPED0=$(veth_dropped)
mkfifo "$TMP/sender2.ready"
exec {ready}<>"$TMP/sender2.ready"
ip netns exec "$NS_A" "$SEND" --pps "$PPS" --timeout-ms 600000 \
  --ready "$TMP/sender2.ready" 10.1.0.2 1234 1000000000 >"$TMP/stream2.out" 2>&1 &
SENDER=$!
R2X_PIDS+=("$SENDER")
read -r -t 10 -u "$ready" _ || die "the stream did not start"
exec {ready}<&-
KIND=A
for i in $(seq 1 "$SWAPS"); do
  if [ "$KIND" = A ]; then KIND=B; else KIND=A; fi
  in_b "$IPT" -R storm 1 -i veth-b -p udp --dport 1234 -m comment --comment "$KIND" -j DROP ||
    die "iptables -R #$i in B"
  r2x_wait_until "--follow's program of swap $i ($(cat "$TMP/follow.err"))" watched $((i + 1)) "$KIND"
done
kill -0 "$SENDER" 2>/dev/null || die "the stream ended before the swaps did: $(cat "$TMP/stream2.out")"
kill -TERM "$SENDER"
wait "$SENDER" || die "the stream failed: $(cat "$TMP/stream2.out")"
r2x_reaped "$SENDER"
SENT=$(awk '/^sent/ {print $2}' "$TMP/stream2.out")
DROPPED=$(($(veth_dropped) - DROPPED0))
# The same fence as in 1: markers pass XDP (hand-over of the ACCEPT policy)
# and the kernel.
r2x_start_sink marker2 5555 --count 100 --timeout-ms 30000
r2x_send 5555 100 >/dev/null
r2x_wait_sink marker2
[ "$(r2x_sink_count marker2)" = 100 ] || die "marker datagrams were lost"
echo stop >&"$stop"
exec {stop}>&-
wait "$WATCH_PID" || die "replace_storm --watch failed: $(cat "$TMP/watch.out")"
r2x_reaped "$WATCH_PID"
A=$(awk '$1 == "A" {print $2}' "$TMP/watch.out")
B=$(awk '$1 == "B" {print $2}' "$TMP/watch.out")
N=$(awk '$1 == "programs" {print $2}' "$TMP/watch.out")
KJUMP=$(in_b "$IPT" -L INPUT -v -x -n | awk 'NR > 2 && / storm / {print $1; exit}')
say "   $N programs; sent $SENT at $PPS/s; A programs dropped $A, B programs $B; the veth dropped $DROPPED; the kernel's -j storm counted $KJUMP"
[ "$N" = $((SWAPS + 1)) ] || die "$N programs for $SWAPS swaps"
[ "$((A + B + DROPPED))" = "$SENT" ] || die "A + B = $((A + B)) datagrams decided by XDP, $DROPPED dropped by the veth, $SENT sent"
[ "$KJUMP" = 0 ] || die "the kernel's -j storm counted $KJUMP datagrams: they met no program"
[ "$A" -gt 0 ] && [ "$B" -gt 0 ] || die "one rule version decided nothing: the stream did not span the swaps"
kill -TERM "$FOLLOW"
wait "$FOLLOW" || die "--follow after SIGTERM: status $?"
r2x_reaped "$FOLLOW"
r2x_b --unload veth-b >/dev/null || die "--unload failed"
say "replace_storm: $COUNT replacements and $SWAPS followed swaps, every datagram decided by exactly one whole program"
