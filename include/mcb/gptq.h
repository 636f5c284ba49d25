/*
 * gptq: the GPTQ and SparseGPT layer solvers (ALGORITHMS.md 1 and 4;
 * IST-DASLab/gptq gptq.py, IST-DASLab/sparsegpt sparsegpt.py), float32.
 *
 * A linear layer's weight W is [rows = out, cols = in], row-major; H is the
 * calibration Hessian [cols, cols], (2/n) sum X^T X, accumulated by the
 * caller.  Both solvers quantize and/or prune W one input column at a time
 * and spread each column's error over the columns not yet done, weighted by
 * H^-1, in blocks of B columns with a lazy SGEMM update of the rest.
 *
 * Two steps, so that one Hessian serves every layer that reads the same
 * input (q/k/v, gate/up):
 *   mcb_gptq_prepare   H -> struct mcb_gptq: dead columns, act_order
 *                      permutation, damping (with retries), Hinv.
 *   mcb_gptq_quantize  W -> integer codes, scales, zeros, g_idx (GPTQ).
 *   mcb_gptq_prune     W -> pruned (and optionally quantized) W and its mask
 *                      (SparseGPT).
 *
 * The Hessian, exactly as the reference (float32 here):
 *   dead = diag(H) == 0: H[d][d] = 1, W[:, d] = 0 (the weights of inputs that
 *   are always 0); act_order: columns in descending diag(H) order, ties by
 *   lower index (a stable sort); H += percdamp * mean(diag H) * I; Hinv = U,
 *   the upper Cholesky factor of H^-1 (H^-1 = U^T U).  U is computed as the
 *   inverse of the "reversed" Cholesky factor R of H (H = R R^T, R upper:
 *   the lower factor of H with rows and columns in reverse order), which is
 *   U by uniqueness of the Cholesky factor: one factorization and one
 *   triangular inverse, (2/3) cols^3 flops instead of the reference's
 *   (4/3) cols^3 (chol, cholesky_inverse, chol).  Only the lower triangle of
 *   H is read (H[max(i,j)][min(i,j)] for the pair i, j).
 *   A failed factorization (H + damp not positive definite in float32, or a
 *   factor that is not finite) is retried with percdamp += damp_step
 *   (GPTQModel's rule) while percdamp < 1 and at most max_retries times.
 *
 * GPTQ (mcb_gptq_quantize), with the quantizer of mcb_intq_params and
 * mcb_intq_codes (quant.h; scales rounded to fp16 first when fp16_scale):
 *   group 0 (one group per row): the parameters of each row, from the
 *     original W (before the dead columns are zeroed, as the reference).
 *   groups, not static: at each column c with c % group == 0 (c counted in
 *     the permuted order), the parameters of columns [c, c + group) of the
 *     UPDATED W as it stood at the start of c's block: the reference reads
 *     W, not the block's working copy W1, so the updates made inside the
 *     current block are not seen (this matters when group < B).
 *   static groups: the parameters of every group [g*group, (g+1)*group) in
 *     the original column order, from the original W (dead columns zeroed),
 *     up front.
 *   then per column: q = scale * (code - zero); e = (w - q) / Hinv[c][c];
 *   the rest of the block -= e Hinv[c, c+1:i2]; after the block,
 *   W[:, i2:] -= E Hinv[i1:i2, i2:] (SGEMM).
 *   g_idx[c] (the group of original column c): c / group; with act_order and
 *   groups not static, (position of c in the permuted order) / group; 0 with
 *   group 0.  Scales and zeros are indexed by that group.
 *
 * SparseGPT (mcb_gptq_prune), on a Hessian prepared without act_order:
 *   unstructured: at the start of each block, tmp = W1^2 / diag(Hinv1)^2
 *     over the block's rows x count weights (W1 as it stands then), and the
 *     floor(rows * count * sparsity) smallest are pruned, ties to the lower
 *     index in row-major order over the block.  (The reference prunes
 *     tmp <= the value at that sorted index, i.e. one more weight, and all
 *     ties: this prunes exactly the fraction asked.)
 *   n:m: at each column i of a block with i % m == 0, per row, the n
 *     smallest tmp over the m columns i .. i+m-1 of the UPDATED block (ties
 *     to the lower column); needs blocksize % m == 0 and cols % m == 0.
 *   then per column, as GPTQ: q = 0 where pruned, else w (or, with a
 *   quantizer, the quantized value of w, or of 0 where pruned, which is 0:
 *   the reference's joint pruning and quantization; its quantizer is GPTQ's
 *   with groups as above).
 *
 * Numerics: float32 throughout (as the reference on a GPU), errors summed in
 * double.  Against a float64 NumPy implementation of the published
 * algorithm (tests/compat/gptq_ref.py) the codes and masks agree except at
 * rounding ties, where float32 noise decides (a few in 10^4 weights; see
 * tests/unit/test_gptq.c).
 *
 * Threads and determinism: the same inputs give the same bits whatever
 * opts.threads is.  OpenBLAS's own threads change its results (measured
 * with OpenBLAS 0.3.21: SGEMM, SSYRK, SPOTRF and STRTRI all differ between 1
 * and 2 threads for some shapes), so OpenBLAS is set to one thread
 * (mcb_blas_set_threads(1), process-wide, as the engine does) and mcbuild
 * runs the parallel loops: every piece of work is one single-threaded
 * OpenBLAS call (or plain C) whose shape depends only on the problem, on
 * whichever thread takes it.  The factorization works on 256 x 256 tiles
 * (Cholesky, then the triangular inverse, a step's tiles in parallel); the
 * solvers on chunks of MCB_GPTQ_CHUNK rows (each row's result depends only
 * on its own row, and on the masks of unstructured pruning, chosen over all
 * rows between blocks).
 *
 * Memory: mcb_gptq_prepare keeps cols^2 floats (and uses cols * 256 more
 * while it runs); the solvers use a working copy of W (rows * cols floats)
 * and threads * (2 * blocksize * MCB_GPTQ_CHUNK + cols) floats.
 *
 * Speed (bench/bench_gptq.c): a 4096 x 11008 layer (4 bits, groups of 128,
 * act_order) takes about 0.9x the time of its FLOP bound, (4/3) cols^3 +
 * rows cols^2 at OpenBLAS's SGEMM rate, on 2 threads.
 */
