/* Unit tests for the Hugging Face layout: names, Q/K permutation, config.json, mcb_hf_read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/safetensors.h"

static void test_names(void)
{
	static const char *const pairs[][2] = {
		{"model.embed_tokens.weight", "token_embd.weight"},
		{"model.norm.weight", "output_norm.weight"},
		{"lm_head.weight", "output.weight"},
		{"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
		{"model.layers.3.self_attn.q_proj.weight", "blk.3.attn_q.weight"},
		{"model.layers.10.self_attn.k_proj.weight", "blk.10.attn_k.weight"},
		{"model.layers.7.self_attn.v_proj.weight", "blk.7.attn_v.weight"},
		{"model.layers.7.self_attn.o_proj.weight", "blk.7.attn_output.weight"},
		{"model.layers.99.post_attention_layernorm.weight", "blk.99.ffn_norm.weight"},
		{"model.layers.1.mlp.gate_proj.weight", "blk.1.ffn_gate.weight"},
		{"model.layers.1.mlp.up_proj.weight", "blk.1.ffn_up.weight"},
		{"model.layers.123456789.mlp.down_proj.weight", "blk.123456789.ffn_down.weight"},
	};
	static const char *const bad_hf[] = {
		"", "model", "model.layers.1", "model.layers.1.", "model.layers..mlp.up_proj.weight",
		"model.layers.01.mlp.up_proj.weight", "model.layers.-1.mlp.up_proj.weight",
		"model.layers.1234567890.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.bias",
		"model.layers.1.mlp.up_proj.weight.x", "model.layers.1x.mlp.up_proj.weight",
		"blk.1.ffn_up.weight", "model.embed_tokens", "model.layers.1.self_attn.rotary_emb.inv_freq",
	};
	static const char *const bad_gguf[] = {
		"blk.01.ffn_up.weight", "blk.1.ffn_up", "blk.a.ffn_up.weight", "output",
		"model.embed_tokens.weight", "blk.1.ffn_up.weight ",
	};
	char out[128];
	size_t i;

	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		CHECK_EQ(mcb_hf_to_gguf_name(pairs[i][0], out, sizeof(out)), 0);
		CHECK_STR(out, pairs[i][1]);
		CHECK_EQ(mcb_gguf_to_hf_name(pairs[i][1], out, sizeof(out)), 0);
		CHECK_STR(out, pairs[i][0]);
	}
	for (i = 0; i < sizeof(bad_hf) / sizeof(bad_hf[0]); i++)
		if (mcb_hf_to_gguf_name(bad_hf[i], out, sizeof(out)) != -1)
			mcbt_fail(__FILE__, __LINE__, "'%s' mapped to '%s'", bad_hf[i], out);
	for (i = 0; i < sizeof(bad_gguf) / sizeof(bad_gguf[0]); i++)
		if (mcb_gguf_to_hf_name(bad_gguf[i], out, sizeof(out)) != -1)
			mcbt_fail(__FILE__, __LINE__, "'%s' mapped to '%s'", bad_gguf[i], out);
	/* too small an output buffer */
	CHECK_EQ(mcb_hf_to_gguf_name("model.layers.3.self_attn.q_proj.weight", out, 19), -1);
	CHECK_EQ(mcb_hf_to_gguf_name("model.layers.3.self_attn.q_proj.weight", out, 20), 0);
	CHECK_EQ(mcb_gguf_to_hf_name("output.weight", out, 14), -1);
}

/* numpy semantics, written out: w.reshape(nh, 2, hd/2, c).swapaxes(1, 2) */
static void permute_ref(const float *in, float *out, int nh, int hd, int cols)
{
	int h, a, b, c;

	for (h = 0; h < nh; h++)
		for (b = 0; b < hd / 2; b++)     /* new axis 1 (old axis 2) */
			for (a = 0; a < 2; a++)  /* new axis 2 (old axis 1) */
				for (c = 0; c < cols; c++)
					out[((h * (hd / 2) + b) * 2 + a) * cols + c] =
						in[((h * 2 + a) * (hd / 2) + b) * cols + c];
}

