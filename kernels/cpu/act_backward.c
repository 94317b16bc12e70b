/* act_backward.c - gradients of the element-wise ops and the row
 * softmax; each accumulates into din. */
#include "kernels/act.h"

#include <math.h>

#include "kernels/cpu/simd.h"

#define PAR_MIN 32768

TK_SIMD
void relu_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

/* As torch's GeluBackward (erf form): dy * (cdf(x) + x * pdf(x)). */
void gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
	const float alpha = (float)(M_2_SQRTPI * M_SQRT1_2 * 0.5);
#pragma omp parallel for if (n > PAR_MIN / 8)
	for (size_t i = 0; i < n; i++) {
		float x = in[i];
		float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
		float pdf = alpha * expf(-0.5f * x * x);
		din[i] += dout[i] * (cdf + x * pdf);
	}
}

void softmax_backward(float *din, const float *dout, const float *out, int N,
		      int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN / 8)
	for (int r = 0; r < N; r++) {
		const float *y = out + (size_t)r * C, *dy = dout + (size_t)r * C;
		float *dx = din + (size_t)r * C;
		double dot = 0.0;
		for (int i = 0; i < C; i++)
			dot += (double)dy[i] * y[i];
		float d = (float)dot;
		for (int i = 0; i < C; i++)
			dx[i] += y[i] * (dy[i] - d);
	}
}
