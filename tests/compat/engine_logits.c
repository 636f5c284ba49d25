/*
 * engine_logits: logits of mcbuild's engine at every position of a token
 * sequence, in the JSON shape tests/compat/llama_eval.mjs writes, so that
 * tests/compat/logits.py compare can diff the two.
 *
 *   engine_logits MODEL IDS.json OUT.json [--mode exact|ggml] [--threads N]
 *                 [--tokens | --batches N1,N2,...]
 *
 * MODEL: GGUF (F32/F16/BF16/Q8_0/Q4_0/Q4_1/Q4_K/Q6_K tensors), a llama2.c
 * checkpoint or the internal form (detected by content:
 * mcb_engine_load_model).
 * IDS.json: a JSON array of token ids (or an object with an "ids" array).
 * OUT.json: {"model": path, "n_vocab": V, "ids": [...],
 *            "logits": [[V logits], ...] one row per position,
 *            "next": [argmax of each row (ties: lowest id)]}
 * Logits are float32 values printed in their shortest round-trip form.
 *
 * --mode: exact (default: F32 activations, weights dequantized exactly) or
 * ggml (activations rounded as llama.cpp's CPU backend rounds them);
 * --threads: compute threads (default 1; results do not depend on it);
 * --tokens: evaluate one token per call instead of one batch for all;
 * --batches: evaluate in batches of N1, N2, ... tokens (the rest, if any, in
 * one more batch), e.g. as llama.cpp was fed them.
 *
 * Exit status: 0; 1 when the model cannot be loaded or evaluated; 2 on bad
 * usage or input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/engine.h"
#include "mcb/err.h"
#include "mcb/model.h"

static void usage(void)
{
	fprintf(stderr, "usage: engine_logits MODEL IDS.json OUT.json [--mode exact|ggml] "
			"[--threads N] [--tokens | --batches N1,N2,...]\n");
	exit(2);
}

/* shortest "%.*g" that reads back as the same float */
static void put_float(FILE *f, float v)
{
	char buf[32];
	int p;

	for (p = 6; p < 9; p++) {
		snprintf(buf, sizeof(buf), "%.*g", p, (double)v);
		if (strtof(buf, NULL) == v)
			break;
	}
	if (p == 9)
		snprintf(buf, sizeof(buf), "%.9g", (double)v);
	fputs(buf, f);
}

static int32_t *read_ids(const char *path, int64_t *n)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je), *arr;
	int32_t *ids;
	size_t i;

	if (!root) {
		fprintf(stderr, "engine_logits: cannot read '%s': %s (line %d)\n", path, je.text,
			je.line);
		exit(2);
	}
	arr = json_is_array(root) ? root : json_object_get(root, "ids");
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		fprintf(stderr, "engine_logits: '%s' holds no array of token ids\n", path);
		exit(2);
	}
	*n = (int64_t)json_array_size(arr);
	ids = mcb_xmalloc(json_array_size(arr) * sizeof(*ids));
	for (i = 0; i < json_array_size(arr); i++) {
		json_t *v = json_array_get(arr, i);

		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > INT32_MAX) {
			fprintf(stderr, "engine_logits: '%s': element %zu is not a token id\n", path, i);
			exit(2);
		}
		ids[i] = (int32_t)json_integer_value(v);
	}
	json_decref(root);
	return ids;
}

