/*
 * yaml: libyaml's event parser turned into a struct mcb_node tree (yaml.h).
 *
 * The input is hostile.  Limits: MCB_YAML_MAX_DEPTH nested collections,
 * MCB_YAML_MAX_NODES nodes where an alias costs the node count of its
 * anchor's subtree (so a "billion laughs" document fails after a few
 * thousand events, not after exhausting memory), MCB_YAML_MAX_ALIASES alias
 * references and MCB_YAML_MAX_SCALAR bytes per scalar.  Exceeding a limit,
 * a libyaml syntax error or a second document stops the parse; duplicate
 * keys, non-scalar keys, bad merge keys, undefined aliases and unsupported
 * tags are reported and parsing goes on, so one run shows all of them.
 *
 * Aliases share the anchored subtree (the tree is a DAG; nothing walks it
 * destructively).  Merge keys ("<<: *base" or "<<: [*a, *b]") are
 * supported: the merged mappings' pairs are spliced in where "<<" stood,
 * keys written explicitly win, and earlier sources win over later ones.
 * Tags: only the YAML 1.2 core tags (!!str !!int !!float !!bool !!null
 * !!map !!seq); !!str makes a plain scalar a string, the others must agree
 * with the node.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "mcb/arena.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/yaml.h"

#define CORE_TAG "tag:yaml.org,2002:"

/* A collection being built. */
struct frame {
	struct mcb_node *node;   /* kind and loc set; items/keys filled at the end */
	struct mcb_node **items; /* sequence: items; mapping: key, value, key, value ... */
	size_t n, cap;
	const char *anchor;      /* this collection's anchor, or NULL */
	size_t nodes_at_start;   /* parser.nodes before this collection was opened */
};

struct anchor {
	const char *name;
	struct mcb_node *node;
	size_t cost; /* nodes in the subtree, aliases inside counted expanded */
};

struct parser {
	struct mcb_arena *a;
	const char *file;
	const char *text;       /* the input, for positions of reader errors */
	size_t len;
	struct mcb_diags *d;
	struct frame *stack;    /* depth open collections, innermost last */
	size_t depth, stackcap;
	struct anchor *anchors; /* nanchors, in definition order (later wins) */
	size_t nanchors, anchorcap;
	size_t nodes;           /* nodes so far, aliases counted expanded; <= MAX_NODES */
	size_t naliases;        /* <= MAX_ALIASES */
	int ndocs;
	int nerr;               /* errors reported by this parse */
	struct mcb_node *root;
};

static struct mcb_loc mark_loc(const struct parser *p, yaml_mark_t m)
{
	struct mcb_loc loc = {p->file, (int)m.line + 1, (int)m.column + 1};

	return loc;
}

__attribute__((format(printf, 3, 4)))
static void perr(struct parser *p, const struct mcb_loc *loc, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = mcb_arena_vprintf(p->a, fmt, ap);
	va_end(ap);
	mcb_diag_error(p->d, loc, "%s", msg);
	p->nerr++;
}

/* The tag as the user wrote it: "!!int" for core tags. */
static const char *tag_display(struct parser *p, const char *tag)
{
	if (!strncmp(tag, CORE_TAG, strlen(CORE_TAG)))
		return mcb_arena_printf(p->a, "!!%s", tag + strlen(CORE_TAG));
	return tag;
}

static struct mcb_node *new_node(struct parser *p, enum mcb_node_kind kind, yaml_mark_t m)
{
	struct mcb_node *n = mcb_arena_alloc(p->a, sizeof(*n));

	n->kind = kind;
	n->loc = mark_loc(p, m);
	return n;
}

/* Count one more node (cost of them); 0, or -1 after reporting the limit. */
static int count_nodes(struct parser *p, size_t cost, const struct mcb_loc *loc, int alias)
{
	if (cost > MCB_YAML_MAX_NODES - p->nodes) {
		if (alias)
			perr(p, loc, "YAML aliases expand to more than %d nodes",
			     MCB_YAML_MAX_NODES);
		else
			perr(p, loc, "YAML document has more than %d nodes", MCB_YAML_MAX_NODES);
		return -1;
	}
	p->nodes += cost;
	return 0;
}

