#!/bin/sh
# make bench: every benchmark, each printing measured figures and the ratio
# to its reference measured in the same run.  Usage: sh bench/run.sh MCBUILD
set -eu
bin=$1
echo "== no-op rebuild"
sh bench/noop.sh "$bin"
