/*
 * technique: the techniques a scheme's stack may name, one table row each:
 * parameter schema (with defaults), per-tensor override parameters, the
 * hardware capability the chosen parameters need, whether an export format
 * can store the result, and whether calibration statistics are needed.
 * compiler/plan.c expands each technique into steps.
 */
#ifndef MCB_TECHNIQUE_H
#define MCB_TECHNIQUE_H

#include <stddef.h>

struct json_t;
struct mcb_param;

struct mcb_technique {
	const char *name;                 /* key in a stack entry: "quantize" */
	const struct mcb_param *params;
	size_t nparams;
	/* The parameters `overrides: {PATTERN: {...}}` may change per tensor
	 * (NULL: the technique takes no overrides). */
	const struct mcb_param *oparams;
	size_t noparams;
	/* NULL, or a message when params contradict each other. */
	const char *(*validate)(const struct json_t *params);
	/* The capability (an entry of a hardware profile's supports: list) that
	 * params need, or NULL when any hardware can run it. */
	const char *(*capability)(const struct json_t *params);
	/* NULL when format can store the result, else a message fragment saying
	 * why not ("gguf stores 8-bit weights only as Q8_0 blocks of 32; ..."). */
	const char *(*check_format)(const struct json_t *params, const char *format);
	/* 1 when params need calibration statistics of the target. */
	int (*needs_calibration)(const struct json_t *params);
};

const struct mcb_technique *mcb_technique_find(const char *name);
/* Every technique name (for did-you-mean); *n receives the count. */
const char *const *mcb_technique_names(size_t *n);

/* Capabilities a hardware profile may list, NULL-terminated. */
extern const char *const mcb_capabilities[];
/* Export formats, NULL-terminated: "gguf", "safetensors", "gptq", "awq". */
extern const char *const mcb_export_formats[];

/* The quantize parameters with every format-dependent default resolved for
 * the export format (group size, symmetry, GGUF block type); a new reference. */
struct json_t *mcb_quantize_resolve(const struct json_t *params, const char *format);

#endif
