/*
 * recipe: loading, checking and resolving a workspace (recipe.h).
 *
 * Loading runs in passes, each reporting every problem it finds and going on:
 *   1. read the built-in hardware files, then mcbuild.yaml and its includes
 *      (depth first, each file once; escapes, cycles and limits reported);
 *   2. collect every section's entries from every file, reporting names
 *      defined twice (a workspace hardware profile replaces a built-in one);
 *   3. check models, datasets, hardware profiles (alias: and base: followed),
 *      schemes (use: spliced) and target rules (paths, placeholders, fields,
 *      matrices);
 *   4. declare targets (explicit rules and matrix instances), checking each
 *      against its hardware, then resolve default:.
 * A declaration with errors is kept under its name but marked broken, so
 * that uses of it do not cascade into more errors, and it never yields a
 * target.
 *
 * Ownership: everything lives in ws->arena; every json_t the workspace holds
 * is recorded once in the state's pool and released by
 * mcb_workspace_release.  JSON values are shared between structures (an
 * alias's profile, a spliced stack entry, a target's resolved form) and must
 * not be modified by users.
 */
#include <errno.h>
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/builtin.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/recipe.h"
#include "mcb/schema.h"
#include "mcb/technique.h"
#include "mcb/yaml.h"

#define NAME_LEN_MAX 64      /* bytes in a name (mcb_schema_name_ok) */
#define MAX_DECLARED 10000   /* declared targets: explicit rules plus matrix instances */
#define MAX_STACK 256        /* techniques in one scheme once use: is spliced */
#define MAX_USE_DEPTH 64     /* use: nested this deep is an error */
#define MAX_SPLITS 16        /* alternative splits kept for an ambiguity message */
#define MAX_HITS 8           /* matching rules named in an ambiguity message */
#define MAX_PH 3             /* placeholders in a pattern: each names one of the 3 fields */
#define MAX_PATTERNS 1000    /* pattern rules (every request is matched against each) */
#define DYM_BUDGET 20000000  /* did-you-mean candidates compared per load, at most */
#define BUILTIN_PREFIX "<builtin>"

enum { S_MODELS, S_DATASETS, S_SCHEMES, S_HARDWARE, S_TARGETS, NSECTIONS };
static const char *const section_key[NSECTIONS] = {"models", "datasets", "schemes", "hardware",
						   "targets"};
static const char *const section_noun[NSECTIONS] = {"model", "dataset", "scheme",
						    "hardware profile", "target"};

enum { F_MODEL, F_HW, F_STACK, NFIELDS };
static const char *const field_key[NFIELDS] = {"model", "hardware", "stack"};
static const char *const field_noun[NFIELDS] = {"model", "hardware", "scheme"};

/* One recipe file. */
struct rfile {
	const char *rel;         /* relative to the root; the embedded path for built-ins */
	const char *display;     /* as shown in messages */
	const char *absdir;      /* absolute directory holding it (relative paths start here) */
	const struct mcb_node *root; /* the document, NULL when empty or unparsable */
	int builtin;
	int open;                /* 1 while its includes are being loaded */
};

/* A named entry of a section, as collected from a file. */
struct entry {
	const char *name;
	const struct mcb_node *key;   /* the name (positions) */
	const struct mcb_node *value;
	const struct rfile *file;
	size_t seq;                   /* collection order: files in load order, keys in order */
};

struct modelx {
	const char *written; /* path as written in the recipe */
	int broken;
};

/* A hardware declaration: the visible one for its name, or a built-in that a
 * workspace profile of the same name replaced (reachable only as that
 * profile's base:). */
struct hwnode {
	const struct entry *e;
	int builtin;
	int visible;
	struct hwnode *overridden;   /* the built-in this profile replaces, or NULL */
	const struct mcb_node *alias, *base; /* value nodes, or NULL */
	json_t *own;                 /* its own checked fields; NULL when broken */
	int state;                   /* 0: unresolved, 1: on the chain being resolved, 2: done */
	int broken;
	struct hwnode *next;         /* alias or base target once resolved */
	struct hwnode *final;        /* alias chain followed: a profile, never an alias */
	json_t *json;                /* resolved profile (final's for an alias); NULL when broken */
};

/* A stack item before use: is spliced. */
struct sitem {
	const struct mcb_node *use;  /* use: value, or NULL for a technique */
	struct mcb_stack_entry entry;
};

struct schx {
	struct sitem *items;
	size_t nitems;
	size_t depth; /* schemes on its longest use: chain, itself included (once done) */
	int state;    /* 0: not expanded, 1: expanding, 2: done */
	int broken;
};

/* A target pattern segment: literal text or a placeholder. */
struct seg {
	const char *lit; /* literal text (len bytes), when ph < 0 */
	size_t len;
	int ph;          /* placeholder index, or -1 */
};

struct ph {
	const char *name;
	int field;       /* F_*, or -1 when no field uses it */
};

struct rulex {
	struct seg *segs;
	size_t nsegs;
	struct ph *phs;
	size_t nphs;
	int segs_ok;                          /* pattern parsed and every placeholder bound */
	const char *lit[NFIELDS];             /* literal field value, or NULL */
	int fph[NFIELDS];                     /* placeholder giving the field, or -1 */
	const struct mcb_node *fnode[NFIELDS]; /* field value nodes */
	const char *export;                   /* export: value, or NULL */
	const struct mcb_node *export_node;
	const struct mcb_node *matrix, *matrix_key;
	json_t *quality;                      /* checked quality: section, or NULL */
	const struct mcb_dataset_decl **datasets; /* the datasets it names (ndatasets) */
	size_t ndatasets;
	json_t *performance;                  /* checked performance: section (defaults) */
	json_t *calibration;                  /* checked calibration: section, or NULL */
	const struct mcb_dataset_decl *calib_dataset;
	int broken;                           /* errors reported: yields no targets */
};

struct mcb_recipe_state {
	const char *prefix;            /* display prefix */
	const char *realroot;          /* realpath of the root, for symlink checks */
	struct rfile *files;           /* nfiles: built-ins first, then the workspace's */
	size_t nfiles, filecap;
	size_t nbuiltin;               /* files[0..nbuiltin) are built-in */
	size_t *open;                  /* include stack: indexes into files */
	size_t nopen, opencap;
	int too_many;                  /* "more than 64 files" reported */
	json_t **pool;                 /* every json_t reference the workspace owns */
	size_t npool, poolcap;
	struct entry *sec[NSECTIONS];  /* workspace entries per section */
	size_t nsec[NSECTIONS], seccap[NSECTIONS];
	struct entry *bhw;             /* built-in hardware entries */
	size_t nbhw, bhwcap;
	size_t seq;
	struct modelx *mx;             /* parallel to ws->models */
	int *dbroken;                  /* parallel to ws->datasets */
	struct hwnode **hx;            /* parallel to ws->hw: the visible node */
	struct schx *sx;               /* parallel to ws->schemes */
	struct rulex *rx;              /* parallel to ws->rules */
	const char **names[3];         /* model, hardware and scheme names, sorted (did-you-mean) */
	size_t nnames[3];
	const char **declared_paths;   /* parallel to ws->declared */
	struct mcb_target **extra;     /* resolved from patterns, not declared */
	size_t nextra, extracap;
	const struct mcb_node *defaults_node;
	size_t dym_budget;             /* did-you-mean candidates left to compare */
	struct protect *protect;       /* sorted by rel: paths a target must not overwrite */
	size_t nprotect, protectcap;
};

/* The state a pass needs. */
struct ctx {
	struct mcb_workspace *ws;
	struct mcb_recipe_state *st;
	struct mcb_arena *a;
	struct mcb_diags *d;
};

#define PUSH(a, v, n, cap) ((v) = mcb_arena_grow((a), (v), (n), &(cap), sizeof(*(v))), &(v)[(n)++])

static json_t *keep(struct ctx *c, json_t *v)
{
	if (v)
		*PUSH(c->a, c->st->pool, c->st->npool, c->st->poolcap) = v;
	return v;
}

/* "file:line:col" of loc, for messages that point elsewhere. */
static const char *at(struct ctx *c, const struct mcb_loc *loc)
{
	if (!loc->file)
		return "the command line";
	return mcb_arena_printf(c->a, "%s:%d:%d", loc->file, loc->line, loc->col);
}

static int stringish(const struct mcb_node *n)
{
	return n && n->kind == MCB_NODE_SCALAR && !mcb_node_is_null(n);
}

static int in_list(const char *s, const char *const *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, v[i]))
			return 1;
	return 0;
}

static const char *joined(struct ctx *c, const char *const *v, size_t n, const char *none)
{
	struct mcb_buf b = MCB_BUF_INIT;
	char *s;
	size_t i;

	if (n == 0)
		return none;
	for (i = 0; i < n; i++) {
		if (i)
			mcb_buf_adds(&b, ", ");
		mcb_buf_adds(&b, v[i]);
	}
	s = mcb_arena_strdup(c->a, mcb_buf_str(&b));
	mcb_buf_release(&b);
	return s;
}

/* " (did you mean 'x'?)" or "".  Suggestions stop once the load has
 * compared DYM_BUDGET candidates, so that thousands of unknown names
 * against thousands of declared ones cannot take minutes. */
static const char *dym(struct ctx *c, const char *word, const char *const *cands, size_t n)
{
	const char *s;

	if (n > c->st->dym_budget)
		return "";
	c->st->dym_budget -= n;
	s = mcb_didyoumean(word, cands, n);
	return s ? mcb_arena_printf(c->a, " (did you mean '%s'?)", s) : "";
}

/* Report keys of map not in allowed (NULL-terminated). */
static void unknown_keys(struct ctx *c, const struct mcb_node *map, const char *const *allowed,
			 const char *in)
{
	size_t i, n = 0;

	while (allowed[n])
		n++;
	for (i = 0; i < map->nitems; i++) {
		const char *k = map->keys[i]->str;

		if (in_list(k, allowed, n))
			continue;
		mcb_diag_error(c->d, &map->keys[i]->loc, "unknown key '%s' in %s%s", k, in,
			       dym(c, k, allowed, n));
	}
}

/* Lexically normalise an absolute path ("/a/./b/../c" -> "/a/c"). */
static char *clean_abs(struct mcb_arena *a, const char *path)
{
	size_t n = strlen(path), len = 0;
	char *out = mcb_arena_alloc(a, n + 2);
	const char *p = path, *q;

	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		q = strchr(p, '/');
		if (!q)
			q = p + strlen(p);
		if (q - p == 1 && p[0] == '.') {
			/* skip */
		} else if (q - p == 2 && p[0] == '.' && p[1] == '.') {
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			out[len++] = '/';
			memcpy(out + len, p, (size_t)(q - p));
			len += (size_t)(q - p);
		}
		p = q;
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	return out;
}

/* An absolute, normalised path for path written in a file living in dir. */
static char *abs_path(struct mcb_arena *a, const char *dir, const char *path)
{
	return clean_abs(a, path[0] == '/' ? path : mcb_path_join(a, dir, path));
}

/* 1 if child is parent or inside it (relative paths). */
static int path_within(const char *child, const char *parent)
{
	size_t n = strlen(parent);

	return !strncmp(child, parent, n) && (child[n] == '\0' || child[n] == '/');
}

/* path relative to the root when inside it, else NULL. */
static const char *rel_to_root(struct ctx *c, const char *abs)
{
	size_t n = strlen(c->ws->root);

	if (!strcmp(c->ws->root, "/"))
		return abs[1] ? abs + 1 : NULL;
	if (strncmp(abs, c->ws->root, n) || abs[n] != '/')
		return NULL;
	return abs + n + 1;
}

/* ---- pass 1: files ---------------------------------------------------- */

static void load_file(struct ctx *c, const char *rel, const struct mcb_node *from);

static void include_cycle(struct ctx *c, size_t target, const struct mcb_node *from)
{
	struct mcb_recipe_state *st = c->st;
	struct mcb_buf b = MCB_BUF_INIT;
	size_t k;

	for (k = 0; k < st->nopen && st->open[k] != target; k++)
		;
	for (; k < st->nopen; k++)
		mcb_buf_printf(&b, "%s -> ", st->files[st->open[k]].display);
	mcb_buf_adds(&b, st->files[target].display);
	mcb_diag_error(c->d, &from->loc, "include cycle: %s", mcb_buf_str(&b));
	mcb_buf_release(&b);
}

static void load_includes(struct ctx *c, size_t idx, const struct mcb_node *inc)
{
	struct mcb_recipe_state *st = c->st;
	const struct mcb_node *const *items;
	const struct mcb_node *one[1];
	size_t n, i, k;

	if (mcb_node_is_null(inc))
		return;
	if (inc->kind == MCB_NODE_SCALAR) {
		one[0] = inc;
		items = one;
		n = 1;
	} else if (inc->kind == MCB_NODE_SEQ) {
		items = (const struct mcb_node *const *)inc->items;
		n = inc->nitems;
	} else {
		mcb_diag_error(c->d, &inc->loc, "'include' must be a list of files, not %s",
			       mcb_node_kind_phrase(inc));
		return;
	}
	for (i = 0; i < n; i++) {
		const struct mcb_node *it = items[i];
		const char *dir, *clean;
		char *real;

		if (!stringish(it)) {
			mcb_diag_error(c->d, &it->loc,
				       "'include' entries must be file paths, not %s",
				       mcb_node_kind_phrase(it));
			continue;
		}
		if (it->str[0] == '/') {
			mcb_diag_error(c->d, &it->loc,
				       "include '%s' must be a relative path (included "
				       "files stay inside the workspace)",
				       it->str);
			continue;
		}
		dir = mcb_path_dir(c->a, st->files[idx].rel);
		clean = mcb_path_clean_relative(c->a, mcb_path_join(c->a, dir, it->str));
		if (!clean) {
			mcb_diag_error(c->d, &it->loc, "include '%s' is outside the workspace",
				       it->str);
			continue;
		}
		if (!strcmp(clean, ".")) {
			mcb_diag_error(c->d, &it->loc, "include '%s' names a directory, not a file",
				       it->str);
			continue;
		}
		real = realpath(mcb_path_join(c->a, c->ws->root, clean), NULL);
		if (real) {
			int inside = st->realroot && (path_within(real, st->realroot) ||
						      !strcmp(st->realroot, "/"));

			free(real);
			if (!inside) {
				mcb_diag_error(c->d, &it->loc,
					       "include '%s' leads outside the workspace "
					       "(through a symbolic link)",
					       it->str);
				continue;
			}
		}
		for (k = st->nbuiltin; k < st->nfiles; k++)
			if (!strcmp(st->files[k].rel, clean))
				break;
		if (k < st->nfiles) {
			if (st->files[k].open)
				include_cycle(c, k, it);
			continue; /* loaded once */
		}
		if (st->nfiles - st->nbuiltin >= MCB_RECIPE_MAX_INCLUDES) {
			if (!st->too_many)
				mcb_diag_error(c->d, &it->loc,
					       "more than %d recipe files (include of '%s' "
					       "and beyond ignored)",
					       MCB_RECIPE_MAX_INCLUDES, it->str);
			st->too_many = 1;
			continue;
		}
		load_file(c, clean, it);
	}
}

