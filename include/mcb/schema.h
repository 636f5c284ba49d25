/*
 * schema: checking a YAML mapping against a table of typed parameters, with
 * defaults filled in.  Used for every recipe section and for technique
 * parameters, so all of them report the same errors the same way:
 *   unknown key 'bitz' in quantize (did you mean 'bits'?)
 *   'bits' must be an integer, not a string
 *   'bits' must be between 2 and 8, not 9
 *   'method' must be one of rtn, not 'gtpq' (did you mean ...?)
 *   missing required key 'path' in model 'stories'
 */
#ifndef MCB_SCHEMA_H
#define MCB_SCHEMA_H

#include <stddef.h>

struct json_t;
struct mcb_diags;
struct mcb_node;

enum mcb_ptype {
	MCB_P_STR,     /* any string */
	MCB_P_NAME,    /* [A-Za-z0-9._-]+, at most 64 bytes */
	MCB_P_INT,     /* integer within [min, max] */
	MCB_P_FLOAT,   /* finite number within [min, max] */
	MCB_P_BOOL,
	MCB_P_ENUM,    /* one of choices */
	MCB_P_STRLIST  /* list of strings (each checked against choices when set; no repeats);
	                  default "[]" or "a,b" */
};

struct mcb_param {
	const char *key;
	enum mcb_ptype type;
	const char *def;             /* default as YAML text; NULL: required */
	double min, max;             /* INT/FLOAT range (both 0: unbounded) */
	const char *const *choices;  /* ENUM/STRLIST choices, NULL-terminated */
	const char *doc;             /* one line for the README and --help */
};

/* Sentinel default: the key is optional and absent means "not set" (no JSON member). */
#define MCB_P_OPTIONAL ""

/*
 * Whether s is a valid name (of a model, dataset, scheme, hardware profile):
 * [A-Za-z0-9._-]+, at most 64 bytes, and not "." or "..".
 */
int mcb_schema_name_ok(const char *s);

/*
 * Check map (a mapping node, a null scalar, or NULL for "all defaults")
 * against params.
 * what names the mapping in messages ("quantize", "model 'stories'").
 * On success *out is a new JSON object holding every key with its value or
 * default (INT as integer, FLOAT as real, BOOL, strings); keys with
 * MCB_P_OPTIONAL and no value are absent.  Returns 0, or -1 after reporting
 * every problem to d (*out is NULL then).
 */
int mcb_schema_check(const struct mcb_param *params, size_t nparams, const struct mcb_node *map,
		     const char *what, struct json_t **out, struct mcb_diags *d);

#endif
