/* tk-rank - exact inner-product search: the database ranked for each
 * query, in chunks bounded by --mem; merging of sharded rankings; alpha
 * query expansion and database-side augmentation. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/exact.h"
#include "common/rank.h"
#include "common/search.h"
#include "common/stream.h"
#include "common/tk.h"
#include "kernels/dispatch.h"

static const char usage[] =
    "usage: tk-rank [--top K] [--mem SIZE] [--qe N] [--dba N] [--alpha A]\n"
    "               [--device DEV] [--precision P] Q.bin DB.bin\n"
    "       tk-rank --merge OFFSETS [--top K] RANKS...\n"
    "One rank frame per query of Q.bin: the positions of DB.bin's vectors\n"
    "best first ('rank' I32 [K]) and their inner products ('score' F32\n"
    "[K]); equal scores by the lower position.  See tk-rank(1).\n"
    "  -k, --top K         the K best (default: the whole database)\n"
    "  -m, --mem SIZE      working memory (default 2G); more queries than\n"
    "                      fit are ranked in several passes over DB.bin\n"
    "      --qe N          alpha query expansion with the top N\n"
    "      --dba N         alpha database-side augmentation with the top N\n"
    "                      neighbours (holds the database in memory)\n"
    "      --alpha A       the weights' exponent (default 3)\n"
    "      --device DEV    cpu (default), cuda or cuda:N: the products there\n"
    "      --precision P   on the GPU: fp32 (default), tf32 or bf16\n"
    "      --merge OFFSETS merge rankings of database shards; OFFSETS:\n"
    "                      each shard's first position in the whole\n"
    "                      database, comma-separated, one per RANKS file\n"
    "  -q, --quiet         only errors on stderr\n"
    "      --progress      show progress even when stderr is not a terminal\n"
    "  -h, --help          this text\n"
    "      --version       version, and whether CUDA support is built in\n";

enum {
	OPT_QE = TK_OPT_FIRST_TOOL,
	OPT_DBA,
	OPT_ALPHA,
	OPT_MERGE,
	OPT_DEVICE,
	OPT_PRECISION
};

struct options {
	long top; /* 0: all */
	uint64_t mem;
	long qe, dba;
	double alpha;
	const char *merge;
	char **files;
	int nfiles;
	struct tk_dev dv;
};

static void parse_options(struct options *o, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"top", required_argument, 0, 'k'},
	    {"mem", required_argument, 0, 'm'},
	    {"qe", required_argument, 0, OPT_QE},
	    {"dba", required_argument, 0, OPT_DBA},
	    {"alpha", required_argument, 0, OPT_ALPHA},
	    {"merge", required_argument, 0, OPT_MERGE},
	    {"device", required_argument, 0, OPT_DEVICE},
	    {"precision", required_argument, 0, OPT_PRECISION},
	    TK_COMMON_OPTIONS,
	    {0, 0, 0, 0}};
	int c, have_alpha = 0;
	const char *device = NULL, *precision = NULL;
	memset(o, 0, sizeof *o);
	o->mem = 2ull << 30;
	o->alpha = 3;
	while ((c = tk_getopt(argc, argv, "k:m:qh", longopts)) != -1) {
		switch (c) {
		case 'k': o->top = tk_parse_long("--top", optarg, 1, INT32_MAX); break;
		case 'm': o->mem = tk_parse_size("--mem", optarg); break;
		case OPT_QE: o->qe = tk_parse_long("--qe", optarg, 1, 1 << 16); break;
		case OPT_DBA: o->dba = tk_parse_long("--dba", optarg, 1, 1 << 16); break;
		case OPT_ALPHA:
			o->alpha = tk_parse_double("--alpha", optarg);
			have_alpha = 1;
			break;
		case OPT_MERGE: o->merge = optarg; break;
		case OPT_DEVICE: device = optarg; break;
		case OPT_PRECISION: precision = optarg; break;
		default: tk_common_option(c, usage);
		}
	}
	char err[256];
	if (tk_dev_parse(&o->dv, device, precision, err, sizeof err) < 0)
		die_usage("%s", err);
	o->files = argv + optind;
	o->nfiles = argc - optind;
	if (o->alpha < 0)
		die_usage("--alpha must not be negative");
	if (have_alpha && !o->qe && !o->dba)
		die_usage("--alpha goes with --qe or --dba");
	if (o->merge) {
		if (o->qe || o->dba)
			die_usage("--merge takes no --qe or --dba: expand "
				  "before sharding");
		if (o->nfiles < 1)
			die_usage("--merge needs the RANKS files");
		return;
	}
	if (o->nfiles != 2)
		die_usage("expected Q.bin and DB.bin (try --help)");
	if (!strcmp(o->files[0], "-") && !strcmp(o->files[1], "-"))
		die_usage("Q.bin and DB.bin cannot both be standard input");
}

