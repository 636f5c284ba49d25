#!/usr/bin/env python3
"""Independent NumPy reference for mcbuild's AWQ and SmoothQuant (runtime/awq.c).

usage: awq_ref.py quant|scale|clip|smooth DIR

DIR holds args.json (shapes and parameters) and the input arrays as raw
little-endian files (*.f32 float32, *.f64 float64, *.u8, *.i8); the outputs
are written to DIR the same way and one summary line is printed.  Exits
non-zero with a message on any error.

Written from the published algorithms (ALGORITHMS.md sections 2 and 3),
vectorised the way the references are (tensors reshaped into quantization
groups), not from the C code:
- AutoAWQ quantize/quantizer.py pseudo_quantize_tensor (zero_point=True):
  per group of group_size, scales = clamp(max - min, 1e-5) / (2^bits - 1),
  zeros = clamp(-round(min / scales), 0, 2^bits - 1),
  w = (clamp(round(w / scales) + zeros, 0, 2^bits - 1) - zeros) * scales,
  all in float32 (np.round is round half to even, as torch.round);
  fp16 = 1 rounds the scales to float16 first.
- AutoAWQ quantize/scale.py _search_best_scale / _compute_best_scale:
  w_mean = mean over the concatenated rows of |W| / (group amax + 1e-6);
  for ratio = i / n_grid: scales = duo ? x_mean^ratio / (w_mean^(1-ratio) + 1e-4)
  : x_mean^ratio, clamp(min=1e-4), / sqrt(max * min), inf/NaN -> 1;
  W' = Q(W * s) / s; the first strictly smallest loss wins.  mcbuild's loss
  (documented deviation): sum over the layers of ||X (W - W')^T||^2 divided by
  n * total rows.  Scales and w_mean in float64 (rounded to float32 once),
  losses in float64.
- AutoAWQ _compute_best_clip: input rows [::max(1, n // n_sample)], per
  (row, group) max_val = amax * (1 - i / grid) (float32), i < steps,
  err = mean_t (x_t . (Q(clamp(w, -max_val, max_val)) - w))^2 over the
  group, kept when err < the best so far (initially 1e9).
- smoothquant smooth.py smooth_ln_fcs and fake_quant.py
  quantize_weight_per_channel_absmax, plus the static activation scale
  max(max_j act_j / s_j, 1e-5) / 127.
"""
import json
import os
import sys

import numpy as np

F32 = np.float32


def rd(d, name, dtype, shape):
    a = np.fromfile(os.path.join(d, name), dtype=np.dtype(dtype).newbyteorder("<"))
    return a.reshape(shape)


def wr(d, name, a, dtype):
    np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tofile(os.path.join(d, name))