static void add_anchor(struct parser *p, const char *name, struct mcb_node *node, size_t cost)
{
	p->anchors = mcb_arena_grow(p->a, p->anchors, p->nanchors, &p->anchorcap,
				    sizeof(*p->anchors));
	p->anchors[p->nanchors].name = mcb_arena_strdup(p->a, name);
	p->anchors[p->nanchors].node = node;
	p->anchors[p->nanchors].cost = cost;
	p->nanchors++;
}

/* Attach a finished node to the open collection, or make it the root. */
static void attach(struct parser *p, struct mcb_node *n)
{
	struct frame *f;

	if (p->depth == 0) {
		p->root = n;
		return;
	}
	f = &p->stack[p->depth - 1];
	f->items = mcb_arena_grow(p->a, f->items, f->n, &f->cap, sizeof(*f->items));
	f->items[f->n++] = n;
}

/* Whether text is a YAML 1.2 core-schema integer (any size). */
static int int_syntax(const char *s)
{
	size_t i = 0;

	if ((s[0] == '0' && s[1] == 'x') || (s[0] == '0' && s[1] == 'o')) {
		const char *digits = s[1] == 'x' ? "0123456789abcdefABCDEF" : "01234567";

		if (!s[2])
			return 0;
		return strspn(s + 2, digits) == strlen(s + 2);
	}
	if (s[0] == '-' || s[0] == '+')
		i++;
	if (!s[i])
		return 0;
	return strspn(s + i, "0123456789") == strlen(s + i);
}

/* Whether text is one of the core schema's infinities or NaNs. */
static int special_float(const char *s)
{
	static const char *const special[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
					      "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"};
	size_t k;

	for (k = 0; k < sizeof(special) / sizeof(special[0]); k++)
		if (!strcmp(s, special[k]))
			return 1;
	return 0;
}

/* Whether text is a core-schema float: decimal with optional fraction and
 * exponent, or .inf/.nan (which mcb_node_float then rejects as not finite). */
