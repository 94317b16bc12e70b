/* npy.h - NumPy .npy headers, so that tk-cat can move tensors between
 * streams and other languages.  bfloat16, which NumPy lacks, travels as
 * the 2-byte void type '|V2'. */
#ifndef TK_NPY_H
#define TK_NPY_H

#include <stdio.h>

#include "safetensors.h"

#define NPY_MAX_RANK (ST_MAX_RANK + 1)

struct npy_header {
	enum st_dtype dtype;
	int rank;
	int64_t shape[NPY_MAX_RANK];
	size_t nbytes; /* of the data, as the shape gives it (read) */
};

/* Read and check the header; the file is left at the first data byte.
 * The data's size must fit in size_t (a shape whose product overflows is
 * refused).  Returns 0, or -1 with a message in err. */
int npy_read_header(FILE *fp, struct npy_header *h, char *err, size_t errlen);
/* Write a version 1.0 header taking exactly 'size' bytes (padded with
 * spaces; 0: as few as the format allows); -1 on error.  Writers that learn
 * the row count last reserve npy_header_size() of the largest count. */
int npy_write_header(FILE *fp, const struct npy_header *h, size_t size);
size_t npy_header_size(const struct npy_header *h);

#endif
