#!/usr/bin/env bash
# test/e2e/nat_replies.sh - hand-over mode with MASQUERADE in the kernel:
# XDP decides the filter for packets conntrack shows are new and
# untranslated, and hands the replies of masqueraded connections over.
#
#   A veth-a 10.1.0.1 --- veth-b 10.1.0.2 B b1 10.2.0.1 --- c0 10.2.0.2 C
#
# B routes A's traffic out of b1 with MASQUERADE (C has no route back to
# 10.1.0.0/24, so only the masquerade makes replies possible) and drops TCP
# and UDP addressed to itself from b1 (INPUT). The same ruleset is installed
# in B's iptables and compiled with --pass-unsupported onto b1:
#  1. a TCP transfer from A to C: C's replies arrive at b1 addressed to B
#     (10.2.0.1) and are forwarded to A only after conntrack rewrites their
#     destination at nat PREROUTING. XDP must hand them over (their
#     conntrack entry has IPS_SRC_NAT): judged by their destination as
#     they arrive, they would meet INPUT's TCP DROP. The transfer must
#     complete with identical bytes, and XDP must count nothing.
#  2. N datagrams from C to B itself (a new connection, no NAT): dropped by
#     XDP at INPUT's UDP DROP, so XDP's counter is N and the kernel's 0.
#  3. A TCP connection from C to B itself: its handshake is accepted, its
#     first data segment (PSH) meets `REJECT --reject-with tcp-reset`. On
#     this host the kernel's RST would pass nat POSTROUTING (MASQUERADE -o
#     b1), so the compiler hands that REJECT over (docs/handover.md,
#     "REJECT"): C's connection is reset by the kernel, which counts the
#     REJECT; XDP counts 0.
#  4. The MASQUERADE rule deleted while a masqueraded UDP flow's entry
#     stays: `--accelerate b1` notes the translated connection and hands
#     C's replies to it over (XDP counts none), since conntrack may still
#     rewrite them towards A.
# Before conntrack was looked up at nat PREROUTING, every packet after
# mangle PREROUTING was handed over: run 2 then fails (XDP counts 0).
# Needs root; fails (never skips) without it. Everything lives in
# namespaces, a bpffs and a /run/netns of its own (see lib.sh).
set -euo pipefail
R2X_NAME=nat_replies
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
PEER=(/usr/bin/python3 "$here/../tools/nat_peer.py")
IPT=iptables-nft
N=50

r2x_make_network
r2x_more_netns NS_C
ip link add b1 netns "$NS_B" type veth peer name c0 netns "$NS_C" ||
  die "cannot create the B-C veth pair"
ip -n "$NS_B" addr add 10.2.0.1/24 dev b1
ip -n "$NS_C" addr add 10.2.0.2/24 dev c0
ip -n "$NS_B" link set b1 up
ip -n "$NS_C" link set c0 up
mac_b1=$(ip -n "$NS_B" -br link show b1 | awk '{print $3}')
mac_c0=$(ip -n "$NS_C" -br link show c0 | awk '{print $3}')
ip -n "$NS_B" neigh replace 10.2.0.2 lladdr "$mac_c0" dev b1 nud permanent
ip -n "$NS_C" neigh replace 10.2.0.1 lladdr "$mac_b1" dev c0 nud permanent
ip -n "$NS_A" route add default via 10.1.0.2
in_b sysctl -q -w net.ipv4.ip_forward=1
# Full checksums from C's sockets (XDP verifies them; see docs/brief).
ip netns exec "$NS_C" ethtool -K c0 tx off >/dev/null 2>&1 ||
  die "cannot turn off checksum offload on c0"

