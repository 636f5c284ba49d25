/* Unit tests for yaml.c: positions, limits, structural errors, scalar helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/yaml.h"

/* Parse text; the diagnostics as printed go into out (static). */
static int parse(struct mcb_arena *a, const char *text, struct mcb_node **root, const char **out)
{
	static char *buf;
	size_t n = 0;
	struct mcb_diags d;
	FILE *f;
	int rc;

	free(buf);
	buf = NULL;
	mcb_diags_init(&d);
	rc = mcb_yaml_parse(a, "t.yaml", text, strlen(text), root, &d);
	f = open_memstream(&buf, &n);
	mcb_diags_print(&d, f);
	fclose(f);
	CHECK_EQ(rc == 0, d.nerr == 0);
	mcb_diags_release(&d);
	*out = buf;
	return rc;
}

static struct mcb_node *scalar(struct mcb_arena *a, const char *s, int plain)
{
	struct mcb_node *n = mcb_arena_alloc(a, sizeof(*n));

	n->kind = MCB_NODE_SCALAR;
	n->str = mcb_arena_strdup(a, s);
	n->len = strlen(s);
	n->plain = plain;
	return n;
}

static void test_positions(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const struct mcb_node *m, *v;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "# comment\nmodels:\n  stories: {path: \"s.bin\", n: 3}\nlist:\n"
			   "  - a\n  -   'b'\n", &root, &err), 0);
	CHECK_STR(err, "");
	CHECK(root && root->kind == MCB_NODE_MAP);
	CHECK_EQ(root->loc.line, 2);
	CHECK_EQ(root->loc.col, 1);
	CHECK_EQ(root->nitems, 2);
	CHECK_STR(root->keys[0]->str, "models");
	CHECK_EQ(root->keys[0]->loc.line, 2);
	CHECK_EQ(root->keys[0]->loc.col, 1);
	m = mcb_node_get(mcb_node_get(root, "models"), "stories");
	CHECK(m && m->kind == MCB_NODE_MAP);
	CHECK_EQ(m->loc.line, 3);
	CHECK_EQ(m->loc.col, 12);
	v = mcb_node_get(m, "path");
	CHECK(v && !v->plain && !strcmp(v->str, "s.bin"));
	CHECK_EQ(v->loc.col, 19);
	v = mcb_node_get(m, "n");
	CHECK(v && v->plain && v->loc.col == 31);
	v = mcb_node_get(root, "list");
	CHECK(v && v->kind == MCB_NODE_SEQ && v->nitems == 2);
	CHECK_EQ(v->items[1]->loc.line, 6);
	CHECK_EQ(v->items[1]->loc.col, 7);
	CHECK_EQ(v->items[1]->plain, 0);
	CHECK_STR(v->items[1]->str, "b");
	CHECK(mcb_node_get(root, "nothing") == NULL);
	CHECK(mcb_node_get(v, "list") == NULL);
	mcb_arena_release(&a);
}

static void test_empty(void)
{
	struct mcb_arena a;
	struct mcb_node *root = (void *)1;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "", &root, &err), 0);
	CHECK(root == NULL);
	CHECK_EQ(parse(&a, "# only a comment\n\n", &root, &err), 0);
	CHECK(root == NULL);
	CHECK_EQ(parse(&a, "---\n", &root, &err), 0);
	CHECK(root && mcb_node_is_null(root));
	mcb_arena_release(&a);
}

