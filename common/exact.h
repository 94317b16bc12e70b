/* exact.h - exact inner-product search of queries against a database read
 * in chunks (search.h): every score computed; full rankings or the K best,
 * with equal scores ranked by the lower position (rank.h's keys); the
 * queries in as many passes over the database as the memory allows. */
#ifndef TK_EXACT_H
#define TK_EXACT_H

#include <stdint.h>

#include "rank.h"
#include "search.h"

/* Receives query i's ranking: n keys, best first, valid during the call.
 * Queries come in order. */
typedef void (*exact_emit)(void *ctx, long i, const uint64_t *keys, long n);

/* Rank the database for each of q[0..nq) ([nq, db->dim]): the 'top' best,
 * or all when top is 0, within 'avail' bytes besides the queries (dies
 * with a usage error when even one query does not fit). */
void exact_rank(struct search_db *db, const float *q, long nq, long top,
		uint64_t avail, exact_emit emit, void *ctx);

/* The k best for each of q[0..ng) in one pass: tk[i] (initialised here;
 * topk_free them), sorted best first.  With vecs, vecs[(i * k + j) * dim]
 * receives the vector of query i's j-th best (for query expansion). */
void exact_topk(struct search_db *db, const float *q, long ng, long k,
		struct topk *tk, float *vecs);

/* The bytes a pass's queries take packed for the products (scores.h),
 * as a cost per query and a fixed part: none on a device. */
void exact_pack_cost(const struct search_db *db, uint64_t *per_query,
		     uint64_t *fixed);

#endif
