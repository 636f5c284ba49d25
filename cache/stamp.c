/*
 * stamp: the no-op stamp (include/mcb/stamp.h).
 *
 * A full no-op check loads the recipes, plans every step, digests the
 * sources (through the stat cache), looks every action key up and compares
 * every installed file with the cache's answer.  When it finds nothing to
 * do, everything it concluded follows from the files it looked at and from
 * the command line, the binary and the host.  The stamp writes those files'
 * stat identities down; the next run with the same key stats them, and if
 * every one is unchanged the full check would read the same bytes and reach
 * the same conclusion, so the run says "no work to do" without planning.
 * This is make's rule (an unchanged stat means unchanged content), applied
 * to the files behind the whole check rather than to each target.
 *
 * File format version 1, text, at the path given to mcb_stamp_save (e.g.
 * <workspace>/.mcbuild/noop), rewritten whole with mcb_os_write_atomic,
 * mode 0644:
 *
 *   mcbuild-noop 1\n
 *   key <64 hex>\n
 *   <mode> <size> <mtime_ns> <ino> <ctime_ns> <dev> <path>\n   one per file
 *   sha256 <64 hex>\n      SHA-256 of every byte before this line
 *
 * Fields are separated by one space.  mode (st_mode), size, ino, dev:
 * unsigned decimal; mtime_ns, ctime_ns: signed decimal nanoseconds since
 * the epoch, as stat(2) (following links) gave them; path: the rest of the
 * line (spaces allowed, no newline or NUL), absolute or relative to the
 * directory mcbuild ran in (which the key includes), unique in the file.
 * Numbers have no leading zeros and no '+'.  The writer sorts lines by
 * path (bytewise); readers do not rely on it.  Paths under the directory
 * mcbuild ran in are written relative to it (a shorter path walk for each
 * stat when the stamp is checked).  A file that is not exactly this, or larger than
 * FILE_MAX, is not used (the full check runs and rewrites it).
 *
 * The key is SHA-256 over "mcbuild-noop-key 1" and then, each as its
 * decimal length, ':' and its bytes: mcbuild's version; the running
 * binary's identity (dev, ino, size, mtime_ns, ctime_ns of /proc/self/exe);
 * the host's CPU model, operating system, machine type and number of CPUs
 * (keys and measurements depend on them); then the caller's words.
 *
 * Trust rule: a stamp is written only when every recorded file, and the
 * binary, was last modified (mtime and ctime) at least 1 s before the run
 * began: the stat cache's racy-clean rule (cache/statcache.c), which also
 * covers a file changed while the run was reading it.  A file that is
 * missing when the stamp is written means the conclusion cannot be trusted
 * either.  In both cases any old stamp is removed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/stamp.h"
#include "mcb/strmap.h"

#define STAMP_VERSION 1
#define FILE_MAX ((size_t)256 << 20)
#define RACY_NS 1000000000LL

struct rec {
	const char *path; /* in the arena */
	struct mcb_stat st;
};

struct mcb_stamp {
	struct mcb_arena a;
	struct mcb_digest key;
	struct mcb_stat exe;  /* the running binary, when the stamp began */
	int64_t t0;           /* wall clock when the stamp began */
	char *cwd;            /* the current directory, with a trailing '/' (or NULL) */
	struct mcb_strmap seen; /* path -> rec */
	struct rec **rec;
	size_t nrec, cap;
	const char *bad;      /* first recorded file that spoils the stamp, or NULL */
	const char *badwhy;   /* "is missing", "was modified less than 1 s ago" */
};

static void add_word(struct mcb_buf *b, const char *w)
{
	mcb_buf_printf(b, "%zu:", strlen(w));
	mcb_buf_adds(b, w);
}

struct mcb_stamp *mcb_stamp_begin(const char *const *words, size_t n)
{
	struct mcb_stamp *s = mcb_xcalloc(1, sizeof(*s));
	struct mcb_buf b = MCB_BUF_INIT;
	struct utsname u;
	size_t i;

