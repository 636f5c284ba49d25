/* Unit tests for cache/action.c: round trips, corrupt and hostile entries. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/action.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

static struct mcb_store *open_store(const char *dir)
{
	struct mcb_errctx e;
	struct mcb_store *s = NULL;

	CHECK_OK(mcb_store_open(dir, &s, &e), &e);
	return s;
}

static int count_quarantine(const char *dir)
{
	char path[4096];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/quarantine", dir);
	dp = opendir(path);
	if (!dp)
		return -1;
	while ((d = readdir(dp)))
		if (d->d_name[0] != '.')
			n++;
	closedir(dp);
	return n;
}

static const char *entry_file(const char *dir, const struct mcb_digest *key)
{
	static char path[4096];
	char hex[MCB_HEX_LEN + 1];

	mcb_digest_hex(key, hex);
	snprintf(path, sizeof(path), "%s/ac/%.2s/%s", dir, hex, hex + 2);
	return path;
}

/* Write raw bytes as the entry for key. */
static void write_entry(const char *dir, const struct mcb_digest *key, const void *p, size_t n)
{
	const char *path = entry_file(dir, key);
	char sub[4096];

	snprintf(sub, sizeof(sub), "%s", path);
	*strrchr(sub, '/') = '\0';
	mkdir(sub, 0777);
	chmod(path, 0644);
	mcbt_write(path, p, n);
}

/* Write body followed by a correct checksum line as the entry for key. */
static void write_signed(const char *dir, const struct mcb_digest *key, const char *body,
			 size_t n)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_digest sum;
	char hex[MCB_HEX_LEN + 1];

	mcb_buf_add(&b, body, n);
	mcb_sha256(body, n, &sum);
	mcb_digest_hex(&sum, hex);
	mcb_buf_printf(&b, "sha256 %s\n", hex);
	write_entry(dir, key, b.data, b.len);
	mcb_buf_release(&b);
}

static void test_roundtrip(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_action_output o[3];
	struct mcb_action act, got;
	struct mcb_arena a;
	struct mcb_errctx e;
	struct mcb_digest key, key2;
	const char *log = "step log\nwith lines\noutput fake 00 1\nlog 3\n\n";
	struct stat st;

	mcb_arena_init(&a);
	CHECK_OK(mcb_store_put_mem(s, "weights", 7, &o[0].digest, &e), &e);
	CHECK_OK(mcb_store_put_mem(s, "report", 6, &o[1].digest, &e), &e);
	CHECK_OK(mcb_store_put_mem(s, "", 0, &o[2].digest, &e), &e);
	o[0].name = "model.gguf";
	o[0].size = 7;
	o[1].name = "report.json";
	o[1].size = 6;
	o[2].name = "EMPTY_file-1";
	o[2].size = 0;
	act.out = o;
	act.nout = 3;
	act.log = log;
	mcb_sha256("key1", 4, &key);
	CHECK_ERR(mcb_ac_get(s, &key, &a, &got, &e), &e, MCB_ENOENT, "no action entry");
	CHECK_OK(mcb_ac_put(s, &key, &act, &e), &e);
	CHECK(stat(entry_file(dir, &key), &st) == 0 && (st.st_mode & 0777) == 0444);
	CHECK_OK(mcb_ac_get(s, &key, &a, &got, &e), &e);
	CHECK_EQ(got.nout, 3);
	if (got.nout == 3) {
		int i;

		for (i = 0; i < 3; i++) {
			CHECK_STR(got.out[i].name, o[i].name);
			CHECK(mcb_digest_eq(&got.out[i].digest, &o[i].digest));
			CHECK_EQ(got.out[i].size, o[i].size);
		}
	}
	CHECK_STR(got.log, log);

	/* No outputs, no log; replacing an entry. */
	act.nout = 0;
	act.log = NULL;
	mcb_sha256("key2", 4, &key2);
	CHECK_OK(mcb_ac_put(s, &key2, &act, &e), &e);
	CHECK_OK(mcb_ac_get(s, &key2, &a, &got, &e), &e);
	CHECK_EQ(got.nout, 0);
	CHECK_STR(got.log, "");
	act.nout = 1;
	act.log = "second";
	CHECK_OK(mcb_ac_put(s, &key2, &act, &e), &e);
	CHECK_OK(mcb_ac_get(s, &key2, &a, &got, &e), &e);
	CHECK_EQ(got.nout, 1);
	CHECK_STR(got.log, "second");
	CHECK_EQ(count_quarantine(dir), 0);
	mcb_arena_release(&a);
	mcb_store_close(s);
}

