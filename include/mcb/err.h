/*
 * err: stable error codes and the error context every fallible function writes to.
 *
 * Functions return 0 on success or a negative enum mcb_err.  The human-readable
 * message goes into a struct mcb_errctx owned by the caller, so that the top
 * level (main) decides how to print it.  Codes are explicitly numbered and never
 * renumbered: they appear in tests and in the --json output.
 */
#ifndef MCB_ERR_H
#define MCB_ERR_H

#include <stddef.h>

enum mcb_err {
	MCB_OK = 0,
	MCB_ENOMEM = -1,    /* allocation failed */
	MCB_EIO = -2,       /* operating system call failed */
	MCB_ENOENT = -3,    /* file, key or cache entry does not exist */
	MCB_EFORMAT = -4,   /* malformed input file (model, recipe, dataset) */
	MCB_ERANGE = -5,    /* value or size outside the accepted range */
	MCB_EINVAL = -6,    /* invalid argument or usage */
	MCB_ECORRUPT = -7,  /* cache content does not match its name */
	MCB_ERECIPE = -8,   /* recipe has errors (diagnostics already printed) */
	MCB_ESTEP = -9,     /* a build step failed */
	MCB_EUNSUP = -10,   /* valid input that this version does not support */
	MCB_EGATE = -11,    /* a quality gate failed */
	MCB_EINTERNAL = -12 /* invariant violated: a bug in mcbuild */
};

#define MCB_ERRMSG_MAX 1024

/* The message that accompanies a negative return.  msg is always NUL-terminated. */
struct mcb_errctx {
	int code;                 /* last code set, 0 when none */
	char msg[MCB_ERRMSG_MAX]; /* lowercase message, no trailing newline */
};

/*
 * Store a printf-style message and return code.  A fmt ending in ':' appends
 * ": strerror(errno)" (errno is read before anything else runs).  e may be NULL.
 */
int mcb_errf(struct mcb_errctx *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Prefix the message already in e with "prefix: " (for adding context such as
 * the file name on the way up).  Returns e->code.
 */
int mcb_errprefix(struct mcb_errctx *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Reset e to "no error". */
void mcb_errclear(struct mcb_errctx *e);

/* A short static description of code ("out of memory", ...). */
const char *mcb_strerror(int code);

/* Print "mcbuild: fatal: ..." and exit(2).  Only for allocation failure of
 * small bookkeeping structures (the xmalloc convention of git). */
__attribute__((noreturn, format(printf, 1, 2))) void mcb_die(const char *fmt, ...);

void *mcb_xmalloc(size_t n);
void *mcb_xcalloc(size_t n, size_t size);
void *mcb_xrealloc(void *p, size_t n);
char *mcb_xstrdup(const char *s);

/* Overflow-checked size arithmetic: return 0 and store the result, or -1 on overflow. */
static inline int mcb_mul_ok(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int mcb_add_ok(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

#endif
