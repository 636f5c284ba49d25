/*
 * steprun: see steprun.h.
 */
#include <string.h>

#include <jansson.h>

#include "harness.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "steprun.h"

void mcbt_run_init(struct mcbt_run *r)
{
	memset(r, 0, sizeof(*r));
	mcb_arena_init(&r->a);
	r->dir = mcbt_tmpdir();
}

void mcbt_run_release(struct mcbt_run *r)
{
	mcb_buf_release(&r->log);
	mcb_arena_release(&r->a);
}

void mcbt_run_input(struct mcbt_run *r, const char *name, const char *path)
{
	struct mcb_errctx e;

	if (r->nin == sizeof(r->in) / sizeof(r->in[0])) {
		mcbt_fail(__FILE__, __LINE__, "more than %zu step inputs", r->nin);
		return;
	}
	r->in[r->nin].name = name;
	r->in[r->nin].path = path;
	CHECK_OK(mcb_sha256_file(path, &r->in[r->nin].digest, &r->in[r->nin].size, &e), &e);
	r->nin++;
}

int mcbt_run_step(struct mcbt_run *r, const struct mcb_stepkind *kind, const char *params,
		  const char *out)
{
	struct mcb_stepctx sc;
	json_t *p = json_loads(params, 0, NULL);
	char *outdir = mcb_path_join(&r->a, r->dir, out);
	struct mcb_errctx e;
	int rc;

	CHECK(p != NULL);
	CHECK_OK(mcb_os_mkdirs(outdir, &e), &e);
	memset(&sc, 0, sizeof(sc));
	sc.params = p;
	sc.in = r->in;
	sc.nin = r->nin;
	sc.outdir = outdir;
	sc.scratch = &r->a;
	sc.log = &r->log;
	sc.e = &r->e;
	sc.blas_threads = r->threads ? r->threads : 1;
	mcb_errclear(&r->e);
	rc = kind->run(&sc);
	json_decref(p);
	r->nin = 0;
	return rc;
}

char *mcbt_run_path(struct mcbt_run *r, const char *a, const char *b)
{
	return mcb_path_join(&r->a, mcb_path_join(&r->a, r->dir, a), b);
}
