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

/* The tokenizer m carries; MCB_ENOENT (with a message) when it has none. */
int mcb_tokenizer_from_model(const struct mcb_model *m, struct mcb_tokenizer **out,
			     struct mcb_errctx *e);
void mcb_tokenizer_free(struct mcb_tokenizer *t);

/* Encode len bytes of UTF-8 text; *ids is malloc'd (caller frees). */
int mcb_tokenizer_encode(const struct mcb_tokenizer *t, const char *text, size_t len, int add_bos,
			 int32_t **ids, size_t *n, struct mcb_errctx *e);
/* Append the text of ids to out. */
int mcb_tokenizer_decode(const struct mcb_tokenizer *t, const int32_t *ids, size_t n,
			 struct mcb_buf *out, struct mcb_errctx *e);
int32_t mcb_tokenizer_bos(const struct mcb_tokenizer *t);
int64_t mcb_tokenizer_vocab(const struct mcb_tokenizer *t);

#endif
