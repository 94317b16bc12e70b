// blas.cc (tk's CUDA emulator) - cuBLAS and cuBLASLt on the CPU: every
// product is one OpenBLAS sgemm on float copies of the operands, rounded
// first as the compute type's tensor cores would take them; alpha, beta,
// C and the epilogue are applied in float and the result is stored in
// D's type (bf16 rounded to nearest even).  The checks are cuBLAS's own
// (sizes, leading dimensions, type combinations), plus what a GPU would
// not report but gets wrong: an output that overlaps an input, batches
// that write the same element, and cuBLASLt pointers too misaligned for
// the algorithm its heuristic offered.  The checks are made at the call;
// the arithmetic, on host memory, is queued on the call's stream.
#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cublasLt.h"
#include "cuda_bf16.h"

struct cublasContext {
	cudaStream_t stream;
};
struct cublasLtContext {
	int unused;
};
struct cublasLtMatmulDescOpaque_t {
	cublasComputeType_t compute;
	cublasOperation_t ta, tb;
	cublasLtEpilogue_t epilogue;
	const void *bias;
};
struct cublasLtMatrixLayoutOpaque_t {
	cudaDataType_t type;
	int64_t rows, cols, ld;
};
struct cublasLtMatmulPreferenceOpaque_t {
	uint64_t max_workspace;
};

// Marks an algorithm that came from the heuristic.
static const uint64_t ALGO_MAGIC = 0x746b2d656d75ull;
// The vector width the heuristic's kernels load with: its default
// preferences promise 256-byte aligned matrices, and an algorithm chosen
// on that promise fails on pointers below the width it loads.
static const uintptr_t LT_ALIGN = 16;

// ---- errors: the status, and why, for cublasGetStatusString ----

static thread_local cublasStatus_t last_status = CUBLAS_STATUS_SUCCESS;
static thread_local char last_why[256];

static const char *status_name(cublasStatus_t s)
{
	switch (s) {
	case CUBLAS_STATUS_SUCCESS:
		return "CUBLAS_STATUS_SUCCESS";
	case CUBLAS_STATUS_NOT_INITIALIZED:
		return "CUBLAS_STATUS_NOT_INITIALIZED";
	case CUBLAS_STATUS_INVALID_VALUE:
		return "CUBLAS_STATUS_INVALID_VALUE";
	case CUBLAS_STATUS_NOT_SUPPORTED:
		return "CUBLAS_STATUS_NOT_SUPPORTED";
	}
	return "CUBLAS_STATUS_UNKNOWN";
}

// A caller's error is said on stderr too: a kernel that falls back when a
// call fails would otherwise hide it.
__attribute__((format(printf, 2, 3))) static cublasStatus_t
fail(cublasStatus_t s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_why, sizeof last_why, fmt, ap);
	va_end(ap);
	last_status = s;
	if (s != CUBLAS_STATUS_NOT_SUPPORTED)
		fprintf(stderr, "tk-emu: cuBLAS: %s: %s\n", status_name(s),
			last_why);
	return s;
}

// ---- precision ----

// TK_EMU_EXACT=1: the tensor-core precisions computed in exact float
// (data stored as bf16 stays bf16), to tell a wrong code path in a
// TF32 or bf16 mode from that mode's rounding.
static bool exact()
{
	static int e = -1;
	if (e < 0) {
		const char *v = getenv("TK_EMU_EXACT");
		e = v && *v && strcmp(v, "0");
	}
	return e;
}

