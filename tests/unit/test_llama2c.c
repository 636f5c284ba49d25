/* Unit tests for the llama2.c checkpoint reader (runtime/llama2c.c). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"

#define HDR 28

/* Floats a checkpoint with header h needs after the header. */
static size_t nfloats(const int32_t *h)
{
	size_t dim = (size_t)h[0], hid = (size_t)h[1], L = (size_t)h[2];
	size_t hs = dim / (size_t)h[3], kv = hs * (size_t)h[4];
	size_t vocab = (size_t)(h[5] < 0 ? -h[5] : h[5]);
	size_t n = vocab * dim + L * dim * 2 + L * dim * dim * 2 + L * kv * dim * 2 +
		   L * hid * dim * 3 + dim + (size_t)h[6] * hs;

	return h[5] < 0 ? n + vocab * dim : n;
}

/* A checkpoint with header h, float k = k * 0.25 - 100 (exact in f32), plus
 * extra bytes (negative: fewer).  Returns the byte size. */
static size_t write_ckpt(const char *path, const int32_t *h, long extra)
{
	size_t n = nfloats(h), size = HDR + 4 * n, i;
	unsigned char *buf = calloc(size + (extra > 0 ? (size_t)extra : 0), 1);
	float f;

	memcpy(buf, h, HDR);
	for (i = 0; i < n; i++) {
		f = (float)i * 0.25f - 100.0f;
		memcpy(buf + HDR + 4 * i, &f, 4);
	}
	size = (size_t)((long)size + extra);
	mcbt_write(path, buf, size);
	free(buf);
	return size;
}

static float expect_at(size_t k)
{
	return (float)k * 0.25f - 100.0f;
}

static const int32_t small[7] = {8, 12, 2, 2, 1, 10, 4}; /* kv_dim 4, head size 4 */

static void test_synthetic_shared(void)
{
	struct mcb_errctx e;
	struct mcb_model m;
	const struct mcb_tensor *t;
	char path[4096];
	size_t off;
	float v;

	snprintf(path, sizeof(path), "%s/small.bin", mcbt_tmpdir());
	write_ckpt(path, small, 0);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(path, &m, &e), &e);
	CHECK_STR(m.arch, "llama");
	CHECK_EQ(m.cfg.dim, 8);
	CHECK_EQ(m.cfg.hidden_dim, 12);
	CHECK_EQ(m.cfg.n_layers, 2);
	CHECK_EQ(m.cfg.n_heads, 2);
	CHECK_EQ(m.cfg.n_kv_heads, 1);
	CHECK_EQ(m.cfg.vocab_size, 10);
	CHECK_EQ(m.cfg.seq_len, 4);
	CHECK_EQ(m.cfg.head_dim, 4);
	CHECK(m.cfg.norm_eps == 1e-5 && m.cfg.rope_theta == 10000.0);
	CHECK_EQ(m.cfg.tied_embeddings, 1);
	CHECK_EQ(m.ntensors, 1 + 9 * 2 + 1);
	CHECK(mcb_model_find(&m, "output.weight") == NULL);
	CHECK_STR(json_string_value(json_object_get(json_object_get(m.meta, "source"), "format")),
		  "llama2c");
	t = mcb_model_find(&m, "token_embd.weight");
	CHECK(t && t->ndim == 2 && t->shape[0] == 10 && t->shape[1] == 8 && !t->owned);
	CHECK(t && t->dtype == MCB_DT_F32 && t->nbytes == 320);
	CHECK(t && (const unsigned char *)t->data == m.map.data + HDR);
	/* blk.1.attn_k: after embed (80), rms_att (16), wq (128), wk layer 0 (32) */
	t = mcb_model_find(&m, "blk.1.attn_k.weight");
	off = 80 + 16 + 128 + 32;
	CHECK(t && t->shape[0] == 4 && t->shape[1] == 8);
	if (t) {
		memcpy(&v, t->data, 4);
		CHECK(v == expect_at(off));
	}
	/* w2 is ffn_down [dim, hidden]; layer 0 starts after embed, 2 rms, wq, wk, wv, wo,
	 * rms_ffn and w1 */
	t = mcb_model_find(&m, "blk.0.ffn_down.weight");
	off = 80 + 16 + 128 + 64 + 64 + 128 + 16 + 192;
	CHECK(t && t->shape[0] == 8 && t->shape[1] == 12);
	if (t) {
		memcpy(&v, t->data, 4);
		CHECK(v == expect_at(off));
	}
	t = mcb_model_find(&m, "output_norm.weight");
	off = 80 + 16 + 128 + 64 + 64 + 128 + 16 + 192 * 3;
	if (t) {
		memcpy(&v, t->data, 4);
		CHECK(v == expect_at(off));
	}
	mcb_model_release(&m);
}

