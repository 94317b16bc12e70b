// fold.cu - the sums of a reduction's rows of blocks, added in a fixed
// order (common.cuh's rows_of and fold_rows).
#include "kernels/cuda/common.cuh"

namespace {

// A 32 x 32 block: thread (x, y) sums rows y, y + 32, ... of value
// blockIdx.x * 32 + x, then row 0 of the block the 32 sums, each in
// order.
template <typename T>
__global__ void fold_rows_k(T *out, const T *part, unsigned Y, size_t K,
			    bool add)
{
	__shared__ T buf[32][33];
	size_t k = (size_t)blockIdx.x * 32 + threadIdx.x;
	T s = 0;
	if (k < K)
		for (unsigned y = threadIdx.y; y < Y; y += 32)
			s += part[y * K + k];
	buf[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && k < K) {
		for (int j = 1; j < 32; j++)
			s += buf[j][threadIdx.x];
		out[k] = add ? out[k] + s : s;
	}
}

template <typename T>
void fold(T *out, const T *part, unsigned Y, size_t K, bool add,
	  cudaStream_t s)
{
	if (Y < 2 || !K)
		return;
	fold_rows_k<T><<<(unsigned)((K + 31) / 32), dim3(32, 32), 0, s>>>(
	    out, part, Y, K, add);
	LAUNCH_CHECK();
}

} // namespace

namespace tk {

void fold_rows(float *out, const float *part, unsigned Y, size_t K, bool add,
	       cudaStream_t s)
{
	fold(out, part, Y, K, add, s);
}

void fold_rows(double *out, const double *part, unsigned Y, size_t K,
	       bool add, cudaStream_t s)
{
	fold(out, part, Y, K, add, s);
}

} // namespace tk
