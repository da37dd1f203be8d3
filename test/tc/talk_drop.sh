#!/usr/bin/env bash
# test/tc/talk_drop.sh - the talk's tc drop example, end to end:
#   tc filter add dev eth0 parent ffff: protocol ip u32 \
#     match ip dst 10.1.0.2 match ip dport 1234 0xffff action drop
# compiled by rule2xdp --tc and loaded (XDP, native) on B's end of the demo
# network of test/e2e/lib.sh (A veth-a 10.1.0.1 - veth-b 10.1.0.2 B). A sends
# N UDP datagrams to 10.1.0.2:1234, then N to 10.1.0.2:4321; none may reach
# a socket on :1234, all must reach :4321, and --stats must count N packets
# on the filter.
#
#   talk_drop.sh [--rule2xdp PATH] [--tools DIR]
#
# No timing decides anything: both streams cross the same veth queue in
# order, so once the :4321 sink has its N datagrams every :1234 datagram has
# met the XDP program, and the :1234 sink is stopped then (it counts what
# is queued before it exits). Private bpffs and /run/netns, everything
# removed on exit (lib.sh). Needs root; fails without it.
set -euo pipefail
R2X_NAME=tc_talk_drop
while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift 2 ;;
  --tools) TOOLS=$2; shift 2 ;;
  *) echo "usage: $0 [--rule2xdp PATH] [--tools DIR]" >&2; exit 2 ;;
  esac
done
export R2X TOOLS
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../e2e/lib.sh
. "$here/../e2e/lib.sh"
r2x_private_mounts
r2x_find_tools

N=50
FILTER="filter add dev veth-b parent ffff: protocol ip prio 1 u32 match ip dst 10.1.0.2 match ip dport 1234 0xffff action drop"
r2x_make_network
r2x_b --load veth-b --tc "$FILTER" 2>"$TMP/load.err" ||
  die "load failed: $(cat "$TMP/load.err")"

r2x_start_sink s1234 1234 --timeout-ms 60000
r2x_start_sink s4321 4321 --count "$N" --timeout-ms 60000
SENT1234=$(r2x_send 1234 "$N")
SENT4321=$(r2x_send 4321 "$N")
r2x_wait_sink s4321
GOT4321=$(r2x_sink_count s4321)
r2x_stop_sink s1234
GOT1234=$(r2x_sink_count s1234)
[ "$SENT1234" = "$N" ] && [ "$SENT4321" = "$N" ] ||
  die "sent $SENT1234 to :1234 and $SENT4321 to :4321 (want $N each)"
[ "$GOT1234" = 0 ] || die "$GOT1234 datagrams reached :1234 (want 0)"
[ "$GOT4321" = "$N" ] || die "$GOT4321 datagrams reached :4321 (want $N)"
STATS=$(r2x_b --stats veth-b) || die "--stats failed"
echo "$STATS"
PKTS=$(echo "$STATS" | awk '/match 0a010002/ {print $1; exit}')
[ "${PKTS:-x}" = "$N" ] || die "the filter counted ${PKTS:-nothing}, want $N"
r2x_b --unload veth-b >/dev/null || die "unload failed"
say "talk_drop: sent $N to :1234 and $N to :4321; the filter dropped $PKTS, :4321 got $GOT4321"
