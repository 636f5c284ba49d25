/*
 * The export step's formats round-trip through mcbuild's own readers:
 * small internal-form models with random weights are quantized with the
 * real kernels (mcb_intq_rtn with act-order g_idx, asymmetric, 3-bit;
 * Q8_0's split form; ggml blocks; e4m3; W8A8 with an input scale; a 2:4
 * mask; an F16 fallback), exported by the step's run function as gguf,
 * safetensors, gptq and awq, imported again (mcb_gguf_read_model,
 * mcb_hf_read) and compared record by record and row by row, bit for bit
 * (Q4_1 made from int codes: within its fp16 rounding of m).  Metadata and
 * config.json fields are checked, and a corpus of malformed quantized
 * checkpoints must be refused with messages naming the file and tensor.
 *
 * With MCB_EXPORT_DUMP=DIR the GPTQ and AWQ cases also leave, per packed
 * weight, a directory for tests/compat/pack_check.py (codes, zeros and the
 * dequantized weights in HF row order, and the exported files): see
 * tests/compat/export_check.sh.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/hash.h"
#include "mcb/hf.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/qtensor.h"
#include "mcb/quant.h"
#include "mcb/rng.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

/* The test model: dim 256 (Q4_K/Q6_K rows), 4 heads of 64, 2 KV heads. */
#define DIM 256
#define HIDDEN 512
#define LAYERS 2
#define HEADS 4
#define KV 2
#define VOCAB 300
#define SEQ 64

static const char *const linears[] = {"attn_q", "attn_k", "attn_v", "attn_output",
				      "ffn_gate", "ffn_up", "ffn_down"};
#define NLIN 7

static struct mcb_rng rng;

static char *lname(int layer, int k)
{
	static char buf[8][64];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "blk.%d.%s.weight", layer, linears[k]);
	return buf[i];
}

/* dst = a "/" b (not inlined: the buffers' sizes are the caller's concern,
 * not -Wformat-truncation's). */
__attribute__((noinline)) static void join(char *dst, size_t n, const char *a, const char *b)
{
	if ((size_t)snprintf(dst, n, "%s/%s", a, b) >= n)
		mcbt_fail(__FILE__, __LINE__, "path too long: %s/%s", a, b);
}

static json_t *quant(struct mcb_model *m)
{
	json_t *q = json_object_get(m->meta, "quant");

	if (!q) {
		q = json_object();
		json_object_set_new(m->meta, "quant", q);
	}
	return q;
}

static void *new_t(struct mcb_model *m, const char *name, enum mcb_dtype dt, int ndim, int64_t d0,
		   int64_t d1)
{
	int64_t shape[2] = {d0, d1};
	struct mcb_tensor *t;
	struct mcb_errctx e;

	CHECK_OK(mcb_model_new_tensor(m, name, dt, ndim, shape, &t, &e), &e);
	return t->data;
}

static void rand_f32(float *w, size_t n, float amp)
{
	size_t i;

	for (i = 0; i < n; i++)
		w[i] = (float)((mcb_rng_double(&rng) * 2 - 1) * amp);
}

/* A float Llama model (untied) with random F32 weights and heads of hd
 * rows (64 = dim / heads; less: as after structured head pruning). */
static void synth_hd(struct mcb_model *m, int64_t hd)
{
	const struct {
		const char *s;
		int64_t d0, d1;
	} lay[] = {{"attn_norm", DIM, 0},	   {"attn_q", HEADS * hd, DIM},
		   {"attn_k", KV * hd, DIM},	   {"attn_v", KV * hd, DIM},
		   {"attn_output", DIM, HEADS * hd}, {"ffn_norm", DIM, 0},
		   {"ffn_gate", HIDDEN, DIM},	   {"ffn_up", HIDDEN, DIM},
		   {"ffn_down", DIM, HIDDEN}};
	char name[64];
	size_t i;
	int l;

	mcb_model_init(m);
	strcpy(m->arch, "llama");
	m->cfg = (struct mcb_llama_config){DIM, HIDDEN, LAYERS, HEADS, KV, VOCAB, SEQ, hd,
					   1e-5, 10000.0, 0};
	rand_f32(new_t(m, "token_embd.weight", MCB_DT_F32, 2, VOCAB, DIM), VOCAB * DIM, 0.5f);
	rand_f32(new_t(m, "output.weight", MCB_DT_F32, 2, VOCAB, DIM), VOCAB * DIM, 0.5f);
	rand_f32(new_t(m, "output_norm.weight", MCB_DT_F32, 1, DIM, 0), DIM, 1.0f);
	for (l = 0; l < LAYERS; l++)
		for (i = 0; i < sizeof(lay) / sizeof(lay[0]); i++) {
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, lay[i].s);
			rand_f32(new_t(m, name, MCB_DT_F32, lay[i].d1 ? 2 : 1, lay[i].d0, lay[i].d1),
				 (size_t)(lay[i].d0 * (lay[i].d1 ? lay[i].d1 : 1)), 0.5f);
		}
}

static void synth(struct mcb_model *m)
{
	synth_hd(m, DIM / HEADS);
}

/* The F32 weights of name (rows, cols), removed from m (caller frees). */
static float *take(struct mcb_model *m, const char *name, int64_t *rows, int64_t *cols)
{
	struct mcb_tensor *t = mcb_model_find(m, name);
	float *w;

	*rows = t->shape[0];
	*cols = t->shape[1];
	w = malloc(t->nbytes);
	memcpy(w, t->data, t->nbytes);
	mcb_model_remove(m, name);
	return w;
}

static char *side(const char *name, const char *what)
{
	static char buf[8][96];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s.%s", name, what);
	return buf[i];
}

/* GPTQ-style int quantization of name (mcb_intq_rtn); act_order: columns in
 * a random order, g_idx[c] the group of column c in that order. */
static void q_int(struct mcb_model *m, const char *name, int bits, int64_t group, int sym,
		  int act_order, int fp16_scale)
{
	int64_t rows, cols, ng, r, c, j;
	float *w = take(m, name, &rows, &cols), *wp, *scale;
	struct mcb_intq_params p = {bits, group, sym, fp16_scale};
	uint8_t *q, *qp, *zero;
	int64_t *perm;
	int32_t *g_idx = NULL;
	int half = 1 << (bits - 1);
	json_t *rec;

	ng = group ? (cols + group - 1) / group : 1;
	wp = malloc((size_t)(rows * cols) * 4);
	perm = malloc((size_t)cols * sizeof(*perm));
	q = malloc((size_t)(rows * cols));
	qp = malloc((size_t)(rows * cols));
	scale = malloc((size_t)(rows * ng) * 4);
	zero = malloc((size_t)(rows * ng));
	for (c = 0; c < cols; c++)
		perm[c] = c;
	if (act_order)
		for (c = cols - 1; c > 0; c--) {
			int64_t k = (int64_t)mcb_rng_below(&rng, (uint64_t)c + 1), t = perm[c];

			perm[c] = perm[k];
			perm[k] = t;
		}
	for (r = 0; r < rows; r++)
		for (j = 0; j < cols; j++)
			wp[r * cols + j] = w[r * cols + perm[j]];
	mcb_intq_rtn(wp, rows, cols, &p, qp, scale, zero);
	for (r = 0; r < rows; r++)
		for (j = 0; j < cols; j++)
			q[r * cols + perm[j]] = qp[r * cols + j];
	if (act_order) {
		g_idx = new_t(m, side(name, "g_idx"), MCB_DT_I32, 1, cols, 0);
		for (j = 0; j < cols; j++)
			g_idx[perm[j]] = (int32_t)(j / group);
	}
	if (sym) {
		int8_t *dst = new_t(m, name, MCB_DT_I8, 2, rows, cols);

		for (j = 0; j < rows * cols; j++)
			dst[j] = (int8_t)(q[j] - half);
	} else {
		memcpy(new_t(m, name, MCB_DT_U8, 2, rows, cols), q, (size_t)(rows * cols));
		memcpy(new_t(m, side(name, "zero"), MCB_DT_U8, 2, rows, ng), zero, (size_t)(rows * ng));
	}
	if (group) {
		uint16_t *s = new_t(m, side(name, "scale"), MCB_DT_F16, 2, rows, ng);

		for (j = 0; j < rows * ng; j++)
			s[j] = mcb_f32_to_f16(scale[j]);
	} else {
		memcpy(new_t(m, side(name, "scale"), MCB_DT_F32, 1, rows, 0), scale, (size_t)rows * 4);
	}
	rec = json_pack("{s:s, s:s, s:i, s:s, s:I, s:b, s:s}", "format", "int", "method", "gptq",
			"bits", bits, "granularity", group ? "group" : "channel", "group_size",
			(json_int_t)group, "symmetric", sym, "scale", side(name, "scale"));
	if (!sym)
		json_object_set_new(rec, "zero", json_string(side(name, "zero")));
	if (act_order)
		json_object_set_new(rec, "g_idx", json_string(side(name, "g_idx")));
	json_object_set_new(quant(m), name, rec);
	free(w), free(wp), free(perm), free(q), free(qp), free(scale), free(zero);
}

