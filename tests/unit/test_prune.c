/*
 * Unit tests for prune: the tie rule on hand-made rows; Wanda and magnitude
 * masks against tests/compat/prune_ref.py (NumPy, stable argsort) exactly, on
 * random data with many ties; exact sparsity per row / per layer / per n:m
 * group; structured scores, rankings and kept index lists against NumPy;
 * hostile input.
 *
 * The NumPy cross-checks need a python3 that imports numpy ($MCB_PYTHON, else
 * python3, else /usr/bin/python3); without one they are SKIPPED loudly.  Run
 * from the repository root (make unit does).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/prune.h"
#include "mcb/rng.h"

static struct mcb_rng rng;

static double gauss(void)
{
	return mcbt_gauss(&rng);
}

/* Gaussian values; with coarse, rounded to multiples of 1/8 (many ties,
 * zeros and negative zeros). */
static void fill(float *x, int64_t n, int coarse)
{
	for (int64_t i = 0; i < n; i++) {
		double v = gauss();

		x[i] = coarse ? (float)(nearbyint(v * 8) / 8) : (float)v;
	}
}

/* ---- the NumPy reference ---- */

static const char *need_python(void)
{
	return mcbt_python("tests/compat/prune_ref.py");
}

static int ref(const char *py, const char *cmd, const char *dir)
{
	char buf[8600], line[256];
	FILE *f;
	int ok;

	snprintf(buf, sizeof(buf), "%s tests/compat/prune_ref.py %s '%s'", py, cmd, dir);
	f = popen(buf, "r");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot run %s", buf);
		return -1;
	}
	ok = fgets(line, (int)sizeof(line), f) != NULL;
	if (pclose(f) != 0 || !ok) {
		mcbt_fail(__FILE__, __LINE__, "%s failed (run from the repository root)", buf);
		return -1;
	}
	return 0;
}

/* ---- hand-made cases ---- */

static void test_tie_rule(void)
{
	struct mcb_prune_pattern p = {0.5, 0, 0};
	struct mcb_errctx e;
	const float ones[6] = {1, 1, 1, 1, 1, 1};
	const float w[6] = {1, -1, 1, 1, 0.5f, 2};
	const float w2[8] = {3, 1, -1, 2, 0.0f, -0.0f, 5, 5};
	const float w3[8] = {1, 1, 1, 1, 1, 1, 1, 1};
	uint8_t mask[8];
	float out[8];

	/* unstructured, k = 3: 0.5 first, then the tied 1s in index order */
	CHECK_OK(mcb_prune_wanda(w, 1, 6, ones, &p, mask, out, &e), &e);
	CHECK(mask[0] == 0 && mask[1] == 0 && mask[2] == 1 && mask[3] == 1 && mask[4] == 0 &&
	      mask[5] == 1);
	CHECK(out[0] == 0 && out[2] == 1 && out[5] == 2 && !signbit(out[1]));
	/* 2:4: |1| and |-1| tie (pruned 1, 2), then +0 and -0 tie (4, 5) */
	p.n = 2, p.m = 4;
	CHECK_OK(mcb_prune_magnitude(w2, 1, 8, &p, mask, out, &e), &e);
	CHECK(mask[0] == 1 && mask[1] == 0 && mask[2] == 0 && mask[3] == 1);
	CHECK(mask[4] == 0 && mask[5] == 0 && mask[6] == 1 && mask[7] == 1);
	CHECK(!signbit(out[5]));
	/* per layer over 2 x 4 equal weights, k = floor(8 * 0.3) = 2: flat 0 and 1 */
	p.m = 0, p.n = 0, p.sparsity = 0.3;
	CHECK_OK(mcb_prune_magnitude(w3, 2, 4, &p, mask, out, &e), &e);
	CHECK(mask[0] == 0 && mask[1] == 0 && mask[2] && mask[3] && mask[4] && mask[7]);
	/* p = 0 prunes nothing (Wanda's `<= sort[0]` would prune one weight) */
	p.sparsity = 0;
	CHECK_OK(mcb_prune_magnitude(w3, 2, 4, &p, mask, out, &e), &e);
	for (int i = 0; i < 8; i++)
		CHECK(mask[i] == 1);
	/* generic scores with negative values: the most negative goes first */
	{
		const float s[4] = {-3, 2, -INFINITY, 0};

		p.sparsity = 0.5;
		CHECK_OK(mcb_prune_mask(s, 1, 4, &p, 0, mask, &e), &e);
		CHECK(mask[0] == 0 && mask[1] == 1 && mask[2] == 0 && mask[3] == 1);
	}
}

