#!/bin/sh
# make bench: every benchmark, each printing measured figures and the ratio
# to its reference measured in the same run.  Usage: sh bench/run.sh BUILD_DIR
set -eu
build=$1
echo "== no-op rebuild of a generated 100-target workspace (reference: GNU make)"
sh bench/noop.sh "$build/mcbuild"
echo "== SHA-256 file hashing, 1 GiB (reference: openssl dgst -sha256)"
sh bench/hash.sh "$build/bench/bench_hash" "$build/bench/1g.bin"
echo "== quantization throughput, 1 GiB of F32 (reference: memcpy)"
sh bench/quant.sh "$build/bench/bench_quant"
echo "== engine tokens/s, dim 2048 x 16 layers, F32 and Q8_0 (reference: llama.cpp)"
sh bench/engine.sh "$build/bench/bench_engine"
echo "== calibration Hessian accuracy and speed (reference: float64 sums)"
"$build/bench/bench_hessian"
echo "== GPTQ on one 4096 x 11008 layer, Hessian SSYRK (reference: OpenBLAS SGEMM in the same run)"
"$build/bench/bench_gptq"
