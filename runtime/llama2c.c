/*
 * llama2c: reader for llama2.c checkpoints (karpathy/llama2.c run.c, the
 * "legacy" version-0 export).
 *
 * Layout, all little-endian:
 *   7 x i32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *            (vocab_size < 0: the classifier is a separate matrix; its
 *            magnitude is the vocabulary size)
 *   f32 arrays, in this order (L = n_layers, kv = dim * n_kv_heads / n_heads,
 *   hs = dim / n_heads):
 *     token_embedding [vocab, dim]     rms_att [L, dim]
 *     wq [L, dim, dim]                 wk [L, kv, dim]
 *     wv [L, kv, dim]                  wo [L, dim, dim]
 *     rms_ffn [L, dim]                 w1 [L, hidden, dim]
 *     w2 [L, dim, hidden]              w3 [L, hidden, dim]
 *     rms_final [dim]
 *     freq_cis_real [seq_len, hs/2]    freq_cis_imag [seq_len, hs/2]  (unused)
 *     wcls [vocab, dim]                (only when vocab_size < 0)
 *
 * The file must be exactly that long.  Weights are mapped under GGUF names
 * (w1 = ffn_gate, w2 = ffn_down, w3 = ffn_up) and borrowed from the map.  Q and K
 * are NOT permuted: llama2.c already rotates the pairs (2i, 2i+1), which is
 * the IR's (and llama.cpp's) convention.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"

#define HEADER_BYTES 28

/* Element counts of the arrays, computed from a range-checked header. */
struct layout {
	int64_t dim, hidden, layers, heads, kv_heads, vocab, seq;
	int shared;     /* vocab_size > 0: the classifier is token_embd */
	uint64_t kv;    /* kv_heads * head size */
	uint64_t total; /* floats after the header */
};

static int32_t le32(const unsigned char *p)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	int32_t s;

	memcpy(&s, &v, 4);
	return s;
}

/* total += a * b, overflow-checked. */
static int acc(uint64_t *total, uint64_t a, uint64_t b)
{
	uint64_t p;

	return __builtin_mul_overflow(a, b, &p) || __builtin_add_overflow(*total, p, total);
}

static int field(const char *path, const char *name, int64_t v, int64_t max,
		 struct mcb_errctx *e)
{
	if (v < 1 || v > max)
		return mcb_errf(e, MCB_EFORMAT, "'%s': header field %s = %" PRId64
				" is out of range 1..%" PRId64, path, name, v, max);
	return 0;
}

/* Decode and range-check the header; compute the expected float count. */
static int read_header(const char *path, const unsigned char *h, struct layout *l,
		       struct mcb_errctx *e)
{
	uint64_t hs, t = 0, L;
	int32_t vocab;
	int rc;

	l->dim = le32(h);
	l->hidden = le32(h + 4);
	l->layers = le32(h + 8);
	l->heads = le32(h + 12);
	l->kv_heads = le32(h + 16);
	vocab = le32(h + 20);
	l->seq = le32(h + 24);
	l->shared = vocab > 0;
	l->vocab = vocab < 0 ? -(int64_t)vocab : vocab;
	if ((rc = field(path, "dim", l->dim, MCB_LLAMA_MAX_DIM, e)) ||
	    (rc = field(path, "hidden_dim", l->hidden, MCB_LLAMA_MAX_HIDDEN, e)) ||
	    (rc = field(path, "n_layers", l->layers, MCB_LLAMA_MAX_LAYERS, e)) ||
	    (rc = field(path, "n_heads", l->heads, l->dim, e)) ||
	    (rc = field(path, "n_kv_heads", l->kv_heads, l->heads, e)) ||
	    (rc = field(path, "vocab_size", l->vocab, MCB_LLAMA_MAX_VOCAB, e)) ||
	    (rc = field(path, "seq_len", l->seq, MCB_LLAMA_MAX_SEQ, e)))
		return rc;
	if (l->dim % l->heads || l->heads % l->kv_heads || (l->dim / l->heads) % 2)
		return mcb_errf(e, MCB_EFORMAT,
				"'%s': header: n_heads %" PRId64 " must divide dim %" PRId64
				" into an even head size, and n_kv_heads %" PRId64 " must divide n_heads",
				path, l->heads, l->dim, l->kv_heads);
	hs = (uint64_t)(l->dim / l->heads);
	l->kv = (uint64_t)l->kv_heads * hs;
	L = (uint64_t)l->layers;
	/* the caps keep each product small, but check anyway: this is the size test */
	if (acc(&t, (uint64_t)l->vocab, (uint64_t)l->dim) ||       /* token_embedding */
	    acc(&t, L, (uint64_t)l->dim) ||                         /* rms_att */
	    acc(&t, L * (uint64_t)l->dim, (uint64_t)l->dim) ||      /* wq */
	    acc(&t, L * l->kv, 2 * (uint64_t)l->dim) ||             /* wk, wv */
	    acc(&t, L * (uint64_t)l->dim, (uint64_t)l->dim) ||      /* wo */
	    acc(&t, L, (uint64_t)l->dim) ||                         /* rms_ffn */
	    acc(&t, 3 * L * (uint64_t)l->hidden, (uint64_t)l->dim) || /* w1, w2, w3 */
	    acc(&t, 1, (uint64_t)l->dim) ||                         /* rms_final */
	    acc(&t, (uint64_t)l->seq, hs) ||                        /* freq_cis real + imag */
	    (!l->shared && acc(&t, (uint64_t)l->vocab, (uint64_t)l->dim)))
		return mcb_errf(e, MCB_EFORMAT, "'%s': header implies a size that overflows", path);
	l->total = t;
	return 0;
}

