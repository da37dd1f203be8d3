#!/bin/bash
# test/e2e/load_replace.sh - rule2xdp --load, a second --load (replace) and
# --unload on B's veth while A keeps sending, on the demo network of
# lib.sh.
#
#  1. load P1 (drop :1234); start a paced stream to :1234 and a control
#     stream to :4321; while both flow, replace P1 with P2 (another rule that
#     drops :1234). Not one :1234 datagram may reach B's socket (the replace
#     is atomic), P2's counter must grow, and every :4321 datagram arrives.
#  2. replace P2 with P3 (drop :4321 instead) and send K to each port: :1234
#     now gets K, :4321 gets nothing, P3's counter shows K.
#  3. unload while a stream to :4321 flows: datagrams reach the socket again
#     after the unload, nothing stays attached or pinned, and the programs'
#     ids disappear from the kernel.
#
# No timing decides anything. The streams run until the test stops them
# (SIGTERM), so a --load or --unload, however slow, happens while they flow;
# each is stopped only once the event it must span was seen (P2 counting
# :1234 datagrams; the first :4321 datagram at B's socket after the unload).
# Exact counts are read once a fence (K datagrams to another port, behind
# the streams in the same veth queue: with a program attached, veth-b takes
# every frame through its one NAPI ring, in order) has arrived.
#
#   load_replace.sh [--mode native|generic] [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

MODE=native
while [ $# -gt 0 ]; do
  case $1 in
  --mode) MODE=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools

PPS=15000        # the streams' rate ...
STREAM=100000000 # ... and a count they never reach: they run until stopped
K=500
FAILS=0
check() { # check DESCRIPTION CONDITION-AS-TEXT RESULT(0|1)
  if [ "$3" = 0 ]; then
    say "  ok    $1 ($2)"
  else
    say "  FAIL  $1 ($2)"
    FAILS=$((FAILS + 1))
  fi
}
is() { [ "$1" = "$2" ] && echo 0 || echo 1; }
gt() { [ "${1:-0}" -gt "$2" ] && echo 0 || echo 1; }

# A background sender in A that reports through a FIFO once its first
# datagram is out. Sets SENDER_PID; output in $TMP/NAME.out.
start_stream() { # NAME PORT COUNT
  local fd
  mkfifo "$TMP/$1.ready"
  exec {fd}<>"$TMP/$1.ready"
  ip netns exec "$NS_A" "$SEND" --pps "$PPS" --timeout-ms $((2 * R2X_WAIT_S * 1000)) \
    --ready "$TMP/$1.ready" 10.1.0.2 "$2" "$3" >"$TMP/$1.out" 2>&1 &
  SENDER_PID=$!
  R2X_PIDS+=("$SENDER_PID")
  read -r -t "$R2X_WAIT_S" -u "$fd" _ || die "stream $1 did not start"
  exec {fd}<&-
}
# stop_stream PID NAME: ends a stream (it prints what it sent and exits 0).
stop_stream() {
  local rc=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || rc=$?
  r2x_reaped "$1"
  [ "$rc" = 0 ] || die "stream $2 failed: $(cat "$TMP/$2.out")"
}
stream_sent() { awk '/^sent/ {print $2}' "$TMP/$1.out"; }
# fence NAME: K datagrams to :5555 (which no program here drops) through the
# same veth queue as the streams; once they all arrived at their sink, every
# datagram sent before them has met the program and reached its socket.
fence() {
  r2x_start_sink "$1" 5555 --count "$K" --timeout-ms $((R2X_WAIT_S * 1000))
  r2x_send 5555 "$K" >/dev/null
  r2x_wait_sink "$1"
  [ "$(r2x_sink_count "$1")" = "$K" ] || die "fence $1: $(r2x_sink_count "$1") of $K"
}
p2_counted() { [ "$(r2x_rule_packets 'dpt:1234')" -ge "$1" ] 2>/dev/null; }

r2x_make_network
"$R2X" -A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP -o "$TMP/p1.o"
"$R2X" -A INPUT -p udp --dport 1234 -j DROP -o "$TMP/p2.o"
"$R2X" -A INPUT -p udp --dport 4321 -j DROP -o "$TMP/p3.o"

say "== 1. replace with traffic flowing"
r2x_b --load veth-b --mode "$MODE" "$TMP/p1.o"
ID1=$(r2x_xdp_prog_id)
r2x_start_sink a1234 1234 --timeout-ms $((3 * R2X_WAIT_S * 1000))
r2x_start_sink a4321 4321 --timeout-ms $((3 * R2X_WAIT_S * 1000))
start_stream s1 1234 "$STREAM"
S1=$SENDER_PID
start_stream c1 4321 "$STREAM"
C1=$SENDER_PID
r2x_b --load veth-b --mode "$MODE" "$TMP/p2.o"
ID2=$(r2x_xdp_prog_id)
STILL=$(kill -0 "$S1" 2>/dev/null && kill -0 "$C1" 2>/dev/null && echo yes || echo no)
# P2 must see the stream: counters start at 0 with each program.
r2x_wait_until "P2 counting the :1234 stream" p2_counted $((PPS / 10))
stop_stream "$S1" s1
stop_stream "$C1" c1
SENT_C1=$(stream_sent c1)
fence f1
r2x_stop_sink a4321
GOT_4321=$(r2x_sink_count a4321)
r2x_stop_sink a1234
GOT_1234=$(r2x_sink_count a1234)
P2_DROPS=$(r2x_rule_packets 'dpt:1234')
say "   P1 id $ID1 -> P2 id $ID2; stream still running at replace: $STILL"
say "   sent $(stream_sent s1) to :1234 (received $GOT_1234, P2 dropped $P2_DROPS),"
say "   sent $SENT_C1 to :4321 (received $GOT_4321)"
check "the replace happened while traffic flowed" "stream running: $STILL" "$(is "$STILL" yes)"
check "a new program after the replace" "$ID1 -> $ID2" "$( [ -n "$ID2" ] && [ "$ID1" != "$ID2" ] && echo 0 || echo 1)"
check "no :1234 datagram slipped through the replace" "received $GOT_1234" "$(is "$GOT_1234" 0)"
check "P2 dropped traffic after the replace" "$P2_DROPS packets" "$(gt "$P2_DROPS" 0)"
check "every :4321 datagram arrived" "$GOT_4321 of $SENT_C1" "$(is "$GOT_4321" "$SENT_C1")"

