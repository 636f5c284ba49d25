/* Unit tests for the safetensors reader and writer (runtime/safetensors.c). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/safetensors.h"

/* Read a whole file into a malloc'd buffer. */
static unsigned char *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *p;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n + 1);
	if (fread(p, 1, (size_t)n, f) != (size_t)n) {
		free(p);
		p = NULL;
	}
	fclose(f);
	*size = (size_t)n;
	return p;
}

/* A file with the given header text (N = strlen) and buffer of nbuf bytes (i & 0xff). */
static void write_raw(const char *path, const char *header, size_t nbuf)
{
	size_t n = strlen(header), i;
	unsigned char *p = malloc(8 + n + nbuf + 1);

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)((uint64_t)n >> (8 * i));
	memcpy(p + 8, header, n);
	for (i = 0; i < nbuf; i++)
		p[8 + n + i] = (unsigned char)i;
	mcbt_write(path, p, 8 + n + nbuf);
	free(p);
}

struct fixture {
	float f32[6];
	uint16_t f16[4];
	int8_t i8[3];
	double f64;
	unsigned char u8[5];
	struct mcb_tensor t[6];
	const struct mcb_tensor *list[6];
	json_t *md;
};

static void fixture_init(struct fixture *x)
{
	int i;

	memset(x, 0, sizeof(*x));
	for (i = 0; i < 6; i++)
		x->f32[i] = (float)i - 2.5f;
	for (i = 0; i < 4; i++)
		x->f16[i] = (uint16_t)(0x3c00 + i);
	x->i8[0] = -128, x->i8[1] = 0, x->i8[2] = 127;
	x->f64 = 3.141592653589793;
	memcpy(x->u8, "hello", 5);
	/* deliberately not in layout order */
	x->t[0] = (struct mcb_tensor){"w.u8", MCB_DT_U8, 1, {5}, x->u8, 5, 0};
	x->t[1] = (struct mcb_tensor){"a.f16", MCB_DT_F16, 1, {4}, x->f16, 8, 0};
	x->t[2] = (struct mcb_tensor){"b.f32", MCB_DT_F32, 2, {2, 3}, x->f32, 24, 0};
	x->t[3] = (struct mcb_tensor){"c.i8", MCB_DT_I8, 2, {3, 1}, x->i8, 3, 0};
	x->t[4] = (struct mcb_tensor){"empty", MCB_DT_BOOL, 2, {0, 7}, NULL, 0, 0};
	x->t[5] = (struct mcb_tensor){"scalar", MCB_DT_F64, 0, {0}, &x->f64, 8, 0};
	for (i = 0; i < 6; i++)
		x->list[i] = &x->t[i];
	x->md = json_pack("{s:s, s:s}", "z", "last", "format", "pt");
}

