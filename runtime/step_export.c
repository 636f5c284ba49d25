/*
 * step export: the internal form -> the file(s) a hardware's runtime loads.
 *
 * params: {"format": "gguf" | "safetensors" | "gptq" | "awq"}
 * inputs: "model" (internal form; quantized weights are described by the
 *         records of include/mcb/qtensor.h)
 * outputs (compiler/plan.c lists the same):
 *
 *   gguf: model.gguf (llama.cpp; ggml docs/gguf.md, ALGORITHMS.md 5)
 *     - float tensors keep their type (F32, F16, BF16; F16 fallbacks F16)
 *     - "ggml" records: their blocks, copied block for block
 *     - "int" records that are exactly a ggml type (no g_idx, fp16 scales):
 *         8-bit symmetric, groups of 32  -> Q8_0 {f16 d = scale; i8 qs = q}
 *         4-bit symmetric, groups of 32  -> Q4_0 {f16 d = scale; nibble q + 8}
 *           (symmetric codes are q - 8, so Q4_0's (nibble - 8) * d is exact)
 *         4-bit asymmetric, groups of 32 -> Q4_1 {f16 d = scale,
 *           m = fp16(-scale * zero); nibble q}: exact only up to the rounding
 *           of m to fp16 and Q4_1's two roundings (q*d + m), ~1 fp16 ulp of m
 *       other int records and "fp8" records are refused (the planner does
 *       not plan them for gguf)
 *     - "lowrank" records: the product A B as a dense F32 tensor, as every
 *       export writes them (no runtime loads a factored linear layer); the
 *       step log counts them
 *     - keys: llama.* from the config (llama.attention.key_length and
 *       value_length too when head_dim != dim / n_heads), the source's
 *       passthrough keys (tokenizer.*), or a placeholder vocabulary;
 *       general.file_type (llama.cpp include/llama.h enum llama_ftype) from
 *       the most common type among the 2-D tensors, as llama.cpp's loader
 *       guesses it (llama-model-loader.cpp: the type with the most tensors);
 *       Q4_K is MOSTLY_Q4_K_M when some attn_v/ffn_down is Q6_K (llama.cpp's
 *       llama_tensor_get_type mixes), else Q4_K_S;
 *       general.quantization_version = 2 when any tensor is quantized;
 *       "mcbuild.quantization": canonical JSON of the quantization records
 *       (tensor -> record without its side-tensor names; records an importer
 *       made are left out, and without any the key is not written)
 *     - masks of pruned weights are not written (the zeros are in the values)
 *
 *   safetensors: config.json + model.safetensors, Hugging Face Llama layout
 *     (names model.layers.N...., Q/K rows in rotate-half order), one of:
 *     - mcbuild-int8 (8-bit symmetric int records without input_scale):
 *         X I8 [out, in] and X_scale F32 [out, 1] (per channel) or F16
 *         [out, in/g] (groups), W = scale * q; config.json quantization_config
 *         {"quant_method": "mcbuild-int8", "bits": 8, "granularity",
 *          "group_size", "symmetric": true, "scale_suffix": "_scale",
 *          "modules_not_quantized": [2-D float tensors]}  (README: "int8
 *          safetensors layout")
 *     - compressed-tensors (vllm-project/compressed-tensors config/base.py
 *       CompressionFormat, quantization/quant_config.py QuantizationConfig,
 *       quant_args.py QuantizationArgs; loaded by vLLM's
 *       quantization/compressed_tensors/schemes/compressed_tensors_w8a8_fp8.py
 *       and compressed_tensors_w8a8_int8.py), for "fp8" records ("format":
 *       "float-quantized") or 8-bit symmetric per-channel int records with an
 *       "input_scale" (SmoothQuant W8A8, "int-quantized"):
 *         P.weight F8_E4M3 or I8 [out, in], P.weight_scale F32 [out, 1],
 *         P.input_scale F32 [1] (W8A8 only: the static activation scale)
 *       quantization_config {"quant_method": "compressed-tensors", "format",
 *         "quantization_status": "compressed", "config_groups": {"group_0":
 *         {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float" |
 *         "int", "strategy": "channel", "symmetric": true, "dynamic": false,
 *         ...}, "input_activations": fp8: {"type": "float", "strategy":
 *         "token", "dynamic": true, ...} (FP8_DYNAMIC), or null when a record
 *         says "activations": "none"; W8A8: {"type": "int", "strategy":
 *         "tensor", "dynamic": false, ...}, "output_activations": null}},
 *         "ignore": ["lm_head", float Linear modules], "kv_cache_scheme": null}
 *     - plain float otherwise (lowrank weights: the dense F32 product)
 *     Pruned weights (records with "sparsity" and "mask") add "<hf name>_mask"
 *     U8 [out, in] (1 = kept), and config.json a sparsity_config in
 *     compressed-tensors' shape (config/base.py SparsityCompressionConfig:
 *     "format": "dense" (compressed-tensors has no dense-with-mask form: in
 *     "dense" the zeros are in the weights, which they are here too),
 *     "sparsity_structure", "global_sparsity", "targets", "ignore"), inside
 *     quantization_config for compressed-tensors, at the top level otherwise.
 *     (vLLM's Llama loader rejects tensor names it does not know, so a file
 *     with masks is for mcbuild and transformers, not vLLM.)
 *
 *   gptq: config.json + model.safetensors + quantize_config.json (AutoGPTQ
 *     v1 layout, ALGORITHMS.md 1; packing in runtime/quant.c):
 *       P.qweight I32 [in*bits/32, out], P.qzeros I32 [ngroups, out*bits/32]
 *       holding zero - 1 (symmetric zeros are 2^(bits-1)), P.scales F16
 *       [ngroups, out], P.g_idx I32 [in] (always: column / group_size when
 *       the record has none); int records of 2, 3, 4 or 8 bits, one bits and
 *       group size for the whole model; an asymmetric zero point of 0 is
 *       refused (v1 stores zero - 1 and readers add 1 without wrapping).
 *       Per-channel F32 scales are rounded to fp16 (what GPTQ stores): the
 *       step log says how many changed.  Other tensors keep their dtype.
 *     quantization_config = quantize_config.json = {"quant_method": "gptq",
 *       "bits", "group_size" (-1: per channel), "desc_act" (any g_idx),
 *       "sym", "static_groups", "true_sequential", "damp_percent",
 *       "checkpoint_format": "gptq"} (+ "model_file_base_name" in
 *       quantize_config.json; + GPTQModel's "dynamic" {"-:<module regex>": {}}
 *       in config.json for Linear modules left in floating point)
 *
 *   awq: config.json + model.safetensors (AutoAWQ GEMM, ALGORITHMS.md 2):
 *       P.qweight I32 [in, out/8], P.qzeros I32 [ngroups, out/8] (raw
 *       zeros), P.scales F16 [ngroups, out], packed along the output
 *       dimension in nibble order [0, 2, 4, 6, 1, 3, 5, 7]; 4-bit grouped int
 *       records with one group size dividing in, no g_idx; asymmetric, or
 *       symmetric converted exactly (codes + 8 with zero 8: AWQ always has a
 *       zero point, so such a weight re-imports as asymmetric with zeros 8).
 *     quantization_config {"quant_method": "awq", "bits": 4, "group_size",
 *       "zero_point": true, "version": "gemm", "modules_to_not_convert"}.
 *
 * Q and K rows travel in HF's rotate-half order outside mcbuild (hf.h): for
 * packed forms the rows of the codes, scales and zeros are permuted before
 * packing.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

/* GGUF general.file_type values (llama.cpp include/llama.h, enum llama_ftype). */
enum {
	FTYPE_ALL_F32 = 0,
	FTYPE_MOSTLY_F16 = 1,
	FTYPE_MOSTLY_Q4_0 = 2,
	FTYPE_MOSTLY_Q4_1 = 3,
	FTYPE_MOSTLY_Q8_0 = 7,
	FTYPE_MOSTLY_Q4_K_S = 14,
	FTYPE_MOSTLY_Q4_K_M = 15,
	FTYPE_MOSTLY_Q6_K = 18,
	FTYPE_MOSTLY_BF16 = 32
};

