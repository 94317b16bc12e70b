/* augment.c - torchvision's RandomResizedCrop, RandomHorizontalFlip,
 * ColorJitter and Resize + CenterCrop on PIL images, redone on
 * common/image.c's Pillow-exact operations (see augment.h). */
#include "augment.h"

#include <math.h>
#include <stdio.h>

/* splitmix64: a counter-based generator, so that frame i's numbers depend
 * on (seed, epoch, i) only, whatever the thread. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static uint64_t next64(struct rng *r)
{
	return mix64(r->s += 0x9e3779b97f4a7c15ull);
}

static double uniform(struct rng *r, double a, double b)
{
	return a + (b - a) * ((double)(next64(r) >> 11) * 0x1.0p-53);
}

/* 0 <= result < n, unbiased. */
static long randint(struct rng *r, long n)
{
	uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n, x;
	while ((x = next64(r)) >= lim)
		;
	return (long)(x % (uint64_t)n);
}

/* RandomResizedCrop.get_params(scale 0.2-1, ratio 3/4-4/3): the crop box
 * x0, y0, w, h. */
static void crop_params(struct rng *r, int W, int H, int box[4])
{
	double area = (double)W * H, lo = log(3.0 / 4), hi = log(4.0 / 3);
	for (int attempt = 0; attempt < 10; attempt++) {
		double target = area * uniform(r, 0.2, 1.0);
		double ratio = exp(uniform(r, lo, hi));
		int w = (int)nearbyint(sqrt(target * ratio));
		int h = (int)nearbyint(sqrt(target / ratio));
		if (0 < w && w <= W && 0 < h && h <= H) {
			box[1] = (int)randint(r, H - h + 1);
			box[0] = (int)randint(r, W - w + 1);
			box[2] = w;
			box[3] = h;
			return;
		}
	}
	double in_ratio = (double)W / H;
	int w = W, h = H;
	if (in_ratio < 3.0 / 4)
		h = (int)nearbyint(w / (3.0 / 4));
	else if (in_ratio > 4.0 / 3)
		w = (int)nearbyint(h * (4.0 / 3));
	box[0] = (W - w) / 2;
	box[1] = (H - h) / 2;
	box[2] = w;
	box[3] = h;
}

void tk_augment_train(struct tk_image *out, const struct tk_image *im,
		      int size, uint64_t seed, uint64_t epoch, uint64_t index,
		      char *desc, size_t desclen)
{
	struct rng r = {mix64(mix64(mix64(seed) ^ epoch) ^ index)};
	int box[4];
	crop_params(&r, im->w, im->h, box);
	struct tk_image v = tk_image_view(im, box[0], box[1], box[2], box[3]);
	tk_resize(out, &v, size, size, TK_BILINEAR, NULL, 0);
	int flip = uniform(&r, 0, 1) < 0.5;
	if (flip)
		tk_flip_h(out);
	int n = snprintf(desc, desclen, "crop=%d,%d,%d,%d flip=%d",
			 box[0], box[1], box[0] + box[2], box[1] + box[3], flip);
	if (uniform(&r, 0, 1) >= 0.8) { /* RandomApply(p=0.8) */
		snprintf(desc + n, desclen - n, " jitter=none");
		return;
	}
	int order[4] = {0, 1, 2, 3};
	for (int i = 3; i > 0; i--) {
		int k = (int)randint(&r, i + 1), t = order[i];
		order[i] = order[k];
		order[k] = t;
	}
	double f[4] = {uniform(&r, 0.6, 1.4), uniform(&r, 0.6, 1.4),
		       uniform(&r, 0.8, 1.2), uniform(&r, -0.1, 0.1)};
	char names[5] = {0};
	for (int i = 0; i < 4; i++) {
		names[i] = "bcsh"[order[i]];
		switch (order[i]) {
		case 0: tk_adjust_brightness(out, f[0]); break;
		case 1: tk_adjust_contrast(out, f[1]); break;
		case 2: tk_adjust_saturation(out, f[2]); break;
		case 3: tk_adjust_hue(out, f[3]); break;
		}
	}
	snprintf(desc + n, desclen - n,
		 " jitter=%s b=%.17g c=%.17g s=%.17g h=%.17g", names, f[0],
		 f[1], f[2], f[3]);
}

void tk_augment_val(struct tk_image *out, const struct tk_image *im,
		    int size, char *desc, size_t desclen)
{
	int S = size, S8 = (int)(S * (8.0 / 7));
	int W = im->w, H = im->h, sh = W <= H ? W : H, lg = W <= H ? H : W;
	int nl = (int)((double)((long long)S8 * lg) / sh);
	int nw = W <= H ? S8 : nl, nh = W <= H ? nl : S8;
	struct tk_image r;
	tk_resize(&r, im, nw, nh, TK_BICUBIC, NULL, 0);
	int top = (int)nearbyint((nh - S) / 2.0), left = (int)nearbyint((nw - S) / 2.0);
	struct tk_image v = tk_image_view(&r, left, top, S, S);
	tk_resize(out, &v, S, S, TK_BICUBIC, NULL, 0); /* a copy */
	tk_image_free(&r);
	snprintf(desc, desclen, "val resize=%d,%d crop=%d,%d,%d,%d",
		 nw, nh, left, top, left + S, top + S);
}

