/*
 * step export: the internal form -> the file(s) a hardware's runtime loads.
 *
 * params: {"format": "gguf" | "safetensors"}
 * inputs: "model" (internal form)
 * outputs:
 *   gguf:        model.gguf (llama.cpp).  Q8_0-quantized tensors (group 32)
 *                become GGUF Q8_0 blocks {fp16 d, int8 qs[32]} exactly, F16
 *                fallbacks stay F16, float tensors keep their type.
 *   safetensors: model.safetensors + config.json in the Hugging Face Llama
 *                layout (names model.layers.N...., Q/K rows in rotate-half
 *                order).  An int8 tensor X is stored as X (I8 [out, in]) and
 *                X_scale: F32 [out, 1] per channel, or F16 [out, in/g] per
 *                group, with W = scale * q; config.json's quantization_config
 *                says which (README: "int8 safetensors layout").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/buf.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/quant.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

/* GGUF general.file_type values (llama.cpp llama_ftype). */
enum { FTYPE_ALL_F32 = 0, FTYPE_MOSTLY_F16 = 1, FTYPE_MOSTLY_Q8_0 = 7 };

static const json_t *quant_record(const struct mcb_model *m, const char *name)
{
	return json_object_get(json_object_get(m->meta, "quant"), name);
}

/* Is t the scale companion of a quantized tensor? */
static int is_scale_tensor(const struct mcb_model *m, const char *name)
{
	const char *key;
	json_t *rec;

	json_object_foreach (json_object_get(m->meta, "quant"), key, rec)
		if (!strcmp(mcb_param_str(rec, "scale", ""), name))
			return 1;
	return 0;
}

/*
 * The tokenizer: the source's own (GGUF passthrough keys tokenizer.*), or, for
 * models that carry none (llama2.c checkpoints), a placeholder
 * SentencePiece-style vocabulary so that llama.cpp loads the file: <unk>,
 * <s>, </s>, the 256 byte tokens, then fillers.  Token ids are what matter;
 * text cannot be tokenized with it, and the step says so.
 */
static int write_tokenizer(struct mcb_stepctx *sc, const struct mcb_model *m,
			   struct mcb_gguf_writer *w)
{
	int rc = mcb_gguf_set_placeholder_vocab(w, m->cfg.vocab_size, sc->e);

	if (rc)
		return mcb_errprefix(sc->e, "the model has no tokenizer");
	mcb_step_log(sc,
		     "the model has no tokenizer: wrote a placeholder %lld-token vocabulary "
		     "(evaluate with token ids, not text)",
		     (long long)m->cfg.vocab_size);
	return 0;
}

/*
 * The order llama.cpp's converters write tensors in: token_embd, then each
 * block's tensors in a fixed order, then output_norm and output; anything
 * else after, by name.  (llama.cpp finds tensors by name; a fixed order
 * keeps files comparable with other tools' output.)
 */
static long llama_rank(const char *name)
{
	static const char *const blk[] = {
		"attn_norm.weight", "attn_q.weight",	  "attn_k.weight",
		"attn_v.weight",    "attn_output.weight", "ffn_norm.weight",
		"ffn_gate.weight",  "ffn_down.weight",	  "ffn_up.weight"};
	char *end;
	long layer;
	size_t i;

	if (!strcmp(name, "token_embd.weight"))
		return 0;
	if (!strcmp(name, "output_norm.weight"))
		return 1L << 40;
	if (!strcmp(name, "output.weight"))
		return (1L << 40) + 1;
	if (!strncmp(name, "blk.", 4)) {
		layer = strtol(name + 4, &end, 10);
		if (end != name + 4 && *end == '.' && layer >= 0 && layer < (1L << 20))
			for (i = 0; i < sizeof(blk) / sizeof(blk[0]); i++)
				if (!strcmp(end + 1, blk[i]))
					return 1 + layer * 16 + (long)i;
	}
	return 1L << 41;
}

