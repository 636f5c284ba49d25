/*
 * engine: the reference inference engine (contracts in include/mcb/engine.h).
 *
 * Forward pass (llama2.c run.c semantics; shapes for a batch of n tokens at
 * positions pos0 .. pos0+n-1, d = dim, qd = n_heads * head_dim (d unless
 * heads were pruned), kv = n_kv_heads * head_dim, h = hidden_dim,
 * hd = head_dim):
 *
 *   x (n,d) = token_embd[tokens]
 *   per layer l:
 *     xb (n,d)  = rmsnorm(x, attn_norm)                      [capture ATTN_IN]
 *     q (n,qd) = xb Wq^T;  K[l][pos] (n,kv) = xb Wk^T;  V[l][pos] (n,kv) = xb Wv^T
 *     rope(q), rope(K[l][pos]): pairs (2i, 2i+1) of each head turn by
 *                               pos * theta^(-2i/hd)
 *     att (n,qd): per token t and head j, kv head g = j / (n_heads/n_kv_heads):
 *                softmax_p(q_tj . K[l][p]_g / sqrt(hd)) over p = 0..pos0+t,
 *                weighted sum of V[l][p]_g                    [capture ATTN_OUT]
 *     x += att Wo^T
 *     xb = rmsnorm(x, ffn_norm)                              [capture FFN_IN]
 *     hb (n,h) = silu(xb Wgate^T) * (xb Wup^T)               [capture FFN_DOWN]
 *     x += hb Wdown^T
 *   xb = rmsnorm(x, output_norm)                              [capture OUTPUT]
 *   logits (n,vocab) = xb Wout^T   (Wout = token_embd when tied)
 *
 * RMSNorm follows ggml's order (ggml-cpu ops.cpp rms_norm_f32): the sum of
 * the float squares accumulated in double, mean = (float)(sum / n),
 * scale = 1 / sqrtf(mean + eps), y = (x * scale) * w.  In EXACT mode the
 * softmax subtracts the max, sums expf in double and multiplies by
 * (float)(1/sum); RoPE angles are computed in double.
 *
 * Weights: every 2-D weight is described by mcb_qtensor_get (qtensor.h) and
 * bound to a form: F32/F16/BF16; int8 per channel (I8 + F32 scale) and Q8_0
 * split (I8 + F16 scale per 32), which have their own dot kernels; ggml
 * blocks (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K in the GGUF byte layout); and every
 * other record (integer codes of 2..8 bits with zero points, groups, g_idx;
 * FP8), whose rows are dequantized by mcb_qtensor_row.  The dequantized
 * weight is always that exact float value.
 *
 * Linear layers y (n,out) = x (n,in) W^T, by weight form and mode:
 *   EXACT mode: n == 1 (decode): one dot product per output row (kernels.h)
 *     on the stored form (block and record forms: the row dequantized into
 *     a per-thread buffer first), rows spread over the thread pool.  n > 1:
 *     F32 weights through OpenBLAS SGEMM, one call per tile of rows; other
 *     forms tile by tile: each tile of W (about 1 MiB of floats) dequantized
 *     into the thread's scratch buffer, then SGEMM on it; memory stays
 *     bounded and the weights stay in their compact form.
 *   GGML mode: what ggml's CPU backend runs for the weight's type, with the
 *     activation first converted to the type's "dot type" (Q8_0 blocks with
 *     ggml's x86 quantizer for Q8_0 and Q4_0, Q8_1 for Q4_1, Q8_K for Q4_K
 *     and Q6_K (the 4-row repacking quantizer's sign rule where ggml uses
 *     it), fp16 for F16, bf16 for BF16) and the kernel's float order
 *     (kernels.h enum mcb_ggml_order: Q4_0 and Q4_K weights with rows % 8
 *     == 0 are the ones ggml repacks and run its repacked GEMM/GEMV orders);
 *     F32 and F16 weights with tinyBLAS's 16-lane order for batches of >= 2
 *     tokens when cols % 16 == 0 and rows % 4 == 0, else ggml_vec_dot's.
 *     Integer-code and FP8 weights have no ggml counterpart: as in EXACT
 *     mode (without SGEMM).  BF16 pairs are summed in the kernels' own
 *     order, not ggml's.
 *
 * GGML mode also runs the float ops around the matmuls in ggml's order
 * (llama.cpp's AVX-512 build; kernels.h, attn_ggml below): RoPE's rotation
 * with the build's fused multiply-adds and its float angle recurrence,
 * q.k with ggml_vec_dot_f32, the softmax's exps with ggml_v_expf in
 * 16-lane chunks, the weighted sum of V with tinyBLAS (batches) or
 * ggml_vec_dot_f32 over llama.cpp's KV length padded to 256 (one token),
 * SwiGLU with ggml_v_expf.  Batches are split as llama.cpp's default
 * n_ubatch (512) splits them, since ggml's kernels differ for one and for
 * several tokens.  The result: logits bit-identical to llama.cpp's on every
 * type tested (tests/compat section 7), in one batch and token by token.
 *
 * Rounding: in EXACT mode the dot kernels and SGEMM sum in different
 * orders, so a position's logits may differ by rounding (~1e-6 relative)
 * between "evaluated in one batch" and "evaluated token by token"; in GGML
 * mode they differ exactly where llama.cpp's do.  Equal calls give equal
 * bits.
 *
 * Threads and determinism: a persistent pool of threads-1 workers plus the
 * caller (no workers with one thread); each op is one pool job, with a
 * barrier at its end.  Every op splits its outputs into disjoint pieces
 * (rows of a matmul, tiles of rows for SGEMM, (token, head) pairs of the
 * attention, tokens of a norm), each piece is computed by exactly one thread
 * with the same code and the same summation order whichever thread it is,
 * and no result is ever combined across threads: the output bits do not
 * depend on the thread count or on which thread took which piece.  SGEMM
 * tiles have a size fixed by the weight's shape; OpenBLAS's own budget is
 * set to one thread (mcb_blas_set_threads, process-wide) and the pool runs
 * the tile calls in parallel, so OpenBLAS's threads never compete with the
 * pool's (its idle threads spin for a while after each call).
 *
 * Memory: the weights are borrowed from the model (F16/BF16/int8 are read in
 * place: no F32 copy); norms that are not F32 are converted once (small).
 * The engine owns the KV cache (2 * n_layers * ctx_len * kv floats) and
 * activations for at most MAX_BATCH tokens (GGML mode: GGML_BATCH; longer
 * evals run in chunks).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/blas.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/kernels.h"
#include "mcb/model.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

#define MAX_BATCH 128        /* tokens per internal batch */
#define GGML_BATCH 512       /* GGML mode: llama.cpp's default n_ubatch (kernels
                              * differ for 1 and >= 2 tokens: same splits) */
#define TILE_FLOATS (1 << 18) /* dequantized weight tile for SGEMM: 1 MiB */
#define F32_TILE_FLOATS (1 << 20) /* F32 weights: rows per SGEMM call, 4 MiB */
#define SPIN 4000            /* pause loops before a pool thread sleeps (~50-100 us) */
#define GGML_KV_PAD 256      /* llama.cpp's KV length padding (no flash attention) */

/* cblas.h enum values (runtime/blas.c is the only file that includes it) */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

/* llama.cpp's KV length for positions 0..len-1: a multiple of GGML_KV_PAD */
static int64_t kv_padded(int64_t len)
{
	return (len + GGML_KV_PAD - 1) / GGML_KV_PAD * GGML_KV_PAD;
}

/* ---- thread pool ---- */

typedef void (*job_fn)(void *ctx, int64_t i0, int64_t i1, int tid);

struct pool {
	int nthreads;           /* workers + the caller; 1: no workers */
	pthread_t *workers;     /* nthreads - 1 */
	pthread_mutex_t mu;
	pthread_cond_t wake;    /* gen changed or stop */
	pthread_cond_t done;    /* busy reached 0 */
	atomic_uint gen;        /* job number; written under mu, read spinning */
	atomic_int busy;        /* workers still inside the current job */
	int stop;               /* under mu */
	/* the current job, written before gen is bumped */
	job_fn fn;
	void *ctx;
	int64_t n, chunk;       /* items [0, n) in pieces of chunk */
	atomic_llong next;      /* next unclaimed item */
};

struct worker_arg {
	struct pool *p;
	int tid;
};

static void run_pieces(struct pool *p, int tid)
{
	int64_t i0;

	while ((i0 = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed)) < p->n)
		p->fn(p->ctx, i0, i0 + p->chunk < p->n ? i0 + p->chunk : p->n, tid);
}

static void *worker_main(void *arg)
{
	struct worker_arg wa = *(struct worker_arg *)arg;
	struct pool *p = wa.p;
	unsigned seen = 0, g;
	int i, stop;

	free(arg);
	for (;;) {
		for (i = 0; i < SPIN; i++) {
			if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
				break;
			cpu_relax();
		}
		if (g == seen) {
			pthread_mutex_lock(&p->mu);
			while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
			       !p->stop)
				pthread_cond_wait(&p->wake, &p->mu);
			stop = p->stop;
			pthread_mutex_unlock(&p->mu);
			if (g == seen && stop)
				return NULL;
		}
		seen = g;
		run_pieces(p, wa.tid);
		if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&p->mu);
			pthread_cond_signal(&p->done);
			pthread_mutex_unlock(&p->mu);
		}
	}
}

