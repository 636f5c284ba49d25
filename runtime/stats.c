/*
 * stats: paired bootstrap over items, McNemar's exact test, the normal
 * quantile and type-7 percentiles (contracts in include/mcb/stats.h;
 * ALGORITHMS.md section 8).
 *
 * The bootstrap scheme, fixed because reported CIs must be reproducible and
 * tests/compat/stats_ref.py reimplements it independently:
 *
 *   rng = mcb_rng_seed(seed)
 *   for r = 0 .. reps-1:                        resample r
 *       sn = sd = 0.0
 *       for j = 0 .. n-1:                       position j
 *           i = mcb_rng_below(rng, n)           (no draw at all when n == 1)
 *           sn += num[i]; sd += den[i]          (double, left to right)
 *       stat[r] = sn / sd, or skipped when sd == 0
 *   sort the kept stat[] ascending (m of them)
 *   lo, hi = type-7 percentiles at (1 - conf)/2 and (1 + conf)/2
 *   p = min(1, 2 min(#{stat <= 0}, #{stat >= 0}) / m)
 *
 * The point statistic is sum(num) / sum(den) over the items in order.  For
 * the perplexity ratio num is d_i = nll_b[i] - nll_a[i] and den is cnt; the
 * point, lo and hi are exp() of the delta-scale values, p is on the delta.
 *
 * Skipped resamples: with every den_i >= 0 and sum(den) > 0 a resample can
 * still draw only items with den_i == 0, where the statistic is undefined.
 * Those resamples are left out (the CI is then conditional on sum(den) > 0,
 * which is what "the statistic" means); more than 1% of them means the data
 * have too few items with den > 0 for a bootstrap and fails with MCB_ERANGE.
 * On any error the caller's *out is left as it was.
 *
 * Speed: the indices are drawn into a small fixed buffer and then summed,
 * which keeps the generator's dependency chain apart from the two addition
 * chains (10,000 x 10,000 take about 0.35 s on a 2-core EPYC VM).  below() is mcb_rng_below with
 * the rejection limit computed once; tests/unit/test_stats.c checks that both
 * give the same numbers.  The statistics array is the only allocation (plus
 * the d_i array for the perplexity ratio), the sort is one qsort.  The code is
 * single-threaded and uses no FMA contraction (-std=c11), so the same inputs
 * and seed give the same bits.
 */
#include <math.h>
#include <stdlib.h>

#include "mcb/err.h"
#include "mcb/rng.h"
#include "mcb/stats.h"

#define MAX_SKIP_PERCENT 1 /* resamples with sum(den) == 0 tolerated, % of reps */
#define IDX_CHUNK 1024	   /* indices drawn ahead of the summation */
#define MIN_REPS 100

/* The first few arguments shared by the bootstrap entry points. */
static int check_common(const char *what, const void *p1, const void *p2, const void *p3, size_t n,
			int reps, double conf, const struct mcb_ci *out, struct mcb_errctx *e)
{
	if (!p1 || !p2 || !p3 || !out)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", what);
	if (n == 0)
		return mcb_errf(e, MCB_EINVAL, "%s: no items", what);
	if (reps < MIN_REPS)
		return mcb_errf(e, MCB_EINVAL, "%s: reps = %d, need at least %d", what, reps,
				MIN_REPS);
	if (!(conf > 0 && conf < 1))
		return mcb_errf(e, MCB_EINVAL, "%s: confidence level %g is not in (0, 1)", what,
				conf);
	return 0;
}

/* x[i] must be finite (and >= 0 when nonneg); name is the array's name in messages. */
static int check_values(const char *what, const char *name, const double *x, size_t n, int nonneg,
			struct mcb_errctx *e)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!isfinite(x[i]))
			return mcb_errf(e, MCB_ERANGE, "%s: item %zu: %s is not finite", what, i,
					name);
		if (nonneg && x[i] < 0)
			return mcb_errf(e, MCB_ERANGE, "%s: item %zu: %s = %g is negative", what, i,
					name, x[i]);
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* mcb_rng_below(r, n) for n >= 2, with limit = UINT64_MAX - UINT64_MAX % n precomputed. */
static inline uint64_t below(struct mcb_rng *r, uint64_t n, uint64_t limit)
{
	uint64_t x;

	do
		x = mcb_rng_next(r);
	while (x >= limit);
	return x % n;
}