	s->t0 = mcb_os_wall_ns();
	if (mcb_os_stat("/proc/self/exe", &s->exe, NULL) || uname(&u) < 0) {
		free(s);
		return NULL;
	}
	mcb_arena_init(&s->a);
	{
		char *cwd = getcwd(NULL, 0);

		if (cwd)
			s->cwd = mcb_arena_printf(&s->a, "%s/", strcmp(cwd, "/") ? cwd : "");
		free(cwd);
	}
	mcb_buf_adds(&b, "mcbuild-noop-key 1");
	add_word(&b, MCB_VERSION);
	add_word(&b, mcb_arena_printf(&s->a, "%llu %llu %llu %lld %lld",
				      (unsigned long long)s->exe.dev,
				      (unsigned long long)s->exe.ino,
				      (unsigned long long)s->exe.size, (long long)s->exe.mtime_ns,
				      (long long)s->exe.ctime_ns));
	add_word(&b, mcb_os_cpu_model(&s->a));
	add_word(&b, u.sysname);
	add_word(&b, u.machine);
	add_word(&b, mcb_arena_printf(&s->a, "%d", mcb_os_ncpu()));
	for (i = 0; i < n; i++)
		add_word(&b, words[i]);
	mcb_sha256(b.data, b.len, &s->key);
	mcb_buf_release(&b);
	return s;
}

void mcb_stamp_free(struct mcb_stamp *s)
{
	if (!s)
		return;
	mcb_strmap_release(&s->seen);
	free(s->rec);
	mcb_arena_release(&s->a);
	free(s);
}

void mcb_stamp_set_start(struct mcb_stamp *s, int64_t wall_ns)
{
	s->t0 = wall_ns;
}

static int same(const struct mcb_stat *a, const struct mcb_stat *b)
{
	return a->mode == b->mode && a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ino == b->ino && a->ctime_ns == b->ctime_ns && a->dev == b->dev;
}

/* Parse the stamp text and stat every file it names.  1 when all match. */
static int check_text(struct mcb_stamp *s, const char *p, size_t n, size_t *nfiles, char *why,
		      size_t nwhy)
{
	char hex[MCB_HEX_LEN + 1], path[4096];
	const char *bad, *end, *nl, *f, *q;
	struct mcb_stat want, now;
	size_t fn, count = 0;
	uint64_t mode;
	long body;

	body = mcb_sum_line_check(p, n, &bad);
	if (body < 0) {
		snprintf(why, nwhy, "the stamp is unreadable (%s)", bad);
		return 0;
	}
	end = p + body;
	mcb_digest_hex(&s->key, hex);
	if ((size_t)body < 20 + MCB_HEX_LEN || memcmp(p, "mcbuild-noop 1\nkey ", 19) ||
	    memcmp(p + 19, hex, MCB_HEX_LEN) || p[19 + MCB_HEX_LEN] != '\n') {
		snprintf(why, nwhy, "it was written for another command line, binary or host");
		return 0;
	}
	for (p += 20 + MCB_HEX_LEN; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end; /* cannot happen: end follows a '\n' */
		q = p;
		if (mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 0, &mode, NULL) < 0 ||
		    mode > 0xffffffffu ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 ||
		    mcb_parse_dec(f, fn, 0, &want.size, NULL) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 ||
		    mcb_parse_dec(f, fn, 1, NULL, &want.mtime_ns) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 0, &want.ino, NULL) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 ||
		    mcb_parse_dec(f, fn, 1, NULL, &want.ctime_ns) < 0 ||
		    mcb_next_field(&q, nl, &f, &fn) < 0 || mcb_parse_dec(f, fn, 0, &want.dev, NULL) < 0 ||
		    q >= nl || (size_t)(nl - q) >= sizeof(path) || memchr(q, '\0', (size_t)(nl - q))) {
			snprintf(why, nwhy, "the stamp is malformed");
			return 0;
		}
		want.mode = (unsigned)mode;
		memcpy(path, q, (size_t)(nl - q));
		path[nl - q] = '\0';
		if (mcb_os_stat(path, &now, NULL)) {
			snprintf(why, nwhy, "%s is missing", path);
			return 0;
		}
		if (!same(&now, &want)) {
			snprintf(why, nwhy, "%s changed", path);
			return 0;
		}
		count++;
	}
	*nfiles = count;
	return 1;
}

