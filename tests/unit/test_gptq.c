/*
 * Unit tests for gptq: GPTQ and SparseGPT against an independent float64
 * NumPy implementation (tests/compat/gptq_ref.py), the GPTQ property (a
 * lower H-weighted error than RTN with the same quantizer), the quantizer
 * and g_idx contracts, determinism over thread counts, the damping retry and
 * hostile inputs.
 *
 * Comparison with the reference.  The C solvers run in float32 (as the
 * reference does on a GPU), the NumPy one in float64, so a weight that lands
 * within float32 noise of a rounding boundary may get a different code, and
 * that difference then changes everything after it in its row.  The
 * comparison is therefore made twice:
 *   forced: the reference follows C's choices (codes, scales, zeros, masks)
 *     and checks each one where it is made: a code must be the reference's
 *     own rounding of its float64 weight, or the float32 weight (C's, given
 *     to it) and the float64 one must straddle the boundary between the two
 *     codes; masks must select the smallest w^2/d^2 (up to 1e-4 of the
 *     block's largest); scales must be within float32 (or fp16 rounding) of
 *     the reference's.  Unexplained differences: 0 demanded.  The distance
 *     between the two paths (pre-quantization weights, in code units) is
 *     bounded too.
 *   free: the reference alone; the code and mask mismatches are reported
 *     (they are the boundary cases and what follows them in their rows) and
 *     bounded loosely.
 * A NumPy float32 run would not remove the boundary cases: its products and
 * sums are ordered differently from OpenBLAS's (and from each other across
 * NumPy builds), so the two float32 paths still diverge at ties.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/gptq.h"
#include "mcb/quant.h"
#include "mcb/rng.h"

/*
 * A layer: w [rows, cols] ~ N(0, 1) and h = (2/ntok) X^T X for inputs X
 * [ntok, cols] with correlated columns and per-column scales spread over
 * e^(+-1) (so that act_order has something to sort); the columns in dead[]
 * (ndead of them) are always 0.  h is exactly symmetric.
 */
static void make_layer(int64_t rows, int64_t cols, uint64_t seed, const int64_t *dead, int ndead,
		       float **wout, float **hout)
{
	struct mcb_rng r;
	int64_t ntok = 2 * cols + 16, t, i, j, k;
	double *x = malloc((size_t)(ntok * cols) * sizeof(double)), *a = malloc((size_t)cols * sizeof(double));
	float *w = malloc((size_t)(rows * cols) * sizeof(float));
	float *h = malloc((size_t)(cols * cols) * sizeof(float));

	mcb_rng_seed(&r, seed);
	for (i = 0; i < rows * cols; i++)
		w[i] = (float)mcbt_gauss(&r);
	for (j = 0; j < cols; j++)
		a[j] = exp(mcbt_gauss(&r) * 0.5);
	for (t = 0; t < ntok; t++) {
		double common = mcbt_gauss(&r), prev = mcbt_gauss(&r);

		for (j = 0; j < cols; j++) {
			double z = mcbt_gauss(&r);

			x[t * cols + j] = a[j] * (z + 0.6 * prev + 0.4 * common);
			prev = z;
		}
	}
	for (k = 0; k < ndead; k++)
		for (t = 0; t < ntok; t++)
			x[t * cols + dead[k]] = 0;
	for (i = 0; i < cols; i++)
		for (j = 0; j <= i; j++) {
			double s = 0;

			for (t = 0; t < ntok; t++)
				s += x[t * cols + i] * x[t * cols + j];
			h[i * cols + j] = h[j * cols + i] = (float)(2.0 * s / (double)ntok);
		}
	free(x);
	free(a);
	*wout = w;
	*hout = h;
}

/* sum_r (a - b)_r H (a - b)_r^T, in double */
static double hloss(const float *a, const float *b, const float *h, int64_t rows, int64_t cols)
{
	double *d = malloc((size_t)cols * sizeof(double)), tot = 0;
	int64_t r, i, j;

	for (r = 0; r < rows; r++) {
		for (i = 0; i < cols; i++)
			d[i] = (double)a[r * cols + i] - (double)b[r * cols + i];
		for (i = 0; i < cols; i++) {
			double s = 0;

			for (j = 0; j < cols; j++)
				s += (double)h[i * cols + j] * d[j];
			tot += d[i] * s;
		}
	}
	free(d);
	return tot;
}

/* RTN with the same quantizer, dequantized into y [rows, cols]. */
static void rtn(const float *w, int64_t rows, int64_t cols, const struct mcb_intq_params *p,
		float *y)
{
	int64_t ng = mcb_gptq_ngroups(cols, p->group), len = p->group ? p->group : cols, r, c;
	uint8_t *q = malloc((size_t)(rows * cols)), *z = malloc((size_t)(rows * ng));
	float *s = malloc((size_t)(rows * ng) * sizeof(float));

	mcb_intq_rtn(w, rows, cols, p, q, s, z);
	for (r = 0; r < rows; r++)
		for (c = 0; c < cols; c++)
			y[r * cols + c] = s[r * ng + c / len] * (float)(q[r * cols + c] - z[r * ng + c / len]);
	free(q);
	free(z);
	free(s);
}

/* All outputs of one run, allocated for rows x cols and the group count. */
struct run {
	int64_t rows, cols, ng;
	uint8_t *codes, *zero, *mask;
	float *scale, *w, *wpre;
	int32_t *g_idx;
	struct mcb_gptq_out out;
};

static void run_alloc(struct run *x, int64_t rows, int64_t cols, int64_t group)
{
	size_t n = (size_t)(rows * cols);

	memset(x, 0, sizeof(*x));
	x->rows = rows;
	x->cols = cols;
	x->ng = mcb_gptq_ngroups(cols, group);
	x->codes = calloc(n, 1);
	x->mask = calloc(n, 1);
	x->zero = calloc((size_t)(rows * x->ng), 1);
	x->scale = calloc((size_t)(rows * x->ng), sizeof(float));
	x->w = calloc(n, sizeof(float));
	x->wpre = calloc(n, sizeof(float));
	x->g_idx = calloc((size_t)cols, sizeof(int32_t));
	x->out.codes = x->codes;
	x->out.zero = x->zero;
	x->out.scale = x->scale;
	x->out.mask = x->mask;
	x->out.w = x->w;
	x->out.wpre = x->wpre;
	x->out.g_idx = x->g_idx;
}

