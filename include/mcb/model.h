/*
 * model: the in-memory model and mcbuild's internal form (IR).
 *
 * Between steps a model travels as a safetensors file whose __metadata__
 * carries mcbuild's records (format specified in runtime/model.c):
 *   "mcbuild.ir"        "1"
 *   "mcbuild.arch"      canonical JSON of the architecture config
 *   "mcbuild.meta"      canonical JSON of the extra metadata object (tokenizer,
 *                       passthrough GGUF keys, quantization records, source)
 * Tensor names follow llama.cpp's GGUF names (token_embd.weight,
 * blk.N.attn_q.weight, ...), and Q/K rows use the interleaved RoPE pairing of
 * llama.cpp and llama2.c (pairs 2i, 2i+1), not Hugging Face's rotate-half.
 */
#ifndef MCB_MODEL_H
#define MCB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/arena.h"
#include "mcb/os.h"
#include "mcb/tensor.h"

struct json_t;
struct mcb_errctx;

/* Llama-architecture hyper-parameters (the only family of issue 2). */
struct mcb_llama_config {
	int64_t dim;          /* embedding width */
	int64_t hidden_dim;   /* FFN width */
	int64_t n_layers;
	int64_t n_heads;
	int64_t n_kv_heads;   /* divides n_heads */
	int64_t vocab_size;
	int64_t seq_len;      /* context length */
	int64_t head_dim;     /* dim / n_heads (rope dimension count) */
	double norm_eps;      /* RMSNorm epsilon */
	double rope_theta;
	int tied_embeddings;  /* 1: no output.weight, the classifier is token_embd */
};

/* Caps every reader applies to a Llama config (hostile input). */
#define MCB_LLAMA_MAX_DIM 65536
#define MCB_LLAMA_MAX_HIDDEN (1 << 20)
#define MCB_LLAMA_MAX_LAYERS 1024
#define MCB_LLAMA_MAX_VOCAB (1 << 22)
#define MCB_LLAMA_MAX_SEQ (1 << 24)

/*
 * Check c's ranges and consistency: every count positive and within the caps
 * above, n_kv_heads divides n_heads, head_dim even (RoPE pairs), at most dim,
 * with n_heads * head_dim at most 4 dim (it is dim unless heads were pruned), norm_eps and rope_theta finite and
 * positive, tied_embeddings 0 or 1.  what names the source in messages.
 * Returns 0 or MCB_EFORMAT.
 */
int mcb_model_check_config(const struct mcb_llama_config *c, const char *what,
			   struct mcb_errctx *e);

struct mcb_model {
	struct mcb_arena arena;        /* tensor names and small strings */
	char arch[32];                 /* "llama" */
	struct mcb_llama_config cfg;
	struct mcb_tensor *tensors;    /* ntensors entries, in insertion order */
	size_t ntensors, cap;
	struct json_t *meta;           /* owned JSON object: tokenizer, "gguf" passthrough
	                                  keys, "quant" records; never NULL after init */
	struct mcb_map map;            /* file backing borrowed tensors (may be empty) */
};

void mcb_model_init(struct mcb_model *m);
/* Free owned tensor data, the arena, meta and the map. */
void mcb_model_release(struct mcb_model *m);

/* The tensor called name, or NULL. */
struct mcb_tensor *mcb_model_find(const struct mcb_model *m, const char *name);

/*
 * Append a tensor.  The name is copied.  If owned is 1 the model frees data.
 * Returns the new entry (valid until the next add).
 */
struct mcb_tensor *mcb_model_add(struct mcb_model *m, const char *name, enum mcb_dtype dtype,
				 int ndim, const int64_t *shape, void *data, size_t nbytes, int owned);

/*
 * Append a tensor whose data lives in a file map (m->map or a map the caller
 * hands to m afterwards).  The data is borrowed when it is aligned to its
 * element size, else copied into an owned, aligned buffer, so that every
 * tensor of a model can be read through a typed pointer.  Returns 0 and sets
 * *out (when out is not NULL), or MCB_ENOMEM with a message naming the tensor.
 */
int mcb_model_add_mapped(struct mcb_model *m, const char *name, enum mcb_dtype dtype, int ndim,
			 const int64_t *shape, const void *data, size_t nbytes,
			 struct mcb_tensor **out, struct mcb_errctx *e);

