#!/bin/bash
# test/e2e/addrtype_follow.sh - `-m addrtype` decided in XDP from its copy of
# the kernel's local routing table, kept current by `--accelerate --follow`
# (runtime/LocalTable.h), on the demo network of lib.sh.
#
# B's ruleset (installed with iptables-nft-restore):
#   raw PREROUTING  udp dpt:7001 -m addrtype --dst-type LOCAL    DROP
#   raw PREROUTING  udp dpt:7002 -m addrtype ! --dst-type LOCAL  DROP
#   filter INPUT    udp dpt:7003 -m addrtype --dst-type LOCAL,BROADCAST DROP
#  1. `--accelerate veth-b` alone (no process keeps a copy current): N
#     datagrams to 10.1.0.2:7001 are handed over (the kernel's rule counts
#     N, XDP's 0).
#  2. `--accelerate veth-b --follow`: it says it copied the table. N to
#     10.1.0.2:7001 and N to :7003 are dropped by XDP (XDP counts N, the
#     kernel's rules stay); N to 10.1.0.9:7002 (B's MAC, not B's address:
#     UNICAST) too.
#  3. `ip addr add 10.1.0.9/32 dev veth-b` in B: once XDP's :7001 rule
#     counts a datagram to 10.1.0.9 (polled: the copy follows the kernel's
#     rtnetlink event), N more are dropped by XDP on :7001 and the kernel's
#     counts stay (N to :7002 match neither side's rule); then `ip addr
#     del`: N to 10.1.0.9:7002 are dropped by XDP on :7002 again, and N to
#     :7001 match neither.
#  4. SIGTERM: --follow revokes the lease on its way out; N to
#     10.1.0.2:7001 are handed over again (the kernel counts them).
#  5. --follow again, then SIGKILL (no chance to revoke): the lease runs
#     out by itself (1 s) and the datagrams reach the kernel again (polled).
#
#   addrtype_follow.sh [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,29p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
IPT=iptables-nft
for c in "$IPT" "$IPT-restore"; do
  command -v "$c" >/dev/null || die "$c is missing"
done
N=50
OTHER=10.1.0.9 # on B's link, B's address only in step 3

# kernel_count TABLE PORT: the kernel's packet count of B's rule on PORT.
kernel_count() {
  local n
  n=$(in_b "$IPT" -t "$1" -L -v -x -n | awk -v p="dpt:$2" 'NR > 2 && $0 ~ p {print $1; exit}')
  [ -n "$n" ] || die "no rule for :$2 in B's $1 table"
  printf '%s\n' "$n"
}
xdp_count() { # PORT
  local n
  n=$(r2x_rule_packets "DROP.*dpt:$1")
  [ -n "$n" ] || die "no rule for :$1 in --stats: $(r2x_b --stats veth-b)"
  printf '%s\n' "$n"
}
send_to() { # ADDR PORT COUNT
  local out
  out=$(in_a "$SEND" "$1" "$2" "$3") || die "udp_send to $1:$2 failed: $out"
  [ "$out" = "sent $3" ] || die "udp_send to $1:$2: $out"
}
# burst XDP KERNEL ADDR PORT TABLE: N datagrams to ADDR:PORT, then a fence;
# XDP's rule on PORT must count XDP of them and the kernel's KERNEL.
burst() {
  local want=$1 kwant=$2 addr=$3 port=$4 table=$5 x0 k0 x1 k1
  x0=$(xdp_count "$port")
  k0=$(kernel_count "$table" "$port")
  send_to "$addr" "$port" $N
  r2x_fence 4321 10
  x1=$(xdp_count "$port")
  k1=$(kernel_count "$table" "$port")
  [ $((x1 - x0)) = "$want" ] && [ $((k1 - k0)) = "$kwant" ] ||
    die "$N to $addr:$port: XDP counted $((x1 - x0)), the kernel $((k1 - k0)); want $want and $kwant"
  say "   $N to $addr:$port: XDP $((x1 - x0)), kernel $((k1 - k0))"
}

