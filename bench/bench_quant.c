/*
 * bench_quant: quantization throughput against memcpy bandwidth.
 *
 *   bench_quant [MIB [THREADS]]      defaults: 1024 MiB, 2 threads
 *
 * W (rows, 16384) fp32, MIB MiB of it (1 GiB = 16384 x 16384), generated in
 * memory.  Rows are split evenly across THREADS pthreads for every kernel:
 *   memcpy            W -> a buffer of the same size
 *   rtn_int8_channel  mcb_rtn_int8_channel: W -> int8 (rows, cols) + scales
 *   rtn_int4_g128     mcb_intq_rtn, 4 bits, groups of 128, asymmetric, fp16
 *                     scales (AWQ/GPTQ checkpoint style): W -> one code per
 *                     byte (rows, cols) + scales and zeros (rows, cols/128)
 *   rtn_int4_g128_sym the same, symmetric
 *   q8_0              mcb_quantize_row_q8_0 per row: W -> blocks
 *   q4_0              mcb_quantize_row_q4_0 per row: W -> blocks, when
 *                     runtime/quant_ggml.c is linked in (a weak reference:
 *                     otherwise reported as not linked, as are the next three)
 *   q4_1              mcb_quantize_row_ggml(Q4_1) per row: W -> blocks
 *   q4_k, q6_k        mcb_quantize_row_ggml(Q4_K, Q6_K) per row on the first
 *                     1/KSLICE of the rows: ggml's K-quants search 21 (19)
 *                     candidate scales per sub-block, so they are
 *                     compute-bound; reported for scale, without target
 *   q8_0_ref          the scalar oracle, for scale (one repetition)
 * Throughput is input bytes (the fp32 weights) per second, in GB/s (1e9
 * bytes); each kernel runs once to fault in its output pages, then the best
 * of ROUNDS timed runs is reported with its ratio to memcpy.  The
 * quantizers' target is >= 0.5x memcpy (they read the same bytes and write
 * a quarter or less).  Exit status 0; 1 on bad arguments or allocation
 * failure.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcb/quant.h"

/* Q4_0 comes from runtime/quant_ggml.c, which this benchmark may be linked
 * without: a weak reference is NULL then. */
#pragma weak mcb_quantize_row_q4_0
#pragma weak mcb_quantize_row_ggml

#define COLS 16384
#define GROUP 128
#define ROUNDS 7
#define NKERNELS 10
#define KSLICE 16 /* the K-quants run on rows / KSLICE rows */
#define MAX_THREADS 64
#define Q4_0_BLOCK 18 /* bytes per 32 weights: f16 d, 16 bytes of nibbles */
#define Q4_1_BLOCK 20 /* bytes per 32 weights: f16 d, m, 16 bytes of nibbles */
#define Q4_K_BLOCK 144 /* bytes per 256 weights */
#define Q6_K_BLOCK 210 /* bytes per 256 weights, the largest of the four */

enum kernel {
	K_MEMCPY, K_RTN, K_INT4, K_INT4_SYM, K_Q8_0, K_Q4_0, K_Q4_1, K_Q4_K, K_Q6_K, K_Q8_0_REF,
	K_FILL
};

