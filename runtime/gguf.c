/*
 * gguf: GGUF v3 reader and writer (ggml-org/ggml docs/gguf.md, src/gguf.cpp).
 *
 * File layout, little-endian throughout:
 *
 *   u32 magic "GGUF" (0x46554747), u32 version (3), u64 n_tensors, u64 n_kv
 *   n_kv times:      str key, u32 value type, value
 *   n_tensors times: str name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset
 *   zero padding to the alignment (general.alignment, a u32 power of two,
 *   default 32), which is where the data section starts
 *   tensor data: tensor i at data start + offset_i; every offset is the sum
 *   of the previous tensors' sizes, each rounded up to the alignment; the
 *   writer pads every tensor (the last one too) with zeros
 *
 *   str   = u64 length + bytes (no terminator)
 *   value = u8 i8 u16 i16 u32 i32 f32 (4 bytes) bool (1 byte, 0 or 1) str
 *           u64 i64 f64, or an array: u32 element type, u64 count, elements
 *   type ids: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool, 8 str,
 *             9 array, 10 u64, 11 i64, 12 f64
 *
 * Reader limits (hostile input): version 3 only; at most 2^20 keys and 2^20
 * tensors, and no more than the remaining bytes could hold; keys 1..65535
 * bytes; string values at most 2^24 bytes; no NUL inside any string; array
 * counts bounded by the remaining bytes; no nested arrays; bools 0 or 1;
 * unique keys and tensor names; tensor names 1..63 bytes; 1..4 dimensions,
 * each ne < 2^63 with a product < 2^63; a type id mcbuild knows; ne[0] a
 * multiple of the type's block; offsets exactly the running padded sum;
 * every tensor's bytes inside the file; memory for the parsed header at most
 * a small multiple of the file size.  Errors name the file and, where one
 * applies, the byte offset of the offending field.
 *
 * Passthrough metadata (mcb_gguf_read_model, mcb_gguf_set_meta).  GGUF keys
 * that are not llama hyper-parameters travel in the model's meta["gguf"], a
 * JSON object mapping each key to its typed value:
 *
 *   {"type": "u8"|"i8"|"u16"|"i16"|"u32"|"i32"|"u64"|"i64", "value": integer}
 *       (a u64 above 2^63-1 is a decimal string: "18446744073709551615")
 *   {"type": "bool", "value": true|false}
 *   {"type": "f32"|"f64", "value": number}
 *       (canonical JSON prints a real so that it reads back as the same double,
 *       so the value comes back exactly; inf and NaN, which JSON cannot hold, are the raw IEEE
 *       bits as a hex string: "0x7fc00000" for f32, 16 hex digits for f64)
 *   {"type": "str", "value": "text"}  (strings must be valid UTF-8)
 *   {"type": "arr", "elem": "<element type>", "value": [element, ...]}
 *       (elements encoded as the scalar "value"s above; elem is never "arr")
 *
 * Writing these back with mcb_gguf_set_meta reproduces every value bit for
 * bit, except that a signalling NaN in a scalar f32/f64 comes back quiet.
 * Array elements are kept exactly.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/tensor.h"

#define MAX_TENSORS (1u << 20)
#define MAX_KV (1u << 20)
#define MAX_KEY 65535u
#define MAX_STR (1u << 24)
#define MAX_ALIGN 65536u
#define NTYPES 13

/* Element sizes by value type (0: variable size). */
static const unsigned vsize[NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
static const char *const vnames[NTYPES] = {"u8",  "i8",  "u16", "i16", "u32", "i32", "f32",
					   "bool", "str", "arr", "u64", "i64", "f64"};

static const char *vtype_name(uint32_t t)
{
	return t < NTYPES ? vnames[t] : "?";
}

static uint64_t ld_le(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void st_le(unsigned char *p, uint64_t v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static float u32_to_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

static uint32_t f32_to_u32(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static double u64_to_f64(uint64_t u)
{
	double f;

	memcpy(&f, &u, 8);
	return f;
}

static uint64_t f64_to_u64(double f)
{
	uint64_t u;

	memcpy(&u, &f, 8);
	return u;
}

/* Round v up to a multiple of align (a power of two); -1 on overflow. */
static int pad_up(uint64_t v, uint64_t align, uint64_t *out)
{
	if (__builtin_add_overflow(v, align - 1, out))
		return -1;
	*out &= ~(align - 1);
	return 0;
}

/* ---- reader ---- */

/* Parsing state over the mapped file. */
struct rd {
	struct mcb_gguf *g;
	const char *path;
	struct mcb_errctx *e;
	size_t pos;      /* next byte to read; <= g->map.size */
	uint64_t budget; /* arena bytes the header may still use */
};

static int bad(struct rd *r, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(struct rd *r, size_t at, const char *fmt, ...)
{
	char msg[MCB_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mcb_errf(r->e, MCB_EFORMAT, "'%s' at byte %zu: %s", r->path, at, msg);
}

static size_t left(const struct rd *r)
{
	return r->g->map.size - r->pos;
}

/* Take n bytes for the field called what. */
static int need(struct rd *r, size_t n, const char *what, const unsigned char **p)
{
	if (n > left(r))
		return bad(r, r->pos, "file ends inside the %s (needs %zu bytes, %zu left)", what, n,
			   left(r));
	*p = r->g->map.data + r->pos;
	r->pos += n;
	return 0;
}

static int rd_u32(struct rd *r, const char *what, uint32_t *v)
{
	const unsigned char *p = NULL;
	int rc = need(r, 4, what, &p);

	if (!rc)
		*v = (uint32_t)ld_le(p, 4);
	return rc;
}

static int rd_u64(struct rd *r, const char *what, uint64_t *v)
{
	const unsigned char *p = NULL;
	int rc = need(r, 8, what, &p);

	if (!rc)
		*v = ld_le(p, 8);
	return rc;
}

/* Arena memory, charged to the budget. */
static void *alloc(struct rd *r, size_t n, size_t at, int *rc)
{
	if (n > r->budget) {
		*rc = bad(r, at, "the header needs more memory than a file of %zu bytes may use",
			  r->g->map.size);
		return NULL;
	}
	r->budget -= n;
	*rc = 0;
	return mcb_arena_alloc(&r->g->arena, n);
}

/* A string of at most max bytes, copied NUL-terminated. */
static int rd_str(struct rd *r, uint64_t max, const char *what, struct mcb_gguf_str *s)
{
	size_t at = r->pos;
	const unsigned char *p = NULL;
	uint64_t len;
	char *copy;
	int rc;

	if ((rc = rd_u64(r, what, &len)))
		return rc;
	if (len > max)
		return bad(r, at, "%s length %" PRIu64 " exceeds the limit of %" PRIu64, what, len, max);
	if ((rc = need(r, (size_t)len, what, &p)))
		return rc;
	if (memchr(p, 0, (size_t)len))
		return bad(r, at, "%s contains a NUL byte", what);
	s->len = len;
	if (len == 0) {
		s->s = "";
		return 0;
	}
	if (!(copy = alloc(r, (size_t)len + 1, at, &rc)))
		return rc;
	memcpy(copy, p, (size_t)len);
	s->s = copy;
	return 0;
}

/* One value of type t (not an array element of a nested array). */
static int rd_value(struct rd *r, uint32_t t, struct mcb_gguf_value *v, const char *key)
{
	size_t at = r->pos;
	const unsigned char *p = NULL;
	uint64_t count, bytes, i;
	struct mcb_gguf_str *strs;
	int rc;

	v->type = t;
	switch (t) {
	case MCB_GGUF_STR:
		return rd_str(r, MAX_STR, "string value", &v->v.str);
	case MCB_GGUF_ARR:
		if ((rc = rd_u32(r, "array element type", &v->v.arr.type)) ||
		    (rc = rd_u64(r, "array count", &count)))
			return rc;
		if (v->v.arr.type == MCB_GGUF_ARR)
			return bad(r, at, "key '%s': nested arrays are not supported", key);
		if (v->v.arr.type >= NTYPES)
			return bad(r, at, "key '%s': unknown array element type %" PRIu32, key,
				   v->v.arr.type);
		v->v.arr.count = count;
		if (v->v.arr.type == MCB_GGUF_STR) {
			/* every string takes at least its 8-byte length */
			if (count > left(r) / 8)
				return bad(r, at + 4, "key '%s': array count %" PRIu64
					   " exceeds what the remaining %zu bytes can hold", key, count,
					   left(r));
			strs = alloc(r, (size_t)count * sizeof(*strs), at, &rc);
			if (!strs && count)
				return rc;
			for (i = 0; i < count; i++)
				if ((rc = rd_str(r, MAX_STR, "string value", &strs[i])))
					return rc;
			v->v.arr.data = strs;
			return 0;
		}
		if (count > left(r) / vsize[v->v.arr.type])
			return bad(r, at + 4, "key '%s': array count %" PRIu64
				   " exceeds what the remaining %zu bytes can hold", key, count, left(r));
		bytes = count * vsize[v->v.arr.type];
		v->v.arr.data = r->g->map.data + r->pos; /* packed little-endian, in the map */
		if (v->v.arr.type == MCB_GGUF_BOOL)
			for (i = 0; i < count; i++)
				if (r->g->map.data[r->pos + i] > 1)
					return bad(r, r->pos + i, "key '%s': bool element %" PRIu64
						   " is %u, not 0 or 1", key, i,
						   r->g->map.data[r->pos + i]);
		r->pos += (size_t)bytes;
		return 0;
	default:
		if (t >= NTYPES)
			return bad(r, at - 4, "key '%s' has unknown value type %" PRIu32, key, t);
		if ((rc = need(r, vsize[t], "value", &p)))
			return rc;
		switch (t) {
		case MCB_GGUF_U8: case MCB_GGUF_U16: case MCB_GGUF_U32: case MCB_GGUF_U64:
			v->v.u = ld_le(p, vsize[t]);
			break;
		case MCB_GGUF_BOOL:
			if (p[0] > 1)
				return bad(r, at, "key '%s': bool value is %u, not 0 or 1", key, p[0]);
			v->v.u = p[0];
			break;
		case MCB_GGUF_I8:
			v->v.i = (int8_t)p[0];
			break;
		case MCB_GGUF_I16:
			v->v.i = (int16_t)(uint16_t)ld_le(p, 2);
			break;
		case MCB_GGUF_I32:
			v->v.i = (int32_t)(uint32_t)ld_le(p, 4);
			break;
		case MCB_GGUF_I64:
			v->v.i = (int64_t)ld_le(p, 8);
			break;
		case MCB_GGUF_F32:
			v->v.f = u32_to_f32((uint32_t)ld_le(p, 4));
			break;
		case MCB_GGUF_F64:
			v->v.f = u64_to_f64(ld_le(p, 8));
			break;
		}
		return 0;
	}
}

static int cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct mcb_gguf_kv *)a)->key, ((const struct mcb_gguf_kv *)b)->key);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys must be unique (ggml refuses duplicates; a lookup would be ambiguous). */
static int check_unique_keys(struct rd *r)
{
	struct mcb_gguf_kv *sorted;
	size_t i, n = r->g->nkv;
	int rc = 0;

	if (n < 2)
		return 0;
	sorted = mcb_xcalloc(n, sizeof(*sorted));
	memcpy(sorted, r->g->kv, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_kv);
	for (i = 1; i < n && !rc; i++)
		if (!strcmp(sorted[i - 1].key, sorted[i].key))
			rc = mcb_errf(r->e, MCB_EFORMAT, "'%s': duplicate key '%s'", r->path,
				      sorted[i].key);
	free(sorted);
	return rc;
}

static int check_unique_tensors(struct rd *r)
{
	const char **names;
	size_t i, n = r->g->ntensors;
	int rc = 0;

	if (n < 2)
		return 0;
	names = mcb_xcalloc(n, sizeof(*names));
	for (i = 0; i < n; i++)
		names[i] = r->g->tensors[i].name;
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 1; i < n && !rc; i++)
		if (!strcmp(names[i - 1], names[i]))
			rc = mcb_errf(r->e, MCB_EFORMAT, "'%s': duplicate tensor name '%s'", r->path,
				      names[i]);
	free(names);
	return rc;
}

/* The header up to the tensor infos. */
static int rd_kvs(struct rd *r, uint64_t *n_tensors)
{
	struct mcb_gguf *g = r->g;
	struct mcb_gguf_str key;
	uint64_t n_kv, i;
	uint32_t magic, type;
	size_t at;
	int rc;

	if ((rc = rd_u32(r, "magic", &magic)))
		return rc;
	if (magic != MCB_GGUF_MAGIC)
		return bad(r, 0, "bad magic 0x%08" PRIx32 " (not a GGUF file)", magic);
	if ((rc = rd_u32(r, "version", &g->version)))
		return rc;
	if (g->version != MCB_GGUF_VERSION)
		return mcb_errf(r->e, MCB_EUNSUP, "'%s' at byte 4: GGUF version %" PRIu32
				" is not supported (only %d)", r->path, g->version, MCB_GGUF_VERSION);
	if ((rc = rd_u64(r, "tensor count", n_tensors)) || (rc = rd_u64(r, "key count", &n_kv)))
		return rc;
	if (*n_tensors > MAX_TENSORS)
		return bad(r, 8, "tensor count %" PRIu64 " exceeds the limit of %u", *n_tensors,
			   MAX_TENSORS);
	if (n_kv > MAX_KV)
		return bad(r, 16, "key count %" PRIu64 " exceeds the limit of %u", n_kv, MAX_KV);
	/* a key takes at least 8 + 1 + 4 + 1 bytes, a tensor info 8 + 1 + 4 + 8 + 4 + 8 */
	if (n_kv * 14 + *n_tensors * 33 > left(r))
		return bad(r, 8, "%" PRIu64 " tensors and %" PRIu64
			   " keys cannot fit in the remaining %zu bytes", *n_tensors, n_kv, left(r));
	g->kv = alloc(r, (size_t)n_kv * sizeof(*g->kv), 16, &rc);
	if (rc)
		return rc;
	for (i = 0; i < n_kv; i++) {
		at = r->pos;
		if ((rc = rd_str(r, MAX_KEY, "key", &key)))
			return rc;
		if (key.len == 0)
			return bad(r, at, "empty key");
		g->kv[i].key = key.s;
		at = r->pos;
		if ((rc = rd_u32(r, "value type", &type)))
			return rc;
		if (type >= NTYPES)
			return bad(r, at, "key '%s' has unknown value type %" PRIu32, key.s, type);
		if ((rc = rd_value(r, type, &g->kv[i].val, key.s)))
			return rc;
		g->nkv = (size_t)i + 1;
	}
	return check_unique_keys(r);
}

/* general.alignment, when present, must be a u32 power of two <= MAX_ALIGN. */
static int rd_alignment(struct rd *r)
{
	const struct mcb_gguf_kv *kv = mcb_gguf_find(r->g, "general.alignment");

	r->g->alignment = MCB_GGUF_DEFAULT_ALIGN;
	if (!kv)
		return 0;
	if (kv->val.type != MCB_GGUF_U32)
		return mcb_errf(r->e, MCB_EFORMAT, "'%s': general.alignment has type %s, expected u32",
				r->path, vtype_name(kv->val.type));
	if (kv->val.v.u == 0 || kv->val.v.u > MAX_ALIGN || (kv->val.v.u & (kv->val.v.u - 1)))
		return mcb_errf(r->e, MCB_EFORMAT,
				"'%s': general.alignment %" PRIu64 " is not a power of two in 1..%u",
				r->path, kv->val.v.u, MAX_ALIGN);
	r->g->alignment = kv->val.v.u;
	return 0;
}

/* Tensor infos, with the offset rule; *end gets the unpadded end of the data. */
static int rd_infos(struct rd *r, uint64_t n, uint64_t *end)
{
	struct mcb_gguf *g = r->g;
	struct mcb_gguf_tensor *t;
	struct mcb_gguf_str name;
	uint64_t i, numel, expect = 0, padded;
	uint32_t j;
	size_t at;
	int rc, dt;

	*end = 0;
	g->tensors = alloc(r, (size_t)n * sizeof(*g->tensors), r->pos, &rc);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		t = &g->tensors[i];
		at = r->pos;
		if ((rc = rd_str(r, MCB_GGUF_MAX_NAME, "tensor name", &name)))
			return rc;
		if (name.len == 0)
			return bad(r, at, "empty tensor name");
		t->name = name.s;
		at = r->pos;
		if ((rc = rd_u32(r, "dimension count", &t->n_dims)))
			return rc;
		if (t->n_dims < 1 || t->n_dims > MCB_GGUF_MAX_DIMS)
			return bad(r, at, "tensor '%s' has %" PRIu32 " dimensions (1..%d)", t->name,
				   t->n_dims, MCB_GGUF_MAX_DIMS);
		numel = 1;
		for (j = 0; j < MCB_GGUF_MAX_DIMS; j++)
			t->ne[j] = 1;
		for (j = 0; j < t->n_dims; j++) {
			at = r->pos;
			if ((rc = rd_u64(r, "dimension", &t->ne[j])))
				return rc;
			if (t->ne[j] > INT64_MAX || __builtin_mul_overflow(numel, t->ne[j], &numel) ||
			    numel > INT64_MAX)
				return bad(r, at, "tensor '%s': dimension %" PRIu32 " = %" PRIu64
					   " makes the element count overflow", t->name, j, t->ne[j]);
		}
		at = r->pos;
		if ((rc = rd_u32(r, "tensor type", &t->type)))
			return rc;
		dt = mcb_dtype_from_ggml(t->type);
		if (dt < 0)
			return bad(r, at, "tensor '%s' has unknown ggml type id %" PRIu32, t->name,
				   t->type);
		if (t->ne[0] % mcb_dtype_info((enum mcb_dtype)dt)->block)
			return bad(r, at, "tensor '%s': ne[0] = %" PRIu64 " is not a multiple of the "
				   "%s block size %u", t->name, t->ne[0],
				   mcb_dtype_info((enum mcb_dtype)dt)->name,
				   mcb_dtype_info((enum mcb_dtype)dt)->block);
		if (mcb_dtype_nbytes((enum mcb_dtype)dt, numel, &t->nbytes) || t->nbytes > INT64_MAX)
			return bad(r, at, "tensor '%s': size overflows", t->name);
		at = r->pos;
		if ((rc = rd_u64(r, "tensor offset", &t->offset)))
			return rc;
		if (t->offset != expect) {
			if (i == 0)
				return bad(r, at, "tensor '%s' offset %" PRIu64 " must be 0 (the first "
					   "tensor starts the data section)", t->name, t->offset);
			return bad(r, at, "tensor '%s' offset %" PRIu64 " does not follow the previous "
				   "tensor (expected %" PRIu64 ")", t->name, t->offset, expect);
		}
		if (__builtin_add_overflow(t->offset, t->nbytes, end) ||
		    pad_up(*end, g->alignment, &padded))
			return bad(r, at, "tensor '%s': offsets overflow", t->name);
		expect = padded;
		g->ntensors = (size_t)i + 1;
	}
	return check_unique_tensors(r);
}

int mcb_gguf_open(const char *path, struct mcb_gguf *g, struct mcb_errctx *e)
{
	struct rd r;
	uint64_t n_tensors, end, data_end;
	size_t i;
	int rc;

	memset(g, 0, sizeof(*g));
	mcb_arena_init(&g->arena);
	if ((rc = mcb_os_map(path, &g->map, e)))
		return rc;
	r.g = g;
	r.path = path;
	r.e = e;
	r.pos = 0;
	/* parsed keys, strings and infos cost a few times the bytes they come from */
	r.budget = (uint64_t)g->map.size * 4 + 65536;
	if ((rc = rd_kvs(&r, &n_tensors)) || (rc = rd_alignment(&r)) ||
	    (rc = rd_infos(&r, n_tensors, &end)))
		goto fail;
	if (pad_up(r.pos, g->alignment, &g->data_offset) ||
	    __builtin_add_overflow(g->data_offset, end, &data_end)) {
		rc = bad(&r, r.pos, "data section offset overflows");
		goto fail;
	}
	if (g->ntensors && data_end > g->map.size) {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': tensor data ends at byte %" PRIu64
			      " but the file has %zu bytes (data section starts at byte %" PRIu64 ")",
			      path, data_end, g->map.size, g->data_offset);
		goto fail;
	}
	for (i = 0; i < g->ntensors; i++)
		g->tensors[i].data = g->map.data + g->data_offset + g->tensors[i].offset;
	return 0;
fail:
	mcb_gguf_close(g);
	return rc;
}

