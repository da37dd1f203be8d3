#!/bin/bash
# test/e2e/follow_faults.sh - `rule2xdp --accelerate veth-b --follow` under
# faults, on the demo network of lib.sh (issue 12, point 5). B runs a
# ruleset installed with iptables-nft-restore: INPUT policy ACCEPT, and a
# chain `blk` of `-p udp --dport P -j DROP` rules (ports from 2001..2060)
# that the test inserts and deletes.
#
#  1. SIGKILL: ROUNDS (10) times, change blk (1 to 3 `iptables -I`/`-D`),
#     then SIGKILL --follow after a random delay in [0, 300] ms (drawn from a
#     seeded RNG: the seed is printed, --seed replays it); one round in three
#     kills the restarted process once more, at a random moment of its first
#     load. After each SIGKILL, before the restart: one whole program on
#     veth-b, --stats reads it, and its blk is one of the kernel's states
#     since the last convergence (a version, never a mix). Then: the lock is free at once (flock -n), a restart says
#     "following" (no stale pin or lock stops it), and once its program
#     equals the kernel's blk (polled, never a fixed wait):
#       - exactly one XDP program on veth-b (ip link and bpftool net), named
#         rule2xdp, and `--stats` reads it (its metadata parses);
#       - --stats lists blk's DROP ports in the kernel's order;
#       - the pins name the attached program's maps, no half-made pin
#         (`*_new`) is left;
#       - K datagrams to a blocked port are dropped by XDP (its rule counts
#         K, the kernel's rule 0), M to an unblocked port all reach a
#         socket in B (through the kernel).
#  2. Burst: one --follow, BURST `iptables -I/-D` back to back, the last two
#     a -D of port Y and an -I of port X; it converges to the final blk, and
#     traffic shows X dropped by XDP and Y reaching B's socket.
#  2b. Half-made pins (NAME_new) of a replacement killed between pinning
#     and renaming, also of maps the program has not (nat, nat6): the next
#     replacement removes them.
#  3. Permissions: with /sys/fs/bpf opened to everyone (0755), rule2xdp's
#     pin directories are 0700, pins 0600, lock directory 0700 and lock files
#     0600, all root's; as nobody, no pin can be found, opened or shown by
#     bpftool.
#
#   follow_faults.sh [--seed N] [--rounds N] [--rule2xdp PATH] [--tools DIR]
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

SEED=$(($(date +%s%N) % 32768))
ROUNDS=10
while [ $# -gt 0 ]; do
  case $1 in
  --seed) SEED=$2; shift ;;
  --rounds) ROUNDS=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools
IPT=iptables-nft
# iptables in B: nsenter --net is cheaper than `ip netns exec` (no mount
# namespace of its own), which counts when the burst runs 100 of them.
ipt_b() { nsenter --net="/run/netns/$NS_B" -- "$IPT" "$@"; }
for c in "$IPT" "$IPT-restore" bpftool setpriv flock; do
  command -v "$c" >/dev/null || die "$c is missing"
done
K=20 M=20 BURST=100

r2x_make_network
say "seed $SEED (replay: $0 --seed $SEED)"
RANDOM=$SEED
# rnd N: a number in [0, N) into R. (Not in a $(...): a subshell's draws
# would not advance this shell's sequence.)
rnd() { R=$((RANDOM % $1)); }

cat >"$TMP/blk.rules" <<'R'
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:blk - [0:0]
-A INPUT -j blk
-A blk -p udp -m udp --dport 2001 -j DROP
-A blk -p udp -m udp --dport 2002 -j DROP
COMMIT
R
in_b "$IPT-restore" "$TMP/blk.rules" || die "$IPT-restore failed in B"
BLOCKED=" 2001 2002 " # the model of blk, in the kernel's order

# Ports of blk's DROP rules in order: the kernel's, and XDP's (--stats).
kernel_ports() { ipt_b -S blk | awk '$1 == "-A" {for (i = 1; i < NF; i++) if ($i == "--dport") print $(i + 1)}' | xargs; }
stats_ports() {
  r2x_b --stats veth-b | awk '/^Chain / {c = $2} c == "blk" && / DROP / {for (i = 1; i <= NF; i++) if ($i ~ /^dpt:/) {sub("dpt:", "", $i); print $i}}' | xargs
}
model() {
  local a
  read -ra a <<<"$BLOCKED"
  echo "${a[*]}"
}
# pick_blocked: a random blocked port into P.
pick_blocked() {
  local a
  read -ra a <<<"$BLOCKED"
  rnd ${#a[@]}
  P=${a[R]}
}

# change: one random -I of an unblocked port or -D of a blocked one.
change() {
  local p
  rnd 2
  if [ "$R" = 0 ] && [ "$(model | wc -w)" -gt 1 ]; then
    pick_blocked
    p=$P
    ipt_b -D blk -p udp --dport "$p" -j DROP || die "iptables -D :$p in B"
    BLOCKED=${BLOCKED/ $p / }
  else
    while :; do
      rnd 60
      p=$((2001 + R))
      case $BLOCKED in *" $p "*) ;; *) break ;; esac
    done
    ipt_b -I blk -p udp --dport "$p" -j DROP || die "iptables -I :$p in B"
    BLOCKED=" $p$BLOCKED"
  fi
}

