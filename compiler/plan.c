/*
 * plan: targets -> step DAG.  See include/mcb/plan.h.
 *
 * Interning: a step's structural identity is
 *   kind NUL canonical-params NUL (slot NUL producer-id|source-path NUL output NUL)*
 * and equal identities are one node.  Identity is not the action key: keys
 * need the input digests, which the scheduler learns only as producers finish.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/plan.h"
#include "mcb/recipe.h"
#include "mcb/step.h"
#include "mcb/strmap.h"
#include "mcb/technique.h"

struct planner {
	struct mcb_plan *p;
	struct mcb_arena *a;
	struct mcb_strmap interned; /* identity -> struct mcb_plan_step * */
	const char *host;           /* CPU model, read on first need */
};

static void add_user(struct mcb_plan_step *from, struct mcb_plan_step *user)
{
	size_t i;

	for (i = 0; i < from->nusers; i++)
		if (from->users[i] == user)
			return;
	if (from->nusers == from->capusers) {
		from->capusers = from->capusers ? from->capusers * 2 : 4;
		from->users = mcb_xrealloc(from->users, from->capusers * sizeof(*from->users));
	}
	from->users[from->nusers++] = user;
}

/* Remember another label under which the same step is known. */
static void add_alias(struct planner *pl, struct mcb_plan_step *s, const char *label)
{
	const char **v;
	size_t i;

	if (!strcmp(s->label, label))
		return;
	for (i = 0; i < s->naliases; i++)
		if (!strcmp(s->aliases[i], label))
			return;
	v = mcb_arena_array(pl->a, s->naliases + 1, sizeof(*v));
	if (s->naliases)
		memcpy(v, s->aliases, s->naliases * sizeof(*v));
	v[s->naliases++] = label;
	s->aliases = v;
}

static int cmp_dep(const void *x, const void *y)
{
	return strcmp(((const struct mcb_plan_dep *)x)->slot,
		      ((const struct mcb_plan_dep *)y)->slot);
}

/*
 * The step (kind, params, deps), created unless an identical one exists.
 * params is a new reference that the step takes over (or drops when interned).
 */
static struct mcb_plan_step *intern(struct planner *pl, const char *kindname, json_t *params,
				    struct mcb_plan_dep *deps, size_t ndeps, const char *label,
				    const char *desc, const char *const *outputs, size_t noutputs)
{
	const struct mcb_stepkind *kind = mcb_stepkind_find(kindname);
	struct mcb_buf id = MCB_BUF_INIT;
	struct mcb_plan_step *s;
	char *key;
	size_t i;

	if (!kind)
		mcb_die("internal error: no step kind '%s'", kindname);
	qsort(deps, ndeps, sizeof(*deps), cmp_dep);
	mcb_buf_adds(&id, kindname);
	mcb_buf_addc(&id, '\n');
	mcb_json_canonical(params, &id);
	for (i = 0; i < ndeps; i++) {
		if (deps[i].from)
			mcb_buf_printf(&id, "\n%s %zu %s", deps[i].slot, deps[i].from->id,
				       deps[i].output);
		else
			mcb_buf_printf(&id, "\n%s source %s", deps[i].slot, deps[i].source);
	}
	s = mcb_strmap_get(&pl->interned, id.data);
	if (s) {
		json_decref(params);
		mcb_buf_release(&id);
		add_alias(pl, s, label);
		return s;
	}
	key = mcb_arena_strdup(pl->a, id.data);
	mcb_buf_release(&id);
	s = mcb_arena_alloc(pl->a, sizeof(*s));
	s->kind = kind;
	s->params = params;
	s->label = label;
	s->desc = desc;
	s->deps = mcb_arena_array(pl->a, ndeps, sizeof(*deps));
	memcpy(s->deps, deps, ndeps * sizeof(*deps));
	s->ndeps = ndeps;
	s->outputs = mcb_arena_array(pl->a, noutputs, sizeof(*outputs));
	memcpy(s->outputs, outputs, noutputs * sizeof(*outputs));
	s->noutputs = noutputs;
	s->state = MCB_STEP_WAITING;
	for (i = 0; i < ndeps; i++)
		if (deps[i].from)
			add_user(deps[i].from, s);
	if (pl->p->nsteps == pl->p->capsteps) {
		pl->p->capsteps = pl->p->capsteps ? pl->p->capsteps * 2 : 32;
		pl->p->steps = mcb_xrealloc(pl->p->steps, pl->p->capsteps * sizeof(*pl->p->steps));
	}
	s->id = pl->p->nsteps;
	pl->p->steps[pl->p->nsteps++] = s;
	mcb_strmap_put(&pl->interned, key, s);
	return s;
}