void mcb_gguf_close(struct mcb_gguf *g)
{
	mcb_arena_release(&g->arena);
	mcb_os_unmap(&g->map);
	g->kv = NULL;
	g->tensors = NULL;
	g->nkv = g->ntensors = 0;
}

const struct mcb_gguf_kv *mcb_gguf_find(const struct mcb_gguf *g, const char *key)
{
	size_t i;

	for (i = 0; i < g->nkv; i++)
		if (!strcmp(g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

const struct mcb_gguf_tensor *mcb_gguf_find_tensor(const struct mcb_gguf *g, const char *name)
{
	size_t i;

	for (i = 0; i < g->ntensors; i++)
		if (!strcmp(g->tensors[i].name, name))
			return &g->tensors[i];
	return NULL;
}

/* ---- writer ---- */

struct wtensor {
	const char *name;               /* in the writer's arena, 1..63 bytes, unique */
	uint32_t n_dims;                /* 1..4 */
	uint64_t ne[MCB_GGUF_MAX_DIMS]; /* unused entries 1 */
	uint32_t type;                  /* a ggml id mcbuild knows */
	const void *data;               /* borrowed until mcb_gguf_write returns */
	uint64_t nbytes;                /* == size of ne x type */
};

struct mcb_gguf_writer {
	struct mcb_arena arena;  /* keys, deep copies of values, tensor names */
	struct mcb_gguf_kv *kv;  /* nkv entries in first-set order, keys unique */
	size_t nkv, kvcap;
	struct wtensor *t;       /* nt entries in add order */
	size_t nt, tcap;
	struct mcb_errctx err;   /* first error of a setter (they return nothing); code 0: none */
};

struct mcb_gguf_writer *mcb_gguf_writer_new(void)
{
	struct mcb_gguf_writer *w = mcb_xcalloc(1, sizeof(*w));

	mcb_arena_init(&w->arena);
	return w;
}

void mcb_gguf_writer_free(struct mcb_gguf_writer *w)
{
	if (!w)
		return;
	mcb_arena_release(&w->arena);
	free(w->kv);
	free(w->t);
	free(w);
}

/* Remember the first setter error; mcb_gguf_write reports it. */
static void set_error(struct mcb_gguf_writer *w, const char *key, const char *what)
{
	if (!w->err.code)
		mcb_errf(&w->err, MCB_EINVAL, "gguf key '%s': %s", key, what);
}

/* A value must fit its declared type for the bytes to say what it means. */
static int check_scalar(uint32_t t, const struct mcb_gguf_value *v)
{
	switch (t) {
	case MCB_GGUF_U8: return v->v.u <= UINT8_MAX ? 0 : -1;
	case MCB_GGUF_U16: return v->v.u <= UINT16_MAX ? 0 : -1;
	case MCB_GGUF_U32: return v->v.u <= UINT32_MAX ? 0 : -1;
	case MCB_GGUF_BOOL: return v->v.u <= 1 ? 0 : -1;
	case MCB_GGUF_I8: return v->v.i >= INT8_MIN && v->v.i <= INT8_MAX ? 0 : -1;
	case MCB_GGUF_I16: return v->v.i >= INT16_MIN && v->v.i <= INT16_MAX ? 0 : -1;
	case MCB_GGUF_I32: return v->v.i >= INT32_MIN && v->v.i <= INT32_MAX ? 0 : -1;
	default: return 0;
	}
}

static int copy_str(struct mcb_gguf_writer *w, const char *key, const struct mcb_gguf_str *in,
		    struct mcb_gguf_str *out)
{
	if (!in->s || in->len > MAX_STR || memchr(in->s, 0, (size_t)in->len)) {
		set_error(w, key, "string is NULL, longer than 2^24 bytes or contains NUL");
		return -1;
	}
	out->s = mcb_arena_strndup(&w->arena, in->s, (size_t)in->len);
	out->len = in->len;
	return 0;
}

/* Deep copy of v into the writer's arena; -1 (error recorded) when invalid. */
static int copy_value(struct mcb_gguf_writer *w, const char *key, const struct mcb_gguf_value *v,
		      struct mcb_gguf_value *out)
{
	const struct mcb_gguf_str *in;
	struct mcb_gguf_str *strs;
	size_t bytes;
	uint64_t i;

	*out = *v;
	if (v->type >= NTYPES) {
		set_error(w, key, "unknown value type");
		return -1;
	}
	if (v->type == MCB_GGUF_STR)
		return copy_str(w, key, &v->v.str, &out->v.str);
	if (v->type != MCB_GGUF_ARR) {
		if (check_scalar(v->type, v)) {
			set_error(w, key, "value does not fit its type");
			return -1;
		}
		return 0;
	}
	if (v->v.arr.type >= NTYPES || v->v.arr.type == MCB_GGUF_ARR) {
		set_error(w, key, "bad array element type (nested arrays are not supported)");
		return -1;
	}
	if (v->v.arr.count && !v->v.arr.data) {
		set_error(w, key, "array has no data");
		return -1;
	}
	if (v->v.arr.type == MCB_GGUF_STR) {
		if (mcb_mul_ok((size_t)v->v.arr.count, sizeof(*strs), &bytes) ||
		    v->v.arr.count > SIZE_MAX) {
			set_error(w, key, "array too large");
			return -1;
		}
		strs = mcb_arena_alloc(&w->arena, bytes);
		in = v->v.arr.data;
		for (i = 0; i < v->v.arr.count; i++)
			if (copy_str(w, key, &in[i], &strs[i]))
				return -1;
		out->v.arr.data = strs;
		return 0;
	}
	if (v->v.arr.count > SIZE_MAX ||
	    mcb_mul_ok((size_t)v->v.arr.count, vsize[v->v.arr.type], &bytes)) {
		set_error(w, key, "array too large");
		return -1;
	}
	if (v->v.arr.type == MCB_GGUF_BOOL)
		for (i = 0; i < v->v.arr.count; i++)
			if (((const unsigned char *)v->v.arr.data)[i] > 1) {
				set_error(w, key, "bool array element is not 0 or 1");
				return -1;
			}
	out->v.arr.data = mcb_arena_alloc(&w->arena, bytes);
	if (bytes)
		memcpy((void *)out->v.arr.data, v->v.arr.data, bytes);
	return 0;
}

void mcb_gguf_set(struct mcb_gguf_writer *w, const char *key, const struct mcb_gguf_value *v)
{
	struct mcb_gguf_value copy;
	size_t i, n = key ? strlen(key) : 0;

	if (n == 0 || n > MAX_KEY) {
		set_error(w, key ? key : "(null)", "key must be 1..65535 bytes");
		return;
	}
	if (copy_value(w, key, v, &copy))
		return;
	for (i = 0; i < w->nkv; i++)
		if (!strcmp(w->kv[i].key, key)) {
			w->kv[i].val = copy;
			return;
		}
	if (w->nkv == w->kvcap) {
		w->kvcap = w->kvcap ? 2 * w->kvcap : 32;
		w->kv = mcb_xrealloc(w->kv, w->kvcap * sizeof(*w->kv));
	}
	w->kv[w->nkv].key = mcb_arena_strdup(&w->arena, key);
	w->kv[w->nkv].val = copy;
	w->nkv++;
}

int mcb_gguf_set_placeholder_vocab(struct mcb_gguf_writer *w, int64_t n, struct mcb_errctx *e)
{
	struct mcb_gguf_str *toks;
	struct mcb_gguf_value v;
	float *scores;
	int32_t *types;
	char *text;
	int64_t i;

	if (n < 259 || n > (1 << 24))
		return mcb_errf(e, MCB_EUNSUP,
				"a placeholder vocabulary needs 259 to 2^24 tokens, not %lld",
				(long long)n);
	toks = mcb_xcalloc((size_t)n, sizeof(*toks));
	scores = mcb_xcalloc((size_t)n, sizeof(*scores));
	types = mcb_xcalloc((size_t)n, sizeof(*types));
	text = mcb_xmalloc((size_t)n * 16);
	for (i = 0; i < n; i++) {
		char *t = text + i * 16;

		if (i < 3)
			strcpy(t, i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
		else if (i < 259)
			snprintf(t, 16, "<0x%02X>", (unsigned)(i - 3));
		else
			snprintf(t, 16, "<tok%lld>", (long long)i);
		/* llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte */
		types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
		toks[i].s = t;
		toks[i].len = strlen(t);
	}
	mcb_gguf_set_str(w, "tokenizer.ggml.model", "llama");
	v.type = MCB_GGUF_ARR;
	v.v.arr.type = MCB_GGUF_STR;
	v.v.arr.count = (uint64_t)n;
	v.v.arr.data = toks;
	mcb_gguf_set(w, "tokenizer.ggml.tokens", &v);
	v.v.arr.type = MCB_GGUF_F32;
	v.v.arr.data = scores;
	mcb_gguf_set(w, "tokenizer.ggml.scores", &v);
	v.v.arr.type = MCB_GGUF_I32;
	v.v.arr.data = types;
	mcb_gguf_set(w, "tokenizer.ggml.token_type", &v);
	mcb_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	mcb_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
	mcb_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	free(toks);
	free(scores);
	free(types);
	free(text);
	return 0;
}

static int cmp_key_order(const void *a, const void *b)
{
	const char *x = ((const struct mcb_gguf_kv *)a)->key, *y = ((const struct mcb_gguf_kv *)b)->key;
	int ax = !strcmp(x, "general.architecture"), ay = !strcmp(y, "general.architecture");

	if (ax != ay)
		return ay - ax;
	return strcmp(x, y);
}

void mcb_gguf_sort_keys(struct mcb_gguf_writer *w)
{
	if (w->nkv > 1)
		qsort(w->kv, w->nkv, sizeof(*w->kv), cmp_key_order);
}

void mcb_gguf_set_u32(struct mcb_gguf_writer *w, const char *key, uint32_t v)
{
	struct mcb_gguf_value val = {.type = MCB_GGUF_U32, .v.u = v};

	mcb_gguf_set(w, key, &val);
}

void mcb_gguf_set_i32(struct mcb_gguf_writer *w, const char *key, int32_t v)
{
	struct mcb_gguf_value val = {.type = MCB_GGUF_I32, .v.i = v};

	mcb_gguf_set(w, key, &val);
}

void mcb_gguf_set_f32(struct mcb_gguf_writer *w, const char *key, float v)
{
	struct mcb_gguf_value val = {.type = MCB_GGUF_F32, .v.f = v};

	mcb_gguf_set(w, key, &val);
}

void mcb_gguf_set_bool(struct mcb_gguf_writer *w, const char *key, int v)
{
	struct mcb_gguf_value val = {.type = MCB_GGUF_BOOL, .v.u = v ? 1 : 0};

	mcb_gguf_set(w, key, &val);
}

void mcb_gguf_set_str(struct mcb_gguf_writer *w, const char *key, const char *s)
{
	struct mcb_gguf_value val = {.type = MCB_GGUF_STR};

	val.v.str.s = s;
	val.v.str.len = s ? strlen(s) : 0;
	mcb_gguf_set(w, key, &val);
}

int mcb_gguf_add_tensor(struct mcb_gguf_writer *w, const char *name, uint32_t ggml_type,
			uint32_t n_dims, const uint64_t *ne, const void *data, uint64_t nbytes,
			struct mcb_errctx *e)
{
	struct wtensor *t;
	uint64_t numel = 1, want;
	size_t i, len = name ? strlen(name) : 0;
	uint32_t j;
	int dt;

	if (len == 0 || len > MCB_GGUF_MAX_NAME)
		return mcb_errf(e, MCB_EINVAL, "gguf tensor name '%s' must be 1..%d bytes",
				name ? name : "(null)", MCB_GGUF_MAX_NAME);
	for (i = 0; i < w->nt; i++)
		if (!strcmp(w->t[i].name, name))
			return mcb_errf(e, MCB_EINVAL, "gguf tensor '%s' added twice", name);
	if (n_dims < 1 || n_dims > MCB_GGUF_MAX_DIMS)
		return mcb_errf(e, MCB_EINVAL, "gguf tensor '%s' has %" PRIu32 " dimensions", name,
				n_dims);
	dt = mcb_dtype_from_ggml(ggml_type);
	if (dt < 0)
		return mcb_errf(e, MCB_EUNSUP, "gguf tensor '%s': unknown ggml type id %" PRIu32, name,
				ggml_type);
	for (j = 0; j < n_dims; j++)
		if (ne[j] > INT64_MAX || __builtin_mul_overflow(numel, ne[j], &numel) ||
		    numel > INT64_MAX)
			return mcb_errf(e, MCB_EINVAL, "gguf tensor '%s': element count overflows", name);
	if (ne[0] % mcb_dtype_info((enum mcb_dtype)dt)->block ||
	    mcb_dtype_nbytes((enum mcb_dtype)dt, numel, &want) || want != nbytes)
		return mcb_errf(e, MCB_EINVAL, "gguf tensor '%s': %" PRIu64 " bytes do not match its "
				"shape and type %s", name, nbytes, mcb_dtype_info((enum mcb_dtype)dt)->name);
	if (nbytes && !data)
		return mcb_errf(e, MCB_EINVAL, "gguf tensor '%s' has no data", name);
	if (w->nt == w->tcap) {
		w->tcap = w->tcap ? 2 * w->tcap : 64;
		w->t = mcb_xrealloc(w->t, w->tcap * sizeof(*w->t));
	}
	t = &w->t[w->nt++];
	t->name = mcb_arena_strdup(&w->arena, name);
	t->n_dims = n_dims;
	for (j = 0; j < MCB_GGUF_MAX_DIMS; j++)
		t->ne[j] = j < n_dims ? ne[j] : 1;
	t->type = ggml_type;
	t->data = data;
	t->nbytes = nbytes;
	return 0;
}

static void put(struct mcb_buf *b, uint64_t v, unsigned n)
{
	unsigned char tmp[8];

	st_le(tmp, v, n);
	mcb_buf_add(b, tmp, n);
}

static void put_str(struct mcb_buf *b, const char *s, uint64_t len)
{
	put(b, len, 8);
	mcb_buf_add(b, s, (size_t)len);
}

/* A scalar (non-string, non-array) value's bytes. */
static void put_scalar(struct mcb_buf *b, const struct mcb_gguf_value *v)
{
	switch (v->type) {
	case MCB_GGUF_I8: case MCB_GGUF_I16: case MCB_GGUF_I32: case MCB_GGUF_I64:
		put(b, (uint64_t)v->v.i, vsize[v->type]);
		break;
	case MCB_GGUF_F32:
		put(b, f32_to_u32((float)v->v.f), 4);
		break;
	case MCB_GGUF_F64:
		put(b, f64_to_u64(v->v.f), 8);
		break;
	default:
		put(b, v->v.u, vsize[v->type]);
	}
}

static void put_value(struct mcb_buf *b, const struct mcb_gguf_value *v)
{
	const struct mcb_gguf_str *s;
	uint64_t i;

	put(b, v->type, 4);
	if (v->type == MCB_GGUF_STR) {
		put_str(b, v->v.str.s, v->v.str.len);
	} else if (v->type == MCB_GGUF_ARR) {
		put(b, v->v.arr.type, 4);
		put(b, v->v.arr.count, 8);
		if (v->v.arr.type == MCB_GGUF_STR)
			for (i = 0, s = v->v.arr.data; i < v->v.arr.count; i++)
				put_str(b, s[i].s, s[i].len);
		else if (v->v.arr.count)
			mcb_buf_add(b, v->v.arr.data, (size_t)v->v.arr.count * vsize[v->v.arr.type]);
	} else {
		put_scalar(b, v);
	}
}

static const unsigned char zeros[MAX_ALIGN];

int mcb_gguf_write(struct mcb_gguf_writer *w, const char *path, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	uint64_t align = MCB_GGUF_DEFAULT_ALIGN, off = 0, padded;
	size_t i, j;
	int fd, rc = 0;

	if (w->err.code)
		return mcb_errf(e, w->err.code, "cannot write '%s': %s", path, w->err.msg);
	for (i = 0; i < w->nkv; i++)
		if (!strcmp(w->kv[i].key, "general.alignment")) {
			const struct mcb_gguf_value *v = &w->kv[i].val;

			if (v->type != MCB_GGUF_U32 || v->v.u == 0 || v->v.u > MAX_ALIGN ||
			    (v->v.u & (v->v.u - 1)))
				return mcb_errf(e, MCB_EINVAL, "cannot write '%s': general.alignment "
						"must be a u32 power of two in 1..%u", path, MAX_ALIGN);
			align = v->v.u;
		}
	put(&b, MCB_GGUF_MAGIC, 4);
	put(&b, MCB_GGUF_VERSION, 4);
	put(&b, w->nt, 8);
	put(&b, w->nkv, 8);
	for (i = 0; i < w->nkv; i++) {
		put_str(&b, w->kv[i].key, strlen(w->kv[i].key));
		put_value(&b, &w->kv[i].val);
	}
	for (i = 0; i < w->nt; i++) {
		put_str(&b, w->t[i].name, strlen(w->t[i].name));
		put(&b, w->t[i].n_dims, 4);
		for (j = 0; j < w->t[i].n_dims; j++)
			put(&b, w->t[i].ne[j], 8);
		put(&b, w->t[i].type, 4);
		put(&b, off, 8);
		if (__builtin_add_overflow(off, w->t[i].nbytes, &off) || pad_up(off, align, &off)) {
			rc = mcb_errf(e, MCB_ERANGE, "cannot write '%s': data section overflows", path);
			goto out;
		}
	}
	mcb_buf_add(&b, zeros, (size_t)(-(uint64_t)b.len & (align - 1)));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = mcb_errf(e, MCB_EIO, "cannot create '%s':", path);
		goto out;
	}
	rc = mcb_os_write_all(fd, b.data, b.len);
	for (i = 0; !rc && i < w->nt; i++) {
		if (w->t[i].nbytes)
			rc = mcb_os_write_all(fd, w->t[i].data, (size_t)w->t[i].nbytes);
		pad_up(w->t[i].nbytes, align, &padded);
		if (!rc && padded > w->t[i].nbytes)
			rc = mcb_os_write_all(fd, zeros, (size_t)(padded - w->t[i].nbytes));
	}
	if (rc)
		rc = mcb_errf(e, MCB_EIO, "cannot write '%s':", path);
	if (close(fd) < 0 && !rc)
		rc = mcb_errf(e, MCB_EIO, "cannot close '%s':", path);
out:
	mcb_buf_release(&b);
	return rc;
}

/* ---- passthrough metadata as JSON ---- */

/* A finite float as a JSON real, else its bits as hex. */
static json_t *float_json(double f, uint64_t bits, int f32)
{
	char hex[24];

	if (isfinite(f))
		return json_real(f);
	snprintf(hex, sizeof(hex), f32 ? "0x%08" PRIx64 : "0x%016" PRIx64, bits);
	return json_string(hex);
}

/* One array element or scalar value from its little-endian bytes. */
static json_t *elem_json(uint32_t t, const unsigned char *p)
{
	uint64_t u = ld_le(p, vsize[t]);

	switch (t) {
	case MCB_GGUF_U8: case MCB_GGUF_U16: case MCB_GGUF_U32:
		return json_integer((json_int_t)u);
	case MCB_GGUF_U64:
		if (u > INT64_MAX) {
			char dec[24];

			snprintf(dec, sizeof(dec), "%" PRIu64, u);
			return json_string(dec);
		}
		return json_integer((json_int_t)u);
	case MCB_GGUF_I8: return json_integer((int8_t)u);
	case MCB_GGUF_I16: return json_integer((int16_t)u);
	case MCB_GGUF_I32: return json_integer((int32_t)u);
	case MCB_GGUF_I64: return json_integer((json_int_t)(int64_t)u);
	case MCB_GGUF_BOOL: return json_boolean(u);
	case MCB_GGUF_F32: return float_json(u32_to_f32((uint32_t)u), u, 1);
	case MCB_GGUF_F64: return float_json(u64_to_f64(u), u, 0);
	}
	return NULL;
}

/* The typed JSON form of v (see the top of this file), or NULL when a string
 * is not valid UTF-8. */
static json_t *value_json(const struct mcb_gguf_value *v)
{
	const struct mcb_gguf_str *s;
	unsigned char tmp[8];
	json_t *o, *arr, *x;
	uint64_t i;

	o = json_object();
	json_object_set_new(o, "type", json_string(vtype_name(v->type)));
	if (v->type == MCB_GGUF_STR) {
		x = json_stringn(v->v.str.s, (size_t)v->v.str.len);
	} else if (v->type == MCB_GGUF_ARR) {
		json_object_set_new(o, "elem", json_string(vtype_name(v->v.arr.type)));
		x = arr = json_array();
		for (i = 0; x && i < v->v.arr.count; i++) {
			json_t *el;

			if (v->v.arr.type == MCB_GGUF_STR) {
				s = (const struct mcb_gguf_str *)v->v.arr.data + i;
				el = json_stringn(s->s, (size_t)s->len);
			} else {
				el = elem_json(v->v.arr.type, (const unsigned char *)v->v.arr.data +
								      i * vsize[v->v.arr.type]);
			}
			if (!el) {
				json_decref(arr);
				x = NULL;
				break;
			}
			json_array_append_new(arr, el);
		}
	} else if (v->type == MCB_GGUF_F32) {
		x = float_json(v->v.f, f32_to_u32((float)v->v.f), 1);
	} else if (v->type == MCB_GGUF_F64) {
		x = float_json(v->v.f, f64_to_u64(v->v.f), 0);
	} else {
		st_le(tmp, v->type == MCB_GGUF_I8 || v->type == MCB_GGUF_I16 ||
				   v->type == MCB_GGUF_I32 || v->type == MCB_GGUF_I64
			       ? (uint64_t)v->v.i
			       : v->v.u,
		      8);
		x = elem_json(v->type, tmp);
	}
	if (!x) {
		json_decref(o);
		return NULL;
	}
	json_object_set_new(o, "value", x);
	return o;
}

static int vtype_from_name(const char *s)
{
	int t;

	for (t = 0; t < NTYPES; t++)
		if (!strcmp(vnames[t], s))
			return t;
	return -1;
}

/* Raw IEEE bits from "0x" + 2 * n hex digits. */
static int parse_hex_bits(const char *s, unsigned n, uint64_t *bits)
{
	unsigned i;
	int d;

	if (strlen(s) != 2 + 2 * n || s[0] != '0' || s[1] != 'x')
		return -1;
	*bits = 0;
	for (i = 2; s[i]; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else
			return -1;
		*bits = *bits << 4 | (uint64_t)d;
	}
	return 0;
}

/* A u64 written as a decimal string (values above 2^63 - 1). */
static int parse_u64_dec(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++)
		if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, (uint64_t)10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return -1;
	*out = v;
	return 0;
}

/* One JSON element of numeric/bool type t into vsize[t] little-endian bytes. */
static int json_elem(uint32_t t, const json_t *x, unsigned char *out)
{
	static const int64_t lo[NTYPES] = {0, INT8_MIN, 0, INT16_MIN, 0, INT32_MIN};
	static const int64_t hi[NTYPES] = {UINT8_MAX, INT8_MAX, UINT16_MAX, INT16_MAX,
					   UINT32_MAX, INT32_MAX};
	uint64_t bits;
	json_int_t i;

	switch (t) {
	case MCB_GGUF_U8: case MCB_GGUF_I8: case MCB_GGUF_U16:
	case MCB_GGUF_I16: case MCB_GGUF_U32: case MCB_GGUF_I32:
		if (!json_is_integer(x) || json_integer_value(x) < lo[t] ||
		    json_integer_value(x) > hi[t])
			return -1;
		st_le(out, (uint64_t)json_integer_value(x), vsize[t]);
		return 0;
	case MCB_GGUF_U64:
		if (json_is_string(x))
			return parse_u64_dec(json_string_value(x), &bits) ? -1 : (st_le(out, bits, 8), 0);
		if (!json_is_integer(x) || (i = json_integer_value(x)) < 0)
			return -1;
		st_le(out, (uint64_t)i, 8);
		return 0;
	case MCB_GGUF_I64:
		if (!json_is_integer(x))
			return -1;
		st_le(out, (uint64_t)json_integer_value(x), 8);
		return 0;
	case MCB_GGUF_BOOL:
		if (!json_is_boolean(x))
			return -1;
		out[0] = json_is_true(x);
		return 0;
	case MCB_GGUF_F32:
		if (json_is_string(x))
			return parse_hex_bits(json_string_value(x), 4, &bits) ? -1 : (st_le(out, bits, 4), 0);
		if (!json_is_number(x))
			return -1;
		st_le(out, f32_to_u32((float)json_number_value(x)), 4);
		return 0;
	case MCB_GGUF_F64:
		if (json_is_string(x))
			return parse_hex_bits(json_string_value(x), 8, &bits) ? -1 : (st_le(out, bits, 8), 0);
		if (!json_is_number(x))
			return -1;
		st_le(out, f64_to_u64(json_number_value(x)), 8);
		return 0;
	}
	return -1;
}

/* Set one key from its typed JSON form. */
static int set_json(struct mcb_gguf_writer *w, const char *key, const json_t *o,
		    struct mcb_errctx *e)
{
	struct mcb_gguf_value v = {0};
	const json_t *x = json_object_get(o, "value"), *el;
	struct mcb_gguf_str *strs = NULL;
	unsigned char *packed = NULL, tmp[8];
	int t, et = 0;
	size_t i, n;

	t = vtype_from_name(json_string_value(json_object_get(o, "type")) ?
				    json_string_value(json_object_get(o, "type")) : "");
	if (!json_is_object(o) || t < 0 || !x)
		return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': needs \"type\" and \"value\"",
				key);
	v.type = (uint32_t)t;
	if (t == MCB_GGUF_STR) {
		if (!json_is_string(x))
			return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': value is not a string", key);
		v.v.str.s = json_string_value(x);
		v.v.str.len = json_string_length(x);
	} else if (t == MCB_GGUF_ARR) {
		const char *en = json_string_value(json_object_get(o, "elem"));

		et = vtype_from_name(en ? en : "");
		if (et < 0 || et == MCB_GGUF_ARR || !json_is_array(x))
			return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': an array needs \"elem\" "
					"(a non-array type) and a JSON array value", key);
		n = json_array_size(x);
		v.v.arr.type = (uint32_t)et;
		v.v.arr.count = n;
		if (et == MCB_GGUF_STR) {
			strs = mcb_xcalloc(n, sizeof(*strs));
			json_array_foreach(x, i, el) {
				if (!json_is_string(el)) {
					free(strs);
					return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': "
							"element %zu is not a string", key, i);
				}
				strs[i].s = json_string_value(el);
				strs[i].len = json_string_length(el);
			}
			v.v.arr.data = strs;
		} else {
			packed = mcb_xcalloc(n, vsize[et]);
			json_array_foreach(x, i, el)
				if (json_elem((uint32_t)et, el, packed + i * vsize[et])) {
					free(packed);
					return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': element %zu "
							"is not a valid %s", key, i, vnames[et]);
				}
			v.v.arr.data = packed;
		}
	} else {
		if (json_elem((uint32_t)t, x, tmp))
			return mcb_errf(e, MCB_EFORMAT, "gguf metadata key '%s': value is not a valid %s",
					key, vnames[t]);
		switch (t) {
		case MCB_GGUF_I8: v.v.i = (int8_t)tmp[0]; break;
		case MCB_GGUF_I16: v.v.i = (int16_t)(uint16_t)ld_le(tmp, 2); break;
		case MCB_GGUF_I32: v.v.i = (int32_t)(uint32_t)ld_le(tmp, 4); break;
		case MCB_GGUF_I64: v.v.i = (int64_t)ld_le(tmp, 8); break;
		case MCB_GGUF_F32: v.v.f = u32_to_f32((uint32_t)ld_le(tmp, 4)); break;
		case MCB_GGUF_F64: v.v.f = u64_to_f64(ld_le(tmp, 8)); break;
		default: v.v.u = ld_le(tmp, vsize[t]);
		}
	}
	mcb_gguf_set(w, key, &v);
	free(strs);
	free(packed);
	if (w->err.code)
		return mcb_errf(e, MCB_EFORMAT, "%s", w->err.msg);
	return 0;
}

