/*
 * bench_engine: prompt and decode throughput of mcbuild's engine on a
 * Llama-shaped synthetic model (bench/engine.sh compares it with llama.cpp
 * on the same files).
 *
 *   bench_engine gen DIR [--layers N] [--vocab V] [--kv K]
 *       Write DIR/llama-<shape>-f32.gguf and DIR/llama-<shape>-q8_0.gguf
 *       with mcbuild's GGUF writer, unless both exist (they are a cache:
 *       written under a temporary name and renamed), and print their paths.
 *   bench_engine run MODEL [--threads N] [--prompt P] [--gen G] [--reps R]
 *                          [--mode ggml|exact] [--ctx C]
 *       Load MODEL (any format the engine reads), touch every weight once
 *       (one decode step, so that page faults are not timed), then R times:
 *       reset, one eval of a P-token prompt (logits of the last position
 *       only, as llama.cpp computes them), then G decode steps of one token
 *       each (logits every step).  Prints the best of the R repetitions and a
 *       last line "RESULT prompt_tps=X decode_tps=Y".
 *
 * The model: dim 2048, hidden 5632, 32 heads of 64, 8 kv heads (grouped-query
 * attention), 16 layers, vocabulary 32000 (a real Llama-2-sized classifier:
 * 65.5M of the 787M parameters; tied embeddings), RMSNorm eps 1e-5, RoPE
 * theta 10000, context 2048.  Weights: fixed-seed pseudo-random, a sum of
 * two uniforms (triangular) with standard deviation 0.02; norms 1.  F32 file
 * 3.15 GB, Q8_0 file 0.84 GB (every 2-D weight Q8_0, norms F32, as
 * llama.cpp's Q8_0 files), with a placeholder SentencePiece-style
 * vocabulary so that llama.cpp loads them.  Generating both takes about a
 * minute and 4 GB of memory.
 *
 * Defaults: threads 2, prompt 64, gen 32, reps 3, mode ggml, ctx 512.
 * Exit status 0; 1 on errors; 2 on bad usage.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/model.h"
#include "mcb/quant.h"

struct shape {
	int64_t dim, hidden, layers, heads, kv, vocab, ctx;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_engine gen DIR [--layers N] [--vocab V] [--kv K]\n"
		"       bench_engine run MODEL [--threads N] [--prompt P] [--gen G] [--reps R]\n"
		"                              [--mode ggml|exact] [--ctx C]\n");
	exit(2);
}

/* ---- the synthetic model ---- */

struct tensor {
	char name[64];
	int ndim;
	int64_t rows, cols; /* rows 1 for 1-D */
	float *data;        /* inside the big buffer */
};

/* fill w (n,) with std-0.02 triangular noise from seed */
static void fill(float *w, int64_t n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
	const float a = 0.02f * sqrtf(6.0f) / 4294967296.0f; /* (u1 + u2 - 1) * sqrt(6) * std */
	int64_t i;

	for (i = 0; i < n; i++) {
		uint64_t x;

		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		x = s;
		w[i] = ((float)(x >> 32) + (float)(x & 0xffffffffu) - 4294967296.0f) * a;
	}
}

static const char *const blk_names[9] = {"attn_norm", "attn_q",   "attn_k",   "attn_v",
					 "attn_output", "ffn_norm", "ffn_gate", "ffn_down",
					 "ffn_up"};

