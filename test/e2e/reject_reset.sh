#!/bin/bash
# test/e2e/reject_reset.sh - REJECT --reject-with tcp-reset sent from XDP,
# byte for byte the RST the kernel sends (docs/handover.md, "REJECT").
#
# B has `-A INPUT -d B -p tcp --dport 7777 -j REJECT --reject-with tcp-reset`
# installed (iptables-nft-restore). From A, test/tools/reject_peer.py sends
# a fixed set of TCP segments (SYN, SYN with options, SYN with data, ACK
# with data, FIN, FIN/ACK, RST, RST/ACK, SYN/ACK, URG/PSH, an ACK with 100
# bytes of data, a SYN with a wrong checksum) and records every TCP frame
# A receives. First the kernel alone answers; then the same ruleset,
# compiled with --pass-unsupported, runs on B's veth as well, and the
# frames A receives must be the same, byte for byte, and nothing else.
# The counters say who answered: XDP counts the segments it decided (a RST
# sent, or a RST dropped; the long ACK too: XDP sums the whole segment),
# the kernel only the one it was handed (the wrong checksum). Last,
# with forwarding off in B, XDP hands every segment that needs a RST over
# (no FIB answer) and A still receives the kernel's frames.
#
# B's ip_default_ttl and veth-b's hop_limit are 77, not the default 64 (the
# RST carries them). B forwards (bpf_fib_lookup answers only on a device that forwards: on a
# host that does not, every REJECT is handed over, docs/handover.md), and
# has transmit checksum offload off (so the kernel's RST carries its full
# checksum on the veth, as a NIC puts it on the wire). A runs an XDP program
# that passes everything on veth-a: veth kicks the peer's receive queue
# after an XDP_TX only when the peer has one (veth_xdp_flush()); with GRO
# alone the RST waits in the ring until some other frame arrives.
#
# --family 6 does the same over IPv6 with ip6tables-nft-restore.
# --forward puts the REJECT rule in FORWARD, for segments from A to C, a
# third namespace behind B (10.1.1.2, fd00:1::2): the RST then comes from
# C's address, sent by B (the last run, without forwarding, is skipped:
# nothing is forwarded then).
#
#   reject_reset.sh [--family 4|6] [--forward] [--rule2xdp PATH] [--tools DIR]
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

FAMILY=4
CHAIN=INPUT
while [ $# -gt 0 ]; do
  case $1 in
  --family) FAMILY=$2; shift ;;
  --forward) CHAIN=FORWARD ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
PEER=$(cd "$(dirname "$0")/../tools" && pwd)/reject_peer.py
PY=/usr/bin/python3 # scapy lives here
"$PY" -c 'import scapy' 2>/dev/null || die "$PY has no scapy"
case $FAMILY in
4) IPT=iptables-nft B_NET=10.1.0.2/32 C=10.1.1.2 ;;
6) IPT=ip6tables-nft B_NET=fd00::2/128 C=fd00:1::2 ;;
*) die "--family is 4 or 6" ;;
esac
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
mac_a=$(ip -n "$NS_A" -br link show veth-a | awk '{print $3}')
mac_b=$(ip -n "$NS_B" -br link show veth-b | awk '{print $3}')
if [ "$FAMILY" = 6 ]; then
  # lib.sh turns IPv6 off; on for the veth pair only, static neighbours.
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 >/dev/null
  done
  in_a sysctl -q -w net.ipv6.conf.veth-a.disable_ipv6=0 >/dev/null
  in_b sysctl -q -w net.ipv6.conf.veth-b.disable_ipv6=0 >/dev/null
  ip -n "$NS_A" addr add fd00::1/64 dev veth-a nodad
  ip -n "$NS_B" addr add fd00::2/64 dev veth-b nodad
  ip -n "$NS_A" neigh replace fd00::2 lladdr "$mac_b" dev veth-a nud permanent
  ip -n "$NS_B" neigh replace fd00::1 lladdr "$mac_a" dev veth-b nud permanent
  in_b sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null
else
  in_b sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
fi
if [ "$CHAIN" = FORWARD ]; then
  # C behind B; A routes to it through B. C only needs to exist: B answers
  # for it.
  r2x_more_netns NS_C
  ip link add veth-bc netns "$NS_B" type veth peer name veth-c netns "$NS_C" ||
    die "cannot create the B-C veth pair"
  ip -n "$NS_B" link set veth-bc up
  ip -n "$NS_C" link set veth-c up
  if [ "$FAMILY" = 6 ]; then
    ip netns exec "$NS_C" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 >/dev/null
    in_b sysctl -q -w net.ipv6.conf.veth-bc.disable_ipv6=0 >/dev/null
    ip -n "$NS_B" addr add fd00:1::1/64 dev veth-bc nodad
    ip -n "$NS_C" addr add fd00:1::2/64 dev veth-c nodad
    ip -n "$NS_A" route add fd00:1::/64 via fd00::2 dev veth-a
  else
    ip -n "$NS_B" addr add 10.1.1.1/24 dev veth-bc
    ip -n "$NS_C" addr add 10.1.1.2/24 dev veth-c
    ip -n "$NS_A" route add 10.1.1.0/24 via 10.1.0.2 dev veth-a
  fi
  B_NET=$C/$(( FAMILY == 6 ? 128 : 32 ))
  export R2X_REJECT_DST=$C