static void test_put_checks(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_action_output o[2];
	struct mcb_action act;
	struct mcb_errctx e;
	struct mcb_digest key;
	static const char *const bad[] = {"", ".", "..", "a/b", "a b", "../x", "caf\xc3\xa9", "a\nb"};
	char longname[300];
	unsigned i;

	mcb_sha256("k", 1, &key);
	CHECK_OK(mcb_store_put_mem(s, "x", 1, &o[0].digest, &e), &e);
	o[1].digest = o[0].digest;
	o[0].size = o[1].size = 1;
	act.out = o;
	act.log = "";
	act.nout = 1;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o[0].name = bad[i];
		CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_EINVAL, "bad output name");
	}
	memset(longname, 'a', 256);
	longname[256] = '\0';
	o[0].name = longname;
	CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_EINVAL, "bad output name");
	longname[255] = '\0';
	CHECK_OK(mcb_ac_put(s, &key, &act, &e), &e);

	o[0].name = o[1].name = "same";
	act.nout = 2;
	CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_EINVAL, "listed twice");
	o[1].name = "other";
	o[1].size = MCB_STORE_MAX_BLOB + 1;
	CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_ERANGE, "larger than");
	o[1].size = 1;
	mcb_sha256("not stored", 10, &o[1].digest);
	CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_ENOENT, "not in the store");
	act.nout = MCB_ACTION_MAX_OUTPUTS + 1;
	CHECK_ERR(mcb_ac_put(s, &key, &act, &e), &e, MCB_EINVAL, "at most");
	mcb_store_close(s);
}

/* An entry whose output blob has gone is a miss, and is not quarantined. */
static void test_missing_blob(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_action_output o;
	struct mcb_action act, got;
	struct mcb_arena a;
	struct mcb_errctx e;
	struct mcb_digest key;

	mcb_arena_init(&a);
	mcb_sha256("k", 1, &key);
	CHECK_OK(mcb_store_put_mem(s, "blob", 4, &o.digest, &e), &e);
	o.name = "out.bin";
	o.size = 4;
	act.out = &o;
	act.nout = 1;
	act.log = "";
	CHECK_OK(mcb_ac_put(s, &key, &act, &e), &e);
	CHECK(unlink(mcb_store_blob_path(s, &o.digest)) == 0);
	CHECK_ERR(mcb_ac_get(s, &key, &a, &got, &e), &e, MCB_ENOENT, "is missing");
	CHECK(strstr(e.msg, "'out.bin'") != NULL);
	CHECK_EQ(got.nout, 0);
	CHECK(mcb_os_exists(entry_file(dir, &key)));
	CHECK_EQ(count_quarantine(dir), 0);
	/* Rebuilt: blob back, entry rewritten, hit. */
	CHECK_OK(mcb_store_put_mem(s, "blob", 4, &o.digest, &e), &e);
	CHECK_OK(mcb_ac_put(s, &key, &act, &e), &e);
	CHECK_OK(mcb_ac_get(s, &key, &a, &got, &e), &e);
	mcb_arena_release(&a);
	mcb_store_close(s);
}

/* A valid entry's bytes for key with one output named "o" (blob "x"). */
static void valid_entry(struct mcb_store *s, const char *dir, const struct mcb_digest *key,
			struct mcb_buf *out)
{
	struct mcb_action_output o;
	struct mcb_action act;
	struct mcb_errctx e;

	CHECK_OK(mcb_store_put_mem(s, "x", 1, &o.digest, &e), &e);
	o.name = "o";
	o.size = 1;
	act.out = &o;
	act.nout = 1;
	act.log = "a log\n";
	CHECK_OK(mcb_ac_put(s, key, &act, &e), &e);
	mcb_buf_reset(out);
	CHECK_OK(mcb_os_read_file(entry_file(dir, key), 1 << 20, out, &e), &e);
}

