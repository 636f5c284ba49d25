#!/usr/bin/env python3
"""Independent NumPy (float64) GPTQ and SparseGPT, written from
/work/shared/ref/ALGORITHMS.md sections 1 and 4 (IST-DASLab gptq.py,
quant.py, sparsegpt.py), to check runtime/gptq.c (tests/unit/test_gptq.c).

    gptq_ref.py DIR

DIR holds `args` (one "key value" per line: mode gptq|prune, rows, cols,
bits (0: no quantizer), group, sym, fp16, act, static, block, percdamp,
damp_step, max_retries, sparsity, pn, pm), the inputs w.f32 [rows, cols] and
h.f32 [cols, cols], and the C results: c_hinv.f32 (its U), c_wpre.f32 (the
weights just before quantization), c_codes.u8, c_scale.f32, c_zero.u8
(quantizing), c_mask.u8 (pruning).  Prints "key value" lines:

  retries, percdamp        this implementation's damping (float64 Cholesky)
  hinv_err                 max |U_ref - U_c| / max |U_ref|
  free_*                   the reference run on its own: code, zero and mask
                           mismatches with C, its loss
  forced_*                 the reference run teacher-forced with C's choices
                           (codes, scales, zeros, masks), so that both follow
                           the same path and each choice can be checked:
    wpre_relerr            max |w_ref - w_c| / max |W| (pre-quantization weights)
    wpre_code_err          the same in code units (|w_ref - w_c| / scale)
    code_diff              codes where the reference's own rounding differs
    code_unexplained       ... of those, the ones whose float32 (C) and
                           float64 (reference) values do not straddle the
                           rounding boundary between the two codes: real errors
    zero_diff, zero_unexplained   the same for asymmetric zero points
    scale_relerr           max |s_c - s_ref| / s_ref, s_ref before fp16 rounding
    mask_diff              mask entries where the reference's own choice differs
    mask_bad               blocks (unstructured) or row groups (n:m) where C's
                           mask is not a valid choice of the smallest
                           w^2/d^2 up to a tolerance of 1e-4 of the block's largest
    loss                   the loss along C's path
"""
import os
import sys

import numpy as np


def read_args(d):
    a = {}
    with open(os.path.join(d, "args")) as f:
        for line in f:
            k, v = line.split()
            a[k] = float(v) if k in ("percdamp", "damp_step", "sparsity") else int(v)
    return a


def load(d, name, dtype, shape):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    return np.fromfile(p, dtype=dtype).reshape(shape)


