/*
 * awq: AWQ's scale and clip searches and quantizer, SmoothQuant's factors and
 * W8A8 scales, folding helpers (contracts and the published definitions in
 * include/mcb/awq.h; ALGORITHMS.md sections 2 and 3).
 *
 * Layout of the work: both searches quantize a block of at most BLOCK_ROWS
 * rows at a time into D = W - W' (f32, BLOCK_ROWS x cols) and measure
 * ||X D^T||^2, either with double loops (blas == NULL, the oracle) or with
 * sgemm over chunks of at most CHUNK_ROWS sample rows (f32 products summed
 * into double per chunk).  Memory is O(BLOCK_ROWS * cols + CHUNK_ROWS *
 * BLOCK_ROWS) whatever the layer's size.
 *
 * Every elementwise quantization step is the f32 operation the references
 * perform in the same order (no FMA can form: no product is added to), so the
 * dequantized weights are bit-identical to a float32 NumPy/PyTorch
 * evaluation given the same scales.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/awq.h"
#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

#define BLOCK_ROWS 512	/* weight rows quantized per work block */
#define CHUNK_ROWS 2048 /* sample rows per sgemm */
#define CLIP_ERR0 1e9	/* AutoAWQ's initial min_errs */

void mcb_awq_defaults(struct mcb_awq_params *p)
{
	p->bits = 4;
	p->group_size = 128;
	p->fp16_scale = 0;
	p->n_grid = 20;
	p->duo_scaling = 1;
	p->clip_grid = 20;
	p->clip_steps = 10;
	p->clip_samples = 512;
}

/* ---- checks and buffers ---- */

/* 0 when x (n,) is finite and >= 0. */
static int check_stat(const float *x, int64_t n, const char *fn, const char *what,
		      struct mcb_errctx *e)
{
	int64_t i;
	int rc = mcb_require_finite(x, n, fn, what, e);

	if (rc)
		return rc;
	for (i = 0; i < n; i++)
		if (x[i] < 0)
			return mcb_errf(e, MCB_ERANGE, "%s: %s[%lld] = %g is negative", fn, what,
					(long long)i, (double)x[i]);
	return 0;
}

/* A buffer of n * size bytes, or NULL after an MCB_ENOMEM message. */
static void *alloc(int64_t n, size_t size, const char *fn, struct mcb_errctx *e)
{
	size_t bytes;
	void *p;

	if (n < 0 || mcb_mul_ok((size_t)n, size, &bytes)) {
		mcb_errf(e, MCB_ENOMEM, "%s: work buffer of %lld x %zu bytes overflows", fn,
			 (long long)n, size);
		return NULL;
	}
	p = malloc(bytes ? bytes : 1);
	if (!p)
		mcb_errf(e, MCB_ENOMEM, "%s: cannot allocate %zu bytes", fn, bytes);
	return p;
}

/* The checks shared by everything that quantizes: rows, cols >= 1, rows * cols
 * fits, bits, group size. */
static int check_shape(const struct mcb_awq_params *p, int64_t rows, int64_t cols, const char *fn,
		       struct mcb_errctx *e)
{
	size_t cells;

	if (!p)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL parameters", fn);
	if (rows < 1 || cols < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: shape [%lld, %lld] is empty", fn,
				(long long)rows, (long long)cols);
	if (mcb_mul_ok((size_t)rows, (size_t)cols, &cells) || cells > (size_t)INT64_MAX / 8)
		return mcb_errf(e, MCB_ERANGE, "%s: shape [%lld, %lld] is too large", fn,
				(long long)rows, (long long)cols);
	if (p->bits < 2 || p->bits > 8)
		return mcb_errf(e, MCB_EINVAL, "%s: bits = %d, expected 2..8", fn, p->bits);
	if (p->group_size < 0)
		return mcb_errf(e, MCB_EINVAL, "%s: group size %lld is negative", fn,
				(long long)p->group_size);
	if (p->group_size > 0 && cols % p->group_size != 0)
		return mcb_errf(e, MCB_EINVAL,
				"%s: group size %lld does not divide the %lld input columns", fn,
				(long long)p->group_size, (long long)cols);
	return 0;
}

