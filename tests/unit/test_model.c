/* Unit tests for the model container, its checks, detection and the IR (runtime/model.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/safetensors.h"

/* The ENOMEM test asks for 2^62 bytes: let ASan return NULL as libc does. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static unsigned char *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n + 1);
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return p;
}

static int same_file(const char *a, const char *b)
{
	size_t na, nb;
	unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
	int same = x && y && na == nb && !memcmp(x, y, na);

	free(x);
	free(y);
	return same;
}

static uint32_t lcg = 7;

static void add_rand(struct mcb_model *m, const char *name, enum mcb_dtype dt, int64_t d0,
		     int64_t d1)
{
	struct mcb_errctx e;
	struct mcb_tensor *t;
	int64_t shape[2] = {d0, d1};
	size_t i;

	if (mcb_model_new_tensor(m, name, dt, d1 ? 2 : 1, shape, &t, &e)) {
		CHECK(!"new_tensor");
		return;
	}
	for (i = 0; i < t->nbytes; i++) {
		lcg = lcg * 1664525u + 1013904223u;
		((unsigned char *)t->data)[i] = (unsigned char)(lcg >> 24);
	}
	if (dt == MCB_DT_F32) /* keep the floats finite: clear exponent bit 7 */
		for (i = 3; i < t->nbytes; i += 4)
			((unsigned char *)t->data)[i] &= 0xbf;
}

/* A small Llama model: dim 8, hidden 12, 2 layers, 2 heads, 1 kv head, vocab 10. */
static void synth(struct mcb_model *m, int tied, enum mcb_dtype dt)
{
	char name[64];
	int l;

	strcpy(m->arch, "llama");
	m->cfg = (struct mcb_llama_config){8, 12, 2, 2, 1, 10, 16, 4, 1e-5, 10000.0, tied};
	add_rand(m, "token_embd.weight", dt, 10, 8);
	for (l = 0; l < 2; l++) {
#define L(s) (snprintf(name, sizeof(name), "blk.%d.%s.weight", l, s), name)
		add_rand(m, L("attn_norm"), MCB_DT_F32, 8, 0);
		add_rand(m, L("attn_q"), dt, 8, 8);
		add_rand(m, L("attn_k"), dt, 4, 8);
		add_rand(m, L("attn_v"), dt, 4, 8);
		add_rand(m, L("attn_output"), dt, 8, 8);
		add_rand(m, L("ffn_norm"), MCB_DT_F32, 8, 0);
		add_rand(m, L("ffn_gate"), dt, 12, 8);
		add_rand(m, L("ffn_up"), dt, 12, 8);
		add_rand(m, L("ffn_down"), dt, 8, 12);
#undef L
	}
	add_rand(m, "output_norm.weight", MCB_DT_F32, 8, 0);
	if (!tied)
		add_rand(m, "output.weight", dt, 10, 8);
}

static void check_same(const struct mcb_model *a, const struct mcb_model *b)
{
	size_t i;

	CHECK_STR(a->arch, b->arch);
	CHECK(memcmp(&a->cfg, &b->cfg, sizeof(a->cfg)) == 0);
	CHECK(json_equal(a->meta, b->meta));
	CHECK_EQ(a->ntensors, b->ntensors);
	for (i = 0; i < a->ntensors; i++) {
		const struct mcb_tensor *x = &a->tensors[i];
		const struct mcb_tensor *y = mcb_model_find(b, x->name);

		if (!y || x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
		    memcmp(x->shape, y->shape, sizeof(x->shape)) || memcmp(x->data, y->data, x->nbytes))
			mcbt_fail(__FILE__, __LINE__, "tensor %s differs", x->name);
	}
}

