/*
 * Unit tests for the recipe front-end (recipe.c with yaml, schema,
 * technique and the built-in hardware profiles).
 *
 * Golden fixtures: each directory under tests/data/recipes/ is a workspace
 * (mcbuild.yaml plus whatever it includes), an optional `requests` file
 * (one target request per line, resolved after loading) and an `expected`
 * file: the diagnostics exactly as mcb_diags_print writes them, then one
 * "=> " line per resolved target.  MCB_REGEN=1 rewrites the expected files
 * instead of comparing.  Every diagnostic reported while loading must carry
 * file:line:col.
 *
 * The other tests build workspaces in a temporary directory and check the
 * struct mcb_target fields and the canonical resolved JSON.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/recipe.h"
#include "mcb/technique.h"

/* "dir/name", malloc'ed. */
static char *pathcat(const char *dir, const char *name)
{
	struct mcb_buf b = MCB_BUF_INIT;

	mcb_buf_printf(&b, "%s/%s", dir, name);
	return mcb_buf_detach(&b, NULL);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The diagnostics of d as mcb_diags_print writes them, appended to out. */
static void print_diags(const struct mcb_diags *d, struct mcb_buf *out)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);

	mcb_diags_print(d, f);
	fclose(f);
	mcb_buf_add(out, text, n);
	free(text);
}

static void print_target(const struct mcb_target *t, struct mcb_buf *out)
{
	mcb_buf_printf(out, "=> %s: model=%s hardware=%s", t->path, t->model->name, t->hw_name);
	if (strcmp(t->hw_name, t->hw->name))
		mcb_buf_printf(out, " (%s)", t->hw->name);
	mcb_buf_printf(out, " scheme=%s export=%s\n", t->scheme->name, t->export_format);
}

/* Load one fixture directory and return its output (caller frees). */
static char *run_fixture(const char *dir)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_buf out = MCB_BUF_INIT, reqs = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_target **ts = NULL;
	size_t nts = 0, i;
	char *path, *line, *save = NULL;

	mcb_diags_init(&d);
	mcb_workspace_load(&ws, dir, "", &d);
	for (i = 0; i < d.n; i++) {
		const struct mcb_loc *l = &d.v[i].loc;

		if (!l->file || l->line <= 0 || l->col <= 0)
			mcbt_fail(__FILE__, __LINE__, "%s: load diagnostic without a position: %s",
				  dir, d.v[i].msg);
	}
	path = pathcat(dir, "requests");
	if (mcb_os_read_file(path, 1 << 20, &reqs, &e) == 0) {
		for (line = strtok_r(reqs.data, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			mcb_workspace_resolve(&ws, line, &ts, &nts, &d);
	}
	print_diags(&d, &out);
	for (i = 0; i < nts; i++)
		print_target(ts[i], &out);
	free(path);
	mcb_buf_release(&reqs);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	return mcb_buf_detach(&out, NULL);
}

static void test_fixtures(void)
{
	char *rootdir = strdup(mcbt_data("recipes")), *dir, *exp_path;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	int regen = getenv("MCB_REGEN") && !strcmp(getenv("MCB_REGEN"), "1");
	DIR *dp;

	dp = opendir(rootdir);
	if (!dp) {
		mcbt_fail(__FILE__, __LINE__, "cannot open %s", rootdir);
		free(rootdir);
		return;
	}
	while ((de = readdir(dp))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(dp);
	qsort(names, n, sizeof(*names), name_cmp);
	CHECK(n >= 30);
	for (i = 0; i < n; i++) {
		struct mcb_buf want = MCB_BUF_INIT;
		struct mcb_errctx e;
		char *got;

		dir = pathcat(rootdir, names[i]);
		exp_path = pathcat(dir, "expected");
		got = run_fixture(dir);
		if (regen) {
			mcbt_write(exp_path, got, strlen(got));
		} else if (mcb_os_read_file(exp_path, 1 << 20, &want, &e) != 0) {
			mcbt_fail(__FILE__, __LINE__, "%s: %s", names[i], e.msg);
		} else if (strcmp(mcb_buf_str(&want), got)) {
			mcbt_fail(__FILE__, __LINE__,
				  "fixture %s differs.\n--- expected\n%s--- got\n%s", names[i],
				  mcb_buf_str(&want), got);
		}
		mcb_buf_release(&want);
		free(got);
		free(dir);
		free(exp_path);
		free(names[i]);
	}
	free(names);
	free(rootdir);
}

/* ---- workspaces written by the tests ---------------------------------- */

static void wr(const char *path, const char *text)
{
	mcbt_write(path, text, strlen(text));
}

static const char *write_ws(const char *yaml)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, MCB_RECIPE_FILE);
	wr(path, yaml);
	return dir;
}

