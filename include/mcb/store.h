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
 *
 * One struct mcb_store may be used by several threads at once, except for
 * mcb_store_blob_path (a test hook with one result buffer).
 */
#ifndef MCB_STORE_H
#define MCB_STORE_H

#include <stddef.h>
#include <stdint.h>

struct mcb_buf;
struct mcb_digest;
struct mcb_errctx;
struct mcb_stat;
struct mcb_store;

/* Largest blob content accepted (1 TiB): puts refuse more, reads treat a
 * frame declaring more as corrupt, action entries may not record more. */
#define MCB_STORE_MAX_BLOB ((uint64_t)1 << 40)

/* Open (creating if needed) the cache rooted at dir.  MCB_EUNSUP for a cache
 * of a newer format version, MCB_EFORMAT for a bad VERSION file, MCB_EINVAL
 * for a non-empty directory that is not a cache, MCB_EIO otherwise. */
int mcb_store_open(const char *dir, struct mcb_store **out, struct mcb_errctx *e);
/* Free s (NULL is fine). */
void mcb_store_close(struct mcb_store *s);
/* The cache root as given to open (without trailing slashes). */
const char *mcb_store_dir(const struct mcb_store *s);

/* Store n bytes; *out receives their digest.  Storing an existing blob is a no-op. */
int mcb_store_put_mem(struct mcb_store *s, const void *p, size_t n, struct mcb_digest *out,
		      struct mcb_errctx *e);
/* Store the regular file at path (streamed: hashed and compressed in one
 * read); *out and *size (when not NULL) receive its digest and length.
 * MCB_EINVAL when path is not a regular file, MCB_EIO when it changed size
 * while being read. */
int mcb_store_put_file(struct mcb_store *s, const char *path, struct mcb_digest *out,
		       uint64_t *size, struct mcb_errctx *e);

/* 1 if a blob named d is present (not verified), else 0. */
int mcb_store_has(struct mcb_store *s, const struct mcb_digest *d);

/* Read and verify blob d into out (appended; out->len is restored on
 * failure).  MCB_ENOENT when absent; MCB_ECORRUPT when it failed
 * verification (it has been quarantined); MCB_ENOMEM, MCB_EIO. */
int mcb_store_get_mem(struct mcb_store *s, const struct mcb_digest *d, struct mcb_buf *out,
		      struct mcb_errctx *e);
/* Decompress and verify blob d into a new file at dst (temporary next to dst,
 * fsync, rename).  Errors as mcb_store_get_mem; dst is untouched on failure. */
int mcb_store_get_file(struct mcb_store *s, const struct mcb_digest *d, const char *dst,
		       struct mcb_errctx *e);

/* Test hook: path of blob d's file (for corruption tests).  The string is
 * owned by s and valid until the next call or mcb_store_close. */
const char *mcb_store_blob_path(struct mcb_store *s, const struct mcb_digest *d);

/*
 * Move the file of entry d in area ("cas" or "ac") into quarantine/ and
 * append to note what happened, for the caller's warning: "moved to
 * quarantine/..." or "could not be moved to quarantine: ...".  When seen is
 * not NULL the file is moved only if the path still names that file (same
 * dev and inode): a concurrent writer that already replaced it wins.
 */
void mcb_store_quarantine(struct mcb_store *s, const char *area, const struct mcb_digest *d,
			  const struct mcb_stat *seen, struct mcb_buf *note);

#endif
