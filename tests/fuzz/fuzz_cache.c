/*
 * libFuzzer target: the cache's state files, read back as mcbuild reads
 * them.  The first input byte picks the reader; the rest is the body of the
 * file, framed so that the parser proper is reached: the header line (and
 * for the stamp and action entries, the key line the reader expects) is
 * prepended and a correct "sha256 ..." line appended, since a random body
 * would otherwise stop at the checksum.
 *
 *   0: an action entry (mcb_ac_get): must be a miss or a hit, never a
 *      crash; a corrupt entry is quarantined, so quarantine/ is emptied
 *   1: the stat cache (mcb_statcache_open and a lookup)
 *   2: the no-op stamp (mcb_stamp_check)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcb/action.h"
#include "mcb/arena.h"
#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"
#include "mcb/stamp.h"
#include "mcb/statcache.h"
#include "mcb/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[256];
static struct mcb_store *store;
static struct mcb_stamp *stamp;
static char stamp_head[256]; /* "mcbuild-noop 1\nkey <hex>\n" */

static void setup(void)
{
	const char *w[1] = {"fuzz"};
	struct mcb_errctx e;
	struct mcb_buf b = MCB_BUF_INIT;
	char path[512], why[512];
	char *nl;
	int written = 0;

	snprintf(dir, sizeof(dir), "/tmp/mcb-fuzz-cache.%ld", (long)getpid());
	if (mcb_os_mkdirs(dir, &e) || mcb_store_open(dir, &store, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		abort();
	}
	/* an empty stamp written by the real writer gives the header and key line */
	stamp = mcb_stamp_begin(w, 1);
	snprintf(path, sizeof(path), "%s/noop", dir);
	mcb_stamp_set_start(stamp, mcb_os_wall_ns() + 2000000000LL);
	if (!stamp || mcb_stamp_save(stamp, path, &written, why, sizeof(why), &e) || !written ||
	    mcb_os_read_file(path, 4096, &b, &e)) {
		fprintf(stderr, "cannot write the seed stamp\n");
		abort();
	}
	nl = strchr(strchr(b.data, '\n') + 1, '\n');
	snprintf(stamp_head, sizeof(stamp_head), "%.*s", (int)(nl + 1 - b.data), b.data);
	mcb_buf_release(&b);
}

static void empty_quarantine(void)
{
	char q[512], p[1024];
	struct dirent *d;
	DIR *dp;

	snprintf(q, sizeof(q), "%s/quarantine", dir);
	dp = opendir(q);
	if (!dp)
		return;
	while ((d = readdir(dp)))
		if (d->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", q, d->d_name);
			unlink(p);
		}
	closedir(dp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mcb_buf b = MCB_BUF_INIT;
	struct mcb_errctx e;
	struct mcb_arena a;
	char path[512], hex[MCB_HEX_LEN + 1], why[512];
	struct mcb_digest key, d;
	int which;

	if (!store)
		setup();
	if (size < 1)
		return 0;
	which = data[0] % 3;
	data++;
	size--;
	mcb_arena_init(&a);
	if (which == 0) {
		struct mcb_action act;
		int rc;

		mcb_sha256("fuzz", 4, &key);
		mcb_digest_hex(&key, hex);
		mcb_buf_printf(&b, "mcbuild-action 1\nkey %s\n", hex);
		mcb_buf_add(&b, data, size);
		mcb_sum_line_add(&b);
		snprintf(path, sizeof(path), "%s", mcb_ac_path(store, &key, &a));
		if (mcb_os_mkdirs(mcb_path_dir(&a, path), &e) ||
		    mcb_os_write_atomic(path, b.data, b.len, 0644, &e))
			abort();
		rc = mcb_ac_get(store, &key, &a, &act, &e);
		if (rc != 0 && rc != MCB_ENOENT && rc != MCB_ECORRUPT)
			abort();
		if (rc == 0 && act.nout > 4096)
			abort();
		unlink(path);
		empty_quarantine();
	} else if (which == 1) {
		struct mcb_statcache *c = NULL;
		int warning;
		uint64_t sz;

		mcb_buf_adds(&b, "mcbuild-statcache 1\n");
		mcb_buf_add(&b, data, size);
		mcb_sum_line_add(&b);
		snprintf(path, sizeof(path), "%s/statcache", dir);
		if (mcb_os_write_atomic(path, b.data, b.len, 0644, &e))
			abort();
		mcb_statcache_open(path, &c, &warning, &e);
		if (warning && !strstr(e.msg, path) && !strstr(e.msg, "stat cache"))
			abort();
		snprintf(path, sizeof(path), "%s/VERSION", dir);
		(void)mcb_statcache_digest(c, path, &d, &sz, &e);
		mcb_statcache_close(c);
	} else {
		size_t n;

		mcb_buf_adds(&b, stamp_head);
		mcb_buf_add(&b, data, size);
		mcb_sum_line_add(&b);
		snprintf(path, sizeof(path), "%s/noop.fuzz", dir);
		if (mcb_os_write_atomic(path, b.data, b.len, 0644, &e))
			abort();
		why[0] = '\0';
		if (!mcb_stamp_check(stamp, path, &n, why, sizeof(why)) && !why[0])
			abort();
	}
	mcb_buf_release(&b);
	mcb_arena_release(&a);
	return 0;
}
