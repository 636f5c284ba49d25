/*
 * step quantize: the weights of one group of tensors (one layer, or the
 * globals: compiler/plan.c) quantized.
 *
 * params: {"method": "rtn" | "gptq" | "awq" | "smoothquant" | "fp8",
 *          "layer": L (-1: the globals group),
 *          "tensors": {NAME: {"bits", "group_size" (0: per channel),
 *                             "symmetric", "ggml_type" ("none", "q8_0",
 *                             "q4_0", "q4_1", "q4_k", "q6_k")}},
 *          gptq: "damp", "blocksize", "act_order", "static_groups";
 *          awq: "n_grid", "duo_scaling", "clip"; smoothquant: "alpha"}
 * inputs: "model" (the whole model, or this group's part from the previous
 *         technique), "calib" (gptq, awq, smoothquant: the calibration
 *         artefact, runtime/calib.c)
 * output: part.safetensors (runtime/part.c)
 *
 * Forms written (include/mcb/qtensor.h):
 *  - ggml_type q8_0: Q8_0's split form (I8 codes, F16 scale per 32), bit for
 *    bit ggml's quantize_row_q8_0_ref; int codes of other methods with
 *    8 bits in symmetric groups of 32 are the same form.
 *  - ggml_type q4_0, q4_1, q4_k, q6_k with method rtn: ggml's blocks, from
 *    ggml's own reference quantizers (what llama-quantize writes).
 *  - int: codes (symmetric: I8, q - zero; asymmetric: U8 with a U8 zero
 *    tensor), scale F16 [rows, groups] (the quantizer rounds it to fp16
 *    first, so the stored scale reproduces the codes) or F32 [rows] per
 *    channel.  8-bit symmetric per channel keeps RTN's max/127 convention
 *    (vLLM's and TensorRT-LLM's W8); other int codes use GPTQ's quantizer.
 *  - fp8: F8_E4M3 codes with an F32 scale [rows] = max|W_r| / 448.
 * A tensor whose row length the block or group does not divide takes the
 * next type up that fits (Q4_K -> Q4_1, Q6_K -> Q8_0, as bits per weight go:
 * 4.5 -> 5.0, 6.56 -> 8.5), else F16, as llama-quantize does; the record
 * says why ("reason" of a fallback, "note" of another type), and the
 * assemble step sums the reasons up.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/awq.h"
#include "mcb/blas.h"
#include "mcb/buf.h"
#include "mcb/calib.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/gptq.h"
#include "mcb/model.h"
#include "mcb/quant.h"
#include "mcb/step.h"
#include "mcb/wstep.h"

/* Largest magnitude of w (n,). */
static float amax(const float *w, size_t n)
{
	float m = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (fabsf(w[i]) > m)
			m = fabsf(w[i]);
	return m;
}

/* Q8_0's split form: I8 codes and one F16 scale per 32 (int record). */
static int put_q8_0(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
		    int64_t cols)
{
	const char *sn = mcb_wstep_side(q, name, "scale");
	int8_t *c = mcb_wstep_new_tensor(q, name, MCB_DT_I8, 2, rows, cols);
	uint16_t *d;
	int64_t r;

	if (!c || !(d = mcb_wstep_new_tensor(q, sn, MCB_DT_F16, 2, rows, cols / MCB_QK8_0)))
		return q->sc->e->code;
	if (mcb_wstep_check_limit(q, name, w, rows, cols, 127.0f * 65504.0f, "Q8_0's fp16 scale"))
		return q->sc->e->code;
	for (r = 0; r < rows; r++)
		mcb_quantize_row_q8_0_split(w + r * cols, c + r * cols, d + r * (cols / MCB_QK8_0),
					    cols);
	mcb_wstep_record(q, name,
			 json_pack("{s:s, s:s, s:i, s:s, s:i, s:b, s:s}", "format", "int", "method",
				   q->method, "bits", 8, "granularity", "group", "group_size",
				   MCB_QK8_0, "symmetric", 1, "scale", sn));
	return 0;
}

