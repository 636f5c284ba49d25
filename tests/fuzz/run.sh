#!/bin/sh
# Build the libFuzzer targets and run each for SECONDS (default 60).
# Usage, from the repository root: sh tests/fuzz/run.sh [SECONDS] [TARGET...]
# Targets: gguf safetensors llama2c cache.  Crashes land in build/fuzz/<target>/crashes/.
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-gguf safetensors llama2c cache}
base="runtime/err.c runtime/arena.c runtime/buf.c runtime/hash.c runtime/os.c runtime/json.c
     runtime/strmap.c runtime/rng.c runtime/utf8.c"
formats="runtime/tensor.c runtime/model.c runtime/llama2c.c runtime/gguf.c runtime/safetensors.c
     runtime/hf.c runtime/part.c runtime/quant.c runtime/quant_ggml.c runtime/qtensor.c"
cache="cache/store.c cache/action.c cache/statcache.c cache/stamp.c"
CC=${CC:-clang}
for t in $targets; do
	out=build/fuzz/$t
	mkdir -p "$out/corpus" "$out/crashes"
	if [ "$t" = cache ]; then src="$base $cache"; else src="$base $formats"; fi
	$CC -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -DMCB_VERSION='"fuzz"' \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		$(pkg-config --cflags jansson) -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $src \
		$(pkg-config --libs jansson libcrypto libzstd) -lm -lpthread
	# the run's own corpus first (it grows), then the committed seeds and hostile files
	dirs="$out/corpus tests/data/fuzz-seeds/$t"
	[ -d "tests/data/corpus/$t" ] && dirs="$dirs tests/data/corpus/$t"
	# shellcheck disable=SC2086
	"$out/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
		-artifact_prefix="$out/crashes/" $dirs
done
