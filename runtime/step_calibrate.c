/*
 * step calibrate: the calibration statistics of a model on a dataset
 * (runtime/calib.c), shared by every technique that needs them (GPTQ and
 * SparseGPT: Hessians; AWQ: mean |x| and raw rows; SmoothQuant: max |x|;
 * Wanda: column norms).
 *
 * params: {"samples": sequences to use (128), "seq_len": tokens per sequence
 *          (0: the model's context), "max_samples": raw rows kept per set
 *          (512), "seed" (0), "points": capture point names (default
 *          ["attn_in", "attn_out", "ffn_in", "ffn_down"]; "output" adds the
 *          classifier's input), "mode": "exact" | "ggml" (engine numerics),
 *          "format": "tokens" | "text" | "csv" (the dataset's), "memory_mb":
 *          the accumulators' budget (4096), "layer_first", "layer_count"
 *          (0: every layer): a slice of the layers, for models whose
 *          statistics do not fit the budget at once (one step per slice)}
 * inputs: "model" (internal form), "data" (the dataset file), and for
 *         sequential calibration "part.blk.K": the compressed layers before
 *         the slice, put into the model first (runtime/part.c), so that
 *         the statistics of layer L are measured on inputs the compressed
 *         layers 0 .. L-1 produce, as GPTQ's reference does
 * output: calib.safetensors (format at the top of runtime/calib.c; its
 *         metadata also records "mode", "seq_len", "format",
 *         "model_sha256" and "dataset_sha256")
 *
 * Sequences: the first `samples` non-empty items of the dataset, in file
 * order, each truncated to its first seq_len tokens; shorter items are used
 * whole (skipping them would silently drop most documents of a real corpus,
 * and GPTQ's scale counts sequences whatever their length).  A dataset with
 * fewer items gives what it has, and the log says so.  Each sequence runs
 * from position 0 (KV cache reset) through the reference engine, whose
 * capture hook feeds the statistics; the statistics do not depend on the
 * thread count (the engine's and the accumulator's results do not).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/calib.h"
#include "mcb/dataset.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/part.h"
#include "mcb/step.h"
#include "mcb/tokenizer.h"

static int load_data(struct mcb_stepctx *sc, const struct mcb_model *m, const char *format,
		     const char *path, struct mcb_dataset *ds)
{
	struct mcb_tokenizer *tok = NULL;
	int rc;

	if (!strcmp(format, "tokens"))
		return mcb_dataset_load_tokens(path, m->cfg.vocab_size, ds, sc->e);
	if (strcmp(format, "text") && strcmp(format, "csv"))
		return mcb_errf(sc->e, MCB_EUNSUP, "cannot calibrate on a %s dataset", format);
	rc = mcb_tokenizer_from_model(m, &tok, sc->e);
	if (rc == MCB_ENOENT && !strcmp(format, "csv"))
		rc = 0, tok = NULL; /* a csv of token ids needs no tokenizer */
	else if (rc)
		return mcb_errprefix(sc->e, "a %s dataset needs the model's tokenizer", format);
	if (!strcmp(format, "text"))
		rc = mcb_dataset_load_text(path, tok, ds, sc->e);
	else
		rc = mcb_dataset_load_csv(path, tok, m->cfg.vocab_size, ds, sc->e);
	mcb_tokenizer_free(tok);
	return rc;
}

/* Put the inputs "part.*" into m (sequential calibration). */
static int apply_parts(struct mcb_stepctx *sc, struct mcb_model *m)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < sc->nin && !rc; i++) {
		struct mcb_model part;

		if (strncmp(sc->in[i].name, "part.", 5))
			continue;
		mcb_model_init(&part);
		rc = mcb_model_load_ir_or_part(sc->in[i].path, &part, sc->e);
		if (!rc && !mcb_model_is_part(&part))
			rc = mcb_errf(sc->e, MCB_EFORMAT, "input %s is not a part", sc->in[i].name);
		if (!rc)
			rc = mcb_part_apply(m, &part, sc->e);
		mcb_model_release(&part);
	}
	return rc ? rc : mcb_model_check_llama(m, "the model with its compressed layers", sc->e);
}

/* The "points" parameter as MCB_CALIB_POINT bits. */
static int parse_points(struct mcb_stepctx *sc, unsigned *points)
{
	const json_t *v = json_object_get(sc->params, "points");
	size_t i;

	if (!v) {
		*points = MCB_CALIB_DEFAULT_POINTS;
		return 0;
	}
	if (!json_is_array(v) || !json_array_size(v))
		return mcb_errf(sc->e, MCB_EINVAL, "calibrate: points must be a non-empty list");
	*points = 0;
	for (i = 0; i < json_array_size(v); i++) {
		const char *name = json_string_value(json_array_get(v, i));
		int p = name ? mcb_calib_point_parse(name) : -1;

		if (p < 0)
			return mcb_errf(sc->e, MCB_EINVAL,
					"calibrate: unknown capture point '%s' (attn_in, attn_out, "
					"ffn_in, ffn_down, output)", name ? name : "?");
		*points |= MCB_CALIB_POINT(p);
	}
	return 0;
}

static void meta_str(json_t *md, const char *key, const char *v)
{
	json_object_set_new(md, key, json_string(v));
}

