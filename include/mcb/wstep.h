/*
 * wstep: what the steps that change weights (quantize, prune) share: one
 * group of tensors read from the "model" input (a whole model or the
 * previous technique's part), the part being written (runtime/part.c), the
 * calibration statistics when the step has a "calib" input, and the
 * weights of one layer loaded as f32.
 *
 * Records (include/mcb/qtensor.h) are written through mcb_wstep_record,
 * which carries a pruned weight's sparsity and mask over to whatever the
 * step makes of it: a weight pruned then quantized stays pruned.
 */
#ifndef MCB_WSTEP_H
#define MCB_WSTEP_H

#include <stdint.h>

#include "mcb/engine.h" /* enum mcb_capture_point */
#include "mcb/model.h"
#include "mcb/tensor.h"

struct json_t;
struct mcb_calib_file;
struct mcb_calib_stats;
struct mcb_stepctx;

struct mcb_wstep {
	struct mcb_stepctx *sc;
	struct mcb_model srcm;	      /* the input */
	const struct mcb_model *src;  /* &srcm */
	struct mcb_model part;	      /* the output */
	const char *method;	      /* params "method" */
	int64_t layer;		      /* params "layer": 0.. or -1 (globals) */
	struct mcb_calib_file *calib; /* the "calib" input, or NULL */
	const char *note;	      /* for the next record ("note") */
};

/* Load the model input, open the calibration input if any, start the part
 * of group "blk.L" or "globals".  Release with mcb_wstep_release even on
 * failure. */
int mcb_wstep_begin(struct mcb_wstep *w, struct mcb_stepctx *sc);
/* Write part.safetensors. */
int mcb_wstep_finish(struct mcb_wstep *w);
void mcb_wstep_release(struct mcb_wstep *w);

/* The source's record for name, or NULL. */
struct json_t *mcb_wstep_src_record(const struct mcb_wstep *w, const char *name);
/* Whether a record describes quantized codes (not a float weight: no
 * record, an F16 fallback, a pruned float weight, "format": "float", or a
 * factored one, "format": "lowrank"). */
int mcb_wstep_is_quantized(const struct json_t *rec);

/* The float values of tensor name (a vector: cols = 1) malloc'd, checked
 * finite (a lowrank weight: the product A B, rows x cols); refused when the
 * tensor is quantized already. */
int mcb_wstep_weights(struct mcb_wstep *w, const char *name, int64_t *rows, int64_t *cols,
		      float **out);

/* A zeroed tensor of the part ([d0] when ndim is 1, else [d0, d1]); NULL
 * with sc->e set. */
void *mcb_wstep_new_tensor(struct mcb_wstep *w, const char *name, enum mcb_dtype dt, int ndim,
			   int64_t d0, int64_t d1);
/* Set the part's record for name (taking rec), with w->note and the
 * source's sparsity and mask carried over. */
void mcb_wstep_record(struct mcb_wstep *w, const char *name, struct json_t *rec);
/* "NAME.what" (scratch). */
char *mcb_wstep_side(struct mcb_wstep *w, const char *name, const char *what);
/* A float tensor the step changed without quantizing it (a norm AWQ folded
 * scales into, a pruned weight), as F32 in the source's shape. */
int mcb_wstep_put_f32(struct mcb_wstep *w, const char *name, const float *x, int64_t rows,
		      int64_t cols);

/* 0, or MCB_ERANGE naming the first weight of x (rows, cols) above limit
 * (what names the form that cannot hold it). */
int mcb_wstep_check_limit(struct mcb_wstep *w, const char *name, const float *x, int64_t rows,
			  int64_t cols, float limit, const char *what);
/* Keep name as F16 (a fallback record with reason). */
int mcb_wstep_put_f16(struct mcb_wstep *w, const char *name, const float *x, int64_t rows,
		      int64_t cols, const char *reason);
/*
 * Store integer codes (unsigned, 0 .. 2^bits - 1, as the quantizers give
 * them) with scales and zeros (rows, ngroups), g_idx (cols,) or NULL, as an
 * "int" record (method w->method): symmetric codes as I8 (q - 2^(bits-1)),
 * asymmetric as U8 with a U8 zero tensor; scales F16 (the quantizers round
 * them to fp16 first: a scale that is not an fp16 value is an error) or F32
 * [rows] per channel (group 0).
 */
int mcb_wstep_put_int(struct mcb_wstep *w, const char *name, const uint8_t *codes,
		      const float *scale, const uint8_t *zero, const int32_t *g_idx, int64_t rows,
		      int64_t cols, int bits, int64_t group, int symmetric);

/* The statistics of capture point pt of w->layer (MCB_EFORMAT when the
 * artefact lacks them or the step has no calibration input). */
int mcb_wstep_stats(struct mcb_wstep *w, enum mcb_capture_point pt, struct mcb_calib_stats *st);

/* The weights of one Llama layer, f32. */
enum {
	MCB_WL_ATTN_NORM,
	MCB_WL_Q,
	MCB_WL_K,
	MCB_WL_V,
	MCB_WL_O,
	MCB_WL_FFN_NORM,
	MCB_WL_GATE,
	MCB_WL_UP,
	MCB_WL_DOWN,
	MCB_WL_N
};
/* "attn_norm", "attn_q", ...: blk.L.<name>.weight. */
extern const char *const mcb_wlayer_names[MCB_WL_N];
struct mcb_wlayer {
	const char *name[MCB_WL_N]; /* "blk.L.attn_q.weight" */
	float *w[MCB_WL_N];
	int64_t rows[MCB_WL_N], cols[MCB_WL_N]; /* norms: [dim] as rows = dim, cols = 1 */
	int changed[MCB_WL_N];			/* the caller's: values to store */
};
int mcb_wlayer_load(struct mcb_wstep *w, struct mcb_wlayer *l);
void mcb_wlayer_free(struct mcb_wlayer *l);

#endif
