// cuda_runtime.h (tk's CUDA emulator) - the part of the CUDA runtime that
// kernels/cuda/ uses, run on the CPU so that the CUDA kernels can be
// checked against the CPU kernels on a machine without a GPU (make EMU=1;
// README.md, "The CUDA emulator").  Device memory is host memory; the work queued on a
// stream runs when the host waits for it (TK_EMU_STREAMS, runtime.cc);
// a kernel launch runs every block, one after another,
// and the threads of a block as fibers that switch only at __syncthreads
// and warp shuffles.  Not a simulator of timing, caches or races.
#ifndef TK_EMU_CUDA_RUNTIME_H
#define TK_EMU_CUDA_RUNTIME_H

#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#include "library_types.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
// Shared memory: one copy per OS thread, which runs a block's threads.
#define __shared__ static thread_local

typedef enum cudaError {
	cudaSuccess = 0,
	cudaErrorInvalidValue = 1,
	cudaErrorMemoryAllocation = 2,
	cudaErrorInvalidConfiguration = 9,
	cudaErrorInvalidDevice = 101,
	cudaErrorNoDevice = 100,
	cudaErrorInvalidResourceHandle = 400,
	cudaErrorNotReady = 600,
	cudaErrorNotSupported = 801,
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;

enum cudaMemcpyKind {
	cudaMemcpyHostToHost = 0,
	cudaMemcpyHostToDevice = 1,
	cudaMemcpyDeviceToHost = 2,
	cudaMemcpyDeviceToDevice = 3,
	cudaMemcpyDefault = 4,
};

#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
#define cudaEventDefault 0x0
#define cudaEventDisableTiming 0x2

struct cudaDeviceProp {
	char name[256];
	size_t totalGlobalMem;
	size_t sharedMemPerBlock;
	int warpSize;
	int maxThreadsPerBlock;
	int maxThreadsDim[3];
	int maxGridSize[3];
	int major, minor;
	int multiProcessorCount;
};

struct uint3 {
	unsigned x, y, z;
};
struct dim3 {
	unsigned x, y, z;
	constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1)
	    : x(x_), y(y_), z(z_)
	{
	}
};

// The running thread's coordinates (set by the launcher before it runs or
// resumes each thread).  Defined here, constant-initialised, so that no
// access goes through a thread_local wrapper (GCC's UBSan misreads those
// as null).
inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;
const int warpSize = 32;

extern "C" {
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaDeviceSynchronize(void);

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n,
		       cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n,
			    cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src,
			      size_t spitch, size_t width, size_t rows,
			      cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemset(void *p, int v, size_t n);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);

cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e,
				unsigned flags);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
}

// The runtime's typed overload.
template <typename T> inline cudaError_t cudaMalloc(T **p, size_t bytes)
{
	return cudaMalloc((void **)p, bytes);
}
template <typename T> inline cudaError_t cudaMallocHost(T **p, size_t bytes)
{
	return cudaMallocHost((void **)p, bytes);
}

// ---- device functions ----
// CUDA's math library has these at global scope for every arithmetic type.
using std::isfinite;
using std::isinf;
using std::isnan;
template <typename A, typename B> inline auto min(A a, B b) -> decltype(a + b)
{
	return b < a ? b : a;
}
template <typename A, typename B> inline auto max(A a, B b) -> decltype(a + b)
{
	return a < b ? b : a;
}

void __syncthreads(void);
void __syncwarp(unsigned mask = 0xffffffffu);
// Lane exchange through the warp's slots; every live lane of the warp
// must take part (the kernels here always pass the full mask).
void tk_emu_shfl(void *v, size_t size, int src_lane);
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int lane_mask)
{
	tk_emu_shfl(&v, sizeof v, (int)((threadIdx.x + threadIdx.y * blockDim.x +
					 threadIdx.z * blockDim.x * blockDim.y) %
					32) ^ lane_mask);
	return v;
}
template <typename T> inline T __shfl_sync(unsigned, T v, int src, int = 32)
{
	tk_emu_shfl(&v, sizeof v, src & 31);
	return v;
}

// Fibers switch only at barriers, so these need no locks.
template <typename T> inline T atomicAdd(T *p, T v)
{
	T old = *p;
	*p = old + v;
	return old;
}
template <typename T> inline T atomicMin(T *p, T v)
{
	T old = *p;
	*p = v < old ? v : old;
	return old;
}
template <typename T> inline T atomicMax(T *p, T v)
{
	T old = *p;
	*p = v > old ? v : old;
	return old;
}