FOLLOW=
RUN=0
start_follow() {
  RUN=$((RUN + 1))
  nsenter --net="/run/netns/$NS_B" -- "$R2X" --accelerate veth-b --follow \
    >"$TMP/follow$RUN.out" 2>"$TMP/follow$RUN.err" &
  FOLLOW=$!
  R2X_PIDS+=("$FOLLOW")
}
kill_follow() { # SIGKILL, and reap it
  kill -KILL "$FOLLOW" 2>/dev/null || true
  wait "$FOLLOW" 2>/dev/null || true
  r2x_reaped "$FOLLOW"
}
# random_delay: sleeps [0, 300] ms, to place a kill (nothing is judged by it).
random_delay() {
  rnd 301
  sleep "$(printf '0.%03d' "$R")"
  LAST_DELAY=$R
}

LOCK=/run/rule2xdp/net$(stat -L -c %i "/run/netns/$NS_B")-if$(ip -n "$NS_B" -o link show dev veth-b | cut -d: -f1).lock
lock_is_free() {
  # No lock file yet (killed before the first lock) is as free as it gets.
  [ ! -e "$LOCK" ] || flock -n "$LOCK" true
}

# converged: the process of this run said "following" (its first load is
# done) and XDP's blk is the kernel's (and the model's).
converged() {
  grep -q '^rule2xdp: following' "$TMP/follow$RUN.out" || return 1
  kill -0 "$FOLLOW" 2>/dev/null || die "--follow ended: $(cat "$TMP/follow$RUN.err")"
  local k s
  k=$(kernel_ports)
  [ "$k" = "$(model)" ] || die "the kernel's blk is '$k', the test made '$(model)'"
  s=$(stats_ports) || return 1
  [ "$s" = "$k" ]
}
wait_converged() {
  r2x_wait_until "--follow (run $RUN) to equal the kernel's blk '$(model)' (XDP: '$(stats_ports 2>&1)'; $(cat "$TMP/follow$RUN.err"))" converged
}

# xdp_count PORT / kernel_count PORT: the packet count of blk's DROP rule
# for PORT.
xdp_count() {
  local n
  n=$(r2x_rule_packets "DROP.*dpt:$1([^0-9]|\$)")
  [ -n "$n" ] || die "no DROP :$1 in --stats: $(r2x_b --stats veth-b)"
  echo "$n"
}
kernel_count() {
  local n
  n=$(ipt_b -L blk -v -x -n | awk -v pat="dpt:$1([^0-9]|\$)" 'NR > 2 && $0 ~ pat {print $1; exit}')
  [ -n "$n" ] || die "no DROP :$1 in the kernel's blk"
  echo "$n"
}

SINKS=0
# check_traffic BLOCKED_PORT OPEN_PORT: K to the blocked port are dropped by
# XDP, then M to the open port all reach B's socket (and so, in order, every
# one of the K met the program first).
check_traffic() {
  local b=$1 o=$2 x0
  x0=$(xdp_count "$b")
  [ "$(r2x_send "$b" $K)" = $K ] || die "send to :$b"
  SINKS=$((SINKS + 1))
  r2x_start_sink s$SINKS "$o" --count $M --timeout-ms 30000
  [ "$(r2x_send "$o" $M)" = $M ] || die "send to :$o"
  r2x_wait_sink s$SINKS
  [ "$(r2x_sink_count s$SINKS)" = $M ] ||
    die "datagrams to the unblocked :$o lost: $(r2x_sink_count s$SINKS) of $M"
  [ "$(($(xdp_count "$b") - x0))" = $K ] ||
    die "XDP's DROP :$b counted $(($(xdp_count "$b") - x0)), want $K"
  [ "$(kernel_count "$b")" = 0 ] ||
    die "the kernel's DROP :$b counted $(kernel_count "$b") packets: XDP let them through"
}

