// cublas_v2.h (tk's CUDA emulator) - the part of cuBLAS that kernels/cuda/
// uses, computed on the CPU by OpenBLAS (tests/emu/blas.cc): column-major
// GEMMs with cuBLAS's checks, the compute type's input rounding (TF32,
// bf16) and float accumulation.  Pointers are host memory; streams are
// ignored (everything runs at call time).
#ifndef TK_EMU_CUBLAS_V2_H
#define TK_EMU_CUBLAS_V2_H

#include "cuda_runtime.h"
#include "library_types.h"

typedef enum cublasStatus_t {
	CUBLAS_STATUS_SUCCESS = 0,
	CUBLAS_STATUS_NOT_INITIALIZED = 1,
	CUBLAS_STATUS_INVALID_VALUE = 7,
	CUBLAS_STATUS_NOT_SUPPORTED = 15,
} cublasStatus_t;

typedef enum cublasOperation_t {
	CUBLAS_OP_N = 0,
	CUBLAS_OP_T = 1,
} cublasOperation_t;

// What the products are computed in: FAST_TF32 and FAST_16BF round
// float inputs to TF32 or bf16 (as tensor cores take them); all sum in
// float.
typedef enum cublasComputeType_t {
	CUBLAS_COMPUTE_32F = 68,
	CUBLAS_COMPUTE_32F_FAST_16BF = 75,
	CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
} cublasComputeType_t;

typedef enum cublasGemmAlgo_t {
	CUBLAS_GEMM_DEFAULT = -1,
} cublasGemmAlgo_t;

typedef struct cublasContext *cublasHandle_t;

extern "C" {
cublasStatus_t cublasCreate(cublasHandle_t *handle);
cublasStatus_t cublasDestroy(cublasHandle_t handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
cublasStatus_t cublasGetProperty(libraryPropertyType type, int *value);
const char *cublasGetStatusString(cublasStatus_t status);

// C = alpha op(A) op(B) + beta C, column-major; alpha and beta are float
// (host) for the 32F compute types.
cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
			    cublasOperation_t transb, int m, int n, int k,
			    const void *alpha, const void *A,
			    cudaDataType_t Atype, int lda, const void *B,
			    cudaDataType_t Btype, int ldb, const void *beta,
			    void *C, cudaDataType_t Ctype, int ldc,
			    cublasComputeType_t computeType,
			    cublasGemmAlgo_t algo);
cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
    int m, int n, int k, const void *alpha, const void *A,
    cudaDataType_t Atype, int lda, long long strideA, const void *B,
    cudaDataType_t Btype, int ldb, long long strideB, const void *beta,
    void *C, cudaDataType_t Ctype, int ldc, long long strideC,
    int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
}

#endif
