/* Unit tests for the GGUF reader and writer (runtime/gguf.c). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/gguf.h"
#include "mcb/json.h"
#include "mcb/model.h"

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

/* ---- a writer fixture with every value type ---- */

static const uint8_t arr_u8[3] = {0, 1, 255};
static const int8_t arr_i8[3] = {-128, 0, 127};
static const uint16_t arr_u16[2] = {0, 65535};
static const int16_t arr_i16[2] = {-32768, 32767};
static const uint32_t arr_u32[2] = {0, 4294967295u};
static const int32_t arr_i32[2] = {INT32_MIN, INT32_MAX};
static const uint64_t arr_u64[2] = {0, UINT64_MAX};
static const int64_t arr_i64[2] = {INT64_MIN, INT64_MAX};
static const uint8_t arr_bool[3] = {1, 0, 1};
static float arr_f32[3];
static double arr_f64[3];
static const struct mcb_gguf_str arr_str[3] = {{"a", 1}, {"", 0}, {"<0x0A>", 6}};

struct fix {
	float t_f32[8];        /* ne [4, 2] */
	uint16_t t_f16[8];     /* ne [8] */
	uint16_t t_bf16[8];    /* ne [2, 2, 2] */
	unsigned char q8[68];  /* ne [64], Q8_0 */
	int8_t t_i8[3];        /* ne [3] */
	float last[16];        /* ne [16]: 64 bytes, so nothing pads the end */
};

static void set_arr(struct mcb_gguf_writer *w, const char *key, uint32_t type, uint64_t n,
		    const void *data)
{
	struct mcb_gguf_value v = {.type = MCB_GGUF_ARR};

	v.v.arr.type = type;
	v.v.arr.count = n;
	v.v.arr.data = data;
	mcb_gguf_set(w, key, &v);
}

static void set_scalar(struct mcb_gguf_writer *w, const char *key, uint32_t type, uint64_t u,
		       int64_t i, double f)
{
	struct mcb_gguf_value v = {.type = type};

	if (type == MCB_GGUF_I8 || type == MCB_GGUF_I16 || type == MCB_GGUF_I32 ||
	    type == MCB_GGUF_I64)
		v.v.i = i;
	else if (type == MCB_GGUF_F32 || type == MCB_GGUF_F64)
		v.v.f = f;
	else
		v.v.u = u;
	mcb_gguf_set(w, key, &v);
}

static void fill_fixture(struct mcb_gguf_writer *w, struct fix *x, struct mcb_errctx *e)
{
	uint64_t ne[4];
	int i;

	arr_f32[0] = 1.5f, arr_f32[1] = -0.0f, arr_f32[2] = NAN;
	arr_f64[0] = 1e300, arr_f64[1] = -INFINITY, arr_f64[2] = 5e-324;
	for (i = 0; i < 8; i++) {
		x->t_f32[i] = (float)i * 0.5f;
		x->t_f16[i] = mcb_f32_to_f16((float)i);
		x->t_bf16[i] = mcb_f32_to_bf16((float)-i);
	}
	for (i = 0; i < 68; i++)
		x->q8[i] = (unsigned char)(i * 7);
	x->t_i8[0] = -1, x->t_i8[1] = 2, x->t_i8[2] = -3;
	for (i = 0; i < 16; i++)
		x->last[i] = (float)(100 + i);
	mcb_gguf_set_str(w, "general.architecture", "test");
	set_scalar(w, "t.u8", MCB_GGUF_U8, 200, 0, 0);
	set_scalar(w, "t.i8", MCB_GGUF_I8, 0, -100, 0);
	set_scalar(w, "t.u16", MCB_GGUF_U16, 65535, 0, 0);
	set_scalar(w, "t.i16", MCB_GGUF_I16, 0, -32768, 0);
	mcb_gguf_set_u32(w, "t.u32", 4000000000u);
	mcb_gguf_set_i32(w, "t.i32", -2000000000);
	mcb_gguf_set_f32(w, "t.f32", 1e-5f);
	mcb_gguf_set_bool(w, "t.bool", 1);
	mcb_gguf_set_str(w, "t.str", "h\xc3\xa9llo"); /* UTF-8 */
	set_scalar(w, "t.u64", MCB_GGUF_U64, UINT64_MAX, 0, 0);
	set_scalar(w, "t.i64", MCB_GGUF_I64, 0, INT64_MIN, 0);
	set_scalar(w, "t.f64", MCB_GGUF_F64, 0, 0, 0.1);
	set_scalar(w, "t.f32inf", MCB_GGUF_F32, 0, 0, -INFINITY);
	set_arr(w, "a.u8", MCB_GGUF_U8, 3, arr_u8);
	set_arr(w, "a.i8", MCB_GGUF_I8, 3, arr_i8);
	set_arr(w, "a.u16", MCB_GGUF_U16, 2, arr_u16);
	set_arr(w, "a.i16", MCB_GGUF_I16, 2, arr_i16);
	set_arr(w, "a.u32", MCB_GGUF_U32, 2, arr_u32);
	set_arr(w, "a.i32", MCB_GGUF_I32, 2, arr_i32);
	set_arr(w, "a.f32", MCB_GGUF_F32, 3, arr_f32);
	set_arr(w, "a.bool", MCB_GGUF_BOOL, 3, arr_bool);
	set_arr(w, "a.str", MCB_GGUF_STR, 3, arr_str);
	set_arr(w, "a.u64", MCB_GGUF_U64, 2, arr_u64);
	set_arr(w, "a.i64", MCB_GGUF_I64, 2, arr_i64);
	set_arr(w, "a.f64", MCB_GGUF_F64, 3, arr_f64);
	set_arr(w, "a.empty", MCB_GGUF_I32, 0, NULL);
	ne[0] = 4, ne[1] = 2;
	CHECK_OK(mcb_gguf_add_tensor(w, "f32", 0, 2, ne, x->t_f32, 32, e), e);
	ne[0] = 8;
	CHECK_OK(mcb_gguf_add_tensor(w, "f16", 1, 1, ne, x->t_f16, 16, e), e);
	ne[0] = ne[1] = ne[2] = 2;
	CHECK_OK(mcb_gguf_add_tensor(w, "bf16", 30, 3, ne, x->t_bf16, 16, e), e);
	ne[0] = 64;
	CHECK_OK(mcb_gguf_add_tensor(w, "q8", 8, 1, ne, x->q8, 68, e), e);
	ne[0] = 3;
	CHECK_OK(mcb_gguf_add_tensor(w, "i8", 24, 1, ne, x->t_i8, 3, e), e);
	ne[0] = 16;
	CHECK_OK(mcb_gguf_add_tensor(w, "last", 0, 1, ne, x->last, 64, e), e);
}

