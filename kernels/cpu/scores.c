/* scores.c - exact search's inner products (scores.h).  A group of
 * queries shares the lanes of the vector registers and a tile takes a
 * few database vectors; every lane of every tile runs the same chain of
 * multiply-adds over the dimensions, so a score does not depend on its
 * neighbours: a short group's missing queries are zeros, a short tile's
 * missing rows a row of zeros, and the dimensions are never split.  The
 * tile is written once (scores_tile.h) and compiled for AVX-512 (16
 * queries in one register), AVX2 with FMA (16 in two) and baseline
 * x86-64 or any other CPU (16 in four 4-lane vectors, fused where the
 * compiler contracts a * b + c, as GCC and clang do for 64-bit ARM); the
 * program picks one when it starts.  AVX-512 and AVX2 give the same
 * bits, fused by their intrinsics at any optimisation level. */
#include "kernels/scores.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

enum {
	LANES = 16,       /* queries a group */
	BLOCK = 48,       /* database vectors a task, kept in cache while
			     every query group passes over them */
};

/* block_*(s, lds, qp, nq, v, ldv, n, dim, zero): the scores of n
 * database vectors against every query group, qp holding the groups
 * dimension-major ([groups][dim][LANES]). */
#define NAME block_base
#define TARGET
#define WIDTH 4
#define ROWS 3
#define MADD(a, x, s) ((a) += (x) * (s))
#include "kernels/cpu/scores_tile.h"
#if defined(__x86_64__) && defined(__GNUC__)
#define NAME block_avx2
#define TARGET __attribute__((target("avx2,fma")))
#define WIDTH 8
#define ROWS 6
#define MADD(a, x, s) ((a) = _mm256_fmadd_ps((x), _mm256_set1_ps(s), (a)))
#include "kernels/cpu/scores_tile.h"
#define NAME block_avx512
#define TARGET __attribute__((target("avx512f")))
#define WIDTH 16
#define ROWS 12
#define MADD(a, x, s) ((a) = _mm512_fmadd_ps((x), _mm512_set1_ps(s), (a)))
#include "kernels/cpu/scores_tile.h"
#endif

typedef void block_fn(float *, long, const float *, int, const float *, long,
		      long, int, const float *);

/* TK_NO_AVX512 and TK_NO_AVX2 in the environment select the narrower
 * code (for tests). */
static block_fn *pick(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && !getenv("TK_NO_AVX512") &&
	    !getenv("TK_NO_AVX2"))
		return block_avx512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	    !getenv("TK_NO_AVX2"))
		return block_avx2;
#endif
	return block_base;
}

size_t scores_packed_bytes(int nq, int dim)
{
	size_t groups = (size_t)(nq + LANES - 1) / LANES;
	size_t qn = groups * dim * LANES;
	return (qn + dim + LANES) / LANES * LANES * sizeof(float);
}

void scores_packed_cost(int dim, uint64_t *per_query, uint64_t *fixed)
{
	/* scores_packed_bytes(nq, dim) <= ((nq + LANES) dim + 2 LANES) floats */
	*per_query = (uint64_t)dim * sizeof(float);
	*fixed = ((uint64_t)LANES * dim + 2 * LANES) * sizeof(float);
}

float *scores_pack(const float *q, int nq, int dim)
{
	size_t bytes = scores_packed_bytes(nq, dim);
	float *qp = aligned_alloc(64, bytes); /* and a row of zeros */
	if (!qp)
		abort();
	memset(qp, 0, bytes);
	for (int i = 0; i < nq; i++)
		for (int k = 0; k < dim; k++)
			qp[((size_t)(i / LANES) * dim + k) * LANES + i % LANES] =
				q[(size_t)i * dim + k];
	return qp;
}

void scores_forward_packed(float *s, const float *qp, const float *v,
			   int nq, long m, int dim, long lds, long ldv,
			   int threads)
{
	if (nq <= 0 || m <= 0)
		return;
	block_fn *block = pick();
	int groups = (nq + LANES - 1) / LANES;
	const float *zero = qp + (size_t)groups * dim * LANES;
	long blocks = (m + BLOCK - 1) / BLOCK;
	int nt = threads > 0 ? threads : omp_get_max_threads();
	if (omp_in_parallel() || blocks < 2)
		nt = 1;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
	for (long b = 0; b < blocks; b++) {
		long j = b * BLOCK;
		block(s + j, lds, qp, nq, v + j * ldv, ldv,
		      m - j < BLOCK ? m - j : BLOCK, dim, zero);
	}
}

void scores_forward(float *s, const float *q, const float *v, int nq,
		    long m, int dim, long lds, long ldv, int threads)
{
	if (nq <= 0 || m <= 0)
		return;
	float *qp = scores_pack(q, nq, dim);
	scores_forward_packed(s, qp, v, nq, m, dim, lds, ldv, threads);
	free(qp);
}
