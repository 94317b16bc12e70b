/* image.h - 8-bit images and the pixel operations of the reference
 * preprocessing, computed as Pillow 9.4 computes them (same fixed-point
 * coefficients, rounding and clipping), so that results agree bit for bit:
 * reduce(), resize() with the separable bilinear/bicubic/Lanczos filters,
 * thumbnail sizes, crop, horizontal flip, and the ImageEnhance /
 * torchvision colour adjustments. */
#ifndef TK_IMAGE_H
#define TK_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Channels interleaved, rows 'stride' bytes apart.  c is 1 (grey), 3 (RGB)
 * or 4 (CMYK as Pillow holds it).  A view shares another image's pixels
 * (own == NULL). */
struct tk_image {
	int w, h, c;
	size_t stride;
	uint8_t *px;
	uint8_t *own;
};

/* Allocate w x h x c pixels (uninitialised); dies when out of memory. */
void tk_image_alloc(struct tk_image *im, int w, int h, int c);
void tk_image_free(struct tk_image *im);
/* Replace *dst by *src (freeing dst's pixels); src is left empty. */
void tk_image_move(struct tk_image *dst, struct tk_image *src);
/* The rectangle x, y, w, h of im, sharing its pixels. */
struct tk_image tk_image_view(const struct tk_image *im, int x, int y, int w,
			      int h);
static inline uint8_t *tk_image_row(const struct tk_image *im, int y)
{
	return im->px + (size_t)y * im->stride;
}

/* Pillow's resampling filters (Image.Resampling). */
enum tk_filter { TK_BOX, TK_BILINEAR, TK_HAMMING, TK_BICUBIC, TK_LANCZOS };
/* The support radius Image._filters_support gives each filter. */
double tk_filter_support(enum tk_filter f);

/* Image.reduce(): each fx x fy block of box (x0, y0, x1, y1; NULL for the
 * whole image) averaged with Pillow's rounding; the output is
 * ceil(w / fx) x ceil(h / fy), partial blocks at the right and bottom. */
void tk_reduce(struct tk_image *out, const struct tk_image *in, int fx,
	       int fy, const int box[4]);

/* The core resize (ImagingResample): two separable passes, horizontal
 * first, over the source rectangle box (float, as Pillow passes it to C;
 * NULL for the whole image), output w x h. */
void tk_resample(struct tk_image *out, const struct tk_image *in, int w,
		 int h, enum tk_filter f, const float box[4]);

/* Image.resize(size, filter, box, reducing_gap): box in double (NULL for
 * the whole image); reducing_gap > 0 applies reduce() first when the image
 * shrinks by reducing_gap times or more, as Pillow does. */
void tk_resize(struct tk_image *out, const struct tk_image *in, int w, int h,
	       enum tk_filter f, const double box[4], double reducing_gap);

/* The size Image.thumbnail((t, t)) gives a w x h image: 1 with *tw, *th
 * set when the image must shrink, 0 when it already fits.  A target below
 * 1 counts as 1 (Pillow would divide by zero). */
int tk_thumbnail_size(int w, int h, double target, int *tw, int *th);

/* Python's round() (half to even) of each box coordinate, as Image.crop
 * does. */
void tk_round_box(const double in[4], int out[4]);
/* Image.crop((x0, y0, x1, y1)) with integer corners: what lies outside the
 * image is black.  x1 > x0, y1 > y0. */
void tk_crop(struct tk_image *out, const struct tk_image *in, int x0, int y0,
	     int x1, int y1);

/* Mirror left to right, in place (Image.transpose(FLIP_LEFT_RIGHT)). */
void tk_flip_h(struct tk_image *im);

/* Grey (c = 1) or CMYK (c = 4, Pillow's "CMYK;I" convention) to RGB, as
 * Image.convert("RGB"). */
void tk_to_rgb(struct tk_image *out, const struct tk_image *in);

/* Colour adjustments of an RGB image in place, as torchvision 0.14 applies
 * them to PIL images: ImageEnhance.Brightness / Contrast / Color (blend
 * with a black, mean-grey or greyscale image, factor as a float), and
 * adjust_hue (shift the H of Pillow's HSV by (uint8)(int)(h * 255)). */
void tk_adjust_brightness(struct tk_image *im, double factor);
void tk_adjust_contrast(struct tk_image *im, double factor);
void tk_adjust_saturation(struct tk_image *im, double factor);
void tk_adjust_hue(struct tk_image *im, double hue);

#endif
