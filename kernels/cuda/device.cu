// device.cu - asks the CUDA libraries for their versions, which proves at
// link time that the build reaches cuBLAS, cuDNN and NCCL.
#include <cstdio>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <nccl.h>

#include "kernels/device.h"

extern "C" const char *tk_cuda_versions(void)
{
	static char buf[256];
	int rt = 0, blas[3] = {0, 0, 0}, nccl = 0;
	cudaRuntimeGetVersion(&rt);
	cublasGetProperty(MAJOR_VERSION, &blas[0]);
	cublasGetProperty(MINOR_VERSION, &blas[1]);
	cublasGetProperty(PATCH_LEVEL, &blas[2]);
	size_t dnn = cudnnGetVersion();
	ncclGetVersion(&nccl);
	snprintf(buf, sizeof buf,
		 "CUDA runtime %d.%d, cuBLAS %d.%d.%d, cuDNN %zu.%zu.%zu, NCCL %d.%d.%d",
		 rt / 1000, rt % 1000 / 10, blas[0], blas[1], blas[2],
		 dnn / 10000, dnn % 10000 / 100, dnn % 100, nccl / 10000,
		 nccl % 10000 / 100, nccl % 100);
	return buf;
}