static char *canon(const json_t *v)
{
	struct mcb_buf b = MCB_BUF_INIT;

	mcb_json_canonical(v, &b);
	return mcb_buf_detach(&b, NULL);
}

static const char *diag_text(const struct mcb_diags *d)
{
	static struct mcb_buf b;

	mcb_buf_release(&b);
	print_diags(d, &b);
	return mcb_buf_str(&b);
}

static void test_builtins(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	const struct mcb_hw *hw;
	const char *dir = write_ws("# nothing\n");
	static const char *const names[] = {"a100-40g", "a100-80g", "h100-80g", "l4", "rtx4090",
					    "cpu-avx2", "cpu-avx512", "arm64-neon"};
	size_t i;

	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), 0);
	CHECK_EQ(d.n, 0);
	if (d.n)
		fprintf(stderr, "%s", diag_text(&d));
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		hw = mcb_workspace_hw(&ws, names[i]);
		CHECK(hw != NULL);
		if (!hw)
			continue;
		CHECK(hw->builtin);
		CHECK(hw->alias == NULL);
		CHECK(hw->memory_gb > 0);
		CHECK(hw->bandwidth_gbs > 0);
		CHECK(hw->nformats >= 1);
		CHECK(hw->nsupports >= 4);
		CHECK(hw->description && hw->kind);
		CHECK(json_is_object(json_object_get(hw->json, "peak_tflops")));
		CHECK_STR(json_string_value(json_object_get(hw->json, "name")), names[i]);
		CHECK_STR(hw->formats[0], !strcmp(hw->kind, "gpu") ? "safetensors" : "gguf");
	}
	hw = mcb_workspace_hw(&ws, "a100");
	CHECK(hw && hw->alias == mcb_workspace_hw(&ws, "a100-80g"));
	hw = mcb_workspace_hw(&ws, "h100");
	CHECK(hw && hw->alias == mcb_workspace_hw(&ws, "h100-80g"));
	hw = mcb_workspace_hw(&ws, "4090");
	CHECK(hw && hw->alias == mcb_workspace_hw(&ws, "rtx4090"));
	/* a100-80g is based on a100-40g: inherits the peaks, overrides memory. */
	hw = mcb_workspace_hw(&ws, "a100-80g");
	CHECK(hw && hw->memory_gb == 80 && hw->bandwidth_gbs == 2039);
	CHECK(hw && json_real_value(json_object_get(json_object_get(hw->json, "peak_tflops"),
						   "int8")) == 624);
	/* fp8 only on Hopper and Ada. */
	for (i = 0; i < ws.nhw; i++) {
		const struct mcb_hw *h = &ws.hw[i];
		int fp8 = 0;
		size_t k;

		for (k = 0; k < h->nsupports; k++)
			fp8 |= !strcmp(h->supports[k], "fp8");
		CHECK_EQ(fp8, !strncmp(h->name, "h100", 4) || !strcmp(h->name, "l4") ||
			 !strcmp(h->name, "rtx4090") || !strcmp(h->name, "4090"));
	}
	CHECK_EQ(ws.ndeclared, 0);
	CHECK_EQ(ws.nfiles, 1);
	CHECK_STR(ws.files[0], "mcbuild.yaml");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static const char *const base_yaml =
	"models:\n"
	"  stories: {path: models/stories260K.bin}\n"
	"schemes:\n"
	"  int8: [{quantize: {method: rtn, bits: 8}}]\n"
	"  int8g:\n"
	"    - quantize: {granularity: group}\n"
	"targets:\n"
	"  \"targets/{hw}-{scheme}\":\n"
	"    model: stories\n"
	"    hardware: \"{hw}\"\n"
	"    stack: \"{scheme}\"\n";

