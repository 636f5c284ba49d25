/*
 * tokenizer: the model's own tokenizer, rebuilt from the GGUF tokenizer keys
 * kept in meta["gguf"] (runtime/gguf.c), behaving as llama.cpp's
 * llama_tokenize(text, add_special, parse_special = false) on the same
 * vocabulary (src/llama-vocab.cpp, src/unicode.cpp).  tests/compat/run.sh
 * section 6 checks the ids against llama.cpp itself.
 *
 * Keys read (all under meta["gguf"], in their typed JSON form):
 *   tokenizer.ggml.model        "llama" (SentencePiece-style, SPM) or "gpt2"
 *                               (byte-level BPE); "none"/"no_vocab" or a
 *                               missing key mean the model has no tokenizer
 *   tokenizer.ggml.pre          gpt2 only: the pre-tokenizer (see below)
 *   tokenizer.ggml.tokens       arr of str, one per token id; 1..2^22 of them,
 *                               equal to the model's vocab_size when it has one
 *   tokenizer.ggml.scores       arr of f32 or i32 (optional, 0 when absent)
 *   tokenizer.ggml.token_type   arr of i32 (optional, 1 when absent): 1 normal,
 *                               2 unknown, 3 control, 4 user-defined, 5 unused,
 *                               6 byte; other values act as llama.cpp's
 *                               "undefined" (never printed, never split out)
 *   tokenizer.ggml.merges       gpt2: arr of str "left right" in rank order
 *   tokenizer.ggml.{bos,eos,unknown}_token_id   any integer type
 *   tokenizer.ggml.add_bos_token, add_eos_token, add_space_prefix   bool
 * Defaults as llama.cpp: llama bos 1, eos 2, unk 0, add_bos, add_space_prefix;
 * gpt2 bos = eos = 11, no unk, no add_bos, no space prefix; a default id
 * outside the vocabulary means "none".
 *
 * Encoding (both kinds): the text is first split around user-defined tokens
 * (type 4; control and unknown tokens are not, as parse_special = false):
 * longest token text first (ties: lower id), each splitting every remaining
 * text fragment at its non-overlapping occurrences, left to right.
 *
 * SPM, per text fragment: prefix one ' ' when add_space_prefix and the
 * fragment is the first or follows a user-defined token; replace every ' '
 * with U+2581; split into characters by the UTF-8 lead byte (1 byte below
 * 0xc0, 2 for 0xc*, 3 for 0xe*, 4 for 0xf*, cut at the end of the text:
 * invalid UTF-8 is carried along, not rejected); then repeatedly merge the
 * adjacent pair whose concatenation is a token (of any type) with the highest
 * score, ties to the leftmost pair (a priority queue: O(n log n)); finally
 * each symbol is its token or, failing that, one token per byte: <0xXX>
 * (upper-case hex), else the one-byte text, else unk.
 *
 * BPE ("gpt2"), per text fragment: the GPT-2 pre-tokenizer splits the text
 * into words, as llama.cpp's hand-written matcher of
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (contractions lower-case only; \s is Unicode White_Space).  Each word's
 * bytes become GPT-2's byte-to-unicode symbols; adjacent symbol pairs named by
 * a merge are merged lowest rank first, ties to the leftmost; each final
 * symbol is a token.
 *   \p{L}, \p{N}: ASCII letters and digits, and above U+007F the general
 *   categories L* and N* of Unicode 14.0.0 (the table below, generated with
 *   Python 3.11's unicodedata).  llama.cpp's table follows a later Unicode
 *   version: characters assigned since 14.0 are "other" here.
 *
 * Decoding: normal tokens give their text (SPM: U+2581 as ' '; BPE: the
 * byte-to-unicode symbols back to bytes, other characters as they are),
 * user-defined tokens their text, byte tokens their byte, control, unknown,
 * unused and undefined tokens nothing; with add_space_prefix one leading ' '
 * of the first non-empty piece is dropped (llama.cpp drops it from the first
 * token's piece only, so [BOS, "▁hi"] decodes to " hi" there).
 * decode(encode(s)) == s for a BPE vocabulary with all 256 byte symbols and
 * text without user-defined tokens; for an SPM vocabulary with byte tokens
 * and a U+2581 token, also without U+2581 in the text and without pieces
 * that merge into a control token (text "<s>" when "<s" or "s>" is a piece:
 * llama.cpp then encodes the control token <s> too).
 *
 * Deviations from llama.cpp, all on input llama.cpp mishandles or rejects:
 *   - vocabulary problems are errors with a message where llama.cpp warns,
 *     repairs or goes on: an empty token (renamed "[EMPTY_i]" there), a
 *     duplicate token (an error in recent llama.cpp too), a special id
 *     outside the vocabulary, a byte token whose text is not <0xXX>, a merge
 *     without a space or naming a text that is not a token (Hugging Face's
 *     BPE refuses those too), a NaN score;
 *   - the user-defined tokens of equal length split the text in id order
 *     (llama.cpp: in the order of an unstable sort);
 *   - gpt2 with a pre-tokenizer other than the GPT-2 one ("gpt-2" and the
 *     names llama.cpp maps to it without extra rules: phi-2, gigachat,
 *     a.x-4.0, mellum, mpt, olmo, jais, trillion, granite-docling, exaone4),
 *     or with none ("default", a different chain of patterns), is MCB_EUNSUP;
 *   - SPM: a byte without a byte token encodes as unk (llama.cpp throws);
 *     BPE: a byte whose GPT-2 symbol is not a token is an error (llama.cpp
 *     drops it silently);
 *   - BPE on invalid UTF-8: each invalid byte is one "other" character and
 *     keeps its value (llama.cpp replaces it with U+FFFD);
 *   - token attributes llama.cpp infers from token texts or model names
 *     (control-looking "<|endoftext|>"-like user-defined tokens, lstrip/rstrip
 *     for some models) are not inferred;
 *   - decoding does not apply llama.cpp's clean_spaces post-processing.
 *
 * Limits: MCB_TOKENIZER_MAX_TEXT bytes per encode; tokens of at most 65536
 * bytes and 256 MiB in all; at most 2^24 merges.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/tokenizer.h"
#include "mcb/utf8.h"

#define MAX_TOKEN_LEN 65536u
#define MAX_VOCAB_BYTES (1u << 28)
#define MAX_MERGES (1u << 24)

enum { SPM = 1, BPE = 2 };

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

struct token {
	uint32_t off; /* text at t->text + off, NUL-terminated */
	uint32_t len; /* 1..MAX_TOKEN_LEN bytes, valid UTF-8, no NUL */
	float score;  /* SPM merge priority; never NaN */
	int32_t type; /* tokenizer.ggml.token_type */
	int byte;     /* TT_BYTE: the byte its <0xXX> text names; else -1 */
};

struct merge {
	uint64_t pair;	/* left id << 32 | right id; UINT64_MAX marks an empty slot */
	int32_t rank;	/* index in tokenizer.ggml.merges (the first of duplicates) */
	int32_t result; /* the token whose text is left's text + right's text */
};

struct mcb_tokenizer {
	int kind;	   /* SPM or BPE */
	int32_t n;	   /* number of tokens, >= 1 */
	struct token *tok; /* n entries */
	char *text;	   /* every token's text, NUL-terminated */
	int32_t *slot;	   /* open-addressing hash text -> id: nslot entries (a power
	                          of two >= 2n), -1 when empty; texts are unique */
	size_t nslot;
	struct merge *mslot; /* BPE: (left, right) -> merge, nmslot entries (a power of
	                          two, more than twice the merges), NULL for SPM */
	size_t nmslot;
	uint32_t max_len;      /* longest token text, bytes */
	int32_t bos, eos, unk; /* ids < n, or -1: none */
	int add_bos, add_eos;  /* what add_special adds (the id exists when set) */
	int add_space_prefix;  /* SPM: ' ' before the first fragment and after user tokens */
	int32_t *user;	       /* the user-defined tokens, longest text first, ties by id */
	size_t nuser;
	int32_t byte_tok[256]; /* SPM: the fallback token of each byte (-1: unk or error);
	                          BPE: the token of each byte's GPT-2 symbol, or -1 */
	uint16_t byte_cp[256]; /* BPE: GPT-2's byte-to-unicode map */
	int16_t cp_byte[324];  /* its inverse for code points < 324, -1 elsewhere */
};

/* ---- UTF-8 ---- */

/* The character length llama.cpp reads from a lead byte (unicode_len_utf8). */
static size_t lead_len(unsigned char c)
{
	static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};

	return len[c >> 4];
}

/* Append the UTF-8 form of cp (< 0x800, all this file needs) to b. */
static void put_cp(struct mcb_buf *b, uint32_t cp)
{
	if (cp < 0x80) {
		mcb_buf_addc(b, (char)cp);
	} else {
		mcb_buf_addc(b, (char)(0xc0 | cp >> 6));
		mcb_buf_addc(b, (char)(0x80 | (cp & 0x3f)));
	}
}

/* ---- Unicode classes for the GPT-2 pre-tokenizer ---- */

enum { F_OTHER = 1, F_LETTER = 2, F_NUMBER = 4, F_SPACE = 8 };
enum { UL = F_LETTER, UN = F_NUMBER };

/* General categories L* (UL) and N* (UN) above U+007F, Unicode 14.0.0:
 * maximal runs, sorted.  Generated with Python 3.11:
 *   unicodedata.category(chr(c))[0] in "LN" for c in range(0x80, 0x110000) */
