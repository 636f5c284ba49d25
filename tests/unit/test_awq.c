/*
 * Unit tests for awq: the AWQ quantizer on hand-derived groups; every
 * function against tests/compat/awq_ref.py (NumPy, written from AutoAWQ's and
 * SmoothQuant's published code) on random data: quantizer codes, scales and
 * zeros exactly, the scale search's chosen grid index exactly and its scales
 * and losses to rounding, the clip search's bounds exactly, SmoothQuant's
 * factors to rounding and its W8A8 codes exactly; the BLAS paths against the
 * scalar oracle; AWQ beating plain RTN on correlated data with activation
 * outliers; folding preserving the layer function within a derived bound;
 * hostile input.
 *
 * The NumPy cross-checks need a python3 that imports numpy ($MCB_PYTHON, else
 * python3, else /usr/bin/python3); without one they are SKIPPED loudly.  Run
 * from the repository root (make unit does).
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/awq.h"
#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/rng.h"

#define U24 0x1p-24

static struct mcb_rng rng;

static double gauss(void)
{
	return mcbt_gauss(&rng);
}

static float *fvec(int64_t n)
{
	float *p = calloc((size_t)n, sizeof(float));

	if (!p)
		abort();
	return p;
}

static void fill_gauss(float *x, int64_t n, double sd)
{
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)(gauss() * sd);
}

/*
 * Correlated inputs with activation outliers: X = G M + 0.1 noise, G (n, 8)
 * and M (8, cols) Gaussian, then nout channels (every cols/nout-th, offset 3)
 * multiplied by 25.  x_mean = mean |X| over the rows.
 */
static void make_inputs(float *x, float *x_mean, int64_t n, int64_t cols, int nout)
{
	enum { RANK = 8 };
	float *m = fvec(RANK * cols), g[RANK];
	int64_t t, j, k;

	fill_gauss(m, RANK * cols, 1.0);
	for (j = 0; j < cols; j++)
		x_mean[j] = 0;
	for (t = 0; t < n; t++) {
		for (k = 0; k < RANK; k++)
			g[k] = (float)gauss();
		for (j = 0; j < cols; j++) {
			double v = 0.1 * gauss();

			for (k = 0; k < RANK; k++)
				v += (double)g[k] * m[k * cols + j];
			if (nout && j % (cols / nout) == 3)
				v *= 25.0;
			x[t * cols + j] = (float)v;
		}
	}
	for (j = 0; j < cols; j++) {
		double s = 0;

		for (t = 0; t < n; t++)
			s += fabs(x[t * cols + j]);
		x_mean[j] = (float)(s / (double)n);
	}
	free(m);
}

/* ---- the NumPy reference ---- */

static const char *need_python(void)
{
	return mcbt_python("tests/compat/awq_ref.py");
}

/* Run awq_ref.py cmd on dir; 0 and its output line, or -1 after a failure. */
static int ref(const char *py, const char *cmd, const char *dir, char *line, size_t len)
{
	char buf[8600];
	FILE *f;
	int ok;

	snprintf(buf, sizeof(buf), "%s tests/compat/awq_ref.py %s '%s'", py, cmd, dir);
	f = popen(buf, "r");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot run %s", buf);
		return -1;
	}
	ok = fgets(line, (int)len, f) != NULL;
	if (pclose(f) != 0 || !ok) {
		mcbt_fail(__FILE__, __LINE__, "%s failed (run from the repository root)", buf);
		return -1;
	}
	return 0;
}

static int rel_close(double a, double b, double tol)
{
	return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) || a == b;
}

/* The loaded BLAS table, or NULL after a loud skip. */
static const struct mcb_blas *need_blas(void)
{
	struct mcb_errctx e;
	const struct mcb_blas *b = mcb_blas_get(&e);

	if (!b)
		mcbt_skip("OpenBLAS not loadable (%s): the BLAS paths were NOT tested", e.msg);
	return b;
}

/* ---- the quantizer ---- */

