// test_libs.cc - checks the emulator's cuBLAS, cuBLASLt and cuDNN
// (tests/emu/blas.cc, dnn.cc) against direct double-precision loops on
// small random shapes, apart from kernels/cuda/.  One line per check;
// exits 1 when any fails.  The deliberate misuses print the emulator's
// "tk-emu: ..." complaint on stderr.
//
//   g++ -std=c++17 -O2 -Wall -Wextra -Werror -Itests/emu/include
//       tests/emu/test_libs.cc tests/emu/blas.cc tests/emu/dnn.cc
//       -lopenblas -o /tmp/test_libs && /tmp/test_libs
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cublasLt.h"
#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cudnn.h"

float tk_emu_round_tf32(float x); // blas.cc

static int failures;
static std::mt19937 rng(12345);

static void report(bool ok, const char *what, double err)
{
	printf("%s %s (max error %.3g)\n", ok ? "ok  " : "FAIL", what, err);
	failures += !ok;
}

static void expect(bool ok, const char *what)
{
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
	failures += !ok;
}

static std::vector<float> rand_vec(size_t n)
{
	std::uniform_real_distribution<float> u(-1.0f, 1.0f);
	std::vector<float> v(n);
	for (auto &x : v)
		x = u(rng);
	return v;
}

static float bf(float x)
{
	return __bfloat162float(__float2bfloat16(x));
}

static float round_as(float x, int r) // 0 exact, 1 TF32, 2 bf16
{
	return r == 1 ? tk_emu_round_tf32(x) : r == 2 ? bf(x) : x;
}

// Max |got - want| over the largest |want| (at least 1).
static double rel_err(const std::vector<double> &want,
		      const std::vector<double> &got)
{
	double scale = 1.0, err = 0.0;
	for (double w : want)
		scale = std::max(scale, std::fabs(w));
	for (size_t i = 0; i < want.size(); i++) {
		double e = std::fabs(got[i] - want[i]);
		err = std::max(err, e != e ? INFINITY : e);
	}
	return err / scale;
}

static float from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

// ---- TF32 and bf16 rounding, by hand ----

static void t_rounding(cublasHandle_t h)
{
	float e11 = ldexpf(1, -11), e10 = ldexpf(1, -10), e9 = ldexpf(1, -9);
	expect(tk_emu_round_tf32(1 + e11) == 1.0f, "tf32: 1+2^-11 ties to even 1");
	expect(tk_emu_round_tf32(1 + e10 + e11) == 1 + e9,
	       "tf32: 1+2^-10+2^-11 ties to even 1+2^-9");
	expect(tk_emu_round_tf32(-(1 + e11 + ldexpf(1, -20))) == -(1 + e10),
	       "tf32: -(1+2^-11+2^-20) rounds away to -(1+2^-10)");
	expect(tk_emu_round_tf32(from_bits(0x7f7fffffu)) == INFINITY,
	       "tf32: FLT_MAX rounds to inf");
	expect(std::isnan(tk_emu_round_tf32(NAN)), "tf32: NaN stays NaN");

	// 1x1x1 products: the compute type decides what the inputs become.
	float a = 1 + e10 + e11, b = 1 + e11 + ldexpf(1, -20), c = 0, one = 1,
	      zero = 0;
	struct {
		cublasComputeType_t ct;
		float want;
		const char *what;
	} cases[] = {
	    {CUBLAS_COMPUTE_32F, a * b, "gemm 32F: exact float product"},
	    {CUBLAS_COMPUTE_32F_FAST_TF32, (1 + e9) * (1 + e10),
	     "gemm FAST_TF32: (1+2^-9)(1+2^-10)"},
	    {CUBLAS_COMPUTE_32F_FAST_16BF, 1.0f, "gemm FAST_16BF: 1 x 1"},
	};
	for (auto &t : cases) {
		cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1,
						 &one, &a, CUDA_R_32F, 1, &b,
						 CUDA_R_32F, 1, &zero, &c, CUDA_R_32F,
						 1, t.ct, CUBLAS_GEMM_DEFAULT);
		cudaDeviceSynchronize(); // as read()
		expect(st == CUBLAS_STATUS_SUCCESS && c == t.want, t.what);
	}
}

// ---- cuBLAS ----

// n random values in float or bf16: f holds them (bf16-exact when bf16),
// b is the storage when bf16.
struct values {
	bool bf16;
	std::vector<float> f;
	std::vector<__nv_bfloat16> b;
	values(size_t n, bool is_bf) : bf16(is_bf), f(rand_vec(n))
	{
		if (bf16) {
			b.resize(f.size());
			for (size_t i = 0; i < f.size(); i++) {
				b[i] = __float2bfloat16(f[i]);
				f[i] = __bfloat162float(b[i]);
			}
		}
	}
	void *ptr() { return bf16 ? (void *)b.data() : (void *)f.data(); }
	double get(size_t i) const
	{
		return bf16 ? __bfloat162float(b[i]) : f[i];
	}
};