static const struct urange {
	uint32_t lo, hi;
	unsigned char cls;
} uranges[] = {
	/* clang-format off */
	{0xaa, 0xaa, UL}, {0xb2, 0xb3, UN}, {0xb5, 0xb5, UL}, {0xb9, 0xb9, UN}, {0xba, 0xba, UL},
	{0xbc, 0xbe, UN}, {0xc0, 0xd6, UL}, {0xd8, 0xf6, UL}, {0xf8, 0x2c1, UL},
	{0x2c6, 0x2d1, UL}, {0x2e0, 0x2e4, UL}, {0x2ec, 0x2ec, UL}, {0x2ee, 0x2ee, UL},
	{0x370, 0x374, UL}, {0x376, 0x377, UL}, {0x37a, 0x37d, UL}, {0x37f, 0x37f, UL},
	{0x386, 0x386, UL}, {0x388, 0x38a, UL}, {0x38c, 0x38c, UL}, {0x38e, 0x3a1, UL},
	{0x3a3, 0x3f5, UL}, {0x3f7, 0x481, UL}, {0x48a, 0x52f, UL}, {0x531, 0x556, UL},
	{0x559, 0x559, UL}, {0x560, 0x588, UL}, {0x5d0, 0x5ea, UL}, {0x5ef, 0x5f2, UL},
	{0x620, 0x64a, UL}, {0x660, 0x669, UN}, {0x66e, 0x66f, UL}, {0x671, 0x6d3, UL},
	{0x6d5, 0x6d5, UL}, {0x6e5, 0x6e6, UL}, {0x6ee, 0x6ef, UL}, {0x6f0, 0x6f9, UN},
	{0x6fa, 0x6fc, UL}, {0x6ff, 0x6ff, UL}, {0x710, 0x710, UL}, {0x712, 0x72f, UL},
	{0x74d, 0x7a5, UL}, {0x7b1, 0x7b1, UL}, {0x7c0, 0x7c9, UN}, {0x7ca, 0x7ea, UL},
	{0x7f4, 0x7f5, UL}, {0x7fa, 0x7fa, UL}, {0x800, 0x815, UL}, {0x81a, 0x81a, UL},
	{0x824, 0x824, UL}, {0x828, 0x828, UL}, {0x840, 0x858, UL}, {0x860, 0x86a, UL},
	{0x870, 0x887, UL}, {0x889, 0x88e, UL}, {0x8a0, 0x8c9, UL}, {0x904, 0x939, UL},
	{0x93d, 0x93d, UL}, {0x950, 0x950, UL}, {0x958, 0x961, UL}, {0x966, 0x96f, UN},
	{0x971, 0x980, UL}, {0x985, 0x98c, UL}, {0x98f, 0x990, UL}, {0x993, 0x9a8, UL},
	{0x9aa, 0x9b0, UL}, {0x9b2, 0x9b2, UL}, {0x9b6, 0x9b9, UL}, {0x9bd, 0x9bd, UL},
	{0x9ce, 0x9ce, UL}, {0x9dc, 0x9dd, UL}, {0x9df, 0x9e1, UL}, {0x9e6, 0x9ef, UN},
	{0x9f0, 0x9f1, UL}, {0x9f4, 0x9f9, UN}, {0x9fc, 0x9fc, UL}, {0xa05, 0xa0a, UL},
	{0xa0f, 0xa10, UL}, {0xa13, 0xa28, UL}, {0xa2a, 0xa30, UL}, {0xa32, 0xa33, UL},
	{0xa35, 0xa36, UL}, {0xa38, 0xa39, UL}, {0xa59, 0xa5c, UL}, {0xa5e, 0xa5e, UL},
	{0xa66, 0xa6f, UN}, {0xa72, 0xa74, UL}, {0xa85, 0xa8d, UL}, {0xa8f, 0xa91, UL},
	{0xa93, 0xaa8, UL}, {0xaaa, 0xab0, UL}, {0xab2, 0xab3, UL}, {0xab5, 0xab9, UL},
	{0xabd, 0xabd, UL}, {0xad0, 0xad0, UL}, {0xae0, 0xae1, UL}, {0xae6, 0xaef, UN},
	{0xaf9, 0xaf9, UL}, {0xb05, 0xb0c, UL}, {0xb0f, 0xb10, UL}, {0xb13, 0xb28, UL},
	{0xb2a, 0xb30, UL}, {0xb32, 0xb33, UL}, {0xb35, 0xb39, UL}, {0xb3d, 0xb3d, UL},
	{0xb5c, 0xb5d, UL}, {0xb5f, 0xb61, UL}, {0xb66, 0xb6f, UN}, {0xb71, 0xb71, UL},
	{0xb72, 0xb77, UN}, {0xb83, 0xb83, UL}, {0xb85, 0xb8a, UL}, {0xb8e, 0xb90, UL},
	{0xb92, 0xb95, UL}, {0xb99, 0xb9a, UL}, {0xb9c, 0xb9c, UL}, {0xb9e, 0xb9f, UL},
	{0xba3, 0xba4, UL}, {0xba8, 0xbaa, UL}, {0xbae, 0xbb9, UL}, {0xbd0, 0xbd0, UL},
	{0xbe6, 0xbf2, UN}, {0xc05, 0xc0c, UL}, {0xc0e, 0xc10, UL}, {0xc12, 0xc28, UL},
	{0xc2a, 0xc39, UL}, {0xc3d, 0xc3d, UL}, {0xc58, 0xc5a, UL}, {0xc5d, 0xc5d, UL},
	{0xc60, 0xc61, UL}, {0xc66, 0xc6f, UN}, {0xc78, 0xc7e, UN}, {0xc80, 0xc80, UL},
	{0xc85, 0xc8c, UL}, {0xc8e, 0xc90, UL}, {0xc92, 0xca8, UL}, {0xcaa, 0xcb3, UL},
	{0xcb5, 0xcb9, UL}, {0xcbd, 0xcbd, UL}, {0xcdd, 0xcde, UL}, {0xce0, 0xce1, UL},
	{0xce6, 0xcef, UN}, {0xcf1, 0xcf2, UL}, {0xd04, 0xd0c, UL}, {0xd0e, 0xd10, UL},
	{0xd12, 0xd3a, UL}, {0xd3d, 0xd3d, UL}, {0xd4e, 0xd4e, UL}, {0xd54, 0xd56, UL},
	{0xd58, 0xd5e, UN}, {0xd5f, 0xd61, UL}, {0xd66, 0xd78, UN}, {0xd7a, 0xd7f, UL},
	{0xd85, 0xd96, UL}, {0xd9a, 0xdb1, UL}, {0xdb3, 0xdbb, UL}, {0xdbd, 0xdbd, UL},
	{0xdc0, 0xdc6, UL}, {0xde6, 0xdef, UN}, {0xe01, 0xe30, UL}, {0xe32, 0xe33, UL},
	{0xe40, 0xe46, UL}, {0xe50, 0xe59, UN}, {0xe81, 0xe82, UL}, {0xe84, 0xe84, UL},
	{0xe86, 0xe8a, UL}, {0xe8c, 0xea3, UL}, {0xea5, 0xea5, UL}, {0xea7, 0xeb0, UL},
	{0xeb2, 0xeb3, UL}, {0xebd, 0xebd, UL}, {0xec0, 0xec4, UL}, {0xec6, 0xec6, UL},
	{0xed0, 0xed9, UN}, {0xedc, 0xedf, UL}, {0xf00, 0xf00, UL}, {0xf20, 0xf33, UN},
	{0xf40, 0xf47, UL}, {0xf49, 0xf6c, UL}, {0xf88, 0xf8c, UL}, {0x1000, 0x102a, UL},
	{0x103f, 0x103f, UL}, {0x1040, 0x1049, UN}, {0x1050, 0x1055, UL}, {0x105a, 0x105d, UL},
	{0x1061, 0x1061, UL}, {0x1065, 0x1066, UL}, {0x106e, 0x1070, UL}, {0x1075, 0x1081, UL},
	{0x108e, 0x108e, UL}, {0x1090, 0x1099, UN}, {0x10a0, 0x10c5, UL}, {0x10c7, 0x10c7, UL},
	{0x10cd, 0x10cd, UL}, {0x10d0, 0x10fa, UL}, {0x10fc, 0x1248, UL}, {0x124a, 0x124d, UL},
	{0x1250, 0x1256, UL}, {0x1258, 0x1258, UL}, {0x125a, 0x125d, UL}, {0x1260, 0x1288, UL},
	{0x128a, 0x128d, UL}, {0x1290, 0x12b0, UL}, {0x12b2, 0x12b5, UL}, {0x12b8, 0x12be, UL},
	{0x12c0, 0x12c0, UL}, {0x12c2, 0x12c5, UL}, {0x12c8, 0x12d6, UL}, {0x12d8, 0x1310, UL},
	{0x1312, 0x1315, UL}, {0x1318, 0x135a, UL}, {0x1369, 0x137c, UN}, {0x1380, 0x138f, UL},
	{0x13a0, 0x13f5, UL}, {0x13f8, 0x13fd, UL}, {0x1401, 0x166c, UL}, {0x166f, 0x167f, UL},
	{0x1681, 0x169a, UL}, {0x16a0, 0x16ea, UL}, {0x16ee, 0x16f0, UN}, {0x16f1, 0x16f8, UL},
	{0x1700, 0x1711, UL}, {0x171f, 0x1731, UL}, {0x1740, 0x1751, UL}, {0x1760, 0x176c, UL},
	{0x176e, 0x1770, UL}, {0x1780, 0x17b3, UL}, {0x17d7, 0x17d7, UL}, {0x17dc, 0x17dc, UL},
	{0x17e0, 0x17e9, UN}, {0x17f0, 0x17f9, UN}, {0x1810, 0x1819, UN}, {0x1820, 0x1878, UL},
	{0x1880, 0x1884, UL}, {0x1887, 0x18a8, UL}, {0x18aa, 0x18aa, UL}, {0x18b0, 0x18f5, UL},
	{0x1900, 0x191e, UL}, {0x1946, 0x194f, UN}, {0x1950, 0x196d, UL}, {0x1970, 0x1974, UL},
	{0x1980, 0x19ab, UL}, {0x19b0, 0x19c9, UL}, {0x19d0, 0x19da, UN}, {0x1a00, 0x1a16, UL},
	{0x1a20, 0x1a54, UL}, {0x1a80, 0x1a89, UN}, {0x1a90, 0x1a99, UN}, {0x1aa7, 0x1aa7, UL},
	{0x1b05, 0x1b33, UL}, {0x1b45, 0x1b4c, UL}, {0x1b50, 0x1b59, UN}, {0x1b83, 0x1ba0, UL},
	{0x1bae, 0x1baf, UL}, {0x1bb0, 0x1bb9, UN}, {0x1bba, 0x1be5, UL}, {0x1c00, 0x1c23, UL},
	{0x1c40, 0x1c49, UN}, {0x1c4d, 0x1c4f, UL}, {0x1c50, 0x1c59, UN}, {0x1c5a, 0x1c7d, UL},
	{0x1c80, 0x1c88, UL}, {0x1c90, 0x1cba, UL}, {0x1cbd, 0x1cbf, UL}, {0x1ce9, 0x1cec, UL},
	{0x1cee, 0x1cf3, UL}, {0x1cf5, 0x1cf6, UL}, {0x1cfa, 0x1cfa, UL}, {0x1d00, 0x1dbf, UL},
	{0x1e00, 0x1f15, UL}, {0x1f18, 0x1f1d, UL}, {0x1f20, 0x1f45, UL}, {0x1f48, 0x1f4d, UL},
	{0x1f50, 0x1f57, UL}, {0x1f59, 0x1f59, UL}, {0x1f5b, 0x1f5b, UL}, {0x1f5d, 0x1f5d, UL},
	{0x1f5f, 0x1f7d, UL}, {0x1f80, 0x1fb4, UL}, {0x1fb6, 0x1fbc, UL}, {0x1fbe, 0x1fbe, UL},
	{0x1fc2, 0x1fc4, UL}, {0x1fc6, 0x1fcc, UL}, {0x1fd0, 0x1fd3, UL}, {0x1fd6, 0x1fdb, UL},
	{0x1fe0, 0x1fec, UL}, {0x1ff2, 0x1ff4, UL}, {0x1ff6, 0x1ffc, UL}, {0x2070, 0x2070, UN},
	{0x2071, 0x2071, UL}, {0x2074, 0x2079, UN}, {0x207f, 0x207f, UL}, {0x2080, 0x2089, UN},
	{0x2090, 0x209c, UL}, {0x2102, 0x2102, UL}, {0x2107, 0x2107, UL}, {0x210a, 0x2113, UL},
	{0x2115, 0x2115, UL}, {0x2119, 0x211d, UL}, {0x2124, 0x2124, UL}, {0x2126, 0x2126, UL},
	{0x2128, 0x2128, UL}, {0x212a, 0x212d, UL}, {0x212f, 0x2139, UL}, {0x213c, 0x213f, UL},
	{0x2145, 0x2149, UL}, {0x214e, 0x214e, UL}, {0x2150, 0x2182, UN}, {0x2183, 0x2184, UL},
	{0x2185, 0x2189, UN}, {0x2460, 0x249b, UN}, {0x24ea, 0x24ff, UN}, {0x2776, 0x2793, UN},
	{0x2c00, 0x2ce4, UL}, {0x2ceb, 0x2cee, UL}, {0x2cf2, 0x2cf3, UL}, {0x2cfd, 0x2cfd, UN},
	{0x2d00, 0x2d25, UL}, {0x2d27, 0x2d27, UL}, {0x2d2d, 0x2d2d, UL}, {0x2d30, 0x2d67, UL},
	{0x2d6f, 0x2d6f, UL}, {0x2d80, 0x2d96, UL}, {0x2da0, 0x2da6, UL}, {0x2da8, 0x2dae, UL},
	{0x2db0, 0x2db6, UL}, {0x2db8, 0x2dbe, UL}, {0x2dc0, 0x2dc6, UL}, {0x2dc8, 0x2dce, UL},
	{0x2dd0, 0x2dd6, UL}, {0x2dd8, 0x2dde, UL}, {0x2e2f, 0x2e2f, UL}, {0x3005, 0x3006, UL},
	{0x3007, 0x3007, UN}, {0x3021, 0x3029, UN}, {0x3031, 0x3035, UL}, {0x3038, 0x303a, UN},
	{0x303b, 0x303c, UL}, {0x3041, 0x3096, UL}, {0x309d, 0x309f, UL}, {0x30a1, 0x30fa, UL},
	{0x30fc, 0x30ff, UL}, {0x3105, 0x312f, UL}, {0x3131, 0x318e, UL}, {0x3192, 0x3195, UN},
	{0x31a0, 0x31bf, UL}, {0x31f0, 0x31ff, UL}, {0x3220, 0x3229, UN}, {0x3248, 0x324f, UN},
	{0x3251, 0x325f, UN}, {0x3280, 0x3289, UN}, {0x32b1, 0x32bf, UN}, {0x3400, 0x4dbf, UL},
	{0x4e00, 0xa48c, UL}, {0xa4d0, 0xa4fd, UL}, {0xa500, 0xa60c, UL}, {0xa610, 0xa61f, UL},
	{0xa620, 0xa629, UN}, {0xa62a, 0xa62b, UL}, {0xa640, 0xa66e, UL}, {0xa67f, 0xa69d, UL},
	{0xa6a0, 0xa6e5, UL}, {0xa6e6, 0xa6ef, UN}, {0xa717, 0xa71f, UL}, {0xa722, 0xa788, UL},
	{0xa78b, 0xa7ca, UL}, {0xa7d0, 0xa7d1, UL}, {0xa7d3, 0xa7d3, UL}, {0xa7d5, 0xa7d9, UL},
	{0xa7f2, 0xa801, UL}, {0xa803, 0xa805, UL}, {0xa807, 0xa80a, UL}, {0xa80c, 0xa822, UL},
	{0xa830, 0xa835, UN}, {0xa840, 0xa873, UL}, {0xa882, 0xa8b3, UL}, {0xa8d0, 0xa8d9, UN},
	{0xa8f2, 0xa8f7, UL}, {0xa8fb, 0xa8fb, UL}, {0xa8fd, 0xa8fe, UL}, {0xa900, 0xa909, UN},
	{0xa90a, 0xa925, UL}, {0xa930, 0xa946, UL}, {0xa960, 0xa97c, UL}, {0xa984, 0xa9b2, UL},
	{0xa9cf, 0xa9cf, UL}, {0xa9d0, 0xa9d9, UN}, {0xa9e0, 0xa9e4, UL}, {0xa9e6, 0xa9ef, UL},
	{0xa9f0, 0xa9f9, UN}, {0xa9fa, 0xa9fe, UL}, {0xaa00, 0xaa28, UL}, {0xaa40, 0xaa42, UL},
	{0xaa44, 0xaa4b, UL}, {0xaa50, 0xaa59, UN}, {0xaa60, 0xaa76, UL}, {0xaa7a, 0xaa7a, UL},
	{0xaa7e, 0xaaaf, UL}, {0xaab1, 0xaab1, UL}, {0xaab5, 0xaab6, UL}, {0xaab9, 0xaabd, UL},
	{0xaac0, 0xaac0, UL}, {0xaac2, 0xaac2, UL}, {0xaadb, 0xaadd, UL}, {0xaae0, 0xaaea, UL},
	{0xaaf2, 0xaaf4, UL}, {0xab01, 0xab06, UL}, {0xab09, 0xab0e, UL}, {0xab11, 0xab16, UL},
	{0xab20, 0xab26, UL}, {0xab28, 0xab2e, UL}, {0xab30, 0xab5a, UL}, {0xab5c, 0xab69, UL},
	{0xab70, 0xabe2, UL}, {0xabf0, 0xabf9, UN}, {0xac00, 0xd7a3, UL}, {0xd7b0, 0xd7c6, UL},
	{0xd7cb, 0xd7fb, UL}, {0xf900, 0xfa6d, UL}, {0xfa70, 0xfad9, UL}, {0xfb00, 0xfb06, UL},
	{0xfb13, 0xfb17, UL}, {0xfb1d, 0xfb1d, UL}, {0xfb1f, 0xfb28, UL}, {0xfb2a, 0xfb36, UL},
	{0xfb38, 0xfb3c, UL}, {0xfb3e, 0xfb3e, UL}, {0xfb40, 0xfb41, UL}, {0xfb43, 0xfb44, UL},
	{0xfb46, 0xfbb1, UL}, {0xfbd3, 0xfd3d, UL}, {0xfd50, 0xfd8f, UL}, {0xfd92, 0xfdc7, UL},
	{0xfdf0, 0xfdfb, UL}, {0xfe70, 0xfe74, UL}, {0xfe76, 0xfefc, UL}, {0xff10, 0xff19, UN},
	{0xff21, 0xff3a, UL}, {0xff41, 0xff5a, UL}, {0xff66, 0xffbe, UL}, {0xffc2, 0xffc7, UL},
	{0xffca, 0xffcf, UL}, {0xffd2, 0xffd7, UL}, {0xffda, 0xffdc, UL}, {0x10000, 0x1000b, UL},
	{0x1000d, 0x10026, UL}, {0x10028, 0x1003a, UL}, {0x1003c, 0x1003d, UL},
	{0x1003f, 0x1004d, UL}, {0x10050, 0x1005d, UL}, {0x10080, 0x100fa, UL},
	{0x10107, 0x10133, UN}, {0x10140, 0x10178, UN}, {0x1018a, 0x1018b, UN},
	{0x10280, 0x1029c, UL}, {0x102a0, 0x102d0, UL}, {0x102e1, 0x102fb, UN},
	{0x10300, 0x1031f, UL}, {0x10320, 0x10323, UN}, {0x1032d, 0x10340, UL},
	{0x10341, 0x10341, UN}, {0x10342, 0x10349, UL}, {0x1034a, 0x1034a, UN},
	{0x10350, 0x10375, UL}, {0x10380, 0x1039d, UL}, {0x103a0, 0x103c3, UL},
	{0x103c8, 0x103cf, UL}, {0x103d1, 0x103d5, UN}, {0x10400, 0x1049d, UL},
	{0x104a0, 0x104a9, UN}, {0x104b0, 0x104d3, UL}, {0x104d8, 0x104fb, UL},
	{0x10500, 0x10527, UL}, {0x10530, 0x10563, UL}, {0x10570, 0x1057a, UL},
	{0x1057c, 0x1058a, UL}, {0x1058c, 0x10592, UL}, {0x10594, 0x10595, UL},
	{0x10597, 0x105a1, UL}, {0x105a3, 0x105b1, UL}, {0x105b3, 0x105b9, UL},
	{0x105bb, 0x105bc, UL}, {0x10600, 0x10736, UL}, {0x10740, 0x10755, UL},
	{0x10760, 0x10767, UL}, {0x10780, 0x10785, UL}, {0x10787, 0x107b0, UL},
	{0x107b2, 0x107ba, UL}, {0x10800, 0x10805, UL}, {0x10808, 0x10808, UL},
	{0x1080a, 0x10835, UL}, {0x10837, 0x10838, UL}, {0x1083c, 0x1083c, UL},
	{0x1083f, 0x10855, UL}, {0x10858, 0x1085f, UN}, {0x10860, 0x10876, UL},
	{0x10879, 0x1087f, UN}, {0x10880, 0x1089e, UL}, {0x108a7, 0x108af, UN},
	{0x108e0, 0x108f2, UL}, {0x108f4, 0x108f5, UL}, {0x108fb, 0x108ff, UN},
	{0x10900, 0x10915, UL}, {0x10916, 0x1091b, UN}, {0x10920, 0x10939, UL},
	{0x10980, 0x109b7, UL}, {0x109bc, 0x109bd, UN}, {0x109be, 0x109bf, UL},
	{0x109c0, 0x109cf, UN}, {0x109d2, 0x109ff, UN}, {0x10a00, 0x10a00, UL},
	{0x10a10, 0x10a13, UL}, {0x10a15, 0x10a17, UL}, {0x10a19, 0x10a35, UL},
	{0x10a40, 0x10a48, UN}, {0x10a60, 0x10a7c, UL}, {0x10a7d, 0x10a7e, UN},
	{0x10a80, 0x10a9c, UL}, {0x10a9d, 0x10a9f, UN}, {0x10ac0, 0x10ac7, UL},
	{0x10ac9, 0x10ae4, UL}, {0x10aeb, 0x10aef, UN}, {0x10b00, 0x10b35, UL},
	{0x10b40, 0x10b55, UL}, {0x10b58, 0x10b5f, UN}, {0x10b60, 0x10b72, UL},
	{0x10b78, 0x10b7f, UN}, {0x10b80, 0x10b91, UL}, {0x10ba9, 0x10baf, UN},
	{0x10c00, 0x10c48, UL}, {0x10c80, 0x10cb2, UL}, {0x10cc0, 0x10cf2, UL},
	{0x10cfa, 0x10cff, UN}, {0x10d00, 0x10d23, UL}, {0x10d30, 0x10d39, UN},
	{0x10e60, 0x10e7e, UN}, {0x10e80, 0x10ea9, UL}, {0x10eb0, 0x10eb1, UL},
	{0x10f00, 0x10f1c, UL}, {0x10f1d, 0x10f26, UN}, {0x10f27, 0x10f27, UL},
	{0x10f30, 0x10f45, UL}, {0x10f51, 0x10f54, UN}, {0x10f70, 0x10f81, UL},
	{0x10fb0, 0x10fc4, UL}, {0x10fc5, 0x10fcb, UN}, {0x10fe0, 0x10ff6, UL},
	{0x11003, 0x11037, UL}, {0x11052, 0x1106f, UN}, {0x11071, 0x11072, UL},
	{0x11075, 0x11075, UL}, {0x11083, 0x110af, UL}, {0x110d0, 0x110e8, UL},
	{0x110f0, 0x110f9, UN}, {0x11103, 0x11126, UL}, {0x11136, 0x1113f, UN},
	{0x11144, 0x11144, UL}, {0x11147, 0x11147, UL}, {0x11150, 0x11172, UL},
	{0x11176, 0x11176, UL}, {0x11183, 0x111b2, UL}, {0x111c1, 0x111c4, UL},
	{0x111d0, 0x111d9, UN}, {0x111da, 0x111da, UL}, {0x111dc, 0x111dc, UL},
	{0x111e1, 0x111f4, UN}, {0x11200, 0x11211, UL}, {0x11213, 0x1122b, UL},
	{0x11280, 0x11286, UL}, {0x11288, 0x11288, UL}, {0x1128a, 0x1128d, UL},
	{0x1128f, 0x1129d, UL}, {0x1129f, 0x112a8, UL}, {0x112b0, 0x112de, UL},
	{0x112f0, 0x112f9, UN}, {0x11305, 0x1130c, UL}, {0x1130f, 0x11310, UL},
	{0x11313, 0x11328, UL}, {0x1132a, 0x11330, UL}, {0x11332, 0x11333, UL},
	{0x11335, 0x11339, UL}, {0x1133d, 0x1133d, UL}, {0x11350, 0x11350, UL},
	{0x1135d, 0x11361, UL}, {0x11400, 0x11434, UL}, {0x11447, 0x1144a, UL},
	{0x11450, 0x11459, UN}, {0x1145f, 0x11461, UL}, {0x11480, 0x114af, UL},
	{0x114c4, 0x114c5, UL}, {0x114c7, 0x114c7, UL}, {0x114d0, 0x114d9, UN},
	{0x11580, 0x115ae, UL}, {0x115d8, 0x115db, UL}, {0x11600, 0x1162f, UL},
	{0x11644, 0x11644, UL}, {0x11650, 0x11659, UN}, {0x11680, 0x116aa, UL},
	{0x116b8, 0x116b8, UL}, {0x116c0, 0x116c9, UN}, {0x11700, 0x1171a, UL},
	{0x11730, 0x1173b, UN}, {0x11740, 0x11746, UL}, {0x11800, 0x1182b, UL},
	{0x118a0, 0x118df, UL}, {0x118e0, 0x118f2, UN}, {0x118ff, 0x11906, UL},
	{0x11909, 0x11909, UL}, {0x1190c, 0x11913, UL}, {0x11915, 0x11916, UL},
	{0x11918, 0x1192f, UL}, {0x1193f, 0x1193f, UL}, {0x11941, 0x11941, UL},
	{0x11950, 0x11959, UN}, {0x119a0, 0x119a7, UL}, {0x119aa, 0x119d0, UL},
	{0x119e1, 0x119e1, UL}, {0x119e3, 0x119e3, UL}, {0x11a00, 0x11a00, UL},
	{0x11a0b, 0x11a32, UL}, {0x11a3a, 0x11a3a, UL}, {0x11a50, 0x11a50, UL},
	{0x11a5c, 0x11a89, UL}, {0x11a9d, 0x11a9d, UL}, {0x11ab0, 0x11af8, UL},
	{0x11c00, 0x11c08, UL}, {0x11c0a, 0x11c2e, UL}, {0x11c40, 0x11c40, UL},
	{0x11c50, 0x11c6c, UN}, {0x11c72, 0x11c8f, UL}, {0x11d00, 0x11d06, UL},
	{0x11d08, 0x11d09, UL}, {0x11d0b, 0x11d30, UL}, {0x11d46, 0x11d46, UL},
	{0x11d50, 0x11d59, UN}, {0x11d60, 0x11d65, UL}, {0x11d67, 0x11d68, UL},
	{0x11d6a, 0x11d89, UL}, {0x11d98, 0x11d98, UL}, {0x11da0, 0x11da9, UN},
	{0x11ee0, 0x11ef2, UL}, {0x11fb0, 0x11fb0, UL}, {0x11fc0, 0x11fd4, UN},
	{0x12000, 0x12399, UL}, {0x12400, 0x1246e, UN}, {0x12480, 0x12543, UL},
	{0x12f90, 0x12ff0, UL}, {0x13000, 0x1342e, UL}, {0x14400, 0x14646, UL},
	{0x16800, 0x16a38, UL}, {0x16a40, 0x16a5e, UL}, {0x16a60, 0x16a69, UN},
	{0x16a70, 0x16abe, UL}, {0x16ac0, 0x16ac9, UN}, {0x16ad0, 0x16aed, UL},
	{0x16b00, 0x16b2f, UL}, {0x16b40, 0x16b43, UL}, {0x16b50, 0x16b59, UN},
	{0x16b5b, 0x16b61, UN}, {0x16b63, 0x16b77, UL}, {0x16b7d, 0x16b8f, UL},
	{0x16e40, 0x16e7f, UL}, {0x16e80, 0x16e96, UN}, {0x16f00, 0x16f4a, UL},
	{0x16f50, 0x16f50, UL}, {0x16f93, 0x16f9f, UL}, {0x16fe0, 0x16fe1, UL},
	{0x16fe3, 0x16fe3, UL}, {0x17000, 0x187f7, UL}, {0x18800, 0x18cd5, UL},
	{0x18d00, 0x18d08, UL}, {0x1aff0, 0x1aff3, UL}, {0x1aff5, 0x1affb, UL},
	{0x1affd, 0x1affe, UL}, {0x1b000, 0x1b122, UL}, {0x1b150, 0x1b152, UL},
	{0x1b164, 0x1b167, UL}, {0x1b170, 0x1b2fb, UL}, {0x1bc00, 0x1bc6a, UL},
	{0x1bc70, 0x1bc7c, UL}, {0x1bc80, 0x1bc88, UL}, {0x1bc90, 0x1bc99, UL},
	{0x1d2e0, 0x1d2f3, UN}, {0x1d360, 0x1d378, UN}, {0x1d400, 0x1d454, UL},
	{0x1d456, 0x1d49c, UL}, {0x1d49e, 0x1d49f, UL}, {0x1d4a2, 0x1d4a2, UL},
	{0x1d4a5, 0x1d4a6, UL}, {0x1d4a9, 0x1d4ac, UL}, {0x1d4ae, 0x1d4b9, UL},
	{0x1d4bb, 0x1d4bb, UL}, {0x1d4bd, 0x1d4c3, UL}, {0x1d4c5, 0x1d505, UL},
	{0x1d507, 0x1d50a, UL}, {0x1d50d, 0x1d514, UL}, {0x1d516, 0x1d51c, UL},
	{0x1d51e, 0x1d539, UL}, {0x1d53b, 0x1d53e, UL}, {0x1d540, 0x1d544, UL},
	{0x1d546, 0x1d546, UL}, {0x1d54a, 0x1d550, UL}, {0x1d552, 0x1d6a5, UL},
	{0x1d6a8, 0x1d6c0, UL}, {0x1d6c2, 0x1d6da, UL}, {0x1d6dc, 0x1d6fa, UL},
	{0x1d6fc, 0x1d714, UL}, {0x1d716, 0x1d734, UL}, {0x1d736, 0x1d74e, UL},
	{0x1d750, 0x1d76e, UL}, {0x1d770, 0x1d788, UL}, {0x1d78a, 0x1d7a8, UL},
	{0x1d7aa, 0x1d7c2, UL}, {0x1d7c4, 0x1d7cb, UL}, {0x1d7ce, 0x1d7ff, UN},
	{0x1df00, 0x1df1e, UL}, {0x1e100, 0x1e12c, UL}, {0x1e137, 0x1e13d, UL},
	{0x1e140, 0x1e149, UN}, {0x1e14e, 0x1e14e, UL}, {0x1e290, 0x1e2ad, UL},
	{0x1e2c0, 0x1e2eb, UL}, {0x1e2f0, 0x1e2f9, UN}, {0x1e7e0, 0x1e7e6, UL},
	{0x1e7e8, 0x1e7eb, UL}, {0x1e7ed, 0x1e7ee, UL}, {0x1e7f0, 0x1e7fe, UL},
	{0x1e800, 0x1e8c4, UL}, {0x1e8c7, 0x1e8cf, UN}, {0x1e900, 0x1e943, UL},
	{0x1e94b, 0x1e94b, UL}, {0x1e950, 0x1e959, UN}, {0x1ec71, 0x1ecab, UN},
	{0x1ecad, 0x1ecaf, UN}, {0x1ecb1, 0x1ecb4, UN}, {0x1ed01, 0x1ed2d, UN},
	{0x1ed2f, 0x1ed3d, UN}, {0x1ee00, 0x1ee03, UL}, {0x1ee05, 0x1ee1f, UL},
	{0x1ee21, 0x1ee22, UL}, {0x1ee24, 0x1ee24, UL}, {0x1ee27, 0x1ee27, UL},
	{0x1ee29, 0x1ee32, UL}, {0x1ee34, 0x1ee37, UL}, {0x1ee39, 0x1ee39, UL},
	{0x1ee3b, 0x1ee3b, UL}, {0x1ee42, 0x1ee42, UL}, {0x1ee47, 0x1ee47, UL},
	{0x1ee49, 0x1ee49, UL}, {0x1ee4b, 0x1ee4b, UL}, {0x1ee4d, 0x1ee4f, UL},
	{0x1ee51, 0x1ee52, UL}, {0x1ee54, 0x1ee54, UL}, {0x1ee57, 0x1ee57, UL},
	{0x1ee59, 0x1ee59, UL}, {0x1ee5b, 0x1ee5b, UL}, {0x1ee5d, 0x1ee5d, UL},
	{0x1ee5f, 0x1ee5f, UL}, {0x1ee61, 0x1ee62, UL}, {0x1ee64, 0x1ee64, UL},
	{0x1ee67, 0x1ee6a, UL}, {0x1ee6c, 0x1ee72, UL}, {0x1ee74, 0x1ee77, UL},
	{0x1ee79, 0x1ee7c, UL}, {0x1ee7e, 0x1ee7e, UL}, {0x1ee80, 0x1ee89, UL},
	{0x1ee8b, 0x1ee9b, UL}, {0x1eea1, 0x1eea3, UL}, {0x1eea5, 0x1eea9, UL},
	{0x1eeab, 0x1eebb, UL}, {0x1f100, 0x1f10c, UN}, {0x1fbf0, 0x1fbf9, UN},
	{0x20000, 0x2a6df, UL}, {0x2a700, 0x2b738, UL}, {0x2b740, 0x2b81d, UL},
	{0x2b820, 0x2cea1, UL}, {0x2ceb0, 0x2ebe0, UL}, {0x2f800, 0x2fa1d, UL},
	{0x30000, 0x3134a, UL},
	/* clang-format on */
};

