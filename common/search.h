/* search.h - descriptor sets for exact search: the queries read whole,
 * the database read in chunks (or held in memory), every vector checked
 * as it arrives. */
#ifndef TK_SEARCH_H
#define TK_SEARCH_H

#include <pthread.h>

#include "stream.h"

/* A stream of `desc` frames held in memory: vectors and each frame's
 * metadata (for the frames written about them). */
struct desc_set {
	float *v; /* [n, dim] */
	long n;
	int dim;
	struct st_doc *meta; /* [n], metadata only */
	double maxnorm;      /* largest L2 norm */
};

/* Read every frame of path ("-": standard input).  dim 0: taken from the
 * first frame; otherwise every frame must have it.  Dies on bad data. */
void desc_read(struct desc_set *q, const char *path, int dim);
void desc_free(struct desc_set *q);

/* The database: frames read a chunk at a time, any number of passes when
 * it is a file.  Each vector is checked: `desc` F32 [dim], finite, and
 * small enough that no score against a vector of norm 'qnorm' overflows. */
struct tk_dev;

struct search_db {
	/* tk-rank --device: the products, and a top-K pass's selection, on
	 * this device (exact.c); NULL: the CPU */
	const struct tk_dev *dv;
	struct tk_stream s;
	struct st_doc d;
	char *path;
	int dim;
	int seekable;
	double qnorm;
	long pos;  /* vectors delivered in this pass */
	long n;    /* total, known after one full pass; -1 before */
	long est;  /* upper bound on n for planning memory; -1 unknown */
	long chunk_cap;
	float *mem;  /* the whole database, after search_db_load */
	uint64_t load_peak; /* the most bytes search_db_load held at once */
	/* The reading thread fills buf[0] and buf[1] in turn, a chunk ahead
	 * of the caller, who holds one of them between calls. */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	float *buf[2];
	long fill[2]; /* vectors in slot i; -1: reading failed */
	const float *vec[2]; /* slot i's vectors: in buf[i], or in place */
	long ld[2];          /* and their stride, in floats */
	/* A regular file is read through mappings of each chunk's bytes. */
	int mapped;
	long long size, off; /* the file's size; the next frame's offset */
	long long frame_bytes; /* bytes a frame, for sizing windows */
	struct tk_mapped win[2]; /* slot i's window of the file */
	long long *voff;     /* the chunk's vectors' offsets in its window */
	void *scratch;       /* a misaligned vector, copied to be checked */
	size_t scratch_len;
	int ready[2], next, held, running, stop, pass_done;
	long read;        /* vectors read by the thread in this pass */
	int status;       /* its failure: exit status and message */
	char err[1024];
};

/* dim 0: taken from the first frame. */
void search_db_open(struct search_db *db, const char *path, int dim,
		    double qnorm, long chunk_cap);
/* Read the database into memory (db->mem, db->n, db->load_peak). */
void search_db_load(struct search_db *db);
/* Start a new pass; dies if the database is a pipe already read. */
void search_db_rewind(struct search_db *db);
/* The next up to chunk_cap vectors of this pass: returns their count m,
 * 0 at the end.  Vector i is at *v + i * *ld (*ld >= dim: vectors may be
 * read in place, between their frames' headers).  Valid until the next
 * call.  Two chunks are in memory at a time. */
long search_db_next(struct search_db *db, const float **v, long *ld);
void search_db_close(struct search_db *db);

#endif
