#!/bin/bash
# test/e2e/conntrack_state.sh - state matches decided from XDP through the
# kernel's conntrack (docs/handover.md, "Connection state"), against the
# kernel itself.
#
# B runs a typical host firewall twice: installed in the kernel with
# iptables-nft-restore, and compiled by rule2xdp --pass-unsupported onto
# B's veth. From A:
#   - a TCP connection to the allowed port works end to end, bytes intact
#     (its established packets are handed over);
#   - SYNs to a port the firewall blocks are dropped by XDP: XDP's INPUT
#     policy counter grows by their number, the kernel's does not move;
#   - conntrack options: new datagrams to :7002 meet `! --ctstatus
#     CONFIRMED --ctdir ORIGINAL` (dropped by XDP at that rule), the answer
#     to B's query never meets `--ctdir REPLY ! --ctstatus SEEN_REPLY` (this
#     packet sets SEEN_REPLY);
#   - UDP: datagrams opening a connection to a blocked port are dropped by
#     XDP, 1200-byte ones too (XDP sums the whole datagram), but not those
#     with a wrong checksum (INVALID to the kernel: handed over); the answer
#     to a connection B opened is handed over and arrives;
#   - SYN+FIN and a bare FIN (invalid flag combinations: INVALID whatever
#     conntrack holds) are dropped by XDP at the INVALID rule;
#   - a bare ACK without a connection (NEW if nf_conntrack_tcp_loose, else
#     INVALID; window tracking) and a SYN with a wrong checksum (INVALID if
#     the kernel checks it) are handed over, and the kernel decides them;
#   - a connection to :2223, whose handshake is accepted and whose first
#     data segment (PSH) meets `REJECT --reject-with tcp-reset` ahead of the
#     ESTABLISHED rule: conntrack holds its entry, which the kernel's RST
#     updates, so XDP hands the segment over instead of sending the RST
#     itself (B forwards, A sends full checksums and the segment is short
#     enough for XDP to verify its sum, so nothing else stops XDP's RST):
#     A's connection is reset, the kernel counts the REJECT, XDP does not. Without that "no entry" gate XDP sends the RST and
#     counts it, and this fails.
# Then XDP is unloaded and every crafted batch is sent again: the kernel
# alone must count each batch on the same rule XDP counted it on.
# Every count XDP made is compared with the kernel's for the same rule: a
# packet XDP dropped is never counted by the kernel, a packet it passed is
# never counted by XDP.
#
# --family 6 does the same over IPv6 (fd00::1 in A, fd00::2 in B, the
# ruleset installed with ip6tables-nft-restore).
#
#   conntrack_state.sh [--family 4|6] [--rule2xdp PATH] [--tools DIR]
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

FAMILY=4
while [ $# -gt 0 ]; do
  case $1 in
  --family) FAMILY=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,27p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
PEER=$(cd "$(dirname "$0")/../tools" && pwd)/ct_peer.py
PY=/usr/bin/python3 # scapy lives here
"$PY" -c 'import scapy' 2>/dev/null || die "$PY has no scapy"
case $FAMILY in
4) IPT=iptables-nft B_NET=10.1.0.2/32 ;;
6) IPT=ip6tables-nft B_NET=fd00::2/128 ;;
*) die "--family is 4 or 6" ;;
esac
export R2X_CT_FAMILY=$FAMILY
command -v "$IPT-restore" >/dev/null || die "$IPT-restore is missing"

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
if [ "$FAMILY" = 6 ]; then
  # lib.sh turns IPv6 off; this test wants it on the veth pair only, with
  # static neighbours (the firewall would drop neighbour discovery).
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 >/dev/null
  done
  # No router solicitations from A: B forwards (below), so it would take
  # A's RSs to ff02::2 on INPUT and count them on its policy.
  in_a sysctl -q -w net.ipv6.conf.veth-a.router_solicitations=0 >/dev/null
  in_a sysctl -q -w net.ipv6.conf.veth-a.disable_ipv6=0 >/dev/null
  in_b sysctl -q -w net.ipv6.conf.veth-b.disable_ipv6=0 >/dev/null
  ip -n "$NS_A" addr add fd00::1/64 dev veth-a nodad
  ip -n "$NS_B" addr add fd00::2/64 dev veth-b nodad
  mac_a=$(ip -n "$NS_A" -br link show veth-a | awk '{print $3}')
  mac_b=$(ip -n "$NS_B" -br link show veth-b | awk '{print $3}')
  ip -n "$NS_A" neigh replace fd00::2 lladdr "$mac_b" dev veth-a nud permanent
  ip -n "$NS_B" neigh replace fd00::1 lladdr "$mac_a" dev veth-b nud permanent
  export R2X_CT_DST_MAC=$mac_b
