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

#endif