// A column-major matrix of 'rows' x 'cols' with leading dimension ld,
// in float or bf16.
struct mat : values {
	int rows, cols, ld;
	mat(int r, int c, int l, bool is_bf)
	    : values((size_t)l * c, is_bf), rows(r), cols(c), ld(l)
	{
	}
	cudaDataType_t type() const { return bf16 ? CUDA_R_16BF : CUDA_R_32F; }
	double at(int i, int j) const { return get(i + (size_t)j * ld); }
};

// want = alpha op(A) op(B) + beta C (+ bias, relu) in double, with the
// inputs rounded as the compute type rounds them.
static std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k,
				    double alpha, const mat &A, const mat &B,
				    double beta, const mat &C, int r,
				    const float *bias, bool relu)
{
	std::vector<double> want((size_t)m * n);
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++) {
			double s = 0;
			for (int l = 0; l < k; l++) {
				double x = round_as(ta ? A.at(l, i) : A.at(i, l), r);
				double y = round_as(tb ? B.at(j, l) : B.at(l, j), r);
				s += x * y;
			}
			double v = alpha * s + beta * C.at(i, j);
			if (bias)
				v += bias[i];
			if (relu && v < 0)
				v = 0;
			want[i + (size_t)j * m] = v;
		}
	return want;
}

// The libraries queue their arithmetic on the handle's stream, which the
// emulator runs when the host waits for it: the readers wait first.
static std::vector<double> read(const mat &C, int m, int n)
{
	cudaDeviceSynchronize();
	std::vector<double> got((size_t)m * n);
	for (int j = 0; j < n; j++)
		for (int i = 0; i < m; i++)
			got[i + (size_t)j * m] = C.at(i, j);
	return got;
}

static void t_gemm(cublasHandle_t h, bool ta, bool tb, bool in_bf, bool out_bf,
		   cublasComputeType_t ct, int r)
{
	int m = 13, n = 9, k = 21;
	mat A(ta ? k : m, ta ? m : k, (ta ? k : m) + 3, in_bf);
	mat B(tb ? n : k, tb ? k : n, (tb ? n : k) + 2, in_bf);
	mat C(m, n, m + 1, out_bf);
	float alpha = 0.75f, beta = -0.5f;
	std::vector<double> want =
	    ref_gemm(ta, tb, m, n, k, alpha, A, B, beta, C, r, nullptr, false);
	cublasStatus_t st = cublasGemmEx(
	    h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m,
	    n, k, &alpha, A.ptr(), A.type(), A.ld, B.ptr(), B.type(), B.ld, &beta,
	    C.ptr(), C.type(), C.ld, ct, CUBLAS_GEMM_DEFAULT);
	double err = st == CUBLAS_STATUS_SUCCESS ? rel_err(want, read(C, m, n))
						 : INFINITY;
	char what[128];
	snprintf(what, sizeof what, "cublasGemmEx %c%c A/B %s C %s compute %s",
		 ta ? 'T' : 'N', tb ? 'T' : 'N', in_bf ? "bf16" : "f32",
		 out_bf ? "bf16" : "f32", r == 1 ? "tf32" : r == 2 ? "bf16" : "32F");
	report(err < (out_bf ? 1e-2 : 1e-5), what, err);
}

