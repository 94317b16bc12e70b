/* linear_backward.c - nn.Linear's gradients as two GEMMs and a column
 * sum; all three accumulate. */
#include "kernels/linear.h"

#include <stddef.h>

void linear_backward(float *din, float *dweight, float *dbias,
		     const float *dout, const float *in, const float *weight,
		     int N, int IN, int OUT)
{
	/* din [N, IN] += dout [N, OUT] . weight [OUT, IN] */
	if (din)
		gemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, din, IN);
	/* dweight [OUT, IN] += dout^T . in */
	if (dweight)
		gemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, in, IN, 1.0f, dweight, IN);
	if (dbias) {
		/* Blocks of 64 columns: each row's slice is one cache line run. */
		int nb = (OUT + 63) / 64;
#pragma omp parallel for if ((size_t)N * OUT > 65536)
		for (int blk = 0; blk < nb; blk++) {
			int o0 = blk * 64, o1 = o0 + 64 < OUT ? o0 + 64 : OUT;
			double s[64] = {0};
			for (int i = 0; i < N; i++) {
				const float *r = dout + (size_t)i * OUT;
				for (int o = o0; o < o1; o++)
					s[o - o0] += r[o];
			}
			for (int o = o0; o < o1; o++)
				dbias[o] += (float)s[o - o0];
		}
	}
}
