/*
 * hf: Hugging Face LlamaForCausalLM checkpoints (one model.safetensors plus
 * config.json): names, config and the Q/K row permutation.
 *
 * HF applies RoPE with "rotate half": within a head of hd rows, row i pairs
 * with row i + hd/2.  The IR (like llama.cpp and llama2.c) pairs rows 2i and
 * 2i + 1.  HF -> IR is convert_hf_to_gguf.py's permute:
 *   w.reshape(n_head, 2, hd/2, cols).swapaxes(1, 2).reshape(n_head*hd, cols)
 * i.e. IR row h*hd + 2i + j = HF row h*hd + j*hd/2 + i  (i < hd/2, j in {0, 1}),
 * with n_head = n_heads for q_proj and n_kv_heads for k_proj.  IR -> HF is
 * the inverse.
 *
 * Quantized checkpoints (the layouts runtime/step_export.c writes, specified
 * there) are recognised by config.json's quantization_config and read back
 * into the internal form's records (include/mcb/qtensor.h), exactly:
 *   "gptq" (AutoGPTQ v1: checkpoint_format absent or "gptq"; bits 2, 3, 4,
 *          8; group_size -1 or 1..2^20): P.qweight, P.qzeros (zero - 1),
 *          P.scales, P.g_idx -> int record, codes unpacked (runtime/quant.c);
 *          symmetric I8 codes when "sym" and every zero is 2^(bits-1), else U8
 *          codes and zeros; g_idx kept unless it is column / group_size;
 *          per-channel scales as F32 [rows]
 *   "awq" (4-bit GEMM with zero point): P.qweight, P.qzeros, P.scales ->
 *          asymmetric int record
 *   "compressed-tensors" (float-quantized / int-quantized, 8-bit symmetric
 *          channel weights): P.weight F8_E4M3 or I8, P.weight_scale [rows, 1],
 *          P.input_scale [1] -> fp8 record, or int record with "input_scale"
 *   "mcbuild-int8": X I8 and X_scale -> int record
 * and "<P>.weight_mask" U8 tensors with a "dense" sparsity_config into the
 * record's "mask" and "sparsity".  Q/K rows of codes, scales, zeros and masks
 * are permuted to the interleaved order.  The file is hostile: every side
 * tensor must belong to a weight, dtypes and shapes must be those the config
 * implies (sizes stay far from overflow: the config's caps bound rows and
 * columns by 2^22), zero points and g_idx entries in range, scales finite,
 * fp8 codes not NaN; errors name the file and the tensor.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <strings.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/quant.h"
#include "mcb/safetensors.h"

#define MAX_CONFIG (1 << 20) /* bytes of config.json */

/* Whole-model tensors: HF name, GGUF name. */
static const char *const global_names[][2] = {
	{"model.embed_tokens.weight", "token_embd.weight"},
	{"model.norm.weight", "output_norm.weight"},
	{"lm_head.weight", "output.weight"},
};

/* Per-layer tensors: suffix after "model.layers.N." and after "blk.N.". */
static const char *const layer_names[][2] = {
	{"input_layernorm.weight", "attn_norm.weight"},
	{"self_attn.q_proj.weight", "attn_q.weight"},
	{"self_attn.k_proj.weight", "attn_k.weight"},
	{"self_attn.v_proj.weight", "attn_v.weight"},
	{"self_attn.o_proj.weight", "attn_output.weight"},
	{"post_attention_layernorm.weight", "ffn_norm.weight"},
	{"mlp.gate_proj.weight", "ffn_gate.weight"},
	{"mlp.up_proj.weight", "ffn_up.weight"},
	{"mlp.down_proj.weight", "ffn_down.weight"},
};

#define NGLOBAL (sizeof(global_names) / sizeof(global_names[0]))
#define NLAYER (sizeof(layer_names) / sizeof(layer_names[0]))

/*
 * Map name from column `from` of the tables to column `to`.  prefix[k] is the
 * layer prefix of column k ("model.layers." or "blk.").  The layer number must
 * be canonical decimal (no sign, no leading zero, at most 9 digits) so that
 * the mapping is a bijection.
 */
static int map_name(const char *name, int from, int to, char *out, size_t n)
{
	static const char *const prefix[2] = {"model.layers.", "blk."};
	size_t i, plen = strlen(prefix[from]), digits = 0;
	const char *p;
	int w;

	for (i = 0; i < NGLOBAL; i++)
		if (!strcmp(name, global_names[i][from])) {
			w = snprintf(out, n, "%s", global_names[i][to]);
			return w < 0 || (size_t)w >= n ? -1 : 0;
		}
	if (strncmp(name, prefix[from], plen))
		return -1;
	p = name + plen;
	while (p[digits] >= '0' && p[digits] <= '9')
		digits++;
	if (digits == 0 || digits > 9 || (digits > 1 && p[0] == '0') || p[digits] != '.')
		return -1;
	for (i = 0; i < NLAYER; i++)
		if (!strcmp(p + digits + 1, layer_names[i][from])) {
			w = snprintf(out, n, "%s%.*s.%s", prefix[to], (int)digits, p, layer_names[i][to]);
			return w < 0 || (size_t)w >= n ? -1 : 0;
		}
	return -1;
}

int mcb_hf_to_gguf_name(const char *hf, char *out, size_t n)
{
	return map_name(hf, 0, 1, out, n);
}

int mcb_gguf_to_hf_name(const char *gguf, char *out, size_t n)
{
	return map_name(gguf, 1, 0, out, n);
}

int mcb_hf_permute_rows(void *data, int64_t n_head, int64_t head_dim, int64_t cols,
			size_t esize, int to_interleaved, struct mcb_errctx *e)
{
	unsigned char *base = data, *tmp;
	size_t row, head, half, i, j, ir, hr;
	int64_t h;

	if (n_head < 1 || head_dim < 2 || head_dim % 2 || cols < 0 || esize == 0)
		return mcb_errf(e, MCB_EINVAL, "cannot permute %" PRId64 " heads of %" PRId64
				" rows: head size must be even and positive", n_head, head_dim);
	if (mcb_mul_ok((size_t)cols, esize, &row) || mcb_mul_ok(row, (size_t)head_dim, &head))
		return mcb_errf(e, MCB_ERANGE, "cannot permute rows: size overflows");
	if (head == 0)
		return 0;
	if (!(tmp = malloc(head)))
		return mcb_errf(e, MCB_ENOMEM, "cannot allocate %zu bytes to permute rows", head);
	half = (size_t)head_dim / 2;
	for (h = 0; h < n_head; h++, base += head) {
		memcpy(tmp, base, head);
		for (i = 0; i < half; i++)
			for (j = 0; j < 2; j++) {
				ir = 2 * i + j;    /* interleaved (IR) row */
				hr = j * half + i; /* rotate-half (HF) row */
				if (to_interleaved)
					memcpy(base + ir * row, tmp + hr * row, row);
				else
					memcpy(base + hr * row, tmp + ir * row, row);
			}
	}
	free(tmp);
	return 0;
}