static void test_container(void)
{
	struct mcb_model m;
	struct mcb_errctx e;
	struct mcb_tensor *t;
	int64_t shape[3] = {2, 3, 4};
	static float borrowed[6] = {1, 2, 3, 4, 5, 6};
	int i;

	mcb_model_init(&m);
	CHECK(json_is_object(m.meta) && json_object_size(m.meta) == 0);
	CHECK(m.ntensors == 0 && m.map.data == NULL);
	CHECK_OK(mcb_model_new_tensor(&m, "a", MCB_DT_F32, 3, shape, &t, &e), &e);
	CHECK(t->owned && t->nbytes == 96 && t->ndim == 3 && t->shape[2] == 4);
	for (i = 0; i < 96; i++)
		CHECK(((unsigned char *)t->data)[i] == 0);
	t = mcb_model_add(&m, "b", MCB_DT_F32, 2, shape, borrowed, 24, 0);
	CHECK(t->data == borrowed && !t->owned);
	for (i = 0; i < 200; i++) { /* grow past the initial capacity */
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		CHECK_OK(mcb_model_new_tensor(&m, name, MCB_DT_U8, 0, NULL, &t, &e), &e);
		CHECK_EQ(t->nbytes, 1);
	}
	CHECK_EQ(m.ntensors, 202);
	CHECK(mcb_model_find(&m, "b") == &m.tensors[1]);
	CHECK(mcb_model_find(&m, "s199") == &m.tensors[201]);
	CHECK(mcb_model_find(&m, "zz") == NULL);
	CHECK_EQ(mcb_model_remove(&m, "a"), 0);
	CHECK_EQ(mcb_model_remove(&m, "a"), MCB_ENOENT);
	CHECK_EQ(mcb_model_remove(&m, "b"), 0);
	CHECK_EQ(m.ntensors, 200);
	CHECK_STR(m.tensors[0].name, "s0");
	CHECK_STR(mcb_model_find(&m, "s100")->name, "s100");
	/* checked allocation */
	shape[0] = 1LL << 31, shape[1] = 1LL << 29;
	CHECK_ERR(mcb_model_new_tensor(&m, "huge", MCB_DT_F32, 2, shape, &t, &e), &e, MCB_ENOMEM,
		  "cannot allocate 4611686018427387904 bytes for tensor 'huge'");
	shape[0] = 1LL << 62, shape[1] = 8;
	CHECK_ERR(mcb_model_new_tensor(&m, "ovf", MCB_DT_F32, 2, shape, &t, &e), &e, MCB_ERANGE,
		  "tensor 'ovf': element count overflows");
	shape[0] = 1LL << 61;
	CHECK_ERR(mcb_model_new_tensor(&m, "ovf2", MCB_DT_F64, 1, shape, &t, &e), &e, MCB_ERANGE,
		  "tensor 'ovf2': size of 2305843009213693952 F64 elements overflows");
	shape[0] = -1;
	CHECK_ERR(mcb_model_new_tensor(&m, "neg", MCB_DT_F32, 1, shape, &t, &e), &e, MCB_ERANGE,
		  "negative dimension -1");
	shape[0] = 2, shape[1] = 33;
	CHECK_ERR(mcb_model_new_tensor(&m, "q", MCB_DT_Q8_0, 2, shape, &t, &e), &e, MCB_ERANGE,
		  "rows of Q8_0 must be a multiple of 32");
	shape[1] = 64;
	CHECK_OK(mcb_model_new_tensor(&m, "q", MCB_DT_Q8_0, 2, shape, &t, &e), &e);
	CHECK_EQ(t->nbytes, 2 * 2 * 34);
	CHECK_ERR(mcb_model_new_tensor(&m, "x", MCB_DT_F32, 9, shape, &t, &e), &e, MCB_ERANGE,
		  "9 dimensions");
	CHECK_EQ(m.ntensors, 201);
	mcb_model_release(&m);
}

static void test_add_mapped(void)
{
	struct mcb_model m;
	struct mcb_errctx e;
	struct mcb_tensor *t;
	static _Alignas(16) unsigned char buf[64];
	int64_t shape[1] = {4};
	int i;

	for (i = 0; i < 64; i++)
		buf[i] = (unsigned char)i;
	mcb_model_init(&m);
	CHECK_OK(mcb_model_add_mapped(&m, "aligned", MCB_DT_F32, 1, shape, buf + 4, 16, &t, &e), &e);
	CHECK(t->data == buf + 4 && !t->owned);
	CHECK_OK(mcb_model_add_mapped(&m, "odd", MCB_DT_F32, 1, shape, buf + 1, 16, &t, &e), &e);
	CHECK(t->data != buf + 1 && t->owned && (uintptr_t)t->data % 4 == 0);
	CHECK(memcmp(t->data, buf + 1, 16) == 0);
	CHECK_OK(mcb_model_add_mapped(&m, "u8", MCB_DT_U8, 1, shape, buf + 3, 4, NULL, &e), &e);
	CHECK(mcb_model_find(&m, "u8")->data == buf + 3);
	CHECK_OK(mcb_model_add_mapped(&m, "f16", MCB_DT_F16, 1, shape, buf + 5, 8, &t, &e), &e);
	CHECK(t->owned && (uintptr_t)t->data % 2 == 0);
	mcb_model_release(&m);
}

