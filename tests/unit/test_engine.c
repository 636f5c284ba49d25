/*
 * Engine tests: the optimized kernels against their _ref oracle, and the
 * engine's logits against a scalar reference forward pass written here
 * (llama2.c run.c style loops, everything in double) on a synthetic model in
 * every weight form and on stories260K; thread-count and batching
 * determinism, capture, errors, the Q8_0 GGUF loader, the sampler.
 *
 * Tolerances: logits within 1e-4 of the reference (float vs double
 * arithmetic; measured values are printed).  GGML mode is compared with a
 * reference that rounds the activations the way ggml does (Q8_0 blocks with
 * ggml's x86 quantizer, fp16, bf16), written independently below.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/kernels.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

#define LOGIT_TOL 1e-4

/* ---- random numbers ---- */

static uint64_t rs = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return rs;
}

/* uniform in [-1, 1) */
static float urand(void)
{
	return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0);
}

/* ---- kernels against _ref ---- */

/* |got - want| within (n/32 + 8) ulps of the sum of |terms| */
static int close_sum(float got, float want, double mag, int64_t n)
{
	return fabs((double)got - (double)want) <= ((double)n / 32.0 + 8.0) * FLT_EPSILON * mag + 1e-30;
}

static void test_kernels_match_ref(void)
{
	const struct mcb_kernels *r = mcb_kernels_ref(), *k = mcb_kernels_avx2();
	static const int64_t lens[] = {0, 1, 7, 8, 9, 16, 31, 32, 33, 64, 100, 172, 256, 2051, 5632};
	size_t li;

	if (!k) {
		mcbt_skip("the CPU has no AVX2/FMA/F16C: only the _ref table exists");
		return;
	}
	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		int64_t n = lens[li], n32 = n / 32 * 32, i;
		float *a = malloc((size_t)(n + 1) * 4), *b = malloc((size_t)(n + 1) * 4);
		float *y1 = malloc((size_t)(n + 1) * 4), *y2 = malloc((size_t)(n + 1) * 4);
		uint16_t *h = malloc((size_t)(n + 1) * 2), *h2 = malloc((size_t)(n + 1) * 2);
		uint16_t *bh = malloc((size_t)(n + 1) * 2), *bh2 = malloc((size_t)(n + 1) * 2);
		int8_t *q = malloc((size_t)n + 1), *q2 = malloc((size_t)n + 1);
		uint16_t *d = malloc((size_t)(n / 32 + 1) * 2), *d2 = malloc((size_t)(n / 32 + 1) * 2);
		int8_t *xq = malloc((size_t)n + 1);
		uint16_t *xd = malloc((size_t)(n / 32 + 1) * 2);
		double mag;

		for (i = 0; i < n; i++) {
			a[i] = urand() * 3.0f;
			b[i] = urand();
			h[i] = mcb_f32_to_f16(urand() * 2.0f);
			h2[i] = mcb_f32_to_f16(urand());
			bh[i] = mcb_f32_to_bf16(urand() * 2.0f);
			bh2[i] = mcb_f32_to_bf16(urand());
			q[i] = (int8_t)(rnd() % 255 - 127);
			xq[i] = (int8_t)(rnd() % 255 - 127);
		}
		if (n >= 32)
			for (i = 0; i < 32; i++) /* a saturating block: every product 127 * 127 */
				q[i] = xq[i] = (int8_t)(i % 2 ? 127 : -127);
		for (i = 0; i < n / 32; i++) {
			d[i] = mcb_f32_to_f16(0.01f + 0.001f * (float)i);
			xd[i] = mcb_f32_to_f16(0.02f - 0.0001f * (float)i);
		}
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)a[i] * b[i]);
		CHECK(close_sum(k->dot_f32(n, a, b), r->dot_f32(n, a, b), mag, n));
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)mcb_f16_to_f32(h[i]) * b[i]);
		CHECK(close_sum(k->dot_f16_f32(n, h, b), r->dot_f16_f32(n, h, b), mag, n));
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)mcb_f16_to_f32(h[i]) * mcb_f16_to_f32(h2[i]));
		CHECK(close_sum(k->dot_f16_f16(n, h, h2), r->dot_f16_f16(n, h, h2), mag, n));
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)mcb_bf16_to_f32(bh[i]) * b[i]);
		CHECK(close_sum(k->dot_bf16_f32(n, bh, b), r->dot_bf16_f32(n, bh, b), mag, n));
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)mcb_bf16_to_f32(bh[i]) * mcb_bf16_to_f32(bh2[i]));
		CHECK(close_sum(k->dot_bf16_bf16(n, bh, bh2), r->dot_bf16_bf16(n, bh, bh2), mag, n));
		for (mag = 0, i = 0; i < n; i++)
			mag += fabs((double)(0.0123f * (float)q[i]) * b[i]);
		CHECK(close_sum(k->dot_i8_f32(n, q, 0.0123f, b), r->dot_i8_f32(n, q, 0.0123f, b), mag,
				n));
		for (mag = 0, i = 0; i < n32; i++)
			mag += fabs((double)mcb_f16_to_f32(d[i / 32]) * q[i] * b[i]);
		CHECK(close_sum(k->dot_q8_0_f32(n32, q, d, b), r->dot_q8_0_f32(n32, q, d, b), mag, n32));
		for (mag = 0, i = 0; i < n32; i++)
			mag += fabs((double)mcb_f16_to_f32(d[i / 32]) * mcb_f16_to_f32(xd[i / 32]) * q[i] *
				    xq[i]);
		CHECK(close_sum(k->dot_q8_0_q8_0(n32, q, d, xq, xd),
				r->dot_q8_0_q8_0(n32, q, d, xq, xd), mag, n32));
		if (n >= 32) { /* the saturating block alone: exact, 32 * 127 * 127 * d */
			double want = 32.0 * 127 * 127 * mcb_f16_to_f32(d[0]) * mcb_f16_to_f32(xd[0]);
			int8_t w128[32], x127[32];

			CHECK(fabs(k->dot_q8_0_q8_0(32, q, d, xq, xd) - want) <= 1e-6 * want);
			CHECK(fabs(r->dot_q8_0_q8_0(32, q, d, xq, xd) - want) <= 1e-6 * want);
			/* weight code -128 (a GGUF file may hold it) against -127 */
			memset(w128, 0x80, 32);
			memset(x127, -127, 32);
			want = 32.0 * 128 * 127 * mcb_f16_to_f32(d[0]) * mcb_f16_to_f32(xd[0]);
			CHECK(fabs(k->dot_q8_0_q8_0(32, w128, d, x127, xd) - want) <= 1e-6 * want);
			CHECK(fabs(r->dot_q8_0_q8_0(32, w128, d, x127, xd) - want) <= 1e-6 * want);
		}
		/* axpy: each element one rounding (FMA) vs double then float: equal
		 * or one ulp apart */
		for (i = 0; i < n; i++)
			y1[i] = y2[i] = b[i];
		k->axpy_f32(n, 0.37f, a, y1);
		r->axpy_f32(n, 0.37f, a, y2);
		for (i = 0; i < n; i++)
			if (y1[i] != y2[i] && fabsf(y1[i] - y2[i]) > 2 * FLT_EPSILON * fabsf(y2[i])) {
				mcbt_fail(__FILE__, __LINE__, "axpy n=%lld element %lld: %g vs %g",
					  (long long)n, (long long)i, y1[i], y2[i]);
				break;
			}
		/* conversions and dequantizers: bit for bit */
		k->f32_to_f16(n, a, h);
		r->f32_to_f16(n, a, h2);
		CHECK(memcmp(h, h2, (size_t)n * 2) == 0);
		k->f32_to_bf16(n, a, h);
		r->f32_to_bf16(n, a, h2);
		CHECK(memcmp(h, h2, (size_t)n * 2) == 0);
		k->deq_f16(n, h2, y1);
		r->deq_f16(n, h2, y2);
		CHECK(memcmp(y1, y2, (size_t)n * 4) == 0);
		k->deq_bf16(n, bh, y1);
		r->deq_bf16(n, bh, y2);
		CHECK(memcmp(y1, y2, (size_t)n * 4) == 0);
		k->deq_i8(n, q, 0.0123f, y1);
		r->deq_i8(n, q, 0.0123f, y2);
		CHECK(memcmp(y1, y2, (size_t)n * 4) == 0);
		k->deq_q8_0(n32, q, d, y1);
		r->deq_q8_0(n32, q, d, y2);
		CHECK(memcmp(y1, y2, (size_t)n32 * 4) == 0);
		if (n32 >= 64) { /* a zero block and a block with a NaN and tiny values */
			memset(a, 0, 32 * sizeof(float));
			a[40] = NAN;
			a[41] = 1e-42f;
		}
		k->quantize_act(n32, a, q, d);
		r->quantize_act(n32, a, q2, d2);
		CHECK(memcmp(q, q2, (size_t)n32) == 0);
		CHECK(memcmp(d, d2, (size_t)(n32 / 32) * 2) == 0);
		free(a), free(b), free(y1), free(y2), free(h), free(h2), free(bh), free(bh2);
		free(q), free(q2), free(d), free(d2), free(xq), free(xd);
	}
}

