#!/bin/bash
# test/e2e/accelerate.sh - rule2xdp --accelerate and --follow on the demo
# network of lib.sh: the kernel's own ruleset, installed in B with
# iptables-nft-restore (or, with --backend legacy, iptables-legacy-restore),
# made fast without being changed.
#
# The ruleset is ufw-like, with a fail2ban-like block list in front:
#   f2b-blocklist: udp dpt:1001 DROP               (XDP decides)
#   ufw-before-input: lo ACCEPT, conntrack ...     (handed over: conntrack)
#   ufw-user-input: udp dpt:4321, 5555, tcp dpt:8080 ACCEPT; udp dpt:1003
#                   REJECT
#   policy INPUT DROP
#  1. `--accelerate veth-b`: the listing names the conntrack and REJECT rules
#     as handed over. A sends N1 to :1001, R to :1003, M to :4321 (a sink
#     counts them, all arrive): XDP's counter of the :1001 DROP shows N1 and
#     the kernel's stays 0; the kernel's REJECT rule counts R (handed over);
#     XDP counts nothing for the packets it hands over. `--stats` (table and
#     --json, read with Python's json module) shows both sides of each rule:
#     :1001 XDP N1, kernel 0; :1003 XDP 0, kernel R. A TCP transfer of
#     1 MiB to :8080 (new, then established: conntrack, in the kernel)
#     arrives with identical bytes (sha256 on both ends).
#  2. `--accelerate veth-b --follow` in the background (replaces the program
#     of 1, keeping the :1001 counter). `iptables -I INPUT ... dpt:5555 -j
#     DROP` in B puts a new program on veth-b within 1 s (insert_within_1s:
#     the time polled, never slept, printed, best of 3); A sends to :5555
#     until XDP's counter of that rule grows. Then K more:
#     the kernel's counter of the new rule does not move, XDP's grows by K.
#     Then BURST more `iptables -I`, one after the other: --follow's
#     program ends with all of them.
#  3. A ruleset --follow cannot read: nft, a native nft rule
#     iptables-nft-save cannot show; legacy, an iptables-nft rule beside the
#     legacy ones (both back ends hold rules). --follow says why and keeps
#     the program (same id, still drops :5555). The bad rule removed and the
#     :5555 rule deleted: :5555 datagrams reach the kernel's ACCEPT again.
#  3b. A native nftables table beside iptables' (an input chain with a
#     rule): one-shot --accelerate refuses (exit 2, nothing loaded);
#     --follow loads a program that hands every packet over, so :5555
#     reaches the kernel (the native counter and the kernel's DROP count
#     K, XDP none), until the table is deleted. An empty accepting chain,
#     a dormant table and an ingress chain of another device are not
#     reported. A tc filter and a tcx program on veth-b's ingress are
#     reported too (one on egress is not).
#  4. SIGTERM: --follow exits 0, the program stays attached; --unload
#     removes it.
#  5. A Docker-like ruleset (test/diff/rulesets/docker4-handover.rules,
#     as `docker` writes it: DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2,
#     nat DNAT of the published :8080 and MASQUERADE, so XDP decides only
#     raw PREROUTING, docs/handover.md) in place of the first, with a
#     container namespace C behind B's docker0, under `--accelerate veth-b
#     --follow`: the listing says why XDP decides only raw; D datagrams from
#     A to the container address are dropped by XDP on the raw rule `-d
#     172.17.0.2 ! -i docker0 -j DROP` (XDP counts D, the kernel 0); a 1 MiB
#     TCP transfer to the published port reaches C with identical bytes
#     (DNAT, forwarding, established: all the kernel's); `iptables -t raw
#     -I PREROUTING ... -j DROP` puts a new program on veth-b in under 1 s
#     (insert_within_1s) which drops K datagrams
#     in XDP while the kernel's rule counts 0.
#
#   accelerate.sh [--backend nft|legacy] [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

BACKEND=nft
while [ $# -gt 0 ]; do
  case $1 in
  --backend) BACKEND=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,58p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
PEER=(/usr/bin/python3 "$(dirname "$0")/../tools/nat_peer.py")
case $BACKEND in nft | legacy) ;; *) die "--backend nft or legacy, not $BACKEND" ;; esac
IPT=iptables-$BACKEND
for c in "$IPT" "$IPT-restore" iptables-nft nft; do
  command -v "$c" >/dev/null || die "$c is missing"
