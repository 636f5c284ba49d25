/*
 * explain: the action encoding each step last ran with, by step label, so
 * that `-d explain` can say why a step runs ("parameter bits: 8 -> 4",
 * "input model changed", "quantize version 1 -> 2"), as ninja's log records
 * the commands it ran.  Kept in the workspace (.mcbuild/explain.log) and read
 * only when needed; losing it loses explanations, never results.
 */
#ifndef MCB_EXPLAIN_H
#define MCB_EXPLAIN_H

struct mcb_buf;
struct mcb_errctx;
struct mcb_explain;

/* The log kept at path; nothing is read until first use.  A missing file
 * is an empty log; an unreadable or malformed one too, with a warning. */
struct mcb_explain *mcb_explain_open(const char *path);
/* Why the file was ignored, or NULL. */
const char *mcb_explain_warning(const struct mcb_explain *x);
/* The last encoding recorded for label, or NULL. */
const char *mcb_explain_get(struct mcb_explain *x, const char *label);
/* Record encoding (copied) for label (copied). */
void mcb_explain_set(struct mcb_explain *x, const char *label, const char *encoding);
/* Write back atomically if anything changed. */
int mcb_explain_save(struct mcb_explain *x, struct mcb_errctx *e);
void mcb_explain_close(struct mcb_explain *x);

/*
 * Append to out why the action encoding changed from old (NULL: never built)
 * to new: one clause per difference, joined by "; ".  Parameters whose dotted
 * path is in ignore (NULL-terminated, may be NULL) are not reported: they are
 * derived from what is reported elsewhere.
 */
void mcb_explain_why(const char *old, const char *new_enc, const char *const *ignore,
		     struct mcb_buf *out);

#endif
