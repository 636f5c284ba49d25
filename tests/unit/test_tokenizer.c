/* Unit tests for the tokenizer (runtime/tokenizer.c), on small hand-built
 * vocabularies in a model's meta["gguf"]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/tokenizer.h"

#define SP "\xe2\x96\x81" /* U+2581, SentencePiece's escaped space */

/* ---- building vocabularies ---- */

static json_t *typed(const char *type, json_t *value)
{
	return json_pack("{s:s,s:o}", "type", type, "value", value);
}

static json_t *typed_arr(const char *elem, json_t *value)
{
	return json_pack("{s:s,s:s,s:o}", "type", "arr", "elem", elem, "value", value);
}

/* A vocabulary under construction: parallel arrays, turned into a model. */
struct voc {
	json_t *tokens, *scores, *types, *merges, *extra;
};

static void voc_init(struct voc *v)
{
	v->tokens = json_array();
	v->scores = json_array();
	v->types = json_array();
	v->merges = json_array();
	v->extra = json_object();
}

static int voc_add(struct voc *v, const char *text, double score, int type)
{
	json_array_append_new(v->tokens, json_string(text));
	json_array_append_new(v->scores, json_real(score));
	json_array_append_new(v->types, json_integer(type));
	return (int)json_array_size(v->tokens) - 1;
}

static void voc_merge(struct voc *v, const char *merge)
{
	json_array_append_new(v->merges, json_string(merge));
}

/* The model: kind "llama" or "gpt2"; consumes v. */
static void voc_model(struct voc *v, const char *kind, struct mcb_model *m)
{
	json_t *g = json_object();
	const char *key;
	json_t *x;

	mcb_model_init(m);
	json_object_set_new(g, "tokenizer.ggml.model", typed("str", json_string(kind)));
	json_object_set_new(g, "tokenizer.ggml.tokens", typed_arr("str", v->tokens));
	json_object_set_new(g, "tokenizer.ggml.token_type", typed_arr("i32", v->types));
	if (!strcmp(kind, "gpt2")) {
		json_object_set_new(g, "tokenizer.ggml.pre", typed("str", json_string("gpt-2")));
		json_object_set_new(g, "tokenizer.ggml.merges", typed_arr("str", v->merges));
		json_decref(v->scores);
	} else {
		json_object_set_new(g, "tokenizer.ggml.scores", typed_arr("f32", v->scores));
		json_decref(v->merges);
	}
	json_object_foreach (v->extra, key, x)
		json_object_set(g, key, x);
	json_decref(v->extra);
	json_object_set_new(m->meta, "gguf", g);
}

static json_t *gguf_of(struct mcb_model *m)
{
	return json_object_get(m->meta, "gguf");
}

/* <unk> <s> </s>, the 256 byte tokens (ids 3..258), then pieces with
 * scores: the small SentencePiece vocabulary most tests use. */
static const struct {
	const char *text;
	double score;
} spm_pieces[] = {
	{SP, -10},	  {"h", -20},	    {"e", -20},	 {"l", -20},
	{"o", -20},	  {"w", -20},	    {"r", -20},	 {"d", -20},
	{"a", -20},	  {"b", -20},	    {"c", -20},	 {"\xc3\xa9", -20} /* é */,
	{"he", -1},	  {"ll", -2},	    {"llo", -3}, {SP "he", -4},
	{SP "hello", -5}, {SP "w", -6},	    {"or", -7},	 {SP "wor", -8},
	{"ld", -9},	  {SP "world", -1}, {SP SP, -2}, {"ab", -30},
	{"bc", -30},	  {"caf", -40},	    {"ca", -41}, {"f", -41},
	{SP "a", -12},
};

static int spm_id(const char *text)
{
	size_t i;

	for (i = 0; i < sizeof(spm_pieces) / sizeof(spm_pieces[0]); i++)
		if (!strcmp(spm_pieces[i].text, text))
			return 259 + (int)i;
	return -1;
}

