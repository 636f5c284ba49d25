/*
 * ggml_export: a llama-architecture model to GGUF in one of llama.cpp's file
 * types, each tensor's type chosen as llama-quantize chooses it, quantized
 * with mcbuild's ggml quantizers (runtime/quant_ggml.c), written with
 * mcbuild's GGUF writer.  tests/compat/run.sh section 7 drives it; the
 * tensors are then checked against tests/compat/gguf_check.py's numpy
 * quantizers (qcheck) and evaluated by llama.cpp and by mcbuild's engine.
 *
 *   ggml_export [--pure] [--only S] MODEL OUT.gguf TYPE
 *
 * MODEL: a llama2.c checkpoint (stories260K.bin), or synth:SEED[:VOCAB], a
 *   random Llama model whose rows divide into K-quant blocks (dim 256,
 *   hidden 512, 2 layers, 8 heads, 4 KV heads, vocab VOCAB (default 515: a
 *   classifier whose rows are not a multiple of 8, which ggml does not
 *   repack; 512: one it repacks), context 512, tied embeddings), weights
 *   from a xorshift generator seeded with SEED.
 * TYPE: F32, Q8_0, Q4_0, Q4_1, Q4_K_M or Q6_K: llama-quantize's file types
 *   (LLAMA_FTYPE_MOSTLY_*), with its per-tensor choices (llama.cpp
 *   src/llama-quant.cpp llama_tensor_get_type_impl, tensor_type_fallback):
 *   - the classifier (output.weight, or token_embd.weight when the
 *     embeddings are tied): Q8_0 when its rows do not divide into the file
 *     type's blocks, else Q6_K unless the type is Q8_0;
 *   - Q4_K_M: attn_v and ffn_down of the layers use_more_bits picks
 *     (i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2) are Q6_K;
 *   - then a tensor whose rows do not divide into its type's blocks falls
 *     back: Q4_K -> Q5_0, Q6_K -> Q8_0, and F16 when even that block does
 *     not divide.  llama.cpp defines no fallback for Q4_0, Q4_1 and Q8_0 (it
 *     stops with "no tensor type fallback is defined"); mcbuild stores those
 *     tensors as F16, as its own Q8_0 export does (ORACLE.md: llama-quantize
 *     once did the same).  Q5_0 is not a type mcbuild has: a choice of Q5_0
 *     is an error naming the tensor.
 * --pure: TYPE is one block type (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) used for
 *   every 2-D weight, with the same shape fallback (llama-quantize --pure).
 * --only S: quantize only the 2-D weights whose name contains S, keep the
 *   others F32 (a diagnostic aid: which tensor's numerics differ).
 * 1-D tensors (norms) stay F32.  Keys: general.architecture "llama",
 * general.name, general.file_type, general.quantization_version 2 (when
 * quantized), the llama.* hyper-parameters and a placeholder 512-token (or
 * vocab-size) vocabulary (mcb_gguf_set_placeholder_vocab); tensors in
 * llama2.c order (token_embd, per layer attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up, then output_norm,
 * output), as gguf_check.py llama2c-to-gguf writes them.
 *
 * Prints one line per tensor whose type differs from TYPE (with the reason)
 * and a summary.  Exit status 0; 1 on failure; 2 on bad usage.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/model.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

/* llama.cpp's file types (llama.h LLAMA_FTYPE_MOSTLY_*) */
static const struct {
	const char *name;
	int ftype;
	enum mcb_dtype dt; /* the default block type */
} ftypes[] = {
	{"F32", 0, MCB_DT_F32},	   {"Q4_0", 2, MCB_DT_Q4_0}, {"Q4_1", 3, MCB_DT_Q4_1},
	{"Q8_0", 7, MCB_DT_Q8_0},  {"Q4_K_M", 15, MCB_DT_Q4_K}, {"Q6_K", 18, MCB_DT_Q6_K},
	{"Q4_K", 15, MCB_DT_Q4_K}, /* --pure only */
};

static void usage(void)
{
	fprintf(stderr, "usage: ggml_export [--pure] [--only S] MODEL|synth:SEED OUT.gguf "
			"F32|Q8_0|Q4_0|Q4_1|Q4_K_M|Q6_K (--pure: Q8_0|Q4_0|Q4_1|Q4_K|Q6_K)\n");
	exit(2);
}

