/* conv_backward.c - 2-D convolution for training: the forward without
 * Winograd and the gradients.  Images are taken in groups whose output
 * pixels make at least GROUP_COLS columns, so that the late stages of a
 * ResNet (7 x 7 pixels) still give GEMMs of a useful shape: the group's
 * im2col matrix col [C K K, group pixels] (for a 1x1 stride-1 convolution,
 * the input gathered), then out = weight . col, dweight += dout . col^T
 * and dcol = weight^T . dout as GEMMs over all threads, and col2im of dcol
 * into din.  col2im runs by channel, so that no two threads add into
 * the same pixel.  A group of one image (early stages,
 * large images) skips the copies that would only move its data: its
 * output gradient is its GEMM operand as it lies, so is its input for a
 * 1x1 stride-1 convolution, and its GEMM writes the output in place; the
 * same GEMMs on the same matrices, so the same bits. */
#include "kernels/conv.h"

#include <string.h>

#include "kernels/cpu/conv_algo.h"
#include "kernels/cpu/simd.h"
#include "kernels/linear.h"

/* Output pixels a group of images should give at least. */
#define GROUP_COLS 2048

static int is_direct(struct conv2d_dims d)
{
	return d.K == 1 && d.stride == 1 && d.pad == 0;
}

static int group_size(struct conv2d_dims d, int ohw)
{
	int g = (GROUP_COLS + ohw - 1) / ohw;
	return g < 1 ? 1 : g > d.B ? d.B : g;
}

size_t conv2d_backward_workspace(struct conv2d_dims d, int threads)
{
	(void)threads;
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t cols = (size_t)group_size(d, oh * ow) * oh * ow;
	/* col, dcol and the group's gathered output gradient */
	return cols * (2 * (size_t)d.C * d.K * d.K + d.OC);
}

/* One tap of one image: its output rows, each a gather of an input row. */
TK_SIMD
static void im2col_tap(float *dst, const float *plane, int ky, int kx,
		       struct conv2d_dims d, int oh, int ow)
{
	int s = d.stride, x0 = kx - d.pad, lo, hi;
	conv_run_inside(x0, s, ow, d.W, &lo, &hi);
	for (int oy = 0; oy < oh; oy++, dst += ow) {
		int iy = oy * s - d.pad + ky;
		if (iy < 0 || iy >= d.H)
			memset(dst, 0, ow * sizeof *dst);
		else
			conv_gather(dst, plane + (size_t)iy * d.W, x0, s, ow, lo, hi);
	}
}

/* The group's im2col matrix [C K K, n * ohw]: image j's pixels are
 * columns j * ohw ...  For one image of a 1x1 stride-1 convolution, that
 * is its input as it lies; else it is gathered into col, each (tap,
 * image) writing a part of its own. */
static const float *im2col(float *col, const float *in, int n,
			   struct conv2d_dims d, int oh, int ow)
{
	if (n == 1 && is_direct(d))
		return in;
	int K = d.K, taps = d.C * K * K;
	size_t ohw = (size_t)oh * ow, chw = (size_t)d.C * d.H * d.W, ld = n * ohw;
#pragma omp parallel for collapse(2) schedule(static)
	for (int t = 0; t < taps; t++) {
		for (int j = 0; j < n; j++) {
			const float *plane = in + j * chw + (size_t)(t / (K * K)) * d.H * d.W;
			float *dst = col + (size_t)t * ld + j * ohw;
			if (is_direct(d))
				memcpy(dst, plane, ohw * sizeof *dst);
			else
				im2col_tap(dst, plane, t / K % K, t % K, d, oh, ow);
		}
	}
	return col;
}

/* The adjoint of im2col: din += dcol over every tap; by channel, so
 * that no two threads add into the same pixel. */
TK_SIMD
static void col2im(float *din, const float *dcol, size_t ld, int n,
		   struct conv2d_dims d, int oh, int ow)
{
	int K = d.K, s = d.stride;
	size_t ohw = (size_t)oh * ow, chw = (size_t)d.C * d.H * d.W;
#pragma omp parallel for schedule(static)
	for (int c = 0; c < d.C; c++) {
		for (int j = 0; j < n; j++) {
			float *plane = din + j * chw + (size_t)c * d.H * d.W;
			for (int ky = 0; ky < K; ky++)
				for (int kx = 0; kx < K; kx++) {
					const float *src = dcol +
							   ((size_t)(c * K + ky) * K + kx) * ld +
							   j * ohw;
					int x0 = kx - d.pad, lo, hi;
					conv_run_inside(x0, s, ow, d.W, &lo, &hi);
					for (int oy = 0; oy < oh; oy++) {
						int iy = oy * s - d.pad + ky;
						if (iy < 0 || iy >= d.H)
							continue;
						float *row = plane + (size_t)iy * d.W;
						const float *g = src + (size_t)oy * ow;
#pragma omp simd
						for (int ox = lo; ox < hi; ox++)
							row[x0 + ox * s] += g[ox];
					}
				}
		}
	}
}

