#!/bin/bash
# test/e2e/edit_rules.sh - changing a loaded ruleset in place:
# `rule2xdp --load veth-b -A|-I|-D|-R ...` on the demo network of lib.sh
# (compiler/driver/Edit.h).
#
#  1. load a ruleset (drop :1234, count :5555, accept the rest) and send K
#     datagrams to :1234.
#  2. while a paced stream to :1234 flows, insert, append, replace and
#     delete other rules, one command each: not one :1234 datagram may
#     reach B's socket (every change is an atomic replace), the :1234
#     rule's counter must only grow (kept across each change), and the
#     fence port's counter must stay exact.
#  3. what each change means: K datagrams to :4321 are dropped while
#     `-I INPUT 1 ... --dport 4321 -j DROP` is in, and arrive once it is
#     replaced (-R) by a rule for :4322; after `-D INPUT RULE` of that rule
#     and `-D INPUT 1` the listing is the first ruleset's again.
#  4. a change that is an error (-D of a rule number past the end, -D of a
#     rule that is not there) exits 1 and leaves the program as it was.
#
# Exact counts are read once a fence (K datagrams to :5555, behind the
# others in the same veth queue) has arrived. No timing decides anything.
#
#   edit_rules.sh [--mode native|generic] [--rule2xdp PATH] [--tools DIR]
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
  -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools

PPS=15000
STREAM=100000000 # a count the stream never reaches: it runs until stopped
K=400
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
ge() { [ "${1:-0}" -ge "$2" ] && echo 0 || echo 1; }

start_stream() { # NAME PORT COUNT; sets SENDER_PID
  local fd
  mkfifo "$TMP/$1.ready"
  exec {fd}<>"$TMP/$1.ready"
  ip netns exec "$NS_A" "$SEND" --pps "$PPS" --timeout-ms $((4 * R2X_WAIT_S * 1000)) \
    --ready "$TMP/$1.ready" 10.1.0.2 "$2" "$3" >"$TMP/$1.out" 2>&1 &
  SENDER_PID=$!
  R2X_PIDS+=("$SENDER_PID")
  read -r -t "$R2X_WAIT_S" -u "$fd" _ || die "stream $1 did not start"
  exec {fd}<&-
}
stop_stream() { # PID NAME
  local rc=0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" || rc=$?
  r2x_reaped "$1"
  [ "$rc" = 0 ] || die "stream $2 failed: $(cat "$TMP/$2.out")"
}
FENCES=0
fence() { # NAME: K datagrams to :5555; all arrived = all before them met XDP
  r2x_start_sink "$1" 5555 --count "$K" --timeout-ms $((R2X_WAIT_S * 1000))
  r2x_send 5555 "$K" >/dev/null
  r2x_wait_sink "$1"
  [ "$(r2x_sink_count "$1")" = "$K" ] || die "fence $1: $(r2x_sink_count "$1") of $K"
  FENCES=$((FENCES + K))
}
edit() { r2x_b --load veth-b --mode "$MODE" "$@" || die "rule2xdp --load veth-b $* failed"; }
drops() { r2x_rule_packets 'dpt:1234'; }
listing() { r2x_b --stats veth-b | awk '/^Chain INPUT/ {f = 1; next} /^Chain/ {f = 0} f && $1 ~ /^[0-9]+$/ {$1 = $2 = ""; print}'; }

r2x_make_network
cat >"$TMP/base.rules" <<'EOF'
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp --dport 1234 -j DROP
-A INPUT -p udp --dport 5555 -j ACCEPT
COMMIT
EOF

say "== 1. the first ruleset"
r2x_b --load veth-b --mode "$MODE" -f "$TMP/base.rules" || die "load failed"
BASE_LISTING=$(listing)
r2x_send 1234 "$K" >/dev/null
fence f0
D0=$(drops)
check "the :1234 rule counts what it drops" "$D0 of $K" "$(is "$D0" "$K")"

