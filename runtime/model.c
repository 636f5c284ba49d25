/*
 * model: the in-memory model, its checks, format detection and the IR.
 *
 * IR version 1 (mcbuild's internal form between steps) is a safetensors file
 * (runtime/safetensors.c: tensors sorted by descending element size then
 * name, header padded with spaces to a multiple of 8) whose tensors are the
 * model's tensors under their GGUF names with row-major shapes, and whose
 * __metadata__ object holds exactly three string values:
 *
 *   "mcbuild.ir"    "1"
 *   "mcbuild.arch"  canonical JSON (include/mcb/json.h: sorted keys, no
 *                   whitespace, reals that read back as the same double) of
 *                   {"architecture": "llama", "dim": int, "hidden_dim": int,
 *                    "n_layers": int, "n_heads": int, "n_kv_heads": int,
 *                    "vocab_size": int, "seq_len": int, "head_dim": int,
 *                    "norm_eps": real, "rope_theta": real,
 *                    "tied_embeddings": bool}
 *   "mcbuild.meta"  canonical JSON of the model's meta object:
 *                   "gguf"   passthrough GGUF keys (shape in runtime/gguf.c)
 *                   "quant"  {tensor name: quantization record (an object)}
 *                   "source" {"format": "llama2c" | "gguf" | "hf"}
 *                   "part"   present only in a part (runtime/part.c): the
 *                            file holds one group of tensors, not a model
 *                   other keys are carried along untouched.
 *
 * Canonical reals bring every double back bit-exactly and both encoders are
 * deterministic, so save -> load -> save reproduces the bytes.
 * The loader treats the file as hostile: any other metadata key, a missing or
 * mistyped config field, a config out of range (mcb_model_check_config) or a
 * tensor set that does not match the config (mcb_model_check_llama) is an
 * error naming the file.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/safetensors.h"

#define IR_VERSION "1"

void mcb_model_init(struct mcb_model *m)
{
	mcb_arena_init(&m->arena);
	memset(m->arch, 0, sizeof(m->arch));
	memset(&m->cfg, 0, sizeof(m->cfg));
	m->tensors = NULL;
	m->ntensors = m->cap = 0;
	m->meta = json_object();
	if (!m->meta)
		mcb_die("out of memory allocating a JSON object");
	m->map.data = NULL;
	m->map.size = 0;
}

void mcb_model_release(struct mcb_model *m)
{
	size_t i;

	for (i = 0; i < m->ntensors; i++)
		if (m->tensors[i].owned)
			free(m->tensors[i].data);
	free(m->tensors);
	m->tensors = NULL;
	m->ntensors = m->cap = 0;
	mcb_arena_release(&m->arena);
	json_decref(m->meta);
	m->meta = NULL;
	mcb_os_unmap(&m->map);
}

struct mcb_tensor *mcb_model_find(const struct mcb_model *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->ntensors; i++)
		if (!strcmp(m->tensors[i].name, name))
			return &m->tensors[i];
	return NULL;
}

struct mcb_tensor *mcb_model_add(struct mcb_model *m, const char *name, enum mcb_dtype dtype,
				 int ndim, const int64_t *shape, void *data, size_t nbytes, int owned)
{
	struct mcb_tensor *t;

	assert(ndim >= 0 && ndim <= MCB_MAX_DIMS && dtype < MCB_DT_COUNT);
	if (m->ntensors == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->tensors = mcb_xrealloc(m->tensors, m->cap * sizeof(*m->tensors));
	}
	t = &m->tensors[m->ntensors++];
	memset(t, 0, sizeof(*t));
	t->name = mcb_arena_strdup(&m->arena, name);
	t->dtype = dtype;
	t->ndim = ndim;
	if (ndim)
		memcpy(t->shape, shape, (size_t)ndim * sizeof(*shape));
	t->data = data;
	t->nbytes = nbytes;
	t->owned = owned;
	return t;
}

/* Alignment a typed pointer to dtype t needs (a block type: its fp16 scale). */
static size_t dtype_align(enum mcb_dtype t)
{
	const struct mcb_dtype_info *d = mcb_dtype_info(t);

	return d->block == 1 ? d->block_bytes : 2;
}