done
N1=200 R=50 M=100 K=100 D=150 BURST=30

# kernel_packets CHAIN PATTERN: the kernel's packet count of the first rule
# of CHAIN in B whose `iptables -L -v -x -n` line matches PATTERN.
kernel_packets() {
  local n
  n=$(in_b "$IPT" -L "$1" -v -x -n | awk -v pat="$2" 'NR > 2 && $0 ~ pat {print $1; exit}')
  [ -n "$n" ] || die "no rule matching '$2' in the kernel's $1: $(in_b "$IPT" -L "$1" -v -x -n)"
  printf '%s\n' "$n"
}
# xdp_packets PATTERN: XDP's packet count of the rule matching PATTERN.
xdp_packets() {
  local n
  n=$(r2x_rule_packets "$1")
  [ -n "$n" ] || die "no rule matching '$1' in --stats: $(r2x_b --stats veth-b)"
  printf '%s\n' "$n"
}
expect() { # WHAT GOT WANT
  [ "$2" = "$3" ] || die "$1: $2, want $3"
  say "   $1: $2"
}

# fence COUNT: COUNT datagrams to :4321 (r2x_fence).
fence() { r2x_fence 4321 "$1"; }

# replaced_from ID: veth-b's program is no longer ID.
replaced_from() { [ "$(r2x_xdp_prog_id)" != "$1" ]; }
# change_timed IPTABLES-ARGS...: runs `$IPT IPTABLES-ARGS` in B and returns
# once --follow attached a new program (polled up to R2X_WAIT_S); the time
# from the command's start to then into CHANGE_MS. The rule is in effect
# from that moment: the replace is atomic.
change_timed() {
  local before t0
  before=$(r2x_xdp_prog_id)
  t0=$(date +%s%N)
  in_b "$IPT" "$@" || die "$IPT $* in B"
  r2x_wait_until "--follow to replace program $before after $IPT $* ($(cat "$TMP/$FOLLOW_LOG.err"))" replaced_from "$before"
  CHANGE_MS=$((($(date +%s%N) - t0) / 1000000))
}
# insert_within_1s TABLE CHAIN PORT: `iptables -t TABLE -I CHAIN -p udp
# --dport PORT -j DROP` under --follow must be in XDP within 1 s. A busy
# machine may delay one change, so a slow first try is followed by up to two
# more (a rule for PORT+100+N inserted, timed, and deleted again): the best
# of 3 must be under 1 s. Leaves only the first rule inserted.
insert_within_1s() {
  local table=$1 chain=$2 port=$3 best try extra
  change_timed -t "$table" -I "$chain" -p udp --dport "$port" -j DROP
  best=$CHANGE_MS
  say "   iptables -t $table -I $chain ... --dport $port -j DROP: a new program $CHANGE_MS ms after the command started"
  for try in 2 3; do
    [ "$best" -ge 1000 ] || break
    extra=$((port + 100 + try))
    change_timed -t "$table" -I "$chain" -p udp --dport "$extra" -j DROP
    say "   try $try, --dport $extra: $CHANGE_MS ms"
    [ "$CHANGE_MS" -lt "$best" ] && best=$CHANGE_MS
    change_timed -t "$table" -D "$chain" -p udp --dport "$extra" -j DROP
  done
  [ "$best" -lt 1000 ] || die "iptables -I took effect in XDP after 1 s or more in 3 tries (best $best ms)"
}

r2x_make_network
cat >"$TMP/ufw.rules" <<'R'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:f2b-blocklist - [0:0]
:ufw-before-input - [0:0]
:ufw-user-input - [0:0]
-A INPUT -j f2b-blocklist
-A INPUT -j ufw-before-input
-A f2b-blocklist -p udp -m udp --dport 1001 -j DROP
-A f2b-blocklist -j RETURN
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -j ufw-user-input
-A ufw-user-input -p udp -m udp --dport 4321 -j ACCEPT
-A ufw-user-input -p udp -m udp --dport 5555 -j ACCEPT
-A ufw-user-input -p tcp -m tcp --dport 8080 -j ACCEPT
-A ufw-user-input -p udp -m udp --dport 1003 -j REJECT --reject-with icmp-port-unreachable
COMMIT
R
# Inside B only: `ip netns exec` runs iptables-*-restore in B's network
# namespace, whose tables are B's own.
in_b "$IPT-restore" "$TMP/ufw.rules" || die "$IPT-restore failed in B"

