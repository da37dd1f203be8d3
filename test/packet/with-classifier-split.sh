#!/bin/sh
# test/packet/with-classifier-split.sh - rule2xdp with every run of simple
# rules classified and its trees held to 16 words (--classifier-words 0), so
# nearly every run is cut into halves classified one after the other, down
# to single rules or the 240 functions a program may have: the packet suite
# then checks that pieces keep first-match order and every counter.
# R2X_REAL_COMPILER is the rule2xdp binary (set by ctest).
set -eu
exec "${R2X_REAL_COMPILER:?set R2X_REAL_COMPILER to the rule2xdp binary}" \
  --classifier=always --classifier-words 0 "$@"
