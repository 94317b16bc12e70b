// cub/device/device_radix_sort.cuh (tk's CUDA emulator) -
// DeviceRadixSort::SortPairs as CUB defines it: a first call with no
// temporary storage asks its size; the second sorts the pairs stably by
// bits [begin_bit, end_bit) of the keys, ascending, into the outputs.
// The emulator asks for storage of its own size and checks that the
// second call got at least that much, on the device.
#ifndef TK_EMU_CUB_DEVICE_RADIX_SORT_CUH
#define TK_EMU_CUB_DEVICE_RADIX_SORT_CUH

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

// runtime.cc: whether [p, p + n) lies in one device allocation.
bool tk_emu_on_device(const void *p, size_t n);

namespace cub {

struct DeviceRadixSort {
	template <typename K, typename V>
	static cudaError_t SortPairs(void *temp, size_t &temp_bytes,
				     const K *keys_in, K *keys_out,
				     const V *values_in, V *values_out,
				     int n, int begin_bit = 0,
				     int end_bit = sizeof(K) * 8,
				     cudaStream_t stream = nullptr)
	{
		size_t need = 1024 + (size_t)(n > 0 ? n : 0) * sizeof(K);
		if (!temp) {
			temp_bytes = need;
			return cudaSuccess;
		}
		if (temp_bytes < need || !tk_emu_on_device(temp, need) ||
		    n < 0 ||
		    (n && (!tk_emu_on_device(keys_in, n * sizeof(K)) ||
			   !tk_emu_on_device(keys_out, n * sizeof(K)) ||
			   !tk_emu_on_device(values_in, n * sizeof(V)) ||
			   !tk_emu_on_device(values_out, n * sizeof(V))))) {
			fprintf(stderr, "tk CUDA emulator: DeviceRadixSort::SortPairs: "
					"bad storage or arrays (n %d, %zu bytes of "
					"temporary storage, %zu needed)\n",
				n, temp_bytes, need);
			return cudaErrorInvalidValue;
		}
		// queued on the stream, as CUB's kernels are
		tk_emu::enqueue(stream, [=]() {
			int w = end_bit - begin_bit;
			K mask = w >= (int)sizeof(K) * 8 ? ~K(0) : (K(1) << w) - 1;
			std::vector<size_t> order((size_t)n);
			std::iota(order.begin(), order.end(), (size_t)0);
			std::stable_sort(order.begin(), order.end(),
					 [&](size_t a, size_t b) {
						 return (keys_in[a] >> begin_bit & mask) <
							(keys_in[b] >> begin_bit & mask);
					 });
			std::vector<K> k((size_t)n);
			std::vector<V> v((size_t)n);
			for (int i = 0; i < n; i++) {
				k[i] = keys_in[order[i]];
				v[i] = values_in[order[i]];
			}
			std::copy(k.begin(), k.end(), keys_out);
			std::copy(v.begin(), v.end(), values_out);
		});
		return cudaSuccess;
	}
};

} // namespace cub

#endif
