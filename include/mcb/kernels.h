/*
 * kernels: the engine's inner loops, in one table (internal to runtime/).
 *
 * Every entry has a scalar _ref implementation (the oracle: straight loops,
 * sums accumulated in double and rounded once) and, on x86-64 CPUs with
 * AVX2, FMA and F16C, an optimized one selected at run time.  The optimized
 * entries accumulate in float lanes with fused multiply-adds, so their sums
 * differ from _ref by rounding only: tests/unit/test_engine.c bounds the
 * difference by a small multiple of FLT_EPSILON * sum |terms|.  Conversions
 * (fp16/bf16 rounding, Q8_0 activation codes) are identical bit for bit.
 *
 * Weight forms (the internal form of runtime/step_quantize.c):
 *   f32, f16, bf16         a row of n values
 *   i8 per channel         codes q (n,) and one F32 scale s for the row:
 *                          w = fl(s * q), one float rounding
 *   q8_0 (split form)      codes q (n,) and fp16 scales d (n/32,):
 *                          w = fp16(d) * q, exact in float (11 x 8 bits)
 * The dequantized weight is defined as that float; EXACT-mode dot products
 * are dot products with it.
 *
 * GGML mode (what ggml's CPU backend computes, ggml-cpu type traits:
 * vec_dot_type of Q8_0 is Q8_0, of F16 is F16, of BF16 is BF16): the
 * activation is first converted to the weight's "dot type" (quantize_act /
 * f32_to_f16 / f32_to_bf16) and the dot product runs on the pair.
 *
 * Determinism: an entry's result depends only on its arguments (and on which
 * table is in use, fixed for a process), never on threads or alignment.
 *
 * MCB_KERNELS=ref in the environment makes mcb_kernels() return the _ref
 * table (to run the engine on the oracle, or on machines where the
 * optimized path is suspect).
 */
#ifndef MCB_KERNELS_H
#define MCB_KERNELS_H

#include <stdint.h>

#define MCB_QK 32 /* Q8_0 block length */

struct mcb_kernels {
	const char *name; /* "ref" or "avx2" */

	/* sum_i a[i] * b[i]                                a, b (n,) */
	float (*dot_f32)(int64_t n, const float *a, const float *b);
	/* sum_i f16(w[i]) * x[i]                           w (n,) fp16, x (n,) */
	float (*dot_f16_f32)(int64_t n, const uint16_t *w, const float *x);
	/* sum_i bf16(w[i]) * x[i] */
	float (*dot_bf16_f32)(int64_t n, const uint16_t *w, const float *x);
	/* sum_i fl(s * q[i]) * x[i]                         q (n,) int8 */
	float (*dot_i8_f32)(int64_t n, const int8_t *q, float s, const float *x);
	/* sum_i (f16(d[i/32]) * q[i]) * x[i]                n % 32 == 0 */
	float (*dot_q8_0_f32)(int64_t n, const int8_t *q, const uint16_t *d, const float *x);

	/* GGML mode pairs.  sum_i f16(w[i]) * f16(x[i]) */
	float (*dot_f16_f16)(int64_t n, const uint16_t *w, const uint16_t *x);
	/* sum_i bf16(w[i]) * bf16(x[i]) */
	float (*dot_bf16_bf16)(int64_t n, const uint16_t *w, const uint16_t *x);
	/* sum over blocks b of f16(wd[b]) * f16(xd[b]) * (sum_j wq[j] * xq[j]),
	 * the integer block sums exact                      n % 32 == 0 */
	float (*dot_q8_0_q8_0)(int64_t n, const int8_t *wq, const uint16_t *wd, const int8_t *xq,
			       const uint16_t *xd);

	/*
	 * Many of those at once (matvec and batched matmul): for r < nrows and
	 * t < ntok, y[t * ldy + r] = dot_q8_0_q8_0(n, W_r, x_t) with W_r at
	 * wq + r*n, wd + r*(n/32) and x_t at xq + t*n, xd + t*(n/32).  Equal bit
	 * for bit to calling this table's dot_q8_0_q8_0 per element; faster,
	 * because rows and tokens share loads and run independent chains.
	 */
	void (*gemm_q8_0_q8_0)(int64_t n, const int8_t *wq, const uint16_t *wd, int64_t nrows,
			       const int8_t *xq, const uint16_t *xd, int64_t ntok, float *y,
			       int64_t ldy);

	/* y[i] += a * x[i] (the attention's weighted sum of V rows) */
	void (*axpy_f32)(int64_t n, float a, const float *x, float *y);

	/*
	 * An activation row x (n,) -> Q8_0 codes q (n,) and fp16 scales d
	 * (n/32,) as ggml's x86 CPU backend quantizes the input of a Q8_0
	 * matmul (ggml-cpu/arch/x86/quants.c quantize_row_q8_0): per block
	 * amax = max|x|, d = amax / 127, id = amax ? 127 / amax : 0 (not 1/d),
	 * q = round-half-even(x * id), d stored as fp16.  This differs from
	 * ggml's portable _ref quantizer (mcb_quantize_row_q8_0: 1/d and
	 * roundf) in rare last-bit cases; llama.cpp on x86 runs this one.
	 * Non-finite input gives codes 0.                   n % 32 == 0
	 */
	void (*quantize_act)(int64_t n, const float *x, int8_t *q, uint16_t *d);
	/* fp16 / bf16 rounding (to nearest even) of x (n,) */
	void (*f32_to_f16)(int64_t n, const float *x, uint16_t *y);
	void (*f32_to_bf16)(int64_t n, const float *x, uint16_t *y);

	/* Dequantization of one row (n,) to float, the values defined above. */
	void (*deq_f16)(int64_t n, const uint16_t *w, float *y);
	void (*deq_bf16)(int64_t n, const uint16_t *w, float *y);
	void (*deq_i8)(int64_t n, const int8_t *q, float s, float *y);
	void (*deq_q8_0)(int64_t n, const int8_t *q, const uint16_t *d, float *y);
};

/* The scalar oracle. */
const struct mcb_kernels *mcb_kernels_ref(void);
/* The optimized table when the CPU has AVX2, FMA and F16C, else NULL. */
const struct mcb_kernels *mcb_kernels_avx2(void);
/* What the engine uses: MCB_KERNELS=ref forces the oracle; otherwise the
 * optimized table when available, else the oracle.  The engine asks once,
 * when it is created. */
const struct mcb_kernels *mcb_kernels(void);

#endif
