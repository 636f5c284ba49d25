/*
 * Calibration statistics (runtime/calib.c) and the calibrate step: the
 * Hessian against a double-precision X^T X of the rows the engine captured
 * (recorded by a second hook in front of the accumulator), the column
 * statistics against direct sums, the reservoir against an independent
 * replay, bit-identical results at any thread count and batching, the
 * artefact's round trip and its hostile variants, the memory budget, and
 * stories260K (8 sequences x 128 tokens) when ../shared has it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "steprun.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/calib.h"
#include "mcb/dataset.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/rng.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

/* ---- recording the captured rows ---- */

#define MAXL 8

struct rec {
	struct mcb_calib *c;
	float *x[MAXL + 1][MCB_CAPTURE_COUNT]; /* rows captured, per layer (MAXL: output) */
	int64_t n[MAXL + 1][MCB_CAPTURE_COUNT], cap[MAXL + 1][MCB_CAPTURE_COUNT];
	int64_t cols[MAXL + 1][MCB_CAPTURE_COUNT];
};

static void rec_hook(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		     int64_t rows, int64_t cols)
{
	struct rec *r = ctx;
	int l = layer < 0 ? MAXL : layer;

	if (l <= MAXL) {
		if (r->n[l][pt] + rows > r->cap[l][pt]) {
			r->cap[l][pt] = (r->n[l][pt] + rows) * 2;
			r->x[l][pt] = realloc(r->x[l][pt], (size_t)(r->cap[l][pt] * cols) * sizeof(float));
		}
		memcpy(r->x[l][pt] + r->n[l][pt] * cols, x, (size_t)(rows * cols) * sizeof(float));
		r->n[l][pt] += rows;
		r->cols[l][pt] = cols;
	}
	mcb_calib_capture(r->c, layer, pt, x, rows, cols);
}

static void rec_free(struct rec *r)
{
	int l, p;

	for (l = 0; l <= MAXL; l++)
		for (p = 0; p < MCB_CAPTURE_COUNT; p++)
			free(r->x[l][p]);
}

/*
 * Check s against statistics computed here in double from the rows x
 * (n, cols): H within 2e-6 of (2/nseq) X^T X, normalised by sqrt(Hii Hjj);
 * mean/sum_sq to float rounding; max exact; samples as an independent
 * replay of Algorithm R picks them.  Returns the worst H error.
 */
static double check_stats(const struct mcb_calib_stats *s, const float *x, int64_t n,
			  int64_t cols, uint64_t nseq, int64_t max_samples, uint64_t seed)
{
	double *ref = calloc((size_t)(cols * cols), sizeof(double)), worst = 0;
	int64_t t, i, j, k;
	struct mcb_rng rng;
	int64_t *pick;

	CHECK_EQ(s->cols, cols);
	for (t = 0; t < n; t++) {
		const float *r = x + t * cols;

		for (i = 0; i < cols; i++)
			for (j = i; j < cols; j++)
				ref[i * cols + j] += (double)r[i] * r[j];
	}
	for (i = 0; i < cols; i++)
		for (j = i; j < cols; j++) {
			double want = ref[i * cols + j] * 2.0 / (double)nseq;
			double norm = sqrt(ref[i * cols + i] * ref[j * cols + j]) * 2.0 / (double)nseq;
			double err = fabs(s->hessian[i * cols + j] - want) / (norm > 0 ? norm : 1);

			if (err > worst)
				worst = err;
			if (s->hessian[i * cols + j] != s->hessian[j * cols + i]) {
				mcbt_fail(__FILE__, __LINE__, "H not symmetric at %lld,%lld",
					  (long long)i, (long long)j);
				i = cols;
				break;
			}
		}
	CHECK(worst < 2e-6);
	for (i = 0; i < cols; i++) {
		double sa = 0, sq = 0;
		float mx = 0;

		for (t = 0; t < n; t++) {
			float v = x[t * cols + i];

			sa += fabsf(v);
			sq += (double)v * v;
			if (fabsf(v) > mx)
				mx = fabsf(v);
		}
		if (s->mean_abs[i] != (float)(sa / (double)n) || s->sum_sq[i] != (float)sq ||
		    s->max_abs[i] != mx) {
			mcbt_fail(__FILE__, __LINE__, "column %lld: mean %g/%g sum_sq %g/%g max %g/%g",
				  (long long)i, (double)s->mean_abs[i], sa / (double)n,
				  (double)s->sum_sq[i], sq, (double)s->max_abs[i], (double)mx);
			break;
		}
	}
	/* Algorithm R, replayed: pick[slot] = token */
	k = n < max_samples ? n : max_samples;
	CHECK_EQ(s->nsamples, k);
	pick = malloc((size_t)(max_samples ? max_samples : 1) * sizeof(*pick));
	mcb_rng_seed(&rng, seed);
	for (t = 0; t < n; t++) {
		uint64_t slot = (uint64_t)t;

		if (max_samples && t >= max_samples)
			slot = mcb_rng_below(&rng, (uint64_t)t + 1);
		if (slot < (uint64_t)max_samples)
			pick[slot] = t;
	}
	/* in token order */
	for (i = 1; i < k; i++)
		for (j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
			int64_t tmp = pick[j];

			pick[j] = pick[j - 1];
			pick[j - 1] = tmp;
		}
	for (i = 0; i < k; i++)
		if (memcmp(s->samples + i * cols, x + pick[i] * cols, (size_t)cols * sizeof(float))) {
			mcbt_fail(__FILE__, __LINE__, "sample %lld is not token %lld", (long long)i,
				  (long long)pick[i]);
			break;
		}
	free(pick);
	free(ref);
	return worst;
}