static int float_syntax(const char *s)
{
	size_t i = 0, digits = 0;

	if (special_float(s))
		return 1;
	if (s[i] == '-' || s[i] == '+')
		i++;
	while (s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (s[i] == '.') {
		i++;
		while (s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (!digits)
		return 0;
	if (s[i] == 'e' || s[i] == 'E') {
		i++;
		if (s[i] == '-' || s[i] == '+')
			i++;
		if (!(s[i] >= '0' && s[i] <= '9'))
			return 0;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
	}
	return s[i] == '\0';
}

static int null_text(const char *s)
{
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static int bool_text(const char *s, int *v)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return *v = 1, 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return *v = 0, 1;
	return 0;
}

/* Check an explicit tag on n; adjust n->plain for !!str and typed scalars. */
static void apply_tag(struct parser *p, struct mcb_node *n, const char *tag)
{
	const char *t;
	int ok = 1, b;

	if (!tag)
		return;
	if (strncmp(tag, CORE_TAG, strlen(CORE_TAG))) {
		perr(p, &n->loc, "unsupported YAML tag '%s' (only the core tags !!str, !!int, "
			"!!float, !!bool, !!null, !!map and !!seq are allowed)", tag);
		return;
	}
	t = tag + strlen(CORE_TAG);
	if (!strcmp(t, "map"))
		ok = n->kind == MCB_NODE_MAP;
	else if (!strcmp(t, "seq"))
		ok = n->kind == MCB_NODE_SEQ;
	else if (!strcmp(t, "str") || !strcmp(t, "int") || !strcmp(t, "float") ||
		 !strcmp(t, "bool") || !strcmp(t, "null")) {
		if (n->kind != MCB_NODE_SCALAR) {
			ok = 0;
		} else if (!strcmp(t, "str")) {
			n->plain = 0;
		} else {
			n->plain = 1;
			if (!strcmp(t, "int"))
				ok = int_syntax(n->str);
			else if (!strcmp(t, "float"))
				ok = float_syntax(n->str) || int_syntax(n->str);
			else if (!strcmp(t, "bool"))
				ok = bool_text(n->str, &b);
			else
				ok = null_text(n->str);
			if (!ok) {
				perr(p, &n->loc, "'%s' is not a valid %s", n->str,
				     tag_display(p, tag));
				n->plain = 0;
				return;
			}
		}
	} else {
		perr(p, &n->loc,
		     "unsupported YAML tag '%s' (only the core tags !!str, !!int, "
		     "!!float, !!bool, !!null, !!map and !!seq are allowed)",
		     tag_display(p, tag));
		return;
	}
	if (!ok)
		perr(p, &n->loc, "YAML tag '%s' does not fit %s", tag_display(p, tag),
		     mcb_node_kind_phrase(n));
}

/* A mapping entry during merge-key processing. */
struct pair {
	struct mcb_node *key, *value;
	int merged;  /* 1: came from a "<<" source */
	size_t rank; /* explicit pairs first, then merged ones in source order */
	size_t pos;  /* position in the output order */
	int keep;
};

static int pair_cmp(const void *x, const void *y)
{
	const struct pair *a = *(const struct pair *const *)x, *b = *(const struct pair *const *)y;
	int c;

	if (a->key->len != b->key->len)
		return a->key->len < b->key->len ? -1 : 1;
	c = memcmp(a->key->str, b->key->str, a->key->len);
	if (c)
		return c;
	if (a->merged != b->merged)
		return a->merged - b->merged;
	return a->rank < b->rank ? -1 : a->rank > b->rank;
}

static int is_merge_key(const struct mcb_node *k)
{
	return k->kind == MCB_NODE_SCALAR && k->plain && !strcmp(k->str, "<<");
}

/* Append the pairs of merge source m (a mapping) to pairs. */
static void add_merge_source(struct parser *p, struct pair **pairs, size_t *n, size_t *cap,
			     const struct mcb_node *m, size_t *rank)
{
	size_t i;

	for (i = 0; i < m->nitems; i++) {
		*pairs = mcb_arena_grow(p->a, *pairs, *n, cap, sizeof(**pairs));
		(*pairs)[*n] = (struct pair){m->keys[i], m->items[i], 1, (*rank)++, *n, 0};
		(*n)++;
	}
}

/*
 * Finish a mapping: drop non-scalar keys (reported), splice in merge keys,
 * report duplicate explicit keys at the later occurrence, keep the first.
 */
static void finish_map(struct parser *p, struct frame *f)
{
	struct mcb_node *m = f->node;
	struct pair *pairs = NULL, **order;
	size_t npairs = 0, cap = 0, i, j, nexplicit = 0, rank = 0, out;

	for (i = 0; i + 1 < f->n; i += 2) {
		struct mcb_node *k = f->items[i], *v = f->items[i + 1];

		if (k->kind != MCB_NODE_SCALAR) {
			perr(p, &k->loc, "mapping keys must be scalars, not %s",
			     mcb_node_kind_phrase(k));
			continue;
		}
		if (is_merge_key(k)) {
			if (v->kind == MCB_NODE_MAP) {
				add_merge_source(p, &pairs, &npairs, &cap, v, &rank);
			} else if (v->kind == MCB_NODE_SEQ) {
				for (j = 0; j < v->nitems; j++) {
					if (v->items[j]->kind != MCB_NODE_MAP) {
						perr(p, &v->items[j]->loc,
						     "merge key (<<) sources must be "
						     "mappings, not %s",
						     mcb_node_kind_phrase(v->items[j]));
						continue;
					}
					add_merge_source(p, &pairs, &npairs, &cap, v->items[j],
							 &rank);
				}
			} else {
				perr(p, &v->loc,
				     "merge key (<<) value must be a mapping or a list of "
				     "mappings, not %s",
				     mcb_node_kind_phrase(v));
			}
			continue;
		}
		pairs = mcb_arena_grow(p->a, pairs, npairs, &cap, sizeof(*pairs));
		pairs[npairs] = (struct pair){k, v, 0, nexplicit++, npairs, 0};
		npairs++;
	}
	order = mcb_arena_array(p->a, npairs ? npairs : 1, sizeof(*order));
	for (i = 0; i < npairs; i++)
		order[i] = &pairs[i];
	if (npairs > 1)
		qsort(order, npairs, sizeof(*order), pair_cmp);
	for (i = 0; i < npairs; i = j) {
		order[i]->keep = 1;
		for (j = i + 1; j < npairs && order[j]->key->len == order[i]->key->len &&
				!memcmp(order[j]->key->str, order[i]->key->str, order[i]->key->len);
		     j++) {
			const struct mcb_loc *first = &order[i]->key->loc;

			if (!order[j]->merged && !order[i]->merged)
				perr(p, &order[j]->key->loc,
				     "duplicate key '%s' (first at %s:%d:%d)", order[j]->key->str,
				     first->file, first->line, first->col);
		}
	}
	for (i = out = 0; i < npairs; i++)
		if (pairs[i].keep)
			out++;
	m->keys = mcb_arena_array(p->a, out ? out : 1, sizeof(*m->keys));
	m->items = mcb_arena_array(p->a, out ? out : 1, sizeof(*m->items));
	for (i = out = 0; i < npairs; i++) {
		if (!pairs[i].keep)
			continue;
		m->keys[out] = pairs[i].key;
		m->items[out] = pairs[i].value;
		out++;
	}
	m->nitems = out;
}

static int open_collection(struct parser *p, enum mcb_node_kind kind, const yaml_event_t *ev,
			   const char *anchor, const char *tag)
{
	struct mcb_node *n = new_node(p, kind, ev->start_mark);
	struct frame *f;

	if (p->depth >= MCB_YAML_MAX_DEPTH) {
		perr(p, &n->loc, "YAML nesting deeper than %d levels", MCB_YAML_MAX_DEPTH);
		return -1;
	}
	if (count_nodes(p, 1, &n->loc, 0))
		return -1;
	apply_tag(p, n, tag);
	p->stack = mcb_arena_grow(p->a, p->stack, p->depth, &p->stackcap, sizeof(*p->stack));
	f = &p->stack[p->depth++];
	memset(f, 0, sizeof(*f));
	f->node = n;
	f->anchor = anchor ? mcb_arena_strdup(p->a, anchor) : NULL;
	f->nodes_at_start = p->nodes - 1;
	return 0;
}

static void close_collection(struct parser *p)
{
	struct frame *f = &p->stack[p->depth - 1];
	struct mcb_node *n = f->node;

	if (n->kind == MCB_NODE_MAP) {
		finish_map(p, f);
	} else {
		n->items = f->items;
		n->nitems = f->n;
	}
	if (f->anchor)
		add_anchor(p, f->anchor, n, p->nodes - f->nodes_at_start);
	p->depth--;
	attach(p, n);
}

static int on_scalar(struct parser *p, const yaml_event_t *ev)
{
	struct mcb_node *n = new_node(p, MCB_NODE_SCALAR, ev->start_mark);
	const char *v = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	if (len > MCB_YAML_MAX_SCALAR) {
		perr(p, &n->loc, "YAML scalar longer than %u bytes", MCB_YAML_MAX_SCALAR);
		return -1;
	}
	if (memchr(v, '\0', len)) {
		perr(p, &n->loc, "YAML scalar contains a NUL character");
		return -1;
	}
	if (count_nodes(p, 1, &n->loc, 0))
		return -1;
	n->str = mcb_arena_strndup(p->a, v, len);
	n->len = len;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	apply_tag(p, n, (const char *)ev->data.scalar.tag);
	if (ev->data.scalar.anchor)
		add_anchor(p, (const char *)ev->data.scalar.anchor, n, 1);
	attach(p, n);
	return 0;
}

static int on_alias(struct parser *p, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	struct mcb_loc loc = mark_loc(p, ev->start_mark);
	struct mcb_node *n;
	size_t i;

	if (++p->naliases > MCB_YAML_MAX_ALIASES) {
		perr(p, &loc, "more than %d YAML aliases", MCB_YAML_MAX_ALIASES);
		return -1;
	}
	for (i = p->nanchors; i-- > 0;) {
		if (!strcmp(p->anchors[i].name, name)) {
			if (count_nodes(p, p->anchors[i].cost, &loc, 1))
				return -1;
			attach(p, p->anchors[i].node);
			return 0;
		}
	}
	for (i = 0; i < p->depth; i++)
		if (p->stack[i].anchor && !strcmp(p->stack[i].anchor, name))
			break;
	if (i < p->depth)
		perr(p, &loc,
		     "recursive YAML alias '*%s' (it refers to a collection that contains it)",
		     name);
	else
		perr(p, &loc, "undefined YAML alias '*%s'", name);
	/* Stand in a null so that the structure around it stays intact. */
	n = new_node(p, MCB_NODE_SCALAR, ev->start_mark);
	n->str = "";
	n->plain = 1;
	attach(p, n);
	return 0;
}

/* Line and column (1-based) of byte offset off in the input. */
static struct mcb_loc offset_loc(const struct parser *p, size_t off)
{
	struct mcb_loc loc = {p->file, 1, 1};
	size_t i;

	for (i = 0; i < off && i < p->len; i++) {
		if (p->text[i] == '\n') {
			loc.line++;
			loc.col = 1;
		} else if (((unsigned char)p->text[i] & 0xc0) != 0x80) {
			loc.col++;
		}
	}
	return loc;
}

static void syntax_error(struct parser *p, const yaml_parser_t *y)
{
	struct mcb_loc loc;

	if (y->error == YAML_MEMORY_ERROR) {
		loc = (struct mcb_loc){p->file, 0, 0};
		perr(p, &loc, "out of memory parsing YAML");
		return;
	}
	if (y->error == YAML_READER_ERROR) {
		loc = offset_loc(p, y->problem_offset);
		if (y->problem_value != -1)
			perr(p, &loc, "%s (byte 0x%02x)", y->problem ? y->problem : "invalid input",
			     (unsigned)y->problem_value & 0xff);
		else
			perr(p, &loc, "%s", y->problem ? y->problem : "invalid input");
		return;
	}
	loc = mark_loc(p, y->problem_mark);
	if (y->context)
		perr(p, &loc, "%s (%s)", y->problem ? y->problem : "syntax error", y->context);
	else
		perr(p, &loc, "%s", y->problem ? y->problem : "syntax error");
}

int mcb_yaml_parse(struct mcb_arena *a, const char *file, const char *text, size_t len,
		   struct mcb_node **root, struct mcb_diags *d)
{
	struct parser p;
	yaml_parser_t y;
	yaml_event_t ev;
	int done = 0, stop = 0;
	const char *anchor, *tag;

	memset(&p, 0, sizeof(p));
	p.a = a;
	p.file = file;
	p.text = text;
	p.len = len;
	p.d = d;
	*root = NULL;
	if (!yaml_parser_initialize(&y))
		mcb_die("cannot initialise the YAML parser");
	yaml_parser_set_input_string(&y, (const unsigned char *)text, len);
	while (!done && !stop) {
		if (!yaml_parser_parse(&y, &ev)) {
			syntax_error(&p, &y);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++p.ndocs > 1) {
				struct mcb_loc loc = mark_loc(&p, ev.start_mark);

				perr(&p, &loc, "more than one YAML document in a recipe file "
				     "(use include: to split a recipe)");
				stop = 1;
			}
			break;
		case YAML_SCALAR_EVENT:
			stop = on_scalar(&p, &ev) < 0;
			break;
		case YAML_ALIAS_EVENT:
			stop = on_alias(&p, &ev) < 0;
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (ev.type == YAML_SEQUENCE_START_EVENT) {
				anchor = (const char *)ev.data.sequence_start.anchor;
				tag = (const char *)ev.data.sequence_start.tag;
			} else {
				anchor = (const char *)ev.data.mapping_start.anchor;
				tag = (const char *)ev.data.mapping_start.tag;
			}
			stop = open_collection(&p,
					       ev.type == YAML_SEQUENCE_START_EVENT ? MCB_NODE_SEQ
										    : MCB_NODE_MAP,
					       &ev, anchor, tag) < 0;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			close_collection(&p);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&y);
	if (done)
		*root = p.root;
	return p.nerr ? MCB_EFORMAT : 0;
}

const struct mcb_node *mcb_node_get(const struct mcb_node *map, const char *key)
{
	size_t i;

	if (!map || map->kind != MCB_NODE_MAP)
		return NULL;
	for (i = 0; i < map->nitems; i++)
		if (!strcmp(map->keys[i]->str, key))
			return map->items[i];
	return NULL;
}

int mcb_node_is_null(const struct mcb_node *n)
{
	if (!n)
		return 1;
	return n->kind == MCB_NODE_SCALAR && n->plain && null_text(n->str);
}

int mcb_node_int(const struct mcb_node *n, int64_t *out)
{
	const char *s;
	char *end;

	if (!n || n->kind != MCB_NODE_SCALAR || !n->plain || !int_syntax(n->str))
		return -1;
	s = n->str;
	errno = 0;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		unsigned long long v = strtoull(s + 2, &end, s[1] == 'x' ? 16 : 8);

		if (errno || v > INT64_MAX)
			return -1;
		*out = (int64_t)v;
		return 0;
	}
	{
		long long v = strtoll(s, &end, 10);

		if (errno)
			return -1;
		*out = v;
	}
	return 0;
}

int mcb_node_float(const struct mcb_node *n, double *out)
{
	int64_t i;
	double v;

	if (!n || n->kind != MCB_NODE_SCALAR || !n->plain)
		return -1;
	if (int_syntax(n->str)) {
		if (mcb_node_int(n, &i) == 0) {
			*out = (double)i;
			return 0;
		}
		if (n->str[0] == '0' && (n->str[1] == 'x' || n->str[1] == 'o'))
			return -1;
	} else if (!float_syntax(n->str) || special_float(n->str)) {
		return -1;
	}
	errno = 0;
	v = strtod(n->str, NULL);
	if (errno == ERANGE && fabs(v) > 1.0)
		return -1;
	if (!isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int mcb_node_bool(const struct mcb_node *n, int *out)
{
	if (!n || n->kind != MCB_NODE_SCALAR || !n->plain)
		return -1;
	return bool_text(n->str, out) ? 0 : -1;
}

const char *mcb_node_kind_name(const struct mcb_node *n)
{
	int b;

	if (!n)
		return "null";
	switch (n->kind) {
	case MCB_NODE_SEQ:
		return "list";
	case MCB_NODE_MAP:
		return "mapping";
	case MCB_NODE_SCALAR:
		break;
	}
	if (!n->plain)
		return "string";
	if (null_text(n->str))
		return "null";
	if (bool_text(n->str, &b))
		return "boolean";
	if (int_syntax(n->str))
		return "integer";
	if (float_syntax(n->str))
		return "number";
	return "string";
}

const char *mcb_node_kind_phrase(const struct mcb_node *n)
{
	const char *k = mcb_node_kind_name(n);

	if (!strcmp(k, "null"))
		return "null";
	if (!strcmp(k, "integer"))
		return "an integer";
	if (!strcmp(k, "string"))
		return "a string";
	if (!strcmp(k, "number"))
		return "a number";
	if (!strcmp(k, "boolean"))
		return "a boolean";
	if (!strcmp(k, "list"))
		return "a list";
	return "a mapping";
}
