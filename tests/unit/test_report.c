/*
 * Unit tests for report: the shape check and its messages, the Markdown,
 * HTML and terminal renderings of the example reports in tests/data/reports
 * (key substrings, escaping of hostile names, determinism) and a mutation
 * fuzz: any JSON that passes the check renders.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/report.h"
#include "mcb/rng.h"

static const char *const examples[] = {"passed",   "failed",  "ungated", "subgroups",
				       "accuracy", "minimal", "hostile"};
#define NEX (sizeof(examples) / sizeof(examples[0]))

/* tests/data/reports/NAME.json, parsed; aborts the test binary when missing. */
static json_t *load(const char *name)
{
	struct mcb_buf text = MCB_BUF_INIT;
	struct mcb_errctx e;
	char rel[256];
	json_t *r;

	snprintf(rel, sizeof(rel), "reports/%s.json", name);
	if (mcb_os_read_file(mcbt_data(rel), 1 << 20, &text, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		exit(2);
	}
	r = mcb_json_parse(text.data, text.len, rel, &e);
	mcb_buf_release(&text);
	if (!r) {
		fprintf(stderr, "%s\n", e.msg);
		exit(2);
	}
	return r;
}

static char *md(const json_t *r)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;

	CHECK_OK(mcb_report_markdown(r, &b, &e), &e);
	return mcb_buf_detach(&b, NULL);
}

static char *html(const json_t *r)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;

	CHECK_OK(mcb_report_html(r, &b, &e), &e);
	return mcb_buf_detach(&b, NULL);
}

static char *table(const json_t *const *r, size_t n)
{
	char *p = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&p, &len);

	mcb_report_table(r, n, f);
	fclose(f);
	return p;
}

static char *combined(const json_t *const *r, size_t n)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;

	CHECK_OK(mcb_report_combined_html(r, n, &b, &e), &e);
	return mcb_buf_detach(&b, NULL);
}

static size_t count(const char *s, const char *sub)
{
	size_t n = 0;

	for (; (s = strstr(s, sub)); s += strlen(sub))
		n++;
	return n;
}

