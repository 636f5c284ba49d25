/*
 * kernels: the engine's dot products, conversions and dequantizers (contracts
 * in include/mcb/kernels.h).
 *
 * The _ref functions are the oracle: plain loops; the EXACT-mode dot
 * products sum in double with one rounding to float at the end, the GGML-
 * mode ones spell out ggml's float order (below).  The AVX2 functions
 * (compiled with target attributes and picked at run time, so the binary
 * still runs on any x86-64 and elsewhere) keep 8-lane float accumulators
 * updated with FMA and reduce them at the end; they are tested against _ref
 * in tests/unit/test_engine.c (the GGML-mode ones bit for bit).
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

static float dot_bf16_bf16_ref(int64_t n, const uint16_t *w, const uint16_t *x)
{
	double s = 0.0;
	int64_t i;

	for (i = 0; i < n; i++)
		s += (double)mcb_bf16_to_f32(w[i]) * (double)mcb_bf16_to_f32(x[i]);
	return (float)s;
}

/* ggml's order (the AVX2 kernel's, so that both tables give llama.cpp's
 * bits in GGML mode): per block, 8 lanes of the integer sums of 4
 * consecutive products, acc[l] = fma(dw * dx, isum[l], acc[l]) (dw * dx
 * exact: two halves), then hsum_float_8 */
