/* schema: typed checking of YAML mappings with defaults (schema.h). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/schema.h"
#include "mcb/yaml.h"

#define NAME_MAX_BYTES 64

int mcb_schema_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_BYTES || !strcmp(s, ".") || !strcmp(s, ".."))
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}


/* "rtn, gptq" (choices joined for messages); a static "" when none.  The
 * caller frees non-empty results. */
static char *join(const char *const *choices)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t i;

	for (i = 0; choices && choices[i]; i++) {
		if (i)
			mcb_buf_adds(&b, ", ");
		mcb_buf_adds(&b, choices[i]);
	}
	return mcb_buf_detach(&b, NULL);
}

static size_t count(const char *const *choices)
{
	size_t n = 0;

	while (choices && choices[n])
		n++;
	return n;
}

static int in_choices(const char *s, const char *const *choices)
{
	size_t i;

	for (i = 0; choices && choices[i]; i++)
		if (!strcmp(s, choices[i]))
			return 1;
	return 0;
}

/* Report "'key' must be one of a, b, not 'x' (did you mean 'y'?)"; lead is
 * "must be one of" or "entries must be one of". */
static void bad_choice(struct mcb_diags *d, const struct mcb_param *p, const struct mcb_node *v,
		       const char *lead)
{
	char *all = join(p->choices);
	const char *dym = mcb_didyoumean(v->str, p->choices, count(p->choices));

	if (dym)
		mcb_diag_error(d, &v->loc, "'%s' %s %s, not '%s' (did you mean '%s'?)", p->key,
			       lead, all, v->str, dym);
	else
		mcb_diag_error(d, &v->loc, "'%s' %s %s, not '%s'", p->key, lead, all, v->str);
	free(all);
}

/* A number for messages: integers without a fraction, else %g. */
static void fmt_num(char *out, size_t n, double v)
{
	if (v == floor(v) && fabs(v) < 1e15)
		snprintf(out, n, "%.0f", v);
	else
		snprintf(out, n, "%g", v);
}

static int in_range(const struct mcb_param *p, double v)
{
	if (p->min == 0 && p->max == 0)
		return 1;
	return v >= p->min && v <= p->max;
}

static void bad_range(struct mcb_diags *d, const struct mcb_param *p, const struct mcb_node *v)
{
	char lo[64], hi[64];

	fmt_num(lo, sizeof(lo), p->min);
	fmt_num(hi, sizeof(hi), p->max);
	if (p->min == 0 && p->max == 0) /* unbounded: only int64 overflow gets here */
		mcb_diag_error(d, &v->loc, "'%s' must fit in 64 bits, not %s", p->key, v->str);
	else if (p->min == p->max)
		mcb_diag_error(d, &v->loc, "'%s' must be %s, not %s", p->key, lo, v->str);
	else
		mcb_diag_error(d, &v->loc, "'%s' must be between %s and %s, not %s", p->key, lo, hi,
			       v->str);
}

/* A scalar usable as a string: any scalar but null. */
static int stringish(const struct mcb_node *v)
{
	return v->kind == MCB_NODE_SCALAR && !mcb_node_is_null(v);
}

struct item {
	const struct mcb_node *n;
	size_t i;
};

static int item_cmp(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int c = strcmp(a->n->str, b->n->str);

	return c ? c : a->i < b->i ? -1 : a->i > b->i;
}

/* rep[k] = 1 when scalar item k of list repeats an earlier scalar item
 * (O(n log n): lists are untrusted).  The caller frees the result. */
static unsigned char *repeats(const struct mcb_node *list)
{
	unsigned char *rep = mcb_xcalloc(list->nitems ? list->nitems : 1, 1);
	struct item *v = mcb_xcalloc(list->nitems ? list->nitems : 1, sizeof(*v));
	size_t n = 0, k;

	for (k = 0; k < list->nitems; k++)
		if (list->items[k]->kind == MCB_NODE_SCALAR)
			v[n++] = (struct item){list->items[k], k};
	if (n > 1)
		qsort(v, n, sizeof(*v), item_cmp);
	for (k = 1; k < n; k++)
		if (!strcmp(v[k].n->str, v[k - 1].n->str))
			rep[v[k].i] = 1;
	free(v);
	return rep;
}

/* Check one present value; return its JSON (new reference) or NULL after
 * reporting. */
static json_t *check_value(const struct mcb_param *p, const struct mcb_node *v,
			   struct mcb_diags *d)
{
	int64_t i;
	double f;
	int b;
	size_t k;
	json_t *arr;
	unsigned char *rep;
	int bad = 0;