#define CHECK_HAS(s, sub)                                                            \
	do {                                                                         \
		if (!strstr((s), (sub)))                                             \
			mcbt_fail(__FILE__, __LINE__, "%s lacks \"%s\"", #s, (sub)); \
	} while (0)
#define CHECK_LACKS(s, sub)                                                          \
	do {                                                                         \
		if (strstr((s), (sub)))                                              \
			mcbt_fail(__FILE__, __LINE__, "%s holds \"%s\"", #s, (sub)); \
	} while (0)

/*
 * Every tag in page is one the renderer writes: a name injected from the
 * report (<script>, <img onerror=...>) would show up here unescaped.
 */
static int tags_ok(const char *page, const char **bad)
{
	static const char *const allowed[] = {
		"!DOCTYPE", "html",	  "head",   "meta",    "title", "style", "body",
		"header",   "main",	  "footer", "section", "div",	"p",	 "h1",
		"h2",	    "h3",	  "span",   "code",    "b",	"br",	 "ul",
		"li",	    "table",	  "thead",  "tbody",   "tr",	"th",	 "td",
		"figure",   "figcaption", "svg",    "desc",    "g",	"line",	 "rect",
		"circle",   "text",	  NULL};
	const char *p;

	for (p = page; (p = strchr(p, '<')); p++) {
		const char *name = p[1] == '/' ? p + 2 : p + 1;
		size_t n = strcspn(name, " >/\n");
		int ok = 0;

		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strlen(allowed[i]) == n && !strncmp(allowed[i], name, n);
		if (!ok) {
			*bad = p;
			return 0;
		}
	}
	return 1;
}

/* The CSP's style-src hash is the SHA-256 of the page's one <style> element. */
static int csp_matches(const char *page)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *css = strstr(page, "<style>"), *end = strstr(page, "</style>");
	const char *want = strstr(page, "style-src 'sha256-");
	struct mcb_digest d;
	char got[64], *p = got;
	size_t i;

	if (!css || !end || !want || strstr(end + 1, "<style"))
		return 0;
	css += 7;
	mcb_sha256(css, (size_t)(end - css), &d);
	for (i = 0; i < 33; i += 3) {
		unsigned v = d.b[i] << 16 | (i + 1 < 32 ? d.b[i + 1] << 8 : 0) |
			     (i + 2 < 32 ? d.b[i + 2] : 0);

		*p++ = b64[v >> 18 & 63];
		*p++ = b64[v >> 12 & 63];
		*p++ = i + 1 < 32 ? b64[v >> 6 & 63] : '=';
		*p++ = i + 2 < 32 ? b64[v & 63] : '=';
	}
	*p = '\0';
	return !strncmp(want + 18, got, strlen(got)) && want[18 + strlen(got)] == '\'';
}

static void test_examples_render(void)
{
	const json_t *all[NEX];
	json_t *r[NEX];
	struct mcb_errctx e;
	const char *bad = NULL;
	size_t i;

	for (i = 0; i < NEX; i++) {
		char *m, *h;

		all[i] = r[i] = load(examples[i]);
		CHECK_OK(mcb_report_check(r[i], &e), &e);
		m = md(r[i]);
		h = html(r[i]);
		CHECK(!strncmp(m, "# targets/", 10) || !strcmp(examples[i], "hostile"));
		CHECK(!strncmp(h, "<!DOCTYPE html>\n<html lang=\"en\">\n", 32));
		CHECK(strlen(h) > 20 && !strcmp(h + strlen(h) - 8, "</html>\n"));
		if (!tags_ok(h, &bad))
			mcbt_fail(__FILE__, __LINE__, "%s: unexpected tag at \"%.40s\"",
				  examples[i], bad);
		CHECK(csp_matches(h));
		/* self-contained: no script, no URL but the SVG namespace (hostile.json has
		 * URLs in its text) */
		CHECK_LACKS(h, "<script");
		CHECK_LACKS(h, "url(");
		if (strcmp(examples[i], "hostile"))
			CHECK_EQ(count(h, "://"), count(h, "xmlns=\"http://www.w3.org/2000/svg\""));
		/* every chart is labelled */
		CHECK_EQ(count(h, "<svg"), count(h, "</svg>"));
		CHECK_EQ(count(h, "<svg"), count(h, "<title id="));
		CHECK_EQ(count(h, "<svg"), count(h, "<desc id="));
		free(m);
		free(h);
	}
	{
		char *t = table(all, NEX), *c = combined(all, NEX);

		CHECK_EQ(count(t, "\n"), NEX + 2);
		CHECK_LACKS(t, "\x1b");
		if (!tags_ok(c, &bad))
			mcbt_fail(__FILE__, __LINE__, "combined: unexpected tag at \"%.40s\"", bad);
		CHECK(csp_matches(c));
		CHECK_HAS(c, "<h1><span class=\"t\">7 targets compared</span></h1>");
		CHECK_HAS(c, "<p class=\"sub\">3 passed, 2 failed, 2 ungated.</p>");
		free(t);
		free(c);
	}
	for (i = 0; i < NEX; i++)
		json_decref(r[i]);
}

static void test_passed(void)
{
	json_t *r = load("passed");
	char *m = md(r), *h = html(r);

	CHECK(!strncmp(m, "# targets/cpu-avx2-int8: PASSED\n\n", 33));
	CHECK_LACKS(m, "## Failures");
	CHECK_HAS(m, "| perplexity | `heldout` | 64 / 8,128 | 12.31 \xe2\x86\x92 12.40 | 1.0073 "
		     "[1.0031, 1.0116] (PPL ratio) | <0.001 | max_increase: 5% (upper 1.0116 "
		     "\xe2\x89\xa4 1.05) | pass |\n");
	CHECK_HAS(m, "| top-1 agreement | `heldout` | 64 / 8,128 | 0.8303 | 0.830 [0.818, 0.842] "
		     "(agreement) | \xe2\x80\x93 | min: 0.75 (lower 0.818 \xe2\x89\xa5 0.75) | "
		     "pass |\n");
	CHECK_HAS(m, "- size: 337 KiB (345,504 bytes)\n");
	CHECK_HAS(m, "- total: 657 KiB of 64.0 GiB\n");
	CHECK_HAS(m, "- decoding: 147,099 tokens/s, memory bound\n");
	CHECK_HAS(m, "- compute bound: 7.76 M tokens/s (4.1 TOPS int8; per token 528 kFLOP)\n");
	CHECK_HAS(m, "- dense peak: fp32 1.02 TFLOPS, int8 4.1 TOPS\n");
	CHECK_HAS(h, "<title>targets/cpu-avx2-int8: PASSED \xe2\x80\x93 mcbuild report</title>");
	CHECK_HAS(h, "<span class=\"badge pass\">PASSED</span>");
	CHECK_HAS(h, "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		     "style-src 'sha256-");
	/* one chart per gated metric, each with its threshold line */
	CHECK_EQ(count(h, "<svg"), 3);
	CHECK_EQ(count(h, "class=\"thr\""), 3);
	CHECK_HAS(h, ">max_increase: 5% \xe2\x86\x92 1.05</text>");
	CHECK_HAS(h, ">max: 0.05</text>");
	CHECK_EQ(count(h, "<g class=\"row pass all\">"), 3);
	free(m);
	free(h);
	json_decref(r);
}

static void test_failed(void)
{
	json_t *r = load("failed");
	char *m = md(r), *h = html(r);

	CHECK(!strncmp(m, "# targets/a100-int8: FAILED\n", 28));
	CHECK_HAS(m, "## Failures\n\n"
		     "- perplexity on heldout: ratio 1.071 [1.052, 1.090] exceeds max_increase 5%\n"
		     "- perplexity on heldout, group dialogue: ratio 1.112 [1.071, 1.158] exceeds "
		     "max_increase 5%\n\n");
	/* no threshold in the gate: derived from a relative max_increase of a ratio */
	CHECK_HAS(m, "| max_increase: 5% (upper 1.090 > 1.05) | **FAIL** |\n");
	CHECK_HAS(m, "### Subgroups: perplexity on `heldout`\n\n");
	CHECK_HAS(m, "| `dialogue` | 24 | 3,048 | 1.112 [1.071, 1.158] | <0.001 | **FAIL** |\n");
	CHECK_HAS(h, "<span class=\"badge fail\">FAILED</span>");
	CHECK_HAS(h,
		  "<li>perplexity on heldout, group dialogue: ratio 1.112 [1.071, 1.158] exceeds "
		  "max_increase 5%</li>");
	/* the perplexity chart: all items and two subgroups, two of them failed */
	CHECK_HAS(h, "<g class=\"row fail all\">");
	CHECK_HAS(h,
		  "<g class=\"row pass\"><title>narrative: 1.043 [1.020, 1.047], passed</title>");
	CHECK_HAS(h, "<g class=\"row fail\"><title>dialogue: 1.112 [1.071, 1.158], failed</title>");
	CHECK_HAS(h, "<span class=\"vd fail\">FAIL</span>");
	free(m);
	free(h);
	json_decref(r);
}

static void test_ungated_and_minimal(void)
{
	json_t *u = load("ungated"), *n = load("minimal");
	char *um = md(u), *uh = html(u), *nm = md(n), *nh = html(n);

	CHECK(!strncmp(um, "# targets/cpu-avx512-int8: UNGATED\n", 35));
	CHECK_HAS(um, "| none | not gated |\n");
	CHECK_HAS(uh, "<span class=\"badge none\">UNGATED</span>");
	CHECK_EQ(count(uh, "<svg"), 0); /* charts are for gated metrics */
	CHECK_HAS(nm, "## Quality\n\nNot evaluated: the target has no quality gates.\n");
	CHECK_HAS(nm, "### Measured on this host\n\nNot measured.\n");
	CHECK_LACKS(nm, "Assumptions");
	CHECK_LACKS(nm, "| file |");
	CHECK_HAS(nh, "<p class=\"muted\">No files listed.</p>");
	CHECK_LACKS(nh, "dense peak");
	CHECK_HAS(nm, "- compute bound: unknown: the profile gives no peak for fp32\n");
	free(um);
	free(uh);
	free(nm);
	free(nh);
	json_decref(u);
	json_decref(n);
}

static void test_accuracy(void)
{
	json_t *r = load("accuracy");
	char *m = md(r), *h = html(r);

	CHECK_HAS(
		m,
		"| accuracy | `sentiment-dev` | 872 / \xe2\x80\x93 | 0.8853 \xe2\x86\x92 0.8819 | "
		"-0.003 [-0.012, 0.005] (accuracy change) | 0.61 | max_drop: 0.02 (lower -0.012 "
		"\xe2\x89\xa5 -0.02) | pass |\n");
	CHECK_HAS(m, "  McNemar: 9 items right before and wrong after, 6 wrong before and right "
		     "after; exact p = 0.61.\n");
	/* an absolute max_drop of a delta: threshold -value, the failing side below it */
	CHECK_HAS(h, ">max_drop: 0.02 \xe2\x86\x92 -0.02</text>");
	free(m);
	free(h);
	json_decref(r);
}

/* Names from recipes are hostile: each renderer escapes them its own way. */
static void test_escaping(void)
{
	json_t *r = load("passed"), *q;
	const json_t *one[1];
	char *m, *h, *t, *c;

	json_object_set_new(r, "target", json_string("<script>&\""));
	q = json_array_get(json_object_get(json_object_get(r, "quality"), "metrics"), 0);
	json_object_set_new(q, "dataset", json_string("a|b`c"));
	json_object_set_new(json_object_get(r, "model"), "name", json_string("m\x1b[2Jx"));
	one[0] = r;
	m = md(r);
	h = html(r);
	t = table(one, 1);
	c = combined(one, 1);
	CHECK(!strncmp(m, "# \\<script>&\": PASSED\n", 22));
	CHECK_HAS(m, "| perplexity | ``a\\|b`c`` |");
	CHECK_HAS(m, "Model `m [2Jx`");
	CHECK_HAS(h, "<title>&lt;script&gt;&amp;&quot;: PASSED");
	CHECK_HAS(h, "<h1><span class=\"t\">&lt;script&gt;&amp;&quot;</span>");
	CHECK_HAS(h, "<code>m&#xfffd;[2Jx</code>");
	CHECK_LACKS(h, "<script");
	CHECK_HAS(t, "\n<script>&\"  passed");
	CHECK_HAS(c, "<code>&lt;script&gt;&amp;&quot;</code>");
	CHECK_LACKS(c, "<script");
	free(m);
	free(h);
	free(t);
	free(c);
	json_decref(r);
}

/* Run check on r after edit, expect code and exactly msg; then restore. */
static void expect(const char *example, const char *path, json_t *value, int code, const char *msg)
{
	json_t *r = load(example), *parent = r;
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e;
	char buf[256], *p, *key;
	int rc;

	/* path: keys and [i] indices separated by '.'; the last is set (or deleted when value is NULL) */
	snprintf(buf, sizeof(buf), "%s", path);
	for (key = buf; (p = strchr(key, '.')); key = p + 1) {
		*p = '\0';
		parent = key[0] == '[' ? json_array_get(parent, (size_t)atoi(key + 1))
				       : json_object_get(parent, key);
	}
	if (key[0] == '[')
		json_array_set_new(parent, (size_t)atoi(key + 1), value);
	else if (value)
		json_object_set_new(parent, key, value);
	else
		json_object_del(parent, key);
	mcb_errclear(&e);
	rc = mcb_report_check(r, &e);
	if (rc != code || strcmp(e.msg, msg))
		mcbt_fail(__FILE__, __LINE__, "%s %s: %d \"%s\", expected %d \"%s\"", example, path,
			  rc, e.msg, code, msg);
	/* the renderers refuse it with the same message and append nothing */
	if (code) {
		CHECK_EQ(mcb_report_markdown(r, &out, &e), code);
		CHECK_EQ(mcb_report_html(r, &out, &e), code);
		CHECK_STR(e.msg, msg);
		CHECK_EQ(out.len, 0);
	}
	json_decref(r);
}

static void test_check_errors(void)
{
	struct mcb_errctx e;
	json_t *s = json_string("x");

	CHECK_ERR(mcb_report_check(s, &e), &e, MCB_EFORMAT, "report: expected an object");
	json_decref(s);
	expect("passed", "report_version", NULL, MCB_EFORMAT,
	       "report_version: missing (expected 1)");
	expect("passed", "report_version", json_string("1"), MCB_EFORMAT,
	       "report_version: expected a number");
	expect("passed", "report_version", json_integer(2), MCB_EUNSUP,
	       "report_version: version 2 is not supported (this mcbuild reads version 1)");
	expect("passed", "report_version", json_real(1.0), 0, "");
	expect("passed", "verdict", json_string("maybe"), MCB_EFORMAT,
	       "verdict: expected \"passed\", \"failed\" or \"ungated\"");
	expect("passed", "target", json_null(), MCB_EFORMAT, "target: expected a string");
	expect("passed", "model.name", NULL, MCB_EFORMAT,
	       "model.name: missing (expected a string)");
	expect("failed", "failures.[1]", json_integer(3), MCB_EFORMAT,
	       "failures[1]: expected a string");
	expect("passed", "hardware.peak_tflops.fp32", json_string("x"), MCB_EFORMAT,
	       "hardware.peak_tflops.fp32: expected a number");
	expect("passed", "hardware.peak_tflops.f\x1b[2J", json_null(), MCB_EFORMAT,
	       "hardware.peak_tflops.f?[2J: expected a number");
	expect("passed", "export.files", json_object(), MCB_EFORMAT,
	       "export.files: expected an array of objects");
	expect("passed", "export.files.[0]", json_string("model.gguf"), MCB_EFORMAT,
	       "export.files[0]: expected an object");
	expect("passed", "quality.metrics.[2].ci", json_pack("[f,f,f]", 1.0, 2.0, 3.0), MCB_EFORMAT,
	       "quality.metrics[2].ci: expected an array of 2 numbers");
	expect("passed", "quality.metrics.[2].ci", json_pack("[f,s]", 1.0, "2"), MCB_EFORMAT,
	       "quality.metrics[2].ci: expected an array of 2 numbers");
	expect("passed", "quality.metrics.[0].gate", json_integer(5), MCB_EFORMAT,
	       "quality.metrics[0].gate: expected an object or null");
	expect("passed", "quality.metrics.[0].gate.bound", json_string("middle"), MCB_EFORMAT,
	       "quality.metrics[0].gate.bound: expected \"upper\" or \"lower\"");
	expect("passed", "quality.metrics.[0].gate.passed", json_null(), MCB_EFORMAT,
	       "quality.metrics[0].gate.passed: expected true or false");
	expect("failed", "quality.metrics.[0].groups.[1].passed", json_string("yes"), MCB_EFORMAT,
	       "quality.metrics[0].groups[1].passed: expected true, false or null");
	expect("accuracy", "quality.metrics.[0].mcnemar", json_array(), MCB_EFORMAT,
	       "quality.metrics[0].mcnemar: expected an object");
	expect("passed", "quality", json_array(), MCB_EFORMAT,
	       "quality: expected an object or null");
	expect("passed", "performance.estimate", json_null(), MCB_EFORMAT,
	       "performance.estimate: expected an object");
	expect("passed", "performance.estimate.bound", json_string("both"), MCB_EFORMAT,
	       "performance.estimate.bound: expected \"memory\" or \"compute\"");
	expect("passed", "performance.memory_fit.fits", json_integer(1), MCB_EFORMAT,
	       "performance.memory_fit.fits: expected true or false");
	/* optional and nullable fields, and fields the renderers do not know */
	expect("passed", "quality", json_null(), 0, "");
	expect("passed", "performance.measured", json_null(), 0, "");
	expect("passed", "quality.metrics.[0].tokens", NULL, 0, "");
	expect("passed", "quality.metrics.[0].gate.threshold", NULL, 0, "");
	expect("passed", "quality.metrics.[0].p", json_null(), 0, "");
	expect("passed", "x_extension", json_true(), 0, "");
}

static void test_combined_errors(void)
{
	json_t *a = load("passed"), *b = load("failed");
	const json_t *two[2] = {a, b};
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e;
	char *t;

	json_object_del(json_object_get(b, "export"), "bytes");
	CHECK_ERR(mcb_report_combined_html(two, 2, &out, &e), &e, MCB_EFORMAT,
		  "report 2: export.bytes: missing (expected a number)");
	CHECK_EQ(out.len, 0);
	/* the table has no error channel: the row says the report is invalid */
	t = table(two, 2);
	CHECK_HAS(t, "\ntargets/a100-int8      invalid  -");
	free(t);
	mcb_buf_release(&out);
	json_decref(a);
	json_decref(b);
}

/* The terminal table, whole: columns sized to content, numbers right-aligned. */
static void test_table(void)
{
	json_t *r[3] = {load("passed"), load("failed"), load("minimal")};
	char *t = table((const json_t *const *)r, 3), *empty = table(NULL, 0);

	CHECK_STR(t, "target                 verdict  format           size  ratio                 "
		     "perplex"
		     "ity            KL divergence       top-1 agreement  est tok/s  fits\n"
		     "---------------------  -------  -----------  --------  -----  "
		     "----------------------"
		     "---  -----------------------  --------------------  ---------  ----\n"
		     "targets/cpu-avx2-int8  passed   gguf          337 KiB  3.06x    1.0073 "
		     "[1.0031, 1.01"
		     "16]  0.0166 [0.0151, 0.0182]  0.830 [0.818, 0.842]    147,099  yes\n"
		     "targets/a100-int8      failed   safetensors   292 KiB  3.54x  1.071 [1.052, "
		     "1.090] F"
		     "AIL  0.0412 [0.0368, 0.0459]                     -     6.78 M  yes\n"
		     "targets/npu-edge-f32   ungated  safetensors  1.01 MiB  1.00x                 "
		     "       "
		     "  -                        -                     -     64,647  yes\n");
	CHECK_STR(empty, "target  verdict  format  size  ratio  est tok/s  fits\n"
			 "------  -------  ------  ----  -----  ---------  ----\n");
	free(t);
	free(empty);
	for (int i = 0; i < 3; i++)
		json_decref(r[i]);
}

static void test_combined(void)
{
	json_t *a = load("passed"), *b = load("failed"), *u = load("ungated");
	const json_t *three[3] = {a, b, u};
	char *c = combined(three, 3);
	json_t *g;

	/* one scatter per (metric, dataset, statistic): perplexity, KL, top-1 */
	CHECK_EQ(count(c, "<svg"), 3);
	CHECK_HAS(c, "<title id=\"s0-t\">perplexity on heldout against export size</title>");
	/* perplexity: both gated targets have the threshold 1.05 (one given, one derived) */
	CHECK_HAS(c, ">max_increase: 5% \xe2\x86\x92 1.05</text>");
	/* one labelled point per target; "targets/" is dropped from the labels */
	CHECK_HAS(c, "class=\"plab\">cpu-avx2-int8</text>");
	CHECK_HAS(c, "class=\"plab\">cpu-avx512-int8</text>");
	CHECK_HAS(c, "<li><code>targets/a100-int8</code>: perplexity on heldout: ratio 1.071");
	free(c);
	/* different thresholds: no line */
	g = json_object_get(
		json_array_get(json_object_get(json_object_get(b, "quality"), "metrics"), 0),
		"gate");
	json_object_set_new(g, "threshold", json_real(1.1));
	c = combined(three, 3);
	CHECK_LACKS(c, ">max_increase: 5% \xe2\x86\x92 1.05</text>");
	CHECK_EQ(count(c, "class=\"thr\""), 2); /* KL: 0.05 for both; top-1: one target */
	free(c);
	json_decref(a);
	json_decref(b);
	json_decref(u);
}

/* A deep copy with every object's keys inserted in reverse order. */
static json_t *reversed(const json_t *v)
{
	const char *keys[64], *key;
	json_t *out, *child;
	size_t n = 0, i;

	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach (v, i, child)
			json_array_append_new(out, reversed(child));
		return out;
	}
	if (!json_is_object(v))
		return json_deep_copy(v);
	json_object_foreach ((json_t *)v, key, child)
		if (n < 64)
			keys[n++] = key;
	out = json_object();
	while (n--)
		json_object_set_new(out, keys[n], reversed(json_object_get(v, keys[n])));
	return out;
}

/* Equal JSON values give equal bytes, whatever the key order; no time stamps. */
static void test_determinism(void)
{
	const json_t *all[NEX], *rev[NEX];
	json_t *r[NEX], *s[NEX];
	size_t i;

	for (i = 0; i < NEX; i++) {
		char *m1, *m2, *h1, *h2;

		all[i] = r[i] = load(examples[i]);
		rev[i] = s[i] = reversed(r[i]);
		m1 = md(r[i]), m2 = md(s[i]);
		h1 = html(r[i]), h2 = html(s[i]);
		CHECK_STR(m1, m2);
		if (strcmp(h1, h2))
			mcbt_fail(__FILE__, __LINE__, "%s: report.html differs", examples[i]);
		free(m2), free(h2);
		m2 = md(r[i]), h2 = html(r[i]);
		CHECK_STR(m1, m2);
		CHECK(!strcmp(h1, h2));
		free(m1), free(m2), free(h1), free(h2);
	}
	{
		char *t1 = table(all, NEX), *t2 = table(rev, NEX);
		char *c1 = combined(all, NEX), *c2 = combined(rev, NEX);

		CHECK_STR(t1, t2);
		CHECK(!strcmp(c1, c2));
		free(t1), free(t2), free(c1), free(c2);
	}
	for (i = 0; i < NEX; i++) {
		json_decref(r[i]);
		json_decref(s[i]);
	}
}

/* ---- mutation fuzz ---- */

/* A slot in the tree: parent[key] or parent[index]. */
struct slot {
	json_t *parent;
	const char *key; /* NULL for an array element */
	size_t index;
};

static void slots(json_t *v, struct slot **s, size_t *n, size_t *cap)
{
	const char *key;
	json_t *child;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach (v, key, child) {
			if (*n == *cap)
				*s = realloc(*s, (*cap = *cap * 2 + 64) * sizeof(**s));
			(*s)[(*n)++] = (struct slot){v, key, 0};
			slots(child, s, n, cap);
		}
	} else if (json_is_array(v)) {
		json_array_foreach (v, i, child) {
			if (*n == *cap)
				*s = realloc(*s, (*cap = *cap * 2 + 64) * sizeof(**s));
			(*s)[(*n)++] = (struct slot){v, NULL, i};
			slots(child, s, n, cap);
		}
	}
}

