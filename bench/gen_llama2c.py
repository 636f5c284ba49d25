#!/usr/bin/env python3
"""Write a random llama2.c checkpoint (shared classifier) for benchmarks.

usage: gen_llama2c.py OUT DIM HIDDEN LAYERS HEADS KV_HEADS VOCAB SEQ [SEED]
"""
import struct
import sys
import random


def main():
    out = sys.argv[1]
    dim, hidden, layers, heads, kv, vocab, seq = map(int, sys.argv[2:9])
    seed = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    rng = random.Random(seed)
    kv_dim = dim * kv // heads
    head = dim // heads
    n = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv_dim * dim
         + layers * dim * dim + layers * dim + 3 * layers * hidden * dim + dim
         + seq * head)
    with open(out, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq))
        chunk = 4096
        while n > 0:
            k = min(chunk, n)
            f.write(struct.pack("<%df" % k, *(rng.gauss(0, 0.05) for _ in range(k))))
            n -= k


if __name__ == "__main__":
    main()
