/*
 * dataset: evaluation and calibration data, read as hostile input.
 *
 * Formats (include/mcb/dataset.h gives the overview):
 *
 *   tokens  lines of token ids: decimal digits (no sign), separated by spaces
 *           or tabs, each at most 2^31 - 1 and below vocab when vocab > 0;
 *           one item per line.  Lines end with LF (a CR before it is
 *           dropped, the last line may lack it); empty or blank lines and
 *           lines whose first byte is '#' are skipped.  mcb_dataset_write_tokens
 *           writes this format: the ids of each item separated by one space,
 *           one line per item.
 *
 *   text    UTF-8 text (checked: no NUL, no invalid sequence), one item per
 *           line that is not blank (only spaces, tabs); each line, without
 *           its line end, is tokenized with the model's tokenizer with
 *           add_special, as llama.cpp's tools do: BOS first for "llama"
 *           vocabularies (add_bos_token), none for "gpt2" ones.
 *
 *   csv     RFC 4180: records end with CRLF or LF; fields are separated by
 *           ',' and may be quoted ("..."; "" is a quote; quoted fields may
 *           hold ',', CR and LF); a quote inside an unquoted field, text
 *           after a closing quote and an unterminated quote are errors;
 *           empty lines are skipped.  The first record is the header naming
 *           the columns, in any order: exactly one of
 *             tokens   token ids as in the tokens format (at least one)
 *             text     UTF-8 text, tokenized as in the text format (needs the
 *                      tokenizer)
 *           and
 *             label    an integer 0..2^31 - 1 (a class, or the token to
 *                      predict), below vocab when vocab > 0
 *             group    optional: a subgroup name (UTF-8, at most 256 bytes;
 *                      empty: no group), for per-group metrics
 *           Any other column is an error naming it; every record has as many
 *           fields as the header (at most 1024).
 *
 *   idx     (LeCun's MNIST format) an image file: magic 00 00 08 03, then
 *           u32 big-endian count, rows, cols, then count * rows * cols
 *           unsigned bytes; a label file: magic 00 00 08 01, u32 count, then
 *           count bytes.  Either may be gzip-compressed (zlib reads a file
 *           starting with 1f 8b as gzip, any other as it is).  Counts must
 *           match; nothing may follow the data.  Each image is an item of
 *           rows * cols features, pixel / 255, with its label.
 *
 * All text formats skip a UTF-8 byte order mark at the start of the file.
 * Errors: MCB_EFORMAT (or MCB_ERANGE for limits, MCB_EIO, MCB_ENOENT for
 * files, MCB_ENOMEM) with a message "'file':line:col: ..." (1-based, columns
 * in bytes; inside a quoted CSV field, the field's start) or, for IDX,
 * "'file' at byte N: ..." (N counts decompressed bytes for gzip files).
 *
 * Limits: files of at most MCB_DATASET_MAX_BYTES; lines and CSV records of
 * at most 16 MiB (and text of MCB_TOKENIZER_MAX_TEXT bytes per item);
 * MCB_DATASET_MAX_ITEMS items and MCB_DATASET_MAX_TOKENS tokens per dataset;
 * 65536 groups; IDX images of at most 2^20 pixels and 2^28 pixels in all.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/dataset.h"
#include "mcb/utf8.h"
#include "mcb/err.h"
#include "mcb/os.h"
#include "mcb/strmap.h"
#include "mcb/tokenizer.h"

#define MAX_LINE (1u << 24)
#define MAX_FIELDS 1024
#define MAX_GROUPS 65536
#define MAX_GROUP_NAME 256
#define MAX_PIXELS (1u << 20)
#define MAX_ALL_PIXELS (1ull << 28)

void mcb_dataset_init(struct mcb_dataset *ds)
{
	memset(ds, 0, sizeof(*ds));
	mcb_arena_init(&ds->arena);
}

void mcb_dataset_release(struct mcb_dataset *ds)
{
	mcb_arena_release(&ds->arena);
	mcb_dataset_init(ds);
}

/* A new item slot (zeroed) at the end of ds->items. */
static struct mcb_ds_item *new_item(struct mcb_dataset *ds)
{
	struct mcb_ds_item *it;

	ds->items = mcb_arena_grow(&ds->arena, ds->items, ds->n, &ds->cap, sizeof(*ds->items));
	it = &ds->items[ds->n++];
	memset(it, 0, sizeof(*it));
	it->label = -1;
	it->group = -1;
	return it;
}

