/*
 * step lowrank: one layer's weights factored by truncated SVD
 * (compiler/plan.c lowrank_group plans one step per layer; runtime/lowrank.c
 * factors).
 *
 * params: {"method": "svd", "layer": L,
 *          "tensors": {NAME: {"rank": R} | {"energy": E}}}
 * inputs: "model" (the whole model, or the layer's part from the previous
 *         technique)
 * output: part.safetensors (runtime/part.c)
 *
 * Each weight W (rows, cols) becomes the "lowrank" record of
 * include/mcb/qtensor.h: NAME holds A = U_r diag(s_r), F32 [rows, r], and
 * NAME.lowrank_b holds B = V_r^T, F32 [r, cols]; the record
 * {"format": "lowrank", "method": "svd", "rank": r, "cols": cols, "b":
 * "NAME.lowrank_b", "energy": the fraction of sum(s^2) kept}.  The rank is
 * R clamped to min(rows, cols) (the log says so), or the smallest whose
 * singular values hold the fraction E of sum(s^2).  A rank that stores no
 * fewer numbers than the weight, r (rows + cols) >= rows cols, leaves the
 * weight as it was (dense; the log says so).  A factored weight that was
 * pruned loses its mask: the product is dense.
 *
 * A weight read dense by a later technique (mcb_wstep_weights) is the
 * product A B; a quantized weight cannot be factored (quantize is the last
 * technique of a stack: compiler/recipe.c), and is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/err.h"
#include "mcb/lowrank.h"
#include "mcb/model.h"
#include "mcb/step.h"
#include "mcb/wstep.h"

/* Factor weight name of w's layer with its parameters tp. */
static int factor(struct mcb_wstep *w, const char *name, const json_t *tp)
{
	struct mcb_stepctx *sc = w->sc;
	const json_t *rk = json_object_get(tp, "rank"), *en = json_object_get(tp, "energy");
	const json_t *was = mcb_wstep_src_record(w, name);
	struct mcb_lowrank lr;
	int64_t rows, cols, rank = 0, full;
	double energy = 0;
	const char *bn;
	float *x = NULL, *a, *b;
	int rc;

	if (rk && (!json_is_integer(rk) || json_integer_value(rk) < 1))
		return mcb_errf(sc->e, MCB_EINVAL, "lowrank: %s: rank must be an integer >= 1",
				name);
	if (!rk && !(json_is_number(en) && json_number_value(en) > 0 &&
		     json_number_value(en) <= 1))
		return mcb_errf(sc->e, MCB_EINVAL,
				"lowrank: %s: give a rank or an energy in (0, 1]", name);
	if (rk)
		rank = (int64_t)json_integer_value(rk);
	else
		energy = json_number_value(en);
	if (mcb_wstep_is_quantized(was))
		return mcb_errf(sc->e, MCB_EUNSUP,
				"lowrank: tensor '%s' is quantized already (%s): lowrank must come "
				"before quantize in the stack",
				name, mcb_param_str(was, "format", "int"));
	if ((rc = mcb_wstep_weights(w, name, &rows, &cols, &x)))
		return rc;
	full = rows < cols ? rows : cols;
	if (rank > full) {
		mcb_step_log(sc, "%s: rank %lld clamped to %lld (%lldx%lld)", name, (long long)rank,
			     (long long)full, (long long)rows, (long long)cols);
		rank = full;
	}
	/* a rank given up front: no SVD when it cannot save anything */
	if (rank && !mcb_lowrank_saves(rows, cols, rank)) {
		mcb_step_log(sc, "%s: rank %lld of %lldx%lld saves nothing; kept dense", name,
			     (long long)rank, (long long)rows, (long long)cols);
		free(x);
		return 0;
	}
	rc = mcb_lowrank_factor(x, rows, cols, rank, energy, &lr, sc->e);
	free(x);
	if (rc) {
		mcb_lowrank_free(&lr);
		return mcb_errprefix(sc->e, "%s", name);
	}
	if (!mcb_lowrank_saves(rows, cols, lr.rank)) {
		mcb_step_log(sc, "%s: rank %lld of %lldx%lld saves nothing; kept dense (energy %g "
			     "needs it)",
			     name, (long long)lr.rank, (long long)rows, (long long)cols, energy);
		mcb_lowrank_free(&lr);
		return 0;
	}
	bn = mcb_wstep_side(w, name, "lowrank_b");
	if (!(a = mcb_wstep_new_tensor(w, name, MCB_DT_F32, 2, rows, lr.rank)) ||
	    !(b = mcb_wstep_new_tensor(w, bn, MCB_DT_F32, 2, lr.rank, cols))) {
		mcb_lowrank_free(&lr);
		return sc->e->code;
	}
	memcpy(a, lr.a, (size_t)(rows * lr.rank) * sizeof(float));
	memcpy(b, lr.b, (size_t)(lr.rank * cols) * sizeof(float));
	/* set directly, not through mcb_wstep_record: a pruned weight's mask
	 * and sparsity do not carry over to the dense product */
	json_object_set_new(json_object_get(w->part.meta, "quant"), name,
			    json_pack("{s:s, s:s, s:I, s:I, s:s, s:f}", "format", "lowrank", "method",
				      w->method, "rank", (json_int_t)lr.rank, "cols",
				      (json_int_t)cols, "b", bn, "energy", lr.energy));
	mcb_step_log(sc,
		     "%s %lldx%lld -> rank %lld (energy %.3f, rel. error %.3f, %lld of %lld "
		     "parameters)",
		     name, (long long)rows, (long long)cols, (long long)lr.rank, lr.energy,
		     lr.rel_error, (long long)(lr.rank * (rows + cols)), (long long)(rows * cols));
	mcb_lowrank_free(&lr);
	return 0;
}