int mcb_gguf_set_meta(struct mcb_gguf_writer *w, const json_t *gguf, struct mcb_errctx *e)
{
	const char *key;
	json_t *o;
	int rc;

	if (!gguf)
		return 0;
	if (!json_is_object(gguf))
		return mcb_errf(e, MCB_EFORMAT, "gguf metadata is not a JSON object");
	json_object_foreach((json_t *)gguf, key, o)
		if ((rc = set_json(w, key, o, e)))
			return rc;
	return 0;
}

/* ---- GGUF -> model ---- */

/* Keys that become m->arch and m->cfg instead of passthrough metadata. */
static const char *const hparams[] = {
	"general.architecture",
	"llama.context_length",
	"llama.embedding_length",
	"llama.block_count",
	"llama.feed_forward_length",
	"llama.attention.head_count",
	"llama.attention.head_count_kv",
	"llama.attention.layer_norm_rms_epsilon",
	"llama.rope.freq_base",
	"llama.rope.dimension_count",
	"llama.vocab_size",
	"llama.attention.key_length",
	"llama.attention.value_length",
};

static int is_hparam(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(hparams) / sizeof(hparams[0]); i++)
		if (!strcmp(hparams[i], key))
			return 1;
	return 0;
}

/* An integer key of any integer type; *out keeps def when absent and !required. */
static int get_int(const struct mcb_gguf *g, const char *path, const char *key, int required,
		   int64_t *out, struct mcb_errctx *e)
{
	const struct mcb_gguf_kv *kv = mcb_gguf_find(g, key);

	if (!kv) {
		if (required)
			return mcb_errf(e, MCB_EFORMAT, "'%s': missing key '%s'", path, key);
		return 0;
	}
	switch (kv->val.type) {
	case MCB_GGUF_U8: case MCB_GGUF_U16: case MCB_GGUF_U32: case MCB_GGUF_U64:
		if (kv->val.v.u > INT64_MAX)
			break;
		*out = (int64_t)kv->val.v.u;
		return 0;
	case MCB_GGUF_I8: case MCB_GGUF_I16: case MCB_GGUF_I32: case MCB_GGUF_I64:
		*out = kv->val.v.i;
		return 0;
	}
	return mcb_errf(e, MCB_EFORMAT, "'%s': key '%s' has type %s, expected an integer", path, key,
			kv->val.type == MCB_GGUF_ARR ? "arr (per-layer values are not supported)"
						     : vtype_name(kv->val.type));
}

