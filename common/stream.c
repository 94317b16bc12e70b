/* stream.c - frames in and out over files and pipes. */
#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk.h"
#include "torchload.h"

/* Memory grows with the bytes that actually arrive, never by what a header
 * claims, so a lying header cannot make us allocate before it is caught
 * by the end of the stream. */
#define CHUNK ((size_t)64 << 20)

void tk_stream_from(struct tk_stream *s, FILE *fp, const char *name)
{
	memset(s, 0, sizeof *s);
	s->fp = fp;
	s->name = xstrdup(name);
}

void tk_stream_open(struct tk_stream *s, const char *path)
{
	if (!path || strcmp(path, "-") == 0) {
		tk_stream_from(s, stdin, "<stdin>");
		return;
	}
	FILE *fp = fopen(path, "rb");
	if (!fp)
		die_io("cannot open %s:", path);
	tk_stream_from(s, fp, path);
	s->owns_fp = 1;
}

void tk_stream_close(struct tk_stream *s)
{
	if (s->owns_fp)
		fclose(s->fp);
	free(s->name);
	free(s->hbuf);
	memset(s, 0, sizeof *s);
}

/* "NAME: frame I (key K): WHAT" into buf, without the key where the
 * frame has none. */
static void frame_message(char *buf, size_t len, const struct tk_stream *s,
			  const struct st_doc *d, long frame, const char *fmt,
			  va_list ap)
{
	char what[768];
	vsnprintf(what, sizeof what, fmt, ap);
	const char *key = d ? st_meta_get(d, "key") : NULL;
	if (key)
		snprintf(buf, len, "%s: frame %ld (key %.128s): %s", s->name, frame,
			 key, what);
	else
		snprintf(buf, len, "%s: frame %ld: %s", s->name, frame, what);
}

