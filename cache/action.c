/*
 * action: the action cache (include/mcb/action.h).
 *
 * An entry is the file ac/ab/<62 hex> of the cache directory (layout in
 * cache/store.c), named by the step's action key, written by mcb_ac_put with
 * mcb_os_write_atomic (temporary file in the same directory, fsync, rename,
 * fsync of the directory), mode 0444.  Format version 1, as bytes:
 *
 *   mcbuild-action 1\n
 *   key <64 hex>\n                    the action key: equals the file's name
 *   output <name> <64 hex> <size>\n   0 to MCB_ACTION_MAX_OUTPUTS lines, in the
 *                                     order given to mcb_ac_put
 *   log <length>\n
 *   <length bytes>\n                  the step's log, then one newline
 *   sha256 <64 hex>\n                 SHA-256 of every byte before this line
 *
 * Fields are separated by exactly one space; hex is lowercase.
 *   name    1..255 bytes of [A-Za-z0-9._-], not "." or "..", unique in the entry
 *   <64 hex> the output's blob digest (cas/ab/<62 hex> in the store)
 *   size    decimal, no sign, no leading zero, at most MCB_STORE_MAX_BLOB
 *   length  decimal as size, at most LOG_MAX (16 MiB); the log has no NUL byte
 * Nothing follows the sha256 line.  A reader accepts exactly this and
 * nothing else: anything else is a corrupt entry (moved to quarantine/ and
 * read as a miss), except a well-formed first line naming another version,
 * which is a miss that leaves the file alone (the rebuilt step overwrites it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/action.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/store.h"

#define AC_VERSION 1
#define NAME_MAX_LEN 255
#define LOG_MAX ((size_t)16 << 20)
/* Bound on an entry's size: header and key lines, the outputs, the log. */
#define ENTRY_MAX (4096 + (size_t)MCB_ACTION_MAX_OUTPUTS * (NAME_MAX_LEN + 96) + LOG_MAX)

/* A read position in an entry's bytes. */
struct cur {
	const char *p;   /* next byte */
	const char *end; /* one past the last byte */
};

static char *entry_path(struct mcb_arena *a, struct mcb_store *s, const struct mcb_digest *key,
			char *hex)
{
	mcb_digest_hex(key, hex);
	return mcb_arena_printf(a, "%s/ac/%.2s/%s", mcb_store_dir(s), hex, hex + 2);
}

char *mcb_ac_path(struct mcb_store *s, const struct mcb_digest *key, struct mcb_arena *a)
{
	char hex[MCB_HEX_LEN + 1];

	return entry_path(a, s, key, hex);
}

/* 1 when name[0..n) is a valid output name. */
static int name_ok(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > NAME_MAX_LEN)
		return 0;
	if ((n == 1 && name[0] == '.') || (n == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first name that occurs twice among out[0..n), or NULL. */
static const char *find_duplicate(const struct mcb_action_output *out, size_t n)
{
	const char **names, *dup = NULL;
	size_t i;

	if (n < 2)
		return NULL;
	names = mcb_xcalloc(n, sizeof(*names));
	for (i = 0; i < n; i++)
		names[i] = out[i].name;
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 1; i < n && !dup; i++)
		if (!strcmp(names[i - 1], names[i]))
			dup = names[i];
	free(names);
	return dup;
}

/* Parse decimal [p, p+n) strictly (no sign, no leading zero) into *v <= max. */
static int parse_dec(const char *p, size_t n, uint64_t max, uint64_t *v)
{
	uint64_t x;

	if (mcb_parse_dec(p, n, 0, &x, NULL) < 0 || x > max)
		return -1;
	*v = x;
	return 0;
}

/* Take the next line (without its '\n') from c; -1 when no '\n' remains. */
static int take_line(struct cur *c, const char **line, size_t *len)
{
	const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));

	if (!nl)
		return -1;
	*line = c->p;
	*len = (size_t)(nl - c->p);
	c->p = nl + 1;
	return 0;
}

/* 1 when line[0..n) starts with the word w followed by a space. */
static int starts(const char *line, size_t n, const char *w)
{
	size_t k = strlen(w);

	return n > k && !memcmp(line, w, k) && line[k] == ' ';
}

/*
 * Parse the entry text [p, p+n) for key into out (strings in a).  Returns 0,
 * or -1 with the reason in why.  Does not look at the store.
 */
static int parse_entry(const char *p, size_t n, const struct mcb_digest *key,
		       struct mcb_arena *a, struct mcb_action *out, char *why, size_t nwhy)
{
	struct mcb_digest dg;
	struct cur c;
	const char *line, *sp1, *sp2, *bad;
	long body;
	size_t len, cap = 0;
	uint64_t v;

