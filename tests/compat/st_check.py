#!/usr/bin/env python3
"""Independent check of mcbuild's int8 safetensors export (Hugging Face layout).

usage: st_check.py MODEL.safetensors CONFIG.json SOURCE.llama2c.bin

Written from the safetensors format description (u64 header length, JSON
header, data buffer covered exactly) and the README's int8 layout: for each
quantized Linear weight X, X is I8 [out, in] and X_scale F32 [out, 1] (per
channel), with W = scale * q and scale = max|W_row| / 127.  The source weights
come straight from the llama2.c checkpoint; Q/K rows are brought from the
checkpoint's interleaved RoPE pairing to Hugging Face's rotate-half order.
Exits non-zero on the first mismatch.
"""
import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "I32": np.int32, "U8": np.uint8}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    assert 8 + n <= len(raw), "header runs past the end"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = raw[8 + n:]
    spans = []
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        dt = DT[t["dtype"]]
        count = int(np.prod(t["shape"])) if t["shape"] else 1
        assert e - b == count * np.dtype(dt).itemsize, name + ": size mismatch"
        out[name] = np.frombuffer(buf[b:e], dtype=dt).reshape(t["shape"])
        spans.append((b, e))
    spans.sort()
    at = 0
    for b, e in spans:
        assert b == at, "hole or overlap at %d" % b
        at = e
    assert at == len(buf), "data buffer not covered exactly"
    return out, meta


def llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, layers, heads, kv, vocab, seq = struct.unpack_from("<7i", raw, 0)
    f = np.frombuffer(raw, dtype=np.float32, offset=28)
    kv_dim = dim * kv // heads
    at = 0

    def take(*shape):
        nonlocal at
        n = int(np.prod(shape))
        a = f[at:at + n].reshape(shape)
        at += n
        return a

    w = {"token_embd": take(abs(vocab), dim), "attn_norm": take(layers, dim),
         "wq": take(layers, dim, dim), "wk": take(layers, kv_dim, dim),
         "wv": take(layers, kv_dim, dim), "wo": take(layers, dim, dim),
         "ffn_norm": take(layers, dim), "w1": take(layers, hidden, dim),
         "w2": take(layers, dim, hidden), "w3": take(layers, hidden, dim),
         "norm": take(dim)}
    cfg = dict(dim=dim, hidden=hidden, layers=layers, heads=heads, kv=kv, vocab=abs(vocab), seq=seq)
    return w, cfg


def to_hf(w, n_head):
    """Interleaved pairs (2i, 2i+1) -> rotate-half order, per head."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main():
    st, cfgp, src = sys.argv[1:4]
    t, meta = read_safetensors(st)
    config = json.load(open(cfgp))
    w, c = llama2c(src)
    assert meta.get("format") == "pt", "metadata format must be pt"
    assert config["hidden_size"] == c["dim"] and config["num_hidden_layers"] == c["layers"]
    assert config["num_attention_heads"] == c["heads"] and config["num_key_value_heads"] == c["kv"]
    assert config["intermediate_size"] == c["hidden"] and config["vocab_size"] == c["vocab"]
    qc = config["quantization_config"]
    assert qc["bits"] == 8 and qc["granularity"] == "channel" and qc["symmetric"] is True
    checked = 0
    worst = 0.0
    for layer in range(c["layers"]):
        pre = "model.layers.%d." % layer
        pairs = {
            "self_attn.q_proj": to_hf(w["wq"][layer], c["heads"]),
            "self_attn.k_proj": to_hf(w["wk"][layer], c["kv"]),
            "self_attn.v_proj": w["wv"][layer], "self_attn.o_proj": w["wo"][layer],
            "mlp.gate_proj": w["w1"][layer], "mlp.down_proj": w["w2"][layer],
            "mlp.up_proj": w["w3"][layer],
        }
        for name, ref in pairs.items():
            q = t[pre + name + ".weight"]
            s = t[pre + name + ".weight" + qc["scale_suffix"]]
            assert q.dtype == np.int8 and q.shape == ref.shape, name
            assert s.dtype == np.float32 and s.shape == (ref.shape[0], 1), name
            want = np.abs(ref).max(axis=1, keepdims=True).astype(np.float32) / np.float32(127)
            assert np.array_equal(s, want), pre + name + ": scales differ from max|row|/127"
            err = np.abs(s.astype(np.float64) * q - ref) / np.where(s > 0, s, 1)
            worst = max(worst, float(err.max()))
            assert err.max() <= 0.5 + 1e-5, pre + name + ": error above half a step"
            assert np.abs(q).max() <= 127
            checked += 1
        for name, ref in (("input_layernorm", w["attn_norm"][layer]),
                          ("post_attention_layernorm", w["ffn_norm"][layer])):
            assert np.array_equal(t[pre + name + ".weight"], ref), name
    assert np.array_equal(t["model.embed_tokens.weight"], w["token_embd"])
    assert np.array_equal(t["model.norm.weight"], w["norm"])
    assert ("lm_head.weight" in t) == (not config["tie_word_embeddings"])
    print("st_check: %d int8 tensors checked, worst error %.4f of a step; layout, scales, "
          "Q/K order and float tensors as specified" % (checked, worst))


if __name__ == "__main__":
    main()
