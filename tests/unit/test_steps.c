/*
 * Step kinds run in-process: import -> quantize -> export (gguf and
 * safetensors) -> bundle, on a synthetic llama2.c model and on stories260K.
 * Q8_0 output is checked element by element against the scalar reference
 * quantizer applied to the source weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "steprun.h"
#include "mcb/arena.h"
#include "mcb/blas.h"
#include "mcb/engine.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/hash.h"
#include "mcb/hf.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/quant.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

/*
 * Quantize every group of the model at model_path (one quantize step per
 * layer and one for the globals, as compiler/plan.c plans them) with the
 * per-tensor parameters tp (JSON text) and method, then assemble into
 * out/model.safetensors.  gguf: the globals are token_embd and output (as
 * for a gguf target), else output only.  Returns the first failure.
 */
static int quantize_model(struct mcbt_run *r, const char *model_path, const char *method,
			  const char *tp, int gguf, const char *out)
{
	static const char *const lw[] = {"attn_q", "attn_k", "attn_v", "attn_output",
					 "ffn_gate", "ffn_up", "ffn_down"};
	struct mcb_model m;
	struct mcb_errctx e;
	json_t *tpj = json_loads(tp, 0, NULL);
	int64_t l, nl;
	size_t k;
	int rc = 0, tied;
	char **parts;

	mcb_model_init(&m);
	CHECK_OK(mcb_model_load_ir(model_path, &m, &e), &e);
	nl = m.cfg.n_layers;
	tied = m.cfg.tied_embeddings;
	mcb_model_release(&m);
	parts = calloc((size_t)nl + 1, sizeof(*parts));
	for (l = -1; l < nl && !rc; l++) {
		json_t *g = json_pack("{s:s, s:I, s:{}}", "method", method, "layer", (json_int_t)l,
				      "tensors");
		json_t *ts = json_object_get(g, "tensors");
		char *text, *dir;

		if (l >= 0) {
			for (k = 0; k < 7; k++)
				json_object_set(ts, mcb_arena_printf(&r->a, "blk.%lld.%s.weight",
								     (long long)l, lw[k]),
						tpj);
		} else {
			if (gguf)
				json_object_set(ts, "token_embd.weight", tpj);
			if (!tied)
				json_object_set(ts, "output.weight", tpj);
		}
		dir = mcb_arena_printf(&r->a, "%s.part%lld", out, (long long)l + 1);
		text = json_dumps(g, JSON_COMPACT);
		k = json_object_size(ts);
		json_decref(g);
		if (!k) {
			free(text);
			continue;
		}
		mcbt_run_input(r, "model", model_path);
		rc = mcbt_run_step(r, &mcb_step_quantize, text, dir);
		free(text);
		parts[l + 1] = mcbt_run_path(r, dir, "part.safetensors");
	}
	if (!rc) {
		mcbt_run_input(r, "model", model_path);
		for (l = -1; l < nl; l++)
			if (parts[l + 1])
				mcbt_run_input(r, l < 0 ? "part.globals"
						   : mcb_arena_printf(&r->a, "part.blk.%lld", (long long)l),
					  parts[l + 1]);
		rc = mcbt_run_step(r, &mcb_step_assemble, "{}", out);
	}
	r->nin = 0;
	free(parts);
	json_decref(tpj);
	return rc;
}

/* The full pipeline on the llama2.c file at src: checks the GGUF Q8_0
 * export element by element against the reference quantizer. */
