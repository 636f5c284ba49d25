/*
 * ggml_oracle: mcbuild's GGML-mode kernels (runtime/kernels.c, both the _ref
 * and the AVX2 table) against llama.cpp's own CPU backend, the libraries
 * node-llama-cpp 3.22.1 ships (loaded with dlopen; their exported functions
 * and ggml's graph API), bit for bit:
 *
 *   1. activation quantizers: ggml's from_float for Q8_0, Q8_1, Q8_K against
 *      quantize_act, quantize_act_q8_1, quantize_act_q8_k (random rows of
 *      every scale, rows with repeated values);
 *   2. the dot kernels ggml_vec_dot_{q8_0_q8_0, q4_0_q8_0, q4_1_q8_1,
 *      q4_K_q8_K, q6_K_q8_K} against gemm_ggml's orders, on weights from
 *      mcbuild's quantizers and ggml's own activation blocks;
 *   3. the repacked kernels ggml_gemv/gemm_{q4_0,q4_K}_8x8 on weights
 *      repacked here as ggml's repack.cpp lays them out, with the 4-row
 *      activation quantizers (ggml_quantize_mat_t), against the _R / GEMV /
 *      GEMM orders and the repacking Q8_K sign rule;
 *   4. graph ops through ggml_graph_compute (what llama.cpp's graph runs):
 *      rms_norm * w; get_rows and mul_mat of every block type, F16 and F32
 *      (tinyBLAS for batches when k % 16 == 0 and m % 4 == 0, else
 *      ggml_vec_dot) for one token and for 64; rope_ext (mode 0); the
 *      attention of llama.cpp's KV cache (q . k with ggml_vec_dot_f32,
 *      soft_max_ext with the causal mask, V^T times the probabilities) for a
 *      batch and for one token with the KV length padded to 256;
 *      swiglu_split.  The expected values are composed from the kernel
 *      table's entries exactly as runtime/engine.c composes them.
 *
 *   ggml_oracle LIBDIR [VARIANT]
 *
 * LIBDIR: node-llama-cpp's bins/linux-x64 directory; VARIANT: the CPU
 * library llama.cpp picks on this machine (default zen4, the AVX-512 build
 * whose float orders GGML mode follows).  Prints one line per check.
 * Exit status: 0 all equal; 1 some differ; 2 usage; 3 the libraries cannot
 * be used here (missing, or the CPU lacks AVX-512: SKIP).
 */
#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/kernels.h"
#include "mcb/quant.h"
#include "mcb/tensor.h"

/* ---- llama.cpp's interfaces (ggml.h, ggml-cpu.h of v0.5.0) ---- */

enum { GT_F32 = 0, GT_F16 = 1, GT_Q4_0 = 2, GT_Q4_1 = 3, GT_Q8_0 = 8, GT_Q8_1 = 9,
       GT_Q4_K = 12, GT_Q6_K = 14, GT_Q8_K = 15, GT_I32 = 26 };

typedef void (*from_float_t)(const float *x, void *y, int64_t k);
typedef void (*vec_dot_t)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
			  size_t by, int nrc);
struct type_traits_cpu {
	from_float_t from_float;
	vec_dot_t vec_dot;
	int vec_dot_type;
	int64_t nrows;
};
typedef void (*gemx_t)(int n, float *s, size_t bs, const void *vx, const void *vy, int nr, int nc);
typedef void (*quantize_mat_t)(const float *x, void *vy, int64_t nrow, int64_t n_per_row);

struct ginit {
	size_t mem_size;
	void *mem_buffer;
	bool no_alloc;
};
typedef struct gt_tensor gt_tensor;
typedef struct gt_ctx gt_ctx;
typedef struct gt_graph gt_graph;

static struct {
	const struct type_traits_cpu *(*traits)(int type);
	gemx_t gemv_q4_0, gemm_q4_0, gemv_q4_k, gemm_q4_k;
	quantize_mat_t qmat_q8_0, qmat_q8_k;
	gt_ctx *(*init)(struct ginit);
	void (*free)(gt_ctx *);
	gt_tensor *(*new1)(gt_ctx *, int, int64_t);
	gt_tensor *(*new2)(gt_ctx *, int, int64_t, int64_t);
	gt_tensor *(*new3)(gt_ctx *, int, int64_t, int64_t, int64_t);
	void *(*data)(const gt_tensor *);
	gt_tensor *(*mul_mat)(gt_ctx *, gt_tensor *, gt_tensor *);
	gt_tensor *(*rms_norm)(gt_ctx *, gt_tensor *, float);
	gt_tensor *(*mul)(gt_ctx *, gt_tensor *, gt_tensor *);
	gt_tensor *(*get_rows)(gt_ctx *, gt_tensor *, gt_tensor *);
	gt_tensor *(*rope_ext)(gt_ctx *, gt_tensor *, gt_tensor *, gt_tensor *, int, int, int, float,
			       float, float, float, float, float);
	gt_tensor *(*soft_max_ext)(gt_ctx *, gt_tensor *, gt_tensor *, float, float);
	gt_tensor *(*permute)(gt_ctx *, gt_tensor *, int, int, int, int);
	gt_tensor *(*view3)(gt_ctx *, gt_tensor *, int64_t, int64_t, int64_t, size_t, size_t, size_t);
	gt_tensor *(*swiglu)(gt_ctx *, gt_tensor *, gt_tensor *);
	gt_graph *(*graph)(gt_ctx *);
	void (*expand)(gt_graph *, gt_tensor *);
	int (*compute)(gt_ctx *, gt_graph *, int);
} L;