static void test_scalars(void)
{
	struct mcb_arena a;
	int64_t i;
	double f;
	int b;

	mcb_arena_init(&a);
	CHECK(mcb_node_is_null(NULL));
	CHECK(mcb_node_is_null(scalar(&a, "", 1)));
	CHECK(mcb_node_is_null(scalar(&a, "~", 1)));
	CHECK(mcb_node_is_null(scalar(&a, "null", 1)));
	CHECK(mcb_node_is_null(scalar(&a, "NULL", 1)));
	CHECK(!mcb_node_is_null(scalar(&a, "null", 0)));
	CHECK(!mcb_node_is_null(scalar(&a, "nil", 1)));

	CHECK(mcb_node_int(scalar(&a, "42", 1), &i) == 0 && i == 42);
	CHECK(mcb_node_int(scalar(&a, "-7", 1), &i) == 0 && i == -7);
	CHECK(mcb_node_int(scalar(&a, "+3", 1), &i) == 0 && i == 3);
	CHECK(mcb_node_int(scalar(&a, "0x1F", 1), &i) == 0 && i == 31);
	CHECK(mcb_node_int(scalar(&a, "0o17", 1), &i) == 0 && i == 15);
	CHECK(mcb_node_int(scalar(&a, "08", 1), &i) == 0 && i == 8);
	CHECK(mcb_node_int(scalar(&a, "9223372036854775807", 1), &i) == 0 && i == INT64_MAX);
	CHECK_EQ(mcb_node_int(scalar(&a, "9223372036854775808", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "0xffffffffffffffffff", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "42", 0), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "1e3", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "1.0", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "-0x1", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "0x", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "-", 1), &i), -1);
	CHECK_EQ(mcb_node_int(scalar(&a, "", 1), &i), -1);

	CHECK(mcb_node_float(scalar(&a, ".5", 1), &f) == 0 && f == 0.5);
	CHECK(mcb_node_float(scalar(&a, "1e3", 1), &f) == 0 && f == 1000);
	CHECK(mcb_node_float(scalar(&a, "-2.5E-3", 1), &f) == 0 && f == -2.5e-3);
	CHECK(mcb_node_float(scalar(&a, "7", 1), &f) == 0 && f == 7);
	CHECK(mcb_node_float(scalar(&a, "3.", 1), &f) == 0 && f == 3);
	CHECK(mcb_node_float(scalar(&a, "0x10", 1), &f) == 0 && f == 16);
	CHECK_EQ(mcb_node_float(scalar(&a, ".inf", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, "-.Inf", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, ".nan", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, "1e999", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, "1e", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, ".", 1), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, "1.5", 0), &f), -1);
	CHECK_EQ(mcb_node_float(scalar(&a, "abc", 1), &f), -1);

	CHECK(mcb_node_bool(scalar(&a, "true", 1), &b) == 0 && b == 1);
	CHECK(mcb_node_bool(scalar(&a, "False", 1), &b) == 0 && b == 0);
	CHECK(mcb_node_bool(scalar(&a, "TRUE", 1), &b) == 0 && b == 1);
	CHECK_EQ(mcb_node_bool(scalar(&a, "yes", 1), &b), -1);
	CHECK_EQ(mcb_node_bool(scalar(&a, "on", 1), &b), -1);
	CHECK_EQ(mcb_node_bool(scalar(&a, "true", 0), &b), -1);

	CHECK_STR(mcb_node_kind_name(scalar(&a, "x", 1)), "string");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "8", 0)), "string");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "8", 1)), "integer");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "99999999999999999999999", 1)), "integer");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "8.5", 1)), "number");
	CHECK_STR(mcb_node_kind_name(scalar(&a, ".inf", 1)), "number");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "true", 1)), "boolean");
	CHECK_STR(mcb_node_kind_name(scalar(&a, "~", 1)), "null");
	CHECK_STR(mcb_node_kind_phrase(scalar(&a, "8", 1)), "an integer");
	CHECK_STR(mcb_node_kind_phrase(scalar(&a, "", 1)), "null");
	CHECK_STR(mcb_node_kind_phrase(scalar(&a, "x", 1)), "a string");
	mcb_arena_release(&a);
}

