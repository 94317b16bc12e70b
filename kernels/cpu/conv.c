/* conv.c - 2-D convolution: a GEMM per tile of output pixels, with the
 * bias, residual and ReLU applied to the tile while it is in cache.
 * 1x1 stride-1 convolutions read the input in place; the others gather
 * their tile's im2col columns into per-thread scratch; 3x3 stride-1
 * convolutions with enough channels go to Winograd (winograd.c). */
#include "kernels/conv.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/simd.h"
#include "kernels/cpu/conv_algo.h"

static int is_direct(struct conv2d_dims d)
{
	return d.K == 1 && d.stride == 1 && d.pad == 0;
}

/* Output pixels per tile.  A 1x1 stride-1 convolution reads its input
 * in place: one band of columns per thread, as wide as possible, since
 * OpenBLAS repacks the weights on every call.  The others build an
 * im2col tile per thread: up to 4 MB of it, at least 256 columns. */
static int tile_cols(struct conv2d_dims d, int ohw, int threads)
{
	int per_thread = (ohw + threads - 1) / threads;
	int nt;
	if (is_direct(d)) {
		nt = per_thread;
	} else {
		nt = (1 << 20) / (d.C * d.K * d.K);
		nt = nt < 256 ? 256 : nt;
		/* Equal tiles for every thread. */
		int k = (per_thread + nt - 1) / nt;
		nt = (per_thread + k - 1) / k;
	}
	return (nt + 15) & ~15;
}

size_t conv2d_workspace(struct conv2d_dims d, int threads)
{
	return winograd_suits(d) ? winograd_workspace(d, threads)
				 : conv2d_gemm_workspace(d, threads);
}

void conv2d_forward(float *out, float *work, const float *in,
		    const float *weight, const float *bias,
		    const float *residual, int relu, struct conv2d_dims d)
{
	if (winograd_suits(d))
		winograd_forward(out, work, in, weight, bias, residual, relu, d);
	else
		conv2d_gemm_forward(out, work, in, weight, bias, residual, relu, d);
}

size_t conv2d_gemm_workspace(struct conv2d_dims d, int threads)
{
	if (is_direct(d))
		return 0;
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	int nt = tile_cols(d, oh * ow, threads);
	return (size_t)threads * d.C * d.K * d.K * nt;
}

void conv_run_inside(int x0, int s, int n, int W, int *lo, int *hi)
{
	*lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s;
	*hi = x0 + (n - 1) * s < W ? n : x0 >= W ? 0 : (W - 1 - x0) / s + 1;
	if (*lo > n)
		*lo = n;
	if (*hi < *lo)
		*hi = *lo;
}

/* One run of im2col_tile's row. */
TK_SIMD
static void gather_run(float *restrict dst, const float *restrict row, int x0,
		       int s, int n, int W)
{
	int lo, hi;
	conv_run_inside(x0, s, n, W, &lo, &hi);
	conv_gather(dst, row, x0, s, n, lo, hi);
}

/* col[(c*K + ky)*K + kx][p - p0] for output pixels p0 .. p0+n-1. */
static void im2col_tile(float *col, const float *in, int p0, int n, int ow,
			struct conv2d_dims d)
{
	int K = d.K, s = d.stride;
	for (int c = 0; c < d.C; c++) {
		const float *plane = in + (size_t)c * d.H * d.W;
		for (int ky = 0; ky < K; ky++) {
			for (int kx = 0; kx < K; kx++) {
				float *dst = col + ((size_t)(c * K + ky) * K + kx) * n;
				int p = p0, end = p0 + n;
				while (p < end) {
					int oy = p / ow, ox = p % ow;
					int run = ow - ox < end - p ? ow - ox : end - p;
					int iy = oy * s - d.pad + ky;
					if (iy < 0 || iy >= d.H)
						memset(dst, 0, run * sizeof *dst);
					else
						gather_run(dst, plane + (size_t)iy * d.W,
							   ox * s - d.pad + kx, s, run, d.W);
					dst += run;
					p += run;
				}
			}
		}
	}
}

TK_SIMD
static void epilogue_row(float *restrict o, const float *restrict r, float b,
			 int n, int relu)
{
	if (r) {
		if (relu) {
#pragma omp simd
			for (int i = 0; i < n; i++) {
				float v = o[i] + b + r[i];
				o[i] = v > 0.0f ? v : 0.0f;
			}
		} else {
#pragma omp simd
			for (int i = 0; i < n; i++)
				o[i] = o[i] + b + r[i];
		}
	} else if (relu) {
#pragma omp simd
		for (int i = 0; i < n; i++) {
			float v = o[i] + b;
			o[i] = v > 0.0f ? v : 0.0f;
		}
	} else if (b != 0.0f) {
#pragma omp simd
		for (int i = 0; i < n; i++)
			o[i] += b;
	}
}

void conv2d_gemm_forward(float *out, float *work, const float *in,
			 const float *weight, const float *bias,
			 const float *residual, int relu, struct conv2d_dims d)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	int ohw = oh * ow, hw = d.H * d.W;
	int ckk = d.C * d.K * d.K;
	int threads = omp_get_max_threads();
	int nt = tile_cols(d, ohw, threads);
	int ntiles = (ohw + nt - 1) / nt;
	int direct = is_direct(d);
	/* In place: the GEMM adds onto the residual already in out. */
	int inplace = residual == out;
	float beta = inplace ? 1.0f : 0.0f;
#pragma omp parallel for schedule(dynamic) collapse(2)
	for (int b = 0; b < d.B; b++) {
		for (int t = 0; t < ntiles; t++) {
			int p0 = t * nt, n = ohw - p0 < nt ? ohw - p0 : nt;
			const float *inb = in + (size_t)b * d.C * hw;
			float *o = out + (size_t)b * d.OC * ohw + p0;
			const float *src;
			int ldb;
			if (direct) {
				src = inb + p0;
				ldb = hw;
			} else {
				float *col = work + (size_t)omp_get_thread_num() * ckk * nt;
				im2col_tile(col, inb, p0, n, ow, d);
				src = col;
				ldb = n;
			}
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d.OC,
				    n, ckk, 1.0f, weight, ckk, src, ldb, beta, o, ohw);
			const float *r = residual && !inplace
					     ? residual + (size_t)b * d.OC * ohw + p0
					     : NULL;
			for (int oc = 0; oc < d.OC; oc++)
				epilogue_row(o + (size_t)oc * ohw,
					     r ? r + (size_t)oc * ohw : NULL,
					     bias ? bias[oc] : 0.0f, n, relu);
		}
	}
}
