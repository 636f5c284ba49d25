/*
 * hf: the Hugging Face Llama layout (LlamaForCausalLM): tensor names,
 * config.json, and the Q/K row permutation between HF's rotate-half RoPE and
 * the interleaved pairing mcbuild's IR uses (llama.cpp convert_hf_to_gguf:
 * reshape(nh, 2, hd/2, in).swapaxes(1, 2)).
 *
 * mcb_hf_read (declared in model.h) also reads the quantized checkpoints the
 * export step writes (GPTQ v1, AWQ GEMM, compressed-tensors fp8 and W8A8,
 * mcbuild-int8; pruning masks), detected from config.json's
 * quantization_config, back into the internal form's records exactly
 * (runtime/hf.c); config.json's head_dim gives the head size when present.
 */
#ifndef MCB_HF_H
#define MCB_HF_H

#include <stddef.h>
#include <stdint.h>

struct json_t;
struct mcb_model;
struct mcb_errctx;

/* "model.layers.3.self_attn.q_proj.weight" <-> "blk.3.attn_q.weight".
 * Return 0 and write a NUL-terminated name into out, or -1 if unknown or too long. */
int mcb_hf_to_gguf_name(const char *hf, char *out, size_t n);
int mcb_gguf_to_hf_name(const char *gguf, char *out, size_t n);

/*
 * Permute the rows of a [n_head*head_dim, cols] matrix in place, element size
 * esize bytes.  to_interleaved=1: HF -> IR; 0: IR -> HF.  Per-row data (such
 * as per-channel scales, cols=1) is permuted the same way.  Returns 0, or
 * MCB_EINVAL (head_dim not even and positive), MCB_ERANGE (size overflow),
 * MCB_ENOMEM (it needs one head's worth of scratch memory).
 */
int mcb_hf_permute_rows(void *data, int64_t n_head, int64_t head_dim, int64_t cols,
			size_t esize, int to_interleaved, struct mcb_errctx *e);

/* A new config.json object (LlamaForCausalLM) for m's config; the caller
 * owns the reference.  torch_dtype follows token_embd's dtype. */
struct json_t *mcb_hf_config(const struct mcb_model *m);

#endif
