/*
 * step bundle: the provenance manifest of a target.
 *
 * params: the provenance the scheduler assembled (see compiler/build.c):
 *   {"manifest_version", "mcbuild_version", "target", "recipe": {"digest",
 *    "resolved"}, "sources": [...], "steps": [...], "host": {...}}
 * inputs: every file of the bundle, named by its file name in the target
 * output: manifest.json = params + "files": [{"name", "sha256", "size"}]
 *         + from report.json: "verdict" and "evaluation": the datasets the
 *         quality gates used, with their digests
 *
 * The manifest holds nothing that is not in the action key (no time stamps,
 * no host name), so equal inputs give a bit-identical manifest.
 */
#include <string.h>

#include <jansson.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/step.h"

static int run_bundle(struct mcb_stepctx *sc)
{
	struct mcb_buf text = MCB_BUF_INIT;
	json_t *man, *files = json_array();
	char hex[MCB_HEX_LEN + 1];
	size_t i;
	int rc;

	man = json_deep_copy(sc->params);
	if (!man || !files)
		return mcb_errf(sc->e, MCB_ENOMEM, "cannot build the manifest");
	for (i = 0; i < sc->nin; i++) {
		mcb_digest_hex(&sc->in[i].digest, hex);
		json_array_append_new(files,
				      json_pack("{s:s, s:s, s:I}", "name", sc->in[i].name, "sha256",
						hex, "size", (json_int_t)sc->in[i].size));
	}
	json_object_set_new(man, "files", files);
	if (mcb_step_input(sc, "report.json")) {
		json_t *r = mcb_step_read_json(sc, "report.json"), *m, *ds = json_object();
		size_t k;

		if (!r) {
			json_decref(man);
			json_decref(ds);
			return sc->e->code;
		}
		json_array_foreach (json_object_get(json_object_get(r, "quality"), "metrics"), k, m)
			json_object_set(ds, json_string_value(json_object_get(m, "dataset")),
					json_object_get(m, "dataset_sha256"));
		json_object_set(man, "verdict", json_object_get(r, "verdict"));
		json_object_set_new(man, "evaluation", json_pack("{s:o}", "datasets", ds));
		json_decref(r);
	}
	mcb_json_pretty(man, &text);
	json_decref(man);
	rc = mcb_os_write_atomic(mcb_step_outpath(sc, "manifest.json"), text.data, text.len, 0644,
				 sc->e);
	mcb_buf_release(&text);
	return rc;
}

/* Of the inputs' contents the bundle reads the report's verdict only: the
 * rest it lists by digest and size. */
static int wants(const char *slot)
{
	return !strcmp(slot, "report.json");
}

const struct mcb_stepkind mcb_step_bundle = {
	.name = "bundle",
	.version = 3, /* 3: the manifest's steps in an order of the target's own DAG */
	.run = run_bundle,
	.wants = wants,
};
