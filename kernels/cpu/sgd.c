/* sgd.c - the optimizer's element-wise steps. */
#include "kernels/optim.h"

#include <math.h>

#include "kernels/cpu/simd.h"

#define PAR_MIN 32768

TK_SIMD
void sgd_update(float *param, float *buf, const float *grad, float lr,
		float momentum, float dampening, float wd, int nesterov,
		size_t n)
{
	float damp = 1.0f - dampening;
#pragma omp parallel for if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		float g = wd != 0.0f ? fmaf(param[i], wd, grad[i]) : grad[i];
		if (momentum != 0.0f) {
			float b = fmaf(g, damp, buf[i] * momentum);
			buf[i] = b;
			g = nesterov ? fmaf(b, momentum, g) : b;
		}
		param[i] = fmaf(g, -lr, param[i]);
	}
}

void sgd_update_runs(float *param, float *buf, const float *grad,
		     const struct sgd_run *runs, int nruns, float lr,
		     float momentum, float dampening, float wd, int nesterov)
{
	for (int i = 0; i < nruns; i++) {
		size_t o = runs[i].offset;
		sgd_update(param + o, buf + o, grad + o, lr, momentum, dampening,
			   runs[i].decay ? wd : 0.0f, nesterov, runs[i].numel);
	}
}

double sumsq(const float *x, size_t n)
{
	double s = 0.0;
#pragma omp parallel for reduction(+ : s) if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		s += (double)x[i] * x[i];
	return s;
}

void scale_inplace(float *x, float a, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		x[i] *= a;
}
