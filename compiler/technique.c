/*
 * technique: the table of techniques a scheme's stack may name (technique.h).
 * A new technique is one parameter table, a few small functions and one row.
 */
#include <stdio.h>
#include <string.h>

#include "mcb/json.h"
#include "mcb/schema.h"
#include "mcb/technique.h"

const char *const mcb_capabilities[] = {"fp32", "fp16", "bf16", "int8", "int4", "fp8", "sparse24",
					NULL};
const char *const mcb_export_formats[] = {"gguf", "safetensors", "gptq", "awq", NULL};

static const char *str(const json_t *p, const char *key)
{
	const char *s = json_string_value(json_object_get(p, key));

	return s ? s : "";
}

static long long num(const json_t *p, const char *key)
{
	return (long long)json_integer_value(json_object_get(p, key));
}

/* ---- quantize ---- */

static const char *const quant_methods[] = {"rtn", "gptq", "awq", "smoothquant", "fp8", NULL};
static const char *const quant_granularities[] = {"auto", "channel", "group", NULL};
static const char *const tristate[] = {"auto", "true", "false", NULL};
static const char *const ggml_types[] = {"auto", "q8_0", "q4_0", "q4_1", "q4_k", "q6_k", NULL};

static const struct mcb_param quantize_params[] = {
	{"method", MCB_P_ENUM, "rtn", 0, 0, quant_methods,
	 "rtn (round to nearest), gptq, awq, smoothquant (W8A8) or fp8 (E4M3 weights)"},
	{"bits", MCB_P_INT, "8", 2, 8, NULL, "weight bits (2 to 8; fp8: 8)"},
	{"granularity", MCB_P_ENUM, "auto", 0, 0, quant_granularities,
	 "channel: one scale per output row; group: one per group_size weights; auto: "
	 "from the bits and the export format"},
	{"group_size", MCB_P_INT, "0", 0, 4096, NULL,
	 "weights per group (0: auto: 32 for gguf, 128 below 8 bits, else per channel)"},
	{"symmetric", MCB_P_ENUM, "auto", 0, 0, tristate,
	 "symmetric (no zero point); auto: true, except for awq"},
	{"ggml_type", MCB_P_ENUM, "auto", 0, 0, ggml_types,
	 "gguf block type: q4_k, q6_k (ggml's own rtn quantizers), or auto from the bits"},
	{"act_order", MCB_P_BOOL, "false", 0, 0, NULL, "gptq: columns by decreasing Hessian diagonal"},
	{"static_groups", MCB_P_BOOL, "false", 0, 0, NULL, "gptq: group parameters before the pass"},
	{"damp", MCB_P_FLOAT, "0.01", 0, 1, NULL, "gptq: dampening, a fraction of mean(diag H)"},
	{"blocksize", MCB_P_INT, "128", 1, 4096, NULL, "gptq: columns per lazy-update block"},
	{"alpha", MCB_P_FLOAT, "0.5", 0, 1, NULL, "smoothquant: migration strength"},
	{"n_grid", MCB_P_INT, "20", 1, 1000, NULL, "awq: scale search grid points"},
	{"duo_scaling", MCB_P_BOOL, "true", 0, 0, NULL, "awq: scale by activations and weights"},
	{"clip", MCB_P_BOOL, "true", 0, 0, NULL, "awq: search the clipping range too"},
};

/* Per-tensor overrides: `overrides: {"output.weight": {bits: 8}}`. */
static const struct mcb_param quantize_oparams[] = {
	{"bits", MCB_P_INT, MCB_P_OPTIONAL, 2, 8, NULL, "weight bits for these tensors"},
	{"granularity", MCB_P_ENUM, MCB_P_OPTIONAL, 0, 0, quant_granularities,
	 "channel (one scale per output row) or group"},
	{"group_size", MCB_P_INT, MCB_P_OPTIONAL, 0, 4096, NULL, "weights per group"},
	{"skip", MCB_P_BOOL, MCB_P_OPTIONAL, 0, 0, NULL, "leave these tensors unquantized"},
};

static const char *quantize_validate(const json_t *p)
{
	const char *m = str(p, "method"), *g = str(p, "ggml_type");
	long long bits = num(p, "bits");

	if ((!strcmp(m, "fp8") || !strcmp(m, "smoothquant")) && bits != 8)
		return "fp8 and smoothquant quantize to 8 bits";
	if (!strcmp(m, "awq") && !strcmp(str(p, "symmetric"), "true"))
		return "awq quantizes with zero points: symmetric cannot be true";
	if (strcmp(g, "auto") && strcmp(m, "rtn"))
		return "ggml_type names one of ggml's own round-to-nearest quantizers: "
		       "it needs method rtn";
	if ((!strcmp(g, "q8_0") && bits != 8) || (!strcmp(g, "q6_k") && bits != 6) ||
	    (!strncmp(g, "q4", 2) && bits != 4))
		return "ggml_type and bits disagree";
	if (!strcmp(str(p, "granularity"), "channel") && num(p, "group_size") > 0)
		return "granularity channel takes no group_size";
	return NULL;
}

