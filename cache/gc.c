/*
 * gc: bounding the local cache's size (include/mcb/gc.h).  The layout it
 * walks is specified in cache/store.c.
 *
 * 1. quarantine/: every file is removed (moved there for inspection after a
 *    failed verification; never read again).
 * 2. Temporary files (cas/ab/<62 hex>.tmp.*, ac/ab/<62 hex>.tmp.*,
 *    cas/.put.tmp.*) last modified more than an hour ago are removed: a
 *    writer keeps writing to its file until it renames it, so an hour of
 *    silence means a killed process (a pid test would not do: several
 *    hosts may share the cache).
 * 3. Objects (cas/ab/<62 hex> blobs and ac/ab/<62 hex> entries) are counted
 *    by file size.  While the total exceeds max_bytes, the object with the
 *    oldest mtime (then the smallest path) that is not live is removed.
 *    Objects are never rewritten (store.c), so mtime is when the object was
 *    made.  Two kinds stay even when they alone exceed the limit: live
 *    objects (what the workspace's targets use now), and objects made in
 *    the last hour, which a build running beside gc may be about to read
 *    (removing them would be safe, a miss and a re-run, but a gc run in a
 *    loop could then starve that build).
 * Files with other names are left alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcb/arena.h"
#include "mcb/err.h"
#include "mcb/gc.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

#define HOUR_NS (3600LL * 1000000000LL)

struct obj {
	char *path;   /* absolute, in the arena */
	uint64_t size;
	int64_t mtime_ns;
};

struct walk {
	struct mcb_gc *g;
	struct mcb_arena *a;
	int64_t hour_ago; /* wall clock an hour before this gc began (ns) */
	struct obj *v; /* candidates for removal (not live) */
	size_t n, cap;
};

static int is_hex(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static int64_t mtime_of(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* Remove path (size bytes) when it is an hour old: a dead writer's file. */
static void old_tmp(struct walk *w, const char *path, const struct stat *st)
{
	if (mtime_of(st) < w->hour_ago && unlink(path) == 0) {
		w->g->tmp_removed++;
		w->g->other_bytes += (uint64_t)st->st_size;
	}
}

/*
 * opendir(dir) into *dp: 0, with *dp NULL when dir does not exist or is not
 * a directory of its own (a symbolic link is not followed: gc removes
 * files, and only inside the cache), or MCB_EIO.
 */
static int open_dir(const char *dir, DIR **dp, struct mcb_errctx *e)
{
	int fd;

	*dp = NULL;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
			return 0;
		return mcb_errf(e, MCB_EIO, "cannot read '%s':", dir);
	}
	*dp = fdopendir(fd);
	if (!*dp) {
		close(fd);
		return mcb_errf(e, MCB_EIO, "cannot read '%s':", dir);
	}
	return 0;
}

/* One fan-out directory area/ab (dir is its path). */
static int walk_fanout(struct walk *w, const char *area, const char *ab, const char *dir,
		       struct mcb_errctx *e)
{
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int rc = open_dir(dir, &dp, e);

	if (rc || !dp)
		return rc;
	while ((d = readdir(dp))) {
		size_t len = strlen(d->d_name);
		char *path, hex[MCB_HEX_LEN + 1];

		if (len < MCB_HEX_LEN - 2 || !is_hex(d->d_name, MCB_HEX_LEN - 2))
			continue;
		path = mcb_path_join(w->a, dir, d->d_name);
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (len > MCB_HEX_LEN - 2) {
			if (!strncmp(d->d_name + MCB_HEX_LEN - 2, ".tmp.", 5))
				old_tmp(w, path, &st);
			continue;
		}
		w->g->objects++;
		w->g->bytes += (uint64_t)st.st_size;
		memcpy(hex, ab, 2);
		memcpy(hex + 2, d->d_name, MCB_HEX_LEN - 2);
		hex[MCB_HEX_LEN] = '\0';
		if (w->g->live && w->g->live(w->g->ctx, area, hex)) {
			w->g->live_objects++;
			w->g->live_bytes += (uint64_t)st.st_size;
			continue;
		}
		if (mtime_of(&st) > w->hour_ago) {
			w->g->recent_objects++;
			w->g->recent_bytes += (uint64_t)st.st_size;
			continue;
		}
		if (w->n == w->cap) {
			w->cap = w->cap ? 2 * w->cap : 256;
			w->v = mcb_xrealloc(w->v, w->cap * sizeof(*w->v));
		}
		w->v[w->n++] = (struct obj){path, (uint64_t)st.st_size, mtime_of(&st)};
	}
	closedir(dp);
	return 0;
}

/* cas/ or ac/: its fan-out directories, and (cas/) put_file's temporaries. */
static int walk_area(struct walk *w, const char *root, const char *area, struct mcb_errctx *e)
{
	char *dir = mcb_path_join(w->a, root, area);
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int rc = open_dir(dir, &dp, e);

	if (rc || !dp)
		return rc;
	while (!rc && (d = readdir(dp))) {
		char *path = mcb_path_join(w->a, dir, d->d_name);

		if (strlen(d->d_name) == 2 && is_hex(d->d_name, 2))
			rc = walk_fanout(w, area, d->d_name, path, e);
		else if (!strncmp(d->d_name, ".put.tmp.", 9) && lstat(path, &st) == 0 &&
			 S_ISREG(st.st_mode))
			old_tmp(w, path, &st);
	}
	closedir(dp);
	return rc;
}

static int walk_quarantine(struct walk *w, const char *root, struct mcb_errctx *e)
{
	char *dir = mcb_path_join(w->a, root, "quarantine");
	struct dirent *d;
	struct stat st;
	DIR *dp;
	int rc = open_dir(dir, &dp, e);

	if (rc || !dp)
		return rc;
	while ((d = readdir(dp))) {
		char *path = mcb_path_join(w->a, dir, d->d_name);

		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0) {
			w->g->quarantine_removed++;
			w->g->other_bytes += (uint64_t)st.st_size;
		}
	}
	closedir(dp);
	return 0;
}

