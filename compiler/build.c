/*
 * build: the scheduler (see include/mcb/build.h).
 *
 * Like samurai's build.c, counters drive it: a step's nblock counts the
 * producers not yet done; a finished producer decrements its users'.  A
 * ready step's action key is computed from its kind, version, params and
 * input digests; a hit in the action cache finishes it without running.
 * A miss runs it in a child process (fork), which materializes its inputs
 * from the store into a scratch directory, runs the step kind, stores every
 * output and, only after all of them are stored, the action entry.  The
 * child reports through a pipe: its log, and on failure a last line with the
 * reason.  Exit status 0: done; 1: failed; 3: an input blob was corrupt (it
 * has been quarantined; the producer is re-run, then the step again).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <jansson.h>

#include "mcb/action.h"
#include "mcb/arena.h"
#include "mcb/blas.h"
#include "mcb/buf.h"
#include "mcb/build.h"
#include "mcb/err.h"
#include "mcb/explain.h"
#include "mcb/hash.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/plan.h"
#include "mcb/recipe.h"
#include "mcb/statcache.h"
#include "mcb/step.h"
#include "mcb/store.h"

#define EXIT_STEP_FAILED 1
#define EXIT_INPUT_CORRUPT 3
#define MAX_RETRIES 3

struct job {
	struct mcb_plan_step *step;
	pid_t pid;
	int fd;		    /* read end of the child's output pipe; -1 at EOF */
	struct mcb_buf out; /* what the child wrote */
	size_t index;       /* its number in the progress count */
};

struct sched {
	struct mcb_build *b;
	struct mcb_arena *arena; /* == b->arena */
	struct job *jobs;	 /* opts.jobs slots; pid 0 when free */
	size_t running;
	size_t total; /* actions (steps to run + installs) expected */
	size_t started;
	int stop;	  /* a failure without -k: start nothing new */
	int status_shown; /* the tty status line is on screen */
	char *current;	  /* per plan target: 1 when known to be up to date */
	char *verdict;	  /* per plan target: 0 unknown, 'p' passed or ungated, 'f' failed */
	char **failures;  /* per plan target with 'f': its failed gates, one per line */
	int exclusive;	  /* a step that must run alone is running */
	const struct mcb_plan_step *last_started;
	struct mcb_buf enc; /* the action encoding compute_key made last */
};

/* ---- output ---- */

static void clear_status(struct sched *sc)
{
	if (sc->b->opts.tty && sc->status_shown) {
		fputs("\r\033[K", sc->b->out);
		sc->status_shown = 0;
	}
}

static void show_status(struct sched *sc, const char *what)
{
	struct mcb_build *b = sc->b;

	if (b->opts.tty) {
		fprintf(b->out, "\r[%zu/%zu] %s\033[K", sc->started, sc->total, what);
		sc->status_shown = 1;
	} else {
		fprintf(b->out, "[%zu/%zu] %s\n", sc->started, sc->total, what);
	}
	fflush(b->out);
}

/* Print text (lines) above the status line, each indented by two spaces. */
static void print_lines(struct sched *sc, const char *text, size_t n)
{
	const char *p = text, *end = text + n, *nl;

	clear_status(sc);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl > p)
			fprintf(sc->b->out, "  %.*s\n", (int)(nl - p), p);
		p = nl + 1;
	}
	fflush(sc->b->out);
}

static void warn(struct sched *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(struct sched *sc, const char *fmt, ...)
{
	va_list ap;

	sc->b->nwarned++;
	clear_status(sc);
	fflush(sc->b->out);
	fputs("mcbuild: warning: ", sc->b->err);
	va_start(ap, fmt);
	vfprintf(sc->b->err, fmt, ap);
	va_end(ap);
	fputc('\n', sc->b->err);
}

static void explain(struct sched *sc, const char *what, const char *why)
{
	if (!sc->b->opts.explain)
		return;
	clear_status(sc);
	fflush(sc->b->out);
	fprintf(sc->b->err, "mcbuild: explain: %s: %s\n", what, why);
}

static void fail(struct sched *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct sched *sc, const char *fmt, ...)
{
	struct mcb_build *b = sc->b;
	va_list ap;

	b->nfailed++;
	if (!b->failure[0]) {
		va_start(ap, fmt);
		vsnprintf(b->failure, sizeof(b->failure), fmt, ap);
		va_end(ap);
	}
	if (!b->opts.keep_going)
		sc->stop = 1;
}

/* ---- keys ---- */

static void host_json(json_t *o)
{
	struct utsname u;

	if (uname(&u) == 0)
		json_object_set_new(o, "host",
				    json_pack("{s:s, s:s}", "os", u.sysname, "arch", u.machine));
}

static json_t *digest_json(const struct mcb_digest *d)
{
	char hex[MCB_HEX_LEN + 1];

	mcb_digest_hex(d, hex);
	return json_string(hex);
}

/* The provenance a bundle step records (its params): everything the manifest
 * says except the file list, which comes from its inputs. */
static json_t *bundle_params(struct mcb_plan_step *s)
{
	const struct mcb_target *t = s->target;
	json_t *p = json_object(), *steps = json_array(), *sources = json_array();
	struct mcb_buf canon = MCB_BUF_INIT;
	struct mcb_digest rd;
	size_t i, j;

	mcb_json_canonical(t->resolved, &canon);
	mcb_sha256(canon.data, canon.len, &rd);
	mcb_buf_release(&canon);
	json_object_set_new(p, "manifest_version", json_integer(1));
	json_object_set_new(p, "mcbuild_version", json_string(MCB_VERSION));
	json_object_set_new(p, "target", json_string(t->path));
	json_object_set_new(
		p, "recipe",
		json_pack("{s:o, s:O}", "digest", digest_json(&rd), "resolved", t->resolved));
	for (i = 0; i < s->nchain; i++) {
		const struct mcb_plan_step *c = s->chain[i];
		json_t *in = json_object(), *out = json_object();

		for (j = 0; j < c->ndeps; j++) {
			json_object_set_new(in, c->deps[j].slot, digest_json(&c->in_digest[j]));
			if (!c->deps[j].from)
				json_array_append_new(sources,
						      json_pack("{s:s, s:o, s:I}", "input",
								c->deps[j].what, "sha256",
								digest_json(&c->in_digest[j]),
								"size", (json_int_t)c->in_size[j]));
		}
		for (j = 0; j < c->action.nout; j++)
			json_object_set_new(out, c->action.out[j].name,
					    digest_json(&c->action.out[j].digest));
		json_array_append_new(steps, json_pack("{s:s, s:i, s:o, s:O, s:o, s:o}", "kind",
						       c->kind->name, "version", c->kind->version,
						       "key", digest_json(&c->key), "params",
						       c->params, "inputs", in, "outputs", out));
	}
	json_object_set_new(p, "sources", sources);
	json_object_set_new(p, "steps", steps);
	host_json(p);
	return p;
}

/* The action output called name of step s, or NULL. */
static const struct mcb_action_output *output_of(const struct mcb_plan_step *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->action.nout; i++)
		if (!strcmp(s->action.out[i].name, name))
			return &s->action.out[i];
	return NULL;
}

