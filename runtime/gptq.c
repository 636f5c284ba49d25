/*
 * gptq: GPTQ and SparseGPT (contract and algorithm in include/mcb/gptq.h).
 *
 * Layout.  The solvers copy W into wp [rows, cols] in the permuted column
 * order (dead columns zeroed) and update it in place.  The rows are cut into
 * chunks of CH rows; for each block [i1, i2) every chunk is processed alone:
 *   w1 [count][CH]  the chunk's block columns, transposed (one column of the
 *                   block is CH contiguous floats: the per-column quantization
 *                   and the rank-1 updates run along the rows, vectorized);
 *   e1 [count][CH]  the scaled errors (w - q) / d of those columns;
 *   then wp[chunk rows, i2:] -= e1^T Hinv[i1:i2, i2:] (one SGEMM, K = count).
 * A row's result depends only on that row (and on the block masks of the
 * unstructured pruning, chosen over all rows between blocks), so chunks run
 * on any thread in any order with the same bits.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/gptq.h"
#include "mcb/quant.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

#define CH MCB_GPTQ_CHUNK
_Static_assert(MCB_GPTQ_CHUNK % 16 == 0, "chunks are whole vectors");
#define TILE 32          /* tile edge for the Hessian copy */
#define MAX_THREADS 256
#define MAX_M 64         /* largest m of n:m */

void mcb_gptq_opts_init(struct mcb_gptq_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->percdamp = 0.01;
	o->damp_step = 0.01;
	o->max_retries = 100;
	o->blocksize = 128;
	o->threads = 1;
}

int64_t mcb_gptq_ngroups(int64_t cols, int64_t group)
{
	return group > 0 ? (cols + group - 1) / group : 1;
}

/* *p = n * size bytes (64-byte aligned), or MCB_ERANGE / MCB_ENOMEM naming what. */
static int alloc(void **p, size_t n, size_t size, const char *what, struct mcb_errctx *e)
{
	size_t bytes;

	*p = NULL;
	if (mcb_mul_ok(n, size, &bytes) || bytes > SIZE_MAX - 64)
		return mcb_errf(e, MCB_ERANGE, "gptq: %s: %zu x %zu bytes overflows", what, n, size);
	bytes = (bytes + 63) / 64 * 64;
	*p = aligned_alloc(64, bytes ? bytes : 64);
	if (!*p)
		return mcb_errf(e, MCB_ENOMEM, "gptq: cannot allocate %zu bytes for %s", bytes, what);
	return 0;
}

/* ---- a team of threads over independent items ---- */

struct team {
	void (*fn)(void *ctx, int64_t item, int t);
	void *ctx;
	int64_t nitems;
	int nthreads;
};

struct member {
	const struct team *tm;
	int t;
	pthread_t tid;
	int started;
};

static void *member_run(void *arg)
{
	struct member *me = arg;
	const struct team *tm = me->tm;
	int64_t k;

	for (k = me->t; k < tm->nitems; k += tm->nthreads)
		tm->fn(tm->ctx, k, me->t);
	return NULL;
}

/*
 * fn(ctx, item, t) for every item in [0, nitems), item k on thread
 * t = k % nthreads (a thread that cannot be started has its share run by
 * the caller afterwards).  Items must not depend on each other or on t
 * (beyond using t's scratch): then the results do not depend on nthreads.
 */
static void team_run(void (*fn)(void *, int64_t, int), void *ctx, int64_t nitems, int nthreads)
{
	struct team tm = {fn, ctx, nitems, nthreads < nitems ? nthreads : (int)nitems};
	struct member me[MAX_THREADS];
	int t;

	if (nitems <= 0)
		return;
	for (t = 0; t < tm.nthreads; t++) {
		me[t].tm = &tm;
		me[t].t = t;
		me[t].started = t > 0 && pthread_create(&me[t].tid, NULL, member_run, &me[t]) == 0;
	}
	member_run(&me[0]);
	for (t = 1; t < tm.nthreads; t++) {
		if (me[t].started)
			pthread_join(me[t].tid, NULL);
		else
			member_run(&me[t]);
	}
}

/* ---- the factorization: Cholesky and triangular inverse in tiles ---- */

/*
 * OpenBLAS's SPOTRF and STRTRI give different bits with different thread
 * counts, and single-threaded they leave the other cores idle.  So both run
 * here in NB x NB tiles, every tile operation a single-threaded OpenBLAS
 * call whose shape only depends on n, and the tiles of a step spread over
 * the threads: the same bits whatever the thread count.
 *
 * a [n, n] row-major holds a symmetric matrix in its lower triangle, and 0
 * in its strict upper triangle (kept 0 throughout, so that a diagonal tile
 * can be used as a full triangular matrix in SGEMM).  Row-major lower is
 * column-major upper, LAPACK's 'U' on the same memory.
 *   Cholesky (right-looking), for each tile column k:
 *     L_kk = chol(A_kk)                       SPOTRF on one tile
 *     L_Ik = A_Ik L_kk^-T, I > k              STRSM, one call per row tile
 *     A_IJ -= L_Ik L_Jk^T, k < J <= I         SGEMM per tile (SSYRK on J = I)
 *   inverse X = L^-1, in place, for each tile column j from the last:
 *     X_jj = L_jj^-1                          STRTRI on one tile
 *     T_I = L_Ij X_jj, I > j                  SGEMM per row tile, into tmp
 *     X_Ij = -X_I,(j+1..I) T_(j+1..I)         SGEMM per row tile (X's later
 *                                             columns are done; its diagonal
 *                                             tiles are lower triangular)
 */