static const char *const model_out[] = {"model.safetensors"};
static const char *const gguf_out[] = {"model.gguf"};
static const char *const st_out[] = {"config.json", "model.safetensors"};
static const char *const bundle_out[] = {"manifest.json"};

static struct mcb_plan_step *plan_import(struct planner *pl, const struct mcb_model_decl *md)
{
	struct mcb_plan_dep deps[2];
	size_t nd = 0;
	const char *path = md->path;
	size_t n = strlen(path);
	int st = !strcmp(md->format, "safetensors") ||
		 (!strcmp(md->format, "auto") && n > 12 && !strcmp(path + n - 12, ".safetensors"));

	memset(deps, 0, sizeof(deps));
	deps[nd].slot = "source";
	deps[nd].source = path;
	deps[nd].what = mcb_arena_printf(pl->a, "model '%s'", md->name);
	deps[nd].loc = md->loc;
	nd++;
	if (st) {
		deps[nd].slot = "config";
		deps[nd].source =
			md->config ? md->config
				   : mcb_path_join(pl->a, mcb_path_dir(pl->a, path), "config.json");
		deps[nd].what = mcb_arena_printf(pl->a, "config of model '%s'", md->name);
		deps[nd].loc = md->loc;
		nd++;
	}
	return intern(pl, "import", json_pack("{s:s}", "format", md->format), deps, nd,
		      mcb_arena_printf(pl->a, "import %s", md->name),
		      mcb_arena_printf(pl->a, "import %s", md->name), model_out, 1);
}

/* Fill format-dependent defaults: granularity auto is Q8_0 groups for gguf,
 * per channel elsewhere. */
static json_t *resolve_quantize(const json_t *params, const char *format)
{
	json_t *q = json_deep_copy(params);
	const char *g = mcb_param_str(q, "granularity", "auto");

	if (!strcmp(g, "auto"))
		json_object_set_new(q, "granularity",
				    json_string(!strcmp(format, "gguf") ? "group" : "channel"));
	if (!strcmp(mcb_param_str(q, "granularity", ""), "channel"))
		json_object_set_new(q, "group_size", json_integer(0));
	return q;
}

static struct mcb_plan_step *plan_technique(struct planner *pl, const struct mcb_target *t,
					    size_t i, struct mcb_plan_step *prev)
{
	const struct mcb_stack_entry *se = &t->scheme->stack[i];
	struct mcb_plan_dep dep;
	json_t *params;
	const char *desc;

	if (strcmp(se->tech->name, "quantize"))
		mcb_die("internal error: no lowering for technique '%s'", se->tech->name);
	params = resolve_quantize(se->params, t->export_format);
	if (!strcmp(mcb_param_str(params, "granularity", ""), "channel"))
		desc = mcb_arena_printf(pl->a, "quantize %s w%lld per-channel %s",
					mcb_param_str(params, "method", "?"),
					(long long)mcb_param_int(params, "bits", 0),
					t->model->name);
	else
		desc = mcb_arena_printf(
			pl->a, "quantize %s w%lld g%lld %s", mcb_param_str(params, "method", "?"),
			(long long)mcb_param_int(params, "bits", 0),
			(long long)mcb_param_int(params, "group_size", 0), t->model->name);
	memset(&dep, 0, sizeof(dep));
	dep.slot = "model";
	dep.from = prev;
	dep.output = "model.safetensors";
	return intern(pl, "quantize", params, &dep, 1,
		      mcb_arena_printf(pl->a, "quantize %s %s#%zu %s", t->model->name,
				       t->scheme->name, i, t->export_format),
		      desc, model_out, 1);
}

static struct mcb_plan_step *plan_export(struct planner *pl, const struct mcb_target *t,
					 struct mcb_plan_step *prev)
{
	struct mcb_plan_dep dep;
	int gguf = !strcmp(t->export_format, "gguf");

	memset(&dep, 0, sizeof(dep));
	dep.slot = "model";
	dep.from = prev;
	dep.output = "model.safetensors";
	return intern(pl, "export", json_pack("{s:s}", "format", t->export_format), &dep, 1,
		      mcb_arena_printf(pl->a, "export %s %s %s", t->model->name, t->scheme->name,
				       t->export_format),
		      mcb_arena_printf(pl->a, "export %s %s/%s", t->export_format, t->model->name,
				       t->scheme->name),
		      gguf ? gguf_out : st_out, gguf ? 1 : 2);
}