/* Fill n token ids of sequence i deterministically. */
static void make_tokens(int32_t *t, int64_t n, int64_t vocab, uint64_t seed)
{
	struct mcb_rng r;
	int64_t i;

	mcb_rng_seed(&r, seed);
	t[0] = 1;
	for (i = 1; i < n; i++)
		t[i] = (int32_t)mcb_rng_below(&r, (uint64_t)vocab);
}

static const int64_t seq_lens[] = {40, 64, 17, 64, 3, 64, 50, 64};
#define NSEQ ((int)(sizeof(seq_lens) / sizeof(seq_lens[0])))

/* Run the engine over the test sequences into a calib with options o,
 * recording the rows in r. */
static void run_engine(const struct mcb_model *m, const struct mcb_calib_opts *o, struct rec *r,
		       int engine_threads)
{
	struct mcb_engine_opts eo = {engine_threads, MCB_ENGINE_EXACT, 0};
	struct mcb_engine *en = NULL;
	struct mcb_errctx e;
	int32_t toks[64];
	int i;

	CHECK_OK(mcb_calib_new(&m->cfg, o, &r->c, &e), &e);
	CHECK_OK(mcb_engine_new(m, &eo, &en, &e), &e);
	if (!r->c || !en)
		return;
	mcb_engine_set_capture(en, rec_hook, r);
	for (i = 0; i < NSEQ; i++) {
		make_tokens(toks, seq_lens[i], m->cfg.vocab_size, 100 + (uint64_t)i);
		mcb_engine_reset(en);
		CHECK_OK(mcb_engine_eval(en, toks, seq_lens[i], NULL, NULL, &e), &e);
		mcb_calib_end_sequence(r->c);
	}
	CHECK_OK(mcb_calib_finish(r->c, &e), &e);
	mcb_engine_free(en);
}

/* The engine's captures of a synthetic model: every statistic of every
 * (layer, point), the classifier's input included, against direct sums. */
static void test_engine_stats(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_calib_opts o;
	struct mcb_model m;
	struct mcb_errctx e;
	struct rec r;
	char path[4096];
	double worst = 0;
	int l, p;

	snprintf(path, sizeof(path), "%s/synthetic.bin", dir);
	/* hidden 300: ffn_down spans two Hessian tiles (256 + 44) */
	mcbt_write_llama2c(path, 64, 300, 2, 4, 2, 300, 64);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(path, &m, &e), &e);
	memset(&r, 0, sizeof(r));
	mcb_calib_opts_default(&o);
	o.points = MCB_CALIB_ALL_POINTS;
	o.max_samples = 100;
	o.seed = 7;
	run_engine(&m, &o, &r, 1);
	if (!r.c)
		goto out;
	CHECK_EQ(mcb_calib_tokens(r.c), 366);
	CHECK_EQ(mcb_calib_sequences(r.c), NSEQ);
	for (l = 0; l <= 2; l++)
		for (p = 0; p < MCB_CAPTURE_COUNT; p++) {
			struct mcb_calib_stats s;
			int rl = l == 2 ? MAXL : l;
			double w;

			if ((l == 2) != (p == MCB_CAPTURE_OUTPUT))
				continue;
			CHECK_OK(mcb_calib_get(r.c, l == 2 ? -1 : l, (enum mcb_capture_point)p, &s), &e);
			CHECK_EQ(r.n[rl][p], 366);
			w = check_stats(&s, r.x[rl][p], r.n[rl][p], r.cols[rl][p], NSEQ, 100, 7);
			if (w > worst)
				worst = w;
		}
	printf("    engine captures: worst |H - H_double| / sqrt(Hii Hjj) = %.2e\n", worst);
	{
		struct mcb_calib_stats s;

		CHECK_EQ(mcb_calib_get(r.c, 5, MCB_CAPTURE_ATTN_IN, &s), MCB_ENOENT);
	}
out:
	mcb_calib_free(r.c);
	rec_free(&r);
	mcb_model_release(&m);
}

/* Synthetic rows fed directly: the same bits with 1 or 3 threads and with
 * any cut of the rows into captures; the sum over several blocks. */
