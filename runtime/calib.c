/*
 * calib: calibration statistics and the calibration artefact (contracts in
 * include/mcb/calib.h).
 *
 * Artefact, version 1: a safetensors file (runtime/safetensors.c; tensors
 * laid out by descending element size then name, header padded to a
 * multiple of 8, so every F32 array is 4-aligned in the file).  One set of
 * five F32 tensors per accumulated (layer, point), named
 *   blk.<L>.<P>.<kind>   L the layer (decimal, no leading zero), P one of
 *                        attn_in, attn_out, ffn_in, ffn_down
 *   output.<kind>        the classifier's input (when accumulated)
 * with cols = dim for attn_in, attn_out, ffn_in and output, hidden_dim for
 * ffn_down, and kind:
 *   hessian   [cols, cols]     (2 / sequences) sum_t x_t^T x_t, symmetric
 *   mean_abs  [cols]           sum_t |x_t| / tokens
 *   max_abs   [cols]           max_t |x_t|
 *   sum_sq    [cols]           sum_t x_t^2
 *   samples   [samples, cols]  raw rows, the same tokens for every set, in
 *                              token order (possibly [0, cols])
 * and __metadata__ (every value a string; integers in decimal):
 *   "mcbuild.calib" "1"
 *   "tokens"        rows captured per set (>= 1)
 *   "sequences"     sequences counted (1 .. tokens): H's scale is 2/sequences
 *   "n_layers", "dim", "hidden_dim"   the model's
 *   "layer_first", "layer_count"      the layers accumulated
 *   "points"        the accumulated points' names, comma-separated, in
 *                   enum order ("attn_in,attn_out,ffn_in,ffn_down")
 *   "samples"       rows in each .samples tensor (min(max_samples, tokens))
 *   "max_samples", "seed"             the reservoir's parameters
 *   "hessian"       "(2/sequences) sum x^T x" (a reminder for humans)
 *   plus the writer's provenance keys (the step's: "mode", "seq_len",
 *   "format", "dataset_sha256"), carried along unread.
 *
 * The reader treats the file as hostile.  At open (mcb_st_open's checks
 * first): "mcbuild.calib" is "1"; the integer keys are canonical decimals
 * within the caps (n_layers <= MCB_LLAMA_MAX_LAYERS, dim <= MCB_LLAMA_MAX_DIM,
 * hidden_dim <= MCB_LLAMA_MAX_HIDDEN, 1 <= sequences <= tokens, samples <=
 * min(tokens, MCB_CALIB_MAX_SAMPLES)); every tensor name is one of the
 * above with L < n_layers; every tensor is F32, 4-aligned, and shaped as
 * above; every set holds all five tensors; at least one set.  On a set's
 * first use: every value finite; H exactly symmetric with diag >= 0;
 * mean_abs, max_abs, sum_sq >= 0; mean_abs <= max_abs; |samples| <= max_abs
 * per column; diag(H) within 1e-3 (relative) of 2 sum_sq / sequences.
 *
 * Accumulation (per set, over rows x of the capture, in capture order):
 *   mean/max/sum_sq: per column, sum |x| and sum x^2 in double (the float
 *     squares are exact in double), max |x| in float;
 *   samples: Algorithm R with mcb_rng: row t (0-based) fills slot t while
 *     t < k, else replaces slot j = below(t + 1) when j < k; every set's
 *     generator has the same seed, so all sets keep the same tokens;
 *   Hessian: rows are gathered into a block of MCB_CALIB_BLOCK rows; a full
 *     block (and the last, partial one at finish) adds X^T X to the
 *     accumulator.  The upper triangle is cut into TILE x TILE tiles; tile
 *     (bi, bj), bi <= bj, is one OpenBLAS call in float (SSYRK on the
 *     diagonal, SGEMM off it: a sum of at most MCB_CALIB_BLOCK products),
 *     then added element by element into the double accumulator.  Tiles are
 *     claimed by the threads in any order but each is computed by one call
 *     of a shape fixed by cols: the bits depend neither on the thread count
 *     nor on the engine's batching.  The accumulator is the packed upper
 *     triangle (row i holds columns i..n-1: n(n+1)/2 doubles, as many bytes
 *     as a full float matrix plus one row); finish turns it in place into
 *     the full float matrix, scaled by 2/sequences and mirrored.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/blas.h"
#include "mcb/buf.h"
#include "mcb/calib.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/rng.h"
#include "mcb/safetensors.h"
#include "mcb/tensor.h"

#define CALIB_VERSION "1"
#define TILE 256      /* Hessian tile edge (columns) */
#define NKINDS 5
#define MAX_THREADS 64 /* Hessian threads, at most */

/* cblas.h enum values (runtime/blas.c is the only file that includes it) */
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, UPPER = 121 };

enum kind { K_HESSIAN, K_MEAN_ABS, K_MAX_ABS, K_SUM_SQ, K_SAMPLES };

static const char *const kind_names[NKINDS] = {"hessian", "mean_abs", "max_abs", "sum_sq",
					       "samples"};
static const char *const point_names[MCB_CAPTURE_COUNT] = {"attn_in", "attn_out", "ffn_in",
							   "ffn_down", "output"};

const char *mcb_calib_point_name(enum mcb_capture_point pt)
{
	return (unsigned)pt < MCB_CAPTURE_COUNT ? point_names[pt] : NULL;
}

int mcb_calib_point_parse(const char *name)
{
	int i;

	for (i = 0; i < MCB_CAPTURE_COUNT; i++)
		if (!strcmp(name, point_names[i]))
			return i;
	return -1;
}

void mcb_calib_opts_default(struct mcb_calib_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->points = MCB_CALIB_DEFAULT_POINTS;
	o->max_samples = 512;
	o->threads = 1;
}

/* ---- the accumulator ---- */

/* One (layer, point)'s statistics. */
struct set {
	int layer;                /* -1 for MCB_CAPTURE_OUTPUT */
	enum mcb_capture_point pt;
	int64_t cols;
	void *h;                  /* accumulating: packed upper triangle of sum x^T x
	                             (double, row i holds columns i..cols-1); finished:
	                             the (cols, cols) float H in the same bytes */
	float *block;             /* (MCB_CALIB_BLOCK, cols) rows not yet in h */
	int64_t nblock;           /* rows in block */
	double *sum_abs, *sum_sq; /* (cols,) */
	float *max_abs;           /* (cols,) */
	float *mean_f, *sum_sq_f; /* (cols,) final values, set by finish */
	float *samples;           /* (max_samples, cols) reservoir slots */
	uint64_t *sample_tok;     /* (max_samples,) token index of each slot */
	struct mcb_rng rng;       /* reservoir decisions; same seed in every set */
	uint64_t tokens;          /* rows captured */
};

