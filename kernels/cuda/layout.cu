// layout.cu - moving data between layouts: the transpose that turns a
// [C, HW] feature map into [HW, C] token rows, through shared-memory
// tiles so that both the reads and the writes are coalesced.
#include "kernels/cuda/common.cuh"

namespace {

const int TILE = 32, ROWS = 8;

__global__ void transpose(float *out, const float *in, int R, int C)
{
	__shared__ float t[TILE][TILE + 1];
	int c = blockIdx.x * TILE + threadIdx.x;
	int r0 = blockIdx.y * TILE;
	for (int j = threadIdx.y; j < TILE; j += ROWS)
		if (r0 + j < R && c < C)
			t[j][threadIdx.x] = in[(size_t)(r0 + j) * C + c];
	__syncthreads();
	int r = r0 + threadIdx.x;
	int c0 = blockIdx.x * TILE;
	for (int j = threadIdx.y; j < TILE; j += ROWS)
		if (c0 + j < C && r < R)
			out[(size_t)(c0 + j) * R + r] = t[threadIdx.x][j];
}

} // namespace

extern "C" void transpose_forward_cuda(float *out, const float *in, int R,
				       int C, tk_stream s)
{
	if (R <= 0 || C <= 0)
		return;
	dim3 grid((C + TILE - 1) / TILE, (R + TILE - 1) / TILE);
	transpose<<<grid, dim3(TILE, ROWS), 0, s>>>(out, in, R, C);
	LAUNCH_CHECK();
}
