/* rng: xoshiro256** (prng.di.unimi.it, public-domain algorithm), seeded by splitmix64. */
#include "mcb/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void mcb_rng_seed(struct mcb_rng *r, uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

uint64_t mcb_rng_next(struct mcb_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t mcb_rng_below(struct mcb_rng *r, uint64_t n)
{
	uint64_t x, limit;

	if (n <= 1)
		return 0;
	/* the largest multiple of n that fits: reject above it */
	limit = UINT64_MAX - UINT64_MAX % n;
	do
		x = mcb_rng_next(r);
	while (x >= limit);
	return x % n;
}

double mcb_rng_double(struct mcb_rng *r)
{
	return (double)(mcb_rng_next(r) >> 11) * 0x1.0p-53;
}