static void test_kinds_in_documents(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "a: [1]\nb: {}\nc: |\n  x\n", &root, &err), 0);
	CHECK_STR(mcb_node_kind_name(mcb_node_get(root, "a")), "list");
	CHECK_STR(mcb_node_kind_name(mcb_node_get(root, "b")), "mapping");
	CHECK_STR(mcb_node_kind_phrase(mcb_node_get(root, "b")), "a mapping");
	CHECK_STR(mcb_node_get(root, "c")->str, "x\n");
	CHECK_EQ(mcb_node_get(root, "c")->plain, 0);
	mcb_arena_release(&a);
}

static void test_duplicate_keys(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "a: 1\nb: 2\na: 3\nc: {x: 1, x: 2, x: 3}\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:3:1: error: duplicate key 'a' (first at t.yaml:1:1)\n"
		       "t.yaml:4:11: error: duplicate key 'x' (first at t.yaml:4:5)\n"
		       "t.yaml:4:17: error: duplicate key 'x' (first at t.yaml:4:5)\n");
	/* Recoverable: the tree is there, first value kept. */
	CHECK(root && root->nitems == 3);
	CHECK_STR(mcb_node_get(root, "a")->str, "1");
	CHECK_EQ(mcb_node_get(root, "c")->nitems, 1);
	CHECK_STR(mcb_node_get(mcb_node_get(root, "c"), "x")->str, "1");
	/* Quoting does not make a different key. */
	CHECK_EQ(parse(&a, "a: 1\n\"a\": 2\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:1: error: duplicate key 'a' (first at t.yaml:1:1)\n");
	mcb_arena_release(&a);
}

static void test_nonscalar_keys(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "? [a, b]\n: 1\n? {x: 1}\n: 2\nok: 3\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:3: error: mapping keys must be scalars, not a list\n"
		       "t.yaml:3:3: error: mapping keys must be scalars, not a mapping\n");
	CHECK(root && root->nitems == 1);
	mcb_arena_release(&a);
}

static void test_multidoc(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "a: 1\n---\nb: 2\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:1: error: more than one YAML document in a recipe file (use "
		       "include: to split a recipe)\n");
	CHECK(root == NULL);
	CHECK_EQ(parse(&a, "--- \na: 1\n...\n", &root, &err), 0);
	CHECK(root && root->nitems == 1);
	mcb_arena_release(&a);
}

static void test_tags(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "a: !!str 8\nb: !!int \"8\"\nc: !!float 1\nd: !!bool \"true\"\n"
			   "e: !!null ''\nf: !!map {}\ng: !!seq []\n", &root, &err), 0);
	CHECK_STR(err, "");
	CHECK_EQ(mcb_node_get(root, "a")->plain, 0);
	CHECK_EQ(mcb_node_get(root, "b")->plain, 1);
	CHECK(mcb_node_is_null(mcb_node_get(root, "e")));
	CHECK_EQ(parse(&a, "a: !!binary aGk=\nb: !x 1\nc: ! q\nd: !!int x\ne: !!seq {}\n"
			   "f: !!map 3\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:4: error: unsupported YAML tag '!!binary' (only the core tags "
		       "!!str, !!int, !!float, !!bool, !!null, !!map and !!seq are allowed)\n"
		       "t.yaml:2:4: error: unsupported YAML tag '!x' (only the core tags !!str, "
		       "!!int, !!float, !!bool, !!null, !!map and !!seq are allowed)\n"
		       "t.yaml:3:4: error: unsupported YAML tag '!' (only the core tags !!str, "
		       "!!int, !!float, !!bool, !!null, !!map and !!seq are allowed)\n"
		       "t.yaml:4:4: error: 'x' is not a valid !!int\n"
		       "t.yaml:5:4: error: YAML tag '!!seq' does not fit a mapping\n"
		       "t.yaml:6:4: error: YAML tag '!!map' does not fit an integer\n");
	CHECK(root != NULL);
	mcb_arena_release(&a);
}

