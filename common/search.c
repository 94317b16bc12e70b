/* search.c - reading and checking descriptor sets for exact search. */
#include "search.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tk.h"

/* The frame's `desc` vector, checked; returns its L2 norm. */
static const float *frame_desc(const struct tk_stream *s,
			       const struct st_doc *d, int *dim, double *norm)
{
	const struct st_tensor *t = tk_frame_tensor(s, d, "desc", ST_F32, 1);
	if (*dim == 0) {
		if (t->shape[0] < 1 || t->shape[0] > (1 << 24))
			tk_frame_die(s, d, "'desc' has %lld values",
				     (long long)t->shape[0]);
		*dim = (int)t->shape[0];
	} else if (t->shape[0] != *dim) {
		tk_frame_die(s, d,
			     "'desc' has %lld values where the others have %d",
			     (long long)t->shape[0], *dim);
	}
	const float *v = t->data;
	/* Squares summed in double cannot overflow: a non-finite sum means
	 * a non-finite value. */
	double ss = 0;
	for (int i = 0; i < *dim; i++)
		ss += (double)v[i] * v[i];
	if (!isfinite(ss))
		for (int i = 0; i < *dim; i++)
			if (!isfinite(v[i]))
				tk_frame_die(s, d, "'desc' value %d is %g", i,
					     v[i]);
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
	while (tk_read_frame(&s, &d)) {
		double norm;
		const float *v = frame_desc(&s, &d, &q->dim, &norm);
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
	struct stat st;
	if (fstat(fileno(db->s.fp), &st) == 0 && S_ISREG(st.st_mode)) {
		db->seekable = 1;
		/* No frame of a desc vector is shorter than its data, the
		 * length word and the smallest JSON describing it. */
		if (dim > 0)
			db->est = st.st_size / (8 + 56 + 4 * (long)dim);
	}
}

/* The next frame's vector, checked, or NULL at the end of the stream. */
static const float *next_vector(struct search_db *db)
{
	if (!tk_read_frame(&db->s, &db->d))
		return NULL;
	double norm;
	const float *v = frame_desc(&db->s, &db->d, &db->dim, &norm);
	/* |q.d| <= |q||d| bounds every partial sum of the dot product. */
	if (norm * db->qnorm > FLT_MAX / 2)
		tk_frame_die(&db->s, &db->d,
			     "'desc' of norm %g against a query of norm %g "
			     "overflows single precision",
			     norm, db->qnorm);
	if (db->pos >= INT32_MAX)
		tk_frame_die(&db->s, &db->d,
			     "more than %d database vectors (positions are "
			     "32-bit)",
			     INT32_MAX);
	return v;
}

void search_db_load(struct search_db *db)
{
	long cap = 0, n = 0;
	const float *v;
	while ((v = next_vector(db))) {
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			db->mem = xrealloc(db->mem, xmul(xmul(cap, db->dim), 4));
		}
		memcpy(db->mem + (size_t)n * db->dim, v, db->dim * sizeof *v);
		n++;
		db->pos++;
	}
	db->n = n;
	db->pos = 0;
}

void search_db_rewind(struct search_db *db)
{
	if (!db->mem && db->pos > 0) {
		if (!db->seekable)
			die_usage("%s is read more than once: it must be a "
				  "file, not a pipe",
				  db->path);
		if (fseek(db->s.fp, 0, SEEK_SET) != 0)
			die_io("seeking %s:", db->path);
		db->s.frame = 0;
	}
	db->pos = 0;
}

/* The chunk buffer, its vectors from m on zeroed. */
static float *padded_chunk(struct search_db *db, long m)
{
	size_t row = (size_t)db->dim;
	if (!db->chunk)
		db->chunk = xmalloc(xmul(xmul(db->chunk_cap, row), 4));
	memset(db->chunk + m * row, 0, (db->chunk_cap - m) * row * 4);
	return db->chunk;
}

long search_db_next(struct search_db *db, const float **v)
{
	size_t row = (size_t)db->dim;
	long m = 0;
	if (db->mem) {
		m = db->n - db->pos;
		m = m < db->chunk_cap ? m : db->chunk_cap;
		*v = db->mem + db->pos * row;
		if (m < db->chunk_cap) { /* the tail: padded like the rest */
			float *c = padded_chunk(db, m);
			memcpy(c, *v, m * row * 4);
			*v = c;
		}
		db->pos += m;
		return m;
	}
	const float *x;
	while (m < db->chunk_cap && (x = next_vector(db))) {
		row = (size_t)db->dim; /* known from the first frame on */
		if (!db->chunk)
			db->chunk = xmalloc(xmul(xmul(db->chunk_cap, row), 4));
		memcpy(db->chunk + m * row, x, row * sizeof *x);
		m++;
		db->pos++;
	}
	if (m == 0 && db->n < 0)
		db->n = db->pos;
	*v = padded_chunk(db, m);
	return m;
}

void search_db_close(struct search_db *db)
{
	tk_stream_close(&db->s);
	st_free(&db->d);
	free(db->mem);
	free(db->chunk);
	free(db->path);
	memset(db, 0, sizeof *db);
}