static void test_split_cpu(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_target **ts = NULL;
	size_t n = 0;
	char *s;

	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, write_ws(base_yaml), "", &d), 0);
	CHECK_EQ(mcb_workspace_resolve(&ws, "targets/cpu-avx2-int8", &ts, &n, &d), 0);
	CHECK_EQ(n, 1);
	if (n == 1) {
		CHECK_STR(ts[0]->path, "targets/cpu-avx2-int8");
		CHECK_STR(ts[0]->hw_name, "cpu-avx2");
		CHECK_STR(ts[0]->hw->name, "cpu-avx2");
		CHECK_STR(ts[0]->scheme->name, "int8");
		CHECK_STR(ts[0]->model->name, "stories");
		CHECK_STR(ts[0]->export_format, "gguf");
		CHECK(ts[0]->rule == &ws.rules[0]);
		s = canon(json_object_get(ts[0]->resolved, "stack"));
		CHECK_STR(s,
			  "[{\"quantize\":{\"act_order\":false,\"alpha\":0.5,\"bits\":8,"
			  "\"blocksize\":128,\"clip\":true,\"damp\":0.01,\"duo_scaling\":true,"
			  "\"ggml_type\":\"auto\",\"granularity\":\"auto\",\"group_size\":0,"
			  "\"method\":\"rtn\",\"n_grid\":20,\"overrides\":{},"
			  "\"static_groups\":false,\"symmetric\":\"auto\"}}]");
		free(s);
	}
	/* The same request again yields the same target, once. */
	CHECK_EQ(mcb_workspace_resolve(&ws, "targets/cpu-avx2-int8/", &ts, &n, &d), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(d.n, 0);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static void test_alias_a100(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_target **ts = NULL;
	size_t n = 0;
	char *s;
	json_t *want, *want_hw;
	const char *dir = write_ws(base_yaml);

	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), 0);
	CHECK_EQ(mcb_workspace_resolve(&ws, "targets/a100-int8", &ts, &n, &d), 0);
	CHECK_EQ(n, 1);
	if (n == 1) {
		const struct mcb_target *t = ts[0];

		CHECK_STR(t->hw_name, "a100");
		CHECK_STR(t->hw->name, "a100-80g");
		CHECK(t->hw == mcb_workspace_hw(&ws, "a100-80g"));
		CHECK_STR(t->export_format, "safetensors");
		CHECK(t->model->path[0] == '/');
		CHECK(strstr(t->model->path, "/models/stories260K.bin") != NULL);
		CHECK(t->model->config == NULL);
		CHECK_STR(t->model->format, "auto");
		/* Compared as JSON values, not text: the encoding of reals is json.c's business. */
		want_hw = json_loads("{\"bandwidth_gbs\": 2039.0, \"description\": \"NVIDIA A100 80GB "
				     "SXM4 (Ampere)\", \"formats\": [\"safetensors\", \"gptq\", \"awq\"], "
				     "\"kind\": \"gpu\", "
				     "\"memory_gb\": 80.0, \"name\": \"a100-80g\", \"peak_tflops\": "
				     "{\"bf16\": 312.0, \"fp16\": 312.0, \"fp32\": 19.5, \"int4\": 1248.0, "
				     "\"int8\": 624.0, \"tf32\": 156.0}, \"supports\": [\"fp32\", "
				     "\"fp16\", \"bf16\", \"int8\", \"int4\", \"sparse24\"], "
				     "\"vendor\": \"nvidia\"}", 0, NULL);
		CHECK(want_hw != NULL);
		CHECK(json_equal(t->hw->json, want_hw));
		want = json_pack("{s:s, s:O, s:{s:s, s:s, s:s}, s:[{s:o}], "
				 "s:{s:i, s:i, s:i, s:i, s:i}}",
				 "export", "safetensors", "hardware", want_hw, "model", "format", "auto",
				 "name", "stories", "path", "models/stories260K.bin", "stack", "quantize",
				 json_loads("{\"act_order\":false,\"alpha\":0.5,\"bits\":8,"
					    "\"blocksize\":128,\"clip\":true,\"damp\":0.01,"
					    "\"duo_scaling\":true,\"ggml_type\":\"auto\","
					    "\"granularity\":\"auto\",\"group_size\":0,\"method\":\"rtn\","
					    "\"n_grid\":20,\"overrides\":{},\"static_groups\":false,"
					    "\"symmetric\":\"auto\"}", 0, NULL),
				 "performance", "batch", 1, "context", 0, "decode_tokens", 32,
				 "prompt_tokens", 64, "repeats", 5);
		CHECK(want != NULL);
		CHECK(json_equal(t->resolved, want));
		if (!json_equal(t->resolved, want)) {
			s = canon(t->resolved);
			fprintf(stderr, "resolved: %s\n", s);
			free(s);
		}
		json_decref(want);
		json_decref(want_hw);
	}
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static void test_override(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_target **ts = NULL;
	size_t n = 0;
	const struct mcb_hw *hw;
	const char *dir = write_ws(
		"models:\n"
		"  m: {path: /abs/model.gguf, format: gguf}\n"
		"schemes:\n"
		"  int8: [{quantize: {}}]\n"
		"hardware:\n"
		"  a100-80g: {base: a100-80g, memory_gb: 81}\n"   /* extends the built-in */
		"  l4:\n"                                         /* replaces the built-in */
		"    kind: npu\n"
		"    memory_gb: 8\n"
		"    bandwidth_gbs: 100\n"
		"    supports: [int8]\n"
		"    formats: [gguf, safetensors]\n"
		"  mybox: {base: a100, formats: [gguf, safetensors]}\n"
		"targets:\n"
		"  out/big: {model: m, hardware: a100, stack: int8}\n"
		"  out/l4: {model: m, hardware: l4, stack: int8}\n"
		"  out/box: {model: m, hardware: mybox, stack: int8, export: safetensors}\n");

	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), 0);
	if (d.n)
		fprintf(stderr, "%s", diag_text(&d));
	hw = mcb_workspace_hw(&ws, "a100-80g");
	CHECK(hw && !hw->builtin && hw->memory_gb == 81 && hw->bandwidth_gbs == 2039);
	hw = mcb_workspace_hw(&ws, "l4");
	CHECK(hw && !hw->builtin && hw->memory_gb == 8 && !strcmp(hw->kind, "npu"));
	CHECK(hw && hw->description == NULL && hw->nformats == 2);
	CHECK(hw && json_object_get(hw->json, "peak_tflops") == NULL);
	CHECK_EQ(ws.ndeclared, 3);
	CHECK_EQ(mcb_workspace_resolve(&ws, "out/big", &ts, &n, &d), 0);
	CHECK_EQ(mcb_workspace_resolve(&ws, "out/l4", &ts, &n, &d), 0);
	CHECK_EQ(mcb_workspace_resolve(&ws, "out/box", &ts, &n, &d), 0);
	CHECK_EQ(n, 3);
	if (n == 3) {
		CHECK(ts[0]->hw == mcb_workspace_hw(&ws, "a100-80g"));
		CHECK(ts[0]->hw->memory_gb == 81);
		CHECK_STR(ts[1]->export_format, "gguf");
		CHECK_STR(ts[2]->hw->name, "mybox");
		CHECK(ts[2]->hw->memory_gb == 81);
		CHECK_STR(ts[2]->export_format, "safetensors");
		CHECK_STR(ts[0]->model->path, "/abs/model.gguf");
	}
	/* ws.defaults: every declared target, sorted. */
	CHECK_EQ(ws.ndefaults, 3);
	if (ws.ndefaults == 3) {
		CHECK_STR(ws.defaults[0], "out/big");
		CHECK_STR(ws.defaults[1], "out/box");
		CHECK_STR(ws.defaults[2], "out/l4");
	}
	CHECK_EQ(d.n, 0);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static void test_prefix(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_target **ts = NULL;
	size_t n = 0;
	char yaml[2048];
	const char *dir;

	snprintf(yaml, sizeof(yaml), "%s    matrix: {hw: [l4, cpu-avx2], scheme: [int8, int8g]}\n"
		 "  other/x: {model: stories, hardware: h100, stack: int8}\n"
		 "default: [targets/, other/x]\n", base_yaml);
	dir = write_ws(yaml);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), 0);
	if (d.n)
		fprintf(stderr, "%s", diag_text(&d));
	CHECK_EQ(ws.ndeclared, 5);
	CHECK_EQ(ws.ndefaults, 2);
	CHECK_EQ(mcb_workspace_resolve(&ws, "targets/", &ts, &n, &d), 0);
	CHECK_EQ(n, 4);
	if (n == 4) {
		CHECK_STR(ts[0]->path, "targets/cpu-avx2-int8");
		CHECK_STR(ts[1]->path, "targets/cpu-avx2-int8g");
		CHECK_STR(ts[2]->path, "targets/l4-int8");
		CHECK_STR(ts[3]->path, "targets/l4-int8g");
	}
	/* "targets" (no slash) names the same directory; nothing is added twice. */
	CHECK_EQ(mcb_workspace_resolve(&ws, "targets", &ts, &n, &d), 0);
	CHECK_EQ(n, 4);
	/* An absolute path inside the workspace is accepted. */
	{
		char abs[4096];

		snprintf(abs, sizeof(abs), "%s/other/x", ws.root);
		CHECK_EQ(mcb_workspace_resolve(&ws, abs, &ts, &n, &d), 0);
		CHECK_EQ(n, 5);
	}
	/* "." is every declared target. */
	n = 0;
	CHECK_EQ(mcb_workspace_resolve(&ws, ".", &ts, &n, &d), 0);
	CHECK_EQ(n, 5);
	/* Not declared under it: no rule. */
	CHECK_EQ(mcb_workspace_resolve(&ws, "nothing/", &ts, &n, &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild: error: no rule to make target 'nothing/'\n");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static void test_find(void)
{
	struct mcb_arena a;
	char *root = NULL;
	char sub[4096], f[4096];
	const char *dir = mcbt_tmpdir();
	struct mcb_errctx e;

	mcb_arena_init(&a);
	snprintf(sub, sizeof(sub), "%s/a/b/c", dir);
	CHECK_OK(mcb_os_mkdirs(sub, &e), &e);
	snprintf(f, sizeof(f), "%s/a/%s", dir, MCB_RECIPE_FILE);
	mcbt_write(f, "{}\n", 3);
	CHECK_EQ(mcb_workspace_find(&a, sub, &root), 0);
	snprintf(f, sizeof(f), "%s/a", dir);
	CHECK_STR(root, f);
	CHECK_EQ(mcb_workspace_find(&a, f, &root), 0);
	CHECK_STR(root, f);
	CHECK_EQ(mcb_workspace_find(&a, "/nonexistent/dir", &root), MCB_ENOENT);
	mcb_arena_release(&a);
}

static void test_model_paths(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_errctx e;

	snprintf(path, sizeof(path), "%s/sub", dir);
	CHECK_OK(mcb_os_mkdirs(path, &e), &e);
	snprintf(path, sizeof(path), "%s/%s", dir, MCB_RECIPE_FILE);
	wr(path, "include: [sub/more.yaml]\ncache: {dir: ../cache}\n");
	snprintf(path, sizeof(path), "%s/sub/more.yaml", dir);
	wr(path, "models:\n  st: {path: ../../m/model.safetensors}\n"
	   "  hf: {path: w.bin, format: safetensors, config: ./cfg/c.json}\n"
	   "datasets:\n  cal: {path: d/cal.txt, kind: text}\n");
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "ws", &d), 0);
	if (d.n)
		fprintf(stderr, "%s", diag_text(&d));
	CHECK_EQ(ws.nfiles, 2);
	if (ws.nfiles == 2) {
		CHECK_STR(ws.files[0], "ws/mcbuild.yaml");
		CHECK_STR(ws.files[1], "ws/sub/more.yaml");
	}
	CHECK_EQ(ws.nmodels, 2);
	if (ws.nmodels == 2) {
		char want[4096], *up = strdup(ws.root);

		*strrchr(up, '/') = '\0';
		CHECK_STR(ws.models[0].name, "hf");
		snprintf(want, sizeof(want), "%s/sub/w.bin", ws.root);
		CHECK_STR(ws.models[0].path, want);
		snprintf(want, sizeof(want), "%s/sub/cfg/c.json", ws.root);
		CHECK_STR(ws.models[0].config, want);
		CHECK_STR(ws.models[1].name, "st");
		snprintf(want, sizeof(want), "%s/m/model.safetensors", up);
		CHECK_STR(ws.models[1].path, want);
		snprintf(want, sizeof(want), "%s/m/config.json", up);
		CHECK_STR(ws.models[1].config, want);
		CHECK_STR(ws.models[1].format, "auto");
		snprintf(want, sizeof(want), "%s/cache", up);
		CHECK_STR(ws.cache_dir, want);
		free(up);
	}
	CHECK_EQ(ws.ndatasets, 1);
	if (ws.ndatasets == 1) {
		CHECK_STR(ws.datasets[0].kind, "text");
		CHECK(strstr(ws.datasets[0].path, "/sub/d/cal.txt") != NULL);
	}
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
}

