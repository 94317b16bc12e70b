/* conv_algo.h - the CPU conv2d_forward's two algorithms, which it picks
 * between; declared apart so that the tests can run each on any shape.
 *
 * GEMM: im2col + GEMM per tile of output pixels (conv.c; training's
 * conv_backward.c shares its row gather).
 * Winograd F(4x4,3x3) (Lavin & Gray 2016) for 3x3 stride-1 pad-1: per
 * 4x4 output tile 36 multiply-adds per channel pair instead of 144, as
 * 36 GEMMs of [OC, C] x [C, tiles] (winograd.c). */
#ifndef TK_KERNELS_CPU_CONV_ALGO_H
#define TK_KERNELS_CPU_CONV_ALGO_H

#include <stddef.h>
#include <string.h>

#include "kernels/conv.h"

size_t conv2d_gemm_workspace(struct conv2d_dims d, int threads);
void conv2d_gemm_forward(float *out, float *work, const float *in,
			 const float *weight, const float *bias,
			 const float *residual, int relu, struct conv2d_dims d);

/* A run of n output columns whose first reads input column x0, stride s,
 * from a row of W: the part [lo, hi) that reads inside 0 .. W-1. */
void conv_run_inside(int x0, int s, int n, int W, int *lo, int *hi);
/* dst[i] = row[x0 + i * s] for i < n, zero outside [lo, hi), the part
 * conv_run_inside gives (im2col's row, for conv.c and conv_backward.c;
 * inline, so that it takes its callers' vector instructions). */
static inline void conv_gather(float *restrict dst, const float *restrict row,
			       int x0, int s, int n, int lo, int hi)
{
	for (int i = 0; i < lo; i++)
		dst[i] = 0.0f;
	if (s == 1) {
		memcpy(dst + lo, row + x0 + lo, (hi - lo) * sizeof *dst);
	} else {
#pragma omp simd
		for (int i = lo; i < hi; i++)
			dst[i] = row[x0 + i * s];
	}
	for (int i = hi; i < n; i++)
		dst[i] = 0.0f;
}

/* Whether conv2d_forward takes the Winograd path for d. */
int winograd_suits(struct conv2d_dims d);
size_t winograd_workspace(struct conv2d_dims d, int threads);
/* conv2d_forward's contract, for K = 3, stride 1, pad 1. */
void winograd_forward(float *out, float *work, const float *in,
		      const float *weight, const float *bias,
		      const float *residual, int relu, struct conv2d_dims d);

#endif
