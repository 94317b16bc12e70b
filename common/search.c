/* search.c - reading and checking descriptor sets for exact search.  The
 * database is read by a thread of its own, a chunk ahead of the caller,
 * so that parsing frames overlaps the products. */
#include "search.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tk.h"

/* "<stream>: frame <i> (key <k>)", as tk_frame_die names a frame. */
static const char *where(const struct tk_stream *s, const struct st_doc *d)
{
	static __thread char w[600];
	const char *key = st_meta_get(d, "key");
	if (key)
		snprintf(w, sizeof w, "%s: frame %ld (key %.256s)", s->name,
			 s->frame - 1, key);
	else
		snprintf(w, sizeof w, "%s: frame %ld", s->name, s->frame - 1);
	return w;
}

/* The frame's `desc` vector, checked: NULL with a message in err (as
 * tk_frame_die words it) if it is bad.  *norm receives its L2 norm. */
static const float *check_desc(const struct tk_stream *s,
			       const struct st_doc *d, int *dim, double *norm,
			       char *err, size_t errlen)
{
	const struct st_tensor *t = st_find(d, "desc");
	if (!t) {
		snprintf(err, errlen, "%s: no tensor 'desc'", where(s, d));
		return NULL;
	}
	if (t->dtype != ST_F32 || t->rank != 1) {
		snprintf(err, errlen, "%s: tensor 'desc' is %s of rank %d, "
			 "expected F32 of rank 1", where(s, d),
			 st_dtype_name(t->dtype), t->rank);
		return NULL;
	}
	if (*dim == 0 && (t->shape[0] < 1 || t->shape[0] > (1 << 24))) {
		snprintf(err, errlen, "%s: 'desc' has %lld values", where(s, d),
			 (long long)t->shape[0]);
		return NULL;
	}
	if (*dim == 0)
		*dim = (int)t->shape[0];
	if (t->shape[0] != *dim) {
		snprintf(err, errlen,
			 "%s: 'desc' has %lld values where the others have %d",
			 where(s, d), (long long)t->shape[0], *dim);
		return NULL;
	}
	const float *v = t->data;
	/* The squared norm in 16 float sums, which the compiler runs as
	 * vectors.  A non-finite result means a non-finite value, or values
	 * so large that their squares overflow: then again in double, where
	 * squares of floats cannot overflow. */
	float acc[16] = {0};
	int i = 0;
	for (; i + 16 <= *dim; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += v[i + j] * v[i + j];
	for (; i < *dim; i++)
		acc[0] += v[i] * v[i];
	double ss = 0;
	for (int j = 0; j < 16; j++)
		ss += acc[j];
	if (!isfinite(ss)) {
		ss = 0;
		for (i = 0; i < *dim; i++)
			ss += (double)v[i] * v[i];
	}
	if (!isfinite(ss))
		for (i = 0; i < *dim; i++)
			if (!isfinite(v[i])) {
				snprintf(err, errlen, "%s: 'desc' value %d is %g",
					 where(s, d), i, v[i]);
				return NULL;
			}
	*norm = sqrt(ss);
	return v;
}

void desc_read(struct desc_set *q, const char *path, int dim)
{
	memset(q, 0, sizeof *q);
	q->dim = dim;
	struct tk_stream s;
	struct st_doc d;
	st_init(&d);
	tk_stream_open(&s, path);
	long cap = 0;
	char err[1024];
	while (tk_read_frame(&s, &d)) {
		double norm;
		const float *v = check_desc(&s, &d, &q->dim, &norm, err, sizeof err);
		if (!v)
			die_data("%s", err);
		if (q->n == cap) {
			cap = cap ? 2 * cap : 64;
			q->v = xrealloc(q->v, xmul(xmul(cap, q->dim), sizeof *q->v));
			q->meta = xrealloc(q->meta, xmul(cap, sizeof *q->meta));
		}
		memcpy(q->v + (size_t)q->n * q->dim, v, q->dim * sizeof *v);
		st_init(&q->meta[q->n]);
		st_meta_copy(&q->meta[q->n], &d);
		q->maxnorm = norm > q->maxnorm ? norm : q->maxnorm;
		q->n++;
	}
	tk_stream_close(&s);
	st_free(&d);
}

void desc_free(struct desc_set *q)
{
	for (long i = 0; i < q->n; i++)
		st_free(&q->meta[i]);
	free(q->meta);
	free(q->v);
	memset(q, 0, sizeof *q);
}

void search_db_open(struct search_db *db, const char *path, int dim,
		    double qnorm, long chunk_cap)
{
	memset(db, 0, sizeof *db);
	tk_stream_open(&db->s, path);
	st_init(&db->d);
	db->path = xstrdup(db->s.name);
	db->dim = dim;
	db->qnorm = qnorm;
	db->n = db->est = -1;
	db->chunk_cap = chunk_cap > 0 ? chunk_cap : 1;
	db->held = -1;
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->cv, NULL);
	/* Databases are read in bulk: fewer, larger reads. */
	setvbuf(db->s.fp, NULL, _IOFBF, 1 << 20);
	struct stat st;
	if (fstat(fileno(db->s.fp), &st) == 0 && S_ISREG(st.st_mode)) {
		db->seekable = 1;
		/* No frame of a desc vector is shorter than its data, the
		 * length word and the smallest JSON describing it. */
		if (dim > 0)
			db->est = st.st_size / (8 + 56 + 4 * (long)dim);
	}
}