/* og [OC, n * ohw] -> out [n, OC, ohw] with bias, residual and ReLU. */
TK_SIMD
static void scatter_out(float *out, const float *og, int n, int OC, size_t ohw,
			const float *bias, const float *residual, int relu)
{
	size_t ld = (size_t)n * ohw;
#pragma omp parallel for schedule(static)
	for (int o = 0; o < OC; o++)
		for (int j = 0; j < n; j++) {
			const float *src = og + (size_t)o * ld + j * ohw;
			size_t at = ((size_t)j * OC + o) * ohw;
			float *dst = out + at;
			const float *r = residual ? residual + at : NULL;
			float b = bias ? bias[o] : 0.0f;
			for (size_t i = 0; i < ohw; i++) {
				float v = src[i] + b + (r ? r[i] : 0.0f);
				dst[i] = relu && v < 0.0f ? 0.0f : v;
			}
		}
}

/* dout [n, OC, ohw] as dy [OC, n * ohw]: for one image dout as it lies,
 * else gathered into dy. */
static const float *gather_dout(float *dy, const float *dout, int n, int OC,
				size_t ohw)
{
	if (n == 1)
		return dout;
	size_t ld = (size_t)n * ohw;
#pragma omp parallel for schedule(static)
	for (int o = 0; o < OC; o++)
		for (int j = 0; j < n; j++)
			memcpy(dy + (size_t)o * ld + j * ohw,
			       dout + ((size_t)j * OC + o) * ohw, ohw * sizeof *dy);
	return dy;
}

void conv2d_train_forward(float *out, float *work, const float *in,
			  const float *weight, const float *bias,
			  const float *residual, int relu, struct conv2d_dims d)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t ohw = (size_t)oh * ow, chw = (size_t)d.C * d.H * d.W;
	int ckk = d.C * d.K * d.K, G = group_size(d, (int)ohw);
	for (int g0 = 0; g0 < d.B; g0 += G) {
		int n = d.B - g0 < G ? d.B - g0 : G;
		int cols = (int)(n * ohw);
		size_t at = (size_t)g0 * d.OC * ohw;
		/* A group of one image's GEMM writes the output itself; the
		 * bias, residual and ReLU then apply in place. */
		const float *col = im2col(work, in + g0 * chw, n, d, oh, ow);
		float *og = n == 1 ? out + at : work + (size_t)ckk * cols;
		gemm(0, 0, d.OC, cols, ckk, 1.0f, weight, ckk, col, cols, 0.0f, og, cols);
		if (n > 1 || bias || residual || relu)
			scatter_out(out + at, og, n, d.OC, ohw, bias,
				    residual ? residual + at : NULL, relu);
	}
}

void conv2d_backward(float *din, float *dweight, float *dbias, float *work,
		     const float *dout, const float *in, const float *weight,
		     struct conv2d_dims d)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t ohw = (size_t)oh * ow, chw = (size_t)d.C * d.H * d.W;
	int ckk = d.C * d.K * d.K, G = group_size(d, (int)ohw);
	for (int g0 = 0; g0 < d.B; g0 += G) {
		int n = d.B - g0 < G ? d.B - g0 : G;
		int cols = (int)(n * ohw);
		float *dcol = work + (size_t)ckk * cols;
		const float *col = im2col(work, in + g0 * chw, n, d, oh, ow);
		const float *dy = gather_dout(dcol + (size_t)ckk * cols,
					      dout + (size_t)g0 * d.OC * ohw, n,
					      d.OC, ohw);
		/* dweight [OC, CKK] += dy [OC, cols] . col^T */
		gemm(0, 1, d.OC, ckk, cols, 1.0f, dy, cols, col, cols, 1.0f, dweight, ckk);
		if (!din)
			continue;
		/* dcol [CKK, cols] = weight^T . dy */
		gemm(1, 0, ckk, cols, d.OC, 1.0f, weight, ckk, dy, cols, 0.0f, dcol, cols);
		col2im(din + g0 * chw, dcol, cols, n, d, oh, ow);
	}
	if (dbias) {
#pragma omp parallel for schedule(static)
		for (int o = 0; o < d.OC; o++) {
			double s = 0.0;
			for (int b = 0; b < d.B; b++) {
				const float *g = dout + ((size_t)b * d.OC + o) * ohw;
				for (size_t i = 0; i < ohw; i++)
					s += g[i];
			}
			dbias[o] += (float)s;
		}
	}
}