r2x_make_network
# A sends to OTHER with B's MAC, as to B.
MAC_B=$(ip -n "$NS_B" -br link show veth-b | awk '{print $3}')
ip -n "$NS_A" neigh replace "$OTHER" lladdr "$MAC_B" dev veth-a nud permanent
cat >"$TMP/rules" <<'R'
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p udp -m udp --dport 7001 -m addrtype --dst-type LOCAL -j DROP
-A PREROUTING -p udp -m udp --dport 7002 -m addrtype ! --dst-type LOCAL -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 7003 -m addrtype --dst-type LOCAL,BROADCAST -j DROP
COMMIT
R
in_b "$IPT-restore" "$TMP/rules" || die "$IPT-restore failed in B"

say "== 1. --accelerate alone: addrtype handed over"
r2x_b --accelerate veth-b >"$TMP/acc.out" 2>&1 || die "--accelerate failed: $(cat "$TMP/acc.out")"
sed 's/^/   | /' "$TMP/acc.out"
grep -q "note: address type (.*--follow" "$TMP/acc.out" ||
  die "the listing does not say when addrtype is decided in XDP"
burst 0 $N 10.1.0.2 7001 raw

start_follow() { # NAME
  nsenter --net="/run/netns/$NS_B" -- "$R2X" --accelerate veth-b --follow \
    >"$TMP/$1.out" 2>"$TMP/$1.err" &
  FOLLOW=$!
  R2X_PIDS+=("$FOLLOW")
  copied() { grep -q '^rule2xdp: -m addrtype decided in XDP from a copy' "$TMP/$1.out"; }
  r2x_wait_until "--follow to copy the local table ($(cat "$TMP/$1.out" "$TMP/$1.err"))" copied "$1"
  grep '^rule2xdp: -m addrtype' "$TMP/$1.out" | sed 's/^/   | /'
}

say "== 2. --follow: decided in XDP"
start_follow follow1
burst $N 0 10.1.0.2 7001 raw
burst $N 0 10.1.0.2 7003 filter
burst $N 0 "$OTHER" 7002 raw

say "== 3. an address added, then deleted, under --follow"
ip -n "$NS_B" addr add "$OTHER/32" dev veth-b
xdp_sees_local() {
  local before
  before=$(xdp_count 7001)
  send_to "$OTHER" 7001 1
  r2x_fence 4321 1
  [ "$(xdp_count 7001)" -gt "$before" ]
}
r2x_wait_until "XDP to see $OTHER as LOCAL ($(cat "$TMP/follow1.err"))" xdp_sees_local
burst $N 0 "$OTHER" 7001 raw
burst 0 0 "$OTHER" 7002 raw
ip -n "$NS_B" addr del "$OTHER/32" dev veth-b
xdp_sees_unicast() {
  local before
  before=$(xdp_count 7002)
  send_to "$OTHER" 7002 1
  r2x_fence 4321 1
  [ "$(xdp_count 7002)" -gt "$before" ]
}
r2x_wait_until "XDP to see $OTHER as UNICAST again ($(cat "$TMP/follow1.err"))" xdp_sees_unicast
burst $N 0 "$OTHER" 7002 raw
burst 0 0 "$OTHER" 7001 raw

say "== 4. SIGTERM: the lease is revoked"
kill -TERM "$FOLLOW"
wait "$FOLLOW" || die "--follow exited $? on SIGTERM: $(cat "$TMP/follow1.err")"
r2x_reaped "$FOLLOW"
burst 0 $N 10.1.0.2 7001 raw

say "== 5. SIGKILL: the lease runs out"
start_follow follow2
burst $N 0 10.1.0.2 7001 raw
kill -KILL "$FOLLOW"
wait "$FOLLOW" 2>/dev/null || true
r2x_reaped "$FOLLOW"
kernel_sees() {
  local before
  before=$(kernel_count raw 7001)
  send_to 10.1.0.2 7001 1
  r2x_fence 4321 1
  [ "$(kernel_count raw 7001)" -gt "$before" ]
}
r2x_wait_until "the lease to run out after SIGKILL" kernel_sees
burst 0 $N 10.1.0.2 7001 raw
say "PASS"
