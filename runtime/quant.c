/*
 * quant: Q8_0 and per-channel RTN int8 kernels, integer group quantization
 * (GPTQ's quantizer), FP8 E4M3 and the GPTQ/AWQ checkpoint packings
 * (contracts in include/mcb/quant.h; ggml's other block formats live in
 * runtime/quant_ggml.c).
 *
 * Each format has a scalar _ref function, the oracle, written from the
 * published definition (ggml quantize_row_q8_0_ref for Q8_0).  The optimized
 * paths use AVX2 and F16C through function attributes and are picked at run
 * time (AVX2 from __builtin_cpu_supports, F16C from cpuid), so the binary
 * still runs on older x86-64 and on other architectures, where the _ref loop
 * is used.  They compute the same correctly rounded products and quotients
 * as _ref (x * id, w / s, amax / 127, 1 / d), the same exact maxima, and
 * integer roundings proven (and for Q8_0 exhaustively checked) to give the
 * same integers, so the results are identical bit for bit for every input;
 * tests/unit/test_quant.c checks that on random and adversarial data.  No
 * FMA is enabled: a fused multiply-add would round differently.  Like
 * nearbyintf in _ref, everything assumes the default rounding mode.
 *
 * fp16 helpers are local (no dependency on tensor.c): round to nearest even,
 * overflow to infinity, subnormal halves produced and read exactly, as
 * ggml's GGML_FP32_TO_FP16 (and the F16C instruction VCVTPS2PH) do.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "mcb/err.h"
#include "mcb/quant.h"

/* -DMCB_QUANT_NO_SIMD builds the portable paths only (to test them on x86) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(MCB_QUANT_NO_SIMD)
#define MCB_QUANT_X86 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* fp32 -> binary16, round to nearest even.  |f| >= 65520 (the midpoint
 * between 65504 and 65536) gives infinity; NaN stays a quiet NaN with the top
 * payload bits kept. */
static uint16_t fp32_to_fp16(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t sign = (u >> 16) & 0x8000u;
	uint32_t a = u & 0x7fffffffu; /* |f| */
	uint32_t e = a >> 23, m, h, rem, half;
	unsigned shift;

	if (a > 0x7f800000u) /* NaN */
		return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
	if (a >= 0x477ff000u) /* >= 65520.0f, or inf */
		return (uint16_t)(sign | 0x7c00u);
	if (a >= 0x38800000u) { /* >= 2^-14: normal half; rebias exponent 127 -> 15 */
		h = (a >> 13) - (112u << 10);
		rem = a & 0x1fffu;
		if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
			h++; /* a carry into the exponent is correct */
		return (uint16_t)(sign | h);
	}
	/* Subnormal half: count units of 2^-24.  |f| = m * 2^(e-150) with the
	 * implicit bit, i.e. m * 2^(e-126) units.  Below e = 102 the value is
	 * under half a unit (and float denormals, e = 0, are far below). */
	if (e < 102)
		return (uint16_t)sign;
	m = (a & 0x7fffffu) | 0x800000u;
	shift = 126 - e; /* 14..24 */
	h = m >> shift;
	rem = m & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (h & 1u)))
		h++; /* may become 0x400, the smallest normal: still correct */
	return (uint16_t)(sign | h);
}

/* binary16 -> fp32, exact. */
static float fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
	uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
	float f;

	if (e == 0) {
		f = (float)m * 0x1p-24f; /* exact: m < 2^10 */
		return sign ? -f : f;
	}
	if (e == 31)
		return bits_f32(sign | 0x7f800000u | (m << 13));
	return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

/* Q8_0 code of v = x * id: roundf(v) (halves away from zero).  For finite
 * input |roundf(v)| <= 127 always holds (|x| <= amax, amax * id rounds to
 * 127 within a few ulps); anything else (NaN, inf: non-finite input only)
 * becomes 0 instead of ggml's undefined conversion. */
static int8_t q8_code(float v)
{
	float r = roundf(v);

	return fabsf(r) <= 127.0f ? (int8_t)r : 0;
}

/* RTN code of v = w / scale: round half to even (current rounding mode, the
 * default being nearest-even), clamped to [-127, 127]; NaN gives 0. */
static int8_t rtn_code(float v)
{
	float r = nearbyintf(v);

	if (isnan(r))
		return 0;
	if (r > 127.0f)
		return 127;
	if (r < -127.0f)
		return -127;
	return (int8_t)r;
}

void mcb_quantize_row_q8_0_ref(const float *x, struct mcb_block_q8_0 *y, int64_t k)
{
	int64_t nb = k / MCB_QK8_0, i;
	int j;

	assert(k % MCB_QK8_0 == 0);
	for (i = 0; i < nb; i++) {
		const float *xb = x + i * MCB_QK8_0; /* (32,) */
		float amax = 0.0f, d, id, a;

		for (j = 0; j < MCB_QK8_0; j++) {
			a = fabsf(xb[j]);
			if (a > amax) /* equals ggml's MAX for numbers; NaN is skipped */
				amax = a;
		}
		d = amax / 127.0f;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		y[i].d = fp32_to_fp16(d);
		for (j = 0; j < MCB_QK8_0; j++)
			y[i].qs[j] = q8_code(xb[j] * id);
	}
}

void mcb_dequantize_row_q8_0_ref(const struct mcb_block_q8_0 *x, float *y, int64_t k)
{
	int64_t nb = k / MCB_QK8_0, i;
	int j;

	assert(k % MCB_QK8_0 == 0);
	for (i = 0; i < nb; i++) {
		float d = fp16_to_fp32(x[i].d);

		for (j = 0; j < MCB_QK8_0; j++)
			y[i * MCB_QK8_0 + j] = (float)x[i].qs[j] * d;
	}
}

