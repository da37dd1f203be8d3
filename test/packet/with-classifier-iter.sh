#!/bin/sh
# test/packet/with-classifier-iter.sh - as with-classifier.sh, but every
# classified run whose leaves hold 3 rules or more is scanned with the
# bpf_iter_num loop (the one runs with long leaves get, docs/classifier.md)
# instead of the bounded loop, so the packet suite checks that scan too
# (about a third of its objects). Not 0: the iterator's loop costs the
# verifier about twice the bounded one, and some random rulesets with many
# inlined runs would pass its 1M-instruction limit. R2X_REAL_COMPILER is
# the rule2xdp binary.
set -eu
exec "${R2X_REAL_COMPILER:?set R2X_REAL_COMPILER to the rule2xdp binary}" \
  --classifier=always --classifier-iter-leaf=2 "$@"