cat >"$TMP/nat.rules" <<'EOF'
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o b1 -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i b1 -p tcp -m tcp --dport 6000 --tcp-flags PSH PSH -j REJECT --reject-with tcp-reset
-A INPUT -i b1 -p tcp -m tcp --dport 6000 -j ACCEPT
-A INPUT -i b1 -p tcp -j DROP
-A INPUT -i b1 -p udp -j DROP
COMMIT
EOF
in_b "$IPT-restore" "$TMP/nat.rules" || die "$IPT-restore failed in B"
"$R2X" -f "$TMP/nat.rules" --pass-unsupported -o "$TMP/nat.o" \
  2>"$TMP/compile.err" || die "rule2xdp failed: $(cat "$TMP/compile.err")"
grep -q 'the kernel translates source addresses' "$TMP/compile.err" ||
  die "no note about the kernel's source NAT: $(cat "$TMP/compile.err")"
r2x_b --load b1 "$TMP/nat.o" >/dev/null || die "rule2xdp --load b1 failed"
ip -n "$NS_B" -d link show dev b1 | grep -q 'prog/xdp' ||
  die "no XDP program on b1 after --load"

xdp_packets() { # PATTERN: XDP's count of the rule
  local n
  n=$(r2x_b --stats b1 | awk -v pat="$1" '$0 ~ pat {print $1; exit}')
  [ -n "$n" ] || die "no rule matching '$1' in --stats: $(r2x_b --stats b1)"
  printf '%s\n' "$n"
}
kernel_packets() { # PATTERN: the kernel's count of the rule (--stats)
  local n
  n=$(r2x_b --stats b1 | awk -v pat="$1" '$0 ~ pat {print $3; exit}')
  [ -n "$n" ] || die "no rule matching '$1' in --stats: $(r2x_b --stats b1)"
  printf '%s\n' "$n"
}
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || die "$1: $2, expected $3"
  say "ok    $1: $2"
}

# 1. A TCP transfer through the masquerade: every reply is handed over.
r2x_start server "$NS_C" "${PEER[@]}" tcp-server 10.2.0.2 5001
out=$(in_a "${PEER[@]}" tcp-client 10.2.0.2 5001 200000) ||
  die "the TCP transfer from A to C failed: $out"
r2x_waitfor server
sent=$(awk '/^bytes/ {print $2, $4; exit}' <<<"$out")
got=$(awk '/^peer/ {print $4, $6; exit}' "$TMP/server.out")
peer=$(awk '/^peer/ {print $2; exit}' "$TMP/server.out")
[ -n "$sent" ] && [ "$sent" = "$got" ] ||
  die "C received other bytes than A sent: A '$sent', C '$got'"
expect "the address C saw (masqueraded)" "$peer" 10.2.0.1
say "ok    TCP transfer A -> C through MASQUERADE: $sent"
expect "XDP's count of INPUT -i b1 -p tcp DROP" "$(xdp_packets 'DROP +6 ')" 0
expect "the kernel's count of INPUT -i b1 -p tcp DROP" "$(kernel_packets 'DROP +6 ')" 0

# 2. Datagrams from C to B itself: a new connection, decided in XDP.
out=$(ip netns exec "$NS_C" "${PEER[@]}" udp-send 10.2.0.1 5000 $N) ||
  die "udp-send from C failed: $out"
r2x_wait_until "XDP counting $N datagrams at INPUT's UDP DROP" \
  test "$(xdp_packets 'DROP +17 ')" = "$N"
expect "XDP's count of INPUT -i b1 -p udp DROP" "$(xdp_packets 'DROP +17 ')" "$N"
expect "the kernel's count of INPUT -i b1 -p udp DROP" "$(kernel_packets 'DROP +17 ')" 0

# 3. A connection to B whose data meets a tcp-reset REJECT: the kernel's
# (its RST goes through nat POSTROUTING).
r2x_start rstsrv "$NS_B" "${PEER[@]}" tcp-server 10.2.0.1 6000
if out=$(ip netns exec "$NS_C" "${PEER[@]}" tcp-client 10.2.0.1 6000 100 2>&1); then
  die "C's connection to B:6000 was not reset: $out"