static enum mcb_dtype ggml_dtype(const char *t)
{
	return !strcmp(t, "q4_0")   ? MCB_DT_Q4_0
	       : !strcmp(t, "q4_1") ? MCB_DT_Q4_1
	       : !strcmp(t, "q4_k") ? MCB_DT_Q4_K
	       : !strcmp(t, "q6_k") ? MCB_DT_Q6_K
				    : MCB_DT_Q8_0;
}

/* ggml blocks, U8 [rows, row_bytes]. */
static int put_ggml(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
		    int64_t cols, enum mcb_dtype dt)
{
	const struct mcb_dtype_info *di = mcb_dtype_info(dt);
	size_t rb = (size_t)(cols / di->block) * di->block_bytes;
	uint8_t *b = mcb_wstep_new_tensor(q, name, MCB_DT_U8, 2, rows, (int64_t)rb);
	int64_t r;

	if (!b)
		return q->sc->e->code;
	if (mcb_wstep_check_limit(q, name, w, rows, cols, 65504.0f, "fp16 block scales"))
		return q->sc->e->code;
	for (r = 0; r < rows; r++)
		mcb_quantize_row_ggml(dt, w + r * cols, b + (size_t)r * rb, cols);
	mcb_wstep_record(q, name,
			 json_pack("{s:s, s:s, s:s}", "format", "ggml", "method", q->method,
				   "ggml_type", di->name));
	return 0;
}

static int put_fp8(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
		   int64_t cols)
{
	const char *sn = mcb_wstep_side(q, name, "scale");
	uint8_t *c = mcb_wstep_new_tensor(q, name, MCB_DT_F8_E4M3, 2, rows, cols);
	float *s;
	int64_t r, j;

	if (!c || !(s = mcb_wstep_new_tensor(q, sn, MCB_DT_F32, 1, rows, 0)))
		return q->sc->e->code;
	for (r = 0; r < rows; r++) {
		const float *x = w + r * cols;
		float m = amax(x, (size_t)cols), sc = m / 448.0f;

		s[r] = sc;
		for (j = 0; j < cols; j++)
			c[r * cols + j] = sc > 0 ? mcb_f32_to_e4m3(x[j] / sc) : 0;
	}
	mcb_wstep_record(q, name,
			 json_pack("{s:s, s:s, s:i, s:s, s:I, s:s}", "format", "fp8", "method",
				   q->method, "bits", 8, "granularity", "channel", "group_size",
				   (json_int_t)0, "scale", sn));
	return 0;
}

/* The ggml type a row of cols elements can take, starting from t and going
 * up; -1 when none fits (F16). */
static int ggml_fit(enum mcb_dtype t, int64_t cols)
{
	for (;;) {
		if (cols % mcb_dtype_info(t)->block == 0)
			return (int)t;
		if (t == MCB_DT_Q4_K)
			t = MCB_DT_Q4_1;
		else if (t == MCB_DT_Q6_K)
			t = MCB_DT_Q8_0;
		else
			return -1;
	}
}