static void run_free(struct run *x)
{
	free(x->codes);
	free(x->mask);
	free(x->zero);
	free(x->scale);
	free(x->w);
	free(x->wpre);
	free(x->g_idx);
}

/* the same bits in every output */
static int run_same(const struct run *a, const struct run *b)
{
	size_t n = (size_t)(a->rows * a->cols), m = (size_t)(a->rows * a->ng);

	return !memcmp(a->codes, b->codes, n) && !memcmp(a->mask, b->mask, n) &&
	       !memcmp(a->zero, b->zero, m) && !memcmp(a->scale, b->scale, m * sizeof(float)) &&
	       !memcmp(a->w, b->w, n * sizeof(float)) && !memcmp(a->wpre, b->wpre, n * sizeof(float)) &&
	       !memcmp(a->g_idx, b->g_idx, (size_t)a->cols * sizeof(int32_t)) &&
	       a->out.loss == b->out.loss && a->out.pruned == b->out.pruned;
}

/* ---- the NumPy reference ---- */

static int need_python(const char **py)
{
	*py = mcbt_python("tests/compat/gptq_ref.py");
	return *py != NULL;
}

#define MAXKV 32
struct kv {
	int n;
	char key[MAXKV][48];
	double val[MAXKV];
};

static double kv_get(const struct kv *k, const char *key)
{
	int i;

	for (i = 0; i < k->n; i++)
		if (!strcmp(k->key[i], key))
			return k->val[i];
	mcbt_fail(__FILE__, __LINE__, "the reference printed no '%s'", key);
	return NAN;
}

/* One layer configuration compared with the reference. */
struct cfg {
	const char *name;
	int prune;            /* 0 gptq, 1 sparsegpt */
	int64_t rows, cols;
	int bits;             /* 0: no quantizer (pruning only) */
	int64_t group;
	int sym, fp16, act, stat;
	int64_t block;
	double sparsity;
	int pn, pm;
	int ndead;
};

static void save(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mcbt_write(path, p, n);
}

/* Run c in C, write everything for the reference, run it; 0 and its output in kv. */
static int compare_one(const char *py, const struct cfg *c, struct run *x, const struct mcb_gptq **gout,
		       struct kv *kv)
{
	static const int64_t deadcols[] = {3, 17, 40, 41};
	struct mcb_errctx e;
	struct mcb_gptq_opts o;
	struct mcb_intq_params q = {c->bits, c->group, c->sym, c->fp16};
	struct mcb_gptq *g = NULL;
	float *w, *h;
	const char *dir = mcbt_tmpdir();
	char cmd[8800], line[256], text[1024];
	FILE *f;
	int n, rc;

	make_layer(c->rows, c->cols, 1000 + (uint64_t)c->rows * 7 + (uint64_t)c->cols, deadcols,
		   c->ndead, &w, &h);
	mcb_gptq_opts_init(&o);
	o.act_order = c->act;
	o.static_groups = c->stat;
	o.blocksize = c->block;
	o.sparsity = c->sparsity;
	o.prune_n = c->pn;
	o.prune_m = c->pm;
	o.threads = 2;
	run_alloc(x, c->rows, c->cols, c->group);
	rc = mcb_gptq_prepare(h, c->cols, &o, &g, &e);
	CHECK_OK(rc, &e);
	if (rc)
		goto fail;
	if (c->prune)
		rc = mcb_gptq_prune(g, w, c->rows, c->bits ? &q : NULL, &o, &x->out, &e);
	else
		rc = mcb_gptq_quantize(g, w, c->rows, &q, &o, &x->out, &e);
	CHECK_OK(rc, &e);
	if (rc)
		goto fail;
	n = snprintf(text, sizeof(text),
		     "mode %d\nrows %lld\ncols %lld\nbits %d\ngroup %lld\nsym %d\nfp16 %d\nact %d\n"
		     "static %d\nblock %lld\npercdamp %.17g\ndamp_step %.17g\nmax_retries %d\n"
		     "sparsity %.17g\npn %d\npm %d\n",
		     c->prune, (long long)c->rows, (long long)c->cols, c->bits, (long long)c->group,
		     c->sym, c->fp16, c->act, c->stat, (long long)c->block, o.percdamp, o.damp_step,
		     o.max_retries, c->sparsity, c->pn, c->pm);
	save(dir, "args", text, (size_t)n);
	save(dir, "w.f32", w, (size_t)(c->rows * c->cols) * sizeof(float));
	save(dir, "h.f32", h, (size_t)(c->cols * c->cols) * sizeof(float));
	save(dir, "c_hinv.f32", g->hinv, (size_t)(c->cols * c->cols) * sizeof(float));
	save(dir, "c_wpre.f32", x->wpre, (size_t)(c->rows * c->cols) * sizeof(float));
	if (c->bits) {
		save(dir, "c_codes.u8", x->codes, (size_t)(c->rows * c->cols));
		save(dir, "c_scale.f32", x->scale, (size_t)(c->rows * x->ng) * sizeof(float));
		save(dir, "c_zero.u8", x->zero, (size_t)(c->rows * x->ng));
	}
	if (c->prune)
		save(dir, "c_mask.u8", x->mask, (size_t)(c->rows * c->cols));
	snprintf(cmd, sizeof(cmd), "%s tests/compat/gptq_ref.py '%s'", py, dir);
	f = popen(cmd, "r");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot run %s", cmd);
		goto fail;
	}
	kv->n = 0;
	while (fgets(line, sizeof(line), f) && kv->n < MAXKV)
		if (sscanf(line, "%47s %lf", kv->key[kv->n], &kv->val[kv->n]) == 2)
			kv->n++;
	if (pclose(f) != 0) {
		mcbt_fail(__FILE__, __LINE__, "%s failed (run from the repository root)", cmd);
		goto fail;
	}
	free(w);
	free(h);
	*gout = g;
	return 0;
fail:
	free(w);
	free(h);
	mcb_gptq_free(g);
	return -1;
}