static int cmp_obj(const void *pa, const void *pb)
{
	const struct obj *a = pa, *b = pb;

	if (a->mtime_ns != b->mtime_ns)
		return a->mtime_ns < b->mtime_ns ? -1 : 1;
	return strcmp(a->path, b->path);
}

int mcb_store_gc(struct mcb_store *s, struct mcb_gc *g, struct mcb_errctx *e)
{
	struct mcb_arena a;
	struct walk w;
	uint64_t total;
	size_t i;
	int rc;

	g->objects = g->live_objects = g->recent_objects = g->removed = 0;
	g->bytes = g->live_bytes = g->recent_bytes = g->removed_bytes = 0;
	g->tmp_removed = g->quarantine_removed = 0;
	g->other_bytes = 0;
	mcb_arena_init(&a);
	memset(&w, 0, sizeof(w));
	w.g = g;
	w.a = &a;
	w.hour_ago = mcb_os_wall_ns() - HOUR_NS;
	rc = walk_quarantine(&w, mcb_store_dir(s), e);
	if (!rc)
		rc = walk_area(&w, mcb_store_dir(s), "ac", e);
	if (!rc)
		rc = walk_area(&w, mcb_store_dir(s), "cas", e);
	if (!rc) {
		if (w.n > 1)
			qsort(w.v, w.n, sizeof(*w.v), cmp_obj);
		total = g->bytes;
		for (i = 0; i < w.n && total > g->max_bytes; i++) {
			if (unlink(w.v[i].path) < 0 && errno != ENOENT) {
				rc = mcb_errf(e, MCB_EIO, "cannot remove '%s':", w.v[i].path);
				break;
			}
			total -= w.v[i].size;
			g->removed++;
			g->removed_bytes += w.v[i].size;
		}
	}
	free(w.v);
	mcb_arena_release(&a);
	return rc;
}