/*
 * Allocate a zeroed, owned tensor of the given shape, with checked size
 * arithmetic.  Returns 0 and sets *out, or MCB_ENOMEM/MCB_ERANGE with a
 * message naming the tensor and the size.
 */
int mcb_model_new_tensor(struct mcb_model *m, const char *name, enum mcb_dtype dtype, int ndim,
			 const int64_t *shape, struct mcb_tensor **out, struct mcb_errctx *e);

/* Remove the tensor called name (freeing owned data).  Returns 0 or MCB_ENOENT. */
int mcb_model_remove(struct mcb_model *m, const char *name);

/*
 * Check that m is a Llama model: arch "llama", a valid config
 * (mcb_model_check_config), and every tensor the config implies present with
 * its shape (q: n_heads * head_dim rows) and a dtype its record allows
 * (qtensor.h): F32, F16 or BF16 without a record (or with a fallback or
 * "float" record); I8 or U8 codes for "int"; F8_E4M3 for "fp8"; U8 [rows,
 * row bytes] for "ggml"; F32 [rows, rank] (the factor A, "cols" the
 * config's) for "lowrank".  output.weight must be present exactly when the
 * embeddings are not tied.  Side tensors (scales, masks) are checked where
 * a weight is read (mcb_qtensor_get).  what names the source in messages.
 * Returns 0 or MCB_EFORMAT.
 */
int mcb_model_check_llama(const struct mcb_model *m, const char *what, struct mcb_errctx *e);

/* Source formats mcbuild can import. */
enum mcb_model_format {
	MCB_FMT_UNKNOWN,
	MCB_FMT_LLAMA2C,
	MCB_FMT_GGUF,
	MCB_FMT_SAFETENSORS
};

const char *mcb_model_format_name(enum mcb_model_format f);
/* From a recipe name ("llama2c", "gguf", "safetensors"), or MCB_FMT_UNKNOWN. */
enum mcb_model_format mcb_model_format_parse(const char *name);
/* Detect by magic bytes (GGUF magic; safetensors header shape; else llama2.c
 * when the header's implied size matches the file size).  MCB_FMT_UNKNOWN and
 * a message when nothing fits. */
enum mcb_model_format mcb_model_detect(const char *path, struct mcb_errctx *e);

/* Importers.  Each reads a hostile file and fills an initialised, empty m;
 * on failure m is left empty (released and initialised again) and the message
 * names the file. */
int mcb_llama2c_read(const char *path, struct mcb_model *m, struct mcb_errctx *e);
int mcb_gguf_read_model(const char *path, struct mcb_model *m, struct mcb_errctx *e);
/* Hugging Face: model.safetensors + config.json (LlamaForCausalLM); renames to
 * GGUF names and converts Q/K from rotate-half to interleaved pairing. */
int mcb_hf_read(const char *st_path, const char *config_path, struct mcb_model *m,
		struct mcb_errctx *e);

/* The BOS token id (the GGUF key tokenizer.ggml.bos_token_id kept in
 * meta["gguf"]), else 1 as in llama. */
int32_t mcb_model_bos(const struct mcb_model *m);

/* Only the architecture config (m->arch, m->cfg) of a GGUF file or of a
 * Hugging Face config.json: no tensor is read. */
int mcb_gguf_read_config(const char *path, struct mcb_model *m, struct mcb_errctx *e);
int mcb_hf_read_config(const char *config_path, struct mcb_model *m, struct mcb_errctx *e);

/*
 * The config of the model at path without importing it (format as in a
 * recipe: "auto", "llama2c", "gguf", "safetensors"; config: its config.json
 * for safetensors).  For planning steps per layer.  Errors as the importers'.
 */
int mcb_model_probe(const char *path, const char *format, const char *config,
		    struct mcb_llama_config *cfg, struct mcb_errctx *e);

/* Internal form (specified in runtime/model.c).  save_ir writes m to path
 * (not atomically); load_ir validates a hostile file like the importers. */
int mcb_model_save_ir(const struct mcb_model *m, const char *path, struct mcb_errctx *e);
int mcb_model_load_ir(const char *path, struct mcb_model *m, struct mcb_errctx *e);
/* Either a whole model or a part (meta["part"] set, runtime/part.c: one
 * group of tensors whose completeness is not checked, only its config). */
int mcb_model_load_ir_or_part(const char *path, struct mcb_model *m, struct mcb_errctx *e);
/* 1 when m is a part rather than a whole model. */
int mcb_model_is_part(const struct mcb_model *m);

#endif