say "== 1. --accelerate veth-b"
r2x_b --accelerate veth-b >"$TMP/acc.out" 2>&1 || die "--accelerate failed: $(cat "$TMP/acc.out")"
sed 's/^/   | /' "$TMP/acc.out"
grep -q "$BACKEND back end" "$TMP/acc.out" || die "the listing does not name the $BACKEND back end"
grep -q "^$IPT-save:[0-9]*:[0-9]*: note: .*conntrack" "$TMP/acc.out" ||
  die "the listing does not hand the conntrack rules over"
grep -q "^$IPT-save:[0-9]*:[0-9]*: note: .*REJECT" "$TMP/acc.out" ||
  die "the listing does not hand the REJECT rule over"
grep -q "^rule2xdp: loaded on veth-b" "$TMP/acc.out" || die "no 'loaded on veth-b'"
ID1=$(r2x_xdp_prog_id)
[ -n "$ID1" ] || die "no XDP program on veth-b after --accelerate"
[ "$(r2x_send 1001 $N1)" = $N1 ] || die "send to :1001"
[ "$(r2x_send 1003 $R)" = $R ] || die "send to :1003"
fence $M
expect "XDP's count of the :1001 DROP" "$(xdp_packets 'dpt:1001')" $N1
expect "kernel's count of the :1001 DROP" "$(kernel_packets f2b-blocklist 'dpt:1001')" 0
expect "kernel's count of the :1003 REJECT (handed over)" "$(kernel_packets ufw-user-input 'dpt:1003')" $R
expect "XDP's count of the :1003 REJECT" "$(xdp_packets 'dpt:1003')" 0
expect "kernel's count of the :4321 ACCEPT (handed over)" "$(kernel_packets ufw-user-input 'dpt:4321')" $M
expect "XDP's count of the f2b-blocklist RETURN" "$(xdp_packets 'RETURN')" 0
# --stats of this hand-over program: XDP's and the kernel's counters of each
# rule side by side (the kernel's read with $IPT-save -c), as a table and as
# JSON read back with Python's json module.
r2x_b --stats veth-b >"$TMP/stats.out" || die "--stats failed"
sed 's/^/   | /' "$TMP/stats.out"
side_by_side() { # PATTERN: "XDP-PACKETS KERNEL-PACKETS" of the matching rule
  awk -v pat="$1" '$0 ~ pat {print $1 " " $3; exit}' "$TMP/stats.out"
}
expect "--stats :1001 DROP, XDP and kernel" "$(side_by_side 'DROP .*dpt:1001')" "$N1 0"
expect "--stats :1003 REJECT, XDP and kernel" "$(side_by_side 'REJECT .*dpt:1003')" "0 $R"
expect "--stats :4321 ACCEPT, XDP and kernel" "$(side_by_side 'ACCEPT .*dpt:4321')" "0 $M"
r2x_b --stats veth-b --json >"$TMP/stats.json" || die "--stats --json failed"
/usr/bin/python3 - "$TMP/stats.json" >"$TMP/stats.json.out" <<'PY' || die "--stats --json: $(cat "$TMP/stats.json.out")"
import json, sys
stats = json.load(open(sys.argv[1], encoding="utf-8"))
assert stats["program"]["handover"] is True, stats["program"]
print(stats["kernel"]["backend"])
for table in stats["tables"]:
    for chain in table["chains"]:
        for r in chain["rules"]:
            k = r["kernel"]
            assert k["status"] == "paired", r
            print(r["target"], r["matches"], r["packets"], k["packets"])