/* Record keys that name side tensors (not exported as tensors of their own). */
static const char *const side_keys[] = {"scale", "zero", "g_idx", "mask", "input_scale", "b"};
#define NSIDE (sizeof(side_keys) / sizeof(side_keys[0]))

/* One export run. */
struct ex {
	struct mcb_stepctx *sc;
	const struct mcb_model *m;
	void **owned;                 /* malloc'd buffers freed at the end; nowned of cap */
	size_t nowned, cap;
	struct mcb_tensor *outs;      /* safetensors output tensors, nout of outcap */
	size_t nout, outcap;
	int nlowrank;                 /* lowrank weights written as dense products */
};

static const json_t *quant_record(const struct mcb_model *m, const char *name)
{
	return json_object_get(json_object_get(m->meta, "quant"), name);
}

/* Is name a side tensor (scale, zero, g_idx, mask, input_scale) of a record? */
static int is_side(const struct mcb_model *m, const char *name)
{
	const char *key;
	json_t *rec;
	size_t i;

	json_object_foreach (json_object_get(m->meta, "quant"), key, rec)
		for (i = 0; i < NSIDE; i++)
			if (!strcmp(mcb_param_str(rec, side_keys[i], ""), name))
				return 1;
	return 0;
}

/* A malloc'd buffer of n * size bytes freed when the export ends, or NULL
 * with the error set naming the tensor. */
static void *ex_alloc(struct ex *x, size_t n, size_t size, const char *name)
{
	size_t bytes;
	void *p;

	if (mcb_mul_ok(n, size, &bytes)) {
		mcb_errf(x->sc->e, MCB_ERANGE, "tensor '%s': export buffer size overflows", name);
		return NULL;
	}
	if (x->nowned == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 64;
		x->owned = mcb_xrealloc(x->owned, x->cap * sizeof(*x->owned));
	}
	p = calloc(bytes ? bytes : 1, 1);
	if (!p) {
		mcb_errf(x->sc->e, MCB_ENOMEM, "cannot allocate %zu bytes to export tensor '%s'", bytes,
			 name);
		return NULL;
	}
	x->owned[x->nowned++] = p;
	return p;
}

/* The quantized form of 2-D tensor name (a pruned float weight's record
 * says "format": "float"). */
static int get_q(struct ex *x, const char *name, struct mcb_qtensor *q)
{
	return mcb_qtensor_get(x->m, name, q, x->sc->e);
}

/* Rows of name are a Q or K projection: its head count, else 0. */
static int64_t qk_heads(const struct mcb_model *m, const char *name)
{
	size_t n = strlen(name);

	if (n > 14 && !strcmp(name + n - 14, ".attn_q.weight"))
		return m->cfg.n_heads;
	if (n > 14 && !strcmp(name + n - 14, ".attn_k.weight"))
		return m->cfg.n_kv_heads;
	return 0;
}

/* Permute the rows (rows x cols elements of esize bytes) of tensor name's
 * data from the IR's interleaved order to HF's rotate-half order. */
static int to_hf_rows(struct ex *x, const char *name, void *data, int64_t rows, int64_t cols,
		      size_t esize)
{
	int64_t heads = qk_heads(x->m, name), hd = x->m->cfg.head_dim;

	if (!heads)
		return 0;
	if (rows != heads * hd)
		return mcb_errf(x->sc->e, MCB_EFORMAT, "tensor '%s' has %" PRId64 " rows, expected %"
				PRId64 " (%" PRId64 " heads of %" PRId64 ")", name, rows, heads * hd,
				heads, hd);
	return mcb_hf_permute_rows(data, heads, hd, cols, esize, 0, x->sc->e);
}

/* A copy of n bytes (owned by the export), or NULL with the error set. */
static void *ex_copy(struct ex *x, const void *src, size_t n, const char *name)
{
	void *p = ex_alloc(x, n, 1, name);

	if (p)
		memcpy(p, src, n);
	return p;
}

/*
 * A lowrank weight q (qtensor.h) as a dense F32 tensor (rows, cols) named
 * like it, its data owned by the export: the runtimes have no factored
 * linear layer, so the product A B is what they load, exactly the values
 * the evaluation measured (mcb_qtensor_row).
 */
static int lowrank_dense(struct ex *x, const struct mcb_qtensor *q, struct mcb_tensor *out)
{
	float *d = ex_alloc(x, (size_t)(q->rows * q->cols), sizeof(float), q->name);
	int64_t r;

	if (!d)
		return x->sc->e->code;
	for (r = 0; r < q->rows; r++)
		mcb_qtensor_row(q, r, d + r * q->cols);
	memset(out, 0, sizeof(*out));
	out->name = q->name;
	out->dtype = MCB_DT_F32;
	out->ndim = 2;
	out->shape[0] = q->rows;
	out->shape[1] = q->cols;
	out->data = d;
	out->nbytes = (size_t)(q->rows * q->cols) * sizeof(float);
	x->nlowrank++;
	return 0;
}

/* The scale of group i of q as an fp16 value; -1 when an F32 scale is not one. */
static int scale_h(const struct mcb_qtensor *q, int64_t i, uint16_t *h)
{
	float f;

	if (q->scale->dtype == MCB_DT_F16) {
		*h = ((const uint16_t *)q->scale->data)[i];
		return 0;
	}
	f = ((const float *)q->scale->data)[i];
	*h = mcb_f32_to_f16(f);
	return mcb_f16_to_f32(*h) == f ? 0 : -1;
}

/* Quantization records without the names of their side tensors: what the
 * recipe chose, for the exported file's metadata.  Records an importer
 * made (method "gguf..." or "import..."), which only restate the source
 * file's types, are left out, so that an imported model re-exports
 * unchanged.  A new reference. */