fi
# XDP's RST needs a reply route from bpf_fib_lookup, which answers only on
# a device that forwards, and a checksum it verified: B forwards (FORWARD's
# policy drops), A's veth sends full checksums.
if [ "$FAMILY" = 6 ]; then
  in_b sysctl -q -w net.ipv6.conf.veth-b.forwarding=1 >/dev/null
else
  in_b sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
fi
in_a ethtool -K veth-a tx off >/dev/null 2>&1 || die "cannot turn off checksum offload on veth-a"
# RELATED host unreachable errors (IPv6: address unreachable) are dropped.
if [ "$FAMILY" = 4 ]; then
  ICMP_RULE='-A INPUT -p icmp -m icmp --icmp-type 3/1 -m conntrack --ctstate RELATED -j DROP'
  HOST_RULE=/code.1/ B2=10.1.0.3
else
  ICMP_RULE='-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1/3 -m conntrack --ctstate RELATED -j DROP'
  HOST_RULE=/code.3/ B2=fd00::3
fi
cat >"$TMP/host.rules" <<RULES
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -d $B_NET -p tcp -m tcp --dport 2223 --tcp-flags PSH PSH -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 7002 -m conntrack ! --ctstatus CONFIRMED --ctdir ORIGINAL -j DROP
-A INPUT -p udp -m udp --sport 7001 -m conntrack --ctdir REPLY ! --ctstatus SEEN_REPLY -j DROP
$ICMP_RULE
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -j DROP
-A INPUT -d $B_NET -p tcp -m tcp --dport 2222 -j ACCEPT
-A INPUT -d $B_NET -p tcp -m tcp --dport 2223 -j ACCEPT
-A INPUT -p udp -m udp --dport 5353 -j ACCEPT
COMMIT
RULES
in_b "$IPT-restore" "$TMP/host.rules" || die "$IPT-restore failed"
"$R2X" -f "$TMP/host.rules" --pass-unsupported -o "$TMP/host.o" \
  2>"$TMP/listing" || die "rule2xdp failed: $(cat "$TMP/listing")"
r2x_b --load veth-b "$TMP/host.o" || die "rule2xdp --load failed"
[ -n "$(r2x_xdp_prog_id)" ] || die "no XDP program on veth-b after --load"

# Packet counts: XDP's (--stats) and the kernel's (iptables -vxnL), for the
# INPUT policy and the rule whose listing matches an awk pattern.
xdp_policy() {
  r2x_b --stats veth-b | sed -n 's/^Chain INPUT (policy DROP: XDP \([0-9]*\) packets.*/\1/p'
}
kern_policy() {
  in_b "$IPT" -L INPUT -vxn | sed -n 's/^Chain INPUT (policy DROP \([0-9]*\) packets.*/\1/p'
}
xdp_rule() { r2x_b --stats veth-b | awk "/^Chain INPUT/ {on=1; next} /^Chain/ {on=0} on && $1 {print \$1}"; }
kern_rule() { in_b "$IPT" -L INPUT -vxn | awk "/^Chain INPUT/ {on=1; next} /^Chain/ {on=0} on && $1 {print \$1}"; }

