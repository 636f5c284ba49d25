/*
 * step prune: one layer's weights pruned (compiler/plan.c plans one step per
 * layer and technique).
 *
 * params: unstructured and n:m
 *           {"method": "magnitude" | "wanda" | "sparsegpt", "layer": L,
 *            "tensors": {NAME: {"pattern": "unstructured", "sparsity": p}
 *                            | {"pattern": "N:M"}},
 *            sparsegpt: "damp", "blocksize", and "quantize": {"tensors":
 *            {NAME: quantize parameters}} when the planner fused the gptq
 *            quantizer that follows into this step (SparseGPT's joint
 *            mode: pruned and quantized in one pass)}
 *         structured
 *           {"method": "heads" | "channels", "layer": L, "keep": K}
 * inputs: "model" (the whole model or the layer's part from the previous
 *         technique), "calib" (every method but magnitude: runtime/calib.c)
 * output: part.safetensors (runtime/part.c)
 *
 * Unstructured and n:m pruning keep each weight's shape: the pruned weights
 * become +0 in an F32 tensor whose record is {"format": "float", "method",
 * "sparsity": "unstructured" | "N:M", "mask": "NAME.mask"} with the mask U8
 * [rows, cols] (1 = kept), so that a later quantizer keeps the zeros and
 * the safetensors export can write the dense-with-mask form.  Scores:
 * magnitude |W| (one threshold per layer, runtime/prune.c); Wanda
 * |W| * ||x_j|| with the input norms from the calibration's sum of squares
 * (per output row); SparseGPT (runtime/gptq.c) with the layer input's
 * Hessian.
 *
 * Structured pruning really removes rows and columns: "heads" keeps K of the
 * key/value heads (each with the query heads that share it: grouped-query
 * attention stays regular), shrinking q, k, v (rows) and o (columns);
 * "channels" keeps K FFN channels, shrinking gate and up (rows) and down
 * (columns).  Units are ranked by the sum of the Wanda scores of every weight
 * removed with them (runtime/prune.c); the part's config says the new
 * n_heads / n_kv_heads or hidden_dim, every layer keeping the same count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/calib.h"
#include "mcb/err.h"
#include "mcb/gptq.h"
#include "mcb/model.h"
#include "mcb/prune.h"
#include "mcb/quant.h"
#include "mcb/step.h"
#include "mcb/wstep.h"

/* The capture point whose statistics describe weight i's input. */
static enum mcb_capture_point input_of(int i)
{
	return i == MCB_WL_O			    ? MCB_CAPTURE_ATTN_OUT
	       : i == MCB_WL_GATE || i == MCB_WL_UP ? MCB_CAPTURE_FFN_IN
	       : i == MCB_WL_DOWN		    ? MCB_CAPTURE_FFN_DOWN
						    : MCB_CAPTURE_ATTN_IN;
}

/* The Wanda norms (cols,) of point pt: sqrt(sum x^2 / sequences). */
static float *wanda_norm(struct mcb_wstep *w, enum mcb_capture_point pt, int64_t cols)
{
	struct mcb_calib_stats st;
	float *norm;

	if (mcb_wstep_stats(w, pt, &st))
		return NULL;
	if (st.cols != cols) {
		mcb_errf(w->sc->e, MCB_EFORMAT,
			 "calibration statistics of %s have %lld columns, the weights %lld",
			 mcb_calib_point_name(pt), (long long)st.cols, (long long)cols);
		return NULL;
	}
	if (!(norm = malloc((size_t)cols * sizeof(float)))) {
		mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
		return NULL;
	}
	if (mcb_prune_wanda_norm(st.sum_sq, cols, (double)mcb_calib_file_sequences(w->calib), norm,
				 w->sc->e)) {
		free(norm);
		return NULL;
	}
	return norm;
}