#ifndef MCB_GPTQ_H
#define MCB_GPTQ_H

#include <stdint.h>

struct mcb_errctx;
struct mcb_intq_params;

/* Rows per work item of the solvers (fixed: part of what makes the results
 * independent of the thread count). */
#define MCB_GPTQ_CHUNK 256

struct mcb_gptq_opts {
	int threads;      /* worker threads, 1..256 (1): results do not depend on it */
	/* prepare */
	double percdamp;  /* damping fraction of mean(diag H), in [0, 1) (0.01) */
	double damp_step; /* added to percdamp after a failed factorization, in [0, 1);
			     0: no retry (0.01) */
	int max_retries;  /* at most this many retries, >= 0 (100; percdamp stays < 1) */
	int act_order;    /* columns in descending diag(H) order (GPTQ only) */
	/* solvers */
	int64_t blocksize; /* lazy-batch width B, >= 1 (128) */
	int static_groups; /* group parameters from the original W, up front */
	/* mcb_gptq_prune */
	double sparsity;  /* unstructured: fraction pruned per block, in [0, 1] */
	int prune_n;      /* n:m: prune n of every m consecutive input columns per row; */
	int prune_m;      /* 0 < n < m <= 64; prune_m 0: unstructured */
};

/* The defaults above (sparsity 0, unstructured). */
void mcb_gptq_opts_init(struct mcb_gptq_opts *o);