/* Round-to-nearest of one tensor with its parameters tp. */
static int rtn_tensor(struct mcb_wstep *q, const char *name, const json_t *tp, const float *w,
		      int64_t rows, int64_t cols)
{
	const char *gt = mcb_param_str(tp, "ggml_type", "none");
	int bits = (int)mcb_param_int(tp, "bits", 8), sym = mcb_param_bool(tp, "symmetric", 1);
	int64_t group = mcb_param_int(tp, "group_size", 0);
	size_t n = (size_t)(rows * cols);
	struct mcb_intq_params ip = {bits, group, sym, group != 0};
	int64_t ng = group ? cols / group : 1;
	uint8_t *codes = NULL, *zero = NULL;
	float *scale = NULL;
	int rc;

	if (!strcmp(q->method, "fp8"))
		return put_fp8(q, name, w, rows, cols);
	if (strcmp(gt, "none")) {
		enum mcb_dtype want = ggml_dtype(gt);
		int fit = ggml_fit(want, cols);
		char why[160];

		if (fit < 0) {
			snprintf(why, sizeof(why),
				 "row length %lld is not a multiple of %u: kept as F16",
				 (long long)cols, mcb_dtype_info(want)->block);
			return mcb_wstep_put_f16(q, name, w, rows, cols, why);
		}
		if (fit != (int)want) {
			snprintf(why, sizeof(why),
				 "row length %lld is not a multiple of %u: %s instead of %s",
				 (long long)cols, mcb_dtype_info(want)->block,
				 mcb_dtype_info((enum mcb_dtype)fit)->name,
				 mcb_dtype_info(want)->name);
			q->note = mcb_arena_strdup(q->sc->scratch, why);
		}
		return fit == MCB_DT_Q8_0 ? put_q8_0(q, name, w, rows, cols)
					  : put_ggml(q, name, w, rows, cols, (enum mcb_dtype)fit);
	}
	if (group && cols % group) {
		char why[160];

		snprintf(why, sizeof(why),
			 "row length %lld is not a multiple of group size %lld: kept as F16",
			 (long long)cols, (long long)group);
		return mcb_wstep_put_f16(q, name, w, rows, cols, why);
	}
	if (bits == 8 && sym && group == MCB_QK8_0)
		return put_q8_0(q, name, w, rows, cols); /* Q8_0's numbers, in any format */
	if (bits == 8 && sym && !group) {
		int8_t *c8 = malloc(n ? n : 1);
		float *s = malloc((size_t)rows * sizeof(float));
		uint8_t *u = malloc(n ? n : 1);
		size_t i;

		if (!c8 || !s || !u) {
			free(c8), free(s), free(u);
			return mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory quantizing '%s'",
					name);
		}
		mcb_rtn_int8_channel(w, rows, cols, c8, s);
		for (i = 0; i < n; i++)
			u[i] = (uint8_t)(c8[i] + 128);
		rc = mcb_wstep_put_int(q, name, u, s, NULL, NULL, rows, cols, 8, 0, 1);
		free(c8), free(s), free(u);
		return rc;
	}
	codes = malloc(n ? n : 1);
	scale = malloc((size_t)(rows * ng) * sizeof(float));
	zero = malloc((size_t)(rows * ng));
	if (!codes || !scale || !zero) {
		rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory quantizing '%s'", name);
		goto out;
	}
	mcb_intq_rtn(w, rows, cols, &ip, codes, scale, zero);
	rc = mcb_wstep_put_int(q, name, codes, scale, zero, NULL, rows, cols, bits, group, sym);
out:
	free(codes);
	free(scale);
	free(zero);
	return rc;
}

/* AWQ's quantizer (zero point, fp16 scales) on one weight. */
static int awq_tensor(struct mcb_wstep *q, const char *name, const struct mcb_awq_params *ap,
		      const float *w, int64_t rows, int64_t cols)
{
	int64_t ng = ap->group_size ? cols / ap->group_size : 1;
	uint8_t *codes, *zero;
	float *scale;
	int rc;

	if (ap->group_size && cols % ap->group_size) {
		char why[160];

		snprintf(why, sizeof(why),
			 "row length %lld is not a multiple of group size %lld: kept as F16",
			 (long long)cols, (long long)ap->group_size);
		return mcb_wstep_put_f16(q, name, w, rows, cols, why);
	}
	codes = malloc((size_t)(rows * cols) + 1);
	zero = malloc((size_t)(rows * ng) + 1);
	scale = malloc((size_t)(rows * ng) * sizeof(float) + 1);
	if (!codes || !zero || !scale)
		rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory quantizing '%s'", name);
	else
		rc = mcb_awq_quantize(ap, w, rows, cols, codes, scale, zero, q->sc->e);
	if (rc)
		mcb_errprefix(q->sc->e, "%s", name);
	else
		rc = mcb_wstep_put_int(q, name, codes, scale, zero, NULL, rows, cols, ap->bits,
				       ap->group_size, 0);
	free(codes);
	free(zero);
	free(scale);
	return rc;
}

