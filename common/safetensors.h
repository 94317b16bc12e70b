/* safetensors.h - one safetensors document: a frame of a stream, or a
 * whole weight file.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON (an
 * object: "__metadata__" -> {string: string}, and name -> {"dtype",
 * "shape", "data_offsets"}), then the tensor bytes, which the offsets
 * must cover exactly, without gaps or overlaps. */
#ifndef TK_SAFETENSORS_H
#define TK_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A header longer than this is refused before it is read (the bound the
 * reference safetensors implementation uses). */
#define ST_MAX_HEADER 100000000u
#define ST_MAX_RANK 8

enum st_dtype {
	ST_BOOL, ST_U8, ST_I8, ST_U16, ST_I16, ST_F16, ST_BF16, ST_U32,
	ST_I32, ST_F32, ST_U64, ST_I64, ST_F64, ST_NDTYPES
};

const char *st_dtype_name(enum st_dtype t); /* "F32" */
int st_dtype_parse(const char *name);       /* -1 when unknown */
size_t st_dtype_size(enum st_dtype t);

struct st_tensor {
	char *name;
	enum st_dtype dtype;
	int rank;
	int64_t shape[ST_MAX_RANK];
	size_t nbytes;
	size_t offset; /* begin of its data_offsets */
	/* For a document read from a file or stream: points into its data.
	 * For a document being built: points at the caller's memory, which
	 * must stay valid until it is written. */
	void *data;
};

struct st_meta {
	char *key, *val;
};

struct st_doc {
	struct st_tensor *t;
	int n, cap;
	struct st_meta *meta;
	int nmeta, capmeta;
	/* Data buffer owned by the document (streams); reused across frames. */
	uint8_t *buf;
	size_t bufcap;
	size_t data_size; /* bytes of tensor data (sum of nbytes) */
};

void st_init(struct st_doc *d);
/* Forget tensors and metadata; keep the buffers for the next frame. */
void st_clear(struct st_doc *d);
void st_free(struct st_doc *d);

/* Number of elements of a tensor (product of its shape). */
size_t st_numel(const struct st_tensor *t);
struct st_tensor *st_find(const struct st_doc *d, const char *name);
const char *st_meta_get(const struct st_doc *d, const char *key);
/* Set (or replace) a metadata entry; both strings are copied. */
void st_meta_set(struct st_doc *d, const char *key, const char *val);
void st_meta_setf(struct st_doc *d, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copy every metadata entry of src into dst (replacing equal keys). */
void st_meta_copy(struct st_doc *dst, const struct st_doc *src);

/* Add a tensor that points at data (not copied); returns it. */
struct st_tensor *st_add(struct st_doc *d, const char *name,
			 enum st_dtype dtype, int rank, const int64_t *shape,
			 const void *data);

/* Parse and validate the JSON header (len bytes, need not be
 * NUL-terminated).  Fills d's tensors and metadata with data pointers at
 * their offsets from 'data' (which may be NULL while the data is not yet
 * read; st_bind_data sets them later) and d->data_size.  On error returns
 * -1 and writes a message to err; the key of the frame, when the
 * metadata had one, is left in d as usual. */
int st_parse_header(struct st_doc *d, const char *json, size_t len,
		    char *err, size_t errlen);
/* Point each tensor at data + its offset (in header order). */
void st_bind_data(struct st_doc *d, uint8_t *data);

/* Parse a whole document held in memory (a mapped weight file): the
 * buffer must be exactly header + data, nothing after it. */
int st_parse_buffer(struct st_doc *d, uint8_t *buf, size_t len, char *err,
		    size_t errlen);

/* The serialized header (JSON padded with spaces so that 8 + its length
 * is a multiple of 8); caller frees.  Tensors are laid out in the order
 * they were added. */
char *st_header_json(const struct st_doc *d, size_t *len);
/* Write a whole document; 0 on success, -1 with errno set. */
int st_write(FILE *fp, const struct st_doc *d);

/* Element i of a tensor as a double (any dtype); for statistics. */
double st_get(const struct st_tensor *t, size_t i);
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
uint16_t st_f32_to_bf16(float f);

#endif