static void spm_voc(struct voc *v, int bytes)
{
	char hex[8];
	size_t i;
	int b;

	voc_init(v);
	voc_add(v, "<unk>", 0, 2);
	voc_add(v, "<s>", 0, 3);
	voc_add(v, "</s>", 0, 3);
	for (b = 0; b < 256; b++) {
		snprintf(hex, sizeof(hex), "<0x%02X>", b);
		voc_add(v, bytes ? hex : "", 0, 6);
		if (!bytes) /* a placeholder normal token instead */
			json_array_set_new(v->tokens, json_array_size(v->tokens) - 1,
					   json_sprintf("filler%d", b)),
				json_array_set_new(v->types, json_array_size(v->types) - 1,
						   json_integer(1));
	}
	for (i = 0; i < sizeof(spm_pieces) / sizeof(spm_pieces[0]); i++)
		voc_add(v, spm_pieces[i].text, spm_pieces[i].score, 1);
}

static struct mcb_tokenizer *spm_tok(struct mcb_model *m, struct mcb_errctx *e)
{
	struct mcb_tokenizer *t = NULL;
	struct voc v;

	spm_voc(&v, 1);
	voc_model(&v, "llama", m);
	CHECK_OK(mcb_tokenizer_from_model(m, &t, e), e);
	return t;
}

/* GPT-2's byte-to-unicode map. */
static unsigned byte_cp(int b)
{
	int c, next = 256;

	for (c = 0; c < 256; c++) {
		int keep = (c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || c >= 0xae;

		if (c == b)
			return keep ? (unsigned)c : (unsigned)next;
		if (!keep)
			next++;
	}
	return 0;
}

static void utf8_of(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp, out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), out[2] = 0;
	}
}

/* The 256 byte symbols (id = byte), merges, then <|endoftext|>. */
static const char *const bpe_merges[] = {
	"\xc4\xa0 t",	"h e", "\xc4\xa0t he",	 "i n", "in g", "a a",	"\xc4\xa0 w", "o r",
	"\xc4\xa0w or", "l d", "\xc4\xa0wor ld", "' s", "1 2",	"12 3",
};

static struct mcb_tokenizer *bpe_tok(struct mcb_model *m, struct mcb_errctx *e, int drop_byte)
{
	struct mcb_tokenizer *t = NULL;
	char sym[4];
	size_t i;
	struct voc v;
	int b, rc;

	voc_init(&v);
	for (b = 0; b < 256; b++) {
		utf8_of(byte_cp(b), sym);
		voc_add(&v, b == drop_byte ? "dropped" : sym, 0, 1);
	}
	for (i = 0; i < sizeof(bpe_merges) / sizeof(bpe_merges[0]); i++) {
		char buf[32];
		const char *sp = strchr(bpe_merges[i], ' ');

		voc_merge(&v, bpe_merges[i]);
		snprintf(buf, sizeof(buf), "%.*s%s", (int)(sp - bpe_merges[i]), bpe_merges[i],
			 sp + 1);
		voc_add(&v, buf, 0, 1);
	}
	voc_add(&v, "<|endoftext|>", 0, 3);
	json_object_set_new(v.extra, "tokenizer.ggml.bos_token_id",
			    typed("u32", json_integer((json_int_t)json_array_size(v.tokens) - 1)));
	json_object_set_new(v.extra, "tokenizer.ggml.eos_token_id",
			    typed("u32", json_integer((json_int_t)json_array_size(v.tokens) - 1)));
	voc_model(&v, "gpt2", m);
	rc = mcb_tokenizer_from_model(m, &t, e);
	CHECK_OK(rc, e);
	return t;
}

/* The id of BPE token text in bpe_tok's vocabulary. */
static int bpe_id(const char *text)
{
	char sym[4], buf[32];
	size_t i;
	int b;

	for (b = 0; b < 256; b++) {
		utf8_of(byte_cp(b), sym);
		if (!strcmp(sym, text))
			return b;
	}
	for (i = 0; i < sizeof(bpe_merges) / sizeof(bpe_merges[0]); i++) {
		const char *sp = strchr(bpe_merges[i], ' ');

		snprintf(buf, sizeof(buf), "%.*s%s", (int)(sp - bpe_merges[i]), bpe_merges[i],
			 sp + 1);
		if (!strcmp(buf, text))
			return 256 + (int)i;
	}
	return -1;
}

/* ---- checking encodings ---- */