void mcb_dataset_add_tokens(struct mcb_dataset *ds, const int32_t *tokens, size_t n, int64_t label,
			    int group)
{
	struct mcb_ds_item *it = new_item(ds);
	int32_t *copy = NULL;

	if (n) {
		copy = mcb_arena_array(&ds->arena, n, sizeof(*copy));
		memcpy(copy, tokens, n * sizeof(*copy));
	}
	it->tokens = copy;
	it->ntokens = n;
	it->label = label;
	it->group = group;
	ds->ntokens += n;
}

/* ---- shared helpers ---- */

/* Set e to "'path':line:col: message" and return code. */
__attribute__((format(printf, 6, 7))) static int
at(struct mcb_errctx *e, int code, const char *path, size_t line, size_t col, const char *fmt, ...)
{
	char msg[MCB_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mcb_errf(e, code, "'%s':%zu:%zu: %s", path, line, col, msg);
}

/* A growable vector of ids (malloc'd). */
struct ivec {
	int32_t *v;
	size_t n, cap;
};

static int ivec_push(struct ivec *iv, int32_t id, struct mcb_errctx *e)
{
	int32_t *p;
	size_t cap;

	if (iv->n == iv->cap) {
		cap = iv->cap ? iv->cap * 2 : 256;
		if (!(p = realloc(iv->v, cap * sizeof(*p))))
			return mcb_errf(e, MCB_ENOMEM, "out of memory reading token ids (%zu ids)",
					cap);
		iv->v = p;
		iv->cap = cap;
	}
	iv->v[iv->n++] = id;
	return 0;
}

/* Check that adding an item of n tokens keeps ds within the limits. */
static int room(const struct mcb_dataset *ds, size_t n, const char *path, size_t line,
		struct mcb_errctx *e)
{
	if (ds->n >= MCB_DATASET_MAX_ITEMS)
		return at(e, MCB_ERANGE, path, line, 1, "more than %u items",
			  MCB_DATASET_MAX_ITEMS);
	if (ds->ntokens + n > MCB_DATASET_MAX_TOKENS)
		return at(e, MCB_ERANGE, path, line, 1, "more than %u tokens in all",
			  MCB_DATASET_MAX_TOKENS);
	return 0;
}

/* Map path for reading; an empty file gives data NULL, size 0. */
static int map_file(const char *path, struct mcb_map *m, struct mcb_errctx *e)
{
	int rc;

	if ((rc = mcb_os_map(path, m, e)))
		return rc;
	if ((uint64_t)m->size > MCB_DATASET_MAX_BYTES) {
		mcb_os_unmap(m);
		return mcb_errf(e, MCB_ERANGE, "'%s': the file is larger than %llu bytes", path,
				(unsigned long long)MCB_DATASET_MAX_BYTES);
	}
	return 0;
}

/* Lines of a mapped text file. */
struct lines {
	const char *p, *end; /* what is left */
	size_t line;	     /* number of the line last returned */
};

static void lines_init(struct lines *l, const struct mcb_map *m)
{
	l->p = (const char *)m->data;
	l->end = l->p + m->size;
	l->line = 0;
	if (m->size >= 3 && !memcmp(l->p, "\xef\xbb\xbf", 3))
		l->p += 3;
}

/* The next line (without LF or CRLF) in *s, *n; 0 at the end of the file. */
static int next_line(struct lines *l, const char **s, size_t *n)
{
	const char *nl;

	if (l->p >= l->end)
		return 0;
	nl = memchr(l->p, '\n', (size_t)(l->end - l->p));
	*s = l->p;
	*n = (size_t)((nl ? nl : l->end) - l->p);
	l->p = nl ? nl + 1 : l->end;
	if (*n && (*s)[*n - 1] == '\r')
		(*n)--;
	l->line++;
	return 1;
}

static int is_blank(const char *s, size_t n)
{
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return n == 0;
}

/* Offset of the first byte of s[0..n) that is NUL or not part of a valid
 * UTF-8 sequence, or n. */
static size_t utf8_bad(const char *s, size_t n)
{
	const char *nul = memchr(s, '\0', n);

	return mcb_utf8_check(s, nul ? (size_t)(nul - s) : n);
}

/* Check s[0..n) is UTF-8 text; col is the column of s[0]. */
static int check_text(const char *s, size_t n, const char *path, size_t line, size_t col,
		      struct mcb_errctx *e)
{
	size_t bad = utf8_bad(s, n);

	if (bad == n)
		return 0;
	if (!s[bad])
		return at(e, MCB_EFORMAT, path, line, col + bad, "a NUL byte in text");
	return at(e, MCB_EFORMAT, path, line, col + bad, "invalid UTF-8 (byte 0x%02x)",
		  (unsigned char)s[bad]);
}

/* Parse the blank-separated ids of s[0..n) onto iv; col is s[0]'s column. */
static int parse_ids(const char *s, size_t n, int64_t vocab, struct ivec *iv, const char *path,
		     size_t line, size_t col, struct mcb_errctx *e)
{
	size_t i = 0, j, start;
	uint64_t v;
	int w, rc;

	while (i < n) {
		if (s[i] == ' ' || s[i] == '\t') {
			i++;
			continue;
		}
		for (start = j = i; j < n && s[j] != ' ' && s[j] != '\t'; j++)
			;
		w = j - start > 32 ? 32 : (int)(j - start);
		for (v = 0; i < j && s[i] >= '0' && s[i] <= '9' && v <= INT32_MAX; i++)
			v = v * 10 + (uint64_t)(s[i] - '0');
		if (i < j && (s[i] < '0' || s[i] > '9'))
			return at(e, MCB_EFORMAT, path, line, col + i,
				  "bad token id '%.*s%s' (expected "
				  "decimal digits)",
				  w, s + start, j - start > 32 ? "..." : "");
		if (v > INT32_MAX)
			return at(e, MCB_ERANGE, path, line, col + start,
				  "token id '%.*s%s' is too "
				  "large",
				  w, s + start, j - start > 32 ? "..." : "");
		if (vocab > 0 && (int64_t)v >= vocab)
			return at(e, MCB_ERANGE, path, line, col + start,
				  "token id %" PRIu64 " is "
				  "outside the vocabulary (0..%" PRId64 ")",
				  v, vocab - 1);
		if ((rc = ivec_push(iv, (int32_t)v, e)))
			return rc;
		i = j;
	}
	return 0;
}

/* ---- tokens ---- */

int mcb_dataset_load_tokens(const char *path, int64_t vocab, struct mcb_dataset *ds,
			    struct mcb_errctx *e)
{
	struct ivec iv = {0};
	struct mcb_map m;
	struct lines l;
	const char *s;
	size_t n;
	int rc;

	if ((rc = map_file(path, &m, e)))
		goto fail;
	lines_init(&l, &m);
	while (next_line(&l, &s, &n)) {
		if (n > MAX_LINE) {
			rc = at(e, MCB_ERANGE, path, l.line, 1, "the line is longer than %u bytes",
				MAX_LINE);
			break;
		}
		if (is_blank(s, n) || s[0] == '#')
			continue;
		iv.n = 0;
		if ((rc = parse_ids(s, n, vocab, &iv, path, l.line, 1, e)) ||
		    (rc = room(ds, iv.n, path, l.line, e)))
			break;
		mcb_dataset_add_tokens(ds, iv.v, iv.n, -1, -1);
	}
	mcb_os_unmap(&m);
	free(iv.v);
	if (!rc)
		return 0;
fail:
	mcb_dataset_release(ds);
	return rc;
}

/* ---- text ---- */

/* Tokenize the text s[0..n) at path:line:col into iv. */
static int tokenize(const struct mcb_tokenizer *tok, const char *s, size_t n, struct ivec *iv,
		    const char *path, size_t line, size_t col, struct mcb_errctx *e)
{
	int32_t *ids;
	size_t k;
	int rc;

	if ((rc = check_text(s, n, path, line, col, e)))
		return rc;
	if ((rc = mcb_tokenizer_encode(tok, s, n, 1, &ids, &k, e)))
		return mcb_errprefix(e, "'%s':%zu:%zu", path, line, col);
	free(iv->v);
	iv->v = ids;
	iv->n = iv->cap = k;
	return 0;
}

int mcb_dataset_load_text(const char *path, const struct mcb_tokenizer *tok, struct mcb_dataset *ds,
			  struct mcb_errctx *e)
{
	struct ivec iv = {0};
	struct mcb_map m;
	struct lines l;
	const char *s;
	size_t n;
	int rc;

	if (!tok) {
		rc = mcb_errf(e, MCB_EINVAL, "'%s': a text dataset needs the model's tokenizer",
			      path);
		goto fail;
	}
	if ((rc = map_file(path, &m, e)))
		goto fail;
	lines_init(&l, &m);
	while (next_line(&l, &s, &n)) {
		if (n > MAX_LINE) {
			rc = at(e, MCB_ERANGE, path, l.line, 1, "the line is longer than %u bytes",
				MAX_LINE);
			break;
		}
		if (is_blank(s, n))
			continue;
		if ((rc = tokenize(tok, s, n, &iv, path, l.line, 1, e)) ||
		    (rc = room(ds, iv.n, path, l.line, e)))
			break;
		mcb_dataset_add_tokens(ds, iv.v, iv.n, -1, -1);
	}
	mcb_os_unmap(&m);
	free(iv.v);
	if (!rc)
		return 0;
fail:
	mcb_dataset_release(ds);
	return rc;
}

/* ---- csv ---- */

struct field {
	size_t off, len;  /* its bytes (quotes removed) in the record buffer */
	size_t line, col; /* where it starts */
	int quoted;
};

struct csv {
	const char *path;
	const char *p, *end;	    /* what is left of the file */
	size_t line;		    /* line of p */
	const char *bol;	    /* start of that line */
	struct mcb_buf rec;	    /* the fields' bytes, each followed by a NUL */
	struct field f[MAX_FIELDS]; /* nf fields of the record last read */
	size_t nf;
	size_t rline; /* the record's first line */
	struct mcb_errctx *e;
};

/* Read one quoted field's content (c->p just past the opening quote). */
static int csv_quoted(struct csv *c, const struct field *f, const char *start)
{
	const char *q;
	size_t k;

	for (;;) {
		if (!(q = memchr(c->p, '"', (size_t)(c->end - c->p))))
			return at(c->e, MCB_EFORMAT, c->path, f->line, f->col,
				  "unterminated quoted field");
		if ((size_t)(q - start) > MAX_LINE)
			return at(c->e, MCB_ERANGE, c->path, c->rline, 1,
				  "the record is longer than %u bytes", MAX_LINE);
		for (k = 0; c->p + k < q; k++)
			if (c->p[k] == '\n') {
				c->line++;
				c->bol = c->p + k + 1;
			}
		mcb_buf_add(&c->rec, c->p, (size_t)(q - c->p));
		c->p = q + 1;
		if (c->p < c->end && *c->p == '"') {
			mcb_buf_addc(&c->rec, '"');
			c->p++;
			continue;
		}
		break;
	}
	if (c->p < c->end && *c->p != ',' && *c->p != '\n' &&
	    !(*c->p == '\r' && (c->p + 1 == c->end || c->p[1] == '\n')))
		return at(c->e, MCB_EFORMAT, c->path, c->line, (size_t)(c->p - c->bol) + 1,
			  "text after the closing quote of a field");
	return 0;
}

/* Read the next record into c->f: 1 when read, 0 at the end of the file. */
static int csv_record(struct csv *c)
{
	const char *start, *q;
	struct field *f;
	size_t k;
	int rc;

	while (c->p < c->end &&
	       (*c->p == '\n' || (*c->p == '\r' && c->p + 1 < c->end && c->p[1] == '\n'))) {
		c->p += *c->p == '\r' ? 2 : 1; /* an empty line */
		c->line++;
		c->bol = c->p;
	}
	if (c->p >= c->end)
		return 0;
	start = c->p;
	c->rline = c->line;
	c->nf = 0;
	mcb_buf_reset(&c->rec);
	for (;;) {
		if (c->nf == MAX_FIELDS)
			return at(c->e, MCB_ERANGE, c->path, c->line, (size_t)(c->p - c->bol) + 1,
				  "more than %d fields in a record", MAX_FIELDS);
		f = &c->f[c->nf++];
		f->line = c->line;
		f->col = (size_t)(c->p - c->bol) + 1;
		f->off = c->rec.len;
		f->quoted = c->p < c->end && *c->p == '"';
		if (f->quoted) {
			c->p++;
			if ((rc = csv_quoted(c, f, start)))
				return rc;
		} else {
			for (q = c->p; q < c->end && *q != ',' && *q != '\n' && *q != '"'; q++)
				;
			if (q < c->end && *q == '"')
				return at(
					c->e, MCB_EFORMAT, c->path, c->line,
					(size_t)(q - c->bol) + 1,
					"a quote inside an unquoted field (quote the whole field)");
			if ((size_t)(q - start) > MAX_LINE)
				return at(c->e, MCB_ERANGE, c->path, c->rline, 1,
					  "the record is longer than %u bytes", MAX_LINE);
			k = (size_t)(q - c->p);
			if (k && c->p[k - 1] == '\r' && (q == c->end || *q == '\n'))
				k--;
			mcb_buf_add(&c->rec, c->p, k);
			c->p = q;
		}
		f->len = c->rec.len - f->off;
		mcb_buf_addc(&c->rec, 0);
		if (c->p < c->end && *c->p == ',') {
			c->p++;
			continue;
		}
		if (c->p < c->end && *c->p == '\r')
			c->p++;
		if (c->p < c->end && *c->p == '\n') {
			c->p++;
			c->line++;
			c->bol = c->p;
		}
		return 1;
	}
}

enum { COL_TOKENS, COL_TEXT, COL_LABEL, COL_GROUP, NCOLS };

static const char *const colnames[NCOLS] = {"tokens", "text", "label", "group"};

/* The columns of the header record: col[i] is the field index of colnames[i],
 * or -1. */
static int csv_header(struct csv *c, int col[NCOLS])
{
	struct mcb_buf bad = MCB_BUF_INIT;
	const char *name;
	size_t i, nbad = 0;
	int k, rc;

	for (k = 0; k < NCOLS; k++)
		col[k] = -1;
	for (i = 0; i < c->nf; i++) {
		name = c->rec.data + c->f[i].off;
		for (k = 0; k < NCOLS && strcmp(name, colnames[k]); k++)
			;
		if (k < NCOLS && col[k] >= 0) {
			mcb_buf_release(&bad);
			return at(c->e, MCB_EFORMAT, c->path, c->f[i].line, c->f[i].col,
				  "column '%s' appears twice", colnames[k]);
		}
		if (k < NCOLS) {
			col[k] = (int)i;
		} else if (nbad++ < 8) {
			if (nbad > 1)
				mcb_buf_adds(&bad, ", ");
			mcb_buf_printf(&bad, "'%.64s'", name);
		}
	}
	if (nbad) {
		rc = at(c->e, MCB_EFORMAT, c->path, c->rline, 1,
			"unknown column%s %s%s (the columns "
			"are 'tokens' or 'text', 'label', and optionally 'group')",
			nbad > 1 ? "s" : "", mcb_buf_str(&bad), nbad > 8 ? ", ..." : "");
		mcb_buf_release(&bad);
		return rc;
	}
	if (col[COL_TOKENS] >= 0 && col[COL_TEXT] >= 0)
		return at(c->e, MCB_EFORMAT, c->path, c->rline, 1,
			  "both a 'tokens' and a 'text' column (give one)");
	if (col[COL_TOKENS] < 0 && col[COL_TEXT] < 0)
		return at(c->e, MCB_EFORMAT, c->path, c->rline, 1, "no 'tokens' or 'text' column");
	if (col[COL_LABEL] < 0)
		return at(c->e, MCB_EFORMAT, c->path, c->rline, 1, "no 'label' column");
	return 0;
}

/* The group of field f: its index in ds->groups (registered on first sight;
 * map holds name -> index + 1), or -1 for an empty field. */
static int csv_group(struct csv *c, struct mcb_dataset *ds, struct mcb_strmap *map,
		     const struct field *f, int *group)
{
	const char *name = c->rec.data + f->off;
	char *copy;
	void *v;
	int rc;

	*group = -1;
	if (!f->len)
		return 0;
	if ((rc = check_text(name, f->len, c->path, f->line, f->col + f->quoted, c->e)))
		return rc;
	if (f->len > MAX_GROUP_NAME)
		return at(c->e, MCB_ERANGE, c->path, f->line, f->col,
			  "the group name is longer than %d bytes", MAX_GROUP_NAME);
	if ((v = mcb_strmap_get(map, name))) {
		*group = (int)((intptr_t)v - 1);
		return 0;
	}
	if (ds->ngroups >= MAX_GROUPS)
		return at(c->e, MCB_ERANGE, c->path, f->line, f->col, "more than %d groups",
			  MAX_GROUPS);
	copy = mcb_arena_strndup(&ds->arena, name, f->len);
	ds->groups = mcb_arena_grow(&ds->arena, (void *)ds->groups, ds->ngroups, &ds->gcap,
				    sizeof(*ds->groups));
	ds->groups[ds->ngroups] = copy;
	mcb_strmap_put(map, copy, (void *)(intptr_t)(ds->ngroups + 1));
	*group = (int)ds->ngroups++;
	return 0;
}

/* The label in field f: decimal digits, 0..2^31 - 1, and below vocab when
 * vocab > 0. */
static int csv_label(struct csv *c, const struct field *f, int64_t vocab, int64_t *label)
{
	const char *s = c->rec.data + f->off;
	int64_t v = 0;
	size_t i;

	for (i = 0; i < f->len && s[i] >= '0' && s[i] <= '9' && v <= INT32_MAX; i++)
		v = v * 10 + (s[i] - '0');
	if (!f->len || i < f->len || v > INT32_MAX)
		return at(c->e, MCB_EFORMAT, c->path, f->line, f->col,
			  "bad label '%.32s%s' (expected an integer 0..2147483647)", s,
			  f->len > 32 ? "..." : "");
	if (vocab > 0 && v >= vocab)
		return at(c->e, MCB_ERANGE, c->path, f->line, f->col,
			  "label %" PRId64 " is outside the vocabulary (0..%" PRId64 ")", v,
			  vocab - 1);
	*label = v;
	return 0;
}

/* One data record of c into ds. */
static int csv_item(struct csv *c, const int col[NCOLS], size_t ncols,
		    const struct mcb_tokenizer *tok, int64_t vocab, struct mcb_dataset *ds,
		    struct mcb_strmap *groups, struct ivec *iv)
{
	const struct field *f;
	int64_t label = -1;
	int group = -1, rc;

	if (c->nf != ncols)
		return at(c->e, MCB_EFORMAT, c->path, c->rline, 1,
			  "the record has %zu field%s, the "
			  "header %zu",
			  c->nf, c->nf == 1 ? "" : "s", ncols);
	if ((rc = csv_label(c, &c->f[col[COL_LABEL]], vocab, &label)))
		return rc;
	if (col[COL_GROUP] >= 0 && (rc = csv_group(c, ds, groups, &c->f[col[COL_GROUP]], &group)))
		return rc;
	iv->n = 0;
	if (col[COL_TOKENS] >= 0) {
		f = &c->f[col[COL_TOKENS]];
		if ((rc = parse_ids(c->rec.data + f->off, f->len, vocab, iv, c->path, f->line,
				    f->col + f->quoted, c->e)))
			return rc;
		if (!iv->n)
			return at(c->e, MCB_EFORMAT, c->path, f->line, f->col, "no token ids");
	} else {
		f = &c->f[col[COL_TEXT]];
		if (is_blank(c->rec.data + f->off, f->len))
			return at(c->e, MCB_EFORMAT, c->path, f->line, f->col, "no text");
		if ((rc = tokenize(tok, c->rec.data + f->off, f->len, iv, c->path, f->line,
				   f->col + f->quoted, c->e)))
			return rc;
	}
	if ((rc = room(ds, iv->n, c->path, c->rline, c->e)))
		return rc;
	mcb_dataset_add_tokens(ds, iv->v, iv->n, label, group);
	return 0;
}

int mcb_dataset_load_csv(const char *path, const struct mcb_tokenizer *tok, int64_t vocab,
			 struct mcb_dataset *ds, struct mcb_errctx *e)
{
	struct mcb_strmap groups = MCB_STRMAP_INIT;
	struct ivec iv = {0};
	struct mcb_map m = {0};
	int col[NCOLS], rc;
	struct csv *c;
	size_t i, ncols;

	c = mcb_xcalloc(1, sizeof(*c));
	c->path = path;
	c->e = e;
	if ((rc = map_file(path, &m, e)))
		goto out;
	c->p = (const char *)m.data;
	c->end = c->p + m.size;
	if (m.size >= 3 && !memcmp(c->p, "\xef\xbb\xbf", 3))
		c->p += 3;
	c->line = 1;
	c->bol = c->p;
	if ((rc = csv_record(c)) <= 0) {
		if (!rc)
			rc = mcb_errf(e, MCB_EFORMAT,
				      "'%s': the file is empty (expected a header "
				      "row naming the columns)",
				      path);
		goto out;
	}
	if ((rc = csv_header(c, col)))
		goto out;
	ncols = c->nf;
	if (col[COL_TEXT] >= 0 && !tok) {
		rc = at(e, MCB_EINVAL, path, c->rline, 1,
			"a 'text' column needs the model's "
			"tokenizer, and the model has none");
		goto out;
	}
	for (i = 0; i < ds->ngroups; i++) /* groups of earlier loads keep their indices */
		mcb_strmap_put(&groups, ds->groups[i], (void *)(intptr_t)(i + 1));
	while ((rc = csv_record(c)) > 0)
		if ((rc = csv_item(c, col, ncols, tok, vocab, ds, &groups, &iv)))
			break;
out:
	mcb_os_unmap(&m);
	mcb_buf_release(&c->rec);
	free(c);
	free(iv.v);
	mcb_strmap_release(&groups);
	if (rc)
		mcb_dataset_release(ds);
	return rc;
}

/* ---- idx ---- */

struct idx {
	const char *path;
	gzFile f;
	uint64_t pos; /* bytes read so far (decompressed) */
	int gz;	      /* the file is gzip-compressed */
};

__attribute__((format(printf, 4, 5))) static int idx_err(const struct idx *x, uint64_t pos,
							 struct mcb_errctx *e, const char *fmt, ...)
{
	char msg[MCB_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mcb_errf(e, MCB_EFORMAT, "'%s' at byte %" PRIu64 "%s: %s", x->path, pos,
			x->gz ? " (decompressed)" : "", msg);
}

static int idx_open(struct idx *x, const char *path, struct mcb_errctx *e)
{
	struct mcb_stat st;
	int rc;

	x->path = path;
	x->pos = 0;
	if ((rc = mcb_os_stat(path, &st, e)))
		return rc;
	if (st.size > MCB_DATASET_MAX_BYTES)
		return mcb_errf(e, MCB_ERANGE, "'%s': the file is larger than %llu bytes", path,
				(unsigned long long)MCB_DATASET_MAX_BYTES);
	errno = 0;
	if (!(x->f = gzopen(path, "rb"))) {
		if (!errno)
			return mcb_errf(e, MCB_ENOMEM, "cannot open '%s': out of memory", path);
		return mcb_errf(e, errno == ENOENT ? MCB_ENOENT : MCB_EIO,
				"cannot open '%s':", path);
	}
	gzbuffer(x->f, 1 << 16);
	x->gz = !gzdirect(x->f);
	return 0;
}

static void idx_close(struct idx *x)
{
	if (x->f)
		gzclose(x->f);
	x->f = NULL;
}

/* zlib's message for the last error, without the file name it prefixes
 * (the gzip layer reports a failed read as Z_ERRNO: then errno's). */
static const char *zmsg(const struct idx *x)
{
	size_t n = strlen(x->path);
	const char *msg;
	int zerr;

	msg = gzerror(x->f, &zerr);
	if (zerr == Z_ERRNO)
		return strerror(errno);
	if (!strncmp(msg, x->path, n) && msg[n] == ':' && msg[n + 1] == ' ')
		msg += n + 2;
	return msg;
}

/* Read exactly n bytes of what (for messages). */
static int idx_read(struct idx *x, void *buf, size_t n, const char *what, struct mcb_errctx *e)
{
	unsigned char *p = buf;
	size_t got = 0;
	int r;

	while (got < n) {
		r = gzread(x->f, p + got, (unsigned)(n - got < (1u << 30) ? n - got : (1u << 30)));
		if (r < 0)
			return idx_err(x, x->pos + got, e, "%s", zmsg(x));
		if (r == 0)
			return idx_err(x, x->pos + got, e,
				       "the file ends inside %s (%zu more bytes "
				       "expected)",
				       what, n - got);
		got += (size_t)r;
	}
	x->pos += n;
	return 0;
}

/* Nothing may follow the data; reading on also makes zlib check the gzip
 * trailer (CRC and length). */
static int idx_end(struct idx *x, struct mcb_errctx *e)
{
	unsigned char extra;
	int r;

	r = gzread(x->f, &extra, 1);
	if (r < 0)
		return idx_err(x, x->pos, e, "%s", zmsg(x));
	if (r > 0)
		return idx_err(x, x->pos, e, "unexpected data after the %s", "last item");
	return 0;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header of an IDX ubyte file of ndims dimensions into dims. */
static int idx_header(struct idx *x, int ndims, uint32_t *dims, struct mcb_errctx *e)
{
	unsigned char h[16];
	int i, rc;

	if ((rc = idx_read(x, h, 4, "the magic number", e)))
		return rc;
	if (h[0] || h[1])
		return idx_err(x, 0, e, "not an IDX file (magic %02x %02x %02x %02x)", h[0], h[1],
			       h[2], h[3]);
	if (h[2] != 0x08)
		return idx_err(x, 2, e, "element type 0x%02x is not unsigned bytes (0x08)", h[2]);
	if (h[3] != ndims)
		return idx_err(x, 3, e, "%d dimensions, expected %d (%s)", h[3], ndims,
			       ndims == 3 ? "images: count, rows, columns" : "labels: count");
	if ((rc = idx_read(x, h + 4, 4 * (size_t)ndims, "the dimensions", e)))
		return rc;
	for (i = 0; i < ndims; i++)
		dims[i] = be32(h + 4 + 4 * i);
	return 0;
}

int mcb_dataset_load_idx(const char *images, const char *labels, struct mcb_dataset *ds,
			 struct mcb_errctx *e)
{
	struct idx im = {0}, lb = {0};
	unsigned char *lab = NULL, *pix = NULL;
	uint32_t idims[3], ldims[1];
	uint64_t n, npix, i, j, k, chunk;
	struct mcb_ds_item *it;
	float *feat;
	int rc;

	if ((rc = idx_open(&lb, labels, e)) || (rc = idx_header(&lb, 1, ldims, e)) ||
	    (rc = idx_open(&im, images, e)) || (rc = idx_header(&im, 3, idims, e)))
		goto out;
	n = idims[0];
	npix = (uint64_t)idims[1] * idims[2];
	if (ldims[0] != n) {
		rc = mcb_errf(e, MCB_EFORMAT,
			      "'%s' holds %" PRIu32 " images but '%s' holds %" PRIu32 " labels",
			      images, idims[0], labels, ldims[0]);
		goto out;
	}
	if (ds->n > MCB_DATASET_MAX_ITEMS || n > MCB_DATASET_MAX_ITEMS - ds->n) {
		rc = mcb_errf(e, MCB_ERANGE,
			      "'%s': %" PRIu64 " images are more than the %u items a "
			      "dataset may hold",
			      images, n, MCB_DATASET_MAX_ITEMS);
		goto out;
	}
	if (!npix || npix > MAX_PIXELS || n * npix > MAX_ALL_PIXELS) {
		rc = mcb_errf(
			e, MCB_ERANGE,
			"'%s': %" PRIu32 " images of %" PRIu32 "x%" PRIu32
			" pixels: images of 1..%u pixels and %llu pixels in all are supported",
			images, idims[0], idims[1], idims[2], MAX_PIXELS, MAX_ALL_PIXELS);
		goto out;
	}
	lab = malloc(n ? n : 1);
	chunk = npix * (((1u << 20) + npix - 1) / npix); /* whole images, about 1 MiB */
	pix = malloc(chunk);
	if (!lab || !pix) {
		rc = mcb_errf(e, MCB_ENOMEM, "'%s': out of memory", images);
		goto out;
	}
	if ((rc = idx_read(&lb, lab, n, "the labels", e)) || (rc = idx_end(&lb, e)))
		goto out;
	/* chunk by chunk, so that a header announcing more than the file holds
	 * costs no more memory than the file's content */
	for (i = 0; i < n; i += k / npix) {
		k = (n - i) * npix < chunk ? (n - i) * npix : chunk;
		if ((rc = idx_read(&im, pix, k, "the pixels", e)))
			goto out;
		feat = mcb_arena_array(&ds->arena, k, sizeof(*feat));
		for (j = 0; j < k; j++)
			feat[j] = (float)pix[j] / 255.0f;
		for (j = 0; j < k / npix; j++) {
			it = new_item(ds);
			it->features = feat + j * npix;
			it->nfeatures = npix;
			it->label = lab[i + j];
		}
	}
	if ((rc = idx_end(&im, e)))
		goto out;
out:
	idx_close(&im);
	idx_close(&lb);
	free(lab);
	free(pix);
	if (rc)
		mcb_dataset_release(ds);
	return rc;
}

/* ---- writing ---- */

int mcb_dataset_write_tokens(const struct mcb_dataset *ds, const char *path, struct mcb_errctx *e)
{
	struct mcb_buf b = MCB_BUF_INIT;
	const struct mcb_ds_item *it;
	size_t i, k;
	int rc;

	for (i = 0; i < ds->n; i++) {
		it = &ds->items[i];
		if (!it->ntokens) {
			mcb_buf_release(&b);
			return mcb_errf(e, MCB_EINVAL,
					"cannot write '%s': item %zu has no tokens "
					"(the tokens format holds token sequences only)",
					path, i + 1);
		}
		for (k = 0; k < it->ntokens; k++)
			mcb_buf_printf(&b, k ? " %" PRId32 : "%" PRId32, it->tokens[k]);
		mcb_buf_addc(&b, '\n');
	}
	rc = mcb_os_write_atomic(path, b.data ? b.data : "", b.len, 0644, e);
	mcb_buf_release(&b);
	return rc;
}