// TK_EMU_REFUSE=lt,dnn: cublasLtMatmul, or cudnnConvolutionForward,
// answers every call with NOT_SUPPORTED, as the real libraries may for a
// shape or alignment their plan did not foresee: the callers' other ways
// get tested.  dnn.cc asks too.
bool tk_emu_refuses(const char *what)
{
	const char *e = getenv("TK_EMU_REFUSE");
	size_t n = strlen(what);
	for (const char *p = e; p && *p; p += strcspn(p, ","), p += *p == ',')
		if (!strncmp(p, what, n) && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

// Round to nearest even keeping 10 of float's 23 mantissa bits: what a
// tensor core reads of a float under TF32.  dnn.cc uses it too.
float tk_emu_round_tf32(float x)
{
	if (exact())
		return x;
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	if ((u & 0x7f800000u) != 0x7f800000u) // finite; may round to inf
		u = (u + 0xfffu + ((u >> 13) & 1)) & ~0x1fffu;
	memcpy(&x, &u, sizeof x);
	return x;
}

enum rounding { EXACT, TF32, BF16 };

static rounding rounding_of(cublasComputeType_t c)
{
	return c == CUBLAS_COMPUTE_32F_FAST_TF32   ? TF32
	       : c == CUBLAS_COMPUTE_32F_FAST_16BF ? BF16
						   : EXACT;
}

static float round_to(float x, rounding r)
{
	if (exact())
		return x;
	if (r == TF32)
		return tk_emu_round_tf32(x);
	if (r == BF16)
		return __bfloat162float(__float2bfloat16(x));
	return x;
}

static size_t type_size(cudaDataType_t t)
{
	return t == CUDA_R_16BF ? 2 : 4;
}

static float get(const void *p, cudaDataType_t t, size_t i)
{
	if (t == CUDA_R_16BF)
		return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
	return ((const float *)p)[i];
}

static void put(void *p, cudaDataType_t t, size_t i, float v)
{
	if (t == CUDA_R_16BF)
		((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
	else
		((float *)p)[i] = v;
}

// cuBLAS's table for the 32F compute types: A and B alike; float
// throughout, or bf16 inputs (exact compute only) into bf16 or float.
static bool types_ok(cublasComputeType_t ct, cudaDataType_t a,
		     cudaDataType_t b, cudaDataType_t c)
{
	if (ct != CUBLAS_COMPUTE_32F && ct != CUBLAS_COMPUTE_32F_FAST_TF32 &&
	    ct != CUBLAS_COMPUTE_32F_FAST_16BF)
		return false;
	if (a != b)
		return false;
	if (a == CUDA_R_32F)
		return c == CUDA_R_32F;
	return a == CUDA_R_16BF && ct == CUBLAS_COMPUTE_32F &&
	       (c == CUDA_R_16BF || c == CUDA_R_32F);
}

// ---- memory footprints: (batches of) column-major matrices ----

struct footprint {
	const void *p;
	size_t es;
	int64_t rows, cols, ld, batch, stride;
};

static bool empty(const footprint &f)
{
	return !f.p || f.rows <= 0 || f.cols <= 0 || f.batch <= 0;
}

// Byte offsets of the first and past the last byte, relative to p.
static void extent(const footprint &f, int64_t *lo, int64_t *hi)
{
	int64_t s = (f.batch - 1) * f.stride;
	*lo = std::min<int64_t>(0, s) * (int64_t)f.es;
	*hi = (std::max<int64_t>(0, s) + (f.cols - 1) * f.ld + f.rows) *
	      (int64_t)f.es;
}

template <typename F> static void each(const footprint &f, F fn)
{
	for (int64_t b = 0; b < f.batch; b++)
		for (int64_t j = 0; j < f.cols; j++)
			for (int64_t i = 0; i < f.rows; i++)
				fn((b * f.stride + j * f.ld + i) * (int64_t)f.es);
}

// Whether a and b share a byte; exact (interleaved matrices with large
// leading dimensions do not overlap) but only paid when the extents meet.
static bool overlap(const footprint &a, const footprint &b)
{
	if (empty(a) || empty(b))
		return false;
	int64_t alo, ahi, blo, bhi;
	extent(a, &alo, &ahi);
	extent(b, &blo, &bhi);
	intptr_t pa = (intptr_t)a.p, pb = (intptr_t)b.p;
	intptr_t lo = std::min(pa + alo, pb + blo);
	if (pa + alo >= pb + bhi || pb + blo >= pa + ahi)
		return false;
	std::vector<char> mark(std::max(pa + ahi, pb + bhi) - lo);
	each(a, [&](int64_t o) { memset(&mark[pa - lo + o], 1, a.es); });
	bool hit = false;
	each(b, [&](int64_t o) {
		for (size_t i = 0; i < b.es; i++)
			hit |= mark[pb - lo + o + i] != 0;
	});
	return hit;
}

// Whether two batches of f write the same element.
static bool self_overlap(const footprint &f)
{
	if (empty(f) || f.batch < 2)
		return false;
	int64_t s = f.stride < 0 ? -f.stride : f.stride;
	if (s >= (f.cols - 1) * f.ld + f.rows)
		return false;
	int64_t lo, hi;
	extent(f, &lo, &hi);
	std::vector<char> mark((hi - lo) / (int64_t)f.es);
	bool hit = false;
	each(f, [&](int64_t o) {
		char &m = mark[(o - lo) / (int64_t)f.es];
		hit |= m != 0;
		m = 1;
	});
	return hit;
}

// ---- the product ----

// One operand as stored: rows x cols, column-major; trans as op() takes it.
struct operand {
	const void *p;
	cudaDataType_t type;
	int64_t rows, cols, ld;
	bool trans;
};

// The operand as floats sgemm can read: itself when that needs no
// conversion, else a packed copy in buf.
static const float *as_float(const operand &a, rounding r,
			     std::vector<float> &buf, int64_t *ld)
{
	if (a.type == CUDA_R_32F && r == EXACT) {
		*ld = a.ld;
		return (const float *)a.p;
	}
	buf.resize((size_t)a.rows * a.cols);
	for (int64_t j = 0; j < a.cols; j++)
		for (int64_t i = 0; i < a.rows; i++)
			buf[i + j * a.rows] =
			    round_to(get(a.p, a.type, i + j * a.ld), r);
	*ld = std::max<int64_t>(a.rows, 1);
	return buf.data();
}

// t = op(A) op(B), m x n, packed column-major.
static void product(const operand &a, const operand &b, int64_t m, int64_t n,
		    int64_t k, rounding r, std::vector<float> &t)
{
	t.assign((size_t)m * n, 0.0f);
	if (!m || !n || !k)
		return;
	std::vector<float> ab, bb;
	int64_t lda, ldb;
	const float *A = as_float(a, r, ab, &lda);
	const float *B = as_float(b, r, bb, &ldb);
	cblas_sgemm(CblasColMajor, a.trans ? CblasTrans : CblasNoTrans,
		    b.trans ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
		    1.0f, A, (int)lda, B, (int)ldb, 0.0f, t.data(), (int)m);
}

struct epilogue {
	const void *bias; // [m], D's type; NULL for none
	bool relu;
};

// D = relu?(alpha t + beta C + bias), C not read when beta is 0 (as
// cuBLAS: it may then hold anything, NaN included).
static void finish(const std::vector<float> &t, int64_t m, int64_t n,
		   float alpha, float beta, const void *C, cudaDataType_t ct,
		   int64_t ldc, void *D, cudaDataType_t dt, int64_t ldd,
		   epilogue e)
{
	for (int64_t j = 0; j < n; j++)
		for (int64_t i = 0; i < m; i++) {
			float v = alpha * t[i + j * m];
			if (beta != 0.0f)
				v += beta * get(C, ct, i + j * ldc);
			if (e.bias)
				v += get(e.bias, dt, i);
			if (e.relu && !(v > 0.0f))
				v = 0.0f;
			put(D, dt, i + j * ldd, v);
		}
}

static bool too_big(int64_t m, int64_t n, int64_t k)
{
	return m > INT_MAX || n > INT_MAX || k > INT_MAX;
}

// ---- cuBLAS ----

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
	if (!handle)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "handle is NULL");
	*handle = new cublasContext{nullptr};
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
	if (!handle)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	delete handle;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
	if (!handle)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	handle->stream = stream;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value)
{
	static const int version[] = {12, 0, 0};
	if (!value || (int)type < 0 || (int)type > 2)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "bad property");
	*value = version[type];
	return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
	static thread_local char buf[320];
	if (status != last_status || status == CUBLAS_STATUS_SUCCESS)
		return status_name(status);
	snprintf(buf, sizeof buf, "%s (emulator: %s)", status_name(status),
		 last_why);
	return buf;
}

} // extern "C"

