/*
 * dataset: evaluation and calibration data, read as hostile input.
 *
 * An item is what statistics resample: a token sequence (a document or a
 * sampled sequence, cut into evaluation windows later), or a labelled
 * example.  Formats (README, "Datasets"):
 *   tokens   text, one item per line: token ids separated by blanks;
 *            blank lines and lines starting with '#' are skipped
 *   text     UTF-8 text, one item per non-empty line, tokenized with the
 *            model's own tokenizer (BOS prepended when the vocabulary's
 *            add_bos_token asks for it: llama yes, gpt2 no, as in llama.cpp)
 *   csv      labelled examples, RFC 4180 with a header row naming columns:
 *            `tokens` (ids) or `text`, `label` (integer: a class index, or
 *            for a language model the token id to predict), optional `group`
 *   idx      labelled images: an IDX3 ubyte image file and an IDX1 ubyte
 *            label file (MNIST/Fashion-MNIST), features scaled to [0, 1]
 */
#ifndef MCB_DATASET_H
#define MCB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/arena.h"

struct mcb_errctx;
struct mcb_tokenizer;

#define MCB_DATASET_MAX_ITEMS (1u << 24)
#define MCB_DATASET_MAX_TOKENS (1u << 28) /* over all items */
#define MCB_DATASET_MAX_BYTES (1ull << 32)

struct mcb_ds_item {
	const int32_t *tokens;  /* ntokens ids (NULL for feature items) */
	size_t ntokens;
	const float *features;  /* nfeatures values (NULL for token items) */
	size_t nfeatures;
	int64_t label;          /* -1: none */
	int group;              /* index into groups, -1: none */
};

struct mcb_dataset {
	struct mcb_arena arena;      /* items, tokens, features, names */
	struct mcb_ds_item *items;
	size_t n, cap;               /* items used and allocated */
	const char **groups;         /* ngroups distinct names in first-seen order */
	size_t ngroups, gcap;        /* groups used and allocated */
	uint64_t ntokens;            /* sum of ntokens */
};

void mcb_dataset_init(struct mcb_dataset *ds);
void mcb_dataset_release(struct mcb_dataset *ds);

/* Each appends the file's items to ds, or fails with a message naming the
 * file and line (and column) of the first problem: bad numbers, ids >= vocab
 * (when vocab > 0), caps exceeded; ds is then emptied (released and
 * initialised again).  Formats, limits and codes: runtime/dataset.c. */
int mcb_dataset_load_tokens(const char *path, int64_t vocab, struct mcb_dataset *ds,
			    struct mcb_errctx *e);
int mcb_dataset_load_text(const char *path, const struct mcb_tokenizer *tok,
			  struct mcb_dataset *ds, struct mcb_errctx *e);
/* tok may be NULL when the file has a tokens column instead of text. */
int mcb_dataset_load_csv(const char *path, const struct mcb_tokenizer *tok, int64_t vocab,
			 struct mcb_dataset *ds, struct mcb_errctx *e);
int mcb_dataset_load_idx(const char *images, const char *labels, struct mcb_dataset *ds,
			 struct mcb_errctx *e);

/* Write ds's token items in the tokens format (deterministic). */
int mcb_dataset_write_tokens(const struct mcb_dataset *ds, const char *path,
			     struct mcb_errctx *e);

/* Append a token item (copied) to ds; group -1 for none. */
void mcb_dataset_add_tokens(struct mcb_dataset *ds, const int32_t *tokens, size_t n,
			    int64_t label, int group);

#endif
