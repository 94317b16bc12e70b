/* conv_algo.h - the CPU conv2d_forward's two algorithms, which it picks
 * between; declared apart so that the tests can run each on any shape.
 *
 * GEMM: im2col + GEMM per tile of output pixels (conv.c).
 * Winograd F(4x4,3x3) (Lavin & Gray 2016) for 3x3 stride-1 pad-1: per
 * 4x4 output tile 36 multiply-adds per channel pair instead of 144, as
 * 36 GEMMs of [OC, C] x [C, tiles] (winograd.c). */
#ifndef TK_KERNELS_CPU_CONV_ALGO_H
#define TK_KERNELS_CPU_CONV_ALGO_H

#include <stddef.h>

#include "kernels/conv.h"

size_t conv2d_gemm_workspace(struct conv2d_dims d, int threads);
void conv2d_gemm_forward(float *out, float *work, const float *in,
			 const float *weight, const float *bias,
			 const float *residual, int relu, struct conv2d_dims d);

/* Whether conv2d_forward takes the Winograd path for d. */
int winograd_suits(struct conv2d_dims d);
size_t winograd_workspace(struct conv2d_dims d, int threads);
/* conv2d_forward's contract, for K = 3, stride 1, pad 1. */
void winograd_forward(float *out, float *work, const float *in,
		      const float *weight, const float *bias,
		      const float *residual, int relu, struct conv2d_dims d);

#endif
