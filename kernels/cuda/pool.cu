// pool.cu - max pooling (pool.h); a NaN wins, as on the CPU and in torch.
// Also channels-last, on activations [B, H, W, C] of the activation type
// (float, or bf16 under TK_BF16): inference's, and the training stem's
// with the winners' indices and the backward pass.
#include "kernels/cuda/common.cuh"
#include "kernels/pool.h"

namespace {

__global__ void maxpool_fwd(float *out, int *argmax, const float *in, int H,
			    int W, int OH, int OW, int K, int stride, int pad,
			    size_t n)
{
	FOR_N(i, n)
	{
		int ox = i % OW, oy = (i / OW) % OH;
		size_t p = i / ((size_t)OW * OH);
		const float *x = in + p * H * W;
		int y0 = oy * stride - pad, y1 = y0 + K;
		int x0 = ox * stride - pad, x1 = x0 + K;
		y0 = y0 < 0 ? 0 : y0;
		y1 = y1 > H ? H : y1;
		x0 = x0 < 0 ? 0 : x0;
		x1 = x1 > W ? W : x1;
		int at;
		out[i] = maxpool2d_window(x, W, y0, y1, x0, x1, &at);
		if (argmax)
			argmax[i] = at;
	}
}

// The backward pass gathered: each input value (iy, ix) sums, in output
// order, the gradients of the outputs whose winner it is (no atomics: the
// CPU's sums to the bit, the same every run).  Output (oy, ox) of the
// plane lies at o + (oy * OW + ox) * step.
template <typename T>
__device__ float window_grad(const T *dout, const int *argmax, size_t o,
			     size_t step, int iy, int ix, int W, int OH,
			     int OW, int K, int stride, int pad)
{
	// the outputs whose window holds (iy, ix)
	int oy0 = iy + pad - K + 1, ox0 = ix + pad - K + 1;
	oy0 = oy0 > 0 ? (oy0 + stride - 1) / stride : 0;
	ox0 = ox0 > 0 ? (ox0 + stride - 1) / stride : 0;
	int oy1 = (iy + pad) / stride, ox1 = (ix + pad) / stride;
	oy1 = oy1 < OH - 1 ? oy1 : OH - 1;
	ox1 = ox1 < OW - 1 ? ox1 : OW - 1;
	float g = 0.0f;
	for (int oy = oy0; oy <= oy1; oy++)
		for (int ox = ox0; ox <= ox1; ox++) {
			size_t at = o + ((size_t)oy * OW + ox) * step;
			if (argmax[at] == iy * W + ix)
				g += to_f(dout[at]);
		}
	return g;
}

// [P, H, W] += the gradients of [P, OH, OW].
__global__ void maxpool_bwd(float *din, const float *dout, const int *argmax,
			    int H, int W, int OH, int OW, int K, int stride,
			    int pad, size_t n)
{
	FOR_N(i, n)
	{
		int ix = (int)(i % W), iy = (int)(i / W % H);
		size_t p = i / ((size_t)W * H);
		din[i] += window_grad(dout, argmax, p * OH * OW, 1, iy, ix, W, OH,
				      OW, K, stride, pad);
	}
}

// Element i of [B, Y, X, C] as (b, y, x, c): 32-bit arithmetic by
// fastdiv (fc, fx, fy of C, X, Y) where small (i < 2^31): with 64-bit
// divisions the stem's backward pass took 2 ms on an H200.
__device__ inline void nhwc_at(size_t i, bool small, fastdiv fc, fastdiv fx,
			       fastdiv fy, int C, int X, int Y, int *c, int *x,
			       int *y, size_t *b)
{
	if (small) {
		unsigned p = fc.div((unsigned)i), q = fx.div(p), r = fy.div(q);
		*c = (int)((unsigned)i - p * C);
		*x = (int)(p - q * X);
		*y = (int)(q - r * Y);
		*b = r;
	} else {
		size_t p = i / C;
		*c = (int)(i % C);
		*x = (int)(p % X);
		*y = (int)(p / X % Y);
		*b = p / ((size_t)X * Y);
	}
}

// [B, OH, OW, C] from [B, H, W, C]: the first maximum of the window in
// row order (maxpool2d_window's rule); argmax (may be NULL) receives its
// index in the plane, iy * W + ix.
template <typename T>
__global__ void maxpool_nhwc(T *out, int *argmax, const T *in, int C, int H,
			     int W, int OH, int OW, int K, int stride, int pad,
			     size_t n, bool small, fastdiv fc, fastdiv fw,
			     fastdiv fh)
{
	FOR_N(i, n)
	{
		int c, ox, oy;
		size_t b;
		nhwc_at(i, small, fc, fw, fh, C, OW, OH, &c, &ox, &oy, &b);
		const T *x = in + b * H * W * C + c;
		float m = -INFINITY;
		int at = -1;
		for (int ky = 0; ky < K; ky++) {
			int iy = oy * stride - pad + ky;
			if (iy < 0 || iy >= H)
				continue;
			for (int kx = 0; kx < K; kx++) {
				int ix = ox * stride - pad + kx;
				if (ix < 0 || ix >= W)
					continue;
				float v = to_f(x[((size_t)iy * W + ix) * C]);
				if (v > m || v != v || at < 0) {
					m = v;
					at = iy * W + ix;
				}
			}
		}
		out[i] = from_f<T>(m);
		if (argmax)
			argmax[i] = at;
	}
}

// The channels-last backward pass (window_grad); din overwritten.
template <typename T>
__global__ void maxpool_nhwc_bwd(T *din, const T *dout, const int *argmax,
				 int C, int H, int W, int OH, int OW, int K,
				 int stride, int pad, size_t n, bool small,
				 fastdiv fc, fastdiv fw, fastdiv fh)
{
	FOR_N(i, n)
	{
		int c, ix, iy;
		size_t b;
		nhwc_at(i, small, fc, fw, fh, C, W, H, &c, &ix, &iy, &b);
		din[i] = from_f<T>(window_grad(dout, argmax, b * OH * OW * C + c, C,
					       iy, ix, W, OH, OW, K, stride, pad));
	}
}

} // namespace