json_t *mcb_hf_config(const struct mcb_model *m)
{
	const struct mcb_llama_config *c = &m->cfg;
	const struct mcb_tensor *emb = mcb_model_find(m, "token_embd.weight");
	const char *dtype = "float32";
	json_t *o = json_object();

	if (emb && emb->dtype == MCB_DT_F16)
		dtype = "float16";
	else if (emb && emb->dtype == MCB_DT_BF16)
		dtype = "bfloat16";
	json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
	json_object_set_new(o, "model_type", json_string("llama"));
	json_object_set_new(o, "hidden_act", json_string("silu"));
	json_object_set_new(o, "hidden_size", json_integer(c->dim));
	json_object_set_new(o, "intermediate_size", json_integer(c->hidden_dim));
	json_object_set_new(o, "num_hidden_layers", json_integer(c->n_layers));
	json_object_set_new(o, "num_attention_heads", json_integer(c->n_heads));
	json_object_set_new(o, "num_key_value_heads", json_integer(c->n_kv_heads));
	json_object_set_new(o, "head_dim", json_integer(c->head_dim));
	json_object_set_new(o, "vocab_size", json_integer(c->vocab_size));
	json_object_set_new(o, "max_position_embeddings", json_integer(c->seq_len));
	json_object_set_new(o, "rms_norm_eps", json_real(c->norm_eps));
	json_object_set_new(o, "rope_theta", json_real(c->rope_theta));
	json_object_set_new(o, "tie_word_embeddings", json_boolean(c->tied_embeddings));
	json_object_set_new(o, "torch_dtype", json_string(dtype));
	return o;
}

/* An integer field of config.json; keeps *out when absent and not required. */
static int cfg_int(json_t *o, const char *path, const char *key, int required, int64_t *out,
		   struct mcb_errctx *e)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v)) {
		if (required)
			return mcb_errf(e, MCB_EFORMAT, "'%s': missing \"%s\"", path, key);
		return 0;
	}
	if (!json_is_integer(v))
		return mcb_errf(e, MCB_EFORMAT, "'%s': \"%s\" must be an integer", path, key);
	*out = json_integer_value(v);
	return 0;
}

static int cfg_real(json_t *o, const char *path, const char *key, double *out,
		    struct mcb_errctx *e)
{
	json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return mcb_errf(e, MCB_EFORMAT, "'%s': \"%s\" must be a number", path, key);
	*out = json_number_value(v);
	return 0;
}

/* Read and check config.json into m->arch and m->cfg; *keep (when not NULL)
 * receives the parsed object (a new reference) on success. */
static int read_config(const char *path, struct mcb_model *m, json_t **keep,
		       struct mcb_errctx *e)
{
	struct mcb_llama_config *c = &m->cfg;
	struct mcb_buf text = MCB_BUF_INIT, what = MCB_BUF_INIT;
	json_t *o = NULL, *archs, *v;
	int64_t head_dim = -1;
	size_t i;
	int rc, llama = 0;

	if ((rc = mcb_os_read_file(path, MAX_CONFIG, &text, e)))
		goto out;
	mcb_buf_printf(&what, "'%s'", path);
	rc = MCB_EFORMAT;
	if (!(o = mcb_json_parse(mcb_buf_str(&text), text.len, what.data, e)))
		goto out;
	if (!json_is_object(o)) {
		mcb_errf(e, rc, "'%s': not a JSON object", path);
		goto out;
	}
	archs = json_object_get(o, "architectures");
	json_array_foreach(archs, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), "LlamaForCausalLM"))
			llama = 1;
	v = json_object_get(o, "model_type");
	if ((archs && !llama) || (!archs && !(json_is_string(v) && !strcmp(json_string_value(v), "llama"))) ||
	    (v && !(json_is_string(v) && !strcmp(json_string_value(v), "llama")))) {
		rc = mcb_errf(e, MCB_EUNSUP, "'%s': not a LlamaForCausalLM config (architectures, "
			      "model_type)", path);
		goto out;
	}
	v = json_object_get(o, "hidden_act");
	if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "silu"))) {
		rc = mcb_errf(e, MCB_EUNSUP, "'%s': hidden_act must be \"silu\"", path);
		goto out;
	}
	v = json_object_get(o, "rope_scaling");
	if (v && !json_is_null(v)) {
		rc = mcb_errf(e, MCB_EUNSUP, "'%s': rope_scaling is not supported", path);
		goto out;
	}
	v = json_object_get(o, "tie_word_embeddings");
	if (v && !json_is_boolean(v)) {
		mcb_errf(e, rc, "'%s': \"tie_word_embeddings\" must be a boolean", path);
		goto out;
	}
	c->tied_embeddings = json_is_true(v); /* transformers' LlamaConfig default: false */
	c->norm_eps = 1e-6;                   /* LlamaConfig defaults */
	c->rope_theta = 10000.0;
	if (cfg_int(o, path, "hidden_size", 1, &c->dim, e) ||
	    cfg_int(o, path, "intermediate_size", 1, &c->hidden_dim, e) ||
	    cfg_int(o, path, "num_hidden_layers", 1, &c->n_layers, e) ||
	    cfg_int(o, path, "num_attention_heads", 1, &c->n_heads, e) ||
	    cfg_int(o, path, "vocab_size", 1, &c->vocab_size, e) ||
	    cfg_int(o, path, "max_position_embeddings", 1, &c->seq_len, e))
		goto out;
	c->n_kv_heads = c->n_heads;
	if (cfg_int(o, path, "num_key_value_heads", 0, &c->n_kv_heads, e) ||
	    cfg_int(o, path, "head_dim", 0, &head_dim, e) ||
	    cfg_real(o, path, "rms_norm_eps", &c->norm_eps, e) ||
	    cfg_real(o, path, "rope_theta", &c->rope_theta, e))
		goto out;
	/* transformers' LlamaConfig: head_dim defaults to hidden_size / heads */
	c->head_dim = head_dim != -1 ? head_dim : c->n_heads > 0 ? c->dim / c->n_heads : 0;
	strcpy(m->arch, "llama");
	if ((rc = mcb_model_check_config(c, what.data, e)))
		goto out;
	if (!rc && keep) {
		*keep = o;
		o = NULL;
	}