// The checks cublasGemmEx documents, and the overlaps it leaves undefined.
static cublasStatus_t gemm_check(cublasHandle_t h, cublasOperation_t ta,
				 cublasOperation_t tb, int m, int n, int k,
				 const void *alpha, const void *beta,
				 const footprint &A, const footprint &B,
				 const footprint &C, cudaDataType_t at,
				 cudaDataType_t bt, cudaDataType_t ct,
				 cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
	if (!h)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	if ((ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) ||
	    (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "bad transa/transb");
	if (m < 0 || n < 0 || k < 0)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "m %d, n %d, k %d", m, n, k);
	if (A.ld < std::max<int64_t>(1, A.rows))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "lda %lld < %lld rows",
			    (long long)A.ld, (long long)A.rows);
	if (B.ld < std::max<int64_t>(1, B.rows))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "ldb %lld < %lld rows",
			    (long long)B.ld, (long long)B.rows);
	if (C.ld < std::max(1, m))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "ldc %lld < m %d",
			    (long long)C.ld, m);
	if (algo != CUBLAS_GEMM_DEFAULT)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "algo %d", (int)algo);
	if (!types_ok(comp, at, bt, ct))
		return fail(CUBLAS_STATUS_NOT_SUPPORTED,
			    "types A %d, B %d, C %d with compute type %d", (int)at,
			    (int)bt, (int)ct, (int)comp);
	if (!alpha || !beta)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "alpha or beta is NULL");
	if (m && n && (!C.p || (k && (!A.p || !B.p))))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "a matrix is NULL");
	if (overlap(C, A) || overlap(C, B))
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "C overlaps A or B (a race on the GPU)");
	if (self_overlap(C))
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "batches of C overlap (strideC %lld)",
			    (long long)C.stride);
	return CUBLAS_STATUS_SUCCESS;
}

