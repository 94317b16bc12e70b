// common.cuh - what every kernels/cuda/*.cu file shares: the CHECK macros
// that name the failing call, its file and line (llm.c's cudaCheck), the
// context's handles, and launch helpers.  Internal to kernels/cuda/.
#ifndef TK_KERNELS_CUDA_COMMON_CUH
#define TK_KERNELS_CUDA_COMMON_CUH

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "kernels/cuda/cuda.h"

// Print "tk-NAME: error: CUDA: <call>: <reason> (file:line)" and exit 3
// (a device failure is a system failure, DESIGN.md's exit statuses).
extern "C" void tk_cuda_fail(const char *lib, const char *call,
			     const char *why, const char *file, int line);
// common/tk.h's tk_die (tk.h itself is C11: _Noreturn).
extern "C" [[noreturn]] void tk_die(int status, const char *fmt, ...);

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
// Whether cuDNN refused a call for what it was asked (not supported, a
// bad parameter) rather than failed: cuDNN 9 says why in finer codes of
// those categories (CUDNN_STATUS_NOT_SUPPORTED_SHAPE = 3002, ...).
namespace tk {
inline bool dnn_refused(cudnnStatus_t st)
{
#ifdef CUDNN_STATUS_CATEGORY
	int c = CUDNN_STATUS_CATEGORY((int)st);
#else
	int c = (int)st;
#endif
	return c == CUDNN_STATUS_NOT_SUPPORTED || c == CUDNN_STATUS_BAD_PARAM;
}
} // namespace tk
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
// A second such scratch, for the per-block partial sums of a reduction
// (fold_rows below) whose result may itself lie in the workspace.
void *partials(size_t bytes);
// tk_cuda_set_deterministic: cuDNN's algorithms from its heuristics,
// deterministic ones only.
bool deterministic();
// The ways a convolution may go (tk_cuda_set_conv_path, else
// TK_CONV_PATH): 0 the fastest, 2 no GEMMs (dnn), 3 the direct kernel
// only (direct).
int conv_path();
// A device array of n zeros (grows; for absent biases).
const float *zeros(size_t n);

inline unsigned blocks(size_t n, unsigned threads)
{
	size_t b = (n + threads - 1) / threads;
	return (unsigned)(b < 65535u * 32u ? b : 65535u * 32u);
}

} // namespace tk

// Activations of either type (bf16 under TK_BF16, float otherwise), as
// float and back (round to nearest even).
typedef __nv_bfloat16 bf16;
__device__ inline float to_f(float x)
{
	return x;
}
__device__ inline float to_f(bf16 x)
{
	return __bfloat162float(x);
}
template <typename T> __device__ inline T from_f(float x);
template <> __device__ inline float from_f<float>(float x)
{
	return x;
}
template <> __device__ inline bf16 from_f<bf16>(float x)
{
	return __float2bfloat16(x);
}

// V values of type T that a thread loads or stores at once (16 bytes:
// one 128-bit access instead of V narrow ones), and whether n values at
// each of the pointers allow it (a multiple of V, 16-byte aligned; NULL
// pointers pass).
template <typename T, int V> struct alignas(sizeof(T) * V) packed {
	T v[V];
};
inline bool packable(size_t n, int V, const void *a, const void *b = nullptr,
		     const void *c = nullptr, const void *d = nullptr)
{
	const void *p[4] = {a, b, c, d};
	for (const void *q : p)
		if ((uintptr_t)q % 16)
			return false;
	return n % V == 0;
}

namespace tk {
// Whether activations are bf16 (tk_cuda_act_size), else float.
inline bool act_bf16()
{
	return tk_cuda_act_size() == 2;
}

// f((T *)0, std::integral_constant<int, V>()): V values of type T a
// thread, 16 bytes where C (a multiple of V, so that a pack holds
// consecutive channels of one pixel; 0 for element-wise passes), n and
// the arrays allow (packable), else 1.
template <typename T, typename F>
void by_width(F f, int C, size_t n, const void *a, const void *b,
	      const void *c = nullptr, const void *d = nullptr)
{
	constexpr int V = 16 / sizeof(T);
	if (C % V == 0 && packable(n, V, a, b, c, d))
		f((T *)nullptr, std::integral_constant<int, V>());
	else
		f((T *)nullptr, std::integral_constant<int, 1>());
}

// The same with T the activation type.
template <typename F>
void by_act(F f, int C, size_t n, const void *a, const void *b,
	    const void *c = nullptr, const void *d = nullptr)
{
	if (act_bf16())
		by_width<bf16>(f, C, n, a, b, c, d);
	else
		by_width<float>(f, C, n, a, b, c, d);
}
} // namespace tk

