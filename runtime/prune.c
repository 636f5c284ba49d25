/*
 * prune: magnitude and Wanda masks, structured scores and rankings
 * (contracts, formulas and the tie rule in include/mcb/prune.h).
 *
 * Selection: "prune the k smallest, ties by lower index" is a stable
 * ascending sort cut at k, computed without sorting.  Scores are mapped to
 * unsigned keys whose order is the float order (key(-0) == key(+0)); the
 * k-th smallest key t is found by a four-pass radix select (8 bits a pass,
 * each pass counting the elements that share the prefix found so far, so
 * O(n) time and no extra memory), then everything below t is pruned and the
 * first k - #{key < t} elements equal to t in index order.  The per-layer
 * threshold computes keys on the fly from |W|; n:m groups of up to SMALL_M
 * columns rank each element against the others instead (O(m^2), no
 * histogram).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/err.h"
#include "mcb/quant.h"
#include "mcb/prune.h"

#define SMALL_M 16

/* ---- keys and selection ---- */

/* Unsigned key with the float order of f (no NaN); -0 and +0 map alike. */
static uint32_t fkey(float f)
{
	uint32_t b;

	if (f == 0.0f)
		f = 0.0f;
	memcpy(&b, &f, sizeof(b));
	return b & 0x80000000u ? ~b : b | 0x80000000u;
}

/* The score of element i: |v[i]| when absval, else v[i]. */
static uint32_t key_at(const float *v, int64_t i, int absval)
{
	return fkey(absval ? fabsf(v[i]) : v[i]);
}

/* The k-th smallest key (0-based, k < n) of v[0..n). */
static uint32_t kth_key(const float *v, int64_t n, int absval, int64_t k)
{
	int64_t hist[256], i, below;
	uint32_t prefix = 0, mask = 0, key;
	int shift, b;

	for (shift = 24; shift >= 0; shift -= 8) {
		memset(hist, 0, sizeof(hist));
		for (i = 0; i < n; i++) {
			key = key_at(v, i, absval);
			if ((key & mask) == prefix)
				hist[(key >> shift) & 255]++;
		}
		below = 0;
		for (b = 0; b < 256 && below + hist[b] <= k; b++)
			below += hist[b];
		/* b < 256: the elements with this prefix number more than k */
		k -= below;
		prefix |= (uint32_t)b << shift;
		mask |= 255u << shift;
	}
	return prefix;
}

/* mask[i] (stride 1) = 0 for the k smallest of v[0..n) (ties: lower index
 * first), 1 for the others. */
static void prune_smallest(const float *v, int64_t n, int absval, int64_t k, uint8_t *mask)
{
	int64_t i, lt = 0, eq;
	uint32_t t, key;

	if (k <= 0) {
		memset(mask, 1, (size_t)n);
		return;
	}
	t = kth_key(v, n, absval, k - 1);
	for (i = 0; i < n; i++)
		lt += key_at(v, i, absval) < t;
	eq = k - lt; /* >= 1: t itself is among the k smallest */
	for (i = 0; i < n; i++) {
		key = key_at(v, i, absval);
		if (key < t) {
			mask[i] = 0;
		} else if (key == t && eq > 0) {
			mask[i] = 0;
			eq--;
		} else {
			mask[i] = 1;
		}
	}
}

/* n:m over one row v (cols,), cols a multiple of m. */
static void prune_nm_row(const float *v, int64_t cols, int absval, int n, int m, uint8_t *mask)
{
	uint32_t key[SMALL_M];
	int64_t g;
	int i, j, rank;

	for (g = 0; g < cols; g += m) {
		if (m > SMALL_M) {
			prune_smallest(v + g, m, absval, n, mask + g);
			continue;
		}
		for (i = 0; i < m; i++)
			key[i] = key_at(v, g + i, absval);
		for (i = 0; i < m; i++) {
			rank = 0;
			for (j = 0; j < m; j++)
				rank += key[j] < key[i] || (key[j] == key[i] && j < i);
			mask[g + i] = rank >= n;
		}
	}
}

