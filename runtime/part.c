/*
 * part: groups of tensors between per-layer steps.  See include/mcb/part.h.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/part.h"

const char *const mcb_quant_side_keys[] = {"scale", "zero", "g_idx", "input_scale", "mask", "b",
					     NULL};

void mcb_part_init(struct mcb_model *part, const struct mcb_model *src, const char *group,
		   int64_t layer)
{
	memcpy(part->arch, src->arch, sizeof(part->arch));
	part->cfg = src->cfg;
	json_object_clear(part->meta);
	json_object_set_new(part->meta, "part",
			    json_pack("{s:s, s:I}", "group", group, "layer", (json_int_t)layer));
	json_object_set_new(part->meta, "quant", json_object());
}

static int copy_tensor(struct mcb_model *dst, const struct mcb_tensor *t, struct mcb_errctx *e)
{
	struct mcb_tensor *n;

	mcb_model_remove(dst, t->name);
	if (mcb_model_new_tensor(dst, t->name, t->dtype, t->ndim, t->shape, &n, e))
		return e->code;
	if (t->nbytes)
		memcpy(n->data, t->data, t->nbytes);
	return 0;
}

static json_t *record_of(const struct mcb_model *m, const char *name)
{
	return json_object_get(json_object_get(m->meta, "quant"), name);
}

static json_t *quant_of(struct mcb_model *m)
{
	json_t *q = json_object_get(m->meta, "quant");

	if (!q) {
		q = json_object();
		json_object_set_new(m->meta, "quant", q);
	}
	return q;
}

int mcb_part_copy(struct mcb_model *part, const struct mcb_model *src, const char *name,
		  struct mcb_errctx *e)
{
	const struct mcb_tensor *t = mcb_model_find(src, name);
	json_t *rec = record_of(src, name);
	size_t i;

	if (!t)
		return mcb_errf(e, MCB_ENOENT, "no tensor '%s'", name);
	if (copy_tensor(part, t, e))
		return e->code;
	if (!rec)
		return 0;
	for (i = 0; mcb_quant_side_keys[i]; i++) {
		const char *side = json_string_value(json_object_get(rec, mcb_quant_side_keys[i]));
		const struct mcb_tensor *s = side ? mcb_model_find(src, side) : NULL;

		if (side && !s)
			return mcb_errf(e, MCB_EFORMAT,
					"quantization record of '%s' names a missing tensor '%s'",
					name, side);
		if (s && copy_tensor(part, s, e))
			return e->code;
	}
	json_object_set(quant_of(part), name, rec);
	return 0;
}

/* Drop m's record for name with the side tensors it names. */
static void drop_record(struct mcb_model *m, const char *name)
{
	json_t *rec = record_of(m, name);
	size_t i;

	if (!rec)
		return;
	for (i = 0; mcb_quant_side_keys[i]; i++) {
		const char *side = json_string_value(json_object_get(rec, mcb_quant_side_keys[i]));

		if (side)
			mcb_model_remove(m, side);
	}
	json_object_del(json_object_get(m->meta, "quant"), name);
}

int mcb_part_apply(struct mcb_model *m, const struct mcb_model *part, struct mcb_errctx *e)
{
	json_t *recs = json_object_get(part->meta, "quant"), *rec;
	const char *name;
	size_t i;

	if (strcmp(m->arch, part->arch))
		return mcb_errf(e, MCB_EFORMAT, "a part of architecture '%s' for a '%s' model",
				part->arch, m->arch);
	/* records first: a replaced weight's old side tensors must go before the
	 * part's tensors (which may reuse their names) arrive */
	for (i = 0; i < part->ntensors; i++)
		drop_record(m, part->tensors[i].name);
	for (i = 0; i < part->ntensors; i++)
		if (copy_tensor(m, &part->tensors[i], e))
			return e->code;
	json_object_foreach (recs, name, rec)
		json_object_set(quant_of(m), name, rec);
	/* structured pruning changes the config in layer parts; the globals part
	 * was planned from the unpruned model and keeps its config */
	if (json_integer_value(json_object_get(json_object_get(part->meta, "part"), "layer")) >= 0)
		m->cfg = part->cfg;
	return 0;
}
