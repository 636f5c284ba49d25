/* Unit tests for cache/store.c: round trips, corruption, concurrency. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zstd.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

/* Deterministic incompressible bytes (xorshift64). */
static void fill_random(unsigned char *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
	size_t i;

	for (i = 0; i < n; i++) {
		if (i % 8 == 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = (unsigned char)(x >> (8 * (i % 8)));
	}
}

static struct mcb_store *open_store(const char *dir)
{
	struct mcb_errctx e;
	struct mcb_store *s = NULL;

	CHECK_OK(mcb_store_open(dir, &s, &e), &e);
	return s;
}

/* Number of entries in dir/sub, not counting "." and "..". */
static int count_dir(const char *dir, const char *sub)
{
	char path[4096];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	dp = opendir(path);
	if (!dp)
		return -1;
	while ((d = readdir(dp)))
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

/* Number of files whose name contains ".tmp." anywhere under dir. */
static int count_tmp(const char *dir)
{
	char path[4096];
	struct dirent *d;
	struct stat st;
	DIR *dp = opendir(dir);
	int n = 0;

	if (!dp)
		return 0;
	while ((d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (strstr(d->d_name, ".tmp."))
			n++;
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_tmp(path);
	}
	closedir(dp);
	return n;
}

static void read_whole(const char *path, struct mcb_buf *b)
{
	struct mcb_errctx e;

	mcb_buf_reset(b);
	CHECK_OK(mcb_os_read_file(path, (size_t)1 << 30, b, &e), &e);
}

/* Replace the (read-only) file at path by n bytes at p. */
static void overwrite(const char *path, const void *p, size_t n)
{
	chmod(path, 0644);
	mcbt_write(path, p, n);
}

/* put_mem p, get_mem and get_file it back, check content and digest. */
static void roundtrip(struct mcb_store *s, const char *dir, const void *p, size_t n)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d, d2, want;
	char src[4096], dst[4096];
	uint64_t size = 1;

	mcb_sha256(p, n, &want);
	CHECK_OK(mcb_store_put_mem(s, p, n, &d, &e), &e);
	CHECK(mcb_digest_eq(&d, &want));
	CHECK(mcb_store_has(s, &d));
	mcb_buf_adds(&b, "prefix");
	CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
	CHECK_EQ(b.len, n + 6);
	CHECK(memcmp(b.data, "prefix", 6) == 0);
	CHECK(n == 0 || memcmp(b.data + 6, p, n) == 0);
	CHECK_EQ(b.data[b.len], 0);

	snprintf(dst, sizeof(dst), "%s/out.bin", dir);
	CHECK_OK(mcb_store_get_file(s, &d, dst, &e), &e);
	read_whole(dst, &b);
	CHECK_EQ(b.len, n);
	CHECK(n == 0 || memcmp(b.data, p, n) == 0);

	/* put_file of the same bytes names the same blob (already present). */
	snprintf(src, sizeof(src), "%s/in.bin", dir);
	mcbt_write(src, p, n);
	CHECK_OK(mcb_store_put_file(s, src, &d2, &size, &e), &e);
	CHECK(mcb_digest_eq(&d2, &want));
	CHECK_EQ(size, n);
	CHECK_EQ(count_tmp(dir), 0);
	mcb_buf_release(&b);
}

static void test_roundtrip(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	size_t big = 10 << 20;
	unsigned char *p = malloc(big);
	struct mcb_buf b = MCB_BUF_INIT;
	struct stat st;
	struct mcb_digest d;
	struct mcb_errctx e;
	size_t i;

	roundtrip(s, dir, "", 0);
	roundtrip(s, dir, "hello, cache\n", 13);
	fill_random(p, big, 1);
	roundtrip(s, dir, p, big);
	for (i = 0; i < big; i++)
		p[i] = (unsigned char)("abcdefgh"[i % 8] + (i >> 20));
	roundtrip(s, dir, p, big);
	mcb_sha256(p, big, &d);
	CHECK(stat(mcb_store_blob_path(s, &d), &st) == 0);
	CHECK(st.st_size < (off_t)(big / 100)); /* compressed */
	CHECK_EQ(st.st_mode & 0777, 0444);

	/* The blob name is cas/ab/<62 hex> under the cache root. */
	{
		char hex[MCB_HEX_LEN + 1], want[4096];

		mcb_digest_hex(&d, hex);
		snprintf(want, sizeof(want), "%s/cas/%.2s/%s", dir, hex, hex + 2);
		CHECK_STR(mcb_store_blob_path(s, &d), want);
	}
	/* Blob written by put_file first (not present before). */
	{
		char src[4096];
		struct mcb_digest d2;
		uint64_t size;

		fill_random(p, 3 << 20, 7);
		snprintf(src, sizeof(src), "%s/fresh.bin", dir);
		mcbt_write(src, p, 3 << 20);
		mcb_sha256(p, 3 << 20, &d);
		CHECK(!mcb_store_has(s, &d));
		CHECK_OK(mcb_store_put_file(s, src, &d2, &size, &e), &e);
		CHECK(mcb_digest_eq(&d, &d2));
		CHECK(mcb_store_has(s, &d));
		CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
		CHECK_EQ(b.len, 3 << 20);
		CHECK(memcmp(b.data, p, 3 << 20) == 0);
	}
	CHECK_EQ(count_tmp(dir), 0);
	CHECK_EQ(count_dir(dir, "quarantine"), 0);
	mcb_buf_release(&b);
	free(p);
	mcb_store_close(s);
}

static void test_open(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = NULL;
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	char path[4096], sub[4096];

	snprintf(sub, sizeof(sub), "%s/c/", dir);
	CHECK_OK(mcb_store_open(sub, &s, &e), &e);
	snprintf(path, sizeof(path), "%s/c", dir);
	CHECK_STR(mcb_store_dir(s), path);
	mcb_store_close(s);
	snprintf(path, sizeof(path), "%s/c/VERSION", dir);
	read_whole(path, &b);
	CHECK_STR(b.data, "mcbuild-cache 1\n");
	CHECK_EQ(count_dir(sub, "cas"), 0);
	CHECK_EQ(count_dir(sub, "ac"), 0);
	CHECK_EQ(count_dir(sub, "quarantine"), 0);
	/* Reopening is fine. */
	CHECK_OK(mcb_store_open(sub, &s, &e), &e);
	mcb_store_close(s);

	mcbt_write(path, "mcbuild-cache 2\n", 16);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EUNSUP, "format version 2");
	CHECK(s == NULL);
	mcbt_write(path, "mcbuild-cache 01\n", 17);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EFORMAT, "not an mcbuild cache");
	mcbt_write(path, "hello\n", 6);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EFORMAT, "not an mcbuild cache");
	mcbt_write(path, "", 0);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EFORMAT, "not an mcbuild cache");
	mcbt_write(path, "mcbuild-cache 99999999999999999999999\n", 38);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EFORMAT, "not an mcbuild cache");

	/* A non-empty directory without VERSION is not taken over. */
	snprintf(sub, sizeof(sub), "%s/home", dir);
	mkdir(sub, 0777);
	snprintf(path, sizeof(path), "%s/home/notes.txt", dir);
	mcbt_write(path, "x", 1);
	CHECK_ERR(mcb_store_open(sub, &s, &e), &e, MCB_EINVAL, "not an mcbuild cache");
	CHECK_EQ(count_dir(sub, ""), 1);

	CHECK_ERR(mcb_store_open("", &s, &e), &e, MCB_EINVAL, "empty");
	mcb_buf_release(&b);
}

