/* fuzz_png - libFuzzer target for the PNG path of tk-decode: bytes that
 * start like a PNG through libpng, crop and thumbnail.
 *   make fuzz && build/fuzz/fuzz_png -max_total_time=600 -timeout=10 \
 *       NEW tests/fuzz/corpus/png
 * (NEW: a folder for what it finds; tests/ref/make_images.py makes larger
 * seeds from a photograph). */
#include "fuzz_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	if (size < 8 || memcmp(data, sig, 8) != 0)
		return 0;
	fuzz_load(data, size);
	return 0;
}
