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

/* Every step the target's bundle depends on, producers first. */
static void collect_chain(struct mcb_arena *a, struct mcb_plan_step *bundle,
			  struct mcb_plan_step *last)
{
	struct mcb_plan_step *s;
	size_t n = 0, i;

	for (s = last; s; s = s->ndeps && s->deps[0].from ? s->deps[0].from : NULL)
		n++;
	bundle->chain = mcb_arena_array(a, n, sizeof(*bundle->chain));
	bundle->nchain = n;
	i = n;
	for (s = last; s; s = s->ndeps && s->deps[0].from ? s->deps[0].from : NULL)
		bundle->chain[--i] = s;
}

int mcb_plan_build(struct mcb_plan *p, struct mcb_arena *a, struct mcb_target *const *targets,
		   size_t n, struct mcb_errctx *e)
{
	struct planner pl = {p, a, MCB_STRMAP_INIT};
	size_t ti, i;

	memset(p, 0, sizeof(*p));
	p->targets = mcb_arena_array(a, n, sizeof(*p->targets));
	for (ti = 0; ti < n; ti++) {
		const struct mcb_target *t = targets[ti];
		struct mcb_plan_step *s, *exp, *bundle;
		struct mcb_plan_dep *deps;

		s = plan_import(&pl, t->model);
		for (i = 0; i < t->scheme->nstack; i++)
			s = plan_technique(&pl, t, i, s);
		exp = plan_export(&pl, t, s);
		deps = mcb_arena_array(a, exp->noutputs, sizeof(*deps));
		for (i = 0; i < exp->noutputs; i++) {
			deps[i].slot = exp->outputs[i];
			deps[i].from = exp;
			deps[i].output = exp->outputs[i];
		}
		/* params are filled in when the bundle becomes ready (they hold keys);
		 * the target path makes each bundle its own node */
		bundle = intern(&pl, "bundle", json_pack("{s:s}", "target", t->path), deps,
				exp->noutputs, mcb_arena_printf(a, "bundle %s", t->path),
				mcb_arena_printf(a, "bundle %s", t->path), bundle_out, 1);
		bundle->target = t;
		collect_chain(a, bundle, exp);
		p->targets[ti].target = t;
		p->targets[ti].exp = exp;
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
