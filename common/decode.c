/* decode.c - JPEG and PNG decoding as Pillow 9.4 does it (see decode.h).
 *
 * JPEG: libjpeg-turbo with its defaults, which are Pillow's (ISLOW IDCT,
 * fancy upsampling, block smoothing); 1 component decoded as grey, 3 as
 * RGB (the library's colour conversion), 4 as CMYK inverted the way
 * Pillow's "CMYK;I" raw mode does.  Warnings that mean lost data
 * (premature end, bad Huffman code, ...) are errors, unless
 * tk_decoder_allow_damage lets them through as Pillow with
 * LOAD_TRUNCATED_IMAGES does.
 *
 * PNG: libpng, palettes expanded (indices past the end of PLTE taking
 * Pillow's initial grey ramp), alpha dropped, 1/2/4-bit grey scaled to
 * 8 bits, 16-bit samples cut to their high byte, except 16-bit grey,
 * which Pillow opens as a 32-bit integer image and clips at 255 when it
 * converts to RGB.  A bad IDAT checksum is an error, unless
 * tk_decoder_allow_damage lets it through (Pillow does not check them). */
#include "decode.h"

#include <stdio.h> /* before jpeglib.h, which needs FILE */

#include <jpeglib.h> /* before jerror.h, which needs its configuration */
#include <jerror.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "tk.h"

/* No real JPEG has this many scans; a crafted one can make each of
 * thousands of scans cost a full pass. */
#define MAX_SCANS 1000

struct jpeg_priv {
	struct jpeg_decompress_struct cinfo;
	struct jpeg_error_mgr jerr;
	struct jpeg_progress_mgr progress;
	jmp_buf jb;
	struct tk_decoder *d;
	int finishing;
};

struct png_priv {
	png_structp png;
	png_infop info;
	const uint8_t *buf;
	size_t len, pos;
	struct tk_decoder *d;
	int depth, type;
	uint8_t *rows16;	/* 16-bit grey rows, freed on error */
	png_bytep *rowp;
};

/* ---- JPEG ---- */

static void jpeg_fail(j_common_ptr ci)
{
	struct jpeg_priv *p = ci->client_data;
	char msg[JMSG_LENGTH_MAX];
	(*ci->err->format_message)(ci, msg);
	snprintf(p->d->err, sizeof p->d->err, "bad JPEG: %s", msg);
	longjmp(p->jb, 1);
}

static void jpeg_message(j_common_ptr ci, int level)
{
	struct jpeg_priv *p = ci->client_data;
	if (level >= 0) /* trace messages */
		return;
	switch (ci->err->msg_code) {
	case JWRN_JPEG_EOF:
		/* Every row is in: only the end marker is missing.  Pillow
		 * accepts such files too. */
		if (p->finishing)
			return;
		/* fall through */
	case JWRN_HIT_MARKER:
	case JWRN_HUFF_BAD_CODE:
	case JWRN_ARITH_BAD_CODE:
	case JWRN_MUST_RESYNC:
	case JWRN_NOT_SEQUENTIAL:
	case JWRN_BOGUS_PROGRESSION:
		if (!p->d->damaged_ok)
			jpeg_fail(ci);
		if (!p->d->damage[0]) {
			char msg[JMSG_LENGTH_MAX];
			(*ci->err->format_message)(ci, msg);
			snprintf(p->d->damage, sizeof p->d->damage,
				 "damaged JPEG: %s", msg);
		}
		return;
	default: /* extraneous bytes, unknown JFIF version, bad ICC marker */
		return;
	}
}

static void jpeg_progress(j_common_ptr ci)
{
	struct jpeg_priv *p = ci->client_data;
	if (p->cinfo.input_scan_number > MAX_SCANS) {
		snprintf(p->d->err, sizeof p->d->err,
			 "bad JPEG: more than %d scans", MAX_SCANS);
		longjmp(p->jb, 1);
	}
}

static int jpeg_open(struct tk_decoder *d, const uint8_t *buf, size_t len,
		     long max_pixels)
{
	struct jpeg_priv *p = xcalloc(1, sizeof *p);
	d->priv = p;
	p->d = d;
	p->cinfo.err = jpeg_std_error(&p->jerr);
	p->jerr.error_exit = jpeg_fail;
	p->jerr.emit_message = jpeg_message;
	p->cinfo.client_data = p;
	if (setjmp(p->jb))
		return -1;
	jpeg_create_decompress(&p->cinfo);
	p->progress.progress_monitor = jpeg_progress;
	p->cinfo.progress = &p->progress;
	/* Bound what a progressive image may hold in memory. */
	p->cinfo.mem->max_memory_to_use = 64L * 1024 * 1024 + 8 * max_pixels;
	jpeg_mem_src(&p->cinfo, buf, (unsigned long)len);
	jpeg_read_header(&p->cinfo, TRUE);
	d->w = (int)p->cinfo.image_width;
	d->h = (int)p->cinfo.image_height;
	if ((double)d->w * d->h > (double)max_pixels) {
		snprintf(d->err, sizeof d->err,
			 "image of %dx%d pixels is larger than the limit of %ld",
			 d->w, d->h, max_pixels);
		return -1;
	}
	switch (p->cinfo.num_components) {
	case 1: d->c = 1; p->cinfo.out_color_space = JCS_GRAYSCALE; break;
	case 3: d->c = 3; p->cinfo.out_color_space = JCS_RGB; break;
	case 4: d->c = 4; p->cinfo.out_color_space = JCS_CMYK; break;
	default:
		snprintf(d->err, sizeof d->err,
			 "bad JPEG: cannot handle %d components",
			 p->cinfo.num_components);
		return -1;
	}
	return 0;
}