static void test_include_limit(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	const char *dir = mcbt_tmpdir();
	struct mcb_buf path = MCB_BUF_INIT, text = MCB_BUF_INIT;
	int i;

	/* A chain of 70 files: the 65th include is refused, once. */
	for (i = 0; i < 70; i++) {
		mcb_buf_reset(&path);
		mcb_buf_reset(&text);
		if (i == 0)
			mcb_buf_printf(&path, "%s/%s", dir, MCB_RECIPE_FILE);
		else
			mcb_buf_printf(&path, "%s/f%d.yaml", dir, i);
		mcb_buf_printf(&text, "include: [f%d.yaml]\n", i + 1);
		wr(path.data, text.data);
	}
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "f63.yaml:1:11: error: more than 64 recipe files (include of "
				 "'f64.yaml' and beyond ignored)\n");
	CHECK_EQ(ws.nfiles, 64);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	mcb_buf_release(&path);
	mcb_buf_release(&text);
}

static void test_include_symlink(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	const char *tmp = mcbt_tmpdir();
	struct mcb_buf p = MCB_BUF_INIT, q = MCB_BUF_INIT;
	struct mcb_errctx e;

	mcb_buf_printf(&p, "%s/ws", tmp);
	CHECK_OK(mcb_os_mkdirs(p.data, &e), &e);
	mcb_buf_printf(&q, "%s/outside.yaml", tmp);
	wr(q.data, "models: {m: {path: x}}\n");
	mcb_buf_reset(&p);
	mcb_buf_printf(&p, "%s/ws/link.yaml", tmp);
	CHECK_EQ(symlink(q.data, p.data), 0);
	mcb_buf_reset(&p);
	mcb_buf_printf(&p, "%s/ws/%s", tmp, MCB_RECIPE_FILE);
	wr(p.data, "include: [link.yaml]\n");
	mcb_buf_reset(&p);
	mcb_buf_printf(&p, "%s/ws", tmp);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, p.data, "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild.yaml:1:11: error: include 'link.yaml' leads outside the "
				 "workspace (through a symbolic link)\n");
	CHECK_EQ(ws.nmodels, 0);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	mcb_buf_release(&p);
	mcb_buf_release(&q);
}