/*
 * The bootstrap of sum(num)/sum(den) (the scheme at the top of this file),
 * on already checked arguments.  Fills out on the ratio scale; on error out
 * is partly written (the entry points write the caller's only on success).
 */
static int bootstrap(const char *what, const char *den_name, const double *num, const double *den,
		     size_t n, int reps, double conf, uint64_t seed, struct mcb_ci *out,
		     struct mcb_errctx *e)
{
	struct mcb_rng rng;
	size_t idx[IDX_CHUNK];
	uint64_t limit = n > 1 ? UINT64_MAX - UINT64_MAX % n : 0;
	double sn = 0, sd = 0, *stat;
	size_t i, j, j0, c, le = 0, ge = 0, m = 0;
	int r, skipped = 0;

	for (i = 0; i < n; i++) {
		sn += num[i];
		sd += den[i];
	}
	if (!isfinite(sn) || !isfinite(sd))
		return mcb_errf(e, MCB_ERANGE, "%s: the sums over the items overflow", what);
	if (sd == 0)
		return mcb_errf(e, MCB_ERANGE, "%s: sum of %s is 0", what, den_name);
	out->point = sn / sd;

	stat = malloc((size_t)reps * sizeof(*stat));
	if (!stat)
		return mcb_errf(e, MCB_ENOMEM, "%s: cannot allocate %d resample statistics", what,
				reps);
	mcb_rng_seed(&rng, seed);
	for (r = 0; r < reps; r++) {
		sn = sd = 0;
		for (j0 = 0; j0 < n; j0 += c) {
			c = n - j0 < IDX_CHUNK ? n - j0 : IDX_CHUNK;
			for (j = 0; j < c; j++) /* mcb_rng_below(rng, 1) is 0 and draws nothing */
				idx[j] = n > 1 ? below(&rng, n, limit) : 0;
			for (j = 0; j < c; j++) {
				sn += num[idx[j]];
				sd += den[idx[j]];
			}
		}
		if (sd == 0) {
			skipped++;
			continue;
		}
		if (!isfinite(sn) || !isfinite(sd)) {
			free(stat);
			return mcb_errf(e, MCB_ERANGE, "%s: resample %d: the sums overflow", what,
					r);
		}
		stat[m++] = sn / sd;
	}
	if ((double)skipped * 100 > (double)reps * MAX_SKIP_PERCENT) {
		free(stat);
		return mcb_errf(e, MCB_ERANGE,
				"%s: %d of %d resamples have sum(%s) = 0 (at most %d%% may): "
				"too few items with %s > 0",
				what, skipped, reps, den_name, MAX_SKIP_PERCENT, den_name);
	}
	qsort(stat, m, sizeof(*stat), cmp_double);
	out->lo = mcb_percentile_sorted(stat, m, (1 - conf) / 2);
	out->hi = mcb_percentile_sorted(stat, m, (1 + conf) / 2);
	for (i = 0; i < m; i++) {
		le += stat[i] <= 0;
		ge += stat[i] >= 0;
	}
	out->p = 2 * (double)(le < ge ? le : ge) / (double)m;
	if (out->p > 1)
		out->p = 1;
	free(stat);
	return 0;
}

int mcb_bootstrap_ratio(const double *num, const double *den, size_t n, int reps, double conf,
			uint64_t seed, struct mcb_ci *out, struct mcb_errctx *e)
{
	const char *what = "bootstrap";
	struct mcb_ci ci;
	int rc;

	if ((rc = check_common(what, num, den, den, n, reps, conf, out, e)) ||
	    (rc = check_values(what, "num", num, n, 0, e)) ||
	    (rc = check_values(what, "den", den, n, 1, e)) ||
	    (rc = bootstrap(what, "den", num, den, n, reps, conf, seed, &ci, e)))
		return rc;
	*out = ci;
	return 0;
}

int mcb_bootstrap_ppl_ratio(const double *nll_a, const double *nll_b, const double *cnt, size_t n,
			    int reps, double conf, uint64_t seed, struct mcb_ci *out,
			    struct mcb_errctx *e)
{
	const char *what = "ppl ratio bootstrap";
	struct mcb_ci ci;
	double *d;
	size_t i;
	int rc;

