#!/bin/sh
# test/packet/with-classifier.sh - rule2xdp with every run of simple rules
# classified (--classifier=always), for packet_tests --compiler: the whole
# packet suite then checks the decision trees (compiler/classify) against
# the same reference model as the straight-line code. R2X_REAL_COMPILER is
# the rule2xdp binary (set by ctest).
set -eu
exec "${R2X_REAL_COMPILER:?set R2X_REAL_COMPILER to the rule2xdp binary}" \
  --classifier=always "$@"