out:
	json_decref(o);
	mcb_buf_release(&text);
	mcb_buf_release(&what);
	return rc;
}

int mcb_hf_read_config(const char *config_path, struct mcb_model *m, struct mcb_errctx *e)
{
	return read_config(config_path, m, NULL, e);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

/* Copy a q_proj/k_proj weight into an owned tensor and permute it to the IR. */
static int add_permuted(struct mcb_model *m, const char *path, const char *name,
			const struct mcb_tensor *t, int64_t n_head, struct mcb_errctx *e)
{
	const struct mcb_llama_config *c = &m->cfg;
	struct mcb_tensor *out;
	int rc;

	if (t->ndim != 2 || t->shape[0] != n_head * c->head_dim || t->shape[1] != c->dim)
		return mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' must have shape [%" PRId64 ", %" PRId64
				"]", path, t->name, n_head * c->head_dim, c->dim);
	if ((rc = mcb_model_new_tensor(m, name, t->dtype, 2, t->shape, &out, e)))
		return rc;
	memcpy(out->data, t->data, out->nbytes);
	return mcb_hf_permute_rows(out->data, n_head, c->head_dim, c->dim,
				   mcb_dtype_info(t->dtype)->block_bytes, 1, e);
}

/* ---- quantized checkpoints ---- */

/* What config.json's quantization_config says the checkpoint holds. */
enum hq_kind { HQ_NONE, HQ_INT8, HQ_GPTQ, HQ_AWQ, HQ_CT };

struct hq {
	enum hq_kind kind;
	int bits;             /* GPTQ 2, 3, 4, 8; AWQ 4; int8 and CT 8 */
	int64_t group;        /* columns per group, 0: per channel */
	int sym;              /* GPTQ "sym" */
	int ct_float;         /* compressed-tensors: float-quantized (fp8), else int8 */
	int ct_no_act;        /* compressed-tensors fp8 without activation quantization */
	const char *sparsity; /* structure of pruned weights: "2:4", "unstructured" */
	const json_t *dynamic; /* GPTQ: GPTQModel's per-module overrides, or NULL */
};

/* One import: the file, its tensors sorted by name, the model being built. */
struct hr {
	const char *path; /* model.safetensors, for messages */
	struct mcb_model *m;
	const struct mcb_tensor **sorted; /* f's tensors by name */
	size_t n;
	struct hq q;
	struct mcb_errctx *e;
};

#define MAX_GROUP (1 << 20)

static int cmp_tname(const void *a, const void *b)
{
	return strcmp((*(const struct mcb_tensor *const *)a)->name,
		      (*(const struct mcb_tensor *const *)b)->name);
}

static int cmp_key_tname(const void *key, const void *b)
{
	return strcmp(key, (*(const struct mcb_tensor *const *)b)->name);
}

/* The file's tensor called name, or NULL. */
static const struct mcb_tensor *st_find(const struct hr *h, const char *name)
{
	const struct mcb_tensor *const *p =
		bsearch(name, h->sorted, h->n, sizeof(*h->sorted), cmp_key_tname);

	return p ? *p : NULL;
}

/* The file's tensor prefix + suffix, or NULL. */
static const struct mcb_tensor *st_find2(const struct hr *h, const char *prefix, const char *suffix)
{
	char name[512];

	if ((size_t)snprintf(name, sizeof(name), "%s%s", prefix, suffix) >= sizeof(name))
		return NULL;
	return st_find(h, name);
}

