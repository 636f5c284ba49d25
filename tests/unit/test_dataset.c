/* Unit tests for the dataset readers and writer (runtime/dataset.c), on the
 * fixtures of tests/data/datasets/ (bad/ holds the hostile corpus) and
 * Debian's dataset-fashion-mnist. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/dataset.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/tokenizer.h"

#define FASHION "/usr/share/datasets/fashion-mnist/"

static const char *data(const char *rel)
{
	static char buf[8][1024];
	static int k;

	k = (k + 1) % 8;
	snprintf(buf[k], sizeof(buf[k]), "%s", mcbt_data(rel));
	return buf[k];
}

/* A small SentencePiece vocabulary: <unk> <s> </s>, byte tokens, pieces. */
static struct mcb_tokenizer *make_tok(void)
{
	static const char *const pieces[] = {
		"\xe2\x96\x81", "\xe2\x96\x81hello", "\xe2\x96\x81world", "a", "b", "ab", "l", "o"};
	json_t *toks = json_array(), *types = json_array(), *g;
	struct mcb_tokenizer *t = NULL;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	char hex[8];
	size_t i;

	json_array_append_new(toks, json_string("<unk>"));
	json_array_append_new(toks, json_string("<s>"));
	json_array_append_new(toks, json_string("</s>"));
	json_array_append_new(types, json_integer(2));
	json_array_append_new(types, json_integer(3));
	json_array_append_new(types, json_integer(3));
	for (i = 0; i < 256; i++) {
		snprintf(hex, sizeof(hex), "<0x%02zX>", i);
		json_array_append_new(toks, json_string(hex));
		json_array_append_new(types, json_integer(6));
	}
	for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		json_array_append_new(toks, json_string(pieces[i]));
		json_array_append_new(types, json_integer(1));
	}
	g = json_pack("{s:{s:s,s:s},s:{s:s,s:s,s:o},s:{s:s,s:s,s:o}}", "tokenizer.ggml.model",
		      "type", "str", "value", "llama", "tokenizer.ggml.tokens", "type", "arr",
		      "elem", "str", "value", toks, "tokenizer.ggml.token_type", "type", "arr",
		      "elem", "i32", "value", types);
	mcb_model_init(&m);
	json_object_set_new(m.meta, "gguf", g);
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	mcb_model_release(&m);
	return t;
}

/* Item i of ds holds exactly the n ids of want. */
static void expect_item(const struct mcb_dataset *ds, size_t i, const int32_t *want, size_t n,
			int64_t label, int group, int line)
{
	const struct mcb_ds_item *it;
	size_t k;

	if (i >= ds->n) {
		mcbt_fail(__FILE__, line, "no item %zu (%zu items)", i, ds->n);
		return;
	}
	it = &ds->items[i];
	if (it->ntokens != n || it->label != label || it->group != group || it->features) {
		mcbt_fail(__FILE__, line,
			  "item %zu: %zu tokens, label %lld, group %d; expected %zu, "
			  "%lld, %d",
			  i, it->ntokens, (long long)it->label, it->group, n, (long long)label,
			  group);
		return;
	}
	for (k = 0; k < n; k++)
		if (it->tokens[k] != want[k])
			mcbt_fail(__FILE__, line, "item %zu: token %zu is %d, expected %d", i, k,
				  it->tokens[k], want[k]);
}

#define ITEM(ds, i, label, group, ...)                                                    \
	do {                                                                              \
		const int32_t want_[] = {__VA_ARGS__};                                    \
		expect_item(ds, i, want_, sizeof(want_) / sizeof(want_[0]), label, group, \
			    __LINE__);                                                    \
	} while (0)

/* Item i of ds is the tokenization of text (with add_special). */
static void expect_text(const struct mcb_dataset *ds, size_t i, const struct mcb_tokenizer *t,
			const char *text, int64_t label, int group, int line)
{
	struct mcb_errctx e = {0};
	int32_t *ids = NULL;
	size_t n = 0;

	if (mcb_tokenizer_encode(t, text, strlen(text), 1, &ids, &n, &e))
		mcbt_fail(__FILE__, line, "encode: %s", e.msg);
	else
		expect_item(ds, i, ids, n, label, group, line);
	free(ids);
}

