/*
 * bench_hash: throughput of mcb_sha256_file on a large file (default 1 GiB),
 * for bench/hash.sh, which compares it with `openssl dgst -sha256`.
 *
 *   bench_hash [-r RUNS] [-s MIB] FILE
 *
 * Creates FILE (pseudo-random bytes, xorshift64) when it is missing or has
 * another size, reads it once so the page cache is warm for both tools, then
 * hashes it RUNS times (default 3) and prints, one per line:
 *
 *   bytes <n>
 *   sha256 <64 hex>
 *   best_s <seconds of the fastest run>
 *   mb_s <n / 1e6 / best_s>
 *
 * Exit status 0, or 1 with a message on stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mcb/err.h"
#include "mcb/hash.h"
#include "mcb/os.h"

#define BLOCK (1u << 20)

static int generate(const char *path, uint64_t size)
{
	uint64_t *block = mcb_xmalloc(BLOCK), x = 0x2545F4914F6CDD1Dull, done = 0;
	char tmp[4096];
	size_t i, n;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "bench_hash: cannot create '%s': %s\n", tmp, strerror(errno));
		free(block);
		return -1;
	}
	while (done < size) {
		for (i = 0; i < BLOCK / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			block[i] = x;
		}
		n = size - done < BLOCK ? (size_t)(size - done) : BLOCK;
		if (mcb_os_write_all(fd, block, n) < 0) {
			fprintf(stderr, "bench_hash: cannot write '%s': %s\n", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			free(block);
			return -1;
		}
		done += n;
	}
	free(block);
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		fprintf(stderr, "bench_hash: cannot write '%s': %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Read path once, discarding the bytes, so that it sits in the page cache. */
static int warm(const char *path)
{
	char *block = mcb_xmalloc(BLOCK);
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		free(block);
		return -1;
	}
	while ((n = read(fd, block, BLOCK)) > 0 || (n < 0 && errno == EINTR))
		;
	close(fd);
	free(block);
	return n < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct mcb_errctx e;
	struct mcb_digest d;
	struct stat st;
	uint64_t size, mib = 1024, bytes = 0;
	char hex[MCB_HEX_LEN + 1];
	double best = 0, s;
	int64_t t0;
	int opt, runs = 3, i;

	while ((opt = getopt(argc, argv, "r:s:")) != -1) {
		if (opt == 'r')
			runs = atoi(optarg);
		else if (opt == 's')
			mib = strtoull(optarg, NULL, 10);
		else
			goto usage;
	}
	if (optind != argc - 1 || runs < 1 || mib < 1 || mib > (1u << 20))
		goto usage;
	size = mib << 20;
	if (stat(argv[optind], &st) < 0 || (uint64_t)st.st_size != size) {
		fprintf(stderr, "bench_hash: writing %llu MiB of test data to %s\n",
			(unsigned long long)mib, argv[optind]);
		if (generate(argv[optind], size) < 0)
			return 1;
	}
	if (warm(argv[optind]) < 0) {
		fprintf(stderr, "bench_hash: cannot read '%s': %s\n", argv[optind], strerror(errno));
		return 1;
	}
	for (i = 0; i < runs; i++) {
		t0 = mcb_os_now_ns();
		if (mcb_sha256_file(argv[optind], &d, &bytes, &e)) {
			fprintf(stderr, "bench_hash: %s\n", e.msg);
			return 1;
		}
		s = (double)(mcb_os_now_ns() - t0) / 1e9;
		if (i == 0 || s < best)
			best = s;
	}
	mcb_digest_hex(&d, hex);
	printf("bytes %llu\nsha256 %s\nbest_s %.6f\nmb_s %.1f\n", (unsigned long long)bytes, hex,
	       best, (double)bytes / 1e6 / best);
	return 0;
usage:
	fprintf(stderr, "usage: bench_hash [-r RUNS] [-s MIB] FILE\n");
	return 1;
}