struct mcb_calib {
	const struct mcb_blas *blas;
	struct mcb_calib_opts o;  /* validated; layer_count resolved (>= 1 or no layer point) */
	int64_t n_layers, dim, hidden;
	struct set *sets;         /* nsets, layers in order then points in enum order,
	                             OUTPUT last */
	size_t nsets;
	int32_t *slot;            /* ((layer_count + 1) * MCB_CAPTURE_COUNT) index into
	                             sets or -1; row layer_count is OUTPUT's */
	float **scratch;          /* o.threads tiles of tile * tile floats */
	int64_t tile;             /* min(TILE, widest cols) */
	uint64_t sequences;       /* counted by mcb_calib_end_sequence */
	int finished;             /* 0 accumulating, 1 finished */
	int rc;                   /* sticky error (0: none); message in err */
	struct mcb_errctx err;
};

/* uint64 arithmetic that saturates at UINT64_MAX. */
static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Bytes of one set of width cols keeping max_samples rows. */
static uint64_t set_bytes(int64_t cols, int64_t max_samples)
{
	uint64_t n = (uint64_t)cols, b;

	b = sat_mul(sat_mul(n, n + 1), 4);                       /* packed double triangle */
	b = sat_add(b, sat_mul(sat_mul(MCB_CALIB_BLOCK, n), 4)); /* block */
	b = sat_add(b, sat_mul(n, 2 * 8 + 3 * 4));               /* column vectors */
	b = sat_add(b, sat_mul((uint64_t)max_samples, sat_add(sat_mul(n, 4), 8)));
	return b;
}

static int64_t cols_of(const struct mcb_calib *c, enum mcb_capture_point pt)
{
	return pt == MCB_CAPTURE_FFN_DOWN ? c->hidden : c->dim;
}

static int clamp_threads(int t)
{
	return t < 1 ? 1 : t > MAX_THREADS ? MAX_THREADS : t;
}

/* Bytes of one layer's selected points (per_layer) and of the rest (fixed). */
static void budget_parts(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o,
			 uint64_t *per_layer, uint64_t *fixed)
{
	int64_t widest = cfg->dim, tile;
	int p;

	*per_layer = 0;
	for (p = 0; p < MCB_CAPTURE_OUTPUT; p++)
		if (o->points & MCB_CALIB_POINT(p)) {
			int64_t cols = p == MCB_CAPTURE_FFN_DOWN ? cfg->hidden_dim : cfg->dim;

			*per_layer = sat_add(*per_layer, set_bytes(cols, o->max_samples));
			if (cols > widest)
				widest = cols;
		}
	tile = widest < TILE ? widest : TILE;
	*fixed = sat_mul(sat_mul((uint64_t)clamp_threads(o->threads),
				 sat_mul((uint64_t)tile, (uint64_t)tile)), 4);
	if (o->points & MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT))
		*fixed = sat_add(*fixed, set_bytes(cfg->dim, o->max_samples));
}

static int64_t layer_count(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o)
{
	return o->layer_count > 0 ? o->layer_count : cfg->n_layers - o->layer_first;
}

uint64_t mcb_calib_bytes(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o)
{
	uint64_t per_layer, fixed;
	int64_t n = layer_count(cfg, o);

	budget_parts(cfg, o, &per_layer, &fixed);
	return sat_add(fixed, sat_mul(per_layer, (uint64_t)(n > 0 ? n : 0)));
}

static int check_opts(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o,
		      struct mcb_errctx *e)
{
	unsigned layer_points = o->points & ~MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT);

	if (cfg->dim < 1 || cfg->dim > MCB_LLAMA_MAX_DIM || cfg->hidden_dim < 1 ||
	    cfg->hidden_dim > MCB_LLAMA_MAX_HIDDEN || cfg->n_layers < 1 ||
	    cfg->n_layers > MCB_LLAMA_MAX_LAYERS)
		return mcb_errf(e, MCB_EINVAL,
				"calibration: bad model config (dim %lld, hidden %lld, "
				"%lld layers)",
				(long long)cfg->dim, (long long)cfg->hidden_dim,
				(long long)cfg->n_layers);
	if (!o->points || (o->points & ~MCB_CALIB_ALL_POINTS))
		return mcb_errf(e, MCB_EINVAL, "calibration: bad set of capture points (0x%x)",
				o->points);
	if (layer_points && (o->layer_first < 0 || o->layer_first >= cfg->n_layers ||
			     o->layer_count < 0 ||
			     o->layer_count > cfg->n_layers - o->layer_first))
		return mcb_errf(e, MCB_EINVAL,
				"calibration: layers %lld..+%lld are outside the model's "
				"%lld layers", (long long)o->layer_first,
				(long long)o->layer_count, (long long)cfg->n_layers);
	if (o->max_samples < 0 || o->max_samples > MCB_CALIB_MAX_SAMPLES)
		return mcb_errf(e, MCB_EINVAL, "calibration: max_samples %lld is outside 0..%d",
				(long long)o->max_samples, MCB_CALIB_MAX_SAMPLES);
	return 0;
}

static int check_budget(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o,
			struct mcb_errctx *e)
{
	uint64_t need = mcb_calib_bytes(cfg, o), per_layer, fixed, fit;
	int64_t n = layer_count(cfg, o);
	char b1[32], b2[32], b3[32];

	if (!o->budget_bytes || need <= o->budget_bytes)
		return 0;
	budget_parts(cfg, o, &per_layer, &fixed);
	fit = per_layer && o->budget_bytes > fixed ? (o->budget_bytes - fixed) / per_layer : 0;
	if (!(o->points & ~MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT)) || fit == 0)
		return mcb_errf(e, MCB_ERANGE,
				"calibration statistics need %s (%s per layer) but the memory "
				"budget is %s: not even one layer fits; raise the budget",
				mcb_human_bytes(need, b1, sizeof(b1)), mcb_human_bytes(per_layer, b2, sizeof(b2)),
				mcb_human_bytes(o->budget_bytes, b3, sizeof(b3)));
	return mcb_errf(e, MCB_ERANGE,
			"calibration statistics of %lld layers need %s (%s per layer) but the "
			"memory budget is %s: raise the budget, or calibrate at most %" PRIu64
			" layers per pass (layer_first, layer_count)", (long long)n,
			mcb_human_bytes(need, b1, sizeof(b1)), mcb_human_bytes(per_layer, b2, sizeof(b2)),
			mcb_human_bytes(o->budget_bytes, b3, sizeof(b3)), fit);
}

