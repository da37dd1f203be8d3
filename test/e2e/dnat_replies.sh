#!/usr/bin/env bash
# test/e2e/dnat_replies.sh - a DNAT program must see and send back the
# replies of the connections it translates, on a plain veth network.
#
#   A a0 10.1.0.1 --- b0 10.1.0.2  B  b1 10.1.1.1 --- c0 10.1.1.2 C
#
# B translates TCP to 10.1.0.2:5001 to C (DNAT 10.1.1.2). The veth pairs
# are left as `ip link add` makes them (transmit checksum offload on, GRO
# off) except where a case says otherwise. What happened before the loader
# checked (rule2xdp up to the object contract's version 1):
#  - `--load b0` was accepted, and a TCP transfer through it timed out: C's
#    replies arrive on b1, where no program translated them back, so A got
#    a SYN-ACK from 10.1.1.2 and reset the connection;
#  - `--load b0,b1` was accepted and TCP stalled: the program redirects
#    translated packets into b1 and replies into b0, and a veth whose peer
#    has neither an XDP program nor GRO (c0, a0) drops what XDP redirects to
#    it (the kernel lists no ndo_xdp_xmit for it).
# Now:
#  1. `--load b0`: refused (exit 2), naming b1 where replies arrive; nothing
#     attached;
#  2. `--load b0,b1` (native): refused, naming b0 and why (its veth peer has
#     neither XDP nor GRO); nothing attached;
#  3. `--load b0,b1 --mode generic`: generic XDP redirects through the
#     kernel's transmit path, which any device takes: a 1 MiB TCP transfer
#     completes with identical bytes, and C sees the client's address;
#  4. native, with GRO on a0 only (and transmit checksum offload off on the
#     senders, docs/nat.md): replies go back by redirect into b0; packets in
#     the original direction, whose redirect target b1 cannot transmit, get
#     XDP_PASS and B's kernel forwards them (translated). The transfer
#     completes; b1 redirected replies, b0 redirected nothing.
# Needs root; fails (never skips) without it.
set -euo pipefail
R2X_NAME=dnat_replies
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
PEER="/usr/bin/python3 $here/../tools/nat_peer.py"