static int get_float(const struct mcb_gguf *g, const char *path, const char *key, int required,
		     double *out, struct mcb_errctx *e)
{
	const struct mcb_gguf_kv *kv = mcb_gguf_find(g, key);

	if (!kv) {
		if (required)
			return mcb_errf(e, MCB_EFORMAT, "'%s': missing key '%s'", path, key);
		return 0;
	}
	if (kv->val.type != MCB_GGUF_F32 && kv->val.type != MCB_GGUF_F64)
		return mcb_errf(e, MCB_EFORMAT, "'%s': key '%s' has type %s, expected f32 or f64", path,
				key, vtype_name(kv->val.type));
	*out = kv->val.v.f;
	return 0;
}

/* m->arch and m->cfg from the llama.* keys and the embedding's shape. */
static int read_config(const struct mcb_gguf *g, const char *path, struct mcb_model *m,
		       struct mcb_errctx *e)
{
	struct mcb_llama_config *c = &m->cfg;
	const struct mcb_gguf_kv *arch = mcb_gguf_find(g, "general.architecture");
	const struct mcb_gguf_kv *tok = mcb_gguf_find(g, "tokenizer.ggml.tokens");
	const struct mcb_gguf_tensor *emb = mcb_gguf_find_tensor(g, "token_embd.weight");
	int64_t rope_dims = -1, nvocab = -1, key_len = -1, val_len = -1;
	int rc;

