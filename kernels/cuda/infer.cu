// infer.cu - channels-last inference (nhwc.h's ops) for the device
// network: activations [H, W, ld] in the activation type of the
// precision (bf16 under TK_BF16, float otherwise).  A convolution goes
// the fastest way its shape allows:
//   1x1 stride 1   a cuBLASLt GEMM, [P, C] x [C, OC], with the bias,
//                  the residual (as C, beta 1) and ReLU in the epilogue;
//   other shapes   cuDNN with channels-last filters and tensor-core
//                  math (FMA in fp32), then one pass for bias and ReLU
//                  (its algorithm per input size: TK_CUDNN_SEARCH below);
//   the rest       (channel counts not a multiple of 8, which neither
//                  library takes well, or a shape they refuse) a direct
//                  kernel, fused likewise.
// Every choice is per shape and cached for the process.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>
#include <vector>

#include "kernels/cuda/common.cuh"

struct tk_cuda_conv {
	int C, ld, OC, K, stride, pad;
	bool bf;         // activations (and weights) bf16
	void *w;         // [OC, K, K, ld], the activation type
	float *bias;     // [OC]
	void *bias_act;  // [OC], the activation type (cuBLASLt's bias type
			 // follows its output's)
	bool gemm_shape; // 1x1, stride 1, no padding
	bool aligned;    // ld and OC multiples of 8
};

namespace {

template <typename T>
__global__ void convert(T *out, const float *in, size_t n)
{
	FOR_N(i, n) out[i] = from_f<T>(in[i]);
}

// out = relu?(out + bias), per channel (the last axis).
template <typename T>
__global__ void bias_relu(T *out, const float *bias, int relu, int C,
			  size_t n)
{
	FOR_N(i, n)
	{
		float v = to_f(out[i]) + bias[i % C];
		out[i] = from_f<T>(relu && !(v > 0.0f) ? 0.0f : v);
	}
}

// The direct convolution: one output value a thread, float sums.
template <typename T, typename O>
__global__ void conv_direct(O *out, const T *in, const T *w,
			    const float *bias, const O *res, int relu, int ld,
			    int H, int W, int OC, int K, int stride, int pad,
			    int OW, size_t n)
{
	FOR_N(i, n)
	{
		int oc = (int)(i % OC);
		size_t p = i / OC;
		int ox = (int)(p % OW), oy = (int)(p / OW);
		float s = 0.0f;
		for (int ky = 0; ky < K; ky++) {
			int iy = oy * stride - pad + ky;
			if (iy < 0 || iy >= H)
				continue;
			for (int kx = 0; kx < K; kx++) {
				int ix = ox * stride - pad + kx;
				if (ix < 0 || ix >= W)
					continue;
				const T *x = in + ((size_t)iy * W + ix) * ld;
				const T *f = w + (((size_t)oc * K + ky) * K + kx) * ld;
				for (int c = 0; c < ld; c++)
					s += to_f(x[c]) * to_f(f[c]);
			}
		}
		if (bias)
			s += bias[oc];
		if (res)
			s += to_f(res[i]);
		out[i] = from_f<O>(relu && !(s > 0.0f) ? 0.0f : s);
	}
}

template <typename T>
__global__ void first_nonfinite(const T *x, size_t n, unsigned long long *at)
{
	FOR_N(i, n)
	if (!isfinite(to_f(x[i])))
		atomicMin(at, (unsigned long long)i);
}

unsigned grid(size_t n)
{
	return tk::blocks(n, 256);
}

// ---- cuBLASLt: the 1x1 convolutions ----

struct lt_plan {
	bool ok = false;
	cublasLtMatmulDesc_t op = nullptr;
	cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
	cublasLtMatmulAlgo_t algo;
	size_t work = 0;
};
typedef std::tuple<long, int, int, int, int, int, int> lt_key;
// Never destroyed: as conv.cu's plans.
std::map<lt_key, lt_plan> &lt_plans = *new std::map<lt_key, lt_plan>;
const size_t LT_WORK = (size_t)32 << 20;

// Column-major D[OC, P] = W^T (W stored [OC, ld]: [ld, OC] column-major)
// x in^T ([ld, P] column-major) + beta C, then bias and ReLU.
lt_plan *lt_get(long P, int ld, int OC, bool bf, bool out_f32, int relu,
		bool res)
{
	lt_key key(P, ld, OC, bf, out_f32, relu, (int)tk_cuda_precision() * 2 + res);
	auto it = lt_plans.find(key);
	if (it != lt_plans.end())
		return it->second.ok ? &it->second : nullptr;
	lt_plan &p = lt_plans[key];
	cudaDataType_t at = bf ? CUDA_R_16BF : CUDA_R_32F;
	cudaDataType_t dt = out_f32 || !bf ? CUDA_R_32F : CUDA_R_16BF;
	cublasComputeType_t ct = tk_cuda_precision() == TK_TF32 && !bf
					 ? CUBLAS_COMPUTE_32F_FAST_TF32
					 : CUBLAS_COMPUTE_32F;
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	cublasLtEpilogue_t epi = relu ? CUBLASLT_EPILOGUE_RELU_BIAS
				      : CUBLASLT_EPILOGUE_BIAS;
	cublasLtMatmulPreference_t pref = nullptr;
	cublasLtMatmulHeuristicResult_t r;
	int found = 0;
	size_t ws = LT_WORK;
	bool ok =
	    cublasLtMatmulDescCreate(&p.op, ct, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
					   sizeof ta) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
					   sizeof tb) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
					   &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatrixLayoutCreate(&p.a, at, ld, OC, ld) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatrixLayoutCreate(&p.b, at, ld, P, ld) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatrixLayoutCreate(&p.c, dt, OC, P, OC) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulPreferenceSetAttribute(
		pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
		sizeof ws) == CUBLAS_STATUS_SUCCESS &&
	    cublasLtMatmulAlgoGetHeuristic(tk::blaslt(), p.op, p.a, p.b, p.c, p.c,
					   pref, 1, &r, &found) ==
		CUBLAS_STATUS_SUCCESS &&
	    found > 0 && r.state == CUBLAS_STATUS_SUCCESS;
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	if (!ok)
		return nullptr;
	p.algo = r.algo;
	p.work = r.workspaceSize;
	p.ok = true;
	return &p;
}