/* Q8_0's split form (the quantize step's put_q8_0). */
static void q_q8_0(struct mcb_model *m, const char *name)
{
	int64_t rows, cols, r;
	float *w = take(m, name, &rows, &cols);
	int8_t *c = new_t(m, name, MCB_DT_I8, 2, rows, cols);
	uint16_t *d = new_t(m, side(name, "scale"), MCB_DT_F16, 2, rows, cols / 32);

	c = mcb_model_find(m, name)->data;
	for (r = 0; r < rows; r++)
		mcb_quantize_row_q8_0_split(w + r * cols, c + r * cols, d + r * (cols / 32), cols);
	json_object_set_new(quant(m), name,
			    json_pack("{s:s, s:s, s:i, s:s, s:i, s:b, s:s}", "format", "int", "method",
				      "rtn", "bits", 8, "granularity", "group", "group_size", 32,
				      "symmetric", 1, "scale", side(name, "scale")));
	free(w);
}

static void q_ggml(struct mcb_model *m, const char *name, enum mcb_dtype dt)
{
	const struct mcb_dtype_info *di = mcb_dtype_info(dt);
	int64_t rows, cols, r;
	float *w = take(m, name, &rows, &cols);
	size_t rb = (size_t)(cols / di->block) * di->block_bytes;
	uint8_t *b = new_t(m, name, MCB_DT_U8, 2, rows, (int64_t)rb);

	for (r = 0; r < rows; r++)
		mcb_quantize_row_ggml(dt, w + r * cols, b + (size_t)r * rb, cols);
	json_object_set_new(quant(m), name,
			    json_pack("{s:s, s:s, s:s}", "format", "ggml", "method", "rtn", "ggml_type",
				      di->name));
	free(w);
}

static void q_fp8(struct mcb_model *m, const char *name)
{
	int64_t rows, cols, r, j;
	float *w = take(m, name, &rows, &cols), *s;
	uint8_t *c = new_t(m, name, MCB_DT_F8_E4M3, 2, rows, cols);

	s = new_t(m, side(name, "scale"), MCB_DT_F32, 1, rows, 0);
	c = mcb_model_find(m, name)->data;
	for (r = 0; r < rows; r++) {
		float a = 0;

		for (j = 0; j < cols; j++)
			a = fabsf(w[r * cols + j]) > a ? fabsf(w[r * cols + j]) : a;
		s[r] = a / 448.0f;
		for (j = 0; j < cols; j++)
			c[r * cols + j] = mcb_f32_to_e4m3(w[r * cols + j] / s[r]);
	}
	json_object_set_new(quant(m), name,
			    json_pack("{s:s, s:s, s:i, s:s, s:i, s:s}", "format", "fp8", "method", "fp8",
				      "bits", 8, "granularity", "channel", "group_size", 0, "scale",
				      side(name, "scale")));
	free(w);
}

/* int8 per channel (mcb_rtn_int8_channel); input_scale > 0: W8A8. */
static void q_int8(struct mcb_model *m, const char *name, float input_scale)
{
	int64_t rows, cols;
	float *w = take(m, name, &rows, &cols), *s;
	int8_t *c = new_t(m, name, MCB_DT_I8, 2, rows, cols);
	json_t *rec;

	s = new_t(m, side(name, "scale"), MCB_DT_F32, 1, rows, 0);
	c = mcb_model_find(m, name)->data;
	mcb_rtn_int8_channel(w, rows, cols, c, s);
	rec = json_pack("{s:s, s:s, s:i, s:s, s:i, s:b, s:s}", "format", "int", "method",
			input_scale > 0 ? "smoothquant" : "rtn", "bits", 8, "granularity", "channel",
			"group_size", 0, "symmetric", 1, "scale", side(name, "scale"));
	if (input_scale > 0) {
		*(float *)new_t(m, side(name, "input_scale"), MCB_DT_F32, 1, 1, 0) = input_scale;
		json_object_set_new(rec, "input_scale", json_string(side(name, "input_scale")));
	}
	json_object_set_new(quant(m), name, rec);
	free(w);
}

static void fallback(struct mcb_model *m, const char *name)
{
	int64_t rows, cols, i;
	float *w = take(m, name, &rows, &cols);
	uint16_t *h = new_t(m, name, MCB_DT_F16, 2, rows, cols);

	for (i = 0; i < rows * cols; i++)
		h[i] = mcb_f32_to_f16(w[i]);
	json_object_set_new(quant(m), name,
			    json_pack("{s:s, s:s}", "fallback", "F16", "reason", "test fallback"));
	free(w);
}

/* 2:4 pruning of a float weight: the two smallest |w| of every 4 columns. */
static void prune24(struct mcb_model *m, const char *name)
{
	struct mcb_tensor *t = mcb_model_find(m, name);
	int64_t rows = t->shape[0], cols = t->shape[1], r, c, k;
	float *w = t->data;
	uint8_t *mk = new_t(m, side(name, "mask"), MCB_DT_U8, 2, rows, cols);

	w = mcb_model_find(m, name)->data;
	for (r = 0; r < rows; r++)
		for (c = 0; c < cols; c += 4) {
			float *x = w + r * cols + c;
			int a = 0, b = 1;

			if (fabsf(x[b]) < fabsf(x[a]))
				a = 1, b = 0;
			for (k = 2; k < 4; k++)
				if (fabsf(x[k]) < fabsf(x[a]))
					b = a, a = (int)k;
				else if (fabsf(x[k]) < fabsf(x[b]))
					b = (int)k;
			for (k = 0; k < 4; k++) {
				mk[r * cols + c + k] = k != a && k != b;
				if (!mk[r * cols + c + k])
					x[k] = 0;
			}
		}
	json_object_set_new(quant(m), name,
			    json_pack("{s:s, s:s, s:s, s:s}", "format", "float", "method", "wanda",
				      "sparsity", "2:4", "mask", side(name, "mask")));
}

/* ---- running the step ---- */

/* Save m as an IR file in dir and run the export step with format; the
 * step's result (error text in e). */
static int run_export(struct mcb_model *m, const char *dir, const char *format,
		      struct mcb_errctx *e, char *outdir, size_t n)
{
	struct mcb_step_input in;
	struct mcb_stepctx sc;
	struct mcb_arena a;
	struct mcb_buf log = MCB_BUF_INIT;
	char ir[4096], params[128];
	json_t *p;
	int rc;

	join(ir, sizeof(ir), dir, "ir.safetensors");
	snprintf(outdir, n, "%s/out-%s", dir, format);
	CHECK_OK(mcb_model_save_ir(m, ir, e), e);
	CHECK_OK(mcb_os_mkdirs(outdir, e), e);
	memset(&in, 0, sizeof(in));
	in.name = "model";
	in.path = ir;
	CHECK_OK(mcb_sha256_file(ir, &in.digest, &in.size, e), e);
	snprintf(params, sizeof(params), "{\"format\": \"%s\"}", format);
	p = json_loads(params, 0, NULL);
	mcb_arena_init(&a);
	memset(&sc, 0, sizeof(sc));
	sc.params = p;
	sc.in = &in;
	sc.nin = 1;
	sc.outdir = outdir;
	sc.scratch = &a;
	sc.log = &log;
	sc.e = e;
	sc.blas_threads = 1;
	mcb_errclear(e);
	rc = mcb_step_export.run(&sc);
	if (log.len)
		fprintf(stderr, "  [export %s log] %s\n", format, mcb_buf_str(&log));
	mcb_arena_release(&a);
	mcb_buf_release(&log);
	json_decref(p);
	return rc;
}