// Unroll the loop that follows n times (nvcc; the emulator's g++ runs it
// as written).
#define TK_PRAGMA(x) _Pragma(#x)
#ifdef TK_EMU
#define UNROLL(n)
#else
#define UNROLL(n) TK_PRAGMA(unroll n)
#endif

// Grid-stride loop over [0, n).
#define FOR_N(i, n)                                                           \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); \
	     i += (size_t)gridDim.x * blockDim.x)

// n / d and n % d for n < 2^31 by a multiply-high, an add and a shift
// (Granlund and Montgomery's method, as PyTorch's IntDivider), d set on
// the host: an element's channel in a flat [B, C, S] loop without a
// 64-bit division's dozens of instructions, which would bound a
// memory-bound kernel.
struct fastdiv {
	unsigned d = 1, m = 1, s = 0;
	fastdiv() = default;
	explicit fastdiv(unsigned dv) : d(dv)
	{
		while (s < 32 && (1ull << s) < d)
			s++;
		m = (unsigned)(((1ull << 32) * ((1ull << s) - d)) / d + 1);
	}
	__device__ unsigned div(unsigned n) const
	{
		return (__umulhi(n, m) + n) >> s;
	}
	__device__ unsigned mod(unsigned n) const { return n - div(n) * d; }
};

// The channel c of element i of [B, C, S]: (i / S) % C, by fastdiv when
// every index is under 2^31.
struct channel_of {
	fastdiv S, C;
	size_t s64, c64;
	bool small;
	channel_of(size_t n, int C_, size_t S_)
	    : S((unsigned)(S_ < 0x80000000u ? S_ : 1)),
	      C((unsigned)(C_ > 0 ? C_ : 1)), s64(S_), c64((size_t)C_),
	      small(n < 0x80000000u && S_ < 0x80000000u)
	{
	}
	__device__ int operator()(size_t i) const
	{
		return small ? (int)C.mod(S.div((unsigned)i)) : (int)((i / s64) % c64);
	}
	// (i / S, i % S) for i < B * S
	__device__ void split(size_t i, size_t *q, size_t *r) const
	{
		if (small) {
			unsigned a = S.div((unsigned)i);
			*q = a;
			*r = (unsigned)i - a * S.d;
		} else {
			*q = i / s64;
			*r = i % s64;
		}
	}
};

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

// Sums across the blocks of a grid without atomics, so that they come
// out the same whatever order the blocks ran in: the block in row
// blockIdx.y of a grid of Y rows leaves its K sums in row y of
// rows_of's array (row_slot), and fold_rows (fold.cu) adds the rows in
// order into out (add: onto what out holds, else in its place).  One
// row needs no scratch: the blocks write out itself, and fold_rows does
// nothing.
namespace tk {
template <typename T> T *rows_of(T *out, unsigned Y, size_t K)
{
	return Y > 1 ? (T *)partials((size_t)Y * K * sizeof(T)) : out;
}
void fold_rows(float *out, const float *part, unsigned Y, size_t K,
	       bool add, cudaStream_t s);
void fold_rows(double *out, const double *part, unsigned Y, size_t K,
	       bool add, cudaStream_t s);
} // namespace tk

// Where block (x, y) of a reduction leaves its value k of K: row y of
// rows_of's array, or out itself in a grid of one row.
template <typename T>
__device__ inline T *row_slot(T *dst, size_t K, size_t k)
{
	return dst + (gridDim.y > 1 ? (size_t)blockIdx.y * K : 0) + k;
}

#endif
