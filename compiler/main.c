/*
 * main: the mcbuild command line.  Parses options, finds and loads the
 * workspace, resolves the requested targets, plans and builds them.  The
 * only place that exits.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/build.h"
#include "mcb/diag.h"
#include "mcb/err.h"
#include "mcb/explain.h"
#include "mcb/gc.h"
#include "mcb/hash.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/plan.h"
#include "mcb/recipe.h"
#include "mcb/report.h"
#include "mcb/stamp.h"
#include "mcb/statcache.h"
#include "mcb/step.h"
#include "mcb/store.h"
#include "mcb/strmap.h"
#include "mcb/utf8.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
	"usage: mcbuild [options] [target...]\n"
	"       mcbuild [options] clean [--all] [target...]\n"
	"       mcbuild [options] gc [--max-size SIZE] [target...]\n"
	"       mcbuild [options] graph [target...]\n"
	"       mcbuild [options] query targets|steps|keys [target...]\n"
	"       mcbuild [options] report [--html FILE] [target...]\n"
	"\n"
	"Builds compressed-model targets declared in mcbuild.yaml (searched for in the\n"
	"current directory and its parents).  A target is a path such as\n"
	"targets/cpu-avx2-int8; a directory (targets/) builds every declared target\n"
	"under it; no target builds the recipe's default: list, else every declared one.\n"
	"\n"
	"options:\n"
	"  -C DIR     change to DIR before doing anything\n"
	"  -j N       run N steps in parallel (default: the number of CPUs)\n"
	"  -k         keep going after a failure with what does not depend on it\n"
	"  -n         dry run: print the steps that would run, run nothing\n"
	"  -d MODE    debugging: explain (why each step runs), stats (counters),\n"
	"             time (how long each phase took), stamp (whether the no-op\n"
	"             stamp answered, and why not); explain, stats and time always\n"
	"             run the full check\n"
	"  --json     builds: progress to stderr, and on stdout one JSON document\n"
	"             with the outcome (targets, verdicts, steps, diagnostics);\n"
	"             query: the answer as a JSON array\n"
	"  --version  print the version and exit\n"
	"  -h, --help print this help and exit\n"
	"\n"
	"commands:\n"
	"  clean      remove the targets' directories (--all: also .mcbuild/, the\n"
	"             workspace's state and its default cache)\n"
	"  gc         keep the cache under a size (--max-size SIZE, else cache:\n"
	"             max_size: in the recipe; 500M, 20G, 1.5TiB): remove the oldest\n"
	"             objects the targets do not use now (over an hour old),\n"
	"             quarantined files and temporary files of killed processes\n"
	"  graph      print the step graph in Graphviz dot\n"
	"  report     a summary of the built targets' reports, one row per target\n"
	"             (--html FILE: also a page comparing them, size against quality)\n"
	"  query      targets: the targets and what they resolve to;\n"
	"             steps: each step's kind, label and parameters;\n"
	"             keys: each step's action key and whether it is cached\n"
	"\n"
	"environment:\n"
	"  MCBUILD_CACHE  cache directory (default: cache: dir: in the recipe, else\n"
	"                 .mcbuild/cache in the workspace)\n";

struct cli {
	const char *dir;
	int jobs, keep_going, dry_run, explain, stats, timing, stamp, all, json;
	const char *cmd;  /* build, clean, graph, query, report */
	const char *what; /* query: targets|steps|keys */
	const char *html; /* report --html FILE */
	const char *max_size; /* gc --max-size SIZE */
	char **args;
	int nargs;
};