static footprint stored(const void *p, cudaDataType_t t, cublasOperation_t op,
			int64_t rows, int64_t cols, int64_t ld, int64_t batch,
			int64_t stride)
{
	if (op == CUBLAS_OP_T)
		std::swap(rows, cols);
	return footprint{p, type_size(t), rows, cols, ld, batch, stride};
}

static operand as_operand(const footprint &f, cudaDataType_t t,
			  cublasOperation_t op, int64_t b)
{
	const char *p = (const char *)f.p + b * f.stride * (int64_t)f.es;
	return operand{p, t, f.rows, f.cols, f.ld, op == CUBLAS_OP_T};
}

extern "C" {

cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    int m, int n, int k, const void *alpha, const void *A,
    cudaDataType_t Atype, int lda, long long strideA, const void *B,
    cudaDataType_t Btype, int ldb, long long strideB, const void *beta,
    void *C, cudaDataType_t Ctype, int ldc, long long strideC,
    int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
	if (batchCount < 0)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "batchCount %d",
			    batchCount);
	footprint fa = stored(A, Atype, transa, m, k, lda, batchCount, strideA);
	footprint fb = stored(B, Btype, transb, k, n, ldb, batchCount, strideB);
	footprint fc = stored(C, Ctype, CUBLAS_OP_N, m, n, ldc, batchCount,
			      strideC);
	cublasStatus_t st =
	    gemm_check(handle, transa, transb, m, n, k, alpha, beta, fa, fb, fc,
		       Atype, Btype, Ctype, computeType, algo);
	if (st != CUBLAS_STATUS_SUCCESS)
		return st;
	if (!m || !n)
		return CUBLAS_STATUS_SUCCESS;
	float al = *(const float *)alpha, be = *(const float *)beta;
	tk_emu::enqueue(handle->stream, [=]() {
		std::vector<float> t;
		for (int b = 0; b < batchCount; b++) {
			product(as_operand(fa, Atype, transa, b),
				as_operand(fb, Btype, transb, b), m, n, k,
				rounding_of(computeType), t);
			void *c = (char *)C + b * strideC * (long long)fc.es;
			finish(t, m, n, al, be, c, Ctype, ldc, c, Ctype, ldc,
			       epilogue{nullptr, false});
		}
	});
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
			    cublasOperation_t transb, int m, int n, int k,
			    const void *alpha, const void *A,
			    cudaDataType_t Atype, int lda, const void *B,
			    cudaDataType_t Btype, int ldb, const void *beta,
			    void *C, cudaDataType_t Ctype, int ldc,
			    cublasComputeType_t computeType,
			    cublasGemmAlgo_t algo)
{
	return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k,
					  alpha, A, Atype, lda, 0, B, Btype, ldb,
					  0, beta, C, Ctype, ldc, 0, 1,
					  computeType, algo);
}