static void test_check_config(void)
{
	struct mcb_llama_config ok = {8, 12, 2, 2, 1, 10, 16, 4, 1e-5, 10000.0, 1}, c;
	struct mcb_errctx e;

	CHECK_OK(mcb_model_check_config(&ok, "'x'", &e), &e);
#define BAD(field, value, sub)                                                               \
	do {                                                                                 \
		c = ok;                                                                      \
		c.field = value;                                                             \
		CHECK_ERR(mcb_model_check_config(&c, "'x'", &e), &e, MCB_EFORMAT, sub); \
	} while (0)
	BAD(dim, 0, "'x': dim 0 is out of range 1..65536");
	BAD(dim, 65537, "dim 65537");
	BAD(hidden_dim, -1, "hidden_dim -1");
	BAD(n_layers, 1025, "n_layers 1025");
	c = ok;
	c.n_heads = 3;
	c.head_dim = 8 / 3; /* as a reader derives it */
	CHECK_ERR(mcb_model_check_config(&c, "'x'", &e), &e, MCB_EFORMAT,
		  "n_heads 3 does not divide dim 8");
	BAD(n_heads, 16, "n_heads 16 is out of range 1..8");
	BAD(n_kv_heads, 3, "n_kv_heads 3 is out of range 1..2");
	BAD(vocab_size, (1 << 22) + 1, "vocab_size 4194305");
	BAD(seq_len, 0, "seq_len 0");
	BAD(head_dim, 3, "head_dim 3 must be even");
	BAD(head_dim, 10, "at most dim 8");
	BAD(norm_eps, 0.0, "norm_eps");
	BAD(norm_eps, -1e-5, "norm_eps");
	BAD(rope_theta, 0.0 / 0.0, "rope_theta");
	BAD(tied_embeddings, 2, "tied_embeddings");
	c = ok;
	c.n_heads = 8;
	c.head_dim = 1;
	CHECK_ERR(mcb_model_check_config(&c, "'x'", &e), &e, MCB_EFORMAT, "must be even");
	/* pruned heads: fewer heads of the same size than dim / head_dim */
	c = ok;
	c.n_heads = 1;
	c.n_kv_heads = 1;
	CHECK_OK(mcb_model_check_config(&c, "'x'", &e), &e);
	c = ok;
	c.n_heads = 1;
	c.head_dim = 8;
	CHECK_OK(mcb_model_check_config(&c, "'x'", &e), &e);
#undef BAD
}

