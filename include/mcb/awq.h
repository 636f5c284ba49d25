/*
 * awq: activation-aware transforms of one group of linear layers that share
 * an input (ALGORITHMS.md sections 2 and 3): AWQ's per-input-channel scale
 * search, its clip search and its quantizer; SmoothQuant's smoothing factors
 * and W8A8 scales; and the helpers that fold per-channel factors into the
 * model.  Arrays in, arrays out: every weight W is f32 [rows, cols],
 * row-major (PyTorch Linear: rows = outputs, cols = inputs); X is a sample
 * of the group's input rows, f32 [n, cols].  Nothing here touches a model.
 *
 * AWQ quantizer (AutoAWQ quantizer.py pseudo_quantize_tensor, zero_point=True),
 * per row and group of group_size consecutive columns, in f32:
 *   max = max(x), min = min(x)                (not widened to include 0)
 *   scale = max(max - min, 1e-5) / (2^bits - 1)     [fp16_scale: rounded to fp16 here]
 *   zero = clamp(-round(min / scale), 0, 2^bits - 1)
 *   q = clamp(round(x / scale) + zero, 0, 2^bits - 1)
 *   value = (q - zero) * scale                 (qtensor.h's "int" record, U8 codes)
 * round() is round half to even (torch.round); x / scale is a float division.
 * As in the reference, a group of equal positive values c dequantizes to
 * 15 * 1e-5 / 15 = 1e-5, not c (zero is clamped at 0): kept for fidelity;
 * real weight groups are never constant.
 *
 * AWQ scale search (AutoAWQ scale.py _search_best_scale, _compute_best_scale)
 * for layers W_1 .. W_L sharing cols:
 *   w_mean[j] = mean over the rows of all layers (concatenated) of
 *               |W[r, j]| / (max |W[r, g(j)]| + 1e-6), the max taken over
 *               row r's quantization group containing column j
 *   for i = 0 .. n_grid-1, r = i / n_grid:
 *     s = duo ? x_mean^r / (w_mean^(1-r) + 1e-4) : x_mean^r;  s = max(s, 1e-4)
 *     s /= sqrt(max(s) * min(s));  an inf or NaN s[j] becomes 1
 *     W_l' = Q(W_l * s) / s                     (columns scaled, f32)
 *     loss(i) = sum_l ||X W_l^T - X W_l'^T||_F^2 / (n * sum_l rows_l)
 *   the first i with the smallest loss wins (strict <); s of that i is returned.
 * s, w_mean and the loss are computed in double (s rounded once to f32); the
 * loss is evaluated as ||X (W - W')^T||^2, W - W' in f32.
 *
 * DEVIATION from AutoAWQ: AutoAWQ measures the loss on the output of the
 * whole module the group feeds (for q/k/v: the attention block's output
 * after softmax and o_proj; for gate/up: the MLP's output after down_proj),
 * running the module in the model's dtype (fp16).  Here the loss is the mean
 * squared error of the group's own linear outputs, concatenated, in f32/f64.
 * For the groups (v_proj -> o_proj) and (up_proj -> down_proj) the two are
 * the same module (one linear); for (norm -> q,k,v) and (norm -> gate,up)
 * the chosen ratio may differ from AutoAWQ's.  x_mean (the calibration's
 * mean |x| over all tokens) may come from more tokens than the sample X.
 *
 * AWQ clip search (AutoAWQ scale.py _compute_best_clip), on the weight after
 * the scales are folded in (W diag(s)) and the inputs after (X diag(1/s)):
 *   sample rows t = 0, step, 2 step, ... of X, step = max(1, n / clip_samples)
 *   (AutoAWQ's rule: between clip_samples and 2 clip_samples - 1 rows when
 *   n >= clip_samples, all n rows otherwise)
 *   per row r and group g: amax = max |W[r, g]|; best = amax; min_err = 1e9
 *   for i = 0 .. clip_steps-1:
 *     mv = amax * (float)(1 - i / clip_grid)
 *     err = mean over sampled t of (X[t, g] . (Q(clamp(W[r, g], -mv, mv)) - W[r, g]))^2
 *     if err < min_err: min_err = err, best = mv
 *   W[r, g] = clamp(W[r, g], -best, best)
 * AutoAWQ skips the clip search for q and k (names with q_, k_, query, key,
 * Wqkv); the caller decides.  AutoAWQ evaluates cur_out - org_out separately;
 * here X (Q - W)^T, the same quantity with less cancellation.
 *
 * SmoothQuant (mit-han-lab/smoothquant smooth.py smooth_ln_fcs, fake_quant.py):
 *   w_j = max(max over rows and layers |W[:, j]|, 1e-5)   (f32)
 *   s_j = max(act_j^alpha / w_j^(1 - alpha), 1e-5)        (double, rounded to f32)
 *   fold: norm weight (and bias) /= s, each W's columns *= s
 *   W8A8 weights per output row: delta = max(max |W_r|, 1e-5) / 127,
 *     q = round(W / delta) in [-127, 127] (float division, half to even)
 *   static per-tensor activation scale after smoothing:
 *     act_scale = max(max_j (act_j / s_j), 1e-5) / 127
 *   which is max |X diag(1/s)| / 127 since s > 0; the 1e-5 floor (ours) keeps a
 *   dead input from giving a zero scale.
 *
 * Folding: AWQ and SmoothQuant both divide whatever produces the input by s
 * (a norm's weight and bias, or the rows of a preceding linear) and
 * multiply the columns of every layer of the group by s, so that
 * X diag(1/s) (W diag(s))^T == X W^T up to rounding.  The helpers below do
 * exactly these loops (divisions are divisions, as in the references).
 *
 * Determinism: the same inputs give the same bits on one machine with one
 * BLAS; the scalar path (blas == NULL) is the oracle and is single-threaded.
 * The BLAS path evaluates the losses with sgemm (f32 accumulation), so its
 * losses differ from the oracle's by rounding and a near-tie between two grid
 * points can resolve differently.
 *
 * Errors: MCB_EINVAL for bad sizes and parameters (a group size that does not
 * divide cols, bits outside 2..8, no sample rows), MCB_ERANGE for a NaN or
 * infinity in any input array or a negative statistic, MCB_ENOMEM when a work
 * buffer cannot be allocated; each names the argument and index.  On error the
 * output arrays are unspecified.
 */
