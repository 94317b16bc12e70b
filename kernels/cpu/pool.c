/* pool.c - max pooling; a NaN wins, as in torch. */
#include "kernels/pool.h"

#include <math.h>
#include <stddef.h>

void maxpool2d_forward(float *out, int *argmax, const float *in, int P, int H,
		       int W, int K, int stride, int pad)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
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
				float m = -INFINITY;
				int at = y0 * W + x0;
				for (int iy = y0; iy < y1; iy++)
					for (int ix = x0; ix < x1; ix++) {
						float v = x[iy * W + ix];
						if (v > m || isnan(v)) {
							m = v;
							at = iy * W + ix;
						}
					}
				y[ox] = m;
				if (am)
					am[ox] = at;
			}
		}
	}
}
