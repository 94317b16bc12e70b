/* search.c - reading and checking descriptor sets for exact search.  The
 * database is read by a thread of its own, a chunk ahead of the caller,
 * so that parsing frames overlaps the products. */
#include "search.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
		db->seekable = db->mapped = 1;
		db->size = st.st_size;
		db->voff = xmalloc(xmul(db->chunk_cap, sizeof *db->voff));
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

/* The vector of the frame in db->d, checked: NULL on failure (recorded). */
static const float *checked_vector(struct search_db *db)
{
	double norm;
	char err[1024];
	const float *v = check_desc(&db->s, &db->d, &db->dim, &norm, err,
				    sizeof err);
	if (!v) {
		reader_fail(db, TK_EXIT_DATA, "%s", err);
		return NULL;
	}
	/* |q.d| <= |q||d| bounds every partial sum of the dot product. */
	if (norm * db->qnorm > FLT_MAX / 2) {
		reader_fail(db, TK_EXIT_DATA,
			    "%s: 'desc' of norm %g against a query of norm %g "
			    "overflows single precision",
			    where(&db->s, &db->d), norm, db->qnorm);
		return NULL;
	}
	if (db->read >= INT32_MAX) {
		reader_fail(db, TK_EXIT_DATA,
			    "%s: more than %d database vectors (positions are "
			    "32-bit)",
			    db->s.name, INT32_MAX);
		return NULL;
	}
	db->read++;
	return v;
}

static float *slot_buffer(struct search_db *db, int b)
{
	if (!db->buf[b])
		db->buf[b] = xmalloc(xmul(xmul(db->chunk_cap, db->dim), 4));
	return db->buf[b];
}

/* A chunk through the stream: frames read and copied into slot b's
 * buffer.  The count, or -1 on failure (recorded). */
static long read_chunk_stream(struct search_db *db, int b)
{
	long m = 0;
	size_t row = (size_t)db->dim;
	while (m < db->chunk_cap) {
		int r = tk_stream_read(&db->s, &db->d);
		if (r < 0) {
			reader_fail(db, db->s.io_error ? TK_EXIT_IO : TK_EXIT_DATA,
				    "%s", db->s.err);
			return -1;
		}
		if (r == 0)
			break;
		const float *v = checked_vector(db);
		if (!v)
			return -1;
		row = (size_t)db->dim;
		memcpy(slot_buffer(db, b) + m * row, v, row * sizeof *v);
		m++;
	}
	db->vec[b] = db->buf[b];
	db->ld[b] = db->dim;
	return m;
}

/* Map [start, start+len) of the file for slot b (replacing its window). */
static int map_window(struct search_db *db, int b, long long start, size_t len)
{
	tk_unmap_file(&db->win[b]);
	void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE,
		       fileno(db->s.fp), start);
	if (p == MAP_FAILED) {
		reader_fail(db, TK_EXIT_IO, "%s: mmap: %s", db->s.name,
			    strerror(errno));
		return -1;
	}
	tk_mapping_add(p, len, db->s.name);
	db->win[b].addr = p;
	db->win[b].len = len;
	return 0;
}

/* A chunk of a regular file, read in place through a mapping of its bytes
 * (no read() or stdio copies): when its vectors lie at one stride (frames
 * of one size, as a tool writes them) the products read them there;
 * otherwise they are copied into slot b's buffer.  Frames are checked as
 * tk_stream_read checks them.  The count, or -1 on failure (recorded). */