static void test_quantizer_hand(void)
{
	struct mcb_awq_params p;
	struct mcb_errctx e;
	/* group 0: range 3.75 -> scale 0.25, zero = -round(-5) = 5; 2.5 and 3.5
	   steps round half to even: 0.625 -> 2 + 5, 0.875 -> 4 + 5.
	   group 1: constant 3 -> scale 1e-5/15, zero clamp(-round(4.5e6)) = 0,
	   every code 15: AutoAWQ's quantizer maps a positive constant group to
	   15 * scale = 1e-5 (a property of the reference, kept). */
	const float w[8] = {-1.25f, 0.625f, 0.875f, 2.5f, 3, 3, 3, 3};
	const uint8_t want_q[8] = {0, 7, 9, 15, 15, 15, 15, 15};
	uint8_t q[8], z[2];
	float sc[2], deq[8];
	int i;

	mcb_awq_defaults(&p);
	p.group_size = 4;
	CHECK_OK(mcb_awq_quantize(&p, w, 1, 8, q, sc, z, &e), &e);
	for (i = 0; i < 8; i++)
		CHECK_EQ(q[i], want_q[i]);
	CHECK(sc[0] == 0.25f);
	CHECK_EQ(z[0], 5);
	CHECK(sc[1] == 1e-5f / 15.0f);
	CHECK_EQ(z[1], 0);
	CHECK_OK(mcb_awq_fake_quant(&p, w, 1, 8, deq, &e), &e);
	CHECK(deq[0] == -1.25f && deq[1] == 0.5f && deq[2] == 1.0f && deq[3] == 2.5f);
	CHECK(deq[4] == 15.0f * (1e-5f / 15.0f));
	/* one group per row, 8 bits, fp16 scales: scale = fp16(4.25 / 255) */
	p.group_size = 0;
	p.bits = 8;
	p.fp16_scale = 1;
	CHECK_OK(mcb_awq_quantize(&p, w, 1, 8, q, sc, z, &e), &e);
	CHECK(sc[0] != 4.25f / 255.0f);
	CHECK(fabsf(sc[0] - 4.25f / 255.0f) <= 4.25f / 255.0f * 0x1p-11f);
}

static void test_quantizer_numpy(void)
{
	enum { R = 37, C = 96 };
	static const struct {
		int bits;
		int64_t gs;
		int fp16;
	} cases[] = {{4, 32, 0}, {4, 0, 1}, {3, 48, 0}, {8, 96, 1}, {2, 16, 0}};
	const char *py = need_python(), *dir;
	struct mcb_awq_params p;
	struct mcb_errctx e;
	float *w = fvec(R * C), *deq = fvec(R * C), *rdeq = fvec(R * C), sc[R * 6], rsc[R * 6];
	uint8_t q[R * C], rq[R * C], z[R * 6], rz[R * 6];
	char line[256];
	size_t k, i, ng, bad;

	if (!py)
		goto out;
	mcb_rng_seed(&rng, 11);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		fill_gauss(w, R * C, 0.05);
		w[5] = 0.0f; /* a few structured values: ties at rounding, zeros */
		for (i = 0; i < C; i++)
			w[3 * C + i] = (float)(i % 7) * 0.125f - 0.25f;
		for (i = 0; i < C; i++)
			w[4 * C + i] = 0.0f;
		mcb_awq_defaults(&p);
		p.bits = cases[k].bits;
		p.group_size = cases[k].gs;
		p.fp16_scale = cases[k].fp16;
		ng = p.group_size ? C / (size_t)p.group_size : 1;
		CHECK_OK(mcb_awq_quantize(&p, w, R, C, q, sc, z, &e), &e);
		CHECK_OK(mcb_awq_fake_quant(&p, w, R, C, deq, &e), &e);
		dir = mcbt_tmpdir();
		mcbt_put(dir, "w.f32", w, sizeof(float) * R * C);
		mcbt_put_args(dir,
			 "{\"rows\": %d, \"cols\": %d, \"bits\": %d, \"group_size\": %d, "
			 "\"fp16\": %d}",
			 R, C, p.bits, (int)p.group_size, p.fp16_scale);
		if (ref(py, "quant", dir, line, sizeof(line)) || mcbt_get(dir, "q.u8", rq, R * C) ||
		    mcbt_get(dir, "scale.f32", rsc, sizeof(float) * R * ng) ||
		    mcbt_get(dir, "zero.u8", rz, R * ng) ||
		    mcbt_get(dir, "deq.f32", rdeq, sizeof(float) * R * C))
			break;
		bad = 0;
		for (i = 0; i < (size_t)R * C; i++)
			bad += q[i] != rq[i] || memcmp(&deq[i], &rdeq[i], sizeof(float)) != 0;
		for (i = 0; i < R * ng; i++)
			bad += memcmp(&sc[i], &rsc[i], sizeof(float)) != 0 || z[i] != rz[i];
		if (bad)
			mcbt_fail(__FILE__, __LINE__,
				  "case %zu (bits %d, gs %d, fp16 %d): %zu values "
				  "differ from numpy",
				  k, p.bits, (int)p.group_size, p.fp16_scale, bad);
		/* the codes dequantize (qtensor.h) to the fake-quantized values */
		for (i = 0; i < (size_t)R * C; i++) {
			size_t g =
				(i / C) * ng + (i % C) / (p.group_size ? (size_t)p.group_size : C);

			if ((float)(q[i] - z[g]) * sc[g] != deq[i]) {
				mcbt_fail(__FILE__, __LINE__, "dequantized code %zu", i);
				break;
			}
		}
	}
out:
	free(w);
	free(deq);
	free(rdeq);
}

/* ---- scale search ---- */

