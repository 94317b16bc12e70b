/* fuzz_jpeg - libFuzzer target for the JPEG path of tk-decode: bytes that
 * start like a JPEG through libjpeg-turbo, crop and thumbnail.
 *   make fuzz && build/fuzz/fuzz_jpeg -max_total_time=600 -timeout=10 \
 *       NEW tests/fuzz/corpus/jpeg
 * (NEW: a folder for what it finds; tests/ref/make_images.py makes larger
 * seeds from a photograph). */
#include "fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3 || data[0] != 0xff || data[1] != 0xd8 || data[2] != 0xff)
		return 0;
	fuzz_load(data, size);
	return 0;
}
