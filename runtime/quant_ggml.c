/*
 * quant_ggml: ggml's block formats Q4_0, Q4_1, Q4_K and Q6_K, quantized with
 * ggml's reference quantizers bit for bit and dequantized as ggml does, plus
 * the dispatch over every ggml block type mcbuild knows (Q8_0 included).
 * Contracts in include/mcb/quant.h.
 *
 * Block layouts (ggml src/ggml-common.h), little-endian, one block per 32
 * (Q4_0, Q4_1) or 256 (K-quants) consecutive values of a row; "h" is an IEEE
 * binary16:
 *   Q4_0  {h d; u8 qs[16]}                          18 bytes
 *         value[j] = (nibble_j - 8) * d; nibble_j = qs[j] & 15 (j < 16),
 *         qs[j - 16] >> 4 (j >= 16)
 *   Q4_1  {h d, m; u8 qs[16]}                       20 bytes
 *         value[j] = nibble_j * d + m (two roundings)
 *   Q4_K  {h d, dmin; u8 scales[12]; u8 qs[128]}    144 bytes, 8 sub-blocks
 *         of 32 with 6-bit scale sc_s and min m_s (get_scale_min_k4 below);
 *         qs[32c + l] = L[64c + l] | L[64c + 32 + l] << 4 (c < 4, l < 32);
 *         value = (d * sc_s) * L - dmin * m_s
 *   Q6_K  {u8 ql[128]; u8 qh[64]; i8 scales[16]; h d} 210 bytes, 16
 *         sub-blocks of 16; per half n (128 values), l < 32: ql[64n + l]
 *         holds L[128n + l] (low nibble) and L[128n + 64 + l] (high),
 *         ql[64n + 32 + l] holds L[+32] and L[+96], qh[32n + l] the two top
 *         bits of L[+0], L[+32], L[+64], L[+96] at bits 0, 2, 4, 6;
 *         value = (d * scales[s]) * (L - 32)
 * Blocks are read and written byte by byte: a row may sit at any address.
 *
 * Floating point: each _ref quantizer performs, in single precision, the
 * operations of ggml's C source (ggml-quants.c quantize_row_*_ref,
 * make_qkx2_quants, make_qx_quants) in the same order with the same
 * conversions, and no operation is contracted into a fused multiply-add
 * (GCC does not contract in ISO C mode, -std=c11; the AVX2 fast paths below
 * enable no FMA, and the AVX-512 ones are compiled with fp-contract=off),
 * so the codes and scales are ggml's bit for bit.
 * tests/compat/gguf_check.py holds an independent numpy port that checks it.
 * nearest_int is ggml's: add 1.5 * 2^23 and read the low mantissa bits
 * (round half to even for |v| < 2^22).
 *
 * ggml's float-to-int8 casts ((int8_t)(x * id + 8.5f) in Q4_0) are undefined
 * in C when the value is out of range (NaN, infinities); here such a code is
 * 0, for every input, in _ref and the fast paths alike (quant.h).  Finite
 * weights never reach that case.
 *
 * Fast paths: Q4_0 and Q4_1 with AVX2 and F16C when the CPU has both
 * (checked at run time; _ref otherwise), eight blocks per step so that the
 * scale arithmetic and the fp16 conversions run on full vectors; Q4_K and
 * Q6_K under the same check, one sub-block per vector lane, their scale
 * searches with AVX-512F when the CPU has it too (-DMCB_QUANT_NO_AVX512
 * leaves it out, -DMCB_QUANT_NO_SIMD every fast path).  They give _ref's
 * bytes for every input (the reasoning is at each kernel);
 * tests/unit/test_qtensor.c compares Q4_0's and Q4_1's.
 */
#ifndef QG_KQ_W /* the file; the K-quant search template is at its end */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "mcb/quant.h"
#include "mcb/tensor.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(MCB_QUANT_NO_SIMD)
#define QG_X86 1
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#endif

#define QK4 32            /* Q4_0, Q4_1 block length */
#define QKK 256           /* K-quant super-block length */
#define Q4_0_BYTES 18
#define Q4_1_BYTES 20
#define Q4_K_BYTES 144
#define Q6_K_BYTES 210
#define Q8_0_BYTES 34
#define GROUP_MAX_EPS 1e-15f

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* ggml's nearest_int: round half to even for |fval| < 2^22 (the bit trick
 * is kept for every input so that results match ggml's everywhere) */