snapshot() { # snapshot NAME: all four kinds of count
  eval "$1_XP=$(xdp_policy) $1_KP=$(kern_policy)"
  eval "$1_XI=$(xdp_rule /INVALID/) $1_KI=$(kern_rule /INVALID/)"
}

# 1. An allowed TCP connection, end to end.
mkfifo "$TMP/srv.ready"
exec {fd}<>"$TMP/srv.ready"
ip netns exec "$NS_B" "$PY" "$PEER" serve "$TMP/srv.ready" 2222 \
  >"$TMP/srv.out" 2>&1 &
SRV=$!
R2X_PIDS+=("$SRV")
read -r -t "$R2X_WAIT_S" -u "$fd" _ || die "echo server did not start"
snapshot before
OUT=$(in_a "$PY" "$PEER" client 2222 100000 2>&1) || true
wait "$SRV" || true
r2x_reaped "$SRV"
snapshot after
say "TCP connection to :2222: $OUT"
check "allowed TCP connection echoes its bytes" "$OUT" "echoed 100000 bytes"
check "XDP counted nothing for it (INPUT policy)" "$((after_XP - before_XP))" 0
check "kernel's INPUT policy for it" "$((after_KP - before_KP))" 0

# 2. SYNs to a blocked port: NEW for certain (checksum verified, no entry),
# not ESTABLISHED/RELATED, not INVALID, not :2222 -> the policy drops.
N=20
snapshot before
in_a "$PY" "$PEER" craft syn 80 "$N" >/dev/null || die "crafting SYNs failed"
r2x_wait_for() { # r2x_wait_for CMD...: until CMD succeeds
  local i
  for ((i = 0; i < R2X_WAIT_S * 20; ++i)); do
    if "$@"; then return 0; fi
    sleep 0.05
  done
  return 1
}
policy_reached() { [ "$(xdp_policy)" -ge $((before_XP + $1)) ]; }
r2x_wait_for policy_reached "$N" || true
snapshot after
check "SYNs to :80 dropped by XDP (its INPUT policy)" "$((after_XP - before_XP))" "$N"
check "SYNs to :80 counted by the kernel" "$((after_KP - before_KP))" 0

# 3. UDP: new datagrams to a blocked port are dropped by XDP; the answer to
# a connection B opened is ESTABLISHED, handed over, and arrives.
snapshot before
in_a "$PY" "$PEER" craft udp 7000 "$N" >/dev/null || die "crafting UDP failed"
r2x_wait_for policy_reached "$N" || true
snapshot after
check "new UDP to :7000 dropped by XDP" "$((after_XP - before_XP))" "$N"
check "new UDP to :7000 counted by the kernel" "$((after_KP - before_KP))" 0
# The same with 1200 bytes: XDP verifies the whole checksum (NEW for
# certain) and drops; with a wrong one the kernel finds them INVALID, which
# XDP hands over.
snapshot before
in_a "$PY" "$PEER" craft bigudp 7000 "$N" >/dev/null || die "crafting UDP failed"
r2x_wait_for policy_reached "$N" || true
snapshot after
check "new 1200-byte UDP to :7000 dropped by XDP" "$((after_XP - before_XP))" "$N"
check "new 1200-byte UDP to :7000 counted by the kernel" "$((after_KP - before_KP))" 0
snapshot before
in_a "$PY" "$PEER" craft badudp 7000 "$N" >/dev/null || die "crafting UDP failed"
kern_invalid() { [ "$(kern_rule /INVALID/)" -ge $((before_KI + N)) ]; }
r2x_wait_for kern_invalid || true
snapshot after
check "1200-byte UDP with a wrong checksum: the kernel's INVALID rule" "$((after_KI - before_KI))" "$N"
check "1200-byte UDP with a wrong checksum counted by XDP" "$((after_XP - before_XP + after_XI - before_XI))" 0
# Conntrack options: a new connection's entry is not CONFIRMED before
# INPUT, so the :7002 rule drops new datagrams in XDP; the answer below is
# a reply, and SEEN_REPLY is set by that very packet, so the :7001 rule
# never drops it (it must arrive).
before_X2=$(xdp_rule /7002/) before_K2=$(kern_rule /7002/)
in_a "$PY" "$PEER" craft udp 7002 "$N" >/dev/null || die "crafting UDP failed"
rule_7002() { [ "$(xdp_rule /7002/)" -ge $((before_X2 + N)) ]; }
r2x_wait_for rule_7002 || true
check "new UDP to :7002: XDP's count on the ! --ctstatus CONFIRMED rule" "$(($(xdp_rule /7002/) - before_X2))" "$N"
check "new UDP to :7002: the kernel's count on it" "$(($(kern_rule /7002/) - before_K2))" 0
mkfifo "$TMP/udp.ready"
exec {ufd}<>"$TMP/udp.ready"
ip netns exec "$NS_A" "$PY" "$PEER" udp_echo "$TMP/udp.ready" 7001 \
  >"$TMP/udp.out" 2>&1 &
