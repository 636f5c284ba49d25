#!/usr/bin/env python3
"""Independent NumPy reference for mcbuild's pruning (runtime/prune.c).

usage: prune_ref.py wanda|magnitude|heads|ffn|rank DIR

DIR holds args.json and raw little-endian inputs (wanda and magnitude take a
list of patterns, "cases": [{"p", "n", "m"}, ...], and write mask<k>.u8 for
each) (*.f32, *.f64); outputs are
written to DIR (*.u8 masks, *.f64 scores, *.i64 indices) and one summary line
is printed.  Exits non-zero with a message on any error.

Written from the published algorithms (ALGORITHMS.md section 4; locuslab/wanda
lib/prune.py), not from the C code:
- Wanda: S = |W| * norm (float32), norm = sqrt(scaler_row) given;
  unstructured: per row, the first int(cols * p) indices of a STABLE ascending
  sort of S are pruned (torch.sort(stable=True) == numpy kind="stable");
  n:m: per row and group of m consecutive columns, the first n of a stable
  ascending sort (mcbuild's documented tie rule; Wanda's topk leaves it open).
- magnitude: the first int(numel * p) of a stable ascending sort of the
  flattened |W| (mcbuild prunes exactly that many; Wanda's `<= sort[k]`
  prunes k + 1 and the ties: a documented deviation); n:m as Wanda's.
- structured scores (mcbuild's definition in include/mcb/prune.h): sums of
  the float32 Wanda scores of everything a kv-head group / FFN channel
  carries, in float64; ranking by descending score, ties by lower index
  (a stable sort of the negated scores).
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


def mask_rows(score, p):
    rows, cols = score.shape
    k = int(cols * p)
    mask = np.ones(score.shape, dtype=np.uint8)
    idx = np.argsort(score, axis=1, kind="stable")[:, :k]
    np.put_along_axis(mask, idx, 0, axis=1)
    return mask


def mask_nm(score, n, m):
    rows, cols = score.shape
    assert cols % m == 0
    g = score.reshape(rows, cols // m, m)
    idx = np.argsort(g, axis=2, kind="stable")[:, :, :n]
    mask = np.ones(g.shape, dtype=np.uint8)
    np.put_along_axis(mask, idx, 0, axis=2)
    return mask.reshape(rows, cols)


def mask_layer(score, p):
    flat = score.ravel()
    k = int(flat.size * p)
    mask = np.ones(flat.size, dtype=np.uint8)
    mask[np.argsort(flat, kind="stable")[:k]] = 0
    return mask.reshape(score.shape)


def normalise_zero(a):
    # -0.0 ties with +0.0 (argsort already treats them as equal; kept explicit)
    return np.where(a == 0, F32(0), a)


def cmd_wanda(d, a):
    rows, cols = a["rows"], a["cols"]
    w = rd(d, "w.f32", F32, (rows, cols))
    norm = rd(d, "norm.f32", F32, (cols,))
    s = np.abs(w) * norm[None, :]
    assert s.dtype == F32
    s = normalise_zero(s)
    for k, c in enumerate(a["cases"]):
        mask = mask_nm(s, c["n"], c["m"]) if c["m"] else mask_rows(s, c["p"])
        wr(d, "mask%d.u8" % k, mask, np.uint8)
    print("ok", len(a["cases"]))


def cmd_magnitude(d, a):
    rows, cols = a["rows"], a["cols"]
    w = rd(d, "w.f32", F32, (rows, cols))
    s = normalise_zero(np.abs(w))
    for k, c in enumerate(a["cases"]):
        mask = mask_nm(s, c["n"], c["m"]) if c["m"] else mask_layer(s, c["p"])
        wr(d, "mask%d.u8" % k, mask, np.uint8)
    print("ok", len(a["cases"]))


def rank(score):
    return np.argsort(-score, kind="stable")


def keep_of(score, keep):
    return np.sort(rank(score)[:keep])


def cmd_heads(d, a):
    dim, nh, nkv, hd = a["dim"], a["n_heads"], a["n_kv_heads"], a["head_dim"]
    wq = rd(d, "wq.f32", F32, (nh * hd, dim))
    wk = rd(d, "wk.f32", F32, (nkv * hd, dim))
    wv = rd(d, "wv.f32", F32, (nkv * hd, dim))
    wo = rd(d, "wo.f32", F32, (dim, nh * hd))
    nx = rd(d, "norm_x.f32", F32, (dim,))
    no = rd(d, "norm_o.f32", F32, (nh * hd,))
    sq = (np.abs(wq) * nx).astype(np.float64).reshape(nkv, -1).sum(axis=1)   # group rows
    sk = (np.abs(wk) * nx).astype(np.float64).reshape(nkv, -1).sum(axis=1)
    sv = (np.abs(wv) * nx).astype(np.float64).reshape(nkv, -1).sum(axis=1)
    so = (np.abs(wo) * no).astype(np.float64).reshape(dim, nkv, -1).sum(axis=(0, 2))
    score = sq + sk + sv + so
    keep = keep_of(score, a["keep"])
    g = nh // nkv
    q_rows = np.concatenate([np.arange(k * g * hd, (k + 1) * g * hd) for k in keep] or [[]])
    kv_rows = np.concatenate([np.arange(k * hd, (k + 1) * hd) for k in keep] or [[]])
    wr(d, "score.f64", score, np.float64)
    wr(d, "order.i64", rank(score), np.int64)
    wr(d, "keep.i64", keep, np.int64)
    wr(d, "q_rows.i64", q_rows, np.int64)
    wr(d, "kv_rows.i64", kv_rows, np.int64)
    print("ok")


def cmd_ffn(d, a):
    dim, hidden = a["dim"], a["hidden"]
    up = rd(d, "up.f32", F32, (hidden, dim))
    down = rd(d, "down.f32", F32, (dim, hidden))
    nx = rd(d, "norm_x.f32", F32, (dim,))
    nh = rd(d, "norm_h.f32", F32, (hidden,))
    score = (np.abs(up) * nx).astype(np.float64).sum(axis=1)
    if a["gated"]:
        gate = rd(d, "gate.f32", F32, (hidden, dim))
        score += (np.abs(gate) * nx).astype(np.float64).sum(axis=1)
    score += (np.abs(down) * nh).astype(np.float64).sum(axis=0)
    wr(d, "score.f64", score, np.float64)
    wr(d, "order.i64", rank(score), np.int64)
    wr(d, "keep.i64", keep_of(score, a["keep"]), np.int64)
    print("ok")


def cmd_rank(d, a):
    score = rd(d, "score.f64", np.float64, (a["n"],))
    wr(d, "order.i64", rank(score), np.int64)
    wr(d, "keep.i64", keep_of(score, a["keep"]), np.int64)
    print("ok")


def main():
    cmds = ("wanda", "magnitude", "heads", "ffn", "rank")
    if len(sys.argv) != 3 or sys.argv[1] not in cmds:
        sys.exit(__doc__.split("\n\n")[1])
    d = sys.argv[2]
    with open(os.path.join(d, "args.json")) as f:
        a = json.load(f)
    globals()["cmd_" + sys.argv[1]](d, a)


if __name__ == "__main__":
    main()
