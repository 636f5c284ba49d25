/*
 * step report: a target's report (report.json version 1, rendered to
 * report.md and report.html by runtime/report.c): quality gates with
 * bootstrap confidence intervals, size, measured latency, an estimate for the
 * target hardware and its memory fit.
 *
 * params: {"target", "model", "hardware" (the resolved profile), "export",
 *          "quantized" (a technique changed the weights), "quality" (the
 *          target's quality: section or null), "performance", "evals":
 *          [{"dataset", "kind", "window", "stride"}], "mcbuild_version"}
 * inputs: "base.K.json" and "comp.K.json" (the baseline's and the compressed
 *         model's evaluation K, see runtime/step_evaluate.c), "measure.json",
 *         and "file:NAME" for every file of the exported model (only their
 *         sizes are read)
 * outputs: report.json, report.md, report.html
 *
 * Gates are applied to the bound of the confidence interval, never to the
 * point value: perplexity's ratio upper bound, mean KL's upper bound,
 * top-1 agreement's lower bound, accuracy's largest plausible drop.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/report.h"
#include "mcb/stats.h"
#include "mcb/step.h"

struct series {
	double *a, *b, *c; /* per item: the metric's numerator pieces */
	uint8_t *ca, *cb;  /* accuracy: correct flags */
	size_t n;
};

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

/* Element i of the number array key of o. */
static double at(const json_t *o, const char *key, size_t i)
{
	return json_number_value(json_array_get(json_object_get(o, key), i));
}

static int eval_index(const json_t *evals, const json_t *metric)
{
	size_t i;
	json_t *e;

	json_array_foreach (evals, i, e)
		if (json_equal(json_object_get(e, "dataset"), json_object_get(metric, "dataset")) &&
		    mcb_json_same(json_object_get(e, "window"), json_object_get(metric, "window")) &&
		    mcb_json_same(json_object_get(e, "stride"), json_object_get(metric, "stride")))
			return (int)i;
	return -1;
}

/* The items of group g (-1: all) of a metric, from the two evaluations. */
static int collect(struct mcb_stepctx *sc, const char *metric, const json_t *base,
		   const json_t *comp, long g, struct series *s)
{
	size_t n = json_array_size(json_object_get(comp, "group")), i, k = 0;
	int acc = !strcmp(metric, "accuracy");

	if (json_array_size(json_object_get(base, "group")) != n)
		return mcb_errf(sc->e, MCB_EFORMAT,
				"the baseline and the compressed model were evaluated on different "
				"items (%zu and %zu)",
				json_array_size(json_object_get(base, "group")), n);
	s->a = mcb_arena_array(sc->scratch, n + 1, sizeof(double));
	s->b = mcb_arena_array(sc->scratch, n + 1, sizeof(double));
	s->c = mcb_arena_array(sc->scratch, n + 1, sizeof(double));
	s->ca = mcb_arena_array(sc->scratch, n + 1, 1);
	s->cb = mcb_arena_array(sc->scratch, n + 1, 1);
	for (i = 0; i < n; i++) {
		if (g >= 0 && (long)at(comp, "group", i) != g)
			continue;
		if (acc) {
			s->ca[k] = at(base, "correct", i) != 0;
			s->cb[k] = at(comp, "correct", i) != 0;
		} else {
			if (at(base, "count", i) != at(comp, "count", i))
				return mcb_errf(sc->e, MCB_EFORMAT,
						"evaluation windows differ between the baseline and "
						"the compressed model");
			s->a[k] = at(base, "nll", i);
			s->b[k] = at(comp, "nll", i);
			s->c[k] = at(comp, "count", i);
			if (!strcmp(metric, "kl_divergence"))
				s->a[k] = at(comp, "kl", i);
			else if (!strcmp(metric, "top1_agreement"))
				s->a[k] = at(comp, "agree", i);
		}
		k++;
	}
	s->n = k;
	return 0;
}

struct outcome {
	struct mcb_ci ci;
	double baseline, compressed, tokens;
	size_t n01, n10;
};