void mcb_rtn_int8_channel_ref(const float *w, int64_t rows, int64_t cols, int8_t *q,
			      float *scale)
{
	int64_t r, c;

	for (r = 0; r < rows; r++) {
		const float *wr = w + r * cols; /* (cols,) */
		int8_t *qr = q + r * cols;
		float amax = 0.0f, s, a;

		for (c = 0; c < cols; c++) {
			a = fabsf(wr[c]);
			if (a > amax) /* NaN is skipped */
				amax = a;
		}
		s = amax / 127.0f;
		scale[r] = s;
		for (c = 0; c < cols; c++)
			qr[c] = s != 0.0f ? rtn_code(wr[c] / s) : 0;
	}
}

#ifdef MCB_QUANT_X86
#define AVX2 __attribute__((target("avx2,f16c")))

/* 1 when the CPU and OS support AVX2 and F16C.  __builtin_cpu_supports
 * checks AVX2 including the OS's saving of the ymm state; F16C (CPUID.1:ECX
 * bit 29) is read with cpuid because not every compiler knows the "f16c"
 * name.  Cached: cpuid can trap to the hypervisor in a VM. */
static int have_avx2(void)
{
	static atomic_int cached; /* 0 unknown, 1 no, 2 yes */
	int v = atomic_load_explicit(&cached, memory_order_relaxed);
	unsigned a, b, c, d;

	if (v == 0) {
		v = 1;
		if (__builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) &&
		    (c & (1u << 29)))
			v = 2;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v == 2;
}

AVX2 static inline __m256 abs8(__m256 v)
{
	return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

/* max over the 8 lanes of v (no NaN in v) */
AVX2 static inline float hmax1(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
	return _mm_cvtss_f32(m);
}

/* m[0..7] (no NaN) -> lane b = max over the lanes of m[b] */
AVX2 static inline __m256 hmax8(const __m256 *m)
{
	/* per 128-bit half: [max(A0,A2), max(B0,B2), max(A1,A3), max(B1,B3)] */
	__m256 ab = _mm256_max_ps(_mm256_unpacklo_ps(m[0], m[1]), _mm256_unpackhi_ps(m[0], m[1]));
	__m256 cd = _mm256_max_ps(_mm256_unpacklo_ps(m[2], m[3]), _mm256_unpackhi_ps(m[2], m[3]));
	__m256 ef = _mm256_max_ps(_mm256_unpacklo_ps(m[4], m[5]), _mm256_unpackhi_ps(m[4], m[5]));
	__m256 gh = _mm256_max_ps(_mm256_unpacklo_ps(m[6], m[7]), _mm256_unpackhi_ps(m[6], m[7]));
	/* per half: [A, B, C, D] over that half's 4 lanes */
	__m256 lo = _mm256_max_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
				  _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
	__m256 hi = _mm256_max_ps(_mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(1, 0, 1, 0)),
				  _mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(3, 2, 3, 2)));

	return _mm256_max_ps(_mm256_permute2f128_ps(lo, hi, 0x20),
			     _mm256_permute2f128_ps(lo, hi, 0x31));
}

/* max|x| over one block of 32, skipping NaN exactly as the scalar loop does:
 * _mm256_max_ps(a, b) returns b when either is NaN, and b is the running
 * maximum (never NaN). */
AVX2 static inline __m256 blockmax(const float *xb)
{
	__m256 acc = _mm256_max_ps(abs8(_mm256_loadu_ps(xb)), _mm256_setzero_ps());

	acc = _mm256_max_ps(abs8(_mm256_loadu_ps(xb + 8)), acc);
	acc = _mm256_max_ps(abs8(_mm256_loadu_ps(xb + 16)), acc);
	return _mm256_max_ps(abs8(_mm256_loadu_ps(xb + 24)), acc);
}

/*
 * q8_code on 8 lanes of v = x * id, as int32.  roundf(v) equals
 * trunc(v + copysign(0.49999997f, v)) for every finite float under
 * round-to-nearest (checked exhaustively over all 2^32 inputs): the addend is
 * the float just below 1/2, so exact halves still reach the next integer
 * while values just below a half do not.  The truncating conversion turns
 * NaN and inf into INT32_MIN, which pack_codes32 saturates to -128 and
 * fix_invalid maps to 0.  No input yields a finite |v| >= 127.5 (|x| <= amax
 * and amax * id is 127 within a few ulps; when 1/d overflows, v is inf or
 * NaN), so this matches q8_code's "0 unless |roundf(v)| <= 127" exactly.
 */
AVX2 static inline __m256i q8_code8(__m256 v)
{
	__m256 h = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)),
				_mm256_set1_ps(0x1.fffffep-2f));

	return _mm256_cvttps_epi32(_mm256_add_ps(v, h));
}

/* four int32 vectors (codes of elements 0-7, 8-15, 16-23, 24-31) -> 32
 * int8 with signed saturation, in element order.  A lane holding INT32_MIN
 * (invalid) becomes -128, which valid codes never are. */
AVX2 static inline __m256i pack_codes32(__m256i c0, __m256i c1, __m256i c2, __m256i c3)
{
	/* packs work per 128-bit half: the bytes end up as 4-byte groups
	 * c0[0:4] c1[0:4] c2[0:4] c3[0:4] c0[4:8] c1[4:8] c2[4:8] c3[4:8] */
	__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));

	return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* -128 (an invalid lane) -> 0 */
AVX2 static inline __m256i fix_invalid(__m256i p)
{
	return _mm256_andnot_si256(_mm256_cmpeq_epi8(p, _mm256_set1_epi8(-128)), p);
}

AVX2 static inline void q8_block_codes(const float *xb, __m256 id, unsigned char *out)
{
	__m256i p = pack_codes32(q8_code8(_mm256_mul_ps(_mm256_loadu_ps(xb), id)),
				 q8_code8(_mm256_mul_ps(_mm256_loadu_ps(xb + 8), id)),
				 q8_code8(_mm256_mul_ps(_mm256_loadu_ps(xb + 16), id)),
				 q8_code8(_mm256_mul_ps(_mm256_loadu_ps(xb + 24), id)));

	_mm256_storeu_si256((__m256i *)out, fix_invalid(p));
}