static void add_hex(struct mcb_buf *b, const struct mcb_digest *d)
{
	char hex[MCB_HEX_LEN + 3];

	hex[0] = '"';
	mcb_digest_hex(d, hex + 1);
	hex[MCB_HEX_LEN + 1] = '"';
	mcb_buf_add(b, hex, MCB_HEX_LEN + 2);
}

/* {"slot":"<hex>",...} over s's inputs (deps are sorted by slot). */
static void add_inputs(struct mcb_buf *b, const struct mcb_plan_step *s)
{
	size_t i;

	mcb_buf_addc(b, '{');
	for (i = 0; i < s->ndeps; i++) {
		if (i)
			mcb_buf_addc(b, ',');
		mcb_json_canonical_str(s->deps[i].slot, b);
		mcb_buf_addc(b, ':');
		add_hex(b, &s->in_digest[i]);
	}
	mcb_buf_addc(b, '}');
}

/*
 * The canonical encoding of bundle_params(s), assembled from the parts that
 * are already encoded (each chain step's params, the target's resolved
 * recipe) instead of re-encoding a tree: a no-op build computes every
 * bundle's key.  Keys in sorted order.  start() checks, before a bundle
 * runs, that this equals mcb_json_canonical(bundle_params(s)).
 */
static void bundle_params_enc(struct mcb_plan_step *s, struct mcb_buf *b)
{
	const struct mcb_target *t = s->target;
	struct mcb_buf resolved = MCB_BUF_INIT;
	struct mcb_digest rd;
	static struct utsname u; /* one host: asked once */
	static int have_u = -1;
	size_t i, j, nsrc = 0;

	if (have_u < 0)
		have_u = uname(&u) == 0;
	mcb_json_canonical(t->resolved, &resolved);
	mcb_sha256(resolved.data, resolved.len, &rd);
	mcb_buf_adds(b, "{");
	if (have_u) {
		mcb_buf_adds(b, "\"host\":{\"arch\":");
		mcb_json_canonical_str(u.machine, b);
		mcb_buf_adds(b, ",\"os\":");
		mcb_json_canonical_str(u.sysname, b);
		mcb_buf_adds(b, "},");
	}
	mcb_buf_adds(b, "\"manifest_version\":1,\"mcbuild_version\":");
	mcb_json_canonical_str(MCB_VERSION, b);
	mcb_buf_adds(b, ",\"recipe\":{\"digest\":");
	add_hex(b, &rd);
	mcb_buf_adds(b, ",\"resolved\":");
	mcb_buf_add(b, resolved.data, resolved.len);
	mcb_buf_adds(b, "},\"sources\":[");
	for (i = 0; i < s->nchain; i++) {
		const struct mcb_plan_step *c = s->chain[i];

		for (j = 0; j < c->ndeps; j++) {
			if (c->deps[j].from)
				continue;
			if (nsrc++)
				mcb_buf_addc(b, ',');
			mcb_buf_adds(b, "{\"input\":");
			mcb_json_canonical_str(c->deps[j].what, b);
			mcb_buf_adds(b, ",\"sha256\":");
			add_hex(b, &c->in_digest[j]);
			mcb_buf_printf(b, ",\"size\":%llu}", (unsigned long long)c->in_size[j]);
		}
	}
	mcb_buf_adds(b, "],\"steps\":[");
	for (i = 0; i < s->nchain; i++) {
		const struct mcb_plan_step *c = s->chain[i];

		if (i)
			mcb_buf_addc(b, ',');
		mcb_buf_adds(b, "{\"inputs\":");
		add_inputs(b, c);
		mcb_buf_adds(b, ",\"key\":");
		add_hex(b, &c->key);
		mcb_buf_adds(b, ",\"kind\":");
		mcb_json_canonical_str(c->kind->name, b);
		mcb_buf_adds(b, ",\"outputs\":{");
		for (j = 0; j < c->action.nout; j++) {
			if (j)
				mcb_buf_addc(b, ',');
			mcb_json_canonical_str(c->action.out[j].name, b);
			mcb_buf_addc(b, ':');
			add_hex(b, &c->action.out[j].digest);
		}
		mcb_buf_adds(b, "},\"params\":");
		mcb_buf_adds(b, c->params_enc);
		mcb_buf_printf(b, ",\"version\":%d}", c->kind->version);
	}
	mcb_buf_adds(b, "],\"target\":");
	mcb_json_canonical_str(t->path, b);
	mcb_buf_addc(b, '}');
	mcb_buf_release(&resolved);
}

/*
 * Compute s's input digests, encoding and key (producers are DONE):
 *   {"inputs":{slot:hex,...},"kind":K,"params":P,"version":V}
 * in canonical form.  Returns 0, or -1 after reporting the failure (a source
 * cannot be read).
 */
