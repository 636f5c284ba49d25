/*
 * bench_hessian: accuracy and speed of the calibration Hessian
 * (runtime/calib.c) against a float64 reference.
 *
 *   bench_hessian [--tokens N] [--cols C] [--threads T] [--seq S] [MODEL]
 *
 * Rows: N synthetic activation rows of C columns (default 100000 x 512),
 * LLM-like: per-channel scales 1..5 with every 37th channel an outlier
 * (x20) and per-channel offsets, so that off-diagonal sums cancel; or, with
 * MODEL (any file the engine loads, e.g. stories260K.bin), the FFN_DOWN
 * input of the model's last layer over N tokens of random ids in sequences
 * of S tokens (default 128), BOS first.  Sequences are S rows for the scale.
 *
 * Methods, each against R = (2/sequences) sum x^T x summed in float64 (every
 * float product is exact in double; the double sums' own error is ~1e-16):
 *   calib     mcb_calib: float SSYRK/SGEMM tiles over blocks of 256 rows,
 *             summed into a double accumulator
 *   f32-syrk  one SSYRK per sequence of S rows into a float accumulator
 *             (beta = 1), scaled at the end
 *   f32-gptq  GPTQ's running update in float per sequence: H *= n/(n+1);
 *             n += 1; H += (2/n) X^T X (one SSYRK with alpha 2/n, beta
 *             n_old/n)
 * Errors: max and mean over the upper triangle of |H - R| / sqrt(Rii Rjj)
 * (the scale GPTQ's Cholesky sees), and the max relative error of the
 * diagonal.  Times are of the accumulation alone (one thread unless
 * --threads; calib runs its tiles on that many threads).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcb/blas.h"
#include "mcb/calib.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/rng.h"

enum { ROW_MAJOR = 101, TRANS = 112, UPPER = 121 };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* rows captured from a model (growable) */
struct grab {
	float *x;
	int64_t n, cap, cols;
	int layer;
};

static void grab_hook(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		      int64_t rows, int64_t cols)
{
	struct grab *g = ctx;

	if (layer != g->layer || pt != MCB_CAPTURE_FFN_DOWN)
		return;
	if (g->n + rows > g->cap) {
		g->cap = (g->n + rows) * 2;
		g->x = realloc(g->x, (size_t)(g->cap * cols) * sizeof(float));
		if (!g->x) {
			fprintf(stderr, "bench_hessian: out of memory\n");
			exit(1);
		}
	}
	memcpy(g->x + g->n * cols, x, (size_t)(rows * cols) * sizeof(float));
	g->n += rows;
	g->cols = cols;
}

static float *model_rows(const char *path, int64_t n, int64_t seq, int64_t *cols)
{
	struct mcb_engine_opts eo = {1, MCB_ENGINE_EXACT, 0};
	struct mcb_engine *en = NULL;
	struct mcb_errctx e;
	struct mcb_model m;
	struct grab g = {NULL, 0, 0, 0, 0};
	struct mcb_rng r;
	int32_t *toks = malloc((size_t)seq * sizeof(*toks));
	int64_t i;

	mcb_model_init(&m);
	if (mcb_engine_load_model(path, &m, &e) || (eo.ctx_len = seq, 0) ||
	    mcb_engine_new(&m, &eo, &en, &e)) {
		fprintf(stderr, "bench_hessian: %s\n", e.msg);
		exit(1);
	}
	g.layer = (int)m.cfg.n_layers - 1;
	mcb_engine_set_capture(en, grab_hook, &g);
	mcb_rng_seed(&r, 1);
	while (g.n < n) {
		toks[0] = mcb_model_bos(&m);
		for (i = 1; i < seq; i++)
			toks[i] = (int32_t)mcb_rng_below(&r, (uint64_t)m.cfg.vocab_size);
		mcb_engine_reset(en);
		if (mcb_engine_eval(en, toks, seq, NULL, NULL, &e)) {
			fprintf(stderr, "bench_hessian: %s\n", e.msg);
			exit(1);
		}
	}
	mcb_engine_free(en);
	mcb_model_release(&m);
	free(toks);
	*cols = g.cols;
	return g.x;
}

static float *synth_rows(int64_t n, int64_t cols)
{
	float *x = malloc((size_t)(n * cols) * sizeof(float));
	struct mcb_rng r;
	int64_t i, j;

	if (!x) {
		fprintf(stderr, "bench_hessian: out of memory\n");
		exit(1);
	}
	mcb_rng_seed(&r, 42);
	for (i = 0; i < n; i++)
		for (j = 0; j < cols; j++) {
			double g = mcb_rng_double(&r) + mcb_rng_double(&r) + mcb_rng_double(&r) - 1.5;
			double sc = j % 37 == 0 ? 20.0 : 1.0 + (double)(j % 5);

			x[i * cols + j] = (float)(g * sc + 0.5 * (double)(j % 3));
		}
	return x;
}

/* |H - R| / sqrt(Rii Rjj) over the upper triangle: max and mean; diag max. */
static void report(const char *name, const float *h, const double *ref, int64_t n, double secs,
		   int64_t tokens)
{
	double mx = 0, sum = 0, dmx = 0;
	int64_t i, j, cnt = 0;

	for (i = 0; i < n; i++)
		for (j = i; j < n; j++) {
			double norm = sqrt(ref[i * n + i] * ref[j * n + j]);
			double err = fabs((double)h[i * n + j] - ref[i * n + j]) / (norm > 0 ? norm : 1);

			if (err > mx)
				mx = err;
			sum += err;
			cnt++;
			if (i == j && ref[i * n + i] > 0) {
				err = fabs((double)h[i * n + i] - ref[i * n + i]) / ref[i * n + i];
				if (err > dmx)
					dmx = err;
			}
		}
	printf("%-9s  max %.2e  mean %.2e  diag max %.2e  %8.1f ms  %6.1f GFLOP/s\n", name, mx,
	       sum / (double)cnt, dmx, secs * 1e3,
	       (double)tokens * (double)n * (double)(n + 1) / secs / 1e9);
}