static void test_permute(void)
{
	struct mcb_errctx e;
	float w[8] = {0, 1, 2, 3, 4, 5, 6, 7};
	static const float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
	float *a, *b, *orig;
	uint16_t h[16];
	int i, n = 4 * 16 * 5, nh, hd;

	CHECK_OK(mcb_hf_permute_rows(w, 2, 4, 1, 4, 1, &e), &e);
	CHECK(memcmp(w, want, sizeof(w)) == 0);
	CHECK_OK(mcb_hf_permute_rows(w, 2, 4, 1, 4, 0, &e), &e);
	for (i = 0; i < 8; i++)
		CHECK(w[i] == (float)i);
	a = malloc(sizeof(float) * (size_t)n);
	b = malloc(sizeof(float) * (size_t)n);
	orig = malloc(sizeof(float) * (size_t)n);
	for (nh = 1; nh <= 4; nh++)
		for (hd = 2; hd <= 16; hd += 2) {
			int cols = 5, rows = nh * hd;

			for (i = 0; i < rows * cols; i++)
				orig[i] = a[i] = (float)i;
			permute_ref(orig, b, nh, hd, cols);
			CHECK_OK(mcb_hf_permute_rows(a, nh, hd, cols, 4, 1, &e), &e);
			CHECK(memcmp(a, b, sizeof(float) * (size_t)(rows * cols)) == 0);
			CHECK_OK(mcb_hf_permute_rows(a, nh, hd, cols, 4, 0, &e), &e);
			CHECK(memcmp(a, orig, sizeof(float) * (size_t)(rows * cols)) == 0);
		}
	/* 2-byte elements and per-row data (cols = 1) */
	for (i = 0; i < 16; i++)
		h[i] = (uint16_t)i;
	CHECK_OK(mcb_hf_permute_rows(h, 2, 8, 1, 2, 1, &e), &e);
	CHECK(h[0] == 0 && h[1] == 4 && h[2] == 1 && h[3] == 5 && h[8] == 8 && h[9] == 12);
	CHECK_ERR(mcb_hf_permute_rows(a, 2, 3, 1, 4, 1, &e), &e, MCB_EINVAL, "head size must be even");
	CHECK_ERR(mcb_hf_permute_rows(a, 0, 4, 1, 4, 1, &e), &e, MCB_EINVAL, "0 heads");
	CHECK_ERR(mcb_hf_permute_rows(a, 1, 4, INT64_MAX / 2, 4, 1, &e), &e, MCB_ERANGE, "overflows");
	CHECK_OK(mcb_hf_permute_rows(a, 2, 4, 0, 4, 1, &e), &e); /* no columns: nothing to do */
	free(a);
	free(b);
	free(orig);
}

static uint32_t lcg = 99;

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
}

/* dim 16, hidden 12, 2 layers, 4 heads of 4, 2 kv heads, vocab 10 */
static void synth(struct mcb_model *m, int tied, enum mcb_dtype dt)
{
	char name[64];
	int l;

	strcpy(m->arch, "llama");
	m->cfg = (struct mcb_llama_config){16, 12, 2, 4, 2, 10, 32, 4, 1e-6, 10000.0, tied};
	add_rand(m, "token_embd.weight", dt, 10, 16);
	for (l = 0; l < 2; l++) {
#define L(s) (snprintf(name, sizeof(name), "blk.%d.%s.weight", l, s), name)
		add_rand(m, L("attn_norm"), dt, 16, 0);
		add_rand(m, L("attn_q"), dt, 16, 16);
		add_rand(m, L("attn_k"), dt, 8, 16);
		add_rand(m, L("attn_v"), dt, 8, 16);
		add_rand(m, L("attn_output"), dt, 16, 16);
		add_rand(m, L("ffn_norm"), dt, 16, 0);
		add_rand(m, L("ffn_gate"), dt, 12, 16);
		add_rand(m, L("ffn_up"), dt, 12, 16);
		add_rand(m, L("ffn_down"), dt, 16, 12);
#undef L
	}
	add_rand(m, "output_norm.weight", dt, 16, 0);
	if (!tied)
		add_rand(m, "output.weight", dt, 10, 16);
}