static int compute_key(struct sched *sc, struct mcb_plan_step *s)
{
	struct mcb_build *b = sc->b;
	struct mcb_errctx e;
	struct mcb_buf *enc = &sc->enc, params = MCB_BUF_INIT;
	size_t i;

	mcb_errclear(&e);
	if (!s->in_digest) {
		s->in_digest = mcb_arena_array(sc->arena, s->ndeps + 1, sizeof(*s->in_digest));
		s->in_size = mcb_arena_array(sc->arena, s->ndeps + 1, sizeof(*s->in_size));
	}
	for (i = 0; i < s->ndeps; i++) {
		const struct mcb_plan_dep *d = &s->deps[i];

		if (d->from) {
			const struct mcb_action_output *o = output_of(d->from, d->output);

			if (!o) {
				fail(sc, "%s: step '%s' did not produce %s", s->desc, d->from->desc,
				     d->output);
				return -1;
			}
			s->in_digest[i] = o->digest;
			s->in_size[i] = o->size;
		} else if (mcb_statcache_digest(b->stat, d->source, &s->in_digest[i],
						&s->in_size[i], &e)) {
			clear_status(sc);
			if (d->loc.file)
				fprintf(b->err, "%s:%d:%d: error: %s: %s\n", d->loc.file,
					d->loc.line, d->loc.col, d->what, e.msg);
			fail(sc, "%s: %s", d->what, e.msg);
			return -1;
		}
	}
	/* a bundle's provenance is large (every step of its chain): encoded
	 * here for the key, kept only when the bundle runs (start()) */
	if (s->target)
		bundle_params_enc(s, &params);
	else if (!s->params_enc) {
		mcb_json_canonical(s->params, &params);
		s->params_enc = mcb_arena_strndup(sc->arena, params.data, params.len);
	}
	enc->len = 0;
	mcb_buf_adds(enc, "{\"inputs\":");
	add_inputs(enc, s);
	mcb_buf_adds(enc, ",\"kind\":");
	mcb_json_canonical_str(s->kind->name, enc);
	mcb_buf_adds(enc, ",\"params\":");
	if (s->target)
		mcb_buf_add(enc, params.data, params.len);
	else
		mcb_buf_adds(enc, s->params_enc);
	mcb_buf_printf(enc, ",\"version\":%d}", s->kind->version);
	mcb_sha256(enc->data, enc->len, &s->key);
	s->encoding = ""; /* the key is known; keep_encoding() when it is a miss */
	mcb_buf_release(&params);
	return 0;
}

/* After a lookup miss of the step compute_key saw last: keep its encoding
 * (the explain log records it when the step runs; -d explain compares it). */
static void keep_encoding(struct sched *sc, struct mcb_plan_step *s)
{
	s->encoding = mcb_arena_strndup(sc->arena, sc->enc.data, sc->enc.len);
}

/* Look s's key up.  Returns 1 on a hit (s->action filled), 0 on a miss. */
static int lookup(struct sched *sc, struct mcb_plan_step *s)
{
	struct mcb_errctx e;
	int rc;

	mcb_errclear(&e);
	rc = mcb_ac_get(sc->b->store, &s->key, sc->arena, &s->action, &e);
	if (rc == 0)
		return 1;
	if (rc == MCB_ECORRUPT)
		warn(sc, "%s; rebuilding", e.msg);
	else if (rc != MCB_ENOENT)
		warn(sc, "cannot read the action cache: %s", e.msg);
	return 0;
}

/* Bundle parameters that only restate what the steps' own explanations say. */
static const char *const derived[] = {"recipe.digest", "steps", "sources", NULL};

/* The last recorded encoding of s under any of its labels, or NULL. */
static const char *previous(struct sched *sc, const struct mcb_plan_step *s)
{
	const char *old = mcb_explain_get(sc->b->explain, s->label);
	size_t i;

	for (i = 0; !old && i < s->naliases; i++)
		old = mcb_explain_get(sc->b->explain, s->aliases[i]);
	return old;
}

/* ---- state transitions ---- */

static void mark_done(struct sched *sc, struct mcb_plan_step *s, int ran)
{
	size_t i;

	s->state = MCB_STEP_DONE;
	s->ran = ran;
	if (ran)
		sc->b->nran++;
	else
		sc->b->ncached++;
	if (ran) {
		mcb_explain_set(sc->b->explain, s->label, s->encoding);
		for (i = 0; i < s->naliases; i++)
			mcb_explain_set(sc->b->explain, s->aliases[i], s->encoding);
	}
	for (i = 0; i < s->nusers; i++)
		if (s->users[i]->state == MCB_STEP_WAITING && s->users[i]->nblock > 0)
			s->users[i]->nblock--;
}

static void mark_failed(struct sched *sc, struct mcb_plan_step *s)
{
	size_t i;

	if (s->state == MCB_STEP_FAILED)
		return;
	s->state = MCB_STEP_FAILED;
	for (i = 0; i < s->nusers; i++)
		mark_failed(sc, s->users[i]);
}

static size_t count_producers(const struct mcb_plan_step *s)
{
	size_t i, j, n = 0;

	for (i = 0; i < s->ndeps; i++) {
		if (!s->deps[i].from || s->deps[i].from->state == MCB_STEP_DONE)
			continue;
		for (j = 0; j < i; j++)
			if (s->deps[j].from == s->deps[i].from)
				break;
		n += j == i;
	}
	return n;
}

/* A blob of producer p turned out corrupt (quarantined by the store): run p
 * again, and make its users wait for it. */
static void invalidate(struct sched *sc, struct mcb_plan_step *p)
{
	size_t i;

	if (p->state != MCB_STEP_DONE)
		return;
	if (p->ran)
		sc->b->nran--;
	else
		sc->b->ncached--;
	p->state = MCB_STEP_READY;
	p->encoding = NULL;
	for (i = 0; i < p->nusers; i++) {
		struct mcb_plan_step *u = p->users[i];

		if (u->state == MCB_STEP_DONE || u->state == MCB_STEP_RUNNING)
			continue;
		u->state = MCB_STEP_WAITING;
		u->encoding = NULL;
		u->nblock = count_producers(u);
	}
	sc->total++;
}

