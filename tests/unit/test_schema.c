/* Unit tests for schema.c and the technique table (technique.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/json.h"
#include "mcb/schema.h"
#include "mcb/technique.h"
#include "mcb/yaml.h"

static const char *const colors[] = {"red", "green", "blue", NULL};

static const struct mcb_param params[] = {
	{"name", MCB_P_NAME, NULL, 0, 0, NULL, "required name"},
	{"label", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL, "optional string"},
	{"count", MCB_P_INT, "3", 1, 10, NULL, "1..10"},
	{"any", MCB_P_INT, "-5", 0, 0, NULL, "unbounded"},
	{"ratio", MCB_P_FLOAT, "0.5", 0, 1, NULL, "0..1"},
	{"on", MCB_P_BOOL, "false", 0, 0, NULL, "flag"},
	{"color", MCB_P_ENUM, "red", 0, 0, colors, "a color"},
	{"tags", MCB_P_STRLIST, "a,b", 0, 0, NULL, "free list"},
	{"colors", MCB_P_STRLIST, "[]", 0, 0, colors, "checked list"},
};
#define NPARAMS (sizeof(params) / sizeof(params[0]))

struct result {
	int rc;
	char *json; /* canonical, or NULL */
	char *diags;
};

static struct result check(const char *yaml)
{
	struct mcb_arena a;
	struct mcb_diags d;
	struct mcb_node *root = NULL;
	struct result r;
	json_t *out = (json_t *)1;
	size_t n = 0;
	FILE *f;

	mcb_arena_init(&a);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_yaml_parse(&a, "s.yaml", yaml, strlen(yaml), &root, &d), 0);
	r.rc = mcb_schema_check(params, NPARAMS, root, "thing 'x'", &out, &d);
	r.json = NULL;
	if (out) {
		struct mcb_buf b = MCB_BUF_INIT;

		mcb_json_canonical(out, &b);
		r.json = mcb_buf_detach(&b, NULL);
		json_decref(out);
	}
	CHECK_EQ(r.rc == 0, r.json != NULL);
	r.diags = NULL;
	f = open_memstream(&r.diags, &n);
	mcb_diags_print(&d, f);
	fclose(f);
	mcb_diags_release(&d);
	mcb_arena_release(&a);
	return r;
}

static void done(struct result *r)
{
	free(r->json);
	free(r->diags);
}

static void test_defaults(void)
{
	struct result r = check("name: n1\n");

	CHECK_EQ(r.rc, 0);
	CHECK_STR(r.diags, "");
	CHECK_STR(r.json, "{\"any\":-5,\"color\":\"red\",\"colors\":[],\"count\":3,\"name\":\"n1\","
			  "\"on\":false,\"ratio\":0.5,\"tags\":[\"a\",\"b\"]}");
	done(&r);
	r = check(
		"{name: n.2_-x, label: 7, count: 10, any: -99999, ratio: 1, on: true, color: blue,"
		" tags: [x], colors: [green, red]}\n");
	CHECK_EQ(r.rc, 0);
	CHECK_STR(r.diags, "");
	CHECK_STR(r.json,
		  "{\"any\":-99999,\"color\":\"blue\",\"colors\":[\"green\",\"red\"],"
		  "\"count\":10,\"label\":\"7\",\"name\":\"n.2_-x\",\"on\":true,\"ratio\":1.0,"
		  "\"tags\":[\"x\"]}");
	done(&r);
}