/* gemm_q8_0_q8_0 = dot_q8_0_q8_0 per element, bit for bit, in both tables */
static void test_gemm_q8_equals_dots(void)
{
	const struct mcb_kernels *tabs[2] = {mcb_kernels_ref(), mcb_kernels_avx2()};
	enum { N = 96, R = 7, T = 9 };
	int8_t wq[R * N], xq[T * N];
	uint16_t wd[R * N / 32], xd[T * N / 32];
	float y[T * 11], want;
	int64_t i, r, t, nr, nt;
	int k;

	for (i = 0; i < R * N; i++)
		wq[i] = (int8_t)(rnd() % 255 - 127);
	for (i = 0; i < T * N; i++)
		xq[i] = (int8_t)(rnd() % 255 - 127);
	for (i = 0; i < R * N / 32; i++)
		wd[i] = mcb_f32_to_f16(0.001f + 0.01f * (urand() + 1.0f));
	for (i = 0; i < T * N / 32; i++)
		xd[i] = mcb_f32_to_f16(0.001f + 0.01f * (urand() + 1.0f));
	for (k = 0; k < 2; k++) {
		if (!tabs[k])
			continue;
		for (nr = 1; nr <= R; nr++)
			for (nt = 1; nt <= T; nt++) {
				memset(y, 0xff, sizeof(y));
				tabs[k]->gemm_q8_0_q8_0(N, wq, wd, nr, xq, xd, nt, y, 11);
				for (r = 0; r < nr; r++)
					for (t = 0; t < nt; t++) {
						want = tabs[k]->dot_q8_0_q8_0(N, wq + r * N, wd + r * 3,
									       xq + t * N, xd + t * 3);
						if (memcmp(&want, &y[t * 11 + r], sizeof(float)))
							mcbt_fail(__FILE__, __LINE__,
								  "%s gemm %lldx%lld: (%lld,%lld) %g != %g",
								  tabs[k]->name, (long long)nr,
								  (long long)nt, (long long)r, (long long)t,
								  y[t * 11 + r], want);
					}
			}
	}
}

/* ggml's x86 activation quantizer differs from its _ref (mcb_quantize_row_q8_0)
 * only by one code in rare ties; the scales are the same. */
static void test_quantize_act_vs_ggml_ref(void)
{
	const struct mcb_kernels *k = mcb_kernels();
	enum { N = 32 * 4096 };
	float *x = malloc(N * sizeof(float));
	int8_t *q = malloc(N);
	uint16_t *d = malloc(N / 32 * 2);
	struct mcb_block_q8_0 *b = malloc(N / 32 * sizeof(*b));
	int64_t i, ndiff = 0;

	for (i = 0; i < N; i++)
		x[i] = urand() * (float)(1 + i % 97);
	/* exact halves: amax = 127 makes id = 1 in both, so x * id = k + 1/2,
	 * where round-half-even and roundf part */
	x[0] = 127.0f;
	for (i = 1; i < 32; i++)
		x[i] = (float)i + 0.5f;
	k->quantize_act(N, x, q, d);
	mcb_quantize_row_q8_0_ref(x, b, N);
	for (i = 0; i < N; i++) {
		int diff = abs(q[i] - b[i / 32].qs[i % 32]);

		CHECK(diff <= 1);
		ndiff += diff != 0;
		if (i % 32 == 0)
			CHECK_EQ(d[i / 32], b[i / 32].d);
	}
	printf("  quantize_act vs ggml's _ref: %lld of %d codes differ by one\n", (long long)ndiff,
	       N);
	CHECK(ndiff > 0);         /* the exact halves */
	CHECK(ndiff < N / 1000);  /* and otherwise rare */
	free(x), free(q), free(d), free(b);
}

/* ---- models ---- */

static const char *const lin_names[7] = {"attn_q", "attn_k", "attn_v", "attn_output",
					 "ffn_gate", "ffn_up", "ffn_down"};

static float *add_f32(struct mcb_model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	struct mcb_tensor *t;
	struct mcb_errctx e;

	CHECK_OK(mcb_model_new_tensor(m, name, MCB_DT_F32, ndim, shape, &t, &e), &e);
	return t->data;
}

/* A synthetic F32 Llama model with random weights. */
static void synth_model(struct mcb_model *m, const struct mcb_llama_config *c, uint64_t seed)
{
	int64_t kv = c->n_kv_heads * c->head_dim, l, i, n;
	char name[64];
	float *w;
	int j;

	rs = seed;
	mcb_model_init(m);
	strcpy(m->arch, "llama");
	m->cfg = *c;
	w = add_f32(m, "token_embd.weight", 2, c->vocab_size, c->dim);
	for (i = 0; i < c->vocab_size * c->dim; i++)
		w[i] = urand();
	for (l = 0; l < c->n_layers; l++) {
		const int64_t shapes[7][2] = {{c->dim, c->dim},	    {kv, c->dim},
					      {kv, c->dim},	    {c->dim, c->dim},
					      {c->hidden_dim, c->dim}, {c->hidden_dim, c->dim},
					      {c->dim, c->hidden_dim}};

		snprintf(name, sizeof(name), "blk.%lld.attn_norm.weight", (long long)l);
		w = add_f32(m, name, 1, c->dim, 0);
		for (i = 0; i < c->dim; i++)
			w[i] = 1.0f + 0.2f * urand();
		snprintf(name, sizeof(name), "blk.%lld.ffn_norm.weight", (long long)l);
		w = add_f32(m, name, 1, c->dim, 0);
		for (i = 0; i < c->dim; i++)
			w[i] = 1.0f + 0.2f * urand();
		for (j = 0; j < 7; j++) {
			float a = 1.5f / sqrtf((float)shapes[j][1]);

			snprintf(name, sizeof(name), "blk.%lld.%s.weight", (long long)l, lin_names[j]);
			w = add_f32(m, name, 2, shapes[j][0], shapes[j][1]);
			n = shapes[j][0] * shapes[j][1];
			for (i = 0; i < n; i++)
				w[i] = a * urand();
		}
	}
	w = add_f32(m, "output_norm.weight", 1, c->dim, 0);
	for (i = 0; i < c->dim; i++)
		w[i] = 1.0f + 0.2f * urand();
	if (!c->tied_embeddings) {
		w = add_f32(m, "output.weight", 2, c->vocab_size, c->dim);
		for (i = 0; i < c->vocab_size * c->dim; i++)
			w[i] = urand() / sqrtf((float)c->dim) * 2.0f;
	}
}