static int run_calibrate(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const struct mcb_step_input *data = mcb_step_input(sc, "data");
	const char *mode = mcb_param_str(sc->params, "mode", "exact");
	const char *format = mcb_param_str(sc->params, "format", "tokens");
	int64_t nseq = mcb_param_int(sc->params, "samples", 128);
	int64_t seq_len = mcb_param_int(sc->params, "seq_len", 0);
	int64_t memory_mb = mcb_param_int(sc->params, "memory_mb", 4096);
	struct mcb_engine_opts eo = {sc->blas_threads, MCB_ENGINE_EXACT, 0};
	struct mcb_calib_opts co;
	struct mcb_engine *en = NULL;
	struct mcb_calib *c = NULL;
	struct mcb_dataset ds;
	struct mcb_model m;
	json_t *md = NULL;
	char hex[MCB_HEX_LEN + 1], buf[32];
	int64_t used = 0, nl;
	size_t it;
	int rc;

	mcb_model_init(&m);
	mcb_dataset_init(&ds);
	mcb_calib_opts_default(&co);
	if (!in || !data) {
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "calibrate step is missing an input");
		goto out;
	}
	co.max_samples = mcb_param_int(sc->params, "max_samples", 512);
	co.seed = (uint64_t)mcb_param_int(sc->params, "seed", 0);
	co.layer_first = mcb_param_int(sc->params, "layer_first", 0);
	co.layer_count = mcb_param_int(sc->params, "layer_count", 0);
	co.threads = sc->blas_threads;
	if ((rc = parse_points(sc, &co.points)))
		goto out;
	if (strcmp(mode, "exact") && strcmp(mode, "ggml")) {
		rc = mcb_errf(sc->e, MCB_EINVAL, "calibrate: unknown engine mode '%s'", mode);
		goto out;
	}
	eo.mode = !strcmp(mode, "ggml") ? MCB_ENGINE_GGML : MCB_ENGINE_EXACT;
	if (nseq < 1 || seq_len < 0 || memory_mb < 1 || memory_mb > (INT64_MAX >> 20)) {
		rc = mcb_errf(sc->e, MCB_EINVAL,
			      "calibrate: bad samples %lld, seq_len %lld or memory_mb %lld",
			      (long long)nseq, (long long)seq_len, (long long)memory_mb);
		goto out;
	}
	co.budget_bytes = (uint64_t)memory_mb << 20;
	if ((rc = mcb_model_load_ir(in->path, &m, sc->e)) || (rc = apply_parts(sc, &m)))
		goto out;
	if (!seq_len)
		seq_len = m.cfg.seq_len;
	if (seq_len > m.cfg.seq_len) {
		rc = mcb_errf(sc->e, MCB_ERANGE,
			      "calibration sequences of %lld tokens do not fit the model's context "
			      "of %lld", (long long)seq_len, (long long)m.cfg.seq_len);
		goto out;
	}
	if ((rc = load_data(sc, &m, format, data->path, &ds)) ||
	    (rc = mcb_calib_new(&m.cfg, &co, &c, sc->e)))
		goto out;
	eo.ctx_len = seq_len;
	if ((rc = mcb_engine_new(&m, &eo, &en, sc->e)))
		goto out;
	mcb_engine_set_capture(en, mcb_calib_capture, c);
	for (it = 0; it < ds.n && used < nseq; it++) {
		const struct mcb_ds_item *item = &ds.items[it];
		int64_t n = (int64_t)item->ntokens < seq_len ? (int64_t)item->ntokens : seq_len;

		if (n < 1 || !item->tokens)
			continue;
		mcb_engine_reset(en);
		if ((rc = mcb_engine_eval(en, item->tokens, n, NULL, NULL, sc->e)) ||
		    (rc = mcb_calib_status(c, sc->e))) {
			mcb_errprefix(sc->e, "calibration sequence %lld (item %zu)",
				      (long long)used + 1, it + 1);
			goto out;
		}
		mcb_calib_end_sequence(c);
		used++;
	}
	if (!used) {
		rc = mcb_errf(sc->e, MCB_EINVAL, "calibration: the dataset has no token sequence");
		goto out;
	}
	if ((rc = mcb_calib_finish(c, sc->e)))
		goto out;
	md = json_object();
	meta_str(md, "mode", mode);
	meta_str(md, "format", format);
	snprintf(buf, sizeof(buf), "%lld", (long long)seq_len);
	meta_str(md, "seq_len", buf);
	mcb_digest_hex(&in->digest, hex);
	meta_str(md, "model_sha256", hex);
	mcb_digest_hex(&data->digest, hex);
	meta_str(md, "dataset_sha256", hex);
	if ((rc = mcb_calib_write(c, mcb_step_outpath(sc, "calib.safetensors"), md, sc->e)))
		goto out;
	if (used < nseq)
		mcb_step_log(sc, "the dataset has only %lld sequences (samples: %lld): using "
			     "them all", (long long)used, (long long)nseq);
	nl = co.layer_count ? co.layer_count : m.cfg.n_layers - co.layer_first;
	mcb_step_log(sc, "calibrated on %lld sequences, %llu tokens: %lld layers from %lld, %s "
		     "the classifier's input", (long long)used,
		     (unsigned long long)mcb_calib_tokens(c), (long long)nl,
		     (long long)co.layer_first,
		     (co.points & MCB_CALIB_POINT(MCB_CAPTURE_OUTPUT)) ? "with" : "without");
out:
	json_decref(md);
	mcb_engine_free(en);
	mcb_calib_free(c);
	mcb_dataset_release(&ds);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_calibrate = {
	.name = "calibrate",
	.version = 1,
	.run = run_calibrate,
};