struct search_case {
	int nl;
	int64_t rows[3];
	int64_t cols, n, gs;
	int bits, fp16, duo, n_grid, nout;
};

static void run_search_case(const char *py, const struct search_case *c,
			    const struct mcb_blas *blas)
{
	struct mcb_awq_linear l[3];
	struct mcb_awq_params p;
	struct mcb_errctx e;
	float *w[3], *x = fvec(c->n * c->cols), *xm = fvec(c->cols), *s = fvec(c->cols),
		     *sb = fvec(c->cols), *rs = fvec(c->cols);
	double loss[32], lossb[32], rloss[32], *wm = calloc((size_t)c->cols, sizeof(double)),
					       *rwm = calloc((size_t)c->cols, sizeof(double)), rtn,
					       rrtn;
	char line[256], path[64], rows_json[64];
	const char *dir = mcbt_tmpdir();
	int i, best, bestb, rbest, len = 0;
	int64_t j;

	make_inputs(x, xm, c->n, c->cols, c->nout);
	for (i = 0; i < c->nl; i++) {
		w[i] = fvec(c->rows[i] * c->cols);
		fill_gauss(w[i], c->rows[i] * c->cols, 0.02);
		l[i].w = w[i];
		l[i].rows = c->rows[i];
		snprintf(path, sizeof(path), "w%d.f32", i);
		mcbt_put(dir, path, w[i], sizeof(float) * (size_t)(c->rows[i] * c->cols));
		len += snprintf(rows_json + len, sizeof(rows_json) - (size_t)len, "%s%d",
				i ? ", " : "", (int)c->rows[i]);
	}
	mcb_awq_defaults(&p);
	p.bits = c->bits;
	p.group_size = c->gs;
	p.fp16_scale = c->fp16;
	p.duo_scaling = c->duo;
	p.n_grid = c->n_grid;
	CHECK_OK(mcb_awq_search_scale(&p, l, c->nl, c->cols, xm, x, c->n, NULL, s, &best, loss, &e),
		 &e);
	CHECK_OK(mcb_awq_w_mean(&p, l, c->nl, c->cols, wm, &e), &e);
	CHECK_OK(mcb_awq_loss(&p, l, c->nl, c->cols, NULL, x, c->n, NULL, &rtn, &e), &e);
	fprintf(stderr,
		"  %d layers, cols %d, gs %d, bits %d, fp16 %d, duo %d: best ratio %d/%d, "
		"loss %.4g (rtn %.4g)\n",
		c->nl, (int)c->cols, (int)c->gs, c->bits, c->fp16, c->duo, best, c->n_grid,
		loss[best], rtn);
	if (blas) {
		/* the BLAS path agrees with the oracle to sgemm rounding */
		CHECK_OK(mcb_awq_search_scale(&p, l, c->nl, c->cols, xm, x, c->n, blas, sb, &bestb,
					      lossb, &e),
			 &e);
		CHECK_EQ(bestb, best);
		for (i = 0; i < c->n_grid; i++)
			if (!rel_close(lossb[i], loss[i], 1e-4))
				mcbt_fail(__FILE__, __LINE__, "blas loss[%d] %.9g vs %.9g", i,
					  lossb[i], loss[i]);
		CHECK(memcmp(s, sb, sizeof(float) * (size_t)c->cols) == 0);
	}
	if (!py)
		goto out;
	mcbt_put(dir, "x.f32", x, sizeof(float) * (size_t)(c->n * c->cols));
	mcbt_put(dir, "x_mean.f32", xm, sizeof(float) * (size_t)c->cols);
	mcbt_put_args(dir,
		 "{\"cols\": %d, \"layers\": [%s], \"n\": %d, \"bits\": %d, \"group_size\": %d, "
		 "\"fp16\": %d, \"duo\": %d, \"n_grid\": %d}",
		 (int)c->cols, rows_json, (int)c->n, c->bits, (int)c->gs, c->fp16, c->duo,
		 c->n_grid);
	if (ref(py, "scale", dir, line, sizeof(line)) ||
	    mcbt_get(dir, "s.f32", rs, sizeof(float) * (size_t)c->cols) ||
	    mcbt_get(dir, "loss.f64", rloss, sizeof(double) * (size_t)c->n_grid) ||
	    mcbt_get(dir, "wmean.f64", rwm, sizeof(double) * (size_t)c->cols) ||
	    mcbt_get(dir, "rtn.f64", &rrtn, sizeof(double)))
		goto out;
	rbest = atoi(line);
	CHECK_EQ(best, rbest);
	for (j = 0; j < c->cols; j++) {
		if (!rel_close(wm[j], rwm[j], 1e-12))
			mcbt_fail(__FILE__, __LINE__, "w_mean[%d] %.17g vs numpy %.17g", (int)j,
				  wm[j], rwm[j]);
		if (!rel_close(s[j], rs[j], 2 * U24))
			mcbt_fail(__FILE__, __LINE__, "s[%d] %.9g vs numpy %.9g", (int)j, s[j],
				  rs[j]);
	}
	for (i = 0; i < c->n_grid; i++)
		if (!rel_close(loss[i], rloss[i], 1e-9))
			mcbt_fail(__FILE__, __LINE__, "loss[%d] %.17g vs numpy %.17g", i, loss[i],
				  rloss[i]);
	CHECK(rel_close(rtn, rrtn, 1e-9));
out:
	for (i = 0; i < c->nl; i++)
		free(w[i]);
	free(x);
	free(xm);
	free(s);
	free(sb);
	free(rs);
	free(wm);
	free(rwm);
}

