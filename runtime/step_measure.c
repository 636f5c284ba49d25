/*
 * step measure: latency and memory of the reference engine on this host.
 *
 * params: {"prompt_tokens", "decode_tokens", "repeats", "threads", "mode",
 *          "host" (the CPU model: a measurement belongs to its host)}
 * inputs: "model" (internal form)
 * output: measure.json: the figures (prompt and decode tokens/s, per-token
 *   p50/p99 over every decoded token of every repeat, peak resident memory
 *   of the step's process) and the model facts the report derives estimates
 *   from (parameters, bytes of weights the engine reads per token, KV bytes
 *   per position, shape).
 *
 * It runs alone (exclusive), so that no other step competes for the cores.
 * It logs nothing: the figures are in the report, and build output stays the
 * same from run to run.
 * Its outputs are measurements: they differ from run to run; the action key
 * includes the host, so another machine measures again.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <jansson.h>

#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/part.h"
#include "mcb/qtensor.h"
#include "mcb/os.h"
#include "mcb/safetensors.h"
#include "mcb/step.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Linear-interpolated percentile q of sorted x (n >= 1), never below a
 * nanosecond (a clock's resolution), so that rates stay finite. */
static double pct(const double *x, size_t n, double q)
{
	double h = q * (double)(n - 1), v;
	size_t i = (size_t)h;

	v = i + 1 < n ? x[i] + (h - (double)i) * (x[i + 1] - x[i]) : x[n - 1];
	return v > 1e-9 ? v : 1e-9;
}

/* Parameters: elements of every weight, counted in the weight's own shape
 * whatever holds it (codes, ggml blocks), side tensors (scales, zero
 * points, g_idx, masks) not; a lowrank weight counts its factors,
 * rank * (rows + cols). */
static uint64_t count_parameters(const struct mcb_model *m)
{
	json_t *quant = json_object_get(m->meta, "quant"), *rec;
	uint64_t n = 0;
	const char *key;
	size_t i, k;

	for (i = 0; i < m->ntensors; i++) {
		const struct mcb_tensor *t = &m->tensors[i];
		struct mcb_qtensor q;
		struct mcb_errctx e;
		int side = 0;

		json_object_foreach (quant, key, rec)
			for (k = 0; mcb_quant_side_keys[k]; k++) {
				const char *sn =
					json_string_value(json_object_get(rec, mcb_quant_side_keys[k]));

				side |= sn && !strcmp(sn, t->name);
			}
		if (side)
			continue;
		if (json_object_get(quant, t->name) && !mcb_qtensor_get(m, t->name, &q, &e))
			n += q.format == MCB_QF_LOWRANK ? (uint64_t)q.rank * (uint64_t)(q.rows + q.cols)
							: (uint64_t)(q.rows * q.cols);
		else
			n += mcb_tensor_numel(t);
	}
	return n;
}

/* The uncompressed model's parameters: every element of the imported
 * model (input "baseline", read from its header alone), else m's. */
static int baseline_parameters(struct mcb_stepctx *sc, const struct mcb_model *m, uint64_t *n)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "baseline");
	struct mcb_st_file f;
	size_t i;

	if (!in) {
		*n = count_parameters(m);
		return 0;
	}
	if (mcb_st_open(in->path, &f, sc->e))
		return sc->e->code;
	for (*n = 0, i = 0; i < f.ntensors; i++)
		*n += mcb_tensor_numel(&f.tensors[i]);
	mcb_st_close(&f);
	return 0;
}