bool run_lt(const tk_cuda_conv *c, void *out, bool out_f32, const void *in,
	    const void *res, int relu, long P, cudaStream_t s)
{
	lt_plan *p = lt_get(P, c->ld, c->OC, c->bf, out_f32, relu, res != nullptr);
	if (!p)
		return false;
	const void *bias = out_f32 || !c->bf ? (const void *)c->bias : c->bias_act;
	CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
	    p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
	float one = 1.0f, beta = res ? 1.0f : 0.0f;
	void *ws = p->work ? tk::workspace(p->work) : nullptr;
	cublasStatus_t st = cublasLtMatmul(tk::blaslt(), p->op, &one, c->w, p->a,
					   in, p->b, &beta, res ? res : out, p->c,
					   out, p->c, &p->algo, ws, p->work, s);
	if (st == CUBLAS_STATUS_NOT_SUPPORTED) { // remembered: the next way
		p->ok = false;
		return false;
	}
	CUBLAS_CHECK(st);
	return true;
}

// ---- cuDNN: the other shapes ----

struct dnn_plan {
	bool ok = false;
	bool borrowed = false; // the algorithm of another size (near)
	cudnnTensorDescriptor_t x, y;
	cudnnFilterDescriptor_t w;
	cudnnConvolutionDescriptor_t conv;
	cudnnConvolutionFwdAlgo_t algo;
	cudnnMathType_t math;
	size_t work = 0;
};
typedef std::tuple<int, int, int, int, int, int, int, int> dnn_key;
std::map<dnn_key, dnn_plan> &dnn_plans = *new std::map<dnn_key, dnn_plan>; // as lt_plans

// How a convolution's algorithm is found for an input size not seen
// before (TK_CUDNN_SEARCH):
//   near       (the default) cuDNN times the algorithms (cudnnFind) for
//              the first NEAR_MAX sizes of a layer shape; a size within
//              NEAR_RATIO in both sides of a timed one takes its
//              algorithm, and once NEAR_MAX are timed every new size
//              takes the nearest's.  A dataset of many image sizes
//              (Revisited Oxford's, R1M's) so pays for a few searches a
//              layer shape, not one for each size at each scale.
//   time       every new size timed (PyTorch's cudnn.benchmark);
//   heuristic  nothing timed: cuDNN's heuristics (PyTorch's default).
// An algorithm the size does not take (cuDNN refuses it, or it needs more
// than the workspace bound) falls to the next way: timing, heuristics,
// then the direct kernel.
enum { SEARCH_NEAR, SEARCH_TIME, SEARCH_HEURISTIC };
const int NEAR_MAX = 12;
const double NEAR_RATIO = 1.25;

