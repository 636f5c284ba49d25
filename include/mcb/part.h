/*
 * part: one group of a model's tensors, the unit that per-layer technique
 * steps read and write (compiler/plan.c plans them; an assemble step puts the
 * parts back into the model).
 *
 * A part is an IR file (runtime/model.c) whose meta holds only
 *   "part":  {"group": "blk.3" | "globals", "layer": 3 | -1}
 *   "quant": the quantization records (qtensor.h) of its tensors
 * and whose arch is the model's config after the step that wrote it
 * (structured pruning changes n_heads, n_kv_heads or hidden_dim).  Its
 * tensors are the group's weights with their side tensors (scales, zero
 * points, g_idx) and whatever else the step changed (norm weights AWQ folds
 * scales into, SmoothQuant's activation scales).
 */
#ifndef MCB_PART_H
#define MCB_PART_H

#include <stdint.h>

struct mcb_errctx;
struct mcb_model;

/* Start an empty part of src's group (m initialised by the caller). */
void mcb_part_init(struct mcb_model *part, const struct mcb_model *src, const char *group,
		   int64_t layer);

/* Copy tensor name of src into part, with its quantization record and the
 * side tensors the record names.  MCB_ENOENT when src has no such tensor. */
int mcb_part_copy(struct mcb_model *part, const struct mcb_model *src, const char *name,
		  struct mcb_errctx *e);

/*
 * Put part's tensors into m: each replaces m's tensor of that name (and m's
 * record for it, with the side tensors that record named) or is added; the
 * part's records are merged into m's, and m takes the part's config.  The
 * caller checks the whole model afterwards (mcb_model_check_llama).
 */
int mcb_part_apply(struct mcb_model *m, const struct mcb_model *part, struct mcb_errctx *e);

/* The side tensors a record names ("scale", "zero", "g_idx", "input_scale",
 * "mask", and a lowrank record's "b": the factor "X.lowrank_b"),
 * NULL-terminated. */
extern const char *const mcb_quant_side_keys[];

#endif