static void load_file(struct ctx *c, const char *rel, const struct mcb_node *from)
{
	struct mcb_recipe_state *st = c->st;
	struct mcb_buf text = MCB_BUF_INIT;
	struct mcb_errctx e;
	const char *abs = mcb_path_join(c->a, c->ws->root, rel);
	const char *display = mcb_path_join(c->a, st->prefix, rel);
	struct mcb_node *root = NULL;
	struct rfile *f;
	size_t idx;
	int rc;

	mcb_errclear(&e);
	rc = mcb_os_read_file(abs, MCB_RECIPE_MAX_BYTES, &text, &e);
	if (rc) {
		struct mcb_loc none = {display, 0, 0};
		const struct mcb_loc *loc = from ? &from->loc : &none;

		if (rc == MCB_ENOENT && from)
			mcb_diag_error(c->d, loc, "included file '%s' does not exist", display);
		else if (rc == MCB_ENOENT)
			mcb_diag_error(c->d, NULL, "no %s in '%s'", MCB_RECIPE_FILE, c->ws->root);
		else if (rc == MCB_ERANGE)
			mcb_diag_error(c->d, loc, "'%s' is larger than %u bytes", display,
				       MCB_RECIPE_MAX_BYTES);
		else
			mcb_diag_error(c->d, loc, "%s", e.msg);
		mcb_buf_release(&text);
		return;
	}
	idx = st->nfiles;
	f = PUSH(c->a, st->files, st->nfiles, st->filecap);
	f->rel = rel;
	f->display = display;
	f->absdir = clean_abs(c->a, mcb_path_dir(c->a, abs));
	f->open = 1;
	mcb_yaml_parse(c->a, display, text.data ? text.data : "", text.len, &root, c->d);
	mcb_buf_release(&text);
	st->files[idx].root = root;
	*PUSH(c->a, st->open, st->nopen, st->opencap) = idx;
	if (root && root->kind == MCB_NODE_MAP && mcb_node_get(root, "include"))
		load_includes(c, idx, mcb_node_get(root, "include"));
	st->nopen--;
	st->files[idx].open = 0;
}

static void load_builtins(struct ctx *c)
{
	struct mcb_recipe_state *st = c->st;
	const struct mcb_builtin_file *b;
	struct mcb_node *root;
	struct rfile *f;

	for (b = mcb_builtin_files; b->path; b++) {
		f = PUSH(c->a, st->files, st->nfiles, st->filecap);
		f->rel = b->path;
		f->display = mcb_arena_printf(c->a, "%s/%s", BUILTIN_PREFIX, b->path);
		f->absdir = "/";
		f->builtin = 1;
		root = NULL;
		mcb_yaml_parse(c->a, f->display, b->text, strlen(b->text), &root, c->d);
		f->root = root;
	}
	st->nbuiltin = st->nfiles;
}

/* ---- pass 2: sections ------------------------------------------------- */

static const char *const root_keys[] = {"mcbuild", "include", "cache", "default", "models",
					"datasets", "schemes", "hardware", "targets", NULL};
static const char *const builtin_keys[] = {"hardware", NULL};

static void collect_section(struct ctx *c, const struct rfile *f, int s, const struct mcb_node *v)
{
	struct mcb_recipe_state *st = c->st;
	struct entry *e;
	size_t i;

	if (mcb_node_is_null(v))
		return;
	if (v->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a mapping, not %s", section_key[s],
			       mcb_node_kind_phrase(v));
		return;
	}
	for (i = 0; i < v->nitems; i++) {
		const struct mcb_node *k = v->keys[i];

		if (s != S_TARGETS && !mcb_schema_name_ok(k->str)) {
			mcb_diag_error(c->d, &k->loc,
				       "invalid %s name '%s' (names use letters, digits, "
				       "'.', '_' and '-', at most %d bytes)",
				       section_noun[s], k->str, NAME_LEN_MAX);
			continue;
		}
		if (f->builtin)
			e = PUSH(c->a, st->bhw, st->nbhw, st->bhwcap);
		else
			e = PUSH(c->a, st->sec[s], st->nsec[s], st->seccap[s]);
		e->name = k->str;
		e->key = k;
		e->value = v->items[i];
		e->file = f;
		e->seq = st->seq++;
	}
}

static void check_version(struct ctx *c, const struct mcb_node *v)
{
	int64_t ver;

	if (mcb_node_int(v, &ver) < 0)
		mcb_diag_error(c->d, &v->loc,
			       "'mcbuild' must be an integer (the recipe version, 1), "
			       "not %s",
			       mcb_node_kind_phrase(v));
	else if (ver != 1)
		mcb_diag_error(c->d, &v->loc, "unsupported recipe version %s (this mcbuild reads "
			       "version 1)", v->str);
}

static void check_cache(struct ctx *c, const struct mcb_node *v)
{
	static const struct mcb_param cache_params[] = {
		{"dir", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL, "cache directory"},
		{"max_size", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL,
		 "the size mcbuild gc keeps the cache under"},
	};
	json_t *out;
	const char *dir, *max;

	if (mcb_schema_check(cache_params, 2, v, "'cache'", &out, c->d))
		return;
	dir = json_string_value(json_object_get(out, "dir"));
	if (dir)
		c->ws->cache_dir = abs_path(c->a, c->ws->root, dir);
	max = json_string_value(json_object_get(out, "max_size"));
	if (max && mcb_parse_size(max, &c->ws->cache_max) < 0)
		mcb_diag_error(c->d, &mcb_node_get(v, "max_size")->loc,
			       "'max_size' must be a size such as 500M, 20G or 1.5TiB, not '%s'",
			       max);
	else if (max)
		c->ws->cache_max_set = 1;
	json_decref(out);
}

static void collect_file(struct ctx *c, const struct rfile *f, int is_root)
{
	const struct mcb_node *r = f->root;
	size_t i;
	int s;

	if (mcb_node_is_null(r))
		return;
	if (r->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &r->loc,
			       "a recipe file must be a mapping of sections (models:, "
			       "targets: ...), not %s",
			       mcb_node_kind_phrase(r));
		return;
	}
	for (i = 0; i < r->nitems; i++) {
		const char *k = r->keys[i]->str;
		const struct mcb_node *v = r->items[i];
		const char *const *allowed = f->builtin ? builtin_keys : root_keys;
		size_t na = 0;

		while (allowed[na])
			na++;
		if (!strncmp(k, "x-", 2))
			continue; /* extension keys: a place for YAML anchors */
		if (!in_list(k, allowed, na)) {
			mcb_diag_error(c->d, &r->keys[i]->loc, "unknown key '%s'%s", k,
				       dym(c, k, allowed, na));
			continue;
		}

		if (f->builtin && strcmp(k, "hardware"))
			continue;
		if (!strcmp(k, "mcbuild")) {
			check_version(c, v);
		} else if (!strcmp(k, "cache") || !strcmp(k, "default")) {
			if (!is_root)
				mcb_diag_error(c->d, &r->keys[i]->loc,
					       "'%s' is only allowed in %s, not in "
					       "included files",
					       k, MCB_RECIPE_FILE);
			else if (!strcmp(k, "cache"))
				check_cache(c, v);
			else
				c->st->defaults_node = v;
		} else {
			for (s = 0; s < NSECTIONS; s++)
				if (!strcmp(k, section_key[s]))
					collect_section(c, f, s, v);
		}
	}
}