static int parse_pattern(struct mcb_wstep *w, const json_t *tp, struct mcb_prune_pattern *pat,
			 const char **text)
{
	const char *p = mcb_param_str(tp, "pattern", "unstructured");
	char tail;

	memset(pat, 0, sizeof(*pat));
	*text = p;
	if (!strcmp(p, "unstructured")) {
		pat->sparsity = json_number_value(json_object_get(tp, "sparsity"));
		return 0;
	}
	if (sscanf(p, "%d:%d%c", &pat->n, &pat->m, &tail) != 2 || pat->n < 1 || pat->n >= pat->m)
		return mcb_errf(w->sc->e, MCB_EINVAL, "prune: bad pattern '%s'", p);
	return 0;
}

/*
 * SparseGPT on one weight with its input's Hessian (runtime/gptq.c).  With
 * tq (the quantize parameters of this tensor when the planner fused a gptq
 * quantizer into this step: SparseGPT's joint mode), the kept weights are
 * quantized in the same pass and stored as codes; else x gets the pruned
 * weights.  Returns 1 in *stored when the codes were stored.
 */
static int sparsegpt(struct mcb_wstep *w, int i, const char *name, float *x, int64_t rows,
		     int64_t cols, const struct mcb_prune_pattern *pat, uint8_t *mask,
		     const json_t *tq, int *stored)
{
	struct mcb_calib_stats st;
	struct mcb_gptq_opts o;
	struct mcb_gptq_out out;
	struct mcb_gptq *g = NULL;
	struct mcb_intq_params ip;
	int64_t ng = 1;
	float *res;
	int rc;

	*stored = 0;
	if ((rc = mcb_wstep_stats(w, input_of(i), &st)))
		return rc;
	memset(&out, 0, sizeof(out));
	if (tq) {
		ip.bits = (int)mcb_param_int(tq, "bits", 4);
		ip.group = mcb_param_int(tq, "group_size", 0);
		ip.symmetric = mcb_param_bool(tq, "symmetric", 1);
		ip.fp16_scale = ip.group != 0;
		if (ip.group && cols % ip.group)
			tq = NULL; /* the quantizer keeps it as F16: prune only */
		ng = ip.group ? cols / ip.group : 1;
	}
	res = malloc((size_t)(rows * cols) * sizeof(float) + 1);
	if (tq) {
		out.codes = malloc((size_t)(rows * cols) + 1);
		out.scale = malloc((size_t)(rows * ng) * sizeof(float) + 1);
		out.zero = malloc((size_t)(rows * ng) + 1);
	}
	if (!res || (tq && (!out.codes || !out.scale || !out.zero))) {
		rc = mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
		goto out;
	}
	mcb_gptq_opts_init(&o);
	o.percdamp = json_number_value(json_object_get(w->sc->params, "damp"));
	o.blocksize = mcb_param_int(w->sc->params, "blocksize", 128);
	o.threads = w->sc->blas_threads;
	o.sparsity = pat->sparsity;
	o.prune_n = pat->n;
	o.prune_m = pat->m;
	out.w = res;
	out.mask = mask;
	if (!(rc = mcb_gptq_prepare(st.hessian, cols, &o, &g, w->sc->e)))
		rc = mcb_gptq_prune(g, x, rows, tq ? &ip : NULL, &o, &out, w->sc->e);
	if (!rc)
		memcpy(x, res, (size_t)(rows * cols) * sizeof(float));
	if (!rc && tq) {
		rc = mcb_wstep_put_int(w, name, out.codes, out.scale, out.zero, NULL, rows, cols,
				       ip.bits, ip.group, ip.symmetric);
		*stored = !rc;
	}
out:
	mcb_gptq_free(g);
	free(res);
	free(out.codes);
	free(out.scale);
	free(out.zero);
	return rc;
}