static void feed(struct mcb_calib *c, const float *x, const float *h, int64_t n, int64_t chunk,
		 int64_t dim, int64_t hidden)
{
	int64_t t, l;

	for (t = 0; t < n; t += chunk) {
		int64_t rows = n - t < chunk ? n - t : chunk;

		for (l = 0; l < 2; l++) {
			mcb_calib_capture(c, (int)l, MCB_CAPTURE_ATTN_IN, x + t * dim, rows, dim);
			mcb_calib_capture(c, (int)l, MCB_CAPTURE_FFN_DOWN, h + t * hidden, rows, hidden);
			/* not selected: ignored */
			mcb_calib_capture(c, (int)l, MCB_CAPTURE_FFN_IN, x + t * dim, rows, dim);
		}
	}
}

static void synth(float *x, int64_t n, int64_t cols, uint64_t seed)
{
	struct mcb_rng r;
	int64_t i, j;

	mcb_rng_seed(&r, seed);
	for (i = 0; i < n; i++)
		for (j = 0; j < cols; j++) {
			/* channel-dependent scale and offset, a few outlier channels */
			double g = mcb_rng_double(&r) + mcb_rng_double(&r) + mcb_rng_double(&r) - 1.5;
			double sc = j % 37 == 0 ? 20.0 : 1.0 + (double)(j % 5);

			x[i * cols + j] = (float)(g * sc + 0.3 * (double)(j % 3));
		}
}

static void test_invariance(void)
{
	const int64_t dim = 300, hidden = 520, n = 1100;
	struct mcb_llama_config cfg;
	struct mcb_calib_opts o;
	struct mcb_calib *c[3];
	struct mcb_errctx e;
	float *x = malloc((size_t)(n * dim) * sizeof(float));
	float *h = malloc((size_t)(n * hidden) * sizeof(float));
	const int threads[3] = {1, 3, 2};
	const int64_t chunk[3] = {128, 7, 1100};
	int i, l, p;

	memset(&cfg, 0, sizeof(cfg));
	cfg.dim = dim;
	cfg.hidden_dim = hidden;
	cfg.n_layers = 2;
	synth(x, n, dim, 1);
	synth(h, n, hidden, 2);
	mcb_calib_opts_default(&o);
	o.points = MCB_CALIB_POINT(MCB_CAPTURE_ATTN_IN) | MCB_CALIB_POINT(MCB_CAPTURE_FFN_DOWN);
	o.seed = 3;
	for (i = 0; i < 3; i++) {
		o.threads = threads[i];
		c[i] = NULL;
		CHECK_OK(mcb_calib_new(&cfg, &o, &c[i], &e), &e);
		if (!c[i])
			goto out;
		feed(c[i], x, h, n, chunk[i], dim, hidden);
		mcb_calib_end_sequence(c[i]);
		mcb_calib_end_sequence(c[i]);
		CHECK_OK(mcb_calib_finish(c[i], &e), &e);
	}
	for (l = 0; l < 2; l++)
		for (p = 0; p < MCB_CAPTURE_COUNT; p++) {
			struct mcb_calib_stats s[3];
			int64_t cols;

			if (p != MCB_CAPTURE_ATTN_IN && p != MCB_CAPTURE_FFN_DOWN) {
				CHECK_EQ(mcb_calib_get(c[0], l, (enum mcb_capture_point)p, &s[0]),
					 MCB_ENOENT);
				continue;
			}
			for (i = 0; i < 3; i++)
				CHECK_OK(mcb_calib_get(c[i], l, (enum mcb_capture_point)p, &s[i]), &e);
			cols = s[0].cols;
			for (i = 1; i < 3; i++) {
				CHECK(!memcmp(s[0].hessian, s[i].hessian,
					      (size_t)(cols * cols) * sizeof(float)));
				CHECK(!memcmp(s[0].mean_abs, s[i].mean_abs, (size_t)cols * sizeof(float)));
				CHECK(!memcmp(s[0].max_abs, s[i].max_abs, (size_t)cols * sizeof(float)));
				CHECK(!memcmp(s[0].sum_sq, s[i].sum_sq, (size_t)cols * sizeof(float)));
				CHECK_EQ(s[i].nsamples, 512);
				CHECK(!memcmp(s[0].samples, s[i].samples,
					      (size_t)(512 * cols) * sizeof(float)));
			}
			check_stats(&s[0], p == MCB_CAPTURE_ATTN_IN ? x : h, n, cols, 2, 512, 3);
			if (p == MCB_CAPTURE_ATTN_IN && l == 1) {
				/* every set keeps the same tokens */
				struct mcb_calib_stats d;
				int64_t r;

				CHECK_OK(mcb_calib_get(c[0], 0, MCB_CAPTURE_FFN_DOWN, &d), &e);
				for (r = 0; r < 512; r++) {
					int64_t t;

					for (t = 0; t < n; t++)
						if (!memcmp(x + t * dim, s[0].samples + r * dim,
							    (size_t)dim * sizeof(float)))
							break;
					CHECK(t < n);
					if (t < n)
						CHECK(!memcmp(h + t * hidden, d.samples + r * hidden,
							      (size_t)hidden * sizeof(float)));
				}
			}
		}
out:
	for (i = 0; i < 3; i++)
		mcb_calib_free(c[i]);
	free(x);
	free(h);
}