/* the tensors in llama.cpp's converter order, with their shapes */
static int64_t plan(const struct shape *s, struct tensor *t)
{
	int64_t n = 0, l;
	int j;

	snprintf(t[n].name, sizeof(t[n].name), "token_embd.weight");
	t[n].ndim = 2, t[n].rows = s->vocab, t[n].cols = s->dim, n++;
	for (l = 0; l < s->layers; l++)
		for (j = 0; j < 9; j++) {
			const int64_t kvd = s->dim / s->heads * s->kv;
			const int64_t rows[9] = {1,	   s->dim,    kvd,	   kvd,	  s->dim,
						 1,	   s->hidden, s->dim, s->hidden};
			const int64_t cols[9] = {s->dim, s->dim,    s->dim, s->dim,   s->dim,
						 s->dim, s->dim,    s->hidden, s->dim};

			snprintf(t[n].name, sizeof(t[n].name), "blk.%lld.%s.weight", (long long)l,
				 blk_names[j]);
			t[n].ndim = rows[j] == 1 ? 1 : 2;
			t[n].rows = rows[j], t[n].cols = cols[j];
			n++;
		}
	snprintf(t[n].name, sizeof(t[n].name), "output_norm.weight");
	t[n].ndim = 1, t[n].rows = 1, t[n].cols = s->dim, n++;
	return n;
}

/* keys and the placeholder vocabulary (as runtime/step_export.c writes them) */
static int set_keys(struct mcb_gguf_writer *w, const struct shape *s, int q8,
		    struct mcb_errctx *e)
{
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_str(w, "general.name", "mcbuild bench synthetic llama");
	mcb_gguf_set_u32(w, "general.file_type", q8 ? 7 : 0);
	if (q8)
		mcb_gguf_set_u32(w, "general.quantization_version", 2);
	mcb_gguf_set_u32(w, "llama.context_length", (uint32_t)s->ctx);
	mcb_gguf_set_u32(w, "llama.embedding_length", (uint32_t)s->dim);
	mcb_gguf_set_u32(w, "llama.block_count", (uint32_t)s->layers);
	mcb_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)s->hidden);
	mcb_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)(s->dim / s->heads));
	mcb_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)s->heads);
	mcb_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)s->kv);
	mcb_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	mcb_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f);
	mcb_gguf_set_u32(w, "llama.vocab_size", (uint32_t)s->vocab);
	return mcb_gguf_set_placeholder_vocab(w, s->vocab, e);
}

/* write path via path.tmp, F32 (q8 0) or Q8_0 2-D weights (q8 1) */
static int write_model(const char *path, const struct shape *s, struct tensor *t, int64_t nt,
		       int q8)
{
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	struct mcb_block_q8_0 **blocks = calloc((size_t)nt, sizeof(*blocks));
	struct mcb_errctx e;
	char tmp[4200];
	int64_t i, r;
	int rc = 0;

	if (!blocks) {
		fprintf(stderr, "bench_engine: out of memory\n");
		return 1;
	}
	if (set_keys(w, s, q8, &e)) {
		fprintf(stderr, "bench_engine: %s\n", e.msg);
		return 1;
	}
	for (i = 0; i < nt && !rc; i++) {
		uint64_t ne[2] = {(uint64_t)t[i].cols, (uint64_t)t[i].rows};
		uint64_t n = (uint64_t)(t[i].rows * t[i].cols);

		if (q8 && t[i].ndim == 2) {
			const int64_t nb = t[i].cols / MCB_QK8_0;

			blocks[i] = malloc((size_t)(t[i].rows * nb) * sizeof(**blocks));
			if (!blocks[i]) {
				fprintf(stderr, "bench_engine: out of memory quantizing %s\n", t[i].name);
				rc = 1;
				break;
			}
			for (r = 0; r < t[i].rows; r++)
				mcb_quantize_row_q8_0(t[i].data + r * t[i].cols, blocks[i] + r * nb,
						      t[i].cols);
			rc = mcb_gguf_add_tensor(w, t[i].name, 8, 2, ne, blocks[i],
						 (uint64_t)(t[i].rows * nb) * sizeof(**blocks), &e);
		} else {
			rc = mcb_gguf_add_tensor(w, t[i].name, 0, (uint32_t)t[i].ndim, ne, t[i].data,
						 n * sizeof(float), &e);
		}
		if (rc)
			fprintf(stderr, "bench_engine: %s\n", e.msg);
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!rc && (rc = mcb_gguf_write(w, tmp, &e)))
		fprintf(stderr, "bench_engine: %s\n", e.msg);
	if (!rc && rename(tmp, path)) {
		perror(path);
		rc = 1;
	}
	for (i = 0; i < nt; i++)
		free(blocks[i]);
	free(blocks);
	mcb_gguf_writer_free(w);
	return rc ? 1 : 0;
}