static int entry_cmp(const void *x, const void *y)
{
	const struct entry *a = x, *b = y;
	int r = strcmp(a->name, b->name);

	if (r)
		return r;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Sort entries by name, report the second and later definitions of a
 * name, keep the first; returns the new count. */
static size_t dedupe(struct ctx *c, struct entry *v, size_t n, const char *noun)
{
	size_t i, out = 0;

	if (n > 1)
		qsort(v, n, sizeof(*v), entry_cmp);
	for (i = 0; i < n; i++) {
		if (out && !strcmp(v[out - 1].name, v[i].name)) {
			mcb_diag_error(c->d, &v[i].key->loc,
				       "duplicate %s '%s' (first defined at %s)", noun, v[i].name,
				       at(c, &v[out - 1].key->loc));
			continue;
		}
		v[out++] = v[i];
	}
	return out;
}

/* Binary search for name in an array of structs whose first member is the name. */
static void *find_named(const void *base, size_t n, size_t size, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = *(const char *const *)((const char *)base + mid * size);
		int r = strcmp(name, m);

		if (!r)
			return (char *)base + mid * size;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const struct mcb_model_decl *find_model(const struct mcb_workspace *ws, const char *name)
{
	return find_named(ws->models, ws->nmodels, sizeof(*ws->models), name);
}

static const struct mcb_scheme *find_scheme(const struct mcb_workspace *ws, const char *name)
{
	return find_named(ws->schemes, ws->nschemes, sizeof(*ws->schemes), name);
}

const struct mcb_hw *mcb_workspace_hw(const struct mcb_workspace *ws, const char *name)
{
	return find_named(ws->hw, ws->nhw, sizeof(*ws->hw), name);
}

/* Whether name exists in the namespace of field f. */
static int ns_has(const struct mcb_workspace *ws, int f, const char *name)
{
	if (f == F_MODEL)
		return find_model(ws, name) != NULL;
	if (f == F_HW)
		return mcb_workspace_hw(ws, name) != NULL;
	return find_scheme(ws, name) != NULL;
}

static void unknown_name(struct ctx *c, int f, const struct mcb_node *n)
{
	mcb_diag_error(c->d, &n->loc, "unknown %s '%s'%s", field_noun[f], n->str,
		       dym(c, n->str, c->st->names[f], c->st->nnames[f]));
}

/* ---- pass 3: models and datasets --------------------------------------- */

static const char *const model_formats[] = {"auto", "llama2c", "gguf", "safetensors", NULL};
static const char *const dataset_kinds[] = {"tokens", "text", "labelled", NULL};

static const struct mcb_param model_params[] = {
	{"path", MCB_P_STR, NULL, 0, 0, NULL, "the model file, relative to this recipe file"},
	{"format", MCB_P_ENUM, "auto", 0, 0, model_formats, "file format (auto: from the content)"},
	{"config", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL,
	 "safetensors only: config.json (default: config.json beside path)"},
};

static const struct mcb_param dataset_params[] = {
	{"path", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL,
	 "the data file, relative to this recipe file (or sample:)"},
	{"kind", MCB_P_ENUM, "tokens", 0, 0, dataset_kinds, "tokens, text or labelled"},
	{"labels", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL,
	 "labelled IDX images: the IDX label file (path: the images)"},
};

/* sample: token sequences drawn from a model with a fixed seed (the FP32
 * model, before any technique), for models without data of their own. */
static const struct mcb_param sample_params[] = {
	{"model", MCB_P_NAME, NULL, 0, 0, NULL, "the model to sample"},
	{"sequences", MCB_P_INT, "64", 1, 1000000, NULL, "number of sequences (items)"},
	{"length", MCB_P_INT, "128", 2, 1000000, NULL, "tokens per sequence, BOS included"},
	{"seed", MCB_P_INT, "1", 0, 0, NULL, "random seed"},
	{"temperature", MCB_P_FLOAT, "1.0", 0, 100, NULL, "sampling temperature (0: greedy)"},
	{"top_k", MCB_P_INT, "0", 0, 1000000, NULL, "sample among the k most likely (0: all)"},
};

static struct mcb_node *without(struct ctx *c, const struct mcb_node *map,
				const char *const *drop);

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static void check_models(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct entry *v = st->sec[S_MODELS];
	size_t n = st->nsec[S_MODELS], i;

	ws->models = mcb_arena_array(c->a, n ? n : 1, sizeof(*ws->models));
	st->mx = mcb_arena_array(c->a, n ? n : 1, sizeof(*st->mx));
	ws->nmodels = n;
	for (i = 0; i < n; i++) {
		struct mcb_model_decl *m = &ws->models[i];
		const char *what = mcb_arena_printf(c->a, "model '%s'", v[i].name);
		const char *path, *config;
		json_t *out;

		m->name = v[i].name;
		m->loc = v[i].key->loc;
		m->path = "";
		m->format = "auto";
		st->mx[i].written = "";
		if (mcb_schema_check(model_params, sizeof(model_params) / sizeof(model_params[0]),
				     v[i].value, what, &out, c->d)) {
			st->mx[i].broken = 1;
			continue;
		}
		path = json_string_value(json_object_get(out, "path"));
		m->format =
			mcb_arena_strdup(c->a, json_string_value(json_object_get(out, "format")));
		m->path = abs_path(c->a, v[i].file->absdir, path);
		st->mx[i].written = mcb_arena_strdup(c->a, path);
		config = json_string_value(json_object_get(out, "config"));
		if (config && (!strcmp(m->format, "llama2c") || !strcmp(m->format, "gguf"))) {
			mcb_diag_error(c->d, &mcb_node_get(v[i].value, "config")->loc,
				       "'config' is only used with format safetensors, not %s",
				       m->format);
			st->mx[i].broken = 1;
		} else if (config) {
			m->config = abs_path(c->a, v[i].file->absdir, config);
		} else if (!strcmp(m->format, "safetensors") ||
			   (!strcmp(m->format, "auto") && ends_with(path, ".safetensors"))) {
			m->config = mcb_path_join(c->a, mcb_path_dir(c->a, m->path), "config.json");
		}
		json_decref(out);
	}
}

static void check_datasets(struct ctx *c)
{
	static const char *const drop_sample[] = {"sample", NULL};
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct entry *v = st->sec[S_DATASETS];
	size_t n = st->nsec[S_DATASETS], i;

	ws->datasets = mcb_arena_array(c->a, n ? n : 1, sizeof(*ws->datasets));
	st->dbroken = mcb_arena_array(c->a, n ? n : 1, sizeof(*st->dbroken));
	ws->ndatasets = n;
	for (i = 0; i < n; i++) {
		struct mcb_dataset_decl *ds = &ws->datasets[i];
		const char *what = mcb_arena_printf(c->a, "dataset '%s'", v[i].name);
		const struct mcb_node *sample = NULL, *body = v[i].value;
		const char *path, *labels;
		json_t *out, *sp = NULL;

		ds->name = v[i].name;
		ds->loc = v[i].key->loc;
		ds->path = "";
		ds->kind = "tokens";
		ds->format = "tokens";
		if (body && body->kind == MCB_NODE_MAP && (sample = mcb_node_get(body, "sample")))
			body = without(c, body, drop_sample);
		if (mcb_schema_check(dataset_params,
				     sizeof(dataset_params) / sizeof(dataset_params[0]), body, what,
				     &out, c->d)) {
			st->dbroken[i] = 1;
			continue;
		}
		path = json_string_value(json_object_get(out, "path"));
		labels = json_string_value(json_object_get(out, "labels"));
		path = path ? mcb_arena_strdup(c->a, path) : NULL;
		labels = labels ? mcb_arena_strdup(c->a, labels) : NULL;
		ds->kind = mcb_arena_strdup(c->a, json_string_value(json_object_get(out, "kind")));
		json_decref(out);
		if (!path == !sample) {
			mcb_diag_error(c->d, body ? &body->loc : &ds->loc,
				       "%s needs exactly one of 'path' and 'sample'", what);
			st->dbroken[i] = 1;
			continue;
		}
		if (sample) {
			const char *mname;

			if (strcmp(ds->kind, "tokens")) {
				mcb_diag_error(c->d, &sample->loc,
					       "%s: a sampled dataset is of kind tokens, not %s", what,
					       ds->kind);
				st->dbroken[i] = 1;
				continue;
			}
			if (mcb_schema_check(sample_params,
					     sizeof(sample_params) / sizeof(sample_params[0]),
					     sample, mcb_arena_printf(c->a, "%s sample", what), &sp,
					     c->d)) {
				st->dbroken[i] = 1;
				continue;
			}
			mname = json_string_value(json_object_get(sp, "model"));
			ds->sample_model = find_model(ws, mname);
			if (!ds->sample_model) {
				unknown_name(c, F_MODEL, mcb_node_get(sample, "model"));
				st->dbroken[i] = 1;
				json_decref(sp);
				continue;
			}
			json_object_del(sp, "model");
			ds->sample = keep(c, sp);
			continue;
		}
		ds->path = abs_path(c->a, v[i].file->absdir, path);
		if (!strcmp(ds->kind, "labelled"))
			ds->format = labels ? "idx" : "csv";
		else
			ds->format = ds->kind;
		if (labels && strcmp(ds->format, "idx")) {
			mcb_diag_error(c->d, &mcb_node_get(body, "labels")->loc,
				       "'labels' is only used with kind labelled (IDX images)");
			st->dbroken[i] = 1;
		} else if (labels) {
			ds->labels = abs_path(c->a, v[i].file->absdir, labels);
		}
	}
}

/* ---- pass 3: hardware --------------------------------------------------- */

static const char *const hw_kinds[] = {"gpu", "cpu", "npu", NULL};

#define HW_PARAMS(req)                                                                    \
	{"description", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL, "one line for reports"},      \
	{"kind", MCB_P_ENUM, req, 0, 0, hw_kinds, "gpu, cpu or npu"},                        \
	{"vendor", MCB_P_STR, MCB_P_OPTIONAL, 0, 0, NULL, "vendor name"},                    \
	{"memory_gb", MCB_P_FLOAT, req, 0, 0, NULL, "device (or host) memory, GB"},          \
	{"bandwidth_gbs", MCB_P_FLOAT, req, 0, 0, NULL, "memory bandwidth, GB/s"},           \
	{"supports", MCB_P_STRLIST, req, 0, 0, mcb_capabilities, "capabilities"},            \
	{"formats", MCB_P_STRLIST, req, 0, 0, mcb_export_formats,                            \
	 "export formats its runtime loads, preferred first"}

/* A profile without base: must give these; one with base: inherits them. */
static const struct mcb_param hw_root_params[] = {HW_PARAMS(NULL)};
static const struct mcb_param hw_based_params[] = {HW_PARAMS(MCB_P_OPTIONAL)};
#define NHWPARAMS (sizeof(hw_root_params) / sizeof(hw_root_params[0]))

static const struct mcb_param peak_params[] = {
	{"fp32", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TFLOPS"},
	{"tf32", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TFLOPS"},
	{"fp16", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TFLOPS"},
	{"bf16", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TFLOPS"},
	{"fp8", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TFLOPS"},
	{"int8", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TOPS"},
	{"int4", MCB_P_FLOAT, MCB_P_OPTIONAL, 0, 0, NULL, "dense TOPS"},
};

/* A shallow copy of map without the listed keys (NULL-terminated). */
static struct mcb_node *without(struct ctx *c, const struct mcb_node *map,
				const char *const *drop)
{
	struct mcb_node *m = mcb_arena_alloc(c->a, sizeof(*m));
	size_t i, n = 0, ndrop = 0;

	while (drop[ndrop])
		ndrop++;
	*m = *map;
	m->keys = mcb_arena_array(c->a, map->nitems ? map->nitems : 1, sizeof(*m->keys));
	m->items = mcb_arena_array(c->a, map->nitems ? map->nitems : 1, sizeof(*m->items));
	for (i = 0; i < map->nitems; i++) {
		if (in_list(map->keys[i]->str, drop, ndrop))
			continue;
		m->keys[n] = map->keys[i];
		m->items[n++] = map->items[i];
	}
	m->nitems = n;
	return m;
}

/* Numbers in obj (keys of params) must be > 0; report at their nodes in map. */
static int check_positive(struct ctx *c, json_t *obj, const struct mcb_node *map)
{
	const char *key;
	json_t *v;
	int bad = 0;

	json_object_foreach(obj, key, v) {
		if (json_is_real(v) && json_real_value(v) <= 0) {
			const struct mcb_node *n = mcb_node_get(map, key);

			mcb_diag_error(c->d, &n->loc, "'%s' must be greater than 0, not %s", key,
				       n->str);
			bad = 1;
		}
	}
	return bad;
}

static const struct mcb_node *name_value(struct ctx *c, const struct mcb_node *map,
					 const char *key)
{
	const struct mcb_node *v = mcb_node_get(map, key);

	if (!v)
		return NULL;
	if (!stringish(v)) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a hardware name, not %s", key,
			       mcb_node_kind_phrase(v));
		return NULL;
	}
	if (!mcb_schema_name_ok(v->str)) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a hardware name, not '%s'", key,
			       v->str);
		return NULL;
	}
	return v;
}

/* Check a declaration's own fields into h->own (or mark it broken). */
static void check_hw_own(struct ctx *c, struct hwnode *h)
{
	static const char *const drop[] = {"alias", "base", "peak_tflops", NULL};
	const struct mcb_node *map = h->e->value, *peak, *fmts;
	const char *what = mcb_arena_printf(c->a, "hardware '%s'", h->e->name);
	size_t before = c->d->nerr, i;
	json_t *own, *p;

	if (mcb_node_is_null(map) || map->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, mcb_node_is_null(map) ? &h->e->key->loc : &map->loc,
			       "%s must be a mapping, not %s", what, mcb_node_kind_phrase(map));
		h->broken = 1;
		return;
	}
	if (mcb_node_get(map, "alias")) {
		h->alias = name_value(c, map, "alias");
		for (i = 0; i < map->nitems; i++)
			if (strcmp(map->keys[i]->str, "alias"))
				mcb_diag_error(c->d, &map->keys[i]->loc,
					       "'%s' cannot be combined with "
					       "'alias' (an alias takes no other keys)",
					       map->keys[i]->str);
		if (c->d->nerr > before)
			h->broken = 1;
		return;
	}
	h->base = name_value(c, map, "base");
	if (mcb_schema_check(h->base || mcb_node_get(map, "base") ? hw_based_params
								  : hw_root_params,
			     NHWPARAMS, without(c, map, drop), what, &own, c->d)) {
		h->broken = 1;
		own = NULL;
	}
	peak = mcb_node_get(map, "peak_tflops");
	if (peak && !mcb_schema_check(peak_params, sizeof(peak_params) / sizeof(peak_params[0]),
				      peak, "'peak_tflops'", &p, c->d)) {
		if (check_positive(c, p, peak))
			h->broken = 1;
		if (own)
			json_object_set_new(own, "peak_tflops", p);
		else
			json_decref(p);
	}
	if (own && check_positive(c, own, map))
		h->broken = 1;
	fmts = mcb_node_get(map, "formats");
	if (own && fmts && json_array_size(json_object_get(own, "formats")) == 0) {
		mcb_diag_error(c->d, &fmts->loc, "'formats' must list at least one export format");
		h->broken = 1;
	}
	if (c->d->nerr > before)
		h->broken = 1;
	if (h->broken) {
		json_decref(own);
		return;
	}
	h->own = keep(c, own);
}

/* The node a base: or alias: value v of h refers to: base: naming h's own
 * name means the built-in profile h replaces. */
static struct hwnode *hw_target(struct ctx *c, struct hwnode *h, const struct mcb_node *v)
{
	size_t lo = 0, hi = c->ws->nhw;

	if (h->base && h->overridden && !strcmp(v->str, h->e->name))
		return h->overridden;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(v->str, c->ws->hw[mid].name);

		if (!r)
			return c->st->hx[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void hw_cycle(struct ctx *c, struct hwnode **chain, size_t n, size_t from,
		     const struct mcb_node *edge)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t k, nalias = 0;

	for (k = from; k < n; k++) {
		mcb_buf_printf(&b, "%s -> ", chain[k]->e->name);
		nalias += chain[k]->alias != NULL;
		chain[k]->broken = 1;
	}
	mcb_buf_adds(&b, chain[from]->e->name);
	mcb_diag_error(c->d, &edge->loc, "hardware %s cycle: %s",
		       nalias == n - from ? "alias" : nalias == 0 ? "base" : "alias/base",
		       mcb_buf_str(&b));
	mcb_buf_release(&b);
}

/* Resolve h and everything its alias:/base: chain leads to, without recursion. */
static void resolve_hw(struct ctx *c, struct hwnode *h, struct hwnode ***chainp, size_t *capp)
{
	struct hwnode *n = h, *t;
	size_t nchain = 0, k;

	while (n && n->state == 0) {
		const struct mcb_node *edge;

		n->state = 1;
		*PUSH(c->a, *chainp, nchain, *capp) = n;
		if (n->broken)
			break;
		edge = n->alias ? n->alias : n->base;
		if (!edge)
			break;
		t = hw_target(c, n, edge);
		if (!t) {
			mcb_diag_error(c->d, &edge->loc, "unknown hardware '%s'%s", edge->str,
				       dym(c, edge->str, c->st->names[F_HW], c->st->nnames[F_HW]));
			n->broken = 1;
			break;
		}
		if (t->state == 1) {
			for (k = 0; (*chainp)[k] != t; k++)
				;
			hw_cycle(c, *chainp, nchain, k, edge);
			break;
		}
		n->next = t;
		n = t;
	}
	for (k = nchain; k-- > 0;) {
		struct hwnode *x = (*chainp)[k];

		x->state = 2;
		if (x->broken)
			continue;
		if (x->next && x->next->broken) {
			x->broken = 1;
		} else if (x->alias) {
			x->final = x->next->final;
			x->json = x->next->json;
		} else {
			json_t *j = x->base ? json_deep_copy(x->next->json) : json_object();

			json_object_update(j, x->own);
			json_object_set_new(j, "name", json_string(x->e->name));
			x->json = keep(c, j);
			x->final = x;
		}
	}
}

static const char **strarray(struct ctx *c, json_t *arr, size_t *n)
{
	const char **v;
	size_t i;

	*n = json_array_size(arr);
	v = mcb_arena_array(c->a, *n ? *n : 1, sizeof(*v));
	for (i = 0; i < *n; i++)
		v[i] = mcb_arena_strdup(c->a, json_string_value(json_array_get(arr, i)));
	return v;
}

static void check_hardware(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct entry *bv = st->bhw, *wv = st->sec[S_HARDWARE];
	size_t nb = st->nbhw, nw = st->nsec[S_HARDWARE], i, j, k, n, chaincap = 0;
	struct hwnode *nodes, **chain = NULL;

	nodes = mcb_arena_array(c->a, nb + nw ? nb + nw : 1, sizeof(*nodes));
	for (i = 0; i < nb; i++)
		nodes[i] = (struct hwnode){.e = &bv[i], .builtin = 1, .visible = 1};
	for (j = 0; j < nw; j++)
		nodes[nb + j] = (struct hwnode){.e = &wv[j], .visible = 1};
	/* Both lists are sorted: merge them into the visible, sorted ws->hw. */
	ws->hw = mcb_arena_array(c->a, nb + nw ? nb + nw : 1, sizeof(*ws->hw));
	st->hx = mcb_arena_array(c->a, nb + nw ? nb + nw : 1, sizeof(*st->hx));
	for (i = j = n = 0; i < nb || j < nw;) {
		int r = i == nb ? 1 : j == nw ? -1 : strcmp(bv[i].name, wv[j].name);
		struct hwnode *h;

		if (r == 0) {
			nodes[i].visible = 0;
			nodes[nb + j].overridden = &nodes[i];
			h = &nodes[nb + j];
			i++, j++;
		} else if (r < 0) {
			h = &nodes[i++];
		} else {
			h = &nodes[nb + j++];
		}
		ws->hw[n].name = h->e->name;
		st->hx[n++] = h;
	}
	ws->nhw = n;
	st->names[F_HW] = mcb_arena_array(c->a, n ? n : 1, sizeof(char *));
	for (i = 0; i < n; i++)
		st->names[F_HW][i] = ws->hw[i].name;
	st->nnames[F_HW] = n;
	for (i = 0; i < nb + nw; i++)
		check_hw_own(c, &nodes[i]);
	for (i = 0; i < nb + nw; i++)
		resolve_hw(c, &nodes[i], &chain, &chaincap);
	for (i = 0; i < n; i++) {
		struct mcb_hw *hw = &ws->hw[i];
		struct hwnode *h = st->hx[i];
		json_t *j2;

		hw->loc = h->e->key->loc;
		hw->builtin = h->builtin;
		if (h->broken)
			continue;
		if (h->alias) {
			for (k = 0; st->hx[k] != h->final; k++)
				;
			hw->alias = &ws->hw[k];
		}
		j2 = h->json;
		hw->json = j2;
		hw->description = json_string_value(json_object_get(j2, "description"));
		hw->kind = json_string_value(json_object_get(j2, "kind"));
		hw->memory_gb = json_real_value(json_object_get(j2, "memory_gb"));
		hw->bandwidth_gbs = json_real_value(json_object_get(j2, "bandwidth_gbs"));
		hw->supports = strarray(c, json_object_get(j2, "supports"), &hw->nsupports);
		hw->formats = strarray(c, json_object_get(j2, "formats"), &hw->nformats);
	}
}

/* ---- pass 3: schemes ---------------------------------------------------- */

static json_t *check_overrides(struct ctx *c, const struct mcb_technique *t,
			       const struct mcb_node *ov);

static void parse_scheme(struct ctx *c, size_t si, const struct entry *e)
{
	struct schx *sx = &c->st->sx[si];
	const struct mcb_node *v = e->value;
	size_t i, ntech;
	const char *const *tnames = mcb_technique_names(&ntech);

	if (v->kind != MCB_NODE_SEQ) {
		mcb_diag_error(c->d, mcb_node_is_null(v) ? &e->key->loc : &v->loc,
			       "scheme '%s' must be a list of techniques, not %s", e->name,
			       mcb_node_kind_phrase(v));
		sx->broken = 1;
		return;
	}
	sx->items = mcb_arena_array(c->a, v->nitems ? v->nitems : 1, sizeof(*sx->items));
	for (i = 0; i < v->nitems; i++) {
		const struct mcb_node *it = v->items[i], *k, *val;
		struct sitem *s = &sx->items[sx->nitems];
		const struct mcb_technique *t;
		json_t *params;

		if (it->kind != MCB_NODE_MAP) {
			mcb_diag_error(c->d, &it->loc,
				       "entries of scheme '%s' must be mappings with one "
				       "key (a technique or use:), not %s",
				       e->name, mcb_node_kind_phrase(it));
			sx->broken = 1;
			continue;
		}
		if (it->nitems != 1) {
			mcb_diag_error(c->d, &it->loc,
				       "an entry of scheme '%s' must have exactly one key "
				       "(a technique or use:), not %zu",
				       e->name, it->nitems);
			sx->broken = 1;
			continue;
		}
		k = it->keys[0];
		val = it->items[0];
		if (!strcmp(k->str, "use")) {
			if (!stringish(val) || !mcb_schema_name_ok(val->str)) {
				mcb_diag_error(
					c->d, &val->loc, "'use' must be a scheme name, not %s",
					stringish(val) ? mcb_arena_printf(c->a, "'%s'", val->str)
						       : mcb_node_kind_phrase(val));
				sx->broken = 1;
				continue;
			}
			s->use = val;
			sx->nitems++;
			continue;
		}
		t = mcb_technique_find(k->str);
		if (!t) {
			mcb_diag_error(c->d, &k->loc, "unknown technique '%s'%s", k->str,
				       dym(c, k->str, tnames, ntech));
			sx->broken = 1;
			continue;
		}
		{
			static const char *const drop_overrides[] = {"overrides", NULL};
			const struct mcb_node *ov = val && val->kind == MCB_NODE_MAP
							    ? mcb_node_get(val, "overrides")
							    : NULL;
			json_t *ovj = NULL;
			const char *why;

			if (ov && (ovj = check_overrides(c, t, ov)) == NULL) {
				sx->broken = 1;
				continue;
			}
			if (mcb_schema_check(t->params, t->nparams,
					     ov ? without(c, val, drop_overrides) : val, t->name,
					     &params, c->d)) {
				json_decref(ovj);
				sx->broken = 1;
				continue;
			}
			json_object_set_new(params, "overrides", ovj ? ovj : json_object());
			if (t->validate && (why = t->validate(params))) {
				mcb_diag_error(c->d, &k->loc, "%s: %s", t->name, why);
				json_decref(params);
				sx->broken = 1;
				continue;
			}
		}
		s->entry.tech = t;
		s->entry.loc = k->loc;
		s->entry.params = keep(c, params);
		sx->nitems++;
	}
}

/*
 * A technique's overrides: a mapping of tensor-name patterns ('*' matches any
 * run of characters; "blk.*.ffn_down" also matches "blk.3.ffn_down.weight")
 * to parameters from the technique's override table.  Returns the canonical
 * JSON object or NULL after reporting.
 */
static json_t *check_overrides(struct ctx *c, const struct mcb_technique *t,
			       const struct mcb_node *ov)
{
	json_t *out;
	size_t i, before = c->d->nerr;

	if (!t->oparams) {
		mcb_diag_error(c->d, &ov->loc, "%s takes no overrides", t->name);
		return NULL;
	}
	if (ov->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &ov->loc,
			       "'overrides' must be a mapping of tensor patterns to parameters, not %s",
			       mcb_node_kind_phrase(ov));
		return NULL;
	}
	out = json_object();
	for (i = 0; i < ov->nitems; i++) {
		const char *pat = ov->keys[i]->str, *q;
		json_t *one;

		for (q = pat; *q; q++)
			if (!(isalnum((unsigned char)*q) || strchr("._-*", *q)))
				break;
		if (!*pat || *q || strlen(pat) > 128) {
			mcb_diag_error(c->d, &ov->keys[i]->loc,
				       "override pattern '%s' may hold letters, digits, '.', '_', "
				       "'-' and '*' only",
				       pat);
			continue;
		}
		if (mcb_schema_check(t->oparams, t->noparams, ov->items[i],
				     mcb_arena_printf(c->a, "override '%s'", pat), &one, c->d))
			continue;
		json_object_set_new(out, pat, one);
	}
	if (c->d->nerr > before) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static void scheme_cycle(struct ctx *c, size_t *path, size_t npath, size_t from,
			 const struct mcb_node *edge)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t k;

	for (k = from; k < npath; k++) {
		mcb_buf_printf(&b, "%s -> ", c->ws->schemes[path[k]].name);
		c->st->sx[path[k]].broken = 1;
	}
	mcb_buf_adds(&b, c->ws->schemes[path[from]].name);
	mcb_diag_error(c->d, &edge->loc, "scheme cycle: %s", mcb_buf_str(&b));
	mcb_buf_release(&b);
}

/* Splice use: into scheme si's stack; path holds the schemes being expanded. */
static void expand_scheme(struct ctx *c, size_t si, size_t *path, size_t npath)
{
	struct mcb_scheme *s = &c->ws->schemes[si];
	struct schx *sx = &c->st->sx[si];
	size_t i, k, cap = 0;

	if (sx->state == 2)
		return;
	sx->state = 1;
	sx->depth = 1;
	path[npath++] = si;
	for (i = 0; i < sx->nitems && !sx->broken; i++) {
		const struct sitem *it = &sx->items[i];
		const struct mcb_scheme *u;
		size_t ui;

		if (!it->use) {
			*PUSH(c->a, s->stack, s->nstack, cap) = it->entry;
		} else if (!(u = find_scheme(c->ws, it->use->str))) {
			unknown_name(c, F_STACK, it->use);
			sx->broken = 1;
		} else if (c->st->sx[ui = (size_t)(u - c->ws->schemes)].state == 1) {
			for (k = 0; path[k] != ui; k++)
				;
			scheme_cycle(c, path, npath, k, it->use);
		} else {
			/* The guard bounds the recursion; depth makes the limit independent
			 * of the order in which schemes happen to be expanded. */
			if (npath < MAX_USE_DEPTH)
				expand_scheme(c, ui, path, npath);
			if (npath >= MAX_USE_DEPTH || (!c->st->sx[ui].broken &&
						      c->st->sx[ui].depth >= MAX_USE_DEPTH)) {
				mcb_diag_error(c->d, &it->use->loc,
					       "scheme '%s': use: chains more than %d "
					       "schemes deep",
					       s->name, MAX_USE_DEPTH);
				sx->broken = 1;
				continue;
			}
			if (c->st->sx[ui].broken) {
				sx->broken = 1;
				continue;
			}
			if (c->st->sx[ui].depth + 1 > sx->depth)
				sx->depth = c->st->sx[ui].depth + 1;
			for (k = 0; k < u->nstack && s->nstack <= MAX_STACK; k++)
				*PUSH(c->a, s->stack, s->nstack, cap) = u->stack[k];
		}
		if (s->nstack > MAX_STACK && !sx->broken) {
			mcb_diag_error(c->d, &s->loc,
				       "scheme '%s' expands to more than %d techniques", s->name,
				       MAX_STACK);
			sx->broken = 1;
		}
	}
	sx->state = 2;
}

static void check_schemes(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct entry *v = st->sec[S_SCHEMES];
	size_t n = st->nsec[S_SCHEMES], i, *path;

	ws->schemes = mcb_arena_array(c->a, n ? n : 1, sizeof(*ws->schemes));
	st->sx = mcb_arena_array(c->a, n ? n : 1, sizeof(*st->sx));
	ws->nschemes = n;
	for (i = 0; i < n; i++) {
		ws->schemes[i].name = v[i].name;
		ws->schemes[i].loc = v[i].key->loc;
		parse_scheme(c, i, &v[i]);
	}
	path = mcb_arena_array(c->a, MAX_USE_DEPTH + 1, sizeof(*path));
	for (i = 0; i < n; i++)
		expand_scheme(c, i, path, 0);
	for (i = 0; i < n; i++) {
		const struct mcb_scheme *s = &ws->schemes[i];
		size_t k, q = SIZE_MAX;

		/* quantized codes are final: prune or factor first, then quantize */
		for (k = 0; k < s->nstack && !st->sx[i].broken; k++) {
			if (q != SIZE_MAX) {
				mcb_diag_error(c->d, &s->stack[k].loc,
					       "scheme '%s': %s comes after quantize (%s): "
					       "quantize must be the last technique of a stack",
					       s->name, s->stack[k].tech->name,
					       at(c, &s->stack[q].loc));
				st->sx[i].broken = 1;
			}
			if (!strcmp(s->stack[k].tech->name, "quantize"))
				q = k;
		}
	}
	for (i = 0; i < n; i++) {
		if (st->sx[i].broken) {
			ws->schemes[i].stack = NULL;
			ws->schemes[i].nstack = 0;
		}
	}
}

/* ---- pass 3: target rules ------------------------------------------------ */

/* NULL when path is acceptable as a target (or, with placeholders replaced,
 * a pattern), else the problem. */
static const char *bad_target_path(struct ctx *c, const char *shown, const char *path)
{
	const char *clean;

	if (!*path)
		return "a target path must not be empty";
	if (path[0] == '/')
		return mcb_arena_printf(c->a, "target '%s' must be a relative path inside the "
					"workspace", shown);
	clean = mcb_path_clean_relative(c->a, path);
	if (!clean)
		return mcb_arena_printf(c->a, "target '%s' is outside the workspace", shown);
	if (!strcmp(clean, "."))
		return mcb_arena_printf(c->a, "target '%s' names the workspace root; targets are "
					"directories below it", shown);
	if (strcmp(clean, path) && strcmp(shown, path))
		return mcb_arena_printf(c->a, "target '%s' is not a clean path", shown);
	if (strcmp(clean, path))
		return mcb_arena_printf(c->a, "target '%s' is not a clean path (write '%s')", shown,
					clean);
	if (path_within(path, ".mcbuild"))
		return mcb_arena_printf(c->a, "target '%s' is inside .mcbuild, mcbuild's own "
					"directory", shown);
	return NULL;
}

static int ph_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return 1;
}

/* Split a pattern into segments; report syntax errors at loc. */
static int parse_pattern(struct ctx *c, struct rulex *rx, const char *pat,
			 const struct mcb_loc *loc)
{
	size_t cap = 0, phcap = 0, k;
	const char *p = pat, *q;
	int bad = 0;

	while (*p) {
		struct seg *s;

		if (*p == '}') {
			mcb_diag_error(c->d, loc, "'}' without '{' in target pattern '%s'", pat);
			return -1;
		}
		if (*p != '{') {
			q = p + strcspn(p, "{}");
			s = PUSH(c->a, rx->segs, rx->nsegs, cap);
			s->lit = p;
			s->len = (size_t)(q - p);
			s->ph = -1;
			p = q;
			continue;
		}
		q = strchr(p + 1, '}');
		if (!q) {
			mcb_diag_error(c->d, loc, "'{' without '}' in target pattern '%s'", pat);
			return -1;
		}
		if (!ph_name_ok(p + 1, (size_t)(q - p - 1)) ||
		    memchr(p + 1, '{', (size_t)(q - p - 1))) {
			mcb_diag_error(c->d, loc,
				       "invalid placeholder '%.*s' in target pattern '%s' "
				       "(placeholder names use letters, digits and '_')",
				       (int)(q - p + 1), p, pat);
			bad = 1;
		} else {
			const char *name = mcb_arena_strndup(c->a, p + 1, (size_t)(q - p - 1));

			for (k = 0; k < rx->nphs; k++)
				if (!strcmp(rx->phs[k].name, name))
					break;
			if (k < rx->nphs) {
				mcb_diag_error(c->d, loc,
					       "placeholder '{%s}' appears twice in target "
					       "pattern '%s'",
					       name, pat);
				bad = 1;
			} else if (rx->nphs == MAX_PH) {
				mcb_diag_error(c->d, loc, "target pattern '%s' has more than %d "
					       "placeholders (each names one of model, hardware and "
					       "stack)", pat, MAX_PH);
				return -1;
			} else {
				struct ph *ph = PUSH(c->a, rx->phs, rx->nphs, phcap);

				ph->name = name;
				ph->field = -1;
				s = PUSH(c->a, rx->segs, rx->nsegs, cap);
				s->ph = (int)k;
			}
		}
		p = q + 1;
	}
	return bad ? -1 : 0;
}

/* The pattern with every placeholder replaced by "x" (for path checks). */
static const char *probe_path(struct ctx *c, const struct rulex *rx)
{
	struct mcb_buf b = MCB_BUF_INIT;
	const char *s;
	size_t i;

	for (i = 0; i < rx->nsegs; i++) {
		if (rx->segs[i].ph < 0)
			mcb_buf_add(&b, rx->segs[i].lit, rx->segs[i].len);
		else
			mcb_buf_addc(&b, 'x');
	}
	s = mcb_arena_strdup(c->a, mcb_buf_str(&b));
	mcb_buf_release(&b);
	return s;
}

static void check_field(struct ctx *c, const struct mcb_rule *r, struct rulex *rx, int f,
			const struct mcb_node *v)
{
	size_t k;

	rx->fnode[f] = v;
	rx->fph[f] = -1;
	if (v->kind == MCB_NODE_MAP && v->nitems == 1 && mcb_node_is_null(v->items[0])) {
		mcb_diag_error(c->d, &v->loc,
			       "'%s' must be a %s name or a placeholder, not a mapping "
			       "(write placeholders in quotes: \"{%s}\")",
			       field_key[f], field_noun[f], v->keys[0]->str);
		rx->broken = 1;
		return;
	}
	if (!stringish(v)) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a %s name, not %s", field_key[f],
			       field_noun[f], mcb_node_kind_phrase(v));
		rx->broken = 1;
		return;
	}
	if (strpbrk(v->str, "{}")) {
		if (v->str[0] != '{' || v->str[v->len - 1] != '}' ||
		    !ph_name_ok(v->str + 1, v->len - 2)) {
			mcb_diag_error(c->d, &v->loc,
				       "'%s' must be a %s name or a whole placeholder "
				       "such as \"{%s}\", not '%s'",
				       field_key[f], field_noun[f],
				       f == F_STACK ? "scheme"
				       : f == F_HW  ? "hw"
						    : "model",
				       v->str);
			rx->broken = 1;
			return;
		}
		for (k = 0; k < rx->nphs; k++)
			if (strlen(rx->phs[k].name) == v->len - 2 &&
			    !strncmp(rx->phs[k].name, v->str + 1, v->len - 2))
				break;
		if (k == rx->nphs) {
			if (r->is_pattern)
				mcb_diag_error(c->d, &v->loc,
					       "placeholder '%s' in '%s' is not in the target "
					       "pattern '%s'",
					       v->str, field_key[f], r->pattern);
			else
				mcb_diag_error(c->d, &v->loc,
					       "placeholder '%s' in '%s', but target '%s' "
					       "has no placeholders",
					       v->str, field_key[f], r->pattern);
			rx->broken = 1;
			return;
		}
		if (rx->phs[k].field >= 0) {
			mcb_diag_error(
				c->d, &v->loc,
				"placeholder '%s' is used by both '%s' and '%s'; "
				"a placeholder names exactly one of model, hardware and stack",
				v->str, field_key[rx->phs[k].field], field_key[f]);
			rx->broken = 1;
			return;
		}
		rx->phs[k].field = f;
		rx->fph[f] = (int)k;
		return;
	}
	if (!mcb_schema_name_ok(v->str)) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a %s name, not '%s'", field_key[f],
			       field_noun[f], v->str);
		rx->broken = 1;
		return;
	}
	if (!ns_has(c->ws, f, v->str)) {
		unknown_name(c, f, v);
		rx->broken = 1;
		return;
	}
	rx->lit[f] = v->str;
}