/* Write the fixture to path; returns the file size. */
static size_t write_fixture(const char *path, struct fix *x, uint32_t align)
{
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	struct mcb_errctx e;
	size_t size = 0;
	unsigned char *p;

	fill_fixture(w, x, &e);
	if (align)
		mcb_gguf_set_u32(w, "general.alignment", align);
	CHECK_OK(mcb_gguf_write(w, path, &e), &e);
	mcb_gguf_writer_free(w);
	p = slurp(path, &size);
	free(p);
	return size;
}

static void test_roundtrip(void)
{
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096];
	struct fix x;
	struct mcb_gguf g;
	struct mcb_errctx e;
	const struct mcb_gguf_kv *kv;
	const struct mcb_gguf_tensor *t;
	unsigned char *a, *b;
	size_t na, nb, i;
	uint64_t off = 0;
	static const uint64_t sizes[6] = {32, 16, 16, 68, 3, 64};

	snprintf(p1, sizeof(p1), "%s/a.gguf", dir);
	snprintf(p2, sizeof(p2), "%s/b.gguf", dir);
	write_fixture(p1, &x, 0);
	write_fixture(p2, &x, 0);
	a = slurp(p1, &na);
	b = slurp(p2, &nb);
	CHECK(a && b && na == nb && memcmp(a, b, na) == 0); /* deterministic */
	free(a);
	free(b);
	CHECK_OK(mcb_gguf_open(p1, &g, &e), &e);
	CHECK_EQ(g.version, 3);
	CHECK_EQ(g.alignment, 32);
	CHECK_EQ(g.nkv, 27);
	CHECK_EQ(g.ntensors, 6);
	CHECK_EQ(g.data_offset % 32, 0);
	CHECK_STR(g.kv[0].key, "general.architecture"); /* insertion order kept */
	kv = mcb_gguf_find(&g, "t.u8");
	CHECK(kv && kv->val.type == MCB_GGUF_U8 && kv->val.v.u == 200);
	kv = mcb_gguf_find(&g, "t.i8");
	CHECK(kv && kv->val.type == MCB_GGUF_I8 && kv->val.v.i == -100);
	kv = mcb_gguf_find(&g, "t.u16");
	CHECK(kv && kv->val.v.u == 65535);
	kv = mcb_gguf_find(&g, "t.i16");
	CHECK(kv && kv->val.v.i == -32768);
	kv = mcb_gguf_find(&g, "t.u32");
	CHECK(kv && kv->val.type == MCB_GGUF_U32 && kv->val.v.u == 4000000000u);
	kv = mcb_gguf_find(&g, "t.i32");
	CHECK(kv && kv->val.v.i == -2000000000);
	kv = mcb_gguf_find(&g, "t.f32");
	CHECK(kv && kv->val.type == MCB_GGUF_F32 && (float)kv->val.v.f == 1e-5f);
	kv = mcb_gguf_find(&g, "t.bool");
	CHECK(kv && kv->val.type == MCB_GGUF_BOOL && kv->val.v.u == 1);
	kv = mcb_gguf_find(&g, "t.str");
	CHECK(kv && kv->val.type == MCB_GGUF_STR && kv->val.v.str.len == 6);
	CHECK(kv && !strcmp(kv->val.v.str.s, "h\xc3\xa9llo"));
	kv = mcb_gguf_find(&g, "t.u64");
	CHECK(kv && kv->val.v.u == UINT64_MAX);
	kv = mcb_gguf_find(&g, "t.i64");
	CHECK(kv && kv->val.v.i == INT64_MIN);
	kv = mcb_gguf_find(&g, "t.f64");
	CHECK(kv && kv->val.type == MCB_GGUF_F64 && kv->val.v.f == 0.1);
	kv = mcb_gguf_find(&g, "a.i16");
	CHECK(kv && kv->val.type == MCB_GGUF_ARR && kv->val.v.arr.type == MCB_GGUF_I16 &&
	      kv->val.v.arr.count == 2 && !memcmp(kv->val.v.arr.data, arr_i16, 4));
	kv = mcb_gguf_find(&g, "a.f64");
	CHECK(kv && kv->val.v.arr.count == 3 && !memcmp(kv->val.v.arr.data, arr_f64, 24));
	kv = mcb_gguf_find(&g, "a.f32");
	CHECK(kv && !memcmp(kv->val.v.arr.data, arr_f32, 12));
	kv = mcb_gguf_find(&g, "a.str");
	if (kv && kv->val.v.arr.type == MCB_GGUF_STR && kv->val.v.arr.count == 3) {
		const struct mcb_gguf_str *s = kv->val.v.arr.data;

		CHECK_STR(s[0].s, "a");
		CHECK(s[1].len == 0 && s[1].s[0] == 0);
		CHECK_STR(s[2].s, "<0x0A>");
	} else {
		CHECK(!"a.str");
	}
	kv = mcb_gguf_find(&g, "a.empty");
	CHECK(kv && kv->val.v.arr.count == 0 && kv->val.v.arr.type == MCB_GGUF_I32);
	CHECK(mcb_gguf_find(&g, "nope") == NULL);
	for (i = 0; i < g.ntensors && i < 6; i++) {
		t = &g.tensors[i];
		CHECK_EQ(t->offset, off);
		CHECK_EQ(t->nbytes, sizes[i]);
		CHECK((const unsigned char *)t->data == g.map.data + g.data_offset + off);
		off += (sizes[i] + 31) / 32 * 32;
	}
	CHECK_EQ(g.data_offset + off, g.map.size);
	t = mcb_gguf_find_tensor(&g, "bf16");
	CHECK(t && t->n_dims == 3 && t->ne[2] == 2 && t->ne[3] == 1 && t->type == 30);
	CHECK(t && !memcmp(t->data, x.t_bf16, 16));
	t = mcb_gguf_find_tensor(&g, "q8");
	CHECK(t && t->type == 8 && !memcmp(t->data, x.q8, 68));
	t = mcb_gguf_find_tensor(&g, "last");
	CHECK(t && !memcmp(t->data, x.last, 64));
	mcb_gguf_close(&g);
	mcb_gguf_close(&g); /* harmless twice */
}