static int nbad, nchecks;

/* one check's line: "ok" or the count of differing values */
static void report(const char *what, long bad, long total)
{
	nchecks++;
	if (bad)
		nbad++;
	printf("ggml_oracle: %-4s %s: %ld of %ld values differ\n", bad ? "FAIL" : "ok", what, bad,
	       total);
}

static uint64_t rs = 0x243f6a8885a308d3ull;

static float urand(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return (float)((double)(rs >> 11) * 0x1.0p-52 - 1.0);
}

static int same(float a, float b)
{
	return !memcmp(&a, &b, sizeof(a));
}

static long count_diff(const float *a, const float *b, long n)
{
	long i, d = 0;

	for (i = 0; i < n; i++)
		d += !same(a[i], b[i]);
	return d;
}

/* activation rows: random of every scale; some with repeated values */
static void fill_act(float *x, int64_t n, int trial)
{
	const float scale = expf(urand() * 8.0f);
	int64_t i;

	for (i = 0; i < n; i++)
		x[i] = urand() * scale;
	if (trial % 7 == 0)
		for (i = 0; i < n; i += 3)
			x[i] = (float)(int)(x[i] * 4) / 4;
	if (trial % 5 == 0) /* +-amax in a block: the two Q8_K sign rules part */
		for (i = 0; i < n; i += 37)
			x[i] = (i / 37) % 2 ? -scale * 2 : scale * 2;
}

/* ---- 1. activation quantizers ---- */

static void check_act(const struct mcb_kernels *k)
{
	enum { N = 1024, T = 500 };
	static float x[N];
	static uint8_t ll[N / 256 * 292 + N / 32 * 36];
	static int8_t q[N];
	static uint16_t d[N / 32], s[N / 32];
	static float dk[N / 256];
	static int16_t bs[N / 16];
	long bad[3] = {0, 0, 0};
	char what[96];
	int t, b;

	for (t = 0; t < T; t++) {
		fill_act(x, N, t);
		L.traits(GT_Q8_0)->from_float(x, ll, N);
		k->quantize_act(N, x, q, d);
		for (b = 0; b < N / 32; b++)
			bad[0] += memcmp(ll + 34 * b, &d[b], 2) || memcmp(ll + 34 * b + 2, q + 32 * b, 32);
		L.traits(GT_Q8_1)->from_float(x, ll, N);
		k->quantize_act_q8_1(N, x, q, d, s);
		for (b = 0; b < N / 32; b++)
			bad[1] += memcmp(ll + 36 * b, &d[b], 2) || memcmp(ll + 36 * b + 2, &s[b], 2) ||
				  memcmp(ll + 36 * b + 4, q + 32 * b, 32);
		L.traits(GT_Q8_K)->from_float(x, ll, N);
		k->quantize_act_q8_k(N, x, q, dk, bs, 0);
		for (b = 0; b < N / 256; b++)
			bad[2] += memcmp(ll + 292 * b, &dk[b], 4) ||
				  memcmp(ll + 292 * b + 4, q + 256 * b, 256) ||
				  memcmp(ll + 292 * b + 260, bs + 16 * b, 32);
	}
	snprintf(what, sizeof(what), "[%s] quantize_row_q8_0 blocks", k->name);
	report(what, bad[0], (long)T * N / 32);
	snprintf(what, sizeof(what), "[%s] quantize_row_q8_1 blocks", k->name);
	report(what, bad[1], (long)T * N / 32);
	snprintf(what, sizeof(what), "[%s] quantize_row_q8_K blocks", k->name);
	report(what, bad[2], (long)T * N / 256);
}

/* ---- 2. dot kernels ---- */