	if ((rc = check_common(what, nll_a, nll_b, cnt, n, reps, conf, out, e)) ||
	    (rc = check_values(what, "nll_a", nll_a, n, 0, e)) ||
	    (rc = check_values(what, "nll_b", nll_b, n, 0, e)) ||
	    (rc = check_values(what, "cnt", cnt, n, 1, e)))
		return rc;
	d = malloc(n * sizeof(*d));
	if (!d)
		return mcb_errf(e, MCB_ENOMEM, "%s: cannot allocate %zu differences", what, n);
	for (i = 0; i < n; i++) {
		d[i] = nll_b[i] - nll_a[i];
		if (!isfinite(d[i])) {
			free(d);
			return mcb_errf(e, MCB_ERANGE, "%s: item %zu: nll_b - nll_a overflows",
					what, i);
		}
	}
	rc = bootstrap(what, "cnt", d, cnt, n, reps, conf, seed, &ci, e);
	free(d);
	if (rc)
		return rc;
	out->point = exp(ci.point);
	out->lo = exp(ci.lo);
	out->hi = exp(ci.hi);
	out->p = ci.p;
	return 0;
}

/*
 * McNemar's exact two-sided p: min(1, 2 P(X <= k)), X ~ Binomial(m, 1/2),
 * k = min(n01, n10), m = n01 + n10.  Up to m = 60 the binomial coefficients
 * are summed exactly in 64 bits (C(60, 30) * 31 < 2^63) and scaled by 2^(1-m)
 * with ldexp, so the small cases are exact to one rounding.  Above, the
 * largest term pmf(k) (k <= m/2, so the pmf grows up to k) comes from
 * log-gamma and the others relative to it through pmf(i-1)/pmf(i) =
 * i/(m-i+1), summed until they no longer change the sum: nothing underflows
 * before the final exp, and the relative error is about m log(m) * 2^-53
 * (lgamma of a large argument carries an absolute error of its magnitude
 * times the epsilon), 3e-9 at m = 10^6.  lgamma_r, not lgamma, because
 * lgamma writes the global signgam.
 */
static double mcnemar_p(size_t n01, size_t n10)
{
	size_t m = n01 + n10, k = n01 < n10 ? n01 : n10, i;
	double lt, s = 1, t = 1, p;
	int sign;

	if (m == 0)
		return 1;
	if (m <= 60) {
		uint64_t c = 1, sum = 1;

		for (i = 1; i <= k; i++) {
			/* C(m, i), exact: C(m, i-1) (m-i+1) is divisible by i */
			c = c * (m - i + 1) / i;
			sum += c;
		}
		p = ldexp((double)sum, 1 - (int)m);
		return p < 1 ? p : 1;
	}
	lt = lgamma_r((double)m + 1, &sign) - lgamma_r((double)k + 1, &sign) -
	     lgamma_r((double)(m - k) + 1, &sign) - (double)m * M_LN2;
	for (i = k; i > 0; i--) {
		t *= (double)i / (double)(m - i + 1);
		if (t < s * 0x1p-60)
			break;
		s += t;
	}
	p = 2 * exp(lt + log(s));
	return p < 1 ? p : 1;
}

int mcb_paired_accuracy(const uint8_t *a, const uint8_t *b, size_t n, double conf,
			struct mcb_ci *out, size_t *n01, size_t *n10, struct mcb_errctx *e)
{
	const char *what = "paired accuracy";
	size_t i, c01 = 0, c10 = 0;
	double nd, d, var, half;

	if (!a || !b || !out)
		return mcb_errf(e, MCB_EINVAL, "%s: NULL argument", what);
	if (n == 0)
		return mcb_errf(e, MCB_EINVAL, "%s: no items", what);
	if (!(conf > 0 && conf < 1))
		return mcb_errf(e, MCB_EINVAL, "%s: confidence level %g is not in (0, 1)", what,
				conf);
	for (i = 0; i < n; i++) {
		if (a[i] > 1 || b[i] > 1)
			return mcb_errf(e, MCB_EINVAL, "%s: item %zu: %s = %u is not 0 or 1", what,
					i, a[i] > 1 ? "a" : "b",
					(unsigned)(a[i] > 1 ? a[i] : b[i]));
		c01 += a[i] && !b[i];
		c10 += !a[i] && b[i];
	}
	nd = (double)n;
	d = (double)c10 - (double)c01;
	out->point = d / nd;
	/* ((n01 + n10) - (n10 - n01)^2 / n) / n^2 >= 0 in exact arithmetic; clamp the rounding */
	var = ((double)(c01 + c10) - d * d / nd) / (nd * nd);
	half = mcb_normal_quantile((1 + conf) / 2) * sqrt(var > 0 ? var : 0);
	out->lo = out->point - half;
	out->hi = out->point + half;
	out->p = mcnemar_p(c01, c10);
	if (n01)
		*n01 = c01;
	if (n10)
		*n10 = c10;
	return 0;
}

