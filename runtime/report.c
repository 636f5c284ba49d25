/*
 * report: renders report.json (version 1) as report.md, report.html, the
 * terminal table of several reports and their combined HTML page.
 *
 * report.json is specified by tests/data/report.schema.json (JSON Schema
 * 2020-12) and the README's "report.json" section.  In short:
 *   {"report_version": 1, "mcbuild_version", "target",
 *    "verdict": "passed"|"failed"|"ungated", "failures": [line, ...],
 *    "model": {...}, "hardware": {...}, "export": {...},
 *    "quality": null | {"baseline", "confidence", "bootstrap", "metrics": [
 *        {"name", "dataset", ..., "statistic", "point", "ci": [lo, hi], "p",
 *         "gate": null | {"kind", "value", "relative", "text", "bound",
 *                         "bound_value", "passed", "threshold" (optional)},
 *         "groups": [...], "mcnemar" (accuracy only)}]},
 *    "performance": {"measured": null | {...}, "estimate": {...},
 *                    "memory_fit": {...}}}
 * The renderers read only what mcb_report_check has vetted (the types of the
 * fields they use, not the schema's value constraints), so any JSON that
 * passes the check renders: values out of their usual range (negative
 * sizes, a CI with lo > hi, 1e308) give odd pictures, never a crash.
 *
 * Output is a pure function of the JSON value (objects that are iterated
 * are walked in sorted key order): no time stamps, no host names beyond
 * what report.json holds.  The HTML is one self-contained file: inline CSS
 * allowed by a Content-Security-Policy hash, inline SVG, no script, no URL.
 * Every string from the report is escaped (target and dataset names come
 * from recipes).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/report.h"

/* ---- shape check ------------------------------------------------------ */

enum shape_kind {
	S_STR,	/* a string (oneof: one of those) */
	S_NUM,	/* a finite number (integer or real) */
	S_BOOL, /* true or false */
	S_OBJ,	/* an object with the members sub */
	S_STRS, /* an array of strings */
	S_OBJS, /* an array of objects, each with the members sub */
	S_CI,	/* an array of exactly 2 numbers */
	S_NUMS	/* an object whose every value is a number */
};

#define S_NULL 1u /* may be null */
#define S_OPT 2u  /* may be absent */

struct shape {
	const char *key;
	unsigned char kind;	  /* enum shape_kind */
	unsigned char flags;	  /* S_NULL, S_OPT */
	const struct shape *sub;  /* S_OBJ, S_OBJS: members, ended by a NULL key */
	const char *const *oneof; /* S_STR: accepted values, NULL-terminated; NULL: any */
};

/* clang-format off */
static const char *const verdicts[] = {"passed", "failed", "ungated", NULL};
static const char *const bounds[] = {"upper", "lower", NULL};
static const char *const limits[] = {"memory", "compute", NULL};

