/* fuzz_file.h - the fuzz input as a FILE * (fuzz_stream, fuzz_npy) or as
 * a parsed safetensors document (fuzz_safetensors, fuzz_model). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"

/* NULL if fmemopen fails. */
static inline FILE *fuzz_file(const uint8_t *data, size_t size)
{
	FILE *fp = fmemopen((void *)data, size ? size : 1, "rb");
	if (fp && !size)
		fgetc(fp); /* fmemopen refuses size 0: read past the one byte */
	return fp;
}

/* st_parse_buffer of a copy of the input (the document's tensors point
 * into it, as into a mapped file): *parsed says whether it parsed; the
 * copy is returned, to free after st_free(d). */
static inline uint8_t *fuzz_doc(const uint8_t *data, size_t size,
				struct st_doc *d, int *parsed)
{
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	char err[512];
	st_init(d);
	*parsed = st_parse_buffer(d, buf, size, err, sizeof err) == 0;
	return buf;
}