static void test_wanda_norm(void)
{
	struct mcb_errctx e;
	const float sumsq[3] = {4, 0, 9};
	float norm[3];

	CHECK_OK(mcb_prune_wanda_norm(sumsq, 3, 4, norm, &e), &e);
	CHECK(norm[0] == 1.0f && norm[1] == 0.0f && norm[2] == 1.5f);
	/* the sqrt is taken in double: sqrt(2/3) rounded once */
	CHECK_OK(mcb_prune_wanda_norm((const float[1]){2}, 1, 3, norm, &e), &e);
	CHECK(norm[0] == (float)sqrt(2.0 / 3.0));
}

/* ---- masks against NumPy, exact sparsity ---- */

static const struct mcb_prune_pattern patterns[] = {
	{0, 0, 0}, {0.25, 0, 0}, {0.5, 0, 0}, {0.77, 0, 0}, {0.999, 0, 0}, {0, 2, 4},
	{0, 1, 4}, {0, 4, 8},	 {0, 3, 32},  {0, 16, 32},  {0, 7, 16},	   {0, 1, 2},
};

/* Every row / group has exactly the pruned count; out = w * mask. */
static void check_counts(const float *w, const uint8_t *mask, const float *out, int64_t rows,
			 int64_t cols, const struct mcb_prune_pattern *p, int per_layer)
{
	int64_t r, j, g, total = 0, bad = 0;

	for (j = 0; j < rows * cols; j++) {
		total += !mask[j];
		bad += out[j] != (mask[j] ? w[j] : 0.0f) || (!mask[j] && signbit(out[j]));
	}
	if (bad)
		mcbt_fail(__FILE__, __LINE__, "%lld masked weights wrong", (long long)bad);
	if (per_layer) {
		CHECK_EQ(total, (int64_t)((double)(rows * cols) * p->sparsity));
		return;
	}
	for (r = 0; r < rows; r++) {
		if (p->m) {
			for (g = 0; g < cols; g += p->m) {
				int64_t z = 0;

				for (j = g; j < g + p->m; j++)
					z += !mask[r * cols + j];
				bad += z != p->n;
			}
		} else {
			int64_t z = 0;

			for (j = 0; j < cols; j++)
				z += !mask[r * cols + j];
			bad += z != (int64_t)((double)cols * p->sparsity);
		}
	}
	if (bad)
		mcbt_fail(__FILE__, __LINE__,
			  "%lld rows/groups with the wrong count (n %d m %d p %g)", (long long)bad,
			  p->n, p->m, p->sparsity);
}

static void run_masks(int magnitude)
{
	enum { R = 33, C = 96, NP = sizeof(patterns) / sizeof(patterns[0]) };
	const char *py = need_python(), *dir;
	struct mcb_errctx e;
	float *w = mcb_xcalloc(R * C, sizeof(float)), *out = mcb_xcalloc(R * C, sizeof(float)), norm[C];
	uint8_t *mask = mcb_xcalloc(NP * R * C, 1), *rmask = mcb_xcalloc(R * C, 1);
	char cases[2048], name[32];
	size_t k, len;
	int coarse, j;

	for (coarse = 0; coarse < 2; coarse++) {
		fill(w, R * C, coarse);
		for (j = 0; j < C; j++)
			norm[j] = j % 11 == 0 ? 0.0f : (float)fabs(gauss()) * (j % 5 == 0 ? 10 : 1);
		if (coarse)
			for (j = 0; j < C; j++)
				norm[j] = j % 11 == 0 ? 0.0f : (float)(1 + j % 3);
		len = 0;
		for (k = 0; k < NP; k++) {
			const struct mcb_prune_pattern *p = &patterns[k];
			uint8_t *mk = mask + k * R * C;

			if (magnitude)
				CHECK_OK(mcb_prune_magnitude(w, R, C, p, mk, out, &e), &e);
			else
				CHECK_OK(mcb_prune_wanda(w, R, C, norm, p, mk, out, &e), &e);
			check_counts(w, mk, out, R, C, p, magnitude && !p->m);
			len += (size_t)snprintf(cases + len, sizeof(cases) - len,
						"%s{\"p\": %.17g, \"n\": %d, \"m\": %d}",
						k ? ", " : "", p->sparsity, p->n, p->m);
		}
		if (!py)
			continue;
		dir = mcbt_tmpdir();
		mcbt_put(dir, "w.f32", w, sizeof(float) * R * C);
		mcbt_put(dir, "norm.f32", norm, sizeof(norm));
		mcbt_put_args(dir, "{\"rows\": %d, \"cols\": %d, \"cases\": [%s]}", R, C, cases);
		if (ref(py, magnitude ? "magnitude" : "wanda", dir))
			goto out;
		for (k = 0; k < NP; k++) {
			const struct mcb_prune_pattern *p = &patterns[k];

			snprintf(name, sizeof(name), "mask%zu.u8", k);
			if (mcbt_get(dir, name, rmask, R * C))
				goto out;
			if (memcmp(mask + k * R * C, rmask, R * C) != 0)
				mcbt_fail(__FILE__, __LINE__,
					  "%s mask (n %d m %d p %g, coarse %d) differs from numpy",
					  magnitude ? "magnitude" : "wanda", p->n, p->m,
					  p->sparsity, coarse);
		}
	}
out:
	free(w);
	free(out);
	free(mask);
	free(rmask);
}