/* ---- checks ---- */

static int check_pattern(const struct mcb_prune_pattern *pat, int64_t rows, int64_t cols,
			 const char *fn, struct mcb_errctx *e)
{
	if (!pat)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL pattern", fn);
	if (rows < 1 || cols < 1 || rows > INT64_MAX / cols)
		return mcb_errf(e, MCB_EINVAL, "%s: shape [%lld, %lld] is empty or too large", fn,
				(long long)rows, (long long)cols);
	if (pat->m < 0)
		return mcb_errf(e, MCB_EINVAL, "%s: m = %d is negative", fn, pat->m);
	if (pat->m > 0) {
		if (pat->n < 1 || pat->n >= pat->m)
			return mcb_errf(e, MCB_EINVAL, "%s: %d:%d sparsity needs 1 <= n < m", fn,
					pat->n, pat->m);
		if (cols % pat->m != 0)
			return mcb_errf(e, MCB_EINVAL,
					"%s: %d:%d groups do not divide the %lld input columns", fn,
					pat->n, pat->m, (long long)cols);
		return 0;
	}
	if (!(pat->sparsity >= 0.0 && pat->sparsity < 1.0))
		return mcb_errf(e, MCB_ERANGE, "%s: sparsity %g is not in [0, 1)", fn,
				pat->sparsity);
	return 0;
}

/* finite and >= 0 */
static int check_norm(const float *x, int64_t n, const char *fn, const char *what,
		      struct mcb_errctx *e)
{
	int64_t i;
	int rc;

	if (!x)
		return mcb_errf(e, MCB_EINVAL, "%s: no %s", fn, what);
	rc = mcb_require_finite(x, n, fn, what, e);
	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		if (x[i] < 0)
			return mcb_errf(e, MCB_ERANGE, "%s: %s[%lld] = %g is negative", fn, what,
					(long long)i, (double)x[i]);
	return 0;
}

/* ---- masks ---- */

int mcb_prune_wanda_norm(const float *sum_sq, int64_t cols, double n_seq, float *norm,
			 struct mcb_errctx *e)
{
	const char *fn = "wanda norm";
	int64_t j;

	if (!sum_sq || !norm || cols < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: no input channels", fn);
	if (!(n_seq > 0) || !isfinite(n_seq))
		return mcb_errf(e, MCB_ERANGE, "%s: sequence count %g is not positive", fn, n_seq);
	for (j = 0; j < cols; j++)
		if (!(sum_sq[j] >= 0) || !isfinite(sum_sq[j]))
			return mcb_errf(e, MCB_ERANGE, "%s: sum x^2 [%lld] = %g", fn, (long long)j,
					(double)sum_sq[j]);
	for (j = 0; j < cols; j++)
		norm[j] = (float)sqrt((double)sum_sq[j] / n_seq);
	return 0;
}

/* mask from v (rows, cols) (scores, or |v| when absval), inputs checked. */
static void mask_of(const float *v, int64_t rows, int64_t cols, int absval,
		    const struct mcb_prune_pattern *pat, int per_layer, uint8_t *mask)
{
	int64_t r;

	if (per_layer) {
		double k = (double)(rows * cols) * pat->sparsity;

		prune_smallest(v, rows * cols, absval, (int64_t)k, mask);
		return;
	}
	for (r = 0; r < rows; r++) {
		if (pat->m > 0)
			prune_nm_row(v + r * cols, cols, absval, pat->n, pat->m, mask + r * cols);
		else
			prune_smallest(v + r * cols, cols, absval,
				       (int64_t)((double)cols * pat->sparsity), mask + r * cols);
	}
}

int mcb_prune_mask(const float *score, int64_t rows, int64_t cols,
		   const struct mcb_prune_pattern *pat, int per_layer, uint8_t *mask,
		   struct mcb_errctx *e)
{
	const char *fn = "prune mask";
	int64_t i;
	int rc;

