/* pool.h - max pooling over NCHW planes (the ResNet stem's 3x3 stride 2
 * pad 1).  Padding never wins: it counts as -infinity, as in torch. */
#ifndef TK_KERNELS_POOL_H
#define TK_KERNELS_POOL_H

#include <math.h>

#include "kernels/hd.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline int maxpool2d_out_size(int in, int k, int stride, int pad)
{
	return (in + 2 * pad - k) / stride + 1;
}

/* The maximum of rows [y0, y1) and columns [x0, x1) of an H x W plane
 * (the window clipped to the plane), the first one in row order, a NaN
 * winning as in torch; *at receives its index in the plane. */
static inline TK_HD float maxpool2d_window(const float *x, int W, int y0,
					   int y1, int x0, int x1, int *at)
{
	float m = -INFINITY;
	*at = y0 * W + x0;
	for (int iy = y0; iy < y1; iy++)
		for (int ix = x0; ix < x1; ix++) {
			float v = x[iy * W + ix];
			if (v > m || isnan(v)) {
				m = v;
				*at = iy * W + ix;
			}
		}
	return m;
}

/* argmax (may be NULL) receives the index within its plane of each
 * output's maximum, for the backward pass. */
void maxpool2d_forward(float *out,      /* [P, OH, OW] */
		       int *argmax,     /* [P, OH, OW] or NULL */
		       const float *in, /* [P, H, W], P = batch * channels */
		       int P, int H, int W, int K, int stride, int pad);
void maxpool2d_backward(float *din,        /* [P, H, W] */
			const float *dout, /* [P, OH, OW] */
			const int *argmax, /* [P, OH, OW] */
			int P, int H, int W, int K, int stride, int pad);

#ifdef __cplusplus
}
#endif
#endif