/* Options, capture errors, the budget. */
static void test_errors(void)
{
	struct mcb_llama_config cfg;
	struct mcb_calib_opts o;
	struct mcb_calib *c = NULL;
	struct mcb_errctx e;
	float x[2 * 64];
	int i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.dim = 64;
	cfg.hidden_dim = 100;
	cfg.n_layers = 3;
	for (i = 0; i < 2 * 64; i++)
		x[i] = (float)i / 100.0f;
	mcb_calib_opts_default(&o);
	o.points = 0;
	CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_EINVAL, "capture points");
	mcb_calib_opts_default(&o);
	o.layer_first = 3;
	CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_EINVAL, "outside the model");
	o.layer_first = 1;
	o.layer_count = 3;
	CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_EINVAL, "outside the model");
	mcb_calib_opts_default(&o);
	o.max_samples = -1;
	CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_EINVAL, "max_samples");
	CHECK(c == NULL);

	/* the classifier alone needs no layer range */
	mcb_calib_opts_default(&o);
	o.points = MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT);
	o.layer_first = 99;
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	mcb_calib_free(c);
	c = NULL;

	/* a slice of layers: other layers are ignored */
	mcb_calib_opts_default(&o);
	o.layer_first = 1;
	o.layer_count = 1;
	o.points = MCB_CALIB_POINT(MCB_CAPTURE_ATTN_IN);
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	if (c) {
		struct mcb_calib_stats s;

		mcb_calib_capture(c, 0, MCB_CAPTURE_ATTN_IN, x, 2, 64);
		mcb_calib_capture(c, 1, MCB_CAPTURE_ATTN_IN, x, 2, 64);
		mcb_calib_capture(c, 2, MCB_CAPTURE_ATTN_IN, x, 2, 64);
		CHECK_ERR(mcb_calib_finish(c, &e), &e, MCB_EINVAL, "no sequence");
		mcb_calib_free(c);
		c = NULL;
		CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
		CHECK_EQ(mcb_calib_get(c, 1, MCB_CAPTURE_ATTN_IN, &s), MCB_EINVAL);
		mcb_calib_capture(c, 1, MCB_CAPTURE_ATTN_IN, x, 2, 64);
		mcb_calib_end_sequence(c);
		CHECK_OK(mcb_calib_finish(c, &e), &e);
		CHECK_OK(mcb_calib_finish(c, &e), &e);
		CHECK_EQ(mcb_calib_tokens(c), 2);
		CHECK_OK(mcb_calib_get(c, 1, MCB_CAPTURE_ATTN_IN, &s), &e);
		CHECK_EQ(mcb_calib_get(c, 0, MCB_CAPTURE_ATTN_IN, &s), MCB_ENOENT);
		mcb_calib_capture(c, 1, MCB_CAPTURE_ATTN_IN, x, 2, 64);
		CHECK_ERR(mcb_calib_status(c, &e), &e, MCB_EINVAL, "after finish");
		mcb_calib_free(c);
		c = NULL;
	}

	/* no token at all */
	mcb_calib_opts_default(&o);
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	mcb_calib_end_sequence(c);
	CHECK_ERR(mcb_calib_finish(c, &e), &e, MCB_EINVAL, "no token");
	mcb_calib_free(c);

	/* wrong width: sticky, reported once, later captures ignored */
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	mcb_calib_capture(c, 2, MCB_CAPTURE_FFN_DOWN, x, 2, 64);
	mcb_calib_capture(c, 0, MCB_CAPTURE_ATTN_IN, x, 2, 64);
	CHECK_ERR(mcb_calib_status(c, &e), &e, MCB_EINVAL, "blk.2.ffn_down input has 64 columns");
	CHECK_ERR(mcb_calib_finish(c, &e), &e, MCB_EINVAL, "expected 100");
	mcb_calib_free(c);

	/* a non-finite activation */
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	x[70] = NAN;
	mcb_calib_capture(c, 1, MCB_CAPTURE_ATTN_OUT, x, 2, 64);
	CHECK_ERR(mcb_calib_finish(c, &e), &e, MCB_ERANGE, "blk.1.attn_out input is not finite");
	CHECK(strstr(e.msg, "token 1, column 6") != NULL);
	mcb_calib_free(c);

	/* sets that saw different token counts */
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	x[70] = 0;
	mcb_calib_capture(c, 1, MCB_CAPTURE_ATTN_OUT, x, 2, 64);
	mcb_calib_end_sequence(c);
	CHECK_ERR(mcb_calib_finish(c, &e), &e, MCB_EINTERNAL, "different numbers of tokens");
	mcb_calib_free(c);

	/* the budget: a 7B-shaped model does not fit 4 GiB */
	cfg.dim = 4096;
	cfg.hidden_dim = 11008;
	cfg.n_layers = 32;
	mcb_calib_opts_default(&o);
	o.budget_bytes = 4ull << 30;
	{
		/* per layer: three dim-wide sets and one hidden-wide */
		uint64_t set_d = 4096ull * 4097 * 4 + 256ull * 4096 * 4 + 4096ull * 28 +
				 512ull * (4096 * 4 + 8);
		uint64_t set_h = 11008ull * 11009 * 4 + 256ull * 11008 * 4 + 11008ull * 28 +
				 512ull * (11008 * 4 + 8);
		uint64_t tile = 256ull * 256 * 4;

		CHECK(mcb_calib_bytes(&cfg, &o) == 32 * (3 * set_d + set_h) + tile);
		CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_ERANGE,
			  "calibrate at most 5 layers per pass");
		CHECK(strstr(e.msg, "of 32 layers need 22.6 GiB") != NULL);
		o.budget_bytes = 100u << 20;
		CHECK_ERR(mcb_calib_new(&cfg, &o, &c, &e), &e, MCB_ERANGE, "not even one layer");
	}
}