struct job {
	enum kernel k;
	int64_t r0, r1;            /* rows [r0, r1) */
	const float *w;            /* (rows, COLS) */
	float *copy;               /* (rows, COLS) memcpy destination */
	int8_t *q;                 /* (rows, COLS) RTN codes (int8 and int4 alike) */
	float *scale;              /* (rows,) RTN scales */
	float *gscale;             /* (rows, COLS/GROUP) int4 scales */
	uint8_t *gzero;            /* (rows, COLS/GROUP) int4 zeros */
	struct mcb_block_q8_0 *blk; /* (rows, COLS/32) */
	unsigned char *blk4;       /* (rows, COLS/256) Q6_K blocks' room: any ggml format */
	float *fill;               /* K_FILL: the weights being generated */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Deterministic weights: a sum of two uniforms (triangular, roughly
 * Gaussian-shaped), 1 in 4096 scaled up 20x as outliers. */
static void fill_rows(float *w, int64_t r0, int64_t r1)
{
	uint64_t s = 0x9e3779b97f4a7c15ull ^ (uint64_t)r0 * 0xbf58476d1ce4e5b9ull;
	int64_t i, n = (r1 - r0) * COLS;
	float *p = w + r0 * COLS;

	for (i = 0; i < n; i++) {
		uint32_t a, b;
		float v;

		s ^= s << 13; /* xorshift64 */
		s ^= s >> 7;
		s ^= s << 17;
		a = (uint32_t)s & 0xffffffu;
		b = (uint32_t)(s >> 40);
		v = ((float)a + (float)b) * 0x1p-24f - 1.0f; /* (-1, 1) */
		p[i] = (s >> 28 & 4095) == 0 ? 20.0f * v : v;
	}
}

static void *run_job(void *arg)
{
	static const struct mcb_intq_params asym4 = {4, GROUP, 0, 1}, sym4 = {4, GROUP, 1, 1};
	struct job *j = arg;
	int64_t r, n = j->r1 - j->r0;

	switch (j->k) {
	case K_MEMCPY:
		memcpy(j->copy + j->r0 * COLS, j->w + j->r0 * COLS, (size_t)n * COLS * sizeof(float));
		break;
	case K_RTN:
		mcb_rtn_int8_channel(j->w + j->r0 * COLS, n, COLS, j->q + j->r0 * COLS,
				     j->scale + j->r0);
		break;
	case K_INT4:
	case K_INT4_SYM:
		mcb_intq_rtn(j->w + j->r0 * COLS, n, COLS, j->k == K_INT4 ? &asym4 : &sym4,
			     (uint8_t *)j->q + j->r0 * COLS, j->gscale + j->r0 * (COLS / GROUP),
			     j->gzero + j->r0 * (COLS / GROUP));
		break;
	case K_Q8_0:
		for (r = j->r0; r < j->r1; r++)
			mcb_quantize_row_q8_0(j->w + r * COLS, j->blk + r * (COLS / MCB_QK8_0), COLS);
		break;
	case K_Q4_0:
		for (r = j->r0; r < j->r1; r++)
			mcb_quantize_row_q4_0(j->w + r * COLS, j->blk4 + r * (COLS / 32) * Q4_0_BLOCK,
					      COLS);
		break;
	case K_Q4_1:
		for (r = j->r0; r < j->r1; r++)
			mcb_quantize_row_ggml(MCB_DT_Q4_1, j->w + r * COLS,
					      j->blk4 + r * (COLS / 32) * Q4_1_BLOCK, COLS);
		break;
	case K_Q4_K:
	case K_Q6_K:
		for (r = j->r0; r < j->r1; r++)
			mcb_quantize_row_ggml(j->k == K_Q4_K ? MCB_DT_Q4_K : MCB_DT_Q6_K,
					      j->w + r * COLS, j->blk4 + r * (COLS / 256) * Q6_K_BLOCK,
					      COLS);
		break;
	case K_Q8_0_REF:
		for (r = j->r0; r < j->r1; r++)
			mcb_quantize_row_q8_0_ref(j->w + r * COLS, j->blk + r * (COLS / MCB_QK8_0),
						  COLS);
		break;
	case K_FILL:
		fill_rows(j->fill, j->r0, j->r1);
		break;
	}
	return NULL;
}

/* Run kernel k over all rows on nt threads; returns the wall time. */
static double run(enum kernel k, struct job *tmpl, int64_t rows, int nt)
{
	pthread_t th[MAX_THREADS];
	struct job jobs[MAX_THREADS];
	double t0;
	int i;

	t0 = now();
	for (i = 0; i < nt; i++) {
		jobs[i] = *tmpl;
		jobs[i].k = k;
		jobs[i].r0 = rows * i / nt;
		jobs[i].r1 = rows * (i + 1) / nt;
		if (pthread_create(&th[i], NULL, run_job, &jobs[i])) {
			fprintf(stderr, "bench_quant: cannot create a thread\n");
			exit(1);
		}
	}
	for (i = 0; i < nt; i++)
		pthread_join(th[i], NULL);
	return now() - t0;
}

int main(int argc, char **argv)
{
	long mib = argc > 1 ? strtol(argv[1], NULL, 10) : 1024;
	int nt = argc > 2 ? atoi(argv[2]) : 2;
	int64_t rows;
	double bytes, kbytes, t, best[NKERNELS];
	struct job tmpl;
	float *w;
	static const struct {
		enum kernel k;
		const char *name;
		int rounds;
		int target; /* a quantizer with the 0.5x memcpy target */
		int ggml;   /* needs runtime/quant_ggml.c */
		int slice;  /* runs on rows / slice rows */
	} ks[NKERNELS] = {{K_MEMCPY, "memcpy", ROUNDS, 0, 0, 1},
			  {K_RTN, "rtn_int8_channel", ROUNDS, 1, 0, 1},
			  {K_INT4, "rtn_int4_g128", ROUNDS, 1, 0, 1},
			  {K_INT4_SYM, "rtn_int4_g128_sym", ROUNDS, 1, 0, 1},
			  {K_Q8_0, "q8_0", ROUNDS, 1, 0, 1},
			  {K_Q4_0, "q4_0", ROUNDS, 1, 1, 1},
			  {K_Q4_1, "q4_1", ROUNDS, 1, 1, 1},
			  {K_Q4_K, "q4_k (scale search)", ROUNDS, 0, 1, KSLICE},
			  {K_Q6_K, "q6_k (scale search)", ROUNDS, 0, 1, KSLICE},
			  {K_Q8_0_REF, "q8_0_ref (scalar)", 1, 0, 0, 1}};
	int64_t krows[NKERNELS];
	int have[NKERNELS];
	int i, round;

	if (argc > 3 || mib < 1 || mib > 65536 || nt < 1 || nt > MAX_THREADS) {
		fprintf(stderr, "usage: bench_quant [MIB (1..65536)] [THREADS (1..%d)]\n",
			MAX_THREADS);
		return 1;
	}
	rows = (int64_t)mib * 1024 * 1024 / (COLS * (int64_t)sizeof(float));
	if (rows < nt)
		rows = nt;
	bytes = (double)rows * COLS * sizeof(float);
	memset(&tmpl, 0, sizeof(tmpl));
	w = malloc((size_t)rows * COLS * sizeof(float));
	tmpl.copy = malloc((size_t)rows * COLS * sizeof(float));
	tmpl.q = malloc((size_t)rows * COLS);
	tmpl.scale = malloc((size_t)rows * sizeof(float));
	tmpl.blk = malloc((size_t)rows * (COLS / MCB_QK8_0) * sizeof(struct mcb_block_q8_0));
	tmpl.gscale = malloc((size_t)rows * (COLS / GROUP) * sizeof(float));
	tmpl.gzero = malloc((size_t)rows * (COLS / GROUP));
	tmpl.blk4 = malloc((size_t)rows * (COLS / 256) * Q6_K_BLOCK);
	if (!w || !tmpl.copy || !tmpl.q || !tmpl.scale || !tmpl.blk || !tmpl.gscale ||
	    !tmpl.gzero || !tmpl.blk4) {
		fprintf(stderr, "bench_quant: cannot allocate %.2f GB of buffers\n",
			(bytes * 2.8 + 1) / 1e9);
		return 1;
	}
	tmpl.fill = w;
	run(K_FILL, &tmpl, rows, nt);
	tmpl.w = w;

	printf("bench_quant: W (%lld, %d) fp32 = %.3f GiB, %d threads\n", (long long)rows, COLS,
	       bytes / (1 << 30), nt);
	for (i = 0; i < NKERNELS; i++) {
		have[i] = !ks[i].ggml ||
			  (mcb_quantize_row_q4_0 != NULL && mcb_quantize_row_ggml != NULL);
		krows[i] = rows / ks[i].slice < nt ? nt : rows / ks[i].slice;
		if (have[i])
			run(ks[i].k, &tmpl, krows[i], nt); /* fault in the output pages, warm up */
		best[i] = 1e30;
	}
	for (round = 0; round < ROUNDS; round++)
		for (i = 0; i < NKERNELS; i++) {
			if (round >= ks[i].rounds || !have[i])
				continue;
			t = run(ks[i].k, &tmpl, krows[i], nt);
			if (t < best[i])
				best[i] = t;
		}
	for (i = 0; i < NKERNELS; i++) {
		if (!have[i]) {
			printf("  %-20s not linked (runtime/quant_ggml.c is not built in)\n",
			       ks[i].name);
			continue;
		}
		kbytes = (double)krows[i] * COLS * sizeof(float);
		t = (kbytes / best[i]) / (bytes / best[0]); /* throughput ratio to memcpy */
		printf("  %-20s %7.2f GB/s  (%.3f s)", ks[i].name, kbytes / best[i] / 1e9, best[i]);
		if (ks[i].target)
			printf("  %.2fx memcpy (target 0.5: %s)", t, t >= 0.5 ? "ok" : "BELOW");
		else if (i > 0)
			printf("  %.3fx memcpy", t);
		if (krows[i] != rows)
			printf("  (%lld rows)", (long long)krows[i]);
		printf("\n");
	}
	free(w);
	free(tmpl.copy);
	free(tmpl.q);
	free(tmpl.scale);
	free(tmpl.blk);
	free(tmpl.gscale);
	free(tmpl.gzero);
	free(tmpl.blk4);
	return 0;
}
