// conv.cu - convolutions through cuDNN (conv.h).  Per shape and
// precision, one set of descriptors and the algorithms cuDNN's own
// timing found fastest within the workspace bound (deterministic
// training: its heuristics' deterministic ones), cached for the
// process.  Forward with ReLU is cuDNN's fused conv + bias (+ residual)
// + ReLU; without, the convolution blends onto the residual (beta = 1)
// and one pass adds the bias.  The channels-last training backbone's
// convolutions (the _act ops) take activations [B, H, W, C] and filters
// [OC, K, K, C] of the activation type (bf16 under TK_BF16), no bias;
// those of 1x1 stride 1 are GEMMs (cuBLAS).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "kernels/cuda/common.cuh"

namespace {

struct plan {
	cudnnTensorDescriptor_t x, y, b;
	cudnnFilterDescriptor_t w;
	cudnnConvolutionDescriptor_t conv;
	cudnnActivationDescriptor_t relu;
	bool fwd_found = false, bwd_found = false;
	cudnnConvolutionFwdAlgo_t fwd;
	cudnnMathType_t fwd_math;
	size_t fwd_ws = 0;
	cudnnConvolutionBwdDataAlgo_t bwd_data;
	cudnnMathType_t bwd_data_math;
	size_t bwd_data_ws = 0;
	cudnnConvolutionBwdFilterAlgo_t bwd_filter;
	cudnnMathType_t bwd_filter_math;
	size_t bwd_filter_ws = 0;
	char name[80]; // the shape, for TK_CUDNN_LOG
};

typedef std::tuple<int, int, int, int, int, int, int, int, int, bool, bool>
    key_t_;
// Never destroyed, as the plans live for the process (nor reported at
// exit as leaked: LeakSanitizer still reaches them).
std::map<key_t_, plan> &plans = *new std::map<key_t_, plan>;

bool fp32_only()
{
	return tk_cuda_precision() == TK_FP32;
}

// The math type the descriptor carries while cuDNN searches: FMA (no
// TF32) for FP32, tensor cores otherwise.
cudnnMathType_t search_math()
{
	return fp32_only() ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
}

bool math_ok(cudnnMathType_t m)
{
	return !fp32_only() || m == CUDNN_FMA_MATH;
}

// act: channels-last, of the activation type; else NCHW float.
plan &get_plan(const struct conv2d_dims &d, bool act = false)
{
	key_t_ key(d.B, d.C, d.H, d.W, d.OC, d.K, d.stride, d.pad,
		   (int)tk_cuda_precision(), act, tk::deterministic());
	auto it = plans.find(key);
	if (it != plans.end())
		return it->second;
	plan &p = plans[key];
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	snprintf(p.name, sizeof p.name, "%dx%dx%dx%d -> %d, %dx%d/%d%s", d.B, d.C,
		 d.H, d.W, d.OC, d.K, d.K, d.stride, act ? " channels-last" : "");
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.b));
	CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
	CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
	CUDNN_CHECK(cudnnCreateActivationDescriptor(&p.relu));
	cudnnTensorFormat_t f = act ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
	cudnnDataType_t t = act && tk::act_bf16() ? CUDNN_DATA_BFLOAT16
							   : CUDNN_DATA_FLOAT;
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, f, t, d.B, d.C, d.H, d.W));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, f, t, d.B, d.OC, oh, ow));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.b, f, t, 1, d.OC, 1, 1));
	CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, t, f, d.OC, d.C, d.K, d.K));
	CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
	    p.conv, d.pad, d.pad, d.stride, d.stride, 1, 1,
	    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
	CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math()));
	CUDNN_CHECK(cudnnSetActivationDescriptor(p.relu, CUDNN_ACTIVATION_RELU,
						 CUDNN_NOT_PROPAGATE_NAN, 0.0));
	return p;
}

// The three directions' cuDNN calls, for choose and call_or_next:
// search (find), heuristics (heur), scratch of an algorithm (size: false,
// refused), the algorithm that always works (fallback), and where the
// plan keeps the choice.
struct fwd_kind {
	typedef cudnnConvolutionFwdAlgoPerf_t perf;
	typedef cudnnConvolutionFwdAlgo_t algo_t;
	static const int N = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
	static const char *name() { return "fwd"; }
	static void find(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, p.x, p.w, p.conv,
								  p.y, N, n, r));
	}
	static void heur(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv,
								    p.y, N, n, r));
	}
	static bool size(plan &p, cudnnHandle_t h, algo_t a, size_t *ws)
	{
		return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y,
							       a, ws) ==
		       CUDNN_STATUS_SUCCESS;
	}
	static algo_t fallback() { return CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM; }
	static algo_t &algo(plan &p) { return p.fwd; }
	static cudnnMathType_t &math(plan &p) { return p.fwd_math; }
	static size_t &ws(plan &p) { return p.fwd_ws; }
};