int mcb_stamp_check(struct mcb_stamp *s, const char *path, size_t *nfiles, char *why,
		    size_t nwhy)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	int ok = 0, rc;

	*nfiles = 0;
	rc = mcb_os_read_file(path, FILE_MAX, &b, &e);
	if (rc == MCB_ENOENT)
		snprintf(why, nwhy, "there is none");
	else if (rc)
		snprintf(why, nwhy, "it cannot be read: %s", e.msg);
	else
		ok = check_text(s, b.data, b.len, nfiles, why, nwhy);
	mcb_buf_release(&b);
	return ok;
}

static void spoil(struct mcb_stamp *s, const char *path, const char *why)
{
	if (!s->bad) {
		s->bad = mcb_arena_strdup(&s->a, path);
		s->badwhy = why;
	}
}

static int too_new(const struct mcb_stamp *s, const struct mcb_stat *st)
{
	return st->mtime_ns > s->t0 - RACY_NS || st->ctime_ns > s->t0 - RACY_NS;
}

void mcb_stamp_add(struct mcb_stamp *s, const char *path)
{
	struct rec *r;

	/* under the current directory (part of every key): relative, which
	 * shortens the kernel's path walk when the stamp is checked */
	if (s->cwd && !strncmp(path, s->cwd, strlen(s->cwd)) && path[strlen(s->cwd)])
		path += strlen(s->cwd);
	if (mcb_strmap_get(&s->seen, path))
		return;
	r = mcb_arena_alloc(&s->a, sizeof(*r));
	r->path = mcb_arena_strdup(&s->a, path);
	mcb_strmap_put(&s->seen, r->path, r);
	if (strchr(path, '\n') || strlen(path) >= 4096) {
		spoil(s, path, "cannot be written down");
		return;
	}
	if (mcb_os_stat(path, &r->st, NULL)) {
		spoil(s, path, "is missing");
		return;
	}
	if (too_new(s, &r->st))
		spoil(s, path, "was modified less than 1 s before the build began");
	if (s->nrec == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->rec = mcb_xrealloc(s->rec, s->cap * sizeof(*s->rec));
	}
	s->rec[s->nrec++] = r;
}

size_t mcb_stamp_count(const struct mcb_stamp *s)
{
	return s->seen.n;
}

static int cmp_rec(const void *a, const void *b)
{
	return strcmp((*(struct rec *const *)a)->path, (*(struct rec *const *)b)->path);
}

int mcb_stamp_save(struct mcb_stamp *s, const char *path, int *written, char *why, size_t nwhy,
		   struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	char hex[MCB_HEX_LEN + 1];
	size_t i;
	int rc;

	*written = 0;
	if (too_new(s, &s->exe))
		spoil(s, "the mcbuild binary", "was modified less than 1 s before the build began");
	if (s->bad) {
		snprintf(why, nwhy, "%s %s", s->bad, s->badwhy);
		if (unlink(path) < 0 && errno != ENOENT)
			return mcb_errf(e, MCB_EIO, "cannot remove the stale no-op stamp '%s':", path);
		return 0;
	}
	if (s->nrec > 1)
		qsort(s->rec, s->nrec, sizeof(*s->rec), cmp_rec);
	mcb_digest_hex(&s->key, hex);
	mcb_buf_printf(&b, "mcbuild-noop %d\nkey %s\n", STAMP_VERSION, hex);
	for (i = 0; i < s->nrec; i++) {
		const struct mcb_stat *st = &s->rec[i]->st;

		mcb_buf_printf(&b, "%u %llu %lld %llu %lld %llu %s\n", st->mode,
			       (unsigned long long)st->size, (long long)st->mtime_ns,
			       (unsigned long long)st->ino, (long long)st->ctime_ns,
			       (unsigned long long)st->dev, s->rec[i]->path);
	}
	mcb_sum_line_add(&b);
	rc = mcb_os_write_atomic(path, b.data, b.len, 0644, e);
	mcb_buf_release(&b);
	if (!rc)
		*written = 1;
	return rc;
}
