/* pool.c - max pooling; a NaN wins, as in torch. */
#include "kernels/pool.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "kernels/cpu/simd.h"

/* The larger, or a NaN. */
static inline float max_nan(float m, float v)
{
	return v > m || v != v ? v : m;
}

/* Without argmax, 3x3 stride 2: the three rows' maximum first, along
 * whole rows, then every other triple of it. */
TK_SIMD
static void pool3s2_row(float *restrict y, float *restrict tmp,
			const float *r0, const float *r1, const float *r2,
			int W, int ow)
{
	tmp[0] = -INFINITY; /* column -1: padding */
#pragma omp simd
	for (int x = 0; x < W; x++) {
		float m = r1[x];
		if (r0)
			m = max_nan(m, r0[x]);
		if (r2)
			m = max_nan(m, r2[x]);
		tmp[x + 1] = m;
	}
	tmp[W + 1] = -INFINITY;
	/* Output x covers input 2x-1 .. 2x+1, tmp 2x .. 2x+2. */
#pragma omp simd
	for (int x = 0; x < ow; x++)
		y[x] = max_nan(max_nan(tmp[2 * x], tmp[2 * x + 1]), tmp[2 * x + 2]);
}

static void pool3s2(float *out, const float *in, int P, int H, int W, int oh,
		    int ow)
{
#pragma omp parallel
	{
		float *tmp = malloc((W + 2) * sizeof *tmp);
		if (!tmp)
			abort();
#pragma omp for schedule(static)
		for (int p = 0; p < P; p++) {
			const float *x = in + (size_t)p * H * W;
			for (int oy = 0; oy < oh; oy++) {
				int iy = 2 * oy;
				pool3s2_row(out + ((size_t)p * oh + oy) * ow, tmp,
					    iy > 0 ? x + (size_t)(iy - 1) * W : NULL,
					    x + (size_t)iy * W,
					    iy + 1 < H ? x + (size_t)(iy + 1) * W : NULL, W, ow);
			}
		}
		free(tmp);
	}
}

void maxpool2d_forward(float *out, int *argmax, const float *in, int P, int H,
		       int W, int K, int stride, int pad)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	/* 2 * ow <= W + 1 keeps every window's centre inside the row. */
	if (!argmax && K == 3 && stride == 2 && pad == 1) {
		pool3s2(out, in, P, H, W, oh, ow);
		return;
	}
#pragma omp parallel for schedule(static)
	for (int p = 0; p < P; p++) {
		const float *x = in + (size_t)p * H * W;
		for (int oy = 0; oy < oh; oy++) {
			int y0 = oy * stride - pad, y1 = y0 + K;
			y0 = y0 < 0 ? 0 : y0;
			y1 = y1 > H ? H : y1;
			float *y = out + ((size_t)p * oh + oy) * ow;
			int *am = argmax ? argmax + ((size_t)p * oh + oy) * ow : NULL;
			for (int ox = 0; ox < ow; ox++) {
				int x0 = ox * stride - pad, x1 = x0 + K;
				x0 = x0 < 0 ? 0 : x0;
				x1 = x1 > W ? W : x1;
				int at;
				y[ox] = maxpool2d_window(x, W, y0, y1, x0, x1, &at);
				if (am)
					am[ox] = at;
			}
		}
	}
}