/* Unicode White_Space (what llama.cpp's \s matches). */
static int is_space(uint32_t c)
{
	return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	       c == 0x205f || c == 0x3000;
}

/* F_SPACE, F_LETTER, F_NUMBER or F_OTHER (cp UINT32_MAX: an invalid byte). */
static unsigned char cp_class(uint32_t c)
{
	size_t lo = 0, hi = sizeof(uranges) / sizeof(uranges[0]), mid;

	if (is_space(c))
		return F_SPACE;
	if (c < 0x80) {
		if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
			return F_LETTER;
		return c >= '0' && c <= '9' ? F_NUMBER : F_OTHER;
	}
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (c > uranges[mid].hi)
			lo = mid + 1;
		else if (c < uranges[mid].lo)
			hi = mid;
		else
			return uranges[mid].cls;
	}
	return F_OTHER;
}

/* ---- lookups ---- */

static uint64_t fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	while (n--)
		h = (h ^ (unsigned char)*p++) * 1099511628211ull;
	return h;
}

/* The id of the token whose text is p[0..n), or -1. */
static int32_t find(const struct mcb_tokenizer *t, const char *p, size_t n)
{
	size_t i;
	int32_t id;

	if (n == 0 || n > t->max_len)
		return -1;
	for (i = fnv(p, n) & (t->nslot - 1); (id = t->slot[i]) >= 0; i = (i + 1) & (t->nslot - 1))
		if (t->tok[id].len == n && !memcmp(t->text + t->tok[id].off, p, n))
			return id;
	return -1;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* The merge of tokens left and right, or NULL. */
static const struct merge *find_merge(const struct mcb_tokenizer *t, int32_t left, int32_t right)
{
	uint64_t pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
	size_t i;

	if (!t->mslot)
		return NULL;
	for (i = mix(pair) & (t->nmslot - 1); t->mslot[i].pair != UINT64_MAX;
	     i = (i + 1) & (t->nmslot - 1))
		if (t->mslot[i].pair == pair)
			return &t->mslot[i];
	return NULL;
}

static const char *tok_text(const struct mcb_tokenizer *t, int32_t id)
{
	return t->text + t->tok[id].off;
}

/* ---- loading ---- */

/* meta["gguf"][key]'s value when its "type" is type (and, for arrays, its
 * "elem" one of elems, a space-separated list); NULL when the key is absent.
 * A present key of another shape is an error (*rc). */
static const json_t *get(const json_t *g, const char *key, const char *type, const char *elems,
			 const char **elem, int *rc, struct mcb_errctx *e)
{
	const json_t *o = json_object_get(g, key), *v;
	const char *ty, *el = NULL, *want = elems;
	size_t n;

	*rc = 0;
	if (!o)
		return NULL;
	ty = json_string_value(json_object_get(o, "type"));
	v = json_object_get(o, "value");
	if (!ty || !v) {
		*rc = mcb_errf(e, MCB_EFORMAT, "%s: not a typed GGUF value", key);
		return NULL;
	}
	if (!strcmp(type, "int")) {
		if (strcmp(ty, "u8") && strcmp(ty, "i8") && strcmp(ty, "u16") &&
		    strcmp(ty, "i16") && strcmp(ty, "u32") && strcmp(ty, "i32") &&
		    strcmp(ty, "u64") && strcmp(ty, "i64")) {
			*rc = mcb_errf(e, MCB_EFORMAT, "%s has type %s, expected an integer", key,
				       ty);
			return NULL;
		}
	} else if (strcmp(ty, type)) {
		*rc = mcb_errf(e, MCB_EFORMAT, "%s has type %s, expected %s", key, ty, type);
		return NULL;
	}
	if (elems) {
		el = json_string_value(json_object_get(o, "elem"));
		n = el ? strlen(el) : 0;
		if (!n || !json_is_array(v)) {
			*rc = mcb_errf(e, MCB_EFORMAT, "%s: an array without an element type", key);
			return NULL;
		}
		for (; *elems; elems += strcspn(elems, " ") + (elems[strcspn(elems, " ")] == ' '))
			if (strcspn(elems, " ") == n && !strncmp(elems, el, n))
				break;
		if (!*elems) {
			*rc = mcb_errf(e, MCB_EFORMAT, "%s is an array of %s, expected %s", key, el,
				       want);
			return NULL;
		}
		*elem = el;
	}
	return v;
}

/* An optional token id: *id keeps its default when the key is absent. */
static int get_id(const json_t *g, const char *key, int32_t n, int32_t *id, struct mcb_errctx *e)
{
	const json_t *v;
	int rc;

	v = get(g, key, "int", NULL, NULL, &rc, e);
	if (rc)
		return rc;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n)
		return mcb_errf(e, MCB_ERANGE, "%s is outside the vocabulary (0..%" PRId32 ")", key,
				n - 1);
	*id = (int32_t)json_integer_value(v);
	return 0;
}

