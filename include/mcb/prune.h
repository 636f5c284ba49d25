/*
 * prune: pruning masks and structured-pruning rankings (ALGORITHMS.md
 * section 4).  Arrays in, arrays out: W is f32 [rows, cols] row-major
 * (PyTorch Linear: rows = outputs, cols = inputs); a mask is uint8 [rows, cols],
 * 1 = kept, 0 = pruned; pruned weights become +0.0.
 *
 * Wanda (locuslab/wanda lib/prune.py prune_wanda, lib/layerwrapper.py):
 *   scaler_row[j] = sum over calibration tokens of x_j^2 / n_seq
 *   norm[j] = sqrt(scaler_row[j])             (double, rounded once to f32)
 *   S[r, j] = |W[r, j]| * norm[j]              (f32)
 *   unstructured: in every row, the k = floor(cols * p) smallest S are pruned
 *   n:m: in every row and every group of m consecutive input columns
 *        (j = 0..m-1, m..2m-1, ...), the n smallest S are pruned
 * Magnitude (prune_magnitude): unstructured over the whole layer, the
 *   k = floor(rows * cols * p) smallest |W| are pruned; n:m as Wanda's with
 *   S = |W|.
 *
 * Tie rule (everywhere, masks are exact and deterministic): among equal
 * scores the LOWER index is pruned first (flat row-major index for the
 * per-layer threshold).  This is a stable ascending sort, which is what
 * Wanda's unstructured path does (torch.sort(stable=True)); tests/compat/
 * prune_ref.py uses numpy.argsort(kind="stable") everywhere.  -0.0 and +0.0
 * are equal.
 *
 * DEVIATIONS from Wanda's reference code:
 * - n:m: Wanda uses torch.topk(largest=False), whose order among ties is
 *   unspecified; here ties follow the rule above.
 * - magnitude, unstructured: Wanda takes thresh = sort(|W|)[k] and prunes
 *   |W| <= thresh, i.e. k + 1 weights plus every tie (at p = 0 it still prunes
 *   the smallest weight).  Here exactly k weights are pruned.
 * - n:m requires m to divide cols (Wanda would treat a last partial group
 *   of fewer than m columns); 1 <= n < m.
 * - norm is sqrt in double of the statistic (Wanda: f32 throughout).
 * - Wanda's "variant" (use_variant, per-row adaptive sparsity) is not provided.
 *
 * Structured scores (ours; Wanda scores aggregated over everything a unit
 * carries, in double):
 * attention, per kv head g with the G = n_heads / n_kv_heads query heads
 *   h = g G .. g G + G - 1 sharing it (query head h uses kv head h / G, the
 *   Llama/HF repeat_kv convention; head h holds rows h*head_dim ..
 *   (h+1)*head_dim - 1 of q, likewise for k and v, and the same columns of o):
 *     score[g] = sum over the group's rows r of q, k, v and columns j of their
 *                inputs of |W[r, j]| * norm_x[j]
 *              + sum over the rows r of o and the group's columns c of
 *                |Wo[r, c]| * norm_o[c]
 *   i.e. the Wanda score of every weight removed with the group; query,
 *   key and value weights count alike.
 * FFN, per hidden channel c:
 *     score[c] = sum_j (|Wgate[c, j]| + |Wup[c, j]|) * norm_x[j]
 *              + sum_r |Wdown[r, c]| * norm_h[c]
 * Each product is the f32 Wanda score S, summed in double left to right.
 * Ranking: descending score, ties by lower index first; the kept list is the
 * first `keep` of the ranking, returned in ascending index order (ready for
 * slicing rows and columns).  Removing the heads or channels from the model
 * is the caller's.
 *
 * Errors: MCB_EINVAL for bad sizes or patterns (n >= m, m not dividing cols,
 * n_heads not a multiple of n_kv_heads, keep > count), MCB_ERANGE for a
 * sparsity outside [0, 1), a NaN or infinity in a weight, a negative or
 * non-finite norm or statistic, a NaN score; MCB_ENOMEM.  Each names the
 * argument and index.  On error the outputs are unspecified.
 */
#ifndef MCB_PRUNE_H
#define MCB_PRUNE_H

#include <stdint.h>

struct mcb_errctx;

struct mcb_prune_pattern {
	double sparsity; /* unstructured (m == 0): fraction pruned, 0 <= p < 1 */
	int n, m;	 /* m > 0: n of every m consecutive input columns pruned, 1 <= n < m */
};