/* SmoothQuant's int8 weight per output row, with the static input scale. */
static int w8a8_tensor(struct mcb_wstep *q, const char *name, const float *w, int64_t rows,
		       int64_t cols, float act_scale)
{
	int8_t *c8 = malloc((size_t)(rows * cols) + 1);
	uint8_t *u = malloc((size_t)(rows * cols) + 1);
	float *delta = malloc((size_t)rows * sizeof(float) + 1), *is;
	const char *isn = mcb_wstep_side(q, name, "input_scale");
	int64_t i;
	int rc;

	if (!c8 || !u || !delta)
		rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory quantizing '%s'", name);
	else
		rc = mcb_awq_w8a8_weight(w, rows, cols, c8, delta, q->sc->e);
	for (i = 0; !rc && i < rows * cols; i++)
		u[i] = (uint8_t)(c8[i] + 128);
	if (!rc)
		rc = mcb_wstep_put_int(q, name, u, delta, NULL, NULL, rows, cols, 8, 0, 1);
	if (!rc && !(is = mcb_wstep_new_tensor(q, isn, MCB_DT_F32, 1, 1, 0)))
		rc = q->sc->e->code;
	if (!rc) {
		*is = act_scale;
		json_object_set_new(json_object_get(json_object_get(q->part.meta, "quant"), name),
				    "input_scale", json_string(isn));
	}
	free(c8);
	free(u);
	free(delta);
	return rc;
}

/* ---- methods ---- */

/* The planner's reason to keep a tensor in floating point (the export
 * format cannot pack its shape), or NULL. */
static const char *fallback_of(const json_t *tp)
{
	return json_string_value(json_object_get(tp, "fallback"));
}

static int run_rtn(struct mcb_wstep *q, const json_t *tensors)
{
	const char *name;
	json_t *tp;
	int rc = 0;

	json_object_foreach ((json_t *)tensors, name, tp) {
		int64_t rows = 0, cols = 0;
		float *w;

		if ((rc = mcb_wstep_weights(q, name, &rows, &cols, &w)))
			break;
		rc = fallback_of(tp) ? mcb_wstep_put_f16(q, name, w, rows, cols, fallback_of(tp))
				     : rtn_tensor(q, name, tp, w, rows, cols);
		free(w);
		if (rc)
			break;
	}
	return rc;
}

/* ---- activation-aware methods: one layer at a time ---- */

/* A copy of the sample rows x (n, cols) divided by s (NULL: as they are). */
static float *scaled_rows(const struct mcb_calib_stats *st, const float *s)
{
	size_t n = (size_t)(st->nsamples * st->cols);
	float *x = malloc((n ? n : 1) * sizeof(float));

	if (!x)
		return NULL;
	memcpy(x, st->samples, n * sizeof(float));
	if (s)
		mcb_awq_div_cols(x, st->nsamples, st->cols, s);
	return x;
}

/* The per-tensor parameters of tensor i of the layer, or NULL (not quantized here). */
static const json_t *tparams(const json_t *tensors, const struct mcb_wlayer *l, int i)
{
	return json_object_get(tensors, l->name[i]);
}

/*
 * AWQ (AutoAWQ awq/quantize/scale.py for LlamaDecoderLayer): four groups of
 * layers sharing an input, each with the op its scales fold into:
 *   attn_norm -> q, k, v       ffn_norm -> gate, up       up -> down
 *   v -> o, only when v's rows are o's columns (no grouped-query attention;
 *   AutoAWQ's own condition)
 * then the clip search on every weight but q and k (AutoAWQ skips those),
 * then AWQ's quantizer.  Scales are searched with the first quantized
 * tensor's bits and group size; a group whose width that group size does not
 * divide is left unscaled (its tensors fall back to F16 anyway).
 */
struct awq_group {
	int prev;	   /* L_* the scales divide */
	int layers[3], nl; /* L_* the scales multiply */
	enum mcb_capture_point pt;
};

