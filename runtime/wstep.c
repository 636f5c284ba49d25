/*
 * wstep: shared by the steps that change weights.  See include/mcb/wstep.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/calib.h"
#include "mcb/err.h"
#include "mcb/part.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/step.h"
#include "mcb/wstep.h"

int mcb_wstep_begin(struct mcb_wstep *w, struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const struct mcb_step_input *ci = mcb_step_input(sc, "calib");
	int rc;

	memset(w, 0, sizeof(*w));
	w->sc = sc;
	w->src = &w->srcm;
	w->method = mcb_param_str(sc->params, "method", "");
	w->layer = mcb_param_int(sc->params, "layer", -2);
	mcb_model_init(&w->srcm);
	mcb_model_init(&w->part);
	if (!in || w->layer < -1)
		return mcb_errf(sc->e, MCB_EINTERNAL, "the step lacks its model input or layer");
	if ((rc = mcb_model_load_ir_or_part(in->path, &w->srcm, sc->e)))
		return rc;
	if (w->layer >= w->srcm.cfg.n_layers)
		return mcb_errf(sc->e, MCB_EINVAL, "layer %lld of a %lld-layer model",
				(long long)w->layer, (long long)w->srcm.cfg.n_layers);
	mcb_part_init(&w->part, &w->srcm,
		      w->layer < 0 ? "globals"
				   : mcb_arena_printf(sc->scratch, "blk.%lld", (long long)w->layer),
		      w->layer);
	if (ci) {
		if ((rc = mcb_calib_open(ci->path, &w->calib, sc->e)))
			return rc;
		if (mcb_calib_file_layers(w->calib) != w->srcm.cfg.n_layers)
			return mcb_errf(sc->e, MCB_EFORMAT,
					"the calibration artefact is of a %lld-layer model, this "
					"one has %lld",
					(long long)mcb_calib_file_layers(w->calib),
					(long long)w->srcm.cfg.n_layers);
	}
	return 0;
}

/* Whether name is a side tensor (scales, zero points, ...) that one of m's
 * records names: those travel with their weight. */
static int is_side_tensor(const struct mcb_model *m, const char *name)
{
	const char *key;
	json_t *rec;
	size_t i;

	json_object_foreach(json_object_get(m->meta, "quant"), key, rec) {
		for (i = 0; mcb_quant_side_keys[i]; i++) {
			const char *side = json_string_value(json_object_get(rec, mcb_quant_side_keys[i]));

			if (side && !strcmp(side, name))
				return 1;
		}
	}
	return 0;
}

/*
 * Write part.safetensors, holding every tensor of the group: the ones the
 * step wrote and, unchanged, the rest (norms, weights it skipped), so that
 * the next step of the stack, whose model input is this part, sees the whole
 * group (a head-pruned layer's FFN, for one).
 */
int mcb_wstep_finish(struct mcb_wstep *w)
{
	const char *prefix = w->layer < 0 ? "blk."
					  : mcb_arena_printf(w->sc->scratch, "blk.%lld.",
							     (long long)w->layer);
	size_t i, np = strlen(prefix);
	int rc;

	for (i = 0; i < w->src->ntensors; i++) {
		const char *name = w->src->tensors[i].name;
		int in_group = !strncmp(name, prefix, np) == (w->layer >= 0);

		if (!in_group || mcb_model_find(&w->part, name) || is_side_tensor(w->src, name))
			continue;
		if ((rc = mcb_part_copy(&w->part, w->src, name, w->sc->e)))
			return rc;
	}
	return mcb_model_save_ir(&w->part, mcb_step_outpath(w->sc, "part.safetensors"), w->sc->e);
}

void mcb_wstep_release(struct mcb_wstep *w)
{
	if (w->calib)
		mcb_calib_close(w->calib);
	w->calib = NULL;
	mcb_model_release(&w->part);
	mcb_model_release(&w->srcm);
}

json_t *mcb_wstep_src_record(const struct mcb_wstep *w, const char *name)
{
	return json_object_get(json_object_get(w->src->meta, "quant"), name);
}

/* Quantized codes (not a float weight: no record, an F16 fallback, a
 * pruned float weight with its mask, or a lowrank factorization). */
int mcb_wstep_is_quantized(const json_t *rec)
{
	const char *f = json_string_value(json_object_get(rec, "format"));

	return rec && !json_object_get(rec, "fallback") &&
	       !(f && (!strcmp(f, "float") || !strcmp(f, "lowrank")));
}