static size_t ph_index(const struct rulex *rx, const char *name)
{
	size_t k;

	for (k = 0; k < rx->nphs; k++)
		if (!strcmp(rx->phs[k].name, name))
			return k;
	return k;
}

static void check_matrix(struct ctx *c, const struct mcb_rule *r, struct rulex *rx)
{
	const struct mcb_node *m = rx->matrix;
	const char **phnames;
	size_t i, j, k, total = 1;
	int unknown_key = 0;

	if (!r->is_pattern) {
		mcb_diag_error(c->d, &rx->matrix_key->loc,
			       "'matrix' is only allowed in pattern rules "
			       "(targets with {placeholders})");
		rx->broken = 1;
		return;
	}
	if (m->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &m->loc,
			       "'matrix' must be a mapping from placeholders to lists "
			       "of names, not %s",
			       mcb_node_kind_phrase(m));
		rx->broken = 1;
		return;
	}
	phnames = mcb_arena_array(c->a, rx->nphs + 1, sizeof(*phnames));
	for (k = 0; k < rx->nphs; k++)
		phnames[k] = rx->phs[k].name;
	for (i = 0; i < m->nitems; i++) {
		const struct mcb_node *key = m->keys[i], *list = m->items[i];

		k = ph_index(rx, key->str);
		if (k == rx->nphs) {
			mcb_diag_error(c->d, &key->loc,
				       "matrix key '%s' is not a placeholder of '%s'%s", key->str,
				       r->pattern, dym(c, key->str, phnames, rx->nphs));
			rx->broken = 1;
			unknown_key = 1;
			continue;
		}
		if (list->kind != MCB_NODE_SEQ) {
			mcb_diag_error(c->d, &list->loc,
				       "matrix '%s' must be a list of names, not %s", key->str,
				       mcb_node_kind_phrase(list));
			rx->broken = 1;
			continue;
		}
		if (list->nitems > MAX_DECLARED) {
			mcb_diag_error(c->d, &list->loc, "matrix '%s' lists more than %d names",
				       key->str, MAX_DECLARED);
			rx->broken = 1;
			continue;
		}
		if (list->nitems == 0) {
			mcb_diag_error(c->d, &list->loc, "matrix '%s' must list at least one name",
				       key->str);
			rx->broken = 1;
			continue;
		}
		if (list->nitems > MAX_DECLARED || total > MAX_DECLARED / list->nitems)
			total = MAX_DECLARED + 1;
		else
			total *= list->nitems;
		for (j = 0; j < list->nitems; j++) {
			const struct mcb_node *it = list->items[j];
			size_t jj;

			if (!stringish(it) || !mcb_schema_name_ok(it->str)) {
				mcb_diag_error(
					c->d, &it->loc, "matrix '%s' entries must be names, not %s",
					key->str,
					stringish(it) ? mcb_arena_printf(c->a, "'%s'", it->str)
						      : mcb_node_kind_phrase(it));
				rx->broken = 1;
				continue;
			}
			for (jj = 0; jj < j; jj++)
				if (list->items[jj]->kind == MCB_NODE_SCALAR &&
				    !strcmp(list->items[jj]->str, it->str))
					break;
			if (jj < j) {
				mcb_diag_error(c->d, &it->loc, "matrix '%s' lists '%s' twice",
					       key->str, it->str);
				rx->broken = 1;
				continue;
			}
			if (rx->phs[k].field >= 0 && !ns_has(c->ws, rx->phs[k].field, it->str)) {
				unknown_name(c, rx->phs[k].field, it);
				rx->broken = 1;
			}
		}
	}
	for (k = 0; k < rx->nphs && !unknown_key; k++) {
		if (!mcb_node_get(m, rx->phs[k].name)) {
			mcb_diag_error(c->d, &m->loc,
				       "matrix of '%s' does not list placeholder '%s'", r->pattern,
				       rx->phs[k].name);
			rx->broken = 1;
		}
	}
	if (total > MAX_DECLARED) {
		mcb_diag_error(c->d, &m->loc, "matrix of '%s' declares more than %d targets",
			       r->pattern, MAX_DECLARED);
		rx->broken = 1;
	}
}