/* ---- the step and the artefact ---- */

/* A tokens file with the test sequences. */
static void write_tokens(const char *path, int64_t vocab)
{
	struct mcb_dataset ds;
	struct mcb_errctx e;
	int32_t toks[64];
	int i;

	mcb_dataset_init(&ds);
	for (i = 0; i < NSEQ; i++) {
		make_tokens(toks, seq_lens[i], vocab, 100 + (uint64_t)i);
		mcb_dataset_add_tokens(&ds, toks, (size_t)seq_lens[i], -1, -1);
	}
	CHECK_OK(mcb_dataset_write_tokens(&ds, path, &e), &e);
	mcb_dataset_release(&ds);
}

static int same_file(const char *a, const char *b)
{
	struct mcb_buf x = MCB_BUF_INIT, y = MCB_BUF_INIT;
	struct mcb_errctx e;
	int same;

	CHECK_OK(mcb_os_read_file(a, 1u << 30, &x, &e), &e);
	CHECK_OK(mcb_os_read_file(b, 1u << 30, &y, &e), &e);
	same = x.len == y.len && !memcmp(x.data, y.data, x.len);
	mcb_buf_release(&x);
	mcb_buf_release(&y);
	return same;
}

/* Every set of the file equals the in-memory statistics bit for bit. */
static void compare_file(struct mcb_calib_file *f, const struct mcb_calib *c, int64_t layers)
{
	struct mcb_errctx e;
	int l, p, nsets = 0;

	for (l = -1; l < layers; l++)
		for (p = 0; p < MCB_CAPTURE_COUNT; p++) {
			struct mcb_calib_stats a, b;
			int64_t n;

			if ((l < 0) != (p == MCB_CAPTURE_OUTPUT))
				continue;
			if (mcb_calib_get(c, l, (enum mcb_capture_point)p, &a)) {
				CHECK_EQ(mcb_calib_file_get(f, l, (enum mcb_capture_point)p, &b, &e),
					 MCB_ENOENT);
				continue;
			}
			CHECK_OK(mcb_calib_file_get(f, l, (enum mcb_capture_point)p, &b, &e), &e);
			n = a.cols;
			CHECK_EQ(b.cols, n);
			CHECK_EQ(b.nsamples, a.nsamples);
			if (b.cols != n || b.nsamples != a.nsamples)
				continue;
			CHECK(!memcmp(a.hessian, b.hessian, (size_t)(n * n) * sizeof(float)));
			CHECK(!memcmp(a.mean_abs, b.mean_abs, (size_t)n * sizeof(float)));
			CHECK(!memcmp(a.max_abs, b.max_abs, (size_t)n * sizeof(float)));
			CHECK(!memcmp(a.sum_sq, b.sum_sq, (size_t)n * sizeof(float)));
			CHECK(a.nsamples == 0 ||
			      !memcmp(a.samples, b.samples, (size_t)(a.nsamples * n) * sizeof(float)));
			nsets++;
		}
	CHECK(nsets > 0);
}