/* get must fail with MCB_ECORRUPT naming sub, and quarantine the entry. */
static void expect_corrupt(struct mcb_store *s, const char *dir, const struct mcb_digest *key,
			   const char *sub, const char *what)
{
	struct mcb_action got;
	struct mcb_arena a;
	struct mcb_errctx e;
	int q0 = count_quarantine(dir), rc;

	mcb_arena_init(&a);
	rc = mcb_ac_get(s, key, &a, &got, &e);
	if (rc != MCB_ECORRUPT || !strstr(e.msg, sub))
		mcbt_fail(__FILE__, __LINE__, "%s: got %d \"%s\", want MCB_ECORRUPT with \"%s\"",
			  what, rc, e.msg, sub);
	else if (getenv("MCBT_VERBOSE"))
		fprintf(stderr, "  %s: %s\n", what, e.msg);
	CHECK(strstr(e.msg, "moved to quarantine/ac-") != NULL);
	CHECK_EQ(count_quarantine(dir), q0 + 1);
	CHECK(!mcb_os_exists(entry_file(dir, key)));
	CHECK_EQ(got.nout, 0);
	mcb_arena_release(&a);
}

static void test_corrupt(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf v = MCB_BUF_INIT, b = MCB_BUF_INIT;
	struct mcb_digest key;
	size_t cut;

	mcb_sha256("k", 1, &key);
	valid_entry(s, dir, &key, &v);
	/* One flipped byte anywhere. */
	for (cut = 0; cut < v.len; cut += 7) {
		mcb_buf_reset(&b);
		mcb_buf_add(&b, v.data, v.len);
		b.data[cut] ^= 0x01;
		write_entry(dir, &key, b.data, b.len);
		expect_corrupt(s, dir, &key, cut < v.len - 72 ? "checksum mismatch" : "(",
			       "flipped byte");
	}
	/* Truncated anywhere, including to nothing. */
	for (cut = 0; cut < v.len; cut += 11) {
		write_entry(dir, &key, v.data, cut);
		expect_corrupt(s, dir, &key, "(", "truncated");
	}
	write_entry(dir, &key, v.data, v.len - 1);
	expect_corrupt(s, dir, &key, "no checksum line", "last newline cut");
	/* Garbage after the checksum line. */
	mcb_buf_reset(&b);
	mcb_buf_add(&b, v.data, v.len);
	mcb_buf_adds(&b, "junk\n");
	write_entry(dir, &key, b.data, b.len);
	expect_corrupt(s, dir, &key, "(", "trailing garbage");
	/* A valid entry for another key, copied here. */
	{
		struct mcb_digest other;

		mcb_sha256("other", 5, &other);
		valid_entry(s, dir, &other, &b);
		write_entry(dir, &key, b.data, b.len);
		expect_corrupt(s, dir, &key, "another action key", "misplaced entry");
	}
	/* Not a regular file. */
	mkdir(entry_file(dir, &key), 0777);
	expect_corrupt(s, dir, &key, "not a regular file", "directory");
	{
		char target[4096];

		snprintf(target, sizeof(target), "%s/target", dir);
		mcbt_write(target, v.data, v.len);
		CHECK(symlink(target, entry_file(dir, &key)) == 0);
		expect_corrupt(s, dir, &key, "not a regular file", "symbolic link");
		CHECK(mcb_os_exists(target));
	}
	/* Too large. */
	{
		size_t n = (size_t)24 << 20;
		char *big = calloc(1, n);

		write_entry(dir, &key, big, n);
		expect_corrupt(s, dir, &key, "larger than", "huge file");
		free(big);
	}
	/* After all that, a put makes it a hit again. */
	valid_entry(s, dir, &key, &b);
	{
		struct mcb_action got;
		struct mcb_arena a;
		struct mcb_errctx e;

		mcb_arena_init(&a);
		CHECK_OK(mcb_ac_get(s, &key, &a, &got, &e), &e);
		mcb_arena_release(&a);
	}
	mcb_buf_release(&v);
	mcb_buf_release(&b);
	mcb_store_close(s);
}

