// cub/block/block_radix_sort.cuh (tk's CUDA emulator) - BlockRadixSort as
// CUB defines it for keys alone in a blocked arrangement: thread t holds
// ranks t * ITEMS .. t * ITEMS + ITEMS - 1 of the block's keys, ordered
// by bits [begin_bit, end_bit) of each key, stably (ties keep the blocked
// input order).  The block must have exactly BLOCK_DIM_X threads, and
// every thread must call Sort; the emulator dies otherwise.
#ifndef TK_EMU_CUB_BLOCK_RADIX_SORT_CUH
#define TK_EMU_CUB_BLOCK_RADIX_SORT_CUH

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cuda_runtime.h"

namespace cub {

template <typename K, int BLOCK_DIM_X, int ITEMS_PER_THREAD>
class BlockRadixSort {
      public:
	struct TempStorage {
		K keys[BLOCK_DIM_X * ITEMS_PER_THREAD];
	};
	explicit BlockRadixSort(TempStorage &t) : t_(t)
	{
		if (blockDim.x * blockDim.y * blockDim.z != BLOCK_DIM_X) {
			fprintf(stderr,
				"tk CUDA emulator: BlockRadixSort<%d threads> "
				"in a block of %u\n",
				BLOCK_DIM_X,
				blockDim.x * blockDim.y * blockDim.z);
			exit(3);
		}
	}
	void Sort(K (&keys)[ITEMS_PER_THREAD], int begin_bit = 0,
		  int end_bit = sizeof(K) * 8)
	{
		unsigned t = threadIdx.x + blockDim.x * (threadIdx.y +
							  blockDim.y * threadIdx.z);
		for (int i = 0; i < ITEMS_PER_THREAD; i++)
			t_.keys[t * ITEMS_PER_THREAD + i] = keys[i];
		__syncthreads();
		if (t == 0) {
			int w = end_bit - begin_bit;
			K mask = w >= (int)sizeof(K) * 8 ? ~K(0) : (K(1) << w) - 1;
			std::stable_sort(t_.keys, t_.keys + BLOCK_DIM_X * ITEMS_PER_THREAD,
					 [&](K a, K b) {
						 return (a >> begin_bit & mask) <
							(b >> begin_bit & mask);
					 });
		}
		__syncthreads();
		for (int i = 0; i < ITEMS_PER_THREAD; i++)
			keys[i] = t_.keys[t * ITEMS_PER_THREAD + i];
	}

      private:
	TempStorage &t_;
};

} // namespace cub

#endif