static void check_vec_dots(const struct mcb_kernels *k, void *hc)
{
	static const struct {
		enum mcb_dtype dt;
		const char *sym;
		enum mcb_ggml_order o;
		int act;
	} cases[] = {
		{MCB_DT_Q8_0, "ggml_vec_dot_q8_0_q8_0", MCB_GO_Q8_0, GT_Q8_0},
		{MCB_DT_Q4_0, "ggml_vec_dot_q4_0_q8_0", MCB_GO_Q4_0, GT_Q8_0},
		{MCB_DT_Q4_1, "ggml_vec_dot_q4_1_q8_1", MCB_GO_Q4_1, GT_Q8_1},
		{MCB_DT_Q4_K, "ggml_vec_dot_q4_K_q8_K", MCB_GO_Q4_K, GT_Q8_K},
		{MCB_DT_Q6_K, "ggml_vec_dot_q6_K_q8_K", MCB_GO_Q6_K, GT_Q8_K},
	};
	enum { N = 1024, T = 1000 };
	static float w[N], x[N];
	static uint8_t wb[N / 32 * 34], ab[N / 32 * 36 + N / 256 * 292];
	static int8_t q[N];
	static uint16_t d[N / 32], s[N / 32];
	static float dk[N / 256];
	static int16_t bs[N / 16];
	size_t c;
	char what[96];
	int t, i, b;

	for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		vec_dot_t vd = (vec_dot_t)dlsym(hc, cases[c].sym);
		const struct mcb_dtype_info *di = mcb_dtype_info(cases[c].dt);
		long bad = 0;

		if (!vd) {
			report(cases[c].sym, 1, 1);
			continue;
		}
		for (t = 0; t < T; t++) {
			const int n = (t % 4 + 1) * 256;
			struct mcb_qact a = {q, d, s, dk, bs};
			float got, want;

			for (i = 0; i < n; i++) {
				w[i] = urand() + (t % 3 ? 0.0f : 0.3f);
				x[i] = urand() * expf(urand() * 3.0f);
			}
			mcb_quantize_row_ggml(cases[c].dt, w, wb, n);
			L.traits(cases[c].act)->from_float(x, ab, n);
			vd(n, &want, 0, wb, 0, ab, 0, 1);
			/* llama.cpp's activation blocks into mcbuild's arrays */
			if (cases[c].act == GT_Q8_K) {
				for (b = 0; b < n / 256; b++) {
					memcpy(&dk[b], ab + 292 * b, 4);
					memcpy(q + 256 * b, ab + 292 * b + 4, 256);
					memcpy(bs + 16 * b, ab + 292 * b + 260, 32);
				}
			} else {
				const int bb = cases[c].act == GT_Q8_1 ? 36 : 34;

				for (b = 0; b < n / 32; b++) {
					memcpy(&d[b], ab + bb * b, 2);
					if (bb == 36)
						memcpy(&s[b], ab + bb * b + 2, 2);
					memcpy(q + 32 * b, ab + bb * b + bb - 32, 32);
				}
			}
			k->gemm_ggml(cases[c].o, n, wb, (size_t)(n / di->block * di->block_bytes), 1, &a,
				     1, &got, 1);
			bad += !same(got, want);
		}
		snprintf(what, sizeof(what), "[%s] %s", k->name, cases[c].sym);
		report(what, bad, T);
	}
}

/* ---- 3. repacked Q4_0 and Q4_K ---- */

/* ggml's repack layouts (repack.cpp make_block_q4_0x8 / make_block_q4_Kx8,
 * interleave 8): nrow % 8 == 0, nb blocks per row */
static void repack_q4_0(const uint8_t *src, uint8_t *dst, int nrow, int nb)
{
	int r, x, i;

	for (r = 0; r < nrow; r += 8, src += 8 * nb * 18)
		for (x = 0; x < nb; x++, dst += 16 + 128) {
			for (i = 0; i < 8; i++)
				memcpy(dst + 2 * i, src + (x + i * nb) * 18, 2);
			for (i = 0; i < 16; i++) {
				uint64_t v;

				memcpy(&v, src + (x + (i % 8) * nb) * 18 + 2 + (i / 8) * 8, 8);
				v ^= 0x8888888888888888ull;
				memcpy(dst + 16 + 8 * i, &v, 8);
			}
		}
}

static void scale_min(const uint8_t *q, int j, int *d, int *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
		*m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
	}
}

static void repack_q4_k(const uint8_t *src, uint8_t *dst, int nrow, int nb)
{
	int r, x, i, h, j;

	for (r = 0; r < nrow; r += 8, src += 8 * nb * 144)
		for (x = 0; x < nb; x++, dst += 1152) {
			const uint8_t *in[8];

			for (i = 0; i < 8; i++)
				in[i] = src + (x + i * nb) * 144;
			for (i = 0; i < 8; i++) {
				memcpy(dst + 2 * i, in[i], 2);
				memcpy(dst + 16 + 2 * i, in[i] + 2, 2);
			}
			for (i = 0; i < 128; i++)
				memcpy(dst + 128 + 8 * i, in[i % 8] + 16 + (i / 8) * 8, 8);
			for (h = 0; h < 2; h++)
				for (i = 0; i < 4; i++) {
					int sc[8], mn[8];
					uint8_t *o = dst + 32 + 48 * h + 12 * i;

					for (j = 0; j < 8; j++)
						scale_min(in[j] + 4, 4 * h + i, &sc[j], &mn[j]);
					for (j = 0; j < 4; j++) {
						o[j] = (uint8_t)((sc[j] & 63) + ((sc[j + 4] & 48) << 2));
						o[4 + j] = (uint8_t)((mn[j] & 63) + ((mn[j + 4] & 48) << 2));
						o[8 + j] = (uint8_t)((sc[j + 4] & 15) + ((mn[j + 4] & 15) << 4));
					}
				}
		}
}