/* A prepared Hessian.  Read-only for callers; freed by mcb_gptq_free. */
struct mcb_gptq {
	int64_t cols;
	int act_order;
	int64_t *perm;   /* [cols] position -> original column (identity without act_order) */
	uint8_t *dead;   /* [cols] 1 where diag(H) was 0, original column order */
	int64_t ndead;
	float *hinv;     /* [cols, cols] row-major, positions in the permuted order: the
			    upper triangle holds U (H'^-1 = U^T U, H' permuted and damped),
			    the strict lower triangle is 0 */
	double percdamp; /* the damping fraction that factorized */
	double damp;     /* percdamp * mean(diag H') (dead diagonals counted as 1), added */
	int retries;     /* factorizations that failed before that one */
};

/*
 * Prepare h [cols, cols] (symmetric; the lower triangle is read; not kept).
 * Uses o->percdamp, damp_step, max_retries, act_order, threads.  Returns 0 and *out
 * (free with mcb_gptq_free), or MCB_ERANGE (non-finite H, H not positive
 * definite with the largest damping tried, sizes too large), MCB_EINVAL
 * (bad options), MCB_ENOMEM, MCB_EUNSUP (OpenBLAS cannot be loaded).
 */
int mcb_gptq_prepare(const float *h, int64_t cols, const struct mcb_gptq_opts *o,
		     struct mcb_gptq **out, struct mcb_errctx *e);
void mcb_gptq_free(struct mcb_gptq *g);

/* ngroups = ceil(cols / group), 1 when group is 0. */
int64_t mcb_gptq_ngroups(int64_t cols, int64_t group);

/*
 * The solvers' outputs.  The caller provides the buffers (row-major,
 * original column order); the solvers fill the results.
 */
struct mcb_gptq_out {
	uint8_t *codes; /* [rows, cols] 0..2^bits-1; required when quantizing */
	float *scale;   /* [rows, ngroups]; required when quantizing */
	uint8_t *zero;  /* [rows, ngroups]; required when quantizing (symmetric:
			   (maxq + 1) / 2) */
	int32_t *g_idx; /* [cols] the group of each column; optional */
	float *w;       /* [rows, cols] the new weights: scale * (code - zero) where
			   quantized, 0 where pruned; required when pruning, optional
			   otherwise */
	uint8_t *mask;  /* [rows, cols] 1 kept, 0 pruned; required when pruning */
	float *wpre;    /* [rows, cols] optional: each weight as updated just before
			   its column was quantized or pruned (GPTQ's W1[:, i]) */
	/* results */
	double loss;    /* sum of ((w - q) / Hinv[c][c])^2 / 2 over all weights
			   (the reference's Losses) */
	int64_t pruned; /* weights pruned (mcb_gptq_prune) */
};

/*
 * GPTQ: quantize w [rows, cols] (not modified) with quantizer q on the
 * prepared Hessian g (cols = g->cols; act_order is g's, o->act_order must
 * match).  Uses o->blocksize, static_groups, threads.  g is only read: it
 * may serve several calls, one at a time or at once.  On error the outputs
 * hold unspecified values.  Returns 0, or
 * MCB_ERANGE (non-finite weight, bits outside 2..8, group < 0, a scale that
 * overflows (fp16), a numerical breakdown), MCB_EINVAL (missing buffers,
 * options), MCB_ENOMEM, MCB_EUNSUP.
 */
int mcb_gptq_quantize(const struct mcb_gptq *g, const float *w, int64_t rows,
		      const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		      struct mcb_gptq_out *out, struct mcb_errctx *e);

/*
 * SparseGPT: prune w [rows, cols] with o->sparsity (unstructured) or
 * o->prune_n:o->prune_m, and quantize the kept weights with q in the same
 * pass when q is not NULL (then codes, scale and zero are required as in
 * mcb_gptq_quantize).  g must be prepared without act_order.  Errors as
 * mcb_gptq_quantize.
 */
int mcb_gptq_prune(const struct mcb_gptq *g, const float *w, int64_t rows,
		   const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		   struct mcb_gptq_out *out, struct mcb_errctx *e);

#endif