static void test_scale_search_numpy(void)
{
	static const struct search_case cases[] = {
		/* q, k, v with GQA-like shapes, outliers */
		{3, {48, 16, 16}, 64, 96, 32, 4, 0, 1, 20, 4},
		/* fp16 scales, whole-row groups, no duo scaling */
		{2, {24, 40, 0}, 48, 64, 0, 4, 1, 0, 20, 2},
		/* one layer across a work-block boundary (BLOCK_ROWS 512), 3 bits */
		{1, {530, 0, 0}, 32, 40, 16, 3, 0, 1, 10, 2},
		/* no outliers */
		{2, {32, 32, 0}, 64, 80, 64, 4, 0, 1, 20, 0},
	};
	const char *py = need_python();
	const struct mcb_blas *blas = need_blas();
	size_t k;

	mcb_rng_seed(&rng, 2024);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		run_search_case(py, &cases[k], blas);
}

/*
 * AWQ against plain RTN with the same quantizer, on correlated inputs with
 * activation outliers; then the full pipeline: fold s, quantize to codes,
 * dequantize, and the loss measured on the folded model equals the search's.
 */
static void test_awq_beats_rtn(void)
{
	enum { NL = 3, COLS = 256, N = 512, GS = 64 };
	const int64_t rows[NL] = {96, 32, 32};
	struct mcb_awq_linear l[NL];
	struct mcb_awq_params p;
	struct mcb_errctx e;
	const struct mcb_blas *blas = need_blas();
	float *w[NL], *x = fvec(N * COLS), *xm = fvec(COLS), *s = fvec(COLS), *xf = fvec(N * COLS),
		      sc[96 * (COLS / GS)];
	uint8_t q[96 * COLS], z[96 * (COLS / GS)];
	double loss[20], rtn, sq = 0, dot;
	int i, best;
	int64_t r, j, t;

	mcb_rng_seed(&rng, 7);
	make_inputs(x, xm, N, COLS, 8);
	for (i = 0; i < NL; i++) {
		w[i] = fvec(rows[i] * COLS);
		fill_gauss(w[i], rows[i] * COLS, 0.02);
		l[i].w = w[i];
		l[i].rows = rows[i];
	}
	mcb_awq_defaults(&p);
	p.group_size = GS;
	p.fp16_scale = 1;
	CHECK_OK(mcb_awq_search_scale(&p, l, NL, COLS, xm, x, N, blas, s, &best, loss, &e), &e);
	CHECK_OK(mcb_awq_loss(&p, l, NL, COLS, NULL, x, N, blas, &rtn, &e), &e);
	fprintf(stderr, "  awq loss %.4g at ratio %d/20, rtn %.4g: %.1f%% of rtn\n", loss[best],
		best, rtn, 100 * loss[best] / rtn);
	CHECK(best > 0);
	CHECK(loss[best] < 0.6 * rtn);

	/* fold: X diag(1/s), W diag(s); quantize the folded weights; the loss on
	   the folded, dequantized model is the search's loss of the best ratio */
	memcpy(xf, x, sizeof(float) * N * COLS);
	mcb_awq_div_cols(xf, N, COLS, s);
	for (i = 0; i < NL; i++) {
		float *wf = fvec(rows[i] * COLS);

		memcpy(wf, w[i], sizeof(float) * (size_t)(rows[i] * COLS));
		mcb_awq_mul_cols(wf, rows[i], COLS, s);
		CHECK_OK(mcb_awq_quantize(&p, wf, rows[i], COLS, q, sc, z, &e), &e);
		for (r = 0; r < rows[i]; r++)
			for (t = 0; t < N; t++) {
				dot = 0;
				for (j = 0; j < COLS; j++) {
					int64_t g = r * (COLS / GS) + j / GS;
					float deq = (float)(q[r * COLS + j] - z[g]) * sc[g];

					dot += (double)x[t * COLS + j] * w[i][r * COLS + j] -
					       (double)xf[t * COLS + j] * deq;
				}
				sq += dot * dot;
			}
		free(wf);
	}
	sq /= (double)N * (96 + 32 + 32);
	fprintf(stderr, "  loss of the folded, quantized group %.9g (search %.9g)\n", sq,
		loss[best]);
	CHECK(rel_close(sq, loss[best], 1e-3));
	for (i = 0; i < NL; i++)
		free(w[i]);
	free(x);
	free(xm);
	free(s);
	free(xf);
}