static const char *const rule_keys[] = {"model",   "hardware",    "stack",       "export",
					"matrix",  "quality",     "performance", "calibration",
					NULL};

/* ---- targets: quality gates and performance ---------------------------- */

static const struct mcb_param quality_params[] = {
	{"confidence", MCB_P_FLOAT, "0.95", 0.5, 0.9999, NULL,
	 "confidence level of the bootstrap intervals"},
	{"bootstrap", MCB_P_INT, "10000", 100, 1000000, NULL, "bootstrap resamples"},
	{"seed", MCB_P_INT, "1", 0, 0, NULL, "seed of the bootstrap resampling"},
};

static const struct mcb_param window_params[] = {
	{"dataset", MCB_P_NAME, NULL, 0, 0, NULL, "the evaluation dataset"},
	{"window", MCB_P_INT, "128", 2, 65536, NULL, "tokens per evaluation window"},
	{"stride", MCB_P_INT, MCB_P_OPTIONAL, 1, 65536, NULL,
	 "tokens between window starts (default: half the window)"},
};

static const struct mcb_param example_params[] = {
	{"dataset", MCB_P_NAME, NULL, 0, 0, NULL, "the labelled dataset"},
};

static const struct mcb_param performance_params[] = {
	{"context", MCB_P_INT, "0", 0, 1 << 24, NULL,
	 "context length for the memory fit (0: the model's)"},
	{"batch", MCB_P_INT, "1", 1, 4096, NULL, "concurrent sequences for the memory fit"},
	{"prompt_tokens", MCB_P_INT, "64", 1, 65536, NULL, "prompt length measured"},
	{"decode_tokens", MCB_P_INT, "32", 1, 65536, NULL, "tokens generated per measurement"},
	{"repeats", MCB_P_INT, "5", 1, 1000, NULL, "measurements (for p50/p99)"},
};

/* The metrics and, for each, the gates it accepts ("%": relative allowed). */
static const struct {
	const char *name;
	int labelled;             /* needs a labelled dataset */
	const char *gates[3];     /* accepted gate kinds */
	int relative[3];          /* gate may be relative ("5%") */
} metric_table[] = {
	{"perplexity", 0, {"max_increase", NULL, NULL}, {1, 0, 0}},
	{"kl_divergence", 0, {"max", NULL, NULL}, {0, 0, 0}},
	{"top1_agreement", 0, {"min", "max_drop", NULL}, {0, 0, 0}},
	{"accuracy", 1, {"max_drop", NULL, NULL}, {1, 0, 0}},
};
#define NMETRICS (sizeof(metric_table) / sizeof(metric_table[0]))

static const char *const gate_keys[] = {"max_increase", "max_drop", "max", "min", NULL};

static const struct mcb_dataset_decl *find_dataset(const struct mcb_workspace *ws,
						   const char *name)
{
	return find_named(ws->datasets, ws->ndatasets, sizeof(*ws->datasets), name);
}

/* A gate value: a number, or "N%" when relative is allowed.  NULL after
 * reporting. */
static json_t *gate_json(struct ctx *c, const char *kind, const struct mcb_node *v, int rel_ok)
{
	double x;
	char *end;
	int relative = 0;

	if (v->kind == MCB_NODE_SCALAR && v->len > 1 && v->str[v->len - 1] == '%') {
		x = strtod(v->str, &end);
		if (end != v->str + v->len - 1 || !isfinite(x)) {
			mcb_diag_error(c->d, &v->loc, "'%s' must be a number or a percentage, not '%s'",
				       kind, v->str);
			return NULL;
		}
		if (!rel_ok) {
			mcb_diag_error(c->d, &v->loc, "'%s' takes an absolute value here, not '%s'",
				       kind, v->str);
			return NULL;
		}
		x /= 100.0;
		relative = 1;
	} else if (mcb_node_float(v, &x)) {
		mcb_diag_error(c->d, &v->loc, "'%s' must be a number%s, not %s", kind,
			       rel_ok ? " or a percentage" : "", mcb_node_kind_phrase(v));
		return NULL;
	}
	if (x < 0) {
		mcb_diag_error(c->d, &v->loc, "'%s' must not be negative", kind);
		return NULL;
	}
	return json_pack("{s:s, s:f, s:b, s:s}", "kind", kind, "value", x, "relative", relative,
			 "text", mcb_arena_printf(c->a, "%s: %s", kind, v->str));
}

/* Add ds to the rule's dataset list (once). */
static void rule_uses(struct ctx *c, struct rulex *rx, const struct mcb_dataset_decl *ds)
{
	const struct mcb_dataset_decl **v;
	size_t i;

	for (i = 0; i < rx->ndatasets; i++)
		if (rx->datasets[i] == ds)
			return;
	v = mcb_arena_array(c->a, rx->ndatasets + 1, sizeof(*v));
	if (rx->ndatasets)
		memcpy(v, rx->datasets, rx->ndatasets * sizeof(*v));
	v[rx->ndatasets++] = ds;
	rx->datasets = v;
}

