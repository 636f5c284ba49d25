/*
 * step import: a source model file (llama2.c, GGUF, or Hugging Face
 * safetensors + config.json) -> the internal form (model.safetensors).
 *
 * params: {"format": "auto" | "llama2c" | "gguf" | "safetensors"}
 * inputs: "source" (the model file), "config" (config.json, safetensors only)
 * output: model.safetensors
 *
 * The source is read through a map and re-hashed: the action key was
 * computed from the digest the scheduler saw, and a file rewritten in between
 * must fail the step rather than cache content under the wrong key.
 */
#include <string.h>

#include <jansson.h>

#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/model.h"
#include "mcb/step.h"

static int verify_unchanged(struct mcb_stepctx *sc, const struct mcb_step_input *in)
{
	struct mcb_digest d;
	uint64_t size;
	int rc;

	rc = mcb_sha256_file(in->path, &d, &size, sc->e);
	if (rc)
		return rc;
	if (!mcb_digest_eq(&d, &in->digest))
		return mcb_errf(sc->e, MCB_EIO,
				"'%s' changed while mcbuild was reading it; run mcbuild again",
				in->path);
	return 0;
}

static int run_import(struct mcb_stepctx *sc)
{
	const struct mcb_step_input *src = mcb_step_input(sc, "source");
	const struct mcb_step_input *cfg = mcb_step_input(sc, "config");
	const char *fname = mcb_param_str(sc->params, "format", "auto");
	enum mcb_model_format fmt;
	struct mcb_model m;
	int rc;

	if (!src)
		return mcb_errf(sc->e, MCB_EINTERNAL, "import step has no source input");
	if (!strcmp(fname, "auto")) {
		fmt = mcb_model_detect(src->path, sc->e);
		if (fmt == MCB_FMT_UNKNOWN)
			return sc->e->code ? sc->e->code : MCB_EFORMAT;
	} else {
		fmt = mcb_model_format_parse(fname);
		if (fmt == MCB_FMT_UNKNOWN)
			return mcb_errf(sc->e, MCB_EINVAL, "unknown model format '%s'", fname);
	}
	mcb_model_init(&m);
	switch (fmt) {
	case MCB_FMT_LLAMA2C:
		rc = mcb_llama2c_read(src->path, &m, sc->e);
		break;
	case MCB_FMT_GGUF:
		rc = mcb_gguf_read_model(src->path, &m, sc->e);
		break;
	case MCB_FMT_SAFETENSORS:
		if (!cfg) {
			rc = mcb_errf(sc->e, MCB_EINTERNAL,
				      "safetensors import has no config input");
			break;
		}
		rc = mcb_hf_read(src->path, cfg->path, &m, sc->e);
		if (!rc)
			rc = verify_unchanged(sc, cfg);
		break;
	default:
		rc = mcb_errf(sc->e, MCB_EINTERNAL, "unhandled model format");
	}
	if (!rc)
		rc = verify_unchanged(sc, src);
	if (!rc)
		rc = mcb_model_check_llama(&m, src->path, sc->e);
	if (!rc) {
		json_object_set_new(m.meta, "source",
				    json_pack("{s:s}", "format", mcb_model_format_name(fmt)));
		rc = mcb_model_save_ir(&m, mcb_step_outpath(sc, "model.safetensors"), sc->e);
	}
	if (!rc)
		mcb_step_log(sc, "imported %s model: %lld tensors, %lld layers, dim %lld",
			     mcb_model_format_name(fmt), (long long)m.ntensors,
			     (long long)m.cfg.n_layers, (long long)m.cfg.dim);
	mcb_model_release(&m);
	return rc;
}

const struct mcb_stepkind mcb_step_import = {
	.name = "import",
	.version = 1,
	.run = run_import,
};
