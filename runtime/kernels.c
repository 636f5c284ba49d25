/*
 * kernels: the engine's dot products, conversions and dequantizers (contracts
 * in include/mcb/kernels.h).
 *
 * The _ref functions are the oracle: plain loops, sums in double, one
 * rounding to float at the end.  The AVX2 functions (compiled with target
 * attributes and picked at run time, so the binary still runs on any x86-64
 * and elsewhere) keep 8-lane float accumulators updated with FMA and reduce
 * them at the end; they are tested against _ref in tests/unit/test_engine.c.
 *
 * The Q8_0 x Q8_0 dot product follows the published algorithm of ggml's
 * vec_dot_q8_0_q8_0 for AVX2 (ggml-cpu/arch/x86/quants.c), written here from
 * its description: the signed x signed byte product is formed with the
 * unsigned x signed instruction VPMADDUBSW by moving the sign of one operand
 * onto the other (|w| * (x * sign(w))), the 16-bit pair sums are widened
 * with VPMADDWD against ones, and each block's eight int32 partial sums are
 * converted to float and multiplied into the accumulator with the block's
 * scale product.  |w| fits an unsigned byte even for a code of -128 (which
 * mcbuild never writes but a GGUF file may hold), and activation codes lie
 * in [-127, 127], so a pair sum is at most 2 * 128 * 127 = 32512:
 * VPMADDUBSW never saturates and the integer sums are exact.  The float
 * accumulation is ggml's too (one accumulator, blocks in order), so that
 * GGML-mode results agree with llama.cpp's bit for bit for equal inputs.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/kernels.h"
#include "mcb/tensor.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define KERN_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ---- scalar oracle ---- */

static float dot_f32_ref(int64_t n, const float *a, const float *b)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)a[i] * (double)b[i];
	return (float)s;
}

static float dot_f16_f32_ref(int64_t n, const uint16_t *w, const float *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)mcb_f16_to_f32(w[i]) * (double)x[i];
	return (float)s;
}

static float dot_bf16_f32_ref(int64_t n, const uint16_t *w, const float *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)mcb_bf16_to_f32(w[i]) * (double)x[i];
	return (float)s;
}

static float dot_i8_f32_ref(int64_t n, const int8_t *q, float sc, const float *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++) {
		float w = sc * (float)q[i]; /* the dequantized weight: one float rounding */

		s += (double)w * (double)x[i];
	}
	return (float)s;
}

static float dot_q8_0_f32_ref(int64_t n, const int8_t *q, const uint16_t *d, const float *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++) {
		float w = mcb_f16_to_f32(d[i / MCB_QK]) * (float)q[i]; /* exact */

		s += (double)w * (double)x[i];
	}
	return (float)s;
}

static float dot_f16_f16_ref(int64_t n, const uint16_t *w, const uint16_t *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)mcb_f16_to_f32(w[i]) * (double)mcb_f16_to_f32(x[i]);
	return (float)s;
}

static float dot_bf16_bf16_ref(int64_t n, const uint16_t *w, const uint16_t *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)mcb_bf16_to_f32(w[i]) * (double)mcb_bf16_to_f32(x[i]);
	return (float)s;
}

static float dot_q8_0_q8_0_ref(int64_t n, const int8_t *wq, const uint16_t *wd,
			       const int8_t *xq, const uint16_t *xd)
{
	double s = 0.0;
	int64_t b, nb = n / MCB_QK;
	int j;

	for (b = 0; b < nb; b++) {
		int32_t isum = 0;
		/* a product of two halves has at most 22 significant bits: exact */
		float d = mcb_f16_to_f32(wd[b]) * mcb_f16_to_f32(xd[b]);

		for (j = 0; j < MCB_QK; j++)
			isum += (int32_t)wq[b * MCB_QK + j] * (int32_t)xq[b * MCB_QK + j];
		s += (double)d * (double)isum;
	}
	return (float)s;
}

static void gemm_q8_0_q8_0_ref(int64_t n, const int8_t *wq, const uint16_t *wd, int64_t nrows,
			       const int8_t *xq, const uint16_t *xd, int64_t ntok, float *y,
			       int64_t ldy)
{
	int64_t r, t;

	for (r = 0; r < nrows; r++)
		for (t = 0; t < ntok; t++)
			y[t * ldy + r] = dot_q8_0_q8_0_ref(n, wq + r * n, wd + r * (n / MCB_QK),
							   xq + t * n, xd + t * (n / MCB_QK));
}

