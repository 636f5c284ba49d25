/*
 * safetensors: reader and writer (huggingface/safetensors, README and
 * src/tensor.rs).
 *
 * File layout written by mcb_st_write (and accepted by mcb_st_open):
 *
 *   u64 N, little-endian
 *   N bytes of UTF-8 JSON: one object
 *     {"<name>": {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [b, e]},
 *      ...,
 *      "__metadata__": {"<key>": "<string value>", ...}}
 *     The writer lists tensors in data order, then __metadata__ (keys sorted,
 *     canonical JSON), and pads the text with spaces so that N % 8 == 0.
 *   the data buffer: tensor bytes, little-endian elements, at [b, e) relative
 *     to the buffer's start (8 + N).  The writer lays tensors out by
 *     descending element size, then name, with no padding: every tensor
 *     starts aligned to its element size.
 *
 * The reader accepts exactly what the format allows and nothing more: N at
 * most MCB_ST_MAX_HEADER, the header a JSON object whose first byte is '{'
 * (trailing spaces allowed), no duplicate keys, each tensor entry an object
 * with exactly dtype (a known safetensors name), shape (at most MCB_MAX_DIMS
 * non-negative integers whose product fits in 64 bits) and data_offsets
 * (b <= e, e - b == bytes of dtype x shape); the ranges sorted by start
 * must tile [0, buffer size) with no hole or overlap; 8 + N + buffer size ==
 * file size; __metadata__ an object of strings; names non-empty without NUL.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/safetensors.h"

/* A tensor's data range while checking coverage. */
struct range {
	uint64_t b, e;   /* b <= e, relative to the data buffer */
	size_t idx;      /* index into f->tensors */
	const char *name;
};

static int cmp_range(const void *pa, const void *pb)
{
	const struct range *a = pa, *b = pb;

	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	if (a->e != b->e)
		return a->e < b->e ? -1 : 1;
	return strcmp(a->name, b->name);
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* A non-negative JSON integer. */
static int get_u64(const json_t *v, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* Parse one tensor entry (the value of key name) into t and r. */
static int parse_entry(const char *path, const char *name, json_t *o, struct mcb_tensor *t,
		       struct range *r, struct mcb_errctx *e)
{
	json_t *dt, *shape, *offs, *v;
	const struct mcb_dtype_info *info;
	const char *key;
	uint64_t numel = 1, d, nbytes;
	size_t i;
	int id;

	if (!json_is_object(o))
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': entry is not an object", path, name);
	json_object_foreach(o, key, v)
		if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
			return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': unknown field '%s'", path,
					name, key);
	dt = json_object_get(o, "dtype");
	shape = json_object_get(o, "shape");
	offs = json_object_get(o, "data_offsets");
	if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': tensor '%s': needs dtype (string), shape and data_offsets (arrays)",
				path, name);
	id = mcb_dtype_from_name(json_string_value(dt));
	if (id < 0 || !mcb_dtype_info((enum mcb_dtype)id)->in_safetensors)
		return mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s': unknown dtype '%s'", path, name,
				json_string_value(dt));
	info = mcb_dtype_info((enum mcb_dtype)id);
	if (json_array_size(shape) > MCB_MAX_DIMS)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': shape has %zu dimensions (at most %d)",
				path, name, json_array_size(shape), MCB_MAX_DIMS);
	t->dtype = (enum mcb_dtype)id;
	t->ndim = (int)json_array_size(shape);
	for (i = 0; i < json_array_size(shape); i++) {
		if (get_u64(json_array_get(shape, i), &d))
			return mcb_errf(e, MCB_EFORMAT,
					"'%s': tensor '%s': shape entries must be non-negative integers",
					path, name);
		t->shape[i] = (int64_t)d;
		if (__builtin_mul_overflow(numel, d, &numel))
			return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': element count overflows",
					path, name);
	}
	if (mcb_dtype_nbytes(t->dtype, numel, &nbytes) || nbytes > SIZE_MAX)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': size of %" PRIu64 " %s elements overflows",
				path, name, numel, info->name);
	if (json_array_size(offs) != 2 || get_u64(json_array_get(offs, 0), &r->b) ||
	    get_u64(json_array_get(offs, 1), &r->e))
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': tensor '%s': data_offsets must be two non-negative integers",
				path, name);
	if (r->b > r->e)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
				"] end before they begin", path, name, r->b, r->e);
	if (r->e - r->b != nbytes)
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
				" bytes but %s x %" PRIu64 " elements need %" PRIu64, path, name, r->b,
				r->e, r->e - r->b, info->name, numel, nbytes);
	t->nbytes = (size_t)nbytes;
	return 0;
}