PY
expect "--stats --json: the kernel's back end" "$(head -1 "$TMP/stats.json.out")" "$BACKEND"
expect "--stats --json :1001 DROP, XDP and kernel" "$(awk '$1 == "DROP" && /dpt:1001/ {print $(NF-1), $NF}' "$TMP/stats.json.out")" "$N1 0"
expect "--stats --json :1003 REJECT, XDP and kernel" "$(awk '$1 == "REJECT" && /dpt:1003/ {print $(NF-1), $NF}' "$TMP/stats.json.out")" "0 $R"
r2x_start tcpsrv "$NS_B" "${PEER[@]}" tcp-server 10.1.0.2 8080
in_a "${PEER[@]}" tcp-client 10.1.0.2 8080 1048576 >"$TMP/tcpcli.out" 2>&1 ||
  die "TCP client failed: $(cat "$TMP/tcpcli.out")"
r2x_waitfor tcpsrv
SENT=$(awk '/^bytes/ {print $2 " " $4}' "$TMP/tcpcli.out")
GOT=$(awk '/^peer/ {print $4 " " $6}' "$TMP/tcpsrv.out")
expect "TCP to :8080, bytes and sha256 received (sent: $SENT)" "$GOT" "$SENT"
[ "$(kernel_packets ufw-user-input 'dpt:8080')" = 1 ] ||
  die "the kernel's :8080 ACCEPT counted $(kernel_packets ufw-user-input 'dpt:8080') packets, want 1 (the SYN; the rest is established)"

say "== 2. --follow, and iptables -I of a new DROP rule"
nsenter --net="/run/netns/$NS_B" -- "$R2X" --accelerate veth-b --follow \
  >"$TMP/follow.out" 2>"$TMP/follow.err" &
FOLLOW=$!
R2X_PIDS+=("$FOLLOW")
following() { grep -q '^rule2xdp: following' "$TMP/follow.out"; }
r2x_wait_until "--follow to start ($(cat "$TMP/follow.err"))" following
ID2=$(r2x_xdp_prog_id)
if [ -z "$ID2" ] || [ "$ID2" = "$ID1" ]; then
  die "--follow did not replace the program ($ID1 -> $ID2)"
fi
expect "XDP's :1001 count kept across the replace" "$(xdp_packets 'dpt:1001')" $N1

FOLLOW_LOG=follow
# Held to 1 s (best of 3, insert_within_1s): this ruleset's program costs
# about 0.25 s of CPU per change (the save commands, the compile, the
# kernel's verifier at ~8,000 instructions); legacy adds up to its read
# period of 250 ms.
insert_within_1s filter INPUT 5555
# Now XDP drops :5555, counted on the new rule.
xdp_drops_5555() {
  r2x_send 5555 10 >/dev/null
  local n
  n=$(r2x_rule_packets 'DROP.*dpt:5555') || return 1
  [ -n "$n" ] && [ "$n" -gt 0 ]
}
r2x_wait_until "XDP dropping :5555 after iptables -I ($(cat "$TMP/follow.err"))" xdp_drops_5555
fence 10
ID3=$(r2x_xdp_prog_id)
KBEFORE=$(kernel_packets INPUT 'dpt:5555')
XBEFORE=$(xdp_packets 'DROP.*dpt:5555')
[ "$(r2x_send 5555 $K)" = $K ] || die "send to :5555"
fence 10
expect "kernel's count of the new :5555 DROP, before -> after $K more" \
  "$KBEFORE -> $(kernel_packets INPUT 'dpt:5555')" "$KBEFORE -> $KBEFORE"
expect "XDP's count of the new :5555 DROP grew by" \
  "$(($(xdp_packets 'DROP.*dpt:5555') - XBEFORE))" $K
# A burst of changes, each its own iptables command: --follow ends on the
# last one (no change lost between a read and the next event).
for i in $(seq 1 $BURST); do
  in_b "$IPT" -I f2b-blocklist -p udp --dport $((6000 + i)) -j DROP || die "iptables -I #$i in B"
done
burst_in() { [ "$(r2x_b --stats veth-b | grep -c 'DROP.*udp dpt:60[0-9][0-9]')" = $BURST ]; }
r2x_wait_until "--follow to end on the last of $BURST changes ($(cat "$TMP/follow.err"))" burst_in
ID3=$(r2x_xdp_prog_id)
say "   a burst of $BURST iptables -I: all $BURST rules in XDP's program $ID3"