static void test_missing(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d, d2;
	char dst[4096], src[4096];
	uint64_t size;

	mcb_sha256("absent", 6, &d);
	CHECK(!mcb_store_has(s, &d));
	CHECK_ERR(mcb_store_get_mem(s, &d, &b, &e), &e, MCB_ENOENT, "not found");
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	mcbt_write(dst, "keep", 4);
	CHECK_ERR(mcb_store_get_file(s, &d, dst, &e), &e, MCB_ENOENT, "not found");
	read_whole(dst, &b);
	CHECK_STR(b.data, "keep");
	CHECK_EQ(count_tmp(dir), 0);

	snprintf(src, sizeof(src), "%s/nope", dir);
	CHECK_ERR(mcb_store_put_file(s, src, &d2, &size, &e), &e, MCB_ENOENT, "nope");
	CHECK_ERR(mcb_store_put_file(s, dir, &d2, &size, &e), &e, MCB_EINVAL, "not a regular file");
	CHECK_EQ(count_tmp(dir), 0);
	mcb_buf_release(&b);
	mcb_store_close(s);
}

/* Compress p with explicit zstd settings (for hand-made bad blobs). */
static size_t zframe(void *dst, size_t cap, const void *p, size_t n, int checksum, int pledge)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_inBuffer in = {p, n, 0};
	ZSTD_outBuffer out = {dst, cap, 0};
	size_t r;

	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum);
	if (pledge)
		ZSTD_CCtx_setPledgedSrcSize(c, n);
	else
		ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	do
		r = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
	while (r != 0 && !ZSTD_isError(r));
	ZSTD_freeCCtx(c);
	return ZSTD_isError(r) ? 0 : out.pos;
}