static void test_errors(void)
{
	struct result r = check("count: 11\n"
				"ratio: 1.5\n"
				"on: yes\n"
				"color: grene\n"
				"colors: [red, purple, red, [x]]\n"
				"tags: x\n"
				"label: [a]\n"
				"cuont: 1\n"
				"zzz: 2\n"
				"any: 99999999999999999999\n");

	CHECK_EQ(r.rc, -1);
	CHECK(r.json == NULL);
	CHECK_STR(
		r.diags,
		"s.yaml:1:1: error: missing required key 'name' in thing 'x'\n"
		"s.yaml:1:8: error: 'count' must be between 1 and 10, not 11\n"
		"s.yaml:2:8: error: 'ratio' must be between 0 and 1, not 1.5\n"
		"s.yaml:3:5: error: 'on' must be true or false, not a string\n"
		"s.yaml:4:8: error: 'color' must be one of red, green, blue, not 'grene' "
		"(did you mean 'green'?)\n"
		"s.yaml:5:15: error: 'colors' entries must be one of red, green, blue, "
		"not 'purple'\n"
		"s.yaml:5:23: error: 'colors' lists 'red' twice\n"
		"s.yaml:5:28: error: 'colors' entries must be strings, not a list\n"
		"s.yaml:6:7: error: 'tags' must be a list, not a string\n"
		"s.yaml:7:8: error: 'label' must be a string, not a list\n"
		"s.yaml:8:1: error: unknown key 'cuont' in thing 'x' (did you mean 'count'?)\n"
		"s.yaml:9:1: error: unknown key 'zzz' in thing 'x'\n"
		"s.yaml:10:6: error: 'any' must fit in 64 bits, not 99999999999999999999\n");
	done(&r);
	r = check("name: 'a b'\ncount: x\nratio: [1]\nlabel: ~\n");
	CHECK_STR(
		r.diags,
		"s.yaml:1:7: error: 'name' must be a name (letters, digits, '.', '_' and '-', "
		"at most "
		"64 bytes), not 'a b'\n"
		"s.yaml:2:8: error: 'count' must be an integer, not a string\n"
		"s.yaml:3:8: error: 'ratio' must be a number, not a list\n"
		"s.yaml:4:8: error: 'label' must be a string, not null\n");
	done(&r);
	r = check("name: x\nratio: .nan\ncount: 2.0\n");
	CHECK_STR(r.diags, "s.yaml:2:8: error: 'ratio' must be a finite number, not .nan\n"
			   "s.yaml:3:8: error: 'count' must be an integer, not a number\n");
	done(&r);
}

static void test_not_a_mapping(void)
{
	struct mcb_diags d;
	json_t *out;
	struct result r = check("[1, 2]\n");

	CHECK_STR(r.diags, "s.yaml:1:1: error: thing 'x' must be a mapping, not a list\n");
	done(&r);
	/* NULL means all defaults; here a required key has no position to report at. */
	mcb_diags_init(&d);
	CHECK_EQ(mcb_schema_check(params, NPARAMS, NULL, "t", &out, &d), -1);
	CHECK_EQ(d.nerr, 1);
	CHECK_STR(d.v[0].msg, "missing required key 'name' in t");
	CHECK(d.v[0].loc.file == NULL);
	mcb_diags_release(&d);
	/* A null value is an empty mapping, and positions stay at the null. */
	r = check("~\n");
	CHECK_STR(r.diags, "s.yaml:1:1: error: missing required key 'name' in thing 'x'\n");
	done(&r);
}

static void test_names(void)
{
	char long65[66];

	CHECK(mcb_schema_name_ok("a100-80g"));
	CHECK(mcb_schema_name_ok("x.y_z"));
	CHECK(mcb_schema_name_ok("..."));
	CHECK(!mcb_schema_name_ok(""));
	CHECK(!mcb_schema_name_ok("."));
	CHECK(!mcb_schema_name_ok(".."));
	CHECK(!mcb_schema_name_ok("a/b"));
	CHECK(!mcb_schema_name_ok("a b"));
	CHECK(!mcb_schema_name_ok("{hw}"));
	CHECK(!mcb_schema_name_ok("caf\xc3\xa9"));
	memset(long65, 'a', 65);
	long65[65] = '\0';
	CHECK(!mcb_schema_name_ok(long65));
	long65[64] = '\0';
	CHECK(mcb_schema_name_ok(long65));
}

