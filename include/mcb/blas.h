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
};

/* Record the thread budget of this process; applied when the library loads
 * (and at once if it is loaded). */
void mcb_blas_set_threads(int n);

/* The loaded library, or NULL with a message naming the file when it cannot
 * be loaded. */
const struct mcb_blas *mcb_blas_get(struct mcb_errctx *e);

#endif
