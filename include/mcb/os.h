/*
 * os: the operating-system layer (POSIX/Linux): stat, whole-file reads,
 * atomic writes, directories, memory maps, paths, clocks.
 */
#ifndef MCB_OS_H
#define MCB_OS_H

#include <stddef.h>
#include <stdint.h>

struct mcb_arena;
struct mcb_buf;
struct mcb_errctx;

struct mcb_stat {
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t ino;
	uint64_t dev;
	unsigned mode; /* st_mode */
};

/* stat(2) (following links).  MCB_ENOENT when missing, MCB_EIO otherwise. */
int mcb_os_stat(const char *path, struct mcb_stat *st, struct mcb_errctx *e);

/* 1 if path exists (any type), else 0. */
int mcb_os_exists(const char *path);
/* 1 if path is a directory, else 0. */
int mcb_os_isdir(const char *path);

/*
 * Read the whole file into out (appended; NUL-terminated).  Fails with
 * MCB_ERANGE when the file is larger than max bytes.
 */
int mcb_os_read_file(const char *path, size_t max, struct mcb_buf *out, struct mcb_errctx *e);

/*
 * The same for a file that must be a regular file reached without following
 * a symbolic link (cache entries): MCB_EFORMAT "not a regular file"
 * otherwise.  *st: its identity when it exists (zeroed when not known).
 */
int mcb_os_read_regular(const char *path, size_t max, struct mcb_buf *out, struct mcb_stat *st,
			struct mcb_errctx *e);

/*
 * Write n bytes to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory.  Readers see the old
 * content or the new, never a mix.  mode is the file mode (e.g. 0644).
 */
int mcb_os_write_atomic(const char *path, const void *data, size_t n, unsigned mode,
			struct mcb_errctx *e);

/* Write all n bytes to fd (retrying short writes).  Returns 0 or MCB_EIO (errno set). */
int mcb_os_write_all(int fd, const void *data, size_t n);

/* Create a unique temporary file next to path ("<path>.tmp.<pid>.<rand>").
 * Stores the name (arena-allocated) and returns the open fd, or a negative error. */
int mcb_os_tmpfile(struct mcb_arena *a, const char *path, char **tmpname, struct mcb_errctx *e);

/* mkdir -p.  Existing directories are fine. */
int mcb_os_mkdirs(const char *path, struct mcb_errctx *e);

/* rm -rf.  A missing path is fine.  Does not follow symbolic links. */
int mcb_os_rmtree(const char *path, struct mcb_errctx *e);

/* fsync a directory so that renames inside it are durable. */
int mcb_os_fsync_dir(const char *dir, struct mcb_errctx *e);

/* Atomically exchange two existing paths (renameat2 RENAME_EXCHANGE). */
int mcb_os_exchange(const char *a, const char *b, struct mcb_errctx *e);

/* A read-only private memory map of a whole file.  An empty file maps to
 * data == NULL, size == 0. */
struct mcb_map {
	const unsigned char *data;
	size_t size;
};

int mcb_os_map(const char *path, struct mcb_map *m, struct mcb_errctx *e);
void mcb_os_unmap(struct mcb_map *m);

/* The CPU's model name (/proc/cpuinfo "model name", else the machine type). */
char *mcb_os_cpu_model(struct mcb_arena *a);

/* Number of online CPUs (>= 1). */
int mcb_os_ncpu(void);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t mcb_os_now_ns(void);
/* CLOCK_REALTIME in nanoseconds. */
int64_t mcb_os_wall_ns(void);

/* "a/b" (no doubled slash; b absolute returns b). */
char *mcb_path_join(struct mcb_arena *a, const char *dir, const char *name);
/* Directory part of path ("." when none). */
char *mcb_path_dir(struct mcb_arena *a, const char *path);
/*
 * Lexically normalise a relative path: drop "." and empty components, resolve
 * "..".  Returns NULL when the path is absolute or climbs above its start
 * ("no path escaping the workspace").  "" normalises to ".".
 */
char *mcb_path_clean_relative(struct mcb_arena *a, const char *path);

#endif