static void t_gemm_misc(cublasHandle_t h)
{
	float one = 1, zero = 0;
	// beta 0: C is not read, NaN and all.
	mat A(4, 3, 4, false), B(3, 5, 3, false), C(4, 5, 4, false);
	for (auto &x : C.f)
		x = NAN;
	std::vector<double> want =
	    ref_gemm(false, false, 4, 5, 3, 1, A, B, 0, mat(4, 5, 4, false), 0,
		     nullptr, false);
	// (the reference's C is ignored with beta 0)
	cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 5, 3, &one, A.ptr(),
		     CUDA_R_32F, 4, B.ptr(), CUDA_R_32F, 3, &zero, C.ptr(),
		     CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	double err = rel_err(want, read(C, 4, 5));
	report(err < 1e-6, "cublasGemmEx beta 0 ignores NaN in C", err);

	// Strided batches, interleaved as attention lays heads out.
	int m = 6, n = 5, k = 4, batch = 3;
	mat SA(m, k * batch, m, false), SB(k, n * batch, k, false);
	mat SC(m * batch, n, m * batch, false);
	mat SC0 = SC;
	float alpha = 1.25f, beta = 0.5f;
	cublasStatus_t st = cublasGemmStridedBatchedEx(
	    h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, SA.ptr(), CUDA_R_32F,
	    m, (long long)m * k, SB.ptr(), CUDA_R_32F, k, (long long)k * n, &beta,
	    SC.ptr(), CUDA_R_32F, m * batch, m, batch, CUBLAS_COMPUTE_32F,
	    CUBLAS_GEMM_DEFAULT);
	err = st == CUBLAS_STATUS_SUCCESS ? 0 : INFINITY;
	cudaDeviceSynchronize(); // as read()
	for (int b = 0; b < batch; b++) {
		std::vector<double> w((size_t)m * n), g((size_t)m * n);
		for (int j = 0; j < n; j++)
			for (int i = 0; i < m; i++) {
				double s = 0;
				for (int l = 0; l < k; l++)
					s += SA.at(i, b * k + l) * SB.at(l, b * n + j);
				w[i + j * m] = alpha * s + beta * SC0.at(b * m + i, j);
				g[i + j * m] = SC.at(b * m + i, j);
			}
		err = std::max(err, rel_err(w, g));
	}
	report(err < 1e-5, "cublasGemmStridedBatchedEx 3 interleaved batches",
	       err);

	// Misuse a GPU would not report, or reports so.
	st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 5, 3, &one, A.ptr(),
			  CUDA_R_32F, 3, B.ptr(), CUDA_R_32F, 3, &zero, C.ptr(),
			  CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	expect(st == CUBLAS_STATUS_INVALID_VALUE, "cublasGemmEx lda < m refused");
	mat Ab(4, 3, 4, true), Bb(3, 5, 3, true);
	st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 5, 3, &one, Ab.ptr(),
			  CUDA_R_16BF, 4, Bb.ptr(), CUDA_R_16BF, 3, &zero, C.ptr(),
			  CUDA_R_32F, 4, CUBLAS_COMPUTE_32F_FAST_TF32,
			  CUBLAS_GEMM_DEFAULT);
	expect(st == CUBLAS_STATUS_NOT_SUPPORTED,
	       "cublasGemmEx bf16 inputs with FAST_TF32 not supported");
	st = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 3, &one, A.ptr(),
			  CUDA_R_32F, 4, B.ptr(), CUDA_R_32F, 3, &zero, A.ptr(),
			  CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
	expect(st == CUBLAS_STATUS_INVALID_VALUE, "cublasGemmEx C == A refused");
	st = cublasGemmStridedBatchedEx(
	    h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, SA.ptr(), CUDA_R_32F,
	    m, (long long)m * k, SB.ptr(), CUDA_R_32F, k, (long long)k * n, &beta,
	    SC.ptr(), CUDA_R_32F, m * batch, m - 1, batch, CUBLAS_COMPUTE_32F,
	    CUBLAS_GEMM_DEFAULT);
	expect(st == CUBLAS_STATUS_INVALID_VALUE,
	       "cublasGemmStridedBatchedEx overlapping C batches refused");
}

// ---- cuBLASLt ----

struct lt {
	cublasLtMatmulDesc_t op = nullptr;
	cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
	~lt()
	{
		cublasLtMatmulDescDestroy(op);
		cublasLtMatrixLayoutDestroy(a);
		cublasLtMatrixLayoutDestroy(b);
		cublasLtMatrixLayoutDestroy(c);
	}
};

static cublasStatus_t lt_setup(lt &p, cublasLtHandle_t h, cublasComputeType_t ct,
			       bool ta, bool tb, cublasLtEpilogue_t epi,
			       const mat &A, const mat &B, const mat &C,
			       cublasLtMatmulAlgo_t *algo)
{
	cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasOperation_t ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
	cublasLtMatmulDescCreate(&p.op, ct, CUDA_R_32F);
	cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &oa,
				       sizeof oa);
	cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &ob,
				       sizeof ob);
	cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
				       sizeof epi);
	cublasLtMatrixLayoutCreate(&p.a, A.type(), A.rows, A.cols, A.ld);
	cublasLtMatrixLayoutCreate(&p.b, B.type(), B.rows, B.cols, B.ld);
	cublasLtMatrixLayoutCreate(&p.c, C.type(), C.rows, C.cols, C.ld);
	cublasLtMatmulPreference_t pref;
	size_t ws = 1 << 20;
	cublasLtMatmulPreferenceCreate(&pref);
	cublasLtMatmulPreferenceSetAttribute(
	    pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
	cublasLtMatmulHeuristicResult_t res;
	int found = 0;
	cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
	    h, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
	cublasLtMatmulPreferenceDestroy(pref);
	if (st == CUBLAS_STATUS_SUCCESS && (found != 1 || res.state))
		st = CUBLAS_STATUS_NOT_SUPPORTED;
	*algo = res.algo;
	return st;
}