/* ---- happy paths ---- */

static void test_tokens(void)
{
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;

	mcb_dataset_init(&ds);
	CHECK_OK(mcb_dataset_load_tokens(data("datasets/good.tokens"), 0, &ds, &e), &e);
	CHECK_EQ(ds.n, 4);
	CHECK_EQ(ds.ntokens, 12);
	CHECK_EQ(ds.ngroups, 0);
	ITEM(&ds, 0, -1, -1, 1, 2, 3);
	ITEM(&ds, 1, -1, -1, 4, 5, 6);
	ITEM(&ds, 2, -1, -1, 7);
	ITEM(&ds, 3, -1, -1, 8, 9, 10, 11, 12);
	mcb_dataset_release(&ds);
	/* every id below vocab: 13 is enough, 12 is not */
	CHECK_OK(mcb_dataset_load_tokens(data("datasets/good.tokens"), 13, &ds, &e), &e);
	CHECK_ERR(mcb_dataset_load_tokens(data("datasets/good.tokens"), 12, &ds, &e), &e,
		  MCB_ERANGE, "good.tokens':8:11: token id 12 is outside the vocabulary (0..11)");
	CHECK_EQ(ds.n, 0); /* emptied on failure */
	mcb_dataset_release(&ds);
}

static void test_text(void)
{
	struct mcb_tokenizer *t = make_tok();
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;

	mcb_dataset_init(&ds);
	if (!t)
		return;
	CHECK_OK(mcb_dataset_load_text(data("datasets/good.txt"), t, &ds, &e), &e);
	CHECK_EQ(ds.n, 4);
	expect_text(&ds, 0, t, "hello world", -1, -1, __LINE__);
	expect_text(&ds, 1, t, "ab", -1, -1, __LINE__);
	expect_text(&ds, 2, t, "caf\xc3\xa9 \xe6\x97\xa5", -1, -1, __LINE__);
	expect_text(&ds, 3, t, " last line without newline", -1, -1, __LINE__);
	/* BOS first (add_bos_token defaults to true for "llama") */
	CHECK(ds.n && ds.items[0].ntokens > 1 && ds.items[0].tokens[0] == 1);
	mcb_dataset_release(&ds);
	CHECK_ERR(mcb_dataset_load_text(data("datasets/good.txt"), NULL, &ds, &e), &e, MCB_EINVAL,
		  "needs the model's tokenizer");
	mcb_tokenizer_free(t);
}

static void test_csv(void)
{
	struct mcb_tokenizer *t = make_tok();
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;

	mcb_dataset_init(&ds);
	CHECK_OK(mcb_dataset_load_csv(data("datasets/good-tokens.csv"), NULL, 10, &ds, &e), &e);
	CHECK_EQ(ds.n, 4);
	ITEM(&ds, 0, 0, 0, 1, 2, 3);
	ITEM(&ds, 1, 1, 1, 4);
	ITEM(&ds, 2, 2, 0, 5, 6);
	ITEM(&ds, 3, 1, -1, 7, 8, 9);
	CHECK_EQ(ds.ngroups, 2);
	if (ds.ngroups == 2) {
		CHECK_STR(ds.groups[0], "en");
		CHECK_STR(ds.groups[1], "fr");
	}
	mcb_dataset_release(&ds);
	if (!t)
		return;
	CHECK_OK(mcb_dataset_load_csv(data("datasets/good-text.csv"), t, 0, &ds, &e), &e);
	CHECK_EQ(ds.n, 4);
	expect_text(&ds, 0, t, "hello world", 1, 0, __LINE__);
	expect_text(&ds, 1, t, "a, b and \"c\"", 0, 1, __LINE__);
	expect_text(&ds, 2, t, "line one\nline two", 2, 2, __LINE__);
	expect_text(&ds, 3, t, "ab", 1, 0, __LINE__);
	CHECK_EQ(ds.ngroups, 3);
	if (ds.ngroups == 3)
		CHECK_STR(ds.groups[2], "multi");
	mcb_dataset_release(&ds);
	CHECK_ERR(mcb_dataset_load_csv(data("datasets/good-text.csv"), NULL, 0, &ds, &e), &e,
		  MCB_EINVAL, "good-text.csv':1:1: a 'text' column needs the model's tokenizer");
	mcb_tokenizer_free(t);
}