static int unstructured(struct mcb_wstep *w, const json_t *tensors)
{
	const json_t *joint =
		json_object_get(json_object_get(w->sc->params, "quantize"), "tensors");
	struct mcb_wlayer l;
	int i, rc;

	if ((rc = mcb_wlayer_load(w, &l)))
		goto out;
	for (i = 0; i < MCB_WL_N && !rc; i++) {
		const json_t *tp = json_object_get(tensors, l.name[i]);
		const json_t *tq = json_object_get(joint, l.name[i]);

		/* the format cannot pack it: pruned, then kept in F16 as the
		 * quantize step keeps its fallbacks */
		const char *fallback = json_string_value(json_object_get(tq, "fallback"));

		if (fallback)
			tq = NULL;
		struct mcb_prune_pattern pat;
		const char *ptext, *mname;
		float *norm = NULL;
		uint8_t *mask;
		int stored = 0;

		if (!tp && tq) {
			/* not pruned (an override skips it) but quantized in this
			 * fused step: SparseGPT's solver at sparsity 0 is GPTQ */
			uint8_t *tmp = malloc((size_t)(l.rows[i] * l.cols[i]) + 1);

			memset(&pat, 0, sizeof(pat));
			rc = tmp ? sparsegpt(w, i, l.name[i], l.w[i], l.rows[i], l.cols[i], &pat,
					     tmp, tq, &stored)
				 : mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
			free(tmp);
			if (!rc && !stored) /* the quantizer keeps it in floating point */
				rc = mcb_wstep_put_f16(
					w, l.name[i], l.w[i], l.rows[i], l.cols[i],
					"row length not a multiple of the group size");
			if (!rc)
				json_object_set_new(
					json_object_get(json_object_get(w->part.meta, "quant"),
							l.name[i]),
					"method", json_string("gptq"));
			continue;
		}
		if (!tp)
			continue;
		if ((rc = parse_pattern(w, tp, &pat, &ptext)))
			break;
		if (pat.m && l.cols[i] % pat.m) {
			rc = mcb_errf(w->sc->e, MCB_EINVAL,
				      "%s: %d:%d pruning needs a row length that is a multiple of "
				      "%d, not %lld",
				      l.name[i], pat.n, pat.m, pat.m, (long long)l.cols[i]);
			break;
		}
		mname = mcb_wstep_side(w, l.name[i], "mask");
		if (!(mask = mcb_wstep_new_tensor(w, mname, MCB_DT_U8, 2, l.rows[i], l.cols[i]))) {
			rc = w->sc->e->code;
			break;
		}
		if (!strcmp(w->method, "magnitude")) {
			rc = mcb_prune_magnitude(l.w[i], l.rows[i], l.cols[i], &pat, mask, l.w[i],
						 w->sc->e);
		} else if (!strcmp(w->method, "wanda")) {
			if (!(norm = wanda_norm(w, input_of(i), l.cols[i])))
				rc = w->sc->e->code;
			else
				rc = mcb_prune_wanda(l.w[i], l.rows[i], l.cols[i], norm, &pat, mask,
						     l.w[i], w->sc->e);
			free(norm);
		} else if (!strcmp(w->method, "sparsegpt")) {
			rc = sparsegpt(w, i, l.name[i], l.w[i], l.rows[i], l.cols[i], &pat, mask,
				       tq, &stored);
		} else {
			rc = mcb_errf(w->sc->e, MCB_EINVAL, "prune: unknown method '%s'",
				      w->method);
		}
		if (rc) {
			mcb_errprefix(w->sc->e, "%s", l.name[i]);
			break;
		}
		if (stored) { /* codes and their record: add the sparsity */
			json_t *rec =
				json_object_get(json_object_get(w->part.meta, "quant"), l.name[i]);

			json_object_set_new(rec, "method", json_string("sparsegpt+gptq"));
			json_object_set_new(rec, "sparsity", json_string(ptext));
			json_object_set_new(rec, "mask", json_string(mname));
			continue;
		}
		if (fallback && joint) {
			json_t *rec;

			if ((rc = mcb_wstep_put_f16(w, l.name[i], l.w[i], l.rows[i], l.cols[i],
						    fallback)))
				break;
			rec = json_object_get(json_object_get(w->part.meta, "quant"), l.name[i]);
			json_object_set_new(rec, "method", json_string(w->method));
			json_object_set_new(rec, "sparsity", json_string(ptext));
			json_object_set_new(rec, "mask", json_string(mname));
			continue;
		}
		if ((rc = mcb_wstep_put_f32(w, l.name[i], l.w[i], l.rows[i], l.cols[i])))
			break;
		mcb_wstep_record(w, l.name[i],
				 json_pack("{s:s, s:s, s:s, s:s}", "format", "float", "method",
					   w->method, "sparsity", ptext, "mask", mname));
	}
out:
	mcb_wlayer_free(&l);
	return rc;
}

