/*
 * safetensors: reader and writer (huggingface/safetensors format).
 *
 * u64 N little-endian; N bytes of UTF-8 JSON (may be space-padded); data.
 * The reader rejects N > 100,000,000, duplicate names, unknown dtypes, holes
 * or overlaps in data_offsets (the tensors must cover the buffer exactly),
 * sizes that disagree with dtype x shape, and trailing bytes.
 */
#ifndef MCB_SAFETENSORS_H
#define MCB_SAFETENSORS_H

#include <stddef.h>

#include "mcb/arena.h"
#include "mcb/os.h"
#include "mcb/tensor.h"

struct json_t;
struct mcb_errctx;

#define MCB_ST_MAX_HEADER 100000000u

struct mcb_st_file {
	struct mcb_arena arena;
	struct mcb_map map;
	struct mcb_tensor *tensors; /* borrowed data pointing into map, in data order; names
	                               unique; data may be unaligned in files mcbuild did
	                               not write (mcb_model_add_mapped copies those) */
	size_t ntensors;
	struct json_t *metadata;    /* "__metadata__" object (string values only) or NULL; owned */
};

/* Map and validate path; every error names it.  On failure f is left closed. */
int mcb_st_open(const char *path, struct mcb_st_file *f, struct mcb_errctx *e);
void mcb_st_close(struct mcb_st_file *f);

/*
 * Write n tensors and an optional string->string metadata object to path
 * (not atomically).  Tensors are laid out sorted by descending dtype
 * alignment, then name; the header is padded with spaces to a multiple of 8.
 * Output is deterministic for equal inputs.
 */
int mcb_st_write(const char *path, const struct mcb_tensor *const *tensors, size_t n,
		 const struct json_t *metadata, struct mcb_errctx *e);

#endif