/* Encode s and compare with the n ids in want (-2 ends the list early). */
static void expect_ids(const struct mcb_tokenizer *t, const char *s, int add_special,
		       const int *want, size_t n, int line)
{
	struct mcb_errctx e = {0};
	int32_t *ids = NULL;
	size_t got = 0, i;
	int rc;

	rc = mcb_tokenizer_encode(t, s, strlen(s), add_special, &ids, &got, &e);
	if (rc) {
		mcbt_fail(__FILE__, line, "encode '%s' returned %d: %s", s, rc, e.msg);
		return;
	}
	if (got != n) {
		mcbt_fail(__FILE__, line, "encode '%s': %zu ids, expected %zu", s, got, n);
	} else {
		for (i = 0; i < n; i++)
			if (ids[i] != want[i])
				mcbt_fail(__FILE__, line, "encode '%s': id[%zu] = %d, expected %d",
					  s, i, ids[i], want[i]);
	}
	free(ids);
}

#define EXPECT(t, s, special, ...)                                                            \
	do {                                                                                  \
		const int want_[] = {__VA_ARGS__};                                            \
		expect_ids(t, s, special, want_, sizeof(want_) / sizeof(want_[0]), __LINE__); \
	} while (0)

/* decode(encode(s)) == s. */
static void expect_roundtrip(const struct mcb_tokenizer *t, const char *s, size_t len, int line)
{
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e = {0};
	int32_t *ids = NULL;
	size_t n = 0;

	if (mcb_tokenizer_encode(t, s, len, 0, &ids, &n, &e) ||
	    mcb_tokenizer_decode(t, ids, n, &out, &e))
		mcbt_fail(__FILE__, line, "round trip of '%s': %s", s, e.msg);
	else if (out.len != len || (len && memcmp(out.data, s, len)))
		mcbt_fail(__FILE__, line, "round trip of '%s' gave '%s'", s, mcb_buf_str(&out));
	free(ids);
	mcb_buf_release(&out);
}

/* The strings of tests/data/tokenizers/strings.json (a JSON array). */
static json_t *load_strings(void)
{
	struct mcb_errctx e = {0};
	json_t *a;

	a = json_load_file(mcbt_data("tokenizers/strings.json"), JSON_ALLOW_NUL, NULL);
	if (!json_is_array(a) || json_array_size(a) < 30)
		mcbt_fail(__FILE__, __LINE__, "cannot read tokenizers/strings.json %s", e.msg);
	return a;
}

/* ---- SPM ---- */