static int nearest_int(float fval)
{
	float val = fval + 12582912.f;
	int32_t i;

	memcpy(&i, &val, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
}

/* MIN(hi, (int8_t)v) stored in a uint8_t, as ggml writes its 4-bit codes;
 * a v whose truncation is not an int8 (NaN, out of range) gives 0 */
static uint8_t trunc_code(float v, int hi)
{
	int c;

	if (!(v > -129.0f && v < 128.0f))
		return 0;
	c = (int)v;
	return (uint8_t)(c < hi ? c : hi);
}

/* ---- Q4_0 ---- */

void mcb_quantize_row_q4_0_ref(const float *x, void *vy, int64_t k)
{
	uint8_t *y = vy;
	int64_t b, nb = k / QK4;
	int j;

	for (b = 0; b < nb; b++, x += QK4, y += Q4_0_BYTES) {
		float amax = 0.0f, max = 0.0f, d, id;

		for (j = 0; j < QK4; j++)
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		d = max / -8;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		st16(y, mcb_f32_to_f16(d));
		for (j = 0; j < QK4 / 2; j++) {
			uint8_t q0 = trunc_code(x[j] * id + 8.5f, 15);
			uint8_t q1 = trunc_code(x[j + QK4 / 2] * id + 8.5f, 15);

			y[2 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

void mcb_dequantize_row_q4_0_ref(const void *vx, float *y, int64_t k)
{
	const uint8_t *x = vx;
	int64_t b, nb = k / QK4;
	int j;

	for (b = 0; b < nb; b++, x += Q4_0_BYTES, y += QK4) {
		const float d = mcb_f16_to_f32(ld16(x));

		for (j = 0; j < QK4 / 2; j++) {
			y[j] = (float)((x[2 + j] & 15) - 8) * d;
			y[j + QK4 / 2] = (float)((x[2 + j] >> 4) - 8) * d;
		}
	}
}

/* ---- Q4_1 ---- */

void mcb_quantize_row_q4_1_ref(const float *x, void *vy, int64_t k)
{
	uint8_t *y = vy;
	int64_t b, nb = k / QK4;
	int j;

	for (b = 0; b < nb; b++, x += QK4, y += Q4_1_BYTES) {
		float min = FLT_MAX, max = -FLT_MAX, d, id;

		for (j = 0; j < QK4; j++) {
			if (x[j] < min)
				min = x[j];
			if (x[j] > max)
				max = x[j];
		}
		d = (max - min) / 15;
		id = d != 0.0f ? 1.0f / d : 0.0f;
		st16(y, mcb_f32_to_f16(d));
		st16(y + 2, mcb_f32_to_f16(min));
		for (j = 0; j < QK4 / 2; j++) {
			uint8_t q0 = trunc_code((x[j] - min) * id + 0.5f, 15);
			uint8_t q1 = trunc_code((x[j + QK4 / 2] - min) * id + 0.5f, 15);

			y[4 + j] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

void mcb_dequantize_row_q4_1_ref(const void *vx, float *y, int64_t k)
{
	const uint8_t *x = vx;
	int64_t b, nb = k / QK4;
	int j;

	for (b = 0; b < nb; b++, x += Q4_1_BYTES, y += QK4) {
		const float d = mcb_f16_to_f32(ld16(x)), m = mcb_f16_to_f32(ld16(x + 2));

		for (j = 0; j < QK4 / 2; j++) {
			float v0 = (float)(x[4 + j] & 15) * d, v1 = (float)(x[4 + j] >> 4) * d;

			y[j] = v0 + m;
			y[j + QK4 / 2] = v1 + m;
		}
	}
}

/* ---- Q4_K ---- */

/* ggml make_qkx2_quants with use_mad false: a scale and min for x (n,) with
 * codes 0..nmax (L), searched over nstep + 1 candidate scales by weighted
 * least squares; returns the scale, *the_min = -min */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights,
			      uint8_t *L, float *the_min, uint8_t *Laux, float rmin, float rdelta,
			      int nstep)
{
	float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
	float iscale, scale, best_error = 0.0f;
	int i, is, l;

	for (i = 1; i < n; i++) {
		float w = weights[i];

		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += w;
		sum_x += w * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*the_min = -min;
		return 0.0f;
	}
	iscale = (float)nmax / (max - min);
	scale = 1 / iscale;
	for (i = 0; i < n; i++) {
		float diff;

		l = nearest_int(iscale * (x[i] - min));
		L[i] = (uint8_t)(l < 0 ? 0 : l > nmax ? nmax : l);
		diff = scale * (float)L[i] + min - x[i];
		diff = diff * diff;
		best_error += weights[i] * diff;
	}
	for (is = 0; is <= nstep; is++) {
		float sum_l = 0, sum_l2 = 0, sum_xl = 0, D;

		iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
		for (i = 0; i < n; i++) {
			float w = weights[i], fl;

			l = nearest_int(iscale * (x[i] - min));
			l = l < 0 ? 0 : l > nmax ? nmax : l;
			Laux[i] = (uint8_t)l;
			fl = (float)l;
			sum_l += w * fl;
			sum_l2 += w * fl * fl;
			sum_xl += w * fl * x[i];
		}
		D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			float cur_error = 0;

			if (this_min > 0) {
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			for (i = 0; i < n; i++) {
				float diff = this_scale * (float)Laux[i] + this_min - x[i];

				diff = diff * diff;
				cur_error += weights[i] * diff;
			}
			if (cur_error < best_error) {
				memcpy(L, Laux, (size_t)n);
				best_error = cur_error;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*the_min = -min;
	return scale;
}

/* 6-bit scale and min of sub-block j (0..7) from a Q4_K scales[12] */
static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
	}
}

/* Q4_K's super-block header from the sub-blocks' scales and mins (8 each,
 * their maxima given): fp16 d and dmin at y, the 6-bit scales and mins
 * packed into y + 4 (12 bytes); *d0, *dmin0 as stored (ggml's
 * quantize_row_q4_K_ref). */
static void q4_k_pack_scales(const float *scales, const float *mins, float max_scale,
			     float max_min, uint8_t *y, float *d0, float *dmin0)
{
	const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	uint8_t *sc12 = y + 4;
	int j;

	memset(sc12, 0, 12);
	for (j = 0; j < QKK / 32; j++) {
		uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
		uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);

		ls = ls < 63 ? ls : 63;
		lm = lm < 63 ? lm : 63;
		if (j < 4) {
			sc12[j] = ls;
			sc12[j + 4] = lm;
		} else {
			sc12[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
			sc12[j - 4] |= (uint8_t)((ls >> 4) << 6);
			sc12[j - 0] |= (uint8_t)((lm >> 4) << 6);
		}
	}
	st16(y, mcb_f32_to_f16(max_scale / 63.f));
	st16(y + 2, mcb_f32_to_f16(max_min / 63.f));
	*d0 = mcb_f16_to_f32(ld16(y));
	*dmin0 = mcb_f16_to_f32(ld16(y + 2));
}

void mcb_quantize_row_q4_k_ref(const float *x, void *vy, int64_t k)
{
	uint8_t *y = vy;
	uint8_t L[QKK], Laux[32];
	float weights[32], mins[QKK / 32], scales[QKK / 32];
	int64_t b, nb = k / QKK;
	int j, l;

	for (b = 0; b < nb; b++, x += QKK, y += Q4_K_BYTES) {
		uint8_t *sc12 = y + 4, *qs = y + 16, sc, m;
		float max_scale = 0, max_min = 0, d0, dmin0;

		for (j = 0; j < QKK / 32; j++) {
			float sum_x2 = 0, av_x;

			for (l = 0; l < 32; l++)
				sum_x2 += x[32 * j + l] * x[32 * j + l];
			av_x = sqrtf(sum_x2 / 32);
			for (l = 0; l < 32; l++)
				weights[l] = av_x + fabsf(x[32 * j + l]);
			scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j],
						     Laux, -1.f, 0.1f, 20);
			if (scales[j] > max_scale)
				max_scale = scales[j];
			if (mins[j] > max_min)
				max_min = mins[j];
		}
		q4_k_pack_scales(scales, mins, max_scale, max_min, y, &d0, &dmin0);
		for (j = 0; j < QKK / 32; j++) {
			float d, dm;

			get_scale_min_k4(j, sc12, &sc, &m);
			d = d0 * (float)sc;
			if (d == 0.0f)
				continue; /* L keeps make_qkx2_quants' codes, as in ggml */
			dm = dmin0 * (float)m;
			for (l = 0; l < 32; l++) {
				int q = nearest_int((x[32 * j + l] + dm) / d);

				L[32 * j + l] = (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
			}
		}
		for (j = 0; j < QKK; j += 64)
			for (l = 0; l < 32; l++)
				qs[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
	}
}

void mcb_dequantize_row_q4_k_ref(const void *vx, float *y, int64_t k)
{
	const uint8_t *x = vx;
	int64_t b, nb = k / QKK;
	int j, l;

	for (b = 0; b < nb; b++, x += Q4_K_BYTES) {
		const float d = mcb_f16_to_f32(ld16(x)), min = mcb_f16_to_f32(ld16(x + 2));
		const uint8_t *q = x + 16;
		uint8_t sc, m;

		for (j = 0; j < 4; j++, q += 32) {
			float d1, m1, d2, m2;

			get_scale_min_k4(2 * j, x + 4, &sc, &m);
			d1 = d * (float)sc;
			m1 = min * (float)m;
			get_scale_min_k4(2 * j + 1, x + 4, &sc, &m);
			d2 = d * (float)sc;
			m2 = min * (float)m;
			for (l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xF) - m1;
			for (l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
		}
	}
}

/* ---- Q6_K ---- */

/* ggml make_qx_quants(n, nmax, x, L, rmse_type 1, NULL): a signed scale for
 * x (n,) with codes -nmax..nmax-1 stored as L = code + nmax, the weighted
 * (x^2) least-squares best of 19 candidates */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0, amax = 0, iscale, sumlx = 0, suml2 = 0, scale, best;
	int i, is, l;

	for (i = 0; i < n; i++) {
		float ax = fabsf(x[i]);

		if (ax > amax) {
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_MAX_EPS) {
		memset(L, 0, (size_t)n);
		return 0.0f;
	}
	iscale = (float)-nmax / max;
	for (i = 0; i < n; i++) {
		float w = x[i] * x[i];

		l = nearest_int(iscale * x[i]);
		l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
		L[i] = (int8_t)(l + nmax);
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
	best = scale * sumlx;
	for (is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0;
		for (i = 0; i < n; i++) {
			float w = x[i] * x[i];

			l = nearest_int(iscale * x[i]);
			l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)l * (float)l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (i = 0; i < n; i++) {
				l = nearest_int(iscale * x[i]);
				l = l < -nmax ? -nmax : l > nmax - 1 ? nmax - 1 : l;
				L[i] = (int8_t)(l + nmax);
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

void mcb_quantize_row_q6_k_ref(const float *x, void *vy, int64_t k)
{
	uint8_t *y = vy;
	int8_t L[QKK];
	float scales[QKK / 16];
	int64_t b, nb = k / QKK;
	int j, l;

	for (b = 0; b < nb; b++, x += QKK, y += Q6_K_BYTES) {
		uint8_t *ql = y, *qh = y + 128;
		int8_t *sc = (int8_t *)(y + 192);
		float max_scale = 0, max_abs_scale = 0, iscale, d0;

		for (j = 0; j < QKK / 16; j++) {
			float scale = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);

			scales[j] = scale;
			if (fabsf(scale) > max_abs_scale) {
				max_abs_scale = fabsf(scale);
				max_scale = scale;
			}
		}
		if (max_abs_scale < GROUP_MAX_EPS) {
			memset(y, 0, Q6_K_BYTES); /* d = +0 */
			continue;
		}
		iscale = -128.f / max_scale;
		st16(y + 208, mcb_f32_to_f16(1 / iscale));
		for (j = 0; j < QKK / 16; j++) {
			int v = nearest_int(iscale * scales[j]);

			sc[j] = (int8_t)(uint8_t)(v < 127 ? v : 127); /* int8_t as ggml stores it */
		}
		d0 = mcb_f16_to_f32(ld16(y + 208));
		for (j = 0; j < QKK / 16; j++) {
			float d = d0 * (float)sc[j];

			if (d == 0.0f)
				continue; /* L keeps make_qx_quants' codes, as in ggml */
			for (l = 0; l < 16; l++) {
				int q = nearest_int(x[16 * j + l] / d);

				q = q < -32 ? -32 : q > 31 ? 31 : q;
				L[16 * j + l] = (int8_t)(q + 32);
			}
		}
		for (j = 0; j < QKK; j += 128, ql += 64, qh += 32)
			for (l = 0; l < 32; l++) {
				const uint8_t *u = (const uint8_t *)L + j + l; /* codes 0..63 */

				ql[l] = (uint8_t)((u[0] & 0xF) | (u[64] & 0xF) << 4);
				ql[l + 32] = (uint8_t)((u[32] & 0xF) | (u[96] & 0xF) << 4);
				qh[l] = (uint8_t)((u[0] >> 4) | (u[32] >> 4) << 2 | (u[64] >> 4) << 4 |
						  (u[96] >> 4) << 6);
			}
	}
}

void mcb_dequantize_row_q6_k_ref(const void *vx, float *y, int64_t k)
{
	const uint8_t *x = vx;
	int64_t b, nb = k / QKK;
	int n, l;

	for (b = 0; b < nb; b++, x += Q6_K_BYTES) {
		const float d = mcb_f16_to_f32(ld16(x + 208));
		const uint8_t *ql = x, *qh = x + 128;
		const int8_t *sc = (const int8_t *)(x + 192);

		for (n = 0; n < QKK; n += 128, y += 128, ql += 64, qh += 32, sc += 8)
			for (l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
				int q2 = ((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
				int q3 = ((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
				int q4 = ((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;

				y[l] = d * (float)sc[is] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
	}
}

/* ---- Q8_0 blocks (any alignment) ---- */

static void quantize_q8_0_blocks(const float *x, uint8_t *y, int64_t k)
{
	struct mcb_block_q8_0 blk;
	int64_t b;

	for (b = 0; b < k / MCB_QK8_0; b++) {
		mcb_quantize_row_q8_0(x + b * MCB_QK8_0, &blk, MCB_QK8_0);
		st16(y + b * Q8_0_BYTES, blk.d);
		memcpy(y + b * Q8_0_BYTES + 2, blk.qs, MCB_QK8_0);
	}
}

static void dequantize_q8_0_blocks(const uint8_t *x, float *y, int64_t k)
{
	int64_t b;
	int j;

	for (b = 0; b < k / MCB_QK8_0; b++, x += Q8_0_BYTES) {
		const float d = mcb_f16_to_f32(ld16(x));

		for (j = 0; j < MCB_QK8_0; j++)
			*y++ = (float)(int8_t)x[2 + j] * d;
	}
}

/* ---- the fast Q4_0 and Q4_1 quantizers ---- */

#ifdef QG_X86
/* AVX2 and F16C without FMA: x * id + 8.5f must round twice, as in _ref */
#define QG_AVX2 __attribute__((target("avx2,f16c")))
#ifndef MCB_QUANT_NO_AVX512 /* the K-quant searches' wide build */
#define QG_AVX512 __attribute__((target("avx512f,avx2,f16c")))
#endif
#define QG_NB 8 /* blocks per step: one lane each for the scale arithmetic */

/* 1 when the CPU and OS support AVX2 and F16C (CPUID.1:ECX bit 29, read
 * with cpuid: not every compiler knows the "f16c" name).  Cached: cpuid
 * can trap to the hypervisor in a VM. */
static int qg_have_avx2(void)
{
	static atomic_int cached; /* 0 unknown, 1 no, 2 yes */
	int v = atomic_load_explicit(&cached, memory_order_relaxed);
	unsigned ra, rb, rc, rd;

	if (v == 0) {
		v = 1;
		if (__builtin_cpu_supports("avx2") && __get_cpuid(1, &ra, &rb, &rc, &rd) &&
		    (rc & (1u << 29)))
			v = 2;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v == 2;
}

QG_AVX2 static inline __m256 qg_op(__m256 a, __m256 b, int is_min)
{
	return is_min ? _mm256_min_ps(a, b) : _mm256_max_ps(a, b);
}

/* m[0..7] (no NaN) -> lane b = the max (min when is_min) over m[b]'s lanes;
 * the sign of a zero result is unspecified */
QG_AVX2 static inline __m256 qg_reduce8(const __m256 *m, int is_min)
{
	__m256 t[4], lo, hi;
	int i;

	/* t[i], per 128-bit half: m[2i] and m[2i+1] folded to 2 lanes each */
	for (i = 0; i < 4; i++)
		t[i] = qg_op(_mm256_unpacklo_ps(m[2 * i], m[2 * i + 1]),
			     _mm256_unpackhi_ps(m[2 * i], m[2 * i + 1]), is_min);
	/* per half: m[0..3] (lo), m[4..7] (hi) folded to 1 lane each */
	lo = qg_op(_mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(1, 0, 1, 0)),
		   _mm256_shuffle_ps(t[0], t[1], _MM_SHUFFLE(3, 2, 3, 2)), is_min);
	hi = qg_op(_mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(1, 0, 1, 0)),
		   _mm256_shuffle_ps(t[2], t[3], _MM_SHUFFLE(3, 2, 3, 2)), is_min);
	return qg_op(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31),
		     is_min);
}

/*
 * Codes of one block from t (32,) = the values before the (int8_t) cast in
 * four vectors, packed as _ref packs them: qs[j] = q[j] | q[j + 16] << 4 in
 * a byte, q = MIN(15, trunc(t)) as a uint8_t, 0 when t is not finite.
 * Callers guarantee (see q4_0_avx2, q4_1_avx2) that a finite t lies in
 * (-5, 24), where trunc is an int8 (no other out-of-range case) and the code
 * never -128.  VCVTTPS2DQ gives INT32_MIN for a non-finite t; the signed
 * saturating packs turn it into -128, which is then cleared.
 */
QG_AVX2 static inline void q4_pack(__m256 t0, __m256 t1, __m256 t2, __m256 t3, uint8_t *qs)
{
	const __m256i k15 = _mm256_set1_epi32(15);
	__m256i c0 = _mm256_min_epi32(_mm256_cvttps_epi32(t0), k15);
	__m256i c1 = _mm256_min_epi32(_mm256_cvttps_epi32(t1), k15);
	__m256i c2 = _mm256_min_epi32(_mm256_cvttps_epi32(t2), k15);
	__m256i c3 = _mm256_min_epi32(_mm256_cvttps_epi32(t3), k15);
	/* packs work per 128-bit half: 4-byte groups c0[0:4] c1[0:4] c2[0:4]
	 * c3[0:4] c0[4:8] c1[4:8] c2[4:8] c3[4:8], reordered to element order */
	__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(c0, c1), _mm256_packs_epi32(c2, c3));
	__m128i lo, hi;

	p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	p = _mm256_andnot_si256(_mm256_cmpeq_epi8(p, _mm256_set1_epi8(-128)), p);
	lo = _mm256_castsi256_si128(p);
	hi = _mm256_extracti128_si256(p, 1);
	lo = _mm_or_si128(lo, _mm_and_si128(_mm_slli_epi16(hi, 4), _mm_set1_epi8((char)0xf0)));
	_mm_storeu_si128((__m128i *)qs, lo);
}

/* first value of largest magnitude in x (32,), NaN skipped, +0 when none
 * is non-zero: Q4_0's vmax as _ref finds it */
static float q4_0_vmax(const float *x)
{
	float amax = 0.0f, max = 0.0f;
	int j;

	for (j = 0; j < QK4; j++)
		if (amax < fabsf(x[j])) {
			amax = fabsf(x[j]);
			max = x[j];
		}
	return max;
}

/*
 * Q4_0 of QG_NB whole blocks, x (QG_NB * 32,) -> y (QG_NB * 18 bytes).
 * vmax from the largest and the smallest value of each block (VMAXPS and
 * VMINPS return their second operand, the running value started at +0,
 * when either is NaN or both are zeros: NaN is skipped and each lane's
 * maximum is +0 or positive, its minimum +0 or negative): vmax is the
 * maximum if it exceeds -minimum, the minimum if below, +0 if both are
 * zero; on a tie of +a and -a the first one wins, which only a scan finds.
 * d = vmax * -0.125 is vmax / -8 (the same real number, rounded once).
 * Range of t = x * id + 8.5 (for q4_pack): with id finite and non-zero,
 * |x| <= |vmax|; |vmax / 8| rounds to |d| with a relative error of 2^-24
 * when normal, else within 2^-150 <= |d| / 2, so |x * id| <= 12 (1 + 2^-22)
 * and t lies in (-4, 21); id = 0 gives t = 8.5 or NaN; id infinite gives
 * t infinite or NaN.
 */
QG_AVX2 static void q4_0_avx2(const float *x, uint8_t *y)
{
	const __m256 zero = _mm256_setzero_ps(), sign = _mm256_set1_ps(-0.0f);
	__m256 mx[QG_NB], mn[QG_NB], hi, lo, nlo, vmax, d, id;
	float vm[QG_NB], idv[QG_NB];
	uint16_t dh[QG_NB];
	int b, j, tie;

	for (b = 0; b < QG_NB; b++) {
		const float *xb = x + QK4 * b;

		mx[b] = mn[b] = zero;
		for (j = 0; j < QK4; j += 8) {
			__m256 v = _mm256_loadu_ps(xb + j);

			mx[b] = _mm256_max_ps(v, mx[b]);
			mn[b] = _mm256_min_ps(v, mn[b]);
		}
	}
	hi = qg_reduce8(mx, 0);
	lo = qg_reduce8(mn, 1);
	nlo = _mm256_xor_ps(lo, sign);
	vmax = _mm256_blendv_ps(hi, lo, _mm256_cmp_ps(hi, nlo, _CMP_LT_OQ));
	tie = _mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(hi, nlo, _CMP_EQ_OQ),
					       _mm256_cmp_ps(hi, zero, _CMP_NEQ_OQ)));
	if (tie) {
		_mm256_storeu_ps(vm, vmax);
		for (b = 0; b < QG_NB; b++)
			if (tie >> b & 1)
				vm[b] = q4_0_vmax(x + QK4 * b);
		vmax = _mm256_loadu_ps(vm);
	}
	d = _mm256_mul_ps(vmax, _mm256_set1_ps(-0.125f));
	id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d),
			   _mm256_cmp_ps(d, zero, _CMP_NEQ_UQ)); /* d ? 1/d : 0 */
	_mm_storeu_si128((__m128i *)dh, _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
	_mm256_storeu_ps(idv, id);
	for (b = 0; b < QG_NB; b++) {
		const float *xb = x + QK4 * b;
		const __m256 vid = _mm256_set1_ps(idv[b]), half = _mm256_set1_ps(8.5f);
		uint8_t *yb = y + Q4_0_BYTES * b;

		st16(yb, dh[b]);
		q4_pack(_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb), vid), half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 8), vid), half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 16), vid), half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xb + 24), vid), half), yb + 2);
	}
}

/*
 * Q4_1 of QG_NB whole blocks, x (QG_NB * 32,) -> y (QG_NB * 20 bytes).
 * Minimum and maximum with NaN skipped from FLT_MAX and -FLT_MAX, as _ref.
 * Values that compare equal are the same float except +0 and -0: a block
 * whose minimum is zero (whose stored m has _ref's first zero's sign) goes
 * through _ref, and so does one whose d is NaN (only +-inf - +-inf; F16C
 * and mcb_f32_to_f16 agree on every other float, checked exhaustively).
 * Range of t = (x - min) * id + 0.5: x - min lies in [0, max - min]; with
 * id finite and non-zero the ratio (max - min) / d is at most 15 (1 + 2^-22)
 * for a normal d, 22.5 for a subnormal one, so t lies in [0.5, 24); id = 0
 * gives t = 0.5 or NaN, an infinite id t infinite or NaN.
 */
QG_AVX2 static void q4_1_avx2(const float *x, uint8_t *y)
{
	__m256 mx[QG_NB], mn[QG_NB], hi, lo, d, id, bad;
	float idv[QG_NB], lov[QG_NB];
	uint16_t dh[QG_NB], mh[QG_NB];
	int b, j, redo;

	for (b = 0; b < QG_NB; b++) {
		const float *xb = x + QK4 * b;

		mx[b] = _mm256_set1_ps(-FLT_MAX);
		mn[b] = _mm256_set1_ps(FLT_MAX);
		for (j = 0; j < QK4; j += 8) {
			__m256 v = _mm256_loadu_ps(xb + j);

			mx[b] = _mm256_max_ps(v, mx[b]);
			mn[b] = _mm256_min_ps(v, mn[b]);
		}
	}
	hi = qg_reduce8(mx, 0);
	lo = qg_reduce8(mn, 1);
	d = _mm256_div_ps(_mm256_sub_ps(hi, lo), _mm256_set1_ps(15.0f));
	id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), d),
			   _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ)); /* d ? 1/d : 0 */
	bad = _mm256_or_ps(_mm256_cmp_ps(lo, _mm256_setzero_ps(), _CMP_EQ_OQ),
			   _mm256_cmp_ps(d, d, _CMP_UNORD_Q));
	redo = _mm256_movemask_ps(bad);
	_mm_storeu_si128((__m128i *)dh, _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT));
	_mm_storeu_si128((__m128i *)mh, _mm256_cvtps_ph(lo, _MM_FROUND_TO_NEAREST_INT));
	_mm256_storeu_ps(idv, id);
	_mm256_storeu_ps(lov, lo);
	for (b = 0; b < QG_NB; b++) {
		const float *xb = x + QK4 * b;
		const __m256 vid = _mm256_set1_ps(idv[b]), vlo = _mm256_set1_ps(lov[b]);
		const __m256 half = _mm256_set1_ps(0.5f);
		uint8_t *yb = y + Q4_1_BYTES * b;

		if (redo >> b & 1) {
			mcb_quantize_row_q4_1_ref(xb, yb, QK4);
			continue;
		}
		st16(yb, dh[b]);
		st16(yb + 2, mh[b]);
		q4_pack(_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xb), vlo), vid), half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xb + 8), vlo), vid),
				      half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xb + 16), vlo), vid),
				      half),
			_mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xb + 24), vlo), vid),
				      half),
			yb + 4);
	}
}

