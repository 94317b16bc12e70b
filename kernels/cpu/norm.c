/* norm.c - batch norm (folded, or 1-d with running statistics), layer
 * norm and L2 normalisation; statistics accumulate in double. */
#include "kernels/norm.h"

#include <math.h>
#include <stddef.h>

#include "kernels/cpu/simd.h"

void batchnorm2d_fold(float *weight, float *bias, const float *conv_bias,
		      const float *gamma, const float *beta, const float *mean,
		      const float *var, float eps, int OC, int per)
{
	for (int o = 0; o < OC; o++) {
		double s = (double)gamma[o] / sqrt((double)var[o] + (double)eps);
		float *w = weight + (size_t)o * per;
		for (int i = 0; i < per; i++)
			w[i] = (float)(w[i] * s);
		double cb = conv_bias ? conv_bias[o] : 0.0;
		bias[o] = (float)(beta[o] + (cb - mean[o]) * s);
	}
}

void batchnorm1d_forward(float *out, const float *in, const float *gamma,
			 const float *beta, const float *mean, const float *var,
			 float eps, int N, int C)
{
	/* torch's eval batch norm: x * alpha + (beta - mean * alpha), alpha
	 * = gamma / sqrt(var + eps), in float. */
#pragma omp parallel for if ((size_t)N * C > 65536)
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C;
		float *y = out + (size_t)r * C;
		for (int c = 0; c < C; c++) {
			float a = gamma[c] / sqrtf(var[c] + eps);
			float b = beta[c] - mean[c] * a;
			y[c] = x[c] * a + b;
		}
	}
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *in,
		       const float *weight, const float *bias, float eps, int N,
		       int C)
{
#pragma omp parallel for if ((size_t)N * C > 65536)
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C;
		float *y = out + (size_t)r * C;
		double s = 0.0;
		for (int c = 0; c < C; c++)
			s += x[c];
		double m = s / C, v = 0.0;
		for (int c = 0; c < C; c++)
			v += (x[c] - m) * (x[c] - m);
		double rs = 1.0 / sqrt(v / C + eps);
		for (int c = 0; c < C; c++)
			y[c] = (float)((x[c] - m) * rs) * weight[c] + bias[c];
		if (mean)
			mean[r] = (float)m;
		if (rstd)
			rstd[r] = (float)rs;
	}
}

void l2norm_forward(float *out, const float *in, float eps, int N, int C)
{
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C;
		float *y = out + (size_t)r * C;
		double s = 0.0;
		for (int c = 0; c < C; c++)
			s += (double)x[c] * x[c];
		float n = (float)sqrt(s);
		if (n < eps)
			n = eps;
		for (int c = 0; c < C; c++)
			y[c] = x[c] / n;
	}
}
