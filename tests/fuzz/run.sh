#!/bin/sh
# Build the libFuzzer targets and run each for SECONDS (default 60).
# Usage, from the repository root: sh tests/fuzz/run.sh [SECONDS] [TARGET...]
# Targets: gguf safetensors llama2c.  Crashes land in build/fuzz/<target>/crashes/.
set -eu
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-gguf safetensors llama2c}
src="runtime/err.c runtime/arena.c runtime/buf.c runtime/hash.c runtime/os.c runtime/json.c
     runtime/tensor.c runtime/model.c runtime/llama2c.c runtime/gguf.c runtime/safetensors.c
     runtime/hf.c"
CC=${CC:-clang}
for t in $targets; do
	out=build/fuzz/$t
	mkdir -p "$out/corpus" "$out/crashes"
	$CC -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		$(pkg-config --cflags jansson) -o "$out/fuzz_$t" "tests/fuzz/fuzz_$t.c" $src \
		$(pkg-config --libs jansson libcrypto) -lm
	# the run's own corpus first (it grows), then the committed seeds and hostile files
	"$out/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
		-artifact_prefix="$out/crashes/" "$out/corpus" "tests/data/fuzz-seeds/$t" \
		"tests/data/corpus/$t"
done
