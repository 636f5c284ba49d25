/*
 * quant: Q8_0 and per-channel RTN int8 kernels (contracts in include/mcb/quant.h).
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
