/* Lowering targets to the step DAG: sharing, order, labels, dot output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/buf.h"
#include "mcb/explain.h"
#include "mcb/os.h"
#include "mcb/plan.h"
#include "mcb/recipe.h"
#include "mcb/step.h"

struct fixture {
	struct mcb_workspace ws;
	struct mcb_diags d;
	struct mcb_arena a;
	struct mcb_target **t;
	size_t nt;
	struct mcb_plan p;
};

/* The fixture workspace copied into a fresh directory with its models: the
 * planner reads a model's config (layers) from the file.  m has 2 layers,
 * hf 3 (tied embeddings). */
static const char *fixture_root(const char *yaml)
{
	static char root[4096];
	const char *dir = mcbt_tmpdir();
	char path[4200];
	FILE *in, *out;
	int c;

	snprintf(root, sizeof(root), "%s", dir);
	snprintf(path, sizeof(path), "%s/mcbuild.yaml", root);
	in = fopen(yaml ? yaml : mcbt_data("plan/mcbuild.yaml"), "r");
	out = fopen(path, "w");
	if (!in || !out) {
		mcbt_fail(__FILE__, __LINE__, "cannot copy the fixture to %s", path);
		exit(2);
	}
	while ((c = fgetc(in)) != EOF)
		fputc(c, out);
	fclose(in);
	fclose(out);
	snprintf(path, sizeof(path), "%s/m.bin", root);
	mcbt_write_llama2c(path, 64, 96, 2, 4, 2, 300, 32);
	snprintf(path, sizeof(path), "%s/hf", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/hf/config.json", root);
	{
		static const char cfg[] =
			"{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
			"\"intermediate_size\": 128, \"num_hidden_layers\": 3, "
			"\"num_attention_heads\": 4, \"num_key_value_heads\": 4, "
			"\"vocab_size\": 300, \"max_position_embeddings\": 64, "
			"\"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true}";

		mcbt_write(path, cfg, sizeof(cfg) - 1);
	}
	return root;
}

static int load_yaml(struct fixture *f, const char *yaml, const char *const *requests, size_t n)
{
	const char *root = fixture_root(yaml);
	size_t i;
	int rc = 0;

	memset(f, 0, sizeof(*f));
	mcb_diags_init(&f->d);
	mcb_arena_init(&f->a);
	rc = mcb_workspace_load(&f->ws, root, "", &f->d);
	for (i = 0; !rc && i < n; i++)
		rc = mcb_workspace_resolve(&f->ws, requests[i], &f->t, &f->nt, &f->d);
	if (rc || f->d.nerr) {
		mcb_diags_print(&f->d, stderr);
		mcbt_fail(__FILE__, __LINE__, "fixture does not load");
		return -1;
	}
	if (mcb_plan_build(&f->p, &f->a, f->t, f->nt, &f->d)) {
		mcb_diags_print(&f->d, stderr);
		mcbt_fail(__FILE__, __LINE__, "the fixture does not plan");
		return -1;
	}
	return 0;
}

static int load(struct fixture *f, const char *const *requests, size_t n)
{
	return load_yaml(f, NULL, requests, n);
}

static void release(struct fixture *f)
{
	mcb_plan_release(&f->p);
	mcb_workspace_release(&f->ws);
	mcb_diags_release(&f->d);
	mcb_arena_release(&f->a);
}

static size_t count_kind(const struct mcb_plan *p, const char *kind)
{
	size_t i, n = 0;

	for (i = 0; i < p->nsteps; i++)
		n += !strcmp(p->steps[i]->kind->name, kind);
	return n;
}

/* Two CPU targets share import, quantize, export and the measurement; only
 * reports and bundles differ. */
static void test_sharing(void)
{
	static const char *const req[] = {"targets/cpu-avx2-int8", "targets/cpu-avx512-int8"};
	struct fixture f;

	if (load(&f, req, 2))
		return;
	/* import, quantize blk.0, blk.1, globals, assemble, export, measure,
	 * 2 reports, 2 bundles */
	CHECK_EQ(f.p.nsteps, 11);
	CHECK_EQ(count_kind(&f.p, "import"), 1);
	CHECK_EQ(count_kind(&f.p, "quantize"), 3);
	CHECK_EQ(count_kind(&f.p, "assemble"), 1);
	CHECK_EQ(count_kind(&f.p, "export"), 1);
	CHECK_EQ(count_kind(&f.p, "measure"), 1);
	CHECK_EQ(count_kind(&f.p, "report"), 2);
	CHECK_EQ(count_kind(&f.p, "bundle"), 2);
	CHECK(f.p.targets[0].exp == f.p.targets[1].exp);
	CHECK(f.p.targets[0].bundle != f.p.targets[1].bundle);
	CHECK(f.p.targets[0].report != f.p.targets[1].report);
	/* the manifest lists every step the bundle depends on */
	CHECK_EQ(f.p.targets[0].bundle->nchain, 8);
	CHECK_STR(f.p.targets[0].bundle->chain[0]->kind->name, "import");
	CHECK_STR(f.p.targets[0].bundle->chain[7]->kind->name, "report");
	/* the import feeds the three quantize steps, the assembly and the measure step (its
	 * parameter count) */
	CHECK_EQ(f.p.steps[0]->nusers, 5);
	release(&f);
}

/* The labels of target path's bundle chain, one per line, into out. */
static void chain_labels(const struct fixture *f, const char *path, char *out, size_t n)
{
	size_t i, j, len = 0;

	out[0] = '\0';
	for (i = 0; i < f->p.ntargets; i++) {
		const struct mcb_plan_step *b = f->p.targets[i].bundle;

		if (strcmp(f->p.targets[i].target->path, path))
			continue;
		for (j = 0; j < b->nchain && len + 1 < n; j++)
			len += (size_t)snprintf(out + len, n - len, "%s\n", b->chain[j]->label);
	}
}

/* A bundle's chain (the manifest's steps, part of its key) does not depend
 * on the other targets planned beside it, or before it. */
static void test_chain_independent_of_others(void)
{
	static const char *const alone[] = {"q/gpu"};
	static const char *const with[] = {"targets/cpu-avx2-int8", "q/cpu", "targets/a100-int8",
					   "q/gpu"};
	static char a[16384], b[16384];
	struct fixture f;

	if (load(&f, alone, 1))
		return;
	chain_labels(&f, "q/gpu", a, sizeof(a));
	release(&f);
	if (load(&f, with, 4))
		return;
	chain_labels(&f, "q/gpu", b, sizeof(b));
	release(&f);
	CHECK(a[0] != '\0');
	CHECK_STR(a, b);
}

/* Equal stacks under different scheme names are one step; the format decides
 * the quantization's granularity, so GPU and CPU quantize differently. */
static void test_formats_and_aliases(void)
{
	static const char *const req[] = {"targets/"};
	struct fixture f;
	size_t i, channel = 0, group = 0;

	if (load(&f, req, 1))
		return;
	CHECK_EQ(f.nt, 10);
	CHECK_EQ(count_kind(&f.p, "import"), 2);
	for (i = 0; i < f.p.nsteps; i++) {
		const struct mcb_plan_step *s = f.p.steps[i];
		const json_t *g;

		if (strcmp(s->kind->name, "quantize") || mcb_param_int(s->params, "layer", -1) != 0)
			continue;
		g = json_object_get(json_object_get(s->params, "tensors"), "blk.0.attn_q.weight");
		channel += mcb_param_int(g, "group_size", -1) == 0;
		group += mcb_param_int(g, "group_size", -1) == 32;
		CHECK_STR(mcb_param_str(g, "ggml_type", ""),
			  mcb_param_int(g, "group_size", -1) ? "q8_0" : "none");
	}
	/* m: group (gguf), channel (safetensors, shared by int8/int8-again/int8c);
	 * hf: channel */
	CHECK_EQ(group, 1);
	CHECK_EQ(channel, 2);
	CHECK_EQ(count_kind(&f.p, "bundle"), 10);
	/* a step interned from several chains remembers the other labels */
	for (i = 0; i < f.p.nsteps; i++)
		if (!strcmp(f.p.steps[i]->kind->name, "export") &&
		    !strcmp(mcb_param_str(f.p.steps[i]->params, "format", ""), "gguf"))
			CHECK(f.p.steps[i]->naliases >= 1);
	/* producers come before their users */
	for (i = 0; i < f.p.nsteps; i++) {
		size_t j;

		CHECK_EQ(f.p.steps[i]->id, i);
		for (j = 0; j < f.p.steps[i]->ndeps; j++)
			if (f.p.steps[i]->deps[j].from)
				CHECK(f.p.steps[i]->deps[j].from->id < i);
	}
	release(&f);
}

/* A safetensors model imports with its config.json beside it. */
static void test_hf_import_inputs(void)
{
	static const char *const req[] = {"targets/hf-l4"};
	struct fixture f;
	const struct mcb_plan_step *imp;

	if (load(&f, req, 1))
		return;
	imp = f.p.steps[0];
	CHECK_STR(imp->kind->name, "import");
	CHECK_EQ(imp->ndeps, 2);
	CHECK_STR(imp->deps[0].slot, "config");
	CHECK(strstr(imp->deps[0].source, "/hf/config.json") != NULL);
	CHECK_STR(imp->deps[1].slot, "source");
	release(&f);
}

/* Quality gates: one sample step per sampled dataset, one baseline
 * evaluation per (model, dataset, window) shared by every target, one
 * evaluation of each compressed model; the report reads them all. */
static void test_quality_lowering(void)
{
	static const char *const req[] = {"q/cpu", "q/gpu"};
	struct fixture f;
	size_t i, base = 0, comp = 0;
	const struct mcb_plan_step *rep;

	if (load(&f, req, 2))
		return;
	CHECK_EQ(count_kind(&f.p, "sample"), 1);
	for (i = 0; i < f.p.nsteps; i++) {
		const struct mcb_plan_step *s = f.p.steps[i];

		if (strcmp(s->kind->name, "evaluate"))
			continue;
		if (!strcmp(mcb_param_str(s->params, "role", ""), "baseline"))
			base++;
		else
			comp++;
	}
	CHECK_EQ(base, 2);
	CHECK_EQ(comp, 4);
	rep = f.p.targets[0].report;
	CHECK_EQ(rep->ndeps, 2 * 2 + 1 + 1); /* base/comp x 2, measure, model.gguf */
	CHECK_STR(rep->deps[0].slot, "base.0.json");
	CHECK_STR(rep->deps[4].slot, "file:model.gguf");
	CHECK_STR(rep->deps[5].slot, "measure.json");
	/* GGUF targets are evaluated as llama.cpp computes, GPU ones exactly */
	for (i = 0; i < rep->ndeps; i++)
		if (!strcmp(rep->deps[i].slot, "comp.0.json"))
			CHECK_STR(mcb_param_str(rep->deps[i].from->params, "mode", ""), "ggml");
	for (i = 0; i < f.p.targets[1].report->ndeps; i++)
		if (!strcmp(f.p.targets[1].report->deps[i].slot, "comp.0.json"))
			CHECK_STR(mcb_param_str(f.p.targets[1].report->deps[i].from->params, "mode",
						""),
				  "exact");
	release(&f);
}

static void test_dot(void)
{
	static const char *const req[] = {"targets/cpu-avx2-int8"};
	struct fixture f;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;

	if (load(&f, req, 1))
		return;
	mem = open_memstream(&text, &len);
	mcb_plan_dot(&f.p, mem);
	fclose(mem);
	CHECK(strstr(text, "digraph mcbuild {") == text);
	CHECK(strstr(text, "s0 -> s1;") != NULL);
	CHECK(strstr(text, "quantize rtn q8_0 m blk.1") != NULL);
	CHECK(strstr(text, "\"targets/cpu-avx2-int8\" [shape=folder];") != NULL);
	free(text);
	release(&f);
}

static void why(const char *old, const char *new_enc, const char *const *ignore, const char *want)
{
	struct mcb_buf b = MCB_BUF_INIT;

	mcb_explain_why(old, new_enc, ignore, &b);
	CHECK_STR(b.data, want);
	mcb_buf_release(&b);
}

/* -d explain's reasons, from two action encodings. */
static void test_explain_why(void)
{
	static const char *const ignore[] = {"steps", NULL};
	const char *a = "{\"inputs\":{\"model\":\"aaaaaaaaaaaaaaaa\"},\"kind\":\"quantize\","
			"\"params\":{\"bits\":8,\"g\":\"channel\"},\"version\":1}";

	why(NULL, a, NULL, "no previous build of this step");
	why(a, a, NULL, "same action, but its result is not in the cache");
	why(a, "{\"inputs\":{\"model\":\"bbbbbbbbbbbbbbbb\"},\"kind\":\"quantize\","
	       "\"params\":{\"bits\":4,\"g\":\"channel\"},\"version\":2}", NULL,
	    "quantize version 1 -> 2; parameter bits: 8 -> 4; "
	    "input model changed (aaaaaaaaaaaa -> bbbbbbbbbbbb)");
	why("{\"inputs\":{},\"kind\":\"b\",\"params\":{\"r\":{\"s\":[{\"q\":{\"x\":1}}]},"
	    "\"steps\":[1]},\"version\":1}",
	    "{\"inputs\":{\"new\":\"cc\"},\"kind\":\"b\",\"params\":{\"r\":{\"s\":[{\"q\":{\"x\":2}}]},"
	    "\"steps\":[2],\"t\":\"" "0123456789012345678901234567890123456789xx\"},\"version\":1}",
	    ignore,
	    "parameter r.s[0].q.x: 1 -> 2; parameter t changed; new input new");
	why("not json", a, NULL, "the recorded action is unreadable");
	/* the same change to several members reads once; member names keep dots */
	why("{\"inputs\":{},\"kind\":\"q\",\"params\":{\"tensors\":{\"blk.1.a.weight\":{\"g\":0},"
	    "\"blk.1.b.weight\":{\"g\":0},\"blk.1.c.weight\":{\"g\":0,\"h\":1}}},\"version\":1}",
	    "{\"inputs\":{},\"kind\":\"q\",\"params\":{\"tensors\":{\"blk.1.a.weight\":{\"g\":128},"
	    "\"blk.1.b.weight\":{\"g\":128},\"blk.1.c.weight\":{\"g\":128,\"h\":2}}},\"version\":1}",
	    NULL,
	    "parameter tensors.*.g: 0 -> 128 (3 entries); parameter tensors.blk.1.c.weight.h: 1 -> 2");
}

/* The log keeps the last encoding per label across open/save/open, and a
 * malformed file is a warning, not an error. */
static void test_explain_log(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_errctx e;
	struct mcb_explain *x;
	char path[4096];

	snprintf(path, sizeof(path), "%s/explain.log", dir);
	x = mcb_explain_open(path);
	CHECK(mcb_explain_get(x, "a") == NULL);
	mcb_explain_set(x, "a", "{\"v\":1}");
	mcb_explain_set(x, "b", "{\"v\":2}");
	mcb_explain_set(x, "a", "{\"v\":3}");
	CHECK_OK(mcb_explain_save(x, &e), &e);
	mcb_explain_close(x);
	x = mcb_explain_open(path);
	CHECK_STR(mcb_explain_get(x, "a"), "{\"v\":3}");
	CHECK_STR(mcb_explain_get(x, "b"), "{\"v\":2}");
	CHECK(mcb_explain_warning(x) == NULL);
	mcb_explain_close(x);
	mcbt_write(path, "garbage\n", 8);
	x = mcb_explain_open(path);
	CHECK(mcb_explain_get(x, "a") == NULL);
	CHECK(mcb_explain_warning(x) && strstr(mcb_explain_warning(x), "not an explain log"));
	mcb_explain_close(x);
}

int main(void)
{
	RUN(test_explain_why);
	RUN(test_explain_log);
	RUN(test_sharing);
	RUN(test_chain_independent_of_others);
	RUN(test_formats_and_aliases);
	RUN(test_hf_import_inputs);
	RUN(test_quality_lowering);
	RUN(test_dot);
	return mcbt_done();
}
