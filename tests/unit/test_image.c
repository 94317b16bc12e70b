/* test_image - common/image.c: the AVX2 and portable resampling kernels
 * give the same bytes for random sizes, 1, 3 and 4 channels, every filter,
 * fractional boxes and views; reduce() rounds as Pillow; thumbnail sizes,
 * round-half-even bboxes and black-filled crops as PIL gives them (values
 * from Pillow 9.4). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/image.h"

static uint64_t state = 12345;
static uint32_t rnd(void)
{
	state = state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(state >> 33);
}

static void fill(struct tk_image *im)
{
	for (int y = 0; y < im->h; y++)
		for (int x = 0; x < im->w * im->c; x++)
			tk_image_row(im, y)[x] = (uint8_t)rnd();
}

static int same(const struct tk_image *a, const struct tk_image *b)
{
	if (a->w != b->w || a->h != b->h || a->c != b->c)
		return 0;
	for (int y = 0; y < a->h; y++)
		if (memcmp(tk_image_row(a, y), tk_image_row(b, y), (size_t)a->w * a->c))
			return 0;
	return 1;
}

static void simd_vs_portable(void)
{
	static const int channels[] = {1, 3, 4};
	for (int i = 0; i < 300; i++) {
		struct tk_image in, view, a, b;
		int c = channels[i % 3], w = 1 + rnd() % 300, h = 1 + rnd() % 200;
		tk_image_alloc(&in, w + 7, h + 5, c);
		fill(&in);
		view = tk_image_view(&in, 3, 2, w, h);
		int ow = 1 + rnd() % (2 * w), oh = 1 + rnd() % (2 * h);
		enum tk_filter f = (enum tk_filter)(rnd() % 5);
		float box[4] = {0, 0, (float)w, (float)h};
		if (i % 2) {
			box[0] = (float)(rnd() % 1000) / 1000 * w / 2;
			box[1] = (float)(rnd() % 1000) / 1000 * h / 2;
			box[2] = w - (float)(rnd() % 1000) / 1000 * (w - box[0]) / 2;
			box[3] = h - (float)(rnd() % 1000) / 1000 * (h - box[1]) / 2;
		}
		unsetenv("TK_NO_AVX2");
		tk_resample(&a, &view, ow, oh, f, box);
		setenv("TK_NO_AVX2", "1", 1);
		tk_resample(&b, &view, ow, oh, f, box);
		CHECK(same(&a, &b));
		tk_image_free(&a);
		tk_image_free(&b);
		tk_image_free(&in);
	}
	unsetenv("TK_NO_AVX2");
}

static void reduce_rounding(void)
{
	/* A 5x3 image of c = 1: blocks of 2x2, partial ones at the edges;
	 * Pillow rounds (sum + n/2) / n. */
	struct tk_image in, out;
	tk_image_alloc(&in, 5, 3, 1);
	static const uint8_t px[15] = {0, 1, 2, 2, 255, 1, 1, 2, 3, 254,
				       9, 8, 7, 6, 5};
	for (int y = 0; y < 3; y++)
		memcpy(tk_image_row(&in, y), px + 5 * y, 5);
	tk_reduce(&out, &in, 2, 2, NULL);
	CHECK(out.w == 3 && out.h == 2);
	CHECK(tk_image_row(&out, 0)[0] == 1);	/* (0+1+1+1+2)/4 = 0.75 */
	CHECK(tk_image_row(&out, 0)[1] == 2);	/* (2+2+2+3+2)/4 = 2.25 */
	CHECK(tk_image_row(&out, 0)[2] == 255); /* (255+254+1)/2 = 255 */
	CHECK(tk_image_row(&out, 1)[0] == 9);	/* (9+8+1)/2 = 9 */
	CHECK(tk_image_row(&out, 1)[1] == 7);
	CHECK(tk_image_row(&out, 1)[2] == 5);
	tk_image_free(&out);
	/* 3x3 blocks go through Pillow's float reciprocal. */
	tk_reduce(&out, &in, 3, 3, NULL);
	CHECK(out.w == 2 && out.h == 1);
	CHECK(tk_image_row(&out, 0)[0] == 3);	/* 31/9 */
	CHECK(tk_image_row(&out, 0)[1] == 87);	/* (2+255+3+254+6+5)/6 */
	tk_image_free(&out);
	tk_image_free(&in);
}

static void sizes_and_crops(void)
{
	int w, h;
	/* Image.thumbnail((1024, 1024)) sizes from Pillow 9.4. */
	CHECK(tk_thumbnail_size(2560, 1600, 1024, &w, &h) && w == 1024 && h == 640);
	CHECK(tk_thumbnail_size(1622, 2880, 1024, &w, &h) && w == 577 && h == 1024);
	CHECK(tk_thumbnail_size(1920, 1280, 1024, &w, &h) && w == 1024 && h == 683);
	CHECK(tk_thumbnail_size(40, 1560, 46.9, &w, &h) && w == 1 && h == 46);
	CHECK(!tk_thumbnail_size(1024, 768, 1024, &w, &h));
	CHECK(tk_thumbnail_size(10, 10, 0.3, &w, &h) && w == 1 && h == 1);
	int box[4];
	tk_round_box((const double[4]){136.5, 2.5, -20.5, 1290.9}, box);
	CHECK(box[0] == 136 && box[1] == 2 && box[2] == -20 && box[3] == 1291);
	struct tk_image in, out;
	tk_image_alloc(&in, 4, 3, 3);
	memset(in.px, 200, in.stride * 3);
	tk_crop(&out, &in, -1, 1, 2, 5);
	CHECK(out.w == 3 && out.h == 4);
	CHECK(tk_image_row(&out, 0)[0] == 0 && tk_image_row(&out, 0)[3] == 200);
	CHECK(tk_image_row(&out, 1)[8] == 200 && tk_image_row(&out, 2)[3] == 0);
	tk_image_free(&out);
	tk_image_free(&in);
}

int main(void)
{
	simd_vs_portable();
	reduce_rounding();
	sizes_and_crops();
	return CHECK_DONE();
}