static void test_append(void)
{
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;

	mcb_dataset_init(&ds);
	CHECK_OK(mcb_dataset_load_csv(data("datasets/good-tokens.csv"), NULL, 0, &ds, &e), &e);
	CHECK_OK(mcb_dataset_load_tokens(data("datasets/good.tokens"), 0, &ds, &e), &e);
	CHECK_OK(mcb_dataset_load_csv(data("datasets/good-tokens.csv"), NULL, 0, &ds, &e), &e);
	CHECK_EQ(ds.n, 12);
	CHECK_EQ(ds.ntokens, 9 + 12 + 9);
	CHECK_EQ(ds.ngroups, 2); /* the second load found "en" and "fr" again */
	ITEM(&ds, 9, 1, 1, 4);
	ITEM(&ds, 4, -1, -1, 1, 2, 3);
	/* a failure empties the dataset */
	CHECK_ERR(mcb_dataset_load_tokens(data("datasets/bad/letter.tokens"), 0, &ds, &e), &e,
		  MCB_EFORMAT, "bad token id");
	CHECK(ds.n == 0 && ds.ngroups == 0 && ds.ntokens == 0 && ds.items == NULL);
	mcb_dataset_release(&ds);
	CHECK_ERR(mcb_dataset_load_tokens(data("datasets/missing.tokens"), 0, &ds, &e), &e,
		  MCB_ENOENT, "cannot open");
	CHECK_ERR(mcb_dataset_load_csv(data("datasets"), NULL, 0, &ds, &e), &e, MCB_EIO,
		  "not a regular file");
}

/* The three 2x3 images of the tiny-* fixtures. */
static void expect_tiny(const struct mcb_dataset *ds)
{
	static const unsigned char px[3][6] = {
		{0, 255, 51, 102, 153, 204}, {10, 20, 30, 40, 50, 60}, {255, 255, 255, 0, 0, 0}};
	static const int labels[3] = {7, 0, 9};
	size_t i, k;

	CHECK_EQ(ds->n, 3);
	CHECK_EQ(ds->ntokens, 0);
	for (i = 0; i < ds->n && i < 3; i++) {
		CHECK(ds->items[i].tokens == NULL && ds->items[i].ntokens == 0);
		CHECK_EQ(ds->items[i].nfeatures, 6);
		CHECK_EQ(ds->items[i].label, labels[i]);
		CHECK_EQ(ds->items[i].group, -1);
		for (k = 0; k < 6; k++)
			CHECK(ds->items[i].features[k] == (float)px[i][k] / 255.0f);
	}
}

static void test_idx(void)
{
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;

	mcb_dataset_init(&ds);
	CHECK_OK(mcb_dataset_load_idx(data("datasets/tiny-images-idx3-ubyte"),
				      data("datasets/tiny-labels-idx1-ubyte"), &ds, &e),
		 &e);
	expect_tiny(&ds);
	mcb_dataset_release(&ds);
	CHECK_OK(mcb_dataset_load_idx(data("datasets/tiny-images-idx3-ubyte.gz"),
				      data("datasets/tiny-labels-idx1-ubyte.gz"), &ds, &e),
		 &e);
	expect_tiny(&ds);
	mcb_dataset_release(&ds);
	/* one compressed, one not */
	CHECK_OK(mcb_dataset_load_idx(data("datasets/tiny-images-idx3-ubyte"),
				      data("datasets/tiny-labels-idx1-ubyte.gz"), &ds, &e),
		 &e);
	expect_tiny(&ds);
	/* token items cannot be written from feature items */
	CHECK_ERR(mcb_dataset_write_tokens(&ds, "/nonexistent/x", &e), &e, MCB_EINVAL,
		  "item 1 has no tokens");
	mcb_dataset_release(&ds);
}