static int sfail(struct tk_stream *s, const struct st_doc *d, int io,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int sfail(struct tk_stream *s, const struct st_doc *d, int io,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	frame_message(s->err, sizeof s->err, s, d, s->frame, fmt, ap);
	va_end(ap);
	s->io_error = io;
	return -1;
}

/* Read exactly n bytes into *buf (grown as they arrive). Returns the
 * number read: less than n at end of file or on error. */
static size_t read_grow(FILE *fp, uint8_t **buf, size_t *cap, size_t n)
{
	size_t got = 0;
	while (got < n) {
		size_t want = n - got < CHUNK ? n - got : CHUNK;
		if (got + want > *cap) {
			size_t c = *cap ? *cap : 4096;
			while (c < got + want)
				c = c < CHUNK ? 2 * c : c + CHUNK;
			*buf = xrealloc(*buf, c);
			*cap = c;
		}
		size_t r = fread(*buf + got, 1, want, fp);
		got += r;
		if (r < want)
			break;
	}
	return got;
}

int tk_stream_read(struct tk_stream *s, struct st_doc *d)
{
	st_clear(d);
	s->io_error = 0;
	uint8_t len8[8];
	size_t got = fread(len8, 1, 8, s->fp);
	if (got == 0) {
		if (ferror(s->fp))
			return sfail(s, NULL, 1, "read error: %s", strerror(errno));
		return 0;
	}
	if (got < 8)
		return sfail(s, NULL, ferror(s->fp),
			     "truncated: the stream ends after %zu of the 8 "
			     "bytes of the header length",
			     got);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | len8[i];
	if (n > ST_MAX_HEADER)
		return sfail(s, NULL, 0,
			     "header length %llu exceeds the %u-byte limit",
			     (unsigned long long)n, ST_MAX_HEADER);
	got = read_grow(s->fp, (uint8_t **)&s->hbuf, &s->hcap, n);
	if (got < n)
		return sfail(s, NULL, ferror(s->fp),
			     "truncated: the stream ends after %zu of the %llu "
			     "header bytes",
			     got, (unsigned long long)n);
	if (st_parse_header(d, s->hbuf, n, s->err, sizeof s->err) < 0) {
		char what[sizeof s->err];
		memcpy(what, s->err, sizeof what);
		return sfail(s, d, 0, "%s", what);
	}
	got = read_grow(s->fp, &d->buf, &d->bufcap, d->data_size);
	if (got < d->data_size)
		return sfail(s, d, ferror(s->fp),
			     "truncated: the stream ends after %zu of the %zu "
			     "data bytes",
			     got, d->data_size);
	st_bind_data(d, d->buf);
	s->frame++;
	return 1;
}

int tk_read_frame(struct tk_stream *s, struct st_doc *d)
{
	int r = tk_stream_read(s, d);
	if (r < 0)
		tk_die(s->io_error ? TK_EXIT_IO : TK_EXIT_DATA, "%s", s->err);
	return r;
}

void tk_frame_die(const struct tk_stream *s, const struct st_doc *d,
		  const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	/* s->frame was advanced past the frame just read. */
	frame_message(msg, sizeof msg, s, d, s->frame > 0 ? s->frame - 1 : 0,
		      fmt, ap);
	va_end(ap);
	die_data("%s", msg);
}

struct st_tensor *tk_frame_tensor_check(const struct st_doc *d,
					const char *name, int dtype, int rank,
					char *err, size_t errlen)
{
	struct st_tensor *t = st_find(d, name);
	if (!t)
		snprintf(err, errlen, "no tensor '%s'", name);
	else if (dtype >= 0 && (int)t->dtype != dtype)
		snprintf(err, errlen, "tensor '%s' is %s, expected %s", name,
			 st_dtype_name(t->dtype), st_dtype_name(dtype));
	else if (rank >= 0 && t->rank != rank)
		snprintf(err, errlen, "tensor '%s' has rank %d, expected %d",
			 name, t->rank, rank);
	else
		return t;
	return NULL;
}

struct st_tensor *tk_frame_tensor(const struct tk_stream *s,
				  const struct st_doc *d, const char *name,
				  int dtype, int rank)
{
	char err[512];
	struct st_tensor *t = tk_frame_tensor_check(d, name, dtype, rank, err,
						    sizeof err);
	if (!t)
		tk_frame_die(s, d, "%s", err);
	return t;
}

int tk_frame_meta_long(const struct st_doc *d, const char *key, long lo,
		       long hi, long *value)
{
	const char *v = st_meta_get(d, key);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	long i = strtol(v, &end, 10);
	if (end == v || *end || errno || i < lo || i > hi)
		return -1;
	*value = i;
	return 1;
}

int tk_frame_index(const struct st_doc *d, long *index)
{
	return tk_frame_meta_long(d, "index", 0, LONG_MAX, index);
}

void tk_write_frame_to(FILE *fp, const struct st_doc *d, const char *what)
{
	if (st_write(fp, d) < 0)
		tk_write_failed(what);
}

void tk_write_frame(const struct st_doc *d)
{
	tk_write_frame_to(stdout, d, "standard output");
}

int tk_map_whole(const char *path, struct tk_mapped *m, char *err,
		 size_t errlen)
{
	memset(m, 0, sizeof *m);
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	void *p = NULL;
	if (st.st_size > 0)
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		snprintf(err, errlen, "%s: mmap: %s", path, strerror(errno));
		return -1;
	}
	if (p) {
		m->addr = p;
		m->len = (size_t)st.st_size;
		tk_mapping_add(p, m->len, path);
	}
	return 0;
}

int tk_map_file(const char *path, struct tk_mapped *m, struct st_doc *d,
		char *err, size_t errlen)
{
	if (tk_map_whole(path, m, err, errlen) < 0)
		return -1;
	if (m->len < 8) {
		snprintf(err, errlen, "%s: file of %zu bytes is too short", path,
			 m->len);
		tk_unmap_file(m);
		return -1;
	}
	void *p = m->addr;
	char what[768];
	if (st_parse_buffer(d, p, m->len, what, sizeof what) < 0) {
		if (tl_is_torch(p, m->len))
			snprintf(err, errlen, "%s: a PyTorch checkpoint, not a tk "
				 "weight file: convert it with tk-import", path);
		else
			snprintf(err, errlen, "%s: %s", path, what);
		tk_unmap_file(m);
		return -1;
	}
	return 0;
}

void tk_unmap_file(struct tk_mapped *m)
{
	if (m->addr) {
		tk_mapping_remove(m->addr);
		munmap(m->addr, m->len);
	}
	memset(m, 0, sizeof *m);
}