// The bits of one type as another, as the GPU's reinterpreting casts.
template <typename To, typename From> inline To tk_emu_bits(From x)
{
	static_assert(sizeof(To) == sizeof(From), "same size");
	To t;
	memcpy(&t, &x, sizeof t);
	return t;
}
inline unsigned __umulhi(unsigned a, unsigned b)
{
	return (unsigned)(((unsigned long long)a * b) >> 32);
}

inline unsigned __float_as_uint(float x)
{
	return tk_emu_bits<unsigned>(x);
}
inline float __uint_as_float(unsigned u)
{
	return tk_emu_bits<float>(u);
}
inline int __float_as_int(float x)
{
	return tk_emu_bits<int>(x);
}
inline float __int_as_float(int u)
{
	return tk_emu_bits<float>(u);
}
// Correctly rounded float arithmetic (volatile keeps the compiler from
// fusing a product and a sum into one multiply-add).
inline float __fadd_rn(float a, float b)
{
	volatile float r = a + b;
	return r;
}
inline float __fsub_rn(float a, float b)
{
	volatile float r = a - b;
	return r;
}
inline float __fmul_rn(float a, float b)
{
	volatile float r = a * b;
	return r;
}
inline float __fdiv_rn(float a, float b)
{
	volatile float r = a / b;
	return r;
}
inline float __frcp_rn(float a)
{
	return __fdiv_rn(1.0f, a);
}
inline float __fsqrt_rn(float a)
{
	return sqrtf(a);
}
// The GPU's approximate forms, computed exactly here.
inline float rsqrtf(float a)
{
	return 1.0f / sqrtf(a);
}
inline float __expf(float a)
{
	return expf(a);
}
inline float __logf(float a)
{
	return logf(a);
}
inline float __fdividef(float a, float b)
{
	return a / b;
}
template <typename T> inline T __ldg(const T *p)
{
	return *p;
}

// ---- kernel launch: kernels/cuda/*.cu are compiled with every
// "k<<<grid, block[, shared[, stream]]>>>(args)" rewritten into
// "tk_emu::launch(k, grid, block[, shared[, stream]])(args)" (the
// Makefile's EMU=1 rule).
namespace tk_emu {

struct config {
	dim3 grid, block;
	size_t shared;
	cudaStream_t stream;
};
// Whether c is a launch configuration a GPU takes (if not, the launch
// fails with cudaErrorInvalidConfiguration, as cudaGetLastError says).
bool check_launch(const void *kernel, const config &c);
// Runs body(ctx) for every thread of the grid; 'kernel' identifies the
// kernel (whether it synchronises is learnt on its first launch).
void run(const void *kernel, const config &c, void (*body)(void *),
	 void *ctx);
// Queues work on stream s (nullptr: the legacy default stream), as the
// libraries do with theirs: it runs when the host waits for it, or at
// once with TK_EMU_STREAMS=eager.
void enqueue(cudaStream_t s, std::function<void()> work);
// Counts one of cuDNN's algorithm searches (timed: cudnnFind*, which
// runs every algorithm on a GPU; else a heuristic answer), for
// TK_EMU_STATS.
void count_search(bool timed);
// f(i) for i in 0..n-1 in TK_EMU_ORDER's order: what a library sums in
// whatever order its threads come (cuDNN's non-deterministic algorithms).
void visit_in_order(size_t n, const std::function<void(size_t)> &f);

// A launch queues the kernel with a copy of its arguments, as a GPU
// takes them at the launch.
template <typename F> struct launcher {
	F *kernel;
	config c;
	template <typename... A> void operator()(const A &...a) const
	{
		if (!check_launch((const void *)kernel, c))
			return;
		F *k = kernel;
		config cc = c;
		enqueue(c.stream, [=]() {
			auto call = [&]() { k(a...); };
			typedef decltype(call) call_t;
			run((const void *)k, cc,
			    [](void *p) { (*(call_t *)p)(); }, (void *)&call);
		});
	}
};
template <typename F>
launcher<F> launch(F *kernel, dim3 grid, dim3 block, size_t shared = 0,
		   cudaStream_t stream = nullptr)
{
	return launcher<F>{kernel, config{grid, block, shared, stream}};
}

} // namespace tk_emu

#endif