/* Cursor over the float arrays: hands out consecutive slices. */
struct cursor {
	const unsigned char *p; /* next unread float */
};

static const void *take(struct cursor *c, uint64_t nfloats)
{
	const void *p = c->p;

	c->p += nfloats * 4;
	return p;
}

/* Add the L per-layer slices of one [L, d0, d1] (or [L, d0]) array. */
static int add_layers(struct mcb_model *m, struct cursor *c, const char *suffix, int64_t L,
		      int64_t d0, int64_t d1, struct mcb_errctx *e)
{
	int64_t shape[2] = {d0, d1}, l;
	uint64_t n = (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1);
	char name[64];
	int rc;

	for (l = 0; l < L; l++) {
		snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", l, suffix);
		if ((rc = mcb_model_add_mapped(m, name, MCB_DT_F32, d1 ? 2 : 1, shape, take(c, n),
					       (size_t)n * 4, NULL, e)))
			return rc;
	}
	return 0;
}

int mcb_llama2c_read(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	struct mcb_llama_config *cfg = &m->cfg;
	struct mcb_buf what = MCB_BUF_INIT;
	struct layout l = {0};
	struct cursor c;
	uint64_t want;
	int64_t shape[2];
	int rc;

	if ((rc = mcb_os_map(path, &m->map, e)))
		goto fail;
	if (m->map.size < HEADER_BYTES) {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': file is %zu bytes, too short for a llama2.c header "
			      "(%d bytes)", path, m->map.size, HEADER_BYTES);
		goto fail;
	}
	if ((rc = read_header(path, m->map.data, &l, e)))
		goto fail;
	if (__builtin_mul_overflow(l.total, (uint64_t)4, &want) ||
	    __builtin_add_overflow(want, (uint64_t)HEADER_BYTES, &want) || want != m->map.size) {
		rc = mcb_errf(e, MCB_EFORMAT, "'%s': file is %zu bytes but its header implies %" PRIu64
			      " (dim %" PRId64 ", hidden %" PRId64 ", %" PRId64 " layers, vocab %" PRId64
			      ", seq_len %" PRId64 ", %s classifier)", path, m->map.size,
			      l.total * 4 + HEADER_BYTES, l.dim, l.hidden, l.layers, l.vocab, l.seq,
			      l.shared ? "shared" : "separate");
		goto fail;
	}
	strcpy(m->arch, "llama");
	cfg->dim = l.dim;
	cfg->hidden_dim = l.hidden;
	cfg->n_layers = l.layers;
	cfg->n_heads = l.heads;
	cfg->n_kv_heads = l.kv_heads;
	cfg->vocab_size = l.vocab;
	cfg->seq_len = l.seq;
	cfg->head_dim = l.dim / l.heads;
	cfg->norm_eps = 1e-5;
	cfg->rope_theta = 10000.0;
	cfg->tied_embeddings = l.shared;

	c.p = m->map.data + HEADER_BYTES;
	shape[0] = l.vocab;
	shape[1] = l.dim;
	if ((rc = mcb_model_add_mapped(m, "token_embd.weight", MCB_DT_F32, 2, shape,
				       take(&c, (uint64_t)(l.vocab * l.dim)),
				       (size_t)(l.vocab * l.dim) * 4, NULL, e)) ||
	    (rc = add_layers(m, &c, "attn_norm", l.layers, l.dim, 0, e)) ||
	    (rc = add_layers(m, &c, "attn_q", l.layers, l.dim, l.dim, e)) ||
	    (rc = add_layers(m, &c, "attn_k", l.layers, (int64_t)l.kv, l.dim, e)) ||
	    (rc = add_layers(m, &c, "attn_v", l.layers, (int64_t)l.kv, l.dim, e)) ||
	    (rc = add_layers(m, &c, "attn_output", l.layers, l.dim, l.dim, e)) ||
	    (rc = add_layers(m, &c, "ffn_norm", l.layers, l.dim, 0, e)) ||
	    (rc = add_layers(m, &c, "ffn_gate", l.layers, l.hidden, l.dim, e)) ||
	    (rc = add_layers(m, &c, "ffn_down", l.layers, l.dim, l.hidden, e)) ||
	    (rc = add_layers(m, &c, "ffn_up", l.layers, l.hidden, l.dim, e)))
		goto fail;
	shape[0] = l.dim;
	if ((rc = mcb_model_add_mapped(m, "output_norm.weight", MCB_DT_F32, 1, shape,
				       take(&c, (uint64_t)l.dim), (size_t)l.dim * 4, NULL, e)))
		goto fail;
	take(&c, (uint64_t)l.seq * (uint64_t)(l.dim / l.heads)); /* legacy RoPE tables */
	if (!l.shared) {
		shape[0] = l.vocab;
		shape[1] = l.dim;
		if ((rc = mcb_model_add_mapped(m, "output.weight", MCB_DT_F32, 2, shape,
					       take(&c, (uint64_t)(l.vocab * l.dim)),
					       (size_t)(l.vocab * l.dim) * 4, NULL, e)))
			goto fail;
	}
	json_object_set_new(m->meta, "source", json_pack("{s:s}", "format", "llama2c"));
	mcb_buf_printf(&what, "'%s'", path);
	rc = mcb_model_check_llama(m, what.data, e);
	mcb_buf_release(&what);
	if (rc)
		goto fail;
	return 0;
fail:
	mcb_model_release(m);
	mcb_model_init(m);
	return rc;
}