static void test_alignment(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct fix x;
	struct mcb_gguf g;
	struct mcb_errctx e;
	size_t i;

	snprintf(path, sizeof(path), "%s/a64.gguf", dir);
	write_fixture(path, &x, 64);
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	CHECK_EQ(g.alignment, 64);
	CHECK_EQ(g.data_offset % 64, 0);
	for (i = 0; i < g.ntensors; i++)
		CHECK_EQ(g.tensors[i].offset % 64, 0);
	CHECK_EQ(g.tensors[5].offset, 64 * 3 + 128 + 64);
	mcb_gguf_close(&g);
	write_fixture(path, &x, 1);
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	CHECK_EQ(g.alignment, 1);
	CHECK_EQ(g.tensors[5].offset, 32 + 16 + 16 + 68 + 3);
	mcb_gguf_close(&g);
}

/* Expect path to be rejected with code and sub; the message names the file. */
static void expect_reject(const char *path, int code, const char *sub)
{
	struct mcb_errctx e;
	struct mcb_gguf g;

	mcb_errclear(&e);
	CHECK_ERR(mcb_gguf_open(path, &g, &e), &e, code, sub);
	if (!strstr(e.msg, path))
		mcbt_fail(__FILE__, __LINE__, "message \"%s\" does not name %s", e.msg, path);
}

static void test_truncated(void)
{
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096];
	struct fix x;
	unsigned char *a;
	size_t na, cut;

	snprintf(p1, sizeof(p1), "%s/full.gguf", dir);
	snprintf(p2, sizeof(p2), "%s/cut.gguf", dir);
	write_fixture(p1, &x, 0);
	a = slurp(p1, &na);
	for (cut = 0; a && cut < na; cut++) {
		struct mcb_errctx e;
		struct mcb_gguf g;
		int rc;

		mcbt_write(p2, a, cut);
		mcb_errclear(&e);
		rc = mcb_gguf_open(p2, &g, &e);
		if (rc != MCB_EFORMAT || !strstr(e.msg, p2))
			mcbt_fail(__FILE__, __LINE__, "cut at %zu: rc %d \"%s\"", cut, rc, e.msg);
	}
	free(a);
}

/* ---- hand-built files for field-level mutations ---- */

static void b_u32(struct mcb_buf *b, uint32_t v)
{
	mcb_buf_add(b, &v, 4);
}

static void b_u64(struct mcb_buf *b, uint64_t v)
{
	mcb_buf_add(b, &v, 8);
}

static void b_str(struct mcb_buf *b, const char *s)
{
	b_u64(b, strlen(s));
	mcb_buf_adds(b, s);
}

static void b_head(struct mcb_buf *b, uint64_t nt, uint64_t nkv)
{
	b_u32(b, 0x46554747u);
	b_u32(b, 3);
	b_u64(b, nt);
	b_u64(b, nkv);
}

/* A tensor info: 1-D of n elements of type, at offset. */
static void b_info(struct mcb_buf *b, const char *name, uint64_t n, uint32_t type, uint64_t off)
{
	b_str(b, name);
	b_u32(b, 1);
	b_u64(b, n);
	b_u32(b, type);
	b_u64(b, off);
}

/* Pad to 32 and append nbytes of data. */
static void b_data(struct mcb_buf *b, size_t nbytes)
{
	while (b->len % 32)
		mcb_buf_addc(b, 0);
	while (nbytes--)
		mcb_buf_addc(b, 1);
}