fi
# Hop limits other than the defaults: the RST carries the namespace's
# (IPv4) and the device's (IPv6), which the loader reads into r2x_rst.
in_b sysctl -q -w net.ipv4.ip_default_ttl=77 >/dev/null
[ "$FAMILY" = 4 ] || in_b sysctl -q -w net.ipv6.conf.veth-b.hop_limit=77 >/dev/null
in_b ethtool -K veth-b tx off >/dev/null 2>&1 ||
  die "cannot turn off checksum offload on veth-b"
r2x_a() { nsenter --net="/run/netns/$NS_A" -- "$R2X" "$@"; }
"$R2X" -A INPUT -p udp --dport 9 -j ACCEPT -o "$TMP/pass.o" ||
  die "rule2xdp (A's pass-all program) failed"
r2x_a --load veth-a "$TMP/pass.o" || die "cannot load A's program on veth-a"

cat >"$TMP/reject.rules" <<RULES
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A $CHAIN -d $B_NET -p tcp -m tcp --dport 7777 -j REJECT --reject-with tcp-reset
COMMIT
RULES
in_b "$IPT-restore" "$TMP/reject.rules" || die "$IPT-restore failed"

kern_count() {
  in_b "$IPT" -L "$CHAIN" -vxn | awk '/REJECT/ {print $1; exit}'
}
run() { # run NAME: the segments from A, the answers into $TMP/NAME
  in_a "$PY" "$PEER" "$FAMILY" veth-a "$mac_a" "$mac_b" 7777 >"$TMP/$1" || {
    [ "$1" = kernel ] || r2x_b --stats veth-b
    in_b "$IPT" -L "$CHAIN" -vxn
    r2x_link_stats
    in_b ethtool -S veth-b | grep -v ': 0$' || true
    die "reject_peer.py ($1) failed"
  }
}

# 1. The kernel alone.
run kernel
check "kernel: REJECT rule counted every segment" "$(kern_count)" 13
check "kernel: answers (no RST for RST, RST/ACK, wrong checksum)" \
  "$(cut -d' ' -f1 "$TMP/kernel" | sort | tr '\n' ' ')" \
  "ack_data ack_long fin fin_ack last syn syn_ack syn_data syn_opts urg_psh "

hops_at=$(( FAMILY == 6 ? 42 : 44 )) # hex offset of the TTL / hop limit
check "kernel: the RSTs carry B's hop limit (77 = 4d)" \
  "$(awk -v o="$hops_at" '{print substr($2, o + 1, 2)}' "$TMP/kernel" | sort -u)" 4d

# 2. The same ruleset compiled onto B's veth.
"$R2X" -f "$TMP/reject.rules" --pass-unsupported -o "$TMP/reject.o" \
  2>"$TMP/listing" || die "rule2xdp failed: $(cat "$TMP/listing")"
grep -q "RST built in XDP" "$TMP/listing" ||
  die "the listing does not say XDP builds the RST: $(cat "$TMP/listing")"
r2x_b --load veth-b "$TMP/reject.o" || die "rule2xdp --load failed"
[ -n "$(r2x_xdp_prog_id)" ] || die "no XDP program on veth-b after --load"
run xdp
check "XDP: REJECT rule counted by XDP" "$(r2x_rule_packets REJECT)" 12
check "XDP: handed to the kernel (wrong checksum)" \
  "$(kern_count)" 14

same_frames() { # same_frames RUN: A received the kernel's frames
  if diff <(sort "$TMP/kernel") <(sort "$TMP/$1") >"$TMP/diff"; then
    say "  ok    $1: the $(wc -l <"$TMP/$1") frames A received are the kernel's, byte for byte"
  else
    say "  FAIL  $1: A received other frames (< kernel, > $1):"
    cat "$TMP/diff"
    FAILS=$((FAILS + 1))
  fi
}
same_frames xdp

if [ "$CHAIN" = INPUT ]; then
  # 3. B stops forwarding: bpf_fib_lookup no longer answers, so XDP hands
  # every segment that needs a RST over and the kernel answers them; the RST
  # and RST/ACK, which need no route (dropped, nothing sent), XDP still drops.
  if [ "$FAMILY" = 6 ]; then
    in_b sysctl -q -w net.ipv6.conf.all.forwarding=0 >/dev/null
  else
    in_b sysctl -q -w net.ipv4.ip_forward=0 >/dev/null
  fi
  run noforward
  check "no forwarding: XDP dropped only the RST and RST/ACK" \
    "$(r2x_rule_packets REJECT)" 14
  check "no forwarding: the kernel counted the other 11" "$(kern_count)" 25
  same_frames noforward
fi

[ "$FAILS" = 0 ] || die "$FAILS checks failed"
say "$R2X_NAME: PASS"