/* Export m as HF: renamed tensors, Q/K permuted back to rotate-half, config.json.
 * extra (may be NULL) is one more tensor to write. */
static int write_hf(const struct mcb_model *m, const char *st, const char *cfg,
		    const struct mcb_tensor *extra, struct mcb_errctx *e)
{
	struct mcb_tensor *ts = calloc(m->ntensors + 1, sizeof(*ts));
	const struct mcb_tensor **list = calloc(m->ntensors + 1, sizeof(*list));
	char (*names)[128] = calloc(m->ntensors, sizeof(*names));
	struct mcb_buf text = MCB_BUF_INIT;
	json_t *c;
	size_t i, n = 0;
	int rc = 0;

	for (i = 0; i < m->ntensors && !rc; i++) {
		const struct mcb_tensor *t = &m->tensors[i];
		int is_q = strstr(t->name, ".attn_q.") != NULL, is_k = strstr(t->name, ".attn_k.") != NULL;

		if (mcb_gguf_to_hf_name(t->name, names[i], sizeof(names[i]))) {
			rc = mcb_errf(e, MCB_EINVAL, "no HF name for %s", t->name);
			break;
		}
		ts[n] = *t;
		ts[n].name = names[i];
		if (is_q || is_k) {
			ts[n].data = malloc(t->nbytes);
			ts[n].owned = 1;
			memcpy(ts[n].data, t->data, t->nbytes);
			rc = mcb_hf_permute_rows(ts[n].data, is_q ? m->cfg.n_heads : m->cfg.n_kv_heads,
						 m->cfg.head_dim, t->shape[1],
						 mcb_dtype_info(t->dtype)->block_bytes, 0, e);
		} else {
			ts[n].owned = 0;
		}
		list[n] = &ts[n];
		n++;
	}
	if (extra)
		list[n++] = extra;
	if (!rc)
		rc = mcb_st_write(st, list, n, NULL, e);
	c = mcb_hf_config(m);
	mcb_json_pretty(c, &text);
	json_decref(c);
	mcbt_write(cfg, text.data, text.len);
	mcb_buf_release(&text);
	for (i = 0; i < n; i++)
		if (list[i] != extra && ts[i].owned)
			free(ts[i].data);
	free(ts);
	free(list);
	free(names);
	return rc;
}

static void check_same(const struct mcb_model *a, const struct mcb_model *b)
{
	size_t i;

	CHECK(memcmp(&a->cfg, &b->cfg, sizeof(a->cfg)) == 0);
	CHECK_EQ(a->ntensors, b->ntensors);
	for (i = 0; i < a->ntensors; i++) {
		const struct mcb_tensor *x = &a->tensors[i];
		const struct mcb_tensor *y = mcb_model_find(b, x->name);

		if (!y || x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
		    memcmp(x->shape, y->shape, sizeof(x->shape)) || memcmp(x->data, y->data, x->nbytes))
			mcbt_fail(__FILE__, __LINE__, "tensor %s differs", x->name);
	}
}