static void test_hostile_fields(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_buf b = MCB_BUF_INIT;
	int k;

	snprintf(path, sizeof(path), "%s/h.gguf", dir);
#define REJECT(code, sub)                                  \
	do {                                               \
		mcbt_write(path, b.data, b.len);           \
		expect_reject(path, code, sub);            \
		mcb_buf_reset(&b);                         \
	} while (0)
	/* a valid minimal file first */
	b_head(&b, 1, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_U8);
	mcb_buf_addc(&b, 7);
	b_info(&b, "t", 8, 0, 0);
	b_data(&b, 32);
	mcbt_write(path, b.data, b.len);
	{
		struct mcb_errctx e;
		struct mcb_gguf g;

		CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
		mcb_gguf_close(&g);
	}
	mcb_buf_reset(&b);

	mcb_buf_adds(&b, "GGUG");
	b_u32(&b, 3);
	b_u64(&b, 0);
	b_u64(&b, 0);
	REJECT(MCB_EFORMAT, "at byte 0: bad magic 0x47554747");
	b_u32(&b, 0x46554747u);
	b_u32(&b, 2);
	b_u64(&b, 0);
	b_u64(&b, 0);
	REJECT(MCB_EUNSUP, "GGUF version 2 is not supported");
	b_head(&b, (1u << 20) + 1, 0);
	REJECT(MCB_EFORMAT, "at byte 8: tensor count 1048577 exceeds the limit");
	b_head(&b, 0, UINT64_MAX);
	REJECT(MCB_EFORMAT, "at byte 16: key count 18446744073709551615 exceeds the limit");
	b_head(&b, 1000, 1000); /* plausible counts in a tiny file */
	REJECT(MCB_EFORMAT, "cannot fit in the remaining 0 bytes");
	b_head(&b, 0, 1);
	b_u64(&b, 70000);
	for (k = 0; k < 70000; k++)
		mcb_buf_addc(&b, 'k');
	b_u32(&b, MCB_GGUF_U8);
	mcb_buf_addc(&b, 0);
	REJECT(MCB_EFORMAT, "at byte 24: key length 70000 exceeds the limit of 65535");
	b_head(&b, 0, 1);
	b_u64(&b, UINT64_MAX);
	b_u64(&b, 0);
	REJECT(MCB_EFORMAT, "key length 18446744073709551615 exceeds");
	b_head(&b, 0, 1);
	b_u64(&b, 100);
	mcb_buf_adds(&b, "abcdefghijklmn");
	REJECT(MCB_EFORMAT, "file ends inside the key (needs 100 bytes, 14 left)");
	b_head(&b, 0, 1);
	b_str(&b, "");
	b_u32(&b, 0);
	mcb_buf_add(&b, "\0\0", 2);
	REJECT(MCB_EFORMAT, "at byte 24: empty key");
	b_head(&b, 0, 1);
	b_u64(&b, 3);
	mcb_buf_add(&b, "a\0b", 3);
	b_u32(&b, 0);
	mcb_buf_addc(&b, 0);
	REJECT(MCB_EFORMAT, "key contains a NUL byte");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, 13);
	b_u64(&b, 0);
	REJECT(MCB_EFORMAT, "at byte 33: key 'k' has unknown value type 13");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_BOOL);
	mcb_buf_addc(&b, 2);
	REJECT(MCB_EFORMAT, "key 'k': bool value is 2");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_STR);
	b_u64(&b, (1u << 24) + 1);
	REJECT(MCB_EFORMAT, "string value length 16777217 exceeds the limit of 16777216");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, MCB_GGUF_ARR);
	b_u64(&b, 1);
	b_u32(&b, MCB_GGUF_U8);
	b_u64(&b, 0);
	REJECT(MCB_EFORMAT, "key 'k': nested arrays are not supported");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, 99);
	b_u64(&b, 0);
	REJECT(MCB_EFORMAT, "unknown array element type 99");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, MCB_GGUF_U64);
	b_u64(&b, UINT64_MAX / 4);
	b_u64(&b, 1);
	REJECT(MCB_EFORMAT, "array count 4611686018427387903 exceeds what the remaining 8 bytes can hold");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, MCB_GGUF_STR);
	b_u64(&b, 2);
	b_str(&b, "x");
	REJECT(MCB_EFORMAT, "array count 2 exceeds what the remaining 9 bytes can hold");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, MCB_GGUF_STR);
	b_u64(&b, 2);
	b_str(&b, "x");
	b_u64(&b, 1u << 20);
	REJECT(MCB_EFORMAT, "file ends inside the string value (needs 1048576 bytes, 0 left)");
	b_head(&b, 0, 1);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_ARR);
	b_u32(&b, MCB_GGUF_BOOL);
	b_u64(&b, 2);
	mcb_buf_add(&b, "\x01\x05", 2);
	REJECT(MCB_EFORMAT, "bool element 1 is 5");
	b_head(&b, 0, 2);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_U8);
	mcb_buf_addc(&b, 0);
	b_str(&b, "k");
	b_u32(&b, MCB_GGUF_U8);
	mcb_buf_addc(&b, 1);
	REJECT(MCB_EFORMAT, "duplicate key 'k'");

	/* alignment */
	b_head(&b, 0, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, MCB_GGUF_U64);
	b_u64(&b, 32);
	REJECT(MCB_EFORMAT, "general.alignment has type u64, expected u32");
	b_head(&b, 0, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, MCB_GGUF_U32);
	b_u32(&b, 48);
	REJECT(MCB_EFORMAT, "general.alignment 48 is not a power of two");
	b_head(&b, 0, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, MCB_GGUF_U32);
	b_u32(&b, 0);
	REJECT(MCB_EFORMAT, "general.alignment 0 is not a power of two");
	b_head(&b, 0, 1);
	b_str(&b, "general.alignment");
	b_u32(&b, MCB_GGUF_U32);
	b_u32(&b, 131072);
	REJECT(MCB_EFORMAT, "general.alignment 131072");

	/* tensor infos */
	b_head(&b, 1, 0);
	b_info(&b, "0123456789012345678901234567890123456789012345678901234567890123", 8, 0, 0);
	b_data(&b, 32);
	REJECT(MCB_EFORMAT, "at byte 24: tensor name length 64 exceeds the limit of 63");
	b_head(&b, 1, 0);
	b_info(&b, "", 8, 0, 0);
	b_data(&b, 32);
	REJECT(MCB_EFORMAT, "empty tensor name");
	b_head(&b, 1, 0);
	b_str(&b, "t");
	b_u32(&b, 0);
	b_u32(&b, 0);
	b_u64(&b, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't' has 0 dimensions (1..4)");
	b_head(&b, 1, 0);
	b_str(&b, "t");
	b_u32(&b, 5);
	for (k = 0; k < 5; k++)
		b_u64(&b, 1);
	b_u32(&b, 0);
	b_u64(&b, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't' has 5 dimensions");
	b_head(&b, 1, 0);
	b_str(&b, "t");
	b_u32(&b, 2);
	b_u64(&b, 1ull << 32);
	b_u64(&b, 1ull << 32);
	b_u32(&b, 0);
	b_u64(&b, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't': dimension 1 = 4294967296 makes the element count overflow");
	b_head(&b, 1, 0);
	b_str(&b, "t");
	b_u32(&b, 1);
	b_u64(&b, 1ull << 63);
	b_u32(&b, 0);
	b_u64(&b, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "dimension 0 = 9223372036854775808");
	b_head(&b, 1, 0);
	b_info(&b, "t", 1ull << 62, 0, 0); /* 2^62 floats: 2^64 bytes */
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't': size overflows");
	/* four 2^62-byte tensors: the running end wraps past 2^64 back to 0 */
	b_head(&b, 4, 0);
	b_info(&b, "a", 1ull << 62, 24, 0);
	b_info(&b, "b", 1ull << 62, 24, 1ull << 62);
	b_info(&b, "c", 1ull << 62, 24, 2ull << 62);
	b_info(&b, "d", 1ull << 62, 24, 3ull << 62);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 'd': offsets overflow");
	b_head(&b, 1, 0);
	b_info(&b, "t", 1ull << 40, 0, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor data ends at byte 4398046511168 but the file has 128 bytes");
	b_head(&b, 1, 0);
	b_info(&b, "t", 32, 4, 0); /* Q4_2: removed from ggml */
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't' has unknown ggml type id 4");
	b_head(&b, 1, 0);
	b_info(&b, "t", 32, 0xdeadbeef, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "unknown ggml type id 3735928559");
	b_head(&b, 1, 0);
	b_info(&b, "t", 33, 8, 0);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "ne[0] = 33 is not a multiple of the Q8_0 block size 32");
	b_head(&b, 1, 0);
	b_info(&b, "t", 8, 0, 32);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "tensor 't' offset 32 must be 0");
	b_head(&b, 2, 0);
	b_info(&b, "a", 8, 0, 0);
	b_info(&b, "b", 8, 0, 64);
	b_data(&b, 128);
	REJECT(MCB_EFORMAT, "tensor 'b' offset 64 does not follow the previous tensor (expected 32)");
	b_head(&b, 2, 0);
	b_info(&b, "a", 8, 0, 0);
	b_info(&b, "b", 8, 0, 16); /* unpadded: ggml requires the padding */
	b_data(&b, 128);
	REJECT(MCB_EFORMAT, "offset 16 does not follow the previous tensor (expected 32)");
	b_head(&b, 2, 0);
	b_info(&b, "a", 8, 0, 0);
	b_info(&b, "b", 8, 0, 0); /* overlapping */
	b_data(&b, 128);
	REJECT(MCB_EFORMAT, "offset 0 does not follow");
	b_head(&b, 2, 0);
	b_info(&b, "a", 8, 0, 0);
	b_info(&b, "a", 8, 0, 32);
	b_data(&b, 64);
	REJECT(MCB_EFORMAT, "duplicate tensor name 'a'");
	b_head(&b, 1, 0);
	b_info(&b, "t", 8, 0, 0);
	b_data(&b, 31); /* one byte short */
	REJECT(MCB_EFORMAT, "tensor data ends at byte 96 but the file has 95 bytes");
#undef REJECT
	mcb_buf_release(&b);
}

/* Setter misuse is reported when writing, with the key's name. */
static void test_writer_errors(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_gguf_writer *w;
	struct mcb_errctx e;
	struct mcb_gguf_value v = {.type = MCB_GGUF_ARR};
	uint64_t ne[4] = {8, 1, 1, 1};
	float data[8] = {0};

	snprintf(path, sizeof(path), "%s/w.gguf", dir);
	w = mcb_gguf_writer_new();
	v.v.arr.type = MCB_GGUF_ARR;
	mcb_gguf_set(w, "nested", &v);
	CHECK_ERR(mcb_gguf_write(w, path, &e), &e, MCB_EINVAL, "gguf key 'nested': bad array element type");
	mcb_gguf_writer_free(w);
	w = mcb_gguf_writer_new();
	set_scalar(w, "big", MCB_GGUF_U8, 256, 0, 0);
	CHECK_ERR(mcb_gguf_write(w, path, &e), &e, MCB_EINVAL, "gguf key 'big': value does not fit");
	mcb_gguf_writer_free(w);
	w = mcb_gguf_writer_new();
	mcb_gguf_set_u32(w, "general.alignment", 3);
	CHECK_ERR(mcb_gguf_write(w, path, &e), &e, MCB_EINVAL, "general.alignment must be a u32 power of two");
	mcb_gguf_writer_free(w);
	w = mcb_gguf_writer_new();
	CHECK_ERR(mcb_gguf_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123",
				      0, 1, ne, data, 32, &e), &e, MCB_EINVAL, "must be 1..63 bytes");
	CHECK_ERR(mcb_gguf_add_tensor(w, "t", 4, 1, ne, data, 32, &e), &e, MCB_EUNSUP,
		  "unknown ggml type id 4");
	CHECK_ERR(mcb_gguf_add_tensor(w, "t", 0, 1, ne, data, 31, &e), &e, MCB_EINVAL,
		  "31 bytes do not match");
	CHECK_ERR(mcb_gguf_add_tensor(w, "t", 0, 5, ne, data, 32, &e), &e, MCB_EINVAL, "5 dimensions");
	CHECK_ERR(mcb_gguf_add_tensor(w, "t", 8, 1, ne, data, 34, &e), &e, MCB_EINVAL,
		  "do not match its shape and type Q8_0");
	CHECK_OK(mcb_gguf_add_tensor(w, "t", 0, 1, ne, data, 32, &e), &e);
	CHECK_ERR(mcb_gguf_add_tensor(w, "t", 0, 1, ne, data, 32, &e), &e, MCB_EINVAL, "added twice");
	/* replacing a key keeps its position and the last value */
	mcb_gguf_set_u32(w, "a", 1);
	mcb_gguf_set_u32(w, "b", 2);
	mcb_gguf_set_str(w, "a", "x");
	CHECK_OK(mcb_gguf_write(w, path, &e), &e);
	mcb_gguf_writer_free(w);
	{
		struct mcb_gguf g;

		CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
		CHECK(g.nkv == 2 && !strcmp(g.kv[0].key, "a") && g.kv[0].val.type == MCB_GGUF_STR);
		mcb_gguf_close(&g);
	}
	CHECK_ERR(mcb_gguf_open("/nonexistent.gguf", &(struct mcb_gguf){0}, &e), &e, MCB_ENOENT,
		  "/nonexistent.gguf");
}