/* A value that may break a renderer: extreme numbers, odd strings, wrong types. */
static json_t *odd_value(struct mcb_rng *g)
{
	static const double reals[] = {0.0,  -0.0,    1e308, -1e308,  4.9e-324, -1.0, 0.5,
				       1e15, 9.99e14, 1e-5,  -1e-300, 1023.99,	1e18, 2.5e-7};
	static const char *const strs[] = {"",
					   "<&>\"'",
					   "\x1b[2J",
					   "a\nb",
					   "[x](y)",
					   "`",
					   "\xf0\x9d\x94\x98nicode",
					   "upper",
					   "lower",
					   "passed",
					   "failed",
					   "memory",
					   "compute",
					   "perplexity",
					   "ppl_ratio",
					   "accuracy_delta",
					   "max_drop",
					   "max_increase",
					   "int8"};

	switch (mcb_rng_below(g, 12)) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(mcb_rng_below(g, 2));
	case 2:
		return json_integer((json_int_t)(mcb_rng_next(g) >> mcb_rng_below(g, 64)) *
				    (mcb_rng_below(g, 2) ? 1 : -1));
	case 3:
	case 4:
	case 5:
		return json_real(reals[mcb_rng_below(g, sizeof(reals) / sizeof(reals[0]))]);
	case 6:
	case 7:
		return json_string(strs[mcb_rng_below(g, sizeof(strs) / sizeof(strs[0]))]);
	case 8:
		return json_array();
	case 9:
		return json_pack("[f,f]", mcb_rng_double(g) * 4 - 2, mcb_rng_double(g) * 4 - 2);
	case 10:
		return json_pack("[f,f,f]", 1.0, 2.0, 3.0);
	default:
		return json_object();
	}
}

