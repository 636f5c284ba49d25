/* Unit tests for diag.c: output format, sorting, notes, limits, did-you-mean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/diag.h"

static const char *printed(const struct mcb_diags *d)
{
	static char *buf;
	size_t n = 0;
	FILE *f;

	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &n);
	mcb_diags_print(d, f);
	fclose(f);
	return buf;
}

static void test_format(void)
{
	struct mcb_diags d;
	struct mcb_loc full = {"mcbuild.yaml", 12, 3}, line = {"a.yaml", 4, 0},
		       file = {"b.yaml", 0, 0};

	mcb_diags_init(&d);
	mcb_diag_error(&d, &full, "unknown key '%s' (did you mean '%s'?)", "modles", "models");
	mcb_diag_warn(&d, &line, "warned %d", 1);
	mcb_diag_error(&d, &file, "cannot read");
	mcb_diag_error(&d, NULL, "no rule to make target '%s'", "x");
	CHECK_EQ(d.nerr, 3);
	CHECK_EQ(d.nwarn, 1);
	CHECK_EQ(d.n, 4);
	CHECK_STR(printed(&d),
		  "a.yaml:4: warning: warned 1\n"
		  "b.yaml: error: cannot read\n"
		  "mcbuild.yaml:12:3: error: unknown key 'modles' (did you mean 'models'?)\n"
		  "mcbuild: error: no rule to make target 'x'\n");
	mcb_diags_release(&d);
	CHECK_EQ(d.n, 0);
	CHECK(d.v == NULL);
	mcb_diags_init(&d);
	CHECK_STR(printed(&d), "");
	mcb_diags_release(&d);
}

static void test_sorting(void)
{
	struct mcb_diags d;
	struct mcb_loc l[] = {{"m.yaml", 10, 5}, {"m.yaml", 2, 9}, {"a.yaml", 30, 1},
			      {"m.yaml", 10, 5}, {"m.yaml", 10, 4}, {"m.yaml", 2, 10}};
	size_t i;

	mcb_diags_init(&d);
	for (i = 0; i < sizeof(l) / sizeof(l[0]); i++)
		mcb_diag_error(&d, &l[i], "e%zu", i);
	mcb_diag_error(&d, NULL, "late");
	mcb_diag_error(&d, NULL, "later");
	CHECK_STR(printed(&d), "a.yaml:30:1: error: e2\n"
			       "m.yaml:2:9: error: e1\n"
			       "m.yaml:2:10: error: e5\n"
			       "m.yaml:10:4: error: e4\n"
			       "m.yaml:10:5: error: e0\n"   /* same position: reporting order */
			       "m.yaml:10:5: error: e3\n"
			       "mcbuild: error: late\n"
			       "mcbuild: error: later\n");
	mcb_diags_release(&d);
}

static void test_notes_and_duplicates(void)
{
	struct mcb_diags d;
	struct mcb_loc a = {"f", 9, 1}, b = {"f", 1, 1}, n = {"g", 5, 5};

	mcb_diags_init(&d);
	mcb_diag_note(&d, &n, "orphan note");
	mcb_diag_error(&d, &a, "late error");
	mcb_diag_note(&d, &n, "about the late error");
	mcb_diag_error(&d, &b, "early error");
	mcb_diag_note(&d, &n, "about the early error");
	mcb_diag_error(&d, &a, "other");
	mcb_diag_error(&d, &a, "late error"); /* repeated: printed once */
	mcb_diag_note(&d, &n, "about the repeat");
	CHECK_EQ(d.nerr, 4);
	CHECK_STR(printed(&d), "f:1:1: error: early error\n"
			       "g:5:5: note: about the early error\n"
			       "f:9:1: error: late error\n"
			       "g:5:5: note: about the late error\n"
			       "f:9:1: error: other\n"
			       "g:5:5: note: orphan note\n");
	mcb_diags_release(&d);
}