/* An integer key of a quantization_config object (def when absent). */
static int qc_int(const json_t *o, const char *path, const char *key, int64_t def, int64_t lo,
		  int64_t hi, int64_t *out, struct mcb_errctx *e)
{
	const json_t *v = json_object_get(o, key);

	*out = def;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return mcb_errf(e, MCB_EFORMAT, "'%s': quantization_config \"%s\" must be an integer "
				"in %" PRId64 "..%" PRId64, path, key, lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static int qc_bool(const json_t *o, const char *path, const char *key, int def, int *out,
		   struct mcb_errctx *e)
{
	const json_t *v = json_object_get(o, key);

	*out = def;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return mcb_errf(e, MCB_EFORMAT, "'%s': quantization_config \"%s\" must be true or false",
				path, key);
	*out = json_is_true(v);
	return 0;
}

static const char *qc_str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* compressed-tensors' sparsity_config (config/base.py): only the "dense"
 * format, whose zeros are in the weights. */
static int parse_sparsity(const json_t *sc, const char *path, struct hq *q, struct mcb_errctx *e)
{
	const char *f, *st;

	if (!sc || json_is_null(sc))
		return 0;
	if (!json_is_object(sc) || !(f = qc_str(sc, "format")))
		return mcb_errf(e, MCB_EFORMAT, "'%s': sparsity_config must be an object with a "
				"\"format\"", path);
	if (strcmp(f, "dense"))
		return mcb_errf(e, MCB_EUNSUP, "'%s': sparsity_config format '%.32s' is not supported "
				"(only \"dense\")", path, f);
	st = qc_str(sc, "sparsity_structure");
	q->sparsity = st && !strcmp(st, "2:4") ? "2:4" : "unstructured";
	return 0;
}

/* One QuantizationArgs of a compressed-tensors config group: 8 bits, the
 * given type, symmetric, strategy channel (weights). */
static int ct_weights(const json_t *w, const char *path, const char *type, struct mcb_errctx *e)
{
	const char *t = qc_str(w, "type"), *s = qc_str(w, "strategy");
	const json_t *nb = json_object_get(w, "num_bits"), *sym = json_object_get(w, "symmetric");

	if (!json_is_object(w))
		return mcb_errf(e, MCB_EFORMAT, "'%s': config group without \"weights\"", path);
	if (!json_is_integer(nb) || json_integer_value(nb) != 8 || !t || strcmp(t, type) || !s ||
	    strcmp(s, "channel") || (sym && !json_is_true(sym)))
		return mcb_errf(e, MCB_EUNSUP, "'%s': compressed-tensors weights must be 8-bit %s, "
				"symmetric, strategy \"channel\"", path, type);
	return 0;
}

/* quantization_config (and a top-level sparsity_config) of config.json o. */
static int parse_qc(const json_t *o, const char *path, struct hq *q, struct mcb_errctx *e)
{
	const json_t *qc = json_object_get(o, "quantization_config"), *g;
	const char *meth, *s, *key;
	int rc, zp;

	memset(q, 0, sizeof(*q));
	if ((rc = parse_sparsity(json_object_get(o, "sparsity_config"), path, q, e)))
		return rc;
	if (!qc || json_is_null(qc))
		return 0;
	if (!json_is_object(qc) || !(meth = qc_str(qc, "quant_method")))
		return mcb_errf(e, MCB_EFORMAT, "'%s': quantization_config must be an object with a "
				"\"quant_method\" string", path);
	if (!strcmp(meth, "mcbuild-int8")) {
		q->kind = HQ_INT8;
		q->bits = 8;
		return qc_int(qc, path, "group_size", 0, 0, MAX_GROUP, &q->group, e);
	}
	if (!strcmp(meth, "gptq")) {
		int64_t b;

		q->kind = HQ_GPTQ;
		if ((rc = qc_int(qc, path, "bits", -1, 2, 8, &b, e)) ||
		    (rc = qc_int(qc, path, "group_size", 0, -1, MAX_GROUP, &q->group, e)) ||
		    (rc = qc_bool(qc, path, "sym", 1, &q->sym, e)))
			return rc;
		if (b != 2 && b != 3 && b != 4 && b != 8)
			return mcb_errf(e, MCB_EFORMAT, "'%s': GPTQ \"bits\" must be 2, 3, 4 or 8", path);
		if (q->group == 0)
			return mcb_errf(e, MCB_EFORMAT, "'%s': GPTQ \"group_size\" must be -1 (per "
					"channel) or positive, not 0", path);
		q->bits = (int)b;
		q->group = q->group < 0 ? 0 : q->group;
		q->dynamic = json_object_get(qc, "dynamic");
		if (q->dynamic && !json_is_object(q->dynamic))
			return mcb_errf(e, MCB_EFORMAT, "'%s': GPTQ \"dynamic\" must be an object",
					path);
		s = qc_str(qc, "checkpoint_format");
		if (s && strcmp(s, "gptq"))
			return mcb_errf(e, MCB_EUNSUP, "'%s': GPTQ checkpoint_format '%.32s' is not "
					"supported (only \"gptq\", v1)", path, s);
		return 0;
	}
	if (!strcmp(meth, "awq")) {
		int64_t b;

		q->kind = HQ_AWQ;
		if ((rc = qc_int(qc, path, json_object_get(qc, "w_bit") ? "w_bit" : "bits", -1, 1, 8,
				 &b, e)) ||
		    (rc = qc_int(qc, path, json_object_get(qc, "q_group_size") ? "q_group_size"
									    : "group_size",
				 0, 0, MAX_GROUP, &q->group, e)) ||
		    (rc = qc_bool(qc, path, "zero_point", 1, &zp, e)))
			return rc;
		s = qc_str(qc, "version");
		if (b != 4 || q->group <= 0 || !zp || (s && strcasecmp(s, "gemm")))
			return mcb_errf(e, MCB_EUNSUP, "'%s': AWQ must be 4-bit GEMM with a zero point "
					"and a positive group size", path);
		q->bits = 4;
		return 0;
	}
	if (!strcmp(meth, "compressed-tensors")) {
		const json_t *groups = json_object_get(qc, "config_groups");

		q->kind = HQ_CT;
		q->bits = 8;
		s = qc_str(qc, "format");
		if (!s || (strcmp(s, "float-quantized") && strcmp(s, "int-quantized") &&
			   strcmp(s, "naive-quantized")))
			return mcb_errf(e, MCB_EUNSUP, "'%s': compressed-tensors format '%.32s' is not "
					"supported (float-quantized, int-quantized)", path,
					s ? s : "(none)");
		q->ct_float = !strcmp(s, "float-quantized");
		if (!json_is_object(groups) || !json_object_size(groups))
			return mcb_errf(e, MCB_EFORMAT, "'%s': compressed-tensors config has no "
					"config_groups", path);
		json_object_foreach ((json_t *)groups, key, g) {
			const json_t *act = json_object_get(g, "input_activations");

			if ((rc = ct_weights(json_object_get(g, "weights"), path,
					     q->ct_float ? "float" : "int", e)))
				return rc;
			q->ct_no_act = !act || json_is_null(act);
		}
		return parse_sparsity(json_object_get(qc, "sparsity_config"), path, q, e);
	}
	return mcb_errf(e, MCB_EUNSUP, "'%s': quantization_config quant_method '%.32s' is not "
			"supported (gptq, awq, compressed-tensors, mcbuild-int8)", path, meth);
}

/* The [rows, cols] of 2-D weight ir (GGUF name) from the config; -1 when ir
 * is not a 2-D weight. */
static int weight_shape(const struct mcb_llama_config *c, const char *ir, int64_t *rows,
			int64_t *cols)
{
	const int64_t q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;

	*cols = c->dim;
	if (!strcmp(ir, "token_embd.weight") || !strcmp(ir, "output.weight"))
		*rows = c->vocab_size;
	else if (ends_with(ir, ".attn_q.weight"))
		*rows = q;
	else if (ends_with(ir, ".attn_k.weight") || ends_with(ir, ".attn_v.weight"))
		*rows = kv;
	else if (ends_with(ir, ".attn_output.weight"))
		*rows = c->dim, *cols = q;
	else if (ends_with(ir, ".ffn_gate.weight") || ends_with(ir, ".ffn_up.weight"))
		*rows = c->hidden_dim;
	else if (ends_with(ir, ".ffn_down.weight"))
		*rows = c->dim, *cols = c->hidden_dim;
	else
		return -1;
	return 0;
}

/* Q/K head count of ir (0: not permuted). */
static int64_t ir_heads(const struct mcb_llama_config *c, const char *ir)
{
	if (ends_with(ir, ".attn_q.weight"))
		return c->n_heads;
	if (ends_with(ir, ".attn_k.weight"))
		return c->n_kv_heads;
	return 0;
}

/* Permute rows (rows x cols elements of esize) of ir's data to the IR order. */
static int ir_rows(struct hr *h, const char *ir, void *data, int64_t cols, size_t esize)
{
	int64_t heads = ir_heads(&h->m->cfg, ir);

	if (!heads)
		return 0;
	return mcb_hf_permute_rows(data, heads, h->m->cfg.head_dim, cols, esize, 1, h->e);
}

static const char *shape_text(char *buf, size_t n, const struct mcb_tensor *t)
{
	size_t len = (size_t)snprintf(buf, n, "%s [", mcb_dtype_info(t->dtype)->name);
	int i;

	for (i = 0; i < t->ndim && len < n; i++)
		len += (size_t)snprintf(buf + len, n - len, "%s%" PRId64, i ? ", " : "", t->shape[i]);
	if (len < n)
		snprintf(buf + len, n - len, "]");
	return buf;
}

/* t must be dtype dt with shape [d0, d1] (d1 < 0: 1-D [d0]). */
static int need_shape(struct hr *h, const struct mcb_tensor *t, enum mcb_dtype dt, int64_t d0,
		      int64_t d1)
{
	char have[96];

	if (t->dtype == dt && t->ndim == (d1 < 0 ? 1 : 2) && t->shape[0] == d0 &&
	    (d1 < 0 || t->shape[1] == d1))
		return 0;
	shape_text(have, sizeof(have), t);
	if (d1 < 0)
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' must be %s [%" PRId64 "], not %s",
				h->path, t->name, mcb_dtype_info(dt)->name, d0, have);
	return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' must be %s [%" PRId64 ", %" PRId64
			"], not %s", h->path, t->name, mcb_dtype_info(dt)->name, d0, d1, have);
}