/* ---- the reading thread ---- */

static void reader_fail(struct search_db *db, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reader_fail(struct search_db *db, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(db->err, sizeof db->err, fmt, ap);
	va_end(ap);
	db->status = status;
}

/* The next vector into out: 1, 0 at the end, -1 on failure (recorded). */
static int read_vector(struct search_db *db, float **buf, long m)
{
	int r = tk_stream_read(&db->s, &db->d);
	if (r < 0) {
		reader_fail(db, db->s.io_error ? TK_EXIT_IO : TK_EXIT_DATA, "%s",
			    db->s.err);
		return -1;
	}
	if (r == 0)
		return 0;
	double norm;
	char err[1024];
	const float *v = check_desc(&db->s, &db->d, &db->dim, &norm, err,
				    sizeof err);
	if (!v) {
		reader_fail(db, TK_EXIT_DATA, "%s", err);
		return -1;
	}
	/* |q.d| <= |q||d| bounds every partial sum of the dot product. */
	if (norm * db->qnorm > FLT_MAX / 2) {
		reader_fail(db, TK_EXIT_DATA,
			    "%s: 'desc' of norm %g against a query of norm %g "
			    "overflows single precision",
			    where(&db->s, &db->d), norm, db->qnorm);
		return -1;
	}
	if (db->read >= INT32_MAX) {
		reader_fail(db, TK_EXIT_DATA,
			    "%s: more than %d database vectors (positions are "
			    "32-bit)",
			    db->s.name, INT32_MAX);
		return -1;
	}
	size_t row = (size_t)db->dim;
	if (!*buf)
		*buf = xmalloc(xmul(xmul(db->chunk_cap, row), sizeof **buf));
	memcpy(*buf + m * row, v, row * sizeof *v);
	db->read++;
	return 1;
}

static void *reader(void *arg)
{
	struct search_db *db = arg;
	for (int b = 0;; b ^= 1) {
		pthread_mutex_lock(&db->mu);
		while ((db->ready[b] || db->held == b) && !db->stop)
			pthread_cond_wait(&db->cv, &db->mu);
		int stop = db->stop;
		pthread_mutex_unlock(&db->mu);
		if (stop)
			return NULL;
		long m = 0;
		int r = 1;
		while (m < db->chunk_cap && (r = read_vector(db, &db->buf[b], m)) > 0)
			m++;
		if (db->buf[b] && m < db->chunk_cap) /* pad: see search.h */
			memset(db->buf[b] + m * (size_t)db->dim, 0,
			       (db->chunk_cap - m) * (size_t)db->dim * sizeof(float));
		pthread_mutex_lock(&db->mu);
		db->fill[b] = r < 0 ? -1 : m;
		db->ready[b] = 1;
		pthread_cond_broadcast(&db->cv);
		pthread_mutex_unlock(&db->mu);
		if (r <= 0 || m < db->chunk_cap)
			return NULL;
	}
}

static void stop_reader(struct search_db *db)
{
	if (!db->running)
		return;
	pthread_mutex_lock(&db->mu);
	db->stop = 1;
	pthread_cond_broadcast(&db->cv);
	pthread_mutex_unlock(&db->mu);
	pthread_join(db->thread, NULL);
	db->running = 0;
}

static void start_reader(struct search_db *db)
{
	db->stop = 0;
	db->ready[0] = db->ready[1] = 0;
	db->next = 0;
	db->held = -1;
	db->read = 0;
	if (pthread_create(&db->thread, NULL, reader, db) != 0)
		die_io("cannot start a thread:");
	db->running = 1;
}

/* ---- passes ---- */

void search_db_rewind(struct search_db *db)
{
	db->pos = 0;
	if (db->mem)
		return;
	stop_reader(db);
	if (db->s.frame > 0) {
		if (!db->seekable)
			die_usage("%s is read more than once: it must be a "
				  "file, not a pipe",
				  db->path);
		if (fseek(db->s.fp, 0, SEEK_SET) != 0)
			die_io("seeking %s:", db->path);
		db->s.frame = 0;
	}
	db->pass_done = 0;
}

/* The in-memory tail chunk, padded like the rest. */
static float *padded_tail(struct search_db *db, const float *v, long m)
{
	size_t row = (size_t)db->dim;
	if (!db->tail)
		db->tail = xmalloc(xmul(xmul(db->chunk_cap, row), sizeof *db->tail));
	memcpy(db->tail, v, m * row * sizeof *v);
	memset(db->tail + m * row, 0, (db->chunk_cap - m) * row * sizeof *v);
	return db->tail;
}

long search_db_next(struct search_db *db, const float **v)
{
	if (db->mem) {
		long m = db->n - db->pos;
		m = m < db->chunk_cap ? m : db->chunk_cap;
		*v = db->mem + (size_t)db->pos * db->dim;
		if (m < db->chunk_cap)
			*v = padded_tail(db, *v, m);
		db->pos += m;
		return m;
	}
	if (db->pass_done)
		return 0;
	if (!db->running)
		start_reader(db);
	pthread_mutex_lock(&db->mu);
	if (db->held >= 0) { /* the caller is done with the last chunk */
		db->ready[db->held] = 0;
		db->held = -1;
		pthread_cond_broadcast(&db->cv);
	}
	while (!db->ready[db->next])
		pthread_cond_wait(&db->cv, &db->mu);
	int b = db->next;
	long m = db->fill[b];
	db->next ^= 1;
	db->held = b;
	pthread_mutex_unlock(&db->mu);
	if (m < 0) {
		stop_reader(db);
		tk_die(db->status, "%s", db->err);
	}
	db->pos += m;
	if (m < db->chunk_cap) { /* the end of this pass */
		stop_reader(db);
		db->pass_done = 1;
		if (db->n < 0)
			db->n = db->pos;
	}
	if (m == 0)
		return 0;
	*v = db->buf[b];
	return m;
}

void search_db_load(struct search_db *db)
{
	long cap = 0;
	const float *v;
	long m;
	search_db_rewind(db);
	while ((m = search_db_next(db, &v)) > 0) {
		if (db->pos > cap) {
			cap = 2 * db->pos;
			db->mem = xrealloc(db->mem, xmul(xmul(cap, db->dim), 4));
		}
		memcpy(db->mem + (size_t)(db->pos - m) * db->dim, v,
		       m * (size_t)db->dim * 4);
	}
	db->n = db->pos;
	db->pos = 0;
	if (!db->mem) /* empty: still "in memory" */
		db->mem = xmalloc(4);
}

void search_db_close(struct search_db *db)
{
	stop_reader(db);
	tk_stream_close(&db->s);
	st_free(&db->d);
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->cv);
	free(db->mem);
	free(db->buf[0]);
	free(db->buf[1]);
	free(db->tail);
	free(db->path);
	memset(db, 0, sizeof *db);
}
