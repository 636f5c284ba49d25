/*
 * step assemble: the base model with the parts of the last technique of the
 * stack put in (runtime/part.c).
 *
 * params: {}
 * inputs: "model" (the imported model), "part.GROUP" for each group a
 *         technique changed ("part.blk.0", ..., "part.globals")
 * output: model.safetensors (internal form)
 *
 * The result is checked as a whole model: every tensor the (possibly pruned)
 * config implies must be there with its shape, or the step fails.
 */
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/part.h"
#include "mcb/step.h"

/* "blk.3.ffn_down.weight" -> "ffn_down.weight". */
static const char *generic_name(const char *name)
{
	const char *p = strncmp(name, "blk.", 4) ? NULL : strchr(name + 4, '.');

	return p ? p + 1 : name;
}

/* One line per (tensor kind, reason) of the records' fallbacks and notes,
 * then the totals: what one step per layer would otherwise repeat. */
static void summarize(struct mcb_stepctx *sc, const struct mcb_model *m)
{
	json_t *seen = json_object(), *rec, *v;
	const char *k;
	size_t nq = 0, nf = 0, nl = 0;

	json_object_foreach (json_object_get(m->meta, "quant"), k, rec) {
		const char *why = json_string_value(json_object_get(rec, "reason"));
		char *line;

		if (json_object_get(rec, "fallback"))
			nf++;
		else if (!strcmp(mcb_param_str(rec, "format", ""), "lowrank"))
			nl++;
		else
			nq++;
		if (!why)
			why = json_string_value(json_object_get(rec, "note"));
		if (!why)
			continue;
		line = mcb_arena_printf(sc->scratch, "%s: %s", generic_name(k), why);
		v = json_object_get(seen, line);
		json_object_set_new(seen, line, json_integer(v ? json_integer_value(v) + 1 : 1));
	}
	json_object_foreach (seen, k, v) {
		const char *colon = strchr(k, ':');

		mcb_step_log(sc, "%.*s (%lld tensor%s)%s", (int)(colon - k), k,
			     (long long)json_integer_value(v),
			     json_integer_value(v) == 1 ? "" : "s", colon);
	}
	if (nl) /* factored (runtime/step_lowrank.c), not quantized */
		mcb_step_log(sc, "%zu weights factored to low rank", nl);
	if (nq || nf || !nl)
		mcb_step_log(sc, "%zu weights quantized%s", nq,
			     nf ? mcb_arena_printf(sc->scratch, ", %zu kept in floating point", nf)
				: "");
	json_decref(seen);
}

static int run_assemble(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *base = mcb_step_input(sc, "model");
	struct mcb_model m, part;
	size_t i, nparts = 0;
	int rc;

	if (!base)
		return mcb_errf(sc->e, MCB_EINTERNAL, "assemble step has no model input");
	mcb_model_init(&m);
	rc = mcb_model_load_ir(base->path, &m, sc->e);
	for (i = 0; i < sc->nin && !rc; i++) {
		const char *slot = sc->in[i].name, *group;

		if (strncmp(slot, "part.", 5))
			continue;
		mcb_model_init(&part);
		rc = mcb_model_load_ir_or_part(sc->in[i].path, &part, sc->e);
		if (!rc && !mcb_model_is_part(&part))
			rc = mcb_errf(sc->e, MCB_EFORMAT, "input %s is a whole model, not a part",
				      slot);
		group = json_string_value(
			json_object_get(json_object_get(part.meta, "part"), "group"));
		if (!rc && (!group || strcmp(group, slot + 5)))
			rc = mcb_errf(sc->e, MCB_EFORMAT, "input %s holds group '%s'", slot,
				      group ? group : "(none)");
		if (!rc)
			rc = mcb_part_apply(&m, &part, sc->e);
		if (rc)
			mcb_errprefix(sc->e, "%s", slot);
		mcb_model_release(&part);
		nparts++;
	}
	if (!rc)
		rc = mcb_model_check_llama(&m, "the assembled model", sc->e);
	if (!rc)
		rc = mcb_model_save_ir(&m, mcb_step_outpath(sc, "model.safetensors"), sc->e);
	if (!rc)
		summarize(sc, &m);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_assemble = {
	.name = "assemble",
	.version = 1,
	.run = run_assemble,
};
