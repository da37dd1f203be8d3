#!/usr/bin/env bash
# test/tc/talk_nat.sh RULE2XDP - the talk's second tc example, end to end:
#
#   tc filter add dev b0 parent ffff: protocol ip prio 10 u32 \
#     match ip dst 10.1.0.2 match ip dport 1234 0xffff \
#     action nat ingress 10.1.0.2/32 10.1.1.2/32 pipe \
#     action mirred egress redirect dev b1
#
# compiled by `rule2xdp --tc` and loaded (XDP, native) on b0 of the demo
# network, which this script makes in namespaces of its own:
#
#   A a0 10.1.0.1 --- b0 10.1.0.2  B  b1 10.1.1.1 --- c0 10.1.1.2 C
#
# B does not forward (ip_forward stays 0): whatever reaches C went through
# the XDP program. Checked, in order:
#  1. c0 with neither GRO nor an XDP program: veth would drop frames
#     redirected into b1 (the brief; the kernel lists no ndo_xdp_xmit for
#     b1), where the kernel's mirred delivers them: the load is refused
#     (exit 2), naming b1 and why, and nothing is attached;
#  2. GRO on c0: the frames arrive, translated to 10.1.1.2 with IP and UDP
#     checksums valid (recomputed from scratch on the raw frames), TTL 64
#     (mirred does not route), and still addressed to b0's MAC from a0's
#     MAC, as the kernel's own mirred leaves them (step 0). C's IP layer
#     drops them as PACKET_OTHERHOST, promiscuous or not: C's socket gets
#     none;
#  3. c0 given b0's MAC: every datagram reaches C's socket on 10.1.1.2:1234
#     from 10.1.0.1 with its payload, B's socket on 10.1.0.2:1234 gets none,
#     and --stats b0 counts them;
#  4. unmatched traffic (UDP to 10.1.0.2:4321) reaches B's own socket;
#  5. a redirect to a device that does not exist is a load error naming it
#     (exit 2), and the loaded program stays.
# No timing decides anything: the receivers stop at their count, or, where
# nothing is to arrive, once the program's own counter shows it decided every
# datagram (then SIGTERM; they take what is queued first). Their timeouts
# only bound a broken run.
# Needs root; fails (never skips) without it. Private bpffs and /run/netns
# (test/e2e/lib.sh), everything removed on exit.
set -euo pipefail
R2X=${1:?usage: talk_nat.sh RULE2XDP}
export R2X
R2X_NAME=tc_talk_nat
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../e2e/lib.sh
. "$here/../e2e/lib.sh"
r2x_private_mounts "$@"
[ -x /usr/bin/python3 ] || die "/usr/bin/python3 is missing"
PEER="/usr/bin/python3 $here/../tools/nat_peer.py"
CAPTURE="/usr/bin/python3 $here/capture.py"