/* ---- clip search ---- */

static void test_clip_numpy(void)
{
	static const struct {
		int64_t rows, cols, n, gs, samples;
		int bits, fp16;
	} cases[] = {
		{40, 96, 700, 32, 256, 4, 0},  /* step 2: 350 sample rows */
		{530, 64, 300, 32, 128, 4, 1}, /* a work-block boundary, fp16 scales */
		{8, 48, 50, 0, 512, 3, 0},     /* fewer rows than samples, whole-row groups */
	};
	const char *py = need_python(), *dir;
	const struct mcb_blas *blas = need_blas();
	struct mcb_awq_params p;
	struct mcb_errctx e;
	char line[256];
	size_t k;

	mcb_rng_seed(&rng, 99);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int64_t R = cases[k].rows, C = cases[k].cols, N = cases[k].n;
		int64_t ng = cases[k].gs ? C / cases[k].gs : 1, i, shrunk = 0, bad = 0;
		float *w = fvec(R * C), *x = fvec(N * C), *xm = fvec(C), *out = fvec(R * C),
		      *outb = fvec(R * C), *rout = fvec(R * C), *mv = fvec(R * ng),
		      *mvb = fvec(R * ng), *rmv = fvec(R * ng);

		make_inputs(x, xm, N, C, 4);
		fill_gauss(w, R * C, 0.02);
		for (i = 0; i < R * C; i += 37)
			w[i] *= 6; /* weight outliers make clipping worthwhile */
		mcb_awq_defaults(&p);
		p.group_size = cases[k].gs;
		p.bits = cases[k].bits;
		p.fp16_scale = cases[k].fp16;
		p.clip_samples = cases[k].samples;
		CHECK_OK(mcb_awq_search_clip(&p, w, R, C, x, N, NULL, out, mv, &e), &e);
		for (i = 0; i < R * ng; i++) {
			float amax = 0;

			for (int64_t j = 0; j < C / ng; j++)
				amax = fmaxf(amax,
					     fabsf(w[(i / ng) * C + (i % ng) * (C / ng) + j]));
			shrunk += mv[i] < amax;
		}
		for (i = 0; i < R * C; i++)
			bad += fabsf(out[i]) > fabsf(w[i]) ||
			       (out[i] != w[i] &&
				fabsf(out[i]) != mv[(i / C) * ng + (i % C) / (C / ng)]);
		CHECK_EQ(bad, 0);
		fprintf(stderr, "  clip case %zu: %lld of %lld (row, group) bounds shrunk\n", k,
			(long long)shrunk, (long long)(R * ng));
		CHECK(shrunk > 0);
		if (blas) {
			/* in place, through BLAS: the same bounds (no near-ties here) */
			memcpy(outb, w, sizeof(float) * (size_t)(R * C));
			CHECK_OK(mcb_awq_search_clip(&p, outb, R, C, x, N, blas, outb, mvb, &e),
				 &e);
			CHECK(memcmp(mv, mvb, sizeof(float) * (size_t)(R * ng)) == 0);
			CHECK(memcmp(out, outb, sizeof(float) * (size_t)(R * C)) == 0);
		}
		if (py) {
			dir = mcbt_tmpdir();
			mcbt_put(dir, "w.f32", w, sizeof(float) * (size_t)(R * C));
			mcbt_put(dir, "x.f32", x, sizeof(float) * (size_t)(N * C));
			mcbt_put_args(dir,
				 "{\"rows\": %d, \"cols\": %d, \"n\": %d, \"bits\": %d, "
				 "\"group_size\": %d, \"fp16\": %d, \"clip_grid\": 20, "
				 "\"clip_steps\": 10, \"clip_samples\": %d}",
				 (int)R, (int)C, (int)N, p.bits, (int)p.group_size, p.fp16_scale,
				 (int)p.clip_samples);
			if (!ref(py, "clip", dir, line, sizeof(line)) &&
			    !mcbt_get(dir, "out.f32", rout, sizeof(float) * (size_t)(R * C)) &&
			    !mcbt_get(dir, "maxval.f32", rmv, sizeof(float) * (size_t)(R * ng))) {
				CHECK(memcmp(mv, rmv, sizeof(float) * (size_t)(R * ng)) == 0);
				CHECK(memcmp(out, rout, sizeof(float) * (size_t)(R * C)) == 0);
			}
		}
		free(w);
		free(x);
		free(xm);
		free(out);
		free(outb);
		free(rout);
		free(mv);
		free(mvb);
		free(rmv);
	}
}

/* ---- SmoothQuant ---- */