int search_mode()
{
	static int mode = -1;
	if (mode < 0) {
		const char *e = getenv("TK_CUDNN_SEARCH");
		if (!e || !*e || !strcmp(e, "near"))
			mode = SEARCH_NEAR;
		else if (!strcmp(e, "time"))
			mode = SEARCH_TIME;
		else if (!strcmp(e, "heuristic"))
			mode = SEARCH_HEURISTIC;
		else
			tk_die(1, "TK_CUDNN_SEARCH=%s: not near, time or heuristic", e);
	}
	return mode;
}

// A layer shape's timed sizes and what timing chose for each.
struct timed_size {
	int H, W;
	cudnnConvolutionFwdAlgo_t algo;
	cudnnMathType_t math;
};
typedef std::tuple<int, int, int, int, int, int, int> layer_key;
std::map<layer_key, std::vector<timed_size>> &timed_sizes =
    *new std::map<layer_key, std::vector<timed_size>>; // as lt_plans

std::vector<timed_size> &sizes_of(const tk_cuda_conv *c)
{
	return timed_sizes[layer_key(c->ld, c->OC, c->K, c->stride, c->pad, c->bf,
				     (int)tk_cuda_precision())];
}

bool fp32_only()
{
	return tk_cuda_precision() == TK_FP32;
}

// Algorithm a with math type m for p's size, if cuDNN takes it there
// within the workspace bound.
bool take(dnn_plan &p, cudnnHandle_t h, cudnnConvolutionFwdAlgo_t a,
	  cudnnMathType_t m)
{
	size_t work = 0;
	if (cudnnSetConvolutionMathType(p.conv, m) != CUDNN_STATUS_SUCCESS ||
	    cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, a,
						    &work) != CUDNN_STATUS_SUCCESS ||
	    work > tk::workspace_limit())
		return false;
	p.algo = a;
	p.math = m;
	p.work = work;
	p.ok = true;
	return true;
}

// The first of cuDNN's answers (fastest first) that ran, fits the bound
// and keeps fp32 off the tensor cores: timed (cudnnFind) or from its
// heuristics.
bool search(dnn_plan &p, cudnnHandle_t h, bool timed)
{
	cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
	int n = 0;
	// cuDNN tries the default math as well: fp32 keeps FMA only.
	CUDNN_CHECK(cudnnSetConvolutionMathType(
	    p.conv, fp32_only() ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
	cudnnStatus_t st =
	    timed ? cudnnFindConvolutionForwardAlgorithm(
			h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r)
		  : cudnnGetConvolutionForwardAlgorithm_v7(
			h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, r);
	if (st != CUDNN_STATUS_SUCCESS)
		n = 0;
	for (int i = 0; i < n; i++)
		if (r[i].status == CUDNN_STATUS_SUCCESS &&
		    (!fp32_only() || r[i].mathType == CUDNN_FMA_MATH) &&
		    take(p, h, r[i].algo, r[i].mathType))
			return true;
	return false;
}

// p's algorithm for H x W, by the search mode; borrow: a near size's may
// be taken.
void choose(dnn_plan &p, std::vector<timed_size> &sizes, int H, int W,
	    bool borrow, cudnnHandle_t h)
{
	int mode = search_mode();
	p.ok = p.borrowed = false;
	if (mode == SEARCH_NEAR && borrow && !sizes.empty()) {
		const timed_size *best = nullptr;
		double bd = 0;
		for (const timed_size &t : sizes) {
			double d = std::max(std::fabs(std::log((double)H / t.H)),
					    std::fabs(std::log((double)W / t.W)));
			if (!best || d < bd)
				best = &t, bd = d;
		}
		if ((bd <= std::log(NEAR_RATIO) || sizes.size() >= (size_t)NEAR_MAX) &&
		    take(p, h, best->algo, best->math)) {
			p.borrowed = true;
			return;
		}
	}
	// Timed: in near mode the first NEAR_MAX sizes, and a size whose
	// lent algorithm cuDNN refused (!borrow).
	if (mode == SEARCH_TIME ||
	    (mode == SEARCH_NEAR && (!borrow || sizes.size() < (size_t)NEAR_MAX))) {
		if (search(p, h, true)) {
			sizes.push_back({H, W, p.algo, p.math});
			return;
		}
	}
	search(p, h, false);
}

dnn_plan *dnn_get(const tk_cuda_conv *c, int H, int W, cudaStream_t s)
{
	dnn_key key(c->ld, H, W, c->OC, c->K * 16 + c->stride, c->pad, c->bf,
		    (int)tk_cuda_precision());
	auto it = dnn_plans.find(key);
	if (it != dnn_plans.end())
		return it->second.ok ? &it->second : nullptr;
	dnn_plan &p = dnn_plans[key];
	int oh = conv2d_out_size(H, c->K, c->stride, c->pad);
	int ow = conv2d_out_size(W, c->K, c->stride, c->pad);
	cudnnDataType_t dt = c->bf ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.y));
	CUDNN_CHECK(cudnnCreateFilterDescriptor(&p.w));
	CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p.conv));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NHWC, dt, 1, c->ld,
					       H, W));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y, CUDNN_TENSOR_NHWC, dt, 1, c->OC,
					       oh, ow));
	CUDNN_CHECK(cudnnSetFilter4dDescriptor(p.w, dt, CUDNN_TENSOR_NHWC, c->OC,
					       c->ld, c->K, c->K));
	CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
	    p.conv, c->pad, c->pad, c->stride, c->stride, 1, 1,
	    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
	choose(p, sizes_of(c), H, W, true, tk::dnn(s));
	return p.ok ? &p : nullptr;
}