#ifndef MCB_AWQ_H
#define MCB_AWQ_H

#include <stdint.h>

struct mcb_blas;
struct mcb_errctx;

struct mcb_awq_params {
	int bits;	    /* 2..8; AutoAWQ's w_bit, 4 */
	int64_t group_size; /* columns per group, divides cols; 0: whole rows; 128 */
	/* 1: scales rounded to fp16 before zeros and codes are computed (an AWQ
	   checkpoint stores fp16 scales; then they reproduce the codes); 0: f32 */
	int fp16_scale;
	int n_grid;	 /* scale search: ratios i / n_grid, i < n_grid; >= 1; 20 */
	int duo_scaling; /* 1 (AutoAWQ default): divide by w_mean^(1-r); 0: x_mean^r */
	int clip_grid;	 /* clip search: shrink steps of 1 / clip_grid; >= 1; 20 */
	/* clip search: i < clip_steps, 1 <= clip_steps <= clip_grid (AutoAWQ:
	   max_shrink 0.5 * n_grid 20 = 10) */
	int clip_steps;
	int64_t clip_samples; /* clip search: AutoAWQ's n_sample_token, >= 1; 512 */
};

/* One linear layer of a group: W [rows, cols], cols shared by the group. */
struct mcb_awq_linear {
	const float *w; /* borrowed, rows * cols floats */
	int64_t rows;	/* >= 1 */
};

/* Fill p with AutoAWQ's defaults: 4 bits, groups of 128, f32 scales,
 * n_grid 20, duo scaling, clip grid 20 with 10 steps, 512 clip samples. */
void mcb_awq_defaults(struct mcb_awq_params *p);

/*
 * AWQ's quantizer on W [rows, cols]: codes q (rows, cols) in 0 .. 2^bits-1,
 * scale and zero (rows, ngroups), ngroups = cols / group_size (1 when
 * group_size is 0).  Only p->bits, p->group_size and p->fp16_scale are read.
 * Returns 0 or a negative mcb_err (MCB_ERANGE also when an fp16 scale
 * overflows: a group range above 65504 * (2^bits - 1)).
 */
int mcb_awq_quantize(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
		     uint8_t *q, float *scale, uint8_t *zero, struct mcb_errctx *e);

/* out (rows, cols) = AWQ's quantize-dequantize of W (AutoAWQ's
 * pseudo_quantize_tensor); out may be w.  Same parameters and errors as
 * mcb_awq_quantize. */
int mcb_awq_fake_quant(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
		       float *out, struct mcb_errctx *e);

/*
 * w_mean (cols,) of the group as defined above, in double.  Returns 0 or a
 * negative mcb_err.
 */
int mcb_awq_w_mean(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
		   int64_t cols, double *w_mean, struct mcb_errctx *e);