int mcb_model_add_mapped(struct mcb_model *m, const char *name, enum mcb_dtype dtype, int ndim,
			 const int64_t *shape, const void *data, size_t nbytes,
			 struct mcb_tensor **out, struct mcb_errctx *e)
{
	struct mcb_tensor *t;
	void *copy;

	if (nbytes == 0 || (uintptr_t)data % dtype_align(dtype) == 0) {
		t = mcb_model_add(m, name, dtype, ndim, shape, (void *)data, nbytes, 0);
	} else {
		copy = malloc(nbytes);
		if (!copy)
			return mcb_errf(e, MCB_ENOMEM, "cannot allocate %zu bytes for tensor '%s'",
					nbytes, name);
		memcpy(copy, data, nbytes);
		t = mcb_model_add(m, name, dtype, ndim, shape, copy, nbytes, 1);
	}
	if (out)
		*out = t;
	return 0;
}

int mcb_model_new_tensor(struct mcb_model *m, const char *name, enum mcb_dtype dtype, int ndim,
			 const int64_t *shape, struct mcb_tensor **out, struct mcb_errctx *e)
{
	const struct mcb_dtype_info *d;
	uint64_t numel = 1, nbytes;
	void *data;
	int i;

	if (dtype >= MCB_DT_COUNT || ndim < 0 || ndim > MCB_MAX_DIMS)
		return mcb_errf(e, MCB_ERANGE, "tensor '%s': bad dtype or %d dimensions", name, ndim);
	d = mcb_dtype_info(dtype);
	for (i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return mcb_errf(e, MCB_ERANGE, "tensor '%s': negative dimension %" PRId64,
					name, shape[i]);
		if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
			return mcb_errf(e, MCB_ERANGE, "tensor '%s': element count overflows", name);
	}
	if (d->block > 1 && (ndim == 0 || shape[ndim - 1] % d->block))
		return mcb_errf(e, MCB_ERANGE, "tensor '%s': rows of %s must be a multiple of %u",
				name, d->name, d->block);
	if (mcb_dtype_nbytes(dtype, numel, &nbytes) || nbytes > SIZE_MAX)
		return mcb_errf(e, MCB_ERANGE, "tensor '%s': size of %" PRIu64 " %s elements overflows",
				name, numel, d->name);
	data = calloc(nbytes ? (size_t)nbytes : 1, 1);
	if (!data)
		return mcb_errf(e, MCB_ENOMEM, "cannot allocate %" PRIu64 " bytes for tensor '%s'",
				nbytes, name);
	*out = mcb_model_add(m, name, dtype, ndim, shape, data, (size_t)nbytes, 1);
	return 0;
}

int mcb_model_remove(struct mcb_model *m, const char *name)
{
	struct mcb_tensor *t = mcb_model_find(m, name);
	size_t i;

	if (!t)
		return MCB_ENOENT;
	i = (size_t)(t - m->tensors);
	if (t->owned)
		free(t->data);
	memmove(&m->tensors[i], &m->tensors[i + 1], (m->ntensors - i - 1) * sizeof(*t));
	m->ntensors--;
	return 0;
}

/* One range check of mcb_model_check_config. */
static int check_range(const char *what, const char *field, int64_t v, int64_t max,
		       struct mcb_errctx *e)
{
	if (v < 1 || v > max)
		return mcb_errf(e, MCB_EFORMAT, "%s: %s %" PRId64 " is out of range 1..%" PRId64,
				what, field, v, max);
	return 0;
}

int mcb_model_check_config(const struct mcb_llama_config *c, const char *what,
			   struct mcb_errctx *e)
{
	int rc;

