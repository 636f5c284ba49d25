#!/usr/bin/env python3
"""pack_check: an independent reader of GPTQ and AWQ checkpoint tensors.

Written from the published layouts (../shared/ref/ALGORITHMS.md sections 1
and 2: AutoGPTQ qlinear pack, AutoAWQ gemm.py and its unpack helpers) with
only the standard library and numpy, so that it shares no code with
mcbuild's C packers (runtime/quant.c).  tests/unit/test_quant.c runs it as
the second opinion; it is also usable by hand.

Commands (DIR holds raw little-endian arrays and a text file "meta" with
"key=value" words, e.g. "rows=64 cols=256 bits=4 group=32"):

  gptq DIR
      qweight.i32 [cols*bits/32, rows], qzeros.i32 [ngroups, rows*bits/32],
      scales.f16 [ngroups, rows], g_idx.i32 [cols] (the checkpoint tensors),
      codes.u8 [rows, cols], zeros.u8 [rows, ngroups] (what was packed) and
      expect.f32 [rows, cols] (the dense weights the writer meant).
      Checks: the unpacked codes and zeros (v1: stored zero - 1) equal
      codes/zeros; packing codes/zeros here gives the same words; the
      dequantization W[k, n] = scales[g_idx[k], n] * (q[k, n] - (qz + 1))
      (computed in float32) equals expect bit for bit.  bits 2, 3, 4, 8;
      3-bit is AutoGPTQ's 32 codes in 3 words, codes 10 and 21 split.
  awq DIR
      qweight.i32 [cols, rows/8], qzeros.i32 [ngroups, rows/8],
      scales.f16 [ngroups, rows], codes.u8, zeros.u8, expect.f32 as above
      ("group" in meta; group of column k is k // group).  Unpacked the way
      AutoAWQ does (nibbles in shift order, then the reverse order
      [0, 4, 1, 5, 2, 6, 3, 7]); packed with the order [0, 2, 4, 6, 1, 3, 5, 7];
      W = (q - z) * s.
  intq DIR
      x.f32 [rows, cols] and mcbuild's result codes.u8 [rows, cols],
      scales.f32 [rows, ngroups], zeros.u8 [rows, ngroups]; meta has bits,
      group (0: per row), sym, fp16.  Recomputes GPTQ's quantizer
      (IST-DASLab/gptq quant.py find_params, in float32 as torch does) and
      compares bit for bit.
  e4m3 DIR
      x.f32 [n] with mcbuild's codes.u8 [n] = f32 -> FP8 E4M3, and table.f32
      [256], mcbuild's decoding of every code.  Recomputes both in float64
      from the OCP definition (bias 7, subnormals m * 2^-9, max 448, NaN
      0x7f/0xff; round to nearest even; saturation to +-448, NaN -> 0x7f).

Prints one summary line and exits 0, or prints the first mismatches and
exits 1 (2 on bad usage or unreadable input).
"""

import os
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.exit("pack_check: numpy is missing (Debian: apt-get install python3-numpy; "
             "or run make deps)")

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


class Bad(Exception):
    pass


def read_meta(d):
    meta = {}
    with open(os.path.join(d, "meta")) as f:
        for word in f.read().split():
            k, _, v = word.partition("=")
            meta[k] = int(v)
    return meta


def load(d, name, dtype, shape):
    a = np.fromfile(os.path.join(d, name), dtype=dtype)
    n = int(np.prod(shape))
    if a.size != n:
        raise Bad("%s: %d elements, expected %d %s" % (name, a.size, n, shape))
    return a.reshape(shape)


def first_diff(what, got, want, limit=5):
    """Raise Bad naming the first differing positions of two equal-shape arrays."""
    if got.shape != want.shape:
        raise Bad("%s: shape %s, expected %s" % (what, got.shape, want.shape))
    if got.dtype.kind == "f":
        diff = got.view(np.uint32 if got.dtype == np.float32 else np.uint16) != \
            want.view(np.uint32 if want.dtype == np.float32 else np.uint16)
    else:
        diff = got != want
    idx = np.argwhere(diff)
    if len(idx):
        lines = ["%s: %d of %d differ" % (what, len(idx), got.size)]
        for i in idx[:limit]:
            t = tuple(int(v) for v in i)
            lines.append("  at %s: got %r, expected %r" % (t, got[t], want[t]))
        raise Bad("\n".join(lines))


# ---- GPTQ ----

