// rank.cu - one chunk of exact search on the GPU: the score GEMM, the
// scores turned into tk-rank's 64-bit rank keys, and a radix sort of
// each query's keys (CUB); the best kk of each query are copied out.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"

namespace {

// common/rank.h's rank_key: -0 as +0, IEEE bits to an ascending
// unsigned order, complemented so that better scores sort first.
__device__ inline uint64_t rank_key(float score, uint32_t pos)
{
	uint32_t u = __float_as_uint(score);
	if (u == 0x80000000u)
		u = 0;
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return (uint64_t)(~u) << 32 | pos;
}

__global__ void make_keys(uint64_t *keys, const float *scores, uint32_t base,
			  size_t m)
{
	FOR_N(j, m) keys[j] = rank_key(scores[j], base + (uint32_t)j);
}

} // namespace

extern "C" void rank_chunk_cuda(uint64_t *keys, const float *q, const float *db,
				int nq, long m, int D, uint32_t base, long kk,
				tk_stream s)
{
	if (nq <= 0 || m <= 0 || kk <= 0)
		return;
	if (kk > m)
		kk = m;
	size_t temp = 0;
	CUDA_CHECK(cub::DeviceRadixSort::SortKeys(nullptr, temp, (uint64_t *)nullptr,
						  (uint64_t *)nullptr, (int)m, 0,
						  64, s));
	size_t sbytes = ((size_t)nq * m * sizeof(float) + 255) & ~(size_t)255;
	size_t kbytes = ((size_t)m * sizeof(uint64_t) + 255) & ~(size_t)255;
	char *w = (char *)tk::workspace(sbytes + 2 * kbytes + temp);
	float *scores = (float *)w;
	uint64_t *kin = (uint64_t *)(w + sbytes);
	uint64_t *kout = (uint64_t *)(w + sbytes + kbytes);
	void *tmp = w + sbytes + 2 * kbytes;
	gemm_cuda(0, 1, nq, (int)m, D, 1.0f, q, D, db, D, 0.0f, scores, (int)m, s);
	for (int i = 0; i < nq; i++) {
		make_keys<<<tk::blocks(m, 256), 256, 0, s>>>(
		    kin, scores + (size_t)i * m, base, m);
		LAUNCH_CHECK();
		size_t t = temp;
		CUDA_CHECK(cub::DeviceRadixSort::SortKeys(tmp, t, kin, kout, (int)m,
							  0, 64, s));
		CUDA_CHECK(cudaMemcpyAsync(keys + (size_t)i * kk, kout,
					   kk * sizeof(uint64_t), cudaMemcpyDefault,
					   s));
	}
	CUDA_CHECK(cudaStreamSynchronize(s));
}
