#!/bin/bash
# test/e2e/log_lines.sh - LOG carried out in XDP: `rule2xdp --log` prints the
# lines the kernel's LOG target prints, text for text (docs/handover.md,
# "LOG"; the kernel's net/netfilter/nf_log_syslog.c is the oracle).
#
# B has LOG rules (TCP with --log-tcp-sequence/--log-tcp-options/
# --log-ip-options, UDP at --log-level 6, ICMP with --log-macdecode) followed
# by a DROP for everything from A. A sends a fixed list of frames
# (test/tools/log_peer.py: TCP with options and odd flags, IPv4 options,
# UDP, ICMP echo, ICMP errors quoting UDP and TCP, headers cut short; with
# --family 6 IPv6 TCP, UDP, ICMPv6 echo and an ICMPv6 error), four times:
#  1. the kernel alone (iptables-legacy-restore in B): its lines are read
#     from dmesg (timestamps stripped);
#  2. the same rules compiled (standalone mode) on B's veth, kernel rules
#     removed: `rule2xdp --log veth-b` must print the same lines, in order;
#     each LOG rule and the DROP count every frame once (LOG does not end
#     the chain, the DROP drops in XDP), and the kernel logs nothing; a
#     fragment and a VLAN-tagged frame are counted as not written;
#  3. hand-over mode with the kernel's rules installed: XDP drops, logs from
#     its commit, the kernel sees and logs nothing; same lines again;
#     a reader started before a replacing load prints the lines of both
#     programs;
#  4. hand-over mode again, `--log-to kmsg`: the lines land in dmesg, equal
#     to the kernel's.
# Then the ring buffer is filled (no reader, many frames) in hand-over mode:
# every frame XDP could not log is handed to the kernel, which logs it, so
# XDP's events plus the kernel's LOG counts are exactly the frames sent.
#
# The kernel logs from a network namespace other than the first only with
# net.netfilter.nf_log_all_netns=1, a global sysctl: the test sets it and
# puts the previous value back in its trap.
#
# --forward puts the rules in FORWARD, for frames from A to C, a third
# namespace behind B (10.1.1.2, fd00:1::2): the lines then name OUT= and
# print the TTL or hop limit the kernel decremented before the hook.
#
#   log_lines.sh [--family 4|6] [--forward] [--rule2xdp PATH] [--tools DIR]
#   [--break-format]  (self-check: the compared text with one field changed
#                      must make the test fail)
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

FAMILY=4
BREAK=0
CHAIN=INPUT
while [ $# -gt 0 ]; do
  case $1 in
  --family) FAMILY=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  --break-format) BREAK=1 ;;
  --forward) CHAIN=FORWARD ;;
  -h | --help) sed -n '2,36p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
PEER=$(cd "$(dirname "$0")/../tools" && pwd)/log_peer.py
PY=/usr/bin/python3 # scapy lives here
"$PY" -c 'import scapy' 2>/dev/null || die "$PY has no scapy"
case $FAMILY in
4) IPT=iptables-legacy SRC=10.1.0.1 ICMP=icmp ;;
6) IPT=ip6tables-legacy SRC=fd00::1 ICMP=ipv6-icmp ;;
*) die "--family is 4 or 6" ;;
esac
command -v "$IPT-restore" >/dev/null || die "$IPT-restore is missing"
command -v dmesg >/dev/null || die "dmesg is missing"

r2x_make_network
OLD_LOG_ALL=$(sysctl -n net.netfilter.nf_log_all_netns) ||
  die "no net.netfilter.nf_log_all_netns (nf_log_syslog missing?)"
trap 'rc=$?; sysctl -q -w net.netfilter.nf_log_all_netns="$OLD_LOG_ALL"
      (exit $rc); r2x_cleanup' EXIT
sysctl -q -w net.netfilter.nf_log_all_netns=1 ||
  die "cannot set net.netfilter.nf_log_all_netns"

mac_a=$(ip -n "$NS_A" -br link show veth-a | awk '{print $3}')
mac_b=$(ip -n "$NS_B" -br link show veth-b | awk '{print $3}')
if [ "$FAMILY" = 6 ]; then
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 >/dev/null
  done
  in_a sysctl -q -w net.ipv6.conf.veth-a.disable_ipv6=0 >/dev/null
  in_b sysctl -q -w net.ipv6.conf.veth-b.disable_ipv6=0 >/dev/null
  ip -n "$NS_A" addr add fd00::1/64 dev veth-a nodad
  ip -n "$NS_B" addr add fd00::2/64 dev veth-b nodad