/* One entry of quality: metrics:.  Returns its JSON or NULL after reporting. */
static json_t *check_metric(struct ctx *c, struct rulex *rx, const struct mcb_node *m)
{
	const struct mcb_node *spec = NULL, *gate = NULL, *mk = NULL, *gk = NULL;
	const char *names[NMETRICS + 1];
	const struct mcb_dataset_decl *ds;
	json_t *params, *g = json_null(), *out;
	size_t i, k, mi = NMETRICS;

	for (i = 0; i < NMETRICS; i++)
		names[i] = metric_table[i].name;
	names[NMETRICS] = NULL;
	if (m->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &m->loc, "a quality metric must be a mapping, not %s",
			       mcb_node_kind_phrase(m));
		return NULL;
	}
	for (k = 0; k < m->nitems; k++) {
		const char *key = m->keys[k]->str;

		for (i = 0; i < NMETRICS && strcmp(key, names[i]); i++)
			;
		if (i < NMETRICS) {
			if (spec) {
				mcb_diag_error(c->d, &m->keys[k]->loc,
					       "a quality metric names one metric, not '%s' and '%s'",
					       mk->str, key);
				return NULL;
			}
			spec = m->items[k], mk = m->keys[k], mi = i;
		} else if (in_list(key, gate_keys, 4)) {
			if (gate) {
				mcb_diag_error(c->d, &m->keys[k]->loc,
					       "a quality metric has one gate, not '%s' and '%s'",
					       gk->str, key);
				return NULL;
			}
			gate = m->items[k], gk = m->keys[k];
		} else {
			const char *all[NMETRICS + 5];

			for (i = 0; i < NMETRICS; i++)
				all[i] = names[i];
			for (i = 0; i < 4; i++)
				all[NMETRICS + i] = gate_keys[i];
			mcb_diag_error(c->d, &m->keys[k]->loc, "unknown key '%s' in a quality metric%s",
				       key, dym(c, key, all, NMETRICS + 4));
			return NULL;
		}
	}
	if (!spec) {
		mcb_diag_error(c->d, &m->loc, "a quality metric must name one of %s",
			       joined(c, names, NMETRICS, ""));
		return NULL;
	}
	if (metric_table[mi].labelled) {
		if (mcb_schema_check(example_params, 1, spec, mk->str, &params, c->d))
			return NULL;
	} else if (mcb_schema_check(window_params, 3, spec, mk->str, &params, c->d)) {
		return NULL;
	}
	keep(c, params);
	if (!json_object_get(params, "stride") && json_object_get(params, "window")) {
		json_int_t w = json_integer_value(json_object_get(params, "window"));

		json_object_set_new(params, "stride", json_integer(w / 2 > 0 ? w / 2 : 1));
	}
	ds = find_dataset(c->ws, json_string_value(json_object_get(params, "dataset")));
	if (!ds) {
		const struct mcb_node *dn = mcb_node_get(spec, "dataset");
		const char **dnames = mcb_arena_array(c->a, c->ws->ndatasets + 1, sizeof(*dnames));

		for (i = 0; i < c->ws->ndatasets; i++)
			dnames[i] = c->ws->datasets[i].name;
		mcb_diag_error(c->d, &dn->loc, "unknown dataset '%s'%s", dn->str,
			       dym(c, dn->str, dnames, c->ws->ndatasets));
		return NULL;
	}
	if (c->st->dbroken[ds - c->ws->datasets])
		return NULL;
	if (metric_table[mi].labelled != !strcmp(ds->kind, "labelled")) {
		mcb_diag_error(c->d, &mcb_node_get(spec, "dataset")->loc,
			       "%s needs a %s dataset, and '%s' is of kind %s", mk->str,
			       metric_table[mi].labelled ? "labelled" : "tokens or text", ds->name,
			       ds->kind);
		return NULL;
	}
	if (!strcmp(ds->format, "idx")) {
		mcb_diag_error(c->d, &mcb_node_get(spec, "dataset")->loc,
			       "%s on IDX images ('%s') needs an image classifier, and the reference "
			       "engine runs Llama language models: use a csv dataset of token "
			       "prompts and labels",
			       mk->str, ds->name);
		return NULL;
	}
	if (gate) {
		for (k = 0; k < 3 && metric_table[mi].gates[k]; k++)
			if (!strcmp(metric_table[mi].gates[k], gk->str))
				break;
		if (k == 3 || !metric_table[mi].gates[k]) {
			size_t ng = 0;

			while (ng < 3 && metric_table[mi].gates[ng])
				ng++;
			mcb_diag_error(c->d, &gk->loc, "%s takes the gate %s, not '%s'", mk->str,
				       joined(c, metric_table[mi].gates, ng, ""), gk->str);
			return NULL;
		}
		json_decref(g);
		g = gate_json(c, gk->str, gate, metric_table[mi].relative[k]);
		if (!g)
			return NULL;
	}
	rule_uses(c, rx, ds);
	out = json_pack("{s:s, s:O, s:o}", "metric", mk->str, "dataset",
			json_object_get(params, "dataset"), "gate", g);
	if (json_object_get(params, "window")) {
		json_object_set(out, "window", json_object_get(params, "window"));
		json_object_set(out, "stride", json_object_get(params, "stride"));
	}
	return out;
}

static void check_quality(struct ctx *c, struct rulex *rx, const struct mcb_node *q)
{
	static const char *const drop_metrics[] = {"metrics", NULL};
	const struct mcb_node *metrics;
	json_t *out, *list;
	size_t i, before = c->d->nerr;

	if (q->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, &q->loc, "'quality' must be a mapping, not %s",
			       mcb_node_kind_phrase(q));
		rx->broken = 1;
		return;
	}
	metrics = mcb_node_get(q, "metrics");
	/* on errors go on with the metrics, to report their problems too */
	if (mcb_schema_check(quality_params, sizeof(quality_params) / sizeof(quality_params[0]),
			     without(c, q, drop_metrics), "quality", &out, c->d))
		out = json_object();
	keep(c, out);
	list = json_array();
	json_object_set_new(out, "metrics", list);
	if (!metrics || metrics->kind != MCB_NODE_SEQ || metrics->nitems == 0) {
		mcb_diag_error(c->d, metrics ? &metrics->loc : &q->loc,
			       "'quality' needs 'metrics': a list of metrics with their gates");
		rx->broken = 1;
		return;
	}
	for (i = 0; i < metrics->nitems; i++) {
		json_t *m = check_metric(c, rx, metrics->items[i]);

		if (m)
			json_array_append_new(list, m);
	}
	if (c->d->nerr > before) {
		rx->broken = 1;
		return;
	}
	rx->quality = out;
}

static const struct mcb_param calibration_params[] = {
	{"dataset", MCB_P_NAME, NULL, 0, 0, NULL, "the calibration dataset (tokens or text)"},
	{"samples", MCB_P_INT, "128", 1, 100000, NULL, "sequences used"},
	{"seq_len", MCB_P_INT, "0", 0, 1 << 20, NULL, "tokens per sequence (0: the model's context)"},
	{"max_samples", MCB_P_INT, "512", 0, 1 << 20, NULL,
	 "token rows kept per layer input for awq's searches"},
	{"seed", MCB_P_INT, "1", 0, 0, NULL, "seed of the sampled rows"},
	{"sequential", MCB_P_BOOL, "false", 0, 0, NULL,
	 "measure each block on the already compressed blocks before it (gptq's reference)"},
};

static void check_calibration(struct ctx *c, struct rulex *rx, const struct mcb_node *n)
{
	const struct mcb_dataset_decl *ds;
	json_t *out;

	if (mcb_schema_check(calibration_params,
			     sizeof(calibration_params) / sizeof(calibration_params[0]), n,
			     "calibration", &out, c->d)) {
		rx->broken = 1;
		return;
	}
	keep(c, out);
	ds = find_dataset(c->ws, json_string_value(json_object_get(out, "dataset")));
	if (!ds) {
		const struct mcb_node *dn = mcb_node_get(n, "dataset");
		const char **dnames = mcb_arena_array(c->a, c->ws->ndatasets + 1, sizeof(*dnames));
		size_t i;

		for (i = 0; i < c->ws->ndatasets; i++)
			dnames[i] = c->ws->datasets[i].name;
		mcb_diag_error(c->d, &dn->loc, "unknown dataset '%s'%s", dn->str,
			       dym(c, dn->str, dnames, c->ws->ndatasets));
		rx->broken = 1;
		return;
	}
	if (c->st->dbroken[ds - c->ws->datasets]) {
		rx->broken = 1;
		return;
	}
	if (!strcmp(ds->kind, "labelled")) {
		mcb_diag_error(c->d, &mcb_node_get(n, "dataset")->loc,
			       "calibration needs a tokens or text dataset, and '%s' is labelled",
			       ds->name);
		rx->broken = 1;
		return;
	}
	rx->calibration = out;
	rx->calib_dataset = ds;
}

static void check_performance(struct ctx *c, struct rulex *rx, const struct mcb_node *p)
{
	json_t *out;

	if (mcb_schema_check(performance_params,
			     sizeof(performance_params) / sizeof(performance_params[0]), p,
			     "performance", &out, c->d)) {
		rx->broken = 1;
		return;
	}
	rx->performance = keep(c, out);
}

static void check_rule(struct ctx *c, size_t ri)
{
	struct mcb_rule *r = &c->ws->rules[ri];
	struct rulex *rx = &c->st->rx[ri];
	const struct mcb_node *body = r->body;
	const char *msg, *what = mcb_arena_printf(c->a, "target '%s'", r->pattern);
	size_t k, before, field_errors = 0;
	int f, parsed = 0;

	for (f = 0; f < NFIELDS; f++)
		rx->fph[f] = -1;
	r->is_pattern = strpbrk(r->pattern, "{}") != NULL;
	if (r->is_pattern) {
		if (parse_pattern(c, rx, r->pattern, &r->loc) == 0) {
			parsed = 1;
			rx->segs_ok = 1;
			if ((msg = bad_target_path(c, r->pattern, probe_path(c, rx)))) {
				mcb_diag_error(c->d, &r->loc, "%s", msg);
				rx->broken = 1;
			}
		} else {
			rx->broken = 1;
		}
	} else if ((msg = bad_target_path(c, r->pattern, r->pattern))) {
		mcb_diag_error(c->d, &r->loc, "%s", msg);
		rx->broken = 1;
	}
	if (mcb_node_is_null(body) || body->kind != MCB_NODE_MAP) {
		mcb_diag_error(c->d, mcb_node_is_null(body) ? &r->loc : &body->loc,
			       "%s must be a mapping, not %s", what, mcb_node_kind_phrase(body));
		rx->broken = 1;
		rx->segs_ok = 0;
		return;
	}
	unknown_keys(c, body, rule_keys, what);
	for (f = 0; f < NFIELDS; f++) {
		const struct mcb_node *v = mcb_node_get(body, field_key[f]);

		if (!v) {
			mcb_diag_error(c->d, &body->loc, "missing required key '%s' in %s",
				       field_key[f], what);
			rx->broken = 1;
			continue;
		}
		before = c->d->nerr;
		check_field(c, r, rx, f, v);
		field_errors += c->d->nerr > before;
	}
	for (k = 0; k < rx->nphs; k++) {
		if (rx->phs[k].field < 0 && (field_errors || (r->is_pattern && !parsed))) {
			/* a field that failed to parse may have meant it; a pattern that
			 * failed to parse has had its error */
			rx->broken = 1;
			rx->segs_ok = 0;
		} else if (rx->phs[k].field < 0) {
			mcb_diag_error(c->d, &r->loc,
				       "placeholder '{%s}' in '%s' is not used by model, "
				       "hardware or stack",
				       rx->phs[k].name, r->pattern);
			rx->broken = 1;
			rx->segs_ok = 0;
		}
	}
	if ((rx->export_node = mcb_node_get(body, "export"))) {
		const struct mcb_node *e = rx->export_node;
		size_t nf = 0;

		while (mcb_export_formats[nf])
			nf++;
		if (!stringish(e)) {
			mcb_diag_error(c->d, &e->loc, "'export' must be an export format, not %s",
				       mcb_node_kind_phrase(e));
			rx->broken = 1;
		} else if (!in_list(e->str, mcb_export_formats, nf)) {
			mcb_diag_error(c->d, &e->loc, "'export' must be one of %s, not '%s'%s",
				       joined(c, mcb_export_formats, nf, ""), e->str,
				       dym(c, e->str, mcb_export_formats, nf));
			rx->broken = 1;
		} else {
			rx->export = e->str;
		}
	}
	if ((rx->matrix = mcb_node_get(body, "matrix"))) {
		for (k = 0; k < body->nitems; k++)
			if (!strcmp(body->keys[k]->str, "matrix"))
				rx->matrix_key = body->keys[k];
		check_matrix(c, r, rx);
	}
	if (mcb_node_get(body, "quality"))
		check_quality(c, rx, mcb_node_get(body, "quality"));
	check_performance(c, rx, mcb_node_get(body, "performance"));
	if (mcb_node_get(body, "calibration"))
		check_calibration(c, rx, mcb_node_get(body, "calibration"));
}

static int rule_order_cmp(const void *x, const void *y)
{
	const struct entry *a = *(const struct entry *const *)x,
			   *b = *(const struct entry *const *)y;

	return entry_cmp(a, b);
}

static void check_rules(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct entry *v = st->sec[S_TARGETS], **sorted;
	size_t n = st->nsec[S_TARGETS], i, out, first, npat;
	unsigned char *dup;

	/* Duplicates across files (within one file they are duplicate YAML keys). */
	sorted = mcb_arena_array(c->a, n ? n : 1, sizeof(*sorted));
	dup = mcb_arena_array(c->a, n ? n : 1, 1);
	for (i = 0; i < n; i++)
		sorted[i] = &v[i];
	if (n > 1)
		qsort(sorted, n, sizeof(*sorted), rule_order_cmp);
	for (i = 1, first = 0; i < n; i++) {
		if (strcmp(sorted[i]->name, sorted[first]->name)) {
			first = i;
		} else {
			mcb_diag_error(c->d, &sorted[i]->key->loc,
				       "duplicate target '%s' (first defined "
				       "at %s)",
				       sorted[i]->name, at(c, &sorted[first]->key->loc));
			dup[sorted[i] - v] = 1;
		}
	}
	ws->rules = mcb_arena_array(c->a, n ? n : 1, sizeof(*ws->rules));
	st->rx = mcb_arena_array(c->a, n ? n : 1, sizeof(*st->rx));
	for (i = out = 0; i < n; i++) {
		if (dup[i])
			continue;
		ws->rules[out].pattern = v[i].name;
		ws->rules[out].loc = v[i].key->loc;
		ws->rules[out].body = v[i].value;
		out++;
	}
	ws->nrules = out;
	for (i = npat = 0; i < out; i++) {
		check_rule(c, i);
		if (ws->rules[i].is_pattern && ++npat == MAX_PATTERNS + 1)
			mcb_diag_error(c->d, &ws->rules[i].loc, "more than %d pattern rules",
				       MAX_PATTERNS);
		if (npat > MAX_PATTERNS) {
			st->rx[i].broken = 1;
			st->rx[i].segs_ok = 0;
		}
	}
}

/* ---- pass 4 and resolution: targets --------------------------------------- */

/* A path (relative to the root) that no target may replace or lie inside. */
struct protect {
	const char *rel;
	const char *what; /* for messages: "the recipe file 'mcbuild.yaml'" */
};

static int protect_cmp(const void *x, const void *y)
{
	return strcmp(((const struct protect *)x)->rel, ((const struct protect *)y)->rel);
}

static void protect_add(struct ctx *c, const char *abs_or_rel, int is_abs, const char *what)
{
	const char *rel = is_abs ? rel_to_root(c, abs_or_rel) : abs_or_rel;
	struct protect *p;

	if (!rel || !*rel)
		return;
	p = PUSH(c->a, c->st->protect, c->st->nprotect, c->st->protectcap);
	p->rel = rel;
	p->what = what;
}

