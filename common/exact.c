/* exact.c - exact inner-product search over a database read in chunks:
 * the products by kernels/scores.h (the same bits however the work is
 * cut, which a BLAS GEMM does not promise), rankings kept whole and
 * radix-sorted or selected K at a time, queries grouped into passes to
 * fit the memory. */
#include "exact.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/dispatch.h"
#include "kernels/scores.h"
#include "tk.h"

/* Scores of ng queries against the database, chunk by chunk, into
 * blocks kept whole (full ranking). */
struct blocks {
	float **s; /* [ng, ld] each */
	long *base, *n, ld;
	int nb, cap;
	uint64_t bytes;
};

static void blocks_add(struct blocks *b, float *s, long base, long n,
		       uint64_t bytes)
{
	if (b->nb == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		b->s = xrealloc(b->s, b->cap * sizeof *b->s);
		b->base = xrealloc(b->base, b->cap * sizeof *b->base);
		b->n = xrealloc(b->n, b->cap * sizeof *b->n);
	}
	b->s[b->nb] = s;
	b->base[b->nb] = base;
	b->n[b->nb++] = n;
	b->bytes += bytes;
}

static void blocks_free(struct blocks *b)
{
	for (int i = 0; i < b->nb; i++)
		free(b->s[i]);
	free(b->s);
	free(b->base);
	free(b->n);
	memset(b, 0, sizeof *b);
}

/* ---- tk-rank --device cuda: the queries of a pass and each chunk on
 * the device, the products there; a top-K pass selects each chunk's
 * best there too (dev_rank_chunk) and merges them here. ---- */

static struct {
	float *q, *v, *s;
	size_t qcap, vcap, scap; /* bytes */
	uint64_t *keys;          /* host */
	size_t kcap;
} gpu;

/* The device path (on the CPU device too, for the tests). */
static int on_gpu(const struct search_db *db)
{
	return db->dv != NULL;
}

static void *grow(const struct tk_dev *dv, void *p, size_t *cap, size_t bytes)
{
	if (bytes <= *cap)
		return p;
	dev_free(dv, p);
	*cap = bytes + bytes / 4;
	return dev_alloc(dv, *cap);
}

/* A pass's queries to the device. */
static void gpu_queries(const struct search_db *db, const float *q, long nq)
{
	size_t b = (size_t)nq * db->dim * sizeof *q;
	gpu.q = grow(db->dv, gpu.q, &gpu.qcap, b);
	dev_upload(db->dv, gpu.q, q, b);
}

/* A chunk's m vectors (ld floats apart) to the device, packed. */
static void gpu_chunk(const struct search_db *db, const float *v, long ld,
		      long m)
{
	size_t row = (size_t)db->dim * sizeof *v;
	gpu.v = grow(db->dv, gpu.v, &gpu.vcap, m * row);
	dev_upload_rows(db->dv, gpu.v, row, v, ld * sizeof *v, row, m);
}

static void scores_gpu(const struct search_db *db, float *s, long nq,
		       const float *v, long ld, long m, long chunk)
{
	const struct tk_dev *dv = db->dv;
	gpu_chunk(db, v, ld, m);
	gpu.s = grow(dv, gpu.s, &gpu.scap, (size_t)nq * m * sizeof *s);
	dev_scores(dv, gpu.s, gpu.q, gpu.v, (int)nq, m, db->dim);
	dev_download_rows(dv, s, chunk * sizeof *s, gpu.s, m * sizeof *s,
			  m * sizeof *s, nq);
}

/* The kk best keys of each of nq queries in a chunk at positions base.. */
static const uint64_t *topk_gpu(const struct search_db *db, long nq,
				const float *v, long ld, long m, long base,
				long kk)
{
	gpu_chunk(db, v, ld, m);
	size_t need = (size_t)nq * kk;
	if (need > gpu.kcap) {
		free(gpu.keys);
		gpu.kcap = need;
		gpu.keys = xmalloc(xmul(need, sizeof *gpu.keys));
	}
	dev_rank_chunk(db->dv, gpu.keys, gpu.q, gpu.v, (int)nq, m, db->dim,
		       (uint32_t)base, kk);
	return gpu.keys;
}

/* Threads for the products of a pass of ng queries (0: all).  Reading a
 * database vector takes the reading thread about 2 us, and one core's
 * products about 2 ng dim / 1e11 s: below ng * dim = 2^17 the pass
 * waits on the reader anyway, and more threads would only spin beside
 * it, taking the reader's core (measured: tests/bench/rank.sh). */
static int score_threads(const struct search_db *db, long ng)
{
	return !db->mem && (uint64_t)ng * db->dim <= (1u << 17) ? 1 : 0;
}

/* Full ranking of queries q[0..ng): every score kept, then each row
 * radix-sorted (positions already ascend, so only scores are sorted). */