static void pool_free(struct pool *p)
{
	int i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads - 1; i++)
		pthread_join(p->workers[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	free(p->workers);
	free(p);
}

static int pool_new(int nthreads, struct pool **out, struct mcb_errctx *e)
{
	struct pool *p = mcb_xcalloc(1, sizeof(*p));
	struct worker_arg *wa;
	int i, rc;

	p->workers = mcb_xcalloc((size_t)(nthreads > 1 ? nthreads - 1 : 1), sizeof(pthread_t));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	atomic_init(&p->gen, 0);
	atomic_init(&p->busy, 0);
	atomic_init(&p->next, 0);
	p->nthreads = 1;
	for (i = 0; i < nthreads - 1; i++) {
		wa = mcb_xmalloc(sizeof(*wa));
		wa->p = p;
		wa->tid = i + 1;
		rc = pthread_create(&p->workers[i], NULL, worker_main, wa);
		if (rc) {
			free(wa);
			pool_free(p);
			errno = rc;
			return mcb_errf(e, MCB_EIO, "cannot start engine thread %d of %d:", i + 2,
					nthreads);
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

/* Run fn over items [0, n) in pieces of chunk, on every thread; returns when
 * all are done.  Small jobs run on the caller alone. */
static void pool_run(struct pool *p, job_fn fn, void *ctx, int64_t n, int64_t chunk)
{
	int i;

	if (n <= 0)
		return;
	if (chunk < 1)
		chunk = 1;
	if (p->nthreads == 1 || n <= chunk) {
		fn(ctx, 0, n, 0);
		return;
	}
	p->fn = fn;
	p->ctx = ctx;
	p->n = n;
	p->chunk = chunk;
	atomic_store_explicit(&p->next, 0, memory_order_relaxed);
	atomic_store_explicit(&p->busy, p->nthreads - 1, memory_order_relaxed);
	pthread_mutex_lock(&p->mu);
	atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
	pthread_cond_broadcast(&p->wake);
	pthread_mutex_unlock(&p->mu);
	run_pieces(p, 0);
	for (i = 0; i < SPIN; i++) {
		if (atomic_load_explicit(&p->busy, memory_order_acquire) == 0)
			return;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	while (atomic_load_explicit(&p->busy, memory_order_acquire) != 0)
		pthread_cond_wait(&p->done, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

/* ---- weights ---- */

/*
 * Weight forms: the float ones, the two int8 forms with their own kernels
 * (per channel with an F32 scale; Q8_0's split form), ggml blocks, and every
 * other qtensor form (int of any width, asymmetric, g_idx; fp8), which runs
 * on rows dequantized exactly by mcb_qtensor_row.
 */
enum wform { W_F32, W_F16, W_BF16, W_I8, W_Q8_0, W_GGML, W_QROW };

/* The activation type a matmul consumes: F32, fp16, bf16, or a ggml dot
 * type (Q8_0 blocks, Q8_1, Q8_K, and Q8_K as the repacked Q4_K path
 * quantizes its rows in groups of 4). */
enum acttype { A_F32, A_F16, A_BF16, A_Q8, A_Q81, A_Q8K, A_Q8KR, A_COUNT };

/* W (rows, cols) in one of the forms; y (rows,) = W x (cols,) */
struct lin {
	const char *name;  /* tensor name (the model's arena) */
	enum wform form;
	int64_t rows, cols;
	const void *w;     /* row-major values, int8 codes or ggml block rows */
	const void *scale; /* W_I8: float (rows,); W_Q8_0: fp16 (rows, cols/32) */
	size_t row_bytes;  /* W_GGML: bytes per row */
	enum mcb_dtype gtype; /* W_GGML: the block type */
	enum mcb_ggml_order order; /* W_GGML in GGML mode: ggml's kernel (for A_Q8KR:
	                              the gemm order; single rows use GEMV) */
	struct mcb_qtensor qt; /* the weight as qtensor describes it */
	enum acttype act;  /* what the engine's mode feeds it */
	int tiled;         /* n > 1 runs dequantized tiles through SGEMM */
	float ascale;      /* W8A8: the static activation scale, 0: float inputs */
};

/* Quantized activations of one dot type, rows of maxcols values (struct
 * mcb_qact's layout); only the arrays the type uses are allocated. */
struct actbuf {
	int8_t *q;      /* (maxb, maxcols) */
	uint16_t *d;    /* (maxb, maxcols/32 + 1) */
	uint16_t *s;    /* Q8_1: (maxb, maxcols/32 + 1) */
	float *dk;      /* Q8_K: (maxb, maxcols/256 + 1) */
	int16_t *bs;    /* Q8_K: (maxb, maxcols/16 + 1) */
};

struct layer {
	const float *attn_norm, *ffn_norm; /* (dim,) */
	struct lin q, k, v, o, gate, up, down;
};

struct mcb_engine {
	struct mcb_llama_config cfg;
	enum mcb_engine_mode mode;
	int threads;
	int64_t ctx_len;  /* KV cache positions */
	int64_t pos;      /* positions held */
	int64_t kv_dim;   /* n_kv_heads * head_dim */
	int64_t q_dim;    /* n_heads * head_dim (dim unless heads were pruned) */
	int64_t maxb;     /* tokens per internal batch */
	struct layer *layers;
	struct lin embd;  /* token_embd (vocab, dim) */
	struct lin out;   /* the classifier (vocab, dim): output.weight or token_embd */
	const float *out_norm;
	float **owned_norms; /* converted norms (freed with the engine) */
	int nowned;
	const struct mcb_kernels *k;
	const struct mcb_blas *blas; /* NULL when no batch can occur (maxb 1) */
	struct pool *pool;
	mcb_capture_fn cap;
	void *cap_ctx;

	/* KV cache: layer l, position p at (l * ctx_len + p) * kv_dim */
	float *kcache, *vcache;
	/* activations (maxb rows) */
	float *x, *xb, *q, *att, *tmp; /* (maxb, dim) */
	float *hb, *hb2;               /* (maxb, hidden) */
	float *rope_cs;                /* (maxb, hd/2, 2): cos, sin */
	float *scores;                 /* (threads, sstride) attention scratch */
	int64_t sstride;               /* scores, gathered V column (GGML), 16 lanes x hd */
	struct actbuf act[A_COUNT];    /* quantized activations (A_Q8 .. A_Q8KR), when used */
	int need_act[A_COUNT];         /* 1 when some weight consumes that type */
	float *rowbuf;                 /* (threads, maxcols) a dequantized row (W_QROW, W_GGML) */
	float *xq;                     /* (maxb, maxcols) int8-rounded inputs of W8A8 weights */
	uint16_t *ah;                  /* (maxb, maxcols) fp16 activation */
	uint16_t *abh;                 /* (maxb, maxcols) bf16 activation */
	float *tile;                   /* (threads, tile_floats) dequantized weight tiles, or NULL */
	int64_t tile_floats;
	int64_t maxcols;
};

/* Checked allocation with the byte count in the message. */
static int alloc_array(void **p, int64_t count, size_t elsize, const char *what,
			struct mcb_errctx *e)
{
	size_t bytes;

	if (count < 0 || mcb_mul_ok((size_t)count, elsize, &bytes))
		return mcb_errf(e, MCB_ERANGE, "engine: %s: size overflows", what);
	*p = malloc(bytes ? bytes : 1);
	if (!*p)
		return mcb_errf(e, MCB_ENOMEM, "engine: cannot allocate %zu bytes for %s", bytes,
				what);
	return 0;
}

/* The string value of a passthrough GGUF key in meta["gguf"], or NULL. */
static const json_t *gguf_meta(const struct mcb_model *m, const char *key)
{
	return json_object_get(json_object_get(json_object_get(m->meta, "gguf"), key), "value");
}

/* Refuse what the forward pass above does not compute. */
static int check_supported(const struct mcb_model *m, struct mcb_errctx *e)
{
	const json_t *v;
	const struct mcb_llama_config *c = &m->cfg;
	int64_t iv;
	int i;

	if (strcmp(m->arch, "llama"))
		return mcb_errf(e, MCB_EUNSUP, "engine: architecture '%.32s' is not supported (only llama)",
				m->arch);
	v = gguf_meta(m, "llama.rope.scaling.type");
	if (v && !(json_is_string(v) && !strcmp(json_string_value(v), "none")))
		return mcb_errf(e, MCB_EUNSUP,
				"engine: rope scaling '%s' (llama.rope.scaling.type) is not supported",
				json_is_string(v) ? json_string_value(v) : "?");
	/* llama.cpp applies a scaling factor whatever the type says */
	for (i = 0; i < 2; i++) {
		static const char *const keys[2] = {"llama.rope.scaling.factor",
						    "llama.rope.scale_linear"};

		v = gguf_meta(m, keys[i]);
		if (v && !(json_is_number(v) &&
			   (json_number_value(v) == 0.0 || json_number_value(v) == 1.0)))
			return mcb_errf(e, MCB_EUNSUP,
					"engine: rope scaling factor %g (%s) is not supported",
					json_is_number(v) ? json_number_value(v) : NAN, keys[i]);
	}
	if (mcb_model_find(m, "rope_freqs.weight"))
		return mcb_errf(e, MCB_EUNSUP,
				"engine: per-frequency rope factors (tensor rope_freqs.weight) are not "
				"supported");
	v = gguf_meta(m, "llama.expert_count");
	if (v && json_is_integer(v) && json_integer_value(v) > 0)
		return mcb_errf(e, MCB_EUNSUP,
				"engine: mixture of experts (llama.expert_count %lld) is not supported",
				(long long)json_integer_value(v));
	v = gguf_meta(m, "llama.attention.key_length");
	if (v && json_is_integer(v) && (iv = json_integer_value(v)) != c->head_dim)
		return mcb_errf(e, MCB_EUNSUP,
				"engine: llama.attention.key_length %lld differs from the head size "
				"%lld", (long long)iv, (long long)c->head_dim);
	v = gguf_meta(m, "llama.attention.value_length");
	if (v && json_is_integer(v) && (iv = json_integer_value(v)) != c->head_dim)
		return mcb_errf(e, MCB_EUNSUP,
				"engine: llama.attention.value_length %lld differs from the head size "
				"%lld", (long long)iv, (long long)c->head_dim);
	return 0;
}

/* Resolve tensor name (rows, cols) into a lin: its qtensor description
 * (record and side tensors checked there), the kernel form, and in GGML
 * mode the activation type and ggml kernel order llama.cpp would use. */
static int bind_ascale(const struct mcb_model *m, struct lin *l, struct mcb_errctx *e)
{
	const json_t *rec = json_object_get(json_object_get(m->meta, "quant"), l->name);
	const char *sn = json_string_value(json_object_get(rec, "input_scale"));
	const struct mcb_tensor *t;
	float s;

	if (!sn)
		return 0;
	t = mcb_model_find(m, sn);
	if (!t || t->dtype != MCB_DT_F32 || mcb_tensor_numel(t) != 1)
		return mcb_errf(e, MCB_EFORMAT,
				"engine: '%s': its input_scale '%s' is not one F32 value", l->name,
				sn);
	memcpy(&s, t->data, sizeof(s));
	if (!(s > 0.0f) || !isfinite(s))
		return mcb_errf(e, MCB_EFORMAT, "engine: '%s': input_scale %g is not positive",
				l->name, (double)s);
	l->ascale = s;
	return 0;
}

static int bind_lin(struct mcb_engine *en, const struct mcb_model *m, const char *name,
		    int64_t rows, int64_t cols, struct lin *l, struct mcb_errctx *e)
{
	const struct mcb_qtensor *q = &l->qt;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = mcb_qtensor_get(m, name, &l->qt, e)))
		return mcb_errprefix(e, "engine");
	if (q->rows != rows || q->cols != cols)
		return mcb_errf(e, MCB_EFORMAT, "engine: tensor '%s' is (%lld, %lld), expected "
				"(%lld, %lld)", name, (long long)q->rows, (long long)q->cols,
				(long long)rows, (long long)cols);
	l->name = q->name;
	l->rows = rows;
	l->cols = cols;
	l->w = q->codes->data;
	switch (q->format) {
	case MCB_QF_FLOAT:
		l->form = q->codes->dtype == MCB_DT_F32 ? W_F32
			  : q->codes->dtype == MCB_DT_F16 ? W_F16 : W_BF16;
		break;
	case MCB_QF_INT:
		/* the int8 forms step_quantize writes have their own kernels */
		l->form = W_QROW;
		if (q->bits == 8 && q->symmetric && !q->g_idx) {
			if (!q->group_size && q->scale->dtype == MCB_DT_F32)
				l->form = W_I8;
			else if (q->group_size == MCB_QK && cols % MCB_QK == 0 &&
				 q->scale->dtype == MCB_DT_F16)
				l->form = W_Q8_0;
		}
		if (l->form != W_QROW)
			l->scale = q->scale->data;
		break;
	case MCB_QF_GGML:
		l->form = W_GGML;
		l->gtype = q->ggml;
		l->row_bytes = q->row_bytes;
		break;
	case MCB_QF_FP8:
	case MCB_QF_LOWRANK: /* rows of the product A B */
		l->form = W_QROW;
		break;
	}
	/* the activation type and the batched path, per mode (kernels.h:
	 * ggml's x86 kernels; Q4_0 and Q4_K weights with rows % 8 == 0 are
	 * the ones ggml repacks) */
	l->act = A_F32;
	if (en->mode == MCB_ENGINE_GGML) {
		if (l->form == W_F16)
			l->act = A_F16;
		else if (l->form == W_BF16)
			l->act = A_BF16;
		else if (l->form == W_Q8_0)
			l->act = A_Q8;
	}
	if (en->mode == MCB_ENGINE_GGML && l->form == W_GGML) {
		switch (l->gtype) {
		case MCB_DT_Q8_0:
			l->act = A_Q8;
			l->order = MCB_GO_Q8_0;
			break;
		case MCB_DT_Q4_0:
			l->act = A_Q8;
			l->order = rows % 8 ? MCB_GO_Q4_0 : MCB_GO_Q4_0_R;
			break;
		case MCB_DT_Q4_1:
			l->act = A_Q81;
			l->order = MCB_GO_Q4_1;
			break;
		case MCB_DT_Q4_K:
			l->act = rows % 8 ? A_Q8K : A_Q8KR;
			l->order = rows % 8 ? MCB_GO_Q4_K : MCB_GO_Q4_K_GEMM;
			break;
		default: /* Q6_K */
			l->act = A_Q8K;
			l->order = MCB_GO_Q6_K;
			break;
		}
	}
	en->need_act[l->act] = 1;
	l->tiled = l->form != W_F32 && l->act == A_F32;
	return bind_ascale(m, l, e);
}

/* A norm weight (dim,) as F32: borrowed, or converted and owned. */
static int bind_norm(struct mcb_engine *en, const struct mcb_model *m, const char *name,
		     const float **out, struct mcb_errctx *e)
{
	const struct mcb_tensor *t = mcb_model_find(m, name);
	float *f;
	int rc;

	if (!t || t->ndim != 1 || t->shape[0] != en->cfg.dim)
		return mcb_errf(e, MCB_EFORMAT, "engine: tensor '%s' is missing or not (%lld,)", name,
				(long long)en->cfg.dim);
	if (t->dtype == MCB_DT_F32) {
		*out = t->data;
		return 0;
	}
	if (t->dtype != MCB_DT_F16 && t->dtype != MCB_DT_BF16)
		return mcb_errf(e, MCB_EUNSUP, "engine: norm '%s' has dtype %s, not supported", name,
				mcb_dtype_info(t->dtype)->name);
	if ((rc = alloc_array((void **)&f, en->cfg.dim, sizeof(float), name, e)))
		return rc;
	mcb_tensor_to_f32(t, f, NULL);
	en->owned_norms = mcb_xrealloc(en->owned_norms, (size_t)(en->nowned + 1) * sizeof(float *));
	en->owned_norms[en->nowned++] = f;
	*out = f;
	return 0;
}

void mcb_engine_free(struct mcb_engine *en)
{
	int i;

	if (!en)
		return;
	pool_free(en->pool);
	for (i = 0; i < en->nowned; i++)
		free(en->owned_norms[i]);
	free(en->owned_norms);
	free(en->layers);
	free(en->kcache);
	free(en->vcache);
	free(en->x);
	free(en->xb);
	free(en->q);
	free(en->att);
	free(en->tmp);
	free(en->hb);
	free(en->hb2);
	free(en->rope_cs);
	free(en->scores);
	for (i = 0; i < A_COUNT; i++) {
		free(en->act[i].q);
		free(en->act[i].d);
		free(en->act[i].s);
		free(en->act[i].dk);
		free(en->act[i].bs);
	}
	free(en->rowbuf);
	free(en->xq);
	free(en->ah);
	free(en->abh);
	free(en->tile);
	free(en);
}

/* The quantized-activation buffers of the dot types some weight consumes. */
static int alloc_acts(struct mcb_engine *en, int64_t maxb, struct mcb_errctx *e)
{
	const int64_t mc = en->maxcols;
	int a, rc = 0;

	for (a = A_Q8; a < A_COUNT && !rc; a++) {
		struct actbuf *b = &en->act[a];

		if (!en->need_act[a])
			continue;
		rc = alloc_array((void **)&b->q, maxb * mc, 1, "activation codes", e);
		if (!rc && (a == A_Q8 || a == A_Q81))
			rc = alloc_array((void **)&b->d, maxb * (mc / MCB_QK + 1), sizeof(uint16_t),
					 "activation scales", e);
		if (!rc && a == A_Q81)
			rc = alloc_array((void **)&b->s, maxb * (mc / MCB_QK + 1), sizeof(uint16_t),
					 "activation sums", e);
		if (!rc && (a == A_Q8K || a == A_Q8KR))
			rc = alloc_array((void **)&b->dk, maxb * (mc / MCB_QKK + 1), sizeof(float),
					 "activation scales", e);
		if (!rc && (a == A_Q8K || a == A_Q8KR))
			rc = alloc_array((void **)&b->bs, maxb * (mc / 16 + 1), sizeof(int16_t),
					 "activation sums", e);
	}
	return rc;
}

static int bind_model(struct mcb_engine *en, const struct mcb_model *m, struct mcb_errctx *e)
{
	const struct mcb_llama_config *c = &en->cfg;
	static const char *const names[7] = {"attn_q", "attn_k", "attn_v", "attn_output",
					     "ffn_gate", "ffn_up", "ffn_down"};
	char name[96];
	int64_t l;
	int rc, i;

	en->layers = mcb_xcalloc((size_t)c->n_layers, sizeof(*en->layers));
	for (l = 0; l < c->n_layers; l++) {
		struct layer *L = &en->layers[l];
		struct lin *lins[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
		const int64_t shapes[7][2] = {{en->q_dim, c->dim},   {en->kv_dim, c->dim},
					      {en->kv_dim, c->dim},  {c->dim, en->q_dim},
					      {c->hidden_dim, c->dim}, {c->hidden_dim, c->dim},
					      {c->dim, c->hidden_dim}};

		snprintf(name, sizeof(name), "blk.%" PRId64 ".attn_norm.weight", l);
		if ((rc = bind_norm(en, m, name, &L->attn_norm, e)))
			return rc;
		snprintf(name, sizeof(name), "blk.%" PRId64 ".ffn_norm.weight", l);
		if ((rc = bind_norm(en, m, name, &L->ffn_norm, e)))
			return rc;
		for (i = 0; i < 7; i++) {
			snprintf(name, sizeof(name), "blk.%" PRId64 ".%s.weight", l, names[i]);
			if ((rc = bind_lin(en, m, name, shapes[i][0], shapes[i][1], lins[i], e)))
				return rc;
		}
	}
	if ((rc = bind_norm(en, m, "output_norm.weight", &en->out_norm, e)) ||
	    (rc = bind_lin(en, m, "token_embd.weight", c->vocab_size, c->dim, &en->embd, e)))
		return rc;
	if (c->tied_embeddings)
		en->out = en->embd;
	else if ((rc = bind_lin(en, m, "output.weight", c->vocab_size, c->dim, &en->out, e)))
		return rc;
	return 0;
}

int mcb_engine_new(const struct mcb_model *m, const struct mcb_engine_opts *o,
		   struct mcb_engine **out, struct mcb_errctx *e)
{
	struct mcb_engine *en;
	const struct mcb_llama_config *c;
	int64_t maxb, hd2, l;
	int rc, tiled = 0;

	*out = NULL;
	if (!o || o->threads < 1 || o->threads > 1024 || o->ctx_len < 0 ||
	    (o->mode != MCB_ENGINE_EXACT && o->mode != MCB_ENGINE_GGML))
		return mcb_errf(e, MCB_EINVAL, "engine: bad options (threads %d, ctx_len %lld)",
				o ? o->threads : 0, o ? (long long)o->ctx_len : 0LL);
	if ((rc = check_supported(m, e)) || (rc = mcb_model_check_config(&m->cfg, "engine: model", e)))
		return rc;
	if (!m->cfg.tied_embeddings != !!mcb_model_find(m, "output.weight"))
		return mcb_errf(e, MCB_EFORMAT, "engine: model: %s", m->cfg.tied_embeddings
				? "has output.weight but the embeddings are tied"
				: "missing tensor 'output.weight'");
	en = mcb_xcalloc(1, sizeof(*en));
	en->cfg = m->cfg;
	c = &en->cfg;
	en->mode = o->mode;
	en->threads = o->threads;
	en->ctx_len = o->ctx_len ? o->ctx_len : c->seq_len;
	if (en->ctx_len > MCB_LLAMA_MAX_SEQ) {
		rc = mcb_errf(e, MCB_ERANGE, "engine: context length %lld is above %d",
			      (long long)en->ctx_len, MCB_LLAMA_MAX_SEQ);
		goto fail;
	}
	en->kv_dim = c->n_kv_heads * c->head_dim;
	en->q_dim = c->n_heads * c->head_dim;
	en->k = mcb_kernels();
	if ((rc = bind_model(en, m, e)))
		goto fail;

	maxb = en->mode == MCB_ENGINE_GGML ? GGML_BATCH : MAX_BATCH;
	maxb = en->ctx_len < maxb ? en->ctx_len : maxb;
	en->maxb = maxb;
	en->maxcols = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
	en->maxcols = en->maxcols > en->q_dim ? en->maxcols : en->q_dim;
	hd2 = c->head_dim / 2;
	/* scores and a gathered V column over the padded KV length, 16 lanes */
	en->sstride = 2 * kv_padded(en->ctx_len) + 16 * c->head_dim;
	{
		size_t kvn;

		if (mcb_mul_ok((size_t)c->n_layers, (size_t)en->ctx_len, &kvn) ||
		    mcb_mul_ok(kvn, (size_t)en->kv_dim, &kvn) || kvn > INT64_MAX) {
			rc = mcb_errf(e, MCB_ERANGE, "engine: KV cache size overflows");
			goto fail;
		}
		if ((rc = alloc_array((void **)&en->kcache, (int64_t)kvn, sizeof(float),
				       "the KV cache (keys)", e)) ||
		    (rc = alloc_array((void **)&en->vcache, (int64_t)kvn, sizeof(float),
				       "the KV cache (values)", e)))
			goto fail;
	}
	if ((rc = alloc_array((void **)&en->x, maxb * c->dim, sizeof(float), "activations", e)) ||
	    (rc = alloc_array((void **)&en->xb, maxb * c->dim, sizeof(float), "activations", e)) ||
	    (rc = alloc_array((void **)&en->q, maxb * en->q_dim, sizeof(float), "activations", e)) ||
	    (rc = alloc_array((void **)&en->att, maxb * en->q_dim, sizeof(float), "activations",
			       e)) ||
	    (rc = alloc_array((void **)&en->tmp, maxb * c->dim, sizeof(float), "activations", e)) ||
	    (rc = alloc_array((void **)&en->hb, maxb * c->hidden_dim, sizeof(float), "activations",
			       e)) ||
	    (rc = alloc_array((void **)&en->hb2, maxb * c->hidden_dim, sizeof(float),
			       "activations", e)) ||
	    (rc = alloc_array((void **)&en->rope_cs, maxb * hd2 * 2, sizeof(float), "rope tables",
			       e)) ||
	    (rc = alloc_array((void **)&en->scores, (int64_t)en->threads * en->sstride,
			       sizeof(float), "attention scores", e)) ||
	    (rc = alloc_acts(en, maxb, e)) ||
	    (rc = alloc_array((void **)&en->rowbuf, (int64_t)en->threads * en->maxcols,
			       sizeof(float), "dequantized rows", e)) ||
	    (rc = alloc_array((void **)&en->xq, maxb * en->maxcols, sizeof(float),
			       "activations", e)) ||
	    (rc = alloc_array((void **)&en->ah, maxb * en->maxcols, sizeof(uint16_t),
			       "activations", e)) ||
	    (rc = alloc_array((void **)&en->abh, maxb * en->maxcols, sizeof(uint16_t),
			       "activations", e)))
		goto fail;
	for (l = 0; l < c->n_layers; l++) {
		const struct layer *L = &en->layers[l];

		tiled |= L->q.tiled | L->k.tiled | L->v.tiled | L->o.tiled | L->gate.tiled |
			 L->up.tiled | L->down.tiled;
	}
	tiled |= en->out.tiled;
	if (tiled && maxb > 1) {
		en->tile_floats = en->maxcols > TILE_FLOATS ? en->maxcols : TILE_FLOATS;
		if ((rc = alloc_array((void **)&en->tile, en->threads * en->tile_floats,
				       sizeof(float), "the dequantized weight tiles", e)))
			goto fail;
	}
	if (maxb > 1) {
		/* one OpenBLAS thread per call: the pool runs the calls in parallel */
		mcb_blas_set_threads(1);
		if (!(en->blas = mcb_blas_get(e))) {
			rc = mcb_errprefix(e, "engine (batched prompts need OpenBLAS)");
			goto fail;
		}
	}
	if ((rc = pool_new(en->threads, &en->pool, e)))
		goto fail;
	*out = en;
	return 0;
fail:
	mcb_engine_free(en);
	return rc;
}

void mcb_engine_reset(struct mcb_engine *en)
{
	en->pos = 0;
}

int64_t mcb_engine_pos(const struct mcb_engine *en)
{
	return en->pos;
}

int64_t mcb_engine_vocab(const struct mcb_engine *en)
{
	return en->cfg.vocab_size;
}

void mcb_engine_set_capture(struct mcb_engine *en, mcb_capture_fn fn, void *ctx)
{
	en->cap = fn;
	en->cap_ctx = ctx;
}

static uint64_t lin_bytes(const struct lin *l)
{
	uint64_t n = (uint64_t)l->rows * (uint64_t)l->cols;

	switch (l->form) {
	case W_F32:
		return 4 * n;
	case W_F16:
	case W_BF16:
		return 2 * n;
	case W_I8:
		return n + 4 * (uint64_t)l->rows;
	case W_Q8_0:
		return n + 2 * (n / MCB_QK);
	case W_GGML:
	case W_QROW:
		return mcb_qtensor_bytes(&l->qt);
	}
	return 0;
}

uint64_t mcb_engine_weight_bytes(const struct mcb_engine *en)
{
	const struct mcb_llama_config *c = &en->cfg;
	uint64_t b = lin_bytes(&en->out) + 4 * (uint64_t)c->dim; /* classifier, output_norm */
	int64_t l;

	/* one embedding row */
	b += lin_bytes(&en->embd) / (uint64_t)c->vocab_size;
	for (l = 0; l < c->n_layers; l++) {
		const struct layer *L = &en->layers[l];

		b += lin_bytes(&L->q) + lin_bytes(&L->k) + lin_bytes(&L->v) + lin_bytes(&L->o) +
		     lin_bytes(&L->gate) + lin_bytes(&L->up) + lin_bytes(&L->down) +
		     8 * (uint64_t)c->dim;
	}
	return b;
}

uint64_t mcb_engine_kv_bytes_per_pos(const struct mcb_engine *en)
{
	return 2 * (uint64_t)en->cfg.n_layers * (uint64_t)en->kv_dim * sizeof(float);
}

/* ---- ops ---- */

/* Row r of a weight as float (the dequantized values). */
static void lin_row(const struct mcb_engine *en, const struct lin *l, int64_t r, float *y)
{
	const int64_t c = l->cols;

	switch (l->form) {
	case W_F32:
		memcpy(y, (const float *)l->w + r * c, (size_t)c * sizeof(float));
		break;
	case W_F16:
		en->k->deq_f16(c, (const uint16_t *)l->w + r * c, y);
		break;
	case W_BF16:
		en->k->deq_bf16(c, (const uint16_t *)l->w + r * c, y);
		break;
	case W_I8:
		en->k->deq_i8(c, (const int8_t *)l->w + r * c, ((const float *)l->scale)[r], y);
		break;
	case W_Q8_0:
		en->k->deq_q8_0(c, (const int8_t *)l->w + r * c,
				(const uint16_t *)l->scale + r * (c / MCB_QK), y);
		break;
	case W_GGML:
		mcb_dequantize_row_ggml(l->gtype, (const uint8_t *)l->w + r * l->row_bytes, y, c);
		break;
	case W_QROW:
		mcb_qtensor_row(&l->qt, r, y);
		break;
	}
}

/* One output element: W[r] . activation row t (in the lin's act type), for
 * the forms with a dot kernel (not W_GGML, W_QROW: matvec_piece). */
static float lin_dot(const struct mcb_engine *en, const struct lin *l, int64_t r, int64_t t,
		     int64_t n, const float *x)
{
	const struct mcb_kernels *k = en->k;
	const int64_t c = l->cols;
	/* GGML mode, F32 / F16 weights: llamafile's tinyBLAS where it takes
	 * the product (batches, k % 16 == 0, m % 4 == 0), else ggml's vec_dot
	 * (kernels.h) */
	const int tiny = n >= 2 && c % 16 == 0 && l->rows % 4 == 0;

	switch (l->act) {
	case A_F16:
		return tiny ? k->dot_f16_lanes16(c, (const uint16_t *)l->w + r * c, en->ah + t * c)
			    : k->dot_f16_f16(c, (const uint16_t *)l->w + r * c, en->ah + t * c);
	case A_BF16:
		return k->dot_bf16_bf16(c, (const uint16_t *)l->w + r * c, en->abh + t * c);
	case A_Q8:
		return k->dot_q8_0_q8_0(c, (const int8_t *)l->w + r * c,
					(const uint16_t *)l->scale + r * (c / MCB_QK),
					en->act[A_Q8].q + t * c, en->act[A_Q8].d + t * (c / MCB_QK));
	default:
		break;
	}
	x += t * c;
	switch (l->form) {
	case W_F32:
		if (en->mode == MCB_ENGINE_GGML)
			return tiny ? k->dot_f32_lanes16(c, (const float *)l->w + r * c, x)
				    : k->dot_f32_ggml(c, (const float *)l->w + r * c, x);
		return k->dot_f32(c, (const float *)l->w + r * c, x);
	case W_F16:
		return k->dot_f16_f32(c, (const uint16_t *)l->w + r * c, x);
	case W_BF16:
		return k->dot_bf16_f32(c, (const uint16_t *)l->w + r * c, x);
	case W_I8:
		return k->dot_i8_f32(c, (const int8_t *)l->w + r * c, ((const float *)l->scale)[r],
				     x);
	case W_Q8_0:
		return k->dot_q8_0_f32(c, (const int8_t *)l->w + r * c,
				       (const uint16_t *)l->scale + r * (c / MCB_QK), x);
	case W_GGML:
	case W_QROW:
		break;
	}
	return 0.0f;
}

/* The quantized activations of type a from token t0 on (rows of c values). */
static struct mcb_qact qact_at(const struct mcb_engine *en, enum acttype a, int64_t t0, int64_t c)
{
	const struct actbuf *b = &en->act[a];
	struct mcb_qact q = {b->q + t0 * c, NULL, NULL, NULL, NULL};

	if (b->d)
		q.d = b->d + t0 * (c / MCB_QK);
	if (b->s)
		q.s = b->s + t0 * (c / MCB_QK);
	if (b->dk)
		q.dk = b->dk + t0 * (c / MCB_QKK);
	if (b->bs)
		q.bsums = b->bs + t0 * (c / 16);
	return q;
}

/* rows [r0, r1) of a ggml-block weight against all n tokens in GGML mode:
 * ggml's kernel order; the repacked Q4_K path takes tokens in groups of
 * four (gemm) and the rest one by one (gemv), as llama.cpp's repack
 * forward_mul_mat does within each batch */
static void ggml_rows(const struct mcb_engine *en, const struct lin *l, int64_t r0, int64_t r1,
		      int64_t n, float *y, int64_t ldy)
{
	const int64_t c = l->cols, ng = l->act == A_Q8KR ? n - n % 4 : n;
	const uint8_t *w = (const uint8_t *)l->w + r0 * l->row_bytes;
	struct mcb_qact a;

	if (ng > 0) {
		a = qact_at(en, l->act, 0, c);
		en->k->gemm_ggml(l->order, c, w, l->row_bytes, r1 - r0, &a, ng, y + r0, ldy);
	}
	if (ng < n) {
		a = qact_at(en, l->act, ng, c);
		en->k->gemm_ggml(MCB_GO_Q4_K_GEMV, c, w, l->row_bytes, r1 - r0, &a, n - ng,
				 y + ng * ldy + r0, ldy);
	}
}

#define MAXLIN 3

/* A group of matmuls sharing one input: y_i (n, rows_i) = x (n, cols) W_i^T. */
struct matmul_job {
	struct mcb_engine *en;
	const struct lin *w[MAXLIN];
	float *y[MAXLIN];
	int64_t ldy[MAXLIN]; /* row stride of y_i */
	int64_t start[MAXLIN + 1]; /* row offsets of each W in the concatenated row space */
	int nw;
	const float *x;      /* (n, cols) */
	int64_t n;
	enum acttype act;    /* for prep jobs */
	int64_t cols;
	/* SGEMM jobs */
	const struct lin *tl;
	float *gy;
	int64_t gldy;
};

/* rows [i0, i1) of the concatenated row space of the job's weights, for
 * every token */
static void matvec_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct matmul_job *j = ctx;
	const struct mcb_kernels *k = j->en->k;
	int64_t i, t, r0, r1;
	int w = 0;

	for (i = i0; i < i1; i = j->start[w] + r1) {
		const struct lin *l;

		while (i >= j->start[w + 1])
			w++;
		l = j->w[w];
		r0 = i - j->start[w];
		r1 = (i1 < j->start[w + 1] ? i1 : j->start[w + 1]) - j->start[w];
		if (l->form == W_GGML && l->act != A_F32) {
			ggml_rows(j->en, l, r0, r1, j->n, j->y[w], j->ldy[w]);
			continue;
		}
		if (l->act == A_Q8) {
			const int64_t c = l->cols;

			k->gemm_q8_0_q8_0(c, (const int8_t *)l->w + r0 * c,
					  (const uint16_t *)l->scale + r0 * (c / MCB_QK), r1 - r0,
					  j->en->act[A_Q8].q, j->en->act[A_Q8].d, j->n, j->y[w] + r0,
					  j->ldy[w]);
			continue;
		}
		if (l->form == W_GGML || l->form == W_QROW) {
			/* each row dequantized once into this thread's buffer */
			float *row = j->en->rowbuf + (int64_t)tid * j->en->maxcols;

			for (; r0 < r1; r0++) {
				lin_row(j->en, l, r0, row);
				for (t = 0; t < j->n; t++)
					j->y[w][t * j->ldy[w] + r0] =
						k->dot_f32(l->cols, row, j->x + t * l->cols);
			}
			continue;
		}
		for (; r0 < r1; r0++)
			for (t = 0; t < j->n; t++)
				j->y[w][t * j->ldy[w] + r0] = lin_dot(j->en, l, r0, t, j->n, j->x);
	}
}

/* activation rows [i0, i1) -> the act type's buffer */
static void prep_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct matmul_job *j = ctx;
	const struct mcb_kernels *k = j->en->k;
	const int64_t c = j->cols;
	int64_t t;

	(void)tid;
	for (t = i0; t < i1; t++) {
		const struct actbuf *b = &j->en->act[j->act];

		if (j->act == A_Q8)
			k->quantize_act(c, j->x + t * c, b->q + t * c, b->d + t * (c / MCB_QK));
		else if (j->act == A_Q81)
			k->quantize_act_q8_1(c, j->x + t * c, b->q + t * c, b->d + t * (c / MCB_QK),
					     b->s + t * (c / MCB_QK));
		else if (j->act == A_Q8K || j->act == A_Q8KR)
			/* the repacked path quantizes whole groups of 4 rows with
			 * its 4-row quantizer, the rest with the row quantizer */
			k->quantize_act_q8_k(c, j->x + t * c, b->q + t * c, b->dk + t * (c / MCB_QKK),
					     b->bs + t * (c / 16),
					     j->act == A_Q8KR && t < j->n - j->n % 4);
		else if (j->act == A_F16)
			k->f32_to_f16(c, j->x + t * c, j->en->ah + t * c);
		else if (j->act == A_BF16)
			k->f32_to_bf16(c, j->x + t * c, j->en->abh + t * c);
	}
}

/* rows per SGEMM call for W: fixed by the weight's shape and form alone,
 * never by the thread count */
static int64_t tile_rows(const struct lin *l)
{
	int64_t r = (l->form == W_F32 ? F32_TILE_FLOATS : TILE_FLOATS) / l->cols;

	return r < 1 ? 1 : r;
}

/* tiles [i0, i1) of y (n, rows) = x (n, cols) W^T: one single-threaded
 * SGEMM per tile, on the weight itself (F32) or on its rows dequantized
 * into this thread's tile buffer */
static void gemm_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct matmul_job *j = ctx;
	struct mcb_engine *en = j->en;
	const struct lin *l = j->tl;
	const int64_t cols = l->cols, tr = tile_rows(l);
	int64_t t, r;

	for (t = i0; t < i1; t++) {
		const int64_t r0 = t * tr, nr = l->rows - r0 < tr ? l->rows - r0 : tr;
		const float *w;

		if (l->form == W_F32) {
			w = (const float *)l->w + r0 * cols;
		} else {
			float *buf = en->tile + (int64_t)tid * en->tile_floats;

			for (r = 0; r < nr; r++)
				lin_row(en, l, r0 + r, buf + r * cols);
			w = buf;
		}
		en->blas->sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)j->n, (int)nr,
				(int)cols, 1.0f, j->x, (int)cols, w, (int)cols, 0.0f, j->gy + r0,
				(int)j->gldy);
	}
}

/* pieces: about 16 per thread, at least one item */
static int64_t chunk_for(const struct mcb_engine *en, int64_t n)
{
	int64_t c = n / ((int64_t)en->threads * 16);

	return c < 1 ? 1 : c;
}

/* y_i (n, rows_i) = x (n, cols) W_i^T for the nw weights (same cols), each
 * y_i with row stride ldy_i. */
/* does a batch of n through W go through SGEMM?  (F32 and tiled weights,
 * except F32 in GGML mode: ggml's own kernels there) */
static int sgemm(const struct mcb_engine *en, const struct lin *l, int64_t n)
{
	if (n == 1)
		return 0;
	if (l->form == W_F32)
		return en->mode != MCB_ENGINE_GGML;
	return l->tiled;
}

/*
 * W8A8 (SmoothQuant; vLLM's static per-tensor int8 activations,
 * csrc/quantization/compressed_tensors/int8_quant_kernels.cu): each input
 * value rounded to the int8 grid of the weight's activation scale,
 * clamp(rint(x / s), -128, 127) * s (round half to even), which is what the
 * int8 GEMM then multiplies exactly.
 */
static void quantize_inputs(float *y, const float *x, int64_t n, float s)
{
	int64_t i;

	for (i = 0; i < n; i++) {
		float q = nearbyintf(x[i] / s);

		y[i] = (q > 127.0f ? 127.0f : q < -128.0f ? -128.0f : q) * s;
	}
}

static void matmul_f(struct mcb_engine *en, int nw, const struct lin *const *ws,
		     float *const *ys, const int64_t *ldy, const float *x, int64_t n);

static void matmul(struct mcb_engine *en, int nw, const struct lin *const *ws, float *const *ys,
		   const int64_t *ldy, const float *x, int64_t n)
{
	int i, same = 1;

	for (i = 1; i < nw; i++)
		same &= ws[i]->ascale == ws[0]->ascale;
	if (!same) { /* weights sharing x with different activation scales: one by one */
		for (i = 0; i < nw; i++)
			matmul(en, 1, ws + i, ys + i, ldy + i, x, n);
		return;
	}
	if (ws[0]->ascale > 0.0f) {
		quantize_inputs(en->xq, x, n * ws[0]->cols, ws[0]->ascale);
		x = en->xq;
	}
	matmul_f(en, nw, ws, ys, ldy, x, n);
}

static void matmul_f(struct mcb_engine *en, int nw, const struct lin *const *ws,
		     float *const *ys, const int64_t *ldy, const float *x, int64_t n)
{
	struct matmul_job j;
	const int64_t cols = ws[0]->cols;
	int i, need[A_COUNT] = {0};

	memset(&j, 0, sizeof(j));
	j.en = en;
	j.x = x;
	j.n = n;
	j.cols = cols;
	/* activation conversions (GGML mode), once per type */
	for (i = 0; i < nw; i++)
		if (ws[i]->act != A_F32 && !need[ws[i]->act]) {
			need[ws[i]->act] = 1;
			j.act = ws[i]->act;
			pool_run(en->pool, prep_piece, &j,  n, n * cols >= 65536 ? 1 : n);
		}
	/* batched F32 and tiled weights through SGEMM, tile by tile */
	for (i = 0; i < nw; i++) {
		const struct lin *l = ws[i];
		int64_t ntiles;

		if (!sgemm(en, l, n))
			continue;
		j.tl = l;
		j.gy = ys[i];
		j.gldy = ldy[i];
		ntiles = (l->rows + tile_rows(l) - 1) / tile_rows(l);
		pool_run(en->pool, gemm_piece, &j, ntiles, 1);
	}
	/* the rest row by row with the dot kernels, all weights in one job */
	j.start[0] = 0;
	for (i = 0; i < nw; i++) {
		const struct lin *l = ws[i];

		if (sgemm(en, l, n))
			continue;
		j.w[j.nw] = l;
		j.y[j.nw] = ys[i];
		j.ldy[j.nw] = ldy[i];
		j.start[j.nw + 1] = j.start[j.nw] + l->rows;
		j.nw++;
	}
	if (j.nw) {
		int64_t total = j.start[j.nw];

		pool_run(en->pool, matvec_piece, &j, total, chunk_for(en, total));
	}
}

struct row_job {
	struct mcb_engine *en;
	const float *x;
	float *y;
	const float *w;
	int64_t cols;
	int layer;
	int64_t pos0;
};

/* y = rmsnorm(x) * w, ggml's order of operations */
static void rmsnorm_row(const float *x, const float *w, float *y, int64_t n, float eps)
{
	double ss = 0.0;
	float mean, scale;
	int64_t i;

	for (i = 0; i < n; i++)
		ss += (double)(x[i] * x[i]);
	mean = (float)(ss / (double)n);
	scale = 1.0f / sqrtf(mean + eps);
	for (i = 0; i < n; i++)
		y[i] = (x[i] * scale) * w[i];
}

static void rmsnorm_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct row_job *j = ctx;
	int64_t t;

	(void)tid;
	for (t = i0; t < i1; t++)
		rmsnorm_row(j->x + t * j->cols, j->w, j->y + t * j->cols, j->cols,
			    (float)j->en->cfg.norm_eps);
}

