/*
 * gc: bounding the local cache's size (mcbuild gc).  Removes what nothing
 * will read (quarantined files, temporary files of killed processes), then,
 * while blobs and action entries take more than the limit, the oldest
 * objects the caller does not call live.  Safe while other mcbuild
 * processes use the cache: a removed entry reads as a miss, an entry whose
 * blob was removed reads as a miss, a step whose input blob vanished is
 * re-run (cache/store.c, compiler/build.c).
 */
#ifndef MCB_GC_H
#define MCB_GC_H

#include <stddef.h>
#include <stdint.h>

struct mcb_errctx;
struct mcb_store;

struct mcb_gc {
	/* in */
	uint64_t max_bytes; /* the limit for blobs and entries together (file sizes) */
	/* 1 when the object area/ab<62 hex> ("cas" or "ac"; hex is the 64-digit
	 * name) must stay whatever its age; NULL: nothing is live */
	int (*live)(void *ctx, const char *area, const char *hex);
	void *ctx;
	/* out */
	size_t objects, live_objects, removed;  /* blobs and entries found, live, removed */
	size_t recent_objects;                  /* not live, but made in the last hour: kept */
	uint64_t bytes, live_bytes, recent_bytes, removed_bytes;
	size_t tmp_removed, quarantine_removed; /* other files removed */
	uint64_t other_bytes;                   /* their bytes */
};

/* Collect s as g says; fills g's results.  MCB_EIO when a directory cannot
 * be read (files that vanish meanwhile are not errors). */
int mcb_store_gc(struct mcb_store *s, struct mcb_gc *g, struct mcb_errctx *e);

#endif