static int get_bool(const json_t *g, const char *key, int *b, struct mcb_errctx *e)
{
	const json_t *v;
	int rc;

	v = get(g, key, "bool", NULL, NULL, &rc, e);
	if (rc)
		return rc;
	if (v) {
		if (!json_is_boolean(v))
			return mcb_errf(e, MCB_EFORMAT, "%s is not a boolean", key);
		*b = json_is_true(v);
	}
	return 0;
}

/* The value of hex digit c, or -1. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
		return (c | 0x20) - 'a' + 10;
	return -1;
}

/* Score i from its JSON element: a number, or the hex bits of a non-finite
 * f32 ("0x7f800000", runtime/gguf.c). */
static int get_score(const json_t *x, size_t i, float *out, struct mcb_errctx *e)
{
	const char *s = json_string_value(x);
	uint32_t bits = 0;
	float f;
	int k;

	if (json_is_number(x)) {
		f = (float)json_number_value(x);
	} else if (s && strlen(s) == 10 && s[0] == '0' && s[1] == 'x') {
		for (k = 2; k < 10; k++) {
			if (hexval(s[k]) < 0)
				goto bad;
			bits = bits << 4 | (uint32_t)hexval(s[k]);
		}
		memcpy(&f, &bits, 4);
	} else {
		goto bad;
	}
	if (isnan(f))
		return mcb_errf(e, MCB_EFORMAT, "tokenizer.ggml.scores[%zu] is NaN", i);
	*out = f;
	return 0;
bad:
	return mcb_errf(e, MCB_EFORMAT, "tokenizer.ggml.scores[%zu] is not a number", i);
}