static void test_wanda_numpy(void)
{
	mcb_rng_seed(&rng, 17);
	run_masks(0);
}

static void test_magnitude_numpy(void)
{
	mcb_rng_seed(&rng, 18);
	run_masks(1);
}

/* Larger layers: exact counts, in place; and a timing line. */
static void test_sparsity_large(void)
{
	enum { R = 512, C = 2048 };
	struct mcb_prune_pattern p50 = {0.5, 0, 0}, p24 = {0, 2, 4}, p3 = {0.3, 0, 0};
	struct mcb_errctx e;
	float *w = mcb_xcalloc((size_t)R * C, sizeof(float)),
	      *w2 = mcb_xcalloc((size_t)R * C, sizeof(float)), *norm = mcb_xcalloc(C, sizeof(float));
	uint8_t *mask = mcb_xcalloc((size_t)R * C, 1);
	clock_t t0;
	int64_t j;

	mcb_rng_seed(&rng, 19);
	fill(w, (int64_t)R * C, 0);
	for (j = 0; j < C; j++)
		norm[j] = (float)fabs(gauss());
	t0 = clock();
	memcpy(w2, w, sizeof(float) * (size_t)R * C);
	CHECK_OK(mcb_prune_wanda(w2, R, C, norm, &p50, mask, w2, &e), &e);
	check_counts(w, mask, w2, R, C, &p50, 0);
	memcpy(w2, w, sizeof(float) * (size_t)R * C);
	CHECK_OK(mcb_prune_wanda(w2, R, C, norm, &p24, mask, w2, &e), &e);
	check_counts(w, mask, w2, R, C, &p24, 0);
	memcpy(w2, w, sizeof(float) * (size_t)R * C);
	CHECK_OK(mcb_prune_magnitude(w2, R, C, &p3, mask, w2, &e), &e);
	check_counts(w, mask, w2, R, C, &p3, 1);
	fprintf(stderr, "  wanda 50%%, wanda 2:4, magnitude 30%% on %dx%d: %.2f s\n", R, C,
		(double)(clock() - t0) / CLOCKS_PER_SEC);
	free(w);
	free(w2);
	free(norm);
	free(mask);
}

/* ---- structured ---- */

