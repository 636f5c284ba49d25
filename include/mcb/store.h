/*
 * store: the content-addressed blob store of the local cache.
 *
 * A blob is named by the SHA-256 of its uncompressed content and kept
 * zstd-compressed with the frame checksum on.  Writes go to a temporary file
 * in the destination directory, are fsync'ed and renamed into place, so
 * concurrent mcbuild processes sharing one cache never see partial blobs.
 * Every read re-verifies the content against its name; a blob that fails is
 * moved to quarantine/ and reported as MCB_ECORRUPT (a warning and a miss
 * for the caller, never a wrong result).  Layout: see cache/store.c.
 */
#ifndef MCB_STORE_H
#define MCB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct mcb_buf;
struct mcb_digest;
struct mcb_errctx;
struct mcb_store;

/* Open (creating if needed) the cache rooted at dir. */
int mcb_store_open(const char *dir, struct mcb_store **out, struct mcb_errctx *e);
void mcb_store_close(struct mcb_store *s);
const char *mcb_store_dir(const struct mcb_store *s);

/* Store n bytes; *out receives their digest.  Storing an existing blob is a no-op. */
int mcb_store_put_mem(struct mcb_store *s, const void *p, size_t n, struct mcb_digest *out,
		      struct mcb_errctx *e);
/* Store the file at path (streamed: hashed and compressed in one read). */
int mcb_store_put_file(struct mcb_store *s, const char *path, struct mcb_digest *out,
		       uint64_t *size, struct mcb_errctx *e);

/* 1 if a blob named d is present (not verified), else 0. */
int mcb_store_has(struct mcb_store *s, const struct mcb_digest *d);

/* Read and verify blob d into out (appended).  MCB_ENOENT when absent;
 * MCB_ECORRUPT when it failed verification (it has been quarantined). */
int mcb_store_get_mem(struct mcb_store *s, const struct mcb_digest *d, struct mcb_buf *out,
		      struct mcb_errctx *e);
/* Decompress and verify blob d into a new file at dst (temporary next to dst,
 * fsync, rename).  Errors as mcb_store_get_mem; dst is untouched on failure. */
int mcb_store_get_file(struct mcb_store *s, const struct mcb_digest *d, const char *dst,
		       struct mcb_errctx *e);

/* Test hook: path of blob d's file (for corruption tests).  Static buffer. */
const char *mcb_store_blob_path(struct mcb_store *s, const struct mcb_digest *d);

#endif