/* x (k,) -> blocks of nbytes through kernel, QG_NB blocks at a time; a last
 * partial step runs on a zero-padded copy (blocks are independent) */
static void q4_rows(void (*kernel)(const float *, uint8_t *), const float *x, uint8_t *y,
		    int64_t k, int nbytes)
{
	float xt[QG_NB * QK4];
	uint8_t yt[QG_NB * Q4_1_BYTES];
	int64_t b, nb = k / QK4;
	int rest;

	for (b = 0; b + QG_NB <= nb; b += QG_NB)
		kernel(x + b * QK4, y + b * nbytes);
	rest = (int)(nb - b);
	if (rest > 0) {
		memset(xt, 0, sizeof(xt));
		memcpy(xt, x + b * QK4, (size_t)rest * QK4 * sizeof(float));
		kernel(xt, yt);
		memcpy(y + b * nbytes, yt, (size_t)rest * (size_t)nbytes);
	}
}

/* ---- the fast Q4_K and Q6_K quantizers ---- */

/*
 * make_qkx2_quants and make_qx_quants keep running sums over a sub-block
 * in element order.  Here each lane of a vector is one sub-block and runs
 * _ref's operations on it in _ref's order (the same products, sums and
 * quotients; comparisons and the choice among candidates are lane masks and
 * blends), so every lane gives _ref's bits.  The searches are compiled for
 * AVX2 (8 lanes) and, when the CPU has it, AVX-512 (16 lanes) from one
 * template at the end of this file, under fp-contract=off: AVX-512F has
 * fused multiply-adds, which the compiler must not put in the place of a
 * product and a sum (the template uses none).
 *
 * A search gives, per sub-block, _ref's scale (and min) and the (iscale,
 * min) its codes came from; the codes are computed again, by the same
 * operations, only where _ref keeps them (a sub-block whose requantization
 * scale is 0).  The rest of a super-block (6-bit scales, fp16 d,
 * requantization, packing) is _ref's, vectorized across values.  A
 * super-block with a value that is not finite goes through _ref.
 */

