/* fuzz_stream - libFuzzer target for the frame reader: any bytes as a
 * stream, read frame by frame until the end or the first error, each
 * frame's 'index' (tk_frame_index) parsed.
 *   make fuzz && build/fuzz/fuzz_stream -max_total_time=600 \
 *       -dict=tests/fuzz/json.dict NEW tests/fuzz/corpus/stream
 * (NEW: a folder for what it finds; the seeds are make_seeds.py's). */
#include <stdio.h>

#include "common/stream.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *fp = fuzz_file(data, size);
	if (!fp)
		return 0;
	struct tk_stream s;
	struct st_doc d;
	tk_stream_from(&s, fp, "fuzz");
	st_init(&d);
	int r;
	while ((r = tk_stream_read(&s, &d)) > 0) {
		/* Touch every byte the reader claims is valid. */
		volatile uint8_t sum = 0;
		for (int i = 0; i < d.n; i++)
			for (size_t k = 0; k < d.t[i].nbytes; k++)
				sum += ((uint8_t *)d.t[i].data)[k];
		(void)st_meta_get(&d, "key");
		long index = -1;
		if (tk_frame_index(&d, &index) > 0 && index < 0)
			__builtin_trap();
	}
	st_free(&d);
	tk_stream_close(&s);
	fclose(fp);
	return 0;
}