/*
 * Q8_0 of nb blocks of x (nb*32,).  Block i's 32 codes go to
 * qout + i*qstride and its fp16 scale to dout + i*dstride (byte strides, so
 * one kernel serves the 34-byte block struct and the split form).  Eight
 * blocks at a time so that the two divisions and the fp16 conversion run on
 * full vectors.
 */
AVX2 static void q8_0_avx2(const float *x, int64_t nb, unsigned char *qout, size_t qstride,
			   unsigned char *dout, size_t dstride)
{
	const __m256 k127 = _mm256_set1_ps(127.0f), one = _mm256_set1_ps(1.0f);
	int64_t i = 0;
	int b;

	for (; i + 8 <= nb; i += 8) {
		__m256 am[8], d, id;
		uint16_t dh[8];
		float idv[8];

		for (b = 0; b < 8; b++)
			am[b] = blockmax(x + (i + b) * MCB_QK8_0);
		d = _mm256_div_ps(hmax8(am), k127);
		/* d ? 1/d : 0 (1/0 = inf is masked away) */
		id = _mm256_and_ps(_mm256_div_ps(one, d),
				   _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_OQ));
		_mm_storeu_si128((__m128i *)dh, _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
		_mm256_storeu_ps(idv, id);
		for (b = 0; b < 8; b++) {
			memcpy(dout + (size_t)(i + b) * dstride, &dh[b], sizeof(uint16_t));
			q8_block_codes(x + (i + b) * MCB_QK8_0, _mm256_set1_ps(idv[b]),
				       qout + (size_t)(i + b) * qstride);
		}
	}
	for (; i < nb; i++) {
		float d = hmax1(blockmax(x + i * MCB_QK8_0)) / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint16_t dh = fp32_to_fp16(d);

		memcpy(dout + (size_t)i * dstride, &dh, sizeof(dh));
		q8_block_codes(x + i * MCB_QK8_0, _mm256_set1_ps(id), qout + (size_t)i * qstride);
	}
}

/* rtn_code on 8 lanes of v = w / s, as int32.  Clamping before rounding
 * gives the same integers (the bounds are integral and both maps are
 * monotone); max/min take v as the second operand so that NaN survives and
 * the conversion, which rounds in the current mode as nearbyintf does,
 * turns it into INT32_MIN, i.e. invalid (-> 0 after packing). */
AVX2 static inline __m256i rtn_code8(__m256 v)
{
	v = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-127.0f), v));
	return _mm256_cvtps_epi32(v);
}

/* One row of RTN int8: wr (cols,) -> qr (cols,), *scale_out.  The division
 * is kept (w / s, as _ref): on the CPUs measured, multiplying by 1/s with
 * an exactness fix-up for near-halves was no faster. */
AVX2 static void rtn_row_avx2(const float *wr, int64_t cols, int8_t *qr, float *scale_out)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, vs;
	float amax, s, a;
	int64_t c = 0;
	__m256i p;

	/* max|w| skipping NaN: the running maximum is the second operand */
	for (; c + 32 <= cols; c += 32) {
		a0 = _mm256_max_ps(abs8(_mm256_loadu_ps(wr + c)), a0);
		a1 = _mm256_max_ps(abs8(_mm256_loadu_ps(wr + c + 8)), a1);
		a2 = _mm256_max_ps(abs8(_mm256_loadu_ps(wr + c + 16)), a2);
		a3 = _mm256_max_ps(abs8(_mm256_loadu_ps(wr + c + 24)), a3);
	}
	for (; c + 8 <= cols; c += 8)
		a0 = _mm256_max_ps(abs8(_mm256_loadu_ps(wr + c)), a0);
	amax = hmax1(_mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3)));
	for (; c < cols; c++) {
		a = fabsf(wr[c]);
		if (a > amax)
			amax = a;
	}
	s = amax / 127.0f;
	*scale_out = s;
	if (s == 0.0f) {
		memset(qr, 0, (size_t)cols);
		return;
	}
	vs = _mm256_set1_ps(s);
	for (c = 0; c + 32 <= cols; c += 32) {
		p = pack_codes32(rtn_code8(_mm256_div_ps(_mm256_loadu_ps(wr + c), vs)),
				 rtn_code8(_mm256_div_ps(_mm256_loadu_ps(wr + c + 8), vs)),
				 rtn_code8(_mm256_div_ps(_mm256_loadu_ps(wr + c + 16), vs)),
				 rtn_code8(_mm256_div_ps(_mm256_loadu_ps(wr + c + 24), vs)));
		_mm256_storeu_si256((__m256i *)(qr + c), fix_invalid(p));
	}
	for (; c < cols; c++)
		qr[c] = rtn_code(wr[c] / s);
}

/* index of the first non-finite value in x (n,), or -1 */
AVX2 static int64_t first_nonfinite_avx2(const float *x, int64_t n)
{
	const __m256 big = _mm256_set1_ps(3.40282347e+38f); /* FLT_MAX */
	int64_t i = 0;

	for (; i + 32 <= n; i += 32) {
		/* |x| <= FLT_MAX is false exactly for inf and NaN */
		__m256 ok = _mm256_and_ps(
			_mm256_and_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i)), big, _CMP_LE_OQ),
				      _mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i + 8)), big, _CMP_LE_OQ)),
			_mm256_and_ps(_mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i + 16)), big, _CMP_LE_OQ),
				      _mm256_cmp_ps(abs8(_mm256_loadu_ps(x + i + 24)), big, _CMP_LE_OQ)));

		if (_mm256_movemask_ps(ok) != 0xff)
			break;
	}
	for (; i < n; i++)
		if (!isfinite(x[i]))
			return i;
	return -1;
}
#endif /* MCB_QUANT_X86 */