/* The float weights of name in the source (malloc'd), checked finite. */
int mcb_wstep_weights(struct mcb_wstep *w, const char *name, int64_t *rows, int64_t *cols,
		      float **out)
{
	const struct mcb_tensor *t = mcb_model_find(w->src, name);
	struct mcb_errctx *e = w->sc->e;
	size_t n;
	int64_t bad, r;
	float *x;
	struct mcb_qtensor lr; /* a lowrank weight (qtensor.h): read as the product */

	*out = NULL;
	lr.format = MCB_QF_FLOAT;
	if (!t)
		return mcb_errf(e, MCB_EFORMAT, "the model has no tensor '%s'", name);
	if (mcb_wstep_is_quantized(mcb_wstep_src_record(w, name)))
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s' is already quantized", name);
	if (t->ndim != 2 && t->ndim != 1)
		return mcb_errf(e, MCB_EFORMAT, "tensor '%s' is not a vector or a matrix", name);
	*rows = t->shape[0];
	*cols = t->ndim == 2 ? t->shape[1] : 1;
	if (!strcmp(mcb_param_str(mcb_wstep_src_record(w, name), "format", ""), "lowrank")) {
		if (mcb_qtensor_get(w->src, name, &lr, e))
			return e->code;
		*cols = lr.cols;
	}
	if (mcb_mul_ok((size_t)*rows, (size_t)*cols, &n) || mcb_mul_ok(n, sizeof(float), &n))
		return mcb_errf(e, MCB_ERANGE, "tensor '%s' is too large", name);
	x = malloc(n ? n : 1);
	if (!x)
		return mcb_errf(e, MCB_ENOMEM, "cannot allocate %zu bytes for tensor '%s'", n,
				name);
	if (lr.format == MCB_QF_LOWRANK) {
		for (r = 0; r < *rows; r++)
			mcb_qtensor_row(&lr, r, x + r * *cols);
	} else if (mcb_tensor_to_f32(t, x, e)) {
		free(x);
		return e->code;
	}
	if (mcb_check_finite(x, *rows * *cols, &bad)) {
		free(x);
		return mcb_errf(e, MCB_EFORMAT,
				"tensor '%s' has a non-finite value at row %lld, column %lld", name,
				(long long)(bad / *cols), (long long)(bad % *cols));
	}
	*out = x;
	return 0;
}

/* ---- writing ---- */

void *mcb_wstep_new_tensor(struct mcb_wstep *w, const char *name, enum mcb_dtype dt, int ndim,
			   int64_t d0, int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	struct mcb_tensor *t;

	if (mcb_model_new_tensor(&w->part, name, dt, ndim, shape, &t, w->sc->e))
		return NULL;
	return t->data;
}

void mcb_wstep_record(struct mcb_wstep *w, const char *name, json_t *rec)
{
	const json_t *was = mcb_wstep_src_record(w, name);
	const char *mask = json_string_value(json_object_get(was, "mask"));

	if (w->note)
		json_object_set_new(rec, "note", json_string(w->note));
	w->note = NULL;
	/* a pruned weight stays pruned: its mask travels with the codes */
	if (json_object_get(was, "sparsity"))
		json_object_set(rec, "sparsity", json_object_get(was, "sparsity"));
	if (mask && mcb_model_find(w->src, mask)) {
		const struct mcb_tensor *t = mcb_model_find(w->src, mask);
		struct mcb_tensor *c;

		if (!mcb_model_new_tensor(&w->part, mask, t->dtype, t->ndim, t->shape, &c,
					  w->sc->e)) {
			memcpy(c->data, t->data, t->nbytes);
			json_object_set_new(rec, "mask", json_string(mask));
		}
	}
	json_object_set_new(json_object_get(w->part.meta, "quant"), name, rec);
}

char *mcb_wstep_side(struct mcb_wstep *w, const char *name, const char *what)
{
	return mcb_arena_printf(w->sc->scratch, "%s.%s", name, what);
}

/* 0, or MCB_ERANGE naming the first weight of w (rows, cols) above limit. */
int mcb_wstep_check_limit(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
			  int64_t cols, float limit, const char *what)
{
	int64_t i;

	for (i = 0; i < rows * cols; i++)
		if (fabsf(w[i]) > limit)
			return mcb_errf(q->sc->e, MCB_ERANGE,
					"tensor '%s' has a weight of magnitude %g at row %lld, "
					"column %lld, beyond what %s can hold (%g)",
					name, (double)w[i], (long long)(i / cols),
					(long long)(i % cols), what, (double)limit);
	return 0;
}

int mcb_wstep_put_f16(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
		      int64_t cols, const char *reason)
{
	uint16_t *h;
	size_t i, n = (size_t)(rows * cols);

	if (mcb_wstep_check_limit(q, name, w, rows, cols, 65504.0f, "F16"))
		return q->sc->e->code;
	if (!(h = mcb_wstep_new_tensor(q, name, MCB_DT_F16, 2, rows, cols)))
		return q->sc->e->code;
	for (i = 0; i < n; i++)
		h[i] = mcb_f32_to_f16(w[i]);
	mcb_wstep_record(q, name, json_pack("{s:s, s:s}", "fallback", "F16", "reason", reason));
	return 0;
}

/*
 * Store integer codes (unsigned, 0 .. 2^bits - 1, as the quantizers give
 * them) with their scales (rows, ngroups) and zeros; g_idx (cols,) or NULL.
 */
