/* dropout.h - dropout and drop-path (stochastic depth) for training.
 * Which elements are kept is a pure function of (seed, index): a
 * counter-based hash, not a generator with state, so that every device
 * and every thread draws the same flags, and a run resumed from a
 * checkpoint draws what the uninterrupted run would have. */
#ifndef TK_KERNELS_DROPOUT_H
#define TK_KERNELS_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* splitmix64's finaliser. */
static inline TK_HD uint64_t tk_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A uniform number in [0, 1) with 24 bits, for element i under seed. */
static inline TK_HD float tk_uniform(uint64_t seed, uint64_t i)
{
	uint64_t h = tk_mix64(seed ^ tk_mix64(i + 0x9e3779b97f4a7c15ull));
	return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Element i is kept, when dropping with probability p, if its uniform
 * number is at least p. */
static inline TK_HD int dropout_keep(uint64_t seed, uint64_t i, float p)
{
	return tk_uniform(seed, i) >= p;
}

/* torch's nn.Dropout(p) in training: out = in * (1 / (1 - p)) where
 * kept (the factor rounded to float first, as torch), 0 elsewhere;
 * mask receives the keep flags.  out may be in. */
void dropout_forward(float *out,      /* [n] */
		     uint8_t *mask,   /* [n] */
		     const float *in, /* [n] */
		     float p, uint64_t seed, size_t n);
/* din accumulates. */
void dropout_backward(float *din, const float *dout, const uint8_t *mask,
		      float p, size_t n);

/* The reference's drop_path: whole samples dropped with probability p,
 * the kept ones divided by 1 - p; mask receives a flag per sample (flag
 * b is dropout_keep(seed, b, p)).  out may be in. */
void droppath_forward(float *out,      /* [B, per] */
		      uint8_t *mask,   /* [B] */
		      const float *in, /* [B, per] */
		      float p, uint64_t seed, int B, size_t per);
/* din accumulates. */
void droppath_backward(float *din, const float *dout, const uint8_t *mask,
		       float p, int B, size_t per);

#ifdef __cplusplus
}
#endif
#endif