# check_program: one complete rule2xdp program on veth-b, and pins of it.
check_program() {
  local id n name dir maps m pin
  id=$(r2x_xdp_prog_id)
  [ -n "$id" ] || die "no XDP program on veth-b"
  n=$(ip -n "$NS_B" -d link show dev veth-b | grep -o 'prog/xdp id [0-9]*' | wc -l)
  [ "$n" = 1 ] || die "$n XDP programs in ip link's view of veth-b"
  n=$(ip netns exec "$NS_B" bpftool -j net show dev veth-b | jq '[.[0].xdp[]] | length')
  [ "$n" = 1 ] || die "bpftool net shows $n XDP programs on veth-b"
  [ "$(ip netns exec "$NS_B" bpftool -j net show dev veth-b | jq '.[0].xdp[0].id')" = "$id" ] ||
    die "bpftool net and ip link disagree on veth-b's program"
  name=$(bpftool -j prog show id "$id" | jq -r .name)
  [ "$name" = rule2xdp ] || die "veth-b's program $id is named '$name'"
  dir=/sys/fs/bpf/rule2xdp/net$(stat -L -c %i "/run/netns/$NS_B")/veth-b
  [ -d "$dir" ] || die "no pin directory $dir"
  if compgen -G "$dir/*_new" >/dev/null; then die "a half-made pin is left in $dir: $(ls "$dir")"; fi
  maps=$(bpftool -j prog show id "$id" | jq -r '.map_ids[]' | xargs)
  for pin in counters meta; do
    m=$(bpftool -j map show pinned "$dir/$pin" | jq -r .id) ||
      die "the pin $dir/$pin is not a map"
    case " $maps " in *" $m "*) ;; *) die "the pin $dir/$pin is map $m, not one of program $id's ($maps)" ;; esac
  done
  PROG=$id
}

# check_killed: right after a SIGKILL, before any restart, veth-b runs one
# whole rule2xdp program (ip link and bpftool agree on a single program,
# --stats reads its metadata) whose blk is one of the states the kernel's
# blk went through since the last convergence (STATES): a version of the
# ruleset, never a mix of two or a half-replaced one. (Its pins may still
# name the program before it: they are made after the attach, and only the
# next load is held to them.)
check_killed() {
  local id n s i
  id=$(r2x_xdp_prog_id)
  [ -n "$id" ] || die "no XDP program on veth-b after SIGKILL"
  n=$(ip -n "$NS_B" -d link show dev veth-b | grep -o 'prog/xdp id [0-9]*' | wc -l)
  [ "$n" = 1 ] || die "$n XDP programs in ip link's view of veth-b after SIGKILL"
  n=$(ip netns exec "$NS_B" bpftool -j net show dev veth-b | jq '[.[0].xdp[]] | length')
  [ "$n" = 1 ] || die "bpftool net shows $n XDP programs on veth-b after SIGKILL"
  s=$(stats_ports) || die "--stats cannot read the program left by SIGKILL"
  for i in "${!STATES[@]}"; do
    if [ "$s" = "${STATES[i]}" ]; then
      LEFT="left state $i of 0..$((${#STATES[@]} - 1))"
      return 0
    fi
  done
  die "after SIGKILL XDP's blk is '$s', none of the kernel's states since the last convergence: $(printf "'%s' " "${STATES[@]}")"
}

say "== 1. SIGKILL at random moments, $ROUNDS rounds (at ${SECONDS} s)"
start_follow
wait_converged
check_program
check_traffic 2001 4321
KILLS=0
for round in $(seq 1 "$ROUNDS"); do
  STATES=("$(model)")
  rnd 3
  for _ in $(seq 0 "$R"); do
    change
    STATES+=("$(model)")
  done
  random_delay
  kill_follow
  KILLS=$((KILLS + 1))
  what="killed ${LAST_DELAY} ms after the change"
  lock_is_free || die "round $round: the lock is still held after SIGKILL"
  check_killed
  what="$what ($LEFT)"
  start_follow
  rnd 3
  if [ "$R" = 0 ]; then
    random_delay
    kill_follow
    KILLS=$((KILLS + 1))
    what="$what, and again ${LAST_DELAY} ms after its restart"
    lock_is_free || die "round $round: the lock is still held after SIGKILL"
    check_killed
    what="$what ($LEFT)"
    start_follow
  fi
  wait_converged
  check_program
  pick_blocked
  b=$P
  while :; do
    rnd 60
    o=$((2001 + R))
    case $BLOCKED in *" $o "*) ;; *) break ;; esac
  done
  check_traffic "$b" "$o"
  say "   round $round: $what; program $PROG, blk $(model | wc -w) rules; :$b dropped by XDP, :$o reaches B (at $SECONDS s)"