static void test_check_llama(void)
{
	struct mcb_model m;
	struct mcb_errctx e;
	struct mcb_tensor *t;
	int64_t shape[2] = {10, 8};

	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
	CHECK_OK(mcb_model_check_llama(&m, "'m'", &e), &e);
	strcpy(m.arch, "gpt2");
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "architecture 'gpt2' is not llama");
	strcpy(m.arch, "llama");
	CHECK_OK(mcb_model_new_tensor(&m, "output.weight", MCB_DT_F32, 2, shape, &t, &e), &e);
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "has output.weight but the embeddings are tied");
	m.cfg.tied_embeddings = 0;
	CHECK_OK(mcb_model_check_llama(&m, "'m'", &e), &e);
	mcb_model_remove(&m, "output.weight");
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "'m': missing tensor 'output.weight'");
	m.cfg.tied_embeddings = 1;
	/* wrong shape */
	mcb_model_remove(&m, "blk.1.ffn_down.weight");
	shape[0] = 12, shape[1] = 8;
	CHECK_OK(mcb_model_new_tensor(&m, "blk.1.ffn_down.weight", MCB_DT_F32, 2, shape, &t, &e), &e);
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT,
		  "tensor 'blk.1.ffn_down.weight' has shape [12, 8], expected [8, 12]");
	mcb_model_remove(&m, "blk.1.ffn_down.weight");
	shape[0] = 8, shape[1] = 12;
	CHECK_OK(mcb_model_new_tensor(&m, "blk.1.ffn_down.weight", MCB_DT_F64, 2, shape, &t, &e), &e);
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "has dtype F64, expected F32, F16 or BF16");
	mcb_model_remove(&m, "blk.1.ffn_down.weight");
	CHECK_OK(mcb_model_new_tensor(&m, "blk.1.ffn_down.weight", MCB_DT_I8, 2, shape, &t, &e), &e);
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "has dtype I8, expected F32, F16 or BF16");
	json_object_set_new(m.meta, "quant", json_pack("{s:{s:s}}", "blk.1.ffn_down.weight", "scheme", "rtn"));
	CHECK_OK(mcb_model_check_llama(&m, "'m'", &e), &e);
	/* a ggml record: U8 [rows, row bytes] */
	json_object_set_new(json_object_get(m.meta, "quant"), "blk.1.ffn_down.weight",
			    json_pack("{s:s, s:s}", "format", "ggml", "ggml_type", "Q4_0"));
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "cannot hold rows of 12");
	mcb_model_remove(&m, "blk.0.attn_norm.weight");
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "missing tensor 'blk.0.attn_norm.weight'");
	m.cfg.n_heads = 3;
	m.cfg.head_dim = 8 / 3;
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "n_heads 3 does not divide dim 8");
	m.cfg.head_dim = 4;
	/* one head of two pruned: q expected [4, 8] */
	m.cfg.n_heads = 1;
	m.cfg.n_kv_heads = 1;
	CHECK_ERR(mcb_model_check_llama(&m, "'m'", &e), &e, MCB_EFORMAT, "missing tensor 'blk.0.attn_norm.weight'");
	mcb_model_release(&m);
}

static void test_formats(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_errctx e;
	struct mcb_model m;

	CHECK_STR(mcb_model_format_name(MCB_FMT_LLAMA2C), "llama2c");
	CHECK_STR(mcb_model_format_name(MCB_FMT_GGUF), "gguf");
	CHECK_STR(mcb_model_format_name(MCB_FMT_SAFETENSORS), "safetensors");
	CHECK_STR(mcb_model_format_name(MCB_FMT_UNKNOWN), "unknown");
	CHECK_STR(mcb_model_format_name((enum mcb_model_format)99), "unknown");
	CHECK_EQ(mcb_model_format_parse("gguf"), MCB_FMT_GGUF);
	CHECK_EQ(mcb_model_format_parse("llama2c"), MCB_FMT_LLAMA2C);
	CHECK_EQ(mcb_model_format_parse("safetensors"), MCB_FMT_SAFETENSORS);
	CHECK_EQ(mcb_model_format_parse("unknown"), MCB_FMT_UNKNOWN);
	CHECK_EQ(mcb_model_format_parse("onnx"), MCB_FMT_UNKNOWN);

	snprintf(path, sizeof(path), "%s/x.gguf", dir);
	mcbt_write(path, "GGUF\3\0\0\0", 8);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_GGUF);
	snprintf(path, sizeof(path), "%s/x.safetensors", dir);
	mcbt_write(path, "\x08\0\0\0\0\0\0\0{}      ", 16);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_SAFETENSORS);
	snprintf(path, sizeof(path), "%s/ir.safetensors", dir);
	mcb_model_init(&m);
	synth(&m, 0, MCB_DT_F32);
	CHECK_OK(mcb_model_save_ir(&m, path, &e), &e);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_SAFETENSORS);
	mcb_model_release(&m);
	snprintf(path, sizeof(path), "%s/x.bin", dir);
	{
		int32_t h[7] = {4, 4, 1, 2, 1, 4, 2};
		unsigned char buf[540] = {0};

		memcpy(buf, h, 28);
		mcbt_write(path, buf, sizeof(buf));
		CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_LLAMA2C);
		mcbt_write(path, buf, sizeof(buf) - 1);
		mcb_errclear(&e);
		CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_UNKNOWN);
		CHECK_EQ(e.code, MCB_EFORMAT);
		CHECK(strstr(e.msg, "not a GGUF, safetensors or llama2.c file") != NULL);
		CHECK(strstr(e.msg, "but its header implies 540") != NULL);
	}
	snprintf(path, sizeof(path), "%s/empty", dir);
	mcbt_write(path, "", 0);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_UNKNOWN);
	CHECK(strstr(e.msg, path) != NULL);
	CHECK_EQ(mcb_model_detect("/nonexistent/m.bin", &e), MCB_FMT_UNKNOWN);
	CHECK_EQ(e.code, MCB_ENOENT);
}