static void test_matrix_limit(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_buf y = MCB_BUF_INIT;
	int i;

	mcb_buf_adds(&y, "models: {m: {path: m.bin}}\nhardware:\n");
	for (i = 0; i < 101; i++)
		mcb_buf_printf(&y, "  h%d: {base: l4}\n", i);
	mcb_buf_adds(&y, "schemes:\n");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "  s%d: []\n", i);
	mcb_buf_adds(&y, "targets:\n  \"t/{hw}/{s}\":\n    model: m\n    hardware: \"{hw}\"\n"
		     "    stack: \"{s}\"\n    matrix:\n      hw: [");
	for (i = 0; i < 101; i++)
		mcb_buf_printf(&y, "%sh%d", i ? ", " : "", i);
	mcb_buf_adds(&y, "]\n      s: [");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "%ss%d", i ? ", " : "", i);
	mcb_buf_adds(&y, "]\n");
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, write_ws(y.data), "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild.yaml:211:7: error: matrix of 't/{hw}/{s}' declares more "
				 "than 10000 targets\n");
	CHECK_EQ(ws.ndeclared, 0);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	/* 100 x 100 is fine; an empty scheme exports the hardware's format as is. */
	mcb_buf_reset(&y);
	mcb_buf_adds(&y, "models: {m: {path: m.bin}}\nhardware:\n");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "  h%d: {base: %s}\n", i, i % 2 ? "l4" : "cpu-avx2");
	mcb_buf_adds(&y, "schemes:\n");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "  s%d: []\n", i);
	mcb_buf_adds(&y, "targets:\n  \"t/{hw}/{s}\":\n    model: m\n    hardware: \"{hw}\"\n"
		     "    stack: \"{s}\"\n    matrix:\n      hw: [");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "%sh%d", i ? ", " : "", i);
	mcb_buf_adds(&y, "]\n      s: [");
	for (i = 0; i < 100; i++)
		mcb_buf_printf(&y, "%ss%d", i ? ", " : "", i);
	mcb_buf_adds(&y, "]\n");
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, write_ws(y.data), "", &d), 0);
	CHECK_EQ(ws.ndeclared, 10000);
	CHECK_STR(ws.declared[0]->path, "t/h0/s0");
	CHECK_STR(ws.declared[0]->export_format, "gguf");
	CHECK_EQ(ws.declared[0]->scheme->nstack, 0);
	CHECK_STR(ws.declared[9999]->path, "t/h99/s99");
	CHECK_STR(ws.declared[9999]->export_format, "safetensors");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	mcb_buf_release(&y);
}