static void rmsnorm(struct mcb_engine *en, const float *x, const float *w, float *y, int64_t n)
{
	struct row_job j = {.en = en, .x = x, .w = w, .y = y, .cols = en->cfg.dim};

	pool_run(en->pool, rmsnorm_piece, &j, n, en->cfg.dim >= 4096 ? 1 : n);
}

/* cos and sin of every (token, pair) of the batch */
static void rope_tables(struct mcb_engine *en, int64_t pos0, int64_t n)
{
	const int64_t hd = en->cfg.head_dim, hd2 = hd / 2;
	int64_t t, i;

	for (t = 0; t < n; t++) {
		float *cs = en->rope_cs + t * hd2 * 2;
		int64_t p = pos0 + t;

		if (en->mode == MCB_ENGINE_GGML) {
			/* ggml rope_f32 / ggml_rope_cache_init: theta_scale = powf(base,
			 * -2/n_dims), theta = p * theta_scale^i by repeated float
			 * multiplication, cosf/sinf */
			float theta_scale = powf((float)en->cfg.rope_theta, -2.0f / (float)hd);
			float theta = (float)p;

			for (i = 0; i < hd2; i++) {
				cs[2 * i] = cosf(theta);
				cs[2 * i + 1] = sinf(theta);
				theta *= theta_scale;
			}
		} else {
			for (i = 0; i < hd2; i++) {
				double ang = (double)p * pow(en->cfg.rope_theta,
							     -2.0 * (double)i / (double)hd);

				cs[2 * i] = (float)cos(ang);
				cs[2 * i + 1] = (float)sin(ang);
			}
		}
	}
}