/* Debian's dataset-fashion-mnist: the 10000 test images. */
static void test_fashion_mnist(void)
{
	static const int first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
	const char *img = FASHION "t10k-images-idx3-ubyte.gz";
	const char *lab = FASHION "t10k-labels-idx1-ubyte.gz";
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;
	long long sum0 = 0, total = 0;
	size_t hist[10] = {0}, i, k, odd = 0;

	if (!mcb_os_exists(img) || !mcb_os_exists(lab)) {
		mcbt_skip("%s is missing (Debian package dataset-fashion-mnist; make deps)", img);
		return;
	}
	mcb_dataset_init(&ds);
	CHECK_OK(mcb_dataset_load_idx(img, lab, &ds, &e), &e);
	CHECK_EQ(ds.n, 10000);
	for (i = 0; i < ds.n; i++) {
		const struct mcb_ds_item *it = &ds.items[i];

		if (it->nfeatures != 784 || it->label < 0 || it->label > 9) {
			odd++;
			continue;
		}
		hist[it->label]++;
		for (k = 0; k < 784; k++) {
			long v = lroundf(it->features[k] * 255.0f);

			total += v;
			if (i == 0)
				sum0 += v;
		}
	}
	CHECK_EQ(odd, 0);
	for (k = 0; k < 10; k++)
		CHECK_EQ(hist[k], 1000);
	for (k = 0; k < 10 && ds.n == 10000; k++)
		CHECK_EQ(ds.items[k].label, first[k]);
	/* reference values: Python's gzip module on the same files */
	CHECK_EQ(sum0, 33456);
	CHECK_EQ(total, 573469082);
	if (ds.n == 10000) {
		CHECK(ds.items[0].features[14 * 28 + 12] == 98.0f / 255.0f);
		CHECK(ds.items[0].features[0] == 0.0f);
	}
	mcb_dataset_release(&ds);
}

static void test_write_tokens(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_buf a = MCB_BUF_INIT, b = MCB_BUF_INIT;
	struct mcb_errctx e = {0};
	struct mcb_dataset ds, back;
	char p1[1024], p2[1024];
	size_t i, k;

	snprintf(p1, sizeof(p1), "%s/a.tokens", dir);
	snprintf(p2, sizeof(p2), "%s/b.tokens", dir);
	mcb_dataset_init(&ds);
	mcb_dataset_init(&back);
	CHECK_OK(mcb_dataset_load_tokens(data("datasets/good.tokens"), 0, &ds, &e), &e);
	CHECK_OK(mcb_dataset_load_csv(data("datasets/good-tokens.csv"), NULL, 0, &ds, &e), &e);
	{
		const int32_t big[3] = {0, 2147483647, 42};

		mcb_dataset_add_tokens(&ds, big, 3, 5, -1);
	}
	CHECK_OK(mcb_dataset_write_tokens(&ds, p1, &e), &e);
	CHECK_OK(mcb_dataset_write_tokens(&ds, p2, &e), &e);
	CHECK_OK(mcb_os_read_file(p1, 1 << 20, &a, &e), &e);
	CHECK_OK(mcb_os_read_file(p2, 1 << 20, &b, &e), &e);
	CHECK_STR(mcb_buf_str(&a), "1 2 3\n4 5 6\n7\n8 9 10 11 12\n1 2 3\n4\n5 6\n7 8 9\n"
				   "0 2147483647 42\n");
	CHECK_STR(mcb_buf_str(&a), mcb_buf_str(&b));
	CHECK_OK(mcb_dataset_load_tokens(p1, 0, &back, &e), &e);
	CHECK_EQ(back.n, ds.n);
	CHECK_EQ(back.ntokens, ds.ntokens);
	for (i = 0; i < back.n && i < ds.n; i++) {
		CHECK_EQ(back.items[i].ntokens, ds.items[i].ntokens);
		for (k = 0; k < back.items[i].ntokens && k < ds.items[i].ntokens; k++)
			CHECK_EQ(back.items[i].tokens[k], ds.items[i].tokens[k]);
	}
	/* an empty dataset writes an empty file; an empty item cannot be written */
	mcb_dataset_release(&back);
	CHECK_OK(mcb_dataset_write_tokens(&back, p2, &e), &e);
	mcb_buf_reset(&b);
	CHECK_OK(mcb_os_read_file(p2, 1 << 20, &b, &e), &e);
	CHECK_EQ(b.len, 0);
	mcb_dataset_add_tokens(&back, NULL, 0, -1, -1);
	CHECK_ERR(mcb_dataset_write_tokens(&back, p2, &e), &e, MCB_EINVAL, "item 1 has no tokens");
	mcb_buf_release(&a);
	mcb_buf_release(&b);
	mcb_dataset_release(&ds);
	mcb_dataset_release(&back);
}