static int cmd_gen(int argc, char **argv)
{
	struct shape s = {2048, 5632, 16, 32, 8, 32000, 2048};
	char f32[4200], q8[4200], base[4096];
	struct tensor *t;
	int64_t nt, i, total = 0;
	struct stat st;
	float *buf;
	double t0;
	int a, rc;

	if (argc < 3)
		usage();
	for (a = 3; a < argc; a += 2) {
		if (a + 1 >= argc)
			usage();
		if (!strcmp(argv[a], "--layers"))
			s.layers = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--vocab"))
			s.vocab = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--kv"))
			s.kv = atoll(argv[a + 1]);
		else
			usage();
	}
	if (s.layers < 1 || s.layers > 1000 || s.vocab < 259 || s.kv < 1 || s.heads % s.kv)
		usage();
	snprintf(base, sizeof(base), "%s/llama-d%lld-h%lld-l%lld-kv%lld-v%lld", argv[2],
		 (long long)s.dim, (long long)s.hidden, (long long)s.layers, (long long)s.kv,
		 (long long)s.vocab);
	snprintf(f32, sizeof(f32), "%s-f32.gguf", base);
	snprintf(q8, sizeof(q8), "%s-q8_0.gguf", base);
	if (!stat(f32, &st) && !stat(q8, &st)) {
		printf("%s\n%s\n", f32, q8);
		return 0;
	}
	t = calloc((size_t)(2 + 9 * s.layers), sizeof(*t));
	nt = plan(&s, t);
	for (i = 0; i < nt; i++)
		total += t[i].rows * t[i].cols;
	fprintf(stderr, "bench_engine: generating %lld parameters (%.2f GB as F32)\n",
		(long long)total, 4e-9 * (double)total);
	buf = malloc((size_t)total * sizeof(float));
	if (!buf) {
		fprintf(stderr, "bench_engine: cannot allocate %.2f GB\n", 4e-9 * (double)total);
		return 1;
	}
	t0 = now();
	for (total = 0, i = 0; i < nt; i++) {
		int64_t n = t[i].rows * t[i].cols, k;

		t[i].data = buf + total;
		total += n;
		if (t[i].ndim == 1)
			for (k = 0; k < n; k++)
				t[i].data[k] = 1.0f;
		else
			fill(t[i].data, n, (uint64_t)i + 1);
	}
	fprintf(stderr, "bench_engine: weights generated in %.1f s\n", now() - t0);
	t0 = now();
	rc = write_model(f32, &s, t, nt, 0);
	if (!rc)
		fprintf(stderr, "bench_engine: wrote %s in %.1f s\n", f32, now() - t0);
	t0 = now();
	if (!rc && !(rc = write_model(q8, &s, t, nt, 1)))
		fprintf(stderr, "bench_engine: wrote %s in %.1f s\n", q8, now() - t0);
	free(buf);
	free(t);
	if (!rc)
		printf("%s\n%s\n", f32, q8);
	return rc;
}

/* ---- the measurement ---- */

static int32_t argmax(const float *x, int64_t n)
{
	int64_t i, b = 0;

	for (i = 1; i < n; i++)
		if (x[i] > x[b])
			b = i;
	return (int32_t)b;
}