struct data_kind {
	typedef cudnnConvolutionBwdDataAlgoPerf_t perf;
	typedef cudnnConvolutionBwdDataAlgo_t algo_t;
	static const int N = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
	static const char *name() { return "bwd data"; }
	static void find(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
		    h, p.w, p.y, p.conv, p.x, N, n, r));
	}
	static void heur(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
		    h, p.w, p.y, p.conv, p.x, N, n, r));
	}
	static bool size(plan &p, cudnnHandle_t h, algo_t a, size_t *ws)
	{
		return cudnnGetConvolutionBackwardDataWorkspaceSize(
			   h, p.w, p.y, p.conv, p.x, a, ws) == CUDNN_STATUS_SUCCESS;
	}
	static algo_t fallback()
	{
		return tk::deterministic() ? CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
					   : CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
	}
	static algo_t &algo(plan &p) { return p.bwd_data; }
	static cudnnMathType_t &math(plan &p) { return p.bwd_data_math; }
	static size_t &ws(plan &p) { return p.bwd_data_ws; }
};

struct filter_kind {
	typedef cudnnConvolutionBwdFilterAlgoPerf_t perf;
	typedef cudnnConvolutionBwdFilterAlgo_t algo_t;
	static const int N = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
	static const char *name() { return "bwd filter"; }
	static void find(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
		    h, p.x, p.y, p.conv, p.w, N, n, r));
	}
	static void heur(plan &p, cudnnHandle_t h, int *n, perf *r)
	{
		CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
		    h, p.x, p.y, p.conv, p.w, N, n, r));
	}
	static bool size(plan &p, cudnnHandle_t h, algo_t a, size_t *ws)
	{
		return cudnnGetConvolutionBackwardFilterWorkspaceSize(
			   h, p.x, p.y, p.conv, p.w, a, ws) == CUDNN_STATUS_SUCCESS;
	}
	static algo_t fallback()
	{
		return tk::deterministic() ? CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1
					   : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
	}
	static algo_t &algo(plan &p) { return p.bwd_filter; }
	static cudnnMathType_t &math(plan &p) { return p.bwd_filter_math; }
	static size_t &ws(plan &p) { return p.bwd_filter_ws; }
};

// The first (fastest) result that succeeded, keeps the precision and
// whose scratch fits the bound: the larger of the result's
// own figure and what cuDNN says the algorithm needs under the result's
// math type (a heuristic's figure is an estimate; an algorithm whose
// size cuDNN refuses is passed over); under tk::deterministic() also one
// cuDNN calls deterministic.  Leaves the descriptor's math type changed.
template <typename K>
const typename K::perf *pick(plan &p, cudnnHandle_t h,
			     const typename K::perf *r, int n, size_t *ws)
{
	size_t lim = tk::workspace_limit();
	bool det = tk::deterministic();
	for (int i = 0; i < n; i++) {
		if (r[i].status != CUDNN_STATUS_SUCCESS || !math_ok(r[i].mathType) ||
		    (det && r[i].determinism != CUDNN_DETERMINISTIC))
			continue;
		size_t need;
		CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, r[i].mathType));
		if (!K::size(p, h, r[i].algo, &need))
			continue;
		if (need < r[i].memory)
			need = r[i].memory;
		if (need <= lim) {
			*ws = need;
			return &r[i];
		}
	}
	return nullptr;
}

// With TK_CUDNN_LOG set, each choice and what it was chosen from go to
// stderr: the direction and the plan's shape, the algorithm, then each
// result's algorithm, time (ms; -1 from the heuristics), status, math
// type and scratch; and an algorithm refused at the call, with its
// replacement.
template <typename Perf>
void log_choice(const char *what, const plan &p, const Perf *r, int n,
		const Perf *best, const char *why = "")
{
	if (!getenv("TK_CUDNN_LOG"))
		return;
	fprintf(stderr, "tk: cuDNN %s %s: %salgo %d;", what, p.name, why,
		best ? (int)best->algo : -1);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %d:%.3f%s%s/%zu", (int)r[i].algo, r[i].time,
			r[i].status == CUDNN_STATUS_SUCCESS ? "" : "!",
			r[i].mathType == CUDNN_TENSOR_OP_MATH ? "t" : "", r[i].memory);
	fputc('\n', stderr);
}

