/*
 * engine: the reference inference engine for Llama-architecture decoder LMs
 * (RMSNorm, rotary embeddings with interleaved pairs, grouped-query
 * attention, SwiGLU, tied or separate output weights; n_heads * head_dim may
 * differ from dim after head pruning).
 *
 * It runs the internal form as it is: F32/F16/BF16 weights and every
 * quantized-weight record of include/mcb/qtensor.h (integer codes of 2..8
 * bits, symmetric or with zero points, per channel or per group, with or
 * without g_idx; FP8 E4M3; ggml blocks Q8_0, Q4_0, Q4_1, Q4_K, Q6_K; F16
 * fallbacks).  Prompt batches go through OpenBLAS SGEMM (EXACT mode); a KV
 * cache holds past positions.  Results are bit-identical at any thread
 * count.
 *
 * Numeric modes:
 *   MCB_ENGINE_EXACT  activations in F32; quantized weights dequantized
 *                     exactly (mcb_qtensor_row's values) on the fly.
 *   MCB_ENGINE_GGML   as ggml's CPU backend computes (what llama.cpp runs):
 *                     the activation feeding a ggml-block matmul is itself
 *                     quantized to the weight's dot type (Q8_0 for Q8_0 and
 *                     Q4_0, Q8_1 for Q4_1, Q8_K for Q4_K and Q6_K) and the
 *                     dot products are integer, the activation feeding an
 *                     F16 matmul is rounded to fp16, and every float
 *                     operation (dot products, softmax, SwiGLU, RoPE) runs
 *                     in ggml's order: on stories260K and a synthetic model
 *                     the logits equal llama.cpp's bit for bit (node-llama-
 *                     cpp 3.22.1, AVX-512 build), in one batch and token by
 *                     token (tests/compat section 7).  Integer (GPTQ/AWQ)
 *                     and FP8 weights have no ggml counterpart and run as
 *                     in EXACT mode.  Used to compare with llama.cpp and to
 *                     measure GGUF targets as they run.
 */
#ifndef MCB_ENGINE_H
#define MCB_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/rng.h"

struct mcb_errctx;
struct mcb_model;
struct mcb_engine;

enum mcb_engine_mode { MCB_ENGINE_EXACT, MCB_ENGINE_GGML };

struct mcb_engine_opts {
	int threads;               /* compute threads, >= 1 (results do not depend on it) */
	enum mcb_engine_mode mode;
	int64_t ctx_len;           /* KV cache positions; 0: the model's seq_len */
};

/*
 * Where a linear layer's input is captured (calibration): q, k and v share
 * one input, as do gate and up.
 */
enum mcb_capture_point {
	MCB_CAPTURE_ATTN_IN,   /* input of attn_q/attn_k/attn_v (after attn_norm) */
	MCB_CAPTURE_ATTN_OUT,  /* input of attn_output (attention result, n_heads *
	                          head_dim columns: dim unless heads were pruned) */
	MCB_CAPTURE_FFN_IN,    /* input of ffn_gate/ffn_up (after ffn_norm) */
	MCB_CAPTURE_FFN_DOWN,  /* input of ffn_down (silu(gate) * up) */
	MCB_CAPTURE_OUTPUT,    /* input of the classifier (after output_norm) */
	MCB_CAPTURE_COUNT
};

/* Called once per layer and point for every batch: x (rows, cols), row-major,
 * valid only during the call.  layer is -1 for MCB_CAPTURE_OUTPUT. */
typedef void (*mcb_capture_fn)(void *ctx, int layer, enum mcb_capture_point point,
			       const float *x, int64_t rows, int64_t cols);

/*
 * Prepare m for inference.  The engine borrows m's tensors (m must outlive
 * it) and allocates its activations and KV cache with checked allocation
 * (MCB_ENOMEM with the byte count).  Fails with a message for models it
 * cannot run (unknown architecture, unsupported tensor type or rope scaling).
 * Batched evals run OpenBLAS SGEMM on the engine's own threads, one call
 * per tile of weight rows: mcb_engine_new sets OpenBLAS's budget to one
 * thread (mcb_blas_set_threads), and callers should leave it there while
 * the engine runs (a larger budget oversubscribes the cores).
 */
int mcb_engine_new(const struct mcb_model *m, const struct mcb_engine_opts *o,
		   struct mcb_engine **out, struct mcb_errctx *e);
void mcb_engine_free(struct mcb_engine *en);

/*
 * Load a model file into an initialised, empty m for the engine, whatever
 * its format (mcb_model_detect): a llama2.c checkpoint, the internal form,
 * or GGUF (Q8_0 tensors included: mcb_gguf_read_model imports them as the
 * internal form's Q8_0; Q4_0, Q4_1, Q4_K and Q6_K as ggml-block records).  On failure m is left empty and the message names
 * the file.
 */
int mcb_engine_load_model(const char *path, struct mcb_model *m, struct mcb_errctx *e);

/* Forget the KV cache: the next eval starts at position 0. */
void mcb_engine_reset(struct mcb_engine *en);
/* Positions held in the KV cache. */
int64_t mcb_engine_pos(const struct mcb_engine *en);
int64_t mcb_engine_vocab(const struct mcb_engine *en);

/*
 * Run n tokens from the current position (one batch: prompt processing when
 * n > 1).  logits (n, vocab) receives the logits of every position when not
 * NULL; last (vocab,) those of the last position when not NULL.  Fails with
 * MCB_ERANGE when the KV cache would overflow or a token id is out of range.
 */
int mcb_engine_eval(struct mcb_engine *en, const int32_t *tokens, int64_t n, float *logits,
		    float *last, struct mcb_errctx *e);

/* Set (or clear, with fn NULL) the capture callback. */
void mcb_engine_set_capture(struct mcb_engine *en, mcb_capture_fn fn, void *ctx);

/* Bytes of weights the engine reads per token (for reports), and of one
 * position of the KV cache. */
uint64_t mcb_engine_weight_bytes(const struct mcb_engine *en);
uint64_t mcb_engine_kv_bytes_per_pos(const struct mcb_engine *en);

/*
 * Sampling, deterministic for a seed: draws the next token from
 * softmax(logits / temperature) (temperature 0: argmax, ties to the lowest
 * id); top_k 0 means no cut.
 */
struct mcb_sampler {
	struct mcb_rng rng;
	float temperature;
	int top_k;
};

void mcb_sampler_init(struct mcb_sampler *sp, uint64_t seed, float temperature, int top_k);
int32_t mcb_sampler_next(struct mcb_sampler *sp, const float *logits, int64_t vocab);

#endif