static void test_heads_numpy(void)
{
	enum { DIM = 48, NH = 8, NKV = 2, HD = 6, QD = NH * HD, KVD = NKV * HD, KEEP = 1 };
	const char *py = need_python(), *dir;
	struct mcb_prune_attn a;
	struct mcb_errctx e;
	float wq[QD * DIM], wk[KVD * DIM], wv[KVD * DIM], wo[DIM * QD], nx[DIM], no[QD];
	double score[NKV], rscore[NKV];
	int64_t order[NKV], rorder[NKV], keep[KEEP], rkeep[KEEP], q_rows[KEEP * QD / NKV],
		kv_rows[KEEP * HD], rq[KEEP * QD / NKV], rkv[KEEP * HD];
	int i;

	mcb_rng_seed(&rng, 23);
	fill(wq, QD * DIM, 0);
	fill(wk, KVD * DIM, 0);
	fill(wv, KVD * DIM, 0);
	fill(wo, DIM * QD, 0);
	for (i = 0; i < QD * DIM / 2; i++)
		wq[QD * DIM / 2 + i] *= 1.5f; /* group 1 matters more */
	for (i = 0; i < DIM; i++)
		nx[i] = (float)fabs(gauss());
	for (i = 0; i < QD; i++)
		no[i] = (float)fabs(gauss());
	a.dim = DIM, a.n_heads = NH, a.n_kv_heads = NKV, a.head_dim = HD;
	a.wq = wq, a.wk = wk, a.wv = wv, a.wo = wo, a.norm_x = nx, a.norm_o = no;
	CHECK_OK(mcb_prune_head_scores(&a, score, &e), &e);
	CHECK_OK(mcb_prune_rank(score, NKV, order, &e), &e);
	CHECK_OK(mcb_prune_keep(score, NKV, KEEP, keep, &e), &e);
	CHECK_OK(mcb_prune_head_index(NH, NKV, HD, keep, KEEP, q_rows, kv_rows, &e), &e);
	CHECK_EQ(keep[0], 1);
	CHECK_EQ(q_rows[0], 24);
	CHECK_EQ(q_rows[23], 47);
	CHECK_EQ(kv_rows[0], 6);
	CHECK_EQ(kv_rows[5], 11);
	if (!py)
		return;
	dir = mcbt_tmpdir();
	mcbt_put(dir, "wq.f32", wq, sizeof(wq));
	mcbt_put(dir, "wk.f32", wk, sizeof(wk));
	mcbt_put(dir, "wv.f32", wv, sizeof(wv));
	mcbt_put(dir, "wo.f32", wo, sizeof(wo));
	mcbt_put(dir, "norm_x.f32", nx, sizeof(nx));
	mcbt_put(dir, "norm_o.f32", no, sizeof(no));
	mcbt_put_args(dir,
		 "{\"dim\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, \"head_dim\": %d, "
		 "\"keep\": %d}",
		 DIM, NH, NKV, HD, KEEP);
	if (ref(py, "heads", dir) || mcbt_get(dir, "score.f64", rscore, sizeof(rscore)) ||
	    mcbt_get(dir, "order.i64", rorder, sizeof(rorder)) ||
	    mcbt_get(dir, "keep.i64", rkeep, sizeof(rkeep)) || mcbt_get(dir, "q_rows.i64", rq, sizeof(rq)) ||
	    mcbt_get(dir, "kv_rows.i64", rkv, sizeof(rkv)))
		return;
	for (i = 0; i < NKV; i++)
		if (fabs(score[i] - rscore[i]) > 1e-12 * fabs(rscore[i]))
			mcbt_fail(__FILE__, __LINE__, "head score %d: %.17g vs numpy %.17g", i,
				  score[i], rscore[i]);
	CHECK(memcmp(order, rorder, sizeof(order)) == 0);
	CHECK(memcmp(keep, rkeep, sizeof(keep)) == 0);
	CHECK(memcmp(q_rows, rq, sizeof(rq)) == 0);
	CHECK(memcmp(kv_rows, rkv, sizeof(rkv)) == 0);
}