bool run_dnn(const tk_cuda_conv *c, void *out, const void *in, const void *res,
	     int relu, int H, int W, cudaStream_t s)
{
	dnn_plan *p = dnn_get(c, H, W, s);
	if (!p)
		return false;
	int oh = conv2d_out_size(H, c->K, c->stride, c->pad);
	int ow = conv2d_out_size(W, c->K, c->stride, c->pad);
	size_t n = (size_t)oh * ow * c->OC, es = c->bf ? 2 : 4;
	if (res && res != out)
		CUDA_CHECK(cudaMemcpyAsync(out, res, n * es, cudaMemcpyDeviceToDevice, s));
	float one = 1.0f, beta = res ? 1.0f : 0.0f;
	cudnnStatus_t st;
	for (;;) {
		void *ws = p->work ? tk::workspace(p->work) : nullptr;
		st = cudnnConvolutionForward(tk::dnn(s), &one, p->x, in, p->w, c->w,
					     p->conv, p->algo, ws, p->work, &beta,
					     p->y, out);
		if (!tk::dnn_refused(st))
			break;
		// A near size's algorithm refused here: this size's own
		// search, once; a refused search's, the direct kernel (which
		// overwrites out), remembered.
		if (!p->borrowed) {
			p->ok = false;
			return false;
		}
		choose(*p, sizes_of(c), H, W, false, tk::dnn(s));
		if (!p->ok)
			return false;
	}
	CUDNN_CHECK(st);
	if (c->bf)
		bias_relu<bf16><<<grid(n), 256, 0, s>>>((bf16 *)out, c->bias, relu,
							 c->OC, n);
	else
		bias_relu<float><<<grid(n), 256, 0, s>>>((float *)out, c->bias, relu,
							  c->OC, n);
	LAUNCH_CHECK();
	return true;
}

template <typename T, typename O>
void run_direct(const tk_cuda_conv *c, O *out, const T *in, const O *res,
		int relu, int H, int W, cudaStream_t s)
{
	int oh = conv2d_out_size(H, c->K, c->stride, c->pad);
	int ow = conv2d_out_size(W, c->K, c->stride, c->pad);
	size_t n = (size_t)oh * ow * c->OC;
	conv_direct<T, O><<<grid(n), 256, 0, s>>>(out, in, (const T *)c->w, c->bias,
						  res, relu, c->ld, H, W, c->OC,
						  c->K, c->stride, c->pad, ow, n);
	LAUNCH_CHECK();
}

} // namespace

