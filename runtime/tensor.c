/*
 * tensor: the dtype table, checked sizes, IEEE half and bfloat16 conversions.
 *
 * The conversions work on bit patterns only (no FPU rounding mode, no
 * F16C), so that they give the same bits on every host: round to nearest,
 * ties to even; subnormals, infinities and signed zeros exact; NaN stays NaN
 * with its sign and as much of its payload as the narrower type holds.
 */
#include <string.h>

#include "mcb/err.h"
#include "mcb/tensor.h"

/* Tensor data is little-endian in every format mcbuild reads; plain loads of
 * whole F32 arrays (memcpy) rely on the host being little-endian too. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mcbuild assumes a little-endian host"
#endif

/*
 * One row per dtype, indexed by enum mcb_dtype.  Names are safetensors'
 * spelling; ggml ids are those of ggml.h's enum ggml_type where GGUF has the
 * type (I8=24 I16=25 I32=26 I64=27 F64=28 BF16=30, Q8_0=8).
 */
static const struct mcb_dtype_info dtypes[MCB_DT_COUNT] = {
	[MCB_DT_F32] = {"F32", 1, 4, 0, 1},
	[MCB_DT_F16] = {"F16", 1, 2, 1, 1},
	[MCB_DT_BF16] = {"BF16", 1, 2, 30, 1},
	[MCB_DT_F64] = {"F64", 1, 8, 28, 1},
	[MCB_DT_I8] = {"I8", 1, 1, 24, 1},
	[MCB_DT_U8] = {"U8", 1, 1, -1, 1},
	[MCB_DT_I16] = {"I16", 1, 2, 25, 1},
	[MCB_DT_U16] = {"U16", 1, 2, -1, 1},
	[MCB_DT_I32] = {"I32", 1, 4, 26, 1},
	[MCB_DT_U32] = {"U32", 1, 4, -1, 1},
	[MCB_DT_I64] = {"I64", 1, 8, 27, 1},
	[MCB_DT_U64] = {"U64", 1, 8, -1, 1},
	[MCB_DT_BOOL] = {"BOOL", 1, 1, -1, 1},
	[MCB_DT_F8_E4M3] = {"F8_E4M3", 1, 1, -1, 1},
	[MCB_DT_F8_E5M2] = {"F8_E5M2", 1, 1, -1, 1},
	[MCB_DT_Q8_0] = {"Q8_0", 32, 34, 8, 0},
	/* ggml src/ggml-common.h: block_q4_0, block_q4_1, block_q4_K, block_q6_K */
	[MCB_DT_Q4_0] = {"Q4_0", 32, 18, 2, 0},
	[MCB_DT_Q4_1] = {"Q4_1", 32, 20, 3, 0},
	[MCB_DT_Q4_K] = {"Q4_K", 256, 144, 12, 0},
	[MCB_DT_Q6_K] = {"Q6_K", 256, 210, 14, 0},
};

const struct mcb_dtype_info *mcb_dtype_info(enum mcb_dtype t)
{
	return &dtypes[t];
}

int mcb_dtype_from_name(const char *name)
{
	int t;

	for (t = 0; t < MCB_DT_COUNT; t++)
		if (!strcmp(dtypes[t].name, name))
			return t;
	return -1;
}

int mcb_dtype_from_ggml(uint32_t ggml_type)
{
	int t;

	for (t = 0; t < MCB_DT_COUNT; t++)
		if (dtypes[t].ggml_type >= 0 && (uint32_t)dtypes[t].ggml_type == ggml_type)
			return t;
	return -1;
}

int mcb_dtype_nbytes(enum mcb_dtype t, uint64_t n, uint64_t *bytes)
{
	const struct mcb_dtype_info *d = &dtypes[t];

	if (n % d->block)
		return MCB_ERANGE;
	if (__builtin_mul_overflow(n / d->block, (uint64_t)d->block_bytes, bytes))
		return MCB_ERANGE;
	return 0;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

float mcb_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;

	if (exp == 0x1f) /* inf, NaN: payload moves to the top of the f32 mantissa */
		return bits_f32(sign | 0x7f800000u | mant << 13);
	if (exp == 0) {
		if (mant == 0)
			return bits_f32(sign);
		/* subnormal mant * 2^-24: normalise so the leading 1 lands on bit 10 */
		exp = 113; /* 127 - 14 */
		while (!(mant & 0x400)) {
			mant <<= 1;
			exp--;
		}
		return bits_f32(sign | exp << 23 | (mant & 0x3ff) << 13);
	}
	return bits_f32(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t mcb_f32_to_f16(float f)
{
	uint32_t x = f32_bits(f);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t h, rem, m, shift, half;

	x &= 0x7fffffffu;
	if (x > 0x7f800000u) { /* NaN: keep the top payload bits, never turn into inf */
		h = (x >> 13) & 0x3ff;
		return (uint16_t)(sign | 0x7c00 | (h ? h : 0x200));
	}
	if (x >= 0x477ff000u) /* >= 65520 (half-way past the largest half, 65504) or inf */
		return (uint16_t)(sign | 0x7c00);
	if (x < 0x38800000u) { /* below 2^-14: a half subnormal or zero */
		if (x < 0x33000000u) /* below 2^-25, half the smallest subnormal */
			return (uint16_t)sign;
		/* value = m * 2^(e - 150); in units of 2^-24 that is m >> (126 - e) */
		m = (x & 0x7fffff) | 0x800000;
		shift = 126 - (x >> 23); /* 14..24 */
		h = m >> shift;
		rem = m & ((1u << shift) - 1);
		half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++; /* may carry into the smallest normal, which is the right encoding */
		return (uint16_t)(sign | h);
	}
	/* normal: rebias the exponent (127 -> 15), keep 10 mantissa bits, round */
	h = (x >> 13) - (112u << 10);
	rem = x & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* a carry into the exponent is correct rounding */
	return (uint16_t)(sign | h);
}

float mcb_bf16_to_f32(uint16_t h)
{
	return bits_f32((uint32_t)h << 16);
}

uint16_t mcb_f32_to_bf16(float f)
{
	uint32_t x = f32_bits(f);

	if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: truncate, keep it a (quiet) NaN */
		return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

uint64_t mcb_tensor_numel(const struct mcb_tensor *t)
{
	uint64_t n = 1;
	int i;

	for (i = 0; i < t->ndim; i++)
		n *= (uint64_t)t->shape[i];
	return n;
}

int mcb_tensor_to_f32(const struct mcb_tensor *t, float *out, struct mcb_errctx *e)
{
	const unsigned char *p = t->data;
	uint64_t n = mcb_tensor_numel(t), i;
	uint16_t h;

	switch (t->dtype) {
	case MCB_DT_F32:
		if (n)
			memcpy(out, p, n * 4);
		return 0;
	case MCB_DT_F16:
		for (i = 0; i < n; i++) {
			h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
			out[i] = mcb_f16_to_f32(h);
		}
		return 0;
	case MCB_DT_BF16:
		for (i = 0; i < n; i++) {
			h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
			out[i] = mcb_bf16_to_f32(h);
		}
		return 0;
	default:
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s': cannot convert %s to F32",
				t->name ? t->name : "?", dtypes[t->dtype].name);
	}
}