	if ((rc = check_range(what, "dim", c->dim, MCB_LLAMA_MAX_DIM, e)) ||
	    (rc = check_range(what, "hidden_dim", c->hidden_dim, MCB_LLAMA_MAX_HIDDEN, e)) ||
	    (rc = check_range(what, "n_layers", c->n_layers, MCB_LLAMA_MAX_LAYERS, e)) ||
	    (rc = check_range(what, "n_heads", c->n_heads, c->dim, e)) ||
	    (rc = check_range(what, "n_kv_heads", c->n_kv_heads, c->n_heads, e)) ||
	    (rc = check_range(what, "vocab_size", c->vocab_size, MCB_LLAMA_MAX_VOCAB, e)) ||
	    (rc = check_range(what, "seq_len", c->seq_len, MCB_LLAMA_MAX_SEQ, e)))
		return rc;
	if (c->head_dim == c->dim / c->n_heads && c->dim % c->n_heads)
		return mcb_errf(e, MCB_EFORMAT, "%s: n_heads %" PRId64 " does not divide dim %" PRId64,
				what, c->n_heads, c->dim);
	if (c->n_heads % c->n_kv_heads)
		return mcb_errf(e, MCB_EFORMAT,
				"%s: n_kv_heads %" PRId64 " does not divide n_heads %" PRId64, what,
				c->n_kv_heads, c->n_heads);
	/* head_dim is dim / n_heads unless heads were pruned (or the source says
	 * otherwise: GGUF's attention.key_length); q has n_heads * head_dim rows */
	if (c->head_dim < 2 || c->head_dim % 2 || c->head_dim > c->dim ||
	    c->n_heads * c->head_dim > 4 * c->dim)
		return mcb_errf(e, MCB_EFORMAT,
				"%s: head_dim %" PRId64 " must be even and at most dim %" PRId64
				", with n_heads * head_dim at most 4 dim",
				what, c->head_dim, c->dim);
	if (!isfinite(c->norm_eps) || !(c->norm_eps > 0) || c->norm_eps >= 1)
		return mcb_errf(e, MCB_EFORMAT, "%s: norm_eps %g is not in (0, 1)", what, c->norm_eps);
	if (!isfinite(c->rope_theta) || !(c->rope_theta > 0))
		return mcb_errf(e, MCB_EFORMAT, "%s: rope_theta %g is not a positive number", what,
				c->rope_theta);
	if (c->tied_embeddings != 0 && c->tied_embeddings != 1)
		return mcb_errf(e, MCB_EFORMAT, "%s: tied_embeddings must be 0 or 1", what);
	return 0;
}

/* "[a, b]" into buf. */
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
	size_t len = 0;
	int i;

	len += (size_t)snprintf(buf, n, "[");
	for (i = 0; i < ndim && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%" PRId64, i ? ", " : "", shape[i]);
	if (len < n)
		snprintf(buf + len, n - len, "]");
	return buf;
}

/* Tensor names sorted, so that checking a hostile file with a million tensors
 * costs n log n, not n per required tensor. */
struct name_index {
	const struct mcb_tensor **sorted; /* m->ntensors entries, by name */
	size_t n;
};

static int cmp_tensor_name(const void *a, const void *b)
{
	return strcmp((*(const struct mcb_tensor *const *)a)->name,
		      (*(const struct mcb_tensor *const *)b)->name);
}

static int cmp_key_tensor(const void *key, const void *b)
{
	return strcmp(key, (*(const struct mcb_tensor *const *)b)->name);
}

static const struct mcb_tensor *index_find(const struct name_index *ix, const char *name)
{
	const struct mcb_tensor *const *p;

	p = bsearch(name, ix->sorted, ix->n, sizeof(*ix->sorted), cmp_key_tensor);
	return p ? *p : NULL;
}

