/*
 * statcache: remembered digests of source files (include/mcb/statcache.h).
 *
 * File format version 1, text, at the path given to mcb_statcache_open
 * (e.g. <workspace>/.mcbuild/statcache), rewritten whole by
 * mcb_statcache_save with mcb_os_write_atomic, mode 0644:
 *
 *   mcbuild-statcache 1\n
 *   <size> <mtime_ns> <ino> <ctime_ns> <hashed_ns> <64 hex> <path>\n   one per file
 *   sha256 <64 hex>\n      SHA-256 of every byte before this line
 *
 * Fields are separated by one space.  size and ino: unsigned decimal (u64);
 * mtime_ns, ctime_ns: signed decimal nanoseconds since the epoch (i64), as
 * stat(2) gave them when the file was hashed; hashed_ns: the wall clock
 * (i64 ns) just before that stat and read; <64 hex>: lowercase SHA-256 of
 * the content; path: absolute, the rest of the line (spaces allowed, no
 * newline or NUL), unique in the file.  Numbers have no leading zeros and
 * no '+'.  The writer sorts lines by path (bytewise); readers do not rely on
 * it.  Nothing follows the sha256 line.  A file that is not exactly this is
 * ignored as a whole, with a warning.
 *
 * Trust rule: an entry answers for a file only when stat(2) now gives the
 * same size, mtime_ns, ino and ctime_ns, and hashed_ns >= mtime_ns + 1 s.
 * The second condition is git's "racy clean" rule: file timestamps come
 * from a coarse clock, so a rewrite in the same clock tick as the write we
 * hashed could leave all four fields equal; a file hashed at least 1 s after
 * its last modification cannot be rewritten within that tick any more.
 * Changing content while forcing mtime back (utimensat, touch -d) still
 * changes ctime; replacing the file by rename changes ino.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/statcache.h"

#define SC_VERSION 1
#define FILE_MAX ((size_t)1 << 30) /* refuse (warn, start empty) beyond this */
#define RACY_NS 1000000000LL
#define HASH_TRIES 3

struct entry {
	char *path;               /* absolute, malloc'ed, unique in the cache */
	uint64_t size, ino;       /* stat(2) when hashed */
	int64_t mtime_ns, ctime_ns;
	int64_t hashed_ns;        /* wall clock just before that stat and read */
	struct mcb_digest digest; /* SHA-256 of the content */
};

struct mcb_statcache {
	char *file;          /* where the cache is loaded from and saved to */
	struct entry *ent;   /* nent entries (cap allocated), paths unique */
	size_t nent, cap;
	size_t *slot;        /* open addressing over ent: index + 1, 0 = free */
	size_t nslot;        /* power of two > 2 * nent, or 0 */
	unsigned hashed;     /* files hashed since open */
	int dirty;           /* entries changed since load or save */
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The slot where path is, or where it would go. */
static size_t *find_slot(struct mcb_statcache *c, const char *path)
{
	size_t i = (size_t)fnv(path) & (c->nslot - 1);

	while (c->slot[i] && strcmp(c->ent[c->slot[i] - 1].path, path))
		i = (i + 1) & (c->nslot - 1);
	return &c->slot[i];
}

static struct entry *lookup(struct mcb_statcache *c, const char *path)
{
	size_t *sl;

	if (!c->nent)
		return NULL;
	sl = find_slot(c, path);
	return *sl ? &c->ent[*sl - 1] : NULL;
}

/* Add a new entry for path (which must not be present); returns it. */
static struct entry *add(struct mcb_statcache *c, const char *path)
{
	size_t i;

