/*
 * steprun: run step kinds in the unit tests as the scheduler would, in a
 * temporary directory: inputs added by path (digested), params as JSON text,
 * each output directory under r->dir.  For the tests that link every object.
 */
#ifndef MCBT_STEPRUN_H
#define MCBT_STEPRUN_H

#include <stddef.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/step.h"

struct mcbt_run {
	struct mcb_arena a;
	struct mcb_buf log;     /* every step's log lines */
	struct mcb_errctx e;    /* the last step's error */
	struct mcb_step_input in[8];
	size_t nin;
	const char *dir;
	int threads;            /* OpenBLAS budget of the steps (0: 1) */
};

/* A fresh run in a new temporary directory; release with mcbt_run_release. */
void mcbt_run_init(struct mcbt_run *r);
void mcbt_run_release(struct mcbt_run *r);
/* Add input name of the next step (a check failure when path is unreadable). */
void mcbt_run_input(struct mcbt_run *r, const char *name, const char *path);
/* Run kind with params (JSON text) and the inputs added so far, into r->dir/out
 * (created).  The inputs are consumed.  Returns the step's result. */
int mcbt_run_step(struct mcbt_run *r, const struct mcb_stepkind *kind, const char *params,
		  const char *out);
/* r->dir/a/b */
char *mcbt_run_path(struct mcbt_run *r, const char *a, const char *b);

#endif
