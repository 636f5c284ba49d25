/* Unit tests for cache/stamp.c: keys, changed and missing files, the trust
 * rule, and corrupt or hostile stamp files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/stamp.h"

#define SEC 1000000000LL

struct ws {
	char a[4096], b[4096], stamp[4096];
};

static void setup(struct ws *w)
{
	const char *dir = mcbt_tmpdir();

	snprintf(w->a, sizeof(w->a), "%s/recipe.yaml", dir);
	snprintf(w->b, sizeof(w->b), "%s/model bin", dir); /* a space in the path */
	snprintf(w->stamp, sizeof(w->stamp), "%s/noop", dir);
	mcbt_write(w->a, "models: {}\n", 11);
	mcbt_write(w->b, "weights", 7);
}

/* path as the stamp writes it: relative to the current directory when under it. */
static const char *rel(const char *path)
{
	static char cwd[4096];
	size_t n;

	if (!getcwd(cwd, sizeof(cwd) - 1))
		return path;
	n = strlen(cwd);
	return !strncmp(path, cwd, n) && path[n] == '/' ? path + n + 1 : path;
}

static struct mcb_stamp *begin(const char *word)
{
	const char *words[2] = {"/ws", word};
	struct mcb_stamp *s = mcb_stamp_begin(words, 2);

	CHECK(s != NULL);
	return s;
}

/* Record files a and b in a stamp for word, as if the run began 2 s from
 * now (so that the files just written count as old), and save it. */
static void write_stamp(struct ws *w, const char *word)
{
	struct mcb_stamp *s = begin(word);
	struct mcb_errctx e;
	char why[512] = "";
	int written = -1;

	mcb_stamp_set_start(s, mcb_os_wall_ns() + 2 * SEC);
	mcb_stamp_add(s, w->a);
	mcb_stamp_add(s, w->b);
	mcb_stamp_add(s, w->a); /* repeats count once */
	CHECK_EQ(mcb_stamp_count(s), 2);
	CHECK_OK(mcb_stamp_save(s, w->stamp, &written, why, sizeof(why), &e), &e);
	CHECK_EQ(written, 1);
	mcb_stamp_free(s);
}

/* Check the stamp for word; returns the answer, why[] filled. */
static int check(struct ws *w, const char *word, char *why, size_t nwhy)
{
	struct mcb_stamp *s = begin(word);
	size_t n = 99;
	int ok;

	why[0] = '\0';
	ok = mcb_stamp_check(s, w->stamp, &n, why, nwhy);
	if (ok)
		CHECK_EQ(n, 2);
	else
		CHECK(why[0] != '\0');
	mcb_stamp_free(s);
	return ok;
}

static void test_roundtrip_and_key(void)
{
	struct ws w;
	char why[512];

	setup(&w);
	CHECK(!check(&w, "targets/a", why, sizeof(why)));
	CHECK_STR(why, "there is none");
	write_stamp(&w, "targets/a");
	CHECK(check(&w, "targets/a", why, sizeof(why)));
	CHECK(check(&w, "targets/a", why, sizeof(why))); /* checking changes nothing */
	CHECK(!check(&w, "targets/b", why, sizeof(why)));
	CHECK_STR(why, "it was written for another command line, binary or host");
	/* words are length-prefixed: "ab" + "c" is not "a" + "bc" */
	{
		const char *w1[2] = {"ab", "c"}, *w2[2] = {"a", "bc"};
		struct mcb_stamp *s1 = mcb_stamp_begin(w1, 2), *s2 = mcb_stamp_begin(w2, 2);
		struct mcb_errctx e;
		int written;

		mcb_stamp_set_start(s1, mcb_os_wall_ns() + 2 * SEC);
		CHECK_OK(mcb_stamp_save(s1, w.stamp, &written, why, sizeof(why), &e), &e);
		CHECK_EQ(written, 1);
		CHECK(!mcb_stamp_check(s2, w.stamp, &(size_t){0}, why, sizeof(why)));
		CHECK(mcb_stamp_check(s1, w.stamp, &(size_t){0}, why, sizeof(why)));
		mcb_stamp_free(s1);
		mcb_stamp_free(s2);
	}
}