static void test_limit(void)
{
	struct mcb_diags d;
	struct mcb_loc l = {"f", 1, 1};
	const char *out;
	int i;

	mcb_diags_init(&d);
	d.max = 3;
	for (i = 0; i < 10; i++) {
		l.line = i + 1;
		mcb_diag_error(&d, &l, "e%d", i);
	}
	CHECK_EQ(d.nerr, 10);
	CHECK_EQ(d.n, 3);
	out = printed(&d);
	CHECK_STR(out, "f:1:1: error: e0\nf:2:1: error: e1\nf:3:1: error: e2\n"
		       "mcbuild: note: 7 more errors and warnings not shown\n");
	mcb_diags_release(&d);
}

static void test_long_message(void)
{
	struct mcb_diags d;
	char *big = malloc(100001);

	memset(big, 'x', 100000);
	big[100000] = '\0';
	mcb_diags_init(&d);
	mcb_diag_error(&d, NULL, "%s", big);
	CHECK_EQ(strlen(d.v[0].msg), 100000);
	mcb_diags_release(&d);
	free(big);
}

static void test_didyoumean(void)
{
	static const char *const keys[] = {"models", "datasets", "schemes", "hardware", "targets",
					   "include", "cache", "default", "mcbuild"};
	static const char *const params[] = {"method", "bits", "granularity", "group_size",
					     "symmetric"};
	static const char *const ties[] = {"abd", "abe", "abf"};
	static const char *const hw[] = {"a100", "a100-40g", "a100-80g", "h100", "l4", "rtx4090"};
	char *longword = malloc(5001);
	const char *longcands[2];

	CHECK_STR(mcb_didyoumean("modles", keys, 9), "models");     /* transposition: 1 */
	CHECK_STR(mcb_didyoumean("targts", keys, 9), "targets");    /* deletion */
	CHECK_STR(mcb_didyoumean("hardwares", keys, 9), "hardware");
	CHECK_STR(mcb_didyoumean("cahce", keys, 9), "cache");
	CHECK(mcb_didyoumean("zebra", keys, 9) == NULL);
	CHECK(mcb_didyoumean("mod", keys, 9) == NULL);              /* 3 edits > 1 */
	CHECK_STR(mcb_didyoumean("bitz", params, 5), "bits");
	CHECK_STR(mcb_didyoumean("methd", params, 5), "method");
	CHECK_STR(mcb_didyoumean("granulrity", params, 5), "granularity");
	CHECK_STR(mcb_didyoumean("groupsize", params, 5), "group_size");
	CHECK(mcb_didyoumean("wild", params, 5) == NULL);
	CHECK_STR(mcb_didyoumean("abc", ties, 3), "abd");           /* ties: the first */
	CHECK_STR(mcb_didyoumean("a10", hw, 6), "a100");
	CHECK_STR(mcb_didyoumean("h10", hw, 6), "h100");
	CHECK_STR(mcb_didyoumean("rtx4080", hw, 6), "rtx4090");
	CHECK_STR(mcb_didyoumean("l4", hw, 6), "l4");               /* exact */
	CHECK(mcb_didyoumean("x", NULL, 0) == NULL);
	/* Threshold: max(1, len/3). */
	{
		static const char *const c[] = {"abcdef"};

		CHECK_STR(mcb_didyoumean("abcxyf", c, 1), "abcdef");   /* 2 <= 6/3 */
		CHECK(mcb_didyoumean("abxxyf", c, 1) == NULL);         /* 3 > 2 */
	}
	memset(longword, 'q', 5000);
	longword[5000] = '\0';
	longcands[0] = longword;
	longcands[1] = "q";
	CHECK_STR(mcb_didyoumean(longword, longcands, 2), longword);
	CHECK(mcb_didyoumean("qqqq", longcands, 1) == NULL);
	free(longword);
}

int main(void)
{
	RUN(test_format);
	RUN(test_sorting);
	RUN(test_notes_and_duplicates);
	RUN(test_limit);
	RUN(test_long_message);
	RUN(test_didyoumean);
	return mcbt_done();
}