// D = relu?(alpha op(A) op(B) + beta C + bias) with D in C's place (in
// place) or apart.
static void t_lt(cublasLtHandle_t h, bool ta, bool tb, bool in_bf, bool out_bf,
		 cublasLtEpilogue_t epi, bool in_place, cublasComputeType_t ct,
		 int r)
{
	int m = 16, n = 11, k = 24;
	mat A(ta ? k : m, ta ? m : k, ta ? k : m, in_bf);
	mat B(tb ? n : k, tb ? k : n, tb ? n : k, in_bf);
	mat C(m, n, m, out_bf), D(m, n, m, out_bf);
	std::vector<float> bias = rand_vec(m);
	std::vector<__nv_bfloat16> bias_b(m);
	for (int i = 0; i < m; i++) {
		bias_b[i] = __float2bfloat16(bias[i]);
		if (out_bf)
			bias[i] = __bfloat162float(bias_b[i]);
	}
	bool has_bias = epi == CUBLASLT_EPILOGUE_BIAS ||
			epi == CUBLASLT_EPILOGUE_RELU_BIAS;
	bool relu = epi == CUBLASLT_EPILOGUE_RELU ||
		    epi == CUBLASLT_EPILOGUE_RELU_BIAS;
	float alpha = 1.5f, beta = 0.5f;
	std::vector<double> want = ref_gemm(ta, tb, m, n, k, alpha, A, B, beta, C,
					    r, has_bias ? bias.data() : nullptr,
					    relu);
	lt p;
	cublasLtMatmulAlgo_t algo;
	cublasStatus_t st = lt_setup(p, h, ct, ta, tb, epi, A, B, C, &algo);
	const void *bp = out_bf ? (const void *)bias_b.data()
				: (const void *)bias.data();
	if (st == CUBLAS_STATUS_SUCCESS && has_bias)
		st = cublasLtMatmulDescSetAttribute(
		    p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
	mat &out = in_place ? C : D;
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmul(h, p.op, &alpha, A.ptr(), p.a, B.ptr(), p.b,
				    &beta, C.ptr(), p.c, out.ptr(), p.c, &algo,
				    nullptr, 0, nullptr);
	double err = st == CUBLAS_STATUS_SUCCESS ? rel_err(want, read(out, m, n))
						 : INFINITY;
	static const char *epis[] = {"", "DEFAULT", "RELU", "", "BIAS", "", "RELU_BIAS"};
	char what[160];
	snprintf(what, sizeof what,
		 "cublasLtMatmul %c%c A/B %s D %s %s%s compute %s", ta ? 'T' : 'N',
		 tb ? 'T' : 'N', in_bf ? "bf16" : "f32", out_bf ? "bf16" : "f32",
		 epis[epi], in_place ? " in place" : "",
		 r == 1 ? "tf32" : r == 2 ? "bf16" : "32F");
	report(err < (out_bf ? 1e-2 : 1e-5), what, err);
}

static void t_lt_misuse(cublasLtHandle_t h)
{
	int m = 16, n = 8, k = 8;
	mat A(m, k, m, false), B(k, n, k, false), C(m, n, m, false);
	lt p;
	cublasLtMatmulAlgo_t algo;
	float one = 1, zero = 0;
	lt_setup(p, h, CUBLAS_COMPUTE_32F, false, false, CUBLASLT_EPILOGUE_BIAS, A,
		 B, C, &algo);
	cublasStatus_t st = cublasLtMatmul(h, p.op, &one, A.ptr(), p.a, B.ptr(),
					   p.b, &zero, C.ptr(), p.c, C.ptr(), p.c,
					   &algo, nullptr, 0, nullptr);
	expect(st == CUBLAS_STATUS_INVALID_VALUE,
	       "cublasLtMatmul BIAS epilogue without a bias pointer refused");
	const float *bias = C.f.data();
	cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
				       &bias, sizeof bias);
	st = cublasLtMatmul(h, p.op, &one, A.ptr(), p.a, B.ptr(), p.b, &zero,
			    C.ptr(), p.c, C.ptr(), p.c, &algo, nullptr, 0, nullptr);
	expect(st == CUBLAS_STATUS_INVALID_VALUE,
	       "cublasLtMatmul bias inside D refused");
	bias = A.f.data();
	cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
				       &bias, sizeof bias);
	st = cublasLtMatmul(h, p.op, &one, A.f.data() + 1, p.a, B.ptr(), p.b,
			    &zero, C.ptr(), p.c, C.ptr(), p.c, &algo, nullptr, 0,
			    nullptr);
	expect(st == CUBLAS_STATUS_NOT_SUPPORTED,
	       "cublasLtMatmul A 4 bytes off alignment not supported");

	lt q;
	mat Bw(k + 1, n, k + 1, false);
	st = lt_setup(q, h, CUBLAS_COMPUTE_32F, false, false,
		      CUBLASLT_EPILOGUE_DEFAULT, A, Bw, C, &algo);
	expect(st == CUBLAS_STATUS_INVALID_VALUE,
	       "cublasLtMatmulAlgoGetHeuristic k mismatch refused");
}

// ---- cuDNN ----

struct shape {
	int N, C, H, W, K, R, S, ph, pw, u, v, dh, dw;
	int OH() const { return (H + 2 * ph - ((R - 1) * dh + 1)) / u + 1; }
	int OW() const { return (W + 2 * pw - ((S - 1) * dw + 1)) / v + 1; }
};

