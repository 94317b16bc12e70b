// common.cuh - what every kernels/cuda/*.cu file shares: the CHECK macros
// that name the failing call, its file and line (llm.c's cudaCheck), the
// context's handles, and launch helpers.  Internal to kernels/cuda/.
#ifndef TK_KERNELS_CUDA_COMMON_CUH
#define TK_KERNELS_CUDA_COMMON_CUH

#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/cuda/cuda.h"

// Print "tk-NAME: error: CUDA: <call>: <reason> (file:line)" and exit 3
// (a device failure is a system failure, DESIGN.md's exit statuses).
extern "C" void tk_cuda_fail(const char *lib, const char *call,
			     const char *why, const char *file, int line);

#define CUDA_CHECK(call)                                                      \
	do {                                                                  \
		cudaError_t e_ = (call);                                      \
		if (e_ != cudaSuccess)                                        \
			tk_cuda_fail("CUDA", #call, cudaGetErrorString(e_),    \
				     __FILE__, __LINE__);                     \
	} while (0)
#define CUBLAS_CHECK(call)                                                    \
	do {                                                                  \
		cublasStatus_t e_ = (call);                                   \
		if (e_ != CUBLAS_STATUS_SUCCESS)                              \
			tk_cuda_fail("cuBLAS", #call,                         \
				     cublasGetStatusString(e_), __FILE__,     \
				     __LINE__);                               \
	} while (0)
#define CUDNN_CHECK(call)                                                     \
	do {                                                                  \
		cudnnStatus_t e_ = (call);                                    \
		if (e_ != CUDNN_STATUS_SUCCESS)                               \
			tk_cuda_fail("cuDNN", #call, cudnnGetErrorString(e_),  \
				     __FILE__, __LINE__);                     \
	} while (0)
// After a kernel launch: the launch's own error (bad configuration).
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

namespace tk {

// Handles of the one device this process uses (context.cu).
cublasHandle_t blas(cudaStream_t s);
cublasLtHandle_t blaslt();
cudnnHandle_t dnn(cudaStream_t s);
// Scratch of at least 'bytes' on the device, shared by the ops of one
// stream at a time (grows; never shrinks).  Callers must not hold it
// across ops.
void *workspace(size_t bytes);
size_t workspace_limit();
// A device array of n zeros (grows; for absent biases).
const float *zeros(size_t n);

inline unsigned blocks(size_t n, unsigned threads)
{
	size_t b = (n + threads - 1) / threads;
	return (unsigned)(b < 65535u * 32u ? b : 65535u * 32u);
}

} // namespace tk

// Grid-stride loop over [0, n).
#define FOR_N(i, n)                                                           \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
	     i += (size_t)gridDim.x * blockDim.x)

// Sum over a block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the total.  'buf': __shared__ T[32].
template <typename T> __device__ inline T warp_sum(T v)
{
	for (int o = 16; o > 0; o >>= 1)
		v += __shfl_xor_sync(0xffffffffu, v, o);
	return v;
}
template <typename T> __device__ inline T warp_max(T v)
{
	for (int o = 16; o > 0; o >>= 1) {
		T w = __shfl_xor_sync(0xffffffffu, v, o);
		v = w > v ? w : v;
	}
	return v;
}
template <typename T> __device__ inline T block_sum(T v, T *buf)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nw = blockDim.x >> 5;
	v = warp_sum(v);
	__syncthreads(); // buf may still be read from a previous call
	if (lane == 0)
		buf[warp] = v;
	__syncthreads();
	v = lane < nw ? buf[lane] : T(0);
	return warp_sum(v);
}
template <typename T> __device__ inline T block_max(T v, T *buf, T lowest)
{
	int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
	int nw = blockDim.x >> 5;
	v = warp_max(v);
	__syncthreads();
	if (lane == 0)
		buf[warp] = v;
	__syncthreads();
	v = lane < nw ? buf[lane] : lowest;
	return warp_max(v);
}

#endif