/* rotate pairs (2i, 2i+1) of each head of v (nheads * hd,); ggml: with the
 * contraction llama.cpp's build applies to ggml's rotate_pairs (x0 cos -
 * x1 sin, x0 sin + x1 cos as fma(x0, cos, -(x1 sin)), fma(x0, sin, x1 cos)) */
static void rope_row(float *v, int64_t nheads, int64_t hd, const float *cs, int ggml)
{
	int64_t h, i;

	for (h = 0; h < nheads; h++) {
		float *u = v + h * hd;

		for (i = 0; i < hd / 2; i++) {
			float c = cs[2 * i], s = cs[2 * i + 1];
			float a = u[2 * i], b = u[2 * i + 1];

			if (ggml) {
				u[2 * i] = fmaf(a, c, -(b * s));
				u[2 * i + 1] = fmaf(a, s, b * c);
			} else {
				u[2 * i] = a * c - b * s;
				u[2 * i + 1] = a * s + b * c;
			}
		}
	}
}

struct attn_job {
	struct mcb_engine *en;
	int64_t layer, pos0, n;
};

/*
 * One (token, head) of the attention in GGML mode, ggml's graph on llama.cpp's
 * KV cache (no flash attention) with ggml's float orders (kernels.h):
 *   kq = ggml_vec_dot_f32(q, k_p) (q is a permuted view: no tinyBLAS);
 *   soft_max_ext: s = kq * scale, masked positions -inf, exps and sum in
 *   chunks of 16 over the padded KV length (masked lanes give exp 0),
 *   P = e * (float)(1 / sum);
 *   kqv: a batch of >= 2 tokens goes through llamafile's tinyBLAS when
 *   head_dim % 4 == 0 (per output 16 lanes, lane l an fma chain over the
 *   positions p = l mod 16, then the 16-lane sum), else (a single token)
 *   through ggml_vec_dot_f32 over the padded KV length (positions past the
 *   last are 0 in both).
 */
