// dnn.cc (tk's CUDA emulator) - cuDNN's 2-D cross-correlation on the CPU:
// per image, the input gathered into float [H, W, C] (rounded to TF32
// when the math type lets tensor cores take floats), im2col into
// [OH*OW, R*S*C], and one OpenBLAS sgemm against the filter as
// [K, R*S*C]; backward data is the transposed product and col2im,
// backward filter the products summed over the images.  Results are
// blended as cuDNN documents (y = alpha result + beta y, y not read when
// beta is 0) and stored in the tensor's type (bf16 rounded to nearest
// even).  Descriptors are checked as cuDNN checks them; outputs that
// overlap inputs are refused (a race on a GPU).  The arithmetic is queued
// on the handle's stream.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cuda_bf16.h"
#include "cudnn.h"

float tk_emu_round_tf32(float x);          // blas.cc
bool tk_emu_refuses(const char *what);     // blas.cc

struct cudnnContext {
	cudaStream_t stream;
};
struct cudnnTensorStruct {
	bool set;
	cudnnDataType_t type;
	int n, c, h, w;
	size_t sn, sc, sh, sw; // element strides, from the format
};
struct cudnnFilterStruct {
	bool set;
	cudnnDataType_t type;
	int k, c, r, s;
	size_t sk, sc, sr, ss;
};
struct cudnnConvolutionStruct {
	bool set;
	int ph, pw, u, v, dh, dw;
	cudnnConvolutionMode_t mode;
	cudnnDataType_t compute;
	cudnnMathType_t math;
};
struct cudnnActivationStruct {
	bool set;
	cudnnActivationMode_t mode;
	cudnnNanPropagation_t nan;
};

// ---- errors: the status, and why, for cudnnGetErrorString ----

static thread_local cudnnStatus_t last_status = CUDNN_STATUS_SUCCESS;
static thread_local char last_why[256];

static const char *status_name(cudnnStatus_t s)
{
	switch (s) {
	case CUDNN_STATUS_SUCCESS:
		return "CUDNN_STATUS_SUCCESS";
	case CUDNN_STATUS_NOT_INITIALIZED:
		return "CUDNN_STATUS_NOT_INITIALIZED";
	case CUDNN_STATUS_BAD_PARAM:
		return "CUDNN_STATUS_BAD_PARAM";
	case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER:
		return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
	case CUDNN_STATUS_NOT_SUPPORTED:
		return "CUDNN_STATUS_NOT_SUPPORTED";
	case CUDNN_STATUS_NOT_SUPPORTED_SHAPE:
		return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
	}
	return "CUDNN_STATUS_UNKNOWN";
}

// A caller's error is said on stderr too: a kernel that falls back when a
// call fails would otherwise hide it.
__attribute__((format(printf, 2, 3))) static cudnnStatus_t
fail(cudnnStatus_t s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_why, sizeof last_why, fmt, ap);
	va_end(ap);
	last_status = s;
	if (CUDNN_STATUS_CATEGORY(s) != CUDNN_STATUS_NOT_SUPPORTED)
		fprintf(stderr, "tk-emu: cuDNN: %s: %s\n", status_name(s), last_why);
	return s;
}

// ---- elements ----

static size_t type_size(cudnnDataType_t t)
{
	return t == CUDNN_DATA_BFLOAT16 ? 2 : 4;
}

static float get(const void *p, cudnnDataType_t t, size_t i)
{
	if (t == CUDNN_DATA_BFLOAT16)
		return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
	return ((const float *)p)[i];
}