static void test_roundtrip(void)
{
	struct fixture x;
	struct mcb_errctx e;
	struct mcb_st_file f;
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096];
	unsigned char *a, *b;
	size_t na, nb, i, j;
	uint64_t n;
	static const char *const order[] = {"scalar", "b.f32", "a.f16", "c.i8", "empty", "w.u8"};

	fixture_init(&x);
	snprintf(p1, sizeof(p1), "%s/a.safetensors", dir);
	snprintf(p2, sizeof(p2), "%s/b.safetensors", dir);
	CHECK_OK(mcb_st_write(p1, x.list, 6, x.md, &e), &e);
	a = slurp(p1, &na);
	CHECK(a != NULL);
	if (!a)
		return;
	memcpy(&n, a, 8);
	CHECK_EQ(n % 8, 0);
	CHECK(a[8] == '{');
	CHECK_EQ(8 + n + 8 + 24 + 8 + 3 + 0 + 5, na);
	/* layout: F64, F32, F16, then the 1-byte types by name (BOOL "empty" is empty) */
	CHECK(strstr((char *)a + 8, "{\"scalar\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
				    "\"b.f32\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]}") ==
	      (char *)a + 8);
	CHECK(strstr((char *)a + 8, "\"__metadata__\":{\"format\":\"pt\",\"z\":\"last\"}}") != NULL);

	CHECK_OK(mcb_st_open(p1, &f, &e), &e);
	CHECK_EQ(f.ntensors, 6);
	for (i = 0; i < f.ntensors && i < 6; i++) {
		const struct mcb_tensor *t = &f.tensors[i], *want = NULL;

		CHECK_STR(t->name, order[i]); /* file order */
		for (j = 0; j < 6; j++)
			if (!strcmp(x.t[j].name, t->name))
				want = &x.t[j];
		CHECK(want != NULL);
		if (!want)
			continue;
		CHECK_EQ(t->dtype, want->dtype);
		CHECK_EQ(t->ndim, want->ndim);
		CHECK(memcmp(t->shape, want->shape, sizeof(t->shape)) == 0);
		CHECK_EQ(t->nbytes, want->nbytes);
		CHECK(t->nbytes == 0 || memcmp(t->data, want->data, t->nbytes) == 0);
		CHECK_EQ(t->owned, 0);
	}
	CHECK(json_equal(f.metadata, x.md));
	/* writing what was read gives the same bytes (deterministic, order-independent) */
	{
		const struct mcb_tensor *list[6];

		for (i = 0; i < 6; i++)
			list[i] = &f.tensors[5 - i];
		CHECK_OK(mcb_st_write(p2, list, 6, f.metadata, &e), &e);
	}
	mcb_st_close(&f);
	b = slurp(p2, &nb);
	CHECK(b && na == nb && memcmp(a, b, na) == 0);
	free(a);
	free(b);

	/* no tensors, no metadata: "{}" padded to 8 */
	CHECK_OK(mcb_st_write(p1, NULL, 0, NULL, &e), &e);
	a = slurp(p1, &na);
	CHECK(a && na == 16 && memcmp(a, "\x08\0\0\0\0\0\0\0{}      ", 16) == 0);
	free(a);
	CHECK_OK(mcb_st_open(p1, &f, &e), &e);
	CHECK_EQ(f.ntensors, 0);
	CHECK(f.metadata == NULL);
	mcb_st_close(&f);
	json_decref(x.md);
}

static void expect_reject(const char *path, int code, const char *sub)
{
	struct mcb_errctx e;
	struct mcb_st_file f;

	mcb_errclear(&e);
	CHECK_ERR(mcb_st_open(path, &f, &e), &e, code, sub);
	if (!strstr(e.msg, path))
		mcbt_fail(__FILE__, __LINE__, "message \"%s\" does not name %s", e.msg, path);
}

static void test_truncated(void)
{
	struct fixture x;
	struct mcb_errctx e;
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096];
	unsigned char *a;
	size_t na, cut;

	fixture_init(&x);
	snprintf(p1, sizeof(p1), "%s/full.safetensors", dir);
	snprintf(p2, sizeof(p2), "%s/cut.safetensors", dir);
	CHECK_OK(mcb_st_write(p1, x.list, 6, x.md, &e), &e);
	a = slurp(p1, &na);
	for (cut = 0; a && cut < na; cut++) {
		struct mcb_st_file f;

		mcbt_write(p2, a, cut);
		mcb_errclear(&e);
		if (mcb_st_open(p2, &f, &e) != MCB_EFORMAT || !strstr(e.msg, p2))
			mcbt_fail(__FILE__, __LINE__, "cut at %zu: \"%s\"", cut, e.msg);
	}
	/* one trailing byte is rejected too */
	if (a) {
		a[na] = 0;
		mcbt_write(p2, a, na + 1);
		expect_reject(p2, MCB_EFORMAT, "data buffer is 49 bytes but the tensors cover 48");
	}
	free(a);
	json_decref(x.md);
}

