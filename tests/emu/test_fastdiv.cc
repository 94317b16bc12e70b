// test_fastdiv - kernels/cuda/common.cuh's fastdiv and channel_of, the
// index arithmetic of the batch norm's and the convolution bias's
// kernels, against / and %: every divisor up to 4096 and the edges of
// the 31-bit range, dividends at 0, around multiples of the divisor and
// at 2^31 - 1, and a million random pairs.  The same source runs on a
// GPU (__umulhi is the device's instruction; here the emulator's).
#include <cstdio>
#include <random>

#include "kernels/cuda/common.cuh"

static long failures;

static void check(unsigned d, unsigned n)
{
	fastdiv f(d);
	unsigned q = f.div(n), r = f.mod(n);
	if (q != n / d || r != n % d) {
		if (failures++ < 10)
			printf("FAIL %u / %u: %u rem %u, want %u rem %u\n", n, d, q, r,
			       n / d, n % d);
	}
}

static void divisor(unsigned d, std::mt19937 &g)
{
	const unsigned top = 0x7fffffffu;
	unsigned edges[] = {0, 1, d - 1, d, d + 1, 2 * d - 1, top, top - 1,
			    top / d * d, top / d * d - 1};
	for (unsigned n : edges)
		if (n <= top)
			check(d, n);
	for (int i = 0; i < 200; i++)
		check(d, g() & top);
}

int main()
{
	std::mt19937 g(7);
	for (unsigned d = 1; d <= 4096; d++)
		divisor(d, g);
	unsigned big[] = {65535, 65536, 65537, 1000003, 1u << 20, (1u << 30) - 1,
			  1u << 30, (1u << 30) + 1, 0x7ffffffeu, 0x7fffffffu};
	for (unsigned d : big)
		divisor(d, g);
	for (int i = 0; i < 1000000; i++) {
		unsigned d = (g() & 0x7fffffffu) >> (g() % 31);
		check(d ? d : 1, g() & 0x7fffffffu);
	}
	// channel_of: (i / S) % C, by fastdiv under 2^31, in 64 bits above
	struct shape {
		size_t n;
		int C;
		size_t S;
	} shapes[] = {{2 * 64 * 65536ull, 64, 65536},
		      {97 * 1024ull, 1024, 1},
		      {32ull * 2048 * 256, 2048, 256},
		      {3ull << 31, 3, 1ull << 31}};
	for (const shape &s : shapes) {
		channel_of ch(s.n, s.C, s.S);
		for (int k = 0; k < 100000; k++) {
			size_t i = k < 3 ? (k == 0 ? 0 : s.n - k)
					 : ((size_t)g() << 31 ^ g()) % s.n;
			size_t q, r;
			ch.split(i % (s.n / s.C), &q, &r);
			size_t j = i % (s.n / s.C);
			if (ch(i) != (int)((i / s.S) % s.C) || q != j / s.S ||
			    r != j % s.S) {
				if (failures++ < 10)
					printf("FAIL channel_of n %zu C %d S %zu at %zu\n",
					       s.n, s.C, s.S, i);
			}
		}
	}
	printf(failures ? "FAIL: %ld wrong\n" : "ok: fastdiv and channel_of agree "
						"with / and %%\n",
	       failures);
	return failures != 0;
}
