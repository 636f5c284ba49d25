/*
 * store: the content-addressed blob store (include/mcb/store.h).
 *
 * Cache directory layout, format version 1 (hex is lowercase; "ab" stands
 * for the first two hex digits of a digest and "<62 hex>" for the rest):
 *
 *   VERSION               "mcbuild-cache 1\n".  The first open of an empty
 *                         (or new) directory writes it atomically.  Open
 *                         refuses "mcbuild-cache N" with N > 1 (MCB_EUNSUP:
 *                         a newer mcbuild's cache), any other content
 *                         (MCB_EFORMAT), and a non-empty directory without
 *                         VERSION (MCB_EINVAL: MCBUILD_CACHE=$HOME must not
 *                         litter $HOME).
 *   cas/ab/<62 hex>       a blob whose uncompressed content has SHA-256
 *                         ab<62 hex>.  Mode 0444; never modified in place.
 *   ac/ab/<62 hex>        an action entry named by its action key; format in
 *                         cache/action.c.
 *   quarantine/<area>-ab-<62 hex>.<unix ns>.<pid>.<n>
 *                         a blob (area "cas") or action entry (area "ac")
 *                         that failed verification, moved aside for
 *                         inspection; never read again.
 *   cas/ab/<62 hex>.tmp.<pid>.<nonce>, ac/ab/<62 hex>.tmp.<pid>.<nonce>
 *                         temporary files of mcb_store_put_mem and
 *                         mcb_ac_put, in the destination directory.
 *   cas/.put.tmp.<pid>.<nonce>
 *                         temporary file of mcb_store_put_file, which learns
 *                         the blob's name only after reading all its input:
 *                         one level up, on the same file system.
 *   The fan-out directories cas/ab/ and ac/ab/ are created on demand.  A
 *   *.tmp.* file left behind was written by a killed process; nothing
 *   reads it (mcbuild gc deletes those untouched for an hour: cache/gc.c).
 *
 * Blob file: exactly one zstd frame (RFC 8878) and nothing after it; the
 * frame header records the content size (at most MCB_STORE_MAX_BLOB) and has
 * the content checksum flag set; no dictionary; window at most 2^27 bytes
 * (written at compression level 3, whose window is at most 2^21).  A reader
 * accepts nothing else, and accepts a frame only if the SHA-256 of its
 * content equals the file's name; any failure moves the file to quarantine/
 * and reads as MCB_ECORRUPT.
 *
 * Writing: a temporary file (above), fsync, chmod 0444, rename over the
 * final name, fsync of the destination directory.  Concurrent writers of one
 * blob each rename a complete file with identical content (last rename
 * wins); readers see no file or a complete one.  A blob already present is
 * not rewritten.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

#define CACHE_VERSION 1
#define BLOCK (1u << 20)           /* read and write unit */
#define LEVEL 3                    /* zstd compression level */
#define WINDOW_LOG_MAX 27          /* largest window a reader accepts */
#define RESERVE_MAX (64u << 20)    /* get_mem trusts a declared size this far */
#define ZSTD_MAGIC 0xFD2FB528u

/*
 * Compression workers.  With nbWorkers >= 1 zstd compresses in its own
 * thread while the caller reads and hashes the next block (output bytes are
 * the same for any nbWorkers >= 1; blob names do not depend on them anyway).
 * Measured on the 2-core development machine, put_file of 512 MiB of fp32
 * weight-like data: 515 MB/s with 0 workers, 838 with 1, 833 with 2; of
 * 1 GiB of random bytes: 942, 1075, 1064.  One worker it is.
 */
#define NB_WORKERS 1

struct mcb_store {
	char *dir;            /* cache root, malloc'ed, no trailing slash (unless "/") */
	char *blobpath;       /* mcb_store_blob_path's last result, malloc'ed or NULL */
	int dfd;              /* the cache root, O_PATH (-1 if it could not be opened) */
	pthread_mutex_t lock; /* guards spare_c and spare_d */
	ZSTD_CCtx *spare_c;   /* an idle compression context, or NULL */
	ZSTD_DCtx *spare_d;   /* an idle decompression context, or NULL */
};