void mcb_quantize_row_q8_0(const float *x, struct mcb_block_q8_0 *y, int64_t k)
{
	assert(k % MCB_QK8_0 == 0);
#ifdef MCB_QUANT_X86
	if (have_avx2()) {
		unsigned char *base = (unsigned char *)y;

		q8_0_avx2(x, k / MCB_QK8_0, base + offsetof(struct mcb_block_q8_0, qs),
			  sizeof(*y), base + offsetof(struct mcb_block_q8_0, d), sizeof(*y));
		return;
	}
#endif
	mcb_quantize_row_q8_0_ref(x, y, k);
}

void mcb_quantize_row_q8_0_split(const float *x, int8_t *q, uint16_t *d, int64_t k)
{
	int64_t nb = k / MCB_QK8_0, i;
	struct mcb_block_q8_0 blk;

	assert(k % MCB_QK8_0 == 0);
#ifdef MCB_QUANT_X86
	if (have_avx2()) {
		q8_0_avx2(x, nb, (unsigned char *)q, MCB_QK8_0, (unsigned char *)d,
			  sizeof(uint16_t));
		return;
	}
#endif
	for (i = 0; i < nb; i++) {
		mcb_quantize_row_q8_0_ref(x + i * MCB_QK8_0, &blk, MCB_QK8_0);
		d[i] = blk.d;
		memcpy(q + i * MCB_QK8_0, blk.qs, MCB_QK8_0);
	}
}

void mcb_rtn_int8_channel(const float *w, int64_t rows, int64_t cols, int8_t *q, float *scale)
{
#ifdef MCB_QUANT_X86
	if (have_avx2()) {
		int64_t r;

		for (r = 0; r < rows; r++)
			rtn_row_avx2(w + r * cols, cols, q + r * cols, &scale[r]);
		return;
	}
#endif
	mcb_rtn_int8_channel_ref(w, rows, cols, q, scale);
}

int mcb_check_finite(const float *x, int64_t n, int64_t *bad_index)
{
	int64_t i = -1, j;

#ifdef MCB_QUANT_X86
	if (have_avx2()) {
		i = first_nonfinite_avx2(x, n);
	} else
#endif
	{
		for (j = 0; j < n; j++)
			if (!isfinite(x[j])) {
				i = j;
				break;
			}
	}
	if (i < 0)
		return 0;
	if (bad_index)
		*bad_index = i;
	return MCB_ERANGE;
}

int mcb_require_finite(const float *x, int64_t n, const char *fn, const char *what,
		       struct mcb_errctx *e)
{
	int64_t bad;

	if (!mcb_check_finite(x, n, &bad))
		return 0;
	return mcb_errf(e, MCB_ERANGE, "%s: %s[%lld] is %g (not finite)", fn, what,
			(long long)bad, (double)x[bad]);
}

/* ---- issue 4: integer group quantization, FP8 E4M3, checkpoint packings ---- */

/*
 * Integer group quantization (GPTQ's quantizer, contract in quant.h).  The
 * portable path is the oracle: per group, intq_range (exact min and max,
 * NaN skipped), intq_from_range (scale and zero) and intq_code per element;
 * mcb_intq_params and mcb_intq_codes are exactly these.  The AVX2 path
 * computes the same numbers with:
 *   - min/max with vminps/vmaxps, the running value as the second operand
 *     (returned when either operand is NaN, so NaN is skipped as in the
 *     scalar comparisons; the accumulators start at +0 and never become -0,
 *     as in the scalar loop);
 *   - scale and zero from intq_from_range itself, or for 8 groups at once
 *     from intq_from_range8, the same operations lane by lane;
 *   - codes: v = x / s (the same correctly rounded division), NaN -> 0,
 *     clamped to [-zero, maxq - zero] and converted with vcvtps2dq, which
 *     rounds to nearest even in the default mode as nearbyintf does.
 *     Clamping before rounding gives the same integers as rounding before
 *     clamping (integral bounds, monotone maps), and a NaN quotient gives
 *     the zero point in both paths.
 * tests/unit/test_quant.c checks the paths agree bit for bit on random and
 * adversarial data (NaN, infinities, denormals, exact halves).
 */

/* The fp16 value nearest f (ties to even), as a float. */
static float fp16_round(float f)
{
	return fp16_to_fp32(fp32_to_fp16(f));
}

/* xmin = min(min x, 0), xmax = max(max x, 0) over x (n,), NaN skipped. */
static void intq_range(const float *x, int64_t n, float *xmin, float *xmax)
{
	float lo = 0.0f, hi = 0.0f;
	int64_t i;

	for (i = 0; i < n; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
	}
	*xmin = lo;
	*xmax = hi;
}

/*
 * GPTQ find_params on one group's range (xmin <= 0 <= xmax, no NaN):
 * symmetric keeps xmin = 0 when no value is negative (GPTQ's behaviour);
 * both 0 -> (-1, +1).  The zero point is taken from the float32 scale (as
 * GPTQ computes it); the scale returned is rounded to fp16 when asked.  A
 * zero scale (an underflowed range) gets the zero point its sign implies
 * instead of a division by zero.
 */
static void intq_from_range(float xmin, float xmax, const struct mcb_intq_params *p,
			    float *scale, int *zero)
{
	int maxq = (1 << p->bits) - 1;
	float s, z;

	if (p->symmetric) {
		if (-xmin > xmax)
			xmax = -xmin;
		if (xmin < 0.0f)
			xmin = -xmax;
	}
	if (xmin == 0.0f && xmax == 0.0f) {
		xmin = -1.0f;
		xmax = 1.0f;
	}
	s = (xmax - xmin) / (float)maxq;
	if (p->symmetric) {
		*zero = (maxq + 1) / 2;
	} else if (s == 0.0f) {
		*zero = xmin < 0.0f ? maxq : 0;
	} else {
		z = rintf(-xmin / s); /* as nearbyintf; NaN only for an infinite range: 0 */
		*zero = z >= (float)maxq ? maxq : z > 0.0f ? (int)z : 0;
	}
	*scale = p->fp16_scale ? fp16_round(s) : s;
}