/* The tensor name must exist with the given shape and a usable dtype. */
static int need(const struct mcb_model *m, const struct name_index *ix, const char *what,
		const char *name, int ndim, int64_t d0, int64_t d1, struct mcb_errctx *e)
{
	const struct mcb_tensor *t = index_find(ix, name);
	int64_t want[2] = {d0, d1};
	char have[160], exp[64];
	const char *fmt, *form;
	json_t *rec;
	int ok;

	if (!t)
		return mcb_errf(e, MCB_EFORMAT, "%s: missing tensor '%s'", what, name);
	rec = json_object_get(json_object_get(m->meta, "quant"), name);
	fmt = json_string_value(json_object_get(rec, "format"));
	if (!rec || json_object_get(rec, "fallback") || (fmt && !strcmp(fmt, "float")))
		fmt = "float";
	else if (!fmt)
		fmt = "int";
	/* the codes' dtype and shape as the record's form has them (qtensor.h);
	 * the side tensors are checked where the weight is read */
	if (!strcmp(fmt, "float")) {
		ok = t->dtype == MCB_DT_F32 || t->dtype == MCB_DT_F16 || t->dtype == MCB_DT_BF16;
		form = "F32, F16 or BF16";
	} else if (!strcmp(fmt, "int")) {
		ok = t->dtype == MCB_DT_I8 || t->dtype == MCB_DT_U8;
		form = "I8 or U8 (integer codes)";
	} else if (!strcmp(fmt, "fp8")) {
		ok = t->dtype == MCB_DT_F8_E4M3;
		form = "F8_E4M3";
	} else if (!strcmp(fmt, "ggml")) {
		int gt = mcb_dtype_from_name(json_string_value(json_object_get(rec, "ggml_type")));
		const struct mcb_dtype_info *di = gt >= MCB_DT_Q8_0 ? mcb_dtype_info(gt) : NULL;

		if (!di || ndim != 2 || d1 % di->block)
			return mcb_errf(e, MCB_EFORMAT,
					"%s: tensor '%s': ggml type '%s' cannot hold rows of %" PRId64,
					what, name,
					json_string_value(json_object_get(rec, "ggml_type"))
						? json_string_value(json_object_get(rec, "ggml_type"))
						: "(none)",
					d1);
		want[1] = d1 / di->block * di->block_bytes; /* U8 [rows, row bytes] */
		ok = t->dtype == MCB_DT_U8;
		form = "U8 (ggml blocks)";
	} else if (!strcmp(fmt, "lowrank")) {
		const json_t *rk = json_object_get(rec, "rank"), *cl = json_object_get(rec, "cols");

		if (ndim != 2 || !json_is_integer(cl) || json_integer_value(cl) != d1 ||
		    !json_is_integer(rk))
			return mcb_errf(e, MCB_EFORMAT,
					"%s: tensor '%s': lowrank record needs \"rank\" and \"cols\" "
					"%" PRId64, what, name, d1);
		want[1] = (int64_t)json_integer_value(rk); /* A: F32 [rows, rank] */
		ok = t->dtype == MCB_DT_F32;
		form = "F32 (lowrank factor A)";
	} else {
		return mcb_errf(e, MCB_EFORMAT, "%s: tensor '%s': unknown quantization format '%s'",
				what, name, fmt);
	}
	if (t->ndim != ndim || t->shape[0] != want[0] || (ndim == 2 && t->shape[1] != want[1]))
		return mcb_errf(e, MCB_EFORMAT, "%s: tensor '%s' has shape %s, expected %s", what, name,
				shape_str(have, sizeof(have), t->ndim, t->shape),
				shape_str(exp, sizeof(exp), ndim, want));
	if (!ok)
		return mcb_errf(e, MCB_EFORMAT, "%s: tensor '%s' has dtype %s, expected %s", what,
				name, mcb_dtype_info(t->dtype)->name, form);
	return 0;
}

