#!/bin/bash
# test/e2e/drop_demo.sh - the talk's XDP drop demo, compiled from an iptables
# rule by rule2xdp, on two network namespaces joined by a veth pair.
#
# A sends N UDP datagrams to 10.1.0.2:1234 (dropped by the XDP program on B's
# veth) and N to 10.1.0.2:4321 (passed up to a socket in B), then the script
# prints what was sent, dropped (rule2xdp --stats) and passed (the sink),
# unloads the program and removes the namespaces.
#
#   drop_demo.sh [--check] [-n N] [--size BYTES] [--mode native|generic]
#                [--rule2xdp PATH] [--tools DIR]
#
# --check turns the demo into a test: the counts must be exact (dropped = N,
# 0 datagrams reach :1234, N reach :4321, the stats show N packets and
# N*(28+BYTES) bytes for the rule and N packets for the INPUT policy) and
# nothing may be left attached or pinned after the unload; exits non-zero
# otherwise. Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

CHECK=0
N=1000
SIZE=18 # 14 + 20 + 8 + 18 = 60 bytes on the wire, 64 with the FCS
MODE=native
while [ $# -gt 0 ]; do
  case $1 in
  --check) CHECK=1 ;;
  -n) N=$2; shift ;;
  --size) SIZE=$2; shift ;;
  --mode) MODE=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools

RULE=(-A INPUT -d 10.1.0.2 -p udp --dport 1234 -j DROP)
FAILS=0
check() { # check DESCRIPTION GOT WANT
  if [ "$2" = "$3" ]; then
    say "  ok    $1: $2"
  else
    say "  FAIL  $1: got '$2', want '$3'"
    FAILS=$((FAILS + 1))
  fi
}

r2x_make_network
say "== rule2xdp drop demo: the talk's XDP drop, written as an iptables rule"
say "   A ($NS_A) veth-a 10.1.0.1/24 <-> veth-b 10.1.0.2/24 B ($NS_B)"
say "   (B# is a shell in B's network namespace)"
say
say "\$ rule2xdp ${RULE[*]} -o drop.o"
"$R2X" "${RULE[@]}" -o "$TMP/drop.o" || die "rule2xdp could not compile the rule"
say "B# rule2xdp --load veth-b --mode $MODE drop.o"
r2x_b --load veth-b --mode "$MODE" "$TMP/drop.o" ||
  die "rule2xdp --load failed"
PROG_ID=$(r2x_xdp_prog_id)
[ -n "$PROG_ID" ] || die "no XDP program on veth-b after --load"
say "   veth-b now runs XDP program id $PROG_ID ($MODE mode)"

r2x_start_sink s1234 1234 --timeout-ms 60000
r2x_start_sink s4321 4321 --count "$N" --timeout-ms 60000
say
say "sending $N UDP datagrams ($SIZE-byte payload) from A to 10.1.0.2:1234,"
say "then $N to 10.1.0.2:4321"
SENT_1234=$(r2x_send 1234 "$N" --size "$SIZE")
SENT_4321=$(r2x_send 4321 "$N" --size "$SIZE")
# Both streams cross the same veth queue in order: once the :4321 sink has
# its N datagrams, every :1234 datagram has met the XDP program.
r2x_wait_sink s4321
PASSED=$(r2x_sink_count s4321)
r2x_stop_sink s1234
LEAKED=$(r2x_sink_count s1234)

say
say "B# rule2xdp --stats veth-b"
STATS=$(r2x_b --stats veth-b) || die "rule2xdp --stats failed"
say "$STATS"
RULE_LINE=$(awk '/DROP/ && /dpt:1234/' <<<"$STATS")
DROPPED=$(awk '{print $1}' <<<"$RULE_LINE")
DROPPED_BYTES=$(awk '{print $2}' <<<"$RULE_LINE")
POLICY=$(sed -n 's/^Chain INPUT (policy ACCEPT \([0-9]*\) packets.*/\1/p' <<<"$STATS")

say
say "sent     $SENT_1234 to :1234 and $SENT_4321 to :4321"
say "dropped  ${DROPPED:-?} by the XDP program (its DROP rule's counter)"
say "passed   $PASSED to the socket on :4321; $LEAKED reached the socket on :1234"

say
say "B# rule2xdp --unload veth-b"
r2x_b --unload veth-b || die "rule2xdp --unload failed"
AFTER_ID=$(r2x_xdp_prog_id)
PINS=$( (find /sys/fs/bpf/rule2xdp -mindepth 1 2>/dev/null || true) | tr "\n" " ")
STATS_RC=0
r2x_b --stats veth-b >/dev/null 2>&1 || STATS_RC=$?
say "   veth-b: ${AFTER_ID:+still runs XDP program id $AFTER_ID}${AFTER_ID:-no XDP program}; pins left: ${PINS:-none}"

if [ "$CHECK" = 1 ]; then
  say
  say "checks:"
  check "datagrams sent to :1234" "$SENT_1234" "$N"
  check "datagrams sent to :4321" "$SENT_4321" "$N"
  check "dropped (rule counter, packets)" "$DROPPED" "$N"
  check "dropped (rule counter, bytes)" "$DROPPED_BYTES" "$((N * (28 + SIZE)))"
  check "INPUT policy counter (the :4321 datagrams)" "$POLICY" "$N"
  check "received on :1234" "$LEAKED" 0
  check "received on :4321" "$PASSED" "$N"
  check "XDP program on veth-b after --unload" "${AFTER_ID:-none}" none
  check "pins under /sys/fs/bpf/rule2xdp after --unload" "${PINS:-none}" none
  check "rule2xdp --stats exit code after --unload" "$STATS_RC" 2
  if [ "$FAILS" -ne 0 ]; then
    r2x_link_stats
    die "$FAILS check(s) failed"
  fi
  say "drop demo: all checks passed"
fi
