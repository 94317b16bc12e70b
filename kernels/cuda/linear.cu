// linear.cu - GEMMs through cuBLAS in the precision asked for, and
// nn.Linear with its bias fused into a cuBLASLt epilogue (linear.h).
// Row-major C = A B is column-major C^T = B^T A^T: every call swaps the
// operands and the sizes.
#include <map>
#include <tuple>

#include "kernels/cuda/common.cuh"

namespace {

cublasComputeType_t compute_type()
{
	switch (tk_cuda_precision()) {
	case TK_TF32:
		return CUBLAS_COMPUTE_32F_FAST_TF32;
	case TK_BF16:
		return CUBLAS_COMPUTE_32F_FAST_16BF;
	default:
		return CUBLAS_COMPUTE_32F;
	}
}

cublasOperation_t op(int t)
{
	return t ? CUBLAS_OP_T : CUBLAS_OP_N;
}

// dbias[c] += sum over rows of dout[r, c]; grid.y splits the rows, whose
// sums go to dst (common.cuh's rows_of: dbias itself for one row).
__global__ void col_sum(float *dst, const float *dout, int N, int C,
			int rows_per)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	int r0 = blockIdx.y * rows_per, r1 = min(N, r0 + rows_per);
	float s = 0.0f;
	for (int r = r0; r < r1; r++)
		s += dout[(size_t)r * C + c];
	float *d = row_slot(dst, C, c);
	*d = gridDim.y > 1 ? s : *d + s;
}

// out[r, :] = bias (before a GEMM with beta = 1).
__global__ void bcast_rows(float *out, const float *bias, int N, int C)
{
	FOR_N(i, (size_t)N * C) out[i] = bias[i % C];
}

// cuBLASLt plans (the heuristic's first algorithm) per shape and
// precision; a shape Lt refuses is remembered and goes the plain way.
struct lt_plan {
	bool ok = false;
	cublasLtMatmulDesc_t op = nullptr;
	cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
	cublasLtMatmulAlgo_t algo;
	size_t work = 0;
};
// Never destroyed: as conv.cu's plans.
std::map<std::tuple<int, int, int, int>, lt_plan> &lt_plans =
    *new std::map<std::tuple<int, int, int, int>, lt_plan>;
const size_t LT_WORK = (size_t)32 << 20;

lt_plan *lt_get(int N, int IN, int OUT)
{
	auto key = std::make_tuple(N, IN, OUT, (int)tk_cuda_precision());
	auto it = lt_plans.find(key);
	if (it != lt_plans.end())
		return it->second.ok ? &it->second : nullptr;
	lt_plan &p = lt_plans[key];
	cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
	cublasLtMatmulPreference_t pref = nullptr;
	cublasLtMatmulHeuristicResult_t res;
	int found = 0;
	size_t ws = LT_WORK;
	// Column-major D[OUT, N] = W^T(stored [IN, OUT]) x in^T([IN, N]).
	bool ok = cublasLtMatmulDescCreate(&p.op, compute_type(), CUDA_R_32F) ==
			  CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA,
						 &ta, sizeof ta) == CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB,
						 &tb, sizeof tb) == CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE,
						 &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatrixLayoutCreate(&p.a, CUDA_R_32F, IN, OUT, IN) ==
			  CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatrixLayoutCreate(&p.b, CUDA_R_32F, IN, N, IN) ==
			  CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, OUT, N, OUT) ==
			  CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulPreferenceSetAttribute(
		      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
		      sizeof ws) == CUBLAS_STATUS_SUCCESS &&
		  cublasLtMatmulAlgoGetHeuristic(tk::blaslt(), p.op, p.a, p.b, p.c,
						 p.c, pref, 1, &res, &found) ==
			  CUBLAS_STATUS_SUCCESS &&
		  found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	if (ok) {
		p.algo = res.algo;
		p.work = res.workspaceSize;
		p.ok = true;
		return &p;
	}
	return nullptr;
}

} // namespace

extern "C" {

void gemm_cuda(int ta, int tb, int M, int N, int K, float alpha,
	       const float *A, int lda, const float *B, int ldb, float beta,
	       float *C, int ldc, tk_stream s)
{
	if (M <= 0 || N <= 0)
		return;
	CUBLAS_CHECK(cublasGemmEx(tk::blas(s), op(tb), op(ta), N, M, K, &alpha,
				  B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
				  C, CUDA_R_32F, ldc, compute_type(),
				  CUBLAS_GEMM_DEFAULT));
}

void gemm_batched_cuda(int ta, int tb, int M, int N, int K, float alpha,
		       const float *A, int lda, long long sA, const float *B,
		       int ldb, long long sB, float beta, float *C, int ldc,
		       long long sC, int batch, tk_stream s)
{
	if (M <= 0 || N <= 0 || batch <= 0)
		return;
	CUBLAS_CHECK(cublasGemmStridedBatchedEx(
	    tk::blas(s), op(tb), op(ta), N, M, K, &alpha, B, CUDA_R_32F, ldb, sB,
	    A, CUDA_R_32F, lda, sA, &beta, C, CUDA_R_32F, ldc, sC, batch,
	    compute_type(), CUBLAS_GEMM_DEFAULT));
}

void linear_forward_cuda(float *out, const float *in, const float *weight,
			 const float *bias, int N, int IN, int OUT, tk_stream s)
{
	if (N <= 0 || OUT <= 0)
		return;
	if (bias) {
		lt_plan *p = lt_get(N, IN, OUT);
		if (p) {
			float one = 1.0f, zero = 0.0f;
			void *ws = p->work ? tk::workspace(p->work) : nullptr;
			CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
			    p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
			    sizeof bias));
			cublasStatus_t st = cublasLtMatmul(
			    tk::blaslt(), p->op, &one, weight, p->a, in, p->b,
			    &zero, out, p->c, out, p->c, &p->algo, ws, p->work, s);
			if (st == CUBLAS_STATUS_SUCCESS)
				return;
			// The plan holds for the shape; these pointers'
			// alignment may not suit it: this call the plain way.
			if (st != CUBLAS_STATUS_NOT_SUPPORTED)
				CUBLAS_CHECK(st);
		}
		bcast_rows<<<tk::blocks((size_t)N * OUT, 256), 256, 0, s>>>(
		    out, bias, N, OUT);
		LAUNCH_CHECK();
	}
	gemm_cuda(0, 1, N, OUT, IN, 1.0f, in, IN, weight, IN, bias ? 1.0f : 0.0f,
		  out, OUT, s);
}

void linear_backward_cuda(float *din, float *dweight, float *dbias,
			  const float *dout, const float *in,
			  const float *weight, int N, int IN, int OUT,
			  tk_stream s)
{
	if (N <= 0)
		return;
	if (din)
		gemm_cuda(0, 0, N, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, din,
			  IN, s);
	gemm_cuda(1, 0, OUT, IN, N, 1.0f, dout, OUT, in, IN, 1.0f, dweight, IN,
		  s);
	if (dbias) {
		int rows_per = 256;
		unsigned Y = (N + rows_per - 1) / rows_per;
		float *part = tk::rows_of(dbias, Y, OUT);
		col_sum<<<dim3((OUT + 255) / 256, Y), 256, 0, s>>>(part, dout, N, OUT,
								  rows_per);
		LAUNCH_CHECK();
		tk::fold_rows(dbias, part, Y, OUT, true, s);
	}
}

} // extern "C"