/* Allocate n bytes (checked), zeroed when zero is set. */
static void *big_alloc(const struct set *s, uint64_t n, int zero, const char *what,
		       struct mcb_errctx *e)
{
	char b[32];
	void *p;

	if (n > SIZE_MAX)
		p = NULL;
	else
		p = zero ? calloc(1, n ? (size_t)n : 1) : malloc(n ? (size_t)n : 1);
	if (!p) {
		if (s->layer >= 0)
			mcb_errf(e, MCB_ENOMEM, "cannot allocate %s for blk.%d.%s's %s",
				 mcb_human_bytes(n, b, sizeof(b)), s->layer, point_names[s->pt], what);
		else
			mcb_errf(e, MCB_ENOMEM, "cannot allocate %s for output's %s",
				 mcb_human_bytes(n, b, sizeof(b)), what);
	}
	return p;
}

static int set_init(struct mcb_calib *c, struct set *s, int layer, enum mcb_capture_point pt,
		    struct mcb_errctx *e)
{
	uint64_t n;
	int64_t k = c->o.max_samples;

	s->layer = layer;
	s->pt = pt;
	s->cols = cols_of(c, pt);
	n = (uint64_t)s->cols;
	mcb_rng_seed(&s->rng, c->o.seed);
	if (!(s->h = big_alloc(s, n * (n + 1) * 4, 1, "Hessian", e)) ||
	    !(s->block = big_alloc(s, n * MCB_CALIB_BLOCK * 4, 0, "row block", e)) ||
	    !(s->sum_abs = big_alloc(s, n * 8, 1, "column sums", e)) ||
	    !(s->sum_sq = big_alloc(s, n * 8, 1, "column sums", e)) ||
	    !(s->max_abs = big_alloc(s, n * 4, 1, "column maxima", e)) ||
	    !(s->mean_f = big_alloc(s, n * 4, 1, "column means", e)) ||
	    !(s->sum_sq_f = big_alloc(s, n * 4, 1, "column sums", e)) ||
	    !(s->samples = big_alloc(s, (uint64_t)k * n * 4, 0, "samples", e)) ||
	    !(s->sample_tok = big_alloc(s, (uint64_t)k * 8, 0, "samples", e)))
		return MCB_ENOMEM;
	return 0;
}

static void set_release(struct set *s)
{
	free(s->h);
	free(s->block);
	free(s->sum_abs);
	free(s->sum_sq);
	free(s->max_abs);
	free(s->mean_f);
	free(s->sum_sq_f);
	free(s->samples);
	free(s->sample_tok);
}

int mcb_calib_new(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o,
		  struct mcb_calib **out, struct mcb_errctx *e)
{
	struct mcb_calib *c;
	int64_t l, nl, widest;
	size_t nslots, i;
	int p, rc;

	*out = NULL;
	if ((rc = check_opts(cfg, o, e)) || (rc = check_budget(cfg, o, e)))
		return rc;
	c = mcb_xcalloc(1, sizeof(*c));
	c->o = *o;
	c->o.threads = clamp_threads(o->threads);
	c->n_layers = cfg->n_layers;
	c->dim = cfg->dim;
	c->hidden = cfg->hidden_dim;
	nl = (o->points & ~MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT)) ? layer_count(cfg, o) : 0;
	c->o.layer_count = nl;
	if (!nl)
		c->o.layer_first = 0;
	c->blas = mcb_blas_get(e);
	if (!c->blas) {
		free(c);
		return MCB_EUNSUP;
	}
	mcb_blas_set_threads(1);
	nslots = (size_t)(nl + 1) * MCB_CAPTURE_COUNT;
	c->slot = mcb_xcalloc(nslots, sizeof(*c->slot));
	for (i = 0; i < nslots; i++)
		c->slot[i] = -1;
	c->sets = mcb_xcalloc(nslots, sizeof(*c->sets));
	widest = 1;
	for (l = 0; l <= nl; l++)
		for (p = 0; p < MCB_CAPTURE_COUNT; p++) {
			int out_row = l == nl, is_out = p == MCB_CAPTURE_OUTPUT;

			if (out_row != is_out || !(o->points & MCB_CALIB_POINT(p)))
				continue;
			c->slot[l * MCB_CAPTURE_COUNT + p] = (int32_t)c->nsets;
			rc = set_init(c, &c->sets[c->nsets++],
				      is_out ? -1 : (int)(o->layer_first + l),
				      (enum mcb_capture_point)p, e);
			if (rc) {
				mcb_calib_free(c);
				return rc;
			}
			if (c->sets[c->nsets - 1].cols > widest)
				widest = c->sets[c->nsets - 1].cols;
		}
	c->tile = widest < TILE ? widest : TILE;
	c->scratch = mcb_xcalloc((size_t)c->o.threads, sizeof(*c->scratch));
	for (p = 0; p < c->o.threads; p++) {
		c->scratch[p] = malloc((size_t)(c->tile * c->tile) * sizeof(float));
		if (!c->scratch[p]) {
			mcb_calib_free(c);
			return mcb_errf(e, MCB_ENOMEM, "cannot allocate the Hessian tiles");
		}
	}
	*out = c;
	return 0;
}

void mcb_calib_free(struct mcb_calib *c)
{
	size_t i;
	int t;

	if (!c)
		return;
	for (i = 0; i < c->nsets; i++)
		set_release(&c->sets[i]);
	for (t = 0; c->scratch && t < c->o.threads; t++)
		free(c->scratch[t]);
	free(c->scratch);
	free(c->sets);
	free(c->slot);
	free(c);
}

static struct set *find_set(const struct mcb_calib *c, int layer, enum mcb_capture_point pt)
{
	int64_t row;
	int32_t i;