static float dot_q8_0_q8_0_ref(int64_t n, const int8_t *wq, const uint16_t *wd,
			       const int8_t *xq, const uint16_t *xd)
{
	float acc[8] = {0};
	int64_t b, nb = n / MCB_QK;
	int l, t;

	for (b = 0; b < nb; b++) {
		const float d = mcb_f16_to_f32(wd[b]) * mcb_f16_to_f32(xd[b]);

		for (l = 0; l < 8; l++) {
			int32_t isum = 0;

			for (t = 0; t < 4; t++)
				isum += (int32_t)wq[b * MCB_QK + 4 * l + t] *
					(int32_t)xq[b * MCB_QK + 4 * l + t];
			acc[l] = fmaf(d, (float)isum, acc[l]);
		}
	}
	return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
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

/* ---- ggml block weights (GGML mode), scalar oracle ----
 *
 * Each order is written as the float operations of the ggml kernel it
 * mirrors (ggml-cpu arch/x86, as llama.cpp v0.5.0 runs it on an AVX2 /
 * AVX-512 CPU): integer sums of code products (exact in every order),
 * grouped as ggml groups them before converting to float, then ggml's
 * sequence of float multiplies, fused multiply-adds (fmaf: one rounding)
 * and additions.  "8 lanes" below means ggml's eight int32/float lanes of
 * a 256-bit register: lane l of a 32-byte chunk holds the products of
 * bytes 4l..4l+3, and the lanes are summed at the end by hsum_float_8,
 * ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
 *
 *   Q8_0, Q4_0 (vec_dot_*_q8_0, and tinyBLAS for batches, which sums in
 *       the same order): per block b, acc[l] = fma(dw * dx, isum_b[l],
 *       acc[l]) (dw * dx exact: two halves); result hsum8(acc).  Q4_0
 *       codes are nibble - 8, in block order (low nibbles = values 0..15).
 *   Q4_0 repacked 8x8 (gemv and gemm alike): acc = fma(isum_b, dw * dx,
 *       acc) with the block's whole integer sum, blocks in order.
 *   Q4_1 x Q8_1: acc[l] = fma(dw * dx, isum_b[l], acc[l]) with unsigned
 *       nibbles, and summs = fma(mw, sx, summs) (ggml's "summs += m * s",
 *       contracted by the compiler); result hsum8(acc) + summs.
 *   Q4_K x Q8_K (vec_dot): per super-block d = dk * dw, dmin = -dk * dminw,
 *       8 lanes of sum_j (sc[2j] * lo_j[l] + sc[2j+1] * hi_j[l]) over the
 *       four 64-value chunks j, acc[l] = fma(d, isum[l], acc[l]); mins:
 *       4 lanes m of mn[2m] * bs[2m] + mn[2m+1] * bs[2m+1] (bs: code sums
 *       of the 8 sub-blocks), accm[m] = fma(dmin, isum[m], accm[m]); result
 *       hsum8(acc) + ((accm0 + accm2) + (accm1 + accm3)).
 *   Q4_K repacked, gemv: per super-block the whole sum_s sc[s] * S_s and
 *       sum_s mn[s] * bs[s], acc = fma(I, dw * dk, acc), accm = fma(M,
 *       dminw * dk, accm) (products rounded); result acc - accm.
 *   Q4_K repacked, gemm: the same per pair of sub-blocks (four fma per
 *       super-block into each accumulator).
 *   Q6_K x Q8_K: d = dk * dw; 8 lanes of sum over the eight 32-value
 *       chunks of sc * q * q8 (codes q 0..63, the -32 offset not applied),
 *       then lane m -= 32 * (bs16[2m] * sc[2m] + bs16[2m+1] * sc[2m+1])
 *       (bs16: the activation's sums of 16 codes), acc[l] = fma(d, isum[l],
 *       acc[l]); result hsum8(acc).  (llama.cpp v0.5.0 applies the offset
 *       through the sums; found with tests/compat/ggml_oracle.c, which runs
 *       llama.cpp's own kernels.)
 */

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* ggml hsum_float_8 of a[8] */
static float hsum8_ref(const float *a)
{
	return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* 6-bit scale and min of Q4_K sub-block j from scales[12] */
static void scale_min_k4(int j, const uint8_t *q, int *d, int *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

/* the 32 codes of a 32-value block: Q8_0 signed bytes, Q4_0 nibble - 8,
 * Q4_1 nibbles */
static void block32_codes(enum mcb_ggml_order o, const uint8_t *blk, int *c)
{
	int j;

	if (o == MCB_GO_Q8_0) {
		for (j = 0; j < 32; j++)
			c[j] = (int8_t)blk[2 + j];
		return;
	}
	blk += o == MCB_GO_Q4_1 ? 4 : 2;
	for (j = 0; j < 16; j++) {
		c[j] = blk[j] & 15;
		c[j + 16] = blk[j] >> 4;
		if (o != MCB_GO_Q4_1) {
			c[j] -= 8;
			c[j + 16] -= 8;
		}
	}
}

static float dot32_ref(enum mcb_ggml_order o, int64_t n, const uint8_t *w, const int8_t *xq,
		       const uint16_t *xd, const uint16_t *xs)
{
	const size_t bb = o == MCB_GO_Q8_0 ? 34 : o == MCB_GO_Q4_1 ? 20 : 18;
	float acc[8] = {0}, one = 0.0f, summs = 0.0f;
	int64_t b;
	int c[32], l, t;

	for (b = 0; b < n / 32; b++, w += bb, xq += 32) {
		const float dp = mcb_f16_to_f32(ld16(w)) * mcb_f16_to_f32(xd[b]);

		block32_codes(o, w, c);
		if (o == MCB_GO_Q4_0_R) {
			int32_t isum = 0;

			for (t = 0; t < 32; t++)
				isum += c[t] * xq[t];
			one = fmaf((float)isum, dp, one);
			continue;
		}
		for (l = 0; l < 8; l++) {
			int32_t isum = 0;

			for (t = 0; t < 4; t++)
				isum += c[4 * l + t] * xq[4 * l + t];
			acc[l] = fmaf(dp, (float)isum, acc[l]);
		}
		if (o == MCB_GO_Q4_1)
			summs = fmaf(mcb_f16_to_f32(ld16(w + 2)), mcb_f16_to_f32(xs[b]), summs);
	}
	if (o == MCB_GO_Q4_0_R)
		return one;
	return o == MCB_GO_Q4_1 ? hsum8_ref(acc) + summs : hsum8_ref(acc);
}

/* One Q4_K super-block's integer sums scaled into one (codes) and onem
 * (mins), in the order of ggml's GEMM (per pair of sub-blocks) or GEMV (the
 * super-block's sums, once): s of 8 sub-block scales sc, mins mn, code sums
 * S, activation block sums bs. */
static inline void q4k_sums(enum mcb_ggml_order o, const int *sc, const int32_t *S,
			    const int *mn, const int *bs, float d, float dmin, float *one,
			    float *onem)
{
	int32_t I = 0, M = 0;
	int s;

	for (s = 0; s < 8; s += 2) {
		int32_t Is = sc[s] * S[s] + sc[s + 1] * S[s + 1];
		int32_t Ms = mn[s] * bs[s] + mn[s + 1] * bs[s + 1];

		if (o == MCB_GO_Q4_K_GEMM) {
			*one = fmaf((float)Is, d, *one);
			*onem = fmaf((float)Ms, dmin, *onem);
		}
		I += Is;
		M += Ms;
	}
	if (o == MCB_GO_Q4_K_GEMV) {
		*one = fmaf((float)I, d, *one);
		*onem = fmaf((float)M, dmin, *onem);
	}
}

static float dot_q4_k_ref(enum mcb_ggml_order o, int64_t n, const uint8_t *w, const int8_t *xq,
			  const float *dk, const int16_t *bsums)
{
	float acc[8] = {0}, accm[4] = {0}, one = 0.0f, onem = 0.0f;
	int64_t b;
	int sc[8], mn[8], bs[8], j, l, t, s;

	for (b = 0; b < n / MCB_QKK; b++, w += 144, xq += MCB_QKK, bsums += 16) {
		const float dw = mcb_f16_to_f32(ld16(w)), dminw = mcb_f16_to_f32(ld16(w + 2));
		int32_t lane[8] = {0}, S[8] = {0};

		for (s = 0; s < 8; s++) {
			scale_min_k4(s, w + 4, &sc[s], &mn[s]);
			bs[s] = bsums[2 * s] + bsums[2 * s + 1];
		}
		for (j = 0; j < 4; j++) {
			const uint8_t *qs = w + 16 + 32 * j;
			const int8_t *q8 = xq + 64 * j;

			for (l = 0; l < 8; l++) {
				int32_t lo = 0, hi = 0;

				for (t = 0; t < 4; t++) {
					lo += (qs[4 * l + t] & 15) * q8[4 * l + t];
					hi += (qs[4 * l + t] >> 4) * q8[32 + 4 * l + t];
				}
				lane[l] += sc[2 * j] * lo + sc[2 * j + 1] * hi;
				S[2 * j] += lo;
				S[2 * j + 1] += hi;
			}
		}
		if (o == MCB_GO_Q4_K) {
			const float d = dk[b] * dw, dmin = -dk[b] * dminw;

			for (l = 0; l < 8; l++)
				acc[l] = fmaf(d, (float)lane[l], acc[l]);
			for (l = 0; l < 4; l++)
				accm[l] = fmaf(dmin, (float)(mn[2 * l] * bs[2 * l] +
							     mn[2 * l + 1] * bs[2 * l + 1]), accm[l]);
		} else {
			q4k_sums(o, sc, S, mn, bs, dw * dk[b], dminw * dk[b], &one, &onem);
		}
	}
	if (o == MCB_GO_Q4_K)
		return hsum8_ref(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
	return one - onem;
}

static float dot_q6_k_ref(int64_t n, const uint8_t *w, const int8_t *xq, const float *dk,
			  const int16_t *bsums)
{
	float acc[8] = {0};
	int64_t b;
	int h, k, l, t;

	for (b = 0; b < n / MCB_QKK; b++, w += 210, xq += MCB_QKK, bsums += 16) {
		const float d = dk[b] * mcb_f16_to_f32(ld16(w + 208));
		const int8_t *sc = (const int8_t *)(w + 192);
		int32_t lane[8] = {0};

		for (h = 0; h < 2; h++) {
			const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;

			for (k = 0; k < 4; k++) {
				const int8_t *q8 = xq + 128 * h + 32 * k;

				for (l = 0; l < 8; l++) {
					int32_t sum = 0;

					for (t = 0; t < 4; t++) {
						const int e = 4 * l + t;
						const uint8_t lb = k & 1 ? ql[32 + e] : ql[e];
						const int q = (k < 2 ? lb & 15 : lb >> 4) |
							      ((qh[e] >> (2 * k)) & 3) << 4;

						sum += q * q8[e];
					}
					lane[l] += sc[8 * h + 2 * k + (l >= 4)] * sum;
				}
			}
		}
		for (l = 0; l < 8; l++) {
			lane[l] -= 32 * (bsums[2 * l] * sc[2 * l] + bsums[2 * l + 1] * sc[2 * l + 1]);
			acc[l] = fmaf(d, (float)lane[l], acc[l]);
		}
	}
	return hsum8_ref(acc);
}

static void gemm_ggml_ref(enum mcb_ggml_order o, int64_t n, const uint8_t *w, size_t row_bytes,
			  int64_t nrows, const struct mcb_qact *a, int64_t ntok, float *y,
			  int64_t ldy)
{
	int64_t r, t;

	for (r = 0; r < nrows; r++) {
		const uint8_t *wr = w + r * row_bytes;

		for (t = 0; t < ntok; t++) {
			const int8_t *xq = a->q + t * n;
			float v;

			switch (o) {
			case MCB_GO_Q4_K:
			case MCB_GO_Q4_K_GEMV:
			case MCB_GO_Q4_K_GEMM:
				v = dot_q4_k_ref(o, n, wr, xq, a->dk + t * (n / MCB_QKK),
						 a->bsums + t * (n / 16));
				break;
			case MCB_GO_Q6_K:
				v = dot_q6_k_ref(n, wr, xq, a->dk + t * (n / MCB_QKK),
						 a->bsums + t * (n / 16));
				break;
			default:
				v = dot32_ref(o, n, wr, xq, a->d + t * (n / MCB_QK),
					      a->s ? a->s + t * (n / MCB_QK) : NULL);
				break;
			}
			y[t * ldy + r] = v;
		}
	}
}

/* ggml nearest_int (round half to even below 2^22; NaN gives 0) */
static int nearest_int(float f)
{
	float v = f + 12582912.f;
	int32_t i;

	memcpy(&i, &v, sizeof(i));
	return (i & 0x007fffff) - 0x00400000;
}

static void quantize_act_q8_1_ref(int64_t n, const float *x, int8_t *q, uint16_t *d, uint16_t *s)
{
	int64_t b;
	int j;

	for (b = 0; b < n / MCB_QK; b++) {
		const float *xb = x + b * MCB_QK;
		float amax = 0.0f, dd, id;
		int32_t sum = 0;

		for (j = 0; j < MCB_QK; j++)
			if (fabsf(xb[j]) > amax)
				amax = fabsf(xb[j]);
		dd = amax / 127.0f;
		d[b] = mcb_f32_to_f16(dd);
		id = amax != 0.0f ? 127.0f / amax : 0.0f;
		for (j = 0; j < MCB_QK; j++) {
			q[b * MCB_QK + j] = act_code(xb[j] * id);
			sum += q[b * MCB_QK + j];
		}
		s[b] = mcb_f32_to_f16(dd * (float)sum);
	}
}

static void quantize_act_q8_k_ref(int64_t n, const float *x, int8_t *q, float *d, int16_t *bsums,
				  int repack)
{
	int64_t b;
	int j;

	for (b = 0; b < n / MCB_QKK; b++, x += MCB_QKK, q += MCB_QKK, bsums += 16) {
		float amax = 0.0f, max = 0.0f, iscale;

		for (j = 0; j < MCB_QKK; j++)
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		if (amax == 0.0f) {
			d[b] = 0.0f;
			memset(q, 0, MCB_QKK);
			memset(bsums, 0, 16 * sizeof(*bsums));
			continue;
		}
		if (repack) {
			max = -amax;
			for (j = 0; j < MCB_QKK; j++)
				if (x[j] == amax)
					max = amax;
		}
		iscale = -127.f / max;
		for (j = 0; j < MCB_QKK; j++) {
			int v = nearest_int(iscale * x[j]);

			q[j] = (int8_t)(v < 127 ? (v > -128 ? v : -128) : 127);
		}
		for (j = 0; j < 16; j++) {
			int sum = 0, i;

			for (i = 0; i < 16; i++)
				sum += q[16 * j + i];
			bsums[j] = (int16_t)sum;
		}
		d[b] = 1 / iscale;
	}
}

/* ---- GGML-mode float ops, scalar oracle ----
 *
 * The float order of ggml's CPU backend as llama.cpp v0.5.0's AVX-512 build
 * (the zen4 variant node-llama-cpp loads on such CPUs) computes the ops
 * around the matmuls; each was matched bit for bit against that library
 * (tests/compat/ggml_oracle.c runs the comparison):
 *
 *   ggml_v_expf (vectors of 16; GGML_EXPF below, one rounding per fmaf):
 *     z = fma(x, log2 e, 0x1.8p23), n = z - 0x1.8p23 (round(x log2 e)),
 *     b = x - n ln2 in two fmas, a degree-5 polynomial j(b) in fmas, result
 *     j * 2^n (scalef: one rounding, also for subnormal results); 0 or inf
 *     when |n| > 192; NaN stays NaN.
 *   ggml_vec_swiglu_f32 (a row of n): silu(x) = x / (1 + v_expf(0 - x)) in
 *     16-wide chunks from the row start, then x / (1 + expf(-x)) (libm) for
 *     the n % 16 tail; times g.
 *   ggml_vec_soft_max_f32: e = v_expf(s - max) in chunks of 16, each
 *     chunk's sum reduced in float as _mm512_reduce_add_ps (RED16: halves
 *     8 + 8, then 4 + 4, then (0 + 2) + (1 + 3)) and added to a double; the
 *     n % 16 tail with libm expf, each value added to the double.
 *   ggml_vec_dot_f32: four 16-lane fma accumulators over each 64 values,
 *     combined acc0 + acc2, acc1 + acc3, then their sum, RED16 into a float;
 *     the remaining n % 64 values added one by one to that float, the
 *     products rounded separately for the first multiple of 8 of them (the
 *     compiler's vectorized multiplies) and fused (fmaf) for the rest.
 */
#define GGML_EXPF_BODY(x)                                                                   \
	const float r_ = 0x1.8p23f, z_ = fmaf(x, 0x1.715476p+0f, r_), n_ = z_ - r_;          \
	const float b_ = fmaf(-n_, 0x1.7f7d1cp-20f, fmaf(-n_, 0x1.62e4p-1f, x)), u_ = b_ * b_; \
	const float j_ = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b_, 0x1.573e2ep-5f), u_,             \
				   fmaf(0x1.555e66p-3f, b_, 0x1.fffdb6p-2f)),                       \
			      u_, fmaf(0x1.ffffecp-1f, b_, 1.0f));                                  \
	if (isnan(n_))                                                                       \
		return n_;                                                                   \
	if (fabsf(n_) > 192.0f)                                                              \
		return n_ <= 0.0f ? 0.0f : INFINITY;                                         \
	return scalbnf(j_, (int)n_)

static inline float ggml_expf_ref(float x)
{
	GGML_EXPF_BODY(x);
}

static float dot_f32_ggml_ref(int64_t n, const float *x, const float *y)
{
	const int64_t np = n & ~(int64_t)63, nv = np + (n - np) / 8 * 8;
	float acc[4][16] = {{0}}, sum = 0.0f;
	int64_t i;
	int j, l;

	for (i = 0; i < np; i += 64)
		for (j = 0; j < 4; j++)
			for (l = 0; l < 16; l++)
				acc[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
	if (np) {
		for (l = 0; l < 16; l++) {
			acc[0][l] = acc[0][l] + acc[2][l];
			acc[1][l] = acc[1][l] + acc[3][l];
		}
		for (l = 0; l < 16; l++)
			acc[0][l] = acc[0][l] + acc[1][l];
		sum = mcb_reduce16_ggml(acc[0]);
	}
	for (i = np; i < nv; i++)
		sum = sum + x[i] * y[i];
	for (; i < n; i++)
		sum = fmaf(x[i], y[i], sum);
	return sum;
}

/* ggml_vec_dot_f16: ggml_vec_dot_f32's 64-value blocks on the converted
 * values, then the n % 64 remaining products (float) added to a double */
static float dot_f16_f16_ref(int64_t n, const uint16_t *w, const uint16_t *x)
{
	const int64_t np = n & ~(int64_t)63;
	float acc[4][16] = {{0}};
	double sum;
	int64_t i;
	int j, l;

	for (i = 0; i < np; i += 64)
		for (j = 0; j < 4; j++)
			for (l = 0; l < 16; l++)
				acc[j][l] = fmaf(mcb_f16_to_f32(w[i + 16 * j + l]),
						 mcb_f16_to_f32(x[i + 16 * j + l]), acc[j][l]);
	for (l = 0; l < 16; l++) {
		acc[0][l] = acc[0][l] + acc[2][l];
		acc[1][l] = acc[1][l] + acc[3][l];
	}
	for (l = 0; l < 16; l++)
		acc[0][l] = acc[0][l] + acc[1][l];
	sum = (double)mcb_reduce16_ggml(acc[0]);
	for (; i < n; i++)
		sum += (double)(mcb_f16_to_f32(w[i]) * mcb_f16_to_f32(x[i]));
	return (float)sum;
}

/* tinyBLAS (n % 16 == 0): lane l an fma chain over i = l mod 16, RED16 */
static float dot_f32_lanes16_ref(int64_t n, const float *x, const float *y)
{
	float acc[16] = {0};
	int64_t i;

	for (i = 0; i < n; i++)
		acc[i % 16] = fmaf(x[i], y[i], acc[i % 16]);
	return mcb_reduce16_ggml(acc);
}

static float dot_f16_lanes16_ref(int64_t n, const uint16_t *x, const uint16_t *y)
{
	float acc[16] = {0};
	int64_t i;

	for (i = 0; i < n; i++)
		acc[i % 16] = fmaf(mcb_f16_to_f32(x[i]), mcb_f16_to_f32(y[i]), acc[i % 16]);
	return mcb_reduce16_ggml(acc);
}

static void fma_f32_ref(int64_t n, float a, const float *x, float *y)
{
	int64_t i;

	for (i = 0; i < n; i++)
		y[i] = fmaf(x[i], a, y[i]);
}

static void swiglu_ggml_ref(int64_t n, float *a, const float *g)
{
	const int64_t nv = n / 16 * 16;
	int64_t i;

	for (i = 0; i < nv; i++)
		a[i] = a[i] / (1.0f + ggml_expf_ref(0.0f - a[i])) * g[i];
	for (; i < n; i++)
		a[i] = a[i] / (1.0f + expf(-a[i])) * g[i];
}

static double softmax_exp_ggml_ref(int64_t n, float *s, float max)
{
	double sum = 0.0;
	int64_t i = 0;
	int l;

	for (; i + 16 <= n; i += 16) {
		for (l = 0; l < 16; l++)
			s[i + l] = ggml_expf_ref(s[i + l] - max);
		sum += (double)mcb_reduce16_ggml(s + i);
	}
	for (; i < n; i++) {
		s[i] = expf(s[i] - max);
		sum += (double)s[i];
	}
	return sum;
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
	.quantize_act_q8_1 = quantize_act_q8_1_ref,
	.quantize_act_q8_k = quantize_act_q8_k_ref,
	.gemm_ggml = gemm_ggml_ref,
	.dot_f32_ggml = dot_f32_ggml_ref,
	.dot_f32_lanes16 = dot_f32_lanes16_ref,
	.dot_f16_lanes16 = dot_f16_lanes16_ref,
	.fma_f32 = fma_f32_ref,
	.swiglu_ggml = swiglu_ggml_ref,
	.softmax_exp_ggml = softmax_exp_ggml_ref,
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

/* ---- ggml block weights (GGML mode), AVX2: the orders of the _ref
 * functions above with the integer sums formed in vector registers (exact)
 * and the same float operations; bit-identical to _ref
 * (tests/unit/test_engine.c) ---- */

static void quantize_act_q8_1_avx2(int64_t n, const float *x, int8_t *q, uint16_t *d, uint16_t *s)
{
	int64_t b;
	int j;

	quantize_act_avx2(n, x, q, d);
	for (b = 0; b < n / MCB_QK; b++) {
		const float *xb = x + b * MCB_QK;
		float amax = 0.0f;
		int32_t sum = 0;

		for (j = 0; j < MCB_QK; j++) {
			if (fabsf(xb[j]) > amax)
				amax = fabsf(xb[j]);
			sum += q[b * MCB_QK + j];
		}
		s[b] = mcb_f32_to_f16(amax / 127.0f * (float)sum);
	}
}

/* 32 codes of a 32-value block as bytes, and whether they are unsigned */
AVX2 static inline __m256i codes32(enum mcb_ggml_order o, const uint8_t *blk)
{
	__m128i t;
	__m256i v;

	if (o == MCB_GO_Q8_0)
		return _mm256_loadu_si256((const __m256i *)(blk + 2));
	t = _mm_loadu_si128((const __m128i *)(blk + (o == MCB_GO_Q4_1 ? 4 : 2)));
	v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(15));
	return o == MCB_GO_Q4_1 ? v : _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

/* eight int32 lanes of sum w * x over bytes 4l..4l+3: signed w (the sign
 * moved onto x) or unsigned w */
AVX2 static inline __m256i lanes32(__m256i w, const int8_t *x, int uns)
{
	const __m256i vx = _mm256_loadu_si256((const __m256i *)x);
	const __m256i p = uns ? _mm256_maddubs_epi16(w, vx)
			      : _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(vx, w));

	return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

AVX2 static inline int32_t hsum_i32(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));

	s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
	return _mm_cvtsi128_si32(s);
}

/* one row of a 32-value-block weight against up to 4 tokens */
AVX2 static void row32_avx2(enum mcb_ggml_order o, int64_t n, const uint8_t *w,
			    const struct mcb_qact *a, int64_t t0, int nt, float *out)
{
	const size_t bb = o == MCB_GO_Q8_0 ? 34 : o == MCB_GO_Q4_1 ? 20 : 18;
	const int64_t nb = n / 32;
	const int uns = o == MCB_GO_Q4_1;
	__m256 acc[4];
	float one[4] = {0}, summs[4] = {0};
	int64_t b;
	int t;

	for (t = 0; t < 4; t++)
		acc[t] = _mm256_setzero_ps();
	for (b = 0; b < nb; b++, w += bb) {
		const __m256i c = codes32(o, w);
		const float dw = _cvtsh_ss(ld16(w));

		for (t = 0; t < nt; t++) {
			const int64_t tt = t0 + t;
			const float dp = dw * _cvtsh_ss(a->d[tt * nb + b]);
			const __m256i is = lanes32(c, a->q + tt * n + b * 32, uns);

			if (o == MCB_GO_Q4_0_R) {
				one[t] = fmaf((float)hsum_i32(is), dp, one[t]);
				continue;
			}
			acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(dp), _mm256_cvtepi32_ps(is), acc[t]);
			if (uns)
				summs[t] = fmaf(_cvtsh_ss(ld16(w + 2)), _cvtsh_ss(a->s[tt * nb + b]),
						summs[t]);
		}
	}
	for (t = 0; t < nt; t++)
		out[t] = o == MCB_GO_Q4_0_R ? one[t] : hsum8(acc[t]) + summs[t];
}