say "== 2. replace with a rule for another port"
r2x_b --load veth-b --mode "$MODE" "$TMP/p3.o"
ID3=$(r2x_xdp_prog_id)
r2x_start_sink b1234 1234 --count "$K" --timeout-ms $((R2X_WAIT_S * 1000))
r2x_start_sink b4321 4321 --timeout-ms $((2 * R2X_WAIT_S * 1000))
SENT_B4321=$(r2x_send 4321 "$K")
SENT_B1234=$(r2x_send 1234 "$K")
r2x_wait_sink b1234 # the :1234 datagrams went last: all :4321 ones were seen
GOT_B1234=$(r2x_sink_count b1234)
r2x_stop_sink b4321
GOT_B4321=$(r2x_sink_count b4321)
P3_DROPS=$(r2x_rule_packets 'dpt:4321')
say "   P3 id $ID3: :1234 got $GOT_B1234 of $SENT_B1234, :4321 got $GOT_B4321 of $SENT_B4321, P3 dropped $P3_DROPS"
check ":1234 passes under P3" "$GOT_B1234 of $K" "$(is "$GOT_B1234" "$K")"
check ":4321 is dropped under P3" "received $GOT_B4321" "$(is "$GOT_B4321" 0)"
check "P3's counter" "$P3_DROPS packets" "$(is "$P3_DROPS" "$K")"

say "== 3. unload with traffic flowing"
# The sink says when its first datagram came: P3 drops :4321, so that is
# the stream getting through after the unload.
mkfifo "$TMP/c4321.first"
exec {first_fd}<>"$TMP/c4321.first"
r2x_start_sink c4321 4321 --first "$TMP/c4321.first" --timeout-ms $((3 * R2X_WAIT_S * 1000))
start_stream s3 4321 "$STREAM"
S3=$SENDER_PID
r2x_b --unload veth-b
STILL=$(kill -0 "$S3" 2>/dev/null && echo yes || echo no)
AFTER_ID=$(r2x_xdp_prog_id)
PINS=$( (find /sys/fs/bpf/rule2xdp -mindepth 1 2>/dev/null || true) | tr '\n' ' ')
read -r -t "$R2X_WAIT_S" -u "$first_fd" _ ||
  die "no :4321 datagram reached B's socket after the unload"
exec {first_fd}<&-
stop_stream "$S3" s3
r2x_stop_sink c4321
GOT_C4321=$(r2x_sink_count c4321)
# After the unload nothing drops; a last burst of K must arrive in full.
r2x_start_sink d4321 4321 --count "$K" --timeout-ms $((R2X_WAIT_S * 1000))
SENT_D=$(r2x_send 4321 "$K")
r2x_wait_sink d4321
GOT_D=$(r2x_sink_count d4321)
# Program ids are released when the last reference (the link) goes; the
# kernel frees links from a work queue: wait (bounded) until they are gone.
LEFT=
programs_left() {
  local id
  LEFT=
  for id in $ID1 $ID2 $ID3; do
    bpftool prog show id "$id" >/dev/null 2>&1 && LEFT="$LEFT $id"
  done
  [ -n "$LEFT" ]
}
END=$((SECONDS + R2X_WAIT_S))
while programs_left && [ "$SECONDS" -lt "$END" ]; do sleep 0.1; done
say "   stream still running at unload: $STILL; :4321 got $GOT_C4321 of $(stream_sent s3) during the stream, $GOT_D of $SENT_D after"
check "the unload happened while traffic flowed" "stream running: $STILL" "$(is "$STILL" yes)"
check "traffic passes again after the unload" "received $GOT_C4321" "$(gt "$GOT_C4321" 0)"
check "nothing attached after --unload" "${AFTER_ID:-no program}" "$(is "${AFTER_ID:-none}" none)"
check "nothing pinned after --unload" "${PINS:-no pins}" "$(is "${PINS:-none}" none)"
check "all of a burst after the unload arrives" "$GOT_D of $K" "$(is "$GOT_D" "$K")"
check "programs released by the kernel" "left:${LEFT:- none}" "$(is "${LEFT:-none}" none)"

if [ "$FAILS" -ne 0 ]; then
  r2x_link_stats
  die "$FAILS check(s) failed"
fi
say "load/replace/unload: all checks passed"