/*
 * The search's loss of the group for one set of scales s (cols,):
 * sum_l ||X (W_l - Q(W_l diag(s)) diag(1/s))^T||_F^2 / (n * sum_l rows_l).
 * s == NULL means plain round-to-nearest with the same quantizer (no
 * scaling).  blas == NULL: scalar double loops (the oracle); else sgemm.
 * Returns 0 and *loss, or a negative mcb_err.
 */
int mcb_awq_loss(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
		 int64_t cols, const float *s, const float *x, int64_t n,
		 const struct mcb_blas *blas, double *loss, struct mcb_errctx *e);

/*
 * AWQ's scale search for the group l[0 .. nl-1] (nl >= 1) given x_mean
 * (cols,) >= 0 and sample rows x (n, cols), n >= 1.  Writes the chosen
 * scales s (cols,), all > 0; *best (may be NULL) = the chosen grid index;
 * loss (n_grid,) (may be NULL) = the loss of every ratio (+inf for a ratio
 * whose scaled weights or quantization scales overflow: never chosen).  The caller then
 * folds s: mcb_awq_div_rows on what produces the input, mcb_awq_mul_cols on
 * each layer.  blas as for mcb_awq_loss.  Returns 0 or a negative mcb_err
 * (MCB_ERANGE when no ratio gives a finite loss, e.g. fp16 scale overflow).
 */
int mcb_awq_search_scale(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
			 int64_t cols, const float *x_mean, const float *x, int64_t n,
			 const struct mcb_blas *blas, float *s, int *best, double *loss,
			 struct mcb_errctx *e);

/*
 * AWQ's clip search on one layer W (rows, cols) with sample rows x (n, cols),
 * both already scaled (W diag(s), X diag(1/s)).  out (rows, cols) = W with
 * each (row, group) clamped to [-max_val, max_val]; out may be w.  max_val
 * (rows, ngroups) may be NULL.  blas as for mcb_awq_loss (the scalar path is
 * O(rows * cols * samples * clip_steps): tests and small layers only).
 * Returns 0 or a negative mcb_err.
 */
int mcb_awq_search_clip(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
			const float *x, int64_t n, const struct mcb_blas *blas, float *out,
			float *max_val, struct mcb_errctx *e);

/*
 * SmoothQuant's smoothing factors s (cols,) for the layers l[0 .. nl-1]
 * sharing an input with per-channel act_max (cols,) = max over tokens |x_j|
 * (>= 0), alpha in [0, 1] (0.5).  Returns 0 or a negative mcb_err.
 */
int mcb_awq_smooth_scales(const struct mcb_awq_linear *l, int nl, int64_t cols,
			  const float *act_max, double alpha, float *s, struct mcb_errctx *e);

/*
 * SmoothQuant's W8A8 weight quantization of W (rows, cols), per output row:
 * q (rows, cols) int8 in [-127, 127] and delta (rows,); value = delta * q
 * (qtensor.h's symmetric "int" record, group_size 0).  Returns 0 or a
 * negative mcb_err.
 */
int mcb_awq_w8a8_weight(const float *w, int64_t rows, int64_t cols, int8_t *q, float *delta,
			struct mcb_errctx *e);

/*
 * SmoothQuant's static per-tensor activation scale of the smoothed input:
 * *scale = max(max_j (act_max_j / s_j), 1e-5) / 127 (f32); s == NULL means
 * no smoothing (s = 1).  Returns 0 or a negative mcb_err.
 */
int mcb_awq_act_scale(const float *act_max, const float *s, int64_t cols, float *scale,
		      struct mcb_errctx *e);

/*
 * Folding (no checks beyond the caller's sizes; s > 0 finite):
 * mcb_awq_div_rows: a (n, m) row j /= s[j], j < n.  A norm's weight or bias
 *   (m = 1), or the preceding linear's rows that produce the group's input
 *   (for v_proj -> o_proj: v_proj's rows, n = its rows = o_proj's cols;
 *   AutoAWQ divides the LAST n rows of a fused producer: pass a pointer to
 *   them).
 * mcb_awq_mul_cols: W (rows, cols) column j *= s[j]: each layer of the group.
 * mcb_awq_div_cols: X (n, cols) column j /= s[j]: what the group's inputs
 *   become after folding (the clip search takes them).
 */
void mcb_awq_div_rows(float *a, int64_t n, int64_t m, const float *s);
void mcb_awq_mul_cols(float *w, int64_t rows, int64_t cols, const float *s);
void mcb_awq_div_cols(float *x, int64_t n, int64_t cols, const float *s);

#endif