static int64_t group_len(const struct mcb_awq_params *p, int64_t cols)
{
	return p->group_size > 0 ? p->group_size : cols;
}

/* Layers non-NULL, same cols, rows >= 1, finite; *total = sum of rows. */
static int check_layers(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
			int64_t cols, const char *fn, int64_t *total, struct mcb_errctx *e)
{
	char what[32];
	int i, rc;

	if (!l || nl < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: no layers", fn);
	*total = 0;
	for (i = 0; i < nl; i++) {
		if (!l[i].w)
			return mcb_errf(e, MCB_EINVAL, "%s: layer %d has no weight", fn, i);
		rc = check_shape(p, l[i].rows, cols, fn, e);
		if (rc)
			return rc;
		snprintf(what, sizeof(what), "layer %d weight", i);
		rc = mcb_require_finite(l[i].w, l[i].rows * cols, fn, what, e);
		if (rc)
			return rc;
		if (*total > INT64_MAX / 2 - l[i].rows)
			return mcb_errf(e, MCB_ERANGE, "%s: too many rows", fn);
		*total += l[i].rows;
	}
	return 0;
}

/* Sample rows x (n, cols): n >= 1, finite, sizes usable by sgemm. */
static int check_samples(const float *x, int64_t n, int64_t cols, const char *fn,
			 struct mcb_errctx *e)
{
	size_t cells;

	if (!x || n < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: no sample rows", fn);
	if (mcb_mul_ok((size_t)n, (size_t)cols, &cells) || cells > (size_t)INT64_MAX / 8)
		return mcb_errf(e, MCB_ERANGE, "%s: %lld sample rows of %lld columns is too large",
				fn, (long long)n, (long long)cols);
	if (cols > INT_MAX)
		return mcb_errf(e, MCB_ERANGE, "%s: %lld columns exceed the BLAS limit", fn,
				(long long)cols);
	return mcb_require_finite(x, n * cols, fn, "sample", e);
}

/* ---- the quantizer ---- */

/*
 * AWQ's quantizer on one group x (n,), each value first clamped to
 * [-mv, mv] when mv >= 0.  Writes the codes to q and/or the dequantized
 * values to deq (either may be NULL) and the zero to *zero; returns the
 * scale (+inf when an fp16 scale overflows: the caller reports it).
 * With bits <= 8 the smallest scale, 1e-5 / 255, stays above half fp16's
 * smallest subnormal, so no scale is ever 0.
 */
static float qgroup(const float *x, int64_t n, float mv, int bits, int fp16, uint8_t *q, float *deq,
		    int *zero)
{
	const float maxq = (float)((1 << bits) - 1);
	float mx = x[0], mn = x[0], sc, z, v, t;
	int64_t i;

	if (mv >= 0)
		mx = mn = fminf(fmaxf(x[0], -mv), mv);
	for (i = 1; i < n; i++) {
		v = mv >= 0 ? fminf(fmaxf(x[i], -mv), mv) : x[i];
		mx = v > mx ? v : mx;
		mn = v < mn ? v : mn;
	}
	sc = fmaxf(mx - mn, 1e-5f) / maxq;
	if (fp16)
		sc = mcb_f16_to_f32(mcb_f32_to_f16(sc));
	if (isinf(sc)) {
		*zero = 0;
		return sc;
	}
	z = -rintf(mn / sc);
	z = fminf(fmaxf(z, 0.0f), maxq);
	for (i = 0; i < n; i++) {
		v = mv >= 0 ? fminf(fmaxf(x[i], -mv), mv) : x[i];
		t = rintf(v / sc) + z;
		t = fminf(fmaxf(t, 0.0f), maxq);
		if (q)
			q[i] = (uint8_t)t;
		if (deq)
			deq[i] = (t - z) * sc;
	}
	*zero = (int)z;
	return sc;
}

static int overflow_err(const char *fn, int64_t r, int64_t g, struct mcb_errctx *e)
{
	return mcb_errf(e, MCB_ERANGE,
			"%s: the scale of row %lld, group %lld overflows (the group's range is too "
			"large for a float, or above 65504 steps with fp16 scales)",
			fn, (long long)r, (long long)g);
}

int mcb_awq_quantize(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
		     uint8_t *q, float *scale, uint8_t *zero, struct mcb_errctx *e)
{
	const char *fn = "awq quantize";
	int64_t r, g, gs, ng;
	int rc, z;
	float sc;

	rc = check_shape(p, rows, cols, fn, e);
	if (rc)
		return rc;
	if (!w || !q || !scale || !zero)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (rc)
		return rc;
	gs = group_len(p, cols);
	ng = cols / gs;
	for (r = 0; r < rows; r++)
		for (g = 0; g < ng; g++) {
			sc = qgroup(w + r * cols + g * gs, gs, -1.0f, p->bits, p->fp16_scale,
				    q + r * cols + g * gs, NULL, &z);
			if (isinf(sc))
				return overflow_err(fn, r, g, e);
			scale[r * ng + g] = sc;
			zero[r * ng + g] = (uint8_t)z;
		}
	return 0;
}

int mcb_awq_fake_quant(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
		       float *out, struct mcb_errctx *e)
{
	const char *fn = "awq fake quant";
	int64_t r, g, gs, ng;
	int rc, z;

	rc = check_shape(p, rows, cols, fn, e);
	if (rc)
		return rc;
	if (!w || !out)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (rc)
		return rc;
	gs = group_len(p, cols);
	ng = cols / gs;
	for (r = 0; r < rows; r++)
		for (g = 0; g < ng; g++)
			if (isinf(qgroup(w + r * cols + g * gs, gs, -1.0f, p->bits, p->fp16_scale,
					 NULL, out + r * cols + g * gs, &z)))
				return overflow_err(fn, r, g, e);
	return 0;
}

/* ---- the error measure ---- */

/*
 * D (nr, cols) = W - Q(W diag(s)) diag(1/s) for rows [0, nr) of w (s NULL:
 * no scaling); tmp (cols,) is scratch.  Returns 0, or -1 when W diag(s) or a
 * scale overflows (the candidate is then unusable).
 */
static int diff_rows(const struct mcb_awq_params *p, const float *w, int64_t nr, int64_t cols,
		     const float *s, float *tmp, float *d)
{
	int64_t r, j, g, gs = group_len(p, cols);
	int z;

	for (r = 0; r < nr; r++) {
		const float *wr = w + r * cols;
		float *dr = d + r * cols;

		for (j = 0; j < cols; j++) {
			tmp[j] = s ? wr[j] * s[j] : wr[j];
			if (isinf(tmp[j]))
				return -1;
		}
		for (g = 0; g < cols; g += gs)
			if (isinf(qgroup(tmp + g, gs, -1.0f, p->bits, p->fp16_scale, NULL, tmp + g,
					 &z)))
				return -1;
		for (j = 0; j < cols; j++)
			dr[j] = wr[j] - (s ? tmp[j] / s[j] : tmp[j]);
	}
	return 0;
}

/*
 * sum over t < n and r < nr of (x[t, :k] . d[r, :k])^2, x with row stride
 * ldx and d with row stride ldd.  blas NULL: double loops; else sgemm into
 * buf (CHUNK_ROWS * nr floats) with double sums per chunk.
 */
static double sq_norm_xdt(const float *x, int64_t n, int64_t ldx, const float *d, int64_t nr,
			  int64_t ldd, int64_t k, const struct mcb_blas *blas, float *buf)
{
	double sum = 0.0, dot;
	int64_t t, r, j, t0, nt;

	if (!blas) {
		for (t = 0; t < n; t++)
			for (r = 0; r < nr; r++) {
				const float *xt = x + t * ldx, *dr = d + r * ldd;

				dot = 0.0;
				for (j = 0; j < k; j++)
					dot += (double)xt[j] * (double)dr[j];
				sum += dot * dot;
			}
		return sum;
	}
	for (t0 = 0; t0 < n; t0 += CHUNK_ROWS) {
		nt = n - t0 < CHUNK_ROWS ? n - t0 : CHUNK_ROWS;
		/* buf (nt, nr) = x[t0 : t0+nt, :k] (nt, k) @ d[:, :k]^T (k, nr) */
		blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)nt, (int)nr, (int)k,
			    1.0f, x + t0 * ldx, (int)ldx, d, (int)ldd, 0.0f, buf, (int)nr);
		for (j = 0; j < nt * nr; j++)
			sum += (double)buf[j] * (double)buf[j];
	}
	return sum;
}

