/* err: error context, strerror table and the checked allocators used for bookkeeping. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/err.h"

int mcb_errf(struct mcb_errctx *e, int code, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	size_t n;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	if (n > 0 && e->msg[n - 1] == ':')
		snprintf(e->msg + n, sizeof(e->msg) - n, " %s", strerror(saved));
	return code;
}

int mcb_errprefix(struct mcb_errctx *e, const char *fmt, ...)
{
	char joined[2 * MCB_ERRMSG_MAX + 2];
	va_list ap;
	int n;

	if (!e)
		return MCB_EINTERNAL;
	va_start(ap, fmt);
	n = vsnprintf(joined, MCB_ERRMSG_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= MCB_ERRMSG_MAX)
		n = MCB_ERRMSG_MAX - 1;
	memcpy(joined + n, ": ", 2);
	memcpy(joined + n + 2, e->msg, MCB_ERRMSG_MAX);
	joined[sizeof(joined) - 1] = '\0';
	memcpy(e->msg, joined, MCB_ERRMSG_MAX - 1);
	e->msg[MCB_ERRMSG_MAX - 1] = '\0';
	return e->code;
}

void mcb_errclear(struct mcb_errctx *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

const char *mcb_strerror(int code)
{
	switch (code) {
	case MCB_OK: return "success";
	case MCB_ENOMEM: return "out of memory";
	case MCB_EIO: return "input/output error";
	case MCB_ENOENT: return "not found";
	case MCB_EFORMAT: return "malformed input";
	case MCB_ERANGE: return "value out of range";
	case MCB_EINVAL: return "invalid argument";
	case MCB_ECORRUPT: return "corrupt cache entry";
	case MCB_ERECIPE: return "recipe error";
	case MCB_ESTEP: return "build step failed";
	case MCB_EUNSUP: return "not supported";
	case MCB_EGATE: return "quality gate failed";
	case MCB_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

void mcb_die(const char *fmt, ...)
{
	va_list ap;

	fputs("mcbuild: fatal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void *mcb_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		mcb_die("out of memory allocating %zu bytes", n);
	return p;
}

void *mcb_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		mcb_die("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *mcb_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		mcb_die("out of memory allocating %zu bytes", n);
	return q;
}

char *mcb_xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;

	return memcpy(mcb_xmalloc(n), s, n);
}
