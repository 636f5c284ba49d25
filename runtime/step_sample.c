/*
 * step sample: a token dataset drawn from a model with a fixed seed, for
 * models that come without data of their own (stories260K's tokenizer is not
 * available, so its evaluation and calibration sets are its own samples).
 *
 * params: {"sequences", "length", "seed", "temperature", "top_k"}
 * inputs: "model" (internal form: the imported model, before any technique)
 * output: data.tokens (tokens format, one sequence per line)
 *
 * Sequence i starts with BOS and is drawn by the reference engine (exact
 * mode, F32 activations) with a sampler seeded seed + i, so that adding
 * sequences leaves the earlier ones unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/dataset.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/step.h"

static int run_sample(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	int64_t nseq = mcb_param_int(sc->params, "sequences", 0);
	int64_t len = mcb_param_int(sc->params, "length", 0);
	int64_t seed = mcb_param_int(sc->params, "seed", 0);
	int64_t top_k = mcb_param_int(sc->params, "top_k", 0);
	double temp = json_number_value(json_object_get(sc->params, "temperature"));
	struct mcb_engine_opts o = {sc->blas_threads, MCB_ENGINE_EXACT, 0};
	struct mcb_engine *en = NULL;
	struct mcb_dataset ds;
	struct mcb_model m;
	struct mcb_sampler sp;
	int32_t *toks = NULL;
	float *logits = NULL;
	int64_t i, t, vocab;
	int rc;

	if (!in)
		return mcb_errf(sc->e, MCB_EINTERNAL, "sample step has no model input");
	mcb_model_init(&m);
	mcb_dataset_init(&ds);
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (!rc && len > m.cfg.seq_len)
		rc = mcb_errf(sc->e, MCB_ERANGE,
			      "sample length %lld is longer than the model's context (%lld)",
			      (long long)len, (long long)m.cfg.seq_len);
	if (!rc)
		rc = mcb_engine_new(&m, &o, &en, sc->e);
	if (rc)
		goto out;
	vocab = mcb_engine_vocab(en);
	toks = malloc((size_t)len * sizeof(*toks));
	logits = malloc((size_t)vocab * sizeof(*logits));
	if (!toks || !logits) {
		rc = mcb_errf(sc->e, MCB_ENOMEM, "cannot allocate the sampling buffers");
		goto out;
	}
	for (i = 0; i < nseq && !rc; i++) {
		mcb_engine_reset(en);
		mcb_sampler_init(&sp, (uint64_t)seed + (uint64_t)i, (float)temp, (int)top_k);
		toks[0] = mcb_model_bos(&m);
		for (t = 1; t < len && !rc; t++) {
			rc = mcb_engine_eval(en, &toks[t - 1], 1, NULL, logits, sc->e);
			if (!rc)
				toks[t] = mcb_sampler_next(&sp, logits, vocab);
		}
		if (!rc)
			mcb_dataset_add_tokens(&ds, toks, (size_t)len, -1, -1);
	}
	if (!rc)
		rc = mcb_dataset_write_tokens(&ds, mcb_step_outpath(sc, "data.tokens"), sc->e);
	if (!rc)
		mcb_step_log(sc, "sampled %lld sequences of %lld tokens (seed %lld, temperature %g)",
			     (long long)nseq, (long long)len, (long long)seed, temp);
out:
	free(toks);
	free(logits);
	mcb_engine_free(en);
	mcb_dataset_release(&ds);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_sample = {
	.name = "sample",
	.version = 1,
	.run = run_sample,
};