def pseudo_quantize(w, bits, group_size, fp16):
    """AutoAWQ's pseudo_quantize_tensor with zero_point=True, float32."""
    assert w.dtype == F32 and w.ndim == 2
    rows, cols = w.shape
    gs = group_size if group_size > 0 else cols
    assert cols % gs == 0
    g = w.reshape(-1, gs)
    max_val = g.max(axis=1, keepdims=True)
    min_val = g.min(axis=1, keepdims=True)
    max_int = F32(2 ** bits - 1)
    scales = np.maximum(max_val - min_val, F32(1e-5)) / max_int
    if fp16:
        with np.errstate(over="ignore"):
            scales = scales.astype(np.float16).astype(F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        zeros = np.clip(-np.round(min_val / scales), F32(0), max_int)
        q = np.clip(np.round(g / scales) + zeros, F32(0), max_int)
        deq = (q - zeros) * scales
    for a in (scales, zeros, q, deq):
        assert a.dtype == F32, a.dtype
    return (deq.reshape(rows, cols), q.reshape(rows, cols), scales.reshape(rows, -1),
            zeros.reshape(rows, -1))


def cmd_quant(d, a):
    w = rd(d, "w.f32", F32, (a["rows"], a["cols"]))
    deq, q, scales, zeros = pseudo_quantize(w, a["bits"], a["group_size"], a["fp16"])
    wr(d, "q.u8", q, np.uint8)
    wr(d, "scale.f32", scales, F32)
    wr(d, "zero.u8", zeros, np.uint8)
    wr(d, "deq.f32", deq, F32)
    print("ok", int(np.isinf(scales).sum()))


def w_mean_of(ws, group_size):
    w = np.concatenate(ws, axis=0)
    cols = w.shape[1]
    gs = group_size if group_size > 0 else cols
    g = np.abs(w.reshape(-1, gs)).astype(np.float64)
    w_scale = g / (g.max(axis=1, keepdims=True) + 1e-6)
    return w_scale.reshape(w.shape).mean(axis=0)


def group_loss(ws, x64, s, bits, group_size, fp16):
    """sum over layers of ||X (W - W')^T||^2, W' = Q(W * s) / s (s None: Q(W))."""
    total = 0.0
    for w in ws:
        if s is None:
            wq = pseudo_quantize(w, bits, group_size, fp16)[0]
        else:
            wq = pseudo_quantize(w * s[None, :], bits, group_size, fp16)[0] / s[None, :]
        assert wq.dtype == F32
        diff = (w - wq).astype(np.float64)
        if not np.all(np.isfinite(diff)):
            return float("inf")
        total += float(((x64 @ diff.T) ** 2).sum())
    return total


def cmd_scale(d, a):
    cols, n = a["cols"], a["n"]
    ws = [rd(d, "w%d.f32" % i, F32, (r, cols)) for i, r in enumerate(a["layers"])]
    x_mean = rd(d, "x_mean.f32", F32, (cols,)).astype(np.float64)
    x64 = rd(d, "x.f32", F32, (n, cols)).astype(np.float64)
    bits, gs, fp16 = a["bits"], a["group_size"], a["fp16"]
    denom = float(n) * float(sum(a["layers"]))
    w_mean = w_mean_of(ws, gs)
    history, best, best_err, best_s = [], -1, float("inf"), None
    for i in range(a["n_grid"]):
        ratio = i / a["n_grid"]
        if a["duo"]:
            s = x_mean ** ratio / (w_mean ** (1 - ratio) + 1e-4)
        else:
            s = x_mean ** ratio
        s = np.maximum(s, 1e-4)
        s = s / np.sqrt(s.max() * s.min())
        with np.errstate(over="ignore"):
            s32 = s.astype(F32)
        s32[~np.isfinite(s32)] = 1
        loss = group_loss(ws, x64, s32, bits, gs, fp16) / denom
        history.append(loss)
        if loss < best_err:
            best, best_err, best_s = i, loss, s32
    if best < 0:
        sys.exit("awq_ref: no finite loss")
    rtn = group_loss(ws, x64, None, bits, gs, fp16) / denom
    wr(d, "s.f32", best_s, F32)
    wr(d, "loss.f64", np.array(history), np.float64)
    wr(d, "wmean.f64", w_mean, np.float64)
    wr(d, "rtn.f64", np.array([rtn]), np.float64)
    print(best, repr(best_err), repr(rtn))


def cmd_clip(d, a):
    rows, cols, n = a["rows"], a["cols"], a["n"]
    w = rd(d, "w.f32", F32, (rows, cols))
    x = rd(d, "x.f32", F32, (n, cols))
    bits, fp16 = a["bits"], a["fp16"]
    gs = a["group_size"] if a["group_size"] > 0 else cols
    ng = cols // gs
    step = max(1, n // a["clip_samples"])
    xs = x[::step].astype(np.float64).reshape(-1, ng, gs)     # t, g, k
    wg = w.reshape(rows, ng, gs)                              # r, g, k
    org_max = np.abs(wg).max(axis=-1)                         # r, g
    best = org_max.copy()
    min_errs = np.full(org_max.shape, 1e9)
    for i in range(a["clip_steps"]):
        max_val = org_max * F32(1 - i / a["clip_grid"])
        assert max_val.dtype == F32
        cur = np.clip(wg, -max_val[..., None], max_val[..., None])
        q = pseudo_quantize(cur.reshape(rows, cols), bits, a["group_size"], fp16)[0]
        diff = (q.reshape(rows, ng, gs) - wg).astype(np.float64)
        out = np.einsum("tgk,rgk->rtg", xs, diff)
        err = (out ** 2).mean(axis=1)
        better = err < min_errs
        min_errs[better] = err[better]
        best[better] = max_val[better]
    clipped = np.clip(wg, -best[..., None], best[..., None]).reshape(rows, cols)
    wr(d, "out.f32", clipped, F32)
    wr(d, "maxval.f32", best, F32)
    shrunk = int((best < org_max).sum())
    print("ok", shrunk, best.size)


def cmd_smooth(d, a):
    cols, alpha = a["cols"], a["alpha"]
    ws = [rd(d, "w%d.f32" % i, F32, (r, cols)) for i, r in enumerate(a["layers"])]
    act = rd(d, "act.f32", F32, (cols,))
    wmax = np.stack([np.abs(w).max(axis=0) for w in ws]).max(axis=0)
    wmax = np.maximum(wmax, F32(1e-5)).astype(np.float64)
    s = np.maximum(act.astype(np.float64) ** alpha / wmax ** (1 - alpha), 1e-5).astype(F32)
    wr(d, "s.f32", s, F32)
    # W8A8 of the weights smoothed with mcbuild's own s (s_c.f32), so that the
    # codes can be compared exactly
    s_c = rd(d, "s_c.f32", F32, (cols,))
    for i, w in enumerate(ws):
        sw = w * s_c[None, :]
        delta = np.maximum(np.abs(sw).max(axis=1, keepdims=True), F32(1e-5)) / F32(127)
        q = np.clip(np.round(sw / delta), -127, 127)
        assert delta.dtype == F32 and q.dtype == F32
        wr(d, "q%d.i8" % i, q, np.int8)
        wr(d, "delta%d.f32" % i, delta, F32)
    act_scale = np.maximum((act / s_c).max(), F32(1e-5)) / F32(127)
    wr(d, "act_scale.f32", np.array([act_scale]), F32)
    print("ok")


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("quant", "scale", "clip", "smooth"):
        sys.exit(__doc__.split("\n\n")[1])
    d = sys.argv[2]
    with open(os.path.join(d, "args.json")) as f:
        a = json.load(f)
    globals()["cmd_" + sys.argv[1]](d, a)


if __name__ == "__main__":
    main()
