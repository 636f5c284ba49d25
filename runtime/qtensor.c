/*
 * qtensor: reading the internal form's quantized-weight records and exact
 * dequantization (contracts and the record format in include/mcb/qtensor.h).
 *
 * mcb_qtensor_get treats the model as hostile: every key of the record is
 * type-checked, every tensor it names must exist with the dtype and shape
 * the format implies, and every value the dequantization reads is checked
 * once here (integer codes within the range of their bit width, zero points
 * likewise, g_idx entries < ngroups, scales finite, fp8 codes not NaN, the
 * fp16 scales of ggml blocks finite, lowrank factors finite), so that mcb_qtensor_row never reads
 * out of bounds and never produces a NaN or infinity from a non-finite
 * stored number.  (A huge finite scale times a code may still overflow to
 * infinity; that is the value the record describes.)
 *
 * Values (value[r][c], all in single precision):
 *   float  F32 as stored; F16, BF16 widened (exact)
 *   int    scale[r][g] * (float)(q - zero[r][g]), g = g_idx[c] or
 *          c / group_size (0 when group_size is 0): one rounding, so the
 *          per-channel int8 form is fl(s * q) and Q8_0's split form
 *          fp16(d) * q (exact), as the engine's kernels define them
 *   ggml   ggml's dequantization (mcb_dequantize_row_ggml)
 *   fp8    scale[r] * e4m3(q)
 *   lowrank  sum_k A[r][k] * B[k][c] in double, k ascending, in blocks of
 *          LR_BLOCK columns (each product of two floats is exact in
 *          double), rounded once to float; no BLAS, so any thread count
 *          gives the same bits
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

#define BAD(...) mcb_errf(e, MCB_EFORMAT, __VA_ARGS__)
#define LR_BLOCK 64 /* columns of a lowrank row summed at once */

/* The record's key as a tensor of m named by a string value. */
static int named_tensor(const struct mcb_model *m, const char *name, const json_t *rec,
			const char *key, int required, const struct mcb_tensor **out,
			struct mcb_errctx *e)
{
	const json_t *v = json_object_get(rec, key);

	*out = NULL;
	if (!v) {
		if (required)
			return BAD("tensor '%s': quantization record has no '%s'", name, key);
		return 0;
	}
	if (!json_is_string(v))
		return BAD("tensor '%s': quantization record key '%s' is not a string", name, key);
	*out = mcb_model_find(m, json_string_value(v));
	if (!*out)
		return BAD("tensor '%s': %s tensor '%s' is missing", name, key, json_string_value(v));
	return 0;
}

/* Is t (rows, n), or (rows,) when n == 1? */
static int is_rows_by(const struct mcb_tensor *t, int64_t rows, int64_t n)
{
	if (t->ndim == 2)
		return t->shape[0] == rows && t->shape[1] == n;
	return t->ndim == 1 && n == 1 && t->shape[0] == rows;
}

static float scale_at(const struct mcb_tensor *s, int64_t i)
{
	return s->dtype == MCB_DT_F16 ? mcb_f16_to_f32(((const uint16_t *)s->data)[i])
				      : ((const float *)s->data)[i];
}

/* scale tensor s of q: F16 or F32, (rows, ngroups) (or (rows,) for one
 * group; F32 only when f32_only), every value finite */
static int check_scale(const char *name, const struct mcb_tensor *s, const struct mcb_qtensor *q,
		       int f32_only, struct mcb_errctx *e)
{
	uint64_t i, n = (uint64_t)q->rows * (uint64_t)q->ngroups;

	if (s->dtype != MCB_DT_F32 && (f32_only || s->dtype != MCB_DT_F16))
		return BAD("tensor '%s': scale tensor '%s' has dtype %s, expected %s", name, s->name,
			   mcb_dtype_info(s->dtype)->name, f32_only ? "F32" : "F16 or F32");
	if (!is_rows_by(s, q->rows, q->ngroups))
		return BAD("tensor '%s': scale tensor '%s' must have shape (%" PRId64 ", %" PRId64
			   ")%s", name, s->name, q->rows, q->ngroups,
			   q->ngroups == 1 ? " or (rows,)" : "");
	for (i = 0; i < n; i++)
		if (!isfinite(scale_at(s, (int64_t)i)))
			return BAD("tensor '%s': scale %" PRIu64 " (row %" PRIu64 ") in '%s' is not "
				   "finite", name, i, i / (uint64_t)q->ngroups, s->name);
	return 0;
}

