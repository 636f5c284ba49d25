/* os: POSIX/Linux system layer. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/os.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static void fill_stat(struct mcb_stat *st, const struct stat *s)
{
	st->size = (uint64_t)s->st_size;
	st->mtime_ns = (int64_t)s->st_mtim.tv_sec * 1000000000 + s->st_mtim.tv_nsec;
	st->ctime_ns = (int64_t)s->st_ctim.tv_sec * 1000000000 + s->st_ctim.tv_nsec;
	st->ino = (uint64_t)s->st_ino;
	st->dev = (uint64_t)s->st_dev;
	st->mode = (unsigned)s->st_mode;
}

int mcb_os_stat(const char *path, struct mcb_stat *st, struct mcb_errctx *e)
{
	struct stat s;

	if (stat(path, &s) < 0)
		return mcb_errf(e, errno == ENOENT || errno == ENOTDIR ? MCB_ENOENT : MCB_EIO,
				"cannot stat '%s':", path);
	fill_stat(st, &s);
	return 0;
}

int mcb_os_exists(const char *path)
{
	struct stat s;

	return lstat(path, &s) == 0;
}

int mcb_os_isdir(const char *path)
{
	struct stat s;

	return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

/* Read the open file fd (stat s) into out and close it.  A regular file is
 * read up to its size, without the read that would return end of file
 * (files of /proc say 0: those are read to the end). */
static int read_fd(int fd, const struct stat *s, const char *path, size_t max,
		   struct mcb_buf *out, struct mcb_errctx *e)
{
	size_t got = 0, want = S_ISREG(s->st_mode) && s->st_size > 0 ? (size_t)s->st_size
								  : SIZE_MAX;
	ssize_t n;

	if (S_ISDIR(s->st_mode)) {
		close(fd);
		return mcb_errf(e, MCB_EIO, "cannot read '%s': is a directory", path);
	}
	if ((uint64_t)s->st_size > max) {
		close(fd);
		return mcb_errf(e, MCB_ERANGE, "'%s' is larger than %zu bytes", path, max);
	}
	mcb_buf_grow(out, (size_t)s->st_size);
	while (got < want) {
		if (out->cap - out->len - 1 == 0)
			mcb_buf_grow(out, 4096);
		n = read(fd, out->data + out->len, out->cap - out->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return mcb_errf(e, MCB_EIO, "cannot read '%s':", path);
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		got += (size_t)n;
		if (got > max) {
			close(fd);
			return mcb_errf(e, MCB_ERANGE, "'%s' is larger than %zu bytes", path, max);
		}
	}
	out->data[out->len] = '\0';
	close(fd);
	return 0;
}

/*
 * Open path for reading with flags added and fstat it into *s: the
 * descriptor, or a negative mcb_err (MCB_ENOENT; MCB_EFORMAT "not a regular
 * file" when O_NOFOLLOW met a symbolic link; else MCB_EIO).
 */
static int open_stat(const char *path, int flags, struct stat *s, struct mcb_errctx *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags);

	if (fd < 0) {
		if (errno == ELOOP && (flags & O_NOFOLLOW))
			return mcb_errf(e, MCB_EFORMAT, "not a regular file");
		return mcb_errf(e, errno == ENOENT || errno == ENOTDIR ? MCB_ENOENT : MCB_EIO,
				"cannot open '%s':", path);
	}
	if (fstat(fd, s) < 0) {
		close(fd);
		return mcb_errf(e, MCB_EIO, "cannot stat '%s':", path);
	}
	return fd;
}

int mcb_os_read_file(const char *path, size_t max, struct mcb_buf *out, struct mcb_errctx *e)
{
	struct stat s;
	int fd = open_stat(path, 0, &s, e);

	return fd < 0 ? fd : read_fd(fd, &s, path, max, out, e);
}

int mcb_os_read_regular(const char *path, size_t max, struct mcb_buf *out, struct mcb_stat *st,
			struct mcb_errctx *e)
{
	struct stat s;
	int fd;

