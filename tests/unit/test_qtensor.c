/*
 * qtensor tests: mcb_qtensor_get on every record form of include/mcb/
 * qtensor.h and on hostile ones (every refusal names the tensor and the
 * problem), mcb_qtensor_row's values against hand-computed ones,
 * mcb_qtensor_bytes; and the ggml block quantizers of runtime/quant_ggml.c:
 * known answers from the independent numpy port (tests/compat/gguf_check.py),
 * the fast Q4_0 quantizer against the _ref one bit for bit, the dequantizers'
 * formulas and round-trip errors.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

static uint64_t rs = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return rs;
}

/* uniform in [-1, 1) */
static float urand(void)
{
	return (float)((double)(rnd() >> 11) * 0x1.0p-52 - 1.0);
}

/* a new tensor of m, zero-filled; its data */
static void *add(struct mcb_model *m, const char *name, enum mcb_dtype dt, int ndim, int64_t d0,
		 int64_t d1)
{
	int64_t sh[2] = {d0, d1};
	struct mcb_tensor *t;
	struct mcb_errctx e;

	CHECK_OK(mcb_model_new_tensor(m, name, dt, ndim, sh, &t, &e), &e);
	memset(t->data, 0, t->nbytes);
	return t->data;
}

/* the data of tensor name (after later additions moved the table) */
static void *data(struct mcb_model *m, const char *name)
{
	return mcb_model_find(m, name)->data;
}

static void set_rec(struct mcb_model *m, const char *name, json_t *rec)
{
	json_t *quant = json_object_get(m->meta, "quant");

	if (!quant) {
		quant = json_object();
		json_object_set_new(m->meta, "quant", quant);
	}
	json_object_set_new(quant, name, rec);
}

static json_t *rec_of(struct mcb_model *m, const char *name)
{
	return json_object_get(json_object_get(m->meta, "quant"), name);
}

/* ---- valid records and their values ---- */

