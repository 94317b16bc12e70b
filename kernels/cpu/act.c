/* act.c - element-wise ops and the row softmax. */
#include "kernels/act.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

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

void add_relu_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd if (n > PAR_MIN)
	for (size_t i = 0; i < n; i++) {
		float v = a[i] + b[i];
		out[i] = v > 0.0f ? v : 0.0f;
	}
}

/* e^x for x <= 0 (softmax's exponents), vectorisable: Cephes' expf
 * (2^n times a degree-7 polynomial of the remainder), within 2 ulp of
 * libm; below -87 (e^x < 2^-126, nothing next to the row's 1) it
 * returns e^-87. */
static inline float exp_nonpos(float x)
{
	x = x < -87.0f ? -87.0f : x;
	/* n = round(x / ln 2) by the 1.5 * 2^23 trick: no call to floorf,
	 * and n's bits land in the mantissa of t. */
	union {
		float f;
		int32_t i;
	} t, scale;
	t.f = x * 1.44269504088896341f + 12582912.0f;
	float n = t.f - 12582912.0f;
	float r = x - n * 0.693359375f + n * 2.12194440e-4f;
	float p = 1.9875691500e-4f;
	p = p * r + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	scale.i = (int32_t)((uint32_t)(t.i - 0x4b400000 + 127) << 23);
	return p * scale.f;
}

TK_SIMD
static void softmax_row(float *restrict y, const float *restrict x, int C)
{
	float m = -INFINITY;
#pragma omp simd reduction(max : m)
	for (int i = 0; i < C; i++)
		m = x[i] > m ? x[i] : m;
#pragma omp simd
	for (int i = 0; i < C; i++)
		y[i] = exp_nonpos(x[i] - m);
	float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
	for (int i = 0; i < C; i++)
		sum += y[i];
	float inv = 1.0f / sum;
#pragma omp simd
	for (int i = 0; i < C; i++)
		y[i] *= inv;
}

void softmax_forward(float *out, const float *in, int N, int C)
{
#pragma omp parallel for if ((size_t)N * C > PAR_MIN / 8)
	for (int r = 0; r < N; r++)
		softmax_row(out + (size_t)r * C, in + (size_t)r * C, C);
}
