/*
 * stats: the statistics behind quality gates.
 *
 * Paired bootstrap over items (windows or examples, never single tokens):
 * items are resampled with replacement `reps` times with a seeded generator
 * (include/mcb/rng.h), the statistic recomputed on each resample, and the CI is
 * the (1-conf)/2 and (1+conf)/2 percentiles (linear interpolation between
 * order statistics, R type 7).  Same inputs and seed give the same CI.
 * McNemar's exact test for paired accuracy.  ALGORITHMS.md section 8.
 */
#ifndef MCB_STATS_H
#define MCB_STATS_H

#include <stddef.h>
#include <stdint.h>

struct mcb_errctx;

struct mcb_ci {
	double point; /* the statistic on the full sample */
	double lo, hi; /* confidence interval */
	double p;      /* two-sided p-value of "no difference" (2 min(P(d*<=0), P(d*>=0))); NaN if n/a */
};

/*
 * Ratio of sums: stat = sum(num_i) / sum(den_i) over the items, and its
 * bootstrap CI.  Mean KL per token (num = KL sum, den = token count),
 * top-1 agreement, delta NLL per token (num = nllB - nllA, den = count).
 * n >= 1, every den_i >= 0, sum(den) > 0.  reps >= 100.
 */
int mcb_bootstrap_ratio(const double *num, const double *den, size_t n, int reps, double conf,
			uint64_t seed, struct mcb_ci *out, struct mcb_errctx *e);

/*
 * Perplexity ratio of paired evaluations: exp(sum(nllB - nllA) / sum(cnt)),
 * with the bootstrap CI of the ratio (computed on the delta, then exp).
 */
int mcb_bootstrap_ppl_ratio(const double *nll_a, const double *nll_b, const double *cnt, size_t n,
			    int reps, double conf, uint64_t seed, struct mcb_ci *out,
			    struct mcb_errctx *e);

/*
 * Paired accuracy: a_i, b_i in {0, 1} (baseline and compressed correct).
 * point = acc_b - acc_a; lo/hi = the paired normal CI
 *   delta +- z sqrt(((n01 + n10) - (n10 - n01)^2 / n) / n^2)
 * with z for conf; p = McNemar's exact two-sided p-value
 *   min(1, 2 BinomCDF(min(n01, n10); n01 + n10, 1/2))  (1 when n01 + n10 = 0).
 * n01: a right, b wrong; n10: a wrong, b right.
 */
int mcb_paired_accuracy(const uint8_t *a, const uint8_t *b, size_t n, double conf,
			struct mcb_ci *out, size_t *n01, size_t *n10, struct mcb_errctx *e);

/* The standard normal quantile (inverse CDF) at p in (0, 1). */
double mcb_normal_quantile(double p);

/* Percentile of sorted x (n >= 1) at q in [0, 1], linear interpolation (type 7). */
double mcb_percentile_sorted(const double *x, size_t n, double q);

#endif