say "== 3. a ruleset --follow cannot read"
if [ "$BACKEND" = nft ]; then
  # One nft transaction (a chain of its own would be a change --follow reads).
  printf 'add chain ip filter r2x-native\nadd rule ip filter r2x-native ip length 100 counter drop\n' |
    in_b nft -f - || die "nft -f in B"
  rc=0
  in_b iptables-nft-save >/dev/null 2>&1 || rc=$?
  [ "$rc" != 0 ] || die "iptables-nft-save still reads B's ruleset: the test needs another broken change"
  WHY='cannot read the kernel'
else
  in_b iptables-nft -A INPUT -p udp --dport 7777 -j DROP || die "iptables-nft -A in B"
  WHY='both iptables back ends hold rules'
fi
said_why() { grep -q "$WHY" "$TMP/follow.err" && grep -q 'last good program stays attached' "$TMP/follow.err"; }
r2x_wait_until "--follow to report the unreadable ruleset" said_why
sed 's/^/   | /' "$TMP/follow.err"
kill -0 "$FOLLOW" 2>/dev/null || die "--follow ended on an unreadable ruleset"
expect "program after the unreadable change (the one of iptables -I)" "$(r2x_xdp_prog_id)" "$ID3"
XBEFORE=$(xdp_packets 'DROP.*dpt:5555')
[ "$(r2x_send 5555 $K)" = $K ] || die "send to :5555"
fence 10
expect "XDP's :5555 count grew by (old program kept)" "$(($(xdp_packets 'DROP.*dpt:5555') - XBEFORE))" $K
if [ "$BACKEND" = nft ]; then
  in_b nft flush chain ip filter r2x-native || die "nft flush chain in B"
  in_b nft delete chain ip filter r2x-native || die "nft delete chain in B"
else
  in_b iptables-nft -D INPUT -p udp --dport 7777 -j DROP || die "iptables-nft -D in B"
fi

say "== 3b. nftables chains iptables-save does not show"
# A native table beside iptables' (as nftables.service or firewalld make
# them): the kernel runs its input chain on the same packets, and XDP
# cannot know what it does. One-shot --accelerate refuses; --follow hands
# every packet to the kernel until the table is gone. An empty chain that
# accepts, a dormant table, or an ingress chain of another device changes
# nothing here and is not reported.
ip -n "$NS_B" link add r2x-i0 type veth peer name r2x-i1 || die "veth pair in B"
in_b nft -f - <<'NFT' || die "nft -f in B (harmless tables)"
add table netdev r2x-elsewhere
add chain netdev r2x-elsewhere ing { type filter hook ingress device r2x-i0 priority 0; }
add rule netdev r2x-elsewhere ing udp dport 5555 counter drop
add table inet r2x-empty
add chain inet r2x-empty in { type filter hook input priority 0; policy accept; }
add table inet r2x-dormant { flags dormant; }
add chain inet r2x-dormant in { type filter hook input priority 0; policy drop; }
NFT
IDR=$(r2x_xdp_prog_id)
in_b nft -f - <<'NFT' || die "nft -f in B (the native table)"
add table inet r2x-other
add chain inet r2x-other in { type filter hook input priority -10; }
add rule inet r2x-other in udp dport 5555 counter
NFT
said_others() {
  grep -q 'XDP hands every packet to the kernel' "$TMP/follow.err" && replaced_from "$IDR"
}
r2x_wait_until "--follow to hand everything over for inet r2x-other ($(cat "$TMP/follow.err"))" said_others
grep 'XDP hands every packet' "$TMP/follow.err" | sed 's/^/   | /'
grep -q 'inet r2x-other in (hook input, priority -10, with rules)' "$TMP/follow.err" ||
  die "--follow did not name the native chain: $(cat "$TMP/follow.err")"
if grep -q 'r2x-empty\|r2x-dormant\|r2x-elsewhere' "$TMP/follow.err"; then
  die "--follow reported a chain that changes nothing: $(cat "$TMP/follow.err")"
fi
IDP=$(r2x_xdp_prog_id)
rc=0
in_b "$R2X" --accelerate veth-b >"$TMP/oneshot.out" 2>"$TMP/oneshot.err" || rc=$?
expect "one-shot --accelerate's exit status beside inet r2x-other" $rc 2
grep -q 'inet r2x-other in .*nothing loaded' "$TMP/oneshot.err" ||
  die "one-shot --accelerate did not say why: $(cat "$TMP/oneshot.err")"