static int run_lowrank(struct mcb_stepctx *sc)
{
	const json_t *tensors = json_object_get(sc->params, "tensors"), *tp;
	struct mcb_wstep w;
	const char *name;
	char full[96];
	int i, rc, known;

	if (!json_is_object(tensors))
		return mcb_errf(sc->e, MCB_EINTERNAL, "lowrank step lacks its tensors");
	rc = mcb_wstep_begin(&w, sc);
	if (!rc && w.layer < 0)
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "lowrank: no layer");
	if (!rc && strcmp(w.method, "svd"))
		rc = mcb_errf(sc->e, MCB_EINVAL, "lowrank: unknown method '%s'", w.method);
	/* every named tensor must be a weight of the layer */
	json_object_foreach ((json_t *)tensors, name, tp) {
		if (rc)
			break;
		for (i = 0, known = 0; i < MCB_WL_N && !known; i++) {
			snprintf(full, sizeof(full), "blk.%lld.%s.weight", (long long)w.layer,
				 mcb_wlayer_names[i]);
			known = !strcmp(full, name) && strcmp(mcb_wlayer_names[i], "attn_norm") &&
				strcmp(mcb_wlayer_names[i], "ffn_norm");
		}
		if (!known)
			rc = mcb_errf(sc->e, MCB_EINVAL,
				      "lowrank: '%s' is not a weight matrix of blk.%lld", name,
				      (long long)w.layer);
	}
	/* in the layer's order, so that the log reads as the model does */
	for (i = 0; i < MCB_WL_N && !rc; i++) {
		snprintf(full, sizeof(full), "blk.%lld.%s.weight", (long long)w.layer,
			 mcb_wlayer_names[i]);
		if ((tp = json_object_get(tensors, full)))
			rc = factor(&w, full, tp);
	}
	if (!rc)
		rc = mcb_wstep_finish(&w);
	mcb_wstep_release(&w);
	return rc;
}

const struct mcb_stepkind mcb_step_lowrank = {
	.name = "lowrank",
	.version = 1,
	.run = run_lowrank,
};
