/*
 * step: step kinds.  A step is a pure function
 *     (kind, kind version, canonical params, input files) -> output files
 * run by the scheduler in its own process with its own scratch arena and
 * OpenBLAS thread budget.  Adding a step kind is one file in runtime/ plus one
 * row in the table in runtime/step.c; bump a kind's version whenever its
 * outputs for the same inputs change, so that cached results are not reused.
 */
#ifndef MCB_STEP_H
#define MCB_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/hash.h"

struct json_t;
struct mcb_arena;
struct mcb_buf;
struct mcb_errctx;

struct mcb_step_input {
	const char *name;	  /* input slot: "model", "source", "config", ... */
	const char *path;	  /* a readable file holding the input; NULL for slots
	                             the kind does not read (wants) */
	struct mcb_digest digest; /* SHA-256 of its content */
	uint64_t size;
};

struct mcb_stepctx {
	const struct json_t *params;	 /* canonical parameters */
	const struct mcb_step_input *in; /* nin inputs, sorted by name */
	size_t nin;
	const char *outdir;	   /* empty directory: write output files here */
	struct mcb_arena *scratch; /* released after the step */
	struct mcb_buf *log;	   /* user-facing messages, one per line */
	struct mcb_errctx *e;	   /* failure message */
	int blas_threads;	   /* OpenBLAS threads this step may use */
};

struct mcb_stepkind {
	const char *name; /* "import", "quantize", "export", "bundle" */
	int version;	  /* part of every action key of this kind */
	/* Run the step: read inputs, write outputs into sc->outdir.  Returns 0 or
	 * a negative mcb_err with sc->e set. */
	int (*run)(struct mcb_stepctx *sc);
	/* NULL, or whether the step reads slot's content (when not, only its
	 * digest and size are given and the blob is not materialized). */
	int (*wants)(const char *slot);
	/* 1: run with no other step at the same time (it measures time). */
	int exclusive;
};

/* The kind called name, or NULL. */
const struct mcb_stepkind *mcb_stepkind_find(const char *name);

/* The input called name, or NULL. */
const struct mcb_step_input *mcb_step_input(const struct mcb_stepctx *sc, const char *name);

/* Append one line to the step's log. */
void mcb_step_log(struct mcb_stepctx *sc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Path of name inside the output directory (scratch-allocated). */
char *mcb_step_outpath(struct mcb_stepctx *sc, const char *name);

/* Parameter accessors: the value of key, or def when absent or mistyped. */
const char *mcb_param_str(const struct json_t *params, const char *key, const char *def);
int64_t mcb_param_int(const struct json_t *params, const char *key, int64_t def);
int mcb_param_bool(const struct json_t *params, const char *key, int def);

/* The step kinds (one file each). */
extern const struct mcb_stepkind mcb_step_import;
extern const struct mcb_stepkind mcb_step_quantize;
extern const struct mcb_stepkind mcb_step_export;
extern const struct mcb_stepkind mcb_step_bundle;
extern const struct mcb_stepkind mcb_step_sample;
extern const struct mcb_stepkind mcb_step_evaluate;
extern const struct mcb_stepkind mcb_step_measure;
extern const struct mcb_stepkind mcb_step_report;
extern const struct mcb_stepkind mcb_step_assemble;
extern const struct mcb_stepkind mcb_step_calibrate;
extern const struct mcb_stepkind mcb_step_prune;
extern const struct mcb_stepkind mcb_step_lowrank;

/* Read a small JSON input (an earlier step's output) of slot name: a new
 * reference, or NULL with sc->e set. */
struct json_t *mcb_step_read_json(struct mcb_stepctx *sc, const char *name);
/* Write v (pretty) to the output file name. */
int mcb_step_write_json(struct mcb_stepctx *sc, const char *name, const struct json_t *v);

#endif
