/*
 * recipe: the workspace (mcbuild.yaml plus included files and the built-in
 * hardware profiles) loaded, checked and resolved into targets.
 *
 * Loading reports every problem at once to a struct mcb_diags.  Resolving a
 * request ("targets/a100-int8", or a directory prefix "targets/") yields
 * checked targets: model, hardware profile (aliases followed), scheme and
 * export format, ready for compiler/plan.c.
 */
#ifndef MCB_RECIPE_H
#define MCB_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/arena.h"
#include "mcb/diag.h"

struct json_t;
struct mcb_node;
struct mcb_recipe_state;
struct mcb_technique;

#define MCB_RECIPE_FILE "mcbuild.yaml"
#define MCB_RECIPE_MAX_BYTES (4u << 20)
#define MCB_RECIPE_MAX_INCLUDES 64

struct mcb_model_decl {
	const char *name;
	struct mcb_loc loc;        /* the name's key */
	const char *path;          /* absolute path of the model file */
	const char *format;        /* "auto", "llama2c", "gguf", "safetensors" */
	const char *config;        /* absolute path of config.json for format safetensors (or auto
	                              with a .safetensors path), else NULL */
};

struct mcb_dataset_decl {
	const char *name;
	struct mcb_loc loc;
	const char *path;          /* absolute; "" for a sampled dataset */
	const char *kind;          /* "tokens", "text", "labelled" */
	const char *format;        /* how to read it: "tokens", "text", "csv" or "idx" */
	const char *labels;        /* idx only: absolute path of the label file, else NULL */
	const struct mcb_model_decl *sample_model; /* sampled: the model sampled, else NULL */
	struct json_t *sample;     /* sampled: {"sequences","length","seed","temperature",
	                              "top_k"}, defaults filled; else NULL; owned */
};

struct mcb_stack_entry {
	const struct mcb_technique *tech;
	struct mcb_loc loc;        /* the entry in its scheme */
	struct json_t *params;     /* canonical: every parameter, defaults filled; owned by the
	                              workspace, shared by every scheme that splices it in */
};

struct mcb_scheme {
	const char *name;
	struct mcb_loc loc;
	struct mcb_stack_entry *stack; /* nstack entries, "use:" already spliced in */
	size_t nstack;
};

struct mcb_hw {
	const char *name;
	struct mcb_loc loc;
	int builtin;               /* 1: from recipes/hardware/, not overridden */
	const struct mcb_hw *alias;/* non-NULL: this name is an alias of that profile
	                              (already followed: never an alias itself) */
	const char *description;
	const char *kind;          /* "gpu", "cpu", "npu" */
	double memory_gb;          /* device (or host) memory */
	double bandwidth_gbs;      /* memory bandwidth, GB/s */
	const char **supports;     /* capabilities (mcb_capabilities) */
	size_t nsupports;
	const char **formats;      /* export formats, preferred first; nformats >= 1 */
	size_t nformats;
	struct json_t *json;       /* the resolved profile (base: applied): every field above plus
	                              "name" (the profile's, not an alias's), "vendor" and
	                              "peak_tflops" when given; owned (an alias shares its
	                              profile's); NULL, like the fields above, when the profile
	                              has errors */
};

struct mcb_rule {
	const char *pattern;       /* "targets/{hw}-{scheme}" or an explicit path */
	struct mcb_loc loc;
	int is_pattern;
	const struct mcb_node *body;
};