/* A side tensor "<what>" of ir must exist in the file. */
static const struct mcb_tensor *need_side(struct hr *h, const char *mod, const char *suffix)
{
	const struct mcb_tensor *t = st_find2(h, mod, suffix);

	if (!t)
		mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s%s' is missing", h->path, mod, suffix);
	return t;
}

/* A new owned IR tensor (data pointer returned; valid until the next add). */
static void *new_ir(struct hr *h, const char *name, enum mcb_dtype dt, int ndim, int64_t d0,
		    int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	struct mcb_tensor *t;

	if (mcb_model_new_tensor(h->m, name, dt, ndim, shape, &t, h->e)) {
		mcb_errprefix(h->e, "'%s'", h->path);
		return NULL;
	}
	return t->data;
}

static json_t *quant_obj(struct mcb_model *m)
{
	json_t *quant = json_object_get(m->meta, "quant");

	if (!quant) {
		quant = json_object();
		json_object_set_new(m->meta, "quant", quant);
	}
	return quant;
}

/* fp16 h must be finite; 0 or a message naming tensor and index. */
static int finite_h(struct hr *h, const struct mcb_tensor *t, uint16_t v, int64_t i)
{
	if ((v & 0x7c00) == 0x7c00)
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s': scale %" PRId64 " is not finite",
				h->path, t->name, i);
	return 0;
}

/* 16-bit element i of t (any alignment). */
static uint16_t u16_at(const struct mcb_tensor *t, int64_t i)
{
	const uint8_t *p = (const uint8_t *)t->data + 2 * i;

	return (uint16_t)(p[0] | p[1] << 8);
}

static int32_t i32_at(const struct mcb_tensor *t, int64_t i)
{
	int32_t v;

	memcpy(&v, (const uint8_t *)t->data + 4 * i, 4);
	return v;
}

/*
 * GPTQ (v1) or AWQ (GEMM) module mod ("model.layers.0.mlp.up_proj") into
 * int record ir: codes unpacked (runtime/quant.c), scales transposed to
 * [rows, ngroups] (F16; per channel F32 [rows]), zeros (asymmetric), g_idx
 * when it is not column / group_size.  GPTQ with sym and every zero
 * 2^(bits-1) gives symmetric I8 codes q - zero, as the quantize step writes.
 */
/*
 * GPTQModel's "dynamic": the first "+:REGEX" key whose regex (POSIX
 * extended, anchored as written) matches module mod overrides its "bits"
 * and "group_size".  vLLM's GPTQ config reads the same keys.
 */
static int dynamic_params(struct hr *h, const char *mod, int *bits, int64_t *gs)
{
	const char *key;
	json_t *v;

	json_object_foreach ((json_t *)h->q.dynamic, key, v) {
		regex_t re;
		int hit;

		if (strncmp(key, "+:", 2))
			continue;
		if (strlen(key) > 1024 || regcomp(&re, key + 2, REG_EXTENDED | REG_NOSUB))
			return mcb_errf(h->e, MCB_EFORMAT, "'%s': GPTQ \"dynamic\" key '%.64s' is not "
					"a regular expression", h->path, key);
		hit = !regexec(&re, mod, 0, NULL, 0);
		regfree(&re);
		if (!hit)
			continue;
		if (json_object_get(v, "bits")) {
			json_int_t b = json_integer_value(json_object_get(v, "bits"));

			if (b != 2 && b != 3 && b != 4 && b != 8)
				return mcb_errf(h->e, MCB_EFORMAT, "'%s': GPTQ \"dynamic\" bits of '%s' "
						"must be 2, 3, 4 or 8", h->path, mod);
			*bits = (int)b;
		}
		if (json_object_get(v, "group_size")) {
			json_int_t g = json_integer_value(json_object_get(v, "group_size"));

			if (g == 0 || g < -1 || g > MAX_GROUP)
				return mcb_errf(h->e, MCB_EFORMAT, "'%s': GPTQ \"dynamic\" group_size "
						"of '%s' is out of range", h->path, mod);
			*gs = g < 0 ? 0 : g;
		}
		break;
	}
	return 0;
}