static void attn_ggml(struct mcb_engine *en, const float *q, const float *kc, const float *vc,
		      int64_t last, int64_t n, float *out, float *s)
{
	const struct mcb_kernels *k = en->k;
	const int64_t hd = en->cfg.head_dim, kvd = en->kv_dim;
	const int64_t len = last + 1, len16 = (len + 15) / 16 * 16, nkv = kv_padded(len);
	const float scale = 1.0f / sqrtf((float)hd);
	float *col = s + kv_padded(en->ctx_len), *acc = col + kv_padded(en->ctx_len);
	float mx = -INFINITY, inv;
	int64_t p, i, l;

	for (p = 0; p < len; p++) {
		s[p] = k->dot_f32_ggml(hd, kc + p * kvd, q) * scale;
		if (s[p] > mx)
			mx = s[p];
	}
	for (; p < len16; p++)
		s[p] = -INFINITY;
	inv = (float)(1.0 / k->softmax_exp_ggml(len16, s, mx));
	for (p = 0; p < len; p++)
		s[p] *= inv;
	if (n >= 2 && hd % 4 == 0) {
		memset(acc, 0, (size_t)(16 * hd) * sizeof(float));
		for (p = 0; p < len; p++)
			k->fma_f32(hd, s[p], vc + p * kvd, acc + (p % 16) * hd);
		for (i = 0; i < hd; i++) {
			float lanes[16];

			for (l = 0; l < 16; l++)
				lanes[l] = acc[l * hd + i];
			out[i] = mcb_reduce16_ggml(lanes);
		}
	} else {
		memset(s + len, 0, (size_t)(nkv - len) * sizeof(float));
		memset(col + len, 0, (size_t)(nkv - len) * sizeof(float));
		for (i = 0; i < hd; i++) {
			for (p = 0; p < len; p++)
				col[p] = vc[p * kvd + i];
			out[i] = k->dot_f32_ggml(nkv, col, s);
		}
	}
}