/* The byte a byte token's text "<0xXX>" names, or -1. */
static int byte_of(const char *s, size_t n)
{
	if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>' ||
	    hexval(s[3]) < 0 || hexval(s[4]) < 0)
		return -1;
	return hexval(s[3]) << 4 | hexval(s[4]);
}

/* GPT-2's byte-to-unicode map: printable Latin-1 bytes stand for themselves,
 * the others for 256, 257, ... in byte order. */
static void gpt2_bytes(struct mcb_tokenizer *t)
{
	int b, next = 256;

	for (b = 0; b < 324; b++)
		t->cp_byte[b] = -1;
	for (b = 0; b < 256; b++) {
		if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) ||
		    (b >= 0xae && b <= 0xff))
			t->byte_cp[b] = (uint16_t)b;
		else
			t->byte_cp[b] = (uint16_t)next++;
		t->cp_byte[t->byte_cp[b]] = (int16_t)b;
	}
}

/* Pre-tokenizer names llama.cpp maps to its GPT-2 pattern with no other
 * per-name rule (LLAMA_VOCAB_PRE_TYPE_GPT2, _MPT, _OLMO, _JAIS, _TRILLION,
 * _GRANITE_DOCLING). */
static int gpt2_pre(const char *s)
{
	static const char *const names[] = {
		"gpt-2", "phi-2", "gigachat", "a.x-4.0",	 "mellum", "mpt",
		"olmo",	 "jais",  "trillion", "granite-docling", "exaone4"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return 1;
	return 0;
}

struct ulen {
	uint32_t len;
	int32_t id;
};

/* Longest first, then by id (llama.cpp sorts by length only, unstably). */
static int cmp_user(const void *a, const void *b)
{
	const struct ulen *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* Tokens, scores and types into t (t->n set). */
static int load_tokens(struct mcb_tokenizer *t, const json_t *tokens, const json_t *scores,
		       int scores_int, const json_t *types, struct mcb_errctx *e)
{
	size_t i, total = 0, len, bad;
	const char *s;
	int32_t id, j;
	json_t *x;
	int rc;

	for (i = 0; i < (size_t)t->n; i++) {
		x = json_array_get(tokens, i);
		if (!json_is_string(x))
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.tokens[%zu] is not a string", i);
		len = json_string_length(x);
		if (len == 0)
			return mcb_errf(e, MCB_EFORMAT, "tokenizer.ggml.tokens[%zu] is empty", i);
		if (len > MAX_TOKEN_LEN)
			return mcb_errf(e, MCB_ERANGE,
					"tokenizer.ggml.tokens[%zu] is %zu bytes long "
					"(at most %u)",
					i, len, MAX_TOKEN_LEN);
		total += len + 1;
		if (total > MAX_VOCAB_BYTES)
			return mcb_errf(e, MCB_ERANGE,
					"tokenizer.ggml.tokens hold more than %u bytes",
					MAX_VOCAB_BYTES);
	}
	t->text = mcb_xmalloc(total);
	t->tok = mcb_xcalloc((size_t)t->n, sizeof(*t->tok));
	for (t->nslot = 16; t->nslot < 2 * (size_t)t->n; t->nslot *= 2)
		;
	t->slot = mcb_xmalloc(t->nslot * sizeof(*t->slot));
	memset(t->slot, 0xff, t->nslot * sizeof(*t->slot));
	total = 0;
	for (id = 0; id < t->n; id++) {
		struct token *k = &t->tok[id];

		x = json_array_get(tokens, (size_t)id);
		s = json_string_value(x);
		len = json_string_length(x);
		if (memchr(s, 0, len))
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.tokens[%" PRId32 "] contains "
					"a NUL byte",
					id);
		if ((bad = mcb_utf8_check(s, len)) < len)
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.tokens[%" PRId32 "] is not "
					"valid UTF-8 (byte %zu)",
					id, bad);
		memcpy(t->text + total, s, len + 1);
		k->off = (uint32_t)total;
		k->len = (uint32_t)len;
		total += len + 1;
		k->type = TT_NORMAL;
		if (types) {
			x = json_array_get(types, (size_t)id);
			if (!json_is_integer(x) || json_integer_value(x) < INT32_MIN ||
			    json_integer_value(x) > INT32_MAX)
				return mcb_errf(
					e, MCB_EFORMAT,
					"tokenizer.ggml.token_type[%" PRId32 "] is not an i32", id);
			k->type = (int32_t)json_integer_value(x);
		}
		if (scores) {
			x = json_array_get(scores, (size_t)id);
			if (scores_int) {
				if (!json_is_integer(x))
					return mcb_errf(e, MCB_EFORMAT,
							"tokenizer.ggml.scores[%" PRId32
							"] is not an i32",
							id);
				k->score = (float)json_integer_value(x);
			} else if ((rc = get_score(x, (size_t)id, &k->score, e))) {
				return rc;
			}
		}
		k->byte = -1;
		if (k->type == TT_BYTE && (k->byte = byte_of(s, len)) < 0)
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.tokens[%" PRId32 "] '%.64s' has "
					"type byte but is not <0xXX>",
					id, s);
		if (len > t->max_len)
			t->max_len = (uint32_t)len;
		if ((j = find(t, s, len)) >= 0)
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.tokens[%" PRId32 "] duplicates "
					"token %" PRId32 " ('%.64s')",
					id, j, s);
		for (i = fnv(s, len) & (t->nslot - 1); t->slot[i] >= 0;
		     i = (i + 1) & (t->nslot - 1))
			;
		t->slot[i] = id;
		if (k->type == TT_USER)
			t->nuser++;
	}
	return 0;
}