/* Sum over the layers of ||X (W - W')^T||^2, or +inf when the candidate
 * overflows (diff_rows).  Inputs already checked. */
static int group_sq_err(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
			int64_t cols, const float *s, const float *x, int64_t n,
			const struct mcb_blas *blas, double *out, struct mcb_errctx *e)
{
	const char *fn = "awq loss";
	float *d = NULL, *tmp = NULL, *buf = NULL;
	double sum = 0.0;
	int64_t r0, nr;
	int i, rc = 0;

	d = alloc(BLOCK_ROWS * cols, sizeof(float), fn, e);
	tmp = alloc(cols, sizeof(float), fn, e);
	if (blas)
		buf = alloc((n < CHUNK_ROWS ? n : CHUNK_ROWS) * BLOCK_ROWS, sizeof(float), fn, e);
	if (!d || !tmp || (blas && !buf)) {
		rc = MCB_ENOMEM;
		goto out;
	}
	for (i = 0; i < nl; i++)
		for (r0 = 0; r0 < l[i].rows; r0 += BLOCK_ROWS) {
			nr = l[i].rows - r0 < BLOCK_ROWS ? l[i].rows - r0 : BLOCK_ROWS;
			if (diff_rows(p, l[i].w + r0 * cols, nr, cols, s, tmp, d) < 0) {
				sum = INFINITY;
				goto done;
			}
			sum += sq_norm_xdt(x, n, cols, d, nr, cols, cols, blas, buf);
		}
done:
	*out = sum;
out:
	free(d);
	free(tmp);
	free(buf);
	return rc;
}