static void test_changes(void)
{
	struct ws w;
	char why[512], want[4200];

	setup(&w);
	write_stamp(&w, "t");
	/* same bytes rewritten a clock tick later (file times come from a
	 * coarse clock; the trust rule covers rewrites within one tick): the
	 * identity changes, and a full check decides */
	usleep(30000);
	mcbt_write(w.a, "models: {}\n", 11);
	CHECK(!check(&w, "t", why, sizeof(why)));
	snprintf(want, sizeof(want), "%s changed", rel(w.a));
	CHECK_STR(why, want);

	write_stamp(&w, "t");
	CHECK(check(&w, "t", why, sizeof(why)));
	CHECK(unlink(w.b) == 0);
	CHECK(!check(&w, "t", why, sizeof(why)));
	snprintf(want, sizeof(want), "%s is missing", rel(w.b));
	CHECK_STR(why, want);

	/* replaced by another file of the same size */
	mcbt_write(w.b, "weights", 7);
	write_stamp(&w, "t");
	{
		char tmp[4200];

		snprintf(tmp, sizeof(tmp), "%s.new", w.b);
		mcbt_write(tmp, "WEIGHTS", 7);
		CHECK(rename(tmp, w.b) == 0);
	}
	CHECK(!check(&w, "t", why, sizeof(why)));
}

static void test_trust_rule(void)
{
	struct mcb_stamp *s;
	struct mcb_errctx e;
	struct ws w;
	char why[512], want[4200];
	int written = -1;

	setup(&w);
	write_stamp(&w, "t");
	/* the files were written just now: a run that began now cannot trust
	 * them, writes no stamp and removes the old one */
	s = begin("t");
	mcb_stamp_add(s, w.a);
	CHECK_OK(mcb_stamp_save(s, w.stamp, &written, why, sizeof(why), &e), &e);
	CHECK_EQ(written, 0);
	snprintf(want, sizeof(want), "%s was modified less than 1 s before the build began", rel(w.a));
	CHECK_STR(why, want);
	CHECK(!mcb_os_exists(w.stamp));
	mcb_stamp_free(s);

	/* a missing file spoils it too */
	s = begin("t");
	mcb_stamp_set_start(s, mcb_os_wall_ns() + 2 * SEC);
	mcb_stamp_add(s, w.a);
	CHECK(unlink(w.b) == 0);
	mcb_stamp_add(s, w.b);
	CHECK_OK(mcb_stamp_save(s, w.stamp, &written, why, sizeof(why), &e), &e);
	CHECK_EQ(written, 0);
	snprintf(want, sizeof(want), "%s is missing", rel(w.b));
	CHECK_STR(why, want);
	mcb_stamp_free(s);

	/* and a path that cannot be written down */
	s = begin("t");
	mcb_stamp_set_start(s, mcb_os_wall_ns() + 2 * SEC);
	mcb_stamp_add(s, "a\nb");
	CHECK_OK(mcb_stamp_save(s, w.stamp, &written, why, sizeof(why), &e), &e);
	CHECK_EQ(written, 0);
	mcb_stamp_free(s);
}

/* Replace the stamp's body (between the key line and the checksum) by
 * body, with a correct checksum, and check it is refused as malformed. */
static void hostile_body(struct ws *w, const char *body, size_t n)
{
	struct mcb_buf b = MCB_BUF_INIT, t = MCB_BUF_INIT;
	struct mcb_errctx e;
	char why[512];
	const char *nl;

	CHECK_OK(mcb_os_read_file(w->stamp, 1 << 20, &t, &e), &e);
	nl = strchr(strchr(t.data, '\n') + 1, '\n'); /* end of the key line */
	mcb_buf_add(&b, t.data, (size_t)(nl + 1 - t.data));
	mcb_buf_add(&b, body, n);
	mcb_sum_line_add(&b);
	mcbt_write(w->stamp, b.data, b.len);
	CHECK(!check(w, "t", why, sizeof(why)));
	if (strcmp(why, "the stamp is malformed"))
		mcbt_fail(__FILE__, __LINE__, "body '%.60s': %s", body, why);
	mcb_buf_release(&b);
	mcb_buf_release(&t);
}

