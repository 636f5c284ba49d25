/*
 * kernels: the engine's inner loops, in one table (internal to runtime/).
 *
 * Every entry has a scalar _ref implementation (the oracle: straight loops)
 * and, on x86-64 CPUs with AVX2, FMA and F16C, an optimized one selected at
 * run time.  The EXACT-mode dot products sum in double and round once in
 * _ref; their optimized versions accumulate in float lanes with fused
 * multiply-adds, so they differ from _ref by rounding only:
 * tests/unit/test_engine.c bounds the difference by a small multiple of
 * FLT_EPSILON * sum |terms|.  The GGML-mode entries (dot_f16_f16,
 * dot_q8_0_q8_0, gemm_q8_0_q8_0, gemm_ggml and the float ops below) follow
 * ggml's own float order in both tables, which give the same bits (and
 * llama.cpp's).  Conversions (fp16/bf16 rounding, activation codes) are
 * identical bit for bit.
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
#define MCB_QKK 256 /* K-quant super-block length (Q8_K) */

/*
 * GGML mode for ggml block weights (blocks as in runtime/quant_ggml.c, any
 * alignment): the weight's "dot type" and the float order of the ggml CPU
 * kernel llama.cpp runs for it on x86 (ggml-cpu arch/x86 quants.c and
 * repack.cpp, node-llama-cpp 3.22.1 / llama.cpp v0.5.0).  Integer block sums
 * are exact in every order; what differs is where they become floats and
 * how the floats are summed (kernels.c specifies each):
 */
enum mcb_ggml_order {
	MCB_GO_Q8_0,      /* Q8_0 x Q8_0: vec_dot_q8_0_q8_0 (= tinyBLAS for batches) */
	MCB_GO_Q4_0,      /* Q4_0 x Q8_0: vec_dot_q4_0_q8_0 (= tinyBLAS) */
	MCB_GO_Q4_0_R,    /* Q4_0 x Q8_0 repacked 8x8 (weights with rows % 8 == 0):
	                     ggml_gemv/gemm_q4_0_8x8_q8_0, one order for both */
	MCB_GO_Q4_1,      /* Q4_1 x Q8_1: vec_dot_q4_1_q8_1 */
	MCB_GO_Q4_K,      /* Q4_K x Q8_K: vec_dot_q4_K_q8_K */
	MCB_GO_Q4_K_GEMV, /* Q4_K x Q8_K repacked 8x8, a single activation row */
	MCB_GO_Q4_K_GEMM, /* Q4_K x Q8_K repacked 8x8, rows in groups of 4 */
	MCB_GO_Q6_K,      /* Q6_K x Q8_K: vec_dot_q6_K_q8_K */
	MCB_GO_COUNT
};

/*
 * Activation rows quantized to a dot type, token t of rows of n values at
 * q + t*n, d + t*(n/32), s + t*(n/32), dk + t*(n/256), bsums + t*(n/16).
 */
