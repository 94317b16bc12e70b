/* optim.h - the optimizer's element-wise steps. */
#ifndef TK_KERNELS_OPTIM_H
#define TK_KERNELS_OPTIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One step of torch.optim.SGD (1.13, single-tensor) on one tensor, in
 * its order: g = grad + wd * param; buf = momentum * buf + (1 -
 * dampening) * g (a fresh buffer, all zeros, gives g as torch's clone
 * does); nesterov: g = g + momentum * buf, else g = buf; param -= lr * g.
 * The multiply-adds are fused, as torch's vectorised CPU loops. */
void sgd_update(float *param,      /* [n] */
		float *buf,        /* [n] momentum */
		const float *grad, /* [n] */
		float lr, float momentum, float dampening, float wd,
		int nesterov, size_t n);

/* Sum of squares of x, in double: a tensor's share of the gradient
 * norm. */
double sumsq(const float *x, size_t n);
/* x *= a. */
void scale_inplace(float *x, float a, size_t n);

#ifdef __cplusplus
}
#endif
#endif