/* Append fmt to b with $K, $k, $H, $U replaced (see test_hostile). */
static void expand(struct mcb_buf *b, const char *fmt, const char *k, const char *h, const char *u)
{
	for (; *fmt; fmt++) {
		if (fmt[0] != '$' || !fmt[1]) {
			mcb_buf_addc(b, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == 'K')
			mcb_buf_adds(b, k);
		else if (*fmt == 'k')
			mcb_buf_add(b, k, MCB_HEX_LEN - 1);
		else if (*fmt == 'H')
			mcb_buf_adds(b, h);
		else
			mcb_buf_adds(b, u);
	}
}

/* Hostile entry texts, each with a correct checksum line: the parser rejects them all. */
static void test_hostile(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf body = MCB_BUF_INIT;
	struct mcb_digest key, blob;
	struct mcb_errctx e;
	char k[MCB_HEX_LEN + 1], h[MCB_HEX_LEN + 1], H[MCB_HEX_LEN + 1];
	unsigned i;
	struct {
		const char *what, *fmt, *sub; /* fmt: $K key hex, $k key hex less one digit, $H blob hex, $U blob hex in uppercase */
	} cases[] = {
		{"no header", "key $K\nlog 0\n\n", "bad header"},
		{"header suffix", "mcbuild-action 1x\nkey $K\nlog 0\n\n", "bad header"},
		{"header version 01", "mcbuild-action 01\nkey $K\nlog 0\n\n", "bad header"},
		{"crlf", "mcbuild-action 1\r\nkey $K\r\nlog 0\r\n\r\n", "bad header"},
		{"no key", "mcbuild-action 1\nlog 0\n\n", "bad key"},
		{"short key", "mcbuild-action 1\nkey $k\nlog 0\n\n", "bad key"},
		{"uppercase digest", "mcbuild-action 1\nkey $K\noutput o $U 1\nlog 0\n\n",
		 "bad output digest"},
		{"size overflow", "mcbuild-action 1\nkey $K\noutput o $H 18446744073709551616\nlog 0\n\n",
		 "bad output size"},
		{"size huge", "mcbuild-action 1\nkey $K\noutput o $H 99999999999999999999999\nlog 0\n\n",
		 "bad output size"},
		{"size over limit", "mcbuild-action 1\nkey $K\noutput o $H 1099511627777\nlog 0\n\n",
		 "bad output size"},
		{"size leading zero", "mcbuild-action 1\nkey $K\noutput o $H 01\nlog 0\n\n",
		 "bad output size"},
		{"size negative", "mcbuild-action 1\nkey $K\noutput o $H -1\nlog 0\n\n",
		 "bad output size"},
		{"size plus", "mcbuild-action 1\nkey $K\noutput o $H +1\nlog 0\n\n",
		 "bad output size"},
		{"size empty", "mcbuild-action 1\nkey $K\noutput o $H \nlog 0\n\n",
		 "bad output size"},
		{"extra field", "mcbuild-action 1\nkey $K\noutput o $H 1 x\nlog 0\n\n",
		 "bad output size"},
		{"name slash", "mcbuild-action 1\nkey $K\noutput a/b $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name dotdot", "mcbuild-action 1\nkey $K\noutput .. $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name dot", "mcbuild-action 1\nkey $K\noutput . $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name empty", "mcbuild-action 1\nkey $K\noutput  $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name tab", "mcbuild-action 1\nkey $K\noutput a\tb $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name utf8", "mcbuild-action 1\nkey $K\noutput caf\xc3\xa9 $H 1\nlog 0\n\n",
		 "bad output name"},
		{"name with space", "mcbuild-action 1\nkey $K\noutput a b $H 1\nlog 0\n\n",
		 "bad output digest"},
		{"duplicate", "mcbuild-action 1\nkey $K\noutput o $H 1\noutput o $H 1\nlog 0\n\n",
		 "listed twice"},
		{"no log", "mcbuild-action 1\nkey $K\noutput o $H 1\n", "no log line"},
		{"unknown line", "mcbuild-action 1\nkey $K\nfoo bar\nlog 0\n\n", "bad log line"},
		{"log too long", "mcbuild-action 1\nkey $K\nlog 5\nabc\n", "disagrees"},
		{"log too short", "mcbuild-action 1\nkey $K\nlog 1\nabc\n", "disagrees"},
		{"log over limit", "mcbuild-action 1\nkey $K\nlog 16777217\nabc\n", "bad log line"},
		{"log size overflow", "mcbuild-action 1\nkey $K\nlog 18446744073709551615\nabc\n",
		 "bad log line"},
		{"log no newline", "mcbuild-action 1\nkey $K\nlog 3\nabcd", "disagrees"},
		{"empty", "", "bad header"},
	};

	mcb_sha256("hostile", 7, &key);
	CHECK_OK(mcb_store_put_mem(s, "x", 1, &blob, &e), &e);
	mcb_digest_hex(&key, k);
	mcb_digest_hex(&blob, h);
	for (i = 0; i < MCB_HEX_LEN; i++)
		H[i] = (char)(h[i] >= 'a' ? h[i] - 32 : h[i]);
	H[MCB_HEX_LEN] = '\0';
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mcb_buf_reset(&body);
		expand(&body, cases[i].fmt, k, h, H);
		write_signed(dir, &key, body.data, body.len);
		expect_corrupt(s, dir, &key, cases[i].sub, cases[i].what);
	}
	/* An embedded NUL (printf stops at it, so build by hand). */
	mcb_buf_reset(&body);
	mcb_buf_printf(&body, "mcbuild-action 1\nkey %s\nlog 3\n", k);
	mcb_buf_add(&body, "a\0b\n", 4);
	write_signed(dir, &key, body.data, body.len);
	expect_corrupt(s, dir, &key, "NUL byte", "log with NUL");
	/* Missing checksum; wrong checksum. */
	mcb_buf_reset(&body);
	mcb_buf_printf(&body, "mcbuild-action 1\nkey %s\nlog 0\n\n", k);
	write_entry(dir, &key, body.data, body.len);
	expect_corrupt(s, dir, &key, "no checksum line", "no checksum");
	mcb_buf_printf(&body, "sha256 %s\n", h);
	write_entry(dir, &key, body.data, body.len);
	expect_corrupt(s, dir, &key, "checksum mismatch", "wrong checksum");
	/* Too many outputs. */
	mcb_buf_reset(&body);
	mcb_buf_printf(&body, "mcbuild-action 1\nkey %s\n", k);
	for (i = 0; i <= MCB_ACTION_MAX_OUTPUTS; i++)
		mcb_buf_printf(&body, "output o%u %s 1\n", i, h);
	mcb_buf_adds(&body, "log 0\n\n");
	write_signed(dir, &key, body.data, body.len);
	expect_corrupt(s, dir, &key, "more than 4096 outputs", "too many outputs");
	/* Exactly the maximum is fine. */
	mcb_buf_reset(&body);
	mcb_buf_printf(&body, "mcbuild-action 1\nkey %s\n", k);
	for (i = 0; i < MCB_ACTION_MAX_OUTPUTS; i++)
		mcb_buf_printf(&body, "output o%u %s 1\n", i, h);
	mcb_buf_adds(&body, "log 0\n\n");
	write_signed(dir, &key, body.data, body.len);
	{
		struct mcb_action got;
		struct mcb_arena a;

		mcb_arena_init(&a);
		CHECK_OK(mcb_ac_get(s, &key, &a, &got, &e), &e);
		CHECK_EQ(got.nout, MCB_ACTION_MAX_OUTPUTS);
		mcb_arena_release(&a);
	}
	mcb_buf_release(&body);
	mcb_store_close(s);
}