expect "program after the refused one-shot --accelerate" "$(r2x_xdp_prog_id)" "$IDP"
# Every :5555 datagram now reaches the kernel: the native chain counts it,
# and iptables' :5555 DROP drops it there; XDP decides none.
native_count() { in_b nft list chain inet r2x-other in | awk '/counter/ {for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1)}'; }
NBEFORE=$(native_count)
KBEFORE=$(kernel_packets INPUT 'dpt:5555')
XBEFORE=$(xdp_packets 'DROP.*dpt:5555')
[ "$(r2x_send 5555 $K)" = $K ] || die "send to :5555"
fence 10
expect "the native chain's count of :5555 grew by" $(($(native_count) - NBEFORE)) $K
expect "the kernel's :5555 DROP grew by" $(($(kernel_packets INPUT 'dpt:5555') - KBEFORE)) $K
expect "XDP's :5555 DROP grew by" $(($(xdp_packets 'DROP.*dpt:5555') - XBEFORE)) 0
# --stats says that this program decides nothing, and why.
r2x_b --stats veth-b >"$TMP/stats.all" || die "--stats failed"
sed -n 1p "$TMP/stats.all" | grep -q '^# XDP decides no packet .*inet r2x-other' ||
  die "--stats does not say XDP decides nothing: $(sed -n 1,3p "$TMP/stats.all")"
r2x_b --stats veth-b --json | /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin)["program"]["hand_all"]; sys.exit(0 if r and "r2x-other" in r else 1)' ||
  die "--stats --json: no program.hand_all naming inet r2x-other"
# tc classifiers on veth-b's ingress run after XDP and before netfilter:
# a u32 filter (no action) and a tcx program (TCX_NEXT) are reported too,
# while the native table keeps the program handing over; a filter on
# egress is not.
in_b tc qdisc add dev veth-b clsact || die "tc qdisc add in B"
in_b tc filter add dev veth-b egress protocol ip u32 match ip dport 7 0xffff flowid 1:1 ||
  die "tc filter add (egress) in B"
in_b tc filter add dev veth-b ingress protocol ip u32 match ip dport 7 0xffff flowid 1:1 ||
  die "tc filter add (ingress) in B"
TCX_PIN=/sys/fs/bpf/r2x-tcx-$$
rc=0
# In our mount namespace (its private bpffs; `ip netns exec` would hide
# it). The link goes with veth-b, or with the bpffs, whatever ends the run.
nsenter --net="/run/netns/$NS_B" -- "$TOOLS/tcx_attach" veth-b "$TCX_PIN" || rc=$?
[ $rc = 0 ] || die "tcx_attach veth-b failed ($rc; 77: no tcx in this kernel)"
# --follow sees them at its next periodic read (tc sends no nftables event).
said_tc() {
  grep -q 'tc filter u32 pref [0-9]* on veth-b ingress' "$TMP/follow.err" &&
    grep -q 'tcx program [0-9]* on veth-b ingress' "$TMP/follow.err"
}
r2x_wait_until "--follow to report veth-b's tc filter and tcx program ($(cat "$TMP/follow.err"))" said_tc
if grep -q 'egress' "$TMP/follow.err"; then
  die "--follow reported an egress filter: $(cat "$TMP/follow.err")"