/* ---- writing rankings ---- */

/* A rank frame: the query's metadata, 'dbsize' (the vectors of the
 * database ranked, so that --merge can tell a shard's full ranking from
 * its best K and check the offsets; -1: unknown, left out) and the keys
 * as 'rank' and 'score'. */
static void write_ranking(const struct st_doc *meta, const uint64_t *keys,
			  long n, long dbsize)
{
	static int32_t *rank; /* kept for the next frame */
	static float *score;
	static long cap;
	if (n > cap) {
		cap = n;
		rank = xrealloc(rank, xmul(n, sizeof *rank));
		score = xrealloc(score, xmul(n, sizeof *score));
	}
	for (long i = 0; i < n; i++) {
		rank[i] = (int32_t)rank_key_pos(keys[i]);
		score[i] = rank_key_score(keys[i]);
	}
	static struct st_doc d;
	st_clear(&d);
	for (int i = 0; i < meta->nmeta; i++)
		if (strcmp(meta->meta[i].key, "dbsize"))
			st_meta_set(&d, meta->meta[i].key, meta->meta[i].val);
	if (dbsize >= 0)
		st_meta_setf(&d, "dbsize", "%ld", dbsize);
	int64_t shape[1] = {n};
	st_add(&d, "rank", ST_I32, 1, shape, rank);
	st_add(&d, "score", ST_F32, 1, shape, score);
	tk_write_frame(&d);
}

struct emit_ctx {
	const struct st_doc *meta; /* the queries' */
	const struct search_db *db;
};

/* exact_emit: query i's ranking as a rank frame with its metadata (the
 * database's size is known once a pass has read it all). */
static void emit_frame(void *ctx, long i, const uint64_t *keys, long n)
{
	const struct emit_ctx *c = ctx;
	write_ranking(&c->meta[i], keys, n, c->db->n);
}

/* ---- query expansion and database-side augmentation ---- */

/* Weight of a neighbour of similarity s: max(s, 0)^alpha. */
static float weight(float s, double alpha)
{
	return (float)pow(s > 0 ? s : 0, alpha);
}

static void normalize(float *x, int dim)
{
	double ss = 0;
	for (int i = 0; i < dim; i++)
		ss += (double)x[i] * x[i];
	if (ss > 0)
		for (int i = 0; i < dim; i++)
			x[i] = (float)(x[i] / sqrt(ss));
}

/* q_i <- normalize(q_i + sum_j w(s_ij) d_j) over its n best d_j. */
static void query_expansion(struct search_db *db, float *q, long nq, long n,
			    double alpha, uint64_t avail)
{
	int dim = db->dim;
	/* Per query: its scores of a chunk, its top n, their vectors, and
	 * the query packed for the products. */
	uint64_t pq, pf;
	exact_pack_cost(db, &pq, &pf);
	uint64_t fixed = 2 * (uint64_t)db->chunk_cap * dim * 4 +
			 (uint64_t)omp_get_max_threads() * n * dim * 4 + pf;
	uint64_t per = db->chunk_cap * 4 + (2 * n + 64) * 8 +
		       n * (dim * 4 + 4) + pq;
	if (avail < fixed + per)
		die_usage("--mem is too small for --qe %ld: it needs %.1fM "
			  "besides the queries",
			  n, (double)(fixed + per) / (1 << 20) + 0.1);
	uint64_t fit = (avail - fixed) / per;
	long g = fit < (uint64_t)nq ? (long)fit : nq;
	struct topk *tk = xmalloc(xmul(g, sizeof *tk));
	float *vecs = xmalloc(xmul(xmul(g, n), dim * sizeof *vecs));
	for (long q0 = 0; q0 < nq; q0 += g) {
		long ng = nq - q0 < g ? nq - q0 : g;
		exact_topk(db, q + (size_t)q0 * dim, ng, n, tk, vecs);
#pragma omp parallel for
		for (long i = 0; i < ng; i++) {
			float *x = q + (size_t)(q0 + i) * dim;
			for (size_t j = 0; j < tk[i].n; j++) {
				float w = weight(rank_key_score(tk[i].buf[j]), alpha);
				const float *d = vecs + ((size_t)i * n + j) * dim;
				for (int h = 0; h < dim; h++)
					x[h] += w * d[h];
			}
			normalize(x, dim);
			topk_free(&tk[i]);
		}
	}
	free(tk);
	free(vecs);
}

