/*
 * step quantize: round-to-nearest (RTN) int8 weight quantization of the
 * internal form.
 *
 * params: {"method": "rtn", "bits": 8, "granularity": "channel" | "group",
 *          "group_size": 32, "symmetric": true}
 * inputs: "model" (internal form)
 * output: model.safetensors (internal form)
 *
 * Which tensors: every 2-D weight of a linear layer (attention q/k/v/output,
 * FFN gate/up/down, the classifier output.weight).  token_embd.weight is
 * quantized only with granularity group, as llama.cpp does for Q8_0 files;
 * per-channel int8 runtimes keep embeddings in floating point.  Norms stay F32.
 *
 * A quantized tensor X becomes X (I8 codes, same shape) plus X.scale:
 *   channel: F32 [rows]            W[r][c] = scale[r] * q[r][c]
 *   group:   F16 [rows, cols/g]    W[r][c] = scale[r][c/g] * q[r][c]   (g = 32: Q8_0)
 * and meta.quant[X] records {"method", "bits", "granularity", "group_size",
 * "symmetric", "scale"}.  With granularity group, a tensor whose rows do not
 * divide into groups is stored as F16 instead (llama-quantize does the same)
 * with meta.quant[X] = {"fallback": "F16", "reason": ...}, and the step says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/quant.h"
#include "mcb/step.h"

static int is_linear_weight(const char *name)
{
	static const char *const suffixes[] = {
		".attn_q.weight",   ".attn_k.weight", ".attn_v.weight",	  ".attn_output.weight",
		".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight",
	};
	size_t i, n = strlen(name), k;

	if (!strcmp(name, "output.weight"))
		return 1;
	if (strncmp(name, "blk.", 4))
		return 0;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		k = strlen(suffixes[i]);
		if (n > k && !strcmp(name + n - k, suffixes[i]))
			return 1;
	}
	return 0;
}

/* "blk.3.ffn_down.weight" -> "ffn_down.weight", for grouping messages. */
static const char *generic_name(const char *name)
{
	const char *p;

	if (strncmp(name, "blk.", 4))
		return name;
	p = strchr(name + 4, '.');
	return p ? p + 1 : name;
}

struct fallback_note {
	const char *generic; /* ffn_down.weight */
	int64_t cols;
	int count;
};

/* Quantize one tensor t (F32/F16/BF16, 2-D) in m.  *fallback is set when it
 * was kept as F16. */
static int quantize_tensor(struct mcb_stepctx *sc, struct mcb_model *m, const char *name,
			   int per_channel, int64_t group, int *fallback)
{
	struct mcb_tensor *t = mcb_model_find(m, name), *q, *s;
	int64_t rows = t->shape[0], cols = t->shape[1], bad, r;
	int64_t shape[2];
	char *scale_name;
	float *w;
	size_t n;
	json_t *rec;
	int rc;

	*fallback = 0;
	if (mcb_mul_ok((size_t)rows, (size_t)cols, &n) || mcb_mul_ok(n, sizeof(float), &n))
		return mcb_errf(sc->e, MCB_ERANGE, "tensor '%s' is too large", name);
	w = malloc(n ? n : 1);
	if (!w)
		return mcb_errf(sc->e, MCB_ENOMEM, "cannot allocate %zu bytes for tensor '%s'", n,
				name);
	rc = mcb_tensor_to_f32(t, w, sc->e);
	if (rc)
		goto out;
	if (mcb_check_finite(w, rows * cols, &bad)) {
		rc = mcb_errf(sc->e, MCB_EFORMAT,
			      "tensor '%s' has a non-finite value at row %lld, column %lld", name,
			      (long long)(bad / cols), (long long)(bad % cols));
		goto out;
	}
	if (!per_channel) {
		/* Q8_0 stores d = amax/127 and F16 fallbacks the values themselves as
		 * fp16: beyond its range they would become infinities. */
		float limit = cols % group ? 65504.0f : 127.0f * 65504.0f;
		int64_t i;

		for (i = 0; i < rows * cols; i++)
			if (w[i] > limit || w[i] < -limit) {
				rc = mcb_errf(
					sc->e, MCB_ERANGE,
					"tensor '%s' has a weight of magnitude %g at row %lld, "
					"column %lld, beyond what %s can hold (%g)",
					name, (double)w[i], (long long)(i / cols),
					(long long)(i % cols),
					cols % group ? "F16" : "Q8_0's fp16 scale", (double)limit);
				goto out;
			}
	}
	scale_name = mcb_arena_printf(sc->scratch, "%s.scale", name);
	rec = json_object();
	if (!per_channel && cols % group != 0) {
		/* Row length does not divide into groups: keep the tensor as F16. */
		shape[0] = rows;
		shape[1] = cols;
		rc = mcb_model_remove(m, name);
		if (!rc)
			rc = mcb_model_new_tensor(m, name, MCB_DT_F16, 2, shape, &q, sc->e);
		if (!rc) {
			uint16_t *h = q->data;

			for (size_t i = 0; i < (size_t)(rows * cols); i++)
				h[i] = mcb_f32_to_f16(w[i]);
			json_object_set_new(rec, "fallback", json_string("F16"));
			json_object_set_new(
				rec, "reason",
				json_sprintf("row length %lld is not a multiple of %lld",
					     (long long)cols, (long long)group));
			*fallback = 1;
		}
	} else {
		rc = mcb_model_remove(m, name);
		shape[0] = rows;
		shape[1] = cols;
		if (!rc)
			rc = mcb_model_new_tensor(m, name, MCB_DT_I8, 2, shape, &q, sc->e);
		if (!rc && per_channel)
			rc = mcb_model_new_tensor(m, scale_name, MCB_DT_F32, 1, shape, &s, sc->e);
		if (!rc && !per_channel) {
			shape[1] = cols / group;
			rc = mcb_model_new_tensor(m, scale_name, MCB_DT_F16, 2, shape, &s, sc->e);
		}
		if (!rc) {
			/* new_tensor may have moved the array: look both up again */
			int8_t *codes = mcb_model_find(m, name)->data;
			void *scales = mcb_model_find(m, scale_name)->data;

			if (per_channel) {
				mcb_rtn_int8_channel(w, rows, cols, codes, scales);
			} else {
				for (r = 0; r < rows; r++)
					mcb_quantize_row_q8_0_split(
						w + r * cols, codes + r * cols,
						(uint16_t *)scales + r * (cols / group), cols);
			}
			json_object_set_new(rec, "method", json_string("rtn"));
			json_object_set_new(rec, "bits", json_integer(8));
			json_object_set_new(rec, "granularity",
					    json_string(per_channel ? "channel" : "group"));
			json_object_set_new(rec, "group_size",
					    json_integer(per_channel ? 0 : group));
			json_object_set_new(rec, "symmetric", json_true());
			json_object_set_new(rec, "scale", json_string(scale_name));
		}
	}
	if (!rc) {
		json_t *quant = json_object_get(m->meta, "quant");

		if (!quant) {
			quant = json_object();
			json_object_set_new(m->meta, "quant", quant);
		}
		json_object_set(quant, name, rec);
	}
	json_decref(rec);
out:
	free(w);
	return rc;
}