/* norm (cols,) = sqrt(sum_sq / n_seq) (in double) from the calibration's
 * per-input sum x^2 (calib.h's sum_sq, >= 0) and its sequence count (> 0).
 * Returns 0 or a negative mcb_err. */
int mcb_prune_wanda_norm(const float *sum_sq, int64_t cols, double n_seq, float *norm,
			 struct mcb_errctx *e);

/*
 * The mask of pattern pat for scores (rows, cols) (any finite or infinite
 * values, no NaN): smallest pruned, per row (per_layer 0) or over the whole
 * array (per_layer 1, unstructured only).  Returns 0 or a negative mcb_err.
 */
int mcb_prune_mask(const float *score, int64_t rows, int64_t cols,
		   const struct mcb_prune_pattern *pat, int per_layer, uint8_t *mask,
		   struct mcb_errctx *e);

/*
 * Wanda on W (rows, cols) with norm (cols,): mask (rows, cols) and out =
 * the masked weights (out may be w, or NULL for the mask alone).  Returns 0
 * or a negative mcb_err.
 */
int mcb_prune_wanda(const float *w, int64_t rows, int64_t cols, const float *norm,
		    const struct mcb_prune_pattern *pat, uint8_t *mask, float *out,
		    struct mcb_errctx *e);

/* Magnitude pruning of W: one per-layer threshold (unstructured) or n:m by
 * |W|.  mask and out as for mcb_prune_wanda. */
int mcb_prune_magnitude(const float *w, int64_t rows, int64_t cols,
			const struct mcb_prune_pattern *pat, uint8_t *mask, float *out,
			struct mcb_errctx *e);

/* One attention block, Llama layout (shapes in rows x cols). */
struct mcb_prune_attn {
	int64_t dim;	      /* model width: columns of q, k, v; rows of o */
	int64_t n_heads;      /* query heads, a multiple of n_kv_heads */
	int64_t n_kv_heads;   /* >= 1 */
	int64_t head_dim;     /* >= 1 */
	const float *wq;      /* [n_heads * head_dim, dim] */
	const float *wk, *wv; /* [n_kv_heads * head_dim, dim] */
	const float *wo;      /* [dim, n_heads * head_dim] */
	const float *norm_x;  /* (dim,): Wanda norm of q/k/v's input */
	const float *norm_o;  /* (n_heads * head_dim,): Wanda norm of o's input */
};

/* score (n_kv_heads,) per kv group, formula above.  Returns 0 or a negative mcb_err. */
int mcb_prune_head_scores(const struct mcb_prune_attn *a, double *score, struct mcb_errctx *e);

/* One MLP block. */
struct mcb_prune_ffn {
	int64_t dim, hidden; /* >= 1 */
	const float *w_gate; /* [hidden, dim], NULL for a non-gated MLP */
	const float *w_up;   /* [hidden, dim] */
	const float *w_down; /* [dim, hidden] */
	const float *norm_x; /* (dim,): Wanda norm of gate/up's input */
	const float *norm_h; /* (hidden,): Wanda norm of down's input */
};

/* score (hidden,) per channel, formula above.  Returns 0 or a negative mcb_err. */
int mcb_prune_ffn_scores(const struct mcb_prune_ffn *f, double *score, struct mcb_errctx *e);

/* order (n,) = 0 .. n-1 by descending score, ties lower index first; no NaN.
 * Returns 0 or a negative mcb_err. */
int mcb_prune_rank(const double *score, int64_t n, int64_t *order, struct mcb_errctx *e);

/* idx (keep,) = the keep best of the ranking in ascending index order,
 * 0 <= keep <= n.  Returns 0 or a negative mcb_err. */
int mcb_prune_keep(const double *score, int64_t n, int64_t keep, int64_t *idx,
		   struct mcb_errctx *e);

/*
 * The rows to keep for kept kv groups kv_keep (nkeep, ascending, distinct,
 * each < n_kv_heads): q_rows (nkeep * G * head_dim) = the rows of q and the
 * columns of o, kv_rows (nkeep * head_dim) = the rows of k and v, ascending.
 * The pruned block has nkeep * G query heads and nkeep kv heads.
 */
int mcb_prune_head_index(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
			 const int64_t *kv_keep, int64_t nkeep, int64_t *q_rows, int64_t *kv_rows,
			 struct mcb_errctx *e);

#endif
