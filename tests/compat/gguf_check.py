#!/usr/bin/env python3
"""gguf_check: an independent GGUF v3 reader, checker and tiny writer.

Written from the published GGUF specification (ggml docs/gguf.md) with only
the Python standard library and numpy, so that it shares no code with
mcbuild's C reader and writer (runtime/gguf.c).  It is the second opinion in
tests/compat/run.sh.

Commands:
  summary FILE
      Parse and validate FILE; print the header, every key (arrays shortened)
      and every tensor.  Exit 1 with a message on any violation.
  types FILE
      Print "name type" for every tensor, in file order.
  q8check QUANT.gguf F32.gguf
      For every tensor of QUANT.gguf, compare with the F32 tensor of the same
      name in F32.gguf: Q8_0 tensors must carry exactly the codes and fp16
      scales of the numpy reference Q8_0 quantizer below (ggml's
      quantize_row_q8_0_ref semantics); F16 tensors must equal the F32 values
      rounded to fp16 (nearest even); F32 tensors must be equal bit for bit.
      Any other type is reported as unchecked (and fails: nothing here should
      write one).  Prints counts; exit 1 on any mismatch.
  llama2c-to-gguf [--q8] [--align N] MODEL.bin OUT.gguf
      Convert a llama2.c checkpoint to a llama-architecture GGUF with the keys
      and the 512-token dummy vocabulary of ../shared/ref/ORACLE.md.  Weights
      are F32; with --q8, 2-D tensors whose rows (ne[0]) divide into blocks of
      32 are written as Q8_0 with the numpy reference quantizer and the other
      2-D tensors as F16 (llama-quantize's fallback); 1-D tensors stay F32.
      --align N writes general.alignment = N (a power of two; default 32,
      not written).

Validation rules (what ggml's gguf reader enforces, plus the spec): magic
"GGUF", version 3 (2 accepted), known value types, bool 0/1, UTF-8 strings,
unique keys, general.alignment a u32 power of two (default 32), tensor names
unique, non-empty and under 64 bytes, 1..4 dims, every ne >= 1 (0 accepted
with a warning), known tensor type, ne[0] a multiple of the type's block
size, each offset equal to the running sum of the previous tensors' sizes
each padded to the alignment, the data section starting at the first aligned
position after the tensor infos, and every tensor inside the file.
"""

import struct
import sys

try:
    import numpy as np
except ImportError:  # pragma: no cover
    sys.exit("gguf_check: numpy is missing (Debian: apt-get install python3-numpy; "
             "or run make deps)")

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGN = 32
MAX_NAME = 63  # names are shorter than 64 bytes
MAX_DIMS = 4

# metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}
VTYPE_NAME = {U8: "u8", I8: "i8", U16: "u16", I16: "i16", U32: "u32", I32: "i32",
              F32: "f32", BOOL: "bool", STR: "str", ARR: "arr", U64: "u64",
              I64: "i64", F64: "f64"}

# ggml tensor types: id -> (name, elements per block, bytes per block)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 30: ("BF16", 1, 2),
}
T_F32, T_F16, T_Q8_0 = 0, 1, 8
QK8_0 = 32
Q8_0_DTYPE = np.dtype([("d", "<u2"), ("qs", "i1", (QK8_0,))])
assert Q8_0_DTYPE.itemsize == 34


class GGUFError(Exception):
    pass


def align_up(x, a):
    return x + (a - x % a) % a


