// rank.cu - one chunk of exact search on the GPU: the score GEMM, then
// each query's best kk as tk-rank's 64-bit rank keys, best first:
//   full rankings (large kk): each query's scores as (score key,
//     position) pairs stably radix-sorted on the 32-bit score keys (CUB:
//     half the passes of sorting 64-bit keys);
//   top-K by tiles (kk <= TILE / 8, TK_RANK_TOPK=tiles): rounds of selection:
//     each tile of TILE scores of a query sorted in one thread block (its
//     keys with the index inside the tile below them, so no stability is
//     needed), its best kk kept as rank keys; then the same over those
//     candidates (at most an eighth of what came in) until one tile is
//     left;
//   top-K by radix selection (kk <= TILE, the default): the kk-th
//     smallest of the keys (score key, index) found 8 bits at a time from
//     the top, each pass a histogram of the keys that share the bits
//     found so far (PyTorch's topk works this way); usually 3 or 4 of the
//     8 passes read the scores, the rest see the query done and return.
//     Then every key at most that one is gathered (exactly kk) and the kk
//     sorted in one thread block.
//   The rank key's order is the one order (score, then position), so all
//   give the same keys.  TK_RANK_TOPK=sort takes the first way always,
//   =tiles or =select that top-K way where it applies.  On an H200 the
//   top 100 of 1M scores for 70 queries took 6.1 ms by selection, 7.0 by
//   tiles, 11.5 sorted (PyTorch's topk 6.3: tests/gpu/bench_ops.c).
#include <algorithm>
#include <cstdio>
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

// Every way's start: the workspace, the scores [nq, m] = q db^T at its
// head and 'extra' bytes after them (*rest).
float *score_chunk(char **rest, size_t extra, const float *q, const float *db,
		   int nq, long m, int D, cudaStream_t s)
{
	size_t sb = align256((size_t)nq * m * sizeof(float));
	char *w = (char *)tk::workspace(sb + extra);
	float *scores = (float *)w;
	gemm_cuda(0, 1, nq, (int)m, D, 1.0f, q, D, db, D, 0.0f, scores, (int)m, s);
	*rest = w + sb;
	return scores;
}