# lib.sh's cleanup (peers, A and B, pins, $TMP) after removing C.
NS_C=
cleanup() {
  local rc=$?
  set +e
  [ -n "$NS_C" ] && ip netns del "$NS_C" 2>/dev/null
  (exit "$rc")
  r2x_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

TMP=$(mktemp -d /tmp/r2x-tcnat.XXXXXX)
NS_A=r2xtn-$$-$RANDOM-a
NS_B=${NS_A%a}b
NS_C=${NS_A%a}c
for ns in "$NS_A" "$NS_B" "$NS_C"; do
  r2x_netns_add "$ns"
  # No IPv6 chatter; C accepts 10.1.0.1 without a route back to it.
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0 >/dev/null
  ip -n "$ns" link set lo up
done
# Created directly inside the namespaces: never a host interface.
ip link add a0 netns "$NS_A" type veth peer name b0 netns "$NS_B"
ip link add b1 netns "$NS_B" type veth peer name c0 netns "$NS_C"
while read -r ns dev addr; do
  ip -n "$ns" addr add "$addr" dev "$dev" && ip -n "$ns" link set "$dev" up ||
    die "cannot set up $dev"
done <<EOF
$NS_A a0 10.1.0.1/24
$NS_B b0 10.1.0.2/24
$NS_B b1 10.1.1.1/24
$NS_C c0 10.1.1.2/24
EOF
ip netns exec "$NS_B" sysctl -q -w net.ipv4.ip_forward=0 >/dev/null
mac() { ip -n "$1" -o link show "$2" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p'; }
MAC_A0=$(mac "$NS_A" a0)
MAC_B0=$(mac "$NS_B" b0)
# A static neighbour (no datagram waits for ARP); full checksums on the
# wire, as a NIC sends them (brief: veth and checksums).
ip -n "$NS_A" neigh replace 10.1.0.2 lladdr "$MAC_B0" dev a0 nud permanent
ip netns exec "$NS_A" ethtool -K a0 tx off >/dev/null || die "ethtool tx off on a0"
ip netns exec "$NS_C" ethtool -K c0 gro off >/dev/null || die "ethtool gro off on c0"

in_a() { ip netns exec "$NS_A" "$@"; }
r2x_b() { nsenter --net="/run/netns/$NS_B" -- "$R2X" "$@"; }
last() { tail -1 "$TMP/$1.out"; }

N=100
W=$R2X_WAIT_S # the receivers' timeout (lib.sh): reached only if broken
# filter_packets: the packets --stats counts on the filter so far.
filter_packets() { r2x_b --stats b0 | awk '/match 0a010002/ {print $1; exit}'; }
filter_counted() { [ "$(filter_packets)" = "$1" ]; }
# 0. The kernel's own mirred (this kernel has it, not act_nat), without XDP:
# what a redirected frame looks like at c0.
ip netns exec "$NS_B" tc qdisc add dev b0 ingress || die "tc qdisc add"
ip netns exec "$NS_B" tc filter add dev b0 parent ffff: protocol ip prio 10 u32 \
  match ip dst 10.1.0.2 match ip dport 1234 0xffff action mirred egress redirect dev b1 ||
  die "tc filter add (mirred)"
r2x_start kernel_cap "$NS_C" $CAPTURE c0 1234 "$N" "$W"
in_a $PEER udp-send 10.1.0.2 1234 "$N"
r2x_waitfor kernel_cap
want="dmac $MAC_B0 smac $MAC_A0 src 10.1.0.1 dst 10.1.0.2 ttl 64 ipsum ok udpsum ok payload rule2xdp-"
[ "$(last kernel_cap)" = "captured $N" ] || die "0. kernel mirred: $(last kernel_cap) of $N at c0"
bad=$(grep '^dmac' "$TMP/kernel_cap.out" | grep -cv "^$want[0-9]*\$" || true)
[ "$bad" = 0 ] || die "0. kernel mirred frames at c0: $(grep -v "^$want" "$TMP/kernel_cap.out" | head -3)"
ip netns exec "$NS_B" tc qdisc del dev b0 ingress || die "tc qdisc del"
say "0. the kernel's mirred: $N/$N frames at c0 unchanged (MACs $MAC_A0 -> $MAC_B0, TTL 64)"

FILTER="filter add dev b0 parent ffff: protocol ip prio 10 u32 match ip dst 10.1.0.2 match ip dport 1234 0xffff action nat ingress 10.1.0.2/32 10.1.1.2/32 pipe action mirred egress redirect dev b1"
rc=0
r2x_b --load b0 --tc "$FILTER" >"$TMP/nogro.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || die "1. load with c0 taking no redirects: exit $rc, want 2: $(cat "$TMP/nogro.out")"
grep -q "redirect dev b1: b1 cannot transmit .*veth peer has neither an XDP program nor GRO" "$TMP/nogro.out" ||
  die "1. the refusal does not name b1 and why: $(cat "$TMP/nogro.out")"
[ -z "$(ip -n "$NS_B" -d link show dev b0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')" ] ||
  die "1. a program was attached to b0"
say "1. c0 without GRO or XDP: refused, $(head -1 "$TMP/nogro.out")"

ip netns exec "$NS_C" ethtool -K c0 gro on >/dev/null || die "ethtool gro on c0"
r2x_b --load b0 --tc "$FILTER" 2>"$TMP/load.err" || die "load failed: $(cat "$TMP/load.err")"
say "loaded on b0: $FILTER"

# round NAME EXPECT...: N datagrams A -> 10.1.0.2:1234, watched on c0 (raw
# frames, NAME_cap), at C's socket on 10.1.1.2:1234 (NAME_c) and at B's
# socket on 10.1.0.2:1234 (NAME_b). EXPECT lists the watchers that must see
# all N; they are waited for. Then the filter's counter must have grown by
# N (every datagram decided), and the other watchers are stopped.
round() {
  local name=$1 w before
  shift
  before=$(filter_packets)
  r2x_start "${name}_cap" "$NS_C" $CAPTURE c0 1234 "$N" "$W"
  r2x_start "${name}_c" "$NS_C" $PEER udp-recv 10.1.1.2 1234 "$N" "$W"
  r2x_start "${name}_b" "$NS_B" $PEER udp-recv 10.1.0.2 1234 "$N" "$W"
  in_a $PEER udp-send 10.1.0.2 1234 "$N"
  for w in "$@"; do r2x_waitfor "${name}_$w"; done
  r2x_wait_until "$name: the filter did not count $N more than ${before:-0}" \
    filter_counted $((${before:-0} + N))
  for w in cap c b; do
    case " $* " in *" $w "*) ;; *) r2x_stop "${name}_$w" ;; esac
  done
}