/* __metadata__ must be an object of strings. */
static int check_metadata(const char *path, const json_t *md, struct mcb_errctx *e)
{
	const char *key;
	json_t *v;

	if (!json_is_object(md))
		return mcb_errf(e, MCB_EFORMAT, "'%s': __metadata__ is not an object", path);
	json_object_foreach((json_t *)md, key, v)
		if (!json_is_string(v))
			return mcb_errf(e, MCB_EFORMAT, "'%s': __metadata__ value '%s' is not a string",
					path, key);
	return 0;
}

/* Validate the parsed header root and fill f; N is the header length. */
static int parse_header(const char *path, struct mcb_st_file *f, json_t *root, uint64_t n,
			struct mcb_errctx *e)
{
	const unsigned char *buf = f->map.data + 8 + n;
	uint64_t bufsize = f->map.size - 8 - n, run = 0;
	struct mcb_tensor *sorted;
	struct range *r = NULL;
	const char *key;
	size_t klen, k = 0, i, count;
	json_t *v;
	int rc = 0;

	count = json_object_size(root);
	if (json_object_get(root, "__metadata__"))
		count--;
	f->tensors = mcb_arena_array(&f->arena, count ? count : 1, sizeof(*f->tensors));
	r = mcb_xcalloc(count, sizeof(*r));
	json_object_keylen_foreach(root, key, klen, v) {
		if (!strcmp(key, "__metadata__")) {
			if ((rc = check_metadata(path, v, e)))
				goto out;
			f->metadata = json_incref(v);
			continue;
		}
		if (klen == 0 || strlen(key) != klen) {
			rc = mcb_errf(e, MCB_EFORMAT, "'%s': tensor names must be non-empty and free of NUL",
				      path);
			goto out;
		}
		f->tensors[k].name = mcb_arena_strndup(&f->arena, key, klen);
		r[k].idx = k;
		r[k].name = f->tensors[k].name;
		if ((rc = parse_entry(path, key, v, &f->tensors[k], &r[k], e)))
			goto out;
		k++;
	}
	qsort(r, count, sizeof(*r), cmp_range);
	for (i = 0; i < count; i++) {
		if (r[i].b < run) {
			rc = mcb_errf(e, MCB_EFORMAT,
				      "'%s': tensors '%s' and '%s' overlap (data_offsets %" PRIu64
				      " < %" PRIu64 ")", path, r[i - 1].name, r[i].name, r[i].b, run);
			goto out;
		}
		if (r[i].b > run) {
			rc = mcb_errf(e, MCB_EFORMAT,
				      "'%s': hole in the data buffer: bytes %" PRIu64 "..%" PRIu64
				      " before tensor '%s' belong to no tensor", path, run, r[i].b,
				      r[i].name);
			goto out;
		}
		run = r[i].e;
	}
	if (run != bufsize) {
		rc = mcb_errf(e, MCB_EFORMAT,
			      "'%s': data buffer is %" PRIu64 " bytes but the tensors cover %" PRIu64
			      " (file is %zu bytes, expected %" PRIu64 ")", path, bufsize, run,
			      f->map.size, 8 + n + run);
		goto out;
	}
	/* every range is inside the buffer: reorder the tensors by data offset */
	sorted = mcb_arena_array(&f->arena, count ? count : 1, sizeof(*sorted));
	for (i = 0; i < count; i++) {
		sorted[i] = f->tensors[r[i].idx];
		sorted[i].data = (void *)(buf + r[i].b);
		sorted[i].owned = 0;
	}
	f->tensors = sorted;
	f->ntensors = count;
out:
	free(r);
	return rc;
}