static void test_int_records(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;
	float row[40];
	int64_t c;

	mcb_model_init(&m);
	/* 4-bit asymmetric, groups of 16 over 40 columns (the last group has 8):
	 * value = scale * (q - zero) */
	add(&m, "a", MCB_DT_U8, 2, 2, 40);
	add(&m, "a.scale", MCB_DT_F16, 2, 2, 3);
	add(&m, "a.zero", MCB_DT_U8, 2, 2, 3);
	for (c = 0; c < 80; c++)
		((uint8_t *)data(&m, "a"))[c] = (uint8_t)(c % 16);
	for (c = 0; c < 6; c++) {
		((uint16_t *)data(&m, "a.scale"))[c] = mcb_f32_to_f16(0.25f * (float)(c + 1));
		((uint8_t *)data(&m, "a.zero"))[c] = (uint8_t)(c + 5);
	}
	set_rec(&m, "a", json_pack("{s:s,s:i,s:i,s:b,s:s,s:s}", "method", "awq", "bits", 4,
				   "group_size", 16, "symmetric", 0, "scale", "a.scale", "zero",
				   "a.zero"));
	CHECK_OK(mcb_qtensor_get(&m, "a", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_INT);
	CHECK_EQ(q.bits, 4);
	CHECK_EQ(q.symmetric, 0);
	CHECK_EQ(q.ngroups, 3);
	CHECK_EQ(q.rows, 2);
	CHECK_EQ(q.cols, 40);
	mcb_qtensor_row(&q, 1, row);
	for (c = 0; c < 40; c++) {
		int g = (int)(c / 16), code = (int)((40 + c) % 16);

		CHECK_EQ(row[c], 0.25f * (float)(3 + g + 1) * (float)(code - (3 + g + 5)));
	}
	CHECK_EQ(mcb_qtensor_bytes(&q), 80 + 12 + 6);
	/* "symmetric" defaults to the absence of "zero" */
	json_object_del(rec_of(&m, "a"), "symmetric");
	CHECK_OK(mcb_qtensor_get(&m, "a", &q, &e), &e);
	CHECK_EQ(q.symmetric, 0);

	/* 3-bit symmetric with g_idx (GPTQ act_order): group of column c is
	 * g_idx[c]; F32 scales */
	add(&m, "g", MCB_DT_I8, 2, 1, 6);
	add(&m, "g.scale", MCB_DT_F32, 2, 1, 2);
	add(&m, "g.g_idx", MCB_DT_I32, 1, 6, 0);
	{
		static const int8_t codes[6] = {-4, -1, 0, 1, 3, 2};
		static const int32_t gi[6] = {1, 0, 1, 0, 0, 1};

		memcpy(data(&m, "g"), codes, 6);
		memcpy(data(&m, "g.g_idx"), gi, sizeof(gi));
		((float *)data(&m, "g.scale"))[0] = 0.5f;
		((float *)data(&m, "g.scale"))[1] = -3.0f;
		set_rec(&m, "g", json_pack("{s:s,s:i,s:i,s:b,s:s,s:s}", "format", "int", "bits", 3,
					   "group_size", 4, "symmetric", 1, "scale", "g.scale", "g_idx",
					   "g.g_idx"));
		CHECK_OK(mcb_qtensor_get(&m, "g", &q, &e), &e);
		CHECK_EQ(q.ngroups, 2);
		CHECK(q.g_idx && !q.zero);
		mcb_qtensor_row(&q, 0, row);
		for (c = 0; c < 6; c++)
			CHECK_EQ(row[c], (gi[c] ? -3.0f : 0.5f) * (float)codes[c]);
		CHECK_EQ(mcb_qtensor_bytes(&q), 6 + 8 + 24);
	}

	/* int8 per channel (F32 scale [rows]): fl(s * q); 2-bit extremes */
	add(&m, "c", MCB_DT_I8, 2, 2, 3);
	add(&m, "c.scale", MCB_DT_F32, 1, 2, 0);
	((int8_t *)data(&m, "c"))[0] = -128;
	((int8_t *)data(&m, "c"))[5] = 127;
	((float *)data(&m, "c.scale"))[0] = 0.1f;
	((float *)data(&m, "c.scale"))[1] = 0.3f;
	set_rec(&m, "c", json_pack("{s:s,s:i,s:s,s:i,s:s,s:b}", "method", "rtn", "bits", 8,
				   "granularity", "channel", "group_size", 0, "scale", "c.scale",
				   "symmetric", 1));
	CHECK_OK(mcb_qtensor_get(&m, "c", &q, &e), &e);
	CHECK_EQ(q.ngroups, 1);
	mcb_qtensor_row(&q, 0, row);
	CHECK_EQ(row[0], 0.1f * -128.0f);
	mcb_qtensor_row(&q, 1, row);
	CHECK_EQ(row[2], 0.3f * 127.0f);
	add(&m, "t", MCB_DT_I8, 2, 1, 4);
	add(&m, "t.scale", MCB_DT_F16, 2, 1, 1);
	((int8_t *)data(&m, "t"))[0] = -2;
	((int8_t *)data(&m, "t"))[3] = 1;
	((uint16_t *)data(&m, "t.scale"))[0] = mcb_f32_to_f16(2.0f);
	set_rec(&m, "t", json_pack("{s:i,s:s}", "bits", 2, "scale", "t.scale"));
	CHECK_OK(mcb_qtensor_get(&m, "t", &q, &e), &e);
	CHECK(q.symmetric);
	mcb_qtensor_row(&q, 0, row);
	CHECK(row[0] == -4.0f && row[1] == 0.0f && row[3] == 2.0f);
	mcb_model_release(&m);
}

static void test_fp8_and_float(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;
	float row[4];

	mcb_model_init(&m);
	add(&m, "f", MCB_DT_F8_E4M3, 2, 2, 4);
	add(&m, "f.scale", MCB_DT_F32, 1, 2, 0);
	{
		static const uint8_t codes[8] = {0x38, 0xb8, 0x00, 0x7e, 0x01, 0x80, 0x40, 0xfe};

		memcpy(data(&m, "f"), codes, 8);
	}
	((float *)data(&m, "f.scale"))[0] = 2.0f;
	((float *)data(&m, "f.scale"))[1] = 0.5f;
	set_rec(&m, "f", json_pack("{s:s,s:s}", "format", "fp8", "scale", "f.scale"));
	CHECK_OK(mcb_qtensor_get(&m, "f", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_FP8);
	mcb_qtensor_row(&q, 0, row);
	CHECK(row[0] == 2.0f && row[1] == -2.0f && row[2] == 0.0f && row[3] == 896.0f);
	mcb_qtensor_row(&q, 1, row);
	CHECK(row[0] == 0.5f * 0x1p-9f && row[1] == 0.0f && row[2] == 1.0f && row[3] == -224.0f);
	CHECK_EQ(mcb_qtensor_bytes(&q), 8 + 8);

	/* no record: float; a fallback record: float; F16 widened */
	add(&m, "h", MCB_DT_F16, 2, 1, 2);
	((uint16_t *)data(&m, "h"))[1] = mcb_f32_to_f16(-1.5f);
	CHECK_OK(mcb_qtensor_get(&m, "h", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_FLOAT);
	mcb_qtensor_row(&q, 0, row);
	CHECK(row[0] == 0.0f && row[1] == -1.5f);
	CHECK_EQ(mcb_qtensor_bytes(&q), 4);
	set_rec(&m, "h", json_pack("{s:s,s:s}", "fallback", "F16", "reason", "rows of 172"));
	CHECK_OK(mcb_qtensor_get(&m, "h", &q, &e), &e);
	CHECK_EQ(q.format, MCB_QF_FLOAT);
	add(&m, "b", MCB_DT_BF16, 2, 1, 1);
	((uint16_t *)data(&m, "b"))[0] = mcb_f32_to_bf16(3.0f);
	CHECK_OK(mcb_qtensor_get(&m, "b", &q, &e), &e);
	mcb_qtensor_row(&q, 0, row);
	CHECK_EQ(row[0], 3.0f);
	mcb_model_release(&m);
}

static void test_ggml_records(void)
{
	static const struct {
		enum mcb_dtype t;
		const char *name;
	} types[] = {{MCB_DT_Q8_0, "Q8_0"}, {MCB_DT_Q4_0, "Q4_0"}, {MCB_DT_Q4_1, "Q4_1"},
		     {MCB_DT_Q4_K, "Q4_K"}, {MCB_DT_Q6_K, "Q6_K"}};
	size_t k;

	for (k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
		const struct mcb_dtype_info *di = mcb_dtype_info(types[k].t);
		const int64_t cols = 512, rb = cols / di->block * di->block_bytes;
		struct mcb_model m;
		struct mcb_qtensor q;
		struct mcb_errctx e;
		float w[3 * 512], row[512], want[512];
		uint8_t *b;
		int64_t r, c;

		mcb_model_init(&m);
		for (c = 0; c < 3 * cols; c++)
			w[c] = urand() * (1.0f + (float)(c % 9));
		b = add(&m, "w", MCB_DT_U8, 2, 3, rb);
		for (r = 0; r < 3; r++)
			mcb_quantize_row_ggml(types[k].t, w + r * cols, b + r * rb, cols);
		set_rec(&m, "w", json_pack("{s:s,s:s}", "format", "ggml", "ggml_type", types[k].name));
		CHECK_OK(mcb_qtensor_get(&m, "w", &q, &e), &e);
		CHECK_EQ(q.format, MCB_QF_GGML);
		CHECK_EQ(q.ggml, types[k].t);
		CHECK_EQ(q.cols, cols);
		CHECK_EQ((int64_t)q.row_bytes, rb);
		CHECK_EQ(mcb_qtensor_bytes(&q), (uint64_t)(3 * rb));
		for (r = 0; r < 3; r++) {
			double err = 0, mag = 0;

			mcb_qtensor_row(&q, r, row);
			mcb_dequantize_row_ggml(types[k].t, b + r * rb, want, cols);
			CHECK(memcmp(row, want, sizeof(row)) == 0);
			for (c = 0; c < cols; c++) {
				err += fabs((double)row[c] - w[r * cols + c]);
				mag += fabs((double)w[r * cols + c]);
			}
			/* 4-bit codes: mean error well under a tenth of the mean value */
			CHECK(err < 0.1 * mag);
		}
		mcb_model_release(&m);
	}
}

/* ---- hostile records ---- */

/* a fresh model holding one valid 4-bit asymmetric record "x" (2, 40),
 * groups of 16, and a 3-bit g_idx record "y" (2, 8) */
static void hostile_model(struct mcb_model *m)
{
	mcb_model_init(m);
	add(m, "x", MCB_DT_U8, 2, 2, 40);
	add(m, "x.scale", MCB_DT_F16, 2, 2, 3);
	add(m, "x.zero", MCB_DT_U8, 2, 2, 3);
	set_rec(m, "x", json_pack("{s:i,s:i,s:b,s:s,s:s}", "bits", 4, "group_size", 16,
				  "symmetric", 0, "scale", "x.scale", "zero", "x.zero"));
	add(m, "y", MCB_DT_I8, 2, 2, 8);
	add(m, "y.scale", MCB_DT_F32, 2, 2, 2);
	add(m, "y.g_idx", MCB_DT_I32, 1, 8, 0);
	set_rec(m, "y", json_pack("{s:i,s:i,s:s,s:s}", "bits", 3, "group_size", 4, "scale",
				  "y.scale", "g_idx", "y.g_idx"));
}

#define REFUSE(m, name, sub)                                                            \
	do {                                                                            \
		struct mcb_qtensor q_;                                                 \
		struct mcb_errctx e_;                                                  \
		CHECK_ERR(mcb_qtensor_get(m, name, &q_, &e_), &e_, MCB_EFORMAT, sub); \
	} while (0)

static void test_hostile_int(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;

	hostile_model(&m);
	CHECK_OK(mcb_qtensor_get(&m, "x", &q, &e), &e);
	CHECK_OK(mcb_qtensor_get(&m, "y", &q, &e), &e);
	REFUSE(&m, "nope", "tensor 'nope' is missing");
	REFUSE(&m, "y.g_idx", "has 1 dimensions");
	/* bits */
	json_object_set_new(rec_of(&m, "x"), "bits", json_integer(9));
	REFUSE(&m, "x", "tensor 'x': quantization record needs \"bits\" 2..8");
	json_object_set_new(rec_of(&m, "x"), "bits", json_string("4"));
	REFUSE(&m, "x", "\"bits\" 2..8");
	json_object_set_new(rec_of(&m, "x"), "bits", json_integer(1));
	REFUSE(&m, "x", "\"bits\" 2..8");
	json_object_set_new(rec_of(&m, "x"), "bits", json_integer(4));
	/* group size, symmetric */
	json_object_set_new(rec_of(&m, "x"), "group_size", json_integer(-16));
	REFUSE(&m, "x", "\"group_size\" must be an integer >= 0");
	json_object_set_new(rec_of(&m, "x"), "group_size", json_integer(8)); /* 5 groups */
	REFUSE(&m, "x", "scale tensor 'x.scale' must have shape (2, 5)");
	json_object_set_new(rec_of(&m, "x"), "group_size", json_integer(16));
	json_object_set_new(rec_of(&m, "x"), "symmetric", json_string("no"));
	REFUSE(&m, "x", "\"symmetric\" must be true or false");
	json_object_set_new(rec_of(&m, "x"), "symmetric", json_true());
	REFUSE(&m, "x", "symmetric codes must be I8, not U8");
	json_object_set_new(rec_of(&m, "x"), "symmetric", json_false());
	/* scale */
	json_object_set_new(rec_of(&m, "x"), "scale", json_string("x.nothing"));
	REFUSE(&m, "x", "scale tensor 'x.nothing' is missing");
	json_object_set_new(rec_of(&m, "x"), "scale", json_integer(3));
	REFUSE(&m, "x", "key 'scale' is not a string");
	json_object_set_new(rec_of(&m, "x"), "scale", json_string("x.zero"));
	REFUSE(&m, "x", "scale tensor 'x.zero' has dtype U8, expected F16 or F32");
	json_object_del(rec_of(&m, "x"), "scale");
	REFUSE(&m, "x", "quantization record has no 'scale'");
	json_object_set_new(rec_of(&m, "x"), "scale", json_string("x.scale"));
	((uint16_t *)data(&m, "x.scale"))[4] = 0x7e00; /* NaN */
	REFUSE(&m, "x", "scale 4 (row 1) in 'x.scale' is not finite");
	((uint16_t *)data(&m, "x.scale"))[4] = 0x7c00; /* inf */
	REFUSE(&m, "x", "is not finite");
	((uint16_t *)data(&m, "x.scale"))[4] = 0;
	/* zero points */
	((uint8_t *)data(&m, "x.zero"))[5] = 16;
	REFUSE(&m, "x", "zero point 16 (row 1) in 'x.zero' is above 15");
	((uint8_t *)data(&m, "x.zero"))[5] = 15;
	json_object_del(rec_of(&m, "x"), "zero");
	REFUSE(&m, "x", "quantization record has no 'zero'");
	json_object_set_new(rec_of(&m, "x"), "zero", json_string("x.scale"));
	REFUSE(&m, "x", "zero tensor 'x.scale' must be U8 (2, 3)");
	json_object_set_new(rec_of(&m, "x"), "zero", json_string("x.zero"));
	/* codes */
	((uint8_t *)data(&m, "x"))[57] = 16;
	REFUSE(&m, "x", "code 16 at row 1, column 17 is outside 0..15 (4 bits)");
	((uint8_t *)data(&m, "x"))[57] = 15;
	CHECK_OK(mcb_qtensor_get(&m, "x", &q, &e), &e);
	((int8_t *)data(&m, "y"))[3] = 4;
	REFUSE(&m, "y", "code 4 at row 0, column 3 is outside -4..3 (3 bits)");
	((int8_t *)data(&m, "y"))[3] = -5;
	REFUSE(&m, "y", "outside -4..3");
	((int8_t *)data(&m, "y"))[3] = -4;
	/* a symmetric record naming zero points */
	json_object_set_new(rec_of(&m, "y"), "zero", json_string("x.zero"));
	REFUSE(&m, "y", "asymmetric codes must be U8, not I8"); /* zero: asymmetric */
	json_object_set_new(rec_of(&m, "y"), "symmetric", json_true());
	REFUSE(&m, "y", "a symmetric record names a zero tensor");
	json_object_del(rec_of(&m, "y"), "zero");
	/* g_idx */
	((int32_t *)data(&m, "y.g_idx"))[6] = 2;
	REFUSE(&m, "y", "g_idx[6] = 2 in 'y.g_idx' is not a group (0..1)");
	((int32_t *)data(&m, "y.g_idx"))[6] = -1;
	REFUSE(&m, "y", "g_idx[6] = -1");
	((int32_t *)data(&m, "y.g_idx"))[6] = 1;
	json_object_set_new(rec_of(&m, "y"), "g_idx", json_string("y.scale"));
	REFUSE(&m, "y", "g_idx tensor 'y.scale' must be I32 (8,)");
	json_object_set_new(rec_of(&m, "y"), "g_idx", json_string("y.g_idx"));
	CHECK_OK(mcb_qtensor_get(&m, "y", &q, &e), &e);
	/* the record itself */
	set_rec(&m, "y", json_string("int"));
	REFUSE(&m, "y", "quantization record is not an object");
	set_rec(&m, "y", json_pack("{s:i}", "format", 1));
	REFUSE(&m, "y", "\"format\" is not a string");
	set_rec(&m, "y", json_pack("{s:s}", "format", "int2x"));
	REFUSE(&m, "y", "unknown quantization format 'int2x'");
	/* integer codes without a record */
	json_object_del(json_object_get(m.meta, "quant"), "y");
	REFUSE(&m, "y", "tensor 'y' has dtype I8 without a quantization record");
	set_rec(&m, "y", json_pack("{s:s}", "fallback", "F16"));
	REFUSE(&m, "y", "in a fallback record");
	mcb_model_release(&m);
}

static void test_hostile_ggml_fp8(void)
{
	struct mcb_model m;
	struct mcb_qtensor q;
	struct mcb_errctx e;
	uint8_t *b;
	float w[512];
	int64_t c;

	mcb_model_init(&m);
	for (c = 0; c < 512; c++)
		w[c] = urand();
	b = add(&m, "k", MCB_DT_U8, 2, 2, 288);
	mcb_quantize_row_ggml(MCB_DT_Q4_K, w, b, 256);
	mcb_quantize_row_ggml(MCB_DT_Q4_K, w + 256, b + 144, 256);
	memcpy(b + 288, b, 288);
	set_rec(&m, "k", json_pack("{s:s,s:s}", "format", "ggml", "ggml_type", "Q4_K"));
	CHECK_OK(mcb_qtensor_get(&m, "k", &q, &e), &e);
	CHECK_EQ(q.cols, 512);
	CHECK_EQ(q.rows, 2);
	b = data(&m, "k");
	b[288 + 144 + 3] = 0xfc; /* dmin of row 1, block 1: -inf */
	REFUSE(&m, "k", "block 3 (row 1) has a non-finite fp16 scale");
	b[288 + 144 + 3] = 0;
	json_object_set_new(rec_of(&m, "k"), "ggml_type", json_string("Q6_K"));
	REFUSE(&m, "k", "row of 288 bytes is not a whole number of Q6_K blocks (210 bytes)");
	json_object_set_new(rec_of(&m, "k"), "ggml_type", json_string("Q5_0"));
	REFUSE(&m, "k", "ggml_type 'Q5_0' is not one of Q8_0, Q4_0, Q4_1, Q4_K, Q6_K");
	json_object_del(rec_of(&m, "k"), "ggml_type");
	REFUSE(&m, "k", "ggml record needs a \"ggml_type\" string");
	json_object_set_new(rec_of(&m, "k"), "ggml_type", json_string("Q4_K"));
	add(&m, "k8", MCB_DT_I8, 2, 2, 288);
	set_rec(&m, "k8", json_pack("{s:s,s:s}", "format", "ggml", "ggml_type", "Q4_K"));
	REFUSE(&m, "k8", "ggml blocks must be stored as U8, not I8");
	/* Q6_K: d at byte 208 */
	b = add(&m, "s", MCB_DT_U8, 2, 1, 210);
	mcb_quantize_row_ggml(MCB_DT_Q6_K, w, b, 256);
	set_rec(&m, "s", json_pack("{s:s,s:s}", "format", "ggml", "ggml_type", "Q6_K"));
	CHECK_OK(mcb_qtensor_get(&m, "s", &q, &e), &e);
	b[209] = 0x7f;
	REFUSE(&m, "s", "non-finite fp16 scale");
	/* fp8 */
	add(&m, "f", MCB_DT_F8_E4M3, 2, 2, 3);
	add(&m, "f.scale", MCB_DT_F32, 1, 2, 0);
	set_rec(&m, "f", json_pack("{s:s,s:s}", "format", "fp8", "scale", "f.scale"));
	CHECK_OK(mcb_qtensor_get(&m, "f", &q, &e), &e);
	((uint8_t *)data(&m, "f"))[4] = 0xff;
	REFUSE(&m, "f", "fp8 code at row 1, column 1 is NaN");
	((uint8_t *)data(&m, "f"))[4] = 0x7f;
	REFUSE(&m, "f", "is NaN");
	((uint8_t *)data(&m, "f"))[4] = 0x7e; /* 448: fine */
	CHECK_OK(mcb_qtensor_get(&m, "f", &q, &e), &e);
	((float *)data(&m, "f.scale"))[1] = INFINITY;
	REFUSE(&m, "f", "scale 1 (row 1) in 'f.scale' is not finite");
	add(&m, "f.h", MCB_DT_F16, 1, 2, 0);
	json_object_set_new(rec_of(&m, "f"), "scale", json_string("f.h"));
	REFUSE(&m, "f", "scale tensor 'f.h' has dtype F16, expected F32");
	add(&m, "f.s3", MCB_DT_F32, 1, 3, 0);
	json_object_set_new(rec_of(&m, "f"), "scale", json_string("f.s3"));
	REFUSE(&m, "f", "must have shape (2, 1) or (rows,)");
	set_rec(&m, "k8", json_pack("{s:s,s:s}", "format", "fp8", "scale", "f.scale"));
	REFUSE(&m, "k8", "fp8 codes must be F8_E4M3, not I8");
	mcb_model_release(&m);
}

/* ---- the ggml quantizers ---- */

/* known answers: the numpy port in tests/compat/gguf_check.py (q4_0_ref,
 * q4_1_ref, q4_k_ref, q6_k_ref) on kat_input's values (exact in float and
 * float64), as hex:
 *   i = np.arange(256); x = (((i*7919) % 1009 - 504) * (1 + i % 5) / 256.0)
 *   x[5], x[40], x[41], x[200] = 0, -0.75, 0.75, 3; q4_0_ref(x[:64]).hex() */
static const char *const kat_q4_0 =
	"803b967b4a09a6b8a58e5d7b48d7c4a08f69653cb49f8e6948f7e49187694908"
	"95a7957c";
static const char *const kat_q4_1 =
	"f83b80c7867a4a0895a8948d5c6a47c6c4a07f686e3c65c8b49f8e6948f7d491"
	"8769490895a7957c";
static const char *const kat_q4_k =
	"9f241b31f8fffdfaaff8fbe5da274bfb45faea988577441d7c9a978654705fc8"
	"b897846049ead9888566440c9ba9977655370cfc7b796847144f9e9988575430"
	"0abaa96754370cec7b796836044e9d89989676541cacbaa78664705fd8c8a684"
	"71450af9988576440cabaaa78653704e1cbbb9a886548fdedbc8a6947059fae9"
	"a79477440cbbb9a786538eddd8b89693";
static const char *const kat_q6_k =
	"38b5d6dda920fd9a0d652025f09ff11c928cc171788ae8e1450b32c4a1188fea"
	"108e3a03c1bbf0612d63565f932b22914cc51ff920aa6602c0ca00815667546d"
	"1ae563fbaa0cc280b41caaf00c6c815b3b186426dc18b42d9a6c0460d50f9e70"
	"04536d31c018bcd9d2951be186e37a2f1af091fc13425b20b007b9b7b073fbe1"
	"969ded296a665690d4b97a665797848dda195564b6aece0a5965a5a3fb8a4955"
	"39aaa696505879baaaa697444d2deae6a776613d099a96a66078498a9aa66774"
	"619e968e855279726961a59c94588c801399";

static void kat_input(float *x)
{
	int i;

	for (i = 0; i < 256; i++)
		x[i] = (float)((i * 7919) % 1009 - 504) * (float)(1 + i % 5) / 256.0f;
	x[5] = 0.0f;
	x[40] = -0.75f;
	x[41] = 0.75f;
	x[200] = 3.0f;
}

static void check_hex(const uint8_t *got, const char *hex, size_t n, const char *what)
{
	size_t i;

	CHECK_EQ(strlen(hex), 2 * n);
	for (i = 0; i < n && 2 * i + 1 < strlen(hex); i++) {
		unsigned v;

		sscanf(hex + 2 * i, "%2x", &v);
		if (got[i] != v) {
			mcbt_fail(__FILE__, __LINE__, "%s: byte %zu is %02x, numpy gives %02x", what, i,
				  got[i], v);
			return;
		}
	}
}

static void test_ggml_known_answers(void)
{
	float x[256];
	uint8_t b[256];

	kat_input(x);
	mcb_quantize_row_q4_0_ref(x, b, 64);
	check_hex(b, kat_q4_0, 36, "Q4_0");
	mcb_quantize_row_q4_0(x, b, 64);
	check_hex(b, kat_q4_0, 36, "Q4_0 (fast)");
	mcb_quantize_row_q4_1_ref(x, b, 64);
	check_hex(b, kat_q4_1, 40, "Q4_1");
	mcb_quantize_row_q4_k_ref(x, b, 256);
	check_hex(b, kat_q4_k, 144, "Q4_K");
	mcb_quantize_row_q6_k_ref(x, b, 256);
	check_hex(b, kat_q6_k, 210, "Q6_K");
}

/* the fast Q4_0 quantizer = the _ref one, bit for bit: random rows of
 * every scale, ties of +-amax, zeros, equal values, huge and tiny values,
 * halfway cases */
typedef void (*quantize_fn)(const float *x, void *y, int64_t k);

static quantize_fn ref_of(enum mcb_dtype t)
{
	return t == MCB_DT_Q4_0 ? mcb_quantize_row_q4_0_ref : mcb_quantize_row_q4_1_ref;
}

/* The fast paths of t (Q4_0, Q4_1, through mcb_quantize_row_ggml) against
 * the _ref quantizers, bytes per block bb. */
static void fast_equals_ref(enum mcb_dtype t, size_t bb)
{
	enum { N = 32 * 64 };
	float *x = malloc(N * sizeof(float));
	uint8_t *a = malloc(N), *b = malloc(N);
	int trial, i, bad = 0;

	for (trial = 0; trial < 400; trial++) {
		float scale = ldexpf(1.0f, (int)(rnd() % 200) - 100);

		for (i = 0; i < N; i++)
			x[i] = urand() * scale;
		switch (trial % 8) {
		case 1: /* +-amax ties: the first one sets the sign */
			for (i = 0; i < N; i += 7)
				x[i] = i % 2 ? -scale : scale;
			break;
		case 2: /* zero and constant blocks */
			memset(x, 0, 32 * sizeof(float));
			for (i = 32; i < 64; i++)
				x[i] = 0.3f;
			for (i = 64; i < 96; i++)
				x[i] = -0.3f;
			break;
		case 3: /* x * id + 8.5 lands on integers: values k/8 of amax */
			for (i = 0; i < N; i++)
				x[i] = (float)((int)(rnd() % 17) - 8) / 8.0f * scale;
			break;
		case 4: /* extremes of float */
			for (i = 0; i < N; i += 3)
				x[i] = i % 2 ? FLT_MAX / 16 : -FLT_MIN;
			break;
		case 5: /* subnormals */
			for (i = 0; i < N; i++)
				x[i] = urand() * 1e-40f;
			break;
		default:
			break;
		}
		ref_of(t)(x, a, N);
		mcb_quantize_row_ggml(t, x, b, N);
		bad += memcmp(a, b, N / 32 * bb) != 0;
	}
	CHECK_EQ(bad, 0);
	/* rows that are not a whole number of vector steps */
	for (i = 32; i <= 32 * 9; i += 32) {
		ref_of(t)(x, a, i);
		mcb_quantize_row_ggml(t, x, b, i);
		CHECK(memcmp(a, b, (size_t)i / 32 * bb) == 0);
	}
	free(x), free(a), free(b);
}

static void test_q4_fast_equals_ref(void)
{
	fast_equals_ref(MCB_DT_Q4_0, 18);
	fast_equals_ref(MCB_DT_Q4_1, 20);
}

/* The K-quant fast paths (lanes across sub-blocks, AVX2 and AVX-512) against
 * ggml's reference search, byte for byte: scales per sub-block, signs,
 * zero and constant sub-blocks, grids that make ties, extremes,
 * subnormals, random bit patterns, sparse rows; rows of 1 to 20
 * super-blocks (short rows take the AVX2 code, long ones fill the AVX-512
 * lanes), misaligned input and output, non-finite values. */
static void kquant_equals_ref(enum mcb_dtype t, size_t bb)
{
	enum { NB = 20, N = 256 * NB };
	float *x = malloc((N + 1) * sizeof(float));
	uint8_t *a = malloc(NB * 210 + 1), *b = malloc(NB * 210 + 1);
	void (*ref)(const float *, void *, int64_t) =
		t == MCB_DT_Q4_K ? mcb_quantize_row_q4_k_ref : mcb_quantize_row_q6_k_ref;
	int trial, i, k, bad = 0;

	for (trial = 0; trial < 300; trial++) {
		float scale = ldexpf(1.0f, (int)(rnd() % 200) - 100);
		int nb = 1 + trial % NB, off = trial % 7 == 6;
		float *xx = x + off;
		uint8_t *bo = b + off;

		for (i = 0; i < N; i++)
			xx[i] = urand() * scale;
		switch (trial % 10) {
		case 1: /* every sub-block its own scale and sign */
			for (k = 0; k < N / 16; k++) {
				float sk = ldexpf(1.0f, (int)(rnd() % 61) - 30);
				int mode = (int)(rnd() % 3);

				for (i = 16 * k; i < 16 * k + 16; i++)
					xx[i] = (mode == 1 ? fabsf(xx[i]) : mode == 2 ? -fabsf(xx[i])
										     : xx[i]) * sk;
			}
			break;
		case 2: /* zero, -0 and constant sub-blocks; an all-zero super-block */
			for (i = 0; i < 32; i++)
				xx[i] = 0.3f;
			for (i = 32; i < 48; i++)
				xx[i] = -0.3f;
			for (i = 48; i < 64; i++)
				xx[i] = i % 2 ? -0.0f : 0.0f;
			if (nb > 1)
				memset(xx + 256, 0, 256 * sizeof(float));
			break;
		case 3: /* grids: candidate scales tie */
			for (i = 0; i < N; i++)
				xx[i] = (float)((int)(rnd() % 31) - 15) / 15.0f * scale;
			break;
		case 4: /* extremes */
			for (i = 0; i < N; i += 3)
				xx[i] = i % 2 ? FLT_MAX / 16 : -FLT_MIN;
			break;
		case 5: /* subnormals */
			for (i = 0; i < N; i++)
				xx[i] = urand() * 1e-40f;
			break;
		case 6: /* small integers */
			for (i = 0; i < N; i++)
				xx[i] = (float)((int)(rnd() % 9) - 4);
			break;
		case 7: /* +-amax ties */
			for (i = 0; i < N; i += 7)
				xx[i] = i % 2 ? -scale : scale;
			break;
		case 8: /* random finite bit patterns */
			for (i = 0; i < N; i++) {
				uint32_t u = (uint32_t)rnd();

				if ((u & 0x7f800000u) == 0x7f800000u)
					u &= ~0x00800000u;
				memcpy(&xx[i], &u, 4);
			}
			break;
		case 9: /* sparse */
			for (i = 0; i < N; i++)
				if (rnd() % 8)
					xx[i] = 0.0f;
			break;
		default:
			break;
		}
		ref(xx, a, 256 * nb);
		mcb_quantize_row_ggml(t, xx, bo, 256 * nb);
		bad += memcmp(a, bo, (size_t)nb * bb) != 0;
	}
	CHECK_EQ(bad, 0);
	/* non-finite values: those super-blocks as ggml's reference does them */
	for (i = 0; i < 3 * 256; i++)
		x[i] = urand();
	x[256 + 100] = NAN;
	x[512 + 7] = INFINITY;
	ref(x, a, 3 * 256);
	mcb_quantize_row_ggml(t, x, b, 3 * 256);
	CHECK(memcmp(a, b, 3 * bb) == 0);
	free(x), free(a), free(b);
}

static void test_kquant_fast_equals_ref(void)
{
	kquant_equals_ref(MCB_DT_Q4_K, 144);
	kquant_equals_ref(MCB_DT_Q6_K, 210);
}

/* dequantizers: the block formulas by hand; round trips within the step */
static void test_ggml_dequant(void)
{
	uint8_t b[210];
	float y[256], x[256];
	int j, i;

	/* Q4_0: d = 0.5, codes j % 16 -> (code - 8) * d */
	b[0] = 0x00, b[1] = 0x38;
	for (j = 0; j < 16; j++)
		b[2 + j] = (uint8_t)(j | (15 - j) << 4);
	mcb_dequantize_row_q4_0_ref(b, y, 32);
	for (j = 0; j < 16; j++) {
		CHECK_EQ(y[j], 0.5f * (float)(j - 8));
		CHECK_EQ(y[j + 16], 0.5f * (float)(7 - j));
	}
	/* Q4_1: d = 2, m = -1 -> code * d + m */
	b[0] = 0x00, b[1] = 0x40, b[2] = 0x00, b[3] = 0xbc;
	for (j = 0; j < 16; j++)
		b[4 + j] = (uint8_t)(j | j << 4);
	mcb_dequantize_row_q4_1_ref(b, y, 32);
	for (j = 0; j < 32; j++)
		CHECK_EQ(y[j], 2.0f * (float)(j % 16) - 1.0f);
	/* round trips: |x - deq| within one quantization step of the block
	 * (Q4_K's 6-bit sub-block scales and mins can add to that: fixed
	 * values, whatever the tests before this one drew) */
	rs = 0x9e3779b97f4a7c15ull;
	for (i = 0; i < 256; i++)
		x[i] = urand() * (1.0f + (float)(i / 32));
	{
		static const enum mcb_dtype ts[4] = {MCB_DT_Q4_0, MCB_DT_Q4_1, MCB_DT_Q4_K, MCB_DT_Q6_K};
		static const float step[4] = {2.0f / 15.0f, 2.0f / 15.0f, 2.0f / 15.0f, 2.0f / 63.0f};
		int k;

		for (k = 0; k < 4; k++) {
			uint8_t blk[4 * 210];

			mcb_quantize_row_ggml(ts[k], x, blk, 256);
			mcb_dequantize_row_ggml(ts[k], blk, y, 256);
			for (i = 0; i < 256; i++) {
				float amax = 1.0f + (float)(i / 32);

				if (fabsf(y[i] - x[i]) > step[k] * amax * 1.01f) {
					mcbt_fail(__FILE__, __LINE__, "type %d value %d: %g -> %g", k, i,
						  x[i], y[i]);
					break;
				}
			}
		}
	}
	/* non-finite input: codes 0 instead of undefined behaviour (callers
	 * refuse such weights first) */
	for (i = 0; i < 256; i++)
		x[i] = i == 3 ? NAN : urand();
	mcb_quantize_row_ggml(MCB_DT_Q4_0, x, b, 32);
	mcb_quantize_row_ggml(MCB_DT_Q4_K, x, b, 256);
	mcb_quantize_row_ggml(MCB_DT_Q6_K, x, b, 256);
	CHECK(1);
}

int main(void)
{
	RUN(test_int_records);
	RUN(test_fp8_and_float);
	RUN(test_ggml_records);
	RUN(test_hostile_int);
	RUN(test_hostile_ggml_fp8);
	RUN(test_ggml_known_answers);
	RUN(test_q4_fast_equals_ref);
	RUN(test_kquant_fast_equals_ref);
	RUN(test_ggml_dequant);
	return mcbt_done();
}
