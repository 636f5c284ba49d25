/*
 * render: the report renderers from the command line, for tests/report/run.sh.
 *
 *   render IN.json OUT_DIR                       OUT_DIR/report.md and report.html
 *   render --combined OUT.html IN1.json ...      the page comparing several reports
 *   render --table IN1.json ...                  the terminal table on stdout
 *   render --check IN.json                       mcb_report_check only
 *
 * Exit status 0, or 1 with "render: <message>" on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/json.h"
#include "mcb/os.h"
#include "mcb/report.h"

static int fail(struct mcb_errctx *e)
{
	fprintf(stderr, "render: %s\n", e->msg);
	return 1;
}

/* Parse and check path; NULL with e set on failure. */
static json_t *load(const char *path, struct mcb_errctx *e)
{
	struct mcb_buf text = MCB_BUF_INIT;
	json_t *r;

	if (mcb_os_read_file(path, 64u << 20, &text, e)) {
		mcb_buf_release(&text);
		return NULL;
	}
	r = mcb_json_parse(mcb_buf_str(&text), text.len, path, e);
	mcb_buf_release(&text);
	if (r && mcb_report_check(r, e)) {
		mcb_errprefix(e, "%s", path);
		json_decref(r);
		return NULL;
	}
	return r;
}

static int write_file(const char *dir, const char *name, const struct mcb_buf *b,
		      struct mcb_errctx *e)
{
	char path[4096];

	if (name)
		snprintf(path, sizeof(path), "%s/%s", dir, name);
	else
		snprintf(path, sizeof(path), "%s", dir);
	return mcb_os_write_atomic(path, mcb_buf_str(b), b->len, 0644, e);
}

int main(int argc, char **argv)
{
	struct mcb_buf out = MCB_BUF_INIT;
	struct mcb_errctx e = {0, ""};
	json_t **r;
	int i, n, rc = 0;

	if (argc >= 3 && (!strcmp(argv[1], "--table") || !strcmp(argv[1], "--combined"))) {
		int combined = !strcmp(argv[1], "--combined"), first = combined ? 3 : 2;

		if (argc <= first) {
			fprintf(stderr, "usage: render --combined OUT.html IN.json...\n");
			return 2;
		}
		n = argc - first;
		r = calloc((size_t)n, sizeof(*r));
		for (i = 0; i < n && !rc; i++)
			if (!(r[i] = load(argv[first + i], &e)))
				rc = fail(&e);
		if (!rc && combined) {
			if (mcb_report_combined_html((const json_t *const *)r, (size_t)n, &out,
						     &e) ||
			    write_file(argv[2], NULL, &out, &e))
				rc = fail(&e);
		} else if (!rc) {
			mcb_report_table((const json_t *const *)r, (size_t)n, stdout);
		}
		for (i = 0; i < n; i++)
			json_decref(r[i]);
		free(r);
		mcb_buf_release(&out);
		return rc;
	}
	if (argc == 3 && !strcmp(argv[1], "--check")) {
		json_t *one = load(argv[2], &e);

		json_decref(one);
		return one ? 0 : fail(&e);
	}
	if (argc != 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: render IN.json OUT_DIR\n"
				"       render --combined OUT.html IN.json...\n"
				"       render --table IN.json...\n"
				"       render --check IN.json\n");
		return 2;
	}
	{
		json_t *one = load(argv[1], &e);

		if (!one || mcb_os_mkdirs(argv[2], &e) || mcb_report_markdown(one, &out, &e) ||
		    write_file(argv[2], "report.md", &out, &e)) {
			rc = fail(&e);
		} else {
			mcb_buf_reset(&out);
			if (mcb_report_html(one, &out, &e) ||
			    write_file(argv[2], "report.html", &out, &e))
				rc = fail(&e);
		}
		json_decref(one);
	}
	mcb_buf_release(&out);
	return rc;
}