/* ---- the hostile corpus ---- */

enum { TOKENS, TEXT, CSV, IDX };

static const struct bad {
	int format;
	const char *file, *labels; /* idx: images, labels */
	int code;
	const char *msg;
} bad[] = {
	{TOKENS, "letter.tokens", 0, MCB_EFORMAT, "letter.tokens':1:5: bad token id 'x3'"},
	{TOKENS, "negative.tokens", 0, MCB_EFORMAT, "':1:3: bad token id '-1'"},
	{TOKENS, "toolarge.tokens", 0, MCB_ERANGE, "':2:1: token id '2147483648' is too large"},
	{TOKENS, "vocab.tokens", 0, MCB_ERANGE,
	 "':2:5: token id 600 is outside the vocabulary "
	 "(0..511)"},
	{TOKENS, "comma.tokens", 0, MCB_EFORMAT, "':1:2: bad token id '1,2'"},
	{TOKENS, "nul.tokens", 0, MCB_EFORMAT, "':2:2: bad token id '3"},
	{TEXT, "utf8.txt", 0, MCB_EFORMAT, "utf8.txt':2:5: invalid UTF-8 (byte 0xff)"},
	{TEXT, "nul.txt", 0, MCB_EFORMAT, "':1:2: a NUL byte in text"},
	{TEXT, "overlong-utf8.txt", 0, MCB_EFORMAT, "':1:2: invalid UTF-8 (byte 0xc0)"},
	{TEXT, "surrogate.txt", 0, MCB_EFORMAT, "':1:4: invalid UTF-8 (byte 0xed)"},
	{TEXT, "cut-utf8.txt", 0, MCB_EFORMAT, "':1:5: invalid UTF-8 (byte 0xe6)"},
	{CSV, "unterminated.csv", 0, MCB_EFORMAT,
	 "unterminated.csv':2:1: unterminated quoted field"},
	{CSV, "missing-label.csv", 0, MCB_EFORMAT, "':1:1: no 'label' column"},
	{CSV, "unknown-columns.csv", 0, MCB_EFORMAT, "':1:1: unknown columns 'weight', 'lang'"},
	{CSV, "both-columns.csv", 0, MCB_EFORMAT, "both a 'tokens' and a 'text' column"},
	{CSV, "no-input-column.csv", 0, MCB_EFORMAT, "no 'tokens' or 'text' column"},
	{CSV, "duplicate-column.csv", 0, MCB_EFORMAT, "':1:14: column 'label' appears twice"},
	{CSV, "field-count.csv", 0, MCB_EFORMAT, "':2:1: the record has 3 fields, the header 2"},
	{CSV, "bad-label.csv", 0, MCB_EFORMAT,
	 "':2:5: bad label 'x' (expected an integer "
	 "0..2147483647)"},
	{CSV, "negative-label.csv", 0, MCB_EFORMAT, "':2:3: bad label '-3'"},
	{CSV, "large-label.csv", 0, MCB_EFORMAT, "':2:3: bad label '2147483648'"},
	{CSV, "empty-label.csv", 0, MCB_EFORMAT, "':2:3: bad label ''"},
	{CSV, "label-vocab.csv", 0, MCB_ERANGE,
	 "':3:3: label 512 is outside the vocabulary (0..511)"},
	{CSV, "quote-inside.csv", 0, MCB_EFORMAT, "':2:3: a quote inside an unquoted field"},
	{CSV, "after-quote.csv", 0, MCB_EFORMAT, "':2:5: text after the closing quote"},
	{CSV, "bad-ids.csv", 0, MCB_EFORMAT, "':2:6: bad token id 'z'"},
	{CSV, "vocab.csv", 0, MCB_ERANGE, "':3:3: token id 512 is outside the vocabulary"},
	{CSV, "empty.csv", 0, MCB_EFORMAT, "the file is empty"},
	{CSV, "empty-tokens.csv", 0, MCB_EFORMAT, "':2:1: no token ids"},
	{CSV, "empty-text.csv", 0, MCB_EFORMAT, "':2:1: no text"},
	{CSV, "group-utf8.csv", 0, MCB_EFORMAT, "':2:5: invalid UTF-8 (byte 0xff)"},
	{CSV, "text-utf8.csv", 0, MCB_EFORMAT, "':3:5: invalid UTF-8 (byte 0xc3)"},
	{IDX, "idx-good-images", "idx-magic-labels", MCB_EFORMAT,
	 "idx-magic-labels' at byte 0: not an IDX file (magic 12 34 08 01)"},
	{IDX, "idx-type-images", "idx-good-labels", MCB_EFORMAT,
	 "idx-type-images' at byte 2: element type 0x09 is not unsigned bytes"},
	{IDX, "idx-good-images", "idx-dims-labels", MCB_EFORMAT,
	 "at byte 3: 2 dimensions, expected 1 (labels: count)"},
	{IDX, "idx-truncated-images", "idx-good-labels", MCB_EFORMAT,
	 "idx-truncated-images' at byte 30: the file ends inside the pixels (4 more bytes "
	 "expected)"},
	{IDX, "idx-good-images", "idx-truncated-header-labels", MCB_EFORMAT,
	 "' at byte 6: the file ends inside the dimensions (2 more bytes expected)"},
	{IDX, "idx-good-images", "idx-count-labels", MCB_EFORMAT,
	 "idx-good-images' holds 3 images but '"},
	{IDX, "idx-good-images", "idx-trailing-labels", MCB_EFORMAT,
	 "idx-trailing-labels' at byte 11: unexpected data after the last item"},
	{IDX, "idx-huge-images", "idx-good-labels", MCB_ERANGE,
	 "3 images of 65536x65536 pixels: images of 1..1048576 pixels"},
	{IDX, "idx-many-images", "idx-many-labels", MCB_ERANGE,
	 "33554432 images are more than the 16777216 items"},
	{IDX, "idx-claims-images", "idx-claims-labels", MCB_EFORMAT,
	 "idx-claims-images' at byte 116: the file ends inside the pixels (1048476 more bytes"},
	{IDX, "idx-empty-images", "idx-good-labels", MCB_EFORMAT,
	 "idx-empty-images' at byte 0: the file ends inside the magic number"},
	{IDX, "idx-crc-images.gz", "idx-good-labels", MCB_EFORMAT,
	 "(decompressed): incorrect data check"},
	{IDX, "idx-cut-images.gz", "idx-good-labels", MCB_EFORMAT, "idx-cut-images.gz' at byte "},
	{IDX, "idx-good-images", "idx-garbage-labels.gz", MCB_EFORMAT,
	 "idx-garbage-labels.gz' at byte 0 (decompressed): "},
	{IDX, "idx-good-images", "idx-missing-labels", MCB_ENOENT, "idx-missing-labels"},
};

