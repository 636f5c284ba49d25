/* Unit tests for cache/statcache.c: hits, invalidation, racy files, corrupt files. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/statcache.h"

/* Set path's mtime to now - ago seconds (+ ns); ctime becomes now. */
static void set_mtime(const char *path, long ago, long ns)
{
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= ago;
	t[0].tv_nsec = ns;
	t[1] = t[0];
	CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

static struct mcb_statcache *open_cache(const char *path, int want_warning)
{
	struct mcb_statcache *c = NULL;
	struct mcb_errctx e;
	int warning = -1;

	mcb_errclear(&e);
	CHECK_OK(mcb_statcache_open(path, &c, &warning, &e), &e);
	CHECK_EQ(warning, want_warning);
	if (warning && getenv("MCBT_VERBOSE"))
		fprintf(stderr, "  %s\n", e.msg);
	if (warning)
		CHECK(e.msg[0] != '\0');
	return c;
}

/* The digest of path through c, checked against a direct hash. */
static void digest_of(struct mcb_statcache *c, const char *path, struct mcb_digest *d)
{
	struct mcb_digest want;
	struct mcb_errctx e;
	uint64_t size = 0, wsize = 0;

	CHECK_OK(mcb_statcache_digest(c, path, d, &size, &e), &e);
	CHECK_OK(mcb_sha256_file(path, &want, &wsize, &e), &e);
	CHECK(mcb_digest_eq(d, &want));
	CHECK_EQ(size, wsize);
}

static void test_hit(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096];
	struct mcb_statcache *c;
	struct mcb_digest d1, d2;
	struct mcb_errctx e;

	snprintf(file, sizeof(file), "%s/model.bin", dir);
	snprintf(cache, sizeof(cache), "%s/.mcbuild/statcache", dir);
	mcbt_write(file, "weights v1", 10);
	set_mtime(file, 10, 0);
	c = open_cache(cache, 0);
	digest_of(c, file, &d1);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	digest_of(c, file, &d2);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	CHECK(mcb_digest_eq(&d1, &d2));
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);

	/* Persisted: a new process serves it without hashing. */
	c = open_cache(cache, 0);
	digest_of(c, file, &d2);
	CHECK_EQ(mcb_statcache_hashed(c), 0);
	CHECK(mcb_digest_eq(&d1, &d2));
	mcb_statcache_close(c);

	/* touch: same bytes, new mtime -> hashed once more, same digest. */
	set_mtime(file, 5, 0);
	c = open_cache(cache, 0);
	digest_of(c, file, &d2);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	CHECK(mcb_digest_eq(&d1, &d2));
	digest_of(c, file, &d2);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	mcb_statcache_close(c);
}

/* Same size, mtime forced back to the recorded value: ctime gives it away. */
static void test_same_size_same_mtime(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096], repl[4096];
	struct mcb_statcache *c;
	struct mcb_digest d1, d2;
	struct timespec t[2];
	struct stat st;

	snprintf(file, sizeof(file), "%s/data.tokens", dir);
	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	mcbt_write(file, "AAAA", 4);
	set_mtime(file, 100, 123456789);
	CHECK(stat(file, &st) == 0);
	c = open_cache(cache, 0);
	digest_of(c, file, &d1);
	CHECK_EQ(mcb_statcache_hashed(c), 1);

	/* Rewrite in place (same inode, same size), restore mtime exactly. */
	usleep(20000);
	mcbt_write(file, "BBBB", 4);
	t[0] = st.st_atim;
	t[1] = st.st_mtim;
	CHECK(utimensat(AT_FDCWD, file, t, 0) == 0);
	digest_of(c, file, &d2);
	CHECK_EQ(mcb_statcache_hashed(c), 2);
	CHECK(!mcb_digest_eq(&d1, &d2));

	/* Replace by rename (new inode), same size and mtime. */
	snprintf(repl, sizeof(repl), "%s/new", dir);
	mcbt_write(repl, "CCCC", 4);
	CHECK(utimensat(AT_FDCWD, repl, t, 0) == 0);
	CHECK(rename(repl, file) == 0);
	digest_of(c, file, &d1);
	CHECK_EQ(mcb_statcache_hashed(c), 3);
	CHECK(!mcb_digest_eq(&d1, &d2));
	digest_of(c, file, &d1);
	CHECK_EQ(mcb_statcache_hashed(c), 3);
	mcb_statcache_close(c);
}

