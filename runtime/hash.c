/* hash: SHA-256 through OpenSSL's EVP interface. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "mcb/buf.h"
#include "mcb/err.h"
#include "mcb/hash.h"

#define FILE_BLOCK (1u << 20)

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetch the implementation once: EVP_sha256() would re-fetch on every init. */
static void fetch_sha256(void)
{
	/* Not reading openssl.cnf saves a millisecond on every run (a no-op
	 * rebuild is measured in them); SHA-256 needs no configuration. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (!sha256_md)
		mcb_die("openssl has no SHA-256 implementation");
}

void mcb_hasher_init(struct mcb_hasher *h)
{
	EVP_MD_CTX *c;

	pthread_once(&sha256_once, fetch_sha256);
	c = EVP_MD_CTX_new();
	if (!c || !EVP_DigestInit_ex(c, sha256_md, NULL))
		mcb_die("cannot initialise SHA-256");
	h->ctx = c;
}

void mcb_hasher_update(struct mcb_hasher *h, const void *p, size_t n)
{
	if (n && !EVP_DigestUpdate(h->ctx, p, n))
		mcb_die("SHA-256 update failed");
}

void mcb_hasher_final(struct mcb_hasher *h, struct mcb_digest *out)
{
	unsigned int len = 0;

	if (!EVP_DigestFinal_ex(h->ctx, out->b, &len) || len != MCB_DIGEST_LEN)
		mcb_die("SHA-256 final failed");
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void mcb_sha256(const void *p, size_t n, struct mcb_digest *out)
{
	struct mcb_hasher h;

	mcb_hasher_init(&h);
	mcb_hasher_update(&h, p, n);
	mcb_hasher_final(&h, out);
}

int mcb_sha256_file(const char *path, struct mcb_digest *out, uint64_t *size,
		    struct mcb_errctx *e)
{
	struct mcb_hasher h;
	unsigned char *block;
	uint64_t total = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mcb_errf(e, errno == ENOENT ? MCB_ENOENT : MCB_EIO,
				"cannot open '%s':", path);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	block = mcb_xmalloc(FILE_BLOCK);
	mcb_hasher_init(&h);
	for (;;) {
		n = read(fd, block, FILE_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = mcb_errf(e, MCB_EIO, "cannot read '%s':", path);

			mcb_hasher_final(&h, out);
			free(block);
			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		mcb_hasher_update(&h, block, (size_t)n);
		total += (uint64_t)n;
	}
	mcb_hasher_final(&h, out);
	free(block);
	close(fd);
	if (size)
		*size = total;
	return 0;
}

void mcb_digest_hex(const struct mcb_digest *d, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < MCB_DIGEST_LEN; i++) {
		hex[2 * i] = digits[d->b[i] >> 4];
		hex[2 * i + 1] = digits[d->b[i] & 15];
	}
	hex[MCB_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int mcb_digest_parse(const char *hex, size_t n, struct mcb_digest *d)
{
	int i, hi, lo;

	if (n != MCB_HEX_LEN)
		return -1;
	for (i = 0; i < MCB_DIGEST_LEN; i++) {
		hi = hexval(hex[2 * i]);
		lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		d->b[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int mcb_digest_eq(const struct mcb_digest *a, const struct mcb_digest *b)
{
	return memcmp(a->b, b->b, MCB_DIGEST_LEN) == 0;
}

void mcb_sum_line_add(struct mcb_buf *b)
{
	struct mcb_digest d;
	char hex[MCB_HEX_LEN + 1];

	mcb_sha256(b->data, b->len, &d);
	mcb_digest_hex(&d, hex);
	mcb_buf_printf(b, "sha256 %s\n", hex);
}

long mcb_sum_line_check(const char *p, size_t n, const char **why)
{
	struct mcb_digest want, got;
	const char *line;

	if (n < MCB_SUM_LINE_LEN || p[n - 1] != '\n' ||
	    memcmp(p + n - MCB_SUM_LINE_LEN, "sha256 ", 7) ||
	    mcb_digest_parse(p + n - MCB_SUM_LINE_LEN + 7, MCB_HEX_LEN, &want) < 0) {
		*why = "no checksum line at the end";
		return -1;
	}
	line = p + n - MCB_SUM_LINE_LEN;
	mcb_sha256(p, (size_t)(line - p), &got);
	if (!mcb_digest_eq(&want, &got)) {
		*why = "checksum mismatch";
		return -1;
	}
	return (long)(line - p);
}
