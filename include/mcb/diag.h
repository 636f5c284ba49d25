/*
 * diag: accumulated diagnostics.  The recipe checker reports every problem at
 * once, each as "file:line:col: error: message" (GCC style), instead of
 * stopping at the first, like SQLite's pParse->nErr.
 */
#ifndef MCB_DIAG_H
#define MCB_DIAG_H

#include <stddef.h>
#include <stdio.h>

/* A source position.  file NULL means "no position" (e.g. the command line). */
struct mcb_loc {
	const char *file; /* path as shown to the user (relative to the cwd when possible) */
	int line;         /* 1-based; 0 when unknown */
	int col;          /* 1-based; 0 when unknown */
};

enum mcb_severity { MCB_SEV_ERROR, MCB_SEV_WARNING, MCB_SEV_NOTE };

struct mcb_diag {
	struct mcb_loc loc;
	enum mcb_severity sev;
	char *msg; /* owned */
	size_t seq; /* order of reporting, for stable sorting */
};

struct mcb_diags {
	struct mcb_diag *v; /* n entries */
	size_t n, cap;
	size_t nerr, nwarn;
	size_t max;         /* stop recording (but keep counting) beyond this many; 0: 1000 */
};

void mcb_diags_init(struct mcb_diags *d);
void mcb_diags_release(struct mcb_diags *d);

void mcb_diag_error(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mcb_diag_warn(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mcb_diag_note(struct mcb_diags *d, const struct mcb_loc *loc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Print every diagnostic sorted by (file, line, col, seq), one per line:
 * "file:line:col: error: msg" ("file:line: ...", "file: ..." when col or
 * line is 0; "mcbuild: error: msg" without a file, after all positioned
 * ones), then nothing else.  Notes print right after the diagnostic
 * reported before them.  A diagnostic identical to an earlier one at the
 * same position is printed once.  When more than max were reported, a last
 * line "mcbuild: note: N more errors and warnings not shown" says so.
 */
void mcb_diags_print(const struct mcb_diags *d, FILE *f);

/*
 * The candidate closest to word by Damerau-Levenshtein distance, if close
 * enough to be a plausible typo (distance <= max(1, strlen(word)/3)), else NULL.
 */
const char *mcb_didyoumean(const char *word, const char *const *cands, size_t n);

#endif
