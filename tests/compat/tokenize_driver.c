/*
 * tokenize_driver: mcbuild's tokenizer on a GGUF model, for the llama.cpp
 * cross-check (tests/compat/run.sh section 6, tokenize.mjs).
 *
 *   tokenize_driver MODEL.gguf STRINGS.json OUT.json
 *
 * STRINGS.json is a JSON array of strings.  OUT.json gets
 *   {"model": path, "ids": [[id, ...], ...], "text": [string, ...],
 *    "roundtrip": [bool, ...]}
 * with the ids of every string encoded without special tokens (as
 * llama_tokenize(add_special = false, parse_special = false)), their
 * decoded text (null when not valid UTF-8) and whether that is the string.
 * Prints how many strings decode back to themselves.  Exit status 0, or 1
 * with a "tokenize_driver: ..." message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/model.h"
#include "mcb/tokenizer.h"

static int fail(const char *what, const struct mcb_errctx *e)
{
	fprintf(stderr, "tokenize_driver: %s%s%s\n", what, e ? ": " : "", e ? e->msg : "");
	return 1;
}

int main(int argc, char **argv)
{
	struct mcb_buf text = MCB_BUF_INIT;
	struct mcb_tokenizer *t = NULL;
	struct mcb_errctx e = {0};
	json_t *strs, *out, *all, *rt, *txt, *x;
	struct mcb_model m;
	int32_t *ids;
	size_t i, j, n, nrt = 0;
	int rc = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: tokenize_driver MODEL.gguf STRINGS.json OUT.json\n");
		return 2;
	}
	mcb_model_init(&m);
	if (mcb_gguf_read_model(argv[1], &m, &e))
		return fail("cannot read the model", &e);
	if (mcb_tokenizer_from_model(&m, &t, &e)) {
		mcb_model_release(&m);
		return fail(argv[1], &e);
	}
	strs = json_load_file(argv[2], JSON_ALLOW_NUL, NULL);
	if (!json_is_array(strs))
		return fail("STRINGS.json is not a JSON array", NULL);
	all = json_array();
	rt = json_array();
	txt = json_array();
	json_array_foreach (strs, i, x) {
		if (!json_is_string(x))
			return fail("STRINGS.json holds a non-string", NULL);
		if (mcb_tokenizer_encode(t, json_string_value(x), json_string_length(x), 0, &ids,
					 &n, &e)) {
			rc = fail(json_string_value(x), &e);
			break;
		}
		json_array_append_new(all, json_array());
		for (j = 0; j < n; j++)
			json_array_append_new(json_array_get(all, i), json_integer(ids[j]));
		mcb_buf_reset(&text);
		if (mcb_tokenizer_decode(t, ids, n, &text, &e)) {
			rc = fail("decode", &e);
			free(ids);
			break;
		}
		free(ids);
		x = json_stringn(mcb_buf_str(&text), text.len);
		json_array_append_new(txt, x ? x : json_null());
		x = json_array_get(strs, i);
		json_array_append_new(rt, json_boolean(text.len == json_string_length(x) &&
						       !memcmp(mcb_buf_str(&text),
							       json_string_value(x), text.len)));
		nrt += json_is_true(json_array_get(rt, i));
	}
	if (!rc) {
		out = json_pack("{s:s,s:o,s:o,s:o}", "model", argv[1], "ids", all, "text", txt,
				"roundtrip", rt);
		if (json_dump_file(out, argv[3], JSON_COMPACT))
			rc = fail("cannot write OUT.json", NULL);
		else
			printf("tokenize_driver: %zu strings, %zu decode back to themselves\n",
			       json_array_size(strs), nrt);
		json_decref(out);
	} else {
		json_decref(all);
		json_decref(rt);
		json_decref(txt);
	}
	json_decref(strs);
	mcb_buf_release(&text);
	mcb_tokenizer_free(t);
	mcb_model_release(&m);
	return rc;
}
