/* test_colour - common/image.c's colour jitter (ImageEnhance and
 * torchvision's adjust_hue, which tests/tools/augment.test checks against
 * torchvision on photographs) computed from tables: every one of the
 * 16.7M colours converts to HSV through the tables as through rgb_to_hsv,
 * the function they are made from; every HSV triple back to RGB as
 * Pillow's Convert.c hsv2rgb writes it (its floor and round, here as
 * written); brightness, contrast and saturation give blend1's bytes
 * pixel by pixel, at ColorJitter's factors and beyond 1 where they clip.
 * The file includes image.c, to reach its static functions. */
#include <math.h>

#include "check.h"
#include "common/image.c"

/* Convert.c hsv2rgb as Pillow writes it. */
static void hsv2rgb(const uint8_t *in, uint8_t *out)
{
	uint8_t h = in[0], s = in[1], v = in[2];
	if (s == 0) {
		out[0] = out[1] = out[2] = v;
		return;
	}
	int i = floor((float)h * 6.0 / 255.0);
	float f = (float)h * 6.0 / 255.0 - (float)i;
	float fs = ((float)s) / 255.0;
	uint8_t p = clip8i(round((float)v * (1.0 - fs)));
	uint8_t q = clip8i(round((float)v * (1.0 - fs * f)));
	uint8_t t = clip8i(round((float)v * (1.0 - fs * (1.0 - f))));
	const uint8_t rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t},
				   {p, q, v}, {t, p, v}, {v, p, q}};
	memcpy(out, rgb[i % 6], 3);
}

static void every_colour(void)
{
	pthread_once(&hsv_once, hsv_tables);
	long to = 0, back = 0;
	for (int r = 0; r < 256; r++)
		for (int g = 0; g < 256; g++)
			for (int b = 0; b < 256; b++) {
				uint8_t c[3] = {r, g, b}, x[3], y[3];
				rgb_to_hsv(c, x);
				rgb_to_hsv_fast(c, y);
				to += memcmp(x, y, 3) != 0;
				hsv2rgb(c, x);
				hsv_to_rgb(c, y);
				back += memcmp(x, y, 3) != 0;
			}
	CHECK(to == 0);
	CHECK(back == 0);
}

static uint64_t state = 99;
static uint8_t rnd8(void)
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint8_t)(state >> 56);
}

static void blends(void)
{
	static const double factors[] = {0.0, 0.6, 0.87, 1.0, 1.13, 1.4, 2.5};
	struct tk_image im, ref;
	tk_image_alloc(&im, 61, 37, 3);
	for (size_t k = 0; k < sizeof factors / sizeof *factors; k++) {
		for (int op = 0; op < 3; op++) {
			for (int y = 0; y < im.h; y++)
				for (int x = 0; x < im.w * 3; x++)
					tk_image_row(&im, y)[x] = rnd8();
			tk_image_alloc(&ref, im.w, im.h, 3);
			double sum = 0;
			for (int y = 0; y < im.h; y++) {
				memcpy(tk_image_row(&ref, y), tk_image_row(&im, y), im.w * 3);
				for (int x = 0; x < im.w; x++)
					sum += luma(tk_image_row(&im, y) + 3 * x);
			}
			int mean = (int)(sum / (im.w * im.h) + 0.5);
			float a = (float)factors[k];
			for (int y = 0; y < im.h; y++) {
				uint8_t *p = tk_image_row(&ref, y);
				for (int x = 0; x < im.w; x++, p += 3) {
					int d = op == 0 ? 0 : op == 1 ? mean : luma(p);
					for (int c = 0; c < 3; c++)
						p[c] = blend1(d, p[c], a);
				}
			}
			if (op == 0)
				tk_adjust_brightness(&im, factors[k]);
			else if (op == 1)
				tk_adjust_contrast(&im, factors[k]);
			else
				tk_adjust_saturation(&im, factors[k]);
			int same = 1;
			for (int y = 0; y < im.h; y++)
				same &= !memcmp(tk_image_row(&im, y), tk_image_row(&ref, y),
						im.w * 3);
			CHECK(same);
			tk_image_free(&ref);
		}
	}
	tk_image_free(&im);
}

int main(void)
{
	every_colour();
	blends();
	return CHECK_DONE();
}
