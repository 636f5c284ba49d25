/*
 * calib: calibration statistics of the linear layers' inputs, accumulated
 * from the engine's capture hook, and the calibration artefact that carries
 * them between steps (one safetensors file, specified at the top of
 * runtime/calib.c) with its reader.
 *
 * One statistics set per (layer, capture point), over every captured row
 * (token) x (cols,):
 *   hessian  (cols, cols)  H = (2 / sequences) sum_t x_t^T x_t: the matrix
 *                          GPTQ's running update (H *= n/(n+m); n += m;
 *                          H += (2/n) X^T X, with n counting sequences)
 *                          reaches, summed in double without its per-batch
 *                          rounding; SparseGPT uses the same H
 *   mean_abs (cols,)       sum_t |x_t| / tokens (AWQ's x_mean)
 *   max_abs  (cols,)       max_t |x_t| (SmoothQuant's act_scales)
 *   sum_sq   (cols,)       sum_t x_t^2: Wanda's scaler_row is
 *                          sum_sq / sequences; diag(H) = 2 sum_sq / sequences
 *   samples  (k, cols)     k = min(max_samples, tokens) raw rows (AWQ's
 *                          scale and clip search), by reservoir sampling
 * q/k/v share ATTN_IN and gate/up share FFN_IN, so one set serves each group.
 *
 * Every statistic depends only on the sequence of captured rows: not on the
 * thread count, nor on how the engine cuts sequences into batches (rows are
 * gathered into blocks of MCB_CALIB_BLOCK before the Hessian update).  Every
 * (layer, point) draws the same reservoir decisions (one generator per set,
 * seeded alike), so the samples of all points are the same tokens.
 *
 * Memory (option (a) of the design): every selected accumulator is held at
 * once, and mcb_calib_new refuses a selection whose accumulators exceed the
 * budget, naming how many layers would fit.  The layer range is the door to
 * the two other schemes the API is meant for, neither implemented here:
 *   multi-pass: several calibrations (steps) over the same data, each with a
 *     slice of the layers, each writing its own artefact;
 *   sequential (GPTQ's true-sequential): calibrate layer L alone on a model
 *     whose layers < L are already compressed (the engine runs whatever the
 *     internal form holds), then compress L and repeat.  It runs the full
 *     forward pass for each layer; an engine that stops after layer L would
 *     save the rest.
 */
#ifndef MCB_CALIB_H
#define MCB_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/engine.h" /* enum mcb_capture_point */

struct json_t;
struct mcb_errctx;
struct mcb_llama_config;
struct mcb_tensor;
struct mcb_calib;
struct mcb_calib_file;

#define MCB_CALIB_POINT(p) (1u << (p))
/* Every point but the classifier's input (large vocab, rarely compressed). */
#define MCB_CALIB_DEFAULT_POINTS                                                    \
	(MCB_CALIB_POINT(MCB_CAPTURE_ATTN_IN) | MCB_CALIB_POINT(MCB_CAPTURE_ATTN_OUT) | \
	 MCB_CALIB_POINT(MCB_CAPTURE_FFN_IN) | MCB_CALIB_POINT(MCB_CAPTURE_FFN_DOWN))
#define MCB_CALIB_ALL_POINTS (MCB_CALIB_DEFAULT_POINTS | MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT))
#define MCB_CALIB_MAX_SAMPLES (1 << 20) /* rows kept per set, at most */
#define MCB_CALIB_BLOCK 256             /* rows per Hessian update */

struct mcb_calib_opts {
	unsigned points;       /* MCB_CALIB_POINT bits: which points to accumulate */
	int64_t layer_first;   /* layers [layer_first, layer_first + layer_count) ... */
	int64_t layer_count;   /* ... ; 0: every layer from layer_first on.  OUTPUT
	                          (no layer) follows points alone */
	int64_t max_samples;   /* 0 .. MCB_CALIB_MAX_SAMPLES raw rows kept per set */
	uint64_t seed;         /* of the reservoir sampling */
	uint64_t budget_bytes; /* cap on the accumulators' memory; 0: no cap */
	int threads;           /* threads for the Hessian updates (results do not
	                          depend on it); < 1 means 1 */
};

/* Defaults: MCB_CALIB_DEFAULT_POINTS, every layer, 512 samples, seed 0, no
 * budget, one thread. */
void mcb_calib_opts_default(struct mcb_calib_opts *o);

/* "attn_in", "attn_out", "ffn_in", "ffn_down", "output" (artefact names),
 * or NULL for a value out of range. */
const char *mcb_calib_point_name(enum mcb_capture_point pt);
/* The point called name, or -1. */
int mcb_calib_point_parse(const char *name);

/*
 * Bytes the accumulators for a model of config cfg take with options o
 * (what the budget is compared with); UINT64_MAX when it overflows.  The
 * options must be valid (mcb_calib_new checks them).
 */
uint64_t mcb_calib_bytes(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o);

/*
 * A new accumulator for a model of config cfg (only dim, hidden_dim and
 * n_layers are read).  Fails with MCB_EINVAL for bad options (no point, a
 * layer range outside the model, max_samples out of range), MCB_ERANGE when
 * the accumulators exceed o->budget_bytes (the message gives the size and
 * how many layers fit), MCB_ENOMEM, or MCB_EUNSUP without OpenBLAS.  Sets
 * OpenBLAS's budget to one thread: the Hessian tiles run in parallel on the
 * accumulator's own threads, as the engine's tiles do.
 */
