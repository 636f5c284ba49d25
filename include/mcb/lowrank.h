/*
 * lowrank: a weight factored by truncated singular value decomposition,
 *
 *   W (rows, cols) ~ A (rows, r) B (r, cols),  A = U_r diag(s_r),  B = V_r^T
 *
 * the best rank-r approximation in the Frobenius norm (Eckart-Young).  The
 * SVD is LAPACK's dgesdd (runtime/blas.c) in double precision on one
 * OpenBLAS thread, so the same W gives the same bits whatever the build's
 * thread budget.  Signs are fixed as NumPy-independent references can
 * reproduce them: the entry of largest magnitude of each column of U (the
 * first such, in row order) is positive (the column of U and the row of V^T
 * flip together).  tests/compat/lowrank_ref.py is the NumPy reference.
 *
 * The rank: a requested rank r >= 1, clamped to min(rows, cols); or, with
 * rank 0, the smallest r >= 1 whose singular values hold the fraction
 * energy of the total: sum_{i<r} s_i^2 >= energy * sum_i s_i^2, both sums
 * accumulated in double in index order (a zero matrix: r = 1).
 */
#ifndef MCB_LOWRANK_H
#define MCB_LOWRANK_H

#include <stdint.h>

struct mcb_errctx;

struct mcb_lowrank {
	int64_t rows, cols;
	int64_t full;      /* min(rows, cols): the singular values computed */
	int64_t rank;      /* kept: 1 .. full */
	int clamped;       /* the requested rank was above full */
	double *s;         /* (full,) singular values, descending, >= 0 */
	float *a;          /* (rows, rank) U_r diag(s_r), rounded to float */
	float *b;          /* (rank, cols) V_r^T, rounded to float */
	double energy;     /* sum_{i<rank} s_i^2 / sum_i s_i^2 (1 for a zero W) */
	double rel_error;  /* ||W - U_r S_r V_r^T||_F / ||W||_F from the singular
			      values, sqrt(sum_{i>=rank} s_i^2 / sum_i s_i^2) (0
			      for a zero W) */
};

/* The rank the rule above keeps of the n singular values s (descending):
 * rank > 0 clamped to n, else the energy rule (energy in (0, 1]). */
int64_t mcb_lowrank_choose(const double *s, int64_t n, int64_t rank, double energy);

/* Whether rank r stores fewer numbers than the dense weight:
 * r * (rows + cols) < rows * cols. */
int mcb_lowrank_saves(int64_t rows, int64_t cols, int64_t r);

/*
 * Factor w (rows, cols; finite) at rank (> 0) or, with rank 0, by energy
 * (0 < energy <= 1) into *out, whose arrays are malloc'd (release with
 * mcb_lowrank_free, also after a failure).  Returns 0; MCB_EINVAL for bad
 * arguments, MCB_ERANGE for a shape LAPACK's 32-bit sizes cannot hold,
 * MCB_ENOMEM, MCB_EUNSUP when OpenBLAS or its dgesdd is missing, MCB_ERANGE
 * when the SVD does not converge.
 */
int mcb_lowrank_factor(const float *w, int64_t rows, int64_t cols, int64_t rank, double energy,
		       struct mcb_lowrank *out, struct mcb_errctx *e);

void mcb_lowrank_free(struct mcb_lowrank *lr);

#endif