/*
 * Wichura, M. J. (1988), "Algorithm AS 241: The percentage points of the
 * normal distribution", Applied Statistics 37(3), 477-484: PPND16, rational
 * approximations of degree 7 in three regions, relative accuracy about 1e-16.
 * Coefficients as published; the sums of their mantissas match the paper's
 * transcription checks (AB 55.8831928806149014439, CD 49.33206503301610289036,
 * EF 47.52583317549289671629), and tests/unit/test_stats.c checks
 * Phi(quantile(p)) = p across the range.  Outside (0, 1): -inf at 0, +inf
 * at 1, NaN otherwise.
 */
/* AS 241 coefficients, lowest degree first; each denominator's constant term is 1 */
/* clang-format off */
static const double as241_a[8] = {3.387132872796366608,   133.14166789178437745,
				  1971.5909503065514427,  13731.693765509461125,
				  45921.953931549871457,  67265.770927008700853,
				  33430.575583588128105,  2509.0809287301226727};
static const double as241_b[8] = {1,
				  42.313330701600911252,  687.1870074920579083,
				  5394.1960214247511077,  21213.794301586595867,
				  39307.89580009271061,   28729.085735721942674,
				  5226.495278852854561};
static const double as241_c[8] = {1.42343711074968357734,   4.6303378461565452959,
				  5.7694972214606914055,    3.64784832476320460504,
				  1.27045825245236838258,   0.24178072517745061177,
				  0.0227238449892691845833, 7.7454501427834140764e-4};
static const double as241_d[8] = {1,
				  2.05319162663775882187,   1.6763848301838038494,
				  0.68976733498510000455,   0.14810397642748007459,
				  0.0151986665636164571966, 5.475938084995344946e-4,
				  1.05075007164441684324e-9};
static const double as241_e[8] = {6.6579046435011037772,    5.4637849111641143699,
				  1.7848265399172913358,    0.29656057182850489123,
				  0.026532189526576123093,  0.0012426609473880784386,
				  2.71155556874348757815e-5, 2.01033439929228813265e-7};
static const double as241_f[8] = {1,
				  0.59983220655588793769,   0.13692988092273580531,
				  0.0148753612908506148525, 7.868691311456132591e-4,
				  1.8463183175100546818e-5, 1.4215117583164458887e-7,
				  2.04426310338993978564e-15};
/* clang-format on */

/* num(r) / den(r), both of degree 7, by Horner's rule (the order of the published code) */
static double ratpoly(const double *num, const double *den, double r)
{
	double x = num[7], y = den[7];
	int i;

	for (i = 6; i >= 0; i--) {
		x = x * r + num[i];
		y = y * r + den[i];
	}
	return x / y;
}

double mcb_normal_quantile(double p)
{
	double q = p - 0.5, r, val;

	if (!(p > 0 && p < 1))
		return p == 0 ? -INFINITY : p == 1 ? INFINITY : NAN;
	if (fabs(q) <= 0.425) /* 0.075 <= p <= 0.925 */
		return q * ratpoly(as241_a, as241_b, 0.180625 - q * q);
	r = sqrt(-log(q < 0 ? p : 1 - p)); /* 1 - p is exact here (p > 0.925) */
	if (r <= 5)			   /* min(p, 1 - p) >= exp(-25) = 1.4e-11 */
		val = ratpoly(as241_c, as241_d, r - 1.6);
	else
		val = ratpoly(as241_e, as241_f, r - 5);
	return q < 0 ? -val : val;
}

/*
 * R's type 7 (Hyndman and Fan 1996): h = (n-1) q, x[floor h] plus the
 * fraction of the gap to the next order statistic.  q is clamped to [0, 1];
 * NaN for a NaN q or n == 0.
 */
double mcb_percentile_sorted(const double *x, size_t n, double q)
{
	double h, f;
	size_t i;

	if (n == 0 || isnan(q))
		return NAN;
	if (q <= 0)
		return x[0];
	if (q >= 1)
		return x[n - 1];
	h = (double)(n - 1) * q;
	i = (size_t)h;
	f = h - (double)i;
	if (i >= n - 1)
		return x[n - 1];
	if (f == 0)
		return x[i];
	return x[i] + f * (x[i + 1] - x[i]);
}