static size_t t_index(bool nhwc, int C, int H, int W, int n, int c, int h, int w)
{
	return nhwc ? (((size_t)n * H + h) * W + w) * C + c
		    : (((size_t)n * C + c) * H + h) * W + w;
}

static size_t f_index(bool nhwc, int C, int R, int S, int k, int c, int r, int s)
{
	return nhwc ? (((size_t)k * R + r) * S + s) * C + c
		    : (((size_t)k * C + c) * R + r) * S + s;
}

// A 4-D tensor in the format asked, float or bf16.
struct tensor : values {
	bool nhwc;
	int n, c, h, w;
	tensor(bool fmt, bool is_bf, int n_, int c_, int h_, int w_)
	    : values((size_t)n_ * c_ * h_ * w_, is_bf), nhwc(fmt), n(n_), c(c_),
	      h(h_), w(w_)
	{
	}
	// (n, c, h, w) of a tensor, or (k, c, r, s) of a filter
	double t(int i, int j, int y, int x) const
	{
		return get(t_index(nhwc, c, h, w, i, j, y, x));
	}
	double filt(int k, int j, int r, int s) const
	{
		return get(f_index(nhwc, c, h, w, k, j, r, s));
	}
	cudnnDataType_t type() const
	{
		return bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
	}
	cudnnTensorFormat_t format() const
	{
		return nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
	}
};

// The input pixel a tap reads, false in the padding.
static bool tap(const shape &s, int oy, int ox, int r, int q, int *iy, int *ix)
{
	*iy = oy * s.u - s.ph + r * s.dh;
	*ix = ox * s.v - s.pw + q * s.dw;
	return *iy >= 0 && *iy < s.H && *ix >= 0 && *ix < s.W;
}

struct dnn {
	cudnnTensorDescriptor_t x, y, b;
	cudnnFilterDescriptor_t w;
	cudnnConvolutionDescriptor_t conv;
	cudnnActivationDescriptor_t relu;
	dnn(const shape &s, const tensor &X, const tensor &Wt, cudnnMathType_t m)
	{
		cudnnCreateTensorDescriptor(&x);
		cudnnCreateTensorDescriptor(&y);
		cudnnCreateTensorDescriptor(&b);
		cudnnCreateFilterDescriptor(&w);
		cudnnCreateConvolutionDescriptor(&conv);
		cudnnCreateActivationDescriptor(&relu);
		cudnnSetTensor4dDescriptor(x, X.format(), X.type(), s.N, s.C, s.H,
					   s.W);
		cudnnSetTensor4dDescriptor(y, X.format(), X.type(), s.N, s.K, s.OH(),
					   s.OW());
		cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NCHW, X.type(), 1, s.K, 1,
					   1);
		cudnnSetFilter4dDescriptor(w, Wt.type(), Wt.format(), s.K, s.C, s.R,
					   s.S);
		cudnnSetConvolution2dDescriptor(conv, s.ph, s.pw, s.u, s.v, s.dh,
						s.dw, CUDNN_CROSS_CORRELATION,
						CUDNN_DATA_FLOAT);
		cudnnSetConvolutionMathType(conv, m);
		cudnnSetActivationDescriptor(relu, CUDNN_ACTIVATION_RELU,
					     CUDNN_NOT_PROPAGATE_NAN, 0.0);
	}
	~dnn()
	{
		cudnnDestroyTensorDescriptor(x);
		cudnnDestroyTensorDescriptor(y);
		cudnnDestroyTensorDescriptor(b);
		cudnnDestroyFilterDescriptor(w);
		cudnnDestroyConvolutionDescriptor(conv);
		cudnnDestroyActivationDescriptor(relu);
	}
};

// Calls f(n, k, oy, ox, c, r, q, iy, ix) for every product of the
// convolution: output (n, k, oy, ox), input (n, c, iy, ix), filter
// (k, c, r, q); taps in the padding are left out.
template <typename F> static void each_tap(const shape &s, F f)
{
	for (int n = 0; n < s.N; n++)
		for (int k = 0; k < s.K; k++)
			for (int oy = 0; oy < s.OH(); oy++)
				for (int ox = 0; ox < s.OW(); ox++)
					for (int c = 0; c < s.C; c++)
						for (int r = 0; r < s.R; r++)
							for (int q = 0; q < s.S; q++) {
								int iy, ix;
								if (tap(s, oy, ox, r, q, &iy, &ix))
									f(n, k, oy, ox, c, r, q, iy, ix);
							}
}

// The forward convolution in double, [N, K, OH, OW].
static std::vector<double> ref_conv(const shape &s, const tensor &X,
				    const tensor &Wt, int r)
{
	std::vector<double> y((size_t)s.N * s.K * s.OH() * s.OW());
	each_tap(s, [&](int n, int k, int oy, int ox, int c, int a, int q,
			int iy, int ix) {
		y[(((size_t)n * s.K + k) * s.OH() + oy) * s.OW() + ox] +=
		    round_as(X.t(n, c, iy, ix), r) * round_as(Wt.filt(k, c, a, q), r);
	});
	return y;
}