/*
 * Results of a search over up to KQ_LANES sub-blocks: lane 8b + j is
 * sub-block j of the search's Q4_K super-block b, lane 16b + j sub-block j
 * of its Q6_K super-block b.  The codes the search leaves in L are 0 in
 * the lanes of zmask, else clamp(nearest_int(liscale * (x - lmin)), 0, 15)
 * for Q4_K, clamp(nearest_int(liscale * x), -32, 31) + 32 for Q6_K.
 */
#define KQ_LANES 64
struct kq_fit {
	float scale[KQ_LANES];   /* make_qkx2_quants' or make_qx_quants' result */
	float the_min[KQ_LANES]; /* Q4_K: make_qkx2_quants' *the_min */
	float liscale[KQ_LANES]; /* the codes' scale (see above) */
	float lmin[KQ_LANES];    /* Q4_K: the codes' min */
	uint64_t zmask;          /* bit per lane: _ref returned early */
};

/* lanes: ggml's nearest_int, the bit trick kept for every float */
QG_AVX2 static inline __m256i qg_nearest(__m256 v)
{
	__m256i b = _mm256_castps_si256(_mm256_add_ps(v, _mm256_set1_ps(12582912.f)));

	return _mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x007fffff)),
				_mm256_set1_epi32(0x00400000));
}

/* fp16 of f (nearest even) and a half's float, as mcb_f32_to_f16 and
 * mcb_f16_to_f32 give them: F16C agrees with both on every value that is
 * not NaN (checked exhaustively), and a NaN goes to mcb_f32_to_f16 */
