/*
 * step evaluate: run a model over a dataset and keep per-item results, for
 * the statistics of runtime/step_report.c.
 *
 * params: {"role": "baseline" | "compressed", "kind": "windows" | "examples",
 *          "format": "tokens" | "text" | "csv", "window", "stride" (windows),
 *          "mode": "exact" | "ggml"}
 * inputs: "model" (internal form), "data" (the dataset file), and for a
 *         compressed windows evaluation "baseline" (the baseline's logprobs.bin)
 * outputs: eval.json, and for a baseline windows evaluation logprobs.bin
 *
 * Windows (language modelling): each sequence is cut as Hugging Face's strided
 * perplexity does: windows of `window` tokens starting every `stride` tokens;
 * a window predicts its tokens 1..L-1 from the ones before them, and scores
 * only the targets no earlier window of that sequence scored.  A window that
 * does not start its sequence gets BOS as its first token, as llama.cpp's
 * perplexity tool does (models trained on BOS-led sequences are lost without
 * it).  An item (what
 * the bootstrap resamples) is a window.  Per window: the summed negative
 * log-likelihood and the number of scored tokens; for the compressed model
 * also the summed KL divergence KL(P_baseline || P_compressed) of the
 * next-token distributions and the number of positions whose most likely
 * token (lowest id on ties) is the baseline's.  The baseline writes its
 * log-probabilities (F32, vocab per scored target, in order) to logprobs.bin
 * for that.
 *
 * Examples (labelled): each example's tokens are run as a prompt; the
 * prediction is the most likely next token; correct = prediction == label.
 *
 * eval.json: {"role", "kind", "mode", "dataset_sha256", "convention", "vocab",
 *   "items", "tokens", "groups": [names], "group": [per item, -1: none],
 *   windows: "nll", "count", compressed also "kl", "agree" (per item arrays);
 *   examples: "correct" (0/1 per item)}
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/dataset.h"
#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/step.h"
#include "mcb/tokenizer.h"

#define MAX_LOGPROB_BYTES (8ull << 30)

struct evalctx {
	struct mcb_stepctx *sc;
	int32_t bos;     /* first token of windows inside a sequence */
	int32_t *win;    /* (window,) a window with its first token replaced */
	struct mcb_engine *en;
	int64_t vocab;
	int compressed;
	FILE *lp;        /* baseline: logprobs written; compressed: read */
	double *lsm;     /* (vocab,) log-softmax of the model */
	float *base;     /* (vocab,) baseline log-probabilities read back */
	float *logits;   /* (window, vocab) */
	json_t *nll, *count, *kl, *agree, *group;
	uint64_t ntok;
};

/* log_softmax of x (n,) into out, in double. */
static void log_softmax(const float *x, int64_t n, double *out)
{
	double max = x[0], sum = 0;
	int64_t i;

	for (i = 1; i < n; i++)
		if (x[i] > max)
			max = x[i];
	for (i = 0; i < n; i++)
		sum += exp((double)x[i] - max);
	sum = log(sum) + max;
	for (i = 0; i < n; i++)
		out[i] = (double)x[i] - sum;
}

