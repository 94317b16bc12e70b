/* loss.h - the training loss: ArcFace's additive angular margin on the
 * cosines between descriptors and class centres (the cosines are a
 * linear_forward of the L2-normalised descriptors and weights), and
 * softmax cross-entropy. */
#ifndef TK_KERNELS_LOSS_H
#define TK_KERNELS_LOSS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* As the reference's ArcFace: theta = acos(clamp(cos, -1 + eps, 1 - eps));
 * logits = s * cos(theta + m) at the label where theta <= pi - m, and
 * s * cos(theta) everywhere else (so the other logits are cos(acos(.))
 * of the clamped cosine, as torch computes them). */
void arcface_forward(float *logits,        /* [N, K] */
		     const float *cos,     /* [N, K] */
		     const int32_t *label, /* [N], each in [0, K) */
		     float s, float m, float eps, int N, int K);
/* dcos accumulates; zero where the clamp was active, as torch's. */
void arcface_backward(float *dcos, const float *dlogits, const float *cos,
		      const int32_t *label, float s, float m, float eps, int N,
		      int K);

/* Softmax cross-entropy per row: loss[n] = logsumexp(logits[n]) -
 * logits[n][label[n]]; prob receives the softmax for the backward
 * pass.  F.cross_entropy is the mean of loss. */
void cross_entropy_forward(float *loss,          /* [N] */
			   float *prob,          /* [N, K] */
			   const float *logits,  /* [N, K] */
			   const int32_t *label, /* [N] */
			   int N, int K);
/* dlogits += scale * (prob - onehot(label)); scale = 1 / N for the mean
 * (and any upstream factor). */
void cross_entropy_backward(float *dlogits, const float *prob,
			    const int32_t *label, float scale, int N, int K);

#ifdef __cplusplus
}
#endif
#endif