static void axpy_f32_ref(int64_t n, float a, const float *x, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = (float)((double)y[i] + (double)a * (double)x[i]);
}

/* code of v = x * id: round half to even; NaN, inf (and, impossible for
 * finite input, anything beyond +-127) give 0 */
static int8_t act_code(float v)
{
	float r = nearbyintf(v);

	return fabsf(r) <= 127.0f ? (int8_t)r : 0;
}

static void quantize_act_ref(int64_t n, const float *x, int8_t *q, uint16_t *d)
{
	int64_t b, nb = n / MCB_QK;
	int j;

	for (b = 0; b < nb; b++) {
		const float *xb = x + b * MCB_QK; /* (32,) */
		float amax = 0.0f, a, id;

		for (j = 0; j < MCB_QK; j++) {
			a = fabsf(xb[j]);
			if (a > amax) /* NaN is skipped */
				amax = a;
		}
		d[b] = mcb_f32_to_f16(amax / 127.0f);
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		for (j = 0; j < MCB_QK; j++)
			q[b * MCB_QK + j] = act_code(xb[j] * id);
	}
}

static void f32_to_f16_ref(int64_t n, const float *x, uint16_t *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = mcb_f32_to_f16(x[i]);
}

static void f32_to_bf16_ref(int64_t n, const float *x, uint16_t *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = mcb_f32_to_bf16(x[i]);
}

static void deq_f16_ref(int64_t n, const uint16_t *w, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = mcb_f16_to_f32(w[i]);
}

static void deq_bf16_ref(int64_t n, const uint16_t *w, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = mcb_bf16_to_f32(w[i]);
}

static void deq_i8_ref(int64_t n, const int8_t *q, float s, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = s * (float)q[i];
}

static void deq_q8_0_ref(int64_t n, const int8_t *q, const uint16_t *d, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = mcb_f16_to_f32(d[i / MCB_QK]) * (float)q[i];
}

static const struct mcb_kernels ref_table = {
	.name = "ref",
	.dot_f32 = dot_f32_ref,
	.dot_f16_f32 = dot_f16_f32_ref,
	.dot_bf16_f32 = dot_bf16_f32_ref,
	.dot_i8_f32 = dot_i8_f32_ref,
	.dot_q8_0_f32 = dot_q8_0_f32_ref,
	.dot_f16_f16 = dot_f16_f16_ref,
	.dot_bf16_bf16 = dot_bf16_bf16_ref,
	.dot_q8_0_q8_0 = dot_q8_0_q8_0_ref,
	.gemm_q8_0_q8_0 = gemm_q8_0_q8_0_ref,
	.axpy_f32 = axpy_f32_ref,
	.quantize_act = quantize_act_ref,
	.f32_to_f16 = f32_to_f16_ref,
	.f32_to_bf16 = f32_to_bf16_ref,
	.deq_f16 = deq_f16_ref,
	.deq_bf16 = deq_bf16_ref,
	.deq_i8 = deq_i8_ref,
	.deq_q8_0 = deq_q8_0_ref,
};

const struct mcb_kernels *mcb_kernels_ref(void)
{
	return &ref_table;
}

/* ---- AVX2 + FMA + F16C ---- */

#ifdef KERN_X86
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define Q8_PREFETCH 4096 /* bytes ahead in the weight stream */