static void test_step(void)
{
	struct mcbt_run r;
	struct mcb_calib_file *f = NULL;
	struct mcb_calib_opts o;
	struct mcb_model m;
	struct mcb_errctx e;
	struct rec rc;
	const char *src, *model, *data, *calib;
	const struct mcb_tensor *t;
	const char *params = "{\"samples\": 8, \"seq_len\": 64, \"max_samples\": 100, \"seed\": 7, "
			     "\"points\": [\"attn_in\", \"attn_out\", \"ffn_in\", \"ffn_down\", "
			     "\"output\"]}";

	memset(&r, 0, sizeof(r));
	memset(&rc, 0, sizeof(rc));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	src = mcbt_run_path(&r, ".", "synthetic.bin");
	data = mcbt_run_path(&r, ".", "calib.tokens");
	mcbt_write_llama2c(src, 64, 300, 2, 4, 2, 300, 64);
	write_tokens(data, 300);
	mcbt_run_input(&r, "source", src);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"auto\"}", "import"), &r.e);
	model = mcbt_run_path(&r, "import", "model.safetensors");

	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_calibrate, params, "calib1"), &r.e);
	CHECK(strstr(mcb_buf_str(&r.log), "calibrated on 8 sequences, 366 tokens") != NULL);
	calib = mcbt_run_path(&r, "calib1", "calib.safetensors");

	/* any thread count: the same bytes */
	r.threads = 2;
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_calibrate, params, "calib2"), &r.e);
	CHECK(same_file(calib, mcbt_run_path(&r, "calib2", "calib.safetensors")));
	r.threads = 1;

	/* the artefact reads back as the statistics computed in-process */
	mcb_model_init(&m);
	CHECK_OK(mcb_model_load_ir(model, &m, &e), &e);
	mcb_calib_opts_default(&o);
	o.points = MCB_CALIB_ALL_POINTS;
	o.max_samples = 100;
	o.seed = 7;
	run_engine(&m, &o, &rc, 1);
	CHECK_OK(mcb_calib_open(calib, &f, &e), &e);
	if (f && rc.c) {
		CHECK_EQ(mcb_calib_file_tokens(f), 366);
		CHECK_EQ(mcb_calib_file_sequences(f), 8);
		CHECK_EQ(mcb_calib_file_layers(f), 2);
		CHECK_STR(mcb_calib_file_meta(f, "points"), "attn_in,attn_out,ffn_in,ffn_down,output");
		CHECK_STR(mcb_calib_file_meta(f, "mode"), "exact");
		CHECK_STR(mcb_calib_file_meta(f, "seq_len"), "64");
		CHECK_STR(mcb_calib_file_meta(f, "samples"), "100");
		compare_file(f, rc.c, 2);
		CHECK_OK(mcb_calib_file_verify(f, &e), &e);
		CHECK_OK(mcb_calib_file_tensor(f, "blk.1.ffn_down.hessian", &t, &e), &e);
		CHECK(t && t->shape[0] == 300 && t->shape[1] == 300);
		CHECK_ERR(mcb_calib_file_tensor(f, "blk.2.ffn_down.hessian", &t, &e), &e, MCB_ENOENT,
			  "no tensor");
		CHECK_ERR(mcb_calib_file_tensor(f, "blk.1.ffn_down.weight", &t, &e), &e, MCB_ENOENT,
			  "no tensor");
	}
	mcb_calib_close(f);
	f = NULL;

	/* shorter sequences, a slice of layers, fewer items than asked */
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_calibrate,
			  "{\"samples\": 20, \"seq_len\": 16, \"max_samples\": 0, "
			  "\"layer_first\": 1, \"layer_count\": 1}", "calib3"),
		 &r.e);
	CHECK(strstr(mcb_buf_str(&r.log), "only 8 sequences") != NULL);
	CHECK_OK(mcb_calib_open(mcbt_run_path(&r, "calib3", "calib.safetensors"), &f, &e), &e);
	if (f) {
		struct mcb_calib_stats s;

		/* 7 sequences cut to 16 tokens, one of 3 */
		CHECK_EQ(mcb_calib_file_tokens(f), 7 * 16 + 3);
		CHECK_EQ(mcb_calib_file_get(f, 0, MCB_CAPTURE_ATTN_IN, &s, &e), MCB_ENOENT);
		CHECK_EQ(mcb_calib_file_get(f, 1, MCB_CAPTURE_OUTPUT, &s, &e), MCB_ENOENT);
		CHECK_OK(mcb_calib_file_get(f, 1, MCB_CAPTURE_FFN_DOWN, &s, &e), &e);
		CHECK(s.nsamples == 0 && s.samples == NULL);
		CHECK_OK(mcb_calib_file_verify(f, &e), &e);
	}
	mcb_calib_close(f);

	/* parameter errors and the budget */
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_calibrate, "{\"points\": [\"attn\"]}", "bad1"), &r.e,
		  MCB_EINVAL, "unknown capture point 'attn'");
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_calibrate, "{\"seq_len\": 65}", "bad2"), &r.e, MCB_ERANGE,
		  "do not fit the model's context");
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_calibrate, "{\"memory_mb\": 1}", "bad3"), &r.e, MCB_ERANGE,
		  "memory budget is 1.0 MiB");
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", data);
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_calibrate, "{\"mode\": \"fast\"}", "bad4"), &r.e,
		  MCB_EINVAL, "unknown engine mode");

	mcb_calib_free(rc.c);
	rec_free(&rc);
	mcb_model_release(&m);
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

/* ---- hostile artefacts ---- */

/* A writable copy of a safetensors file's tensors and metadata. */
struct copy {
	struct mcb_tensor *t;
	size_t n;
	json_t *md;
};

static int load_copy(const char *path, struct copy *c)
{
	struct mcb_st_file f;
	struct mcb_errctx e;
	size_t i;

	if (mcb_st_open(path, &f, &e))
		return -1;
	c->n = f.ntensors;
	c->t = calloc(f.ntensors + 1, sizeof(*c->t));
	for (i = 0; i < f.ntensors; i++) {
		c->t[i] = f.tensors[i];
		c->t[i].name = strdup(f.tensors[i].name);
		c->t[i].data = malloc(f.tensors[i].nbytes + 1);
		memcpy(c->t[i].data, f.tensors[i].data, f.tensors[i].nbytes);
	}
	c->md = json_deep_copy(f.metadata);
	mcb_st_close(&f);
	return 0;
}