/* dst (nrows, cols) = the rows idx of src (., cols). */
static void take_rows(float *dst, const float *src, int64_t cols, const int64_t *idx, int64_t n)
{
	int64_t r;

	for (r = 0; r < n; r++)
		memcpy(dst + r * cols, src + idx[r] * cols, (size_t)cols * sizeof(float));
}

/* dst (rows, n) = the columns idx of src (rows, cols). */
static void take_cols(float *dst, const float *src, int64_t rows, int64_t cols, const int64_t *idx,
		      int64_t n)
{
	int64_t r, c;

	for (r = 0; r < rows; r++)
		for (c = 0; c < n; c++)
			dst[r * n + c] = src[r * cols + idx[c]];
}

/* Store a shrunk float weight (no record: an ordinary F32 weight). */
static int put_shrunk(struct mcb_wstep *w, const char *name, const float *x, int64_t rows,
		      int64_t cols)
{
	float *d = mcb_wstep_new_tensor(w, name, MCB_DT_F32, 2, rows, cols);

	if (!d)
		return w->sc->e->code;
	memcpy(d, x, (size_t)(rows * cols) * sizeof(float));
	return 0;
}

static int structured(struct mcb_wstep *w)
{
	const struct mcb_llama_config *c = &w->src->cfg;
	int heads = !strcmp(w->method, "heads");
	int64_t keep = mcb_param_int(w->sc->params, "keep", 0), units, nq = 0, nkv = 0;
	int64_t *idx = NULL, *qrows = NULL, *kvrows = NULL;
	float *nx = NULL, *nh = NULL, *buf = NULL;
	double *score = NULL;
	struct mcb_wlayer l;
	int rc;

	if ((rc = mcb_wlayer_load(w, &l)))
		goto out;
	units = heads ? c->n_kv_heads : c->hidden_dim;
	if (keep < 1 || keep > units) {
		rc = mcb_errf(w->sc->e, MCB_EINVAL, "prune: keep %lld of %lld", (long long)keep,
			      (long long)units);
		goto out;
	}
	score = malloc((size_t)units * sizeof(*score));
	idx = malloc((size_t)units * sizeof(*idx));
	if (!score || !idx) {
		rc = mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
		goto out;
	}
	if (heads) {
		struct mcb_prune_attn a = {
			c->dim,	       c->n_heads,    c->n_kv_heads, c->head_dim, l.w[MCB_WL_Q],
			l.w[MCB_WL_K], l.w[MCB_WL_V], l.w[MCB_WL_O], NULL,	  NULL};

		if (!(nx = wanda_norm(w, MCB_CAPTURE_ATTN_IN, l.cols[MCB_WL_Q])) ||
		    !(nh = wanda_norm(w, MCB_CAPTURE_ATTN_OUT, l.cols[MCB_WL_O]))) {
			rc = w->sc->e->code;
			goto out;
		}
		a.norm_x = nx;
		a.norm_o = nh;
		rc = mcb_prune_head_scores(&a, score, w->sc->e);
	} else {
		struct mcb_prune_ffn f = {
			c->dim, c->hidden_dim, l.w[MCB_WL_GATE], l.w[MCB_WL_UP], l.w[MCB_WL_DOWN],
			NULL,	NULL};

		if (!(nx = wanda_norm(w, MCB_CAPTURE_FFN_IN, l.cols[MCB_WL_GATE])) ||
		    !(nh = wanda_norm(w, MCB_CAPTURE_FFN_DOWN, l.cols[MCB_WL_DOWN]))) {
			rc = w->sc->e->code;
			goto out;
		}
		f.norm_x = nx;
		f.norm_h = nh;
		rc = mcb_prune_ffn_scores(&f, score, w->sc->e);
	}
	if (!rc)
		rc = mcb_prune_keep(score, units, keep, idx, w->sc->e);
	if (rc)
		goto out;
	if (heads) {
		int64_t group = c->n_heads / c->n_kv_heads;

		nq = keep * group * c->head_dim;
		nkv = keep * c->head_dim;
		qrows = malloc((size_t)nq * sizeof(*qrows));
		kvrows = malloc((size_t)nkv * sizeof(*kvrows));
		buf = malloc((size_t)(nq > c->dim ? nq : c->dim) * (size_t)c->dim * sizeof(float));
		if (!qrows || !kvrows || !buf) {
			rc = mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
			goto out;
		}
		rc = mcb_prune_head_index(c->n_heads, c->n_kv_heads, c->head_dim, idx, keep, qrows,
					  kvrows, w->sc->e);
		if (!rc) {
			take_rows(buf, l.w[MCB_WL_Q], c->dim, qrows, nq);
			rc = put_shrunk(w, l.name[MCB_WL_Q], buf, nq, c->dim);
		}
		if (!rc) {
			take_rows(buf, l.w[MCB_WL_K], c->dim, kvrows, nkv);
			rc = put_shrunk(w, l.name[MCB_WL_K], buf, nkv, c->dim);
		}
		if (!rc) {
			take_rows(buf, l.w[MCB_WL_V], c->dim, kvrows, nkv);
			rc = put_shrunk(w, l.name[MCB_WL_V], buf, nkv, c->dim);
		}
		if (!rc) {
			take_cols(buf, l.w[MCB_WL_O], c->dim, l.cols[MCB_WL_O], qrows, nq);
			rc = put_shrunk(w, l.name[MCB_WL_O], buf, c->dim, nq);
		}
		w->part.cfg.n_kv_heads = keep;
		w->part.cfg.n_heads = keep * group;
	} else {
		buf = malloc((size_t)keep * (size_t)c->dim * sizeof(float));
		if (!buf) {
			rc = mcb_errf(w->sc->e, MCB_ENOMEM, "out of memory");
			goto out;
		}
		take_rows(buf, l.w[MCB_WL_GATE], c->dim, idx, keep);
		rc = put_shrunk(w, l.name[MCB_WL_GATE], buf, keep, c->dim);
		if (!rc) {
			take_rows(buf, l.w[MCB_WL_UP], c->dim, idx, keep);
			rc = put_shrunk(w, l.name[MCB_WL_UP], buf, keep, c->dim);
		}
		if (!rc) {
			take_cols(buf, l.w[MCB_WL_DOWN], c->dim, c->hidden_dim, idx, keep);
			rc = put_shrunk(w, l.name[MCB_WL_DOWN], buf, c->dim, keep);
		}
		w->part.cfg.hidden_dim = keep;
	}
	if (!rc)
		mcb_step_log(w->sc, "blk.%lld: kept %lld of %lld %s", (long long)w->layer,
			     (long long)keep, (long long)units,
			     heads ? "key/value heads" : "FFN channels");
out:
	free(score);
	free(idx);
	free(qrows);
	free(kvrows);
	free(nx);
	free(nh);
	free(buf);
	mcb_wlayer_free(&l);
	return rc;
}

static int run_prune(struct mcb_stepctx *sc)
{
	const json_t *tensors = json_object_get(sc->params, "tensors");
	struct mcb_wstep w;
	int rc;

	rc = mcb_wstep_begin(&w, sc);
	if (!rc && w.layer < 0)
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "prune: no layer");
	if (!rc && strcmp(w.method, "magnitude") && !w.calib)
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "prune %s needs calibration statistics",
			      w.method);
	if (!rc && (!strcmp(w.method, "heads") || !strcmp(w.method, "channels")))
		rc = structured(&w);
	else if (!rc && !json_is_object(tensors))
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "prune step lacks its tensors");
	else if (!rc)
		rc = unstructured(&w, tensors);
	if (!rc)
		rc = mcb_wstep_finish(&w);
	mcb_wstep_release(&w);
	return rc;
}

const struct mcb_stepkind mcb_step_prune = {
	.name = "prune",
	.version = 3,
	.run = run_prune,
};