int mcb_awq_loss(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
		 int64_t cols, const float *s, const float *x, int64_t n,
		 const struct mcb_blas *blas, double *loss, struct mcb_errctx *e)
{
	const char *fn = "awq loss";
	int64_t total;
	double sq;
	int rc;

	rc = check_layers(p, l, nl, cols, fn, &total, e);
	if (!rc)
		rc = check_samples(x, n, cols, fn, e);
	if (!rc && s)
		rc = mcb_require_finite(s, cols, fn, "scale", e);
	if (rc)
		return rc;
	if (!loss)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (s)
		for (int64_t j = 0; j < cols; j++)
			if (!(s[j] > 0))
				return mcb_errf(e, MCB_ERANGE,
						"%s: scale[%lld] = %g is not positive", fn,
						(long long)j, (double)s[j]);
	rc = group_sq_err(p, l, nl, cols, s, x, n, blas, &sq, e);
	if (rc)
		return rc;
	if (isinf(sq))
		return mcb_errf(e, MCB_ERANGE,
				"%s: the scaled weights or a quantization scale overflow", fn);
	*loss = sq / ((double)n * (double)total);
	return 0;
}

/* ---- scale search ---- */

int mcb_awq_w_mean(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
		   int64_t cols, double *w_mean, struct mcb_errctx *e)
{
	const char *fn = "awq w_mean";
	int64_t total, r, j, g, gs;
	int i, rc;

	rc = check_layers(p, l, nl, cols, fn, &total, e);
	if (rc)
		return rc;
	if (!w_mean)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	gs = group_len(p, cols);
	for (j = 0; j < cols; j++)
		w_mean[j] = 0.0;
	for (i = 0; i < nl; i++)
		for (r = 0; r < l[i].rows; r++)
			for (g = 0; g < cols; g += gs) {
				const float *wg = l[i].w + r * cols + g;
				float amax = 0.0f;
				double den;

				for (j = 0; j < gs; j++)
					amax = fabsf(wg[j]) > amax ? fabsf(wg[j]) : amax;
				den = (double)amax + 1e-6;
				for (j = 0; j < gs; j++)
					w_mean[g + j] += (double)fabsf(wg[j]) / den;
			}
	for (j = 0; j < cols; j++)
		w_mean[j] /= (double)total;
	return 0;
}