static long read_chunk_mapped(struct search_db *db, int b)
{
	long long page = sysconf(_SC_PAGESIZE);
	long long start = db->off & ~(page - 1), p = db->off;
	long long left = db->size - start;
	long long want = db->frame_bytes ? db->frame_bytes * db->chunk_cap + page
					 : 1 << 16;
	size_t len = (size_t)(want < left ? want : left);
	if (db->off == db->size)
		return 0;
	if (map_window(db, b, start, len) < 0)
		return -1;
	long m = 0;
	while (m < db->chunk_cap && p < db->size) {
		long long need = 8;
		for (int part = 0; part < 3; part++) {
			/* length word, header, data: each inside the file
			 * and the window (grown as needed). */
			if (p + need > db->size) {
				reader_fail(db, TK_EXIT_DATA,
					    "%s: frame %ld: truncated: the file "
					    "ends %lld bytes into a frame of at "
					    "least %lld",
					    db->s.name, db->s.frame,
					    db->size - p, need);
				return -1;
			}
			if (p + need > start + (long long)db->win[b].len) {
				long long l = 2 * (long long)db->win[b].len;
				l = l > p + need - start ? l : p + need - start;
				if (map_window(db, b, start,
					       (size_t)(l < left ? l : left)) < 0)
					return -1;
			}
			const uint8_t *at = (const uint8_t *)db->win[b].addr + (p - start);
			if (part == 0) {
				uint64_t n = 0;
				for (int i = 7; i >= 0; i--)
					n = n << 8 | at[i];
				if (n > ST_MAX_HEADER) {
					reader_fail(db, TK_EXIT_DATA,
						    "%s: frame %ld: header length "
						    "%llu exceeds the %u-byte limit",
						    db->s.name, db->s.frame,
						    (unsigned long long)n,
						    ST_MAX_HEADER);
					return -1;
				}
				need = 8 + (long long)n;
			} else if (part == 1) {
				char err[768];
				st_clear(&db->d);
				if (st_parse_header(&db->d, (const char *)at + 8,
						    need - 8, err, sizeof err) < 0) {
					reader_fail(db, TK_EXIT_DATA, "%s: frame %ld: %s",
						    db->s.name, db->s.frame, err);
					return -1;
				}
				need += (long long)db->d.data_size;
			} else {
				size_t h = need - db->d.data_size;
				st_bind_data(&db->d, (uint8_t *)at + h);
			}
		}
		db->s.frame++;
		/* Frames need not start at a multiple of 4: a misaligned
		 * vector is checked in an aligned copy. */
		struct st_tensor *t = st_find(&db->d, "desc");
		const char *in_map = t ? t->data : NULL;
		if (t && (uintptr_t)in_map % 4) {
			if (t->nbytes > db->scratch_len) {
				db->scratch = xrealloc(db->scratch, t->nbytes);
				db->scratch_len = t->nbytes;
			}
			memcpy(db->scratch, in_map, t->nbytes);
			t->data = db->scratch;
		}
		if (!checked_vector(db))
			return -1;
		db->voff[m++] = in_map - (const char *)db->win[b].addr;
		p += need;
	}
	if (m)
		db->frame_bytes = (p - db->off) / m + 1;
	db->off = p;
	/* In place when at one stride, 4-byte aligned. */
	long long stride = m > 1 ? db->voff[1] - db->voff[0] : 0;
	int in_place = m > 1 && stride % 4 == 0 &&
		       stride >= 4 * db->dim && db->voff[0] % 4 == 0;
	for (long i = 2; i < m && in_place; i++)
		in_place = db->voff[i] - db->voff[i - 1] == stride;
	if (in_place) {
		db->vec[b] = (const float *)((const char *)db->win[b].addr + db->voff[0]);
		db->ld[b] = stride / 4;
		return m;
	}
	size_t row = (size_t)db->dim;
	for (long i = 0; i < m; i++)
		memcpy(slot_buffer(db, b) + i * row,
		       (const char *)db->win[b].addr + db->voff[i], row * 4);
	db->vec[b] = db->buf[b];
	db->ld[b] = db->dim;
	return m;
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
		long m = db->mapped ? read_chunk_mapped(db, b)
				    : read_chunk_stream(db, b);
		pthread_mutex_lock(&db->mu);
		db->fill[b] = m;
		db->ready[b] = 1;
		pthread_cond_broadcast(&db->cv);
		pthread_mutex_unlock(&db->mu);
		if (m < db->chunk_cap)
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
		if (!db->mapped && fseek(db->s.fp, 0, SEEK_SET) != 0)
			die_io("seeking %s:", db->path);
		db->s.frame = 0;
		db->off = 0;
	}
	db->pass_done = 0;
}

long search_db_next(struct search_db *db, const float **v, long *ld)
{
	/* Not db->dim here: the reader thread may still be learning it. */
	*ld = 0;
	if (db->mem) {
		long m = db->n - db->pos;
		m = m < db->chunk_cap ? m : db->chunk_cap;
		*v = db->mem + (size_t)db->pos * db->dim;
		*ld = db->dim;
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
	*v = db->vec[b];
	*ld = db->ld[b];
	return m;
}

/* The vectors go to a buffer of the caller's own until the pass ends:
 * db->mem set earlier would send the next search_db_next to its
 * in-memory branch, with db->n still unknown.  A file's buffer is sized
 * once by db->est (an upper bound on its vectors); a pipe's doubles as it
 * fills.  Either is cut to the vectors read at the end. */
void search_db_load(struct search_db *db)
{
	long cap = db->est > 0 ? db->est : 0, ld;
	const float *v;
	long m;
	float *mem = NULL;
	uint64_t row = (uint64_t)db->dim * 4, peak = 0;
	search_db_rewind(db);
	while ((m = search_db_next(db, &v, &ld)) > 0) {
		if (row == 0) /* learnt from the first frame */
			row = (uint64_t)db->dim * 4;
		if (db->pos > cap || !mem) {
			/* A copying realloc holds both blocks for a moment. */
			uint64_t old = mem ? (uint64_t)cap * row : 0;
			cap = db->pos > cap ? 2 * db->pos : cap;
			mem = xrealloc(mem, xmul(cap, row));
			peak = old + cap * row > peak ? old + cap * row : peak;
		}
		for (long i = 0; i < m; i++)
			memcpy(mem + (size_t)(db->pos - m + i) * db->dim,
			       v + i * ld, row);
	}
	db->n = db->pos;
	db->pos = 0;
	/* Empty: still "in memory". */
	db->mem = xrealloc(mem, db->n > 0 ? xmul(db->n, row) : 4);
	db->load_peak = peak;
}

void search_db_close(struct search_db *db)
{
	stop_reader(db);
	tk_stream_close(&db->s);
	st_free(&db->d);
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->cv);
	for (int b = 0; b < 2; b++)
		tk_unmap_file(&db->win[b]);
	free(db->voff);
	free(db->scratch);
	free(db->mem);
	free(db->buf[0]);
	free(db->buf[1]);
	free(db->path);
	memset(db, 0, sizeof *db);
}