static void put(void *p, cudnnDataType_t t, size_t i, float v)
{
	if (t == CUDNN_DATA_BFLOAT16)
		((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
	else
		((float *)p)[i] = v;
}

static size_t at(const cudnnTensorStruct *d, int n, int c, int h, int w)
{
	return n * d->sn + c * d->sc + h * d->sh + w * d->sw;
}

static size_t count(const cudnnTensorStruct *d)
{
	return (size_t)d->n * d->c * d->h * d->w;
}

// y = alpha v + beta y, y not read when beta is 0 (it may hold NaN).
static void blend(void *y, cudnnDataType_t t, size_t i, float alpha, float v,
		  float beta)
{
	float r = alpha * v;
	if (beta != 0.0f)
		r += beta * get(y, t, i);
	put(y, t, i, r);
}

// Whether [a, a + an) and [b, b + bn) (bytes) meet.
static bool overlap(const void *a, size_t an, const void *b, size_t bn)
{
	const char *pa = (const char *)a, *pb = (const char *)b;
	return a && b && an && bn && pa < pb + bn && pb < pa + an;
}

static size_t bytes(const cudnnTensorStruct *d)
{
	return count(d) * type_size(d->type);
}

static size_t bytes(const cudnnFilterStruct *f)
{
	return (size_t)f->k * f->c * f->r * f->s * type_size(f->type);
}

// ---- the convolution's shape ----

struct geom {
	int N, C, H, W, K, R, S, OH, OW;
	int ph, pw, u, v, dh, dw;
	bool tf32; // round float inputs to TF32 (tensor cores)
	int P() const { return OH * OW; }
	int RSC() const { return R * S * C; }
	// 1x1, stride 1, no padding: the input is its own im2col.
	bool pointwise() const
	{
		return R == 1 && S == 1 && u == 1 && v == 1 && ph == 0 && pw == 0;
	}
};

// The checks cudnnConvolutionForward documents, for x (or dx), w, y (or
// dy): set descriptors of one data type, float compute, matching channel
// and image counts, a filter no larger than the padded input, and y of
// exactly the size the convolution gives.
static cudnnStatus_t check(const cudnnTensorStruct *x,
			   const cudnnFilterStruct *w,
			   const cudnnConvolutionStruct *cv,
			   const cudnnTensorStruct *y, geom *g)
{
	if (!x || !w || !cv || !y)
		return fail(CUDNN_STATUS_BAD_PARAM, "a descriptor is NULL");
	if (!x->set || !w->set || !cv->set || !y->set)
		return fail(CUDNN_STATUS_BAD_PARAM, "a descriptor was never set");
	if (x->type != w->type || x->type != y->type)
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "data types x %d, w %d, y %d differ", (int)x->type,
			    (int)w->type, (int)y->type);
	if (cv->compute != CUDNN_DATA_FLOAT)
		return fail(CUDNN_STATUS_NOT_SUPPORTED, "compute type %d",
			    (int)cv->compute);
	if (cv->mode != CUDNN_CROSS_CORRELATION)
		return fail(CUDNN_STATUS_NOT_SUPPORTED, "mode %d", (int)cv->mode);
	if (x->c != w->c)
		return fail(CUDNN_STATUS_BAD_PARAM, "x has %d channels, w %d", x->c,
			    w->c);
	int er = (w->r - 1) * cv->dh + 1, es = (w->s - 1) * cv->dw + 1;
	if (er > x->h + 2 * cv->ph || es > x->w + 2 * cv->pw)
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "filter %dx%d (dilated) larger than padded %dx%d", er,
			    es, x->h + 2 * cv->ph, x->w + 2 * cv->pw);
	*g = geom{x->n, x->c, x->h, x->w, w->k, w->r, w->s,
		  (x->h + 2 * cv->ph - er) / cv->u + 1,
		  (x->w + 2 * cv->pw - es) / cv->v + 1,
		  cv->ph, cv->pw, cv->u, cv->v, cv->dh, cv->dw,
		  x->type == CUDNN_DATA_FLOAT && cv->math != CUDNN_FMA_MATH};
	if (y->n != g->N || y->c != g->K || y->h != g->OH || y->w != g->OW)
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "y is %dx%dx%dx%d, the convolution gives %dx%dx%dx%d",
			    y->n, y->c, y->h, y->w, g->N, g->K, g->OH, g->OW);
	if ((size_t)g->P() * g->RSC() > INT_MAX)
		return fail(CUDNN_STATUS_NOT_SUPPORTED, "too large for OpenBLAS");
	return CUDNN_STATUS_SUCCESS;
}

static cudnnStatus_t check_call(cudnnHandle_t h, int algo, int algos,
				const void *a, const void *b)
{
	if (!h)
		return fail(CUDNN_STATUS_BAD_PARAM, "handle is NULL");
	if (algo < 0 || algo >= algos)
		return fail(CUDNN_STATUS_BAD_PARAM, "algo %d", algo);
	if (!a || !b)
		return fail(CUDNN_STATUS_BAD_PARAM, "alpha or beta is NULL");
	return CUDNN_STATUS_SUCCESS;
}

// ---- the arithmetic ----

// Image n of d as float [H, W, C], TF32-rounded if asked.
static void gather(std::vector<float> &out, const cudnnTensorStruct *d,
		   const void *p, int n, bool tf32)
{
	out.resize((size_t)d->h * d->w * d->c);
	for (int c = 0; c < d->c; c++)
		for (int h = 0; h < d->h; h++)
			for (int w = 0; w < d->w; w++) {
				float v = get(p, d->type, at(d, n, c, h, w));
				out[((size_t)h * d->w + w) * d->c + c] =
				    tf32 ? tk_emu_round_tf32(v) : v;
			}
}

// The filter as float [K, R, S, C], TF32-rounded if asked.
static void gather(std::vector<float> &out, const cudnnFilterStruct *f,
		   const void *p, bool tf32)
{
	out.resize((size_t)f->k * f->r * f->s * f->c);
	size_t i = 0;
	for (int k = 0; k < f->k; k++)
		for (int r = 0; r < f->r; r++)
			for (int s = 0; s < f->s; s++)
				for (int c = 0; c < f->c; c++, i++) {
					float v = get(p, f->type,
						      k * f->sk + c * f->sc +
							  r * f->sr + s * f->ss);
					out[i] = tf32 ? tk_emu_round_tf32(v) : v;
				}
}

