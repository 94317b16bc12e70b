/* resnet.h - the backbone for inference: a torchvision ResNet-50/101
 * (Bottleneck, stride in the 3x3 convolution) to its last stage, with
 * every BatchNorm2d folded into the convolution before it, run over one
 * arena of activation buffers planned per input size. */
#ifndef TK_RESNET_H
#define TK_RESNET_H

#include <stddef.h>

#include "model.h"

struct tk_conv {
	const float *w; /* [OC, C, K, K], the BN folded in */
	const float *b; /* [OC] */
	int C, OC, K, stride, pad;
};

struct tk_bottleneck {
	struct tk_conv c1, c2, c3, ds; /* ds.w NULL: identity shortcut */
	char name[32];                 /* "backbone.block4.7" */
};

struct tk_resnet {
	struct tk_conv stem;
	struct tk_bottleneck *blocks;
	int nblocks;
	int out_channels; /* 32 * width */
};

/* Fold each BatchNorm2d of m's backbone into its convolution, in m's own
 * data (weights scaled, the folded bias in the BN's 'bias'); m then
 * serves inference only. */
void tk_resnet_init(struct tk_resnet *r, struct tk_model *m);
void tk_resnet_free(struct tk_resnet *r);

/* Activation memory for an H x W input, in floats: the arena's layout.
 * The output lands at offset 0 of the arena, [out_channels, oh, ow]. */
struct tk_resnet_plan {
	int H, W, oh, ow;
	size_t trunk[2]; /* block inputs and outputs, alternating */
	size_t t1, t2;   /* inside a block */
	size_t work;     /* convolution scratch */
	size_t total;
	size_t out_floats;
	int out_buf; /* which trunk buffer holds the output */
	double flops; /* multiply-adds x 2 of the convolutions */
};
void tk_resnet_plan(const struct tk_resnet *r, int H, int W, int threads,
		    struct tk_resnet_plan *p);

/* Run the backbone on in [3, H, W] (normalised) using arena (p->total
 * floats, laid out as p says); returns the output, inside the arena.
 * check: test each block's output for NaN/Inf; on the first, returns
 * NULL and names the block in err. */
float *tk_resnet_forward(const struct tk_resnet *r,
			 const struct tk_resnet_plan *p, float *arena,
			 const float *in, int check, char *err, size_t errlen);

/* Whether n floats are all finite; the index of the first that is not
 * in *at otherwise. */
int tk_all_finite(const float *x, size_t n, size_t *at);
/* With check set, 0 when n floats are all finite, else -1 with "non-finite
 * value V in the output of WHAT (element I)" in err; 0 without check. */
int tk_check_finite(int check, const float *x, size_t n, const char *what,
		    char *err, size_t errlen);

#endif
