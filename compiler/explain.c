/*
 * explain: last action encodings by step label.
 *
 * File format (.mcbuild/explain.log), text:
 *   line 1: "mcbuild-explain 1"
 *   then one line per step: <label> TAB <canonical action encoding>
 * Labels hold no TAB or newline (names are [A-Za-z0-9._-]); encodings are
 * compact ASCII JSON.  Written whole, atomically (tmp + fsync + rename).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/explain.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/strmap.h"

#define HEADER "mcbuild-explain 1\n"
#define MAX_LOG (64u << 20)

struct entry {
	char *label;
	char *enc;
};

struct mcb_explain {
	char *path;
	int loaded;		      /* the file has been read (lazily, on first use) */
	char warning[MCB_ERRMSG_MAX]; /* why the file was ignored, "" when it was not */
	struct mcb_strmap map;	      /* label -> struct entry * */
	struct entry **v;	      /* n entries in insertion order */
	size_t n, cap;
	int dirty;
};

static void put(struct mcb_explain *x, const char *label, const char *enc, size_t enclen)
{
	struct entry *en = mcb_strmap_get(&x->map, label);

	if (en) {
		free(en->enc);
		en->enc = mcb_xmalloc(enclen + 1);
		memcpy(en->enc, enc, enclen);
		en->enc[enclen] = '\0';
		return;
	}
	en = mcb_xmalloc(sizeof(*en));
	en->label = mcb_xstrdup(label);
	en->enc = mcb_xmalloc(enclen + 1);
	memcpy(en->enc, enc, enclen);
	en->enc[enclen] = '\0';
	if (x->n == x->cap) {
		x->cap = x->cap ? x->cap * 2 : 64;
		x->v = mcb_xrealloc(x->v, x->cap * sizeof(*x->v));
	}
	x->v[x->n++] = en;
	mcb_strmap_put(&x->map, en->label, en);
}

struct mcb_explain *mcb_explain_open(const char *path)
{
	struct mcb_explain *x = mcb_xcalloc(1, sizeof(*x));

	x->path = mcb_xstrdup(path);
	return x;
}

/* Read the file on first use: a build that runs nothing never needs it. */
static void load(struct mcb_explain *x)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	char *p, *nl, *tab;
	int rc;

	if (x->loaded)
		return;
	x->loaded = 1;
	rc = mcb_os_read_file(x->path, MAX_LOG, &b, &e);
	if (rc) {
		if (rc != MCB_ENOENT)
			snprintf(x->warning, sizeof(x->warning), "%.900s; starting afresh", e.msg);
		mcb_buf_release(&b);
		return;
	}
	if (b.len < strlen(HEADER) || memcmp(b.data, HEADER, strlen(HEADER))) {
		snprintf(x->warning, sizeof(x->warning),
			 "'%s' is not an explain log; starting afresh", x->path);
		mcb_buf_release(&b);
		return;
	}
	for (p = b.data + strlen(HEADER); *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break; /* a torn last line is dropped */
		*nl = '\0';
		tab = strchr(p, '\t');
		if (!tab || tab == p)
			continue;
		*tab = '\0';
		put(x, p, tab + 1, (size_t)(nl - tab - 1));
	}
	mcb_buf_release(&b);
}

const char *mcb_explain_warning(const struct mcb_explain *x)
{
	return x->warning[0] ? x->warning : NULL;
}

const char *mcb_explain_get(struct mcb_explain *x, const char *label)
{
	struct entry *en;

	load(x);
	en = mcb_strmap_get(&x->map, label);

	return en ? en->enc : NULL;
}

void mcb_explain_set(struct mcb_explain *x, const char *label, const char *encoding)
{
	const char *old = mcb_explain_get(x, label); /* loads the file */

	if (old && !strcmp(old, encoding))
		return;
	put(x, label, encoding, strlen(encoding));
	x->dirty = 1;
}

int mcb_explain_save(struct mcb_explain *x, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t i;
	int rc;

	if (!x->dirty)
		return 0;
	mcb_buf_adds(&b, HEADER);
	for (i = 0; i < x->n; i++)
		mcb_buf_printf(&b, "%s\t%s\n", x->v[i]->label, x->v[i]->enc);
	rc = mcb_os_write_atomic(x->path, b.data, b.len, 0644, e);
	mcb_buf_release(&b);
	if (!rc)
		x->dirty = 0;
	return rc;
}