static void test_syntax_errors(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "a: [1, 2\nb: 3\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:2: error: did not find expected ',' or ']' (while parsing a flow "
		       "sequence)\n");
	CHECK(root == NULL);
	CHECK_EQ(parse(&a, "a: 'x\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:1: error: found unexpected end of stream (while scanning a quoted "
		       "scalar)\n");
	CHECK_EQ(parse(&a, "a:\n\tb: 1\n", &root, &err), MCB_EFORMAT);
	CHECK(strstr(err, "t.yaml:2:1: error: found character that cannot start any token") == err);
	/* Invalid UTF-8: a reader error, located from its byte offset. */
	CHECK_EQ(parse(&a, "a: 1\nb: \xff\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:4: error: invalid leading UTF-8 octet (byte 0xff)\n");
	/* A NUL in a double-quoted scalar would truncate names: refused. */
	CHECK_EQ(parse(&a, "a: \"x\\0y\"\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:4: error: YAML scalar contains a NUL character\n");
	mcb_arena_release(&a);
}

static void test_depth(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;
	struct mcb_buf b = MCB_BUF_INIT;
	int i;

	mcb_arena_init(&a);
	for (i = 0; i < MCB_YAML_MAX_DEPTH; i++)
		mcb_buf_addc(&b, '[');
	for (i = 0; i < MCB_YAML_MAX_DEPTH; i++)
		mcb_buf_addc(&b, ']');
	CHECK_EQ(parse(&a, b.data, &root, &err), 0);
	mcb_buf_reset(&b);
	for (i = 0; i < 100000; i++)
		mcb_buf_adds(&b, "{a: ");
	CHECK_EQ(parse(&a, b.data, &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:129: error: YAML nesting deeper than 32 levels\n");
	CHECK(root == NULL);
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

static void test_node_limit(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;
	struct mcb_buf b = MCB_BUF_INIT;
	int i;

	mcb_arena_init(&a);
	mcb_buf_addc(&b, '[');
	for (i = 0; i < MCB_YAML_MAX_NODES - 1; i++)
		mcb_buf_adds(&b, "1,");
	mcb_buf_addc(&b, ']');
	CHECK_EQ(parse(&a, b.data, &root, &err), 0); /* the list plus 99999 items */
	CHECK(root && root->nitems == MCB_YAML_MAX_NODES - 1);
	b.len--; /* drop the ']' */
	mcb_buf_adds(&b, "1]");
	CHECK_EQ(parse(&a, b.data, &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:200000: error: YAML document has more than 100000 nodes\n");
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

static void test_billion_laughs(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;
	struct mcb_buf b = MCB_BUF_INIT;
	int i, k;

	mcb_arena_init(&a);
	mcb_buf_adds(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
	for (i = 1; i < 9; i++) {
		mcb_buf_printf(&b, "a%d: &a%d [", i, i);
		for (k = 0; k < 9; k++)
			mcb_buf_printf(&b, "%s*a%d", k ? ", " : "", i - 1);
		mcb_buf_adds(&b, "]\n");
	}
	CHECK_EQ(parse(&a, b.data, &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:6:10: error: YAML aliases expand to more than 100000 nodes\n");
	CHECK(root == NULL);
	CHECK(a.total < (8u << 20));
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

static void test_aliases(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;
	struct mcb_buf b = MCB_BUF_INIT;
	int i;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "base: &b {x: 1, y: [2]}\nuse: *b\ns: &s str\nt: *s\n", &root, &err), 0);
	CHECK(mcb_node_get(root, "base") == mcb_node_get(root, "use"));
	CHECK_STR(mcb_node_get(root, "t")->str, "str");
	/* Redefined anchors: the later wins. */
	CHECK_EQ(parse(&a, "a: &x 1\nb: &x 2\nc: *x\n", &root, &err), 0);
	CHECK_STR(mcb_node_get(root, "c")->str, "2");
	/* 100 aliases are fine, 101 are not. */
	mcb_buf_adds(&b, "x: &x 1\ny: [");
	for (i = 0; i < MCB_YAML_MAX_ALIASES; i++)
		mcb_buf_adds(&b, "*x,");
	mcb_buf_adds(&b, "]\n");
	CHECK_EQ(parse(&a, b.data, &root, &err), 0);
	b.len -= 2;
	mcb_buf_adds(&b, "*x]\n");
	CHECK_EQ(parse(&a, b.data, &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:2:305: error: more than 100 YAML aliases\n");
	CHECK_EQ(parse(&a, "a: *nope\nb: &r [1, *r]\n", &root, &err), MCB_EFORMAT);
	CHECK_STR(err,
		  "t.yaml:1:4: error: undefined YAML alias '*nope'\n"
		  "t.yaml:2:11: error: recursive YAML alias '*r' (it refers to a collection that "
		  "contains it)\n");
	CHECK(root && mcb_node_is_null(mcb_node_get(root, "a")));
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

static void test_merge_keys(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const struct mcb_node *m;
	const char *err;

	mcb_arena_init(&a);
	CHECK_EQ(parse(&a, "b1: &b1 {x: 1, y: 1}\nb2: &b2 {y: 2, z: 2}\n"
			   "m: {w: 0, <<: [*b1, *b2], x: 9}\n", &root, &err), 0);
	CHECK_STR(err, "");
	m = mcb_node_get(root, "m");
	CHECK(m && m->nitems == 4);
	if (m && m->nitems == 4) {
		/* Merged pairs stand where << stood; explicit keys win; earlier sources win. */
		CHECK_STR(m->keys[0]->str, "w");
		CHECK_STR(m->keys[1]->str, "y");
		CHECK_STR(m->items[1]->str, "1");
		CHECK_STR(m->keys[2]->str, "z");
		CHECK_STR(m->keys[3]->str, "x");
		CHECK_STR(m->items[3]->str, "9");
		CHECK_EQ(m->keys[1]->loc.line, 1); /* merged keys keep their own positions */
	}
	CHECK_EQ(parse(&a, "m: {<<: {a: 1}, a: 2}\n", &root, &err), 0);
	CHECK_STR(mcb_node_get(mcb_node_get(root, "m"), "a")->str, "2");
	CHECK_EQ(parse(&a, "m: {<<: 3}\nn: {<<: [{}, x]}\n\"<<\": literal\n", &root, &err),
		 MCB_EFORMAT);
	CHECK_STR(err,
		  "t.yaml:1:9: error: merge key (<<) value must be a mapping or a list of "
		  "mappings, not an integer\n"
		  "t.yaml:2:14: error: merge key (<<) sources must be mappings, not a string\n");
	CHECK_STR(mcb_node_get(root, "<<")->str, "literal");
	mcb_arena_release(&a);
}

static void test_scalar_limit(void)
{
	struct mcb_arena a;
	struct mcb_node *root;
	const char *err;
	struct mcb_buf b = MCB_BUF_INIT;

	mcb_arena_init(&a);
	mcb_buf_adds(&b, "a: ");
	mcb_buf_grow(&b, MCB_YAML_MAX_SCALAR + 1);
	memset(b.data + b.len, 'x', MCB_YAML_MAX_SCALAR + 1);
	b.len += MCB_YAML_MAX_SCALAR + 1;
	b.data[b.len] = '\0';
	CHECK_EQ(parse(&a, b.data, &root, &err), MCB_EFORMAT);
	CHECK_STR(err, "t.yaml:1:4: error: YAML scalar longer than 1048576 bytes\n");
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

int main(void)
{
	RUN(test_positions);
	RUN(test_empty);
	RUN(test_scalars);
	RUN(test_kinds_in_documents);
	RUN(test_duplicate_keys);
	RUN(test_nonscalar_keys);
	RUN(test_multidoc);
	RUN(test_tags);
	RUN(test_syntax_errors);
	RUN(test_depth);
	RUN(test_node_limit);
	RUN(test_billion_laughs);
	RUN(test_aliases);
	RUN(test_merge_keys);
	RUN(test_scalar_limit);
	return mcbt_done();
}