static const struct mcb_llama_config synth_cfg = {
	.dim = 64, .hidden_dim = 80, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
	.vocab_size = 96, .seq_len = 256, .head_dim = 16, .norm_eps = 1e-5, .rope_theta = 10000.0,
	.tied_embeddings = 0,
};

enum qkind { Q_F16, Q_BF16, Q_CHANNEL, Q_GROUP, Q_MIXED };

static int is_lin(const char *name)
{
	int j;

	if (!strcmp(name, "output.weight"))
		return 1;
	for (j = 0; j < 7; j++)
		if (strstr(name, lin_names[j]))
			return 1;
	return 0;
}

/* dst = src with its linear weights (and, except per channel, token_embd)
 * converted as step_quantize does: Q8_0 groups where rows divide by 32 (else
 * an F16 fallback), int8 per channel, or plain F16/BF16; Q_MIXED: each
 * weight in the next of those forms (one matmul group then mixes forms). */
static void convert_model(const struct mcb_model *src, struct mcb_model *dst, enum qkind qk)
{
	struct mcb_errctx e;
	json_t *quant = json_object();
	size_t i;

	enum qkind qk0 = qk;
	int nth = 0;

	mcb_model_init(dst);
	strcpy(dst->arch, src->arch);
	dst->cfg = src->cfg;
	json_object_set_new(dst->meta, "quant", quant);
	for (i = 0; i < src->ntensors; i++) {
		const struct mcb_tensor *t = &src->tensors[i];

		if (qk0 == Q_MIXED) /* each 2-D tensor the next form in turn */
			qk = t->ndim == 2 ? (enum qkind)(nth++ % 4) : Q_F16;
		const float *w = t->data;
		int embd = !strcmp(t->name, "token_embd.weight");
		int64_t rows = t->shape[0], cols = t->ndim == 2 ? t->shape[1] : 0, k;
		struct mcb_tensor *o, *s;
		char sname[96];

		snprintf(sname, sizeof(sname), "%s.scale", t->name);
		if (t->ndim != 2 || !(is_lin(t->name) || (embd && qk != Q_CHANNEL))) {
			CHECK_OK(mcb_model_new_tensor(dst, t->name, t->dtype, t->ndim, t->shape, &o, &e),
				 &e);
			memcpy(o->data, t->data, t->nbytes);
			continue;
		}
		if (qk == Q_F16 || qk == Q_BF16 || (qk == Q_GROUP && cols % 32)) {
			int bf = qk == Q_BF16;

			CHECK_OK(mcb_model_new_tensor(dst, t->name, bf ? MCB_DT_BF16 : MCB_DT_F16, 2,
						      t->shape, &o, &e), &e);
			for (k = 0; k < rows * cols; k++)
				((uint16_t *)o->data)[k] = bf ? mcb_f32_to_bf16(w[k]) : mcb_f32_to_f16(w[k]);
			if (qk == Q_GROUP)
				json_object_set_new(quant, t->name, json_pack("{s:s}", "fallback", "F16"));
			continue;
		}
		CHECK_OK(mcb_model_new_tensor(dst, t->name, MCB_DT_I8, 2, t->shape, &o, &e), &e);
		if (qk == Q_CHANNEL) {
			int64_t sh[1] = {rows};

			CHECK_OK(mcb_model_new_tensor(dst, sname, MCB_DT_F32, 1, sh, &s, &e), &e);
			o = mcb_model_find(dst, t->name);
			mcb_rtn_int8_channel(w, rows, cols, o->data, s->data);
		} else {
			int64_t sh[2] = {rows, cols / 32};

			CHECK_OK(mcb_model_new_tensor(dst, sname, MCB_DT_F16, 2, sh, &s, &e), &e);
			o = mcb_model_find(dst, t->name);
			for (k = 0; k < rows; k++)
				mcb_quantize_row_q8_0_split(w + k * cols, (int8_t *)o->data + k * cols,
							    (uint16_t *)s->data + k * (cols / 32), cols);
		}
		json_object_set_new(quant, t->name,
				    json_pack("{s:s,s:i,s:s,s:i,s:s,s:b}", "method", "rtn", "bits", 8,
					      "granularity", qk == Q_CHANNEL ? "channel" : "group",
					      "group_size", qk == Q_CHANNEL ? 0 : 32, "scale", sname,
					      "symmetric", 1));
	}
	CHECK_OK(mcb_model_check_llama(dst, "converted", &e), &e);
}

/* ---- the reference forward pass ---- */

/* activation rounding a weight asks for in GGML mode */
enum ract { R_NONE, R_Q8, R_F16, R_BF16 };

struct rlin {
	float *w;      /* (rows, cols) dequantized */
	enum ract act;
	int64_t rows, cols;
};

struct refm {
	struct mcb_llama_config c;
	struct rlin embd, out, lin[64][7];
	float *attn_norm[64], *ffn_norm[64], *out_norm;
};

/* the dequantized weight name (rows, cols) of m, defined from the file's
 * numbers: Q8_0 fp16(d) * q, per channel fl(s * q), halves widened */
static struct rlin ref_lin(const struct mcb_model *m, const char *name)
{
	const struct mcb_tensor *t = mcb_model_find(m, name);
	json_t *rec = json_object_get(json_object_get(m->meta, "quant"), name);
	struct rlin r;
	int64_t i, n;

	r.rows = t->shape[0];
	r.cols = t->shape[1];
	n = r.rows * r.cols;
	r.w = malloc((size_t)n * sizeof(float));
	r.act = R_NONE;
	if (t->dtype == MCB_DT_F32) {
		memcpy(r.w, t->data, (size_t)n * 4);
	} else if (t->dtype == MCB_DT_F16) {
		for (i = 0; i < n; i++)
			r.w[i] = mcb_f16_to_f32(((const uint16_t *)t->data)[i]);
		r.act = R_F16;
	} else if (t->dtype == MCB_DT_BF16) {
		for (i = 0; i < n; i++)
			r.w[i] = mcb_bf16_to_f32(((const uint16_t *)t->data)[i]);
		r.act = R_BF16;
	} else {
		const char *g = json_string_value(json_object_get(rec, "granularity"));
		const struct mcb_tensor *s =
			mcb_model_find(m, json_string_value(json_object_get(rec, "scale")));
		const int8_t *q = t->data;

		for (i = 0; i < n; i++) {
			int64_t row = i / r.cols, col = i % r.cols;

			if (!strcmp(g, "channel"))
				r.w[i] = ((const float *)s->data)[row] * (float)q[i];
			else
				r.w[i] = mcb_f16_to_f32(((const uint16_t *)s->data)[row * (r.cols / 32) +
										   col / 32]) *
					 (float)q[i];
		}
		r.act = strcmp(g, "channel") ? R_Q8 : R_NONE;
	}
	return r;
}

static float *ref_norm(const struct mcb_model *m, const char *name)
{
	const struct mcb_tensor *t = mcb_model_find(m, name);
	float *w = malloc((size_t)t->shape[0] * 4);

	CHECK_OK(mcb_tensor_to_f32(t, w, NULL), &(struct mcb_errctx){0});
	return w;
}

static void ref_load(struct refm *R, const struct mcb_model *m)
{
	char name[96];
	int64_t l;
	int j;

	memset(R, 0, sizeof(*R));
	R->c = m->cfg;
	R->embd = ref_lin(m, "token_embd.weight");
	R->out = m->cfg.tied_embeddings ? R->embd : ref_lin(m, "output.weight");
	R->out_norm = ref_norm(m, "output_norm.weight");
	for (l = 0; l < m->cfg.n_layers; l++) {
		snprintf(name, sizeof(name), "blk.%lld.attn_norm.weight", (long long)l);
		R->attn_norm[l] = ref_norm(m, name);
		snprintf(name, sizeof(name), "blk.%lld.ffn_norm.weight", (long long)l);
		R->ffn_norm[l] = ref_norm(m, name);
		for (j = 0; j < 7; j++) {
			snprintf(name, sizeof(name), "blk.%lld.%s.weight", (long long)l, lin_names[j]);
			R->lin[l][j] = ref_lin(m, name);
		}
	}
}