static int import_packed(struct hr *h, const char *mod, const char *ir)
{
	const int gptq = h->q.kind == HQ_GPTQ;
	int bits = h->q.bits, half;
	int64_t gs = h->q.group;
	const struct mcb_tensor *qw, *qz, *sc, *gi = NULL;
	int64_t rows, cols, ng, r, g, c;
	uint8_t *codes = NULL, *zeros = NULL;
	int32_t *words = NULL, *zwords = NULL;
	int trivial = 1, sym, rc = MCB_ENOMEM;
	char *sn, *zn, *gn;
	size_t n, nz;
	json_t *rec;

	if (weight_shape(&h->m->cfg, ir, &rows, &cols) < 0 || !strcmp(ir, "token_embd.weight"))
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s.qweight' is not a Linear weight",
				h->path, mod);
	if (gptq && h->q.dynamic && (rc = dynamic_params(h, mod, &bits, &gs)))
		return rc;
	half = 1 << (bits - 1);
	ng = gs ? (cols + gs - 1) / gs : 1;
	if (!(qz = need_side(h, mod, ".qzeros")) || !(sc = need_side(h, mod, ".scales")))
		return h->e->code;
	qw = st_find2(h, mod, ".qweight");
	if (gptq && ((cols * bits) % 32 || (rows * bits) % 32))
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' (%" PRId64 " x %" PRId64 ") "
				"cannot be packed in %d bits", h->path, qw->name, rows, cols, bits);
	if (!gptq && (rows % 8 || cols % gs))
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' (%" PRId64 " x %" PRId64 "): AWQ "
				"needs rows divisible by 8 and group size %" PRId64 " dividing the "
				"columns", h->path, qw->name, rows, cols, gs);
	if ((rc = gptq ? need_shape(h, qw, MCB_DT_I32, cols * bits / 32, rows)
		       : need_shape(h, qw, MCB_DT_I32, cols, rows / 8)) ||
	    (rc = gptq ? need_shape(h, qz, MCB_DT_I32, ng, rows * bits / 32)
		       : need_shape(h, qz, MCB_DT_I32, ng, rows / 8)) ||
	    (rc = need_shape(h, sc, MCB_DT_F16, ng, rows)))
		return rc;
	if (gptq && (gi = st_find2(h, mod, ".g_idx")) && (rc = need_shape(h, gi, MCB_DT_I32, cols, -1)))
		return rc;
	n = (size_t)(rows * cols);
	nz = (size_t)(rows * ng);
	rc = MCB_ENOMEM;
	codes = malloc(n);
	zeros = malloc(nz);
	words = malloc(qw->nbytes ? qw->nbytes : 1);
	zwords = malloc(qz->nbytes ? qz->nbytes : 1);
	if (!codes || !zeros || !words || !zwords) {
		mcb_errf(h->e, MCB_ENOMEM, "'%s': cannot allocate memory to unpack '%s'", h->path,
			 qw->name);
		goto out;
	}
	memcpy(words, qw->data, qw->nbytes); /* the file's data may be unaligned */
	memcpy(zwords, qz->data, qz->nbytes);
	if (gptq) {
		mcb_unpack_gptq(words, rows, cols, bits, codes);
		mcb_unpack_gptq_zeros(zwords, rows, ng, bits, zeros);
	} else {
		mcb_unpack_awq(words, rows, cols, codes);
		mcb_unpack_awq_zeros(zwords, rows, ng, zeros);
	}
	rc = MCB_EFORMAT;
	if (gptq)
		for (r = 0; r < rows; r++)
			for (g = 0; g < ng; g++)
				if (!zeros[r * ng + g]) { /* stored 2^bits - 1: v1 reads 2^bits */
					mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s': zero point %d of "
						 "output %" PRId64 ", group %" PRId64 " is outside 0..%d",
						 h->path, qz->name, 1 << bits, r, g, (1 << bits) - 1);
					goto out;
				}
	for (c = 0; gi && c < cols; c++) {
		int32_t v = i32_at(gi, c);

		if (v < 0 || v >= ng) {
			mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s': g_idx[%" PRId64 "] = %" PRId32
				 " is not a group (0..%" PRId64 ")", h->path, gi->name, c, v, ng - 1);
			goto out;
		}
		trivial &= v == (gs ? c / gs : 0);
	}
	for (g = 0; g < ng * rows; g++)
		if (finite_h(h, sc, u16_at(sc, g), g))
			goto out;
	sym = gptq && h->q.sym;
	for (g = 0; sym && g < (int64_t)nz; g++)
		sym = zeros[g] == half;
	/* IR tensors: codes [rows, cols], scale [rows, ng], zero [rows, ng] */
	sn = mcb_arena_printf(&h->m->arena, "%s.scale", ir);
	zn = mcb_arena_printf(&h->m->arena, "%s.zero", ir);
	gn = mcb_arena_printf(&h->m->arena, "%s.g_idx", ir);
	{
		uint8_t *dst = new_ir(h, ir, sym ? MCB_DT_I8 : MCB_DT_U8, 2, rows, cols);
		size_t i;

		if (!dst)
			goto fail;
		for (i = 0; i < n; i++)
			dst[i] = sym ? (uint8_t)(int8_t)(codes[i] - half) : codes[i];
		if (ir_rows(h, ir, dst, cols, 1))
			goto fail;
	}
	if (gs) {
		uint16_t *dst = new_ir(h, sn, MCB_DT_F16, 2, rows, ng);

		if (!dst)
			goto fail;
		for (r = 0; r < rows; r++)
			for (g = 0; g < ng; g++)
				dst[r * ng + g] = u16_at(sc, g * rows + r);
		if (ir_rows(h, ir, dst, ng, 2))
			goto fail;
	} else {
		float *dst = new_ir(h, sn, MCB_DT_F32, 1, rows, 0);

		if (!dst)
			goto fail;
		for (r = 0; r < rows; r++)
			dst[r] = mcb_f16_to_f32(u16_at(sc, r));
		if (ir_rows(h, ir, dst, 1, 4))
			goto fail;
	}
	if (!sym) {
		uint8_t *dst = new_ir(h, zn, MCB_DT_U8, 2, rows, ng);

		if (!dst)
			goto fail;
		memcpy(dst, zeros, nz);
		if (ir_rows(h, ir, dst, ng, 1))
			goto fail;
	}
	if (gi && !trivial) {
		int32_t *dst = new_ir(h, gn, MCB_DT_I32, 1, cols, 0);

		if (!dst)
			goto fail;
		for (c = 0; c < cols; c++)
			dst[c] = i32_at(gi, c);
	}
	rec = json_pack("{s:s, s:s, s:i, s:s, s:I, s:b, s:s}", "format", "int", "method",
			gptq ? "import-gptq" : "import-awq", "bits", bits, "granularity", gs ? "group" : "channel",
			"group_size", (json_int_t)gs, "symmetric", sym, "scale", sn);
	if (!sym)
		json_object_set_new(rec, "zero", json_string(zn));
	if (gi && !trivial)
		json_object_set_new(rec, "g_idx", json_string(gn));
	json_object_set_new(quant_obj(h->m), ir, rec);
	rc = 0;
	goto out;
fail:
	rc = h->e->code;
out:
	free(codes);
	free(zeros);
	free(words);
	free(zwords);
	return rc;
}

/*
 * An I8 or F8_E4M3 weight of an int8 (mcbuild-int8) or compressed-tensors
 * checkpoint into an int or fp8 record.  Scales: mcbuild-int8 "<hf>_scale"
 * F32 [rows, 1] or F16 [rows, ngroups]; compressed-tensors
 * "<mod>.weight_scale" F32/F16/BF16 [rows, 1] (vLLM's channel scale) widened
 * to F32 [rows], and "<mod>.input_scale" [1] when present (static W8A8).
 */