	if ((unsigned)pt >= MCB_CAPTURE_COUNT)
		return NULL;
	if (pt == MCB_CAPTURE_OUTPUT)
		row = c->o.layer_count;
	else if (layer < c->o.layer_first || layer - c->o.layer_first >= c->o.layer_count)
		return NULL;
	else
		row = layer - c->o.layer_first;
	i = c->slot[row * MCB_CAPTURE_COUNT + pt];
	return i < 0 ? NULL : &c->sets[i];
}

/* Index of element (i, j), j >= i, in the packed upper triangle of order n. */
static size_t packed(int64_t n, int64_t i, int64_t j)
{
	return (size_t)(i * n - i * (i - 1) / 2 + (j - i));
}

/* One Hessian update: the tiles of the upper triangle of block^T block. */
struct hjob {
	const struct mcb_calib *c;
	struct set *s;
	int64_t rows;          /* rows in the block */
	int64_t nt, npairs;    /* tiles per side; tiles of the upper triangle */
	atomic_llong next;     /* next unclaimed tile */
};

struct hworker {
	struct hjob *j;
	float *scratch;        /* (tile, tile) */
	pthread_t th;
};

/* Tile (bi, bj) of the update into C, then into the double accumulator. */
static void do_tile(struct hjob *j, int64_t bi, int64_t bj, float *C)
{
	const struct mcb_calib *c = j->c;
	struct set *s = j->s;
	const int64_t n = s->cols, T = c->tile, i0 = bi * T, j0 = bj * T;
	const int64_t wi = n - i0 < T ? n - i0 : T, wj = n - j0 < T ? n - j0 : T;
	double *h = s->h;
	int64_t r, q;

	/* C (wi, wj) = block[:, i0:i0+wi]^T (wi, rows) @ block[:, j0:j0+wj] (rows, wj) */
	if (bi == bj)
		c->blas->ssyrk(ROW_MAJOR, UPPER, TRANS, (int)wi, (int)j->rows, 1.0f,
			       s->block + i0, (int)n, 0.0f, C, (int)T);
	else
		c->blas->sgemm(ROW_MAJOR, TRANS, NO_TRANS, (int)wi, (int)wj, (int)j->rows, 1.0f,
			       s->block + i0, (int)n, s->block + j0, (int)n, 0.0f, C, (int)T);
	for (r = 0; r < wi; r++) {
		double *hr = h + packed(n, i0 + r, i0 + r) - (size_t)(i0 + r);

		for (q = bi == bj ? r : 0; q < wj; q++)
			hr[j0 + q] += C[r * T + q];
	}
}