static int get_int(const struct mcb_model *m, const char *name, const json_t *rec,
		   struct mcb_qtensor *q, struct mcb_errctx *e)
{
	const json_t *bits = json_object_get(rec, "bits"), *sym = json_object_get(rec, "symmetric");
	const json_t *gs = json_object_get(rec, "group_size");
	const struct mcb_tensor *t = q->codes;
	uint64_t i, n;
	int rc, lo, hi;

	if (!json_is_integer(bits) || json_integer_value(bits) < 2 || json_integer_value(bits) > 8)
		return BAD("tensor '%s': quantization record needs \"bits\" 2..8", name);
	q->bits = (int)json_integer_value(bits);
	if (gs && (!json_is_integer(gs) || json_integer_value(gs) < 0))
		return BAD("tensor '%s': \"group_size\" must be an integer >= 0", name);
	q->group_size = gs ? (int64_t)json_integer_value(gs) : 0;
	if (sym && !json_is_boolean(sym))
		return BAD("tensor '%s': \"symmetric\" must be true or false", name);
	q->symmetric = sym ? json_is_true(sym) : json_object_get(rec, "zero") == NULL;
	q->ngroups = q->group_size ? (q->cols + q->group_size - 1) / q->group_size : 1;
	if (t->dtype != (q->symmetric ? MCB_DT_I8 : MCB_DT_U8))
		return BAD("tensor '%s': %s codes must be %s, not %s", name,
			   q->symmetric ? "symmetric" : "asymmetric", q->symmetric ? "I8" : "U8",
			   mcb_dtype_info(t->dtype)->name);
	if ((rc = named_tensor(m, name, rec, "scale", 1, &q->scale, e)) ||
	    (rc = check_scale(name, q->scale, q, 0, e)) ||
	    (rc = named_tensor(m, name, rec, "zero", !q->symmetric, &q->zero, e)) ||
	    (rc = named_tensor(m, name, rec, "g_idx", 0, &q->g_idx, e)))
		return rc;
	if (q->symmetric && q->zero)
		return BAD("tensor '%s': a symmetric record names a zero tensor", name);
	n = (uint64_t)q->rows * (uint64_t)q->cols;
	lo = q->symmetric ? -(1 << (q->bits - 1)) : 0;
	hi = q->symmetric ? (1 << (q->bits - 1)) - 1 : (1 << q->bits) - 1;
	for (i = 0; i < n; i++) {
		int v = q->symmetric ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];

		if (v < lo || v > hi)
			return BAD("tensor '%s': code %d at row %" PRIu64 ", column %" PRIu64
				   " is outside %d..%d (%d bits)", name, v, i / (uint64_t)q->cols,
				   i % (uint64_t)q->cols, lo, hi, q->bits);
	}
	if (q->zero) {
		if (q->zero->dtype != MCB_DT_U8 || !is_rows_by(q->zero, q->rows, q->ngroups))
			return BAD("tensor '%s': zero tensor '%s' must be U8 (%" PRId64 ", %" PRId64 ")",
				   name, q->zero->name, q->rows, q->ngroups);
		n = (uint64_t)q->rows * (uint64_t)q->ngroups;
		for (i = 0; i < n; i++)
			if (((const uint8_t *)q->zero->data)[i] > hi)
				return BAD("tensor '%s': zero point %d (row %" PRIu64 ") in '%s' is "
					   "above %d", name, ((const uint8_t *)q->zero->data)[i],
					   i / (uint64_t)q->ngroups, q->zero->name, hi);
	}
	if (q->g_idx) {
		if (q->g_idx->dtype != MCB_DT_I32 || q->g_idx->ndim != 1 ||
		    q->g_idx->shape[0] != q->cols)
			return BAD("tensor '%s': g_idx tensor '%s' must be I32 (%" PRId64 ",)", name,
				   q->g_idx->name, q->cols);
		for (i = 0; i < (uint64_t)q->cols; i++) {
			int32_t g = ((const int32_t *)q->g_idx->data)[i];

			if (g < 0 || g >= q->ngroups)
				return BAD("tensor '%s': g_idx[%" PRIu64 "] = %" PRId32 " in '%s' is not "
					   "a group (0..%" PRId64 ")", name, i, g, q->g_idx->name,
					   q->ngroups - 1);
		}
	}
	return 0;
}