extern "C" {

size_t tk_cuda_act_size(void)
{
	return tk_cuda_precision() == TK_BF16 ? 2 : 4;
}

struct tk_cuda_conv *conv2d_nhwc_create_cuda(const float *weight,
					     const float *bias, int C, int ld,
					     int OC, int K, int stride, int pad)
{
	search_mode(); // a wrong TK_CUDNN_SEARCH stops the tool before any image
	tk_cuda_conv *c = (tk_cuda_conv *)calloc(1, sizeof *c);
	if (!c)
		tk_die(3, "out of memory");
	c->C = C, c->ld = ld, c->OC = OC, c->K = K, c->stride = stride, c->pad = pad;
	c->bf = tk_cuda_precision() == TK_BF16;
	c->gemm_shape = K == 1 && stride == 1 && pad == 0;
	c->aligned = ld % 8 == 0 && OC % 8 == 0;
	// [OC, C, K, K] to [OC, K, K, ld], the padding channels zero.
	size_t n = (size_t)OC * K * K * ld;
	std::vector<float> h(n, 0.0f);
	for (int o = 0; o < OC; o++)
		for (int i = 0; i < C; i++)
			for (int y = 0; y < K; y++)
				for (int x = 0; x < K; x++)
					h[(((size_t)o * K + y) * K + x) * ld + i] =
					    weight[(((size_t)o * C + i) * K + y) * K + x];
	std::vector<float> hb(OC, 0.0f);
	if (bias)
		memcpy(hb.data(), bias, OC * sizeof(float));
	float *wf = (float *)tk_cuda_malloc(n * sizeof(float));
	c->bias = (float *)tk_cuda_malloc(OC * sizeof(float));
	CUDA_CHECK(cudaMemcpy(wf, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
	CUDA_CHECK(cudaMemcpy(c->bias, hb.data(), OC * sizeof(float),
			      cudaMemcpyHostToDevice));
	if (c->bf) {
		c->w = tk_cuda_malloc(n * sizeof(bf16));
		c->bias_act = tk_cuda_malloc(OC * sizeof(bf16));
		convert<bf16><<<grid(n), 256>>>((bf16 *)c->w, wf, n);
		LAUNCH_CHECK();
		convert<bf16><<<grid(OC), 256>>>((bf16 *)c->bias_act, c->bias, OC);
		LAUNCH_CHECK();
		CUDA_CHECK(cudaDeviceSynchronize());
		tk_cuda_free(wf);
	} else {
		c->w = wf;
		c->bias_act = c->bias;
	}
	// The copies from pageable memory and the conversions are done
	// before any stream uses the weights.
	CUDA_CHECK(cudaDeviceSynchronize());
	return c;
}

void conv2d_nhwc_free_cuda(struct tk_cuda_conv *c)
{
	if (!c)
		return;
	if (c->bf) {
		tk_cuda_free(c->bias_act);
	}
	tk_cuda_free(c->w);
	tk_cuda_free(c->bias);
	free(c);
}

void conv2d_nhwc_forward_cuda(const struct tk_cuda_conv *c, void *out,
			      int out_f32, const void *in, const void *residual,
			      int relu, int H, int W, tk_stream s)
{
	int oh = conv2d_out_size(H, c->K, c->stride, c->pad);
	int ow = conv2d_out_size(W, c->K, c->stride, c->pad);
	if (oh <= 0 || ow <= 0)
		return;
	bool f32 = out_f32 || !c->bf;
	int force = tk::conv_path(); // TK_CONV_PATH: for tests and benchmarks
	if (c->aligned && c->gemm_shape && force < 2 &&
	    run_lt(c, out, f32, in, residual, relu, (long)H * W, s))
		return;
	if (c->aligned && (!out_f32 || !c->bf) && force < 3 &&
	    run_dnn(c, out, in, residual, relu, H, W, s))
		return;
	if (!c->bf)
		run_direct<float, float>(c, (float *)out, (const float *)in,
					 (const float *)residual, relu, H, W, s);
	else if (out_f32)
		run_direct<bf16, float>(c, (float *)out, (const bf16 *)in,
					(const float *)residual, relu, H, W, s);
	else
		run_direct<bf16, bf16>(c, (bf16 *)out, (const bf16 *)in,
				       (const bf16 *)residual, relu, H, W, s);
}

long tk_cuda_first_nonfinite(const void *x, size_t n, int act, tk_stream s)
{
	if (!n)
		return -1;
	unsigned long long *d = (unsigned long long *)tk::workspace(sizeof *d);
	unsigned long long h = ~0ull;
	CUDA_CHECK(cudaMemcpyAsync(d, &h, sizeof h, cudaMemcpyHostToDevice, s));
	if (act && tk_cuda_precision() == TK_BF16)
		first_nonfinite<bf16><<<grid(n), 256, 0, s>>>((const bf16 *)x, n, d);
	else
		first_nonfinite<float><<<grid(n), 256, 0, s>>>((const float *)x, n, d);
	LAUNCH_CHECK();
	CUDA_CHECK(cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
	return h == ~0ull ? -1 : (long)h;
}

} // extern "C"