fi
if [ "$CHAIN" = FORWARD ]; then
  # C behind B, with a static neighbour entry: XDP's FIB lookup needs it.
  r2x_more_netns NS_C
  ip link add veth-bc netns "$NS_B" type veth peer name veth-c netns "$NS_C" ||
    die "cannot create the B-C veth pair"
  ip -n "$NS_B" link set veth-bc up
  ip -n "$NS_C" link set veth-c up
  mac_c=$(ip -n "$NS_C" -br link show veth-c | awk '{print $3}')
  if [ "$FAMILY" = 6 ]; then
    ip netns exec "$NS_C" sysctl -q -w net.ipv6.conf.all.disable_ipv6=0 >/dev/null
    in_b sysctl -q -w net.ipv6.conf.veth-bc.disable_ipv6=0 >/dev/null
    in_b sysctl -q -w net.ipv6.conf.all.forwarding=1 >/dev/null
    ip -n "$NS_B" addr add fd00:1::1/64 dev veth-bc nodad
    ip -n "$NS_C" addr add fd00:1::2/64 dev veth-c nodad
    ip -n "$NS_B" neigh replace fd00:1::2 lladdr "$mac_c" dev veth-bc nud permanent
    export R2X_LOG_DST=fd00:1::2
  else
    in_b sysctl -q -w net.ipv4.ip_forward=1 >/dev/null
    ip -n "$NS_B" addr add 10.1.1.1/24 dev veth-bc
    ip -n "$NS_C" addr add 10.1.1.2/24 dev veth-c
    ip -n "$NS_B" neigh replace 10.1.1.2 lladdr "$mac_c" dev veth-bc nud permanent
    export R2X_LOG_DST=10.1.1.2
  fi
fi

# A tag unique to this run in every prefix: dmesg is the whole machine's.
TAG="r2x$$x$RANDOM"
cat >"$TMP/log.rules" <<RULES
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A $CHAIN -s $SRC -p tcp -j LOG --log-prefix "$TAG tcp: " --log-tcp-sequence --log-tcp-options --log-ip-options
-A $CHAIN -s $SRC -p udp -j LOG --log-prefix "$TAG udp: " --log-level 6
-A $CHAIN -s $SRC -p $ICMP -j LOG --log-prefix "$TAG icmp: " --log-macdecode
-A $CHAIN -s $SRC -j DROP
COMMIT
RULES

FAILS=0
check() { # check DESCRIPTION GOT WANT
  if [ "$2" = "$3" ]; then
    say "  ok    $1: $2"
  else
    say "  FAIL  $1: got '$2', want '$3'"
    FAILS=$((FAILS + 1))
  fi
}
send() { # send [REPEAT]: the frames from A; prints how many
  in_a "$PY" "$PEER" "$FAMILY" veth-a "$mac_a" "$mac_b" "${1:-1}"
}
kernel_lines() { # this run's LOG lines in dmesg, without timestamps
  dmesg | sed -n "s/^\[[^]]*\] \($TAG .*\)/\1/p"
}
count_at_least() { [ "$(kernel_lines | wc -l)" -ge "$1" ]; }
xdp_log() { # xdp_log N FILE: N lines of rule2xdp --log
  timeout "$R2X_WAIT_S" nsenter --net="/run/netns/$NS_B" -- \
    "$R2X" --log veth-b --log-count "$1" >"$2" ||
    die "rule2xdp --log did not print $1 lines: $(cat "$2")"
}
compare() { # compare NAME FILE: FILE's lines against the kernel's
  local want=$TMP/kernel.txt
  if [ "$BREAK" = 1 ]; then
    sed -i '1s/ LEN=\([0-9]*\)/ LEN=1\1/' "$2"
  fi
  if diff -u "$want" "$2" >"$TMP/$1.diff"; then
    say "  ok    $1: $(wc -l <"$2") lines equal to the kernel's"
  else
    say "  FAIL  $1: lines differ from the kernel's:"
    cat "$TMP/$1.diff"
    FAILS=$((FAILS + 1))
  fi
}
rule_packets() { # rule_packets N: XDP's count of rule N (1-based)
  r2x_b --stats veth-b | awk -v n="$1" \
    -v chain="$CHAIN" '$1 == "Chain" && $2 == chain {c = 1; next} c && /^ *[0-9]/ && ++k == n {print $1; exit}'
}

say "1. the kernel alone"
in_b "$IPT-restore" "$TMP/log.rules" || die "$IPT-restore failed"
N=$(send)
LINES=$N # every frame matches one LOG rule
r2x_wait_until "the kernel's $LINES LOG lines" count_at_least "$LINES"
kernel_lines >"$TMP/kernel.txt"
check "kernel lines" "$(wc -l <"$TMP/kernel.txt")" "$LINES"
sed 's/^/        /' "$TMP/kernel.txt"