static void run_tiles(struct hjob *j, float *C)
{
	long long p;

	while ((p = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->npairs) {
		int64_t bi = 0, rest = p;

		while (rest >= j->nt - bi)
			rest -= j->nt - bi, bi++;
		do_tile(j, bi, bi + rest, C);
	}
}

static void *hworker_main(void *arg)
{
	struct hworker *w = arg;

	run_tiles(w->j, w->scratch);
	return NULL;
}

/* Add the block's rows to s's Hessian accumulator and empty the block. */
static void flush(struct mcb_calib *c, struct set *s)
{
	struct hworker w[MAX_THREADS];
	struct hjob j;
	int nw = 0, t;

	if (!s->nblock)
		return;
	j.c = c;
	j.s = s;
	j.rows = s->nblock;
	j.nt = (s->cols + c->tile - 1) / c->tile;
	j.npairs = j.nt * (j.nt + 1) / 2;
	atomic_init(&j.next, 0);
	for (t = 1; t < c->o.threads && t < j.npairs && nw < (int)(sizeof(w) / sizeof(w[0]));
	     t++) {
		w[nw].j = &j;
		w[nw].scratch = c->scratch[t];
		if (pthread_create(&w[nw].th, NULL, hworker_main, &w[nw]))
			break; /* the threads that started, and this one, do every tile */
		nw++;
	}
	run_tiles(&j, c->scratch[0]);
	for (t = 0; t < nw; t++)
		pthread_join(w[t].th, NULL);
	s->nblock = 0;
}

/* "blk.3.ffn_down" or "output" into buf. */
static const char *set_name(const struct set *s, char *buf, size_t n)
{
	if (s->layer >= 0)
		snprintf(buf, n, "blk.%d.%s", s->layer, point_names[s->pt]);
	else
		snprintf(buf, n, "output");
	return buf;
}

void mcb_calib_capture(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		       int64_t rows, int64_t cols)
{
	struct mcb_calib *c = ctx;
	struct set *s;
	int64_t r, q, k = c->o.max_samples;
	char nm[48];

	if (c->rc || !(s = find_set(c, layer, pt)))
		return;
	if (c->finished) {
		c->rc = mcb_errf(&c->err, MCB_EINVAL, "calibration: %s captured after finish",
				 set_name(s, nm, sizeof(nm)));
		return;
	}
	if (cols != s->cols) {
		c->rc = mcb_errf(&c->err, MCB_EINVAL,
				 "calibration: %s input has %lld columns, expected %lld",
				 set_name(s, nm, sizeof(nm)), (long long)cols, (long long)s->cols);
		return;
	}
	for (r = 0; r < rows; r++) {
		const float *row = x + r * cols;
		uint64_t slot;

		for (q = 0; q < cols; q++) {
			float v = row[q], a = fabsf(v);

			if (!isfinite(v)) {
				c->rc = mcb_errf(&c->err, MCB_ERANGE,
						 "calibration: %s input is not finite (token %"
						 PRIu64 ", column %lld: %g): the model overflows "
						 "on this data", set_name(s, nm, sizeof(nm)),
						 s->tokens, (long long)q, (double)v);
				return;
			}
			s->sum_abs[q] += a;
			s->sum_sq[q] += (double)v * v;
			if (a > s->max_abs[q])
				s->max_abs[q] = a;
		}
		/* Algorithm R (see the top comment) */
		slot = s->tokens;
		if (k && s->tokens >= (uint64_t)k)
			slot = mcb_rng_below(&s->rng, s->tokens + 1);
		if (slot < (uint64_t)k) {
			memcpy(s->samples + slot * (uint64_t)cols, row,
			       (size_t)cols * sizeof(float));
			s->sample_tok[slot] = s->tokens;
		}
		memcpy(s->block + s->nblock * cols, row, (size_t)cols * sizeof(float));
		if (++s->nblock == MCB_CALIB_BLOCK)
			flush(c, s);
		s->tokens++;
	}
}

void mcb_calib_end_sequence(struct mcb_calib *c)
{
	c->sequences++;
}

int mcb_calib_status(const struct mcb_calib *c, struct mcb_errctx *e)
{
	if (c->rc && e)
		*e = c->err;
	return c->rc;
}

uint64_t mcb_calib_tokens(const struct mcb_calib *c)
{
	return c->nsets ? c->sets[0].tokens : 0;
}

uint64_t mcb_calib_sequences(const struct mcb_calib *c)
{
	return c->sequences;
}

/*
 * The packed double triangle in buf becomes the full (n, n) float matrix
 * scale * H, mirrored, in the same bytes.  Float row i ends at byte 4n(i+1),
 * never past the start of packed row i+1 (8((i+1)n - i(i+1)/2) >= 4n(i+1)),
 * and float rows before i end before packed row i starts: converting rows in
 * order, each packed row copied out (memcpy: byte access, so no aliasing
 * assumption reorders it) before its float row is written, reads every
 * double before it is overwritten.  tmp holds n doubles.
 */
static void unpack_hessian(void *buf, int64_t n, double scale, double *tmp)
{
	float *f = buf;
	int64_t i, q;

	for (i = 0; i < n; i++) {
		memcpy(tmp, (const char *)buf + packed(n, i, i) * sizeof(double),
		       (size_t)(n - i) * sizeof(double));
		for (q = 0; q < i; q++)
			f[i * n + q] = f[q * n + i];
		for (q = i; q < n; q++)
			f[i * n + q] = (float)(tmp[q - i] * scale);
	}
}

struct tokslot {
	uint64_t tok;
	int64_t slot;
};

static int cmp_tokslot(const void *pa, const void *pb)
{
	const struct tokslot *a = pa, *b = pb;

	return a->tok < b->tok ? -1 : a->tok > b->tok;
}

/* Put the k kept rows in token order (permutation cycles, one row in tmp). */
static void sort_samples(struct set *s, int64_t k, struct tokslot *ts, float *tmp)
{
	const size_t rb = (size_t)s->cols * sizeof(float);
	int64_t i, j, nxt;

	for (i = 0; i < k; i++)
		ts[i].tok = s->sample_tok[i], ts[i].slot = i;
	qsort(ts, (size_t)k, sizeof(*ts), cmp_tokslot);
	/* new row i = old row ts[i].slot */
	for (i = 0; i < k; i++) {
		if (ts[i].slot == i)
			continue;
		memcpy(tmp, s->samples + i * s->cols, rb);
		j = i;
		for (;;) {
			nxt = ts[j].slot;
			ts[j].slot = j;
			if (nxt == i) {
				memcpy(s->samples + j * s->cols, tmp, rb);
				break;
			}
			memcpy(s->samples + j * s->cols, s->samples + nxt * s->cols, rb);
			j = nxt;
		}
	}
}

static int64_t kept(const struct mcb_calib *c, const struct set *s)
{
	return s->tokens < (uint64_t)c->o.max_samples ? (int64_t)s->tokens : c->o.max_samples;
}

int mcb_calib_finish(struct mcb_calib *c, struct mcb_errctx *e)
{
	struct tokslot *ts = NULL;
	double *tmp = NULL;
	int64_t widest = 1;
	uint64_t n;
	size_t i;

	if (c->finished || c->rc)
		return mcb_calib_status(c, e);
	n = c->nsets ? c->sets[0].tokens : 0;
	for (i = 0; i < c->nsets; i++) {
		if (c->sets[i].tokens != n) {
			c->rc = mcb_errf(&c->err, MCB_EINTERNAL,
					 "calibration: the statistics saw different numbers of "
					 "tokens (%" PRIu64 " and %" PRIu64 ")", n,
					 c->sets[i].tokens);
			return mcb_calib_status(c, e);
		}
		if (c->sets[i].cols > widest)
			widest = c->sets[i].cols;
	}
	if (!n) {
		c->rc = mcb_errf(&c->err, MCB_EINVAL, "calibration: no token was captured");
		return mcb_calib_status(c, e);
	}
	if (!c->sequences) {
		c->rc = mcb_errf(&c->err, MCB_EINVAL, "calibration: no sequence was counted");
		return mcb_calib_status(c, e);
	}
	tmp = malloc((size_t)widest * sizeof(*tmp));
	ts = malloc((size_t)(c->o.max_samples ? c->o.max_samples : 1) * sizeof(*ts));
	if (!tmp || !ts) {
		free(tmp);
		free(ts);
		return mcb_errf(e, MCB_ENOMEM,
				"calibration: cannot allocate the finishing buffers");
	}
	for (i = 0; i < c->nsets; i++) {
		struct set *s = &c->sets[i];
		int64_t q;

		flush(c, s);
		unpack_hessian(s->h, s->cols, 2.0 / (double)c->sequences, tmp);
		for (q = 0; q < s->cols; q++) {
			s->mean_f[q] = (float)(s->sum_abs[q] / (double)n);
			s->sum_sq_f[q] = (float)s->sum_sq[q];
		}
		sort_samples(s, kept(c, s), ts, s->block);
	}
	free(tmp);
	free(ts);
	c->finished = 1;
	return 0;
}

int mcb_calib_get(const struct mcb_calib *c, int layer, enum mcb_capture_point pt,
		  struct mcb_calib_stats *st)
{
	const struct set *s;

	if (!c->finished)
		return MCB_EINVAL;
	if (!(s = find_set(c, layer, pt)))
		return MCB_ENOENT;
	st->cols = s->cols;
	st->hessian = s->h;
	st->mean_abs = s->mean_f;
	st->max_abs = s->max_abs;
	st->sum_sq = s->sum_sq_f;
	st->nsamples = kept(c, s);
	st->samples = st->nsamples ? s->samples : NULL;
	return 0;
}

/* ---- the artefact: writer ---- */

static const char *const own_keys[] = {
	"mcbuild.calib", "tokens", "sequences", "n_layers", "dim", "hidden_dim", "layer_first",
	"layer_count", "points", "samples", "max_samples", "seed", "hessian"};

static void meta_int(json_t *md, const char *key, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	json_object_set_new(md, key, json_string(buf));
}

static void fill_tensor(struct mcb_tensor *t, const char *name, const void *data, int64_t d0,
			int64_t d1)
{
	t->name = name;
	t->dtype = MCB_DT_F32;
	t->ndim = d1 >= 0 ? 2 : 1;
	t->shape[0] = d0;
	t->shape[1] = d1 >= 0 ? d1 : 0;
	t->nbytes = (size_t)d0 * (size_t)(d1 >= 0 ? d1 : 1) * sizeof(float);
	t->data = (void *)data;
	t->owned = 0;
}

int mcb_calib_write(const struct mcb_calib *c, const char *path, const struct json_t *meta,
		    struct mcb_errctx *e)
{
	struct mcb_arena a;
	struct mcb_tensor *ts;
	const struct mcb_tensor **ptrs;
	char points[64] = "";
	json_t *md, *v;
	const char *key;
	size_t i, n = 0, k;
	int p, rc;

	if (!c->finished)
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': the calibration is not finished",
				path);
	md = json_object();
	json_object_set_new(md, "mcbuild.calib", json_string(CALIB_VERSION));
	meta_int(md, "tokens", mcb_calib_tokens(c));
	meta_int(md, "sequences", c->sequences);
	meta_int(md, "n_layers", (uint64_t)c->n_layers);
	meta_int(md, "dim", (uint64_t)c->dim);
	meta_int(md, "hidden_dim", (uint64_t)c->hidden);
	meta_int(md, "layer_first", (uint64_t)c->o.layer_first);
	meta_int(md, "layer_count", (uint64_t)c->o.layer_count);
	for (p = 0; p < MCB_CAPTURE_COUNT; p++)
		if (c->o.points & MCB_CALIB_POINT(p)) {
			if (points[0])
				strcat(points, ",");
			strcat(points, point_names[p]);
		}
	json_object_set_new(md, "points", json_string(points));
	meta_int(md, "samples", c->nsets ? (uint64_t)kept(c, &c->sets[0]) : 0);
	meta_int(md, "max_samples", (uint64_t)c->o.max_samples);
	meta_int(md, "seed", c->o.seed);
	json_object_set_new(md, "hessian", json_string("(2/sequences) sum x^T x"));
	if (meta) {
		if (!json_is_object(meta)) {
			json_decref(md);
			return mcb_errf(e, MCB_EINVAL,
					"cannot write '%s': metadata is not an object", path);
		}
		json_object_foreach((json_t *)meta, key, v) {
			for (k = 0; k < sizeof(own_keys) / sizeof(own_keys[0]); k++)
				if (!strcmp(key, own_keys[k])) {
					json_decref(md);
					return mcb_errf(e, MCB_EINVAL,
							"cannot write '%s': metadata key '%s' "
							"is the format's own", path, key);
				}
			json_object_set(md, key, v);
		}
	}
	mcb_arena_init(&a);
	ts = mcb_arena_array(&a, c->nsets * NKINDS + 1, sizeof(*ts));
	ptrs = mcb_arena_array(&a, c->nsets * NKINDS + 1, sizeof(*ptrs));
	for (i = 0; i < c->nsets; i++) {
		const struct set *s = &c->sets[i];
		const char *pre = "output";
		const void *data[NKINDS] = {s->h, s->mean_f, s->max_abs, s->sum_sq_f, s->samples};
		int kd;

		if (s->layer >= 0)
			pre = mcb_arena_printf(&a, "blk.%d.%s", s->layer, point_names[s->pt]);
		for (kd = 0; kd < NKINDS; kd++) {
			const char *name = mcb_arena_printf(&a, "%s.%s", pre, kind_names[kd]);

			if (kd == K_HESSIAN)
				fill_tensor(&ts[n], name, data[kd], s->cols, s->cols);
			else if (kd == K_SAMPLES)
				fill_tensor(&ts[n], name, data[kd], kept(c, s), s->cols);
			else
				fill_tensor(&ts[n], name, data[kd], s->cols, -1);
			ptrs[n] = &ts[n];
			n++;
		}
	}
	rc = mcb_st_write(path, ptrs, n, md, e);
	json_decref(md);
	mcb_arena_release(&a);
	return rc;
}

