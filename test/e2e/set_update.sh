#!/bin/bash
# test/e2e/set_update.sh - `rule2xdp --set-add` / `--set-del` change an
# ipset set of a loaded program without a reload (issue 11 point 4).
#
# B's program drops UDP to :1234 from sources in set blk (hash:net, from a
# `--sets` file that does not hold A's 10.1.0.1). Each phase sends N
# datagrams to :1234 and then N to :4321 (which every phase passes: once its
# sink has them all, every :1234 datagram has met the program) and checks
# how many reach :1234:
#   1. as loaded: all N;
#   2. --set-add blk 10.1.0.0/16: none;
#   3. --set-add blk '10.1.0.0/24 nomatch' (more specific, nomatch): all N;
#   4. --set-del blk 10.1.0.0/24: none again.
# The program id never changes and the rule's counter adds up to 2N (no
# reload, counters kept). Adding an entry the set has, deleting one it has
# not, an entry the set cannot hold and a set the program does not test are
# errors that change nothing.
#
#   set_update.sh [-n N] [--rule2xdp PATH] [--tools DIR]
#
# Needs root; fails without it.
set -euo pipefail

# shellcheck source=test/e2e/lib.sh
. "$(dirname "$0")/lib.sh"
r2x_private_mounts "$@"

N=200
while [ $# -gt 0 ]; do
  case $1 in
  -n) N=$2; shift ;;
  --rule2xdp) R2X=$2; shift ;;
  --tools) TOOLS=$2; shift ;;
  -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
  *) die "unknown argument $1" ;;
  esac
  shift
done
r2x_find_tools

FAILS=0
check() { # check DESCRIPTION GOT WANT
  if [ "$2" = "$3" ]; then
    say "  ok    $1: $2"
  else
    say "  FAIL  $1: got '$2', want '$3'"
    FAILS=$((FAILS + 1))
  fi
}

# phase NAME: sends N to :1234 then N to :4321; prints how many reached :1234.
phase() {
  r2x_start_sink "p$1" 1234 --timeout-ms 60000
  r2x_start_sink "m$1" 4321 --count "$N" --timeout-ms 60000
  r2x_send 1234 "$N" >/dev/null
  r2x_send 4321 "$N" >/dev/null
  r2x_wait_sink "m$1"
  [ "$(r2x_sink_count "m$1")" = "$N" ] || die "phase $1: the :4321 datagrams did not all arrive"
  r2x_stop_sink "p$1"
  r2x_sink_count "p$1" >"$TMP/p$1.count"
}

r2x_make_network
cat >"$TMP/sets" <<'SETS'
create blk hash:net family inet hashsize 1024 maxelem 65536
add blk 192.0.2.0/24
SETS
"$R2X" --sets "$TMP/sets" -A INPUT -p udp --dport 1234 \
  -m set --match-set blk src -j DROP -o "$TMP/set.o" ||
  die "rule2xdp could not compile the rule"
r2x_b --load veth-b --mode generic "$TMP/set.o" || die "rule2xdp --load failed"
PROG_ID=$(r2x_xdp_prog_id)
[ -n "$PROG_ID" ] || die "no XDP program on veth-b after --load"

phase 1
check "1. as loaded: reach :1234" "$(cat "$TMP/p1.count")" "$N"
r2x_b --set-add blk 10.1.0.0/16 veth-b || die "--set-add failed"
phase 2
check "2. after --set-add blk 10.1.0.0/16: reach :1234" "$(cat "$TMP/p2.count")" 0
r2x_b --set-add blk '10.1.0.0/24 nomatch' veth-b || die "--set-add nomatch failed"
phase 3
check "3. after --set-add blk '10.1.0.0/24 nomatch': reach :1234" "$(cat "$TMP/p3.count")" "$N"
r2x_b --set-del blk 10.1.0.0/24 veth-b || die "--set-del failed"
phase 4
check "4. after --set-del blk 10.1.0.0/24: reach :1234" "$(cat "$TMP/p4.count")" 0
check "the program (no reload)" "$(r2x_xdp_prog_id)" "$PROG_ID"
check "the rule's counter" "$(r2x_rule_packets 'DROP')" "$((2 * N))"

# Refusals, each leaving the set as it is.
err() { # err DESCRIPTION PATTERN ARGS...: rule2xdp ARGS must fail saying PATTERN
  local what=$1 pat=$2 out
  shift 2
  if out=$(r2x_b "$@" 2>&1); then
    check "$what" "accepted" "refused"
  elif grep -q -- "$pat" <<<"$out"; then
    check "$what" "refused" "refused"
  else
    check "$what" "$out" "$pat"
  fi
}
err "adding an entry the set has" "it's already added" --set-add blk 10.1.0.0/16 veth-b
err "deleting an entry the set has not" "it's not added" --set-del blk 10.9.0.0/16 veth-b
err "an entry with prefix 0" "the prefix length must be 1 to 32" --set-add blk 10.0.0.0/0 veth-b
err "an IPv6 entry in an IPv4 set" "is not an IPv4 address" --set-add blk 2001:db8::1 veth-b
err "a set the program does not test" "tests no set called nope" --set-add nope 10.0.0.1 veth-b
phase 5
check "5. after the refusals: reach :1234" "$(cat "$TMP/p5.count")" 0

r2x_b --unload veth-b || die "--unload failed"
if [ "$FAILS" -ne 0 ]; then
  say "set_update: $FAILS checks failed"
  exit 1
fi
say "set_update: all checks passed"