#define NB 256

enum { CBLAS_UPPER = 121, CBLAS_LOWER = 122, CBLAS_NON_UNIT = 131, CBLAS_RIGHT = 142 };

struct fact {
	const struct mcb_blas *blas;
	float *a;       /* [n, n] */
	float *tmp;     /* [n, NB] the T_I of the inverse */
	int64_t n, nt;  /* nt tiles */
	int64_t k;      /* the current tile column */
};

static int64_t tile_end(const struct fact *f, int64_t t)
{
	return (t + 1) * NB < f->n ? (t + 1) * NB : f->n;
}

static void chol_panel(void *ctx, int64_t item, int t)
{
	struct fact *f = ctx;
	int64_t n = f->n, k0 = f->k * NB, kb = tile_end(f, f->k) - k0, I = f->k + 1 + item;
	int64_t i0 = I * NB, ib = tile_end(f, I) - i0;

	(void)t;
	f->blas->strsm(CBLAS_ROW_MAJOR, CBLAS_RIGHT, CBLAS_LOWER, CBLAS_TRANS, CBLAS_NON_UNIT,
		       (int)ib, (int)kb, 1.0f, f->a + k0 * n + k0, (int)n, f->a + i0 * n + k0,
		       (int)n);
}

static void chol_update(void *ctx, int64_t item, int t)
{
	struct fact *f = ctx;
	int64_t n = f->n, k0 = f->k * NB, kb = tile_end(f, f->k) - k0, ii = 0, I, J, i0, j0;

	(void)t;
	/* item -> (ii, jj), jj <= ii, in the order (0,0) (1,0) (1,1) (2,0) ... */
	while ((ii + 1) * (ii + 2) / 2 <= item)
		ii++;
	I = f->k + 1 + ii;
	J = f->k + 1 + (item - ii * (ii + 1) / 2);
	i0 = I * NB;
	j0 = J * NB;
	if (I == J)
		f->blas->ssyrk(CBLAS_ROW_MAJOR, CBLAS_LOWER, CBLAS_NO_TRANS,
			       (int)(tile_end(f, I) - i0), (int)kb, -1.0f, f->a + i0 * n + k0,
			       (int)n, 1.0f, f->a + i0 * n + i0, (int)n);
	else
		f->blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS,
			       (int)(tile_end(f, I) - i0), (int)(tile_end(f, J) - j0), (int)kb,
			       -1.0f, f->a + i0 * n + k0, (int)n, f->a + j0 * n + k0, (int)n, 1.0f,
			       f->a + i0 * n + j0, (int)n);
}

static void inv_times_diag(void *ctx, int64_t item, int t)
{
	struct fact *f = ctx;
	int64_t n = f->n, j0 = f->k * NB, j1 = tile_end(f, f->k), I = f->k + 1 + item;
	int64_t i0 = I * NB;

	(void)t;
	/* T_I (ib, jb) = L_Ij (ib, jb) @ X_jj (jb, jb) */
	f->blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, (int)(tile_end(f, I) - i0),
		       (int)(j1 - j0), (int)(j1 - j0), 1.0f, f->a + i0 * n + j0, (int)n,
		       f->a + j0 * n + j0, (int)n, 0.0f, f->tmp + (i0 - j1) * NB, NB);
}

static void inv_column(void *ctx, int64_t item, int t)
{
	struct fact *f = ctx;
	int64_t n = f->n, j0 = f->k * NB, j1 = tile_end(f, f->k), I = f->k + 1 + item;
	int64_t i0 = I * NB, i1 = tile_end(f, I);

	(void)t;
	/* X_Ij (ib, jb) = -X[I, j1:i1] (ib, i1-j1) @ T[j1:i1] (i1-j1, jb) */
	f->blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, (int)(i1 - i0),
		       (int)(j1 - j0), (int)(i1 - j1), -1.0f, f->a + i0 * n + j1, (int)n, f->tmp,
		       NB, 0.0f, f->a + i0 * n + j0, (int)n);
}

/*
 * a (see above) := X = L^-1 in its lower triangle, L its Cholesky factor.
 * Returns 0, LAPACK's info > 0 (the leading minor of that order is not
 * positive definite, or a zero pivot), or < 0 for an internal error.
 */
static int factor_inverse(const struct mcb_blas *blas, float *a, float *tmp, int64_t n,
			  int threads)
{
	struct fact f = {blas, a, tmp, n, (n + NB - 1) / NB, 0};
	int64_t m, k0;
	int info;

	for (f.k = 0; f.k < f.nt; f.k++) {
		k0 = f.k * NB;
		info = blas->spotrf('U', (int)(tile_end(&f, f.k) - k0), a + k0 * n + k0, (int)n);
		if (info)
			return info > 0 ? (int)(info + k0) : info;
		m = f.nt - f.k - 1;
		team_run(chol_panel, &f, m, threads);
		team_run(chol_update, &f, m * (m + 1) / 2, threads);
	}
	for (f.k = f.nt - 1; f.k >= 0; f.k--) {
		k0 = f.k * NB;
		info = blas->strtri('U', 'N', (int)(tile_end(&f, f.k) - k0), a + k0 * n + k0, (int)n);
		if (info)
			return info > 0 ? (int)(info + k0) : info;
		m = f.nt - f.k - 1;
		team_run(inv_times_diag, &f, m, threads);
		team_run(inv_column, &f, m, threads);
	}
	return 0;
}