// What a tensor of [N, C, H, W] logical order holds, as doubles.
static std::vector<double> logical(const tensor &T)
{
	cudaDeviceSynchronize(); // as read()
	std::vector<double> v;
	for (int n = 0; n < T.n; n++)
		for (int c = 0; c < T.c; c++)
			for (int y = 0; y < T.h; y++)
				for (int x = 0; x < T.w; x++)
					v.push_back(T.t(n, c, y, x));
	return v;
}

static void t_conv(const char *name, const shape &s, bool nhwc, bool fnhwc,
		   bool bf16, cudnnMathType_t math)
{
	cudnnHandle_t h;
	cudnnCreate(&h);
	int r = !bf16 && math != CUDNN_FMA_MATH ? 1 : 0;
	double tol = bf16 ? 1e-2 : 1e-5;
	tensor X(nhwc, bf16, s.N, s.C, s.H, s.W);
	tensor Wt(fnhwc, bf16, s.K, s.C, s.R, s.S);
	tensor Y(nhwc, bf16, s.N, s.K, s.OH(), s.OW());
	tensor Z(nhwc, bf16, s.N, s.K, s.OH(), s.OW());
	tensor Bias(false, bf16, 1, s.K, 1, 1);
	dnn d(s, X, Wt, math);
	char what[200];
	const char *how = bf16 ? "bf16" : r ? "f32 tf32" : "f32 fma";
	std::vector<double> conv = ref_conv(s, X, Wt, r);
	std::vector<double> y0 = logical(Y), z = logical(Z);
	size_t P = (size_t)s.OH() * s.OW();

	// Forward, y = alpha conv + beta y.
	float alpha = 0.5f, beta = 0.25f;
	std::vector<double> want(conv.size());
	for (size_t i = 0; i < conv.size(); i++)
		want[i] = alpha * conv[i] + beta * y0[i];
	cudnnConvolutionFwdAlgoPerf_t perf;
	int found = 0;
	cudnnStatus_t st = cudnnFindConvolutionForwardAlgorithm(
	    h, d.x, d.w, d.conv, d.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &found,
	    &perf);
	expect(st == CUDNN_STATUS_SUCCESS && found == 1 && perf.mathType == math &&
		   perf.memory == 0,
	       "cudnnFindConvolutionForwardAlgorithm: one, math type kept");
	st = cudnnConvolutionForward(h, &alpha, d.x, X.ptr(), d.w, Wt.ptr(),
				     d.conv, perf.algo, nullptr, 0, &beta, d.y,
				     Y.ptr());
	double err = st ? INFINITY : rel_err(want, logical(Y));
	snprintf(what, sizeof what, "cudnnConvolutionForward %s %s", name, how);
	report(err < tol, what, err);

	// Fused, y = relu(alpha1 conv + alpha2 z + bias).
	float a1 = 1.5f, a2 = 0.5f;
	for (size_t i = 0; i < conv.size(); i++) {
		double v = a1 * conv[i] + a2 * z[i] + Bias.get(i / P % s.K);
		want[i] = v > 0 ? v : 0;
	}
	st = cudnnConvolutionBiasActivationForward(
	    h, &a1, d.x, X.ptr(), d.w, Wt.ptr(), d.conv, perf.algo, nullptr, 0,
	    &a2, d.y, Z.ptr(), d.b, Bias.ptr(), d.relu, d.y, Y.ptr());
	err = st ? INFINITY : rel_err(want, logical(Y));
	snprintf(what, sizeof what, "cudnnConvolutionBiasActivationForward %s %s",
		 name, how);
	report(err < tol, what, err);

	// Backward data, dx = alpha conv^T(dy, w) + beta dx.
	tensor DX(nhwc, bf16, s.N, s.C, s.H, s.W);
	std::vector<double> dx = logical(DX), dy = logical(Z);
	for (auto &v : dx)
		v *= beta;
	each_tap(s, [&](int n, int k, int oy, int ox, int c, int a, int q,
			int iy, int ix) {
		double g = round_as(Z.t(n, k, oy, ox), r);
		dx[(((size_t)n * s.C + c) * s.H + iy) * s.W + ix] +=
		    alpha * g * round_as(Wt.filt(k, c, a, q), r);
	});
	st = cudnnConvolutionBackwardData(h, &alpha, d.w, Wt.ptr(), d.y, Z.ptr(),
					  d.conv, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
					  nullptr, 0, &beta, d.x, DX.ptr());
	err = st ? INFINITY : rel_err(dx, logical(DX));
	snprintf(what, sizeof what, "cudnnConvolutionBackwardData %s %s", name, how);
	report(err < tol, what, err);

	// Backward filter, dw = alpha sum x dy + beta dw.
	tensor DW(fnhwc, bf16, s.K, s.C, s.R, s.S);
	std::vector<double> dw = logical(DW);
	for (auto &v : dw)
		v *= beta;
	each_tap(s, [&](int n, int k, int oy, int ox, int c, int a, int q,
			int iy, int ix) {
		dw[(((size_t)k * s.C + c) * s.R + a) * s.S + q] +=
		    alpha * round_as(Z.t(n, k, oy, ox), r) *
		    round_as(X.t(n, c, iy, ix), r);
	});
	st = cudnnConvolutionBackwardFilter(
	    h, &alpha, d.x, X.ptr(), d.y, Z.ptr(), d.conv,
	    CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, nullptr, 0, &beta, d.w, DW.ptr());
	err = st ? INFINITY : rel_err(dw, logical(DW));
	snprintf(what, sizeof what, "cudnnConvolutionBackwardFilter %s %s", name,
		 how);
	report(err < tol, what, err);

	// Backward bias, db = alpha sum dy + beta db.
	tensor DB(false, bf16, 1, s.K, 1, 1);
	std::vector<double> db(s.K);
	for (int k = 0; k < s.K; k++) {
		double sum = 0;
		for (int n = 0; n < s.N; n++)
			for (size_t p = 0; p < P; p++)
				sum += Z.t(n, k, p / s.OW(), p % s.OW());
		db[k] = alpha * sum + beta * DB.get(k);
	}
	st = cudnnConvolutionBackwardBias(h, &alpha, d.y, Z.ptr(), &beta, d.b,
					  DB.ptr());
	err = st ? INFINITY : rel_err(db, logical(DB));
	snprintf(what, sizeof what, "cudnnConvolutionBackwardBias %s %s", name, how);
	report(err < tol, what, err);
	cudnnDestroy(h);
}

