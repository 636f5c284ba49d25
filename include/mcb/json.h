/*
 * json: helpers around jansson for the canonical encodings mcbuild hashes and
 * for reading untrusted JSON (safetensors headers, config.json, cache entries).
 *
 * Canonical form (used for action keys and manifests): keys sorted, no
 * whitespace, reals printed with 17 significant digits, ASCII only.
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

/* Append a pretty (2-space indented, sorted keys) encoding of v plus '\n'. */
void mcb_json_pretty(const json_t *v, struct mcb_buf *out);

/*
 * Parse untrusted JSON text of n bytes.  Rejects duplicate keys, nesting
 * deeper than MCB_JSON_MAX_DEPTH and trailing garbage.  what names the source
 * in messages ("'x/config.json'").  Returns a new reference or NULL with e set
 * (MCB_EFORMAT, message with line and column).
 */
json_t *mcb_json_parse(const char *text, size_t n, const char *what, struct mcb_errctx *e);

/* Depth of the deepest nesting in v (a scalar is depth 0). */
int mcb_json_depth(const json_t *v);

#endif