static int cmp_llama_order(const void *a, const void *b)
{
	const struct mcb_tensor *x = *(const struct mcb_tensor *const *)a;
	const struct mcb_tensor *y = *(const struct mcb_tensor *const *)b;
	long rx = llama_rank(x->name), ry = llama_rank(y->name);

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int export_gguf(struct mcb_stepctx *sc, const struct mcb_model *m)
{
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	const struct mcb_llama_config *c = &m->cfg;
	int nq8 = 0, nf16 = 0, have_tok = 0;
	void **owned = mcb_arena_array(sc->scratch, m->ntensors + 1, sizeof(void *));
	const struct mcb_tensor **order;
	size_t i, nowned = 0;
	int rc = 0;
	json_t *gguf_keys = json_object_get(m->meta, "gguf");

	/* The source's own keys first (tokenizer, general.name, ...): the
	 * architecture keys below replace any stale copies. */
	if (json_object_size(gguf_keys)) {
		rc = mcb_gguf_set_meta(w, gguf_keys, sc->e);
		have_tok = json_object_get(gguf_keys, "tokenizer.ggml.model") != NULL;
	}
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
	mcb_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
	mcb_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
	mcb_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
	mcb_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
	mcb_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
	mcb_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
	mcb_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)c->norm_eps);
	mcb_gguf_set_f32(w, "llama.rope.freq_base", (float)c->rope_theta);
	mcb_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);
	if (!rc && !have_tok)
		rc = write_tokenizer(sc, m, w);
	order = mcb_arena_array(sc->scratch, m->ntensors + 1, sizeof(*order));
	for (i = 0; i < m->ntensors; i++)
		order[i] = &m->tensors[i];
	qsort(order, m->ntensors, sizeof(*order), cmp_llama_order);
	for (i = 0; i < m->ntensors && !rc; i++) {
		const struct mcb_tensor *t = order[i];
		const json_t *rec = quant_record(m, t->name);
		uint64_t ne[MCB_GGUF_MAX_DIMS];
		int d;

		if (is_scale_tensor(m, t->name))
			continue;
		if (t->ndim < 1 || t->ndim > MCB_GGUF_MAX_DIMS) {
			rc = mcb_errf(sc->e, MCB_EUNSUP, "tensor '%s' has %d dimensions", t->name,
				      t->ndim);
			break;
		}
		for (d = 0; d < t->ndim; d++)
			ne[d] = (uint64_t)t->shape[t->ndim - 1 - d];
		if (rec && json_object_get(rec, "scale")) {
			const struct mcb_tensor *s =
				mcb_model_find(m, mcb_param_str(rec, "scale", ""));
			int64_t rows = t->shape[0], cols = t->shape[1], r, b, nb;
			struct mcb_block_q8_0 *blocks;
			const int8_t *q = t->data;
			const uint16_t *dsc;

			if (strcmp(mcb_param_str(rec, "granularity", ""), "group") ||
			    mcb_param_int(rec, "group_size", 0) != MCB_QK8_0 || !s ||
			    s->dtype != MCB_DT_F16 || t->ndim != 2 || cols % MCB_QK8_0 ||
			    s->nbytes != (size_t)(rows * (cols / MCB_QK8_0)) * 2) {
				rc = mcb_errf(sc->e, MCB_EUNSUP,
					      "tensor '%s' is not quantized in Q8_0 blocks; gguf "
					      "export needs granularity group (32)",
					      t->name);
				break;
			}
			nb = rows * (cols / MCB_QK8_0);
			blocks = malloc((size_t)nb * sizeof(*blocks));
			if (!blocks) {
				rc = mcb_errf(sc->e, MCB_ENOMEM,
					      "cannot allocate Q8_0 blocks for '%s'", t->name);
				break;
			}
			dsc = s->data;
			for (r = 0; r < rows; r++)
				for (b = 0; b < cols / MCB_QK8_0; b++) {
					struct mcb_block_q8_0 *blk =
						&blocks[r * (cols / MCB_QK8_0) + b];

					blk->d = dsc[r * (cols / MCB_QK8_0) + b];
					memcpy(blk->qs, q + r * cols + b * MCB_QK8_0, MCB_QK8_0);
				}
			rc = mcb_gguf_add_tensor(
				w, t->name, (uint32_t)mcb_dtype_info(MCB_DT_Q8_0)->ggml_type, 2, ne,
				blocks, (uint64_t)nb * sizeof(*blocks), sc->e);
			/* the writer borrows data until mcb_gguf_write: keep blocks alive */
			owned[nowned++] = blocks;
			nq8++;
			continue;
		}
		if (mcb_dtype_info(t->dtype)->ggml_type < 0) {
			rc = mcb_errf(sc->e, MCB_EUNSUP,
				      "tensor '%s' has type %s, which gguf cannot store", t->name,
				      mcb_dtype_info(t->dtype)->name);
			break;
		}
		nf16 += t->dtype == MCB_DT_F16;
		rc = mcb_gguf_add_tensor(w, t->name, (uint32_t)mcb_dtype_info(t->dtype)->ggml_type,
					 (uint32_t)t->ndim, ne, t->data, t->nbytes, sc->e);
	}
	if (!rc) {
		mcb_gguf_set_u32(w, "general.file_type",
				 nq8	? FTYPE_MOSTLY_Q8_0
				 : nf16 ? FTYPE_MOSTLY_F16
					: FTYPE_ALL_F32);
		if (nq8)
			mcb_gguf_set_u32(w, "general.quantization_version", 2);
		mcb_gguf_sort_keys(w);
		rc = mcb_gguf_write(w, mcb_step_outpath(sc, "model.gguf"), sc->e);
	}
	mcb_gguf_writer_free(w);
	for (i = 0; i < nowned; i++)
		free(owned[i]);
	return rc;
}