/* items: (token t, head h) pairs, t * n_heads + h */
static void attn_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct attn_job *j = ctx;
	struct mcb_engine *en = j->en;
	const struct mcb_llama_config *c = &en->cfg;
	const int64_t hd = c->head_dim, kvd = en->kv_dim, group = c->n_heads / c->n_kv_heads;
	const float *kc = en->kcache + j->layer * en->ctx_len * kvd;
	const float *vc = en->vcache + j->layer * en->ctx_len * kvd;
	const float scale = 1.0f / sqrtf((float)hd);
	float *s = en->scores + (int64_t)tid * en->sstride;
	int64_t it, p;

	for (it = i0; it < i1; it++) {
		const int64_t t = it / c->n_heads, h = it % c->n_heads, g = h / group;
		const int64_t last = j->pos0 + t; /* attends to positions 0..last */
		const float *q = en->q + t * en->q_dim + h * hd;
		float *out = en->att + t * en->q_dim + h * hd;
		float mx = -INFINITY, inv;
		double sum = 0.0;

		if (en->mode == MCB_ENGINE_GGML) {
			attn_ggml(en, q, kc + g * hd, vc + g * hd, last, j->n, out, s);
			continue;
		}
		for (p = 0; p <= last; p++) {
			s[p] = en->k->dot_f32(hd, q, kc + p * kvd + g * hd) * scale;
			if (s[p] > mx)
				mx = s[p];
		}
		for (p = 0; p <= last; p++) {
			s[p] = expf(s[p] - mx);
			sum += (double)s[p];
		}
		inv = (float)(1.0 / sum);
		memset(out, 0, (size_t)hd * sizeof(float));
		for (p = 0; p <= last; p++)
			en->k->axpy_f32(hd, s[p] * inv, vc + p * kvd + g * hd, out);
	}
}

