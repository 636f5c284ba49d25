/*
 * libFuzzer target: the recipe front-end.  Each input is parsed by
 * mcb_yaml_parse, then written as mcbuild.yaml into a private temporary
 * workspace and loaded, checked and resolved (mcb_workspace_load and
 * mcb_workspace_resolve on a few requests and on every declared target).
 *
 * Oracles besides the sanitizers: every diagnostic of a load carries
 * file:line:col; a declared target resolves to itself; the resolved JSON of
 * every target encodes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/diag.h"
#include "mcb/json.h"
#include "mcb/recipe.h"
#include "mcb/yaml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char file[128];
static FILE *devnull;

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/mcb-fuzz-recipe.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	snprintf(file, sizeof(file), "%s/%s", dir, MCB_RECIPE_FILE);
	devnull = fopen("/dev/null", "w");
	if (!devnull)
		abort();
	atexit(cleanup);
	return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
	FILE *f = fopen(file, "wb");

	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		perror(file);
		abort();
	}
}

static void check_target(const struct mcb_target *t)
{
	struct mcb_buf b = MCB_BUF_INIT;

	if (!t->path || !t->model || !t->hw || !t->hw_name || !t->scheme || !t->export_format ||
	    !t->resolved)
		abort();
	mcb_json_canonical(t->resolved, &b);
	mcb_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const requests[] = {"targets/a100-int8", "targets/cpu-avx2-int8",
					       "targets/", "targets", ".", "out/x", "../x"};
	struct mcb_arena a;
	struct mcb_diags d;
	struct mcb_node *root;
	struct mcb_workspace ws;
	struct mcb_target **ts = NULL;
	size_t n = 0, i;

	if (size > MCB_RECIPE_MAX_BYTES)
		return 0;
	mcb_arena_init(&a);
	mcb_diags_init(&d);
	mcb_yaml_parse(&a, "in.yaml", (const char *)data, size, &root, &d);
	mcb_diags_print(&d, devnull);
	mcb_diags_release(&d);
	mcb_arena_release(&a);

	write_input(data, size);
	mcb_diags_init(&d);
	mcb_workspace_load(&ws, dir, "", &d);
	for (i = 0; i < d.n; i++)
		if (!d.v[i].loc.file || d.v[i].loc.line <= 0 || d.v[i].loc.col <= 0)
			abort(); /* every load diagnostic has a position */
	for (i = 0; i < ws.ndeclared; i++) {
		size_t before = n;

		check_target(ws.declared[i]);
		if (mcb_workspace_resolve(&ws, ws.declared[i]->path, &ts, &n, &d) != 0)
			abort();
		if (n == before + 1 && ts[before] != ws.declared[i])
			abort(); /* a declared target resolves to itself */
	}
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		mcb_workspace_resolve(&ws, requests[i], &ts, &n, &d);
	for (i = 0; i < n; i++)
		check_target(ts[i]);
	mcb_diags_print(&d, devnull);
	mcb_workspace_release(&ws);
	mcb_diags_release(&d);
	return 0;
}