/* Where decompressed content goes: a memory buffer, or a file descriptor. */
struct sink {
	struct mcb_buf *buf; /* append here when not NULL */
	int fd;              /* else write here */
	const char *name;    /* fd's file name, for messages */
};

static char *obj_path(struct mcb_arena *a, const char *dir, const char *area,
		      const struct mcb_digest *d)
{
	char hex[MCB_HEX_LEN + 1];

	mcb_digest_hex(d, hex);
	return mcb_arena_printf(a, "%s/%s/%.2s/%s", dir, area, hex, hex + 2);
}

/* Create the fan-out directory holding path (its parent). */
static int mkparent(char *path, struct mcb_errctx *e)
{
	char *slash = strrchr(path, '/');
	int rc = 0;

	if (!slash)
		return 0;
	*slash = '\0';
	if (mkdir(path, 0777) < 0 && errno != EEXIST) {
		if (errno == ENOENT)
			rc = mcb_os_mkdirs(path, e);
		else
			rc = mcb_errf(e, MCB_EIO, "cannot create directory '%s':", path);
	}
	*slash = '/';
	return rc;
}

/* fsync and close fd, rename tmp to path, fsync path's directory.  Closes fd
 * in every case and removes tmp on failure. */
static int commit(int fd, const char *tmp, char *path, unsigned mode, struct mcb_errctx *e)
{
	char *slash;
	int rc = 0;

	if (fchmod(fd, mode) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot chmod '%s':", tmp);
	else if (fsync(fd) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot fsync '%s':", tmp);
	if (close(fd) < 0 && !rc)
		rc = mcb_errf(e, MCB_EIO, "cannot close '%s':", tmp);
	if (!rc && rename(tmp, path) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot rename '%s' to '%s':", tmp, path);
	if (rc) {
		unlink(tmp);
		return rc;
	}
	slash = strrchr(path, '/');
	if (!slash)
		return mcb_os_fsync_dir(".", e);
	if (slash == path)
		return mcb_os_fsync_dir("/", e);
	*slash = '\0';
	rc = mcb_os_fsync_dir(path, e);
	*slash = '/';
	return rc;
}

/* Read until n bytes or end of file.  Returns the count or -1 (errno set). */
static ssize_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* ---- contexts ---- */

static ZSTD_CCtx *take_cctx(struct mcb_store *s)
{
	ZSTD_CCtx *c;

	pthread_mutex_lock(&s->lock);
	c = s->spare_c;
	s->spare_c = NULL;
	pthread_mutex_unlock(&s->lock);
	if (!c && !(c = ZSTD_createCCtx()))
		return NULL;
	ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1))) {
		ZSTD_freeCCtx(c);
		return NULL;
	}
	/* Fails harmlessly (single-threaded) when libzstd lacks threads. */
	(void)ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, NB_WORKERS);
	return c;
}

static void give_cctx(struct mcb_store *s, ZSTD_CCtx *c)
{
	pthread_mutex_lock(&s->lock);
	if (!s->spare_c) {
		s->spare_c = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	ZSTD_freeCCtx(c);
}

static ZSTD_DCtx *take_dctx(struct mcb_store *s)
{
	ZSTD_DCtx *d;

	pthread_mutex_lock(&s->lock);
	d = s->spare_d;
	s->spare_d = NULL;
	pthread_mutex_unlock(&s->lock);
	if (!d && !(d = ZSTD_createDCtx()))
		return NULL;
	ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, WINDOW_LOG_MAX))) {
		ZSTD_freeDCtx(d);
		return NULL;
	}
	return d;
}