static void check_against_ref(const char *py, const struct cfg *c)
{
	struct run x;
	struct kv kv;
	const struct mcb_gptq *g;
	int64_t numel = c->rows * c->cols;

	if (compare_one(py, c, &x, &g, &kv)) {
		run_free(&x);
		return;
	}
	CHECK_EQ(kv_get(&kv, "retries"), g->retries);
	CHECK(fabs(kv_get(&kv, "percdamp") - g->percdamp) < 1e-12);
	CHECK(kv_get(&kv, "hinv_err") < 1e-4);
	CHECK(kv_get(&kv, "forced_wpre_relerr") < 1e-4);
	CHECK(fabs(kv_get(&kv, "forced_loss") - x.out.loss) <= 1e-4 * x.out.loss);
	if (c->bits) {
		CHECK_EQ(kv_get(&kv, "forced_code_unexplained"), 0);
		CHECK_EQ(kv_get(&kv, "forced_zero_unexplained"), 0);
		CHECK(kv_get(&kv, "forced_wpre_code_err") < 2e-3);
		CHECK(kv_get(&kv, "forced_scale_relerr") < (c->fp16 ? 0x1p-11 * 1.001 : 1e-5));
		/* free running: a boundary case changes the rest of its row */
		CHECK(kv_get(&kv, "free_code_mismatch") <= 0.02 * (double)numel);
	}
	if (c->prune) {
		CHECK_EQ(kv_get(&kv, "forced_mask_bad"), 0);
		CHECK(kv_get(&kv, "free_mask_mismatch") <= 0.02 * (double)numel);
	}
	CHECK(fabs(kv_get(&kv, "free_loss") - x.out.loss) <= 0.02 * x.out.loss);
	fprintf(stderr,
		"  %-34s hinv %.1e  forced: codes %g/%g (unexplained %g) zeros %g mask %g/%g "
		"(bad %g), wpre %.1e (%.1e code units); free: codes %g mask %g of %lld; loss C "
		"%.6g ref %.6g\n",
		c->name, kv_get(&kv, "hinv_err"), kv_get(&kv, "forced_code_diff"), (double)numel,
		kv_get(&kv, "forced_code_unexplained"), kv_get(&kv, "forced_zero_diff"),
		kv_get(&kv, "forced_mask_diff"), (double)numel, kv_get(&kv, "forced_mask_bad"),
		kv_get(&kv, "forced_wpre_relerr"), kv_get(&kv, "forced_wpre_code_err"),
		c->bits ? kv_get(&kv, "free_code_mismatch") : 0.0,
		c->prune ? kv_get(&kv, "free_mask_mismatch") : 0.0, (long long)numel, x.out.loss,
		kv_get(&kv, "free_loss"));
	run_free(&x);
	mcb_gptq_free((struct mcb_gptq *)g);
}

static const struct cfg gptq_cfgs[] = {
	/* name                          prune rows cols bits group sym fp16 act stat block */
	{"16x64 4b row asym B16", 0, 16, 64, 4, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0},
	{"32x256 4b g32 asym B64", 0, 32, 256, 4, 32, 0, 0, 0, 0, 64, 0, 0, 0, 0},
	{"32x256 4b g64 sym B48", 0, 32, 256, 4, 64, 1, 0, 0, 0, 48, 0, 0, 0, 0},
	{"32x256 4b g64 sym act B64", 0, 32, 256, 4, 64, 1, 0, 1, 0, 64, 0, 0, 0, 0},
	{"32x256 3b g64 asym act static", 0, 32, 256, 3, 64, 0, 0, 1, 1, 128, 0, 0, 0, 0},
	{"32x256 4b g32 asym static B40", 0, 32, 256, 4, 32, 0, 0, 0, 1, 40, 0, 0, 0, 0},
	{"32x256 8b g32 sym fp16 act B48", 0, 32, 256, 8, 32, 1, 1, 1, 0, 48, 0, 0, 0, 0},
	{"32x256 2b row asym act B32", 0, 32, 256, 2, 0, 0, 0, 1, 0, 32, 0, 0, 0, 0},
	{"20x200 4b g64 asym fp16 dead B50", 0, 20, 200, 4, 64, 0, 1, 0, 0, 50, 0, 0, 0, 4},
	{"24x200 4b g64 sym act dead B64", 0, 24, 200, 4, 64, 1, 0, 1, 0, 64, 0, 0, 0, 4},
	{"300x96 4b g32 asym act B32", 0, 300, 96, 4, 32, 0, 0, 1, 0, 32, 0, 0, 0, 0},
	{"8x128 4b g128 asym B32 (g > B)", 0, 8, 128, 4, 128, 0, 0, 0, 0, 32, 0, 0, 0, 0},
	{"16x600 4b g128 sym act B128", 0, 16, 600, 4, 128, 1, 0, 1, 0, 128, 0, 0, 0, 0},
};

static void test_python_gptq(void)
{
	const char *py;
	size_t i;

	if (!need_python(&py))
		return;
	for (i = 0; i < sizeof(gptq_cfgs) / sizeof(gptq_cfgs[0]); i++)
		check_against_ref(py, &gptq_cfgs[i]);
}

static const struct cfg prune_cfgs[] = {
	/* name                          prune rows cols bits group sym fp16 act stat block sp n m dead */
	{"32x256 50% B64", 1, 32, 256, 0, 0, 0, 0, 0, 0, 64, 0.5, 0, 0, 0},
	{"300x96 30% B32", 1, 300, 96, 0, 0, 0, 0, 0, 0, 32, 0.3, 0, 0, 0},
	{"20x200 60% B50 dead", 1, 20, 200, 0, 0, 0, 0, 0, 0, 50, 0.6, 0, 0, 4},
	{"32x256 2:4 B64", 1, 32, 256, 0, 0, 0, 0, 0, 0, 64, 0, 2, 4, 0},
	{"32x256 4:8 B128", 1, 32, 256, 0, 0, 0, 0, 0, 0, 128, 0, 4, 8, 0},
	{"32x256 50% + 4b row asym", 1, 32, 256, 4, 0, 0, 0, 0, 0, 64, 0.5, 0, 0, 0},
	{"32x256 2:4 + 4b g32 asym", 1, 32, 256, 4, 32, 0, 0, 0, 0, 64, 0, 2, 4, 0},
	{"32x256 2:4 + 8b g64 sym fp16", 1, 32, 256, 8, 64, 1, 1, 0, 0, 64, 0, 2, 4, 0},
	{"16x600 50% + 4b g128 asym", 1, 16, 600, 4, 128, 0, 0, 0, 0, 128, 0.5, 0, 0, 4},
};

