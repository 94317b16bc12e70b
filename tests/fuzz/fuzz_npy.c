/* fuzz_npy - libFuzzer target for the .npy reader (tk-cat --from-npy):
 * any bytes as a file through npy_read_header, then the data's rows read
 * as tk-cat reads them, whatever the file holds.
 *   make fuzz && build/fuzz/fuzz_npy -max_total_time=600 \
 *       NEW tests/fuzz/corpus/npy */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/npy.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *fp = fuzz_file(data, size);
	if (!fp)
		return 0;
	struct npy_header h;
	char err[256];
	if (npy_read_header(fp, &h, err, sizeof err) == 0) {
		if (h.rank < 0 || h.rank > NPY_MAX_RANK)
			__builtin_trap();
		size_t n = st_dtype_size(h.dtype);
		for (int i = 0; i < h.rank; i++)
			n *= (size_t)h.shape[i]; /* no overflow: the reader checked */
		if (n != h.nbytes)
			__builtin_trap();
		/* the rows, up to what the file holds */
		size_t row = h.rank && h.shape[0] ? h.nbytes / (size_t)h.shape[0] : 0;
		if (row && row <= size) {
			char *buf = malloc(row);
			for (int64_t r = 0; r < h.shape[0] && fread(buf, 1, row, fp) == row; r++)
				;
			free(buf);
		}
	}
	fclose(fp);
	return 0;
}
