/* Unit tests for tensor: the dtype table, checked sizes, fp16/bf16 conversions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/tensor.h"

static uint32_t bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float from_bits(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

static void test_dtype_table(void)
{
	static const struct {
		const char *name;
		int ggml;
	} want[] = {
		{"F32", 0}, {"F16", 1}, {"BF16", 30}, {"F64", 28}, {"I8", 24}, {"U8", -1},
		{"I16", 25}, {"U16", -1}, {"I32", 26}, {"U32", -1}, {"I64", 27}, {"U64", -1},
		{"BOOL", -1}, {"F8_E4M3", -1}, {"F8_E5M2", -1}, {"Q8_0", 8},
		{"Q4_0", 2}, {"Q4_1", 3}, {"Q4_K", 12}, {"Q6_K", 14},
	};
	int t;

	CHECK_EQ(sizeof(want) / sizeof(want[0]), MCB_DT_COUNT);
	for (t = 0; t < MCB_DT_COUNT; t++) {
		const struct mcb_dtype_info *d = mcb_dtype_info((enum mcb_dtype)t);

		CHECK_STR(d->name, want[t].name);
		CHECK_EQ(d->ggml_type, want[t].ggml);
		CHECK_EQ(mcb_dtype_from_name(want[t].name), t);
		if (want[t].ggml >= 0)
			CHECK_EQ(mcb_dtype_from_ggml((uint32_t)want[t].ggml), t);
		CHECK_EQ(d->in_safetensors, t < MCB_DT_Q8_0);
	}
	CHECK_EQ(mcb_dtype_info(MCB_DT_Q8_0)->block, 32);
	CHECK_EQ(mcb_dtype_info(MCB_DT_Q8_0)->block_bytes, 34);
	CHECK_EQ(mcb_dtype_info(MCB_DT_BF16)->block_bytes, 2);
	CHECK_EQ(mcb_dtype_info(MCB_DT_F64)->block_bytes, 8);
	CHECK_EQ(mcb_dtype_from_name("f32"), -1);
	CHECK_EQ(mcb_dtype_from_name(""), -1);
	CHECK_EQ(mcb_dtype_info(MCB_DT_Q4_K)->block, 256);
	CHECK_EQ(mcb_dtype_info(MCB_DT_Q4_K)->block_bytes, 144); /* ggml-common.h */
	CHECK_EQ(mcb_dtype_info(MCB_DT_Q6_K)->block_bytes, 210);
	CHECK_EQ(mcb_dtype_from_ggml(6), -1);  /* Q5_0: not known to mcbuild */
	CHECK_EQ(mcb_dtype_from_ggml(99), -1);
	CHECK_EQ(mcb_dtype_from_ggml(0xffffffffu), -1);
}

static void test_nbytes(void)
{
	uint64_t b;

	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_F32, 10, &b), 0);
	CHECK_EQ(b, 40);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_BOOL, 0, &b), 0);
	CHECK_EQ(b, 0);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_Q8_0, 64, &b), 0);
	CHECK_EQ(b, 68);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_Q8_0, 33, &b), MCB_ERANGE);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_F32, UINT64_MAX / 4 + 1, &b), MCB_ERANGE);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_F32, UINT64_MAX / 4, &b), 0);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_F64, UINT64_MAX, &b), MCB_ERANGE);
	CHECK_EQ(mcb_dtype_nbytes(MCB_DT_U8, UINT64_MAX, &b), 0);
}

/* Independent reference: the value a half encodes, in double. */
static double half_value(uint16_t h)
{
	int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
	double v;

	if (exp == 0)
		v = ldexp(mant, -24);
	else if (exp == 31)
		v = mant ? NAN : INFINITY;
	else
		v = ldexp(mant | 0x400, exp - 25);
	return (h & 0x8000) ? -v : v;
}

static void test_f16_exhaustive(void)
{
	uint32_t i;
	int bad_val = 0, bad_rt = 0, bad_nan = 0;

	for (i = 0; i < 65536; i++) {
		uint16_t h = (uint16_t)i;
		float f = mcb_f16_to_f32(h);
		double ref = half_value(h);

		if (isnan(ref)) {
			/* NaN stays NaN with its sign; payload kept through the round trip */
			if (!isnan(f) || (bits(f) >> 31) != (h >> 15u) || mcb_f32_to_f16(f) != h)
				bad_nan++;
			continue;
		}
		if ((double)f != ref || !signbit(f) != !signbit(ref))
			bad_val++;
		if (mcb_f32_to_f16(f) != h)
			bad_rt++;
	}
	CHECK_EQ(bad_val, 0);
	CHECK_EQ(bad_rt, 0);
	CHECK_EQ(bad_nan, 0);
}

/* Round-to-nearest-even reference for f32 -> f16: search the neighbours. */
static uint16_t f16_ref(float f)
{
	double x = f, best = INFINITY;
	uint16_t bestu = 0;
	uint32_t h;

	if (isnan(f))
		return 0x7e00;
	if (fabs(x) >= 65520.0)
		return x < 0 ? 0xfc00 : 0x7c00;
	for (h = 0; h < 0x7c00; h++) {
		double d = fabs(fabs(x) - half_value((uint16_t)h));

		if (d < best || (d == best && !(h & 1))) {
			best = d;
			bestu = (uint16_t)h;
		}
	}
	return (uint16_t)(bestu | (signbit(f) ? 0x8000 : 0));
}