static json_t *records_summary(const struct mcb_model *m)
{
	json_t *out = json_object(), *rec;
	const char *key, *meth;
	size_t i;

	json_object_foreach (json_object_get(m->meta, "quant"), key, rec) {
		json_t *c;

		meth = mcb_param_str(rec, "method", "");
		if (!strncmp(meth, "gguf", 4) || !strncmp(meth, "import", 6))
			continue;
		c = json_deep_copy(rec);

		for (i = 0; i < NSIDE; i++)
			json_object_del(c, side_keys[i]);
		json_object_set_new(out, key, c);
	}
	return out;
}

/* ---- gguf ---- */

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

/* Little-endian fp16 into p. */
static void put_h(uint8_t *p, uint16_t h)
{
	p[0] = (uint8_t)(h & 0xff);
	p[1] = (uint8_t)(h >> 8);
}

/*
 * The ggml blocks of an int record that is exactly Q8_0, Q4_0 or Q4_1 (see
 * the top of the file) into a new buffer; *type the block type.  MCB_EUNSUP
 * naming the tensor for other int forms.
 */
static int int_to_blocks(struct ex *x, const struct mcb_qtensor *q, enum mcb_dtype *type,
			 void **out, size_t *nbytes)
{
	const int64_t nb = q->cols / 32;
	const struct mcb_dtype_info *di;
	int64_t r, b, j;
	uint8_t *blocks, *p;
	uint16_t h;

	*out = NULL;
	if (q->group_size != 32 || q->g_idx || q->cols % 32 ||
	    !((q->bits == 8 && q->symmetric) || q->bits == 4))
		return mcb_errf(x->sc->e, MCB_EUNSUP,
				"tensor '%s': %d-bit %s int quantization with group size %" PRId64
				"%s has no GGUF block type (GGUF takes 8-bit symmetric (Q8_0) or 4-bit "
				"(Q4_0, Q4_1) groups of 32 without act-order, or ggml blocks)",
				q->name, q->bits, q->symmetric ? "symmetric" : "asymmetric",
				q->group_size, q->g_idx ? " and act-order g_idx" : "");
	*type = q->bits == 8 ? MCB_DT_Q8_0 : q->symmetric ? MCB_DT_Q4_0 : MCB_DT_Q4_1;
	di = mcb_dtype_info(*type);
	if (!(blocks = ex_alloc(x, (size_t)(q->rows * nb), di->block_bytes, q->name)))
		return x->sc->e->code;
	for (r = 0; r < q->rows; r++)
		for (b = 0; b < nb; b++) {
			int64_t gi = r * nb + b;

			p = blocks + (size_t)gi * di->block_bytes;
			if (scale_h(q, gi, &h))
				return mcb_errf(x->sc->e, MCB_EUNSUP,
						"tensor '%s': scale of row %" PRId64 ", group %" PRId64
						" is not an fp16 value, which GGUF blocks need",
						q->name, r, b);
			put_h(p, h);
			if (*type == MCB_DT_Q8_0) {
				memcpy(p + 2, (const int8_t *)q->codes->data + r * q->cols + b * 32, 32);
			} else if (*type == MCB_DT_Q4_0) {
				const int8_t *c = (const int8_t *)q->codes->data + r * q->cols + b * 32;

				for (j = 0; j < 16; j++)
					p[2 + j] = (uint8_t)((c[j] + 8) | (c[j + 16] + 8) << 4);
			} else {
				const uint8_t *c = (const uint8_t *)q->codes->data + r * q->cols + b * 32;
				int z = ((const uint8_t *)q->zero->data)[gi];
				/* m = -d * zero rounded to fp16: the one inexact step */
				uint16_t m = mcb_f32_to_f16(-mcb_f16_to_f32(h) * (float)z);

				if ((m & 0x7c00) == 0x7c00)
					return mcb_errf(x->sc->e, MCB_ERANGE,
							"tensor '%s': Q4_1 minimum of row %" PRId64
							", group %" PRId64 " is beyond fp16",
							q->name, r, b);
				put_h(p + 2, m);
				for (j = 0; j < 16; j++)
					p[4 + j] = (uint8_t)(c[j] | c[j + 16] << 4);
			}
		}
	*out = blocks;
	*nbytes = (size_t)(q->rows * nb) * di->block_bytes;
	return 0;
}

/* general.file_type from the number of 2-D tensors of each type (count,
 * indexed by dtype); q6_mix: some attn_v or ffn_down is Q6_K. */