/* The metric's statistic and CI on series s. */
static int compute(struct mcb_stepctx *sc, const char *metric, const struct series *s, int reps,
		   double conf, uint64_t seed, struct outcome *o)
{
	double sa = 0, sb = 0, sc_ = 0;
	size_t i;
	int rc;

	memset(o, 0, sizeof(*o));
	if (!s->n)
		return mcb_errf(sc->e, MCB_ERANGE, "no items to evaluate %s on", metric);
	for (i = 0; i < s->n; i++) {
		sa += s->a[i];
		sb += s->b[i];
		sc_ += s->c[i];
	}
	o->tokens = sc_;
	if (!strcmp(metric, "accuracy")) {
		double ca = 0, cb = 0;

		for (i = 0; i < s->n; i++)
			ca += s->ca[i], cb += s->cb[i];
		o->baseline = ca / (double)s->n;
		o->compressed = cb / (double)s->n;
		return mcb_paired_accuracy(s->ca, s->cb, s->n, conf, &o->ci, &o->n01, &o->n10, sc->e);
	}
	if (!strcmp(metric, "perplexity")) {
		o->baseline = exp(sa / sc_);
		o->compressed = exp(sb / sc_);
		return mcb_bootstrap_ppl_ratio(s->a, s->b, s->c, s->n, reps, conf, seed, &o->ci,
					       sc->e);
	}
	/* kl_divergence, top1_agreement: ratio of sums over items; 0 is not a
	 * null hypothesis for them, so no p-value */
	rc = mcb_bootstrap_ratio(s->a, s->c, s->n, reps, conf, seed, &o->ci, sc->e);
	o->baseline = NAN;
	o->compressed = o->ci.point;
	o->ci.p = NAN;
	return rc;
}

/*
 * Gate g on outcome o, as a limit on the statistic's own scale: the CI bound
 * compared (*bound, *bound_value) and the threshold it must not pass
 * (*threshold).  Returns 1 passed, 0 failed.
 *   perplexity      ratio upper bound <= 1 + v (relative) or 1 + v / baseline ppl
 *   kl_divergence   upper bound <= v
 *   top1_agreement  lower bound >= v (min) or 1 - v (max_drop)
 *   accuracy        change's lower bound >= -v (absolute) or -v x baseline accuracy
 */
static int gate_passes(const char *metric, const json_t *g, const struct outcome *o,
		       const char **bound, double *bound_value, double *threshold)
{
	const char *kind = json_string_value(json_object_get(g, "kind"));
	double v = num(g, "value");
	int rel = json_is_true(json_object_get(g, "relative"));

	if (!strcmp(metric, "perplexity")) {
		*bound = "upper", *bound_value = o->ci.hi;
		*threshold = rel ? 1 + v : 1 + (o->baseline > 0 ? v / o->baseline : 0);
		return o->ci.hi <= *threshold;
	}
	if (!strcmp(metric, "kl_divergence")) {
		*bound = "upper", *bound_value = o->ci.hi, *threshold = v;
		return o->ci.hi <= v;
	}
	*bound = "lower", *bound_value = o->ci.lo;
	if (!strcmp(metric, "top1_agreement"))
		*threshold = !strcmp(kind, "min") ? v : 1 - v;
	else /* accuracy: the drop is -change; its largest plausible value is -lo */
		*threshold = rel ? -v * o->baseline : -v;
	return o->ci.lo >= *threshold;
}

static const char *statistic_of(const char *metric)
{
	if (!strcmp(metric, "perplexity"))
		return "ppl_ratio";
	if (!strcmp(metric, "kl_divergence"))
		return "mean_kl";
	if (!strcmp(metric, "top1_agreement"))
		return "agreement";
	return "accuracy_delta";
}

/* One line for a failed gate, as the build prints it. */
static char *failure_line(struct mcb_stepctx *sc, const char *metric, const char *dataset,
			  const char *group, const struct outcome *o, const json_t *g)
{
	const char *text = json_string_value(json_object_get(g, "text"));
	const char *where = group ? mcb_arena_printf(sc->scratch, " (group '%s')", group) : "";

	if (!strcmp(metric, "perplexity"))
		return mcb_arena_printf(sc->scratch,
					"perplexity on %s%s: ratio %.4g [%.4g, %.4g] exceeds %s",
					dataset, where, o->ci.point, o->ci.lo, o->ci.hi, text);
	if (!strcmp(metric, "kl_divergence"))
		return mcb_arena_printf(sc->scratch,
					"kl_divergence on %s%s: %.4g [%.4g, %.4g] nats/token exceeds %s",
					dataset, where, o->ci.point, o->ci.lo, o->ci.hi, text);
	if (!strcmp(metric, "top1_agreement"))
		return mcb_arena_printf(sc->scratch,
					"top1_agreement on %s%s: %.4g [%.4g, %.4g] fails %s", dataset,
					where, o->ci.point, o->ci.lo, o->ci.hi, text);
	return mcb_arena_printf(sc->scratch,
				"accuracy on %s%s: change %.4g [%.4g, %.4g] exceeds %s", dataset,
				where, o->ci.point, o->ci.lo, o->ci.hi, text);
}

