/*
 * quant: quantization kernels.  Each format has a scalar _ref pair (the
 * oracle, written from the published definition) and, where it matters for
 * speed, an optimized path tested against _ref bit for bit.
 *
 * Q8_0 (ggml src/ggml-common.h, ggml-quants.c quantize_row_q8_0_ref): blocks
 * of 32 along a row, amax = max|x|, d = amax / 127 (float division),
 * id = d ? 1/d : 0, q = roundf(x * id) (multiplication by the reciprocal, not
 * x / d; roundf rounds halves away from zero), d stored as IEEE fp16 rounded
 * to nearest even.  Dequantization: y = fp16_to_fp32(d) * q.
 * RTN int8 per output channel (symmetric): scale_r = max|W_r| / 127,
 * q = round-half-even(W / scale_r) clamped to [-127, 127]; a row whose scale
 * is 0 (all zero, or max|W_r| below 127 * 2^-150) gets q = 0 (never a
 * division by zero).
 *
 * Non-finite input: ggml's reference has undefined behaviour on NaN/inf
 * (float -> int8 conversion of a NaN).  These kernels are defined for every
 * input (no UB): NaN is ignored when taking max|x|, and a code whose value
 * before conversion is not a finite number within the code range becomes 0.
 * The results are then meaningless but identical between _ref and the
 * optimized paths.  Callers must reject non-finite weights first with
 * mcb_check_finite.  Q8_0 also needs amax < 127 * 65520 (about 8.3e6): above
 * that the fp16 scale is +inf, as in ggml.
 *
 * Rounding assumes the default floating-point environment (round to nearest).
 */
#ifndef MCB_QUANT_H
#define MCB_QUANT_H

#include <assert.h>
#include <stdint.h>

#include "mcb/tensor.h"

#define MCB_QK8_0 32

struct mcb_block_q8_0 {
	uint16_t d;              /* fp16 scale */
	int8_t qs[MCB_QK8_0];    /* codes, each in [-127, 127] */
};
static_assert(sizeof(struct mcb_block_q8_0) == 34, "q8_0 block is 34 bytes");

/* x (k,) -> y (k/32 blocks).  k must be a multiple of 32. */
void mcb_quantize_row_q8_0_ref(const float *x, struct mcb_block_q8_0 *y, int64_t k);
/* x (k/32 blocks) -> y (k,). */
void mcb_dequantize_row_q8_0_ref(const struct mcb_block_q8_0 *x, float *y, int64_t k);
/* Same results as _ref bit for bit, for every input (AVX2+F16C when the CPU
 * has them, else the _ref loop). */
void mcb_quantize_row_q8_0(const float *x, struct mcb_block_q8_0 *y, int64_t k);

/*
 * Split form of Q8_0 used by the IR: codes q (k,) int8 and one fp16 scale per
 * 32 elements, d (k/32,).  Identical numbers to mcb_quantize_row_q8_0_ref.
 */
void mcb_quantize_row_q8_0_split(const float *x, int8_t *q, uint16_t *d, int64_t k);

/* W (rows, cols) -> q (rows, cols), scale (rows,), per-channel symmetric int8. */
void mcb_rtn_int8_channel_ref(const float *w, int64_t rows, int64_t cols, int8_t *q,
			      float *scale);
/* Same results as _ref bit for bit, for every input. */
void mcb_rtn_int8_channel(const float *w, int64_t rows, int64_t cols, int8_t *q, float *scale);

/*
 * Check that x (n,) holds only finite values (denormals are finite).  Returns
 * 0, or MCB_ERANGE with the index of the first NaN or infinity stored in
 * *bad_index (when bad_index is not NULL).
 */
int mcb_check_finite(const float *x, int64_t n, int64_t *bad_index);
/* The same as an error: 0, or MCB_ERANGE "fn: what[i] is v (not finite)". */
int mcb_require_finite(const float *x, int64_t n, const char *fn, const char *what,
		       struct mcb_errctx *e);

/* ---- issue 4: more formats (runtime/quant_ggml.c: the ggml block formats;
 * runtime/quant.c: the rest) ---- */

