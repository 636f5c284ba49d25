#!/usr/bin/env python3
"""Independent NumPy reference for mcbuild's low-rank factorization
(runtime/lowrank.c, include/mcb/lowrank.h).

usage: lowrank_ref.py DIR

DIR holds args.json, {"cases": [{"rows", "cols", "rank", "energy"}, ...]},
and w<k>.f32 (rows x cols, row-major, little-endian) for each case k.  For
each case it writes
  s<k>.f64     the singular values (min(rows, cols),), descending
  a<k>.f64     A = U_r diag(s_r)  (rows x r)
  b<k>.f64     B = V_r^T          (r x cols)
  info<k>.f64  [r, achieved energy, relative Frobenius error of U_r S_r V_r^T
               from the singular values, the same measured on float64(W) -
               A @ B]
and prints one summary line.  Exits non-zero with a message on any error.

Written from the definitions (Eckart-Young; the rule and sign convention
documented in include/mcb/lowrank.h), not from the C code:
- numpy.linalg.svd(W as float64, full_matrices=False) (W itself, not W^T);
- rank > 0: min(rank, min(rows, cols)); rank 0: the smallest r >= 1 with
  cumsum(s^2)[r-1] >= energy * sum(s^2) (the total taken as the last
  cumulative sum, both sequential in index order); a zero W keeps r = 1;
- signs: the first entry of largest magnitude of each column of U is made
  positive, flipping the row of V^T with it.
"""
import json
import os
import sys

import numpy as np


def rd(d, name, dtype, shape):
    a = np.fromfile(os.path.join(d, name), dtype=np.dtype(dtype).newbyteorder("<"))
    return a.reshape(shape)


def wr(d, name, a, dtype):
    np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tofile(os.path.join(d, name))


def choose(s, rank, energy):
    n = len(s)
    if rank > 0:
        return min(rank, n)
    cs = np.cumsum(s * s)
    total = cs[-1]
    if not total > 0:
        return 1
    hit = np.nonzero(cs >= energy * total)[0]
    return int(hit[0]) + 1 if len(hit) else n


def factor(w, rank, energy):
    u, s, vt = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    r = choose(s, rank, energy)
    u = u[:, :r].copy()
    vt = vt[:r].copy()
    for i in range(r):
        j = int(np.argmax(np.abs(u[:, i])))
        if u[j, i] < 0:
            u[:, i] = -u[:, i]
            vt[i] = -vt[i]
    a = u * s[:r]
    total = float(np.sum(s * s))
    kept = float(np.sum(s[:r] * s[:r]))
    tail = float(np.sum(s[r:] * s[r:]))
    en = kept / total if total > 0 else 1.0
    rel = np.sqrt(tail / total) if total > 0 else 0.0
    wn = np.linalg.norm(w.astype(np.float64))
    meas = np.linalg.norm(w.astype(np.float64) - a @ vt) / wn if wn > 0 else 0.0
    return s, r, a, vt, en, rel, meas


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    with open(os.path.join(d, "args.json")) as f:
        args = json.load(f)
    worst = 0.0
    for k, c in enumerate(args["cases"]):
        rows, cols = int(c["rows"]), int(c["cols"])
        w = rd(d, "w%d.f32" % k, np.float32, (rows, cols))
        s, r, a, b, en, rel, meas = factor(w, int(c.get("rank", 0)), float(c.get("energy", 0)))
        wr(d, "s%d.f64" % k, s, np.float64)
        wr(d, "a%d.f64" % k, a, np.float64)
        wr(d, "b%d.f64" % k, b, np.float64)
        wr(d, "info%d.f64" % k, np.array([r, en, rel, meas]), np.float64)
        worst = max(worst, abs(rel - meas))
    print("lowrank_ref: %d cases, |error from s - measured error| <= %.3g"
          % (len(args["cases"]), worst))


if __name__ == "__main__":
    main()
