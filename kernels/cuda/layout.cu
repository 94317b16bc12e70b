// layout.cu - moving data between layouts through shared-memory tiles,
// so that both the reads and the writes are coalesced: the transpose
// that turns a [C, HW] feature map into [HW, C] token rows, and for the
// channels-last training backbone (trainnet_resnet.c) the batch's
// feature maps [B, C, HW] (float) to and from activations [B, HW, ld] of
// the activation type, and convolution weights [OC, C, KK] (float) to
// [OC, KK, ld] of that type, their gradients back (added); channels C
// to ld - 1 are padding, left as they are (zeros), except in
// inference's image (nhwc.h), which writes them.
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
	if (tk::act_bf16())
		launch((bf16 *)out, w, OC, C, K * K, K * K, ld, 0, s);
	else
		launch((float *)out, w, OC, C, K * K, K * K, ld, 0, s);
}

void conv_dweights_from_act_cuda(float *dw, const void *dwa, int OC, int C,
				 int ld, int K, tk_stream s)
{
	if (tk::act_bf16())
		launch(dw, (const bf16 *)dwa, OC, K * K, C, ld, K * K, 1, s);
	else
		launch(dw, (const float *)dwa, OC, K * K, C, ld, K * K, 1, s);
}

} // extern "C"