int mcb_st_open(const char *path, struct mcb_st_file *f, struct mcb_errctx *e)
{
	struct mcb_buf what = MCB_BUF_INIT;
	json_t *root;
	uint64_t n;
	int rc;

	mcb_arena_init(&f->arena);
	f->tensors = NULL;
	f->ntensors = 0;
	f->metadata = NULL;
	if ((rc = mcb_os_map(path, &f->map, e)))
		return rc;
	if (f->map.size < 8) {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': file is %zu bytes, too short for a safetensors header",
			      path, f->map.size);
		goto fail;
	}
	n = le64(f->map.data);
	if (n > MCB_ST_MAX_HEADER) {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': header length %" PRIu64 " exceeds the limit of %u bytes",
			      path, n, MCB_ST_MAX_HEADER);
		goto fail;
	}
	if (n > f->map.size - 8) {
		rc = mcb_errf(e, MCB_EFORMAT,
			      "'%s': header length %" PRIu64 " runs past the end of the file (%zu bytes)",
			      path, n, f->map.size);
		goto fail;
	}
	if (n < 2 || f->map.data[8] != '{') {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': header does not start with '{'", path);
		goto fail;
	}
	mcb_buf_printf(&what, "'%s' header", path);
	root = mcb_json_parse((const char *)f->map.data + 8, (size_t)n, what.data, e);
	mcb_buf_release(&what);
	if (!root) {
		rc = MCB_EFORMAT;
		goto fail;
	}
	if (!json_is_object(root)) /* '{' first and no trailing garbage: cannot happen */
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': header is not a JSON object", path);
	else
		rc = parse_header(path, f, root, n, e);
	json_decref(root);
	if (!rc)
		return 0;
fail:
	mcb_st_close(f);
	return rc;
}

void mcb_st_close(struct mcb_st_file *f)
{
	json_decref(f->metadata);
	f->metadata = NULL;
	mcb_arena_release(&f->arena);
	f->tensors = NULL;
	f->ntensors = 0;
	mcb_os_unmap(&f->map);
}

/* Writer layout order: descending element size, then name. */
static int cmp_layout(const void *pa, const void *pb)
{
	const struct mcb_tensor *a = *(const struct mcb_tensor *const *)pa;
	const struct mcb_tensor *b = *(const struct mcb_tensor *const *)pb;
	unsigned sa = mcb_dtype_info(a->dtype)->block_bytes;
	unsigned sb = mcb_dtype_info(b->dtype)->block_bytes;

	if (sa != sb)
		return sa > sb ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int cmp_name(const void *pa, const void *pb)
{
	return strcmp((*(const struct mcb_tensor *const *)pa)->name,
		      (*(const struct mcb_tensor *const *)pb)->name);
}

/* Check one tensor before writing it. */
static int check_tensor(const char *path, const struct mcb_tensor *t, struct mcb_errctx *e)
{
	uint64_t numel = 1, nbytes;
	int i;

	if (!t->name || !t->name[0])
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': a tensor has an empty name", path);
	if (!strcmp(t->name, "__metadata__"))
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': '__metadata__' is not a tensor name",
				path);
	if ((unsigned)t->dtype >= MCB_DT_COUNT || !mcb_dtype_info(t->dtype)->in_safetensors)
		return mcb_errf(e, MCB_EUNSUP, "cannot write '%s': tensor '%s' has a dtype safetensors "
				"cannot store", path, t->name);
	if (t->ndim < 0 || t->ndim > MCB_MAX_DIMS)
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': tensor '%s' has %d dimensions", path,
				t->name, t->ndim);
	for (i = 0; i < t->ndim; i++)
		if (t->shape[i] < 0 || __builtin_mul_overflow(numel, (uint64_t)t->shape[i], &numel))
			return mcb_errf(e, MCB_EINVAL, "cannot write '%s': tensor '%s' has a bad shape",
					path, t->name);
	if (mcb_dtype_nbytes(t->dtype, numel, &nbytes) || nbytes != t->nbytes)
		return mcb_errf(e, MCB_EINVAL,
				"cannot write '%s': tensor '%s' has %zu bytes, its shape needs %" PRIu64,
				path, t->name, t->nbytes, nbytes);
	if (t->nbytes && !t->data)
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': tensor '%s' has no data", path,
				t->name);
	return 0;
}

