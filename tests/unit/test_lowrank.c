/*
 * Unit tests for lowrank: the rank rule and the break-even test on
 * hand-made values; the factorization of random matrices (tall, wide,
 * square, rank-deficient, one row, one column, clamped) against
 * tests/compat/lowrank_ref.py (NumPy's SVD, the same rule and signs):
 * singular values, chosen rank, A and B, energy and reconstruction error;
 * the energy rule's edges; the "lowrank" qtensor record (values, bytes,
 * hostile records); the step on a synthetic model (import -> lowrank ->
 * assemble -> engine, measure, quantize or prune after it, gguf and
 * safetensors exports, refusal of a quantized weight) and on stories260K;
 * bit-identical step output with 1 and 2 BLAS threads.
 *
 * The NumPy cross-check needs a python3 that imports numpy ($MCB_PYTHON,
 * else python3, else /usr/bin/python3); without one it is SKIPPED loudly.
 * Run from the repository root (make unit does).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "steprun.h"
#include "mcb/arena.h"
#include "mcb/blas.h"
#include "mcb/buf.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/hash.h"
#include "mcb/lowrank.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/rng.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

static struct mcb_rng rng;

static double gauss(void)
{
	return mcbt_gauss(&rng);
}

/* ||W - A B||_F / ||W||_F in double, A (rows, r), B (r, cols) float. */
static double recon_error(const float *w, const float *a, const float *b, int64_t rows,
			  int64_t cols, int64_t r)
{
	double num = 0, den = 0;
	int64_t i, j, k;

	for (i = 0; i < rows; i++)
		for (j = 0; j < cols; j++) {
			double p = 0;

			for (k = 0; k < r; k++)
				p += (double)a[i * r + k] * (double)b[k * cols + j];
			num += (w[i * cols + j] - p) * (w[i * cols + j] - p);
			den += (double)w[i * cols + j] * w[i * cols + j];
		}
	return den > 0 ? sqrt(num / den) : 0;
}

/* ---- the rule ---- */

static void test_choose(void)
{
	const double s[3] = {3, 2, 1}, zero[4] = {0, 0, 0, 0};

	/* sum s^2 = 14: 9 / 14 = 0.643, 13 / 14 = 0.929 */
	CHECK_EQ(mcb_lowrank_choose(s, 3, 0, 1.0), 3);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 0, 1e-12), 1);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 0, 0.5), 1);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 0, 0.7), 2);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 0, 0.95), 3);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 2, 0), 2);
	CHECK_EQ(mcb_lowrank_choose(s, 3, 5, 0), 3);
	CHECK_EQ(mcb_lowrank_choose(zero, 4, 0, 0.9), 1);
	/* r (rows + cols) < rows cols */
	CHECK(mcb_lowrank_saves(64, 64, 31));
	CHECK(!mcb_lowrank_saves(64, 64, 32));
	CHECK(mcb_lowrank_saves(172, 64, 16));
	CHECK(!mcb_lowrank_saves(1, 17, 1));
	CHECK(!mcb_lowrank_saves(64, 64, 0));
	CHECK(!mcb_lowrank_saves(1LL << 40, 2, 1LL << 40));
}

/* ---- against NumPy ---- */