static int jpeg_read(struct tk_decoder *d, int scale, struct tk_image *out)
{
	struct jpeg_priv *p = d->priv;
	memset(out, 0, sizeof *out);
	if (setjmp(p->jb)) {
		tk_image_free(out);
		return -1;
	}
	if (scale > 1) {
		p->cinfo.scale_num = 1;
		p->cinfo.scale_denom = (unsigned)scale;
	}
	jpeg_start_decompress(&p->cinfo);
	if (p->cinfo.output_components != d->c) {
		snprintf(d->err, sizeof d->err, "bad JPEG: %d output components",
			 p->cinfo.output_components);
		return -1;
	}
	tk_image_alloc(out, (int)p->cinfo.output_width,
		       (int)p->cinfo.output_height, d->c);
	while (p->cinfo.output_scanline < p->cinfo.output_height) {
		JSAMPROW rows[16];
		int y = (int)p->cinfo.output_scanline, n = out->h - y;
		n = n < 16 ? n : 16;
		for (int i = 0; i < n; i++)
			rows[i] = tk_image_row(out, y + i);
		jpeg_read_scanlines(&p->cinfo, rows, (JDIMENSION)n);
	}
	p->finishing = 1;
	jpeg_finish_decompress(&p->cinfo);
	if (d->c == 4) /* Pillow's "CMYK;I": Adobe's inverted CMYK */
		for (int y = 0; y < out->h; y++) {
			uint8_t *r = tk_image_row(out, y);
			for (size_t i = 0; i < (size_t)out->w * 4; i++)
				r[i] = (uint8_t)~r[i];
		}
	return 0;
}

/* ---- PNG ---- */

static void png_fail(png_structp png, png_const_charp msg)
{
	struct png_priv *p = png_get_error_ptr(png);
	snprintf(p->d->err, sizeof p->d->err, "bad PNG: %s", msg);
	png_longjmp(png, 1);
}

/* The only warning that means anything to us is a bad IDAT checksum,
 * which tk_decoder_allow_damage lets through (see png_read). */
static void png_warn(png_structp png, png_const_charp msg)
{
	struct png_priv *p = png_get_error_ptr(png);
	if (p->d->damaged_ok && !strncmp(msg, "IDAT", 4) &&
	    strstr(msg, "CRC error") && !p->d->damage[0])
		snprintf(p->d->damage, sizeof p->d->damage, "damaged PNG: %s", msg);
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
	struct png_priv *p = png_get_io_ptr(png);
	if (p->len - p->pos < n)
		png_error(png, "truncated file");
	memcpy(out, p->buf + p->pos, n);
	p->pos += n;
}

static int png_open(struct tk_decoder *d, const uint8_t *buf, size_t len,
		    long max_pixels)
{
	struct png_priv *p = xcalloc(1, sizeof *p);
	d->priv = p;
	p->d = d;
	p->buf = buf;
	p->len = len;
	p->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, p, png_fail,
					png_warn);
	if (!p->png)
		die_io("cannot create a PNG reader");
	p->info = png_create_info_struct(p->png);
	if (!p->info)
		die_io("cannot create a PNG reader");
	if (setjmp(png_jmpbuf(p->png)))
		return -1;
	png_set_read_fn(p->png, p, png_read_mem);
	/* libpng refuses more than a million pixels a side by default, as
	 * "Invalid IHDR data"; max_pixels is the limit that counts. */
	png_set_user_limits(p->png, 0x7fffffff, 0x7fffffff);
	png_read_info(p->png, p->info);
	png_uint_32 w, h;
	int interlace;
	png_get_IHDR(p->png, p->info, &w, &h, &p->depth, &p->type, &interlace,
		     NULL, NULL);
	d->w = (int)w;
	d->h = (int)h;
	if ((double)w * h > (double)max_pixels) {
		snprintf(d->err, sizeof d->err,
			 "image of %ux%u pixels is larger than the limit of %ld",
			 (unsigned)w, (unsigned)h, max_pixels);
		return -1;
	}
	d->c = p->type & PNG_COLOR_MASK_COLOR ? 3 : 1;
	return 0;
}