static void rank_full(struct search_db *db, const float *q, long ng,
		      long q0, long top, uint64_t budget, exact_emit emit,
		      void *ctx)
{
	struct blocks b = {.ld = db->chunk_cap};
	int nt = omp_get_max_threads();
	nt = nt < ng ? nt : (int)ng;
	const float *v;
	long ld;
	long m;
	struct tk_progress p;
	tk_progress_start(&p, "database vectors", db->est > 0 ? db->est : 0);
	int threads = score_threads(db, ng);
	/* The queries packed once for the pass (scores.h). */
	float *qp = NULL;
	uint64_t packed = 0;
	if (on_gpu(db)) {
		gpu_queries(db, q, ng);
	} else {
		qp = scores_pack(q, (int)ng, db->dim);
		packed = scores_packed_bytes((int)ng, db->dim);
	}
	search_db_rewind(db);
	while ((m = search_db_next(db, &v, &ld)) > 0) {
		uint64_t bytes = (uint64_t)ng * db->chunk_cap * sizeof(float);
		/* The scores, and per thread the sort's keys and a frame
		 * (a pipe's length is learnt only now). */
		uint64_t sort = (uint64_t)nt * db->pos * 24;
		if (b.bytes + bytes + sort + packed > budget)
			die_usage("the scores of %ld queries outgrow --mem "
				  "after %ld database vectors: raise --mem, or "
				  "give DB.bin as a file so that queries can be "
				  "ranked in several passes",
				  ng, db->pos - m);
		float *s = xmalloc(bytes);
		if (on_gpu(db))
			scores_gpu(db, s, ng, v, ld, m, db->chunk_cap);
		else
			scores_forward_packed(s, qp, v, (int)ng, m, db->dim, b.ld,
					      ld, threads);
		blocks_add(&b, s, db->pos - m, m, bytes);
		tk_progress_step(&p, m);
	}
	tk_progress_end(&p);
	free(qp);
	long n = db->pos;
	if (n == 0)
		die_data("%s: the database is empty", db->path);
	long k = top && top < n ? top : n;
	uint64_t *keys = xmalloc(xmul(xmul(nt, n), 2 * sizeof *keys));
	for (long g0 = 0; g0 < ng; g0 += nt) {
		long nb = ng - g0 < nt ? ng - g0 : nt;
#pragma omp parallel for schedule(dynamic, 1)
		for (long t = 0; t < nb; t++) {
			uint64_t *key = keys + (size_t)t * 2 * n;
			for (int i = 0; i < b.nb; i++) {
				const float *s = b.s[i] + (size_t)(g0 + t) * b.ld;
				uint64_t *o = key + b.base[i];
				for (long j = 0; j < b.n[i]; j++)
					o[j] = rank_key(s[j], (uint32_t)(b.base[i] + j));
			}
			rank_sort(key, key + n, n, 1);
		}
		for (long t = 0; t < nb; t++)
			emit(ctx, q0 + g0 + t, keys + (size_t)t * 2 * n, k);
	}
	free(keys);
	blocks_free(&b);
}

/* Query i's k best are t->buf[0..t->n), sorted, after a chunk at
 * positions base... brought new ones in: their vectors come from the
 * chunk v, the others from the previous list (positions op[0..*on)). */
static void keep_vectors(struct topk *t, float *vecs, int32_t *op, long *on,
			 const float *v, long ld, long base, float *tmp, int dim)
{
	for (size_t j = 0; j < t->n; j++) {
		long pos = rank_key_pos(t->buf[j]);
		const float *src = NULL;
		if (pos >= base)
			src = v + (size_t)(pos - base) * ld;
		else
			for (long h = 0; h < *on && !src; h++)
				if (op[h] == pos)
					src = vecs + (size_t)h * dim;
		memcpy(tmp + j * dim, src, dim * sizeof *tmp);
	}
	memcpy(vecs, tmp, t->n * dim * sizeof *tmp);
	for (size_t j = 0; j < t->n; j++)
		op[j] = (int32_t)rank_key_pos(t->buf[j]);
	*on = (long)t->n;
}