/* The candidate scales s (cols,) of ratio r (see awq.h). */
static void candidate(const double *x_mean, const double *w_mean, int64_t cols, double r, int duo,
		      double *v, float *s)
{
	double vmax = 0.0, vmin = INFINITY, norm;
	int64_t j;

	for (j = 0; j < cols; j++) {
		double xr = pow(x_mean[j], r);

		v[j] = duo ? xr / (pow(w_mean[j], 1.0 - r) + 1e-4) : xr;
		v[j] = fmax(v[j], 1e-4);
		vmax = fmax(vmax, v[j]);
		vmin = fmin(vmin, v[j]);
	}
	norm = sqrt(vmax * vmin);
	for (j = 0; j < cols; j++) {
		s[j] = (float)(v[j] / norm);
		if (!isfinite(s[j]))
			s[j] = 1.0f;
	}
}

int mcb_awq_search_scale(const struct mcb_awq_params *p, const struct mcb_awq_linear *l, int nl,
			 int64_t cols, const float *x_mean, const float *x, int64_t n,
			 const struct mcb_blas *blas, float *s, int *best, double *loss,
			 struct mcb_errctx *e)
{
	const char *fn = "awq scale search";
	double *wm = NULL, *xm = NULL, *v = NULL, sq, lo = INFINITY;
	float *cand = NULL;
	int64_t total, j;
	int i, rc, bi = -1;

	rc = check_layers(p, l, nl, cols, fn, &total, e);
	if (!rc && (!x_mean || !s))
		rc = mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (!rc)
		rc = check_stat(x_mean, cols, fn, "x_mean", e);
	if (!rc)
		rc = check_samples(x, n, cols, fn, e);
	if (!rc && p->n_grid < 1)
		rc = mcb_errf(e, MCB_EINVAL, "%s: n_grid = %d, expected >= 1", fn, p->n_grid);
	if (rc)
		return rc;
	wm = alloc(cols, sizeof(double), fn, e);
	xm = alloc(cols, sizeof(double), fn, e);
	v = alloc(cols, sizeof(double), fn, e);
	cand = alloc(cols, sizeof(float), fn, e);
	if (!wm || !xm || !v || !cand) {
		rc = MCB_ENOMEM;
		goto out;
	}
	rc = mcb_awq_w_mean(p, l, nl, cols, wm, e);
	if (rc)
		goto out;
	for (j = 0; j < cols; j++)
		xm[j] = x_mean[j];
	for (i = 0; i < p->n_grid; i++) {
		candidate(xm, wm, cols, (double)i / (double)p->n_grid, p->duo_scaling, v, cand);
		rc = group_sq_err(p, l, nl, cols, cand, x, n, blas, &sq, e);
		if (rc)
			goto out;
		sq /= (double)n * (double)total;
		if (loss)
			loss[i] = sq;
		if (sq < lo) {
			lo = sq;
			bi = i;
			memcpy(s, cand, (size_t)cols * sizeof(float));
		}
	}
	if (bi < 0) {
		rc = mcb_errf(e, MCB_ERANGE, "%s: no ratio of the grid gives a finite loss", fn);
		goto out;
	}
	if (best)
		*best = bi;
out:
	free(wm);
	free(xm);
	free(v);
	free(cand);
	return rc;
}