void mcb_explain_close(struct mcb_explain *x)
{
	size_t i;

	if (!x)
		return;
	for (i = 0; i < x->n; i++) {
		free(x->v[i]->label);
		free(x->v[i]->enc);
		free(x->v[i]);
	}
	free(x->v);
	mcb_strmap_release(&x->map);
	free(x->path);
	free(x);
}

static void clause(struct mcb_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void clause(struct mcb_buf *out, const char *fmt, ...)
{
	va_list ap;

	if (out->len)
		mcb_buf_adds(out, "; ");
	va_start(ap, fmt);
	mcb_buf_vprintf(out, fmt, ap);
	va_end(ap);
}

#define MAX_SHOWN 40
/* Parameter paths are built with SEP between members (tensor names hold
 * dots) and shown with '.'. */
#define SEP "\037"

/* v's canonical text, or NULL when longer than MAX_SHOWN (callers then say
 * only that it changed). */
static char *shown(const json_t *v)
{
	struct mcb_buf b = MCB_BUF_INIT;

	if (!v)
		return mcb_xstrdup("(unset)");
	mcb_json_canonical(v, &b);
	if (b.len > MAX_SHOWN) {
		mcb_buf_release(&b);
		return NULL;
	}
	return mcb_buf_detach(&b, NULL);
}

static void diff_value(const char *path, const json_t *a, const json_t *b, struct mcb_buf *out,
		       const char *const *ignore);

static void diff_child(const char *prefix, const char *key, size_t idx, const json_t *a,
		       const json_t *b, struct mcb_buf *out, const char *const *ignore)
{
	struct mcb_buf path = MCB_BUF_INIT;

	if (key)
		mcb_buf_printf(&path, "%s%s%s", prefix, prefix[0] ? SEP : "", key);
	else
		mcb_buf_printf(&path, "%s[%zu]", prefix, idx);
	diff_value(path.data, a, b, out, ignore);
	mcb_buf_release(&path);
}

/*
 * One clause per leaf that differs between a and b (either may be NULL:
 * unset), recursing into objects and into arrays of equal length, so that a
 * nested change reads "parameter stack[0].quantize.bits: 8 -> 4".
 */
static void diff_value(const char *path, const json_t *a, const json_t *b, struct mcb_buf *out,
		       const char *const *ignore)
{
	const char *key;
	json_t *va, *vb;
	size_t i;

	if (a && b && json_equal(a, b))
		return;
	for (i = 0; ignore && ignore[i]; i++)
		if (!strcmp(ignore[i], path))
			return;
	if (json_is_object(a) && json_is_object(b)) {
		json_object_foreach ((json_t *)a, key, va)
			diff_child(path, key, 0, va, json_object_get(b, key), out, ignore);
		json_object_foreach ((json_t *)b, key, vb)
			if (!json_object_get(a, key))
				diff_child(path, key, 0, NULL, vb, out, ignore);
		return;
	}
	if (json_is_array(a) && json_is_array(b) && json_array_size(a) == json_array_size(b)) {
		for (i = 0; i < json_array_size(a); i++)
			diff_child(path, NULL, i, json_array_get(a, i), json_array_get(b, i), out,
				   ignore);
		return;
	}
	{
		char *sa = shown(a), *sb = shown(b);

		if (sa && sb)
			mcb_buf_printf(out, "parameter %s: %s -> %s\n", path, sa, sb);
		else
			mcb_buf_printf(out, "parameter %s changed\n", path);
		free(sa);
		free(sb);
	}
}

/*
 * Clauses of the parameter diff (SEP-separated paths) into out: changes
 * that differ only in one member's name (the same change to seven tensors of
 * a layer) read as one clause with '*' and a count:
 * "parameter tensors.*.group_size: 0 -> 128 (7 entries)".
 */
struct pclause {
	char *text;  /* "parameter PATH: ..." */
	char **comp; /* path components */
	size_t ncomp;
	const char *rest; /* after the path */
	int done;
};

static void split_clause(struct pclause *c)
{
	char *p = c->text + strlen("parameter "), *end = p + strcspn(p, ": ");

	c->rest = mcb_xstrdup(end);
	*end = '\0';
	c->comp = NULL;
	c->ncomp = 0;
	for (;;) {
		size_t n = strcspn(p, SEP);

		c->comp = mcb_xrealloc(c->comp, (c->ncomp + 1) * sizeof(*c->comp));
		c->comp[c->ncomp++] = p;
		if (!p[n])
			break;
		p[n] = '\0';
		p += n + 1;
	}
}

/* Do a and b differ in component k only? */
static int differ_only_at(const struct pclause *a, const struct pclause *b, size_t k)
{
	size_t i;

	if (a->ncomp != b->ncomp || strcmp(a->rest, b->rest))
		return 0;
	for (i = 0; i < a->ncomp; i++)
		if ((i == k) == !strcmp(a->comp[i], b->comp[i]))
			return 0;
	return 1;
}

static void emit_params(struct mcb_buf *params, struct mcb_buf *out)
{
	struct pclause *v = NULL;
	size_t n = 0, i, j, k;
	char *p = params->data;

	while (p && *p) {
		size_t len = strcspn(p, "\n");

		v = mcb_xrealloc(v, (n + 1) * sizeof(*v));
		v[n].text = mcb_xmalloc(len + 1);
		memcpy(v[n].text, p, len);
		v[n].text[len] = '\0';
		v[n].done = 0;
		split_clause(&v[n]);
		n++;
		p += len + (p[len] == '\n');
	}
	for (i = 0; i < n; i++) {
		size_t same = 1, at = 0;

		if (v[i].done)
			continue;
		for (k = 0; k < v[i].ncomp && same == 1; k++) {
			for (j = i + 1; j < n; j++)
				same += !v[j].done && differ_only_at(&v[i], &v[j], k);
			at = k;
		}
		if (out->len)
			mcb_buf_adds(out, "; ");
		mcb_buf_adds(out, "parameter ");
		for (k = 0; k < v[i].ncomp; k++)
			mcb_buf_printf(out, "%s%s", k ? "." : "",
				       same > 1 && k == at ? "*" : v[i].comp[k]);
		mcb_buf_adds(out, v[i].rest);
		if (same > 1) {
			mcb_buf_printf(out, " (%zu entries)", same);
			for (j = i + 1; j < n; j++)
				if (!v[j].done && differ_only_at(&v[i], &v[j], at))
					v[j].done = 1;
		}
	}
	for (i = 0; i < n; i++) {
		free(v[i].text);
		free(v[i].comp);
		free((char *)v[i].rest);
	}
	free(v);
}

void mcb_explain_why(const char *old, const char *new_enc, const char *const *ignore,
		     struct mcb_buf *out)
{
	json_t *a, *b, *ia, *ib, *va, *vb;
	struct mcb_buf mine = MCB_BUF_INIT, params = MCB_BUF_INIT;
	const char *key;

	if (!old) {
		mcb_buf_adds(out, "no previous build of this step");
		return;
	}
	a = json_loads(old, 0, NULL);
	b = json_loads(new_enc, 0, NULL);
	if (!a || !b) {
		mcb_buf_adds(out, "the recorded action is unreadable");
		goto out;
	}
	if (!json_equal(json_object_get(a, "kind"), json_object_get(b, "kind")))
		clause(&mine, "step kind changed");
	else if (!json_equal(json_object_get(a, "version"), json_object_get(b, "version")))
		clause(&mine, "%s version %lld -> %lld",
		       json_string_value(json_object_get(b, "kind")),
		       (long long)json_integer_value(json_object_get(a, "version")),
		       (long long)json_integer_value(json_object_get(b, "version")));
	diff_value("", json_object_get(a, "params"), json_object_get(b, "params"), &params, ignore);
	emit_params(&params, &mine);
	ia = json_object_get(a, "inputs");
	ib = json_object_get(b, "inputs");
	json_object_foreach (ib, key, vb) {
		va = json_object_get(ia, key);
		if (!va)
			clause(&mine, "new input %s", key);
		else if (!json_equal(va, vb))
			clause(&mine, "input %s changed (%.12s -> %.12s)", key,
			       json_string_value(va), json_string_value(vb));
	}
	json_object_foreach (ia, key, va)
		if (!json_object_get(ib, key))
			clause(&mine, "input %s removed", key);
	if (!mine.len)
		mcb_buf_adds(&mine, "same action, but its result is not in the cache");
	mcb_buf_add(out, mine.data, mine.len);
out:
	mcb_buf_release(&mine);
	mcb_buf_release(&params);
	json_decref(a);
	json_decref(b);
}