static uint32_t file_type(const size_t *count, int q6_mix)
{
	static const struct {
		enum mcb_dtype dt;
		uint32_t ftype;
	} map[] = {
		{MCB_DT_F32, FTYPE_ALL_F32},	 {MCB_DT_F16, FTYPE_MOSTLY_F16},
		{MCB_DT_BF16, FTYPE_MOSTLY_BF16}, {MCB_DT_Q8_0, FTYPE_MOSTLY_Q8_0},
		{MCB_DT_Q4_0, FTYPE_MOSTLY_Q4_0}, {MCB_DT_Q4_1, FTYPE_MOSTLY_Q4_1},
		{MCB_DT_Q4_K, FTYPE_MOSTLY_Q4_K_M}, {MCB_DT_Q6_K, FTYPE_MOSTLY_Q6_K},
	};
	size_t i, best = 0;

	for (i = 1; i < sizeof(map) / sizeof(map[0]); i++)
		if (count[map[i].dt] > count[map[best].dt])
			best = i;
	if (map[best].dt == MCB_DT_Q4_K && !q6_mix)
		return FTYPE_MOSTLY_Q4_K_S;
	return map[best].ftype;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

static int export_gguf(struct ex *x)
{
	struct mcb_stepctx *sc = x->sc;
	const struct mcb_model *m = x->m;
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	const struct mcb_llama_config *c = &m->cfg;
	const struct mcb_tensor **order;
	size_t count[MCB_DT_COUNT] = {0}, i, nquant = 0;
	int rc = 0, have_tok = 0, q6_mix = 0;
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
	/* llama.cpp reads the head size from these when heads are not dim/n_heads
	 * wide (llama-model.cpp: n_embd_head_k = key_length, default n_embd/n_head) */
	if (c->head_dim * c->n_heads != c->dim) {
		mcb_gguf_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim);
		mcb_gguf_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim);
	}
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
		uint64_t ne[MCB_GGUF_MAX_DIMS];
		struct mcb_qtensor q;
		enum mcb_dtype type = t->dtype;
		const void *data = t->data;
		size_t nbytes = t->nbytes;
		int d;

		if (is_side(m, t->name))
			continue;
		if (t->ndim < 1 || t->ndim > MCB_GGUF_MAX_DIMS) {
			rc = mcb_errf(sc->e, MCB_EUNSUP, "tensor '%s' has %d dimensions", t->name,
				      t->ndim);
			break;
		}
		for (d = 0; d < t->ndim; d++)
			ne[d] = (uint64_t)t->shape[t->ndim - 1 - d];
		if (t->ndim == 2) {
			void *blocks;

			if ((rc = get_q(x, t->name, &q)))
				break;
			ne[0] = (uint64_t)q.cols;
			switch (q.format) {
			case MCB_QF_FLOAT:
				break;
			case MCB_QF_GGML:
				type = q.ggml;
				break;
			case MCB_QF_INT:
				if ((rc = int_to_blocks(x, &q, &type, &blocks, &nbytes)))
					break;
				data = blocks;
				break;
			case MCB_QF_FP8:
				rc = mcb_errf(sc->e, MCB_EUNSUP,
					      "tensor '%s' is quantized to FP8, which GGUF cannot "
					      "store (export fp8 as safetensors)",
					      t->name);
				break;
			case MCB_QF_LOWRANK: {
				struct mcb_tensor dense;

				if ((rc = lowrank_dense(x, &q, &dense)))
					break;
				type = dense.dtype;
				data = dense.data;
				nbytes = dense.nbytes;
				break;
			}
			}
			if (rc)
				break;
			count[type]++;
			nquant += q.format != MCB_QF_FLOAT && q.format != MCB_QF_LOWRANK;
			if (type == MCB_DT_Q6_K &&
			    (ends_with(t->name, ".attn_v.weight") || ends_with(t->name, ".ffn_down.weight")))
				q6_mix = 1;
		}
		if (mcb_dtype_info(type)->ggml_type < 0) {
			rc = mcb_errf(sc->e, MCB_EUNSUP,
				      "tensor '%s' has type %s, which gguf cannot store", t->name,
				      mcb_dtype_info(type)->name);
			break;
		}
		rc = mcb_gguf_add_tensor(w, t->name, (uint32_t)mcb_dtype_info(type)->ggml_type,
					 (uint32_t)t->ndim, ne, data, nbytes, sc->e);
	}
	if (!rc) {
		mcb_gguf_set_u32(w, "general.file_type", file_type(count, q6_mix));
		if (nquant)
			mcb_gguf_set_u32(w, "general.quantization_version", 2);
		{
			struct mcb_buf b = MCB_BUF_INIT;
			json_t *s = records_summary(m);

			mcb_json_canonical(s, &b);
			if (json_object_size(s))
				mcb_gguf_set_str(w, "mcbuild.quantization", mcb_buf_str(&b));
			json_decref(s);
			mcb_buf_release(&b);
		}
		mcb_gguf_sort_keys(w);
		rc = mcb_gguf_write(w, mcb_step_outpath(sc, "model.gguf"), sc->e);
	}
	mcb_gguf_writer_free(w);
	return rc;
}

/* ---- Hugging Face layouts ---- */

/* Append an output tensor (data borrowed or owned by the export). */
static void add_out(struct ex *x, const char *name, enum mcb_dtype dt, int ndim, int64_t d0,
		    int64_t d1, void *data, size_t nbytes)
{
	struct mcb_tensor *t;

	if (x->nout == x->outcap) {
		x->outcap = x->outcap ? 2 * x->outcap : 64;
		x->outs = mcb_xrealloc(x->outs, x->outcap * sizeof(*x->outs));
	}
	t = &x->outs[x->nout++];
	memset(t, 0, sizeof(*t));
	t->name = mcb_arena_strdup(x->sc->scratch, name);
	t->dtype = dt;
	t->ndim = ndim;
	t->shape[0] = d0;
	t->shape[1] = d1;
	t->data = data;
	t->nbytes = nbytes;
}

/* Tensor t under HF name hf (shape as given), Q/K rows permuted (a copy). */
static int add_hf(struct ex *x, const struct mcb_tensor *t, const char *hf, const char *irname,
		  int ndim, int64_t d0, int64_t d1)
{
	void *data = t->data;
	int64_t cols = 1;
	int d;

	for (d = 1; d < t->ndim; d++)
		cols *= t->shape[d];
	if (qk_heads(x->m, irname)) {
		if (!(data = ex_copy(x, t->data, t->nbytes, t->name)))
			return x->sc->e->code;
		if (to_hf_rows(x, irname, data, t->shape[0], cols,
			       t->shape[0] && cols ? t->nbytes / (size_t)(t->shape[0] * cols) : 1))
			return x->sc->e->code;
	}
	add_out(x, hf, t->dtype, ndim, d0, d1, data, t->nbytes);
	return 0;
}

/* "model.layers.0.mlp.down_proj" for "blk.0.ffn_down.weight" into the scratch
 * arena (the module: HF name without ".weight"), or NULL with the error set. */
static const char *hf_module(struct ex *x, const char *irname)
{
	char hf[256];
	size_t n;

	if (mcb_gguf_to_hf_name(irname, hf, sizeof(hf)) < 0) {
		mcb_errf(x->sc->e, MCB_EUNSUP, "no Hugging Face name for tensor '%s'", irname);
		return NULL;
	}
	n = strlen(hf);
	if (n > 7 && !strcmp(hf + n - 7, ".weight"))
		n -= 7;
	return mcb_arena_strndup(x->sc->scratch, hf, n);
}

/* Is irname a Linear layer's weight in HF (not the embeddings)? */
static int is_linear(const char *irname)
{
	return strcmp(irname, "token_embd.weight") && !ends_with(irname, "_norm.weight");
}

/* Write config.json (cfg, pretty) and model.safetensors (the outputs). */
static int write_hf(struct ex *x, json_t *cfg)
{
	const struct mcb_tensor **list = mcb_arena_array(x->sc->scratch, x->nout + 1, sizeof(*list));
	struct mcb_buf text = MCB_BUF_INIT;
	json_t *meta = json_pack("{s:s}", "format", "pt");
	size_t i;
	int rc;

	for (i = 0; i < x->nout; i++)
		list[i] = &x->outs[i];
	rc = mcb_st_write(mcb_step_outpath(x->sc, "model.safetensors"),
			  (const struct mcb_tensor *const *)list, x->nout, meta, x->sc->e);
	json_decref(meta);
	if (rc)
		return rc;
	mcb_json_pretty(cfg, &text);
	rc = mcb_os_write_atomic(mcb_step_outpath(x->sc, "config.json"), text.data, text.len, 0644,
				 x->sc->e);
	mcb_buf_release(&text);
	return rc;
}

/* Sparsity bookkeeping over the pruned weights (records with a mask). */
struct sparsity {
	int n;              /* pruned weights */
	int all_24;         /* every one of them is "2:4" */
	uint64_t kept, total;
	json_t *dense;      /* Linear modules not pruned (the config's "ignore") */
};

/* The mask of a pruned weight as "<hf name>_mask" U8 [out, in] (mod: the
 * HF module); an unpruned Linear module goes to the config's "ignore". */