/* ---- the Hessian ---- */

void mcb_gptq_free(struct mcb_gptq *g)
{
	if (!g)
		return;
	free(g->perm);
	free(g->dead);
	free(g->hinv);
	free(g);
}

struct dkey {
	float d;
	int64_t i;
};

/* descending diagonal, then ascending index: a stable descending sort */
static int dkey_cmp(const void *pa, const void *pb)
{
	const struct dkey *a = pa, *b = pb;

	if (a->d != b->d)
		return a->d > b->d ? -1 : 1;
	return (a->i > b->i) - (a->i < b->i);
}

/*
 * b (n,n) row-major := the permuted, damped Hessian with rows and columns
 * reversed, in its lower triangle, and 0 in its strict upper triangle:
 * b[i][j] = S[q[i]][q[j]], q[i] = perm[n-1-i], where S is h made symmetric
 * from its lower triangle (S[x][y] = h[max(x,y)][min(x,y)]), dead diagonals
 * 1, plus damp on the diagonal.  row (n,) is scratch.  In three passes over
 * b: S by tiles (the upper half is a blocked transpose of the lower), the
 * rows moved to their places along the cycles of q (each row gathered
 * through q on the way: b[i][j] = S[q[i]][q[j]]), then the diagonal and the
 * upper triangle.
 */
struct symfill {
	const float *h;
	float *b;
	int64_t n;
};

/* b's tile row I and tile column I := S's (tile rows in parallel: their
 * writes are disjoint) */
static void sym_tiles(void *ctx, int64_t item, int t)
{
	const struct symfill *sf = ctx;
	int64_t n = sf->n, I = item * TILE, J, i, j, iend, jend;

	(void)t;
	iend = I + TILE < n ? I + TILE : n;
	for (J = 0; J <= I; J += TILE)
		for (i = I; i < iend; i++) {
			jend = J + TILE < i + 1 ? J + TILE : i + 1;
			for (j = J; j < jend; j++)
				sf->b[i * n + j] = sf->b[j * n + i] = sf->h[i * n + j];
		}
}

static void build_reversed(const float *h, int64_t n, const int64_t *perm, const uint8_t *dead,
			   float damp, float *b, float *row, uint8_t *done, int threads)
{
	struct symfill sf = {h, b, n};
	int64_t i, j, start, x;

	team_run(sym_tiles, &sf, (n + TILE - 1) / TILE, threads);
	/* row i := S[q[i]] gathered through q; along each cycle of q the row
	 * about to be overwritten has been consumed already (the first is saved) */
	memset(done, 0, (size_t)n);
	for (start = 0; start < n; start++) {
		if (done[start])
			continue;
		memcpy(row, b + start * n, (size_t)n * sizeof(float));
		for (i = start;; i = x) {
			const float *src;

			x = perm[n - 1 - i]; /* q[i] */
			done[i] = 1;
			src = x == start ? row : b + x * n;
			for (j = 0; j < n; j++)
				b[i * n + j] = src[perm[n - 1 - j]];
			if (x == start)
				break;
		}
	}
	for (i = 0; i < n; i++) {
		x = perm[n - 1 - i];
		b[i * n + i] = (dead[x] ? 1.0f : h[x * n + x]) + damp;
		memset(b + i * n + i + 1, 0, (size_t)(n - 1 - i) * sizeof(float));
	}
}

/*
 * After the factorization and the inverse, b's row-major lower triangle
 * holds X = L^-1, L the lower Cholesky factor of the reversed matrix.
 * Turn it into U = J X J (J the reversal), upper: the strict lower triangle
 * moves to the strict upper one (disjoint), the diagonal is reversed, the
 * strict lower triangle is cleared.  Returns 0, or -1 when U has a value
 * that is not finite or a diagonal that is not positive.
 */
static int finish_u(float *b, int64_t n)
{
	int64_t i, j;
	float t;
	int bad = 0;

	for (i = 1; i < n; i++) {
		const float *src = b + i * n;
		float *dst = b + (n - 1 - i) * n + (n - 1);

		for (j = 0; j < i; j++)
			dst[-j] = src[j];
	}
	for (i = 0; i < n / 2; i++) {
		t = b[i * n + i];
		b[i * n + i] = b[(n - 1 - i) * n + (n - 1 - i)];
		b[(n - 1 - i) * n + (n - 1 - i)] = t;
	}
	for (i = 0; i < n; i++) {
		memset(b + i * n, 0, (size_t)i * sizeof(float));
		bad |= !(b[i * n + i] > 0.0f);
		for (j = i; j < n; j++)
			bad |= !isfinite(b[i * n + j]);
	}
	return bad ? -1 : 0;
}

int mcb_gptq_prepare(const float *h, int64_t cols, const struct mcb_gptq_opts *o,
		     struct mcb_gptq **out, struct mcb_errctx *e)
{
	const struct mcb_blas *blas;
	struct mcb_gptq *g = NULL;
	struct dkey *keys = NULL;
	float *tmp = NULL;
	uint8_t *mark = NULL;
	int64_t n = cols, i, bad;
	double mean = 0, p;
	int rc, info, threads;

