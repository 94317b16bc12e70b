// act.cu - element-wise ops and the row softmax (act.h), as the CPU's:
// the same float formulas, so fp32 results agree to rounding.
#include <cfloat>

#include "kernels/cuda/common.cuh"

namespace {

__global__ void relu_fwd(float *out, const float *in, size_t n)
{
	FOR_N(i, n) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

// add: din accumulates; else it is written (0 + v: a zeroed buffer's
// bits)
// T: float, or bf16 for the channels-last training's activations; V
// values a thread (common.cuh's packed), n a multiple of V.
template <typename T, int V>
__global__ void relu_bwd(T *din, int add, const T *dout, const T *out,
			 size_t n)
{
	typedef packed<T, V> P;
	FOR_N(j, n / V)
	{
		P o = ((const P *)out)[j], g = ((const P *)dout)[j], r;
		if (add)
			r = ((const P *)din)[j];
		for (int k = 0; k < V; k++)
			r.v[k] = from_f<T>((add ? to_f(r.v[k]) : 0.0f) +
					   (to_f(o.v[k]) > 0.0f ? to_f(g.v[k]) : 0.0f));
		((P *)din)[j] = r;
	}
}

__global__ void gelu_fwd(float *out, const float *in, size_t n)
{
	FOR_N(i, n)
	{
		float x = in[i];
		out[i] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
	}
}

// d/dx 0.5 x (1 + erf(x/sqrt2)) = 0.5 (1 + erf(x/sqrt2)) + x phi(x).
__global__ void gelu_bwd(float *din, const float *dout, const float *in,
			 size_t n)
{
	FOR_N(i, n)
	{
		float x = in[i];
		float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
		float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
		din[i] += dout[i] * (cdf + x * pdf);
	}
}

__global__ void add_fwd(float *out, const float *a, const float *b, size_t n)
{
	FOR_N(i, n) out[i] = a[i] + b[i];
}

template <typename T, int V>
__global__ void add_relu_fwd(T *out, const T *a, const T *b, size_t n)
{
	typedef packed<T, V> P;
	FOR_N(j, n / V)
	{
		P x = ((const P *)a)[j], y = ((const P *)b)[j], r;
		for (int k = 0; k < V; k++) {
			float v = to_f(x.v[k]) + to_f(y.v[k]);
			r.v[k] = from_f<T>(v > 0.0f ? v : 0.0f);
		}
		((P *)out)[j] = r;
	}
}

// relu_bwd and add_relu_fwd over n values of type T (by_width's pick).
template <typename T>
void launch_relu_bwd(T *din, int add, const T *dout, const T *out, size_t n,
		     cudaStream_t s)
{
	tk::by_width<T>(
	    [&](auto, auto v) {
		    relu_bwd<T, v()><<<tk::blocks(n / v(), 256), 256, 0, s>>>(
			din, add, dout, out, n);
	    },
	    0, n, din, dout, out);
	LAUNCH_CHECK();
}

template <typename T>
void launch_add_relu(T *out, const T *a, const T *b, size_t n, cudaStream_t s)
{
	tk::by_width<T>(
	    [&](auto, auto v) {
		    add_relu_fwd<T, v()><<<tk::blocks(n / v(), 256), 256, 0, s>>>(
			out, a, b, n);
	    },
	    0, n, out, a, b);
	LAUNCH_CHECK();
}

// One block per row.
__global__ void softmax_fwd(float *out, const float *in, int C)
{
	__shared__ float buf[32];
	const float *x = in + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	float m = -INFINITY;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		m = x[i] > m ? x[i] : m;
	m = block_max(m, buf, -INFINITY);
	float sum = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x) {
		float e = expf(x[i] - m);
		y[i] = e;
		sum += e;
	}
	sum = block_sum(sum, buf);
	float inv = 1.0f / sum;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		y[i] *= inv;
}

// din += out * (dout - sum(dout * out)).
__global__ void softmax_bwd(float *din, const float *dout, const float *out,
			    int C)
{
	__shared__ float buf[32];
	size_t r = (size_t)blockIdx.x * C;
	float dot = 0.0f;
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		dot += dout[r + i] * out[r + i];
	dot = block_sum(dot, buf);
	for (int i = threadIdx.x; i < C; i += blockDim.x)
		din[r + i] += out[r + i] * (dout[r + i] - dot);
}

unsigned row_threads(int C)
{
	unsigned t = 32;
	while (t < 1024 && (int)t < C)
		t *= 2;
	return t;
}

} // namespace

extern "C" {

void relu_forward_cuda(float *out, const float *in, size_t n, tk_stream s)
{
	if (!n)
		return;
	relu_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, in, n);
	LAUNCH_CHECK();
}

void relu_backward_cuda(float *din, int din_add, const float *dout,
			const float *out, size_t n, tk_stream s)
{
	if (!n)
		return;
	launch_relu_bwd(din, din_add, dout, out, n, s);
}

void relu_backward_act_cuda(void *din, int din_add, const void *dout,
			    const void *out, size_t n, tk_stream s)
{
	if (!n)
		return;
	if (tk::act_bf16())
		launch_relu_bwd((bf16 *)din, din_add, (const bf16 *)dout,
				(const bf16 *)out, n, s);
	else
		launch_relu_bwd((float *)din, din_add, (const float *)dout,
				(const float *)out, n, s);
}

void gelu_forward_cuda(float *out, const float *in, size_t n, tk_stream s)
{
	if (!n)
		return;
	gelu_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, in, n);
	LAUNCH_CHECK();
}

void gelu_backward_cuda(float *din, const float *dout, const float *in,
			size_t n, tk_stream s)
{
	if (!n)
		return;
	gelu_bwd<<<tk::blocks(n, 256), 256, 0, s>>>(din, dout, in, n);
	LAUNCH_CHECK();
}

void add_forward_cuda(float *out, const float *a, const float *b, size_t n,
		      tk_stream s)
{
	if (!n)
		return;
	add_fwd<<<tk::blocks(n, 256), 256, 0, s>>>(out, a, b, n);
	LAUNCH_CHECK();
}

void add_relu_forward_cuda(float *out, const float *a, const float *b,
			   size_t n, tk_stream s)
{
	if (!n)
		return;
	launch_add_relu(out, a, b, n, s);
}

void add_relu_act_cuda(void *out, const void *a, const void *b, size_t n,
		       tk_stream s)
{
	if (!n)
		return;
	if (tk::act_bf16())
		launch_add_relu((bf16 *)out, (const bf16 *)a, (const bf16 *)b, n, s);
	else
		launch_add_relu((float *)out, (const float *)a, (const float *)b, n,
				s);
}

void softmax_forward_cuda(float *out, const float *in, int N, int C,
			  tk_stream s)
{
	if (N <= 0 || C <= 0)
		return;
	softmax_fwd<<<N, row_threads(C), 0, s>>>(out, in, C);
	LAUNCH_CHECK();
}

void softmax_backward_cuda(float *din, const float *dout, const float *out,
			   int N, int C, tk_stream s)
{
	if (N <= 0 || C <= 0)
		return;
	softmax_bwd<<<N, row_threads(C), 0, s>>>(din, dout, out, C);
	LAUNCH_CHECK();
}

} // extern "C"