static const struct shape model_shape[] = {
	{"name", S_STR, 0, NULL, NULL},
	{"architecture", S_STR, 0, NULL, NULL},
	{"parameters", S_NUM, 0, NULL, NULL},
	{"baseline_bytes", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape hardware_shape[] = {
	{"name", S_STR, 0, NULL, NULL},
	{"description", S_STR, 0, NULL, NULL},
	{"kind", S_STR, 0, NULL, NULL},
	{"memory_gb", S_NUM, 0, NULL, NULL},
	{"bandwidth_gbs", S_NUM, 0, NULL, NULL},
	{"peak_tflops", S_NUMS, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape file_shape[] = {
	{"name", S_STR, 0, NULL, NULL},
	{"bytes", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape export_shape[] = {
	{"format", S_STR, 0, NULL, NULL},
	{"files", S_OBJS, 0, file_shape, NULL},
	{"bytes", S_NUM, 0, NULL, NULL},
	{"compression_ratio", S_NUM, 0, NULL, NULL},
	{"bits_per_weight", S_NUM, 0, NULL, NULL},
	{"parameters", S_NUM, S_OPT, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape gate_shape[] = {
	{"kind", S_STR, 0, NULL, NULL},
	{"value", S_NUM, 0, NULL, NULL},
	{"relative", S_BOOL, 0, NULL, NULL},
	{"text", S_STR, 0, NULL, NULL},
	{"bound", S_STR, 0, NULL, bounds},
	{"bound_value", S_NUM, 0, NULL, NULL},
	{"passed", S_BOOL, 0, NULL, NULL},
	{"threshold", S_NUM, S_OPT, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape group_shape[] = {
	{"group", S_STR, 0, NULL, NULL},
	{"items", S_NUM, 0, NULL, NULL},
	{"tokens", S_NUM, S_OPT | S_NULL, NULL, NULL},
	{"point", S_NUM, 0, NULL, NULL},
	{"ci", S_CI, 0, NULL, NULL},
	{"p", S_NUM, S_NULL, NULL, NULL},
	{"passed", S_BOOL, S_NULL, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape mcnemar_shape[] = {
	{"n01", S_NUM, 0, NULL, NULL},
	{"n10", S_NUM, 0, NULL, NULL},
	{"p", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape metric_shape[] = {
	{"name", S_STR, 0, NULL, NULL},
	{"dataset", S_STR, 0, NULL, NULL},
	{"dataset_sha256", S_STR, 0, NULL, NULL},
	{"convention", S_STR, 0, NULL, NULL},
	{"items", S_NUM, 0, NULL, NULL},
	{"tokens", S_NUM, S_OPT | S_NULL, NULL, NULL},
	{"baseline", S_NUM, S_NULL, NULL, NULL},
	{"compressed", S_NUM, 0, NULL, NULL},
	{"statistic", S_STR, 0, NULL, NULL},
	{"point", S_NUM, 0, NULL, NULL},
	{"ci", S_CI, 0, NULL, NULL},
	{"p", S_NUM, S_NULL, NULL, NULL},
	{"gate", S_OBJ, S_NULL, gate_shape, NULL},
	{"groups", S_OBJS, 0, group_shape, NULL},
	{"mcnemar", S_OBJ, S_OPT, mcnemar_shape, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape bootstrap_shape[] = {
	{"reps", S_NUM, 0, NULL, NULL},
	{"seed", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape quality_shape[] = {
	{"baseline", S_STR, 0, NULL, NULL},
	{"confidence", S_NUM, 0, NULL, NULL},
	{"bootstrap", S_OBJ, 0, bootstrap_shape, NULL},
	{"metrics", S_OBJS, 0, metric_shape, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape measured_shape[] = {
	{"host", S_STR, 0, NULL, NULL},
	{"threads", S_NUM, 0, NULL, NULL},
	{"mode", S_STR, 0, NULL, NULL},
	{"prompt_tokens", S_NUM, 0, NULL, NULL},
	{"decode_tokens", S_NUM, 0, NULL, NULL},
	{"repeats", S_NUM, 0, NULL, NULL},
	{"prompt_tokens_per_s", S_NUM, 0, NULL, NULL},
	{"decode_tokens_per_s", S_NUM, 0, NULL, NULL},
	{"token_ms_p50", S_NUM, 0, NULL, NULL},
	{"token_ms_p99", S_NUM, 0, NULL, NULL},
	{"peak_rss_bytes", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape estimate_shape[] = {
	{"hardware", S_STR, 0, NULL, NULL},
	{"dtype", S_STR, 0, NULL, NULL},
	{"weight_bytes_per_token", S_NUM, 0, NULL, NULL},
	{"kv_bytes_per_token", S_NUM, 0, NULL, NULL},
	{"flops_per_token", S_NUM, 0, NULL, NULL},
	{"bandwidth_gbs", S_NUM, 0, NULL, NULL},
	{"peak_tflops", S_NUM, 0, NULL, NULL},
	{"memory_bound_tokens_per_s", S_NUM, 0, NULL, NULL},
	{"compute_bound_tokens_per_s", S_NUM, 0, NULL, NULL},
	{"tokens_per_s", S_NUM, 0, NULL, NULL},
	{"bound", S_STR, 0, NULL, limits},
	{"assumptions", S_STRS, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape fit_shape[] = {
	{"context", S_NUM, 0, NULL, NULL},
	{"batch", S_NUM, 0, NULL, NULL},
	{"weights_bytes", S_NUM, 0, NULL, NULL},
	{"kv_cache_bytes", S_NUM, 0, NULL, NULL},
	{"total_bytes", S_NUM, 0, NULL, NULL},
	{"device_bytes", S_NUM, 0, NULL, NULL},
	{"fits", S_BOOL, 0, NULL, NULL},
	{"utilization", S_NUM, 0, NULL, NULL},
	{NULL, 0, 0, NULL, NULL},
};
static const struct shape performance_shape[] = {
	{"measured", S_OBJ, S_NULL, measured_shape, NULL},
	{"estimate", S_OBJ, 0, estimate_shape, NULL},
	{"memory_fit", S_OBJ, 0, fit_shape, NULL},
	{NULL, 0, 0, NULL, NULL},
};
/* report_version is checked first, on its own. */
static const struct shape report_shape[] = {
	{"mcbuild_version", S_STR, 0, NULL, NULL},
	{"target", S_STR, 0, NULL, NULL},
	{"verdict", S_STR, 0, NULL, verdicts},
	{"failures", S_STRS, 0, NULL, NULL},
	{"model", S_OBJ, 0, model_shape, NULL},
	{"hardware", S_OBJ, 0, hardware_shape, NULL},
	{"export", S_OBJ, 0, export_shape, NULL},
	{"quality", S_OBJ, S_NULL, quality_shape, NULL},
	{"performance", S_OBJ, 0, performance_shape, NULL},
	{NULL, 0, 0, NULL, NULL},
};

/* clang-format on */

/* A JSON path being built: "quality.metrics[2].ci". */
struct path {
	char s[256];
	size_t len;
};

/*
 * Append ".key" (or "key" at the root) or "[i]"; return the old length.  A
 * key from the report has its control characters replaced: the path ends
 * up in a message on a terminal.
 */
static size_t path_push(struct path *p, const char *key, size_t index)
{
	size_t old = p->len, i;
	int n;

	if (key)
		n = snprintf(p->s + old, sizeof(p->s) - old, old ? ".%s" : "%s", key);
	else
		n = snprintf(p->s + old, sizeof(p->s) - old, "[%zu]", index);
	if (n > 0)
		p->len = old + (size_t)n < sizeof(p->s) ? old + (size_t)n : sizeof(p->s) - 1;
	for (i = old; i < p->len; i++)
		if ((unsigned char)p->s[i] < 0x20 || p->s[i] == 0x7f)
			p->s[i] = '?';
	return old;
}

static void path_pop(struct path *p, size_t old)
{
	p->len = old;
	p->s[old] = '\0';
}

static int is_num(const json_t *v)
{
	return json_is_number(v) && isfinite(json_number_value(v));
}

static const char *expected(const struct shape *s)
{
	static const char *const what[][2] = {
		[S_STR] = {"a string", "a string or null"},
		[S_NUM] = {"a number", "a number or null"},
		[S_BOOL] = {"true or false", "true, false or null"},
		[S_OBJ] = {"an object", "an object or null"},
		[S_STRS] = {"an array of strings", "an array of strings or null"},
		[S_OBJS] = {"an array of objects", "an array of objects or null"},
		[S_CI] = {"an array of 2 numbers", "an array of 2 numbers or null"},
		[S_NUMS] = {"an object of numbers", "an object of numbers or null"},
	};
	return what[s->kind][(s->flags & S_NULL) != 0];
}

static int check_members(const json_t *o, const struct shape *members, struct path *p,
			 struct mcb_errctx *e);

static int check_value(const json_t *v, const struct shape *s, struct path *p, struct mcb_errctx *e)
{
	const json_t *el;
	const char *key;
	size_t i, old;
	int rc;

	if (json_is_null(v) && (s->flags & S_NULL))
		return 0;
	switch (s->kind) {
	case S_STR:
		if (!json_is_string(v))
			break;
		if (s->oneof) {
			struct mcb_buf list = MCB_BUF_INIT;

			for (i = 0; s->oneof[i]; i++)
				if (!strcmp(json_string_value(v), s->oneof[i]))
					return 0;
			for (i = 0; s->oneof[i]; i++) {
				const char *sep = !i ? "" : s->oneof[i + 1] ? ", " : " or ";

				mcb_buf_printf(&list, "%s\"%s\"", sep, s->oneof[i]);
			}
			rc = mcb_errf(e, MCB_EFORMAT, "%s: expected %s", p->s, list.data);
			mcb_buf_release(&list);
			return rc;
		}
		return 0;
	case S_NUM:
		if (is_num(v))
			return 0;
		break;
	case S_BOOL:
		if (json_is_boolean(v))
			return 0;
		break;
	case S_OBJ:
		if (json_is_object(v))
			return check_members(v, s->sub, p, e);
		break;
	case S_STRS:
	case S_OBJS:
		if (!json_is_array(v))
			break;
		json_array_foreach (v, i, el) {
			old = path_push(p, NULL, i);
			if (s->kind == S_STRS && !json_is_string(el))
				rc = mcb_errf(e, MCB_EFORMAT, "%s: expected a string", p->s);
			else if (s->kind == S_OBJS && !json_is_object(el))
				rc = mcb_errf(e, MCB_EFORMAT, "%s: expected an object", p->s);
			else
				rc = s->kind == S_OBJS ? check_members(el, s->sub, p, e) : 0;
			path_pop(p, old);
			if (rc)
				return rc;
		}
		return 0;
	case S_CI:
		if (json_is_array(v) && json_array_size(v) == 2 && is_num(json_array_get(v, 0)) &&
		    is_num(json_array_get(v, 1)))
			return 0;
		break;
	case S_NUMS:
		if (!json_is_object(v))
			break;
		json_object_foreach ((json_t *)v, key, el) {
			if (is_num(el))
				continue;
			old = path_push(p, key, 0);
			rc = mcb_errf(e, MCB_EFORMAT, "%s: expected a number", p->s);
			path_pop(p, old);
			return rc;
		}
		return 0;
	}
	return mcb_errf(e, MCB_EFORMAT, "%s: expected %s", p->s, expected(s));
}

static int check_members(const json_t *o, const struct shape *members, struct path *p,
			 struct mcb_errctx *e)
{
	const struct shape *s;
	const json_t *v;
	size_t old;
	int rc = 0;

	for (s = members; s->key && !rc; s++) {
		v = json_object_get(o, s->key);
		if (!v && (s->flags & S_OPT))
			continue;
		old = path_push(p, s->key, 0);
		if (!v)
			rc = mcb_errf(e, MCB_EFORMAT, "%s: missing (expected %s)", p->s,
				      expected(s));
		else
			rc = check_value(v, s, p, e);
		path_pop(p, old);
	}
	return rc;
}

int mcb_report_check(const json_t *r, struct mcb_errctx *e)
{
	struct path p = {{0}, 0};
	const json_t *v;

	if (!json_is_object(r))
		return mcb_errf(e, MCB_EFORMAT, "report: expected an object");
	v = json_object_get(r, "report_version");
	if (!v)
		return mcb_errf(e, MCB_EFORMAT, "report_version: missing (expected %d)",
				MCB_REPORT_VERSION);
	if (!is_num(v))
		return mcb_errf(e, MCB_EFORMAT, "report_version: expected a number");
	if (json_number_value(v) != MCB_REPORT_VERSION)
		return mcb_errf(e, MCB_EUNSUP,
				"report_version: version %g is not supported (this mcbuild reads "
				"version %d)",
				json_number_value(v), MCB_REPORT_VERSION);
	return check_members(r, report_shape, &p, e);
}

/* ---- access to checked reports ------------------------------------------ */

/* Total functions: a missing or mistyped field reads as "" or 0. */
static const json_t *get(const json_t *o, const char *key)
{
	return json_object_get(o, key);
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static double num(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static int has_num(const json_t *o, const char *key)
{
	return json_is_number(json_object_get(o, key));
}

static double ci_at(const json_t *o, size_t i)
{
	return json_number_value(json_array_get(json_object_get(o, "ci"), i));
}

enum verdict { V_NONE, V_PASS, V_FAIL };

static const char *const vclass[] = {"none", "pass", "fail"};

/* The verdict of a gate object (null: V_NONE) or of a "passed" field. */
static enum verdict gate_verdict(const json_t *gate)
{
	return json_is_object(gate) ? json_is_true(get(gate, "passed")) ? V_PASS : V_FAIL : V_NONE;
}

static enum verdict passed_verdict(const json_t *passed)
{
	return json_is_true(passed) ? V_PASS : json_is_false(passed) ? V_FAIL : V_NONE;
}

static enum verdict report_verdict(const json_t *r)
{
	const char *v = str(r, "verdict");

	return !strcmp(v, "passed") ? V_PASS : !strcmp(v, "failed") ? V_FAIL : V_NONE;
}

/* Readable names of the metrics and statistics of version 1; others as given. */
static const char *const labels[][2] = {
	{"perplexity", "perplexity"},
	{"kl_divergence", "KL divergence"},
	{"top1_agreement", "top-1 agreement"},
	{"accuracy", "accuracy"},
	{"ppl_ratio", "PPL ratio"},
	{"mean_kl", "mean KL, nats/token"},
	{"agreement", "agreement"},
	{"accuracy_delta", "accuracy change"},
};

static const char *label(const char *name)
{
	for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
		if (!strcmp(name, labels[i][0]))
			return labels[i][1];
	return name;
}

/*
 * The statistic's value that means "no change from the baseline", drawn as
 * a reference line: 1 for a ratio or an agreement, 0 for a KL or a delta.
 */
static int reference(const json_t *m, double *ref)
{
	const char *s = str(m, "statistic");

	if (!strcmp(s, "ppl_ratio") || !strcmp(s, "agreement"))
		*ref = 1;
	else if (!strcmp(s, "mean_kl") || !strcmp(s, "accuracy_delta"))
		*ref = 0;
	else
		return 0;
	return 1;
}

/*
 * The gate's threshold in the units of the statistic: gate.threshold when
 * the producer wrote it, else derived as the build applies the gates
 * ("max"/"min": the value itself; "max_increase" of a PPL ratio: 1 + value,
 * or 1 + value / baseline when absolute; "max_drop" of an agreement:
 * 1 - value; of an accuracy delta: -value, or -value * baseline when
 * relative).  Returns 0 when unknown (no line is drawn).
 */
static int threshold(const json_t *m, double *t)
{
	const json_t *g = get(m, "gate");
	const char *kind = str(g, "kind"), *stat = str(m, "statistic");
	double v = num(g, "value");
	int rel = json_is_true(get(g, "relative"));

	if (!json_is_object(g))
		return 0;
	if (has_num(g, "threshold"))
		*t = num(g, "threshold");
	else if (!strcmp(kind, "max") || !strcmp(kind, "min"))
		*t = v;
	else if (!strcmp(kind, "max_increase") && !strcmp(stat, "ppl_ratio") && rel)
		*t = 1 + v;
	else if (!strcmp(kind, "max_increase") && !strcmp(stat, "ppl_ratio") &&
		 has_num(m, "baseline") && num(m, "baseline") > 0)
		*t = 1 + v / num(m, "baseline");
	else if (!strcmp(kind, "max_drop") && !strcmp(stat, "agreement"))
		*t = 1 - v;
	else if (!strcmp(kind, "max_drop") && !strcmp(stat, "accuracy_delta") && !rel)
		*t = -v;
	else if (!strcmp(kind, "max_drop") && !strcmp(stat, "accuracy_delta") &&
		 has_num(m, "baseline"))
		*t = -v * num(m, "baseline");
	else
		return 0;
	return isfinite(*t);
}

static int upper_bound(const json_t *gate)
{
	return strcmp(str(gate, "bound"), "lower") != 0;
}

/* ---- numbers -------------------------------------------------------------- */

/*
 * A number printed by printf, tidied: no "-" on a negative zero ("-0.00"),
 * thousands separators from 5 integer digits up (42,776.5; not 1024).
 */
static void put_num_text(struct mcb_buf *b, const char *s)
{
	size_t n, i;

	if (s[0] == '-' && !strpbrk(s, "123456789"))
		s++;
	if (*s == '-')
		mcb_buf_addc(b, *s++);
	n = strspn(s, "0123456789");
	if (n < 5 || strpbrk(s, "eE")) {
		mcb_buf_adds(b, s);
		return;
	}
	for (i = 0; i < n; i++) {
		if (i && (n - i) % 3 == 0)
			mcb_buf_addc(b, ',');
		mcb_buf_addc(b, s[i]);
	}
	mcb_buf_adds(b, s + n);
}

/* x with d decimals. */
static void put_fixed(struct mcb_buf *b, double x, int d)
{
	char tmp[64];

	if (fabs(x) >= 1e15)
		snprintf(tmp, sizeof(tmp), "%.4g", x);
	else
		snprintf(tmp, sizeof(tmp), "%.*f", d, x);
	put_num_text(b, tmp);
}

/* x with sig significant digits, trailing zeros dropped. */
static void put_sig(struct mcb_buf *b, double x, int sig)
{
	char tmp[64];
	double a = fabs(x);
	int d;

	if (a == 0) {
		mcb_buf_adds(b, "0");
		return;
	}
	if (a < 1e-4 || a >= 1e15) {
		snprintf(tmp, sizeof(tmp), "%.*g", sig, x);
		mcb_buf_adds(b, tmp);
		return;
	}
	d = sig - 1 - (int)floor(log10(a));
	snprintf(tmp, sizeof(tmp), "%.*f", d > 0 ? d : 0, x);
	if (strchr(tmp, '.')) {
		char *end = tmp + strlen(tmp);

		while (end[-1] == '0')
			*--end = '\0';
		if (end[-1] == '.')
			end[-1] = '\0';
	}
	put_num_text(b, tmp);
}

/* x rounded to an integer, with thousands separators: 1,056,512. */
static void put_int(struct mcb_buf *b, double x)
{
	char tmp[32];
	size_t n, i;
	int neg;

	if (fabs(x) >= 1e18) {
		snprintf(tmp, sizeof(tmp), "%.4g", x);
		mcb_buf_adds(b, tmp);
		return;
	}
	neg = llround(x) < 0;
	snprintf(tmp, sizeof(tmp), "%lld", (long long)llabs(llround(x)));
	if (neg)
		mcb_buf_addc(b, '-');
	n = strlen(tmp);
	for (i = 0; i < n; i++) {
		if (i && (n - i) % 3 == 0)
			mcb_buf_addc(b, ',');
		mcb_buf_addc(b, tmp[i]);
	}
}

/* A count: an integer with separators, or a real with 4 digits. */
static void put_count(struct mcb_buf *b, double x)
{
	if (x == floor(x))
		put_int(b, x);
	else
		put_sig(b, x, 4);
}

/* Three significant digits, keeping trailing zeros (1.00, 10.0, 337). */
static void put_3(struct mcb_buf *b, double v)
{
	double a = fabs(v);

	mcb_buf_printf(b, "%.*f", a >= 99.95 ? 0 : a >= 9.995 ? 1 : 2, v);
}

/*
 * A size in bytes, 3 significant digits: "512 B", "337 KiB", "1.01 MiB",
 * "64.0 GiB"; trimmed ("1 MiB", "1.5 MiB") for axis ticks.
 */
static void put_bytes_as(struct mcb_buf *b, double x, int trim)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	double v = x;
	int k = -1;

	if (!(fabs(x) >= 1024)) {
		put_count(b, x);
		mcb_buf_adds(b, " B");
		return;
	}
	while (fabs(v) >= 1024 && k < 5)
		v /= 1024, k++;
	if (fabs(v) >= 1e6 || trim)
		put_sig(b, v, fabs(v) >= 1e6 ? 4 : 3);
	else
		put_3(b, v);
	mcb_buf_printf(b, " %s", unit[k]);
}

static void put_bytes(struct mcb_buf *b, double x)
{
	put_bytes_as(b, x, 0);
}

/* A quantity with an SI prefix: "528 kFLOP", "1.02 TFLOPS". */
static void put_si(struct mcb_buf *b, double x, const char *unit)
{
	static const char *const prefix[] = {"k", "M", "G", "T", "P", "E"};
	double v = x;
	int k = -1;

	if (!(fabs(x) >= 1000)) {
		put_sig(b, x, 3);
		mcb_buf_printf(b, " %s", unit);
		return;
	}
	while (fabs(v) >= 1000 && k < 5)
		v /= 1000, k++;
	if (fabs(v) >= 1e6)
		put_sig(b, v, 4);
	else
		put_3(b, v);
	mcb_buf_printf(b, " %s%s", prefix[k], unit);
}

/* A rate: 567.8, 148,000, 6.78 M. */
static void put_rate(struct mcb_buf *b, double x)
{
	if (fabs(x) >= 1e6)
		put_si(b, x, "");
	else if (fabs(x) >= 1000) {
		put_int(b, x);
	} else {
		put_sig(b, x, 4);
	}
}

/* A fraction as a percentage: 0.95 -> "95%", 0.00001 -> "0.001%". */
static void put_pct(struct mcb_buf *b, double frac)
{
	double v = frac * 100;

	put_sig(b, v, fabs(v) >= 1 ? 3 : 2);
	mcb_buf_addc(b, '%');
}

static void put_p(struct mcb_buf *b, double p)
{
	if (p < 0.001 && p >= 0)
		mcb_buf_adds(b, "<0.001");
	else
		put_sig(b, p, 2);
}

/*
 * Decimals for a value and its CI: two significant digits of the CI's
 * width (1.0071 [1.0029, 1.0113]); 4 significant digits of the point when
 * the CI is empty.
 */
static int ci_decimals(double point, double lo, double hi)
{
	double w = fabs(hi - lo), a = fabs(point);
	int d;

	if (w > 0 && isfinite(w))
		d = 1 - (int)floor(log10(w));
	else if (a > 0)
		d = 3 - (int)floor(log10(a));
	else
		d = 3;
	return d < 0 ? 0 : d > 10 ? 10 : d;
}

/* The point to b, "[lo, hi]" to ci, with the same decimals. */
static void put_ci_parts(struct mcb_buf *b, struct mcb_buf *ci, double point, double lo, double hi)
{
	int d = ci_decimals(point, lo, hi);

	put_fixed(b, point, d);
	if (b == ci)
		mcb_buf_addc(b, ' ');
	mcb_buf_addc(ci, '[');
	put_fixed(ci, lo, d);
	mcb_buf_adds(ci, ", ");
	put_fixed(ci, hi, d);
	mcb_buf_addc(ci, ']');
}

/* "1.0071 [1.0029, 1.0113]" */
static void put_ci(struct mcb_buf *b, double point, double lo, double hi)
{
	put_ci_parts(b, b, point, lo, hi);
}

static void put_metric_ci(struct mcb_buf *b, const json_t *m)
{
	put_ci(b, num(m, "point"), ci_at(m, 0), ci_at(m, 1));
}

/* "upper 1.0113 <= 1.05" (or "> 1.05" when failed), numbers as the CI's. */
static void put_gate_detail(struct mcb_buf *b, const json_t *m)
{
	const json_t *g = get(m, "gate");
	int d = ci_decimals(num(m, "point"), ci_at(m, 0), ci_at(m, 1));
	int up = upper_bound(g), ok = json_is_true(get(g, "passed"));
	double t;

	mcb_buf_adds(b, up ? "upper " : "lower ");
	put_fixed(b, num(g, "bound_value"), d);
	if (threshold(m, &t)) {
		mcb_buf_adds(b, up ? ok ? " \xe2\x89\xa4 " : " > " : ok ? " \xe2\x89\xa5 " : " < ");
		put_sig(b, t, 6);
	}
}

/* ---- escaping --------------------------------------------------------- */

static void put_html(struct mcb_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '&':
			mcb_buf_adds(b, "&amp;");
			break;
		case '<':
			mcb_buf_adds(b, "&lt;");
			break;
		case '>':
			mcb_buf_adds(b, "&gt;");
			break;
		case '"':
			mcb_buf_adds(b, "&quot;");
			break;
		case '\'':
			mcb_buf_adds(b, "&#39;");
			break;
		default:
			/* control characters are not allowed in HTML text */
			if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
				mcb_buf_adds(b, "&#xfffd;");
			else
				mcb_buf_addc(b, (char)c);
		}
	}
}

static int alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (unsigned char)c >= 0x80;
}

#define MD_START 1u   /* s starts a block (a list item): "#", "-", "1." would be markup */
#define MD_TABLE 2u   /* s is in a table cell: "|" would end it */
#define MD_HEADING 4u /* s is in a heading: a trailing "#" would be dropped */

/*
 * The position of the bracket matching the one at s[i] ('[' forward, ']'
 * backward), or -1.
 */
static long match_bracket(const char *s, size_t n, size_t i)
{
	int dir = s[i] == '[' ? 1 : -1, depth = 0;

	for (long k = (long)i; k >= 0 && k < (long)n; k += dir) {
		depth += s[k] == '[' ? dir : s[k] == ']' ? -dir : 0;
		if (!depth)
			return k;
	}
	return -1;
}

/*
 * Markdown text (CommonMark + GFM) that renders as the literal s and stays
 * readable in a terminal: only what could start markup is escaped.  "*",
 * "`", "\\", "~" always; "_" unless inside a word ("max_increase" stays); "<"
 * before a letter (tags, autolinks); "&" before an entity; "[" when its "]"
 * is followed by "(", "[" or ":" (links, images, definitions) and any
 * unmatched bracket, so that "[1.052, 1.090]" stays as it is.  Line
 * breaks become spaces.
 */
static void put_md(struct mcb_buf *b, const char *s, unsigned how)
{
	size_t n = strlen(s), i = 0;

	if (how & MD_START) {
		while (s[i] >= '0' && s[i] <= '9')
			i++;
		if (i && (s[i] == '.' || s[i] == ')')) {
			/* "1." would start an ordered list */
			mcb_buf_add(b, s, i);
			mcb_buf_addc(b, '\\');
		} else {
			i = 0;
			if (*s && strchr("#+-=>", *s))
				mcb_buf_addc(b, '\\');
		}
	}
	for (; i < n; i++) {
		char c = s[i], next = s[i + 1];
		int esc = 0;

		if ((unsigned char)c < 0x20 || c == 0x7f) {
			mcb_buf_addc(b, ' ');
			continue;
		}
		if (strchr("\\`*~", c))
			esc = 1;
		else if (c == '#')
			esc = (how & MD_HEADING) != 0;
		else if (c == '|')
			esc = (how & MD_TABLE) != 0;
		else if (c == '_')
			esc = !(i > 0 && alnum(s[i - 1]) && alnum(next));
		else if (c == '<')
			esc = (next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
			      (next && strchr("/!?", next));
		else if (c == '&')
			esc = alnum(next) || next == '#';
		else if (c == '[') {
			long k = match_bracket(s, n, i);

			esc = k < 0 || (s[k + 1] && strchr("([:", s[k + 1]));
		} else if (c == ']')
			esc = match_bracket(s, n, i) < 0;
		if (esc)
			mcb_buf_addc(b, '\\');
		mcb_buf_addc(b, c);
	}
}

/* A code span holding s literally (a fence longer than any backtick run). */
static void put_md_code(struct mcb_buf *b, const char *s, int in_table)
{
	size_t run = 0, longest = 0, i;
	const char *p;
	int pad;

	if (!*s) {
		mcb_buf_adds(b, "\"\"");
		return;
	}
	for (p = s; *p; p++) {
		run = *p == '`' ? run + 1 : 0;
		if (run > longest)
			longest = run;
	}
	pad = s[0] == '`' || s[strlen(s) - 1] == '`' || s[0] == ' ';
	for (i = 0; i <= longest; i++)
		mcb_buf_addc(b, '`');
	if (pad)
		mcb_buf_addc(b, ' ');
	for (p = s; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			mcb_buf_addc(b, ' ');
		else if (*p == '|' && in_table)
			mcb_buf_adds(b, "\\|");
		else
			mcb_buf_addc(b, *p);
	}
	if (pad)
		mcb_buf_addc(b, ' ');
	for (i = 0; i <= longest; i++)
		mcb_buf_addc(b, '`');
}

/* Terminal text: control characters (escape sequences) become '?'. */
static void put_term(struct mcb_buf *b, const char *s)
{
	for (; *s; s++)
		mcb_buf_addc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* Display width of UTF-8 text, one column per code point. */
static size_t width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* s cut to at most max code points, with "..." when cut (for SVG labels). */
static void put_html_cut(struct mcb_buf *b, const char *s, size_t max)
{
	struct mcb_buf t = MCB_BUF_INIT;
	size_t n = 0;
	const char *p;

	if (width(s) <= max) {
		put_html(b, s);
		return;
	}
	for (p = s; *p; p++) {
		if (((unsigned char)*p & 0xc0) != 0x80 && ++n > max - 1)
			break;
		mcb_buf_addc(&t, *p);
	}
	mcb_buf_adds(&t, "\xe2\x80\xa6");
	put_html(b, t.data);
	mcb_buf_release(&t);
}

/* ---- tables --------------------------------------------------------------- */

#define C_NUM 1u  /* a number: right-aligned */
#define C_CODE 2u /* a name from the recipe: code span / <code> */
#define C_PASS 4u /* verdict styling */
#define C_FAIL 8u
#define C_NONE 16u
#define C_HEAD 32u /* a row header (the key of a key-value row) */

#define C_VERDICT (C_PASS | C_FAIL | C_NONE)

/*
 * A table of plain-text cells, row-major; unless kv, row 0 holds the
 * headers.  A cell may carry a note, a secondary line ("upper 1.09 > 1.05").
 */
struct tab {
	size_t ncol;	      /* columns */
	size_t n, cap;	      /* cells used, allocated */
	struct mcb_buf *text; /* n cell texts, unescaped */
	struct mcb_buf *note; /* n notes, unescaped, usually empty */
	unsigned *flags;      /* n cell flags (C_...) */
	int kv;		      /* key-value rows, no header row */
};

static void tab_init(struct tab *t, size_t ncol, int kv)
{
	memset(t, 0, sizeof(*t));
	t->ncol = ncol;
	t->kv = kv;
}

/* The next cell, to be filled by appending to the returned buffer. */
static struct mcb_buf *tab_add(struct tab *t, unsigned flags)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 32;
		t->text = mcb_xrealloc(t->text, t->cap * sizeof(*t->text));
		t->note = mcb_xrealloc(t->note, t->cap * sizeof(*t->note));
		t->flags = mcb_xrealloc(t->flags, t->cap * sizeof(*t->flags));
	}
	t->text[t->n] = (struct mcb_buf)MCB_BUF_INIT;
	t->note[t->n] = (struct mcb_buf)MCB_BUF_INIT;
	t->flags[t->n] = flags;
	return &t->text[t->n++];
}

/* The note of the last cell added. */
static struct mcb_buf *tab_note(struct tab *t)
{
	return &t->note[t->n - 1];
}

static void tab_adds(struct tab *t, unsigned flags, const char *s)
{
	mcb_buf_adds(tab_add(t, flags), s);
}

/* A key-value row; returns the value cell. */
static struct mcb_buf *kv_row(struct tab *t, const char *key, unsigned flags)
{
	tab_adds(t, C_HEAD, key);
	return tab_add(t, flags);
}

static void tab_free(struct tab *t)
{
	for (size_t i = 0; i < t->n; i++) {
		mcb_buf_release(&t->text[i]);
		mcb_buf_release(&t->note[i]);
	}
	free(t->text);
	free(t->note);
	free(t->flags);
}

static unsigned verdict_flag(enum verdict v)
{
	return v == V_PASS ? C_PASS : v == V_FAIL ? C_FAIL : C_NONE;
}

/* One cell's content in Markdown: code span, bold failure, " (note)". */
static void md_cell(struct mcb_buf *b, const struct tab *t, size_t i, unsigned how)
{
	const char *s = mcb_buf_str(&t->text[i]);
	unsigned f = t->flags[i];

	if (f & C_CODE)
		put_md_code(b, s, (how & MD_TABLE) != 0);
	else if (f & C_FAIL)
		mcb_buf_adds(b, "**"), put_md(b, s, how), mcb_buf_adds(b, "**");
	else
		put_md(b, s, how);
	if (t->note[i].len) {
		mcb_buf_adds(b, " (");
		put_md(b, t->note[i].data, how & MD_TABLE);
		mcb_buf_addc(b, ')');
	}
}

/* A GFM table; key-value rows as a list, which reads better in a terminal. */
static void tab_md(const struct tab *t, struct mcb_buf *b)
{
	size_t i, c;

	if (t->kv) {
		for (i = 0; i + 1 < t->n; i += 2) {
			mcb_buf_adds(b, "- ");
			put_md(b, mcb_buf_str(&t->text[i]), MD_START);
			mcb_buf_adds(b, ": ");
			md_cell(b, t, i + 1, 0);
			mcb_buf_addc(b, '\n');
		}
		mcb_buf_addc(b, '\n');
		return;
	}
	for (i = 0; i < t->n; i++) {
		c = i % t->ncol;
		mcb_buf_adds(b, "| ");
		if (i < t->ncol)
			put_md(b, mcb_buf_str(&t->text[i]), MD_TABLE);
		else
			md_cell(b, t, i, MD_TABLE);
		mcb_buf_addc(b, ' ');
		if (c + 1 < t->ncol && i + 1 < t->n)
			continue;
		mcb_buf_adds(b, "|\n");
		if (i + 1 == t->ncol) {
			for (c = 0; c < t->ncol; c++)
				mcb_buf_adds(b, t->flags[c] & C_NUM ? "| --: " : "| --- ");
			mcb_buf_adds(b, "|\n");
		}
	}
	mcb_buf_addc(b, '\n');
}

static void html_cell(struct mcb_buf *b, const struct tab *t, size_t i, int num)
{
	unsigned f = t->flags[i];

	mcb_buf_adds(b, f & C_HEAD ? "<th scope=\"row\">" : num ? "<td class=\"n\">" : "<td>");
	if (f & C_CODE)
		mcb_buf_adds(b, "<code>");
	if (f & C_VERDICT)
		mcb_buf_printf(b, "<span class=\"vd %s\">",
			       f & C_PASS   ? "pass"
			       : f & C_FAIL ? "fail"
					    : "none");
	put_html(b, mcb_buf_str(&t->text[i]));
	if (f & C_VERDICT)
		mcb_buf_adds(b, "</span>");
	if (f & C_CODE)
		mcb_buf_adds(b, "</code>");
	if (t->note[i].len) {
		mcb_buf_adds(b, "<br><span class=\"note\">");
		put_html(b, t->note[i].data);
		mcb_buf_adds(b, "</span>");
	}
	mcb_buf_adds(b, f & C_HEAD ? "</th>" : "</td>");
}

/* A table; numeric columns (C_NUM in the header) right-aligned. */
static void tab_html(const struct tab *t, struct mcb_buf *b, const char *cls)
{
	size_t i, c;

	mcb_buf_printf(b, "<div class=\"tw\"><table class=\"%s\">\n", t->kv ? "kv" : cls);
	if (!t->kv) {
		mcb_buf_adds(b, "<thead><tr>");
		for (c = 0; c < t->ncol && c < t->n; c++) {
			mcb_buf_adds(b, t->flags[c] & C_NUM ? "<th scope=\"col\" class=\"n\">"
							    : "<th scope=\"col\">");
			put_html(b, mcb_buf_str(&t->text[c]));
			mcb_buf_adds(b, "</th>");
		}
		mcb_buf_adds(b, "</tr></thead>\n");
	}
	mcb_buf_adds(b, "<tbody>\n");
	for (i = t->kv ? 0 : t->ncol; i < t->n; i += t->ncol) {
		mcb_buf_adds(b, "<tr>");
		for (c = 0; c < t->ncol && i + c < t->n; c++)
			html_cell(b, t, i + c, !t->kv && (t->flags[c] & C_NUM));
		mcb_buf_adds(b, "</tr>\n");
	}
	mcb_buf_adds(b, "</tbody>\n</table></div>\n");
}

/* ---- the report's tables, shared by report.md and report.html ------------ */

static const char *const dash = "\xe2\x80\x93";

static void put_verdict_word(struct mcb_buf *c, enum verdict v)
{
	mcb_buf_adds(c, v == V_PASS ? "pass" : v == V_FAIL ? "FAIL" : "not gated");
}

/* The header of CI columns: "point [95% CI]". */
static void put_ci_head(struct mcb_buf *c, const json_t *q)
{
	mcb_buf_adds(c, "point [");
	put_pct(c, num(q, "confidence"));
	mcb_buf_adds(c, " CI]");
}

static void put_opt_count(struct mcb_buf *c, const json_t *o, const char *key)
{
	if (has_num(o, key))
		put_count(c, num(o, key));
	else
		mcb_buf_adds(c, dash);
}

static void put_opt_p(struct mcb_buf *c, const json_t *o)
{
	if (has_num(o, "p"))
		put_p(c, num(o, "p"));
	else
		mcb_buf_adds(c, dash);
}

/*
 * A compression ratio: "3.06x smaller", "4.00x larger" (ratio < 1) or "same
 * size"; returns 1 for the last.
 */
static int put_ratio(struct mcb_buf *c, double ratio)
{
	struct mcb_buf x = MCB_BUF_INIT;
	int same;

	put_3(&x, ratio >= 1 || ratio <= 0 ? ratio : 1 / ratio);
	same = !strcmp(x.data, "1.00");
	if (same)
		mcb_buf_adds(c, "same size");
	else
		mcb_buf_printf(c, "%s\xc3\x97 %s", x.data,
			       ratio >= 1 || ratio <= 0 ? "smaller" : "larger");
	mcb_buf_release(&x);
	return same;
}

/* "3.06x smaller than 1.01 MiB" (the baseline's size), "same size as the baseline". */
static void put_compression(struct mcb_buf *c, const json_t *r)
{
	if (put_ratio(c, num(get(r, "export"), "compression_ratio"))) {
		mcb_buf_adds(c, " as the baseline");
		return;
	}
	mcb_buf_adds(c, " than ");
	put_bytes(c, num(get(r, "model"), "baseline_bytes"));
}

/* The paragraph before the quality table. */
static void quality_intro(struct mcb_buf *c, const json_t *q)
{
	mcb_buf_printf(c, "Against %s. ", str(q, "baseline"));
	put_pct(c, num(q, "confidence"));
	mcb_buf_adds(c, " confidence intervals from a paired bootstrap (");
	put_count(c, num(get(q, "bootstrap"), "reps"));
	mcb_buf_adds(c, " resamples of whole items, seed ");
	put_count(c, num(get(q, "bootstrap"), "seed"));
	mcb_buf_adds(c,
		     "). Value: the metric on the baseline \xe2\x86\x92 on the compressed model. "
		     "A gate passes when the CI's bound is within the threshold.");
}

static void mcnemar_text(struct mcb_buf *c, const json_t *mc)
{
	mcb_buf_adds(c, "McNemar: ");
	put_count(c, num(mc, "n01"));
	mcb_buf_adds(c, " items right before and wrong after, ");
	put_count(c, num(mc, "n10"));
	mcb_buf_adds(c, " wrong before and right after; exact p = ");
	put_p(c, num(mc, "p"));
	mcb_buf_addc(c, '.');
}

static void quality_tab(const json_t *q, struct tab *t)
{
	const json_t *m;
	size_t i;

	tab_init(t, 8, 0);
	tab_adds(t, 0, "metric");
	tab_adds(t, 0, "dataset");
	tab_adds(t, C_NUM, "items / tokens");
	tab_adds(t, C_NUM, "value");
	put_ci_head(tab_add(t, C_NUM), q);
	tab_adds(t, C_NUM, "p");
	tab_adds(t, 0, "gate");
	tab_adds(t, 0, "verdict");
	json_array_foreach (get(q, "metrics"), i, m) {
		const json_t *g = get(m, "gate");
		struct mcb_buf *c;

		tab_adds(t, 0, label(str(m, "name")));
		tab_adds(t, C_CODE, str(m, "dataset"));
		c = tab_add(t, C_NUM);
		put_count(c, num(m, "items"));
		mcb_buf_adds(c, " / ");
		put_opt_count(c, m, "tokens");
		c = tab_add(t, C_NUM);
		if (has_num(m, "baseline")) {
			/* both with the decimals of 4 significant digits of the larger */
			double a = fmax(fabs(num(m, "baseline")), fabs(num(m, "compressed")));
			int d = a > 0 ? 3 - (int)floor(log10(a)) : 0;

			d = d < 0 ? 0 : d > 10 ? 10 : d;
			put_fixed(c, num(m, "baseline"), d);
			mcb_buf_adds(c, " \xe2\x86\x92 ");
			put_fixed(c, num(m, "compressed"), d);
		} else {
			put_sig(c, num(m, "compressed"), 4);
		}
		put_metric_ci(tab_add(t, C_NUM), m);
		mcb_buf_adds(tab_note(t), label(str(m, "statistic")));
		put_opt_p(tab_add(t, C_NUM), m);
		if (json_is_object(g)) {
			tab_adds(t, 0, str(g, "text"));
			put_gate_detail(tab_note(t), m);
		} else {
			tab_adds(t, 0, "none");
		}
		put_verdict_word(tab_add(t, verdict_flag(gate_verdict(g))), gate_verdict(g));
	}
}

static void groups_tab(const json_t *q, const json_t *m, struct tab *t)
{
	const json_t *gr;
	size_t i;

	tab_init(t, 6, 0);
	tab_adds(t, 0, "group");
	tab_adds(t, C_NUM, "items");
	tab_adds(t, C_NUM, "tokens");
	put_ci_head(tab_add(t, C_NUM), q);
	tab_adds(t, C_NUM, "p");
	tab_adds(t, 0, "verdict");
	json_array_foreach (get(m, "groups"), i, gr) {
		enum verdict v = passed_verdict(get(gr, "passed"));

		tab_adds(t, C_CODE, str(gr, "group"));
		put_count(tab_add(t, C_NUM), num(gr, "items"));
		put_opt_count(tab_add(t, C_NUM), gr, "tokens");
		put_metric_ci(tab_add(t, C_NUM), gr);
		put_opt_p(tab_add(t, C_NUM), gr);
		put_verdict_word(tab_add(t, verdict_flag(v)), v);
	}
}

static void measured_tab(const json_t *me, struct tab *t)
{
	struct mcb_buf *c;

	tab_init(t, 2, 1);
	mcb_buf_adds(kv_row(t, "host", 0), str(me, "host"));
	c = kv_row(t, "engine", 0);
	put_count(c, num(me, "threads"));
	mcb_buf_printf(c, " threads, mode %s", str(me, "mode"));
	c = kv_row(t, "decoding", 0);
	put_rate(c, num(me, "decode_tokens_per_s"));
	mcb_buf_adds(c, " tokens/s");
	c = tab_note(t);
	put_count(c, num(me, "decode_tokens"));
	mcb_buf_adds(c, " tokens, ");
	put_count(c, num(me, "repeats"));
	mcb_buf_adds(c, " repeats");
	c = kv_row(t, "prompt", 0);
	put_rate(c, num(me, "prompt_tokens_per_s"));
	mcb_buf_adds(c, " tokens/s");
	c = tab_note(t);
	put_count(c, num(me, "prompt_tokens"));
	mcb_buf_adds(c, "-token prompt");
	c = kv_row(t, "time per token", 0);
	mcb_buf_adds(c, "p50 ");
	put_sig(c, num(me, "token_ms_p50"), 3);
	mcb_buf_adds(c, " ms, p99 ");
	put_sig(c, num(me, "token_ms_p99"), 3);
	mcb_buf_adds(c, " ms");
	put_bytes(kv_row(t, "peak RSS", 0), num(me, "peak_rss_bytes"));
}

/* "OPS" for integer dtypes, "FLOPS" for the others. */
static const char *ops_unit(const char *dtype)
{
	return !strncmp(dtype, "int", 3) ? "OPS" : "FLOPS";
}

static void estimate_tab(const json_t *es, struct tab *t)
{
	struct mcb_buf *c;
	int mem = !strcmp(str(es, "bound"), "memory");

	tab_init(t, 2, 1);
	c = kv_row(t, "decoding", 0);
	put_rate(c, num(es, "tokens_per_s"));
	mcb_buf_printf(c, " tokens/s, %s bound", mem ? "memory" : "compute");
	c = kv_row(t, "memory bound", 0);
	put_rate(c, num(es, "memory_bound_tokens_per_s"));
	mcb_buf_adds(c, " tokens/s");
	c = tab_note(t);
	put_sig(c, num(es, "bandwidth_gbs"), 4);
	mcb_buf_adds(c, " GB/s; per token ");
	put_bytes(c, num(es, "weight_bytes_per_token"));
	mcb_buf_adds(c, " of weights, ");
	put_bytes(c, num(es, "kv_bytes_per_token"));
	mcb_buf_adds(c, " of KV cache");
	c = kv_row(t, "compute bound", 0);
	if (!(num(es, "peak_tflops") > 0)) {
		mcb_buf_printf(c, "unknown: the profile gives no peak for %s", str(es, "dtype"));
		return;
	}
	put_rate(c, num(es, "compute_bound_tokens_per_s"));
	mcb_buf_adds(c, " tokens/s");
	c = tab_note(t);
	put_sig(c, num(es, "peak_tflops"), 4);
	mcb_buf_printf(c, " T%s %s; per token ", ops_unit(str(es, "dtype")), str(es, "dtype"));
	put_si(c, num(es, "flops_per_token"), "FLOP");
}

static void fit_tab(const json_t *fit, struct tab *t)
{
	struct mcb_buf *c;
	int fits = json_is_true(get(fit, "fits"));

	tab_init(t, 2, 1);
	c = kv_row(t, "fits", fits ? C_PASS : C_FAIL);
	mcb_buf_adds(c, fits ? "yes" : "NO");
	c = tab_note(t);
	put_pct(c, num(fit, "utilization"));
	mcb_buf_adds(c, " of the device");
	c = kv_row(t, "total", 0);
	put_bytes(c, num(fit, "total_bytes"));
	mcb_buf_adds(c, " of ");
	put_bytes(c, num(fit, "device_bytes"));
	put_bytes(kv_row(t, "weights", 0), num(fit, "weights_bytes"));
	c = kv_row(t, "KV cache", 0);
	put_bytes(c, num(fit, "kv_cache_bytes"));
	c = tab_note(t);
	put_count(c, num(fit, "context"));
	mcb_buf_adds(c, "-token context, batch ");
	put_count(c, num(fit, "batch"));
}

static void export_tab(const json_t *ex, const json_t *model, struct tab *t)
{
	struct mcb_buf *c;

	tab_init(t, 2, 1);
	mcb_buf_adds(kv_row(t, "format", 0), str(ex, "format"));
	c = kv_row(t, "size", 0);
	put_bytes(c, num(ex, "bytes"));
	c = tab_note(t);
	put_count(c, num(ex, "bytes"));
	mcb_buf_adds(c, " bytes");
	c = kv_row(t, "compression", 0);
	put_3(c, num(ex, "compression_ratio"));
	mcb_buf_adds(c, "\xc3\x97");
	c = tab_note(t);
	mcb_buf_adds(c, "baseline ");
	put_bytes(c, num(model, "baseline_bytes"));
	put_sig(kv_row(t, "bits per weight", 0), num(ex, "bits_per_weight"), 4);
}

static void files_tab(const json_t *ex, struct tab *t)
{
	const json_t *f;
	size_t i;

	tab_init(t, 3, 0);
	tab_adds(t, 0, "file");
	tab_adds(t, C_NUM, "bytes");
	tab_adds(t, C_NUM, "size");
	json_array_foreach (get(ex, "files"), i, f) {
		tab_adds(t, C_CODE, str(f, "name"));
		put_count(tab_add(t, C_NUM), num(f, "bytes"));
		put_bytes(tab_add(t, C_NUM), num(f, "bytes"));
	}
}

static void model_tab(const json_t *r, struct tab *t)
{
	const json_t *model = get(r, "model");

	tab_init(t, 2, 1);
	mcb_buf_adds(kv_row(t, "model", C_CODE), str(model, "name"));
	mcb_buf_adds(kv_row(t, "architecture", 0), str(model, "architecture"));
	put_count(kv_row(t, "parameters", 0), num(model, "parameters"));
	put_bytes(kv_row(t, "baseline size", 0), num(model, "baseline_bytes"));
	mcb_buf_adds(kv_row(t, "built by", 0), "mcbuild ");
	mcb_buf_adds(&t->text[t->n - 1], str(r, "mcbuild_version"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void hardware_tab(const json_t *hw, struct tab *t)
{
	const json_t *peak = get(hw, "peak_tflops");
	size_t n = json_object_size(peak), i = 0;
	struct mcb_buf *c;
	const char **keys;
	const char *key;
	json_t *v;

	tab_init(t, 2, 1);
	mcb_buf_adds(kv_row(t, "hardware", C_CODE), str(hw, "name"));
	mcb_buf_adds(kv_row(t, "description", 0), str(hw, "description"));
	mcb_buf_adds(kv_row(t, "kind", 0), str(hw, "kind"));
	c = kv_row(t, "memory", 0);
	put_sig(c, num(hw, "memory_gb"), 4);
	mcb_buf_adds(c, " GB, ");
	put_sig(c, num(hw, "bandwidth_gbs"), 4);
	mcb_buf_adds(c, " GB/s");
	if (!n)
		return;
	/* sorted: equal JSON values render equally whatever their key order */
	keys = mcb_xmalloc(n * sizeof(*keys));
	json_object_foreach ((json_t *)peak, key, v)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), cmp_str);
	c = kv_row(t, "dense peak", 0);
	for (i = 0; i < n; i++) {
		mcb_buf_printf(c, "%s%s ", i ? ", " : "", keys[i]);
		put_sig(c, num(peak, keys[i]), 4);
		mcb_buf_printf(c, " T%s", ops_unit(keys[i]));
	}
	free(keys);
}

/* ---- report.md ---------------------------------------------------------- */

static const char *const verdict_word[] = {"UNGATED", "PASSED", "FAILED"};

static void md_tab(struct mcb_buf *b, struct tab *t)
{
	tab_md(t, b);
	tab_free(t);
}

int mcb_report_markdown(const json_t *r, struct mcb_buf *b, struct mcb_errctx *e)
{
	const json_t *q = get(r, "quality"), *perf, *m, *s;
	struct mcb_buf text = MCB_BUF_INIT;
	struct tab t;
	size_t i, j;
	int rc;

	if ((rc = mcb_report_check(r, e)))
		return rc;
	perf = get(r, "performance");
	mcb_buf_adds(b, "# ");
	put_md(b, str(r, "target"), MD_START | MD_HEADING);
	mcb_buf_printf(b, ": %s\n\n", verdict_word[report_verdict(r)]);
	mcb_buf_adds(b, "Model ");
	put_md_code(b, str(get(r, "model"), "name"), 0);
	mcb_buf_adds(b, " for ");
	put_md_code(b, str(get(r, "hardware"), "name"), 0);
	mcb_buf_adds(b, ", exported as ");
	put_md(b, str(get(r, "export"), "format"), 0);
	mcb_buf_adds(b, ": ");
	put_bytes(b, num(get(r, "export"), "bytes"));
	mcb_buf_adds(b, ", ");
	put_compression(b, r);
	mcb_buf_adds(b, ".\n\n");

	if (json_array_size(get(r, "failures"))) {
		mcb_buf_adds(b, "## Failures\n\n");
		json_array_foreach (get(r, "failures"), i, s) {
			mcb_buf_adds(b, "- ");
			put_md(b, json_string_value(s), MD_START);
			mcb_buf_addc(b, '\n');
		}
		mcb_buf_addc(b, '\n');
	}

	mcb_buf_adds(b, "## Quality\n\n");
	if (!json_is_object(q)) {
		mcb_buf_adds(b, "Not evaluated: the target has no quality gates.\n\n");
	} else {
		quality_intro(&text, q);
		put_md(b, text.data, MD_START);
		mcb_buf_adds(b, "\n\n");
		if (json_array_size(get(q, "metrics"))) {
			quality_tab(q, &t);
			md_tab(b, &t);
		}
		json_array_foreach (get(q, "metrics"), i, m) {
			mcb_buf_adds(b, "- ");
			put_md(b, label(str(m, "name")), MD_START);
			mcb_buf_adds(b, " on ");
			put_md_code(b, str(m, "dataset"), 0);
			mcb_buf_adds(b, " (SHA-256 ");
			put_md_code(b, str(m, "dataset_sha256"), 0);
			mcb_buf_adds(b, "): ");
			put_md(b, str(m, "convention"), 0);
			mcb_buf_addc(b, '\n');
			if (json_is_object(get(m, "mcnemar"))) {
				mcb_buf_reset(&text);
				mcnemar_text(&text, get(m, "mcnemar"));
				mcb_buf_adds(b, "  ");
				put_md(b, text.data, 0);
				mcb_buf_addc(b, '\n');
			}
		}
		if (json_array_size(get(q, "metrics")))
			mcb_buf_addc(b, '\n');
		json_array_foreach (get(q, "metrics"), i, m) {
			if (!json_array_size(get(m, "groups")))
				continue;
			mcb_buf_adds(b, "### Subgroups: ");
			put_md(b, label(str(m, "name")), MD_HEADING);
			mcb_buf_adds(b, " on ");
			put_md_code(b, str(m, "dataset"), 0);
			mcb_buf_adds(b, "\n\n");
			groups_tab(q, m, &t);
			md_tab(b, &t);
		}
	}

	mcb_buf_adds(b, "## Performance\n\n### Measured on this host\n\n");
	if (json_is_object(get(perf, "measured"))) {
		measured_tab(get(perf, "measured"), &t);
		md_tab(b, &t);
	} else {
		mcb_buf_adds(b, "Not measured.\n\n");
	}
	mcb_buf_adds(b, "### Estimate for ");
	put_md_code(b, str(get(perf, "estimate"), "hardware"), 0);
	mcb_buf_adds(b, " (roofline)\n\n");
	estimate_tab(get(perf, "estimate"), &t);
	md_tab(b, &t);
	if (json_array_size(get(get(perf, "estimate"), "assumptions"))) {
		mcb_buf_adds(b, "Assumptions:\n\n");
		json_array_foreach (get(get(perf, "estimate"), "assumptions"), j, s) {
			mcb_buf_adds(b, "- ");
			put_md(b, json_string_value(s), MD_START);
			mcb_buf_addc(b, '\n');
		}
		mcb_buf_addc(b, '\n');
	}
	mcb_buf_adds(b, "### Memory fit\n\n");
	fit_tab(get(perf, "memory_fit"), &t);
	md_tab(b, &t);

	mcb_buf_adds(b, "## Export\n\n");
	export_tab(get(r, "export"), get(r, "model"), &t);
	md_tab(b, &t);
	if (json_array_size(get(get(r, "export"), "files"))) {
		files_tab(get(r, "export"), &t);
		md_tab(b, &t);
	}
	mcb_buf_adds(b, "## Model and hardware\n\n### Model\n\n");
	model_tab(r, &t);
	md_tab(b, &t);
	mcb_buf_adds(b, "### Hardware\n\n");
	hardware_tab(get(r, "hardware"), &t);
	md_tab(b, &t);
	mcb_buf_release(&text);
	return 0;
}

/* ---- SVG ------------------------------------------------------------------ */

/* A linear (or log10) map from data to pixels; lo < hi always. */
struct scale {
	double lo, hi; /* data domain (log10 of it when log) */
	double p0, p1; /* pixel range */
	int log;
};

static double sc_px(const struct scale *s, double x)
{
	double t, px;

	if (s->log)
		x = x > 0 ? log10(x) : s->lo;
	/* halves: no overflow for any pair of finite doubles */
	t = (x / 2 - s->lo / 2) / (s->hi / 2 - s->lo / 2);
	px = s->p0 + t * (s->p1 - s->p0);
	if (!(px > -1e4))
		return -1e4;
	return px < 1e4 ? px : 1e4;
}

/* Widen [lo, hi] by frac on each side; make it non-empty. */
static void sc_domain(struct scale *s, double lo, double hi, double frac)
{
	double w = hi / 2 - lo / 2;

	if (!(w > 0) || w < fabs(lo / 2 + hi / 2) * 1e-12) {
		w = fabs(lo) > 0 ? fabs(lo) * 0.05 : 1;
		lo -= w / 2, hi += w / 2;
		w = hi / 2 - lo / 2;
	}
	s->lo = lo - 2 * w * frac;
	s->hi = hi + 2 * w * frac;
	if (!isfinite(s->lo) || !isfinite(s->hi) || !(s->lo < s->hi))
		s->lo = lo, s->hi = hi;
	if (!(s->lo < s->hi))
		s->lo = -1, s->hi = 1;
}

/* The 1, 2, 5 x 10^k step giving about n ticks over the domain. */
static double nice_step(const struct scale *s, int n)
{
	double raw = (s->hi / 2 - s->lo / 2) * 2 / n, mag, f;

	if (!(raw > 0) || !isfinite(raw))
		return 0;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

/* Ticks k * step within the domain, at most 16; returns their count. */
static int ticks(const struct scale *s, double step, double *out)
{
	double k, k1;
	int n = 0;

	if (!(step > 0))
		return 0;
	k = ceil(s->lo / step);
	k1 = floor(s->hi / step);
	for (; k <= k1 && n < 16; k++)
		out[n++] = k * step;
	return n;
}

static void svg_open(struct mcb_buf *b, int w, int h, const char *id)
{
	mcb_buf_printf(
		b,
		"<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %d %d\" "
		"width=\"%d\" height=\"%d\" role=\"img\" aria-labelledby=\"%s-t %s-d\">\n",
		w, h, w, h, id, id);
}

/* A <text> element; anchor: "start", "middle" or "end". */
static void svg_text(struct mcb_buf *b, double x, double y, const char *anchor, const char *cls,
		     const char *text)
{
	mcb_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"%s\">", x, y,
		       anchor, cls);
	put_html(b, text);
	mcb_buf_adds(b, "</text>\n");
}

static void svg_line(struct mcb_buf *b, double x1, double y1, double x2, double y2, const char *cls)
{
	mcb_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n",
		       x1, y1, x2, y2, cls);
}

/* The text anchor that keeps a label at x inside [x0, x1]. */
static const char *anchor_at(double x, double x0, double x1, double room)
{
	return x - x0 < room ? "start" : x1 - x < room ? "end" : "middle";
}

/* Tick label: decimals enough to tell the ticks apart. */
static void put_tick(struct mcb_buf *b, double v, double step)
{
	int d = step > 0 ? -(int)floor(log10(step) + 1e-9) : 3;

	if (fabs(v) < step / 2)
		v = 0;
	if (fabs(v) >= 1e9 || (fabs(v) < 1e-6 && v != 0))
		mcb_buf_printf(b, "%.3g", v);
	else
		put_fixed(b, v, d < 0 ? 0 : d > 10 ? 10 : d);
}

/* "max_increase: 5% -> 1.05"; just "max: 0.05" when the value is the threshold. */
static void put_threshold_label(struct mcb_buf *l, const json_t *gate, double t)
{
	mcb_buf_adds(l, str(gate, "text"));
	if (num(gate, "value") == t)
		return;
	mcb_buf_adds(l, " \xe2\x86\x92 ");
	put_sig(l, t, 6);
}

/* One row of the metric chart: the overall result or a subgroup. */
struct row {
	const char *name; /* row label */
	const json_t *o;  /* metric or group object: point, ci, p */
	enum verdict v;
};

#define MC_W 1000    /* metric chart: width */
#define MC_LEFT 170  /* label column */
#define MC_RIGHT 250 /* value column */
#define MC_TOP 44    /* threshold and reference labels */
#define MC_ROW 30    /* per row */
#define MC_BOTTOM 46 /* axis */

/*
 * The chart of one gated metric: each row's point and CI as a dot on a bar,
 * against the threshold (dashed, the failing side shaded) and the
 * no-change reference line.
 */
static void svg_metric(struct mcb_buf *b, const json_t *m, size_t idx)
{
	const json_t *g = get(m, "gate"), *gr;
	size_t n = 1 + json_array_size(get(m, "groups")), i;
	struct row *rows = mcb_xcalloc(n, sizeof(*rows));
	double x0 = MC_LEFT, x1 = MC_W - MC_RIGHT, lo, hi, t, ref, tk[16], step, y;
	struct scale s = {0};
	int h = MC_TOP + (int)n * MC_ROW + MC_BOTTOM, has_t, has_ref, nt, k, up;
	char id[32];

	rows[0] = (struct row){"all items", m, gate_verdict(g)};
	json_array_foreach (get(m, "groups"), i, gr)
		rows[i + 1] = (struct row){str(gr, "group"), gr, passed_verdict(get(gr, "passed"))};
	has_t = threshold(m, &t);
	has_ref = reference(m, &ref);
	up = upper_bound(g);
	lo = hi = num(m, "point");
	for (i = 0; i < n; i++) {
		double v[3] = {num(rows[i].o, "point"), ci_at(rows[i].o, 0), ci_at(rows[i].o, 1)};

		for (k = 0; k < 3; k++)
			lo = fmin(lo, v[k]), hi = fmax(hi, v[k]);
	}
	if (has_t)
		lo = fmin(lo, t), hi = fmax(hi, t);
	if (has_ref)
		lo = fmin(lo, ref), hi = fmax(hi, ref);
	sc_domain(&s, lo, hi, 0.06);
	s.p0 = x0, s.p1 = x1;

	snprintf(id, sizeof(id), "m%zu", idx);
	svg_open(b, MC_W, h, id);
	mcb_buf_printf(b, "<title id=\"%s-t\">", id);
	put_html(b, label(str(m, "name")));
	mcb_buf_adds(b, " on ");
	put_html(b, str(m, "dataset"));
	mcb_buf_printf(b, "</title>\n<desc id=\"%s-d\">", id);
	{
		struct mcb_buf d = MCB_BUF_INIT;

		for (i = 0; i < n; i++) {
			mcb_buf_printf(&d, "%s%s: %s ", i ? "; " : "", rows[i].name,
				       label(str(m, "statistic")));
			put_metric_ci(&d, rows[i].o);
			mcb_buf_printf(&d, ", %s",
				       rows[i].v == V_PASS   ? "passed"
				       : rows[i].v == V_FAIL ? "failed"
							     : "not gated");
		}
		mcb_buf_printf(&d, ". Gate %s", str(g, "text"));
		if (has_t) {
			mcb_buf_adds(&d, ": threshold ");
			put_sig(&d, t, 6);
			mcb_buf_printf(&d, " on the CI's %s bound", up ? "upper" : "lower");
		}
		mcb_buf_addc(&d, '.');
		put_html(b, d.data);
		mcb_buf_release(&d);
	}
	mcb_buf_adds(b, "</desc>\n");

	/* the failing side of the threshold, grid, axis */
	y = MC_TOP + n * MC_ROW;
	if (has_t) {
		double tx = sc_px(&s, t);

		if (up)
			mcb_buf_printf(b,
				       "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" "
				       "class=\"zone\"/>\n",
				       tx, MC_TOP - 6, fmax(0, x1 - tx), y - MC_TOP + 6);
		else
			mcb_buf_printf(b,
				       "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" "
				       "class=\"zone\"/>\n",
				       x0, MC_TOP - 6, fmax(0, tx - x0), y - MC_TOP + 6);
	}
	step = nice_step(&s, 6);
	nt = ticks(&s, step, tk);
	for (k = 0; k < nt; k++) {
		struct mcb_buf l = MCB_BUF_INIT;
		double px = sc_px(&s, tk[k]);

		svg_line(b, px, MC_TOP - 6, px, y, "grid");
		put_tick(&l, tk[k], step);
		svg_text(b, px, y + 16, "middle", "tick", l.data);
		mcb_buf_release(&l);
	}
	svg_line(b, x0, y, x1, y, "axis");
	{
		struct mcb_buf l = MCB_BUF_INIT;

		mcb_buf_adds(&l, label(str(m, "statistic")));
		svg_text(b, (x0 + x1) / 2, y + 36, "middle", "axl", l.data);
		mcb_buf_release(&l);
	}
	if (has_ref) {
		double rx = sc_px(&s, ref);

		svg_line(b, rx, MC_TOP - 6, rx, y, "ref");
		svg_text(b, rx, MC_TOP - 10, anchor_at(rx, x0, x1, 60), "refl", "no change");
	}
	if (has_t) {
		struct mcb_buf l = MCB_BUF_INIT;
		double tx = sc_px(&s, t);

		svg_line(b, tx, 12, tx, y, "thr");
		put_threshold_label(&l, g, t);
		svg_text(b, tx, 12, anchor_at(tx, x0, x1, 110), "thrl", l.data);
		mcb_buf_release(&l);
	}

	/* rows */
	for (i = 0; i < n; i++) {
		const json_t *o = rows[i].o;
		double cy = MC_TOP + i * MC_ROW + MC_ROW / 2.0;
		double pl = sc_px(&s, ci_at(o, 0)), ph = sc_px(&s, ci_at(o, 1));
		double px = sc_px(&s, num(o, "point"));
		struct mcb_buf l = MCB_BUF_INIT;

		if (i == 1)
			svg_line(b, 8, cy - MC_ROW / 2.0, MC_W - 8, cy - MC_ROW / 2.0, "sep");
		mcb_buf_printf(b, "<g class=\"row %s%s\"><title>", vclass[rows[i].v],
			       i ? "" : " all");
		put_html(b, rows[i].name);
		mcb_buf_adds(b, ": ");
		put_metric_ci(&l, o);
		mcb_buf_adds(&l, rows[i].v == V_PASS   ? ", passed"
				 : rows[i].v == V_FAIL ? ", failed"
						       : "");
		put_html(b, l.data);
		mcb_buf_adds(b, "</title>\n");
		mcb_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" class=\"lbl\">",
			       MC_LEFT - 12, cy + 4);
		put_html_cut(b, rows[i].name, 20);
		mcb_buf_adds(b, "</text>\n");
		svg_line(b, pl, cy, ph, cy, "bar");
		svg_line(b, pl, cy - 6, pl, cy + 6, "cap");
		svg_line(b, ph, cy - 6, ph, cy + 6, "cap");
		mcb_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\" class=\"dot\"/>\n", px,
			       cy);
		mcb_buf_reset(&l);
		put_metric_ci(&l, o);
		svg_text(b, x1 + 14, cy + 4, "start", "val", l.data);
		if (rows[i].v != V_NONE)
			svg_text(b, MC_W - 8, cy + 4, "end", "vd",
				 rows[i].v == V_PASS ? "pass" : "FAIL");
		mcb_buf_release(&l);
		mcb_buf_adds(b, "</g>\n");
	}
	mcb_buf_adds(b, "</svg>\n");
	free(rows);
}

/* ---- HTML page ------------------------------------------------------------- */

/* clang-format off */
static const char css[] =
	":root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;"
	"--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;"
	"--none:#59636e;--none-bg:#eff2f5;--accent:#0969da}\n"
	"*{box-sizing:border-box}\n"
	"html{background:#fff}\n"
	"body{margin:0 auto;max-width:1100px;padding:28px 36px 48px;color:var(--fg);"
	"font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Noto Sans\",\"Liberation Sans\","
	"Arial,sans-serif}\n"
	"header{border-bottom:1px solid var(--line);padding-bottom:14px;margin-bottom:8px}\n"
	".kicker{margin:0;color:var(--muted);font-size:13px;letter-spacing:.08em;"
	"text-transform:uppercase}\n"
	"h1{font-size:28px;line-height:1.25;margin:4px 0 6px;display:flex;flex-wrap:wrap;"
	"align-items:center;gap:8px 14px}\n"
	"h1 .t{overflow-wrap:anywhere}\n"
	"h2{font-size:20px;margin:34px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}\n"
	"h3{font-size:16px;margin:22px 0 8px}\n"
	"p{margin:8px 0}\n"
	".sub{margin:0;color:var(--muted)}\n"
	".badge{display:inline-block;font-size:14px;font-weight:700;letter-spacing:.08em;"
	"padding:3px 14px;border-radius:999px;border:1.5px solid currentColor}\n"
	".badge.pass{color:var(--pass);background:var(--pass-bg)}\n"
	".badge.fail{color:var(--fail);background:var(--fail-bg)}\n"
	".badge.none{color:var(--none);background:var(--none-bg)}\n"
	".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px;"
	"margin:18px 0 6px}\n"
	".card{border:1px solid var(--line);border-radius:10px;padding:10px 14px;background:#fff}\n"
	".card .k{margin:0;color:var(--muted);font-size:13px}\n"
	".card .v{margin:2px 0 0;font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}\n"
	".card .s{margin:0;color:var(--muted);font-size:13px}\n"
	".card.fail{border-color:var(--fail);background:var(--fail-bg)}\n"
	".failures{border:1px solid var(--fail);border-left-width:5px;background:var(--fail-bg);"
	"border-radius:8px;padding:6px 18px;margin:18px 0}\n"
	".failures h2{border:0;margin:8px 0 4px;color:var(--fail);font-size:17px}\n"
	".failures ul{margin:4px 0 8px;padding-left:20px}\n"
	".tw{overflow-x:auto;margin:8px 0 14px}\n"
	"table{border-collapse:collapse;font-variant-numeric:tabular-nums}\n"
	"th,td{padding:6px 12px;text-align:left;vertical-align:top;border-bottom:1px solid "
	"var(--line)}\n"
	"thead th{background:var(--soft);font-weight:600;border-bottom:2px solid var(--line);"
	"vertical-align:bottom}\n"
	"tbody th{font-weight:600;white-space:nowrap;color:var(--muted)}\n"
	".n{text-align:right;white-space:nowrap}\n"
	"table.kv{min-width:100%}\n"
	"table.kv tbody th{width:1%;padding-right:28px}\n"
	".cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:0 36px}\n"
	".note{color:var(--muted);font-size:13px}\n"
	"table.q td .note{white-space:nowrap}\n"
	"table.q,table.cmp{font-size:14px}\n"
	"table.cmp code{white-space:nowrap}\n"
	"table.q th,table.q td,table.cmp th,table.cmp td{padding:6px 9px}\n"
	"code{font:13px/1.4 ui-monospace,SFMono-Regular,\"DejaVu Sans Mono\",Menlo,Consolas,"
	"monospace;background:var(--soft);border:1px solid var(--line);border-radius:5px;"
	"padding:0 5px;overflow-wrap:break-word}\n"
	".vd{font-weight:700;font-size:13px;letter-spacing:.04em}\n"
	"span.vd{padding:1px 8px;border-radius:999px}\n"
	"span.vd.pass{color:var(--pass);background:var(--pass-bg)}\n"
	"span.vd.fail{color:var(--fail);background:var(--fail-bg)}\n"
	"span.vd.none{color:var(--none);background:var(--none-bg);font-weight:600}\n"
	".notes{margin:6px 0 14px;padding-left:20px;color:var(--fg)}\n"
	".notes li{margin:3px 0}\n"
	".muted{color:var(--muted)}\n"
	"figure{margin:14px 0 22px;padding:12px 14px 8px;border:1px solid var(--line);"
	"border-radius:10px}\n"
	"figcaption{color:var(--muted);font-size:13px;margin-top:4px}\n"
	"figcaption b{color:var(--fg)}\n"
	"svg.chart{display:block;width:100%;height:auto}\n"
	".chart text{font-size:12px;fill:var(--fg);font-variant-numeric:tabular-nums}\n"
	".chart .tick,.chart .axl,.chart .refl{fill:var(--muted)}\n"
	".chart .axl{font-size:12.5px}\n"
	".chart .grid{stroke:#eaeef2;stroke-width:1}\n"
	".chart .axis{stroke:#8c959f;stroke-width:1}\n"
	".chart .sep{stroke:var(--line);stroke-width:1}\n"
	".chart .zone{fill:var(--fail-bg);opacity:.8}\n"
	".chart .ref{stroke:#8c959f;stroke-width:1.2;stroke-dasharray:2 3}\n"
	".chart .thr{stroke:var(--fail);stroke-width:1.6;stroke-dasharray:6 4}\n"
	".chart .thrl{fill:var(--fail);font-weight:600}\n"
	".chart .bar{stroke-width:3;stroke-linecap:round}\n"
	".chart .cap{stroke-width:2}\n"
	".chart .dot{stroke:#fff;stroke-width:1.5}\n"
	".chart .all .lbl{font-weight:700}\n"
	".chart .vd{font-size:11.5px}\n"
	".chart .pass .bar,.chart .pass .cap,.chart .pass .whisk{stroke:var(--pass)}\n"
	".chart .pass .dot{fill:var(--pass)}\n"
	".chart .pass .vd{fill:var(--pass)}\n"
	".chart .fail .bar,.chart .fail .cap,.chart .fail .whisk{stroke:var(--fail)}\n"
	".chart .fail .dot{fill:var(--fail)}\n"
	".chart .fail .vd{fill:var(--fail)}\n"
	".chart .none .bar,.chart .none .cap,.chart .none .whisk{stroke:var(--accent)}\n"
	".chart .none .dot{fill:var(--accent)}\n"
	".chart .whisk{stroke-width:1.8}\n"
	".chart .plab{font-size:12px}\n"
	".chart .lead{stroke:#8c959f;stroke-width:.8}\n"
	"footer{margin-top:40px;padding-top:10px;border-top:1px solid var(--line);"
	"color:var(--muted);font-size:13px}\n"
	"@media print{body{max-width:none;padding:0;font-size:10.5pt}"
	"h2{break-after:avoid}figure,table,.card,.failures{break-inside:avoid}"
	".tw{overflow:visible}*{-webkit-print-color-adjust:exact;print-color-adjust:exact}"
	"table.q{font-size:8.5pt}table.q th,table.q td{padding:4px 6px}"
	".n,table.q td .note{white-space:normal}}\n"
	"@page{margin:14mm}\n";

/* clang-format on */

static void put_base64(struct mcb_buf *b, const unsigned char *p, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		unsigned v =
			p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);

		mcb_buf_addc(b, a[v >> 18 & 63]);
		mcb_buf_addc(b, a[v >> 12 & 63]);
		mcb_buf_addc(b, i + 1 < n ? a[v >> 6 & 63] : '=');
		mcb_buf_addc(b, i + 2 < n ? a[v & 63] : '=');
	}
}

/* <!DOCTYPE> to <body>: the CSP allows exactly this page's stylesheet. */
static void html_head(struct mcb_buf *b, const char *title)
{
	struct mcb_digest d;

	mcb_sha256(css, sizeof(css) - 1, &d);
	mcb_buf_adds(b,
		     "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
		     "style-src 'sha256-");
	put_base64(b, d.b, sizeof(d.b));
	mcb_buf_adds(b, "'; base-uri 'none'; form-action 'none'\">\n"
			"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
			"<meta name=\"color-scheme\" content=\"light\">\n"
			"<meta name=\"generator\" content=\"mcbuild\">\n<title>");
	put_html(b, title);
	mcb_buf_adds(b, "</title>\n<style>");
	mcb_buf_adds(b, css);
	mcb_buf_adds(b, "</style>\n</head>\n<body>\n");
}

static void html_tab(struct mcb_buf *b, struct tab *t, const char *cls)
{
	tab_html(t, b, cls);
	tab_free(t);
}

static void card(struct mcb_buf *b, const char *cls, const char *k, const char *v, const char *s)
{
	mcb_buf_printf(b, "<div class=\"card%s%s\"><p class=\"k\">", *cls ? " " : "", cls);
	put_html(b, k);
	mcb_buf_adds(b, "</p><p class=\"v\">");
	put_html(b, v);
	mcb_buf_adds(b, "</p><p class=\"s\">");
	put_html(b, s);
	mcb_buf_adds(b, "</p></div>\n");
}

static void html_cards(struct mcb_buf *b, const json_t *r)
{
	const json_t *ex = get(r, "export"), *perf = get(r, "performance");
	const json_t *es = get(perf, "estimate"), *me = get(perf, "measured");
	const json_t *fit = get(perf, "memory_fit");
	struct mcb_buf v = MCB_BUF_INIT, s = MCB_BUF_INIT;
	int fits = json_is_true(get(fit, "fits"));

	mcb_buf_adds(b, "<div class=\"cards\">\n");
	put_bytes(&v, num(ex, "bytes"));
	put_compression(&s, r);
	card(b, "", "Export size", v.data, s.data);
	mcb_buf_reset(&v), mcb_buf_reset(&s);
	put_sig(&v, num(ex, "bits_per_weight"), 4);
	mcb_buf_printf(&s, "%s, ", str(ex, "format"));
	put_count(&s, num(get(r, "model"), "parameters"));
	mcb_buf_adds(&s, " parameters");
	card(b, "", "Bits per weight", v.data, s.data);
	mcb_buf_reset(&v), mcb_buf_reset(&s);
	put_rate(&v, num(es, "tokens_per_s"));
	mcb_buf_printf(&s, "tokens/s on %s, %s bound", str(es, "hardware"),
		       strcmp(str(es, "bound"), "memory") ? "compute" : "memory");
	card(b, "", "Estimated decode", v.data, s.data);
	mcb_buf_reset(&v), mcb_buf_reset(&s);
	if (json_is_object(me)) {
		put_rate(&v, num(me, "decode_tokens_per_s"));
		mcb_buf_adds(&s, "tokens/s on this host, p50 ");
		put_sig(&s, num(me, "token_ms_p50"), 3);
		mcb_buf_adds(&s, " ms/token");
	} else {
		mcb_buf_adds(&v, "\xe2\x80\x93");
		mcb_buf_adds(&s, "not measured");
	}
	card(b, "", "Measured decode", v.data, s.data);
	mcb_buf_reset(&v), mcb_buf_reset(&s);
	mcb_buf_adds(&v, fits ? "Fits" : "Does not fit");
	put_bytes(&s, num(fit, "total_bytes"));
	mcb_buf_adds(&s, " of ");
	put_bytes(&s, num(fit, "device_bytes"));
	mcb_buf_adds(&s, " (");
	put_pct(&s, num(fit, "utilization"));
	mcb_buf_addc(&s, ')');
	card(b, fits ? "" : "fail", "Memory", v.data, s.data);
	mcb_buf_adds(b, "</div>\n");
	mcb_buf_release(&v);
	mcb_buf_release(&s);
}

static void html_list(struct mcb_buf *b, const json_t *a, const char *cls)
{
	const json_t *s;
	size_t i;

	mcb_buf_printf(b, "<ul class=\"%s\">\n", cls);
	json_array_foreach (a, i, s) {
		mcb_buf_adds(b, "<li>");
		put_html(b, json_string_value(s));
		mcb_buf_adds(b, "</li>\n");
	}
	mcb_buf_adds(b, "</ul>\n");
}

static void html_quality(struct mcb_buf *b, const json_t *q)
{
	struct mcb_buf text = MCB_BUF_INIT;
	const json_t *m;
	struct tab t;
	size_t i;

	mcb_buf_adds(b, "<section id=\"quality\">\n<h2>Quality</h2>\n");
	if (!json_is_object(q)) {
		mcb_buf_adds(
			b, "<p>Not evaluated: the target has no quality gates.</p>\n</section>\n");
		return;
	}
	mcb_buf_adds(b, "<p>");
	quality_intro(&text, q);
	put_html(b, text.data);
	mcb_buf_adds(b, "</p>\n");
	if (!json_array_size(get(q, "metrics"))) {
		mcb_buf_adds(b, "<p>No metrics.</p>\n</section>\n");
		mcb_buf_release(&text);
		return;
	}
	quality_tab(q, &t);
	html_tab(b, &t, "q");
	mcb_buf_adds(b, "<ul class=\"notes\">\n");
	json_array_foreach (get(q, "metrics"), i, m) {
		mcb_buf_adds(b, "<li><b>");
		put_html(b, label(str(m, "name")));
		mcb_buf_adds(b, "</b> on <code>");
		put_html(b, str(m, "dataset"));
		mcb_buf_adds(b, "</code>: ");
		put_html(b, str(m, "convention"));
		if (json_is_object(get(m, "mcnemar"))) {
			mcb_buf_reset(&text);
			mcnemar_text(&text, get(m, "mcnemar"));
			mcb_buf_adds(b, "<br>");
			put_html(b, text.data);
		}
		mcb_buf_adds(b, "<br><span class=\"note\">data SHA-256 <code>");
		put_html(b, str(m, "dataset_sha256"));
		mcb_buf_adds(b, "</code></span>");
		mcb_buf_adds(b, "</li>\n");
	}
	mcb_buf_adds(b, "</ul>\n");
	json_array_foreach (get(q, "metrics"), i, m) {
		int gated = json_is_object(get(m, "gate"));
		size_t ng = json_array_size(get(m, "groups"));

		if (!gated && !ng)
			continue;
		mcb_buf_adds(b, "<h3>");
		put_html(b, label(str(m, "name")));
		mcb_buf_adds(b, " on <code>");
		put_html(b, str(m, "dataset"));
		mcb_buf_adds(b, "</code></h3>\n");
		if (gated) {
			mcb_buf_adds(b, "<figure>\n");
			svg_metric(b, m, i);
			mcb_buf_adds(b, "<figcaption><b>");
			put_html(b, label(str(m, "statistic")));
			mcb_buf_adds(b, "</b> (dot) and its ");
			put_pct(b, num(q, "confidence"));
			mcb_buf_adds(b, " CI (bar)");
			if (ng)
				mcb_buf_adds(b, " for all items and each subgroup");
			mcb_buf_adds(
				b, "; dashed red: the gate&#39;s threshold, the shaded side fails; "
				   "dotted grey: no change from the "
				   "baseline.</figcaption>\n</figure>\n");
		}
		if (ng) {
			groups_tab(q, m, &t);
			html_tab(b, &t, "g");
		}
	}
	mcb_buf_adds(b, "</section>\n");
	mcb_buf_release(&text);
}

int mcb_report_html(const json_t *r, struct mcb_buf *b, struct mcb_errctx *e)
{
	const json_t *perf, *es;
	struct mcb_buf title = MCB_BUF_INIT;
	enum verdict v;
	struct tab t;
	int rc;

	if ((rc = mcb_report_check(r, e)))
		return rc;
	perf = get(r, "performance");
	es = get(perf, "estimate");
	v = report_verdict(r);
	mcb_buf_printf(&title, "%s: %s \xe2\x80\x93 mcbuild report", str(r, "target"),
		       verdict_word[v]);
	html_head(b, title.data);
	mcb_buf_release(&title);

	mcb_buf_adds(b, "<header>\n<p class=\"kicker\">mcbuild report</p>\n<h1><span class=\"t\">");
	put_html(b, str(r, "target"));
	mcb_buf_printf(b, "</span> <span class=\"badge %s\">%s</span></h1>\n", vclass[v],
		       verdict_word[v]);
	mcb_buf_adds(b, "<p class=\"sub\">Model <code>");
	put_html(b, str(get(r, "model"), "name"));
	mcb_buf_adds(b, "</code> (");
	put_html(b, str(get(r, "model"), "architecture"));
	mcb_buf_adds(b, ") for <code>");
	put_html(b, str(get(r, "hardware"), "name"));
	mcb_buf_adds(b, "</code>: ");
	put_html(b, str(get(r, "hardware"), "description"));
	mcb_buf_adds(b, "</p>\n</header>\n<main>\n");
	html_cards(b, r);
	if (json_array_size(get(r, "failures"))) {
		mcb_buf_adds(b,
			     "<section class=\"failures\" id=\"failures\">\n<h2>Failures</h2>\n");
		html_list(b, get(r, "failures"), "");
		mcb_buf_adds(b, "</section>\n");
	}
	html_quality(b, get(r, "quality"));

	mcb_buf_adds(b, "<section id=\"performance\">\n<h2>Performance</h2>\n<div class=\"cols\">\n"
			"<div>\n<h3>Measured on this host</h3>\n");
	if (json_is_object(get(perf, "measured"))) {
		measured_tab(get(perf, "measured"), &t);
		html_tab(b, &t, "kv");
	} else {
		mcb_buf_adds(b, "<p class=\"muted\">Not measured.</p>\n");
	}
	mcb_buf_adds(b, "</div>\n<div>\n<h3>Estimate for <code>");
	put_html(b, str(es, "hardware"));
	mcb_buf_adds(b, "</code> (roofline)</h3>\n");
	estimate_tab(es, &t);
	html_tab(b, &t, "kv");
	mcb_buf_adds(b, "</div>\n<div>\n<h3>Memory fit</h3>\n");
	fit_tab(get(perf, "memory_fit"), &t);
	html_tab(b, &t, "kv");
	mcb_buf_adds(b, "</div>\n");
	if (json_array_size(get(es, "assumptions"))) {
		mcb_buf_adds(b, "<div>\n<h3>Assumptions of the estimate</h3>\n");
		html_list(b, get(es, "assumptions"), "notes");
		mcb_buf_adds(b, "</div>\n");
	}
	mcb_buf_adds(b, "</div>\n</section>\n<section id=\"export\">\n<h2>Export</h2>\n"
			"<div class=\"cols\">\n<div>\n");
	export_tab(get(r, "export"), get(r, "model"), &t);
	html_tab(b, &t, "kv");
	mcb_buf_adds(b, "</div>\n<div>\n");
	if (json_array_size(get(get(r, "export"), "files"))) {
		files_tab(get(r, "export"), &t);
		html_tab(b, &t, "f");
	} else {
		mcb_buf_adds(b, "<p class=\"muted\">No files listed.</p>\n");
	}
	mcb_buf_adds(b,
		     "</div>\n</div>\n</section>\n<section id=\"target\">\n"
		     "<h2>Model and hardware</h2>\n<div class=\"cols\">\n<div>\n<h3>Model</h3>\n");
	model_tab(r, &t);
	html_tab(b, &t, "kv");
	mcb_buf_adds(b, "</div>\n<div>\n<h3>Hardware</h3>\n");
	hardware_tab(get(r, "hardware"), &t);
	html_tab(b, &t, "kv");
	mcb_buf_adds(b, "</div>\n</div>\n");
	mcb_buf_adds(b, "</section>\n</main>\n<footer>Rendered by mcbuild from report.json "
			"(version 1), written by mcbuild ");
	put_html(b, str(r, "mcbuild_version"));
	mcb_buf_adds(b, ".</footer>\n</body>\n</html>\n");
	return 0;
}

/* ---- several reports ------------------------------------------------------ */

/* A gated metric column of the comparison table: (name, dataset). */
struct col {
	const char *name, *dataset;
	int qualify; /* the name occurs with several datasets: say which */
};

/* The gated metric columns of the valid reports, in order of appearance. */
static size_t metric_cols(const json_t *const *r, const int *ok, size_t n, struct col **out)
{
	struct col *c = NULL;
	size_t nc = 0, i, j, k;
	const json_t *m;

	for (i = 0; i < n; i++) {
		if (!ok[i])
			continue;
		json_array_foreach (get(get(r[i], "quality"), "metrics"), j, m) {
			/* every metric measured, gated or not: an ungated metric
			 * is a comparison (RTN beside GPTQ) */
			for (k = 0; k < nc; k++)
				if (!strcmp(c[k].name, str(m, "name")) &&
				    !strcmp(c[k].dataset, str(m, "dataset")))
					break;
			if (k < nc)
				continue;
			c = mcb_xrealloc(c, (nc + 1) * sizeof(*c));
			c[nc++] = (struct col){str(m, "name"), str(m, "dataset"), 0};
		}
	}
	for (i = 0; i < nc; i++)
		for (k = 0; k < nc; k++)
			if (k != i && !strcmp(c[i].name, c[k].name))
				c[i].qualify = 1;
	*out = c;
	return nc;
}

static const json_t *find_metric(const json_t *r, const char *name, const char *dataset,
				 const char *statistic)
{
	const json_t *m;
	size_t i;

	json_array_foreach (get(get(r, "quality"), "metrics"), i, m)
		if (!strcmp(str(m, "name"), name) && !strcmp(str(m, "dataset"), dataset) &&
		    (!statistic || !strcmp(str(m, "statistic"), statistic)))
			return m;
	return NULL;
}

/* A cell's text: as is for HTML (escaped when emitted), made safe for a terminal. */
static void put_plain(struct mcb_buf *c, const char *s, int html)
{
	if (html)
		mcb_buf_adds(c, s);
	else
		put_term(c, s);
}

/* The comparison table: one row per report (ok[i]: it passed the check). */
static void compare_tab(const json_t *const *r, const int *ok, size_t n, struct tab *t, int html)
{
	struct col *cols;
	size_t nc = metric_cols(r, ok, n, &cols), i, k;
	const char *none = html ? dash : "-";

	/* HTML: the ratio goes under the size, to keep the table narrow */
	tab_init(t, (html ? 6 : 7) + nc, 0);
	tab_adds(t, 0, "target");
	tab_adds(t, 0, "verdict");
	tab_adds(t, 0, "format");
	tab_adds(t, C_NUM, "size");
	if (!html)
		tab_adds(t, C_NUM, "ratio");
	for (k = 0; k < nc; k++) {
		struct mcb_buf *c = tab_add(t, C_NUM);

		put_plain(c, label(cols[k].name), html);
		if (cols[k].qualify) {
			mcb_buf_adds(c, " (");
			put_plain(c, cols[k].dataset, html);
			mcb_buf_addc(c, ')');
		}
	}
	tab_adds(t, C_NUM, "est tok/s");
	tab_adds(t, 0, "fits");
	for (i = 0; i < n; i++) {
		const json_t *ex = get(r[i], "export"), *perf = get(r[i], "performance");
		enum verdict v = report_verdict(r[i]);
		int fits = json_is_true(get(get(perf, "memory_fit"), "fits"));
		struct mcb_buf *c;

		c = tab_add(t, html ? C_CODE : 0);
		put_plain(c, json_is_string(get(r[i], "target")) ? str(r[i], "target") : "?", html);
		if (!ok[i]) {
			tab_adds(t, C_FAIL, "invalid");
			for (k = 2; k < t->ncol; k++)
				tab_adds(t, 0, none);
			continue;
		}
		tab_adds(t, verdict_flag(v), html ? verdict_word[v] : str(r[i], "verdict"));
		put_plain(tab_add(t, 0), str(ex, "format"), html);
		put_bytes(tab_add(t, C_NUM), num(ex, "bytes"));
		if (html) {
			put_ratio(tab_note(t), num(ex, "compression_ratio"));
		} else {
			put_3(c = tab_add(t, C_NUM), num(ex, "compression_ratio"));
			mcb_buf_addc(c, 'x');
		}
		for (k = 0; k < nc; k++) {
			const json_t *m = find_metric(r[i], cols[k].name, cols[k].dataset, NULL);
			enum verdict mv = m ? gate_verdict(get(m, "gate")) : V_NONE;

			c = tab_add(t, C_NUM | (mv == V_FAIL ? C_FAIL : 0));
			if (!m || !json_is_number(get(m, "point"))) {
				mcb_buf_adds(c, none);
				continue;
			}
			if (html) {
				/* the CI on a second line: the table stays narrow */
				put_ci_parts(c, tab_note(t), num(m, "point"), ci_at(m, 0),
					     ci_at(m, 1));
			} else {
				put_metric_ci(c, m);
				if (mv == V_FAIL)
					mcb_buf_adds(c, " FAIL");
			}
		}
		put_rate(tab_add(t, C_NUM), num(get(perf, "estimate"), "tokens_per_s"));
		tab_adds(t, fits ? 0 : C_FAIL, fits ? "yes" : "NO");
	}
	free(cols);
}

void mcb_report_table(const json_t *const *r, size_t n, FILE *f)
{
	struct mcb_buf out = MCB_BUF_INIT;
	int *ok = mcb_xcalloc(n ? n : 1, sizeof(*ok));
	size_t *w, i, c, pad;
	struct tab t;

	for (i = 0; i < n; i++) {
		struct mcb_errctx e;

		ok[i] = mcb_report_check(r[i], &e) == 0;
	}
	compare_tab(r, ok, n, &t, 0);
	w = mcb_xcalloc(t.ncol, sizeof(*w));
	for (i = 0; i < t.n; i++)
		if (width(mcb_buf_str(&t.text[i])) > w[i % t.ncol])
			w[i % t.ncol] = width(mcb_buf_str(&t.text[i]));
	for (i = 0; i < t.n; i++) {
		const char *s = mcb_buf_str(&t.text[i]);

		c = i % t.ncol;
		pad = w[c] - width(s);
		if (c)
			mcb_buf_adds(&out, "  ");
		/* numbers right-aligned; the last column is not padded */
		if (t.flags[c] & C_NUM)
			for (; pad; pad--)
				mcb_buf_addc(&out, ' ');
		mcb_buf_adds(&out, s);
		if (c + 1 < t.ncol)
			for (; pad; pad--)
				mcb_buf_addc(&out, ' ');
		if (c + 1 == t.ncol) {
			mcb_buf_addc(&out, '\n');
			if (i + 1 == t.ncol) {
				for (c = 0; c < t.ncol; c++) {
					if (c)
						mcb_buf_adds(&out, "  ");
					for (pad = 0; pad < w[c]; pad++)
						mcb_buf_addc(&out, '-');
				}
				mcb_buf_addc(&out, '\n');
			}
		}
	}
	fwrite(out.data, 1, out.len, f);
	mcb_buf_release(&out);
	tab_free(&t);
	free(w);
	free(ok);
}

/* A quality series of the combined page: (name, dataset, statistic). */
struct series {
	const char *name, *dataset, *statistic;
};

#define SC_W 1000
#define SC_H 480
#define SC_L 78 /* left margin: y ticks */
#define SC_R 24
#define SC_T 30
#define SC_B 58 /* bottom: x ticks and title */

/* One labelled point of a scatter. */
struct point {
	const char *label; /* target, shortened */
	const json_t *r, *m;
	double px, py;	    /* pixels */
	double lx, ly;	    /* label position */
	const char *anchor; /* label anchor */
	size_t order;	    /* position among the points: breaks ties when sorting */
};

static int cmp_py(const void *a, const void *b)
{
	const struct point *p = a, *q = b;

	if (p->py != q->py)
		return p->py < q->py ? -1 : 1;
	return p->order < q->order ? -1 : p->order > q->order;
}

/* Bytes axis ticks: powers of 2 on a log scale, in binary units. */
static int byte_ticks(const struct scale *s, double *out)
{
	int n = 0;

	if (s->log) {
		/* domain in log10; ticks at 2^k, every "every"-th power */
		double k0 = ceil(s->lo / log10(2)), k1 = floor(s->hi / log10(2)), every = 1, k;

		while ((k1 - k0) / every > 8)
			every *= 2;
		k0 = ceil(k0 / every) * every;
		for (k = k0; k <= k1 && n < 16; k += every)
			out[n++] = pow(2, k);
		return n;
	}
	/* linear: a 1-2-5 step in the binary unit of the largest value */
	{
		double unit = 1, step;
		struct scale u = *s;

		while (fabs(s->hi) >= 1024 * unit && unit < 1e18)
			unit *= 1024;
		u.lo = s->lo / unit, u.hi = s->hi / unit;
		step = nice_step(&u, 6);
		n = ticks(&u, step, out);
		for (int i = 0; i < n; i++)
			out[i] *= unit;
	}
	return n;
}

/* Drop the longest common directory prefix ("targets/") from the labels. */
static size_t common_dir(struct point *pt, size_t n)
{
	size_t len, i, k;

	if (n < 2)
		return 0;
	len = strlen(pt[0].label);
	for (i = 1; i < n; i++) {
		for (k = 0; k < len && pt[i].label[k] == pt[0].label[k]; k++)
			;
		len = k;
	}
	while (len && pt[0].label[len - 1] != '/')
		len--;
	for (i = 0; i < n; i++)
		if (!pt[i].label[len])
			return 0; /* a label would become empty */
	return len;
}

/* One target in a scatter: CI whiskers, dot, label (skipping cut bytes). */
static void svg_point(struct mcb_buf *b, const struct point *p, const struct scale *sy,
		      const struct series *se, size_t cut)
{
	enum verdict v = gate_verdict(get(p->m, "gate"));
	double pl = sc_px(sy, ci_at(p->m, 0)), ph = sc_px(sy, ci_at(p->m, 1));
	struct mcb_buf d = MCB_BUF_INIT;

	mcb_buf_printf(b, "<g class=\"pt %s\"><title>", vclass[v]);
	mcb_buf_printf(&d, "%s: ", p->label);
	put_bytes(&d, num(get(p->r, "export"), "bytes"));
	mcb_buf_printf(&d, ", %s ", label(se->statistic));
	put_metric_ci(&d, p->m);
	mcb_buf_adds(&d, v == V_PASS ? ", passed" : v == V_FAIL ? ", failed" : ", not gated");
	put_html(b, d.data);
	mcb_buf_release(&d);
	mcb_buf_adds(b, "</title>\n");
	svg_line(b, p->px, pl, p->px, ph, "whisk");
	svg_line(b, p->px - 5, pl, p->px + 5, pl, "whisk");
	svg_line(b, p->px - 5, ph, p->px + 5, ph, "whisk");
	mcb_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\" class=\"dot\"/>\n", p->px,
		       p->py);
	if (fabs(p->ly - (p->py + 4)) > 4)
		/* nudged away from its point: a leader line */
		svg_line(b, p->px + (*p->anchor == 'e' ? -6 : 6), p->py, p->lx, p->ly - 4, "lead");
	mcb_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" class=\"plab\">", p->lx,
		       p->ly, p->anchor);
	put_html_cut(b, p->label + cut, 40);
	mcb_buf_adds(b, "</text>\n</g>\n");
}

static void svg_scatter(struct mcb_buf *b, const json_t *const *r, const int *ok, size_t n,
			const struct series *se, size_t idx)
{
	static const enum verdict order[] = {V_NONE, V_PASS, V_FAIL};
	struct point *pt = mcb_xcalloc(n ? n : 1, sizeof(*pt));
	double xlo = 0, xhi = 0, ylo = 0, yhi = 0, t = 0, t0 = 0, ref = 0, tk[16], step;
	int has_t = 1, up0 = 1, has_ref = 0, nt, k;
	struct scale sx = {0}, sy = {0};
	size_t np = 0, ngated = 0, i, j, cut;
	char id[32];

	for (i = 0; i < n; i++) {
		const json_t *m;

		if (!ok[i] || !(m = find_metric(r[i], se->name, se->dataset, se->statistic)))
			continue;
		pt[np] = (struct point){str(r[i], "target"), r[i], m, 0, 0, 0, 0, "start", np};
		if (!np)
			has_ref = reference(m, &ref);
		/* one threshold line only when every gated point has the same one */
		if (json_is_object(get(m, "gate"))) {
			if (!threshold(m, &t) ||
			    (ngated && (t != t0 || upper_bound(get(m, "gate")) != up0)))
				has_t = 0;
			if (!ngated++)
				t0 = t, up0 = upper_bound(get(m, "gate"));
		}
		np++;
	}
	has_t = has_t && ngated;
	if (!np) {
		free(pt);
		return;
	}
	for (i = 0; i < np; i++) {
		double x = num(get(pt[i].r, "export"), "bytes");
		double v[3] = {num(pt[i].m, "point"), ci_at(pt[i].m, 0), ci_at(pt[i].m, 1)};

		if (!i)
			xlo = xhi = x, ylo = yhi = v[0];
		xlo = fmin(xlo, x), xhi = fmax(xhi, x);
		for (k = 0; k < 3; k++)
			ylo = fmin(ylo, v[k]), yhi = fmax(yhi, v[k]);
	}
	if (has_t)
		ylo = fmin(ylo, t0), yhi = fmax(yhi, t0);
	if (has_ref)
		ylo = fmin(ylo, ref), yhi = fmax(yhi, ref);
	/* sizes spanning more than a factor 8: log scale */
	if (xlo > 0 && xhi / xlo > 8) {
		sx.log = 1;
		sc_domain(&sx, log10(xlo), log10(xhi), 0.08);
	} else {
		/* a tight domain: the differences between targets are what matters */
		sc_domain(&sx, xlo, xhi, 0.12);
		if (xlo >= 0 && sx.lo < 0)
			sx.lo = 0;
	}
	sx.p0 = SC_L, sx.p1 = SC_W - SC_R;
	sc_domain(&sy, ylo, yhi, 0.1);
	sy.p0 = SC_H - SC_B, sy.p1 = SC_T;

	snprintf(id, sizeof(id), "s%zu", idx);
	svg_open(b, SC_W, SC_H, id);
	mcb_buf_printf(b, "<title id=\"%s-t\">", id);
	put_html(b, label(se->name));
	mcb_buf_adds(b, " on ");
	put_html(b, se->dataset);
	mcb_buf_adds(b, " against export size</title>\n");
	mcb_buf_printf(b, "<desc id=\"%s-d\">", id);
	for (i = 0; i < np; i++) {
		struct mcb_buf d = MCB_BUF_INIT;
		enum verdict v = gate_verdict(get(pt[i].m, "gate"));

		mcb_buf_printf(&d, "%s%s: ", i ? "; " : "", pt[i].label);
		put_bytes(&d, num(get(pt[i].r, "export"), "bytes"));
		mcb_buf_printf(&d, ", %s ", label(se->statistic));
		put_metric_ci(&d, pt[i].m);
		mcb_buf_adds(&d, v == V_PASS ? ", passed" : v == V_FAIL ? ", failed" : "");
		put_html(b, d.data);
		mcb_buf_release(&d);
	}
	mcb_buf_adds(b, ".</desc>\n");

	/* grid, ticks, axes */
	step = nice_step(&sy, 6);
	nt = ticks(&sy, step, tk);
	for (k = 0; k < nt; k++) {
		struct mcb_buf l = MCB_BUF_INIT;
		double py = sc_px(&sy, tk[k]);

		svg_line(b, SC_L, py, SC_W - SC_R, py, "grid");
		put_tick(&l, tk[k], step);
		svg_text(b, SC_L - 8, py + 4, "end", "tick", l.data);
		mcb_buf_release(&l);
	}
	nt = byte_ticks(&sx, tk);
	for (k = 0; k < nt; k++) {
		struct mcb_buf l = MCB_BUF_INIT;
		double px = sc_px(&sx, tk[k]);

		svg_line(b, px, SC_T, px, SC_H - SC_B, "grid");
		put_bytes_as(&l, tk[k], 1);
		svg_text(b, px, SC_H - SC_B + 18, "middle", "tick", l.data);
		mcb_buf_release(&l);
	}
	svg_line(b, SC_L, SC_H - SC_B, SC_W - SC_R, SC_H - SC_B, "axis");
	svg_line(b, SC_L, SC_T, SC_L, SC_H - SC_B, "axis");
	svg_text(b, (SC_L + SC_W - SC_R) / 2.0, SC_H - 14, "middle", "axl",
		 sx.log ? "export size (log scale)" : "export size");
	mcb_buf_printf(b,
		       "<text x=\"0\" y=\"0\" transform=\"translate(16 %.1f) rotate(-90)\" "
		       "text-anchor=\"middle\" class=\"axl\">",
		       (SC_T + SC_H - SC_B) / 2.0);
	put_html(b, label(se->statistic));
	mcb_buf_adds(b, "</text>\n");
	if (has_ref) {
		double ry = sc_px(&sy, ref);

		svg_line(b, SC_L, ry, SC_W - SC_R, ry, "ref");
		svg_text(b, SC_L + 6, ry - 5, "start", "refl", "no change");
	}
	if (has_t) {
		struct mcb_buf l = MCB_BUF_INIT;
		double ty = sc_px(&sy, t0);

		/* the failing side: above an upper threshold, below a lower one */
		if (up0)
			mcb_buf_printf(b,
				       "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%.1f\" "
				       "class=\"zone\"/>\n",
				       SC_L, SC_T, SC_W - SC_R - SC_L, fmax(0, ty - SC_T));
		else
			mcb_buf_printf(b,
				       "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" "
				       "class=\"zone\"/>\n",
				       SC_L, ty, SC_W - SC_R - SC_L, fmax(0, SC_H - SC_B - ty));
		svg_line(b, SC_L, ty, SC_W - SC_R, ty, "thr");
		put_threshold_label(&l, get(pt[0].m, "gate"), t0);
		svg_text(b, SC_W - SC_R - 4, up0 ? ty - 6 : ty + 15, "end", "thrl", l.data);
		mcb_buf_release(&l);
	}

	/* points, labelled; labels nudged down until they overlap no other */
	cut = common_dir(pt, np);
	for (i = 0; i < np; i++) {
		pt[i].px = sc_px(&sx, num(get(pt[i].r, "export"), "bytes"));
		pt[i].py = sc_px(&sy, num(pt[i].m, "point"));
		pt[i].anchor = pt[i].px > SC_W - SC_R - 160 ? "end" : "start";
		pt[i].lx = pt[i].px + (*pt[i].anchor == 'e' ? -10 : 10);
		pt[i].ly = pt[i].py + 4;
	}
	qsort(pt, np, sizeof(*pt), cmp_py);
	for (i = 0; i < np; i++) {
		double w = 7.0 * (double)width(pt[i].label + cut) + 4;
		double a0 = *pt[i].anchor == 'e' ? pt[i].lx - w : pt[i].lx;
		int moved = 1, tries;

		for (tries = 0; moved && tries < 64; tries++) {
			moved = 0;
			for (j = 0; j < i; j++) {
				double wj = 7.0 * (double)width(pt[j].label + cut) + 4;
				double b0 = *pt[j].anchor == 'e' ? pt[j].lx - wj : pt[j].lx;

				if (a0 < b0 + wj && b0 < a0 + w && fabs(pt[i].ly - pt[j].ly) < 14) {
					pt[i].ly = pt[j].ly + 14;
					moved = 1;
				}
			}
		}
	}
	/* ungated points first, failed ones last: on top where they overlap */
	for (k = 0; k < 3; k++)
		for (i = 0; i < np; i++)
			if (gate_verdict(get(pt[i].m, "gate")) == order[k])
				svg_point(b, &pt[i], &sy, se, cut);
	mcb_buf_adds(b, "</svg>\n");
	free(pt);
}

int mcb_report_combined_html(const json_t *const *r, size_t n, struct mcb_buf *b,
			     struct mcb_errctx *e)
{
	int *ok = mcb_xcalloc(n ? n : 1, sizeof(*ok));
	struct series *se = NULL;
	size_t ns = 0, nok = 0, i, j, k;
	const json_t *m, *s;
	struct tab t;
	char title[64];

	for (i = 0; i < n; i++) {
		int rc = mcb_report_check(r[i], e);

		if (rc) {
			free(ok);
			return mcb_errprefix(e, "report %zu", i + 1);
		}
		ok[i] = 1;
		nok++;
	}
	/* the quality series, in order of appearance */
	for (i = 0; i < n; i++) {
		json_array_foreach (get(get(r[i], "quality"), "metrics"), j, m) {
			for (k = 0; k < ns; k++)
				if (!strcmp(se[k].name, str(m, "name")) &&
				    !strcmp(se[k].dataset, str(m, "dataset")) &&
				    !strcmp(se[k].statistic, str(m, "statistic")))
					break;
			if (k < ns)
				continue;
			se = mcb_xrealloc(se, (ns + 1) * sizeof(*se));
			se[ns++] = (struct series){str(m, "name"), str(m, "dataset"),
						   str(m, "statistic")};
		}
	}
	snprintf(title, sizeof(title), "%zu target%s compared \xe2\x80\x93 mcbuild report", nok,
		 nok == 1 ? "" : "s");
	html_head(b, title);
	mcb_buf_printf(b,
		       "<header>\n<p class=\"kicker\">mcbuild report</p>\n<h1><span class=\"t\">"
		       "%zu target%s compared</span></h1>\n",
		       nok, nok == 1 ? "" : "s");
	{
		size_t np = 0, nf = 0, nu = 0;

		for (i = 0; i < n; i++) {
			enum verdict v = report_verdict(r[i]);

			np += v == V_PASS, nf += v == V_FAIL, nu += v == V_NONE;
		}
		mcb_buf_printf(b, "<p class=\"sub\">%zu passed, %zu failed, %zu ungated.</p>\n", np,
			       nf, nu);
	}
	mcb_buf_adds(b, "</header>\n<main>\n<section id=\"targets\">\n<h2>Targets</h2>\n");
	compare_tab(r, ok, n, &t, 1);
	html_tab(b, &t, "cmp");
	mcb_buf_adds(b, "<p class=\"muted\">Gated metrics: point [");
	if (n)
		put_pct(b, num(get(r[0], "quality"), "confidence") > 0
				   ? num(get(r[0], "quality"), "confidence")
				   : 0.95);
	mcb_buf_adds(
		b,
		" CI]. Size: the exported files, and how much smaller than the baseline "
		"they are. est tok/s: the roofline estimate for the target&#39;s hardware.</p>\n");
	for (i = 0, k = 0; i < n; i++)
		k += json_array_size(get(r[i], "failures"));
	if (k) {
		mcb_buf_adds(
			b,
			"<section class=\"failures\" id=\"failures\">\n<h2>Failures</h2>\n<ul>\n");
		for (i = 0; i < n; i++) {
			json_array_foreach (get(r[i], "failures"), j, s) {
				mcb_buf_adds(b, "<li><code>");
				put_html(b, str(r[i], "target"));
				mcb_buf_adds(b, "</code>: ");
				put_html(b, json_string_value(s));
				mcb_buf_adds(b, "</li>\n");
			}
		}
		mcb_buf_adds(b, "</ul>\n</section>\n");
	}
	mcb_buf_adds(b, "</section>\n");
	if (ns) {
		mcb_buf_adds(b, "<section id=\"quality\">\n<h2>Quality against size</h2>\n");
		for (k = 0; k < ns; k++) {
			mcb_buf_adds(b, "<h3>");
			put_html(b, label(se[k].name));
			mcb_buf_adds(b, " on <code>");
			put_html(b, se[k].dataset);
			mcb_buf_adds(b, "</code></h3>\n<figure>\n");
			svg_scatter(b, r, ok, n, &se[k], k);
			mcb_buf_adds(b, "<figcaption>Export size against <b>");
			put_html(b, label(se[k].statistic));
			mcb_buf_adds(
				b,
				"</b> (dot) with its CI (whiskers), one point per target; green: "
				"gate passed, red: failed, blue: not gated");
			mcb_buf_adds(b,
				     ". A dashed red line is the threshold all targets share; the "
				     "shaded side fails.</figcaption>\n</figure>\n");
		}
		mcb_buf_adds(b, "</section>\n");
	}
	mcb_buf_adds(b,
		     "</main>\n<footer>Rendered by mcbuild from report.json (version 1).</footer>\n"
		     "</body>\n</html>\n");
	free(se);
	free(ok);
	return 0;
}