/* Import the exported files in outdir (format as exported). */
static int import(const char *outdir, const char *format, struct mcb_model *r,
		  struct mcb_errctx *e)
{
	char a[4096], b[4096];

	mcb_model_init(r);
	if (!strcmp(format, "gguf")) {
		join(a, sizeof(a), outdir, "model.gguf");
		return mcb_gguf_read_model(a, r, e);
	}
	join(a, sizeof(a), outdir, "model.safetensors");
	join(b, sizeof(b), outdir, "config.json");
	return mcb_hf_read(a, b, r, e);
}

static int get_q(const struct mcb_model *m, const char *name, struct mcb_qtensor *q,
		 struct mcb_errctx *e)
{
	return mcb_qtensor_get(m, name, q, e);
}

enum cmp { SAME_RECORD, SAME_VALUES, CLOSE };

static int same_tensor(const struct mcb_tensor *a, const struct mcb_tensor *b)
{
	if (!a || !b)
		return a == b;
	return a->dtype == b->dtype && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
}

/* Compare weight name of a (the source) and b (re-imported). */
static void cmp_weight(const struct mcb_model *a, const struct mcb_model *b, const char *name,
		       enum cmp how, float tol)
{
	struct mcb_qtensor qa, qb;
	struct mcb_errctx e;
	float *ra, *rb;
	int64_t r, c, nbad = 0;

	CHECK_OK(get_q(a, name, &qa, &e), &e);
	CHECK_OK(get_q(b, name, &qb, &e), &e);
	if (qa.rows != qb.rows || qa.cols != qb.cols) {
		mcbt_fail(__FILE__, __LINE__, "%s: %lld x %lld became %lld x %lld", name,
			  (long long)qa.rows, (long long)qa.cols, (long long)qb.rows, (long long)qb.cols);
		return;
	}
	if (how == SAME_RECORD) {
		if (qa.format != qb.format || qa.bits != qb.bits || qa.group_size != qb.group_size ||
		    qa.symmetric != qb.symmetric || qa.ggml != qb.ggml ||
		    !same_tensor(qa.codes, qb.codes) || !same_tensor(qa.scale, qb.scale) ||
		    !same_tensor(qa.zero, qb.zero) || !same_tensor(qa.g_idx, qb.g_idx))
			mcbt_fail(__FILE__, __LINE__, "%s: record differs after the round trip (format "
				  "%d/%d bits %d/%d group %lld/%lld sym %d/%d codes %d scale %d zero %d "
				  "g_idx %d)", name, qa.format, qb.format, qa.bits, qb.bits,
				  (long long)qa.group_size, (long long)qb.group_size, qa.symmetric,
				  qb.symmetric, same_tensor(qa.codes, qb.codes),
				  same_tensor(qa.scale, qb.scale), same_tensor(qa.zero, qb.zero),
				  same_tensor(qa.g_idx, qb.g_idx));
	}
	ra = malloc((size_t)qa.cols * 4);
	rb = malloc((size_t)qa.cols * 4);
	for (r = 0; r < qa.rows; r++) {
		mcb_qtensor_row(&qa, r, ra);
		mcb_qtensor_row(&qb, r, rb);
		for (c = 0; c < qa.cols; c++)
			if (how == CLOSE ? !(fabsf(ra[c] - rb[c]) <= tol)
					 : memcmp(&ra[c], &rb[c], 4) != 0) {
				if (nbad++ < 3)
					mcbt_fail(__FILE__, __LINE__, "%s[%lld][%lld]: %.9g became %.9g",
						  name, (long long)r, (long long)c, (double)ra[c],
						  (double)rb[c]);
			}
	}
	free(ra);
	free(rb);
}

/* Every 2-D weight of a compared with how; 1-D tensors bit for bit. */
static void cmp_all(const struct mcb_model *a, const struct mcb_model *b, enum cmp how)
{
	int l, k;

	cmp_weight(a, b, "token_embd.weight", how, 0);
	cmp_weight(a, b, "output.weight", how, 0);
	CHECK(same_tensor(mcb_model_find(a, "output_norm.weight"), mcb_model_find(b, "output_norm.weight")));
	for (l = 0; l < LAYERS; l++) {
		char n1[64], n2[64];

		for (k = 0; k < NLIN; k++)
			cmp_weight(a, b, lname(l, k), how, 0);
		snprintf(n1, sizeof(n1), "blk.%d.attn_norm.weight", l);
		snprintf(n2, sizeof(n2), "blk.%d.ffn_norm.weight", l);
		CHECK(same_tensor(mcb_model_find(a, n1), mcb_model_find(b, n1)));
		CHECK(same_tensor(mcb_model_find(a, n2), mcb_model_find(b, n2)));
	}
}

static json_t *load_json(const char *dir, const char *file)
{
	char p[4096];
	json_t *j;

	join(p, sizeof(p), dir, file);
	j = json_load_file(p, 0, NULL);
	if (!j)
		mcbt_fail(__FILE__, __LINE__, "cannot read %s", p);
	return j;
}

static int has_str(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

static const struct mcb_tensor *st_tensor(const struct mcb_st_file *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->ntensors; i++)
		if (!strcmp(f->tensors[i].name, name))
			return &f->tensors[i];
	return NULL;
}

/* ---- pack_check dumps (MCB_EXPORT_DUMP) ---- */

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];

	join(path, sizeof(path), dir, name);
	mcbt_write(path, p, n);
}

/*
 * For tests/compat/export_check.sh: dir DUMP/<tag>-<ir name> with codes.u8
 * [rows, cols] (unsigned), zeros.u8 [rows, ngroups], expect.f32 [rows,
 * cols] (mcb_qtensor_row of the source), all in HF row order, "meta"
 * (rows cols bits group ngroups) and "src" (the exported model.safetensors
 * and the module prefix, for the script to cut the packed tensors out of).
 */