/* ---- clip search ---- */

/*
 * err[r] (nr,) = mean over t < ns of (xs[t, :gs] . d[r, :gs])^2 for one
 * group: xs (ns, gs) and d (nr, gs) with row stride ld.  blas: sgemm into
 * buf (at most CHUNK_ROWS x nr floats), double sums.
 */
static void clip_errors(const float *xs, int64_t ns, int64_t ld, const float *d, int64_t nr,
			int64_t gs, const struct mcb_blas *blas, float *buf, double *err)
{
	int64_t t0, nt, t, r;

	if (!blas) {
		for (r = 0; r < nr; r++)
			err[r] = sq_norm_xdt(xs, ns, ld, d + r * ld, 1, ld, gs, NULL, NULL) /
				 (double)ns;
		return;
	}
	for (r = 0; r < nr; r++)
		err[r] = 0.0;
	for (t0 = 0; t0 < ns; t0 += CHUNK_ROWS) {
		nt = ns - t0 < CHUNK_ROWS ? ns - t0 : CHUNK_ROWS;
		/* buf (nt, nr) = xs[t0 : t0+nt] (nt, gs) @ d^T (gs, nr) */
		blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)nt, (int)nr, (int)gs,
			    1.0f, xs + t0 * ld, (int)ld, d, (int)ld, 0.0f, buf, (int)nr);
		for (t = 0; t < nt; t++)
			for (r = 0; r < nr; r++)
				err[r] += (double)buf[t * nr + r] * (double)buf[t * nr + r];
	}
	for (r = 0; r < nr; r++)
		err[r] /= (double)ns;
}

