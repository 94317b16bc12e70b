/* fuzz_safetensors - libFuzzer target for whole-document parsing, as weight
 * files are read (st_parse_buffer over a mapped file).
 *   make fuzz && build/fuzz/fuzz_safetensors -max_total_time=600 \
 *       -dict=tests/fuzz/json.dict NEW tests/fuzz/corpus/safetensors */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct st_doc d;
	int parsed;
	uint8_t *buf = fuzz_doc(data, size, &d, &parsed);
	if (parsed)
		for (int i = 0; i < d.n; i++) {
			volatile double x = 0;
			size_t n = st_numel(&d.t[i]);
			if (n)
				x += st_get(&d.t[i], n - 1);
		}
	st_free(&d);
	free(buf);
	return 0;
}