/* tokenizer.ggml.merges into t->mslot. */
static int load_merges(struct mcb_tokenizer *t, const json_t *merges, struct mcb_errctx *e)
{
	size_t n = json_array_size(merges), i, k, len;
	int32_t left, right, result;
	struct mcb_buf cat = MCB_BUF_INIT;
	const char *s, *sp;
	uint64_t pair;
	int rc = 0;

	if (n > MAX_MERGES)
		return mcb_errf(e, MCB_ERANGE, "tokenizer.ggml.merges has %zu entries (at most %u)",
				n, MAX_MERGES);
	for (t->nmslot = 16; t->nmslot <= 2 * n; t->nmslot *= 2)
		;
	t->mslot = mcb_xmalloc(t->nmslot * sizeof(*t->mslot));
	for (k = 0; k < t->nmslot; k++)
		t->mslot[k].pair = UINT64_MAX;
	for (i = 0; i < n; i++) {
		s = json_string_value(json_array_get(merges, i));
		if (!s) {
			rc = mcb_errf(e, MCB_EFORMAT, "tokenizer.ggml.merges[%zu] is not a string",
				      i);
			break;
		}
		len = json_string_length(json_array_get(merges, i));
		/* as llama.cpp: split at the first space after the first byte */
		sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
		if (!sp) {
			rc = mcb_errf(e, MCB_EFORMAT,
				      "tokenizer.ggml.merges[%zu] '%.64s' is not two "
				      "tokens separated by a space",
				      i, s);
			break;
		}
		left = find(t, s, (size_t)(sp - s));
		right = find(t, sp + 1, len - (size_t)(sp + 1 - s));
		mcb_buf_reset(&cat);
		mcb_buf_add(&cat, s, (size_t)(sp - s));
		mcb_buf_add(&cat, sp + 1, len - (size_t)(sp + 1 - s));
		result = find(t, cat.data, cat.len);
		if (left < 0 || right < 0 || result < 0) {
			const char *what = left < 0 ? s : right < 0 ? sp + 1 : cat.data;
			size_t wlen = left < 0	  ? (size_t)(sp - s)
				      : right < 0 ? strlen(sp + 1)
						  : cat.len;

			rc = mcb_errf(e, MCB_EFORMAT,
				      "tokenizer.ggml.merges[%zu] '%.64s': '%.*s' is "
				      "not a token",
				      i, s, (int)(wlen < 64 ? wlen : 64), what);
			break;
		}
		pair = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
		for (k = mix(pair) & (t->nmslot - 1); t->mslot[k].pair != UINT64_MAX;
		     k = (k + 1) & (t->nmslot - 1))
			if (t->mslot[k].pair == pair)
				break;
		if (t->mslot[k].pair == pair)
			continue; /* a duplicate keeps its first rank, as in llama.cpp */
		t->mslot[k].pair = pair;
		t->mslot[k].rank = (int32_t)i;
		t->mslot[k].result = result;
	}
	mcb_buf_release(&cat);
	return rc;
}

int mcb_tokenizer_from_model(const struct mcb_model *m, struct mcb_tokenizer **out,
			     struct mcb_errctx *e)
{
	const json_t *g = m && m->meta ? json_object_get(m->meta, "gguf") : NULL;
	const json_t *model, *pre, *tokens, *scores, *types, *merges;
	const char *name, *elem = NULL, *selem = NULL;
	struct mcb_tokenizer *t;
	size_t n, i;
	int rc;
	int b;

	*out = NULL;
	if (!json_is_object(g))
		return mcb_errf(e, MCB_ENOENT, "the model has no tokenizer (no GGUF metadata)");
	model = get(g, "tokenizer.ggml.model", "str", NULL, NULL, &rc, e);
	if (rc)
		return rc;
	name = json_string_value(model);
	if (!name || !strcmp(name, "none") || !strcmp(name, "no_vocab"))
		return mcb_errf(e, MCB_ENOENT,
				"the model has no tokenizer (tokenizer.ggml.model is "
				"%s%s%s)",
				name ? "'" : "", name ? name : "missing", name ? "'" : "");
	if (strcmp(name, "llama") && strcmp(name, "gpt2"))
		return mcb_errf(e, MCB_EUNSUP,
				"tokenizer.ggml.model '%.64s' is not supported (only "
				"'llama' and 'gpt2')",
				name);
	if (!strcmp(name, "gpt2")) {
		pre = get(g, "tokenizer.ggml.pre", "str", NULL, NULL, &rc, e);
		if (rc)
			return rc;
		if (!pre)
			return mcb_errf(e, MCB_EUNSUP,
					"tokenizer.ggml.pre is missing: llama.cpp then "
					"uses its 'default' pre-tokenizer, which is not supported "
					"(only 'gpt-2' and its aliases)");
		if (!gpt2_pre(json_string_value(pre)))
			return mcb_errf(e, MCB_EUNSUP,
					"pre-tokenizer '%.64s' is not supported (only "
					"'gpt-2' and its aliases)",
					json_string_value(pre));
	}
	tokens = get(g, "tokenizer.ggml.tokens", "arr", "str", &elem, &rc, e);
	if (rc)
		return rc;
	if (!tokens)
		return mcb_errf(e, MCB_EFORMAT, "tokenizer.ggml.tokens is missing");
	n = json_array_size(tokens);
	if (n == 0 || n > MCB_LLAMA_MAX_VOCAB)
		return mcb_errf(e, MCB_ERANGE, "tokenizer.ggml.tokens has %zu tokens (1..%d)", n,
				MCB_LLAMA_MAX_VOCAB);
	if (m->cfg.vocab_size > 0 && (size_t)m->cfg.vocab_size != n)
		return mcb_errf(e, MCB_EFORMAT,
				"tokenizer.ggml.tokens has %zu tokens but the model's "
				"vocabulary has %" PRId64,
				n, m->cfg.vocab_size);
	scores = get(g, "tokenizer.ggml.scores", "arr", "f32 i32", &selem, &rc, e);
	if (rc)
		return rc;
	types = get(g, "tokenizer.ggml.token_type", "arr", "i32", &elem, &rc, e);
	if (rc)
		return rc;
	if (scores && json_array_size(scores) != n)
		return mcb_errf(e, MCB_EFORMAT,
				"tokenizer.ggml.scores has %zu entries for %zu tokens",
				json_array_size(scores), n);
	if (types && json_array_size(types) != n)
		return mcb_errf(e, MCB_EFORMAT,
				"tokenizer.ggml.token_type has %zu entries for %zu "
				"tokens",
				json_array_size(types), n);
	merges = NULL;
	if (!strcmp(name, "gpt2")) {
		merges = get(g, "tokenizer.ggml.merges", "arr", "str", &elem, &rc, e);
		if (rc)
			return rc;
		if (!merges)
			return mcb_errf(e, MCB_EFORMAT,
					"tokenizer.ggml.merges is missing (a gpt2 "
					"vocabulary needs them)");
	}