int mcb_awq_search_clip(const struct mcb_awq_params *p, const float *w, int64_t rows, int64_t cols,
			const float *x, int64_t n, const struct mcb_blas *blas, float *out,
			float *max_val, struct mcb_errctx *e)
{
	const char *fn = "awq clip search";
	float *xs = NULL, *d = NULL, *buf = NULL, *amax = NULL, *bestv = NULL, *mv = NULL;
	double *minerr = NULL, *rowerr = NULL;
	int64_t gs, ng, step, ns, t, r0, nr, r, g, j, i;
	int rc, z;

	rc = check_shape(p, rows, cols, fn, e);
	if (rc)
		return rc;
	if (!w || !out)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (p->clip_grid < 1 || p->clip_steps < 1 || p->clip_steps > p->clip_grid ||
	    p->clip_samples < 1)
		return mcb_errf(e, MCB_EINVAL,
				"%s: clip grid %d, steps %d, samples %lld (expected 1 <= steps <= "
				"grid, samples >= 1)",
				fn, p->clip_grid, p->clip_steps, (long long)p->clip_samples);
	rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (!rc)
		rc = check_samples(x, n, cols, fn, e);
	if (rc)
		return rc;
	gs = group_len(p, cols);
	ng = cols / gs;
	step = n / p->clip_samples > 1 ? n / p->clip_samples : 1;
	ns = (n + step - 1) / step;

	xs = alloc(ns * cols, sizeof(float), fn, e);
	d = alloc(BLOCK_ROWS * cols, sizeof(float), fn, e);
	if (blas)
		buf = alloc((ns < CHUNK_ROWS ? ns : CHUNK_ROWS) * BLOCK_ROWS, sizeof(float), fn, e);
	amax = alloc(BLOCK_ROWS * ng, sizeof(float), fn, e);
	bestv = alloc(BLOCK_ROWS * ng, sizeof(float), fn, e);
	mv = alloc(BLOCK_ROWS * ng, sizeof(float), fn, e);
	minerr = alloc(BLOCK_ROWS * ng, sizeof(double), fn, e);
	rowerr = alloc(BLOCK_ROWS, sizeof(double), fn, e);
	if (!xs || !d || (blas && !buf) || !amax || !bestv || !mv || !minerr || !rowerr) {
		rc = MCB_ENOMEM;
		goto out;
	}
	for (t = 0; t < ns; t++)
		memcpy(xs + t * cols, x + t * step * cols, (size_t)cols * sizeof(float));

	for (r0 = 0; r0 < rows; r0 += BLOCK_ROWS) {
		const float *wb = w + r0 * cols;

		nr = rows - r0 < BLOCK_ROWS ? rows - r0 : BLOCK_ROWS;
		for (r = 0; r < nr; r++)
			for (g = 0; g < ng; g++) {
				float a = 0.0f;

				for (j = 0; j < gs; j++)
					a = fabsf(wb[r * cols + g * gs + j]) > a
						    ? fabsf(wb[r * cols + g * gs + j])
						    : a;
				amax[r * ng + g] = bestv[r * ng + g] = a;
				minerr[r * ng + g] = CLIP_ERR0;
			}
		for (i = 0; i < p->clip_steps; i++) {
			float f = (float)(1.0 - (double)i / (double)p->clip_grid);

			/* d (nr, cols) = Q(clamp(W)) - W per group */
			for (r = 0; r < nr; r++)
				for (g = 0; g < ng; g++) {
					const float *wg = wb + r * cols + g * gs;
					float *dg = d + r * cols + g * gs;

					mv[r * ng + g] = amax[r * ng + g] * f;
					if (isinf(qgroup(wg, gs, mv[r * ng + g], p->bits,
							 p->fp16_scale, NULL, dg, &z))) {
						rc = overflow_err(fn, r0 + r, g, e);
						goto out;
					}
					for (j = 0; j < gs; j++)
						dg[j] -= wg[j];
				}
			for (g = 0; g < ng; g++) {
				clip_errors(xs + g * gs, ns, cols, d + g * gs, nr, gs, blas, buf,
					    rowerr);
				for (r = 0; r < nr; r++)
					if (rowerr[r] < minerr[r * ng + g]) {
						minerr[r * ng + g] = rowerr[r];
						bestv[r * ng + g] = mv[r * ng + g];
					}
			}
		}
		for (r = 0; r < nr; r++)
			for (g = 0; g < ng; g++) {
				float b = bestv[r * ng + g];

				for (j = 0; j < gs; j++) {
					int64_t k = (r0 + r) * cols + g * gs + j;

					out[k] = fminf(fmaxf(w[k], -b), b);
				}
				if (max_val)
					max_val[(r0 + r) * ng + g] = b;
			}
	}
out:
	free(xs);
	free(d);
	free(buf);
	free(amax);
	free(bestv);
	free(mv);
	free(minerr);
	free(rowerr);
	return rc;
}

/* ---- SmoothQuant ---- */

int mcb_awq_smooth_scales(const struct mcb_awq_linear *l, int nl, int64_t cols,
			  const float *act_max, double alpha, float *s, struct mcb_errctx *e)
{
	const char *fn = "smoothquant scales";
	struct mcb_awq_params p;
	float *wmax;
	int64_t total, r, j;
	int i, rc;

	mcb_awq_defaults(&p);
	p.group_size = 0;
	rc = check_layers(&p, l, nl, cols, fn, &total, e);
	if (!rc && (!act_max || !s))
		rc = mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (!rc)
		rc = check_stat(act_max, cols, fn, "act_max", e);
	if (!rc && !(alpha >= 0.0 && alpha <= 1.0))
		rc = mcb_errf(e, MCB_ERANGE, "%s: alpha = %g is not in [0, 1]", fn, alpha);
	if (rc)
		return rc;
	wmax = alloc(cols, sizeof(float), fn, e);
	if (!wmax)
		return MCB_ENOMEM;
	for (j = 0; j < cols; j++)
		wmax[j] = 0.0f;
	for (i = 0; i < nl; i++)
		for (r = 0; r < l[i].rows; r++)
			for (j = 0; j < cols; j++) {
				float a = fabsf(l[i].w[r * cols + j]);

				wmax[j] = a > wmax[j] ? a : wmax[j];
			}
	for (j = 0; j < cols; j++) {
		double wj = (double)fmaxf(wmax[j], 1e-5f);
		double v = pow((double)act_max[j], alpha) / pow(wj, 1.0 - alpha);

		s[j] = (float)fmax(v, 1e-5);
	}
	free(wmax);
	for (j = 0; j < cols; j++)
		if (!isfinite(s[j]))
			return mcb_errf(e, MCB_ERANGE, "%s: factor %lld overflows a float", fn,
					(long long)j);
	return 0;
}

