/* rng.c - xoshiro256** (Blackman and Vigna), seeded through splitmix64. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void tk_rng_seed(struct tk_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
	r->has_spare = 0;
	r->spare = 0;
}

void tk_rng_stream(struct tk_rng *r, uint64_t seed, const char *name,
		   uint64_t index)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	uint64_t x = seed;
	uint64_t k = splitmix64(&x) ^ h;
	k = splitmix64(&k) ^ index;
	tk_rng_seed(r, splitmix64(&k));
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t tk_rng_u64(struct tk_rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

double tk_rng_uniform(struct tk_rng *r)
{
	return (double)(tk_rng_u64(r) >> 11) * 0x1p-53;
}

double tk_rng_normal(struct tk_rng *r)
{
	if (r->has_spare) {
		r->has_spare = 0;
		return r->spare;
	}
	/* 1 - u lies in (0, 1]: the logarithm is finite. */
	double u = 1.0 - tk_rng_uniform(r), v = tk_rng_uniform(r);
	double rad = sqrt(-2.0 * log(u)), a = 2.0 * M_PI * v;
	r->spare = rad * sin(a);
	r->has_spare = 1;
	return rad * cos(a);
}