/* d_j <- normalize(d_j + sum_i w(s_ji) d_i) over the n best d_i != d_j
 * (positions, so a duplicate of d_j elsewhere counts). */
static void db_augmentation(struct search_db *db, long n, double alpha,
			    uint64_t avail)
{
	search_db_load(db);
	long N = db->n;
	int dim = db->dim;
	if (N == 0)
		die_data("%s: the database is empty", db->path);
	/* The vectors and their augmented copy; reading them may have
	 * held more for a moment (search_db_load's growing buffer). */
	uint64_t held = (uint64_t)N * dim * 4 * 2;
	uint64_t peak = db->load_peak > held ? db->load_peak : held;
	if (peak > avail)
		die_usage("--dba holds the database twice in memory "
			  "(%.1fM for %ld vectors): raise --mem",
			  (double)peak / (1 << 20), N);
	avail -= held;
	long k = n + 1 < N ? n + 1 : N;
	uint64_t pq, pf; /* the vectors as queries, packed */
	exact_pack_cost(db, &pq, &pf);
	uint64_t per = db->chunk_cap * 4 + (2 * (uint64_t)k + 64) * 8 + pq;
	long g = avail > pf ? (avail - pf) / per : 0;
	if (g < 1)
		die_usage("--mem is too small for --dba");
	float *aug = xmalloc(xmul(xmul(N, dim), sizeof *aug));
	struct topk *tk = xmalloc(xmul(g < N ? g : N, sizeof *tk));
	for (long j0 = 0; j0 < N; j0 += g) {
		long ng = N - j0 < g ? N - j0 : g;
		exact_topk(db, db->mem + (size_t)j0 * dim, ng, k, tk, NULL);
#pragma omp parallel for
		for (long t = 0; t < ng; t++) {
			long j = j0 + t, used = 0;
			float *x = aug + (size_t)j * dim;
			memcpy(x, db->mem + (size_t)j * dim, dim * sizeof *x);
			for (size_t i = 0; i < tk[t].n && used < n; i++) {
				long pos = rank_key_pos(tk[t].buf[i]);
				if (pos == j)
					continue;
				float w = weight(rank_key_score(tk[t].buf[i]), alpha);
				const float *d = db->mem + (size_t)pos * dim;
				for (int h = 0; h < dim; h++)
					x[h] += w * d[h];
				used++;
			}
			normalize(x, dim);
			topk_free(&tk[t]);
		}
	}
	free(tk);
	free(db->mem);
	db->mem = aug;
}

/* ---- merging rankings of database shards ---- */

static long *parse_offsets(const char *s, int n)
{
	long *off = xmalloc(xmul(n, sizeof *off));
	int i = 0;
	const char *p = s;
	for (;;) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end == p || v < 0 || v > INT32_MAX || (*end && *end != ','))
			die_usage("--merge: '%s' is not a comma-separated list of "
				  "positions",
				  s);
		if (i == n)
			die_usage("--merge: more offsets than the %d RANKS files", n);
		if (i > 0 && v <= off[i - 1])
			die_usage("--merge: offsets must ascend (%lld after %ld)", v,
				  off[i - 1]);
		off[i++] = (long)v;
		if (!*end)
			break;
		p = end + 1;
	}
	if (i != n)
		die_usage("--merge: %d offsets for %d RANKS files", i, n);
	return off;
}

/* Shard i's ranking as global keys: checked to be a ranking tk-rank wrote
 * (sorted best first, positions below 'limit', its database's size or the
 * gap to the next offset; -1: unknown). */