// The input pixel that filter tap (r, s) of output pixel (oy, ox) reads;
// false in the padding.
static bool tap(const geom &g, int oy, int ox, int r, int s, int *iy, int *ix)
{
	*iy = oy * g.u - g.ph + r * g.dh;
	*ix = ox * g.v - g.pw + s * g.dw;
	return *iy >= 0 && *iy < g.H && *ix >= 0 && *ix < g.W;
}

// col[p, (r, s, c)] = x[tap(p, r, s), c], zero in the padding.
static void im2col(const float *x, const geom &g, std::vector<float> &col)
{
	col.assign((size_t)g.P() * g.RSC(), 0.0f);
	for (int oy = 0; oy < g.OH; oy++)
		for (int ox = 0; ox < g.OW; ox++)
			for (int r = 0; r < g.R; r++)
				for (int s = 0; s < g.S; s++) {
					int iy, ix;
					if (!tap(g, oy, ox, r, s, &iy, &ix))
						continue;
					float *d = &col[((size_t)oy * g.OW + ox) * g.RSC() +
							(r * g.S + s) * g.C];
					memcpy(d, x + ((size_t)iy * g.W + ix) * g.C,
					       g.C * sizeof(float));
				}
}

// x[tap(p, r, s), c] += col[p, (r, s, c)]: im2col's transpose.
static void col2im(const std::vector<float> &col, const geom &g,
		   std::vector<float> &x)
{
	x.assign((size_t)g.H * g.W * g.C, 0.0f);
	for (int oy = 0; oy < g.OH; oy++)
		for (int ox = 0; ox < g.OW; ox++)
			for (int r = 0; r < g.R; r++)
				for (int s = 0; s < g.S; s++) {
					int iy, ix;
					if (!tap(g, oy, ox, r, s, &iy, &ix))
						continue;
					const float *c = &col[((size_t)oy * g.OW + ox) *
								  g.RSC() +
							      (r * g.S + s) * g.C];
					float *d = &x[((size_t)iy * g.W + ix) * g.C];
					for (int i = 0; i < g.C; i++)
						d[i] += c[i];
				}
}

// For each image n: t = conv(x, w) as [P, K], handed to emit(n, t).
template <typename F>
static void forward(const geom &g, const cudnnTensorStruct *xd, const void *x,
		    const cudnnFilterStruct *wd, const void *w, F emit)
{
	std::vector<float> wm, xf, col, t((size_t)g.P() * g.K);
	gather(wm, wd, w, g.tf32);
	for (int n = 0; n < g.N; n++) {
		gather(xf, xd, x, n, g.tf32);
		if (!g.pointwise())
			im2col(xf.data(), g, col);
		const float *a = g.pointwise() ? xf.data() : col.data();
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.P(), g.K,
			    g.RSC(), 1.0f, a, g.RSC(), wm.data(), g.RSC(), 0.0f,
			    t.data(), g.K);
		emit(n, t);
	}
}

// The workspace any algorithm needs: none, once the shapes check out.
static cudnnStatus_t no_workspace(cudnnHandle_t h, int algo, int algos,
				  const cudnnTensorStruct *x,
				  const cudnnFilterStruct *w,
				  const cudnnConvolutionStruct *cv,
				  const cudnnTensorStruct *y, size_t *size)
{
	geom g;
	float one = 1.0f;
	cudnnStatus_t st = check_call(h, algo, algos, &one, &one);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check(x, w, cv, y, &g);
	if (st == CUDNN_STATUS_SUCCESS && !size)
		st = fail(CUDNN_STATUS_BAD_PARAM, "sizeInBytes is NULL");
	if (st == CUDNN_STATUS_SUCCESS)
		*size = 0;
	return st;
}

extern "C" {

// ---- handle, version, errors ----

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
	if (!handle)
		return fail(CUDNN_STATUS_BAD_PARAM, "handle is NULL");
	*handle = new cudnnContext{nullptr};
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
	delete handle;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream)
{
	if (!handle)
		return fail(CUDNN_STATUS_BAD_PARAM, "handle is NULL");
	handle->stream = stream;
	return CUDNN_STATUS_SUCCESS;
}

size_t cudnnGetVersion(void)
{
	return CUDNN_VERSION;
}

const char *cudnnGetErrorString(cudnnStatus_t status)
{
	static thread_local char buf[320];
	if (status != last_status || status == CUDNN_STATUS_SUCCESS)
		return status_name(status);
	snprintf(buf, sizeof buf, "%s (emulator: %s)", status_name(status),
		 last_why);
	return buf;
}

// ---- descriptors ----