	t = mcb_xcalloc(1, sizeof(*t));
	t->kind = strcmp(name, "llama") ? BPE : SPM;
	t->n = (int32_t)n;
	if ((rc = load_tokens(t, tokens, scores, selem && !strcmp(selem, "i32"), types, e)))
		goto fail;
	if (t->kind == SPM) {
		t->bos = 1, t->eos = 2, t->unk = 0;
		t->add_bos = t->add_space_prefix = 1;
	} else {
		t->bos = t->eos = 11, t->unk = -1;
	}
	if (t->bos >= t->n)
		t->bos = -1;
	if (t->eos >= t->n)
		t->eos = -1;
	if (t->unk >= t->n)
		t->unk = -1;
	if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", t->n, &t->bos, e)) ||
	    (rc = get_id(g, "tokenizer.ggml.eos_token_id", t->n, &t->eos, e)) ||
	    (rc = get_id(g, "tokenizer.ggml.unknown_token_id", t->n, &t->unk, e)) ||
	    (rc = get_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, e)) ||
	    (rc = get_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, e)) ||
	    (rc = get_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, e)))
		goto fail;
	if ((t->add_bos && t->bos < 0) || (t->add_eos && t->eos < 0)) {
		rc = mcb_errf(e, MCB_EFORMAT,
			      "tokenizer.ggml.add_%s_token is true but the "
			      "vocabulary has no %s token",
			      t->add_bos && t->bos < 0 ? "bos" : "eos",
			      t->add_bos && t->bos < 0 ? "BOS" : "EOS");
		goto fail;
	}
	if (t->kind == BPE) {
		t->add_space_prefix = 0; /* llama.cpp reads the key, its BPE ignores it */
		if ((rc = load_merges(t, merges, e)))
			goto fail;
		gpt2_bytes(t);
		for (b = 0; b < 256; b++) {
			struct mcb_buf sym = MCB_BUF_INIT;

			put_cp(&sym, t->byte_cp[b]);
			t->byte_tok[b] = find(t, sym.data, sym.len);
			mcb_buf_release(&sym);
		}
	} else {
		for (b = 0; b < 256; b++) {
			char hex[8], one = (char)b;

			snprintf(hex, sizeof(hex), "<0x%02X>", b);
			t->byte_tok[b] = find(t, hex, 6);
			if (t->byte_tok[b] < 0)
				t->byte_tok[b] = find(t, &one, 1);
		}
	}
	if (t->nuser) {
		struct ulen *u = mcb_xmalloc(t->nuser * sizeof(*u));

		for (i = 0, n = 0; i < (size_t)t->n; i++)
			if (t->tok[i].type == TT_USER)
				u[n++] = (struct ulen){t->tok[i].len, (int32_t)i};
		qsort(u, t->nuser, sizeof(*u), cmp_user);
		t->user = mcb_xmalloc(t->nuser * sizeof(*t->user));
		for (i = 0; i < t->nuser; i++)
			t->user[i] = u[i].id;
		free(u);
	}
	*out = t;
	return 0;
fail:
	mcb_tokenizer_free(t);
	return rc;
}

void mcb_tokenizer_free(struct mcb_tokenizer *t)
{
	if (!t)
		return;
	free(t->tok);
	free(t->text);
	free(t->slot);
	free(t->mslot);
	free(t->user);
	free(t);
}

int32_t mcb_tokenizer_bos(const struct mcb_tokenizer *t)
{
	return t->bos;
}

int64_t mcb_tokenizer_vocab(const struct mcb_tokenizer *t)
{
	return t->n;
}

/* ---- encoding ---- */

/* A piece of the text: raw text to tokenize, or a user-defined token. */
struct frag {
	uint32_t off, len; /* bytes of the text */
	int32_t tok;	   /* the user-defined token, or -1 for raw text */
};

struct sym {
	uint32_t off, n;    /* its bytes in the session's text; n == 0 once merged away */
	int32_t prev, next; /* neighbouring live symbols, -1 at the ends */
	int32_t id;	    /* BPE: its token, or -1 */
};

struct bigram {
	double key;	     /* SPM: the score; BPE: -rank.  Highest pops first */
	int32_t left, right; /* symbols */
	uint32_t size;	     /* left's n + right's n when pushed (staleness check) */
	int32_t result;	     /* BPE: the merged token */
};

/* Scratch space of one encode call. */
struct work {
	const struct mcb_tokenizer *t;
	struct frag *frag, *frag2;
	size_t nfrag, capfrag, capfrag2;
	struct sym *sym;
	size_t capsym;
	struct bigram *heap;
	size_t nheap, capheap;
	uint32_t *cp;	    /* BPE: code points of a fragment (UINT32_MAX: invalid byte) */
	uint32_t *cpoff;    /* their byte offsets, one more than code points */
	unsigned char *cls; /* their classes */
	size_t capcp, capcpoff, capcls;
	struct mcb_buf s; /* the text a session works on */
	int32_t *out;	  /* the ids */
	size_t nout, capout;
	struct mcb_errctx *e;
};

/* Make room for n elements of size bytes in *v (capacity *cap). */
static int reserve(void *v, size_t *cap, size_t n, size_t size, struct mcb_errctx *e)
{
	void *p;
	size_t c = *cap ? *cap : 16, bytes;

	if (n <= *cap)
		return 0;
	while (c < n)
		c *= 2;
	if (mcb_mul_ok(c, size, &bytes) || !(p = realloc(*(void **)v, bytes)))
		return mcb_errf(e, MCB_ENOMEM, "tokenizer: out of memory (%zu elements)", n);
	*(void **)v = p;
	*cap = c;
	return 0;
}

static int emit(struct work *w, int32_t id)
{
	int rc;

	if ((rc = reserve(&w->out, &w->capout, w->nout + 1, sizeof(*w->out), w->e)))
		return rc;
	w->out[w->nout++] = id;
	return 0;
}

static int heap_push(struct work *w, double key, int32_t left, int32_t right, uint32_t size,
		     int32_t result)
{
	struct bigram b = {key, left, right, size, result};
	size_t i, up;
	int rc;

	if ((rc = reserve(&w->heap, &w->capheap, w->nheap + 1, sizeof(*w->heap), w->e)))
		return rc;
	for (i = w->nheap++; i > 0; i = up) {
		up = (i - 1) / 2;
		if (!(b.key > w->heap[up].key ||
		      (b.key == w->heap[up].key && b.left < w->heap[up].left)))
			break;
		w->heap[i] = w->heap[up];
	}
	w->heap[i] = b;
	return 0;
}