/* Code of x for a nonzero scale s: clamp(round-half-even(x / s) + zero,
 * 0, maxq); a NaN quotient (non-finite input) gives zero. */
static uint8_t intq_code(float x, float s, int zero, int maxq)
{
	float v = x / s, r;

	if (isnan(v))
		return (uint8_t)zero;
	r = nearbyintf(v) + (float)zero; /* exact below 2^24; beyond, clamped anyway */
	if (r <= 0.0f)
		return 0;
	if (r >= (float)maxq)
		return (uint8_t)maxq;
	return (uint8_t)r;
}

void mcb_intq_params(const float *x, int64_t n, const struct mcb_intq_params *p, float *scale,
		     int *zero)
{
	float xmin, xmax;

	assert(p->bits >= 2 && p->bits <= 8);
	intq_range(x, n, &xmin, &xmax);
	intq_from_range(xmin, xmax, p, scale, zero);
}

void mcb_intq_codes(const float *x, int64_t n, const struct mcb_intq_params *p, float scale,
		    int zero, uint8_t *q)
{
	int maxq = (1 << p->bits) - 1;
	int64_t i;

	assert(p->bits >= 2 && p->bits <= 8 && zero >= 0 && zero <= maxq);
	if (scale == 0.0f) { /* everything is 0: the zero point */
		memset(q, zero, (size_t)n);
		return;
	}
	for (i = 0; i < n; i++)
		q[i] = intq_code(x[i], scale, zero, maxq);
}

static int64_t intq_ngroups(int64_t cols, int64_t group)
{
	return group > 0 ? (cols + group - 1) / group : 1;
}

/* The oracle for mcb_intq_rtn: mcb_intq_params and mcb_intq_codes per group. */
static void intq_rtn_ref(const float *w, int64_t rows, int64_t cols,
			 const struct mcb_intq_params *p, uint8_t *q, float *scale, uint8_t *zero)
{
	int64_t ng = intq_ngroups(cols, p->group), len = p->group > 0 ? p->group : cols;
	int64_t r, g, c0, n;
	int z;

	for (r = 0; r < rows; r++)
		for (g = 0; g < ng; g++) {
			c0 = g * len;
			n = cols - c0 < len ? cols - c0 : len;
			mcb_intq_params(w + r * cols + c0, n, p, &scale[r * ng + g], &z);
			mcb_intq_codes(w + r * cols + c0, n, p, scale[r * ng + g], z,
				       q + r * cols + c0);
			if (zero)
				zero[r * ng + g] = (uint8_t)z;
		}
}

#ifdef MCB_QUANT_X86
/* min over the 8 lanes of v (no NaN in v) */
AVX2 static inline float hmin1(__m256 v)
{
	__m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	m = _mm_min_ps(m, _mm_movehl_ps(m, m));
	m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
	return _mm_cvtss_f32(m);
}

/* intq_range on 8 lanes at a time; exactly the scalar result */
AVX2 static void intq_range_avx2(const float *x, int64_t n, float *xmin, float *xmax)
{
	__m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, hi0 = lo0, hi1 = lo0, a, b;
	float lo, hi;
	int64_t i = 0;

	for (; i + 16 <= n; i += 16) {
		a = _mm256_loadu_ps(x + i);
		b = _mm256_loadu_ps(x + i + 8);
		lo0 = _mm256_min_ps(a, lo0);
		hi0 = _mm256_max_ps(a, hi0);
		lo1 = _mm256_min_ps(b, lo1);
		hi1 = _mm256_max_ps(b, hi1);
	}
	for (; i + 8 <= n; i += 8) {
		a = _mm256_loadu_ps(x + i);
		lo0 = _mm256_min_ps(a, lo0);
		hi0 = _mm256_max_ps(a, hi0);
	}
	lo = hmin1(_mm256_min_ps(lo0, lo1));
	hi = hmax1(_mm256_max_ps(hi0, hi1));
	for (; i < n; i++) {
		if (x[i] < lo)
			lo = x[i];
		if (x[i] > hi)
			hi = x[i];
	}
	*xmin = lo;
	*xmax = hi;
}

/* intq_code on 8 lanes of x, as int32: lo = -zero, hi = maxq - zero */
AVX2 static inline __m256i intq_code8(__m256 x, __m256 s, __m256 lo, __m256 hi, __m256i z)
{
	__m256 v = _mm256_div_ps(x, s);

	v = _mm256_andnot_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), v); /* NaN -> 0 */
	v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
	return _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
}

/* codes of x (n,) with a nonzero scale s */
AVX2 static void intq_codes_avx2(const float *x, int64_t n, float s, int zero, int maxq,
				 uint8_t *q)
{
	const __m256 vs = _mm256_set1_ps(s), lo = _mm256_set1_ps((float)-zero),
		     hi = _mm256_set1_ps((float)(maxq - zero));
	const __m256i z = _mm256_set1_epi32(zero);
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	int64_t i = 0;

	for (; i + 32 <= n; i += 32) {
		__m256i c0 = intq_code8(_mm256_loadu_ps(x + i), vs, lo, hi, z);
		__m256i c1 = intq_code8(_mm256_loadu_ps(x + i + 8), vs, lo, hi, z);
		__m256i c2 = intq_code8(_mm256_loadu_ps(x + i + 16), vs, lo, hi, z);
		__m256i c3 = intq_code8(_mm256_loadu_ps(x + i + 24), vs, lo, hi, z);
		/* codes are 0..255: both packs are exact; per 128-bit half the
		 * bytes are in 4-byte groups c0 c1 c2 c3, as in pack_codes32 */
		__m256i p = _mm256_packus_epi16(_mm256_packs_epi32(c0, c1),
						_mm256_packs_epi32(c2, c3));

		_mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(p, perm));
	}
	for (; i + 8 <= n; i += 8) {
		__m256i c = intq_code8(_mm256_loadu_ps(x + i), vs, lo, hi, z);
		__m128i h = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));

		_mm_storel_epi64((__m128i *)(q + i), _mm_packus_epi16(h, h));
	}
	for (; i < n; i++)
		q[i] = intq_code(x[i], s, zero, maxq);
}