static void test_synthetic_unshared(void)
{
	int32_t h[7];
	struct mcb_errctx e;
	struct mcb_model m;
	const struct mcb_tensor *t;
	char path[4096];
	size_t off;
	float v;

	memcpy(h, small, sizeof(h));
	h[5] = -10;
	snprintf(path, sizeof(path), "%s/unshared.bin", mcbt_tmpdir());
	write_ckpt(path, h, 0);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(path, &m, &e), &e);
	CHECK_EQ(m.cfg.vocab_size, 10);
	CHECK_EQ(m.cfg.tied_embeddings, 0);
	t = mcb_model_find(&m, "output.weight");
	/* wcls follows rms_final and the two RoPE tables (seq_len * hs / 2 each) */
	off = 80 + 16 + 128 + 64 + 64 + 128 + 16 + 192 * 3 + 8 + 4 * 4;
	CHECK(t && t->shape[0] == 10 && t->shape[1] == 8);
	if (t) {
		memcpy(&v, t->data, 4);
		CHECK(v == expect_at(off));
	}
	mcb_model_release(&m);
}

/* Every mutation must fail with MCB_EFORMAT, the path and the expected text. */
static void expect_reject(const char *path, const char *sub)
{
	struct mcb_errctx e;
	struct mcb_model m;

	mcb_model_init(&m);
	mcb_errclear(&e);
	CHECK_ERR(mcb_llama2c_read(path, &m, &e), &e, MCB_EFORMAT, sub);
	CHECK(strstr(e.msg, path) != NULL);
	CHECK_EQ(m.ntensors, 0); /* left empty */
	mcb_model_release(&m);
}

static void test_hostile_header(void)
{
	static const struct {
		int field;
		int32_t value;
		const char *sub;
	} cases[] = {
		{0, 0, "dim = 0 is out of range"},
		{0, -8, "dim = -8 is out of range"},
		{0, 65537 * 2, "dim = 131074 is out of range"},
		{1, 0, "hidden_dim = 0"},
		{1, (1 << 20) + 1, "hidden_dim = 1048577"},
		{2, 0, "n_layers = 0"},
		{2, 1025, "n_layers = 1025"},
		{2, INT32_MAX, "n_layers = 2147483647"},
		{3, 0, "n_heads = 0"},
		{3, 3, "must divide dim"},
		{3, 16, "n_heads = 16 is out of range 1..8"},
		{3, 8, "even head size"}, /* head size 1 */
		{4, 0, "n_kv_heads = 0"},
		{4, 3, "n_kv_heads = 3 is out of range 1..2"},
		{5, 0, "vocab_size = 0"},
		{5, INT32_MIN, "vocab_size = 2147483648"},
		{5, (1 << 22) + 1, "vocab_size = 4194305"},
		{6, 0, "seq_len = 0"},
		{6, -1, "seq_len = -1"},
		{6, 5, "file is"}, /* valid header, but the file size no longer matches */
		{5, 11, "but its header implies"},
		{5, -10, "separate classifier"},
	};
	const char *dir = mcbt_tmpdir();
	char path[4096];
	int32_t h[7];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char buf[HDR];
		size_t size;

		snprintf(path, sizeof(path), "%s/case%zu.bin", dir, i);
		size = write_ckpt(path, small, 0);
		memcpy(h, small, sizeof(h));
		h[cases[i].field] = cases[i].value;
		memcpy(buf, h, HDR);
		{
			FILE *f = fopen(path, "r+b");

			CHECK(f && fwrite(buf, 1, HDR, f) == HDR);
			if (f)
				fclose(f);
		}
		(void)size;
		expect_reject(path, cases[i].sub);
	}
}

static void test_truncated_and_padded(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	unsigned char *buf;
	size_t size, cut;
	FILE *f;

	snprintf(path, sizeof(path), "%s/full.bin", dir);
	size = write_ckpt(path, small, 0);
	buf = malloc(size);
	f = fopen(path, "rb");
	CHECK(f && fread(buf, 1, size, f) == size);
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/cut.bin", dir);
	for (cut = 0; cut < size; cut++) {
		mcbt_write(path, buf, cut);
		expect_reject(path, cut < HDR ? "too short for a llama2.c header" : "but its header implies");
	}
	snprintf(path, sizeof(path), "%s/padded.bin", dir);
	write_ckpt(path, small, 1);
	expect_reject(path, "but its header implies");
	write_ckpt(path, small, 4);
	expect_reject(path, "but its header implies");
	free(buf);
}

