/* fuzz_archive - libFuzzer target for tk-decode's archive input: any bytes
 * as a tar, tar.gz or zip archive (libarchive picks the format and filter
 * from the bytes; the first byte picks the file name's extension, which
 * tells tk-decode that the input is an archive), every member read as
 * tk-decode reads them and each image member through the decoder.
 *   make fuzz
 *   build/fuzz/fuzz_archive -max_total_time=600 -rss_limit_mb=4096 \
 *       tests/fuzz/corpus/archive   (a tar, a tar.gz and a zip of images) */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/inputs.h"
#include "fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *ext[3] = {"tar", "tar.gz", "zip"};
	char path[64];
	snprintf(path, sizeof path, "/dev/shm/fuzz_archive.%d.%s", (int)getpid(),
		 ext[size ? data[0] % 3 : 0]);
	FILE *f = fopen(path, "wb");
	if (!f)
		abort();
	if (size > 1 && fwrite(data + 1, 1, size - 1, f) != size - 1)
		abort();
	fclose(f);
	char *args[1] = {path};
	struct tk_inputs *in = tk_inputs_new(args, 1, 0, 1);
	struct tk_input it;
	while (tk_inputs_next(in, &it)) {
		char err[300];
		if (!it.err && tk_input_read(&it, err, sizeof err) == 0 && it.len)
			fuzz_load(it.data, it.len);
		tk_input_free(&it);
	}
	tk_inputs_free(in);
	unlink(path);
	return 0;
}
