/* fuzz_load.h - what fuzz_jpeg and fuzz_png share: any bytes through the
 * decoder and the reference loader (tk_load), with options chosen from the
 * bytes themselves (so that plain image files serve as seeds): no
 * thumbnail or --max-size 1..256, --draft, --damaged, a bbox inside,
 * across or outside the image.  Pixels are bounded (4 Mpixel) to keep memory small. */
#include <stdint.h>
#include <string.h>

#include "common/load.h"

static void fuzz_load(const uint8_t *data, size_t size)
{
	uint32_t h = 2166136261u; /* FNV-1a of a few bytes */
	for (size_t i = 0; i < size; i += 1 + size / 16)
		h = (h ^ data[i]) * 16777619u;
	struct tk_load_opts o = {.max_size = h & 1 ? 0 : 1 + (int)(h >> 1 & 255),
				 .draft = h >> 9 & 1, .max_pixels = 1L << 22,
				 .damaged_ok = h >> 12 & 1};
	static const double boxes[4][4] = {
	    {0}, {3.5, 2.5, 40.5, 30.2}, {-20, -10.5, 50000, 7}, {5, 5, 5.2, 9}};
	const double *bbox = (h >> 10 & 3) ? boxes[h >> 10 & 3] : NULL;
	struct tk_loaded r;
	char err[300];
	if (tk_load(data, size, bbox, &o, &r, err, sizeof err) == 0) {
		volatile uint8_t sum = 0;
		for (int y = 0; y < r.im.h; y++)
			for (int x = 0; x < r.im.w * 3; x++)
				sum += tk_image_row(&r.im, y)[x];
		tk_image_free(&r.im);
	}
}