static void mark_closure(struct mcb_plan_step *s, char *seen)
{
	size_t i;

	if (seen[s->id])
		return;
	seen[s->id] = 1;
	for (i = 0; i < s->ndeps; i++)
		if (s->deps[i].from)
			mark_closure(s->deps[i].from, seen);
}

/* Every step the target's bundle depends on, in plan (topological) order. */
static void collect_chain(struct planner *pl, struct mcb_plan_step *bundle)
{
	char *seen = mcb_xcalloc(pl->p->nsteps + 1, 1);
	size_t i, n = 0;

	mark_closure(bundle, seen);
	seen[bundle->id] = 0;
	for (i = 0; i < pl->p->nsteps; i++)
		n += seen[i];
	bundle->chain = mcb_arena_array(pl->a, n + 1, sizeof(*bundle->chain));
	for (i = 0; i < pl->p->nsteps; i++)
		if (seen[i])
			bundle->chain[bundle->nchain++] = pl->p->steps[i];
	free(seen);
}

static const char *const sample_out[] = {"data.tokens"};
static const char *const base_windows_out[] = {"eval.json", "logprobs.bin"};
static const char *const eval_out[] = {"eval.json"};
static const char *const measure_out[] = {"measure.json"};
static const char *const report_out[] = {"report.html", "report.json", "report.md"};

/* The input slot "data" of an evaluation: the dataset's file, or the output
 * of the step that samples it. */
static struct mcb_plan_dep data_dep(struct planner *pl, const struct mcb_dataset_decl *ds)
{
	struct mcb_plan_dep d;

	memset(&d, 0, sizeof(d));
	d.slot = "data";
	if (ds->sample) {
		struct mcb_plan_dep m;

		memset(&m, 0, sizeof(m));
		m.slot = "model";
		m.from = plan_import(pl, ds->sample_model);
		m.output = "model.safetensors";
		d.from = intern(pl, "sample", json_deep_copy(ds->sample), &m, 1,
				mcb_arena_printf(pl->a, "sample %s", ds->name),
				mcb_arena_printf(pl->a, "sample %s (%lld x %lld tokens)", ds->name,
						 (long long)mcb_param_int(ds->sample, "sequences", 0),
						 (long long)mcb_param_int(ds->sample, "length", 0)),
				sample_out, 1);
		d.output = "data.tokens";
	} else {
		d.source = ds->path;
		d.what = mcb_arena_printf(pl->a, "dataset '%s'", ds->name);
		d.loc = ds->loc;
	}
	return d;
}

static const struct mcb_dataset_decl *target_dataset(const struct mcb_target *t,
						     const char *name)
{
	size_t i;

	for (i = 0; i < t->ndatasets; i++)
		if (!strcmp(t->datasets[i]->name, name))
			return t->datasets[i];
	return NULL;
}

/* The mode a target's runtime computes in: llama.cpp's for gguf. */
static const char *runtime_mode(const struct mcb_target *t)
{
	return !strcmp(t->export_format, "gguf") ? "ggml" : "exact";
}

/*
 * The evaluations of t's quality metrics: one baseline evaluation (of the
 * imported model, shared by every target of the model) and one of the
 * compressed model per distinct (dataset, window, stride).  Appends report
 * deps (base.K.json, comp.K.json) and returns the evals list for the report.
 */
static json_t *plan_evals(struct planner *pl, const struct mcb_target *t,
			  struct mcb_plan_step *imp, struct mcb_plan_step *last,
			  struct mcb_plan_dep *deps, size_t *nd)
{
	json_t *evals = json_array(), *m;
	size_t i, k;