extern "C" {

void maxpool2d_nhwc_forward_cuda(void *out, const void *in, int C, int H, int W,
				 int K, int stride, int pad, tk_stream s)
{
	maxpool2d_act_forward_cuda(out, nullptr, in, 1, C, H, W, K, stride, pad, s);
}

void maxpool2d_act_forward_cuda(void *out, int *argmax, const void *in, int B,
				int C, int H, int W, int K, int stride, int pad,
				tk_stream s)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	size_t n = (size_t)B * oh * ow * C;
	if (!n)
		return;
	bool small = n < 0x80000000u;
	fastdiv fc((unsigned)C), fw((unsigned)ow), fh((unsigned)oh);
	if (tk::act_bf16())
		maxpool_nhwc<bf16><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (bf16 *)out, argmax, (const bf16 *)in, C, H, W, oh, ow, K, stride,
		    pad, n, small, fc, fw, fh);
	else
		maxpool_nhwc<float><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (float *)out, argmax, (const float *)in, C, H, W, oh, ow, K, stride,
		    pad, n, small, fc, fw, fh);
	LAUNCH_CHECK();
}

void maxpool2d_act_backward_cuda(void *din, const void *dout,
				 const int *argmax, int B, int C, int H, int W,
				 int K, int stride, int pad, tk_stream s)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	size_t n = (size_t)B * H * W * C;
	if (!n)
		return;
	bool small = n < 0x80000000u;
	fastdiv fc((unsigned)C), fw((unsigned)W), fh((unsigned)H);
	if (tk::act_bf16())
		maxpool_nhwc_bwd<bf16><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (bf16 *)din, (const bf16 *)dout, argmax, C, H, W, oh, ow, K, stride,
		    pad, n, small, fc, fw, fh);
	else
		maxpool_nhwc_bwd<float><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (float *)din, (const float *)dout, argmax, C, H, W, oh, ow, K,
		    stride, pad, n, small, fc, fw, fh);
	LAUNCH_CHECK();
}


void maxpool2d_forward_cuda(float *out, int *argmax, const float *in, int P,
			    int H, int W, int K, int stride, int pad, tk_stream s)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	size_t n = (size_t)P * oh * ow;
	if (!n)
		return;
	maxpool_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, argmax, in, H, W, oh,
						       ow, K, stride, pad, n);
	LAUNCH_CHECK();
}

void maxpool2d_backward_cuda(float *din, const float *dout, const int *argmax,
			     int P, int H, int W, int K, int stride, int pad,
			     tk_stream s)
{
	int oh = maxpool2d_out_size(H, K, stride, pad);
	int ow = maxpool2d_out_size(W, K, stride, pad);
	size_t n = (size_t)P * H * W;
	if (!n || !oh || !ow)
		return;
	maxpool_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, argmax, H, W, oh,
						       ow, K, stride, pad, n);
	LAUNCH_CHECK();
}

} // extern "C"