// ---- cuBLASLt ----

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
	if (!handle)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "handle is NULL");
	*handle = new cublasLtContext{0};
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
	if (!handle)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	delete handle;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc,
					cublasComputeType_t computeType,
					cudaDataType_t scaleType)
{
	if (!desc)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "desc is NULL");
	if (!types_ok(computeType, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F) ||
	    scaleType != CUDA_R_32F)
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "compute type %d with scale type %d",
			    (int)computeType, (int)scaleType);
	*desc = new cublasLtMatmulDescOpaque_t{computeType, CUBLAS_OP_N,
					       CUBLAS_OP_N,
					       CUBLASLT_EPILOGUE_DEFAULT, nullptr};
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc)
{
	delete desc;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(
    cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
    const void *buf, size_t sizeInBytes)
{
	if (!desc || !buf)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "desc or buf is NULL");
	switch (attr) {
	case CUBLASLT_MATMUL_DESC_TRANSA:
	case CUBLASLT_MATMUL_DESC_TRANSB: {
		cublasOperation_t op;
		if (sizeInBytes != sizeof op)
			break;
		memcpy(&op, buf, sizeof op);
		if (op != CUBLAS_OP_N && op != CUBLAS_OP_T)
			return fail(CUBLAS_STATUS_INVALID_VALUE, "bad transpose");
		(attr == CUBLASLT_MATMUL_DESC_TRANSA ? desc->ta : desc->tb) = op;
		return CUBLAS_STATUS_SUCCESS;
	}
	case CUBLASLT_MATMUL_DESC_EPILOGUE: {
		cublasLtEpilogue_t e;
		if (sizeInBytes != sizeof e)
			break;
		memcpy(&e, buf, sizeof e);
		if (e != CUBLASLT_EPILOGUE_DEFAULT && e != CUBLASLT_EPILOGUE_RELU &&
		    e != CUBLASLT_EPILOGUE_BIAS && e != CUBLASLT_EPILOGUE_RELU_BIAS)
			return fail(CUBLAS_STATUS_INVALID_VALUE, "epilogue %d", (int)e);
		desc->epilogue = e;
		return CUBLAS_STATUS_SUCCESS;
	}
	case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
		if (sizeInBytes != sizeof desc->bias)
			break;
		memcpy(&desc->bias, buf, sizeof desc->bias);
		return CUBLAS_STATUS_SUCCESS;
	default:
		return fail(CUBLAS_STATUS_INVALID_VALUE, "attribute %d", (int)attr);
	}
	return fail(CUBLAS_STATUS_INVALID_VALUE, "attribute %d: %zu bytes",
		    (int)attr, sizeInBytes);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout,
					  cudaDataType_t type, uint64_t rows,
					  uint64_t cols, int64_t ld)
{
	if (!layout)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "layout is NULL");
	if (rows > INT64_MAX || cols > INT64_MAX)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "%llu x %llu",
			    (unsigned long long)rows, (unsigned long long)cols);
	*layout = new cublasLtMatrixLayoutOpaque_t{type, (int64_t)rows,
						   (int64_t)cols, ld};
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout)
{
	delete layout;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
	if (!pref)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "pref is NULL");
	*pref = new cublasLtMatmulPreferenceOpaque_t{0};
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
	delete pref;
	return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
    const void *buf, size_t sizeInBytes)
{
	if (!pref || !buf)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "pref or buf is NULL");
	if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "attribute %d", (int)attr);
	if (sizeInBytes != sizeof pref->max_workspace)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "attribute %d: %zu bytes",
			    (int)attr, sizeInBytes);
	memcpy(&pref->max_workspace, buf, sizeof pref->max_workspace);
	return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

