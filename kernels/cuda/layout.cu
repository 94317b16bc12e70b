// layout.cu - moving data between layouts through shared-memory tiles,
// so that both the reads and the writes are coalesced: the transpose
// that turns a [C, HW] feature map into [HW, C] token rows, and for the
// channels-last training backbone (trainnet_resnet.c) the batch's
// feature maps [B, C, HW] (float) to and from activations [B, HW, ld] of
// the activation type; channels C to ld - 1 are padding, left as they
// are (zeros), except in inference's image (nhwc.h), which writes them.
// And, element by element, convolution weights [OC, C, KK] (float) to
// [OC, KK, ld] of that type, their gradients back (added).
#include "kernels/cuda/common.cuh"

namespace {

const int TILE = 32, ROWS = 8;

// out[z][c][r] (+)= in[z][r][c] for each of gridDim.z matrices [R, C]
// whose rows are ldi values apart in 'in', ldo in 'out' (ld >= the row's
// length: padding, untouched).
template <typename I, typename O>
__global__ void transpose(O *out, const I *in, int R, int C, int ldi,
			  int ldo, int add)
{
	__shared__ float t[TILE][TILE + 1];
	in += (size_t)blockIdx.z * R * ldi;
	out += (size_t)blockIdx.z * C * ldo;
	int c = blockIdx.x * TILE + threadIdx.x;
	int r0 = blockIdx.y * TILE;
	for (int j = threadIdx.y; j < TILE; j += ROWS)
		if (r0 + j < R && c < C)
			t[j][threadIdx.x] = to_f(in[(size_t)(r0 + j) * ldi + c]);
	__syncthreads();
	int r = r0 + threadIdx.x;
	int c0 = blockIdx.x * TILE;
	for (int j = threadIdx.y; j < TILE; j += ROWS)
		if (c0 + j < C && r < R) {
			O *o = &out[(size_t)(c0 + j) * ldo + r];
			float v = t[threadIdx.x][j];
			*o = from_f<O>(add ? to_f(*o) + v : v);
		}
}

template <typename I, typename O>
void launch(O *out, const I *in, int batch, int R, int C, int ldi, int ldo,
	    int add, tk_stream s)
{
	if (R <= 0 || C <= 0 || batch <= 0)
		return;
	if (batch > 65535)
		tk_cuda_fail("CUDA", "transpose", "more than 65535 matrices",
			     __FILE__, __LINE__);
	dim3 grid((C + TILE - 1) / TILE, (R + TILE - 1) / TILE, batch);
	transpose<I, O><<<grid, dim3(TILE, ROWS), 0, s>>>(out, in, R, C, ldi, ldo,
							 add);
	LAUNCH_CHECK();
}

// Convolution weights [OC, C, KK] (float) to [OC, KK, ld] of the
// activation type, an element a thread in the order of 'out' (C to ld - 1
// left alone): as small as these are (at most 2.4M values), a tile
// transpose of [C, KK] matrices used a few of its 32 columns (1 of them
// for a 1x1 convolution, whose two layouts are the same) and took 30 us
// a layer on an H200.
template <typename O>
__global__ void weights_to_act(O *out, const float *w, int C, int ld, int KK,
			       size_t n)
{
	FOR_N(i, n)
	{
		size_t oc = i / ((size_t)KK * C);
		int r = (int)(i % ((size_t)KK * C)), kk = r / C, c = r % C;
		out[(oc * KK + kk) * ld + c] = from_f<O>(w[(oc * C + c) * KK + kk]);
	}
}

// Their gradients back: dw[OC, C, KK] += dwa[OC, KK, ld], an element a
// thread in the order of dw.
template <typename I>
__global__ void dweights_from_act(float *dw, const I *dwa, int C, int ld,
				  int KK, size_t n)
{
	FOR_N(i, n)
	{
		size_t oc = i / ((size_t)C * KK);
		int r = (int)(i % ((size_t)C * KK)), c = r / KK, kk = r % KK;
		dw[i] += to_f(dwa[(oc * KK + kk) * ld + c]);
	}
}

} // namespace

extern "C" {

void transpose_forward_cuda(float *out, const float *in, int R, int C,
			    tk_stream s)
{
	launch(out, in, 1, R, C, C, R, 0, s);
}

void nchw_to_act_cuda(void *out, const float *in, int B, int C, int ld,
		      long HW, tk_stream s)
{
	int hw = (int)HW;
	if (tk::act_bf16())
		launch((bf16 *)out, in, B, C, hw, hw, ld, 0, s);
	else
		launch((float *)out, in, B, C, hw, hw, ld, 0, s);
}

// Inference's one image, its padding channels written (zeros): the
// buffers are reused.
void nchw_to_nhwc_forward_cuda(void *out, const float *in, int C, int ld,
			       int H, int W, tk_stream s)
{
	size_t hw = (size_t)H * W;
	if (ld > C && hw)
		CUDA_CHECK(cudaMemsetAsync(out, 0, hw * ld * tk_cuda_act_size(), s));
	nchw_to_act_cuda(out, in, 1, C, ld, (long)hw, s);
}

void act_to_nchw_cuda(float *out, const void *in, int B, int C, int ld,
		      long HW, tk_stream s)
{
	int hw = (int)HW;
	if (tk::act_bf16())
		launch(out, (const bf16 *)in, B, hw, C, ld, hw, 0, s);
	else
		launch(out, (const float *)in, B, hw, C, ld, hw, 0, s);
}

void conv_weights_to_act_cuda(void *out, const float *w, int OC, int C,
			      int ld, int K, tk_stream s)
{
	size_t n = (size_t)OC * K * K * C;
	if (!n)
		return;
	if (tk::act_bf16())
		weights_to_act<bf16><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (bf16 *)out, w, C, ld, K * K, n);
	else
		weights_to_act<float><<<tk::blocks(n, 256), 256, 0, s>>>(
		    (float *)out, w, C, ld, K * K, n);
	LAUNCH_CHECK();
}

void conv_dweights_from_act_cuda(float *dw, const void *dwa, int OC, int C,
				 int ld, int K, tk_stream s)
{
	size_t n = (size_t)OC * C * K * K;
	if (!n)
		return;
	if (tk::act_bf16())
		dweights_from_act<bf16><<<tk::blocks(n, 256), 256, 0, s>>>(
		    dw, (const bf16 *)dwa, C, ld, K * K, n);
	else
		dweights_from_act<float><<<tk::blocks(n, 256), 256, 0, s>>>(
		    dw, (const float *)dwa, C, ld, K * K, n);
	LAUNCH_CHECK();
}

} // extern "C"