/* Pop the bigram with the highest key (ties: the leftmost) into *b. */
static int heap_pop(struct work *w, struct bigram *b)
{
	struct bigram last;
	size_t i = 0, c;

	if (!w->nheap)
		return 0;
	*b = w->heap[0];
	last = w->heap[--w->nheap];
	while ((c = 2 * i + 1) < w->nheap) {
		if (c + 1 < w->nheap && (w->heap[c + 1].key > w->heap[c].key ||
					 (w->heap[c + 1].key == w->heap[c].key &&
					  w->heap[c + 1].left < w->heap[c].left)))
			c++;
		if (!(w->heap[c].key > last.key ||
		      (w->heap[c].key == last.key && w->heap[c].left < last.left)))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	w->heap[i] = last;
	return 1;
}

static int frag_add(struct frag **v, size_t *n, size_t *cap, uint32_t off, uint32_t len,
		    int32_t tok, struct mcb_errctx *e)
{
	int rc;

	if ((rc = reserve(v, cap, *n + 1, sizeof(**v), e)))
		return rc;
	(*v)[(*n)++] = (struct frag){off, len, tok};
	return 0;
}

/* Split text[0..len) around the user-defined tokens into w->frag. */
static int partition(struct work *w, const char *text, size_t len)
{
	const struct mcb_tokenizer *t = w->t;
	unsigned char seen[256] = {0};
	size_t u, i, n2, pos, end;
	const char *s, *p;
	struct frag *tmp;
	uint32_t m;
	int rc;

	w->nfrag = 0;
	if (len && (rc = frag_add(&w->frag, &w->nfrag, &w->capfrag, 0, (uint32_t)len, -1, w->e)))
		return rc;
	for (i = 0; i < len && t->nuser; i++)
		seen[(unsigned char)text[i]] = 1;
	for (u = 0; u < t->nuser; u++) {
		s = tok_text(t, t->user[u]);
		m = t->tok[t->user[u]].len;
		if (!seen[(unsigned char)s[0]] || m > len)
			continue;
		n2 = 0;
		for (i = 0; i < w->nfrag; i++) {
			struct frag f = w->frag[i];

			if (f.tok >= 0) {
				if ((rc = frag_add(&w->frag2, &n2, &w->capfrag2, f.off, f.len,
						   f.tok, w->e)))
					return rc;
				continue;
			}
			for (pos = f.off, end = f.off + f.len;
			     (p = memmem(text + pos, end - pos, s, m)) != NULL;
			     pos = (size_t)(p - text) + m) {
				if ((size_t)(p - text) > pos &&
				    (rc = frag_add(&w->frag2, &n2, &w->capfrag2, (uint32_t)pos,
						   (uint32_t)((size_t)(p - text) - pos), -1, w->e)))
					return rc;
				if ((rc = frag_add(&w->frag2, &n2, &w->capfrag2,
						   (uint32_t)(p - text), m, t->user[u], w->e)))
					return rc;
			}
			if (pos < end && (rc = frag_add(&w->frag2, &n2, &w->capfrag2, (uint32_t)pos,
							(uint32_t)(end - pos), -1, w->e)))
				return rc;
		}
		tmp = w->frag, w->frag = w->frag2, w->frag2 = tmp;
		i = w->capfrag, w->capfrag = w->capfrag2, w->capfrag2 = i;
		w->nfrag = n2;
	}
	return 0;
}

/* SPM: queue the pair (l, r) when their text is a token. */
static int spm_pair(struct work *w, int32_t l, int32_t r)
{
	const struct mcb_tokenizer *t = w->t;
	uint32_t size;
	int32_t id;

	if (l < 0 || r < 0)
		return 0;
	size = w->sym[l].n + w->sym[r].n;
	if ((id = find(t, w->s.data + w->sym[l].off, size)) < 0)
		return 0;
	return heap_push(w, t->tok[id].score, l, r, size, id);
}

/* SPM: tokenize w->s (spaces already escaped) onto w->out. */
static int spm_session(struct work *w)
{
	const struct mcb_tokenizer *t = w->t;
	size_t len = w->s.len, off = 0, k, nsym = 0;
	struct bigram b;
	struct sym *l, *r;
	int32_t i, id;
	int rc;

	if ((rc = reserve(&w->sym, &w->capsym, len, sizeof(*w->sym), w->e)))
		return rc;
	while (off < len) {
		k = lead_len((unsigned char)w->s.data[off]);
		if (k > len - off)
			k = len - off;
		w->sym[nsym] = (struct sym){(uint32_t)off, (uint32_t)k, (int32_t)nsym - 1,
					    off + k == len ? -1 : (int32_t)nsym + 1, -1};
		off += k;
		nsym++;
	}
	w->nheap = 0;
	for (k = 1; k < nsym; k++)
		if ((rc = spm_pair(w, (int32_t)k - 1, (int32_t)k)))
			return rc;
	while (heap_pop(w, &b)) {
		l = &w->sym[b.left];
		r = &w->sym[b.right];
		if (!l->n || !r->n || l->n + r->n != b.size)
			continue; /* stale: one side merged since */
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = b.left;
		if ((rc = spm_pair(w, l->prev, b.left)) || (rc = spm_pair(w, b.left, l->next)))
			return rc;
	}
	for (i = nsym ? 0 : -1; i >= 0; i = w->sym[i].next) {
		const char *p = w->s.data + w->sym[i].off;

		if ((id = find(t, p, w->sym[i].n)) >= 0) {
			if ((rc = emit(w, id)))
				return rc;
			continue;
		}
		for (k = 0; k < w->sym[i].n; k++) {
			id = t->byte_tok[(unsigned char)p[k]];
			if (id < 0 && (id = t->unk) < 0)
				return mcb_errf(w->e, MCB_EFORMAT,
						"byte 0x%02x has no byte token and "
						"the vocabulary has no unknown token",
						(unsigned char)p[k]);
			if ((rc = emit(w, id)))
				return rc;
		}
	}
	return 0;
}

/* BPE: queue the pair (l, r) when a merge names their tokens. */
static int bpe_pair(struct work *w, int32_t l, int32_t r)
{
	const struct merge *m;

	if (l < 0 || r < 0 || w->sym[l].id < 0 || w->sym[r].id < 0 ||
	    !(m = find_merge(w->t, w->sym[l].id, w->sym[r].id)))
		return 0;
	return heap_push(w, -(double)m->rank, l, r, w->sym[l].n + w->sym[r].n, m->result);
}

/* BPE: merge the word text[0..len) onto w->out. */
static int bpe_word(struct work *w, const char *text, size_t len)
{
	const struct mcb_tokenizer *t = w->t;
	struct bigram b;
	struct sym *l, *r;
	size_t k, off;
	int32_t i;
	int rc;

	if ((rc = reserve(&w->sym, &w->capsym, len, sizeof(*w->sym), w->e)))
		return rc;
	mcb_buf_reset(&w->s);
	for (k = 0; k < len; k++) {
		unsigned char c = (unsigned char)text[k];

		off = w->s.len;
		put_cp(&w->s, t->byte_cp[c]);
		if (t->byte_tok[c] < 0)
			return mcb_errf(w->e, MCB_EFORMAT,
					"byte 0x%02x: the vocabulary has no token "
					"for its byte-level symbol",
					c);
		w->sym[k] = (struct sym){(uint32_t)off, (uint32_t)(w->s.len - off), (int32_t)k - 1,
					 k + 1 == len ? -1 : (int32_t)k + 1, t->byte_tok[c]};
	}
	w->nheap = 0;
	for (k = 1; k < len; k++)
		if ((rc = bpe_pair(w, (int32_t)k - 1, (int32_t)k)))
			return rc;
	while (heap_pop(w, &b)) {
		l = &w->sym[b.left];
		r = &w->sym[b.right];
		if (!l->n || !r->n || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		l->id = b.result;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			w->sym[r->next].prev = b.left;
		if ((rc = bpe_pair(w, l->prev, b.left)) || (rc = bpe_pair(w, b.left, l->next)))
			return rc;
	}
	for (i = len ? 0 : -1; i >= 0; i = w->sym[i].next)
		if ((rc = emit(w, w->sym[i].id)))
			return rc;
	return 0;
}

/* The class of code point i of the fragment, 0 past its end. */
#define CLS(i) ((i) < ncp ? w->cls[i] : 0)

/* BPE: pre-tokenize text[0..len) with the GPT-2 pattern, merge each word. */
static int bpe_session(struct work *w, const char *text, size_t len)
{
	size_t ncp = 0, off = 0, k, pos, end, nws;
	const uint32_t *cp;
	unsigned char c2;
	uint32_t c, c1;
	int rc, cls;

	if ((rc = reserve(&w->cp, &w->capcp, len + 1, sizeof(*w->cp), w->e)) ||
	    (rc = reserve(&w->cpoff, &w->capcpoff, len + 1, sizeof(*w->cpoff), w->e)) ||
	    (rc = reserve(&w->cls, &w->capcls, len + 1, sizeof(*w->cls), w->e)))
		return rc;
	while (off < len) {
		if (!(k = mcb_utf8_get((const unsigned char *)text + off, len - off, &c)))
			k = 1, c = UINT32_MAX;
		w->cp[ncp] = c;
		w->cpoff[ncp] = (uint32_t)off;
		w->cls[ncp] = c == UINT32_MAX ? F_OTHER : cp_class(c);
		ncp++;
		off += k;
	}
	w->cpoff[ncp] = (uint32_t)len;
	cp = w->cp;
	for (pos = 0; pos < ncp; pos = end) {
		c = cp[pos];
		end = 0;
		/* 's|'t|'re|'ve|'m|'ll|'d */
		if (c == '\'' && pos + 1 < ncp) {
			c1 = cp[pos + 1];
			if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
				end = pos + 2;
			else if (pos + 2 < ncp && ((c1 == 'r' && cp[pos + 2] == 'e') ||
						   (c1 == 'v' && cp[pos + 2] == 'e') ||
						   (c1 == 'l' && cp[pos + 2] == 'l')))
				end = pos + 3;
		}
		/* ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+' */
		c2 = c == ' ' ? CLS(pos + 1) : CLS(pos);
		if (!end && (c2 & (F_LETTER | F_NUMBER | F_OTHER))) {
			cls = c2;
			for (end = pos + (c == ' '); CLS(end) & cls; end++)
				;
		}
		/* '\s+(?!\S)', '\s+' */
		if (!end) {
			for (nws = 0; CLS(pos + nws) & F_SPACE; nws++)
				;
			if (nws > 1 && pos + nws < ncp)
				end = pos + nws - 1;
			else
				end = pos + (nws ? nws : 1);
		}
		if ((rc = bpe_word(w, text + w->cpoff[pos], w->cpoff[end] - w->cpoff[pos])))
			return rc;
	}
	return 0;
}

#undef CLS

static void work_release(struct work *w)
{
	free(w->frag);
	free(w->frag2);
	free(w->sym);
	free(w->heap);
	free(w->cp);
	free(w->cpoff);
	free(w->cls);
	mcb_buf_release(&w->s);
	free(w->out);
}

int mcb_tokenizer_encode(const struct mcb_tokenizer *t, const char *text, size_t len,
			 int add_special, int32_t **ids, size_t *n, struct mcb_errctx *e)
{
	struct work w = {.t = t, .e = e};
	int prev_special = 1, rc = 0;
	size_t i, k;

	*ids = NULL;
	*n = 0;
	if (len > MCB_TOKENIZER_MAX_TEXT)
		return mcb_errf(e, MCB_ERANGE,
				"text of %zu bytes is too long to tokenize (at most %u)", len,
				MCB_TOKENIZER_MAX_TEXT);
	if (add_special && t->add_bos)
		rc = emit(&w, t->bos);
	if (!rc)
		rc = partition(&w, text, len);
	for (i = 0; !rc && i < w.nfrag; i++) {
		const struct frag *f = &w.frag[i];

		if (f->tok >= 0) {
			rc = emit(&w, f->tok);
			prev_special = 1;
		} else if (t->kind == SPM) {
			mcb_buf_reset(&w.s);
			if (t->add_space_prefix && prev_special)
				mcb_buf_add(&w.s, "\xe2\x96\x81", 3);
			for (k = 0; k < f->len; k++) {
				if (text[f->off + k] == ' ')
					mcb_buf_add(&w.s, "\xe2\x96\x81", 3);
				else
					mcb_buf_addc(&w.s, text[f->off + k]);
			}
			rc = spm_session(&w);
			prev_special = 0;
		} else {
			rc = bpe_session(&w, text + f->off, f->len);
		}
	}
	if (!rc && add_special && t->add_eos)
		rc = emit(&w, t->eos);
	if (!rc) {
		*ids = w.out;
		*n = w.nout;
		w.out = NULL;
	}
	work_release(&w);
	return rc;
}

/* ---- decoding ---- */

int mcb_tokenizer_decode(const struct mcb_tokenizer *t, const int32_t *ids, size_t n,
			 struct mcb_buf *out, struct mcb_errctx *e)
{
	size_t i, k, len1, start = out->len, first = SIZE_MAX;
	const struct token *tk;
	const char *s;
	uint32_t c;

	for (i = 0; i < n; i++) {
		if (ids[i] < 0 || ids[i] >= t->n) {
			out->len = start;
			if (out->data)
				out->data[start] = 0;
			return mcb_errf(e, MCB_ERANGE,
					"token id %" PRId32 " (position %zu) is outside "
					"the vocabulary (0..%" PRId32 ")",
					ids[i], i, t->n - 1);
		}
		tk = &t->tok[ids[i]];
		s = t->text + tk->off;
		if (first == SIZE_MAX)
			first = out->len;
		if (tk->type == TT_USER) {
			mcb_buf_add(out, s, tk->len);
		} else if (tk->type == TT_BYTE) {
			mcb_buf_addc(out, (char)tk->byte);
		} else if (tk->type == TT_NORMAL && t->kind == SPM) {
			for (k = 0; k < tk->len; k++) {
				if (k + 3 <= tk->len && !memcmp(s + k, "\xe2\x96\x81", 3)) {
					mcb_buf_addc(out, ' ');
					k += 2;
				} else {
					mcb_buf_addc(out, s[k]);
				}
			}
		} else if (tk->type == TT_NORMAL) {
			for (k = 0; k < tk->len; k += len1) {
				len1 = mcb_utf8_get((const unsigned char *)s + k, tk->len - k, &c);
				if (!len1) { /* not reached: token texts are checked */
					len1 = 1;
					c = UINT32_MAX;
				}
				if (c < 324 && t->cp_byte[c] >= 0)
					mcb_buf_addc(out, (char)t->cp_byte[c]);
				else
					mcb_buf_add(out, s + k, len1);
			}
		}
		if (out->len == first)
			first = SIZE_MAX; /* no text yet: the next piece is the first */
	}
	if (t->add_space_prefix && first != SIZE_MAX && out->len > first &&
	    out->data[first] == ' ') {
		memmove(out->data + first, out->data + first + 1, out->len - first - 1);
		out->data[--out->len] = 0;
	}
	return 0;
}
