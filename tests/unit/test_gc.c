/* Unit tests for cache/gc.c: what is removed, in which order, what stays;
 * size parsing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/action.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gc.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

#define SEC 1000000000LL

/* Set path's mtime to now - ago seconds. */
static void age(const char *path, long ago)
{
	struct timespec t[2];

	clock_gettime(CLOCK_REALTIME, &t[0]);
	t[0].tv_sec -= ago;
	t[1] = t[0];
	CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

/* A blob of n bytes of value v, aged ago seconds; its digest in *d. */
static void put_blob(struct mcb_store *s, size_t n, int v, long ago, struct mcb_digest *d)
{
	struct mcb_errctx e;
	char *p = malloc(n);

	memset(p, v, n);
	CHECK_OK(mcb_store_put_mem(s, p, n, d, &e), &e);
	age(mcb_store_blob_path(s, d), ago);
	free(p);
}

static int live_first(void *ctx, const char *area, const char *hex)
{
	const struct mcb_digest *d = ctx;
	char want[MCB_HEX_LEN + 1];

	mcb_digest_hex(d, want);
	return !strcmp(area, "cas") && !strcmp(hex, want);
}

static uint64_t file_size(const char *path)
{
	struct mcb_stat st;

	return mcb_os_stat(path, &st, NULL) ? 0 : st.size;
}

static void test_oldest_first_live_kept(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s;
	struct mcb_digest d[4], key;
	struct mcb_action act = {NULL, 0, ""};
	struct mcb_errctx e;
	struct mcb_gc g;
	uint64_t sz[4], total = 0;
	char path[4][4096], entry[4096];
	int i;

	CHECK_OK(mcb_store_open(dir, &s, &e), &e);
	/* blob 0 is the oldest but live; 1, 2, 3 are ever newer, all over an
	 * hour old */
	for (i = 0; i < 4; i++) {
		put_blob(s, 1000 + 100 * (size_t)i, i + 1, (5 - i) * 3600L, &d[i]);
		snprintf(path[i], sizeof(path[i]), "%s", mcb_store_blob_path(s, &d[i]));
		sz[i] = file_size(path[i]);
		CHECK(sz[i] > 0);
		total += sz[i];
	}
	/* an action entry, newest of all */
	mcb_sha256("k", 1, &key);
	CHECK_OK(mcb_ac_put(s, &key, &act, &e), &e);
	{
		struct mcb_arena a;

		mcb_arena_init(&a);
		snprintf(entry, sizeof(entry), "%s", mcb_ac_path(s, &key, &a));
		mcb_arena_release(&a);
	}
	age(entry, 3600 + 60);
	total += file_size(entry);

	/* a limit that only removing blobs 1 and 2 satisfies */
	memset(&g, 0, sizeof(g));
	g.max_bytes = total - sz[1] - sz[2];
	g.live = live_first;
	g.ctx = &d[0];
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.objects, 5);
	CHECK_EQ(g.live_objects, 1);
	CHECK_EQ(g.live_bytes, sz[0]);
	CHECK_EQ(g.bytes, total);
	CHECK_EQ(g.removed, 2);
	CHECK_EQ(g.removed_bytes, sz[1] + sz[2]);
	CHECK(mcb_os_exists(path[0]));
	CHECK(!mcb_os_exists(path[1]));
	CHECK(!mcb_os_exists(path[2]));
	CHECK(mcb_os_exists(path[3]));
	CHECK(mcb_os_exists(entry));

	/* already under the limit: nothing goes */
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.removed, 0);
	CHECK_EQ(g.objects, 3);

	/* limit 0: everything but the live blob; the entry too */
	g.max_bytes = 0;
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.removed, 2);
	CHECK(mcb_os_exists(path[0]));
	CHECK(!mcb_os_exists(path[3]));
	CHECK(!mcb_os_exists(entry));
	{
		struct mcb_buf b = MCB_BUF_INIT;

		CHECK_OK(mcb_store_get_mem(s, &d[0], &b, &e), &e); /* still intact */
		CHECK_EQ(b.len, 1000);
		mcb_buf_release(&b);
	}
	/* no live function: nothing is live; but what was made in the last
	 * hour stays (a build beside gc may be about to read it) */
	g.live = NULL;
	{
		struct mcb_digest fresh;

		put_blob(s, 300, 9, 60, &fresh);
		snprintf(path[1], sizeof(path[1]), "%s", mcb_store_blob_path(s, &fresh));
	}
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.removed, 1);
	CHECK_EQ(g.recent_objects, 1);
	CHECK(!mcb_os_exists(path[0]));
	CHECK(mcb_os_exists(path[1]));
	mcb_store_close(s);
}