static void test_config(void)
{
	struct mcb_model m;
	json_t *c;

	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_BF16);
	c = mcb_hf_config(&m);
	CHECK_STR(json_string_value(json_array_get(json_object_get(c, "architectures"), 0)),
		  "LlamaForCausalLM");
	CHECK_STR(json_string_value(json_object_get(c, "model_type")), "llama");
	CHECK_EQ(json_integer_value(json_object_get(c, "hidden_size")), 16);
	CHECK_EQ(json_integer_value(json_object_get(c, "intermediate_size")), 12);
	CHECK_EQ(json_integer_value(json_object_get(c, "num_hidden_layers")), 2);
	CHECK_EQ(json_integer_value(json_object_get(c, "num_attention_heads")), 4);
	CHECK_EQ(json_integer_value(json_object_get(c, "num_key_value_heads")), 2);
	CHECK_EQ(json_integer_value(json_object_get(c, "vocab_size")), 10);
	CHECK_EQ(json_integer_value(json_object_get(c, "max_position_embeddings")), 32);
	CHECK(json_real_value(json_object_get(c, "rms_norm_eps")) == 1e-6);
	CHECK(json_real_value(json_object_get(c, "rope_theta")) == 10000.0);
	CHECK(json_is_true(json_object_get(c, "tie_word_embeddings")));
	CHECK_STR(json_string_value(json_object_get(c, "torch_dtype")), "bfloat16");
	json_decref(c);
	mcb_model_release(&m);
}