static int usage_error(const char *fmt, const char *arg)
{
	fputs("mcbuild: error: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\n(see mcbuild --help)\n", stderr);
	return EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct cli *c)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"all", no_argument, NULL, 'a'},
		{"json", no_argument, NULL, 'J'},
		{NULL, 0, NULL, 0},
	};
	char *end;
	long n;
	int ch;

	memset(c, 0, sizeof(*c));
	c->cmd = "build";
	while ((ch = getopt_long(argc, argv, "+C:j:knd:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			c->dir = optarg;
			break;
		case 'j':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || n < 1 || n > 1024)
				return usage_error(
					"-j needs a number of jobs from 1 to 1024, not '%s'",
					optarg);
			c->jobs = (int)n;
			break;
		case 'k':
			c->keep_going = 1;
			break;
		case 'n':
			c->dry_run = 1;
			break;
		case 'd':
			if (!strcmp(optarg, "explain"))
				c->explain = 1;
			else if (!strcmp(optarg, "stats"))
				c->stats = 1;
			else if (!strcmp(optarg, "time"))
				c->timing = 1;
			else if (!strcmp(optarg, "stamp"))
				c->stamp = 1;
			else
				return usage_error(
					"unknown debug mode '%s' (explain, stats, time, stamp)",
					optarg);
			break;
		case 'a':
			c->all = 1;
			break;
		case 'J':
			c->json = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(EXIT_OK);
		case 'V':
			printf("mcbuild %s\n", MCB_VERSION);
			exit(EXIT_OK);
		default:
			fputs("(see mcbuild --help)\n", stderr);
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc > 0 && (!strcmp(argv[0], "build") || !strcmp(argv[0], "clean") ||
			 !strcmp(argv[0], "gc") ||
			 !strcmp(argv[0], "graph") || !strcmp(argv[0], "query") ||
			 !strcmp(argv[0], "report"))) {
		c->cmd = argv[0];
		argc--;
		argv++;
	}
	if (c->json && ((strcmp(c->cmd, "build") && strcmp(c->cmd, "query")) || c->dry_run))
		return usage_error("--json is for builds and queries (not %s)",
				   c->dry_run ? "-n" : c->cmd);
	if (!strcmp(c->cmd, "clean") && argc > 0 && !strcmp(argv[0], "--all")) {
		c->all = 1;
		argc--;
		argv++;
	}
	if (!strcmp(c->cmd, "report") && argc > 1 && !strcmp(argv[0], "--html")) {
		c->html = argv[1];
		argc -= 2;
		argv += 2;
	}
	if (!strcmp(c->cmd, "gc") && argc > 0 && !strncmp(argv[0], "--max-size", 10)) {
		if (argv[0][10] == '=') {
			c->max_size = argv[0] + 11;
			argc--;
			argv++;
		} else if (!argv[0][10] && argc > 1) {
			c->max_size = argv[1];
			argc -= 2;
			argv += 2;
		} else {
			return usage_error("gc --max-size needs a size such as 500M or 20G%s", "");
		}
	}
	if (!strcmp(c->cmd, "query")) {
		if (argc == 0 || (strcmp(argv[0], "targets") && strcmp(argv[0], "steps") &&
				  strcmp(argv[0], "keys")))
			return usage_error("query needs one of targets, steps, keys%s", "");
		c->what = argv[0];
		argc--;
		argv++;
	}
	c->args = argv;
	c->nargs = argc;
	return EXIT_OK;
}

/* "to" relative to "from" (both absolute, clean): "" when equal. */
static char *relative_path(struct mcb_arena *a, const char *from, const char *to)
{
	size_t i = 0, common = 0;
	struct mcb_arena *A = a;
	char *out;
	const char *p;

	while (from[i] && to[i] && from[i] == to[i]) {
		if (from[i] == '/')
			common = i;
		i++;
	}
	if (!from[i] && (!to[i] || to[i] == '/'))
		common = i;
	else if (!to[i] && from[i] == '/')
		common = i;
	out = mcb_arena_strdup(A, "");
	for (p = from + common; *p; p++)
		if (*p == '/')
			out = mcb_arena_printf(A, "%s../", out);
	p = to + common;
	if (*p == '/')
		p++;
	if (*p)
		out = mcb_arena_printf(A, "%s%s/", out, p);
	return out;
}

/* Turn a command-line target (relative to the cwd) into a workspace path. */
static char *request_path(struct mcb_arena *a, const char *cwd_in_ws, const char *arg)
{
	int dir = arg[0] && arg[strlen(arg) - 1] == '/';
	char *joined = mcb_arena_printf(a, "%s%s", cwd_in_ws, arg);
	char *clean = mcb_path_clean_relative(a, joined);

	if (!clean)
		return NULL;
	if (!strcmp(clean, "."))
		return mcb_arena_strdup(a, "");
	return dir ? mcb_arena_printf(a, "%s/", clean) : clean;
}

static void print_targets(struct mcb_target **t, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%s  model=%s hardware=%s%s%s%s scheme=%s export=%s\n", t[i]->path,
		       t[i]->model->name, t[i]->hw_name,
		       strcmp(t[i]->hw_name, t[i]->hw->name) ? " (" : "",
		       strcmp(t[i]->hw_name, t[i]->hw->name) ? t[i]->hw->name : "",
		       strcmp(t[i]->hw_name, t[i]->hw->name) ? ")" : "", t[i]->scheme->name,
		       t[i]->export_format);
}

static void print_json(json_t *v)
{
	char *text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	fputs(text, stdout);
	fputc('\n', stdout);
	free(text);
	json_decref(v);
}

/* query targets --json */
static void print_targets_json(struct mcb_target **t, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < n; i++)
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "target", t[i]->path,
				       "model", t[i]->model->name, "hardware", t[i]->hw->name,
				       "hardware_as_written", t[i]->hw_name, "scheme",
				       t[i]->scheme->name, "format", t[i]->export_format));
	print_json(arr);
}