int main(int argc, char **argv)
{
	int64_t n = 100000, cols = 512, seq = 128, i, j, t, nseq;
	const char *model = NULL;
	int threads = 1;
	const struct mcb_blas *b;
	struct mcb_errctx e;
	struct mcb_calib_opts o;
	struct mcb_llama_config cfg;
	struct mcb_calib *c = NULL;
	struct mcb_calib_stats st;
	double *ref, t0, t1, tref;
	float *x, *h;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
			n = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--cols") && i + 1 < argc)
			cols = atoll(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seq") && i + 1 < argc)
			seq = atoll(argv[++i]);
		else if (argv[i][0] != '-' && !model)
			model = argv[i];
		else {
			fprintf(stderr, "usage: bench_hessian [--tokens N] [--cols C] [--threads T] "
					"[--seq S] [MODEL]\n");
			return 2;
		}
	}
	if (n < 1 || cols < 1 || seq < 1 || threads < 1) {
		fprintf(stderr, "bench_hessian: bad arguments\n");
		return 2;
	}
	x = model ? model_rows(model, n, seq, &cols) : synth_rows(n, cols);
	nseq = (n + seq - 1) / seq;
	printf("%s: %lld rows x %lld columns, %lld sequences of %lld\n",
	       model ? "FFN_DOWN input of the last layer" : "synthetic rows", (long long)n,
	       (long long)cols, (long long)nseq, (long long)seq);
	if (!(b = mcb_blas_get(&e))) {
		fprintf(stderr, "bench_hessian: %s\n", e.msg);
		return 1;
	}

	/* the float64 reference */
	ref = calloc((size_t)(cols * cols), sizeof(double));
	t0 = now();
	for (t = 0; t < n; t++) {
		const float *r = x + t * cols;

		for (i = 0; i < cols; i++) {
			double xi = r[i], *ri = ref + i * cols;

			for (j = i; j < cols; j++)
				ri[j] += xi * r[j];
		}
	}
	for (i = 0; i < cols; i++)
		for (j = i; j < cols; j++) {
			ref[i * cols + j] *= 2.0 / (double)nseq;
			ref[j * cols + i] = ref[i * cols + j];
		}
	tref = now() - t0;
	printf("reference (float64 loops): %.1f ms\n", tref * 1e3);

	/* calib */
	memset(&cfg, 0, sizeof(cfg));
	cfg.dim = cols;
	cfg.hidden_dim = cols;
	cfg.n_layers = 1;
	mcb_calib_opts_default(&o);
	o.points = MCB_CALIB_POINT(MCB_CAPTURE_ATTN_IN);
	o.max_samples = 0;
	o.threads = threads;
	if (mcb_calib_new(&cfg, &o, &c, &e)) {
		fprintf(stderr, "bench_hessian: %s\n", e.msg);
		return 1;
	}
	t0 = now();
	for (t = 0; t < n; t += seq) {
		mcb_calib_capture(c, 0, MCB_CAPTURE_ATTN_IN, x + t * cols, n - t < seq ? n - t : seq,
				  cols);
		mcb_calib_end_sequence(c);
	}
	if (mcb_calib_finish(c, &e) || mcb_calib_get(c, 0, MCB_CAPTURE_ATTN_IN, &st)) {
		fprintf(stderr, "bench_hessian: %s\n", e.msg);
		return 1;
	}
	t1 = now();
	report("calib", st.hessian, ref, cols, t1 - t0, n);
	mcb_calib_free(c);

	/* float accumulators, one thread */
	mcb_blas_set_threads(1);
	h = calloc((size_t)(cols * cols), sizeof(float));
	t0 = now();
	for (t = 0; t < n; t += seq)
		b->ssyrk(ROW_MAJOR, UPPER, TRANS, (int)cols, (int)(n - t < seq ? n - t : seq), 1.0f,
			 x + t * cols, (int)cols, 1.0f, h, (int)cols);
	for (i = 0; i < cols; i++)
		for (j = i; j < cols; j++) {
			h[i * cols + j] = (float)(h[i * cols + j] * (2.0 / (double)nseq));
			h[j * cols + i] = h[i * cols + j];
		}
	t1 = now();
	report("f32-syrk", h, ref, cols, t1 - t0, n);

	memset(h, 0, (size_t)(cols * cols) * sizeof(float));
	t0 = now();
	for (t = 0, i = 0; t < n; t += seq, i++) {
		/* H *= i/(i+1); H += (2/(i+1)) X^T X */
		float beta = (float)i / (float)(i + 1), alpha = 2.0f / (float)(i + 1);

		b->ssyrk(ROW_MAJOR, UPPER, TRANS, (int)cols, (int)(n - t < seq ? n - t : seq), alpha,
			 x + t * cols, (int)cols, beta, h, (int)cols);
	}
	for (i = 0; i < cols; i++)
		for (j = i + 1; j < cols; j++)
			h[j * cols + i] = h[i * cols + j];
	t1 = now();
	report("f32-gptq", h, ref, cols, t1 - t0, n);
	free(h);
	free(ref);
	free(x);
	return 0;
}