static int64_t argmax_d(const double *x, int64_t n)
{
	int64_t i, best = 0;

	for (i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

static int64_t argmax_f(const float *x, int64_t n)
{
	int64_t i, best = 0;

	for (i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

/* Evaluate one window w (len tokens) scoring targets from index `from` on. */
static int eval_window(struct evalctx *c, const int32_t *w, int64_t len, int64_t from, int group)
{
	struct mcb_stepctx *sc = c->sc;
	double nll = 0, kl = 0;
	int64_t p, i, agree = 0, n = 0;
	int rc;

	mcb_engine_reset(c->en);
	rc = mcb_engine_eval(c->en, w, len - 1, c->logits, NULL, sc->e);
	if (rc)
		return rc;
	for (p = from - 1; p < len - 1; p++) {
		const float *lg = c->logits + p * c->vocab;

		log_softmax(lg, c->vocab, c->lsm);
		nll -= c->lsm[w[p + 1]];
		n++;
		if (!c->compressed) {
			for (i = 0; i < c->vocab; i++)
				c->base[i] = (float)c->lsm[i];
			if (fwrite(c->base, sizeof(float), (size_t)c->vocab, c->lp) != (size_t)c->vocab)
				return mcb_errf(sc->e, MCB_EIO, "cannot write logprobs.bin:");
			continue;
		}
		if (fread(c->base, sizeof(float), (size_t)c->vocab, c->lp) != (size_t)c->vocab)
			return mcb_errf(sc->e, MCB_EFORMAT,
					"the baseline's log-probabilities end early: it was evaluated "
					"on other windows");
		for (i = 0; i < c->vocab; i++) {
			double lb = c->base[i];

			kl += exp(lb) * (lb - c->lsm[i]);
		}
		agree += argmax_f(c->base, c->vocab) == argmax_d(c->lsm, c->vocab);
	}
	json_array_append_new(c->nll, json_real(nll));
	json_array_append_new(c->count, json_integer(n));
	json_array_append_new(c->group, json_integer(group));
	if (c->compressed) {
		json_array_append_new(c->kl, json_real(kl < 0 ? 0 : kl));
		json_array_append_new(c->agree, json_integer(agree));
	}
	c->ntok += (uint64_t)n;
	return 0;
}

static int eval_windows(struct evalctx *c, const struct mcb_dataset *ds, int64_t window,
			int64_t stride)
{
	size_t it;
	int rc = 0;

	for (it = 0; it < ds->n && !rc; it++) {
		const struct mcb_ds_item *item = &ds->items[it];
		int64_t N = (int64_t)item->ntokens, begin, end, prev_end = 0;

		for (begin = 0; begin < N - 1 && !rc; begin += stride) {
			int64_t from;

			end = begin + window < N ? begin + window : N;
			from = prev_end - begin > 1 ? prev_end - begin : 1;
			if (end - begin >= 2 && from < end - begin) {
				const int32_t *w = item->tokens + begin;

				if (begin > 0) {
					memcpy(c->win, w, (size_t)(end - begin) * sizeof(*w));
					c->win[0] = c->bos;
					w = c->win;
				}
				rc = eval_window(c, w, end - begin, from, item->group);
			}
			prev_end = end;
			if (end == N)
				break;
		}
	}
	return rc;
}

static int eval_examples(struct evalctx *c, const struct mcb_dataset *ds, json_t *correct)
{
	struct mcb_stepctx *sc = c->sc;
	size_t it;
	int rc = 0;

	for (it = 0; it < ds->n && !rc; it++) {
		const struct mcb_ds_item *item = &ds->items[it];

		if (!item->ntokens || item->label < 0)
			return mcb_errf(sc->e, MCB_EFORMAT, "example %zu has no tokens or no label",
					it + 1);
		mcb_engine_reset(c->en);
		rc = mcb_engine_eval(c->en, item->tokens, (int64_t)item->ntokens, NULL, c->logits,
				     sc->e);
		if (!rc) {
			json_array_append_new(correct,
					      json_integer(argmax_f(c->logits, c->vocab) == item->label));
			json_array_append_new(c->group, json_integer(item->group));
		}
	}
	return rc;
}

static int load_data(struct mcb_stepctx *sc, const struct mcb_model *m, const char *format,
		     struct mcb_dataset *ds)
{
	const struct mcb_step_input *data = mcb_step_input(sc, "data");
	struct mcb_tokenizer *tok = NULL;
	int rc;

	if (!data)
		return mcb_errf(sc->e, MCB_EINTERNAL, "evaluate step has no data input");
	if (!strcmp(format, "tokens"))
		return mcb_dataset_load_tokens(data->path, m->cfg.vocab_size, ds, sc->e);
	rc = mcb_tokenizer_from_model(m, &tok, sc->e);
	if (rc == MCB_ENOENT && !strcmp(format, "csv"))
		rc = 0, tok = NULL; /* a csv of token ids needs no tokenizer */
	else if (rc)
		return mcb_errprefix(sc->e, "a %s dataset needs the model's tokenizer", format);
	if (!strcmp(format, "text"))
		rc = mcb_dataset_load_text(data->path, tok, ds, sc->e);
	else if (!strcmp(format, "csv"))
		rc = mcb_dataset_load_csv(data->path, tok, m->cfg.vocab_size, ds, sc->e);
	else
		rc = mcb_errf(sc->e, MCB_EUNSUP, "cannot evaluate a %s dataset", format);
	mcb_tokenizer_free(tok);
	return rc;
}

static int run_evaluate(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *in = mcb_step_input(sc, "model");
	const struct mcb_step_input *data = mcb_step_input(sc, "data");
	const char *role = mcb_param_str(sc->params, "role", "");
	const char *kind = mcb_param_str(sc->params, "kind", "");
	const char *mode = mcb_param_str(sc->params, "mode", "exact");
	int64_t window = mcb_param_int(sc->params, "window", 0);
	int64_t stride = mcb_param_int(sc->params, "stride", 0);
	struct mcb_engine_opts o = {sc->blas_threads, MCB_ENGINE_EXACT, 0};
	struct evalctx c;
	struct mcb_dataset ds;
	struct mcb_model m;
	json_t *out = NULL, *correct = NULL, *groups;
	char hex[MCB_HEX_LEN + 1];
	int64_t maxlen;
	size_t i;
	int rc;

	memset(&c, 0, sizeof(c));
	c.sc = sc;
	c.compressed = !strcmp(role, "compressed");
	o.mode = !strcmp(mode, "ggml") ? MCB_ENGINE_GGML : MCB_ENGINE_EXACT;
	mcb_model_init(&m);
	mcb_dataset_init(&ds);
	if (!in || !data)
		return mcb_errf(sc->e, MCB_EINTERNAL, "evaluate step is missing an input");
	rc = mcb_model_load_ir(in->path, &m, sc->e);
	if (!rc)
		rc = load_data(sc, &m, mcb_param_str(sc->params, "format", ""), &ds);
	if (rc)
		goto out;
	maxlen = !strcmp(kind, "windows") ? window : 0;
	for (i = 0; i < ds.n && !strcmp(kind, "examples"); i++)
		if ((int64_t)ds.items[i].ntokens > maxlen)
			maxlen = (int64_t)ds.items[i].ntokens;
	if (maxlen > m.cfg.seq_len) {
		rc = mcb_errf(sc->e, MCB_ERANGE,
			      "%s of %lld tokens do not fit the model's context of %lld",
			      !strcmp(kind, "windows") ? "windows" : "examples", (long long)maxlen,
			      (long long)m.cfg.seq_len);
		goto out;
	}
	o.ctx_len = maxlen > 0 ? maxlen : 1;
	rc = mcb_engine_new(&m, &o, &c.en, sc->e);
	if (rc)
		goto out;
	c.vocab = mcb_engine_vocab(c.en);
	c.lsm = malloc((size_t)c.vocab * sizeof(*c.lsm));
	c.base = malloc((size_t)c.vocab * sizeof(*c.base));
	c.logits = malloc((size_t)(maxlen > 0 ? maxlen : 1) * (size_t)c.vocab * sizeof(float));
	c.win = malloc((size_t)(maxlen > 0 ? maxlen : 1) * sizeof(*c.win));
	c.bos = mcb_model_bos(&m);
	if (!c.lsm || !c.base || !c.logits || !c.win) {
		rc = mcb_errf(sc->e, MCB_ENOMEM, "cannot allocate evaluation buffers (%lld x %lld)",
			      (long long)maxlen, (long long)c.vocab);
		goto out;
	}
	c.nll = json_array();
	c.count = json_array();
	c.kl = json_array();
	c.agree = json_array();
	c.group = json_array();
	if (!strcmp(kind, "windows")) {
		const struct mcb_step_input *bl = mcb_step_input(sc, "baseline");

		if (window < 2 || stride < 1) {
			rc = mcb_errf(sc->e, MCB_EINVAL, "bad window %lld or stride %lld",
				      (long long)window, (long long)stride);
			goto out;
		}
		if (c.compressed && (!bl || !bl->path)) {
			rc = mcb_errf(sc->e, MCB_EINTERNAL, "compressed evaluation without baseline");
			goto out;
		}
		if ((uint64_t)ds.ntokens * (uint64_t)c.vocab * 4 > MAX_LOGPROB_BYTES) {
			rc = mcb_errf(sc->e, MCB_ERANGE,
				      "the baseline's log-probabilities would take %llu bytes "
				      "(%llu tokens x %lld vocabulary x 4); use a smaller dataset",
				      (unsigned long long)ds.ntokens * (unsigned long long)c.vocab * 4,
				      (unsigned long long)ds.ntokens, (long long)c.vocab);
			goto out;
		}
		c.lp = fopen(c.compressed ? bl->path : mcb_step_outpath(sc, "logprobs.bin"),
			     c.compressed ? "rb" : "wb");
		if (!c.lp) {
			rc = mcb_errf(sc->e, MCB_EIO, "cannot open the log-probabilities file:");
			goto out;
		}
		rc = eval_windows(&c, &ds, window, stride);
		if (!rc && c.compressed && fgetc(c.lp) != EOF)
			rc = mcb_errf(sc->e, MCB_EFORMAT,
				      "the baseline's log-probabilities are longer than this "
				      "evaluation: it was evaluated on other windows");
		if (fclose(c.lp) && !rc)
			rc = mcb_errf(sc->e, MCB_EIO, "cannot write logprobs.bin:");
		c.lp = NULL;
	} else if (!strcmp(kind, "examples")) {
		correct = json_array();
		rc = eval_examples(&c, &ds, correct);
	} else {
		rc = mcb_errf(sc->e, MCB_EINVAL, "unknown evaluation kind '%s'", kind);
	}
	if (rc)
		goto out;
	groups = json_array();
	for (i = 0; i < ds.ngroups; i++)
		json_array_append_new(groups, json_string(ds.groups[i]));
	mcb_digest_hex(&data->digest, hex);
	out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:O}", "role", role, "kind", kind, "mode",
			mode, "dataset_sha256", hex, "vocab", (json_int_t)c.vocab, "groups", groups,
			"group", c.group);
	if (correct) {
		json_object_set_new(out, "convention",
				    json_string("each example's tokens are a prompt; the prediction "
						"is the most likely next token"));
		json_object_set_new(out, "items", json_integer((json_int_t)json_array_size(correct)));
		json_object_set_new(out, "tokens", json_integer(0));
		json_object_set(out, "correct", correct);
	} else {
		json_object_set_new(
			out, "convention",
			json_sprintf("windows of %lld tokens every %lld tokens (Hugging Face strided "
				     "perplexity): each window scores the targets no earlier window "
				     "scored; windows inside a sequence start with BOS (as llama.cpp's "
				     "perplexity); the first token of a sequence is never scored",
				     (long long)window, (long long)stride));
		json_object_set_new(out, "window", json_integer(window));
		json_object_set_new(out, "stride", json_integer(stride));
		json_object_set_new(out, "items", json_integer((json_int_t)json_array_size(c.nll)));
		json_object_set_new(out, "tokens", json_integer((json_int_t)c.ntok));
		json_object_set(out, "nll", c.nll);
		json_object_set(out, "count", c.count);
		if (c.compressed) {
			json_object_set(out, "kl", c.kl);
			json_object_set(out, "agree", c.agree);
		}
	}
	rc = mcb_step_write_json(sc, "eval.json", out);
	if (!rc && correct)
		mcb_step_log(sc, "%s: %zu examples", role, json_array_size(correct));
	else if (!rc)
		mcb_step_log(sc, "%s: %zu windows, %llu tokens", role, json_array_size(c.nll),
			     (unsigned long long)c.ntok);
out:
	if (c.lp)
		fclose(c.lp);
	json_decref(out);
	json_decref(correct);
	json_decref(c.nll);
	json_decref(c.count);
	json_decref(c.kl);
	json_decref(c.agree);
	json_decref(c.group);
	free(c.lsm);
	free(c.base);
	free(c.logits);
	free(c.win);
	mcb_engine_free(c.en);
	mcb_dataset_release(&ds);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_evaluate = {
	.name = "evaluate",
	.version = 3,
	.run = run_evaluate,
};