// An algorithm, its math type and scratch for direction K of plan p:
// cuDNN's timing (find), the fastest within the bound, else its
// heuristics (heur); under tk::deterministic() the heuristics alone, as
// timings differ from run to run and so would the algorithm and the
// sums' order, among the deterministic algorithms (cuDNN's atomics-free
// ones: backward data and filter ALGO_1, say, not ALGO_0).  Where none
// fits: K::fallback(), an algorithm that always works.
template <typename K> void choose(plan &p, cudnnHandle_t h)
{
	typename K::perf r[K::N];
	int n = 0;
	const typename K::perf *best = nullptr;
	size_t ws = 0;
	if (!tk::deterministic()) {
		CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math()));
		K::find(p, h, &n, r);
		best = pick<K>(p, h, r, n, &ws);
	}
	if (!best) {
		CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math()));
		K::heur(p, h, &n, r);
		best = pick<K>(p, h, r, n, &ws);
	}
	log_choice(K::name(), p, r, n, best);
	if (best) {
		K::algo(p) = best->algo;
		K::math(p) = best->mathType;
		K::ws(p) = ws;
		return;
	}
	K::algo(p) = K::fallback();
	K::math(p) = search_math();
	CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math()));
	if (!K::size(p, h, K::fallback(), &K::ws(p))) // refused: the call says why
		K::ws(p) = 0;
}

void find_fwd(plan &p, cudnnHandle_t h)
{
	choose<fwd_kind>(p, h);
	p.fwd_found = true;
}

void find_bwd(plan &p, cudnnHandle_t h)
{
	choose<data_kind>(p, h);
	choose<filter_kind>(p, h);
	p.bwd_found = true;
}

// call(algo, scratch, bytes) with direction K's choice for p.  cuDNN
// may refuse at the call an algorithm that its search or heuristics gave
// for the very shape (cuDNN 9.19 on an H200 did, CUDNN_STATUS_BAD_PARAM
// from a bf16 channels-last forward in a validation run): then the
// heuristics' best of the others (an algorithm under another math type
// is another) that the call takes, kept for the plan.
// Another error, or every algorithm refused: the first status, fatal,
// naming 'what' (the cuDNN function).
template <typename K, typename Call>
void call_or_next(const char *what, plan &p, cudnnHandle_t h, Call call)
{
	CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, K::math(p)));
	void *ws = K::ws(p) ? tk::workspace(K::ws(p)) : nullptr;
	cudnnStatus_t first = call(K::algo(p), ws, K::ws(p));
	if (first == CUDNN_STATUS_SUCCESS)
		return;
	if (!tk::dnn_refused(first))
		tk_cuda_fail("cuDNN", what, cudnnGetErrorString(first), __FILE__,
			     __LINE__);
	typename K::perf r[K::N];
	int n = 0;
	CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, search_math()));
	K::heur(p, h, &n, r);
	// the refused (algorithm, math type) pairs marked so in r
	auto refuse = [&](typename K::algo_t a, cudnnMathType_t m) {
		for (int i = 0; i < n; i++)
			if (r[i].algo == a && r[i].mathType == m)
				r[i].status = CUDNN_STATUS_NOT_SUPPORTED;
	};
	refuse(K::algo(p), K::math(p));
	for (int refused = (int)K::algo(p);;) {
		size_t bytes = 0;
		const typename K::perf *next = pick<K>(p, h, r, n, &bytes);
		char why[64];
		snprintf(why, sizeof why, "algo %d refused at the call (%d), now ",
			 refused, (int)first);
		log_choice(K::name(), p, r, n, next, why);
		if (!next)
			break;
		K::algo(p) = next->algo;
		K::math(p) = next->mathType;
		K::ws(p) = bytes;
		CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, K::math(p)));
		ws = bytes ? tk::workspace(bytes) : nullptr;
		cudnnStatus_t st = call(K::algo(p), ws, bytes);
		if (st == CUDNN_STATUS_SUCCESS)
			return;
		if (!tk::dnn_refused(st))
			tk_cuda_fail("cuDNN", what, cudnnGetErrorString(st), __FILE__,
				     __LINE__);
		// that one refused too: on to the next
		refuse(K::algo(p), K::math(p));
		refused = (int)K::algo(p);
	}
	char named[160];
	snprintf(named, sizeof named, "%s (%s %s, every algorithm refused)", what,
		 K::name(), p.name);
	tk_cuda_fail("cuDNN", named, cudnnGetErrorString(first), __FILE__, __LINE__);
}