/* GQA with 4 kv groups of 2 query heads, keep 3; MHA (G = 1). */
static void test_heads_more(void)
{
	enum { DIM = 16, HD = 2 };
	static const struct {
		int nh, nkv, keep;
	} cases[] = {{8, 4, 3}, {4, 4, 2}, {6, 1, 1}};
	const char *py = need_python(), *dir;
	struct mcb_errctx e;
	size_t k;

	mcb_rng_seed(&rng, 29);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int nh = cases[k].nh, nkv = cases[k].nkv, keep = cases[k].keep, i;
		int qd = nh * HD, kvd = nkv * HD, nq = keep * (nh / nkv) * HD;
		float *wq = mcb_xcalloc((size_t)qd * DIM, 4), *wk = mcb_xcalloc((size_t)kvd * DIM, 4),
		      *wv = mcb_xcalloc((size_t)kvd * DIM, 4), *wo = mcb_xcalloc((size_t)DIM * qd, 4),
		      *nx = mcb_xcalloc(DIM, 4), *no = mcb_xcalloc((size_t)qd, 4);
		double *score = mcb_xcalloc((size_t)nkv, 8), *rscore = mcb_xcalloc((size_t)nkv, 8);
		int64_t *kp = mcb_xcalloc((size_t)keep, 8), *rkp = mcb_xcalloc((size_t)keep, 8),
			*qr = mcb_xcalloc((size_t)nq, 8), *kr = mcb_xcalloc((size_t)keep * HD, 8),
			*rqr = mcb_xcalloc((size_t)nq, 8), *rkr = mcb_xcalloc((size_t)keep * HD, 8);
		struct mcb_prune_attn a = {DIM, nh, nkv, HD, wq, wk, wv, wo, nx, no};

		fill(wq, qd * DIM, 0);
		fill(wk, kvd * DIM, 0);
		fill(wv, kvd * DIM, 0);
		fill(wo, DIM * qd, 0);
		for (i = 0; i < DIM; i++)
			nx[i] = (float)fabs(gauss());
		for (i = 0; i < qd; i++)
			no[i] = (float)fabs(gauss());
		CHECK_OK(mcb_prune_head_scores(&a, score, &e), &e);
		CHECK_OK(mcb_prune_keep(score, nkv, keep, kp, &e), &e);
		CHECK_OK(mcb_prune_head_index(nh, nkv, HD, kp, keep, qr, kr, &e), &e);
		if (py) {
			dir = mcbt_tmpdir();
			mcbt_put(dir, "wq.f32", wq, (size_t)qd * DIM * 4);
			mcbt_put(dir, "wk.f32", wk, (size_t)kvd * DIM * 4);
			mcbt_put(dir, "wv.f32", wv, (size_t)kvd * DIM * 4);
			mcbt_put(dir, "wo.f32", wo, (size_t)DIM * qd * 4);
			mcbt_put(dir, "norm_x.f32", nx, DIM * 4);
			mcbt_put(dir, "norm_o.f32", no, (size_t)qd * 4);
			mcbt_put_args(dir,
				 "{\"dim\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, "
				 "\"head_dim\": %d, \"keep\": %d}",
				 DIM, nh, nkv, HD, keep);
			if (!ref(py, "heads", dir) &&
			    !mcbt_get(dir, "score.f64", rscore, (size_t)nkv * 8) &&
			    !mcbt_get(dir, "keep.i64", rkp, (size_t)keep * 8) &&
			    !mcbt_get(dir, "q_rows.i64", rqr, (size_t)nq * 8) &&
			    !mcbt_get(dir, "kv_rows.i64", rkr, (size_t)keep * HD * 8)) {
				for (i = 0; i < nkv; i++)
					CHECK(fabs(score[i] - rscore[i]) <= 1e-12 * rscore[i]);
				CHECK(memcmp(kp, rkp, (size_t)keep * 8) == 0);
				CHECK(memcmp(qr, rqr, (size_t)nq * 8) == 0);
				CHECK(memcmp(kr, rkr, (size_t)keep * HD * 8) == 0);
			}
		}
		free(wq), free(wk), free(wv), free(wo), free(nx), free(no);
		free(score), free(rscore), free(kp), free(rkp), free(qr), free(kr), free(rqr),
			free(rkr);
	}
}

