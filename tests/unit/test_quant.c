/*
 * Unit tests for quant: the fp16 scale encoding, Q8_0 and RTN int8 against
 * hand-derived values, the optimized paths against _ref bit for bit, error
 * bounds per element and NMSE tolerances on Gaussian data.
 *
 * Error bounds (u = 2^-24, the float unit roundoff; derivations in the
 * comments of the tests below):
 *   RTN int8:  |q*s - w| <= s * (1/2 + 254u)
 *   Q8_0:      |y - x| <= d/2 + |q| * |dh - d| + d * 254.01u + 127 * dh * u
 *              where d = amax/127 in float and dh its fp16 rounding.  With
 *              d in fp16's normal range, |dh - d| <= 2^-11 d, so
 *              |y - x| <= 0.5621 d; below it |dh - d| <= 2^-25 absolute.
 * NMSE on N(0,1) data (see test_nmse_gaussian): Q8_0 2.86e-5 (< 3.2e-5),
 * RTN int8 per channel over rows of 4096 7.54e-5 (< 8.2e-5).
 *
 * Issue 4: GPTQ's integer group quantizer (mcb_intq_*: hand-derived groups,
 * degenerate scales, the AVX2 path against the per-group oracle bit for bit,
 * fp16 scales, |y - x| <= s/2 + rounding terms (test_intq_error_bound), NMSE
 * of int4 g128 within +-5% of 1.01e-2 / 1.22e-2); FP8 E4M3 (all 256 codes,
 * round trips, every rounding boundary, 2^24 patterns against an independent
 * encoder); GPTQ (2, 3, 4, 8 bits) and AWQ packing (known words, round
 * trips).  tests/compat/pack_check.py (numpy) is the second opinion for the
 * quantizer, E4M3 and the packed checkpoints; without a python3 that has
 * numpy those tests say SKIPPED.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mcb/err.h"
#include "mcb/quant.h"

#define QK MCB_QK8_0
#define U24 0x1p-24

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) */
static double rng_unif(void)
{
	return (double)(rng_next() >> 11) * 0x1p-53;
}