static void test_roundtrip(void)
{
	const char *dir = mcbt_tmpdir();
	char st[4096], cfg[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;
	struct mcb_st_file f;
	const struct mcb_tensor *t;
	int tied;
	size_t i;

	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	for (tied = 0; tied < 2; tied++) {
		enum mcb_dtype dt = tied ? MCB_DT_F32 : MCB_DT_F16;

		mcb_model_init(&m);
		synth(&m, tied, dt);
		CHECK_OK(mcb_model_check_llama(&m, "'m'", &e), &e);
		CHECK_OK(write_hf(&m, st, cfg, NULL, &e), &e);
		/* the file holds HF names and rotate-half rows */
		CHECK_OK(mcb_st_open(st, &f, &e), &e);
		for (i = 0; i < f.ntensors; i++)
			CHECK(strncmp(f.tensors[i].name, "blk.", 4) != 0);
		t = NULL;
		for (i = 0; i < f.ntensors; i++)
			if (!strcmp(f.tensors[i].name, "model.layers.1.self_attn.k_proj.weight"))
				t = &f.tensors[i];
		CHECK(t && memcmp(t->data, mcb_model_find(&m, "blk.1.attn_k.weight")->data, t->nbytes));
		mcb_st_close(&f);
		mcb_model_init(&r);
		CHECK_OK(mcb_hf_read(st, cfg, &r, &e), &e);
		check_same(&m, &r);
		CHECK_STR(json_string_value(json_object_get(json_object_get(r.meta, "source"), "format")),
			  "hf");
		CHECK(mcb_model_find(&r, "blk.0.attn_q.weight")->owned);
		CHECK(!mcb_model_find(&r, "blk.0.attn_v.weight")->owned);
		mcb_model_release(&r);
		mcb_model_release(&m);
	}
}

static void write_text(const char *path, const char *s)
{
	mcbt_write(path, s, strlen(s));
}

static void test_hostile_config(void)
{
	static const struct {
		const char *set; /* JSON object merged into a valid config, or a whole document */
		int code;
		const char *sub;
	} cases[] = {
		{"{\"architectures\":[\"MistralForCausalLM\"]}", MCB_EUNSUP, "not a LlamaForCausalLM config"},
		{"{\"model_type\":\"gpt2\"}", MCB_EUNSUP, "not a LlamaForCausalLM config"},
		{"{\"hidden_act\":\"gelu\"}", MCB_EUNSUP, "hidden_act must be \"silu\""},
		{"{\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0}}", MCB_EUNSUP,
		 "rope_scaling is not supported"},
		{"{\"rope_scaling\":null}", MCB_OK, ""},
		/* head_dim is read: then the tensors have the wrong shape */
		{"{\"head_dim\":8}", MCB_EFORMAT, "k_proj.weight' must have shape [16, 16]"},
		{"{\"hidden_size\":\"16\"}", MCB_EFORMAT, "\"hidden_size\" must be an integer"},
		{"{\"hidden_size\":null}", MCB_EFORMAT, "missing \"hidden_size\""},
		{"{\"num_attention_heads\":3}", MCB_EFORMAT, "n_kv_heads 2 does not divide n_heads 3"},
		{"{\"num_attention_heads\":3, \"num_key_value_heads\":3, \"head_dim\":null}",
		 MCB_EFORMAT, "n_heads 3 does not divide dim 16"},
		{"{\"num_key_value_heads\":8}", MCB_EFORMAT, "n_kv_heads 8 is out of range 1..4"},
		{"{\"num_hidden_layers\":100000}", MCB_EFORMAT, "n_layers 100000 is out of range"},
		{"{\"vocab_size\":-1}", MCB_EFORMAT, "vocab_size -1"},
		{"{\"rms_norm_eps\":\"tiny\"}", MCB_EFORMAT, "\"rms_norm_eps\" must be a number"},
		{"{\"rms_norm_eps\":0}", MCB_EFORMAT, "norm_eps"},
		{"{\"tie_word_embeddings\":1}", MCB_EFORMAT, "must be a boolean"},
		{"{\"tie_word_embeddings\":false}", MCB_EFORMAT, "missing tensor 'output.weight'"},
		{"{\"num_hidden_layers\":1}", MCB_EFORMAT, "is beyond num_hidden_layers 1"},
		{"{\"num_hidden_layers\":3}", MCB_EFORMAT, "missing tensor 'blk.2.attn_norm.weight'"},
		{"{\"num_key_value_heads\":4}", MCB_EFORMAT,
		 "tensor 'model.layers.0.self_attn.k_proj.weight' must have shape [16, 16]"},
		{"{\"max_position_embeddings\":0}", MCB_EFORMAT, "seq_len 0"},
	};
	const char *dir = mcbt_tmpdir();
	char st[4096], cfg[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;
	json_t *good;
	size_t i;

	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
	CHECK_OK(write_hf(&m, st, cfg, NULL, &e), &e);
	good = mcb_hf_config(&m);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *c = json_deep_copy(good), *set = json_loads(cases[i].set, 0, NULL);
		struct mcb_buf text = MCB_BUF_INIT;

		json_object_update(c, set);
		mcb_json_pretty(c, &text);
		mcbt_write(cfg, text.data, text.len);
		mcb_model_init(&r);
		mcb_errclear(&e);
		if (cases[i].code == MCB_OK) {
			CHECK_OK(mcb_hf_read(st, cfg, &r, &e), &e);
		} else {
			CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, cases[i].code, cases[i].sub);
			CHECK(strstr(e.msg, dir) != NULL);
			CHECK_EQ(r.ntensors, 0);
		}
		mcb_model_release(&r);
		mcb_buf_release(&text);
		json_decref(c);
		json_decref(set);
	}
	/* not JSON, not an object, duplicate keys, too big, missing */
	write_text(cfg, "{\"hidden_size\": 16,");
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "config.json':1:");
	write_text(cfg, "[1]");
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "not a JSON object");
	write_text(cfg, "{\"a\":1,\"a\":2}");
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "duplicate");
	{
		char *big = malloc((1 << 20) + 10);

		memset(big, ' ', (1 << 20) + 10);
		big[0] = '{';
		big[(1 << 20) + 9] = '}';
		mcbt_write(cfg, big, (1 << 20) + 10);
		free(big);
		CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_ERANGE, "is larger than 1048576 bytes");
	}
	snprintf(cfg, sizeof(cfg), "%s/missing.json", dir);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_ENOENT, "missing.json");
	mcb_model_release(&r);
	json_decref(good);
	mcb_model_release(&m);
}