	*out = NULL;
	if (!h || !o)
		return mcb_errf(e, MCB_EINVAL, "gptq: no hessian or no options");
	if (n < 1)
		return mcb_errf(e, MCB_EINVAL, "gptq: empty hessian (%lld columns)", (long long)n);
	if (n > INT_MAX || (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)n)
		return mcb_errf(e, MCB_ERANGE, "gptq: hessian of %lld columns is too large",
				(long long)n);
	if (!(o->percdamp >= 0 && o->percdamp < 1))
		return mcb_errf(e, MCB_ERANGE, "gptq: percdamp %g outside [0, 1)", o->percdamp);
	if (!(o->damp_step >= 0 && o->damp_step < 1) || o->max_retries < 0)
		return mcb_errf(e, MCB_ERANGE, "gptq: damp_step %g outside [0, 1) or max_retries %d < 0",
				o->damp_step, o->max_retries);
	if (mcb_check_finite(h, n * n, &bad))
		return mcb_errf(e, MCB_ERANGE, "gptq: hessian [%lld, %lld] is not finite",
				(long long)(bad / n), (long long)(bad % n));
	if (o->threads < 1 || o->threads > MAX_THREADS)
		return mcb_errf(e, MCB_ERANGE, "gptq: threads %d outside 1..%d", o->threads,
				MAX_THREADS);
	threads = o->threads;
	if (!(blas = mcb_blas_get(e)))
		return mcb_errprefix(e, "gptq");
	if (!blas->spotrf || !blas->strtri)
		return mcb_errf(e, MCB_EUNSUP, "gptq: this OpenBLAS has no LAPACK (spotrf_, strtri_)");
	mcb_blas_set_threads(1); /* the tiles run in parallel instead (see gptq.h) */

	g = mcb_xcalloc(1, sizeof(*g));
	g->cols = n;
	g->act_order = o->act_order != 0;
	if ((rc = alloc((void **)&g->perm, (size_t)n, sizeof(int64_t), "the permutation", e)) ||
	    (rc = alloc((void **)&g->dead, (size_t)n, 1, "the dead columns", e)) ||
	    (rc = alloc((void **)&keys, (size_t)n, sizeof(*keys), "the diagonal", e)) ||
	    (rc = alloc((void **)&mark, (size_t)n, 1, "the permutation marks", e)) ||
	    (rc = alloc((void **)&g->hinv, (size_t)(n * n), sizeof(float), "the hessian factor", e)) ||
	    (rc = alloc((void **)&tmp, (size_t)n, NB * sizeof(float), "the factorization panel", e)))
		goto fail;
	for (i = 0; i < n; i++) {
		float d = h[i * n + i];

		g->dead[i] = d == 0.0f;
		g->ndead += g->dead[i];
		keys[i].d = g->dead[i] ? 1.0f : d;
		keys[i].i = i;
		mean += keys[i].d;
	}
	mean /= (double)n;
	if (g->act_order)
		qsort(keys, (size_t)n, sizeof(*keys), dkey_cmp);
	for (i = 0; i < n; i++)
		g->perm[i] = keys[i].i;
	free(keys);
	keys = NULL;

	for (;;) {
		p = o->percdamp + g->retries * o->damp_step;
		build_reversed(h, n, g->perm, g->dead, (float)(p * mean), g->hinv, tmp,
			       mark, threads);
		info = factor_inverse(blas, g->hinv, tmp, n, threads);
		if (info < 0) {
			rc = mcb_errf(e, MCB_EINTERNAL, "gptq: lapack rejected argument %d", -info);
			goto fail;
		}
		if (info == 0 && finish_u(g->hinv, n) == 0)
			break;
		if (o->damp_step <= 0 || g->retries >= o->max_retries ||
		    o->percdamp + (g->retries + 1) * o->damp_step >= 1) {
			rc = mcb_errf(e, MCB_ERANGE,
				      "gptq: hessian (%lld columns) is not positive definite, even "
				      "with percdamp %g (%d retries)",
				      (long long)n, p, g->retries);
			goto fail;
		}
		g->retries++;
	}
	g->percdamp = p;
	g->damp = (double)(float)(p * mean);
	free(tmp);
	free(mark);
	*out = g;
	return 0;
fail:
	free(keys);
	free(tmp);
	free(mark);
	mcb_gptq_free(g);
	return rc;
}

/* ---- the solvers ---- */

enum { PRUNE_NONE, PRUNE_UNSTRUCTURED, PRUNE_NM };

struct solve {
	/* inputs */
	const struct mcb_gptq *g;
	const float *w;                  /* [rows, cols] original order */
	int64_t rows, cols, bs;          /* bs: blocksize */
	const struct mcb_intq_params *q; /* NULL: no quantization */
	int64_t group, ngroups;          /* group 0: one per row */
	int maxq, static_groups;
	int prune, pn, pm;
	double sparsity;
	struct mcb_gptq_out *out;
	const struct mcb_blas *blas;
	/* state */
	float *wp;       /* [rows, cols] permuted, updated */
	float *cs;       /* [rows] scale of the current group of each row */
	uint8_t *cz;     /* [rows] its zero */
	double *loss;    /* [rows] sum of err^2 */
	float *ws;       /* per thread: w1, e1 ([bs][CH] each), row buffer [cols] */
	size_t ws_floats;
	int nthreads;
	int64_t nchunks;
	int64_t i1, i2;  /* the current block */
	/* the first error, by chunk index (deterministic message) */
	pthread_mutex_t lock;
	int rc;
	int64_t rc_chunk;
	struct mcb_errctx err;
};