static const struct awq_group awq_groups[] = {
	{MCB_WL_ATTN_NORM, {MCB_WL_Q, MCB_WL_K, MCB_WL_V}, 3, MCB_CAPTURE_ATTN_IN},
	{MCB_WL_V, {MCB_WL_O}, 1, MCB_CAPTURE_ATTN_OUT},
	{MCB_WL_FFN_NORM, {MCB_WL_GATE, MCB_WL_UP}, 2, MCB_CAPTURE_FFN_IN},
	{MCB_WL_UP, {MCB_WL_DOWN}, 1, MCB_CAPTURE_FFN_DOWN},
};

static int awq_params_for(const json_t *sp, const json_t *tp, struct mcb_awq_params *ap)
{
	mcb_awq_defaults(ap);
	ap->bits = (int)mcb_param_int(tp, "bits", 4);
	ap->group_size = mcb_param_int(tp, "group_size", 128);
	ap->fp16_scale = 1;
	ap->n_grid = (int)mcb_param_int(sp, "n_grid", 20);
	ap->duo_scaling = mcb_param_bool(sp, "duo_scaling", 1);
	return 0;
}

static int run_awq(struct mcb_wstep *q, const json_t *tensors)
{
	const struct mcb_blas *blas = mcb_blas_get(q->sc->e);
	float *s_of[sizeof(awq_groups) / sizeof(awq_groups[0])] = {0};
	struct mcb_calib_stats st;
	struct mcb_wlayer l;
	size_t g;
	int i, rc, clip = mcb_param_bool(q->sc->params, "clip", 1);

	if (!blas)
		return q->sc->e->code;
	if ((rc = mcb_wlayer_load(q, &l)))
		goto out;
	for (g = 0; g < sizeof(awq_groups) / sizeof(awq_groups[0]) && !rc; g++) {
		const struct awq_group *ag = &awq_groups[g];
		struct mcb_awq_linear lin[3];
		struct mcb_awq_params ap;
		const json_t *tp = NULL;
		int64_t cols = l.cols[ag->layers[0]];
		int k;

		for (k = 0; k < ag->nl && !tp; k++)
			if (!fallback_of(tparams(tensors, &l, ag->layers[k])))
				tp = tparams(tensors, &l, ag->layers[k]);
		if (!tp)
			continue; /* nothing of this group is quantized */
		if (ag->prev == MCB_WL_V && l.rows[MCB_WL_V] != l.cols[MCB_WL_O])
			continue; /* grouped-query attention: AutoAWQ skips v -> o */
		awq_params_for(q->sc->params, tp, &ap);
		if (ap.group_size && cols % ap.group_size)
			continue;
		for (k = 0; k < ag->nl; k++) {
			lin[k].w = l.w[ag->layers[k]];
			lin[k].rows = l.rows[ag->layers[k]];
		}
		if ((rc = mcb_wstep_stats(q, ag->pt, &st)))
			break;
		if (!(s_of[g] = malloc((size_t)cols * sizeof(float)))) {
			rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory");
			break;
		}
		if ((rc = mcb_awq_search_scale(&ap, lin, ag->nl, cols, st.mean_abs, st.samples,
					       st.nsamples, blas, s_of[g], NULL, NULL, q->sc->e)))
			break;
		/* fold: what produces the input /= s, every consumer's columns *= s */
		/* a norm (cols 1) or the preceding linear's rows (v: [kv_dim, dim]) */
		mcb_awq_div_rows(l.w[ag->prev], cols, l.cols[ag->prev], s_of[g]);
		l.changed[ag->prev] = 1;
		for (k = 0; k < ag->nl; k++) {
			mcb_awq_mul_cols(l.w[ag->layers[k]], l.rows[ag->layers[k]], cols, s_of[g]);
			l.changed[ag->layers[k]] = 1;
		}
	}
	/* clip search on the scaled weights with the inputs they now see */
	for (g = 0; g < sizeof(awq_groups) / sizeof(awq_groups[0]) && !rc && clip; g++) {
		const struct awq_group *ag = &awq_groups[g];
		struct mcb_awq_params ap;
		float *x = NULL;
		int k;

		for (k = 0; k < ag->nl && !rc; k++) {
			int li = ag->layers[k];
			const json_t *tp = tparams(tensors, &l, li);

			if (!tp || fallback_of(tp) || li == MCB_WL_Q || li == MCB_WL_K)
				continue;
			awq_params_for(q->sc->params, tp, &ap);
			if (ap.group_size && l.cols[li] % ap.group_size)
				continue;
			if (!x) {
				if ((rc = mcb_wstep_stats(q, ag->pt, &st)))
					break;
				if (!(x = scaled_rows(&st, s_of[g]))) {
					rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory");
					break;
				}
			}
			rc = mcb_awq_search_clip(&ap, l.w[li], l.rows[li], l.cols[li], x,
						 st.nsamples, blas, l.w[li], NULL, q->sc->e);
			l.changed[li] = 1;
		}
		free(x);
	}
	/* quantize with AWQ's quantizer; store what the scales changed */
	for (i = 0; i < MCB_WL_N && !rc; i++) {
		const json_t *tp = tparams(tensors, &l, i);
		struct mcb_awq_params ap;

		if (!tp) {
			if (l.changed[i])
				rc = mcb_wstep_put_f32(q, l.name[i], l.w[i], l.rows[i], l.cols[i]);
			continue;
		}
		if (fallback_of(tp)) {
			rc = mcb_wstep_put_f16(q, l.name[i], l.w[i], l.rows[i], l.cols[i],
					       fallback_of(tp));
			continue;
		}
		awq_params_for(q->sc->params, tp, &ap);
		rc = awq_tensor(q, l.name[i], &ap, l.w[i], l.rows[i], l.cols[i]);
	}
out:
	for (g = 0; g < sizeof(s_of) / sizeof(s_of[0]); g++)
		free(s_of[g]);
	mcb_wlayer_free(&l);
	return rc;
}

