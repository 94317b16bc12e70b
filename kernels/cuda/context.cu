// context.cu - the one device a process uses: selection, the cuBLAS,
// cuBLASLt and cuDNN handles, the bounded scratch, precision, memory.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cuda/common.cuh"

// common/tk.h is C11; this is all else this file needs of it.
extern "C" uint64_t tk_parse_size(const char *opt, const char *s);

extern "C" void tk_cuda_fail(const char *lib, const char *call,
			     const char *why, const char *file, int line)
{
	tk_die(3, "%s: %s: %s (%s:%d)", lib, call, why, file, line);
}

namespace {

struct context {
	int device = -1;
	cublasHandle_t blas = nullptr;
	cublasLtHandle_t blaslt = nullptr;
	cudnnHandle_t dnn = nullptr;
	void *work = nullptr;
	size_t work_bytes = 0;
	void *part = nullptr;
	size_t part_bytes = 0;
	size_t work_limit = (size_t)1 << 30;
	float *zeros = nullptr;
	size_t zeros_n = 0;
	enum tk_precision precision = TK_FP32;
	bool deterministic = false;
	int conv_path = -1; // unset: TK_CONV_PATH's
	char name[512] = "";
};
context ctx;

void need_init()
{
	if (ctx.device < 0)
		tk_cuda_init(0);
}

} // namespace

namespace tk {

cublasHandle_t blas(cudaStream_t s)
{
	need_init();
	CUBLAS_CHECK(cublasSetStream(ctx.blas, s));
	return ctx.blas;
}

cublasLtHandle_t blaslt()
{
	need_init();
	return ctx.blaslt;
}

cudnnHandle_t dnn(cudaStream_t s)
{
	need_init();
	CUDNN_CHECK(cudnnSetStream(ctx.dnn, s));
	return ctx.dnn;
}

// *buf, of *have bytes, grown to hold 'bytes'.
void *grown(void **buf, size_t *have, size_t bytes)
{
	need_init();
	if (bytes <= *have)
		return *buf;
	// cudaFree waits for the device, so no queued op still reads the old
	// buffer when it goes.
	CUDA_CHECK(cudaFree(*buf));
	size_t n = bytes + bytes / 4;
	n = (n + 0xfffff) & ~(size_t)0xfffff;
	CUDA_CHECK(cudaMalloc(buf, n));
	*have = n;
	return *buf;
}

void *workspace(size_t bytes)
{
	return grown(&ctx.work, &ctx.work_bytes, bytes);
}

void *partials(size_t bytes)
{
	return grown(&ctx.part, &ctx.part_bytes, bytes);
}

int conv_path()
{
	if (ctx.conv_path < 0) {
		const char *e = getenv("TK_CONV_PATH");
		ctx.conv_path = 0;
		if (e && !strcmp(e, "dnn"))
			ctx.conv_path = 2;
		else if (e && !strcmp(e, "direct"))
			ctx.conv_path = 3;
	}
	return ctx.conv_path;
}

bool deterministic()
{
	return ctx.deterministic;
}

size_t workspace_limit()
{
	return ctx.work_limit;
}

const float *zeros(size_t n)
{
	need_init();
	if (n > ctx.zeros_n) {
		CUDA_CHECK(cudaFree(ctx.zeros));
		CUDA_CHECK(cudaMalloc(&ctx.zeros, n * sizeof(float)));
		CUDA_CHECK(cudaMemset(ctx.zeros, 0, n * sizeof(float)));
		/* The memset is queued on the legacy stream, which the
		 * non-blocking compute streams do not wait for. */
		CUDA_CHECK(cudaDeviceSynchronize());
		ctx.zeros_n = n;
	}
	return ctx.zeros;
}

} // namespace tk

extern "C" {

void tk_cuda_set_conv_path(int path)
{
	ctx.conv_path = path;
}

int tk_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError(); // clear the sticky-free error
		return 0;
	}
	return n;
}