/* Q and K rows travel in HF's rotate-half order outside mcbuild. */
static int64_t qk_heads(const struct mcb_model *m, const char *name)
{
	size_t n = strlen(name);

	if (n > 14 && !strcmp(name + n - 14, ".attn_q.weight"))
		return m->cfg.n_heads;
	if (n > 14 && !strcmp(name + n - 14, ".attn_k.weight"))
		return m->cfg.n_kv_heads;
	return 0;
}

/* A tensor named name for the output, with data copied and permuted to HF
 * row order when heads > 0, else borrowed. */
static int hf_tensor(struct mcb_stepctx *sc, struct mcb_tensor *out, const struct mcb_tensor *t,
		     const char *name, int64_t heads, int64_t head_dim, int ndim,
		     const int64_t *shape)
{
	int64_t rows = t->shape[0], cols = 1;
	int d;

	*out = *t;
	out->name = name;
	out->ndim = ndim;
	for (d = 0; d < ndim; d++)
		out->shape[d] = shape[d];
	out->owned = 0;
	if (!heads)
		return 0;
	for (d = 1; d < t->ndim; d++)
		cols *= t->shape[d];
	out->data = mcb_arena_alloc(sc->scratch, t->nbytes);
	memcpy(out->data, t->data, t->nbytes);
	if (rows != heads * head_dim)
		return mcb_errf(sc->e, MCB_EFORMAT, "tensor '%s' has %lld rows, expected %lld",
				t->name, (long long)rows, (long long)(heads * head_dim));
	return mcb_hf_permute_rows(out->data, heads, head_dim, cols,
				   t->nbytes / (size_t)(rows * cols), 0, sc->e);
}