static const char *quantize_capability(const json_t *p)
{
	if (!strcmp(str(p, "method"), "fp8"))
		return "fp8";
	return num(p, "bits") <= 4 ? "int4" : "int8";
}

/* Resolve auto values for format (see technique.h). */
json_t *mcb_quantize_resolve(const json_t *params, const char *format)
{
	json_t *q = json_deep_copy(params);
	const char *m = str(q, "method"), *gran = str(q, "granularity");
	long long bits = num(q, "bits"), group = num(q, "group_size");
	int gguf = !strcmp(format, "gguf");
	const char *sym = str(q, "symmetric");

	if (!strcmp(sym, "auto"))
		sym = !strcmp(m, "awq") ? "false" : "true";
	if (!strcmp(m, "fp8") || !strcmp(m, "smoothquant"))
		group = 0;
	else if (!strcmp(gran, "channel"))
		group = 0;
	else if (group == 0 && (gguf || !strcmp(gran, "group")))
		group = !strcmp(str(q, "ggml_type"), "q4_k") || !strcmp(str(q, "ggml_type"), "q6_k")
				? 256
				: gguf ? 32 : 128;
	else if (group == 0 && bits < 8)
		group = 128;
	json_object_set_new(q, "group_size", json_integer(group));
	json_object_set_new(q, "granularity", json_string(group ? "group" : "channel"));
	int symmetric = !strcmp(sym, "true"); /* sym dies with the old value */

	json_object_set_new(q, "symmetric", json_boolean(symmetric));
	if (gguf && !strcmp(str(q, "ggml_type"), "auto")) {
		const char *t = "none";

		if (group == 32 && bits == 8 && symmetric)
			t = "q8_0";
		else if (group == 32 && bits == 4)
			t = symmetric ? "q4_0" : "q4_1";
		json_object_set_new(q, "ggml_type", json_string(t));
	} else if (!gguf) {
		json_object_set_new(q, "ggml_type", json_string("none"));
	}
	return q;
}

static const char *quantize_check_format(const json_t *params, const char *format)
{
	json_t *p = mcb_quantize_resolve(params, format);
	const char *m = str(p, "method"), *why = NULL;
	long long bits = num(p, "bits"), group = num(p, "group_size");
	int sym = json_is_true(json_object_get(p, "symmetric"));

	if (!strcmp(format, "gguf")) {
		if (!strcmp(m, "fp8") || !strcmp(m, "smoothquant"))
			why = "llama.cpp has no fp8 or W8A8 weights";
		else if (json_is_true(json_object_get(p, "act_order")) &&
			 !json_is_true(json_object_get(p, "static_groups")))
			why = "gguf blocks hold groups of consecutive columns: act_order needs "
			      "static_groups: true";
		else if (!strcmp(str(p, "ggml_type"), "none"))
			why = bits == 8 ? "gguf stores 8-bit weights only as Q8_0 blocks of 32 "
					  "(symmetric); use granularity: group or auto"
					: "gguf stores 4-bit weights in blocks of 32 (Q4_0 symmetric, "
					  "Q4_1 with zero points) or as Q4_K (ggml_type: q4_k), 6-bit "
					  "as Q6_K; use group_size 32 or a ggml_type";
	} else if (!strcmp(format, "safetensors")) {
		if (bits != 8)
			why = "the safetensors export holds 8-bit and fp8 weights; export 4-bit "
			      "weights as gptq or awq";
		else if (!sym)
			why = "the safetensors export holds symmetric 8-bit weights";
	} else if (!strcmp(format, "gptq")) {
		if (!strcmp(m, "fp8") || !strcmp(m, "smoothquant"))
			why = "gptq checkpoints hold integer weights";
		else if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
			why = "gptq checkpoints pack 2, 3, 4 or 8 bits";
	} else if (!strcmp(format, "awq")) {
		if (bits != 4 || sym || !group)
			why = "awq checkpoints hold 4-bit weights with zero points in groups";
	}
	json_decref(p);
	return why;
}

static int quantize_needs_calibration(const json_t *p)
{
	const char *m = str(p, "method");

	return !strcmp(m, "gptq") || !strcmp(m, "awq") || !strcmp(m, "smoothquant");
}

/* ---- prune ---- */

static const char *const prune_methods[] = {"magnitude", "wanda", "sparsegpt", "heads",
					    "channels", NULL};