	if (!arch || arch->val.type != MCB_GGUF_STR)
		return mcb_errf(e, MCB_EFORMAT, "'%s': general.architecture is missing or not a string",
				path);
	if (strcmp(arch->val.v.str.s, "llama"))
		return mcb_errf(e, MCB_EUNSUP, "'%s': architecture '%.64s' is not supported (only llama)",
				path, arch->val.v.str.s);
	strcpy(m->arch, "llama");
	c->rope_theta = 10000.0;
	if ((rc = get_int(g, path, "llama.context_length", 1, &c->seq_len, e)) ||
	    (rc = get_int(g, path, "llama.embedding_length", 1, &c->dim, e)) ||
	    (rc = get_int(g, path, "llama.block_count", 1, &c->n_layers, e)) ||
	    (rc = get_int(g, path, "llama.feed_forward_length", 1, &c->hidden_dim, e)) ||
	    (rc = get_int(g, path, "llama.attention.head_count", 1, &c->n_heads, e)))
		return rc;
	c->n_kv_heads = c->n_heads;
	if ((rc = get_int(g, path, "llama.attention.head_count_kv", 0, &c->n_kv_heads, e)) ||
	    (rc = get_int(g, path, "llama.rope.dimension_count", 0, &rope_dims, e)) ||
	    (rc = get_int(g, path, "llama.vocab_size", 0, &nvocab, e)) ||
	    (rc = get_float(g, path, "llama.attention.layer_norm_rms_epsilon", 1, &c->norm_eps, e)) ||
	    (rc = get_float(g, path, "llama.rope.freq_base", 0, &c->rope_theta, e)) ||
	    (rc = get_int(g, path, "llama.attention.key_length", 0, &key_len, e)) ||
	    (rc = get_int(g, path, "llama.attention.value_length", 0, &val_len, e)))
		return rc;
	/* the head size: key_length when given (llama.cpp's n_embd_head_k, e.g.
	 * after heads were pruned), else dim / n_heads; checked by
	 * mcb_model_check_config */
	c->head_dim = key_len != -1 ? key_len : c->n_heads > 0 ? c->dim / c->n_heads : 0;
	if (val_len != -1 && val_len != c->head_dim)
		return mcb_errf(e, MCB_EUNSUP, "'%s': llama.attention.value_length %" PRId64
				" differs from key_length %" PRId64, path, val_len, c->head_dim);
	if (rope_dims != -1 && c->head_dim > 0 && rope_dims != c->head_dim)
		return mcb_errf(e, MCB_EUNSUP, "'%s': llama.rope.dimension_count %" PRId64
				" differs from the head size %" PRId64 " (partial RoPE is not supported)",
				path, rope_dims, c->head_dim);
	if (!emb || emb->n_dims != 2)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor 'token_embd.weight' is missing or not 2-D",
				path);
	c->vocab_size = (int64_t)emb->ne[1];
	if (tok && (tok->val.type != MCB_GGUF_ARR || tok->val.v.arr.type != MCB_GGUF_STR ||
		    tok->val.v.arr.count != emb->ne[1]))
		return mcb_errf(e, MCB_EFORMAT, "'%s': tokenizer.ggml.tokens must be an array of %" PRIu64
				" strings (the rows of token_embd.weight)", path, emb->ne[1]);
	if (nvocab != -1 && nvocab != c->vocab_size)
		return mcb_errf(e, MCB_EFORMAT, "'%s': llama.vocab_size %" PRId64
				" differs from token_embd.weight's %" PRId64 " rows", path, nvocab,
				c->vocab_size);
	c->tied_embeddings = mcb_gguf_find_tensor(g, "output.weight") == NULL;
	return 0;
}

