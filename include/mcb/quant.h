/*
 * quant: quantization kernels.  Each format has a scalar _ref pair (the
 * oracle, written from the published definition) and, where it matters for
 * speed, an optimized path tested against _ref.
 *
 * Q8_0 (ggml src/ggml-common.h, ggml-quants.c): blocks of 32 along a row,
 * d = amax/127 (float), q = roundf(x / d) (0 when d == 0), d stored as fp16.
 * RTN int8 per output channel (symmetric): scale_r = max|W_r| / 127,
 * q = round-half-even(W / scale_r) clamped to [-127, 127]; an all-zero row
 * gets scale 0 and q = 0 (never a division by zero).
 */
#ifndef MCB_QUANT_H
#define MCB_QUANT_H

#include <assert.h>
#include <stdint.h>

#define MCB_QK8_0 32

struct mcb_block_q8_0 {
	uint16_t d;              /* fp16 scale */
	int8_t qs[MCB_QK8_0];    /* codes */
};
static_assert(sizeof(struct mcb_block_q8_0) == 34, "q8_0 block is 34 bytes");

/* x (k,) -> y (k/32 blocks).  k must be a multiple of 32. */
void mcb_quantize_row_q8_0_ref(const float *x, struct mcb_block_q8_0 *y, int64_t k);
void mcb_dequantize_row_q8_0_ref(const struct mcb_block_q8_0 *x, float *y, int64_t k);
/* Same results as _ref bit for bit (vectorized where the CPU allows). */
void mcb_quantize_row_q8_0(const float *x, struct mcb_block_q8_0 *y, int64_t k);

/*
 * Split form of Q8_0 used by the IR: codes q (k,) int8 and one fp16 scale per
 * 32 elements, d (k/32,).  Identical numbers to mcb_quantize_row_q8_0_ref.
 */
void mcb_quantize_row_q8_0_split(const float *x, int8_t *q, uint16_t *d, int64_t k);

/* W (rows, cols) -> q (rows, cols), scale (rows,), per-channel symmetric int8. */
void mcb_rtn_int8_channel_ref(const float *w, int64_t rows, int64_t cols, int8_t *q,
			      float *scale);
void mcb_rtn_int8_channel(const float *w, int64_t rows, int64_t cols, int8_t *q, float *scale);

#endif