// out[b, c, :] = relu?(out + bias[c]).
__global__ void bias_relu(float *out, const float *bias, int relu,
			  channel_of ch, size_t n)
{
	FOR_N(i, n)
	{
		float v = out[i];
		if (bias)
			v += bias[ch(i)];
		out[i] = relu && !(v > 0.0f) ? 0.0f : v;
	}
}

// The plan of d with its forward algorithm found.
plan &forward_plan(const struct conv2d_dims &d, bool act, cudnnHandle_t h)
{
	plan &p = get_plan(d, act);
	if (!p.fwd_found)
		find_fwd(p, h);
	return p;
}

// y = conv(x) + beta y, through call_or_next.
void forward_call(plan &p, cudnnHandle_t h, const void *in, const void *weight,
		  float beta, void *out)
{
	float one = 1.0f;
	call_or_next<fwd_kind>(
	    "cudnnConvolutionForward", p, h,
	    [&](cudnnConvolutionFwdAlgo_t a, void *ws, size_t bytes) {
		    return cudnnConvolutionForward(h, &one, p.x, in, p.w, weight, p.conv,
						   a, ws, bytes, &beta, p.y, out);
	    });
}

// din (if any; din_add: accumulates) and dweight (dw_add: accumulates).
void backward(plan &p, void *din, int din_add, void *dweight, int dw_add,
	      const void *dout, const void *in, const void *weight,
	      cudaStream_t s)
{
	cudnnHandle_t h = tk::dnn(s);
	if (!p.bwd_found)
		find_bwd(p, h);
	float one = 1.0f, zero = 0.0f;
	if (din)
		call_or_next<data_kind>(
		    "cudnnConvolutionBackwardData", p, h,
		    [&](cudnnConvolutionBwdDataAlgo_t a, void *ws, size_t bytes) {
			    return cudnnConvolutionBackwardData(
				h, &one, p.w, weight, p.y, dout, p.conv, a, ws, bytes,
				din_add ? &one : &zero, p.x, din);
		    });
	call_or_next<filter_kind>(
	    "cudnnConvolutionBackwardFilter", p, h,
	    [&](cudnnConvolutionBwdFilterAlgo_t a, void *ws, size_t bytes) {
		    return cudnnConvolutionBackwardFilter(
			h, &one, p.x, in, p.y, dout, p.conv, a, ws, bytes,
			dw_add ? &one : &zero, p.w, dweight);
	    });
}

// ---- the channels-last 1x1 stride-1 convolutions as cuBLAS GEMMs,
// as inference's (infer.cu): activations [rows, C], filters [OC, C],
// both row-major.  On an H200 inference's bf16 R101 ran 3.2x as fast
// with its 1x1 convolutions as GEMMs as with all of them through cuDNN's
// algorithms; TK_CONV_PATH=dnn keeps training's in cuDNN (benchmarks)
// too. ----

bool act_gemm(const struct conv2d_dims &d)
{
	return tk::conv_path() != 2 && d.K == 1 && d.stride == 1 && d.pad == 0;
}

// Column-major C (m x n) = alpha op(A) op(B) + beta C, of the activation
// type, float sums (FP32 activations: the precision's, TF32 or not).
void act_gemm_run(cublasOperation_t ta, cublasOperation_t tb, int m, int n,
		  int k, const void *A, int lda, const void *B, int ldb,
		  float beta, void *C, int ldc, cudaStream_t s)
{
	bool bf = tk::act_bf16();
	cudaDataType_t t = bf ? CUDA_R_16BF : CUDA_R_32F;
	cublasComputeType_t ct = !bf && tk_cuda_precision() == TK_TF32
					 ? CUBLAS_COMPUTE_32F_FAST_TF32
					 : CUBLAS_COMPUTE_32F;
	float one = 1.0f;
	CUBLAS_CHECK(cublasGemmEx(tk::blas(s), ta, tb, m, n, k, &one, A, t, lda, B,
				  t, ldb, &beta, C, t, ldc, ct,
				  CUBLAS_GEMM_DEFAULT));
}

} // namespace