/*
 * A Q8_0 tensor (blocks of {fp16 d; int8 q[32]} along each row) into the
 * internal form's quantized representation (runtime/step_quantize.c): NAME
 * as I8 codes [rows, cols], NAME.scale as F16 [rows, cols/32] (the blocks'
 * d, bit for bit), and meta["quant"][NAME] a group-32 record; the values are
 * exactly the file's, W = d * q.
 */
static int import_q8_0(struct mcb_model *m, const struct mcb_gguf_tensor *gt, const char *path,
		       struct mcb_errctx *e)
{
	int64_t rows = (int64_t)gt->ne[1], cols = (int64_t)gt->ne[0], nb = cols / 32, r, b;
	int64_t shape[2] = {rows, cols}, sshape[2] = {rows, nb};
	const unsigned char *src = gt->data;
	struct mcb_tensor *q, *sc;
	char *sname;
	json_t *quant;
	int rc;

	sname = mcb_arena_printf(&m->arena, "%s.scale", gt->name);
	if ((rc = mcb_model_new_tensor(m, gt->name, MCB_DT_I8, 2, shape, &q, e)) ||
	    (rc = mcb_model_new_tensor(m, sname, MCB_DT_F16, 2, sshape, &sc, e)))
		return mcb_errprefix(e, "'%s'", path);
	q = mcb_model_find(m, gt->name); /* the array may have moved */
	for (r = 0; r < rows; r++)
		for (b = 0; b < nb; b++) {
			const unsigned char *blk = src + (r * nb + b) * 34;

			((uint16_t *)sc->data)[r * nb + b] = (uint16_t)(blk[0] | blk[1] << 8);
			memcpy((int8_t *)q->data + r * cols + b * 32, blk + 2, 32);
		}
	quant = json_object_get(m->meta, "quant");
	if (!quant) {
		quant = json_object();
		json_object_set_new(m->meta, "quant", quant);
	}
	json_object_set_new(quant, gt->name,
			    json_pack("{s:s, s:i, s:s, s:i, s:b, s:s}", "method", "gguf-q8_0",
				      "bits", 8, "granularity", "group", "group_size", 32,
				      "symmetric", 1, "scale", sname));
	return 0;
}