static const struct mcb_param prune_params[] = {
	{"method", MCB_P_ENUM, "wanda", 0, 0, prune_methods,
	 "magnitude, wanda, sparsegpt (unstructured or n:m), heads or channels (structured)"},
	{"sparsity", MCB_P_FLOAT, "0.5", 0, 0.95, NULL,
	 "fraction of weights (heads, channels) removed; n:m patterns set it themselves"},
	{"pattern", MCB_P_STR, "unstructured", 0, 0, NULL, "unstructured, or n:m such as 2:4"},
	{"damp", MCB_P_FLOAT, "0.01", 0, 1, NULL, "sparsegpt: dampening"},
	{"blocksize", MCB_P_INT, "128", 1, 4096, NULL, "sparsegpt: columns per block"},
};

static const struct mcb_param prune_oparams[] = {
	{"sparsity", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0.95, NULL, "fraction removed here"},
	{"skip", MCB_P_BOOL, MCB_P_OPTIONAL, 0, 0, NULL, "leave these tensors dense"},
};

/* n and m of an "n:m" pattern, or 0 for unstructured; -1 when malformed. */
static int nm(const char *pat, int *n, int *m)
{
	char tail;

	if (!strcmp(pat, "unstructured"))
		return 0;
	if (sscanf(pat, "%d:%d%c", n, m, &tail) != 2 || *n < 1 || *m < 2 || *n >= *m || *m > 64)
		return -1;
	return 1;
}

static const char *prune_validate(const json_t *p)
{
	const char *m = str(p, "method");
	int n, mm, k = nm(str(p, "pattern"), &n, &mm);

	if (k < 0)
		return "pattern must be unstructured or n:m (1 <= n < m <= 64), such as 2:4";
	if (k && (!strcmp(m, "heads") || !strcmp(m, "channels")))
		return "structured pruning (heads, channels) takes no n:m pattern";
	return NULL;
}

static const char *prune_capability(const json_t *p)
{
	int n, m;

	/* 2:4 only pays off on sparse tensor cores */
	return nm(str(p, "pattern"), &n, &m) == 1 && n == 2 && m == 4 ? "sparse24" : NULL;
}

static int prune_needs_calibration(const json_t *p)
{
	return strcmp(str(p, "method"), "magnitude") != 0;
}

/* ---- lowrank ---- */

static const char *const lowrank_methods[] = {"svd", NULL};

static const struct mcb_param lowrank_params[] = {
	{"method", MCB_P_ENUM, "svd", 0, 0, lowrank_methods,
	 "svd: W ~ U_r S_r V_r^T, truncated singular value decomposition (LAPACK)"},
	{"rank", MCB_P_INT, "0", 0, 1 << 20, NULL,
	 "singular values kept (0: as many as energy needs)"},
	{"energy", MCB_P_FLOAT, "0.9", 0, 1, NULL,
	 "with rank 0: the smallest rank whose singular values hold this fraction of "
	 "sum(s^2)"},
};

static const struct mcb_param lowrank_oparams[] = {
	{"rank", MCB_P_INT, MCB_P_OPTIONAL, 0, 1 << 20, NULL, "singular values kept here"},
	{"energy", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 1, NULL, "energy kept here"},
	{"skip", MCB_P_BOOL, MCB_P_OPTIONAL, 0, 0, NULL, "leave these tensors dense"},
};

static const char *lowrank_validate(const json_t *p)
{
	if (num(p, "rank") == 0 && !(json_number_value(json_object_get(p, "energy")) > 0))
		return "give a rank, or an energy fraction above 0";
	return NULL;
}

static const struct mcb_technique techniques[] = {
	{"quantize", quantize_params, sizeof(quantize_params) / sizeof(quantize_params[0]),
	 quantize_oparams, sizeof(quantize_oparams) / sizeof(quantize_oparams[0]), quantize_validate,
	 quantize_capability, quantize_check_format, quantize_needs_calibration},
	{"prune", prune_params, sizeof(prune_params) / sizeof(prune_params[0]), prune_oparams,
	 sizeof(prune_oparams) / sizeof(prune_oparams[0]), prune_validate, prune_capability, NULL,
	 prune_needs_calibration},
	{"lowrank", lowrank_params, sizeof(lowrank_params) / sizeof(lowrank_params[0]),
	 lowrank_oparams, sizeof(lowrank_oparams) / sizeof(lowrank_oparams[0]), lowrank_validate,
	 NULL, NULL, NULL},
};

#define NTECH (sizeof(techniques) / sizeof(techniques[0]))

static const char *const technique_names[] = {"quantize", "prune", "lowrank"};

_Static_assert(sizeof(technique_names) / sizeof(technique_names[0]) == NTECH,
	       "technique_names must list every row of techniques");

const struct mcb_technique *mcb_technique_find(const char *name)
{
	size_t i;

	for (i = 0; i < NTECH; i++)
		if (!strcmp(techniques[i].name, name))
			return &techniques[i];
	return NULL;
}

const char *const *mcb_technique_names(size_t *n)
{
	*n = NTECH;
	return technique_names;
}