static void test_python_sparsegpt(void)
{
	const char *py;
	size_t i;

	if (!need_python(&py))
		return;
	for (i = 0; i < sizeof(prune_cfgs) / sizeof(prune_cfgs[0]); i++)
		check_against_ref(py, &prune_cfgs[i]);
}

/* ---- C-only properties ---- */

static const int64_t dead4[] = {3, 17, 40, 41};

/* prepare with the defaults and act_order act; NULL after a failed check */
static struct mcb_gptq *prep(const float *h, int64_t cols, int act)
{
	struct mcb_errctx e;
	struct mcb_gptq_opts o;
	struct mcb_gptq *g = NULL;

	mcb_gptq_opts_init(&o);
	o.act_order = act;
	CHECK_OK(mcb_gptq_prepare(h, cols, &o, &g, &e), &e);
	return g;
}

/* max |U H' U^T - I| for g's U and H' (h permuted, damped): 0 when
 * H'^-1 = U^T U; and whether the strict lower triangle of U is 0 */
static double factor_error(const struct mcb_gptq *g, const float *h, int *lower_nonzero)
{
	int64_t n = g->cols, i, j, k;
	double *y = malloc((size_t)(n * n) * sizeof(double)), worst = 0;

	*lower_nonzero = 0;
	/* y = H' U^T: y[i][j] = sum_k H'[i][k] U[j][k], k >= j */
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			double s = 0;

			for (k = j; k < n; k++) {
				int64_t a = g->perm[i], b = g->perm[k];
				double hv = a == b ? (g->dead[a] ? 1.0 : h[a * n + a]) + g->damp
						   : h[(a > b ? a : b) * n + (a > b ? b : a)];

				s += hv * g->hinv[j * n + k];
			}
			y[i * n + j] = s;
		}
	/* U y - I */
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			double s = -(double)(i == j);

			for (k = i; k < n; k++)
				s += g->hinv[i * n + k] * y[k * n + j];
			worst = fabs(s) > worst ? fabs(s) : worst;
			*lower_nonzero |= j < i && g->hinv[i * n + j] != 0.0f;
		}
	free(y);
	return worst;
}

/*
 * The factor: strict lower triangle 0, U H' U^T = I (H' = H permuted and
 * damped, so H'^-1 = U^T U) to float32 accuracy, the act_order permutation
 * sorted by descending diagonal with ties to the lower index, dead columns
 * found; on 96 columns (one tile of the factorization) and 700 (three, the
 * last ragged), where the factor must have the same bits with 1, 2 and 3
 * threads.
 */
static void test_hinv(void)
{
	static const int64_t sizes[] = {96, 700};
	float *w, *h;
	struct mcb_gptq *g, *g2;
	struct mcb_gptq_opts o;
	struct mcb_errctx e;
	int64_t i, act, si, N;
	int lower, t;
	double err;

	for (si = 0; si < 2; si++) {
		N = sizes[si];
		make_layer(4, N, 7, dead4, 4, &w, &h);
		/* equal diagonals (ties) that are not dead: scale row and column 20 so
		 * that its diagonal is column 10's (H stays positive semidefinite), then
		 * make them equal to the bit */
		{
			float f = sqrtf(h[10 * N + 10] / h[20 * N + 20]);

			for (i = 0; i < N; i++) {
				h[20 * N + i] *= f;
				h[i * N + 20] *= f;
			}
			h[20 * N + 20] = h[10 * N + 10];
		}
		for (act = 0; act < 2; act++) {
			if (!(g = prep(h, N, (int)act)))
				continue;
			CHECK_EQ(g->ndead, 4);
			CHECK(g->dead[3] && g->dead[17] && g->dead[40] && g->dead[41] && !g->dead[0]);
			CHECK_EQ(g->retries, 0);
			CHECK(g->percdamp == 0.01);
			for (i = 0; i < N; i++) {
				int64_t a = g->perm[i];
				float di = g->dead[a] ? 1 : h[a * N + a];

				if (!act)
					CHECK_EQ(a, i);
				if (act && i > 0) {
					int64_t b = g->perm[i - 1];
					float dp = g->dead[b] ? 1 : h[b * N + b];

					CHECK(dp > di || (dp == di && b < a));
				}
				if (act && a == 10) /* the tie: 10 right before 20 */
					CHECK(i + 1 < N && g->perm[i + 1] == 20);
			}
			err = factor_error(g, h, &lower);
			fprintf(stderr, "  %lld columns%s: max |U H' U^T - I| = %.2e\n", (long long)N,
				act ? ", act_order" : "", err);
			CHECK(err < 1e-4);
			CHECK(!lower);
			for (t = 2; t <= 3; t++) {
				mcb_gptq_opts_init(&o);
				o.act_order = (int)act;
				o.threads = t;
				CHECK_OK(mcb_gptq_prepare(h, N, &o, &g2, &e), &e);
				CHECK(g2 && !memcmp(g->hinv, g2->hinv, (size_t)(N * N) * sizeof(float)));
				mcb_gptq_free(g2);
			}
			mcb_gptq_free(g);
		}
		free(w);
		free(h);
	}
}

/*
 * The quantizer contract on GPTQ's output: every code is mcb_intq_codes of
 * the weight just before its column was quantized, with the scale and zero
 * of its g_idx group; w = scale * (code - zero); g_idx as documented;
 * per-row and static group parameters are RTN's on the original weights
 * (dead columns zeroed for static groups) bit for bit; dead columns come out
 * as the zero point.
 */
