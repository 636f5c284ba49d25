/*
 * tensor: element types (dtypes), their traits, half-precision conversions and
 * the tensor descriptor shared by every model format.
 *
 * Shapes are row-major, outermost dimension first (PyTorch order): a linear
 * layer's weight is [out, in] and in is contiguous.  GGUF's ne[] is the reverse.
 */
#ifndef MCB_TENSOR_H
#define MCB_TENSOR_H

#include <stddef.h>
#include <stdint.h>

struct mcb_errctx;

enum mcb_dtype {
	MCB_DT_F32,
	MCB_DT_F16,
	MCB_DT_BF16,
	MCB_DT_F64,
	MCB_DT_I8,
	MCB_DT_U8,
	MCB_DT_I16,
	MCB_DT_U16,
	MCB_DT_I32,
	MCB_DT_U32,
	MCB_DT_I64,
	MCB_DT_U64,
	MCB_DT_BOOL,
	MCB_DT_F8_E4M3,
	MCB_DT_F8_E5M2,
	/* ggml block types: only found in GGUF files, never in safetensors */
	MCB_DT_Q8_0,
	MCB_DT_Q4_0,
	MCB_DT_Q4_1,
	MCB_DT_Q4_K,
	MCB_DT_Q6_K,
	MCB_DT_COUNT
};

struct mcb_dtype_info {
	const char *name;     /* "F32", "Q8_0": safetensors spelling where one exists */
	unsigned block;       /* elements per block (1 for plain types) */
	unsigned block_bytes; /* bytes per block */
	int ggml_type;        /* GGUF type id, -1 when GGUF cannot store it */
	int in_safetensors;   /* 1 when safetensors can store it */
};

/* Traits of t (t must be < MCB_DT_COUNT). */
const struct mcb_dtype_info *mcb_dtype_info(enum mcb_dtype t);

/* dtype from its safetensors name ("F32"), or -1. */
int mcb_dtype_from_name(const char *name);

/* dtype from a GGUF type id, or -1 for ids mcbuild does not know. */
int mcb_dtype_from_ggml(uint32_t ggml_type);

/*
 * Bytes needed for n elements of t, overflow-checked.  Returns 0, or
 * MCB_ERANGE when n is not a multiple of the block size or the size overflows.
 */
int mcb_dtype_nbytes(enum mcb_dtype t, uint64_t n, uint64_t *bytes);

/* IEEE half and bfloat16 conversions, round to nearest even, NaN preserved. */
float mcb_f16_to_f32(uint16_t h);
uint16_t mcb_f32_to_f16(float f);
float mcb_bf16_to_f32(uint16_t h);
uint16_t mcb_f32_to_bf16(float f);

#define MCB_MAX_DIMS 8

struct mcb_tensor {
	const char *name;             /* owned by the model's arena */
	enum mcb_dtype dtype;
	int ndim;                     /* 0..MCB_MAX_DIMS; 0 is a scalar */
	int64_t shape[MCB_MAX_DIMS];  /* outermost first; every entry >= 0 */
	void *data;                   /* nbytes bytes, little-endian elements */
	size_t nbytes;                /* == mcb_dtype_nbytes(dtype, numel) */
	int owned;                    /* 1: data is malloc'd and freed with the model; 0: borrowed */
};

/* Number of elements (product of shape; 1 for a scalar).  Shapes are
 * validated by the readers, so the product does not overflow. */
uint64_t mcb_tensor_numel(const struct mcb_tensor *t);

/*
 * Convert n elements of an F32, F16 or BF16 tensor's data to float.
 * Returns 0, or MCB_EUNSUP for other dtypes.
 */
int mcb_tensor_to_f32(const struct mcb_tensor *t, float *out, struct mcb_errctx *e);

#endif