/* An odd value of type (JSON_REAL: any number). */
static json_t *odd_of_type(struct mcb_rng *g, json_type type)
{
	for (;;) {
		/* not json_is_...(odd_value(g)): those macros evaluate their argument twice */
		json_t *v = odd_value(g);

		if (json_typeof(v) == type || (type == JSON_REAL && json_is_number(v)))
			return v;
		json_decref(v);
	}
}

static void put_slot(struct slot *x, json_t *v)
{
	if (x->key)
		json_object_set_new(x->parent, x->key, v);
	else
		json_array_set_new(x->parent, x->index, v);
}

/*
 * One mutation at a random slot: mostly one that keeps the type (an
 * extreme number, an odd string, an array one element longer or shorter,
 * null), so that many mutants pass the check and reach the renderers; else
 * a deletion or a value of any type.
 */
static void mutate(json_t *r, struct mcb_rng *g)
{
	struct slot *s = NULL, *x;
	size_t n = 0, cap = 0;
	json_t *v;

	slots(r, &s, &n, &cap);
	if (!n) {
		free(s);
		return;
	}
	x = &s[mcb_rng_below(g, n)];
	v = x->key ? json_object_get(x->parent, x->key) : json_array_get(x->parent, x->index);
	if (mcb_rng_below(g, 10) < 7) {
		switch (json_typeof(v)) {
		case JSON_INTEGER:
		case JSON_REAL:
			if (mcb_rng_below(g, 2)) {
				put_slot(x, json_real(json_number_value(v) *
						      (mcb_rng_double(g) * 4 - 2) * 1e3));
				break;
			}
			put_slot(x, odd_of_type(g, JSON_REAL));
			break;
		case JSON_STRING:
			put_slot(x, odd_of_type(g, JSON_STRING));
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			put_slot(x, json_boolean(json_is_false(v)));
			break;
		case JSON_ARRAY:
			if (json_array_size(v) && mcb_rng_below(g, 2))
				json_array_remove(v, mcb_rng_below(g, json_array_size(v)));
			else if (json_array_size(v))
				json_array_append(
					v, json_array_get(v, mcb_rng_below(g, json_array_size(v))));
			break;
		default:
			put_slot(x, json_null());
		}
	} else if (mcb_rng_below(g, 2)) {
		if (x->key)
			json_object_del(x->parent, x->key);
		else
			json_array_remove(x->parent, x->index);
	} else {
		put_slot(x, odd_value(g));
	}
	free(s);
}

