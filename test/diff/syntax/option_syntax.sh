#!/usr/bin/env bash
# test/diff/syntax/option_syntax.sh - iptables' own parser as the oracle for
# which option spellings are accepted and which refused.
#
#   option_syntax.sh [--rule2xdp PATH] [CASES-FILE]
#
# Every line of CASES-FILE (default: cases.txt beside this script) is
#   IPT R2X WORDS...
# where IPT and R2X are `ok' or `err': what iptables-legacy and rule2xdp
# must do with the rule WORDS (shell words: quotes work). Both are run, and
# both verdicts are checked, so a line also proves its claim about
# iptables on the iptables installed here. A line where IPT and R2X differ
# is a deliberate refusal by rule2xdp, explained in the comment above it.
#
# iptables runs in a network namespace and mount namespace of this script's
# own (unshare), with a private /run so the xtables lock is ours too: the
# host's firewall is never read or changed. The namespace's tables start
# empty and are flushed after every accepted rule. Needs root; fails
# without it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
R2X=$here/../../../build/rule2xdp
while [ $# -gt 0 ]; do
  case $1 in
  --rule2xdp) R2X=$2; shift 2 ;;
  -*) echo "usage: $0 [--rule2xdp PATH] [CASES-FILE]" >&2; exit 2 ;;
  *) break ;;
  esac
done
CASES=${1:-$here/cases.txt}
die() { printf 'option_syntax: FAIL: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (a network namespace for iptables)"
[ -x "$R2X" ] || die "$R2X is missing: build first"
command -v iptables-legacy >/dev/null || die "iptables-legacy is missing"

if [ "${R2X_SYNTAX_NS:-}" != "$$" ]; then
  R2X_SYNTAX_NS=$$ exec unshare --net --mount --propagation private -- \
    bash "$0" --rule2xdp "$R2X" "$CASES"
fi
mount -t tmpfs -o mode=0755,size=1m r2x-syntax-run /run ||
  die "cannot mount a private /run"
ip link set lo up

verdict() { if "$@" >"$out" 2>&1; then echo ok; else echo err; fi; }
out=$(mktemp /run/out.XXXXXX)
n=0 bad=0
while IFS= read -r line || [ -n "$line" ]; do
  case $line in '' | '#'*) continue ;; esac
  read -r want_ipt want_r2x rule <<<"$line"
  eval "words=($rule)"
  n=$((n + 1))
  got_ipt=$(verdict iptables-legacy "${words[@]}")
  ipt_msg=$(head -1 "$out")
  iptables-legacy -F && iptables-legacy -t nat -F
  got_r2x=$(verdict "$R2X" "${words[@]}" --emit=ir -o /dev/null)
  r2x_msg=$(head -1 "$out")
  if [ "$got_ipt" != "$want_ipt" ] || [ "$got_r2x" != "$want_r2x" ]; then
    bad=$((bad + 1))
    printf 'MISMATCH: %s\n  iptables: %s (want %s) %s\n  rule2xdp: %s (want %s) %s\n' \
      "$rule" "$got_ipt" "$want_ipt" "$ipt_msg" "$got_r2x" "$want_r2x" "$r2x_msg" >&2
  fi
done <"$CASES"
[ "$n" -gt 0 ] || die "no cases in $CASES"
[ "$bad" = 0 ] || die "$bad of $n cases differ from what they claim"
echo "option_syntax: $n cases, iptables $(iptables-legacy --version | awk '{print $2}') and rule2xdp as claimed"