/* Q4_K: per super-block the 8 vec-order lanes and the 8 sub-block sums S_s
 * of one token */
AVX2 static inline __m256i q4k_block(const uint8_t *w, const int8_t *q8, const int *sc,
				     int32_t *S)
{
	const __m256i m4 = _mm256_set1_epi8(15), one16 = _mm256_set1_epi16(1);
	__m256i lanes = _mm256_setzero_si256();
	int j;

	for (j = 0; j < 4; j++) {
		const __m256i bits = _mm256_loadu_si256((const __m256i *)(w + 16 + 32 * j));
		const __m256i lo = _mm256_and_si256(bits, m4);
		const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
		const __m256i pl = _mm256_madd_epi16(
			_mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j))), one16);
		const __m256i ph = _mm256_madd_epi16(
			_mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32))),
			one16);

		S[2 * j] = hsum_i32(pl);
		S[2 * j + 1] = hsum_i32(ph);
		lanes = _mm256_add_epi32(lanes,
					 _mm256_add_epi32(_mm256_mullo_epi32(pl, _mm256_set1_epi32(sc[2 * j])),
							  _mm256_mullo_epi32(ph,
									     _mm256_set1_epi32(sc[2 * j + 1]))));
	}
	return lanes;
}

AVX2 static float q4k_dot_avx2(enum mcb_ggml_order o, int64_t n, const uint8_t *w,
			       const int8_t *xq, const float *dk, const int16_t *bsums)
{
	__m256 acc = _mm256_setzero_ps();
	float accm[4] = {0}, one = 0.0f, onem = 0.0f;
	int64_t b;
	int sc[8], mn[8], bs[8], s;

	for (b = 0; b < n / MCB_QKK; b++, w += 144, xq += MCB_QKK, bsums += 16) {
		const float dw = _cvtsh_ss(ld16(w)), dminw = _cvtsh_ss(ld16(w + 2));
		int32_t S[8];
		__m256i lanes;

		for (s = 0; s < 8; s++) {
			scale_min_k4(s, w + 4, &sc[s], &mn[s]);
			bs[s] = bsums[2 * s] + bsums[2 * s + 1];
		}
		lanes = q4k_block(w, xq, sc, S);
		if (o == MCB_GO_Q4_K) {
			const float d = dk[b] * dw, dmin = -dk[b] * dminw;

			acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(lanes), acc);
			for (s = 0; s < 4; s++)
				accm[s] = fmaf(dmin, (float)(mn[2 * s] * bs[2 * s] +
							     mn[2 * s + 1] * bs[2 * s + 1]), accm[s]);
		} else {
			q4k_sums(o, sc, S, mn, bs, dw * dk[b], dminw * dk[b], &one, &onem);
		}
	}
	if (o == MCB_GO_Q4_K)
		return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
	return one - onem;
}