// The problem the descriptors describe: op(A) m x k, op(B) k x n, C and
// D m x n, the types in cuBLASLt's table (C's type is D's).
static cublasStatus_t lt_check(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
			       cublasLtMatrixLayout_t b,
			       cublasLtMatrixLayout_t c,
			       cublasLtMatrixLayout_t dd, int64_t *m,
			       int64_t *n, int64_t *k)
{
	if (!d || !a || !b || !c || !dd)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "a descriptor is NULL");
	*m = d->ta == CUBLAS_OP_T ? a->cols : a->rows;
	*k = d->ta == CUBLAS_OP_T ? a->rows : a->cols;
	int64_t kb = d->tb == CUBLAS_OP_T ? b->cols : b->rows;
	*n = d->tb == CUBLAS_OP_T ? b->rows : b->cols;
	if (kb != *k)
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "op(A) is %lld x %lld but op(B) %lld x %lld",
			    (long long)*m, (long long)*k, (long long)kb,
			    (long long)*n);
	if (c->rows != *m || c->cols != *n || dd->rows != *m || dd->cols != *n)
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "C %lld x %lld, D %lld x %lld for a %lld x %lld product",
			    (long long)c->rows, (long long)c->cols,
			    (long long)dd->rows, (long long)dd->cols, (long long)*m,
			    (long long)*n);
	const cublasLtMatrixLayoutOpaque_t *all[] = {a, b, c, dd};
	for (auto l : all)
		if (l->ld < std::max<int64_t>(1, l->rows))
			return fail(CUBLAS_STATUS_INVALID_VALUE,
				    "ld %lld < %lld rows", (long long)l->ld,
				    (long long)l->rows);
	if (c->type != dd->type || !types_ok(d->compute, a->type, b->type, c->type))
		return fail(CUBLAS_STATUS_NOT_SUPPORTED,
			    "types A %d, B %d, C %d, D %d with compute type %d",
			    (int)a->type, (int)b->type, (int)c->type,
			    (int)dd->type, (int)d->compute);
	if (too_big(*m, *n, *k))
		return fail(CUBLAS_STATUS_NOT_SUPPORTED, "too large for OpenBLAS");
	return CUBLAS_STATUS_SUCCESS;
}

static bool has_bias(cublasLtEpilogue_t e)
{
	return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS;
}

static footprint lt_footprint(const void *p, cublasLtMatrixLayout_t l)
{
	return footprint{p, type_size(l->type), l->rows, l->cols, l->ld, 1, 0};
}

// What cublasLtMatmul checks beyond the shapes: an algorithm from the
// heuristic, the pointers it needs, aligned as it needs them, and no
// output that overlaps an input (C == D, in place, is allowed).
static cublasStatus_t lt_check_call(cublasLtMatmulDesc_t desc,
				    const void *alpha, const void *A,
				    cublasLtMatrixLayout_t Adesc, const void *B,
				    cublasLtMatrixLayout_t Bdesc,
				    const void *beta, const void *C,
				    cublasLtMatrixLayout_t Cdesc, void *D,
				    cublasLtMatrixLayout_t Ddesc,
				    const cublasLtMatmulAlgo_t *algo)
{
	if (algo && algo->data[0] != ALGO_MAGIC)
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "algo did not come from the heuristic");
	if (!alpha || !beta)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "alpha or beta is NULL");
	float be = *(const float *)beta;
	const void *bias = has_bias(desc->epilogue) ? desc->bias : nullptr;
	if (!A || !B || !D || (be != 0.0f && !C) ||
	    (has_bias(desc->epilogue) && !bias))
		return fail(CUBLAS_STATUS_INVALID_VALUE, "a pointer is NULL");
	const void *ptrs[] = {A, B, C, D, bias};
	for (const void *p : ptrs)
		if ((uintptr_t)p % LT_ALIGN)
			return fail(CUBLAS_STATUS_NOT_SUPPORTED,
				    "pointer %p not %d-byte aligned", p,
				    (int)LT_ALIGN);
	if (C == D && (Cdesc->ld != Ddesc->ld || Cdesc->type != Ddesc->type))
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "in place (C == D) with different layouts");
	footprint fd = lt_footprint(D, Ddesc);
	footprint fbias{bias, type_size(Ddesc->type), Ddesc->rows, 1,
			Ddesc->rows, 1, 0};
	footprint fc = lt_footprint(C != D && be != 0.0f ? C : nullptr, Cdesc);
	if (overlap(fd, lt_footprint(A, Adesc)) ||
	    overlap(fd, lt_footprint(B, Bdesc)) || overlap(fd, fc) ||
	    overlap(fd, fbias))
		return fail(CUBLAS_STATUS_INVALID_VALUE,
			    "D overlaps A, B, C or the bias (a race on the GPU)");
	return CUBLAS_STATUS_SUCCESS;
}