done
kill -TERM "$FOLLOW"
wait "$FOLLOW" || die "--follow after SIGTERM: status $?"
r2x_reaped "$FOLLOW"
say "   $KILLS SIGKILLs, $RUN starts: every restart converged"

say "== 2. a burst of $BURST changes (at ${SECONDS} s)"
start_follow
wait_converged
for _ in $(seq 1 $((BURST - 2))); do change; done
# The last two: -D of a blocked port Y, -I of an unblocked port X.
Y=$(model | awk '{print $1}')
ipt_b -D blk -p udp --dport "$Y" -j DROP || die "iptables -D :$Y in B"
BLOCKED=${BLOCKED/ $Y / }
while :; do
  rnd 60
  X=$((2001 + R))
  case $BLOCKED in *" $X "*) ;; *) break ;; esac
done
[ "$X" != "$Y" ] || X=$((Y == 2060 ? 2001 : Y + 1)) # still unblocked: Y was just removed and X is not Y
case $BLOCKED in *" $X "*) die "internal: $X is blocked" ;; esac
ipt_b -I blk -p udp --dport "$X" -j DROP || die "iptables -I :$X in B"
BLOCKED=" $X$BLOCKED"
wait_converged
check_program
[ "$(stats_ports | awk '{print $1}')" = "$X" ] || die "--stats' first blk rule is not :$X"
check_traffic "$X" "$Y"
say "   converged to the last of $BURST changes: blk $(model | wc -w) rules, first :$X (dropped by XDP), :$Y deleted (reaches B); program $PROG"

say "== 2b. half-made pins of an interrupted replacement (at ${SECONDS} s)"
# A load killed between pinning a map beside its pin (NAME_new) and the
# rename leaves NAME_new. Made here by hand, for the maps this program has
# (counters) and for those it has not (nat, nat6: a DNAT program's, which a
# killed replacement may have been): the next replacement removes them all
# (check_program fails on any *_new), so no stale pin keeps a map alive.
DIR=/sys/fs/bpf/rule2xdp/net$(stat -L -c %i "/run/netns/$NS_B")/veth-b
CID=$(bpftool -j prog show id "$PROG" | jq -r '.map_ids[0]')
for n in counters_new nat_new nat6_new; do
  bpftool map pin id "$CID" "$DIR/$n" || die "cannot plant $DIR/$n"
done
change
wait_converged
check_program
say "   the next replacement removed counters_new, nat_new and nat6_new"

say "== 3. permissions (at ${SECONDS} s)"
chmod 0755 /sys/fs/bpf # open the private bpffs: only rule2xdp's modes protect its pins
bad=$(find /sys/fs/bpf/rule2xdp \( -type d ! -perm 0700 -o ! -type d ! -perm 0600 -o ! -user root \) -printf '%m %u %p\n')
[ -z "$bad" ] || die "pins not root-only: $bad"
find /sys/fs/bpf/rule2xdp -printf '   %M %u %p\n'
bad=$(find /run/rule2xdp -maxdepth 0 ! -perm 0700 -printf '%m %p\n')
bad+=$(find "$LOCK" ! -perm 0600 -printf '%m %p\n')
[ -z "$bad" ] || die "lock files not root-only: $bad"
stat -c '   %A %U %n' /run/rule2xdp "$LOCK"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody test -x /sys/fs/bpf || die "internal: nobody cannot reach /sys/fs/bpf"
NPINS=0
while read -r pin; do
  NPINS=$((NPINS + 1))
  if nobody test -e "$pin"; then die "nobody can find $pin"; fi
  # shellcheck disable=SC2016 # $1 is the inner shell's
  if nobody sh -c 'exec 3<"$1"' sh "$pin" 2>/dev/null; then die "nobody can open $pin"; fi
  if nobody bpftool map show pinned "$pin" >/dev/null 2>&1; then die "nobody can show $pin with bpftool"; fi
done < <(find /sys/fs/bpf/rule2xdp -type f)
[ "$NPINS" -gt 0 ] || die "no pins to check"
if nobody ls /sys/fs/bpf/rule2xdp >/dev/null 2>&1; then die "nobody can list /sys/fs/bpf/rule2xdp"; fi
say "   $NPINS pins: not found, opened or shown by nobody"
kill -TERM "$FOLLOW"
wait "$FOLLOW" || die "--follow after SIGTERM: status $?"
r2x_reaped "$FOLLOW"
r2x_b --unload veth-b || die "--unload failed"
say "follow_faults: all checks passed (seed $SEED)"
