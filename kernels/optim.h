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

/* A run of a model's parameters, for sgd_update_runs: numel values
 * from offset, with weight decay (decay) or without. */
struct sgd_run {
	size_t offset, numel;
	int decay;
};
/* sgd_update on each run of param, buf and grad, with weight decay wd
 * where the run decays (else 0): the same values as one call a run (on
 * a GPU in one launch, where a launch a tensor took 2.4 ms of R101's
 * step on an H200, most of it the launches). */
void sgd_update_runs(float *param, float *buf, const float *grad,
		     const struct sgd_run *runs, int nruns, float lr,
		     float momentum, float dampening, float wd, int nesterov);

/* Sum of squares of x, in double: a tensor's share of the gradient
 * norm. */
double sumsq(const float *x, size_t n);
/* x *= a. */
void scale_inplace(float *x, float a, size_t n);

#ifdef __cplusplus
}
#endif
#endif
