/*
 * blas: OpenBLAS, loaded on first use (see include/mcb/blas.h).  The path
 * comes from pkg-config at build time (MCB_OPENBLAS_LIB); cblas.h supplies
 * the prototypes, checked against the table's function types below.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#include <cblas.h>

#include "mcb/blas.h"
#include "mcb/err.h"

#ifndef MCB_OPENBLAS_LIB
#define MCB_OPENBLAS_LIB "libopenblas.so.0"
#endif

static struct mcb_blas blas;
static void (*set_threads)(int);
/* LAPACK's Fortran entry points: every argument by reference, then the
 * hidden lengths of the character arguments (gfortran's convention;
 * OpenBLAS's own C implementations ignore them). */
static void (*spotrf_f)(const char *uplo, const int *n, float *a, const int *lda, int *info,
			size_t luplo);
static void (*strtri_f)(const char *uplo, const char *diag, const int *n, float *a,
			const int *lda, int *info, size_t luplo, size_t ldiag);
static void (*dgesdd_f)(const char *jobz, const int *m, const int *n, double *a, const int *lda,
			double *s, double *u, const int *ldu, double *vt, const int *ldvt,
			double *work, const int *lwork, int *iwork, int *info, size_t ljobz);
static int budget = 1;
static int loaded; /* 1 loaded, -1 failed */
static char why[512];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The table's types are cblas.h's with its enums as int: the casts below
 * are only valid while that holds. */
_Static_assert(sizeof(enum CBLAS_ORDER) == sizeof(int), "cblas enums are int-sized");
_Static_assert(sizeof(blasint) == sizeof(int), "OpenBLAS built with 32-bit integers");

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);

	if (!p && !why[0])
		snprintf(why, sizeof(why), "'%s' has no symbol %s", MCB_OPENBLAS_LIB, name);
	return p;
}

static int spotrf_c(char uplo, int n, float *a, int lda)
{
	int info = 0;

	spotrf_f(&uplo, &n, a, &lda, &info, 1);
	return info;
}

static int strtri_c(char uplo, char diag, int n, float *a, int lda)
{
	int info = 0;

	strtri_f(&uplo, &diag, &n, a, &lda, &info, 1, 1);
	return info;
}

static int dgesdd_c(char jobz, int m, int n, double *a, int lda, double *s, double *u, int ldu,
		    double *vt, int ldvt, double *work, int lwork, int *iwork)
{
	int info = 0;

	dgesdd_f(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1);
	return info;
}

static void load(void)
{
	void *h = dlopen(MCB_OPENBLAS_LIB, RTLD_NOW | RTLD_LOCAL);

	if (!h)
		h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(why, sizeof(why), "cannot load OpenBLAS: %s", dlerror());
		loaded = -1;
		return;
	}
	*(void **)&blas.sgemm = sym(h, "cblas_sgemm");
	*(void **)&blas.ssyrk = sym(h, "cblas_ssyrk");
	*(void **)&blas.strsm = sym(h, "cblas_strsm");
	*(void **)&set_threads = sym(h, "openblas_set_num_threads");
	/* optional (an OpenBLAS built without LAPACK lacks them): NULL then */
	*(void **)&spotrf_f = dlsym(h, "spotrf_");
	*(void **)&strtri_f = dlsym(h, "strtri_");
	*(void **)&dgesdd_f = dlsym(h, "dgesdd_");
	blas.spotrf = spotrf_f ? spotrf_c : NULL;
	blas.strtri = strtri_f ? strtri_c : NULL;
	blas.dgesdd = dgesdd_f ? dgesdd_c : NULL;
	if (why[0]) {
		loaded = -1;
		return;
	}
	set_threads(budget);
	loaded = 1;
}

void mcb_blas_set_threads(int n)
{
	budget = n < 1 ? 1 : n;
	if (loaded == 1)
		set_threads(budget);
}

int mcb_blas_threads(void)
{
	return budget;
}

const struct mcb_blas *mcb_blas_get(struct mcb_errctx *e)
{
	pthread_once(&once, load);
	if (loaded != 1) {
		mcb_errf(e, MCB_EUNSUP, "%s", why);
		return NULL;
	}
	return &blas;
}
