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
 * reported.  Nodes live in a.
 */
int mcb_yaml_parse(struct mcb_arena *a, const char *file, const char *text, size_t len,
		   struct mcb_node **root, struct mcb_diags *d);

/* The value for key in a mapping, or NULL. */
const struct mcb_node *mcb_node_get(const struct mcb_node *map, const char *key);

/* Scalar interpretation (YAML 1.2 core schema; plain scalars only for
 * non-strings).  Each returns 0 on success, -1 when n is not of that type. */
int mcb_node_is_null(const struct mcb_node *n);
int mcb_node_int(const struct mcb_node *n, int64_t *out);   /* decimal, optional sign */
int mcb_node_float(const struct mcb_node *n, double *out);  /* finite decimal or int */
int mcb_node_bool(const struct mcb_node *n, int *out);      /* true/false */
/* A short noun for messages: "string", "integer", "number", "boolean", "null",
 * "list", "mapping". */
const char *mcb_node_kind_name(const struct mcb_node *n);

#endif