	/* The checksum line ends the text and covers all before it. */
	body = mcb_sum_line_check(p, n, &bad);
	if (body < 0) {
		snprintf(why, nwhy, "%s", bad);
		return -1;
	}
	c.p = p;
	c.end = p + body;
	if (take_line(&c, &line, &len) < 0 || len != 16 || memcmp(line, "mcbuild-action 1", 16)) {
		snprintf(why, nwhy, "bad header line");
		return -1;
	}
	if (take_line(&c, &line, &len) < 0 || len != 4 + MCB_HEX_LEN || !starts(line, len, "key") ||
	    mcb_digest_parse(line + 4, MCB_HEX_LEN, &dg) < 0) {
		snprintf(why, nwhy, "bad key line");
		return -1;
	}
	if (!mcb_digest_eq(&dg, key)) {
		snprintf(why, nwhy, "it records another action key");
		return -1;
	}
	out->nout = 0;
	out->out = NULL;
	for (;;) {
		if (take_line(&c, &line, &len) < 0) {
			snprintf(why, nwhy, "no log line");
			return -1;
		}
		if (!starts(line, len, "output"))
			break;
		if (out->nout == MCB_ACTION_MAX_OUTPUTS) {
			snprintf(why, nwhy, "more than %d outputs", MCB_ACTION_MAX_OUTPUTS);
			return -1;
		}
		/* output <name> <64 hex> <size> */
		line += 7;
		len -= 7;
		sp1 = memchr(line, ' ', len);
		if (!sp1 || !name_ok(line, (size_t)(sp1 - line))) {
			snprintf(why, nwhy, "bad output name in line %zu", out->nout + 3);
			return -1;
		}
		if ((size_t)(line + len - sp1) < 1 + MCB_HEX_LEN + 1 ||
		    mcb_digest_parse(sp1 + 1, MCB_HEX_LEN, &dg) < 0 || sp1[1 + MCB_HEX_LEN] != ' ') {
			snprintf(why, nwhy, "bad output digest in line %zu", out->nout + 3);
			return -1;
		}
		sp2 = sp1 + 1 + MCB_HEX_LEN;
		if (parse_dec(sp2 + 1, (size_t)(line + len - sp2 - 1), MCB_STORE_MAX_BLOB, &v) < 0) {
			snprintf(why, nwhy, "bad output size in line %zu", out->nout + 3);
			return -1;
		}
		if (out->nout == cap) {
			struct mcb_action_output *grown;

			cap = cap ? 2 * cap : 8;
			grown = mcb_arena_array(a, cap, sizeof(*grown));
			if (out->nout)
				memcpy(grown, out->out, out->nout * sizeof(*grown));
			out->out = grown;
		}
		out->out[out->nout].name = mcb_arena_strndup(a, line, (size_t)(sp1 - line));
		out->out[out->nout].digest = dg;
		out->out[out->nout].size = v;
		out->nout++;
	}
	if (!starts(line, len, "log") || parse_dec(line + 4, len - 4, LOG_MAX, &v) < 0) {
		snprintf(why, nwhy, "bad log line");
		return -1;
	}
	if ((uint64_t)(c.end - c.p) != v + 1 || c.end[-1] != '\n') {
		snprintf(why, nwhy, "log length %llu disagrees with the entry's size",
			 (unsigned long long)v);
		return -1;
	}
	if (memchr(c.p, '\0', (size_t)v)) {
		snprintf(why, nwhy, "NUL byte in the log");
		return -1;
	}
	out->log = mcb_arena_strndup(a, c.p, (size_t)v);
	line = find_duplicate(out->out, out->nout);
	if (line) {
		snprintf(why, nwhy, "output '%s' is listed twice", line);
		return -1;
	}
	return 0;
}

/* Version number of a first line "mcbuild-action N" other than ours, or 0. */
static unsigned long long other_version(const char *p, size_t n)
{
	const char *nl = memchr(p, '\n', n);
	uint64_t v;

	if (!nl || (size_t)(nl - p) < 16 || memcmp(p, "mcbuild-action ", 15))
		return 0;
	if (parse_dec(p + 15, (size_t)(nl - p - 15), UINT64_MAX, &v) < 0 || v == AC_VERSION)
		return 0;
	return v;
}

/*
 * Look up the entry for key.  On success fills *out (arrays and strings in
 * a) and returns 0.  MCB_ENOENT: no entry, or one of its output blobs is not
 * in the store (a miss; the entry is left for the rebuilt step to replace).
 * MCB_ECORRUPT: the entry is malformed (it has been quarantined) or of
 * another format version (left alone); the message suits a warning.
 * MCB_EIO: the entry could not be read.  *out is empty on failure.
 */