static void ref_free(struct refm *R)
{
	int64_t l;
	int j;

	free(R->embd.w);
	if (!R->c.tied_embeddings)
		free(R->out.w);
	free(R->out_norm);
	for (l = 0; l < R->c.n_layers; l++) {
		free(R->attn_norm[l]);
		free(R->ffn_norm[l]);
		for (j = 0; j < 7; j++)
			free(R->lin[l][j].w);
	}
}

/* x (n,) rounded as ggml feeds a weight of that kind, as doubles:
 * Q8_0 blocks (ggml x86: d = amax/127, codes round-half-even(x * 127/amax),
 * dequantized fp16(d) * code), fp16 or bf16 */
static void ref_act(enum ract a, int ggml, const double *x, double *y, int64_t n)
{
	int64_t i, b, j;

	if (!ggml || a == R_NONE) {
		memmove(y, x, (size_t)n * sizeof(double));
		return;
	}
	if (a == R_F16 || a == R_BF16) {
		for (i = 0; i < n; i++)
			y[i] = a == R_F16 ? mcb_f16_to_f32(mcb_f32_to_f16((float)x[i]))
					  : mcb_bf16_to_f32(mcb_f32_to_bf16((float)x[i]));
		return;
	}
	for (b = 0; b < n / 32; b++) {
		float xf[32], amax = 0.0f, id, d;

		for (j = 0; j < 32; j++) {
			xf[j] = (float)x[b * 32 + j];
			if (fabsf(xf[j]) > amax)
				amax = fabsf(xf[j]);
		}
		d = mcb_f16_to_f32(mcb_f32_to_f16(amax / 127.0f));
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		for (j = 0; j < 32; j++)
			y[b * 32 + j] = (double)d * (double)nearbyintf(xf[j] * id);
	}
}

/*
 * GGML-mode rounding decisions (a Q8_0 code, an fp16 rounding) flip when an
 * activation moves by one float ulp, and each flip moves the logits far more
 * than float rounding does (stories260K: ~0.2).  So in GGML mode the
 * reference takes the engine's own float activation at each matmul input
 * (recorded through the capture callback) and rounds that with its own
 * quantizer; everything else (the dot products, the residual stream, norms,
 * attention) stays the reference's own, in double.  It also measures how far
 * the engine's activations are from its own (drift).
 */
struct forcing {
	const struct mcb_llama_config *c;
	int64_t n;      /* positions */
	float *act[5];  /* per capture point: (n_layers or 1, n, cols) */
	int64_t pos0;   /* position of the current batch's first row */
	double drift;   /* max |engine activation - reference activation| */
	double mag;     /* max |reference activation| */
};

static int64_t point_cols(const struct mcb_llama_config *c, int pt)
{
	return pt == MCB_CAPTURE_FFN_DOWN ? c->hidden_dim : c->dim;
}

static void forcing_init(struct forcing *f, const struct mcb_llama_config *c, int64_t n)
{
	int pt;

	memset(f, 0, sizeof(*f));
	f->c = c;
	f->n = n;
	for (pt = 0; pt < 5; pt++)
		f->act[pt] = calloc((size_t)((c->n_layers + 1) * n * point_cols(c, pt)), sizeof(float));
}

static void forcing_free(struct forcing *f)
{
	int pt;

	for (pt = 0; pt < 5; pt++)
		free(f->act[pt]);
}

static void on_record(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		      int64_t rows, int64_t cols)
{
	struct forcing *f = ctx;
	int64_t l = layer < 0 ? 0 : layer;

	memcpy(f->act[pt] + (l * f->n + f->pos0) * cols, x, (size_t)(rows * cols) * sizeof(float));
	if (pt == MCB_CAPTURE_OUTPUT) /* the last point of a batch */
		f->pos0 += rows;
}

/* the engine's activation at (layer, point, pos), or NULL */
static const float *forced(const struct forcing *f, int64_t layer, int pt, int64_t pos)
{
	if (!f)
		return NULL;
	return f->act[pt] + (layer * f->n + pos) * point_cols(f->c, pt);
}

/* y (rows,) = W x, x rounded for W in GGML mode; fx: the engine's float
 * activation to round instead of x (see struct forcing) */
static void ref_matvec(const struct rlin *l, int ggml, const double *x, double *y,
		       const float *fx, struct forcing *f)
{
	double *xa = malloc((size_t)l->cols * sizeof(double)), s;
	int64_t r, c;

	if (ggml && fx) {
		for (c = 0; c < l->cols; c++) {
			if (fabs((double)fx[c] - x[c]) > f->drift)
				f->drift = fabs((double)fx[c] - x[c]);
			if (fabs(x[c]) > f->mag)
				f->mag = fabs(x[c]);
			xa[c] = fx[c];
		}
		ref_act(l->act, ggml, xa, xa, l->cols);
	} else {
		ref_act(l->act, ggml, x, xa, l->cols);
	}
	for (r = 0; r < l->rows; r++) {
		for (s = 0, c = 0; c < l->cols; c++)
			s += (double)l->w[r * l->cols + c] * xa[c];
		y[r] = s;
	}
	free(xa);
}

static void ref_rmsnorm(const double *x, const float *w, double *y, int64_t n, double eps)
{
	double ss = 0;
	int64_t i;

	for (i = 0; i < n; i++)
		ss += x[i] * x[i];
	ss = 1.0 / sqrt(ss / (double)n + eps);
	for (i = 0; i < n; i++)
		y[i] = x[i] * ss * w[i];
}

/* logits (n, vocab) of ids, token by token, all in double; f: GGML-mode
 * forcing (or NULL) */