/* query steps --json, query keys --json */
static void print_steps_json(const struct mcb_plan *p, int keys)
{
	char hex[MCB_HEX_LEN + 1];
	json_t *arr = json_array();
	size_t i;

	for (i = 0; i < p->nsteps; i++) {
		const struct mcb_plan_step *s = p->steps[i];
		json_t *o = json_pack("{s:s, s:s, s:i}", "label", s->label, "kind", s->kind->name,
				      "version", s->kind->version);

		if (!keys) {
			json_object_set_new(o, "description", json_string(s->desc));
			/* a bundle's parameters are its provenance, known at build time */
			json_object_set(o, "params", s->target ? json_null() : s->params);
		} else if (s->encoding) {
			mcb_digest_hex(&s->key, hex);
			json_object_set_new(o, "key", json_string(hex));
			json_object_set_new(o, "state", json_string(s->state == MCB_STEP_DONE
									? "cached"
									: "missing"));
		} else {
			json_object_set_new(o, "key", json_null());
			json_object_set_new(o, "state", json_string("pending"));
		}
		json_array_append_new(arr, o);
	}
	print_json(arr);
}

static void print_steps(const struct mcb_plan *p, int keys)
{
	char hex[MCB_HEX_LEN + 1];
	size_t i;

	for (i = 0; i < p->nsteps; i++) {
		const struct mcb_plan_step *s = p->steps[i];

		if (!keys) {
			char *params = json_dumps(s->params, JSON_COMPACT | JSON_SORT_KEYS);

			printf("%s\t%s v%d\t%s\t%s\n", s->label, s->kind->name, s->kind->version,
			       s->desc, s->target ? "(provenance, set at build time)" : params);
			free(params);
			continue;
		}
		if (s->encoding) {
			mcb_digest_hex(&s->key, hex);
			printf("%s  %-7s %s\n", hex,
			       s->state == MCB_STEP_DONE ? "cached" : "missing", s->label);
		} else {
			printf("%-64s  %-7s %s\n", "(depends on steps that must run first)",
			       "pending", s->label);
		}
	}
}

/*
 * mcbuild report: the installed targets' report.json files, as a table (and
 * with html, a combined page).  A target not built yet is skipped with a
 * note; a malformed report is an error naming the file.
 */
static int report_command(struct mcb_arena *a, const char *root, const char *prefix,
			  struct mcb_target **targets, size_t n, const char *html)
{
	json_t **r = mcb_xcalloc(n + 1, sizeof(*r));
	struct mcb_buf text = MCB_BUF_INIT, page = MCB_BUF_INIT;
	struct mcb_errctx e;
	size_t i, nr = 0;
	int rc = EXIT_OK;

	for (i = 0; i < n; i++) {
		char *path = mcb_path_join(a, mcb_path_join(a, root, targets[i]->path),
					   "report.json");
		json_t *v;

		mcb_buf_reset(&text);
		if (mcb_os_read_file(path, 64u << 20, &text, &e)) {
			if (e.code == MCB_ENOENT)
				fprintf(stderr, "mcbuild: note: %s%s is not built\n", prefix,
					targets[i]->path);
			else
				fprintf(stderr, "mcbuild: error: %s\n", e.msg), rc = EXIT_FAIL;
			continue;
		}
		v = mcb_json_parse(text.data, text.len,
				   mcb_arena_printf(a, "%s%s/report.json", prefix, targets[i]->path), &e);
		if (v && mcb_report_check(v, &e)) {
			json_decref(v);
			v = NULL;
			mcb_errprefix(&e, "%s%s/report.json", prefix, targets[i]->path);
		}
		if (!v) {
			fprintf(stderr, "mcbuild: error: %s\n", e.msg);
			rc = EXIT_FAIL;
			continue;
		}
		r[nr++] = v;
	}
	if (nr)
		mcb_report_table((const json_t *const *)r, nr, stdout);
	if (html && nr) {
		if (mcb_report_combined_html((const json_t *const *)r, nr, &page, &e) ||
		    mcb_os_write_atomic(html, page.data, page.len, 0644, &e)) {
			fprintf(stderr, "mcbuild: error: %s\n", e.msg);
			rc = EXIT_FAIL;
		}
	}
	for (i = 0; i < nr; i++) {
		if (!strcmp(mcb_param_str(r[i], "verdict", ""), "failed"))
			rc = EXIT_FAIL;
		json_decref(r[i]);
	}
	free(r);
	mcb_buf_release(&text);
	mcb_buf_release(&page);
	return rc;
}

static int gc_live(void *ctx, const char *area, const char *hex)
{
	char key[8 + MCB_HEX_LEN];

	snprintf(key, sizeof(key), "%s/%s", area, hex);
	return mcb_strmap_get(ctx, key) != NULL;
}

/*
 * mcbuild gc, after a dry run of the plan: what the targets use now (every
 * cached step's entry and output blobs) is live; the rest goes oldest first
 * while the cache is above max.
 */
static int gc_command(struct mcb_store *store, const struct mcb_plan *p, uint64_t max,
		      struct mcb_arena *a)
{
	struct mcb_strmap live = MCB_STRMAP_INIT;
	struct mcb_errctx e;
	struct mcb_gc g;
	char hex[MCB_HEX_LEN + 1], b1[32], b2[32], b3[32];
	size_t i, j;
	int rc;

