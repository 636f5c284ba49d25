/*
 * blas: the one door to OpenBLAS (runtime/blas.c is the only file that
 * includes cblas.h).  The library is loaded on first use, not at program
 * start: OpenBLAS's constructor starts its thread pool and costs several
 * milliseconds, which every mcbuild run (a no-op rebuild above all) would
 * pay although only numeric steps use it.  Steps run in their own processes,
 * so the thread budget set here is the step's alone.
 */
#ifndef MCB_BLAS_H
#define MCB_BLAS_H

struct mcb_errctx;

/* The OpenBLAS entry points mcbuild uses (cblas.h signatures). */
struct mcb_blas {
	/* C (m,n) = alpha op(A) op(B) + beta C */
	void (*sgemm)(int order, int transa, int transb, int m, int n, int k, float alpha,
		      const float *a, int lda, const float *b, int ldb, float beta, float *c,
		      int ldc);
	/* C (n,n) = alpha op(A) op(A)^T + beta C, one triangle */
	void (*ssyrk)(int order, int uplo, int trans, int n, int k, float alpha, const float *a,
		      int lda, float beta, float *c, int ldc);
	/* B (m,n) := alpha op(A)^-1 B (side Left) or alpha B op(A)^-1 (Right), A triangular */
	void (*strsm)(int order, int side, int uplo, int transa, int diag, int m, int n, float alpha,
		      const float *a, int lda, float *b, int ldb);
	/*
	 * LAPACK (column-major, as Fortran; the Fortran calling convention is
	 * hidden by blas.c); NULL when the library was built without LAPACK.
	 * uplo 'U' or 'L', diag 'N' or 'U'.  All return
	 * LAPACK's info: 0, -i for an invalid argument i, or i > 0 (spotrf: the
	 * leading minor of order i is not positive definite; strtri: a(i,i) is 0;
	 * dgesdd: below).
	 */
	/* A (n,n) = U^T U (uplo 'U') or L L^T ('L'), the factor in that triangle */
	int (*spotrf)(char uplo, int n, float *a, int lda);
	/* A (n,n) triangular := its inverse, in place */
	int (*strtri)(char uplo, char diag, int n, float *a, int lda);
	/*
	 * A (m,n) = U diag(s) VT, divide and conquer, jobz 'S': U (m,k) and
	 * VT (k,n) with k = min(m,n), s (k,) descending; A is destroyed.
	 * work (lwork) and iwork (8k) are scratch; lwork -1 is the workspace
	 * query (the size into work[0], nothing else touched).  info i > 0:
	 * the iteration did not converge.
	 */
	int (*dgesdd)(char jobz, int m, int n, double *a, int lda, double *s, double *u, int ldu,
		      double *vt, int ldvt, double *work, int lwork, int *iwork);
};

/* Record the thread budget of this process; applied when the library loads
 * (and at once if it is loaded). */
void mcb_blas_set_threads(int n);
/* The budget last recorded (1 until set): to restore after a call that needs
 * one thread for bit-identical results. */
int mcb_blas_threads(void);

/* The loaded library, or NULL with a message naming the file when it cannot
 * be loaded. */
const struct mcb_blas *mcb_blas_get(struct mcb_errctx *e);

#endif
