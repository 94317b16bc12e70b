/* nprand.h - numpy's legacy RandomState over MT19937 seeded by a
 * SeedSequence, as far as shuffling goes: the permutations are those of
 *   rs = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(E)))
 *   rs.shuffle(a)
 * so that data splits made by reference Python code can be reproduced
 * exactly (tk-list --split) and checked against numpy. */
#ifndef TK_NPRAND_H
#define TK_NPRAND_H

#include <stddef.h>
#include <stdint.h>

struct np_rng {
	uint32_t key[624];
	int pos;
};

/* Seed from SeedSequence entropy given as 32-bit words: an int seed s is
 * its little-endian words ({0} for 0), a list [a, b] the words of a then
 * of b. */
void np_rng_seed(struct np_rng *r, const uint32_t *entropy, size_t n);
/* Entropy words of a non-negative integer, as numpy splits it: returns
 * how many (1 or 2) were written to w. */
size_t np_int_words(uint64_t v, uint32_t w[2]);
uint32_t np_rng_next32(struct np_rng *r);
/* rs.shuffle(a) for a 1-d array of n elements. */
void np_shuffle(struct np_rng *r, size_t *a, size_t n);

#endif