static void test_spm_merges(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = spm_tok(&m, &e);

	if (!t)
		goto out;
	CHECK_EQ(mcb_tokenizer_vocab(t), 259 + (int)(sizeof(spm_pieces) / sizeof(spm_pieces[0])));
	CHECK_EQ(mcb_tokenizer_bos(t), 1);
	/* ▁ h e l l o -> he (-1), ll (-2), llo (-3), ▁he (-4), ▁hello (-5) */
	EXPECT(t, "hello", 0, spm_id(SP "hello"));
	EXPECT(t, "hello world", 0, spm_id(SP "hello"), spm_id(SP "world"));
	EXPECT(t, "hello world", 1, 1, spm_id(SP "hello"), spm_id(SP "world"));
	/* two spaces: ▁▁ (-2) outranks ▁w (-6) */
	EXPECT(t, "hello  world", 0, spm_id(SP "hello"), spm_id(SP SP), spm_id("w"), spm_id("or"),
	       spm_id("ld"));
	/* ▁a (-12) first, then bc */
	EXPECT(t, "abc", 0, spm_id(SP "a"), spm_id("bc"));
	/* ab and bc tie at -30: ab (leftmost) wins, and then ca (-41) is stale */
	EXPECT(t, "cabc", 0, spm_id(SP), spm_id("c"), spm_id("ab"), spm_id("c"));
	/* ca (-41) loses to caf (-40) only when caf can form: c+a first, then ca+f */
	EXPECT(t, "caf", 0, spm_id(SP), spm_id("caf"));
out:
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_spm_bytes(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = spm_tok(&m, &e);

	if (!t)
		goto out;
	/* 日 (e6 97 a5) has no piece: byte tokens 3 + byte */
	EXPECT(t, "\xe6\x97\xa5", 0, spm_id(SP), 3 + 0xe6, 3 + 0x97, 3 + 0xa5);
	/* é is a piece; a newline is a byte */
	EXPECT(t, "\xc3\xa9\n", 0, spm_id(SP), spm_id("\xc3\xa9"), 3 + '\n');
	/* a text that looks like a control token is text */
	EXPECT(t, "<s>", 0, spm_id(SP), 3 + '<', 3 + 's', 3 + '>');
	/* invalid UTF-8 travels as bytes (a lone continuation byte, a cut lead byte) */
	EXPECT(t, "a\x80\xe6", 0, spm_id(SP "a"), 3 + 0x80, 3 + 0xe6);
	/* the empty text */
	EXPECT(t, "", 1, 1);
	{
		int32_t *ids = (int32_t *)1;
		size_t n = 7;

		CHECK_OK(mcb_tokenizer_encode(t, "", 0, 0, &ids, &n, &e), &e);
		CHECK(ids == NULL && n == 0);
	}
out:
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_spm_unk_and_flags(void)
{
	struct mcb_tokenizer *t = NULL;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct voc v;

	/* no byte tokens: unknown characters become <unk> */
	spm_voc(&v, 0);
	voc_model(&v, "llama", &m);
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	if (t)
		EXPECT(t, "h\xe6\x97\xa5", 0, spm_id(SP), spm_id("h"), 0, 0, 0);
	mcb_tokenizer_free(t);
	t = NULL;
	mcb_model_release(&m);

	/* add_space_prefix false, add_bos false, add_eos true */
	spm_voc(&v, 1);
	json_object_set_new(v.extra, "tokenizer.ggml.add_space_prefix",
			    typed("bool", json_false()));
	json_object_set_new(v.extra, "tokenizer.ggml.add_bos_token", typed("bool", json_false()));
	json_object_set_new(v.extra, "tokenizer.ggml.add_eos_token", typed("bool", json_true()));
	voc_model(&v, "llama", &m);
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	if (t) {
		EXPECT(t, "abc", 0, spm_id("ab"), spm_id("c"));
		EXPECT(t, "abc", 1, spm_id("ab"), spm_id("c"), 2);
		expect_roundtrip(t, " x y ", 5, __LINE__);
	}
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_spm_user_tokens(void)
{
	struct mcb_tokenizer *t = NULL;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct voc v;
	int sep, sepx, ctl;

	spm_voc(&v, 1);
	sep = voc_add(&v, "<sep>", 0, 4);
	sepx = voc_add(&v, "<sep>x", 0, 4); /* longer: split out first */
	ctl = voc_add(&v, "<ctl>", 0, 3);   /* control: never split out of text */
	(void)ctl;
	voc_model(&v, "llama", &m);
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	if (t) {
		/* the text after a user token gets the space prefix again */
		EXPECT(t, "a<sep>b", 0, spm_id(SP "a"), sep, spm_id(SP), spm_id("b"));
		EXPECT(t, "<sep>x<sep>", 0, sepx, sep);
		EXPECT(t, "<ctl>", 0, spm_id(SP), 3 + '<', spm_id("c"), 3 + 't', spm_id("l"),
		       3 + '>');
	}
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_spm_decode(void)
{
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = spm_tok(&m, &e);
	int32_t ids[4];
	json_t *strs, *s;
	size_t i;

	if (!t)
		goto out;
	ids[0] = 1; /* <s>: no text */
	ids[1] = (int32_t)spm_id(SP "hello");
	ids[2] = (int32_t)spm_id(SP "world");
	ids[3] = 3 + 'x';
	CHECK_OK(mcb_tokenizer_decode(t, ids, 4, &out, &e), &e);
	CHECK_STR(mcb_buf_str(&out), "hello worldx");
	/* appends; the leading space of the first piece of this call goes */
	CHECK_OK(mcb_tokenizer_decode(t, ids + 1, 1, &out, &e), &e);
	CHECK_STR(mcb_buf_str(&out), "hello worldxhello");
	ids[0] = 999;
	CHECK_ERR(mcb_tokenizer_decode(t, ids, 2, &out, &e), &e, MCB_ERANGE, "token id 999");
	CHECK_STR(mcb_buf_str(&out), "hello worldxhello");
	ids[0] = -1;
	CHECK_ERR(mcb_tokenizer_decode(t, ids, 1, &out, &e), &e, MCB_ERANGE, "outside");

	/* every string, except those with U+2581 (decoded as a space) */
	strs = load_strings();
	json_array_foreach (strs, i, s)
		if (!strstr(json_string_value(s), SP))
			expect_roundtrip(t, json_string_value(s), json_string_length(s), __LINE__);
	json_decref(strs);
	expect_roundtrip(t, "a\x80\xff\xe6", 4, __LINE__); /* invalid UTF-8 too */
out:
	mcb_buf_release(&out);
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

/* ---- BPE ---- */

static void test_bpe_merges(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = bpe_tok(&m, &e, -1);

	if (!t)
		goto out;
	CHECK_EQ(mcb_tokenizer_bos(t), 270);
	EXPECT(t, "the", 0, 't', bpe_id("he"));
	EXPECT(t, " the", 0, bpe_id("\xc4\xa0the"));
	EXPECT(t, "the world", 0, 't', bpe_id("he"), bpe_id("\xc4\xa0world"));
	/* add_bos_token defaults to false for gpt2 */
	EXPECT(t, "the", 1, 't', bpe_id("he"));
	/* equal ranks: leftmost first */
	EXPECT(t, "aaa", 0, bpe_id("aa"), 'a');
	EXPECT(t, "aaaa", 0, bpe_id("aa"), bpe_id("aa"));
	/* merges never cross pre-tokenizer words: "in" + "g" inside "ing" only */
	EXPECT(t, "sing in g", 0, 's', bpe_id("ing"), ' ', bpe_id("in"), ' ', 'g');
out:
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_bpe_pretokenize(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = bpe_tok(&m, &e, -1);
	const int G = bpe_id("\xc4\xa0"); /* the symbol of ' ' */
	const int C = bpe_id("\xc4\x8a"); /* the symbol of '\n' */

	if (!t)
		goto out;
	/* contractions: 's is one word, and a merge */
	EXPECT(t, "it's", 0, 'i', 't', bpe_id("'s"));
	/* digits are their own words: "a123" -> "a", "123" */
	EXPECT(t, "a123", 0, 'a', bpe_id("123"));
	EXPECT(t, " 123", 0, G, bpe_id("123"));
	/* \s+(?!\S): of two spaces before a word, the last one joins the word */
	EXPECT(t, "a  the", 0, 'a', G, bpe_id("\xc4\xa0the"));
	EXPECT(t, "a  ", 0, 'a', G, G);
	EXPECT(t, "a\n\nb", 0, 'a', C, C, 'b');
	/* punctuation runs, with an optional leading space */
	EXPECT(t, "a !?b", 0, 'a', G, '!', '?', 'b');
	/* é (c3 a9) is a letter: one word with the t before it */
	EXPECT(t, "t\xc3\xa9", 0, 't', 0xc3, 0xa9);
	/* 日 is a letter, ٣ (U+0663) a number, ½ (U+00BD) a number */
	EXPECT(t, "1\xd9\xa3\xc2\xbd", 0, '1', 0xd9, 0xa3, 0xc2, 0xbd);
	/* a text that looks like a control token is text */
	EXPECT(t, "<|endoftext|>", 0, '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't', '|',
	       '>');
out:
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_bpe_decode(void)
{
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = bpe_tok(&m, &e, -1);
	int32_t ids[3];
	json_t *strs, *s;
	size_t i;

	if (!t)
		goto out;
	ids[0] = 270; /* <|endoftext|>: control, no text */
	ids[1] = bpe_id("\xc4\xa0the");
	ids[2] = 0xe9;
	CHECK_OK(mcb_tokenizer_decode(t, ids, 3, &out, &e), &e);
	CHECK_STR(mcb_buf_str(&out), " the\xe9"); /* no space prefix to drop */
	strs = load_strings();
	json_array_foreach (strs, i, s)
		expect_roundtrip(t, json_string_value(s), json_string_length(s), __LINE__);
	json_decref(strs);
	expect_roundtrip(t, "a\x80\xff\xe6 b", 6, __LINE__);
out:
	mcb_buf_release(&out);
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

static void test_bpe_missing_byte(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct mcb_tokenizer *t = bpe_tok(&m, &e, 0xa9);
	int32_t *ids = NULL;
	size_t n;

	if (!t)
		goto out;
	EXPECT(t, "abc", 0, 'a', 'b', 'c');
	CHECK_ERR(mcb_tokenizer_encode(t, "caf\xc3\xa9", 5, 0, &ids, &n, &e), &e, MCB_EFORMAT,
		  "byte 0xa9");
	CHECK(ids == NULL);
out:
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

/* ---- hostile vocabularies ---- */

/* from_model on m must fail with code and a message containing sub. */
static void expect_bad(struct mcb_model *m, int code, const char *sub, int line)
{
	struct mcb_tokenizer *t = (struct mcb_tokenizer *)1;
	struct mcb_errctx e = {0};
	int rc = mcb_tokenizer_from_model(m, &t, &e);

	if (rc != code || !strstr(e.msg, sub))
		mcbt_fail(__FILE__, line,
			  "from_model returned %d (\"%s\"), expected %d with \"%s\"", rc, e.msg,
			  code, sub);
	if (t)
		mcbt_fail(__FILE__, line, "from_model failed but set *out");
	mcb_model_release(m);
}

/* A fresh SPM (bpe 0) or BPE (bpe 1) vocabulary, then key := value (NULL:
 * delete), then expect_bad. */
static void bad_key(int bpe, const char *key, json_t *value, int code, const char *sub, int line)
{
	struct mcb_errctx e = {0};
	struct mcb_tokenizer *t;
	struct mcb_model m;
	struct voc v;

	if (bpe) {
		t = bpe_tok(&m, &e, -1);
		mcb_tokenizer_free(t);
	} else {
		spm_voc(&v, 1);
		voc_model(&v, "llama", &m);
	}
	if (value)
		json_object_set_new(gguf_of(&m), key, value);
	else
		json_object_del(gguf_of(&m), key);
	expect_bad(&m, code, sub, line);
}

/* Replace element i of key's array by x. */
static void bad_elem(int bpe, const char *key, size_t i, json_t *x, int code, const char *sub,
		     int line)
{
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct voc v;

	if (bpe) {
		mcb_tokenizer_free(bpe_tok(&m, &e, -1));
	} else {
		spm_voc(&v, 1);
		voc_model(&v, "llama", &m);
	}
	json_array_set_new(json_object_get(json_object_get(gguf_of(&m), key), "value"), i, x);
	expect_bad(&m, code, sub, line);
}

static void test_hostile_vocab(void)
{
	struct mcb_model m;
	json_t *big;
	size_t i;

	mcb_model_init(&m);
	expect_bad(&m, MCB_ENOENT, "no tokenizer", __LINE__);
	mcb_model_init(&m);
	json_object_set_new(m.meta, "gguf", json_object());
	expect_bad(&m, MCB_ENOENT, "tokenizer.ggml.model is missing", __LINE__);

	bad_key(0, "tokenizer.ggml.model", typed("str", json_string("bert")), MCB_EUNSUP, "'bert'",
		__LINE__);
	bad_key(0, "tokenizer.ggml.model", typed("str", json_string("none")), MCB_ENOENT, "'none'",
		__LINE__);
	bad_key(0, "tokenizer.ggml.model", typed("str", json_string("no_vocab")), MCB_ENOENT,
		"'no_vocab'", __LINE__);
	bad_key(0, "tokenizer.ggml.model", typed("u32", json_integer(1)), MCB_EFORMAT,
		"expected str", __LINE__);
	bad_key(0, "tokenizer.ggml.model", json_string("llama"), MCB_EFORMAT, "not a typed",
		__LINE__);
	bad_key(1, "tokenizer.ggml.pre", NULL, MCB_EUNSUP, "tokenizer.ggml.pre is missing",
		__LINE__);
	bad_key(1, "tokenizer.ggml.pre", typed("str", json_string("llama-bpe")), MCB_EUNSUP,
		"'llama-bpe'", __LINE__);
	bad_key(0, "tokenizer.ggml.tokens", NULL, MCB_EFORMAT, "tokenizer.ggml.tokens is missing",
		__LINE__);
	bad_key(0, "tokenizer.ggml.tokens", typed_arr("i32", json_pack("[i]", 1)), MCB_EFORMAT,
		"array of i32", __LINE__);
	bad_key(0, "tokenizer.ggml.tokens", typed_arr("str", json_array()), MCB_ERANGE, "0 tokens",
		__LINE__);
	big = json_array();
	for (i = 0; i <= MCB_LLAMA_MAX_VOCAB; i++)
		json_array_append(big, json_null());
	bad_key(0, "tokenizer.ggml.tokens", typed_arr("str", big), MCB_ERANGE, "4194305 tokens",
		__LINE__);
	bad_key(0, "tokenizer.ggml.scores", typed_arr("f32", json_pack("[f]", 1.0)), MCB_EFORMAT,
		"1 entries for 288 tokens", __LINE__);
	bad_key(0, "tokenizer.ggml.token_type", typed_arr("f32", json_array()), MCB_EFORMAT,
		"array of f32", __LINE__);
	bad_key(0, "tokenizer.ggml.bos_token_id", typed("u32", json_integer(288)), MCB_ERANGE,
		"bos_token_id is outside", __LINE__);
	bad_key(0, "tokenizer.ggml.unknown_token_id", typed("i32", json_integer(-1)), MCB_ERANGE,
		"unknown_token_id is outside", __LINE__);
	bad_key(0, "tokenizer.ggml.eos_token_id", typed("str", json_string("2")), MCB_EFORMAT,
		"expected an integer", __LINE__);
	bad_key(0, "tokenizer.ggml.add_bos_token", typed("u8", json_integer(1)), MCB_EFORMAT,
		"expected bool", __LINE__);
	bad_key(1, "tokenizer.ggml.merges", NULL, MCB_EFORMAT, "merges is missing", __LINE__);

	/* tokens */
	bad_elem(0, "tokenizer.ggml.tokens", 7, json_string(""), MCB_EFORMAT, "tokens[7] is empty",
		 __LINE__);
	bad_elem(0, "tokenizer.ggml.tokens", 8, json_integer(3), MCB_EFORMAT,
		 "tokens[8] is not a string", __LINE__);
	bad_elem(0, "tokenizer.ggml.tokens", 270, json_string("he"), MCB_EFORMAT,
		 "duplicates token", __LINE__);
	bad_elem(0, "tokenizer.ggml.tokens", 9, json_stringn_nocheck("a\xff", 2), MCB_EFORMAT,
		 "tokens[9] is not valid UTF-8 (byte 1)", __LINE__);
	bad_elem(0, "tokenizer.ggml.tokens", 9, json_stringn("a\0b", 3), MCB_EFORMAT, "NUL byte",
		 __LINE__);
	bad_elem(0, "tokenizer.ggml.tokens", 9, json_string("<0xZZ>"), MCB_EFORMAT,
		 "type byte but is not <0xXX>", __LINE__);
	{
		char *longtok = malloc(65538);

		memset(longtok, 'x', 65537);
		longtok[65537] = 0;
		bad_elem(0, "tokenizer.ggml.tokens", 9, json_string(longtok), MCB_ERANGE,
			 "65537 bytes long", __LINE__);
		free(longtok);
	}
	bad_elem(0, "tokenizer.ggml.scores", 5, json_string("0x7fc00000"), MCB_EFORMAT,
		 "scores[5] is NaN", __LINE__);
	bad_elem(0, "tokenizer.ggml.scores", 5, json_string("x"), MCB_EFORMAT,
		 "scores[5] is not a number", __LINE__);
	bad_elem(0, "tokenizer.ggml.token_type", 5, json_real(1.5), MCB_EFORMAT,
		 "token_type[5] is not an i32", __LINE__);

	/* merges */
	bad_elem(1, "tokenizer.ggml.merges", 1, json_string("he"), MCB_EFORMAT,
		 "merges[1] 'he' is not two tokens", __LINE__);
	bad_elem(1, "tokenizer.ggml.merges", 1, json_string(" e"), MCB_EFORMAT, "is not two tokens",
		 __LINE__);
	bad_elem(1, "tokenizer.ggml.merges", 1, json_string("h zz"), MCB_EFORMAT,
		 "'zz' is not a token", __LINE__);
	bad_elem(1, "tokenizer.ggml.merges", 1, json_string("qq e"), MCB_EFORMAT,
		 "'qq' is not a token", __LINE__);
	bad_elem(1, "tokenizer.ggml.merges", 1, json_string("x y"), MCB_EFORMAT,
		 "'xy' is not a token", __LINE__);
	bad_elem(1, "tokenizer.ggml.merges", 1, json_integer(1), MCB_EFORMAT,
		 "merges[1] is not a string", __LINE__);
}

static void test_vocab_checks(void)
{
	struct mcb_tokenizer *t = NULL;
	struct mcb_errctx e = {0};
	struct mcb_model m;
	struct voc v;

	/* the model's vocabulary size must match */
	spm_voc(&v, 1);
	voc_model(&v, "llama", &m);
	m.cfg.vocab_size = 512;
	expect_bad(&m, MCB_EFORMAT, "model's vocabulary has 512", __LINE__);

	/* add_bos_token without a BOS token (the default 1 is out of range) */
	voc_init(&v);
	voc_add(&v, "a", 0, 1);
	voc_model(&v, "llama", &m);
	expect_bad(&m, MCB_EFORMAT, "add_bos_token is true but the vocabulary has no BOS",
		   __LINE__);

	/* a one-token vocabulary without BOS, scores or types is fine */
	voc_init(&v);
	voc_add(&v, "a", 0, 1);
	voc_model(&v, "llama", &m);
	json_object_set_new(gguf_of(&m), "tokenizer.ggml.add_bos_token",
			    typed("bool", json_false()));
	json_object_del(gguf_of(&m), "tokenizer.ggml.scores");
	json_object_del(gguf_of(&m), "tokenizer.ggml.token_type");
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	if (t) {
		int32_t *ids = NULL;
		size_t n = 0;

		CHECK_EQ(mcb_tokenizer_bos(t), -1);
		/* neither "▁" nor bytes nor unk (0 is "a", the default unk): "a" */
		EXPECT(t, "aaa", 1, 0, 0, 0, 0, 0, 0);
		CHECK_OK(mcb_tokenizer_encode(t, "a", 1, 0, &ids, &n, &e), &e);
		free(ids);
	}
	mcb_tokenizer_free(t);
	mcb_model_release(&m);

	/* an infinite score (the hex bits runtime/gguf.c keeps) is accepted */
	spm_voc(&v, 1);
	voc_model(&v, "llama", &m);
	json_array_set_new(
		json_object_get(json_object_get(gguf_of(&m), "tokenizer.ggml.scores"), "value"), 0,
		json_string("0xff800000"));
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	mcb_tokenizer_free(t);
	mcb_model_release(&m);

	/* i32 scores are accepted */
	spm_voc(&v, 1);
	voc_model(&v, "llama", &m);
	{
		json_t *s = json_array();
		size_t i;

		for (i = 0; i < 288; i++)
			json_array_append_new(s, json_integer(-(json_int_t)i));
		json_object_set_new(gguf_of(&m), "tokenizer.ggml.scores", typed_arr("i32", s));
	}
	CHECK_OK(mcb_tokenizer_from_model(&m, &t, &e), &e);
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
}

/* ---- limits ---- */

static void test_limits(void)
{
	struct mcb_errctx e = {0};
	struct mcb_model m, m2;
	struct mcb_tokenizer *t = spm_tok(&m, &e), *b = bpe_tok(&m2, &e, -1);
	size_t n = MCB_TOKENIZER_MAX_TEXT, k;
	int32_t *ids = NULL;
	char *text;
	clock_t c0;

	if (!t || !b)
		goto out;
	text = malloc(n + 1);
	memset(text, 'a', n + 1);
	CHECK_ERR(mcb_tokenizer_encode(t, text, n + 1, 0, &ids, &k, &e), &e, MCB_ERANGE,
		  "too long");
	/* the longest text: a run of one character (worst case for the merge
	 * queue: every pair merges) and a text of spaces, in well under a second */
	c0 = clock();
	CHECK_OK(mcb_tokenizer_encode(b, text, n, 0, &ids, &k, &e), &e);
	CHECK_EQ(k, n / 2);
	free(ids);
	memset(text, ' ', n);
	CHECK_OK(mcb_tokenizer_encode(t, text, n, 0, &ids, &k, &e), &e);
	CHECK_EQ(k, n / 2 + 1); /* ▁▁ pairs, one ▁ left over from the prefix */
	free(ids);
	CHECK((double)(clock() - c0) / CLOCKS_PER_SEC < 10);
	free(text);
out:
	mcb_tokenizer_free(t);
	mcb_tokenizer_free(b);
	mcb_model_release(&m);
	mcb_model_release(&m2);
}

int main(void)
{
	RUN(test_spm_merges);
	RUN(test_spm_bytes);
	RUN(test_spm_unk_and_flags);
	RUN(test_spm_user_tokens);
	RUN(test_spm_decode);
	RUN(test_bpe_merges);
	RUN(test_bpe_pretokenize);
	RUN(test_bpe_decode);
	RUN(test_bpe_missing_byte);
	RUN(test_hostile_vocab);
	RUN(test_vocab_checks);
	RUN(test_limits);
	return mcbt_done();
}
