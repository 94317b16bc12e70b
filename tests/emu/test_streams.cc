// test_streams.cc - checks when the emulator runs the work queued on
// streams (tests/emu/runtime.cc, TK_EMU_STREAMS): a program that waits
// as CUDA requires gets its results in every mode; in the lazy mode (the
// default) one that forgets a wait sees what the forgotten work had not
// yet written, every time.  One line per check; exits 1 when any fails.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cublas_v2.h"
#include "cuda_runtime.h"

static int failures;
static bool lazy; // TK_EMU_STREAMS unset or lazy: the forgotten waits show

static void expect(bool ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	failures += !ok;
}

// A check of what a missing wait does, made in the lazy mode only (the
// random mode may or may not show it; the eager one never does).
static void expect_lazy(bool ok, const char *what)
{
	if (lazy)
		expect(ok, what);
}

const int N = 100;

__global__ void scale(float *y, const float *x, float a, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = a * x[i];
}

__global__ void fill(float *y, float v, int n)
{
	int i = blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		y[i] = v;
}

static void launch_scale(float *y, const float *x, float a, cudaStream_t s)
{
	tk_emu::launch(scale, dim3((N + 63) / 64), dim3(64), 0, s)(y, x, a, N);
}

static void launch_fill(float *y, float v, cudaStream_t s)
{
	tk_emu::launch(fill, dim3((N + 63) / 64), dim3(64), 0, s)(y, v, N);
}

static bool all(const float *p, float v)
{
	for (int i = 0; i < N; i++)
		if (!(p[i] == v))
			return false;
	return true;
}

static bool all_nan(const float *p)
{
	for (int i = 0; i < N; i++)
		if (!std::isnan(p[i]))
			return false;
	return true;
}

struct bufs {
	cudaStream_t copy, compute, blocking;
	cudaEvent_t ev;
	float *pin, *pout, *x, *y; // pinned in and out; device
};

static bufs make()
{
	bufs b;
	cudaStreamCreateWithFlags(&b.copy, cudaStreamNonBlocking);
	cudaStreamCreateWithFlags(&b.compute, cudaStreamNonBlocking);
	cudaStreamCreate(&b.blocking);
	cudaEventCreate(&b.ev);
	cudaMallocHost(&b.pin, N * sizeof(float));
	cudaMallocHost(&b.pout, N * sizeof(float));
	cudaMalloc(&b.x, N * sizeof(float));
	cudaMalloc(&b.y, N * sizeof(float));
	return b;
}

static void drop(bufs &b)
{
	cudaFree(b.x), cudaFree(b.y);
	cudaFreeHost(b.pin), cudaFreeHost(b.pout);
	cudaEventDestroy(b.ev);
	cudaStreamDestroy(b.copy), cudaStreamDestroy(b.compute);
	cudaStreamDestroy(b.blocking);
}

// An upload on one stream, a kernel on another, a download into pinned
// memory: with the event wait and the host's wait, the right numbers.
static void t_overlap(bool wait_event, bool wait_host)
{
	bufs b = make();
	for (int i = 0; i < N; i++)
		b.pin[i] = 3;
	cudaMemcpyAsync(b.x, b.pin, N * sizeof(float), cudaMemcpyHostToDevice,
			b.copy);
	cudaEventRecord(b.ev, b.copy);
	if (wait_event)
		cudaStreamWaitEvent(b.compute, b.ev, 0);
	launch_scale(b.y, b.x, 2, b.compute);
	cudaMemcpyAsync(b.pout, b.y, N * sizeof(float), cudaMemcpyDeviceToHost,
			b.compute);
	if (wait_host)
		cudaStreamSynchronize(b.compute);
	bool right = all(b.pout, 6);
	if (wait_event && wait_host)
		expect(right, "upload, event, kernel on another stream, download: "
			      "6 everywhere");
	else if (!wait_event)
		expect_lazy(all_nan(b.pout),
			    "kernel without waiting for the upload's event reads "
			    "fresh (NaN) memory");
	else
		expect_lazy(all_nan(b.pout),
			    "pinned memory read before the download ran: still "
			    "NaN, as cudaMallocHost left it");
	drop(b);
}

// The host writes pinned memory that a queued upload has still to read.
static void t_pinned_reuse()
{
	bufs b = make();
	for (int i = 0; i < N; i++)
		b.pin[i] = 1;
	cudaMemcpyAsync(b.x, b.pin, N * sizeof(float), cudaMemcpyHostToDevice,
			b.copy);
	for (int i = 0; i < N; i++)
		b.pin[i] = 2; // too early: no wait for the copy
	cudaMemcpy(b.pout, b.x, N * sizeof(float), cudaMemcpyDeviceToHost);
	cudaStreamSynchronize(b.copy);
	cudaMemcpy(b.pout, b.x, N * sizeof(float), cudaMemcpyDeviceToHost);
	expect_lazy(all(b.pout, 2), "pinned memory rewritten before the upload "
				    "ran: the upload takes the new values");
	drop(b);
}