/*
 * ggml's block formats (src/ggml-common.h, ggml-quants.c; ALGORITHMS.md 5;
 * layouts specified at the top of runtime/quant_ggml.c), x (k,) <-> blocks,
 * k a multiple of the block (32 for Q4_0/Q4_1, 256 for K-quants).  Blocks
 * are bytes (void *): any alignment.  The _ref quantizers are ggml's
 * reference ones (quantize_row_*_ref), bit for bit, single-precision
 * operations in ggml's order without fused multiply-adds:
 *   Q4_0 {f16 d; u8 qs[16]}: vmax = the first value of largest magnitude,
 *        d = vmax / -8, id = d ? 1/d : 0, q = min(15, (int8)(x*id + 8.5)),
 *        qs[j] = q[j] | q[j+16] << 4; value (q - 8) * d
 *   Q4_1 {f16 d, m; u8 qs[16]}: d = (max-min)/15, m = min, id = d ? 1/d : 0,
 *        q = min(15, (int8)((x-min)*id + 0.5)); value q*d + m (two roundings)
 *   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}: per sub-block of 32,
 *        make_qkx2_quants(32, 15, weights av_x + |x| with av_x =
 *        sqrt(sum x^2 / 32), rmin -1, rdelta 0.1, 20 steps); 6-bit scales
 *        and mins against d = max_scale/63, dmin = max_min/63; codes
 *        requantized with the stored scales; value (d*sc)*q - dmin*m
 *   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}: per sub-block of 16,
 *        make_qx_quants(16, 32, rmse_type 1); scales[s] = min(127,
 *        nearest_int(-128/max_scale * scale_s)), d = 1/that factor; codes
 *        requantized; value (d*scales[s])*(q - 32)
 * nearest_int is ggml's 1.5*2^23 trick (round half to even).  A code whose
 * value before the (int8) conversion is NaN or out of range is 0 (ggml has
 * undefined behaviour there); callers reject non-finite weights first.  The
 * dequantizers are ggml's (dequantize_row_*), exact for Q4_0 and Q8_0.
 */
void mcb_quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_0_ref(const void *x, float *y, int64_t k);
/* Same results as mcb_quantize_row_q4_0_ref bit for bit, for every input
 * (AVX2 and F16C when the CPU has them, else the _ref loop; Q4_1 likewise
 * through mcb_quantize_row_ggml). */
void mcb_quantize_row_q4_0(const float *x, void *y, int64_t k);
void mcb_quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_1_ref(const void *x, float *y, int64_t k);
void mcb_quantize_row_q4_k_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_k_ref(const void *x, float *y, int64_t k);
void mcb_quantize_row_q6_k_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q6_k_ref(const void *x, float *y, int64_t k);
/* Any ggml block type mcbuild knows: Q8_0 (blocks {f16 d; i8 qs[32]},
 * mcb_quantize_row_q8_0), Q4_0 (the fast path), Q4_1, Q4_K, Q6_K.  Another t
 * dequantizes to zeros and quantizes nothing (callers check the type). */
void mcb_dequantize_row_ggml(enum mcb_dtype t, const void *x, float *y, int64_t k);
void mcb_quantize_row_ggml(enum mcb_dtype t, const float *x, void *y, int64_t k);

/*
 * Integer group quantization with GPTQ's quantizer (IST-DASLab/gptq
 * quant.py find_params; ALGORITHMS.md 1): per row and group of g columns
 * (g = 0: the whole row; the last group may be shorter), in float32,
 * xmin = min(min x, 0), xmax = max(max x, 0); symmetric: xmax =
 * max(|xmin|, xmax), then xmin = -xmax only if xmin < 0 (as GPTQ: a group
 * with no negative value keeps xmin = 0, so its scale is xmax / maxq and
 * values above (maxq - 1)/2 * scale clip: faithful, not a typo); both 0
 * -> (-1, +1); scale = (xmax - xmin) / maxq, maxq = 2^bits - 1; zero =
 * (maxq + 1) / 2 (symmetric) or round(-xmin / scale) clamped to [0, maxq]
 * (asymmetric); q = clamp(round(x / scale) + zero, 0, maxq), x / scale a
 * float division, round half to even.  Codes are unsigned (0..maxq) here; the internal form
 * stores symmetric codes signed (q - zero) and asymmetric ones with their
 * zero.  fp16_scale: the scale is rounded to fp16 (nearest even) after the
 * zero point is computed (zero is GPTQ's, from the float32 scale) and
 * before the codes are, so that stored scales reproduce the codes exactly;
 * the scale returned is that fp16 value.
 *
 * Edge cases, identical in every path: a zero scale (range underflow, or an
 * fp16 scale below 2^-25) gives every code = zero, never a division by
 * zero; with fp16_scale, (xmax - xmin) / maxq >= 65520 gives an infinite
 * scale (as Q8_0; codes = zero), and without it an infinite range does.
 * Non-finite input: NaN is skipped by min/max and codes as zero; infinities
 * give meaningless (but defined) results.  Callers reject non-finite weights
 * first with mcb_check_finite and check the scales for overflow.
 * Rounding assumes the default floating-point environment.
 */