/* A file modified within 1 s of being hashed is not trusted next time. */
static void test_racy(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096];
	struct mcb_statcache *c;
	struct mcb_digest d;
	struct mcb_errctx e;

	snprintf(file, sizeof(file), "%s/fresh.bin", dir);
	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	mcbt_write(file, "just written", 12);
	c = open_cache(cache, 0);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 2);
	/* Also across a save and reload. */
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);
	c = open_cache(cache, 0);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 1);
	/* A future mtime is never trusted either. */
	set_mtime(file, -3600, 0);
	digest_of(c, file, &d);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 3);
	/* Once old enough, the entry is trusted. */
	set_mtime(file, 2, 0);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 4);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 4);
	mcb_statcache_close(c);
}

static void test_errors(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096];
	struct mcb_statcache *c;
	struct mcb_digest d;
	struct mcb_errctx e;
	uint64_t size;

	snprintf(file, sizeof(file), "%s/absent", dir);
	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	c = open_cache(cache, 0);
	CHECK_ERR(mcb_statcache_digest(c, file, &d, &size, &e), &e, MCB_ENOENT, "absent");
	CHECK_ERR(mcb_statcache_digest(c, "relative/path", &d, &size, &e), &e, MCB_EINVAL,
		  "not an absolute path");
	CHECK_EQ(mcb_statcache_hashed(c), 0);
	/* Nothing changed: save writes nothing. */
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	CHECK(!mcb_os_exists(cache));
	mcb_statcache_close(c);
}

/* Entries for deleted files are dropped when the cache is saved. */
static void test_drop_deleted(void)
{
	const char *dir = mcbt_tmpdir();
	char a[4096], b[4096], z[4096], cache[4096];
	struct mcb_buf text = MCB_BUF_INIT;
	struct mcb_statcache *c;
	struct mcb_digest d;
	struct mcb_errctx e;

	snprintf(a, sizeof(a), "%s/a with space", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(z, sizeof(z), "%s/z", dir);
	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	mcbt_write(a, "a", 1);
	mcbt_write(b, "b", 1);
	mcbt_write(z, "z", 1);
	set_mtime(a, 10, 0);
	set_mtime(b, 10, 0);
	set_mtime(z, 10, 0);
	c = open_cache(cache, 0);
	digest_of(c, z, &d);
	digest_of(c, b, &d);
	digest_of(c, a, &d);
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	CHECK_OK(mcb_os_read_file(cache, 1 << 20, &text, &e), &e);
	CHECK(strncmp(text.data, "mcbuild-statcache 1\n", 20) == 0);
	CHECK(strstr(text.data, a) && strstr(text.data, b) && strstr(text.data, z));
	CHECK(strstr(text.data, a) < strstr(text.data, z)); /* sorted */
	CHECK(unlink(b) == 0);
	set_mtime(z, 20, 0);
	digest_of(c, z, &d); /* dirty again */
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);
	mcb_buf_reset(&text);
	CHECK_OK(mcb_os_read_file(cache, 1 << 20, &text, &e), &e);
	CHECK(strstr(text.data, a) != NULL);
	CHECK(strstr(text.data, z) != NULL);
	{
		char needle[4200];

		snprintf(needle, sizeof(needle), " %s\n", b);
		CHECK(strstr(text.data, needle) == NULL);
	}
	c = open_cache(cache, 0);
	digest_of(c, a, &d);
	digest_of(c, z, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 0);
	mcb_statcache_close(c);
	mcb_buf_release(&text);
}

/* Write body plus a correct checksum line to path. */
static void write_signed(const char *path, const char *body)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_digest sum;
	char hex[MCB_HEX_LEN + 1];

	mcb_buf_adds(&b, body);
	mcb_sha256(body, strlen(body), &sum);
	mcb_digest_hex(&sum, hex);
	mcb_buf_printf(&b, "sha256 %s\n", hex);
	mcbt_write(path, b.data, b.len);
	mcb_buf_release(&b);
}

/* Copy fmt to out with $H replaced by hex and $h by hex less its last digit. */
static void expand(char *out, size_t n, const char *fmt, const char *hex)
{
	size_t len = 0, k;

	for (; *fmt && len + MCB_HEX_LEN + 1 < n; fmt++) {
		if (fmt[0] == '$' && (fmt[1] == 'H' || fmt[1] == 'h')) {
			k = fmt[1] == 'H' ? MCB_HEX_LEN : MCB_HEX_LEN - 1;
			memcpy(out + len, hex, k);
			len += k;
			fmt++;
		} else {
			out[len++] = *fmt;
		}
	}
	out[len] = '\0';
}