static const struct {
	const char *name;
	enum mcb_dtype dt;
} ggml_types[] = {
	{"Q8_0", MCB_DT_Q8_0}, {"Q4_0", MCB_DT_Q4_0}, {"Q4_1", MCB_DT_Q4_1},
	{"Q4_K", MCB_DT_Q4_K}, {"Q6_K", MCB_DT_Q6_K},
};

/* byte offsets of the fp16 scales in a block of type t (0 or 1 left unused) */
static int block_scales(enum mcb_dtype t, unsigned off[2])
{
	switch (t) {
	case MCB_DT_Q8_0:
	case MCB_DT_Q4_0:
		off[0] = 0;
		return 1;
	case MCB_DT_Q4_1:
	case MCB_DT_Q4_K:
		off[0] = 0;
		off[1] = 2;
		return 2;
	case MCB_DT_Q6_K:
		off[0] = 208;
		return 1;
	default:
		return 0;
	}
}

static int get_ggml(const char *name, const json_t *rec, struct mcb_qtensor *q,
		    struct mcb_errctx *e)
{
	const char *ty = json_string_value(json_object_get(rec, "ggml_type"));
	const struct mcb_tensor *t = q->codes;
	const struct mcb_dtype_info *di;
	unsigned off[2];
	uint64_t b, nb;
	size_t i;
	int k, ns;

	if (!ty)
		return BAD("tensor '%s': ggml record needs a \"ggml_type\" string", name);
	for (i = 0; i < sizeof(ggml_types) / sizeof(ggml_types[0]); i++)
		if (!strcmp(ggml_types[i].name, ty))
			break;
	if (i == sizeof(ggml_types) / sizeof(ggml_types[0]))
		return BAD("tensor '%s': ggml_type '%.32s' is not one of Q8_0, Q4_0, Q4_1, Q4_K, "
			   "Q6_K", name, ty);
	q->ggml = ggml_types[i].dt;
	di = mcb_dtype_info(q->ggml);
	if (t->dtype != MCB_DT_U8)
		return BAD("tensor '%s': ggml blocks must be stored as U8, not %s", name,
			   mcb_dtype_info(t->dtype)->name);
	if (t->shape[1] == 0 || t->shape[1] % di->block_bytes)
		return BAD("tensor '%s': row of %" PRId64 " bytes is not a whole number of %s "
			   "blocks (%u bytes)", name, t->shape[1], ty, di->block_bytes);
	q->row_bytes = (size_t)t->shape[1];
	q->cols = t->shape[1] / di->block_bytes * di->block;
	nb = (uint64_t)q->rows * (q->row_bytes / di->block_bytes);
	ns = block_scales(q->ggml, off);
	for (b = 0; b < nb; b++)
		for (k = 0; k < ns; k++) {
			const uint8_t *p = (const uint8_t *)t->data + b * di->block_bytes + off[k];
			uint16_t h = (uint16_t)(p[0] | p[1] << 8);

			if ((h & 0x7c00) == 0x7c00)
				return BAD("tensor '%s': block %" PRIu64 " (row %" PRIu64 ") has a "
					   "non-finite fp16 scale", name, b,
					   b / (q->row_bytes / di->block_bytes));
		}
	return 0;
}

static int get_fp8(const struct mcb_model *m, const char *name, const json_t *rec,
		   struct mcb_qtensor *q, struct mcb_errctx *e)
{
	const struct mcb_tensor *t = q->codes;
	uint64_t i, n = (uint64_t)q->rows * (uint64_t)q->cols;
	int rc;

	if (t->dtype != MCB_DT_F8_E4M3)
		return BAD("tensor '%s': fp8 codes must be F8_E4M3, not %s", name,
			   mcb_dtype_info(t->dtype)->name);
	q->ngroups = 1;
	if ((rc = named_tensor(m, name, rec, "scale", 1, &q->scale, e)) ||
	    (rc = check_scale(name, q->scale, q, 1, e)))
		return rc;
	for (i = 0; i < n; i++)
		if ((((const uint8_t *)t->data)[i] & 0x7f) == 0x7f)
			return BAD("tensor '%s': fp8 code at row %" PRIu64 ", column %" PRIu64
				   " is NaN", name, i / (uint64_t)q->cols, i % (uint64_t)q->cols);
	return 0;
}

/* A's and B's F32 values, every one finite. */
static int check_finite_f32(const char *name, const struct mcb_tensor *t, struct mcb_errctx *e)
{
	const float *x = t->data;
	uint64_t i, n = t->nbytes / sizeof(float);

	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return BAD("tensor '%s': value %" PRIu64 " of '%s' is not finite", name, i,
				   t->name);
	return 0;
}

