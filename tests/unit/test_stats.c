/* Unit tests for stats: percentiles, normal quantile, McNemar, paired accuracy, bootstrap. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/rng.h"
#include "mcb/stats.h"

/* |got - want| <= tol * |want| (tol absolute when want == 0) */
#define CHECK_REL(got, want, tol)                                                                  \
	do {                                                                                       \
		double g_ = (got), w_ = (want), t_ = (tol) * (w_ != 0 ? fabs(w_) : 1);             \
		if (!(fabs(g_ - w_) <= t_))                                                        \
			mcbt_fail(__FILE__, __LINE__, "%s = %.17g, expected %.17g (tol %g)", #got, \
				  g_, w_, (double)(tol));                                          \
	} while (0)

static void test_percentile(void)
{
	const double x[] = {1, 2, 3, 4}, one[] = {7.5};

	/* R: quantile(1:4, c(0, .25, .5, .75, 1, .1), type = 7) */
	CHECK(mcb_percentile_sorted(x, 4, 0) == 1);
	CHECK(mcb_percentile_sorted(x, 4, 0.25) == 1.75);
	CHECK(mcb_percentile_sorted(x, 4, 0.5) == 2.5);
	CHECK(mcb_percentile_sorted(x, 4, 0.75) == 3.25);
	CHECK(mcb_percentile_sorted(x, 4, 1) == 4);
	CHECK_REL(mcb_percentile_sorted(x, 4, 0.1), 1.3, 1e-15);
	/* h = 2/3 * 3 lands on an order statistic up to rounding */
	CHECK_REL(mcb_percentile_sorted(x, 4, 2.0 / 3), 3, 1e-15);
	CHECK(mcb_percentile_sorted(one, 1, 0) == 7.5);
	CHECK(mcb_percentile_sorted(one, 1, 0.3) == 7.5);
	CHECK(mcb_percentile_sorted(one, 1, 1) == 7.5);
	/* clamped outside [0, 1]; NaN for NaN q or no data */
	CHECK(mcb_percentile_sorted(x, 4, -0.5) == 1);
	CHECK(mcb_percentile_sorted(x, 4, 2) == 4);
	CHECK(isnan(mcb_percentile_sorted(x, 4, NAN)));
	CHECK(isnan(mcb_percentile_sorted(x, 0, 0.5)));
}

static double phi_cdf(double x)
{
	return 0.5 * erfc(-x / sqrt(2));
}

static void test_normal_quantile(void)
{
	/* references: mpmath 1.3 at 80 digits, bisection on log ncdf(x) = log p for the double p */
	static const struct {
		double p, x;
	} ref[] = {
		{0.975, 1.959963984540054},	 {0.995, 2.5758293035489004},
		{0.025, -1.9599639845400543},	 {1e-10, -6.361340902404057},
		{1 - 1e-10, 6.361340889697422},	 {0.075, -1.439531470938456},
		{0.925, 1.4395314709384561},	 {0.07, -1.4757910281791706},
		{1.3888e-11, -6.65790404926425}, {1e-20, -9.262340089798407},
		{1e-300, -37.0470962993612},	 {5e-324, -38.467405617144344},
	};
	size_t i;
	double p;

	CHECK(mcb_normal_quantile(0.5) == 0);
	for (i = 0; i < sizeof(ref) / sizeof(ref[0]); i++)
		CHECK_REL(mcb_normal_quantile(ref[i].p), ref[i].x, 2e-15);
	/* Phi(quantile(p)) == p over the range; erfc's own error, amplified by
	 * x^2 in the tails, sets the tolerance */
	for (p = 1e-300; p < 0.5; p *= 1.7) {
		double x = mcb_normal_quantile(p);

		CHECK_REL(phi_cdf(x), p, 1e-15 * (1 + x * x));
	}
	for (p = 0.001; p < 1; p += 0.001) {
		double x = mcb_normal_quantile(p);

		CHECK_REL(phi_cdf(x), p, 1e-14);
		/* symmetric up to the rounding of 1 - p (1e-16 / phi(3.1) = 3e-14) */
		CHECK(fabs(mcb_normal_quantile(1 - p) + x) < 1e-13);
	}
	CHECK(mcb_normal_quantile(0) == -INFINITY);
	CHECK(mcb_normal_quantile(1) == INFINITY);
	CHECK(isnan(mcb_normal_quantile(-0.1)));
	CHECK(isnan(mcb_normal_quantile(1.5)));
	CHECK(isnan(mcb_normal_quantile(NAN)));
}