/*
 * SmoothQuant W8A8 (mit-han-lab/smoothquant smooth.py smooth_lm for Llama:
 * attn_norm -> q, k, v and ffn_norm -> gate, up are smoothed; o and down
 * are not), then every linear weight int8 per output channel with a static
 * per-tensor input scale recorded ("input_scale": X.input_scale, F32 [1]).
 */
static int run_smoothquant(struct mcb_wstep *q, const json_t *tensors)
{
	static const struct {
		int prev, layers[3], nl;
		enum mcb_capture_point pt;
		int smooth;
	} groups[] = {
		{MCB_WL_ATTN_NORM, {MCB_WL_Q, MCB_WL_K, MCB_WL_V}, 3, MCB_CAPTURE_ATTN_IN, 1},
		{-1, {MCB_WL_O}, 1, MCB_CAPTURE_ATTN_OUT, 0},
		{MCB_WL_FFN_NORM, {MCB_WL_GATE, MCB_WL_UP}, 2, MCB_CAPTURE_FFN_IN, 1},
		{-1, {MCB_WL_DOWN}, 1, MCB_CAPTURE_FFN_DOWN, 0},
	};
	double alpha = json_number_value(json_object_get(q->sc->params, "alpha"));
	struct mcb_calib_stats st;
	struct mcb_wlayer l;
	size_t g;
	int i, k, rc;

	if ((rc = mcb_wlayer_load(q, &l)))
		goto out;
	for (g = 0; g < sizeof(groups) / sizeof(groups[0]) && !rc; g++) {
		int64_t cols = l.cols[groups[g].layers[0]];
		struct mcb_awq_linear lin[3];
		float *s = NULL, act;

		if ((rc = mcb_wstep_stats(q, groups[g].pt, &st)))
			break;
		if (groups[g].smooth) {
			if (!(s = malloc((size_t)cols * sizeof(float)))) {
				rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory");
				break;
			}
			for (k = 0; k < groups[g].nl; k++) {
				lin[k].w = l.w[groups[g].layers[k]];
				lin[k].rows = l.rows[groups[g].layers[k]];
			}
			rc = mcb_awq_smooth_scales(lin, groups[g].nl, cols, st.max_abs, alpha, s,
						   q->sc->e);
			if (!rc) {
				mcb_awq_div_rows(l.w[groups[g].prev], cols, 1, s);
				l.changed[groups[g].prev] = 1;
				for (k = 0; k < groups[g].nl; k++) {
					mcb_awq_mul_cols(l.w[groups[g].layers[k]], lin[k].rows,
							 cols, s);
					l.changed[groups[g].layers[k]] = 1;
				}
			}
		}
		if (!rc)
			rc = mcb_awq_act_scale(st.max_abs, s, cols, &act, q->sc->e);
		for (k = 0; k < groups[g].nl && !rc; k++) {
			int li = groups[g].layers[k];

			if (tparams(tensors, &l, li))
				rc = w8a8_tensor(q, l.name[li], l.w[li], l.rows[li], l.cols[li],
						 act);
			else if (l.changed[li])
				rc = mcb_wstep_put_f32(q, l.name[li], l.w[li], l.rows[li],
						       l.cols[li]);
		}
		free(s);
	}
	for (i = 0; i < MCB_WL_N && !rc; i++)
		if ((i == MCB_WL_ATTN_NORM || i == MCB_WL_FFN_NORM) && l.changed[i])
			rc = mcb_wstep_put_f32(q, l.name[i], l.w[i], l.rows[i], l.cols[i]);
out:
	mcb_wlayer_free(&l);
	return rc;
}