/* ---- models ---- */

static uint32_t lcg = 1;

static float rnd(void)
{
	lcg = lcg * 1664525u + 1013904223u;
	return (float)(lcg >> 8) / (float)(1u << 24) - 0.5f;
}

static void add_rand(struct mcb_model *m, const char *name, enum mcb_dtype dt, int64_t d0, int64_t d1)
{
	struct mcb_errctx e;
	struct mcb_tensor *t;
	int64_t shape[2] = {d0, d1};
	int64_t i, n = d0 * (d1 ? d1 : 1);

	if (mcb_model_new_tensor(m, name, dt, d1 ? 2 : 1, shape, &t, &e)) {
		CHECK(!"new_tensor");
		return;
	}
	for (i = 0; i < n; i++) {
		float f = rnd();
		uint16_t h;

		if (dt == MCB_DT_F32) {
			memcpy((char *)t->data + 4 * i, &f, 4);
		} else {
			h = dt == MCB_DT_F16 ? mcb_f32_to_f16(f) : mcb_f32_to_bf16(f);
			memcpy((char *)t->data + 2 * i, &h, 2);
		}
	}
}

/* A small random Llama model; matrices of dtype dt, norms F32. */
static void synth(struct mcb_model *m, int tied, enum mcb_dtype dt)
{
	struct mcb_llama_config *c = &m->cfg;
	char name[64];
	int l;

	strcpy(m->arch, "llama");
	*c = (struct mcb_llama_config){8, 12, 2, 2, 1, 10, 16, 4, 1e-5, 10000.0, tied};
	add_rand(m, "token_embd.weight", dt, 10, 8);
	for (l = 0; l < 2; l++) {
#define L(s) (snprintf(name, sizeof(name), "blk.%d.%s.weight", l, s), name)
		add_rand(m, L("attn_norm"), MCB_DT_F32, 8, 0);
		add_rand(m, L("attn_q"), dt, 8, 8);
		add_rand(m, L("attn_k"), dt, 4, 8);
		add_rand(m, L("attn_v"), dt, 4, 8);
		add_rand(m, L("attn_output"), dt, 8, 8);
		add_rand(m, L("ffn_norm"), MCB_DT_F32, 8, 0);
		add_rand(m, L("ffn_gate"), dt, 12, 8);
		add_rand(m, L("ffn_up"), dt, 12, 8);
		add_rand(m, L("ffn_down"), dt, 8, 12);
#undef L
	}
	add_rand(m, "output_norm.weight", MCB_DT_F32, 8, 0);
	if (!tied)
		add_rand(m, "output.weight", dt, 10, 8);
}

