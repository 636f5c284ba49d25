/*
 * lowrank: truncated SVD of a weight (contracts in include/mcb/lowrank.h).
 *
 * The row-major W (rows, cols) is, read column-major, X = W^T (cols, rows),
 * so dgesdd runs on it without a transposed copy: X = U' S VT' gives
 * W = VT'^T S U'^T, that is U = VT'^T (U[r][i] = vt[i + r*k]) and
 * V^T = U'^T (row i of V^T is column i of U', contiguous).  k = min(rows,
 * cols).  Memory: the double copy of W, U' (cols, k), VT' (k, rows) and
 * LAPACK's workspace (about 3k^2 + 4 max(rows, cols) k doubles for jobz 'S').
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/lowrank.h"

int64_t mcb_lowrank_choose(const double *s, int64_t n, int64_t rank, double energy)
{
	double total = 0, cum = 0;
	int64_t i;

	if (rank > 0)
		return rank < n ? rank : n;
	for (i = 0; i < n; i++)
		total += s[i] * s[i];
	if (!(total > 0))
		return n > 0 ? 1 : 0;
	for (i = 0; i < n; i++) {
		cum += s[i] * s[i];
		if (cum >= energy * total)
			return i + 1;
	}
	return n;
}

int mcb_lowrank_saves(int64_t rows, int64_t cols, int64_t r)
{
	uint64_t fac, dense;

	if (rows < 1 || cols < 1 || r < 1)
		return 0;
	if (__builtin_mul_overflow((uint64_t)rows, (uint64_t)cols, &dense))
		return 1; /* no such weight fits in memory; any rank below it saves */
	if (__builtin_mul_overflow((uint64_t)r, (uint64_t)rows + (uint64_t)cols, &fac))
		return 0;
	return fac < dense;
}

void mcb_lowrank_free(struct mcb_lowrank *lr)
{
	free(lr->s);
	free(lr->a);
	free(lr->b);
	lr->s = NULL;
	lr->a = lr->b = NULL;
}

/* malloc(n * size) or NULL with MCB_ENOMEM / MCB_ERANGE naming what. */
static void *alloc(size_t n, size_t size, const char *what, struct mcb_errctx *e)
{
	size_t bytes;
	void *p;

	if (mcb_mul_ok(n, size, &bytes)) {
		mcb_errf(e, MCB_ERANGE, "lowrank: %s: %zu x %zu bytes overflows", what, n, size);
		return NULL;
	}
	if (!(p = malloc(bytes ? bytes : 1)))
		mcb_errf(e, MCB_ENOMEM, "lowrank: cannot allocate %zu bytes for %s", bytes, what);
	return p;
}

int mcb_lowrank_factor(const float *w, int64_t rows, int64_t cols, int64_t rank, double energy,
		       struct mcb_lowrank *out, struct mcb_errctx *e)
{
	const struct mcb_blas *blas;
	double *x = NULL, *u = NULL, *vt = NULL, *work = NULL, wq = 0, total = 0, kept = 0,
	       tail = 0;
	int *iwork = NULL;
	int64_t k, r, i, j;
	size_t n;
	int rc = 0, info, lwork, threads;