fi
rm -f "$TCX_PIN"
in_b tc qdisc del dev veth-b clsact || die "tc qdisc del in B"
in_b nft delete table inet r2x-empty || die "nft delete table in B"
in_b nft delete table inet r2x-dormant || die "nft delete table in B"
in_b nft delete table netdev r2x-elsewhere || die "nft delete table in B"
ip -n "$NS_B" link del r2x-i0 || die "veth pair in B"
in_b nft delete table inet r2x-other || die "nft delete table in B"
# Each removal may give a program of its own (the tc ones, still handing
# everything over, then the ruleset's): wait for XDP to drop again.
XBEFORE=$(xdp_packets 'DROP.*dpt:5555')
xdp_drops_again() {
  r2x_send 5555 10 >/dev/null
  [ "$(xdp_packets 'DROP.*dpt:5555')" -gt "$XBEFORE" ]
}
r2x_wait_until "XDP to drop :5555 again once the native table went ($(cat "$TMP/follow.err"))" xdp_drops_again
fence 10
XBEFORE=$(xdp_packets 'DROP.*dpt:5555')
[ "$(r2x_send 5555 $K)" = $K ] || die "send to :5555"
fence 10
expect "XDP's :5555 DROP, after the native table went, grew by" $(($(xdp_packets 'DROP.*dpt:5555') - XBEFORE)) $K
r2x_b --stats veth-b >"$TMP/stats.all" || die "--stats failed"
if grep -q 'XDP decides no packet' "$TMP/stats.all"; then
  die "--stats still says XDP decides nothing: $(sed -n 1,3p "$TMP/stats.all")"
fi
say "   XDP decides again once inet r2x-other is gone: program $IDP -> $(r2x_xdp_prog_id)"

in_b "$IPT" -D INPUT -p udp --dport 5555 -j DROP || die "iptables -D in B"
# Accepted by the kernel again: its ACCEPT rule for :5555 counts them.
ABEFORE=$(kernel_packets ufw-user-input 'dpt:5555')
accepted_5555() {
  r2x_send 5555 10 >/dev/null
  [ "$(kernel_packets ufw-user-input 'dpt:5555')" -gt "$ABEFORE" ]
}
r2x_wait_until ":5555 accepted by the kernel after iptables -D ($(cat "$TMP/follow.err"))" accepted_5555
[ "$(r2x_xdp_prog_id)" != "$ID3" ] || die "the program was not replaced after iptables -D"
say "   :5555 reaches the kernel's ACCEPT again; program $ID3 -> $(r2x_xdp_prog_id)"
expect "XDP's :1001 count, still kept" "$(xdp_packets 'dpt:1001')" $N1

say "== 4. SIGTERM"
ID4=$(r2x_xdp_prog_id)
kill -TERM "$FOLLOW"
rc=0
wait "$FOLLOW" || rc=$?
r2x_reaped "$FOLLOW"
expect "--follow's exit status after SIGTERM" $rc 0
grep -q 'stays attached' "$TMP/follow.out" || die "--follow did not say the program stays: $(cat "$TMP/follow.out")"
expect "program after SIGTERM" "$(r2x_xdp_prog_id)" "$ID4"
[ "$(r2x_send 1001 10)" = 10 ] || die "send to :1001"
fence 10
expect "XDP's :1001 count, still dropping after SIGTERM" "$(xdp_packets 'dpt:1001')" $((N1 + 10))
r2x_b --unload veth-b || die "--unload failed"
[ -z "$(r2x_xdp_prog_id)" ] || die "a program is still attached after --unload"

say "== 5. a Docker-like ruleset, under --follow"
# Docker's network in B: a bridge-side interface docker0 172.17.0.1/16, and
# a "container" namespace C with eth0 172.17.0.2/16, its default route
# through B. B forwards (its own namespace's sysctl: not the host's).
r2x_more_netns NS_C
ip link add docker0 netns "$NS_B" type veth peer name eth0 netns "$NS_C" ||
  die "cannot create the docker0 veth pair"
ip -n "$NS_B" addr add 172.17.0.1/16 dev docker0
ip -n "$NS_C" addr add 172.17.0.2/16 dev eth0
ip -n "$NS_B" link set docker0 up
ip -n "$NS_C" link set eth0 up
ip -n "$NS_C" route add default via 172.17.0.1 || die "default route in C"
in_b sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || die "cannot enable forwarding in B"
ip -n "$NS_A" route add 172.17.0.0/16 via 10.1.0.2 || die "route to 172.17.0.0/16 in A"
# The ruleset as `docker` writes it (test/diff/rulesets/docker4-handover.rules:
# DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2, nat PREROUTING/OUTPUT
# jumps to DOCKER with the published port 8080 -> 172.17.0.2:80, POSTROUTING
# MASQUERADE, and the raw rule that stops direct access to the container),
# installed with $IPT-restore in place of the first.
in_b "$IPT-restore" "$(dirname "$0")/../diff/rulesets/docker4-handover.rules" ||
  die "$IPT-restore of the Docker-like ruleset failed in B"