ip -n "$NS_C" link set c0 promisc on # no help: ip_rcv_core() drops PACKET_OTHERHOST
round mac cap
[ "$(last mac_cap)" = "captured $N" ] || die "2. frames at c0: $(last mac_cap) of $N"
want="dmac $MAC_B0 smac $MAC_A0 src 10.1.0.1 dst 10.1.1.2 ttl 64 ipsum ok udpsum ok payload rule2xdp-"
bad=$(grep '^dmac' "$TMP/mac_cap.out" | grep -cv "^$want[0-9]*\$" || true)
[ "$bad" = 0 ] || die "2. frames at c0 not as expected ($want...): $(grep -v "^$want" "$TMP/mac_cap.out" | head -3)"
[ "$(last mac_c)" = "received 0" ] || die "2. C's socket got frames addressed to b0's MAC: $(last mac_c)"
ip -n "$NS_C" link set c0 promisc off
[ "$(last mac_b)" = "received 0" ] || die "2. B's socket got datagrams: $(last mac_b)"
say "2. GRO on c0: $N/$N frames at c0, to 10.1.1.2, checksums ok, TTL 64, MACs as sent ($MAC_A0 -> $MAC_B0); C's IP layer drops them (other host)"

ip -n "$NS_C" link set c0 address "$MAC_B0"
round xdp cap c
[ "$(last xdp_c)" = "received $N" ] || die "3. UDP through nat + redirect: $(last xdp_c) of $N at C"
bad=$(grep -v '^received\|^ready' "$TMP/xdp_c.out" | grep -cv '^10.1.0.1 ttl 64 port 1234 rule2xdp-[0-9]*$' || true)
[ "$bad" = 0 ] || die "3. datagrams at C not from 10.1.0.1 with TTL 64: $(grep -v 'ttl 64' "$TMP/xdp_c.out" | head -3)"
for i in 0 $((N / 2)) $((N - 1)); do
  grep -q " rule2xdp-$i\$" "$TMP/xdp_c.out" || die "3. payload rule2xdp-$i missing at C"
done
bad=$(grep '^dmac' "$TMP/xdp_cap.out" | grep -cv 'ipsum ok udpsum ok' || true)
[ "$bad" = 0 ] || die "3. bad checksums at c0: $(grep -v 'udpsum ok' "$TMP/xdp_cap.out" | head -3)"
[ "$(last xdp_b)" = "received 0" ] || die "3. B's socket got datagrams: $(last xdp_b)"
stats=$(r2x_b --stats b0)
pkts=$(echo "$stats" | awk '/match 0a010002/ {print $1; exit}')
[ "$pkts" = $((2 * N)) ] || die "3. --stats counted ${pkts:-nothing}, want $((2 * N)) (rounds 2 and 3): $stats"
echo "$stats"
say "3. c0 with b0's MAC: $N/$N datagrams at C's socket on 10.1.1.2:1234 from 10.1.0.1, payloads intact, checksums ok, none at B"

r2x_start other "$NS_B" $PEER udp-recv 10.1.0.2 4321 20 "$W"
in_a $PEER udp-send 10.1.0.2 4321 20
r2x_waitfor other
[ "$(last other)" = "received 20" ] || die "4. UDP to B:4321: $(last other)"
say "4. unmatched: 20/20 datagrams to 10.1.0.2:4321 at B's socket"

id_before=$(ip -n "$NS_B" -d link show dev b0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
rc=0
r2x_b --load b0 --tc "${FILTER/dev b1/dev nosuch0}" >"$TMP/missing.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || die "5. load with a missing redirect device: exit $rc, want 2: $(cat "$TMP/missing.out")"
grep -q 'nosuch0' "$TMP/missing.out" || die "5. the error does not name the device: $(cat "$TMP/missing.out")"
id_after=$(ip -n "$NS_B" -d link show dev b0 | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p')
[ -n "$id_before" ] && [ "$id_before" = "$id_after" ] || die "5. the program on b0 changed ($id_before -> $id_after)"
say "5. missing device: exit 2, $(head -1 "$TMP/missing.out"); program $id_after kept"
r2x_b --unload b0 >/dev/null || die "unload failed"
say "talk_nat: PASS"
