/*
 * report: a target's report, rendered from report.json (its schema, version
 * 1, is tests/data/report.schema.json and the README's "report.json"):
 *   report.md    for people reading a terminal or a merge request
 *   report.html  self-contained (inline CSS and SVG, no scripts, no network):
 *                each metric's point value and CI against its threshold,
 *                subgroups, performance and memory fit
 * plus the combined views of several targets built together (the terminal
 * table of `mcbuild report`, and an HTML page with size against quality).
 * Rendering is deterministic: equal report.json gives equal bytes.
 */
#ifndef MCB_REPORT_H
#define MCB_REPORT_H

#include <stddef.h>
#include <stdio.h>

struct json_t;
struct mcb_buf;
struct mcb_errctx;

#define MCB_REPORT_VERSION 1

/* Check that r has the shape the renderers rely on (a subset of the schema,
 * enough to render safely: the type of every field they read).  MCB_EFORMAT
 * naming the first bad field by its path ("quality.metrics[2].ci: expected
 * an array of 2 numbers"); MCB_EUNSUP for a report_version other than 1. */
int mcb_report_check(const struct json_t *r, struct mcb_errctx *e);

/* Append report.md / report.html for r to out.  A report that fails the
 * check fails with its error, and nothing is appended. */
int mcb_report_markdown(const struct json_t *r, struct mcb_buf *out, struct mcb_errctx *e);
int mcb_report_html(const struct json_t *r, struct mcb_buf *out, struct mcb_errctx *e);

/* One row per report: target, verdict, format, size, compression ratio, each
 * gated metric (point [lo, hi]), estimated tokens/s, memory fit.  Columns
 * are sized to their content; control characters print as '?'.  A report
 * that fails the check gets a row saying "invalid". */
void mcb_report_table(const struct json_t *const *r, size_t n, FILE *f);

/* A self-contained HTML page comparing reports: table plus size (x) against
 * each quality metric (y) with CI bars, one point per target.  Every report
 * must pass the check (else its error, prefixed "report N: "). */
int mcb_report_combined_html(const struct json_t *const *r, size_t n, struct mcb_buf *out,
			     struct mcb_errctx *e);

#endif