int mcb_model_check_llama(const struct mcb_model *m, const char *what, struct mcb_errctx *e)
{
	const struct mcb_llama_config *c = &m->cfg;
	/* per-layer tensors: suffix and shape, from the config */
	const int64_t kv = c->n_kv_heads * c->head_dim, qd = c->n_heads * c->head_dim;
	const struct {
		const char *suffix;
		int ndim;
		int64_t d0, d1;
	} layer[] = {
		{"attn_norm", 1, c->dim, 0},          {"attn_q", 2, qd, c->dim},
		{"attn_k", 2, kv, c->dim},            {"attn_v", 2, kv, c->dim},
		{"attn_output", 2, c->dim, qd},       {"ffn_norm", 1, c->dim, 0},
		{"ffn_gate", 2, c->hidden_dim, c->dim}, {"ffn_up", 2, c->hidden_dim, c->dim},
		{"ffn_down", 2, c->dim, c->hidden_dim},
	};
	struct name_index ix;
	char name[96];
	int64_t l;
	size_t i;
	int rc;

	if (strcmp(m->arch, "llama"))
		return mcb_errf(e, MCB_EFORMAT, "%s: architecture '%s' is not llama", what, m->arch);
	if ((rc = mcb_model_check_config(c, what, e)))
		return rc;
	ix.n = m->ntensors;
	ix.sorted = mcb_xcalloc(ix.n, sizeof(*ix.sorted));
	for (i = 0; i < ix.n; i++)
		ix.sorted[i] = &m->tensors[i];
	qsort(ix.sorted, ix.n, sizeof(*ix.sorted), cmp_tensor_name);
	if ((rc = need(m, &ix, what, "token_embd.weight", 2, c->vocab_size, c->dim, e)) ||
	    (rc = need(m, &ix, what, "output_norm.weight", 1, c->dim, 0, e)))
		goto out;
	if (!c->tied_embeddings)
		rc = need(m, &ix, what, "output.weight", 2, c->vocab_size, c->dim, e);
	else if (index_find(&ix, "output.weight"))
		rc = mcb_errf(e, MCB_EFORMAT, "%s: has output.weight but the embeddings are tied",
			      what);
	for (l = 0; !rc && l < c->n_layers; l++)
		for (i = 0; !rc && i < sizeof(layer) / sizeof(layer[0]); i++) {
			snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", l, layer[i].suffix);
			rc = need(m, &ix, what, name, layer[i].ndim, layer[i].d0, layer[i].d1, e);
		}
out:
	free(ix.sorted);
	return rc;
}

static const char *const format_names[] = {
	[MCB_FMT_UNKNOWN] = "unknown",
	[MCB_FMT_LLAMA2C] = "llama2c",
	[MCB_FMT_GGUF] = "gguf",
	[MCB_FMT_SAFETENSORS] = "safetensors",
};

const char *mcb_model_format_name(enum mcb_model_format f)
{
	if ((unsigned)f >= sizeof(format_names) / sizeof(format_names[0]))
		return "unknown";
	return format_names[f];
}

enum mcb_model_format mcb_model_format_parse(const char *name)
{
	int f;

	for (f = MCB_FMT_LLAMA2C; f <= MCB_FMT_SAFETENSORS; f++)
		if (!strcmp(format_names[f], name))
			return (enum mcb_model_format)f;
	return MCB_FMT_UNKNOWN;
}

enum mcb_model_format mcb_model_detect(const char *path, struct mcb_errctx *e)
{
	struct mcb_map map;
	struct mcb_model tmp;
	uint64_t n = 0;
	int i, rc;
	enum mcb_model_format f = MCB_FMT_UNKNOWN;

	if (mcb_os_map(path, &map, e))
		return MCB_FMT_UNKNOWN;
	if (map.size >= 4 && !memcmp(map.data, "GGUF", 4)) {
		f = MCB_FMT_GGUF;
	} else if (map.size >= 10) {
		for (i = 7; i >= 0; i--)
			n = n << 8 | map.data[i];
		if (n >= 2 && n <= map.size - 8 && map.data[8] == '{')
			f = MCB_FMT_SAFETENSORS;
	}
	mcb_os_unmap(&map);
	if (f != MCB_FMT_UNKNOWN)
		return f;
	/* llama.c has no magic: its header must imply exactly the file's size */
	mcb_model_init(&tmp);
	rc = mcb_llama2c_read(path, &tmp, e);
	mcb_model_release(&tmp);
	if (!rc)
		return MCB_FMT_LLAMA2C;
	if (e) {
		char why[MCB_ERRMSG_MAX];

		memcpy(why, e->msg, sizeof(why));
		mcb_errf(e, MCB_EFORMAT,
			 "'%s': not a GGUF, safetensors or llama2.c file (as llama2.c: %.512s)", path,
			 why);
	}
	return MCB_FMT_UNKNOWN;
}