UE=$!
R2X_PIDS+=("$UE")
read -r -t "$R2X_WAIT_S" -u "$ufd" _ || die "UDP echo did not start"
snapshot before
ASK=$(in_b "$PY" "$PEER" udp_ask 7000 7001 2>&1) || true
wait "$UE" || true
r2x_reaped "$UE"
snapshot after
check "answer to B's UDP query arrives" "$ASK" answered
check "XDP counted nothing for it" "$((after_XP - before_XP))" 0
check "XDP's count on the ! --ctstatus SEEN_REPLY rule" "$(xdp_rule /7001/)" 0
check "the kernel's count on it" "$(kern_rule /7001/)" 0

# 4. Invalid flag combinations: INVALID whatever conntrack holds.
for kind in synfin fin; do
  snapshot before
  in_a "$PY" "$PEER" craft "$kind" 2222 "$N" >/dev/null || die "crafting failed"
  invalid_reached() { [ "$(xdp_rule /INVALID/)" -ge $((before_XI + N)) ]; }
  r2x_wait_for invalid_reached || true
  snapshot after
  check "$kind to :2222 dropped by XDP's INVALID rule" "$((after_XI - before_XI))" "$N"
  check "$kind to :2222 counted by the kernel's INVALID rule" "$((after_KI - before_KI))" 0
  check "$kind: XDP's INPUT policy" "$((after_XP - before_XP))" 0
done

# 5. A bare ACK without a connection: NEW (loose pickup) or INVALID, which XDP
# cannot tell: handed over; the kernel decides (here NEW, then its policy).
snapshot before
in_a "$PY" "$PEER" craft ack 80 "$N" >/dev/null || die "crafting ACKs failed"
kern_reached() {
  local p i
  p=$(kern_policy) i=$(kern_rule /INVALID/)
  [ $((p + i)) -ge $((before_KP + before_KI + N)) ]
}
r2x_wait_for kern_reached || true
snapshot after
check "bare ACKs counted by the kernel (policy + INVALID)" \
  "$((after_KP - before_KP + after_KI - before_KI))" "$N"
check "bare ACKs counted by XDP" "$((after_XP - before_XP + after_XI - before_XI))" 0

# A SYN with a wrong checksum: INVALID to a kernel that checks, which XDP
# does not assume: handed over, dropped by the kernel's INVALID rule.
snapshot before
in_a "$PY" "$PEER" craft badsyn 80 "$N" >/dev/null || die "crafting failed"
r2x_wait_for kern_invalid || true
snapshot after
check "SYNs with a wrong checksum: the kernel's INVALID rule" "$((after_KI - before_KI))" "$N"
check "SYNs with a wrong checksum counted by XDP" "$((after_XP - before_XP + after_XI - before_XI))" 0