/*
 * GPTQ (IST-DASLab/gptq, runtime/gptq.c): each weight of the layer with its
 * input's Hessian; one prepared Hessian (damping, act_order permutation,
 * inverse factor) serves the weights that share an input (q, k, v; gate,
 * up).  The reference quantizes the layer's weights on statistics measured
 * with the layer's original weights, as here (sequential calibration makes
 * the layers before it compressed).  A weight pruned by an earlier technique
 * cannot go through GPTQ's error feedback without losing its zeros: the
 * planner fuses SparseGPT with the quantizer instead, and other pruned
 * weights are refused here.
 */
static int run_gptq(struct mcb_wstep *q, const json_t *tensors)
{
	static const enum mcb_capture_point point[MCB_WL_N] = {
		[MCB_WL_Q] = MCB_CAPTURE_ATTN_IN,     [MCB_WL_K] = MCB_CAPTURE_ATTN_IN,
		[MCB_WL_V] = MCB_CAPTURE_ATTN_IN,     [MCB_WL_O] = MCB_CAPTURE_ATTN_OUT,
		[MCB_WL_GATE] = MCB_CAPTURE_FFN_IN,   [MCB_WL_UP] = MCB_CAPTURE_FFN_IN,
		[MCB_WL_DOWN] = MCB_CAPTURE_FFN_DOWN,
	};
	struct mcb_gptq *g = NULL;
	int gpt = -1; /* the capture point g was prepared for */
	struct mcb_gptq_opts o;
	int i, rc = 0;

	mcb_gptq_opts_init(&o);
	o.percdamp = json_number_value(json_object_get(q->sc->params, "damp"));
	o.blocksize = mcb_param_int(q->sc->params, "blocksize", 128);
	o.act_order = mcb_param_bool(q->sc->params, "act_order", 0);
	o.static_groups = mcb_param_bool(q->sc->params, "static_groups", 0);
	o.threads = q->sc->blas_threads;
	for (i = 0; i < MCB_WL_N && !rc; i++) {
		const char *name = mcb_arena_printf(q->sc->scratch, "blk.%lld.%s.weight",
						    (long long)q->layer, mcb_wlayer_names[i]);
		const json_t *tp = json_object_get(tensors, name);
		int bits = (int)mcb_param_int(tp, "bits", 4),
		    sym = mcb_param_bool(tp, "symmetric", 1);
		int64_t group = mcb_param_int(tp, "group_size", 0), rows = 0, cols = 0, ng;
		struct mcb_intq_params ip = {bits, group, sym, group != 0};
		struct mcb_calib_stats st;
		struct mcb_gptq_out out;
		float *w = NULL;

		if (!tp)
			continue;
		if (json_object_get(mcb_wstep_src_record(q, name), "mask")) {
			rc = mcb_errf(
				q->sc->e, MCB_EUNSUP,
				"%s is pruned: gptq's error feedback would fill its zeros "
				"(prune with sparsegpt right before gptq to quantize jointly)",
				name);
			break;
		}
		if ((rc = mcb_wstep_weights(q, name, &rows, &cols, &w)))
			break;
		if (fallback_of(tp)) {
			rc = mcb_wstep_put_f16(q, name, w, rows, cols, fallback_of(tp));
			free(w);
			continue;
		}
		if (group && cols % group) {
			char why[160];

			snprintf(
				why, sizeof(why),
				"row length %lld is not a multiple of group size %lld: kept as F16",
				(long long)cols, (long long)group);
			rc = mcb_wstep_put_f16(q, name, w, rows, cols, why);
			free(w);
			continue;
		}
		if (gpt != (int)point[i]) {
			mcb_gptq_free(g);
			g = NULL;
			gpt = (int)point[i];
			if (!(rc = mcb_wstep_stats(q, point[i], &st)))
				rc = mcb_gptq_prepare(st.hessian, cols, &o, &g, q->sc->e);
			if (!rc && g->retries)
				mcb_step_log(q->sc,
					     "blk.%lld %s: Hessian not positive definite at damp "
					     "%g; factorized at %g",
					     (long long)q->layer, mcb_calib_point_name(point[i]),
					     o.percdamp, g->percdamp);
		}
		ng = mcb_gptq_ngroups(cols, group);
		memset(&out, 0, sizeof(out));
		out.codes = malloc((size_t)(rows * cols) + 1);
		out.scale = malloc((size_t)(rows * ng) * sizeof(float) + 1);
		out.zero = malloc((size_t)(rows * ng) + 1);
		out.g_idx = malloc((size_t)cols * sizeof(int32_t) + 1);
		if (!rc && (!out.codes || !out.scale || !out.zero || !out.g_idx))
			rc = mcb_errf(q->sc->e, MCB_ENOMEM, "out of memory quantizing '%s'", name);
		if (!rc)
			rc = mcb_gptq_quantize(g, w, rows, &ip, &o, &out, q->sc->e);
		if (rc)
			mcb_errprefix(q->sc->e, "%s", name);
		else
			rc = mcb_wstep_put_int(q, name, out.codes, out.scale, out.zero,
					       o.act_order && !o.static_groups ? out.g_idx : NULL,
					       rows, cols, bits, group, sym);
		free(out.codes);
		free(out.scale);
		free(out.zero);
		free(out.g_idx);
		free(w);
	}
	mcb_gptq_free(g);
	return rc;
}

