// rank.cu - one chunk of exact search on the GPU: the score GEMM, each
// query's scores as (score key, position) pairs stably radix-sorted on
// the 32-bit score keys (CUB: half the passes of sorting 64-bit keys),
// the best kk of each query packed as tk-rank's 64-bit rank keys.
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

// A query's scores as pairs: the score half of the rank key, and the
// position, ascending; a stable sort of the score halves then leaves
// equal scores in position order, as the 64-bit keys would sort.
__global__ void make_pairs(uint32_t *key, uint32_t *pos, const float *scores,
			   uint32_t base, size_t m)
{
	FOR_N(j, m)
	{
		key[j] = (uint32_t)(rank_key(scores[j], 0) >> 32);
		pos[j] = base + (uint32_t)j;
	}
}

__global__ void pack(uint64_t *out, const uint32_t *key, const uint32_t *pos,
		     size_t n)
{
	FOR_N(j, n) out[j] = (uint64_t)key[j] << 32 | pos[j];
}

size_t align256(size_t n)
{
	return (n + 255) & ~(size_t)255;
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
	CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
	    nullptr, temp, (uint32_t *)nullptr, (uint32_t *)nullptr,
	    (uint32_t *)nullptr, (uint32_t *)nullptr, (int)m, 0, 32, s));
	size_t sb = align256((size_t)nq * m * sizeof(float));
	size_t hb = align256((size_t)m * sizeof(uint32_t));
	size_t pb = align256((size_t)nq * kk * sizeof(uint64_t));
	char *w = (char *)tk::workspace(sb + 4 * hb + pb + temp);
	float *scores = (float *)w;
	uint32_t *kin = (uint32_t *)(w + sb), *kout = (uint32_t *)(w + sb + hb);
	uint32_t *pin = (uint32_t *)(w + sb + 2 * hb);
	uint32_t *pout = (uint32_t *)(w + sb + 3 * hb);
	uint64_t *packed = (uint64_t *)(w + sb + 4 * hb);
	void *tmp = w + sb + 4 * hb + pb;
	gemm_cuda(0, 1, nq, (int)m, D, 1.0f, q, D, db, D, 0.0f, scores, (int)m, s);
	for (int i = 0; i < nq; i++) {
		make_pairs<<<tk::blocks(m, 256), 256, 0, s>>>(
		    kin, pin, scores + (size_t)i * m, base, m);
		LAUNCH_CHECK();
		size_t t = temp;
		CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, t, kin, kout, pin, pout,
							   (int)m, 0, 32, s));
		pack<<<tk::blocks(kk, 256), 256, 0, s>>>(packed + (size_t)i * kk, kout,
							  pout, kk);
		LAUNCH_CHECK();
	}
	CUDA_CHECK(cudaMemcpyAsync(keys, packed, (size_t)nq * kk * sizeof(uint64_t),
				   cudaMemcpyDefault, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
}
