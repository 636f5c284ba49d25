/*
 * tokenizer: the model's own tokenizer, from its GGUF metadata
 * (tokenizer.ggml.*, kept in the internal form's meta["gguf"]):
 *   "llama"  SentencePiece-style: spaces become U+2581, a leading U+2581 is
 *            added, symbol pairs are merged highest score first, characters
 *            without a token fall back to <0xXX> byte tokens
 *   "gpt2"   byte-level BPE with tokenizer.ggml.merges (rank order) after
 *            the GPT-2 pre-tokenization pattern
 * Behaviour checked against llama.cpp's tokenizer on the same vocabularies.
 */
#ifndef MCB_TOKENIZER_H
#define MCB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct mcb_buf;
struct mcb_errctx;
struct mcb_model;
struct mcb_tokenizer;

/* Longest text one mcb_tokenizer_encode call accepts (bytes). */
#define MCB_TOKENIZER_MAX_TEXT (1u << 22)

/*
 * The tokenizer m carries (m->meta["gguf"]; m is not referenced afterwards).
 * MCB_ENOENT (with a message) when it has none, MCB_EUNSUP for a vocabulary
 * type or pre-tokenizer this version does not implement, MCB_EFORMAT or
 * MCB_ERANGE naming the key and index for a malformed vocabulary.
 */
int mcb_tokenizer_from_model(const struct mcb_model *m, struct mcb_tokenizer **out,
			     struct mcb_errctx *e);
void mcb_tokenizer_free(struct mcb_tokenizer *t);

/*
 * Encode len bytes of text (UTF-8; len <= MCB_TOKENIZER_MAX_TEXT) as llama.cpp's
 * llama_tokenize(text, add_special, parse_special = false) does: with
 * add_special, BOS first when the vocabulary's add_bos_token says so (default:
 * "llama" yes, "gpt2" no) and EOS last when add_eos_token says so.  *ids is
 * malloc'd (caller frees; NULL when *n is 0).  Fails with MCB_ERANGE (text too
 * long) or MCB_EFORMAT (a byte the vocabulary cannot encode).
 */
int mcb_tokenizer_encode(const struct mcb_tokenizer *t, const char *text, size_t len,
			 int add_special, int32_t **ids, size_t *n, struct mcb_errctx *e);
/* Append the text of ids to out: the inverse of encode (control and unknown
 * tokens give no text).  MCB_ERANGE for an id outside the vocabulary. */
int mcb_tokenizer_decode(const struct mcb_tokenizer *t, const int32_t *ids, size_t n,
			 struct mcb_buf *out, struct mcb_errctx *e);
/* The BOS id, or -1 when the vocabulary has none. */
int32_t mcb_tokenizer_bos(const struct mcb_tokenizer *t);
/* The number of tokens. */
int64_t mcb_tokenizer_vocab(const struct mcb_tokenizer *t);

#endif