/*
 * A Q4_0, Q4_1, Q4_K or Q6_K tensor (2-D) into the internal form's "ggml"
 * record (include/mcb/qtensor.h): NAME as U8 [rows, row_bytes] holding the
 * file's blocks unchanged (borrowed from the map), meta["quant"][NAME] =
 * {"format": "ggml", "ggml_type": "Q4_K", "method": "gguf"}.  The reader
 * already checked ne[0] % block == 0 and the size; the blocks' fp16 scales
 * are checked finite by mcb_qtensor_get (the model check).
 */
static int import_ggml(struct mcb_model *m, const struct mcb_gguf_tensor *gt, enum mcb_dtype dt,
		       const char *path, struct mcb_errctx *e)
{
	const struct mcb_dtype_info *di = mcb_dtype_info(dt);
	int64_t rows = (int64_t)gt->ne[1];
	int64_t shape[2] = {rows, (int64_t)(gt->ne[0] / di->block * di->block_bytes)};
	json_t *quant;

	if (gt->ne[0] == 0 || gt->ne[0] % di->block)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': row of %" PRIu64 " elements is not a "
				"whole number of %s blocks", path, gt->name, gt->ne[0], di->name);
	if ((uint64_t)shape[1] * (uint64_t)rows != gt->nbytes)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': %" PRIu64 " bytes, expected %"
				PRIu64, path, gt->name, gt->nbytes, (uint64_t)shape[1] * (uint64_t)rows);
	if (mcb_model_add_mapped(m, gt->name, MCB_DT_U8, 2, shape, gt->data, (size_t)gt->nbytes,
				 NULL, e))
		return mcb_errprefix(e, "'%s'", path);
	quant = json_object_get(m->meta, "quant");
	if (!quant) {
		quant = json_object();
		json_object_set_new(m->meta, "quant", quant);
	}
	json_object_set_new(quant, gt->name,
			    json_pack("{s:s, s:s, s:s}", "format", "ggml", "method", "gguf",
				      "ggml_type", di->name));
	return 0;
}