static void test_hostile(void)
{
	struct mcb_tokenizer *t = make_tok();
	struct mcb_errctx e;
	struct mcb_dataset ds;
	char path[512], labels[512];
	size_t i;
	int rc = 0;

	mcb_dataset_init(&ds);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *b = &bad[i];

		snprintf(path, sizeof(path), "datasets/bad/%s", b->file);
		snprintf(labels, sizeof(labels), "datasets/bad/%s", b->labels ? b->labels : "");
		mcb_errclear(&e);
		switch (b->format) {
		case TOKENS:
			rc = mcb_dataset_load_tokens(data(path), 512, &ds, &e);
			break;
		case TEXT:
			rc = mcb_dataset_load_text(data(path), t, &ds, &e);
			break;
		case CSV:
			rc = mcb_dataset_load_csv(data(path), t, 512, &ds, &e);
			break;
		case IDX:
			rc = mcb_dataset_load_idx(data(path), data(labels), &ds, &e);
			break;
		}
		if (rc != b->code || !strstr(e.msg, b->msg))
			mcbt_fail(__FILE__, __LINE__,
				  "%s: returned %d (\"%s\"), expected %d with \"%s\"", b->file, rc,
				  e.msg, b->code, b->msg);
		if (ds.n || ds.ngroups)
			mcbt_fail(__FILE__, __LINE__, "%s: the dataset is not empty", b->file);
	}
	mcb_dataset_release(&ds);
	mcb_tokenizer_free(t);
}