int mcb_wstep_put_int(struct mcb_wstep *q, const char *name, const uint8_t *codes,
		      const float *scale, const uint8_t *zero, const int32_t *g_idx, int64_t rows,
		      int64_t cols, int bits, int64_t group, int symmetric)
{
	int64_t ng = group ? (cols + group - 1) / group : 1, i, half = (int64_t)1 << (bits - 1);
	const char *sn = mcb_wstep_side(q, name, "scale"), *zn = mcb_wstep_side(q, name, "zero"),
		   *gn = mcb_wstep_side(q, name, "g_idx");
	size_t n = (size_t)(rows * cols);
	json_t *rec;

	if (symmetric) {
		int8_t *c = mcb_wstep_new_tensor(q, name, MCB_DT_I8, 2, rows, cols);

		if (!c)
			return q->sc->e->code;
		for (i = 0; i < (int64_t)n; i++)
			c[i] = (int8_t)((int)codes[i] - (int)half);
	} else {
		uint8_t *c = mcb_wstep_new_tensor(q, name, MCB_DT_U8, 2, rows, cols), *z;

		if (!c || !(z = mcb_wstep_new_tensor(q, zn, MCB_DT_U8, 2, rows, ng)))
			return q->sc->e->code;
		memcpy(c, codes, n);
		memcpy(z, zero, (size_t)(rows * ng));
	}
	if (group) {
		uint16_t *s = mcb_wstep_new_tensor(q, sn, MCB_DT_F16, 2, rows, ng);

		if (!s)
			return q->sc->e->code;
		for (i = 0; i < rows * ng; i++) {
			s[i] = mcb_f32_to_f16(scale[i]);
			if (mcb_f16_to_f32(s[i]) != scale[i])
				return mcb_errf(q->sc->e, MCB_ERANGE,
						"tensor '%s': a group scale (%g) is not an fp16 "
						"value: its range is beyond fp16",
						name, (double)scale[i]);
		}
	} else {
		float *s = mcb_wstep_new_tensor(q, sn, MCB_DT_F32, 1, rows, 0);

		if (!s)
			return q->sc->e->code;
		memcpy(s, scale, (size_t)rows * sizeof(float));
	}
	if (g_idx) {
		int32_t *g = mcb_wstep_new_tensor(q, gn, MCB_DT_I32, 1, cols, 0);

		if (!g)
			return q->sc->e->code;
		memcpy(g, g_idx, (size_t)cols * sizeof(int32_t));
	}
	rec = json_pack("{s:s, s:s, s:i, s:s, s:I, s:b, s:s}", "format", "int", "method", q->method,
			"bits", bits, "granularity", group ? "group" : "channel", "group_size",
			(json_int_t)group, "symmetric", symmetric, "scale", sn);
	if (!symmetric)
		json_object_set_new(rec, "zero", json_string(zn));
	if (g_idx)
		json_object_set_new(rec, "g_idx", json_string(gn));
	mcb_wstep_record(q, name, rec);
	return 0;
}

/* A float tensor the step changed without quantizing it (a norm AWQ folded
 * scales into, a skipped weight of a scaled group), as F32. */
int mcb_wstep_put_f32(struct mcb_wstep *w, const char *name, const float *x, int64_t rows,
		      int64_t cols)
{
	const struct mcb_tensor *t = mcb_model_find(w->src, name);
	float *d = mcb_wstep_new_tensor(w, name, MCB_DT_F32, t->ndim, rows, cols);
	const json_t *was = mcb_wstep_src_record(w, name);

	if (!d)
		return w->sc->e->code;
	memcpy(d, x, (size_t)(rows * cols) * sizeof(float));
	if (was) /* a pruned weight's record (format float, its mask) */
		mcb_wstep_record(w, name, json_pack("{s:s}", "format", "float"));
	return 0;
}

const char *const mcb_wlayer_names[MCB_WL_N] = {"attn_norm", "attn_q",	    "attn_k",
						"attn_v",    "attn_output", "ffn_norm",
						"ffn_gate",  "ffn_up",	    "ffn_down"};

void mcb_wlayer_free(struct mcb_wlayer *l)
{
	int i;

	for (i = 0; i < MCB_WL_N; i++)
		free(l->w[i]);
}

int mcb_wlayer_load(struct mcb_wstep *w, struct mcb_wlayer *l)
{
	int i, rc;

	memset(l, 0, sizeof(*l));
	for (i = 0; i < MCB_WL_N; i++) {
		l->name[i] = mcb_arena_printf(w->sc->scratch, "blk.%lld.%s.weight",
					      (long long)w->layer, mcb_wlayer_names[i]);
		if ((rc = mcb_wstep_weights(w, l->name[i], &l->rows[i], &l->cols[i], &l->w[i])))
			return rc;
	}
	return 0;
}

int mcb_wstep_stats(struct mcb_wstep *w, enum mcb_capture_point pt, struct mcb_calib_stats *st)
{
	int rc;

	if (!w->calib)
		return mcb_errf(w->sc->e, MCB_EINTERNAL, "%s needs calibration statistics",
				w->method);
	rc = mcb_calib_file_get(w->calib, (int)w->layer, pt, st, w->sc->e);
	if (rc == MCB_ENOENT)
		return mcb_errf(w->sc->e, MCB_EFORMAT,
				"the calibration artefact has no statistics for blk.%lld %s",
				(long long)w->layer, mcb_calib_point_name(pt));
	return rc;
}