def gptq_unpack_cols(words, bits):
    """words [nw, m] uint32 packed along axis 0 -> codes [nw*32/bits, m]."""
    nw, m = words.shape
    if bits in (2, 4, 8):
        per = 32 // bits
        shifts = np.arange(0, 32, bits, dtype=np.uint32)          # code j at bits*j
        v = (words[:, None, :] >> shifts[None, :, None]) & np.uint32((1 << bits) - 1)
        return v.reshape(nw * per, m)
    if bits == 3:
        if nw % 3:
            raise Bad("3-bit: %d words is not a multiple of 3" % nw)
        w = words.reshape(nw // 3, 3, m)
        w0, w1, w2 = w[:, 0], w[:, 1], w[:, 2]
        out = np.zeros((nw // 3, 32, m), dtype=np.uint32)
        for j in range(10):                                       # codes 0..9 in word 0
            out[:, j] = (w0 >> np.uint32(3 * j)) & 7
        out[:, 10] = ((w0 >> np.uint32(30)) & 3) | ((w1 & 1) << 2)   # split 2 + 1
        for j in range(10):                                       # codes 11..20, word 1 from bit 1
            out[:, 11 + j] = (w1 >> np.uint32(3 * j + 1)) & 7
        out[:, 21] = ((w1 >> np.uint32(31)) & 1) | ((w2 & 3) << 1)   # split 1 + 2
        for j in range(10):                                       # codes 22..31, word 2 from bit 2
            out[:, 22 + j] = (w2 >> np.uint32(3 * j + 2)) & 7
        return out.reshape(nw // 3 * 32, m)
    raise Bad("GPTQ bits %d not supported" % bits)


def gptq_pack_cols(codes, bits):
    """codes [k, m] (each < 2^bits) -> words [k*bits/32, m], AutoGPTQ's loop."""
    k, m = codes.shape
    c = codes.astype(np.uint32)
    out = np.zeros((k * bits // 32, m), dtype=np.uint32)
    i = row = 0
    while row < out.shape[0]:
        if bits in (2, 4, 8):
            for j in range(32 // bits):
                out[row] |= c[i + j] << np.uint32(bits * j)
            i += 32 // bits
            row += 1
        else:  # 3
            for j in range(10):
                out[row] |= c[i + j] << np.uint32(3 * j)
            i += 10
            out[row] |= (c[i] << np.uint32(30)) & np.uint32(0xffffffff)
            row += 1
            out[row] |= (c[i] >> np.uint32(2)) & 1
            i += 1
            for j in range(10):
                out[row] |= c[i + j] << np.uint32(3 * j + 1)
            i += 10
            out[row] |= (c[i] << np.uint32(31)) & np.uint32(0xffffffff)
            row += 1
            out[row] |= (c[i] >> np.uint32(1)) & 3
            i += 1
            for j in range(10):
                out[row] |= c[i + j] << np.uint32(3 * j + 2)
            i += 10
            row += 1
    return out


def cmd_gptq(d):
    m = read_meta(d)
    rows, cols, bits = m["rows"], m["cols"], m["bits"]
    ng = m["ngroups"]
    if bits not in (2, 3, 4, 8) or (cols * bits) % 32 or (rows * bits) % 32:
        raise Bad("bad shape: rows %d cols %d bits %d" % (rows, cols, bits))
    qweight = load(d, "qweight.i32", "<i4", (cols * bits // 32, rows)).view(np.uint32)
    qzeros = load(d, "qzeros.i32", "<i4", (ng, rows * bits // 32)).view(np.uint32)
    scales = load(d, "scales.f16", "<f2", (ng, rows))
    g_idx = load(d, "g_idx.i32", "<i4", (cols,))
    codes = load(d, "codes.u8", "u1", (rows, cols))
    zeros = load(d, "zeros.u8", "u1", (rows, ng))
    expect = load(d, "expect.f32", "<f4", (rows, cols))
    if g_idx.min() < 0 or g_idx.max() >= ng:
        raise Bad("g_idx out of [0, %d)" % ng)

    q = gptq_unpack_cols(qweight, bits)                     # [cols, rows] = W^T codes
    first_diff("qweight codes (transposed)", q.astype(np.uint8), codes.T.copy())
    qz = gptq_unpack_cols(qzeros.T.copy(), bits).T          # [ng, rows], stored zero - 1
    z = qz.astype(np.int64) + 1                             # v1: add 1, no wrap
    first_diff("qzeros + 1 (transposed)", z, zeros.T.astype(np.int64))
    first_diff("qweight words", qweight, gptq_pack_cols(codes.T.copy(), bits))
    zm1 = (zeros.T.astype(np.int64) - 1) & ((1 << bits) - 1)
    first_diff("qzeros words", qzeros, gptq_pack_cols(zm1.T.copy(), bits).T.copy())

    s = scales.astype(np.float32)[g_idx]                    # [cols, rows]
    w = s * (q.astype(np.float32) - z[g_idx].astype(np.float32))
    first_diff("dequantized W (transposed)", w.astype(np.float32), expect.T.copy())
    print("pack_check gptq: rows %d cols %d bits %d ngroups %d: %d codes, %d zeros, "
          "weights equal" % (rows, cols, bits, ng, q.size, z.size))


# ---- AWQ ----

def awq_unpack(words):
    """[k, m/8] int32 words -> [k, m] codes, as AutoAWQ unpack + reverse order."""
    k, nw = words.shape
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    v = (words[:, :, None] >> shifts[None, None, :]) & np.uint32(15)   # nibble order
    v = v.reshape(k, nw * 8)
    rev = np.arange(nw * 8).reshape(-1, 8)[:, AWQ_REVERSE_ORDER].reshape(-1)
    return v[:, rev]


def awq_pack(codes):
    """[k, m] codes -> [k, m/8] words, AutoAWQ's from_linear loop."""
    k, m = codes.shape
    c = codes.astype(np.uint32)
    out = np.zeros((k, m // 8), dtype=np.uint32)
    for col in range(m // 8):
        for i in range(8):
            out[:, col] |= c[:, col * 8 + AWQ_ORDER[i]] << np.uint32(i * 4)
    return out


def cmd_awq(d):
    m = read_meta(d)
    rows, cols, group = m["rows"], m["cols"], m["group"]
    ng = m["ngroups"]
    if rows % 8 or group <= 0 or ng != (cols + group - 1) // group:
        raise Bad("bad shape: rows %d cols %d group %d ngroups %d" % (rows, cols, group, ng))
    qweight = load(d, "qweight.i32", "<i4", (cols, rows // 8)).view(np.uint32)
    qzeros = load(d, "qzeros.i32", "<i4", (ng, rows // 8)).view(np.uint32)
    scales = load(d, "scales.f16", "<f2", (ng, rows))
    codes = load(d, "codes.u8", "u1", (rows, cols))
    zeros = load(d, "zeros.u8", "u1", (rows, ng))
    expect = load(d, "expect.f32", "<f4", (rows, cols))

    q = awq_unpack(qweight)                                 # [cols, rows]
    first_diff("qweight codes (transposed)", q.astype(np.uint8), codes.T.copy())
    z = awq_unpack(qzeros)                                  # [ng, rows]
    first_diff("qzeros (transposed)", z.astype(np.uint8), zeros.T.copy())
    first_diff("qweight words", qweight, awq_pack(codes.T.copy()))
    first_diff("qzeros words", qzeros, awq_pack(zeros.T.copy()))

    g = np.arange(cols) // group
    w = (q.astype(np.float32) - z[g].astype(np.float32)) * scales.astype(np.float32)[g]
    first_diff("dequantized W (transposed)", w.astype(np.float32), expect.T.copy())
    print("pack_check awq: rows %d cols %d group %d: %d codes, %d zeros, weights equal"
          % (rows, cols, group, q.size, z.size))


# ---- GPTQ's quantizer ----

def cmd_intq(d):
    m = read_meta(d)
    rows, cols, bits, group = m["rows"], m["cols"], m["bits"], m["group"]
    sym, fp16 = m["sym"], m["fp16"]
    f32 = np.float32
    maxq = (1 << bits) - 1
    glen = group if group > 0 else cols
    ng = (cols + glen - 1) // glen if cols else 1
    x = load(d, "x.f32", "<f4", (rows, cols))
    codes = load(d, "codes.u8", "u1", (rows, cols))
    scales = load(d, "scales.f32", "<f4", (rows, ng))
    zeros = load(d, "zeros.u8", "u1", (rows, ng))
    if not np.all(np.isfinite(x)):
        raise Bad("x must be finite")
    q = np.zeros((rows, cols), dtype=np.uint8)
    s_all = np.zeros((rows, ng), dtype=f32)
    z_all = np.zeros((rows, ng), dtype=np.uint8)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for g in range(ng):
            xg = x[:, g * glen:(g + 1) * glen]
            zero32 = np.zeros(rows, dtype=f32)
            xmin = np.minimum(xg.min(axis=1), zero32) if xg.shape[1] else zero32.copy()
            xmax = np.maximum(xg.max(axis=1), zero32) if xg.shape[1] else zero32.copy()
            if sym:
                xmax = np.maximum(np.abs(xmin), xmax)
                xmin = np.where(xmin < 0, -xmax, xmin)
            both = (xmin == 0) & (xmax == 0)
            xmin = np.where(both, f32(-1), xmin).astype(f32)
            xmax = np.where(both, f32(1), xmax).astype(f32)
            scale = ((xmax - xmin) / f32(maxq)).astype(f32)
            if sym:
                zero = np.full(rows, (maxq + 1) // 2, dtype=f32)
            else:
                zero = np.clip(np.rint(-xmin / scale), 0, maxq).astype(f32)
                zero = np.where(scale == 0, np.where(xmin < 0, f32(maxq), f32(0)), zero)
            if fp16:
                scale = scale.astype(np.float16).astype(f32)
            v = np.clip(np.rint(xg / scale[:, None]) + zero[:, None], 0, maxq)
            v = np.where((scale == 0)[:, None], zero[:, None], v)
            q[:, g * glen:(g + 1) * glen] = v.astype(np.uint8)
            s_all[:, g] = scale
            z_all[:, g] = zero.astype(np.uint8)
    first_diff("scales", scales, s_all)
    first_diff("zeros", zeros, z_all)
    first_diff("codes", codes, q)
    print("pack_check intq: rows %d cols %d bits %d group %d sym %d fp16 %d: equal"
          % (rows, cols, bits, group, sym, fp16))


# ---- FP8 E4M3 ----

def e4m3_encode(x):
    """float32 array -> uint8 E4M3 codes (nearest even, saturating, NaN -> 0x7f)."""
    with np.errstate(invalid="ignore", over="ignore"):   # signalling NaNs, infinities
        a = np.abs(x.astype(np.float64))
        _, e2 = np.frexp(a)                   # a = m * 2^e2, m in [0.5, 1)
        e = e2.astype(np.int64) - 1           # a in [2^e, 2^(e+1))
        e = np.where(a < 2.0 ** -6, -6, e)    # subnormal binade (and 0)
        r = np.rint(np.ldexp(a, (3 - e).astype(np.int32)))   # units of 2^(e-3): exact
    sign = np.where(np.signbit(x), 0x80, 0).astype(np.int64)
    r = np.where(np.isfinite(r), r, 0).astype(np.int64)
    code = np.where((e == -6) & (r < 8), r, (e + 7) * 8 + (r - 8))
    code = np.where(a >= 448.0, 0x7e, code)   # includes infinity
    code = code | sign
    code = np.where(np.isnan(x), 0x7f, code)
    return code.astype(np.uint8)


def e4m3_decode(b):
    e, m = (b >> 3) & 15, b & 7
    if e == 15 and m == 7:
        v = float("nan")
    elif e == 0:
        v = m * 2.0 ** -9
    else:
        v = (1 + m / 8.0) * 2.0 ** (e - 7)
    return -v if b & 0x80 else v


def cmd_e4m3(d):
    x = np.fromfile(os.path.join(d, "x.f32"), dtype="<f4")
    codes = load(d, "codes.u8", "u1", (x.size,))
    table = load(d, "table.f32", "<f4", (256,))
    for b in range(256):
        want = e4m3_decode(b)
        got = float(table[b])
        if want != want:
            ok = got != got and np.signbit(table[b]) == bool(b & 0x80)
        else:
            ok = got == want and np.signbit(table[b]) == bool(b & 0x80)
        if not ok:
            raise Bad("decode 0x%02x: got %r, expected %r" % (b, got, want))
    want = e4m3_encode(x)
    bad = np.nonzero(codes != want)[0]
    if len(bad):
        lines = ["encode: %d of %d differ" % (len(bad), x.size)]
        for i in bad[:5]:
            lines.append("  x=%r (0x%08x): got 0x%02x, expected 0x%02x"
                         % (float(x[i]), int(x.view(np.uint32)[i]), codes[i], want[i]))
        raise Bad("\n".join(lines))
    print("pack_check e4m3: 256 codes decode, %d values encode: equal" % x.size)


COMMANDS = {"gptq": cmd_gptq, "awq": cmd_awq, "intq": cmd_intq, "e4m3": cmd_e4m3}


def main(argv):
    if len(argv) != 3 or argv[1] not in COMMANDS:
        sys.stderr.write("usage: pack_check.py gptq|awq|intq|e4m3 DIR\n")
        return 2
    try:
        COMMANDS[argv[1]](argv[2])
    except Bad as e:
        sys.stderr.write("pack_check %s: %s\n" % (argv[1], e))
        return 1
    except (OSError, KeyError, ValueError) as e:
        sys.stderr.write("pack_check %s: cannot read %s: %s\n" % (argv[1], argv[2], e))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
