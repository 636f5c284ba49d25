/*
 * Engine tests: the optimized kernels against their _ref oracle (the GGML-
 * mode entries bit for bit), and the engine's logits against a scalar
 * reference forward pass written here (llama2.c run.c style loops,
 * everything in double) on synthetic models in every weight form (float,
 * the int8 forms, and the records of qtensor.h: ggml blocks Q4_0, Q4_1,
 * Q8_0, Q4_K, Q6_K, integer codes with zero points, groups and g_idx, FP8;
 * pruned heads) and on stories260K; thread-count and batching determinism,
 * capture, errors, the Q8_0 GGUF loader, the sampler.
 *
 * Tolerances: logits within 1e-4 of the reference (float vs double
 * arithmetic; measured values are printed).  GGML mode is compared with a
 * reference that rounds the activations the way ggml does (Q8_0 blocks with
 * ggml's x86 quantizer, Q8_1 with its block sums, Q8_K, fp16, bf16),
 * written independently below; the reference dequantizes the records from
 * their formulas (qtensor.h, the ggml block layouts) on its own too.  That
 * GGML mode reproduces llama.cpp's float orders bit for bit is checked
 * against llama.cpp itself (tests/compat section 7).
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

/* equal floats, or both NaN */
static int same_float(float a, float b)
{
	return !memcmp(&a, &b, sizeof(a)) || (isnan(a) && isnan(b));
}

/* GGML-mode entries (kernels.h): the optimized table gives the _ref table's
 * bits, specials included */
static void test_ggml_float_ops_bit_identical(void)
{
	const struct mcb_kernels *r = mcb_kernels_ref(), *k = mcb_kernels_avx2();
	static const int64_t lens[] = {1, 7, 8, 15, 16, 17, 31, 63, 64, 65, 100, 127, 128, 172,
				       256, 300, 1000};
	static const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 89.0f,
					 -104.0f, 120.0f, -120.0f, 1e30f, -1e30f, INFINITY,
					 -INFINITY, NAN, 0.5f};
	size_t li;

	if (!k) {
		mcbt_skip("the CPU has no AVX2/FMA/F16C: only the _ref table exists");
		return;
	}
	for (li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		const int64_t n = lens[li];
		float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
		float *y1 = malloc((size_t)n * 4), *y2 = malloc((size_t)n * 4);
		uint16_t *h = malloc((size_t)n * 2), *h2 = malloc((size_t)n * 2);
		float mx = -INFINITY;
		double s1, s2;
		int64_t i;

		for (i = 0; i < n; i++) {
			a[i] = urand() * (float)(1 + i % 7);
			b[i] = urand();
			h[i] = mcb_f32_to_f16(a[i]);
			h2[i] = mcb_f32_to_f16(b[i]);
		}
		CHECK(same_float(k->dot_f32_ggml(n, a, b), r->dot_f32_ggml(n, a, b)));
		CHECK(same_float(k->dot_f16_f16(n, h, h2), r->dot_f16_f16(n, h, h2)));
		if (n % 32 == 0) {
			int8_t *q1 = malloc((size_t)n), *q2 = malloc((size_t)n);
			uint16_t *d1 = malloc((size_t)n / 16), *d2 = malloc((size_t)n / 16);

			r->quantize_act(n, a, q1, d1);
			r->quantize_act(n, b, q2, d2);
			CHECK(same_float(k->dot_q8_0_q8_0(n, q1, d1, q2, d2),
					 r->dot_q8_0_q8_0(n, q1, d1, q2, d2)));
			free(q1), free(q2), free(d1), free(d2);
		}
		if (n % 16 == 0) {
			CHECK(same_float(k->dot_f32_lanes16(n, a, b), r->dot_f32_lanes16(n, a, b)));
			CHECK(same_float(k->dot_f16_lanes16(n, h, h2), r->dot_f16_lanes16(n, h, h2)));
		}
		memcpy(y1, b, (size_t)n * 4);
		memcpy(y2, b, (size_t)n * 4);
		k->fma_f32(n, 0.37f, a, y1);
		r->fma_f32(n, 0.37f, a, y2);
		CHECK(memcmp(y1, y2, (size_t)n * 4) == 0);
		/* SwiGLU over a wide range, specials in the 16-wide part and the tail */
		for (i = 0; i < n; i++)
			y1[i] = y2[i] = i % 5 == 4 ? specials[(i / 5) % 16] : urand() * 120.0f;
		k->swiglu_ggml(n, y1, b);
		r->swiglu_ggml(n, y2, b);
		for (i = 0; i < n; i++)
			if (!same_float(y1[i], y2[i])) {
				mcbt_fail(__FILE__, __LINE__, "swiglu n=%lld [%lld]: %a vs %a",
					  (long long)n, (long long)i, y1[i], y2[i]);
				break;
			}
		/* softmax exps: masked (-inf) lanes, values far below the max */
		for (i = 0; i < n; i++) {
			y1[i] = i % 9 == 8 ? -INFINITY : urand() * 60.0f;
			if (y1[i] > mx)
				mx = y1[i];
		}
		memcpy(y2, y1, (size_t)n * 4);
		s1 = k->softmax_exp_ggml(n, y1, mx);
		s2 = r->softmax_exp_ggml(n, y2, mx);
		CHECK(s1 == s2);
		CHECK(memcmp(y1, y2, (size_t)n * 4) == 0);
		free(a), free(b), free(y1), free(y2), free(h), free(h2);
	}
}

/* ggml_v_expf (through softmax_exp_ggml, 16 lanes at a time) is within 2
 * ulps of expf; 0 below -104, inf above 89, NaN stays NaN */
static void test_ggml_expf(void)
{
	const struct mcb_kernels *k = mcb_kernels();
	enum { N = 16 * 4096 };
	float *x = malloc(N * 4);
	int64_t i;
	int worst = 0;

	for (i = 0; i < N; i++)
		x[i] = -100.0f + 188.0f * (float)i / (float)N;
	x[0] = -200.0f, x[1] = -INFINITY, x[2] = 100.0f, x[3] = NAN, x[4] = 0.0f;
	memcpy(x + N / 2, x, 16 * 4);
	k->softmax_exp_ggml(N, x, 0.0f);
	CHECK(x[0] == 0.0f && x[1] == 0.0f && isinf(x[2]) && isnan(x[3]) && x[4] == 1.0f);
	CHECK(x[N / 2] == 0.0f && x[N / 2 + 1] == 0.0f && isinf(x[N / 2 + 2]) &&
	      isnan(x[N / 2 + 3]) && x[N / 2 + 4] == 1.0f);
	for (i = 16; i < N; i++) {
		float want = expf(-100.0f + 188.0f * (float)i / (float)N);
		int32_t a, b;

		if (want < FLT_MIN || isinf(want) || (i >= N / 2 && i < N / 2 + 16))
			continue;
		memcpy(&a, &x[i], 4);
		memcpy(&b, &want, 4);
		if (abs(a - b) > worst)
			worst = abs(a - b);
	}
	printf("  ggml_v_expf: within %d ulps of expf\n", worst);
	CHECK(worst <= 2);
	free(x);
}