static void dump_packed(const struct mcb_model *m, const char *name, const char *tag,
			const char *outdir)
{
	const char *root = getenv("MCB_EXPORT_DUMP");
	struct mcb_qtensor q;
	struct mcb_errctx e;
	char dir[4096], hf[256], text[8400], cmd[8400];
	int64_t rows, cols, ng, i, heads = 0;
	uint8_t *codes, *zeros;
	float *expect;
	int half;

	if (!root || !*root)
		return;
	CHECK_OK(mcb_qtensor_get(m, name, &q, &e), &e);
	rows = q.rows, cols = q.cols, ng = q.ngroups, half = 1 << (q.bits - 1);
	snprintf(dir, sizeof(dir), "%s/%s-%s", root, tag, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	CHECK(system(cmd) == 0);
	codes = malloc((size_t)(rows * cols));
	zeros = malloc((size_t)(rows * ng));
	expect = malloc((size_t)(rows * cols) * 4);
	for (i = 0; i < rows * cols; i++)
		codes[i] = q.symmetric ? (uint8_t)(((const int8_t *)q.codes->data)[i] + half)
				       : ((const uint8_t *)q.codes->data)[i];
	for (i = 0; i < rows * ng; i++)
		zeros[i] = q.symmetric ? (uint8_t)half : ((const uint8_t *)q.zero->data)[i];
	for (i = 0; i < rows; i++)
		mcb_qtensor_row(&q, i, expect + i * cols);
	if (strstr(name, ".attn_q."))
		heads = HEADS;
	else if (strstr(name, ".attn_k."))
		heads = KV;
	if (heads) {
		CHECK_OK(mcb_hf_permute_rows(codes, heads, DIM / HEADS, cols, 1, 0, &e), &e);
		CHECK_OK(mcb_hf_permute_rows(zeros, heads, DIM / HEADS, ng, 1, 0, &e), &e);
		CHECK_OK(mcb_hf_permute_rows(expect, heads, DIM / HEADS, cols, 4, 0, &e), &e);
	}
	write_file(dir, "codes.u8", codes, (size_t)(rows * cols));
	write_file(dir, "zeros.u8", zeros, (size_t)(rows * ng));
	write_file(dir, "expect.f32", expect, (size_t)(rows * cols) * 4);
	snprintf(text, sizeof(text), "rows=%lld cols=%lld bits=%d group=%lld ngroups=%lld\n",
		 (long long)rows, (long long)cols, q.bits, (long long)q.group_size, (long long)ng);
	write_file(dir, "meta", text, strlen(text));
	CHECK_EQ(mcb_gguf_to_hf_name(name, hf, sizeof(hf)), 0);
	hf[strlen(hf) - 7] = 0; /* the module */
	snprintf(text, sizeof(text), "%s/model.safetensors %s %s\n", outdir, hf,
		 !strcmp(tag, "awq") || !strncmp(tag, "awq", 3) ? "awq" : "gptq");
	write_file(dir, "src", text, strlen(text));
	free(codes), free(zeros), free(expect);
}

/* ---- GGUF ---- */

static const struct mcb_gguf_kv *kv(const struct mcb_gguf *g, const char *key)
{
	const struct mcb_gguf_kv *k = mcb_gguf_find(g, key);

	if (!k)
		mcbt_fail(__FILE__, __LINE__, "GGUF key %s missing", key);
	return k;
}

static void test_gguf(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096], path[4096];
	struct mcb_model m, r;
	struct mcb_errctx e;
	struct mcb_gguf g;
	const struct mcb_gguf_kv *k;
	json_t *qj;
	int kk;

	mcb_rng_seed(&rng, 1);
	synth(&m);
	q_q8_0(&m, lname(0, 0));                     /* int -> Q8_0 */
	q_int(&m, lname(0, 1), 4, 32, 1, 0, 1);       /* int -> Q4_0 */
	q_int(&m, lname(0, 2), 4, 32, 0, 0, 1);       /* int -> Q4_1 */
	q_ggml(&m, lname(0, 3), MCB_DT_Q4_K);
	q_ggml(&m, lname(0, 4), MCB_DT_Q6_K);
	q_ggml(&m, lname(0, 5), MCB_DT_Q4_0);
	q_ggml(&m, lname(0, 6), MCB_DT_Q4_1);
	for (kk = 0; kk < NLIN; kk++)
		q_ggml(&m, lname(1, kk), kk == 2 ? MCB_DT_Q6_K : MCB_DT_Q4_K);
	q_q8_0(&m, "token_embd.weight");
	fallback(&m, "output.weight");
	CHECK_OK(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e);
	CHECK_OK(import(out, "gguf", &r, &e), &e);
	cmp_weight(&m, &r, lname(0, 0), SAME_RECORD, 0);
	cmp_weight(&m, &r, "token_embd.weight", SAME_RECORD, 0);
	cmp_weight(&m, &r, lname(0, 1), SAME_VALUES, 0); /* now a ggml Q4_0 record */
	{
		/* Q4_1: m = -d*zero rounded to fp16, then q*d + m: within a few fp16
		 * ulps of m (|m| <= 15 * max d ~ 0.5 here) */
		cmp_weight(&m, &r, lname(0, 2), CLOSE, 1e-3f);
	}
	for (kk = 3; kk < NLIN; kk++)
		cmp_weight(&m, &r, lname(0, kk), SAME_RECORD, 0);
	for (kk = 0; kk < NLIN; kk++)
		cmp_weight(&m, &r, lname(1, kk), SAME_RECORD, 0);
	cmp_weight(&m, &r, "output.weight", SAME_VALUES, 0);
	CHECK(same_tensor(mcb_model_find(&m, "blk.1.ffn_norm.weight"),
			  mcb_model_find(&r, "blk.1.ffn_norm.weight")));
	{
		struct mcb_qtensor q;

		CHECK_OK(mcb_qtensor_get(&r, lname(0, 1), &q, &e), &e);
		CHECK_EQ(q.format, MCB_QF_GGML);
		CHECK_EQ(q.ggml, MCB_DT_Q4_0);
		CHECK_OK(mcb_qtensor_get(&r, lname(0, 2), &q, &e), &e);
		CHECK_EQ(q.ggml, MCB_DT_Q4_1);
	}
	mcb_model_release(&r);
	/* metadata */
	join(path, sizeof(path), out, "model.gguf");
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	k = kv(&g, "general.file_type");
	CHECK(k && k->val.v.u == 15); /* Q4_K most common, Q6_K attn_v: MOSTLY_Q4_K_M */
	k = kv(&g, "general.quantization_version");
	CHECK(k && k->val.v.u == 2);
	CHECK(kv(&g, "tokenizer.ggml.tokens") != NULL);
	CHECK(mcb_gguf_find(&g, "llama.attention.key_length") == NULL);
	k = kv(&g, "llama.attention.head_count_kv");
	CHECK(k && k->val.v.u == KV);
	k = kv(&g, "mcbuild.quantization");
	qj = k && k->val.type == MCB_GGUF_STR ? json_loads(k->val.v.str.s, 0, NULL) : NULL;
	CHECK(qj != NULL);
	CHECK_EQ(json_integer_value(json_object_get(json_object_get(qj, lname(0, 2)), "bits")), 4);
	CHECK(json_object_get(json_object_get(qj, lname(0, 2)), "scale") == NULL);
	CHECK_STR(json_string_value(json_object_get(json_object_get(qj, lname(1, 0)), "ggml_type")),
		  "Q4_K");
	json_decref(qj);
	{
		const struct mcb_gguf_tensor *t = mcb_gguf_find_tensor(&g, lname(0, 2));

		CHECK(t && t->type == 3 && t->ne[0] == DIM && t->ne[1] == KV * 64);
		t = mcb_gguf_find_tensor(&g, lname(0, 1));
		CHECK(t && t->type == 2);
		t = mcb_gguf_find_tensor(&g, "output.weight");
		CHECK(t && t->type == 1);
	}
	mcb_gguf_close(&g);
	mcb_model_release(&m);

	/* refused: forms GGUF has no block for */

	mcb_rng_seed(&rng, 2);
	synth(&m);
	q_int(&m, lname(0, 0), 3, 32, 1, 0, 1);
	CHECK_ERR(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.0.attn_q.weight': 3-bit symmetric int quantization with group size 32 "
		  "has no GGUF block type");
	mcb_model_release(&m);
	synth(&m);
	q_int(&m, lname(0, 0), 4, 32, 1, 1, 1);
	CHECK_ERR(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "act-order g_idx has no GGUF block type");
	mcb_model_release(&m);
	synth(&m);
	q_fp8(&m, lname(1, 3));
	CHECK_ERR(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.1.attn_output.weight' is quantized to FP8, which GGUF cannot store");
	mcb_model_release(&m);
}

/* A float model exports as F32 with ALL_F32 and no quantization keys. */
static void test_gguf_float(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096], path[4096];
	struct mcb_model m, r;
	struct mcb_errctx e;
	struct mcb_gguf g;

	mcb_rng_seed(&rng, 3);
	synth(&m);
	CHECK_OK(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e);
	CHECK_OK(import(out, "gguf", &r, &e), &e);
	cmp_all(&m, &r, SAME_RECORD);
	mcb_model_release(&r);
	join(path, sizeof(path), out, "model.gguf");
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	CHECK(mcb_gguf_find(&g, "general.file_type") && mcb_gguf_find(&g, "general.file_type")->val.v.u == 0);
	CHECK(mcb_gguf_find(&g, "general.quantization_version") == NULL);
	CHECK(mcb_gguf_find(&g, "mcbuild.quantization") == NULL);
	mcb_gguf_close(&g);
	mcb_model_release(&m);
}


/* Heads narrower than dim / n_heads (structured head pruning): GGUF gets
 * llama.attention.key_length/value_length, config.json head_dim, and both
 * read back with the same head size (Q/K permuted per 32-row head). */