int mcb_ac_get(struct mcb_store *s, const struct mcb_digest *key, struct mcb_arena *a,
	       struct mcb_action *out, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT, note = MCB_BUF_INIT;
	struct mcb_arena tmp;
	struct mcb_stat st;
	char hex[MCB_HEX_LEN + 1], why[256];
	unsigned long long ver;
	char *path;
	size_t i;
	int rc;

	out->out = NULL;
	out->nout = 0;
	out->log = "";
	mcb_arena_init(&tmp);
	path = entry_path(&tmp, s, key, hex);
	rc = mcb_os_read_regular(path, ENTRY_MAX, &b, &st, e);
	if (rc == MCB_ENOENT) {
		rc = mcb_errf(e, MCB_ENOENT, "no action entry ac/%.2s/%s", hex, hex + 2);
		goto out;
	}
	if (rc == MCB_EFORMAT || rc == MCB_ERANGE) {
		if (rc == MCB_EFORMAT)
			snprintf(why, sizeof(why), "not a regular file");
		else
			snprintf(why, sizeof(why), "larger than %zu bytes", (size_t)ENTRY_MAX);
		goto corrupt;
	}
	if (rc)
		goto out;
	ver = other_version(b.data, b.len);
	if (ver) {
		rc = mcb_errf(e, MCB_ECORRUPT,
			      "action entry ac/%.2s/%s has format version %llu; this mcbuild reads "
			      "version %d (treated as a miss)", hex, hex + 2, ver, AC_VERSION);
		goto out;
	}
	if (parse_entry(b.data, b.len, key, a, out, why, sizeof(why)) < 0)
		goto corrupt;
	for (i = 0; i < out->nout; i++) {
		if (!mcb_store_has(s, &out->out[i].digest)) {
			char bh[MCB_HEX_LEN + 1];

			mcb_digest_hex(&out->out[i].digest, bh);
			rc = mcb_errf(e, MCB_ENOENT,
				      "action entry ac/%.2s/%s: output '%s' blob cas/%.2s/%s is missing",
				      hex, hex + 2, out->out[i].name, bh, bh + 2);
			goto out;
		}
	}
	rc = 0;
	goto out;
corrupt:
	mcb_store_quarantine(s, "ac", key, &st, &note);
	rc = mcb_errf(e, MCB_ECORRUPT, "action entry ac/%.2s/%s is corrupt (%s); %s", hex, hex + 2,
		      why, mcb_buf_str(&note));
out:
	if (rc) {
		out->out = NULL;
		out->nout = 0;
		out->log = "";
	}
	mcb_buf_release(&note);
	mcb_buf_release(&b);
	mcb_arena_release(&tmp);
	return rc;
}

/*
 * Record act as the result of action key, replacing any entry.  Call only
 * after the step succeeded: every output blob must already be in the store
 * (else MCB_ENOENT).  MCB_EINVAL for a bad or duplicate output name or too
 * many outputs, MCB_ERANGE for a size or log beyond the limits, MCB_EIO.
 */
int mcb_ac_put(struct mcb_store *s, const struct mcb_digest *key, const struct mcb_action *act,
	       struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_arena a;
	char hex[MCB_HEX_LEN + 1], oh[MCB_HEX_LEN + 1];
	const char *log = act->log ? act->log : "", *dup;
	char *path, *slash;
	size_t i, nlog = strlen(log);
	int rc;

	if (act->nout > MCB_ACTION_MAX_OUTPUTS)
		return mcb_errf(e, MCB_EINVAL, "a step may have at most %d outputs, not %zu",
				MCB_ACTION_MAX_OUTPUTS, act->nout);
	if (nlog > LOG_MAX)
		return mcb_errf(e, MCB_ERANGE, "step log of %zu bytes is over the %zu-byte limit",
				nlog, LOG_MAX);
	for (i = 0; i < act->nout; i++) {
		const struct mcb_action_output *o = &act->out[i];

		if (!o->name || !name_ok(o->name, strlen(o->name)))
			return mcb_errf(e, MCB_EINVAL, "bad output name '%s' (want [A-Za-z0-9._-]+)",
					o->name ? o->name : "(null)");
		if (o->size > MCB_STORE_MAX_BLOB)
			return mcb_errf(e, MCB_ERANGE, "output '%s' is larger than %llu bytes",
					o->name, (unsigned long long)MCB_STORE_MAX_BLOB);
		if (!mcb_store_has(s, &o->digest)) {
			mcb_digest_hex(&o->digest, oh);
			return mcb_errf(e, MCB_ENOENT,
					"cannot record the action: output '%s' blob cas/%.2s/%s is not "
					"in the store", o->name, oh, oh + 2);
		}
	}
	dup = find_duplicate(act->out, act->nout);
	if (dup)
		return mcb_errf(e, MCB_EINVAL, "output '%s' is listed twice", dup);
	mcb_arena_init(&a);
	path = entry_path(&a, s, key, hex);
	mcb_buf_printf(&b, "mcbuild-action %d\nkey %s\n", AC_VERSION, hex);
	for (i = 0; i < act->nout; i++) {
		mcb_digest_hex(&act->out[i].digest, oh);
		mcb_buf_printf(&b, "output %s %s %llu\n", act->out[i].name, oh,
			       (unsigned long long)act->out[i].size);
	}
	mcb_buf_printf(&b, "log %zu\n", nlog);
	mcb_buf_add(&b, log, nlog);
	mcb_buf_addc(&b, '\n');
	mcb_sum_line_add(&b);
	slash = strrchr(path, '/');
	*slash = '\0';
	rc = mcb_os_mkdirs(path, e);
	*slash = '/';
	if (!rc)
		rc = mcb_os_write_atomic(path, b.data, b.len, 0444, e);
	mcb_buf_release(&b);
	mcb_arena_release(&a);
	return rc;
}