	rc = check_pattern(pat, rows, cols, fn, e);
	if (rc)
		return rc;
	if (!score || !mask)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (per_layer && pat->m > 0)
		return mcb_errf(e, MCB_EINVAL, "%s: a per-layer threshold is unstructured only",
				fn);
	for (i = 0; i < rows * cols; i++)
		if (isnan(score[i]))
			return mcb_errf(e, MCB_ERANGE, "%s: score[%lld] is NaN", fn, (long long)i);
	mask_of(score, rows, cols, 0, pat, per_layer, mask);
	return 0;
}

static void apply(const float *w, int64_t n, const uint8_t *mask, float *out)
{
	int64_t i;

	if (out)
		for (i = 0; i < n; i++)
			out[i] = mask[i] ? w[i] : 0.0f;
}

int mcb_prune_wanda(const float *w, int64_t rows, int64_t cols, const float *norm,
		    const struct mcb_prune_pattern *pat, uint8_t *mask, float *out,
		    struct mcb_errctx *e)
{
	const char *fn = "wanda";
	float *s;
	int64_t r, j;
	int rc;

	rc = check_pattern(pat, rows, cols, fn, e);
	if (!rc && (!w || !mask))
		rc = mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (!rc)
		rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (!rc)
		rc = check_norm(norm, cols, fn, "norm", e);
	if (rc)
		return rc;
	s = malloc((size_t)cols * sizeof(float));
	if (!s)
		return mcb_errf(e, MCB_ENOMEM, "%s: cannot allocate a row of %lld scores", fn,
				(long long)cols);
	for (r = 0; r < rows; r++) {
		const float *wr = w + r * cols;

		/* S (cols,) = |W_r| * norm */
		for (j = 0; j < cols; j++)
			s[j] = fabsf(wr[j]) * norm[j];
		mask_of(s, 1, cols, 0, pat, 0, mask + r * cols);
	}
	free(s);
	apply(w, rows * cols, mask, out);
	return 0;
}

int mcb_prune_magnitude(const float *w, int64_t rows, int64_t cols,
			const struct mcb_prune_pattern *pat, uint8_t *mask, float *out,
			struct mcb_errctx *e)
{
	const char *fn = "magnitude prune";
	int rc;