/* Canonical JSON of m's architecture config into out. */
static void arch_json(const struct mcb_model *m, struct mcb_buf *out)
{
	const struct mcb_llama_config *c = &m->cfg;
	json_t *o = json_object();

	json_object_set_new(o, "architecture", json_string(m->arch));
	json_object_set_new(o, "dim", json_integer(c->dim));
	json_object_set_new(o, "hidden_dim", json_integer(c->hidden_dim));
	json_object_set_new(o, "n_layers", json_integer(c->n_layers));
	json_object_set_new(o, "n_heads", json_integer(c->n_heads));
	json_object_set_new(o, "n_kv_heads", json_integer(c->n_kv_heads));
	json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
	json_object_set_new(o, "seq_len", json_integer(c->seq_len));
	json_object_set_new(o, "head_dim", json_integer(c->head_dim));
	json_object_set_new(o, "norm_eps", json_real(c->norm_eps));
	json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
	json_object_set_new(o, "tied_embeddings", json_boolean(c->tied_embeddings));
	mcb_json_canonical(o, out);
	json_decref(o);
}

int mcb_model_save_ir(const struct mcb_model *m, const char *path, struct mcb_errctx *e)
{
	struct mcb_buf arch = MCB_BUF_INIT, meta = MCB_BUF_INIT, what = MCB_BUF_INIT;
	const struct mcb_tensor **list;
	json_t *md;
	size_t i;
	int rc;

	mcb_buf_printf(&what, "'%s'", path);
	rc = mcb_model_is_part(m) ? mcb_model_check_config(&m->cfg, what.data, e)
				  : mcb_model_check_llama(m, what.data, e);
	mcb_buf_release(&what);
	if (rc)
		return mcb_errprefix(e, "refusing to write an invalid model");
	arch_json(m, &arch);
	mcb_json_canonical(m->meta, &meta);
	md = json_object();
	json_object_set_new(md, "mcbuild.ir", json_string(IR_VERSION));
	json_object_set_new(md, "mcbuild.arch", json_stringn(arch.data, arch.len));
	json_object_set_new(md, "mcbuild.meta", json_stringn(meta.data, meta.len));
	list = mcb_xcalloc(m->ntensors, sizeof(*list));
	for (i = 0; i < m->ntensors; i++)
		list[i] = &m->tensors[i];
	rc = mcb_st_write(path, list, m->ntensors, md, e);
	free(list);
	json_decref(md);
	mcb_buf_release(&arch);
	mcb_buf_release(&meta);
	return rc;
}

/* An integer config field of the arch object. */
static int arch_int(json_t *o, const char *key, int64_t *out, const char *what,
		    struct mcb_errctx *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return mcb_errf(e, MCB_EFORMAT, "%s: mcbuild.arch: '%s' must be an integer", what, key);
	*out = json_integer_value(v);
	return 0;
}

static int arch_real(json_t *o, const char *key, double *out, const char *what,
		     struct mcb_errctx *e)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_number(v))
		return mcb_errf(e, MCB_EFORMAT, "%s: mcbuild.arch: '%s' must be a number", what, key);
	*out = json_number_value(v);
	return 0;
}