/* ---- limits ---- */

static const char *tmpfile_with(const char *name, const char *head, char fill, size_t n,
				const char *tail)
{
	static char path[1024];
	size_t h = strlen(head), tl = strlen(tail);
	char *buf = malloc(h + n + tl);

	memcpy(buf, head, h);
	memset(buf + h, fill, n);
	memcpy(buf + h + n, tail, tl);
	snprintf(path, sizeof(path), "%s/%s", mcbt_tmpdir(), name);
	mcbt_write(path, buf, h + n + tl);
	free(buf);
	return path;
}

static void test_limits(void)
{
	const size_t max = 1u << 24;
	struct mcb_tokenizer *t = make_tok();
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e = {0};
	struct mcb_dataset ds;
	const char *p;
	size_t i;

	mcb_dataset_init(&ds);
	/* lines and records of 16 MiB + 1 */
	p = tmpfile_with("long.tokens", "1\n", '7', max + 1, "\n");
	CHECK_ERR(mcb_dataset_load_tokens(p, 0, &ds, &e), &e, MCB_ERANGE,
		  "long.tokens':2:1: the line is longer than 16777216 bytes");
	p = tmpfile_with("long.txt", "", 'a', max + 1, "");
	CHECK_ERR(mcb_dataset_load_text(p, t, &ds, &e), &e, MCB_ERANGE,
		  "long.txt':1:1: the line is longer than 16777216 bytes");
	p = tmpfile_with("long.csv", "tokens,label\n", '1', max + 1, ",0\n");
	CHECK_ERR(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e, MCB_ERANGE,
		  "long.csv':2:1: the record is longer than 16777216 bytes");
	p = tmpfile_with("longq.csv", "tokens,label\n1,0\n\"", '1', max + 1, "\",0\n");
	CHECK_ERR(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e, MCB_ERANGE,
		  "longq.csv':3:1: the record is longer than 16777216 bytes");
	/* text lines longer than the tokenizer takes */
	p = tmpfile_with("long2.txt", "ok\n", 'a', MCB_TOKENIZER_MAX_TEXT + 1, "\n");
	CHECK_ERR(mcb_dataset_load_text(p, t, &ds, &e), &e, MCB_ERANGE,
		  "long2.txt':2:1: text of 4194305 bytes is too long");
	/* 1025 fields */
	for (i = 0; i < 1025; i++)
		mcb_buf_adds(&b, i ? ",x" : "x");
	p = tmpfile_with("wide.csv", b.data, 'x', 0, "\n");
	CHECK_ERR(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e, MCB_ERANGE,
		  "wide.csv':1:2049: more than 1024 fields in a record");
	/* 65537 groups, and a long group name */
	mcb_buf_reset(&b);
	mcb_buf_adds(&b, "tokens,label,group\n");
	for (i = 0; i <= 65536; i++)
		mcb_buf_printf(&b, "1,0,g%zu\n", i);
	p = tmpfile_with("groups.csv", b.data, 'x', 0, "");
	CHECK_ERR(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e, MCB_ERANGE,
		  "groups.csv':65538:5: more than 65536 groups");
	p = tmpfile_with("gname.csv", "tokens,label,group\n1,0,", 'g', 257, "\n");
	CHECK_ERR(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e, MCB_ERANGE,
		  "gname.csv':2:5: the group name is longer than 256 bytes");
	p = tmpfile_with("gname2.csv", "tokens,label,group\n1,0,", 'g', 256, "\n");
	CHECK_OK(mcb_dataset_load_csv(p, NULL, 0, &ds, &e), &e);
	CHECK_EQ(ds.ngroups, 1);
	mcb_dataset_release(&ds);
	mcb_buf_release(&b);
	mcb_tokenizer_free(t);
}

int main(void)
{
	RUN(test_tokens);
	RUN(test_text);
	RUN(test_csv);
	RUN(test_append);
	RUN(test_idx);
	RUN(test_fashion_mnist);
	RUN(test_write_tokens);
	RUN(test_hostile);
	RUN(test_limits);
	return mcbt_done();
}
