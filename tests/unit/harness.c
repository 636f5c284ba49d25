/* harness: see harness.h. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mcb/rng.h"

static const char *current;
static int current_failed, current_skipped;
static int nrun, nfailed, nskipped;
static char tmpbuf[4096], pathbuf[4096];
static unsigned ntmp;

void mcbt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: %s: check failed: ", file, line, current ? current : "?");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	current_failed = 1;
}

void mcbt_skip(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "SKIPPED %s: ", current ? current : "?");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	current_skipped = 1;
}

void mcbt_run(const char *name, void (*fn)(void))
{
	current = name;
	current_failed = current_skipped = 0;
	fn();
	nrun++;
	if (current_failed) {
		nfailed++;
		fprintf(stderr, "FAIL %s\n", name);
	} else if (current_skipped) {
		nskipped++;
	}
	current = NULL;
}

int mcbt_done(void)
{
	const char *prog = program_invocation_short_name;

	if (nfailed)
		fprintf(stderr, "%s: %d of %d tests FAILED\n", prog, nfailed, nrun);
	else if (nskipped)
		fprintf(stderr, "%s: %d tests passed, %d SKIPPED (see above)\n", prog,
			nrun - nskipped, nskipped);
	else
		fprintf(stderr, "%s: %d tests passed\n", prog, nrun);
	return nfailed ? 1 : 0;
}

const char *mcbt_shared(const char *rel)
{
	const char *root = getenv("MCB_SHARED");

	snprintf(pathbuf, sizeof(pathbuf), "%s/%s", root ? root : "../shared", rel);
	if (access(pathbuf, R_OK) != 0) {
		mcbt_skip("%s is missing (tests expect ../shared beside the repository)", pathbuf);
		return NULL;
	}
	return pathbuf;
}

const char *mcbt_data(const char *rel)
{
	const char *root = getenv("MCB_TESTDATA");

	snprintf(pathbuf, sizeof(pathbuf), "%s/%s", root ? root : "tests/data", rel);
	return pathbuf;
}

static void rmrf(const char *path)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: cannot remove %s\n", path);
}

const char *mcbt_tmpdir(void)
{
	char cwd[2048];

	if (!getcwd(cwd, sizeof(cwd))) {
		perror("getcwd");
		exit(2);
	}
	snprintf(tmpbuf, sizeof(tmpbuf), "%s/build/tests/tmp/%s.%s.%u", cwd,
		 program_invocation_short_name, current ? current : "main", ntmp++);
	rmrf(tmpbuf);
	{
		char cmd[4200];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", tmpbuf);
		if (system(cmd) != 0) {
			fprintf(stderr, "cannot create %s\n", tmpbuf);
			exit(2);
		}
	}
	return tmpbuf;
}

void mcbt_write(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
}

double mcbt_gauss(struct mcb_rng *r)
{
	double u1 = mcb_rng_double(r), u2 = mcb_rng_double(r);

	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void mcbt_put(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mcbt_write(path, p, n);
}

void mcbt_put_args(const char *dir, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof(buf)) {
		fprintf(stderr, "mcbt_put_args: %s/args.json would be truncated\n", dir);
		exit(2);
	}
	mcbt_put(dir, "args.json", buf, (size_t)len);
}

int mcbt_get(const char *dir, const char *name, void *p, size_t n)
{
	char path[4200];
	FILE *f;
	size_t got;
	int extra;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot read %s", path);
		return -1;
	}
	got = n ? fread(p, 1, n, f) : 0;
	extra = fgetc(f) != EOF;
	fclose(f);
	if (got != n || extra) {
		mcbt_fail(__FILE__, __LINE__, "%s: expected %zu bytes", path, n);
		return -1;
	}
	return 0;
}

void mcbt_write_llama2c(const char *path, int dim, int hidden, int layers, int heads, int kv,
			int vocab, int seq)
{
	int32_t hdr[7] = {dim, hidden, layers, heads, kv, vocab, seq};
	int kv_dim = dim * kv / heads, head = dim / heads;
	size_t n = (size_t)vocab * dim + (size_t)layers * dim + (size_t)layers * dim * dim +
		   2 * (size_t)layers * kv_dim * dim + (size_t)layers * dim * dim +
		   (size_t)layers * dim + 3 * (size_t)layers * hidden * dim + dim +
		   (size_t)seq * head;
	float *w = malloc(n * sizeof(float));
	uint32_t x = 12345;
	FILE *f;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		w[i] = ((float)(x % 20001) - 10000.0f) / 40000.0f;
	}
	f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(2);
	}
	fwrite(hdr, sizeof(hdr), 1, f);
	fwrite(w, sizeof(float), n, f);
	fclose(f);
	free(w);
}

const char *mcbt_python(const char *ref)
{
	static int done;
	static const char *found;
	const char *cand[] = {"python3", "/usr/bin/python3"}, *env = getenv("MCB_PYTHON");
	char cmd[4200];
	size_t i, ncand = 2;

	if (!done) {
		done = 1;
		if (env && *env) {
			cand[0] = env;
			ncand = 1;
		}
		for (i = 0; i < ncand && !found; i++) {
			snprintf(cmd, sizeof(cmd), "%s -c 'import numpy' >/dev/null 2>&1", cand[i]);
			if (system(cmd) == 0)
				found = cand[i];
		}
	}
	if (!found)
		mcbt_skip("NO PYTHON3 WITH NUMPY (tried %s): NOT cross-checked against %s; "
			  "install python3-numpy (make deps)",
			  env && *env ? "$MCB_PYTHON" : "python3, /usr/bin/python3", ref);
	return found;
}