/* Every technique's defaults check, and the quantize rules. */
static void test_techniques(void)
{
	const struct mcb_technique *t;
	const char *const *names;
	struct mcb_diags d;
	struct mcb_buf b = MCB_BUF_INIT;
	json_t *p;
	size_t n, i, k;

	names = mcb_technique_names(&n);
	CHECK_EQ(n, 3);
	mcb_diags_init(&d);
	for (i = 0; i < n; i++) {
		t = mcb_technique_find(names[i]);
		CHECK(t && !strcmp(t->name, names[i]));
		CHECK_EQ(mcb_schema_check(t->params, t->nparams, NULL, t->name, &p, &d), 0);
		for (k = 0; k < t->nparams; k++)
			CHECK(t->params[k].doc && t->params[k].doc[0]);
		for (k = 0; k < t->noparams; k++)
			CHECK(t->oparams[k].doc && t->oparams[k].doc[0]);
		CHECK(t->validate(p) == NULL);
		json_decref(p);
	}
	CHECK_EQ(d.nerr, 0);
	CHECK(mcb_technique_find("quantise") == NULL);
	t = mcb_technique_find("quantize");
	CHECK_EQ(mcb_schema_check(t->params, t->nparams, NULL, "quantize", &p, &d), 0);
	mcb_json_canonical(p, &b);
	CHECK_STR(b.data,
		  "{\"act_order\":false,\"alpha\":0.5,\"bits\":8,\"blocksize\":128,\"clip\":true,"
		  "\"damp\":0.01,\"duo_scaling\":true,\"ggml_type\":\"auto\",\"granularity\":"
		  "\"auto\",\"group_size\":0,\"method\":\"rtn\",\"n_grid\":20,"
		  "\"static_groups\":false,\"symmetric\":\"auto\"}");
	CHECK_STR(t->capability(p), "int8");
	CHECK(!t->needs_calibration(p));
	CHECK(t->check_format(p, "gguf") == NULL);
	CHECK(t->check_format(p, "safetensors") == NULL);
	CHECK(t->check_format(p, "gptq") == NULL);
	CHECK_STR(t->check_format(p, "awq"),
		  "awq checkpoints hold 4-bit weights with zero points in groups");
	/* auto resolves per format: Q8_0 groups of 32 for gguf, channels else */
	{
		json_t *r = mcb_quantize_resolve(p, "gguf");

		CHECK_EQ(json_integer_value(json_object_get(r, "group_size")), 32);
		CHECK_STR(json_string_value(json_object_get(r, "ggml_type")), "q8_0");
		json_decref(r);
		r = mcb_quantize_resolve(p, "safetensors");
		CHECK_EQ(json_integer_value(json_object_get(r, "group_size")), 0);
		CHECK_STR(json_string_value(json_object_get(r, "ggml_type")), "none");
		CHECK(json_is_true(json_object_get(r, "symmetric")));
		json_decref(r);
	}
	json_object_set_new(p, "granularity", json_string("channel"));
	CHECK_STR(t->check_format(p, "gguf"),
		  "gguf stores 8-bit weights only as Q8_0 blocks of 32 (symmetric); "
		  "use granularity: group or auto");
	CHECK(t->check_format(p, "safetensors") == NULL);
	json_object_set_new(p, "granularity", json_string("group"));
	CHECK(t->check_format(p, "gguf") == NULL);
	CHECK(t->check_format(p, "safetensors") == NULL);
	json_object_set_new(p, "symmetric", json_string("false"));
	CHECK_STR(t->check_format(p, "safetensors"),
		  "the safetensors export holds symmetric 8-bit weights");
	/* 4-bit gptq: int4 capability, calibration, gptq/awq checkpoints */
	json_object_set_new(p, "method", json_string("gptq"));
	json_object_set_new(p, "bits", json_integer(4));
	json_object_set_new(p, "granularity", json_string("auto"));
	CHECK_STR(t->capability(p), "int4");
	CHECK(t->needs_calibration(p));
	CHECK(t->check_format(p, "gptq") == NULL);
	CHECK(t->check_format(p, "awq") == NULL);
	CHECK(t->check_format(p, "safetensors") != NULL);
	CHECK(t->check_format(p, "gguf") == NULL); /* auto: groups of 32, Q4_0 */
	/* gptq packs 2, 3 (32 codes per 3 words), 4 and 8 bits */
	json_object_set_new(p, "bits", json_integer(3));
	CHECK(t->check_format(p, "gptq") == NULL);
	json_object_set_new(p, "bits", json_integer(5));
	CHECK_STR(t->check_format(p, "gptq"), "gptq checkpoints pack 2, 3, 4 or 8 bits");
	json_object_set_new(p, "bits", json_integer(4));
	json_object_set_new(p, "group_size", json_integer(128));
	CHECK(t->check_format(p, "gguf") != NULL); /* no ggml type has groups of 128 */
	json_object_set_new(p, "group_size", json_integer(32));
	CHECK(t->check_format(p, "gguf") == NULL);
	json_object_set_new(p, "ggml_type", json_string("q4_k"));
	CHECK_STR(t->validate(p), "ggml_type names one of ggml's own round-to-nearest quantizers: "
				  "it needs method rtn");
	json_object_set_new(p, "method", json_string("awq"));
	json_object_set_new(p, "ggml_type", json_string("auto"));
	json_object_set_new(p, "symmetric", json_string("true"));
	CHECK_STR(t->validate(p), "awq quantizes with zero points: symmetric cannot be true");
	json_object_set_new(p, "method", json_string("fp8"));
	CHECK_STR(t->validate(p), "fp8 and smoothquant quantize to 8 bits");
	json_object_set_new(p, "bits", json_integer(8));
	CHECK_STR(t->capability(p), "fp8");
	json_decref(p);
	/* prune: 2:4 needs sparse tensor cores; magnitude needs no statistics */
	t = mcb_technique_find("prune");
	CHECK_EQ(mcb_schema_check(t->params, t->nparams, NULL, "prune", &p, &d), 0);
	CHECK(t->capability(p) == NULL);
	CHECK(t->needs_calibration(p));
	json_object_set_new(p, "pattern", json_string("2:4"));
	CHECK_STR(t->capability(p), "sparse24");
	json_object_set_new(p, "pattern", json_string("4:2"));
	CHECK(t->validate(p) != NULL);
	json_object_set_new(p, "pattern", json_string("2:4"));
	json_object_set_new(p, "method", json_string("heads"));
	CHECK_STR(t->validate(p), "structured pruning (heads, channels) takes no n:m pattern");
	json_object_set_new(p, "method", json_string("magnitude"));
	CHECK(!t->needs_calibration(p));
	json_decref(p);
	/* lowrank: a rank or an energy fraction */
	t = mcb_technique_find("lowrank");
	CHECK_EQ(mcb_schema_check(t->params, t->nparams, NULL, "lowrank", &p, &d), 0);
	CHECK(t->validate(p) == NULL); /* energy 0.9 */
	json_object_set_new(p, "energy", json_real(0));
	CHECK_STR(t->validate(p), "give a rank, or an energy fraction above 0");
	json_object_set_new(p, "rank", json_integer(8));
	CHECK(t->validate(p) == NULL);
	json_decref(p);
	for (i = 0; mcb_capabilities[i]; i++)
		;
	CHECK_EQ(i, 7);
	CHECK_STR(mcb_export_formats[0], "gguf");
	CHECK_STR(mcb_export_formats[1], "safetensors");
	CHECK_STR(mcb_export_formats[2], "gptq");
	CHECK_STR(mcb_export_formats[3], "awq");
	CHECK(mcb_export_formats[4] == NULL);
	mcb_buf_release(&b);
	mcb_diags_release(&d);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_errors);
	RUN(test_not_a_mapping);
	RUN(test_names);
	RUN(test_techniques);
	return mcbt_done();
}