/* ---- the artefact: reader ---- */

/* One set in the file: pointers into the map; t[kind] NULL until seen. */
struct fset {
	const struct mcb_tensor *t[NKINDS];
	int checked;   /* values checked and valid */
};

struct mcb_calib_file {
	char *path;
	struct mcb_st_file st;
	uint64_t tokens, sequences, nsamples;
	int64_t n_layers, dim, hidden;
	struct fset *sets;   /* ((n_layers + 1) * MCB_CAPTURE_COUNT): row n_layers is
	                        OUTPUT's */
};

/* A canonical decimal (no sign, no leading zero) at most max. */
static int parse_dec(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!s || !s[0] || (s[0] == '0' && s[1]) || strlen(s) > 20)
		return -1;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

const char *mcb_calib_file_meta(const struct mcb_calib_file *f, const char *key)
{
	return json_string_value(json_object_get(f->st.metadata, key));
}

static int meta_u64(struct mcb_calib_file *f, const char *key, uint64_t lo, uint64_t hi,
		    uint64_t *out, struct mcb_errctx *e)
{
	const char *s = mcb_calib_file_meta(f, key);

	if (!s)
		return mcb_errf(e, MCB_EFORMAT, "'%s': metadata has no '%s'", f->path, key);
	if (parse_dec(s, hi, out) || *out < lo)
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': metadata '%s' is \"%.40s\", not an integer in %" PRIu64
				"..%" PRIu64, f->path, key, s, lo, hi);
	return 0;
}

/* Parse a tensor name into its set (layer, point) and kind; -1 when it is
 * not a name of the format. */
static int parse_name(const struct mcb_calib_file *f, const char *name, int64_t *layer,
		      int *pt, int *kind)
{
	const char *rest, *dot;
	char num[24], pname[16];
	uint64_t l;
	int k;

	if (!strncmp(name, "output.", 7)) {
		*layer = f->n_layers;
		*pt = MCB_CAPTURE_OUTPUT;
		rest = name + 7;
	} else {
		if (strncmp(name, "blk.", 4))
			return -1;
		dot = strchr(name + 4, '.');
		if (!dot || (size_t)(dot - (name + 4)) >= sizeof(num))
			return -1;
		memcpy(num, name + 4, (size_t)(dot - (name + 4)));
		num[dot - (name + 4)] = 0;
		if (parse_dec(num, (uint64_t)f->n_layers - 1, &l))
			return -1;
		rest = dot + 1;
		dot = strchr(rest, '.');
		if (!dot || (size_t)(dot - rest) >= sizeof(pname))
			return -1;
		memcpy(pname, rest, (size_t)(dot - rest));
		pname[dot - rest] = 0;
		*pt = mcb_calib_point_parse(pname);
		if (*pt < 0 || *pt == MCB_CAPTURE_OUTPUT)
			return -1;
		*layer = (int64_t)l;
		rest = dot + 1;
	}
	for (k = 0; k < NKINDS; k++)
		if (!strcmp(rest, kind_names[k])) {
			*kind = k;
			return 0;
		}
	return -1;
}

