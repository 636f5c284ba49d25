/*
 * plan: targets -> step DAG.  See include/mcb/plan.h.
 *
 * Interning: a step's structural identity is
 *   kind NUL canonical-params NUL (slot NUL producer-id|source-path NUL output NUL)*
 * and equal identities are one node.  Identity is not the action key: keys
 * need the input digests, which the scheduler learns only as producers finish.
 */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/os.h"
#include "mcb/plan.h"
#include "mcb/recipe.h"
#include "mcb/step.h"
#include "mcb/strmap.h"
#include "mcb/technique.h"

struct planner {
	struct mcb_plan *p;
	struct mcb_arena *a;
	struct mcb_diags *d;
	struct mcb_strmap interned; /* identity -> struct mcb_plan_step * */
	struct mcb_strmap configs;  /* model name -> struct mcb_llama_config * */
	const char *host;           /* CPU model, read on first need */
	struct mcb_strmap stacks;   /* model, scheme, format, calibration -> plan_stack's step */
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
static const char *const gptq_out[] = {"config.json", "model.safetensors", "quantize_config.json"};
static const char *const bundle_out[] = {"manifest.json"};

/* A Hugging Face model: model.safetensors with its config.json. */
static int is_safetensors_decl(const struct mcb_model_decl *md)
{
	size_t n = strlen(md->path);

	return !strcmp(md->format, "safetensors") ||
	       (!strcmp(md->format, "auto") && n > 12 &&
		!strcmp(md->path + n - 12, ".safetensors"));
}

static struct mcb_plan_step *plan_import(struct planner *pl, const struct mcb_model_decl *md)
{
	struct mcb_plan_dep deps[2];
	size_t nd = 0;
	const char *path = md->path;
	int st = is_safetensors_decl(md);

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

/* ---- techniques: per-layer steps ------------------------------------------
 *
 * A technique that changes weights (quantize, prune) runs as one step per
 * group of tensors: "blk.L" (the seven linear weights of layer L, which share
 * its calibration statistics and, for AWQ and SmoothQuant, the scales folded
 * between them) and "globals" (token_embd.weight, output.weight).  A step's
 * parameters name each tensor it changes with that tensor's own resolved
 * parameters (overrides applied), so a recipe change that touches one layer
 * changes that layer's step only.  Each writes part.safetensors holding its
 * group's tensors; the next technique of the stack reads that part, and an
 * assemble step puts the last parts into the base model.
 */

static const char *const part_out[] = {"part.safetensors"};

static struct mcb_plan_dep data_dep(struct planner *pl, const struct mcb_dataset_decl *ds);

/* The linear weights of a layer, as in llama.cpp's GGUF names. */
static const char *const layer_weights[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
					    "ffn_gate", "ffn_up", "ffn_down"};
#define NLAYER_WEIGHTS (sizeof(layer_weights) / sizeof(layer_weights[0]))

/* The config of md's model, read from the file once per model; NULL after
 * reporting why it cannot be read. */
static const struct mcb_llama_config *model_config(struct planner *pl,
						   const struct mcb_model_decl *md)
{
	struct mcb_llama_config *cfg = mcb_strmap_get(&pl->configs, md->name);
	struct mcb_errctx e;
	const char *config = md->config;

	if (cfg)
		return cfg;
	cfg = mcb_arena_alloc(pl->a, sizeof(*cfg));
	if (!config && is_safetensors_decl(md))
		config = mcb_path_join(pl->a, mcb_path_dir(pl->a, md->path), "config.json");
	if (mcb_model_probe(md->path, is_safetensors_decl(md) ? "safetensors" : md->format, config,
			    cfg, &e)) {
		mcb_diag_error(pl->d, &md->loc, "model '%s': %s", md->name, e.msg);
		return NULL;
	}
	mcb_strmap_put(&pl->configs, md->name, cfg);
	return cfg;
}

/* Does override pattern pat ('*' matches any run of characters) name the
 * tensor, with or without its ".weight" suffix? */
static int pattern_matches(const char *pat, const char *name)
{
	size_t n = strlen(name);
	char stem[256];

	if (!fnmatch(pat, name, 0))
		return 1;
	if (n > 7 && n - 7 < sizeof(stem) && !strcmp(name + n - 7, ".weight")) {
		memcpy(stem, name, n - 7);
		stem[n - 7] = '\0';
		return !fnmatch(pat, stem, 0);
	}
	return 0;
}

/* The technique's parameters for one tensor: its own, then every override
 * whose pattern names the tensor, in the order written (a later one wins).
 * Patterns used are marked in used.  A new reference without "overrides". */
static json_t *tensor_params(const json_t *tp, const char *name, json_t *used)
{
	json_t *m = json_deep_copy(tp), *v;
	const char *pat;

	json_object_del(m, "overrides");
	json_object_foreach (json_object_get(tp, "overrides"), pat, v) {
		if (!pattern_matches(pat, name))
			continue;
		json_object_update(m, v);
		/* granularity and group_size go together: an override of one
		 * decides the other */
		if (json_object_get(v, "granularity") && !json_object_get(v, "group_size"))
			json_object_set_new(m, "group_size", json_integer(0));
		if (json_integer_value(json_object_get(v, "group_size")) > 0 &&
		    !json_object_get(v, "granularity"))
			json_object_set_new(m, "granularity", json_string("group"));
		json_object_set_new(used, pat, json_true());
	}
	return m;
}

/* Copy the keys of src that are named in keys into dst. */
static void copy_keys(json_t *dst, const json_t *src, const char *const *keys)
{
	for (; *keys; keys++)
		if (json_object_get(src, *keys))
			json_object_set(dst, *keys, json_object_get(src, *keys));
}

struct lowering {
	struct planner *pl;
	const struct mcb_target *t;
	const struct mcb_stack_entry *se;
	const struct mcb_llama_config *cfg;
	json_t *used; /* override patterns that named some tensor */
	json_t *kept; /* patterns naming a tensor the export keeps in floating point */
	int64_t nquant;          /* quantize: weights planned in the format's codes */
	const char *first_fallback; /* quantize: "tensor: why" of the first that is not */
	int bad;      /* an error was reported */
	int64_t keep; /* structured pruning: heads or channels kept, 0 otherwise */
	/* quantize without overrides: every tensor of the layers (memo[0]) or of
	 * the globals (memo[1]) resolves alike, so it is resolved once */
	struct {
		int done;
		const char *why; /* cannot be exported so, or NULL */
		json_t *r;	 /* mcb_quantize_resolve's result */
	} memo[2];
};

static void lower_error(struct lowering *lw, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void lower_error(struct lowering *lw, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (lw->bad)
		return; /* one message per technique: a pattern often names many tensors */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mcb_diag_error(lw->pl->d, &lw->se->loc, "target '%s': %s: %s", lw->t->path,
		       lw->se->tech->name, msg);
	lw->bad = 1;
}

/* Names of the tensors of group layer (-1: globals) a technique may change. */
static size_t group_tensors(struct lowering *lw, int64_t layer, const char **names)
{
	size_t i, n = 0;

	if (layer >= 0) {
		for (i = 0; i < NLAYER_WEIGHTS; i++)
			names[n++] = mcb_arena_printf(lw->pl->a, "blk.%lld.%s.weight",
						      (long long)layer, layer_weights[i]);
		return n;
	}
	names[n++] = "token_embd.weight";
	if (!lw->cfg->tied_embeddings)
		names[n++] = "output.weight";
	return n;
}

static const char *const gptq_keys[] = {"damp", "blocksize", "act_order", "static_groups", NULL};
static const char *const awq_keys[] = {"n_grid", "duo_scaling", "clip", NULL};
static const char *const smooth_keys[] = {"alpha", NULL};
static const char *const sparsegpt_keys[] = {"damp", "blocksize", NULL};

/*
 * Whether a quantize step touches a global tensor: gguf quantizes the
 * embeddings and the classifier (as llama-quantize does); the safetensors
 * int8 export quantizes the classifier; GPTQ, AWQ, FP8 and W8A8 checkpoints
 * keep both in floating point (vLLM's loaders expect them so).  Globals have
 * no calibration statistics: they are always rounded to nearest.
 */
static int quantize_global(const char *fmt, const char *method, const char *name)
{
	if (!strcmp(fmt, "gguf"))
		return 1;
	return !strcmp(fmt, "safetensors") && !strcmp(name, "output.weight") &&
	       (!strcmp(method, "rtn") || !strcmp(method, "gptq") || !strcmp(method, "awq"));
}

/* The shape of weight name as technique lw's input has it: the config's,
 * after the structured pruning of earlier techniques of the stack. */
static void weight_shape(const struct lowering *lw, const struct lowering *first,
			 const char *name, int64_t *rows, int64_t *cols)
{
	const struct mcb_llama_config *c = lw->cfg;
	int64_t nh = c->n_heads, nkv = c->n_kv_heads, hid = c->hidden_dim;
	const struct lowering *p;
	const char *w = strncmp(name, "blk.", 4) ? name : strchr(name + 4, '.') + 1;

	for (p = first; p < lw; p++) {
		const char *m = mcb_param_str(p->se->params, "method", "");

		if (!p->keep || strcmp(p->se->tech->name, "prune"))
			continue;
		if (!strcmp(m, "heads"))
			nh = p->keep * (c->n_heads / c->n_kv_heads), nkv = p->keep;
		else if (!strcmp(m, "channels"))
			hid = p->keep;
	}
	*rows = c->dim, *cols = c->dim;
	if (!strcmp(w, "attn_q.weight"))
		*rows = nh * c->head_dim;
	else if (!strcmp(w, "attn_k.weight") || !strcmp(w, "attn_v.weight"))
		*rows = nkv * c->head_dim;
	else if (!strcmp(w, "attn_output.weight"))
		*cols = nh * c->head_dim;
	else if (!strcmp(w, "ffn_gate.weight") || !strcmp(w, "ffn_up.weight"))
		*rows = hid;
	else if (!strcmp(w, "ffn_down.weight"))
		*cols = hid;
	else if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight"))
		*rows = c->vocab_size;
}

/* Why a weight of shape rows x cols with resolved params r cannot be packed
 * in format, or NULL.  GPTQ packs 32 / bits codes per int32 along the
 * inputs (qweight) and the outputs (qzeros); AWQ's GEMM layout packs 8
 * codes along the outputs; both need groups that divide the inputs. */
static const char *unpackable(struct planner *pl, const char *format, const json_t *r,
			      int64_t rows, int64_t cols)
{
	int64_t bits = mcb_param_int(r, "bits", 8), g = mcb_param_int(r, "group_size", 0);

	if (!strcmp(format, "gptq") && ((rows * bits) % 32 || (cols * bits) % 32))
		return mcb_arena_printf(pl->a,
					"%lld x %lld does not pack into 32-bit words at %lld bits "
					"(GPTQ): kept as F16",
					(long long)rows, (long long)cols, (long long)bits);
	if (!strcmp(format, "awq") && rows % 8)
		return mcb_arena_printf(pl->a,
					"%lld output rows are not a multiple of 8 (AWQ's packing): "
					"kept as F16",
					(long long)rows);
	if ((!strcmp(format, "gptq") || !strcmp(format, "awq")) && g && cols % g)
		return mcb_arena_printf(pl->a,
					"row length %lld is not a multiple of group size %lld: "
					"kept as F16",
					(long long)cols, (long long)g);
	return NULL;
}

/* The parameters of the quantize step for one group, or NULL when it changes
 * nothing there. */
static json_t *quantize_group(struct lowering *lw, int64_t layer)
{
	const json_t *tp = lw->se->params;
	const char *fmt = lw->t->export_format, *method = mcb_param_str(tp, "method", "rtn");
	const char *names[NLAYER_WEIGHTS + 2];
	size_t i, n = group_tensors(lw, layer, names);
	json_t *tensors = json_object(), *g;
	int plain = !json_object_size(json_object_get(tp, "overrides"));

	for (i = 0; i < n; i++) {
		json_t *p, *r;
		const char *why;
		int64_t rows, cols;

		if (layer < 0 && !quantize_global(fmt, method, names[i])) {
			const char *pat;
			json_t *v;

			json_object_foreach (json_object_get(tp, "overrides"), pat, v)
				if (pattern_matches(pat, names[i]))
					json_object_set_new(lw->kept, pat, json_string(names[i]));
			continue;
		}
		if (plain && lw->memo[layer < 0].done) {
			why = lw->memo[layer < 0].why;
			r = json_incref(lw->memo[layer < 0].r);
			p = NULL;
		} else {
			p = tensor_params(tp, names[i], lw->used);
			if (mcb_param_bool(p, "skip", 0)) {
				json_decref(p);
				continue;
			}
			json_object_del(p, "skip");
			if (layer < 0)
				json_object_set_new(p, "method", json_string("rtn"));
			if (!(lw->se->tech->validate && (why = lw->se->tech->validate(p))))
				why = lw->se->tech->check_format(p, fmt);
			r = why ? NULL : mcb_quantize_resolve(p, fmt);
			if (plain) {
				lw->memo[layer < 0].done = 1;
				lw->memo[layer < 0].why = why;
				lw->memo[layer < 0].r = json_incref(r);
			}
		}
		if (why) {
			lower_error(lw, "tensor '%s' (with its overrides) cannot be exported as %s: %s",
				    names[i], fmt, why);
			json_decref(p);
			continue;
		}
		weight_shape(lw, lw - (lw->se - lw->t->scheme->stack), names[i], &rows, &cols);
		if ((why = unpackable(lw->pl, fmt, r, rows, cols))) {
			json_object_set_new(tensors, names[i], json_pack("{s:s}", "fallback", why));
			if (!lw->first_fallback)
				lw->first_fallback =
					mcb_arena_printf(lw->pl->a, "%s: %s", names[i], why);
		} else {
			lw->nquant++;
			json_object_set_new(
				tensors, names[i],
				json_pack("{s:O, s:O, s:O, s:O}", "bits", json_object_get(r, "bits"),
					  "group_size", json_object_get(r, "group_size"), "symmetric",
					  json_object_get(r, "symmetric"), "ggml_type",
					  json_object_get(r, "ggml_type")));
		}
		json_decref(r);
		json_decref(p);
	}
	if (!json_object_size(tensors)) {
		json_decref(tensors);
		return NULL;
	}
	g = json_pack("{s:s, s:I, s:o}", "method", layer < 0 ? "rtn" : method, "layer",
		      (json_int_t)layer, "tensors", tensors);
	if (layer >= 0 && !strcmp(method, "gptq"))
		copy_keys(g, tp, gptq_keys);
	else if (layer >= 0 && !strcmp(method, "awq"))
		copy_keys(g, tp, awq_keys);
	else if (layer >= 0 && !strcmp(method, "smoothquant"))
		copy_keys(g, tp, smooth_keys);
	return g;
}

/*
 * Structured pruning removes the same number of heads (whole key/value
 * groups, so that grouped-query attention stays regular) or FFN channels from
 * every layer: the file keeps one head count and one FFN width, as llama.cpp
 * and the engine expect.  Returns what each layer keeps, or 0 after an error.
 */
static int64_t structured_keep(struct lowering *lw, const char *method)
{
	double sp = json_real_value(json_object_get(lw->se->params, "sparsity"));
	int64_t total = !strcmp(method, "heads") ? lw->cfg->n_kv_heads : lw->cfg->hidden_dim;
	int64_t drop = (int64_t)(sp * (double)total + 0.5), keep = total - drop;

	if (json_object_size(json_object_get(lw->se->params, "overrides"))) {
		lower_error(lw, "structured pruning removes the same share from every layer "
				"and takes no overrides");
		return 0;
	}
	if (!strcmp(method, "channels") && total % 32 == 0)
		keep = (keep + 16) / 32 * 32; /* keep quantization blocks whole */
	if (keep >= total || keep < 1) {
		lower_error(lw, "sparsity %g of %lld %s removes %s", sp, (long long)total,
			    !strcmp(method, "heads") ? "key/value heads" : "FFN channels",
			    keep >= total ? "nothing" : "everything");
		return 0;
	}
	return keep;
}

static json_t *prune_group(struct lowering *lw, int64_t layer)
{
	const json_t *tp = lw->se->params;
	const char *method = mcb_param_str(tp, "method", "wanda");
	const char *pattern = mcb_param_str(tp, "pattern", "unstructured");
	const char *names[NLAYER_WEIGHTS + 2];
	size_t i, n;
	json_t *tensors, *g;

	if (layer < 0)
		return NULL; /* embeddings and classifier stay dense */
	if (!strcmp(method, "heads") || !strcmp(method, "channels")) {
		int64_t keep = lw->keep = structured_keep(lw, method);

		return keep ? json_pack("{s:s, s:I, s:I}", "method", method, "layer",
					(json_int_t)layer, "keep", (json_int_t)keep)
			    : NULL;
	}
	n = group_tensors(lw, layer, names);
	tensors = json_object();
	for (i = 0; i < n; i++) {
		json_t *p = tensor_params(tp, names[i], lw->used);

		if (!mcb_param_bool(p, "skip", 0))
			json_object_set_new(
				tensors, names[i],
				strcmp(pattern, "unstructured")
					? json_pack("{s:s}", "pattern", pattern)
					: json_pack("{s:s, s:O}", "pattern", pattern, "sparsity",
						    json_object_get(p, "sparsity")));
		json_decref(p);
	}
	if (!json_object_size(tensors)) {
		json_decref(tensors);
		return NULL;
	}
	g = json_pack("{s:s, s:I, s:o}", "method", method, "layer", (json_int_t)layer, "tensors",
		      tensors);
	if (!strcmp(method, "sparsegpt"))
		copy_keys(g, tp, sparsegpt_keys);
	return g;
}

/* The parameters of the lowrank step for one layer: each weight's rank or
 * energy, overrides applied; the globals stay whole. */
static json_t *lowrank_group(struct lowering *lw, int64_t layer)
{
	const char *names[NLAYER_WEIGHTS + 2];
	size_t i, n;
	json_t *tensors;

	if (layer < 0)
		return NULL;
	n = group_tensors(lw, layer, names);
	tensors = json_object();
	for (i = 0; i < n; i++) {
		json_t *p = tensor_params(lw->se->params, names[i], lw->used);

		if (!mcb_param_bool(p, "skip", 0)) {
			if (mcb_param_int(p, "rank", 0) > 0)
				json_object_set_new(tensors, names[i],
						    json_pack("{s:O}", "rank", json_object_get(p, "rank")));
			else
				json_object_set_new(tensors, names[i],
						    json_pack("{s:O}", "energy",
							      json_object_get(p, "energy")));
		}
		json_decref(p);
	}
	if (!json_object_size(tensors)) {
		json_decref(tensors);
		return NULL;
	}
	return json_pack("{s:s, s:I, s:o}", "method", mcb_param_str(lw->se->params, "method", "svd"),
			 "layer", (json_int_t)layer, "tensors", tensors);
}

/* "w4 g128", "w8 per-channel", "q4_k": a quantize step's short description. */
static const char *quant_desc(struct planner *pl, const json_t *g)
{
	const char *k;
	json_t *v;

	json_object_foreach (json_object_get(g, "tensors"), k, v) {
		const char *gt = mcb_param_str(v, "ggml_type", "none");
		int64_t bits = mcb_param_int(v, "bits", 0), gs = mcb_param_int(v, "group_size", 0);

		if (strcmp(gt, "none"))
			return gt;
		if (!strcmp(mcb_param_str(g, "method", ""), "fp8"))
			return "e4m3";
		return gs ? mcb_arena_printf(pl->a, "w%lld g%lld", (long long)bits, (long long)gs)
			  : mcb_arena_printf(pl->a, "w%lld per-channel", (long long)bits);
	}
	return "";
}

static const char *group_name(struct planner *pl, int64_t layer)
{
	return layer < 0 ? "globals" : mcb_arena_printf(pl->a, "blk.%lld", (long long)layer);
}

static const char *const calib_out[] = {"calib.safetensors"};

/*
 * The calibration step of target t: one step measuring every layer, or
 * (sequential, layer >= 0) the step of one layer, measured with the layers
 * before it already compressed: it depends on their final parts
 * parts[0..layer), an explicit chain in the DAG.
 */
static struct mcb_plan_step *plan_calibrate(struct planner *pl, const struct mcb_target *t,
					    struct mcb_plan_step *imp, int64_t layer,
					    struct mcb_plan_step *const *parts)
{
	struct mcb_plan_dep *deps =
		mcb_arena_array(pl->a, (size_t)(layer > 0 ? layer : 0) + 2, sizeof(*deps));
	const json_t *c = t->calibration;
	json_t *params = json_pack("{s:O, s:O, s:O, s:O, s:s}", "samples",
				   json_object_get(c, "samples"), "seq_len", json_object_get(c, "seq_len"),
				   "max_samples", json_object_get(c, "max_samples"), "seed",
				   json_object_get(c, "seed"), "format", t->calib_dataset->format);
	size_t nd = 0;
	int64_t l;

	deps[nd++] = data_dep(pl, t->calib_dataset);
	deps[nd].slot = "model";
	deps[nd].from = imp;
	deps[nd++].output = "model.safetensors";
	if (layer >= 0) {
		json_object_set_new(params, "layer_first", json_integer(layer));
		json_object_set_new(params, "layer_count", json_integer(1));
		for (l = 0; l < layer; l++)
			if (parts[l]) {
				deps[nd].slot = mcb_arena_printf(pl->a, "part.blk.%lld",
								 (long long)l);
				deps[nd].from = parts[l];
				deps[nd++].output = "part.safetensors";
			}
	}
	return intern(pl, "calibrate", params, deps, nd,
		      layer < 0 ? mcb_arena_printf(pl->a, "calibrate %s on %s", t->model->name,
						   t->calib_dataset->name)
				: mcb_arena_printf(pl->a, "calibrate %s %s %s on %s blk.%lld",
						   t->model->name, t->scheme->name,
						   t->export_format, t->calib_dataset->name,
						   (long long)layer),
		      layer < 0 ? mcb_arena_printf(pl->a, "calibrate %s on %s", t->model->name,
						   t->calib_dataset->name)
				: mcb_arena_printf(pl->a, "calibrate %s on %s (sequential, blk.%lld)",
						   t->model->name, t->calib_dataset->name,
						   (long long)layer),
		      calib_out, 1);
}

/* Does technique i (SparseGPT, unstructured or n:m) fuse with a gptq
 * quantizer right after it? */
static int fuses(const struct lowering *lw, size_t n, size_t i)
{
	const json_t *p = lw[i].se->params, *q;

	if (i + 1 >= n || strcmp(lw[i].se->tech->name, "prune") ||
	    strcmp(mcb_param_str(p, "method", ""), "sparsegpt") ||
	    strcmp(lw[i + 1].se->tech->name, "quantize"))
		return 0;
	q = lw[i + 1].se->params;
	return !strcmp(mcb_param_str(q, "method", ""), "gptq");
}

static int needs_calib(const struct mcb_stack_entry *se)
{
	return se->tech->needs_calibration && se->tech->needs_calibration(se->params);
}

/*
 * Lower t's stack.  Returns the step whose model.safetensors is the
 * compressed model (imp itself when the stack changes nothing), or NULL after
 * reporting an error.
 */
static struct mcb_plan_step *plan_stack(struct planner *pl, const struct mcb_target *t,
					struct mcb_plan_step *imp)
{
	const struct mcb_llama_config *cfg;
	struct mcb_plan_step **part, *calib = NULL, *calib_l;
	struct mcb_plan_dep *deps;
	int64_t nlayers, ng, gi, layer;
	size_t i, nd, nparts = 0;
	int sequential, any_calib = 0, bad = 0;
	struct lowering *lw;

	if (!t->scheme->nstack)
		return imp;
	if (!(cfg = model_config(pl, t->model)))
		return NULL;
	nlayers = cfg->n_layers;
	ng = nlayers + 1; /* blk.0 .. blk.N-1, globals */
	part = mcb_arena_array(pl->a, (size_t)ng, sizeof(*part));
	lw = mcb_arena_array(pl->a, t->scheme->nstack, sizeof(*lw));
	for (i = 0; i < t->scheme->nstack; i++) {
		lw[i].pl = pl;
		lw[i].t = t;
		lw[i].se = &t->scheme->stack[i];
		lw[i].cfg = cfg;
		lw[i].used = json_object();
		lw[i].kept = json_object();
		any_calib |= needs_calib(lw[i].se);
	}
	sequential = any_calib && mcb_param_bool(t->calibration, "sequential", 0);
	if (any_calib && !sequential)
		calib = plan_calibrate(pl, t, imp, -1, NULL);
	/* layer by layer (globals last): sequential calibration of layer L needs
	 * the final parts of the layers before it */
	for (gi = 0; gi < ng; gi++) {
		layer = gi < nlayers ? gi : -1;
		calib_l = calib;
		if (sequential && layer >= 0)
			calib_l = plan_calibrate(pl, t, imp, layer, part);
		for (i = 0; i < t->scheme->nstack; i++) {
			const struct mcb_stack_entry *se = lw[i].se;
			json_t *g = !strcmp(se->tech->name, "quantize") ? quantize_group(&lw[i], layer)
			            : !strcmp(se->tech->name, "prune")  ? prune_group(&lw[i], layer)
			            : !strcmp(se->tech->name, "lowrank") ? lowrank_group(&lw[i], layer)
								 : NULL;
			int joint = g && layer >= 0 && fuses(lw, t->scheme->nstack, i);
			struct mcb_plan_dep d[2];
			const char *gn = group_name(pl, layer), *what;

			if (!g)
				continue;
			if (joint) { /* SparseGPT quantizes in the same pass (its joint mode) */
				json_t *qg = quantize_group(&lw[i + 1], layer);

				if (qg)
					json_object_set_new(g, "quantize",
							    json_pack("{s:O}", "tensors",
								      json_object_get(qg, "tensors")));
				json_decref(qg);
			}
			memset(d, 0, sizeof(d));
			d[0].slot = "model";
			d[0].from = part[gi] ? part[gi] : imp;
			d[0].output = part[gi] ? "part.safetensors" : "model.safetensors";
			nd = 1;
			if (layer >= 0 && needs_calib(se)) {
				d[1].slot = "calib";
				d[1].from = calib_l;
				d[1].output = "calib.safetensors";
				nd = 2;
			}
			what = !strcmp(se->tech->name, "quantize")
				       ? mcb_arena_printf(pl->a, "quantize %s %s",
							  mcb_param_str(g, "method", "?"),
							  quant_desc(pl, g))
				       : !strcmp(se->tech->name, "lowrank")
				       ? mcb_arena_printf(pl->a, "lowrank %s",
							  mcb_param_str(g, "method", "?"))
				       : mcb_arena_printf(pl->a, "prune %s%s%s",
							  mcb_param_str(g, "method", "?"),
							  joint ? " + gptq " : "",
							  joint ? quant_desc(pl, json_object_get(g, "quantize"))
								: "");
			part[gi] = intern(pl, se->tech->name, g, d, nd,
					  mcb_arena_printf(pl->a, "%s %s %s#%zu %s %s",
							   se->tech->name, t->model->name,
							   t->scheme->name, i, t->export_format, gn),
					  mcb_arena_printf(pl->a, "%s %s %s", what, t->model->name,
							   gn),
					  part_out, 1);
			i += joint; /* the quantizer ran inside this step */
		}
	}
	for (i = 0; i < t->scheme->nstack; i++) {
		const char *pat;
		json_t *v;

		json_object_foreach (json_object_get(lw[i].se->params, "overrides"), pat, v)
			if (!json_object_get(lw[i].used, pat) && !lw[i].bad &&
			    json_object_get(lw[i].kept, pat))
				lower_error(&lw[i],
					    "override '%s' names %s, which a %s export keeps in "
					    "floating point (gguf quantizes the embeddings and the "
					    "classifier, safetensors an untied output.weight, gptq "
					    "and awq checkpoints neither)",
					    pat, json_string_value(json_object_get(lw[i].kept, pat)),
					    t->export_format);
			else if (!json_object_get(lw[i].used, pat) && !lw[i].bad)
				lower_error(&lw[i],
					    "override '%s' names no tensor of model '%s' (its "
					    "tensors are named like blk.0.ffn_down.weight and %s)",
					    pat, t->model->name,
					    cfg->tied_embeddings
						    ? "token_embd.weight, which is also its "
						      "classifier: it has no output.weight"
						    : "output.weight");
		if (!lw[i].bad && !strcmp(lw[i].se->tech->name, "quantize") && !lw[i].nquant &&
		    lw[i].first_fallback &&
		    (!strcmp(t->export_format, "gptq") || !strcmp(t->export_format, "awq")))
			lower_error(&lw[i],
				    "with these parameters no weight of model '%s' can be stored in "
				    "a %s checkpoint: every one would stay in floating point (%s)",
				    t->model->name, t->export_format, lw[i].first_fallback);
		bad |= lw[i].bad;
		json_decref(lw[i].used);
		json_decref(lw[i].kept);
		json_decref(lw[i].memo[0].r);
		json_decref(lw[i].memo[1].r);
	}
	if (bad)
		return NULL;
	deps = mcb_arena_array(pl->a, (size_t)ng + 1, sizeof(*deps));
	memset(deps, 0, ((size_t)ng + 1) * sizeof(*deps));
	nd = 0;
	deps[nd].slot = "model";
	deps[nd].from = imp;
	deps[nd++].output = "model.safetensors";
	for (gi = 0; gi < ng; gi++)
		if (part[gi]) {
			deps[nd].slot = mcb_arena_printf(pl->a, "part.%s",
							 group_name(pl, gi < nlayers ? gi : -1));
			deps[nd].from = part[gi];
			deps[nd++].output = "part.safetensors";
			nparts++;
		}
	if (!nparts)
		return imp;
	return intern(pl, "assemble", json_object(), deps, nd,
		      mcb_arena_printf(pl->a, "assemble %s %s %s", t->model->name, t->scheme->name,
				       t->export_format),
		      mcb_arena_printf(pl->a, "assemble %s/%s (%zu part%s)", t->model->name,
				       t->scheme->name, nparts, nparts == 1 ? "" : "s"),
		      model_out, 1);
}
/* plan_stack, once per model, scheme, export format and calibration: the
 * targets that differ only in hardware of one export format (the no-op
 * rebuild of many targets spends its planning time here) share the result,
 * the steps being interned anyway. */
static struct mcb_plan_step *plan_stack_once(struct planner *pl, const struct mcb_target *t,
					     struct mcb_plan_step *imp)
{
	char *calib = t->calibration ? json_dumps(t->calibration, JSON_COMPACT | JSON_SORT_KEYS)
				     : NULL;
	const char *key = mcb_arena_printf(pl->a, "%s\n%s\n%s\n%s", t->model->name,
					   t->scheme->name, t->export_format,
					   calib ? calib : "");
	struct mcb_plan_step *s = mcb_strmap_get(&pl->stacks, key);

	free(calib);
	if (s)
		return s;
	if ((s = plan_stack(pl, t, imp)))
		mcb_strmap_put(&pl->stacks, key, s);
	return s;
}

static struct mcb_plan_step *plan_export(struct planner *pl, const struct mcb_target *t,
					 struct mcb_plan_step *prev)
{
	struct mcb_plan_dep dep;
	int gguf = !strcmp(t->export_format, "gguf"), gptq = !strcmp(t->export_format, "gptq");

	memset(&dep, 0, sizeof(dep));
	dep.slot = "model";
	dep.from = prev;
	dep.output = "model.safetensors";
	return intern(pl, "export", json_pack("{s:s}", "format", t->export_format), &dep, 1,
		      mcb_arena_printf(pl->a, "export %s %s %s", t->model->name, t->scheme->name,
				       t->export_format),
		      mcb_arena_printf(pl->a, "export %s %s/%s", t->export_format, t->model->name,
				       t->scheme->name),
		      gguf ? gguf_out : gptq ? gptq_out : st_out, gguf ? 1 : gptq ? 3 : 2);
}

/* Append s's producers, then s, to out (depth first, deps in slot order),
 * each once. */
static void post_order(struct mcb_plan_step *s, char *seen, struct mcb_plan_step **out, size_t *n)
{
	size_t i;

	if (seen[s->id])
		return;
	seen[s->id] = 1;
	for (i = 0; i < s->ndeps; i++)
		if (s->deps[i].from)
			post_order(s->deps[i].from, seen, out, n);
	out[(*n)++] = s;
}

/*
 * Every step the target's bundle depends on, producers first, in an order
 * that depends only on the bundle's own part of the DAG (a depth-first
 * post-order over its inputs, which are sorted by slot): the manifest and
 * the bundle's key must not change with the other targets planned beside
 * it, as the plan's order does.
 */
static void collect_chain(struct planner *pl, struct mcb_plan_step *bundle)
{
	char *seen = mcb_xcalloc(pl->p->nsteps + 1, 1);
	size_t i;

	bundle->chain = mcb_arena_array(pl->a, pl->p->nsteps + 1, sizeof(*bundle->chain));
	bundle->nchain = 0;
	seen[bundle->id] = 1;
	for (i = 0; i < bundle->ndeps; i++)
		if (bundle->deps[i].from)
			post_order(bundle->deps[i].from, seen, bundle->chain, &bundle->nchain);
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
	struct mcb_plan_dep m[2];
	size_t nd = 0, i;
	json_t *evals = json_array(), *params, *perf = t->performance;

	if (t->quality) {
		json_decref(evals);
		evals = plan_evals(pl, t, imp, last, deps, &nd);
	}
	memset(m, 0, sizeof(m));
	m[0].slot = "model";
	m[0].from = last;
	m[0].output = "model.safetensors";
	m[1].slot = "baseline"; /* for its parameter count */
	m[1].from = imp;
	m[1].output = "model.safetensors";
	deps[nd].slot = "measure.json";
	deps[nd].from = intern(
		pl, "measure",
		json_pack("{s:O, s:O, s:O, s:i, s:s, s:s}", "prompt_tokens",
			  json_object_get(perf, "prompt_tokens"), "decode_tokens",
			  json_object_get(perf, "decode_tokens"), "repeats",
			  json_object_get(perf, "repeats"), "threads", mcb_os_ncpu(), "mode",
			  runtime_mode(t), "host", host_cpu(pl)),
		m, last != imp ? 2 : 1,
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

/* After a target failed to plan: forget the steps that no planned target
 * needs (its import, the layers lowered before the error), so that -k runs
 * only what the planned targets need. */
static void drop_unused(struct mcb_plan *p)
{
	char *seen = mcb_xcalloc(p->nsteps + 1, 1);
	struct mcb_plan_step **order = mcb_xcalloc(p->nsteps + 1, sizeof(*order));
	size_t i, j, n = 0;

	for (i = 0; i < p->ntargets; i++)
		post_order(p->targets[i].bundle, seen, order, &n);
	free(order);
	n = 0;
	for (i = 0; i < p->nsteps; i++) {
		struct mcb_plan_step *s = p->steps[i];

		if (!seen[i]) {
			json_decref(s->params);
			free(s->users);
			continue;
		}
		s->id = n;
		p->steps[n++] = s;
	}
	p->nsteps = n;
	for (i = 0; i < n; i++) {
		struct mcb_plan_step *s = p->steps[i];
		size_t k = 0;

		for (j = 0; j < s->nusers; j++) /* users were planned after s: ids are final */
			if (s->users[j]->id < n && p->steps[s->users[j]->id] == s->users[j])
				s->users[k++] = s->users[j];
		s->nusers = k;
	}
	free(seen);
}

int mcb_plan_build(struct mcb_plan *p, struct mcb_arena *a, struct mcb_target *const *targets,
		   size_t n, struct mcb_diags *d)
{
	struct planner pl = {p, a, d, MCB_STRMAP_INIT, MCB_STRMAP_INIT, NULL, MCB_STRMAP_INIT};
	size_t before = d->nerr;
	size_t ti, i;

	memset(p, 0, sizeof(*p));
	p->targets = mcb_arena_array(a, n, sizeof(*p->targets));
	for (ti = 0; ti < n; ti++) {
		const struct mcb_target *t = targets[ti];
		struct mcb_plan_step *s, *imp, *exp, *rep, *bundle;
		struct mcb_plan_dep *deps;
		size_t nd;

		imp = plan_import(&pl, t->model);
		if (!(s = plan_stack_once(&pl, t, imp)))
			continue;
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
		p->targets[p->ntargets].target = t;
		p->targets[p->ntargets].exp = exp;
		p->targets[p->ntargets].report = rep;
		p->targets[p->ntargets++].bundle = bundle;
	}
	mcb_strmap_release(&pl.interned);
	mcb_strmap_release(&pl.stacks);
	mcb_strmap_release(&pl.configs);
	if (d->nerr > before) {
		drop_unused(p);
		return MCB_ERECIPE;
	}
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
