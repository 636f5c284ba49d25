#!/usr/bin/env python3
"""tokvocab: vocabularies and strings for the tokenizer cross-check.

  tokvocab.py spm|bpe IN.gguf STRINGS.json OUT.gguf
  tokvocab.py random SEED N OUT.json

Copies IN.gguf (a llama model with a 512-token vocabulary, such as the F32
stories260K file of run.sh section 1) to OUT.gguf with every tokenizer.* key
replaced by a vocabulary trained here, deterministically, on a fixed English
text plus the test strings themselves, so that the strings exercise merges
as well as fallbacks:

  spm  tokenizer.ggml.model "llama": <unk> <s> </s> (unknown, control,
       control), the 256 byte tokens <0x00>..<0xFF>, the user-defined token
       <sep>, then 252 normal pieces: the most frequent characters of the
       U+2581-escaped text and SentencePiece-BPE merges over words ("▁word").
       Scores: merged pieces -(merge index // 2), so that pairs of pieces tie
       (llama.cpp then merges the leftmost pair), characters -1000 - i.
  bpe  tokenizer.ggml.model "gpt2", pre "gpt-2": the 256 byte-level symbols
       in GPT-2's order, 254 merges learned on the pre-tokenized byte-level
       text (their results are tokens 256..509), the user-defined token
       <sep>, and <|endoftext|> (control, BOS and EOS).

Uses gguf_check.py's reader and writer; the tensors are copied unchanged.

random writes N strings (a JSON array) drawn with Python's random.Random(SEED)
from a pool of characters and pieces chosen to stress both tokenizers:
letters, digits and punctuation of ASCII and other scripts, every kind of
Unicode white space, contractions, the user-defined and control token texts,
U+2581, combining marks, unassigned and private-use code points, emoji, NUL.
"""

import collections
import json
import sys
import unicodedata

import gguf_check as g

N_VOCAB = 512

TEXT = """Once upon a time, there was a little girl named Lily. She loved to play
outside in the sunshine. One day, she saw a big, red ball in the park. She ran
to the ball and picked it up. "This is the best day ever!" she said. Her mom
smiled and said, "Let's go home and have some lunch." They walked home together
and ate sandwiches. After lunch, Lily played with her toys and her dog, Max.
The dog was happy and wagged his tail. It's a nice day, isn't it? They're going
to the store, and we'll see what they've got. I'm sure he'd like it.
The quick brown fox jumps over the lazy dog. 12345 67890 1,000,000 3.14
"""


def corpus(strings_path):
    with open(strings_path, encoding="utf-8") as f:
        strings = json.load(f)
    return TEXT + "\n".join(strings)


def learn(words, n_merges, base):
    """Byte-pair merges over words (tuples of symbols, with counts): the most
    frequent adjacent pair, ties by the pair itself; symbols not in base never
    merge."""
    words = {w: c for w, c in words.items()}
    merges = []
    while len(merges) < n_merges:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                if a in base and b in base:
                    pairs[a, b] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        base.add(best[0] + best[1])
        out = {}
        for w, c in words.items():
            i, nw = 0, []
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    nw.append(w[i] + w[i + 1])
                    i += 2
                else:
                    nw.append(w[i])
                    i += 1
            out[tuple(nw)] = out.get(tuple(nw), 0) + c
        words = out
    return merges