static int add_mask(struct ex *x, const char *irname, const char *mod, struct sparsity *sp)
{
	const json_t *rec = quant_record(x->m, irname);
	const char *mname = mcb_param_str(rec, "mask", NULL);
	const struct mcb_tensor *mk, *t = mcb_model_find(x->m, irname);
	struct mcb_qtensor q;
	uint64_t i;
	int rc;

	if (!mname) {
		if (t && t->ndim == 2 && is_linear(irname) && strcmp(irname, "output.weight"))
			json_array_append_new(sp->dense, json_string(mod));
		return 0;
	}
	if ((rc = get_q(x, irname, &q)))
		return rc;
	mk = mcb_model_find(x->m, mname);
	if (!mk || mk->dtype != MCB_DT_U8 || mk->ndim != 2 || mk->shape[0] != q.rows ||
	    mk->shape[1] != q.cols)
		return mcb_errf(x->sc->e, MCB_EFORMAT,
				"tensor '%s': mask tensor '%s' must be U8 (%" PRId64 ", %" PRId64 ")",
				irname, mname, q.rows, q.cols);
	for (i = 0; i < mk->nbytes; i++) {
		if (((const uint8_t *)mk->data)[i] > 1)
			return mcb_errf(x->sc->e, MCB_EFORMAT,
					"tensor '%s': mask '%s' holds %d at %" PRIu64 " (0 or 1 only)",
					irname, mname, ((const uint8_t *)mk->data)[i], i);
		sp->kept += ((const uint8_t *)mk->data)[i];
	}
	sp->total += mk->nbytes;
	sp->n++;
	if (strcmp(mcb_param_str(rec, "sparsity", ""), "2:4"))
		sp->all_24 = 0;
	return add_hf(x, mk, mcb_arena_printf(x->sc->scratch, "%s.weight_mask", mod), irname, 2,
		      q.rows, q.cols);
}

/* compressed-tensors' SparsityCompressionConfig for the pruned weights, or
 * NULL when there are none. */
static json_t *sparsity_config(const struct sparsity *sp)
{
	if (!sp->n)
		return NULL;
	json_array_append_new(sp->dense, json_string("lm_head"));
	return json_pack("{s:s, s:s, s:f, s:[s], s:O}", "format", "dense", "sparsity_structure",
			 sp->all_24 ? "2:4" : "unstructured", "global_sparsity",
			 sp->total ? 1.0 - (double)sp->kept / (double)sp->total : 0.0, "targets",
			 "Linear", "ignore", sp->dense);
}

/* QuantizationArgs (compressed-tensors quant_args.py) of an 8-bit operand. */
static json_t *ct_args(const char *type, const char *strategy, int dynamic)
{
	return json_pack("{s:i, s:s, s:s, s:b, s:b, s:n, s:n, s:n, s:s, s:{}}", "num_bits", 8,
			 "type", type, "strategy", strategy, "symmetric", 1, "dynamic", dynamic,
			 "group_size", "actorder", "block_structure", "observer",
			 !strcmp(strategy, "token") ? "memoryless" : "minmax", "observer_kwargs");
}

enum st_kind { ST_FLOAT, ST_INT8, ST_FP8, ST_W8A8 };

