/*
 * action: the action cache.  An entry maps a step's action key to the digests
 * and sizes of its outputs (blobs in the store) plus the step's log.  Entries
 * are written only after the step succeeded and every output blob is stored.
 * A corrupt entry, or one whose output blobs are missing, reads as a miss
 * (MCB_ECORRUPT with a message for a warning, MCB_ENOENT for absent).
 * Format: see cache/action.c.
 */
#ifndef MCB_ACTION_H
#define MCB_ACTION_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/hash.h"

struct mcb_arena;
struct mcb_errctx;
struct mcb_store;

#define MCB_ACTION_MAX_OUTPUTS 4096

struct mcb_action_output {
	const char *name;          /* file name inside the step's output set: [A-Za-z0-9._-]+ */
	struct mcb_digest digest;  /* blob digest (SHA-256 of the content) */
	uint64_t size;             /* uncompressed bytes */
};

struct mcb_action {
	struct mcb_action_output *out; /* nout entries, names unique */
	size_t nout;
	const char *log;               /* step output text ("" when none) */
};

/* The file of the entry for key (ac/ab/<62 hex> in the store), in a. */
char *mcb_ac_path(struct mcb_store *s, const struct mcb_digest *key, struct mcb_arena *a);

int mcb_ac_get(struct mcb_store *s, const struct mcb_digest *key, struct mcb_arena *a,
	       struct mcb_action *out, struct mcb_errctx *e);
int mcb_ac_put(struct mcb_store *s, const struct mcb_digest *key, const struct mcb_action *act,
	       struct mcb_errctx *e);

#endif