// Pageable memory: an upload takes the data at the call; a download is
// done when the call returns.
static void t_pageable()
{
	bufs b = make();
	float h[N];
	for (int i = 0; i < N; i++)
		h[i] = 4;
	cudaMemcpyAsync(b.x, h, sizeof h, cudaMemcpyHostToDevice, b.compute);
	for (int i = 0; i < N; i++)
		h[i] = 5;
	launch_scale(b.y, b.x, 1, b.compute);
	float g[N];
	cudaMemcpyAsync(g, b.y, sizeof g, cudaMemcpyDeviceToHost, b.compute);
	expect(all(g, 4), "pageable upload staged at the call, pageable "
			  "download complete at return");
	drop(b);
}

// The legacy default stream waits for blocking streams, not for
// non-blocking ones.
static void t_legacy()
{
	bufs b = make();
	float g[N];
	launch_fill(b.x, 7, b.blocking);
	cudaMemcpy(g, b.x, sizeof g, cudaMemcpyDeviceToHost);
	expect(all(g, 7), "cudaMemcpy waits for a blocking stream's kernel");
	launch_fill(b.y, 8, b.compute);
	cudaMemcpy(g, b.y, sizeof g, cudaMemcpyDeviceToHost);
	expect_lazy(all_nan(g), "cudaMemcpy does not wait for a non-blocking "
				"stream's kernel");
	cudaDeviceSynchronize();
	cudaMemcpy(g, b.y, sizeof g, cudaMemcpyDeviceToHost);
	expect(all(g, 8), "after cudaDeviceSynchronize it sees it");
	launch_fill(b.x, 9, nullptr); // the legacy stream, then a blocking one
	launch_scale(b.y, b.x, 1, b.blocking);
	cudaStreamSynchronize(b.blocking);
	cudaMemcpy(g, b.y, sizeof g, cudaMemcpyDeviceToHost);
	expect(all(g, 9), "a blocking stream waits for the legacy stream");
	drop(b);
}

// An event recorded before the work it was meant to follow: the stream
// waiting for it runs as soon as the event allows.
static void t_early_event()
{
	bufs b = make();
	launch_fill(b.x, 1, b.compute);
	cudaEventRecord(b.ev, b.compute);
	launch_fill(b.x, 2, b.compute); // after the event
	cudaStreamWaitEvent(b.copy, b.ev, 0);
	cudaMemcpyAsync(b.pout, b.x, N * sizeof(float), cudaMemcpyDeviceToHost,
			b.copy);
	cudaStreamSynchronize(b.copy);
	expect_lazy(all(b.pout, 1), "a wait for an event recorded too early "
				    "does not wait for the work after it");
	cudaDeviceSynchronize();
	drop(b);
}

// Event timing: cudaErrorNotReady until the records have run.
static void t_events()
{
	bufs b = make();
	cudaEvent_t a;
	cudaEventCreate(&a);
	cudaEventRecord(a, b.compute);
	launch_fill(b.x, 1, b.compute);
	cudaEventRecord(b.ev, b.compute);
	float ms = -1;
	cudaError_t e = cudaEventElapsedTime(&ms, a, b.ev);
	expect_lazy(e == cudaErrorNotReady,
		    "cudaEventElapsedTime before the records ran: not ready");
	cudaGetLastError();
	cudaEventSynchronize(b.ev);
	e = cudaEventElapsedTime(&ms, a, b.ev);
	expect(e == cudaSuccess && ms >= 0,
	       "cudaEventElapsedTime after cudaEventSynchronize");
	cudaEventDestroy(a);
	drop(b);
}

// A library call runs on its handle's stream, in order with kernels.
static void t_library()
{
	bufs b = make();
	cublasHandle_t h;
	cublasCreate(&h);
	cublasSetStream(h, b.compute);
	launch_fill(b.x, 2, b.compute);
	float one = 1, zero = 0;
	// y[10x10] = x[10x10] x[10x10]: every element 10 * 2 * 2
	cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 10, 10, 10, &one, b.x,
		     CUDA_R_32F, 10, b.x, CUDA_R_32F, 10, &zero, b.y, CUDA_R_32F,
		     10, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	one = 2; // alpha is read at the call
	cudaMemcpyAsync(b.pout, b.y, N * sizeof(float), cudaMemcpyDeviceToHost,
			b.compute);
	cudaStreamSynchronize(b.compute);
	expect(all(b.pout, 40), "cublasGemmEx on its handle's stream, after the "
				"kernel before it");
	cublasDestroy(h);
	drop(b);
}

// --overflow: a kernel that writes one float past its array, into the
// slack cudaMalloc rounds up to: under ASan (tests/emu/emu-asan) the
// program stops there, naming this file's line.
static int overflow()
{
	float *y;
	cudaMalloc(&y, N * sizeof(float));
	tk_emu::launch(fill, dim3(1), dim3(128), 0, nullptr)(y, 1.0f, N + 1);
	cudaDeviceSynchronize();
	cudaFree(y);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, nullptr, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--overflow"))
		return overflow();
	const char *m = getenv("TK_EMU_STREAMS");
	lazy = !m || !*m || !strcmp(m, "lazy");
	t_overlap(true, true);
	t_overlap(false, true);
	t_overlap(true, false);
	t_pinned_reuse();
	t_pageable();
	t_legacy();
	t_early_event();
	t_events();
	t_library();
	printf(failures ? "FAIL: %d failed\n" : "ok: %d failed\n", failures);
	return failures != 0;
}
