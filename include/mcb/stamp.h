/*
 * stamp: the no-op stamp.  A build that ran and installed nothing proved,
 * for its command line, that the workspace is up to date; its proof rests
 * on files (recipes, sources, action entries, blobs, installed targets).
 * The stamp records their stat identities under a key naming the command
 * line, the binary and the host, so that the next identical command can
 * re-check the files instead of re-planning.  Format and trust rule: see
 * cache/stamp.c.  A struct mcb_stamp is for one thread.
 */
#ifndef MCB_STAMP_H
#define MCB_STAMP_H

#include <stddef.h>
#include <stdint.h>

struct mcb_errctx;
struct mcb_stamp;

/* This run's stamp key from words (the command line as the caller
 * canonicalizes it), the running binary's identity and the host.  NULL when
 * the binary cannot be identified (then no stamp is used or written). */
struct mcb_stamp *mcb_stamp_begin(const char *const *words, size_t n);
void mcb_stamp_free(struct mcb_stamp *s);

/* Set when the run began (wall clock ns; default: when mcb_stamp_begin
 * ran): the trust rule compares recorded files' times with it. */
void mcb_stamp_set_start(struct mcb_stamp *s, int64_t wall_ns);

/* 1 when the stamp file at path has this run's key and every file it
 * records is as recorded (*nfiles: how many); else 0, with why[] saying
 * what differs (a path as recorded, or what else). */
int mcb_stamp_check(struct mcb_stamp *s, const char *path, size_t *nfiles, char *why,
		    size_t nwhy);

/* Record the file at path (repeats are ignored): the no-op's conclusion
 * rests on it being as it is now. */
void mcb_stamp_add(struct mcb_stamp *s, const char *path);

/* Number of distinct files recorded so far. */
size_t mcb_stamp_count(const struct mcb_stamp *s);

/* Write the stamp to path atomically (*written = 1), or, when a recorded
 * file is missing or too new to be trusted, remove any stamp at path
 * (*written = 0, why[] says which file).  MCB_EIO. */
int mcb_stamp_save(struct mcb_stamp *s, const char *path, int *written, char *why, size_t nwhy,
		   struct mcb_errctx *e);

#endif