static int import_q8(struct hr *h, const struct mcb_tensor *t, const char *mod, const char *ir)
{
	const int ct = h->q.kind == HQ_CT, fp8 = t->dtype == MCB_DT_F8_E4M3;
	const struct mcb_tensor *sc, *is = NULL;
	int64_t rows, cols, ng = 1, r, i;
	char *sn = mcb_arena_printf(&h->m->arena, "%s.scale", ir);
	char *in = mcb_arena_printf(&h->m->arena, "%s.input_scale", ir);
	uint8_t *codes;
	json_t *rec;
	int rc;

	if (weight_shape(&h->m->cfg, ir, &rows, &cols) < 0)
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' is not a 2-D weight", h->path,
				t->name);
	if ((rc = need_shape(h, t, t->dtype, rows, cols)))
		return rc;
	if (ct) {
		if (st_find2(h, mod, ".weight_zero_point") || st_find2(h, mod, ".input_zero_point"))
			return mcb_errf(h->e, MCB_EUNSUP, "'%s': tensor '%s': asymmetric "
					"compressed-tensors (zero points) are not supported", h->path,
					t->name);
		if (!(sc = need_side(h, mod, ".weight_scale")))
			return h->e->code;
		if (!((sc->dtype == MCB_DT_F32 || sc->dtype == MCB_DT_F16 || sc->dtype == MCB_DT_BF16) &&
		      sc->shape[0] == rows && (sc->ndim == 1 || (sc->ndim == 2 && sc->shape[1] == 1))))
			return need_shape(h, sc, MCB_DT_F32, rows, 1);
		is = st_find2(h, mod, ".input_scale");
		if (is && (is->dtype != MCB_DT_F32 || is->nbytes != 4 || is->ndim > 1))
			return need_shape(h, is, MCB_DT_F32, 1, -1);
		if (is && fp8)
			return mcb_errf(h->e, MCB_EUNSUP, "'%s': tensor '%s': static FP8 activation "
					"scales are not supported", h->path, is->name);
	} else {
		ng = h->q.group ? (cols + h->q.group - 1) / h->q.group : 1;
		if (!(sc = need_side(h, t->name, "_scale")))
			return h->e->code;
		if ((rc = need_shape(h, sc, h->q.group ? MCB_DT_F16 : MCB_DT_F32, rows, ng)))
			return rc;
	}
	if (!(codes = new_ir(h, ir, t->dtype, 2, rows, cols)))
		return h->e->code;
	memcpy(codes, t->data, t->nbytes);
	for (i = 0; fp8 && i < rows * cols; i++)
		if ((codes[i] & 0x7f) == 0x7f)
			return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s': fp8 code at row %" PRId64
					", column %" PRId64 " is NaN", h->path, t->name, i / cols,
					i % cols);
	if ((rc = ir_rows(h, ir, codes, cols, 1)))
		return rc;
	if (h->q.group && !ct) {
		uint16_t *dst = new_ir(h, sn, MCB_DT_F16, 2, rows, ng);

		if (!dst)
			return h->e->code;
		for (i = 0; i < rows * ng; i++)
			if (finite_h(h, sc, dst[i] = u16_at(sc, i), i))
				return h->e->code;
		rc = ir_rows(h, ir, dst, ng, 2);
	} else {
		float *dst = new_ir(h, sn, MCB_DT_F32, 1, rows, 0);

		if (!dst)
			return h->e->code;
		for (r = 0; r < rows; r++) {
			float v;

			if (sc->dtype == MCB_DT_F32)
				memcpy(&v, (const uint8_t *)sc->data + 4 * r, 4);
			else
				v = sc->dtype == MCB_DT_F16 ? mcb_f16_to_f32(u16_at(sc, r))
							    : mcb_bf16_to_f32(u16_at(sc, r));
			if (!isfinite(v))
				return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s': scale %" PRId64
						" is not finite", h->path, sc->name, r);
			dst[r] = v;
		}
		rc = ir_rows(h, ir, dst, 1, 4);
	}
	if (rc)
		return rc;
	if (is) {
		float *dst = new_ir(h, in, MCB_DT_F32, 1, 1, 0), v;

		if (!dst)
			return h->e->code;
		memcpy(&v, is->data, 4);
		if (!isfinite(v) || !(v > 0))
			return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' must be a positive finite "
					"scale", h->path, is->name);
		*dst = v;
	}
	if (fp8)
		rec = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s}", "format", "fp8", "method",
				"import-compressed-tensors", "bits", 8, "granularity", "channel",
				"group_size", 0, "scale", sn);
	else
		rec = json_pack("{s:s, s:s, s:i, s:s, s:I, s:b, s:s}", "format", "int", "method",
				ct ? "import-compressed-tensors" : "import-int8", "bits", 8, "granularity",
				h->q.group && !ct ? "group" : "channel", "group_size",
				(json_int_t)(ct ? 0 : h->q.group), "symmetric", 1, "scale", sn);
	if (is)
		json_object_set_new(rec, "input_scale", json_string(in));
	if (fp8 && h->q.ct_no_act)
		json_object_set_new(rec, "activations", json_string("none"));
	json_object_set_new(quant_obj(h->m), ir, rec);
	return 0;
}

/* "<mod>.weight_mask" of a pruned weight ir: U8 [rows, cols] of 0/1 into
 * "<ir>.mask", and the record's "sparsity" and "mask". */
static int import_mask(struct hr *h, const struct mcb_tensor *mk, const char *ir)
{
	char *name = mcb_arena_printf(&h->m->arena, "%s.mask", ir);
	int64_t rows, cols, i;
	uint8_t *dst;
	json_t *rec;
	int rc;

	if (weight_shape(&h->m->cfg, ir, &rows, &cols) < 0)
		return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' masks no 2-D weight", h->path,
				mk->name);
	if ((rc = need_shape(h, mk, MCB_DT_U8, rows, cols)))
		return rc;
	for (i = 0; i < rows * cols; i++)
		if (((const uint8_t *)mk->data)[i] > 1)
			return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' holds %d at row %" PRId64
					", column %" PRId64 " (a mask holds 0 or 1)", h->path, mk->name,
					((const uint8_t *)mk->data)[i], i / cols, i % cols);
	if (!(dst = new_ir(h, name, MCB_DT_U8, 2, rows, cols)))
		return h->e->code;
	memcpy(dst, mk->data, mk->nbytes);
	if ((rc = ir_rows(h, ir, dst, cols, 1)))
		return rc;
	rec = json_object_get(quant_obj(h->m), ir);
	if (!rec) { /* a pruned float weight (qtensor.h) */
		rec = json_pack("{s:s, s:s}", "format", "float", "method", "import");
		json_object_set_new(quant_obj(h->m), ir, rec);
	}
	json_object_set_new(rec, "sparsity", json_string(h->q.sparsity ? h->q.sparsity
									: "unstructured"));
	json_object_set_new(rec, "mask", json_string(name));
	return 0;
}

/* The side tensors of a quantized checkpoint and its weight's name: suffix
 * of the side tensor, suffix of the main one, kinds it belongs to. */