static void test_quantizer_contract(void)
{
	enum { R = 40, N = 192 };
	static const struct {
		int bits;
		int64_t group;
		int sym, fp16, act, stat;
	} cases[] = {
		{4, 64, 0, 1, 1, 0}, {4, 64, 1, 0, 1, 1}, {3, 0, 0, 0, 1, 0}, {8, 50, 1, 1, 0, 0},
		{2, 32, 0, 0, 0, 1}, {5, 0, 1, 1, 0, 0},
	};
	float *w, *h, *wz = malloc(R * N * sizeof(float)), *rs = malloc(R * N * sizeof(float));
	uint8_t *rq = malloc(R * N), *rz = malloc(R * N);
	size_t ci;

	make_layer(R, N, 11, dead4, 4, &w, &h);
	for (ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		struct mcb_intq_params q = {cases[ci].bits, cases[ci].group, cases[ci].sym,
					    cases[ci].fp16};
		struct mcb_gptq_opts o;
		struct mcb_gptq *g = prep(h, N, cases[ci].act);
		struct mcb_errctx e;
		struct run x;
		int64_t r, c, *ipos = malloc(N * sizeof(int64_t)), gs = q.group ? q.group : N, bad = 0;

		if (!g)
			continue;
		mcb_gptq_opts_init(&o);
		o.act_order = cases[ci].act;
		o.static_groups = cases[ci].stat;
		o.blocksize = 48;
		run_alloc(&x, R, N, q.group);
		CHECK_OK(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e);
		for (c = 0; c < N; c++)
			ipos[g->perm[c]] = c;
		for (c = 0; c < N; c++)
			CHECK_EQ(x.g_idx[c], q.group == 0 ? 0
					     : cases[ci].act && !cases[ci].stat ? ipos[c] / gs
										: c / gs);
		for (r = 0; r < R; r++)
			for (c = 0; c < N; c++) {
				int64_t at = r * N + c, gi = x.g_idx[c];
				float sc = x.scale[r * x.ng + gi];
				int z = x.zero[r * x.ng + gi];
				uint8_t code;

				mcb_intq_codes(&x.wpre[at], 1, &q, sc, z, &code);
				bad += code != x.codes[at];
				bad += x.w[at] != sc * (float)(code - z);
				if (c == 3 || c == 17 || c == 40 || c == 41)
					bad += x.codes[at] != z || x.w[at] != 0.0f;
			}
		CHECK_EQ(bad, 0);
		/* per-row and static parameters are RTN's */
		if (q.group == 0 || cases[ci].stat) {
			for (r = 0; r < R * N; r++)
				wz[r] = q.group && (r % N == 3 || r % N == 17 || r % N == 40 || r % N == 41)
						? 0.0f
						: w[r];
			mcb_intq_rtn(wz, R, N, &q, rq, rs, rz);
			CHECK(!memcmp(rs, x.scale, (size_t)(R * x.ng) * sizeof(float)));
			CHECK(!memcmp(rz, x.zero, (size_t)(R * x.ng)));
		}
		run_free(&x);
		free(ipos);
		mcb_gptq_free(g);
	}
	free(w);
	free(h);
	free(wz);
	free(rs);
	free(rq);
	free(rz);
}

/*
 * With a diagonal H, Hinv is diagonal and no error spreads: GPTQ is RTN
 * (without act_order, or with static groups) bit for bit, on weights made
 * of exact halves of the scale (the rounding ties), zeros, tiny and large
 * values, for every bit width.
 */
static void test_diagonal_is_rtn(void)
{
	enum { R = 24, N = 96 };
	float w[R * N], h[N * N], y[R * N], rs[R * N];
	uint8_t rq[R * N], rz[R * N];
	struct mcb_rng r;
	struct mcb_gptq *g[2] = {NULL, NULL};
	int64_t i, c;
	int bits, cfg, act, bad = 0;

	mcb_rng_seed(&r, 61);
	for (i = 0; i < R * N; i++) {
		int64_t row = i / N, k = i % N;

		w[i] = row < 4 ? (float)((k % 31) - 15) * 0.5f * (row % 2 ? -1.0f : 1.0f)
		       : row < 6 ? 0.0f
		       : row < 8 ? (float)mcbt_gauss(&r) * 1e-30f
		       : row < 10 ? (float)mcbt_gauss(&r) * 1e4f
				  : (float)(mcbt_gauss(&r) * exp(mcbt_gauss(&r)));
	}
	memset(h, 0, sizeof(h));
	for (c = 0; c < N; c++)
		h[c * N + c] = (float)(1 + (c * 37) % N); /* distinct: act_order permutes */
	for (act = 0; act < 2; act++)
		g[act] = prep(h, N, act);
	for (bits = 2; g[0] && g[1] && bits <= 8; bits++)
		for (cfg = 0; cfg < 8; cfg++) {
			struct mcb_intq_params q = {bits, cfg % 4 == 0 ? 0 : cfg % 4 == 1 ? 32 : 40,
						    (cfg / 4) % 2, (bits + cfg) % 2};
			struct mcb_gptq_opts o;
			struct mcb_errctx e;
			struct run x;
			int64_t ng = mcb_gptq_ngroups(N, q.group);

			act = cfg % 2;
			mcb_gptq_opts_init(&o);
			o.act_order = act;
			o.static_groups = act; /* with act_order, only static groups are RTN's */
			o.blocksize = 32;
			run_alloc(&x, R, N, q.group);
			CHECK_OK(mcb_gptq_quantize(g[act], w, R, &q, &o, &x.out, &e), &e);
			mcb_intq_rtn(w, R, N, &q, rq, rs, rz);
			rtn(w, R, N, &q, y);
			bad += memcmp(rq, x.codes, R * N) != 0;
			bad += memcmp(rs, x.scale, (size_t)(R * ng) * sizeof(float)) != 0;
			bad += memcmp(rz, x.zero, (size_t)(R * ng)) != 0;
			bad += memcmp(y, x.w, R * N * sizeof(float)) != 0;
			run_free(&x);
		}
	CHECK_EQ(bad, 0);
	mcb_gptq_free(g[0]);
	mcb_gptq_free(g[1]);
}

