/* pool.c - max pooling; a NaN wins, as in torch. */
#include "kernels/pool.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

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

/* One step of maxpool2d_window's scan: v takes over if larger, or NaN. */
static inline void scan_step(float *m, int *at, float v, int i)
{
	int take = (v > *m) | (v != v);
	*m = take ? v : *m;
	*at = take ? i : *at;
}

/* With argmax, 3x3 stride 2, one output row: maxpool2d_window's scan
 * (rows in order, each row's columns in order, the first maximum kept, a
 * NaN taking over) as selects.  r0, r1, r2 are the window's rows, each
 * padded with -infinity at both ends (r[x + 1] is column x), a row
 * outside the plane all -infinity; y0 is the first row inside it.
 * Padding never takes over, so the scan starts where maxpool2d_window's
 * does, at the clipped window's first pixel, without a test. */
TK_SIMD
static void pool3s2_argmax_row(float *restrict y, int *restrict am,
			       const float *r0, const float *r1,
			       const float *r2, int iy, int y0, int W, int ow)
{
	int i0 = (iy - 1) * W - 1, i1 = iy * W - 1, i2 = (iy + 1) * W - 1;
#pragma omp simd
	for (int ox = 0; ox < ow; ox++) {
		int x = 2 * ox;
		float m = -INFINITY;
		int at = y0 * W + (ox > 0 ? x - 1 : 0);
		scan_step(&m, &at, r0[x], i0 + x);
		scan_step(&m, &at, r0[x + 1], i0 + x + 1);
		scan_step(&m, &at, r0[x + 2], i0 + x + 2);
		scan_step(&m, &at, r1[x], i1 + x);
		scan_step(&m, &at, r1[x + 1], i1 + x + 1);
		scan_step(&m, &at, r1[x + 2], i1 + x + 2);
		scan_step(&m, &at, r2[x], i2 + x);
		scan_step(&m, &at, r2[x + 1], i2 + x + 1);
		scan_step(&m, &at, r2[x + 2], i2 + x + 2);
		y[ox] = m;
		am[ox] = at;
	}
}

static void pool3s2_argmax(float *out, int *argmax, const float *in, int P,
			   int H, int W, int oh, int ow)
{
	size_t ld = (size_t)W + 2;
#pragma omp parallel
	{
		/* three padded rows and one all padding */
		float *pad = malloc(4 * ld * sizeof *pad);
		if (!pad)
			abort();
		for (size_t i = 0; i < 4 * ld; i++)
			pad[i] = -INFINITY;
#pragma omp for schedule(static)
		for (int p = 0; p < P; p++) {
			const float *x = in + (size_t)p * H * W;
			for (int oy = 0; oy < oh; oy++) {
				int iy = 2 * oy;
				const float *r[3];
				for (int k = 0; k < 3; k++) {
					int sy = iy - 1 + k;
					if (sy < 0 || sy >= H) {
						r[k] = pad + 3 * ld;
						continue;
					}
					memcpy(pad + k * ld + 1, x + (size_t)sy * W,
					       W * sizeof *pad);
					r[k] = pad + k * ld;
				}
				size_t o = ((size_t)p * oh + oy) * ow;
				pool3s2_argmax_row(out + o, argmax + o, r[0], r[1], r[2],
						   iy, iy > 0 ? iy - 1 : 0, W, ow);
			}
		}
		free(pad);
	}
}

void maxpool2d_forward(float *out, int *argmax, const float *in, int P, int H,
		       int W, int K, int stride, int pad)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	/* 2 * ow <= W + 1 keeps every window's centre inside the row. */
	if (K == 3 && stride == 2 && pad == 1) {
		if (argmax)
			pool3s2_argmax(out, argmax, in, P, H, W, oh, ow);
		else
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
