/*
 * json: helpers around jansson for the canonical encodings mcbuild hashes and
 * for reading untrusted JSON (safetensors headers, config.json, cache entries).
 *
 * Canonical form (used for action keys): keys sorted by byte value, no
 * whitespace, ASCII only (\uXXXX escapes), reals with the fewest digits that
 * read back as the same double and always a '.' or exponent.
 */
#ifndef MCB_JSON_H
#define MCB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct mcb_buf;
struct mcb_errctx;

#define MCB_JSON_MAX_DEPTH 64

/* Append the canonical encoding of v to out. */
void mcb_json_canonical(const json_t *v, struct mcb_buf *out);

/* Append the canonical encoding of the string s (quoted, escaped, ASCII). */
void mcb_json_canonical_str(const char *s, struct mcb_buf *out);

/* Append a pretty encoding of v plus '\n': 2-space indent, sorted keys, UTF-8
 * kept as is, reals as in the canonical form. */
void mcb_json_pretty(const json_t *v, struct mcb_buf *out);

/*
 * Parse untrusted JSON text of n bytes.  Rejects duplicate keys, nesting
 * deeper than MCB_JSON_MAX_DEPTH and trailing garbage.  what names the source
 * in messages ("'x/config.json'").  Returns a new reference or NULL with e set
 * (MCB_EFORMAT, message with line and column).
 */
json_t *mcb_json_parse(const char *text, size_t n, const char *what, struct mcb_errctx *e);

/* json_equal that also holds for two absent values (NULL and NULL). */
int mcb_json_same(const json_t *a, const json_t *b);

/* Depth of the deepest nesting in v (a scalar is depth 0). */
int mcb_json_depth(const json_t *v);

#endif