struct mcb_intq_params {
	int bits;            /* 2..8 */
	int64_t group;       /* columns per group, 0: per row */
	int symmetric;
	int fp16_scale;
};
/* Scale and zero of one group x (n,).  The scalar oracle, with
 * mcb_intq_codes, of mcb_intq_rtn. */
void mcb_intq_params(const float *x, int64_t n, const struct mcb_intq_params *p, float *scale,
		     int *zero);
/* q (n,) = codes of x with (scale, zero) as mcb_intq_params returned them
 * (scale is used as given, not rounded again); zero in [0, maxq]. */
void mcb_intq_codes(const float *x, int64_t n, const struct mcb_intq_params *p, float scale,
		    int zero, uint8_t *q);
/* W (rows, cols) -> codes (rows, cols), scales and zeros (rows, ngroups),
 * ngroups = ceil(cols / group) (1 when group is 0).  zero may be NULL;
 * symmetric zeros are (maxq + 1) / 2.  Same results bit for bit as
 * mcb_intq_params + mcb_intq_codes per group (AVX2 when the CPU has it). */
void mcb_intq_rtn(const float *w, int64_t rows, int64_t cols, const struct mcb_intq_params *p,
		  uint8_t *q, float *scale, uint8_t *zero);

/* FP8 E4M3 (OCP "E4M3FN": 1 sign, 4 exponent bits with bias 7, 3 mantissa
 * bits; subnormals m * 2^-9; max 448 (0x7e); no infinities; NaN 0x7f/0xff):
 * f32 -> e4m3 rounds to nearest even; |f| > 448 including infinity
 * saturates to +-448; NaN gives 0x7f; -0 gives 0x80.  e4m3 -> f32 is exact
 * (0x7f and 0xff give a NaN of that sign). */
uint8_t mcb_f32_to_e4m3(float f);
float mcb_e4m3_to_f32(uint8_t b);

/*
 * Checkpoint packings (ALGORITHMS.md 1 and 2), codes unsigned 0..2^bits-1
 * (only the low bits of a larger value are stored):
 * GPTQ (bits 2, 3, 4, 8): qweight I32 [cols*bits/32, rows], packed along the
 *       input dimension, qweight[r][n] = sum_j q[r*p + j][n] << (bits*j),
 *       p = 32/bits, for the weight transposed (W^T [cols, rows]); qzeros I32
 *       [ngroups, rows*bits/32] holding zero - 1 (the v1 convention), packed
 *       along the output dimension.  Precisely, each packed column of qweight
 *       and row of qzeros is a little-endian bit stream (code i at stream
 *       bits [bits*i, bits*i + bits), word j = stream bits [32j, 32j + 32)),
 *       which for 3 bits is AutoGPTQ's layout of 32 codes per 3 words with
 *       codes 10 and 21 split across words.  Requires cols*bits and
 *       rows*bits to be multiples of 32.  A zero point of 0 is stored as
 *       2^bits - 1 and unpacked back to 0 (mod 2^bits), but v1 readers add 1
 *       without wrapping and read 2^bits: exporters must not write zero 0.
 * AWQ (GEMM, 4 bits): qweight I32 [cols, rows/8], packed along the output
 *       dimension, nibble i of word [k][c] holding q[8c + ORDER[i]][k],
 *       ORDER = [0, 2, 4, 6, 1, 3, 5, 7]; qzeros [ngroups, rows/8] likewise,
 *       zeros stored as they are.  Requires rows % 8 == 0.
 * q is [rows, cols] (PyTorch Linear layout); zeros [rows, ngroups].  The
 * unpack functions are exact inverses on codes in range.
 */
void mcb_pack_gptq(const uint8_t *q, int64_t rows, int64_t cols, int bits, int32_t *qweight);
void mcb_unpack_gptq(const int32_t *qweight, int64_t rows, int64_t cols, int bits, uint8_t *q);
void mcb_pack_gptq_zeros(const uint8_t *zero, int64_t rows, int64_t ngroups, int bits,
			 int32_t *qzeros);
void mcb_unpack_gptq_zeros(const int32_t *qzeros, int64_t rows, int64_t ngroups, int bits,
			   uint8_t *zero);
void mcb_pack_awq(const uint8_t *q, int64_t rows, int64_t cols, int32_t *qweight);
void mcb_unpack_awq(const int32_t *qweight, int64_t rows, int64_t cols, uint8_t *q);
void mcb_pack_awq_zeros(const uint8_t *zero, int64_t rows, int64_t ngroups, int32_t *qzeros);
void mcb_unpack_awq_zeros(const int32_t *qzeros, int64_t rows, int64_t ngroups, uint8_t *zero);

#endif
