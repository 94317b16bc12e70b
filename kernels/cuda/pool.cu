// pool.cu - max pooling (pool.h); a NaN wins, as on the CPU and in torch.
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

__global__ void maxpool_bwd(float *din, const float *dout, const int *argmax,
			    int HW, size_t ohw, size_t n)
{
	FOR_N(i, n) atomicAdd(&din[(i / ohw) * HW + argmax[i]], dout[i]);
}

} // namespace

extern "C" {

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
	size_t n = (size_t)P * oh * ow;
	if (!n)
		return;
	maxpool_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, argmax, H * W,
						       (size_t)oh * ow, n);
	LAUNCH_CHECK();
}

} // extern "C"