static void t_conv_misc()
{
	cudnnHandle_t h;
	cudnnCreate(&h);
	shape s{1, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1};
	tensor X(false, false, 1, 3, 6, 6), Wt(false, false, 4, 3, 3, 3);
	tensor Y(false, false, 1, 4, 6, 6);
	dnn d(s, X, Wt, CUDNN_FMA_MATH);
	float one = 1, zero = 0;

	// beta 0 and alpha2 0: y and z are not read, NaN and all.
	for (auto &v : Y.f)
		v = NAN;
	cudnnStatus_t st = cudnnConvolutionForward(
	    h, &one, d.x, X.ptr(), d.w, Wt.ptr(), d.conv,
	    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
	    Y.ptr());
	cudaDeviceSynchronize(); // as read()
	bool finite = st == CUDNN_STATUS_SUCCESS;
	for (float v : Y.f)
		finite &= std::isfinite(v);
	expect(finite, "cudnnConvolutionForward beta 0 ignores NaN in y");
	for (auto &v : Y.f)
		v = NAN;
	tensor Bias(false, false, 1, 4, 1, 1);
	st = cudnnConvolutionBiasActivationForward(
	    h, &one, d.x, X.ptr(), d.w, Wt.ptr(), d.conv,
	    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
	    Y.ptr(), d.b, Bias.ptr(), d.relu, d.y, Y.ptr());
	cudaDeviceSynchronize();
	finite = st == CUDNN_STATUS_SUCCESS;
	for (float v : Y.f)
		finite &= std::isfinite(v);
	expect(finite, "cudnnConvolutionBiasActivationForward alpha2 0, z = y "
		       "ignores NaN in z");

	// Shapes cuDNN refuses.
	cudnnTensorDescriptor_t bad;
	cudnnCreateTensorDescriptor(&bad);
	cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 4,
				   5, 6);
	st = cudnnConvolutionForward(h, &one, d.x, X.ptr(), d.w, Wt.ptr(), d.conv,
				     CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
				     nullptr, 0, &zero, bad, Y.ptr());
	expect(st == CUDNN_STATUS_BAD_PARAM,
	       "cudnnConvolutionForward y 1x4x5x6 for a 1x4x6x6 result refused");
	cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 2,
				   6, 6);
	st = cudnnConvolutionForward(h, &one, bad, X.ptr(), d.w, Wt.ptr(), d.conv,
				     CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
				     nullptr, 0, &zero, d.y, Y.ptr());
	expect(st == CUDNN_STATUS_BAD_PARAM,
	       "cudnnConvolutionForward x with 2 channels for a 3-channel filter "
	       "refused");
	cudnnSetTensor4dDescriptor(bad, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 3,
				   1, 1);
	st = cudnnConvolutionBiasActivationForward(
	    h, &one, d.x, X.ptr(), d.w, Wt.ptr(), d.conv,
	    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, d.y,
	    Y.ptr(), bad, Bias.ptr(), d.relu, d.y, Y.ptr());
	expect(st == CUDNN_STATUS_NOT_SUPPORTED,
	       "cudnnConvolutionBiasActivationForward 3 biases for 4 channels "
	       "refused");
	st = cudnnConvolutionBackwardBias(h, &one, d.y, Y.ptr(), &zero, bad,
					  Bias.ptr());
	expect(st == CUDNN_STATUS_BAD_PARAM,
	       "cudnnConvolutionBackwardBias 3 biases for 4 channels refused");
	st = cudnnConvolutionForward(h, &one, d.x, X.ptr(), d.w, Wt.ptr(), d.conv,
				     CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
				     nullptr, 0, &zero, d.y, X.ptr());
	expect(st == CUDNN_STATUS_BAD_PARAM, "cudnnConvolutionForward y == x refused");
	expect(cudnnSetConvolution2dDescriptor(d.conv, 1, 1, 0, 1, 1, 1,
					       CUDNN_CROSS_CORRELATION,
					       CUDNN_DATA_FLOAT) ==
		   CUDNN_STATUS_BAD_PARAM,
	       "cudnnSetConvolution2dDescriptor stride 0 refused");
	cudnnDestroyTensorDescriptor(bad);
	cudnnDestroy(h);
}