/*
 * Folding preserves the function: with x' = fl(x / s) and w' = fl(w * s),
 * x' w' = x w (1 + d1)(1 + d2), |d| <= u, so each term is off by at most
 * |x w| (2u + u^2), and in double sums |Y - Y'| <= 2.0001 u sum_j |x_j w_j|
 * (the double accumulation adds ~cols 2^-53, far below).
 */
static void test_smooth(void)
{
	enum { NL = 2, COLS = 80, N = 60 };
	const int64_t rows[NL] = {24, 40};
	const char *py = need_python(), *dir;
	struct mcb_awq_linear l[NL];
	struct mcb_errctx e;
	float *w[NL], *wf[NL], *x = fvec(N * COLS), *xf = fvec(N * COLS), *xm = fvec(COLS),
			       act[COLS], s[COLS], rs[COLS], norm[COLS], bias[COLS], delta[40],
			       rdelta[40], as, ras, as0, norm3;
	int8_t q[40 * COLS], rq[40 * COLS];
	char line[256], name[32];
	int64_t t, r, j, bad = 0;
	int i;

	mcb_rng_seed(&rng, 5);
	make_inputs(x, xm, N, COLS, 4);
	for (t = 0; t < N; t++)
		x[t * COLS + 7] = 0.0f; /* a dead channel: s = 1e-5 floor */
	for (j = 0; j < COLS; j++) {
		act[j] = 0;
		for (t = 0; t < N; t++)
			act[j] = fmaxf(act[j], fabsf(x[t * COLS + j]));
		norm[j] = 1.0f + 0.01f * (float)j;
		bias[j] = 0.5f;
	}
	for (i = 0; i < NL; i++) {
		w[i] = fvec(rows[i] * COLS);
		wf[i] = fvec(rows[i] * COLS);
		fill_gauss(w[i], rows[i] * COLS, 0.05);
		l[i].w = w[i];
		l[i].rows = rows[i];
	}
	CHECK_OK(mcb_awq_smooth_scales(l, NL, COLS, act, 0.5, s, &e), &e);
	CHECK(s[7] == 1e-5f);
	memcpy(xf, x, sizeof(float) * N * COLS);
	mcb_awq_div_cols(xf, N, COLS, s);
	norm3 = norm[3];
	mcb_awq_div_rows(norm, COLS, 1, s);
	mcb_awq_div_rows(bias, COLS, 1, s);
	CHECK(norm[3] == norm3 / s[3] && bias[5] == 0.5f / s[5]);
	for (i = 0; i < NL; i++) {
		memcpy(wf[i], w[i], sizeof(float) * (size_t)(rows[i] * COLS));
		mcb_awq_mul_cols(wf[i], rows[i], COLS, s);
		for (t = 0; t < N; t++)
			for (r = 0; r < rows[i]; r++) {
				double y = 0, yf = 0, mag = 0;

				for (j = 0; j < COLS; j++) {
					y += (double)x[t * COLS + j] * w[i][r * COLS + j];
					yf += (double)xf[t * COLS + j] * wf[i][r * COLS + j];
					mag += fabs((double)x[t * COLS + j] * w[i][r * COLS + j]);
				}
				bad += fabs(y - yf) > 2.0001 * U24 * mag;
			}
	}
	CHECK_EQ(bad, 0);
	/* activation scale: max |X diag(1/s)| / 127 */
	CHECK_OK(mcb_awq_act_scale(act, s, COLS, &as, &e), &e);
	{
		float m = 0;

		for (t = 0; t < N * COLS; t++)
			m = fmaxf(m, fabsf(xf[t]));
		CHECK(as == m / 127.0f);
	}
	CHECK_OK(mcb_awq_act_scale(act, NULL, COLS, &as0, &e), &e);
	CHECK(as0 > as);
	if (!py)
		goto out;
	dir = mcbt_tmpdir();
	mcbt_put(dir, "act.f32", act, sizeof(act));
	mcbt_put(dir, "s_c.f32", s, sizeof(s));
	for (i = 0; i < NL; i++) {
		snprintf(name, sizeof(name), "w%d.f32", i);
		mcbt_put(dir, name, w[i], sizeof(float) * (size_t)(rows[i] * COLS));
	}
	mcbt_put_args(dir, "{\"cols\": %d, \"layers\": [24, 40], \"alpha\": 0.5}", COLS);
	if (ref(py, "smooth", dir, line, sizeof(line)) || mcbt_get(dir, "s.f32", rs, sizeof(rs)) ||
	    mcbt_get(dir, "act_scale.f32", &ras, sizeof(ras)))
		goto out;
	for (j = 0; j < COLS; j++)
		if (!rel_close(s[j], rs[j], U24))
			mcbt_fail(__FILE__, __LINE__, "s[%d] %.9g vs numpy %.9g", (int)j, s[j],
				  rs[j]);
	CHECK(as == ras);
	for (i = 0; i < NL; i++) {
		CHECK_OK(mcb_awq_w8a8_weight(wf[i], rows[i], COLS, q, delta, &e), &e);
		snprintf(name, sizeof(name), "q%d.i8", i);
		if (mcbt_get(dir, name, rq, (size_t)(rows[i] * COLS)))
			break;
		snprintf(name, sizeof(name), "delta%d.f32", i);
		if (mcbt_get(dir, name, rdelta, sizeof(float) * (size_t)rows[i]))
			break;
		CHECK(memcmp(q, rq, (size_t)(rows[i] * COLS)) == 0);
		CHECK(memcmp(delta, rdelta, sizeof(float) * (size_t)rows[i]) == 0);
		for (j = 0; j < rows[i] * COLS; j++)
			if (q[j] < -127 || fabsf(delta[j / COLS] * q[j] - wf[i][j]) >
						   delta[j / COLS] * 0.5f * 1.0001f)
				bad++;
		CHECK_EQ(bad, 0);
	}
out:
	for (i = 0; i < NL; i++) {
		free(w[i]);
		free(wf[i]);
	}
	free(x);
	free(xf);
	free(xm);
}