struct mcb_target {
	const char *path;          /* clean relative path inside the workspace */
	const struct mcb_rule *rule;
	const struct mcb_model_decl *model;
	const char *hw_name;       /* as written or matched (may be an alias) */
	const struct mcb_hw *hw;   /* the profile (alias followed) */
	const struct mcb_scheme *scheme;
	const char *export_format; /* "gguf" or "safetensors" */
	struct json_t *resolved;   /* canonical definition (the manifest's recipe section):
	                              {"model": {"name", "path" (as written), "format"},
	                               "hardware": hw->json, "stack": [{"quantize": params}...],
	                               "export": export_format, "quality": quality (when set),
	                               "performance": performance}; owned by the workspace */
	struct json_t *quality;    /* NULL, or {"confidence", "bootstrap", "seed", "metrics":
	                              [{"metric", "dataset", "window", "stride", "gate":
	                              null | {"kind", "value", "relative", "text"}}]}; owned */
	const struct mcb_dataset_decl **datasets; /* the datasets quality names, in order of
	                              first use (ndatasets) */
	size_t ndatasets;
	struct json_t *performance; /* {"context", "batch", "prompt_tokens", "decode_tokens",
	                              "repeats"}: defaults filled; owned */
	struct json_t *calibration; /* NULL, or {"dataset", "samples", "seq_len",
	                              "max_samples", "seed", "sequential"}; owned */
	const struct mcb_dataset_decl *calib_dataset; /* its dataset, else NULL */
};

struct mcb_workspace {
	struct mcb_arena arena;    /* everything below */
	const char *root;          /* absolute workspace directory */
	const char **files;        /* recipe files loaded, root first (display paths) */
	size_t nfiles;
	const char *cache_dir;     /* absolute, from cache: dir:, or NULL for the default */
	uint64_t cache_max;        /* cache: max_size: in bytes (when cache_max_set) */
	int cache_max_set;
	struct mcb_model_decl *models;   size_t nmodels;
	struct mcb_dataset_decl *datasets; size_t ndatasets;
	struct mcb_scheme *schemes;      size_t nschemes;
	struct mcb_hw *hw;               size_t nhw;   /* built-in and workspace, by name */
	struct mcb_rule *rules;          size_t nrules;
	struct mcb_target **declared;    size_t ndeclared; /* explicit + matrix instances */
	const char **defaults;           size_t ndefaults; /* default: requests (as written),
	                                    or every declared path when default: is absent */
	struct mcb_recipe_state *priv;   /* checker state private to compiler/recipe.c */
};

/*
 * Find the workspace root: the nearest directory at or above start holding
 * mcbuild.yaml.  Stores an arena string in *root.  MCB_ENOENT when none.
 */
int mcb_workspace_find(struct mcb_arena *a, const char *start, char **root);

/*
 * Load and check root/mcbuild.yaml, its includes and the built-in hardware
 * profiles (root may be relative; ws->root is its real path).  display_prefix
 * is prepended to recipe paths in messages (the workspace's path relative to
 * the cwd, "" when it is the cwd).  Every problem is reported to d, each with
 * file:line:col; declared targets are checked too.  Returns 0, or
 * MCB_ERECIPE when it reported errors (ws is then partial: declarations with
 * errors yield no targets).  Release with mcb_workspace_release even on
 * failure.
 */
int mcb_workspace_load(struct mcb_workspace *ws, const char *root, const char *display_prefix,
		       struct mcb_diags *d);
void mcb_workspace_release(struct mcb_workspace *ws);

/*
 * Resolve one request: an exact target path (a declared target first, then
 * the pattern rules) or else a directory ("targets/" or "targets"; "." for
 * all) naming every declared target under it, sorted by path.  The request
 * is relative to the workspace root, or absolute inside it; a trailing '/'
 * is ignored.  Appends to *out (growing *n, arena-allocated, no duplicates;
 * the same path always yields the same struct mcb_target).  Errors (no rule
 * matches, ambiguous split, ambiguous rules, hardware cannot run the scheme,
 * format cannot store it) go to d; returns 0 or MCB_ERECIPE.  Meant for a
 * workspace that loaded without errors.
 */
int mcb_workspace_resolve(struct mcb_workspace *ws, const char *request,
			  struct mcb_target ***out, size_t *n, struct mcb_diags *d);

/* The hardware profile called name (aliases not followed), or NULL. */
const struct mcb_hw *mcb_workspace_hw(const struct mcb_workspace *ws, const char *name);

#endif
