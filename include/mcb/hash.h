/*
 * hash: SHA-256 (OpenSSL EVP) digests, their hex form, and file hashing.
 * A digest names cache blobs, action keys and source files alike.
 */
#ifndef MCB_HASH_H
#define MCB_HASH_H

#include <stddef.h>
#include <stdint.h>

struct mcb_errctx;

#define MCB_DIGEST_LEN 32
#define MCB_HEX_LEN 64

struct mcb_digest {
	unsigned char b[MCB_DIGEST_LEN];
};

/* Incremental hashing.  init never fails (allocation failure is fatal). */
struct mcb_hasher {
	void *ctx; /* EVP_MD_CTX *, owned; NULL after final */
};

void mcb_hasher_init(struct mcb_hasher *h);
void mcb_hasher_update(struct mcb_hasher *h, const void *p, size_t n);
/* Write the digest and free the context; h may be init'ed again. */
void mcb_hasher_final(struct mcb_hasher *h, struct mcb_digest *out);

/* One-shot digest of n bytes. */
void mcb_sha256(const void *p, size_t n, struct mcb_digest *out);

/*
 * Digest of the file at path, reading it sequentially in large blocks.
 * Stores the byte count in *size when size is not NULL.  Returns 0, or
 * MCB_ENOENT/MCB_EIO with a message naming the file.
 */
int mcb_sha256_file(const char *path, struct mcb_digest *out, uint64_t *size,
		    struct mcb_errctx *e);

/* Lowercase hex, NUL-terminated: hex must hold MCB_HEX_LEN + 1 bytes. */
void mcb_digest_hex(const struct mcb_digest *d, char *hex);

/* Parse a field of exactly n == 64 lowercase hex digits.  Returns 0 or -1. */
int mcb_digest_parse(const char *hex, size_t n, struct mcb_digest *d);

int mcb_digest_eq(const struct mcb_digest *a, const struct mcb_digest *b);

/*
 * Self-checksummed text files (the action cache's entries, the stat cache):
 * the last line is "sha256 <64 hex>\n", the SHA-256 of every byte before it.
 */
#define MCB_SUM_LINE_LEN (7 + MCB_HEX_LEN + 1)

struct mcb_buf;

/* Append the checksum line over everything already in b. */
void mcb_sum_line_add(struct mcb_buf *b);

/* Check the checksum line that ends the n bytes at p.  Returns the length of
 * the text before it, or -1 with *why saying what is wrong. */
long mcb_sum_line_check(const char *p, size_t n, const char **why);

#endif
