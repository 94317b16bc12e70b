/* devnet.h - Token's inference network on a device (kernels/dispatch.h):
 * what tk-extract and tk-aggregate run with --device cuda.  The weights
 * are the CPU network's after loading (tk_resnet_init and tk_lfsa_init
 * folded the batch norms), copied to the device once.  The backbone runs
 * on channels-last activations (bf16 under --precision bf16: the tensor
 * cores' layout and type); the LFSA's 1x1 convolution reads them and
 * writes its tokens [N, D] in float; the encoder and the head are float,
 * their GEMMs in the precision asked for.  On the CPU device the same
 * code runs on the CPU ops: the tests' check of this file's logic. */
#ifndef TK_DEVNET_H
#define TK_DEVNET_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"
#include "resnet.h"
#include "token.h"

struct devnet_block;
struct devnet_enc;
struct devnet_head;

struct tk_devnet {
	const struct tk_dev *dv;
	size_t act; /* bytes of an activation value */
	/* backbone: geometry (struct tk_conv, weights unused) and the
	 * device's convolutions */
	struct tk_conv stem_g;
	struct dev_conv *stem;
	struct devnet_block *blocks;
	int nblocks, stem_ld, out_channels;
	/* LFSA */
	struct dev_conv *lfsa;
	struct devnet_enc *enc;
	int nenc, dim, heads;
	/* head (tk_devnet_init with a head) */
	struct devnet_head *head;
	/* device memory, grown as inputs need */
	void *arena;           /* the backbone's activations */
	size_t arena_cap;      /* bytes */
	float *fbuf;           /* tokens and the encoder's or head's scratch */
	size_t fbuf_cap;       /* floats */
	float *img, *scaled;   /* the normalised image [3, H, W], resized */
	size_t img_cap, scaled_cap;
	uint8_t *raw;          /* its pixels */
	size_t raw_cap;
	int H, W;              /* of the image set */
	/* host: pinned copies of the input, two in turn */
	void *stage[2];
	size_t stage_cap[2];
	int stage_next;
	double flops; /* of the last tk_devnet_extract */
	float *desc_host;  /* pinned: tk_devnet_head_start's result */
	void *head_stage;  /* pinned: its input */
	size_t head_stage_cap;
	/* For the tests (test_cuda's layer-by-layer comparison of the two
	 * devices): when set, called with each layer's output once its work
	 * is queued: x on the device, n values, act: activations (else
	 * float).  Layers: "input" (the resized image [3, H, W]), the stem
	 * "backbone.block1.0", "maxpool", each block's name, "tr.conv",
	 * "tr.encoder.I"; in the head "tr.token_norm", "tr.decoder.I",
	 * "tr.proj", "desc". */
	void (*probe)(void *ctx, const char *layer, const void *x, size_t n,
		      int act);
	void *probe_ctx;
};

/* Any of r, l, h may be NULL: the extractor needs r and l, the
 * aggregator h.  dv must be open and outlive n. */
void tk_devnet_init(struct tk_devnet *n, const struct tk_dev *dv,
		    const struct tk_resnet *r, const struct tk_lfsa *l,
		    const struct tk_head *h);
void tk_devnet_free(struct tk_devnet *n);

/* The image for the next extractions: u8 pixels [H, W, 3] (normalised on
 * the device as image_normalize_forward) or a normalised float tensor
 * [3, H, W]; host memory, free to reuse once this returns. */
void tk_devnet_image(struct tk_devnet *n, const void *pixels, int u8, int H,
		     int W);
/* The grid of the local features of an H x W image at scale; -1 with a
 * message (tk_extract's) when the image is empty or too large there. */
int tk_devnet_grid(const struct tk_devnet *n, int H, int W, double scale,
		   int *gh, int *gw, char *err, size_t errlen);
/* Local features of the image at scale, as tk_extract: [gh * gw, D]
 * floats into host memory out (pinned, from dev_host_alloc, for the copy
 * to overlap), there once tk_devnet_wait returns.  check: a layer's
 * NaN or Inf returns -1 with the layer named in err. */
int tk_devnet_extract(struct tk_devnet *n, double scale, float *out,
		      int check, char *err, size_t errlen);
void tk_devnet_wait(struct tk_devnet *n);

/* desc [out_dim] (host) from local features x [N, D] (host), as
 * tk_head_forward; waits. */
int tk_devnet_head(struct tk_devnet *n, float *desc, const float *x, int N,
		   int check, char *err, size_t errlen);
/* The same in two halves, so that the host reads the next frame while
 * the device works on this one: _start copies x (free to reuse once it
 * returns) and queues the work; _finish waits for it and writes desc.
 * One at a time: every _start is followed by its _finish. */
int tk_devnet_head_start(struct tk_devnet *n, const float *x, int N,
			 int check, char *err, size_t errlen);
void tk_devnet_head_finish(struct tk_devnet *n, float *desc);


#endif
