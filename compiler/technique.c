/*
 * technique: the table of techniques a scheme's stack may name (technique.h).
 * A new technique is one parameter table, two small functions and one row.
 */
#include <string.h>

#include "mcb/json.h"
#include "mcb/schema.h"
#include "mcb/technique.h"

const char *const mcb_capabilities[] = {"fp32", "fp16", "bf16", "int8", "int4", "fp8", "sparse24",
					NULL};
const char *const mcb_export_formats[] = {"gguf", "safetensors", NULL};

/* quantize: round-to-nearest weight quantization. */
static const char *const quant_methods[] = {"rtn", NULL};
static const char *const quant_granularities[] = {"auto", "channel", "group", NULL};

static const struct mcb_param quantize_params[] = {
	{"method", MCB_P_ENUM, "rtn", 0, 0, quant_methods,
	 "quantization method: rtn (round to nearest)"},
	{"bits", MCB_P_INT, "8", 8, 8, NULL,
	 "weight bits; only 8 with method rtn in this version"},
	{"granularity", MCB_P_ENUM, "auto", 0, 0, quant_granularities,
	 "one scale per output channel or per group of weights; auto: channel for "
	 "safetensors, group (Q8_0 blocks) for gguf"},
	{"group_size", MCB_P_INT, "32", 32, 32, NULL,
	 "weights per group with granularity group; 32 (GGUF's Q8_0 block) in this version"},
	{"symmetric", MCB_P_BOOL, "true", 0, 0, NULL,
	 "symmetric (zero point 0) quantization; only true in this version"},
};

static const char *quantize_capability(const json_t *params)
{
	json_int_t bits = json_integer_value(json_object_get(params, "bits"));

	return bits <= 4 ? "int4" : "int8";
}

static const char *quantize_check_format(const json_t *params, const char *format)
{
	const char *gran = json_string_value(json_object_get(params, "granularity"));

	if (!json_is_true(json_object_get(params, "symmetric")))
		return "asymmetric int8 is not supported by rtn in this version";
	if (!strcmp(format, "gguf") && gran && !strcmp(gran, "channel"))
		return "gguf stores 8-bit weights only as Q8_0 blocks of 32; "
		       "use granularity: group or auto";
	/* safetensors: int8 codes with one scale per channel or per group. */
	return NULL;
}

static const struct mcb_technique techniques[] = {
	{"quantize", quantize_params, sizeof(quantize_params) / sizeof(quantize_params[0]),
	 quantize_capability, quantize_check_format},
};

#define NTECH (sizeof(techniques) / sizeof(techniques[0]))

static const char *const technique_names[] = {"quantize"};

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
