// rank.cu - one chunk of exact search on the GPU: the score GEMM, then
// each query's best kk as tk-rank's 64-bit rank keys, best first:
//   full rankings (large kk): each query's scores as (score key,
//     position) pairs stably radix-sorted on the 32-bit score keys (CUB:
//     half the passes of sorting 64-bit keys);
//   top-K (kk <= TILE / 8): rounds of selection: each tile of TILE
//     scores of a query sorted in one thread block (its keys with the
//     index inside the tile below them, so no stability is needed), its
//     best kk kept as rank keys; then the same over those candidates
//     (at most an eighth of what came in) until one tile is left.
//   The rank key's order is the one order (score, then position), so both
//   give the same keys.  TK_RANK_TOPK=sort takes the first way always.
#include <cstdlib>
#include <cstring>

#include <cub/block/block_radix_sort.cuh>
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

const int TILE_THREADS = 256, TILE_ITEMS = 16;
const int TILE = TILE_THREADS * TILE_ITEMS; // 4096 values
const int TILE_BITS = 12;                   // log2(TILE)
typedef cub::BlockRadixSort<uint64_t, TILE_THREADS, TILE_ITEMS> tile_sort;

// First round, on the scores [nq, m]: out[(q * ntiles + t) * kk + r] is
// the rank key of the r-th best score of tile t of query q; all ones
// past the scores' end (it sorts last; the best kk <= m of a query are
// all real).  In the tile, each score key has its index below it, so the
// sort needs no stability to keep equal scores in position order.
__global__ void __launch_bounds__(TILE_THREADS)
    tile_best_scores(uint64_t *out, const float *scores, long m, int nq,
		     int ntiles, int kk, uint32_t base)
{
	__shared__ typename tile_sort::TempStorage tmp;
	long start = (long)blockIdx.x * TILE;
	for (int q = blockIdx.y; q < nq; q += gridDim.y) {
		const float *s = scores + (size_t)q * m;
		uint64_t k[TILE_ITEMS];
		for (int i = 0; i < TILE_ITEMS; i++) {
			int at = threadIdx.x * TILE_ITEMS + i;
			long j = start + at;
			uint64_t key = j < m ? rank_key(s[j], 0) >> 32 : 0xffffffffull;
			k[i] = key << TILE_BITS | (uint64_t)at;
		}
		// ascending, blocked: thread t holds ranks t * TILE_ITEMS ..
		tile_sort(tmp).Sort(k, 0, 32 + TILE_BITS);
		for (int i = 0; i < TILE_ITEMS; i++) {
			int r = threadIdx.x * TILE_ITEMS + i;
			if (r >= kk)
				break;
			long j = start + (long)(k[i] & (TILE - 1));
			out[((size_t)q * ntiles + blockIdx.x) * kk + r] =
			    j < m ? (k[i] >> TILE_BITS) << 32 | (uint64_t)(base + (uint32_t)j)
				  : ~0ull;
		}
		__syncthreads(); // tmp again for the next query
	}
}

// The next rounds, on rank keys [nq, len] (unique but for the all-ones
// padding): each tile's kk smallest, as above.
__global__ void __launch_bounds__(TILE_THREADS)
    tile_best_keys(uint64_t *out, const uint64_t *in, long len, int nq,
		   int ntiles, int kk)
{
	__shared__ typename tile_sort::TempStorage tmp;
	long start = (long)blockIdx.x * TILE;
	for (int q = blockIdx.y; q < nq; q += gridDim.y) {
		const uint64_t *x = in + (size_t)q * len;
		uint64_t k[TILE_ITEMS];
		for (int i = 0; i < TILE_ITEMS; i++) {
			long j = start + threadIdx.x * TILE_ITEMS + i;
			k[i] = j < len ? x[j] : ~0ull;
		}
		tile_sort(tmp).Sort(k);
		for (int i = 0; i < TILE_ITEMS; i++) {
			int r = threadIdx.x * TILE_ITEMS + i;
			if (r >= kk)
				break;
			out[((size_t)q * ntiles + blockIdx.x) * kk + r] = k[i];
		}
		__syncthreads();
	}
}

bool use_tiles(long m, long kk)
{
	static int mode = -1;
	if (mode < 0) {
		const char *e = getenv("TK_RANK_TOPK");
		mode = e && !strcmp(e, "sort") ? 0 : 1;
	}
	return mode && kk <= TILE / 8 && m > TILE;
}

long tiles_of(long len)
{
	return (len + TILE - 1) / TILE;
}

// The top-K way: rounds of tile selections, each keeping kk of every
// TILE values (at most an eighth), until one tile a query is left.  Every
// one of a query's best kk is among the best kk of its tile, so the last
// round's kk are the query's best kk, in order.
void rank_tiles(uint64_t *keys, const float *q, const float *db, int nq,
		long m, int D, uint32_t base, long kk, cudaStream_t s)
{
	long nt = tiles_of(m);
	size_t sb = align256((size_t)nq * m * sizeof(float));
	size_t cb = align256((size_t)nq * nt * kk * sizeof(uint64_t));
	char *w = (char *)tk::workspace(sb + 2 * cb);
	float *scores = (float *)w;
	uint64_t *buf[2] = {(uint64_t *)(w + sb), (uint64_t *)(w + sb + cb)};
	gemm_cuda(0, 1, nq, (int)m, D, 1.0f, q, D, db, D, 0.0f, scores, (int)m, s);
	int ys = nq < 65535 ? nq : 65535;
	tile_best_scores<<<dim3((unsigned)nt, ys), TILE_THREADS, 0, s>>>(
	    buf[0], scores, m, nq, (int)nt, (int)kk, base);
	LAUNCH_CHECK();
	int cur = 0;
	while (nt > 1) {
		long len = nt * kk;
		nt = tiles_of(len);
		tile_best_keys<<<dim3((unsigned)nt, ys), TILE_THREADS, 0, s>>>(
		    buf[cur ^ 1], buf[cur], len, nq, (int)nt, (int)kk);
		LAUNCH_CHECK();
		cur ^= 1;
	}
	CUDA_CHECK(cudaMemcpyAsync(keys, buf[cur], (size_t)nq * kk * sizeof(uint64_t),
				   cudaMemcpyDefault, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
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
	if (use_tiles(m, kk)) {
		rank_tiles(keys, q, db, nq, m, D, base, kk, s);
		return;
	}
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