static struct mcb_tensor *copy_find(struct copy *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (!strcmp(c->t[i].name, name))
			return &c->t[i];
	CHECK(0);
	return &c->t[0];
}

static void save_copy(struct copy *c, const char *path)
{
	const struct mcb_tensor **p = calloc(c->n + 1, sizeof(*p));
	struct mcb_errctx e;
	size_t i;

	for (i = 0; i < c->n; i++)
		p[i] = &c->t[i];
	CHECK_OK(mcb_st_write(path, p, c->n, c->md, &e), &e);
	free(p);
}

static void free_copy(struct copy *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free((char *)c->t[i].name);
		free(c->t[i].data);
	}
	free(c->t);
	json_decref(c->md);
}

enum { AT_OPEN, AT_USE };

/* The artefact at path must fail at open or at first use with code and sub. */
static void expect_bad(const char *path, int when, int code, const char *sub)
{
	struct mcb_calib_file *f = NULL;
	struct mcb_errctx e;

	if (when == AT_OPEN) {
		CHECK_ERR(mcb_calib_open(path, &f, &e), &e, code, sub);
		CHECK(f == NULL);
		mcb_calib_close(f);
		return;
	}
	CHECK_OK(mcb_calib_open(path, &f, &e), &e);
	if (f)
		CHECK_ERR(mcb_calib_file_verify(f, &e), &e, code, sub);
	mcb_calib_close(f);
}

static void test_hostile(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_llama_config cfg;
	struct mcb_calib_opts o;
	struct mcb_calib *c = NULL;
	struct mcb_errctx e;
	struct copy cp;
	char good[4096], bad[4096];
	float x[20 * 40];
	int i, v;

	memset(&cfg, 0, sizeof(cfg));
	cfg.dim = 24;
	cfg.hidden_dim = 40;
	cfg.n_layers = 2;
	for (i = 0; i < 20 * 40; i++)
		x[i] = sinf((float)i * 0.37f) * (float)(1 + i % 7);
	mcb_calib_opts_default(&o);
	o.max_samples = 5;
	CHECK_OK(mcb_calib_new(&cfg, &o, &c, &e), &e);
	if (!c)
		return;
	for (i = 0; i < 2; i++) {
		mcb_calib_capture(c, i, MCB_CAPTURE_ATTN_IN, x, 20, 24);
		mcb_calib_capture(c, i, MCB_CAPTURE_ATTN_OUT, x + 1, 20, 24);
		mcb_calib_capture(c, i, MCB_CAPTURE_FFN_IN, x + 2, 20, 24);
		mcb_calib_capture(c, i, MCB_CAPTURE_FFN_DOWN, x, 20, 40);
	}
	mcb_calib_end_sequence(c);
	CHECK_OK(mcb_calib_finish(c, &e), &e);
	snprintf(good, sizeof(good), "%s/good.safetensors", dir);
	snprintf(bad, sizeof(bad), "%s/bad.safetensors", dir);
	{
		json_t *md = json_pack("{s:s}", "tokens", "5");

		CHECK_ERR(mcb_calib_write(c, good, md, &e), &e, MCB_EINVAL, "the format's own");
		json_decref(md);
	}
	CHECK_OK(mcb_calib_write(c, good, NULL, &e), &e);
	mcb_calib_free(c);
	{
		struct mcb_calib_file *f = NULL;

		CHECK_OK(mcb_calib_open(good, &f, &e), &e);
		if (f)
			CHECK_OK(mcb_calib_file_verify(f, &e), &e);
		mcb_calib_close(f);
	}

	/* truncated, and not safetensors at all */
	{
		struct mcb_buf b = MCB_BUF_INIT;

		CHECK_OK(mcb_os_read_file(good, 1 << 24, &b, &e), &e);
		mcbt_write(bad, b.data, b.len - 16);
		expect_bad(bad, AT_OPEN, MCB_EFORMAT, "bad.safetensors");
		mcbt_write(bad, b.data, 7);
		expect_bad(bad, AT_OPEN, MCB_EFORMAT, "too short");
		mcb_buf_release(&b);
	}

	/* each variant: one mutation of the good file */
	for (v = 0; v < 14; v++) {
		struct mcb_tensor *t;
		float *h;
		int when = AT_OPEN, code = MCB_EFORMAT;
		const char *sub = "";

		if (load_copy(good, &cp)) {
			CHECK(0);
			return;
		}
		h = copy_find(&cp, "blk.1.ffn_down.hessian")->data;
		switch (v) {
		case 0:
			h[3] = NAN;
			when = AT_USE, sub = "element 3 is not finite";
			break;
		case 1:
			h[1 * 40 + 5] += 1.0f;
			when = AT_USE, sub = "is not symmetric ([1][5]";
			break;
		case 2: /* mean_abs one column short */
			t = copy_find(&cp, "blk.0.attn_in.mean_abs");
			t->shape[0] = 23;
			t->nbytes -= 4;
			sub = "'blk.0.attn_in.mean_abs' should be [24]";
			break;
		case 3: /* a missing tensor */
			t = copy_find(&cp, "blk.0.ffn_in.sum_sq");
			free((char *)t->name);
			free(t->data);
			*t = cp.t[--cp.n];
			sub = "'blk.0.ffn_in.sum_sq' is missing";
			break;
		case 4:
			json_object_set_new(cp.md, "mcbuild.calib", json_string("2"));
			code = MCB_EUNSUP, sub = "version \"2\"";
			break;
		case 5:
			json_object_del(cp.md, "mcbuild.calib");
			sub = "not a calibration artefact";
			break;
		case 6: /* a name that does not parse canonically */
			t = copy_find(&cp, "blk.1.attn_in.hessian");
			free((char *)t->name);
			t->name = strdup("blk.01.attn_in.hessian");
			sub = "unexpected tensor 'blk.01.attn_in.hessian'";
			break;
		case 7:
			json_object_set_new(cp.md, "tokens", json_string("-3"));
			sub = "'tokens' is \"-3\"";
			break;
		case 8:
			json_object_set_new(cp.md, "sequences", json_string("21"));
			sub = "'sequences' is \"21\"";
			break;
		case 9: /* a sample beyond max |x| */
			((float *)copy_find(&cp, "blk.0.ffn_in.samples")->data)[7] = 1e6f;
			when = AT_USE, sub = "exceeds max |x|";
			break;
		case 10: /* H scaled: its diagonal disagrees with sum_sq */
			for (i = 0; i < 40 * 40; i++)
				h[i] *= 2;
			when = AT_USE, sub = "diagonal 0 is";
			break;
		case 11: /* a layer the model does not have */
			t = copy_find(&cp, "blk.1.attn_in.hessian");
			free((char *)t->name);
			t->name = strdup("blk.2.attn_in.hessian");
			sub = "unexpected tensor 'blk.2.attn_in.hessian'";
			break;
		case 12:
			t = copy_find(&cp, "blk.0.attn_out.max_abs");
			t->dtype = MCB_DT_I32;
			sub = "is I32, not F32";
			break;
		case 13:
			((float *)copy_find(&cp, "blk.1.attn_out.mean_abs")->data)[2] = 1e3f;
			when = AT_USE, sub = "exceeds max |x|";
			break;
		}
		save_copy(&cp, bad);
		free_copy(&cp);
		expect_bad(bad, when, code, sub);
	}
}

