/*
 * bench_gptq: GPTQ on one layer against its FLOP lower bound, and the
 * Hessian's SSYRK against SGEMM, both at the SGEMM rate measured in the
 * same run.
 *
 *   bench_gptq [THREADS [ROWS COLS [SEQS [REPS]]]]   defaults: 2, 4096 11008, 128, 2
 *
 * 1. SGEMM: C (2048, 2048) += A (2048, 4096) B (4096, 2048), OpenBLAS on
 *    THREADS threads, best of 3: R = 2 m n k / t (measured again before each
 *    GPTQ repetition, so that a busy machine hurts both sides alike).
 * 2. SSYRK: the Hessian of a 4096-wide input from SEQS sequences of 2048
 *    tokens, H (4096, 4096) += X_s^T X_s one sequence at a time (beta 1),
 *    OpenBLAS on THREADS threads: rate n^2 k / t (the useful triangle);
 *    target >= 0.7 R.
 * 3. GPTQ: W (ROWS, COLS) ~ N(0, 1), H = X^T X / 2048 for X (2048, COLS)
 *    with correlated columns (rank-deficient: the damping makes it
 *    positive definite, as with few calibration samples); 4 bits, groups of
 *    128, symmetric, act_order, fp16 scales, blocksize 128, THREADS threads.
 *    Timed: mcb_gptq_prepare + mcb_gptq_quantize, REPS times.  Bound:
 *    ((4/3) COLS^3 + ROWS COLS^2) / R, R measured just before; target: time
 *    <= 2x bound (the best repetition's ratio; every one is printed).
 * Figures under target are reported, not failures (timings are noisy).
 * Needs ~2 GB of memory at the default size.  Exit status 0; 1 on bad
 * arguments, allocation failure or a solver error.
 *
 * Build (from the repository root):
 *   cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags openblas) \
 *      -DMCB_OPENBLAS_LIB="\"$(pkg-config --variable=libdir openblas)/libopenblas.so.0\"" \
 *      -o build/bench/bench_gptq bench/bench_gptq.c runtime/gptq.c runtime/blas.c \
 *      runtime/quant.c runtime/err.c runtime/rng.c -ldl -lpthread -lm
 * (in the Makefile: bench/bench_gptq.c with $(BASE_OBJ) $(QUANT_OBJ)
 * $(BUILD)/runtime/gptq.o $(BUILD)/runtime/blas.o).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcb/blas.h"
#include "mcb/err.h"
#include "mcb/gptq.h"
#include "mcb/quant.h"
#include "mcb/rng.h"

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, UPPER = 121 };

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (!p) {
		fprintf(stderr, "bench_gptq: cannot allocate %zu bytes\n", n);
		exit(1);
	}
	return p;
}

/* uniform in [-1, 1) (fast; the values do not matter to the timing) */
static void fill(float *x, size_t n, uint64_t seed)
{
	struct mcb_rng r;
	size_t i;

	mcb_rng_seed(&r, seed);
	for (i = 0; i < n; i++)
		x[i] = (float)(mcb_rng_next(&r) >> 40) * 0x1p-23f - 1.0f;
}