static size_t shard_keys(const struct tk_stream *s, const struct st_doc *d,
			 long off, long limit, uint64_t **keys, size_t *cap)
{
	const struct st_tensor *r = tk_frame_tensor(s, d, "rank", ST_I32, 1);
	const struct st_tensor *sc = tk_frame_tensor(s, d, "score", ST_F32, 1);
	if (r->shape[0] != sc->shape[0])
		tk_frame_die(s, d, "'rank' has %lld entries, 'score' %lld",
			     (long long)r->shape[0], (long long)sc->shape[0]);
	size_t n = r->shape[0];
	if (limit >= 0 && n > (size_t)limit)
		tk_frame_die(s, d, "%zu items for a shard of %ld vectors", n,
			     limit);
	if (n > *cap) {
		*cap = n;
		*keys = xrealloc(*keys, xmul(n, sizeof **keys));
	}
	const int32_t *rank = r->data;
	const float *score = sc->data;
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(score[i]))
			tk_frame_die(s, d, "score %zu is %g", i, score[i]);
		if (rank[i] < 0 || (limit >= 0 && rank[i] >= limit) ||
		    rank[i] > INT32_MAX - off)
			tk_frame_die(s, d,
				     "rank %zu is %d: outside the shard at "
				     "offset %ld",
				     i, rank[i], off);
		(*keys)[i] = rank_key(score[i], (uint32_t)(rank[i] + off));
		if (i && (*keys)[i] <= (*keys)[i - 1])
			tk_frame_die(s, d,
				     "not sorted best first at entry %zu (not "
				     "tk-rank's output?)",
				     i);
	}
	return n;
}

/* The frame's 'dbsize' (the vectors its shard has), or -1 when it has
 * none (tk-rank before it wrote one). */
static long frame_dbsize(const struct tk_stream *s, const struct st_doc *d)
{
	long n;
	int r = tk_frame_meta_long(d, "dbsize", 1, INT32_MAX, &n);
	if (r < 0)
		tk_frame_die(s, d, "'dbsize' is '%s', not a database size",
			     st_meta_get(d, "dbsize"));
	return r ? n : -1;
}

/* One query's frames of the ns shards merged into its ranking of the
 * whole, checked first: each shard's database fills the gap to the next
 * offset, and a shard ranked with --top (fewer items than vectors) holds
 * at least the K merged.  Without 'dbsize', only a shard before the last
 * can be seen to be truncated (fewer items than its gap). */
static void merge_frame(const struct options *o, const long *off,
			struct tk_stream *s, struct st_doc *d, uint64_t **keys,
			size_t *cap, size_t *len, uint64_t **out,
			size_t *outcap)
{
	int ns = o->nfiles;
	size_t total = 0, trunc = SIZE_MAX;
	int short_i = -1;
	long dbsize = -1, short_n = -1;
	for (int i = 0; i < ns; i++) {
		long n = frame_dbsize(&s[i], &d[i]);
		long gap = i + 1 < ns ? off[i + 1] - off[i] : -1;
		if (n >= 0 && gap >= 0 && n != gap)
			tk_frame_die(&s[i], &d[i],
				     "ranks a shard of %ld vectors (dbsize), "
				     "but offsets %ld and %ld leave %ld positions "
				     "for it: wrong offsets, or a shard missing "
				     "or given twice",
				     n, off[i], off[i + 1], gap);
		long limit = n >= 0 ? n : gap;
		len[i] = shard_keys(&s[i], &d[i], off[i], limit, &keys[i],
				    &cap[i]);
		total += limit >= 0 ? (size_t)limit : len[i];
		if (limit >= 0 && len[i] < (size_t)limit && len[i] < trunc) {
			trunc = len[i];
			short_i = i;
			short_n = n;
		}
		if (i == ns - 1 && n >= 0 && off[0] == 0)
			dbsize = off[i] + n;
	}
	size_t k = o->top && (size_t)o->top < total ? (size_t)o->top : total;
	if (k > trunc) {
		int i = short_i;
		if (short_n < 0)
			tk_frame_die(&s[i], &d[i],
				     "%zu items for the %ld positions from "
				     "offset %ld to %ld: ranked with --top %zu "
				     "(the merge is exact only up to --top %zu, "
				     "not %zu), or wrong offsets",
				     trunc, off[i + 1] - off[i], off[i],
				     off[i + 1], trunc, trunc, k);
		tk_frame_die(&s[i], &d[i],
			     "holds the best %zu of its shard's %ld vectors "
			     "(ranked with --top %zu): the merge is exact only "
			     "up to --top %zu, not %zu; merge with --top %zu, "
			     "or rank the shard in full",
			     trunc, short_n, trunc, trunc, k,
			     trunc);
	}
	if (k > *outcap) {
		*outcap = k;
		*out = xrealloc(*out, xmul(k, sizeof **out));
	}
	k = rank_merge(*out, k, keys, len, ns);
	write_ranking(&d[0], *out, (long)k, dbsize);
}