static void ref_forward(const struct refm *R, const int32_t *ids, int64_t n, int ggml,
			float *logits, struct forcing *f)
{
	const struct mcb_llama_config *c = &R->c;
	const int64_t d = c->dim, hd = c->head_dim, kvd = c->n_kv_heads * hd, h = c->hidden_dim;
	const int64_t group = c->n_heads / c->n_kv_heads;
	double *kc = calloc((size_t)(c->n_layers * n * kvd), sizeof(double));
	double *vc = calloc((size_t)(c->n_layers * n * kvd), sizeof(double));
	double *x = malloc((size_t)d * 8), *xb = malloc((size_t)d * 8), *q = malloc((size_t)d * 8);
	double *att = malloc((size_t)d * 8), *tmp = malloc((size_t)(d > h ? d : h) * 8);
	double *hb = malloc((size_t)h * 8), *hb2 = malloc((size_t)h * 8);
	double *sc = malloc((size_t)n * 8), *lg = malloc((size_t)c->vocab_size * 8);
	int64_t pos, l, i, hh, p;

	for (pos = 0; pos < n; pos++) {
		for (i = 0; i < d; i++)
			x[i] = R->embd.w[(int64_t)ids[pos] * d + i];
		for (l = 0; l < c->n_layers; l++) {
			double *kl = kc + (l * n + pos) * kvd, *vl = vc + (l * n + pos) * kvd;

			ref_rmsnorm(x, R->attn_norm[l], xb, d, c->norm_eps);
			ref_matvec(&R->lin[l][0], ggml, xb, q, forced(f, l, 0, pos), f);
			ref_matvec(&R->lin[l][1], ggml, xb, kl, forced(f, l, 0, pos), f);
			ref_matvec(&R->lin[l][2], ggml, xb, vl, forced(f, l, 0, pos), f);
			/* RoPE: pair (2i, 2i+1) of every head turns by pos * theta^(-2i/hd) */
			for (i = 0; i < d; i += 2) {
				double ang = (double)pos * pow(c->rope_theta, -(double)(i % hd) / (double)hd);
				double cs = cos(ang), sn = sin(ang), a = q[i], b = q[i + 1];

				q[i] = a * cs - b * sn;
				q[i + 1] = a * sn + b * cs;
				if (i < kvd) {
					a = kl[i], b = kl[i + 1];
					kl[i] = a * cs - b * sn;
					kl[i + 1] = a * sn + b * cs;
				}
			}
			for (hh = 0; hh < c->n_heads; hh++) {
				const int64_t g = hh / group;
				double mx = -INFINITY, sum = 0;

				for (p = 0; p <= pos; p++) {
					double s = 0;

					for (i = 0; i < hd; i++)
						s += q[hh * hd + i] * kc[(l * n + p) * kvd + g * hd + i];
					sc[p] = s / sqrt((double)hd);
					if (sc[p] > mx)
						mx = sc[p];
				}
				for (p = 0; p <= pos; p++)
					sum += sc[p] = exp(sc[p] - mx);
				for (i = 0; i < hd; i++) {
					double s = 0;

					for (p = 0; p <= pos; p++)
						s += sc[p] / sum * vc[(l * n + p) * kvd + g * hd + i];
					att[hh * hd + i] = s;
				}
			}
			ref_matvec(&R->lin[l][3], ggml, att, tmp, forced(f, l, 1, pos), f);
			for (i = 0; i < d; i++)
				x[i] += tmp[i];
			ref_rmsnorm(x, R->ffn_norm[l], xb, d, c->norm_eps);
			ref_matvec(&R->lin[l][4], ggml, xb, hb, forced(f, l, 2, pos), f);
			ref_matvec(&R->lin[l][5], ggml, xb, hb2, forced(f, l, 2, pos), f);
			for (i = 0; i < h; i++)
				hb[i] = hb[i] / (1.0 + exp(-hb[i])) * hb2[i];
			ref_matvec(&R->lin[l][6], ggml, hb, tmp, forced(f, l, 3, pos), f);
			for (i = 0; i < d; i++)
				x[i] += tmp[i];
		}
		ref_rmsnorm(x, R->out_norm, xb, d, c->norm_eps);
		ref_matvec(&R->out, ggml, xb, lg, forced(f, 0, 4, pos), f);
		for (i = 0; i < c->vocab_size; i++)
			logits[pos * c->vocab_size + i] = (float)lg[i];
	}
	free(kc), free(vc), free(x), free(xb), free(q), free(att), free(tmp), free(hb), free(hb2);
	free(sc), free(lg);
}

/* ---- engine helpers ---- */

static double max_diff(const float *a, const float *b, int64_t n)
{
	double m = 0;
	int64_t i;

	for (i = 0; i < n; i++)
		if (!(fabs((double)a[i] - (double)b[i]) <= m))
			m = isnan(a[i]) || isnan(b[i]) ? INFINITY : fabs((double)a[i] - (double)b[i]);
	return m;
}

/* logits (n, vocab) from a fresh engine: in one eval, or token by token;
 * rec: record the activations (or NULL) */
static void run_engine(const struct mcb_model *m, enum mcb_engine_mode mode, int threads,
		       int64_t ctx, const int32_t *ids, int64_t n, int one_batch, float *logits,
		       struct forcing *rec)
{
	struct mcb_engine_opts o = {.threads = threads, .mode = mode, .ctx_len = ctx};
	struct mcb_engine *en;
	struct mcb_errctx e;
	int64_t i, v = m->cfg.vocab_size;

	CHECK_OK(mcb_engine_new(m, &o, &en, &e), &e);
	if (!en)
		return;
	if (rec)
		mcb_engine_set_capture(en, on_record, rec);
	if (one_batch) {
		CHECK_OK(mcb_engine_eval(en, ids, n, logits, NULL, &e), &e);
	} else {
		for (i = 0; i < n; i++)
			CHECK_OK(mcb_engine_eval(en, ids + i, 1, NULL, logits + i * v, &e), &e);
	}
	CHECK_EQ(mcb_engine_pos(en), n);
	mcb_engine_free(en);
}

static void make_ids(int32_t *ids, int64_t n, int64_t vocab, uint64_t seed)
{
	int64_t i;

	rs = seed;
	ids[0] = 1;
	for (i = 1; i < n; i++)
		ids[i] = (int32_t)(rnd() % (uint64_t)vocab);
}

/* engine (mode, both batchings, threads 2) vs the reference on m */
static double check_against_ref(const struct mcb_model *m, enum mcb_engine_mode mode,
				const int32_t *ids, int64_t n, const char *what)
{
	int64_t v = m->cfg.vocab_size;
	float *ref = malloc((size_t)(n * v) * 4), *a = malloc((size_t)(n * v) * 4);
	float *b = malloc((size_t)(n * v) * 4);
	struct refm R;
	double da, db, dab;

	struct forcing fa, fb;
	int ggml = mode == MCB_ENGINE_GGML;

	ref_load(&R, m);
	forcing_init(&fa, &m->cfg, n);
	forcing_init(&fb, &m->cfg, n);
	run_engine(m, mode, 2, 0, ids, n, 1, a, &fa);
	run_engine(m, mode, 2, 0, ids, n, 0, b, &fb);
	ref_forward(&R, ids, n, ggml, ref, ggml ? &fa : NULL);
	da = max_diff(a, ref, n * v);
	if (ggml) /* the token-by-token run made its own rounding decisions */
		ref_forward(&R, ids, n, ggml, ref, &fb);
	db = max_diff(b, ref, n * v);
	dab = max_diff(a, b, n * v);
	printf("  %-28s %s: max |dlogit| vs reference: batch %.3g, token by token %.3g; "
	       "batch vs tokens %.3g", what, ggml ? "ggml " : "exact", da, db, dab);
	if (ggml)
		printf(" (activation drift %.3g of %.3g)", fb.drift, fb.mag);
	printf("\n");
	CHECK(da <= LOGIT_TOL);
	CHECK(db <= LOGIT_TOL);
	/* batches and single tokens round differently in SGEMM and the dot
	 * kernels; in GGML mode a rounding decision may flip as well */
	CHECK(dab <= (ggml ? 1.0 : LOGIT_TOL));
	if (ggml)
		CHECK(fa.drift <= 1e-4 * (1 + fa.mag) && fb.drift <= 1e-4 * (1 + fb.mag));
	forcing_free(&fa);
	forcing_free(&fb);
	ref_free(&R);
	free(ref), free(a), free(b);
	return da > db ? da : db;
}

/* ---- tests ---- */

static void test_synthetic_f32(void)
{
	struct mcb_model m;
	int32_t ids[48];

	synth_model(&m, &synth_cfg, 1);
	make_ids(ids, 48, synth_cfg.vocab_size, 7);
	check_against_ref(&m, MCB_ENGINE_EXACT, ids, 48, "synthetic F32");
	check_against_ref(&m, MCB_ENGINE_GGML, ids, 48, "synthetic F32");
	mcb_model_release(&m);
}

static void test_synthetic_tied(void)
{
	struct mcb_llama_config c = synth_cfg;
	struct mcb_model m;
	int32_t ids[20];

	c.tied_embeddings = 1;
	c.n_kv_heads = 4; /* no grouping */
	synth_model(&m, &c, 2);
	make_ids(ids, 20, c.vocab_size, 8);
	check_against_ref(&m, MCB_ENGINE_EXACT, ids, 20, "synthetic tied, MHA");
	mcb_model_release(&m);
}

