#!/bin/sh
# No-op rebuild of a generated 100-target workspace (target: <= 20 ms), and
# the same no-op for GNU make on a Makefile with 100 equivalent targets (the
# reference, measured in the same run).  Usage: sh bench/noop.sh MCBUILD
#
# The headline figure is a repeated command answered by the no-op stamp
# (cache/stamp.c: the files behind the last full check, re-stat'ed).  The
# full check (load, plan, keys, lookups, installed files), which runs when
# the stamp does not answer, is measured too: -d time always runs it.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
top=$(pwd)
ws=$top/build/bench/noop
rm -rf "$ws"
mkdir -p "$ws/models"
for i in 0 1 2 3 4; do
	python3 "$top/bench/gen_llama2c.py" "$ws/models/m$i.bin" 64 128 2 4 4 300 128 "$i"
done
{
	echo "models:"
	for i in 0 1 2 3 4; do echo "  m$i: {path: models/m$i.bin, format: llama2c}"; done
	echo "schemes:"
	for s in a b c d e; do echo "  int8$s: [{quantize: {method: rtn, bits: 8}}]"; done
	echo "targets:"
	echo "  \"targets/{model}-{hw}-{scheme}\":"
	echo "    model: \"{model}\""
	echo "    hardware: \"{hw}\""
	echo "    stack: \"{scheme}\""
	echo "    matrix:"
	echo "      model: [m0, m1, m2, m3, m4]"
	echo "      hw: [cpu-avx2, cpu-avx512, a100, l4]"
	echo "      scheme: [int8a, int8b, int8c, int8d, int8e]"
} > "$ws/mcbuild.yaml"
"$bin" -C "$ws" -j 2 targets/ > "$ws/first.log" 2>&1 || { cat "$ws/first.log"; exit 1; }
ntargets=$("$bin" -C "$ws" query targets | wc -l)
sleep 1.1   # let the stat cache trust the files just written (racy-clean rule)
"$bin" -C "$ws" -d stamp targets/ > /dev/null 2> "$ws/stamp.log"
grep -q 'stamp: written' "$ws/stamp.log" || { echo "noop: the stamp was not written:"; cat "$ws/stamp.log"; exit 1; }
# the reference: make with 100 targets, each depending on its model file
{
	printf 'all:'
	for m in 0 1 2 3 4; do for h in cpu-avx2 cpu-avx512 a100 l4; do for s in a b c d e; do
		printf ' out/m%s-%s-int8%s/manifest.json' "$m" "$h" "$s"
	done; done; done
	echo
	echo 'out/%/manifest.json: models/m0.bin'
	printf '\tmkdir -p $(@D) && cp $< $(@D)/model.bin && touch $@\n'
} > "$ws/Makefile"
make -s -C "$ws" > /dev/null
python3 - "$bin" "$ws" "$ntargets" <<'PY'
import subprocess, sys, time
bin, ws, n = sys.argv[1], sys.argv[2], sys.argv[3]
def best(cmd, runs=30):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            sys.exit("failed: %s\n%s" % (cmd, r.stdout.decode()))
    times.sort()
    return times[len(times) // 2] * 1000, times[0] * 1000
ours, ours_min = best([bin, "-C", ws, "targets/"])
full, full_min = best([bin, "-C", ws, "-d", "time", "targets/"])
ref, ref_min = best(["make", "-s", "-C", ws])
print("no-op rebuild, %s targets: mcbuild %.2f ms median (%.2f min); target <= 20 ms: %s"
      % (n, ours, ours_min, "met" if ours <= 20 else "NOT met"))
print("  the full check (no stamp: plan, keys, lookups, installed files): %.2f ms median"
      % full)
print("  reference GNU make no-op, 100 targets: %.2f ms median; mcbuild/make = %.2fx"
      % (ref, ours / ref))
PY