static uint64_t rs;

static float urand(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return (float)((double)(rs >> 11) * 0x1.0p-52 - 1.0);
}

static float *new_f32(struct mcb_model *m, const char *name, int ndim, int64_t d0, int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	struct mcb_tensor *t;
	struct mcb_errctx e;

	if (mcb_model_new_tensor(m, name, MCB_DT_F32, ndim, shape, &t, &e)) {
		fprintf(stderr, "ggml_export: %s\n", e.msg);
		exit(1);
	}
	return t->data;
}

/* the synthetic model (header comment) */
static void synth(struct mcb_model *m, uint64_t seed, int64_t vocab)
{
	static const char *const lins[7] = {"attn_q", "attn_k", "attn_v", "attn_output",
					    "ffn_gate", "ffn_up", "ffn_down"};
	struct mcb_llama_config *c = &m->cfg;
	int64_t l, i, kv;
	char name[96];
	float *w;
	int j;

	strcpy(m->arch, "llama");
	*c = (struct mcb_llama_config){.dim = 256, .hidden_dim = 512, .n_layers = 2, .n_heads = 8,
				       .n_kv_heads = 4, .vocab_size = vocab, .seq_len = 512,
				       .head_dim = 32, .norm_eps = 1e-5, .rope_theta = 10000.0,
				       .tied_embeddings = 1};
	kv = c->n_kv_heads * c->head_dim;
	rs = seed * 0x9e3779b97f4a7c15ull + 1;
	w = new_f32(m, "token_embd.weight", 2, c->vocab_size, c->dim);
	for (i = 0; i < c->vocab_size * c->dim; i++)
		w[i] = urand();
	for (l = 0; l < c->n_layers; l++) {
		const int64_t shp[7][2] = {{c->dim, c->dim}, {kv, c->dim}, {kv, c->dim},
					   {c->dim, c->dim}, {c->hidden_dim, c->dim},
					   {c->hidden_dim, c->dim}, {c->dim, c->hidden_dim}};

		snprintf(name, sizeof(name), "blk.%" PRId64 ".attn_norm.weight", l);
		w = new_f32(m, name, 1, c->dim, 0);
		for (i = 0; i < c->dim; i++)
			w[i] = 1.0f + 0.2f * urand();
		snprintf(name, sizeof(name), "blk.%" PRId64 ".ffn_norm.weight", l);
		w = new_f32(m, name, 1, c->dim, 0);
		for (i = 0; i < c->dim; i++)
			w[i] = 1.0f + 0.2f * urand();
		for (j = 0; j < 7; j++) {
			float a = 1.5f / sqrtf((float)shp[j][1]);

			snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", l, lins[j]);
			w = new_f32(m, name, 2, shp[j][0], shp[j][1]);
			for (i = 0; i < shp[j][0] * shp[j][1]; i++)
				w[i] = a * urand();
		}
	}
	w = new_f32(m, "output_norm.weight", 1, c->dim, 0);
	for (i = 0; i < c->dim; i++)
		w[i] = 1.0f + 0.2f * urand();
}