/* Paired accuracy on n01 (a right, b wrong), n10 (a wrong, b right), n11 and n00 agreements. */
static int paired(size_t c01, size_t c10, size_t c11, size_t c00, double conf, struct mcb_ci *ci,
		  struct mcb_errctx *e)
{
	size_t n = c01 + c10 + c11 + c00, i = 0, k, n01 = 99, n10 = 99;
	uint8_t *a = malloc(n ? n : 1), *b = malloc(n ? n : 1);
	int rc;

	for (k = 0; k < c01; k++, i++)
		a[i] = 1, b[i] = 0;
	for (k = 0; k < c11; k++, i++)
		a[i] = 1, b[i] = 1;
	for (k = 0; k < c10; k++, i++)
		a[i] = 0, b[i] = 1;
	for (k = 0; k < c00; k++, i++)
		a[i] = 0, b[i] = 0;
	rc = mcb_paired_accuracy(a, b, n, conf, ci, &n01, &n10, e);
	if (rc == 0 && (n01 != c01 || n10 != c10))
		mcbt_fail(__FILE__, __LINE__, "counted n01 %zu n10 %zu, made %zu %zu", n01, n10,
			  c01, c10);
	free(a);
	free(b);
	return rc;
}

static void test_mcnemar(void)
{
	struct mcb_errctx e;
	struct mcb_ci ci;
	double z;

	/* exact values: the p of the exact binomial sum, small cases by hand */
	CHECK_OK(paired(0, 0, 3, 2, 0.95, &ci, &e), &e);
	CHECK(ci.p == 1);
	CHECK(ci.point == 0 && ci.lo == 0 && ci.hi == 0);
	CHECK_OK(paired(5, 0, 1, 1, 0.95, &ci, &e), &e);
	CHECK(ci.p == 0.0625); /* 2 * 2^-5 */
	CHECK_OK(paired(1, 9, 0, 0, 0.95, &ci, &e), &e);
	CHECK(ci.p == 0.021484375); /* 2 * (1 + 10) / 2^10 */
	CHECK_OK(paired(10, 10, 5, 5, 0.95, &ci, &e), &e);
	CHECK(ci.p == 1.0);
	CHECK_OK(paired(3, 1, 0, 0, 0.95, &ci, &e), &e);
	CHECK(ci.p == 0.625);
	/* around the switch from exact integers (m <= 60) to log-gamma; the
	 * references are Python's exact 2 sum C(m, i) / 2^m with Fractions */
	CHECK_OK(paired(25, 35, 0, 0, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 0.2450608330229457, 1e-15);
	CHECK_OK(paired(25, 36, 0, 0, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 0.20003136851310316, 1e-13);
	CHECK_OK(paired(0, 61, 0, 0, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 8.673617379884035e-19, 1e-13);
	CHECK_OK(paired(30, 31, 0, 0, 0.95, &ci, &e), &e);
	CHECK(ci.p == 1.0);
	CHECK_OK(paired(100, 140, 7, 0, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 0.011664092317677663, 1e-12);
	CHECK_OK(paired(0, 2000, 0, 0, 0.95, &ci, &e), &e);
	CHECK(ci.p >= 0 && ci.p < 1e-300); /* 2^-1999 underflows */
	/* large: exact reference, and the continuity-corrected normal
	 * approximation 2 Phi(-(|n10 - n01| - 1) / sqrt(m)) within 1% */
	CHECK_OK(paired(4000, 4300, 1000, 1000, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 0.001029736761268161, 1e-9);
	z = (300.0 - 1) / sqrt(8300);
	CHECK_REL(ci.p, erfc(z / sqrt(2)), 0.01);
	CHECK_OK(paired(1000000, 1003000, 0, 0, 0.95, &ci, &e), &e);
	z = (3000.0 - 1) / sqrt(2003000);
	CHECK_REL(ci.p, erfc(z / sqrt(2)), 0.001);
	/* symmetric in n01, n10 */
	CHECK_OK(paired(4300, 4000, 0, 0, 0.95, &ci, &e), &e);
	CHECK_REL(ci.p, 0.001029736761268161, 1e-9);
}

static void test_paired_accuracy(void)
{
	/* a: 1 1 1 0 1 1 0 0 1 0, b: 0 0 0 1 1 1 0 0 1 0: n01 = 3, n10 = 1, n = 10 */
	const uint8_t a[] = {1, 1, 1, 0, 1, 1, 0, 0, 1, 0}, b[] = {0, 0, 0, 1, 1, 1, 0, 0, 1, 0};
	const uint8_t bad[] = {0, 1, 2};
	struct mcb_errctx e;
	struct mcb_ci ci;
	size_t n01, n10;

	/* delta = (1 - 3)/10 = -0.2; Var = (4 - 4/10)/100 = 0.036;
	 * sqrt(0.036) = 0.18973665961010275; z(0.975) = 1.959963984540054;
	 * lo, hi = -0.2 -+ 0.371877019382736... */
	CHECK_OK(mcb_paired_accuracy(a, b, 10, 0.95, &ci, &n01, &n10, &e), &e);
	CHECK_EQ(n01, 3);
	CHECK_EQ(n10, 1);
	CHECK_REL(ci.point, -0.2, 1e-15);
	CHECK_REL(ci.lo, -0.5718770193827369, 1e-14);
	CHECK_REL(ci.hi, 0.17187701938273692, 1e-14);
	CHECK(ci.p == 0.625); /* 2 (1 + 4) / 16 */
	/* conf 0.9: z = 1.6448536269514722 */
	CHECK_OK(mcb_paired_accuracy(a, b, 10, 0.9, &ci, NULL, NULL, &e), &e);
	CHECK_REL(ci.hi - ci.point, 1.6448536269514722 * sqrt(0.036), 1e-14);
	/* full agreement: no discordant pairs, Var = 0, p = 1 */
	CHECK_OK(mcb_paired_accuracy(a, a, 10, 0.95, &ci, NULL, NULL, &e), &e);
	CHECK(ci.point == 0 && ci.lo == 0 && ci.hi == 0 && ci.p == 1);
	/* all 3 pairs discordant one way: Var = (3 - 3^2/3)/3^2 = 0 exactly */
	CHECK_OK(mcb_paired_accuracy(b, a, 3, 0.95, &ci, &n01, &n10, &e), &e);
	CHECK(ci.point == 1 && ci.lo == 1 && ci.hi == 1);
	CHECK(ci.p == 0.25);
	/* errors */
	CHECK_ERR(mcb_paired_accuracy(a, b, 0, 0.95, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: no items");
	CHECK_ERR(mcb_paired_accuracy(a, b, 10, 0, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: confidence level 0 is not in (0, 1)");
	CHECK_ERR(mcb_paired_accuracy(a, b, 10, 1, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: confidence level 1 is not in (0, 1)");
	CHECK_ERR(mcb_paired_accuracy(bad, a, 3, 0.95, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: item 2: a = 2 is not 0 or 1");
	CHECK_ERR(mcb_paired_accuracy(a, bad, 3, 0.95, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: item 2: b = 2 is not 0 or 1");
	CHECK_ERR(mcb_paired_accuracy(NULL, b, 3, 0.95, &ci, NULL, NULL, &e), &e, MCB_EINVAL,
		  "paired accuracy: NULL argument");
}

/*
 * The documented scheme written plainly with mcb_rng_below (stats.c's
 * header comment), as the oracle for the optimized loop.  Returns the number
 * of skipped resamples, or -1 when more than 1% are skipped.
 */
static int naive_bootstrap(const double *num, const double *den, size_t n, int reps, double conf,
			   uint64_t seed, struct mcb_ci *out)
{
	struct mcb_rng rng;
	double *stat = malloc((size_t)reps * sizeof(*stat)), sn = 0, sd = 0, t;
	size_t i, j, m = 0, le = 0, ge = 0, a;
	int r, skipped = 0;

	for (i = 0; i < n; i++) {
		sn += num[i];
		sd += den[i];
	}
	out->point = sn / sd;
	mcb_rng_seed(&rng, seed);
	for (r = 0; r < reps; r++) {
		sn = sd = 0;
		for (j = 0; j < n; j++) {
			i = mcb_rng_below(&rng, n);
			sn += num[i];
			sd += den[i];
		}
		if (sd == 0)
			skipped++;
		else
			stat[m++] = sn / sd;
	}
	/* insertion sort: a different sort than the code under test */
	for (i = 1; i < m; i++) {
		t = stat[i];
		for (a = i; a > 0 && stat[a - 1] > t; a--)
			stat[a] = stat[a - 1];
		stat[a] = t;
	}
	for (i = 0; i < m; i++) {
		le += stat[i] <= 0;
		ge += stat[i] >= 0;
	}
	if (m) {
		out->lo = mcb_percentile_sorted(stat, m, (1 - conf) / 2);
		out->hi = mcb_percentile_sorted(stat, m, (1 + conf) / 2);
		out->p = fmin(1, 2 * (double)(le < ge ? le : ge) / (double)m);
	}
	free(stat);
	return skipped * 100 > reps ? -1 : skipped;
}

static int same_ci(const struct mcb_ci *x, const struct mcb_ci *y)
{
	return x->point == y->point && x->lo == y->lo && x->hi == y->hi && x->p == y->p;
}

static void fill_random(double *num, double *den, size_t n, uint64_t seed, double zero_frac)
{
	struct mcb_rng g;
	size_t i;

	mcb_rng_seed(&g, seed);
	for (i = 0; i < n; i++) {
		den[i] = mcb_rng_double(&g) < zero_frac ? 0 : (double)(1 + mcb_rng_below(&g, 300));
		num[i] = den[i] * (mcb_rng_double(&g) - 0.3) + (mcb_rng_double(&g) - 0.5);
	}
}

static void test_bootstrap_scheme(void)
{
	/* n = 1 (no draws), 2, 3, a prime, more than one index chunk and not a
	 * multiple of it; with items of den 0 to exercise skipping */
	static const size_t sizes[] = {1, 2, 3, 97, 1024, 2500};
	static const double zero_frac[] = {0, 0, 0, 0.3, 0.5, 0.5};
	struct mcb_errctx e;
	struct mcb_ci got, want;
	size_t k;

	for (k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		double *num = malloc(n * sizeof(*num)), *den = malloc(n * sizeof(*den));
		int reps = n > 1000 ? 300 : 2000, skipped;

		fill_random(num, den, n, 1000 + k, zero_frac[k]);
		skipped = naive_bootstrap(num, den, n, reps, 0.9, 77 + k, &want);
		CHECK(skipped >= 0);
		CHECK_OK(mcb_bootstrap_ratio(num, den, n, reps, 0.9, 77 + k, &got, &e), &e);
		if (!same_ci(&got, &want))
			mcbt_fail(__FILE__, __LINE__,
				  "n = %zu: got %.17g [%.17g, %.17g] p %.17g, the scheme gives "
				  "%.17g [%.17g, %.17g] p %.17g",
				  n, got.point, got.lo, got.hi, got.p, want.point, want.lo, want.hi,
				  want.p);
		free(num);
		free(den);
	}
	{
		/* a skipping case that passes: 3 of 8 items with den 0, (3/8)^8 of
		 * the resamples (4 expected of 10,000) are left out */
		const double num[] = {1.5, -0.5, 2.25, 0.75, 3, 0, 1, -2};
		const double den[] = {2, 0, 3, 0, 4, 1, 0, 2};
		int skipped = naive_bootstrap(num, den, 8, 10000, 0.95, 7, &want);

		fprintf(stderr, "  den-0 items: %d of 10000 resamples skipped\n", skipped);
		CHECK(skipped > 0 && skipped <= 100);
		CHECK_OK(mcb_bootstrap_ratio(num, den, 8, 10000, 0.95, 7, &got, &e), &e);
		CHECK(same_ci(&got, &want));
	}
}

static void test_bootstrap_point(void)
{
	const double num[] = {1, 2, 3.5, 0.5}, den[] = {2, 0, 4, 2};
	const double pnum[] = {1, 3.5, 0.5}, pden[] = {2, 4, 2};
	const double nll_a[] = {10, 20, 7}, nll_b[] = {11, 22, 7.25}, cnt[] = {4, 4, 2};
	struct mcb_errctx e;
	struct mcb_ci ci;

	/* 7 / 8; the one den-0 item is fine ((1/4)^4 of the resamples skipped) */
	CHECK_OK(mcb_bootstrap_ratio(num, den, 4, 1000, 0.95, 1, &ci, &e), &e);
	CHECK(ci.point == 0.875);
	CHECK(ci.lo <= ci.point && ci.point <= ci.hi);
	CHECK(ci.p == 0); /* every resample is positive */
	/* 5 / 8; with every den > 0 each resample lies between the item ratios 1/4 and 7/8 */
	CHECK_OK(mcb_bootstrap_ratio(pnum, pden, 3, 1000, 0.95, 1, &ci, &e), &e);
	CHECK(ci.point == 0.625);
	CHECK(ci.lo >= 0.25 && ci.hi <= 0.875 && ci.lo < ci.hi);
	/* exp((1 + 2 + 0.25) / 10) */
	CHECK_OK(mcb_bootstrap_ppl_ratio(nll_a, nll_b, cnt, 3, 1000, 0.95, 1, &ci, &e), &e);
	CHECK(ci.point == exp(3.25 / 10));
	CHECK(ci.lo <= ci.point && ci.point <= ci.hi);
	CHECK(ci.lo >= exp(0.125) && ci.hi <= exp(0.5) && ci.lo < ci.hi);
	/* ppl of swapped models: the reciprocal ratio */
	{
		struct mcb_ci inv;

		CHECK_OK(mcb_bootstrap_ppl_ratio(nll_b, nll_a, cnt, 3, 1000, 0.95, 1, &inv, &e),
			 &e);
		CHECK_REL(inv.point * ci.point, 1, 1e-15);
		CHECK_REL(inv.lo * ci.hi, 1, 1e-15);
		CHECK_REL(inv.hi * ci.lo, 1, 1e-15);
		CHECK(inv.p == ci.p);
	}
}

static void test_bootstrap_degenerate(void)
{
	double num[50], den[50], zero[50];
	struct mcb_errctx e;
	struct mcb_ci ci;
	size_t i;

	for (i = 0; i < 50; i++) {
		num[i] = 0.3;
		den[i] = 2;
		zero[i] = 0;
	}
	/* every resample adds the same numbers in the same order: the CI is the point */
	CHECK_OK(mcb_bootstrap_ratio(num, den, 50, 500, 0.95, 3, &ci, &e), &e);
	CHECK(ci.lo == ci.point && ci.hi == ci.point);
	CHECK_REL(ci.point, 0.15, 1e-15);
	CHECK(ci.p == 0);
	/* identical models: ratio 1, p 1 */
	CHECK_OK(mcb_bootstrap_ppl_ratio(num, num, den, 50, 500, 0.95, 3, &ci, &e), &e);
	CHECK(ci.point == 1 && ci.lo == 1 && ci.hi == 1);
	CHECK(ci.p == 1);
	CHECK_OK(mcb_bootstrap_ratio(zero, den, 50, 500, 0.95, 3, &ci, &e), &e);
	CHECK(ci.point == 0 && ci.lo == 0 && ci.hi == 0 && ci.p == 1);
	/* one item */
	CHECK_OK(mcb_bootstrap_ratio(num, den, 1, 100, 0.5, 3, &ci, &e), &e);
	CHECK(ci.point == 0.15 && ci.lo == 0.15 && ci.hi == 0.15);
}

static void test_bootstrap_determinism(void)
{
	enum { N = 500 };
	double num[N], den[N], nb[N];
	struct mcb_errctx e;
	struct mcb_ci c1, c2, c3;
	size_t i;

	fill_random(num, den, N, 42, 0.1);
	for (i = 0; i < N; i++)
		nb[i] = num[i] + 0.01 * den[i] + sin((double)i);
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 2000, 0.95, 9, &c1, &e), &e);
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 2000, 0.95, 9, &c2, &e), &e);
	CHECK(memcmp(&c1, &c2, sizeof(c1)) == 0);
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 2000, 0.95, 10, &c3, &e), &e);
	CHECK(c3.point == c1.point);
	CHECK(c3.lo != c1.lo || c3.hi != c1.hi);
	CHECK_OK(mcb_bootstrap_ppl_ratio(num, nb, den, N, 2000, 0.95, 9, &c1, &e), &e);
	CHECK_OK(mcb_bootstrap_ppl_ratio(num, nb, den, N, 2000, 0.95, 9, &c2, &e), &e);
	CHECK(memcmp(&c1, &c2, sizeof(c1)) == 0);
	CHECK_OK(mcb_bootstrap_ppl_ratio(num, nb, den, N, 2000, 0.95, UINT64_MAX, &c3, &e), &e);
	CHECK(c3.point == c1.point);
	CHECK(c3.lo != c1.lo || c3.hi != c1.hi);
}

/*
 * Coverage: 200 simulated datasets of 100 items from a known distribution;
 * the 95% CI must contain the true value in 88%..99% of them.  The data and
 * the bootstrap seeds are fixed, so the counts are too (printed).
 *   ratio: den ~ U{1..4}, num = den * U(0, 1): sum(num)/sum(den) -> 1/2
 *   ppl:   cnt ~ U{1..4}, nll_b - nll_a = cnt * (U(0, 1) - 0.4): ratio -> e^0.1
 *   null:  num = den * (U(0, 1) - 1/2): true 0, p < 0.05 in about 5%
 */
static void test_bootstrap_coverage(void)
{
	enum { N = 100, SETS = 200, REPS = 1000 };
	double num[N], den[N], na[N], nb[N], nz[N];
	struct mcb_errctx e;
	struct mcb_ci c;
	struct mcb_rng g;
	int s, hit_ratio = 0, hit_ppl = 0, hit_null = 0, reject_null = 0;
	size_t i;

	mcb_rng_seed(&g, 20240601);
	for (s = 0; s < SETS; s++) {
		for (i = 0; i < N; i++) {
			den[i] = (double)(1 + mcb_rng_below(&g, 4));
			num[i] = den[i] * mcb_rng_double(&g);
			na[i] = den[i] * 2.5 + mcb_rng_double(&g);
			nb[i] = na[i] + den[i] * (mcb_rng_double(&g) - 0.4);
			nz[i] = den[i] * (mcb_rng_double(&g) - 0.5);
		}
		CHECK_OK(mcb_bootstrap_ratio(num, den, N, REPS, 0.95, 1000 + s, &c, &e), &e);
		hit_ratio += c.lo <= 0.5 && 0.5 <= c.hi;
		CHECK_OK(mcb_bootstrap_ppl_ratio(na, nb, den, N, REPS, 0.95, 2000 + s, &c, &e), &e);
		hit_ppl += c.lo <= exp(0.1) && exp(0.1) <= c.hi;
		CHECK_OK(mcb_bootstrap_ratio(nz, den, N, REPS, 0.95, 3000 + s, &c, &e), &e);
		hit_null += c.lo <= 0 && 0 <= c.hi;
		reject_null += c.p < 0.05;
	}
	fprintf(stderr,
		"  coverage of 95%% CIs in %d datasets: ratio %d, ppl %d, null %d; null p < 0.05: "
		"%d\n",
		SETS, hit_ratio, hit_ppl, hit_null, reject_null);
	CHECK(hit_ratio >= 176 && hit_ratio <= 198);
	CHECK(hit_ppl >= 176 && hit_ppl <= 198);
	CHECK(hit_null >= 176 && hit_null <= 198);
	CHECK(reject_null >= 2 && reject_null <= 24);
}

/* Run stats_ref.py on the items; 0 and the result, or -1 after a failure message. */
static int run_ref(const char *py, const char *kind, const double *c0, const double *c1,
		   const double *c2, size_t n, int reps, double conf, uint64_t seed,
		   struct mcb_ci *out, int *skipped)
{
	char path[4200], cmd[8600], line[512];
	FILE *f;
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.txt", mcbt_tmpdir(), kind);
	f = fopen(path, "w");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot write %s", path);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (c2)
			fprintf(f, "%.17g %.17g %.17g\n", c0[i], c1[i], c2[i]);
		else
			fprintf(f, "%.17g %.17g\n", c0[i], c1[i]);
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s tests/compat/stats_ref.py %s '%s' %d %.17g %" PRIu64, py,
		 kind, path, reps, conf, seed);
	f = popen(cmd, "r");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot run %s", cmd);
		return -1;
	}
	rc = fgets(line, sizeof(line), f) && sscanf(line, "%lf %lf %lf %lf %d", &out->point,
						    &out->lo, &out->hi, &out->p, skipped) == 5;
	if (pclose(f) != 0 || !rc) {
		mcbt_fail(__FILE__, __LINE__, "%s failed (run from the repository root)", cmd);
		return -1;
	}
	return 0;
}

static void check_close(const char *what, const struct mcb_ci *got, const struct mcb_ci *ref)
{
	fprintf(stderr,
		"  %s: C %.17g [%.17g, %.17g] p %.17g\n  %*s  python %.17g [%.17g, %.17g] p "
		"%.17g\n",
		what, got->point, got->lo, got->hi, got->p, (int)strlen(what), "", ref->point,
		ref->lo, ref->hi, ref->p);
	CHECK_REL(got->point, ref->point, 1e-12);
	CHECK_REL(got->lo, ref->lo, 1e-12);
	CHECK_REL(got->hi, ref->hi, 1e-12);
	CHECK_REL(got->p, ref->p, 1e-12);
}

static void test_bootstrap_python(void)
{
	enum { N = 37 };
	const double snum[] = {1.5, -0.5, 2.25, 0.75, 3, 0, 1, -2};
	const double sden[] = {2, 0, 3, 0, 4, 1, 0, 2};
	double num[N], den[N], na[N], nb[N];
	struct mcb_errctx e;
	struct mcb_ci got, ref;
	const char *py = mcbt_python("tests/compat/stats_ref.py");
	int skipped;
	size_t i;

	if (!py)
		return;
	/* ratios around 0.8: the CI stays far from 0, so relative tolerances are meaningful */
	for (i = 0; i < N; i++) {
		den[i] = (double)(1 + (i * 7) % 13);
		num[i] = den[i] * (0.8 + 0.05 * sin((double)i)) + 0.125 * (double)(i % 5);
		na[i] = den[i] * 2.75 + 0.001 * (double)(i * i);
		nb[i] = na[i] + den[i] * (0.1 + 0.3 * cos(1.3 * (double)i));
	}
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 2000, 0.95, 12345, &got, &e), &e);
	if (run_ref(py, "ratio", num, den, NULL, N, 2000, 0.95, 12345, &ref, &skipped) == 0) {
		check_close("ratio", &got, &ref);
		CHECK_EQ(skipped, 0);
	}
	CHECK_OK(mcb_bootstrap_ppl_ratio(na, nb, den, N, 2000, 0.95, 2024, &got, &e), &e);
	if (run_ref(py, "ppl", na, nb, den, N, 2000, 0.95, 2024, &ref, &skipped) == 0)
		check_close("ppl", &got, &ref);
	/* the largest seed, the smallest reps, 80% */
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 100, 0.8, UINT64_MAX, &got, &e), &e);
	if (run_ref(py, "ratio", num, den, NULL, N, 100, 0.8, UINT64_MAX, &ref, &skipped) == 0)
		check_close("ratio, seed 2^64-1", &got, &ref);
	/* skipped resamples: both sides must leave out the same ones */
	CHECK_OK(mcb_bootstrap_ratio(snum, sden, 8, 10000, 0.9, 7, &got, &e), &e);
	if (run_ref(py, "ratio", snum, sden, NULL, 8, 10000, 0.9, 7, &ref, &skipped) == 0) {
		check_close("ratio with den-0 items", &got, &ref);
		CHECK(skipped > 0);
	}
}

static void test_bootstrap_errors(void)
{
	const double num[] = {1, 2, 3}, den[] = {1, 1, 1}, neg[] = {1, 1, -1}, zero[] = {0, 0, 0};
	const double nan3[] = {1, NAN, 3}, inf3[] = {1, 2, INFINITY};
	const double big[] = {1.5e308, 1.5e308}, pm[] = {1.5e308, -1.5e308}, ones[] = {1, 1};
	const double nlo[] = {-1.7e308, 0}, nhi[] = {1.7e308, 0}, half[] = {0, 1};
	const double dbig[] = {1.2e308, 0.5e308};
	struct mcb_errctx e;
	struct mcb_ci ci, want;
	char msg[256];
	int skipped;

	CHECK_ERR(mcb_bootstrap_ratio(num, den, 0, 1000, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: no items");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 99, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: reps = 99, need at least 100");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, -5, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: reps = -5, need at least 100");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 1000, 1, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: confidence level 1 is not in (0, 1)");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 1000, 0, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: confidence level 0 is not in (0, 1)");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 1000, 95, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: confidence level 95 is not in (0, 1)");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 1000, NAN, 1, &ci, &e), &e, MCB_EINVAL,
		  "is not in (0, 1)");
	CHECK_ERR(mcb_bootstrap_ratio(NULL, den, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "bootstrap: NULL argument");
	CHECK_ERR(mcb_bootstrap_ratio(num, den, 3, 1000, 0.95, 1, NULL, &e), &e, MCB_EINVAL,
		  "bootstrap: NULL argument");
	CHECK_ERR(mcb_bootstrap_ratio(num, neg, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "bootstrap: item 2: den = -1 is negative");
	CHECK_ERR(mcb_bootstrap_ratio(nan3, den, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "bootstrap: item 1: num is not finite");
	CHECK_ERR(mcb_bootstrap_ratio(num, inf3, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "bootstrap: item 2: den is not finite");
	CHECK_ERR(mcb_bootstrap_ratio(num, zero, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "bootstrap: sum of den is 0");
	CHECK_ERR(mcb_bootstrap_ratio(big, ones, 2, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "bootstrap: the sums over the items overflow");
	/* the full sum is 0, a resample drawing one item twice overflows */
	CHECK_ERR(mcb_bootstrap_ratio(pm, ones, 2, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "the sums overflow");
	CHECK(strncmp(e.msg, "bootstrap: resample ", 20) == 0);
	/* only sum(den) of a resample overflows (the ratio would be a silent 0) */
	CHECK_ERR(mcb_bootstrap_ratio(ones, dbig, 2, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "the sums overflow");
	CHECK(strncmp(e.msg, "bootstrap: resample ", 20) == 0);
	/* a failed call leaves *out alone */
	memset(&ci, 0x5a, sizeof(ci));
	want = ci;
	CHECK(mcb_bootstrap_ratio(pm, ones, 2, 1000, 0.95, 1, &ci, &e) == MCB_ERANGE);
	CHECK(memcmp(&ci, &want, sizeof(ci)) == 0);
	CHECK(mcb_bootstrap_ppl_ratio(num, num, zero, 3, 1000, 0.95, 1, &ci, &e) == MCB_ERANGE);
	CHECK(memcmp(&ci, &want, sizeof(ci)) == 0);
	/* n = 2 with one den-0 item: a quarter of the resamples are skipped */
	skipped = naive_bootstrap(num, half, 2, 1000, 0.95, 1, &want);
	CHECK_EQ(skipped, -1);
	{
		struct mcb_rng g;
		int r, z = 0;

		mcb_rng_seed(&g, 1);
		for (r = 0; r < 1000; r++) {
			uint64_t i = mcb_rng_below(&g, 2), j = mcb_rng_below(&g, 2);

			z += i == 0 && j == 0;
		}
		snprintf(msg, sizeof(msg),
			 "bootstrap: %d of 1000 resamples have sum(den) = 0 (at most 1%% may): too "
			 "few items with den > 0",
			 z);
		CHECK(z > 200 && z < 300);
	}
	CHECK_ERR(mcb_bootstrap_ratio(num, half, 2, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE, msg);
	CHECK_STR(e.msg, msg);
	/* ppl ratio */
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, num, den, 0, 1000, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "ppl ratio bootstrap: no items");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, num, neg, 3, 1000, 0.95, 1, &ci, &e), &e, MCB_ERANGE,
		  "ppl ratio bootstrap: item 2: cnt = -1 is negative");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(nan3, num, den, 3, 1000, 0.95, 1, &ci, &e), &e,
		  MCB_ERANGE, "ppl ratio bootstrap: item 1: nll_a is not finite");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, inf3, den, 3, 1000, 0.95, 1, &ci, &e), &e,
		  MCB_ERANGE, "ppl ratio bootstrap: item 2: nll_b is not finite");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(nlo, nhi, ones, 2, 1000, 0.95, 1, &ci, &e), &e,
		  MCB_ERANGE, "ppl ratio bootstrap: item 0: nll_b - nll_a overflows");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, num, zero, 3, 1000, 0.95, 1, &ci, &e), &e,
		  MCB_ERANGE, "ppl ratio bootstrap: sum of cnt is 0");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, num, den, 3, 10, 0.95, 1, &ci, &e), &e, MCB_EINVAL,
		  "ppl ratio bootstrap: reps = 10, need at least 100");
	CHECK_ERR(mcb_bootstrap_ppl_ratio(num, num, NULL, 3, 1000, 0.95, 1, &ci, &e), &e,
		  MCB_EINVAL, "ppl ratio bootstrap: NULL argument");
	/* a NULL errctx is allowed */
	CHECK_EQ(mcb_bootstrap_ratio(num, den, 0, 1000, 0.95, 1, &ci, NULL), MCB_EINVAL);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* 10,000 resamples of 10,000 items: well under a second (the bound allows a loaded machine). */
