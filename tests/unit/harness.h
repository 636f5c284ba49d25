/*
 * harness: a tiny unit-test harness.  A test file defines static void test
 * functions and a main that RUNs them and returns mcbt_done().
 *
 *   static void test_roundtrip(void) { CHECK(x == 1); CHECK_EQ(a, b); }
 *   int main(void) { RUN(test_roundtrip); return mcbt_done(); }
 *
 * A failed CHECK prints file:line and the expression and marks the current
 * test failed (the test goes on).  Tests that need ../shared content call
 * mcbt_shared(); when it is missing they say so and are counted as skipped,
 * loudly, in the summary.
 */
#ifndef MCB_HARNESS_H
#define MCB_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void mcbt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mcbt_run(const char *name, void (*fn)(void));
int mcbt_done(void);
/* Mark the running test skipped with a reason (printed). */
void mcbt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Absolute path of rel inside ../shared (MCB_SHARED), or NULL after a
 * mcbt_skip naming the missing file. */
const char *mcbt_shared(const char *rel);
/* A python3 that imports numpy ($MCB_PYTHON alone when set), or NULL after
 * mcbt_skip saying that the test was NOT cross-checked against ref (the
 * reference script's path). */
const char *mcbt_python(const char *ref);
/* A fresh empty directory for the running test (under build/tests/tmp). */
const char *mcbt_tmpdir(void);
/* Path of rel inside tests/data (MCB_TESTDATA). */
const char *mcbt_data(const char *rel);
/* Write n bytes to path (test fixture helper); aborts the test binary on failure. */
void mcbt_write(const char *path, const void *p, size_t n);
/* For the numpy cross-checks: dir/name with n bytes; dir/args.json from a
 * printf format; dir/name read back, exactly n bytes (0, or -1 after a
 * check failure naming the file). */
void mcbt_put(const char *dir, const char *name, const void *p, size_t n);
void mcbt_put_args(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mcbt_get(const char *dir, const char *name, void *p, size_t n);
struct mcb_rng;
/* A standard normal value from r (Box-Muller). */
double mcbt_gauss(struct mcb_rng *r);
/* A llama2.c checkpoint with small deterministic random weights (|w| <= 0.25). */
void mcbt_write_llama2c(const char *path, int dim, int hidden, int layers, int heads, int kv,
			int vocab, int seq);

#define RUN(fn) mcbt_run(#fn, fn)
#define CHECK(cond)                                                      \
	do {                                                             \
		if (!(cond))                                             \
			mcbt_fail(__FILE__, __LINE__, "%s", #cond);      \
	} while (0)
#define CHECK_EQ(a, b)                                                             \
	do {                                                                       \
		long long a_ = (long long)(a), b_ = (long long)(b);                \
		if (a_ != b_)                                                      \
			mcbt_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, \
				  #b, a_, b_);                                     \
	} while (0)
#define CHECK_STR(a, b)                                                             \
	do {                                                                        \
		const char *a_ = (a), *b_ = (b);                                    \
		if (!a_ || !b_ || strcmp(a_, b_))                                   \
			mcbt_fail(__FILE__, __LINE__, "%s == %s (\"%s\" != \"%s\")", \
				  #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");  \
	} while (0)
/* expr returns 0 or a negative mcb_err with a message in the errctx e. */
#define CHECK_OK(expr, e)                                                            \
	do {                                                                         \
		int rc_ = (expr);                                                    \
		if (rc_ != 0)                                                        \
			mcbt_fail(__FILE__, __LINE__, "%s returned %d: %s", #expr, rc_, \
				  (e)->msg);                                         \
	} while (0)
/* expr must fail with code and a message containing substring sub. */
#define CHECK_ERR(expr, e, code, sub)                                                  \
	do {                                                                           \
		int rc_ = (expr);                                                      \
		if (rc_ != (code) || !strstr((e)->msg, (sub)))                         \
			mcbt_fail(__FILE__, __LINE__,                                  \
				  "%s returned %d (\"%s\"), expected %d with \"%s\"", #expr, \
				  rc_, (e)->msg, (int)(code), (sub));                    \
	} while (0)

#endif