/* Parse and check "mcbuild.arch" into m->arch and m->cfg. */
static int load_arch(struct mcb_model *m, json_t *text, const char *what, struct mcb_errctx *e)
{
	static const char *const keys[] = {
		"architecture", "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads",
		"vocab_size", "seq_len", "head_dim", "norm_eps", "rope_theta", "tied_embeddings",
	};
	struct mcb_llama_config *c = &m->cfg;
	const char *key;
	json_t *o, *v;
	size_t i;
	int rc;

	o = mcb_json_parse(json_string_value(text), json_string_length(text),
			   "mcbuild.arch", e);
	if (!o)
		return mcb_errprefix(e, "%s", what);
	rc = MCB_EFORMAT;
	if (!json_is_object(o)) {
		mcb_errf(e, rc, "%s: mcbuild.arch is not a JSON object", what);
		goto out;
	}
	json_object_foreach(o, key, v) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strcmp(keys[i], key))
				break;
		if (i == sizeof(keys) / sizeof(keys[0])) {
			mcb_errf(e, rc, "%s: mcbuild.arch: unknown key '%s'", what, key);
			goto out;
		}
	}
	v = json_object_get(o, "architecture");
	if (!json_is_string(v) || strcmp(json_string_value(v), "llama")) {
		mcb_errf(e, MCB_EUNSUP, "%s: mcbuild.arch: architecture must be \"llama\"", what);
		rc = MCB_EUNSUP;
		goto out;
	}
	strcpy(m->arch, "llama");
	v = json_object_get(o, "tied_embeddings");
	if (!json_is_boolean(v)) {
		mcb_errf(e, rc, "%s: mcbuild.arch: 'tied_embeddings' must be a boolean", what);
		goto out;
	}
	c->tied_embeddings = json_is_true(v);
	if (arch_int(o, "dim", &c->dim, what, e) ||
	    arch_int(o, "hidden_dim", &c->hidden_dim, what, e) ||
	    arch_int(o, "n_layers", &c->n_layers, what, e) ||
	    arch_int(o, "n_heads", &c->n_heads, what, e) ||
	    arch_int(o, "n_kv_heads", &c->n_kv_heads, what, e) ||
	    arch_int(o, "vocab_size", &c->vocab_size, what, e) ||
	    arch_int(o, "seq_len", &c->seq_len, what, e) ||
	    arch_int(o, "head_dim", &c->head_dim, what, e) ||
	    arch_real(o, "norm_eps", &c->norm_eps, what, e) ||
	    arch_real(o, "rope_theta", &c->rope_theta, what, e))
		goto out;
	rc = mcb_model_check_config(c, what, e);
out:
	json_decref(o);
	return rc;
}

/* Parse and check "mcbuild.meta" into m->meta. */
static int load_meta(struct mcb_model *m, json_t *text, const char *what, struct mcb_errctx *e)
{
	const char *key;
	json_t *o, *q, *v;
	int rc = MCB_EFORMAT;

	o = mcb_json_parse(json_string_value(text), json_string_length(text),
			   "mcbuild.meta", e);
	if (!o)
		return mcb_errprefix(e, "%s", what);
	if (!json_is_object(o)) {
		mcb_errf(e, rc, "%s: mcbuild.meta is not a JSON object", what);
		goto bad;
	}
	q = json_object_get(o, "quant");
	if (q && !json_is_object(q)) {
		mcb_errf(e, rc, "%s: mcbuild.meta: 'quant' is not an object", what);
		goto bad;
	}
	json_object_foreach(q, key, v)
		if (!json_is_object(v)) {
			mcb_errf(e, rc, "%s: mcbuild.meta: quant record for '%s' is not an object",
				 what, key);
			goto bad;
		}
	if (json_object_get(o, "gguf") && !json_is_object(json_object_get(o, "gguf"))) {
		mcb_errf(e, rc, "%s: mcbuild.meta: 'gguf' is not an object", what);
		goto bad;
	}
	json_decref(m->meta);
	m->meta = o;
	return 0;
bad:
	json_decref(o); /* after the message: key points into o */
	return rc;
}

int mcb_model_is_part(const struct mcb_model *m)
{
	return json_object_get(m->meta, "part") != NULL;
}