static void test_ffn_numpy(void)
{
	enum { DIM = 40, H = 100, KEEP = 37 };
	const char *py = need_python(), *dir;
	struct mcb_prune_ffn f;
	struct mcb_errctx e;
	float gate[H * DIM], up[H * DIM], down[DIM * H], nx[DIM], nh[H];
	double score[H], rscore[H];
	int64_t order[H], rorder[H], keep[KEEP], rkeep[KEEP];
	int i, gated;

	mcb_rng_seed(&rng, 31);
	fill(gate, H * DIM, 0);
	fill(up, H * DIM, 0);
	fill(down, DIM * H, 0);
	for (i = 0; i < DIM; i++)
		nx[i] = (float)fabs(gauss());
	for (i = 0; i < H; i++)
		nh[i] = (float)fabs(gauss()) * (i % 7 == 0 ? 5.0f : 1.0f);
	for (gated = 0; gated < 2; gated++) {
		f.dim = DIM, f.hidden = H, f.w_gate = gated ? gate : NULL, f.w_up = up;
		f.w_down = down, f.norm_x = nx, f.norm_h = nh;
		CHECK_OK(mcb_prune_ffn_scores(&f, score, &e), &e);
		CHECK_OK(mcb_prune_rank(score, H, order, &e), &e);
		CHECK_OK(mcb_prune_keep(score, H, KEEP, keep, &e), &e);
		for (i = 1; i < KEEP; i++)
			CHECK(keep[i] > keep[i - 1]);
		for (i = 1; i < H; i++)
			CHECK(score[order[i]] <= score[order[i - 1]]);
		if (!py)
			continue;
		dir = mcbt_tmpdir();
		mcbt_put(dir, "gate.f32", gate, sizeof(gate));
		mcbt_put(dir, "up.f32", up, sizeof(up));
		mcbt_put(dir, "down.f32", down, sizeof(down));
		mcbt_put(dir, "norm_x.f32", nx, sizeof(nx));
		mcbt_put(dir, "norm_h.f32", nh, sizeof(nh));
		mcbt_put_args(dir, "{\"dim\": %d, \"hidden\": %d, \"gated\": %d, \"keep\": %d}", DIM, H,
			 gated, KEEP);
		if (ref(py, "ffn", dir) || mcbt_get(dir, "score.f64", rscore, sizeof(rscore)) ||
		    mcbt_get(dir, "order.i64", rorder, sizeof(rorder)) ||
		    mcbt_get(dir, "keep.i64", rkeep, sizeof(rkeep)))
			return;
		for (i = 0; i < H; i++)
			if (fabs(score[i] - rscore[i]) > 1e-12 * fabs(rscore[i]))
				mcbt_fail(__FILE__, __LINE__, "channel score %d: %.17g vs %.17g", i,
					  score[i], rscore[i]);
		CHECK(memcmp(order, rorder, sizeof(order)) == 0);
		CHECK(memcmp(keep, rkeep, sizeof(keep)) == 0);
	}
}

static void test_rank_ties(void)
{
	const double s[8] = {3, 1, 3, 2, 1, 3, -0.0, 0.0};
	const int64_t want[8] = {0, 2, 5, 3, 1, 4, 6, 7}, want_keep[4] = {0, 2, 3, 5};
	const char *py = need_python(), *dir;
	struct mcb_errctx e;
	int64_t order[8], keep[4], rorder[8], rkeep[4];

	CHECK_OK(mcb_prune_rank(s, 8, order, &e), &e);
	CHECK(memcmp(order, want, sizeof(want)) == 0);
	CHECK_OK(mcb_prune_keep(s, 8, 4, keep, &e), &e);
	CHECK(memcmp(keep, want_keep, sizeof(want_keep)) == 0);
	CHECK_OK(mcb_prune_keep(s, 8, 0, keep, &e), &e);
	if (!py)
		return;
	dir = mcbt_tmpdir();
	mcbt_put(dir, "score.f64", s, sizeof(s));
	mcbt_put_args(dir, "{\"n\": 8, \"keep\": 4}");
	if (ref(py, "rank", dir) || mcbt_get(dir, "order.i64", rorder, sizeof(rorder)) ||
	    mcbt_get(dir, "keep.i64", rkeep, sizeof(rkeep)))
		return;
	CHECK(memcmp(order, rorder, sizeof(order)) == 0);
	CHECK(memcmp(keep, rkeep, sizeof(keep)) == 0);
}

/* ---- hostile input ---- */

