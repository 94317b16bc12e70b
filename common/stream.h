/* stream.h - reading and writing tk streams: safetensors documents, one
 * per frame, back to back (man 5 tk-stream). */
#ifndef TK_STREAM_H
#define TK_STREAM_H

#include <stdio.h>

#include "safetensors.h"

struct tk_stream {
	FILE *fp;
	int owns_fp; /* opened by tk_stream_open: closed by tk_stream_close */
	char *name;  /* file name for messages; "<stdin>" */
	long frame;  /* index of the next frame to read */
	int io_error; /* the last failure was the system's, not the data's */
	char err[1024];
	char *hbuf;  /* header buffer, reused */
	size_t hcap;
};

/* Open a stream for reading; "-" or NULL is standard input.  Dies (exit 3)
 * if the file cannot be opened. */
void tk_stream_open(struct tk_stream *s, const char *path);
/* Read from an already open FILE (not closed by tk_stream_close). */
void tk_stream_from(struct tk_stream *s, FILE *fp, const char *name);
void tk_stream_close(struct tk_stream *s);

/* Read the next frame into d: 1 for a frame, 0 at the clean end of the
 * stream, -1 on a bad or truncated frame or a read error, with the message
 * "<stream>: frame <i> (key <k>): <what>" in s->err. */
int tk_stream_read(struct tk_stream *s, struct st_doc *d);
/* The same, but dying on error: exit 2 for bad data, 3 for I/O. */
int tk_read_frame(struct tk_stream *s, struct st_doc *d);

/* Write a frame to stdout (tk_binary_stdout should have been called);
 * a closed pipe ends the program quietly, other failures die. */
void tk_write_frame(const struct st_doc *d);
/* Write a frame to fp, named 'what' in messages. */
void tk_write_frame_to(FILE *fp, const struct st_doc *d, const char *what);

/* Die with a data error about frame d of stream s:
 * "<stream>: frame <i> (key <k>): <what>". */
_Noreturn void tk_frame_die(const struct tk_stream *s, const struct st_doc *d,
			    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Look up a tensor of frame d by name, checking its dtype (< 0: any) and
 * rank (< 0: any): NULL with the reason in err when it is not so. */
struct st_tensor *tk_frame_tensor_check(const struct st_doc *d,
					const char *name, int dtype, int rank,
					char *err, size_t errlen);
/* The same, dying naming the stream, frame and key instead. */
struct st_tensor *tk_frame_tensor(const struct tk_stream *s,
				  const struct st_doc *d, const char *name,
				  int dtype, int rank);

/* Frame d's metadata key as an integer in [lo, hi] into *value: 1; 0
 * without the key; -1 when it is not such an integer. */
int tk_frame_meta_long(const struct st_doc *d, const char *key, long lo,
		       long hi, long *value);
/* Frame d's place in the whole stream, its metadata 'index' (which
 * tk-decode --shard writes) into *index: 1; 0 without one; -1 when it is
 * not an integer >= 0. */
int tk_frame_index(const struct st_doc *d, long *index);

/* Map a whole safetensors file read-only (weights, checkpoints) and parse
 * it.  Returns 0, or -1 with a message in err. */
struct tk_mapped {
	void *addr;
	size_t len;
};
int tk_map_file(const char *path, struct tk_mapped *m, struct st_doc *d,
		char *err, size_t errlen);
/* Map the whole regular file read-only (an empty one: addr NULL), told
 * to the SIGBUS handler (tk_mapping_add).  0, or -1 with a message in
 * err.  tk_unmap_file undoes it. */
int tk_map_whole(const char *path, struct tk_mapped *m, char *err,
		 size_t errlen);
void tk_unmap_file(struct tk_mapped *m);

#endif