static void capture(struct mcb_engine *en, int layer, enum mcb_capture_point pt, const float *x,
		    int64_t n, int64_t cols)
{
	if (en->cap)
		en->cap(en->cap_ctx, layer, pt, x, n, cols);
}

/* elementwise ops over count floats: a += b, or a = silu(a) * b */
struct ew_job {
	float *a;
	const float *b;
	int swiglu;
};

/* GGML mode's swiglu: rows of hidden_dim [i0, i1), ggml_vec_swiglu_f32 */
struct swiglu_job {
	const struct mcb_kernels *k;
	float *a;
	const float *b;
	int64_t cols;
};

static void swiglu_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct swiglu_job *j = ctx;
	int64_t t;

	(void)tid;
	for (t = i0; t < i1; t++)
		j->k->swiglu_ggml(j->cols, j->a + t * j->cols, j->b + t * j->cols);
}

static void ew_piece(void *ctx, int64_t i0, int64_t i1, int tid)
{
	struct ew_job *j = ctx;
	int64_t i;

	(void)tid;
	if (j->swiglu) {
		for (i = i0; i < i1; i++) /* silu(g) = g / (1 + e^-g), as ggml */
			j->a[i] = j->a[i] / (1.0f + expf(-j->a[i])) * j->b[i];
	} else {
		for (i = i0; i < i1; i++)
			j->a[i] += j->b[i];
	}
}

static void elementwise(struct mcb_engine *en, float *a, const float *b, int64_t count,
			int swiglu)
{
	struct ew_job j = {a, b, swiglu};

	pool_run(en->pool, ew_piece, &j, count, 16384);
}

