/* fuzz_torchload - libFuzzer target for the checkpoint reader: any bytes
 * as a torch.save file (zip or legacy), then, when it reads, every tensor
 * byte touched and the tensors made into a tk model as tk-import does.
 * Each input is read twice: with the zip members' CRC-32s checked, as
 * tk-import reads by default, and without (--no-crc-check), which lets
 * a mutated pickle or storage inside a zip get past libarchive's check.
 *   make fuzz && build/fuzz/fuzz_torchload -max_total_time=600 \
 *       -rss_limit_mb=4096 tests/fuzz/corpus/torchload */
#include <string.h>

#include "common/import.h"
#include "common/torchload.h"

static void read_import(const uint8_t *data, size_t size, unsigned flags)
{
	struct tl_checkpoint c;
	char err[1024];
	if (tl_read_buffer(&c, data, size, flags, err, sizeof err) < 0)
		return;
	volatile uint8_t sum = 0;
	for (int i = 0; i < c.n; i++)
		for (size_t k = 0; k < c.t[i].nbytes; k++)
			sum += ((const uint8_t *)c.t[i].data)[k];
	struct st_doc d;
	st_init(&d);
	tk_import_torch_doc(&d, &c);
	struct tk_import_options o = {NULL, -1};
	struct tk_import_info info;
	struct tk_model m;
	if (tk_import_doc(&m, &d, &o, &info, err, sizeof err) == 0)
		tk_model_free(&m);
	st_free(&d);
	tl_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_import(data, size, 0);
	read_import(data, size, TL_NO_CRC);
	return 0;
}