class Reader:
    """Parse and validate a GGUF file held in memory."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        self.kv = {}          # key -> (vtype, value)
        self.kv_order = []
        self.tensors = []     # dicts: name, ne, type, offset, nbytes
        self.warnings = []
        self._parse()

    def _fail(self, msg, at=None):
        at = self.pos if at is None else at
        raise GGUFError("%s: offset %d: %s" % (self.path, at, msg))

    def _take(self, n, what):
        if n < 0 or self.pos + n > len(self.buf):
            self._fail("truncated %s (need %d bytes, %d left)"
                       % (what, n, len(self.buf) - self.pos))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _scalar(self, vtype, what):
        fmt = SCALAR_FMT[vtype]
        v = struct.unpack(fmt, self._take(struct.calcsize(fmt), what))[0]
        if vtype == BOOL:
            if v not in (0, 1):
                self._fail("bool %s has value %d (must be 0 or 1)" % (what, v),
                           self.pos - 1)
            v = bool(v)
        return v

    def _str(self, what):
        n = self._scalar(U64, what + " length")
        at = self.pos
        b = self._take(n, what)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            self._fail("%s is not UTF-8" % what, at)

    def _value(self, vtype, what, depth=0):
        if vtype in SCALAR_FMT:
            return self._scalar(vtype, what)
        if vtype == STR:
            return self._str(what)
        if vtype == ARR:
            at = self.pos
            etype = self._scalar(U32, what + " element type")
            count = self._scalar(U64, what + " count")
            if etype not in VTYPE_NAME:
                self._fail("%s has unknown element type %d" % (what, etype), at)
            if etype == ARR:
                self.warnings.append("%s: nested array (ggml's reader rejects these)" % what)
                if depth > 8:
                    self._fail("%s: arrays nested too deeply" % what, at)
            if etype in SCALAR_FMT and etype != BOOL:
                size = struct.calcsize(SCALAR_FMT[etype])
                if count > (len(self.buf) - self.pos) // size:
                    self._fail("%s: %d elements do not fit in the file" % (what, count), at)
                raw = self._take(size * count, what)
                return (etype, np.frombuffer(raw, dtype=np.dtype(SCALAR_FMT[etype])).copy())
            if count > len(self.buf) - self.pos:  # every element takes >= 1 byte
                self._fail("%s: %d elements do not fit in the file" % (what, count), at)
            return (etype, [self._value(etype, "%s[%d]" % (what, i), depth + 1)
                            for i in range(count)])
        self._fail("%s has unknown value type %d" % (what, vtype))

    def _parse(self):
        if self._take(4, "magic") != GGUF_MAGIC:
            self._fail("bad magic (not a GGUF file)", 0)
        self.version = self._scalar(U32, "version")
        if self.version not in (2, 3):
            self._fail("unsupported version %d" % self.version, 4)
        n_tensors = self._scalar(U64, "tensor count")
        n_kv = self._scalar(U64, "key count")
        # each kv takes >= 12 bytes, each tensor info >= 24
        if n_kv > len(self.buf) // 12 or n_tensors > len(self.buf) // 24:
            self._fail("counts (%d tensors, %d keys) exceed the file size"
                       % (n_tensors, n_kv), 8)
        for i in range(n_kv):
            at = self.pos
            key = self._str("key %d" % i)
            if not key:
                self._fail("key %d is empty" % i, at)
            if key in self.kv:
                self._fail("duplicate key '%s'" % key, at)
            vtype = self._scalar(U32, "type of '%s'" % key)
            if vtype not in VTYPE_NAME:
                self._fail("key '%s' has unknown type %d" % (key, vtype), self.pos - 4)
            self.kv[key] = (vtype, self._value(vtype, "'%s'" % key))
            self.kv_order.append(key)
        self.alignment = DEFAULT_ALIGN
        if "general.alignment" in self.kv:
            vtype, a = self.kv["general.alignment"]
            if vtype != U32:
                self._fail("general.alignment has type %s (must be u32)" % VTYPE_NAME[vtype])
            if a == 0 or a & (a - 1):
                self._fail("general.alignment %d is not a power of two" % a)
            self.alignment = a
        names = set()
        for i in range(n_tensors):
            at = self.pos
            name = self._str("tensor %d name" % i)
            if not name or len(name.encode()) > MAX_NAME:
                self._fail("tensor %d name '%s' is empty or longer than %d bytes"
                           % (i, name, MAX_NAME), at)
            if name in names:
                self._fail("duplicate tensor '%s'" % name, at)
            names.add(name)
            n_dims = self._scalar(U32, "'%s' n_dims" % name)
            if n_dims < 1 or n_dims > MAX_DIMS:
                self._fail("tensor '%s' has %d dims (1..%d)" % (name, n_dims, MAX_DIMS),
                           self.pos - 4)
            ne = [self._scalar(U64, "'%s' ne[%d]" % (name, d)) for d in range(n_dims)]
            ttype = self._scalar(U32, "'%s' type" % name)
            offset = self._scalar(U64, "'%s' offset" % name)
            if ttype not in GGML_TYPES:
                self._fail("tensor '%s' has unknown type %d" % (name, ttype), at)
            tname, blck, bsize = GGML_TYPES[ttype]
            if any(n == 0 for n in ne):
                self.warnings.append("tensor '%s' is empty (a zero in ne)" % name)
            numel = 1
            for n in ne:
                numel *= n
            if numel >= 1 << 62:
                self._fail("tensor '%s' has too many elements" % name, at)
            if ne[0] % blck:
                self._fail("tensor '%s': ne[0] = %d is not a multiple of the %s block %d"
                           % (name, ne[0], tname, blck), at)
            nbytes = numel // blck * bsize
            self.tensors.append(dict(name=name, ne=ne, type=ttype, offset=offset,
                                     nbytes=nbytes, info_at=at))
        self.data_offset = align_up(self.pos, self.alignment)
        if self.data_offset > len(self.buf) and self.tensors:
            self._fail("data section starts past the end of the file")
        expect = 0
        for t in self.tensors:
            if t["offset"] % self.alignment:
                self._fail("tensor '%s' offset %d is not a multiple of the alignment %d"
                           % (t["name"], t["offset"], self.alignment), t["info_at"])
            if t["offset"] != expect:
                self._fail("tensor '%s' offset %d is not the running padded sum %d"
                           % (t["name"], t["offset"], expect), t["info_at"])
            end = self.data_offset + t["offset"] + t["nbytes"]
            if end > len(self.buf):
                self._fail("tensor '%s' data [%d, %d) runs past the end of the file (%d)"
                           % (t["name"], end - t["nbytes"], end, len(self.buf)),
                           t["info_at"])
            expect = align_up(t["offset"] + t["nbytes"], self.alignment)
        self.by_name = {t["name"]: t for t in self.tensors}
        # padding bytes between the infos and the data should be zero
        if any(self.buf[self.pos:min(self.data_offset, len(self.buf))]):
            self.warnings.append("non-zero padding before the data section")

    def raw(self, name):
        t = self.by_name[name]
        a = self.data_offset + t["offset"]
        return self.buf[a:a + t["nbytes"]]

    def array(self, name):
        """numpy view of a tensor's data: F32/F16 as (rows, ne[0]) floats,
        Q8_0 as a structured array of blocks."""
        t = self.by_name[name]
        raw = self.raw(name)
        if t["type"] == T_F32:
            return np.frombuffer(raw, dtype="<f4")
        if t["type"] == T_F16:
            return np.frombuffer(raw, dtype="<f2")
        if t["type"] == T_Q8_0:
            return np.frombuffer(raw, dtype=Q8_0_DTYPE)
        raise GGUFError("%s: tensor '%s' has type %s: not readable here"
                        % (self.path, name, GGML_TYPES[t["type"]][0]))


# ---------------------------------------------------------------------------
# numpy reference Q8_0 (ggml quantize_row_q8_0_ref semantics)

def q8_0_ref(x):
    """x: float32 array whose size is a multiple of 32 (blocks run along the
    flattened order, i.e. along ne[0]).  Returns (d, qs): d uint16 fp16 bits
    (nblocks,), qs int8 (nblocks, 32).

    amax = max|x| per block (NaN skipped), d = amax / 127 in float32,
    id = d ? 1/d : 0 in float32, v = x * id in float32, q = roundf(v) with
    halves away from zero (computed in float64, where |v| + 0.5 is exact for
    every float32 v that matters), d stored as fp16 rounded to nearest even.
    A non-finite v or |q| > 127 (non-finite input only) gives code 0.
    """
    b = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK8_0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = np.abs(b)
        amax = np.where(np.isnan(a), np.float32(0), a).max(axis=1).astype(np.float32)
        d = (amax / np.float32(127.0)).astype(np.float32)
        inv = np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, np.float32(1)),
                       np.float32(0)).astype(np.float32)
        v = (b * inv[:, None]).astype(np.float32).astype(np.float64)
        q = np.sign(v) * np.floor(np.abs(v) + 0.5)
        q = np.where(np.abs(q) <= 127, q, 0)
        dh = d.astype(np.float16).view(np.uint16)  # amax >= 127*65520: inf, as ggml
    return dh, q.astype(np.int8)


def f16_bits(x):
    with np.errstate(over="ignore"):
        return np.asarray(x, dtype=np.float32).astype(np.float16).view(np.uint16)


# ---------------------------------------------------------------------------
# numpy reference Q4_0, Q4_1, Q4_K, Q6_K (ggml ggml-quants.c quantize_row_*_ref,
# make_qkx2_quants, make_qx_quants, nearest_int), written from ggml's source
# semantics: every value is a float32 and every operation a single float32
# operation (no fused multiply-add), sums accumulate in element order, and
# comparisons keep ggml's first-occurrence and strictness rules.  The
# computation is vectorised across blocks; loops run over positions only, so
# each block sees ggml's sequence of roundings.  ggml casts
# (int8_t)(x*id + 8.5f) with undefined behaviour out of range; mcbuild (and
# these ports) give such a code 0.

F = np.float32
T_Q4_0, T_Q4_1, T_Q5_0, T_Q4_K, T_Q6_K = 2, 3, 6, 12, 14
QK4, QKK = 32, 256
GROUP_MAX_EPS = F(1e-15)
FLT_MAX = F(np.finfo(np.float32).max)


def nearest_int(v):
    """ggml nearest_int: (bits of (v + 1.5*2^23) & 0x7fffff) - 0x400000."""
    with np.errstate(all="ignore"):
        s = (np.asarray(v, dtype=F) + F(12582912.0)).astype(F)
    return (s.view(np.int32).astype(np.int64) & 0x007fffff) - 0x00400000


def f16_to_f32(bits):
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(F)


def trunc_code(v, hi):
    """MIN(hi, (int8_t)v) kept in a byte; NaN / out of int8 range -> 0."""
    with np.errstate(invalid="ignore"):
        ok = (v > F(-129.0)) & (v < F(128.0))
        c = np.where(ok, np.trunc(np.where(ok, v, F(0))), 0).astype(np.int64)
    return np.minimum(c, hi) & 0xFF


def q4_0_ref(x):
    """x float32 (size % 32 == 0) -> Q4_0 block bytes (uint8 (nb, 18))."""
    b = np.ascontiguousarray(x, dtype=F).reshape(-1, QK4)
    rows = np.arange(b.shape[0])
    with np.errstate(all="ignore"):
        a = np.abs(b)
        a = np.where(np.isnan(a), F(-1), a)
        i = np.argmax(a, axis=1)                 # the first of largest magnitude
        vmax = np.where(a[rows, i] > 0, b[rows, i], F(0)).astype(F)
        d = (vmax / F(-8)).astype(F)
        inv = np.where(d != 0, F(1) / np.where(d != 0, d, F(1)), F(0)).astype(F)
        q = trunc_code((b * inv[:, None]).astype(F) + F(8.5), 15)
    out = np.empty((b.shape[0], 18), np.uint8)
    out[:, 0:2] = f16_bits(d).reshape(-1, 1).view(np.uint8)
    out[:, 2:] = (q[:, :16] | (q[:, 16:] << 4)) & 0xFF
    return out


def q4_1_ref(x):
    """x float32 (size % 32 == 0) -> Q4_1 block bytes (uint8 (nb, 20))."""
    b = np.ascontiguousarray(x, dtype=F).reshape(-1, QK4)
    with np.errstate(all="ignore"):
        mn = np.where(np.isnan(b), FLT_MAX, b).min(axis=1).astype(F)
        mx = np.where(np.isnan(b), -FLT_MAX, b).max(axis=1).astype(F)
        d = ((mx - mn).astype(F) / F(15)).astype(F)
        inv = np.where(d != 0, F(1) / np.where(d != 0, d, F(1)), F(0)).astype(F)
        v = ((b - mn[:, None]).astype(F) * inv[:, None]).astype(F) + F(0.5)
        q = trunc_code(v.astype(F), 15)
    out = np.empty((b.shape[0], 20), np.uint8)
    out[:, 0:2] = f16_bits(d).reshape(-1, 1).view(np.uint8)
    out[:, 2:4] = f16_bits(mn).reshape(-1, 1).view(np.uint8)
    out[:, 4:] = (q[:, :16] | (q[:, 16:] << 4)) & 0xFF
    return out


def _wsum(w, v):
    """sequential float32 sum over axis 1 of w*v (ggml's loop order)."""
    s = np.zeros(w.shape[0], F)
    for i in range(w.shape[1]):
        s = (s + (w[:, i] * v[:, i]).astype(F)).astype(F)
    return s


def make_qkx2(xs, w, nmax, rmin, rdelta, nstep):
    """ggml make_qkx2_quants (use_mad false) on every row of xs (N, n).
    Returns (scale (N,), the_min (N,), L (N, n))."""
    n = xs.shape[1]
    with np.errstate(all="ignore"):
        mn, mx = xs[:, 0].copy(), xs[:, 0].copy()
        sum_w = w[:, 0].copy()
        sum_x = (sum_w * xs[:, 0]).astype(F)
        for i in range(1, n):
            mn = np.where(xs[:, i] < mn, xs[:, i], mn)
            mx = np.where(xs[:, i] > mx, xs[:, i], mx)
            sum_w = (sum_w + w[:, i]).astype(F)
            sum_x = (sum_x + (w[:, i] * xs[:, i]).astype(F)).astype(F)
        mn = np.where(mn > 0, F(0), mn).astype(F)
        flat = mx == mn
        rng = np.where(flat, F(1), (mx - mn).astype(F)).astype(F)
        xm = (xs - mn[:, None]).astype(F)
        iscale = (F(nmax) / rng).astype(F)
        scale = (F(1) / iscale).astype(F)
        L = np.clip(nearest_int((iscale[:, None] * xm).astype(F)), 0, nmax)
        diff = (((scale[:, None] * L.astype(F)).astype(F) + mn[:, None]).astype(F) - xs).astype(F)
        best = _wsum(w, (diff * diff).astype(F))
        for k in range(nstep + 1):
            # ggml updates min inside this loop: later candidates use it
            rng = np.where(flat, F(1), (mx - mn).astype(F)).astype(F)
            xm = (xs - mn[:, None]).astype(F)
            isc = ((F(rmin) + (F(rdelta) * F(k)).astype(F)).astype(F) + F(nmax)).astype(F)
            isc = (isc / rng).astype(F)
            la = np.clip(nearest_int((isc[:, None] * xm).astype(F)), 0, nmax)
            lf = la.astype(F)
            sum_l = np.zeros(xs.shape[0], F)
            sum_l2 = np.zeros(xs.shape[0], F)
            sum_xl = np.zeros(xs.shape[0], F)
            for i in range(n):
                wl = (w[:, i] * lf[:, i]).astype(F)
                sum_l = (sum_l + wl).astype(F)
                sum_l2 = (sum_l2 + (wl * lf[:, i]).astype(F)).astype(F)
                sum_xl = (sum_xl + (wl * xs[:, i]).astype(F)).astype(F)
            D = ((sum_w * sum_l2).astype(F) - (sum_l * sum_l).astype(F)).astype(F)
            ts = (((sum_w * sum_xl).astype(F) - (sum_x * sum_l).astype(F)).astype(F) / D).astype(F)
            tm = (((sum_l2 * sum_x).astype(F) - (sum_l * sum_xl).astype(F)).astype(F) / D).astype(F)
            pos_min = tm > 0
            tm = np.where(pos_min, F(0), tm).astype(F)
            ts = np.where(pos_min, (sum_xl / sum_l2).astype(F), ts).astype(F)
            diff = (((ts[:, None] * lf).astype(F) + tm[:, None]).astype(F) - xs).astype(F)
            cur = _wsum(w, (diff * diff).astype(F))
            better = (D > 0) & (cur < best) & ~flat
            L = np.where(better[:, None], la, L)
            best = np.where(better, cur, best)
            scale = np.where(better, ts, scale)
            mn = np.where(better, tm, mn)
        L = np.where(flat[:, None], 0, L)
        scale = np.where(flat, F(0), scale).astype(F)
    return scale, (-mn).astype(F), L


def q4_k_ref(x):
    """x float32 (size % 256 == 0) -> Q4_K block bytes (uint8 (nb, 144))."""
    b = np.ascontiguousarray(x, dtype=F).reshape(-1, QKK)
    nb = b.shape[0]
    xs = b.reshape(nb * 8, 32)
    with np.errstate(all="ignore"):
        s2 = _wsum(xs, xs)
        av = np.sqrt((s2 / F(32)).astype(F)).astype(F)
        w = (av[:, None] + np.abs(xs)).astype(F)
        sc, mins, L = make_qkx2(xs, w, 15, -1.0, 0.1, 20)
        sc, mins, L = sc.reshape(nb, 8), mins.reshape(nb, 8), L.reshape(nb, 8, 32)
        ms = np.zeros(nb, F)
        mm = np.zeros(nb, F)
        for j in range(8):
            ms = np.where(sc[:, j] > ms, sc[:, j], ms)
            mm = np.where(mins[:, j] > mm, mins[:, j], mm)
        inv_s = np.where(ms > 0, F(63) / np.where(ms > 0, ms, F(1)), F(0)).astype(F)
        inv_m = np.where(mm > 0, F(63) / np.where(mm > 0, mm, F(1)), F(0)).astype(F)
        ls = np.minimum(nearest_int((inv_s[:, None] * sc).astype(F)) & 0xFF, 63)
        lm = np.minimum(nearest_int((inv_m[:, None] * mins).astype(F)) & 0xFF, 63)
        dh = f16_bits((ms / F(63)).astype(F))
        mh = f16_bits((mm / F(63)).astype(F))
        d0, dmin0 = f16_to_f32(dh), f16_to_f32(mh)
        dd = (d0[:, None] * ls.astype(F)).astype(F)
        dm = (dmin0[:, None] * lm.astype(F)).astype(F)
        l = nearest_int((((b.reshape(nb, 8, 32) + dm[:, :, None]).astype(F))
                         / np.where(dd != 0, dd, F(1))[:, :, None]).astype(F))
        L = np.where((dd != 0)[:, :, None], np.clip(l, 0, 15), L).reshape(nb, QKK)
    out = np.zeros((nb, 144), np.uint8)
    out[:, 0:2] = dh.reshape(-1, 1).view(np.uint8)
    out[:, 2:4] = mh.reshape(-1, 1).view(np.uint8)
    scales = np.zeros((nb, 12), np.int64)
    for j in range(8):
        if j < 4:
            scales[:, j] = ls[:, j]
            scales[:, j + 4] = lm[:, j]
        else:
            scales[:, j + 4] = (ls[:, j] & 0xF) | ((lm[:, j] & 0xF) << 4)
            scales[:, j - 4] |= (ls[:, j] >> 4) << 6
            scales[:, j] |= (lm[:, j] >> 4) << 6
    out[:, 4:16] = scales & 0xFF
    for c in range(4):
        out[:, 16 + 32 * c:16 + 32 * c + 32] = L[:, 64 * c:64 * c + 32] | (L[:, 64 * c + 32:64 * c + 64] << 4)
    return out


def make_qx(xs, nmax):
    """ggml make_qx_quants(n, nmax, x, L, rmse_type 1, NULL) on every row of
    xs (N, n).  Returns (scale (N,), L (N, n) = code + nmax)."""
    N, n = xs.shape
    with np.errstate(all="ignore"):
        amax = np.zeros(N, F)
        mx = np.zeros(N, F)
        for i in range(n):
            a = np.abs(xs[:, i])
            up = a > amax
            amax = np.where(up, a, amax)
            mx = np.where(up, xs[:, i], mx)
        zero = amax < GROUP_MAX_EPS
        mxs = np.where(zero, F(1), mx).astype(F)
        w = (xs * xs).astype(F)

        def codes(isc):
            return np.clip(nearest_int((isc[:, None] * xs).astype(F)), -nmax, nmax - 1)

        def sums(l):
            lf = l.astype(F)
            slx = np.zeros(N, F)
            sl2 = np.zeros(N, F)
            for i in range(n):
                slx = (slx + ((w[:, i] * xs[:, i]).astype(F) * lf[:, i]).astype(F)).astype(F)
                sl2 = (sl2 + ((w[:, i] * lf[:, i]).astype(F) * lf[:, i]).astype(F)).astype(F)
            return slx, sl2

        l = codes((F(-nmax) / mxs).astype(F))
        L = l + nmax
        slx, sl2 = sums(l)
        scale = np.where(sl2 != 0, (slx / np.where(sl2 != 0, sl2, F(1))).astype(F), F(0)).astype(F)
        best = (scale * slx).astype(F)
        for k in range(-9, 10):
            if k == 0:
                continue
            isc = ((-((F(nmax) + (F(0.1) * F(k)).astype(F)).astype(F))) / mxs).astype(F)
            l = codes(isc)
            slx, sl2 = sums(l)
            up = (sl2 > 0) & ((slx * slx).astype(F) > (best * sl2).astype(F))
            L = np.where(up[:, None], l + nmax, L)
            ns = (slx / np.where(up, sl2, F(1))).astype(F)
            scale = np.where(up, ns, scale).astype(F)
            best = np.where(up, (ns * slx).astype(F), best).astype(F)
        L = np.where(zero[:, None], 0, L)
        scale = np.where(zero, F(0), scale).astype(F)
    return scale, L


def q6_k_ref(x):
    """x float32 (size % 256 == 0) -> Q6_K block bytes (uint8 (nb, 210))."""
    b = np.ascontiguousarray(x, dtype=F).reshape(-1, QKK)
    nb = b.shape[0]
    with np.errstate(all="ignore"):
        sc, L = make_qx(b.reshape(nb * 16, 16), 32)
        sc, L = sc.reshape(nb, 16), L.reshape(nb, 16, 16)
        mabs = np.zeros(nb, F)
        msc = np.zeros(nb, F)
        for j in range(16):
            a = np.abs(sc[:, j])
            up = a > mabs
            mabs = np.where(up, a, mabs)
            msc = np.where(up, sc[:, j], msc)
        zero = mabs < GROUP_MAX_EPS
        isc = (F(-128) / np.where(zero, F(1), msc)).astype(F)
        dh = f16_bits((F(1) / isc).astype(F))
        s8 = np.minimum(nearest_int((isc[:, None] * sc).astype(F)), 127)
        s8 = ((s8 & 0xFF) ^ 0x80) - 0x80                   # as an int8_t
        dd = (f16_to_f32(dh)[:, None] * s8.astype(F)).astype(F)
        l = nearest_int((b.reshape(nb, 16, 16) / np.where(dd != 0, dd, F(1))[:, :, None]).astype(F))
        L = np.where((dd != 0)[:, :, None], np.clip(l, -32, 31) + 32, L).reshape(nb, QKK)
    out = np.zeros((nb, 210), np.uint8)
    for h in range(2):
        u = L[:, 128 * h:128 * h + 128]
        out[:, 64 * h:64 * h + 32] = (u[:, 0:32] & 0xF) | ((u[:, 64:96] & 0xF) << 4)
        out[:, 64 * h + 32:64 * h + 64] = (u[:, 32:64] & 0xF) | ((u[:, 96:128] & 0xF) << 4)
        out[:, 128 + 32 * h:128 + 32 * h + 32] = ((u[:, 0:32] >> 4) | ((u[:, 32:64] >> 4) << 2)
                                                | ((u[:, 64:96] >> 4) << 4) | ((u[:, 96:128] >> 4) << 6))
    out[:, 192:208] = s8 & 0xFF
    out[:, 208:210] = dh.reshape(-1, 1).view(np.uint8)
    out[zero] = 0
    return out


def q8_0_blocks(x):
    d, qs = q8_0_ref(x)
    out = np.empty((d.size, 34), np.uint8)
    out[:, 0:2] = d.reshape(-1, 1).view(np.uint8)
    out[:, 2:] = qs.view(np.uint8)
    return out


# ggml type id -> reference quantizer of a float32 tensor to block bytes
QUANTIZERS = {T_Q8_0: q8_0_blocks, T_Q4_0: q4_0_ref, T_Q4_1: q4_1_ref,
              T_Q4_K: q4_k_ref, T_Q6_K: q6_k_ref}


# ---------------------------------------------------------------------------
# writer

class Writer:
    def __init__(self, alignment=DEFAULT_ALIGN):
        self.alignment = alignment
        self.kv = []
        self.tensors = []  # (name, ne, type, bytes)

    def add(self, key, vtype, value, etype=None):
        self.kv.append((key, vtype, value, etype))

    def add_tensor(self, name, ne, ttype, data):
        tname, blck, bsize = GGML_TYPES[ttype]
        numel = 1
        for n in ne:
            numel *= n
        assert ne[0] % blck == 0 and len(data) == numel // blck * bsize, name
        self.tensors.append((name, list(ne), ttype, bytes(data)))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _val(self, vtype, v, etype):
        if vtype == STR:
            return self._str(v)
        if vtype == ARR:
            out = [struct.pack("<IQ", etype, len(v))]
            if etype == STR:
                out += [self._str(s) for s in v]
            else:
                out.append(np.asarray(v, dtype=np.dtype(SCALAR_FMT[etype])).tobytes())
            return b"".join(out)
        return struct.pack(SCALAR_FMT[vtype], v)

    def write(self, path):
        out = [GGUF_MAGIC, struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))]
        for key, vtype, v, etype in self.kv:
            out += [self._str(key), struct.pack("<I", vtype), self._val(vtype, v, etype)]
        off = 0
        for name, ne, ttype, data in self.tensors:
            out += [self._str(name), struct.pack("<I", len(ne)),
                    struct.pack("<%dQ" % len(ne), *ne), struct.pack("<IQ", ttype, off)]
            off = align_up(off + len(data), self.alignment)
        head = b"".join(out)
        body = [head, b"\0" * (align_up(len(head), self.alignment) - len(head))]
        for name, ne, ttype, data in self.tensors:
            body += [data, b"\0" * (align_up(len(data), self.alignment) - len(data))]
        with open(path, "wb") as f:
            f.write(b"".join(body))