static int check_structure(struct mcb_calib_file *f, struct mcb_errctx *e)
{
	const char *ver = mcb_calib_file_meta(f, "mcbuild.calib");
	uint64_t v;
	size_t i, nslots, nsets = 0;
	int rc, k;

	if (!ver)
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': not a calibration artefact (no mcbuild.calib metadata)",
				f->path);
	if (strcmp(ver, CALIB_VERSION))
		return mcb_errf(e, MCB_EUNSUP, "'%s': calibration artefact version \"%.20s\" (this "
				"mcbuild reads version %s)", f->path, ver, CALIB_VERSION);
	if ((rc = meta_u64(f, "n_layers", 1, MCB_LLAMA_MAX_LAYERS, &v, e)))
		return rc;
	f->n_layers = (int64_t)v;
	if ((rc = meta_u64(f, "dim", 1, MCB_LLAMA_MAX_DIM, &v, e)))
		return rc;
	f->dim = (int64_t)v;
	if ((rc = meta_u64(f, "hidden_dim", 1, MCB_LLAMA_MAX_HIDDEN, &v, e)))
		return rc;
	f->hidden = (int64_t)v;
	if ((rc = meta_u64(f, "tokens", 1, UINT64_MAX, &f->tokens, e)) ||
	    (rc = meta_u64(f, "sequences", 1, f->tokens, &f->sequences, e)) ||
	    (rc = meta_u64(f, "samples", 0,
			   f->tokens < MCB_CALIB_MAX_SAMPLES ? f->tokens : MCB_CALIB_MAX_SAMPLES,
			   &f->nsamples, e)))
		return rc;
	nslots = (size_t)(f->n_layers + 1) * MCB_CAPTURE_COUNT;
	f->sets = mcb_arena_array(&f->st.arena, nslots, sizeof(*f->sets));
	for (i = 0; i < f->st.ntensors; i++) {
		const struct mcb_tensor *t = &f->st.tensors[i];
		int64_t layer, cols, want0, want1;
		int pt, kind;
		struct fset *fs;

		if (parse_name(f, t->name, &layer, &pt, &kind))
			return mcb_errf(e, MCB_EFORMAT, "'%s': unexpected tensor '%s'", f->path,
					t->name);
		cols = pt == MCB_CAPTURE_FFN_DOWN ? f->hidden : f->dim;
		want0 = kind == K_HESSIAN ? cols : kind == K_SAMPLES ? (int64_t)f->nsamples : cols;
		want1 = kind == K_HESSIAN || kind == K_SAMPLES ? cols : -1;
		if (t->dtype != MCB_DT_F32)
			return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' is %s, not F32", f->path,
					t->name, mcb_dtype_info(t->dtype)->name);
		if (t->ndim != (want1 >= 0 ? 2 : 1) || t->shape[0] != want0 ||
		    (want1 >= 0 && t->shape[1] != want1)) {
			if (want1 >= 0)
				return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' should be "
						"[%lld, %lld]", f->path, t->name, (long long)want0,
						(long long)want1);
			return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' should be [%lld]",
					f->path, t->name, (long long)want0);
		}
		if (t->nbytes && (uintptr_t)t->data % sizeof(float))
			return mcb_errf(e, MCB_EFORMAT,
					"'%s': tensor '%s' is not 4-byte aligned in the file",
					f->path, t->name);
		fs = &f->sets[layer * MCB_CAPTURE_COUNT + pt];
		fs->t[kind] = t; /* names are unique, and parse_name is one-to-one */
	}
	for (i = 0; i < nslots; i++) {
		int have = 0;

		for (k = 0; k < NKINDS; k++)
			have += f->sets[i].t[k] != NULL;
		if (!have)
			continue;
		nsets++;
		for (k = 0; k < NKINDS; k++)
			if (!f->sets[i].t[k]) {
				int64_t l = (int64_t)(i / MCB_CAPTURE_COUNT);
				int pt = (int)(i % MCB_CAPTURE_COUNT);

				if (pt == MCB_CAPTURE_OUTPUT)
					return mcb_errf(e, MCB_EFORMAT,
							"'%s': tensor 'output.%s' is missing",
							f->path, kind_names[k]);
				return mcb_errf(e, MCB_EFORMAT,
						"'%s': tensor 'blk.%lld.%s.%s' is missing", f->path,
						(long long)l, point_names[pt], kind_names[k]);
			}
	}
	if (!nsets)
		return mcb_errf(e, MCB_EFORMAT, "'%s': the artefact holds no statistics", f->path);
	return 0;
}