/* Write m as a llama GGUF: the hyper-parameters, meta["gguf"], then tensors. */
static int write_model(const struct mcb_model *m, const char *path, struct mcb_errctx *e)
{
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	const struct mcb_llama_config *c = &m->cfg;
	uint64_t ne[4];
	size_t i;
	int j, rc = 0;

	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len);
	mcb_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
	mcb_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers);
	mcb_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
	mcb_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
	mcb_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
	mcb_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
	mcb_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", (float)c->norm_eps);
	mcb_gguf_set_f32(w, "llama.rope.freq_base", (float)c->rope_theta);
	if ((rc = mcb_gguf_set_meta(w, json_object_get(m->meta, "gguf"), e)))
		goto out;
	for (i = 0; i < m->ntensors; i++) {
		const struct mcb_tensor *t = &m->tensors[i];

		for (j = 0; j < t->ndim; j++)
			ne[j] = (uint64_t)t->shape[t->ndim - 1 - j];
		if ((rc = mcb_gguf_add_tensor(w, t->name,
					      (uint32_t)mcb_dtype_info(t->dtype)->ggml_type,
					      (uint32_t)t->ndim, ne, t->data, t->nbytes, e)))
			goto out;
	}
	rc = mcb_gguf_write(w, path, e);
out:
	mcb_gguf_writer_free(w);
	return rc;
}

static void check_same_tensors(const struct mcb_model *a, const struct mcb_model *b)
{
	size_t i;

	CHECK_EQ(a->ntensors, b->ntensors);
	for (i = 0; i < a->ntensors; i++) {
		const struct mcb_tensor *x = &a->tensors[i];
		const struct mcb_tensor *y = mcb_model_find(b, x->name);

		if (!y) {
			mcbt_fail(__FILE__, __LINE__, "tensor %s missing", x->name);
			continue;
		}
		if (x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
		    memcmp(x->shape, y->shape, sizeof(x->shape)) ||
		    memcmp(x->data, y->data, x->nbytes))
			mcbt_fail(__FILE__, __LINE__, "tensor %s differs", x->name);
	}
}

static void check_same_config(const struct mcb_llama_config *a, const struct mcb_llama_config *b)
{
	CHECK_EQ(a->dim, b->dim);
	CHECK_EQ(a->hidden_dim, b->hidden_dim);
	CHECK_EQ(a->n_layers, b->n_layers);
	CHECK_EQ(a->n_heads, b->n_heads);
	CHECK_EQ(a->n_kv_heads, b->n_kv_heads);
	CHECK_EQ(a->vocab_size, b->vocab_size);
	CHECK_EQ(a->seq_len, b->seq_len);
	CHECK_EQ(a->head_dim, b->head_dim);
	CHECK((float)a->norm_eps == (float)b->norm_eps); /* GGUF stores an f32 */
	CHECK((float)a->rope_theta == (float)b->rope_theta);
	CHECK_EQ(a->tied_embeddings, b->tied_embeddings);
}