/*
 * Put content, damage its blob file to the bytes bad[0..nbad), and check
 * that get_mem and get_file both report corruption mentioning sub, that the
 * file went to quarantine/, and that a new put restores it.
 */
static void expect_corrupt(struct mcb_store *s, const char *dir, const void *content, size_t n,
			   const void *bad, size_t nbad, const char *sub)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d;
	char dst[4096];
	int q0 = count_dir(dir, "quarantine");

	CHECK_OK(mcb_store_put_mem(s, content, n, &d, &e), &e);
	overwrite(mcb_store_blob_path(s, &d), bad, nbad);
	mcb_buf_adds(&b, "kept");
	CHECK_ERR(mcb_store_get_mem(s, &d, &b, &e), &e, MCB_ECORRUPT, sub);
	if (getenv("MCBT_VERBOSE"))
		fprintf(stderr, "  %s\n", e.msg);
	CHECK(strstr(e.msg, "moved to quarantine/cas-") != NULL);
	CHECK(strstr(e.msg, "is corrupt") != NULL);
	CHECK_STR(b.data, "kept");
	CHECK_EQ(b.len, 4);
	CHECK(!mcb_store_has(s, &d));
	CHECK_EQ(count_dir(dir, "quarantine"), q0 + 1);
	/* Still missing: a miss, not corruption. */
	CHECK_ERR(mcb_store_get_mem(s, &d, &b, &e), &e, MCB_ENOENT, "not found");

	/* get_file leaves dst alone. */
	CHECK_OK(mcb_store_put_mem(s, content, n, &d, &e), &e);
	overwrite(mcb_store_blob_path(s, &d), bad, nbad);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	mcbt_write(dst, "old", 3);
	CHECK_ERR(mcb_store_get_file(s, &d, dst, &e), &e, MCB_ECORRUPT, sub);
	mcb_buf_reset(&b);
	read_whole(dst, &b);
	CHECK_STR(b.data, "old");
	CHECK_EQ(count_dir(dir, "quarantine"), q0 + 2);

	/* A later put of the right content restores it. */
	CHECK_OK(mcb_store_put_mem(s, content, n, &d, &e), &e);
	mcb_buf_reset(&b);
	CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
	CHECK_EQ(b.len, n);
	CHECK(n == 0 || memcmp(b.data, content, n) == 0);
	CHECK_EQ(count_tmp(dir), 0);
	mcb_buf_release(&b);
}

