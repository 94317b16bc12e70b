/* rng.h - the counter-based random numbers of dropout and drop-path:
 * element i of a call with seed s draws u(s, i) in [0, 1) from a
 * SplitMix64 hash, the same on the CPU and the GPU, in any order and on
 * any number of threads; so a mask is a (seed, index) pair, not state. */
#ifndef TK_KERNELS_RNG_H
#define TK_KERNELS_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define TK_HD __host__ __device__
#else
#define TK_HD
#endif

static inline TK_HD uint64_t tk_hash64(uint64_t seed, uint64_t i)
{
	uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1), 24 bits. */
static inline TK_HD float tk_uniform(uint64_t seed, uint64_t i)
{
	return (float)(tk_hash64(seed, i) >> 40) * (1.0f / 16777216.0f);
}

#endif
