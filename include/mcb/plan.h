/*
 * plan: lowering checked targets to the step DAG.
 *
 * Each target becomes import -> (per layer: one step per stack technique,
 * after a shared calibration when one needs statistics) -> assemble -> export,
 * evaluations of the baseline and of the compressed model on the datasets
 * its quality gates name (sampled datasets through a sample step), a
 * measurement, a report, and a bundle.  Steps are interned by structure (kind, params, producers), so a
 * step that does not depend on the hardware -- the import of a model, a
 * quantization every target of one export format shares -- is one node, run
 * once, whatever number of targets use it.  Steps are stored in topological
 * order (every producer before its users).
 */
#ifndef MCB_PLAN_H
#define MCB_PLAN_H

#include <stddef.h>

#include "mcb/action.h"
#include "mcb/diag.h"
#include "mcb/hash.h"

struct json_t;
struct mcb_arena;
struct mcb_errctx;
struct mcb_stepkind;
struct mcb_target;

struct mcb_plan_step;

struct mcb_plan_dep {
	const char *slot;	    /* input name in the consumer ("model", "source") */
	struct mcb_plan_step *from; /* producer, or NULL for a source file */
	const char *output;	    /* producer's output file name */
	const char *source;	    /* absolute path of a source file (from == NULL) */
	const char *what;	    /* "model 'stories'" for messages about the source */
	struct mcb_loc loc;	    /* where the source is declared */
};

enum mcb_step_state {
	MCB_STEP_WAITING, /* some producer is not done */
	MCB_STEP_READY,	  /* producers done, key not yet looked up */
	MCB_STEP_RUNNING,
	MCB_STEP_DONE,	 /* outputs known (cached or ran) */
	MCB_STEP_FAILED, /* ran and failed, or a producer failed */
	MCB_STEP_DRY	 /* -n: would run; outputs unknown */
};

struct mcb_plan_step {
	size_t id; /* index in plan->steps */
	const struct mcb_stepkind *kind;
	struct json_t *params; /* canonical; owned.  bundle: set when ready */
	const char *label;     /* stable identity across builds (-d explain) */
	const char **aliases;  /* labels of the other targets' chains that interned
	                                    to this same step (naux entries) */
	size_t naliases;
	const char *desc;	   /* progress text: "quantize rtn w8 q8_0 stories" */
	struct mcb_plan_dep *deps; /* ndeps, sorted by slot */
	size_t ndeps;
	struct mcb_plan_step **users; /* steps that consume an output of this one */
	size_t nusers, capusers;
	const char **outputs; /* output file names the kind produces */
	size_t noutputs;
	const struct mcb_target *target; /* bundle steps: their target; else NULL */
	struct mcb_plan_step **chain;	 /* bundle steps: the target's steps, import first */
	size_t nchain;
	/* build state (compiler/build.c) */
	enum mcb_step_state state;
	size_t nblock;		      /* producers not yet DONE */
	struct mcb_digest key;	      /* valid from READY on */
	const char *encoding;	      /* canonical action encoding hashed into key */
	const char *params_enc;	      /* canonical encoding of params (bundle: of the
	                                    provenance), part of encoding */
	struct mcb_action action;     /* outputs, valid in DONE */
	int ran;		      /* 1: executed in this build, 0: cache hit */
	struct mcb_digest *in_digest; /* ndeps input digests, valid from READY on */
	uint64_t *in_size;
};

struct mcb_plan_target {
	const struct mcb_target *target;
	struct mcb_plan_step *exp;    /* export step: the model files */
	struct mcb_plan_step *report; /* report step: report.json, .md, .html */
	struct mcb_plan_step *bundle; /* bundle step: manifest.json */
};

struct mcb_plan {
	struct mcb_plan_step **steps; /* nsteps, topological order */
	size_t nsteps, capsteps;
	struct mcb_plan_target *targets;
	size_t ntargets;
};

/*
 * Lower n targets into p (arena-allocated; p->steps' params are owned JSON:
 * release with mcb_plan_release).  A stack that changes weights is planned
 * per layer, so the model's config is read from its file (header only).
 * Problems (an unreadable model, an override naming no tensor) go to d with
 * the recipe location; returns 0, or MCB_ERECIPE after reporting, when
 * p->targets holds only the targets that could be planned (their steps are
 * complete: -k builds them).
 */
int mcb_plan_build(struct mcb_plan *p, struct mcb_arena *a, struct mcb_target *const *targets,
		   size_t n, struct mcb_diags *d);
void mcb_plan_release(struct mcb_plan *p);

/* Write the DAG in Graphviz dot to f. */
void mcb_plan_dot(const struct mcb_plan *p, FILE *f);

#endif