# 6. tcp-reset REJECT for a segment conntrack holds an entry for: the
# kernel's.
before_XR=$(xdp_rule /REJECT/) before_KR=$(kern_rule /REJECT/)
mkfifo "$TMP/rst.ready"
exec {rfd}<>"$TMP/rst.ready"
ip netns exec "$NS_B" "$PY" "$PEER" serve "$TMP/rst.ready" 2223 \
  >"$TMP/rst.out" 2>&1 &
RSRV=$!
R2X_PIDS+=("$RSRV")
read -r -t "$R2X_WAIT_S" -u "$rfd" _ || die "server on :2223 did not start"
OUT=$(in_a "$PY" "$PEER" client 2223 10 2>&1) || true
# B's end never learns of the reset (the REJECT answers A only): end it.
kill -TERM "$RSRV" 2>/dev/null || true
wait "$RSRV" 2>/dev/null || true
r2x_reaped "$RSRV"
# The RST ends the connection before or after the client's shutdown():
# ECONNRESET or ENOTCONN, both after a connect() that succeeded.
if grep -Eq "ConnectionResetError|Errno 107" <<<"$OUT"; then RESET=yes; else RESET="no: $OUT"; fi
check "connection to :2223 reset at its first data segment" "$RESET" yes
kern_rejected() { [ "$(kern_rule /REJECT/)" -ge $((before_KR + 1)) ]; }
r2x_wait_for kern_rejected || true
check "the kernel counted the REJECT" "$(($(kern_rule /REJECT/) > before_KR))" 1
check "XDP counted the REJECT (conntrack has an entry: the kernel's)" "$(($(xdp_rule /REJECT/) - before_XR))" 0

# 7. ICMP (ICMPv6) errors: RELATED to a flow conntrack holds (its quoted
# tuple, inverted, found), or INVALID (no such flow, a quote cut short, a
# flow found whose source is not the error's destination), decided by XDP;
# one with a wrong checksum is the kernel's.

mkfifo "$TMP/icmp.ready"
exec {ifd}<>"$TMP/icmp.ready"
ip netns exec "$NS_A" "$PY" "$PEER" udp_echo "$TMP/icmp.ready" 7101 \
  >"$TMP/icmp.out" 2>&1 &
IE=$!
R2X_PIDS+=("$IE")
read -r -t "$R2X_WAIT_S" -u "$ifd" _ || die "UDP echo on :7101 did not start"
# ICMP errors do not refresh the flow's entry: it must outlive every
# batch below however slow the machine is (30 s by default).
in_b sysctl -q -w net.netfilter.nf_conntrack_udp_timeout=3600 >/dev/null
ASK=$(in_b "$PY" "$PEER" udp_ask 7100 7101 2>&1) || true
wait "$IE" || true
r2x_reaped "$IE"
check "B's UDP flow :7100 -> A:7101 answered" "$ASK" answered
# A flow from B's second address (A reaches it by ARP, or a static
# neighbour entry over IPv6).
if [ "$FAMILY" = 4 ]; then
  ip -n "$NS_B" addr add "$B2/32" dev veth-b || die "second address in B"
else
  ip -n "$NS_B" addr add "$B2/128" dev veth-b nodad || die "second address in B"
  ip -n "$NS_A" neigh replace "$B2" lladdr "$mac_b" dev veth-a nud permanent
fi
ip netns exec "$NS_A" "$PY" "$PEER" udp_echo "$TMP/icmp.ready" 7101 \
  >"$TMP/icmp.out" 2>&1 &
