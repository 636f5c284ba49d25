#!/usr/bin/env python3
"""calib_ref: an independent check of mcbuild's calibration artefact (Python 3 + numpy).

  calib_ref.py CALIB.safetensors MODEL.bin DATA.tokens

Reads the artefact with its own safetensors parser and checks the format of
runtime/calib.c (metadata, names, shapes, symmetry), then recomputes every
statistic from a float64 forward pass of the llama2.c checkpoint MODEL.bin
(gguf_check.read_llama2c; same architecture as logits.py's forward) over the
first `sequences` items of DATA.tokens, each cut to `seq_len` tokens (both from
the artefact's metadata), capturing the input of q/k/v (attn_in), attn_output
(attn_out), gate/up (ffn_in), down (ffn_down) and the classifier (output):

  hessian   (2/sequences) sum_t x_t^T x_t     |H - R| / sqrt(Rii Rjj) < 1e-4
  mean_abs  sum_t |x_t| / tokens              relative 1e-4 of max |x|
  max_abs   max_t |x_t|                       relative 1e-4 of max |x|
  sum_sq    sum_t x_t^2                       relative 1e-4
  samples   the rows Algorithm R keeps with mcbuild's generator (xoshiro256**
            seeded by splitmix64, uniform below n by rejection), replayed here:
            each sample row equals its token's row to 1e-4 of max |x|

The engine computes in float32 and this forward in float64, hence the
tolerances.  Prints one line per check and exits 1 on any failure.
"""

import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_check  # noqa: E402  (read_llama2c)