/* lane-wise min and max of x (n,), n a multiple of 8, accumulators from +0
 * (no horizontal reduction; NaN skipped as in intq_range_avx2) */
AVX2 static inline void intq_lanes_avx2(const float *x, int64_t n, __m256 *lo, __m256 *hi)
{
	__m256 lo0 = _mm256_setzero_ps(), lo1 = lo0, hi0 = lo0, hi1 = lo0, a, b;
	int64_t i = 0;

	for (; i + 16 <= n; i += 16) {
		a = _mm256_loadu_ps(x + i);
		b = _mm256_loadu_ps(x + i + 8);
		lo0 = _mm256_min_ps(a, lo0);
		hi0 = _mm256_max_ps(a, hi0);
		lo1 = _mm256_min_ps(b, lo1);
		hi1 = _mm256_max_ps(b, hi1);
	}
	if (i < n) {
		a = _mm256_loadu_ps(x + i);
		lo0 = _mm256_min_ps(a, lo0);
		hi0 = _mm256_max_ps(a, hi0);
	}
	*lo = _mm256_min_ps(lo0, lo1);
	*hi = _mm256_max_ps(hi0, hi1);
}

/* m[0..7] (no NaN) -> lane b = min over the lanes of m[b] (as hmax8) */
AVX2 static inline __m256 hmin8(const __m256 *m)
{
	__m256 ab = _mm256_min_ps(_mm256_unpacklo_ps(m[0], m[1]), _mm256_unpackhi_ps(m[0], m[1]));
	__m256 cd = _mm256_min_ps(_mm256_unpacklo_ps(m[2], m[3]), _mm256_unpackhi_ps(m[2], m[3]));
	__m256 ef = _mm256_min_ps(_mm256_unpacklo_ps(m[4], m[5]), _mm256_unpackhi_ps(m[4], m[5]));
	__m256 gh = _mm256_min_ps(_mm256_unpacklo_ps(m[6], m[7]), _mm256_unpackhi_ps(m[6], m[7]));
	__m256 lo = _mm256_min_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
				  _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
	__m256 hi = _mm256_min_ps(_mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(1, 0, 1, 0)),
				  _mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(3, 2, 3, 2)));

	return _mm256_min_ps(_mm256_permute2f128_ps(lo, hi, 0x20),
			     _mm256_permute2f128_ps(lo, hi, 0x31));
}

/*
 * intq_from_range on 8 groups at once, lane for lane the same operations:
 * max/min and the comparisons are exact (and see no NaN: lo <= 0 <= hi),
 * the subtraction and division are the same IEEE operations, vroundps
 * with _MM_FROUND_TO_NEAREST_INT is rintf, and vcvtps2ph/vcvtph2ps round
 * to fp16 as fp32_to_fp16 does (checked by the Q8_0 tests).  vmaxps(z, 0)
 * returns 0 for a NaN z (the second operand), as the scalar clamp does.
 */