/* Another format version is a miss that leaves the file alone. */
static void test_version(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf body = MCB_BUF_INIT;
	struct mcb_action got;
	struct mcb_arena a;
	struct mcb_errctx e;
	struct mcb_digest key;
	char k[MCB_HEX_LEN + 1];

	mcb_arena_init(&a);
	mcb_sha256("v", 1, &key);
	mcb_digest_hex(&key, k);
	mcb_buf_printf(&body, "mcbuild-action 2\nkey %s\nsomething new\n", k);
	write_signed(dir, &key, body.data, body.len);
	CHECK_ERR(mcb_ac_get(s, &key, &a, &got, &e), &e, MCB_ECORRUPT, "format version 2");
	CHECK(mcb_os_exists(entry_file(dir, &key)));
	CHECK_EQ(count_quarantine(dir), 0);
	mcb_arena_release(&a);
	mcb_buf_release(&body);
	mcb_store_close(s);
}

/* Random damage, re-signed half the time: never a crash, never a bad result. */
static void test_fuzz(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	struct mcb_buf v = MCB_BUF_INIT, b = MCB_BUF_INIT;
	struct mcb_action got;
	struct mcb_arena a;
	struct mcb_errctx e;
	struct mcb_digest key;
	uint64_t x = 99;
	size_t j, k;
	int i, rc, ok = 0;

	mcb_sha256("fuzz", 4, &key);
	valid_entry(s, dir, &key, &v);
	mcb_arena_init(&a);
	for (i = 0; i < 2000; i++) {
		size_t body = v.len - 72;

		mcb_buf_reset(&b);
		mcb_buf_add(&b, v.data, body);
		for (k = 0; k < 1 + i % 3; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			j = x % body;
			switch ((x >> 32) % 4) {
			case 0: b.data[j] ^= (char)(1 + (x >> 40) % 255); break;
			case 1: b.data[j] = "0 \n.9/-a"[(x >> 40) % 8]; break;
			case 2: b.len = j; break;
			default: b.data[j] = (char)(x >> 48); break;
			}
		}
		if (i % 2)
			write_signed(dir, &key, b.data, b.len);
		else
			write_entry(dir, &key, b.data, b.len);
		rc = mcb_ac_get(s, &key, &a, &got, &e);
		if (rc == 0) {
			ok++;
			for (k = 0; k < got.nout; k++)
				CHECK(got.out[k].name[0] && !strchr(got.out[k].name, '/'));
		} else {
			CHECK(rc == MCB_ECORRUPT || rc == MCB_ENOENT);
		}
	}
	(void)ok;
	mcb_arena_release(&a);
	mcb_buf_release(&v);
	mcb_buf_release(&b);
	mcb_store_close(s);
}