static const struct {
	const char *side, *main;
	enum hq_kind kind; /* HQ_NONE: any */
} side_names[] = {
	{".qzeros", ".qweight", HQ_GPTQ}, {".scales", ".qweight", HQ_GPTQ},
	{".g_idx", ".qweight", HQ_GPTQ},  {".qzeros", ".qweight", HQ_AWQ},
	{".scales", ".qweight", HQ_AWQ},  {".weight_scale", ".weight", HQ_CT},
	{".input_scale", ".weight", HQ_CT}, {".weight_mask", ".weight", HQ_NONE},
	/* mcbuild-int8 names the scale "<weight>_scale", i.e. "<module>.weight_scale" */
	{".weight_scale", ".weight", HQ_INT8},
};

/* Is t a side tensor of this checkpoint?  0: no; 1: yes (its weight exists);
 * negative: an orphan (error set). */
static int side_tensor(struct hr *h, const struct mcb_tensor *t)
{
	size_t i, k, n = strlen(t->name);
	char base[512];

	for (i = 0; i < sizeof(side_names) / sizeof(side_names[0]); i++) {
		if (side_names[i].kind != HQ_NONE && side_names[i].kind != h->q.kind)
			continue;
		if (!ends_with(t->name, side_names[i].side) ||
		    (k = n - strlen(side_names[i].side)) >= sizeof(base) - 16)
			continue;
		memcpy(base, t->name, k);
		base[k] = 0;
		strcat(base, side_names[i].main);
		if (!st_find(h, base))
			return mcb_errf(h->e, MCB_EFORMAT, "'%s': tensor '%s' has no '%s'", h->path,
					t->name, base);
		return 1;
	}
	return 0;
}

int mcb_hf_read(const char *st_path, const char *config_path, struct mcb_model *m,
		struct mcb_errctx *e)
{
	struct mcb_buf what = MCB_BUF_INIT;
	struct mcb_st_file f;
	const struct mcb_tensor *t, *mk;
	struct hr h;
	json_t *cfg = NULL;
	char name[128], mod[512];
	size_t i, n;
	int rc, opened = 0;

	memset(&h, 0, sizeof(h));
	if ((rc = read_config(config_path, m, &cfg, e)) ||
	    (rc = parse_qc(cfg, config_path, &h.q, e)) || (rc = mcb_st_open(st_path, &f, e)))
		goto fail;
	opened = 1;
	h.path = st_path;
	h.m = m;
	h.e = e;
	h.n = f.ntensors;
	h.sorted = mcb_xcalloc(f.ntensors + 1, sizeof(*h.sorted));
	for (i = 0; i < f.ntensors; i++)
		h.sorted[i] = &f.tensors[i];
	qsort(h.sorted, h.n, sizeof(*h.sorted), cmp_tname);
	for (i = 0; i < f.ntensors; i++) {
		const char *hfname;
		int packed;

		t = &f.tensors[i];
		if (ends_with(t->name, ".rotary_emb.inv_freq")) /* old checkpoints: derived, unused */
			continue;
		if (m->cfg.tied_embeddings && !strncmp(t->name, "lm_head.", 8))
			continue; /* tied: transformers overwrites it with the embedding too */
		if ((rc = side_tensor(&h, t)) < 0)
			goto fail;
		if (rc)
			continue;
		packed = (h.q.kind == HQ_GPTQ || h.q.kind == HQ_AWQ) && ends_with(t->name, ".qweight");
		n = strlen(t->name) - (packed ? 8 : 7);
		hfname = t->name;
		if (packed || ends_with(t->name, ".weight")) {
			if (n >= sizeof(mod) - 16) {
				rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor name '%.64s...' is too long",
					      st_path, t->name);
				goto fail;
			}
			memcpy(mod, t->name, n);
			mod[n] = 0;
			if (packed) {
				snprintf(mod + n, sizeof(mod) - n, ".weight");
				hfname = mcb_arena_strdup(&m->arena, mod);
				mod[n] = 0;
			}
		} else {
			mod[0] = 0;
		}
		if (mcb_hf_to_gguf_name(hfname, name, sizeof(name))) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s' is not part of a LlamaForCausalLM",
				      st_path, t->name);
			goto fail;
		}
		/* names are unique and the map is a bijection, so no duplicates; bounding the
		 * layer number bounds the tensor count */
		if (!strncmp(name, "blk.", 4) && strtol(name + 4, NULL, 10) >= m->cfg.n_layers) {
			rc = mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' is beyond num_hidden_layers %" PRId64,
				      st_path, t->name, m->cfg.n_layers);
			goto fail;
		}
		if (packed) {
			rc = import_packed(&h, mod, name);
		} else if ((t->dtype == MCB_DT_I8 && (h.q.kind == HQ_INT8 ||
						      (h.q.kind == HQ_CT && !h.q.ct_float))) ||
			   (t->dtype == MCB_DT_F8_E4M3 && h.q.kind == HQ_CT && h.q.ct_float)) {
			rc = import_q8(&h, t, mod, name);
		} else if (t->dtype != MCB_DT_F32 && t->dtype != MCB_DT_F16 &&
			   t->dtype != MCB_DT_BF16) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s' has dtype %s; only F32, F16 and "
				      "BF16 can be imported%s", st_path, t->name,
				      mcb_dtype_info(t->dtype)->name,
				      h.q.kind == HQ_NONE ? "" : " besides the quantized weights "
								 "config.json describes");
		} else if (ends_with(t->name, ".self_attn.q_proj.weight")) {
			rc = add_permuted(m, st_path, name, t, m->cfg.n_heads, e);
		} else if (ends_with(t->name, ".self_attn.k_proj.weight")) {
			rc = add_permuted(m, st_path, name, t, m->cfg.n_kv_heads, e);
		} else {
			rc = mcb_model_add_mapped(m, name, t->dtype, t->ndim, t->shape, t->data,
						  t->nbytes, NULL, e);
		}
		if (!rc && mod[0] && (mk = st_find2(&h, mod, ".weight_mask")))
			rc = import_mask(&h, mk, name);
		if (rc)
			goto fail;
	}
	json_object_set_new(m->meta, "source", json_pack("{s:s}", "format", "hf"));
	m->map = f.map; /* borrowed tensors live as long as m */
	f.map.data = NULL;
	f.map.size = 0;
	mcb_st_close(&f);
	opened = 0;
	free(h.sorted);
	json_decref(cfg);
	mcb_buf_printf(&what, "'%s'", st_path);
	rc = mcb_model_check_llama(m, what.data, e);
	mcb_buf_release(&what);
	if (rc) {
		mcb_model_release(m);
		mcb_model_init(m);
	}
	return rc;
fail:
	if (opened)
		mcb_st_close(&f);
	free(h.sorted);
	json_decref(cfg);
	mcb_model_release(m);
	mcb_model_init(m);
	return rc;
}
