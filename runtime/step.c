/* step: the table of step kinds and helpers shared by their implementations. */
#include <stdarg.h>
#include <string.h>

#include <jansson.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/step.h"

/* One row per step kind; the name is what action keys and -d explain show. */
static const struct mcb_stepkind *const kinds[] = {
	&mcb_step_import,
	&mcb_step_quantize,
	&mcb_step_export,
	&mcb_step_bundle,
	&mcb_step_sample,
	&mcb_step_evaluate,
	&mcb_step_measure,
	&mcb_step_report,
	&mcb_step_assemble,
	&mcb_step_calibrate,
	&mcb_step_prune,
	&mcb_step_lowrank,
};

const struct mcb_stepkind *mcb_stepkind_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i]->name, name))
			return kinds[i];
	return NULL;
}

const struct mcb_step_input *mcb_step_input(const struct mcb_stepctx *sc, const char *name)
{
	size_t i;

	for (i = 0; i < sc->nin; i++)
		if (!strcmp(sc->in[i].name, name))
			return &sc->in[i];
	return NULL;
}

void mcb_step_log(struct mcb_stepctx *sc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mcb_buf_vprintf(sc->log, fmt, ap);
	va_end(ap);
	mcb_buf_addc(sc->log, '\n');
}

char *mcb_step_outpath(struct mcb_stepctx *sc, const char *name)
{
	return mcb_path_join(sc->scratch, sc->outdir, name);
}

const char *mcb_param_str(const json_t *params, const char *key, const char *def)
{
	json_t *v = json_object_get(params, key);

	return json_is_string(v) ? json_string_value(v) : def;
}

int64_t mcb_param_int(const json_t *params, const char *key, int64_t def)
{
	json_t *v = json_object_get(params, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int mcb_param_bool(const json_t *params, const char *key, int def)
{
	json_t *v = json_object_get(params, key);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

#define MAX_JSON_INPUT (256u << 20)

json_t *mcb_step_read_json(struct mcb_stepctx *sc, const char *name)
{
	const struct mcb_step_input *in = mcb_step_input(sc, name);
	struct mcb_buf b = MCB_BUF_INIT;
	json_t *v = NULL;
	char *what;

	if (!in || !in->path) {
		mcb_errf(sc->e, MCB_EINTERNAL, "no input '%s'", name);
		return NULL;
	}
	what = mcb_arena_printf(sc->scratch, "input %s", name);
	if (!mcb_os_read_file(in->path, MAX_JSON_INPUT, &b, sc->e))
		v = mcb_json_parse(b.data, b.len, what, sc->e);
	mcb_buf_release(&b);
	return v;
}

int mcb_step_write_json(struct mcb_stepctx *sc, const char *name, const json_t *v)
{
	struct mcb_buf b = MCB_BUF_INIT;
	int rc;

	mcb_json_pretty(v, &b);
	rc = mcb_os_write_atomic(mcb_step_outpath(sc, name), b.data, b.len, 0644, sc->e);
	mcb_buf_release(&b);
	return rc;
}
