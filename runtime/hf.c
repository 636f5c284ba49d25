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
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/model.h"
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

/* Read and check config.json into m->arch and m->cfg. */
static int read_config(const char *path, struct mcb_model *m, struct mcb_errctx *e)
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
	c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
	strcpy(m->arch, "llama");
	if ((rc = mcb_model_check_config(c, what.data, e)))
		goto out;
	if (head_dim != -1 && head_dim != c->head_dim)
		rc = mcb_errf(e, MCB_EUNSUP, "'%s': head_dim %" PRId64 " differs from hidden_size / "
			      "num_attention_heads = %" PRId64, path, head_dim, c->head_dim);
out:
	json_decref(o);
	mcb_buf_release(&text);
	mcb_buf_release(&what);
	return rc;
}

int mcb_hf_read_config(const char *config_path, struct mcb_model *m, struct mcb_errctx *e)
{
	return read_config(config_path, m, e);
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

int mcb_hf_read(const char *st_path, const char *config_path, struct mcb_model *m,
		struct mcb_errctx *e)
{
	struct mcb_buf what = MCB_BUF_INIT;
	struct mcb_st_file f;
	const struct mcb_tensor *t;
	char name[128];
	size_t i;
	int rc, opened = 0;

	if ((rc = read_config(config_path, m, e)) || (rc = mcb_st_open(st_path, &f, e)))
		goto fail;
	opened = 1;
	for (i = 0; i < f.ntensors; i++) {
		t = &f.tensors[i];
		if (ends_with(t->name, ".rotary_emb.inv_freq")) /* old checkpoints: derived, unused */
			continue;
		if (m->cfg.tied_embeddings && !strcmp(t->name, "lm_head.weight"))
			continue; /* tied: transformers overwrites it with the embedding too */
		if (mcb_hf_to_gguf_name(t->name, name, sizeof(name))) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s' is not part of a LlamaForCausalLM",
				      st_path, t->name);
			goto fail;
		}
		if (t->dtype != MCB_DT_F32 && t->dtype != MCB_DT_F16 && t->dtype != MCB_DT_BF16) {
			rc = mcb_errf(e, MCB_EUNSUP, "'%s': tensor '%s' has dtype %s; only F32, F16 and "
				      "BF16 can be imported", st_path, t->name,
				      mcb_dtype_info(t->dtype)->name);
			goto fail;
		}
		/* names are unique and the map is a bijection, so no duplicates; bounding the
		 * layer number bounds the tensor count */
		if (!strncmp(name, "blk.", 4) && strtol(name + 4, NULL, 10) >= m->cfg.n_layers) {
			rc = mcb_errf(e, MCB_EFORMAT, "'%s': tensor '%s' is beyond num_hidden_layers %" PRId64,
				      st_path, t->name, m->cfg.n_layers);
			goto fail;
		}
		if (ends_with(t->name, ".self_attn.q_proj.weight"))
			rc = add_permuted(m, st_path, name, t, m->cfg.n_heads, e);
		else if (ends_with(t->name, ".self_attn.k_proj.weight"))
			rc = add_permuted(m, st_path, name, t, m->cfg.n_kv_heads, e);
		else
			rc = mcb_model_add_mapped(m, name, t->dtype, t->ndim, t->shape, t->data,
						  t->nbytes, NULL, e);
		if (rc)
			goto fail;
	}
	json_object_set_new(m->meta, "source", json_pack("{s:s}", "format", "hf"));
	m->map = f.map; /* borrowed tensors live as long as m */
	f.map.data = NULL;
	f.map.size = 0;
	mcb_st_close(&f);
	opened = 0;
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
	mcb_model_release(m);
	mcb_model_init(m);
	return rc;
}
