/* act.c - element-wise ops and the row softmax. */
#include "kernels/act.h"

#include <math.h>

#include "kernels/cpu/simd.h"

/* Element-wise loops are split across threads above this size. */
#define PAR_MIN 32768

TK_SIMD
void relu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

void gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for if (n > PAR_MIN / 8)
	for (size_t i = 0; i < n; i++) {
		float x = in[i];
		out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
	}
}

TK_SIMD
void add_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void softmax_forward(float *out, const float *in, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN / 8)
	for (int r = 0; r < N; r++) {
		const float *x = in + (size_t)r * C;
		float *y = out + (size_t)r * C;
		float m = -INFINITY;
		for (int i = 0; i < C; i++)
			m = x[i] > m ? x[i] : m;
		float sum = 0.0f;
		for (int i = 0; i < C; i++) {
			y[i] = expf(x[i] - m);
			sum += y[i];
		}
		float inv = 1.0f / sum;
		for (int i = 0; i < C; i++)
			y[i] *= inv;
	}
}
