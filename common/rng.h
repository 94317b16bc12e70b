/* rng.h - a small seeded random generator (xoshiro256**, seeded through
 * splitmix64) with the distributions that initialisation needs.  Streams
 * are derived from (seed, name, index), so that what one tensor draws
 * never depends on another's size or on the number of threads. */
#ifndef TK_RNG_H
#define TK_RNG_H

#include <stdint.h>

struct tk_rng {
	uint64_t s[4];
	double spare; /* the second normal of a Box-Muller pair */
	int has_spare;
};

void tk_rng_seed(struct tk_rng *r, uint64_t seed);
/* The stream for (seed, name, index): a tensor's name and chunk index. */
void tk_rng_stream(struct tk_rng *r, uint64_t seed, const char *name,
		   uint64_t index);
uint64_t tk_rng_u64(struct tk_rng *r);
/* Uniform in [0, 1), 53 bits. */
double tk_rng_uniform(struct tk_rng *r);
/* Standard normal (Box-Muller). */
double tk_rng_normal(struct tk_rng *r);

#endif