	switch (p->type) {
	case MCB_P_STR:
		if (!stringish(v))
			break;
		return json_stringn(v->str, v->len);
	case MCB_P_NAME:
		if (!stringish(v))
			break;
		if (!mcb_schema_name_ok(v->str)) {
			mcb_diag_error(d, &v->loc,
				       "'%s' must be a name (letters, digits, '.', '_' "
				       "and '-', at most %d bytes), not '%s'",
				       p->key, NAME_MAX_BYTES, v->str);
			return NULL;
		}
		return json_string(v->str);
	case MCB_P_INT:
		if (mcb_node_int(v, &i) == 0) {
			if (!in_range(p, (double)i)) {
				bad_range(d, p, v);
				return NULL;
			}
			return json_integer((json_int_t)i);
		}
		if (!strcmp(mcb_node_kind_name(v), "integer")) { /* beyond int64 */
			bad_range(d, p, v);
			return NULL;
		}
		mcb_diag_error(d, &v->loc, "'%s' must be an integer, not %s", p->key,
			       mcb_node_kind_phrase(v));
		return NULL;
	case MCB_P_FLOAT:
		if (mcb_node_float(v, &f) == 0) {
			if (!in_range(p, f)) {
				bad_range(d, p, v);
				return NULL;
			}
			return json_real(f);
		}
		if (!strcmp(mcb_node_kind_name(v), "number") ||
		    !strcmp(mcb_node_kind_name(v), "integer")) {
			mcb_diag_error(d, &v->loc, "'%s' must be a finite number, not %s", p->key,
				       v->str);
			return NULL;
		}
		mcb_diag_error(d, &v->loc, "'%s' must be a number, not %s", p->key,
			       mcb_node_kind_phrase(v));
		return NULL;
	case MCB_P_BOOL:
		if (mcb_node_bool(v, &b) == 0)
			return json_boolean(b);
		mcb_diag_error(d, &v->loc, "'%s' must be true or false, not %s", p->key,
			       mcb_node_kind_phrase(v));
		return NULL;
	case MCB_P_ENUM:
		if (!stringish(v))
			break;
		if (!in_choices(v->str, p->choices)) {
			bad_choice(d, p, v, "must be one of");
			return NULL;
		}
		return json_string(v->str);
	case MCB_P_STRLIST:
		if (v->kind != MCB_NODE_SEQ) {
			mcb_diag_error(d, &v->loc, "'%s' must be a list, not %s", p->key,
				       mcb_node_kind_phrase(v));
			return NULL;
		}
		rep = repeats(v);
		arr = json_array();
		for (k = 0; k < v->nitems; k++) {
			const struct mcb_node *it = v->items[k];

			if (!stringish(it)) {
				mcb_diag_error(d, &it->loc, "'%s' entries must be strings, not %s",
					       p->key, mcb_node_kind_phrase(it));
				bad = 1;
				continue;
			}
			if (p->choices && !in_choices(it->str, p->choices)) {
				bad_choice(d, p, it, "entries must be one of");
				bad = 1;
				continue;
			}
			if (rep[k]) {
				mcb_diag_error(d, &it->loc, "'%s' lists '%s' twice", p->key, it->str);
				bad = 1;
				continue;
			}
			json_array_append_new(arr, json_stringn(it->str, it->len));
		}
		free(rep);
		if (bad) {
			json_decref(arr);
			return NULL;
		}
		return arr;
	}
	mcb_diag_error(d, &v->loc, "'%s' must be a string, not %s", p->key,
		       mcb_node_kind_phrase(v));
	return NULL;
}

/* The JSON value of a default written as YAML text (a bug in a table is fatal). */
static json_t *default_value(const struct mcb_param *p)
{
	const char *s = p->def;
	char *end;
	json_t *arr;
	const char *q;

	errno = 0;
	switch (p->type) {
	case MCB_P_INT: {
		long long v = strtoll(s, &end, 0);

		if (errno || *end)
			break;
		return json_integer(v);
	}
	case MCB_P_FLOAT: {
		double v = strtod(s, &end);

		if (errno || *end)
			break;
		return json_real(v);
	}
	case MCB_P_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "false"))
			return json_boolean(!strcmp(s, "true"));
		break;
	case MCB_P_STRLIST:
		/* "[]" or "a,b,c" */
		arr = json_array();
		if (!strcmp(s, "[]"))
			return arr;
		for (q = s; *q;) {
			size_t n = strcspn(q, ",");

			json_array_append_new(arr, json_stringn(q, n));
			q += n;
			if (*q)
				q++;
		}
		return arr;
	default:
		return json_string(s);
	}
	mcb_die("bad default '%s' for parameter '%s'", s, p->key);
}

int mcb_schema_check(const struct mcb_param *params, size_t nparams, const struct mcb_node *map_in,
		     const char *what, struct json_t **out, struct mcb_diags *d)
{
	const struct mcb_node *map = map_in;
	const struct mcb_loc *where = NULL; /* for "missing required key" */
	const char **keys;
	const char *dym;
	json_t *obj, *v;
	size_t i, k, before = d->nerr;

	*out = NULL;
	if (map && mcb_node_is_null(map))
		map = NULL, where = &map_in->loc;
	else if (map)
		where = &map->loc;
	if (map && map->kind != MCB_NODE_MAP) {
		mcb_diag_error(d, &map->loc, "%s must be a mapping, not %s", what,
			       mcb_node_kind_phrase(map));
		return -1;
	}
	keys = mcb_xcalloc(nparams ? nparams : 1, sizeof(*keys));
	for (k = 0; k < nparams; k++)
		keys[k] = params[k].key;
	for (i = 0; map && i < map->nitems; i++) {
		for (k = 0; k < nparams; k++)
			if (!strcmp(map->keys[i]->str, params[k].key))
				break;
		if (k < nparams)
			continue;
		dym = mcb_didyoumean(map->keys[i]->str, keys, nparams);
		if (dym)
			mcb_diag_error(d, &map->keys[i]->loc,
				       "unknown key '%s' in %s (did you mean '%s'?)",
				       map->keys[i]->str, what, dym);
		else
			mcb_diag_error(d, &map->keys[i]->loc, "unknown key '%s' in %s",
				       map->keys[i]->str, what);
	}
	free(keys);
	obj = json_object();
	for (k = 0; k < nparams; k++) {
		const struct mcb_param *p = &params[k];
		const struct mcb_node *n = mcb_node_get(map, p->key);

		if (!n) {
			if (!p->def) {
				mcb_diag_error(d, where, "missing required key '%s' in %s",
					       p->key, what);
				continue;
			}
			if (!p->def[0])
				continue; /* MCB_P_OPTIONAL */
			v = default_value(p);
		} else {
			v = check_value(p, n, d);
		}
		if (v)
			json_object_set_new(obj, p->key, v);
	}
	if (d->nerr > before) {
		json_decref(obj);
		return -1;
	}
	*out = obj;
	return 0;
}