void tk_cuda_init(int device)
{
	if (ctx.device == device)
		return;
	int n = tk_cuda_device_count();
	if (n == 0)
		tk_die(3, "--device cuda: no CUDA device (or no driver) found");
	if (device < 0 || device >= n)
		tk_die(1, "--device cuda:%d: only %d CUDA device%s (0..%d)", device,
		       n, n == 1 ? "" : "s", n - 1);
	if (ctx.device >= 0)
		tk_die(1, "CUDA device %d already in use; one device per process",
		       ctx.device);
	CUDA_CHECK(cudaSetDevice(device));
	ctx.device = device;
	CUBLAS_CHECK(cublasCreate(&ctx.blas));
	CUBLAS_CHECK(cublasLtCreate(&ctx.blaslt));
	CUDNN_CHECK(cudnnCreate(&ctx.dnn));
	const char *w = getenv("TK_CUDA_WORKSPACE");
	if (w && *w)
		ctx.work_limit = tk_parse_size("TK_CUDA_WORKSPACE", w);
	cudaDeviceProp p;
	CUDA_CHECK(cudaGetDeviceProperties(&p, device));
	snprintf(ctx.name, sizeof ctx.name, "%s, sm_%d%d, %d SMs, %.1f GiB",
		 p.name, p.major, p.minor, p.multiProcessorCount,
		 p.totalGlobalMem / 1073741824.0);
}

int tk_cuda_current(void)
{
	return ctx.device;
}

const char *tk_cuda_device_name(void)
{
	need_init();
	return ctx.name;
}

void tk_cuda_set_precision(enum tk_precision p)
{
	ctx.precision = p;
}

enum tk_precision tk_cuda_precision(void)
{
	return ctx.precision;
}

void tk_cuda_set_deterministic(int on)
{
	ctx.deterministic = on != 0;
}

int tk_precision_parse(const char *s, enum tk_precision *p)
{
	static const char *names[] = {"fp32", "tf32", "bf16"};
	for (int i = 0; i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			*p = (enum tk_precision)i;
			return 0;
		}
	return -1;
}

const char *tk_precision_name(enum tk_precision p)
{
	return p == TK_TF32 ? "tf32" : p == TK_BF16 ? "bf16" : "fp32";
}

void *tk_cuda_malloc(size_t bytes)
{
	need_init();
	void *p = nullptr;
	cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
	if (e != cudaSuccess) {
		size_t fr = 0, tot = 0;
		cudaMemGetInfo(&fr, &tot);
		tk_die(3, "CUDA: cannot allocate %.1f MiB on the device (%.1f MiB free): %s",
		       bytes / 1048576.0, fr / 1048576.0, cudaGetErrorString(e));
	}
	return p;
}

void tk_cuda_mem_info(size_t *free_bytes, size_t *total_bytes)
{
	need_init();
	CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
}

void tk_cuda_free(void *p)
{
	if (p)
		CUDA_CHECK(cudaFree(p));
}

void *tk_cuda_host_alloc(size_t bytes)
{
	need_init();
	void *p = nullptr;
	CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
	return p;
}

void tk_cuda_host_free(void *p)
{
	if (p)
		CUDA_CHECK(cudaFreeHost(p));
}

void tk_cuda_memset(void *dst, int byte, size_t bytes, tk_stream s)
{
	CUDA_CHECK(cudaMemsetAsync(dst, byte, bytes, s));
}

void tk_cuda_copy(void *dst, const void *src, size_t bytes, tk_stream s)
{
	if (bytes)
		CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
}

void tk_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch,
		    size_t width, size_t rows, tk_stream s)
{
	if (width && rows)
		CUDA_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, rows,
					     cudaMemcpyDefault, s));
}

void tk_cuda_sync(tk_stream s)
{
	if (s)
		CUDA_CHECK(cudaStreamSynchronize(s));
	else
		CUDA_CHECK(cudaDeviceSynchronize());
}

tk_stream tk_cuda_stream_create(void)
{
	need_init();
	cudaStream_t s;
	CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	return s;
}

void tk_cuda_stream_destroy(tk_stream s)
{
	if (s)
		CUDA_CHECK(cudaStreamDestroy(s));
}

tk_event tk_cuda_event_create(void)
{
	need_init();
	cudaEvent_t e;
	CUDA_CHECK(cudaEventCreate(&e));
	return e;
}

void tk_cuda_event_destroy(tk_event e)
{
	if (e)
		CUDA_CHECK(cudaEventDestroy(e));
}

void tk_cuda_event_record(tk_event e, tk_stream s)
{
	CUDA_CHECK(cudaEventRecord(e, s));
}

void tk_cuda_stream_wait(tk_stream s, tk_event e)
{
	CUDA_CHECK(cudaStreamWaitEvent(s, e, 0));
}

void tk_cuda_event_sync(tk_event e)
{
	CUDA_CHECK(cudaEventSynchronize(e));
}

float tk_cuda_event_ms(tk_event start, tk_event end)
{
	float ms = 0;
	CUDA_CHECK(cudaEventSynchronize(end));
	CUDA_CHECK(cudaEventElapsedTime(&ms, start, end));
	return ms;
}

} // extern "C"