/* Collect the recipe, model, config, data and cache paths inside the workspace. */
static void protect_inputs(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	size_t i;

	for (i = st->nbuiltin; i < st->nfiles; i++)
		protect_add(c, st->files[i].rel, 0,
			    mcb_arena_printf(c->a, "the recipe file '%s'", st->files[i].rel));
	for (i = 0; i < ws->nmodels; i++) {
		protect_add(c, ws->models[i].path, 1,
			    mcb_arena_printf(c->a, "the file of model '%s' ('%s')", ws->models[i].name,
					     rel_to_root(c, ws->models[i].path)));
		if (ws->models[i].config)
			protect_add(c, ws->models[i].config, 1,
				    mcb_arena_printf(c->a, "the config of model '%s' ('%s')",
						     ws->models[i].name,
						     rel_to_root(c, ws->models[i].config)));
	}
	for (i = 0; i < ws->ndatasets; i++) {
		if (ws->datasets[i].path[0])
			protect_add(c, ws->datasets[i].path, 1,
				    mcb_arena_printf(c->a, "the file of dataset '%s' ('%s')",
						     ws->datasets[i].name,
						     rel_to_root(c, ws->datasets[i].path)));
		if (ws->datasets[i].labels)
			protect_add(c, ws->datasets[i].labels, 1,
				    mcb_arena_printf(c->a, "the labels of dataset '%s' ('%s')",
						     ws->datasets[i].name,
						     rel_to_root(c, ws->datasets[i].labels)));
	}
	if (ws->cache_dir)
		protect_add(c, ws->cache_dir, 1,
			    mcb_arena_printf(c->a, "the cache directory '%s'",
					     rel_to_root(c, ws->cache_dir)));
	if (st->nprotect > 1)
		qsort(st->protect, st->nprotect, sizeof(*st->protect), protect_cmp);
}

/*
 * Non-NULL (what it would overwrite) when the target directory path is a
 * protected path, lies inside one, or contains one.  O(depth log n).
 */
static const char *path_conflict(struct ctx *c, const char *path)
{
	struct mcb_recipe_state *st = c->st;
	struct protect key, *hit;
	char *pre = mcb_arena_strdup(c->a, path);
	size_t n = strlen(path), i, lo = 0, hi = st->nprotect;

	for (i = 1; i <= n; i++) {
		if (pre[i] != '/' && pre[i] != '\0')
			continue;
		pre[i] = '\0';
		key.rel = pre;
		hit = st->nprotect ? bsearch(&key, st->protect, st->nprotect, sizeof(*st->protect),
					     protect_cmp) : NULL;
		if (hit)
			return hit->what;
		if (i < n)
			pre[i] = '/';
	}
	/* The first protected path at or after "path/" is inside path if any is. */
	key.rel = mcb_arena_printf(c->a, "%s/", path);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(st->protect[mid].rel, key.rel) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < st->nprotect && !strncmp(st->protect[lo].rel, key.rel, n + 1))
		return st->protect[lo].what;
	return NULL;
}

static json_t *resolved_json(const struct mcb_target *t, const char *written)
{
	json_t *o = json_object(), *model = json_object(), *stack = json_array(), *e;
	size_t i;

	json_object_set_new(model, "name", json_string(t->model->name));
	json_object_set_new(model, "path", json_string(written));
	json_object_set_new(model, "format", json_string(t->model->format));
	json_object_set_new(o, "model", model);
	json_object_set(o, "hardware", t->hw->json);
	for (i = 0; i < t->scheme->nstack; i++) {
		e = json_object();
		json_object_set(e, t->scheme->stack[i].tech->name, t->scheme->stack[i].params);
		json_array_append_new(stack, e);
	}
	json_object_set_new(o, "stack", stack);
	json_object_set_new(o, "export", json_string(t->export_format));
	if (t->quality)
		json_object_set(o, "quality", t->quality);
	if (t->calibration)
		json_object_set(o, "calibration", t->calibration);
	json_object_set(o, "performance", t->performance);
	return o;
}

/* The hardware's first export format that can store every technique of
 * scheme s (else its first format, whose refusal the caller reports). */
static const char *pick_format(const struct mcb_hw *hw, const struct mcb_scheme *s)
{
	size_t f, i;

	/* a gptq or awq quantization goes to its own checkpoint format first */
	for (i = 0; i < s->nstack; i++) {
		const struct mcb_stack_entry *e = &s->stack[i];
		const char *m = json_string_value(json_object_get(e->params, "method"));

		if (strcmp(e->tech->name, "quantize") || !m)
			continue;
		for (f = 0; f < hw->nformats; f++)
			if (!strcmp(hw->formats[f], m) && !e->tech->check_format(e->params, m))
				return hw->formats[f];
	}
	for (f = 0; f < hw->nformats; f++) {
		for (i = 0; i < s->nstack; i++) {
			const struct mcb_stack_entry *e = &s->stack[i];

			if (e->tech->check_format && e->tech->check_format(e->params, hw->formats[f]))
				break;
		}
		if (i == s->nstack)
			return hw->formats[f];
	}
	return hw->formats[0];
}

/*
 * Build and check the target at path from rule ri with field values vals.
 * Returns NULL after reporting, or silently when a declaration it uses is
 * broken (its errors are already reported).
 */
static struct mcb_target *make_target(struct ctx *c, size_t ri, const char *path,
				      const char *const *vals)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	const struct mcb_rule *r = &ws->rules[ri];
	const struct rulex *rx = &st->rx[ri];
	const struct mcb_model_decl *m = find_model(ws, vals[F_MODEL]);
	const struct mcb_hw *hw = mcb_workspace_hw(ws, vals[F_HW]), *fin;
	const struct mcb_scheme *s = find_scheme(ws, vals[F_STACK]);
	const struct mcb_loc *hwloc = &rx->fnode[F_HW]->loc;
	const struct mcb_loc *fmtloc = rx->export_node ? &rx->export_node->loc : hwloc;
	const char *fmt, *conflict;
	struct mcb_target *t;
	size_t i, before = c->d->nerr;

	if (!m || !hw || !s || st->mx[m - ws->models].broken || st->hx[hw - ws->hw]->broken ||
	    st->sx[s - ws->schemes].broken)
		return NULL;
	fin = hw->alias ? hw->alias : hw;
	if ((conflict = path_conflict(c, path)))
		mcb_diag_error(c->d, &r->loc, "target '%s' would overwrite %s", path, conflict);
	fmt = rx->export ? rx->export : pick_format(fin, s);
	if (rx->export && !in_list(fmt, fin->formats, fin->nformats))
		mcb_diag_error(c->d, &rx->export_node->loc,
			       "target '%s': hardware '%s' cannot load "
			       "%s (its formats: %s)",
			       path, vals[F_HW], fmt,
			       joined(c, fin->formats, fin->nformats, "none"));
	for (i = 0; i < s->nstack; i++) {
		const struct mcb_stack_entry *e = &s->stack[i];
		const char *cap = e->tech->capability ? e->tech->capability(e->params) : NULL;
		const char *why =
			e->tech->check_format ? e->tech->check_format(e->params, fmt) : NULL;

		if (cap && !in_list(cap, fin->supports, fin->nsupports))
			mcb_diag_error(
				c->d, hwloc,
				"target '%s': hardware '%s' cannot run scheme '%s': "
				"%s (%s) needs %s, which '%s' does not support (supports: %s)",
				path, vals[F_HW], s->name, e->tech->name, at(c, &e->loc), cap,
				fin->name, joined(c, fin->supports, fin->nsupports, "nothing"));
		if (why)
			mcb_diag_error(c->d, fmtloc,
				       "target '%s': %s (%s) cannot be exported as %s: %s", path,
				       e->tech->name, at(c, &e->loc), fmt, why);
		if (e->tech->needs_calibration && e->tech->needs_calibration(e->params) &&
		    !rx->calibration)
			mcb_diag_error(c->d, &r->loc,
				       "target '%s': %s (%s) needs calibration statistics: add "
				       "calibration: {dataset: NAME} to the target",
				       path, e->tech->name, at(c, &e->loc));
	}
	if (c->d->nerr > before)
		return NULL;
	t = mcb_arena_alloc(c->a, sizeof(*t));
	t->path = mcb_arena_strdup(c->a, path);
	t->rule = r;
	t->model = m;
	t->hw_name = hw->name;
	t->hw = fin;
	t->scheme = s;
	for (i = 0; mcb_export_formats[i]; i++)
		if (!strcmp(mcb_export_formats[i], fmt))
			t->export_format = mcb_export_formats[i];
	t->quality = rx->quality;
	t->datasets = rx->datasets;
	t->ndatasets = rx->ndatasets;
	t->performance = rx->performance;
	t->calibration = rx->calibration;
	t->calib_dataset = rx->calib_dataset;
	t->resolved = keep(c, resolved_json(t, st->mx[m - ws->models].written));
	return t;
}

/* The ways a request splits into placeholder values for one pattern. */
struct splits {
	const char *v[MAX_SPLITS][MAX_PH]; /* the first n splits: one value per placeholder */
	size_t n;                          /* recorded, <= MAX_SPLITS */
	size_t total;                      /* found */
};

static void match_rec(struct ctx *c, const struct rulex *rx, const char *req, size_t pos,
		      size_t si, const char **vals, struct splits *out)
{
	char buf[NAME_LEN_MAX + 1];
	const struct seg *s;
	size_t len, k;

	if (si == rx->nsegs) {
		if (req[pos])
			return;
		if (out->n < MAX_SPLITS) {
			for (k = 0; k < rx->nphs; k++)
				out->v[out->n][k] = mcb_arena_strdup(c->a, vals[k]);
			out->n++;
		}
		out->total++;
		return;
	}
	s = &rx->segs[si];
	if (s->ph < 0) {
		if (!strncmp(req + pos, s->lit, s->len))
			match_rec(c, rx, req, pos + s->len, si + 1, vals, out);
		return;
	}
	/* A placeholder takes a name of its namespace: no '/', at most 64 bytes. */
	for (len = 1; len <= NAME_LEN_MAX && req[pos + len - 1] && req[pos + len - 1] != '/';
	     len++) {
		memcpy(buf, req + pos, len);
		buf[len] = '\0';
		if (!ns_has(c->ws, rx->phs[s->ph].field, buf))
			continue;
		vals[s->ph] = buf;
		match_rec(c, rx, req, pos + len, si + 1, vals, out);
	}
}

/* Whether the literal segments of rx can occur in req in order (a cheap
 * necessary condition: most patterns fail it at once). */
static int literals_fit(const struct rulex *rx, const char *req)
{
	const char *p = req;
	size_t i;

	for (i = 0; i < rx->nsegs; i++) {
		if (rx->segs[i].ph >= 0)
			continue;
		if (i == 0) {
			if (strncmp(req, rx->segs[i].lit, rx->segs[i].len))
				return 0;
			p = req + rx->segs[i].len;
			continue;
		}
		p = memmem(p, strlen(p), rx->segs[i].lit, rx->segs[i].len);
		if (!p)
			return 0;
		p += rx->segs[i].len;
	}
	return 1;
}

/* Allocates only for complete matches: a request is tried against every pattern. */
static void match_rule(struct ctx *c, const struct rulex *rx, const char *req, struct splits *out)
{
	const char *vals[MAX_PH] = {NULL};

	out->n = out->total = 0;
	if (literals_fit(rx, req))
		match_rec(c, rx, req, 0, 0, vals, out);
}

static const char *split_text(struct ctx *c, const struct rulex *rx, const char **v)
{
	struct mcb_buf b = MCB_BUF_INIT;
	const char *s;
	size_t k;

	for (k = 0; k < rx->nphs; k++)
		mcb_buf_printf(&b, "%s%s=%s", k ? ", " : "", rx->phs[k].name, v[k]);
	s = mcb_arena_strdup(c->a, mcb_buf_str(&b));
	mcb_buf_release(&b);
	return s;
}

enum { NOMATCH = 1 };

/*
 * Match path against the pattern rules.  Returns 0 with *out set (NULL when
 * the target could not be checked: reported), NOMATCH, or MCB_ERECIPE after
 * reporting an ambiguity at loc (NULL: no position).
 */
static int match_patterns(struct ctx *c, const char *path, const struct mcb_loc *loc,
			  struct mcb_target **out)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	struct splits sp, first;
	size_t i, k, nrules = 0, which = 0, hits[MAX_HITS];
	const char *vals[NFIELDS];

	*out = NULL;
	first.n = first.total = 0;
	for (i = 0; i < ws->nrules; i++) {
		if (!ws->rules[i].is_pattern || !st->rx[i].segs_ok)
			continue;
		match_rule(c, &st->rx[i], path, &sp);
		if (!sp.total)
			continue;
		if (!nrules) {
			first = sp;
			which = i;
		}
		if (nrules < MAX_HITS)
			hits[nrules] = i;
		nrules++;
	}
	if (!nrules)
		return NOMATCH;
	if (nrules > 1) {
		struct mcb_buf b = MCB_BUF_INIT;
		size_t shown = nrules < MAX_HITS ? nrules : MAX_HITS;

		for (k = 0; k < shown; k++) {
			const struct mcb_rule *r = &ws->rules[hits[k]];
			const char *sep = k == 0 ? "" : k + 1 == nrules ? " and " : ", ";

			mcb_buf_printf(&b, "%s'%s' (%s)", sep, r->pattern, at(c, &r->loc));
		}
		if (nrules > shown)
			mcb_buf_printf(&b, " and %zu more", nrules - shown);
		mcb_diag_error(c->d, loc, "ambiguous rules: '%s' matches %s%s", path,
			       nrules == 2 ? "both " : "", mcb_buf_str(&b));
		mcb_buf_release(&b);
		return MCB_ERECIPE;
	}
	if (first.total > 1) {
		struct mcb_buf b = MCB_BUF_INIT;

		for (k = 0; k < first.n; k++)
			mcb_buf_printf(&b, "%s%s", k ? " or " : "",
				       split_text(c, &st->rx[which], first.v[k]));
		if (first.total > first.n)
			mcb_buf_printf(&b, " or %zu more", first.total - first.n);
		if (first.total == 2)
			mcb_diag_error(c->d, &ws->rules[which].loc,
				       "target '%s' splits two ways: %s", path, mcb_buf_str(&b));
		else
			mcb_diag_error(c->d, &ws->rules[which].loc,
				       "target '%s' splits %zu ways: %s", path, first.total,
				       mcb_buf_str(&b));
		mcb_buf_release(&b);
		return MCB_ERECIPE;
	}
	if (st->rx[which].broken) {
		mcb_diag_error(c->d, loc, "target '%s' matches '%s' (%s), which has errors", path,
			       ws->rules[which].pattern, at(c, &ws->rules[which].loc));
		return MCB_ERECIPE;
	}
	for (k = 0; k < NFIELDS; k++)
		vals[k] = st->rx[which].fph[k] >= 0 ? first.v[0][st->rx[which].fph[k]] :
						     st->rx[which].lit[k];
	*out = make_target(c, which, path, vals);
	return *out ? 0 : MCB_ERECIPE;
}