say "== 2. changes while a stream to :1234 flows"
r2x_start_sink a1234 1234 --timeout-ms $((4 * R2X_WAIT_S * 1000))
start_stream s1 1234 "$STREAM"
S1=$SENDER_PID
LAST=$D0 GROWING=0 IDS=$(r2x_xdp_prog_id)
step() { # COMMAND...: one change, then the counters checked
  local d id
  edit "$@"
  id=$(r2x_xdp_prog_id)
  d=$(drops)
  [ "${d:-0}" -ge "$LAST" ] || GROWING=1
  say "   $*: program $id, :1234 rule ${d:-?} packets"
  LAST=${d:-0} IDS="$IDS $id"
}
step -I INPUT 1 -p udp --dport 4321 -j DROP
step -A INPUT -p udp --dport 6000 -j DROP
step -R INPUT 1 -p udp --dport 4322 -j DROP
step -D INPUT -p udp -m udp --dport 6000 -j DROP
STILL=$(kill -0 "$S1" 2>/dev/null && echo yes || echo no)
stop_stream "$S1" s1
fence f1
r2x_stop_sink a1234
GOT_1234=$(r2x_sink_count a1234)
SENT=$(awk '/^sent/ {print $2}' "$TMP/s1.out")
D1=$(drops)
check "the changes happened while the stream flowed" "running: $STILL" "$(is "$STILL" yes)"
check "each change made a new program" "ids:$IDS" "$( [ "$(echo $IDS | tr ' ' '\n' | sort -u | wc -l)" = 5 ] && echo 0 || echo 1)"
check "no :1234 datagram got through a change" "received $GOT_1234 of $SENT" "$(is "$GOT_1234" 0)"
check "the :1234 rule's counter only grew" "now $D1" "$(is "$GROWING" 0)"
# Counts between the copy of the counters and the replace are lost (the
# old program still counts then: runtime/Counters.cpp); the stream sent at
# most a few during each change, so most must be there.
check "the :1234 rule kept its counts" "$D1 of $((K + SENT)) sent" "$(ge "$D1" $((K + SENT * 9 / 10)))"
F1=$(r2x_rule_packets 'dpt:5555')
check "the :5555 rule's counter is exact" "$F1 of $FENCES" "$(is "$F1" "$FENCES")"

say "== 3. what the changes mean"
r2x_start_sink b4321 4321 --timeout-ms $((2 * R2X_WAIT_S * 1000))
r2x_start_sink b4322 4322 --timeout-ms $((2 * R2X_WAIT_S * 1000))
r2x_send 4321 "$K" >/dev/null
r2x_send 4322 "$K" >/dev/null
fence f2
r2x_stop_sink b4321
r2x_stop_sink b4322
GOT_4321=$(r2x_sink_count b4321) GOT_4322=$(r2x_sink_count b4322)
R4322=$(r2x_rule_packets 'dpt:4322')
check ":4321 passes: its rule was replaced" "received $GOT_4321 of $K" "$(is "$GOT_4321" "$K")"
check ":4322 is dropped by the replacing rule" "received $GOT_4322, rule $R4322" "$( [ "$GOT_4322" = 0 ] && [ "$R4322" = "$K" ] && echo 0 || echo 1)"
edit -D INPUT -p udp --dport 4322 -j DROP
NOW=$(listing)
check "deleting every added rule gives the first ruleset back" "$(echo "$NOW" | tr -s "\n " "; ")" "$(is "$NOW" "$BASE_LISTING")"

say "== 4. a change that is an error changes nothing"
ID_BEFORE=$(r2x_xdp_prog_id)
rc=0
r2x_b --load veth-b --mode "$MODE" -D INPUT 9 >"$TMP/e1.out" 2>&1 || rc=$?
check "-D past the last rule exits 1" "exit $rc: $(head -1 "$TMP/e1.out")" "$(is "$rc" 1)"
rc=0
r2x_b --load veth-b --mode "$MODE" -D INPUT -p udp --dport 7 -j DROP >"$TMP/e2.out" 2>&1 || rc=$?
check "-D of a rule that is not there exits 1" "exit $rc: $(head -1 "$TMP/e2.out")" "$(is "$rc" 1)"
check "the program is the same" "$ID_BEFORE -> $(r2x_xdp_prog_id)" "$(is "$(r2x_xdp_prog_id)" "$ID_BEFORE")"

if [ "$FAILS" -ne 0 ]; then
  r2x_b --stats veth-b || true
  die "$FAILS check(s) failed"
fi
say "edit_rules: all checks passed"