static void test_read_model(void)
{
	const char *dir = mcbt_tmpdir();
	char p1[4096], p2[4096], p3[4096];
	struct mcb_model m, r, r2;
	struct mcb_errctx e;
	struct mcb_gguf g1, g2;
	json_t *gg;
	size_t i;
	int tied;

	snprintf(p1, sizeof(p1), "%s/m.gguf", dir);
	snprintf(p2, sizeof(p2), "%s/m2.gguf", dir);
	snprintf(p3, sizeof(p3), "%s/fixture.gguf", dir);
	for (tied = 0; tied < 2; tied++) {
		struct fix x;
		struct mcb_gguf_writer *w;

		mcb_model_init(&m);
		synth(&m, tied, tied ? MCB_DT_F16 : MCB_DT_BF16);
		CHECK_OK(mcb_model_check_llama(&m, "synth", &e), &e);
		/* passthrough keys of every type: take them from the fixture file */
		w = mcb_gguf_writer_new();
		fill_fixture(w, &x, &e);
		mcb_gguf_set_str(w, "tokenizer.ggml.model", "llama");
		{
			struct mcb_gguf_str toks[10];
			char buf[10][16];
			int k;

			for (k = 0; k < 10; k++) {
				snprintf(buf[k], sizeof(buf[k]), "tok%d", k);
				toks[k].s = buf[k];
				toks[k].len = strlen(buf[k]);
			}
			set_arr(w, "tokenizer.ggml.tokens", MCB_GGUF_STR, 10, toks);
		}
		CHECK_OK(mcb_gguf_write(w, p3, &e), &e);
		mcb_gguf_writer_free(w);

		/* model + those keys -> GGUF -> model */
		{
			struct mcb_gguf_writer *w2 = mcb_gguf_writer_new();
			struct mcb_gguf g;
			uint64_t ne[4];
			size_t k;
			int j;

			CHECK_OK(mcb_gguf_open(p3, &g, &e), &e);
			for (k = 0; k < g.nkv; k++)
				if (strcmp(g.kv[k].key, "general.architecture"))
					mcb_gguf_set(w2, g.kv[k].key, &g.kv[k].val);
			mcb_gguf_set_str(w2, "general.architecture", "llama");
			mcb_gguf_set_u32(w2, "llama.context_length", 16);
			mcb_gguf_set_u32(w2, "llama.embedding_length", 8);
			mcb_gguf_set_u32(w2, "llama.block_count", 2);
			mcb_gguf_set_u32(w2, "llama.feed_forward_length", 12);
			mcb_gguf_set_u32(w2, "llama.attention.head_count", 2);
			mcb_gguf_set_u32(w2, "llama.attention.head_count_kv", 1);
			mcb_gguf_set_f32(w2, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
			for (k = 0; k < m.ntensors; k++) {
				const struct mcb_tensor *t = &m.tensors[k];

				for (j = 0; j < t->ndim; j++)
					ne[j] = (uint64_t)t->shape[t->ndim - 1 - j];
				CHECK_OK(mcb_gguf_add_tensor(w2, t->name,
							     (uint32_t)mcb_dtype_info(t->dtype)->ggml_type,
							     (uint32_t)t->ndim, ne, t->data, t->nbytes, &e),
					 &e);
			}
			CHECK_OK(mcb_gguf_write(w2, p1, &e), &e);
			mcb_gguf_writer_free(w2);
			mcb_gguf_close(&g);
		}
		mcb_model_init(&r);
		CHECK_OK(mcb_gguf_read_model(p1, &r, &e), &e);
		check_same_config(&m.cfg, &r.cfg);
		CHECK(r.cfg.rope_theta == 10000.0); /* default */
		check_same_tensors(&m, &r);
		CHECK(r.map.data != NULL);
		for (i = 0; i < r.ntensors; i++)
			CHECK_EQ(r.tensors[i].owned, 0);
		gg = json_object_get(r.meta, "gguf");
		CHECK(json_object_get(gg, "llama.block_count") == NULL);
		CHECK(json_object_get(gg, "general.architecture") == NULL);
		CHECK_STR(json_string_value(json_object_get(json_object_get(gg, "t.u64"), "value")),
			  "18446744073709551615");
		CHECK_STR(json_string_value(json_object_get(json_object_get(gg, "t.u64"), "type")), "u64");
		CHECK_EQ(json_integer_value(json_object_get(json_object_get(gg, "t.i8"), "value")), -100);
		CHECK_STR(json_string_value(json_object_get(json_object_get(gg, "t.f32inf"), "value")),
			  "0xff800000");
		CHECK_STR(json_string_value(json_object_get(json_object_get(gg, "a.f32"), "elem")), "f32");
		CHECK_STR(json_string_value(json_array_get(json_object_get(json_object_get(gg, "a.f32"),
									   "value"), 2)), "0x7fc00000");
		CHECK_STR(json_string_value(json_object_get(json_object_get(r.meta, "source"), "format")),
			  "gguf");
		/* and back: the model's meta["gguf"] written again reproduces every value */
		CHECK_OK(write_model(&r, p2, &e), &e);
		mcb_model_init(&r2);
		CHECK_OK(mcb_gguf_read_model(p2, &r2, &e), &e);
		check_same_tensors(&r, &r2);
		CHECK(json_equal(r.meta, r2.meta));
		CHECK_OK(mcb_gguf_open(p1, &g1, &e), &e);
		CHECK_OK(mcb_gguf_open(p2, &g2, &e), &e);
		for (i = 0; i < g1.nkv; i++) {
			const struct mcb_gguf_value *a = &g1.kv[i].val, *b;
			const struct mcb_gguf_kv *kv2 = mcb_gguf_find(&g2, g1.kv[i].key);

			if (!kv2) {
				mcbt_fail(__FILE__, __LINE__, "key %s lost", g1.kv[i].key);
				continue;
			}
			b = &kv2->val;
			if (a->type != b->type)
				mcbt_fail(__FILE__, __LINE__, "key %s changed type", g1.kv[i].key);
			else if (a->type == MCB_GGUF_ARR && a->v.arr.type != MCB_GGUF_STR)
				CHECK(a->v.arr.type == b->v.arr.type && a->v.arr.count == b->v.arr.count &&
				      !memcmp(a->v.arr.data, b->v.arr.data, a->v.arr.count *
					      (a->v.arr.type == MCB_GGUF_U8 || a->v.arr.type == MCB_GGUF_I8 ||
					       a->v.arr.type == MCB_GGUF_BOOL ? 1 :
					       a->v.arr.type == MCB_GGUF_U16 || a->v.arr.type == MCB_GGUF_I16 ? 2 :
					       a->v.arr.type == MCB_GGUF_U64 || a->v.arr.type == MCB_GGUF_I64 ||
					       a->v.arr.type == MCB_GGUF_F64 ? 8 : 4)));
			else if (a->type == MCB_GGUF_STR)
				CHECK(a->v.str.len == b->v.str.len && !strcmp(a->v.str.s, b->v.str.s));
			else if (a->type == MCB_GGUF_F32 || a->type == MCB_GGUF_F64)
				CHECK(!memcmp(&a->v.f, &b->v.f, 8));
			else if (a->type != MCB_GGUF_ARR)
				CHECK(a->v.u == b->v.u);
		}
		mcb_gguf_close(&g1);
		mcb_gguf_close(&g2);
		mcb_model_release(&r2);
		mcb_model_release(&r);
		mcb_model_release(&m);
	}
}

/* read_model's own checks, on top of the container's. */
static void test_read_model_errors(void)
{
	const char *dir = mcbt_tmpdir();
	char path[4096];
	struct mcb_model m, r;
	struct mcb_errctx e;
	struct mcb_gguf_writer *w;
	uint64_t ne[4] = {64, 1, 1, 1};
	unsigned char q[68] = {0};

	snprintf(path, sizeof(path), "%s/bad.gguf", dir);
	mcb_model_init(&m);
	synth(&m, 1, MCB_DT_F32);
#define EXPECT(code, sub)                                                       \
	do {                                                                    \
		mcb_model_init(&r);                                             \
		CHECK_ERR(mcb_gguf_read_model(path, &r, &e), &e, code, sub);    \
		CHECK(strstr(e.msg, path) != NULL);                             \
		CHECK_EQ(r.ntensors, 0);                                        \
		mcb_model_release(&r);                                          \
	} while (0)
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:s}}", "general.architecture",
							"type", "str", "value", "gpt2"));
	/* set_meta runs after the llama keys: general.architecture is replaced */
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EUNSUP, "architecture 'gpt2' is not supported");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:i}}", "llama.rope.dimension_count",
							"type", "u32", "value", 2));
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EUNSUP, "partial RoPE");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:f}}", "llama.block_count",
							"type", "f32", "value", 2.0));
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EFORMAT, "key 'llama.block_count' has type f32, expected an integer");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:s,s:[s]}}", "tokenizer.ggml.tokens",
							"type", "arr", "elem", "str", "value", "x"));
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EFORMAT, "tokenizer.ggml.tokens must be an array of 10 strings");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:i}}", "llama.block_count",
							"type", "u32", "value", 3));
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EFORMAT, "missing tensor 'blk.2.attn_norm.weight'");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:i}}", "llama.attention.head_count",
							"type", "i32", "value", 0));
	CHECK_OK(write_model(&m, path, &e), &e);
	EXPECT(MCB_EFORMAT, "n_heads 0 is out of range");
	json_object_set_new(m.meta, "gguf", json_pack("{s:{s:s,s:s}}", "bad", "type", "str",
							"value", "ok"));
	/* a string that is not UTF-8 cannot be carried in JSON */
	w = mcb_gguf_writer_new();
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_set_str(w, "x.bad", "\xff\xfe");
	CHECK_OK(mcb_gguf_write(w, path, &e), &e);
	mcb_gguf_writer_free(w);
	EXPECT(MCB_EFORMAT, "missing key 'llama.context_length'");
	/* a quantized tensor cannot be imported */
	json_object_clear(json_object_get(m.meta, "gguf"));
	{
		struct mcb_gguf_writer *w2 = mcb_gguf_writer_new();

		mcb_gguf_set_str(w2, "general.architecture", "llama");
		mcb_gguf_set_u32(w2, "llama.context_length", 16);
		mcb_gguf_set_u32(w2, "llama.embedding_length", 8);
		mcb_gguf_set_u32(w2, "llama.block_count", 2);
		mcb_gguf_set_u32(w2, "llama.feed_forward_length", 12);
		mcb_gguf_set_u32(w2, "llama.attention.head_count", 2);
		mcb_gguf_set_f32(w2, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
		mcb_gguf_set_str(w2, "x.bad", "\xff\xfe");
		ne[0] = 8, ne[1] = 10;
		CHECK_OK(mcb_gguf_add_tensor(w2, "token_embd.weight", 0, 2, ne,
					     mcb_model_find(&m, "token_embd.weight")->data, 320, &e), &e);
		CHECK_OK(mcb_gguf_write(w2, path, &e), &e);
		EXPECT(MCB_EUNSUP, "key 'x.bad' holds a string that is not valid UTF-8");
		ne[0] = 64, ne[1] = 1;
		CHECK_OK(mcb_gguf_add_tensor(w2, "q", 8, 1, ne, q, 68, &e), &e);
		mcb_gguf_set_str(w2, "x.bad", "fine");
		CHECK_OK(mcb_gguf_write(w2, path, &e), &e);
		EXPECT(MCB_EUNSUP, "tensor 'q' has type Q8_0 (ggml id 8); only F32, F16, BF16 and 2-D Q8_0");
		mcb_gguf_writer_free(w2);
	}
	/* bad passthrough JSON is reported by set_meta */
	w = mcb_gguf_writer_new();
	{
		json_t *bad = json_pack("{s:{s:s,s:i}}", "k", "type", "u8", "value", 256);

		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT,
			  "gguf metadata key 'k': value is not a valid u8");
		json_decref(bad);
		bad = json_pack("{s:{s:s,s:s,s:[i]}}", "k", "type", "arr", "elem", "arr", "value", 1);
		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT, "an array needs \"elem\"");
		json_decref(bad);
		bad = json_pack("{s:{s:s,s:s}}", "k", "type", "f32", "value", "0x7fc0000");
		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT, "not a valid f32");
		json_decref(bad);
		bad = json_pack("{s:{s:s,s:s}}", "k", "type", "u64", "value", "18446744073709551616");
		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT, "not a valid u64");
		json_decref(bad);
		bad = json_pack("{s:{s:s}}", "k", "type", "u8");
		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT, "needs \"type\" and \"value\"");
		json_decref(bad);
		bad = json_pack("{s:i}", "k", 1);
		CHECK_ERR(mcb_gguf_set_meta(w, bad, &e), &e, MCB_EFORMAT, "needs \"type\" and \"value\"");
		json_decref(bad);
	}
	mcb_gguf_writer_free(w);