static void test_bootstrap_speed(void)
{
	enum { N = 10000 };
	double *num = malloc(N * sizeof(*num)), *den = malloc(N * sizeof(*den)), t;
	struct mcb_errctx e;
	struct mcb_ci ci;
#if defined(__SANITIZE_ADDRESS__)
	const double limit = 30;
#else
	const double limit = 3;
#endif

	fill_random(num, den, N, 8, 0);
	t = now();
	CHECK_OK(mcb_bootstrap_ratio(num, den, N, 10000, 0.95, 1, &ci, &e), &e);
	t = now() - t;
	fprintf(stderr, "  bootstrap of 10000 items x 10000 resamples: %.3f s\n", t);
	CHECK(t < limit);
	free(num);
	free(den);
}

int main(void)
{
	RUN(test_percentile);
	RUN(test_normal_quantile);
	RUN(test_mcnemar);
	RUN(test_paired_accuracy);
	RUN(test_bootstrap_scheme);
	RUN(test_bootstrap_point);
	RUN(test_bootstrap_degenerate);
	RUN(test_bootstrap_determinism);
	RUN(test_bootstrap_coverage);
	RUN(test_bootstrap_python);
	RUN(test_bootstrap_errors);
	RUN(test_bootstrap_speed);
	return mcbt_done();
}