struct mcb_qact {
	const int8_t *q;       /* codes */
	const uint16_t *d;     /* Q8_0, Q8_1: fp16 block scales */
	const uint16_t *s;     /* Q8_1: fp16(d * sum of the block's codes), d unrounded */
	const float *dk;       /* Q8_K: float block scales */
	const int16_t *bsums;  /* Q8_K: sums of each 16 codes */
};

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

	/* GGML mode pairs.  sum_i f16(w[i]) * f16(x[i]) in ggml_vec_dot_f16's
	 * order (kernels.c; both tables give the same bits) */
	float (*dot_f16_f16)(int64_t n, const uint16_t *w, const uint16_t *x);
	/* sum_i bf16(w[i]) * bf16(x[i]) */
	float (*dot_bf16_bf16)(int64_t n, const uint16_t *w, const uint16_t *x);
	/* sum over blocks b of f16(wd[b]) * f16(xd[b]) * (sum_j wq[j] * xq[j]),
	 * the integer block sums exact, in ggml's order (vec_dot_q8_0_q8_0,
	 * kernels.c; both tables give the same bits)         n % 32 == 0 */
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

	/*
	 * An activation row x (n,) -> Q8_1 (ggml x86 quantize_row_q8_1): the
	 * codes and fp16 d of quantize_act, and s = fp16(d * sum of the 32
	 * codes) with d the float amax / 127 before its fp16 rounding.
	 * n % 32 == 0.
	 */
	void (*quantize_act_q8_1)(int64_t n, const float *x, int8_t *q, uint16_t *d, uint16_t *s);
	/*
	 * x (n,) -> Q8_K (n % 256 == 0), per block of 256: as ggml's
	 * quantize_row_q8_K_ref, max = the first value of largest magnitude,
	 * iscale = -127 / max, q = min(127, nearest_int(iscale * x)), d =
	 * 1 / iscale, bsums the sums of 16 codes; an all-zero block has d 0,
	 * codes 0.  repack: the rule of the 4-row quantizer of the repacked
	 * Q4_K path (ggml_quantize_mat_q8_K_4x8, x86), which takes max positive
	 * whenever +amax occurs in the block (the two differ only when both +amax
	 * and -amax occur and -amax comes first).  Non-finite input gives codes 0.
	 */
	void (*quantize_act_q8_k)(int64_t n, const float *x, int8_t *q, float *d, int16_t *bsums,
				  int repack);
	/*
	 * y[t * ldy + r] (r < nrows, t < ntok) = row r of a ggml block weight w
	 * (rows of row_bytes bytes, n values each) against activation t of a,
	 * in order o (enum mcb_ggml_order; a holds the order's dot type).  The
	 * _ref and optimized tables give the same bits.
	 */
	void (*gemm_ggml)(enum mcb_ggml_order o, int64_t n, const uint8_t *w, size_t row_bytes,
			  int64_t nrows, const struct mcb_qact *a, int64_t ntok, float *y,
			  int64_t ldy);

	/*
	 * GGML mode float ops: the order of ggml's CPU backend as llama.cpp's
	 * AVX-512 build runs them (16-float vectors; kernels.c specifies each,
	 * checked against llama.cpp by tests/compat/ggml_oracle.c).  The _ref
	 * and optimized tables give the same bits.
	 */
	/* ggml_vec_dot_f32: sum_i x[i] * y[i] (the attention's q . k) */
	float (*dot_f32_ggml)(int64_t n, const float *x, const float *y);
	/*
	 * llamafile's tinyBLAS F32 / F16 dot (what ggml runs for batches of >= 2
	 * tokens when n % 16 == 0): lane l an fma chain over i = l mod 16, then
	 * the 16 lanes summed as _mm512_reduce_add_ps.          n % 16 == 0
	 */
	float (*dot_f32_lanes16)(int64_t n, const float *x, const float *y);
	float (*dot_f16_lanes16)(int64_t n, const uint16_t *x, const uint16_t *y);
	/* y[i] = fma(x[i], a, y[i]): one step of tinyBLAS's 16-lane F32 chains */
	void (*fma_f32)(int64_t n, float a, const float *x, float *y);
	/* ggml_vec_swiglu_f32 on a row of n: a[i] = silu(a[i]) * g[i] */
	void (*swiglu_ggml)(int64_t n, float *a, const float *g);
	/* ggml_vec_soft_max_f32: s[i] = exp(s[i] - max); returns their sum */
	double (*softmax_exp_ggml)(int64_t n, float *s, float max);
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

/* The sum of 16 floats as ggml's AVX-512 build reduces a vector
 * (_mm512_reduce_add_ps as GCC expands it: halves 8 + 8, 4 + 4, then
 * (0 + 2) + (1 + 3)). */
static inline float mcb_reduce16_ggml(const float *a)
{
	float t3[8], t6[4];
	int i;

	for (i = 0; i < 8; i++)
		t3[i] = a[8 + i] + a[i];
	for (i = 0; i < 4; i++)
		t6[i] = t3[4 + i] + t3[i];
	return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}

#endif
