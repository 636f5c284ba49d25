/*
 * utf8: strict UTF-8 decoding (no overlong forms, surrogates or values above
 * U+10FFFF), for every reader of text: recipes aside (libyaml checks them),
 * datasets, tokenizers, JSON output.
 */
#ifndef MCB_UTF8_H
#define MCB_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the sequence at p[0..n) (n >= 1) into *cp.  Returns its length
 * (1..4), or 0 when it is not valid UTF-8. */
size_t mcb_utf8_get(const unsigned char *p, size_t n, uint32_t *cp);

/* Offset of the first byte of s[0..n) that does not start a valid sequence,
 * or n.  NUL is valid UTF-8: callers that refuse it look for it themselves. */
size_t mcb_utf8_check(const char *s, size_t n);

#endif
