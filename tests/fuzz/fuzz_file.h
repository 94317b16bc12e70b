/* fuzz_file.h - the fuzz input as a FILE *, for readers that take one
 * (fuzz_stream, fuzz_npy).  NULL if fmemopen fails. */
#include <stdint.h>
#include <stdio.h>

static FILE *fuzz_file(const uint8_t *data, size_t size)
{
	FILE *fp = fmemopen((void *)data, size ? size : 1, "rb");
	if (fp && !size)
		fgetc(fp); /* fmemopen refuses size 0: read past the one byte */
	return fp;
}