say "2. standalone XDP program, no kernel rules"
in_b "$IPT" -F "$CHAIN"
r2x_b --load veth-b -f "$TMP/log.rules" >/dev/null || die "load failed"
send >/dev/null
xdp_log "$LINES" "$TMP/xdp.txt"
compare standalone "$TMP/xdp.txt"
check "DROP after LOG, XDP count" "$(rule_packets 4)" "$N"
logged=0
for r in 1 2 3; do logged=$((logged + $(rule_packets $r))); done
check "LOG rules, XDP count" "$logged" "$N"
check "kernel lines after XDP's drops" "$(kernel_lines | wc -l)" "$LINES"
# A fragment and a tagged frame: no line XDP can reproduce, counted as not
# written (the DROP still drops them).
odd=$(send odd)
lost() { r2x_b --stats veth-b | sed -n 's/^LOG events not written: \([0-9]*\) packets.*/\1/p'; }
check "LOG events not written (fragment, tagged frame)" "$(lost)" "$odd"
check "DROP after LOG, XDP count" "$(rule_packets 4)" "$((N + odd))"

say "3. hand-over mode, kernel rules installed"
in_b "$IPT-restore" "$TMP/log.rules" || die "$IPT-restore failed"
r2x_b --load veth-b --pass-unsupported -f "$TMP/log.rules" >/dev/null 2>&1 ||
  die "hand-over load failed"
send >/dev/null
xdp_log "$LINES" "$TMP/handover.txt"
compare handover "$TMP/handover.txt"
kdrop=$(in_b "$IPT" -vxnL "$CHAIN" | awk '/DROP/ {print $1; exit}')
check "kernel DROP count (XDP decided all)" "$kdrop" 0
check "kernel lines after XDP's drops" "$(kernel_lines | wc -l)" "$LINES"

say "3b. --log follows a replaced program (new maps) without losing a line"
timeout "$R2X_WAIT_S" nsenter --net="/run/netns/$NS_B" -- \
  "$R2X" --log veth-b --log-count $((2 * LINES)) >"$TMP/follow.txt" \
  2>"$TMP/follow.err" &
FOLLOW=$!
R2X_PIDS+=("$FOLLOW")
send >/dev/null
has_lines() { [ "$(wc -l <"$TMP/follow.txt")" -ge "$1" ]; }
r2x_wait_until "the reader's first $LINES lines" has_lines "$LINES"
old_id=$(r2x_xdp_prog_id)
r2x_b --load veth-b --pass-unsupported -f "$TMP/log.rules" >/dev/null 2>&1 ||
  die "replacing load failed"
[ "$(r2x_xdp_prog_id)" != "$old_id" ] || die "the program was not replaced"
send >/dev/null
wait "$FOLLOW" || die "rule2xdp --log did not follow: $(cat "$TMP/follow.err")"
r2x_reaped "$FOLLOW"
cat "$TMP/kernel.txt" "$TMP/kernel.txt" >"$TMP/twice.txt"
if diff -u "$TMP/twice.txt" "$TMP/follow.txt" >"$TMP/follow.diff"; then
  say "  ok    follow: $((2 * LINES)) lines across the replace"
else
  say "  FAIL  follow: lines differ:"; cat "$TMP/follow.diff"
  FAILS=$((FAILS + 1))
fi

say "4. hand-over mode, --log-to kmsg"
send >/dev/null
timeout "$R2X_WAIT_S" nsenter --net="/run/netns/$NS_B" -- \
  "$R2X" --log veth-b --log-to kmsg --log-count "$LINES" ||
  die "rule2xdp --log --log-to kmsg failed"
r2x_wait_until "the lines in dmesg" count_at_least $((2 * LINES))
kernel_lines | tail -n "$LINES" >"$TMP/kmsg.txt"
compare kmsg "$TMP/kmsg.txt"

say "5. ring buffer full, hand-over mode: the kernel logs what XDP could not"
# No reader while the frames arrive: once r2x_log (256 KiB) is full, XDP
# hands each frame over and the kernel's LOG and DROP rules take it. Its
# LOG rules' counters are its lines (dmesg's buffer may not hold them all).
in_b "$IPT" -Z "$CHAIN"
SENT=$(send $((1200 / N))) # 1200 frames: half again what r2x_log holds
kcount() { in_b "$IPT" -vxnL "$CHAIN" | awk -v t="$1" '$3 == t {s += $1} END {print s + 0}'; }
klog=$(kcount LOG) kdrop=$(kcount DROP)
check "kernel LOG count = kernel DROP count" "$klog" "$kdrop"
# The rest was XDP's: exactly that many events wait in the ring buffer.
xdp_events=$((SENT - klog))
xdp_log "$xdp_events" "$TMP/full.txt"
check "events read" "$(wc -l <"$TMP/full.txt")" "$xdp_events"
logged=0
for r in 1 2 3; do logged=$((logged + $(rule_packets $r))); done
# (A replacing load keeps the counters: steps 2 to 5.)
check "XDP's LOG counts (steps 2 to 5)" "$logged" "$((5 * N + odd + xdp_events))"
[ "$klog" -gt 0 ] || { say "  FAIL  the ring buffer never filled"; FAILS=$((FAILS + 1)); }
[ "$xdp_events" -gt 0 ] || { say "  FAIL  XDP logged nothing"; FAILS=$((FAILS + 1)); }

[ "$FAILS" = 0 ] || die "$FAILS checks failed"
say "log_lines.sh: PASS"
