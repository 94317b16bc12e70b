/* load.c - the reference evaluation loader: decode, crop, thumbnail
 * (see load.h). */
#include "load.h"

#include <stdio.h>
#include <string.h>

#include "decode.h"

int tk_draft_scale(int w, int h, int tw, int th)
{
	/* JpegImagePlugin.draft(None, (2 tw, 2 th)): floor division of
	 * integral floats is integer division. */
	long sx = w / (2L * tw), sy = h / (2L * th), s = sx < sy ? sx : sy;
	return s >= 8 ? 8 : s >= 4 ? 4 : s >= 2 ? 2 : 1;
}

static void to_rgb_in_place(struct tk_image *im)
{
	if (im->c != 3) {
		struct tk_image rgb;
		tk_to_rgb(&rgb, im);
		tk_image_move(im, &rgb);
	}
}

int tk_load(const uint8_t *buf, size_t len, const double *bbox,
	    const struct tk_load_opts *o, struct tk_loaded *r, char *err,
	    size_t errlen)
{
	struct tk_decoder d;
	struct tk_image im = {0}, tmp;
	memset(r, 0, sizeof *r);
	if (tk_decoder_open(&d, buf, len, o->max_pixels) < 0)
		goto fail;
	if (o->damaged_ok)
		tk_decoder_allow_damage(&d);
	int W = d.w, H = d.h, box[4] = {0, 0, W, H};
	if (bbox) {
		tk_round_box(bbox, box);
		if (box[2] <= box[0] || box[3] <= box[1]) {
			snprintf(d.err, sizeof d.err,
				 "bbox %d,%d,%d,%d (rounded) is empty", box[0],
				 box[1], box[2], box[3]);
			goto fail;
		}
		if ((double)(box[2] - box[0]) * (box[3] - box[1]) >
		    (double)o->max_pixels) {
			snprintf(d.err, sizeof d.err, "bbox is too large");
			goto fail;
		}
	}
	int cw = box[2] - box[0], ch = box[3] - box[1], tw = 0, th = 0;
	int shrink = 0;
	if (o->max_size > 0) {
		int cmax = cw > ch ? cw : ch, fmax = W > H ? W : H;
		double target = bbox ? (double)o->max_size * cmax / fmax
				     : (double)o->max_size;
		shrink = tk_thumbnail_size(cw, ch, target, &tw, &th);
	}
	int inside = box[0] >= 0 && box[1] >= 0 && box[2] <= W && box[3] <= H;
	r->orig_w = W;
	r->orig_h = H;
	memcpy(r->crop, box, sizeof box);
	r->scale = 1;
	if (o->draft && d.fmt == TK_FMT_JPEG && shrink && inside) {
		/* thumbnail() on an opened JPEG: draft, then resize the
		 * scaled-down pixels of the box, in the file's colour space. */
		int s = tk_draft_scale(cw, ch, tw, th);
		if (tk_decoder_read(&d, s, &im) < 0)
			goto fail;
		double sbox[4] = {(double)box[0] / s, (double)box[1] / s,
				  (double)box[2] / s, (double)box[3] / s};
		tk_resize(&tmp, &im, tw, th, TK_LANCZOS, sbox, 2.0);
		tk_image_move(&im, &tmp);
		r->scale = s;
	} else {
		if (tk_decoder_read(&d, 1, &im) < 0)
			goto fail;
		if (im.c == 4) /* convert("RGB") comes first */
			to_rgb_in_place(&im);
		if (bbox && (box[0] || box[1] || box[2] != W || box[3] != H)) {
			tk_crop(&tmp, &im, box[0], box[1], box[2], box[3]);
			tk_image_move(&im, &tmp);
		}
		if (shrink && (tw != im.w || th != im.h)) {
			tk_resize(&tmp, &im, tw, th, TK_LANCZOS, NULL, 2.0);
			tk_image_move(&im, &tmp);
		}
	}
	/* Grey is resampled as one channel: the same as three equal ones. */
	to_rgb_in_place(&im);
	snprintf(r->damage, sizeof r->damage, "%s", d.damage);
	tk_decoder_close(&d);
	r->im = im;
	return 0;
fail:
	snprintf(err, errlen, "%s", d.err);
	tk_decoder_close(&d);
	tk_image_free(&im);
	return -1;
}
