#!/bin/sh
# quant.sh: quantization throughput (RTN int8 per channel, Q8_0) on 1 GiB of
# fp32 weights against memcpy of the same buffer, rows split over 2 threads
# (see bench/bench_quant.c).
#
#   sh bench/quant.sh [BENCH_QUANT_BINARY [MIB [THREADS]]]
#
# BENCH_QUANT_BINARY is the compiled bench/bench_quant.c; when it is not
# given, build/bench/bench_quant is built first with the project's flags
# (CC and OPT from the environment, as in the Makefile).  Prints GB/s (10^9
# input bytes per second) for each kernel and the ratio to memcpy; the
# target is >= 0.5x.  A ratio under target is reported, not a failure
# (timings are noisy); exits 1 only when the binary cannot be built or run.
# Needs ~2.6 GB of memory at the default size.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$bin" ]; then
	bin=$ROOT/build/bench/bench_quant
	mkdir -p "$(dirname "$bin")"
	${CC:-cc} -std=c11 -g ${OPT:--O2} -Wall -Wextra -Wshadow -Wmissing-prototypes \
		-Wstrict-prototypes -Wno-sign-compare -D_GNU_SOURCE -I"$ROOT/include" \
		-o "$bin" "$ROOT/bench/bench_quant.c" "$ROOT/runtime/quant.c" -lpthread -lm
fi
"$bin" "$@"