static int run_quantize(struct mcb_stepctx *sc)
{
	const json_t *tensors = json_object_get(sc->params, "tensors");
	struct mcb_wstep q;
	int rc;

	if (!json_is_object(tensors))
		return mcb_errf(sc->e, MCB_EINTERNAL, "quantize step lacks its tensors");
	rc = mcb_wstep_begin(&q, sc);
	if (rc)
		goto out;
	/* the globals have no statistics: they are rounded to nearest */
	if (!strcmp(q.method, "rtn") || !strcmp(q.method, "fp8") || q.layer < 0)
		rc = run_rtn(&q, tensors);
	else if (!strcmp(q.method, "gptq"))
		rc = run_gptq(&q, tensors);
	else if (!strcmp(q.method, "awq"))
		rc = run_awq(&q, tensors);
	else if (!strcmp(q.method, "smoothquant"))
		rc = run_smoothquant(&q, tensors);
	else
		rc = mcb_errf(sc->e, MCB_EUNSUP, "quantize: method '%s' is not available yet",
			      q.method);
	/* quiet: the records say what fell back, and assemble sums them up */
	if (!rc)
		rc = mcb_wstep_finish(&q);
out:
	mcb_wstep_release(&q);
	return rc;
}

const struct mcb_stepkind mcb_step_quantize = {
	.name = "quantize",
	.version = 3,
	.run = run_quantize,
};