#undef EXPECT
	mcb_model_release(&m);
}

static void test_real_model(void)
{
	const char *p = mcbt_shared("models/stories260K.bin");
	const char *dir;
	char src[4096], path[4096];
	struct mcb_model m, r;
	struct mcb_errctx e;
	struct mcb_gguf g;
	const struct mcb_gguf_tensor *t;

	if (!p)
		return;
	snprintf(src, sizeof(src), "%s", p);
	dir = mcbt_tmpdir();
	snprintf(path, sizeof(path), "%s/stories260K.gguf", dir);
	mcb_model_init(&m);
	CHECK_OK(mcb_llama2c_read(src, &m, &e), &e);
	CHECK_OK(write_model(&m, path, &e), &e);
	CHECK_EQ(mcb_model_detect(path, &e), MCB_FMT_GGUF);
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	t = mcb_gguf_find_tensor(&g, "blk.0.ffn_down.weight");
	CHECK(t && t->n_dims == 2 && t->ne[0] == 172 && t->ne[1] == 64); /* PyTorch [64, 172] */
	t = mcb_gguf_find_tensor(&g, "token_embd.weight");
	CHECK(t && t->ne[0] == 64 && t->ne[1] == 512);
	CHECK(mcb_gguf_find_tensor(&g, "output.weight") == NULL); /* tied */
	mcb_gguf_close(&g);
	mcb_model_init(&r);
	CHECK_OK(mcb_gguf_read_model(path, &r, &e), &e);
	check_same_config(&m.cfg, &r.cfg);
	CHECK_EQ(r.cfg.dim, 64);
	CHECK_EQ(r.cfg.tied_embeddings, 1);
	check_same_tensors(&m, &r);
	mcb_model_release(&r);
	mcb_model_release(&m);
}

static void test_corpus(void)
{
	char root[4096], path[8192];
	struct dirent *d;
	DIR *dp;
	int n = 0;

	snprintf(root, sizeof(root), "%s", mcbt_data("corpus/gguf"));
	dp = opendir(root);
	CHECK(dp != NULL);
	if (!dp)
		return;
	while ((d = readdir(dp))) {
		struct mcb_errctx e;
		struct mcb_model m;
		int rc;

		if (d->d_name[0] == '.' || !strcmp(d->d_name, "README"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", root, d->d_name);
		mcb_model_init(&m);
		mcb_errclear(&e);
		rc = mcb_gguf_read_model(path, &m, &e);
		if (rc >= 0 || !strstr(e.msg, path))
			mcbt_fail(__FILE__, __LINE__, "corpus file %s: rc %d, message \"%s\"", path, rc,
				  e.msg);
		mcb_model_release(&m);
		n++;
	}
	closedir(dp);
	CHECK(n >= 5);
}

/* Keys set in any order are written general.architecture first, then by name. */
static void test_sort_keys(void)
{
	struct mcb_gguf_writer *w = mcb_gguf_writer_new();
	struct mcb_errctx e;
	struct mcb_gguf g;
	char path[4096];

	snprintf(path, sizeof(path), "%s/sorted.gguf", mcbt_tmpdir());
	mcb_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	mcb_gguf_set_str(w, "general.name", "x");
	mcb_gguf_set_u32(w, "llama.block_count", 2);
	mcb_gguf_set_str(w, "general.architecture", "llama");
	mcb_gguf_sort_keys(w);
	CHECK_OK(mcb_gguf_write(w, path, &e), &e);
	mcb_gguf_writer_free(w);
	CHECK_OK(mcb_gguf_open(path, &g, &e), &e);
	CHECK_EQ(g.nkv, 4);
	if (g.nkv == 4) {
		CHECK_STR(g.kv[0].key, "general.architecture");
		CHECK_STR(g.kv[1].key, "general.name");
		CHECK_STR(g.kv[2].key, "llama.block_count");
		CHECK_STR(g.kv[3].key, "tokenizer.ggml.bos_token_id");
	}
	mcb_gguf_close(&g);
}

int main(void)
{
	RUN(test_sort_keys);
	RUN(test_roundtrip);
	RUN(test_alignment);
	RUN(test_truncated);
	RUN(test_hostile_fields);
	RUN(test_writer_errors);
	RUN(test_read_model);
	RUN(test_read_model_errors);
	RUN(test_real_model);
	RUN(test_corpus);
	return mcbt_done();
}