	json_array_foreach (json_object_get(t->quality, "metrics"), i, m) {
		const struct mcb_dataset_decl *ds =
			target_dataset(t, json_string_value(json_object_get(m, "dataset")));
		int windows = json_object_get(m, "window") != NULL;
		struct mcb_plan_dep in[3];
		struct mcb_plan_step *base, *comp;
		json_t *e, *params;

		json_array_foreach (evals, k, e)
			if (json_equal(json_object_get(e, "dataset"), json_object_get(m, "dataset")) &&
			    mcb_json_same(json_object_get(e, "window"), json_object_get(m, "window")) &&
			    mcb_json_same(json_object_get(e, "stride"), json_object_get(m, "stride")))
				break;
		if (k < json_array_size(evals))
			continue;
		e = json_pack("{s:O, s:s}", "dataset", json_object_get(m, "dataset"), "kind",
			      windows ? "windows" : "examples");
		if (windows) {
			json_object_set(e, "window", json_object_get(m, "window"));
			json_object_set(e, "stride", json_object_get(m, "stride"));
		}
		json_array_append_new(evals, e);
		params = json_pack("{s:s, s:s, s:s, s:s}", "role", "baseline", "kind",
				   windows ? "windows" : "examples", "format", ds->format, "mode",
				   "exact");
		if (windows) {
			json_object_set(params, "window", json_object_get(m, "window"));
			json_object_set(params, "stride", json_object_get(m, "stride"));
		}
		memset(in, 0, sizeof(in));
		in[0] = data_dep(pl, ds);
		in[1].slot = "model";
		in[1].from = imp;
		in[1].output = "model.safetensors";
		base = intern(pl, "evaluate", json_deep_copy(params), in, 2,
			      mcb_arena_printf(pl->a, "evaluate %s baseline on %s", t->model->name,
					       ds->name),
			      mcb_arena_printf(pl->a, "evaluate %s on %s (baseline)", t->model->name,
					       ds->name),
			      windows ? base_windows_out : eval_out, windows ? 2 : 1);
		json_object_set_new(params, "role", json_string("compressed"));
		json_object_set_new(params, "mode", json_string(runtime_mode(t)));
		memset(in, 0, sizeof(in));
		in[0] = data_dep(pl, ds);
		in[1].slot = "model";
		in[1].from = last;
		in[1].output = "model.safetensors";
		if (windows) {
			in[2].slot = "baseline";
			in[2].from = base;
			in[2].output = "logprobs.bin";
		}
		comp = intern(pl, "evaluate", params, in, windows ? 3 : 2,
			      mcb_arena_printf(pl->a, "evaluate %s %s %s on %s", t->model->name,
					       t->scheme->name, t->export_format, ds->name),
			      mcb_arena_printf(pl->a, "evaluate %s/%s on %s (%s)", t->model->name,
					       t->scheme->name, ds->name, runtime_mode(t)),
			      eval_out, 1);
		k = json_array_size(evals) - 1;
		deps[*nd].slot = mcb_arena_printf(pl->a, "base.%zu.json", k);
		deps[*nd].from = base;
		deps[(*nd)++].output = "eval.json";
		deps[*nd].slot = mcb_arena_printf(pl->a, "comp.%zu.json", k);
		deps[*nd].from = comp;
		deps[(*nd)++].output = "eval.json";
	}
	return evals;
}

/* Latency is measured where mcbuild runs: the host is part of the key. */
static const char *host_cpu(struct planner *pl)
{
	if (!pl->host)
		pl->host = mcb_os_cpu_model(pl->a);
	return pl->host;
}

static struct mcb_plan_step *plan_report(struct planner *pl, const struct mcb_target *t,
					 struct mcb_plan_step *imp, struct mcb_plan_step *last,
					 struct mcb_plan_step *exp)
{
	size_t nmetrics = json_array_size(json_object_get(t->quality, "metrics"));
	struct mcb_plan_dep *deps = mcb_arena_array(pl->a, 2 * nmetrics + 4, sizeof(*deps));
	struct mcb_plan_dep m;
	size_t nd = 0, i;
	json_t *evals = json_array(), *params, *perf = t->performance;

	if (t->quality) {
		json_decref(evals);
		evals = plan_evals(pl, t, imp, last, deps, &nd);
	}
	memset(&m, 0, sizeof(m));
	m.slot = "model";
	m.from = last;
	m.output = "model.safetensors";
	deps[nd].slot = "measure.json";
	deps[nd].from = intern(
		pl, "measure",
		json_pack("{s:O, s:O, s:O, s:i, s:s, s:s}", "prompt_tokens",
			  json_object_get(perf, "prompt_tokens"), "decode_tokens",
			  json_object_get(perf, "decode_tokens"), "repeats",
			  json_object_get(perf, "repeats"), "threads", mcb_os_ncpu(), "mode",
			  runtime_mode(t), "host", host_cpu(pl)),
		&m, 1,
		mcb_arena_printf(pl->a, "measure %s %s %s", t->model->name, t->scheme->name,
				 t->export_format),
		mcb_arena_printf(pl->a, "measure %s/%s (%s)", t->model->name, t->scheme->name,
				 runtime_mode(t)),
		measure_out, 1);
	deps[nd++].output = "measure.json";
	for (i = 0; i < exp->noutputs; i++) {
		deps[nd].slot = mcb_arena_printf(pl->a, "file:%s", exp->outputs[i]);
		deps[nd].from = exp;
		deps[nd++].output = exp->outputs[i];
	}
	params = json_pack("{s:s, s:s, s:O, s:s, s:b, s:O, s:O, s:o, s:s}", "target", t->path,
			   "model", t->model->name, "hardware", t->hw->json, "export",
			   t->export_format, "quantized", t->scheme->nstack > 0, "quality",
			   t->quality ? t->quality : json_null(), "performance", perf, "evals", evals,
			   "mcbuild_version", MCB_VERSION);
	return intern(pl, "report", params, deps, nd, mcb_arena_printf(pl->a, "report %s", t->path),
		      mcb_arena_printf(pl->a, "report %s", t->path), report_out, 3);
}