	rc = check_pattern(pat, rows, cols, fn, e);
	if (!rc && (!w || !mask))
		rc = mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (!rc)
		rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (rc)
		return rc;
	mask_of(w, rows, cols, 1, pat, pat->m == 0, mask);
	apply(w, rows * cols, mask, out);
	return 0;
}

/* ---- structured scores ---- */

/* sum over rows r < nr of W (nr, cols) and all j of |W[r, j]| * norm[j] */
static double rows_score(const float *w, int64_t nr, int64_t cols, const float *norm)
{
	double sum = 0.0;
	int64_t r, j;

	for (r = 0; r < nr; r++)
		for (j = 0; j < cols; j++)
			sum += (double)(fabsf(w[r * cols + j]) * norm[j]);
	return sum;
}

/* sum over all rows r < nr of W (nr, ld) and columns c0 <= c < c0 + nc of
 * |W[r, c]| * norm[c] */
static double cols_score(const float *w, int64_t nr, int64_t ld, int64_t c0, int64_t nc,
			 const float *norm)
{
	double sum = 0.0;
	int64_t r, c;

	for (r = 0; r < nr; r++)
		for (c = c0; c < c0 + nc; c++)
			sum += (double)(fabsf(w[r * ld + c]) * norm[c]);
	return sum;
}

static int check_dims(int64_t a, int64_t b, const char *fn, struct mcb_errctx *e)
{
	if (a < 1 || b < 1 || a > INT64_MAX / b / 8)
		return mcb_errf(e, MCB_EINVAL, "%s: dimensions %lld x %lld are empty or too large",
				fn, (long long)a, (long long)b);
	return 0;
}

int mcb_prune_head_scores(const struct mcb_prune_attn *a, double *score, struct mcb_errctx *e)
{
	const char *fn = "attention head scores";
	int64_t G, hd, qdim, kvdim, g;
	int rc;

	if (!a || !score || !a->wq || !a->wk || !a->wv || !a->wo)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (a->n_kv_heads < 1 || a->head_dim < 1 || a->n_heads < a->n_kv_heads ||
	    a->n_heads % a->n_kv_heads != 0)
		return mcb_errf(e, MCB_EINVAL,
				"%s: %lld query heads are not a multiple of %lld kv heads "
				"(head_dim %lld)",
				fn, (long long)a->n_heads, (long long)a->n_kv_heads,
				(long long)a->head_dim);
	hd = a->head_dim;
	G = a->n_heads / a->n_kv_heads;
	rc = check_dims(a->n_heads, hd, fn, e);
	if (rc)
		return rc;
	qdim = a->n_heads * hd;
	kvdim = a->n_kv_heads * hd;
	rc = check_dims(qdim, a->dim, fn, e);
	if (!rc)
		rc = mcb_require_finite(a->wq, qdim * a->dim, fn, "q weight", e);
	if (!rc)
		rc = mcb_require_finite(a->wk, kvdim * a->dim, fn, "k weight", e);
	if (!rc)
		rc = mcb_require_finite(a->wv, kvdim * a->dim, fn, "v weight", e);
	if (!rc)
		rc = mcb_require_finite(a->wo, a->dim * qdim, fn, "o weight", e);
	if (!rc)
		rc = check_norm(a->norm_x, a->dim, fn, "norm_x", e);
	if (!rc)
		rc = check_norm(a->norm_o, qdim, fn, "norm_o", e);
	if (rc)
		return rc;
	for (g = 0; g < a->n_kv_heads; g++) {
		int64_t q0 = g * G * hd, k0 = g * hd;

		score[g] = rows_score(a->wq + q0 * a->dim, G * hd, a->dim, a->norm_x) +
			   rows_score(a->wk + k0 * a->dim, hd, a->dim, a->norm_x) +
			   rows_score(a->wv + k0 * a->dim, hd, a->dim, a->norm_x) +
			   cols_score(a->wo, a->dim, qdim, q0, G * hd, a->norm_o);
	}
	return 0;
}

int mcb_prune_ffn_scores(const struct mcb_prune_ffn *f, double *score, struct mcb_errctx *e)
{
	const char *fn = "ffn channel scores";
	int64_t c, r;
	int rc;

	if (!f || !score || !f->w_up || !f->w_down)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	rc = check_dims(f->hidden, f->dim, fn, e);
	if (!rc && f->w_gate)
		rc = mcb_require_finite(f->w_gate, f->hidden * f->dim, fn, "gate weight", e);
	if (!rc)
		rc = mcb_require_finite(f->w_up, f->hidden * f->dim, fn, "up weight", e);
	if (!rc)
		rc = mcb_require_finite(f->w_down, f->dim * f->hidden, fn, "down weight", e);
	if (!rc)
		rc = check_norm(f->norm_x, f->dim, fn, "norm_x", e);
	if (!rc)
		rc = check_norm(f->norm_h, f->hidden, fn, "norm_h", e);
	if (rc)
		return rc;
	/* down's columns first, streaming its rows (score[c] = sum over r in order) */
	for (c = 0; c < f->hidden; c++)
		score[c] = 0.0;
	for (r = 0; r < f->dim; r++)
		for (c = 0; c < f->hidden; c++)
			score[c] += (double)(fabsf(f->w_down[r * f->hidden + c]) * f->norm_h[c]);
	for (c = 0; c < f->hidden; c++)
		score[c] += (f->w_gate ? rows_score(f->w_gate + c * f->dim, 1, f->dim, f->norm_x)
				       : 0.0) +
			    rows_score(f->w_up + c * f->dim, 1, f->dim, f->norm_x);
	return 0;
}

/* ---- rankings ---- */

struct ranked {
	double score;
	int64_t i;
};

static int by_score_desc(const void *pa, const void *pb)
{
	const struct ranked *a = pa, *b = pb;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return (a->i > b->i) - (a->i < b->i);
}

static int cmp_i64(const void *pa, const void *pb)
{
	int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;

	return (a > b) - (a < b);
}

int mcb_prune_rank(const double *score, int64_t n, int64_t *order, struct mcb_errctx *e)
{
	const char *fn = "prune rank";
	struct ranked *t;
	int64_t i;

	if (!score || !order || n < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: nothing to rank", fn);
	for (i = 0; i < n; i++)
		if (isnan(score[i]))
			return mcb_errf(e, MCB_ERANGE, "%s: score[%lld] is NaN", fn, (long long)i);
	t = malloc((size_t)n * sizeof(*t));
	if (!t)
		return mcb_errf(e, MCB_ENOMEM, "%s: cannot allocate %lld entries", fn,
				(long long)n);
	for (i = 0; i < n; i++) {
		t[i].score = score[i] == 0 ? 0.0 : score[i]; /* -0 ties with +0 */
		t[i].i = i;
	}
	qsort(t, (size_t)n, sizeof(*t), by_score_desc);
	for (i = 0; i < n; i++)
		order[i] = t[i].i;
	free(t);
	return 0;
}

int mcb_prune_keep(const double *score, int64_t n, int64_t keep, int64_t *idx, struct mcb_errctx *e)
{
	int64_t *order;
	int rc;

	if (keep < 0 || keep > n)
		return mcb_errf(e, MCB_EINVAL, "prune keep: cannot keep %lld of %lld",
				(long long)keep, (long long)n);
	if (!idx)
		return mcb_errf(e, MCB_EINVAL, "prune keep: NULL argument");
	order = malloc((size_t)(n > 0 ? n : 1) * sizeof(*order));
	if (!order)
		return mcb_errf(e, MCB_ENOMEM, "prune keep: cannot allocate %lld entries",
				(long long)n);
	rc = mcb_prune_rank(score, n, order, e);
	if (!rc) {
		memcpy(idx, order, (size_t)keep * sizeof(*idx));
		qsort(idx, (size_t)keep, sizeof(*idx), cmp_i64);
	}
	free(order);
	return rc;
}

int mcb_prune_head_index(int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
			 const int64_t *kv_keep, int64_t nkeep, int64_t *q_rows, int64_t *kv_rows,
			 struct mcb_errctx *e)
{
	const char *fn = "prune head index";
	int64_t G, k, j, nq = 0, nkv = 0;

	if (n_kv_heads < 1 || head_dim < 1 || n_heads < n_kv_heads || n_heads % n_kv_heads != 0)
		return mcb_errf(e, MCB_EINVAL,
				"%s: %lld query heads are not a multiple of %lld kv "
				"heads",
				fn, (long long)n_heads, (long long)n_kv_heads);
	if (nkeep < 0 || nkeep > n_kv_heads || (nkeep > 0 && (!kv_keep || !q_rows || !kv_rows)))
		return mcb_errf(e, MCB_EINVAL, "%s: cannot keep %lld of %lld kv heads", fn,
				(long long)nkeep, (long long)n_kv_heads);
	for (k = 0; k < nkeep; k++)
		if (kv_keep[k] < 0 || kv_keep[k] >= n_kv_heads ||
		    (k && kv_keep[k] <= kv_keep[k - 1]))
			return mcb_errf(e, MCB_EINVAL,
					"%s: kept kv head %lld (entry %lld) is out of range or out "
					"of order",
					fn, (long long)kv_keep[k], (long long)k);
	G = n_heads / n_kv_heads;
	for (k = 0; k < nkeep; k++) {
		for (j = 0; j < G * head_dim; j++)
			q_rows[nq++] = kv_keep[k] * G * head_dim + j;
		for (j = 0; j < head_dim; j++)
			kv_rows[nkv++] = kv_keep[k] * head_dim + j;
	}
	return 0;
}