static int get_lowrank(const struct mcb_model *m, const char *name, const json_t *rec,
		       struct mcb_qtensor *q, struct mcb_errctx *e)
{
	const json_t *rk = json_object_get(rec, "rank"), *cl = json_object_get(rec, "cols");
	const json_t *en = json_object_get(rec, "energy");
	const struct mcb_tensor *a = q->codes;
	uint64_t n;
	int rc;

	if (!json_is_integer(rk) || json_integer_value(rk) < 1)
		return BAD("tensor '%s': lowrank record needs \"rank\" >= 1", name);
	if (!json_is_integer(cl) || json_integer_value(cl) < 1)
		return BAD("tensor '%s': lowrank record needs \"cols\" >= 1", name);
	if (en && !(json_is_number(en) && json_number_value(en) >= 0 &&
		    json_number_value(en) <= 1))
		return BAD("tensor '%s': lowrank \"energy\" must be a number in [0, 1]", name);
	q->rank = (int64_t)json_integer_value(rk);
	q->cols = (int64_t)json_integer_value(cl);
	if (__builtin_mul_overflow((uint64_t)q->rows, (uint64_t)q->cols, &n) || n > INT64_MAX)
		return BAD("tensor '%s': a %" PRId64 " x %" PRId64 " weight overflows", name,
			   q->rows, q->cols);
	if (a->dtype != MCB_DT_F32)
		return BAD("tensor '%s': lowrank factor A must be F32, not %s", name,
			   mcb_dtype_info(a->dtype)->name);
	if (a->shape[1] != q->rank)
		return BAD("tensor '%s': lowrank factor A has %" PRId64 " columns, the record's rank "
			   "is %" PRId64, name, a->shape[1], q->rank);
	if (q->rank > q->rows || q->rank > q->cols)
		return BAD("tensor '%s': rank %" PRId64 " is above min(%" PRId64 ", %" PRId64 ")",
			   name, q->rank, q->rows, q->cols);
	if ((rc = named_tensor(m, name, rec, "b", 1, &q->b, e)))
		return rc;
	if (q->b->dtype != MCB_DT_F32 || q->b->ndim != 2 || q->b->shape[0] != q->rank ||
	    q->b->shape[1] != q->cols)
		return BAD("tensor '%s': lowrank factor B '%s' must be F32 (%" PRId64 ", %" PRId64
			   "), not %s %s", name, q->b->name, q->rank, q->cols,
			   mcb_dtype_info(q->b->dtype)->name,
			   q->b->ndim == 2 ? "of another shape" : "of another rank");
	if ((rc = check_finite_f32(name, a, e)) || (rc = check_finite_f32(name, q->b, e)))
		return rc;
	return 0;
}

int mcb_qtensor_get(const struct mcb_model *m, const char *name, struct mcb_qtensor *q,
		    struct mcb_errctx *e)
{
	const struct mcb_tensor *t = mcb_model_find(m, name);
	const json_t *rec = json_object_get(json_object_get(m->meta, "quant"), name);
	const json_t *fmt;
	const char *f;

	memset(q, 0, sizeof(*q));
	if (!t)
		return BAD("tensor '%s' is missing", name);
	if (t->ndim != 2)
		return BAD("tensor '%s' has %d dimensions, expected a 2-D weight", name, t->ndim);
	q->name = t->name;
	q->codes = t;
	q->rows = t->shape[0];
	q->cols = t->shape[1];
	if (rec && !json_is_object(rec))
		return BAD("tensor '%s': quantization record is not an object", name);
	if (!rec || json_object_get(rec, "fallback") ||
	    (json_is_string(json_object_get(rec, "format")) &&
	     !strcmp(json_string_value(json_object_get(rec, "format")), "float"))) {
		/* floating point: no record, a fallback, or a pruned weight
		 * ("format": "float" with its sparsity and mask) */
		q->format = MCB_QF_FLOAT;
		if (t->dtype != MCB_DT_F32 && t->dtype != MCB_DT_F16 && t->dtype != MCB_DT_BF16)
			return BAD("tensor '%s' has dtype %s %s", name, mcb_dtype_info(t->dtype)->name,
				   rec ? "in a fallback record (expected F32, F16 or BF16)"
				       : "without a quantization record");
		return 0;
	}
	fmt = json_object_get(rec, "format");
	if (fmt && !json_is_string(fmt))
		return BAD("tensor '%s': \"format\" is not a string", name);
	f = fmt ? json_string_value(fmt) : "int";
	if (!strcmp(f, "int")) {
		q->format = MCB_QF_INT;
		return get_int(m, name, rec, q, e);
	}
	if (!strcmp(f, "ggml")) {
		q->format = MCB_QF_GGML;
		return get_ggml(name, rec, q, e);
	}
	if (!strcmp(f, "fp8")) {
		q->format = MCB_QF_FP8;
		return get_fp8(m, name, rec, q, e);
	}
	if (!strcmp(f, "lowrank")) {
		q->format = MCB_QF_LOWRANK;
		return get_lowrank(m, name, rec, q, e);
	}
	return BAD("tensor '%s': unknown quantization format '%.32s'", name, f);
}

