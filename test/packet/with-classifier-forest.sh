#!/bin/sh
# test/packet/with-classifier-forest.sh - rule2xdp with every run of simple
# rules classified as a forest (--classifier-forest always: one tree per
# group of rules wide or narrow in the same addresses, whenever a run has
# two groups), and leaves of more than 8 rules scanned with bpf_iter_num:
# the packet suite then checks that the earliest event over the trees, the
# count-only rules before it and hotdrops keep the straight-line meaning.
# R2X_REAL_COMPILER is the rule2xdp binary (set by ctest).
set -eu
exec "${R2X_REAL_COMPILER:?set R2X_REAL_COMPILER to the rule2xdp binary}" \
  --classifier=always --classifier-forest always --classifier-iter-leaf 8 "$@"