AVX2 static float q6k_dot_avx2(int64_t n, const uint8_t *w, const int8_t *xq, const float *dk,
			       const int16_t *bsums)
{
	const __m256i m4 = _mm256_set1_epi8(15), m2 = _mm256_set1_epi8(3);
	__m256 acc = _mm256_setzero_ps();
	int64_t b;
	int h, k;

	for (b = 0; b < n / MCB_QKK; b++, w += 210, xq += MCB_QKK, bsums += 16) {
		const float d = dk[b] * _cvtsh_ss(ld16(w + 208));
		const int8_t *sc = (const int8_t *)(w + 192);
		__m256i sumi = _mm256_setzero_si256(), corr;

		for (h = 0; h < 2; h++) {
			const __m256i b1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
			const __m256i b2 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
			const __m256i bh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));

			for (k = 0; k < 4; k++) {
				const __m256i lb = (k & 1) ? b2 : b1;
				const __m256i low = k < 2 ? _mm256_and_si256(lb, m4)
							  : _mm256_and_si256(_mm256_srli_epi16(lb, 4), m4);
				const __m256i top = _mm256_and_si256(_mm256_srli_epi16(bh, 2 * k), m2);
				const __m256i q = _mm256_or_si256(low, _mm256_slli_epi16(top, 4));
				const __m256i p = _mm256_maddubs_epi16(
					q, _mm256_loadu_si256((const __m256i *)(xq + 128 * h + 32 * k)));
				const __m256i s16 = _mm256_cvtepi8_epi16(_mm_set_epi64x(
					(int64_t)(0x0101010101010101ull * (uint8_t)sc[8 * h + 2 * k + 1]),
					(int64_t)(0x0101010101010101ull * (uint8_t)sc[8 * h + 2 * k])));

				sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s16, p));
			}
		}
		corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)bsums),
					 _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc)));
		sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(corr, 5));
		acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
	}
	return hsum8(acc);
}

