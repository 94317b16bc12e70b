/* test_scores - kernels/cpu/scores.c, exact search's products: each score
 * is the chain of multiply-adds over the dimensions in order (fused where
 * the CPU has FMA, as fmaf computes it), bit for bit, with every vector
 * width the CPU has (TK_NO_AVX512, TK_NO_AVX2); and the same bits for any
 * sub-problem: other query counts and offsets, database offsets and
 * lengths, row strides, thread counts. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/scores.h"

static uint64_t state = 777;
static float rnd(void)
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((int32_t)(state >> 32)) / 2147483648.0f;
}

static long urand(long n)
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (long)((state >> 33) % (uint64_t)n);
}

static int has_fma(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("fma");
#else
	return 1;
#endif
}

/* The sums in order: fused (fmaf), or each product and sum rounded. */
static float chain(const float *a, const float *b, int dim, int fused)
{
	float s = 0.0f;
	for (int k = 0; k < dim; k++) {
		if (fused) {
			s = fmaf(a[k], b[k], s);
		} else {
			volatile float p = a[k] * b[k];
			s = s + p;
		}
	}
	return s;
}

static void one_shape(int nq, long m, int dim)
{
	long ldv = dim + 3, lds = m + 5;
	float *q = malloc(sizeof *q * nq * dim);
	float *v = malloc(sizeof *v * m * ldv);
	float *s = malloc(sizeof *s * nq * lds);
	float *t = malloc(sizeof *t * nq * lds);
	for (long i = 0; i < (long)nq * dim; i++)
		q[i] = rnd();
	for (long i = 0; i < m * ldv; i++)
		v[i] = rnd();
	static const char *const narrower[] = {NULL, "TK_NO_AVX512", "TK_NO_AVX2"};
	float *first = malloc(sizeof *first * nq * lds);
	for (int w = 0; w < 3; w++) {
		unsetenv("TK_NO_AVX512");
		unsetenv("TK_NO_AVX2");
		if (narrower[w])
			setenv(narrower[w], "1", 1);
		scores_forward(s, q, v, nq, m, dim, lds, ldv, 0);
		/* Fused on the vector paths of a CPU with FMA; the portable
		 * code may be either, but the same way for every score. */
		int fused_all = 1, plain_all = 1;
		for (int i = 0; i < nq; i++)
			for (long j = 0; j < m; j++) {
				float x = s[i * lds + j];
				float f = chain(q + i * dim, v + j * ldv, dim, 1);
				float p = chain(q + i * dim, v + j * ldv, dim, 0);
				fused_all &= !memcmp(&x, &f, sizeof x);
				plain_all &= !memcmp(&x, &p, sizeof x);
			}
		if (w < 2 && has_fma())
			CHECK(fused_all);
		else
			CHECK(fused_all || plain_all);
		if (w == 0)
			memcpy(first, s, sizeof *s * nq * lds);
		else if (w == 1 && has_fma())
			CHECK(!memcmp(first, s, sizeof *s * nq * lds));

		/* Sub-problems give the same bits. */
		for (int r = 0; r < 40; r++) {
			int q0 = (int)urand(nq), nq2 = 1 + (int)urand(nq - q0);
			long j0 = urand(m), m2 = 1 + urand(m - j0);
			long lds2 = m2 + urand(3);
			scores_forward(t, q + q0 * dim, v + j0 * ldv, nq2, m2, dim,
				       lds2, ldv, 1 + (int)urand(3));
			int same = 1;
			for (int i = 0; i < nq2; i++)
				same &= !memcmp(t + i * lds2, s + (q0 + i) * lds + j0,
						sizeof *t * m2);
			CHECK(same);
		}
		/* Queries packed once, scored against chunks of the
		 * database in turn (as tk-rank's passes do): the same bits. */
		float *qp = scores_pack(q, nq, dim);
		for (long j0 = 0; j0 < m; j0 += 7) {
			long m2 = m - j0 < 7 ? m - j0 : 7;
			scores_forward_packed(t, qp, v + j0 * ldv, nq, m2, dim, lds,
					      ldv, 0);
			int same = 1;
			for (int i = 0; i < nq; i++)
				same &= !memcmp(t + i * lds, s + i * lds + j0,
						sizeof *t * m2);
			CHECK(same);
		}
		free(qp);
	}
	unsetenv("TK_NO_AVX512");
	unsetenv("TK_NO_AVX2");
	free(first);
	free(q);
	free(v);
	free(s);
	free(t);
}

int main(void)
{
	one_shape(1, 1, 1);
	one_shape(37, 1000, 67);
	one_shape(16, 97, 16);
	one_shape(5, 300, 1024);
	one_shape(70, 130, 128);
	return CHECK_DONE();
}