static void pipeline(const char *src)
{
	struct mcbt_run r;
	struct mcb_model orig, q;
	struct mcb_gguf g;
	struct mcb_errctx e;
	size_t i, nq8 = 0, nf16 = 0;

	memset(&r, 0, sizeof(r));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	mcbt_run_input(&r, "source", src);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"auto\"}", "import"), &r.e);
	CHECK_OK(quantize_model(&r, mcbt_run_path(&r, "import", "model.safetensors"), "rtn",
				"{\"bits\":8,\"group_size\":32,\"symmetric\":true,\"ggml_type\":\"q8_0\"}", 1, "q8"),
		 &r.e);
	CHECK(strstr(mcb_buf_str(&r.log), "ffn_down.weight") != NULL);
	CHECK(strstr(mcb_buf_str(&r.log), "kept as F16") != NULL);
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "q8", "model.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_export, "{\"format\": \"gguf\"}", "gguf"), &r.e);

	mcb_model_init(&orig);
	CHECK_OK(mcb_llama2c_read(src, &orig, &e), &e);
	CHECK_OK(mcb_gguf_open(mcbt_run_path(&r, "gguf", "model.gguf"), &g, &e), &e);
	for (i = 0; i < g.ntensors; i++) {
		const struct mcb_gguf_tensor *t = &g.tensors[i];
		const struct mcb_tensor *o = mcb_model_find(&orig, t->name);
		uint64_t rows, cols, k;

		CHECK(o != NULL);
		if (!o)
			continue;
		cols = t->ne[0];
		rows = t->n_dims > 1 ? t->ne[1] : 1;
		if (t->type == 8) {
			struct mcb_block_q8_0 *ref = malloc(cols / 32 * sizeof(*ref));
			const struct mcb_block_q8_0 *got = t->data;
			uint64_t r0;

			nq8++;
			for (r0 = 0; r0 < rows; r0++) {
				mcb_quantize_row_q8_0_ref((const float *)o->data + r0 * cols, ref,
							  (int64_t)cols);
				for (k = 0; k < cols / 32; k++)
					if (memcmp(&ref[k], &got[r0 * (cols / 32) + k], sizeof(*ref))) {
						mcbt_fail(__FILE__, __LINE__, "%s row %llu block %llu differs",
							  t->name, (unsigned long long)r0,
							  (unsigned long long)k);
						r0 = rows;
						break;
					}
			}
			free(ref);
		} else if (t->type == 1) {
			const uint16_t *h = t->data;

			nf16++;
			CHECK(cols % 32 != 0);
			for (k = 0; k < rows * cols; k++)
				if (h[k] != mcb_f32_to_f16(((const float *)o->data)[k])) {
					mcbt_fail(__FILE__, __LINE__, "%s element %llu differs", t->name,
						  (unsigned long long)k);
					break;
				}
		} else {
			CHECK_EQ(t->type, 0);
			CHECK(memcmp(t->data, o->data, o->nbytes) == 0);
		}
	}
	CHECK(nq8 > 0);
	CHECK_EQ(nf16, (size_t)orig.cfg.n_layers);
	{
		/* probing reads the same config without importing */
		struct mcb_llama_config c1, c2;

		CHECK_OK(mcb_model_probe(src, "auto", NULL, &c1, &e), &e);
		CHECK(memcmp(&c1, &orig.cfg, sizeof(c1)) == 0);
		CHECK_OK(mcb_model_probe(mcbt_run_path(&r, "gguf", "model.gguf"), "gguf", NULL, &c2, &e),
			 &e);
		CHECK_EQ(c2.n_layers, orig.cfg.n_layers);
		CHECK_EQ(c2.hidden_dim, orig.cfg.hidden_dim);
		CHECK_EQ(c2.tied_embeddings, orig.cfg.tied_embeddings);
	}
	{
		const struct mcb_gguf_kv *kv = mcb_gguf_find(&g, "general.file_type");

		CHECK(kv && kv->val.v.u == 7);
		CHECK(mcb_gguf_find(&g, "tokenizer.ggml.tokens") != NULL);
	}
	mcb_gguf_close(&g);

	/* per-channel int8 -> HF safetensors: dequantized weights within half a
	 * step of the source, Q/K rows in rotate-half order */
	CHECK_OK(quantize_model(&r, mcbt_run_path(&r, "import", "model.safetensors"), "rtn",
				"{\"bits\":8,\"group_size\":0,\"symmetric\":true,\"ggml_type\":\"none\"}", 0, "q8c"),
		 &r.e);
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "q8c", "model.safetensors"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_export, "{\"format\": \"safetensors\"}", "st"), &r.e);
	{
		struct mcb_st_file f;
		const struct mcb_tensor *qt = NULL, *st = NULL;
		const struct mcb_tensor *wq = mcb_model_find(&orig, "blk.0.attn_q.weight");
		int64_t rows = wq->shape[0], cols = wq->shape[1], rr, c;
		float *perm = malloc(wq->nbytes);
		double worst = 0;

		CHECK_OK(mcb_st_open(mcbt_run_path(&r, "st", "model.safetensors"), &f, &e), &e);
		for (i = 0; i < f.ntensors; i++) {
			if (!strcmp(f.tensors[i].name, "model.layers.0.self_attn.q_proj.weight"))
				qt = &f.tensors[i];
			if (!strcmp(f.tensors[i].name, "model.layers.0.self_attn.q_proj.weight_scale"))
				st = &f.tensors[i];
		}
		CHECK(qt && st);
		if (qt && st) {
			CHECK_EQ(qt->dtype, MCB_DT_I8);
			CHECK_EQ(st->dtype, MCB_DT_F32);
			CHECK_EQ(st->shape[0], rows);
			CHECK_EQ(st->shape[1], 1);
			memcpy(perm, wq->data, wq->nbytes);
			CHECK_OK(mcb_hf_permute_rows(perm, orig.cfg.n_heads, orig.cfg.head_dim, cols,
						     4, 0, &e), &e);
			for (rr = 0; rr < rows; rr++) {
				float s = ((const float *)st->data)[rr];

				for (c = 0; c < cols; c++) {
					float deq = s * ((const int8_t *)qt->data)[rr * cols + c];
					double err = fabs(deq - perm[rr * cols + c]) / (s > 0 ? s : 1);

					if (err > worst)
						worst = err;
				}
			}
			CHECK(worst <= 0.5 + 1e-5);
		}
		free(perm);
		mcb_st_close(&f);
		CHECK(mcb_os_exists(mcbt_run_path(&r, "st", "config.json")));
		{
			struct mcb_llama_config c3;

			CHECK_OK(mcb_model_probe(mcbt_run_path(&r, "st", "model.safetensors"), "auto",
						 mcbt_run_path(&r, "st", "config.json"), &c3, &e),
				 &e);
			CHECK_EQ(c3.n_layers, orig.cfg.n_layers);
			CHECK_EQ(c3.n_kv_heads, orig.cfg.n_kv_heads);
		}
	}

	/* bundle: manifest lists the files with their digests */
	mcbt_run_input(&r, "model.gguf", mcbt_run_path(&r, "gguf", "model.gguf"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_bundle, "{\"target\": \"targets/x\"}", "bundle"), &r.e);
	{
		json_t *man = json_load_file(mcbt_run_path(&r, "bundle", "manifest.json"), 0, NULL);
		json_t *files = json_object_get(man, "files");
		char hex[MCB_HEX_LEN + 1];
		struct mcb_digest d;

		CHECK(json_array_size(files) == 1);
		CHECK_OK(mcb_sha256_file(mcbt_run_path(&r, "gguf", "model.gguf"), &d, NULL, &e), &e);
		mcb_digest_hex(&d, hex);
		CHECK_STR(json_string_value(json_object_get(json_array_get(files, 0), "sha256")), hex);
		json_decref(man);
	}
	(void)q;
	mcb_model_release(&orig);
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