/* value[c] for c in [c0, c1) of an int row whose columns all use group g */
static void int_span(const struct mcb_qtensor *q, int64_t r, int64_t g, int64_t c0, int64_t c1,
		     float *out)
{
	const int64_t i = r * q->ngroups + g;
	const float s = scale_at(q->scale, i);
	const int z = q->zero ? ((const uint8_t *)q->zero->data)[i] : 0;
	int64_t c;

	if (q->symmetric) {
		const int8_t *p = (const int8_t *)q->codes->data + r * q->cols;

		for (c = c0; c < c1; c++)
			out[c] = s * (float)p[c];
	} else {
		const uint8_t *p = (const uint8_t *)q->codes->data + r * q->cols;

		for (c = c0; c < c1; c++)
			out[c] = s * (float)(p[c] - z);
	}
}

void mcb_qtensor_row(const struct mcb_qtensor *q, int64_t r, float *out)
{
	const int64_t cols = q->cols;
	int64_t c, g;

	switch (q->format) {
	case MCB_QF_FLOAT: {
		const struct mcb_tensor *t = q->codes;

		if (t->dtype == MCB_DT_F32) {
			memcpy(out, (const float *)t->data + r * cols, (size_t)cols * sizeof(float));
		} else {
			const uint16_t *h = (const uint16_t *)t->data + r * cols;

			for (c = 0; c < cols; c++)
				out[c] = t->dtype == MCB_DT_F16 ? mcb_f16_to_f32(h[c])
								: mcb_bf16_to_f32(h[c]);
		}
		break;
	}
	case MCB_QF_INT:
		if (q->g_idx) {
			const int32_t *gi = q->g_idx->data;

			for (c = 0; c < cols; c++)
				int_span(q, r, gi[c], c, c + 1, out);
		} else if (!q->group_size) {
			int_span(q, r, 0, 0, cols, out);
		} else {
			for (g = 0, c = 0; c < cols; g++, c += q->group_size)
				int_span(q, r, g, c, cols - c < q->group_size ? cols : c + q->group_size,
					 out);
		}
		break;
	case MCB_QF_GGML:
		mcb_dequantize_row_ggml(q->ggml, (const uint8_t *)q->codes->data + r * q->row_bytes,
					out, cols);
		break;
	case MCB_QF_FP8: {
		const uint8_t *p = (const uint8_t *)q->codes->data + r * cols;
		const float s = ((const float *)q->scale->data)[r];

		for (c = 0; c < cols; c++)
			out[c] = s * mcb_e4m3_to_f32(p[c]);
		break;
	}
	case MCB_QF_LOWRANK: {
		const float *a = (const float *)q->codes->data + r * q->rank;
		const float *b = q->b->data;
		double acc[LR_BLOCK];
		int64_t n, k, j;

		for (c = 0; c < cols; c += LR_BLOCK) {
			n = cols - c < LR_BLOCK ? cols - c : LR_BLOCK;
			memset(acc, 0, sizeof(acc));
			for (k = 0; k < q->rank; k++) {
				const double ak = a[k];
				const float *bk = b + k * cols + c;

				for (j = 0; j < n; j++)
					acc[j] += ak * (double)bk[j];
			}
			for (j = 0; j < n; j++)
				out[c + j] = (float)acc[j];
		}
		break;
	}
	}
}

uint64_t mcb_qtensor_bytes(const struct mcb_qtensor *q)
{
	uint64_t n = q->codes->nbytes;

	if (q->scale)
		n += q->scale->nbytes;
	if (q->zero)
		n += q->zero->nbytes;
	if (q->g_idx)
		n += q->g_idx->nbytes;
	if (q->b)
		n += q->b->nbytes;
	return n;
}