/* One batch of n <= maxb tokens (validated) from en->pos. */
static void forward(struct mcb_engine *en, const int32_t *tokens, int64_t n, float *logits,
		    float *last)
{
	const struct mcb_llama_config *c = &en->cfg;
	const int64_t d = c->dim, kvd = en->kv_dim, hdim = c->hidden_dim, pos0 = en->pos;
	const int64_t qd = en->q_dim, hd2 = c->head_dim / 2;
	int64_t l, t;

	for (t = 0; t < n; t++)
		lin_row(en, &en->embd, tokens[t], en->x + t * d);
	rope_tables(en, pos0, n);
	for (l = 0; l < c->n_layers; l++) {
		const struct layer *L = &en->layers[l];
		float *kc = en->kcache + (l * en->ctx_len + pos0) * kvd; /* (n, kvd) */
		float *vc = en->vcache + (l * en->ctx_len + pos0) * kvd;

		rmsnorm(en, en->x, L->attn_norm, en->xb, n);
		capture(en, (int)l, MCB_CAPTURE_ATTN_IN, en->xb, n, d);
		{
			const struct lin *ws[3] = {&L->q, &L->k, &L->v};
			float *ys[3] = {en->q, kc, vc};
			const int64_t ld[3] = {qd, kvd, kvd};

			matmul(en, 3, ws, ys, ld, en->xb, n);
		}
		for (t = 0; t < n; t++) {
			rope_row(en->q + t * qd, c->n_heads, c->head_dim, en->rope_cs + t * hd2 * 2,
				 en->mode == MCB_ENGINE_GGML);
			rope_row(kc + t * kvd, c->n_kv_heads, c->head_dim, en->rope_cs + t * hd2 * 2,
				 en->mode == MCB_ENGINE_GGML);
		}
		{
			struct attn_job j = {.en = en, .layer = l, .pos0 = pos0, .n = n};
			int64_t items = n * c->n_heads;

			pool_run(en->pool, attn_piece, &j, items, chunk_for(en, items));
		}
		capture(en, (int)l, MCB_CAPTURE_ATTN_OUT, en->att, n, qd);
		{
			const struct lin *ws[1] = {&L->o};
			float *ys[1] = {en->tmp};
			const int64_t ld[1] = {d};

			matmul(en, 1, ws, ys, ld, en->att, n);
			elementwise(en, en->x, en->tmp, n * d, 0);
		}
		rmsnorm(en, en->x, L->ffn_norm, en->xb, n);
		capture(en, (int)l, MCB_CAPTURE_FFN_IN, en->xb, n, d);
		{
			const struct lin *ws[2] = {&L->gate, &L->up};
			float *ys[2] = {en->hb, en->hb2};
			const int64_t ld[2] = {hdim, hdim};

			matmul(en, 2, ws, ys, ld, en->xb, n);
			if (en->mode == MCB_ENGINE_GGML) {
				struct swiglu_job sj = {en->k, en->hb, en->hb2, hdim};

				pool_run(en->pool, swiglu_piece, &sj, n, 1);
			} else {
				elementwise(en, en->hb, en->hb2, n * hdim, 1);
			}
		}
		capture(en, (int)l, MCB_CAPTURE_FFN_DOWN, en->hb, n, hdim);
		{
			const struct lin *ws[1] = {&L->down};
			float *ys[1] = {en->tmp};
			const int64_t ld[1] = {d};

			matmul(en, 1, ws, ys, ld, en->hb, n);
			elementwise(en, en->x, en->tmp, n * d, 0);
		}
	}
	rmsnorm(en, en->x, en->out_norm, en->xb, n);
	capture(en, -1, MCB_CAPTURE_OUTPUT, en->xb, n, d);
	{
		const struct lin *ws[1] = {&en->out};
		const int64_t ld[1] = {c->vocab_size};

		if (logits) {
			float *ys[1] = {logits};

			matmul(en, 1, ws, ys, ld, en->xb, n);
			if (last)
				memcpy(last, logits + (n - 1) * c->vocab_size,
				       (size_t)c->vocab_size * sizeof(float));
		} else if (last) {
			float *ys[1] = {last};

			matmul(en, 1, ws, ys, ld, en->xb + (n - 1) * d, 1);
		}
	}
	en->pos += n;
}

int mcb_engine_eval(struct mcb_engine *en, const int32_t *tokens, int64_t n, float *logits,
		    float *last, struct mcb_errctx *e)
{
	const int64_t vocab = en->cfg.vocab_size;
	int64_t i, off, nb;

	if (n < 0 || (n > 0 && !tokens))
		return mcb_errf(e, MCB_EINVAL, "engine: eval of %lld tokens", (long long)n);
	if (n > en->ctx_len - en->pos)
		return mcb_errf(e, MCB_ERANGE,
				"engine: KV cache overflow: %lld positions held + %lld new > "
				"context length %lld",
				(long long)en->pos, (long long)n, (long long)en->ctx_len);
	for (i = 0; i < n; i++)
		if (tokens[i] < 0 || tokens[i] >= vocab)
			return mcb_errf(e, MCB_ERANGE,
					"engine: token id %ld at index %lld is outside the vocabulary "
					"(0..%lld)",
					(long)tokens[i], (long long)i, (long long)(vocab - 1));
	for (off = 0; off < n; off += nb) {
		nb = n - off < en->maxb ? n - off : en->maxb;
		forward(en, tokens + off, nb, logits ? logits + off * vocab : NULL,
			off + nb == n ? last : NULL);
	}
	return 0;
}

/* ---- loading models ---- */

int mcb_engine_load_model(const char *path, struct mcb_model *m, struct mcb_errctx *e)
{
	switch (mcb_model_detect(path, e)) {
	case MCB_FMT_LLAMA2C:
		return mcb_llama2c_read(path, m, e);
	case MCB_FMT_SAFETENSORS:
		return mcb_model_load_ir(path, m, e);
	case MCB_FMT_GGUF:
		return mcb_gguf_read_model(path, m, e);
	default:
		return e ? e->code : MCB_EFORMAT;
	}
}

/* ---- sampling ---- */

void mcb_sampler_init(struct mcb_sampler *sp, uint64_t seed, float temperature, int top_k)
{
	mcb_rng_seed(&sp->rng, seed);
	sp->temperature = temperature;
	sp->top_k = top_k;
}

/* NaN ranks below every number */
static float rank_value(float v)
{
	return isnan(v) ? -INFINITY : v;
}

/* does candidate (va, a) rank above (vb, b)?  higher value, then lower id */
static int above(float va, int32_t a, float vb, int32_t b)
{
	return va > vb || (va == vb && a < b);
}

struct cand {
	float v;
	int32_t id;
};

/* sift the min-heap h (n) down from i: the root is the lowest-ranked */
static void heap_down(struct cand *h, int64_t n, int64_t i)
{
	for (;;) {
		int64_t l = 2 * i + 1, r = l + 1, m = i;
		struct cand t;

		if (l < n && above(h[m].v, h[m].id, h[l].v, h[l].id))
			m = l;
		if (r < n && above(h[m].v, h[m].id, h[r].v, h[r].id))
			m = r;
		if (m == i)
			return;
		t = h[i], h[i] = h[m], h[m] = t;
		i = m;
	}
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return above(x->v, x->id, y->v, y->id) ? -1 : above(y->v, y->id, x->v, x->id) ? 1 : 0;
}

int32_t mcb_sampler_next(struct mcb_sampler *sp, const float *logits, int64_t vocab)
{
	struct cand *c;
	int64_t i, n;
	int32_t best = 0, pick;
	double sum = 0.0, u, acc;
	float mx;

	if (vocab <= 0)
		return 0;
	for (i = 1; i < vocab; i++)
		if (above(rank_value(logits[i]), (int32_t)i, rank_value(logits[best]), best))
			best = (int32_t)i;
	if (!(sp->temperature > 0.0f) || vocab == 1)
		return best;
	mx = rank_value(logits[best]);
	if (!isfinite(mx))
		return best;
	/* candidates: the top_k by logit (ties to the lower id), else all, in
	 * id order; probabilities exp((l - max) / T), summed in double */
	n = sp->top_k > 0 && sp->top_k < vocab ? sp->top_k : vocab;
	c = mcb_xmalloc((size_t)n * sizeof(*c));
	if (n == vocab) {
		for (i = 0; i < vocab; i++)
			c[i] = (struct cand){rank_value(logits[i]), (int32_t)i};
	} else {
		for (i = 0; i < n; i++)
			c[i] = (struct cand){rank_value(logits[i]), (int32_t)i};
		for (i = n / 2; i-- > 0;)
			heap_down(c, n, i);
		for (i = n; i < vocab; i++) {
			struct cand x = {rank_value(logits[i]), (int32_t)i};

			if (above(x.v, x.id, c[0].v, c[0].id)) {
				c[0] = x;
				heap_down(c, n, 0);
			}
		}
		qsort(c, (size_t)n, sizeof(*c), cmp_cand);
	}
	for (i = 0; i < n; i++)
		sum += exp(((double)c[i].v - (double)mx) / (double)sp->temperature);
	u = mcb_rng_double(&sp->rng) * sum;
	acc = 0.0;
	pick = best;
	for (i = 0; i < n; i++) {
		double p = exp(((double)c[i].v - (double)mx) / (double)sp->temperature);

		if (p > 0.0)
			pick = c[i].id; /* if u * sum rounded up to sum: the last possible one */
		acc += p;
		if (u < acc)
			break;
	}
	free(c);
	return pick;
}
