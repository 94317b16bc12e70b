/* extract.c - the extractor: resize, backbone, LFSA, one arena. */
#include "extract.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer.h"
#include "kernels/resize.h"
#include "threads.h"
#include "tk.h"

void tk_extractor_init(struct tk_extractor *e, const char *model_path)
{
	memset(e, 0, sizeof *e);
	static const char *const keep[] = {"backbone.", "tr.conv.", "tr.encoder.",
					   NULL};
	tk_infer_load(&e->model, model_path, keep);
	tk_resnet_init(&e->backbone, &e->model);
	tk_lfsa_init(&e->lfsa, &e->model);
}

void tk_extractor_free(struct tk_extractor *e)
{
	tk_lfsa_free(&e->lfsa);
	tk_resnet_free(&e->backbone);
	tk_model_free(&e->model);
	free(e->arena);
	free(e->scaled);
	memset(e, 0, sizeof *e);
}

/* Grow-only 64-byte aligned buffer of n floats. */
static float *reserve(float *buf, size_t *cap, size_t n)
{
	if (n <= *cap)
		return buf;
	free(buf);
	buf = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
	if (!buf)
		die_io("out of memory for %zu MB of activations",
		       n * sizeof(float) >> 20);
	*cap = n;
	return buf;
}

int tk_extract_check(int H, int W, double scale, char *err, size_t errlen)
{
	if (scale == 1.0)
		return 0;
	double fh = floor(H * scale), fw = floor(W * scale);
	if (fh < 1 || fw < 1 || fh * fw > TK_MAX_PIXELS) {
		snprintf(err, errlen, "a %dx%d image is %s at scale %g", W, H,
			 fh < 1 || fw < 1 ? "empty" : "too large", scale);
		return -1;
	}
	return 0;
}

const float *tk_extract(struct tk_extractor *e, const float *img, int H,
			int W, double scale, int *gh, int *gw, int check,
			char *err, size_t errlen)
{
	const float *in = img;
	if (tk_extract_check(H, W, scale, err, errlen) < 0)
		return NULL;
	if (scale != 1.0) {
		int oh = resize_out_size(H, scale), ow = resize_out_size(W, scale);
		e->scaled = reserve(e->scaled, &e->scaled_cap, (size_t)3 * oh * ow);
		resize_bilinear_forward(e->scaled, img, 3, H, W, oh, ow, scale, scale);
		in = e->scaled;
		H = oh;
		W = ow;
	}
	struct tk_resnet_plan p;
	tk_resnet_plan(&e->backbone, H, W, tk_threads(), &p);
	int n = p.oh * p.ow, d = e->lfsa.dim;
	/* After the backbone, its output stays at the arena's start and the
	 * LFSA takes the rest. */
	size_t out_off = (p.out_floats + 15) & ~(size_t)15;
	size_t lfsa = out_off + (((size_t)n * d + 15) & ~(size_t)15) +
		      tk_lfsa_scratch(&e->lfsa, n);
	e->arena = reserve(e->arena, &e->arena_cap, p.total > lfsa ? p.total : lfsa);
	const float *feat = tk_resnet_forward(&e->backbone, &p, e->arena, in, check,
					      err, errlen);
	if (!feat)
		return NULL;
	float *local = e->arena + out_off;
	float *scratch = local + (((size_t)n * d + 15) & ~(size_t)15);
	if (tk_lfsa_forward(&e->lfsa, local, scratch, feat, n, check, err, errlen) < 0)
		return NULL;
	e->flops = p.flops + 2.0 * n * (double)e->lfsa.conv.C * d +
		   e->lfsa.nenc * (2.0 * n * d * d * 5 + 4.0 * n * n * d);
	*gh = p.oh;
	*gw = p.ow;
	return local;
}

size_t tk_extractor_bytes(const struct tk_extractor *e)
{
	return (e->arena_cap + e->scaled_cap) * sizeof(float);
}