static int cpu_has_avx2(void)
{
	unsigned a, b, c, d;

	/* __builtin_cpu_supports("avx2") includes the OS's saving of the ymm
	 * state; F16C is CPUID.1:ECX bit 29 */
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	       __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

AVX2 static inline float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* 8 fp16 -> 8 float */
AVX2 static inline __m256 load_f16(const uint16_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* 8 bf16 -> 8 float (a bf16 is the top half of a float) */
AVX2 static inline __m256 load_bf16(const uint16_t *p)
{
	__m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

/* 8 int8 -> 8 float */
AVX2 static inline __m256 load_i8(const int8_t *p)
{
	__m128i b;

	memcpy(&b, p, 8); /* the upper half is not used */
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}

AVX2 static float dot_f32_avx2(int64_t n, const float *a, const float *b)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
	float t;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
		s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
		s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	t = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		t += a[i] * b[i];
	return t;
}

AVX2 static float dot_f16_f32_avx2(int64_t n, const uint16_t *w, const float *x)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
	float t;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(load_f16(w + i), _mm256_loadu_ps(x + i), s0);
		s1 = _mm256_fmadd_ps(load_f16(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
		s2 = _mm256_fmadd_ps(load_f16(w + i + 16), _mm256_loadu_ps(x + i + 16), s2);
		s3 = _mm256_fmadd_ps(load_f16(w + i + 24), _mm256_loadu_ps(x + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(load_f16(w + i), _mm256_loadu_ps(x + i), s0);
	t = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		t += mcb_f16_to_f32(w[i]) * x[i];
	return t;
}

AVX2 static float dot_bf16_f32_avx2(int64_t n, const uint16_t *w, const float *x)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	int64_t i = 0;
	float t;

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(load_bf16(w + i), _mm256_loadu_ps(x + i), s0);
		s1 = _mm256_fmadd_ps(load_bf16(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(load_bf16(w + i), _mm256_loadu_ps(x + i), s0);
	t = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		t += mcb_bf16_to_f32(w[i]) * x[i];
	return t;
}

AVX2 static float dot_i8_f32_avx2(int64_t n, const int8_t *q, float sc, const float *x)
{
	const __m256 vs = _mm256_set1_ps(sc);
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	int64_t i = 0;
	float t;

	/* w = fl(s * q) first (a separate rounding), then the FMA with x */
	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(_mm256_mul_ps(vs, load_i8(q + i)), _mm256_loadu_ps(x + i), s0);
		s1 = _mm256_fmadd_ps(_mm256_mul_ps(vs, load_i8(q + i + 8)),
				     _mm256_loadu_ps(x + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_mul_ps(vs, load_i8(q + i)), _mm256_loadu_ps(x + i), s0);
	t = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		t += (sc * (float)q[i]) * x[i];
	return t;
}

AVX2 static float dot_q8_0_f32_avx2(int64_t n, const int8_t *q, const uint16_t *d,
				     const float *x)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	int64_t b, nb = n / MCB_QK;

	for (b = 0; b < nb; b++) {
		const __m256 vd = _mm256_set1_ps(_cvtsh_ss(d[b]));
		const int8_t *qb = q + b * MCB_QK;
		const float *xb = x + b * MCB_QK;

		s0 = _mm256_fmadd_ps(_mm256_mul_ps(vd, load_i8(qb)), _mm256_loadu_ps(xb), s0);
		s1 = _mm256_fmadd_ps(_mm256_mul_ps(vd, load_i8(qb + 8)), _mm256_loadu_ps(xb + 8), s1);
		s0 = _mm256_fmadd_ps(_mm256_mul_ps(vd, load_i8(qb + 16)), _mm256_loadu_ps(xb + 16),
				     s0);
		s1 = _mm256_fmadd_ps(_mm256_mul_ps(vd, load_i8(qb + 24)), _mm256_loadu_ps(xb + 24),
				     s1);
	}
	return hsum8(_mm256_add_ps(s0, s1));
}

AVX2 static float dot_f16_f16_avx2(int64_t n, const uint16_t *w, const uint16_t *x)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
	int64_t i = 0;
	float t;

	for (; i + 32 <= n; i += 32) {
		s0 = _mm256_fmadd_ps(load_f16(w + i), load_f16(x + i), s0);
		s1 = _mm256_fmadd_ps(load_f16(w + i + 8), load_f16(x + i + 8), s1);
		s2 = _mm256_fmadd_ps(load_f16(w + i + 16), load_f16(x + i + 16), s2);
		s3 = _mm256_fmadd_ps(load_f16(w + i + 24), load_f16(x + i + 24), s3);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(load_f16(w + i), load_f16(x + i), s0);
	t = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	for (; i < n; i++)
		t += mcb_f16_to_f32(w[i]) * mcb_f16_to_f32(x[i]);
	return t;
}

AVX2 static float dot_bf16_bf16_avx2(int64_t n, const uint16_t *w, const uint16_t *x)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = s0;
	int64_t i = 0;
	float t;

	for (; i + 16 <= n; i += 16) {
		s0 = _mm256_fmadd_ps(load_bf16(w + i), load_bf16(x + i), s0);
		s1 = _mm256_fmadd_ps(load_bf16(w + i + 8), load_bf16(x + i + 8), s1);
	}
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(load_bf16(w + i), load_bf16(x + i), s0);
	t = hsum8(_mm256_add_ps(s0, s1));
	for (; i < n; i++)
		t += mcb_bf16_to_f32(w[i]) * mcb_bf16_to_f32(x[i]);
	return t;
}

/* eight int32 partial sums of the 32 products w[j] * x[j] of one block */
AVX2 static inline __m256i block_isum(const int8_t *w, const int8_t *x)
{
	const __m256i vw = _mm256_loadu_si256((const __m256i *)w);
	const __m256i vx = _mm256_loadu_si256((const __m256i *)x);
	/* |w| (unsigned) times x with w's sign: the product keeps its sign */
	const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(vw, vw), _mm256_sign_epi8(vx, vw));

	return _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
}

/*
 * One accumulator, blocks in order: acc = fma(d_b, float(isum_b), acc), then
 * the 8 lanes summed as (lo + hi), then pairs.  This is the order of ggml's
 * AVX2 vec_dot_q8_0_q8_0 and of llamafile's tinyBLAS_Q0_AVX (which
 * llama.cpp runs for batched Q8_0 matmuls), so the float results agree with
 * llama.cpp bit for bit for equal codes; two accumulators (faster) made
 * stories260K's logits differ from llama.cpp's by up to 0.14, through
 * one-ulp differences that flip later Q8_0 rounding decisions.
 */
AVX2 static float dot_q8_0_q8_0_avx2(int64_t n, const int8_t *wq, const uint16_t *wd,
				      const int8_t *xq, const uint16_t *xd)
{
	__m256 acc = _mm256_setzero_ps();
	int64_t b, nb = n / MCB_QK;

	for (b = 0; b < nb; b++) {
		const __m256 d = _mm256_set1_ps(_cvtsh_ss(wd[b]) * _cvtsh_ss(xd[b]));

		acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(block_isum(wq + b * MCB_QK,
								       xq + b * MCB_QK)), acc);
	}
	return hsum8(acc);
}

/* d[i] = f16(a[i]) * f16(b[i]) for i < 8: exact products of halves */
AVX2 static inline void scale_products8(const uint16_t *a, const uint16_t *b, float *d)
{
	_mm256_storeu_ps(d, _mm256_mul_ps(load_f16(a), load_f16(b)));
}

/* int32 lanes of the block products of w (sign source, |w| given) and x */
AVX2 static inline __m256i block_isum_abs(__m256i aw, __m256i vw, const int8_t *x)
{
	const __m256i vx = _mm256_loadu_si256((const __m256i *)x);

	return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(vx, vw)),
				 _mm256_set1_epi16(1));
}

/*
 * The same per-element chains, several at once.  Each (row, token) pair keeps
 * its own accumulator, updated block by block in order with the same scale
 * products (exact) and the same integer sums as dot_q8_0_q8_0_avx2, so every
 * output has the same bits.  One row against four tokens (prompts: |w| is
 * shared), or two rows against one token (decode: two independent FMA
 * chains hide the latency that bounds a single chain).  The scale products
 * are formed 8 blocks at a time into a small table.
 */
AVX2 static void gemm_q8_0_q8_0_avx2(int64_t n, const int8_t *wq, const uint16_t *wd,
				      int64_t nrows, const int8_t *xq, const uint16_t *xd,
				      int64_t ntok, float *y, int64_t ldy)
{
	const int64_t nb = n / MCB_QK;
	float d[4][8];
	int64_t r = 0, t, b, b8, e;

	for (; r < nrows; r++) {
		const int8_t *w = wq + r * n;
		const uint16_t *dw = wd + r * nb;

		t = 0;
		for (; t + 4 <= ntok; t += 4) {
			const int8_t *x[4] = {xq + t * n, xq + (t + 1) * n, xq + (t + 2) * n,
					      xq + (t + 3) * n};
			const uint16_t *dx[4] = {xd + t * nb, xd + (t + 1) * nb, xd + (t + 2) * nb,
						 xd + (t + 3) * nb};
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
			int k;

			for (b8 = 0; b8 < nb; b8 += 8) {
				e = nb - b8 < 8 ? nb - b8 : 8;
				if (e == 8) {
					for (k = 0; k < 4; k++)
						scale_products8(dw + b8, dx[k] + b8, d[k]);
				} else {
					for (k = 0; k < 4; k++)
						for (b = 0; b < e; b++)
							d[k][b] = _cvtsh_ss(dw[b8 + b]) *
								  _cvtsh_ss(dx[k][b8 + b]);
				}
				for (b = 0; b < e; b++) {
					const int64_t o = (b8 + b) * MCB_QK;
					const __m256i vw = _mm256_loadu_si256((const __m256i *)(w + o));
					const __m256i aw = _mm256_sign_epi8(vw, vw);

					a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[0][b]),
							     _mm256_cvtepi32_ps(block_isum_abs(aw, vw, x[0] + o)), a0);
					a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[1][b]),
							     _mm256_cvtepi32_ps(block_isum_abs(aw, vw, x[1] + o)), a1);
					a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[2][b]),
							     _mm256_cvtepi32_ps(block_isum_abs(aw, vw, x[2] + o)), a2);
					a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&d[3][b]),
							     _mm256_cvtepi32_ps(block_isum_abs(aw, vw, x[3] + o)), a3);
				}
			}
			y[t * ldy + r] = hsum8(a0);
			y[(t + 1) * ldy + r] = hsum8(a1);
			y[(t + 2) * ldy + r] = hsum8(a2);
			y[(t + 3) * ldy + r] = hsum8(a3);
		}
		if (t < ntok && ntok < 4 && r + 1 < nrows) {
			/* rows r and r + 1 against each token */
			const int8_t *w1 = w + n;
			const uint16_t *dw1 = dw + nb;

			for (; t < ntok; t++) {
				const int8_t *x = xq + t * n;
				const uint16_t *dx = xd + t * nb;
				__m256 a0 = _mm256_setzero_ps(), a1 = a0;

				for (b8 = 0; b8 < nb; b8 += 8) {
					e = nb - b8 < 8 ? nb - b8 : 8;
					if (e == 8) {
						scale_products8(dw + b8, dx + b8, d[0]);
						scale_products8(dw1 + b8, dx + b8, d[1]);
					} else {
						for (b = 0; b < e; b++) {
							d[0][b] = _cvtsh_ss(dw[b8 + b]) * _cvtsh_ss(dx[b8 + b]);
							d[1][b] = _cvtsh_ss(dw1[b8 + b]) * _cvtsh_ss(dx[b8 + b]);
						}
					}
					for (b = 0; b < e; b++) {
						const int64_t o = (b8 + b) * MCB_QK;
						const __m256i v0 = _mm256_loadu_si256((const __m256i *)(w + o));
						const __m256i v1 = _mm256_loadu_si256((const __m256i *)(w1 + o));

						/* the weights stream from memory once per token:
						 * ask for them early (measured: 12 -> 22 GB/s on
						 * one core of the bench machine) */
						_mm_prefetch((const char *)(w + o) + Q8_PREFETCH, _MM_HINT_T0);
						_mm_prefetch((const char *)(w1 + o) + Q8_PREFETCH, _MM_HINT_T0);

						a0 = _mm256_fmadd_ps(
							_mm256_broadcast_ss(&d[0][b]),
							_mm256_cvtepi32_ps(block_isum_abs(
								_mm256_sign_epi8(v0, v0), v0, x + o)), a0);
						a1 = _mm256_fmadd_ps(
							_mm256_broadcast_ss(&d[1][b]),
							_mm256_cvtepi32_ps(block_isum_abs(
								_mm256_sign_epi8(v1, v1), v1, x + o)), a1);
					}
				}
				y[t * ldy + r] = hsum8(a0);
				y[t * ldy + r + 1] = hsum8(a1);
			}
			r++; /* both rows done */
			continue;
		}
		for (; t < ntok; t++)
			y[t * ldy + r] = dot_q8_0_q8_0_avx2(n, w, dw, xq + t * n, xd + t * nb);
	}
}