AVX2 static void gemm_ggml_avx2(enum mcb_ggml_order o, int64_t n, const uint8_t *w,
				size_t row_bytes, int64_t nrows, const struct mcb_qact *a,
				int64_t ntok, float *y, int64_t ldy)
{
	int64_t r, t;
	float out[4];
	int k;

	for (r = 0; r < nrows; r++) {
		const uint8_t *wr = w + r * row_bytes;

		_mm_prefetch((const char *)wr + row_bytes, _MM_HINT_T0);
		switch (o) {
		case MCB_GO_Q4_K:
		case MCB_GO_Q4_K_GEMV:
		case MCB_GO_Q4_K_GEMM:
			for (t = 0; t < ntok; t++)
				y[t * ldy + r] = q4k_dot_avx2(o, n, wr, a->q + t * n,
							      a->dk + t * (n / MCB_QKK),
							      a->bsums + t * (n / 16));
			break;
		case MCB_GO_Q6_K:
			for (t = 0; t < ntok; t++)
				y[t * ldy + r] = q6k_dot_avx2(n, wr, a->q + t * n, a->dk + t * (n / MCB_QKK),
							      a->bsums + t * (n / 16));
			break;
		default:
			for (t = 0; t < ntok; t += 4) {
				const int nt = ntok - t < 4 ? (int)(ntok - t) : 4;

				row32_avx2(o, n, wr, a, t, nt, out);
				for (k = 0; k < nt; k++)
					y[(t + k) * ldy + r] = out[k];
			}
			break;
		}
	}
}

