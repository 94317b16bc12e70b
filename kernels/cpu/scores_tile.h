/* scores_tile.h - the tile of scores.c, included once for each vector
 * width: NAME, TARGET (a function attribute or nothing), WIDTH (floats a
 * vector; it divides LANES), ROWS (database vectors a tile) and
 * MADD(a, x, s) (a += x * s, s a float: fused by an intrinsic where the
 * CPU has FMA, so that no compiler setting can split it) are defined
 * before, and undefined here after. */
#define NV (LANES / WIDTH) /* vectors a query group */

TARGET static void NAME(float *s, long lds, const float *qp, int nq,
			const float *v, long ldv, long n, int dim,
			const float *zero)
{
	typedef float vec __attribute__((vector_size(WIDTH * sizeof(float))));
	int groups = (nq + LANES - 1) / LANES;
	for (int g = 0; g < groups; g++) {
		const float *p = qp + (size_t)g * dim * LANES;
		int lanes = nq - g * LANES < LANES ? nq - g * LANES : LANES;
		for (long j = 0; j < n; j += ROWS) {
			const float *r[ROWS];
			for (int i = 0; i < ROWS; i++)
				r[i] = j + i < n ? v + (j + i) * ldv : zero;
			vec a[ROWS][NV] = {{{0}}};
			for (int k = 0; k < dim; k++) {
				vec x[NV];
#pragma GCC unroll 4
				for (int u = 0; u < NV; u++)
					memcpy(&x[u], p + (size_t)k * LANES + u * WIDTH,
					       sizeof x[u]);
#pragma GCC unroll 16
				for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 4
					for (int u = 0; u < NV; u++)
						MADD(a[i][u], x[u], r[i][k]);
			}
			float t[ROWS][LANES];
#pragma GCC unroll 16
			for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 4
				for (int u = 0; u < NV; u++)
					memcpy(t[i] + u * WIDTH, &a[i][u],
					       sizeof a[i][u]);
			int rows = n - j < ROWS ? (int)(n - j) : ROWS;
			for (int l = 0; l < lanes; l++) {
				float *o = s + (size_t)(g * LANES + l) * lds + j;
				for (int i = 0; i < rows; i++)
					o[i] = t[i][l];
			}
		}
	}
}

#undef NV
#undef NAME
#undef TARGET
#undef WIDTH
#undef ROWS
#undef MADD