#ifndef FUZZ_ITERS
#define FUZZ_ITERS 1400 /* about 1 s; -DFUZZ_ITERS=100000 for a long run */
#endif

/* Random mutations of the examples: check fails cleanly or every renderer succeeds. */
static void test_fuzz(void)
{
	json_t *base[NEX];
	struct mcb_rng g;
	size_t i, iter, nok = 0, nbad = 0;

	mcb_rng_seed(&g, 20261122);
	for (i = 0; i < NEX; i++)
		base[i] = load(examples[i]);
	for (iter = 0; iter < FUZZ_ITERS; iter++) {
		json_t *r = json_deep_copy(base[iter % NEX]);
		const json_t *set[3] = {r, base[0], base[1]};
		struct mcb_errctx e;
		int k, nmut = 1 + (int)mcb_rng_below(&g, 3);

		for (k = 0; k < nmut; k++)
			mutate(r, &g);
		mcb_errclear(&e);
		if (mcb_report_check(r, &e)) {
			nbad++;
			CHECK(e.code == MCB_EFORMAT || e.code == MCB_EUNSUP);
			CHECK(e.msg[0] != '\0');
		} else {
			char *m = md(r), *h = html(r), *t = table(set, 3), *c = combined(set, 3);
			const char *bad;

			nok++;
			CHECK(strlen(h) > 100 && !strcmp(h + strlen(h) - 8, "</html>\n"));
			CHECK_LACKS(h, "nan");
			if (!tags_ok(h, &bad))
				mcbt_fail(__FILE__, __LINE__, "iteration %zu: tag at \"%.40s\"",
					  iter, bad);
			free(m), free(h), free(t), free(c);
		}
		json_decref(r);
	}
	/* both paths taken often enough to mean something */
	fprintf(stderr, "fuzz: %zu rendered, %zu refused\n", nok, nbad);
	CHECK(nok > FUZZ_ITERS / 5);
	CHECK(nbad > FUZZ_ITERS / 5);
	for (i = 0; i < NEX; i++)
		json_decref(base[i]);
}

int main(void)
{
	RUN(test_examples_render);
	RUN(test_passed);
	RUN(test_failed);
	RUN(test_ungated_and_minimal);
	RUN(test_accuracy);
	RUN(test_escaping);
	RUN(test_check_errors);
	RUN(test_combined_errors);
	RUN(test_table);
	RUN(test_combined);
	RUN(test_determinism);
	RUN(test_fuzz);
	return mcbt_done();
}