int mcb_awq_w8a8_weight(const float *w, int64_t rows, int64_t cols, int8_t *q, float *delta,
			struct mcb_errctx *e)
{
	const char *fn = "w8a8 weight";
	struct mcb_awq_params p;
	int64_t r, j;
	int rc;

	mcb_awq_defaults(&p);
	p.group_size = 0;
	rc = check_shape(&p, rows, cols, fn, e);
	if (!rc && (!w || !q || !delta))
		rc = mcb_errf(e, MCB_EINVAL, "%s: NULL argument", fn);
	if (!rc)
		rc = mcb_require_finite(w, rows * cols, fn, "weight", e);
	if (rc)
		return rc;
	for (r = 0; r < rows; r++) {
		const float *wr = w + r * cols;
		float amax = 0.0f, d;

		for (j = 0; j < cols; j++)
			amax = fabsf(wr[j]) > amax ? fabsf(wr[j]) : amax;
		d = fmaxf(amax, 1e-5f) / 127.0f;
		for (j = 0; j < cols; j++) {
			float t = rintf(wr[j] / d);

			q[r * cols + j] = (int8_t)fminf(fmaxf(t, -127.0f), 127.0f);
		}
		delta[r] = d;
	}
	return 0;
}

int mcb_awq_act_scale(const float *act_max, const float *s, int64_t cols, float *scale,
		      struct mcb_errctx *e)
{
	const char *fn = "w8a8 activation scale";
	float m = 0.0f, v;
	int64_t j;
	int rc;

	if (!act_max || !scale || cols < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: no input channels", fn);
	rc = check_stat(act_max, cols, fn, "act_max", e);
	if (!rc && s)
		rc = mcb_require_finite(s, cols, fn, "s", e);
	if (rc)
		return rc;
	for (j = 0; j < cols; j++) {
		if (s && !(s[j] > 0))
			return mcb_errf(e, MCB_ERANGE, "%s: s[%lld] = %g is not positive", fn,
					(long long)j, (double)s[j]);
		v = s ? act_max[j] / s[j] : act_max[j];
		m = v > m ? v : m;
	}
	if (isinf(m))
		return mcb_errf(e, MCB_ERANGE, "%s: the smoothed activation range overflows", fn);
	*scale = fmaxf(m, 1e-5f) / 127.0f;
	return 0;
}

/* ---- folding ---- */

void mcb_awq_div_rows(float *a, int64_t n, int64_t m, const float *s)
{
	int64_t j, k;

	for (j = 0; j < n; j++)
		for (k = 0; k < m; k++)
			a[j * m + k] /= s[j];
}

void mcb_awq_mul_cols(float *w, int64_t rows, int64_t cols, const float *s)
{
	int64_t r, j;

	for (r = 0; r < rows; r++)
		for (j = 0; j < cols; j++)
			w[r * cols + j] *= s[j];
}

void mcb_awq_div_cols(float *x, int64_t n, int64_t cols, const float *s)
{
	int64_t t, j;

	for (t = 0; t < n; t++)
		for (j = 0; j < cols; j++)
			x[t * cols + j] /= s[j];
}