/* Quantizing an already quantized model is refused; a weight beyond what
 * Q8_0's fp16 scale can hold is an error naming the tensor, not an inf. */
static void test_quantize_refusals(void)
{
	struct mcbt_run r;
	char path[4096];
	FILE *f;

	memset(&r, 0, sizeof(r));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	snprintf(path, sizeof(path), "%s/m.bin", r.dir);
	mcbt_write_llama2c(path, 64, 96, 1, 4, 2, 300, 16);
	mcbt_run_input(&r, "source", path);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"llama2c\"}", "import"), &r.e);
	CHECK_OK(quantize_model(&r, mcbt_run_path(&r, "import", "model.safetensors"), "rtn",
				"{\"bits\":8,\"group_size\":0,\"symmetric\":true,\"ggml_type\":\"none\"}", 0, "q"),
		 &r.e);
	CHECK(quantize_model(&r, mcbt_run_path(&r, "q", "model.safetensors"), "rtn",
			     "{\"bits\":8,\"group_size\":0,\"symmetric\":true,\"ggml_type\":\"none\"}", 0, "qq") == MCB_EUNSUP);
	CHECK(strstr(r.e.msg, "already quantized") != NULL);

	/* blk.0.attn_q.weight[0][0] (after token_embd and rms_att) := 1e9 */
	f = fopen(path, "r+b");
	CHECK(f != NULL);
	if (f) {
		float big = 1e9f;

		fseek(f, 28 + (300 * 64 + 64) * 4, SEEK_SET);
		fwrite(&big, 4, 1, f);
		fclose(f);
	}
	mcbt_run_input(&r, "source", path);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"llama2c\"}", "import2"), &r.e);
	CHECK(quantize_model(&r, mcbt_run_path(&r, "import2", "model.safetensors"), "rtn",
			     "{\"bits\":8,\"group_size\":32,\"symmetric\":true,\"ggml_type\":\"q8_0\"}", 1, "q8") == MCB_ERANGE);
	CHECK(strstr(r.e.msg, "blk.0.attn_q.weight") && strstr(r.e.msg, "row 0, column 0"));
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

