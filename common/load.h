/* load.h - an image file in memory to the RGB image the reference's
 * evaluation loader makes of it (Dataset/ImageFromList.py):
 *
 *   img = Image.open(f).convert("RGB")
 *   if bbox: img = img.crop(bbox)
 *   img.thumbnail((s, s), Image.LANCZOS)
 *
 * with s = max_size, or for a cropped query s = max_size * max(crop size)
 * / max(full size) (the revisitop protocol).  Because convert() comes
 * first, thumbnail() works on decoded pixels: integer reduce() by
 * reducing_gap 2, then Lanczos.
 *
 * The draft option instead reproduces thumbnail() on a freshly opened
 * JPEG, where Pillow first lets libjpeg decode at 1/2, 1/4 or 1/8 size
 * (draft()): faster, not the reference's pixels. */
#ifndef TK_LOAD_H
#define TK_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct tk_load_opts {
	int max_size;		/* 0: no thumbnail */
	int draft;		/* JPEG DCT scaling as PIL's draft() */
	long max_pixels;	/* larger images (and crops) are refused */
	int damaged_ok;		/* damaged JPEGs as Pillow's
				 * LOAD_TRUNCATED_IMAGES (decode.h) */
};

struct tk_loaded {
	struct tk_image im;	/* RGB */
	int orig_w, orig_h;	/* size of the file's image */
	int crop[4];		/* x0, y0, x1, y1 applied (the whole image
				 * when there was no bbox) */
	int scale;		/* the JPEG decoder's 1/scale (draft) */
	char damage[256];	/* with damaged_ok: what was lost, or "" */
};

/* Decode buf and make the reference's image of it; bbox (x0, y0, x1, y1)
 * may be NULL.  0, or -1 with the reason in err. */
int tk_load(const uint8_t *buf, size_t len, const double *bbox,
	    const struct tk_load_opts *o, struct tk_loaded *r, char *err,
	    size_t errlen);

/* The decoder's 1/scale Pillow's draft() picks for shrinking a w x h
 * image to tw x th: the largest of 8, 4, 2, 1 not above
 * min(w // (2 tw), h // (2 th)). */
int tk_draft_scale(int w, int h, int tw, int th);

#endif