static void test_corrupt(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	size_t n = 300000, len, cut[] = {0, 1, 4, 5, 9, 20, 1000}, i;
	unsigned char *content = malloc(n), *bad = malloc(2 * n + 100), *other = malloc(n);
	struct mcb_buf blob = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d;

	fill_random(content, n, 3);
	for (i = 0; i < n / 2; i++)
		content[i] = (unsigned char)(i % 7); /* half compressible */
	CHECK_OK(mcb_store_put_mem(s, content, n, &d, &e), &e);
	read_whole(mcb_store_blob_path(s, &d), &blob);
	len = blob.len;
	CHECK(len > 1000);

	/* One flipped byte in the middle. */
	memcpy(bad, blob.data, len);
	bad[len / 2] ^= 0x40;
	expect_corrupt(s, dir, content, n, bad, len, "zstd");

	/* Truncations, including to nothing and to just before the end. */
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
		expect_corrupt(s, dir, content, n, blob.data, cut[i], "(");
	expect_corrupt(s, dir, content, n, blob.data, len / 2, "truncated");
	expect_corrupt(s, dir, content, n, blob.data, len - 1, "(");
	expect_corrupt(s, dir, content, n, blob.data, len - 4, "(");
	expect_corrupt(s, dir, content, n, blob.data, 0, "empty file");

	/* A valid frame of other content (same size, checksummed). */
	memcpy(other, content, n);
	other[n - 1] ^= 1;
	len = zframe(bad, 2 * n + 100, other, n, 1, 1);
	CHECK(len > 0);
	expect_corrupt(s, dir, content, n, bad, len, "hashes to");

	/* Trailing garbage, or a second frame. */
	memcpy(bad, blob.data, blob.len);
	memcpy(bad + blob.len, "garbage", 7);
	expect_corrupt(s, dir, content, n, bad, blob.len + 7, "data after the zstd frame");
	len = zframe(bad + blob.len, n + 100, "x", 1, 1, 1);
	expect_corrupt(s, dir, content, n, bad, blob.len + len, "data after the zstd frame");

	/* Frames we never write: no checksum, no content size. */
	len = zframe(bad, 2 * n + 100, content, n, 0, 1);
	expect_corrupt(s, dir, content, n, bad, len, "no content checksum");
	len = zframe(bad, 2 * n + 100, content, n, 1, 0);
	expect_corrupt(s, dir, content, n, bad, len, "does not declare its content size");

	/* Not zstd at all. */
	fill_random(bad, 5000, 9);
	expect_corrupt(s, dir, content, n, bad, 5000, "not a zstd frame");

	/* A header declaring 2 TiB: refused before anything is allocated. */
	{
		static const unsigned char huge[] = {
			0x28, 0xb5, 0x2f, 0xfd, /* magic */
			0xc4,                   /* 8-byte content size, checksum */
			0x50,                   /* window descriptor */
			0, 0, 0, 0, 0, 2, 0, 0, /* content size 2^41 */
			0x01, 0x00, 0x00,       /* last raw block, 0 bytes */
		};

		expect_corrupt(s, dir, content, n, huge, sizeof(huge), "more than the");
	}
	/* A frame declaring one byte less or more than it holds. */
	for (i = 0; i < 2; i++) {
		size_t m = zframe(bad, 2 * n + 100, content, n, 1, 1);
		unsigned fhd = bad[4], at = (fhd & 0x20) ? 5 : 6; /* single segment: no window byte */

		CHECK(m > 0 && (fhd >> 6) == 2); /* 4-byte content size field */
		bad[at] = (unsigned char)(bad[at] + (i ? 1 : -1));
		expect_corrupt(s, dir, content, n, bad, m, "(");
	}
	CHECK_EQ(count_tmp(dir), 0);
	mcb_buf_release(&blob);
	free(content);
	free(bad);
	free(other);
	mcb_store_close(s);
}

/* A blob replaced by a symbolic link or a directory is corrupt, not followed. */
static void test_not_a_file(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d;
	const char *path;
	char target[4096];

	CHECK_OK(mcb_store_put_mem(s, "abc", 3, &d, &e), &e);
	path = mcb_store_blob_path(s, &d);
	unlink(path);
	snprintf(target, sizeof(target), "%s/VERSION", dir);
	CHECK(symlink(target, path) == 0);
	CHECK(!mcb_store_has(s, &d));
	CHECK_ERR(mcb_store_get_mem(s, &d, &b, &e), &e, MCB_ECORRUPT, "symbolic link");
	CHECK_EQ(count_dir(dir, "quarantine"), 1);
	CHECK(mcb_os_exists(target));

	CHECK_OK(mcb_store_put_mem(s, "abc", 3, &d, &e), &e);
	path = mcb_store_blob_path(s, &d);
	unlink(path);
	CHECK(mkdir(path, 0777) == 0);
	CHECK_ERR(mcb_store_get_mem(s, &d, &b, &e), &e, MCB_ECORRUPT, "not a regular file");
	CHECK_EQ(count_dir(dir, "quarantine"), 2);
	CHECK_OK(mcb_store_put_mem(s, "abc", 3, &d, &e), &e);
	CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
	CHECK_STR(b.data, "abc");
	mcb_buf_release(&b);
	mcb_store_close(s);
}