	for (i = 0; i < p->nsteps; i++) {
		const struct mcb_plan_step *s = p->steps[i];

		if (s->state != MCB_STEP_DONE)
			continue;
		mcb_digest_hex(&s->key, hex);
		mcb_strmap_put(&live, mcb_arena_printf(a, "ac/%s", hex), (void *)s);
		for (j = 0; j < s->action.nout; j++) {
			mcb_digest_hex(&s->action.out[j].digest, hex);
			mcb_strmap_put(&live, mcb_arena_printf(a, "cas/%s", hex), (void *)s);
		}
	}
	memset(&g, 0, sizeof(g));
	g.max_bytes = max;
	g.live = gc_live;
	g.ctx = &live;
	mcb_errclear(&e);
	rc = mcb_store_gc(store, &g, &e);
	mcb_strmap_release(&live);
	if (rc) {
		fprintf(stderr, "mcbuild: error: gc: %s\n", e.msg);
		return EXIT_FAIL;
	}
	printf("mcbuild: gc: removed %zu of %zu objects (%s)", g.removed, g.objects,
	       mcb_human_bytes(g.removed_bytes, b1, sizeof(b1)));
	if (g.quarantine_removed || g.tmp_removed)
		printf(", %zu quarantined and %zu temporary files (%s)", g.quarantine_removed,
		       g.tmp_removed, mcb_human_bytes(g.other_bytes, b2, sizeof(b2)));
	printf("; the cache holds %s, %s of it used by these targets (limit %s)\n",
	       mcb_human_bytes(g.bytes - g.removed_bytes, b1, sizeof(b1)),
	       mcb_human_bytes(g.live_bytes, b2, sizeof(b2)), mcb_human_bytes(max, b3, sizeof(b3)));
	if (g.bytes - g.removed_bytes > max && g.recent_objects)
		printf("mcbuild: gc: kept %zu objects (%s) made less than an hour ago\n",
		       g.recent_objects, mcb_human_bytes(g.recent_bytes, b1, sizeof(b1)));
	if (max && g.live_bytes > max)
		fprintf(stderr,
			"mcbuild: warning: gc: the targets' own objects (%s) exceed the limit (%s)\n",
			mcb_human_bytes(g.live_bytes, b1, sizeof(b1)), mcb_human_bytes(max, b2, sizeof(b2)));
	return EXIT_OK;
}

/* A JSON string of s (NULL: null); bytes that are not UTF-8 (a command-line
 * argument, text quoted from a model file) become U+FFFD. */
static json_t *json_text(const char *s)
{
	struct mcb_buf b = MCB_BUF_INIT;
	size_t n, k;
	json_t *v;

	if (!s)
		return json_null();
	n = strlen(s);
	if ((k = mcb_utf8_check(s, n)) == n)
		return json_stringn(s, n);
	while (n) {
		mcb_buf_add(&b, s, k);
		if (k == n)
			break;
		mcb_buf_adds(&b, "\xef\xbf\xbd");
		s += k + 1;
		n -= k + 1;
		k = mcb_utf8_check(s, n);
	}
	v = json_stringn(mcb_buf_str(&b), b.len);
	mcb_buf_release(&b);
	return v;
}

static void json_diags(json_t *arr, const struct mcb_diags *d)
{
	static const char *const sev[] = {"error", "warning", "note"};
	size_t i;

	for (i = 0; d && i < d->n; i++) {
		const struct mcb_diag *g = &d->v[i];
		json_t *o = json_object();

		if (g->loc.file) {
			json_object_set_new(o, "file", json_text(g->loc.file));
			if (g->loc.line)
				json_object_set_new(o, "line", json_integer(g->loc.line));
			if (g->loc.col)
				json_object_set_new(o, "column", json_integer(g->loc.col));
		}
		json_object_set_new(o, "severity", json_string(sev[g->sev]));
		json_object_set_new(o, "message", json_text(g->msg));
		json_array_append_new(arr, o);
	}
}

/*
 * --json: the outcome of a build as one JSON document on stdout (schema in
 * the README).  p and b are NULL when the build stopped before planning or
 * running.
 */