static void test_hostile_headers(void)
{
	static const struct {
		const char *header;
		size_t nbuf;
		int code;
		const char *sub;
	} cases[] = {
		{"[]", 0, MCB_EFORMAT, "header does not start with '{'"},
		{" {}", 0, MCB_EFORMAT, "header does not start with '{'"},
		{"{", 0, MCB_EFORMAT, "does not start with '{'"}, /* N = 1 */
		{"{\"a\":", 0, MCB_EFORMAT, "invalid JSON"},
		{"{}x", 0, MCB_EFORMAT, "invalid JSON"},
		{"{}\n", 0, MCB_OK, ""}, /* trailing whitespace is fine */
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
		 "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, MCB_EFORMAT,
		 "duplicate"},
		{"{\"a\":{\"dtype\":\"F7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, MCB_EUNSUP,
		 "tensor 'a': unknown dtype 'F7'"},
		{"{\"a\":{\"dtype\":\"Q8_0\",\"shape\":[32],\"data_offsets\":[0,34]}}", 34, MCB_EUNSUP,
		 "unknown dtype 'Q8_0'"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, MCB_EFORMAT,
		 "non-negative integers"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, MCB_EFORMAT,
		 "non-negative integers"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
		 MCB_EFORMAT, "9 dimensions"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}", 0,
		 MCB_EFORMAT, "element count overflows"},
		{"{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}", 0,
		 MCB_EFORMAT, "overflows"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, MCB_EFORMAT,
		 "end before they begin"},
		{"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, MCB_EFORMAT,
		 "hold 4 bytes but F32 x 2 elements need 8"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,0]}}", 1,
		 MCB_EFORMAT, "invalid JSON"}, /* beyond a JSON integer's range */
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775806,"
		 "9223372036854775807]}}", 1, MCB_EFORMAT, "hole in the data buffer"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
		 "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}", 12, MCB_EFORMAT,
		 "tensors 'a' and 'b' overlap"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
		 "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 12, MCB_EFORMAT,
		 "hole in the data buffer: bytes 4..8 before tensor 'b'"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, MCB_EFORMAT,
		 "hole in the data buffer: bytes 0..4"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5, MCB_EFORMAT,
		 "data buffer is 5 bytes but the tensors cover 4"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 3, MCB_EFORMAT,
		 "data buffer is 3 bytes"},
		{"{\"__metadata__\":{\"k\":1}}", 0, MCB_EFORMAT, "__metadata__ value 'k' is not a string"},
		{"{\"__metadata__\":[]}", 0, MCB_EFORMAT, "__metadata__ is not an object"},
		{"{\"a\":[]}", 0, MCB_EFORMAT, "tensor 'a': entry is not an object"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],\"x\":1}}", 0, MCB_EFORMAT,
		 "unknown field 'x'"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[0]}}", 0, MCB_EFORMAT, "needs dtype"},
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0,0]}}", 0, MCB_EFORMAT,
		 "two non-negative integers"},
		{"{\"\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, MCB_EFORMAT,
		 "non-empty"},
		{"{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, MCB_EFORMAT,
		 "invalid JSON"},
		{"{\"a\":\"\xff\"}", 0, MCB_EFORMAT, "invalid JSON"}, /* bad UTF-8 */
		/* zero-size tensors may share an offset */
		{"{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
		 "\"b\":{\"dtype\":\"F32\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
		 "\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
		 "\"d\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]}}", 2, MCB_OK, ""},
	};
	const char *dir = mcbt_tmpdir();
	char path[4096];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/case%zu.safetensors", dir, i);
		write_raw(path, cases[i].header, cases[i].nbuf);
		if (cases[i].code == MCB_OK) {
			struct mcb_errctx e;
			struct mcb_st_file f;

			CHECK_OK(mcb_st_open(path, &f, &e), &e);
			mcb_st_close(&f);
			continue;
		}
		expect_reject(path, cases[i].code, cases[i].sub);
	}
}

static void test_hostile_lengths(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	unsigned char buf[16];
	uint64_t n;
	int i;

	snprintf(path, sizeof(path), "%s/x.safetensors", dir);
	mcbt_write(path, "\x02\0\0\0", 4);
	expect_reject(path, MCB_EFORMAT, "file is 4 bytes, too short");
	n = 100000001;
	for (i = 0; i < 8; i++)
		buf[i] = (unsigned char)(n >> (8 * i));
	memcpy(buf + 8, "{}      ", 8);
	mcbt_write(path, buf, 16);
	expect_reject(path, MCB_EFORMAT, "header length 100000001 exceeds the limit");
	n = UINT64_MAX;
	memcpy(buf, &n, 8);
	mcbt_write(path, buf, 16);
	expect_reject(path, MCB_EFORMAT, "exceeds the limit");
	n = 9;
	memcpy(buf, &n, 8);
	mcbt_write(path, buf, 16);
	expect_reject(path, MCB_EFORMAT, "header length 9 runs past the end of the file (16 bytes)");
	n = 0;
	memcpy(buf, &n, 8);
	mcbt_write(path, buf, 8);
	expect_reject(path, MCB_EFORMAT, "does not start with '{'");
	/* nesting deeper than MCB_JSON_MAX_DEPTH inside __metadata__ */
	{
		char deep[400];

		strcpy(deep, "{\"__metadata__\":{\"k\":");
		for (i = 0; i < 100; i++)
			strcat(deep, "[");
		for (i = 0; i < 100; i++)
			strcat(deep, "]");
		strcat(deep, "}}");
		write_raw(path, deep, 0);
		expect_reject(path, MCB_EFORMAT, "nested deeper");
	}
	CHECK(dir != NULL);
}

