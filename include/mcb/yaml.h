/*
 * yaml: a YAML document (parsed with libyaml) as a small tree whose every node
 * keeps file:line:col.  Input is hostile: nesting, node count, scalar length
 * and alias expansion are capped; duplicate mapping keys, non-scalar keys,
 * multiple documents and unknown tags are errors.
 */
#ifndef MCB_YAML_H
#define MCB_YAML_H

#include <stddef.h>
#include <stdint.h>

#include "mcb/diag.h"

struct mcb_arena;

#define MCB_YAML_MAX_DEPTH 32      /* nested collections */
#define MCB_YAML_MAX_NODES 100000  /* nodes, counting alias expansions */
#define MCB_YAML_MAX_ALIASES 100   /* alias references per document */
#define MCB_YAML_MAX_SCALAR (1u << 20)

enum mcb_node_kind { MCB_NODE_SCALAR, MCB_NODE_SEQ, MCB_NODE_MAP };

struct mcb_node {
	enum mcb_node_kind kind;
	struct mcb_loc loc;       /* start of the node */
	/* scalar */
	const char *str;          /* NUL-terminated (contains no NUL) */
	size_t len;
	int plain;                /* 1: unquoted (may be a number, bool or null) */
	/* sequence: nitems items; mapping: nitems keys (scalars) and values */
	struct mcb_node **items;
	struct mcb_node **keys;
	size_t nitems;
};

/*
 * Parse text (len bytes) of file into *root (NULL for an empty document).
 * Errors go to d with positions; returns 0, or MCB_EFORMAT when any error was
 * reported.  After MCB_EFORMAT, *root is still the tree when the parse got to
 * the end of the input (the errors were recoverable: duplicate keys, tags,
 * undefined aliases), so a checker can go on and report more; it is NULL
 * after a syntax error or an exceeded limit.  Aliased subtrees are shared.
 * Nodes live in a.
 */
int mcb_yaml_parse(struct mcb_arena *a, const char *file, const char *text, size_t len,
		   struct mcb_node **root, struct mcb_diags *d);

/* The value for key in a mapping, or NULL. */
const struct mcb_node *mcb_node_get(const struct mcb_node *map, const char *key);

/* Scalar interpretation (YAML 1.2 core schema; plain scalars only for
 * non-strings).  mcb_node_is_null returns 1 for null ("", ~, null, Null,
 * NULL, or n == NULL), else 0.  The others return 0 on success, -1 when n is
 * not of that type (or does not fit: an integer beyond int64). */
int mcb_node_is_null(const struct mcb_node *n);
int mcb_node_int(const struct mcb_node *n, int64_t *out);   /* decimal, optional sign; 0x, 0o */
int mcb_node_float(const struct mcb_node *n, double *out);  /* finite decimal or int */
int mcb_node_bool(const struct mcb_node *n, int *out);      /* true/false (True, TRUE ...) */
/* A short noun for messages: "string", "integer", "number", "boolean", "null",
 * "list", "mapping". */
const char *mcb_node_kind_name(const struct mcb_node *n);
/* The same with its article, for "must be X, not ...": "a string",
 * "an integer", "a number", "a boolean", "null", "a list", "a mapping". */
const char *mcb_node_kind_phrase(const struct mcb_node *n);

#endif