static int export_safetensors(struct mcb_stepctx *sc, const struct mcb_model *m)
{
	const struct mcb_tensor **list;
	struct mcb_tensor *outs;
	struct mcb_buf cfgtext = MCB_BUF_INIT;
	json_t *cfg, *meta, *qc = NULL, *unq = json_array();
	const char *qgran = NULL;
	int64_t qgroup = 0;
	size_t i, n = 0;
	int rc = 0;

	list = mcb_arena_array(sc->scratch, m->ntensors, sizeof(*list));
	outs = mcb_arena_array(sc->scratch, m->ntensors, sizeof(*outs));
	for (i = 0; i < m->ntensors && !rc; i++) {
		const struct mcb_tensor *t = &m->tensors[i];
		const json_t *rec = quant_record(m, t->name);
		char hf[256];
		int64_t heads = qk_heads(m, t->name);

		if (is_scale_tensor(m, t->name))
			continue;
		if (mcb_gguf_to_hf_name(t->name, hf, sizeof(hf)) < 0) {
			rc = mcb_errf(sc->e, MCB_EUNSUP, "no Hugging Face name for tensor '%s'",
				      t->name);
			break;
		}
		rc = hf_tensor(sc, &outs[n], t, mcb_arena_strdup(sc->scratch, hf), heads,
			       m->cfg.head_dim, t->ndim, t->shape);
		if (rc)
			break;
		list[n] = &outs[n];
		n++;
		if (rec && json_object_get(rec, "scale")) {
			const struct mcb_tensor *s =
				mcb_model_find(m, mcb_param_str(rec, "scale", ""));
			int64_t shape[2];

			if (!s) {
				rc = mcb_errf(sc->e, MCB_EFORMAT, "scale tensor of '%s' is missing",
					      t->name);
				break;
			}
			qgran = mcb_param_str(rec, "granularity", "");
			qgroup = mcb_param_int(rec, "group_size", 0);
			shape[0] = t->shape[0];
			shape[1] = s->ndim == 1 ? 1 : s->shape[1];
			rc = hf_tensor(sc, &outs[n], s,
				       mcb_arena_printf(sc->scratch, "%s_scale", hf), heads,
				       m->cfg.head_dim, 2, shape);
			list[n] = &outs[n];
			n++;
		} else if (t->ndim == 2) {
			json_array_append_new(unq, json_string(hf));
		}
	}
	if (rc)
		goto out;
	meta = json_pack("{s:s}", "format", "pt");
	rc = mcb_st_write(mcb_step_outpath(sc, "model.safetensors"),
			  (const struct mcb_tensor *const *)list, n, meta, sc->e);
	json_decref(meta);
	if (rc)
		goto out;
	cfg = mcb_hf_config(m);
	if (qgran) {
		qc = json_pack("{s:s, s:i, s:s, s:I, s:b, s:s, s:O}", "quant_method",
			       "mcbuild-int8", "bits", 8, "granularity", qgran, "group_size",
			       (json_int_t)qgroup, "symmetric", 1, "scale_suffix", "_scale",
			       "modules_not_quantized", unq);
		json_object_set_new(cfg, "quantization_config", qc);
	}
	mcb_json_pretty(cfg, &cfgtext);
	json_decref(cfg);
	rc = mcb_os_write_atomic(mcb_step_outpath(sc, "config.json"), cfgtext.data, cfgtext.len,
				 0644, sc->e);
out:
	json_decref(unq);
	mcb_buf_release(&cfgtext);
	return rc;
}

static int run_export(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const char *format = mcb_param_str(sc->params, "format", "");
	struct mcb_model m;
	int rc;

	if (!in)
		return mcb_errf(sc->e, MCB_EINTERNAL, "export step has no model input");
	mcb_model_init(&m);
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (!rc) {
		if (!strcmp(format, "gguf"))
			rc = export_gguf(sc, &m);
		else if (!strcmp(format, "safetensors"))
			rc = export_safetensors(sc, &m);
		else
			rc = mcb_errf(sc->e, MCB_EUNSUP, "unknown export format '%s'", format);
	}
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_export = {
	.name = "export",
	.version = 1,
	.run = run_export,
};