static void check_repacked(const struct mcb_kernels *k)
{
	enum { NC = 32, NR = 4, N = 512, T = 200 };
	static float w[NC * N], x[NR * N], ll[NR * NC], me[NR * NC];
	static uint8_t wb[NC * N], wr[NC * N], ab[NR * N * 2];
	static int8_t q[NR * N];
	static float dk[NR * N / 256];
	static int16_t bs[NR * N / 16];
	static uint16_t d0[NR * N / 32];
	long bad[4] = {0, 0, 0, 0};
	char what[96];
	int t, r, i;

	for (t = 0; t < T; t++) {
		struct mcb_qact ak = {q, NULL, NULL, dk, bs}, a0 = {q, d0, NULL, NULL, NULL};

		for (i = 0; i < NC * N; i++)
			w[i] = urand();
		for (r = 0; r < NR; r++)
			fill_act(x + r * N, N, t + r);
		/* Q4_K: GEMM with the 4-row quantizer, GEMV with from_float */
		for (r = 0; r < NC; r++)
			mcb_quantize_row_q4_k_ref(w + r * N, wb + r * (N / 256 * 144), N);
		repack_q4_k(wb, wr, NC, N / 256);
		for (r = 0; r < NR; r++)
			k->quantize_act_q8_k(N, x + r * N, q + r * N, dk + r * (N / 256),
					     bs + r * (N / 16), 1);
		L.qmat_q8_k(x, ab, NR, N);
		L.gemm_q4_k(N, ll, NC, wr, ab, NR, NC);
		k->gemm_ggml(MCB_GO_Q4_K_GEMM, N, wb, N / 256 * 144, NC, &ak, NR, me, NC);
		bad[0] += count_diff(ll, me, NR * NC);
		for (r = 0; r < NR; r++) {
			k->quantize_act_q8_k(N, x + r * N, q + r * N, dk + r * (N / 256),
					     bs + r * (N / 16), 0);
			L.traits(GT_Q8_K)->from_float(x + r * N, ab, N);
			L.gemv_q4_k(N, ll + r * NC, 0, wr, ab, 1, NC);
		}
		k->gemm_ggml(MCB_GO_Q4_K_GEMV, N, wb, N / 256 * 144, NC, &ak, NR, me, NC);
		bad[1] += count_diff(ll, me, NR * NC);
		/* Q4_0: one order for GEMM and GEMV */
		for (r = 0; r < NC; r++)
			mcb_quantize_row_q4_0_ref(w + r * N, wb + r * (N / 32 * 18), N);
		repack_q4_0(wb, wr, NC, N / 32);
		for (r = 0; r < NR; r++)
			k->quantize_act(N, x + r * N, q + r * N, d0 + r * (N / 32));
		L.qmat_q8_0(x, ab, NR, N);
		L.gemm_q4_0(N, ll, NC, wr, ab, NR, NC);
		k->gemm_ggml(MCB_GO_Q4_0_R, N, wb, N / 32 * 18, NC, &a0, NR, me, NC);
		bad[2] += count_diff(ll, me, NR * NC);
		for (r = 0; r < NR; r++) {
			L.traits(GT_Q8_0)->from_float(x + r * N, ab, N);
			L.gemv_q4_0(N, ll + r * NC, 0, wr, ab, 1, NC);
		}
		bad[3] += count_diff(ll, me, NR * NC);
	}
	snprintf(what, sizeof(what), "[%s] ggml_gemm_q4_K_8x8_q8_K (4-row Q8_K)", k->name);
	report(what, bad[0], (long)T * NR * NC);
	snprintf(what, sizeof(what), "[%s] ggml_gemv_q4_K_8x8_q8_K", k->name);
	report(what, bad[1], (long)T * NR * NC);
	snprintf(what, sizeof(what), "[%s] ggml_gemm_q4_0_8x8_q8_0 (4-row Q8_0)", k->name);
	report(what, bad[2], (long)T * NR * NC);
	snprintf(what, sizeof(what), "[%s] ggml_gemv_q4_0_8x8_q8_0", k->name);
	report(what, bad[3], (long)T * NR * NC);
}

/* ---- 4. graph ops ---- */

static gt_ctx *ctx_new(void)
{
	struct ginit ip = {256u << 20, NULL, false};

	return L.init(ip);
}

static void run_graph(gt_ctx *c, gt_tensor *a, gt_tensor *b)
{
	gt_graph *g = L.graph(c);

	L.expand(g, a);
	if (b)
		L.expand(g, b);
	L.compute(c, g, 1);
}

static void check_rms_norm(void)
{
	enum { NT = 16 };
	long bad = 0, total = 0;
	int n;

	for (n = 64; n <= 512; n *= 2) {
		gt_ctx *c = ctx_new();
		gt_tensor *x = L.new2(c, GT_F32, n, NT), *w = L.new1(c, GT_F32, n), *y;
		float *xd = L.data(x), *wd = L.data(w), *yd;
		int t, i;

		for (i = 0; i < n * NT; i++)
			xd[i] = urand() * 3.0f;
		for (i = 0; i < n; i++)
			wd[i] = urand();
		y = L.mul(c, L.rms_norm(c, x, 1e-5f), w);
		run_graph(c, y, NULL);
		yd = L.data(y);
		for (t = 0; t < NT; t++) {
			double ss = 0;
			float scale;

			for (i = 0; i < n; i++)
				ss += (double)(xd[t * n + i] * xd[t * n + i]);
			scale = 1.0f / sqrtf((float)(ss / n) + 1e-5f);
			for (i = 0; i < n; i++)
				bad += !same((xd[t * n + i] * scale) * wd[i], yd[t * n + i]);
			total += n;
		}
		L.free(c);
	}
	report("rms_norm * w (engine.c rmsnorm_row)", bad, total);
}