static void test_ir_roundtrip(void)
{
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;
	struct mcb_st_file f;
	size_t i;
	int tied;

	snprintf(p1, sizeof(p1), "%s/a.safetensors", dir);
	snprintf(p2, sizeof(p2), "%s/b.safetensors", dir);
	for (tied = 0; tied < 2; tied++) {
		mcb_model_init(&m);
		synth(&m, tied, tied ? MCB_DT_BF16 : MCB_DT_F16);
		m.cfg.norm_eps = 1e-6 / 3; /* not a short decimal: 17 digits must bring it back */
		m.cfg.rope_theta = 500000.0;
		/* a quantized tensor with its record, and metadata of every JSON kind */
		mcb_model_remove(&m, "blk.0.ffn_up.weight");
		add_rand(&m, "blk.0.ffn_up.weight", MCB_DT_I8, 12, 8);
		add_rand(&m, "blk.0.ffn_up.scale", MCB_DT_F32, 12, 0);
		json_object_set_new(m.meta, "quant",
				    json_pack("{s:{s:s,s:i,s:s}}", "blk.0.ffn_up.weight", "scheme",
					      "rtn", "bits", 8, "scales", "blk.0.ffn_up.scale"));
		json_object_set_new(m.meta, "tokenizer",
				    json_pack("{s:[s,s], s:f, s:n, s:b, s:s}", "tokens", "a", "\xc3\xa9",
					      "x", 0.1, "nothing", "flag", 1, "quote", "\"\\"));
		CHECK_OK(mcb_model_check_llama(&m, "'m'", &e), &e);
		CHECK_OK(mcb_model_save_ir(&m, p1, &e), &e);
		mcb_model_init(&r);
		CHECK_OK(mcb_model_load_ir(p1, &r, &e), &e);
		check_same(&m, &r);
		CHECK(r.cfg.norm_eps == 1e-6 / 3);
		CHECK(r.map.data != NULL);
		for (i = 0; i < r.ntensors; i++)
			CHECK_EQ(r.tensors[i].owned, 0);
		CHECK_OK(mcb_model_save_ir(&r, p2, &e), &e);
		CHECK(same_file(p1, p2));
		/* the metadata is as specified */
		CHECK_OK(mcb_st_open(p1, &f, &e), &e);
		CHECK_STR(json_string_value(json_object_get(f.metadata, "mcbuild.ir")), "1");
		{
			static const char head[] = "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,"
						   "\"hidden_dim\":12,";

			CHECK(strncmp(json_string_value(json_object_get(f.metadata, "mcbuild.arch")), head,
				      sizeof(head) - 1) == 0);
		}
		CHECK_EQ(json_object_size(f.metadata), 3);
		mcb_st_close(&f);
		mcb_model_release(&r);
		mcb_model_release(&m);
	}
	/* an invalid model is not written */
	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
	mcb_model_remove(&m, "blk.1.attn_v.weight");
	CHECK_ERR(mcb_model_save_ir(&m, p1, &e), &e, MCB_EFORMAT,
		  "refusing to write an invalid model: '");
	mcb_model_release(&m);
}

/* Write an IR-like file with the model's tensors and the given metadata. */
static void write_ir(const char *path, const struct mcb_model *m, json_t *md)
{
	const struct mcb_tensor **list = calloc(m->ntensors, sizeof(*list));
	struct mcb_errctx e;
	size_t i;

	for (i = 0; i < m->ntensors; i++)
		list[i] = &m->tensors[i];
	CHECK_OK(mcb_st_write(path, list, m->ntensors, md, &e), &e);
	free(list);
	json_decref(md);
}