/* Record an error of chunk k (the lowest chunk's is kept). */
static void chunk_fail(struct solve *s, int64_t k, int code, const char *msg)
{
	pthread_mutex_lock(&s->lock);
	if (!s->rc || k < s->rc_chunk) {
		s->rc = code;
		s->rc_chunk = k;
		mcb_errf(&s->err, code, "%s", msg);
	}
	pthread_mutex_unlock(&s->lock);
}

/* nearbyintf(v) in the default rounding mode for |v| < 2^22 (adding and
 * removing 1.5 * 2^23 leaves an integer, ties to even; -0 may become +0);
 * larger |v| unchanged (they clamp to 0 or maxq below either way).  A libm
 * call per weight costs more than the rest of the column loop. */
static inline float round_even(float v)
{
	return fabsf(v) < 0x1p22f ? (v + 0x1.8p23f) - 0x1.8p23f : v;
}

/* mcb_intq_codes for one value (quant.c's intq_code, with its zero-scale
 * rule): inlined here for the per-column loop; tests check the codes
 * against mcb_intq_codes on the pre-quantization weights, and against
 * mcb_intq_rtn where GPTQ reduces to RTN. */
static inline int qcode(float x, float s, int zero, int maxq)
{
	float v, r;

	if (s == 0.0f)
		return zero;
	v = x / s;
	if (isnan(v))
		return zero;
	r = round_even(v) + (float)zero;
	if (r <= 0.0f)
		return 0;
	if (r >= (float)maxq)
		return maxq;
	return (int)r;
}

/* y (np,) -= a * x (np,), np a multiple of 16 (the inner loop vectorizes) */
static void axpy16(float *restrict y, const float *restrict x, float a, int64_t np)
{
	int64_t r0;
	int r;

	for (r0 = 0; r0 < np; r0 += 16)
		for (r = 0; r < 16; r++)
			y[r0 + r] -= x[r0 + r] * a;
}

/* Group parameters of rows [r0, r0+nr) for x = row r's n values at xs + r*ld;
 * stored in cs/cz and in the outputs at group gi.  Returns 0 or -1 (a scale
 * that is not finite: message in msg). */
static int group_params(struct solve *s, int64_t r0, int64_t nr, const float *xs, int64_t ld,
			int64_t n, int64_t gi, char *msg, size_t msgsize)
{
	int64_t r;
	float sc;
	int z;

	for (r = 0; r < nr; r++) {
		mcb_intq_params(xs + r * ld, n, s->q, &sc, &z);
		if (!isfinite(sc)) {
			snprintf(msg, msgsize,
				 "row %lld group %lld: the scale overflows%s (weights too large)",
				 (long long)(r0 + r), (long long)gi,
				 s->q->fp16_scale ? " fp16" : "");
			return -1;
		}
		s->cs[r0 + r] = sc;
		s->cz[r0 + r] = (uint8_t)z;
		s->out->scale[(r0 + r) * s->ngroups + gi] = sc;
		s->out->zero[(r0 + r) * s->ngroups + gi] = (uint8_t)z;
	}
	return 0;
}

/* Chunk k, before the first block: per-row or static group parameters from
 * the original W, and the permuted copy wp. */
static void run_setup(void *ctx, int64_t k, int t)
{
	struct solve *s = ctx;
	const struct mcb_gptq *g = s->g;
	int64_t n = s->cols, r0 = k * CH, nr = s->rows - r0 < CH ? s->rows - r0 : CH, r, c, gi;
	float *row = s->ws + (size_t)t * s->ws_floats + 2 * (size_t)s->bs * CH;
	char msg[256];

	if (s->q && s->group == 0) {
		/* per row, before the dead columns are zeroed (as the reference) */
		if (group_params(s, r0, nr, s->w + r0 * n, n, n, 0, msg, sizeof(msg)))
			goto fail;
	} else if (s->q && s->static_groups) {
		for (r = 0; r < nr; r++) {
			const float *src = s->w + (r0 + r) * n;

			for (c = 0; c < n; c++)
				row[c] = g->dead[c] ? 0.0f : src[c];
			for (gi = 0; gi < s->ngroups; gi++) {
				int64_t c0 = gi * s->group, len = n - c0 < s->group ? n - c0 : s->group;

				if (group_params(s, r0 + r, 1, row + c0, n, len, gi, msg, sizeof(msg)))
					goto fail;
			}
		}
	}
	for (r = 0; r < nr; r++) {
		const float *src = s->w + (r0 + r) * n;
		float *dst = s->wp + (r0 + r) * n;

		for (c = 0; c < n; c++) {
			int64_t oc = g->perm[c];

			dst[c] = g->dead[oc] ? 0.0f : src[oc];
		}
	}
	return;
fail:
	chunk_fail(s, k, MCB_ERANGE, msg);
}

/* n:m mask of rows [r0, r0+nr) over the block columns i .. i+m-1 (w1 holds
 * them, updated): per row the n smallest w^2 / d^2, ties to the lower column. */