static int export_safetensors(struct ex *x)
{
	const struct mcb_model *m = x->m;
	struct mcb_stepctx *sc = x->sc;
	json_t *cfg = NULL, *unq = json_array(), *ignore = json_array(), *qc = NULL, *spc;
	struct sparsity sp = {0, 1, 0, 0, json_array()};
	int64_t qgroup = -1;
	const char *qgran = NULL;
	int nkind[4] = {0, 0, 0, 0}, fp8_dynamic = 1;
	size_t i;
	int rc = 0;

	for (i = 0; i < m->ntensors && !rc; i++) {
		const struct mcb_tensor *t = &m->tensors[i];
		const json_t *rec = quant_record(m, t->name);
		const char *mod, *hf, *is = mcb_param_str(rec, "input_scale", NULL);
		struct mcb_qtensor q;
		struct mcb_tensor dense; /* a lowrank weight's product */
		enum st_kind kind = ST_FLOAT;

		if (is_side(m, t->name))
			continue;
		if (!(mod = hf_module(x, t->name))) {
			rc = sc->e->code;
			break;
		}
		hf = mcb_arena_printf(sc->scratch, "%s.weight", mod);
		if (t->ndim != 2) {
			rc = add_hf(x, t, hf, t->name, t->ndim, t->shape[0], t->shape[1]);
			continue;
		}
		if ((rc = get_q(x, t->name, &q)))
			break;
		if (q.format == MCB_QF_FP8) {
			kind = ST_FP8;
			if (!strcmp(mcb_param_str(rec, "activations", "dynamic"), "none"))
				fp8_dynamic = 0;
		} else if (q.format == MCB_QF_INT) {
			if (q.bits != 8 || !q.symmetric || q.g_idx || (is && q.group_size)) {
				rc = mcb_errf(sc->e, MCB_EUNSUP,
					      "tensor '%s': %d-bit %s int quantization (group size %"
					      PRId64 "%s) cannot be exported as safetensors (8-bit "
					      "symmetric only%s; export gptq or awq for the others)",
					      t->name, q.bits, q.symmetric ? "symmetric" : "asymmetric",
					      q.group_size, q.g_idx ? ", act-order" : "",
					      is ? ", per channel with an input scale" : "");
				break;
			}
			kind = is ? ST_W8A8 : ST_INT8;
		} else if (q.format == MCB_QF_GGML) {
			rc = mcb_errf(sc->e, MCB_EUNSUP,
				      "tensor '%s' holds ggml %s blocks, which safetensors cannot "
				      "store (export gguf)",
				      t->name, mcb_dtype_info(q.ggml)->name);
			break;
		} else if (q.format == MCB_QF_LOWRANK && (rc = lowrank_dense(x, &q, &dense))) {
			break;
		}
		nkind[kind]++;
		if (kind == ST_FLOAT) {
			const struct mcb_tensor *ft = q.format == MCB_QF_LOWRANK ? &dense : t;

			json_array_append_new(unq, json_string(hf));
			if (is_linear(t->name))
				json_array_append_new(ignore, json_string(mod));
			rc = add_hf(x, ft, hf, t->name, 2, ft->shape[0], ft->shape[1]);
		} else if (kind == ST_INT8) {
			int64_t g = q.group_size;

			if (qgroup >= 0 && g != qgroup) {
				rc = mcb_errf(sc->e, MCB_EUNSUP,
					      "tensor '%s' has int8 group size %" PRId64 ", another "
					      "tensor %" PRId64 ": the int8 layout has one", t->name, g,
					      qgroup);
				break;
			}
			qgroup = g;
			qgran = g ? "group" : "channel";
			if (!(rc = add_hf(x, t, hf, t->name, 2, q.rows, q.cols)))
				rc = add_hf(x, q.scale, mcb_arena_printf(sc->scratch, "%s_scale", hf),
					    t->name, 2, q.rows, q.ngroups);
		} else {
			const struct mcb_tensor *ist = NULL;
			float *ws;
			int64_t r;

			if (is && (!(ist = mcb_model_find(m, is)) || ist->dtype != MCB_DT_F32 ||
				   ist->nbytes != sizeof(float) ||
				   !isfinite(*(const float *)ist->data) || !(*(const float *)ist->data > 0))) {
				rc = mcb_errf(sc->e, MCB_EFORMAT,
					      "tensor '%s': input scale '%s' must be one positive finite "
					      "F32 value", t->name, is);
				break;
			}
			if ((rc = add_hf(x, t, hf, t->name, 2, q.rows, q.cols)))
				break;
			/* weight_scale: F32 [out, 1] (vLLM ChannelQuantScaleParameter) */
			if (!(ws = ex_alloc(x, (size_t)q.rows, sizeof(float), t->name))) {
				rc = sc->e->code;
				break;
			}
			for (r = 0; r < q.rows; r++)
				ws[r] = q.scale->dtype == MCB_DT_F16
						? mcb_f16_to_f32(((const uint16_t *)q.scale->data)[r])
						: ((const float *)q.scale->data)[r];
			if ((rc = to_hf_rows(x, t->name, ws, q.rows, 1, sizeof(float))))
				break;
			add_out(x, mcb_arena_printf(sc->scratch, "%s.weight_scale", mod), MCB_DT_F32, 2,
				q.rows, 1, ws, (size_t)q.rows * sizeof(float));
			if (ist)
				add_out(x, mcb_arena_printf(sc->scratch, "%s.input_scale", mod),
					MCB_DT_F32, 1, 1, 0, ist->data, sizeof(float));
		}
		if (!rc)
			rc = add_mask(x, t->name, mod, &sp);
	}
	if (!rc && (nkind[ST_INT8] ? 1 : 0) + (nkind[ST_FP8] ? 1 : 0) + (nkind[ST_W8A8] ? 1 : 0) > 1)
		rc = mcb_errf(sc->e, MCB_EUNSUP,
			      "the model mixes %s weights: a safetensors export holds one "
			      "quantization scheme",
			      !nkind[ST_W8A8] ? "int8 and fp8"
			      : !nkind[ST_FP8] ? "int8 and W8A8 (input-scaled)"
			      : !nkind[ST_INT8] ? "fp8 and W8A8" : "int8, fp8 and W8A8");
	if (rc)
		goto out;
	cfg = mcb_hf_config(m);
	spc = sparsity_config(&sp);
	if (nkind[ST_INT8]) {
		qc = json_pack("{s:s, s:i, s:s, s:I, s:b, s:s, s:O}", "quant_method",
			       "mcbuild-int8", "bits", 8, "granularity", qgran, "group_size",
			       (json_int_t)qgroup, "symmetric", 1, "scale_suffix", "_scale",
			       "modules_not_quantized", unq);
	} else if (nkind[ST_FP8] || nkind[ST_W8A8]) {
		int fp8 = nkind[ST_FP8] > 0;
		json_t *act = fp8 ? (fp8_dynamic ? ct_args("float", "token", 1) : json_null())
				  : ct_args("int", "tensor", 0);

		if (m->cfg.tied_embeddings) /* lm_head is the (float) embedding */
			json_array_insert_new(ignore, 0, json_string("lm_head"));
		qc = json_pack("{s:s, s:s, s:s, s:{s:{s:[s], s:o, s:o, s:n}}, s:O, s:n, s:n}",
			       "quant_method", "compressed-tensors", "format",
			       fp8 ? "float-quantized" : "int-quantized", "quantization_status",
			       "compressed", "config_groups", "group_0", "targets", "Linear",
			       "weights", ct_args(fp8 ? "float" : "int", "channel", 0),
			       "input_activations", act, "output_activations", "ignore", ignore,
			       "kv_cache_scheme", "global_compression_ratio");
	}
	if (spc) {
		if (qc && !strcmp(mcb_param_str(qc, "quant_method", ""), "compressed-tensors"))
			json_object_set_new(qc, "sparsity_config", spc);
		else
			json_object_set_new(cfg, "sparsity_config", spc);
	}
	if (qc)
		json_object_set_new(cfg, "quantization_config", qc);
	rc = write_hf(x, cfg);
out:
	json_decref(cfg);
	json_decref(unq);
	json_decref(ignore);
	json_decref(sp.dense);
	return rc;
}

/* ---- GPTQ and AWQ ---- */

/* Parameters shared by every packed weight of a gptq/awq export. */
struct packq {
	int gptq;            /* 1: GPTQ v1, 0: AWQ GEMM */
	int n;               /* packed weights so far */
	int bits;
	int64_t group;       /* 0: per channel */
	int all_sym, any_gidx;
	int64_t rounded;     /* per-channel scales changed by fp16 rounding */
	const json_t *first; /* the first packed weight's record (GPTQ settings) */
	json_t *dynamic;     /* GPTQ: per-module overrides of (bits, group_size) */
};

static const char *module_regex(struct ex *x, const char *mod, char sign);

/*
 * Pack int weight q as GPTQ or AWQ tensors "<mod>.qweight", ".qzeros",
 * ".scales" (and GPTQ ".g_idx").
 */