POINTS = ["attn_in", "attn_out", "ffn_in", "ffn_down", "output"]
KINDS = ["hessian", "mean_abs", "max_abs", "sum_sq", "samples"]
M64 = (1 << 64) - 1


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    end = 0
    for name, ent in header.items():
        b, e = ent["data_offsets"]
        if ent["dtype"] != "F32":
            raise ValueError("%s: %s is %s" % (path, name, ent["dtype"]))
        a = np.frombuffer(raw, dtype="<f4", count=(e - b) // 4, offset=base + b)
        tensors[name] = a.reshape(ent["shape"]).astype(np.float64)
        end = max(end, e)
    if base + end != len(raw):
        raise ValueError("%s: size mismatch" % path)
    return meta, tensors


class Rng:
    """xoshiro256** seeded by splitmix64 (runtime/rng.c)."""

    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x = (x + 0x9e3779b97f4a7c15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        result = (self.rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return result

    def below(self, n):
        if n <= 1:
            return 0
        limit = M64 - (M64 % n)
        while True:
            x = self.next()
            if x < limit:
                return x % n


def reservoir(tokens, k, seed):
    """Token indices Algorithm R keeps, in token order."""
    rng = Rng(seed)
    slots = []
    for t in range(tokens):
        if t < k:
            slots.append(t)
        else:
            j = rng.below(t + 1)
            if j < k:
                slots[j] = t
    return sorted(slots)


def captures(model_path, seqs):
    """float64 inputs per (layer, point) over every token of seqs, in order."""
    cfg, tensors = gguf_check.read_llama2c(model_path)
    w = {n: a.astype(np.float64) for n, a in tensors}
    nh, nkv, hs, n_layers = cfg["n_heads"], cfg["n_kv"], cfg["head_size"], cfg["n_layers"]
    group = nh // nkv
    inv_freq = 10000.0 ** (-np.arange(0, hs, 2) / hs)
    rows = {}

    def put(layer, point, x):
        rows.setdefault((layer, point), []).append(x.copy())

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x) + 1e-5) * g

    def rope(v, pos):
        c, s = np.cos(pos * inv_freq), np.sin(pos * inv_freq)
        a, b = v[:, 0::2], v[:, 1::2]
        out = np.empty_like(v)
        out[:, 0::2], out[:, 1::2] = a * c - b * s, a * s + b * c
        return out

    for ids in seqs:
        kc = [[] for _ in range(n_layers)]
        vc = [[] for _ in range(n_layers)]
        for pos, tok in enumerate(ids):
            x = w["token_embd.weight"][tok].copy()
            for layer in range(n_layers):
                p = "blk.%d." % layer
                h = rms(x, w[p + "attn_norm.weight"])
                put(layer, "attn_in", h)
                q = rope((w[p + "attn_q.weight"] @ h).reshape(nh, hs), pos)
                kc[layer].append(rope((w[p + "attn_k.weight"] @ h).reshape(nkv, hs), pos))
                vc[layer].append((w[p + "attn_v.weight"] @ h).reshape(nkv, hs))
                k = np.repeat(np.stack(kc[layer], axis=1), group, axis=0)
                v = np.repeat(np.stack(vc[layer], axis=1), group, axis=0)
                sc = np.einsum("hd,htd->ht", q, k) / np.sqrt(hs)
                sc = np.exp(sc - sc.max(axis=1, keepdims=True))
                sc /= sc.sum(axis=1, keepdims=True)
                att = np.einsum("ht,htd->hd", sc, v).reshape(-1)
                put(layer, "attn_out", att)
                x = x + w[p + "attn_output.weight"] @ att
                h = rms(x, w[p + "ffn_norm.weight"])
                put(layer, "ffn_in", h)
                a, b = w[p + "ffn_gate.weight"] @ h, w[p + "ffn_up.weight"] @ h
                hb = a / (1.0 + np.exp(-a)) * b
                put(layer, "ffn_down", hb)
                x = x + w[p + "ffn_down.weight"] @ hb
            put(-1, "output", rms(x, w["output_norm.weight"]))
    return {key: np.array(v) for key, v in rows.items()}


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    calib, model, data = argv[1:]
    meta, t = read_safetensors(calib)
    fails = 0

    def check(ok, what):
        nonlocal fails
        print("calib_ref: %s: %s" % ("ok" if ok else "FAILED", what))
        fails += 0 if ok else 1

    check(meta.get("mcbuild.calib") == "1", "version 1")
    nseq, ntok = int(meta["sequences"]), int(meta["tokens"])
    seq_len, k, seed = int(meta["seq_len"]), int(meta["max_samples"]), int(meta["seed"])
    seqs = []
    with open(data) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and len(seqs) < nseq:
                seqs.append([int(v) for v in line.split()][:seq_len])
    check(sum(len(s) for s in seqs) == ntok, "%d tokens in %d sequences" % (ntok, nseq))
    rows = captures(model, seqs)
    keep = reservoir(ntok, k, seed)
    check(int(meta["samples"]) == len(keep), "%d samples per set" % len(keep))
    nsets = 0
    worst = {"hessian": 0.0, "mean_abs": 0.0, "max_abs": 0.0, "sum_sq": 0.0, "samples": 0.0}
    for (layer, point), x in sorted(rows.items()):
        pre = "output" if layer < 0 else "blk.%d.%s" % (layer, point)
        if pre + ".hessian" not in t:
            continue
        nsets += 1
        h = t[pre + ".hessian"]
        if not np.array_equal(h, h.T):
            check(False, pre + ".hessian symmetric")
        ref = 2.0 / nseq * (x.T @ x)
        d = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
        d[d == 0] = 1
        scale = np.abs(x).max(axis=0)
        scale[scale == 0] = 1
        errs = {
            "hessian": float((np.abs(h - ref) / d).max()),
            "mean_abs": float((np.abs(t[pre + ".mean_abs"] - np.abs(x).mean(axis=0)) / scale).max()),
            "max_abs": float((np.abs(t[pre + ".max_abs"] - np.abs(x).max(axis=0)) / scale).max()),
            "sum_sq": float((np.abs(t[pre + ".sum_sq"] - (x * x).sum(axis=0))
                             / np.maximum((x * x).sum(axis=0), 1e-30)).max()),
            "samples": float((np.abs(t[pre + ".samples"] - x[keep]) / scale).max()) if keep else 0.0,
        }
        for kind, v in errs.items():
            worst[kind] = max(worst[kind], v)
    check(nsets > 0 and nsets * len(KINDS) == len(t), "%d sets, %d tensors" % (nsets, len(t)))
    for kind in KINDS:
        check(worst[kind] < 1e-4, "%s: worst error %.2e (tolerance 1e-4)" % (kind, worst[kind]))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