static void nm_mask(struct solve *s, int64_t r0, int64_t nr, const float *w1, int64_t i)
{
	const float *u = s->g->hinv;
	int64_t n = s->cols, c = s->i1 + i, r;
	float t[MAX_M], dd[MAX_M];
	int l, l2, rank, m = s->pm;

	for (l = 0; l < m; l++) {
		float d = u[(c + l) * n + (c + l)];

		dd[l] = d * d;
	}
	for (r = 0; r < nr; r++) {
		uint8_t *mask = s->out->mask + (r0 + r) * n + c;

		for (l = 0; l < m; l++) {
			float x = w1[(i + l) * CH + r];

			t[l] = x * x / dd[l];
		}
		for (l = 0; l < m; l++) {
			rank = 0;
			for (l2 = 0; l2 < m; l2++)
				rank += t[l2] < t[l] || (t[l2] == t[l] && l2 < l);
			mask[l] = rank >= s->pn;
		}
	}
}

/* Chunk k through the current block. */
static void run_block(void *ctx, int64_t k, int t)
{
	struct solve *s = ctx;
	const struct mcb_gptq *g = s->g;
	const float *u = g->hinv;
	struct mcb_gptq_out *out = s->out;
	int64_t n = s->cols, r0 = k * CH, nr = s->rows - r0 < CH ? s->rows - r0 : CH;
	int64_t np = (nr + 15) / 16 * 16; /* rows padded for axpy16 (CH % 16 == 0) */
	int64_t i1 = s->i1, i2 = s->i2, cnt = i2 - i1, i, j, r;
	float *w1 = s->ws + (size_t)t * s->ws_floats, *e1 = w1 + (size_t)s->bs * CH;
	char msg[256];

	for (j = 0; j < cnt; j++) {
		float *dst = w1 + j * CH;

		for (r = 0; r < nr; r++)
			dst[r] = s->wp[(r0 + r) * n + i1 + j];
		for (; r < np; r++)
			dst[r] = 0.0f;
	}
	for (i = 0; i < cnt; i++) {
		int64_t c = i1 + i, oc = g->perm[c];
		float d = u[c * n + c], *x = w1 + i * CH, *ec = e1 + i * CH;

		if (s->q && s->group > 0) {
			int64_t gi;

			if (!s->static_groups && c % s->group == 0) {
				/* W as it stood at the start of this block (the reference) */
				gi = c / s->group;
				if (group_params(s, r0, nr, s->wp + r0 * n + c, n,
						 n - c < s->group ? n - c : s->group, gi, msg,
						 sizeof(msg)))
					goto fail;
			} else if (s->static_groups) {
				gi = oc / s->group;
				for (r = 0; r < nr; r++) {
					s->cs[r0 + r] = out->scale[(r0 + r) * s->ngroups + gi];
					s->cz[r0 + r] = out->zero[(r0 + r) * s->ngroups + gi];
				}
			}
		}
		if (s->prune == PRUNE_NM && i % s->pm == 0)
			nm_mask(s, r0, nr, w1, i);
		for (r = 0; r < nr; r++) {
			int64_t at = (r0 + r) * n + oc;
			float v = x[r], qv = v, err;

			if (s->prune && !out->mask[at])
				qv = 0.0f;
			if (s->q) {
				float sc = s->cs[r0 + r];
				int z = s->cz[r0 + r], code = qcode(qv, sc, z, s->maxq);

				out->codes[at] = (uint8_t)code;
				qv = sc * (float)(code - z);
			}
			err = (v - qv) / d;
			ec[r] = err;
			s->loss[r0 + r] += (double)err * err;
			if (out->w)
				out->w[at] = qv;
			if (out->wpre)
				out->wpre[at] = v;
		}
		for (; r < np; r++)
			ec[r] = 0.0f;
		for (j = i + 1; j < cnt; j++)
			axpy16(w1 + j * CH, ec, u[c * n + i1 + j], np);
	}
	if (i2 < n)
		/* wp[rows, i2:] (nr, n-i2) -= e1^T (nr, cnt) @ Hinv[i1:i2, i2:] (cnt, n-i2) */
		s->blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_TRANS, CBLAS_NO_TRANS, (int)nr, (int)(n - i2),
			       (int)cnt, -1.0f, e1, CH, u + i1 * n + i2, (int)n, 1.0f,
			       s->wp + r0 * n + i2, (int)n);
	return;
fail:
	chunk_fail(s, k, MCB_ERANGE, msg);
}

/*
 * The unstructured mask of the current block over all rows: the kk =
 * floor(rows * count * sparsity) smallest tmp = w^2 / d^2 (w as it stands at
 * the block's start), ties to the lower row-major index over the block.
 * tmp >= 0 (or NaN, keyed above +inf), so its float bits order as its
 * values: a radix select on the bits (16 high, then 16 low) finds the
 * threshold key T; every key < T is pruned, and the first kk - #(keys < T)
 * keys equal to T in index order.
 */
