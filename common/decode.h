/* decode.h - JPEG (libjpeg-turbo) and PNG (libpng) files in memory to
 * 8-bit images, with the decoder settings Pillow 9.4 uses, so that the
 * pixels agree with PIL's bit for bit. */
#ifndef TK_DECODE_H
#define TK_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

enum tk_format { TK_FMT_UNKNOWN, TK_FMT_JPEG, TK_FMT_PNG };

/* Pillow refuses images of more pixels than this (2 x MAX_IMAGE_PIXELS,
 * its DecompressionBombError). */
#define TK_MAX_PIXELS 178956970L

struct tk_decoder {
	enum tk_format fmt;
	int w, h;	/* full size */
	int c;		/* channels decoded: 1 grey, 3 RGB, 4 CMYK */
	char err[256];	/* why the last call failed */
	int damaged_ok;	/* tk_decoder_allow_damage */
	char damage[256]; /* the first lost-data warning let through, or "" */
	void *priv;
};

/* Recognise buf by its signature and read the header; images of more
 * than max_pixels pixels are refused.  buf must stay valid until
 * tk_decoder_close.  0, or -1 with the reason in d->err. */
int tk_decoder_open(struct tk_decoder *d, const uint8_t *buf, size_t len,
		    long max_pixels);

/* Decode the pixels into out (d->c channels), at 1/scale of the size for a
 * JPEG (DCT scaling; scale 1, 2, 4 or 8: ceil(w / scale) x ceil(h /
 * scale)), whole for a PNG (scale must be 1).  A truncated or corrupt
 * file is an error, never a partial image (but see
 * tk_decoder_allow_damage).  0, or -1 with d->err. */
int tk_decoder_read(struct tk_decoder *d, int scale, struct tk_image *out);

/* After tk_decoder_open: decode a damaged JPEG as Pillow does with
 * ImageFile.LOAD_TRUNCATED_IMAGES, which the reference's loaders set:
 * libjpeg's warnings of lost data (premature end of the file or of a
 * data segment, bad Huffman or arithmetic code, lost sync, bad
 * progression) let through, a file that ends early completed as libjpeg
 * completes it (grey), the first such warning kept in d->damage.  The
 * same pixels as Pillow's.  For a PNG: a bad IDAT checksum let through
 * (Pillow never checks them), kept in d->damage. */
void tk_decoder_allow_damage(struct tk_decoder *d);

void tk_decoder_close(struct tk_decoder *d);

#endif