int mcb_plan_build(struct mcb_plan *p, struct mcb_arena *a, struct mcb_target *const *targets,
		   size_t n, struct mcb_errctx *e)
{
	struct planner pl = {p, a, MCB_STRMAP_INIT, NULL};
	size_t ti, i;

	memset(p, 0, sizeof(*p));
	p->targets = mcb_arena_array(a, n, sizeof(*p->targets));
	for (ti = 0; ti < n; ti++) {
		const struct mcb_target *t = targets[ti];
		struct mcb_plan_step *s, *imp, *exp, *rep, *bundle;
		struct mcb_plan_dep *deps;
		size_t nd;

		imp = s = plan_import(&pl, t->model);
		for (i = 0; i < t->scheme->nstack; i++)
			s = plan_technique(&pl, t, i, s);
		exp = plan_export(&pl, t, s);
		rep = plan_report(&pl, t, imp, s, exp);
		nd = 0;
		deps = mcb_arena_array(a, exp->noutputs + rep->noutputs, sizeof(*deps));
		for (i = 0; i < exp->noutputs; i++, nd++) {
			deps[nd].slot = exp->outputs[i];
			deps[nd].from = exp;
			deps[nd].output = exp->outputs[i];
		}
		for (i = 0; i < rep->noutputs; i++, nd++) {
			deps[nd].slot = rep->outputs[i];
			deps[nd].from = rep;
			deps[nd].output = rep->outputs[i];
		}
		/* params are filled in when the bundle becomes ready (they hold keys);
		 * the target path makes each bundle its own node */
		bundle = intern(&pl, "bundle", json_pack("{s:s}", "target", t->path), deps, nd,
				mcb_arena_printf(a, "bundle %s", t->path),
				mcb_arena_printf(a, "bundle %s", t->path), bundle_out, 1);
		bundle->target = t;
		collect_chain(&pl, bundle);
		p->targets[ti].target = t;
		p->targets[ti].exp = exp;
		p->targets[ti].report = rep;
		p->targets[ti].bundle = bundle;
	}
	p->ntargets = n;
	mcb_strmap_release(&pl.interned);
	(void)e;
	return 0;
}

void mcb_plan_release(struct mcb_plan *p)
{
	size_t i;

	for (i = 0; i < p->nsteps; i++) {
		json_decref(p->steps[i]->params);
		free(p->steps[i]->users);
	}
	free(p->steps);
	memset(p, 0, sizeof(*p));
}

static void dot_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

void mcb_plan_dot(const struct mcb_plan *p, FILE *f)
{
	size_t i, j;

	fputs("digraph mcbuild {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n", f);
	for (i = 0; i < p->nsteps; i++) {
		const struct mcb_plan_step *s = p->steps[i];

		fprintf(f, "  s%zu [label=", s->id);
		dot_quote(f, s->desc);
		fputs("];\n", f);
		for (j = 0; j < s->ndeps; j++) {
			if (s->deps[j].from) {
				size_t k;

				for (k = 0; k < j && s->deps[k].from != s->deps[j].from; k++)
					;
				if (k == j) /* one edge per producer */
					fprintf(f, "  s%zu -> s%zu;\n", s->deps[j].from->id, s->id);
			} else {
				fputs("  ", f);
				dot_quote(f, s->deps[j].source);
				fputs(" [shape=note];\n  ", f);
				dot_quote(f, s->deps[j].source);
				fprintf(f, " -> s%zu;\n", s->id);
			}
		}
	}
	for (i = 0; i < p->ntargets; i++) {
		fputs("  ", f);
		dot_quote(f, p->targets[i].target->path);
		fputs(" [shape=folder];\n", f);
		fprintf(f, "  s%zu -> ", p->targets[i].bundle->id);
		dot_quote(f, p->targets[i].target->path);
		fputs(";\n", f);
	}
	fputs("}\n", f);
}