extern "C" {

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
    cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
    cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t pref, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
    int *returnAlgoCount)
{
	if (!handle)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	if (!pref || requestedAlgoCount < 1 || !heuristicResultsArray ||
	    !returnAlgoCount)
		return fail(CUBLAS_STATUS_INVALID_VALUE, "bad request");
	int64_t m, n, k;
	cublasStatus_t st = lt_check(desc, Adesc, Bdesc, Cdesc, Ddesc, &m, &n, &k);
	if (st != CUBLAS_STATUS_SUCCESS)
		return st;
	cublasLtMatmulHeuristicResult_t &r = heuristicResultsArray[0];
	memset(&r, 0, sizeof r);
	r.algo.data[0] = ALGO_MAGIC;
	r.workspaceSize = 0;
	r.state = CUBLAS_STATUS_SUCCESS;
	r.wavesCount = 1.0f;
	*returnAlgoCount = 1;
	return CUBLAS_STATUS_SUCCESS;
}

// D = act(alpha op(A) op(B) + beta C + bias), the cuBLASLt formula; C is
// not read when beta is 0; C == D (in place) needs equal layouts.
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle,
			      cublasLtMatmulDesc_t desc, const void *alpha,
			      const void *A, cublasLtMatrixLayout_t Adesc,
			      const void *B, cublasLtMatrixLayout_t Bdesc,
			      const void *beta, const void *C,
			      cublasLtMatrixLayout_t Cdesc, void *D,
			      cublasLtMatrixLayout_t Ddesc,
			      const cublasLtMatmulAlgo_t *algo, void *workspace,
			      size_t workspaceSizeInBytes, cudaStream_t stream)
{
	(void)workspace, (void)workspaceSizeInBytes;
	if (!handle)
		return fail(CUBLAS_STATUS_NOT_INITIALIZED, "handle is NULL");
	if (tk_emu_refuses("lt"))
		return CUBLAS_STATUS_NOT_SUPPORTED;
	int64_t m, n, k;
	cublasStatus_t st = lt_check(desc, Adesc, Bdesc, Cdesc, Ddesc, &m, &n, &k);
	if (st == CUBLAS_STATUS_SUCCESS)
		st = lt_check_call(desc, alpha, A, Adesc, B, Bdesc, beta, C, Cdesc,
				   D, Ddesc, algo);
	if (st != CUBLAS_STATUS_SUCCESS)
		return st;
	float al = *(const float *)alpha, be = *(const float *)beta;
	bool relu = desc->epilogue == CUBLASLT_EPILOGUE_RELU ||
		    desc->epilogue == CUBLASLT_EPILOGUE_RELU_BIAS;
	epilogue ep{has_bias(desc->epilogue) ? desc->bias : nullptr, relu};
	operand a{A, Adesc->type, Adesc->rows, Adesc->cols, Adesc->ld,
		  desc->ta == CUBLAS_OP_T},
	    b{B, Bdesc->type, Bdesc->rows, Bdesc->cols, Bdesc->ld,
	      desc->tb == CUBLAS_OP_T};
	rounding r = rounding_of(desc->compute);
	cublasLtMatrixLayoutOpaque_t cl = *Cdesc, dl = *Ddesc;
	tk_emu::enqueue(stream, [=]() {
		std::vector<float> t;
		product(a, b, m, n, k, r, t);
		finish(t, m, n, al, be, C, cl.type, cl.ld, D, dl.type, dl.ld, ep);
	});
	return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