static void test_narrow_heads(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096], path[8192];
	struct mcb_model m, r;
	struct mcb_errctx e;
	struct mcb_gguf g;
	const struct mcb_gguf_kv *k;
	int l, kk;

	mcb_rng_seed(&rng, 70);
	synth_hd(&m, 32);
	for (l = 0; l < LAYERS; l++)
		for (kk = 0; kk < NLIN; kk++)
			q_int(&m, lname(l, kk), 4, 32, 1, 0, 1);
	CHECK_OK(run_export(&m, dir, "gguf", &e, out, sizeof(out)), &e);
	join(path, sizeof(path), out, "model.gguf");
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	k = kv(&g, "llama.attention.key_length");
	CHECK(k && k->val.v.u == 32);
	k = kv(&g, "llama.attention.value_length");
	CHECK(k && k->val.v.u == 32);
	k = kv(&g, "general.file_type");
	CHECK(k && k->val.v.u == 2); /* MOSTLY_Q4_0 */
	mcb_gguf_close(&g);
	CHECK_OK(import(out, "gguf", &r, &e), &e);
	CHECK_EQ(r.cfg.head_dim, 32);
	cmp_all(&m, &r, SAME_VALUES);
	mcb_model_release(&r);
	CHECK_OK(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e);
	CHECK_OK(import(out, "gptq", &r, &e), &e);
	CHECK_EQ(r.cfg.head_dim, 32);
	cmp_all(&m, &r, SAME_RECORD);
	mcb_model_release(&r);
	mcb_model_release(&m);
}

/* ---- GPTQ ---- */

struct gptq_case {
	const char *tag;
	int bits;
	int64_t group;
	int sym, act_order;
};

static void check_gptq_files(const char *out, const struct gptq_case *gc)
{
	json_t *cfg = load_json(out, "config.json"), *qcf = load_json(out, "quantize_config.json");
	json_t *qc = json_object_get(cfg, "quantization_config");
	struct mcb_st_file f;
	struct mcb_errctx e;
	char path[4096];
	const struct mcb_tensor *t;
	int64_t ng = gc->group ? DIM / gc->group : 1;

	CHECK_STR(json_string_value(json_object_get(qc, "quant_method")), "gptq");
	CHECK_EQ(json_integer_value(json_object_get(qc, "bits")), gc->bits);
	CHECK_EQ(json_integer_value(json_object_get(qc, "group_size")), gc->group ? gc->group : -1);
	CHECK_EQ(json_is_true(json_object_get(qc, "desc_act")), gc->act_order);
	CHECK_EQ(json_is_true(json_object_get(qc, "sym")), gc->sym);
	CHECK(json_is_boolean(json_object_get(qc, "static_groups")));
	/* mcbuild quantizes every weight of a block on the block's inputs */
	CHECK(json_is_false(json_object_get(qc, "true_sequential")));
	CHECK(json_is_number(json_object_get(qc, "damp_percent")));
	CHECK_STR(json_string_value(json_object_get(qc, "checkpoint_format")), "gptq");
	CHECK_STR(json_string_value(json_object_get(cfg, "torch_dtype")), "float16");
	CHECK_EQ(json_integer_value(json_object_get(qcf, "bits")), gc->bits);
	CHECK_STR(json_string_value(json_object_get(qcf, "quant_method")), "gptq");
	CHECK_STR(json_string_value(json_object_get(qcf, "checkpoint_format")), "gptq");
	join(path, sizeof(path), out, "model.safetensors");
	CHECK_OK(mcb_st_open(path, &f, &e), &e);
	t = st_tensor(&f, "model.layers.0.self_attn.k_proj.qweight");
	CHECK(t && t->dtype == MCB_DT_I32 && t->shape[0] == DIM * gc->bits / 32 && t->shape[1] == KV * 64);
	t = st_tensor(&f, "model.layers.0.self_attn.k_proj.qzeros");
	CHECK(t && t->dtype == MCB_DT_I32 && t->shape[0] == ng && t->shape[1] == KV * 64 * gc->bits / 32);
	t = st_tensor(&f, "model.layers.0.self_attn.k_proj.scales");
	CHECK(t && t->dtype == MCB_DT_F16 && t->shape[0] == ng && t->shape[1] == KV * 64);
	t = st_tensor(&f, "model.layers.0.self_attn.k_proj.g_idx");
	CHECK(t && t->dtype == MCB_DT_I32 && t->ndim == 1 && t->shape[0] == DIM);
	CHECK(st_tensor(&f, "model.layers.0.self_attn.k_proj.weight") == NULL);
	CHECK(st_tensor(&f, "lm_head.weight") && st_tensor(&f, "model.embed_tokens.weight"));
	mcb_st_close(&f);
	json_decref(cfg);
	json_decref(qcf);
}

/* The exported q_proj codes are the IR's in HF's rotate-half row order,
 * written out here from the definition (hf.c): HF row h*hd + j*hd/2 + i
 * holds IR row h*hd + 2i + j. */
static void check_q_rows(const struct mcb_model *m, const char *out, int bits)
{
	const int64_t hd = DIM / HEADS;
	struct mcb_st_file f;
	struct mcb_errctx e;
	struct mcb_qtensor q;
	const struct mcb_tensor *t;
	char path[8192];
	int32_t *words;
	uint8_t *hf;
	int64_t h, i, j, c, bad = 0;

	join(path, sizeof(path), out, "model.safetensors");
	CHECK_OK(mcb_st_open(path, &f, &e), &e);
	CHECK_OK(mcb_qtensor_get(m, "blk.0.attn_q.weight", &q, &e), &e);
	t = st_tensor(&f, "model.layers.0.self_attn.q_proj.qweight");
	CHECK(t != NULL && !q.symmetric);
	if (!t || q.symmetric) {
		mcb_st_close(&f);
		return;
	}
	words = malloc(t->nbytes);
	hf = malloc((size_t)DIM * DIM);
	memcpy(words, t->data, t->nbytes);
	mcb_unpack_gptq(words, DIM, DIM, bits, hf);
	for (h = 0; h < HEADS; h++)
		for (i = 0; i < hd / 2; i++)
			for (j = 0; j < 2; j++)
				for (c = 0; c < DIM; c++)
					bad += hf[(h * hd + j * hd / 2 + i) * DIM + c] !=
					       ((const uint8_t *)q.codes->data)[(h * hd + 2 * i + j) * DIM + c];
	CHECK_EQ(bad, 0);
	free(words);
	free(hf);
	mcb_st_close(&f);
}

static void test_gptq(void)
{
	static const struct gptq_case cases[] = {
		{"gptq4-asym-actorder", 4, 32, 0, 1},
		{"gptq3-sym", 3, 64, 1, 0},
		{"gptq8-channel", 8, 0, 1, 0},
		{"gptq2-asym", 2, 32, 0, 0},
	};
	size_t i;
	int l, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct gptq_case *gc = &cases[i];
		const char *dir = mcbt_tmpdir();
		char out[4096];
		struct mcb_model m, r;
		struct mcb_errctx e;

		fprintf(stderr, "  gptq case %s\n", gc->tag);
		mcb_rng_seed(&rng, 10 + i);
		synth(&m);
		for (l = 0; l < LAYERS; l++)
			for (k = 0; k < NLIN; k++) {
				if (l == 1 && k == 5) {
					fallback(&m, lname(l, k)); /* stays F16, excluded in "dynamic" */
					continue;
				}
				/* act order on q (its rows are permuted too) and down */
				q_int(&m, lname(l, k), gc->bits, gc->group, gc->sym,
				      gc->act_order && (k == 0 || k == 6), 1);
			}
		CHECK_OK(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e);
		check_gptq_files(out, gc);
		CHECK_OK(import(out, "gptq", &r, &e), &e);
		cmp_all(&m, &r, SAME_RECORD);
		mcb_model_release(&r);
		dump_packed(&m, lname(0, 0), gc->tag, out);
		dump_packed(&m, lname(0, 1), gc->tag, out);
		dump_packed(&m, lname(1, 6), gc->tag, out);
		if (i == 0)
			check_q_rows(&m, out, gc->bits);
		if (i == 0) {
			json_t *cfg = load_json(out, "config.json");
			json_t *dyn = json_object_get(json_object_get(cfg, "quantization_config"), "dynamic");

			CHECK(json_object_get(dyn, "-:^model\\.layers\\.1\\.mlp\\.up_proj$") != NULL);
			json_decref(cfg);
		}
		mcb_model_release(&m);
	}
}

/* Weights of other bits or groups than most (a per-layer override): the
 * checkpoint's own parameters are the majority's, the others GPTQModel's
 * "+:" dynamic overrides, and the import reads them back exactly. */
