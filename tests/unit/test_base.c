/* Unit tests for the base layer: err, arena, buf, hash, os, json. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/strmap.h"
#include "mcb/utf8.h"

static void test_errf(void)
{
	struct mcb_errctx e;

	mcb_errclear(&e);
	CHECK_EQ(mcb_errf(&e, MCB_EIO, "cannot open '%s':", "/nonexistent/x"), MCB_EIO);
	CHECK(strstr(e.msg, "cannot open '/nonexistent/x': ") == e.msg);
	mcb_errprefix(&e, "loading %s", "model");
	CHECK(strncmp(e.msg, "loading model: cannot open", 26) == 0);
	CHECK_STR(mcb_strerror(MCB_ECORRUPT), "corrupt cache entry");
}

static void test_arena(void)
{
	struct mcb_arena a;
	char *s;
	int i;

	mcb_arena_init(&a);
	for (i = 0; i < 10000; i++) {
		s = mcb_arena_printf(&a, "item-%d", i);
		CHECK(((uintptr_t)s & 15) == 0);
	}
	CHECK_STR(s, "item-9999");
	s = mcb_arena_alloc(&a, 1 << 20);
	CHECK(s[12345] == 0);
	mcb_arena_release(&a);
	CHECK(a.head == NULL);
}

static void test_buf(void)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t n;
	char *p;

	CHECK_STR(mcb_buf_str(&b), "");
	mcb_buf_adds(&b, "abc");
	mcb_buf_printf(&b, "-%d-", 42);
	mcb_buf_addc(&b, 'z');
	CHECK_STR(b.data, "abc-42-z");
	p = mcb_buf_detach(&b, &n);
	CHECK_EQ(n, 8);
	free(p);
	CHECK(b.data == NULL);
}

static void test_sha256(void)
{
	struct mcb_digest d, d2;
	struct mcb_errctx e;
	char hex[MCB_HEX_LEN + 1];
	const char *dir = mcbt_tmpdir();
	char path[4096];
	uint64_t size;

	mcb_sha256("abc", 3, &d);
	mcb_digest_hex(&d, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK_EQ(mcb_digest_parse(hex, 64, &d2), 0);
	CHECK(mcb_digest_eq(&d, &d2));
	CHECK_EQ(mcb_digest_parse(hex, 63, &d2), -1);
	hex[5] = 'G';
	CHECK_EQ(mcb_digest_parse(hex, 64, &d2), -1);
	snprintf(path, sizeof(path), "%s/f", dir);
	mcbt_write(path, "abc", 3);
	CHECK_OK(mcb_sha256_file(path, &d2, &size, &e), &e);
	CHECK(mcb_digest_eq(&d, &d2));
	CHECK_EQ(size, 3);
	snprintf(path, sizeof(path), "%s/missing", dir);
	CHECK_ERR(mcb_sha256_file(path, &d2, &size, &e), &e, MCB_ENOENT, "missing");
}

static void test_paths(void)
{
	struct mcb_arena a;

	mcb_arena_init(&a);
	CHECK_STR(mcb_path_clean_relative(&a, "targets/./a100//x/"), "targets/a100/x");
	CHECK_STR(mcb_path_clean_relative(&a, "a/../b"), "b");
	CHECK_STR(mcb_path_clean_relative(&a, ""), ".");
	CHECK(mcb_path_clean_relative(&a, "../x") == NULL);
	CHECK(mcb_path_clean_relative(&a, "a/../../x") == NULL);
	CHECK(mcb_path_clean_relative(&a, "/etc/passwd") == NULL);
	CHECK_STR(mcb_path_join(&a, "a/", "b"), "a/b");
	CHECK_STR(mcb_path_join(&a, "a", "/b"), "/b");
	CHECK_STR(mcb_path_dir(&a, "a/b/c"), "a/b");
	CHECK_STR(mcb_path_dir(&a, "c"), ".");
	mcb_arena_release(&a);
}

static void test_files(void)
{
	struct mcb_errctx e;
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_arena a;
	struct mcb_map m;
	const char *dir = mcbt_tmpdir();
	char *p, *q;

	mcb_arena_init(&a);
	p = mcb_path_join(&a, dir, "x/y/z");
	CHECK_OK(mcb_os_mkdirs(p, &e), &e);
	CHECK(mcb_os_isdir(p));
	q = mcb_path_join(&a, p, "file");
	CHECK_OK(mcb_os_write_atomic(q, "hello", 5, 0644, &e), &e);
	CHECK_OK(mcb_os_read_file(q, 100, &b, &e), &e);
	CHECK_STR(b.data, "hello");
	mcb_buf_reset(&b);
	CHECK_ERR(mcb_os_read_file(q, 4, &b, &e), &e, MCB_ERANGE, "larger than 4");
	CHECK_OK(mcb_os_map(q, &m, &e), &e);
	CHECK_EQ(m.size, 5);
	CHECK(memcmp(m.data, "hello", 5) == 0);
	mcb_os_unmap(&m);
	CHECK_OK(mcb_os_rmtree(mcb_path_join(&a, dir, "x"), &e), &e);
	CHECK(!mcb_os_exists(q));
	mcb_buf_release(&b);
	mcb_arena_release(&a);
}

static void test_json(void)
{
	struct mcb_errctx e;
	struct mcb_buf b = MCB_BUF_INIT;
	json_t *v;
	char deep[300];
	int i;

	const char *doc = "{\"b\": 1.5, \"a\": [true, null, \"x\"]}";

	v = mcb_json_parse(doc, strlen(doc), "t", &e);
	CHECK(v != NULL);
	mcb_json_canonical(v, &b);
	CHECK_STR(b.data, "{\"a\":[true,null,\"x\"],\"b\":1.5}");
	json_decref(v);
	CHECK(mcb_json_parse("{\"a\":1,\"a\":2}", 13, "'h.json'", &e) == NULL);
	CHECK(strstr(e.msg, "'h.json':1:") != NULL);
	for (i = 0; i < 100; i++)
		deep[i] = '[';
	for (i = 0; i < 100; i++)
		deep[100 + i] = ']';
	CHECK(mcb_json_parse(deep, 200, "deep", &e) == NULL);
	CHECK(strstr(e.msg, "nested deeper") != NULL);
	mcb_buf_release(&b);
}

static void test_json_encoding(void)
{
	struct mcb_buf b = MCB_BUF_INIT;
	json_t *v = json_pack("{s:f, s:f, s:f, s:f, s:s, s:I, s:[], s:{}, s:f, s:f}", "a", 51.2,
			      "b", 1e-5, "c", 2.0, "d", 0.1 + 0.2, "e", "tab\t\"q\" \xc3\xa9 \xf0\x9f\x98\x80",
			      "f", (json_int_t)-7, "g", "h", "i", 80.0, "j", 1e20);

	mcb_json_canonical(v, &b);
	CHECK_STR(b.data, "{\"a\":51.2,\"b\":1e-05,\"c\":2.0,\"d\":0.30000000000000004,"
			  "\"e\":\"tab\\t\\\"q\\\" \\u00e9 \\ud83d\\ude00\",\"f\":-7,\"g\":[],"
			  "\"h\":{},\"i\":80.0,\"j\":1e+20}");
	mcb_buf_reset(&b);
	mcb_json_pretty(json_object_get(v, "g"), &b);
	CHECK_STR(b.data, "[]\n");
	json_decref(v);
	mcb_buf_release(&b);
}

static void test_strmap(void)
{
	struct mcb_strmap m = MCB_STRMAP_INIT;
	char keys[1000][16];
	int vals[1000], i;

	CHECK(mcb_strmap_get(&m, "x") == NULL);
	for (i = 0; i < 1000; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
		vals[i] = i;
		mcb_strmap_put(&m, keys[i], &vals[i]);
	}
	CHECK_EQ(m.n, 1000);
	for (i = 0; i < 1000; i++)
		CHECK(mcb_strmap_get(&m, keys[i]) == &vals[i]);
	mcb_strmap_put(&m, keys[7], &vals[8]);
	CHECK(mcb_strmap_get(&m, "key-7") == &vals[8]);
	CHECK_EQ(m.n, 1000);
	CHECK(mcb_strmap_get(&m, "key-1000") == NULL);
	mcb_strmap_release(&m);
}

static void test_arena_grow(void)
{
	struct mcb_arena a;
	size_t n = 0, cap = 0, i;
	int *v = NULL;

	mcb_arena_init(&a);
	for (i = 0; i < 1000; i++) {
		v = mcb_arena_grow(&a, v, n, &cap, sizeof(*v));
		v[n++] = (int)i;
	}
	CHECK(cap >= 1000);
	for (i = 0; i < 1000; i++)
		CHECK_EQ(v[i], i);
	mcb_arena_release(&a);
}

static void test_sum_line(void)
{
	struct mcb_buf b = MCB_BUF_INIT;
	const char *why = NULL;

	mcb_buf_adds(&b, "header 1\nline\n");
	mcb_sum_line_add(&b);
	CHECK_EQ(b.len, 14 + MCB_SUM_LINE_LEN);
	CHECK_EQ(mcb_sum_line_check(b.data, b.len, &why), 14);
	b.data[3] ^= 1;
	CHECK_EQ(mcb_sum_line_check(b.data, b.len, &why), -1);
	CHECK_STR(why, "checksum mismatch");
	CHECK_EQ(mcb_sum_line_check(b.data, b.len - 1, &why), -1);
	CHECK_STR(why, "no checksum line at the end");
	CHECK_EQ(mcb_sum_line_check("x", 1, &why), -1);
	mcb_buf_release(&b);
}

static void test_utf8(void)
{
	uint32_t cp = 0;

	CHECK_EQ(mcb_utf8_get((const unsigned char *)"A", 1, &cp), 1);
	CHECK_EQ(cp, 'A');
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	CHECK_EQ(cp, 0xe9);
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	CHECK_EQ(cp, 0x1f600);
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xc0\x80", 2, &cp), 0);     /* overlong */
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0); /* surrogate */
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xf4\x90\x80\x80", 4, &cp), 0);
	CHECK_EQ(mcb_utf8_get((const unsigned char *)"\xe2\x82", 2, &cp), 0);     /* cut */
	CHECK_EQ(mcb_utf8_check("ab\xc3\xa9x\xffz", 7), 5);
	CHECK_EQ(mcb_utf8_check("ab", 2), 2);
}

int main(void)
{
	RUN(test_utf8);
	RUN(test_arena_grow);
	RUN(test_sum_line);
	RUN(test_strmap);
	RUN(test_errf);
	RUN(test_arena);
	RUN(test_buf);
	RUN(test_sha256);
	RUN(test_paths);
	RUN(test_files);
	RUN(test_json);
	RUN(test_json_encoding);
	return mcbt_done();
}