static int pack_weight(struct ex *x, struct packq *pk, const struct mcb_qtensor *q,
		       const char *mod)
{
	const int64_t rows = q->rows, cols = q->cols, ng = q->ngroups;
	const int half = 1 << (q->bits - 1);
	const char *what = pk->gptq ? "GPTQ" : "AWQ";
	struct mcb_errctx *e = x->sc->e;
	size_t n = (size_t)(rows * cols), nz = (size_t)(rows * ng), qw, qz;
	uint8_t *codes, *zeros;
	uint16_t *sc, *sct;
	int32_t *qweight, *qzeros, *gidx;
	int64_t r, g, c;
	size_t i;
	int rc;

	if (pk->gptq ? (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)
		     : (q->bits != 4 || !q->group_size))
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s': %d-bit int quantization with group size "
				"%" PRId64 " cannot be exported as %s (%s)", q->name, q->bits,
				q->group_size, what,
				pk->gptq ? "2, 3, 4 or 8 bits" : "4 bits in groups");
	if (!pk->gptq && pk->n && (q->bits != pk->bits || q->group_size != pk->group))
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s' is quantized to %d bits in groups of %"
				PRId64 ", another weight to %d bits in groups of %" PRId64 ": an AWQ "
				"checkpoint has one bit width and group size", q->name, q->bits,
				q->group_size, pk->bits, pk->group);
	if (pk->gptq && (q->bits != pk->bits || q->group_size != pk->group))
		/* GPTQModel's per-module override, which vLLM's GPTQ config reads:
		 * "+:<regex>": {"bits", "group_size"} */
		json_object_set_new(pk->dynamic, module_regex(x, mod, '+'),
				    json_pack("{s:i, s:I}", "bits", q->bits, "group_size",
					      (json_int_t)(q->group_size ? q->group_size : -1)));
	if (!pk->gptq && (q->g_idx || cols % q->group_size))
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s': AWQ needs groups of %" PRId64 " that "
				"divide the %" PRId64 " columns in order (no act-order g_idx)",
				q->name, q->group_size, cols);
	if (pk->gptq ? ((cols * q->bits) % 32 || (rows * q->bits) % 32) : rows % 8)
		return mcb_errf(e, MCB_EUNSUP, "tensor '%s' (%" PRId64 " x %" PRId64 ") does not pack "
				"into 32-bit words as %s (%s)", q->name, rows, cols, what,
				pk->gptq ? "rows and columns times bits must be multiples of 32"
					 : "rows must be a multiple of 8");
	if (!pk->n++ && !pk->gptq) {
		pk->bits = q->bits;
		pk->group = q->group_size;
	}
	pk->all_sym &= q->symmetric;
	pk->any_gidx |= q->g_idx != NULL;
	/* unsigned codes, zeros and fp16 scales in IR row order, then HF's */
	if (!(codes = ex_alloc(x, n, 1, q->name)) || !(zeros = ex_alloc(x, nz, 1, q->name)) ||
	    !(sc = ex_alloc(x, nz, 2, q->name)) || !(sct = ex_alloc(x, nz, 2, q->name)))
		return e->code;
	for (i = 0; i < n; i++)
		codes[i] = q->symmetric ? (uint8_t)(((const int8_t *)q->codes->data)[i] + half)
					: ((const uint8_t *)q->codes->data)[i];
	for (i = 0; i < nz; i++) {
		zeros[i] = q->symmetric ? (uint8_t)half : ((const uint8_t *)q->zero->data)[i];
		if (pk->gptq && zeros[i] == 0)
			return mcb_errf(e, MCB_EUNSUP, "tensor '%s': zero point 0 at row %" PRId64
					", group %" PRId64 ": GPTQ v1 checkpoints store zero - 1 and "
					"cannot hold it (quantize symmetrically, or export awq)",
					q->name, (int64_t)i / ng, (int64_t)i % ng);
		if (scale_h(q, (int64_t)i, &sc[i])) {
			if (q->group_size)
				return mcb_errf(e, MCB_EUNSUP, "tensor '%s': group scale %" PRId64
						" is not an fp16 value (%s stores fp16 scales)",
						q->name, (int64_t)i, what);
			pk->rounded++;
		}
		if ((sc[i] & 0x7c00) == 0x7c00)
			return mcb_errf(e, MCB_ERANGE, "tensor '%s': scale %" PRId64 " is beyond fp16",
					q->name, (int64_t)i);
	}
	if ((rc = to_hf_rows(x, q->name, codes, rows, cols, 1)) ||
	    (rc = to_hf_rows(x, q->name, zeros, rows, ng, 1)) ||
	    (rc = to_hf_rows(x, q->name, sc, rows, ng, 2)))
		return rc;
	for (r = 0; r < rows; r++) /* scales [ngroups, out] */
		for (g = 0; g < ng; g++)
			sct[g * rows + r] = sc[r * ng + g];
	add_out(x, mcb_arena_printf(x->sc->scratch, "%s.scales", mod), MCB_DT_F16, 2, ng, rows,
		sct, nz * 2);
	if (pk->gptq) {
		qw = (size_t)(cols * q->bits / 32) * (size_t)rows;
		qz = (size_t)ng * (size_t)(rows * q->bits / 32);
		if (!(qweight = ex_alloc(x, qw, 4, q->name)) || !(qzeros = ex_alloc(x, qz, 4, q->name)) ||
		    !(gidx = ex_alloc(x, (size_t)cols, 4, q->name)))
			return e->code;
		mcb_pack_gptq(codes, rows, cols, q->bits, qweight);
		mcb_pack_gptq_zeros(zeros, rows, ng, q->bits, qzeros);
		for (c = 0; c < cols; c++)
			gidx[c] = q->g_idx ? ((const int32_t *)q->g_idx->data)[c]
					   : (int32_t)(q->group_size ? c / q->group_size : 0);
		add_out(x, mcb_arena_printf(x->sc->scratch, "%s.qweight", mod), MCB_DT_I32, 2,
			cols * q->bits / 32, rows, qweight, qw * 4);
		add_out(x, mcb_arena_printf(x->sc->scratch, "%s.qzeros", mod), MCB_DT_I32, 2, ng,
			rows * q->bits / 32, qzeros, qz * 4);
		add_out(x, mcb_arena_printf(x->sc->scratch, "%s.g_idx", mod), MCB_DT_I32, 1, cols, 0,
			gidx, (size_t)cols * 4);
	} else {
		qw = (size_t)cols * (size_t)(rows / 8);
		qz = (size_t)ng * (size_t)(rows / 8);
		if (!(qweight = ex_alloc(x, qw, 4, q->name)) || !(qzeros = ex_alloc(x, qz, 4, q->name)))
			return e->code;
		mcb_pack_awq(codes, rows, cols, qweight);
		mcb_pack_awq_zeros(zeros, rows, ng, qzeros);
		add_out(x, mcb_arena_printf(x->sc->scratch, "%s.qweight", mod), MCB_DT_I32, 2, cols,
			rows / 8, qweight, qw * 4);
		add_out(x, mcb_arena_printf(x->sc->scratch, "%s.qzeros", mod), MCB_DT_I32, 2, ng,
			rows / 8, qzeros, qz * 4);
	}
	return 0;
}

/* "-:^model\.layers\.0\.mlp\.down_proj$": GPTQModel's dynamic keys are
 * regexes, "+:" overriding the module's parameters, "-:" leaving it out. */
static const char *module_regex(struct ex *x, const char *mod, char sign)
{
	struct mcb_buf b = MCB_BUF_INIT;
	const char *p, *out;

	mcb_buf_printf(&b, "%c:^", sign);
	for (p = mod; *p; p++)
		mcb_buf_printf(&b, *p == '.' ? "\\." : "%c", *p);
	mcb_buf_printf(&b, "$");
	out = mcb_arena_strdup(x->sc->scratch, mcb_buf_str(&b));
	mcb_buf_release(&b);
	return out;
}

/* A GPTQ checkpoint's own bits and group size: those of most int weights
 * (ties: the first met); the others become "dynamic" overrides. */