static void test_synthetic_quantized(void)
{
	static const char *const names[] = {"F16", "BF16", "int8 per channel", "Q8_0 + F16 down",
					    "mixed forms"};
	struct mcb_model m, q;
	int32_t ids[48];
	char what[64];
	int k;

	synth_model(&m, &synth_cfg, 3);
	make_ids(ids, 48, synth_cfg.vocab_size, 9);
	for (k = Q_F16; k <= Q_MIXED; k++) {
		convert_model(&m, &q, (enum qkind)k);
		snprintf(what, sizeof(what), "synthetic %s", names[k]);
		check_against_ref(&q, MCB_ENGINE_EXACT, ids, 48, what);
		check_against_ref(&q, MCB_ENGINE_GGML, ids, 48, what);
		mcb_model_release(&q);
	}
	mcb_model_release(&m);
}

/* more tokens than one internal batch (128) */
static void test_long_eval_in_chunks(void)
{
	struct mcb_model m, q;
	int32_t ids[200];

	synth_model(&m, &synth_cfg, 4);
	make_ids(ids, 200, synth_cfg.vocab_size, 10);
	check_against_ref(&m, MCB_ENGINE_EXACT, ids, 200, "synthetic F32, 200 tokens");
	convert_model(&m, &q, Q_GROUP);
	check_against_ref(&q, MCB_ENGINE_GGML, ids, 200, "synthetic Q8_0, 200 tokens");
	mcb_model_release(&q);
	mcb_model_release(&m);
}

/* bit-identical logits for 1, 2 and 3 threads; repeated calls equal */
static void test_threads_bit_identical(void)
{
	struct mcb_model m, q;
	const struct mcb_model *ms[2] = {&m, &q};
	int32_t ids[40];
	int64_t v = synth_cfg.vocab_size, n = 40;
	float *a = malloc((size_t)(n * v) * 4), *b = malloc((size_t)(n * v) * 4);
	int mi, mode, batch, th;

	synth_model(&m, &synth_cfg, 5);
	convert_model(&m, &q, Q_GROUP);
	make_ids(ids, n, v, 11);
	for (mi = 0; mi < 2; mi++)
		for (mode = 0; mode < 2; mode++)
			for (batch = 0; batch < 2; batch++) {
				run_engine(ms[mi], (enum mcb_engine_mode)mode, 1, 0, ids, n, batch, a, NULL);
				for (th = 1; th <= 3; th++) {
					run_engine(ms[mi], (enum mcb_engine_mode)mode, th, 0, ids, n, batch,
						   b, NULL);
					if (memcmp(a, b, (size_t)(n * v) * 4))
						mcbt_fail(__FILE__, __LINE__,
							  "%s %s %s: threads %d differ from threads 1 "
							  "(max %.3g)", mi ? "Q8_0" : "F32",
							  mode ? "ggml" : "exact", batch ? "batch" : "tokens",
							  th, max_diff(a, b, n * v));
				}
			}
	mcb_model_release(&q);
	mcb_model_release(&m);
	free(a), free(b);
}

/* GGML mode with Q8_0/F16 weights uses the same kernels batched and token
 * by token: equal bits */
static void test_ggml_batch_equals_tokens(void)
{
	struct mcb_model m, q;
	int32_t ids[30];
	int64_t v = synth_cfg.vocab_size, n = 30;
	float *a = malloc((size_t)(n * v) * 4), *b = malloc((size_t)(n * v) * 4);

	synth_model(&m, &synth_cfg, 6);
	convert_model(&m, &q, Q_GROUP);
	make_ids(ids, n, v, 12);
	run_engine(&q, MCB_ENGINE_GGML, 2, 0, ids, n, 1, a, NULL);
	run_engine(&q, MCB_ENGINE_GGML, 2, 0, ids, n, 0, b, NULL);
	CHECK(memcmp(a, b, (size_t)(n * v) * 4) == 0);
	mcb_model_release(&q);
	mcb_model_release(&m);
	free(a), free(b);
}

/* prompt then decode from the KV cache = one long batch; reset starts over */
static void test_kv_cache_continuation(void)
{
	struct mcb_engine_opts o = {.threads = 2, .mode = MCB_ENGINE_EXACT};
	struct mcb_model m;
	struct mcb_engine *en;
	struct mcb_errctx e;
	int32_t ids[24];
	int64_t v = synth_cfg.vocab_size, n = 24, i;
	float *all = malloc((size_t)(n * v) * 4), *part = malloc((size_t)(n * v) * 4);
	float *last = malloc((size_t)v * 4);

	synth_model(&m, &synth_cfg, 13);
	make_ids(ids, n, v, 14);
	CHECK_OK(mcb_engine_new(&m, &o, &en, &e), &e);
	CHECK_OK(mcb_engine_eval(en, ids, n, all, NULL, &e), &e);
	mcb_engine_reset(en);
	CHECK_EQ(mcb_engine_pos(en), 0);
	CHECK_OK(mcb_engine_eval(en, ids, 10, part, last, &e), &e);
	CHECK(memcmp(last, part + 9 * v, (size_t)v * 4) == 0);
	for (i = 10; i < n; i++)
		CHECK_OK(mcb_engine_eval(en, ids + i, 1, NULL, part + i * v, &e), &e);
	CHECK(max_diff(all, part, n * v) <= LOGIT_TOL);
	/* the same calls again give the same bits */
	mcb_engine_reset(en);
	CHECK_OK(mcb_engine_eval(en, ids, n, part, NULL, &e), &e);
	CHECK(memcmp(all, part, (size_t)(n * v) * 4) == 0);
	/* a prompt without logits, then one */
	mcb_engine_reset(en);
	CHECK_OK(mcb_engine_eval(en, ids, n - 1, NULL, NULL, &e), &e);
	CHECK_OK(mcb_engine_eval(en, ids + n - 1, 1, NULL, last, &e), &e);
	CHECK(max_diff(last, all + (n - 1) * v, v) <= LOGIT_TOL);
	mcb_engine_free(en);
	mcb_model_release(&m);
	free(all), free(part), free(last);
}

struct cap_log {
	int calls[MCB_CAPTURE_COUNT];
	int bad_shape;
	int layer0_seen;
	double attn_in_diff;      /* layer 0 ATTN_IN vs rmsnorm(embedding) */
	const struct mcb_model *m;
	const int32_t *ids;
	int64_t pos0;
};

static void on_capture(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		       int64_t rows, int64_t cols)
{
	struct cap_log *cl = ctx;
	const struct mcb_llama_config *c = &cl->m->cfg;
	int64_t want = pt == MCB_CAPTURE_FFN_DOWN ? c->hidden_dim : c->dim, t, i;

	cl->calls[pt]++;
	if (cols != want || rows < 1 || (pt == MCB_CAPTURE_OUTPUT) != (layer == -1) ||
	    layer >= c->n_layers)
		cl->bad_shape = 1;
	if (layer == 0 && pt == MCB_CAPTURE_ATTN_IN) {
		const float *emb = mcb_model_find(cl->m, "token_embd.weight")->data;
		const float *w = mcb_model_find(cl->m, "blk.0.attn_norm.weight")->data;
		double xd[256], y[256];

		cl->layer0_seen = 1;
		for (t = 0; t < rows; t++) {
			for (i = 0; i < c->dim; i++)
				xd[i] = emb[cl->ids[cl->pos0 + t] * c->dim + i];
			ref_rmsnorm(xd, w, y, c->dim, c->norm_eps);
			for (i = 0; i < c->dim; i++)
				if (fabs(y[i] - x[t * cols + i]) > cl->attn_in_diff)
					cl->attn_in_diff = fabs(y[i] - x[t * cols + i]);
		}
	}
}