static void test_other_files(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s;
	struct mcb_digest d;
	struct mcb_errctx e;
	struct mcb_gc g;
	char blob[4096], p[4200], oldtmp[4200], newtmp[4200], put[4200], q[4200], odd[4200];
	struct mcb_stat st;

	CHECK_OK(mcb_store_open(dir, &s, &e), &e);
	put_blob(s, 500, 7, 10, &d);
	snprintf(blob, sizeof(blob), "%s", mcb_store_blob_path(s, &d));
	snprintf(oldtmp, sizeof(oldtmp), "%s.tmp.123.abc", blob);
	snprintf(newtmp, sizeof(newtmp), "%s.tmp.124.abc", blob);
	snprintf(put, sizeof(put), "%s/cas/.put.tmp.125.abc", dir);
	snprintf(odd, sizeof(odd), "%s/cas/notes.txt", dir);
	mcbt_write(oldtmp, "partial", 7);
	age(oldtmp, 2 * 3600);
	mcbt_write(newtmp, "partial", 7); /* a writer that may still be alive */
	age(newtmp, 600);
	mcbt_write(put, "partial", 7);
	age(put, 2 * 3600);
	mcbt_write(odd, "keep", 4);
	age(odd, 10 * 3600);
	snprintf(q, sizeof(q), "%s/quarantine", dir);
	CHECK(mkdir(q, 0755) == 0 || errno == EEXIST);
	snprintf(p, sizeof(p), "%s/quarantine/cas-ab-cd.1.2.3", dir);
	mcbt_write(p, "bad", 3);

	memset(&g, 0, sizeof(g));
	g.max_bytes = 1 << 30; /* no object needs to go */
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.objects, 1);
	CHECK_EQ(g.removed, 0);
	CHECK_EQ(g.tmp_removed, 2);
	CHECK_EQ(g.quarantine_removed, 1);
	CHECK_EQ(g.other_bytes, 7 + 7 + 3);
	CHECK(mcb_os_exists(blob));
	CHECK(!mcb_os_exists(oldtmp));
	CHECK(mcb_os_exists(newtmp));
	CHECK(!mcb_os_exists(put));
	CHECK(mcb_os_exists(odd));
	CHECK(!mcb_os_exists(p));
	CHECK(mcb_os_stat(q, &st, NULL) == 0); /* the directory stays */

	/* a fan-out directory that is a symbolic link to a directory outside
	 * the cache, and one that is a file: not followed, not an error */
	{
		char root[4200], outside[4200], victim[4300], link[4300], hex62[63];

		memset(hex62, 'a', 62);
		hex62[62] = '\0';
		snprintf(root, sizeof(root), "%s", dir); /* mcbt_tmpdir reuses its buffer */
		snprintf(outside, sizeof(outside), "%s", mcbt_tmpdir());
		snprintf(victim, sizeof(victim), "%s/%s", outside, hex62);
		mcbt_write(victim, "not the cache's", 15);
		age(victim, 10 * 3600);
		snprintf(link, sizeof(link), "%s/cas/ee", root);
		CHECK(symlink(outside, link) == 0);
		snprintf(link, sizeof(link), "%s/ac", root);
		CHECK(mkdir(link, 0755) == 0 || errno == EEXIST);
		snprintf(link, sizeof(link), "%s/ac/ef", root);
		mcbt_write(link, "x", 1);
		g.max_bytes = 0;
		age(blob, 2 * 3600);
		CHECK_OK(mcb_store_gc(s, &g, &e), &e);
		CHECK(mcb_os_exists(victim));
		CHECK(!mcb_os_exists(blob)); /* the real blob, an old one, went */
	}
	mcb_store_close(s);

	/* an empty cache, and one without cas/ or ac/ yet */
	CHECK_OK(mcb_store_open(mcbt_tmpdir(), &s, &e), &e);
	CHECK_OK(mcb_store_gc(s, &g, &e), &e);
	CHECK_EQ(g.objects, 0);
	mcb_store_close(s);
}

static void test_parse_size(void)
{
	static const struct {
		const char *s;
		uint64_t want;
	} ok[] = {
		{"0", 0},
		{"1", 1},
		{"100B", 100},
		{"1K", 1000},
		{"1KB", 1000},
		{"500M", 500000000},
		{"20G", 20000000000ull},
		{"1.5T", 1500000000000ull},
		{"1KiB", 1024},
		{"2Mi", 2u << 20},
		{"1.5TiB", 3ull << 39},
		{"0.5G", 500000000},
		{"1.0000000000000000000000001K", 1000},
		{"8589934592Gi", 1ull << 63},
	};
	static const char *const bad[] = {
		"", "G", "-1", "+1", "1.", ".5", "1 G", "1g", "1GG", "1GiBB", "1B5", "1KiX", "x",
		"1e9", "9223372036854775809", "8589934593Gi", "99999999999999999999999T",
	};
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 12345;
		if (mcb_parse_size(ok[i].s, &v) < 0 || v != ok[i].want)
			mcbt_fail(__FILE__, __LINE__, "'%s' -> %llu, want %llu", ok[i].s,
				  (unsigned long long)v, (unsigned long long)ok[i].want);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mcb_parse_size(bad[i], &v) == 0)
			mcbt_fail(__FILE__, __LINE__, "'%s' accepted as %llu", bad[i],
				  (unsigned long long)v);
}

int main(void)
{
	RUN(test_oldest_first_live_kept);
	RUN(test_other_files);
	RUN(test_parse_size);
	return mcbt_done();
}