static void json_outcome(int exitcode, const char *error, int no_work, struct mcb_target **t,
			 size_t nt, const struct mcb_plan *p, const struct mcb_build *b,
			 const struct mcb_diags *d1, const struct mcb_diags *d2)
{
	json_t *o = json_object(), *targets = json_array(), *diags = json_array();
	char *text;
	size_t i, k;

	json_object_set_new(o, "mcbuild", json_string(MCB_VERSION));
	json_object_set_new(o, "ok", json_boolean(exitcode == 0));
	json_object_set_new(o, "exit", json_integer(exitcode));
	json_object_set_new(o, "error", json_text(error));
	json_object_set_new(o, "no_work", json_boolean(no_work));
	json_object_set_new(o, "steps",
			    json_pack("{s:I, s:I, s:I, s:I}", "planned",
				      (json_int_t)(p ? p->nsteps : 0), "ran",
				      (json_int_t)(b ? b->nran : 0), "cached",
				      (json_int_t)(b ? b->ncached : 0), "failed",
				      (json_int_t)(b ? b->nfailed : 0)));
	for (i = 0; i < nt; i++) {
		json_t *r = json_pack("{s:o, s:o, s:o, s:o, s:o}", "target", json_text(t[i]->path),
				      "model", json_text(t[i]->model->name), "hardware",
				      json_text(t[i]->hw->name), "scheme", json_text(t[i]->scheme->name),
				      "format", json_text(t[i]->export_format));
		const char *status = "not planned";
		char verdict = 0, out = 0;

		for (k = 0; p && k < p->ntargets; k++)
			if (p->targets[k].target == t[i])
				break;
		if (p && k < p->ntargets) {
			status = "not built";
			if (b && b->outcome) {
				out = b->outcome[k];
				verdict = b->verdict[k];
			}
		}
		if (verdict == 'f')
			status = "quality gate failed";
		else if (out == 'i')
			status = "installed";
		else if (out == 'u')
			status = "up to date";
		json_object_set_new(r, "status", json_string(status));
		json_object_set_new(r, "verdict", verdict == 'f'   ? json_string("failed")
						  : verdict == 'p' ? json_string("passed")
								   : json_null());
		if (verdict == 'f') {
			json_t *g = json_array();
			const char *l = b->gate_failures[k];

			while (l && *l) {
				size_t len = strcspn(l, "\n");

				char *line = strndup(l, len);

				json_array_append_new(g, json_text(line));
				free(line);
				l += len + (l[len] == '\n');
			}
			json_object_set_new(r, "failed_gates", g);
		}
		json_array_append_new(targets, r);
	}
	json_object_set_new(o, "targets", targets);
	json_diags(diags, d1);
	json_diags(diags, d2);
	json_object_set_new(o, "diagnostics", diags);
	text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputs(text, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	free(text);
	json_decref(o);
}

/* A path for messages: relative to the workspace when inside it. */
static const char *shown(const char *path, const char *root, const char *prefix,
			 struct mcb_arena *a)
{
	size_t n = strlen(root);

	if (!strncmp(path, root, n) && path[n] == '/')
		return mcb_arena_printf(a, "%s%s", prefix, path + n + 1);
	return path;
}

/*
 * The no-op stamp (cache/stamp.c) for a plain build: its key names the
 * workspace, where in it mcbuild runs, the cache directory and the
 * requested targets.  NULL when the run cannot use one (other commands,
 * -n, and the -d modes that report on the full check).
 */
static struct mcb_stamp *stamp_begin(const struct cli *c, const char *root,
				     const char *cwd_in_ws)
{
	const char **w;
	struct mcb_stamp *s;
	const char *env = getenv("MCBUILD_CACHE");
	int i, n = 0;

	if (strcmp(c->cmd, "build") || c->dry_run || c->explain || c->stats || c->timing || c->json)
		return NULL;
	w = mcb_xcalloc((size_t)c->nargs + 4, sizeof(*w));
	w[n++] = root;
	w[n++] = cwd_in_ws;
	w[n++] = env ? env : "\001unset";
	w[n++] = c->nargs ? "targets" : "default";
	for (i = 0; i < c->nargs; i++)
		w[n++] = c->args[i];
	s = mcb_stamp_begin(w, (size_t)n);
	free(w);
	return s;
}

static void stamp_add(void *ctx, const char *path)
{
	mcb_stamp_add(ctx, path);
}

/* After a full check that found nothing to do: write the stamp. */
static void stamp_save(struct mcb_stamp *st, const struct mcb_workspace *ws, struct mcb_build *b,
		       const char *file, int debug, const char *root, const char *prefix,
		       struct mcb_arena *a)
{
	struct mcb_errctx e;
	char why[512];
	size_t i;
	int written;

	for (i = 0; i < ws->nfiles; i++)
		mcb_stamp_add(st, ws->files[i]);
	for (i = 0; i < ws->nmodels; i++) {
		mcb_stamp_add(st, ws->models[i].path);
		if (ws->models[i].config)
			mcb_stamp_add(st, ws->models[i].config);
	}
	for (i = 0; i < ws->ndatasets; i++) {
		if (ws->datasets[i].path[0])
			mcb_stamp_add(st, ws->datasets[i].path);
		if (ws->datasets[i].labels)
			mcb_stamp_add(st, ws->datasets[i].labels);
	}
	mcb_build_evidence(b, stamp_add, st);
	mcb_errclear(&e);
	if (mcb_stamp_save(st, file, &written, why, sizeof(why), &e)) {
		fprintf(stderr, "mcbuild: warning: %s\n", e.msg);
		return;
	}
	if (!debug)
		return;
	if (written)
		fprintf(stderr, "mcbuild: stamp: written (%zu files)\n", mcb_stamp_count(st));
	else
		fprintf(stderr, "mcbuild: stamp: not written: %s\n",
			shown(why, root, prefix, a));
}

int main(int argc, char **argv)
{
	struct mcb_target **targets = NULL;
	struct mcb_store *store = NULL;
	struct mcb_statcache *stat = NULL;
	struct mcb_explain *xlog = NULL;
	struct mcb_stamp *stamp = NULL;
	struct mcb_diags pd;
	const char *json_error = NULL;
	int json_no_work = 0, planned = 0, ran = 0;
	int quiet = 1; /* nothing but the result was said */
	struct mcb_workspace ws;
	struct mcb_diags diags;
	struct mcb_errctx e;
	struct mcb_arena a;
	struct mcb_plan plan;
	struct mcb_build b;
	char cwd[PATH_MAX];
	char *root, *prefix, *cwd_in_ws, *state, *cachedir;
	const char *env;
	size_t ntargets = 0, i;
	int rc, warning, exitcode = EXIT_OK;
	size_t unplanned = 0;
	uint64_t gc_max = 0;
	int64_t t_start, t_load = 0, t_plan = 0, t_open = 0, t_build = 0;
	struct cli c;

	rc = parse_args(argc, argv, &c);
	if (rc)
		return rc;
	if (c.dir && chdir(c.dir) < 0) {
		fprintf(stderr, "mcbuild: error: cannot change to directory '%s': %s\n", c.dir,
			strerror(errno));
		return EXIT_FAIL;
	}
	if (!getcwd(cwd, sizeof(cwd))) {
		fprintf(stderr, "mcbuild: error: cannot get the current directory: %s\n",
			strerror(errno));
		return EXIT_FAIL;
	}
	mcb_arena_init(&a);
	mcb_errclear(&e);
	if (mcb_workspace_find(&a, cwd, &root)) {
		fprintf(stderr,
			"mcbuild: error: no %s in '%s' or any parent directory "
			"(use -C DIR)\n",
			MCB_RECIPE_FILE, cwd);
		mcb_arena_release(&a);
		return EXIT_FAIL;
	}
	prefix = relative_path(&a, cwd, root);
	cwd_in_ws = relative_path(&a, root, cwd);
	stamp = stamp_begin(&c, root, cwd_in_ws);
	if (stamp) {
		char why[512];
		size_t nfiles;

		if (mcb_stamp_check(stamp, mcb_path_join(&a, root, ".mcbuild/noop"), &nfiles, why,
				    sizeof(why))) {
			printf("mcbuild: no work to do.\n");
			if (c.stamp)
				fprintf(stderr, "mcbuild: stamp: up to date (%zu files unchanged)\n",
					nfiles);
			mcb_stamp_free(stamp);
			mcb_arena_release(&a);
			return EXIT_OK;
		}
		if (c.stamp)
			fprintf(stderr, "mcbuild: stamp: not used: %s\n",
				shown(why, root, prefix, &a));
	}
	mcb_diags_init(&diags);
	mcb_diags_init(&pd);
	memset(&ws, 0, sizeof(ws));
	t_start = mcb_os_now_ns();
	rc = mcb_workspace_load(&ws, root, prefix, &diags);
	if (!rc) {
		if (c.nargs == 0 && ws.ndefaults == 0) {
			for (i = 0; i < ws.ndeclared; i++)
				rc |= mcb_workspace_resolve(&ws, ws.declared[i]->path, &targets,
							    &ntargets, &diags);
		} else if (c.nargs == 0) {
			for (i = 0; i < ws.ndefaults; i++)
				rc |= mcb_workspace_resolve(&ws, ws.defaults[i], &targets,
							    &ntargets, &diags);
		}
		for (i = 0; i < (size_t)c.nargs; i++) {
			char *req = request_path(&a, cwd_in_ws, c.args[i]);

			if (!req) {
				mcb_diag_error(&diags, NULL,
					       "target '%s' is outside the workspace '%s'",
					       c.args[i], root);
				rc = MCB_ERECIPE;
				continue;
			}
			rc |= mcb_workspace_resolve(&ws, req, &targets, &ntargets, &diags);
		}
	}
	mcb_diags_print(&diags, stderr);
	if (rc || diags.nerr) {
		exitcode = EXIT_FAIL;
		json_error = "errors in the recipe or the requested targets (see diagnostics)";
		goto out_ws;
	}
	if (c.what && !strcmp(c.what, "targets")) {
		if (c.json)
			print_targets_json(c.nargs ? targets : ws.declared,
					   c.nargs ? ntargets : ws.ndeclared);
		else
			print_targets(c.nargs ? targets : ws.declared,
				      c.nargs ? ntargets : ws.ndeclared);
		goto out_ws;
	}
	if (!strcmp(c.cmd, "report")) {
		exitcode = report_command(&a, root, prefix, targets, ntargets, c.html);
		goto out_ws;
	}
	if (ntargets == 0) {
		fprintf(stderr, "mcbuild: error: nothing to build: %s%s declares no targets\n",
			prefix, MCB_RECIPE_FILE);
		json_error = "nothing to build: the recipe declares no targets";
		exitcode = EXIT_FAIL;
		goto out_ws;
	}
	if (!strcmp(c.cmd, "gc")) {
		if (c.max_size && mcb_parse_size(c.max_size, &gc_max) < 0) {
			fprintf(stderr,
				"mcbuild: error: gc --max-size needs a size such as 500M, 20G or "
				"1.5TiB, not '%s'\n",
				c.max_size);
			exitcode = EXIT_USAGE;
			goto out_ws;
		}
		if (!c.max_size && !ws.cache_max_set) {
			fprintf(stderr, "mcbuild: error: gc needs a size limit: --max-size SIZE, or "
					"cache: {max_size: SIZE} in %s%s\n",
				prefix, MCB_RECIPE_FILE);
			exitcode = EXIT_FAIL;
			goto out_ws;
		}
		if (!c.max_size)
			gc_max = ws.cache_max;
	}
	if (!strcmp(c.cmd, "clean")) {
		for (i = 0; i < ntargets; i++) {
			char *dir = mcb_path_join(&a, root, targets[i]->path);

			if (!mcb_os_exists(dir))
				continue;
			if (mcb_os_rmtree(dir, &e)) {
				fprintf(stderr, "mcbuild: error: %s\n", e.msg);
				exitcode = EXIT_FAIL;
			} else {
				printf("removed %s%s\n", prefix, targets[i]->path);
			}
		}
		if (c.all) {
			char *dir = mcb_path_join(&a, root, ".mcbuild");

			if (!mcb_os_exists(dir)) {
				/* nothing to remove */
			} else if (mcb_os_rmtree(dir, &e)) {
				fprintf(stderr, "mcbuild: error: %s\n", e.msg);
				exitcode = EXIT_FAIL;
			} else {
				printf("removed %s.mcbuild\n", prefix);
			}
		}
		goto out_ws;
	}
	t_load = mcb_os_now_ns();
	{
		rc = mcb_plan_build(&plan, &a, targets, ntargets, &pd);
		planned = 1;
		mcb_diags_print(&pd, stderr);
		if (rc) {
			/* as a failed step: stop, or with -k build what could be planned */
			exitcode = EXIT_FAIL;
			unplanned = ntargets - plan.ntargets;
			if (!c.keep_going || !plan.ntargets || strcmp(c.cmd, "build"))
				goto out_plan;
		}
	}
	t_plan = mcb_os_now_ns();
	if (!strcmp(c.cmd, "graph")) {
		mcb_plan_dot(&plan, stdout);
		goto out_plan;
	}
	if (c.what && !strcmp(c.what, "steps")) {
		if (c.json)
			print_steps_json(&plan, 0);
		else
			print_steps(&plan, 0);
		goto out_plan;
	}
	state = mcb_path_join(&a, root, ".mcbuild");
	env = getenv("MCBUILD_CACHE");
	cachedir = env && env[0]  ? mcb_arena_strdup(&a, env)
		   : ws.cache_dir ? mcb_arena_strdup(&a, ws.cache_dir)
				  : mcb_path_join(&a, state, "cache");
	if (mcb_os_mkdirs(mcb_path_join(&a, state, "tmp"), &e) ||
	    mcb_store_open(cachedir, &store, &e)) {
		fprintf(stderr, "mcbuild: error: %s\n", e.msg);
		json_error = mcb_arena_strdup(&a, e.msg);
		exitcode = EXIT_FAIL;
		goto out_plan;
	}
	if (mcb_statcache_open(mcb_path_join(&a, state, "statcache"), &stat, &warning, &e)) {
		fprintf(stderr, "mcbuild: error: %s\n", e.msg);
		exitcode = EXIT_FAIL;
		goto out_plan;
	}
	if (warning)
		fprintf(stderr, "mcbuild: warning: %s\n", e.msg), quiet = 0;
	xlog = mcb_explain_open(mcb_path_join(&a, state, "explain.log"));
	memset(&b, 0, sizeof(b));
	b.plan = &plan;
	b.store = store;
	b.stat = stat;
	b.explain = xlog;
	b.root = root;
	b.tmpdir = mcb_path_join(&a, state, "tmp");
	b.arena = &a;
	b.opts.jobs = c.jobs ? c.jobs : mcb_os_ncpu();
	b.opts.keep_going = c.keep_going;
	b.opts.dry_run = c.dry_run || (c.what && !strcmp(c.what, "keys")) || !strcmp(c.cmd, "gc");
	b.opts.explain = c.explain;
	b.opts.stats = c.stats;
	b.opts.tty = isatty(STDOUT_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb");
	b.out = c.json ? stderr : stdout;
	b.err = stderr;
	if ((c.what && !strcmp(c.what, "keys")) || !strcmp(c.cmd, "gc")) {
		b.out = fopen("/dev/null", "w");
		b.opts.tty = 0;
		b.opts.explain = 0;
	}
	t_open = mcb_os_now_ns();
	rc = mcb_build_run(&b, &e);
	ran = 1;
	t_build = mcb_os_now_ns();
	if (c.what && !strcmp(c.what, "keys")) {
		fclose(b.out);
		if (c.json)
			print_steps_json(&plan, 1);
		else
			print_steps(&plan, 1);
	} else if (!strcmp(c.cmd, "gc")) {
		fclose(b.out);
		if (rc == 0)
			exitcode = gc_command(store, &plan, gc_max, &a);
	} else if (rc == 0 && !unplanned &&
		   (c.dry_run ? b.nwould == 0 : b.nran == 0 && b.ninstalled == 0)) {
		json_no_work = 1;
		fprintf(c.json ? stderr : stdout, "mcbuild: no work to do.\n");
	}
	if (!c.dry_run && !c.what) {
		if (mcb_statcache_save(stat, &e))
			fprintf(stderr, "mcbuild: warning: %s\n", e.msg), quiet = 0;
		if (mcb_explain_save(xlog, &e))
			fprintf(stderr, "mcbuild: warning: %s\n", e.msg), quiet = 0;
		if (mcb_explain_warning(xlog))
			fprintf(stderr, "mcbuild: warning: %s\n", mcb_explain_warning(xlog)),
				quiet = 0;
	}
	/* a full check that found nothing to do and said nothing else: the next
	 * identical command may trust its files instead (cache/stamp.c) */
	if (stamp && rc == 0 && !unplanned && b.nran == 0 && b.ninstalled == 0 &&
	    b.nfailed == 0 && b.nwarned == 0 && quiet && diags.n == 0 && pd.n == 0)
		stamp_save(stamp, &ws, &b, mcb_path_join(&a, root, ".mcbuild/noop"), c.stamp, root,
			   prefix, &a);
	if (c.stats) {
		fprintf(stderr,
			"mcbuild: stats: %zu steps, %zu ran, %zu cached, %zu failed; "
			"%zu targets installed, %zu up to date; %u files hashed\n",
			plan.nsteps, b.nran, b.ncached, b.nfailed, b.ninstalled, b.nuptodate,
			mcb_statcache_hashed(stat));
	}
	if (c.timing) {
		fprintf(stderr,
			"mcbuild: time: load %.1f ms, plan %.1f ms, open caches %.1f ms, "
			"build %.1f ms, save %.1f ms\n",
			(double)(t_load - t_start) / 1e6, (double)(t_plan - t_load) / 1e6,
			(double)(t_open - t_plan) / 1e6, (double)(t_build - t_open) / 1e6,
			(double)(mcb_os_now_ns() - t_build) / 1e6);
	}
	if (rc) {
		if (b.nfailed > 1)
			json_error = mcb_arena_printf(&a, "%zu steps failed; the first: %s", b.nfailed,
						      b.failure);
		else
			json_error = mcb_arena_strdup(&a, b.failure[0] ? b.failure : e.msg);
		fprintf(stderr, "mcbuild: error: %s\n", json_error);
		exitcode = EXIT_FAIL;
	}
	if (unplanned) {
		fprintf(stderr, "mcbuild: error: %zu target%s could not be planned (errors above)\n",
			unplanned, unplanned == 1 ? "" : "s");
		if (!json_error)
			json_error = mcb_arena_printf(&a, "%zu target%s could not be planned", unplanned,
						      unplanned == 1 ? "" : "s");
	}
out_plan:
	if (c.json && !strcmp(c.cmd, "build")) {
		if (exitcode && !json_error)
			json_error = "the targets could not be planned (see diagnostics)";
		json_outcome(exitcode, json_error, json_no_work, targets, ntargets,
			     planned ? &plan : NULL, ran ? &b : NULL, &diags, &pd);
		c.json = 0; /* said */
	}
	mcb_plan_release(&plan);
out_ws:
	if (c.json && !strcmp(c.cmd, "build"))
		json_outcome(exitcode, json_error, 0, targets, ntargets, NULL, NULL, &diags, NULL);
	mcb_diags_release(&pd);
	mcb_stamp_free(stamp);
	mcb_explain_close(xlog);
	if (stat)
		mcb_statcache_close(stat);
	if (store)
		mcb_store_close(store);
	mcb_workspace_release(&ws);
	mcb_diags_release(&diags);
	mcb_arena_release(&a);
	return exitcode;
}
