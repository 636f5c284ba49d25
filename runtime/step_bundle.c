/*
 * step bundle: the provenance manifest of a target.
 *
 * params: the provenance the scheduler assembled (see compiler/build.c):
 *   {"manifest_version", "mcbuild_version", "target", "recipe": {"digest",
 *    "resolved"}, "sources": [...], "steps": [...], "host": {...}}
 * inputs: every file of the bundle, named by its file name in the target
 * output: manifest.json = params + "files": [{"name", "sha256", "size"}]
 *
 * The manifest holds nothing that is not in the action key (no time stamps,
 * no host name), so equal inputs give a bit-identical manifest.
 */
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
	mcb_json_pretty(man, &text);
	json_decref(man);
	rc = mcb_os_write_atomic(mcb_step_outpath(sc, "manifest.json"), text.data, text.len, 0644,
				 sc->e);
	mcb_buf_release(&text);
	return rc;
}

/* The bundle reads no input's content: digests and sizes are enough. */
static int wants(const char *slot)
{
	(void)slot;
	return 0;
}

const struct mcb_stepkind mcb_step_bundle = {
	.name = "bundle",
	.version = 1,
	.run = run_bundle,
	.wants = wants,
};