QG_AVX2 static inline uint16_t qg_f16(float f)
{
	return f == f ? (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT) : mcb_f32_to_f16(f);
}

QG_AVX2 static inline float qg_f32(uint16_t h)
{
	return (h & 0x7c00) != 0x7c00 || !(h & 0x3ff) ? _cvtsh_ss(h) : mcb_f16_to_f32(h);
}

/* r[0..7] rows of 8 -> r[t] = column t */
QG_AVX2 static inline void qg_transpose8(__m256 *r)
{
	__m256 t[8], u[8];
	int i;

	for (i = 0; i < 8; i += 2) {
		t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
		t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
	}
	for (i = 0; i < 8; i += 4) {
		u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
		u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
		u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
		u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
	}
	for (i = 0; i < 4; i++) {
		r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
		r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
	}
}

/*
 * A search's input xt (QNS, n, qw), QNS vectors of qw lanes: value i of the
 * sub-block in lane l of vector v at xt[(n v + i) qw + l].  kq_lanes: where
 * lane `lane` starts.
 * kq_put: 8 consecutive sub-blocks of n values (n = 16, 32) at x into the
 * 8 lanes from dst (zeros when x is NULL); returns 0 when a value is not
 * finite (x - x is then NaN), and then puts zeros.
 */
static float *kq_lanes(float *xt, int n, int qw, int lane)
{
	return xt + (lane / qw) * n * qw + lane % qw;
}

QG_AVX2 static int kq_put(const float *x, int n, float *dst, int qw)
{
	__m256 r[8], nf = _mm256_setzero_ps();
	int c, j, fin = x != NULL;

	for (c = 0; fin && c < n; c += 8) {
		for (j = 0; j < 8; j++) {
			r[j] = _mm256_loadu_ps(x + n * j + c);
			nf = _mm256_or_ps(nf, _mm256_sub_ps(r[j], r[j]));
		}
		qg_transpose8(r);
		for (j = 0; j < 8; j++)
			_mm256_storeu_ps(dst + (c + j) * qw, r[j]);
	}
	if (fin && _mm256_movemask_ps(_mm256_cmp_ps(nf, nf, _CMP_UNORD_Q)) == 0)
		return 1;
	for (c = 0; c < n; c++)
		_mm256_storeu_ps(dst + c * qw, _mm256_setzero_ps());
	return 0;
}

/* 32 codes as int32 lanes in v[0..3] (each 0..63) -> bytes p (32,) */
QG_AVX2 static inline void qg_bytes32(const __m256i *v, uint8_t *p)
{
	__m256i q = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]),
				       _mm256_packs_epi32(v[2], v[3]));

	q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)p, q);
}

/* the searches, from the template at the end of this file, with no
 * product and sum fused into one rounding */
#ifdef __clang__
#pragma clang fp contract(off)
#else
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
#define QG_KQ_W 8
#include "quant_ggml.c"
#undef QG_KQ_W
#ifdef QG_AVX512
#define QG_KQ_W 16
#include "quant_ggml.c"
#undef QG_KQ_W
#endif
#ifdef __clang__
#pragma clang fp contract(on)
#else
#pragma GCC pop_options
#endif

/* 1 when the CPU and OS support AVX-512F (GCC's check reads XCR0) */
static int qg_have_avx512(void)
{
#ifdef QG_AVX512
	static atomic_int cached; /* 0 unknown, 1 no, 2 yes */
	int v = atomic_load_explicit(&cached, memory_order_relaxed);

	if (v == 0) {
		v = __builtin_cpu_supports("avx512f") ? 2 : 1;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return v == 2;
#else
	return 0;
#endif
}

/* one Q4_K super-block, x (256,) -> y (144 bytes), as _ref, from the
 * search's lanes lane .. lane + 7 in f */
QG_AVX2 static void q4_k_block(const float *x, const struct kq_fit *f, int lane, uint8_t *y)
{
	const __m256i lo = _mm256_setzero_si256(), hi = _mm256_set1_epi32(15);
	const float *scales = f->scale + lane, *mins = f->the_min + lane;
	uint8_t L[QKK], *sc12 = y + 4, *qs = y + 16, sc, m;
	float max_scale = 0, max_min = 0, d0, dmin0;
	int j, l;

	for (j = 0; j < QKK / 32; j++) {
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	q4_k_pack_scales(scales, mins, max_scale, max_min, y, &d0, &dmin0);
	for (j = 0; j < QKK / 32; j++) {
		const float *xj = x + 32 * j;
		__m256i q[4];
		__m256 vd, vdm;
		float d;

		get_scale_min_k4(j, sc12, &sc, &m);
		d = d0 * (float)sc;
		if (d == 0.0f) { /* make_qkx2_quants' codes */
			const float is = f->liscale[lane + j], mn = f->lmin[lane + j];
			const int zero = f->zmask >> (lane + j) & 1;

			for (l = 0; l < 32; l++) {
				int c = zero ? 0 : nearest_int(is * (xj[l] - mn));

				L[32 * j + l] = (uint8_t)(c < 0 ? 0 : c > 15 ? 15 : c);
			}
			continue;
		}
		vd = _mm256_set1_ps(d);
		vdm = _mm256_set1_ps(dmin0 * (float)m);
		for (l = 0; l < 4; l++) {
			__m256 v = _mm256_div_ps(_mm256_add_ps(_mm256_loadu_ps(xj + 8 * l), vdm), vd);

			q[l] = _mm256_min_epi32(_mm256_max_epi32(qg_nearest(v), lo), hi);
		}
		qg_bytes32(q, L + 32 * j);
	}
	for (j = 0; j < QKK; j += 64) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(L + j));
		__m256i b = _mm256_loadu_si256((const __m256i *)(L + j + 32));

		_mm256_storeu_si256((__m256i *)(qs + j / 2), _mm256_or_si256(a, _mm256_slli_epi16(b, 4)));
	}
}

/* one Q6_K super-block, x (256,) -> y (210 bytes), as _ref, from the
 * search's lanes lane .. lane + 15 in f */
QG_AVX2 static void q6_k_block(const float *x, const struct kq_fit *f, int lane, uint8_t *y)
{
	const __m256i lo = _mm256_set1_epi32(-32), hi = _mm256_set1_epi32(31);
	const __m256i k32 = _mm256_set1_epi32(32);
	const float *scales = f->scale + lane;
	uint8_t L[QKK], *ql = y, *qh = y + 128;
	int8_t *sc = (int8_t *)(y + 192);
	float max_scale = 0, max_abs_scale = 0, iscale, d0;
	int j, l, h;

	for (j = 0; j < QKK / 16; j++)
		if (fabsf(scales[j]) > max_abs_scale) {
			max_abs_scale = fabsf(scales[j]);
			max_scale = scales[j];
		}
	if (max_abs_scale < GROUP_MAX_EPS) {
		memset(y, 0, Q6_K_BYTES); /* d = +0 */
		return;
	}
	iscale = -128.f / max_scale;
	st16(y + 208, qg_f16(1 / iscale));
	for (j = 0; j < QKK / 16; j++) {
		int v = nearest_int(iscale * scales[j]);

		sc[j] = (int8_t)(uint8_t)(v < 127 ? v : 127); /* int8_t as ggml stores it */
	}
	d0 = qg_f32(ld16(y + 208));
	for (j = 0; j < QKK / 16; j += 2) {
		__m256i q[4];

		for (h = 0; h < 2; h++) {
			const float *xj = x + 16 * (j + h);
			const float d = d0 * (float)sc[j + h];

			for (l = 0; l < 2; l++) {
				__m256 v = _mm256_loadu_ps(xj + 8 * l);

				if (d == 0.0f) /* make_qx_quants' codes */
					v = _mm256_mul_ps(_mm256_set1_ps(f->liscale[lane + j + h]), v);
				else
					v = _mm256_div_ps(v, _mm256_set1_ps(d));
				q[2 * h + l] = _mm256_add_epi32(
					_mm256_min_epi32(_mm256_max_epi32(qg_nearest(v), lo), hi), k32);
				if (d == 0.0f && (f->zmask >> (lane + j + h) & 1))
					q[2 * h + l] = _mm256_setzero_si256();
			}
		}
		qg_bytes32(q, L + 16 * j);
	}
	for (j = 0; j < QKK; j += 128, ql += 64, qh += 32) {
		const __m256i m4 = _mm256_set1_epi8(0xF), m2 = _mm256_set1_epi8(0x30);
		__m256i u0 = _mm256_loadu_si256((const __m256i *)(L + j));
		__m256i u1 = _mm256_loadu_si256((const __m256i *)(L + j + 32));
		__m256i u2 = _mm256_loadu_si256((const __m256i *)(L + j + 64));
		__m256i u3 = _mm256_loadu_si256((const __m256i *)(L + j + 96));
		__m256i hb;

		/* ql: low nibbles of L[+0] | L[+64] << 4, L[+32] | L[+96] << 4;
		 * qh: bits 4-5 of L[+0], L[+32], L[+64], L[+96] at 0, 2, 4, 6 */
		_mm256_storeu_si256((__m256i *)ql,
				    _mm256_or_si256(_mm256_and_si256(u0, m4),
						    _mm256_slli_epi16(_mm256_and_si256(u2, m4), 4)));
		_mm256_storeu_si256((__m256i *)(ql + 32),
				    _mm256_or_si256(_mm256_and_si256(u1, m4),
						    _mm256_slli_epi16(_mm256_and_si256(u3, m4), 4)));
		hb = _mm256_or_si256(_mm256_srli_epi16(_mm256_and_si256(u0, m2), 4),
				     _mm256_srli_epi16(_mm256_and_si256(u1, m2), 2));
		hb = _mm256_or_si256(hb, _mm256_or_si256(_mm256_and_si256(u2, m2),
							 _mm256_slli_epi16(_mm256_and_si256(u3, m2), 2)));
		_mm256_storeu_si256((__m256i *)qh, hb);
	}
}