def spm_vocab(text):
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + ["<sep>"]
    types = [2, 3, 3] + [6] * 256 + [4]
    scores = [0.0] * len(toks)
    esc = text.replace(" ", "\u2581")
    # characters: frequent ones only, so that rare ones fall back to bytes
    freq = collections.Counter(ch for ch in esc if ch != "\n")
    chars = [ch for ch, c in sorted(freq.items(), key=lambda x: (-x[1], x[0])) if c >= 3][:80]
    for i, ch in enumerate(chars):
        toks.append(ch)
        types.append(1)
        scores.append(-1000.0 - i)
    words = collections.Counter()
    for line in text.split("\n"):
        for w in line.split(" "):
            if w:
                words[tuple("\u2581" + w)] += 1
    merges = learn(words, N_VOCAB - len(toks), set(chars))
    for i, (a, b) in enumerate(merges):
        if a + b in toks:
            continue
        toks.append(a + b)
        types.append(1)
        scores.append(-float(i // 2))
    assert len(toks) <= N_VOCAB, len(toks)
    while len(toks) < N_VOCAB:  # not reached with the text above
        toks.append("[fill%d]" % len(toks))
        types.append(5)
        scores.append(-10000.0)
    return toks, scores, types


def bytes_to_unicode():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}, [chr(c) for c in cs]


def gpt2_words(text):
    """An approximation of the GPT-2 pattern, good enough for training."""
    def cls(ch):
        if ch.isspace():
            return "s"
        cat = unicodedata.category(ch)[0]
        return {"L": "l", "N": "n"}.get(cat, "o")
    out, i = [], 0
    while i < len(text):
        j = i + (1 if text[i] == " " and i + 1 < len(text) and cls(text[i + 1]) != "s" else 0)
        c = cls(text[j])
        while j < len(text) and cls(text[j]) == c:
            j += 1
        out.append(text[i:j])
        i = j
    return out


def bpe_vocab(text):
    b2u, order = bytes_to_unicode()
    toks = list(order)
    words = collections.Counter()
    for w in gpt2_words(text):
        words[tuple(b2u[b] for b in w.encode("utf-8"))] += 1
    merges = learn(words, N_VOCAB - 256 - 2, set(toks))
    for a, b in merges:
        toks.append(a + b)
    assert len(toks) == N_VOCAB - 2, len(toks)
    toks += ["<sep>", "<|endoftext|>"]
    types = [1] * (N_VOCAB - 2) + [4, 3]
    return toks, types, ["%s %s" % m for m in merges]


POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        + [" "] * 12 + list("\n\t\r\x0b\x0c")
        + list(".,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`")
        + ["'s", "'t", "'re", "'ll", "'ve", "'m", "'d", "<sep>", "<s>", "</s>", "<unk>",
           "<|endoftext|>", "\u2581", "the", "he", "in", "ing", " the", "Lily", "once", "  "]
        + list("\u00e9\u00fc\u00df\u00f1\u00e7\u00c0\u00c9\u01c5\ufb01\u0301\u00bd\u00b2")
        + list("\u65e5\u672c\u8a9e\u306e\u30c6\ud55c\uad6d\u0395\u03bb\u0440\u0443\u0633")
        + list("\u00a0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000\u0085\u200b")
        + list("\u0663\u216b\u0378\ue000\ufffd\x00\x7f\u00ad\U0001f600\U0001d518\U000e0001"))


def random_strings(seed, n, dst):
    import random
    rnd = random.Random(seed)
    out = ["".join(rnd.choice(POOL) for _ in range(rnd.randint(0, 40))) for _ in range(n)]
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False)
    print("wrote %s: %d random strings (seed %d)" % (dst, n, seed))


def main(argv):
    if len(argv) == 5 and argv[1] == "random":
        return random_strings(int(argv[2]), int(argv[3]), argv[4])
    if len(argv) != 5 or argv[1] not in ("spm", "bpe"):
        sys.exit("usage: tokvocab.py spm|bpe IN.gguf STRINGS.json OUT.gguf\n"
                 "       tokvocab.py random SEED N OUT.json")
    kind, src, strings, dst = argv[1:]
    r = g.Reader(src)
    w = g.Writer(r.alignment)
    for key in r.kv_order:
        if key.startswith("tokenizer."):
            continue
        vtype, val = r.kv[key]
        if vtype == g.ARR:
            w.add(key, g.ARR, list(val[1]), val[0])
        else:
            w.add(key, vtype, val)
    text = corpus(strings)
    if kind == "spm":
        toks, scores, types = spm_vocab(text)
        w.add("tokenizer.ggml.model", g.STR, "llama")
        w.add("tokenizer.ggml.tokens", g.ARR, toks, g.STR)
        w.add("tokenizer.ggml.scores", g.ARR, scores, g.F32)
        w.add("tokenizer.ggml.token_type", g.ARR, types, g.I32)
        w.add("tokenizer.ggml.bos_token_id", g.U32, 1)
        w.add("tokenizer.ggml.eos_token_id", g.U32, 2)
        w.add("tokenizer.ggml.unknown_token_id", g.U32, 0)
    else:
        toks, types, merges = bpe_vocab(text)
        w.add("tokenizer.ggml.model", g.STR, "gpt2")
        w.add("tokenizer.ggml.pre", g.STR, "gpt-2")
        w.add("tokenizer.ggml.tokens", g.ARR, toks, g.STR)
        w.add("tokenizer.ggml.token_type", g.ARR, types, g.I32)
        w.add("tokenizer.ggml.merges", g.ARR, merges, g.STR)
        w.add("tokenizer.ggml.bos_token_id", g.U32, N_VOCAB - 1)
        w.add("tokenizer.ggml.eos_token_id", g.U32, N_VOCAB - 1)
    assert len(toks) == N_VOCAB and len(set(toks)) == N_VOCAB
    for t in r.tensors:
        w.add_tensor(t["name"], t["ne"], t["type"], r.raw(t["name"]))
    w.write(dst)
    print("wrote %s: %s vocabulary, %d tokens%s" % (
        dst, kind, len(toks), ", %d merges" % len(merges) if kind == "bpe" else ""))


if __name__ == "__main__":
    main(sys.argv)