/* ---- GGML-mode float ops, AVX2: the orders of the _ref versions; a
 * 16-float vector of ggml's is two 8-float halves here ---- */

/* 16 lanes as (lo, hi): RED16 = hsum8(hi + lo) (halves 8 + 8, then hsum8's
 * 4 + 4 and (0 + 2) + (1 + 3)) */
AVX2 static inline float red16_avx2(__m256 lo, __m256 hi)
{
	return hsum8(_mm256_add_ps(hi, lo));
}

/* ggml_v_expf on 8 lanes.  2^n as 2^a * 2^(n - a), a = floor(n / 2): j * 2^a
 * is exact (normal) for |n| <= 192, so the one rounding is the second
 * product's, as scalef / scalbnf round. */
AVX2 static inline __m256 ggml_expf8(__m256 x)
{
	const __m256 r = _mm256_set1_ps(0x1.8p23f);
	const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
	const __m256 n = _mm256_sub_ps(z, r);
	const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
					  _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
	const __m256 u = _mm256_mul_ps(b, b);
	const __m256 j = _mm256_fmadd_ps(
		_mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b,
						_mm256_set1_ps(0x1.573e2ep-5f)),
				u,
				_mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b,
						_mm256_set1_ps(0x1.fffdb6p-2f))),
		u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
	const __m256i ni = _mm256_cvtps_epi32(n);
	const __m256i a = _mm256_srai_epi32(ni, 1), c = _mm256_sub_epi32(ni, a);
	const __m256i bias = _mm256_set1_epi32(127);
	const __m256 pa = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(a, bias), 23));
	const __m256 pc = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(c, bias), 23));
	const __m256 res = _mm256_mul_ps(_mm256_mul_ps(j, pa), pc);
	const __m256 big = _mm256_cmp_ps(abs8(n), _mm256_set1_ps(192.0f), _CMP_GT_OQ);
	const __m256 alt = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_NLE_UQ),
					 _mm256_set1_ps(INFINITY));

	return _mm256_blendv_ps(res, alt, big);
}