AVX2 static void axpy_f32_avx2(int64_t n, float a, const float *x, float *y)
{
	const __m256 va = _mm256_set1_ps(a);
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i),
							_mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] = fmaf(a, x[i], y[i]);
}

AVX2 static inline __m256 abs8(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* codes of 8 lanes of v = x * id: round half to even, as int32; NaN and
 * inf become INT32_MIN, which the packing saturates to -128 (-> 0 below) */
AVX2 static inline __m256i act_code8(__m256 v)
{
	return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

AVX2 static void quantize_act_avx2(int64_t n, const float *x, int8_t *q, uint16_t *d)
{
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	int64_t b, nb = n / MCB_QK;

	for (b = 0; b < nb; b++) {
		const float *xb = x + b * MCB_QK;
		__m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
		__m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
		/* max|x| skipping NaN: VMAXPS returns its second operand when
		 * either is NaN, and the running maximum is the second operand */
		__m256 m = _mm256_max_ps(abs8(v0), _mm256_setzero_ps());
		__m128 h;
		float amax, id;
		__m256i p;

		m = _mm256_max_ps(abs8(v1), m);
		m = _mm256_max_ps(abs8(v2), m);
		m = _mm256_max_ps(abs8(v3), m);
		h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_movehdup_ps(h));
		amax = _mm_cvtss_f32(h);
		d[b] = _cvtss_sh(amax / 127.0f, _MM_FROUND_TO_NEAREST_INT);
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		{
			const __m256 vid = _mm256_set1_ps(id);
			__m256i c0 = act_code8(_mm256_mul_ps(v0, vid));
			__m256i c1 = act_code8(_mm256_mul_ps(v1, vid));
			__m256i c2 = act_code8(_mm256_mul_ps(v2, vid));
			__m256i c3 = act_code8(_mm256_mul_ps(v3, vid));

			/* packs work per 128-bit half; the permutation restores order */
			p = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
			p = _mm256_permutevar8x32_epi32(p, perm);
			p = _mm256_andnot_si256(_mm256_cmpeq_epi8(p, _mm256_set1_epi8(-128)), p);
			_mm256_storeu_si256((__m256i *)(q + b * MCB_QK), p);
		}
	}
}

AVX2 static void f32_to_f16_avx2(int64_t n, const float *x, uint16_t *y)
{
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
	for (; i < n; i++)
		y[i] = mcb_f32_to_f16(x[i]);
}

AVX2 static void deq_f16_avx2(int64_t n, const uint16_t *w, float *y)
{
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, load_f16(w + i));
	for (; i < n; i++)
		y[i] = mcb_f16_to_f32(w[i]);
}