def params(x, bits, sym, fp16):
    """GPTQ find_params per row of x: (scale, zero, scale before fp16, -xmin/scale)."""
    maxq = 2 ** bits - 1
    xmin = np.minimum(x.min(axis=1), 0.0)
    xmax = np.maximum(x.max(axis=1), 0.0)
    if sym:
        xmax = np.maximum(-xmin, xmax)
        xmin = np.where(xmin < 0, -xmax, xmin)
    both = (xmin == 0) & (xmax == 0)
    xmin = np.where(both, -1.0, xmin)
    xmax = np.where(both, 1.0, xmax)
    s = (xmax - xmin) / maxq
    zq = -xmin / s
    if sym:
        z = np.full_like(s, (maxq + 1) // 2)
    else:
        z = np.clip(np.round(zq), 0, maxq)
    s32 = s
    if fp16:
        s = s.astype(np.float16).astype(np.float64)
    return s, z, s32, zq


def codes_of(x, s, z, maxq):
    with np.errstate(divide="ignore", invalid="ignore"):
        v = x / s
    q = np.clip(np.round(v) + z, 0, maxq)
    return np.where((s == 0) | np.isnan(v), z, q)


def hinv_of(H, act, percdamp, step, max_retries):
    n = H.shape[0]
    H = H.astype(np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    perm = np.argsort(-np.diag(H), kind="stable") if act else np.arange(n)
    H = H[perm][:, perm]
    mean = np.mean(np.diag(H))
    retries = 0
    while True:
        p = percdamp + retries * step
        Hd = H + p * mean * np.eye(n)
        try:
            L = np.linalg.cholesky(Hd)
            Li = np.linalg.inv(L)
            U = np.linalg.cholesky(Li.T @ Li).T  # upper: H^-1 = U^T U
            if np.all(np.isfinite(U)):
                return U, perm, dead, p, retries
        except np.linalg.LinAlgError:
            pass
        if step <= 0 or retries >= max_retries or percdamp + (retries + 1) * step >= 1:
            return None, perm, dead, p, retries
        retries += 1


class Stats:
    def __init__(self):
        self.v = {}

    def add(self, k, x):
        self.v[k] = self.v.get(k, 0) + x

    def max(self, k, x):
        self.v[k] = max(self.v.get(k, 0.0), float(x))


def run(a, W0, U, perm, dead, C, forced, st):
    """One pass of GPTQ / SparseGPT; C: the C results (used when forced)."""
    rows, cols = W0.shape
    bits, group, sym, fp16 = a["bits"], a["group"], a["sym"], a["fp16"]
    quant = bits > 0
    maxq = 2 ** bits - 1 if quant else 0
    static = a["static"] and group > 0
    B = min(a["block"], cols)
    mode = a["mode"]
    unstructured = mode == "prune" and a["pm"] == 0
    nm = mode == "prune" and a["pm"] > 0
    ng = (cols + group - 1) // group if group > 0 else 1
    scale = np.zeros((rows, ng))
    zero = np.zeros((rows, ng))
    codes = np.zeros((rows, cols), dtype=np.int64)
    mask = np.ones((rows, cols), dtype=np.uint8)
    wmax = np.max(np.abs(W0)) or 1.0

    def take_params(x, gi):
        s, z, s32, zq = params(x, bits, sym, fp16)
        if not forced:
            return s, z
        cs = C["scale"][:, gi].astype(np.float64)
        cz = C["zero"][:, gi].astype(np.float64)
        st.max("scale_relerr", np.max(np.abs(cs - s32) / s32))
        dz = z != cz
        st.add("zero_diff", int(np.sum(dz)))
        st.add("zero_unexplained", int(np.sum(dz & (np.abs(zq - np.floor(zq) - 0.5) > 1e-4))))
        return cs, cz

    W = W0.astype(np.float64).copy()
    if quant and group == 0:
        scale[:, 0], zero[:, 0] = take_params(W, 0)
    W[:, dead] = 0
    if quant and static:
        for gi in range(ng):
            scale[:, gi], zero[:, gi] = take_params(W[:, gi * group:(gi + 1) * group], gi)
    W = W[:, perm]
    cur_s, cur_z = scale[:, 0].copy(), zero[:, 0].copy()
    loss = 0.0
    for i1 in range(0, cols, B):
        i2 = min(i1 + B, cols)
        cnt = i2 - i1
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros((rows, cnt))
        d1 = np.diag(U)[i1:i2]
        if unstructured:
            tmp = W1 ** 2 / d1[None, :] ** 2
            kk = int(tmp.size * a["sparsity"])
            own = np.ones(tmp.size, dtype=np.uint8)
            own[np.argsort(tmp.ravel(), kind="stable")[:kk]] = 0
            own = own.reshape(tmp.shape)
            if forced:
                cm = C["mask"][:, perm[i1:i2]]
                st.add("mask_diff", int(np.sum(cm != own)))
                sq = np.sqrt(tmp)
                tol = 1e-4 * np.max(sq)
                bad = int(np.sum(cm == 0)) != kk
                if 0 < kk < tmp.size:
                    bad |= np.max(sq[cm == 0]) > np.min(sq[cm == 1]) + tol
                st.add("mask_bad", int(bad))
                own = cm
            mask[:, perm[i1:i2]] = own
        for i in range(cnt):
            c = i1 + i
            oc = perm[c]
            if quant and group > 0 and not static and c % group == 0:
                gi = c // group
                scale[:, gi], zero[:, gi] = take_params(W[:, c:c + group], gi)
                cur_s, cur_z = scale[:, gi], zero[:, gi]
            elif quant and static:
                gi = oc // group
                cur_s, cur_z = scale[:, gi], zero[:, gi]
            if nm and i % a["pm"] == 0:
                m, n = a["pm"], a["pn"]
                tmp = W1[:, i:i + m] ** 2 / d1[None, i:i + m] ** 2
                own = np.ones_like(tmp, dtype=np.uint8)
                order = np.argsort(tmp, axis=1, kind="stable")[:, :n]
                np.put_along_axis(own, order, 0, axis=1)
                if forced:
                    cm = C["mask"][:, c:c + m]
                    st.add("mask_diff", int(np.sum(cm != own)))
                    sq = np.sqrt(tmp)
                    tol = 1e-4 * np.max(sq)
                    for r in range(rows):
                        p_, k_ = sq[r][cm[r] == 0], sq[r][cm[r] == 1]
                        bad = len(p_) != n or (len(p_) and len(k_) and p_.max() > k_.min() + tol)
                        st.add("mask_bad", int(bad))
                    own = cm
                mask[:, c:c + m] = own
            w = W1[:, i]
            d = U[c, c]
            v = np.where(mask[:, oc] == 1, w, 0.0)
            if forced:
                wc = C["wpre"][:, oc].astype(np.float64)
                st.max("wpre_relerr", np.max(np.abs(w - wc)) / wmax)
            if quant:
                qc = codes_of(v, cur_s, cur_z, maxq)
                if forced:
                    cc = C["codes"][:, oc].astype(np.float64)
                    vc = np.where(mask[:, oc] == 1, wc, 0.0)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        st.max("wpre_code_err", np.max(np.where(cur_s > 0, np.abs(v - vc) / cur_s, 0)))
                        tr, tc = v / cur_s, vc / cur_s
                    diff = qc != cc
                    st.add("code_diff", int(np.sum(diff)))
                    b = np.minimum(qc, cc) - cur_z + 0.5
                    ok = (np.abs(qc - cc) == 1) & (((tc - b) * (tr - b) <= 0) |
                                                   (np.abs(tc - b) <= 1e-5 * np.maximum(1, np.abs(b))))
                    st.add("code_unexplained", int(np.sum(diff & ~ok)))
                    qc = cc
                codes[:, oc] = qc
                q = cur_s * (qc - cur_z)
            else:
                q = v
            err = (w - q) / d
            loss += float(np.sum(err ** 2))
            W1[:, i:] -= np.outer(err, U[c, i1 + i:i2])
            Err1[:, i] = err
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
    return codes, zero, mask, loss / 2


def main():
    d = sys.argv[1]
    a = read_args(d)
    a["mode"] = "prune" if a["mode"] == 1 else "gptq"
    rows, cols = a["rows"], a["cols"]
    ng = (cols + a["group"] - 1) // a["group"] if a["group"] > 0 else 1
    W0 = load(d, "w.f32", np.float32, (rows, cols)).astype(np.float64)
    H = load(d, "h.f32", np.float32, (cols, cols))
    U, perm, dead, p, retries = hinv_of(H, a["act"], a["percdamp"], a["damp_step"], a["max_retries"])
    print("retries", retries)
    print("percdamp", repr(p))
    if U is None:
        print("failed 1")
        return
    C = {
        "hinv": load(d, "c_hinv.f32", np.float32, (cols, cols)),
        "wpre": load(d, "c_wpre.f32", np.float32, (rows, cols)),
        "codes": load(d, "c_codes.u8", np.uint8, (rows, cols)),
        "scale": load(d, "c_scale.f32", np.float32, (rows, ng)),
        "zero": load(d, "c_zero.u8", np.uint8, (rows, ng)),
        "mask": load(d, "c_mask.u8", np.uint8, (rows, cols)),
    }
    if C["hinv"] is not None:
        print("hinv_err", repr(float(np.max(np.abs(U - C["hinv"])) / np.max(np.abs(U)))))
    st = Stats()
    codes, zero, mask, loss = run(a, W0, U, perm, dead, C, False, st)
    if a["bits"] > 0:
        print("free_code_mismatch", int(np.sum(codes != C["codes"])))
        print("free_zero_mismatch", int(np.sum(zero != C["zero"])))
    if a["mode"] == "prune":
        print("free_mask_mismatch", int(np.sum(mask != C["mask"])))
    print("free_loss", repr(loss))
    st = Stats()
    for k in ("wpre_relerr", "wpre_code_err", "code_diff", "code_unexplained", "zero_diff",
              "zero_unexplained", "scale_relerr", "mask_diff", "mask_bad"):
        st.v[k] = 0
    codes, zero, mask, loss = run(a, W0, U, perm, dead, C, True, st)
    for k, v in st.v.items():
        print("forced_" + k, repr(v) if isinstance(v, float) else v)
    print("forced_loss", repr(loss))


if __name__ == "__main__":
    main()
