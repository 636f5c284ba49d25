#!/bin/sh
# quant.sh: quantization throughput on 1 GiB of fp32 weights against memcpy
# of the same buffer measured in the same run, rows split over 2 threads
# (both cores busy): RTN int8 per channel, RTN int4 in groups of 128
# (mcb_intq_rtn, asymmetric and symmetric, fp16 scales), Q8_0, Q4_0, Q4_1,
# and Q4_K and Q6_K on a sixteenth of the rows (see bench/bench_quant.c).
#
#   sh bench/quant.sh [BENCH_QUANT_BINARY [MIB [THREADS]]]
#
# BENCH_QUANT_BINARY is the compiled bench/bench_quant.c; when it is not
# given, build/bench/bench_quant is built first with the project's flags
# (CC and OPT from the environment, as in the Makefile) from runtime/quant.c
# and, when present, runtime/quant_ggml.c (Q4_0) with what it links against
# (tensor.c for the fp16 helpers, err.c); without quant_ggml.c the ggml
# lines say "not linked".  Prints GB/s (10^9 input bytes per second) for each
# kernel and the ratio to memcpy; the target is >= 0.5x.  A ratio under
# target is reported, not a failure (timings are noisy: run on an idle
# machine); exits 1 only when the binary cannot be built or run.  Needs
# ~2.8 GB of memory at the default size.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$bin" ]; then
	bin=$ROOT/build/bench/bench_quant
	mkdir -p "$(dirname "$bin")"
	cc_bench() {
		${CC:-cc} -std=c11 -g ${OPT:--O2} -Wall -Wextra -Wshadow -Wmissing-prototypes \
			-Wstrict-prototypes -Wno-sign-compare -D_GNU_SOURCE -I"$ROOT/include" \
			-o "$bin" "$ROOT/bench/bench_quant.c" "$ROOT/runtime/quant.c" "$@" \
			-lpthread -lm
	}
	if [ -f "$ROOT/runtime/quant_ggml.c" ]; then
		cc_bench "$ROOT/runtime/quant_ggml.c" "$ROOT/runtime/tensor.c" "$ROOT/runtime/err.c"
	else
		cc_bench
	fi
fi
"$bin" "$@"
