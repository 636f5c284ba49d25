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

/* ---- issue 4: more formats (runtime/quant.c) ---- */

/*
 * ggml's block formats (src/ggml-common.h, ggml-quants.c; ALGORITHMS.md 5),
 * x (k,) <-> blocks, k a multiple of the block (32 for Q4_0/Q4_1, 256 for
 * K-quants).  _ref quantizers are ggml's reference ones, bit for bit:
 *   Q4_0 {f16 d; u8 qs[16]}: d = vmax / -8 (vmax: the value of largest magnitude),
 *        q = min(15, (int8)(x/d + 8.5)), qs[j] = q[j] | q[j+16] << 4
 *   Q4_1 {f16 d, m; u8 qs[16]}: d = (max-min)/15, m = min
 *   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]} (make_qkx2_quants)
 *   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d} (make_qx_quants)
 */
void mcb_quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_0_ref(const void *x, float *y, int64_t k);
void mcb_quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_1_ref(const void *x, float *y, int64_t k);
void mcb_quantize_row_q4_k_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q4_k_ref(const void *x, float *y, int64_t k);
void mcb_quantize_row_q6_k_ref(const float *x, void *y, int64_t k);
void mcb_dequantize_row_q6_k_ref(const void *x, float *y, int64_t k);
/* Any ggml block type mcbuild knows (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K). */
void mcb_dequantize_row_ggml(enum mcb_dtype t, const void *x, float *y, int64_t k);
void mcb_quantize_row_ggml(enum mcb_dtype t, const float *x, void *y, int64_t k);

/*
 * Integer group quantization with GPTQ's quantizer (IST-DASLab/gptq
 * quant.py find_params; ALGORITHMS.md 1): per row and group of g columns
 * (g = 0: the whole row), xmin = min(min x, 0), xmax = max(max x, 0);
 * symmetric: xmax = max(|xmin|, xmax), xmin = -xmax; both 0 -> (-1, +1);
 * scale = (xmax - xmin) / maxq, maxq = 2^bits - 1; zero = (maxq + 1) / 2
 * (symmetric) or round(-xmin / scale); q = clamp(round(x / scale) + zero,
 * 0, maxq) with round half to even.  Codes are unsigned (0..maxq) here; the
 * internal form stores symmetric codes signed (q - zero) and asymmetric ones
 * with their zero.  scale is rounded to fp16 before the codes are computed
 * when fp16_scale, so that stored scales reproduce the codes exactly.
 */
struct mcb_intq_params {
	int bits;            /* 2..8 */
	int64_t group;       /* columns per group, 0: per row */
	int symmetric;
	int fp16_scale;
};
/* Scale and zero of one group x (n,). */
void mcb_intq_params(const float *x, int64_t n, const struct mcb_intq_params *p, float *scale,
		     int *zero);
/* q (n,) = codes of x with (scale, zero). */
void mcb_intq_codes(const float *x, int64_t n, const struct mcb_intq_params *p, float scale,
		    int zero, uint8_t *q);
/* W (rows, cols) -> codes (rows, cols), scales and zeros (rows, ngroups). */
void mcb_intq_rtn(const float *w, int64_t rows, int64_t cols, const struct mcb_intq_params *p,
		  uint8_t *q, float *scale, uint8_t *zero);

/* FP8 E4M3 (OCP; max 448, no infinities, NaN 0x7f/0xff): round to nearest
 * even, saturating at +-448. */
uint8_t mcb_f32_to_e4m3(float f);
float mcb_e4m3_to_f32(uint8_t b);

/*
 * Checkpoint packings (ALGORITHMS.md 1 and 2), codes unsigned 0..2^bits-1:
 * GPTQ: qweight I32 [cols*bits/32, rows], packed along the input dimension,
 *       qweight[r][n] = sum_j q[r*p + j][n] << (bits*j), p = 32/bits, for the
 *       weight transposed (W^T [cols, rows]); qzeros I32 [ngroups, rows*bits/32]
 *       holding zero - 1 (the v1 convention).
 * AWQ (GEMM): qweight I32 [cols, rows/8], packed along the output dimension
 *       in the nibble order [0, 2, 4, 6, 1, 3, 5, 7]; qzeros [ngroups, rows/8]
 *       likewise, zeros stored as they are.
 * q is [rows, cols] (PyTorch Linear layout); zeros [rows, ngroups].
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