/* the sum of a block's codes */
static int code_sum(const int8_t *q, int n)
{
	int s = 0, j;

	for (j = 0; j < n; j++)
		s += q[j];
	return s;
}

/*
 * gemm_ggml, every order, both tables: equal bits, and each value the dot
 * product it stands for: sum_j w_j a_j over the dequantized weight
 * (mcb_dequantize_row_ggml) and activation (fp16(d) q for Q8_0/Q8_1, d q for
 * Q8_K), Q4_1 with ggml's block sums s (m * s for m * sum a), to 1e-5 of
 * sum |w_j a_j|.  The activation quantizers' tables agree bit for bit too.
 */
static void test_gemm_ggml(void)
{
	static const struct {
		enum mcb_dtype t;
		enum mcb_ggml_order o;
		int act; /* 0 Q8_0, 1 Q8_1, 2 Q8_K, 3 Q8_K repack rule */
	} cases[] = {
		{MCB_DT_Q8_0, MCB_GO_Q8_0, 0},	     {MCB_DT_Q4_0, MCB_GO_Q4_0, 0},
		{MCB_DT_Q4_0, MCB_GO_Q4_0_R, 0},     {MCB_DT_Q4_1, MCB_GO_Q4_1, 1},
		{MCB_DT_Q4_K, MCB_GO_Q4_K, 2},	     {MCB_DT_Q4_K, MCB_GO_Q4_K_GEMV, 2},
		{MCB_DT_Q4_K, MCB_GO_Q4_K_GEMM, 3}, {MCB_DT_Q6_K, MCB_GO_Q6_K, 2},
	};
	const struct mcb_kernels *tabs[2] = {mcb_kernels_ref(), mcb_kernels_avx2()};
	enum { N = 512, R = 16, T = 9 };
	float *w = malloc(R * N * 4), *x = malloc(T * N * 4), *wd = malloc(N * 4);
	float y[2][T * R];
	uint8_t *wb = malloc(R * N * 2);
	int8_t q[2][T * N];
	uint16_t d[2][T * N / 32], s[2][T * N / 32];
	float dk[2][T * N / 256];
	int16_t bs[2][T * N / 16];
	size_t c;
	int64_t i, r, t;
	int kt, nt;

	for (i = 0; i < T * N; i++)
		x[i] = urand() * expf(2.0f * urand());
	for (i = 0; i < N; i += 97) /* +-amax ties in token 0: the two Q8_K rules differ */
		x[i] = (i / 97) % 2 ? -8.0f : 8.0f;
	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const struct mcb_dtype_info *di = mcb_dtype_info(cases[c].t);
		const size_t rb = N / di->block * di->block_bytes;
		const int gemm = cases[c].o == MCB_GO_Q4_K_GEMM;

		for (i = 0; i < R * N; i++)
			w[i] = urand() + (i % 3 ? 0.0f : 0.5f);
		for (r = 0; r < R; r++)
			mcb_quantize_row_ggml(cases[c].t, w + r * N, wb + r * rb, N);
		for (nt = 1; nt <= T; nt++) {
			if (gemm && nt % 4)
				continue; /* GEMM takes tokens in fours */
			for (kt = 0; kt < 2; kt++) {
				const struct mcb_kernels *k = tabs[kt];
				struct mcb_qact a = {q[kt], d[kt], s[kt], dk[kt], bs[kt]};

				if (!k)
					continue;
				for (t = 0; t < nt; t++) {
					const float *xt = x + t * N;

					if (cases[c].act == 0)
						k->quantize_act(N, xt, q[kt] + t * N, d[kt] + t * (N / 32));
					else if (cases[c].act == 1)
						k->quantize_act_q8_1(N, xt, q[kt] + t * N, d[kt] + t * (N / 32),
								     s[kt] + t * (N / 32));
					else
						k->quantize_act_q8_k(N, xt, q[kt] + t * N,
								     dk[kt] + t * (N / 256),
								     bs[kt] + t * (N / 16),
								     cases[c].act == 3);
				}
				memset(y[kt], 0xff, sizeof(y[kt]));
				k->gemm_ggml(cases[c].o, N, wb, rb, R, &a, nt, y[kt], R);
			}
			if (tabs[1]) {
				CHECK(memcmp(q[0], q[1], (size_t)(nt * N)) == 0);
				CHECK(memcmp(y[0], y[1], (size_t)(nt * R) * 4) == 0);
			}
		}
		/* the values, on the _ref table's last run (T or 8 tokens) */
		nt = gemm ? 8 : T;
		for (r = 0; r < R; r++) {
			mcb_dequantize_row_ggml(cases[c].t, wb + r * rb, wd, N);
			for (t = 0; t < nt; t++) {
				double sum = 0, mag = 0, av;
				int64_t b;

				for (i = 0; i < N; i++) {
					av = cases[c].act >= 2
						     ? (double)dk[0][t * (N / 256) + i / 256] * q[0][t * N + i]
						     : (double)mcb_f16_to_f32(d[0][t * (N / 32) + i / 32]) *
							       q[0][t * N + i];
					sum += (double)wd[i] * av;
					mag += fabs((double)wd[i] * av);
				}
				if (cases[c].t == MCB_DT_Q4_1)
					for (b = 0; b < N / 32; b++) {
						const uint8_t *blk = wb + r * rb + b * di->block_bytes;
						double m = mcb_f16_to_f32((uint16_t)(blk[2] | blk[3] << 8));
						double dd = mcb_f16_to_f32(d[0][t * (N / 32) + b]);

						sum += m * (mcb_f16_to_f32(s[0][t * (N / 32) + b]) -
							    dd * code_sum(q[0] + t * N + b * 32, 32));
					}
				if (fabs(y[0][t * R + r] - sum) > 1e-5 * mag + 1e-30) {
					mcbt_fail(__FILE__, __LINE__, "order %d row %lld token %lld: %.9g, "
						  "expected %.9g", (int)cases[c].o, (long long)r,
						  (long long)t, y[0][t * R + r], sum);
					break;
				}
			}
		}
	}
	/* the Q8_K rules: with -8 first and +8 later, the _ref rule scales by
	 * -8 (the first largest) and the repack rule by +8 (whenever +amax
	 * occurs): codes and d negate; with +8 first both take +8 */
	{
		const struct mcb_kernels *k = mcb_kernels();
		int8_t q0[256], q1[256];
		float d0, d1;
		int16_t b0[16], b1[16];

		for (i = 0; i < 256; i++)
			w[i] = urand();
		w[3] = -8.0f;
		w[200] = 8.0f;
		k->quantize_act_q8_k(256, w, q0, &d0, b0, 0);
		k->quantize_act_q8_k(256, w, q1, &d1, b1, 1);
		CHECK(d0 == -d1 && d0 > 0.0f);
		CHECK(q0[3] == -127 && q1[3] == 127 && q0[200] == 127 && q1[200] == -127);
		for (i = 0; i < 256; i++)
			if (q0[i] != -q1[i] && !(q0[i] == 127 && q1[i] == -127))
				break;
		CHECK_EQ(i, 256);
		w[3] = 8.0f;
		w[200] = -8.0f;
		k->quantize_act_q8_k(256, w, q0, &d0, b0, 0);
		k->quantize_act_q8_k(256, w, q1, &d1, b1, 1);
		CHECK(d0 == d1 && memcmp(q0, q1, 256) == 0 && memcmp(b0, b1, sizeof(b0)) == 0);
		CHECK_EQ(b0[0], code_sum(q0, 16));
	}
	free(w), free(x), free(wd), free(wb);
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
		const int64_t qd = c->n_heads * c->head_dim;
		const int64_t shapes[7][2] = {{qd, c->dim},	    {kv, c->dim},
					      {kv, c->dim},	    {c->dim, qd},
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

/* ---- the record forms of qtensor.h (ggml blocks, integer codes, fp8) ---- */

static const char *ggml_name(enum mcb_dtype t)
{
	return t == MCB_DT_Q4_0 ? "Q4_0" : t == MCB_DT_Q4_1 ? "Q4_1" : t == MCB_DT_Q8_0 ? "Q8_0"
	       : t == MCB_DT_Q4_K ? "Q4_K" : "Q6_K";
}

/* dst gets name: w (rows, cols) as ggml blocks of type bt, or an F16
 * fallback when the rows do not divide into blocks */
static void put_ggml(struct mcb_model *dst, json_t *quant, const char *name, const float *w,
		     int64_t rows, int64_t cols, enum mcb_dtype bt)
{
	const struct mcb_dtype_info *di = mcb_dtype_info(bt);
	struct mcb_tensor *o;
	struct mcb_errctx e;
	int64_t r, k;

	if (cols % di->block) {
		int64_t sh[2] = {rows, cols};

		CHECK_OK(mcb_model_new_tensor(dst, name, MCB_DT_F16, 2, sh, &o, &e), &e);
		for (k = 0; k < rows * cols; k++)
			((uint16_t *)o->data)[k] = mcb_f32_to_f16(w[k]);
		json_object_set_new(quant, name, json_pack("{s:s}", "fallback", "F16"));
		return;
	}
	{
		const int64_t rb = cols / di->block * di->block_bytes;
		int64_t sh[2] = {rows, rb};

		CHECK_OK(mcb_model_new_tensor(dst, name, MCB_DT_U8, 2, sh, &o, &e), &e);
		for (r = 0; r < rows; r++)
			mcb_quantize_row_ggml(bt, w + r * cols, (uint8_t *)o->data + r * rb, cols);
		json_object_set_new(quant, name, json_pack("{s:s,s:s,s:s}", "format", "ggml",
							   "ggml_type", ggml_name(bt), "method", "rtn"));
	}
}

/* integer codes: 4-bit asymmetric in groups of 32 (a partial last group when
 * cols % 32), F16 scales and U8 zero points; or 3-bit symmetric in groups of
 * 16 with a scrambled g_idx, F32 scales */
static void put_int(struct mcb_model *dst, json_t *quant, const char *name, const float *w,
		    int64_t rows, int64_t cols, int asym)
{
	const int64_t gs = asym ? 32 : 16, ng = (cols + gs - 1) / gs;
	const int qmax = asym ? 15 : 3;
	struct mcb_tensor *o, *s, *z = NULL, *gi = NULL;
	struct mcb_errctx e;
	char sname[96], zname[96], gname[96];
	int64_t sh[2] = {rows, cols}, ssh[2] = {rows, ng}, gsh[1] = {cols}, r, c, g;

	snprintf(sname, sizeof(sname), "%s.scale", name);
	snprintf(zname, sizeof(zname), "%s.zero", name);
	snprintf(gname, sizeof(gname), "%s.g_idx", name);
	CHECK_OK(mcb_model_new_tensor(dst, sname, asym ? MCB_DT_F16 : MCB_DT_F32, 2, ssh, &s, &e), &e);
	if (asym)
		CHECK_OK(mcb_model_new_tensor(dst, zname, MCB_DT_U8, 2, ssh, &z, &e), &e);
	else
		CHECK_OK(mcb_model_new_tensor(dst, gname, MCB_DT_I32, 1, gsh, &gi, &e), &e);
	CHECK_OK(mcb_model_new_tensor(dst, name, asym ? MCB_DT_U8 : MCB_DT_I8, 2, sh, &o, &e), &e);
	s = mcb_model_find(dst, sname); /* the table may have moved */
	if (asym)
		z = mcb_model_find(dst, zname);
	else
		gi = mcb_model_find(dst, gname);
	for (c = 0; c < cols && gi; c++)
		((int32_t *)gi->data)[c] = (int32_t)((c * 5 + 3) % ng);
	for (r = 0; r < rows; r++)
		for (g = 0; g < ng; g++) {
			float lo = 0.0f, hi = 0.0f, sc, zp = 0.0f;

			for (c = 0; c < cols; c++) {
				float v = w[r * cols + c];

				if ((gi ? ((int32_t *)gi->data)[c] : c / gs) != g)
					continue;
				lo = v < lo ? v : lo;
				hi = v > hi ? v : hi;
			}
			if (asym) {
				sc = mcb_f16_to_f32(mcb_f32_to_f16((hi - lo) / (float)qmax));
				zp = sc > 0.0f ? nearbyintf(-lo / sc) : 0.0f;
				zp = zp > (float)qmax ? (float)qmax : zp;
				((uint16_t *)s->data)[r * ng + g] = mcb_f32_to_f16(sc);
				((uint8_t *)z->data)[r * ng + g] = (uint8_t)zp;
			} else {
				sc = (hi > -lo ? hi : -lo) / (float)qmax;
				((float *)s->data)[r * ng + g] = sc;
			}
			for (c = 0; c < cols; c++) {
				float v;

				if ((gi ? ((int32_t *)gi->data)[c] : c / gs) != g)
					continue;
				v = sc > 0.0f ? nearbyintf(w[r * cols + c] / sc) + zp : 0.0f;
				if (asym) {
					v = v < 0 ? 0 : v > qmax ? (float)qmax : v;
					((uint8_t *)o->data)[r * cols + c] = (uint8_t)v;
				} else {
					v = v < -qmax - 1 ? (float)(-qmax - 1) : v > qmax ? (float)qmax : v;
					((int8_t *)o->data)[r * cols + c] = (int8_t)v;
				}
			}
		}
	if (asym)
		json_object_set_new(quant, name,
				    json_pack("{s:s,s:s,s:i,s:i,s:b,s:s,s:s}", "format", "int", "method",
					      "awq", "bits", 4, "group_size", 32, "symmetric", 0,
					      "scale", sname, "zero", zname));
	else
		json_object_set_new(quant, name,
				    json_pack("{s:s,s:i,s:i,s:b,s:s,s:s}", "method", "gptq", "bits", 3,
					      "group_size", 16, "symmetric", 1, "scale", sname, "g_idx",
					      gname));
}

/* FP8 E4M3 codes with a per-row F32 scale (amax / 448) */
static void put_fp8(struct mcb_model *dst, json_t *quant, const char *name, const float *w,
		    int64_t rows, int64_t cols)
{
	struct mcb_tensor *o, *s;
	struct mcb_errctx e;
	char sname[96];
	int64_t sh[2] = {rows, cols}, ssh[1] = {rows}, r, c;

	snprintf(sname, sizeof(sname), "%s.scale", name);
	CHECK_OK(mcb_model_new_tensor(dst, sname, MCB_DT_F32, 1, ssh, &s, &e), &e);
	CHECK_OK(mcb_model_new_tensor(dst, name, MCB_DT_F8_E4M3, 2, sh, &o, &e), &e);
	s = mcb_model_find(dst, sname);
	for (r = 0; r < rows; r++) {
		float amax = 0.0f, sc;

		for (c = 0; c < cols; c++)
			amax = fabsf(w[r * cols + c]) > amax ? fabsf(w[r * cols + c]) : amax;
		sc = amax > 0.0f ? amax / 448.0f : 1.0f;
		((float *)s->data)[r] = sc;
		for (c = 0; c < cols; c++)
			((uint8_t *)o->data)[r * cols + c] = mcb_f32_to_e4m3(w[r * cols + c] / sc);
	}
	json_object_set_new(quant, name, json_pack("{s:s,s:s,s:s}", "format", "fp8", "method", "rtn",
						   "scale", sname));
}

enum rform { RF_G4_0, RF_G4_1, RF_G8_0, RF_G4_K, RF_G6_K, RF_INT4_ASYM, RF_INT3_GIDX, RF_FP8,
	     RF_MIXED };

/* dst = src with every linear weight and token_embd in record form f
 * (RF_MIXED: each 2-D weight the next form in turn) */
static void convert_records(const struct mcb_model *src, struct mcb_model *dst, enum rform f)
{
	static const enum mcb_dtype bt[5] = {MCB_DT_Q4_0, MCB_DT_Q4_1, MCB_DT_Q8_0, MCB_DT_Q4_K,
					     MCB_DT_Q6_K};
	json_t *quant = json_object();
	struct mcb_errctx e;
	struct mcb_tensor *o;
	size_t i;
	int nth = 0;

	mcb_model_init(dst);
	strcpy(dst->arch, src->arch);
	dst->cfg = src->cfg;
	json_object_set_new(dst->meta, "quant", quant);
	for (i = 0; i < src->ntensors; i++) {
		const struct mcb_tensor *t = &src->tensors[i];
		enum rform g = f;

		if (t->ndim != 2) {
			CHECK_OK(mcb_model_new_tensor(dst, t->name, t->dtype, t->ndim, t->shape, &o, &e),
				 &e);
			memcpy(o->data, t->data, t->nbytes);
			continue;
		}
		if (f == RF_MIXED) { /* the forms that take rows of 64 and 80 */
			static const enum rform mix[6] = {RF_G4_0, RF_INT4_ASYM, RF_G4_1, RF_FP8,
							  RF_INT3_GIDX, RF_G8_0};

			g = mix[nth++ % 6];
		}
		if (g <= RF_G6_K)
			put_ggml(dst, quant, t->name, t->data, t->shape[0], t->shape[1], bt[g]);
		else if (g == RF_FP8)
			put_fp8(dst, quant, t->name, t->data, t->shape[0], t->shape[1]);
		else
			put_int(dst, quant, t->name, t->data, t->shape[0], t->shape[1],
				g == RF_INT4_ASYM);
	}
}

/* ---- the reference forward pass ---- */

/* activation rounding a weight asks for in GGML mode */
enum ract { R_NONE, R_Q8, R_Q81, R_Q8K, R_F16, R_BF16 };

struct rlin {
	float *w;      /* (rows, cols) dequantized */
	float *m1;     /* Q4_1 blocks: their m (rows, cols/32), else NULL */
	enum ract act;
	int64_t rows, cols;
	float ascale;  /* W8A8 static activation scale, 0: none */
};

struct refm {
	struct mcb_llama_config c;
	struct rlin embd, out, lin[64][7];
	float *attn_norm[64], *ffn_norm[64], *out_norm;
};

/* fp16 at p (little endian) */
static float rd_f16(const uint8_t *p)
{
	return mcb_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* an E4M3 code's value (1 sign, 4 exponent bits with bias 7, 3 mantissa
 * bits; the NaN codes are refused before) */
static float e4m3_value(uint8_t b)
{
	int ex = (b >> 3) & 15, mt = b & 7;
	float v = ex ? ldexpf(1.0f + (float)mt / 8.0f, ex - 7) : ldexpf((float)mt / 8.0f, -6);

	return b & 0x80 ? -v : v;
}

/* one ggml block of type t at b -> y (ggml's dequantize_row_* formulas,
 * written from the block layouts); m: Q4_1's m, else untouched */
static void deq_block(enum mcb_dtype t, const uint8_t *b, float *y, float *m)
{
	int j, l, is;

	switch (t) {
	case MCB_DT_Q8_0:
		for (j = 0; j < 32; j++)
			y[j] = (float)(int8_t)b[2 + j] * rd_f16(b);
		break;
	case MCB_DT_Q4_0:
		for (j = 0; j < 16; j++) {
			y[j] = (float)((b[2 + j] & 15) - 8) * rd_f16(b);
			y[j + 16] = (float)((b[2 + j] >> 4) - 8) * rd_f16(b);
		}
		break;
	case MCB_DT_Q4_1:
		*m = rd_f16(b + 2);
		for (j = 0; j < 16; j++) {
			y[j] = (float)(b[4 + j] & 15) * rd_f16(b) + *m;
			y[j + 16] = (float)(b[4 + j] >> 4) * rd_f16(b) + *m;
		}
		break;
	case MCB_DT_Q4_K: {
		const uint8_t *sc = b + 4, *q = b + 16;

		for (j = 0; j < 8; j++) { /* sub-block j: 6-bit scale and min */
			int s6, m6;
			float d1, m1;

			if (j < 4) {
				s6 = sc[j] & 63;
				m6 = sc[j + 4] & 63;
			} else {
				s6 = (sc[j + 4] & 15) | (sc[j - 4] >> 6) << 4;
				m6 = (sc[j + 4] >> 4) | (sc[j] >> 6) << 4;
			}
			d1 = rd_f16(b) * (float)s6;
			m1 = rd_f16(b + 2) * (float)m6;
			for (l = 0; l < 32; l++)
				y[32 * j + l] = d1 * (float)(j % 2 ? q[32 * (j / 2) + l] >> 4
							       : q[32 * (j / 2) + l] & 15) - m1;
		}
		break;
	}
	default: { /* Q6_K: ql[128], qh[64], int8 scales[16], d */
		const uint8_t *ql = b, *qh = b + 128;
		const int8_t *sc = (const int8_t *)(b + 192);
		const float d = rd_f16(b + 208);
		int h;

		for (h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
			for (l = 0; l < 32; l++) {
				is = l / 16;
				y[l] = d * sc[is] * (float)(((ql[l] & 15) | ((qh[l] >> 0) & 3) << 4) - 32);
				y[l + 32] = d * sc[is + 2] *
					    (float)(((ql[l + 32] & 15) | ((qh[l] >> 2) & 3) << 4) - 32);
				y[l + 64] = d * sc[is + 4] * (float)(((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32);
				y[l + 96] = d * sc[is + 6] *
					    (float)(((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32);
			}
		break;
	}
	}
}

static enum mcb_dtype ggml_type_of(const char *s)
{
	return !strcmp(s, "Q4_0") ? MCB_DT_Q4_0 : !strcmp(s, "Q4_1") ? MCB_DT_Q4_1
	       : !strcmp(s, "Q8_0") ? MCB_DT_Q8_0 : !strcmp(s, "Q4_K") ? MCB_DT_Q4_K : MCB_DT_Q6_K;
}

/* the value of a scale tensor entry */
static float scale_value(const struct mcb_tensor *s, int64_t i)
{
	return s->dtype == MCB_DT_F16 ? mcb_f16_to_f32(((const uint16_t *)s->data)[i])
				      : ((const float *)s->data)[i];
}

/* the dequantized weight name (rows, cols) of m, defined from the file's
 * numbers and the record's formulas (qtensor.h): integer codes scale * (q -
 * zero) with groups or g_idx, fp8 scale * e4m3, ggml blocks as ggml
 * dequantizes them, halves widened; and the activation rounding the engine
 * applies to its input in GGML mode */
static struct rlin ref_lin(const struct mcb_model *m, const char *name)
{
	const struct mcb_tensor *t = mcb_model_find(m, name);
	json_t *rec = json_object_get(json_object_get(m->meta, "quant"), name);
	const char *fmt = json_string_value(json_object_get(rec, "format"));
	struct rlin r;
	int64_t i, n;

	memset(&r, 0, sizeof(r));
	r.rows = t->shape[0];
	r.cols = t->shape[1];
	r.act = R_NONE;
	if (json_string_value(json_object_get(rec, "input_scale")))
		memcpy(&r.ascale,
		       mcb_model_find(m, json_string_value(json_object_get(rec, "input_scale")))->data,
		       sizeof(float));
	if (fmt && !strcmp(fmt, "ggml")) {
		const enum mcb_dtype bt =
			ggml_type_of(json_string_value(json_object_get(rec, "ggml_type")));
		const struct mcb_dtype_info *di = mcb_dtype_info(bt);
		int64_t b, nb;

		r.cols = t->shape[1] / di->block_bytes * di->block;
		nb = r.rows * (r.cols / di->block);
		r.w = malloc((size_t)(r.rows * r.cols) * sizeof(float));
		if (bt == MCB_DT_Q4_1)
			r.m1 = malloc((size_t)nb * sizeof(float));
		for (b = 0; b < nb; b++)
			deq_block(bt, (const uint8_t *)t->data + b * di->block_bytes,
				  r.w + b * di->block, r.m1 ? r.m1 + b : NULL);
		r.act = bt == MCB_DT_Q4_1 ? R_Q81 : bt == MCB_DT_Q4_K || bt == MCB_DT_Q6_K ? R_Q8K : R_Q8;
		return r;
	}
	n = r.rows * r.cols;
	r.w = malloc((size_t)n * sizeof(float));
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
	} else if (fmt && !strcmp(fmt, "fp8")) {
		const struct mcb_tensor *s =
			mcb_model_find(m, json_string_value(json_object_get(rec, "scale")));

		for (i = 0; i < n; i++)
			r.w[i] = ((const float *)s->data)[i / r.cols] *
				 e4m3_value(((const uint8_t *)t->data)[i]);
	} else { /* integer codes */
		const struct mcb_tensor *s =
			mcb_model_find(m, json_string_value(json_object_get(rec, "scale")));
		const struct mcb_tensor *z =
			mcb_model_find(m, json_string_value(json_object_get(rec, "zero")) ?
						  json_string_value(json_object_get(rec, "zero")) : "");
		const struct mcb_tensor *gi =
			mcb_model_find(m, json_string_value(json_object_get(rec, "g_idx")) ?
						  json_string_value(json_object_get(rec, "g_idx")) : "");
		const int64_t gs = json_integer_value(json_object_get(rec, "group_size"));
		const int64_t ng = gs ? (r.cols + gs - 1) / gs : 1;

		for (i = 0; i < n; i++) {
			const int64_t row = i / r.cols, col = i % r.cols;
			const int64_t g = row * ng + (gi ? ((const int32_t *)gi->data)[col] : gs ? col / gs : 0);
			const int q = t->dtype == MCB_DT_I8 ? ((const int8_t *)t->data)[i]
							    : ((const uint8_t *)t->data)[i];

			r.w[i] = scale_value(s, g) * (float)(q - (z ? ((const uint8_t *)z->data)[g] : 0));
		}
		/* the split Q8_0 form runs on Q8_0 activations in GGML mode */
		if (json_integer_value(json_object_get(rec, "bits")) == 8 && gs == 32 && !gi && !z &&
		    s->dtype == MCB_DT_F16 && r.cols % 32 == 0)
			r.act = R_Q8;
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
	free(R->embd.m1);
	if (!R->c.tied_embeddings) {
		free(R->out.w);
		free(R->out.m1);
	}
	free(R->out_norm);
	for (l = 0; l < R->c.n_layers; l++) {
		free(R->attn_norm[l]);
		free(R->ffn_norm[l]);
		for (j = 0; j < 7; j++) {
			free(R->lin[l][j].w);
			free(R->lin[l][j].m1);
		}
	}
}

/* x (n,) rounded as ggml feeds a weight of that kind, as doubles:
 * Q8_0 blocks (ggml x86: d = amax/127, codes round-half-even(x * 127/amax),
 * dequantized fp16(d) * code), the same codes for Q8_1 plus its block sums
 * s (n/32,) = fp16(d * sum of codes) with the unrounded d; Q8_K blocks of
 * 256 (max = the first value of largest magnitude, iscale = -127/max, codes
 * min(127, round-half-even(iscale * x)), d = 1/iscale in float); fp16 or
 * bf16 */
static void ref_act(enum ract a, int ggml, const double *x, double *y, int64_t n, double *s)
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
	if (a == R_Q8K) {
		for (b = 0; b < n / 256; b++) {
			float xf[256], amax = 0.0f, mx = 0.0f, is;

			for (j = 0; j < 256; j++) {
				xf[j] = (float)x[b * 256 + j];
				if (fabsf(xf[j]) > amax) {
					amax = fabsf(xf[j]);
					mx = xf[j];
				}
			}
			is = amax != 0.0f ? -127.0f / mx : 0.0f;
			for (j = 0; j < 256; j++) {
				float q = nearbyintf(is * xf[j]);

				y[b * 256 + j] = amax != 0.0f ? (double)(1.0f / is) * (q > 127 ? 127 : q) : 0;
			}
		}
		return;
	}
	for (b = 0; b < n / 32; b++) {
		float xf[32], amax = 0.0f, id, d;
		int sum = 0;

		for (j = 0; j < 32; j++) {
			xf[j] = (float)x[b * 32 + j];
			if (fabsf(xf[j]) > amax)
				amax = fabsf(xf[j]);
		}
		d = mcb_f16_to_f32(mcb_f32_to_f16(amax / 127.0f));
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		for (j = 0; j < 32; j++) {
			y[b * 32 + j] = (double)d * (double)nearbyintf(xf[j] * id);
			sum += (int)nearbyintf(xf[j] * id);
		}
		if (s)
			s[b] = mcb_f16_to_f32(mcb_f32_to_f16(amax / 127.0f * (float)sum));
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
	return pt == MCB_CAPTURE_FFN_DOWN  ? c->hidden_dim
	       : pt == MCB_CAPTURE_ATTN_OUT ? c->n_heads * c->head_dim
					    : c->dim;
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
 * activation to round instead of x (see struct forcing).  A Q4_1 weight
 * w = d q + m meets Q8_1 blocks as ggml computes it: m times the block sum s
 * stands for m times the sum of the block's activations. */
static void ref_matvec(const struct rlin *l, int ggml, const double *x, double *y,
		       const float *fx, struct forcing *f)
{
	double *xa = malloc((size_t)l->cols * sizeof(double)), s;
	double *sb = malloc((size_t)(l->cols / 32 + 1) * sizeof(double));
	int64_t r, c, b;

	if (ggml && fx) {
		for (c = 0; c < l->cols; c++) {
			if (fabs((double)fx[c] - x[c]) > f->drift)
				f->drift = fabs((double)fx[c] - x[c]);
			if (fabs(x[c]) > f->mag)
				f->mag = fabs(x[c]);
			xa[c] = fx[c];
		}
		ref_act(l->act, ggml, xa, xa, l->cols, sb);
	} else {
		ref_act(l->act, ggml, x, xa, l->cols, sb);
	}
	/* W8A8: the int8 grid of the activation scale, computed in float as the
	 * engine must (qtensor.h: vLLM's static per-tensor quantization) */
	for (c = 0; l->ascale > 0 && c < l->cols; c++) {
		float q = nearbyintf((float)xa[c] / l->ascale);

		xa[c] = (double)((q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q) * l->ascale);
	}
	for (r = 0; r < l->rows; r++) {
		for (s = 0, c = 0; c < l->cols; c++)
			s += (double)l->w[r * l->cols + c] * xa[c];
		if (ggml && l->act == R_Q81)
			for (b = 0; b < l->cols / 32; b++) {
				double bsum = 0;

				for (c = 32 * b; c < 32 * b + 32; c++)
					bsum += xa[c];
				s += (double)l->m1[r * (l->cols / 32) + b] * (sb[b] - bsum);
			}
		y[r] = s;
	}
	free(xa);
	free(sb);
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
	const int64_t group = c->n_heads / c->n_kv_heads, qd = c->n_heads * hd;
	double *kc = calloc((size_t)(c->n_layers * n * kvd), sizeof(double));
	double *vc = calloc((size_t)(c->n_layers * n * kvd), sizeof(double));
	double *x = malloc((size_t)d * 8), *xb = malloc((size_t)d * 8), *q = malloc((size_t)qd * 8);
	double *att = malloc((size_t)qd * 8), *tmp = malloc((size_t)(d > h ? d : h) * 8);
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
			for (i = 0; i < qd; i += 2) {
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

/* the record forms of qtensor.h on rows of 64 and 80 (the F16 fallback where
 * a row does not divide into blocks) */
static void test_synthetic_records(void)
{
	static const struct {
		enum rform f;
		const char *name;
	} forms[] = {
		{RF_G4_0, "ggml Q4_0"},	      {RF_G4_1, "ggml Q4_1"},	  {RF_G8_0, "ggml Q8_0"},
		{RF_INT4_ASYM, "int4 asym g32"}, {RF_INT3_GIDX, "int3 g16 g_idx"}, {RF_FP8, "fp8 e4m3"},
		{RF_MIXED, "mixed records"},
	};
	struct mcb_model m, q;
	int32_t ids[40];
	char what[64];
	size_t k;

	synth_model(&m, &synth_cfg, 21);
	make_ids(ids, 40, synth_cfg.vocab_size, 22);
	for (k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
		convert_records(&m, &q, forms[k].f);
		snprintf(what, sizeof(what), "synthetic %s", forms[k].name);
		check_against_ref(&q, MCB_ENGINE_EXACT, ids, 40, what);
		check_against_ref(&q, MCB_ENGINE_GGML, ids, 40, what);
		mcb_model_release(&q);
	}
	mcb_model_release(&m);
}

/* m with every layer weight given the static activation scale s (W8A8:
 * a record {"format": "float", "input_scale": X.input_scale}); zero: the
 * layer weights set to 0 instead. */
static void with_input_scales(const struct mcb_model *src, struct mcb_model *dst, float s,
			      int zero)
{
	json_t *quant = json_object();
	struct mcb_errctx e;
	struct mcb_tensor *o;
	size_t i;

	mcb_model_init(dst);
	strcpy(dst->arch, src->arch);
	dst->cfg = src->cfg;
	json_object_set_new(dst->meta, "quant", quant);
	for (i = 0; i < src->ntensors; i++) {
		const struct mcb_tensor *t = &src->tensors[i];
		int layer = t->ndim == 2 && !strncmp(t->name, "blk.", 4);
		char sn[200];
		int64_t one = 1;

		CHECK_OK(mcb_model_new_tensor(dst, t->name, t->dtype, t->ndim, t->shape, &o, &e), &e);
		if (layer && zero)
			memset(o->data, 0, t->nbytes);
		else
			memcpy(o->data, t->data, t->nbytes);
		if (!layer || zero)
			continue;
		snprintf(sn, sizeof(sn), "%s.input_scale", t->name);
		CHECK_OK(mcb_model_new_tensor(dst, sn, MCB_DT_F32, 1, &one, &o, &e), &e);
		memcpy(o->data, &s, sizeof(s));
		json_object_set_new(quant, t->name,
				    json_pack("{s:s, s:s}", "format", "float", "input_scale", sn));
	}
}

/* W8A8's activations: every layer input on the int8 grid of its scale */
static void test_w8a8_activations(void)
{
	const int64_t n = 24, v = synth_cfg.vocab_size;
	float *a = malloc((size_t)(n * v) * 4), *b = malloc((size_t)(n * v) * 4);
	struct mcb_model m, q, z;
	int32_t ids[24];
	double d;

	synth_model(&m, &synth_cfg, 31);
	make_ids(ids, n, v, 32);
	/* against the reference, which rounds the engine's own inputs (GGML
	 * mode's forcing: a rounding decision cannot differ) */
	with_input_scales(&m, &q, 0.02f, 0);
	check_against_ref(&q, MCB_ENGINE_GGML, ids, n, "synthetic W8A8 (scale 0.02)");
	/* and it changes the logits: the rounding is applied */
	run_engine(&m, MCB_ENGINE_EXACT, 2, 0, ids, n, 1, a, NULL);
	run_engine(&q, MCB_ENGINE_EXACT, 2, 0, ids, n, 1, b, NULL);
	d = max_diff(a, b, n * v);
	printf("  W8A8 scale 0.02 moves the logits by up to %.3g\n", d);
	CHECK(d > 1e-3);
	mcb_model_release(&q);
	/* a scale so large that every input rounds to 0: the layers add
	 * nothing, exactly as with zero weights */
	with_input_scales(&m, &q, 1e30f, 0);
	with_input_scales(&m, &z, 0, 1);
	run_engine(&q, MCB_ENGINE_EXACT, 1, 0, ids, n, 1, a, NULL);
	run_engine(&z, MCB_ENGINE_EXACT, 1, 0, ids, n, 1, b, NULL);
	CHECK(memcmp(a, b, (size_t)(n * v) * 4) == 0);
	mcb_model_release(&q);
	mcb_model_release(&z);
	mcb_model_release(&m);
	free(a), free(b);
}

/* rows of 256 for the K-quants; 100 output rows (not a multiple of 8: Q4_0
 * and Q4_K there are not repacked, the other weights are) */
static const struct mcb_llama_config synth_k_cfg = {
	.dim = 256, .hidden_dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
	.vocab_size = 100, .seq_len = 64, .head_dim = 64, .norm_eps = 1e-5, .rope_theta = 10000.0,
	.tied_embeddings = 0,
};

static void test_synthetic_kquants(void)
{
	static const struct {
		enum rform f;
		const char *name;
	} forms[] = {{RF_G4_K, "ggml Q4_K"}, {RF_G6_K, "ggml Q6_K"}, {RF_G4_0, "ggml Q4_0 (256)"}};
	struct mcb_model m, q;
	int32_t ids[24];
	char what[64];
	size_t k;

	synth_model(&m, &synth_k_cfg, 23);
	make_ids(ids, 24, synth_k_cfg.vocab_size, 24);
	for (k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
		convert_records(&m, &q, forms[k].f);
		snprintf(what, sizeof(what), "synthetic %s", forms[k].name);
		check_against_ref(&q, MCB_ENGINE_EXACT, ids, 24, what);
		check_against_ref(&q, MCB_ENGINE_GGML, ids, 24, what);
		mcb_model_release(&q);
	}
	mcb_model_release(&m);
}

/* heads pruned: n_heads * head_dim (48) below dim (64) */
static void test_pruned_heads(void)
{
	struct mcb_llama_config c = synth_cfg;
	struct mcb_model m, q;
	int32_t ids[24];

	c.n_heads = 3;
	c.n_kv_heads = 1;
	synth_model(&m, &c, 25);
	make_ids(ids, 24, c.vocab_size, 26);
	check_against_ref(&m, MCB_ENGINE_EXACT, ids, 24, "pruned heads F32");
	check_against_ref(&m, MCB_ENGINE_GGML, ids, 24, "pruned heads F32");
	convert_records(&m, &q, RF_G4_0);
	check_against_ref(&q, MCB_ENGINE_GGML, ids, 24, "pruned heads Q4_0");
	mcb_model_release(&q);
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
	static const char *const names[5] = {"F32", "Q8_0", "mixed records", "ggml Q4_K",
					     "ggml Q4_1"};
	struct mcb_model m, mk, ms[5];
	int32_t ids[40];
	const int64_t n = 40;
	float *a = malloc((size_t)(n * 100) * 4), *b = malloc((size_t)(n * 100) * 4);
	int mi, mode, batch, th;

	synth_model(&m, &synth_cfg, 5);
	synth_model(&mk, &synth_k_cfg, 27);
	synth_model(&ms[0], &synth_cfg, 5);
	convert_model(&m, &ms[1], Q_GROUP);
	convert_records(&m, &ms[2], RF_MIXED);
	convert_records(&mk, &ms[3], RF_G4_K);
	convert_records(&m, &ms[4], RF_G4_1);
	for (mi = 0; mi < 5; mi++) {
		const int64_t v = ms[mi].cfg.vocab_size;

		make_ids(ids, n, v, 11);
		for (mode = 0; mode < 2; mode++)
			for (batch = 0; batch < 2; batch++) {
				run_engine(&ms[mi], (enum mcb_engine_mode)mode, 1, 0, ids, n, batch, a, NULL);
				for (th = 1; th <= 3; th++) {
					run_engine(&ms[mi], (enum mcb_engine_mode)mode, th, 0, ids, n, batch,
						   b, NULL);
					if (memcmp(a, b, (size_t)(n * v) * 4))
						mcbt_fail(__FILE__, __LINE__,
							  "%s %s %s: threads %d differ from threads 1 "
							  "(max %.3g)", names[mi], mode ? "ggml" : "exact",
							  batch ? "batch" : "tokens", th, max_diff(a, b, n * v));
				}
			}
		mcb_model_release(&ms[mi]);
	}
	mcb_model_release(&mk);
	mcb_model_release(&m);
	free(a), free(b);
}

/*
 * GGML mode: ggml's kernels differ for one token and for a batch (tinyBLAS
 * and ggml_vec_dot orders, the Q8_K repacking quantizer and the GEMM orders
 * of the repacked types, which take tokens in fours), so only batch splits
 * that keep every token's kernels give equal bits: 24 tokens in one eval =
 * evals of 8, 12 and 4 tokens.  Token by token stays within the tolerance
 * (check_against_ref).
 */
static void test_ggml_batch_splits(void)
{
	struct mcb_model m, mk, q[3];
	struct mcb_engine_opts o = {.threads = 2, .mode = MCB_ENGINE_GGML};
	struct mcb_engine *en;
	struct mcb_errctx e;
	int32_t ids[24];
	float *a = malloc(24 * 100 * 4), *b = malloc(24 * 100 * 4);
	int qi;

	synth_model(&m, &synth_cfg, 6);
	synth_model(&mk, &synth_k_cfg, 28);
	convert_model(&m, &q[0], Q_GROUP);
	convert_records(&mk, &q[1], RF_G4_K);
	convert_records(&mk, &q[2], RF_G4_0);
	for (qi = 0; qi < 3; qi++) {
		const int64_t v = q[qi].cfg.vocab_size;

		make_ids(ids, 24, v, 12);
		run_engine(&q[qi], MCB_ENGINE_GGML, 2, 0, ids, 24, 1, a, NULL);
		CHECK_OK(mcb_engine_new(&q[qi], &o, &en, &e), &e);
		CHECK_OK(mcb_engine_eval(en, ids, 8, b, NULL, &e), &e);
		CHECK_OK(mcb_engine_eval(en, ids + 8, 12, b + 8 * v, NULL, &e), &e);
		CHECK_OK(mcb_engine_eval(en, ids + 20, 4, b + 20 * v, NULL, &e), &e);
		mcb_engine_free(en);
		CHECK(memcmp(a, b, (size_t)(24 * v) * 4) == 0);
		mcb_model_release(&q[qi]);
	}
	mcb_model_release(&mk);
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
	int64_t want = point_cols(c, pt), t, i;

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
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EFORMAT, "must have shape (64, 1)");
	json_object_set_new(json_object_get(json_object_get(q.meta, "quant"), "blk.0.attn_q.weight"),
			    "group_size", json_integer(32));
	CHECK_OK(mcb_engine_new(&q, &o, &en, &e), &e);
	mcb_engine_free(en);
	CHECK_OK(mcb_model_remove(&q, "blk.1.ffn_up.weight.scale"), &e);
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EFORMAT, "blk.1.ffn_up.weight.scale");
	mcb_model_release(&q);
	/* hostile records (qtensor.c checks them all; here: the engine refuses
	 * with the tensor's name) */
	convert_records(&m, &q, RF_INT4_ASYM);
	((uint8_t *)mcb_model_find(&q, "blk.1.ffn_down.weight")->data)[77] = 16;
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EFORMAT,
		  "'blk.1.ffn_down.weight': code 16 at row 0, column 77 is outside 0..15");
	mcb_model_release(&q);
	convert_records(&m, &q, RF_G4_0);
	((uint8_t *)mcb_model_find(&q, "blk.0.attn_k.weight")->data)[18 * 5 + 1] = 0x7c;
	CHECK_ERR(mcb_engine_new(&q, &o, &en, &e), &e, MCB_EFORMAT, "non-finite fp16 scale");
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
	RUN(test_ggml_float_ops_bit_identical);
	RUN(test_ggml_expf);
	RUN(test_gemm_ggml);
	RUN(test_synthetic_f32);
	RUN(test_synthetic_tied);
	RUN(test_synthetic_quantized);
	RUN(test_synthetic_records);
	RUN(test_synthetic_kquants);
	RUN(test_w8a8_activations);
	RUN(test_pruned_heads);
	RUN(test_long_eval_in_chunks);
	RUN(test_threads_bit_identical);
	RUN(test_ggml_batch_splits);
	RUN(test_kv_cache_continuation);
	RUN(test_capture);
	RUN(test_errors);
	RUN(test_refusals);
	RUN(test_load_gguf_q8);
	RUN(test_stories260k);
	RUN(test_sampler);
	return mcbt_done();
}
