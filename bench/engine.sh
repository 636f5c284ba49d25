#!/bin/sh
# engine.sh: prompt and decode tokens/s of mcbuild's engine against llama.cpp
# (node-llama-cpp 3.22.1, CPU) on the same GGUF files, in the same run.
#
#   sh bench/engine.sh [BENCH_ENGINE_BINARY]
#
# The files: a Llama-shaped synthetic model (dim 2048, hidden 5632, 16
# layers, 32 heads, 8 kv heads, vocabulary 32000) in F32 (3.15 GB) and Q8_0
# (0.84 GB), written by `bench_engine gen` with mcbuild's GGUF writer into
# build/bench/ and reused by later runs (the first run takes about a minute
# and 4 GB of memory).  Then, per file, in turn: mcbuild's engine
# (`bench_engine run`, GGML mode) and llama.cpp (bench/engine_llama.mjs),
# each with THREADS threads, one PROMPT-token prompt in one batch and GEN
# single-token decode steps, best of REPS repetitions; the pair is measured
# ROUNDS times, alternating, and the best of each is kept (the machine may be
# shared).  llama.cpp runs with the context settings of ORACLE.md except the
# thread count.  Prints both, and ours/llama.cpp ratios; the target is
# >= 0.8x for decode.  A ratio under target is reported, not a failure
# (timings are noisy); exits 1 only when something cannot be built or run.
#
# Environment: THREADS (2), PROMPT (64), GEN (32), REPS (3), ROUNDS (2).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$ROOT/build/bench/bench_engine}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-64}
GEN=${GEN:-32}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
DIR=$ROOT/build/bench
LLAMA="node $ROOT/bench/engine_llama.mjs"

[ -x "$bin" ] || { echo "engine.sh: $bin is not built (make $bin)" >&2; exit 1; }
[ -f "$ROOT/tests/compat/node_modules/node-llama-cpp/package.json" ] ||
	{ echo "engine.sh: node-llama-cpp is missing: run make deps" >&2; exit 1; }
mkdir -p "$DIR"
files=$("$bin" gen "$DIR") || { echo "engine.sh: cannot write the models" >&2; exit 1; }

# best VALUE of KEY over the RESULT lines on stdin
best() {
	awk -v k="$1" '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, a, "=");
		if (a[1] == k && a[2] > b) b = a[2] } } END { printf "%.2f", b }'
}

printf '%-6s %-10s %12s %12s\n' model engine prompt_tok/s decode_tok/s
for f in $files; do
	kind=$(basename "$f" .gguf | sed 's/.*-//')
	ours=$DIR/engine-$kind.ours.log
	theirs=$DIR/engine-$kind.llama.log
	: >"$ours"
	: >"$theirs"
	r=0
	while [ "$r" -lt "$ROUNDS" ]; do
		"$bin" run "$f" --threads "$THREADS" --prompt "$PROMPT" --gen "$GEN" \
			--reps "$REPS" --mode ggml >>"$ours" ||
			{ echo "engine.sh: bench_engine run failed (see $ours)" >&2; exit 1; }
		$LLAMA "$f" --threads "$THREADS" --prompt "$PROMPT" --gen "$GEN" \
			--reps "$REPS" >>"$theirs" 2>&1 ||
			{ echo "engine.sh: llama.cpp failed (see $theirs)" >&2; exit 1; }
		r=$((r + 1))
	done
	op=$(best prompt_tps <"$ours")
	od=$(best decode_tps <"$ours")
	lp=$(best prompt_tps <"$theirs")
	ld=$(best decode_tps <"$theirs")
	printf '%-6s %-10s %12s %12s\n' "$kind" mcbuild "$op" "$od"
	printf '%-6s %-10s %12s %12s\n' "$kind" llama.cpp "$lp" "$ld"
	awk -v op="$op" -v od="$od" -v lp="$lp" -v ld="$ld" -v k="$kind" 'BEGIN {
		rp = lp > 0 ? op / lp : 0; rd = ld > 0 ? od / ld : 0;
		v = (rd >= 0.8) ? "ok" : "UNDER TARGET";
		printf "%-6s ratio      %11.2fx %11.2fx  (decode target 0.8x: %s)\n", k, rp, rd, v }'
done
echo "logs: $DIR/engine-*.log"