/* Append the JSON string literal for s, or fail on invalid UTF-8. */
static int add_json_string(struct mcb_buf *b, const char *s)
{
	json_t *v = json_string(s);

	if (!v)
		return -1;
	mcb_json_canonical(v, b);
	json_decref(v);
	return 0;
}

/* Build the header text (padded) for the tensors in layout order. */
static int build_header(const char *path, const struct mcb_tensor **order, size_t n,
			const json_t *metadata, struct mcb_buf *h, struct mcb_errctx *e)
{
	const struct mcb_tensor *t;
	uint64_t off = 0;
	size_t i;
	int d;

	mcb_buf_addc(h, '{');
	for (i = 0; i < n; i++) {
		t = order[i];
		if (i)
			mcb_buf_addc(h, ',');
		if (add_json_string(h, t->name))
			return mcb_errf(e, MCB_EINVAL, "cannot write '%s': tensor name is not valid UTF-8",
					path);
		mcb_buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", mcb_dtype_info(t->dtype)->name);
		for (d = 0; d < t->ndim; d++)
			mcb_buf_printf(h, "%s%" PRId64, d ? "," : "", t->shape[d]);
		mcb_buf_printf(h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off,
			       off + t->nbytes);
		off += t->nbytes;
	}
	if (metadata) {
		if (n)
			mcb_buf_addc(h, ',');
		mcb_buf_adds(h, "\"__metadata__\":");
		mcb_json_canonical(metadata, h);
	}
	mcb_buf_addc(h, '}');
	while (h->len % 8)
		mcb_buf_addc(h, ' ');
	return 0;
}

int mcb_st_write(const char *path, const struct mcb_tensor *const *tensors, size_t n,
		 const struct json_t *metadata, struct mcb_errctx *e)
{
	struct mcb_buf h = MCB_BUF_INIT;
	const struct mcb_tensor **order;
	unsigned char len[8];
	uint64_t total = 0;
	size_t i;
	int fd, rc = 0;

	if (metadata && check_metadata(path, metadata, e))
		return mcb_errf(e, MCB_EINVAL, "cannot write '%s': metadata must be an object of "
				"strings", path);
	order = mcb_xcalloc(n, sizeof(*order));
	for (i = 0; i < n; i++) {
		if ((rc = check_tensor(path, tensors[i], e)))
			goto out;
		if (__builtin_add_overflow(total, (uint64_t)tensors[i]->nbytes, &total)) {
			rc = mcb_errf(e, MCB_ERANGE, "cannot write '%s': total size overflows", path);
			goto out;
		}
		order[i] = tensors[i];
	}
	/* duplicates sit next to each other once sorted by name */
	qsort(order, n, sizeof(*order), cmp_name);
	for (i = 1; i < n; i++)
		if (!strcmp(order[i - 1]->name, order[i]->name)) {
			rc = mcb_errf(e, MCB_EINVAL, "cannot write '%s': duplicate tensor '%s'", path,
				      order[i]->name);
			goto out;
		}
	qsort(order, n, sizeof(*order), cmp_layout);
	if ((rc = build_header(path, order, n, metadata, &h, e)))
		goto out;
	for (i = 0; i < 8; i++)
		len[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = mcb_errf(e, MCB_EIO, "cannot create '%s':", path);
		goto out;
	}
	rc = mcb_os_write_all(fd, len, 8);
	if (!rc)
		rc = mcb_os_write_all(fd, h.data, h.len);
	for (i = 0; !rc && i < n; i++)
		rc = mcb_os_write_all(fd, order[i]->data, order[i]->nbytes);
	if (rc)
		mcb_errf(e, MCB_EIO, "cannot write '%s':", path);
	if (close(fd) < 0 && !rc)
		rc = mcb_errf(e, MCB_EIO, "cannot close '%s':", path);
out:
	free(order);
	mcb_buf_release(&h);
	return rc;
}