static int load_ir(const char *path, struct mcb_model *m, int part_ok, struct mcb_errctx *e)
{
	struct mcb_buf what = MCB_BUF_INIT;
	struct mcb_st_file f;
	const struct mcb_tensor *t;
	json_t *ver, *arch, *meta, *v;
	const char *key;
	size_t i;
	int rc;

	if ((rc = mcb_st_open(path, &f, e)))
		return rc;
	mcb_buf_printf(&what, "'%s'", path);
	rc = MCB_EFORMAT;
	ver = json_object_get(f.metadata, "mcbuild.ir");
	arch = json_object_get(f.metadata, "mcbuild.arch");
	meta = json_object_get(f.metadata, "mcbuild.meta");
	if (!ver || !arch || !meta) {
		mcb_errf(e, rc, "%s: not an mcbuild IR file (__metadata__ lacks mcbuild.ir, "
			 "mcbuild.arch or mcbuild.meta)", what.data);
		goto fail;
	}
	if (strcmp(json_string_value(ver), IR_VERSION)) {
		rc = mcb_errf(e, MCB_EUNSUP, "%s: IR version '%s' is not supported (expected '%s')",
			      what.data, json_string_value(ver), IR_VERSION);
		goto fail;
	}
	json_object_foreach(f.metadata, key, v)
		if (strcmp(key, "mcbuild.ir") && strcmp(key, "mcbuild.arch") &&
		    strcmp(key, "mcbuild.meta")) {
			mcb_errf(e, rc, "%s: unknown __metadata__ key '%s'", what.data, key);
			goto fail;
		}
	if ((rc = load_arch(m, arch, what.data, e)) || (rc = load_meta(m, meta, what.data, e)))
		goto fail;
	for (i = 0; i < f.ntensors; i++) {
		t = &f.tensors[i]; /* names are unique: the safetensors reader checks */
		if ((rc = mcb_model_add_mapped(m, t->name, t->dtype, t->ndim, t->shape, t->data,
					       t->nbytes, NULL, e))) {
			mcb_errprefix(e, "%s", what.data);
			goto fail;
		}
	}
	m->map = f.map; /* the borrowed tensors now live as long as m */
	f.map.data = NULL;
	f.map.size = 0;
	mcb_st_close(&f);
	if (!mcb_model_is_part(m))
		rc = mcb_model_check_llama(m, what.data, e);
	else if (!part_ok)
		rc = mcb_errf(e, MCB_EFORMAT, "%s: is a part of a model (one group of tensors), "
			      "not a whole model", what.data);
	else if (!json_is_object(json_object_get(m->meta, "part")))
		rc = mcb_errf(e, MCB_EFORMAT, "%s: mcbuild.meta: 'part' is not an object",
			      what.data);
	else
		rc = 0;
	mcb_buf_release(&what);
	if (rc) {
		mcb_model_release(m);
		mcb_model_init(m);
	}
	return rc;
fail:
	mcb_st_close(&f);
	mcb_buf_release(&what);
	mcb_model_release(m);
	mcb_model_init(m);
	return rc;
}

int mcb_model_load_ir(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	return load_ir(path, m, 0, e);
}

int mcb_model_load_ir_or_part(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	return load_ir(path, m, 1, e);
}

int32_t mcb_model_bos(const struct mcb_model *m)
{
	json_t *v = json_object_get(json_object_get(json_object_get(m->meta, "gguf"),
						     "tokenizer.ggml.bos_token_id"),
				    "value");

	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) < m->cfg.vocab_size)
		return (int32_t)json_integer_value(v);
	return 1;
}

int mcb_model_probe(const char *path, const char *format, const char *config,
		    struct mcb_llama_config *cfg, struct mcb_errctx *e)
{
	enum mcb_model_format f = mcb_model_format_parse(format);
	struct mcb_model m;
	int rc;

	if (!strcmp(format, "auto") && (f = mcb_model_detect(path, e)) == MCB_FMT_UNKNOWN)
		return e && e->code ? e->code : MCB_EFORMAT;
	mcb_model_init(&m);
	switch (f) {
	case MCB_FMT_LLAMA2C: /* cheap: the tensors are borrowed from a map */
		rc = mcb_llama2c_read(path, &m, e);
		break;
	case MCB_FMT_GGUF:
		rc = mcb_gguf_read_config(path, &m, e);
		break;
	case MCB_FMT_SAFETENSORS:
		rc = config ? mcb_hf_read_config(config, &m, e)
			    : mcb_errf(e, MCB_EINVAL, "'%s': no config.json given", path);
		break;
	default:
		rc = mcb_errf(e, MCB_EINVAL, "unknown model format '%s'", format);
	}
	if (!rc)
		*cfg = m.cfg;
	mcb_model_release(&m);
	return rc;
}