static int run_ref(const char *py, const char *dir)
{
	char buf[8600], line[256];
	FILE *f;
	int ok;

	snprintf(buf, sizeof(buf), "%s tests/compat/lowrank_ref.py '%s'", py, dir);
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

static double max_abs_f64(const double *x, int64_t n)
{
	double m = 0;
	int64_t i;

	for (i = 0; i < n; i++)
		if (fabs(x[i]) > m)
			m = fabs(x[i]);
	return m;
}

static void test_factor_numpy(void)
{
	static const struct {
		int64_t rows, cols, rank, true_rank;
		double energy;
		int64_t want; /* the rank expected, 0: NumPy's */
	} cases[] = {
		{48, 20, 6, 0, 0, 6},	   /* tall */
		{20, 48, 0, 0, 0.8, 0},	   /* wide */
		{32, 32, 10, 0, 0, 10},	   /* square */
		{40, 30, 0, 5, 1.0, 5},	   /* rank-deficient: energy 1 finds its rank */
		{40, 30, 3, 5, 0, 3},	   /* rank-deficient, below its rank */
		{1, 17, 1, 0, 0, 1},	   /* one row */
		{9, 1, 0, 0, 0.5, 1},	   /* one column */
		{172, 64, 0, 0, 0.9, 0},   /* stories260K's ffn_gate shape */
		{20, 48, 50, 0, 0, 20},	   /* clamped */
	};
	const size_t nc = sizeof(cases) / sizeof(cases[0]);
	const char *py = mcbt_python("tests/compat/lowrank_ref.py"), *dir;
	struct mcb_buf args = MCB_BUF_INIT;
	double worst_s = 0, worst_a = 0, worst_b = 0, worst_err = 0;
	float *w[sizeof(cases) / sizeof(cases[0])];
	struct mcb_errctx e;
	char name[64];
	size_t k;

	mcb_rng_seed(&rng, 20260517);
	dir = mcbt_tmpdir();
	mcb_buf_printf(&args, "{\"cases\": [");
	for (k = 0; k < nc; k++) {
		int64_t rows = cases[k].rows, cols = cases[k].cols, tr = cases[k].true_rank, i, j, q;

		w[k] = mcb_xcalloc((size_t)(rows * cols), sizeof(float));
		if (tr) { /* (rows, tr) x (tr, cols) */
			double *l = mcb_xcalloc((size_t)(rows * tr), sizeof(double));
			double *r = mcb_xcalloc((size_t)(tr * cols), sizeof(double));

			for (i = 0; i < rows * tr; i++)
				l[i] = gauss();
			for (i = 0; i < tr * cols; i++)
				r[i] = gauss();
			for (i = 0; i < rows; i++)
				for (j = 0; j < cols; j++) {
					double p = 0;

					for (q = 0; q < tr; q++)
						p += l[i * tr + q] * r[q * cols + j];
					w[k][i * cols + j] = (float)p;
				}
			free(l);
			free(r);
		} else {
			for (i = 0; i < rows * cols; i++)
				w[k][i] = (float)(0.1 * gauss());
		}
		snprintf(name, sizeof(name), "w%zu.f32", k);
		mcbt_put(dir, name, w[k], (size_t)(rows * cols) * sizeof(float));
		mcb_buf_printf(&args, "%s{\"rows\": %lld, \"cols\": %lld, \"rank\": %lld, "
			       "\"energy\": %.17g}", k ? ", " : "", (long long)rows,
			       (long long)cols, (long long)cases[k].rank, cases[k].energy);
	}
	mcb_buf_printf(&args, "]}");
	mcbt_put(dir, "args.json", args.data, args.len);
	mcb_buf_release(&args);
	if (py && run_ref(py, dir))
		py = NULL;
	for (k = 0; k < nc; k++) {
		int64_t rows = cases[k].rows, cols = cases[k].cols, full = rows < cols ? rows : cols;
		struct mcb_lowrank lr;
		double info[4], *s, *a, *b, amax, bmax, err;
		int64_t i, r;

		CHECK_OK(mcb_lowrank_factor(w[k], rows, cols, cases[k].rank, cases[k].energy, &lr,
					    &e), &e);
		CHECK_EQ(lr.full, full);
		CHECK_EQ(lr.clamped, cases[k].rank > full);
		if (cases[k].want)
			CHECK_EQ(lr.rank, cases[k].want);
		for (i = 1; i < full; i++)
			CHECK(lr.s[i] <= lr.s[i - 1]);
		/* the reconstruction error is what the singular values say */
		err = recon_error(w[k], lr.a, lr.b, rows, cols, lr.rank);
		CHECK(fabs(err - lr.rel_error) < 1e-5);
		if (!py || !lr.s) {
			mcb_lowrank_free(&lr);
			continue;
		}
		snprintf(name, sizeof(name), "info%zu.f64", k);
		if (mcbt_get(dir, name, info, sizeof(info))) {
			mcb_lowrank_free(&lr);
			continue;
		}
		r = (int64_t)info[0];
		CHECK_EQ(lr.rank, r);
		CHECK(fabs(lr.energy - info[1]) < 1e-9);
		CHECK(fabs(lr.rel_error - info[2]) < 1e-9);
		CHECK(fabs(err - info[3]) < 1e-5);
		if (fabs(err - info[3]) > worst_err)
			worst_err = fabs(err - info[3]);
		s = mcb_xcalloc((size_t)full, sizeof(double));
		a = mcb_xcalloc((size_t)(rows * r), sizeof(double));
		b = mcb_xcalloc((size_t)(r * cols), sizeof(double));
		snprintf(name, sizeof(name), "s%zu.f64", k);
		mcbt_get(dir, name, s, (size_t)full * sizeof(double));
		snprintf(name, sizeof(name), "a%zu.f64", k);
		mcbt_get(dir, name, a, (size_t)(rows * r) * sizeof(double));
		snprintf(name, sizeof(name), "b%zu.f64", k);
		mcbt_get(dir, name, b, (size_t)(r * cols) * sizeof(double));
		for (i = 0; i < full; i++) {
			double d = fabs(lr.s[i] - s[i]) / (s[0] > 0 ? s[0] : 1);

			if (d > worst_s)
				worst_s = d;
		}
		amax = max_abs_f64(a, rows * r);
		bmax = max_abs_f64(b, r * cols);
		if (lr.rank == r) {
			double da = 0, db = 0;

			for (i = 0; i < rows * r; i++)
				if (fabs(lr.a[i] - a[i]) > da)
					da = fabs(lr.a[i] - a[i]);
			for (i = 0; i < r * cols; i++)
				if (fabs(lr.b[i] - b[i]) > db)
					db = fabs(lr.b[i] - b[i]);
			da /= amax > 0 ? amax : 1;
			db /= bmax > 0 ? bmax : 1;
			if (da > 1e-5 || db > 1e-5)
				mcbt_fail(__FILE__, __LINE__,
					  "case %zu (%lldx%lld rank %lld): A differs from numpy by "
					  "%.3g, B by %.3g (relative to max)",
					  k, (long long)rows, (long long)cols, (long long)r, da, db);
			if (da > worst_a)
				worst_a = da;
			if (db > worst_b)
				worst_b = db;
		}
		free(s);
		free(a);
		free(b);
		mcb_lowrank_free(&lr);
	}
	CHECK(worst_s < 1e-10);
	if (py)
		printf("  lowrank vs numpy: %zu cases, singular values %.2g (rel. to s0), A %.2g, "
		       "B %.2g (rel. to max), reconstruction error %.2g\n",
		       nc, worst_s, worst_a, worst_b, worst_err);
	for (k = 0; k < nc; k++)
		free(w[k]);
}

/* Energy 1 keeps a full-rank matrix whole; a tiny energy keeps rank 1; a
 * zero matrix keeps rank 1 with nothing lost; bad arguments are refused. */
static void test_energy_edges(void)
{
	struct mcb_lowrank lr;
	struct mcb_errctx e;
	float *w = mcb_xcalloc(24 * 24, sizeof(float));
	int64_t i;

	mcb_rng_seed(&rng, 7);
	for (i = 0; i < 24 * 24; i++)
		w[i] = (float)gauss();
	CHECK_OK(mcb_lowrank_factor(w, 24, 24, 0, 1.0, &lr, &e), &e);
	CHECK_EQ(lr.rank, 24);
	CHECK(lr.energy == 1.0);
	CHECK(lr.rel_error == 0.0);
	CHECK(!mcb_lowrank_saves(24, 24, lr.rank));
	mcb_lowrank_free(&lr);
	CHECK_OK(mcb_lowrank_factor(w, 24, 24, 0, 1e-9, &lr, &e), &e);
	CHECK_EQ(lr.rank, 1);
	CHECK(lr.energy > 0 && lr.energy < 1);
	CHECK(fabs(lr.rel_error - sqrt(1 - lr.energy)) < 1e-9);
	mcb_lowrank_free(&lr);
	memset(w, 0, 24 * 24 * sizeof(float));
	CHECK_OK(mcb_lowrank_factor(w, 24, 24, 0, 0.9, &lr, &e), &e);
	CHECK_EQ(lr.rank, 1);
	CHECK(lr.energy == 1.0 && lr.rel_error == 0.0);
	for (i = 0; i < 24; i++)
		CHECK(lr.a[i] == 0.0f);
	mcb_lowrank_free(&lr);
	CHECK_ERR(mcb_lowrank_factor(w, 24, 24, 0, 0.0, &lr, &e), &e, MCB_EINVAL, "energy");
	mcb_lowrank_free(&lr);
	CHECK_ERR(mcb_lowrank_factor(w, 24, 24, 0, 1.5, &lr, &e), &e, MCB_EINVAL, "energy");
	mcb_lowrank_free(&lr);
	CHECK_ERR(mcb_lowrank_factor(w, 24, 24, -1, 0, &lr, &e), &e, MCB_EINVAL, "rank");
	mcb_lowrank_free(&lr);
	CHECK_ERR(mcb_lowrank_factor(w, 0, 24, 1, 0, &lr, &e), &e, MCB_EINVAL, "empty");
	mcb_lowrank_free(&lr);
	free(w);
}

/* ---- the record ---- */

static void *add(struct mcb_model *m, const char *name, enum mcb_dtype dt, int ndim, int64_t d0,
		 int64_t d1)
{
	int64_t sh[2] = {d0, d1};
	struct mcb_tensor *t;
	struct mcb_errctx e;

	CHECK_OK(mcb_model_new_tensor(m, name, dt, ndim, sh, &t, &e), &e);
	memset(t->data, 0, t->nbytes);
	return t->data;
}

static void set_rec(struct mcb_model *m, const char *name, json_t *rec)
{
	json_t *quant = json_object_get(m->meta, "quant");

	if (!quant) {
		quant = json_object();
		json_object_set_new(m->meta, "quant", quant);
	}
	json_object_set_new(quant, name, rec);
}

/* w: A (8, 3), B (3, 5), a valid record. */
static void lowrank_model(struct mcb_model *m)
{
	float *a, *b;
	int i;

	mcb_model_init(m);
	a = add(m, "w", MCB_DT_F32, 2, 8, 3);
	for (i = 0; i < 24; i++)
		a[i] = (float)(i % 7) * 0.37f - 1.1f;
	b = add(m, "w.lowrank_b", MCB_DT_F32, 2, 3, 5);
	for (i = 0; i < 15; i++)
		b[i] = (float)(i % 4) * -0.61f + 0.9f;
	set_rec(m, "w", json_pack("{s:s, s:s, s:i, s:i, s:s, s:f}", "format", "lowrank", "method",
				  "svd", "rank", 3, "cols", 5, "b", "w.lowrank_b", "energy", 0.75));
}

static void test_record_values(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;
	float row[5];
	int64_t r, c, k;

	lowrank_model(&m);
	CHECK_OK(mcb_qtensor_get(&m, "w", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_LOWRANK);
	CHECK_EQ(q.rows, 8);
	CHECK_EQ(q.cols, 5);
	CHECK_EQ(q.rank, 3);
	CHECK_EQ(mcb_qtensor_bytes(&q), 4 * 3 * (8 + 5));
	for (r = 0; r < 8; r++) {
		const float *a = (const float *)q.codes->data + r * 3, *b = q.b->data;

		mcb_qtensor_row(&q, r, row);
		for (c = 0; c < 5; c++) {
			double p = 0;

			for (k = 0; k < 3; k++) /* the documented order, in double */
				p += (double)a[k] * (double)b[k * 5 + c];
			CHECK(row[c] == (float)p);
		}
	}
	mcb_model_release(&m);
}

/* Refused with MCB_EFORMAT, the message naming the tensor and saying sub. */
#define REFUSE(m, sub)                                                                  \
	do {                                                                            \
		struct mcb_qtensor q_;                                                 \
		struct mcb_errctx e_;                                                  \
		CHECK_ERR(mcb_qtensor_get(m, "w", &q_, &e_), &e_, MCB_EFORMAT, sub);  \
		CHECK(strstr(e_.msg, "'w'") != NULL);                                 \
	} while (0)

static json_t *rec_w(struct mcb_model *m)
{
	return json_object_get(json_object_get(m->meta, "quant"), "w");
}

static void test_hostile_records(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;

	lowrank_model(&m);
	CHECK_OK(mcb_qtensor_get(&m, "w", &q, &e), &e);
	json_object_set_new(rec_w(&m), "rank", json_integer(0));
	REFUSE(&m, "\"rank\" >= 1");
	json_object_set_new(rec_w(&m), "rank", json_string("3"));
	REFUSE(&m, "\"rank\" >= 1");
	json_object_set_new(rec_w(&m), "rank", json_integer(2)); /* A has 3 columns */
	REFUSE(&m, "has 3 columns, the record's rank is 2");
	json_object_set_new(rec_w(&m), "rank", json_integer(3));
	json_object_set_new(rec_w(&m), "cols", json_integer(0));
	REFUSE(&m, "\"cols\" >= 1");
	json_object_set_new(rec_w(&m), "cols", json_integer(2)); /* rank 3 > min(8, 2) */
	REFUSE(&m, "rank 3 is above min(8, 2)");
	json_object_set_new(rec_w(&m), "cols", json_integer(1LL << 62)); /* 8 x 2^62 */
	REFUSE(&m, "overflows");
	json_object_set_new(rec_w(&m), "cols", json_integer(6)); /* B is (3, 5) */
	REFUSE(&m, "must be F32 (3, 6)");
	json_object_set_new(rec_w(&m), "cols", json_integer(5));
	json_object_set_new(rec_w(&m), "energy", json_string("most"));
	REFUSE(&m, "energy");
	json_object_del(rec_w(&m), "energy");
	CHECK_OK(mcb_qtensor_get(&m, "w", &q, &e), &e);
	json_object_del(rec_w(&m), "b");
	REFUSE(&m, "has no 'b'");
	json_object_set_new(rec_w(&m), "b", json_string("nothing"));
	REFUSE(&m, "b tensor 'nothing' is missing");
	json_object_set_new(rec_w(&m), "b", json_integer(1));
	REFUSE(&m, "'b' is not a string");
	json_object_set_new(rec_w(&m), "b", json_string("w.lowrank_b"));
	CHECK_OK(mcb_qtensor_get(&m, "w", &q, &e), &e);
	/* B's dtype and shape */
	mcb_model_remove(&m, "w.lowrank_b");
	add(&m, "w.lowrank_b", MCB_DT_F16, 2, 3, 5);
	REFUSE(&m, "factor B 'w.lowrank_b' must be F32");
	mcb_model_remove(&m, "w.lowrank_b");
	add(&m, "w.lowrank_b", MCB_DT_F32, 1, 15, 0);
	REFUSE(&m, "factor B 'w.lowrank_b' must be F32");
	mcb_model_remove(&m, "w.lowrank_b");
	add(&m, "w.lowrank_b", MCB_DT_F32, 2, 5, 3); /* transposed */
	REFUSE(&m, "factor B 'w.lowrank_b' must be F32 (3, 5)");
	mcb_model_remove(&m, "w.lowrank_b");
	((float *)add(&m, "w.lowrank_b", MCB_DT_F32, 2, 3, 5))[7] = NAN;
	REFUSE(&m, "not finite");
	mcb_model_release(&m);
	/* A's dtype; an infinite A */
	lowrank_model(&m);
	mcb_model_remove(&m, "w");
	add(&m, "w", MCB_DT_F16, 2, 8, 3);
	REFUSE(&m, "factor A must be F32, not F16");
	mcb_model_remove(&m, "w");
	((float *)add(&m, "w", MCB_DT_F32, 2, 8, 3))[5] = INFINITY;
	REFUSE(&m, "not finite");
	mcb_model_release(&m);
}

/* ---- the step ---- */

static int log_has(struct mcbt_run *r, const char *s)
{
	int ok = strstr(mcb_buf_str(&r->log), s) != NULL;

	if (!ok)
		mcbt_fail(__FILE__, __LINE__, "the step log lacks \"%s\":\n%s", s,
			  mcb_buf_str(&r->log));
	return ok;
}

static const char *const linear[] = {"attn_q",	 "attn_k", "attn_v", "attn_output",
				     "ffn_gate", "ffn_up", "ffn_down"};

/* Parameters the lowrank records of part save: sum of rows cols - r (rows +
 * cols); *nfactored the number of records. */
static int64_t saved(const struct mcb_model *part, int *nfactored)
{
	const char *k;
	json_t *rec;
	int64_t n = 0;

	*nfactored = 0;
	json_object_foreach (json_object_get(part->meta, "quant"), k, rec) {
		struct mcb_qtensor q;
		struct mcb_errctx e;

		if (strcmp(json_string_value(json_object_get(rec, "format")), "lowrank"))
			continue;
		CHECK_OK(mcb_qtensor_get(part, k, &q, &e), &e);
		n += q.rows * q.cols - q.rank * (q.rows + q.cols);
		(*nfactored)++;
	}
	return n;
}

/* Logits of a few tokens from m; NULL after a failure. */
static float *logits(const struct mcb_model *m, int64_t ntok)
{
	struct mcb_engine_opts o = {1, MCB_ENGINE_EXACT, 0};
	struct mcb_engine *en = NULL;
	struct mcb_errctx e;
	int32_t toks[16];
	float *out;
	int64_t i;

	for (i = 0; i < ntok; i++)
		toks[i] = (int32_t)(1 + (i * 37) % (m->cfg.vocab_size - 1));
	out = mcb_xcalloc((size_t)(ntok * m->cfg.vocab_size), sizeof(float));
	CHECK_OK(mcb_engine_new(m, &o, &en, &e), &e);
	if (!en) {
		free(out);
		return NULL;
	}
	CHECK_OK(mcb_engine_eval(en, toks, ntok, out, NULL, &e), &e);
	mcb_engine_free(en);
	return out;
}

/* Mean KL(P_a || P_b) per position of logits (n, vocab). */
static double mean_kl(const float *a, const float *b, int64_t n, int64_t vocab)
{
	double kl = 0;
	int64_t t, i;

	for (t = 0; t < n; t++) {
		const float *x = a + t * vocab, *y = b + t * vocab;
		double mx = x[0], my = y[0], zx = 0, zy = 0;

		for (i = 1; i < vocab; i++) {
			mx = x[i] > mx ? x[i] : mx;
			my = y[i] > my ? y[i] : my;
		}
		for (i = 0; i < vocab; i++) {
			zx += exp(x[i] - mx);
			zy += exp(y[i] - my);
		}
		for (i = 0; i < vocab; i++) {
			double lp = x[i] - mx - log(zx), lq = y[i] - my - log(zy);

			kl += exp(lp) * (lp - lq);
		}
	}
	return kl / (double)n;
}

/* measure.json's model parameters of model (with its baseline). */
static int64_t measured_parameters(struct mcbt_run *r, const char *model, const char *baseline,
				   const char *out, int64_t *base)
{
	json_t *j, *mm;
	int64_t n;

	mcbt_run_input(r, "model", model);
	mcbt_run_input(r, "baseline", baseline);
	CHECK_OK(mcbt_run_step(r, &mcb_step_measure,
			  "{\"prompt_tokens\": 4, \"decode_tokens\": 2, \"repeats\": 1, "
			  "\"threads\": 1, \"mode\": \"exact\", \"host\": \"test\"}", out),
		 &r->e);
	j = json_load_file(mcbt_run_path(r, out, "measure.json"), 0, NULL);
	CHECK(j != NULL);
	mm = json_object_get(j, "model");
	n = json_integer_value(json_object_get(mm, "parameters"));
	*base = json_integer_value(json_object_get(mm, "baseline_parameters"));
	json_decref(j);
	return n;
}

/* The dense model of the assembled one: its lowrank weights replaced by
 * F32 products (loaded into *d). */
static void densify(const char *path, struct mcb_model *d)
{
	struct mcb_model m;
	struct mcb_errctx e;
	const char *k;
	json_t *rec;

	mcb_model_init(&m);
	mcb_model_init(d);
	CHECK_OK(mcb_model_load_ir(path, &m, &e), &e);
	CHECK_OK(mcb_model_load_ir(path, d, &e), &e);
	json_object_foreach (json_object_get(m.meta, "quant"), k, rec) {
		struct mcb_qtensor q;
		struct mcb_tensor *t;
		int64_t sh[2], r;

		if (mcb_qtensor_get(&m, k, &q, &e) || q.format != MCB_QF_LOWRANK)
			continue;
		sh[0] = q.rows;
		sh[1] = q.cols;
		mcb_model_remove(d, json_string_value(json_object_get(rec, "b")));
		mcb_model_remove(d, k);
		CHECK_OK(mcb_model_new_tensor(d, k, MCB_DT_F32, 2, sh, &t, &e), &e);
		for (r = 0; r < q.rows; r++)
			mcb_qtensor_row(&q, r, (float *)t->data + r * q.cols);
		json_object_del(json_object_get(d->meta, "quant"), k);
	}
	mcb_model_release(&m);
}

static const char *SYN_PARAMS =
	"{\"method\": \"svd\", \"layer\": 0, \"tensors\": {"
	"\"blk.0.attn_q.weight\": {\"rank\": 8}, "
	"\"blk.0.attn_k.weight\": {\"energy\": 0.5}, "
	"\"blk.0.attn_v.weight\": {\"rank\": 40}, "
	"\"blk.0.attn_output.weight\": {\"rank\": 40}, "
	"\"blk.0.ffn_gate.weight\": {\"energy\": 1.0}, "
	"\"blk.0.ffn_up.weight\": {\"rank\": 16}, "
	"\"blk.0.ffn_down.weight\": {\"energy\": 0.9}}}";

static void test_step_synthetic(void)
{
	struct mcbt_run r;
	struct mcb_model part, orig, asm_, dense, qp;
	struct mcb_errctx e;
	struct mcb_qtensor q;
	char src[4096];
	const char *imp, *lr, *as;
	int64_t drop, params, base;
	float *lb, *la, *ld;
	int nf, i;

	mcbt_run_init(&r);
	snprintf(src, sizeof(src), "%s/m.bin", r.dir);
	mcbt_write_llama2c(src, 64, 96, 2, 4, 2, 300, 32);
	mcbt_run_input(&r, "source", src);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"llama2c\"}", "imp"), &r.e);
	imp = mcbt_run_path(&r, "imp", "model.safetensors");
	mcbt_run_input(&r, "model", imp);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_lowrank, SYN_PARAMS, "lr"), &r.e);
	lr = mcbt_run_path(&r, "lr", "part.safetensors");
	log_has(&r, "blk.0.attn_q.weight 64x64 -> rank 8 (energy ");
	log_has(&r, "1024 of 4096 parameters)");
	log_has(&r, "blk.0.attn_v.weight: rank 40 clamped to 32 (32x64)");
	log_has(&r, "blk.0.attn_v.weight: rank 32 of 32x64 saves nothing; kept dense");
	log_has(&r, "blk.0.attn_output.weight: rank 40 of 64x64 saves nothing; kept dense");
	log_has(&r, "blk.0.ffn_gate.weight: rank 64 of 96x64 saves nothing; kept dense (energy 1");
	log_has(&r, "blk.0.ffn_up.weight 96x64 -> rank 16 (");

	/* the part: records for the factored weights, their products near W */
	mcb_model_init(&part);
	mcb_model_init(&orig);
	CHECK_OK(mcb_model_load_ir_or_part(lr, &part, &e), &e);
	CHECK_OK(mcb_model_load_ir(imp, &orig, &e), &e);
	drop = saved(&part, &nf);
	CHECK(nf >= 3);
	CHECK(json_object_get(json_object_get(part.meta, "quant"), "blk.0.attn_v.weight") == NULL);
	CHECK(json_object_get(json_object_get(part.meta, "quant"), "blk.0.ffn_gate.weight") ==
	      NULL);
	CHECK_OK(mcb_qtensor_get(&part, "blk.0.attn_q.weight", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_LOWRANK);
	CHECK_EQ(q.rank, 8);
	CHECK_EQ(q.codes->shape[1], 8);
	CHECK_STR(q.b->name, "blk.0.attn_q.weight.lowrank_b");
	for (i = 0; i < 7; i++) {
		char name[64];
		const struct mcb_tensor *w;
		json_t *rec;
		float *prod;
		double num = 0, den = 0, en;
		int64_t k;

		snprintf(name, sizeof(name), "blk.0.%s.weight", linear[i]);
		rec = json_object_get(json_object_get(part.meta, "quant"), name);
		if (!rec)
			continue;
		w = mcb_model_find(&orig, name);
		CHECK_OK(mcb_qtensor_get(&part, name, &q, &e), &e);
		CHECK_EQ(q.rows, w->shape[0]);
		CHECK_EQ(q.cols, w->shape[1]);
		prod = mcb_xcalloc((size_t)(q.rows * q.cols), sizeof(float));
		for (k = 0; k < q.rows; k++)
			mcb_qtensor_row(&q, k, prod + k * q.cols);
		for (k = 0; k < q.rows * q.cols; k++) {
			double d = prod[k] - ((const float *)w->data)[k];

			num += d * d;
			den += (double)((const float *)w->data)[k] * ((const float *)w->data)[k];
		}
		en = json_real_value(json_object_get(rec, "energy"));
		CHECK(fabs(sqrt(num / den) - sqrt(1 - en)) < 1e-4);
		free(prod);
	}

	/* assemble: the model loads, the engine runs it as its dense product */
	mcbt_run_input(&r, "model", imp);
	mcbt_run_input(&r, "part.blk.0", lr);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_assemble, "{}", "asm"), &r.e);
	as = mcbt_run_path(&r, "asm", "model.safetensors");
	mcb_model_init(&asm_);
	CHECK_OK(mcb_model_load_ir(as, &asm_, &e), &e);
	CHECK(mcb_model_find(&asm_, "blk.0.attn_q.weight.lowrank_b") != NULL);
	CHECK(mcb_model_find(&asm_, "blk.0.attn_v.weight.lowrank_b") == NULL);
	densify(as, &dense);
	lb = logits(&orig, 6);
	la = logits(&asm_, 6);
	ld = logits(&dense, 6);
	if (lb && la && ld) {
		double dmax = 0, bmax = 0;
		int64_t k;

		for (k = 0; k < 6 * 300; k++) {
			CHECK(isfinite(la[k]));
			dmax = fabs(la[k] - ld[k]) > dmax ? fabs(la[k] - ld[k]) : dmax;
			bmax = fabs(la[k] - lb[k]) > bmax ? fabs(la[k] - lb[k]) : bmax;
		}
		CHECK(dmax < 1e-4);
		CHECK(bmax > 1e-4); /* the factorization changed something */
	}
	free(lb);
	free(la);
	free(ld);

	/* parameters drop by what the records save */
	params = measured_parameters(&r, as, imp, "meas", &base);
	CHECK(drop > 0);
	CHECK_EQ(params, base - drop);

	/* quantize after lowrank: reads the product, replaces the record */
	mcbt_run_input(&r, "model", lr);
	{
		struct mcb_buf p = MCB_BUF_INIT;

		mcb_buf_printf(&p, "{\"method\": \"rtn\", \"layer\": 0, \"tensors\": {");
		for (i = 0; i < 7; i++)
			mcb_buf_printf(&p, "%s\"blk.0.%s.weight\": {\"bits\": 8, \"group_size\": 0, "
				       "\"symmetric\": true, \"ggml_type\": \"none\"}",
				       i ? ", " : "", linear[i]);
		mcb_buf_printf(&p, "}}");
		CHECK_OK(mcbt_run_step(&r, &mcb_step_quantize, mcb_buf_str(&p), "q"), &r.e);
		mcb_buf_release(&p);
	}
	mcb_model_init(&qp);
	CHECK_OK(mcb_model_load_ir_or_part(mcbt_run_path(&r, "q", "part.safetensors"), &qp, &e), &e);
	CHECK(mcb_model_find(&qp, "blk.0.attn_q.weight.lowrank_b") == NULL);
	CHECK_OK(mcb_qtensor_get(&qp, "blk.0.attn_q.weight", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_INT);
	CHECK_EQ(q.cols, 64);
	{
		struct mcb_qtensor lq;
		float a[64], b[64];
		double worst = 0;
		int64_t k, c;

		CHECK_OK(mcb_qtensor_get(&part, "blk.0.attn_q.weight", &lq, &e), &e);
		for (k = 0; k < 64; k++) {
			float s = ((const float *)q.scale->data)[k];

			mcb_qtensor_row(&q, k, a);
			mcb_qtensor_row(&lq, k, b);
			for (c = 0; c < 64; c++) {
				double d = fabs(a[c] - b[c]) / (s > 0 ? s : 1);

				worst = d > worst ? d : worst;
			}
		}
		CHECK(worst <= 0.5 + 1e-5); /* half a step of the product */
	}
	mcb_model_release(&qp);
	mcbt_run_input(&r, "model", imp);
	mcbt_run_input(&r, "part.blk.0", mcbt_run_path(&r, "q", "part.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_assemble, "{}", "qasm"), &r.e);
	{
		struct mcb_model qm;
		size_t t;

		mcb_model_init(&qm);
		CHECK_OK(mcb_model_load_ir(mcbt_run_path(&r, "qasm", "model.safetensors"), &qm, &e), &e);
		for (t = 0; t < qm.ntensors; t++)
			CHECK(strstr(qm.tensors[t].name, "lowrank") == NULL);
		mcb_model_release(&qm);
	}

	/* prune after lowrank: reads the product too */
	mcbt_run_input(&r, "model", lr);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_prune,
			  "{\"method\": \"magnitude\", \"layer\": 0, \"tensors\": "
			  "{\"blk.0.attn_q.weight\": {\"pattern\": \"unstructured\", "
			  "\"sparsity\": 0.5}}}", "pr"), &r.e);
	mcb_model_init(&qp);
	CHECK_OK(mcb_model_load_ir_or_part(mcbt_run_path(&r, "pr", "part.safetensors"), &qp, &e), &e);
	CHECK_OK(mcb_qtensor_get(&qp, "blk.0.attn_q.weight", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_FLOAT);
	CHECK_EQ(q.cols, 64);
	CHECK(mcb_model_find(&qp, "blk.0.attn_q.weight.lowrank_b") == NULL);
	mcb_model_release(&qp);

	/* a quantized weight is refused */
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "q", "part.safetensors"));
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_lowrank,
			   "{\"method\": \"svd\", \"layer\": 0, \"tensors\": "
			   "{\"blk.0.attn_q.weight\": {\"rank\": 4}}}", "bad"),
		  &r.e, MCB_EUNSUP, "lowrank must come before quantize in the stack");
	CHECK(strstr(r.e.msg, "blk.0.attn_q.weight") != NULL);
	/* a name that is not a weight of the layer */
	mcbt_run_input(&r, "model", imp);
	CHECK_ERR(mcbt_run_step(&r, &mcb_step_lowrank,
			   "{\"method\": \"svd\", \"layer\": 0, \"tensors\": "
			   "{\"blk.1.attn_q.weight\": {\"rank\": 4}}}", "bad2"),
		  &r.e, MCB_EINVAL, "is not a weight matrix of blk.0");

	/* exports: the product, dense F32, the very values evaluated */
	mcbt_run_input(&r, "model", as);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_export, "{\"format\": \"gguf\"}", "gguf"), &r.e);
	{
		char line[160];
		struct mcb_gguf g;
		const struct mcb_gguf_tensor *t;
		struct mcb_model gm;
		float *lg;

		snprintf(line, sizeof(line), "%d low-rank weights written as dense F32 products "
			 "(llama.cpp has no factored linear layer)", nf);
		log_has(&r, line);
		CHECK_OK(mcb_gguf_open(mcbt_run_path(&r, "gguf", "model.gguf"), &g, &e), &e);
		CHECK(mcb_gguf_find_tensor(&g, "blk.0.attn_q.weight.lowrank_b") == NULL);
		t = mcb_gguf_find_tensor(&g, "blk.0.attn_q.weight");
		CHECK(t != NULL);
		if (t) {
			float row[64];
			int64_t k, bad = 0;

			CHECK_EQ(t->type, 0); /* F32 */
			CHECK_EQ(t->ne[0], 64);
			CHECK_EQ(t->ne[1], 64);
			CHECK_OK(mcb_qtensor_get(&asm_, "blk.0.attn_q.weight", &q, &e), &e);
			for (k = 0; k < 64; k++) {
				mcb_qtensor_row(&q, k, row);
				bad += memcmp((const float *)t->data + k * 64, row,
					      sizeof(row)) != 0;
			}
			CHECK_EQ(bad, 0);
		}
		mcb_gguf_close(&g);
		/* the engine runs the exported file */
		mcb_model_init(&gm);
		CHECK_OK(mcb_engine_load_model(mcbt_run_path(&r, "gguf", "model.gguf"), &gm, &e), &e);
		lg = logits(&gm, 6);
		la = logits(&asm_, 6);
		if (lg && la) {
			double kl = mean_kl(la, lg, 6, 300);

			CHECK(kl >= 0 && kl < 1e-4);
		}
		free(lg);
		free(la);
		mcb_model_release(&gm);
	}
	mcbt_run_input(&r, "model", as);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_export, "{\"format\": \"safetensors\"}", "st"), &r.e);
	log_has(&r, "(vLLM's Llama has no factored linear layer)");
	{
		struct mcb_st_file f;
		size_t t;
		int found = 0;

		CHECK_OK(mcb_st_open(mcbt_run_path(&r, "st", "model.safetensors"), &f, &e), &e);
		for (t = 0; t < f.ntensors; t++) {
			CHECK(strstr(f.tensors[t].name, "lowrank") == NULL);
			if (!strcmp(f.tensors[t].name, "model.layers.0.mlp.up_proj.weight")) {
				found = 1;
				CHECK_EQ(f.tensors[t].dtype, MCB_DT_F32);
				CHECK_EQ(f.tensors[t].shape[0], 96);
				CHECK_EQ(f.tensors[t].shape[1], 64);
			}
		}
		CHECK(found);
		mcb_st_close(&f);
	}
	mcb_model_release(&dense);
	mcb_model_release(&asm_);
	mcb_model_release(&orig);
	mcb_model_release(&part);
	mcbt_run_release(&r);
}

