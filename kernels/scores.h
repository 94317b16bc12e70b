/* scores.h - exact search's inner products of queries and database
 * vectors.  Each score is one fixed sum, the same bits wherever and
 * however it is computed: however the database is chunked or sharded,
 * however many queries share a pass, on any thread count.  A matrix
 * library does not promise that (OpenBLAS's Haswell kernels, and its Zen
 * kernels for AMD's Zen 1 to 3, round a product differently by where it
 * falls in the matrices), and tk-rank's rankings do.  CPU only: on a GPU
 * dev_scores (dispatch.h) runs cuBLAS's GEMM, whose scores may differ in
 * the last bits (tk-rank(1), --device). */
#ifndef TK_KERNELS_SCORES_H
#define TK_KERNELS_SCORES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* s[i, j] = q[i] . v[j]: a chain of multiply-adds in the order of the
 * dimensions, starting from 0 (fused on CPUs with FMA, which every
 * x86-64 CPU since 2013 and every 64-bit ARM has; on older x86-64 CPUs
 * each multiply and add rounds).  threads: at most that many (0: all). */
void scores_forward(float *s,       /* [nq, lds] */
		    const float *q, /* [nq, dim] */
		    const float *v, /* [m, ldv] */
		    int nq, long m, int dim, long lds, long ldv, int threads);

/* The same with the queries packed once (scores_pack), for callers that
 * score many chunks against them: scores_forward packs them on every
 * call, a copy of the queries allocated and freed each time. */
/* Bytes of nq queries of dim packed, a row of zeros included. */
size_t scores_packed_bytes(int nq, int dim);
/* A bound of scores_packed_bytes(nq, dim): nq per_query + fixed, for
 * memory plans made before nq is known. */
void scores_packed_cost(int dim, uint64_t *per_query, uint64_t *fixed);
/* q packed for scores_forward_packed: scores_packed_bytes(nq, dim) bytes,
 * 64-byte aligned; free() it. */
float *scores_pack(const float *q, /* [nq, dim] */
		   int nq, int dim);
void scores_forward_packed(float *s,        /* [nq, lds] */
			   const float *qp, /* scores_pack(q, nq, dim) */
			   const float *v,  /* [m, ldv] */
			   int nq, long m, int dim, long lds, long ldv,
			   int threads);

#ifdef __cplusplus
}
#endif
#endif