static void test_gptq_dynamic(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096];
	struct mcb_model m, r;
	struct mcb_errctx e;
	json_t *cfg, *qc, *o;
	int l, k;

	mcb_rng_seed(&rng, 21);
	synth(&m);
	for (l = 0; l < LAYERS; l++)
		for (k = 0; k < NLIN; k++)
			q_int(&m, lname(l, k), l == 1 && k == 0 ? 8 : 4, k == 6 ? 0 : 32, 1, 0, 1);
	CHECK_OK(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e);
	cfg = load_json(out, "config.json");
	qc = json_object_get(cfg, "quantization_config");
	CHECK_EQ(json_integer_value(json_object_get(qc, "bits")), 4);
	CHECK_EQ(json_integer_value(json_object_get(qc, "group_size")), 32);
	o = json_object_get(json_object_get(qc, "dynamic"),
			    "+:^model\\.layers\\.1\\.self_attn\\.q_proj$");
	CHECK_EQ(json_integer_value(json_object_get(o, "bits")), 8);
	CHECK_EQ(json_integer_value(json_object_get(o, "group_size")), 32);
	o = json_object_get(json_object_get(qc, "dynamic"),
			    "+:^model\\.layers\\.0\\.mlp\\.down_proj$");
	CHECK_EQ(json_integer_value(json_object_get(o, "group_size")), -1);
	json_decref(cfg);
	cfg = load_json(out, "quantize_config.json");
	CHECK(json_object_size(json_object_get(cfg, "dynamic")) == LAYERS + 1);
	json_decref(cfg);
	CHECK_OK(import(out, "gptq", &r, &e), &e);
	cmp_all(&m, &r, SAME_RECORD);
	mcb_model_release(&r);
	mcb_model_release(&m);
}

