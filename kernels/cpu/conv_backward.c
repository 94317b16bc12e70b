/* conv_backward.c - 2-D convolution's gradients, one image at a time:
 * its im2col matrix (split over input channels between threads), then
 * dweight += dout . col^T and dcol = weight^T . dout as GEMMs over all
 * threads, then col2im of dcol into din (again by input channel, so that
 * no two threads add into the same pixel).  A 1x1 stride-1 convolution
 * needs no im2col: the input is its own column matrix. */
#include "kernels/conv.h"

#include <omp.h>
#include <string.h>

#include "kernels/linear.h"

static int is_direct(struct conv2d_dims d)
{
	return d.K == 1 && d.stride == 1 && d.pad == 0;
}

size_t conv2d_backward_workspace(struct conv2d_dims d, int threads)
{
	(void)threads;
	if (is_direct(d))
		return 0;
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	return 2 * (size_t)d.C * d.K * d.K * oh * ow;
}

/* col[(c*K + ky)*K + kx][oy*ow + ox] = in[c][oy*s - pad + ky][ox*s - pad + kx] */
static void im2col(float *col, const float *in, struct conv2d_dims d, int oh,
		   int ow)
{
	int K = d.K, s = d.stride;
	size_t ohw = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
	for (int c = 0; c < d.C; c++) {
		const float *plane = in + (size_t)c * d.H * d.W;
		for (int ky = 0; ky < K; ky++)
			for (int kx = 0; kx < K; kx++) {
				float *dst = col + ((size_t)(c * K + ky) * K + kx) * ohw;
				for (int oy = 0; oy < oh; oy++) {
					int iy = oy * s - d.pad + ky;
					float *o = dst + (size_t)oy * ow;
					if (iy < 0 || iy >= d.H) {
						memset(o, 0, ow * sizeof *o);
						continue;
					}
					const float *row = plane + (size_t)iy * d.W;
					for (int ox = 0; ox < ow; ox++) {
						int ix = ox * s - d.pad + kx;
						o[ox] = ix >= 0 && ix < d.W ? row[ix] : 0.0f;
					}
				}
			}
	}
}

/* The adjoint of im2col: din[c][iy][ix] += dcol[...] over every tap. */
static void col2im(float *din, const float *dcol, struct conv2d_dims d, int oh,
		   int ow)
{
	int K = d.K, s = d.stride;
	size_t ohw = (size_t)oh * ow;
#pragma omp parallel for schedule(static)
	for (int c = 0; c < d.C; c++) {
		float *plane = din + (size_t)c * d.H * d.W;
		for (int ky = 0; ky < K; ky++)
			for (int kx = 0; kx < K; kx++) {
				const float *src = dcol + ((size_t)(c * K + ky) * K + kx) * ohw;
				for (int oy = 0; oy < oh; oy++) {
					int iy = oy * s - d.pad + ky;
					if (iy < 0 || iy >= d.H)
						continue;
					float *row = plane + (size_t)iy * d.W;
					const float *g = src + (size_t)oy * ow;
					for (int ox = 0; ox < ow; ox++) {
						int ix = ox * s - d.pad + kx;
						if (ix >= 0 && ix < d.W)
							row[ix] += g[ox];
					}
				}
			}
	}
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *work,
		     const float *dout, const float *in, const float *weight,
		     struct conv2d_dims d)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	int ohw = oh * ow, hw = d.H * d.W, ckk = d.C * d.K * d.K;
	int direct = is_direct(d);
	float *col = work, *dcol = work + (size_t)ckk * ohw;
	for (int b = 0; b < d.B; b++) {
		const float *inb = in + (size_t)b * d.C * hw;
		const float *dy = dout + (size_t)b * d.OC * ohw;
		if (!direct)
			im2col(col, inb, d, oh, ow);
		/* dweight [OC, CKK] += dy [OC, OHW] . col^T */
		gemm(0, 1, d.OC, ckk, ohw, 1.0f, dy, ohw, direct ? inb : col,
		     ohw, 1.0f, dweight, ckk);
		if (din) {
			float *dx = din + (size_t)b * d.C * hw;
			/* dcol [CKK, OHW] = weight^T . dy */
			if (direct) {
				gemm(1, 0, ckk, ohw, d.OC, 1.0f, weight, ckk, dy, ohw,
				     1.0f, dx, hw);
			} else {
				gemm(1, 0, ckk, ohw, d.OC, 1.0f, weight, ckk, dy, ohw,
				     0.0f, dcol, ohw);
				col2im(dx, dcol, d, oh, ow);
			}
		}
	}
	if (dbias) {
#pragma omp parallel for schedule(static)
		for (int o = 0; o < d.OC; o++) {
			double s = 0.0;
			for (int b = 0; b < d.B; b++) {
				const float *dy = dout + ((size_t)b * d.OC + o) * ohw;
				for (int i = 0; i < ohw; i++)
					s += dy[i];
			}
			dbias[o] += (float)s;
		}
	}
}