# ---------------------------------------------------------------------------
# llama2.c -> GGUF

def read_llama2c(path):
    """Returns (config dict, list of (gguf name, PyTorch shape, float32 array))."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 28:
        raise GGUFError("%s: too short for a llama2.c header" % path)
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len) <= 0 or dim % n_heads \
            or n_heads % n_kv:
        raise GGUFError("%s: implausible llama2.c header %r" % (path, (dim, hidden, n_layers,
                        n_heads, n_kv, vocab, seq_len)))
    hs = dim // n_heads
    kv_dim = n_kv * hs
    w = np.frombuffer(raw, dtype="<f4", offset=28)
    pos = [0]

    def take(*shape):
        n = int(np.prod(shape))
        if pos[0] + n > w.size:
            raise GGUFError("%s: truncated llama2.c weights" % path)
        a = w[pos[0]:pos[0] + n].reshape(shape)
        pos[0] += n
        return a

    L = n_layers
    emb = take(vocab, dim)
    rms_att = take(L, dim)
    wq = take(L, dim, dim)
    wk = take(L, kv_dim, dim)
    wv = take(L, kv_dim, dim)
    wo = take(L, dim, dim)
    rms_ffn = take(L, dim)
    w1 = take(L, hidden, dim)
    w2 = take(L, dim, hidden)
    w3 = take(L, hidden, dim)
    rms_final = take(dim)
    take(seq_len * hs // 2)  # legacy RoPE cos table (unused)
    take(seq_len * hs // 2)  # sin
    wcls = None if shared else take(vocab, dim)
    t = [("token_embd.weight", emb)]
    for i in range(L):
        p = "blk.%d." % i
        # llama2.c already pairs (2i, 2i+1) for RoPE, llama.cpp's normal mode:
        # no Q/K permutation (ORACLE.md)
        t += [(p + "attn_norm.weight", rms_att[i]), (p + "attn_q.weight", wq[i]),
              (p + "attn_k.weight", wk[i]), (p + "attn_v.weight", wv[i]),
              (p + "attn_output.weight", wo[i]), (p + "ffn_norm.weight", rms_ffn[i]),
              (p + "ffn_gate.weight", w1[i]), (p + "ffn_down.weight", w2[i]),
              (p + "ffn_up.weight", w3[i])]
    t.append(("output_norm.weight", rms_final))
    if wcls is not None:
        t.append(("output.weight", wcls))
    cfg = dict(dim=dim, hidden=hidden, n_layers=L, n_heads=n_heads, n_kv=n_kv, vocab=vocab,
               seq_len=seq_len, head_size=hs)
    return cfg, t


def dummy_vocab(n):
    """ORACLE.md's SentencePiece-style vocabulary: <unk> <s> </s>, 256 byte
    tokens, then fillers.  Token types: 1 normal, 2 unknown, 3 control, 6 byte."""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    types = [2, 3, 3] + [6] * 256
    i = 0
    while len(toks) < n:
        toks.append("\u2581tok%d" % i)
        types.append(1)
        i += 1
    toks, types = toks[:n], types[:n]
    scores = [0.0] * 3 + [0.0] * 256 + [-float(k) for k in range(max(0, n - 259))]
    return toks, scores[:n], types


def llama2c_to_gguf(src, dst, q8=False, align=DEFAULT_ALIGN):
    cfg, tensors = read_llama2c(src)
    w = Writer(align)
    w.add("general.architecture", STR, "llama")
    if align != DEFAULT_ALIGN:
        w.add("general.alignment", U32, align)
    w.add("general.name", STR, "stories260K")
    w.add("general.file_type", U32, 7 if q8 else 0)
    if q8:
        w.add("general.quantization_version", U32, 2)
    w.add("llama.context_length", U32, cfg["seq_len"])
    w.add("llama.embedding_length", U32, cfg["dim"])
    w.add("llama.block_count", U32, cfg["n_layers"])
    w.add("llama.feed_forward_length", U32, cfg["hidden"])
    w.add("llama.rope.dimension_count", U32, cfg["head_size"])
    w.add("llama.rope.freq_base", F32, 10000.0)
    w.add("llama.attention.head_count", U32, cfg["n_heads"])
    w.add("llama.attention.head_count_kv", U32, cfg["n_kv"])
    w.add("llama.attention.layer_norm_rms_epsilon", F32, 1e-5)
    toks, scores, types = dummy_vocab(cfg["vocab"])
    w.add("tokenizer.ggml.model", STR, "llama")
    w.add("tokenizer.ggml.tokens", ARR, toks, STR)
    w.add("tokenizer.ggml.scores", ARR, scores, F32)
    w.add("tokenizer.ggml.token_type", ARR, types, I32)
    w.add("tokenizer.ggml.bos_token_id", U32, 1)
    w.add("tokenizer.ggml.eos_token_id", U32, 2)
    w.add("tokenizer.ggml.unknown_token_id", U32, 0)
    counts = {}
    for name, a in tensors:
        ne = list(reversed(a.shape))  # PyTorch [out, in] -> ne [in, out]
        a = np.ascontiguousarray(a, dtype=np.float32)
        if q8 and a.ndim == 2 and ne[0] % QK8_0 == 0:
            d, qs = q8_0_ref(a)
            blocks = np.empty(d.size, dtype=Q8_0_DTYPE)
            blocks["d"], blocks["qs"] = d, qs
            w.add_tensor(name, ne, T_Q8_0, blocks.tobytes())
            counts["Q8_0"] = counts.get("Q8_0", 0) + 1
        elif q8 and a.ndim == 2:
            w.add_tensor(name, ne, T_F16, f16_bits(a).tobytes())
            counts["F16"] = counts.get("F16", 0) + 1
        else:
            w.add_tensor(name, ne, T_F32, a.astype("<f4").tobytes())
            counts["F32"] = counts.get("F32", 0) + 1
    w.write(dst)
    print("wrote %s: %d tensors (%s), %d keys" % (dst, len(tensors), ", ".join(
        "%d %s" % (n, k) for k, n in sorted(counts.items())), len(w.kv)))


# ---------------------------------------------------------------------------
# commands

def fmt_value(vtype, v):
    if vtype == ARR:
        etype, items = v
        head = ", ".join(repr(x.item() if hasattr(x, "item") else x) for x in list(items[:4]))
        more = ", ..." if len(items) > 4 else ""
        return "%s[%d] [%s%s]" % (VTYPE_NAME[etype], len(items), head, more)
    return "%s %r" % (VTYPE_NAME[vtype], v)


def cmd_summary(path):
    r = Reader(path)
    print("%s: GGUF v%d, %d keys, %d tensors, alignment %d, data at %d, file %d bytes"
          % (path, r.version, len(r.kv), len(r.tensors), r.alignment, r.data_offset,
             len(r.buf)))
    for k in r.kv_order:
        print("  kv %-45s %s" % (k, fmt_value(*r.kv[k])))
    for t in r.tensors:
        print("  tensor %-28s %-5s ne=%-16s offset=%d bytes=%d"
              % (t["name"], GGML_TYPES[t["type"]][0], "x".join(map(str, t["ne"])),
                 t["offset"], t["nbytes"]))
    for wmsg in r.warnings:
        print("  warning: %s" % wmsg)
    return 0


def cmd_types(path):
    for t in Reader(path).tensors:
        print("%s %s" % (t["name"], GGML_TYPES[t["type"]][0]))
    return 0


def cmd_q8check(qpath, fpath):
    q, f = Reader(qpath), Reader(fpath)
    bad = 0
    counts = {}
    missing = [n for n in f.by_name if n not in q.by_name]
    for name in missing:
        print("q8check: tensor '%s' is in %s but not in %s" % (name, fpath, qpath))
        bad += 1
    for t in q.tensors:
        name, tname = t["name"], GGML_TYPES[t["type"]][0]
        ft = f.by_name.get(name)
        if ft is None or ft["type"] != T_F32 or ft["ne"] != t["ne"]:
            print("q8check: '%s': no F32 tensor of shape %s in %s" % (name, t["ne"], fpath))
            bad += 1
            continue
        ref = f.array(name)
        if not np.all(np.isfinite(ref)):
            print("q8check: '%s': the F32 source has non-finite values" % name)
            bad += 1
            continue
        if t["type"] == T_Q8_0:
            blocks = q.array(name)
            d, qs = q8_0_ref(ref)
            nd = int(np.count_nonzero(blocks["d"] != d))
            nq = int(np.count_nonzero(blocks["qs"] != qs))
            if nd or nq:
                i = int(np.argmax((blocks["d"] != d) | (blocks["qs"] != qs).any(axis=1)))
                print("q8check: '%s' Q8_0: %d of %d scales and %d of %d codes differ "
                      "(first block %d: d %04x vs reference %04x)"
                      % (name, nd, d.size, nq, qs.size, i, blocks["d"][i], d[i]))
                bad += 1
        elif t["type"] == T_F16:
            n = int(np.count_nonzero(q.array(name).view(np.uint16) != f16_bits(ref)))
            if n:
                print("q8check: '%s' F16: %d of %d values are not the fp16 rounding of F32"
                      % (name, n, ref.size))
                bad += 1
        elif t["type"] == T_F32:
            n = int(np.count_nonzero(q.array(name).view(np.uint32) != ref.view(np.uint32)))
            if n:
                print("q8check: '%s' F32: %d of %d values differ" % (name, n, ref.size))
                bad += 1
        else:
            print("q8check: '%s' has type %s: not checked" % (name, tname))
            bad += 1
            continue
        counts[tname] = counts.get(tname, 0) + 1
    print("q8check: %s vs %s: %s checked, %d problems" % (
        qpath, fpath, ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) or "none",
        bad))
    return 1 if bad else 0


# byte ranges of each block's fields, for messages
FIELDS = {T_Q8_0: [("d", 0, 2), ("qs", 2, 34)],
          T_Q4_0: [("d", 0, 2), ("qs", 2, 18)],
          T_Q4_1: [("d", 0, 2), ("m", 2, 4), ("qs", 4, 20)],
          T_Q4_K: [("d", 0, 2), ("dmin", 2, 4), ("scales", 4, 16), ("qs", 16, 144)],
          T_Q6_K: [("ql", 0, 128), ("qh", 128, 192), ("scales", 192, 208), ("d", 208, 210)]}


def cmd_qcheck(qpath, fpath):
    """Every tensor of QUANT.gguf against the numpy reference quantization of
    the F32 tensor of the same name: Q8_0, Q4_0, Q4_1, Q4_K and Q6_K blocks
    byte for byte, F16 as the fp16 rounding, F32 equal."""
    q, f = Reader(qpath), Reader(fpath)
    bad = 0
    counts = {}
    for name in [n for n in f.by_name if n not in q.by_name]:
        print("qcheck: tensor '%s' is in %s but not in %s" % (name, fpath, qpath))
        bad += 1
    for t in q.tensors:
        name, ttype = t["name"], t["type"]
        tname = GGML_TYPES[ttype][0]
        ft = f.by_name.get(name)
        if ft is None or ft["type"] != T_F32 or ft["ne"] != t["ne"]:
            print("qcheck: '%s': no F32 tensor of shape %s in %s" % (name, t["ne"], fpath))
            bad += 1
            continue
        ref = f.array(name)
        if not np.all(np.isfinite(ref)):
            print("qcheck: '%s': the F32 source has non-finite values" % name)
            bad += 1
            continue
        if ttype in QUANTIZERS:
            bsize = GGML_TYPES[ttype][2]
            got = np.frombuffer(q.raw(name), dtype=np.uint8).reshape(-1, bsize)
            want = QUANTIZERS[ttype](ref)
            diff = got != want
            if diff.any():
                blocks = np.nonzero(diff.any(axis=1))[0]
                i = int(blocks[0])
                fields = [fn for fn, lo, hi in FIELDS[ttype] if diff[i, lo:hi].any()]
                print("qcheck: '%s' %s: %d of %d blocks differ from the reference (first: "
                      "block %d, row %d, field %s: %s vs reference %s)"
                      % (name, tname, blocks.size, got.shape[0], i,
                         i // (t["ne"][0] // GGML_TYPES[ttype][1]), "/".join(fields),
                         got[i].tobytes().hex()[:48], want[i].tobytes().hex()[:48]))
                bad += 1
        elif ttype == T_F16:
            n = int(np.count_nonzero(q.array(name).view(np.uint16) != f16_bits(ref)))
            if n:
                print("qcheck: '%s' F16: %d of %d values are not the fp16 rounding of F32"
                      % (name, n, ref.size))
                bad += 1
        elif ttype == T_F32:
            n = int(np.count_nonzero(q.array(name).view(np.uint32) != ref.view(np.uint32)))
            if n:
                print("qcheck: '%s' F32: %d of %d values differ" % (name, n, ref.size))
                bad += 1
        else:
            print("qcheck: '%s' has type %s: not checked" % (name, tname))
            bad += 1
            continue
        counts[tname] = counts.get(tname, 0) + 1
    print("qcheck: %s vs %s: %s checked, %d problems" % (
        qpath, fpath, ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) or "none",
        bad))
    return 1 if bad else 0


USAGE = """usage: gguf_check.py summary FILE.gguf
       gguf_check.py types FILE.gguf
       gguf_check.py q8check QUANT.gguf F32.gguf
       gguf_check.py qcheck QUANT.gguf F32.gguf
       gguf_check.py llama2c-to-gguf [--q8] [--align N] MODEL.bin OUT.gguf"""


def main(argv):
    try:
        if len(argv) == 2 and argv[0] == "summary":
            return cmd_summary(argv[1])
        if len(argv) == 2 and argv[0] == "types":
            return cmd_types(argv[1])
        if len(argv) == 3 and argv[0] == "q8check":
            return cmd_q8check(argv[1], argv[2])
        if len(argv) == 3 and argv[0] == "qcheck":
            return cmd_qcheck(argv[1], argv[2])
        if argv and argv[0] == "llama2c-to-gguf":
            rest, q8, align = argv[1:], False, DEFAULT_ALIGN
            while rest and rest[0].startswith("--"):
                if rest[0] == "--q8":
                    q8, rest = True, rest[1:]
                elif rest[0] == "--align" and len(rest) > 1 and rest[1].isdigit() \
                        and int(rest[1]) > 0 and not int(rest[1]) & (int(rest[1]) - 1):
                    align, rest = int(rest[1]), rest[2:]
                else:
                    break
            if len(rest) == 2:
                llama2c_to_gguf(rest[0], rest[1], q8, align)
                return 0
    except (GGUFError, OSError) as e:
        print("gguf_check: %s" % e, file=sys.stderr)
        return 1
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