static void add_declared(struct ctx *c, struct mcb_target *t, size_t *cap)
{
	*PUSH(c->a, c->ws->declared, c->ws->ndeclared, *cap) = t;
}

/* Every instance of rule ri's matrix. */
static void declare_matrix(struct ctx *c, size_t ri, size_t *cap)
{
	struct mcb_workspace *ws = c->ws;
	const struct rulex *rx = &c->st->rx[ri];
	const struct mcb_node **lists;
	size_t *idx, k, j;
	struct mcb_buf b = MCB_BUF_INIT;

	lists = mcb_arena_array(c->a, rx->nphs, sizeof(*lists));
	idx = mcb_arena_array(c->a, rx->nphs, sizeof(*idx));
	for (k = 0; k < rx->nphs; k++)
		lists[k] = mcb_node_get(rx->matrix, rx->phs[k].name);
	for (;;) {
		const char *msg;
		struct mcb_target *t;

		mcb_buf_reset(&b);
		for (j = 0; j < rx->nsegs; j++) {
			if (rx->segs[j].ph < 0)
				mcb_buf_add(&b, rx->segs[j].lit, rx->segs[j].len);
			else
				mcb_buf_adds(
					&b, lists[rx->segs[j].ph]->items[idx[rx->segs[j].ph]]->str);
		}
		if ((msg = bad_target_path(c, mcb_buf_str(&b), mcb_buf_str(&b)))) {
			mcb_diag_error(c->d, &rx->matrix_key->loc, "%s", msg);
		} else {
			for (j = 0; j < ws->nrules; j++)
				if (!ws->rules[j].is_pattern &&
				    !strcmp(ws->rules[j].pattern, b.data))
					break;
			if (j < ws->nrules)
				mcb_diag_error(c->d, &rx->matrix_key->loc,
					       "matrix instance '%s' is also "
					       "declared by the rule at %s",
					       b.data, at(c, &ws->rules[j].loc));
			else if (ws->ndeclared >= MAX_DECLARED)
				mcb_diag_error(c->d, &rx->matrix_key->loc,
					       "more than %d declared targets", MAX_DECLARED);
			else if (match_patterns(c, b.data, &rx->matrix_key->loc, &t) == 0 && t)
				add_declared(c, t, cap);
			if (ws->ndeclared >= MAX_DECLARED)
				break;
		}
		for (k = rx->nphs; k-- > 0;) {
			if (++idx[k] < lists[k]->nitems)
				break;
			idx[k] = 0;
		}
		if (k == (size_t)-1)
			break;
	}
	mcb_buf_release(&b);
}

static int target_cmp(const void *x, const void *y)
{
	return strcmp((*(struct mcb_target *const *)x)->path,
		      (*(struct mcb_target *const *)y)->path);
}

static void declare_targets(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	size_t i, cap = 0, out;
	struct mcb_target *t;

	for (i = 0; i < ws->nrules; i++) {
		if (ws->rules[i].is_pattern || st->rx[i].broken)
			continue;
		if (ws->ndeclared >= MAX_DECLARED) {
			mcb_diag_error(c->d, &ws->rules[i].loc, "more than %d declared targets",
				       MAX_DECLARED);
			break;
		}
		t = make_target(c, i, ws->rules[i].pattern, st->rx[i].lit);
		if (t)
			add_declared(c, t, &cap);
	}
	for (i = 0; i < ws->nrules; i++)
		if (ws->rules[i].is_pattern && !st->rx[i].broken && st->rx[i].matrix)
			declare_matrix(c, i, &cap);
	if (ws->ndeclared > 1)
		qsort(ws->declared, ws->ndeclared, sizeof(*ws->declared), target_cmp);
	for (i = out = 0; i < ws->ndeclared; i++)
		if (!out || strcmp(ws->declared[out - 1]->path, ws->declared[i]->path))
			ws->declared[out++] = ws->declared[i];
	ws->ndeclared = out;
	st->declared_paths = mcb_arena_array(c->a, out ? out : 1, sizeof(char *));
	for (i = 0; i < out; i++)
		st->declared_paths[i] = ws->declared[i]->path;
}

static struct mcb_target *find_declared(const struct mcb_workspace *ws, const char *path)
{
	size_t lo = 0, hi = ws->ndeclared;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(path, ws->declared[mid]->path);

		if (!r)
			return ws->declared[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int ptr_cmp(const void *x, const void *y)
{
	const void *a = *(const void *const *)x, *b = *(const void *const *)y;

	return a < b ? -1 : a > b;
}

/* Append targets v[0..n) to *out, skipping those already there. */
static void append(struct ctx *c, struct mcb_target ***out, size_t *n,
		   struct mcb_target *const *v, size_t nv)
{
	struct mcb_target **had = NULL, **nout;
	size_t i, nh = *n, k = *n;

	if (nh) {
		had = mcb_arena_array(c->a, nh, sizeof(*had));
		memcpy(had, *out, nh * sizeof(*had));
		qsort(had, nh, sizeof(*had), ptr_cmp);
	}
	nout = mcb_arena_array(c->a, *n + nv ? *n + nv : 1, sizeof(*nout));
	if (*n)
		memcpy(nout, *out, *n * sizeof(*nout));
	for (i = 0; i < nv; i++)
		if (!nh || !bsearch(&v[i], had, nh, sizeof(*had), ptr_cmp))
			nout[k++] = v[i];
	*out = nout;
	*n = k;
}

/* The request as a workspace-relative path, or NULL after reporting at loc. */
static const char *request_path(struct ctx *c, const char *req, const struct mcb_loc *loc)
{
	const char *rel = req, *clean;

	if (req[0] == '/') {
		rel = rel_to_root(c, clean_abs(c->a, req));
		if (!rel) {
			if (!strcmp(clean_abs(c->a, req), c->ws->root))
				return ".";
			mcb_diag_error(c->d, loc, "target '%s' is outside the workspace", req);
			return NULL;
		}
	}
	clean = mcb_path_clean_relative(c->a, rel);
	if (!clean) {
		mcb_diag_error(c->d, loc, "target '%s' is outside the workspace", req);
		return NULL;
	}
	return clean;
}

static int resolve_request(struct ctx *c, const char *req, const struct mcb_loc *loc,
			   struct mcb_target ***out, size_t *n)
{
	struct mcb_workspace *ws = c->ws;
	struct mcb_recipe_state *st = c->st;
	const char *path = request_path(c, req, loc), *prefix;
	struct mcb_target *t;
	size_t i, lo, cnt;
	int rc;

	if (!path)
		return MCB_ERECIPE;
	if (strcmp(path, ".")) {
		if ((t = find_declared(ws, path))) {
			append(c, out, n, &t, 1);
			return 0;
		}
		for (i = 0; i < st->nextra; i++) {
			if (!strcmp(st->extra[i]->path, path)) {
				append(c, out, n, &st->extra[i], 1);
				return 0;
			}
		}
		for (i = 0; i < ws->nrules; i++) {
			if (!ws->rules[i].is_pattern && !strcmp(ws->rules[i].pattern, path)) {
				mcb_diag_error(c->d, loc,
					       "target '%s' cannot be built: its rule (%s) has "
					       "errors",
					       path, at(c, &ws->rules[i].loc));
				return MCB_ERECIPE;
			}
		}
		if (!path_within(path, ".mcbuild")) {
			rc = match_patterns(c, path, loc, &t);
			if (rc == 0) {
				*PUSH(c->a, st->extra, st->nextra, st->extracap) = t;
				append(c, out, n, &t, 1);
				return 0;
			}
			if (rc != NOMATCH)
				return MCB_ERECIPE;
		}
	}
	/* A directory: every declared target below it. */
	prefix = strcmp(path, ".") ? mcb_arena_printf(c->a, "%s/", path) : "";
	for (lo = 0;
	     lo < ws->ndeclared && strncmp(ws->declared[lo]->path, prefix, strlen(prefix)) < 0;
	     lo++)
		;
	for (cnt = 0; lo + cnt < ws->ndeclared &&
		      !strncmp(ws->declared[lo + cnt]->path, prefix, strlen(prefix)); cnt++)
		;
	if (cnt) {
		append(c, out, n, ws->declared + lo, cnt);
		return 0;
	}
	mcb_diag_error(c->d, loc, "no rule to make target '%s'%s", req,
		       dym(c, path, st->declared_paths, ws->ndeclared));
	return MCB_ERECIPE;
}

static void check_defaults(struct ctx *c)
{
	struct mcb_workspace *ws = c->ws;
	const struct mcb_node *v = c->st->defaults_node;
	struct mcb_target **out = NULL;
	size_t n = 0, i;

	if (!v) {
		ws->defaults = c->st->declared_paths;
		ws->ndefaults = ws->ndeclared;
		return;
	}
	if (v->kind != MCB_NODE_SEQ) {
		mcb_diag_error(c->d, &v->loc, "'default' must be a list of targets, not %s",
			       mcb_node_kind_phrase(v));
		return;
	}
	ws->defaults = mcb_arena_array(c->a, v->nitems ? v->nitems : 1, sizeof(char *));
	for (i = 0; i < v->nitems; i++) {
		const struct mcb_node *it = v->items[i];

		if (!stringish(it)) {
			mcb_diag_error(c->d, &it->loc,
				       "'default' entries must be target paths, not %s",
				       mcb_node_kind_phrase(it));
			continue;
		}
		if (resolve_request(c, it->str, &it->loc, &out, &n) == 0)
			ws->defaults[ws->ndefaults++] = it->str;
	}
}

/* ---- the public interface --------------------------------------------- */

int mcb_workspace_find(struct mcb_arena *a, const char *start, char **root)
{
	char *real = realpath(start, NULL), *dir;
	size_t n;

	if (!real)
		return MCB_ENOENT;
	dir = mcb_arena_strdup(a, real);
	free(real);
	for (;;) {
		if (mcb_os_exists(mcb_path_join(a, dir, MCB_RECIPE_FILE)) &&
		    !mcb_os_isdir(mcb_path_join(a, dir, MCB_RECIPE_FILE))) {
			*root = dir;
			return 0;
		}
		if (!strcmp(dir, "/"))
			return MCB_ENOENT;
		n = strlen(dir);
		while (n > 1 && dir[n - 1] != '/')
			n--;
		dir[n > 1 ? n - 1 : 1] = '\0';
	}
}

int mcb_workspace_load(struct mcb_workspace *ws, const char *root, const char *display_prefix,
		       struct mcb_diags *d)
{
	struct ctx c;
	size_t before = d->nerr, i;
	char *real;
	int s;

	memset(ws, 0, sizeof(*ws));
	mcb_arena_init(&ws->arena);
	c.ws = ws;
	c.a = &ws->arena;
	c.d = d;
	c.st = ws->priv = mcb_arena_alloc(c.a, sizeof(*ws->priv));
	c.st->prefix = mcb_arena_strdup(c.a, display_prefix ? display_prefix : "");
	c.st->dym_budget = DYM_BUDGET;
	real = realpath(root, NULL);
	if (!real) {
		mcb_diag_error(d, NULL, "cannot open workspace '%s': %s", root, strerror(errno));
		ws->root = mcb_arena_strdup(c.a, root);
		return MCB_ERECIPE;
	}
	ws->root = mcb_arena_strdup(c.a, real);
	c.st->realroot = ws->root;
	free(real);

	load_builtins(&c);
	load_file(&c, MCB_RECIPE_FILE, NULL);
	ws->nfiles = c.st->nfiles - c.st->nbuiltin;
	ws->files = mcb_arena_array(c.a, ws->nfiles ? ws->nfiles : 1, sizeof(char *));
	for (i = 0; i < ws->nfiles; i++)
		ws->files[i] = c.st->files[c.st->nbuiltin + i].display;

	for (i = 0; i < c.st->nfiles; i++)
		collect_file(&c, &c.st->files[i], i == c.st->nbuiltin);
	c.st->nbhw = dedupe(&c, c.st->bhw, c.st->nbhw, section_noun[S_HARDWARE]);
	for (s = 0; s < S_TARGETS; s++)
		c.st->nsec[s] = dedupe(&c, c.st->sec[s], c.st->nsec[s], section_noun[s]);

	check_models(&c);
	c.st->names[F_MODEL] = mcb_arena_array(c.a, ws->nmodels + 1, sizeof(char *));
	for (i = 0; i < ws->nmodels; i++)
		c.st->names[F_MODEL][i] = ws->models[i].name;
	c.st->nnames[F_MODEL] = ws->nmodels;
	check_datasets(&c);
	c.st->names[F_STACK] = mcb_arena_array(c.a, c.st->nsec[S_SCHEMES] + 1, sizeof(char *));
	for (i = 0; i < c.st->nsec[S_SCHEMES]; i++)
		c.st->names[F_STACK][i] = c.st->sec[S_SCHEMES][i].name;
	c.st->nnames[F_STACK] = c.st->nsec[S_SCHEMES];
	check_hardware(&c);
	check_schemes(&c);
	check_rules(&c);
	protect_inputs(&c);
	declare_targets(&c);
	check_defaults(&c);
	return d->nerr > before ? MCB_ERECIPE : 0;
}

void mcb_workspace_release(struct mcb_workspace *ws)
{
	size_t i;

	if (ws->priv)
		for (i = 0; i < ws->priv->npool; i++)
			json_decref(ws->priv->pool[i]);
	mcb_arena_release(&ws->arena);
	memset(ws, 0, sizeof(*ws));
}

int mcb_workspace_resolve(struct mcb_workspace *ws, const char *request,
			  struct mcb_target ***out, size_t *n, struct mcb_diags *d)
{
	struct ctx c = {ws, ws->priv, &ws->arena, d};

	if (!ws->priv) {
		mcb_diag_error(d, NULL, "no workspace loaded");
		return MCB_ERECIPE;
	}
	return resolve_request(&c, request, NULL, out, n);
}