static void test_corrupt(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096], line[8192];
	struct mcb_buf good = MCB_BUF_INIT, bad = MCB_BUF_INIT;
	struct mcb_statcache *c;
	struct mcb_digest d;
	struct mcb_errctx e;
	const char *hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	unsigned i;
	static const char *const lines[] = {
		"1 2 3 4 5 $H relative/path\n",
		"1 2 3 4 5 $H \n",
		"1 2 3 4 5 $H\n",
		"01 2 3 4 5 $H /x\n",
		"-1 2 3 4 5 $H /x\n",
		"1 -0 3 4 5 $H /x\n",
		"1 2 3 4 9223372036854775808 $H /x\n",
		"18446744073709551616 2 3 4 5 $H /x\n",
		"1 2 3 4 5 $h /x\n",
		"1  2 3 4 5 $H /x\n",
		"1 2 3 4 5 $H /x\n1 2 3 4 5 $H /x\n",
		"x\n",
	};

	snprintf(file, sizeof(file), "%s/f", dir);
	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	mcbt_write(file, "content", 7);
	set_mtime(file, 10, 0);
	c = open_cache(cache, 0);
	digest_of(c, file, &d);
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);
	CHECK_OK(mcb_os_read_file(cache, 1 << 20, &good, &e), &e);

	/* Flipped byte, truncation, appended junk: warning, empty, rehash. */
	for (i = 0; i < good.len; i += 13) {
		mcb_buf_reset(&bad);
		mcb_buf_add(&bad, good.data, good.len);
		bad.data[i] ^= 0x02;
		mcbt_write(cache, bad.data, bad.len);
		c = open_cache(cache, 1);
		digest_of(c, file, &d);
		CHECK_EQ(mcb_statcache_hashed(c), 1);
		mcb_statcache_close(c);
	}
	for (i = 0; i < good.len; i += 17) {
		mcbt_write(cache, good.data, i);
		c = open_cache(cache, 1);
		mcb_statcache_close(c);
	}
	mcb_buf_reset(&bad);
	mcb_buf_add(&bad, good.data, good.len);
	mcb_buf_adds(&bad, "more\n");
	mcbt_write(cache, bad.data, bad.len);
	c = open_cache(cache, 1);
	mcb_statcache_close(c);

	/* Well-signed but malformed contents. */
	write_signed(cache, "mcbuild-statcache 2\n");
	c = open_cache(cache, 1);
	mcb_statcache_close(c);
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		char body[9000];

		expand(line, sizeof(line), lines[i], hex64);
		snprintf(body, sizeof(body), "mcbuild-statcache 1\n%s", line);
		write_signed(cache, body);
		c = open_cache(cache, 1);
		mcb_statcache_close(c);
	}
	/* A well-formed file is accepted, and a corrupt one is replaced on save. */
	write_signed(cache, "mcbuild-statcache 1\n");
	c = open_cache(cache, 0);
	mcb_statcache_close(c);
	mcbt_write(cache, "garbage", 7);
	c = open_cache(cache, 1);
	digest_of(c, file, &d);
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);
	c = open_cache(cache, 0);
	digest_of(c, file, &d);
	CHECK_EQ(mcb_statcache_hashed(c), 0);
	mcb_statcache_close(c);
	mcb_buf_release(&good);
	mcb_buf_release(&bad);
}

/* Many files: the table grows and every entry survives a save. */
static void test_many(void)
{
	const char *dir = mcbt_tmpdir();
	char file[4096], cache[4096];
	struct mcb_statcache *c;
	struct mcb_digest d;
	struct mcb_errctx e;
	int i;

	snprintf(cache, sizeof(cache), "%s/statcache", dir);
	c = open_cache(cache, 0);
	for (i = 0; i < 300; i++) {
		snprintf(file, sizeof(file), "%s/f%d", dir, i);
		mcbt_write(file, file, strlen(file));
		set_mtime(file, 10, 0);
		digest_of(c, file, &d);
	}
	CHECK_EQ(mcb_statcache_hashed(c), 300);
	CHECK_OK(mcb_statcache_save(c, &e), &e);
	mcb_statcache_close(c);
	c = open_cache(cache, 0);
	for (i = 299; i >= 0; i--) {
		snprintf(file, sizeof(file), "%s/f%d", dir, i);
		digest_of(c, file, &d);
	}
	CHECK_EQ(mcb_statcache_hashed(c), 0);
	mcb_statcache_close(c);
}

int main(void)
{
	RUN(test_hit);
	RUN(test_same_size_same_mtime);
	RUN(test_racy);
	RUN(test_errors);
	RUN(test_drop_deleted);
	RUN(test_corrupt);
	RUN(test_many);
	return mcbt_done();
}