static void majority(struct ex *x, struct packq *pk)
{
	const struct mcb_model *m = x->m;
	int64_t best = 0;
	size_t i, j;

	for (i = 0; i < m->ntensors; i++) {
		struct mcb_qtensor a, b;
		struct mcb_errctx e;
		int64_t n = 0;

		if (mcb_qtensor_get(m, m->tensors[i].name, &a, &e) || a.format != MCB_QF_INT)
			continue;
		for (j = 0; j < m->ntensors; j++)
			n += !mcb_qtensor_get(m, m->tensors[j].name, &b, &e) &&
			     b.format == MCB_QF_INT && b.bits == a.bits && b.group_size == a.group_size;
		if (n > best) {
			best = n;
			pk->bits = a.bits;
			pk->group = a.group_size;
		}
	}
}

static int export_packed(struct ex *x, int gptq)
{
	const struct mcb_model *m = x->m;
	struct mcb_stepctx *sc = x->sc;
	struct packq pk;
	json_t *cfg = NULL, *qc = NULL, *skip = json_array(), *dyn = json_object();
	struct mcb_buf text = MCB_BUF_INIT;
	size_t i;
	int rc = 0;

	memset(&pk, 0, sizeof(pk));
	pk.gptq = gptq;
	pk.all_sym = 1;
	pk.dynamic = dyn;
	if (gptq)
		majority(x, &pk);
	for (i = 0; i < m->ntensors && !rc; i++) {
		const struct mcb_tensor *t = &m->tensors[i];
		const char *mod;
		struct mcb_qtensor q;
		struct mcb_tensor dense; /* a lowrank weight's product */

		if (is_side(m, t->name))
			continue;
		if (!(mod = hf_module(x, t->name))) {
			rc = sc->e->code;
			break;
		}
		if (t->ndim != 2) {
			rc = add_hf(x, t, mcb_arena_printf(sc->scratch, "%s.weight", mod), t->name,
				    t->ndim, t->shape[0], t->shape[1]);
			continue;
		}
		if ((rc = get_q(x, t->name, &q)))
			break;
		if (q.format == MCB_QF_INT) {
			if (!pk.first)
				pk.first = quant_record(m, t->name);
			rc = pack_weight(x, &pk, &q, mod);
			continue;
		}
		if (q.format == MCB_QF_LOWRANK) {
			if ((rc = lowrank_dense(x, &q, &dense)))
				break;
			t = &dense;
		}
		if (q.format != MCB_QF_FLOAT && q.format != MCB_QF_LOWRANK) {
			rc = mcb_errf(sc->e, MCB_EUNSUP, "tensor '%s' is quantized as %s, which a %s "
				      "checkpoint cannot hold (int records only)", t->name,
				      q.format == MCB_QF_FP8 ? "fp8" : "ggml blocks",
				      gptq ? "GPTQ" : "AWQ");
			break;
		}
		if (is_linear(t->name) && strcmp(t->name, "output.weight")) {
			json_array_append_new(skip, json_string(mod));
			json_object_set_new(dyn, module_regex(x, mod, '-'), json_object());
		}
		rc = add_hf(x, t, mcb_arena_printf(sc->scratch, "%s.weight", mod), t->name, 2,
			    t->shape[0], t->shape[1]);
	}
	if (!rc && !pk.n)
		rc = mcb_errf(sc->e, MCB_EUNSUP, "the model has no int-quantized weight to export as %s",
			      gptq ? "GPTQ" : "AWQ");
	if (rc)
		goto out;
	if (pk.rounded)
		mcb_step_log(sc, "%lld per-channel scales were rounded to fp16 (GPTQ stores fp16 "
			     "scales): those rows differ from the internal form by that rounding",
			     (long long)pk.rounded);
	if (!gptq && pk.all_sym)
		mcb_step_log(sc, "symmetric 4-bit weights written as AWQ with zero point 8 (exact)");
	cfg = mcb_hf_config(m);
	json_object_set_new(cfg, "torch_dtype", json_string("float16"));
	if (gptq) {
		const json_t *rec = pk.first;
		json_t *v = json_object_get(rec, "damp");

		qc = json_pack("{s:s, s:i, s:I, s:b, s:b, s:b, s:b, s:f, s:s}", "quant_method", "gptq",
			       "bits", pk.bits, "group_size",
			       (json_int_t)(pk.group ? pk.group : -1), "desc_act", pk.any_gidx, "sym",
			       pk.all_sym, "static_groups", mcb_param_bool(rec, "static_groups", 0),
			       /* GPTQ's within-block order (q/k/v, then o on their
				* quantized outputs, ...) is not what mcbuild does:
				* every weight of a block sees the block's calibration
				* inputs */
			       "true_sequential", 0,
			       "damp_percent", json_is_number(v) ? json_number_value(v) : 0.01,
			       "checkpoint_format", "gptq");
		if (json_object_size(dyn))
			json_object_set(qc, "dynamic", dyn);
		json_object_set_new(qc, "model_file_base_name", json_string("model"));
		mcb_json_pretty(qc, &text);
		json_object_del(qc, "model_file_base_name");
		rc = mcb_os_write_atomic(mcb_step_outpath(sc, "quantize_config.json"), text.data,
					 text.len, 0644, sc->e);
		if (rc)
			goto out;
	} else {
		qc = json_pack("{s:s, s:i, s:I, s:b, s:s, s:O}", "quant_method", "awq", "bits", 4,
			       "group_size", (json_int_t)pk.group, "zero_point", 1, "version", "gemm",
			       "modules_to_not_convert", skip);
	}
	json_object_set_new(cfg, "quantization_config", qc);
	rc = write_hf(x, cfg);
out:
	json_decref(cfg);
	json_decref(skip);
	json_decref(dyn);
	mcb_buf_release(&text);
	return rc;
}

static int run_export(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const char *format = mcb_param_str(sc->params, "format", "");
	struct mcb_model m;
	struct ex x;
	size_t i;
	int rc;

	if (!in)
		return mcb_errf(sc->e, MCB_EINTERNAL, "export step has no model input");
	memset(&x, 0, sizeof(x));
	x.sc = sc;
	x.m = &m;
	mcb_model_init(&m);
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (!rc) {
		if (!strcmp(format, "gguf"))
			rc = export_gguf(&x);
		else if (!strcmp(format, "safetensors"))
			rc = export_safetensors(&x);
		else if (!strcmp(format, "gptq"))
			rc = export_packed(&x, 1);
		else if (!strcmp(format, "awq"))
			rc = export_packed(&x, 0);
		else
			rc = mcb_errf(sc->e, MCB_EUNSUP, "unknown export format '%s'", format);
	}
	if (!rc && x.nlowrank)
		mcb_step_log(sc,
			     "%d low-rank weight%s written as dense F32 products (%s has no factored "
			     "linear layer)",
			     x.nlowrank, x.nlowrank == 1 ? "" : "s",
			     !strcmp(format, "gguf") ? "llama.cpp" : "vLLM's Llama");
	for (i = 0; i < x.nowned; i++)
		free(x.owned[i]);
	free(x.owned);
	free(x.outs);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_export = {
	.name = "export",
	.version = 3,
	.run = run_export,
};