static void test_capture(void)
{
	struct mcb_engine_opts o = {.threads = 2, .mode = MCB_ENGINE_EXACT};
	struct mcb_model m;
	struct mcb_engine *en;
	struct mcb_errctx e;
	struct cap_log cl;
	int32_t ids[12];
	float *last = malloc((size_t)synth_cfg.vocab_size * 4);
	int p;

	synth_model(&m, &synth_cfg, 15);
	make_ids(ids, 12, synth_cfg.vocab_size, 16);
	memset(&cl, 0, sizeof(cl));
	cl.m = &m;
	cl.ids = ids;
	CHECK_OK(mcb_engine_new(&m, &o, &en, &e), &e);
	mcb_engine_set_capture(en, on_capture, &cl);
	CHECK_OK(mcb_engine_eval(en, ids, 8, NULL, last, &e), &e); /* a batch */
	cl.pos0 = 8;
	CHECK_OK(mcb_engine_eval(en, ids + 8, 1, NULL, last, &e), &e); /* one token */
	for (p = 0; p < MCB_CAPTURE_OUTPUT; p++)
		CHECK_EQ(cl.calls[p], 2 * synth_cfg.n_layers);
	CHECK_EQ(cl.calls[MCB_CAPTURE_OUTPUT], 2);
	CHECK(!cl.bad_shape);
	CHECK(cl.layer0_seen);
	CHECK(cl.attn_in_diff < 1e-5);
	mcb_engine_set_capture(en, NULL, NULL);
	memset(cl.calls, 0, sizeof(cl.calls));
	CHECK_OK(mcb_engine_eval(en, ids + 9, 1, NULL, last, &e), &e);
	CHECK_EQ(cl.calls[MCB_CAPTURE_ATTN_IN], 0);
	mcb_engine_free(en);
	mcb_model_release(&m);
	free(last);
}

static void test_errors(void)
{
	struct mcb_engine_opts o = {.threads = 1, .mode = MCB_ENGINE_EXACT, .ctx_len = 16};
	struct mcb_model m;
	struct mcb_engine *en;
	struct mcb_errctx e;
	int32_t ids[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	float *lg = malloc((size_t)(16 * synth_cfg.vocab_size) * 4);

	synth_model(&m, &synth_cfg, 17);
	CHECK_OK(mcb_engine_new(&m, &o, &en, &e), &e);
	CHECK_EQ(mcb_engine_vocab(en), synth_cfg.vocab_size);
	CHECK_EQ(mcb_engine_kv_bytes_per_pos(en), 2 * 2 * 32 * 4);
	CHECK(mcb_engine_weight_bytes(en) > 4 * (uint64_t)(2 * (3 * 64 * 80 + 2 * 64 * 64)));
	CHECK_OK(mcb_engine_eval(en, ids, 10, lg, NULL, &e), &e);
	CHECK_ERR(mcb_engine_eval(en, ids, 7, lg, NULL, &e), &e, MCB_ERANGE, "overflow");
	CHECK_EQ(mcb_engine_pos(en), 10);
	ids[3] = (int32_t)synth_cfg.vocab_size;
	CHECK_ERR(mcb_engine_eval(en, ids, 4, lg, NULL, &e), &e, MCB_ERANGE, "outside the vocabulary");
	ids[3] = -1;
	CHECK_ERR(mcb_engine_eval(en, ids, 4, lg, NULL, &e), &e, MCB_ERANGE, "index 3");
	CHECK_EQ(mcb_engine_pos(en), 10);
	ids[3] = 4;
	CHECK_OK(mcb_engine_eval(en, ids, 6, lg, NULL, &e), &e);
	CHECK_ERR(mcb_engine_eval(en, ids, 1, lg, NULL, &e), &e, MCB_ERANGE, "overflow");
	CHECK_OK(mcb_engine_eval(en, ids, 0, NULL, NULL, &e), &e);
	mcb_engine_reset(en);
	CHECK_OK(mcb_engine_eval(en, ids, 16, lg, NULL, &e), &e);
	mcb_engine_free(en);
	o.threads = 0;
	CHECK_ERR(mcb_engine_new(&m, &o, &en, &e), &e, MCB_EINVAL, "threads");
	mcb_model_release(&m);
	free(lg);
}

static void test_refusals(void)
{
	struct mcb_engine_opts o = {.threads = 1, .mode = MCB_ENGINE_EXACT};
	struct mcb_model m, q;
	struct mcb_engine *en = NULL;
	struct mcb_errctx e;
	json_t *g = json_object();
	int64_t sh[1] = {8};
	struct mcb_tensor *t;

	synth_model(&m, &synth_cfg, 18);
	json_object_set_new(m.meta, "gguf", g);
	json_object_set_new(g, "llama.rope.scaling.type",
			    json_pack("{s:s,s:s}", "type", "str", "value", "linear"));
	CHECK_ERR(mcb_engine_new(&m, &o, &en, &e), &e, MCB_EUNSUP, "rope scaling 'linear'");
	json_object_set_new(g, "llama.rope.scaling.type",
			    json_pack("{s:s,s:s}", "type", "str", "value", "none"));
	CHECK_OK(mcb_engine_new(&m, &o, &en, &e), &e);
	mcb_engine_free(en);
	json_object_del(g, "llama.rope.scaling.type");
	json_object_set_new(g, "llama.rope.scaling.factor",
			    json_pack("{s:s,s:f}", "type", "f32", "value", 4.0));
	CHECK_ERR(mcb_engine_new(&m, &o, &en, &e), &e, MCB_EUNSUP, "scaling factor");
	json_object_clear(g);
	CHECK_OK(mcb_model_new_tensor(&m, "rope_freqs.weight", MCB_DT_F32, 1, sh, &t, &e), &e);
	CHECK_ERR(mcb_engine_new(&m, &o, &en, &e), &e, MCB_EUNSUP, "rope_freqs.weight");
	CHECK_OK(mcb_model_remove(&m, "rope_freqs.weight"), &e);
	strcpy(m.arch, "gpt2");
	CHECK_ERR(mcb_engine_new(&m, &o, &en, &e), &e, MCB_EUNSUP, "architecture 'gpt2'");
	strcpy(m.arch, "llama");
	/* an int8 record the engine cannot read */
	convert_model(&m, &q, Q_GROUP);
	json_object_set_new(json_object_get(json_object_get(q.meta, "quant"), "blk.0.attn_q.weight"),
			    "group_size", json_integer(64));
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EUNSUP, "group size 64");
	json_object_set_new(json_object_get(json_object_get(q.meta, "quant"), "blk.0.attn_q.weight"),
			    "group_size", json_integer(32));
	CHECK_OK(mcb_engine_new(&q, &o, &en, &e), &e);
	mcb_engine_free(en);
	CHECK_OK(mcb_model_remove(&q, "blk.1.ffn_up.weight.scale"), &e);
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EFORMAT, "blk.1.ffn_up.weight.scale");
	mcb_model_release(&q);
	mcb_model_release(&m);
}

/* A Q8_0 GGUF written with mcbuild's writer, read back by
 * mcb_engine_load_model: the same numbers as the in-memory Q8_0 model. */