static void test_hostile(void)
{
	static const char *const bodies[] = {
		"33188 7 1 2 3 4\n",                     /* no path */
		"33188 7 1 2 3 4 \n",                    /* empty path */
		"033188 7 1 2 3 4 /x\n",                 /* leading zero */
		"+33188 7 1 2 3 4 /x\n",                 /* sign */
		"33188 -7 1 2 3 4 /x\n",                 /* negative size */
		"33188 7 -0 2 3 4 /x\n",                 /* -0 */
		"99999999999 7 1 2 3 4 /x\n",            /* mode beyond 32 bits */
		"33188 18446744073709551616 1 2 3 4 /x\n", /* size overflows */
		"33188 7 9223372036854775808 2 3 4 /x\n",  /* mtime overflows */
		"33188  7 1 2 3 4 /x\n",                 /* two spaces */
		"33188 7 1 2 3 4x /x\n",                 /* junk in a number */
		"\n",                                    /* empty line */
		"33188 7 1 2 3\n",                       /* too few fields */
	};
	struct ws w;
	char why[512];
	size_t i;

	setup(&w);
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		write_stamp(&w, "t");
		hostile_body(&w, bodies[i], strlen(bodies[i]));
	}
	/* a NUL in a path; a path longer than any path */
	write_stamp(&w, "t");
	hostile_body(&w, "33188 7 1 2 3 4 /x\0y\n", 21);
	{
		struct mcb_buf b = MCB_BUF_INIT;

		mcb_buf_adds(&b, "33188 7 1 2 3 4 /");
		for (i = 0; i < 5000; i++)
			mcb_buf_addc(&b, 'x');
		mcb_buf_addc(&b, '\n');
		write_stamp(&w, "t");
		hostile_body(&w, b.data, b.len);
		mcb_buf_release(&b);
	}
	/* a flipped byte, a truncation, an empty file, a directory */
	{
		struct mcb_buf t = MCB_BUF_INIT;
		struct mcb_errctx e;

		write_stamp(&w, "t");
		CHECK_OK(mcb_os_read_file(w.stamp, 1 << 20, &t, &e), &e);
		t.data[30] ^= 1;
		mcbt_write(w.stamp, t.data, t.len);
		CHECK(!check(&w, "t", why, sizeof(why)));
		CHECK_STR(why, "the stamp is unreadable (checksum mismatch)");
		t.data[30] ^= 1;
		mcbt_write(w.stamp, t.data, t.len - 1);
		CHECK(!check(&w, "t", why, sizeof(why)));
		CHECK_STR(why, "the stamp is unreadable (no checksum line at the end)");
		mcbt_write(w.stamp, "", 0);
		CHECK(!check(&w, "t", why, sizeof(why)));
		/* only a header and a checksum: too short for the key line */
		mcb_buf_reset(&t);
		mcb_buf_adds(&t, "mcbuild-noop 1\n");
		mcb_sum_line_add(&t);
		mcbt_write(w.stamp, t.data, t.len);
		CHECK(!check(&w, "t", why, sizeof(why)));
		CHECK_STR(why, "it was written for another command line, binary or host");
		mcb_buf_release(&t);
		CHECK(unlink(w.stamp) == 0);
		CHECK(mkdir(w.stamp, 0755) == 0);
		CHECK(!check(&w, "t", why, sizeof(why)));
		CHECK(rmdir(w.stamp) == 0);
	}
}

int main(void)
{
	RUN(test_roundtrip_and_key);
	RUN(test_changes);
	RUN(test_trust_rule);
	RUN(test_hostile);
	return mcbt_done();
}
