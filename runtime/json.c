/* json: canonical encoding and hardened parsing on top of jansson. */
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"

static int dump_cb(const char *p, size_t n, void *data)
{
	mcb_buf_add(data, p, n);
	return 0;
}

void mcb_json_canonical(const json_t *v, struct mcb_buf *out)
{
	if (json_dump_callback(v, dump_cb, out,
			       JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII |
				       JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) < 0)
		mcb_die("cannot encode JSON");
}

void mcb_json_pretty(const json_t *v, struct mcb_buf *out)
{
	if (json_dump_callback(v, dump_cb, out,
			       JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY |
				       JSON_REAL_PRECISION(17)) < 0)
		mcb_die("cannot encode JSON");
	mcb_buf_addc(out, '\n');
}

int mcb_json_depth(const json_t *v)
{
	const char *key;
	json_t *child;
	size_t i;
	int d, max = 0;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, child) {
			d = mcb_json_depth(child) + 1;
			if (d > max)
				max = d;
		}
		return max ? max : 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			d = mcb_json_depth(child) + 1;
			if (d > max)
				max = d;
		}
		return max ? max : 1;
	}
	return 0;
}

json_t *mcb_json_parse(const char *text, size_t n, const char *what, struct mcb_errctx *e)
{
	json_error_t err;
	json_t *v;

	/* jansson caps nesting itself (JSON_PARSER_MAX_DEPTH 2048); we check ours after. */
	v = json_loadb(text, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
	if (!v) {
		mcb_errf(e, MCB_EFORMAT, "%s:%d:%d: invalid JSON: %s", what, err.line, err.column,
			 err.text);
		return NULL;
	}
	if (mcb_json_depth(v) > MCB_JSON_MAX_DEPTH) {
		json_decref(v);
		mcb_errf(e, MCB_EFORMAT, "%s: JSON nested deeper than %d levels", what,
			 MCB_JSON_MAX_DEPTH);
		return NULL;
	}
	return v;
}
