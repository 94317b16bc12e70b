/* norm_backward.c - gradients of layer norm and L2 normalisation; each
 * accumulates. */
#include "kernels/norm.h"

#include <math.h>
#include <stddef.h>

#define PAR_MIN 65536

void layernorm_backward(float *din, float *dweight, float *dbias,
			const float *dout, const float *in,
			const float *weight, const float *mean,
			const float *rstd, int N, int C)
{
	/* Rows in parallel for din; the parameter gradients are sums over
	 * rows, taken by columns afterwards so that no two threads write
	 * the same element. */
#pragma omp parallel for if ((size_t)N * C > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C, *dy = dout + (size_t)r * C;
		float *dx = din + (size_t)r * C;
		float m = mean[r], rs = rstd[r];
		double s1 = 0.0, s2 = 0.0;
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * rs;
			float g = dy[c] * weight[c];
			s1 += g;
			s2 += (double)g * xh;
		}
		float a = (float)(s1 / C), b = (float)(s2 / C);
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * rs;
			dx[c] += (dy[c] * weight[c] - a - xh * b) * rs;
		}
	}
#pragma omp parallel for if ((size_t)N * C > PAR_MIN)
	for (int c = 0; c < C; c++) {
		double sw = 0.0, sb = 0.0;
		for (int r = 0; r < N; r++) {
			float dy = dout[(size_t)r * C + c];
			sw += (double)dy * ((in[(size_t)r * C + c] - mean[r]) * rstd[r]);
			sb += dy;
		}
		dweight[c] += (float)sw;
		dbias[c] += (float)sb;
	}
}

/* y = x / max(|x|, eps): dx = dy / n - x * dot(dy, x) / (n^2 |x|), where
 * n = max(|x|, eps); the second term vanishes when the clamp is active. */
void l2norm_backward(float *din, const float *dout, const float *in,
		     float eps, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN)
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C, *dy = dout + (size_t)r * C;
		float *dx = din + (size_t)r * C;
		double ss = 0.0, dot = 0.0;
		for (int c = 0; c < C; c++) {
			ss += (double)x[c] * x[c];
			dot += (double)dy[c] * x[c];
		}
		double norm = sqrt(ss);
		if (norm < eps) {
			for (int c = 0; c < C; c++)
				dx[c] += dy[c] / eps;
			continue;
		}
		float inv = (float)(1.0 / norm);
		float k = (float)(dot / (norm * norm * norm));
		for (int c = 0; c < C; c++)
			dx[c] += dy[c] * inv - x[c] * k;
	}
}