static json_t *ci_json(const struct mcb_ci *ci)
{
	return json_pack("[f, f]", ci->lo, ci->hi);
}

static json_t *real_or_null(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

/* The quality section; appends failure lines to failures. */
static int quality_section(struct mcb_stepctx *sc, const json_t *q, const json_t *evals,
			   json_t *failures, json_t **out, int *gated)
{
	double conf = num(q, "confidence");
	int reps = (int)json_integer_value(json_object_get(q, "bootstrap"));
	uint64_t seed = (uint64_t)json_integer_value(json_object_get(q, "seed"));
	json_t *metrics = json_array(), *m;
	size_t i, gi;
	int rc = 0;

	*gated = 0;
	json_array_foreach (json_object_get(q, "metrics"), i, m) {
		const char *metric = json_string_value(json_object_get(m, "metric"));
		const char *dataset = json_string_value(json_object_get(m, "dataset"));
		const json_t *gate = json_object_get(m, "gate");
		int k = eval_index(evals, m);
		char name[32];
		json_t *base, *comp, *groups, *row, *gj = json_null();
		struct series s;
		struct outcome o;
		const char *bound = "upper";
		double bv = 0, th = 0;
		int passed = 1;

		if (k < 0) {
			rc = mcb_errf(sc->e, MCB_EINTERNAL, "no evaluation for metric %s", metric);
			break;
		}
		snprintf(name, sizeof(name), "base.%d.json", k);
		base = mcb_step_read_json(sc, name);
		snprintf(name, sizeof(name), "comp.%d.json", k);
		comp = base ? mcb_step_read_json(sc, name) : NULL;
		if (!comp) {
			json_decref(base);
			rc = sc->e->code;
			break;
		}
		rc = collect(sc, metric, base, comp, -1, &s);
		if (!rc)
			rc = compute(sc, metric, &s, reps, conf, seed, &o);
		if (rc) {
			json_decref(base);
			json_decref(comp);
			break;
		}
		if (json_is_object(gate)) {
			*gated = 1;
			passed = gate_passes(metric, gate, &o, &bound, &bv, &th);
			if (!passed)
				json_array_append_new(failures,
						      json_string(failure_line(sc, metric, dataset, NULL,
									       &o, gate)));
			gj = json_deep_copy(gate);
			json_object_set_new(gj, "bound", json_string(bound));
			json_object_set_new(gj, "bound_value", json_real(bv));
			json_object_set_new(gj, "threshold", json_real(th));
			json_object_set_new(gj, "passed", json_boolean(passed));
		}
		row = json_pack("{s:s, s:s, s:O, s:O, s:I, s:o, s:o, s:o, s:s, s:f, s:o, s:o, s:o}",
				"name", metric, "dataset", dataset, "dataset_sha256",
				json_object_get(comp, "dataset_sha256"), "convention",
				json_object_get(comp, "convention"), "items", (json_int_t)s.n,
				"tokens",
				!strcmp(metric, "accuracy") ? json_null()
							    : json_integer((json_int_t)o.tokens),
				"baseline", real_or_null(o.baseline),
				"compressed", real_or_null(o.compressed), "statistic",
				statistic_of(metric), "point", o.ci.point, "ci", ci_json(&o.ci), "p",
				real_or_null(o.ci.p), "gate", gj);
		if (!strcmp(metric, "accuracy"))
			json_object_set_new(row, "mcnemar",
					    json_pack("{s:I, s:I, s:f}", "n01", (json_int_t)o.n01,
						      "n10", (json_int_t)o.n10, "p", o.ci.p));
		groups = json_array();
		for (gi = 0; gi < json_array_size(json_object_get(comp, "groups")) && !rc; gi++) {
			const char *gname =
				json_string_value(json_array_get(json_object_get(comp, "groups"), gi));
			struct outcome go;
			json_t *gpass = json_null();

			rc = collect(sc, metric, base, comp, (long)gi, &s);
			if (!rc && !s.n)
				continue;
			if (!rc)
				rc = compute(sc, metric, &s, reps, conf, seed, &go);
			if (rc)
				break;
			if (json_is_object(gate)) {
				int ok = gate_passes(metric, gate, &go, &bound, &bv, &th);

				gpass = json_boolean(ok);
				if (!ok)
					json_array_append_new(
						failures, json_string(failure_line(sc, metric, dataset,
										   gname, &go, gate)));
			}
			json_array_append_new(groups,
					      json_pack("{s:s, s:I, s:o, s:f, s:o, s:o, s:o}", "group",
							gname, "items", (json_int_t)s.n, "tokens",
							!strcmp(metric, "accuracy")
								? json_null()
								: json_integer((json_int_t)go.tokens),
							"point", go.ci.point,
							"ci", ci_json(&go.ci), "p", real_or_null(go.ci.p),
							"passed", gpass));
		}
		json_object_set_new(row, "groups", groups);
		json_array_append_new(metrics, row);
		json_decref(base);
		json_decref(comp);
		if (rc)
			break;
	}
	if (rc) {
		json_decref(metrics);
		return rc;
	}
	*out = json_pack("{s:s, s:f, s:{s:i, s:I}, s:o}", "baseline",
			 "the imported model before any technique (F32 activations)", "confidence",
			 conf, "bootstrap", "reps", reps, "seed", (json_int_t)seed, "metrics", metrics);
	return 0;
}

/* The dtype whose peak bounds compute for this export (README, "report.json"). */
static const char *compute_dtype(const char *format, int quantized, const json_t *peak)
{
	if (quantized && !strcmp(format, "gguf") && json_object_get(peak, "int8"))
		return "int8"; /* llama.cpp: int8 dot products on Q8_0 activations */
	if (quantized && json_object_get(peak, "fp16"))
		return "fp16"; /* weight-only int8: dequantized to fp16 for the matmul */
	return "fp32";
}

static json_t *performance_section(const json_t *p, const json_t *meas, const json_t *hw,
				   const char *format, uint64_t export_bytes, int quantized)
{
	const json_t *mm = json_object_get(meas, "model");
	const json_t *peak = json_object_get(hw, "peak_tflops");
	double params = num(mm, "parameters"), layers = num(mm, "n_layers"), dim = num(mm, "dim");
	/* heads may have been pruned: n_heads * head_dim below dim */
	double hd = num(mm, "head_dim") > 0 ? num(mm, "head_dim") : dim / num(mm, "n_heads");
	double kv_dim = hd * num(mm, "n_kv_heads"), q_dim = hd * num(mm, "n_heads");
	double ctx = num(p, "context") > 0 ? num(p, "context") : num(mm, "seq_len");
	double batch = num(p, "batch"), bw = num(hw, "bandwidth_gbs");
	const char *dtype = compute_dtype(format, quantized, peak);
	double tflops = json_object_get(peak, dtype) ? num(peak, dtype) : num(peak, "fp32");
	/* matmuls: 2 flops per weight (the embedding lookup is not a matmul
	 * unless it is also the classifier); attention: 4 flops per cached
	 * position and channel of every layer */
	double embd = num(mm, "vocab") * dim;
	double lin = params - (json_is_true(json_object_get(mm, "tied")) ? 0 : embd);
	double flops = 2 * lin + 4 * layers * q_dim * ctx;
	double kv_per_tok = 2 * layers * kv_dim * 2; /* K and V, fp16 */
	double bytes = (double)export_bytes + kv_per_tok * ctx;
	double mem_bound = bw * 1e9 / bytes, comp_bound = tflops > 0 ? tflops * 1e12 / flops : INFINITY;
	double kv_cache = kv_per_tok * ctx * batch, device = num(hw, "memory_gb") * 1073741824.0;
	json_t *measured = json_deep_copy(meas), *est, *fit;

	json_object_del(measured, "model");
	est = json_pack("{s:O, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:[s, s, s, s]}",
			"hardware", json_object_get(hw, "name"), "dtype", dtype,
			"weight_bytes_per_token", (json_int_t)export_bytes, "kv_bytes_per_token",
			(json_int_t)(kv_per_tok * ctx), "flops_per_token", flops, "bandwidth_gbs", bw,
			"peak_tflops", tflops, "memory_bound_tokens_per_s", mem_bound,
			"compute_bound_tokens_per_s", isfinite(comp_bound) ? comp_bound : 0.0,
			"tokens_per_s", mem_bound < comp_bound ? mem_bound : comp_bound, "bound",
			mem_bound < comp_bound ? "memory" : "compute", "assumptions",
			"decoding one sequence: every byte of the exported weights is read once per "
			"token",
			"the KV cache is fp16 and read in full at the context length",
			"matmuls take 2 flops per weight, attention 4 per cached position and "
			"channel",
			"the hardware reaches its datasheet bandwidth and peak; no overheads");
	fit = json_pack("{s:f, s:f, s:I, s:f, s:f, s:f, s:b, s:f}", "context", ctx, "batch",
			batch, "weights_bytes", (json_int_t)export_bytes, "kv_cache_bytes", kv_cache,
			"total_bytes", (double)export_bytes + kv_cache, "device_bytes", device, "fits",
			(double)export_bytes + kv_cache <= device, "utilization",
			((double)export_bytes + kv_cache) / device);
	return json_pack("{s:o, s:o, s:o}", "measured", measured, "estimate", est, "memory_fit",
			 fit);
}

static int run_report(struct mcb_stepctx *sc)
{
	const json_t *p = sc->params;
	json_t *meas = mcb_step_read_json(sc, "measure.json"), *failures = json_array();
	json_t *quality = json_null(), *files = json_array(), *r = NULL;
	struct mcb_buf md = MCB_BUF_INIT, html = MCB_BUF_INIT;
	uint64_t bytes = 0;
	double params, kept;
	int gated = 0, rc = 0, quantized;
	size_t i;

	if (!meas)
		return sc->e->code;
	for (i = 0; i < sc->nin; i++)
		if (!strncmp(sc->in[i].name, "file:", 5)) {
			json_array_append_new(files, json_pack("{s:s, s:I}", "name", sc->in[i].name + 5,
							       "bytes", (json_int_t)sc->in[i].size));
			bytes += sc->in[i].size;
		}
	quantized = mcb_param_bool(p, "quantized", 0);
	if (json_is_object(json_object_get(p, "quality")))
		rc = quality_section(sc, json_object_get(p, "quality"), json_object_get(p, "evals"),
				     failures, &quality, &gated);
	if (rc)
		goto out;
	params = num(json_object_get(meas, "model"), "baseline_parameters");
	kept = num(json_object_get(meas, "model"), "parameters");
	r = json_pack("{s:i, s:O, s:O, s:s, s:O}", "report_version", MCB_REPORT_VERSION,
		      "mcbuild_version", json_object_get(p, "mcbuild_version"), "target",
		      json_object_get(p, "target"), "verdict",
		      !gated ? "ungated" : json_array_size(failures) ? "failed" : "passed",
		      "failures", failures);
	json_object_set_new(r, "model",
			    json_pack("{s:O, s:s, s:f, s:f}", "name", json_object_get(p, "model"),
				      "architecture", "llama", "parameters", params,
				      "baseline_bytes", params * 4));
	{
		const json_t *hw = json_object_get(p, "hardware");

		json_object_set_new(r, "hardware",
				    json_pack("{s:O, s:s, s:O, s:O, s:O, s:O}", "name",
					      json_object_get(hw, "name"), "description",
					      mcb_param_str(hw, "description", ""),
					      "kind", json_object_get(hw, "kind"), "memory_gb",
					      json_object_get(hw, "memory_gb"), "bandwidth_gbs",
					      json_object_get(hw, "bandwidth_gbs"), "peak_tflops",
					      json_object_get(hw, "peak_tflops")));
	}
	json_object_set_new(r, "export",
			    json_pack("{s:O, s:O, s:I, s:f, s:f, s:f}", "format",
				      json_object_get(p, "export"), "files", files, "bytes",
				      (json_int_t)bytes, "compression_ratio",
				      bytes ? params * 4 / (double)bytes : 0.0, "bits_per_weight",
				      params > 0 ? (double)bytes * 8 / params : 0.0, "parameters",
				      kept));
	json_object_set(r, "quality", quality);
	json_object_set_new(r, "performance",
			    performance_section(json_object_get(p, "performance"), meas,
						json_object_get(p, "hardware"),
						json_string_value(json_object_get(p, "export")), bytes,
						quantized));
	rc = mcb_report_check(r, sc->e);
	if (!rc)
		rc = mcb_step_write_json(sc, "report.json", r);
	if (!rc)
		rc = mcb_report_markdown(r, &md, sc->e);
	if (!rc)
		rc = mcb_os_write_atomic(mcb_step_outpath(sc, "report.md"), md.data, md.len, 0644,
					 sc->e);
	if (!rc)
		rc = mcb_report_html(r, &html, sc->e);
	if (!rc)
		rc = mcb_os_write_atomic(mcb_step_outpath(sc, "report.html"), html.data, html.len,
					 0644, sc->e);
	for (i = 0; !rc && i < json_array_size(failures); i++)
		mcb_step_log(sc, "FAILED %s", json_string_value(json_array_get(failures, i)));
out:
	json_decref(r);
	json_decref(meas);
	json_decref(failures);
	json_decref(quality);
	json_decref(files);
	mcb_buf_release(&md);
	mcb_buf_release(&html);
	return rc;
}

/* Only the evaluations and the measurement are read; the exported files
 * count by their sizes. */
static int wants(const char *slot)
{
	return strncmp(slot, "file:", 5) != 0;
}

const struct mcb_stepkind mcb_step_report = {
	.name = "report",
	.version = 2,
	.run = run_report,
	.wants = wants,
};