/*
 * Q4_K (Q6_K) of nb whole super-blocks, x (nb * 256,) -> y (nb * 144
 * (210) bytes): each search takes QNS vectors of qw lanes, g = QNS qw / 8
 * (QNS qw / 16) super-blocks: AVX-512 (4 vectors of 16) when the CPU has
 * it and more than 2 super-blocks are left, else AVX2 (2 vectors of 8).
 * A last partial step searches zeros in the missing lanes, and a
 * super-block with a value that is not finite goes through _ref
 * (super-blocks are independent).
 */
QG_AVX2 static void q4_k_rows(const float *x, uint8_t *y, int64_t nb)
{
	const int wide = qg_have_avx512();
	_Alignas(64) float xt[KQ_LANES * 32];
	struct kq_fit f;
	int64_t b;
	int s, n, fin, qw, g;

	for (b = 0; b < nb; b += g) {
		qw = wide && nb - b > 2 ? 16 : 8;
		g = qw == 16 ? 8 : 2;
		n = nb - b < g ? (int)(nb - b) : g;
		for (s = fin = 0; s < g; s++)
			fin |= kq_put(s < n ? x + (b + s) * QKK : NULL, 32,
				      kq_lanes(xt, 32, qw, 8 * s), qw) << s;
#ifdef QG_AVX512
		if (qw == 16)
			q4_k_fit_avx512(xt, &f);
		else
#endif
			q4_k_fit_avx2(xt, &f);
		for (s = 0; s < n; s++) {
			if (fin >> s & 1)
				q4_k_block(x + (b + s) * QKK, &f, 8 * s, y + (b + s) * Q4_K_BYTES);
			else
				mcb_quantize_row_q4_k_ref(x + (b + s) * QKK, y + (b + s) * Q4_K_BYTES, QKK);
		}
	}
}

QG_AVX2 static void q6_k_rows(const float *x, uint8_t *y, int64_t nb)
{
	const int wide = qg_have_avx512();
	_Alignas(64) float xt[KQ_LANES * 16];
	struct kq_fit f;
	int64_t b;
	int s, n, fin, qw, g;

	for (b = 0; b < nb; b += g) {
		qw = wide && nb - b > 2 ? 16 : 8;
		g = qw == 16 ? 4 : 1;
		n = nb - b < g ? (int)(nb - b) : g;
		for (s = fin = 0; s < g; s++) {
			const float *xs = s < n ? x + (b + s) * QKK : NULL;
			int ok = kq_put(xs, 16, kq_lanes(xt, 16, qw, 16 * s), qw);

			ok &= kq_put(xs ? xs + 128 : NULL, 16, kq_lanes(xt, 16, qw, 16 * s + 8), qw);
			fin |= ok << s;
		}
#ifdef QG_AVX512
		if (qw == 16)
			q6_k_fit_avx512(xt, &f);
		else
#endif
			q6_k_fit_avx2(xt, &f);
		for (s = 0; s < n; s++) {
			if (fin >> s & 1)
				q6_k_block(x + (b + s) * QKK, &f, 16 * s, y + (b + s) * Q6_K_BYTES);
			else
				mcb_quantize_row_q6_k_ref(x + (b + s) * QKK, y + (b + s) * Q6_K_BYTES, QKK);
		}
	}
}
#endif

void mcb_quantize_row_q4_0(const float *x, void *vy, int64_t k)
{
#ifdef QG_X86
	if (qg_have_avx2()) {
		q4_rows(q4_0_avx2, x, vy, k, Q4_0_BYTES);
		return;
	}
#endif
	mcb_quantize_row_q4_0_ref(x, vy, k);
}

/* Q4_1 as mcb_quantize_row_q4_1_ref, bit for bit, faster where it can */
static void quantize_row_q4_1(const float *x, void *vy, int64_t k)
{
#ifdef QG_X86
	if (qg_have_avx2()) {
		q4_rows(q4_1_avx2, x, vy, k, Q4_1_BYTES);
		return;
	}
#endif
	mcb_quantize_row_q4_1_ref(x, vy, k);
}

/* Q4_K as mcb_quantize_row_q4_k_ref, bit for bit, faster where it can */
static void quantize_row_q4_k(const float *x, void *vy, int64_t k)
{
#ifdef QG_X86
	if (qg_have_avx2()) {
		q4_k_rows(x, vy, k / QKK);
		return;
	}
#endif
	mcb_quantize_row_q4_k_ref(x, vy, k);
}

/* Q6_K as mcb_quantize_row_q6_k_ref, bit for bit, faster where it can */
static void quantize_row_q6_k(const float *x, void *vy, int64_t k)
{
#ifdef QG_X86
	if (qg_have_avx2()) {
		q6_k_rows(x, vy, k / QKK);
		return;
	}
#endif
	mcb_quantize_row_q6_k_ref(x, vy, k);
}

/* ---- dispatch ---- */

void mcb_dequantize_row_ggml(enum mcb_dtype t, const void *x, float *y, int64_t k)
{
	switch (t) {
	case MCB_DT_Q8_0:
		dequantize_q8_0_blocks(x, y, k);
		break;
	case MCB_DT_Q4_0:
		mcb_dequantize_row_q4_0_ref(x, y, k);
		break;
	case MCB_DT_Q4_1:
		mcb_dequantize_row_q4_1_ref(x, y, k);
		break;
	case MCB_DT_Q4_K:
		mcb_dequantize_row_q4_k_ref(x, y, k);
		break;
	case MCB_DT_Q6_K:
		mcb_dequantize_row_q6_k_ref(x, y, k);
		break;
	default:
		memset(y, 0, (size_t)k * sizeof(*y));
		break;
	}
}

void mcb_quantize_row_ggml(enum mcb_dtype t, const float *x, void *y, int64_t k)
{
	switch (t) {
	case MCB_DT_Q8_0:
		quantize_q8_0_blocks(x, y, k);
		break;
	case MCB_DT_Q4_0:
		mcb_quantize_row_q4_0(x, y, k);
		break;
	case MCB_DT_Q4_1:
		quantize_row_q4_1(x, y, k);
		break;
	case MCB_DT_Q4_K:
		quantize_row_q4_k(x, y, k);
		break;
	case MCB_DT_Q6_K:
		quantize_row_q6_k(x, y, k);
		break;
	default:
		break;
	}
}

#else /* QG_KQ_W */

/*
 * ---- template: the Q4_K and Q6_K searches for vectors of QG_KQ_W lanes ----
 * Included twice from the middle of this file (see "the fast Q4_K and Q6_K
 * quantizers"), for AVX2 (8) and AVX-512 (16); qv_* name the vector
 * operations, qm_* the lane masks.
 */
