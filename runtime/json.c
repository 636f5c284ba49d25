/* json: canonical encoding and hardened parsing on top of jansson. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/utf8.h"

/*
 * Reals are printed with the fewest significant digits that read back as the
 * same double (so 51.2 stays "51.2", not "51.200000000000003"), always with a
 * '.' or an exponent so that they parse back as reals.  jansson's own dumper
 * only offers a fixed precision, so encoding is done here; jansson remains the
 * data model and the parser.
 */
static void put_real(struct mcb_buf *out, double d)
{
	char tmp[40];
	int prec;

	/* %.15g is already the shortest form whenever one of at most 15 digits
	 * reads back (DBL_DIG is 15); beyond that, 16 or 17 digits. */
	for (prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	mcb_buf_adds(out, tmp);
	if (!strpbrk(tmp, ".eEni"))
		mcb_buf_adds(out, ".0");
}

static void put_string(struct mcb_buf *out, const char *str, size_t len, int ascii)
{
	const unsigned char *p = (const unsigned char *)str, *end = p + len;

	mcb_buf_addc(out, '"');
	while (p < end) {
		const unsigned char *run = p;
		unsigned c;

		/* copy runs of characters that need no escape in one go */
		while (p < end && *p >= 0x20 && *p != '"' && *p != '\\' && (*p < 0x80 || !ascii))
			p++;
		if (p > run)
			mcb_buf_add(out, run, (size_t)(p - run));
		if (p == end)
			break;
		c = *p;
		if (c == '"' || c == '\\') {
			mcb_buf_addc(out, '\\');
			mcb_buf_addc(out, (char)c);
			p++;
		} else if (c == '\n') {
			mcb_buf_adds(out, "\\n"), p++;
		} else if (c == '\t') {
			mcb_buf_adds(out, "\\t"), p++;
		} else if (c == '\r') {
			mcb_buf_adds(out, "\\r"), p++;
		} else if (c < 0x20) {
			mcb_buf_printf(out, "\\u%04x", c), p++;
		} else if (c < 0x80 || !ascii) {
			mcb_buf_addc(out, (char)c), p++;
		} else {
			uint32_t u = 0xfffd;
			size_t k = mcb_utf8_get(p, (size_t)(end - p), &u);

			p += k ? k : 1; /* jansson's strings are valid UTF-8 */

			if (u >= 0x10000) {
				u -= 0x10000;
				mcb_buf_printf(out, "\\u%04x\\u%04x", 0xd800 + (u >> 10),
					       0xdc00 + (u & 0x3ff));
			} else {
				mcb_buf_printf(out, "\\u%04x", u);
			}
		}
	}
	mcb_buf_addc(out, '"');
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void indent(struct mcb_buf *out, int level)
{
	mcb_buf_addc(out, '\n');
	for (int i = 0; i < level; i++)
		mcb_buf_adds(out, "  ");
}

/* pretty < 0: canonical (compact, ASCII); else indentation level. */
static void encode(const json_t *v, struct mcb_buf *out, int pretty)
{
	size_t i, n;

	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char **keys;
		const char *key;
		json_t *child;

		n = json_object_size(v);
		if (!n) {
			mcb_buf_adds(out, "{}");
			break;
		}
		keys = mcb_xmalloc(n * sizeof(*keys));
		i = 0;
		json_object_foreach ((json_t *)v, key, child)
			keys[i++] = key;
		qsort(keys, n, sizeof(*keys), cmp_keys);
		mcb_buf_addc(out, '{');
		for (i = 0; i < n; i++) {
			if (i)
				mcb_buf_addc(out, ',');
			if (pretty >= 0)
				indent(out, pretty + 1);
			put_string(out, keys[i], strlen(keys[i]), pretty < 0);
			mcb_buf_adds(out, pretty >= 0 ? ": " : ":");
			encode(json_object_get(v, keys[i]), out, pretty < 0 ? -1 : pretty + 1);
		}
		if (pretty >= 0)
			indent(out, pretty);
		mcb_buf_addc(out, '}');
		free(keys);
		break;
	}
	case JSON_ARRAY:
		n = json_array_size(v);
		if (!n) {
			mcb_buf_adds(out, "[]");
			break;
		}
		mcb_buf_addc(out, '[');
		for (i = 0; i < n; i++) {
			if (i)
				mcb_buf_addc(out, ',');
			if (pretty >= 0)
				indent(out, pretty + 1);
			encode(json_array_get(v, i), out, pretty < 0 ? -1 : pretty + 1);
		}
		if (pretty >= 0)
			indent(out, pretty);
		mcb_buf_addc(out, ']');
		break;
	case JSON_STRING:
		put_string(out, json_string_value(v), json_string_length(v), pretty < 0);
		break;
	case JSON_INTEGER: {
		/* by hand: printf's format parsing dominated key computation */
		char digits[24], *p = digits + sizeof(digits);
		json_int_t x = json_integer_value(v);
		unsigned long long u = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;

		do
			*--p = (char)('0' + u % 10);
		while (u /= 10);
		if (x < 0)
			*--p = '-';
		mcb_buf_add(out, p, (size_t)(digits + sizeof(digits) - p));
		break;
	}
	case JSON_REAL:
		put_real(out, json_real_value(v));
		break;
	case JSON_TRUE:
		mcb_buf_adds(out, "true");
		break;
	case JSON_FALSE:
		mcb_buf_adds(out, "false");
		break;
	case JSON_NULL:
		mcb_buf_adds(out, "null");
		break;
	}
}

void mcb_json_canonical(const json_t *v, struct mcb_buf *out)
{
	encode(v, out, -1);
}

void mcb_json_canonical_str(const char *s, struct mcb_buf *out)
{
	put_string(out, s, strlen(s), 1);
}

void mcb_json_pretty(const json_t *v, struct mcb_buf *out)
{
	encode(v, out, 0);
	mcb_buf_addc(out, '\n');
}

int mcb_json_same(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal(a, b));
}

int mcb_json_depth(const json_t *v)
{
	const char *key;
	json_t *child;
	size_t i;
	int d, max = 0;

	if (json_is_object(v)) {
		json_object_foreach ((json_t *)v, key, child) {
			d = mcb_json_depth(child) + 1;
			if (d > max)
				max = d;
		}
		return max ? max : 1;
	}
	if (json_is_array(v)) {
		json_array_foreach (v, i, child) {
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