static void test_hostile(void)
{
	struct mcb_prune_pattern p = {0.5, 0, 0};
	struct mcb_errctx e;
	float w[16], norm[8], out[16];
	double s[4] = {1, 2, 3, 4};
	float sumsq[2] = {1, 2};
	int64_t idx[8], rows[8];
	uint8_t mask[16];
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (float)i - 7.5f;
	for (i = 0; i < 8; i++)
		norm[i] = 1;

	p.sparsity = 1.0;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_ERANGE,
		  "sparsity 1 is not in [0, 1)");
	p.sparsity = -0.1;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_ERANGE, "sparsity -0.1");
	p.sparsity = NAN;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_ERANGE, "sparsity");
	p.sparsity = 0.5;
	p.n = 5, p.m = 4;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_EINVAL, "5:4");
	p.n = 4, p.m = 4;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_EINVAL, "1 <= n < m");
	p.n = 0, p.m = 4;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_EINVAL, "0:4");
	p.n = 2, p.m = 3;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_EINVAL,
		  "do not divide the 8 input columns");
	p.n = 1, p.m = -2;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_EINVAL, "negative");
	p.n = 2, p.m = 4;
	CHECK_ERR(mcb_prune_mask(w, 2, 8, &p, 1, mask, &e), &e, MCB_EINVAL, "unstructured only");
	CHECK_ERR(mcb_prune_wanda(w, 0, 8, norm, &p, mask, out, &e), &e, MCB_EINVAL, "empty");
	p.n = 0, p.m = 0;

	w[11] = NAN;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_ERANGE, "weight[11]");
	CHECK_ERR(mcb_prune_mask(w, 2, 8, &p, 0, mask, &e), &e, MCB_ERANGE, "score[11] is NaN");
	w[11] = -INFINITY;
	CHECK_ERR(mcb_prune_magnitude(w, 2, 8, &p, mask, out, &e), &e, MCB_ERANGE, "weight[11]");
	CHECK_OK(mcb_prune_mask(w, 2, 8, &p, 0, mask, &e), &e); /* infinite scores are ordered */
	CHECK_EQ(mask[11], 0);
	w[11] = 1;
	norm[3] = -1;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_ERANGE,
		  "norm[3] = -1 is negative");
	norm[3] = NAN;
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e, MCB_ERANGE, "norm[3]");
	CHECK_ERR(mcb_prune_wanda(w, 2, 8, NULL, &p, mask, out, &e), &e, MCB_EINVAL, "no norm");
	norm[3] = 1;

	CHECK_ERR(mcb_prune_wanda_norm(sumsq, 2, 0, norm, &e), &e, MCB_ERANGE, "sequence count");
	sumsq[1] = -1;
	CHECK_ERR(mcb_prune_wanda_norm(sumsq, 2, 3, norm, &e), &e, MCB_ERANGE, "sum x^2 [1]");

	s[2] = NAN;
	CHECK_ERR(mcb_prune_rank(s, 4, idx, &e), &e, MCB_ERANGE, "score[2] is NaN");
	s[2] = 3;
	CHECK_ERR(mcb_prune_keep(s, 4, 5, idx, &e), &e, MCB_EINVAL, "cannot keep 5 of 4");
	CHECK_ERR(mcb_prune_keep(s, 4, -1, idx, &e), &e, MCB_EINVAL, "cannot keep -1");
	{
		struct mcb_prune_attn a = {8, 6, 4, 2, w, w, w, w, norm, norm};
		struct mcb_prune_ffn f = {8, 2, NULL, w, w, norm, norm};
		const int64_t bad_order[2] = {1, 0}, bad_range[1] = {4};

		CHECK_ERR(mcb_prune_head_scores(&a, s, &e), &e, MCB_EINVAL,
			  "6 query heads are not a multiple of 4 kv heads");
		CHECK_ERR(mcb_prune_head_index(6, 4, 2, bad_order, 2, idx, rows, &e), &e,
			  MCB_EINVAL, "not a multiple");
		CHECK_ERR(mcb_prune_head_index(8, 4, 2, bad_order, 2, idx, rows, &e), &e,
			  MCB_EINVAL, "out of order");
		CHECK_ERR(mcb_prune_head_index(8, 4, 2, bad_range, 1, idx, rows, &e), &e,
			  MCB_EINVAL, "out of range");
		w[9] = INFINITY;
		CHECK_ERR(mcb_prune_ffn_scores(&f, s, &e), &e, MCB_ERANGE, "up weight[9]");
		w[9] = 1;
		f.norm_h = NULL;
		CHECK_ERR(mcb_prune_ffn_scores(&f, s, &e), &e, MCB_EINVAL, "no norm_h");
	}

	/* zero rows: every score 0, the lowest indices go first */
	memset(w, 0, sizeof(w));
	p.sparsity = 0.25;
	CHECK_OK(mcb_prune_wanda(w, 2, 8, norm, &p, mask, out, &e), &e);
	CHECK(mask[0] == 0 && mask[1] == 0 && mask[2] == 1 && mask[8] == 0 && mask[9] == 0 &&
	      mask[10] == 1);
}

int main(void)
{
	RUN(test_tie_rule);
	RUN(test_wanda_norm);
	RUN(test_wanda_numpy);
	RUN(test_magnitude_numpy);
	RUN(test_sparsity_large);
	RUN(test_heads_numpy);
	RUN(test_heads_more);
	RUN(test_ffn_numpy);
	RUN(test_rank_ties);
	RUN(test_hostile);
	return mcbt_done();
}