	memset(st, 0, sizeof(*st));
	fd = open_stat(path, O_NOFOLLOW, &s, e);
	if (fd == MCB_EFORMAT && lstat(path, &s) == 0) /* a symbolic link */
		fill_stat(st, &s);
	if (fd < 0)
		return fd;
	fill_stat(st, &s);
	if (!S_ISREG(s.st_mode)) {
		close(fd);
		return mcb_errf(e, MCB_EFORMAT, "not a regular file");
	}
	return read_fd(fd, &s, path, max, out, e);
}

int mcb_os_write_all(int fd, const void *data, size_t n)
{
	const char *p = data;
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return MCB_EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int mcb_os_tmpfile(struct mcb_arena *a, const char *path, char **tmpname, struct mcb_errctx *e)
{
	static unsigned counter;
	struct timespec ts;
	char *name;
	int fd, tries;

	for (tries = 0; tries < 100; tries++) {
		clock_gettime(CLOCK_REALTIME, &ts);
		name = mcb_arena_printf(a, "%s.tmp.%ld.%lx%x", path, (long)getpid(),
					(unsigned long)ts.tv_nsec, __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*tmpname = name;
			return fd;
		}
		if (errno != EEXIST)
			return mcb_errf(e, MCB_EIO, "cannot create '%s':", name);
	}
	return mcb_errf(e, MCB_EIO, "cannot create a temporary file next to '%s'", path);
}

int mcb_os_write_atomic(const char *path, const void *data, size_t n, unsigned mode,
			struct mcb_errctx *e)
{
	struct mcb_arena a;
	char *tmp, *dir;
	int fd, rc = 0;

	mcb_arena_init(&a);
	fd = mcb_os_tmpfile(&a, path, &tmp, e);
	if (fd < 0) {
		mcb_arena_release(&a);
		return fd;
	}
	if (mcb_os_write_all(fd, data, n) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot write '%s':", tmp);
	else if (fchmod(fd, mode) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot chmod '%s':", tmp);
	else if (fsync(fd) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot fsync '%s':", tmp);
	if (close(fd) < 0 && !rc)
		rc = mcb_errf(e, MCB_EIO, "cannot close '%s':", tmp);
	if (!rc && rename(tmp, path) < 0)
		rc = mcb_errf(e, MCB_EIO, "cannot rename '%s' to '%s':", tmp, path);
	if (rc)
		unlink(tmp);
	else {
		dir = mcb_path_dir(&a, path);
		rc = mcb_os_fsync_dir(dir, e);
	}
	mcb_arena_release(&a);
	return rc;
}

int mcb_os_mkdirs(const char *path, struct mcb_errctx *e)
{
	char *p = mcb_xstrdup(path), *s;
	int rc = 0;

	for (s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, 0777) < 0 && errno != EEXIST) {
				rc = mcb_errf(e, MCB_EIO, "cannot create directory '%s':", p);
				break;
			}
			if (!mcb_os_isdir(p)) {
				rc = mcb_errf(e, MCB_EIO, "cannot create directory '%s': a file is in the way", p);
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

int mcb_os_rmtree(const char *path, struct mcb_errctx *e)
{
	struct stat s;
	struct dirent *d;
	DIR *dir;
	int rc = 0;

	if (lstat(path, &s) < 0)
		return errno == ENOENT ? 0 : mcb_errf(e, MCB_EIO, "cannot stat '%s':", path);
	if (!S_ISDIR(s.st_mode)) {
		if (unlink(path) < 0 && errno != ENOENT)
			return mcb_errf(e, MCB_EIO, "cannot remove '%s':", path);
		return 0;
	}
	dir = opendir(path);
	if (!dir)
		return mcb_errf(e, MCB_EIO, "cannot open directory '%s':", path);
	while (!rc && (d = readdir(dir))) {
		struct mcb_buf child = MCB_BUF_INIT;

		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		mcb_buf_printf(&child, "%s/%s", path, d->d_name);
		rc = mcb_os_rmtree(child.data, e);
		mcb_buf_release(&child);
	}
	closedir(dir);
	if (!rc && rmdir(path) < 0 && errno != ENOENT)
		rc = mcb_errf(e, MCB_EIO, "cannot remove directory '%s':", path);
	return rc;
}

int mcb_os_fsync_dir(const char *dir, struct mcb_errctx *e)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return mcb_errf(e, MCB_EIO, "cannot open directory '%s':", dir);
	if (fsync(fd) < 0 && errno != EINVAL) {
		close(fd);
		return mcb_errf(e, MCB_EIO, "cannot fsync directory '%s':", dir);
	}
	close(fd);
	return 0;
}

int mcb_os_exchange(const char *a, const char *b, struct mcb_errctx *e)
{
	if (syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) < 0)
		return mcb_errf(e, MCB_EIO, "cannot exchange '%s' and '%s':", a, b);
	return 0;
}

int mcb_os_map(const char *path, struct mcb_map *m, struct mcb_errctx *e)
{
	struct stat s;
	void *p;
	int fd;

	m->data = NULL;
	m->size = 0;
	fd = open_stat(path, 0, &s, e);
	if (fd < 0)
		return fd;
	if (!S_ISREG(s.st_mode)) {
		close(fd);
		return mcb_errf(e, MCB_EIO, "cannot map '%s': not a regular file", path);
	}
	if (s.st_size == 0) {
		close(fd);
		return 0;
	}
	p = mmap(NULL, (size_t)s.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return mcb_errf(e, MCB_EIO, "cannot map '%s':", path);
	m->data = p;
	m->size = (size_t)s.st_size;
	return 0;
}

void mcb_os_unmap(struct mcb_map *m)
{
	if (m->data)
		munmap((void *)m->data, m->size);
	m->data = NULL;
	m->size = 0;
}

char *mcb_os_cpu_model(struct mcb_arena *a)
{
	char line[512], *p, *end;
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		for (p++; *p == ' ' || *p == '\t'; p++)
			;
		end = p + strlen(p);
		while (end > p && (end[-1] == '\n' || end[-1] == ' '))
			end--;
		fclose(f);
		return mcb_arena_strndup(a, p, (size_t)(end - p));
	}
	if (f)
		fclose(f);
	return mcb_arena_strdup(a, uname(&u) == 0 ? u.machine : "unknown");
}

int mcb_os_ncpu(void)
{
	static _Atomic int ncpu; /* glibc reads /sys on every sysconf call */
	int v = ncpu;

	if (!v) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		ncpu = v = n < 1 ? 1 : (int)n;
	}
	return v;
}

int64_t mcb_os_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mcb_os_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

char *mcb_path_join(struct mcb_arena *a, const char *dir, const char *name)
{
	size_t n = strlen(dir);

	if (name[0] == '/' || n == 0 || !strcmp(dir, "."))
		return mcb_arena_strdup(a, name);
	if (dir[n - 1] == '/')
		return mcb_arena_printf(a, "%s%s", dir, name);
	return mcb_arena_printf(a, "%s/%s", dir, name);
}

char *mcb_path_dir(struct mcb_arena *a, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return mcb_arena_strdup(a, ".");
	if (slash == path)
		return mcb_arena_strdup(a, "/");
	return mcb_arena_strndup(a, path, (size_t)(slash - path));
}

char *mcb_path_clean_relative(struct mcb_arena *a, const char *path)
{
	size_t n = strlen(path), len = 0;
	char *out = mcb_arena_alloc(a, n + 2);
	const char *p = path, *q;

	if (path[0] == '/')
		return NULL;
	while (*p) {
		q = strchr(p, '/');
		if (!q)
			q = p + strlen(p);
		if (q - p == 0 || (q - p == 1 && p[0] == '.')) {
			/* skip */
		} else if (q - p == 2 && p[0] == '.' && p[1] == '.') {
			if (len == 0)
				return NULL;
			while (len > 0 && out[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
		} else {
			if (len > 0)
				out[len++] = '/';
			memcpy(out + len, p, (size_t)(q - p));
			len += (size_t)(q - p);
		}
		p = *q ? q + 1 : q;
	}
	if (len == 0)
		out[len++] = '.';
	out[len] = '\0';
	return out;
}
