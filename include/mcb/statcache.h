/*
 * statcache: source-file digests remembered by (path, size, mtime_ns, inode,
 * ctime_ns), so unchanged multi-GB inputs are not re-hashed.  An entry is
 * trusted only if the file was hashed at least one second after its mtime
 * (otherwise a same-timestamp rewrite could go unseen: git's "racy clean").
 * Format: see cache/statcache.c.  A struct mcb_statcache is for one thread.
 */
#ifndef MCB_STATCACHE_H
#define MCB_STATCACHE_H

#include <stdint.h>

struct mcb_digest;
struct mcb_errctx;
struct mcb_statcache;

/* Load path (missing: empty cache; unreadable or corrupt: empty cache and
 * *warning set to 1 with a message in e). */
int mcb_statcache_open(const char *path, struct mcb_statcache **out, int *warning,
		       struct mcb_errctx *e);
/* Digest of file (an absolute path), re-hashing only when needed. */
int mcb_statcache_digest(struct mcb_statcache *c, const char *file, struct mcb_digest *out,
			 uint64_t *size, struct mcb_errctx *e);
/* Number of files hashed (not served from the cache) since open. */
unsigned mcb_statcache_hashed(const struct mcb_statcache *c);
/* Write back atomically if anything changed. */
int mcb_statcache_save(struct mcb_statcache *c, struct mcb_errctx *e);
void mcb_statcache_close(struct mcb_statcache *c);

#endif
