/* attention.h - multi-head scaled dot-product attention on projected
 * queries, keys and values (the q, k, v and output projections are
 * linear_forward calls around it), as the reference's Attention:
 * per head, softmax(q k^T * head_dim^-0.5) v, heads concatenated. */
#ifndef TK_KERNELS_ATTENTION_H
#define TK_KERNELS_ATTENTION_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* att receives the attention probabilities, for the backward pass; NULL
 * when they are not needed: then the forward works in blocks of query
 * rows with a little scratch per thread, whatever the sequence length. */
void attention_forward(float *out,     /* [B, Nq, D] */
		       float *att,     /* [B, heads, Nq, Nk] or NULL */
		       const float *q, /* [B, Nq, D] */
		       const float *k, /* [B, Nk, D] */
		       const float *v, /* [B, Nk, D] */
		       int B, int Nq, int Nk, int D, int heads);
/* Training: as attention_forward, and with p > 0 the probabilities
 * are dropped out as torch's nn.Dropout(p) on them (kept ones scaled by
 * 1 / (1 - p)) with the keep flags of dropout.h drawn from seed, which
 * mask receives.  att holds the probabilities before dropout. */
void attention_train_forward(float *out,     /* [B, Nq, D] */
			     float *att,     /* [B, heads, Nq, Nk] */
			     uint8_t *mask,   /* [B, heads, Nq, Nk] */
			     const float *q, /* [B, Nq, D] */
			     const float *k, /* [B, Nk, D] */
			     const float *v, /* [B, Nk, D] */
			     float p, uint64_t seed, int B, int Nq,
			     int Nk, int D, int heads);
/* dq, dk, dv accumulate.  mask and p: attention_train_forward's (mask
 * NULL: no dropout). */
void attention_backward(float *dq,                 /* [B, Nq, D] */
			float *dk,                 /* [B, Nk, D] */
			float *dv,                 /* [B, Nk, D] */
			const float *dout,         /* [B, Nq, D] */
			const float *att,          /* [B, heads, Nq, Nk] */
			const uint8_t *mask,   /* [B, heads, Nq, Nk] */
			const float *q, const float *k, const float *v,
			float p, int B, int Nq, int Nk, int D, int heads);

#ifdef __cplusplus
}
#endif
#endif