	if (2 * (c->nent + 1) >= c->nslot) {
		size_t n = c->nslot ? 2 * c->nslot : 64;

		free(c->slot);
		c->slot = mcb_xcalloc(n, sizeof(*c->slot));
		c->nslot = n;
		for (i = 0; i < c->nent; i++)
			*find_slot(c, c->ent[i].path) = i + 1;
	}
	if (c->nent == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->ent = mcb_xrealloc(c->ent, c->cap * sizeof(*c->ent));
	}
	memset(&c->ent[c->nent], 0, sizeof(c->ent[0]));
	c->ent[c->nent].path = mcb_xstrdup(path);
	*find_slot(c, path) = c->nent + 1;
	return &c->ent[c->nent++];
}

static void clear(struct mcb_statcache *c)
{
	size_t i;

	for (i = 0; i < c->nent; i++)
		free(c->ent[i].path);
	free(c->ent);
	free(c->slot);
	c->ent = NULL;
	c->slot = NULL;
	c->nent = c->cap = c->nslot = 0;
}

/* Parse the file text into c (empty on entry).  Returns 0 or -1 with why. */
static int parse(struct mcb_statcache *c, const char *p, size_t n, char *why, size_t nwhy)
{
	struct mcb_digest dg;
	const char *bad;
	long body;
	const char *end, *nl, *f, *q;
	size_t fn, lineno = 1;
	uint64_t size, ino;
	int64_t mt, ct, ht;
	struct entry *en;
	char *path;

	/* The checksum line ends the text and covers all before it. */
	body = mcb_sum_line_check(p, n, &bad);
	if (body < 0) {
		snprintf(why, nwhy, "%s", bad);
		return -1;
	}
	end = p + body;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl || nl - p != 19 || memcmp(p, "mcbuild-statcache 1", 19)) {
		snprintf(why, nwhy, "unknown header (format version 1 expected)");
		return -1;
	}
	for (p = nl + 1; p < end; p = nl + 1) {
		lineno++;
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end; /* cannot happen: end follows a '\n' */
		q = p;
		if (mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 0, &size, NULL) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 1, NULL, &mt) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 0, &ino, NULL) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 1, NULL, &ct) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 1, NULL, &ht) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_digest_parse(f, fn, &dg) < 0) {
			snprintf(why, nwhy, "bad fields in line %zu", lineno);
			return -1;
		}
		if (q >= nl || *q != '/' || memchr(q, '\0', (size_t)(nl - q))) {
			snprintf(why, nwhy, "bad path in line %zu", lineno);
			return -1;
		}
		path = mcb_xmalloc((size_t)(nl - q) + 1);
		memcpy(path, q, (size_t)(nl - q));
		path[nl - q] = '\0';
		if (lookup(c, path)) {
			free(path);
			snprintf(why, nwhy, "duplicate path in line %zu", lineno);
			return -1;
		}
		en = add(c, path);
		free(path);
		en->size = size;
		en->ino = ino;
		en->mtime_ns = mt;
		en->ctime_ns = ct;
		en->hashed_ns = ht;
		en->digest = dg;
	}
	return 0;
}

/*
 * Load the cache kept at path into *out (free it with mcb_statcache_close).
 * A missing file gives an empty cache.  An unreadable, oversized or
 * malformed file gives an empty cache too, with *warning = 1 and the reason
 * in e (its next save replaces the file).  Returns 0.
 */
int mcb_statcache_open(const char *path, struct mcb_statcache **out, int *warning,
		       struct mcb_errctx *e)
{
	struct mcb_statcache *c = mcb_xcalloc(1, sizeof(*c));
	struct mcb_buf b = MCB_BUF_INIT;
	char why[160];
	int rc;

	*warning = 0;
	c->file = mcb_xstrdup(path);
	*out = c;
	rc = mcb_os_read_file(path, FILE_MAX, &b, e);
	if (rc == MCB_ENOENT) {
		mcb_errclear(e);
	} else if (rc) {
		*warning = 1;
		mcb_errprefix(e, "ignoring the stat cache");
	} else if (parse(c, b.data, b.len, why, sizeof(why)) < 0) {
		clear(c);
		*warning = 1;
		mcb_errf(e, MCB_ECORRUPT, "stat cache '%s' is corrupt (%s); starting empty", path,
			 why);
	}
	mcb_buf_release(&b);
	return 0;
}

static int same_stat(const struct mcb_stat *a, const struct mcb_stat *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
	       a->ino == b->ino && a->dev == b->dev;
}

/*
 * Digest (and size, when size is not NULL) of the file at the absolute path
 * file.  Served from the cache when the trust rule (top of this file)
 * holds, else hashed and remembered.  MCB_EINVAL for a relative path;
 * MCB_ENOENT, MCB_EIO (also when the file keeps changing while it is read).
 */