/* mul_mat and get_rows of every weight type, 1 and 64 tokens, R rows */
static void check_mul_mat(const struct mcb_kernels *k)
{
	static const struct {
		int gt;
		enum mcb_dtype dt;
		enum mcb_ggml_order o;
		int act; /* 0 Q8_0, 1 Q8_1, 2 Q8_K, 3 F16, 4 F32 */
		const char *name;
	} ty[] = {
		{GT_Q8_0, MCB_DT_Q8_0, MCB_GO_Q8_0, 0, "Q8_0"}, {GT_Q4_0, MCB_DT_Q4_0, MCB_GO_Q4_0, 0, "Q4_0"},
		{GT_Q4_1, MCB_DT_Q4_1, MCB_GO_Q4_1, 1, "Q4_1"}, {GT_Q4_K, MCB_DT_Q4_K, MCB_GO_Q4_K, 2, "Q4_K"},
		{GT_Q6_K, MCB_DT_Q6_K, MCB_GO_Q6_K, 2, "Q6_K"}, {GT_F16, MCB_DT_F16, MCB_GO_Q8_0, 3, "F16"},
		{GT_F32, MCB_DT_F32, MCB_GO_Q8_0, 4, "F32"},
	};
	static const int ncols[] = {64, 96, 172, 256, 512};
	static const int nrows[] = {40, 41, 256, 515};
	size_t ti, ci, ri;
	int nt;
	char what[128];

	for (ti = 0; ti < sizeof(ty) / sizeof(ty[0]); ti++) {
		long bad = 0, badr = 0, total = 0, totalr = 0;

		for (ci = 0; ci < sizeof(ncols) / sizeof(ncols[0]); ci++)
			for (ri = 0; ri < sizeof(nrows) / sizeof(nrows[0]); ri++)
				for (nt = 1; nt <= 64; nt += 63) {
					const int n = ncols[ci], R = nrows[ri];
					const struct mcb_dtype_info *di = mcb_dtype_info(ty[ti].dt);
					const size_t rb = (size_t)n / di->block * di->block_bytes;
					gt_ctx *c;
					gt_tensor *w, *x, *ids, *y, *gr;
					uint8_t *wd;
					float *xd, *yd, *grd, *wf, *me, *row;
					int32_t *id;
					int r, t, i;

					if (n % di->block)
						continue;
					c = ctx_new();
					w = L.new2(c, ty[ti].gt, n, R);
					x = L.new2(c, GT_F32, n, nt);
					ids = L.new1(c, GT_I32, R);
					wd = L.data(w), xd = L.data(x), id = L.data(ids);
					wf = malloc(sizeof(float) * (size_t)(n * R));
					me = malloc(sizeof(float) * (size_t)(R * nt));
					row = malloc(sizeof(float) * (size_t)n);
					for (i = 0; i < n * R; i++)
						wf[i] = urand();
					for (r = 0; r < R; r++) {
						id[r] = r;
						if (ty[ti].gt == GT_F32)
							memcpy(wd + r * rb, wf + r * n, rb);
						else if (ty[ti].gt == GT_F16)
							for (i = 0; i < n; i++)
								((uint16_t *)wd)[r * n + i] = mcb_f32_to_f16(wf[r * n + i]);
						else
							mcb_quantize_row_ggml(ty[ti].dt, wf + r * n, wd + r * rb, n);
					}
					for (i = 0; i < n * nt; i++)
						xd[i] = urand() * expf(urand() * 2.0f);
					y = L.mul_mat(c, w, x);
					gr = L.get_rows(c, w, ids);
					run_graph(c, y, gr);
					yd = L.data(y), grd = L.data(gr);
					/* what engine.c's lin_dot / ggml_rows compute */
					if (ty[ti].act >= 3) {
						const int tiny = nt >= 2 && n % 16 == 0 && R % 4 == 0;
						uint16_t *xh = malloc(2 * (size_t)(n * nt));

						k->f32_to_f16((int64_t)n * nt, xd, xh);
						for (t = 0; t < nt; t++)
							for (r = 0; r < R; r++) {
								const void *wr = wd + r * rb;
								float v;

								if (ty[ti].act == 3)
									v = tiny ? k->dot_f16_lanes16(n, wr, xh + t * n)
										 : k->dot_f16_f16(n, wr, xh + t * n);
								else
									v = tiny ? k->dot_f32_lanes16(n, wr, xd + t * n)
										 : k->dot_f32_ggml(n, wr, xd + t * n);
								me[t * R + r] = v;
							}
						free(xh);
					} else {
						int8_t *q = malloc((size_t)(n * nt));
						uint16_t *d = malloc(2 * (size_t)(n * nt / 32)), *s = malloc(2 * (size_t)(n * nt / 32));
						float *dk = malloc(4 * (size_t)(n * nt / 256 + 1));
						int16_t *bs = malloc(2 * (size_t)(n * nt / 16));
						struct mcb_qact a = {q, d, s, dk, bs};

						for (t = 0; t < nt; t++) {
							const float *xt = xd + t * n;

							if (ty[ti].act == 0)
								k->quantize_act(n, xt, q + t * n, d + t * (n / 32));
							else if (ty[ti].act == 1)
								k->quantize_act_q8_1(n, xt, q + t * n, d + t * (n / 32),
										     s + t * (n / 32));
							else
								k->quantize_act_q8_k(n, xt, q + t * n, dk + t * (n / 256),
										     bs + t * (n / 16), 0);
						}
						k->gemm_ggml(ty[ti].o, n, wd, rb, R, &a, nt, me, R);
						free(q), free(d), free(s), free(dk), free(bs);
					}
					bad += count_diff(me, yd, (long)R * nt);
					total += (long)R * nt;
					for (r = 0; r < R; r++) {
						if (ty[ti].gt == GT_F32)
							memcpy(row, wd + r * rb, rb);
						else if (ty[ti].gt == GT_F16)
							k->deq_f16(n, (const uint16_t *)wd + r * n, row);
						else
							mcb_dequantize_row_ggml(ty[ti].dt, wd + r * rb, row, n);
						badr += count_diff(row, grd + (size_t)r * n, n) != 0;
					}
					totalr += R;
					free(wf), free(me), free(row);
					L.free(c);
				}
		snprintf(what, sizeof(what), "[%s] mul_mat %s (1 and 64 tokens)", k->name, ty[ti].name);
		report(what, bad, total);
		snprintf(what, sizeof(what), "[%s] get_rows %s (dequantized rows)", k->name,
			 ty[ti].name);
		report(what, badr, totalr);
	}
}