int main(int argc, char **argv)
{
	struct mcb_engine_opts o = {.threads = 1, .mode = MCB_ENGINE_EXACT, .ctx_len = 0};
	const char *model, *idsp, *outp;
	struct mcb_engine *en = NULL;
	struct mcb_errctx e;
	struct mcb_model m;
	int64_t n, i, j, v;
	int32_t *ids;
	float *lg;
	int tokens = 0, a, nbatch = 0;
	int64_t batch[64], off;
	char *js;
	FILE *f;

	if (argc < 4)
		usage();
	model = argv[1], idsp = argv[2], outp = argv[3];
	for (a = 4; a < argc; a++) {
		if (!strcmp(argv[a], "--mode") && a + 1 < argc) {
			a++;
			if (!strcmp(argv[a], "exact"))
				o.mode = MCB_ENGINE_EXACT;
			else if (!strcmp(argv[a], "ggml"))
				o.mode = MCB_ENGINE_GGML;
			else
				usage();
		} else if (!strcmp(argv[a], "--threads") && a + 1 < argc) {
			o.threads = atoi(argv[++a]);
			if (o.threads < 1)
				usage();
		} else if (!strcmp(argv[a], "--tokens")) {
			tokens = 1;
		} else if (!strcmp(argv[a], "--batches") && a + 1 < argc) {
			char *p = argv[++a], *end;

			while (*p && nbatch < 64) {
				batch[nbatch] = strtoll(p, &end, 10);
				if (end == p || batch[nbatch] < 1 || (*end && *end != ','))
					usage();
				nbatch++;
				p = *end ? end + 1 : end;
			}
		} else {
			usage();
		}
	}
	ids = read_ids(idsp, &n);
	mcb_model_init(&m);
	if (mcb_engine_load_model(model, &m, &e) || mcb_engine_new(&m, &o, &en, &e)) {
		fprintf(stderr, "engine_logits: %s\n", e.msg);
		return 1;
	}
	if (n > m.cfg.seq_len) {
		fprintf(stderr, "engine_logits: %lld ids, the context holds %lld\n", (long long)n,
			(long long)m.cfg.seq_len);
		return 2;
	}
	v = mcb_engine_vocab(en);
	lg = malloc((size_t)(n * v) * sizeof(float));
	if (!lg) {
		fprintf(stderr, "engine_logits: out of memory for %lld logits\n", (long long)(n * v));
		return 1;
	}
	if (tokens) { /* one batch per token */
		for (i = 0; i < n && i < 64; i++)
			batch[i] = 1;
		nbatch = (int)i;
	}
	for (off = 0, i = 0; off < n; i++) {
		int64_t nb = i < nbatch ? batch[i] : n - off;

		if (tokens && i >= nbatch)
			nb = 1;
		if (nb > n - off)
			nb = n - off;
		if (mcb_engine_eval(en, ids + off, nb, lg + off * v, NULL, &e)) {
			fprintf(stderr, "engine_logits: %s\n", e.msg);
			return 1;
		}
		off += nb;
	}
	for (i = 0; i < n * v; i++)
		if (!isfinite(lg[i])) {
			fprintf(stderr, "engine_logits: logit %lld of position %lld is not finite\n",
				(long long)(i % v), (long long)(i / v));
			return 1;
		}
	f = fopen(outp, "w");
	if (!f) {
		perror(outp);
		return 1;
	}
	{
		json_t *s = json_string(model); /* NULL when not UTF-8 */

		js = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		json_decref(s);
	}
	fprintf(f, "{\"model\": %s, \"n_vocab\": %lld, \"ids\": [", js ? js : "null",
		(long long)v);
	free(js);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%ld", i ? ", " : "", (long)ids[i]);
	fputs("], \"logits\": [", f);
	for (i = 0; i < n; i++) {
		fputs(i ? ", [" : "[", f);
		for (j = 0; j < v; j++) {
			if (j)
				fputs(", ", f);
			put_float(f, lg[i * v + j]);
		}
		fputc(']', f);
	}
	fputs("], \"next\": [", f);
	for (i = 0; i < n; i++) {
		int64_t best = 0;

		for (j = 1; j < v; j++)
			if (lg[i * v + j] > lg[i * v + best])
				best = j;
		fprintf(f, "%s%lld", i ? ", " : "", (long long)best);
	}
	fputs("]}\n", f);
	if (fclose(f)) {
		perror(outp);
		return 1;
	}
	mcb_engine_free(en);
	mcb_model_release(&m);
	free(lg);
	free(ids);
	return 0;
}