extern "C" {

void conv2d_forward_cuda(float *out, float *work, const float *in,
			 const float *weight, const float *bias,
			 const float *residual, int relu, struct conv2d_dims d,
			 tk_stream s)
{
	(void)work;
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t n = (size_t)d.B * d.OC * oh * ow;
	if (!n)
		return;
	cudnnHandle_t h = tk::dnn(s);
	plan &p = forward_plan(d, false, h);
	if (relu && residual != out) {
		// y = relu(conv(x) + alpha2 z + bias); z must not alias y.
		const float *z = residual ? residual : out;
		float one = 1.0f, a2 = residual ? 1.0f : 0.0f;
		const float *b = bias ? bias : tk::zeros(d.OC);
		call_or_next<fwd_kind>(
		    "cudnnConvolutionBiasActivationForward", p, h,
		    [&](cudnnConvolutionFwdAlgo_t a, void *ws, size_t bytes) {
			    return cudnnConvolutionBiasActivationForward(
				h, &one, p.x, in, p.w, weight, p.conv, a, ws, bytes, &a2,
				p.y, z, p.b, b, p.relu, p.y, out);
		    });
		return;
	}
	// In place onto the residual, or a copy of it first.
	if (residual && residual != out)
		CUDA_CHECK(cudaMemcpyAsync(out, residual, n * sizeof(float),
					   cudaMemcpyDeviceToDevice, s));
	forward_call(p, h, in, weight, residual ? 1.0f : 0.0f, out);
	if (bias || relu) {
		bias_relu<<<tk::blocks(n, 256), 256, 0, s>>>(
		    out, bias, relu, channel_of(n, d.OC, (size_t)oh * ow), n);
		LAUNCH_CHECK();
	}
}

void conv2d_backward_cuda(float *din, int din_add, float *dweight,
			  float *dbias, float *work, const float *dout,
			  const float *in, const float *weight,
			  struct conv2d_dims d, tk_stream s)
{
	(void)work;
	plan &p = get_plan(d);
	backward(p, din, din_add, dweight, 1, dout, in, weight, s);
	float one = 1.0f;
	if (dbias)
		CUDNN_CHECK(cudnnConvolutionBackwardBias(tk::dnn(s), &one, p.y, dout,
							 &one, p.b, dbias));
}

void conv2d_act_forward_cuda(void *out, const void *in, const void *weight,
			     struct conv2d_dims d, tk_stream s)
{
	int oh = conv2d_out_size(d.H, d.K, d.stride, d.pad);
	int ow = conv2d_out_size(d.W, d.K, d.stride, d.pad);
	size_t n = (size_t)d.B * d.OC * oh * ow;
	if (!n)
		return;
	if (act_gemm(d)) { // Y = X W^T: column-major Y^T = W X^T
		act_gemm_run(CUBLAS_OP_T, CUBLAS_OP_N, d.OC, (int)(n / d.OC), d.C,
			     weight, d.C, in, d.C, 0.0f, out, d.OC, s);
		return;
	}
	cudnnHandle_t h = tk::dnn(s);
	forward_call(forward_plan(d, true, h), h, in, weight, 0.0f, out);
}

void conv2d_act_backward_cuda(void *din, int din_add, void *dweight,
			      const void *dout, const void *in,
			      const void *weight, struct conv2d_dims d,
			      tk_stream s)
{
	if (act_gemm(d)) {
		int rows = d.B * d.H * d.W;
		if (din) // dX (+)= dY W: column-major dX^T = W^T dY^T
			act_gemm_run(CUBLAS_OP_N, CUBLAS_OP_N, d.C, rows, d.OC, weight,
				     d.C, dout, d.OC, din_add ? 1.0f : 0.0f, din, d.C,
				     s);
		// dW = dY^T X: column-major dW^T = X^T dY
		act_gemm_run(CUBLAS_OP_N, CUBLAS_OP_T, d.C, d.OC, rows, in, d.C, dout,
			     d.OC, 0.0f, dweight, d.C, s);
		return;
	}
	backward(get_plan(d, true), din, din_add, dweight, 0, dout, in, weight, s);
}

} // extern "C"
