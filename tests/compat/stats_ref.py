#!/usr/bin/env python3
"""Independent reference for mcbuild's paired bootstrap (runtime/stats.c).

usage: stats_ref.py ratio DATA REPS CONF SEED
       stats_ref.py ppl DATA REPS CONF SEED

DATA has one item per line: "num den" (ratio) or "nll_a nll_b cnt" (ppl).
Prints one line, "point lo hi p skipped" (floats as repr, skipped = resamples
left out because their sum(den) is 0), or exits non-zero with a message.

Written from the published definitions, not from the C code:
- the generator is xoshiro256** (Blackman and Vigna, prng.di.unimi.it) with
  its four state words taken from successive splitmix64 outputs of the seed;
- an index below n is the first output x < 2^64 - 1 - ((2^64 - 1) mod n),
  reduced mod n (rejection, no modulo bias; n == 1 gives 0 without a draw);
- resample r = 0..REPS-1 draws its n indices at positions j = 0..n-1 in that
  order, one stream for the whole run;
- the statistic is sum(num)/sum(den) over the drawn items (for ppl, num is
  nll_b - nll_a and den is cnt; point, lo and hi are exp of the delta);
  resamples with sum(den) == 0 are left out;
- lo and hi are R type-7 percentiles (Hyndman and Fan 1996) of the kept
  statistics at (1 - CONF)/2 and (1 + CONF)/2, also checked against
  numpy.quantile's default (linear) method;
- p = min(1, 2 min(#(stat <= 0), #(stat >= 0)) / kept).

Sums use numpy's pairwise summation, so agreement with the C code's
left-to-right sums is to rounding (the test allows 1e-12 relative), not bits.
"""
import math
import sys

import numpy as np

MASK = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro256ss:
    def __init__(self, seed):
        self.s = []
        x = seed & MASK
        for _ in range(4):
            x, z = splitmix64(x)
            self.s.append(z)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        if n <= 1:
            return 0
        limit = MASK - MASK % n
        while True:
            x = self.next()
            if x < limit:
                return x % n


def type7(sorted_x, q):
    m = len(sorted_x)
    h = (m - 1) * q
    i = int(math.floor(h))
    if i >= m - 1:
        return float(sorted_x[m - 1])
    return float(sorted_x[i] + (h - i) * (sorted_x[i + 1] - sorted_x[i]))


def bootstrap(num, den, reps, conf, seed):
    n = len(num)
    rng = Xoshiro256ss(seed)
    idx = np.empty((reps, n), dtype=np.int64)
    for r in range(reps):
        row = idx[r]
        for j in range(n):
            row[j] = rng.below(n)
    sn = num[idx].sum(axis=1)
    sd = den[idx].sum(axis=1)
    keep = sd != 0
    skipped = int(reps - keep.sum())
    if skipped * 100 > reps:
        sys.exit("stats_ref: %d of %d resamples have sum(den) = 0" % (skipped, reps))
    stat = np.sort(sn[keep] / sd[keep])
    lo = type7(stat, (1 - conf) / 2)
    hi = type7(stat, (1 + conf) / 2)
    for q, v in (((1 - conf) / 2, lo), ((1 + conf) / 2, hi)):
        ref = float(np.quantile(stat, q))
        if abs(ref - v) > 1e-14 * max(abs(v), 1e-300):
            sys.exit("stats_ref: type 7 %r disagrees with numpy.quantile %r" % (v, ref))
    m = len(stat)
    p = min(1.0, 2 * min(int((stat <= 0).sum()), int((stat >= 0).sum())) / m)
    point = float(num.sum() / den.sum())
    return point, lo, hi, p, skipped


def main(argv):
    if len(argv) != 6 or argv[1] not in ("ratio", "ppl"):
        sys.exit(__doc__.split("\n\n")[1])
    kind, path = argv[1], argv[2]
    reps, conf, seed = int(argv[3]), float(argv[4]), int(argv[5])
    data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if kind == "ratio":
        num, den = data[:, 0].copy(), data[:, 1].copy()
    else:
        num, den = data[:, 1] - data[:, 0], data[:, 2].copy()
    point, lo, hi, p, skipped = bootstrap(num, den, reps, conf, seed)
    if kind == "ppl":
        point, lo, hi = math.exp(point), math.exp(lo), math.exp(hi)
    print("%r %r %r %r %d" % (point, lo, hi, p, skipped))


if __name__ == "__main__":
    main(sys.argv)