#if QG_KQ_W == 8
#define QW 8
#define QNS 2 /* vectors per search (16 registers) */
#define QV_TARGET QG_AVX2
#define QV_FN(f) f##_avx2
#define qv __m256
#define qm __m256
#define qv_load _mm256_loadu_ps
#define qv_store _mm256_storeu_ps
#define qv_set1 _mm256_set1_ps
#define qv_zero _mm256_setzero_ps
#define qv_add _mm256_add_ps
#define qv_sub _mm256_sub_ps
#define qv_mul _mm256_mul_ps
#define qv_div _mm256_div_ps
#define qv_sqrt _mm256_sqrt_ps
#define qv_max _mm256_max_ps
#define qv_abs(v) _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v)
#define qv_neg(v) _mm256_xor_ps(v, _mm256_set1_ps(-0.0f))
#define qv_round(v) _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define qv_blend(a, b, m) _mm256_blendv_ps(a, b, m) /* m ? b : a */
#define qv_cmp _mm256_cmp_ps
#define qm_and _mm256_and_ps
#define qm_or _mm256_or_ps
#define qm_bits(m) ((uint32_t)_mm256_movemask_ps(m))
#define qi __m256i
#define qi_set1 _mm256_set1_epi32
#define qi_and _mm256_and_si256
#define qi_sub _mm256_sub_epi32
#define qi_max _mm256_max_epi32
#define qi_min _mm256_min_epi32
#define qi_minu _mm256_min_epu32
#define qi_of _mm256_castps_si256
#define qv_of _mm256_castsi256_ps
#define qv_cvt _mm256_cvtepi32_ps
#else
#define QW 16
#define QNS 4 /* vectors per search (32 registers) */
#define QV_TARGET QG_AVX512
#define QV_FN(f) f##_avx512
#define qv __m512
#define qm __mmask16
#define qv_load _mm512_loadu_ps
#define qv_store _mm512_storeu_ps
#define qv_set1 _mm512_set1_ps
#define qv_zero _mm512_setzero_ps
#define qv_add _mm512_add_ps
#define qv_sub _mm512_sub_ps
#define qv_mul _mm512_mul_ps
#define qv_div _mm512_div_ps
#define qv_sqrt _mm512_sqrt_ps
#define qv_max _mm512_max_ps
#define qv_abs _mm512_abs_ps
#define qv_neg(v) _mm512_castsi512_ps( \
	_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000)))
#define qv_round(v) _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define qv_blend(a, b, m) _mm512_mask_blend_ps(m, a, b) /* m ? b : a */
#define qv_cmp _mm512_cmp_ps_mask
#define qm_and(a, b) ((__mmask16)((a) & (b)))
#define qm_or(a, b) ((__mmask16)((a) | (b)))
#define qm_bits(m) ((uint32_t)(m))
#define qi __m512i
#define qi_set1 _mm512_set1_epi32
#define qi_and _mm512_and_si512
#define qi_sub _mm512_sub_epi32
#define qi_max _mm512_max_epi32
#define qi_min _mm512_min_epi32
#define qi_minu _mm512_min_epu32
#define qi_of _mm512_castps_si512
#define qv_of _mm512_castsi512_ps
#define qv_cvt _mm512_cvtepi32_ps
#endif
#define QM_ALL ((1u << QW) - 1)

/* lanes: clamp(nearest_int(v), lo, hi) as a float, the bit trick */
QV_TARGET static inline qv QV_FN(code_bits)(qv v, int lo, int hi)
{
	qi b = qi_of(qv_add(v, qv_set1(12582912.f)));

	b = qi_sub(qi_and(b, qi_set1(0x007fffff)), qi_set1(0x00400000));
	return qv_cvt(qi_min(qi_max(b, qi_set1(lo)), qi_set1(hi)));
}

/* lanes: clamp(nearest_int(v), 0, 15) as a float, for |v| < 2^21, where
 * VROUNDPS (to nearest, half to even) gives nearest_int's value; clamped on
 * the bits as integers, whose order is the floats' among non-negative ones
 * (a negative float, -0 included, has negative bits and becomes +0) */
QV_TARGET static inline qv QV_FN(code15)(qv v)
{
	qi b = qi_max(qi_of(qv_round(v)), qi_set1(0));

	return qv_of(qi_min(b, qi_set1(0x41700000))); /* 15.f */
}

/* lanes: clamp(nearest_int(v), -32, 31) as a float, for |v| < 2^21, as
 * code15: an unsigned minimum caps the negative floats' magnitudes (their
 * bits are 2^31 + those of |v|, above every non-negative float's), a signed
 * one the non-negative floats (negative floats have negative bits).  A code
 * 0 may come out as -0, which changes no sum of products started at +0. */
QV_TARGET static inline qv QV_FN(code32)(qv v)
{
	qi b = qi_minu(qi_of(qv_round(v)), qi_set1((int)0xc2000000)); /* -32.f */

	return qv_of(qi_min(b, qi_set1(0x41f80000))); /* 31.f */
}

/* make_qkx2_quants' candidate iscale is (rmin + rdelta * is + nmax) / (max - min) */
static inline float QV_FN(q4k_c)(int is)
{
	return -1.f + 0.1f * (float)is + 15.f;
}

/*
 * One candidate's sums over the QNS vectors of q4_k_fit: the codes l =
 * clamp(nearest_int(iscale * (x - min)), 0, 15) into fl, and sl += w l,
 * sl2 += w l l, sxl += w l x in value order.  How l is computed (a
 * constant after inlining): code15 when fast (every |iscale * (x - min)|
 * below 2^21), else the bit trick.
 */
QV_TARGET static inline __attribute__((always_inline)) void QV_FN(q4k_sums)(
	int fast, const float *xt, qv (*wt)[32], qv (*fl)[32], const qv *iscale, const qv *min,
	qv *sl, qv *sl2, qv *sxl)
{
	int i, s;

	for (i = 0; i < 32; i++)
#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			const qv x = qv_load(xt + (32 * s + i) * QW);
			qv l = qv_mul(iscale[s], qv_sub(x, min[s])), wl;

			l = fast ? QV_FN(code15)(l) : QV_FN(code_bits)(l, 0, 15);
			wl = qv_mul(wt[s][i], l);
			fl[s][i] = l;
			sl[s] = qv_add(sl[s], wl);
			sl2[s] = qv_add(sl2[s], qv_mul(wl, l));
			sxl[s] = qv_add(sxl[s], qv_mul(wl, x));
		}
}

/*
 * make_qkx2_quants(32, 15, x, av_x + |x|, L, ..., -1, 0.1, 20) of the
 * QNS QW sub-blocks in xt (QNS, 32, QW) (kq_lanes), into f (lanes 0 ..
 * QNS QW - 1), the vectors' chains interleaved: a candidate's sums, its
 * error, then the choice, which moves the min the next candidate starts
 * from (the next iscale is divided out for both outcomes beforehand).
 * |iscale * (x - min)|, for q4k_sums, is at most |iscale| * max(|max -
 * min|, |xmin - min|), x - min being monotonic in x; lanes with max == min
 * returned early in _ref and are not checked.
 */