// Every way's end: the nq x kk keys to the host, which waits for them.
void keys_home(uint64_t *keys, const uint64_t *d, int nq, long kk, cudaStream_t s)
{
	CUDA_CHECK(cudaMemcpyAsync(keys, d, (size_t)nq * kk * sizeof(uint64_t),
				   cudaMemcpyDefault, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
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

enum topk_way { SORT, TILES, SELECT };

// TK_RANK_TOPK: sort, tiles or select (the default); read at every
// chunk, so that a test can try each.
topk_way topk_mode()
{
	const char *e = getenv("TK_RANK_TOPK");
	if (!e || !*e || !strcmp(e, "select"))
		return SELECT;
	if (!strcmp(e, "tiles"))
		return TILES;
	if (!strcmp(e, "sort"))
		return SORT;
	tk_die(1, "TK_RANK_TOPK=%s: not sort, tiles or select", e);
}

topk_way topk_way_for(long m, long kk)
{
	topk_way w = topk_mode();
	if (w == TILES && kk <= TILE / 8 && m > TILE)
		return TILES;
	if (w == SELECT && kk <= TILE && m > kk)
		return SELECT;
	return SORT;
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
	size_t cb = align256((size_t)nq * nt * kk * sizeof(uint64_t));
	char *w;
	const float *scores = score_chunk(&w, 2 * cb, q, db, nq, m, D, s);
	uint64_t *buf[2] = {(uint64_t *)w, (uint64_t *)(w + cb)};
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
	keys_home(keys, buf[cur], nq, kk, s);
}

// ---- radix selection ----

// A query's search for its kk-th smallest key K = (score key, index):
// the top bits found so far, and the rank the wanted key has among the
// keys that share them; once done, the kk smallest are the keys <= hi.
struct select_state {
	uint64_t prefix, hi;
	uint32_t rank;
	int done;
};

const int SEL_THREADS = 256, SEL_ITEMS = 16;
const long SEL_SPAN = (long)SEL_THREADS * SEL_ITEMS; // scores per block

__global__ void select_init(select_state *st, unsigned *hist, unsigned *count,
			    int nq, uint32_t kk)
{
	FOR_N(i, (size_t)nq * 256)
	{
		hist[i] = 0;
		if (i < (size_t)nq) {
			st[i] = select_state{0, 0, kk, 0};
			count[i] = 0;
		}
	}
}

// Pass p: the histogram of bits [56 - 8p, 64 - 8p) of the keys whose top
// 8p bits are the prefix found.  A thread adds runs of one bin at once:
// in the first passes most keys fall in a few bins.
__global__ void __launch_bounds__(SEL_THREADS)
    select_hist(unsigned *hist, const float *scores, long m, int nq,
		const select_state *st, int pass)
{
	__shared__ unsigned h[256];
	int shift = 56 - 8 * pass;
	long start = (long)blockIdx.x * SEL_SPAN;
	for (int q = blockIdx.y; q < nq; q += gridDim.y) {
		select_state S = st[q];
		if (S.done) // the same for the whole block
			continue;
		for (int b = threadIdx.x; b < 256; b += blockDim.x)
			h[b] = 0;
		__syncthreads();
		const float *s = scores + (size_t)q * m;
		int bin = -1;
		unsigned run = 0;
		for (int i = 0; i < SEL_ITEMS; i++) {
			long j = start + (long)i * SEL_THREADS + threadIdx.x;
			if (j >= m)
				break;
			uint64_t K = rank_key(s[j], (uint32_t)j);
			if (pass && K >> (shift + 8) != S.prefix)
				continue;
			int b = (int)(K >> shift & 255);
			if (b != bin) {
				if (run)
					atomicAdd(&h[bin], run);
				bin = b, run = 0;
			}
			run++;
		}
		if (run)
			atomicAdd(&h[bin], run);
		__syncthreads();
		for (int b = threadIdx.x; b < 256; b += blockDim.x)
			if (h[b])
				atomicAdd(&hist[(size_t)q * 256 + b], h[b]);
		__syncthreads(); // h again for the next query
	}
}

// After pass p, one thread a query: the bin that holds the wanted rank
// becomes part of the prefix; when the wanted key is the bin's last, every
// key of the bin is in, and the query is done.  The histogram is cleared
// for the next pass.  Keys are unique (the index is in them), so the last
// pass always ends it.
__global__ void select_step(select_state *st, unsigned *hist, int nq, int pass)
{
	int q = blockIdx.x * blockDim.x + threadIdx.x;
	if (q >= nq)
		return;
	select_state S = st[q];
	unsigned *h = hist + (size_t)q * 256;
	int shift = 56 - 8 * pass;
	unsigned below = 0;
	for (int b = 0; !S.done && b < 256; b++) {
		unsigned c = h[b];
		if (below + c < S.rank) {
			below += c;
			continue;
		}
		S.prefix = S.prefix << 8 | (uint64_t)b;
		S.rank -= below;
		if (c == S.rank) {
			S.done = 1;
			S.hi = shift ? S.prefix << shift | ((1ull << shift) - 1) : S.prefix;
		}
		break;
	}
	for (int b = 0; b < 256; b++)
		h[b] = 0;
	st[q] = S;
}

// Every key <= hi, as a rank key, into the query's kk slots (in no order).
__global__ void select_gather(uint64_t *out, unsigned *count, const float *scores,
			      long m, int nq, long kk, const select_state *st,
			      uint32_t base)
{
	for (int q = blockIdx.y; q < nq; q += gridDim.y) {
		uint64_t hi = st[q].hi;
		const float *s = scores + (size_t)q * m;
		FOR_N(j, (size_t)m)
		{
			if (rank_key(s[j], (uint32_t)j) > hi)
				continue;
			unsigned at = atomicAdd(&count[q], 1u);
			if (at < (unsigned)kk)
				out[(size_t)q * kk + at] = rank_key(s[j], base + (uint32_t)j);
		}
	}
}

void rank_select(uint64_t *keys, const float *q, const float *db, int nq,
		 long m, int D, uint32_t base, long kk, cudaStream_t s)
{
	size_t hb = align256((size_t)nq * 256 * sizeof(unsigned));
	size_t tb = align256((size_t)nq * sizeof(select_state));
	size_t nb = align256((size_t)nq * sizeof(unsigned));
	size_t cb = align256((size_t)nq * kk * sizeof(uint64_t));
	char *w;
	const float *scores = score_chunk(&w, hb + tb + nb + 2 * cb, q, db, nq, m, D, s);
	unsigned *hist = (unsigned *)w;
	select_state *st = (select_state *)(w + hb);
	unsigned *count = (unsigned *)(w + hb + tb);
	uint64_t *cand = (uint64_t *)(w + hb + tb + nb);
	uint64_t *best = (uint64_t *)(w + hb + tb + nb + cb);
	select_init<<<tk::blocks((size_t)nq * 256, 256), 256, 0, s>>>(
	    st, hist, count, nq, (uint32_t)kk);
	LAUNCH_CHECK();
	int ys = nq < 65535 ? nq : 65535;
	unsigned xs = (unsigned)((m + SEL_SPAN - 1) / SEL_SPAN);
	for (int pass = 0; pass < 8; pass++) {
		select_hist<<<dim3(xs, ys), SEL_THREADS, 0, s>>>(hist, scores, m, nq,
								 st, pass);
		LAUNCH_CHECK();
		select_step<<<(nq + 127) / 128, 128, 0, s>>>(st, hist, nq, pass);
		LAUNCH_CHECK();
	}
	unsigned gx = std::min(tk::blocks(m, 256), 1024u);
	select_gather<<<dim3(gx, ys), 256, 0, s>>>(cand, count, scores, m, nq, kk,
						    st, base);
	LAUNCH_CHECK();
	// the kk of each query in order: one tile
	tile_best_keys<<<dim3(1, ys), TILE_THREADS, 0, s>>>(best, cand, kk, nq, 1,
							     (int)kk);
	LAUNCH_CHECK();
	keys_home(keys, best, nq, kk, s);
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
	switch (topk_way_for(m, kk)) {
	case TILES:
		rank_tiles(keys, q, db, nq, m, D, base, kk, s);
		return;
	case SELECT:
		rank_select(keys, q, db, nq, m, D, base, kk, s);
		return;
	case SORT:
		break;
	}
	size_t temp = 0;
	CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
	    nullptr, temp, (uint32_t *)nullptr, (uint32_t *)nullptr,
	    (uint32_t *)nullptr, (uint32_t *)nullptr, (int)m, 0, 32, s));
	size_t hb = align256((size_t)m * sizeof(uint32_t));
	size_t pb = align256((size_t)nq * kk * sizeof(uint64_t));
	char *w;
	const float *scores = score_chunk(&w, 4 * hb + pb + temp, q, db, nq, m, D, s);
	uint32_t *kin = (uint32_t *)w, *kout = (uint32_t *)(w + hb);
	uint32_t *pin = (uint32_t *)(w + 2 * hb);
	uint32_t *pout = (uint32_t *)(w + 3 * hb);
	uint64_t *packed = (uint64_t *)(w + 4 * hb);
	void *tmp = w + 4 * hb + pb;
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
	keys_home(keys, packed, nq, kk, s);
}