/* log_softmax in double, as the test's own reference. */
static void ref_lsm(const float *x, int64_t n, double *out)
{
	double max = x[0], sum = 0;
	int64_t i;

	for (i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (i = 0; i < n; i++)
		sum += exp((double)x[i] - max);
	for (i = 0; i < n; i++)
		out[i] = (double)x[i] - max - log(sum);
}

static json_t *read_json(struct mcbt_run *r, const char *dir, const char *name)
{
	json_t *v = json_load_file(mcbt_run_path(r, dir, name), 0, NULL);

	CHECK(v != NULL);
	return v;
}

/*
 * The evaluate step's windows, NLL, KL and top-1 agreement against a direct
 * computation with the engine (windows of 10 every 5 tokens over sequences
 * of 23: starts 0, 5, 10, 15; each scores only new targets; windows inside a
 * sequence start with BOS), then the report step's statistics on them.
 */
static void test_evaluate_math(void)
{
	static const int32_t seqs[3][23] = {
		{1, 5, 9, 13, 200, 17, 4, 4, 8, 33, 70, 2, 9, 100, 101, 102, 7, 7, 7, 9, 11, 250, 3},
		{1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61},
		{1, 299, 3, 298, 5, 297, 7, 296, 9, 295, 11, 294, 13, 293, 15, 292, 17, 291, 19, 290, 21, 289, 23},
	};
	struct mcbt_run r;
	struct mcb_model mb, mc;
	struct mcb_engine *eb = NULL, *ec = NULL;
	struct mcb_engine_opts o = {1, MCB_ENGINE_EXACT, 0};
	struct mcb_errctx e;
	char path[4096], data[4096];
	double *lb = malloc(300 * sizeof(double)), *lc = malloc(300 * sizeof(double));
	float *gb = malloc(23 * 300 * sizeof(float)), *gc = malloc(23 * 300 * sizeof(float));
	json_t *base, *comp, *rep;
	FILE *f;
	size_t item = 0;
	int si, i;
	double tot_kl = 0, tot_n = 0;

	memset(&r, 0, sizeof(r));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	snprintf(path, sizeof(path), "%s/m.bin", r.dir);
	mcbt_write_llama2c(path, 64, 96, 2, 4, 2, 300, 32);
	snprintf(data, sizeof(data), "%s/d.tokens", r.dir);
	f = fopen(data, "w");
	for (si = 0; si < 3; si++) {
		for (i = 0; i < 23; i++)
			fprintf(f, "%d%c", seqs[si][i], i == 22 ? '\n' : ' ');
	}
	fclose(f);
	mcbt_run_input(&r, "source", path);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"llama2c\"}", "imp"), &r.e);
	CHECK_OK(quantize_model(&r, mcbt_run_path(&r, "imp", "model.safetensors"), "rtn",
				"{\"bits\":8,\"group_size\":0,\"symmetric\":true,\"ggml_type\":\"none\"}", 0, "q"),
		 &r.e);
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "imp", "model.safetensors"));
	mcbt_run_input(&r, "data", data);
	CHECK_OK(mcbt_run_step(&r, &mcb_step_evaluate,
			  "{\"role\":\"baseline\",\"kind\":\"windows\",\"format\":\"tokens\","
			  "\"window\":10,\"stride\":5,\"mode\":\"exact\"}", "eb"), &r.e);
	mcbt_run_input(&r, "model", mcbt_run_path(&r, "q", "model.safetensors"));
	mcbt_run_input(&r, "data", data);
	mcbt_run_input(&r, "baseline", mcbt_run_path(&r, "eb", "logprobs.bin"));
	CHECK_OK(mcbt_run_step(&r, &mcb_step_evaluate,
			  "{\"role\":\"compressed\",\"kind\":\"windows\",\"format\":\"tokens\","
			  "\"window\":10,\"stride\":5,\"mode\":\"exact\"}", "ec"), &r.e);
	base = read_json(&r, "eb", "eval.json");
	comp = read_json(&r, "ec", "eval.json");
	CHECK_EQ(json_integer_value(json_object_get(base, "items")), 12);
	/* 9 targets in the first window of a sequence, then 5 new ones each,
	 * 3 in the last: 9 + 5 + 5 + 3 = 22 = 23 - 1 */
	CHECK_EQ(json_integer_value(json_object_get(base, "tokens")), 66);

	mcb_model_init(&mb);
	mcb_model_init(&mc);
	CHECK_OK(mcb_model_load_ir(mcbt_run_path(&r, "imp", "model.safetensors"), &mb, &e), &e);
	CHECK_OK(mcb_model_load_ir(mcbt_run_path(&r, "q", "model.safetensors"), &mc, &e), &e);
	CHECK_OK(mcb_engine_new(&mb, &o, &eb, &e), &e);
	CHECK_OK(mcb_engine_new(&mc, &o, &ec, &e), &e);
	for (si = 0; si < 3 && eb && ec; si++) {
		int begin, prev_end = 0;

		for (begin = 0; begin < 22; begin += 5) {
			int end = begin + 10 < 23 ? begin + 10 : 23, from, p, k;
			int32_t w[10];
			double nll = 0, kl = 0, agree = 0, n = 0;

			from = prev_end - begin > 1 ? prev_end - begin : 1;
			memcpy(w, seqs[si] + begin, (size_t)(end - begin) * sizeof(int32_t));
			if (begin > 0)
				w[0] = 1;
			mcb_engine_reset(eb);
			mcb_engine_reset(ec);
			CHECK_OK(mcb_engine_eval(eb, w, end - begin - 1, gb, NULL, &e), &e);
			CHECK_OK(mcb_engine_eval(ec, w, end - begin - 1, gc, NULL, &e), &e);
			for (p = from - 1; p < end - begin - 1; p++) {
				int ab = 0, ac = 0;

				ref_lsm(gb + p * 300, 300, lb);
				ref_lsm(gc + p * 300, 300, lc);
				nll -= lb[w[p + 1]];
				for (k = 0; k < 300; k++) {
					/* the step keeps the baseline's log-probabilities as float */
					double fb = (float)lb[k];

					kl += exp(fb) * (fb - lc[k]);
					if (lb[k] > lb[ab])
						ab = k;
					if (lc[k] > lc[ac])
						ac = k;
				}
				agree += ab == ac;
				n++;
			}
			CHECK(fabs(nll - json_number_value(json_array_get(json_object_get(base, "nll"),
									  item))) < 1e-9 * (1 + nll));
			CHECK(fabs(kl - json_number_value(json_array_get(json_object_get(comp, "kl"),
									 item))) < 1e-9);
			CHECK_EQ(json_integer_value(json_array_get(json_object_get(comp, "agree"), item)),
				 (long long)agree);
			CHECK_EQ(json_integer_value(json_array_get(json_object_get(comp, "count"), item)),
				 (long long)n);
			tot_kl += kl;
			tot_n += n;
			item++;
			prev_end = end;
			if (end == 23)
				break;
		}
	}
	CHECK_EQ(item, 12);

	/* the report: mean KL is the ratio of the sums; a gate between the
	 * point and the upper bound fails, one above it passes */
	mcbt_run_input(&r, "base.0.json", mcbt_run_path(&r, "eb", "eval.json"));
	mcbt_run_input(&r, "comp.0.json", mcbt_run_path(&r, "ec", "eval.json"));
	{
		json_t *meas = json_pack("{s:s, s:i, s:s, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:i, "
					 "s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:b}}",
					 "host", "test", "threads", 1, "mode", "exact", "prompt_tokens",
					 4, "decode_tokens", 4, "repeats", 1, "prompt_tokens_per_s", 1.0,
					 "decode_tokens_per_s", 1.0, "token_ms_p50", 1.0, "token_ms_p99",
					 1.0, "peak_rss_bytes", 1, "model", "parameters", 1000,
					 "weight_bytes", 1000, "kv_bytes_per_pos", 10, "n_layers", 2, "dim",
					 64, "hidden_dim", 96, "n_heads", 4, "n_kv_heads", 2, "vocab", 300,
					 "seq_len", 32, "tied", 1);

		snprintf(path, sizeof(path), "%s/measure.json", r.dir);
		json_dump_file(meas, path, 0);
		json_decref(meas);
		mcbt_run_input(&r, "measure.json", path);
	}
	{
		char params[2048];
		double point = tot_kl / tot_n;

		snprintf(params, sizeof(params),
			 "{\"target\":\"t\",\"model\":\"m\",\"export\":\"safetensors\","
			 "\"quantized\":true,\"mcbuild_version\":\"test\","
			 "\"hardware\":{\"name\":\"h\",\"kind\":\"cpu\",\"memory_gb\":1.0,"
			 "\"bandwidth_gbs\":1.0,\"peak_tflops\":{\"fp32\":1.0}},"
			 "\"performance\":{\"context\":0,\"batch\":1,\"prompt_tokens\":4,"
			 "\"decode_tokens\":4,\"repeats\":1},"
			 "\"evals\":[{\"dataset\":\"d\",\"kind\":\"windows\",\"window\":10,"
			 "\"stride\":5}],"
			 "\"quality\":{\"confidence\":0.95,\"bootstrap\":500,\"seed\":1,\"metrics\":["
			 "{\"metric\":\"kl_divergence\",\"dataset\":\"d\",\"window\":10,\"stride\":5,"
			 "\"gate\":{\"kind\":\"max\",\"value\":%.17g,\"relative\":false,"
			 "\"text\":\"max: point\"}}]}}",
			 point);
		CHECK_OK(mcbt_run_step(&r, &mcb_step_report, params, "rep"), &r.e);
		rep = read_json(&r, "rep", "report.json");
		{
			json_t *m = json_array_get(json_object_get(json_object_get(rep, "quality"),
								   "metrics"), 0);

			CHECK(fabs(json_number_value(json_object_get(m, "point")) - point) <
			      1e-12 * (1 + point));
			/* the upper bound is above the point: a gate at the point fails */
			CHECK_STR(json_string_value(json_object_get(rep, "verdict")), "failed");
			CHECK(json_array_size(json_object_get(rep, "failures")) == 1);
		}
		json_decref(rep);
	}
	mcb_engine_free(eb);
	mcb_engine_free(ec);
	mcb_model_release(&mb);
	mcb_model_release(&mc);
	json_decref(base);
	json_decref(comp);
	free(lb);
	free(lc);
	free(gb);
	free(gc);
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