int mcb_calib_new(const struct mcb_llama_config *cfg, const struct mcb_calib_opts *o,
		  struct mcb_calib **out, struct mcb_errctx *e);
void mcb_calib_free(struct mcb_calib *c);

/*
 * The engine's capture callback (an mcb_capture_fn; ctx is the struct
 * mcb_calib): accumulates x (rows, cols) when (layer, pt) is selected, and
 * ignores it otherwise.  It cannot return an error: a problem (cols not the
 * model's width for pt, a non-finite value, a capture after finish) is kept
 * in the accumulator, every later capture is ignored, and
 * mcb_calib_status / mcb_calib_finish report it.
 */
void mcb_calib_capture(void *ctx, int layer, enum mcb_capture_point pt, const float *x,
		       int64_t rows, int64_t cols);

/* Count one calibration sequence (after running it): the Hessian's scale
 * and Wanda's denominator count sequences, as GPTQ's nsamples does. */
void mcb_calib_end_sequence(struct mcb_calib *c);

/* 0, or the error a capture met (copied into e). */
int mcb_calib_status(const struct mcb_calib *c, struct mcb_errctx *e);

/*
 * Stop accumulating and compute the final statistics (in place: no new
 * large allocation).  Fails with the capture error if there was one,
 * MCB_EINVAL when nothing was captured or no sequence was counted, and
 * MCB_EINTERNAL when the selected sets saw different numbers of rows.
 * Calling it again returns the first result.
 */
int mcb_calib_finish(struct mcb_calib *c, struct mcb_errctx *e);

/* Rows (tokens) captured per set, and sequences counted. */
uint64_t mcb_calib_tokens(const struct mcb_calib *c);
uint64_t mcb_calib_sequences(const struct mcb_calib *c);

/* A read-only view of one set's statistics (shapes in the top comment). */
struct mcb_calib_stats {
	int64_t cols;           /* input width of the point's linear layers */
	const float *hessian;   /* (cols, cols), exactly symmetric */
	const float *mean_abs;  /* (cols,) */
	const float *max_abs;   /* (cols,) */
	const float *sum_sq;    /* (cols,) */
	const float *samples;   /* (nsamples, cols), in token order; NULL when 0 */
	int64_t nsamples;
};

/*
 * The finished statistics of (layer, pt) (layer is ignored for
 * MCB_CAPTURE_OUTPUT), valid until mcb_calib_free.  Returns 0, MCB_ENOENT
 * when the set was not selected, or MCB_EINVAL before a successful finish.
 */
int mcb_calib_get(const struct mcb_calib *c, int layer, enum mcb_capture_point pt,
		  struct mcb_calib_stats *s);

/*
 * Write the finished statistics to path as the calibration artefact (not
 * atomically; deterministic).  meta: NULL or an object of extra string
 * values for __metadata__ (provenance: "mode", "seq_len", ...); it may not
 * override the keys the format defines.
 */
int mcb_calib_write(const struct mcb_calib *c, const char *path, const struct json_t *meta,
		    struct mcb_errctx *e);

/*
 * Open a calibration artefact, mapped, and check its structure (hostile
 * input: metadata, names, dtypes, shapes, alignment; the list is at the top
 * of runtime/calib.c).  The values of a set (finite, H symmetric, ...) are
 * checked when the set is first used, so that a consumer of one layer does
 * not read a whole multi-GB file.  Every error names the file.  *out is NULL
 * on failure.
 */
int mcb_calib_open(const char *path, struct mcb_calib_file **out, struct mcb_errctx *e);
void mcb_calib_close(struct mcb_calib_file *f);

uint64_t mcb_calib_file_tokens(const struct mcb_calib_file *f);
uint64_t mcb_calib_file_sequences(const struct mcb_calib_file *f);
/* n_layers of the model the artefact was measured on. */
int64_t mcb_calib_file_layers(const struct mcb_calib_file *f);
/* The __metadata__ value of key, or NULL. */
const char *mcb_calib_file_meta(const struct mcb_calib_file *f, const char *key);

/*
 * The view of (layer, pt) as mcb_calib_get gives it, valid until
 * mcb_calib_close, after checking its values once.  Returns 0, MCB_ENOENT
 * when the artefact does not hold the set, or MCB_EFORMAT naming the first
 * bad value.
 */
int mcb_calib_file_get(struct mcb_calib_file *f, int layer, enum mcb_capture_point pt,
		       struct mcb_calib_stats *s, struct mcb_errctx *e);
/* The tensor called name ("blk.3.ffn_down.hessian"), its set's values
 * checked as by mcb_calib_file_get.  MCB_ENOENT when there is no such
 * tensor. */
int mcb_calib_file_tensor(struct mcb_calib_file *f, const char *name,
			  const struct mcb_tensor **t, struct mcb_errctx *e);
/* Check the values of every set (what a full verification tool wants). */
int mcb_calib_file_verify(struct mcb_calib_file *f, struct mcb_errctx *e);

#endif
