/* arena: chunked bump allocator. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/arena.h"
#include "mcb/err.h"

#define CHUNK_MIN (64 * 1024)

struct mcb_arena_chunk {
	struct mcb_arena_chunk *next; /* older chunk */
	size_t used;                  /* bytes used in data, multiple of 16 */
	size_t cap;                   /* bytes available in data */
	_Alignas(16) unsigned char data[];
};

void mcb_arena_init(struct mcb_arena *a)
{
	a->head = NULL;
	a->total = 0;
}

void mcb_arena_release(struct mcb_arena *a)
{
	struct mcb_arena_chunk *c = a->head, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
	a->total = 0;
}

void *mcb_arena_alloc(struct mcb_arena *a, size_t n)
{
	struct mcb_arena_chunk *c = a->head;
	size_t need, cap;
	void *p;

	if (n > SIZE_MAX / 2)
		mcb_die("arena allocation of %zu bytes is too large", n);
	need = (n + 15) & ~(size_t)15;
	if (!c || c->cap - c->used < need) {
		cap = need > CHUNK_MIN ? need : CHUNK_MIN;
		c = mcb_xmalloc(sizeof(*c) + cap);
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = c->data + c->used;
	c->used += need;
	a->total += need;
	memset(p, 0, n);
	return p;
}

void *mcb_arena_array(struct mcb_arena *a, size_t n, size_t size)
{
	size_t bytes;

	if (mcb_mul_ok(n, size, &bytes))
		mcb_die("arena array of %zu x %zu bytes overflows", n, size);
	return mcb_arena_alloc(a, bytes);
}

void *mcb_arena_grow(struct mcb_arena *a, void *v, size_t n, size_t *cap, size_t size)
{
	void *nv;
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : 8;
	nv = mcb_arena_array(a, ncap, size);
	if (n)
		memcpy(nv, v, n * size);
	*cap = ncap;
	return nv;
}

char *mcb_arena_strndup(struct mcb_arena *a, const char *s, size_t n)
{
	char *p = mcb_arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *mcb_arena_strdup(struct mcb_arena *a, const char *s)
{
	return mcb_arena_strndup(a, s, strlen(s));
}

char *mcb_arena_vprintf(struct mcb_arena *a, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;
	char *p;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		mcb_die("bad format string '%s'", fmt);
	p = mcb_arena_alloc(a, (size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *mcb_arena_printf(struct mcb_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = mcb_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}
