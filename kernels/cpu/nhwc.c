/* nhwc.c - the channels-last ops of nhwc.h on the CPU: the reference for
 * the device network's tests, through the NCHW kernels and transposes. */
#include "kernels/nhwc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/threads.h"
#include "common/tk.h"

void nchw_to_nhwc_forward(float *out, const float *in, int C, int ld, int H,
			  int W)
{
	size_t hw = (size_t)H * W;
	for (size_t p = 0; p < hw; p++)
		for (int c = 0; c < ld; c++)
			out[p * ld + c] = c < C ? in[(size_t)c * hw + p] : 0.0f;
}

/* out [C, hw] from the first C channels of in [hw, ld]. */
static void to_nchw(float *out, const float *in, int C, int ld, size_t hw)
{
	for (size_t p = 0; p < hw; p++)
		for (int c = 0; c < C; c++)
			out[(size_t)c * hw + p] = in[p * ld + c];
}

void conv2d_nhwc_forward(float *out, const float *in, const float *weight,
			 const float *bias, const float *residual, int relu,
			 int ld, struct conv2d_dims d)
{
	if (d.B != 1)
		tk_die(TK_EXIT_DATA, "conv2d_nhwc_forward: one image at a time");
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t hw = (size_t)d.H * d.W, ohw = (size_t)oh * ow;
	float *x = xmalloc(xmul(xmul(hw, d.C), sizeof *x));
	float *y = xmalloc(xmul(xmul(ohw, d.OC), sizeof *y));
	float *r = NULL;
	float *work = xmalloc(xmul(conv2d_workspace(d, tk_threads()) + 1,
				   sizeof *work));
	to_nchw(x, in, d.C, ld, hw);
	if (residual) {
		r = xmalloc(xmul(xmul(ohw, d.OC), sizeof *r));
		to_nchw(r, residual, d.OC, d.OC, ohw);
	}
	conv2d_forward(y, work, x, weight, bias, r, relu, d);
	for (size_t p = 0; p < ohw; p++)
		for (int c = 0; c < d.OC; c++)
			out[p * d.OC + c] = y[(size_t)c * ohw + p];
	free(x);
	free(y);
	free(r);
	free(work);
}

void maxpool2d_nhwc_forward(float *out, const float *in, int C, int H, int W,
			    int K, int stride, int pad)
{
	int oh = (H + 2 * pad - K) / stride + 1, ow = (W + 2 * pad - K) / stride + 1;
	for (int oy = 0; oy < oh; oy++)
		for (int ox = 0; ox < ow; ox++)
			for (int c = 0; c < C; c++) {
				float m = -INFINITY;
				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++) {
						int iy = oy * stride - pad + ky;
						int ix = ox * stride - pad + kx;
						if (iy < 0 || iy >= H || ix < 0 || ix >= W)
							continue;
						float v = in[((size_t)iy * W + ix) * C + c];
						if (v > m || v != v)
							m = v;
					}
				out[((size_t)oy * ow + ox) * C + c] = m;
			}
}