static void test_w8a8_edges(void)
{
	struct mcb_errctx e;
	const float w[6] = {0, 0, 0, 1.27f, -2.54f, 0.635f};
	int8_t q[6];
	float d[2];

	CHECK_OK(mcb_awq_w8a8_weight(w, 2, 3, q, d, &e), &e);
	CHECK(d[0] == 1e-5f / 127.0f); /* zero row: the floor, codes 0 */
	CHECK(q[0] == 0 && q[1] == 0 && q[2] == 0);
	CHECK(d[1] == 2.54f / 127.0f);
	CHECK(q[4] == -127 && q[3] == (int8_t)rintf(1.27f / d[1]));
}

/* ---- determinism and hostile input ---- */

static void test_determinism(void)
{
	enum { COLS = 64, N = 70 };
	struct mcb_awq_linear l[2];
	struct mcb_awq_params p;
	struct mcb_errctx e;
	float *w0 = fvec(32 * COLS), *w1 = fvec(16 * COLS), *x = fvec(N * COLS), *xm = fvec(COLS),
	      s1[COLS], s2[COLS];
	double l1[20], l2[20];
	int b1, b2;

	mcb_rng_seed(&rng, 3);
	make_inputs(x, xm, N, COLS, 2);
	fill_gauss(w0, 32 * COLS, 1);
	fill_gauss(w1, 16 * COLS, 1);
	l[0].w = w0, l[0].rows = 32;
	l[1].w = w1, l[1].rows = 16;
	mcb_awq_defaults(&p);
	p.group_size = 32;
	CHECK_OK(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s1, &b1, l1, &e), &e);
	CHECK_OK(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s2, &b2, l2, &e), &e);
	CHECK_EQ(b1, b2);
	CHECK(memcmp(s1, s2, sizeof(s1)) == 0 && memcmp(l1, l2, sizeof(l1)) == 0);
	free(w0);
	free(w1);
	free(x);
	free(xm);
}

