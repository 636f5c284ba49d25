/* strmap: open-addressing string hash map (FNV-1a). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/err.h"
#include "mcb/strmap.h"

static size_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

void mcb_strmap_release(struct mcb_strmap *m)
{
	free(m->keys);
	free(m->vals);
	m->keys = NULL;
	m->vals = NULL;
	m->n = m->cap = 0;
}

void *mcb_strmap_get(const struct mcb_strmap *m, const char *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = hash(key) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (!strcmp(m->keys[i], key))
			return m->vals[i];
	return NULL;
}

static void grow(struct mcb_strmap *m)
{
	struct mcb_strmap g;
	size_t i;

	g.cap = m->cap ? m->cap * 2 : 16;
	g.n = 0;
	g.keys = mcb_xcalloc(g.cap, sizeof(*g.keys));
	g.vals = mcb_xcalloc(g.cap, sizeof(*g.vals));
	for (i = 0; i < m->cap; i++)
		if (m->keys[i])
			mcb_strmap_put(&g, m->keys[i], m->vals[i]);
	mcb_strmap_release(m);
	*m = g;
}

void mcb_strmap_put(struct mcb_strmap *m, const char *key, void *val)
{
	size_t i;

	if ((m->n + 1) * 4 > m->cap * 3)
		grow(m);
	for (i = hash(key) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (!strcmp(m->keys[i], key)) {
			m->vals[i] = val;
			return;
		}
	}
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
}