fi
# The RST ends the connection before or after the client's shutdown():
# ECONNRESET or ENOTCONN, both after a connect() that succeeded.
grep -Eq "ConnectionResetError|Errno 107" <<<"$out" ||
  die "C's connection to B:6000 failed, but not by a reset: $out"
# B's end never learns of the reset (the REJECT answers C only): end it.
kill -TERM "$PID_rstsrv" 2>/dev/null || true
wait "$PID_rstsrv" 2>/dev/null || true
r2x_reaped "$PID_rstsrv"
say "ok    C's connection to B:6000 reset"
r2x_wait_until "the kernel counting the :6000 REJECT" \
  test "$(kernel_packets 'REJECT +6 .*dpt:6000')" -ge 1
expect "XDP's count of the :6000 REJECT (handed over)" "$(xdp_packets 'REJECT +6 .*dpt:6000')" 0
# 4. Stale translated connections under --accelerate: a UDP flow from A to
# C is masqueraded, then the MASQUERADE rule is deleted; its conntrack
# entry (IPS_SRC_NAT) stays. Wherever conntrack still rewrote C's replies
# (to B's address) back to A, a program judging them as they arrive would
# drop them at INPUT's UDP DROP (the differential test once saw such a
# rewrite of a GRE flow under the next ruleset). `--accelerate b1` reads a
# ruleset without NAT, notes the translated connection, and hands packets
# of translated entries over: XDP counts none of C's replies, the kernel
# decides each. (This kernel, 6.18, drops them at INPUT after the rule is
# deleted, with either back end: the entry stays UNREPLIED.)
in_b sysctl -q -w net.netfilter.nf_conntrack_udp_timeout=3600
in_b sysctl -q -w net.netfilter.nf_conntrack_udp_timeout_stream=3600
in_a /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.1", 40123))
s.sendto(b"open", ("10.2.0.2", 5002))' || die "A's datagram to C failed"
in_b "$IPT" -t nat -D POSTROUTING -o b1 -j MASQUERADE || die "deleting MASQUERADE in B"
r2x_b --accelerate b1 >"$TMP/accel.out" 2>"$TMP/accel.err" ||
  die "rule2xdp --accelerate b1 failed: $(cat "$TMP/accel.err")"
grep -q 'connections translated under an earlier ruleset, still in conntrack' "$TMP/accel.out" ||
  die "--accelerate did not see the translated connection: $(cat "$TMP/accel.out")"
XBEFORE=$(xdp_packets 'DROP +17 ') KBEFORE=$(kernel_packets 'DROP +17 ')
K=20
r2x_start replies "$NS_A" /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.1", 40123))
print("ready", flush=True)
n = 0
while True:
    s.recvfrom(2048)
    n += 1
    print("got", n, flush=True)'
ip netns exec "$NS_C" /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.2.0.2", 5002))
for _ in range(int(sys.argv[1])):
    s.sendto(b"reply", ("10.2.0.1", 40123))' "$K" || die "C's replies failed"
received() { awk '/^got/ {n = $2} END {print n + 0}' "$TMP/replies.out"; }
all_decided() {
  [ $(($(received) + $(kernel_packets 'DROP +17 ') - KBEFORE + $(xdp_packets 'DROP +17 ') - XBEFORE)) -ge "$K" ]
}
r2x_wait_until "C's $K replies delivered to A or counted" all_decided
kill -TERM "$PID_replies" 2>/dev/null || true
wait "$PID_replies" 2>/dev/null || true
r2x_reaped "$PID_replies"
say "ok    C's replies: $(received) delivered to A, $(($(kernel_packets 'DROP +17 ') - KBEFORE)) dropped by the kernel's INPUT"
expect "XDP's count of INPUT -i b1 -p udp DROP, after the replies (handed over)" "$(($(xdp_packets 'DROP +17 ') - XBEFORE))" 0
say "nat replies: all checks passed"