static void select_block(struct solve *s, uint32_t *keys, int64_t *hist)
{
	const float *u = s->g->hinv;
	int64_t n = s->cols, i1 = s->i1, cnt = s->i2 - s->i1, rows = s->rows, numel = rows * cnt;
	int64_t kk = (int64_t)((double)numel * s->sparsity), r, j, idx, less, need, b, lo;
	uint32_t T;

	if (kk > numel)
		kk = numel;
	for (r = 0; r < rows; r++) {
		const float *x = s->wp + r * n + i1;

		for (j = 0; j < cnt; j++) {
			float d = u[(i1 + j) * n + (i1 + j)], t = x[j] * x[j] / (d * d);
			uint32_t key;

			memcpy(&key, &t, sizeof(key));
			keys[r * cnt + j] = isnan(t) ? 0x7fc00000u : key;
		}
	}
	if (kk == 0 || kk == numel) {
		for (r = 0; r < rows; r++)
			memset(s->out->mask + r * n + i1, kk == 0, (size_t)cnt);
		return;
	}
	/* high 16 bits: the bucket b holding the kk-th smallest key */
	memset(hist, 0, 65536 * sizeof(*hist));
	for (idx = 0; idx < numel; idx++)
		hist[keys[idx] >> 16]++;
	for (b = 0, less = 0; less + hist[b] < kk; b++)
		less += hist[b];
	/* low 16 bits within bucket b */
	memset(hist, 0, 65536 * sizeof(*hist));
	for (idx = 0; idx < numel; idx++)
		if ((int64_t)(keys[idx] >> 16) == b)
			hist[keys[idx] & 0xffff]++;
	for (lo = 0; less + hist[lo] < kk; lo++)
		less += hist[lo];
	T = (uint32_t)b << 16 | (uint32_t)lo;
	need = kk - less; /* >= 1 keys equal to T are pruned */
	for (r = 0; r < rows; r++) {
		uint8_t *mask = s->out->mask + r * n + i1;

		for (j = 0; j < cnt; j++) {
			uint32_t key = keys[r * cnt + j];

			if (key < T)
				mask[j] = 0;
			else if (key == T && need > 0) {
				mask[j] = 0;
				need--;
			} else
				mask[j] = 1;
		}
	}
}

/* Checks common to both solvers; 0 or an error in e (prefixed with who). */
static int check_args(const char *who, const struct mcb_gptq *g, const float *w, int64_t rows,
		      const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		      const struct mcb_gptq_out *out, int pruning, struct mcb_errctx *e)
{
	int64_t bad;
	uint64_t numel;

	if (!g || !w || !o || !out)
		return mcb_errf(e, MCB_EINVAL, "%s: no hessian, weight, options or outputs", who);
	if (rows < 1)
		return mcb_errf(e, MCB_EINVAL, "%s: empty weight (%lld rows)", who, (long long)rows);
	if ((uint64_t)rows > SIZE_MAX / sizeof(float) / (uint64_t)g->cols)
		return mcb_errf(e, MCB_ERANGE, "%s: weight of %lld x %lld is too large", who,
				(long long)rows, (long long)g->cols);
	numel = (uint64_t)rows * (uint64_t)g->cols;
	if (q) {
		if (q->bits < 2 || q->bits > 8)
			return mcb_errf(e, MCB_ERANGE, "%s: bits %d outside 2..8", who, q->bits);
		if (q->group < 0)
			return mcb_errf(e, MCB_ERANGE, "%s: group size %lld < 0", who,
					(long long)q->group);
		if (!out->codes || !out->scale || !out->zero)
			return mcb_errf(e, MCB_EINVAL, "%s: quantizing needs codes, scale and zero", who);
	}
	if (pruning && (!out->w || !out->mask))
		return mcb_errf(e, MCB_EINVAL, "%s: pruning needs the w and mask outputs", who);
	if (o->blocksize < 1)
		return mcb_errf(e, MCB_ERANGE, "%s: blocksize %lld < 1", who, (long long)o->blocksize);
	if (o->threads < 1 || o->threads > MAX_THREADS)
		return mcb_errf(e, MCB_ERANGE, "%s: threads %d outside 1..%d", who, o->threads,
				MAX_THREADS);
	if (mcb_check_finite(w, (int64_t)numel, &bad))
		return mcb_errf(e, MCB_ERANGE, "%s: weight [%lld, %lld] is not finite", who,
				(long long)(bad / g->cols), (long long)(bad % g->cols));
	return 0;
}