static int cmd_run(int argc, char **argv)
{
	struct mcb_engine_opts o = {.threads = 2, .mode = MCB_ENGINE_GGML, .ctx_len = 512};
	int64_t prompt = 64, gen = 32, reps = 3, i, r, v;
	double best_p = 1e30, best_d = 1e30, t0, t1, t2;
	struct mcb_engine *en;
	struct mcb_errctx e;
	struct mcb_model m;
	int32_t *ids, tok;
	uint32_t x = 12345;
	float *last;
	int a;

	if (argc < 3)
		usage();
	for (a = 3; a < argc; a += 2) {
		if (a + 1 >= argc)
			usage();
		if (!strcmp(argv[a], "--threads"))
			o.threads = atoi(argv[a + 1]);
		else if (!strcmp(argv[a], "--prompt"))
			prompt = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--gen"))
			gen = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--reps"))
			reps = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--ctx"))
			o.ctx_len = atoll(argv[a + 1]);
		else if (!strcmp(argv[a], "--mode") && !strcmp(argv[a + 1], "ggml"))
			o.mode = MCB_ENGINE_GGML;
		else if (!strcmp(argv[a], "--mode") && !strcmp(argv[a + 1], "exact"))
			o.mode = MCB_ENGINE_EXACT;
		else
			usage();
	}
	if (o.threads < 1 || prompt < 1 || gen < 1 || reps < 1 || prompt + gen > o.ctx_len)
		usage();
	mcb_model_init(&m);
	t0 = now();
	if (mcb_engine_load_model(argv[2], &m, &e) || mcb_engine_new(&m, &o, &en, &e)) {
		fprintf(stderr, "bench_engine: %s\n", e.msg);
		return 1;
	}
	v = mcb_engine_vocab(en);
	ids = malloc((size_t)prompt * sizeof(*ids));
	last = malloc((size_t)v * sizeof(*last));
	ids[0] = 1;
	for (i = 1; i < prompt; i++) {
		x = x * 1103515245u + 12345u;
		ids[i] = (int32_t)(3 + (x >> 8) % (uint32_t)(v - 3));
	}
	/* touch every weight once */
	if (mcb_engine_eval(en, ids, 1, NULL, last, &e)) {
		fprintf(stderr, "bench_engine: %s\n", e.msg);
		return 1;
	}
	printf("engine: %s: loaded and warmed up in %.1f s; %.3f GB of weights per token, "
	       "threads %d, %s mode\n", argv[2], now() - t0,
	       1e-9 * (double)mcb_engine_weight_bytes(en), o.threads,
	       o.mode == MCB_ENGINE_GGML ? "ggml" : "exact");
	for (r = 0; r < reps; r++) {
		mcb_engine_reset(en);
		t0 = now();
		if (mcb_engine_eval(en, ids, prompt, NULL, last, &e))
			goto fail;
		t1 = now();
		tok = argmax(last, v);
		for (i = 0; i < gen; i++) {
			if (mcb_engine_eval(en, &tok, 1, NULL, last, &e))
				goto fail;
			tok = argmax(last, v);
		}
		t2 = now();
		printf("engine: rep %lld: prompt %lld tokens %.3f s (%.2f tok/s), decode %lld tokens "
		       "%.3f s (%.2f tok/s)\n", (long long)r + 1, (long long)prompt, t1 - t0,
		       (double)prompt / (t1 - t0), (long long)gen, t2 - t1, (double)gen / (t2 - t1));
		if (t1 - t0 < best_p)
			best_p = t1 - t0;
		if (t2 - t1 < best_d)
			best_d = t2 - t1;
	}
	printf("engine: best: prompt %.2f tok/s, decode %.2f tok/s (%.1f GB/s of weights)\n",
	       (double)prompt / best_p, (double)gen / best_d,
	       1e-9 * (double)mcb_engine_weight_bytes(en) * (double)gen / best_d);
	printf("RESULT prompt_tps=%.3f decode_tps=%.3f\n", (double)prompt / best_p,
	       (double)gen / best_d);
	mcb_engine_free(en);
	mcb_model_release(&m);
	free(ids), free(last);
	return 0;
fail:
	fprintf(stderr, "bench_engine: %s\n", e.msg);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "gen"))
		return cmd_gen(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return cmd_run(argc, argv);
	usage();
	return 2;
}