AVX2 static float dot_f32_ggml_avx2(int64_t n, const float *x, const float *y)
{
	const int64_t np = n & ~(int64_t)63, nv = np + (n - np) / 8 * 8;
	__m256 acc[8];
	float sum = 0.0f;
	int64_t i;
	int j;

	for (j = 0; j < 8; j++)
		acc[j] = _mm256_setzero_ps();
	for (i = 0; i < np; i += 64)
		for (j = 0; j < 8; j++)
			acc[j] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * j),
						 _mm256_loadu_ps(y + i + 8 * j), acc[j]);
	if (np) {
		/* acc[2k], acc[2k+1]: lanes 0-7, 8-15 of ggml's accumulator k */
		__m256 lo = _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6]));
		__m256 hi = _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7]));

		sum = red16_avx2(lo, hi);
	}
	for (i = np; i < nv; i++)
		sum = sum + x[i] * y[i];
	for (; i < n; i++)
		sum = fmaf(x[i], y[i], sum);
	return sum;
}

AVX2 static float dot_f16_f16_avx2(int64_t n, const uint16_t *w, const uint16_t *x)
{
	const int64_t np = n & ~(int64_t)63;
	__m256 acc[8];
	double sum;
	int64_t i;
	int j;

	for (j = 0; j < 8; j++)
		acc[j] = _mm256_setzero_ps();
	for (i = 0; i < np; i += 64)
		for (j = 0; j < 8; j++)
			acc[j] = _mm256_fmadd_ps(load_f16(w + i + 8 * j), load_f16(x + i + 8 * j), acc[j]);
	sum = (double)red16_avx2(
		_mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
		_mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])));
	for (; i < n; i++)
		sum += (double)(mcb_f16_to_f32(w[i]) * mcb_f16_to_f32(x[i]));
	return (float)sum;
}

