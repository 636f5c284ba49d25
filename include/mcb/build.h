/*
 * build: the scheduler.  Runs a plan's steps like ninja runs edges: ready
 * steps in parallel up to -j, each in its own process with its own scratch
 * directory, arena and OpenBLAS thread budget; cache hits skip execution;
 * finished targets are installed atomically into the workspace.
 */
#ifndef MCB_BUILD_H
#define MCB_BUILD_H

#include <stddef.h>
#include <stdio.h>

struct mcb_arena;
struct mcb_errctx;
struct mcb_explain;
struct mcb_plan;
struct mcb_statcache;
struct mcb_store;

struct mcb_build_opts {
	int jobs;	/* parallel steps, >= 1 */
	int keep_going; /* -k: go on after a failure with what does not depend on it */
	int dry_run;	/* -n: print the plan, run and install nothing */
	int explain;	/* -d explain: say why each step runs */
	int stats;	/* -d stats: print counters at the end */
	int tty;	/* progress on one rewritten line */
};

struct mcb_build {
	/* set by the caller */
	struct mcb_plan *plan;
	struct mcb_store *store;
	struct mcb_statcache *stat;
	struct mcb_explain *explain;
	const char *root;	 /* workspace root, absolute */
	const char *tmpdir;	 /* scratch area for steps, absolute */
	struct mcb_arena *arena; /* step keys, encodings and action entries (outlive the run) */
	struct mcb_build_opts opts;
	FILE *out; /* progress and step output (stdout) */
	FILE *err; /* warnings, explanations (stderr) */
	/* private */
	const char *blobdir; /* decompressed inputs shared by the steps (tmpdir/blobs-PID) */
	/* results */
	size_t nran, ncached, nfailed, ninstalled, nuptodate;
	size_t nwould;	    /* -n: steps and installs that would run */
	size_t nwarned;	    /* warnings printed */
	/* per plan target (arena): */
	char *outcome;	      /* 'i' installed by this run, 'u' already up to date, 0 not built */
	char *verdict;	      /* 'p' passed or ungated, 'f' quality gate failed, 0 unknown */
	char **gate_failures; /* with 'f': the failed gates, one per line */
	char failure[1024]; /* first failure, one line ("" when none) */
};

/*
 * Build every step of b->plan and install its targets.  Returns 0, or
 * MCB_ESTEP when a step failed (b->failure says which and why), or another
 * negative mcb_err for errors of the scheduler itself (e set).
 */
int mcb_build_run(struct mcb_build *b, struct mcb_errctx *e);

/*
 * After a run of b that succeeded and ran and installed nothing: call add
 * with every file its conclusion rests on (the sources its keys digested,
 * the action entries and blobs its lookups found, the installed targets'
 * files, the scratch directory), repeats possible.  For the no-op stamp.
 */
void mcb_build_evidence(struct mcb_build *b, void (*add)(void *ctx, const char *path), void *ctx);

#endif