AVX2 static void deq_bf16_avx2(int64_t n, const uint16_t *w, float *y)
{
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, load_bf16(w + i));
	for (; i < n; i++)
		y[i] = mcb_bf16_to_f32(w[i]);
}

AVX2 static void deq_i8_avx2(int64_t n, const int8_t *q, float s, float *y)
{
	const __m256 vs = _mm256_set1_ps(s);
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(vs, load_i8(q + i)));
	for (; i < n; i++)
		y[i] = s * (float)q[i];
}

AVX2 static void deq_q8_0_avx2(int64_t n, const int8_t *q, const uint16_t *d, float *y)
{
	int64_t b, nb = n / MCB_QK;
	int j;

	for (b = 0; b < nb; b++) {
		const __m256 vd = _mm256_set1_ps(_cvtsh_ss(d[b]));

		for (j = 0; j < MCB_QK; j += 8)
			_mm256_storeu_ps(y + b * MCB_QK + j,
					 _mm256_mul_ps(vd, load_i8(q + b * MCB_QK + j)));
	}
}

static const struct mcb_kernels avx2_table = {
	.name = "avx2",
	.dot_f32 = dot_f32_avx2,
	.dot_f16_f32 = dot_f16_f32_avx2,
	.dot_bf16_f32 = dot_bf16_f32_avx2,
	.dot_i8_f32 = dot_i8_f32_avx2,
	.dot_q8_0_f32 = dot_q8_0_f32_avx2,
	.dot_f16_f16 = dot_f16_f16_avx2,
	.dot_bf16_bf16 = dot_bf16_bf16_avx2,
	.dot_q8_0_q8_0 = dot_q8_0_q8_0_avx2,
	.gemm_q8_0_q8_0 = gemm_q8_0_q8_0_avx2,
	.axpy_f32 = axpy_f32_avx2,
	.quantize_act = quantize_act_avx2,
	.f32_to_f16 = f32_to_f16_avx2,
	.f32_to_bf16 = f32_to_bf16_ref, /* rare (GGML mode with BF16 weights) */
	.deq_f16 = deq_f16_avx2,
	.deq_bf16 = deq_bf16_avx2,
	.deq_i8 = deq_i8_avx2,
	.deq_q8_0 = deq_q8_0_avx2,
};
#endif /* KERN_X86 */

const struct mcb_kernels *mcb_kernels_avx2(void)
{
#ifdef KERN_X86
	static atomic_int have = -1; /* cached: cpuid can trap to the hypervisor */
	int v = atomic_load_explicit(&have, memory_order_relaxed);

	if (v < 0) {
		v = cpu_has_avx2();
		atomic_store_explicit(&have, v, memory_order_relaxed);
	}
	return v ? &avx2_table : NULL;
#else
	return NULL;
#endif
}

const struct mcb_kernels *mcb_kernels(void)
{
	const char *env = getenv("MCB_KERNELS");
	const struct mcb_kernels *k;

	if (env && !strcmp(env, "ref"))
		return &ref_table;
	k = mcb_kernels_avx2();
	return k ? k : &ref_table;
}