static void test_synthetic(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];

	snprintf(path, sizeof(path), "%s/synthetic.bin", dir);
	mcbt_write_llama2c(path, 64, 80, 2, 4, 2, 300, 32);
	pipeline(path);
}

static void test_stories(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	char path[4096];

	if (!p)
		return;
	snprintf(path, sizeof(path), "%s", p);
	pipeline(path);
}

static void test_import_errors(void)
{
	struct mcbt_run r;
	char path[4096];

	memset(&r, 0, sizeof(r));
	mcb_arena_init(&r.a);
	r.dir = mcbt_tmpdir();
	snprintf(path, sizeof(path), "%s/garbage.bin", r.dir);
	mcbt_write(path, "not a model at all", 18);
	mcbt_run_input(&r, "source", path);
	CHECK(mcbt_run_step(&r, &mcb_step_import, "{\"format\": \"auto\"}", "x") != 0);
	CHECK(strstr(r.e.msg, "garbage.bin") != NULL);
	mcb_buf_release(&r.log);
	mcb_arena_release(&r.a);
}

/* OpenBLAS loads on first use and computes what the scalar loop does. */
static void test_blas_loads(void)
{
	struct mcb_errctx e;
	const struct mcb_blas *b;
	float a[6] = {1, 2, 3, 4, 5, 6}, x[6] = {7, 8, 9, 10, 11, 12}, c[4], ref[4];
	int i, j, k;

	mcb_blas_set_threads(1);
	b = mcb_blas_get(&e);
	CHECK(b != NULL);
	if (!b)
		return;
	/* C (2,2) = A (2,3) @ X (3,2), row-major (CblasRowMajor = 101, NoTrans = 111) */
	b->sgemm(101, 111, 111, 2, 2, 3, 1.0f, a, 3, x, 2, 0.0f, c, 2);
	for (i = 0; i < 2; i++)
		for (j = 0; j < 2; j++) {
			ref[i * 2 + j] = 0;
			for (k = 0; k < 3; k++)
				ref[i * 2 + j] += a[i * 3 + k] * x[k * 2 + j];
		}
	for (i = 0; i < 4; i++)
		CHECK(c[i] == ref[i]);
}

int main(void)
{
	RUN(test_blas_loads);
	RUN(test_synthetic);
	RUN(test_stories);
	RUN(test_import_errors);
	RUN(test_quantize_refusals);
	RUN(test_evaluate_math);
	return mcbt_done();
}