int main(void)
{
	setvbuf(stdout, nullptr, _IOLBF, 0); // in order with the emulator's stderr
	cublasHandle_t h;
	cublasLtHandle_t lth;
	cublasCreate(&h);
	cublasLtCreate(&lth);

	t_rounding(h);
	for (int t = 0; t < 4; t++)
		t_gemm(h, t & 1, t & 2, false, false, CUBLAS_COMPUTE_32F, 0);
	t_gemm(h, true, false, false, false, CUBLAS_COMPUTE_32F_FAST_TF32, 1);
	t_gemm(h, false, true, false, false, CUBLAS_COMPUTE_32F_FAST_16BF, 2);
	t_gemm(h, false, true, true, false, CUBLAS_COMPUTE_32F, 0);
	t_gemm(h, true, false, true, true, CUBLAS_COMPUTE_32F, 0);
	t_gemm_misc(h);

	t_lt(lth, true, false, false, false, CUBLASLT_EPILOGUE_BIAS, false,
	     CUBLAS_COMPUTE_32F, 0);
	t_lt(lth, true, false, false, false, CUBLASLT_EPILOGUE_RELU_BIAS, true,
	     CUBLAS_COMPUTE_32F_FAST_TF32, 1);
	t_lt(lth, false, true, false, false, CUBLASLT_EPILOGUE_RELU, false,
	     CUBLAS_COMPUTE_32F_FAST_16BF, 2);
	t_lt(lth, true, true, false, false, CUBLASLT_EPILOGUE_DEFAULT, false,
	     CUBLAS_COMPUTE_32F, 0);
	t_lt(lth, true, false, true, false, CUBLASLT_EPILOGUE_RELU_BIAS, false,
	     CUBLAS_COMPUTE_32F, 0);
	t_lt(lth, true, false, true, true, CUBLASLT_EPILOGUE_RELU_BIAS, true,
	     CUBLAS_COMPUTE_32F, 0);
	t_lt_misuse(lth);

	// N C H W K R S ph pw u v dh dw
	shape strided{2, 3, 11, 9, 5, 3, 2, 1, 2, 2, 1, 1, 1};
	shape dilated{2, 4, 9, 10, 3, 3, 3, 2, 1, 1, 2, 2, 1};
	shape pointwise{2, 6, 5, 7, 4, 1, 1, 0, 0, 1, 1, 1, 1};
	shape point_s2{1, 5, 7, 6, 3, 1, 1, 0, 0, 2, 2, 1, 1};
	struct {
		const char *name;
		shape s;
	} shapes[] = {{"3x2 s2,1 p1,2", strided},
		      {"3x3 s1,2 p2,1 d2,1", dilated},
		      {"1x1", pointwise},
		      {"1x1 s2", point_s2}};
	for (auto &c : shapes)
		for (int nhwc = 0; nhwc < 2; nhwc++) {
			char name[96];
			snprintf(name, sizeof name, "%s %s", c.name,
				 nhwc ? "NHWC" : "NCHW");
			t_conv(name, c.s, nhwc, nhwc, false, CUDNN_FMA_MATH);
			t_conv(name, c.s, nhwc, nhwc, false, CUDNN_TENSOR_OP_MATH);
			t_conv(name, c.s, nhwc, nhwc, true, CUDNN_TENSOR_OP_MATH);
		}
	t_conv("3x2 s2,1 p1,2 NCHW x, KRSC w", strided, false, true, false,
	       CUDNN_DEFAULT_MATH);
	t_conv_misc();

	cublasLtDestroy(lth);
	cublasDestroy(h);
	printf("%s: %d failed\n", failures ? "FAIL" : "ok", failures);
	return failures != 0;
}