/* RoPE mode 0 with llama.cpp's parameters: the float angle recurrence and
 * the rotation's fused multiply-adds (engine.c rope_tables, rope_row) */
static void check_rope(void)
{
	const int HD = 32, NH = 8, NT = 64, P0 = 37;
	gt_ctx *c = ctx_new();
	gt_tensor *q = L.new3(c, GT_F32, HD, NH, NT), *pos = L.new1(c, GT_I32, NT), *r;
	float *qd = L.data(q), *q0 = malloc(sizeof(float) * (size_t)(HD * NH * NT)), *rd;
	int32_t *pd = L.data(pos);
	const float ts = powf(10000.0f, -2.0f / (float)HD);
	long bad = 0;
	int t, h, i;

	for (i = 0; i < HD * NH * NT; i++)
		q0[i] = qd[i] = urand() * 3.0f;
	for (t = 0; t < NT; t++)
		pd[t] = P0 + t;
	r = L.rope_ext(c, q, pos, NULL, HD, 0, 0, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
	run_graph(c, r, NULL);
	rd = L.data(r);
	for (t = 0; t < NT; t++) {
		float cs[64], th = (float)(P0 + t);

		for (i = 0; i < HD / 2; i++) {
			cs[2 * i] = cosf(th);
			cs[2 * i + 1] = sinf(th);
			th *= ts;
		}
		for (h = 0; h < NH; h++)
			for (i = 0; i < HD / 2; i++) {
				const float *u = q0 + (t * NH + h) * HD, *o = rd + (t * NH + h) * HD;
				float a = u[2 * i], b = u[2 * i + 1];

				bad += !same(fmaf(a, cs[2 * i], -(b * cs[2 * i + 1])), o[2 * i]);
				bad += !same(fmaf(a, cs[2 * i + 1], b * cs[2 * i]), o[2 * i + 1]);
			}
	}
	report("rope_ext mode 0 (engine.c rope_row)", bad, (long)NT * NH * HD);
	free(q0);
	L.free(c);
}

/* llama.cpp's attention without flash attention (KV cache F32, V stored
 * transposed, n_kv padded to 256) against engine.c attn_ggml's composition */
static void check_attention(const struct mcb_kernels *k, int HD, int NT, int P0)
{
	const int NH = 8, NKVH = 4, KV = 512, NKV = ((P0 + NT + 255) / 256) * 256;
	const int NTP = (NT + 63) / 64 * 64;
	gt_ctx *c = ctx_new();
	gt_tensor *kc = L.new2(c, GT_F32, HD * NKVH, KV), *vc = L.new2(c, GT_F32, KV, HD * NKVH);
	gt_tensor *q = L.new3(c, GT_F32, HD, NH, NT), *mask = L.new2(c, GT_F32, NKV, NTP);
	gt_tensor *kv, *vv, *kq, *sm, *kqv;
	float *kd = L.data(kc), *vd = L.data(vc), *qd = L.data(q), *md = L.data(mask);
	float *s = malloc(sizeof(float) * (size_t)NKV), *col = malloc(sizeof(float) * (size_t)NKV);
	float *acc = malloc(sizeof(float) * 16 * (size_t)HD), *kqd, *smd, *od;
	const float scale = 1.0f / sqrtf((float)HD);
	long bad[3] = {0, 0, 0}, nkq = 0;
	char what[128];
	int h, t, p, i, l;

	memset(kd, 0, sizeof(float) * (size_t)(HD * NKVH * KV));
	memset(vd, 0, sizeof(float) * (size_t)(HD * NKVH * KV));
	for (p = 0; p < P0 + NT; p++)
		for (i = 0; i < HD * NKVH; i++) {
			kd[p * HD * NKVH + i] = urand() * 2.0f;
			vd[i * KV + p] = urand() * 2.0f;
		}
	for (i = 0; i < HD * NH * NT; i++)
		qd[i] = urand() * 2.0f;
	for (t = 0; t < NTP; t++)
		for (p = 0; p < NKV; p++)
			md[t * NKV + p] = t < NT && p <= P0 + t ? 0.0f : -INFINITY;
	kv = L.permute(c, L.view3(c, kc, HD, NKVH, NKV, (size_t)HD * 4, (size_t)HD * NKVH * 4, 0), 0,
		       2, 1, 3);
	vv = L.permute(c, L.view3(c, vc, NKV, NKVH, HD, (size_t)KV * HD * 4, (size_t)KV * 4, 0), 0,
		       2, 1, 3);
	kq = L.mul_mat(c, kv, L.permute(c, q, 0, 2, 1, 3));
	sm = L.soft_max_ext(c, kq, mask, scale, 0.0f);
	kqv = L.mul_mat(c, vv, sm);
	run_graph(c, kqv, NULL);
	kqd = L.data(kq), smd = L.data(sm), od = L.data(kqv);
	for (h = 0; h < NH; h++)
		for (t = 0; t < NT; t++) {
			const int g = h / (NH / NKVH), len = P0 + t + 1, len16 = (len + 15) / 16 * 16;
			const float *qq = qd + (t * NH + h) * HD;
			float mx = -INFINITY, inv;

			for (p = 0; p < len; p++) {
				s[p] = k->dot_f32_ggml(HD, kd + p * HD * NKVH + g * HD, qq);
				bad[0] += !same(s[p], kqd[(h * NT + t) * NKV + p]);
				nkq++;
				s[p] *= scale;
				mx = s[p] > mx ? s[p] : mx;
			}
			for (; p < len16; p++)
				s[p] = -INFINITY;
			inv = (float)(1.0 / k->softmax_exp_ggml(len16, s, mx));
			for (p = 0; p < NKV; p++) {
				s[p] = p < len ? s[p] * inv : 0.0f;
				bad[1] += !same(s[p], smd[(h * NT + t) * NKV + p]);
			}
			if (NT >= 2 && HD % 4 == 0) {
				memset(acc, 0, sizeof(float) * 16 * (size_t)HD);
				for (p = 0; p < len; p++) {
					for (i = 0; i < HD; i++)
						col[i] = vd[(g * HD + i) * KV + p];
					k->fma_f32(HD, s[p], col, acc + (p % 16) * HD);
				}
				for (i = 0; i < HD; i++) {
					float lanes[16];

					for (l = 0; l < 16; l++)
						lanes[l] = acc[l * HD + i];
					bad[2] += !same(mcb_reduce16_ggml(lanes), od[(h * NT + t) * HD + i]);
				}
			} else {
				for (i = 0; i < HD; i++) {
					for (p = 0; p < NKV; p++)
						col[p] = p < len ? vd[(g * HD + i) * KV + p] : 0.0f;
					bad[2] += !same(k->dot_f32_ggml(NKV, col, s),
							od[(h * NT + t) * HD + i]);
				}
			}
		}
	snprintf(what, sizeof(what), "[%s] attention hd %d, %d token%s at %d: q.k", k->name, HD, NT,
		 NT > 1 ? "s" : "", P0);
	report(what, bad[0], nkq);
	snprintf(what, sizeof(what), "[%s] attention hd %d, %d token%s at %d: soft_max_ext", k->name,
		 HD, NT, NT > 1 ? "s" : "", P0);
	report(what, bad[1], (long)NH * NT * NKV);
	snprintf(what, sizeof(what), "[%s] attention hd %d, %d token%s at %d: V^T P", k->name, HD, NT,
		 NT > 1 ? "s" : "", P0);
	report(what, bad[2], (long)NH * NT * HD);
	free(s), free(col), free(acc);
	L.free(c);
}

static void check_swiglu(const struct mcb_kernels *k)
{
	static const int ns[] = {64, 172, 256, 512};
	long bad = 0, total = 0;
	size_t ni;
	char what[96];

	for (ni = 0; ni < sizeof(ns) / sizeof(ns[0]); ni++) {
		const int n = ns[ni], NT = 8;
		gt_ctx *c = ctx_new();
		gt_tensor *a = L.new2(c, GT_F32, n, NT), *b = L.new2(c, GT_F32, n, NT), *y;
		float *ad = L.data(a), *bd = L.data(b), *yd, *me = malloc(sizeof(float) * (size_t)(n * NT));
		int i, t;

		for (i = 0; i < n * NT; i++) {
			ad[i] = urand() * (i % 11 ? 8.0f : 120.0f);
			bd[i] = urand();
		}
		memcpy(me, ad, sizeof(float) * (size_t)(n * NT));
		y = L.swiglu(c, a, b);
		run_graph(c, y, NULL);
		yd = L.data(y);
		for (t = 0; t < NT; t++)
			k->swiglu_ggml(n, me + t * n, bd + t * n);
		bad += count_diff(me, yd, (long)n * NT);
		total += (long)n * NT;
		free(me);
		L.free(c);
	}
	snprintf(what, sizeof(what), "[%s] swiglu_split (ggml_vec_swiglu_f32)", k->name);
	report(what, bad, total);
}

#define SYM(h, field, name)                                                   \
	do {                                                                  \
		*(void **)&L.field = dlsym(h, name);                          \
		if (!L.field) {                                               \
			fprintf(stderr, "ggml_oracle: %s is missing\n", name); \
			return 3;                                             \
		}                                                             \
	} while (0)

int main(int argc, char **argv)
{
	const char *variant = argc > 2 ? argv[2] : "zen4";
	const struct mcb_kernels *tabs[2] = {mcb_kernels_ref(), mcb_kernels_avx2()};
	char path[4096];
	void *hb, *hc;
	int ti;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: ggml_oracle LIBDIR [VARIANT]\n");
		return 2;
	}
#if defined(__x86_64__) && defined(__GNUC__)
	if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
	    !__builtin_cpu_supports("avx512vl")) {
		printf("ggml_oracle: SKIP: the CPU has no AVX-512 (llama.cpp runs another build)\n");
		return 3;
	}