int mcb_gguf_read_config(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	struct mcb_gguf g;
	int rc;

	if ((rc = mcb_gguf_open(path, &g, e)))
		return rc;
	rc = read_config(&g, path, m, e);
	mcb_gguf_close(&g);
	return rc;
}

int mcb_gguf_read_model(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	struct mcb_buf what = MCB_BUF_INIT;
	const struct mcb_gguf_tensor *gt;
	struct mcb_gguf g;
	int64_t shape[MCB_GGUF_MAX_DIMS];
	json_t *pass, *x;
	size_t i;
	uint32_t j;
	int rc, dt;

	if ((rc = mcb_gguf_open(path, &g, e)))
		goto fail;
	if ((rc = read_config(&g, path, m, e)))
		goto fail;
	for (i = 0; i < g.ntensors; i++) {
		gt = &g.tensors[i];
		dt = mcb_dtype_from_ggml(gt->type);
		if (dt == MCB_DT_Q8_0 && gt->n_dims == 2) {
			if ((rc = import_q8_0(m, gt, path, e)))
				goto fail;
			continue;
		}
		if ((dt == MCB_DT_Q4_0 || dt == MCB_DT_Q4_1 || dt == MCB_DT_Q4_K ||
		     dt == MCB_DT_Q6_K) && gt->n_dims == 2) {
			if ((rc = import_ggml(m, gt, (enum mcb_dtype)dt, path, e)))
				goto fail;
			continue;
		}
		if (dt != MCB_DT_F32 && dt != MCB_DT_F16 && dt != MCB_DT_BF16) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s' has type %s (ggml id %" PRIu32
				      "); only F32, F16, BF16 and 2-D Q8_0, Q4_0, Q4_1, Q4_K and "
				      "Q6_K tensors can be imported",
				      path, gt->name,
				      dt < 0 ? "?" : mcb_dtype_info((enum mcb_dtype)dt)->name, gt->type);
			goto fail;
		}
		for (j = 0; j < gt->n_dims; j++) /* GGUF's ne[0] is the innermost dimension */
			shape[j] = (int64_t)gt->ne[gt->n_dims - 1 - j];
		if ((rc = mcb_model_add_mapped(m, gt->name, (enum mcb_dtype)dt, (int)gt->n_dims, shape,
					       gt->data, (size_t)gt->nbytes, NULL, e))) {
			mcb_errprefix(e, "'%s'", path);
			goto fail;
		}
	}
	pass = json_object();
	json_object_set_new(m->meta, "gguf", pass);
	for (i = 0; i < g.nkv; i++) {
		if (is_hparam(g.kv[i].key))
			continue;
		if (!(x = value_json(&g.kv[i].val))) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': key '%s' holds a string that is not valid UTF-8",
				      path, g.kv[i].key);
			goto fail;
		}
		json_object_set_new(pass, g.kv[i].key, x);
	}
	json_object_set_new(m->meta, "source", json_pack("{s:s}", "format", "gguf"));
	m->map = g.map; /* borrowed tensors live as long as m */
	g.map.data = NULL;
	g.map.size = 0;
	mcb_gguf_close(&g);
	mcb_buf_printf(&what, "'%s'", path);
	rc = mcb_model_check_llama(m, what.data, e);
	mcb_buf_release(&what);
	if (rc) {
		mcb_model_release(m);
		mcb_model_init(m);
	}
	return rc;
fail:
	mcb_gguf_close(&g);
	mcb_model_release(m);
	mcb_model_init(m);
	return rc;
}
