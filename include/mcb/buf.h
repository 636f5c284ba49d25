/*
 * buf: a growable byte buffer, always NUL-terminated after len bytes.
 * Growth failure is fatal (bookkeeping data only).
 */
#ifndef MCB_BUF_H
#define MCB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct mcb_buf {
	char *data; /* NULL until first append; else NUL at data[len] */
	size_t len; /* bytes used, excluding the NUL */
	size_t cap; /* bytes allocated */
};

#define MCB_BUF_INIT {NULL, 0, 0}

void mcb_buf_release(struct mcb_buf *b);
/* Make room for n more bytes beyond len. */
void mcb_buf_grow(struct mcb_buf *b, size_t n);
void mcb_buf_add(struct mcb_buf *b, const void *p, size_t n);
void mcb_buf_adds(struct mcb_buf *b, const char *s);
void mcb_buf_addc(struct mcb_buf *b, char c);
void mcb_buf_printf(struct mcb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mcb_buf_vprintf(struct mcb_buf *b, const char *fmt, va_list ap);
/* Reset len to 0, keeping the allocation. */
void mcb_buf_reset(struct mcb_buf *b);
/* The contents as a C string ("" when empty; never NULL). */
const char *mcb_buf_str(const struct mcb_buf *b);
/* Hand the allocation to the caller (free() it); b becomes empty. */
char *mcb_buf_detach(struct mcb_buf *b, size_t *len);

/* Fields of the line-oriented state files (statcache, noop stamp). */
/* Strict decimal p[0..n): no leading zeros, no '+'; with sign, an optional
 * '-' (not "-0") and the value in *s (int64), else in *u (uint64).  0 or -1. */
int mcb_parse_dec(const char *p, size_t n, int sign, uint64_t *u, int64_t *s);
/* The next space-terminated field of the line [*p, end) in f[0..n), *p moved
 * past the space; -1 when no space is left. */
int mcb_next_field(const char **p, const char *end, const char **f, size_t *n);

/* Parse a size: digits with an optional fraction, then an optional unit
 * K, M, G, T (powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), each
 * optionally followed by B; "0" is allowed.  0, or -1 when malformed or
 * beyond 2^63. */
int mcb_parse_size(const char *s, uint64_t *out);

/* A byte count for people, into buf: "812 bytes", "1.5 GiB" (powers of
 * 1024, one decimal).  Returns buf. */
const char *mcb_human_bytes(uint64_t b, char *buf, size_t n);

#endif