static void test_load_gguf_q8(void)
{
	struct mcb_model m, q, back;
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	struct mcb_errctx e;
	char path[4096];
	int32_t ids[16];
	int64_t v = synth_cfg.vocab_size, n = 16;
	float *a = malloc((size_t)(n * v) * 4), *b = malloc((size_t)(n * v) * 4);
	void *blocks[64];
	int nb = 0;
	size_t i;

	synth_model(&m, &synth_cfg, 19);
	convert_model(&m, &q, Q_GROUP);
	snprintf(path, sizeof(path), "%s/q8.gguf", mcbt_tmpdir());
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_u32(w, "llama.context_length", (uint32_t)synth_cfg.seq_len);
	mcb_gguf_set_u32(w, "llama.embedding_length", (uint32_t)synth_cfg.dim);
	mcb_gguf_set_u32(w, "llama.block_count", (uint32_t)synth_cfg.n_layers);
	mcb_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)synth_cfg.hidden_dim);
	mcb_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)synth_cfg.n_heads);
	mcb_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)synth_cfg.n_kv_heads);
	mcb_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)synth_cfg.head_dim);
	mcb_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	mcb_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
	for (i = 0; i < q.ntensors; i++) {
		const struct mcb_tensor *t = &q.tensors[i];
		uint64_t ne[2] = {(uint64_t)t->shape[t->ndim - 1], (uint64_t)t->shape[0]};
		char sname[96];

		if (strstr(t->name, ".scale"))
			continue;
		if (t->dtype == MCB_DT_I8) {
			int64_t rows = t->shape[0], cols = t->shape[1], r, k;
			const uint16_t *d;
			struct mcb_block_q8_0 *blk = malloc((size_t)(rows * cols / 32) * sizeof(*blk));

			snprintf(sname, sizeof(sname), "%s.scale", t->name);
			d = mcb_model_find(&q, sname)->data;
			for (r = 0; r < rows; r++)
				for (k = 0; k < cols / 32; k++) {
					blk[r * (cols / 32) + k].d = d[r * (cols / 32) + k];
					memcpy(blk[r * (cols / 32) + k].qs,
					       (const int8_t *)t->data + r * cols + k * 32, 32);
				}
			blocks[nb++] = blk;
			CHECK_OK(mcb_gguf_add_tensor(w, t->name, 8, 2, ne, blk,
						     (uint64_t)(rows * cols / 32) * sizeof(*blk), &e), &e);
		} else {
			CHECK_OK(mcb_gguf_add_tensor(w, t->name, t->dtype == MCB_DT_F16 ? 1 : 0,
						     (uint32_t)t->ndim, ne, t->data, t->nbytes, &e), &e);
		}
	}
	CHECK_OK(mcb_gguf_write(w, path, &e), &e);
	mcb_gguf_writer_free(w);
	while (nb > 0)
		free(blocks[--nb]);
	mcb_model_init(&back);
	CHECK_OK(mcb_engine_load_model(path, &back, &e), &e);
	CHECK(json_object_size(json_object_get(back.meta, "quant")) > 0);
	make_ids(ids, n, v, 20);
	run_engine(&q, MCB_ENGINE_GGML, 2, 0, ids, n, 1, a, NULL);
	run_engine(&back, MCB_ENGINE_GGML, 2, 0, ids, n, 1, b, NULL);
	CHECK(memcmp(a, b, (size_t)(n * v) * 4) == 0);
	mcb_model_release(&back);
	/* an F32 GGUF goes through the importer; garbage is refused */
	snprintf(path, sizeof(path), "%s/garbage.bin", mcbt_tmpdir());
	mcbt_write(path, "not a model", 11);
	mcb_model_init(&back);
	CHECK_ERR(mcb_engine_load_model(path, &back, &e), &e, MCB_EFORMAT, "not a GGUF");
	mcb_model_release(&back);
	mcb_model_release(&q);
	mcb_model_release(&m);
	free(a), free(b);
}

/* the same ids as tests/compat/logits.py `ids N SEED` */
static void compat_ids(int32_t *ids, int64_t n, uint32_t seed)
{
	static const int32_t list[] = {3,   13,	 17,  29,  41,	67,  88,  101, 118, 140,
				       163, 201, 233, 259, 260, 277, 300, 311, 345, 377,
				       402, 433, 461, 499, 508, 35,  52,  74,  190, 222,
				       266, 290, 318, 330, 364, 390, 415, 444, 470, 487};
	uint32_t x = seed & 0x7fffffffu;
	int64_t i;

	ids[0] = 1;
	for (i = 1; i < n; i++) {
		x = (x * 1103515245u + 12345u) & 0x7fffffffu;
		ids[i] = list[(x >> 16) % 40];
	}
}

static void test_stories260k(void)
{
	const char *path = mcbt_shared("models/stories260K.bin");
	struct mcb_model m, q;
	struct mcb_errctx e;
	int32_t ids[64];

	if (!path)
		return;
	mcb_model_init(&m);
	CHECK_OK(mcb_engine_load_model(path, &m, &e), &e);
	compat_ids(ids, 64, 1);
	check_against_ref(&m, MCB_ENGINE_EXACT, ids, 64, "stories260K F32");
	convert_model(&m, &q, Q_GROUP);
	check_against_ref(&q, MCB_ENGINE_EXACT, ids, 64, "stories260K Q8_0");
	check_against_ref(&q, MCB_ENGINE_GGML, ids, 64, "stories260K Q8_0");
	mcb_model_release(&q);
	convert_model(&m, &q, Q_CHANNEL);
	check_against_ref(&q, MCB_ENGINE_EXACT, ids, 64, "stories260K int8 channel");
	mcb_model_release(&q);
	mcb_model_release(&m);
}

static void test_sampler(void)
{
	float lg[6] = {0.5f, 2.0f, -1.0f, 2.0f, 1.9f, NAN};
	struct mcb_sampler s1, s2;
	int i, count[6] = {0}, same = 1, n = 20000;

	mcb_sampler_init(&s1, 1, 0.0f, 0);
	CHECK_EQ(mcb_sampler_next(&s1, lg, 6), 1); /* ties: the lowest id */
	mcb_sampler_init(&s1, 1, 1.0f, 1);
	for (i = 0; i < 50; i++)
		CHECK_EQ(mcb_sampler_next(&s1, lg, 6), 1);
	mcb_sampler_init(&s1, 42, 0.8f, 0);
	mcb_sampler_init(&s2, 42, 0.8f, 0);
	for (i = 0; i < 200; i++)
		CHECK_EQ(mcb_sampler_next(&s1, lg, 6), mcb_sampler_next(&s2, lg, 6));
	mcb_sampler_init(&s2, 43, 0.8f, 0);
	for (i = 0; i < 200; i++)
		same &= mcb_sampler_next(&s1, lg, 6) == mcb_sampler_next(&s2, lg, 6);
	CHECK(!same);
	/* frequencies follow softmax(l / T); top_k 3 keeps ids 1, 3, 4 */
	mcb_sampler_init(&s1, 7, 1.0f, 3);
	for (i = 0; i < n; i++)
		count[mcb_sampler_next(&s1, lg, 6)]++;
	CHECK_EQ(count[0] + count[2] + count[5], 0);
	{
		double z = 2 * exp(2.0) + exp(1.9), p4 = exp(1.9) / z;

		CHECK(fabs((double)count[4] / n - p4) < 0.015);
		CHECK(fabs((double)count[1] / n - exp(2.0) / z) < 0.015);
	}
	memset(count, 0, sizeof(count));
	mcb_sampler_init(&s1, 8, 2.0f, 0);
	for (i = 0; i < n; i++)
		count[mcb_sampler_next(&s1, lg, 6)]++;
	CHECK_EQ(count[5], 0); /* NaN never drawn */
	{
		double z = exp(0.25) + 2 * exp(1.0) + exp(-0.5) + exp(0.95);

		CHECK(fabs((double)count[2] / n - exp(-0.5) / z) < 0.01);
		CHECK(fabs((double)count[0] / n - exp(0.25) / z) < 0.015);
	}
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0); /* interleave with the harness's stderr */
	printf("test_engine: kernels '%s'\n", mcb_kernels()->name);
	RUN(test_kernels_match_ref);
	RUN(test_gemm_q8_equals_dots);
	RUN(test_quantize_act_vs_ggml_ref);
	RUN(test_synthetic_f32);
	RUN(test_synthetic_tied);
	RUN(test_synthetic_quantized);
	RUN(test_long_eval_in_chunks);
	RUN(test_threads_bit_identical);
	RUN(test_ggml_batch_equals_tokens);
	RUN(test_kv_cache_continuation);
	RUN(test_capture);
	RUN(test_errors);
	RUN(test_refusals);
	RUN(test_load_gguf_q8);
	RUN(test_stories260k);
	RUN(test_sampler);
	return mcbt_done();
}
