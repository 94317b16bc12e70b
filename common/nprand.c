/* nprand.c - numpy's SeedSequence, MT19937 and legacy shuffle (see
 * nprand.h).  Constants and steps are those of numpy's bit_generator.pyx,
 * _mt19937.pyx and distributions.c (random_interval); test-nprand checks
 * the output against numpy itself. */
#include "nprand.h"

#define INIT_A 0x43b0d7e5u
#define MULT_A 0x931e8875u
#define INIT_B 0x8b51f9ddu
#define MULT_B 0x58f38dedu
#define MIX_MULT_L 0xca01f9ddu
#define MIX_MULT_R 0x4973f715u
#define POOL 4

static uint32_t hashmix(uint32_t v, uint32_t *h)
{
	v ^= *h;
	*h *= MULT_A;
	v *= *h;
	return v ^ v >> 16;
}

static uint32_t mix(uint32_t x, uint32_t y)
{
	uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
	return r ^ r >> 16;
}

size_t np_int_words(uint64_t v, uint32_t w[2])
{
	w[0] = (uint32_t)v;
	w[1] = (uint32_t)(v >> 32);
	return w[1] ? 2 : 1;
}

void np_rng_seed(struct np_rng *r, const uint32_t *e, size_t n)
{
	/* SeedSequence.mix_entropy */
	uint32_t pool[POOL], h = INIT_A;
	for (int i = 0; i < POOL; i++)
		pool[i] = hashmix((size_t)i < n ? e[i] : 0, &h);
	for (int s = 0; s < POOL; s++)
		for (int d = 0; d < POOL; d++)
			if (s != d)
				pool[d] = mix(pool[d], hashmix(pool[s], &h));
	for (size_t s = POOL; s < n; s++)
		for (int d = 0; d < POOL; d++)
			pool[d] = mix(pool[d], hashmix(e[s], &h));
	/* generate_state(624), and MT19937's use of it: the first word is
	 * replaced, and the state starts as if 623 words were drawn. */
	uint32_t hb = INIT_B;
	for (int i = 0; i < 624; i++) {
		uint32_t v = pool[i % POOL] ^ hb;
		hb *= MULT_B;
		v *= hb;
		r->key[i] = v ^ v >> 16;
	}
	r->key[0] = 0x80000000u;
	r->pos = 623;
}

static void regenerate(struct np_rng *r)
{
	static const uint32_t mag[2] = {0, 0x9908b0dfu};
	uint32_t *k = r->key, y;
	int i;
	for (i = 0; i < 624 - 397; i++) {
		y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
		k[i] = k[i + 397] ^ (y >> 1) ^ mag[y & 1];
	}
	for (; i < 623; i++) {
		y = (k[i] & 0x80000000u) | (k[i + 1] & 0x7fffffffu);
		k[i] = k[i + 397 - 624] ^ (y >> 1) ^ mag[y & 1];
	}
	y = (k[623] & 0x80000000u) | (k[0] & 0x7fffffffu);
	k[623] = k[396] ^ (y >> 1) ^ mag[y & 1];
	r->pos = 0;
}

uint32_t np_rng_next32(struct np_rng *r)
{
	if (r->pos == 624)
		regenerate(r);
	uint32_t y = r->key[r->pos++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	return y ^ y >> 18;
}

/* random_interval(max): uniform in [0, max] by masked rejection. */
static uint64_t interval(struct np_rng *r, uint64_t max)
{
	if (max == 0)
		return 0;
	uint64_t mask = max, v;
	for (int s = 1; s < 64; s *= 2)
		mask |= mask >> s;
	if (max <= 0xffffffffu) {
		while ((v = np_rng_next32(r) & mask) > max)
			;
	} else { /* next_uint64 of MT19937: two draws, high word first */
		do {
			uint64_t hi = np_rng_next32(r);
			v = (hi << 32 | np_rng_next32(r)) & mask;
		} while (v > max);
	}
	return v;
}

void np_shuffle(struct np_rng *r, size_t *a, size_t n)
{
	for (size_t i = n > 1 ? n - 1 : 0; i >= 1; i--) {
		size_t j = interval(r, i), t = a[i];
		a[i] = a[j];
		a[j] = t;
	}
}