int mcb_statcache_digest(struct mcb_statcache *c, const char *file, struct mcb_digest *out,
			 uint64_t *size, struct mcb_errctx *e)
{
	struct mcb_stat st, st2;
	struct entry *en;
	struct mcb_digest d;
	int64_t t0;
	uint64_t n;
	int rc, tries;

	if (file[0] != '/')
		return mcb_errf(e, MCB_EINVAL, "stat cache: '%s' is not an absolute path", file);
	for (tries = 0; tries < HASH_TRIES; tries++) {
		t0 = mcb_os_wall_ns();
		rc = mcb_os_stat(file, &st, e);
		if (rc)
			return rc;
		en = lookup(c, file);
		if (en && en->size == st.size && en->mtime_ns == st.mtime_ns && en->ino == st.ino &&
		    en->ctime_ns == st.ctime_ns && st.mtime_ns <= INT64_MAX - RACY_NS &&
		    en->hashed_ns >= st.mtime_ns + RACY_NS) {
			*out = en->digest;
			if (size)
				*size = st.size;
			return 0;
		}
		rc = mcb_sha256_file(file, &d, &n, e);
		c->hashed++;
		if (rc)
			return rc;
		rc = mcb_os_stat(file, &st2, e);
		if (rc)
			return rc;
		if (!same_stat(&st, &st2) || n != st.size)
			continue; /* changed while being read: hash it again */
		*out = d;
		if (size)
			*size = n;
		if (strchr(file, '\n'))
			return 0; /* cannot be written down: always hashed */
		if (!en)
			en = add(c, file);
		en->size = st.size;
		en->ino = st.ino;
		en->mtime_ns = st.mtime_ns;
		en->ctime_ns = st.ctime_ns;
		en->hashed_ns = t0;
		en->digest = d;
		c->dirty = 1;
		return 0;
	}
	return mcb_errf(e, MCB_EIO, "'%s' kept changing while it was being hashed", file);
}

/* Files hashed (not served from the cache) since open. */
unsigned mcb_statcache_hashed(const struct mcb_statcache *c)
{
	return c->hashed;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp((*(const struct entry *const *)a)->path, (*(const struct entry *const *)b)->path);
}

/*
 * Write the cache to its file atomically (creating the parent directory)
 * when anything changed since open or the last save; entries for files
 * that no longer exist are left out.  MCB_EIO.
 */
int mcb_statcache_save(struct mcb_statcache *c, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_arena a;
	struct mcb_stat st;
	struct entry **v;
	char hex[MCB_HEX_LEN + 1];
	size_t i, n = 0;
	int rc;

	if (!c->dirty)
		return 0;
	v = mcb_xcalloc(c->nent, sizeof(*v));
	for (i = 0; i < c->nent; i++)
		if (mcb_os_stat(c->ent[i].path, &st, NULL) != MCB_ENOENT)
			v[n++] = &c->ent[i];
	qsort(v, n, sizeof(*v), cmp_entry);
	mcb_buf_printf(&b, "mcbuild-statcache %d\n", SC_VERSION);
	for (i = 0; i < n; i++) {
		mcb_digest_hex(&v[i]->digest, hex);
		mcb_buf_printf(&b, "%llu %lld %llu %lld %lld %s %s\n",
			       (unsigned long long)v[i]->size, (long long)v[i]->mtime_ns,
			       (unsigned long long)v[i]->ino, (long long)v[i]->ctime_ns,
			       (long long)v[i]->hashed_ns, hex, v[i]->path);
	}
	free(v);
	mcb_sum_line_add(&b);
	mcb_arena_init(&a);
	rc = mcb_os_mkdirs(mcb_path_dir(&a, c->file), e);
	if (!rc)
		rc = mcb_os_write_atomic(c->file, b.data, b.len, 0644, e);
	if (!rc)
		c->dirty = 0;
	mcb_arena_release(&a);
	mcb_buf_release(&b);
	return rc;
}

/* Free c without saving (NULL is a no-op). */
void mcb_statcache_close(struct mcb_statcache *c)
{
	if (!c)
		return;
	clear(c);
	free(c->file);
	free(c);
}
