/* extract.h - image to local features: the backbone and LFSA over one
 * arena of activations, at any scale of the normalised image. */
#ifndef TK_EXTRACT_H
#define TK_EXTRACT_H

#include <stddef.h>

#include "model.h"
#include "resnet.h"
#include "token.h"

/* The most pixels an image may have at any scale: every size in the
 * network then fits an int. */
#define TK_MAX_PIXELS (1 << 28)

struct tk_extractor {
	struct tk_model model;
	struct tk_resnet backbone;
	struct tk_lfsa lfsa;
	float *arena, *scaled;      /* activations; the resized image */
	size_t arena_cap, scaled_cap; /* floats */
	double flops;               /* of the last forward */
};

/* Whether an H x W image can be extracted at scale: 0, or -1 with
 * the reason in err (empty, or more than TK_MAX_PIXELS, once resized).
 * tk_extract and tk_devnet_grid check it; a tool checks every scale
 * before the first, so that an image's frames are never written in
 * part. */
int tk_extract_check(int H, int W, double scale, char *err, size_t errlen);

/* Load the backbone's and LFSA's weights (not the rest of the head's),
 * fold the batch norms. */
void tk_extractor_init(struct tk_extractor *e, const char *model_path);
void tk_extractor_free(struct tk_extractor *e);

/* Local features of img [3, H, W] (normalised) resized by scale (1: as
 * is; else the reference's F.interpolate(scale_factor=scale, bilinear,
 * align_corners=False)): [gh * gw, mid_dim], inside the extractor,
 * valid until the next call.  NULL with a message in err when the
 * image is empty or too large at the scale, or (check) a layer's output
 * holds NaN or Inf. */
const float *tk_extract(struct tk_extractor *e, const float *img, int H,
			int W, double scale, int *gh, int *gw, int check,
			char *err, size_t errlen);

/* Bytes of activation memory held (arena + resized image). */
size_t tk_extractor_bytes(const struct tk_extractor *e);

#endif