/* Random single-byte damage anywhere in a blob never yields wrong content. */
static void test_fuzz(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf blob = MCB_BUF_INIT, b = MCB_BUF_INIT;
	unsigned char content[20000], *bad;
	struct mcb_errctx e;
	struct mcb_digest d;
	uint64_t x = 12345;
	int i, rc, ok = 0, corrupt = 0;

	for (i = 0; i < (int)sizeof(content); i++)
		content[i] = (unsigned char)((i * 7) ^ (i >> 5));
	CHECK_OK(mcb_store_put_mem(s, content, sizeof(content), &d, &e), &e);
	read_whole(mcb_store_blob_path(s, &d), &blob);
	bad = malloc(blob.len + 8);
	for (i = 0; i < 200; i++) {
		size_t len = blob.len;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(bad, blob.data, blob.len);
		bad[x % len] ^= (unsigned char)(1 + (x >> 32) % 255);
		if (i % 3 == 0)
			len = (size_t)(x >> 40) % (blob.len + 1);
		overwrite(mcb_store_blob_path(s, &d), bad, len);
		mcb_buf_reset(&b);
		rc = mcb_store_get_mem(s, &d, &b, &e);
		if (rc == 0) {
			ok++;
			CHECK_EQ(b.len, sizeof(content));
			CHECK(memcmp(b.data, content, sizeof(content)) == 0);
		} else {
			CHECK_EQ(rc, MCB_ECORRUPT);
			corrupt++;
			CHECK_OK(mcb_store_put_mem(s, content, sizeof(content), &d, &e), &e);
		}
	}
	CHECK(corrupt > 130);
	CHECK_EQ(ok + corrupt, 200);
	free(bad);
	mcb_buf_release(&blob);
	mcb_buf_release(&b);
	mcb_store_close(s);
}

#define NPROC 8
#define SHARED_SIZE (4 << 20)