QV_TARGET static void QV_FN(q4_k_fit)(const float *xt, struct kq_fit *f)
{
	const qv zero = qv_zero();
	qv wt[QNS][32], fl[QNS][32], min[QNS], max[QNS], xmin[QNS], min0[QNS], sum_w[QNS];
	qv sum_x[QNS], scale[QNS], best[QNS], liscale[QNS], lmin[QNS], iscale[QNS];
	qm zm[QNS];
	uint64_t zbits = 0;
	int i, is, s;

#pragma GCC unroll 4
	for (s = 0; s < QNS; s++) {
		const float *xs = xt + 32 * QW * s;
		qv sx2 = zero, av, sc;

		for (i = 0; i < 32; i++)
			sx2 = qv_add(sx2, qv_mul(qv_load(xs + QW * i), qv_load(xs + QW * i)));
		av = qv_sqrt(qv_div(sx2, qv_set1(32.f)));
		for (i = 0; i < 32; i++)
			wt[s][i] = qv_add(av, qv_abs(qv_load(xs + QW * i)));
		min[s] = max[s] = qv_load(xs);
		sum_w[s] = wt[s][0];
		sum_x[s] = qv_mul(sum_w[s], qv_load(xs));
		for (i = 1; i < 32; i++) {
			const qv x = qv_load(xs + QW * i);

			min[s] = qv_blend(min[s], x, qv_cmp(x, min[s], _CMP_LT_OQ));
			max[s] = qv_blend(max[s], x, qv_cmp(x, max[s], _CMP_GT_OQ));
			sum_w[s] = qv_add(sum_w[s], wt[s][i]);
			sum_x[s] = qv_add(sum_x[s], qv_mul(wt[s][i], x));
		}
		xmin[s] = min[s];
		min[s] = qv_blend(min[s], zero, qv_cmp(min[s], zero, _CMP_GT_OQ));
		min0[s] = min[s];
		zm[s] = qv_cmp(max[s], min[s], _CMP_EQ_OQ);
		liscale[s] = qv_div(qv_set1(15.f), qv_sub(max[s], min[s]));
		sc = qv_div(qv_set1(1.f), liscale[s]);
		best[s] = zero;
		for (i = 0; i < 32; i++) {
			const qv x = qv_load(xs + QW * i);
			qv l = QV_FN(code_bits)(qv_mul(liscale[s], qv_sub(x, min[s])), 0, 15);
			qv diff = qv_sub(qv_add(qv_mul(sc, l), min[s]), x);

			diff = qv_mul(diff, diff);
			best[s] = qv_add(best[s], qv_mul(wt[s][i], diff));
		}
		scale[s] = sc;
		lmin[s] = min[s];
		iscale[s] = qv_div(qv_set1(QV_FN(q4k_c)(0)), qv_sub(max[s], min[s]));
	}
	for (is = 0; is <= 20; is++) {
		qv sl[QNS], sl2[QNS], sxl[QNS], err[QNS], ts[QNS], tm[QNS], d[QNS];
		qv keep[QNS], moved[QNS];
		int bounded = 1;

#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			qv m = qv_max(qv_abs(qv_sub(max[s], min[s])), qv_abs(qv_sub(xmin[s], min[s])));

			m = qv_mul(qv_abs(iscale[s]), m);
			bounded &= qm_bits(qm_or(zm[s], qv_cmp(m, qv_set1(2097152.f), _CMP_LT_OQ))) ==
				   QM_ALL;
			sl[s] = sl2[s] = sxl[s] = err[s] = zero;
		}
		if (bounded)
			QV_FN(q4k_sums)(1, xt, wt, fl, iscale, min, sl, sl2, sxl);
		else
			QV_FN(q4k_sums)(0, xt, wt, fl, iscale, min, sl, sl2, sxl);
#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			qm pos;

			d[s] = qv_sub(qv_mul(sum_w[s], sl2[s]), qv_mul(sl[s], sl[s]));
			ts[s] = qv_div(qv_sub(qv_mul(sum_w[s], sxl[s]), qv_mul(sum_x[s], sl[s])), d[s]);
			tm[s] = qv_div(qv_sub(qv_mul(sl2[s], sum_x[s]), qv_mul(sl[s], sxl[s])), d[s]);
			pos = qv_cmp(tm[s], zero, _CMP_GT_OQ);
			tm[s] = qv_blend(tm[s], zero, pos);
			ts[s] = qv_blend(ts[s], qv_div(sxl[s], sl2[s]), pos);
			keep[s] = qv_div(qv_set1(QV_FN(q4k_c)(is + 1)), qv_sub(max[s], min[s]));
			moved[s] = qv_div(qv_set1(QV_FN(q4k_c)(is + 1)), qv_sub(max[s], tm[s]));
		}
		for (i = 0; i < 32; i++)
#pragma GCC unroll 4
			for (s = 0; s < QNS; s++) {
				const qv x = qv_load(xt + (32 * s + i) * QW);
				qv diff = qv_sub(qv_add(qv_mul(ts[s], fl[s][i]), tm[s]), x);

				diff = qv_mul(diff, diff);
				err[s] = qv_add(err[s], qv_mul(wt[s][i], diff));
			}
#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			qm acc = qm_and(qv_cmp(d[s], zero, _CMP_GT_OQ),
					qv_cmp(err[s], best[s], _CMP_LT_OQ));

			best[s] = qv_blend(best[s], err[s], acc);
			scale[s] = qv_blend(scale[s], ts[s], acc);
			liscale[s] = qv_blend(liscale[s], iscale[s], acc);
			lmin[s] = qv_blend(lmin[s], min[s], acc);
			min[s] = qv_blend(min[s], tm[s], acc);
			iscale[s] = qv_blend(keep[s], moved[s], acc);
		}
	}
	for (s = 0; s < QNS; s++) {
		/* a lane with max == min returned early in _ref */
		qv_store(f->scale + QW * s, qv_blend(scale[s], zero, zm[s]));
		qv_store(f->the_min + QW * s, qv_neg(qv_blend(min[s], min0[s], zm[s])));
		qv_store(f->liscale + QW * s, liscale[s]);
		qv_store(f->lmin + QW * s, lmin[s]);
		zbits |= (uint64_t)qm_bits(zm[s]) << (QW * s);
	}
	f->zmask = zbits;
}

/*
 * make_qx_quants(16, 32, x, L, 1, NULL) of the QNS QW sub-blocks in xt
 * (QNS, 16, QW) (kq_lanes), into f->scale, f->liscale and f->zmask.  The
 * candidates' sums are independent; only the choice is a chain.  In a lane
 * that does not return early |max| >= 1e-15 and |x| <= |max|, so
 * |iscale * x| <= 32.9 (1 + 2^-23)^2 and code32 applies.
 */
QV_TARGET static void QV_FN(q6_k_fit)(const float *xt, struct kq_fit *f)
{
	const qv zero = qv_zero();
	qv w[QNS][16], wx[QNS][16], max[QNS], scale[QNS], best[QNS], liscale[QNS];
	qm zm[QNS];
	uint64_t zbits = 0;
	int i, k, s;

#pragma GCC unroll 4
	for (s = 0; s < QNS; s++) {
		qv amax = zero;

		max[s] = zero;
		for (i = 0; i < 16; i++) {
			const qv x = qv_load(xt + (16 * s + i) * QW), ax = qv_abs(x);
			const qm gt = qv_cmp(ax, amax, _CMP_GT_OQ);

			amax = qv_blend(amax, ax, gt);
			max[s] = qv_blend(max[s], x, gt);
			w[s][i] = qv_mul(x, x);
			wx[s][i] = qv_mul(w[s][i], x);
		}
		zm[s] = qv_cmp(amax, qv_set1(GROUP_MAX_EPS), _CMP_LT_OQ);
		scale[s] = best[s] = liscale[s] = zero; /* set at k = 0 */
	}
	/* k = 0: iscale -nmax / max; then is = -9 .. -1, 1 .. 9 */
	for (k = 0; k < 19; k++) {
		const int is = k < 10 ? k - 10 : k - 9;
		const float c = k == 0 ? -32.f : -(32.f + 0.1f * (float)is);
		qv iscale[QNS], sumlx[QNS], suml2[QNS];

#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			iscale[s] = qv_div(qv_set1(c), max[s]);
			sumlx[s] = suml2[s] = zero;
		}
		for (i = 0; i < 16; i++)
#pragma GCC unroll 4
			for (s = 0; s < QNS; s++) {
				qv l = QV_FN(code32)(qv_mul(iscale[s], qv_load(xt + (16 * s + i) * QW)));

				sumlx[s] = qv_add(sumlx[s], qv_mul(wx[s][i], l));
				suml2[s] = qv_add(suml2[s], qv_mul(qv_mul(w[s][i], l), l));
			}
#pragma GCC unroll 4
		for (s = 0; s < QNS; s++) {
			if (k == 0) {
				scale[s] = qv_blend(zero, qv_div(sumlx[s], suml2[s]),
						    qv_cmp(suml2[s], zero, _CMP_NEQ_UQ));
				best[s] = qv_mul(scale[s], sumlx[s]);
				liscale[s] = iscale[s];
			} else {
				qm acc = qm_and(qv_cmp(suml2[s], zero, _CMP_GT_OQ),
						qv_cmp(qv_mul(sumlx[s], sumlx[s]),
						       qv_mul(best[s], suml2[s]), _CMP_GT_OQ));
				qv ns = qv_div(sumlx[s], suml2[s]);

				scale[s] = qv_blend(scale[s], ns, acc);
				best[s] = qv_blend(best[s], qv_mul(ns, sumlx[s]), acc);
				liscale[s] = qv_blend(liscale[s], iscale[s], acc);
			}
		}
	}
	for (s = 0; s < QNS; s++) {
		qv_store(f->scale + QW * s, qv_blend(scale[s], zero, zm[s]));
		qv_store(f->liscale + QW * s, liscale[s]);
		zbits |= (uint64_t)qm_bits(zm[s]) << (QW * s);
	}
	f->zmask = zbits;
}

#undef QW
#undef QNS
#undef QV_TARGET
#undef QV_FN
#undef qv
#undef qm
#undef qv_load
#undef qv_store
#undef qv_set1
#undef qv_zero
#undef qv_add
#undef qv_sub
#undef qv_mul
#undef qv_div
#undef qv_sqrt
#undef qv_max
#undef qv_abs
#undef qv_neg
#undef qv_round
#undef qv_blend
#undef qv_cmp
#undef qm_and
#undef qm_or
#undef qm_bits
#undef qi
#undef qi_set1
#undef qi_and
#undef qi_sub
#undef qi_max
#undef qi_min
#undef qi_minu
#undef qi_of
#undef qv_of
#undef qv_cvt
#undef QM_ALL
#endif /* QG_KQ_W */