static int solve(const char *who, const struct mcb_gptq *g, const float *w, int64_t rows,
		 const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		 struct mcb_gptq_out *out, int prune, struct mcb_errctx *e)
{
	struct solve s;
	int64_t n = g->cols, i1, r, c, *hist = NULL, *ipos = NULL;
	uint32_t *keys = NULL;
	double loss = 0;
	int rc = 0;

	memset(&s, 0, sizeof(s));
	s.g = g;
	s.w = w;
	s.rows = rows;
	s.cols = n;
	s.bs = o->blocksize < n ? o->blocksize : n;
	s.q = q;
	s.group = q ? q->group : 0;
	s.ngroups = mcb_gptq_ngroups(n, s.group);
	s.maxq = q ? (1 << q->bits) - 1 : 0;
	s.static_groups = q && q->group > 0 && o->static_groups;
	s.prune = prune;
	s.pn = o->prune_n;
	s.pm = o->prune_m;
	s.sparsity = o->sparsity;
	s.out = out;
	s.nchunks = (rows + CH - 1) / CH;
	s.nthreads = o->threads < s.nchunks ? o->threads : (int)s.nchunks;
	s.ws_floats = 2 * (size_t)s.bs * CH + (size_t)n;
	s.ws_floats = (s.ws_floats + 15) / 16 * 16;
	if (!(s.blas = mcb_blas_get(e)))
		return mcb_errprefix(e, "%s", who);
	mcb_blas_set_threads(1); /* the chunks run in parallel instead (see gptq.h) */
	pthread_mutex_init(&s.lock, NULL);
	if ((rc = alloc((void **)&s.wp, (size_t)(rows * n), sizeof(float), "the working weights", e)) ||
	    (rc = alloc((void **)&s.cs, (size_t)rows, sizeof(float), "the scales", e)) ||
	    (rc = alloc((void **)&s.cz, (size_t)rows, 1, "the zeros", e)) ||
	    (rc = alloc((void **)&s.loss, (size_t)rows, sizeof(double), "the losses", e)) ||
	    (rc = alloc((void **)&s.ws, (size_t)s.nthreads, s.ws_floats * sizeof(float),
			"the block buffers", e)))
		goto done;
	if (prune == PRUNE_UNSTRUCTURED &&
	    ((rc = alloc((void **)&keys, (size_t)(rows * s.bs), sizeof(uint32_t), "the block keys",
			 e)) ||
	     (rc = alloc((void **)&hist, 65536, sizeof(int64_t), "the histogram", e))))
		goto done;
	memset(s.loss, 0, (size_t)rows * sizeof(double));

	team_run(run_setup, &s, s.nchunks, s.nthreads);
	for (i1 = 0; i1 < n && !s.rc; i1 += s.bs) {
		s.i1 = i1;
		s.i2 = i1 + s.bs < n ? i1 + s.bs : n;
		if (prune == PRUNE_UNSTRUCTURED)
			select_block(&s, keys, hist);
		team_run(run_block, &s, s.nchunks, s.nthreads);
	}
	if (s.rc) {
		rc = mcb_errf(e, s.rc, "%s: %s", who, s.err.msg);
		goto done;
	}
	for (r = 0; r < rows; r++)
		loss += s.loss[r];
	if (!isfinite(loss)) {
		rc = mcb_errf(e, MCB_ERANGE,
			      "%s: numerical breakdown (the error is not finite): check the hessian",
			      who);
		goto done;
	}
	out->loss = loss / 2;
	out->pruned = 0;
	if (prune)
		for (r = 0; r < rows * n; r++)
			out->pruned += !out->mask[r];
	if (out->g_idx) {
		if ((rc = alloc((void **)&ipos, (size_t)n, sizeof(int64_t), "the inverse permutation",
				e)))
			goto done;
		for (c = 0; c < n; c++)
			ipos[g->perm[c]] = c;
		for (c = 0; c < n; c++)
			out->g_idx[c] = s.group == 0 ? 0
					: g->act_order && !s.static_groups
						? (int32_t)(ipos[c] / s.group)
						: (int32_t)(c / s.group);
	}
done:
	pthread_mutex_destroy(&s.lock);
	free(s.wp);
	free(s.cs);
	free(s.cz);
	free(s.loss);
	free(s.ws);
	free(keys);
	free(hist);
	free(ipos);
	return rc;
}

int mcb_gptq_quantize(const struct mcb_gptq *g, const float *w, int64_t rows,
		      const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		      struct mcb_gptq_out *out, struct mcb_errctx *e)
{
	int rc;

	if (!q)
		return mcb_errf(e, MCB_EINVAL, "gptq: no quantizer");
	if ((rc = check_args("gptq", g, w, rows, q, o, out, 0, e)))
		return rc;
	if ((o->act_order != 0) != g->act_order)
		return mcb_errf(e, MCB_EINVAL, "gptq: act_order %d, but the hessian was prepared "
				"with act_order %d", o->act_order != 0, g->act_order);
	return solve("gptq", g, w, rows, q, o, out, PRUNE_NONE, e);
}

int mcb_gptq_prune(const struct mcb_gptq *g, const float *w, int64_t rows,
		   const struct mcb_intq_params *q, const struct mcb_gptq_opts *o,
		   struct mcb_gptq_out *out, struct mcb_errctx *e)
{
	int rc;

	if ((rc = check_args("sparsegpt", g, w, rows, q, o, out, 1, e)))
		return rc;
	if (g->act_order || o->act_order)
		return mcb_errf(e, MCB_EINVAL, "sparsegpt: act_order is not supported with pruning");
	if (o->prune_m == 0) {
		if (!(o->sparsity >= 0 && o->sparsity <= 1))
			return mcb_errf(e, MCB_ERANGE, "sparsegpt: sparsity %g outside [0, 1]",
					o->sparsity);
		return solve("sparsegpt", g, w, rows, q, o, out, PRUNE_UNSTRUCTURED, e);
	}
	if (o->prune_n < 1 || o->prune_n >= o->prune_m || o->prune_m > MAX_M)
		return mcb_errf(e, MCB_EINVAL, "sparsegpt: %d:%d sparsity needs 0 < n < m <= %d",
				o->prune_n, o->prune_m, MAX_M);
	if (g->cols % o->prune_m || (o->blocksize < g->cols ? o->blocksize : g->cols) % o->prune_m)
		return mcb_errf(e, MCB_EINVAL,
				"sparsegpt: %d:%d sparsity needs cols (%lld) and blocksize (%lld) "
				"multiples of %d",
				o->prune_n, o->prune_m, (long long)g->cols, (long long)o->blocksize,
				o->prune_m);
	return solve("sparsegpt", g, w, rows, q, o, out, PRUNE_NM, e);
}
