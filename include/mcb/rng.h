/*
 * rng: the one random generator (xoshiro256**, Blackman and Vigna, seeded
 * through splitmix64).  Everything random in mcbuild (bootstrap resampling,
 * token sampling, synthetic data) draws from it with an explicit seed, so
 * that results are reproducible.
 */
#ifndef MCB_RNG_H
#define MCB_RNG_H

#include <stdint.h>

struct mcb_rng {
	uint64_t s[4]; /* never all zero */
};

void mcb_rng_seed(struct mcb_rng *r, uint64_t seed);
uint64_t mcb_rng_next(struct mcb_rng *r);
/* Uniform integer in [0, n), n >= 1, without modulo bias (rejection). */
uint64_t mcb_rng_below(struct mcb_rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double mcb_rng_double(struct mcb_rng *r);

#endif