static int run_quantize(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const char *method = mcb_param_str(sc->params, "method", "");
	const char *gran = mcb_param_str(sc->params, "granularity", "");
	int64_t bits = mcb_param_int(sc->params, "bits", 0);
	int64_t group = mcb_param_int(sc->params, "group_size", 0);
	int per_channel, fallback, nquant = 0;
	struct fallback_note notes[16];
	size_t nnotes = 0, i, nnames;
	struct mcb_model m;
	const char **names;
	int rc = 0;

	if (strcmp(method, "rtn") || bits != 8 || !mcb_param_bool(sc->params, "symmetric", 0))
		return mcb_errf(sc->e, MCB_EUNSUP,
				"quantize supports method rtn, 8 bits, symmetric");
	if (!strcmp(gran, "channel"))
		per_channel = 1;
	else if (!strcmp(gran, "group") && group == MCB_QK8_0)
		per_channel = 0;
	else
		return mcb_errf(sc->e, MCB_EUNSUP,
				"quantize: granularity '%s' with group_size %lld", gran,
				(long long)group);
	if (!in)
		return mcb_errf(sc->e, MCB_EINTERNAL, "quantize step has no model input");
	mcb_model_init(&m);
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (rc)
		goto out;
	if (json_object_size(json_object_get(m.meta, "quant"))) {
		rc = mcb_errf(sc->e, MCB_EUNSUP, "the model is already quantized");
		goto out;
	}
	/* Names first: quantize_tensor adds and removes tensors. */
	names = mcb_arena_array(sc->scratch, m.ntensors, sizeof(*names));
	nnames = 0;
	for (i = 0; i < m.ntensors; i++) {
		const struct mcb_tensor *t = &m.tensors[i];
		int embd = !strcmp(t->name, "token_embd.weight");

		if (t->ndim != 2 || !(is_linear_weight(t->name) || (embd && !per_channel)))
			continue;
		if (t->dtype != MCB_DT_F32 && t->dtype != MCB_DT_F16 && t->dtype != MCB_DT_BF16)
			continue;
		names[nnames++] = mcb_arena_strdup(sc->scratch, t->name);
	}
	for (i = 0; i < nnames && !rc; i++) {
		rc = quantize_tensor(sc, &m, names[i], per_channel, group, &fallback);
		if (rc || !fallback) {
			nquant += !rc;
			continue;
		}
		{
			const char *g = generic_name(names[i]);
			int64_t cols = mcb_model_find(&m, names[i])->shape[1];
			size_t k;

			for (k = 0; k < nnotes; k++)
				if (!strcmp(notes[k].generic, g) && notes[k].cols == cols)
					break;
			if (k == nnotes && nnotes < sizeof(notes) / sizeof(notes[0]))
				notes[nnotes++] = (struct fallback_note){g, cols, 0};
			if (k < nnotes)
				notes[k].count++;
		}
	}
	if (rc)
		goto out;
	for (i = 0; i < nnotes; i++)
		mcb_step_log(sc,
			     "%s (%d tensor%s): row length %lld is not a multiple of %lld, "
			     "kept as F16",
			     notes[i].generic, notes[i].count, notes[i].count == 1 ? "" : "s",
			     (long long)notes[i].cols, (long long)group);
	mcb_step_log(sc, "quantized %d tensors to int8 (%s)", nquant,
		     per_channel ? "per channel" : "Q8_0 blocks of 32");
	rc = mcb_model_save_ir(&m, mcb_step_outpath(sc, "model.safetensors"), sc->e);
out:
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_quantize = {
	.name = "quantize",
	.version = 1,
	.run = run_quantize,
};
