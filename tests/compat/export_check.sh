#!/bin/sh
# export_check: the GPTQ and AWQ checkpoints mcbuild's export step writes,
# read by an independent numpy reader (pack_check.py, written from the
# published layouts: ALGORITHMS.md sections 1 and 2).
#
#   sh tests/compat/export_check.sh [TEST_EXPORT]     (from anywhere)
#
# TEST_EXPORT is the unit test binary build/tests/test_export (default).
# It runs with MCB_EXPORT_DUMP set, so that its GPTQ cases (4-bit
# asymmetric with act-order g_idx, 3-bit symmetric, 8-bit per channel, 2-bit
# asymmetric) and AWQ cases (asymmetric; symmetric converted to zero point
# 8) leave one directory per packed weight: the source's codes, zeros and
# dequantized weights in HF row order (Q/K rows permuted), and where the
# exported model.safetensors is.  This script cuts qweight, qzeros, scales
# and g_idx out of that file with its own safetensors reader (json + numpy,
# no mcbuild code) and runs pack_check.py gptq|awq on each directory: the
# unpacked codes and zeros must equal the source's, repacking must give the
# same words, and the dequantized weights must equal mcbuild's bit for bit.
#
# Output: build/compat/export-dump/ (one directory per weight).  Prints
# "export_check: N passed, N failed"; exit 1 on any failure (or when the
# binary or python3 with numpy is missing).

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${1:-$ROOT/build/tests/test_export}
DUMP=$ROOT/build/compat/export-dump

PY=
for p in ${MCB_PYTHON:-} /usr/bin/python3 python3; do
	if "$p" -c 'import numpy' >/dev/null 2>&1; then
		PY=$p
		break
	fi
done
if [ -z "$PY" ]; then
	echo "export_check: FAIL: no python3 with numpy (apt-get install python3-numpy)"
	exit 1
fi
if [ ! -x "$BIN" ]; then
	echo "export_check: FAIL: $BIN is missing (make $BIN)"
	exit 1
fi

rm -rf "$DUMP"
mkdir -p "$DUMP"
cd "$ROOT" || exit 1
if ! MCB_EXPORT_DUMP=$DUMP MCB_TESTDATA=tests/data "$BIN" >"$DUMP/test_export.log" 2>&1; then
	echo "export_check: FAIL: $BIN failed (log: $DUMP/test_export.log)"
	tail -5 "$DUMP/test_export.log"
	exit 1
fi

# cut DIR: the packed tensors named in DIR/src, as raw little-endian arrays
cut() {
	"$PY" - "$1" <<'EOF'
import json, struct, sys
import numpy as np

d = sys.argv[1]
path, module, kind = open(d + "/src").read().split()
raw = open(path, "rb").read()
(n,) = struct.unpack_from("<Q", raw, 0)
header = json.loads(raw[8:8 + n].decode("utf-8"))
buf = raw[8 + n:]
dt = {"I32": "<i4", "F16": "<f2"}
names = ["qweight", "qzeros", "scales"] + (["g_idx"] if kind == "gptq" else [])
out = {"qweight": "qweight.i32", "qzeros": "qzeros.i32", "scales": "scales.f16",
       "g_idx": "g_idx.i32"}
for t in names:
    h = header[module + "." + t]
    b, e = h["data_offsets"]
    a = np.frombuffer(buf[b:e], dtype=dt[h["dtype"]]).reshape(h["shape"])
    a.tofile(d + "/" + out[t])
print(kind)
EOF
}

npass=0
nfail=0
for d in "$DUMP"/*/; do
	d=${d%/}
	[ -f "$d/src" ] || continue
	if ! kind=$(cut "$d" 2>"$d/cut.log"); then
		echo "export_check: FAIL: cannot read the tensors of $(basename "$d")"
		cat "$d/cut.log"
		nfail=$((nfail + 1))
		continue
	fi
	if "$PY" "$HERE/pack_check.py" "$kind" "$d" >"$d/check.log" 2>&1; then
		echo "export_check: ok   $(basename "$d"): $(cat "$d/check.log")"
		npass=$((npass + 1))
	else
		echo "export_check: FAIL $(basename "$d"):"
		cat "$d/check.log"
		nfail=$((nfail + 1))
	fi
done
if [ $((npass + nfail)) -eq 0 ]; then
	echo "export_check: FAIL: $BIN left no dumps in $DUMP"
	exit 1
fi
echo "export_check: $npass passed, $nfail failed"
[ "$nfail" -eq 0 ]