static int use_more_bits(int64_t i, int64_t n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int has(const char *name, const char *part)
{
	return strstr(name, part) != NULL;
}

/*
 * The type llama-quantize gives tensor name (ncols values per row, in layer
 * `layer` of n_layers) for default type dt of file type ftype (header
 * comment); why receives the reason when it differs from dt.  Returns -1
 * when llama.cpp would choose Q5_0.
 */
static int pick(const char *name, int64_t ncols, int64_t layer, int64_t n_layers, int tied,
		int ftype, int pure, enum mcb_dtype dt, char *why, size_t whylen)
{
	enum mcb_dtype t = dt;
	int blk;

	why[0] = 0;
	if (!pure) {
		if (!strcmp(name, "output.weight") || (tied && !strcmp(name, "token_embd.weight"))) {
			if (ncols % mcb_dtype_info(t)->block)
				t = MCB_DT_Q8_0;
			else if (t != MCB_DT_Q8_0)
				t = MCB_DT_Q6_K;
			snprintf(why, whylen, "the classifier");
		} else if (ftype == 15 && (has(name, "attn_v.weight") || has(name, "ffn_down")) &&
			   use_more_bits(layer, n_layers)) {
			t = MCB_DT_Q6_K;
			snprintf(why, whylen, "Q4_K_M: more bits for layer %" PRId64, layer);
		}
	}
	blk = (int)mcb_dtype_info(t)->block;
	if (ncols % blk) {
		enum mcb_dtype from = t;
		size_t k = strlen(why);

		if (t == MCB_DT_Q4_K) {
			if (ncols % 32 == 0) {
				snprintf(why + k, whylen - k, "%s%s rows of %" PRId64
					 " do not divide into blocks of 256: llama.cpp falls back to "
					 "Q5_0, which mcbuild does not have", k ? "; " : "",
					 mcb_dtype_info(from)->name, ncols);
				return -1;
			}
			t = MCB_DT_F16;
		} else if (t == MCB_DT_Q6_K) {
			t = ncols % 32 ? MCB_DT_F16 : MCB_DT_Q8_0;
		} else {
			t = MCB_DT_F16; /* llama.cpp: no fallback defined (see header) */
		}
		snprintf(why + k, whylen - k, "%srow length %" PRId64 " is not a multiple of %s's "
			 "block %d: %s", k ? "; " : "", ncols, mcb_dtype_info(from)->name, blk,
			 mcb_dtype_info(t)->name);
	}
	return (int)t;
}

int main(int argc, char **argv)
{
	const char *src, *out, *tname, *only = NULL;
	struct mcb_gguf_writer *w;
	struct mcb_model m;
	struct mcb_errctx e;
	struct mcb_llama_config *c;
	void **bufs = NULL;
	int nbufs = 0, a = 1, pure = 0, ft = -1, counts[MCB_DT_COUNT] = {0}, rc = 1, tt;
	enum mcb_dtype dt = MCB_DT_F32;
	char name[96], why[256];
	int64_t l, s;
	size_t k;

	for (;;) {
		if (argc > a && !strcmp(argv[a], "--pure"))
			pure = 1, a++;
		else if (argc > a + 1 && !strcmp(argv[a], "--only"))
			only = argv[a + 1], a += 2;
		else
			break;
	}
	if (argc - a != 3)
		usage();
	src = argv[a], out = argv[a + 1], tname = argv[a + 2];
	for (k = 0; k < sizeof(ftypes) / sizeof(ftypes[0]); k++)
		if (!strcmp(ftypes[k].name, tname) &&
		    (pure ? strcmp(tname, "Q4_K_M") && strcmp(tname, "F32") : strcmp(tname, "Q4_K")))
			ft = ftypes[k].ftype, dt = ftypes[k].dt;
	if (ft < 0)
		usage();
	mcb_model_init(&m);
	if (!strncmp(src, "synth:", 6)) {
		const char *v = strchr(src + 6, ':');
		long long vocab = v ? atoll(v + 1) : 515;

		if (vocab < 2 || vocab > 100000) {
			fprintf(stderr, "ggml_export: bad vocabulary size in '%s'\n", src);
			return 2;
		}
		synth(&m, strtoull(src + 6, NULL, 10), vocab);
	} else if (mcb_llama2c_read(src, &m, &e)) {
		fprintf(stderr, "ggml_export: %s\n", e.msg);
		return 1;
	}
	c = &m.cfg;
	w = mcb_gguf_writer_new();
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_str(w, "general.name", strncmp(src, "synth:", 6) ? "stories260K" : "synthetic");
	mcb_gguf_set_u32(w, "general.file_type", (uint32_t)ft);
	if (dt != MCB_DT_F32)
		mcb_gguf_set_u32(w, "general.quantization_version", 2);
	mcb_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
	mcb_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
	mcb_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
	mcb_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
	mcb_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
	mcb_gguf_set_f32(w, "llama.rope.freq_base", (float)c->rope_theta);
	mcb_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
	mcb_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
	mcb_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)c->norm_eps);
	if (mcb_gguf_set_placeholder_vocab(w, c->vocab_size, &e))
		goto fail;
	mcb_gguf_sort_keys(w);
	bufs = mcb_xcalloc((size_t)(c->n_layers * 9 + 3), sizeof(*bufs));
	for (s = -1; s <= c->n_layers; s++) {
		static const char *const per[9] = {"attn_norm", "attn_q", "attn_k", "attn_v",
						   "attn_output", "ffn_norm", "ffn_gate", "ffn_down",
						   "ffn_up"};
		int nn = s < 0 ? 1 : s == c->n_layers ? 2 - c->tied_embeddings : 9, i;

		for (i = 0; i < nn; i++) {
			const struct mcb_tensor *t;
			int64_t rows, cols, bad, r;
			uint64_t ne[2], nbytes;
			float *f;
			void *q;

			l = s;
			if (s < 0)
				snprintf(name, sizeof(name), "token_embd.weight");
			else if (s == c->n_layers)
				snprintf(name, sizeof(name), i ? "output.weight" : "output_norm.weight");
			else
				snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", s, per[i]);
			if (!(t = mcb_model_find(&m, name))) {
				mcb_errf(&e, MCB_EFORMAT, "tensor '%s' is missing", name);
				goto fail;
			}
			rows = t->shape[0];
			cols = t->ndim == 2 ? t->shape[1] : 1;
			f = mcb_xmalloc((size_t)(rows * cols) * sizeof(float));
			bufs[nbufs++] = f;
			if (mcb_tensor_to_f32(t, f, &e))
				goto fail;
			if (mcb_check_finite(f, rows * cols, &bad)) {
				mcb_errf(&e, MCB_EFORMAT, "tensor '%s' has a non-finite value", name);
				goto fail;
			}
			tt = MCB_DT_F32;
			why[0] = 0;
			if (t->ndim == 2 && dt != MCB_DT_F32 && (!only || strstr(name, only)))
				tt = pick(name, cols, l, c->n_layers, c->tied_embeddings, ft, pure, dt, why,
					  sizeof(why));
			if (tt < 0) {
				mcb_errf(&e, MCB_EUNSUP, "tensor '%s': %s", name, why);
				goto fail;
			}
			if (why[0])
				printf("%-28s %-5s %s\n", name, mcb_dtype_info((enum mcb_dtype)tt)->name,
				       why);
			counts[tt]++;
			ne[0] = (uint64_t)(t->ndim == 2 ? cols : rows); /* ne[0] is contiguous */
			ne[1] = (uint64_t)rows;
			if (tt == MCB_DT_F32) {
				q = f;
				nbytes = (uint64_t)(rows * cols) * 4;
			} else {
				const struct mcb_dtype_info *di = mcb_dtype_info((enum mcb_dtype)tt);
				const size_t rb = (size_t)cols / di->block * di->block_bytes;

				nbytes = (uint64_t)rows * rb;
				q = mcb_xmalloc(nbytes);
				bufs[nbufs - 1] = q; /* f is freed now; q lives until the write */
				for (r = 0; r < rows; r++) {
					if (tt == MCB_DT_F16) {
						int64_t j;

						for (j = 0; j < cols; j++)
							((uint16_t *)q)[r * cols + j] =
								mcb_f32_to_f16(f[r * cols + j]);
					} else {
						mcb_quantize_row_ggml((enum mcb_dtype)tt, f + r * cols,
								      (uint8_t *)q + r * rb, cols);
					}
				}
				free(f);
			}
			if (mcb_gguf_add_tensor(w, name, (uint32_t)mcb_dtype_info((enum mcb_dtype)tt)->ggml_type,
						(uint32_t)t->ndim, ne, q, nbytes, &e))
				goto fail;
		}
	}
	if (mcb_gguf_write(w, out, &e))
		goto fail;
	printf("wrote %s (%s%s):", out, pure ? "pure " : "", tname);
	for (tt = 0; tt < MCB_DT_COUNT; tt++)
		if (counts[tt])
			printf(" %d %s", counts[tt], mcb_dtype_info((enum mcb_dtype)tt)->name);
	printf("\n");
	rc = 0;
fail:
	if (rc)
		fprintf(stderr, "ggml_export: %s\n", e.msg);
	mcb_gguf_writer_free(w);
	while (nbufs > 0)
		free(bufs[--nbufs]);
	free(bufs);
	mcb_model_release(&m);
	return rc;
}
