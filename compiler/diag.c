/* diag: accumulated diagnostics and did-you-mean (diag.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/err.h"

#define DEFAULT_MAX 1000

void mcb_diags_init(struct mcb_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void mcb_diags_release(struct mcb_diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static size_t nreported(const struct mcb_diags *d)
{
	return d->max ? d->max : DEFAULT_MAX;
}

static void add(struct mcb_diags *d, const struct mcb_loc *loc, enum mcb_severity sev,
		const char *fmt, va_list ap)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_diag *g;
	/* seq counts every diagnostic ever reported, recorded or not. */
	size_t seq = d->n;

	if (sev == MCB_SEV_ERROR)
		d->nerr++;
	else if (sev == MCB_SEV_WARNING)
		d->nwarn++;
	if (d->n >= nreported(d))
		return;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = mcb_xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	mcb_buf_vprintf(&b, fmt, ap);
	g = &d->v[d->n++];
	if (loc) {
		g->loc = *loc;
	} else {
		g->loc.file = NULL;
		g->loc.line = g->loc.col = 0;
	}
	g->sev = sev;
	g->msg = mcb_buf_detach(&b, NULL);
	g->seq = seq;
}

void mcb_diag_error(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add(d, loc, MCB_SEV_ERROR, fmt, ap);
	va_end(ap);
}

void mcb_diag_warn(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add(d, loc, MCB_SEV_WARNING, fmt, ap);
	va_end(ap);
}

void mcb_diag_note(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add(d, loc, MCB_SEV_NOTE, fmt, ap);
	va_end(ap);
}

/* Order by position; diagnostics without a file sort after every positioned one. */
static int loc_cmp_pos(const struct mcb_diag *a, const struct mcb_diag *b)
{
	int c;

	if (!a->loc.file != !b->loc.file)
		return a->loc.file ? -1 : 1;
	if (a->loc.file && (c = strcmp(a->loc.file, b->loc.file)))
		return c;
	if (a->loc.line != b->loc.line)
		return a->loc.line < b->loc.line ? -1 : 1;
	if (a->loc.col != b->loc.col)
		return a->loc.col < b->loc.col ? -1 : 1;
	return 0;
}

static int loc_cmp(const struct mcb_diag *a, const struct mcb_diag *b)
{
	int c = loc_cmp_pos(a, b);

	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int lead_cmp(const void *x, const void *y)
{
	return loc_cmp(*(const struct mcb_diag *const *)x, *(const struct mcb_diag *const *)y);
}

static void print_one(const struct mcb_diag *g, FILE *f)
{
	static const char *const sev[] = {"error", "warning", "note"};

	if (!g->loc.file)
		fprintf(f, "mcbuild: %s: %s\n", sev[g->sev], g->msg);
	else if (g->loc.line <= 0)
		fprintf(f, "%s: %s: %s\n", g->loc.file, sev[g->sev], g->msg);
	else if (g->loc.col <= 0)
		fprintf(f, "%s:%d: %s: %s\n", g->loc.file, g->loc.line, sev[g->sev], g->msg);
	else
		fprintf(f, "%s:%d:%d: %s: %s\n", g->loc.file, g->loc.line, g->loc.col, sev[g->sev],
			g->msg);
}

static int same(const struct mcb_diag *a, const struct mcb_diag *b)
{
	return a->sev == b->sev && a->loc.line == b->loc.line && a->loc.col == b->loc.col &&
	       !a->loc.file == !b->loc.file &&
	       (!a->loc.file || !strcmp(a->loc.file, b->loc.file)) && !strcmp(a->msg, b->msg);
}

/*
 * Errors and warnings ("leads") are sorted; each note stays with the lead
 * reported before it.  A lead identical to an earlier one at the same
 * position (same severity and text, as when an aliased YAML subtree is
 * checked twice, or a request re-resolves a target whose errors the load
 * already reported) is printed once, with its notes.
 */
void mcb_diags_print(const struct mcb_diags *d, FILE *f)
{
	const struct mcb_diag **leads;
	size_t i, j, group, nleads = 0, recorded = 0, total = d->nerr + d->nwarn;
	int have_lead = 0;

	leads = mcb_xcalloc(d->n ? d->n : 1, sizeof(*leads));
	for (i = 0; i < d->n; i++) {
		if (d->v[i].sev != MCB_SEV_NOTE) {
			leads[nleads++] = &d->v[i];
			recorded++;
			have_lead = 1;
		} else if (!have_lead) {
			leads[nleads++] = &d->v[i]; /* a note with no lead before it stands alone */
		}
	}
	if (nleads > 1)
		qsort(leads, nleads, sizeof(*leads), lead_cmp);
	for (i = group = 0; i < nleads; i++) {
		int dup = 0;

		if (i && (loc_cmp_pos(leads[group], leads[i]) != 0))
			group = i;
		for (j = group; j < i && !dup; j++)
			dup = same(leads[j], leads[i]);
		if (!dup)
			print_one(leads[i], f);
		if (leads[i]->sev == MCB_SEV_NOTE)
			continue;
		for (j = (size_t)(leads[i] - d->v) + 1; j < d->n && d->v[j].sev == MCB_SEV_NOTE;
		     j++)
			if (!dup)
				print_one(&d->v[j], f);
	}
	if (total > recorded)
		fprintf(f, "mcbuild: note: %zu more errors and warnings not shown\n",
			total - recorded);
	free(leads);
}

/*
 * Optimal string alignment distance between a (n bytes) and b (m bytes),
 * giving up (returning limit + 1) once every cell of a row exceeds limit.
 * rows holds 3 * (m + 1) cells.
 */
static size_t osa(const char *a, size_t n, const char *b, size_t m, size_t limit, size_t *rows)
{
	size_t *prev2 = rows, *prev = rows + m + 1, *cur = rows + 2 * (m + 1), *t, i, j, best, d;

	for (j = 0; j <= m; j++)
		prev[j] = j;
	for (i = 1; i <= n; i++) {
		cur[0] = i;
		best = cur[0];
		for (j = 1; j <= m; j++) {
			size_t cost = a[i - 1] != b[j - 1];

			d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (prev[j - 1] + cost < d)
				d = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    prev2[j - 2] + 1 < d)
				d = prev2[j - 2] + 1;
			cur[j] = d;
			if (d < best)
				best = d;
		}
		if (best > limit)
			return limit + 1;
		t = prev2;
		prev2 = prev;
		prev = cur;
		cur = t;
	}
	return prev[m];
}

const char *mcb_didyoumean(const char *word, const char *const *cands, size_t n)
{
	size_t wl = strlen(word), limit = wl / 3 > 1 ? wl / 3 : 1, best = limit + 1, i, cl, dist;
	size_t maxlen = 0, *rows;
	const char *pick = NULL;

	for (i = 0; i < n; i++) {
		if (!cands[i])
			continue;
		cl = strlen(cands[i]);
		if ((cl > wl ? cl - wl : wl - cl) <= limit && cl > maxlen)
			maxlen = cl;
	}
	rows = mcb_xcalloc(3 * (maxlen + 1), sizeof(*rows));
	for (i = 0; i < n; i++) {
		if (!cands[i])
			continue;
		cl = strlen(cands[i]);
		if ((cl > wl ? cl - wl : wl - cl) > limit)
			continue;
		dist = osa(word, wl, cands[i], cl, best - 1, rows);
		if (dist < best) {
			best = dist;
			pick = cands[i];
			if (best == 0)
				break;
		}
	}
	free(rows);
	return pick;
}