void exact_topk(struct search_db *db, const float *q, long ng, long k,
		      struct topk *tk, float *vecs)
{
	long cap = db->chunk_cap;
	int dev = on_gpu(db);
	/* The scores of a chunk (on the GPU they stay there). */
	float *s = dev ? NULL : xmalloc(xmul(xmul(ng, cap), sizeof *s));
	int dim = db->dim;
	int32_t *vpos = NULL;
	long *vn = NULL;
	float *tmp = NULL;
	if (vecs) {
		vpos = xmalloc(xmul(xmul(ng, k), sizeof *vpos));
		vn = xcalloc(ng, sizeof *vn);
		tmp = xmalloc(xmul(xmul(omp_get_max_threads(), k), dim * sizeof *tmp));
	}
	for (long i = 0; i < ng; i++)
		topk_init(&tk[i], k);
	const float *v;
	long ld;
	long m;
	struct tk_progress p;
	tk_progress_start(&p, "database vectors", db->est > 0 ? db->est : 0);
	int threads = score_threads(db, ng);
	/* The queries packed once for the pass (scores.h). */
	float *qp = dev ? NULL : scores_pack(q, (int)ng, dim);
	if (dev)
		gpu_queries(db, q, ng);
	search_db_rewind(db);
	while ((m = search_db_next(db, &v, &ld)) > 0) {
		long base = db->pos - m;
		long kk = k < m ? k : m;
		const uint64_t *keys = NULL;
		if (dev)
			keys = topk_gpu(db, ng, v, ld, m, base, kk);
		else
			scores_forward_packed(s, qp, v, (int)ng, m, dim, cap, ld,
					      threads);
		/* Most scores cost a comparison: threads only pay for large
		 * chunks (idle OpenMP threads spin, taking time from the products'). */
#pragma omp parallel for schedule(dynamic, 16) if (ng * m >= (1l << 22))
		for (long i = 0; i < ng; i++) {
			struct topk *t = &tk[i];
			if (keys)
				topk_offer_keys(t, keys + (size_t)i * kk, kk);
			else
				topk_offer(t, s + (size_t)i * cap, m, (uint32_t)base);
			if (!vecs)
				continue;
			/* Only when this chunk brought new ones in; otherwise
			 * the set is the one whose vectors are kept. */
			size_t j = 0;
			while (j < t->n && rank_key_pos(t->buf[j]) < base)
				j++;
			if (j == t->n)
				continue;
			topk_finish(t);
			keep_vectors(t, vecs + (size_t)i * k * dim,
				     vpos + (size_t)i * k, &vn[i], v, ld, base,
				     tmp + (size_t)omp_get_thread_num() * k * dim,
				     dim);
		}
		tk_progress_step(&p, m);
	}
	tk_progress_end(&p);
	if (db->pos == 0)
		die_data("%s: the database is empty", db->path);
#pragma omp parallel for schedule(dynamic, 16)
	for (long i = 0; i < ng; i++)
		topk_finish(&tk[i]);
	free(s);
	free(qp);
	free(vpos);
	free(vn);
	free(tmp);
}

static void rank_and_emit(struct search_db *db, const float *q, long ng,
			  long q0, long k, exact_emit emit, void *ctx)
{
	struct topk *tk = xmalloc(xmul(ng, sizeof *tk));
	exact_topk(db, q, ng, k, tk, NULL);
	for (long i = 0; i < ng; i++) {
		emit(ctx, q0 + i, tk[i].buf, (long)tk[i].n);
		topk_free(&tk[i]);
	}
	free(tk);
}

void exact_pack_cost(const struct search_db *db, uint64_t *per_query,
		     uint64_t *fixed)
{
	*per_query = *fixed = 0; /* on a device: none packed */
	if (!on_gpu(db))
		scores_packed_cost(db->dim, per_query, fixed);
}

/* How many queries fit in one pass, with chunks of db->chunk_cap. */
static long plan_group(const struct search_db *db, long nq, long top,
		       uint64_t avail, int full, uint64_t *full_budget)
{
	int nt = omp_get_max_threads();
	long n = db->n >= 0 ? db->n : db->est;
	uint64_t chunk = 2 * (uint64_t)db->chunk_cap * db->dim * 4; /* 2 read */
	uint64_t per_query, fixed = chunk;
	if (full) {
		/* Scores kept whole, plus per thread the sort's two key
		 * arrays and the frame being written. */
		per_query = (uint64_t)(n > 0 ? n + db->chunk_cap : 0) * 4;
		fixed += (uint64_t)nt * (n > 0 ? n : 0) * 24;
	} else {
		long k = n > 0 && top > n ? n : top;
		per_query = (uint64_t)db->chunk_cap * 4 + (2 * (uint64_t)k + 64) * 8;
	}
	uint64_t pq, pf; /* the queries packed for the pass */
	exact_pack_cost(db, &pq, &pf);
	per_query += pq;
	fixed += pf;
	if (avail < fixed + per_query)
		die_usage("too little memory (--mem): ranking even one "
			  "query needs %.1fM besides the queries",
			  (double)(fixed + per_query) / (1 << 20) + 0.1);
	*full_budget = avail - chunk;
	if (n <= 0) /* a pipe (or empty): all queries in its only pass */
		return nq;
	uint64_t g = (avail - fixed) / per_query;
	return g < (uint64_t)nq ? (long)g : nq;
}

void exact_rank(struct search_db *db, const float *q, long nq, long top,
		uint64_t avail, exact_emit emit, void *ctx)
{
	long n = db->n >= 0 ? db->n : db->est;
	int full = !top || (n >= 0 && top >= n);
	uint64_t budget;
	long g = plan_group(db, nq, top, avail, full, &budget);
	if (g < nq)
		tk_note("ranking %ld queries in passes of %ld over %s", nq, g,
			db->path);
	for (long q0 = 0; q0 < nq; q0 += g) {
		long ng = nq - q0 < g ? nq - q0 : g;
		if (full)
			rank_full(db, q + (size_t)q0 * db->dim, ng, q0, top,
				  budget, emit, ctx);
		else
			rank_and_emit(db, q + (size_t)q0 * db->dim, ng, q0, top,
				      emit, ctx);
	}
}