AVX2 static inline void intq_from_range8(__m256 lo, __m256 hi, const struct mcb_intq_params *p,
					 __m256 *scale, __m256i *zero)
{
	const __m256 zero_ps = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
	const int maxq = (1 << p->bits) - 1;
	const __m256 vmaxq = _mm256_set1_ps((float)maxq);
	__m256 s, z, both, s0;

	if (p->symmetric) {
		hi = _mm256_max_ps(_mm256_sub_ps(zero_ps, lo), hi); /* -0 vs +0: keeps hi */
		lo = _mm256_blendv_ps(lo, _mm256_sub_ps(zero_ps, hi),
				      _mm256_cmp_ps(lo, zero_ps, _CMP_LT_OQ));
	}
	both = _mm256_and_ps(_mm256_cmp_ps(lo, zero_ps, _CMP_EQ_OQ),
			     _mm256_cmp_ps(hi, zero_ps, _CMP_EQ_OQ));
	lo = _mm256_blendv_ps(lo, _mm256_set1_ps(-1.0f), both);
	hi = _mm256_blendv_ps(hi, one, both);
	s = _mm256_div_ps(_mm256_sub_ps(hi, lo), vmaxq);
	if (p->symmetric) {
		*zero = _mm256_set1_epi32((maxq + 1) / 2);
	} else {
		z = _mm256_round_ps(_mm256_div_ps(_mm256_sub_ps(zero_ps, lo), s),
				    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
		z = _mm256_min_ps(_mm256_max_ps(z, zero_ps), vmaxq);
		/* s == 0: maxq when lo < 0, else 0 */
		s0 = _mm256_and_ps(vmaxq, _mm256_cmp_ps(lo, zero_ps, _CMP_LT_OQ));
		z = _mm256_blendv_ps(z, s0, _mm256_cmp_ps(s, zero_ps, _CMP_EQ_OQ));
		*zero = _mm256_cvttps_epi32(z);
	}
	if (p->fp16_scale)
		s = _mm256_cvtph_ps(_mm256_cvtps_ph(s, _MM_FROUND_TO_NEAREST_INT));
	*scale = s;
}

/* scale, zero and codes of one group x (n,) (the per-group path) */
AVX2 static void intq_group_avx2(const float *x, int64_t n, const struct mcb_intq_params *p,
				 uint8_t *q, float *scale, int *zero)
{
	float xmin, xmax;

	intq_range_avx2(x, n, &xmin, &xmax);
	intq_from_range(xmin, xmax, p, scale, zero);
	if (*scale == 0.0f)
		memset(q, *zero, (size_t)n);
	else
		intq_codes_avx2(x, n, *scale, *zero, (1 << p->bits) - 1, q);
}

/*
 * Rows one at a time.  With groups of a multiple of 8 columns, 8 full
 * groups at a time: their ranges reduce to one vector each of minima and
 * maxima, and their scales and zeros come from intq_from_range8 (the
 * scalar per-group work was a third of the time for groups of 128); the
 * rest (other group sizes, the last groups of a row) group by group.
 */
AVX2 static void intq_rtn_avx2(const float *w, int64_t rows, int64_t cols,
			       const struct mcb_intq_params *p, uint8_t *q, float *scale,
			       uint8_t *zero)
{
	int64_t ng = intq_ngroups(cols, p->group), len = p->group > 0 ? p->group : cols;
	int64_t nfull = len > 0 ? cols / len : 0, r, g, c0, n; /* len 0: cols 0 */
	int maxq = (1 << p->bits) - 1, z, b, batch = len % 8 == 0;

	for (r = 0; r < rows; r++) {
		const float *wr = w + r * cols; /* (cols,) */
		uint8_t *qr = q + r * cols;
		float *sr = scale + r * ng;

		g = 0;
		for (; batch && g + 8 <= nfull; g += 8) {
			__m256 lo[8], hi[8], vs;
			__m256i vz;
			float sv[8];
			int zv[8];

			for (b = 0; b < 8; b++)
				intq_lanes_avx2(wr + (g + b) * len, len, &lo[b], &hi[b]);
			intq_from_range8(hmin8(lo), hmax8(hi), p, &vs, &vz);
			_mm256_storeu_ps(sv, vs);
			_mm256_storeu_si256((__m256i *)zv, vz);
			for (b = 0; b < 8; b++) {
				sr[g + b] = sv[b];
				if (zero)
					zero[r * ng + g + b] = (uint8_t)zv[b];
				if (sv[b] == 0.0f)
					memset(qr + (g + b) * len, zv[b], (size_t)len);
				else
					intq_codes_avx2(wr + (g + b) * len, len, sv[b], zv[b], maxq,
							qr + (g + b) * len);
			}
		}
		for (; g < ng; g++) {
			c0 = g * len;
			n = cols - c0 < len ? cols - c0 : len;
			intq_group_avx2(wr + c0, n, p, qr + c0, &sr[g], &z);
			if (zero)
				zero[r * ng + g] = (uint8_t)z;
		}
	}
}
#endif /* MCB_QUANT_X86 */

void mcb_intq_rtn(const float *w, int64_t rows, int64_t cols, const struct mcb_intq_params *p,
		  uint8_t *q, float *scale, uint8_t *zero)
{
	assert(p->bits >= 2 && p->bits <= 8 && p->group >= 0);
#ifdef MCB_QUANT_X86
	if (have_avx2()) {
		intq_rtn_avx2(w, rows, cols, p, q, scale, zero);
		return;
	}
#endif
	intq_rtn_ref(w, rows, cols, p, q, scale, zero);
}

/*
 * FP8 E4M3 (OCP 8-bit floating point, "E4M3FN"): s eeee mmm, bias 7;
 * e = 0: m * 2^-9 (subnormal); e = 1..15: 2^(e-7) * (1 + m/8), except
 * e = 15, m = 7 (0x7f, 0xff), the NaNs.  Largest finite 448 (0x7e).
 */
uint8_t mcb_f32_to_e4m3(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu, e = a >> 23, m, h, rem, half;
	unsigned shift;

	if (a > 0x7f800000u) /* NaN */
		return 0x7f;
	if (a >= 0x43e00000u) /* |f| >= 448, or inf: saturate */
		return (uint8_t)(sign | 0x7e);
	if (a >= 0x3c800000u) { /* >= 2^-6: normal; rebias exponent 127 -> 7 */
		h = ((e - 120u) << 3) | ((a >> 20) & 7u);
		rem = a & 0xfffffu;
		if (rem > 0x80000u || (rem == 0x80000u && (h & 1u)))
			h++; /* a carry into the exponent is correct; h <= 0x7e as |f| < 448 */
		return (uint8_t)(sign | h);
	}
	/* Subnormal: units of 2^-9.  |f| = m * 2^(e-150) with the implicit bit,
	 * m * 2^(e-141) units; below 2^-10 (e < 117) under half a unit. */
	if (e < 117)
		return (uint8_t)sign;
	m = (a & 0x7fffffu) | 0x800000u;
	shift = 141 - e; /* 21..24 */
	h = m >> shift;
	rem = m & ((1u << shift) - 1);
	half = 1u << (shift - 1);
	if (rem > half || (rem == half && (h & 1u)))
		h++; /* may become 8, the smallest normal: still correct */
	return (uint8_t)(sign | h);
}

float mcb_e4m3_to_f32(uint8_t b)
{
	uint32_t sign = (uint32_t)(b & 0x80u) << 24, e = (b >> 3) & 15u, m = b & 7u;
	float f;

	if (e == 15 && m == 7)
		return bits_f32(sign | 0x7fc00000u);
	if (e == 0) {
		f = (float)m * 0x1p-9f; /* exact */
		return sign ? -f : f;
	}
	return bits_f32(sign | ((e + 120u) << 23) | (m << 20));
}

/*
 * Checkpoint packings.  Every packed sequence is one little-endian bit
 * stream: code i of the sequence occupies stream bits [bits*i, bits*i +
 * bits), and word j holds stream bits [32j, 32j + 32).  For 2, 4 and 8 bits
 * that is AutoGPTQ's "code j of a word at bits*j"; for 3 bits it is
 * AutoGPTQ's irregular layout (qlinear pack: 32 codes per 3 words, codes 10
 * and 21 split across words: word 0 holds codes 0-9 and the low 2 bits of
 * code 10, word 1 its high bit, codes 11-20 and the low bit of code 21,
 * word 2 its high 2 bits and codes 22-31).
 */

/* uint32 -> int32 keeping the bits (no implementation-defined conversion) */
static int32_t as_i32(uint32_t u)
{
	return u <= 0x7fffffffu ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
}

/* count codes v[i * vstride] - sub (mod 2^bits) -> words out[j * ostride];
 * count * bits must be a multiple of 32 */
static void pack_stream(const uint8_t *v, int64_t vstride, int64_t count, int bits,
			unsigned sub, int32_t *out, int64_t ostride)
{
	uint32_t mask = (1u << bits) - 1;
	uint64_t acc = 0; /* pending stream bits, lowest first */
	int nacc = 0;     /* how many */
	int64_t i, j = 0;

	for (i = 0; i < count; i++) {
		acc |= (uint64_t)(((uint32_t)v[i * vstride] - sub) & mask) << nacc;
		nacc += bits;
		if (nacc >= 32) {
			out[j++ * ostride] = as_i32((uint32_t)acc);
			acc >>= 32;
			nacc -= 32;
		}
	}
	assert(nacc == 0);
}

/* inverse of pack_stream with add = sub */
static void unpack_stream(const int32_t *in, int64_t istride, int64_t count, int bits,
			  unsigned add, uint8_t *v, int64_t vstride)
{
	uint32_t mask = (1u << bits) - 1;
	uint64_t acc = 0;
	int nacc = 0;
	int64_t i, j = 0;

	for (i = 0; i < count; i++) {
		if (nacc < bits) {
			acc |= (uint64_t)(uint32_t)in[j++ * istride] << nacc;
			nacc += 32;
		}
		v[i * vstride] = (uint8_t)(((uint32_t)acc + add) & mask);
		acc >>= bits;
		nacc -= bits;
	}
}

static int gptq_bits_ok(int bits)
{
	return bits == 2 || bits == 3 || bits == 4 || bits == 8;
}

void mcb_pack_gptq(const uint8_t *q, int64_t rows, int64_t cols, int bits, int32_t *qweight)
{
	int64_t n;

	assert(gptq_bits_ok(bits) && cols * bits % 32 == 0);
	for (n = 0; n < rows; n++) /* column n of qweight: row n of q along the input dim */
		pack_stream(q + n * cols, 1, cols, bits, 0, qweight + n, rows);
}

void mcb_unpack_gptq(const int32_t *qweight, int64_t rows, int64_t cols, int bits, uint8_t *q)
{
	int64_t n;

	assert(gptq_bits_ok(bits) && cols * bits % 32 == 0);
	for (n = 0; n < rows; n++)
		unpack_stream(qweight + n, rows, cols, bits, 0, q + n * cols, 1);
}

void mcb_pack_gptq_zeros(const uint8_t *zero, int64_t rows, int64_t ngroups, int bits,
			 int32_t *qzeros)
{
	int64_t g, nw = rows * bits / 32;

	assert(gptq_bits_ok(bits) && rows * bits % 32 == 0);
	for (g = 0; g < ngroups; g++) /* row g of qzeros: column g of zero, minus 1 */
		pack_stream(zero + g, ngroups, rows, bits, 1, qzeros + g * nw, 1);
}

void mcb_unpack_gptq_zeros(const int32_t *qzeros, int64_t rows, int64_t ngroups, int bits,
			   uint8_t *zero)
{
	int64_t g, nw = rows * bits / 32;

	assert(gptq_bits_ok(bits) && rows * bits % 32 == 0);
	for (g = 0; g < ngroups; g++)
		unpack_stream(qzeros + g * nw, 1, rows, bits, 1, zero + g, ngroups);
}

/* AWQ's order: nibble i of a word holds element AWQ_ORDER[i] of its 8 */
static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* v (rows, cols) 4-bit codes -> out (cols, rows/8), 8 rows per word in
 * AWQ's nibble order (qweight from q, and qzeros from zeros alike) */
static void awq_pack(const uint8_t *v, int64_t rows, int64_t cols, int32_t *out)
{
	int64_t nw = rows / 8, c, k;
	int i;

	assert(rows % 8 == 0);
	for (c = 0; c < nw; c++)
		for (k = 0; k < cols; k++) {
			uint32_t word = 0;

			for (i = 0; i < 8; i++)
				word |= (uint32_t)(v[(8 * c + awq_order[i]) * cols + k] & 15u) << (4 * i);
			out[k * nw + c] = as_i32(word);
		}
}

static void awq_unpack(const int32_t *in, int64_t rows, int64_t cols, uint8_t *v)
{
	int64_t nw = rows / 8, c, k;
	int i;

	assert(rows % 8 == 0);
	for (c = 0; c < nw; c++)
		for (k = 0; k < cols; k++) {
			uint32_t word = (uint32_t)in[k * nw + c];

			for (i = 0; i < 8; i++)
				v[(8 * c + awq_order[i]) * cols + k] = (uint8_t)((word >> (4 * i)) & 15u);
		}
}

void mcb_pack_awq(const uint8_t *q, int64_t rows, int64_t cols, int32_t *qweight)
{
	awq_pack(q, rows, cols, qweight);
}

void mcb_unpack_awq(const int32_t *qweight, int64_t rows, int64_t cols, uint8_t *q)
{
	awq_unpack(qweight, rows, cols, q);
}

void mcb_pack_awq_zeros(const uint8_t *zero, int64_t rows, int64_t ngroups, int32_t *qzeros)
{
	awq_pack(zero, rows, ngroups, qzeros);
}

void mcb_unpack_awq_zeros(const int32_t *qzeros, int64_t rows, int64_t ngroups, uint8_t *zero)
{
	awq_unpack(qzeros, rows, ngroups, zero);
}
