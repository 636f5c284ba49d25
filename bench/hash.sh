#!/bin/sh
# hash.sh: SHA-256 throughput of mcbuild (mcb_sha256_file) against
# `openssl dgst -sha256` on the same warm file, best of RUNS (default 3,
# environment) each, runs interleaved.
#
#   sh bench/hash.sh BENCH_HASH_BINARY [FILE [MIB]]
#
# BENCH_HASH_BINARY is the compiled bench/bench_hash.c (this script builds
# nothing).  FILE defaults to build/bench/1g.bin and is created by the binary
# when missing (MIB, default 1024, sets its size).  Prints both figures in
# MB/s (10^6 bytes per second) and the ratio ours/openssl; the target is
# >= 0.90.  Exits 1 when the two digests differ or a tool fails; a ratio
# under target is reported but is not a failure (timings are noisy).
set -eu

bin=${1:?usage: sh bench/hash.sh BENCH_HASH_BINARY [FILE [MIB]]}
file=${2:-build/bench/1g.bin}
mib=${3:-1024}
runs=${RUNS:-3}

mkdir -p "$(dirname "$file")"
# The first call creates the file if needed and warms the page cache.  Runs
# alternate between the two tools so that both see the same machine load.
"$bin" -r 1 -s "$mib" "$file" >/dev/null
ours_best=
best=
i=0
while [ "$i" -lt "$runs" ]; do
	ours=$("$bin" -r 1 -s "$mib" "$file")
	ns=$(echo "$ours" | awk '$1 == "best_s" { printf "%d", $2 * 1e9 }')
	if [ -z "$ours_best" ] || [ "$ns" -lt "$ours_best" ]; then ours_best=$ns; fi
	t0=$(date +%s%N)
	ossl=$(openssl dgst -sha256 -r "$file")
	t1=$(date +%s%N)
	ns=$((t1 - t0))
	if [ -z "$best" ] || [ "$ns" -lt "$best" ]; then best=$ns; fi
	i=$((i + 1))
done
ours_sum=$(echo "$ours" | awk '$1 == "sha256" { print $2 }')
bytes=$(echo "$ours" | awk '$1 == "bytes" { print $2 }')
ossl_sum=${ossl%% *}
if [ "$ossl_sum" != "$ours_sum" ]; then
	echo "hash: digests differ: ours $ours_sum, openssl $ossl_sum" >&2
	exit 1
fi
awk -v b="$bytes" -v ns="$best" -v ons="$ours_best" -v runs="$runs" 'BEGIN {
	ours = b / 1e6 / (ons / 1e9)
	ossl = b / 1e6 / (ns / 1e9)
	ratio = ours / ossl
	printf "hash: %d MiB, best of %d: mcbuild %.0f MB/s, openssl %.0f MB/s, ratio %.2f%s\n",
		b / 1048576, runs, ours, ossl, ratio, (ratio >= 0.9 ? "" : "  (BELOW the 0.90 target)")
}'
