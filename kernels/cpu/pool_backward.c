/* pool_backward.c - max pooling's gradient: each output's gradient to
 * the input that won. */
#include "kernels/pool.h"

#include <stddef.h>

void maxpool2d_backward(float *din, const float *dout, const int *argmax,
			int P, int H, int W, int K, int stride, int pad)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	size_t on = (size_t)oh * ow;
	/* Planes are independent; within one, windows overlap: serial. */
#pragma omp parallel for schedule(static)
	for (int p = 0; p < P; p++) {
		float *x = din + (size_t)p * H * W;
		const float *dy = dout + (size_t)p * on;
		const int *am = argmax + (size_t)p * on;
		for (size_t i = 0; i < on; i++)
			x[am[i]] += dy[i];
	}
}