/* ---- running a step (child side) ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Store every file the step wrote and then its action entry. */
static int store_outputs(struct mcb_build *b, struct mcb_plan_step *s, struct mcb_arena *a,
			 const char *outdir, const char *log, struct mcb_errctx *e)
{
	struct mcb_action act;
	const char **names;
	struct dirent *d;
	size_t n = 0, i;
	DIR *dir;
	int rc = 0;

	names = mcb_arena_array(a, s->noutputs + 1, sizeof(*names));
	dir = opendir(outdir);
	if (!dir)
		return mcb_errf(e, MCB_EIO, "cannot open '%s':", outdir);
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		for (i = 0; i < s->noutputs; i++)
			if (!strcmp(s->outputs[i], d->d_name))
				break;
		if (i == s->noutputs) {
			rc = mcb_errf(e, MCB_EINTERNAL, "step wrote an unexpected file '%s'",
				      d->d_name);
			break;
		}
		names[n++] = mcb_arena_strdup(a, d->d_name);
	}
	closedir(dir);
	if (rc)
		return rc;
	if (n != s->noutputs)
		return mcb_errf(e, MCB_EINTERNAL, "step wrote %zu of its %zu outputs", n,
				s->noutputs);
	qsort(names, n, sizeof(*names), cmp_str);
	act.out = mcb_arena_array(a, n, sizeof(*act.out));
	act.nout = n;
	act.log = log;
	for (i = 0; i < n && !rc; i++) {
		act.out[i].name = names[i];
		rc = mcb_store_put_file(b->store, mcb_path_join(a, outdir, names[i]),
					&act.out[i].digest, &act.out[i].size, e);
	}
	if (!rc)
		rc = mcb_ac_put(b->store, &s->key, &act, e);
	return rc;
}

static void child_write(int fd, const char *p, size_t n)
{
	(void)mcb_os_write_all(fd, p, n);
}

/*
 * The decompressed content of a cache blob, shared by every step of this
 * build that reads it: a per-layer plan has dozens of steps reading the same
 * model, which is then decompressed and verified once, not once per step.
 * The file is <tmpdir>/blobs-<build pid>/<hex>, written under a temporary
 * name and renamed into place (two steps racing write the same bytes); the
 * build removes the directory when it ends, remove_stale_scratch when a
 * killed build left it.  Steps only read their inputs.
 */