AVX2 static float dot_f32_lanes16_avx2(int64_t n, const float *x, const float *y)
{
	__m256 lo = _mm256_setzero_ps(), hi = lo;
	int64_t i;

	for (i = 0; i + 16 <= n; i += 16) {
		lo = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), lo);
		hi = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), hi);
	}
	return red16_avx2(lo, hi);
}

AVX2 static float dot_f16_lanes16_avx2(int64_t n, const uint16_t *x, const uint16_t *y)
{
	__m256 lo = _mm256_setzero_ps(), hi = lo;
	int64_t i;

	for (i = 0; i + 16 <= n; i += 16) {
		lo = _mm256_fmadd_ps(load_f16(x + i), load_f16(y + i), lo);
		hi = _mm256_fmadd_ps(load_f16(x + i + 8), load_f16(y + i + 8), hi);
	}
	return red16_avx2(lo, hi);
}

AVX2 static void fma_f32_avx2(int64_t n, float a, const float *x, float *y)
{
	const __m256 va = _mm256_set1_ps(a);
	int64_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va,
							_mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] = fmaf(x[i], a, y[i]);
}

AVX2 static void swiglu_ggml_avx2(int64_t n, float *a, const float *g)
{
	const int64_t nv = n / 16 * 16;
	const __m256 one = _mm256_set1_ps(1.0f);
	int64_t i;

	for (i = 0; i < nv; i += 8) {
		const __m256 x = _mm256_loadu_ps(a + i);
		const __m256 e = ggml_expf8(_mm256_sub_ps(_mm256_setzero_ps(), x));

		_mm256_storeu_ps(a + i, _mm256_mul_ps(_mm256_div_ps(x, _mm256_add_ps(one, e)),
						      _mm256_loadu_ps(g + i)));
	}
	for (; i < n; i++)
		a[i] = a[i] / (1.0f + expf(-a[i])) * g[i];
}

AVX2 static double softmax_exp_ggml_avx2(int64_t n, float *s, float max)
{
	const __m256 vm = _mm256_set1_ps(max);
	double sum = 0.0;
	int64_t i = 0;

	for (; i + 16 <= n; i += 16) {
		const __m256 lo = ggml_expf8(_mm256_sub_ps(_mm256_loadu_ps(s + i), vm));
		const __m256 hi = ggml_expf8(_mm256_sub_ps(_mm256_loadu_ps(s + i + 8), vm));

		_mm256_storeu_ps(s + i, lo);
		_mm256_storeu_ps(s + i + 8, hi);
		sum += (double)red16_avx2(lo, hi);
	}
	for (; i < n; i++) {
		s[i] = expf(s[i] - max);
		sum += (double)s[i];
	}
	return sum;
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
	.quantize_act_q8_1 = quantize_act_q8_1_avx2,
	.quantize_act_q8_k = quantize_act_q8_k_ref, /* scalar: cheap next to the matmul */
	.gemm_ggml = gemm_ggml_avx2,
	.dot_f32_ggml = dot_f32_ggml_avx2,
	.dot_f32_lanes16 = dot_f32_lanes16_avx2,
	.dot_f16_lanes16 = dot_f16_lanes16_avx2,
	.fma_f32 = fma_f32_avx2,
	.swiglu_ggml = swiglu_ggml_avx2,
	.softmax_exp_ggml = softmax_exp_ggml_avx2,
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