NS_C=
cleanup() {
  local rc=$? ns
  set +e
  trap - EXIT
  for pid in "${R2X_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for ns in "$NS_A" "$NS_B" "$NS_C"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null; done
  r2x_forget_locks
  [ -n "$TMP" ] && rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run="r2x-$$-$RANDOM"
TMP=$(mktemp -d /tmp/r2x-dnatr.XXXXXX)
NS_A=$run-a NS_B=$run-b NS_C=$run-c
for ns in "$NS_A" "$NS_B" "$NS_C"; do
  r2x_netns_add "$ns"
  ip -n "$ns" link set lo up
done
ip link add a0 netns "$NS_A" type veth peer name b0 netns "$NS_B"
ip link add b1 netns "$NS_B" type veth peer name c0 netns "$NS_C"
ip -n "$NS_A" addr add 10.1.0.1/24 dev a0
ip -n "$NS_B" addr add 10.1.0.2/24 dev b0
ip -n "$NS_B" addr add 10.1.1.1/24 dev b1
ip -n "$NS_C" addr add 10.1.1.2/24 dev c0
for l in "$NS_A a0" "$NS_B b0" "$NS_B b1" "$NS_C c0"; do
  set -- $l
  ip -n "$1" link set "$2" up
done
ip -n "$NS_A" route add 10.1.1.0/24 via 10.1.0.2
ip -n "$NS_C" route add default via 10.1.1.1
ip netns exec "$NS_B" sysctl -q -w net.ipv4.ip_forward=1
r2x_b() { nsenter --net="/run/netns/$NS_B" -- "$R2X" "$@"; }
prog_on() { ip -n "$NS_B" -d link show dev "$1" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'; }
xdp_stat() { # DEV COUNTER: a veth's per-queue XDP counter in B
  ip netns exec "$NS_B" ethtool -S "$1" | awk -v c="rx_queue_0_$2:" '$1 == c {print $2}'
}
# Neighbours resolved before the measured traffic (C answers the datagram
# to its closed port 9 with an ICMP error, resolving the other way).
ip netns exec "$NS_A" $PEER udp-send 10.1.1.2 9 1 || die "cannot send from A"
for _ in $(seq 50); do
  ip -n "$NS_B" neigh show 10.1.1.2 | grep -q lladdr &&
    ip -n "$NS_B" neigh show 10.1.0.1 | grep -q lladdr && break
  sleep 0.1
done

RULE=(-t nat -A PREROUTING -d 10.1.0.2 -p tcp --dport 5001 -j DNAT --to-destination 10.1.1.2)
BYTES=1048576

transfer() { # NAME: a TCP transfer A -> 10.1.0.2:5001 -> C, checked
  r2x_start "$1srv" "$NS_C" $PEER tcp-server 10.1.1.2 5001
  ip netns exec "$NS_A" $PEER tcp-client 10.1.0.2 5001 $BYTES >"$TMP/$1cli.out" 2>&1 ||
    die "$1: TCP client failed: $(cat "$TMP/$1cli.out")"
  r2x_waitfor "$1srv"
  local sent recv peer
  sent=$(awk '/^bytes/ {print $4}' "$TMP/$1cli.out")
  recv=$(awk '/^peer/ {print $6}' "$TMP/$1srv.out")
  peer=$(awk '/^peer/ {print $2}' "$TMP/$1srv.out")
  [ -n "$sent" ] && [ "$sent" = "$recv" ] ||
    die "$1: TCP transfer differs: $(cat "$TMP/$1cli.out") / $(cat "$TMP/$1srv.out")"
  [ "$peer" = 10.1.0.1 ] || die "$1: C saw the connection from $peer, not 10.1.0.1"
}

nothing_attached() { # CASE
  [ -z "$(prog_on b0)$(prog_on b1)" ] || die "$1: a program was left attached (b0: $(prog_on b0), b1: $(prog_on b1))"
}

# 1. Only where the clients are.
rc=0
r2x_b "${RULE[@]}" --load b0 >"$TMP/1.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || die "1. --load b0 exited $rc, want 2: $(cat "$TMP/1.out")"
grep -q "replies from 10.1.1.2 arrive on b1" "$TMP/1.out" ||
  die "1. the refusal does not name b1: $(cat "$TMP/1.out")"
grep -q -- "--load b0,b1" "$TMP/1.out" || die "1. the refusal does not say how: $(cat "$TMP/1.out")"
nothing_attached 1
say "1. --load b0 refused: $(head -1 "$TMP/1.out")"

# 2. Both sides, native, plain veth.
rc=0
r2x_b "${RULE[@]}" --load b0,b1 >"$TMP/2.out" 2>&1 || rc=$?
[ "$rc" = 2 ] || die "2. --load b0,b1 exited $rc, want 2: $(cat "$TMP/2.out")"
grep -q "back to clients on b0 .*veth peer has neither an XDP program nor GRO" "$TMP/2.out" ||
  die "2. the refusal does not name b0 and why: $(cat "$TMP/2.out")"
nothing_attached 2
say "2. --load b0,b1 (native, plain veth) refused: $(head -1 "$TMP/2.out")"

# 3. Generic mode takes any device.
r2x_b "${RULE[@]}" --load b0,b1 --mode generic 2>"$TMP/3.err" ||
  die "3. --load b0,b1 --mode generic failed: $(cat "$TMP/3.err")"
transfer 3
conns=$(r2x_b --stats b0 | awk '/DNAT/ {print $1}')
[ "${conns:-0}" -ge 1 ] || die "3. the DNAT rule counted no connection: $(r2x_b --stats b0)"
r2x_b --unload b0 && r2x_b --unload b1 || die "3. unload failed"
say "3. generic mode: 1 MiB TCP through the DNAT, identical at C (DNAT rule: $conns connection)"

# 4. Native, replies redirected into b0 (GRO on its peer a0); the original
# direction passed to B's kernel, since c0 (b1's peer) takes no redirects.
for l in "$NS_A a0" "$NS_C c0"; do
  set -- $l
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null || die "ethtool tx off on $2"
done
ip netns exec "$NS_A" ethtool -K a0 gro on >/dev/null || die "gro on a0"
r2x_b "${RULE[@]}" --load b0,b1 2>"$TMP/4.err" || die "4. --load b0,b1 failed: $(cat "$TMP/4.err")"
red0=$(xdp_stat b0 xdp_redirect) red1=$(xdp_stat b1 xdp_redirect)
fwd0=$(ip netns exec "$NS_B" nstat -az IpForwDatagrams | awk '/IpForwDatagrams/ {print $2}')
transfer 4
red0=$(($(xdp_stat b0 xdp_redirect) - ${red0:-0}))
red1=$(($(xdp_stat b1 xdp_redirect) - ${red1:-0}))
fwd=$(($(ip netns exec "$NS_B" nstat -az IpForwDatagrams | awk '/IpForwDatagrams/ {print $2}') - fwd0))
[ "$red1" -gt 0 ] || die "4. no reply was redirected by XDP on b1"
[ "$red0" = 0 ] || die "4. b0 redirected $red0 packets into b1, which cannot transmit them"
[ "$fwd" -gt 0 ] || die "4. B's kernel forwarded nothing: who carried the original direction?"
say "4. native: TCP identical; $red1 replies redirected by XDP into b0, $fwd packets forwarded by B's kernel (b1 takes no redirects: XDP_PASS)"
say "dnat_replies: PASS"