IE=$!
R2X_PIDS+=("$IE")
read -r -t "$R2X_WAIT_S" -u "$ifd" _ || die "UDP echo on :7101 did not start"
ASK=$(in_b "$PY" "$PEER" udp_ask 7300 7101 "$B2" 2>&1) || true
wait "$IE" || true
r2x_reaped "$IE"
check "B's UDP flow $B2:7300 -> A:7101 answered" "$ASK" answered
# kind, quoted flow's source port, the rule that must count the batch,
# and who counts it (xdp: XDP decided; kernel: handed over).
ICMP_SPECS=("host 7100 $HOST_RULE xdp" "longhost 7100 $HOST_RULE xdp"
  "port 7200 /INVALID/ xdp"
  "short 7100 /INVALID/ xdp" "wrongdst 7300 /INVALID/ xdp"
  "badsum 7100 /INVALID/ kernel"
  "port 7100 /RELATED,ESTABLISHED/ kernel")
for spec in "${ICMP_SPECS[@]}"; do
  read -r kind sport rule who <<<"$spec"
  bx=$(xdp_rule "$rule") bk=$(kern_rule "$rule")
  in_a "$PY" "$PEER" icmp "$kind" "$sport" 7101 "$N" >/dev/null || die "crafting ICMP failed"
  counted() {
    if [ "$who" = xdp ]; then
      [ "$(xdp_rule "$rule")" -ge $((bx + N)) ]
    else
      [ "$(kern_rule "$rule")" -ge $((bk + N)) ]
    fi
  }
  r2x_wait_for counted || true
  if [ "$who" = xdp ]; then want_x=$N want_k=0; else want_x=0 want_k=$N; fi
  check "ICMP $kind about :$sport, XDP's count on $rule" "$(($(xdp_rule "$rule") - bx))" "$want_x"
  check "ICMP $kind about :$sport, the kernel's count on $rule" "$(($(kern_rule "$rule") - bk))" "$want_k"
done

# The reference: the kernel alone, for the batches XDP decided.
r2x_b --unload veth-b || die "rule2xdp --unload failed"
for spec in "syn 80 policy" "udp 7000 policy" "bigudp 7000 policy" \
  "synfin 2222 INVALID" "fin 2222 INVALID"; do
  read -r kind port where <<<"$spec"
  before=$( ([ "$where" = policy ] && kern_policy) || kern_rule /INVALID/)
  in_a "$PY" "$PEER" craft "$kind" "$port" "$N" >/dev/null || die "crafting failed"
  kern_at() {
    local now
    now=$( ([ "$where" = policy ] && kern_policy) || kern_rule /INVALID/)
    [ "$now" -ge $((before + N)) ]
  }
  r2x_wait_for kern_at || true
  now=$( ([ "$where" = policy ] && kern_policy) || kern_rule /INVALID/)
  check "without XDP, the kernel counts $kind to :$port on its $where" \
    "$((now - before))" "$N"
done

before=$(kern_rule /7002/)
in_a "$PY" "$PEER" craft udp 7002 "$N" >/dev/null || die "crafting UDP failed"
kern_7002() { [ "$(kern_rule /7002/)" -ge $((before + N)) ]; }
r2x_wait_for kern_7002 || true
check "without XDP, the kernel counts new UDP to :7002 on its rule" \
  "$(($(kern_rule /7002/) - before))" "$N"

for spec in "${ICMP_SPECS[@]}"; do
  read -r kind sport rule who <<<"$spec"
  [ "$who" = xdp ] || continue
  before=$(kern_rule "$rule")
  in_a "$PY" "$PEER" icmp "$kind" "$sport" 7101 "$N" >/dev/null || die "crafting ICMP failed"
  kern_icmp() { [ "$(kern_rule "$rule")" -ge $((before + N)) ]; }
  r2x_wait_for kern_icmp || true
  check "without XDP, the kernel counts ICMP $kind about :$sport on $rule" \
    "$(($(kern_rule "$rule") - before))" "$N"
done

if [ "$FAILS" -ne 0 ]; then
  say "listing:"; cat "$TMP/listing"
  r2x_b --stats veth-b || true
  in_b "$IPT" -L INPUT -vxn || true
  die "$FAILS check(s) failed"
fi
say "conntrack state: all checks passed"