// Packed 4-D tensors and filters of at most 2^31 - 1 elements, in float
// or bf16, NCHW or NHWC, as cuDNN takes them.
static cudnnStatus_t check_4d(const char *what, cudnnDataType_t type,
			      cudnnTensorFormat_t format, int n, int c, int h,
			      int w)
{
	if (n <= 0 || c <= 0 || h <= 0 || w <= 0 ||
	    (double)n * c * h * w > INT_MAX)
		return fail(CUDNN_STATUS_BAD_PARAM, "%s %dx%dx%dx%d", what, n, c,
			    h, w);
	if (format != CUDNN_TENSOR_NCHW && format != CUDNN_TENSOR_NHWC)
		return fail(CUDNN_STATUS_BAD_PARAM, "format %d", (int)format);
	if (type != CUDNN_DATA_FLOAT && type != CUDNN_DATA_BFLOAT16)
		return fail(CUDNN_STATUS_NOT_SUPPORTED, "data type %d", (int)type);
	return CUDNN_STATUS_SUCCESS;
}

// Element strides of a packed [n, c, h, w] in the format (a filter's
// [k, c, r, s]: NCHW is KCRS, NHWC is KRSC).
static void strides_4d(cudnnTensorFormat_t format, size_t c, size_t h,
		       size_t w, size_t *sn, size_t *sc, size_t *sh, size_t *sw)
{
	if (format == CUDNN_TENSOR_NCHW)
		*sw = 1, *sh = w, *sc = h * w, *sn = c * h * w;
	else
		*sc = 1, *sw = c, *sh = w * c, *sn = h * w * c;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *desc)
{
	if (!desc)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	*desc = new cudnnTensorStruct();
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc)
{
	delete desc;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d,
					 cudnnTensorFormat_t format,
					 cudnnDataType_t dataType, int n, int c,
					 int h, int w)
{
	if (!d)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	cudnnStatus_t st = check_4d("tensor", dataType, format, n, c, h, w);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	*d = cudnnTensorStruct{true, dataType, n, c, h, w, 0, 0, 0, 0};
	strides_4d(format, c, h, w, &d->sn, &d->sc, &d->sh, &d->sw);
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *desc)
{
	if (!desc)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	*desc = new cudnnFilterStruct();
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc)
{
	delete desc;
	return CUDNN_STATUS_SUCCESS;
}

