/*
 * technique: the techniques a scheme's stack may name, one table row each:
 * parameter schema (with defaults), the hardware capability the chosen
 * parameters need, and whether an export format can store the result.
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
	/* The capability (an entry of a hardware profile's supports: list) that
	 * params need, or NULL when any hardware can run it. */
	const char *(*capability)(const struct json_t *params);
	/* NULL when format can store the result, else a message fragment saying
	 * why not ("gguf stores int8 only in blocks of 32 (Q8_0); use granularity: group"). */
	const char *(*check_format)(const struct json_t *params, const char *format);
};

const struct mcb_technique *mcb_technique_find(const char *name);
/* Every technique name (for did-you-mean); *n receives the count. */
const char *const *mcb_technique_names(size_t *n);

/* Capabilities a hardware profile may list, NULL-terminated. */
extern const char *const mcb_capabilities[];
/* Export formats, NULL-terminated: "gguf", "safetensors". */
extern const char *const mcb_export_formats[];

#endif