static double rng_gauss(void)
{
	double u1 = rng_unif(), u2 = rng_unif();

	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static float bits_f(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static uint32_t f_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/*
 * Independent fp16 encoder for finite v (double arithmetic instead of bit
 * manipulation): scale to units of the half's ulp at v's binade, round to
 * nearest even with nearbyint, re-encode.  A mantissa carry into the next
 * binade falls out of the addition.
 */
static uint16_t ref_f16(double v)
{
	uint16_t sign = signbit(v) ? 0x8000 : 0;
	double a = fabs(v), r;
	int e;

	if (a >= 65520.0)
		return sign | 0x7c00;
	if (a == 0)
		return sign;
	e = ilogb(a);
	if (e < -14)
		e = -14;
	r = nearbyint(ldexp(a, 10 - e)); /* units of 2^(e-10) */
	if (e == -14 && r < 1024)
		return sign | (uint16_t)r; /* subnormal (or the smallest normal at 1024) */
	return sign | (uint16_t)(((e + 15) << 10) + ((int)r - 1024));
}

/* value of a half, independent decoder */
static double ref_f16_val(uint16_t h)
{
	int e = (h >> 10) & 31, m = h & 1023;
	double v;

	if (e == 31)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp(m, -24);
	else
		v = ldexp(1024 + m, e - 25);
	return (h & 0x8000) ? -v : v;
}

/* quantize x (k,) with _ref, the fast path and the split form; check the
 * three agree bit for bit.  Returns the number of mismatching blocks. */
static int q8_all_paths(const float *x, int64_t k, struct mcb_block_q8_0 *ref)
{
	int64_t nb = k / QK, i;
	struct mcb_block_q8_0 *fast = calloc((size_t)nb, sizeof(*fast));
	int8_t *q = calloc((size_t)k, 1);
	uint16_t *d = calloc((size_t)nb, sizeof(*d));
	int bad = 0;

	mcb_quantize_row_q8_0_ref(x, ref, k);
	mcb_quantize_row_q8_0(x, fast, k);
	mcb_quantize_row_q8_0_split(x, q, d, k);
	for (i = 0; i < nb; i++) {
		if (memcmp(&ref[i], &fast[i], sizeof(*ref)) || ref[i].d != d[i] ||
		    memcmp(ref[i].qs, q + i * QK, QK)) {
			if (bad++ < 3)
				mcbt_fail(__FILE__, __LINE__,
					  "k=%lld block %lld: ref d=%04x fast d=%04x split d=%04x",
					  (long long)k, (long long)i, ref[i].d, fast[i].d, d[i]);
		}
	}
	free(fast);
	free(q);
	free(d);
	return bad;
}

static int rtn_all_paths(const float *w, int64_t rows, int64_t cols, int8_t *q, float *s)
{
	int8_t *q2 = malloc((size_t)(rows * cols) + 1);
	float *s2 = malloc((size_t)rows * sizeof(float) + 1);
	int bad = 0;
	int64_t r;

	mcb_rtn_int8_channel_ref(w, rows, cols, q, s);
	mcb_rtn_int8_channel(w, rows, cols, q2, s2);
	for (r = 0; r < rows; r++)
		if (f_bits(s[r]) != f_bits(s2[r]) || memcmp(q + r * cols, q2 + r * cols, (size_t)cols)) {
			if (bad++ < 3)
				mcbt_fail(__FILE__, __LINE__, "rows=%lld cols=%lld: row %lld differs",
					  (long long)rows, (long long)cols, (long long)r);
		}
	free(q2);
	free(s2);
	return bad;
}

/* Every one of the 65536 halves decodes exactly (through dequantization with
 * code 1 and -1). */
static void test_f16_decode_all(void)
{
	struct mcb_block_q8_0 b;
	float y[QK];
	uint32_t h;
	int bad = 0;

	memset(&b, 0, sizeof(b));
	b.qs[0] = 1;
	b.qs[1] = -1;
	for (h = 0; h < 65536; h++) {
		double v = ref_f16_val((uint16_t)h);

		b.d = (uint16_t)h;
		mcb_dequantize_row_q8_0_ref(&b, y, QK);
		if (isnan(v) ? !isnan(y[0]) : ((double)y[0] != v || (double)y[1] != -v ||
					      !signbit(y[0]) != !signbit(v)))
			if (bad++ < 5)
				mcbt_fail(__FILE__, __LINE__, "half %04x -> %g, expected %g", h,
					  (double)y[0], v);
	}
	CHECK_EQ(bad, 0);
}

/*
 * The fp16 scale: blocks whose d = amax/127 lands on chosen values t (random
 * floats over the whole half range, exact ties between neighbouring halves,
 * the subnormal range, the overflow threshold) must store ref_f16(t).  Groups
 * of 8 blocks go through the F16C instruction, the rest through the scalar
 * encoder, so this also checks the two agree.
 */
static void test_f16_scale_encoding(void)
{
	enum { N = 40000 };
	float *t = malloc(N * sizeof(float)), *x = calloc((size_t)N * QK, sizeof(float));
	struct mcb_block_q8_0 *ref = malloc(N * sizeof(*ref));
	int n = 0, i, bad = 0, ties = 0;

	/* exact ties between neighbouring halves h and h+1, both signs of rounding */
	for (i = 0; n < N / 4; i++) {
		uint16_t h = (uint16_t)(rng_next() % 0x7bff); /* finite, h+1 finite */
		double mid = (ref_f16_val(h) + ref_f16_val((uint16_t)(h + 1))) / 2;

		if ((double)(float)mid == mid) {
			t[n++] = (float)mid;
			ties++;
		}
	}
	/* just below, at and above the overflow threshold 65520 and 65504 */
	t[n++] = 65504.0f;
	t[n++] = 65520.0f;
	t[n++] = nextafterf(65520.0f, 0);
	t[n++] = 65519.0f;
	t[n++] = 0x1p-14f; /* smallest normal half */
	t[n++] = nextafterf(0x1p-14f, 0);
	t[n++] = 0x1p-24f; /* smallest subnormal half */
	t[n++] = 0x1p-25f; /* tie to 0 */
	t[n++] = nextafterf(0x1p-25f, 1);
	t[n++] = 0x1.8p-24f; /* tie 1.5 units -> 2 */
	t[n++] = 0x1.8p-23f; /* 3 units exactly */
	t[n++] = 1e-30f;
	while (n < N) /* log-uniform over [2^-30, 2^17] */
		t[n++] = (float)ldexp(1.0 + rng_unif(), (int)(rng_next() % 48) - 30);
	for (i = 0; i < N; i++) {
		/* find amax with fl(amax / 127) == t */
		float a = t[i] * 127.0f, tries[3] = {a, nextafterf(a, 0), nextafterf(a, INFINITY)};
		int j, ok = 0;

		for (j = 0; j < 3 && !ok; j++)
			if (tries[j] / 127.0f == t[i]) {
				a = tries[j];
				ok = 1;
			}
		if (!ok) {
			t[i] = 0; /* not reachable: mark and skip */
			continue;
		}
		x[(size_t)i * QK + (size_t)(i % QK)] = (i & 1) ? -a : a;
		x[(size_t)i * QK + (size_t)((i + 7) % QK)] = a * 0.25f;
	}
	bad = q8_all_paths(x, (int64_t)N * QK, ref);
	for (i = 0; i < N; i++) {
		if (t[i] == 0)
			continue;
		if (ref[i].d != ref_f16(t[i]) && bad++ < 5)
			mcbt_fail(__FILE__, __LINE__, "d=%a stored %04x, expected %04x", (double)t[i],
				  ref[i].d, ref_f16(t[i]));
	}
	CHECK_EQ(bad, 0);
	CHECK(ties > 1000);
	free(t);
	free(x);
	free(ref);
}

/* Hand-checked blocks: roundf semantics (halves away from zero), zero block,
 * the all-equal block, and a ramp pinned against the numpy reference. */
static void test_q8_0_known(void)
{
	struct mcb_block_q8_0 b[3];
	float x[3 * QK];
	int j;
	/* amax 127 -> d = 1, id = 1: codes are roundf(x) */
	static const float half[QK] = {127,   2.5f,   -2.5f, 0.5f, -0.5f, 1.5f, -1.5f,
				       0.49999997f, -126.5f, 3.4999998f, 126.5f, -0.0f};
	static const int8_t half_q[QK] = {127, 3, -3, 1, -1, 2, -2, 0, -127, 3, 127, 0};
	/* x[j] = j - 13: amax 18, d = fl(18/127), id = fl(1/d) = 7.0555553; the
	 * codes of +-9 (j = 4, 22) show that x*id is used: 9*id rounds to 63.5
	 * in float (-> 64) while 9/d = 63.499... (-> 63).  Pinned against the
	 * numpy reference quantizer (tests/compat/gguf_check.py). */
	static const int8_t ramp_q[QK] = {
		-92, -85, -78, -71, -64, -56, -49, -42, -35, -28, -21, -14, -7, 0, 7, 14,
		21,  28,  35,  42,  49,  56,  64,  71,  78,  85,  92,  99,  106, 113, 120, 127};

	memset(x, 0, sizeof(x));
	memcpy(x, half, sizeof(half));
	for (j = 0; j < QK; j++)
		x[QK + j] = (float)(j - 13);
	/* third block all zero */
	CHECK_EQ(q8_all_paths(x, 3 * QK, b), 0);
	CHECK_EQ(b[0].d, 0x3c00); /* 1.0 */
	for (j = 0; j < QK; j++)
		CHECK_EQ(b[0].qs[j], half_q[j]);
	CHECK_EQ(b[1].d, 0x3089); /* fp16(18/127 = 0.141732...) */
	for (j = 0; j < QK; j++)
		CHECK_EQ(b[1].qs[j], ramp_q[j]);
	CHECK_EQ(b[2].d, 0);
	for (j = 0; j < QK; j++)
		CHECK_EQ(b[2].qs[j], 0);
	/* a constant block: every code is 127 */
	for (j = 0; j < QK; j++)
		x[j] = -3.25f;
	mcb_quantize_row_q8_0_ref(x, b, QK);
	for (j = 0; j < QK; j++)
		CHECK_EQ(b[0].qs[j], -127);
}

/* the adversarial data set: kind selects a distribution for block i */
static void fill_block(float *xb, int kind)
{
	int j, e;
	float d;

	switch (kind) {
	case 0: /* Gaussian */
		for (j = 0; j < QK; j++)
			xb[j] = (float)rng_gauss();
		break;
	case 1: /* Gaussian scaled anywhere in the float range */
		e = (int)(rng_next() % 260) - 150;
		for (j = 0; j < QK; j++)
			xb[j] = (float)ldexp(rng_gauss(), e);
		break;
	case 2: /* exact halves after scaling: amax 127*d, values (k+0.5)*d */
		d = (float)ldexp(1.0, (int)(rng_next() % 40) - 20);
		xb[0] = 127 * d;
		for (j = 1; j < QK; j++)
			xb[j] = ((float)(int)(rng_next() % 254) - 127 + 0.5f) * d;
		break;
	case 3: /* one ulp either side of a half of d */
		xb[0] = (float)(1.0 + rng_unif()) * 100;
		d = xb[0] / 127.0f;
		for (j = 1; j < QK; j++) {
			float v = ((float)(int)(rng_next() % 200) - 100 + 0.5f) * d;

			xb[j] = (rng_next() & 1) ? nextafterf(v, INFINITY) : nextafterf(v, -INFINITY);
		}
		break;
	case 4: /* all zero, with signed zeros */
		for (j = 0; j < QK; j++)
			xb[j] = (j & 1) ? -0.0f : 0.0f;
		break;
	case 5: /* denormals only */
		for (j = 0; j < QK; j++)
			xb[j] = bits_f((uint32_t)(rng_next() & 0x807fffffu));
		break;
	case 6: /* huge: fp16 scale overflows to inf */
		for (j = 0; j < QK; j++)
			xb[j] = (float)(rng_gauss() * 1e30);
		break;
	case 7: /* one outlier */
		for (j = 0; j < QK; j++)
			xb[j] = (float)rng_gauss() * 0.01f;
		xb[rng_next() % QK] = 50.0f;
		break;
	case 8: /* any bit pattern: NaN, inf, denormals, everything */
		for (j = 0; j < QK; j++)
			xb[j] = bits_f((uint32_t)rng_next());
		break;
	default: /* Gaussian with one NaN or inf */
		for (j = 0; j < QK; j++)
			xb[j] = (float)rng_gauss();
		xb[rng_next() % QK] = (rng_next() & 1) ? NAN : -INFINITY;
		break;
	}
}

/* mcb_quantize_row_q8_0 and _split equal _ref bit for bit on every kind of
 * block, for row lengths that exercise the 8-block groups and the tail. */
static void test_q8_0_fast_matches_ref(void)
{
	enum { MAXB = 300 };
	float *x = malloc((size_t)MAXB * QK * sizeof(float));
	struct mcb_block_q8_0 *ref = malloc(MAXB * sizeof(*ref));
	int64_t nb, i;
	int rep, bad = 0;

	for (rep = 0; rep < 200; rep++) {
		nb = 1 + (int64_t)(rng_next() % MAXB);
		for (i = 0; i < nb; i++)
			fill_block(x + i * QK, (int)(rng_next() % 10));
		bad += q8_all_paths(x, nb * QK, ref);
	}
	for (nb = 0; nb <= 17; nb++) { /* every tail length, Gaussian */
		for (i = 0; i < nb; i++)
			fill_block(x + i * QK, 0);
		bad += q8_all_paths(x, nb * QK, ref);
	}
	CHECK_EQ(bad, 0);
	/* non-finite input: codes still in range (no undefined conversion) */
	for (i = 0; i < 64; i++)
		fill_block(x + i * QK, 8);
	mcb_quantize_row_q8_0_ref(x, ref, 64 * QK);
	for (i = 0; i < 64 * QK; i++)
		CHECK(ref[i / QK].qs[i % QK] >= -127);
	free(x);
	free(ref);
}

/*
 * Per-element error bound of Q8_0.  With u = 2^-24:
 *   id = (1/d)(1+e1), v = fl(x*id) = (x/d)(1+e1)(1+e2), |x/d| <= 127(1+u)
 *   => |q - x/d| <= 1/2 + 127(2u+u^2)(1+u) <= 1/2 + 254.01u
 *   y = fl(q*dh) = q*dh(1+e3)
 *   => |y - x| <= |q||dh - d| + d|q - x/d| + |q| dh u
 *             <= d/2 + |q||dh - d| + 254.01u d + 127 u dh.
 * Valid while 1/d does not overflow (d >= 2^-128) and dh is finite
 * (amax < 127 * 65520; above, dh = inf as in ggml: such blocks are skipped); below that the codes are
 * 0 and dh = 0, so |y - x| = |x| <= amax < 4e-37.  In fp16's normal range
 * |dh - d| <= 2^-11 d gives the summary |y - x| <= 0.5621 d.
 */
static void test_q8_0_error_bound(void)
{
	enum { NB = 20000 };
	float *x = malloc((size_t)NB * QK * sizeof(float)), y[QK];
	struct mcb_block_q8_0 *b = malloc(NB * sizeof(*b));
	int64_t i;
	int j, bad = 0, kind, noverflow = 0;
	double worst_rel = 0;

	for (i = 0; i < NB; i++) {
		kind = (int)(rng_next() % 4); /* Gaussian, any scale, halves, near-halves */
		fill_block(x + i * QK, kind == 1 && (rng_next() & 1) ? 7 : kind);
		if (kind == 1) /* keep amax under 127 * 65504 (fp16 scale finite) */
			for (j = 0; j < QK; j++)
				if (fabsf(x[i * QK + j]) > 1e6f)
					x[i * QK + j] = copysignf(1e6f, x[i * QK + j]);
	}
	mcb_quantize_row_q8_0_ref(x, b, (int64_t)NB * QK);
	for (i = 0; i < NB; i++) {
		const float *xb = x + i * QK;
		float amax = 0, d;
		double dh = ref_f16_val(b[i].d), bound;

		for (j = 0; j < QK; j++)
			amax = fmaxf(amax, fabsf(xb[j]));
		d = amax / 127.0f;
		if (isinf(dh)) { /* amax >= 127 * 65520: documented overflow, as ggml */
			CHECK(d >= 65520.0f);
			noverflow++;
			continue;
		}
		mcb_dequantize_row_q8_0_ref(&b[i], y, QK);
		for (j = 0; j < QK; j++) {
			double err = fabs((double)y[j] - xb[j]);

			if (d < 0x1p-128f)
				bound = amax;
			else
				bound = d / 2.0 + abs(b[i].qs[j]) * fabs(dh - d) + 254.01 * U24 * d +
					127 * U24 * dh;
			if (err > bound && bad++ < 5)
				mcbt_fail(__FILE__, __LINE__, "block %lld elt %d: x=%a y=%a err %g > %g",
					  (long long)i, j, (double)xb[j], (double)y[j], err, bound);
			if (d >= 0x1p-14f && err / d > worst_rel)
				worst_rel = err / d;
		}
	}
	CHECK_EQ(bad, 0);
	fprintf(stderr, "  q8_0 worst |y - x| / d (fp16-normal d): %.6f\n", worst_rel);
	CHECK(worst_rel <= 0.5621);
	CHECK(worst_rel > 0.5); /* the data does reach the fp16-rounding regime */
	CHECK(noverflow > 0);
	free(x);
	free(b);
}

/*
 * Normalized MSE, sum (deq - x)^2 / sum x^2, on N(0,1) data.  The
 * uniform-error model predicts E[d^2]/12 = E[amax^2] / (127^2 * 12): for
 * blocks of 32 Gaussians E[amax^2] = 5.71 (Monte Carlo), 2.95e-5, measured
 * 2.86e-5 (the amax element itself is exact; the fp16 scale adds little).
 * Per-channel RTN over rows of 4096: E[amax^2] = 14.7, 7.61e-5 predicted,
 * 7.54e-5 measured.  Tolerances: Q8_0 in (2.5e-5, 3.2e-5), RTN in
 * (6.5e-5, 8.2e-5): the data is fixed (seeded), the window catches both a
 * worse quantizer and one that silently stops quantizing.
 */
static void test_nmse_gaussian(void)
{
	enum { ROWS = 256, COLS = 4096, N = ROWS * COLS };
	float *x = malloc(N * sizeof(float)), *y = malloc(N * sizeof(float));
	float *s = malloc(ROWS * sizeof(float));
	int8_t *q = malloc(N);
	struct mcb_block_q8_0 *b = malloc(N / QK * sizeof(*b));
	double num = 0, den = 0, nmse_q8, nmse_rtn;
	int64_t i;

	for (i = 0; i < N; i++)
		x[i] = (float)rng_gauss();
	mcb_quantize_row_q8_0(x, b, N);
	mcb_dequantize_row_q8_0_ref(b, y, N);
	for (i = 0; i < N; i++) {
		num += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
		den += (double)x[i] * x[i];
	}
	nmse_q8 = num / den;
	mcb_rtn_int8_channel(x, ROWS, COLS, q, s);
	num = 0;
	for (i = 0; i < N; i++) {
		double e = (double)((float)q[i] * s[i / COLS]) - x[i];

		num += e * e;
	}
	nmse_rtn = num / den;
	fprintf(stderr, "  nmse N(0,1): q8_0 %.3g, rtn int8 per channel (cols %d) %.3g\n",
		nmse_q8, COLS, nmse_rtn);
	CHECK(nmse_q8 < 3.2e-5);
	CHECK(nmse_q8 > 2.5e-5);
	CHECK(nmse_rtn < 8.2e-5);
	CHECK(nmse_rtn > 6.5e-5);
	free(x);
	free(y);
	free(s);
	free(q);
	free(b);
}

/* RTN by hand: halves to even, the zero row, clamping, a row too small for
 * a nonzero scale. */
static void test_rtn_known(void)
{
	static const float w[4][8] = {
		{127, 2.5f, -2.5f, 0.5f, 1.5f, -1.5f, 126.5f, -0.49999997f},
		{0, -0.0f, 0, 0, 0, 0, 0, 0},
		/* amax 2^-140: scale is a float denormal with few bits, so w/s
		 * exceeds 127.5 and is clamped */
		{0x1p-140f, -0x1p-140f, 0x1p-141f, 0, 0, 0, 0, 0},
		/* amax below 127 * 2^-150 / 2: scale rounds to 0 */
		{0x1p-149f, 0x1p-145f, 0, 0, 0, 0, 0, 0},
	};
	static const int8_t want0[8] = {127, 2, -2, 0, 2, -2, 126, 0};
	int8_t q[32];
	float s[4];
	int j;

	CHECK_EQ(rtn_all_paths(&w[0][0], 4, 8, q, s), 0);
	CHECK(s[0] == 1.0f);
	for (j = 0; j < 8; j++)
		CHECK_EQ(q[j], want0[j]);
	CHECK(s[1] == 0.0f);
	for (j = 8; j < 16; j++)
		CHECK_EQ(q[j], 0);
	CHECK(s[2] > 0.0f);
	CHECK_EQ(q[16], 127);
	CHECK_EQ(q[17], -127);
	CHECK(s[3] == 0.0f);
	CHECK_EQ(q[24], 0);
	CHECK_EQ(q[25], 0);
}

static void test_rtn_fast_matches_ref(void)
{
	enum { MAXN = 1 << 16 };
	float *w = malloc(MAXN * sizeof(float)), *s = malloc(MAXN * sizeof(float));
	int8_t *q = malloc(MAXN);
	int rep, bad = 0;
	int64_t rows, cols, i;

	for (rep = 0; rep < 300; rep++) {
		cols = 1 + (int64_t)(rng_next() % (rep < 150 ? 100 : 3000));
		rows = 1 + (int64_t)(rng_next() % (MAXN / cols < 16 ? MAXN / cols : 16));
		for (i = 0; i + QK <= rows * cols; i += QK)
			fill_block(w + i, (int)(rng_next() % 10));
		for (; i < rows * cols; i++)
			w[i] = (float)rng_gauss();
		bad += rtn_all_paths(w, rows, cols, q, s);
	}
	CHECK_EQ(bad, 0);
	free(w);
	free(s);
	free(q);
}

/*
 * RTN per element: v = fl(w/s) = (w/s)(1+e1), |w/s| <= 127(1+u)^2, so no
 * clamping happens for normal s and |q - w/s| <= 1/2 + 127.01u;
 * y = fl(q*s) adds |q| s u <= 127 s u: |y - w| <= s (1/2 + 254.01u).
 */
static void test_rtn_error_bound(void)
{
	enum { ROWS = 64, COLS = 1000 };
	float *w = malloc(ROWS * COLS * sizeof(float)), s[ROWS];
	int8_t *q = malloc(ROWS * COLS);
	int64_t r, c;
	int bad = 0;

	for (r = 0; r < ROWS; r++) {
		int e = (int)(rng_next() % 200) - 100;

		for (c = 0; c < COLS; c++)
			w[r * COLS + c] = (float)ldexp(rng_gauss(), e);
		if (r % 8 == 0) /* a row with exact halves */
			for (c = 0; c < COLS; c++)
				w[r * COLS + c] = c == 0 ? 127.0f : (float)((int)(c % 254) - 127) + 0.5f;
	}
	mcb_rtn_int8_channel(w, ROWS, COLS, q, s);
	for (r = 0; r < ROWS; r++)
		for (c = 0; c < COLS; c++) {
			double y = (double)((float)q[r * COLS + c] * s[r]);
			double err = fabs(y - w[r * COLS + c]);
			double bound = s[r] * (0.5 + 254.01 * U24);

			if (err > bound && bad++ < 5)
				mcbt_fail(__FILE__, __LINE__, "row %lld col %lld: err %g > %g",
					  (long long)r, (long long)c, err, bound);
		}
	CHECK_EQ(bad, 0);
	free(w);
	free(q);
}

static void test_check_finite(void)
{
	enum { N = 1001 };
	float *x = malloc(N * sizeof(float));
	int64_t bad = -7;
	int i;

	for (i = 0; i < N; i++)
		x[i] = (float)rng_gauss();
	x[3] = FLT_MAX;
	x[4] = -FLT_MAX;
	x[5] = 0x1p-149f; /* denormal */
	x[6] = -0.0f;
	CHECK_EQ(mcb_check_finite(x, N, &bad), 0);
	CHECK_EQ(bad, -7); /* untouched on success */
	CHECK_EQ(mcb_check_finite(x, 0, &bad), 0);
	x[N - 1] = INFINITY; /* in the scalar tail */
	CHECK_EQ(mcb_check_finite(x, N, &bad), MCB_ERANGE);
	CHECK_EQ(bad, N - 1);
	CHECK_EQ(mcb_check_finite(x, N - 1, NULL), 0);
	x[37] = -INFINITY; /* in a vector chunk, before a later NaN */
	x[38] = NAN;
	CHECK_EQ(mcb_check_finite(x, N, &bad), MCB_ERANGE);
	CHECK_EQ(bad, 37);
	x[37] = 1;
	CHECK_EQ(mcb_check_finite(x, N, NULL), MCB_ERANGE);
	CHECK_EQ(mcb_check_finite(x, N, &bad), MCB_ERANGE);
	CHECK_EQ(bad, 38);
	x[0] = -NAN;
	CHECK_EQ(mcb_check_finite(x, 1, &bad), MCB_ERANGE);
	CHECK_EQ(bad, 0);
	free(x);
}

/* ---- issue 4: integer group quantization, FP8 E4M3, GPTQ/AWQ packing ---- */

/* Run tests/compat/pack_check.py CMD DIR (from the repository root); its
 * output goes to stderr; a failure is a check failure. */
static void run_pack_check(const char *py, const char *cmd, const char *dir)
{
	char line[8800], buf[1024];
	FILE *f;
	int rc;

	snprintf(line, sizeof(line), "%s tests/compat/pack_check.py %s '%s' 2>&1", py, cmd, dir);
	f = popen(line, "r");
	if (!f) {
		mcbt_fail(__FILE__, __LINE__, "cannot run %s", line);
		return;
	}
	while (fgets(buf, sizeof(buf), f))
		fprintf(stderr, "  %s", buf);
	rc = pclose(f);
	if (rc != 0)
		mcbt_fail(__FILE__, __LINE__, "%s failed (status %d; run from the repository root)",
			  line, rc);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4400];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mcbt_write(path, p, n);
}

static void write_meta(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_meta(const char *dir, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	write_file(dir, "meta", text, (size_t)n);
}

static int64_t ngroups_of(int64_t cols, int64_t group)
{
	return group > 0 ? (cols + group - 1) / group : 1;
}

/* the oracle of mcb_intq_rtn: mcb_intq_params + mcb_intq_codes per group */
static void intq_oracle(const float *w, int64_t rows, int64_t cols,
			const struct mcb_intq_params *p, uint8_t *q, float *scale, uint8_t *zero)
{
	int64_t len = p->group > 0 ? p->group : cols, ng = ngroups_of(cols, p->group), r, g, n;
	int z;

	for (r = 0; r < rows; r++)
		for (g = 0; g < ng; g++) {
			n = cols - g * len < len ? cols - g * len : len;
			mcb_intq_params(w + r * cols + g * len, n, p, &scale[r * ng + g], &z);
			mcb_intq_codes(w + r * cols + g * len, n, p, scale[r * ng + g], z,
				       q + r * cols + g * len);
			zero[r * ng + g] = (uint8_t)z;
		}
}

/* mcb_intq_rtn against the oracle bit for bit; returns the number of
 * differing rows (reported) */
static int intq_all_paths(const float *w, int64_t rows, int64_t cols,
			  const struct mcb_intq_params *p)
{
	int64_t ng = ngroups_of(cols, p->group), r;
	uint8_t *q1 = malloc((size_t)(rows * cols) + 1), *q2 = malloc((size_t)(rows * cols) + 1);
	uint8_t *z1 = malloc((size_t)(rows * ng) + 1), *z2 = malloc((size_t)(rows * ng) + 1);
	float *s1 = malloc((size_t)(rows * ng) * sizeof(float) + 1);
	float *s2 = malloc((size_t)(rows * ng) * sizeof(float) + 1);
	int bad = 0;

	intq_oracle(w, rows, cols, p, q1, s1, z1);
	mcb_intq_rtn(w, rows, cols, p, q2, s2, z2);
	for (r = 0; r < rows; r++) {
		int64_t g, diff = memcmp(q1 + r * cols, q2 + r * cols, (size_t)cols) ||
				  memcmp(z1 + r * ng, z2 + r * ng, (size_t)ng);

		for (g = 0; g < ng; g++)
			diff |= f_bits(s1[r * ng + g]) != f_bits(s2[r * ng + g]);
		if (diff && bad++ < 3)
			mcbt_fail(__FILE__, __LINE__,
				  "rows=%lld cols=%lld bits=%d group=%lld sym=%d fp16=%d: row %lld "
				  "differs",
				  (long long)rows, (long long)cols, p->bits, (long long)p->group,
				  p->symmetric, p->fp16_scale, (long long)r);
	}
	/* zero may be NULL: the codes and scales are the same */
	mcb_intq_rtn(w, rows, cols, p, q2, s2, NULL);
	if ((memcmp(q1, q2, (size_t)(rows * cols)) ||
	     memcmp(s1, s2, (size_t)(rows * ng) * sizeof(float))) &&
	    bad++ < 3)
		mcbt_fail(__FILE__, __LINE__, "with zero == NULL: differs from the oracle");
	free(q1);
	free(q2);
	free(z1);
	free(z2);
	free(s1);
	free(s2);
	return bad;
}

/*
 * Hand-derived groups (scales chosen exact so that every quotient is known):
 * halves to even, the zero point, clamping, GPTQ's symmetric quirk, the
 * all-zero group, a shorter last group, group 0.
 */
static void test_intq_known(void)
{
	struct mcb_intq_params asym4 = {4, 8, 0, 0}, sym4 = {4, 0, 1, 0}, sym2 = {2, 0, 1, 0};
	/* group 1: xmin -4, xmax 11: scale 15/15 = 1, zero round(4) = 4; group 2
	 * (the last, 5 columns) all zero: (-1, +1), scale fl(2/15), zero
	 * round(1 / fl(2/15)) = round(7.4999997) = 7 */
	static const float w[13] = {-4, -2.5f, -1.5f, 0.5f, 1.5f, 2.5f, 11, 10.5f, 0, 0, -0.0f, 0, 0};
	static const uint8_t want[13] = {0, 2, 2, 4, 6, 6, 15, 14, 7, 7, 7, 7, 7};
	/* symmetric: max|x| 7.5, scale 1, zero 8; 7.5 -> round 8 -> 16 -> 15 */
	static const float ws[8] = {-7.5f, 7.5f, 0.5f, -0.5f, 1.5f, -6.5f, 3, 0};
	static const uint8_t wants[8] = {0, 15, 8, 8, 10, 2, 11, 8};
	/* GPTQ's symmetric quirk: no negative value keeps xmin = 0, scale
	 * 15/15 = 1, zero 8: 15 clips to code 15 (value 7) */
	static const float wq[4] = {0, 1, 2, 15};
	static const uint8_t wantq[4] = {8, 9, 10, 15};
	static const float w2[3] = {-3, 1.5f, 0.4f}; /* 2-bit: scale 6/3 = 2, zero 2 */
	static const uint8_t want2[3] = {0, 3, 2};
	uint8_t q[13], z[2];
	float s[2];
	int j, zz;

	CHECK_EQ(intq_all_paths(w, 1, 13, &asym4), 0);
	mcb_intq_rtn(w, 1, 13, &asym4, q, s, z);
	CHECK(s[0] == 1.0f);
	CHECK_EQ(z[0], 4);
	CHECK(s[1] == 2.0f / 15.0f);
	CHECK_EQ(z[1], 7);
	for (j = 0; j < 13; j++)
		CHECK_EQ(q[j], want[j]);

	CHECK_EQ(intq_all_paths(ws, 1, 8, &sym4), 0);
	mcb_intq_rtn(ws, 1, 8, &sym4, q, s, z);
	CHECK(s[0] == 1.0f);
	CHECK_EQ(z[0], 8);
	for (j = 0; j < 8; j++)
		CHECK_EQ(q[j], wants[j]);
	sym4.group = 8; /* one group of the whole row: the same */
	mcb_intq_rtn(ws, 1, 8, &sym4, q, s, z);
	CHECK(s[0] == 1.0f);
	CHECK_EQ(q[1], 15);

	mcb_intq_params(wq, 4, &sym4, &s[0], &zz);
	CHECK(s[0] == 1.0f);
	CHECK_EQ(zz, 8);
	mcb_intq_codes(wq, 4, &sym4, s[0], zz, q);
	for (j = 0; j < 4; j++)
		CHECK_EQ(q[j], wantq[j]);

	mcb_intq_params(w2, 3, &sym2, &s[0], &zz);
	CHECK(s[0] == 2.0f);
	CHECK_EQ(zz, 2);
	mcb_intq_codes(w2, 3, &sym2, s[0], zz, q);
	for (j = 0; j < 3; j++)
		CHECK_EQ(q[j], want2[j]);
}

/* Scales that underflow to 0 or overflow fp16: no division by zero, codes
 * are the zero point, all paths agree. */
static void test_intq_degenerate(void)
{
	struct mcb_intq_params p = {4, 0, 0, 0};
	float x[40], s;
	uint8_t q[40];
	int z, j;

	memset(x, 0, sizeof(x));
	x[3] = 0x1p-149f; /* range 2^-149: scale rounds to 0, xmin = 0 -> zero 0 */
	mcb_intq_params(x, 40, &p, &s, &z);
	CHECK(s == 0.0f);
	CHECK_EQ(z, 0);
	mcb_intq_codes(x, 40, &p, s, z, q);
	for (j = 0; j < 40; j++)
		CHECK_EQ(q[j], 0);
	CHECK_EQ(intq_all_paths(x, 1, 40, &p), 0);
	x[3] = -0x1p-149f; /* xmin < 0, xmax = 0: zero maxq */
	mcb_intq_params(x, 40, &p, &s, &z);
	CHECK(s == 0.0f);
	CHECK_EQ(z, 15);
	CHECK_EQ(intq_all_paths(x, 1, 40, &p), 0);
	/* fp16: a scale below 2^-25 rounds to 0 */
	p.fp16_scale = 1;
	x[3] = 1e-7f;
	x[5] = -1e-7f;
	mcb_intq_params(x, 40, &p, &s, &z);
	CHECK(s == 0.0f);
	mcb_intq_codes(x, 40, &p, s, z, q);
	for (j = 0; j < 40; j++)
		CHECK_EQ(q[j], z);
	CHECK_EQ(intq_all_paths(x, 1, 40, &p), 0);
	/* fp16 overflow: scale 2e6/15 > 65504 -> inf, codes = zero */
	x[3] = 1e6f;
	x[5] = -1e6f;
	mcb_intq_params(x, 40, &p, &s, &z);
	CHECK(isinf(s));
	CHECK_EQ(z, 8); /* round(1e6 / fl(2e6/15)) = round(7.5) */
	mcb_intq_codes(x, 40, &p, s, z, q);
	for (j = 0; j < 40; j++)
		CHECK_EQ(q[j], 8);
	CHECK_EQ(intq_all_paths(x, 1, 40, &p), 0);
	/* empty rows: one group per row (group 0) or none; scale 2/15 */
	p.fp16_scale = 0;
	CHECK_EQ(intq_all_paths(x, 3, 0, &p), 0);
	mcb_intq_rtn(x, 1, 0, &p, q, &s, q + 20);
	CHECK(s == 2.0f / 15.0f);
	p.group = 128;
	CHECK_EQ(intq_all_paths(x, 3, 0, &p), 0);
	p.group = 0;
	p.fp16_scale = 1;
	/* non-finite input: defined, codes in range, all paths agree */
	x[7] = NAN;
	x[9] = INFINITY;
	for (p.symmetric = 0; p.symmetric < 2; p.symmetric++) {
		mcb_intq_params(x, 40, &p, &s, &z);
		CHECK(z >= 0 && z <= 15);
		CHECK_EQ(intq_all_paths(x, 1, 40, &p), 0);
	}
}

/* mcb_intq_rtn (AVX2) equals the oracle bit for bit on every kind of data,
 * for bits 2..8, both kinds, fp16 scales or not, group sizes that exercise
 * the vector loops and their tails, 8 groups at once and one by one. */
static void test_intq_fast_matches_ref(void)
{
	enum { MAXN = 1 << 15 };
	static const int64_t groups[] = {0, 1, 5, 8, 16, 24, 31, 32, 40, 64, 100, 128, 256};
	float *w = malloc(MAXN * sizeof(float));
	struct mcb_intq_params p;
	int rep, bad = 0, nbatch = 0;
	int64_t rows, cols, i;

	for (rep = 0; rep < 600; rep++) {
		cols = 1 + (int64_t)(rng_next() % (rep < 300 ? 300 : 4100));
		rows = 1 + (int64_t)(rng_next() % (MAXN / cols < 8 ? MAXN / cols : 8));
		for (i = 0; i + QK <= rows * cols; i += QK)
			fill_block(w + i, (int)(rng_next() % 10));
		for (; i < rows * cols; i++)
			w[i] = (float)rng_gauss();
		p.bits = 2 + (int)(rng_next() % 7);
		p.group = groups[rng_next() % (sizeof(groups) / sizeof(groups[0]))];
		p.symmetric = (int)(rng_next() & 1);
		p.fp16_scale = (int)(rng_next() & 1);
		bad += intq_all_paths(w, rows, cols, &p);
		/* the AVX2 path's 8-groups-at-once case */
		nbatch += p.group % 8 == 0 && p.group > 0 && cols / p.group >= 8;
	}
	CHECK_EQ(bad, 0);
	CHECK(nbatch >= 50);
	free(w);
}

/*
 * fp16 scales: every scale is the fp16 rounding of GPTQ's float32 scale
 * (recomputed here from the group's range), and requantizing with the
 * stored fp16 scale reproduces the codes exactly.
 */
static void test_intq_fp16_scale(void)
{
	enum { ROWS = 64, COLS = 384, G = 128, NG = COLS / G };
	float *w = malloc(ROWS * COLS * sizeof(float)), s[ROWS * NG], s32;
	uint8_t *q = malloc(ROWS * COLS), q2[G], z[ROWS * NG];
	struct mcb_intq_params p = {4, G, 0, 1};
	int64_t r, g, c;
	int bad = 0, sym;

	for (sym = 0; sym < 2; sym++) {
		p.symmetric = sym;
		for (r = 0; r < ROWS; r++) {
			int e = (int)(rng_next() % 40) - 30; /* scales 2^-33 .. 2^9 */

			for (c = 0; c < COLS; c++)
				w[r * COLS + c] = (float)ldexp(rng_gauss(), e);
		}
		mcb_intq_rtn(w, ROWS, COLS, &p, q, s, z);
		for (r = 0; r < ROWS; r++)
			for (g = 0; g < NG; g++) {
				const float *x = w + r * COLS + g * G;
				float lo = 0, hi = 0;
				uint16_t h;

				for (c = 0; c < G; c++) {
					lo = fminf(lo, x[c]);
					hi = fmaxf(hi, x[c]);
				}
				if (sym) {
					hi = fmaxf(-lo, hi);
					lo = lo < 0 ? -hi : lo;
				}
				s32 = (hi - lo) / 15.0f;
				h = ref_f16(s32);
				if ((double)s[r * NG + g] != ref_f16_val(h) && bad++ < 5)
					mcbt_fail(__FILE__, __LINE__, "scale %a, expected fp16(%a) = %a",
						  (double)s[r * NG + g], (double)s32, ref_f16_val(h));
				/* requantize from the stored half */
				mcb_intq_codes(x, G, &p, (float)ref_f16_val(h), z[r * NG + g], q2);
				if (memcmp(q2, q + r * COLS + g * G, G) && bad++ < 5)
					mcbt_fail(__FILE__, __LINE__, "row %lld group %lld: codes differ",
						  (long long)r, (long long)g);
			}
	}
	CHECK_EQ(bad, 0);
	free(w);
	free(q);
}

/*
 * Per-element error of GPTQ's quantizer where the group's range includes 0
 * on both sides (asymmetric; symmetric with a negative value): the grid
 * (j - zero) * s, j = 0..maxq, covers [xmin, xmax] to within half a step,
 * so |s (q - z) - x| <= s/2, plus rounding: the quotient x / s and the
 * range relation (xmax - xmin) / s = maxq (1 + 2u) move the ends by
 * (maxq + 1) * 4u steps, the product s (q - z) by maxq * u; with an fp16
 * scale s16 = s32 (1 + eta), the ends move by (maxq + 1) |s16 - s32|.
 *   |y - x| <= s16/2 + (maxq + 1) |s16 - s32| + 8 (maxq + 1) u s16
 */
static void test_intq_error_bound(void)
{
	enum { ROWS = 48, COLS = 512 };
	float *w = malloc(ROWS * COLS * sizeof(float)), *s = malloc(ROWS * COLS * sizeof(float));
	uint8_t *q = malloc(ROWS * COLS), *z = malloc(ROWS * COLS);
	static const int64_t groups[] = {32, 128, 0};
	struct mcb_intq_params p;
	int bad = 0, cfg, bits, nbig = 0;
	double worst = 0;

	for (cfg = 0; cfg < 24; cfg++) {
		int64_t r, c, ng, len;

		bits = 2 + cfg % 7;
		if (bits == 7)
			bits = 8;
		p.bits = bits;
		p.group = groups[cfg % 3];
		p.symmetric = (cfg / 3) & 1;
		p.fp16_scale = (cfg / 6) & 1;
		ng = ngroups_of(COLS, p.group);
		len = p.group ? p.group : COLS;
		for (r = 0; r < ROWS; r++) {
			int e = (int)(rng_next() % 20) - 6; /* scales in fp16's normal range */

			for (c = 0; c < COLS; c++)
				w[r * COLS + c] = (float)ldexp(rng_gauss(), e);
			if (r % 8 == 0) { /* range [-h, h - 1]: asymmetric step 1, exact halves */
				int h = 1 << (bits - 1);

				for (c = 0; c < COLS; c++) {
					float v = (float)((int)(c % (2 * h - 1)) - h) + 0.5f;

					if (c % len == 0)
						v = (float)-h;
					else if (c % len == 1)
						v = (float)(h - 1);
					w[r * COLS + c] = v;
				}
			}
		}
		mcb_intq_rtn(w, ROWS, COLS, &p, q, s, z);
		for (r = 0; r < ROWS; r++)
			for (c = 0; c < COLS; c++) {
				int64_t g = c / len;
				const float *x = w + r * COLS + g * len;
				float lo = 0, hi = 0, sg = s[r * ng + g], s32;
				int64_t k, n = COLS - g * len < len ? COLS - g * len : len;
				int maxq = (1 << bits) - 1;
				double y, err, bound;

				for (k = 0; k < n; k++) {
					lo = fminf(lo, x[k]);
					hi = fmaxf(hi, x[k]);
				}
				if (lo == 0) /* keep to groups with a negative value */
					continue;
				if (p.symmetric) {
					hi = fmaxf(-lo, hi);
					lo = -hi;
				}
				s32 = (hi - lo) / (float)maxq;
				y = (double)(sg * (float)(q[r * COLS + c] - z[r * ng + g]));
				err = fabs(y - w[r * COLS + c]);
				bound = sg / 2.0 + (maxq + 1) * fabs((double)sg - s32) +
					8.0 * (maxq + 1) * U24 * sg;
				if (err > bound && bad++ < 5)
					mcbt_fail(__FILE__, __LINE__,
						  "bits %d group %lld sym %d fp16 %d: x=%a y=%a err %g > %g",
						  bits, (long long)p.group, p.symmetric, p.fp16_scale,
						  (double)w[r * COLS + c], y, err, bound);
				if (err / sg > worst)
					worst = err / sg;
				nbig += err > 0.49 * sg;
			}
	}
	CHECK_EQ(bad, 0);
	fprintf(stderr, "  intq worst |y - x| / s: %.6f\n", worst);
	CHECK(worst >= 0.5); /* exact halves reach the bound */
	CHECK(nbig > 0);
	free(w);
	free(s);
	free(q);
	free(z);
}

/*
 * NMSE on N(0,1) data, 4-bit groups of 128, fp16 scales, rows of 4096.  The
 * uniform-error model predicts s^2 / 12: asymmetric s = range / 15 with
 * E[range^2] = 27.3 for 128 Gaussians (Monte Carlo), 1.010e-2 predicted;
 * symmetric s = 2 amax / 15 with E[amax^2] = 8.15, 1.207e-2 (a little
 * more in fact: the top code is zero + 7, so values near +amax lose up to
 * s/2 more).  Measured about 1.01e-2 and 1.22e-2 (the seeded data
 * depends on the tests run before; 2^20 samples vary by < 0.5%); windows
 * +-5% catch both a worse quantizer and one that stops quantizing.
 */
static void test_intq_nmse_gaussian(void)
{
	enum { ROWS = 256, COLS = 4096, N = ROWS * COLS, G = 128, NG = COLS / G };
	float *x = malloc(N * sizeof(float)), *s = malloc(ROWS * NG * sizeof(float));
	uint8_t *q = malloc(N), *z = malloc(ROWS * NG);
	struct mcb_intq_params p = {4, G, 0, 1};
	double num, den = 0, nmse[2];
	int64_t i;
	int sym;

	for (i = 0; i < N; i++) {
		x[i] = (float)rng_gauss();
		den += (double)x[i] * x[i];
	}
	for (sym = 0; sym < 2; sym++) {
		p.symmetric = sym;
		mcb_intq_rtn(x, ROWS, COLS, &p, q, s, z);
		num = 0;
		for (i = 0; i < N; i++) {
			int64_t g = (i / COLS) * NG + (i % COLS) / G;
			double e = (double)(s[g] * (float)(q[i] - z[g])) - x[i];

			num += e * e;
		}
		nmse[sym] = num / den;
	}
	fprintf(stderr, "  nmse N(0,1): int4 g128 asymmetric %.4g, symmetric %.4g\n", nmse[0],
		nmse[1]);
	CHECK(nmse[0] > 1.01e-2 * 0.95 && nmse[0] < 1.01e-2 * 1.05);
	CHECK(nmse[1] > 1.22e-2 * 0.95 && nmse[1] < 1.22e-2 * 1.05);
	free(x);
	free(s);
	free(q);
	free(z);
}

/* GPTQ's quantizer recomputed by tests/compat/pack_check.py (numpy, float32
 * as torch) equals ours bit for bit. */
static void test_intq_python(void)
{
	static const struct {
		int bits;
		int64_t rows, cols, group;
		int sym, fp16;
	} cfg[] = {{4, 16, 512, 128, 0, 1}, {4, 16, 500, 128, 1, 1}, {8, 8, 300, 0, 0, 0},
		   {2, 8, 96, 32, 1, 0},    {3, 8, 200, 64, 0, 1},   {5, 4, 77, 7, 0, 0},
		   {4, 8, 256, 1, 1, 1}};
	const char *py = mcbt_python("tests/compat/pack_check.py");
	size_t k;

	if (!py)
		return;
	for (k = 0; k < sizeof(cfg) / sizeof(cfg[0]); k++) {
		struct mcb_intq_params p = {cfg[k].bits, cfg[k].group, cfg[k].sym, cfg[k].fp16};
		int64_t rows = cfg[k].rows, cols = cfg[k].cols, ng = ngroups_of(cols, p.group), i;
		float *x = malloc((size_t)(rows * cols) * sizeof(float));
		float *s = malloc((size_t)(rows * ng) * sizeof(float));
		uint8_t *q = malloc((size_t)(rows * cols)), *z = malloc((size_t)(rows * ng));
		char dir[4096];

		for (i = 0; i < rows * cols; i++) {
			x[i] = (float)ldexp(rng_gauss(), (int)(i / cols) - 4);
			if (rng_next() % 50 == 0) /* exact halves of common steps */
				x[i] = (float)((int)(rng_next() % 31) - 15) * 0.5f;
		}
		for (i = 0; i < cols; i++) /* a row with no negative value (the symmetric quirk) */
			x[i] = fabsf(x[i]);
		for (i = 0; i < cols; i++) /* a zero row */
			x[cols + i] = 0;
		mcb_intq_rtn(x, rows, cols, &p, q, s, z);
		snprintf(dir, sizeof(dir), "%s", mcbt_tmpdir());
		write_meta(dir, "rows=%lld cols=%lld bits=%d group=%lld sym=%d fp16=%d\n",
			   (long long)rows, (long long)cols, p.bits, (long long)p.group, p.symmetric,
			   p.fp16_scale);
		write_file(dir, "x.f32", x, (size_t)(rows * cols) * sizeof(float));
		write_file(dir, "codes.u8", q, (size_t)(rows * cols));
		write_file(dir, "scales.f32", s, (size_t)(rows * ng) * sizeof(float));
		write_file(dir, "zeros.u8", z, (size_t)(rows * ng));
		run_pack_check(py, "intq", dir);
		free(x);
		free(s);
		free(q);
		free(z);
	}
}

/* ---- FP8 E4M3 ---- */

/* value of an E4M3 code, independent decoder (NaN for 0x7f, 0xff) */
static double ref_e4m3_val(int b)
{
	int e = (b >> 3) & 15, m = b & 7;
	double v;

	if (e == 15 && m == 7)
		v = NAN;
	else if (e == 0)
		v = ldexp(m, -9);
	else
		v = ldexp(8 + m, e - 10);
	return (b & 0x80) ? -v : v;
}

/* Independent encoder (double arithmetic, as ref_f16): scale to units of the
 * code's ulp at f's binade, round with nearbyint, re-encode; saturate. */
static uint8_t ref_e4m3(float f)
{
	uint8_t sign = signbit(f) ? 0x80 : 0;
	double a = fabs((double)f), r;
	int e;

	if (isnan(f))
		return 0x7f;
	if (a >= 448.0)
		return sign | 0x7e;
	if (a == 0)
		return sign;
	e = ilogb(a);
	if (e < -6)
		e = -6;
	r = nearbyint(ldexp(a, 3 - e)); /* units of 2^(e-3) */
	if (e == -6 && r < 8)
		return sign | (uint8_t)r;
	return sign | (uint8_t)(((e + 7) << 3) + ((int)r - 8));
}

static void test_e4m3_decode_all(void)
{
	int b, nnan = 0;

	for (b = 0; b < 256; b++) {
		float f = mcb_e4m3_to_f32((uint8_t)b);
		double v = ref_e4m3_val(b);

		if (isnan(v)) {
			CHECK(isnan(f));
			nnan++;
		} else if ((double)f != v) {
			mcbt_fail(__FILE__, __LINE__, "0x%02x -> %a, expected %a", b, (double)f, v);
		}
		CHECK_EQ(!signbit(f), !(b & 0x80));
	}
	CHECK_EQ(nnan, 2);
	CHECK(mcb_e4m3_to_f32(0x7e) == 448.0f);
	CHECK(mcb_e4m3_to_f32(0xfe) == -448.0f);
	CHECK(mcb_e4m3_to_f32(0x01) == 0x1p-9f);
	CHECK(mcb_e4m3_to_f32(0x08) == 0x1p-6f);
	CHECK(mcb_e4m3_to_f32(0x07) == 7 * 0x1p-9f);
	CHECK(mcb_e4m3_to_f32(0x38) == 1.0f);
	CHECK(mcb_e4m3_to_f32(0x3c) == 1.5f);
}

static void test_e4m3_roundtrip(void)
{
	int b;

	for (b = 0; b < 256; b++) {
		if ((b & 0x7f) == 0x7f)
			continue;
		if (mcb_f32_to_e4m3(mcb_e4m3_to_f32((uint8_t)b)) != b)
			mcbt_fail(__FILE__, __LINE__, "0x%02x -> %a -> 0x%02x", b,
				  (double)mcb_e4m3_to_f32((uint8_t)b),
				  mcb_f32_to_e4m3(mcb_e4m3_to_f32((uint8_t)b)));
	}
}

/* Every midpoint between neighbouring codes goes to the even one, one ulp
 * either side to the nearer one; saturation, NaN, zeros. */
static void test_e4m3_boundaries(void)
{
	int b, sign;

	for (sign = 0; sign < 2; sign++)
		for (b = 0; b < 0x7e; b++) { /* b and b + 1, both finite */
			int lo = b | (sign << 7), hi = (b + 1) | (sign << 7);
			float mid = (float)((ref_e4m3_val(lo) + ref_e4m3_val(hi)) / 2);
			int even = (b & 1) ? hi : lo;

			CHECK((double)mid == (ref_e4m3_val(lo) + ref_e4m3_val(hi)) / 2); /* exact */
			CHECK_EQ(mcb_f32_to_e4m3(mid), even);
			CHECK_EQ(mcb_f32_to_e4m3(nextafterf(mid, 0)), lo);
			CHECK_EQ(mcb_f32_to_e4m3(nextafterf(mid, sign ? -INFINITY : INFINITY)), hi);
		}
	CHECK_EQ(mcb_f32_to_e4m3(448.0f), 0x7e);
	CHECK_EQ(mcb_f32_to_e4m3(nextafterf(448.0f, INFINITY)), 0x7e);
	CHECK_EQ(mcb_f32_to_e4m3(464.0f), 0x7e); /* the midpoint towards "480" */
	CHECK_EQ(mcb_f32_to_e4m3(1e30f), 0x7e);
	CHECK_EQ(mcb_f32_to_e4m3(FLT_MAX), 0x7e);
	CHECK_EQ(mcb_f32_to_e4m3(INFINITY), 0x7e);
	CHECK_EQ(mcb_f32_to_e4m3(-INFINITY), 0xfe);
	CHECK_EQ(mcb_f32_to_e4m3(-500.0f), 0xfe);
	CHECK_EQ(mcb_f32_to_e4m3(NAN), 0x7f);
	CHECK_EQ(mcb_f32_to_e4m3(-NAN), 0x7f);
	CHECK_EQ(mcb_f32_to_e4m3(bits_f(0x7f800001u)), 0x7f); /* signalling NaN */
	CHECK_EQ(mcb_f32_to_e4m3(0.0f), 0x00);
	CHECK_EQ(mcb_f32_to_e4m3(-0.0f), 0x80);
	CHECK_EQ(mcb_f32_to_e4m3(0x1p-10f), 0x00);  /* half the smallest subnormal: to even 0 */
	CHECK_EQ(mcb_f32_to_e4m3(nextafterf(0x1p-10f, 1)), 0x01);
	CHECK_EQ(mcb_f32_to_e4m3(-0x1p-10f), 0x80);
	CHECK_EQ(mcb_f32_to_e4m3(0x1p-149f), 0x00); /* float denormal */
	CHECK_EQ(mcb_f32_to_e4m3(0x1.ep-7f), 0x08); /* 7.5 units: to 8, the smallest normal */
	CHECK_EQ(mcb_f32_to_e4m3(0x1.fp-1f), 0x38); /* 0.96875 ties between 0.9375 and 1: to 1 */
	CHECK_EQ(mcb_f32_to_e4m3(1.0625f), 0x38);   /* between 1 and 1.125: to even 1 */
	CHECK_EQ(mcb_f32_to_e4m3(1.1875f), 0x3a);   /* between 1.125 and 1.25: to 1.25 */
}

/* The encoder against the independent one on 2^24 patterns: every sign,
 * exponent and top 15 mantissa bits, with random low bits (the rounding
 * bits), plus exact ties. */
static void test_e4m3_sweep(void)
{
	uint32_t hi;
	int bad = 0;

	for (hi = 0; hi < (1u << 24); hi++) {
		uint32_t low = (hi & 3) == 0 ? 0x80000u /* a tie at the normal rounding bit */
						 : (uint32_t)rng_next() & 0xffu;
		float f = bits_f((hi << 8) | low);
		uint8_t got = mcb_f32_to_e4m3(f), want = ref_e4m3(f);

		if (got != want && bad++ < 5)
			mcbt_fail(__FILE__, __LINE__, "%a (0x%08x): 0x%02x, expected 0x%02x", (double)f,
				  f_bits(f), got, want);
	}
	CHECK_EQ(bad, 0);
}

/* 100k floats (normal, subnormal range, ties, specials) and the 256-code
 * table against tests/compat/pack_check.py's float64 implementation. */
static void test_e4m3_python(void)
{
	enum { N = 100000 };
	const char *py = mcbt_python("tests/compat/pack_check.py");
	float *x, table[256];
	uint8_t *c;
	char dir[4096];
	int i;

	if (!py)
		return;
	x = malloc(N * sizeof(float));
	c = malloc(N);
	for (i = 0; i < N; i++) {
		switch (i % 5) {
		case 0: /* |x| in [2^-12, 2^10): exponents around the format's range */
			x[i] = bits_f((uint32_t)(rng_next() & 0x807fffffu) |
				      ((115u + (uint32_t)(rng_next() % 22)) << 23));
			break;
		case 1: /* subnormal range [0, 2^-6) */
			x[i] = (float)(rng_unif() * 0x1p-6) * ((rng_next() & 1) ? -1.0f : 1.0f);
			break;
		case 2: /* an exact tie between two codes */
		{
			int b = (int)(rng_next() % 0x7e);

			x[i] = (float)((ref_e4m3_val(b) + ref_e4m3_val(b + 1)) / 2);
			break;
		}
		case 3: /* anything */
			x[i] = bits_f((uint32_t)rng_next());
			break;
		default: /* Gaussian weights times a scale */
			x[i] = (float)(rng_gauss() * 100);
			break;
		}
		c[i] = mcb_f32_to_e4m3(x[i]);
	}
	x[0] = NAN;
	x[1] = INFINITY;
	x[2] = -INFINITY;
	x[3] = -0.0f;
	x[4] = 448.0f;
	x[5] = 464.0f;
	for (i = 0; i < 6; i++)
		c[i] = mcb_f32_to_e4m3(x[i]);
	for (i = 0; i < 256; i++)
		table[i] = mcb_e4m3_to_f32((uint8_t)i);
	snprintf(dir, sizeof(dir), "%s", mcbt_tmpdir());
	write_file(dir, "x.f32", x, N * sizeof(float));
	write_file(dir, "codes.u8", c, N);
	write_file(dir, "table.f32", table, sizeof(table));
	run_pack_check(py, "e4m3", dir);
	free(x);
	free(c);
}

/* ---- GPTQ and AWQ packing ---- */

/* Known words: AutoGPTQ's loops written out (a code at bits*j of its word;
 * 3-bit: 32 codes in 3 words with codes 10 and 21 split), AWQ's nibble order. */
static void test_pack_known(void)
{
	uint8_t q[64], back[64], z[16];
	int32_t w[8];
	uint32_t want[3] = {0, 0, 0};
	int j;

	/* 4-bit, one output row, 8 inputs: q[j] = j + 1 -> 0x87654321 */
	for (j = 0; j < 8; j++)
		q[j] = (uint8_t)(j + 1);
	mcb_pack_gptq(q, 1, 8, 4, w);
	CHECK_EQ((uint32_t)w[0], 0x87654321u);
	/* two output rows: qweight [1, 2], row n in column n */
	for (j = 0; j < 8; j++)
		q[8 + j] = (uint8_t)(15 - j);
	mcb_pack_gptq(q, 2, 8, 4, w);
	CHECK_EQ((uint32_t)w[0], 0x87654321u);
	CHECK_EQ((uint32_t)w[1], 0x89abcdefu);
	/* 8-bit and 2-bit */
	mcb_pack_gptq((const uint8_t[]){0x11, 0x22, 0xff, 0x80}, 1, 4, 8, w);
	CHECK_EQ((uint32_t)w[0], 0x80ff2211u);
	for (j = 0; j < 16; j++)
		q[j] = (uint8_t)(j % 4);
	mcb_pack_gptq(q, 1, 16, 2, w);
	CHECK_EQ((uint32_t)w[0], 0xe4e4e4e4u);
	/* 3-bit: q[j] = (5 j + 3) mod 8 */
	for (j = 0; j < 32; j++)
		q[j] = (uint8_t)((5 * j + 3) % 8);
	for (j = 0; j < 10; j++)
		want[0] |= (uint32_t)q[j] << (3 * j);
	want[0] |= (uint32_t)(q[10] & 3) << 30;
	want[1] |= (uint32_t)q[10] >> 2;
	for (j = 0; j < 10; j++)
		want[1] |= (uint32_t)q[11 + j] << (3 * j + 1);
	want[1] |= (uint32_t)(q[21] & 1) << 31;
	want[2] |= (uint32_t)q[21] >> 1;
	for (j = 0; j < 10; j++)
		want[2] |= (uint32_t)q[22 + j] << (3 * j + 2);
	mcb_pack_gptq(q, 1, 32, 3, w);
	for (j = 0; j < 3; j++)
		CHECK_EQ((uint32_t)w[j], want[j]);
	mcb_unpack_gptq(w, 1, 32, 3, back);
	CHECK(memcmp(q, back, 32) == 0);
	/* qzeros v1: 8 rows of symmetric 4-bit zero 8 -> 7s; zero 0 -> 15 */
	memset(z, 8, 8);
	mcb_pack_gptq_zeros(z, 8, 1, 4, w);
	CHECK_EQ((uint32_t)w[0], 0x77777777u);
	z[2] = 0;
	z[7] = 1;
	mcb_pack_gptq_zeros(z, 8, 1, 4, w);
	CHECK_EQ((uint32_t)w[0], 0x07777f77u);
	mcb_unpack_gptq_zeros(w, 8, 1, 4, back);
	CHECK(memcmp(z, back, 8) == 0);
	/* 8-bit symmetric zero 128 -> 127 */
	memset(z, 128, 4);
	mcb_pack_gptq_zeros(z, 4, 1, 8, w);
	CHECK_EQ((uint32_t)w[0], 0x7f7f7f7fu);
	/* zeros [rows 8, ngroups 2]: group g of row n at z[n*2 + g], qzeros [2, 1] */
	for (j = 0; j < 8; j++) {
		z[2 * j] = (uint8_t)(j + 1);
		z[2 * j + 1] = (uint8_t)(j + 8);
	}
	mcb_pack_gptq_zeros(z, 8, 2, 4, w);
	CHECK_EQ((uint32_t)w[0], 0x76543210u);
	CHECK_EQ((uint32_t)w[1], 0xedcba987u);

	/* AWQ: rows 8, cols 1, q[r] = r: nibble i holds row ORDER[i] */
	for (j = 0; j < 8; j++)
		q[j] = (uint8_t)j;
	mcb_pack_awq(q, 8, 1, w);
	CHECK_EQ((uint32_t)w[0], 0x75316420u);
	mcb_pack_awq_zeros(q, 8, 1, w);
	CHECK_EQ((uint32_t)w[0], 0x75316420u);
	/* rows 16, cols 2: qweight [2, 2], word [k][c] from rows 8c..8c+7 at k */
	for (j = 0; j < 16; j++) {
		q[2 * j] = (uint8_t)(j & 15);
		q[2 * j + 1] = (uint8_t)(15 - j);
	}
	mcb_pack_awq(q, 16, 2, w);
	CHECK_EQ((uint32_t)w[0], 0x75316420u);
	CHECK_EQ((uint32_t)w[1], 0xfdb9eca8u);
	CHECK_EQ((uint32_t)w[2], 0x8ace9bdfu);
	CHECK_EQ((uint32_t)w[3], 0x02461357u);
	mcb_unpack_awq(w, 16, 2, back);
	CHECK(memcmp(q, back, 32) == 0);
}

/* pack -> unpack is the identity on random codes and zeros, every bit
 * width and shape the layouts allow (GPTQ zero 0 included). */
static void test_pack_roundtrip(void)
{
	static const int bitsv[4] = {2, 3, 4, 8};
	int rep, bad = 0;

	for (rep = 0; rep < 200; rep++) {
		int bits = bitsv[rep % 4], maxq = (1 << bits) - 1;
		int64_t unit = bits == 3 ? 32 : 32 / bits; /* cols*bits % 32 == 0 */
		int64_t rows = unit * (1 + (int64_t)(rng_next() % 6));
		int64_t cols = unit * (1 + (int64_t)(rng_next() % 10));
		int64_t ng = 1 + (int64_t)(rng_next() % 5), i;
		uint8_t *q = malloc((size_t)(rows * cols)), *back = malloc((size_t)(rows * cols));
		uint8_t *z = malloc((size_t)(rows * ng)), *zb = malloc((size_t)(rows * ng));
		int32_t *w = malloc((size_t)(rows * cols) * sizeof(int32_t));
		int32_t *wz = malloc((size_t)(rows * ng) * sizeof(int32_t));

		for (i = 0; i < rows * cols; i++)
			q[i] = (uint8_t)(rng_next() & (uint64_t)maxq);
		for (i = 0; i < rows * ng; i++)
			z[i] = (uint8_t)(rng_next() & (uint64_t)maxq);
		mcb_pack_gptq(q, rows, cols, bits, w);
		mcb_unpack_gptq(w, rows, cols, bits, back);
		bad += memcmp(q, back, (size_t)(rows * cols)) != 0;
		mcb_pack_gptq_zeros(z, rows, ng, bits, wz);
		mcb_unpack_gptq_zeros(wz, rows, ng, bits, zb);
		bad += memcmp(z, zb, (size_t)(rows * ng)) != 0;
		if (bits == 4 && rows % 8 == 0) {
			mcb_pack_awq(q, rows, cols, w);
			mcb_unpack_awq(w, rows, cols, back);
			bad += memcmp(q, back, (size_t)(rows * cols)) != 0;
			mcb_pack_awq_zeros(z, rows, ng, wz);
			mcb_unpack_awq_zeros(wz, rows, ng, zb);
			bad += memcmp(z, zb, (size_t)(rows * ng)) != 0;
		}
		if (bad && rep < 1000) {
			mcbt_fail(__FILE__, __LINE__, "bits %d rows %lld cols %lld ngroups %lld", bits,
				  (long long)rows, (long long)cols, (long long)ng);
			rep = 1000;
		}
		free(q);
		free(back);
		free(z);
		free(zb);
		free(w);
		free(wz);
	}
	CHECK_EQ(bad, 0);
}

/*
 * One checkpoint through tests/compat/pack_check.py: codes (rows, cols),
 * zeros and fp16 scales (rows, ng), g_idx (cols,) (GPTQ; AWQ uses
 * column / group).  Writes the packed tensors and the dense weights they
 * must dequantize to, W[n][k] = s[n][g] * (q[n][k] - z[n][g]) in float.
 */
static void pack_case(const char *py, int awq, int64_t rows, int64_t cols, int bits,
		      int64_t group, int64_t ng, const uint8_t *q, const uint8_t *z,
		      const float *s, const int32_t *g_idx)
{
	int32_t *qw = malloc((size_t)(rows * cols) * sizeof(int32_t) + 4);
	int32_t *qz = malloc((size_t)(rows * ng) * sizeof(int32_t) + 4);
	uint16_t *sh = malloc((size_t)(rows * ng) * sizeof(uint16_t));
	float *w = malloc((size_t)(rows * cols) * sizeof(float));
	char dir[4096];
	int64_t n, k, g;
	size_t nqw = (size_t)(awq ? cols * rows / 8 : cols * bits / 32 * rows);
	size_t nqz = (size_t)(awq ? ng * rows / 8 : ng * rows * bits / 32);

	for (n = 0; n < rows; n++)
		for (g = 0; g < ng; g++) {
			sh[g * rows + n] = ref_f16(s[n * ng + g]); /* checkpoint: [ngroups, rows] */
			CHECK(ref_f16_val(sh[g * rows + n]) == (double)s[n * ng + g]);
		}
	for (n = 0; n < rows; n++)
		for (k = 0; k < cols; k++) {
			g = awq ? k / group : g_idx[k];
			w[n * cols + k] = s[n * ng + g] * (float)(q[n * cols + k] - z[n * ng + g]);
		}
	if (awq) {
		mcb_pack_awq(q, rows, cols, qw);
		mcb_pack_awq_zeros(z, rows, ng, qz);
	} else {
		mcb_pack_gptq(q, rows, cols, bits, qw);
		mcb_pack_gptq_zeros(z, rows, ng, bits, qz);
	}
	snprintf(dir, sizeof(dir), "%s", mcbt_tmpdir());
	write_meta(dir, "rows=%lld cols=%lld bits=%d group=%lld ngroups=%lld\n", (long long)rows,
		   (long long)cols, bits, (long long)group, (long long)ng);
	write_file(dir, "qweight.i32", qw, nqw * sizeof(int32_t));
	write_file(dir, "qzeros.i32", qz, nqz * sizeof(int32_t));
	write_file(dir, "scales.f16", sh, (size_t)(rows * ng) * sizeof(uint16_t));
	if (!awq)
		write_file(dir, "g_idx.i32", g_idx, (size_t)cols * sizeof(int32_t));
	write_file(dir, "codes.u8", q, (size_t)(rows * cols));
	write_file(dir, "zeros.u8", z, (size_t)(rows * ng));
	write_file(dir, "expect.f32", w, (size_t)(rows * cols) * sizeof(float));
	run_pack_check(py, awq ? "awq" : "gptq", dir);
	free(qw);
	free(qz);
	free(sh);
	free(w);
}

/*
 * GPTQ and AWQ checkpoints read back by the independent Python reader:
 * weights quantized with mcb_intq_rtn (fp16 scales), packed, then unpacked
 * and dequantized there.  GPTQ: symmetric (v1 zero - 1 for zero 2^(bits-1)),
 * asymmetric with zeros kept >= 1 (v1 cannot hold 0), and act-order g_idx
 * (a permutation, groups not monotone).  AWQ: 4-bit, mostly asymmetric.
 * Both with a shorter last group.
 */
static void test_pack_python(void)
{
	static const struct {
		int awq, bits, sym, actorder;
		int64_t rows, cols, group;
	} cfg[] = {{0, 4, 1, 0, 64, 256, 128}, {0, 4, 0, 0, 32, 384, 128},
		   {0, 8, 1, 0, 16, 128, 32},     {0, 2, 1, 0, 32, 64, 16},
		   {0, 3, 1, 0, 64, 256, 64},     {0, 3, 0, 1, 32, 128, 32},
		   {0, 4, 0, 1, 32, 256, 64},     {1, 4, 0, 0, 64, 256, 128},
		   {1, 4, 0, 0, 16, 320, 64},     {1, 4, 1, 0, 24, 128, 128},
		   {0, 4, 0, 0, 16, 200, 64},     {1, 4, 0, 0, 16, 200, 64}}; /* last group short */
	const char *py = mcbt_python("tests/compat/pack_check.py");
	size_t k;

	if (!py)
		return;
	for (k = 0; k < sizeof(cfg) / sizeof(cfg[0]); k++) {
		int64_t rows = cfg[k].rows, cols = cfg[k].cols, group = cfg[k].group;
		int64_t ng = ngroups_of(cols, group), i, j, n;
		struct mcb_intq_params p = {cfg[k].bits, group, cfg[k].sym, 1};
		float *w = malloc((size_t)(rows * cols) * sizeof(float));
		float *s = malloc((size_t)(rows * ng) * sizeof(float));
		uint8_t *q = malloc((size_t)(rows * cols)), *z = malloc((size_t)(rows * ng));
		int32_t *g_idx = malloc((size_t)cols * sizeof(int32_t));
		int64_t *perm = malloc((size_t)cols * sizeof(int64_t));

		for (i = 0; i < rows * cols; i++)
			w[i] = (float)(rng_gauss() * 0.02);
		for (i = 0; i < cols; i++)
			perm[i] = i;
		if (cfg[k].actorder) /* GPTQ act-order: column c was quantized at position invperm[c] */
			for (i = cols - 1; i > 0; i--) {
				int64_t t;

				j = (int64_t)(rng_next() % (uint64_t)(i + 1));
				t = perm[i];
				perm[i] = perm[j];
				perm[j] = t;
			}
		for (i = 0; i < cols; i++)
			g_idx[i] = (int32_t)(perm[i] / group);
		mcb_intq_rtn(w, rows, cols, &p, q, s, z);
		if (!cfg[k].awq && !cfg[k].sym)
			for (i = 0; i < rows * ng; i++)
				if (z[i] == 0)
					z[i] = 1; /* v1 cannot store zero 0 */
		if (cfg[k].actorder) /* arbitrary codes: the reader does not care how they came */
			for (n = 0; n < rows * cols; n++)
				q[n] = (uint8_t)(rng_next() & (uint64_t)((1 << p.bits) - 1));
		pack_case(py, cfg[k].awq, rows, cols, p.bits, group, ng, q, z, s, g_idx);
		free(w);
		free(s);
		free(q);
		free(z);
		free(g_idx);
		free(perm);
	}
}

int main(void)
{
	RUN(test_f16_decode_all);
	RUN(test_f16_scale_encoding);
	RUN(test_q8_0_known);
	RUN(test_q8_0_fast_matches_ref);
	RUN(test_q8_0_error_bound);
	RUN(test_nmse_gaussian);
	RUN(test_rtn_known);
	RUN(test_rtn_fast_matches_ref);
	RUN(test_rtn_error_bound);
	RUN(test_check_finite);
	RUN(test_intq_known);
	RUN(test_intq_degenerate);
	RUN(test_intq_fast_matches_ref);
	RUN(test_intq_fp16_scale);
	RUN(test_intq_error_bound);
	RUN(test_intq_nmse_gaussian);
	RUN(test_intq_python);
	RUN(test_e4m3_decode_all);
	RUN(test_e4m3_roundtrip);
	RUN(test_e4m3_boundaries);
	RUN(test_e4m3_sweep);
	RUN(test_e4m3_python);
	RUN(test_pack_known);
	RUN(test_pack_roundtrip);
	RUN(test_pack_python);
	return mcbt_done();
}