// NCHW is KCRS, NHWC is KRSC.
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t f,
					 cudnnDataType_t dataType,
					 cudnnTensorFormat_t format, int k, int c,
					 int h, int w)
{
	if (!f)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	cudnnStatus_t st = check_4d("filter", dataType, format, k, c, h, w);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	*f = cudnnFilterStruct{true, dataType, k, c, h, w, 0, 0, 0, 0};
	strides_4d(format, c, h, w, &f->sk, &f->sc, &f->sr, &f->ss);
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *desc)
{
	if (!desc)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	*desc = new cudnnConvolutionStruct();
	(*desc)->math = CUDNN_DEFAULT_MATH;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc)
{
	delete desc;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(
    cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
    int dilation_h, int dilation_w, cudnnConvolutionMode_t mode,
    cudnnDataType_t computeType)
{
	if (!d)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	if (pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 ||
	    dilation_w <= 0)
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "pad %d,%d stride %d,%d dilation %d,%d", pad_h, pad_w,
			    u, v, dilation_h, dilation_w);
	if (mode != CUDNN_CROSS_CORRELATION)
		return fail(CUDNN_STATUS_BAD_PARAM, "mode %d", (int)mode);
	if (computeType != CUDNN_DATA_FLOAT && computeType != CUDNN_DATA_BFLOAT16)
		return fail(CUDNN_STATUS_BAD_PARAM, "compute type %d",
			    (int)computeType);
	d->set = true;
	d->ph = pad_h, d->pw = pad_w, d->u = u, d->v = v;
	d->dh = dilation_h, d->dw = dilation_w;
	d->mode = mode;
	d->compute = computeType;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d,
					  cudnnMathType_t mathType)
{
	if (!d)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	if (mathType != CUDNN_DEFAULT_MATH && mathType != CUDNN_TENSOR_OP_MATH &&
	    mathType != CUDNN_FMA_MATH)
		return fail(CUDNN_STATUS_BAD_PARAM, "math type %d", (int)mathType);
	d->math = mathType;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateActivationDescriptor(cudnnActivationDescriptor_t *desc)
{
	if (!desc)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	*desc = new cudnnActivationStruct();
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyActivationDescriptor(cudnnActivationDescriptor_t desc)
{
	delete desc;
	return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetActivationDescriptor(cudnnActivationDescriptor_t d,
					   cudnnActivationMode_t mode,
					   cudnnNanPropagation_t reluNanOpt,
					   double coef)
{
	(void)coef; // ReLU's has no use
	if (!d)
		return fail(CUDNN_STATUS_BAD_PARAM, "desc is NULL");
	if (mode != CUDNN_ACTIVATION_RELU ||
	    (reluNanOpt != CUDNN_NOT_PROPAGATE_NAN &&
	     reluNanOpt != CUDNN_PROPAGATE_NAN))
		return fail(CUDNN_STATUS_BAD_PARAM, "activation %d, NaN option %d",
			    (int)mode, (int)reluNanOpt);
	*d = cudnnActivationStruct{true, mode, reluNanOpt};
	return CUDNN_STATUS_SUCCESS;
}

// ---- algorithms: every one works, needs no workspace, takes no time ----

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, cudnnConvolutionFwdAlgo_t algo,
    size_t *sizeInBytes)
{
	return no_workspace(handle, algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, xDesc,
			    wDesc, convDesc, yDesc, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, cudnnConvolutionBwdDataAlgo_t algo,
    size_t *sizeInBytes)
{
	return no_workspace(handle, algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
			    dxDesc, wDesc, convDesc, dyDesc, sizeInBytes);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t *sizeInBytes)
{
	return no_workspace(handle, algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
			    xDesc, gradDesc, convDesc, dyDesc, sizeInBytes);
}

} // extern "C"

// The forward algorithm a search gives for output y: IMPLICIT_GEMM for
// an odd width, IMPLICIT_PRECOMP_GEMM for an even one, so that sizes
// differ in their algorithm as on a GPU; under TK_EMU_REFUSE=algo the
// forward convolution refuses another (as a real cuDNN may refuse the
// algorithm found for another size).
static cudnnConvolutionFwdAlgo_t fwd_algo_for(const cudnnTensorStruct *y)
{
	return y && y->w % 2 ? CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
			     : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
}

// The one result of a search: the given algorithm, with the descriptor's
// math type; the heuristics' (second given) a second one after it.
template <typename Perf, typename Algo>
static cudnnStatus_t one_result(cudnnHandle_t h, const cudnnTensorStruct *x,
				const cudnnFilterStruct *w,
				const cudnnConvolutionStruct *cv,
				const cudnnTensorStruct *y, int requested,
				int *returned, Perf *perf, Algo algo,
				int second = -1)
{
	geom g;
	if (!h || requested < 1 || !returned || !perf)
		return fail(CUDNN_STATUS_BAD_PARAM, "bad request");
	cudnnStatus_t st = check(x, w, cv, y, &g);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	memset(perf, 0, sizeof *perf);
	perf->algo = algo;
	perf->status = CUDNN_STATUS_SUCCESS;
	perf->determinism = CUDNN_DETERMINISTIC;
	perf->mathType = cv->math;
	*returned = 1;
	if (second >= 0 && requested > 1) {
		perf[1] = perf[0];
		perf[1].algo = (Algo)second;
		*returned = 2;
	}
	return CUDNN_STATUS_SUCCESS;
}

// TK_EMU_REFUSE=found: the convolutions refuse at the call (BAD_PARAM)
// the algorithm a search ranks first for the shape, as cuDNN 9.19 once
// did on an H200: the callers' replacement gets tested.  The heuristics
// give a second algorithm for that.
static bool refused_found(int algo, int first)
{
	return tk_emu_refuses("found") && algo == first;
}

// The backward filter pass's results: ALGO_0 first, which cuDNN calls
// non-deterministic (it sums the batch with atomics; so does the
// emulator's, in TK_EMU_ORDER's order), then the deterministic ALGO_1.
static cudnnStatus_t filter_results(cudnnHandle_t h, const cudnnTensorStruct *x,
				    const cudnnFilterStruct *w,
				    const cudnnConvolutionStruct *cv,
				    const cudnnTensorStruct *y, int requested,
				    int *returned,
				    cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
	cudnnStatus_t st = one_result(h, x, w, cv, y, requested, returned, perf,
				      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	perf[0].determinism = CUDNN_NON_DETERMINISTIC;
	if (requested > 1) {
		perf[1] = perf[0];
		perf[1].algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
		perf[1].determinism = CUDNN_DETERMINISTIC;
		*returned = 2;
	}
	return CUDNN_STATUS_SUCCESS;
}

extern "C" {

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnFilterDescriptor_t wDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
	tk_emu::count_search(true);
	return one_result(handle, xDesc, wDesc, convDesc, yDesc,
			  requestedAlgoCount, returnedAlgoCount, perfResults,
			  fwd_algo_for(yDesc));
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t *perfResults)
{
	tk_emu::count_search(false);
	return one_result(handle, srcDesc, filterDesc, convDesc, destDesc,
			  requestedAlgoCount, returnedAlgoCount, perfResults,
			  fwd_algo_for(destDesc),
			  fwd_algo_for(destDesc) == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
			      ? CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
			      : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
	tk_emu::count_search(true);
	return one_result(handle, dxDesc, wDesc, convDesc, dyDesc,
			  requestedAlgoCount, returnedAlgoCount, perfResults,
			  CUDNN_CONVOLUTION_BWD_DATA_ALGO_1);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t dwDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
	tk_emu::count_search(true);
	return filter_results(handle, xDesc, dwDesc, convDesc, dyDesc,
			      requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t *perfResults)
{
	tk_emu::count_search(false);
	cudnnStatus_t st =
	    one_result(handle, gradDesc, filterDesc, convDesc, diffDesc,
		       requestedAlgoCount, returnedAlgoCount, perfResults,
		       CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0);
	if (st == CUDNN_STATUS_SUCCESS && *returnedAlgoCount > 1)
		perfResults[1].determinism = CUDNN_NON_DETERMINISTIC;
	return st;
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc,
    const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount,
    int *returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t *perfResults)
{
	tk_emu::count_search(false);
	return filter_results(handle, srcDesc, gradDesc, convDesc, diffDesc,
			      requestedAlgoCount, returnedAlgoCount, perfResults);
}

// ---- the convolutions ----

cudnnStatus_t cudnnConvolutionForward(
    cudnnHandle_t handle, const void *alpha,
    const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionFwdAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *beta,
    const cudnnTensorDescriptor_t yDesc, void *y)
{
	(void)workSpace, (void)workSpaceSizeInBytes;
	if (tk_emu_refuses("dnn"))
		return CUDNN_STATUS_NOT_SUPPORTED;
	// cuDNN 9 says why in a finer code of the category
	if (tk_emu_refuses("algo") && algo != fwd_algo_for(yDesc))
		return CUDNN_STATUS_NOT_SUPPORTED_SHAPE;
	if (refused_found(algo, fwd_algo_for(yDesc)))
		return CUDNN_STATUS_BAD_PARAM;
	geom g;
	cudnnStatus_t st = check_call(handle, algo,
				      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, alpha, beta);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check(xDesc, wDesc, convDesc, yDesc, &g);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	if (!x || !w || !y)
		return fail(CUDNN_STATUS_BAD_PARAM, "x, w or y is NULL");
	if (overlap(y, bytes(yDesc), x, bytes(xDesc)) ||
	    overlap(y, bytes(yDesc), w, bytes(wDesc)))
		return fail(CUDNN_STATUS_BAD_PARAM, "y overlaps x or w");
	float a = *(const float *)alpha, b = *(const float *)beta;
	cudnnTensorStruct xd = *xDesc, yd = *yDesc;
	cudnnFilterStruct wd = *wDesc;
	tk_emu::enqueue(handle->stream, [=]() {
		forward(g, &xd, x, &wd, w, [&](int n, const std::vector<float> &t) {
			for (int p = 0; p < g.P(); p++)
				for (int k = 0; k < g.K; k++)
					blend(y, yd.type,
					      at(&yd, n, k, p / g.OW, p % g.OW), a,
					      t[(size_t)p * g.K + k], b);
		});
	});
	return CUDNN_STATUS_SUCCESS;
}

} // extern "C"

// What cudnnConvolutionBiasActivationForward adds to the forward checks:
// ReLU that does not propagate NaN, z described as y, bias 1 x K x 1 x 1
// of y's type (its table: float with float, bf16 with bf16).
static cudnnStatus_t check_fused(const cudnnTensorStruct *y,
				 const cudnnTensorStruct *z,
				 const cudnnTensorStruct *b,
				 const cudnnActivationStruct *act)
{
	if (!z || !b || !act || !z->set || !b->set || !act->set)
		return fail(CUDNN_STATUS_BAD_PARAM, "z, bias or activation unset");
	if (act->mode != CUDNN_ACTIVATION_RELU ||
	    act->nan != CUDNN_NOT_PROPAGATE_NAN)
		return fail(CUDNN_STATUS_NOT_SUPPORTED,
			    "activation %d, NaN option %d", (int)act->mode,
			    (int)act->nan);
	if (z->type != y->type || z->n != y->n || z->c != y->c || z->h != y->h ||
	    z->w != y->w || z->sc != y->sc || z->sw != y->sw)
		return fail(CUDNN_STATUS_NOT_SUPPORTED, "zDesc differs from yDesc");
	if (b->n != 1 || b->c != y->c || b->h != 1 || b->w != 1 ||
	    b->type != y->type)
		return fail(CUDNN_STATUS_NOT_SUPPORTED,
			    "bias %dx%dx%dx%d of type %d for %d channels of type %d",
			    b->n, b->c, b->h, b->w, (int)b->type, y->c,
			    (int)y->type);
	return CUDNN_STATUS_SUCCESS;
}

extern "C" {

// y = relu(alpha1 conv(x, w) + alpha2 z + bias); z not read when alpha2
// is 0, and it may be y itself (read before y is written, element by
// element).
cudnnStatus_t cudnnConvolutionBiasActivationForward(
    cudnnHandle_t handle, const void *alpha1,
    const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionFwdAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *alpha2,
    const cudnnTensorDescriptor_t zDesc, const void *z,
    const cudnnTensorDescriptor_t biasDesc, const void *bias,
    const cudnnActivationDescriptor_t activationDesc,
    const cudnnTensorDescriptor_t yDesc, void *y)
{
	(void)workSpace, (void)workSpaceSizeInBytes;
	geom g;
	cudnnStatus_t st = check_call(
	    handle, algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, alpha1, alpha2);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check(xDesc, wDesc, convDesc, yDesc, &g);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check_fused(yDesc, zDesc, biasDesc, activationDesc);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	if (!x || !w || !y || !z || !bias)
		return fail(CUDNN_STATUS_BAD_PARAM, "x, w, z, bias or y is NULL");
	size_t yb = bytes(yDesc);
	if (overlap(y, yb, x, bytes(xDesc)) || overlap(y, yb, w, bytes(wDesc)) ||
	    overlap(y, yb, bias, bytes(biasDesc)) ||
	    (z != y && overlap(y, yb, z, bytes(zDesc))))
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "y overlaps x, w, bias or (partly) z");
	float a1 = *(const float *)alpha1, a2 = *(const float *)alpha2;
	cudnnTensorStruct xd = *xDesc, yd = *yDesc;
	cudnnFilterStruct wd = *wDesc;
	cudnnDataType_t zt = zDesc->type, bt = biasDesc->type;
	tk_emu::enqueue(handle->stream, [=]() {
		forward(g, &xd, x, &wd, w, [&](int n, const std::vector<float> &t) {
			for (int p = 0; p < g.P(); p++)
				for (int k = 0; k < g.K; k++) {
					size_t i = at(&yd, n, k, p / g.OW, p % g.OW);
					float v = a1 * t[(size_t)p * g.K + k];
					if (a2 != 0.0f)
						v += a2 * get(z, zt, i);
					v += get(bias, bt, k);
					put(y, yd.type, i, v > 0.0f ? v : 0.0f);
				}
		});
	});
	return CUDNN_STATUS_SUCCESS;
}

// dx = alpha conv^T(dy, w) + beta dx: per image dcol = dy [P, K] x
// w [K, RSC], then col2im.
cudnnStatus_t cudnnConvolutionBackwardData(
    cudnnHandle_t handle, const void *alpha,
    const cudnnFilterDescriptor_t wDesc, const void *w,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionBwdDataAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *beta,
    const cudnnTensorDescriptor_t dxDesc, void *dx)
{
	(void)workSpace, (void)workSpaceSizeInBytes;
	geom g;
	if (refused_found(algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1))
		return CUDNN_STATUS_BAD_PARAM;
	cudnnStatus_t st = check_call(
	    handle, algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, alpha, beta);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check(dxDesc, wDesc, convDesc, dyDesc, &g);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	if (!w || !dy || !dx)
		return fail(CUDNN_STATUS_BAD_PARAM, "w, dy or dx is NULL");
	if (overlap(dx, bytes(dxDesc), w, bytes(wDesc)) ||
	    overlap(dx, bytes(dxDesc), dy, bytes(dyDesc)))
		return fail(CUDNN_STATUS_BAD_PARAM, "dx overlaps w or dy");
	float a = *(const float *)alpha, b = *(const float *)beta;
	cudnnFilterStruct wd = *wDesc;
	cudnnTensorStruct dyd = *dyDesc, dxd = *dxDesc;
	tk_emu::enqueue(handle->stream, [=]() {
		std::vector<float> wm, dyf, dcol((size_t)g.P() * g.RSC()), dxf;
		gather(wm, &wd, w, g.tf32);
		for (int n = 0; n < g.N; n++) {
			gather(dyf, &dyd, dy, n, g.tf32);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
				    g.P(), g.RSC(), g.K, 1.0f, dyf.data(), g.K,
				    wm.data(), g.RSC(), 0.0f, dcol.data(),
				    g.RSC());
			const float *d = dcol.data(); // [H, W, C] when pointwise
			if (!g.pointwise()) {
				col2im(dcol, g, dxf);
				d = dxf.data();
			}
			for (int h = 0; h < g.H; h++)
				for (int x = 0; x < g.W; x++)
					for (int c = 0; c < g.C; c++)
						blend(dx, dxd.type, at(&dxd, n, c, h, x), a,
						      d[((size_t)h * g.W + x) * g.C + c], b);
		}
	});
	return CUDNN_STATUS_SUCCESS;
}

// dw = alpha sum over images of dy^T [K, P] x col [P, RSC] + beta dw.
cudnnStatus_t cudnnConvolutionBackwardFilter(
    cudnnHandle_t handle, const void *alpha,
    const cudnnTensorDescriptor_t xDesc, const void *x,
    const cudnnTensorDescriptor_t dyDesc, const void *dy,
    const cudnnConvolutionDescriptor_t convDesc,
    cudnnConvolutionBwdFilterAlgo_t algo, void *workSpace,
    size_t workSpaceSizeInBytes, const void *beta,
    const cudnnFilterDescriptor_t dwDesc, void *dw)
{
	(void)workSpace, (void)workSpaceSizeInBytes;
	geom g;
	if (refused_found(algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0))
		return CUDNN_STATUS_BAD_PARAM;
	cudnnStatus_t st = check_call(
	    handle, algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, alpha, beta);
	if (st == CUDNN_STATUS_SUCCESS)
		st = check(xDesc, dwDesc, convDesc, dyDesc, &g);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	if (!x || !dy || !dw)
		return fail(CUDNN_STATUS_BAD_PARAM, "x, dy or dw is NULL");
	if (overlap(dw, bytes(dwDesc), x, bytes(xDesc)) ||
	    overlap(dw, bytes(dwDesc), dy, bytes(dyDesc)))
		return fail(CUDNN_STATUS_BAD_PARAM, "dw overlaps x or dy");
	float a = *(const float *)alpha, b = *(const float *)beta;
	cudnnTensorStruct xd = *xDesc, dyd = *dyDesc;
	cudnnFilterStruct f = *dwDesc;
	// ALGO_0 and ALGO_3 (non-deterministic in cuDNN) sum the images in
	// TK_EMU_ORDER's order, the others in theirs
	bool any_order = algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 ||
			 algo == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
	tk_emu::enqueue(handle->stream, [=]() {
		std::vector<float> xf, col, dyf, sum((size_t)g.K * g.RSC());
		bool first = true;
		auto image = [&](size_t n) {
			gather(xf, &xd, x, (int)n, g.tf32);
			gather(dyf, &dyd, dy, (int)n, g.tf32);
			if (!g.pointwise())
				im2col(xf.data(), g, col);
			const float *c = g.pointwise() ? xf.data() : col.data();
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.K,
				    g.RSC(), g.P(), 1.0f, dyf.data(), g.K, c,
				    g.RSC(), first ? 0.0f : 1.0f, sum.data(),
				    g.RSC());
			first = false;
		};
		if (any_order)
			tk_emu::visit_in_order(g.N, image);
		else
			for (int n = 0; n < g.N; n++)
				image(n);
		size_t i = 0;
		for (int k = 0; k < g.K; k++)
			for (int r = 0; r < g.R; r++)
				for (int s = 0; s < g.S; s++)
					for (int c = 0; c < g.C; c++, i++)
						blend(dw, f.type,
						      k * f.sk + c * f.sc + r * f.sr +
							  s * f.ss,
						      a, sum[i], b);
	});
	return CUDNN_STATUS_SUCCESS;
}

// db = alpha (dy summed over n, h, w) + beta db; db is 1 x K x 1 x 1 of
// dy's type.
cudnnStatus_t cudnnConvolutionBackwardBias(
    cudnnHandle_t handle, const void *alpha,
    const cudnnTensorDescriptor_t dyDesc, const void *dy, const void *beta,
    const cudnnTensorDescriptor_t dbDesc, void *db)
{
	cudnnStatus_t st = check_call(handle, 0, 1, alpha, beta);
	if (st != CUDNN_STATUS_SUCCESS)
		return st;
	if (!dyDesc || !dbDesc || !dyDesc->set || !dbDesc->set)
		return fail(CUDNN_STATUS_BAD_PARAM, "dy or db descriptor unset");
	if (dbDesc->n != 1 || dbDesc->c != dyDesc->c || dbDesc->h != 1 ||
	    dbDesc->w != 1 || dbDesc->type != dyDesc->type)
		return fail(CUDNN_STATUS_BAD_PARAM,
			    "db %dx%dx%dx%d (type %d) for dy with %d channels "
			    "(type %d)",
			    dbDesc->n, dbDesc->c, dbDesc->h, dbDesc->w,
			    (int)dbDesc->type, dyDesc->c, (int)dyDesc->type);
	if (!dy || !db)
		return fail(CUDNN_STATUS_BAD_PARAM, "dy or db is NULL");
	if (overlap(db, bytes(dbDesc), dy, bytes(dyDesc)))
		return fail(CUDNN_STATUS_BAD_PARAM, "db overlaps dy");
	float a = *(const float *)alpha, b = *(const float *)beta;
	cudnnTensorStruct d = *dyDesc, dbd = *dbDesc;
	tk_emu::enqueue(handle->stream, [=]() {
		for (int c = 0; c < d.c; c++) {
			double s = 0.0;
			for (int n = 0; n < d.n; n++)
				for (int h = 0; h < d.h; h++)
					for (int w = 0; w < d.w; w++)
						s += get(dy, d.type, at(&d, n, c, h, w));
			blend(db, dbd.type, at(&dbd, 0, c, 0, 0), a, (float)s, b);
		}
	});
	return CUDNN_STATUS_SUCCESS;
}

} // extern "C"