/* What GPTQ cannot hold is refused with the tensor named. */
static void test_gptq_refused(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096];
	struct mcb_model m;
	struct mcb_errctx e;

	mcb_rng_seed(&rng, 20);
	synth(&m);
	q_int(&m, lname(0, 5), 3, 32, 1, 0, 1);
	q_int(&m, lname(1, 6), 5, 32, 1, 0, 1);
	CHECK_ERR(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.1.ffn_down.weight': 5-bit int quantization");
	mcb_model_release(&m);
	synth(&m);
	q_int(&m, lname(0, 0), 5, 32, 1, 0, 1);
	CHECK_ERR(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.0.attn_q.weight': 5-bit int quantization with group size 32 cannot be "
		  "exported as GPTQ");
	mcb_model_release(&m);
	synth(&m);
	q_int(&m, lname(0, 3), 4, 32, 0, 0, 1);
	((uint8_t *)mcb_model_find(&m, side(lname(0, 3), "zero"))->data)[9] = 0;
	CHECK_ERR(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.0.attn_output.weight': zero point 0 at row 1, group 1: GPTQ v1");
	mcb_model_release(&m);
	synth(&m);
	q_fp8(&m, lname(0, 3));
	CHECK_ERR(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "tensor 'blk.0.attn_output.weight' is quantized as fp8");
	mcb_model_release(&m);
	synth(&m);
	CHECK_ERR(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "no int-quantized weight");
	CHECK_ERR(run_export(&m, dir, "onnx", &e, out, sizeof(out)), &e, MCB_EUNSUP,
		  "unknown export format 'onnx'");
	mcb_model_release(&m);
}

/* ---- AWQ ---- */

static void test_awq(void)
{
	int sym, l, k;

	for (sym = 0; sym < 2; sym++) {
		const char *dir = mcbt_tmpdir();
		char out[4096], path[4096];
		struct mcb_model m, r;
		struct mcb_errctx e;
		struct mcb_st_file f;
		const struct mcb_tensor *t;
		json_t *cfg, *qc;
		int64_t group = sym ? 64 : 32;

		mcb_rng_seed(&rng, 30 + sym);
		synth(&m);
		for (l = 0; l < LAYERS; l++)
			for (k = 0; k < NLIN; k++)
				if (l == 0 && k == 4)
					fallback(&m, lname(l, k));
				else
					q_int(&m, lname(l, k), 4, group, sym, 0, 1);
		CHECK_OK(run_export(&m, dir, "awq", &e, out, sizeof(out)), &e);
		cfg = load_json(out, "config.json");
		qc = json_object_get(cfg, "quantization_config");
		CHECK_STR(json_string_value(json_object_get(qc, "quant_method")), "awq");
		CHECK_EQ(json_integer_value(json_object_get(qc, "bits")), 4);
		CHECK_EQ(json_integer_value(json_object_get(qc, "group_size")), group);
		CHECK(json_is_true(json_object_get(qc, "zero_point")));
		CHECK_STR(json_string_value(json_object_get(qc, "version")), "gemm");
		CHECK_STR(json_string_value(json_array_get(json_object_get(qc, "modules_to_not_convert"), 0)),
			  "model.layers.0.mlp.gate_proj");
		json_decref(cfg);
		join(path, sizeof(path), out, "model.safetensors");
		CHECK_OK(mcb_st_open(path, &f, &e), &e);
		t = st_tensor(&f, "model.layers.1.mlp.down_proj.qweight");
		CHECK(t && t->dtype == MCB_DT_I32 && t->shape[0] == HIDDEN && t->shape[1] == DIM / 8);
		t = st_tensor(&f, "model.layers.1.mlp.down_proj.qzeros");
		CHECK(t && t->shape[0] == HIDDEN / group && t->shape[1] == DIM / 8);
		t = st_tensor(&f, "model.layers.1.mlp.down_proj.scales");
		CHECK(t && t->dtype == MCB_DT_F16 && t->shape[0] == HIDDEN / group && t->shape[1] == DIM);
		CHECK(st_tensor(&f, "model.layers.1.mlp.down_proj.g_idx") == NULL);
		mcb_st_close(&f);
		CHECK_OK(import(out, "awq", &r, &e), &e);
		/* symmetric weights come back asymmetric with zero 8: same values */
		cmp_all(&m, &r, sym ? SAME_VALUES : SAME_RECORD);
		if (sym) {
			struct mcb_qtensor q;

			CHECK_OK(mcb_qtensor_get(&r, lname(1, 1), &q, &e), &e);
			CHECK(!q.symmetric && q.zero && ((const uint8_t *)q.zero->data)[3] == 8);
		}
		mcb_model_release(&r);
		dump_packed(&m, lname(0, 0), sym ? "awq-sym" : "awq-asym", out);
		dump_packed(&m, lname(1, 6), sym ? "awq-sym" : "awq-asym", out);
		mcb_model_release(&m);
	}
	{
		const char *dir = mcbt_tmpdir();
		char out[4096];
		struct mcb_model m;
		struct mcb_errctx e;

		synth(&m);
		q_int(&m, lname(0, 0), 4, 32, 0, 1, 1);
		CHECK_ERR(run_export(&m, dir, "awq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
			  "tensor 'blk.0.attn_q.weight': AWQ needs groups of 32 that divide the 256 "
			  "columns in order (no act-order g_idx)");
		mcb_model_release(&m);
		synth(&m);
		q_int(&m, lname(0, 0), 4, 0, 0, 0, 1);
		CHECK_ERR(run_export(&m, dir, "awq", &e, out, sizeof(out)), &e, MCB_EUNSUP,
			  "cannot be exported as AWQ (4 bits in groups)");
		mcb_model_release(&m);
	}
}

/* ---- safetensors ---- */

static void test_safetensors(void)
{
	int variant, l, k;

	for (variant = 0; variant < 5; variant++) {
		const char *dir = mcbt_tmpdir();
		char out[4096], path[4096];
		struct mcb_model m, r;
		struct mcb_errctx e;
		struct mcb_st_file f;
		const struct mcb_tensor *t;
		json_t *cfg, *qc, *g0;

		mcb_rng_seed(&rng, 40 + variant);
		synth(&m);
		for (l = 0; l < LAYERS; l++)
			for (k = 0; k < NLIN; k++) {
				if (l == 1 && k == 3) {
					fallback(&m, lname(l, k));
					continue;
				}
				switch (variant) {
				case 0: q_int8(&m, lname(l, k), 0); break;
				case 1: q_q8_0(&m, lname(l, k)); break;
				case 2: q_fp8(&m, lname(l, k)); break;
				case 3: q_int8(&m, lname(l, k), 0.02f * (float)(k + 1)); break;
				case 4: if (k != 2) prune24(&m, lname(l, k)); break;
				}
			}
		if (variant == 0)
			q_int8(&m, "output.weight", 0);
		CHECK_OK(run_export(&m, dir, "safetensors", &e, out, sizeof(out)), &e);
		CHECK_OK(import(out, "safetensors", &r, &e), &e);
		cmp_all(&m, &r, SAME_RECORD);
		if (variant == 3) {
			struct mcb_tensor *is = mcb_model_find(&r, side(lname(1, 4), "input_scale"));

			CHECK(is && is->dtype == MCB_DT_F32 && *(float *)is->data == 0.02f * 5);
		}
		if (variant == 4) {
			struct mcb_tensor *a = mcb_model_find(&m, side(lname(0, 0), "mask")),
					  *b = mcb_model_find(&r, side(lname(0, 0), "mask"));
			const json_t *rec = json_object_get(json_object_get(r.meta, "quant"), lname(1, 6));

			CHECK(same_tensor(a, b));
			CHECK(same_tensor(mcb_model_find(&m, side(lname(1, 1), "mask")),
					  mcb_model_find(&r, side(lname(1, 1), "mask"))));
			CHECK_STR(json_string_value(json_object_get(rec, "sparsity")), "2:4");
		}
		mcb_model_release(&r);
		cfg = load_json(out, "config.json");
		qc = json_object_get(cfg, "quantization_config");
		g0 = json_object_get(json_object_get(qc, "config_groups"), "group_0");
		join(path, sizeof(path), out, "model.safetensors");
		CHECK_OK(mcb_st_open(path, &f, &e), &e);
		switch (variant) {
		case 0:
		case 1:
			CHECK_STR(json_string_value(json_object_get(qc, "quant_method")), "mcbuild-int8");
			CHECK_EQ(json_integer_value(json_object_get(qc, "group_size")), variant ? 32 : 0);
			t = st_tensor(&f, "model.layers.0.self_attn.q_proj.weight_scale");
			CHECK(t && t->shape[0] == DIM && t->shape[1] == (variant ? DIM / 32 : 1));
			break;
		case 2:
		case 3:
			CHECK_STR(json_string_value(json_object_get(qc, "quant_method")),
				  "compressed-tensors");
			CHECK_STR(json_string_value(json_object_get(qc, "format")),
				  variant == 2 ? "float-quantized" : "int-quantized");
			CHECK_STR(json_string_value(json_object_get(qc, "quantization_status")),
				  "compressed");
			CHECK_STR(json_string_value(json_object_get(json_object_get(g0, "weights"), "type")),
				  variant == 2 ? "float" : "int");
			CHECK_STR(json_string_value(json_object_get(json_object_get(g0, "weights"),
								    "strategy")), "channel");
			CHECK_EQ(json_integer_value(json_object_get(json_object_get(g0, "weights"),
								    "num_bits")), 8);
			CHECK(json_is_false(json_object_get(json_object_get(g0, "weights"), "dynamic")));
			CHECK_STR(json_string_value(json_object_get(
					  json_object_get(g0, "input_activations"), "strategy")),
				  variant == 2 ? "token" : "tensor");
			CHECK_EQ(json_is_true(json_object_get(json_object_get(g0, "input_activations"),
							      "dynamic")), variant == 2);
			CHECK_STR(json_string_value(json_array_get(json_object_get(g0, "targets"), 0)),
				  "Linear");
			CHECK_EQ(json_array_size(json_object_get(qc, "ignore")), 2);
			CHECK(has_str(json_object_get(qc, "ignore"), "model.layers.1.self_attn.o_proj"));
			CHECK(has_str(json_object_get(qc, "ignore"), "lm_head"));
			t = st_tensor(&f, "model.layers.0.self_attn.k_proj.weight");
			CHECK(t && t->dtype == (variant == 2 ? MCB_DT_F8_E4M3 : MCB_DT_I8));
			t = st_tensor(&f, "model.layers.0.self_attn.k_proj.weight_scale");
			CHECK(t && t->dtype == MCB_DT_F32 && t->ndim == 2 && t->shape[0] == KV * 64 &&
			      t->shape[1] == 1);
			t = st_tensor(&f, "model.layers.0.self_attn.k_proj.input_scale");
			CHECK(variant == 2 ? t == NULL : (t && t->dtype == MCB_DT_F32 && t->ndim == 1 &&
							  t->shape[0] == 1));
			break;
		case 4: {
			json_t *sp = json_object_get(cfg, "sparsity_config");

			CHECK(qc == NULL);
			CHECK_STR(json_string_value(json_object_get(sp, "format")), "dense");
			CHECK_STR(json_string_value(json_object_get(sp, "sparsity_structure")), "2:4");
			CHECK(fabs(json_number_value(json_object_get(sp, "global_sparsity")) - 0.5) < 1e-9);
			t = st_tensor(&f, "model.layers.0.self_attn.q_proj.weight_mask");
			CHECK(t && t->dtype == MCB_DT_U8 && t->shape[0] == DIM && t->shape[1] == DIM);
			CHECK(st_tensor(&f, "model.layers.0.self_attn.v_proj.weight_mask") == NULL);
			break;
		}
		}
		mcb_st_close(&f);
		json_decref(cfg);
		mcb_model_release(&m);
	}
	{
		const char *dir = mcbt_tmpdir();
		char out[4096];
		struct mcb_model m;
		struct mcb_errctx e;

		mcb_rng_seed(&rng, 50);
		synth(&m);
		q_fp8(&m, lname(0, 0));
		q_int8(&m, lname(0, 1), 0);
		CHECK_ERR(run_export(&m, dir, "safetensors", &e, out, sizeof(out)), &e, MCB_EUNSUP,
			  "the model mixes int8 and fp8 weights");
		mcb_model_release(&m);
		synth(&m);
		q_ggml(&m, lname(0, 0), MCB_DT_Q4_K);
		CHECK_ERR(run_export(&m, dir, "safetensors", &e, out, sizeof(out)), &e, MCB_EUNSUP,
			  "tensor 'blk.0.attn_q.weight' holds ggml Q4_K blocks");
		mcb_model_release(&m);
		synth(&m);
		q_int(&m, lname(0, 4), 4, 32, 0, 0, 1);
		CHECK_ERR(run_export(&m, dir, "safetensors", &e, out, sizeof(out)), &e, MCB_EUNSUP,
			  "tensor 'blk.0.ffn_gate.weight': 4-bit asymmetric int quantization");
		mcb_model_release(&m);
	}
}

/* ---- malformed checkpoints ---- */

/* Copy the safetensors file src to dst with tensor name replaced by
 * (dt, shape, data) (NULL name: drop it; data NULL: zeros). */
static void rewrite_st(const char *src, const char *dst, const char *name, int drop,
		       enum mcb_dtype dt, int ndim, int64_t d0, int64_t d1, const void *data)
{
	struct mcb_st_file f;
	struct mcb_errctx e;
	const struct mcb_tensor **list;
	struct mcb_tensor repl;
	size_t i, n = 0;
	void *buf = NULL;

	CHECK_OK(mcb_st_open(src, &f, &e), &e);
	list = calloc(f.ntensors + 1, sizeof(*list));
	for (i = 0; i < f.ntensors; i++) {
		if (!strcmp(f.tensors[i].name, name)) {
			if (drop)
				continue;
			memset(&repl, 0, sizeof(repl));
			repl.name = name;
			repl.dtype = dt;
			repl.ndim = ndim;
			repl.shape[0] = d0;
			repl.shape[1] = d1;
			repl.nbytes = (size_t)(d0 * (ndim == 2 ? d1 : 1)) * mcb_dtype_info(dt)->block_bytes;
			buf = calloc(repl.nbytes + 1, 1);
			if (data)
				memcpy(buf, data, repl.nbytes);
			repl.data = buf;
			list[n++] = &repl;
			continue;
		}
		list[n++] = &f.tensors[i];
	}
	CHECK_OK(mcb_st_write(dst, list, n, f.metadata, &e), &e);
	free(buf);
	free(list);
	mcb_st_close(&f);
}

/* Rewrite config.json in dir with key of quantization_config set to v (JSON). */
static void set_qc(const char *srcdir, const char *dstdir, const char *key, const char *v)
{
	json_t *cfg = load_json(srcdir, "config.json");
	struct mcb_buf text = MCB_BUF_INIT;
	char path[4096];

	json_object_set_new(json_object_get(cfg, "quantization_config"), key,
			    json_loads(v, JSON_DECODE_ANY, NULL));
	mcb_json_pretty(cfg, &text);
	join(path, sizeof(path), dstdir, "config.json");
	mcbt_write(path, text.data, text.len);
	mcb_buf_release(&text);
	json_decref(cfg);
}

static void expect_refused(const char *dir, int code, const char *sub)
{
	struct mcb_model r;
	struct mcb_errctx e;
	char st[4096];

	join(st, sizeof(st), dir, "model.safetensors");
	CHECK_ERR(import(dir, "safetensors", &r, &e), &e, code, sub);
	if (!strstr(e.msg, dir))
		mcbt_fail(__FILE__, __LINE__, "message does not name the file: %s", e.msg);
	CHECK_EQ(r.ntensors, 0);
	mcb_model_release(&r);
}

static void test_malformed(void)
{
	const char *dir = mcbt_tmpdir();
	char out[4096], bad[4096], src[4096], dst[4096], cmd[13000];
	struct mcb_model m;
	struct mcb_errctx e;
	const char *up = "model.layers.0.mlp.up_proj";
	int32_t gi[DIM];
	int l, k, i;

	mcb_rng_seed(&rng, 60);
	synth(&m);
	for (l = 0; l < LAYERS; l++)
		for (k = 0; k < NLIN; k++)
			q_int(&m, lname(l, k), 4, 32, 0, k == 5, 1);
	CHECK_OK(run_export(&m, dir, "gptq", &e, out, sizeof(out)), &e);
	mcb_model_release(&m);
	join(bad, sizeof(bad), dir, "bad");
	join(src, sizeof(src), out, "model.safetensors");
	join(dst, sizeof(dst), bad, "model.safetensors");
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/config.json' '%s/'", bad, out, bad);
	CHECK(system(cmd) == 0);

	/* truncated qweight */
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.qweight", 0, MCB_DT_I32, 2, DIM * 4 / 32 - 1,
		   HIDDEN, NULL);
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.qweight' must be I32 "
		       "[32, 512], not I32 [31, 512]");
	/* scales transposed */
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.scales", 0, MCB_DT_F16, 2, HIDDEN, DIM / 32,
		   NULL);
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.scales' must be F16 "
		       "[8, 512], not F16 [512, 8]");
	/* qzeros of the wrong dtype */
	rewrite_st(src, dst, "model.layers.1.self_attn.k_proj.qzeros", 0, MCB_DT_F32, 2, DIM / 32,
		   KV * 64 * 4 / 32, NULL);
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.1.self_attn.k_proj.qzeros' must be I32");
	/* missing qzeros */
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.qzeros", 1, 0, 0, 0, 0, NULL);
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.qzeros' is missing");
	/* scales without their qweight */
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.qweight", 1, 0, 0, 0, 0, NULL);
	expect_refused(bad, MCB_EFORMAT, "has no 'model.layers.0.mlp.up_proj.qweight'");
	/* g_idx out of range, and negative */
	for (i = 0; i < DIM; i++)
		gi[i] = i / 32;
	gi[5] = 1000;
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.g_idx", 0, MCB_DT_I32, 1, DIM, 0, gi);
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.g_idx': g_idx[5] = 1000 "
		       "is not a group (0..7)");
	gi[5] = -1;
	rewrite_st(src, dst, "model.layers.0.mlp.up_proj.g_idx", 0, MCB_DT_I32, 1, DIM, 0, gi);
	expect_refused(bad, MCB_EFORMAT, "g_idx[5] = -1 is not a group");
	/* zero points that v1 reads as 2^bits */
	{
		int32_t z[(DIM / 32) * (HIDDEN * 4 / 32)];

		memset(z, 0xff, sizeof(z));
		rewrite_st(src, dst, "model.layers.0.mlp.up_proj.qzeros", 0, MCB_DT_I32, 2, DIM / 32,
			   HIDDEN * 4 / 32, z);
		expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.qzeros': zero "
			       "point 16 of output 0, group 0 is outside 0..15");
	}
	/* non-finite scale */
	{
		uint16_t s[(DIM / 32) * HIDDEN];

		for (i = 0; i < (int)(sizeof(s) / 2); i++)
			s[i] = 0x3c00;
		s[77] = 0x7c00;
		rewrite_st(src, dst, "model.layers.0.mlp.up_proj.scales", 0, MCB_DT_F16, 2, DIM / 32,
			   HIDDEN, s);
		expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.up_proj.scales': scale 77 "
			       "is not finite");
	}
	/* config: zero group size, bits 5, v2 checkpoints, unknown method */
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, dst);
	CHECK(system(cmd) == 0);
	set_qc(out, bad, "group_size", "0");
	expect_refused(bad, MCB_EFORMAT, "GPTQ \"group_size\" must be -1 (per channel) or positive, "
		       "not 0");
	set_qc(out, bad, "group_size", "-7");
	expect_refused(bad, MCB_EFORMAT, "\"group_size\" must be an integer in -1..1048576");
	set_qc(out, bad, "group_size", "64");
	expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.mlp.down_proj.qzeros' must be "
		       "I32 [8, 32], not I32 [16, 32]");
	set_qc(out, bad, "bits", "5");
	expect_refused(bad, MCB_EFORMAT, "GPTQ \"bits\" must be 2, 3, 4 or 8");
	set_qc(out, bad, "bits", "\"4\"");
	expect_refused(bad, MCB_EFORMAT, "\"bits\" must be an integer");
	set_qc(out, bad, "checkpoint_format", "\"gptq_v2\"");
	expect_refused(bad, MCB_EUNSUP, "GPTQ checkpoint_format 'gptq_v2' is not supported");
	set_qc(out, bad, "quant_method", "\"bitsandbytes\"");
	expect_refused(bad, MCB_EUNSUP, "quant_method 'bitsandbytes' is not supported");
	set_qc(out, bad, "quant_method", "\"awq\"");
	expect_refused(bad, MCB_EUNSUP, "tensor 'model.layers.0.mlp.down_proj.g_idx' is not part of "
		       "a LlamaForCausalLM");
	set_qc(out, bad, "sym", "1");
	expect_refused(bad, MCB_EFORMAT, "\"sym\" must be true or false");
	(void)up;
	/* compressed-tensors: a NaN fp8 code, a wrong weight_scale */
	{
		char out2[4096];
		const char *d2 = mcbt_tmpdir();
		uint8_t *codes = malloc((size_t)DIM * DIM);
		float ws[DIM];

		mcb_rng_seed(&rng, 61);
		synth(&m);
		for (k = 0; k < NLIN; k++)
			q_fp8(&m, lname(0, k));
		CHECK_OK(run_export(&m, d2, "safetensors", &e, out2, sizeof(out2)), &e);
		mcb_model_release(&m);
		join(bad, sizeof(bad), d2, "bad");
		join(src, sizeof(src), out2, "model.safetensors");
		join(dst, sizeof(dst), bad, "model.safetensors");
		snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && cp '%s/config.json' '%s/'", bad, out2, bad);
		CHECK(system(cmd) == 0);
		memset(codes, 0x38, (size_t)DIM * DIM);
		codes[DIM * 3 + 7] = 0xff;
		rewrite_st(src, dst, "model.layers.0.self_attn.o_proj.weight", 0, MCB_DT_F8_E4M3, 2, DIM,
			   DIM, codes);
		expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.self_attn.o_proj.weight': fp8 "
			       "code at row 3, column 7 is NaN");
		for (i = 0; i < DIM; i++)
			ws[i] = 0.01f;
		rewrite_st(src, dst, "model.layers.0.self_attn.o_proj.weight_scale", 0, MCB_DT_F32, 2, 1,
			   DIM, ws);
		expect_refused(bad, MCB_EFORMAT, "tensor 'model.layers.0.self_attn.o_proj.weight_scale' "
			       "must be F32 [256, 1]");
		free(codes);
	}
}

int main(void)
{
	RUN(test_gguf);
	RUN(test_gguf_float);
	RUN(test_narrow_heads);
	RUN(test_gptq);
	RUN(test_gptq_dynamic);
	RUN(test_gptq_refused);
	RUN(test_awq);
	RUN(test_safetensors);
	RUN(test_malformed);
	return mcbt_done();
}