/* The GPTQ property: tr((W - Q) H (W - Q)^T) below RTN's with the same quantizer. */
static void test_beats_rtn(void)
{
	enum { R = 64, N = 512 };
	static const struct {
		int bits;
		int64_t group;
		int sym, fp16, act, stat;
	} cases[] = {
		{4, 128, 0, 0, 0, 0}, {4, 128, 0, 1, 1, 0}, {3, 64, 1, 0, 1, 0}, {4, 0, 1, 0, 0, 0},
		{2, 32, 0, 0, 1, 1}, {8, 0, 0, 1, 1, 0}, {4, 100, 0, 0, 1, 1},
	};
	float *w, *h, *y = malloc(R * N * sizeof(float));
	struct mcb_gptq *g[2];
	size_t ci;

	make_layer(R, N, 12, NULL, 0, &w, &h);
	g[0] = prep(h, N, 0);
	g[1] = prep(h, N, 1);
	for (ci = 0; g[0] && g[1] && ci < sizeof(cases) / sizeof(cases[0]); ci++) {
		struct mcb_intq_params q = {cases[ci].bits, cases[ci].group, cases[ci].sym,
					    cases[ci].fp16};
		struct mcb_gptq_opts o;
		struct mcb_errctx e;
		struct run x;
		double eg, er;

		mcb_gptq_opts_init(&o);
		o.act_order = cases[ci].act;
		o.static_groups = cases[ci].stat;
		run_alloc(&x, R, N, q.group);
		CHECK_OK(mcb_gptq_quantize(g[cases[ci].act], w, R, &q, &o, &x.out, &e), &e);
		rtn(w, R, N, &q, y);
		eg = hloss(w, x.w, h, R, N);
		er = hloss(w, y, h, R, N);
		fprintf(stderr, "  %d bits group %3lld %s%s%s%s: GPTQ/RTN error %.3f\n", q.bits,
			(long long)q.group, q.symmetric ? "sym" : "asym", q.fp16_scale ? " fp16" : "",
			cases[ci].act ? " act_order" : "", cases[ci].stat ? " static" : "", eg / er);
		CHECK(eg < er);
		run_free(&x);
	}
	mcb_gptq_free(g[0]);
	mcb_gptq_free(g[1]);
	free(w);
	free(h);
	free(y);
}

/* The same bits with 1, 2, 3 and 4 threads (chunks of 256 rows: 600 rows is 3
 * chunks), for GPTQ and both kinds of SparseGPT, from two preparations, with
 * the process's OpenBLAS budget at 1 or 2 threads before each call. */
static void test_threads_deterministic(void)
{
	enum { R = 600, N = 128 };
	struct mcb_intq_params q = {4, 32, 0, 1};
	float *w, *h;
	struct mcb_gptq *g[2];
	int mode, t;

	make_layer(R, N, 13, dead4, 2, &w, &h);
	for (mode = 0; mode < 3; mode++) {
		struct run x[4];
		struct mcb_errctx e;

		mcb_blas_set_threads(1);
		g[0] = prep(h, N, mode == 0);
		mcb_blas_set_threads(2);
		g[1] = prep(h, N, mode == 0);
		if (!g[0] || !g[1])
			break;
		CHECK(!memcmp(g[0]->hinv, g[1]->hinv, N * N * sizeof(float)));
		for (t = 0; t < 4; t++) {
			struct mcb_gptq_opts o;

			mcb_gptq_opts_init(&o);
			o.act_order = mode == 0;
			o.threads = t + 1;
			o.blocksize = 32;
			o.sparsity = 0.5;
			o.prune_n = mode == 2 ? 2 : 0;
			o.prune_m = mode == 2 ? 4 : 0;
			run_alloc(&x[t], R, N, q.group);
			mcb_blas_set_threads(2 - t % 2);
			if (mode == 0)
				CHECK_OK(mcb_gptq_quantize(g[t & 1], w, R, &q, &o, &x[t].out, &e), &e);
			else
				CHECK_OK(mcb_gptq_prune(g[t & 1], w, R, &q, &o, &x[t].out, &e), &e);
			if (t)
				CHECK(run_same(&x[0], &x[t]));
		}
		for (t = 0; t < 4; t++)
			run_free(&x[t]);
		mcb_gptq_free(g[0]);
		mcb_gptq_free(g[1]);
	}
	free(w);
	free(h);
}

/* One prepared Hessian serves several weights (q, k, v): the same bits as
 * preparing it for each. */
static void test_shared_hessian(void)
{
	enum { R = 24, N = 160 };
	struct mcb_intq_params q = {4, 32, 1, 0};
	float *w[3], *h, *h2;
	struct mcb_gptq *g = NULL, *g1;
	struct mcb_gptq_opts o;
	struct mcb_errctx e;
	int i;

	make_layer(R, N, 21, NULL, 0, &w[0], &h);
	make_layer(R, N, 22, NULL, 0, &w[1], &h2);
	free(h2);
	make_layer(R, N, 23, NULL, 0, &w[2], &h2);
	free(h2);
	mcb_gptq_opts_init(&o);
	o.act_order = 1;
	CHECK_OK(mcb_gptq_prepare(h, N, &o, &g, &e), &e);
	for (i = 0; g && i < 3; i++) {
		struct run a, b;

		run_alloc(&a, R, N, q.group);
		run_alloc(&b, R, N, q.group);
		CHECK_OK(mcb_gptq_quantize(g, w[i], R, &q, &o, &a.out, &e), &e);
		if (!(g1 = prep(h, N, 1)))
			break;
		CHECK_OK(mcb_gptq_quantize(g1, w[i], R, &q, &o, &b.out, &e), &e);
		CHECK(run_same(&a, &b));
		mcb_gptq_free(g1);
		run_free(&a);
		run_free(&b);
	}
	mcb_gptq_free(g);
	for (i = 0; i < 3; i++)
		free(w[i]);
	free(h);
}

/*
 * An H with one eigenvalue -0.015 mean(diag H): not positive definite with
 * the initial damping (0.01 mean: smallest eigenvalue -0.005 mean), positive
 * definite after one retry (0.02 mean: +0.005 mean).  Without retries it
 * fails; so does -I at any damping below 1.
 */
