/*
 * arena: bump allocator for data that lives as long as one phase (the recipe
 * AST and DAG for a build, one step's scratch).  Nothing is freed individually;
 * mcb_arena_release frees every chunk at once.  Allocation failure is fatal
 * (bookkeeping only: tensor buffers use checked allocation instead).
 */
#ifndef MCB_ARENA_H
#define MCB_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct mcb_arena_chunk;

struct mcb_arena {
	struct mcb_arena_chunk *head; /* newest chunk first; NULL when empty */
	size_t total;                 /* bytes handed out, for statistics */
};

/* Initialise an empty arena (no allocation happens until first use). */
void mcb_arena_init(struct mcb_arena *a);

/* Free every chunk; a is empty and reusable afterwards. */
void mcb_arena_release(struct mcb_arena *a);

/* n bytes aligned to 16, zero-filled.  Never returns NULL. */
void *mcb_arena_alloc(struct mcb_arena *a, size_t n);

/* n elements of size bytes, overflow-checked, zero-filled. */
void *mcb_arena_array(struct mcb_arena *a, size_t n, size_t size);

/*
 * Growable arrays in an arena: return v, or a copy of its n elements in a
 * larger block, so that it holds at least n + 1 elements of size bytes
 * (*cap counts them; the old block is left to the arena).
 */
void *mcb_arena_grow(struct mcb_arena *a, void *v, size_t n, size_t *cap, size_t size);

char *mcb_arena_strdup(struct mcb_arena *a, const char *s);
char *mcb_arena_strndup(struct mcb_arena *a, const char *s, size_t n);
char *mcb_arena_printf(struct mcb_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *mcb_arena_vprintf(struct mcb_arena *a, const char *fmt, va_list ap);

#endif