static void test_missing_file(void)
{
	struct mcb_errctx e;
	struct mcb_model m;

	mcb_model_init(&m);
	CHECK_ERR(mcb_llama2c_read("/nonexistent/x.bin", &m, &e), &e, MCB_ENOENT, "/nonexistent/x.bin");
	mcb_model_release(&m);
}

static void test_corpus(void)
{
	const char *dir = mcbt_data("corpus/llama2c");
	char root[4096], path[8192];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(root, sizeof(root), "%s", dir);
	dp = opendir(root);
	CHECK(dp != NULL);
	if (!dp)
		return;
	while ((d = readdir(dp))) {
		struct mcb_errctx e;
		struct mcb_model m;
		int rc;

		if (d->d_name[0] == '.' || !strcmp(d->d_name, "README"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, d->d_name);
		mcb_model_init(&m);
		mcb_errclear(&e);
		rc = mcb_llama2c_read(path, &m, &e);
		if (rc >= 0 || !strstr(e.msg, path))
			mcbt_fail(__FILE__, __LINE__, "corpus file %s: rc %d, message \"%s\"", path, rc,
				  e.msg);
		mcb_model_release(&m);
		n++;
	}
	closedir(dp);
	CHECK(n >= 3);
}

static void test_real_model(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	struct mcb_errctx e;
	struct mcb_model m;
	const struct mcb_tensor *t;
	unsigned char *raw;
	size_t size, i, total = 0;
	FILE *f;
	char path[4096];

	if (!p)
		return;
	snprintf(path, sizeof(path), "%s", p);
	f = fopen(path, "rb");
	CHECK(f != NULL);
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	size = (size_t)ftell(f);
	rewind(f);
	raw = malloc(size);
	CHECK(fread(raw, 1, size, f) == size);
	fclose(f);
	CHECK_EQ(size, 1056540);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(path, &m, &e), &e);
	CHECK_EQ(m.cfg.dim, 64);
	CHECK_EQ(m.cfg.hidden_dim, 172);
	CHECK_EQ(m.cfg.n_layers, 5);
	CHECK_EQ(m.cfg.n_heads, 8);
	CHECK_EQ(m.cfg.n_kv_heads, 4);
	CHECK_EQ(m.cfg.vocab_size, 512);
	CHECK_EQ(m.cfg.seq_len, 512);
	CHECK_EQ(m.cfg.head_dim, 8);
	CHECK_EQ(m.cfg.tied_embeddings, 1);
	CHECK_EQ(m.ntensors, 2 + 9 * 5);
	/* the file's first float is token_embd[0][0]; every tensor is a slice of the file */
	t = mcb_model_find(&m, "token_embd.weight");
	CHECK(t && memcmp(t->data, raw + 28, 4) == 0);
	for (i = 0; i < m.ntensors; i++) {
		t = &m.tensors[i];
		total += t->nbytes / 4;
		CHECK((const unsigned char *)t->data >= m.map.data + 28 &&
		      (const unsigned char *)t->data + t->nbytes <= m.map.data + size);
	}
	/* 264,128 floats minus the two RoPE tables of 512 * 4 */
	CHECK_EQ(total, 264128 - 2 * 512 * 4);
	/* rms_final sits right before the RoPE tables at the end of the file */
	t = mcb_model_find(&m, "output_norm.weight");
	CHECK(t && memcmp(t->data, raw + size - 2 * 512 * 4 * 4 - 64 * 4, 64 * 4) == 0);
	/* blk.4.ffn_up is w3's last slice, right before rms_final */
	t = mcb_model_find(&m, "blk.4.ffn_up.weight");
	CHECK(t && t->shape[0] == 172 && t->shape[1] == 64);
	CHECK(t && memcmp(t->data, raw + size - 2 * 512 * 4 * 4 - 64 * 4 - 172 * 64 * 4,
			  172 * 64 * 4) == 0);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_LLAMA2C);
	mcb_model_release(&m);
	free(raw);
}

int main(void)
{
	RUN(test_synthetic_shared);
	RUN(test_synthetic_unshared);
	RUN(test_hostile_header);
	RUN(test_truncated_and_padded);
	RUN(test_missing_file);
	RUN(test_corpus);
	RUN(test_real_model);
	return mcbt_done();
}