static void test_retry(void)
{
	enum { N = 32 };
	double q[N][N], lam[N], mean, lmin;
	float h[N * N], w[4 * N];
	struct mcb_rng r;
	struct mcb_gptq_opts o;
	struct mcb_gptq *g = NULL;
	struct mcb_errctx e;
	int i, j, k;

	mcb_rng_seed(&r, 31);
	/* a random orthogonal Q by Gram-Schmidt */
	for (i = 0; i < N; i++) {
		for (j = 0; j < N; j++)
			q[i][j] = mcbt_gauss(&r);
		for (k = 0; k < i; k++) {
			double d = 0;

			for (j = 0; j < N; j++)
				d += q[i][j] * q[k][j];
			for (j = 0; j < N; j++)
				q[i][j] -= d * q[k][j];
		}
		mean = 0;
		for (j = 0; j < N; j++)
			mean += q[i][j] * q[i][j];
		for (j = 0; j < N; j++)
			q[i][j] /= sqrt(mean);
	}
	/* lam_min = -0.015 * mean(lam), the other eigenvalues 1 */
	lmin = -0.015 * (N - 1) / N / (1 + 0.015 / N);
	for (i = 0; i < N; i++)
		lam[i] = i ? 1.0 : lmin;
	mean = (N - 1 + lmin) / N;
	CHECK(fabs(lmin + 0.015 * mean) < 1e-12);
	for (i = 0; i < N; i++)
		for (j = 0; j <= i; j++) {
			double s = 0;

			for (k = 0; k < N; k++)
				s += q[k][i] * lam[k] * q[k][j];
			h[i * N + j] = h[j * N + i] = (float)s;
		}
	for (i = 0; i < 4 * N; i++)
		w[i] = (float)mcbt_gauss(&r);
	mcb_gptq_opts_init(&o);
	CHECK_OK(mcb_gptq_prepare(h, N, &o, &g, &e), &e);
	if (g) {
		struct mcb_intq_params qp = {4, 0, 0, 0};
		struct run x;

		CHECK_EQ(g->retries, 1);
		CHECK(fabs(g->percdamp - 0.02) < 1e-15);
		run_alloc(&x, 4, N, 0);
		CHECK_OK(mcb_gptq_quantize(g, w, 4, &qp, &o, &x.out, &e), &e);
		run_free(&x);
		mcb_gptq_free(g);
	}
	o.damp_step = 0;
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE,
		  "not positive definite, even with percdamp 0.01 (0 retries)");
	CHECK(g == NULL);
	o.damp_step = 0.01;
	o.max_retries = 0;
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE, "(0 retries)");
	o.percdamp = 0.02;
	CHECK_OK(mcb_gptq_prepare(h, N, &o, &g, &e), &e);
	CHECK(g && g->retries == 0);
	mcb_gptq_free(g);
	/* -I: every damping below 1 fails (0.01 .. 0.99: 98 retries) */
	for (i = 0; i < N * N; i++)
		h[i] = i % (N + 1) == 0 ? -1.0f : 0.0f;
	mcb_gptq_opts_init(&o);
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE, "(98 retries)");
}

/* SparseGPT: exact counts per block and per n:m group, zeros where pruned,
 * joint codes, and a lower H-weighted error than magnitude pruning. */
static void test_sparsegpt_props(void)
{
	enum { R = 48, N = 256, B = 64 };
	float *w, *h, *mag = malloc(R * N * sizeof(float));
	struct mcb_gptq *g;
	int mode;

	make_layer(R, N, 41, NULL, 0, &w, &h);
	if (!(g = prep(h, N, 0)))
		return;
	for (mode = 0; mode < 5; mode++) {
		struct mcb_intq_params q = {4, 64, 0, 0};
		struct mcb_gptq_opts o;
		struct mcb_errctx e;
		struct run x;
		int64_t r, c, i1, bad = 0, pruned = 0;
		double es, em;

		mcb_gptq_opts_init(&o);
		o.blocksize = B;
		o.sparsity = mode == 3 ? 0 : mode == 4 ? 1 : 0.5;
		o.prune_n = mode == 1 ? 2 : 0;
		o.prune_m = mode == 1 ? 4 : 0;
		run_alloc(&x, R, N, q.group);
		CHECK_OK(mcb_gptq_prune(g, w, R, mode == 2 ? &q : NULL, &o, &x.out, &e), &e);
		for (r = 0; r < R * N; r++) {
			pruned += !x.mask[r];
			bad += !x.mask[r] && x.w[r] != 0.0f;
			if (mode == 2) {
				int64_t gi = (r % N) / 64;
				float sc = x.scale[(r / N) * x.ng + gi];
				int z = x.zero[(r / N) * x.ng + gi];

				bad += !x.mask[r] && x.codes[r] != z;
				bad += x.w[r] != sc * (float)(x.codes[r] - z);
			}
		}
		CHECK_EQ(bad, 0);
		CHECK_EQ(pruned, x.out.pruned);
		if (mode == 1) {
			for (r = 0; r < R; r++)
				for (c = 0; c < N; c += 4)
					CHECK_EQ(!x.mask[r * N + c] + !x.mask[r * N + c + 1] +
							 !x.mask[r * N + c + 2] + !x.mask[r * N + c + 3],
						 2);
		} else {
			for (i1 = 0; i1 < N; i1 += B) {
				int64_t k = 0;

				for (r = 0; r < R; r++)
					for (c = i1; c < i1 + B; c++)
						k += !x.mask[r * N + c];
				CHECK_EQ(k, (int64_t)(R * B * o.sparsity));
			}
		}
		if (mode == 3) /* nothing pruned, nothing quantized: W itself */
			CHECK(!memcmp(x.w, w, R * N * sizeof(float)) && x.out.loss == 0);
		if (mode == 4) {
			CHECK_EQ(pruned, R * N);
			run_free(&x);
			continue;
		}
		/* magnitude pruning of the same count per row (or per n:m group), no update */
		memcpy(mag, w, R * N * sizeof(float));
		for (r = 0; r < R; r++) {
			int64_t step = mode == 1 ? 4 : N, kill = mode == 1 ? 2 : (int64_t)(N * o.sparsity), c0;

			for (c0 = 0; c0 < N; c0 += step)
				for (i1 = 0; i1 < kill; i1++) {
					int64_t best = -1;

					for (c = c0; c < c0 + step; c++)
						if (mag[r * N + c] != 0.0f &&
						    (best < 0 || fabsf(mag[r * N + c]) < fabsf(mag[r * N + best])))
							best = c;
					mag[r * N + best] = 0.0f;
				}
		}
		es = hloss(w, x.w, h, R, N);
		em = hloss(w, mag, h, R, N);
		if (mode != 3) {
			fprintf(stderr, "  %s: SparseGPT/magnitude error %.3f\n",
				mode == 0 ? "50%" : mode == 1 ? "2:4" : "50% + 4 bits", es / em);
			CHECK(es < em);
		}
		run_free(&x);
	}
	mcb_gptq_free(g);
	free(w);
	free(h);
	free(mag);
}