static void test_hostile_tensors(void)
{
	const char *dir = mcbt_tmpdir();
	char st[4096], cfg[4096];
	struct mcb_errctx e;
	struct mcb_model m, r;
	static float buf[16 * 16];
	struct mcb_tensor extra = {"model.layers.0.self_attn.rotary_emb.inv_freq", MCB_DT_F32, 1, {2},
				   buf, 8, 0};

	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
	/* tolerated: old rotary tables, and lm_head when tied (transformers ties it too) */
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_OK(mcb_hf_read(st, cfg, &r, &e), &e);
	check_same(&m, &r);
	mcb_model_release(&r);
	extra = (struct mcb_tensor){"lm_head.weight", MCB_DT_F32, 2, {10, 16}, buf, 640, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_OK(mcb_hf_read(st, cfg, &r, &e), &e);
	CHECK(mcb_model_find(&r, "output.weight") == NULL);
	mcb_model_release(&r);
	/* rejected: unknown names, dtypes, shapes */
	extra = (struct mcb_tensor){"model.layers.0.mlp.up_proj.bias", MCB_DT_F32, 1, {12}, buf, 48, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EUNSUP,
		  "tensor 'model.layers.0.mlp.up_proj.bias' is not part of a LlamaForCausalLM");
	mcb_model_release(&r);
	extra = (struct mcb_tensor){"model.layers.2.mlp.up_proj.weight", MCB_DT_F32, 2, {12, 16}, buf,
				    768, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "is beyond num_hidden_layers 2");
	mcb_model_release(&r);
	mcb_model_remove(&m, "blk.1.attn_v.weight");
	extra = (struct mcb_tensor){"model.layers.1.self_attn.v_proj.weight", MCB_DT_I8, 2, {8, 16},
				    buf, 128, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EUNSUP, "has dtype I8; only F32, F16 and BF16");
	mcb_model_release(&r);
	extra = (struct mcb_tensor){"model.layers.1.self_attn.v_proj.weight", MCB_DT_F32, 2, {16, 8},
				    buf, 512, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT,
		  "tensor 'blk.1.attn_v.weight' has shape [16, 8], expected [8, 16]");
	mcb_model_release(&r);
	mcb_model_remove(&m, "blk.1.attn_q.weight");
	extra = (struct mcb_tensor){"model.layers.1.self_attn.q_proj.weight", MCB_DT_F32, 2, {8, 16},
				    buf, 512, 0};
	CHECK_OK(write_hf(&m, st, cfg, &extra, &e), &e);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "must have shape [16, 16]");
	mcb_model_release(&r);
	/* a broken safetensors file names itself */
	mcbt_write(st, "\x01\0\0\0\0\0\0\0{", 9);
	mcb_model_init(&r);
	CHECK_ERR(mcb_hf_read(st, cfg, &r, &e), &e, MCB_EFORMAT, "model.safetensors");
	mcb_model_release(&r);
	mcb_model_release(&m);
}

static void test_real_model(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	const char *dir;
	char src[4096], st[4096], cfg[4096], ir[4096];
	struct mcb_errctx e;
	struct mcb_model m, r, r2;

	if (!p)
		return;
	snprintf(src, sizeof(src), "%s", p);
	dir = mcbt_tmpdir();
	snprintf(st, sizeof(st), "%s/model.safetensors", dir);
	snprintf(cfg, sizeof(cfg), "%s/config.json", dir);
	snprintf(ir, sizeof(ir), "%s/ir.safetensors", dir);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(src, &m, &e), &e);
	CHECK_OK(write_hf(&m, st, cfg, NULL, &e), &e);
	mcb_model_init(&r);
	CHECK_OK(mcb_hf_read(st, cfg, &r, &e), &e);
	/* equal to the original, Q/K included (permuted to HF and back) */
	check_same(&m, &r);
	/* and through the IR too */
	CHECK_OK(mcb_model_save_ir(&r, ir, &e), &e);
	mcb_model_init(&r2);
	CHECK_OK(mcb_model_load_ir(ir, &r2, &e), &e);
	check_same(&m, &r2);
	mcb_model_release(&r2);
	mcb_model_release(&r);
	mcb_model_release(&m);
}

int main(void)
{
	RUN(test_names);
	RUN(test_permute);
	RUN(test_config);
	RUN(test_roundtrip);
	RUN(test_hostile_config);
	RUN(test_hostile_tensors);
	RUN(test_real_model);
	return mcbt_done();
}
