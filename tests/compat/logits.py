#!/usr/bin/env python3
"""logits: checks on llama_eval.mjs output (Python 3 + numpy).

  logits.py ids N SEED OUT.json
      Write a fixed token sequence: BOS (1), then N-1 ids drawn from a fixed
      list by a 31-bit LCG seeded with SEED (deterministic everywhere).
  logits.py sane OUT.json VOCAB POSITIONS
      Every position has VOCAB finite logits, POSITIONS positions, and the
      greedy next token is the argmax (unless the top two are within 1e-6).
  logits.py forward MODEL.bin IDS.json OUT.json
      An independent float64 forward pass of a llama2.c checkpoint (RMSNorm,
      RoPE on pairs (2i, 2i+1), grouped-query attention, SwiGLU, tied or
      separate classifier) written in the llama_eval.mjs output format, so
      that llama.cpp's reading of a converted GGUF can be checked against it.
  logits.py compare REF.json TEST.json MAX_ABS MAX_MEAN_KL
      Same ids in both; prints max |dlogit|, mean |dlogit|, mean and max
      KL(softmax(REF) || softmax(TEST)) in nats, and top-1 agreement; exit 1
      when max |dlogit| > MAX_ABS or mean KL > MAX_MEAN_KL.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_check  # noqa: E402  (read_llama2c)

# ids >= 3 (no BOS/EOS/UNK inside the sequence): byte tokens and fillers
TOKEN_LIST = [3, 13, 17, 29, 41, 67, 88, 101, 118, 140, 163, 201, 233, 259, 260, 277, 300,
              311, 345, 377, 402, 433, 461, 499, 508, 35, 52, 74, 190, 222, 266, 290, 318,
              330, 364, 390, 415, 444, 470, 487]


def make_ids(n, seed):
    x = seed & 0x7fffffff
    ids = [1]
    while len(ids) < n:
        x = (x * 1103515245 + 12345) & 0x7fffffff
        ids.append(TOKEN_LIST[(x >> 16) % len(TOKEN_LIST)])
    return ids


def load(path):
    with open(path) as f:
        d = json.load(f)
    return d, np.array(d["logits"], dtype=np.float64)


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def cmd_sane(path, vocab, positions):
    d, z = load(path)
    problems = []
    if d.get("n_vocab") != vocab or z.ndim != 2 or z.shape != (positions, vocab):
        problems.append("shape %s, n_vocab %s; expected (%d, %d)"
                        % (z.shape, d.get("n_vocab"), positions, vocab))
    elif not np.all(np.isfinite(z)):
        problems.append("%d non-finite logits" % np.count_nonzero(~np.isfinite(z)))
    else:
        top2 = np.sort(z, axis=1)[:, -2:]
        am = z.argmax(axis=1)
        bad = [i for i in range(positions)
               if d["next"][i] != am[i] and top2[i, 1] - top2[i, 0] > 1e-6]
        if bad:
            problems.append("greedy token is not the argmax at positions %s" % bad[:8])
        if float(z.std()) < 1e-3:
            problems.append("logits are (nearly) constant")
    if problems:
        print("logits sane: %s: %s" % (path, "; ".join(problems)))
        return 1
    print("logits sane: %s: %d positions x %d finite logits, range %.3f..%.3f, greedy = argmax"
          % (path, positions, vocab, z.min(), z.max()))
    return 0


def forward(model_path, ids):
    """float64 logits (len(ids), vocab) of the llama2.c model for ids."""
    cfg, tensors = gguf_check.read_llama2c(model_path)
    w = {n: a.astype(np.float64) for n, a in tensors}
    nh, nkv, hs, n_layers = cfg["n_heads"], cfg["n_kv"], cfg["head_size"], cfg["n_layers"]
    group = nh // nkv
    # RoPE angles: pair (2i, 2i+1) of every head turns by pos * 10000^(-2i/hs)
    inv_freq = 10000.0 ** (-np.arange(0, hs, 2) / hs)  # (hs/2,)
    cls = w.get("output.weight", w["token_embd.weight"])  # (vocab, dim)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x) + 1e-5) * g

    def rope(v, pos):  # v (heads, hs)
        c, s = np.cos(pos * inv_freq), np.sin(pos * inv_freq)
        a, b = v[:, 0::2], v[:, 1::2]
        out = np.empty_like(v)
        out[:, 0::2], out[:, 1::2] = a * c - b * s, a * s + b * c
        return out

    kcache = [[] for _ in range(n_layers)]  # per layer: (nkv, hs) per position
    vcache = [[] for _ in range(n_layers)]
    out = []
    for pos, tok in enumerate(ids):
        x = w["token_embd.weight"][tok].copy()  # (dim,)
        for layer in range(n_layers):
            p = "blk.%d." % layer
            h = rms(x, w[p + "attn_norm.weight"])
            q = rope((w[p + "attn_q.weight"] @ h).reshape(nh, hs), pos)
            kcache[layer].append(rope((w[p + "attn_k.weight"] @ h).reshape(nkv, hs), pos))
            vcache[layer].append((w[p + "attn_v.weight"] @ h).reshape(nkv, hs))
            k = np.repeat(np.stack(kcache[layer], axis=1), group, axis=0)  # (nh, t, hs)
            v = np.repeat(np.stack(vcache[layer], axis=1), group, axis=0)
            sc = np.einsum("hd,htd->ht", q, k) / np.sqrt(hs)
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            sc /= sc.sum(axis=1, keepdims=True)
            x = x + w[p + "attn_output.weight"] @ np.einsum("ht,htd->hd", sc, v).reshape(-1)
            h = rms(x, w[p + "ffn_norm.weight"])
            a, b = w[p + "ffn_gate.weight"] @ h, w[p + "ffn_up.weight"] @ h
            x = x + w[p + "ffn_down.weight"] @ (a / (1.0 + np.exp(-a)) * b)
        out.append(cls @ rms(x, w["output_norm.weight"]))
    return np.array(out)


def cmd_forward(model_path, ids_path, out_path):
    with open(ids_path) as f:
        ids = json.load(f)
    z = forward(model_path, ids)
    with open(out_path, "w") as f:
        json.dump({"model": model_path, "n_vocab": int(z.shape[1]), "ids": ids,
                   "logits": z.tolist(), "next": [int(i) for i in z.argmax(axis=1)]}, f)
    return 0


def cmd_compare(ref_path, test_path, max_abs, max_kl):
    a, za = load(ref_path)
    b, zb = load(test_path)
    if a["ids"] != b["ids"] or za.shape != zb.shape:
        print("logits compare: %s and %s evaluate different ids or shapes" % (ref_path, test_path))
        return 1
    diff = np.abs(za - zb)
    la, lb = log_softmax(za), log_softmax(zb)
    kl = (np.exp(la) * (la - lb)).sum(axis=1)
    top1 = float(np.mean(za.argmax(axis=1) == zb.argmax(axis=1)))
    ok = diff.max() <= max_abs and kl.mean() <= max_kl
    print("logits compare: %s vs %s over %d positions: max |dlogit| %.4g (limit %g), "
          "mean |dlogit| %.4g, KL mean %.4g (limit %g) max %.4g nats, top-1 agreement %.3f: %s"
          % (test_path, ref_path, za.shape[0], diff.max(), max_abs, diff.mean(), kl.mean(),
             max_kl, kl.max(), top1, "ok" if ok else "FAILED"))
    return 0 if ok else 1


def main(argv):
    if len(argv) == 4 and argv[0] == "ids":
        with open(argv[3], "w") as f:
            json.dump(make_ids(int(argv[1]), int(argv[2])), f)
        return 0
    if len(argv) == 4 and argv[0] == "forward":
        return cmd_forward(argv[1], argv[2], argv[3])
    if len(argv) == 4 and argv[0] == "sane":
        return cmd_sane(argv[1], int(argv[2]), int(argv[3]))
    if len(argv) == 5 and argv[0] == "compare":
        return cmd_compare(argv[1], argv[2], float(argv[3]), float(argv[4]))
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