static void test_hostile(void)
{
	enum { COLS = 8, N = 4 };
	struct mcb_awq_linear l[2];
	struct mcb_awq_params p;
	struct mcb_errctx e;
	float w[2 * COLS], x[N * COLS], xm[COLS], s[COLS], out[2 * COLS], mv[4], big[COLS];
	uint8_t q[2 * COLS], z[4];
	int8_t q8[2 * COLS];
	double loss;
	int i, best;

	for (i = 0; i < 2 * COLS; i++)
		w[i] = (float)(i % 5) - 2;
	for (i = 0; i < N * COLS; i++)
		x[i] = (float)(i % 3);
	for (i = 0; i < COLS; i++)
		xm[i] = 1;
	l[0].w = w, l[0].rows = 2;
	l[1].w = w, l[1].rows = 1;
	mcb_awq_defaults(&p);
	p.group_size = 4;

	/* sizes and parameters */
	p.group_size = 3;
	CHECK_ERR(mcb_awq_quantize(&p, w, 2, COLS, q, s, z, &e), &e, MCB_EINVAL, "does not divide");
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_EINVAL, "does not divide");
	p.group_size = -4;
	CHECK_ERR(mcb_awq_fake_quant(&p, w, 2, COLS, out, &e), &e, MCB_EINVAL, "negative");
	p.group_size = 4;
	p.bits = 9;
	CHECK_ERR(mcb_awq_quantize(&p, w, 2, COLS, q, s, z, &e), &e, MCB_EINVAL, "bits = 9");
	p.bits = 1;
	CHECK_ERR(mcb_awq_quantize(&p, w, 2, COLS, q, s, z, &e), &e, MCB_EINVAL, "bits = 1");
	p.bits = 4;
	CHECK_ERR(mcb_awq_quantize(&p, w, 0, COLS, q, s, z, &e), &e, MCB_EINVAL, "empty");
	CHECK_ERR(mcb_awq_search_scale(&p, l, 0, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_EINVAL, "no layers");
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, 0, NULL, s, &best, NULL, &e), &e,
		  MCB_EINVAL, "no sample rows");
	p.n_grid = 0;
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_EINVAL, "n_grid");
	p.n_grid = 20;
	p.clip_steps = 21;
	CHECK_ERR(mcb_awq_search_clip(&p, w, 2, COLS, x, N, NULL, out, mv, &e), &e, MCB_EINVAL,
		  "clip grid");
	p.clip_steps = 10;
	l[1].rows = 0;
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_EINVAL, "empty");
	l[1].rows = 1;

	/* non-finite and negative statistics */
	w[9] = NAN;
	CHECK_ERR(mcb_awq_quantize(&p, w, 2, COLS, q, s, z, &e), &e, MCB_ERANGE, "weight[9]");
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_ERANGE, "layer 0 weight[9]");
	CHECK_ERR(mcb_awq_w8a8_weight(w, 2, COLS, q8, s, &e), &e, MCB_ERANGE, "weight[9]");
	CHECK_ERR(mcb_awq_smooth_scales(l, 2, COLS, xm, 0.5, s, &e), &e, MCB_ERANGE, "weight[9]");
	w[9] = 1;
	x[17] = INFINITY;
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_ERANGE, "sample[17]");
	CHECK_ERR(mcb_awq_search_clip(&p, w, 2, COLS, x, N, NULL, out, mv, &e), &e, MCB_ERANGE,
		  "sample[17]");
	x[17] = 0;
	xm[2] = -1;
	CHECK_ERR(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_ERANGE, "x_mean[2] = -1 is negative");
	CHECK_ERR(mcb_awq_smooth_scales(l, 2, COLS, xm, 0.5, s, &e), &e, MCB_ERANGE,
		  "act_max[2] = -1");
	xm[2] = NAN;
	CHECK_ERR(mcb_awq_act_scale(xm, NULL, COLS, s, &e), &e, MCB_ERANGE, "act_max[2]");
	xm[2] = 1;
	CHECK_ERR(mcb_awq_smooth_scales(l, 2, COLS, xm, 1.5, s, &e), &e, MCB_ERANGE, "alpha");
	CHECK_ERR(mcb_awq_smooth_scales(l, 2, COLS, xm, NAN, s, &e), &e, MCB_ERANGE, "alpha");

	/* fp16 scale overflow: a range of 2e6 over 15 steps exceeds 65504 */
	for (i = 0; i < COLS; i++)
		big[i] = i ? 1e6f : -1e6f;
	p.fp16_scale = 1;
	CHECK_ERR(mcb_awq_quantize(&p, big, 1, COLS, q, s, z, &e), &e, MCB_ERANGE, "overflows");
	l[0].w = big, l[0].rows = 1;
	CHECK_ERR(mcb_awq_loss(&p, l, 1, COLS, NULL, x, N, NULL, &loss, &e), &e, MCB_ERANGE,
		  "overflow");
	CHECK_ERR(mcb_awq_search_scale(&p, l, 1, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e,
		  MCB_ERANGE, "no ratio of the grid gives a finite loss");
	p.fp16_scale = 0;
	CHECK_OK(mcb_awq_quantize(&p, big, 1, COLS, q, s, z, &e), &e);

	/* zero rows, zero inputs, dead channels: defined results, no NaN */
	memset(w, 0, sizeof(w));
	memset(x, 0, sizeof(x));
	memset(xm, 0, sizeof(xm));
	l[0].w = w, l[0].rows = 2;
	CHECK_OK(mcb_awq_search_scale(&p, l, 2, COLS, xm, x, N, NULL, s, &best, NULL, &e), &e);
	CHECK_EQ(best, 0);
	for (i = 0; i < COLS; i++)
		CHECK(isfinite(s[i]) && s[i] > 0);
	CHECK_OK(mcb_awq_search_clip(&p, w, 2, COLS, x, N, NULL, out, mv, &e), &e);
	CHECK(mv[0] == 0 && out[0] == 0);
	CHECK_OK(mcb_awq_smooth_scales(l, 2, COLS, xm, 0.5, s, &e), &e);
	CHECK(s[0] == 1e-5f);
	CHECK_OK(mcb_awq_act_scale(xm, s, COLS, out, &e), &e);
	CHECK(out[0] == 1e-5f / 127.0f);
}

int main(void)
{
	RUN(test_quantizer_hand);
	RUN(test_quantizer_numpy);
	RUN(test_scale_search_numpy);
	RUN(test_awq_beats_rtn);
	RUN(test_clip_numpy);
	RUN(test_smooth);
	RUN(test_w8a8_edges);
	RUN(test_determinism);
	RUN(test_hostile);
	return mcbt_done();
}
