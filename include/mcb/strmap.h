/*
 * strmap: a string-keyed hash map (open addressing, linear probing).  Keys
 * are borrowed (the caller keeps them alive, e.g. in an arena); values are
 * opaque pointers.
 */
#ifndef MCB_STRMAP_H
#define MCB_STRMAP_H

#include <stddef.h>

struct mcb_strmap {
	const char **keys; /* cap slots, NULL when empty */
	void **vals;
	size_t n, cap; /* cap is 0 or a power of two; n < cap * 3/4 */
};

#define MCB_STRMAP_INIT          \
	{                        \
		NULL, NULL, 0, 0 \
	}

void mcb_strmap_release(struct mcb_strmap *m);
/* The value for key, or NULL. */
void *mcb_strmap_get(const struct mcb_strmap *m, const char *key);
/* Insert or replace. */
void mcb_strmap_put(struct mcb_strmap *m, const char *key, void *val);

#endif