static int png_read(struct tk_decoder *d, struct tk_image *out)
{
	struct png_priv *p = d->priv;
	png_structp png = p->png;
	int grey16 = p->type == PNG_COLOR_TYPE_GRAY && p->depth == 16;
	memset(out, 0, sizeof *out);
	if (setjmp(png_jmpbuf(png))) {
		tk_image_free(out);
		return -1;
	}
	/* Pillow never checks the checksums of IDAT chunks; libpng fails on
	 * a bad one.  Damaged input allowed, IDAT data is used whatever its
	 * checksum, with a warning (the chunks before IDAT are read by
	 * png_open, with libpng's checks, as Pillow checks theirs). */
	if (d->damaged_ok)
		png_set_crc_action(png, PNG_CRC_WARN_USE, PNG_CRC_NO_CHANGE);
	if (p->type == PNG_COLOR_TYPE_PALETTE) {
		/* Indices past the end of PLTE: libpng gives them black,
		 * Pillow the entry of its initial palette, the ramp (i,i,i). */
		png_colorp pal;
		int num = 0, full = 1 << p->depth;
		if (png_get_PLTE(png, p->info, &pal, &num) && num < full) {
			png_color ramp[256];
			for (int i = 0; i < full; i++)
				ramp[i] = i < num ? pal[i]
						  : (png_color){(png_byte)i, (png_byte)i,
								(png_byte)i};
			png_set_PLTE(png, p->info, ramp, full);
		}
		png_set_palette_to_rgb(png);
	}
	if (!(p->type & PNG_COLOR_MASK_COLOR) && p->depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	if (p->depth == 16 && !grey16)
		png_set_strip_16(png);
	png_set_strip_alpha(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, p->info);
	size_t rowbytes = png_get_rowbytes(png, p->info);
	if (png_get_channels(png, p->info) != d->c ||
	    rowbytes != (size_t)d->w * d->c * (grey16 ? 2 : 1)) {
		snprintf(d->err, sizeof d->err, "bad PNG: unexpected row layout");
		return -1;
	}
	tk_image_alloc(out, d->w, d->h, d->c);
	p->rowp = xmalloc(xmul((size_t)d->h, sizeof *p->rowp));
	if (grey16) {
		p->rows16 = xmalloc(xmul(rowbytes, (size_t)d->h));
		for (int y = 0; y < d->h; y++)
			p->rowp[y] = p->rows16 + (size_t)y * rowbytes;
	} else {
		for (int y = 0; y < d->h; y++)
			p->rowp[y] = tk_image_row(out, y);
	}
	png_read_image(png, p->rowp);
	if (grey16) /* Pillow: "I;16B" -> I -> RGB clips at 255 */
		for (int y = 0; y < d->h; y++) {
			const uint8_t *s = p->rowp[y];
			uint8_t *o = tk_image_row(out, y);
			for (int x = 0; x < d->w; x++, s += 2) {
				unsigned v = (unsigned)s[0] << 8 | s[1];
				o[x] = (uint8_t)(v > 255 ? 255 : v);
			}
		}
	return 0;
}

/* ---- the interface ---- */

int tk_decoder_open(struct tk_decoder *d, const uint8_t *buf, size_t len,
		    long max_pixels)
{
	static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	memset(d, 0, sizeof *d);
	if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) {
		d->fmt = TK_FMT_JPEG;
		return jpeg_open(d, buf, len, max_pixels);
	}
	if (len >= 8 && memcmp(buf, png_sig, 8) == 0) {
		d->fmt = TK_FMT_PNG;
		return png_open(d, buf, len, max_pixels);
	}
	snprintf(d->err, sizeof d->err, "not a JPEG or PNG image");
	return -1;
}

void tk_decoder_allow_damage(struct tk_decoder *d)
{
	d->damaged_ok = 1;
}

int tk_decoder_read(struct tk_decoder *d, int scale, struct tk_image *out)
{
	if (d->fmt == TK_FMT_JPEG)
		return jpeg_read(d, scale, out);
	if (d->fmt == TK_FMT_PNG && scale == 1)
		return png_read(d, out);
	snprintf(d->err, sizeof d->err, "cannot decode at 1/%d size", scale);
	return -1;
}

void tk_decoder_close(struct tk_decoder *d)
{
	if (d->fmt == TK_FMT_JPEG && d->priv) {
		struct jpeg_priv *p = d->priv;
		jpeg_destroy_decompress(&p->cinfo);
	} else if (d->fmt == TK_FMT_PNG && d->priv) {
		struct png_priv *p = d->priv;
		png_destroy_read_struct(&p->png, &p->info, NULL);
		free(p->rows16);
		free(p->rowp);
	}
	free(d->priv);
	d->priv = NULL;
}