static int run_measure(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	int64_t P = mcb_param_int(sc->params, "prompt_tokens", 0);
	int64_t D = mcb_param_int(sc->params, "decode_tokens", 0);
	int64_t R = mcb_param_int(sc->params, "repeats", 0);
	const char *mode = mcb_param_str(sc->params, "mode", "exact");
	struct mcb_engine_opts o;
	struct mcb_engine *en = NULL;
	struct mcb_model m;
	struct rusage ru;
	double *prefill = NULL, *decode = NULL, *tok = NULL;
	int32_t *ids = NULL;
	float *last = NULL;
	int64_t r, t, vocab;
	uint64_t base = 0;
	json_t *out;
	int rc;

	if (!in)
		return mcb_errf(sc->e, MCB_EINTERNAL, "measure step has no model input");
	memset(&o, 0, sizeof(o));
	o.threads = (int)mcb_param_int(sc->params, "threads", 1);
	o.mode = !strcmp(mode, "ggml") ? MCB_ENGINE_GGML : MCB_ENGINE_EXACT;
	mcb_model_init(&m);
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (!rc && P + D > m.cfg.seq_len)
		rc = mcb_errf(sc->e, MCB_ERANGE,
			      "%lld prompt + %lld decode tokens exceed the model's context (%lld)",
			      (long long)P, (long long)D, (long long)m.cfg.seq_len);
	o.ctx_len = P + D;
	if (!rc)
		rc = mcb_engine_new(&m, &o, &en, sc->e);
	if (rc)
		goto out;
	vocab = mcb_engine_vocab(en);
	prefill = calloc((size_t)R, sizeof(double));
	decode = calloc((size_t)R, sizeof(double));
	tok = calloc((size_t)(R * D), sizeof(double));
	ids = calloc((size_t)P, sizeof(int32_t));
	last = calloc((size_t)vocab, sizeof(float));
	if (!prefill || !decode || !tok || !ids || !last) {
		rc = mcb_errf(sc->e, MCB_ENOMEM, "cannot allocate measurement buffers");
		goto out;
	}
	ids[0] = mcb_model_bos(&m);
	for (t = 1; t < P; t++)
		ids[t] = (int32_t)((t * 7919) % vocab); /* any fixed prompt will do */
	for (r = 0; r < R && !rc; r++) {
		int64_t t0, t1;
		int32_t next;

		mcb_engine_reset(en);
		t0 = mcb_os_now_ns();
		rc = mcb_engine_eval(en, ids, P, NULL, last, sc->e);
		t1 = mcb_os_now_ns();
		prefill[r] = (double)(t1 - t0) / 1e9;
		for (t = 0; t < D && !rc; t++) {
			int64_t a, b, i;

			for (next = 0, i = 1; i < vocab; i++)
				if (last[i] > last[next])
					next = (int32_t)i;
			a = mcb_os_now_ns();
			rc = mcb_engine_eval(en, &next, 1, NULL, last, sc->e);
			b = mcb_os_now_ns();
			tok[r * D + t] = (double)(b - a) / 1e6;
			decode[r] += (double)(b - a) / 1e9;
		}
	}
	if (rc)
		goto out;
	qsort(prefill, (size_t)R, sizeof(double), cmp_double);
	qsort(decode, (size_t)R, sizeof(double), cmp_double);
	qsort(tok, (size_t)(R * D), sizeof(double), cmp_double);
	getrusage(RUSAGE_SELF, &ru);
	out = json_pack("{s:s, s:i, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I}", "host",
			mcb_param_str(sc->params, "host", ""), "threads", o.threads, "mode", mode,
			"prompt_tokens", (json_int_t)P, "decode_tokens", (json_int_t)D, "repeats",
			(json_int_t)R, "prompt_tokens_per_s", (double)P / pct(prefill, (size_t)R, 0.5),
			"decode_tokens_per_s", (double)D / pct(decode, (size_t)R, 0.5), "token_ms_p50",
			pct(tok, (size_t)(R * D), 0.5), "token_ms_p99", pct(tok, (size_t)(R * D), 0.99),
			"peak_rss_bytes", (json_int_t)ru.ru_maxrss * 1024);
	if (!rc && (rc = baseline_parameters(sc, &m, &base)))
		goto out;
	json_object_set_new(out, "model",
			    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}",
				      "parameters", (json_int_t)count_parameters(&m),
				      "baseline_parameters", (json_int_t)base, "weight_bytes",
				      (json_int_t)mcb_engine_weight_bytes(en), "kv_bytes_per_pos",
				      (json_int_t)mcb_engine_kv_bytes_per_pos(en), "n_layers",
				      (json_int_t)m.cfg.n_layers, "dim", (json_int_t)m.cfg.dim,
				      "hidden_dim", (json_int_t)m.cfg.hidden_dim, "head_dim",
				      (json_int_t)m.cfg.head_dim, "n_heads",
				      (json_int_t)m.cfg.n_heads, "n_kv_heads",
				      (json_int_t)m.cfg.n_kv_heads, "vocab", (json_int_t)vocab,
				      "seq_len", (json_int_t)m.cfg.seq_len, "tied",
				      m.cfg.tied_embeddings));
	rc = mcb_step_write_json(sc, "measure.json", out);
	json_decref(out);
out:
	free(prefill);
	free(decode);
	free(tok);
	free(ids);
	free(last);
	mcb_engine_free(en);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_measure = {
	.name = "measure",
	.version = 3,
	.run = run_measure,
	.exclusive = 1,
};