	memset(out, 0, sizeof(*out));
	if (rows < 1 || cols < 1)
		return mcb_errf(e, MCB_EINVAL, "lowrank: empty weight (%lld x %lld)", (long long)rows,
				(long long)cols);
	if (rank < 0 || (rank == 0 && !(energy > 0 && energy <= 1)))
		return mcb_errf(e, MCB_EINVAL,
				"lowrank: give a rank >= 1 or an energy in (0, 1] (rank %lld, "
				"energy %g)",
				(long long)rank, energy);
	k = rows < cols ? rows : cols;
	if (rows > INT_MAX || cols > INT_MAX || k > INT_MAX / 8 ||
	    mcb_mul_ok((size_t)rows, (size_t)cols, &n))
		return mcb_errf(e, MCB_ERANGE,
				"lowrank: a %lld x %lld weight is beyond LAPACK's 32-bit sizes",
				(long long)rows, (long long)cols);
	out->rows = rows;
	out->cols = cols;
	out->full = k;
	if (!(blas = mcb_blas_get(e)))
		return mcb_errprefix(e, "lowrank");
	if (!blas->dgesdd)
		return mcb_errf(e, MCB_EUNSUP, "lowrank: this OpenBLAS has no LAPACK (dgesdd_)");
	if (!(x = alloc(n, sizeof(double), "the weight", e)) ||
	    !(out->s = alloc((size_t)k, sizeof(double), "the singular values", e)) ||
	    !(u = alloc((size_t)cols * (size_t)k, sizeof(double), "the right vectors", e)) ||
	    !(vt = alloc((size_t)k * (size_t)rows, sizeof(double), "the left vectors", e)) ||
	    !(iwork = alloc((size_t)k * 8, sizeof(int), "LAPACK's integer workspace", e))) {
		rc = e->code;
		goto out;
	}
	for (i = 0; i < (int64_t)n; i++)
		x[i] = w[i];
	/* one thread: OpenBLAS's threaded kernels may split sums differently */
	threads = mcb_blas_threads();
	mcb_blas_set_threads(1);
	/* X = W^T (cols, rows) column-major, lda cols; U' (cols, k); VT' (k, rows) */
	info = blas->dgesdd('S', (int)cols, (int)rows, x, (int)cols, out->s, u, (int)cols, vt,
			    (int)k, &wq, -1, iwork);
	if (info || !(wq >= 1) || wq > (double)INT_MAX) {
		mcb_blas_set_threads(threads);
		rc = info ? mcb_errf(e, MCB_EINTERNAL, "lowrank: dgesdd workspace query: info %d",
				     info)
			  : mcb_errf(e, MCB_ERANGE,
				     "lowrank: dgesdd needs %g doubles of workspace for a %lld x "
				     "%lld weight, beyond its 32-bit sizes",
				     wq, (long long)rows, (long long)cols);
		goto out;
	}
	lwork = (int)ceil(wq);
	if (!(work = alloc((size_t)lwork, sizeof(double), "LAPACK's workspace", e))) {
		mcb_blas_set_threads(threads);
		rc = e->code;
		goto out;
	}
	info = blas->dgesdd('S', (int)cols, (int)rows, x, (int)cols, out->s, u, (int)cols, vt,
			    (int)k, work, lwork, iwork);
	mcb_blas_set_threads(threads);
	if (info) {
		rc = info > 0 ? mcb_errf(e, MCB_ERANGE,
					 "lowrank: the SVD of a %lld x %lld weight did not converge "
					 "(dgesdd info %d)",
					 (long long)rows, (long long)cols, info)
			      : mcb_errf(e, MCB_EINTERNAL, "lowrank: dgesdd: argument %d is invalid",
					 -info);
		goto out;
	}
	r = mcb_lowrank_choose(out->s, k, rank, energy);
	out->clamped = rank > k;
	out->rank = r;
	for (i = 0; i < k; i++)
		total += out->s[i] * out->s[i];
	for (i = 0; i < r; i++)
		kept += out->s[i] * out->s[i];
	for (i = r; i < k; i++)
		tail += out->s[i] * out->s[i];
	out->energy = total > 0 ? kept / total : 1.0;
	out->rel_error = total > 0 ? sqrt(tail / total) : 0.0;
	if (!(out->a = alloc((size_t)rows * (size_t)r, sizeof(float), "the factor A", e)) ||
	    !(out->b = alloc((size_t)r * (size_t)cols, sizeof(float), "the factor B", e))) {
		rc = e->code;
		goto out;
	}
	for (i = 0; i < r; i++) {
		/* column i of U is vt[i + j*k], j = 0..rows-1 */
		double big = -1, sign;
		int64_t at = 0;

		for (j = 0; j < rows; j++)
			if (fabs(vt[i + j * k]) > big) {
				big = fabs(vt[i + j * k]);
				at = j;
			}
		sign = vt[i + at * k] < 0 ? -1.0 : 1.0;
		/* A (rows, r) = U_r diag(s_r); B (r, cols) = V_r^T = U'^T */
		for (j = 0; j < rows; j++)
			out->a[j * r + i] = (float)(sign * out->s[i] * vt[i + j * k]);
		for (j = 0; j < cols; j++)
			out->b[i * cols + j] = (float)(sign * u[j + i * cols]);
	}
out:
	free(x);
	free(u);
	free(vt);
	free(work);
	free(iwork);
	return rc;
}