/* One of the concurrent processes: returns the number of failures. */
static int worker(const char *dir, int id, const unsigned char *shared, const struct mcb_digest *sd)
{
	struct mcb_store *s = NULL;
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d;
	unsigned char *own = malloc(1 << 20);
	char path[4096];
	int round, fails = 0, rc, other;

	if (mcb_store_open(dir, &s, &e)) {
		fprintf(stderr, "worker %d: %s\n", id, e.msg);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/src.%d", dir, id);
	mcbt_write(path, shared, SHARED_SIZE);
	for (round = 0; round < 6; round++) {
		if ((round + id) % 2)
			rc = mcb_store_put_mem(s, shared, SHARED_SIZE, &d, &e);
		else
			rc = mcb_store_put_file(s, path, &d, NULL, &e);
		if (rc || !mcb_digest_eq(&d, sd)) {
			fprintf(stderr, "worker %d: put shared: %s\n", id, e.msg);
			fails++;
		}
		fill_random(own, 1 << 20, (uint64_t)(id * 100 + round));
		if (mcb_store_put_mem(s, own, 1 << 20, &d, &e)) {
			fprintf(stderr, "worker %d: put own: %s\n", id, e.msg);
			fails++;
		}
		mcb_buf_reset(&b);
		rc = mcb_store_get_mem(s, sd, &b, &e);
		if (rc || b.len != SHARED_SIZE || memcmp(b.data, shared, SHARED_SIZE)) {
			fprintf(stderr, "worker %d: get shared: %d %s\n", id, rc, e.msg);
			fails++;
		}
		/* Another worker's blob: present and good, or not there yet. */
		other = (id + 1) % NPROC;
		fill_random(own, 1 << 20, (uint64_t)(other * 100 + round));
		mcb_sha256(own, 1 << 20, &d);
		mcb_buf_reset(&b);
		rc = mcb_store_get_mem(s, &d, &b, &e);
		if (rc == 0 && (b.len != 1 << 20 || memcmp(b.data, own, 1 << 20))) {
			fprintf(stderr, "worker %d: other blob has wrong content\n", id);
			fails++;
		} else if (rc && rc != MCB_ENOENT) {
			fprintf(stderr, "worker %d: get other: %d %s\n", id, rc, e.msg);
			fails++;
		}
	}
	mcb_buf_release(&b);
	free(own);
	mcb_store_close(s);
	return fails;
}

static void test_concurrent(void)
{
	const char *dir = mcbt_tmpdir();
	unsigned char *shared = malloc(SHARED_SIZE), *own = malloc(1 << 20);
	struct mcb_store *s = open_store(dir);
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest sd, d;
	pid_t pid[NPROC];
	int i, round, status;

	fill_random(shared, SHARED_SIZE, 42);
	memset(shared, 'z', SHARED_SIZE / 2);
	mcb_sha256(shared, SHARED_SIZE, &sd);
	fflush(stderr);
	for (i = 0; i < NPROC; i++) {
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0)
			_exit(worker(dir, i, shared, &sd) ? 1 : 0);
	}
	for (i = 0; i < NPROC; i++) {
		CHECK(waitpid(pid[i], &status, 0) == pid[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* Everything is there and verifies; nothing was left behind. */
	CHECK_OK(mcb_store_get_mem(s, &sd, &b, &e), &e);
	CHECK(b.len == SHARED_SIZE && memcmp(b.data, shared, SHARED_SIZE) == 0);
	for (i = 0; i < NPROC; i++)
		for (round = 0; round < 6; round++) {
			fill_random(own, 1 << 20, (uint64_t)(i * 100 + round));
			mcb_sha256(own, 1 << 20, &d);
			mcb_buf_reset(&b);
			CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
		}
	CHECK_EQ(count_tmp(dir), 0);
	CHECK_EQ(count_dir(dir, "quarantine"), 0);
	mcb_buf_release(&b);
	free(shared);
	free(own);
	mcb_store_close(s);
}

/* A writer killed mid-put leaves at most a temporary file, which nothing reads. */
static void test_killed_writer(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	size_t n = 48 << 20;
	unsigned char *p = malloc(n);
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_digest d, d2;
	char src[4096];
	int i, rc, status;
	pid_t pid;

	fill_random(p, n, 5);
	memset(p, 0, n / 3);
	mcb_sha256(p, n, &d);
	snprintf(src, sizeof(src), "%s/big.bin", dir);
	mcbt_write(src, p, n);
	for (i = 0; i < 3; i++) {
		fflush(stderr);
		pid = fork();
		CHECK(pid >= 0);
		if (pid == 0) {
			struct mcb_store *cs = NULL;

			if (mcb_store_open(dir, &cs, &e) == 0)
				for (;;) {
					unlink(mcb_store_blob_path(cs, &d));
					(void)(i % 2 ? mcb_store_put_mem(cs, p, n, &d2, &e)
						     : mcb_store_put_file(cs, src, &d2, NULL, &e));
				}
			_exit(1);
		}
		usleep(30000 + 40000 * i);
		kill(pid, SIGKILL);
		CHECK(waitpid(pid, &status, 0) == pid);
		mcb_buf_reset(&b);
		rc = mcb_store_get_mem(s, &d, &b, &e);
		CHECK(rc == 0 || rc == MCB_ENOENT);
		if (rc == 0)
			CHECK(b.len == n && memcmp(b.data, p, n) == 0);
	}
	CHECK_EQ(count_dir(dir, "quarantine"), 0);
	CHECK_OK(mcb_store_put_file(s, src, &d2, NULL, &e), &e);
	CHECK(mcb_digest_eq(&d, &d2));
	mcb_buf_reset(&b);
	CHECK_OK(mcb_store_get_mem(s, &d, &b, &e), &e);
	mcb_buf_release(&b);
	free(p);
	mcb_store_close(s);
}

/* Processes creating one new cache at the same moment all succeed. */
static void test_concurrent_create(void)
{
	const char *base = mcbt_tmpdir();
	char dir[4096];
	int round, k, status, ok = 1;

	for (round = 0; round < 20 && ok; round++) {
		pid_t pids[6];

		snprintf(dir, sizeof(dir), "%s/c%d", base, round);
		for (k = 0; k < 6; k++) {
			pids[k] = fork();
			if (pids[k] == 0) {
				struct mcb_store *s;
				struct mcb_errctx e;
				int rc = mcb_store_open(dir, &s, &e);

				if (rc)
					fprintf(stderr, "open: %s\n", e.msg);
				else
					mcb_store_close(s);
				_exit(rc ? 1 : 0);
			}
		}
		for (k = 0; k < 6; k++) {
			waitpid(pids[k], &status, 0);
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				ok = 0;
		}
	}
	CHECK(ok);
}

int main(void)
{
	RUN(test_open);
	RUN(test_concurrent_create);
	RUN(test_roundtrip);
	RUN(test_missing);
	RUN(test_corrupt);
	RUN(test_not_a_file);
	RUN(test_fuzz);
	RUN(test_concurrent);
	RUN(test_killed_writer);
	return mcbt_done();
}
