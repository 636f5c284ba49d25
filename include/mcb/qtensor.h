/*
 * qtensor: how the internal form holds compressed weights, and exact
 * dequantization of any of them.  A weight X that a technique changed keeps
 * its name; meta["quant"][X] is a record saying how to read it:
 *
 *   "format": "int" (the default when absent)
 *       X       codes, rows x cols: I8 (symmetric: signed codes) or U8
 *               (asymmetric: 0 .. 2^bits - 1)
 *       "scale" name of the scales tensor, F16 or F32 [rows, ngroups]
 *               (a 1-D [rows] tensor is one group per row)
 *       "zero"  asymmetric only: name of the zero points, U8 [rows, ngroups]
 *       "g_idx" optional: name of an I32 [cols] tensor, the group of each
 *               column (GPTQ act_order); else group = column / group_size
 *       "bits" 2..8, "group_size" (0: one group per row), "symmetric"
 *       value[r][c] = scale[r][g] * (q[r][c] - zero[r][g])   (zero 0 when symmetric)
 *   "format": "ggml"
 *       X       U8 [rows, row_bytes]: the rows in ggml's block layout
 *       "ggml_type": "Q4_0" | "Q4_1" | "Q4_K" | "Q6_K" | "Q8_0"
 *       value: ggml's dequantization of the blocks (runtime/quant.c)
 *   "format": "fp8"
 *       X       F8_E4M3 codes [rows, cols]; "scale": F32 [rows]
 *       value[r][c] = scale[r] * e4m3(q[r][c])
 *   "format": "lowrank" (runtime/step_lowrank.c: truncated SVD, lowrank.h)
 *       X       A, F32 [rows, rank]: U_r diag(s_r)
 *       "b"     name of B ("X.lowrank_b"), F32 [rank, cols]: V_r^T
 *       "rank"  1 .. min(rows, cols); "cols" the weight's columns
 *       "energy" optional: the fraction of sum(s^2) kept (informative)
 *       value[r][c] = sum_{k<rank} A[r][k] * B[k][c], summed in double in
 *       order k = 0, 1, ..., then rounded to float
 *       The weight is rows x cols (not X's shape); it is not quantized:
 *       a later technique reads it dense and replaces the record.
 *
 * Any record may carry "method" (what produced it: "rtn", "gptq", "awq", ...,
 * informative) and "sparsity" ("2:4", "unstructured": the zeros are already
 * in the values), and "input_scale" (SmoothQuant W8A8): the name of an F32
 * [1] tensor s; the weight's inputs then live on an int8 grid,
 * x -> clamp(rint(x / s), -128, 127) * s (vLLM's static per-tensor int8
 * activations), which the engine applies before the product.  A weight
 * kept in floating point after all (a fallback)
 * has {"fallback": "F16", "reason": ...} and is an ordinary F16 tensor.
 * The pre-existing int8 forms are "int" records: per channel (F32 scale
 * [rows], group_size 0) and Q8_0's split form (F16 scale [rows, cols/32]).
 */
#ifndef MCB_QTENSOR_H
#define MCB_QTENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/tensor.h"

struct mcb_errctx;
struct mcb_model;

enum mcb_qformat { MCB_QF_FLOAT, MCB_QF_INT, MCB_QF_GGML, MCB_QF_FP8, MCB_QF_LOWRANK };

struct mcb_qtensor {
	const char *name;
	enum mcb_qformat format;
	int64_t rows, cols;
	const struct mcb_tensor *codes;   /* X (float formats: the tensor itself) */
	/* int */
	int bits;
	int symmetric;
	int64_t group_size;               /* 0: one group per row */
	int64_t ngroups;
	const struct mcb_tensor *scale;
	const struct mcb_tensor *zero;    /* NULL when symmetric */
	const struct mcb_tensor *g_idx;   /* NULL: column / group_size */
	/* ggml */
	enum mcb_dtype ggml;              /* block type */
	size_t row_bytes;
	/* fp8: scale as above */
	/* lowrank: codes is A (rows, rank) */
	int64_t rank;
	const struct mcb_tensor *b;       /* B (rank, cols) */
};

/*
 * Describe tensor name of m (a 2-D weight): its record read and checked
 * against the tensors it names (dtypes, shapes, code ranges are the
 * caller's to trust only after this).  A tensor without a record is
 * MCB_QF_FLOAT (F32, F16 or BF16).  MCB_EFORMAT naming the tensor otherwise.
 */
int mcb_qtensor_get(const struct mcb_model *m, const char *name, struct mcb_qtensor *q,
		    struct mcb_errctx *e);

/* Exact dequantization of row r into out (cols,). */
void mcb_qtensor_row(const struct mcb_qtensor *q, int64_t r, float *out);

/* Bytes the weight occupies in the internal form (codes and side tensors;
 * lowrank: 4 * rank * (rows + cols)). */
uint64_t mcb_qtensor_bytes(const struct mcb_qtensor *q);

#endif