static void test_ir_hostile(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096], good[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;
	const char *arch_ok = "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,\"hidden_dim\":12,"
			      "\"n_heads\":2,\"n_kv_heads\":1,\"n_layers\":2,\"norm_eps\":1e-05,"
			      "\"rope_theta\":10000.0,\"seq_len\":16,\"tied_embeddings\":true,"
			      "\"vocab_size\":10}";
	static const struct {
		const char *ir, *arch, *meta;
		int code;
		const char *sub;
	} cases[] = {
		{"1", NULL, "{}", MCB_OK, ""},
		{"2", NULL, "{}", MCB_EUNSUP, "IR version '2' is not supported"},
		{NULL, NULL, "{}", MCB_EFORMAT, "not an mcbuild IR file"},
		{"1", "{\"architecture\":\"llama\"", "{}", MCB_EFORMAT, "mcbuild.arch:1:"},
		{"1", "[]", "{}", MCB_EFORMAT, "mcbuild.arch is not a JSON object"},
		{"1", "{\"architecture\":\"gpt2\"}", "{}", MCB_EUNSUP, "architecture must be \"llama\""},
		{"1", "{\"architecture\":\"llama\",\"extra\":1}", "{}", MCB_EFORMAT, "unknown key 'extra'"},
		{"1", "{\"architecture\":\"llama\",\"tied_embeddings\":true}", "{}", MCB_EFORMAT,
		 "'dim' must be an integer"},
		{"1", "{\"architecture\":\"llama\",\"tied_embeddings\":1}", "{}", MCB_EFORMAT,
		 "'tied_embeddings' must be a boolean"},
		{"1", "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,\"hidden_dim\":12,"
		      "\"n_heads\":2,\"n_kv_heads\":1,\"n_layers\":2,\"norm_eps\":\"x\","
		      "\"rope_theta\":10000.0,\"seq_len\":16,\"tied_embeddings\":true,\"vocab_size\":10}",
		 "{}", MCB_EFORMAT, "'norm_eps' must be a number"},
		{"1", "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,\"hidden_dim\":12,"
		      "\"n_heads\":2,\"n_kv_heads\":1,\"n_layers\":2,\"norm_eps\":1e-5,"
		      "\"rope_theta\":10000.0,\"seq_len\":16,\"tied_embeddings\":true,\"vocab_size\":-10}",
		 "{}", MCB_EFORMAT, "vocab_size -10 is out of range"},
		{"1", "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,\"hidden_dim\":12,"
		      "\"n_heads\":2,\"n_kv_heads\":1,\"n_layers\":3,\"norm_eps\":1e-5,"
		      "\"rope_theta\":10000.0,\"seq_len\":16,\"tied_embeddings\":true,\"vocab_size\":10}",
		 "{}", MCB_EFORMAT, "missing tensor 'blk.2.attn_norm.weight'"},
		{"1", "{\"architecture\":\"llama\",\"dim\":8,\"head_dim\":4,\"hidden_dim\":12,"
		      "\"n_heads\":2,\"n_kv_heads\":1,\"n_layers\":2,\"norm_eps\":1e-5,"
		      "\"rope_theta\":10000.0,\"seq_len\":16,\"tied_embeddings\":false,\"vocab_size\":10}",
		 "{}", MCB_EFORMAT, "missing tensor 'output.weight'"},
		{"1", NULL, "[]", MCB_EFORMAT, "mcbuild.meta is not a JSON object"},
		{"1", NULL, "{\"quant\":[]}", MCB_EFORMAT, "'quant' is not an object"},
		{"1", NULL, "{\"quant\":{\"x\":1}}", MCB_EFORMAT, "quant record for 'x' is not an object"},
		{"1", NULL, "{\"gguf\":1}", MCB_EFORMAT, "'gguf' is not an object"},
		{"1", NULL, "{\"a\":1,\"a\":2}", MCB_EFORMAT, "mcbuild.meta:1:"},
		{"1", NULL, "not json", MCB_EFORMAT, "mcbuild.meta:1:"},
	};
	size_t i;

	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
	snprintf(good, sizeof(good), "%s/good.safetensors", dir);
	CHECK_OK(mcb_model_save_ir(&m, good, &e), &e);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *md = json_object();

		if (cases[i].ir)
			json_object_set_new(md, "mcbuild.ir", json_string(cases[i].ir));
		json_object_set_new(md, "mcbuild.arch", json_string(cases[i].arch ? cases[i].arch : arch_ok));
		json_object_set_new(md, "mcbuild.meta", json_string(cases[i].meta));
		snprintf(path, sizeof(path), "%s/case%zu.safetensors", dir, i);
		write_ir(path, &m, md);
		mcb_model_init(&r);
		mcb_errclear(&e);
		if (cases[i].code == MCB_OK) {
			CHECK_OK(mcb_model_load_ir(path, &r, &e), &e);
		} else {
			CHECK_ERR(mcb_model_load_ir(path, &r, &e), &e, cases[i].code, cases[i].sub);
			if (!strstr(e.msg, path))
				mcbt_fail(__FILE__, __LINE__, "\"%s\" does not name the file", e.msg);
			CHECK_EQ(r.ntensors, 0);
		}
		mcb_model_release(&r);
	}
	/* an unknown metadata key */
	{
		json_t *md = json_pack("{s:s, s:s, s:s, s:s}", "mcbuild.ir", "1", "mcbuild.arch", arch_ok,
				       "mcbuild.meta", "{}", "other", "x");

		snprintf(path, sizeof(path), "%s/extra.safetensors", dir);
		write_ir(path, &m, md);
		mcb_model_init(&r);
		CHECK_ERR(mcb_model_load_ir(path, &r, &e), &e, MCB_EFORMAT, "unknown __metadata__ key 'other'");
		mcb_model_release(&r);
	}
	/* a plain safetensors file without metadata */
	snprintf(path, sizeof(path), "%s/plain.safetensors", dir);
	write_ir(path, &m, NULL);
	mcb_model_init(&r);
	CHECK_ERR(mcb_model_load_ir(path, &r, &e), &e, MCB_EFORMAT, "not an mcbuild IR file");
	mcb_model_release(&r);
	/* every truncation of a valid IR file is rejected */
	{
		size_t n, cut;
		unsigned char *a = slurp(good, &n);

		snprintf(path, sizeof(path), "%s/cut.safetensors", dir);
		for (cut = 0; a && cut < n; cut += (cut < 2048 ? 1 : 97)) {
			int rc;

			mcbt_write(path, a, cut);
			mcb_model_init(&r);
			mcb_errclear(&e);
			rc = mcb_model_load_ir(path, &r, &e);
			if (rc != MCB_EFORMAT || !strstr(e.msg, path))
				mcbt_fail(__FILE__, __LINE__, "cut at %zu: rc %d \"%s\"", cut, rc, e.msg);
			mcb_model_release(&r);
		}
		free(a);
	}
	mcb_model_release(&m);
}

static void test_real_model_ir(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	const char *dir;
	char src[4096], p1[4096], p2[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;

	if (!p)
		return;
	snprintf(src, sizeof(src), "%s", p);
	dir = mcbt_tmpdir();
	snprintf(p1, sizeof(p1), "%s/a.safetensors", dir);
	snprintf(p2, sizeof(p2), "%s/b.safetensors", dir);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(src, &m, &e), &e);
	CHECK_OK(mcb_model_save_ir(&m, p1, &e), &e);
	mcb_model_init(&r);
	CHECK_OK(mcb_model_load_ir(p1, &r, &e), &e);
	check_same(&m, &r);
	CHECK_OK(mcb_model_save_ir(&r, p2, &e), &e);
	CHECK(same_file(p1, p2));
	mcb_model_release(&r);
	mcb_model_release(&m);
}

int main(void)
{
	RUN(test_container);
	RUN(test_add_mapped);
	RUN(test_check_config);
	RUN(test_check_llama);
	RUN(test_formats);
	RUN(test_ir_roundtrip);
	RUN(test_ir_hostile);
	RUN(test_real_model_ir);
	return mcbt_done();
}