static void merge(const struct options *o)
{
	int ns = o->nfiles;
	long *off = parse_offsets(o->merge, ns);
	struct tk_stream *s = xmalloc(xmul(ns, sizeof *s));
	struct st_doc *d = xmalloc(xmul(ns, sizeof *d));
	uint64_t **keys = xcalloc(ns, sizeof *keys);
	size_t *cap = xcalloc(ns, sizeof *cap), *len = xcalloc(ns, sizeof *len);
	for (int i = 0; i < ns; i++) {
		tk_stream_open(&s[i], o->files[i]);
		st_init(&d[i]);
	}
	uint64_t *out = NULL;
	size_t outcap = 0;
	for (long f = 0;; f++) {
		int got = 0, ended = -1, more = -1;
		for (int i = 0; i < ns; i++) {
			if (tk_read_frame(&s[i], &d[i])) {
				got++;
				more = i;
			} else {
				ended = i;
			}
		}
		if (got == 0)
			break;
		if (got < ns)
			die_data("%s ends after %ld frames where %s has more",
				 s[ended].name, f, s[more].name);
		const char *key = st_meta_get(&d[0], "key");
		for (int i = 0; i < ns; i++) {
			const char *ki = st_meta_get(&d[i], "key");
			if ((key == NULL) != (ki == NULL) ||
			    (key && strcmp(key, ki)))
				tk_frame_die(&s[i], &d[i],
					     "key differs from %s's frame %ld "
					     "(%s): shards must rank the same "
					     "queries in the same order",
					     s[0].name, f, key ? key : "none");
		}
		merge_frame(o, off, s, d, keys, cap, len, &out, &outcap);
	}
	for (int i = 0; i < ns; i++) {
		tk_stream_close(&s[i]);
		st_free(&d[i]);
		free(keys[i]);
	}
	free(s);
	free(d);
	free(keys);
	free(cap);
	free(len);
	free(off);
	free(out);
}

int main(int argc, char **argv)
{
	struct options o;
	tk_init(argv[0]);
	parse_options(&o, argc, argv);
	tk_binary_stdout();
	if (o.merge) {
		merge(&o);
		tk_close_stdout();
		return 0;
	}
	struct desc_set q;
	desc_read(&q, o.files[0], 0);
	uint64_t qbytes = (uint64_t)q.n * q.dim * 4;
	if (qbytes >= o.mem)
		die_usage("--mem is too small to hold the %ld queries", q.n);
	uint64_t avail = o.mem - qbytes;
	/* Chunks of 4 to 32M: large enough to keep every thread busy with
	 * products, small against the memory the scores need; a multiple
	 * of 64 vectors. */
	int dim = q.dim;
	long chunk = 64;
	if (dim > 0) {
		uint64_t cb = avail / 8 < (32u << 20) ? avail / 8 : (32u << 20);
		cb = cb > (4u << 20) ? cb : (4u << 20);
		chunk = (cb / (4 * (uint64_t)dim) + 63) / 64 * 64;
	}
	struct search_db db;
	search_db_open(&db, o.files[1], dim, q.maxnorm > 1 ? q.maxnorm : 1,
		       chunk);
	/* --device cuda (or TK_DEVPATH=1 on the CPU, the tests' way through
	 * that code): the products there. */
	const char *env = getenv("TK_DEVPATH");
	if (tk_dev_is_cuda(&o.dv) || (env && !strcmp(env, "1"))) {
		tk_dev_open(&o.dv);
		db.dv = &o.dv;
	}
	if (q.n == 0) { /* nothing to rank; the database is still checked */
		const float *v;
		long ld;
		search_db_rewind(&db);
		while (search_db_next(&db, &v, &ld) > 0)
			;
		if (db.pos == 0)
			die_data("%s: the database is empty", db.path);
	}
	if (o.dba)
		db_augmentation(&db, o.dba, o.alpha, avail);
	if (o.qe)
		query_expansion(&db, q.v, q.n, o.qe, o.alpha, avail);
	if (q.n > 0)
		exact_rank(&db, q.v, q.n, o.top, avail, emit_frame,
			   &(struct emit_ctx){q.meta, &db});
	search_db_close(&db);
	desc_free(&q);
	tk_close_stdout();
	tk_dev_close(&o.dv);
	return 0;
}
