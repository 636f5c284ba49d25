/*
 * gguf: reader and writer for GGUF v3 (ggml-org/ggml docs/gguf.md).
 *
 * The reader maps the file and validates it as hostile input: checked
 * arithmetic, caps on counts and string lengths, strict tensor offsets (each
 * must equal the running padded sum, as ggml requires), data within the file.
 * The writer produces exactly that layout.
 */
#ifndef MCB_GGUF_H
#define MCB_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/arena.h"
#include "mcb/os.h"

struct json_t;
struct mcb_errctx;

#define MCB_GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define MCB_GGUF_VERSION 3
#define MCB_GGUF_DEFAULT_ALIGN 32
#define MCB_GGUF_MAX_DIMS 4
#define MCB_GGUF_MAX_NAME 63 /* tensor names are shorter than 64 bytes */

enum mcb_gguf_vtype {
	MCB_GGUF_U8 = 0,
	MCB_GGUF_I8 = 1,
	MCB_GGUF_U16 = 2,
	MCB_GGUF_I16 = 3,
	MCB_GGUF_U32 = 4,
	MCB_GGUF_I32 = 5,
	MCB_GGUF_F32 = 6,
	MCB_GGUF_BOOL = 7,
	MCB_GGUF_STR = 8,
	MCB_GGUF_ARR = 9,
	MCB_GGUF_U64 = 10,
	MCB_GGUF_I64 = 11,
	MCB_GGUF_F64 = 12
};

struct mcb_gguf_str {
	const char *s; /* NUL-terminated copy (may contain no NUL inside: checked) */
	uint64_t len;
};

struct mcb_gguf_value {
	uint32_t type; /* enum mcb_gguf_vtype */
	union {
		uint64_t u;   /* U8 U16 U32 U64 BOOL */
		int64_t i;    /* I8 I16 I32 I64 */
		double f;     /* F32 F64 */
		struct mcb_gguf_str str;
		struct {
			uint32_t type;    /* element type; never ARR (nested arrays are rejected) */
			uint64_t count;
			const void *data; /* numeric: count packed little-endian elements of the
			                     element type, inside the map and possibly unaligned
			                     (load with memcpy); STR: count struct mcb_gguf_str */
		} arr;
	} v;
};

struct mcb_gguf_kv {
	const char *key;
	struct mcb_gguf_value val;
};

struct mcb_gguf_tensor {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[MCB_GGUF_MAX_DIMS]; /* ne[0] is contiguous; unused entries are 1 */
	uint32_t type;                  /* ggml type id */
	uint64_t offset;                /* relative to the data section */
	uint64_t nbytes;                /* computed from ne and type */
	const void *data;               /* inside the map */
};

struct mcb_gguf {
	struct mcb_arena arena; /* keys, strings, string arrays, infos */
	struct mcb_map map;     /* the whole file; numeric arrays and tensor data point into it */
	uint32_t version;       /* MCB_GGUF_VERSION */
	uint64_t alignment;     /* general.alignment or 32; a power of two <= 65536 */
	struct mcb_gguf_kv *kv; /* nkv entries in file order, keys unique */
	size_t nkv;
	struct mcb_gguf_tensor *tensors; /* ntensors entries in file order, names unique,
	                                    offsets the running padded sum, data inside map */
	size_t ntensors;
	uint64_t data_offset;   /* file offset of the data section, a multiple of alignment */
};

/* Map and validate path.  Every error names the file and the byte offset.
 * On failure g is left closed (mcb_gguf_close is harmless). */
int mcb_gguf_open(const char *path, struct mcb_gguf *g, struct mcb_errctx *e);
void mcb_gguf_close(struct mcb_gguf *g);
const struct mcb_gguf_kv *mcb_gguf_find(const struct mcb_gguf *g, const char *key);
const struct mcb_gguf_tensor *mcb_gguf_find_tensor(const struct mcb_gguf *g, const char *name);

/* Writer: collect keys and tensors, then write the file in one pass. */
struct mcb_gguf_writer;

struct mcb_gguf_writer *mcb_gguf_writer_new(void);
void mcb_gguf_writer_free(struct mcb_gguf_writer *w);
/* Add a key (copied deeply; later keys with the same name replace earlier ones
 * and keep the first one's position).  An invalid key or value (bad type, a
 * value outside its type's range, a string with NUL) is remembered and makes
 * mcb_gguf_write fail with a message naming the key. */
void mcb_gguf_set(struct mcb_gguf_writer *w, const char *key, const struct mcb_gguf_value *v);
void mcb_gguf_set_u32(struct mcb_gguf_writer *w, const char *key, uint32_t v);
void mcb_gguf_set_i32(struct mcb_gguf_writer *w, const char *key, int32_t v);
void mcb_gguf_set_f32(struct mcb_gguf_writer *w, const char *key, float v);
void mcb_gguf_set_bool(struct mcb_gguf_writer *w, const char *key, int v);
void mcb_gguf_set_str(struct mcb_gguf_writer *w, const char *key, const char *s);
/*
 * Set every key of gguf, the typed JSON form of passthrough metadata that
 * mcb_gguf_read_model keeps in meta["gguf"] (shape specified in
 * runtime/gguf.c), so that an exporter writes the values back bit-exactly.
 * gguf may be NULL.  Returns 0, or MCB_EFORMAT naming the first bad key.
 */
int mcb_gguf_set_meta(struct mcb_gguf_writer *w, const struct json_t *gguf, struct mcb_errctx *e);
/*
 * Set a placeholder SentencePiece-style vocabulary of n tokens (n >= 259):
 * <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then fillers <tokN>,
 * scores 0, BOS 1, EOS 2, UNK 0.  For models that carry no tokenizer
 * (llama2.c checkpoints): llama.cpp loads the file and runs token ids.
 */
int mcb_gguf_set_placeholder_vocab(struct mcb_gguf_writer *w, int64_t n, struct mcb_errctx *e);

/* Order the keys general.architecture first, then by name, so that equal
 * content gives equal files whatever order the keys were set in. */
void mcb_gguf_sort_keys(struct mcb_gguf_writer *w);
/* Add a tensor; data (nbytes, borrowed until mcb_gguf_write returns) must
 * match ne and type.  ne is in GGUF order (ne[0] contiguous). */
int mcb_gguf_add_tensor(struct mcb_gguf_writer *w, const char *name, uint32_t ggml_type,
			uint32_t n_dims, const uint64_t *ne, const void *data, uint64_t nbytes,
			struct mcb_errctx *e);
/* Write the file to path (not atomically: callers write into a scratch dir). */
int mcb_gguf_write(struct mcb_gguf_writer *w, const char *path, struct mcb_errctx *e);

#endif