/* stories260K: layer 0 at rank 16; parameters drop as the shapes say. */
static void test_step_stories(void)
{
	const char *src = mcbt_shared("models/stories260K.bin");
	struct mcbt_run r;
	struct mcb_model orig, asm_;
	struct mcb_errctx e;
	struct mcb_buf p = MCB_BUF_INIT;
	int64_t params, base, want = 0;
	float *lb, *la;
	int i;

	if (!src)
		return;
	mcbt_run_init(&r);
	mcbt_run_input(&r, "source", src);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"auto\"}", "imp"), &r.e);
	mcb_buf_printf(&p, "{\"method\": \"svd\", \"layer\": 0, \"tensors\": {");
	for (i = 0; i < 7; i++)
		mcb_buf_printf(&p, "%s\"blk.0.%s.weight\": {\"rank\": 16}", i ? ", " : "", linear[i]);
	mcb_buf_printf(&p, "}}");
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "imp", "model.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_lowrank, mcb_buf_str(&p), "lr"), &r.e);
	mcb_buf_release(&p);
	log_has(&r, "blk.0.attn_q.weight 64x64 -> rank 16 (");
	log_has(&r, "2048 of 4096 parameters)");
	log_has(&r, "blk.0.ffn_down.weight 64x172 -> rank 16 (");
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "imp", "model.safetensors"));
	mcbt_run_input(&r, "part.blk.0", mcbt_run_path(&r, "lr", "part.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_assemble, "{}", "asm"), &r.e);
	mcb_model_init(&orig);
	mcb_model_init(&asm_);
	CHECK_OK(mcb_model_load_ir(mcbt_run_path(&r, "imp", "model.safetensors"), &orig, &e), &e);
	CHECK_OK(mcb_model_load_ir(mcbt_run_path(&r, "asm", "model.safetensors"), &asm_, &e), &e);
	for (i = 0; i < 7; i++) {
		char name[64];
		const struct mcb_tensor *t;

		snprintf(name, sizeof(name), "blk.0.%s.weight", linear[i]);
		t = mcb_model_find(&orig, name);
		want += t->shape[0] * t->shape[1] - 16 * (t->shape[0] + t->shape[1]);
	}
	CHECK_EQ(want, 26816); /* q, o 2048; k, v 512; gate, up, down 7232 */
	params = measured_parameters(&r, mcbt_run_path(&r, "asm", "model.safetensors"),
				     mcbt_run_path(&r, "imp", "model.safetensors"), "meas", &base);
	CHECK_EQ(params, base - want);
	lb = logits(&orig, 16);
	la = logits(&asm_, 16);
	if (lb && la) {
		double kl = mean_kl(lb, la, 16, orig.cfg.vocab_size);

		CHECK(kl > 0 && kl < 5);
		printf("  stories260K, blk.0 at rank 16: %lld -> %lld parameters, mean KL over 16 "
		       "positions %.4f nats\n", (long long)base, (long long)params, kl);
	}
	free(lb);
	free(la);
	mcb_model_release(&asm_);
	mcb_model_release(&orig);
	mcbt_run_release(&r);
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

/* The same step with 1 and 2 BLAS threads: the same bytes. */
static void test_determinism(void)
{
	struct mcbt_run r;
	char src[4096];
	const char *params = "{\"method\": \"svd\", \"layer\": 1, \"tensors\": {"
			     "\"blk.1.attn_q.weight\": {\"energy\": 0.7}, "
			     "\"blk.1.ffn_gate.weight\": {\"rank\": 12}, "
			     "\"blk.1.ffn_down.weight\": {\"rank\": 20}}}";

	mcbt_run_init(&r);
	snprintf(src, sizeof(src), "%s/m.bin", r.dir);
	mcbt_write_llama2c(src, 128, 192, 2, 4, 2, 300, 32);
	mcbt_run_input(&r, "source", src);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"llama2c\"}", "imp"), &r.e);
	mcb_blas_set_threads(1);
	r.threads = 1;
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "imp", "model.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_lowrank, params, "t1"), &r.e);
	mcb_blas_set_threads(2);
	r.threads = 2;
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "imp", "model.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_lowrank, params, "t2"), &r.e);
	CHECK_EQ(mcb_blas_threads(), 2); /* the budget is given back */
	mcb_blas_set_threads(1);
	CHECK(same_file(mcbt_run_path(&r, "t1", "part.safetensors"), mcbt_run_path(&r, "t2", "part.safetensors")));
	mcbt_run_release(&r);
}

int main(void)
{
	RUN(test_choose);
	RUN(test_factor_numpy);
	RUN(test_energy_edges);
	RUN(test_record_values);
	RUN(test_hostile_records);
	RUN(test_step_synthetic);
	RUN(test_step_stories);
	RUN(test_determinism);
	return mcbt_done();
}