/* OpenBLAS's SGEMM rate in FLOP/s, best of 3 (after a warm-up call) */
static double sgemm_rate(const struct mcb_blas *blas)
{
	int64_t m = 2048, k = 4096;
	float *a = xmalloc((size_t)(m * k) * sizeof(float)), *b = xmalloc((size_t)(k * m) * sizeof(float));
	float *c = xmalloc((size_t)(m * m) * sizeof(float));
	double t, best = 1e30;
	int rep;

	fill(a, (size_t)(m * k), 1);
	fill(b, (size_t)(k * m), 2);
	memset(c, 0, (size_t)(m * m) * sizeof(float));
	for (rep = 0; rep < 4; rep++) {
		t = now();
		blas->sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, (int)m, (int)m, (int)k, 1.0f, a, (int)k, b,
			    (int)m, 1.0f, c, (int)m);
		t = now() - t;
		if (rep && t < best)
			best = t;
	}
	free(a);
	free(b);
	free(c);
	return 2.0 * (double)m * (double)m * (double)k / best;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2, seqs = argc > 4 ? atoi(argv[4]) : 128, s, rep;
	int reps = argc > 5 ? atoi(argv[5]) : 2;
	int64_t rows = argc > 3 ? atoll(argv[2]) : 4096, cols = argc > 3 ? atoll(argv[3]) : 11008;
	int64_t hn = 4096, tok = 2048, i, j;
	const struct mcb_blas *blas;
	struct mcb_errctx e;
	float *x, *h, *w, *scale;
	uint8_t *codes, *zero;
	double t, best = 1e30, rate, srate, tprep, tq, bound, ratio;
	struct mcb_gptq_opts o;
	struct mcb_intq_params q = {4, 128, 1, 1};
	struct mcb_gptq_out out;
	struct mcb_gptq *g;

	if (threads < 1 || seqs < 1 || rows < 1 || cols < 2 || reps < 1) {
		fprintf(stderr, "usage: bench_gptq [THREADS [ROWS COLS [SEQS [REPS]]]]\n");
		return 1;
	}
	mcb_blas_set_threads(threads);
	if (!(blas = mcb_blas_get(&e))) {
		fprintf(stderr, "bench_gptq: %s\n", e.msg);
		return 1;
	}
	/* 1. SGEMM */
	rate = sgemm_rate(blas);
	printf("sgemm   2048 x 2048 x 4096, %d threads: %.1f GFLOP/s\n", threads, rate * 1e-9);

	/* 2. SSYRK, the Hessian from seqs x 2048 tokens */
	x = xmalloc((size_t)(tok * hn) * sizeof(float));
	h = xmalloc((size_t)(hn * hn) * sizeof(float));
	fill(x, (size_t)(tok * hn), 3);
	memset(h, 0, (size_t)(hn * hn) * sizeof(float));
	t = now();
	for (s = 0; s < seqs; s++) {
		x[s] += 1.0f; /* a different sequence each time, cheaply */
		blas->ssyrk(ROW_MAJOR, UPPER, TRANS, (int)hn, (int)tok, 1.0f, x, (int)hn, 1.0f, h,
			    (int)hn);
	}
	t = now() - t;
	srate = (double)seqs * (double)hn * (double)hn * (double)tok / t;
	printf("ssyrk   H %lld x %lld from %d x %lld tokens, %d threads: %.1f GFLOP/s, %.2fx sgemm "
	       "(target >= 0.7x)\n",
	       (long long)hn, (long long)hn, seqs, (long long)tok, threads, srate * 1e-9,
	       srate / rate);
	free(x);
	free(h);

	/* 3. GPTQ on one layer */
	x = xmalloc((size_t)(tok * cols) * sizeof(float));
	h = xmalloc((size_t)(cols * cols) * sizeof(float));
	fill(x, (size_t)(tok * cols), 4);
	for (i = 0; i < tok; i++) /* correlate neighbouring columns */
		for (j = 1; j < cols; j++)
			x[i * cols + j] += 0.5f * x[i * cols + j - 1];
	blas->ssyrk(ROW_MAJOR, UPPER, TRANS, (int)cols, (int)tok, 1.0f / (float)tok, x, (int)cols,
		    0.0f, h, (int)cols);
	for (i = 0; i < cols; i++) /* gptq reads the lower triangle */
		for (j = 0; j < i; j++)
			h[i * cols + j] = h[j * cols + i];
	free(x);
	w = xmalloc((size_t)(rows * cols) * sizeof(float));
	fill(w, (size_t)(rows * cols), 5);
	codes = xmalloc((size_t)(rows * cols));
	scale = xmalloc((size_t)(rows * mcb_gptq_ngroups(cols, q.group)) * sizeof(float));
	zero = xmalloc((size_t)(rows * mcb_gptq_ngroups(cols, q.group)));
	memset(codes, 0, (size_t)(rows * cols)); /* fault the pages in before timing */
	mcb_gptq_opts_init(&o);
	o.act_order = 1;
	o.threads = threads;
	memset(&out, 0, sizeof(out));
	out.codes = codes;
	out.scale = scale;
	out.zero = zero;
	for (rep = 0; rep < reps; rep++) {
		mcb_blas_set_threads(threads);
		rate = sgemm_rate(blas);
		t = now();
		if (mcb_gptq_prepare(h, cols, &o, &g, &e)) {
			fprintf(stderr, "bench_gptq: %s\n", e.msg);
			return 1;
		}
		tprep = now() - t;
		t = now();
		if (mcb_gptq_quantize(g, w, rows, &q, &o, &out, &e)) {
			fprintf(stderr, "bench_gptq: %s\n", e.msg);
			return 1;
		}
		tq = now() - t;
		bound = (4.0 / 3.0 * (double)cols * (double)cols * (double)cols +
			 (double)rows * (double)cols * (double)cols) / rate;
		ratio = (tprep + tq) / bound;
		best = ratio < best ? ratio : best;
		printf("gptq    %lld x %lld, 4 bits g128 sym act_order, %d threads: %.2f s (prepare "
		       "%.2f s, quantize %.2f s; damp %g, %d retries); sgemm %.1f GFLOP/s, bound "
		       "%.2f s: %.2fx\n",
		       (long long)rows, (long long)cols, threads, tprep + tq, tprep, tq, g->percdamp,
		       g->retries, rate * 1e-9, bound, ratio);
		mcb_gptq_free(g);
	}
	printf("gptq    best %.2fx the bound (target <= 2x)\n", best);
	free(h);
	free(w);
	free(codes);
	free(scale);
	free(zero);
	return 0;
}