static void test_limits(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_buf y = MCB_BUF_INIT;
	const char *dir;
	int i;

	/* Pattern rules: every request is matched against each, so they are capped. */
	mcb_buf_adds(&y, "models: {m: {path: m.bin}}\nschemes: {s: []}\ntargets:\n");
	for (i = 0; i < 1001; i++)
		mcb_buf_printf(&y, "  \"t%d/{hw}\": {model: m, hardware: \"{hw}\", stack: s}\n", i);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, write_ws(y.data), "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild.yaml:1004:3: error: more than 1000 pattern rules\n");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	/* A recipe file larger than 4 MiB is refused before parsing. */
	mcb_buf_reset(&y);
	mcb_buf_adds(&y, "# ");
	while (y.len <= MCB_RECIPE_MAX_BYTES)
		mcb_buf_adds(&y, "padding padding padding padding padding padding padding padding\n# ");
	dir = write_ws(y.data);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild.yaml: error: 'mcbuild.yaml' is larger than 4194304 bytes\n");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	mcb_buf_release(&y);
}

static void test_no_workspace(void)
{
	struct mcb_workspace ws;
	struct mcb_diags d;
	const char *dir = mcbt_tmpdir();
	struct mcb_buf want = MCB_BUF_INIT;
	char *real = realpath(dir, NULL);

	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, dir, "", &d), MCB_ERECIPE);
	mcb_buf_printf(&want, "mcbuild: error: no mcbuild.yaml in '%s'\n", real);
	CHECK_STR(diag_text(&d), want.data);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	mcb_diags_init(&d);
	CHECK_EQ(mcb_workspace_load(&ws, "/nonexistent/ws", "", &d), MCB_ERECIPE);
	CHECK_STR(diag_text(&d), "mcbuild: error: cannot open workspace '/nonexistent/ws': No such "
				 "file or directory\n");
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	free(real);
	mcb_buf_release(&want);
}

int main(void)
{
	RUN(test_fixtures);
	RUN(test_builtins);
	RUN(test_split_cpu);
	RUN(test_alias_a100);
	RUN(test_override);
	RUN(test_prefix);
	RUN(test_find);
	RUN(test_model_paths);
	RUN(test_include_limit);
	RUN(test_include_symlink);
	RUN(test_matrix_limit);
	RUN(test_limits);
	RUN(test_no_workspace);
	return mcbt_done();
}