/* Processes putting and getting the same entries at once all see complete ones. */
static void test_concurrent(void)
{
	const char *dir = mcbt_tmpdir();
	struct mcb_store *s = open_store(dir);
	pid_t pid[4];
	int i, status;

	fflush(stderr);
	for (i = 0; i < 4; i++) {
		pid[i] = fork();
		CHECK(pid[i] >= 0);
		if (pid[i] == 0) {
			struct mcb_action_output o;
			struct mcb_action act, got;
			struct mcb_arena a;
			struct mcb_errctx e;
			struct mcb_digest key;
			struct mcb_store *cs = NULL;
			int round, fails = 0, rc;
			char k[16];

			if (mcb_store_open(dir, &cs, &e))
				_exit(1);
			mcb_arena_init(&a);
			for (round = 0; round < 40; round++) {
				snprintf(k, sizeof(k), "key%d", round % 5);
				mcb_sha256(k, strlen(k), &key);
				if (mcb_store_put_mem(cs, k, strlen(k), &o.digest, &e))
					fails++;
				o.name = "out";
				o.size = strlen(k);
				act.out = &o;
				act.nout = 1;
				act.log = k;
				if (mcb_ac_put(cs, &key, &act, &e))
					fails++;
				rc = mcb_ac_get(cs, &key, &a, &got, &e);
				if (rc || got.nout != 1 || strcmp(got.log, k)) {
					fprintf(stderr, "process %d: %d %s\n", i, rc, e.msg);
					fails++;
				}
			}
			mcb_arena_release(&a);
			mcb_store_close(cs);
			_exit(fails ? 1 : 0);
		}
	}
	for (i = 0; i < 4; i++) {
		CHECK(waitpid(pid[i], &status, 0) == pid[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_EQ(count_quarantine(dir), 0);
	mcb_store_close(s);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_put_checks);
	RUN(test_missing_blob);
	RUN(test_corrupt);
	RUN(test_hostile);
	RUN(test_version);
	RUN(test_fuzz);
	RUN(test_concurrent);
	return mcbt_done();
}