nsenter --net="/run/netns/$NS_B" -- "$R2X" --accelerate veth-b --follow \
  >"$TMP/docker.out" 2>"$TMP/docker.err" &
FOLLOW=$!
R2X_PIDS+=("$FOLLOW")
docker_following() { grep -q '^rule2xdp: following' "$TMP/docker.out"; }
r2x_wait_until "--follow on the Docker-like ruleset to start ($(cat "$TMP/docker.err"))" docker_following
# MASQUERADE: XDP decides only raw and mangle PREROUTING (docs/handover.md).
grep -q 'the kernel translates source addresses' "$TMP/docker.out" ||
  die "the listing does not say the kernel's source NAT limits XDP to raw/mangle: $(cat "$TMP/docker.out")"
# Dropped traffic is dropped by XDP: D datagrams from A straight to the
# container meet the raw DROP in XDP (XDP counts D, the kernel 0).
out=$(in_a "$SEND" 172.17.0.2 80 $D) || die "udp_send to 172.17.0.2 failed: $out"
[ "$out" = "sent $D" ] || die "udp_send to 172.17.0.2: $out"
fence $M
expect "XDP's count of raw -d 172.17.0.2 ! -i docker0 DROP" "$(xdp_packets 'DROP.*!docker0')" $D
raw_packets() { # PATTERN: the kernel's count of the matching raw PREROUTING rule
  in_b "$IPT" -t raw -L PREROUTING -v -x -n | awk -v pat="$1" 'NR > 2 && $0 ~ pat {print $1; exit}'
}
expect "kernel's count of that raw DROP" "$(raw_packets 172.17.0.2)" 0
# Allowed traffic still works: a TCP transfer to the published port, which
# the kernel translates to the container (DNAT), forwards (DOCKER's ACCEPT
# for the first packet, the conntrack rule for the rest) and translates
# back; every byte arrives (sha256 on both ends).
r2x_start dockersrv "$NS_C" "${PEER[@]}" tcp-server 172.17.0.2 80
in_a "${PEER[@]}" tcp-client 10.1.0.2 8080 1048576 >"$TMP/dockercli.out" 2>&1 ||
  die "TCP client to the published port failed: $(cat "$TMP/dockercli.out")"
r2x_waitfor dockersrv
SENT=$(awk '/^bytes/ {print $2 " " $4}' "$TMP/dockercli.out")
GOT=$(awk '/^peer/ {print $4 " " $6}' "$TMP/dockersrv.out")
expect "TCP to :8080 published as 172.17.0.2:80, bytes and sha256 received in C (sent: $SENT)" "$GOT" "$SENT"
n=$(in_b "$IPT" -t nat -L DOCKER -v -x -n | awk 'NR > 2 && /DNAT/ {print $1; exit}')
expect "kernel's count of DOCKER's DNAT (the connection's first packet, in the kernel)" "$n" 1
n=$(in_b "$IPT" -L DOCKER -v -x -n | awk 'NR > 2 && /dpt:80/ {print $1; exit}')
expect "kernel's count of DOCKER's ACCEPT of :80 (the SYN; the rest is established)" "$n" 1
# `iptables -I` of a new DROP rule where Docker's ruleset lets XDP decide
# (raw PREROUTING) is in XDP within 1 s (insert_within_1s); then XDP drops
# K datagrams to that port, the kernel none.
FOLLOW_LOG=docker
insert_within_1s raw PREROUTING 7001
XBEFORE=$(xdp_packets "DROP.*dpt:7001")
[ "$(r2x_send 7001 $K)" = $K ] || die "send to :7001"
fence 10
expect "XDP's count of the new :7001 DROP grew by" "$(($(xdp_packets "DROP.*dpt:7001") - XBEFORE))" $K
expect "kernel's count of the new :7001 DROP" "$(raw_packets "dpt:7001")" 0
kill -TERM "$FOLLOW"
wait "$FOLLOW" || die "--follow after SIGTERM: status $?"
r2x_reaped "$FOLLOW"
r2x_b --unload veth-b || die "--unload failed"
say "accelerate: all checks passed"