/* ---- stories260K ---- */

static void test_stories(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	struct mcb_calib_file *f = NULL;
	struct mcb_errctx e;
	struct mcbt_run r;
	int64_t t0, t1;
	const char *model, *py;

	if (!p)
		return;
	memset(&r, 0, sizeof(r));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	mcbt_run_input(&r, "source", p);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"auto\"}", "import"), &r.e);
	model = mcbt_run_path(&r, "import", "model.safetensors");
	mcbt_run_input(&r, "model", model);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_sample,
			  "{\"sequences\": 8, \"length\": 128, \"seed\": 1, \"temperature\": 1.0, "
			  "\"top_k\": 0}", "sample"),
		 &r.e);
	mcbt_run_input(&r, "model", model);
	mcbt_run_input(&r, "data", mcbt_run_path(&r, "sample", "data.tokens"));
	t0 = mcb_os_now_ns();
	CHECK_OK(mcbt_run_step(&r, &mcb_step_calibrate,
			  "{\"samples\": 8, \"seq_len\": 128, \"points\": [\"attn_in\", "
			  "\"attn_out\", \"ffn_in\", \"ffn_down\", \"output\"]}", "calib"),
		 &r.e);
	t1 = mcb_os_now_ns();
	printf("    stories260K: 8 x 128 tokens calibrated in %.1f ms\n", (double)(t1 - t0) / 1e6);
	CHECK_OK(mcb_calib_open(mcbt_run_path(&r, "calib", "calib.safetensors"), &f, &e), &e);
	if (f) {
		struct mcb_calib_stats s;

		CHECK_EQ(mcb_calib_file_tokens(f), 1024);
		CHECK_EQ(mcb_calib_file_sequences(f), 8);
		CHECK_OK(mcb_calib_file_verify(f, &e), &e);
		CHECK_OK(mcb_calib_file_get(f, 4, MCB_CAPTURE_FFN_DOWN, &s, &e), &e);
		CHECK_EQ(s.cols, 172);
		CHECK_EQ(s.nsamples, 512);
	}
	mcb_calib_close(f);
	/* every statistic against an independent float64 forward pass */
	py = mcbt_python("tests/compat/calib_ref.py");
	if (py) {
		char cmd[16384];

		snprintf(cmd, sizeof(cmd), "%s tests/compat/calib_ref.py '%s' '%s' '%s' >&2", py,
			 mcbt_run_path(&r, "calib", "calib.safetensors"), p,
			 mcbt_run_path(&r, "sample", "data.tokens"));
		CHECK_EQ(system(cmd), 0);
	}
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

int main(void)
{
	RUN(test_engine_stats);
	RUN(test_invariance);
	RUN(test_errors);
	RUN(test_step);
	RUN(test_hostile);
	RUN(test_stories);
	return mcbt_done();
}