static void test_f32_to_f16_rounding(void)
{
	/* boundary cases: ties to even, the overflow threshold, the subnormal edges */
	static const struct {
		uint32_t f;
		uint16_t h;
	} cases[] = {
		{0x00000000, 0x0000}, {0x80000000, 0x8000}, /* signed zeros */
		{0x3f800000, 0x3c00},                       /* 1.0 */
		{0x3f801000, 0x3c00},                       /* 1 + 2^-11: tie, to even (down) */
		{0x3f803000, 0x3c02},                       /* 1 + 3*2^-11: tie, to even (up) */
		{0x3f801001, 0x3c01},                       /* just above the tie: up */
		{0x477fe000, 0x7bff},                       /* 65504, the largest half */
		{0x477fefff, 0x7bff},                       /* just below 65520: stays finite */
		{0x477ff000, 0x7c00},                       /* 65520: tie, rounds to inf */
		{0x7f7fffff, 0x7c00},                       /* FLT_MAX */
		{0x7f800000, 0x7c00}, {0xff800000, 0xfc00}, /* infinities */
		{0x38800000, 0x0400},                       /* 2^-14: smallest normal */
		{0x387fc000, 0x03ff},                       /* largest subnormal */
		{0x387fe000, 0x0400},                       /* tie between them: to even (normal) */
		{0x33800000, 0x0001},                       /* 2^-24: smallest subnormal */
		{0x33000000, 0x0000},                       /* 2^-25: tie with zero, to even */
		{0x33000001, 0x0001},                       /* just above: rounds up */
		{0x33c00000, 0x0002},                       /* 1.5 * 2^-24: tie, to even (2) */
		{0x34200000, 0x0002},                       /* 2.5 * 2^-24: tie, to even (2) */
		{0x00000001, 0x0000},                       /* f32 subnormal: zero */
		{0xb3800000, 0x8001},                       /* -2^-24 */
	};
	size_t i;
	uint32_t seed = 12345, k;
	int bad = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint16_t h = mcb_f32_to_f16(from_bits(cases[i].f));

		if (h != cases[i].h)
			mcbt_fail(__FILE__, __LINE__, "f32 0x%08x -> f16 0x%04x, expected 0x%04x",
				  cases[i].f, h, cases[i].h);
	}
	/* NaN stays NaN (quiet), whatever its payload */
	CHECK((mcb_f32_to_f16(from_bits(0x7f800001)) & 0x7c00) == 0x7c00);
	CHECK((mcb_f32_to_f16(from_bits(0x7f800001)) & 0x3ff) != 0);
	CHECK(mcb_f32_to_f16(from_bits(0xffc00000)) == 0xfe00);
	/* random floats in the half range against the brute-force reference */
	for (k = 0; k < 300; k++) {
		float f;

		seed = seed * 1664525u + 1013904223u;
		f = from_bits((seed & 0x807fffff) | ((100u + (seed >> 8) % 45u) << 23));
		if (mcb_f32_to_f16(f) != f16_ref(f))
			bad++;
	}
	CHECK_EQ(bad, 0);
}

static void test_bf16(void)
{
	uint32_t i;
	int bad = 0;

	for (i = 0; i < 65536; i++) {
		float f = mcb_bf16_to_f32((uint16_t)i);

		if (bits(f) != i << 16)
			bad++;
		if (!isnan(f) && mcb_f32_to_bf16(f) != i)
			bad++;
		if (isnan(f) && !isnan(mcb_bf16_to_f32(mcb_f32_to_bf16(f))))
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x3f808000)), 0x3f80); /* tie, to even (down) */
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x3f818000)), 0x3f82); /* tie, to even (up) */
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x3f808001)), 0x3f81);
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x7f800001)) & 0x7f80, 0x7f80);
	CHECK(mcb_f32_to_bf16(from_bits(0x7f800001)) & 0x7f);     /* still a NaN */
	CHECK_EQ(mcb_f32_to_bf16(from_bits(0x00000001)), 0x0000);
}

static void test_to_f32(void)
{
	struct mcb_errctx e;
	unsigned char raw[9];
	float out[4];
	struct mcb_tensor t = {.name = "x", .ndim = 2, .shape = {2, 2}};

	/* F16 data at an odd address: the loads must not assume alignment */
	raw[1] = 0x00, raw[2] = 0x3c; /* 1.0 */
	raw[3] = 0x00, raw[4] = 0xc0; /* -2.0 */
	raw[5] = 0x01, raw[6] = 0x00; /* 2^-24 */
	raw[7] = 0x00, raw[8] = 0x7c; /* inf */
	t.dtype = MCB_DT_F16;
	t.data = raw + 1;
	t.nbytes = 8;
	CHECK_EQ(mcb_tensor_numel(&t), 4);
	CHECK_OK(mcb_tensor_to_f32(&t, out, &e), &e);
	CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24) && isinf(out[3]));
	t.dtype = MCB_DT_BF16;
	raw[1] = 0x80, raw[2] = 0x3f; /* 1.0 */
	CHECK_OK(mcb_tensor_to_f32(&t, out, &e), &e);
	CHECK(out[0] == 1.0f);
	t.dtype = MCB_DT_F32;
	{
		float in[4] = {1.5f, -0.0f, 3e38f, 1e-45f};

		t.data = in;
		t.nbytes = 16;
		CHECK_OK(mcb_tensor_to_f32(&t, out, &e), &e);
		CHECK(memcmp(in, out, 16) == 0);
	}
	t.dtype = MCB_DT_I8;
	CHECK_ERR(mcb_tensor_to_f32(&t, out, &e), &e, MCB_EUNSUP, "tensor 'x': cannot convert I8");
	t.ndim = 0;
	CHECK_EQ(mcb_tensor_numel(&t), 1);
}

int main(void)
{
	RUN(test_dtype_table);
	RUN(test_nbytes);
	RUN(test_f16_exhaustive);
	RUN(test_f32_to_f16_rounding);
	RUN(test_bf16);
	RUN(test_to_f32);
	return mcbt_done();
}