#else
	printf("ggml_oracle: SKIP: not an x86-64 build\n");
	return 3;
#endif
	snprintf(path, sizeof(path), "%s/libggml-base.so", argv[1]);
	if (!(hb = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) {
		printf("ggml_oracle: SKIP: %s\n", dlerror());
		return 3;
	}
	snprintf(path, sizeof(path), "%s/libggml-cpu-%s.so", argv[1], variant);
	if (!(hc = dlopen(path, RTLD_NOW | RTLD_GLOBAL))) {
		printf("ggml_oracle: SKIP: %s\n", dlerror());
		return 3;
	}
	{
		void (*cpu_init)(void);

		*(void **)&cpu_init = dlsym(hc, "ggml_cpu_init");
		if (!cpu_init) {
			fprintf(stderr, "ggml_oracle: ggml_cpu_init is missing\n");
			return 3;
		}
		cpu_init();
	}
	SYM(hc, traits, "ggml_get_type_traits_cpu");
	SYM(hc, gemv_q4_0, "ggml_gemv_q4_0_8x8_q8_0");
	SYM(hc, gemm_q4_0, "ggml_gemm_q4_0_8x8_q8_0");
	SYM(hc, gemv_q4_k, "ggml_gemv_q4_K_8x8_q8_K");
	SYM(hc, gemm_q4_k, "ggml_gemm_q4_K_8x8_q8_K");
	/* ggml_quantize_mat_t<8, GGML_TYPE_Q8_0 / GGML_TYPE_Q8_K> (C++) */
	SYM(hc, qmat_q8_0, "_Z19ggml_quantize_mat_tILl8EL9ggml_type8EEvPKfPvll");
	SYM(hc, qmat_q8_k, "_Z19ggml_quantize_mat_tILl8EL9ggml_type15EEvPKfPvll");
	SYM(hc, compute, "ggml_graph_compute_with_ctx");
	SYM(hb, init, "ggml_init");
	SYM(hb, free, "ggml_free");
	SYM(hb, new1, "ggml_new_tensor_1d");
	SYM(hb, new2, "ggml_new_tensor_2d");
	SYM(hb, new3, "ggml_new_tensor_3d");
	SYM(hb, data, "ggml_get_data");
	SYM(hb, mul_mat, "ggml_mul_mat");
	SYM(hb, rms_norm, "ggml_rms_norm");
	SYM(hb, mul, "ggml_mul");
	SYM(hb, get_rows, "ggml_get_rows");
	SYM(hb, rope_ext, "ggml_rope_ext");
	SYM(hb, soft_max_ext, "ggml_soft_max_ext");
	SYM(hb, permute, "ggml_permute");
	SYM(hb, view3, "ggml_view_3d");
	SYM(hb, swiglu, "ggml_swiglu_split");
	SYM(hb, graph, "ggml_new_graph");
	SYM(hb, expand, "ggml_build_forward_expand");

	check_rms_norm();
	check_rope();
	for (ti = 0; ti < 2; ti++) {
		const struct mcb_kernels *k = tabs[ti];

		if (!k)
			continue;
		check_act(k);
		check_vec_dots(k, hc);
		check_repacked(k);
		check_mul_mat(k);
		check_attention(k, 32, 64, 0);
		check_attention(k, 32, 7, 300);
		check_attention(k, 8, 64, 10);
		check_attention(k, 32, 1, 63);
		check_attention(k, 32, 1, 300);
		check_attention(k, 8, 1, 200);
		check_swiglu(k);
	}
	printf("ggml_oracle: %d of %d checks differ from llama.cpp's kernels\n", nbad, nchecks);
	return nbad ? 1 : 0;
}