static void give_dctx(struct mcb_store *s, ZSTD_DCtx *d)
{
	pthread_mutex_lock(&s->lock);
	if (!s->spare_d) {
		s->spare_d = d;
		d = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	ZSTD_freeDCtx(d);
}

/* ---- open ---- */

/* 1 if dir holds anything but VERSION temporaries, 0 if not, -1 on error. */
static int dir_nonempty(const char *dir)
{
	struct dirent *d;
	DIR *dp = opendir(dir);
	int found = 0;

	if (!dp)
		return -1;
	while ((d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") ||
		    !strncmp(d->d_name, "VERSION.tmp.", 12))
			continue;
		found = 1;
		break;
	}
	closedir(dp);
	return found;
}

/* Check (or create) dir/VERSION. */
static int check_version(const char *dir, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_arena a;
	char *path, line[64];
	const char *p;
	unsigned long long v = 0;
	int rc, n, tries;

	mcb_arena_init(&a);
	path = mcb_path_join(&a, dir, "VERSION");
	/* A directory holding anything but VERSION is not ours, unless another
	 * process is creating the cache this very moment: it renames VERSION into
	 * place before it creates anything else, so look again before refusing. */
	for (tries = 0; tries < 3; tries++) {
		rc = mcb_os_read_file(path, 64, &b, e);
		if (rc != MCB_ENOENT)
			break;
		n = dir_nonempty(dir);
		if (n < 0) {
			rc = mcb_errf(e, MCB_EIO, "cannot read directory '%s':", dir);
			goto out;
		}
		if (n == 0) {
			n = snprintf(line, sizeof(line), "mcbuild-cache %d\n", CACHE_VERSION);
			rc = mcb_os_write_atomic(path, line, (size_t)n, 0644, e);
			goto out;
		}
	}
	if (rc == MCB_ENOENT) {
		rc = mcb_errf(e, MCB_EINVAL,
			      "'%s' is not empty and not an mcbuild cache (no VERSION file); "
			      "refusing to use it as the cache directory", dir);
		goto out;
	}
	if (rc == MCB_ERANGE)
		goto bad;
	if (rc)
		goto out;
	if (strncmp(b.data, "mcbuild-cache ", 14))
		goto bad;
	for (p = b.data + 14; *p >= '0' && *p <= '9' && v < 1000000; p++)
		v = v * 10 + (unsigned)(*p - '0');
	if (p == b.data + 14 || strcmp(p, "\n") || (b.data[14] == '0'))
		goto bad;
	if (v != CACHE_VERSION)
		rc = mcb_errf(e, MCB_EUNSUP,
			      "cache '%s' has format version %llu; this mcbuild (%s) reads version %d "
			      "only: use a newer mcbuild or another cache directory",
			      dir, v, MCB_VERSION, CACHE_VERSION);
	goto out;
bad:
	rc = mcb_errf(e, MCB_EFORMAT, "'%s' is not an mcbuild cache version file "
		      "(expected \"mcbuild-cache %d\")", path, CACHE_VERSION);
out:
	mcb_buf_release(&b);
	mcb_arena_release(&a);
	return rc;
}

/*
 * Open the cache at dir, creating the directory, VERSION, cas/, ac/ and
 * quarantine/ as needed.  On success *out owns the new handle (free it with
 * mcb_store_close).  Errors: see store.h.
 */
int mcb_store_open(const char *dir, struct mcb_store **out, struct mcb_errctx *e)
{
	static const char *const sub[] = {"cas", "ac", "quarantine"};
	struct mcb_store *s;
	struct mcb_arena a;
	size_t n = strlen(dir);
	unsigned i;
	int rc;

	*out = NULL;
	if (n == 0)
		return mcb_errf(e, MCB_EINVAL, "empty cache directory name");
	rc = mcb_os_mkdirs(dir, e);
	if (rc)
		return rc;
	rc = check_version(dir, e);
	if (rc)
		return rc;
	mcb_arena_init(&a);
	for (i = 0; i < sizeof(sub) / sizeof(sub[0]) && !rc; i++) {
		char *p = mcb_path_join(&a, dir, sub[i]);

		if (mkdir(p, 0777) < 0 && errno != EEXIST)
			rc = mcb_errf(e, MCB_EIO, "cannot create directory '%s':", p);
		else if (!mcb_os_isdir(p))
			rc = mcb_errf(e, MCB_EIO, "cannot use cache directory '%s': not a directory", p);
	}
	mcb_arena_release(&a);
	if (rc)
		return rc;
	s = mcb_xcalloc(1, sizeof(*s));
	while (n > 1 && dir[n - 1] == '/')
		n--;
	s->dir = mcb_xmalloc(n + 1);
	memcpy(s->dir, dir, n);
	s->dir[n] = '\0';
	s->dfd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

/* Free s and everything it owns.  NULL is a no-op. */
void mcb_store_close(struct mcb_store *s)
{
	if (!s)
		return;
	ZSTD_freeCCtx(s->spare_c);
	ZSTD_freeDCtx(s->spare_d);
	pthread_mutex_destroy(&s->lock);
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->blobpath);
	free(s->dir);
	free(s);
}

/* The cache root (owned by s). */
const char *mcb_store_dir(const struct mcb_store *s)
{
	return s->dir;
}

/* Path of blob d, owned by s until the next call (a test hook). */
const char *mcb_store_blob_path(struct mcb_store *s, const struct mcb_digest *d)
{
	struct mcb_arena a;

	mcb_arena_init(&a);
	free(s->blobpath);
	s->blobpath = mcb_xstrdup(obj_path(&a, s->dir, "cas", d));
	mcb_arena_release(&a);
	return s->blobpath;
}

/* 1 when cas/ab/<62 hex> is a regular file (its content is not checked). */
int mcb_store_has(struct mcb_store *s, const struct mcb_digest *d)
{
	struct mcb_arena a;
	struct stat st;
	int ok;

	char hex[MCB_HEX_LEN + 1], rel[MCB_HEX_LEN + 8];

	if (s->dfd < 0) {
		mcb_arena_init(&a);
		ok = lstat(obj_path(&a, s->dir, "cas", d), &st) == 0 && S_ISREG(st.st_mode);
		mcb_arena_release(&a);
		return ok;
	}
	/* relative to the root: the kernel walks 3 components, not the whole path */
	mcb_digest_hex(d, hex);
	snprintf(rel, sizeof(rel), "cas/%.2s/%s", hex, hex + 2);
	return fstatat(s->dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* ---- quarantine ---- */

/* Move area/ab/<62 hex> to quarantine/ (see store.h); never fails, says what happened in note. */
void mcb_store_quarantine(struct mcb_store *s, const char *area, const struct mcb_digest *d,
			  const struct mcb_stat *seen, struct mcb_buf *note)
{
	static unsigned counter;
	struct mcb_arena a;
	struct stat st;
	char hex[MCB_HEX_LEN + 1];
	char *from, *name, *to;

	if (strcmp(area, "cas") && strcmp(area, "ac")) {
		mcb_buf_printf(note, "not moved to quarantine: unknown area '%s'", area);
		return;
	}
	mcb_arena_init(&a);
	mcb_digest_hex(d, hex);
	from = obj_path(&a, s->dir, area, d);
	if (seen && lstat(from, &st) < 0) {
		mcb_buf_adds(note, "already moved away by another process");
		mcb_arena_release(&a);
		return;
	}
	if (seen && ((uint64_t)st.st_ino != seen->ino || (uint64_t)st.st_dev != seen->dev)) {
		mcb_buf_adds(note, "left in place: another process has replaced it meanwhile");
		mcb_arena_release(&a);
		return;
	}
	name = mcb_arena_printf(&a, "quarantine/%s-%.2s-%s.%lld.%ld.%u", area, hex, hex + 2,
				(long long)mcb_os_wall_ns(), (long)getpid(),
				__atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
	to = mcb_path_join(&a, s->dir, name);
	if (mkparent(to, NULL) < 0 || rename(from, to) < 0)
		mcb_buf_printf(note, "could not be moved to quarantine: %s", strerror(errno));
	else
		mcb_buf_printf(note, "moved to %s", name);
	mcb_arena_release(&a);
}

/* ---- put ---- */

/* Map a zstd compression error to a code and message; src names the input. */
static int zcerr(size_t r, const char *src, struct mcb_errctx *e)
{
	switch (ZSTD_getErrorCode(r)) {
	case ZSTD_error_memory_allocation:
		return mcb_errf(e, MCB_ENOMEM, "out of memory compressing '%s'", src);
	case ZSTD_error_srcSize_wrong:
		return mcb_errf(e, MCB_EIO, "'%s' changed size while it was being stored", src);
	default:
		return mcb_errf(e, MCB_EIO, "cannot compress '%s': zstd: %s", src,
				ZSTD_getErrorName(r));
	}
}

/* Compress n bytes at p into fd (tmp) through obuf (BLOCK bytes); with
 * ZSTD_e_end, also finish the frame. */
static int zfeed(ZSTD_CCtx *c, int fd, const char *tmp, unsigned char *obuf, const void *p,
		 size_t n, ZSTD_EndDirective end, const char *src, struct mcb_errctx *e)
{
	ZSTD_inBuffer in = {p, n, 0};
	size_t r;

	for (;;) {
		ZSTD_outBuffer out = {obuf, BLOCK, 0};

		r = ZSTD_compressStream2(c, &out, &in, end);
		if (ZSTD_isError(r))
			return zcerr(r, src, e);
		if (out.pos && mcb_os_write_all(fd, obuf, out.pos) < 0)
			return mcb_errf(e, MCB_EIO, "cannot write '%s':", tmp);
		if (end == ZSTD_e_end ? r == 0 : in.pos == in.size)
			return 0;
	}
}

/*
 * Store n bytes at p as a blob and put their digest in *out.  The blob is
 * not rewritten when present.  MCB_ERANGE above MCB_STORE_MAX_BLOB;
 * MCB_EIO, MCB_ENOMEM.
 */
int mcb_store_put_mem(struct mcb_store *s, const void *p, size_t n, struct mcb_digest *out,
		      struct mcb_errctx *e)
{
	struct mcb_arena a;
	unsigned char *obuf;
	ZSTD_CCtx *c;
	char *path, *tmp;
	int fd, rc;

	mcb_sha256(p, n, out);
	if ((uint64_t)n > MCB_STORE_MAX_BLOB)
		return mcb_errf(e, MCB_ERANGE, "cannot store %zu bytes: blobs are limited to %llu",
				n, (unsigned long long)MCB_STORE_MAX_BLOB);
	if (mcb_store_has(s, out))
		return 0;
	mcb_arena_init(&a);
	path = obj_path(&a, s->dir, "cas", out);
	rc = mkparent(path, e);
	if (rc)
		goto out;
	fd = mcb_os_tmpfile(&a, path, &tmp, e);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	c = take_cctx(s);
	if (!c) {
		close(fd);
		unlink(tmp);
		rc = mcb_errf(e, MCB_ENOMEM, "cannot create a zstd compression context");
		goto out;
	}
	obuf = mcb_xmalloc(BLOCK);
	rc = ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, n))
		     ? mcb_errf(e, MCB_EINTERNAL, "zstd refused the content size %zu", n)
		     : zfeed(c, fd, tmp, obuf, p, n, ZSTD_e_end, "<memory>", e);
	free(obuf);
	give_cctx(s, c);
	if (rc) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	rc = commit(fd, tmp, path, 0444, e);
out:
	mcb_arena_release(&a);
	return rc;
}

/*
 * Store the regular file at path: one sequential read feeds both SHA-256
 * and the compressor (working in its own thread), into cas/.put.tmp.*; the
 * temporary is renamed to the blob's name, or dropped when the blob is
 * already present.  Errors: see store.h.
 */
int mcb_store_put_file(struct mcb_store *s, const char *path, struct mcb_digest *out,
		       uint64_t *size, struct mcb_errctx *e)
{
	struct mcb_hasher h;
	struct mcb_arena a;
	struct stat st;
	unsigned char *ibuf = NULL, *obuf = NULL;
	uint64_t total = 0;
	ZSTD_CCtx *c = NULL;
	char *tmp = NULL, *dst;
	int in, fd = -1, rc = 0, hashing = 0;
	ssize_t n;

	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return mcb_errf(e, errno == ENOENT || errno == ENOTDIR ? MCB_ENOENT : MCB_EIO,
				"cannot open '%s':", path);
	mcb_arena_init(&a);
	if (fstat(in, &st) < 0) {
		rc = mcb_errf(e, MCB_EIO, "cannot stat '%s':", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = mcb_errf(e, MCB_EINVAL, "cannot store '%s': not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > MCB_STORE_MAX_BLOB) {
		rc = mcb_errf(e, MCB_ERANGE, "cannot store '%s': blobs are limited to %llu bytes",
			      path, (unsigned long long)MCB_STORE_MAX_BLOB);
		goto out;
	}
	(void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
	fd = mcb_os_tmpfile(&a, mcb_arena_printf(&a, "%s/cas/.put", s->dir), &tmp, e);
	if (fd < 0) {
		rc = fd;
		fd = -1;
		goto out;
	}
	c = take_cctx(s);
	if (!c) {
		rc = mcb_errf(e, MCB_ENOMEM, "cannot create a zstd compression context");
		goto out;
	}
	if (ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, (unsigned long long)st.st_size))) {
		rc = mcb_errf(e, MCB_EINTERNAL, "zstd refused the content size of '%s'", path);
		goto out;
	}
	ibuf = mcb_xmalloc(BLOCK);
	obuf = mcb_xmalloc(BLOCK);
	mcb_hasher_init(&h);
	hashing = 1;
	for (;;) {
		n = read(in, ibuf, BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = mcb_errf(e, MCB_EIO, "cannot read '%s':", path);
			goto out;
		}
		if (n == 0)
			break;
		mcb_hasher_update(&h, ibuf, (size_t)n);
		total += (uint64_t)n;
		rc = zfeed(c, fd, tmp, obuf, ibuf, (size_t)n, ZSTD_e_continue, path, e);
		if (rc)
			goto out;
	}
	rc = zfeed(c, fd, tmp, obuf, NULL, 0, ZSTD_e_end, path, e);
	if (rc)
		goto out;
	if (total != (uint64_t)st.st_size) {
		rc = mcb_errf(e, MCB_EIO, "'%s' changed size while it was being stored", path);
		goto out;
	}
	mcb_hasher_final(&h, out);
	hashing = 0;
	if (size)
		*size = total;
	if (mcb_store_has(s, out))
		goto out;
	dst = obj_path(&a, s->dir, "cas", out);
	rc = mkparent(dst, e);
	if (rc)
		goto out;
	rc = commit(fd, tmp, dst, 0444, e);
	fd = -1;
	tmp = NULL;
out:
	if (hashing) {
		struct mcb_digest junk;

		mcb_hasher_final(&h, &junk);
	}
	if (fd >= 0)
		close(fd);
	if (tmp)
		unlink(tmp);
	if (c)
		give_cctx(s, c);
	free(ibuf);
	free(obuf);
	close(in);
	mcb_arena_release(&a);
	return rc;
}

/* ---- get ---- */

/* Make room for n more bytes (and the NUL) in b without dying on failure. */
static int buf_reserve(struct mcb_buf *b, size_t n, struct mcb_errctx *e)
{
	size_t need, cap;
	char *p;

	if (mcb_add_ok(b->len, n, &need) || mcb_add_ok(need, 1, &need))
		return mcb_errf(e, MCB_ENOMEM, "blob does not fit in memory");
	if (need <= b->cap)
		return 0;
	cap = b->cap < SIZE_MAX / 2 ? 2 * b->cap : SIZE_MAX;
	if (cap < need)
		cap = need;
	if (cap < 64)
		cap = 64;
	p = realloc(b->data, cap);
	if (!p)
		return mcb_errf(e, MCB_ENOMEM, "out of memory reading a %zu-byte cache blob", need);
	b->data = p;
	b->cap = cap;
	return 0;
}

static int sink_write(struct sink *k, const void *p, size_t n, struct mcb_errctx *e)
{
	int rc;

	if (!k->buf) {
		if (mcb_os_write_all(k->fd, p, n) < 0)
			return mcb_errf(e, MCB_EIO, "cannot write '%s':", k->name);
		return 0;
	}
	rc = buf_reserve(k->buf, n, e);
	if (rc)
		return rc;
	memcpy(k->buf->data + k->buf->len, p, n);
	k->buf->len += n;
	k->buf->data[k->buf->len] = '\0';
	return 0;
}

/*
 * Decompress the blob open on fd into k, checking it against d.  Returns 0;
 * MCB_ECORRUPT with the reason in why (e untouched); or another error in e
 * (the blob is not to blame: reading it or writing k failed).
 */
static int decode(int fd, const char *path, ZSTD_DCtx *z, unsigned char *ibuf,
		  unsigned char *obuf, struct sink *k, const struct mcb_digest *d, char *why,
		  size_t nwhy, struct mcb_errctx *e)
{
	struct mcb_hasher h;
	struct mcb_digest got;
	unsigned long long declared;
	uint64_t total = 0;
	unsigned char fhd;
	ZSTD_inBuffer in;
	ssize_t n;
	size_t r;
	int eof = 0, rc = 0;

	n = read_full(fd, ibuf, BLOCK);
	if (n < 0)
		return mcb_errf(e, MCB_EIO, "cannot read '%s':", path);
	if (n < 5) {
		snprintf(why, nwhy, n == 0 ? "empty file" : "truncated zstd frame header");
		return MCB_ECORRUPT;
	}
	if ((ibuf[0] | ibuf[1] << 8 | ibuf[2] << 16 | (uint32_t)ibuf[3] << 24) != ZSTD_MAGIC) {
		snprintf(why, nwhy, "not a zstd frame");
		return MCB_ECORRUPT;
	}
	fhd = ibuf[4]; /* frame header descriptor, RFC 8878 3.1.1.1.1 */
	if (!(fhd & 0x04) || (fhd & 0x03)) {
		snprintf(why, nwhy, (fhd & 0x03) ? "zstd frame needs a dictionary"
						 : "zstd frame has no content checksum");
		return MCB_ECORRUPT;
	}
	declared = ZSTD_getFrameContentSize(ibuf, (size_t)n);
	if (declared == ZSTD_CONTENTSIZE_ERROR) {
		snprintf(why, nwhy, "bad or truncated zstd frame header");
		return MCB_ECORRUPT;
	}
	if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
		snprintf(why, nwhy, "zstd frame does not declare its content size");
		return MCB_ECORRUPT;
	}
	if (declared > MCB_STORE_MAX_BLOB) {
		snprintf(why, nwhy, "zstd frame declares %llu bytes, more than the %llu-byte limit",
			 declared, (unsigned long long)MCB_STORE_MAX_BLOB);
		return MCB_ECORRUPT;
	}
	if (k->buf && declared > SIZE_MAX - 1 - k->buf->len)
		return mcb_errf(e, MCB_ENOMEM, "a %llu-byte blob does not fit in memory", declared);
	if (k->buf) {
		rc = buf_reserve(k->buf, declared < RESERVE_MAX ? (size_t)declared : RESERVE_MAX, e);
		if (rc)
			return rc;
	}
	in.src = ibuf;
	in.size = (size_t)n;
	in.pos = 0;
	eof = (size_t)n < BLOCK;
	mcb_hasher_init(&h);
	for (;;) {
		ZSTD_outBuffer out = {obuf, BLOCK, 0};

		if (in.pos == in.size && !eof) {
			n = read_full(fd, ibuf, BLOCK);
			if (n < 0) {
				rc = mcb_errf(e, MCB_EIO, "cannot read '%s':", path);
				break;
			}
			in.size = (size_t)n;
			in.pos = 0;
			eof = (size_t)n < BLOCK;
		}
		r = ZSTD_decompressStream(z, &out, &in);
		if (ZSTD_isError(r)) {
			snprintf(why, nwhy, "zstd: %s", ZSTD_getErrorName(r));
			rc = MCB_ECORRUPT;
			break;
		}
		if (out.pos > declared - total) {
			snprintf(why, nwhy, "decompresses to more than the declared %llu bytes",
				 declared);
			rc = MCB_ECORRUPT;
			break;
		}
		if (out.pos) {
			mcb_hasher_update(&h, obuf, out.pos);
			total += out.pos;
			rc = sink_write(k, obuf, out.pos, e);
			if (rc)
				break;
		}
		if (r == 0) { /* frame decoded and flushed */
			if (in.pos < in.size || (!eof && read_full(fd, ibuf, 1) != 0)) {
				snprintf(why, nwhy, "data after the zstd frame");
				rc = MCB_ECORRUPT;
			}
			break;
		}
		if (eof && in.pos == in.size && out.pos == 0) {
			snprintf(why, nwhy, "truncated zstd frame");
			rc = MCB_ECORRUPT;
			break;
		}
	}
	mcb_hasher_final(&h, &got);
	if (rc)
		return rc;
	if (total != declared) {
		snprintf(why, nwhy, "decompressed %llu bytes, the frame declares %llu",
			 (unsigned long long)total, declared);
		return MCB_ECORRUPT;
	}
	if (!mcb_digest_eq(&got, d)) {
		char hex[MCB_HEX_LEN + 1];

		mcb_digest_hex(&got, hex);
		snprintf(why, nwhy, "its content hashes to %.16s...", hex);
		return MCB_ECORRUPT;
	}
	return 0;
}

/* Read blob d into k; quarantines it and returns MCB_ECORRUPT when it fails. */
static int get_blob(struct mcb_store *s, const struct mcb_digest *d, struct sink *k,
		    struct mcb_errctx *e)
{
	struct mcb_arena a;
	struct mcb_stat seen;
	struct stat st;
	unsigned char *ibuf, *obuf;
	char hex[MCB_HEX_LEN + 1], why[256];
	ZSTD_DCtx *z;
	char *path;
	int fd, rc;

	mcb_arena_init(&a);
	mcb_digest_hex(d, hex);
	path = obj_path(&a, s->dir, "cas", d);
	why[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
		mcb_arena_release(&a);
		return mcb_errf(e, MCB_ENOENT, "cache blob cas/%.2s/%s not found", hex, hex + 2);
	}
	if (fd < 0 && errno != ELOOP) {
		rc = mcb_errf(e, MCB_EIO, "cannot open '%s':", path);
		mcb_arena_release(&a);
		return rc;
	}
	memset(&seen, 0, sizeof(seen));
	if (fd < 0) {
		snprintf(why, sizeof(why), "a symbolic link");
		rc = MCB_ECORRUPT;
	} else if (fstat(fd, &st) < 0) {
		rc = mcb_errf(e, MCB_EIO, "cannot stat '%s':", path);
	} else if (!S_ISREG(st.st_mode)) {
		snprintf(why, sizeof(why), "not a regular file");
		rc = MCB_ECORRUPT;
	} else {
		seen.ino = (uint64_t)st.st_ino;
		seen.dev = (uint64_t)st.st_dev;
		z = take_dctx(s);
		if (!z) {
			rc = mcb_errf(e, MCB_ENOMEM, "cannot create a zstd decompression context");
		} else {
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
			ibuf = mcb_xmalloc(BLOCK);
			obuf = mcb_xmalloc(BLOCK);
			rc = decode(fd, path, z, ibuf, obuf, k, d, why, sizeof(why), e);
			free(ibuf);
			free(obuf);
			give_dctx(s, z);
		}
	}
	if (fd >= 0)
		close(fd);
	if (rc == MCB_ECORRUPT) {
		struct mcb_buf note = MCB_BUF_INIT;

		mcb_store_quarantine(s, "cas", d, seen.ino ? &seen : NULL, &note);
		rc = mcb_errf(e, MCB_ECORRUPT, "cache blob cas/%.2s/%s is corrupt (%s); %s", hex,
			      hex + 2, why, mcb_buf_str(&note));
		mcb_buf_release(&note);
	}
	mcb_arena_release(&a);
	return rc;
}

/* Append verified blob d to out.  Errors: see store.h; out->len is kept on failure. */
int mcb_store_get_mem(struct mcb_store *s, const struct mcb_digest *d, struct mcb_buf *out,
		      struct mcb_errctx *e)
{
	struct sink k = {out, -1, NULL};
	size_t len0 = out->len;
	int rc = get_blob(s, d, &k, e);

	if (rc) {
		out->len = len0;
		if (out->data)
			out->data[len0] = '\0';
	}
	return rc;
}

/*
 * Write verified blob d to dst (mode 0644): into dst.tmp.<pid>.<nonce>,
 * then fsync, rename, fsync of dst's directory.  dst is untouched on any
 * failure.  Errors: see store.h.
 */
int mcb_store_get_file(struct mcb_store *s, const struct mcb_digest *d, const char *dst,
		       struct mcb_errctx *e)
{
	struct mcb_arena a;
	struct sink k;
	char *tmp, *path;
	int fd, rc;

	mcb_arena_init(&a);
	fd = mcb_os_tmpfile(&a, dst, &tmp, e);
	if (fd < 0) {
		mcb_arena_release(&a);
		return fd;
	}
	k.buf = NULL;
	k.fd = fd;
	k.name = tmp;
	rc = get_blob(s, d, &k, e);
	if (rc) {
		close(fd);
		unlink(tmp);
	} else {
		path = mcb_arena_strdup(&a, dst);
		rc = commit(fd, tmp, path, 0644, e);
	}
	mcb_arena_release(&a);
	return rc;
}