static void test_writer_errors(void)
{
	struct fixture x;
	struct mcb_errctx e;
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_tensor bad;
	const struct mcb_tensor *list[2];
	json_t *md;

	fixture_init(&x);
	snprintf(path, sizeof(path), "%s/w.safetensors", dir);
	list[0] = &x.t[2];
	list[1] = &x.t[2];
	CHECK_ERR(mcb_st_write(path, list, 2, NULL, &e), &e, MCB_EINVAL, "duplicate tensor 'b.f32'");
	bad = x.t[2];
	bad.name = "b.f64";
	bad.dtype = MCB_DT_F64;
	list[1] = &bad;
	CHECK_ERR(mcb_st_write(path, list, 2, NULL, &e), &e, MCB_EINVAL, "has 24 bytes, its shape needs 48");
	bad = x.t[2];
	bad.dtype = MCB_DT_F16;
	bad.name = "b.f32";
	list[1] = &bad;
	CHECK_ERR(mcb_st_write(path, list, 2, NULL, &e), &e, MCB_EINVAL, "has 24 bytes");
	bad.nbytes = 12;
	CHECK_ERR(mcb_st_write(path, list, 2, NULL, &e), &e, MCB_EINVAL, "duplicate tensor 'b.f32'");
	bad = x.t[2];
	bad.dtype = MCB_DT_Q8_0;
	list[1] = &bad;
	CHECK_ERR(mcb_st_write(path, list + 1, 1, NULL, &e), &e, MCB_EUNSUP, "safetensors cannot store");
	bad = x.t[2];
	bad.name = "";
	CHECK_ERR(mcb_st_write(path, list + 1, 1, NULL, &e), &e, MCB_EINVAL, "empty name");
	bad.name = "__metadata__";
	CHECK_ERR(mcb_st_write(path, list + 1, 1, NULL, &e), &e, MCB_EINVAL, "not a tensor name");
	bad.name = "bad\xff";
	CHECK_ERR(mcb_st_write(path, list + 1, 1, NULL, &e), &e, MCB_EINVAL, "not valid UTF-8");
	md = json_pack("{s:i}", "k", 1);
	CHECK_ERR(mcb_st_write(path, list, 1, md, &e), &e, MCB_EINVAL, "metadata must be an object of strings");
	json_decref(md);
	CHECK_ERR(mcb_st_write("/nonexistent/dir/x.safetensors", list, 1, NULL, &e), &e, MCB_EIO,
		  "cannot create '/nonexistent/dir/x.safetensors'");
	json_decref(x.md);
}

static void test_corpus(void)
{
	char root[4096], path[8192];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(root, sizeof(root), "%s", mcbt_data("corpus/safetensors"));
	dp = opendir(root);
	CHECK(dp != NULL);
	if (!dp)
		return;
	while ((d = readdir(dp))) {
		struct mcb_errctx e;
		struct mcb_st_file f;
		int rc;

		if (d->d_name[0] == '.' || !strcmp(d->d_name, "README"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, d->d_name);
		mcb_errclear(&e);
		rc = mcb_st_open(path, &f, &e);
		if (rc >= 0 || !strstr(e.msg, path))
			mcbt_fail(__FILE__, __LINE__, "corpus file %s: rc %d, message \"%s\"", path, rc,
				  e.msg);
		if (rc >= 0)
			mcb_st_close(&f);
		n++;
	}
	closedir(dp);
	CHECK(n >= 5);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_truncated);
	RUN(test_hostile_headers);
	RUN(test_hostile_lengths);
	RUN(test_writer_errors);
	RUN(test_corpus);
	return mcbt_done();
}