static char *shared_blob(struct mcb_build *b, struct mcb_arena *a, const struct mcb_digest *d,
			 int *rc, struct mcb_errctx *e)
{
	char hex[MCB_HEX_LEN + 1], *path, *tmp;

	mcb_digest_hex(d, hex);
	path = mcb_path_join(a, b->blobdir, hex);
	*rc = 0;
	if (mcb_os_exists(path))
		return path;
	tmp = mcb_arena_printf(a, "%s.tmp-%ld", path, (long)getpid());
	if ((*rc = mcb_os_mkdirs(b->blobdir, e)) ||
	    (*rc = mcb_store_get_file(b->store, d, tmp, e)))
		return path;
	if (rename(tmp, path)) {
		*rc = mcb_errf(e, MCB_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
		unlink(tmp);
	}
	return path;
}

/* Runs in the child process; never returns. */
static void run_child(struct mcb_build *b, struct mcb_plan_step *s, int fd)
{
	struct mcb_step_input *in;
	struct mcb_stepctx ctx;
	struct mcb_buf log = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_arena a;
	char hex[MCB_HEX_LEN + 1], *dir, *outdir;
	int rc = 0, code = EXIT_STEP_FAILED;
	size_t i;

	mcb_arena_init(&a);
	mcb_errclear(&e);
	mcb_digest_hex(&s->key, hex);
	dir = mcb_arena_printf(&a, "%s/%.16s-%ld", b->tmpdir, hex, (long)getpid());
	outdir = mcb_path_join(&a, dir, "out");
	rc = mcb_os_mkdirs(outdir, &e);
	in = mcb_arena_array(&a, s->ndeps + 1, sizeof(*in));
	for (i = 0; i < s->ndeps && !rc; i++) {
		const struct mcb_plan_dep *d = &s->deps[i];

		in[i].name = d->slot;
		in[i].digest = s->in_digest[i];
		in[i].size = s->in_size[i];
		if (!d->from) {
			in[i].path = d->source;
		} else if (s->kind->wants && !s->kind->wants(d->slot)) {
			in[i].path = NULL; /* digest and size are all it needs */
		} else {
			in[i].path = shared_blob(b, &a, &s->in_digest[i], &rc, &e);
			if (rc == MCB_ECORRUPT || rc == MCB_ENOENT) {
				char line[MCB_HEX_LEN + 2];

				mcb_digest_hex(&s->in_digest[i], line);
				line[MCB_HEX_LEN] = '\n';
				child_write(fd, e.msg, strlen(e.msg));
				child_write(fd, "\n", 1);
				child_write(fd, line, MCB_HEX_LEN + 1);
				mcb_os_rmtree(dir, NULL);
				_exit(EXIT_INPUT_CORRUPT);
			}
		}
	}
	if (!rc) {
		memset(&ctx, 0, sizeof(ctx));
		ctx.params = s->params;
		ctx.in = in;
		ctx.nin = s->ndeps;
		ctx.outdir = outdir;
		ctx.scratch = &a;
		ctx.log = &log;
		ctx.e = &e;
		ctx.blas_threads = mcb_os_ncpu() / b->opts.jobs;
		if (ctx.blas_threads < 1)
			ctx.blas_threads = 1;
		mcb_blas_set_threads(ctx.blas_threads);
		rc = s->kind->run(&ctx);
		if (rc && !e.msg[0])
			mcb_errf(&e, rc, "%s", mcb_strerror(rc));
	}
	if (!rc)
		rc = store_outputs(b, s, &a, outdir, mcb_buf_str(&log), &e);
	child_write(fd, mcb_buf_str(&log), log.len);
	if (rc) {
		child_write(fd, e.msg, strlen(e.msg));
		child_write(fd, "\n", 1);
	} else {
		code = 0;
	}
	mcb_os_rmtree(dir, NULL);
	_exit(code);
}

/* ---- running a step (parent side) ---- */

static int start(struct sched *sc, struct mcb_plan_step *s)
{
	struct mcb_build *b = sc->b;
	struct job *j = NULL;
	int fds[2];
	size_t i;
	pid_t pid;

	for (i = 0; i < (size_t)b->opts.jobs; i++)
		if (!sc->jobs[i].pid) {
			j = &sc->jobs[i];
			break;
		}
	if (!j)
		return -1;
	if (s->target) {
		struct mcb_buf check = MCB_BUF_INIT, enc = MCB_BUF_INIT;

		json_decref(s->params);
		s->params = bundle_params(s);
		mcb_json_canonical(s->params, &check);
		bundle_params_enc(s, &enc);
		if (check.len != enc.len || memcmp(check.data, enc.data, enc.len))
			mcb_die("internal error: the provenance of %s encodes differently from its "
				"key",
				s->desc);
		mcb_buf_release(&check);
		mcb_buf_release(&enc);
	}
	if (pipe(fds) < 0) {
		fail(sc, "cannot create a pipe: %s", strerror(errno));
		return -1;
	}
	sc->started++;
	show_status(sc, s->desc);
	sc->last_started = s;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		fail(sc, "cannot fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		run_child(b, s, fds[1]);
	}
	close(fds[1]);
	j->step = s;
	j->index = sc->started;
	j->pid = pid;
	j->fd = fds[0];
	mcb_buf_reset(&j->out);
	s->state = MCB_STEP_RUNNING;
	sc->running++;
	sc->exclusive = s->kind->exclusive;
	return 0;
}

/* The last line of text (without its newline), in place. */
static char *last_line(struct mcb_buf *t)
{
	char *p;

	while (t->len && t->data[t->len - 1] == '\n')
		t->data[--t->len] = '\0';
	if (!t->len)
		return t->data ? t->data : (char *)"";
	p = strrchr(t->data, '\n');
	return p ? p + 1 : t->data;
}

static void finish(struct sched *sc, struct job *j, int status)
{
	struct mcb_plan_step *s = j->step;
	struct mcb_errctx e;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	char *why;

	sc->running--;
	sc->exclusive = 0;
	j->pid = 0;
	mcb_errclear(&e);
	if (code == 0) {
		if (mcb_ac_get(sc->b->store, &s->key, sc->arena, &s->action, &e)) {
			clear_status(sc);
			fprintf(sc->b->out, "FAILED: %s\n", s->desc);
			fail(sc, "%s: its results did not reach the cache: %s", s->desc, e.msg);
			mark_failed(sc, s);
			return;
		}
		if (j->out.len) {
			/* another step started since: say again whose output this is */
			if (sc->last_started != s) {
				clear_status(sc);
				fprintf(sc->b->out, "[%zu/%zu] %s\n", j->index, sc->total, s->desc);
			}
			print_lines(sc, j->out.data, j->out.len);
		}
		mark_done(sc, s, 1);
		return;
	}
	if (code == EXIT_INPUT_CORRUPT) {
		struct mcb_digest d;
		char *hexline = last_line(&j->out);
		size_t i;

		/* the line before the digest is the store's message */
		if (hexline > j->out.data)
			hexline[-1] = '\0';
		warn(sc, "%s; rebuilding", j->out.data);
		if (mcb_digest_parse(hexline, strlen(hexline), &d) == 0) {
			for (i = 0; i < s->ndeps; i++)
				if (s->deps[i].from && mcb_digest_eq(&s->in_digest[i], &d))
					invalidate(sc, s->deps[i].from);
		}
		s->state = MCB_STEP_WAITING;
		s->encoding = NULL;
		s->nblock = count_producers(s);
		sc->total++; /* it runs again */
		return;
	}
	why = last_line(&j->out);
	clear_status(sc);
	fprintf(sc->b->out, "FAILED: %s\n", s->desc);
	if (why > j->out.data)
		print_lines(sc, j->out.data, (size_t)(why - j->out.data));
	if (code < 0) {
		fprintf(sc->b->out, "  killed by signal %d\n", WTERMSIG(status));
		fail(sc, "%s: killed by signal %d", s->desc, WTERMSIG(status));
	} else {
		fprintf(sc->b->out, "  %s\n", why);
		fail(sc, "%s: %s", s->desc, why);
	}
	fflush(sc->b->out);
	mark_failed(sc, s);
}

/* Wait for output or exit of any running child and handle it. */
static void wait_any(struct sched *sc)
{
	struct pollfd *pfd;
	size_t i, n = 0, njobs = (size_t)sc->b->opts.jobs;
	char buf[65536];
	ssize_t r;

	pfd = mcb_xcalloc(njobs, sizeof(*pfd));
	for (i = 0; i < njobs; i++) {
		pfd[i].fd = sc->jobs[i].pid && sc->jobs[i].fd >= 0 ? sc->jobs[i].fd : -1;
		pfd[i].events = POLLIN;
		n += pfd[i].fd >= 0;
	}
	if (n && poll(pfd, njobs, -1) < 0 && errno != EINTR)
		mcb_die("poll: %s", strerror(errno));
	for (i = 0; i < njobs; i++) {
		struct job *j = &sc->jobs[i];
		int status;

		if (!j->pid)
			continue;
		if (j->fd >= 0 && pfd[i].revents) {
			r = read(j->fd, buf, sizeof(buf));
			if (r > 0) {
				mcb_buf_add(&j->out, buf, (size_t)r);
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			close(j->fd);
			j->fd = -1;
		}
		if (j->fd < 0) {
			while (waitpid(j->pid, &status, 0) < 0)
				if (errno != EINTR)
					mcb_die("waitpid: %s", strerror(errno));
			finish(sc, j, status);
		}
	}
	free(pfd);
}

/* ---- installing targets ---- */

struct file {
	const char *name;
	const struct mcb_action_output *out;
	struct mcb_plan_step *producer;
};

/*
 * The verdict of target i's report (read from the store once): 'p' passed or
 * ungated, 'f' failed (sc->failures[i] then holds the failed gates), 0 when
 * the report is not built or its blob turned out bad (then the report step
 * is invalidated to run again).
 */
static char read_verdict(struct sched *sc, size_t i)
{
	const struct mcb_plan_target *pt = &sc->b->plan->targets[i];
	const struct mcb_action_output *o;
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	json_t *r, *f;
	size_t k;
	int rc;

	if (sc->verdict[i] || pt->report->state != MCB_STEP_DONE)
		return sc->verdict[i];
	if (pt->report->action.log) {
		/* the report step logs "FAILED <gate>" for each failed gate and
		 * nothing else: its action entry, already read, says it all
		 * without opening report.json (the no-op rebuild's main cost) */
		const char *l = pt->report->action.log;
		struct mcb_buf lines = MCB_BUF_INIT;

		while (*l) {
			size_t len = strcspn(l, "\n");

			if (len > 7 && !strncmp(l, "FAILED ", 7))
				mcb_buf_printf(&lines, "%.*s\n", (int)(len - 7), l + 7);
			l += len + (l[len] == '\n');
		}
		sc->verdict[i] = lines.len ? 'f' : 'p';
		if (lines.len)
			sc->failures[i] = mcb_arena_strdup(sc->arena, mcb_buf_str(&lines));
		mcb_buf_release(&lines);
		return sc->verdict[i];
	}
	o = output_of(pt->report, "report.json");
	rc = o ? mcb_store_get_mem(sc->b->store, &o->digest, &b, &e) : MCB_ENOENT;
	if (rc == MCB_ECORRUPT || rc == MCB_ENOENT) {
		if (rc == MCB_ECORRUPT)
			warn(sc, "%s; rebuilding", e.msg);
		invalidate(sc, pt->report);
		mcb_buf_release(&b);
		return 0;
	}
	r = rc ? NULL : mcb_json_parse(b.data, b.len, "report.json", &e);
	mcb_buf_release(&b);
	sc->verdict[i] = 'p';
	if (r && !strcmp(mcb_param_str(r, "verdict", ""), "failed")) {
		struct mcb_buf lines = MCB_BUF_INIT;

		json_array_foreach (json_object_get(r, "failures"), k, f)
			mcb_buf_printf(&lines, "%s\n", json_string_value(f));
		sc->failures[i] = mcb_arena_strdup(sc->arena, mcb_buf_str(&lines));
		mcb_buf_release(&lines);
		sc->verdict[i] = 'f';
	}
	json_decref(r);
	return sc->verdict[i];
}

/* The files of target pt: the exported model (unless its quality gate
 * failed: then only the evidence), its reports and its manifest. */
static size_t gate_files(const struct mcb_plan_target *pt, int failed, struct file *f)
{
	size_t n = 0, i;

	if (!failed)
		for (i = 0; i < pt->exp->action.nout; i++)
			f[n++] = (struct file){pt->exp->action.out[i].name,
					       &pt->exp->action.out[i], pt->exp};
	for (i = 0; i < pt->report->action.nout; i++)
		f[n++] = (struct file){pt->report->action.out[i].name, &pt->report->action.out[i],
				       pt->report};
	for (i = 0; i < pt->bundle->action.nout; i++)
		f[n++] = (struct file){pt->bundle->action.out[i].name, &pt->bundle->action.out[i],
				       pt->bundle};
	return n;
}

static size_t target_files(struct sched *sc, size_t ti, struct file *f)
{
	return gate_files(&sc->b->plan->targets[ti], read_verdict(sc, ti) == 'f', f);
}

/* Are target i's steps all built (so that it can be installed)? */
static int target_built(const struct mcb_plan_target *pt)
{
	return pt->bundle->state == MCB_STEP_DONE && pt->exp->state == MCB_STEP_DONE &&
	       pt->report->state == MCB_STEP_DONE;
}

/* Is the installed target identical to what the build produced?  *why says
 * what differs when not. */
static int target_uptodate(struct sched *sc, const char *dir, struct file *f, size_t n,
			   struct mcb_arena *a, const char **why)
{
	struct mcb_digest d;
	struct mcb_errctx e;
	uint64_t size;
	size_t i;

	for (i = 0; i < n; i++) {
		const char *path = mcb_path_join(a, dir, f[i].name);
		int rc = mcb_statcache_digest(sc->b->stat, path, &d, &size, &e);

		if (rc == MCB_ENOENT) {
			*why = mcb_arena_printf(a, "%s is missing", f[i].name);
			return 0;
		}
		if (rc) {
			*why = mcb_arena_printf(a, "%s cannot be read", f[i].name);
			return 0;
		}
		if (!mcb_digest_eq(&d, &f[i].out->digest)) {
			*why = mcb_arena_printf(a, "%s differs from the build result", f[i].name);
			return 0;
		}
	}
	return 1;
}

/*
 * Install target pt: write its files into a temporary sibling directory,
 * fsync, then swap it in (rename, or an atomic exchange with the old
 * directory).  A failure leaves the old target untouched.  Returns 0, 1 when
 * a blob was corrupt (its producer has been invalidated), or -1 on failure.
 */
static int install(struct sched *sc, size_t ti)
{
	const struct mcb_plan_target *pt = &sc->b->plan->targets[ti];
	struct mcb_build *b = sc->b;
	struct file files[16];
	struct mcb_arena a;
	struct mcb_errctx e;
	const char *why = NULL, *dir, *parent, *tmp, *base;
	size_t n, i;
	int rc = 0;

	mcb_arena_init(&a);
	mcb_errclear(&e);
	n = target_files(sc, ti, files);
	dir = mcb_path_join(&a, b->root, pt->target->path);
	if (target_uptodate(sc, dir, files, n, &a, &why)) {
		b->nuptodate++;
		b->outcome[ti] = 'u';
		if (sc->total > sc->started)
			sc->total--; /* counted as work, but the build changed nothing */
		mcb_arena_release(&a);
		return 0;
	}
	explain(sc, pt->target->path, why);
	sc->started++;
	if (sc->started > sc->total)
		sc->total = sc->started;
	show_status(sc, mcb_arena_printf(&a, "install %s", pt->target->path));
	parent = mcb_path_dir(&a, dir);
	base = strrchr(dir, '/') + 1;
	tmp = mcb_arena_printf(&a, "%s/.%s.tmp.%ld", parent, base, (long)getpid());
	rc = mcb_os_mkdirs(parent, &e);
	if (!rc)
		rc = mcb_os_rmtree(tmp, &e);
	if (!rc)
		rc = mcb_os_mkdirs(tmp, &e);
	for (i = 0; i < n && !rc; i++) {
		rc = mcb_store_get_file(b->store, &files[i].out->digest,
					mcb_path_join(&a, tmp, files[i].name), &e);
		if (rc == MCB_ECORRUPT || rc == MCB_ENOENT) {
			warn(sc, "%s; rebuilding", e.msg);
			invalidate(sc, files[i].producer);
			mcb_os_rmtree(tmp, NULL);
			mcb_arena_release(&a);
			return 1;
		}
	}
	if (!rc)
		rc = mcb_os_fsync_dir(tmp, &e);
	if (!rc) {
		if (mcb_os_isdir(dir)) {
			rc = mcb_os_exchange(tmp, dir, &e);
			if (!rc)
				rc = mcb_os_rmtree(tmp, &e);
		} else if (rename(tmp, dir) < 0) {
			rc = mcb_errf(&e, MCB_EIO, "cannot rename '%s' to '%s':", tmp, dir);
		}
	}
	if (!rc)
		rc = mcb_os_fsync_dir(parent, &e);
	if (rc) {
		mcb_os_rmtree(tmp, NULL);
		clear_status(sc);
		fprintf(b->out, "FAILED: install %s\n  %s\n", pt->target->path, e.msg);
		fail(sc, "install %s: %s", pt->target->path, e.msg);
		mcb_arena_release(&a);
		return -1;
	}
	b->ninstalled++;
	b->outcome[ti] = 'i';
	mcb_arena_release(&a);
	return 0;
}

/*
 * Remove scratch directories ("<key>-<pid>") whose process is gone: a build
 * killed by a signal leaves its steps' scratch behind.  Others' are left to
 * them (several mcbuild processes may share a workspace).
 */
static void remove_stale_scratch(const char *tmpdir)
{
	struct dirent *d;
	DIR *dir = opendir(tmpdir);

	if (!dir)
		return;
	while ((d = readdir(dir))) {
		const char *dash = strrchr(d->d_name, '-');
		char *end;
		long pid;

		if (!dash || d->d_name[0] == '.')
			continue;
		pid = strtol(dash + 1, &end, 10);
		if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		{
			struct mcb_buf path = MCB_BUF_INIT;

			mcb_buf_printf(&path, "%s/%s", tmpdir, d->d_name);
			(void)mcb_os_rmtree(path.data, NULL);
			mcb_buf_release(&path);
		}
	}
	closedir(dir);
}

/* ---- the loop ---- */

/*
 * Handle every step whose producers are done, in plan (topological) order:
 * compute its key and look it up once; hits finish at once, misses start
 * while job slots are free (a miss waiting for a slot keeps its key).  With
 * no_start, only look up.  Returns 1 if anything changed.
 */
static int advance(struct sched *sc, int no_start)
{
	struct mcb_plan *p = sc->b->plan;
	int changed = 0;
	size_t i;

	for (i = 0; i < p->nsteps && !sc->stop; i++) {
		struct mcb_plan_step *s = p->steps[i];

		if (s->state == MCB_STEP_WAITING && s->nblock == 0)
			s->state = MCB_STEP_READY;
		if (s->state != MCB_STEP_READY)
			continue;
		if (!s->encoding) {
			if (compute_key(sc, s)) {
				mark_failed(sc, s);
				changed = 1;
				continue;
			}
			if (lookup(sc, s)) {
				mark_done(sc, s, 0);
				if (sc->total)
					sc->total--;
				changed = 1;
				continue;
			}
			keep_encoding(sc, s);
			if (sc->b->opts.explain) {
				struct mcb_buf why = MCB_BUF_INIT;

				mcb_explain_why(previous(sc, s), s->encoding,
						s->target ? derived : NULL, &why);
				explain(sc, s->desc, why.data);
				mcb_buf_release(&why);
			}
		}
		if (no_start || sc->running >= (size_t)sc->b->opts.jobs || sc->exclusive ||
		    (s->kind->exclusive && sc->running))
			continue;
		if (start(sc, s) == 0)
			changed = 1;
	}
	return changed;
}

/* -n: walk the plan once; steps whose inputs are known are looked up, the
 * rest would run; then print what would run, as a build would. */
static void dry_run(struct sched *sc)
{
	struct mcb_plan *p = sc->b->plan;
	const char **why_install;
	size_t i, j;

	for (i = 0; i < p->nsteps; i++) {
		struct mcb_plan_step *s = p->steps[i];
		int known = 1;

		for (j = 0; j < s->ndeps; j++)
			if (s->deps[j].from && s->deps[j].from->state != MCB_STEP_DONE)
				known = 0;
		if (known && compute_key(sc, s) == 0) {
			if (lookup(sc, s)) {
				mark_done(sc, s, 0);
				continue;
			}
			keep_encoding(sc, s);
		}
		s->state = MCB_STEP_DRY;
		sc->total++;
	}
	why_install = mcb_arena_array(sc->arena, p->ntargets + 1, sizeof(*why_install));
	for (i = 0; i < p->ntargets; i++) {
		const struct mcb_plan_target *pt = &p->targets[i];
		struct file files[16];

		if (!target_built(pt))
			why_install[i] = "its steps will run";
		else if (target_uptodate(
				 sc, mcb_path_join(sc->arena, sc->b->root, pt->target->path), files,
				 target_files(sc, i, files), sc->arena, &why_install[i]))
			why_install[i] = NULL;
		sc->total += why_install[i] != NULL;
	}
	for (i = 0; i < p->nsteps; i++) {
		struct mcb_plan_step *s = p->steps[i];

		if (s->state != MCB_STEP_DRY)
			continue;
		if (sc->b->opts.explain) {
			struct mcb_buf why = MCB_BUF_INIT;

			if (s->encoding)
				mcb_explain_why(previous(sc, s), s->encoding,
						s->target ? derived : NULL, &why);
			else
				mcb_buf_adds(&why, "an input is produced by a step that will run");
			explain(sc, s->desc, why.data);
			mcb_buf_release(&why);
		}
		sc->started++;
		show_status(sc, s->desc);
	}
	for (i = 0; i < p->ntargets; i++) {
		if (!why_install[i])
			continue;
		explain(sc, p->targets[i].target->path, why_install[i]);
		sc->started++;
		show_status(sc,
			    mcb_arena_printf(sc->arena, "install %s", p->targets[i].target->path));
	}
	sc->b->nwould = sc->started;
}

int mcb_build_run(struct mcb_build *b, struct mcb_errctx *e)
{
	struct mcb_plan *p = b->plan;
	struct sched sc;
	size_t i;
	int tries, again, rc = 0;

	memset(&sc, 0, sizeof(sc));
	sc.b = b;
	sc.verdict = mcb_arena_alloc(b->arena, p->ntargets + 1);
	sc.failures = mcb_arena_array(b->arena, p->ntargets + 1, sizeof(*sc.failures));
	b->outcome = mcb_arena_alloc(b->arena, p->ntargets + 1);
	b->verdict = sc.verdict;
	b->gate_failures = sc.failures;
	sc.arena = b->arena;
	if (b->opts.jobs < 1)
		b->opts.jobs = 1;
	for (i = 0; i < p->nsteps; i++) {
		struct mcb_plan_step *s = p->steps[i];

		s->state = MCB_STEP_WAITING;
		s->nblock = count_producers(s);
	}
	if (b->opts.dry_run) {
		dry_run(&sc);
		goto out;
	}
	remove_stale_scratch(b->tmpdir);
	b->blobdir = mcb_arena_printf(b->arena, "%s/blobs-%ld", b->tmpdir, (long)getpid());
	sc.jobs = mcb_xcalloc((size_t)b->opts.jobs, sizeof(*sc.jobs));
	/* Count as work every step that the cache cannot answer now. */
	sc.total = p->nsteps;
	advance(&sc, 1);
	/* and every target that is not installed as the cache says it should be */
	sc.current = mcb_xcalloc(p->ntargets + 1, 1);
	for (i = 0; i < p->ntargets; i++) {
		const struct mcb_plan_target *pt = &p->targets[i];
		struct file files[16];
		const char *why;

		if (target_built(pt) &&
		    target_uptodate(&sc, mcb_path_join(sc.arena, b->root, pt->target->path), files,
				    target_files(&sc, i, files), sc.arena, &why)) {
			sc.current[i] = 1;
			b->nuptodate++;
			b->outcome[i] = 'u';
		} else {
			sc.total++;
		}
	}
	for (tries = 0; tries < MAX_RETRIES; tries++) {
		for (;;) {
			int changed = advance(&sc, 0);

			if (!sc.running) {
				if (!changed)
					break;
				continue;
			}
			wait_any(&sc);
		}
		again = 0;
		for (i = 0; i < p->ntargets && !sc.stop; i++) {
			const struct mcb_plan_target *pt = &p->targets[i];

			if (sc.current[i] || !target_built(pt))
				continue;
			rc = install(&sc, i);
			if (rc == 0)
				sc.current[i] = 1;
			if (rc == 1)
				again = 1;
		}
		if (!again)
			break;
	}
	/* A target whose quality gate failed keeps its evidence (reports and
	 * manifest, installed above) and fails the build, every time. */
	for (i = 0; i < p->ntargets; i++) {
		if (sc.verdict[i] != 'f')
			continue;
		clear_status(&sc);
		fprintf(b->out, "FAILED: quality gate of %s\n", p->targets[i].target->path);
		print_lines(&sc, sc.failures[i], strlen(sc.failures[i]));
		b->nfailed++;
		if (!b->failure[0]) {
			size_t len = strcspn(sc.failures[i], "\n");

			snprintf(b->failure, sizeof(b->failure), "%s: quality gate failed: %.*s",
				 p->targets[i].target->path, (int)len, sc.failures[i]);
		}
	}
	clear_status(&sc);
	for (i = 0; i < (size_t)b->opts.jobs; i++)
		mcb_buf_release(&sc.jobs[i].out);
	free(sc.jobs);
	free(sc.current);
	if (mcb_os_exists(b->blobdir))
		(void)mcb_os_rmtree(b->blobdir, NULL);
out:
	mcb_buf_release(&sc.enc);
	if (b->opts.tty && sc.started)
		fputc('\n', b->out), sc.status_shown = 0;
	fflush(b->out);
	(void)e;
	if (b->nfailed)
		return MCB_ESTEP;
	for (i = 0; i < p->ntargets; i++)
		if (p->targets[i].bundle->state != MCB_STEP_DONE && !b->opts.dry_run) {
			if (!b->failure[0])
				snprintf(b->failure, sizeof(b->failure), "target %s was not built",
					 p->targets[i].target->path);
			return MCB_ESTEP;
		}
	return rc < 0 ? MCB_ESTEP : 0;
}

void mcb_build_evidence(struct mcb_build *b, void (*add)(void *ctx, const char *path), void *ctx)
{
	const struct mcb_plan *p = b->plan;
	struct mcb_arena a;
	struct file files[16];
	size_t i, j, n;

	mcb_arena_init(&a);
	for (i = 0; i < p->nsteps; i++) {
		const struct mcb_plan_step *s = p->steps[i];

		for (j = 0; j < s->ndeps; j++)
			if (!s->deps[j].from)
				add(ctx, s->deps[j].source);
		add(ctx, mcb_ac_path(b->store, &s->key, &a));
		for (j = 0; j < s->action.nout; j++)
			add(ctx, mcb_store_blob_path(b->store, &s->action.out[j].digest));
	}
	for (i = 0; i < p->ntargets; i++) {
		const char *dir = mcb_path_join(&a, b->root, p->targets[i].target->path);

		n = gate_files(&p->targets[i], 0, files);
		for (j = 0; j < n; j++)
			add(ctx, mcb_path_join(&a, dir, files[j].name));
	}
	add(ctx, b->tmpdir);
	mcb_arena_release(&a);
}