/* Hostile inputs: every one an error with a message, never a crash. */
static void test_errors(void)
{
	enum { R = 8, N = 64 };
	float *w, *h, *bad = malloc(N * N * sizeof(float));
	struct mcb_gptq_opts o;
	struct mcb_gptq *g = NULL, *ga = NULL;
	struct mcb_intq_params q = {4, 32, 0, 0};
	struct mcb_errctx e;
	struct run x;

	make_layer(R, N, 51, NULL, 0, &w, &h);
	mcb_gptq_opts_init(&o);
	/* prepare */
	CHECK_ERR(mcb_gptq_prepare(NULL, N, &o, &g, &e), &e, MCB_EINVAL, "no hessian");
	CHECK_ERR(mcb_gptq_prepare(h, 0, &o, &g, &e), &e, MCB_EINVAL, "empty hessian");
	CHECK_ERR(mcb_gptq_prepare(h, (int64_t)1 << 40, &o, &g, &e), &e, MCB_ERANGE, "too large");
	memcpy(bad, h, N * N * sizeof(float));
	bad[5 * N + 9] = NAN;
	CHECK_ERR(mcb_gptq_prepare(bad, N, &o, &g, &e), &e, MCB_ERANGE, "hessian [5, 9] is not finite");
	bad[5 * N + 9] = INFINITY;
	CHECK_ERR(mcb_gptq_prepare(bad, N, &o, &g, &e), &e, MCB_ERANGE, "not finite");
	o.percdamp = 1;
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE, "percdamp 1 outside [0, 1)");
	o.percdamp = NAN;
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE, "percdamp");
	o.percdamp = 0.01;
	o.damp_step = -1;
	CHECK_ERR(mcb_gptq_prepare(h, N, &o, &g, &e), &e, MCB_ERANGE, "damp_step");
	mcb_gptq_opts_init(&o);
	memset(bad, 0, N * N * sizeof(float)); /* all dead: H = I, fine */
	CHECK_OK(mcb_gptq_prepare(bad, N, &o, &g, &e), &e);
	CHECK(g && g->ndead == N);
	mcb_gptq_free(g);
	g = NULL;
	CHECK_OK(mcb_gptq_prepare(h, N, &o, &g, &e), &e);
	o.act_order = 1;
	CHECK_OK(mcb_gptq_prepare(h, N, &o, &ga, &e), &e);
	o.act_order = 0;
	if (!g || !ga)
		goto out;
	run_alloc(&x, R, N, q.group);
	/* quantize */
	CHECK_ERR(mcb_gptq_quantize(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "no quantizer");
	CHECK_ERR(mcb_gptq_quantize(g, NULL, R, &q, &o, &x.out, &e), &e, MCB_EINVAL, "no hessian, weight");
	CHECK_ERR(mcb_gptq_quantize(g, w, 0, &q, &o, &x.out, &e), &e, MCB_EINVAL, "empty weight (0 rows)");
	CHECK_ERR(mcb_gptq_quantize(g, w, (int64_t)1 << 60, &q, &o, &x.out, &e), &e, MCB_ERANGE,
		  "too large");
	q.bits = 1;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "bits 1 outside 2..8");
	q.bits = 9;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "bits 9 outside 2..8");
	q.bits = 4;
	q.group = -1;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "group size -1");
	q.group = 32;
	o.blocksize = 0;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "blocksize 0");
	o.blocksize = 128;
	o.threads = 0;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "threads 0");
	o.threads = 1;
	x.out.codes = NULL;
	CHECK_ERR(mcb_gptq_quantize(g, w, R, &q, &o, &x.out, &e), &e, MCB_EINVAL, "needs codes");
	x.out.codes = x.codes;
	CHECK_ERR(mcb_gptq_quantize(ga, w, R, &q, &o, &x.out, &e), &e, MCB_EINVAL,
		  "prepared with act_order 1");
	memcpy(bad, w, R * N * sizeof(float));
	bad[2 * N + 7] = -INFINITY;
	CHECK_ERR(mcb_gptq_quantize(g, bad, R, &q, &o, &x.out, &e), &e, MCB_ERANGE,
		  "weight [2, 7] is not finite");
	bad[2 * N + 7] = NAN;
	CHECK_ERR(mcb_gptq_quantize(g, bad, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "not finite");
	/* scales beyond fp16 */
	bad[2 * N + 7] = 1e6f;
	bad[2 * N + 8] = -1e6f;
	q.fp16_scale = 1;
	CHECK_ERR(mcb_gptq_quantize(g, bad, R, &q, &o, &x.out, &e), &e, MCB_ERANGE,
		  "row 2 group 0: the scale overflows fp16");
	q.group = 0;
	CHECK_ERR(mcb_gptq_quantize(g, bad, R, &q, &o, &x.out, &e), &e, MCB_ERANGE, "overflows fp16");
	q.fp16_scale = 0;
	CHECK_OK(mcb_gptq_quantize(g, bad, R, &q, &o, &x.out, &e), &e);
	q.group = 32;
	/* prune */
	CHECK_ERR(mcb_gptq_prune(ga, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL,
		  "act_order is not supported");
	o.sparsity = 1.5;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_ERANGE, "sparsity 1.5");
	o.sparsity = -0.1;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_ERANGE, "sparsity");
	o.sparsity = 0.5;
	o.prune_n = 4;
	o.prune_m = 4;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "4:4 sparsity needs 0 < n < m");
	o.prune_n = 0;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "0:4");
	o.prune_n = 2;
	o.prune_m = 128;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "m <= 64");
	o.prune_m = 3;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL,
		  "needs cols (64) and blocksize (128) multiples of 3");
	o.prune_m = 8;
	o.blocksize = 12;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "multiples of 8");
	o.blocksize = 16;
	CHECK_OK(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e);
	x.out.mask = NULL;
	CHECK_ERR(mcb_gptq_prune(g, w, R, NULL, &o, &x.out, &e), &e, MCB_EINVAL, "needs the w and mask");
	x.out.mask = x.mask;
	run_free(&x);
out:
	mcb_gptq_free(g);
	mcb_gptq_free(ga);
	free(w);
	free(h);
	free(bad);
}

int main(void)
{
	RUN(test_hinv);
	RUN(test_quantizer_contract);
	RUN(test_diagonal_is_rtn);
	RUN(test_beats_rtn);
	RUN(test_threads_deterministic);
	RUN(test_shared_hessian);
	RUN(test_retry);
	RUN(test_sparsegpt_props);
	RUN(test_errors);
	RUN(test_python_gptq);
	RUN(test_python_sparsegpt);
	return mcbt_done();
}