int mcb_calib_open(const char *path, struct mcb_calib_file **out, struct mcb_errctx *e)
{
	struct mcb_calib_file *f = mcb_xcalloc(1, sizeof(*f));
	int rc;

	*out = NULL;
	f->path = mcb_xstrdup(path);
	if ((rc = mcb_st_open(path, &f->st, e))) {
		free(f->path);
		free(f);
		return rc;
	}
	if ((rc = check_structure(f, e))) {
		mcb_calib_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void mcb_calib_close(struct mcb_calib_file *f)
{
	if (!f)
		return;
	mcb_st_close(&f->st);
	free(f->path);
	free(f);
}

uint64_t mcb_calib_file_tokens(const struct mcb_calib_file *f)
{
	return f->tokens;
}

uint64_t mcb_calib_file_sequences(const struct mcb_calib_file *f)
{
	return f->sequences;
}

int64_t mcb_calib_file_layers(const struct mcb_calib_file *f)
{
	return f->n_layers;
}

/* The first (i, j), j > i, of tile (ib, jb) where h (n, n) is not symmetric:
 * returns i and sets *jo, or -1. */
static int64_t asymmetric(const float *h, int64_t n, int64_t ib, int64_t jb, int64_t *jo)
{
	int64_t i, j;

	for (i = ib; i < ib + 64 && i < n; i++)
		for (j = jb > i + 1 ? jb : i + 1; j < jb + 64 && j < n; j++)
			if (h[i * n + j] != h[j * n + i]) {
				*jo = j;
				return i;
			}
	return -1;
}

/* Value checks of one set (listed in the top comment). */
static int check_values(const struct mcb_calib_file *f, const struct fset *fs,
			struct mcb_errctx *e)
{
	const float *h = fs->t[K_HESSIAN]->data, *mean = fs->t[K_MEAN_ABS]->data;
	const float *max = fs->t[K_MAX_ABS]->data, *ssq = fs->t[K_SUM_SQ]->data;
	const float *smp = fs->t[K_SAMPLES]->data;
	const int64_t n = fs->t[K_MEAN_ABS]->shape[0], k = fs->t[K_SAMPLES]->shape[0];
	const double scale = 2.0 / (double)f->sequences;
	int64_t i, j, ib, jb;
	int kd;

	for (kd = 0; kd < NKINDS; kd++) {
		const struct mcb_tensor *t = fs->t[kd];
		const float *x = t->data;
		uint64_t q, cnt = t->nbytes / sizeof(float);

		for (q = 0; q < cnt; q++)
			if (!isfinite(x[q]))
				return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' element %" PRIu64
						" is not finite", f->path, t->name, q);
	}
	/* symmetry, by 64 x 64 tiles so that both sides stay in cache */
	for (ib = 0; ib < n; ib += 64)
		for (jb = ib; jb < n; jb += 64)
			if ((i = asymmetric(h, n, ib, jb, &j)) >= 0)
				return mcb_errf(e, MCB_EFORMAT,
						"'%s': tensor '%s' is not symmetric "
						"([%lld][%lld] %g, [%lld][%lld] %g)", f->path,
						fs->t[K_HESSIAN]->name, (long long)i, (long long)j,
						(double)h[i * n + j], (long long)j, (long long)i,
						(double)h[j * n + i]);
	for (i = 0; i < n; i++) {
		double d = h[i * n + i], want = scale * ssq[i];
		double big = d > want ? d : want;

		if (d < 0 || mean[i] < 0 || max[i] < 0 || ssq[i] < 0)
			return mcb_errf(e, MCB_EFORMAT,
					"'%s': set of '%s': a negative value in column %lld",
					f->path, fs->t[K_HESSIAN]->name, (long long)i);
		if (mean[i] > max[i])
			return mcb_errf(e, MCB_EFORMAT,
					"'%s': '%s' column %lld: mean |x| %g exceeds max |x| %g",
					f->path, fs->t[K_MEAN_ABS]->name, (long long)i,
					(double)mean[i], (double)max[i]);
		if (fabs(d - want) > 1e-3 * big + 1e-30)
			return mcb_errf(e, MCB_EFORMAT,
					"'%s': '%s' diagonal %lld is %g but sum_sq gives %g",
					f->path, fs->t[K_HESSIAN]->name, (long long)i, d, want);
	}
	for (i = 0; i < k; i++)
		for (j = 0; j < n; j++)
			if (fabsf(smp[i * n + j]) > max[j])
				return mcb_errf(e, MCB_EFORMAT, "'%s': '%s' row %lld column %lld "
						"exceeds max |x|", f->path, fs->t[K_SAMPLES]->name,
						(long long)i, (long long)j);
	return 0;
}

static int use_set(struct mcb_calib_file *f, struct fset *fs, struct mcb_errctx *e)
{
	int rc;

	if (fs->checked)
		return 0;
	if ((rc = check_values(f, fs, e)))
		return rc;
	fs->checked = 1;
	return 0;
}

int mcb_calib_file_get(struct mcb_calib_file *f, int layer, enum mcb_capture_point pt,
		       struct mcb_calib_stats *s, struct mcb_errctx *e)
{
	struct fset *fs;
	int rc;

	if ((unsigned)pt >= MCB_CAPTURE_COUNT ||
	    (pt != MCB_CAPTURE_OUTPUT && (layer < 0 || layer >= f->n_layers)))
		return mcb_errf(e, MCB_ENOENT, "'%s': no statistics for layer %d, point %d",
				f->path, layer, (int)pt);
	fs = &f->sets[(pt == MCB_CAPTURE_OUTPUT ? f->n_layers : layer) * MCB_CAPTURE_COUNT + pt];
	if (!fs->t[K_HESSIAN]) {
		if (pt == MCB_CAPTURE_OUTPUT)
			return mcb_errf(e, MCB_ENOENT, "'%s': no statistics for output", f->path);
		return mcb_errf(e, MCB_ENOENT, "'%s': no statistics for blk.%d.%s", f->path, layer,
				point_names[pt]);
	}
	if ((rc = use_set(f, fs, e)))
		return rc;
	s->cols = fs->t[K_MEAN_ABS]->shape[0];
	s->hessian = fs->t[K_HESSIAN]->data;
	s->mean_abs = fs->t[K_MEAN_ABS]->data;
	s->max_abs = fs->t[K_MAX_ABS]->data;
	s->sum_sq = fs->t[K_SUM_SQ]->data;
	s->nsamples = fs->t[K_SAMPLES]->shape[0];
	s->samples = s->nsamples ? fs->t[K_SAMPLES]->data : NULL;
	return 0;
}

int mcb_calib_file_tensor(struct mcb_calib_file *f, const char *name,
			  const struct mcb_tensor **t, struct mcb_errctx *e)
{
	int64_t layer;
	int pt, kind, rc;
	struct fset *fs;

	*t = NULL;
	if (parse_name(f, name, &layer, &pt, &kind) ||
	    !(fs = &f->sets[layer * MCB_CAPTURE_COUNT + pt])->t[kind])
		return mcb_errf(e, MCB_ENOENT, "'%s': no tensor '%s'", f->path, name);
	if ((rc = use_set(f, fs, e)))
		return rc;
	*t = fs->t[kind];
	return 0;
}

int mcb_calib_file_verify(struct mcb_calib_file *f, struct mcb_errctx *e)
{
	size_t i, nslots = (size_t)(f->n_layers + 1) * MCB_CAPTURE_COUNT;
	int rc;

	for (i = 0; i < nslots; i++)
		if (f->sets[i].t[K_HESSIAN] && (rc = use_set(f, &f->sets[i], e)))
			return rc;
	return 0;
}
